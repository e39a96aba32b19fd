//! The atomic writes: a send, a membership change, a message change, a
//! change set, one key.
//!
//! Each runs on the writer thread (`combine`) against the [`Batch`] of the
//! writes combined with it, reading what the writes before it in the batch
//! wrote (never the tree alone), and the batch lands as one `apply_batch`
//! on the `records` tree. sled applies a batch under its write lock, so no
//! read sees part of one, and recovers it whole or not at all after a
//! crash; both hold within one tree only, which is why all data is in one.
//! What a sled transaction would add, that the values a write reads
//! (`last_seq`, entries, feed heads) do not change before it lands, the
//! one writer thread gives: sled locks the directory to one process, and
//! every write of this process goes through it. Unlike a sled transaction,
//! the writer does not read each key before writing it (a transactional
//! insert does, and keeps what it read), which was much of what a send to
//! a large group cost.

use std::sync::{Arc, Mutex};

use sled::IVec;

use im_engine::store::{
    Changes, ContactChange, EntryChange, MarkChange, Marks, MemberChange, MemberUpdate,
    MessageChange, MessageUpdate, MessageUpdated, Outgoing, Recipients, Sent, Updated,
    apply_change, fire_events,
};
use im_engine::{ConversationId, Event, GroupId, GroupKind, Membership, Message, UserId};

pub(crate) use crate::batch::Batch;
use crate::codec;
use crate::combine::{self, Combiner};
use crate::error::{Error, Result};
use crate::feed;
use crate::fire;
use crate::index::{self, Known};
use crate::keys::{self, kind};
use crate::rooms;
use crate::wal::Log;

/// Serialises the writes of a store through the writer thread (see
/// `combine`) and remembers what they need to read (see [`Known`]).
#[derive(Debug)]
pub(crate) struct Writer {
    #[cfg(test)]
    records: sled::Tree,
    known: Arc<Mutex<Known>>,
    combiner: Combiner,
}

impl Writer {
    pub(crate) fn new(records: sled::Tree, log: Arc<Log>) -> Result<Self> {
        let known = Arc::new(Mutex::default());
        let combiner = Combiner::start(records.clone(), log, Arc::clone(&known))?;
        Ok(Self {
            #[cfg(test)]
            records,
            known,
            combiner,
        })
    }

    /// Runs what is queued and stops the writer thread: writes after this
    /// fail with [`Error::Closed`].
    pub(crate) fn stop(&self) {
        self.combiner.stop();
    }

    /// Runs `f` while no write can land: an export's consistent read.
    pub(crate) fn frozen<T>(&self, f: impl FnOnce() -> T) -> T {
        let _known = combine::lock(&self.known);
        f()
    }

    /// Remembers the holders of conversations of any size (tests).
    #[cfg(test)]
    pub(crate) fn remember_every_conversation(&self) {
        combine::lock(&self.known).remember_every_conversation();
    }

    /// Checks the index's invariants against the disk (tests; see
    /// [`index::check`]).
    #[cfg(test)]
    pub(crate) fn check(&self) {
        index::check(&self.records, &combine::lock(&self.known));
    }

    /// Sets one key: a write of its own, such as `last_seen`.
    pub(crate) fn put(
        &self,
        key: Vec<u8>,
        value: Vec<u8>,
    ) -> impl Future<Output = Result<()>> + Send + 'static {
        self.combiner.submit(move |p, _| {
            p.insert(key, value);
            Ok(())
        })
    }

    /// [`Store::send`](im_engine::Store::send) in the next batch; answers
    /// who received it.
    pub(crate) fn send(
        &self,
        out: Outgoing,
    ) -> impl Future<Output = Result<(Sent, Vec<UserId>)>> + Send + 'static {
        self.combiner.submit(move |p, known| send(p, known, &out))
    }

    /// [`Store::update_member`](im_engine::Store::update_member) in the
    /// next batch; answers who heard of it.
    pub(crate) fn update_member(
        &self,
        u: MemberUpdate,
    ) -> impl Future<Output = Result<(Updated, Vec<UserId>)>> + Send + 'static {
        self.combiner
            .submit(move |p, known| update_member(p, known, &u))
    }

    /// [`Store::update_message`](im_engine::Store::update_message) in the
    /// next batch; answers who heard of it.
    pub(crate) fn update_message(
        &self,
        u: MessageUpdate,
    ) -> impl Future<Output = Result<(MessageUpdated, Vec<UserId>)>> + Send + 'static {
        self.combiner
            .submit(move |p, known| update_message(p, known, &u))
    }

    /// [`Store::commit`](im_engine::Store::commit) in the next batch.
    pub(crate) fn commit(
        &self,
        changes: Changes,
    ) -> Result<impl Future<Output = Result<()>> + Send + 'static> {
        // Encode outside the writer thread: less work while writers wait.
        let events = changes
            .events
            .iter()
            .map(|(user, ts, event)| Ok((user.clone(), IVec::from(codec::event(*ts, event)?))))
            .collect::<Result<Vec<_>>>()?;
        Ok(self
            .combiner
            .submit(move |p, known| commit(p, known, &changes, &events)))
    }
}

/// The ids of a group's members, read from their keys once per batch.
fn member_ids(p: &mut Batch<'_>, group: &GroupId) -> Result<Vec<UserId>> {
    let prefix = keys::prefix(kind::GROUPUSER_MEMBER, group.as_str());
    if let Some(members) = p.members.get(&prefix) {
        return Ok(members.clone());
    }
    let members = p
        .keys(&prefix)?
        .into_iter()
        .map(|k| {
            keys::decode_group_user(&k)
                .map(|(_, user)| user)
                .ok_or_else(|| Error::Corrupt(format!("member key {k:?} of {group}")))
        })
        .collect::<Result<Vec<_>>>()?;
    p.members.insert(prefix, members.clone());
    Ok(members)
}

/// Whether `c` is a direct conversation one of whose users blocks the
/// other.
fn blocked(p: &Batch<'_>, c: &ConversationId) -> Result<bool> {
    let ConversationId::Direct(a, b) = c else {
        return Ok(false);
    };
    Ok(p.get(&keys::mark(&Marks::Blocks(a.clone()), b))?.is_some()
        || p.get(&keys::mark(&Marks::Blocks(b.clone()), a))?.is_some())
}

/// A change to one message: the message rewritten whole (a delete keeps
/// no body in it), and the event in every recipient's feed.
fn update_message(
    p: &mut Batch<'_>,
    known: &mut Known,
    u: &MessageUpdate,
) -> Result<(MessageUpdated, Vec<UserId>)> {
    let key = keys::conv_seq(&keys::conv(&u.conversation), u.seq);
    let Some(stored) = p.get(&key)? else {
        return Ok((MessageUpdated::NotFound, Vec::new()));
    };
    let mut message: Message = codec::from_json(kind::CONVSEQ_MESSAGE, &stored)?;
    let event = match apply_change(&mut message, &u.change, u.at, u.max_reaction_keys) {
        Ok(event) => event,
        Err(refused) => return Ok((refused.answer(&message), Vec::new())),
    };
    // Read under the writer's lock, like a send's.
    let recipients = match &u.recipients {
        Recipients::Users(users) => users.clone(),
        Recipients::Room(room) => match &u.change {
            MessageChange::React { user, .. } if !rooms::is_member(p, room, user)? => {
                return Ok((MessageUpdated::NotMember, Vec::new()));
            }
            _ => Vec::new(),
        },
        Recipients::Members(group) => {
            let members = member_ids(p, group)?;
            if let MessageChange::React { user, .. } = &u.change
                && !members.contains(user)
            {
                return Ok((MessageUpdated::NotMember, Vec::new()));
            }
            members
        }
    };
    p.insert(key, codec::json(&message)?);
    fire::append(p, [(None, u.at, event.clone())])?;
    let event = IVec::from(codec::event(u.at, &event)?);
    for user in &recipients {
        let b = known.bounds(p.tree, user)?;
        feed::append(p, b, user, event.clone(), u.trim)?;
    }
    Ok((MessageUpdated::Changed(message), recipients))
}

fn send(p: &mut Batch<'_>, known: &mut Known, out: &Outgoing) -> Result<(Sent, Vec<UserId>)> {
    let m = &out.message;
    // Read under the writer's lock, like everything this batch decides on:
    // no join or leave lands between this read and the batch.
    if blocked(p, &m.conversation)? {
        return Ok((Sent::Blocked, Vec::new()));
    }
    let recipients = match &out.recipients {
        Recipients::Users(users) => users.clone(),
        Recipients::Room(room) if !rooms::is_member(p, room, &m.from)? => {
            return Ok((Sent::NotMember, Vec::new()));
        }
        Recipients::Room(_) => Vec::new(),
        Recipients::Members(group) => {
            let members = member_ids(p, group)?;
            if !members.contains(&m.from) {
                return Ok((Sent::NotMember, Vec::new()));
            }
            members
        }
    };
    let conv = keys::conv(&m.conversation);
    let client_key = m
        .client_id
        .as_deref()
        .map(|id| keys::conv_sender_client_id(&conv, &m.from, id));
    // A repeat answers the stored message and writes nothing.
    if let Some(key) = &client_key
        && let Some(seq) = p.get(key)?
    {
        let seq = codec::to_u64(kind::name(kind::CLIENT_ID_SEQ), &seq)?;
        let stored = p.get(&keys::conv_seq(&conv, seq))?.ok_or_else(|| {
            Error::Corrupt(format!(
                "client id of {} names missing message {seq}",
                m.conversation
            ))
        })?;
        let original = codec::from_json(kind::CONVSEQ_MESSAGE, &stored)?;
        return Ok((Sent::Duplicate(original), Vec::new()));
    }
    let mut state = p.state(&conv)?;
    let seq = state.last_seq + 1;
    let message = m.numbered(seq);
    p.insert(keys::conv_seq(&conv, seq), codec::json(&message)?);
    if let Some(key) = client_key {
        p.insert(key, seq.to_be_bytes().to_vec());
    }

    index::index(p, known, m, &recipients, seq, &mut state)?;
    state.last_seq = seq;
    p.put_state(&conv, state);

    let event = Event::Message {
        conversation: m.conversation.clone(),
        seq,
    };
    fire::append(p, [(None, m.ts, event.clone())])?;
    // One encoding shared by every feed: cloning an `IVec` this size only
    // bumps a reference count.
    let event = IVec::from(codec::event(m.ts, &event)?);
    for user in &recipients {
        let b = known.bounds(p.tree, user)?;
        feed::append(p, b, user, event.clone(), out.trim)?;
    }
    Ok((Sent::New(message), recipients))
}

/// Applied in field order, like `MemoryStore` does.
fn commit(
    p: &mut Batch<'_>,
    known: &mut Known,
    changes: &Changes,
    events: &[(UserId, IVec)],
) -> Result<()> {
    for u in &changes.users {
        p.insert(keys::user(&u.id), codec::json(u)?);
    }
    for (owner, change) in &changes.contacts {
        match change {
            ContactChange::Put(c) => {
                p.insert(keys::owner_contact(owner, &c.id), codec::json(c)?);
                p.insert(keys::contact_owner(&c.id, owner), Vec::new());
            }
            ContactChange::Remove(id) => {
                p.remove(keys::owner_contact(owner, id));
                p.remove(keys::contact_owner(id, owner));
            }
        }
    }
    for g in &changes.groups {
        p.insert(keys::group(&g.id), codec::json(g)?);
    }
    for (group, change) in &changes.members {
        if rooms::is_room(p, group)? {
            rooms::change(p, group, change)?;
            continue;
        }
        match change {
            MemberChange::Put(m) => p.insert(keys::group_user(group, &m.id), codec::json(m)?),
            MemberChange::Remove(id) => p.remove(keys::group_user(group, id)),
        }
    }
    for (user, change) in &changes.entries {
        match change {
            EntryChange::Put(e) => {
                index::put_entry(p, known, user, &e.conversation, |_| e.read_seq, e.activity)?
            }
            EntryChange::Remove(c) => index::remove_entry(p, known, user, c)?,
            EntryChange::Read { conversation, seq } => {
                let key = keys::user_conv(user, &keys::conv(conversation));
                if let Some(mut e) = p.entry(&key)?
                    && e.read_seq < *seq
                {
                    e.read_seq = *seq;
                    p.put_entry(key, e);
                }
            }
        }
    }
    for (user, event) in events {
        let b = known.bounds(p.tree, user)?;
        feed::append(p, b, user, event.clone(), changes.trim)?;
    }
    fire::append(p, fire_events(changes))?;
    for (set, change) in &changes.marks {
        match change {
            MarkChange::Put(m) => {
                p.insert(keys::mark(set, &m.user), m.since.to_be_bytes().to_vec())
            }
            MarkChange::Remove(user) => p.remove(keys::mark(set, user)),
        }
    }
    for user in &changes.erase {
        p.remove(keys::user(user));
        let b = known.bounds(p.tree, user)?;
        feed::clear(p, b, user);
    }
    Ok(())
}

/// A join or a leave, decided on the members as they are under the lock.
fn update_member(
    p: &mut Batch<'_>,
    known: &mut Known,
    u: &MemberUpdate,
) -> Result<(Updated, Vec<UserId>)> {
    if u.kind == GroupKind::Room {
        return Ok((rooms::update_member(p, u)?, Vec::new()));
    }
    let conversation = ConversationId::group(u.group.clone());
    let mut members = member_ids(p, &u.group)?;
    let (user, change) = match &u.change {
        MemberChange::Put(m) => {
            if members.contains(&m.id) {
                return Ok((Updated::Unchanged, Vec::new()));
            }
            if p.get(&keys::mark(&Marks::Bans(u.group.clone()), &m.id))?
                .is_some()
            {
                return Ok((Updated::Banned, Vec::new()));
            }
            if members.len() >= u.max_members {
                return Ok((Updated::Full, Vec::new()));
            }
            p.insert(keys::group_user(&u.group, &m.id), codec::json(m)?);
            // Unread starts after the last message committed before it.
            index::put_entry(p, known, &m.id, &conversation, |s| s.last_seq, u.at)?;
            members.push(m.id.clone());
            (&m.id, Membership::Joined)
        }
        MemberChange::Remove(id) => {
            if !members.contains(id) {
                return Ok((Updated::Unchanged, Vec::new()));
            }
            p.remove(keys::group_user(&u.group, id));
            index::remove_entry(p, known, id, &conversation)?;
            (id, Membership::Left)
        }
    };
    // Every member hears of it, the one who joined or left included.
    let event = Event::member(&u.group, user, change);
    fire::append(p, [(None, u.at, event.clone())])?;
    let event = IVec::from(codec::event(u.at, &event)?);
    for member in &members {
        let b = known.bounds(p.tree, member)?;
        feed::append(p, b, member, event.clone(), u.trim)?;
    }
    Ok((Updated::Changed, members))
}
