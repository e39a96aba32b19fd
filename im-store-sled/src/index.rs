//! The conversation index: each user's entries, each conversation's state,
//! and what the writer remembers of them between writes so that a send to
//! a large group reads next to nothing.
//!
//! # Invariants
//!
//! After every write (every write goes through the writer, under its lock,
//! and sled locks the directory to one process):
//!
//! 1. A conversation's `holders` (in its `conv_state`) is the number of
//!    entry keys (`e user 0xFF conv`) of it.
//! 2. An entry's activity, as read, is the conversation's `activity` when
//!    the conversation's `activity_seq` is past the entry's `since`, else
//!    its own: a send that reaches every holder moves only the
//!    conversation's activity (and the sender's cursor), which is why it
//!    writes two keys and not one per member.
//! 3. No read cursor is past the conversation's `last_seq`.
//! 4. A user holds an entry of a group exactly while it is a member: a join
//!    and a leave write both in one batch, and a group send goes to the
//!    members read under the lock (`repair` mends directories older builds
//!    broke).
//! 5. What [`Known`] remembers agrees with the disk: a feed's bounds are
//!    the ones its keys give, and a conversation's remembered holders are
//!    exactly the users with an entry of it. It is forgotten whenever a
//!    write fails (what the write changed in memory may not have landed)
//!    and whenever it grows past its budget; what is forgotten is read from
//!    disk again when next needed.
//!
//! [`check`] verifies 1, 3 and 5 against the disk; the conformance suite
//! runs it after every step of its property tests. (4 is the engine's: the
//! store-level comparison writes entries without membership on purpose.)

use std::collections::{HashMap, HashSet};

use im_engine::{ConversationId, NewMessage, Seq, Timestamp, UserId};

use crate::codec::{Bounds, ConvState, Entry};
use crate::error::{Error, Result};
use crate::feed;
use crate::keys;
use crate::write::Batch;

/// Feeds whose bounds are kept at most.
const MAX_FEEDS: usize = 1 << 18;
/// Entry holders kept at most, over every conversation.
const MAX_HOLDERS: usize = 1 << 18;
/// Conversations with fewer holders than this are not worth remembering:
/// reading their entries costs a few reads. (The unit tests remember every
/// conversation, so that they check this path on small ones too: see
/// [`Known::remember_every_conversation`].)
const MIN_REMEMBERED_HOLDERS: usize = 64;

/// What the writer remembers between writes: see the [module docs](self).
#[derive(Debug)]
pub(crate) struct Known {
    heads: HashMap<UserId, Bounds>,
    /// By conversation (key bytes): every user that holds an entry of it.
    holders: HashMap<Vec<u8>, HashSet<UserId>>,
    /// The number of users in `holders`, summed over conversations.
    holders_len: usize,
    /// Conversations with fewer holders than this are not remembered.
    remember_from: usize,
}

impl Default for Known {
    fn default() -> Self {
        Self {
            heads: HashMap::new(),
            holders: HashMap::new(),
            holders_len: 0,
            remember_from: MIN_REMEMBERED_HOLDERS,
        }
    }
}

impl Known {
    /// Forgets everything it remembers.
    pub(crate) fn forget(&mut self) {
        *self = Self {
            remember_from: self.remember_from,
            ..Self::default()
        };
    }

    /// Remembers the holders of conversations of any size (tests: so that
    /// small conversations take the remembered path too).
    #[cfg(test)]
    pub(crate) fn remember_every_conversation(&mut self) {
        self.remember_from = 1;
    }

    /// Forgets what grew past its budget.
    pub(crate) fn keep_to_budget(&mut self) {
        if self.heads.len() > MAX_FEEDS {
            self.heads.clear();
        }
        if self.holders_len > MAX_HOLDERS {
            self.holders.clear();
            self.holders_len = 0;
        }
    }

    /// The bounds of `user`'s feed, read from its keys when not known.
    pub(crate) fn bounds(&mut self, tree: &sled::Tree, user: &UserId) -> Result<&mut Bounds> {
        if !self.heads.contains_key(user) {
            self.heads.insert(user.clone(), feed::bounds(tree, user)?);
        }
        Ok(self.heads.get_mut(user).expect("inserted"))
    }

    /// Every holder of an entry of `conv`, when known.
    pub(crate) fn holders(&self, conv: &[u8]) -> Option<&HashSet<UserId>> {
        self.holders.get(conv)
    }

    /// Remembers that `holders` are every holder of an entry of `conv`.
    pub(crate) fn remember_holders(&mut self, conv: &[u8], holders: HashSet<UserId>) {
        self.holders_len += holders.len();
        if let Some(old) = self.holders.insert(conv.to_vec(), holders) {
            self.holders_len -= old.len();
        }
    }

    /// `user` now holds an entry of `conv`.
    pub(crate) fn holder_added(&mut self, conv: &[u8], user: &UserId) {
        if let Some(set) = self.holders.get_mut(conv)
            && set.insert(user.clone())
        {
            self.holders_len += 1;
        }
    }

    /// `user` no longer holds an entry of `conv`.
    pub(crate) fn holder_removed(&mut self, conv: &[u8], user: &UserId) {
        if let Some(set) = self.holders.get_mut(conv)
            && set.remove(user)
        {
            self.holders_len -= 1;
        }
    }

    /// Forgets the holders of `conv` (they disagree with what is stored).
    pub(crate) fn forget_holders(&mut self, conv: &[u8]) {
        if let Some(old) = self.holders.remove(conv) {
            self.holders_len -= old.len();
        }
    }
}

/// The index entries of a send numbered `seq`. When it reaches every
/// holder of an entry of the conversation, the conversation's activity
/// moves and only the sender's cursor and new entries are written;
/// otherwise each recipient's entry is.
pub(crate) fn index(
    p: &mut Batch<'_>,
    known: &mut Known,
    m: &NewMessage,
    recipients: &[UserId],
    seq: Seq,
    state: &mut ConvState,
) -> Result<()> {
    let conv = keys::conv(&m.conversation);
    let mut seen = HashSet::with_capacity(recipients.len());
    let recipients = recipients.iter().filter(|u| seen.insert(*u));
    // Each holder, with its entry when read.
    let mut held: Vec<(&UserId, Option<Entry>)> = Vec::new();
    let mut fresh = Vec::new();
    match known.holders(&conv) {
        Some(all) if all.len() as u64 == state.holders => {
            for user in recipients {
                if all.contains(user) {
                    held.push((user, None));
                } else {
                    fresh.push(user);
                }
            }
        }
        remembered => {
            if remembered.is_some() {
                known.forget_holders(&conv);
            }
            for user in recipients {
                match p.entry(&keys::user_conv(user, &conv))? {
                    Some(e) => held.push((user, Some(e))),
                    None => fresh.push(user),
                }
            }
        }
    }
    let reaches_all = held.len() as u64 == state.holders;
    if reaches_all
        && held.len() + fresh.len() >= known.remember_from
        && known.holders(&conv).is_none()
    {
        let all = held.iter().map(|(u, _)| *u).chain(fresh.iter().copied());
        known.remember_holders(&conv, all.cloned().collect());
    }
    let written = |user: &UserId, read_seq: Seq| Entry {
        read_seq: if *user == m.from {
            read_seq.max(seq)
        } else {
            read_seq
        },
        activity: m.ts,
        since: seq,
    };
    for (user, e) in held {
        if !reaches_all || *user == m.from {
            let key = keys::user_conv(user, &conv);
            let e = match e {
                Some(e) => e,
                None => p.entry(&key)?.ok_or_else(|| {
                    Error::Corrupt(format!("{user} holds no entry of {}", m.conversation))
                })?,
            };
            p.put_entry(key, written(user, e.read_seq));
        }
    }
    state.holders += fresh.len() as u64;
    for user in fresh {
        p.put_entry(keys::user_conv(user, &conv), written(user, 0));
        known.holder_added(&conv, user);
    }
    if reaches_all {
        state.activity = m.ts;
        state.activity_seq = seq;
    }
    Ok(())
}

/// Puts `user`'s index entry of `c`, with the read cursor `read_seq` picks
/// from the conversation's state; its own activity until the conversation
/// moves past now.
pub(crate) fn put_entry(
    p: &mut Batch<'_>,
    known: &mut Known,
    user: &UserId,
    c: &ConversationId,
    read_seq: impl FnOnce(&ConvState) -> Seq,
    activity: Timestamp,
) -> Result<()> {
    let conv = keys::conv(c);
    let key = keys::user_conv(user, &conv);
    let mut state = p.state(&conv)?;
    let existed = p.entry(&key)?.is_some();
    let entry = Entry {
        read_seq: read_seq(&state),
        activity,
        since: state.last_seq,
    };
    p.put_entry(key, entry);
    if !existed {
        state.holders += 1;
        p.put_state(&conv, state);
        known.holder_added(&conv, user);
    }
    Ok(())
}

/// Removes `user`'s index entry of `c`, if it has one.
pub(crate) fn remove_entry(
    p: &mut Batch<'_>,
    known: &mut Known,
    user: &UserId,
    c: &ConversationId,
) -> Result<()> {
    let conv = keys::conv(c);
    let key = keys::user_conv(user, &conv);
    if p.entry(&key)?.is_some() {
        let mut state = p.state(&conv)?;
        state.holders = state
            .holders
            .checked_sub(1)
            .ok_or_else(|| Error::Corrupt(format!("{c} has an entry it does not count")))?;
        p.remove(key);
        p.put_state(&conv, state);
        known.holder_removed(&conv, user);
    }
    Ok(())
}

/// Panics unless invariants 1, 3 and 5 of the [module docs](self) hold.
#[cfg(test)]
pub(crate) fn check(tree: &sled::Tree, known: &Known) {
    use crate::keys::kind;

    let mut holders: HashMap<Vec<u8>, HashSet<UserId>> = HashMap::new();
    for kv in tree.scan_prefix([kind::USERCONV_ENTRY]) {
        let (key, value) = kv.expect("entries read");
        let (user, c) = keys::decode_user_conv(&key).expect("an entry key");
        let conv = keys::conv(&c);
        let entry = Entry::decode(&value).expect("an entry");
        let state = tree
            .get(keys::conv_state(&conv))
            .expect("state read")
            .map(|v| ConvState::decode(&v).expect("a state"))
            .unwrap_or_default();
        assert!(
            entry.read_seq <= state.last_seq,
            "{user}'s cursor in {c} is past its last seq: {entry:?} {state:?}"
        );
        holders.entry(conv).or_default().insert(user);
    }
    for kv in tree.scan_prefix([kind::CONV_STATE]) {
        let (key, value) = kv.expect("states read");
        let c = keys::decode_conv_state(&key).expect("a state key");
        let state = ConvState::decode(&value).expect("a state");
        let held = holders.get(&keys::conv(&c)).map_or(0, HashSet::len);
        assert_eq!(state.holders, held as u64, "holders of {c}");
    }
    for (conv, remembered) in &known.holders {
        let empty = HashSet::new();
        let held = holders.get(conv).unwrap_or(&empty);
        let c = String::from_utf8_lossy(conv);
        assert_eq!(remembered, held, "remembered holders of {c}");
    }
    for (user, bounds) in &known.heads {
        let stored = feed::bounds(tree, user).expect("bounds read");
        assert_eq!(*bounds, stored, "remembered bounds of {user}'s feed");
    }
}
