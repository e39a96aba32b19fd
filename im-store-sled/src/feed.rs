//! Feeds: their bounds read from their keys, appending with retention, and
//! reading a page as it was at one moment.
//!
//! Positions are dense from `trimmed + 1` to `head`: appends take the next
//! position and trims drop the oldest. A feed key holds the event at its
//! position, or a run of events at consecutive positions from it (see
//! [`codec::feed_value`]): a batch of combined writes (`combine`) appends
//! every event it adds to one feed as one key, not one key per event. So the
//! first key of a feed says what was trimmed and the last, with the length
//! of its run, where the head is, and no bounds record needs a write per
//! append. A feed trimmed to nothing keeps its head in `user_feedfloor`.
//!
//! While a batch runs, what it does to each feed is kept in a [`Draft`]
//! (events added, how far trimmed); [`land`] turns the drafts into keys
//! when the batch is applied: one key for the events added, the stored keys
//! trimmed removed, and a run a trim cuts rewritten as its remainder.

use std::collections::HashMap;

use im_engine::store::FeedTrim;
use im_engine::{Feed, Timestamp, UserId};
use sled::IVec;

use crate::codec::{self, Bounds};
use crate::error::{Error, Result};
use crate::keys::{self, kind};
use crate::write::Batch;

fn corrupt_key(key: &[u8]) -> Error {
    Error::Corrupt(format!(
        "bad key in {}: {key:?}",
        kind::name(kind::USERPOS_EVENT)
    ))
}

/// The position in a feed key of `user`.
fn pos_of(user: &UserId, key: &[u8]) -> Result<u64> {
    keys::decode_user_pos(key)
        .filter(|(owner, pos)| owner == user && *pos > 0)
        .map(|(_, pos)| pos)
        .ok_or_else(|| corrupt_key(key))
}

/// The bounds of `user`'s feed as its keys (or its floor) say. Reads the
/// first key, then the last: a concurrent write can fall in between, which
/// [`read`] allows for.
pub(crate) fn bounds(tree: &sled::Tree, user: &UserId) -> Result<Bounds> {
    let mut feed = tree.scan_prefix(keys::prefix(kind::USERPOS_EVENT, user.as_str()));
    let Some(first) = feed.next().transpose()? else {
        return Ok(match tree.get(keys::feed_floor(user))? {
            Some(v) => {
                let head = codec::to_u64(kind::name(kind::USER_FEEDFLOOR), &v)?;
                Bounds {
                    head,
                    trimmed: head,
                }
            }
            None => Bounds::default(),
        });
    };
    let first_pos = pos_of(user, &first.0)?;
    let (last, value) = match feed.next_back().transpose()? {
        Some(last) => last,
        None => first,
    };
    let head = pos_of(user, &last)? + codec::feed_len(&value)? - 1;
    Ok(Bounds {
        head,
        trimmed: first_pos - 1,
    })
}

/// Up to `limit` events of `user`'s feed after `after`, with its bounds,
/// as they were at one moment.
///
/// Reads the bounds, then the events, then the bounds again. Appends only
/// add positions past the head and trims only drop the oldest, so when
/// `trimmed` is the same both times, nothing was dropped in between: the
/// bounds first read (each part of which held at its reading) and the
/// events are the feed as it was when the head was read. When `trimmed`
/// moved, it reads again.
pub(crate) fn read(tree: &sled::Tree, user: &UserId, after: u64, limit: usize) -> Result<Feed> {
    let mut b = bounds(tree, user)?;
    loop {
        let start = after.max(b.trimmed).saturating_add(1);
        let want = if start > b.head {
            0
        } else {
            (b.head - start + 1).min(u64::try_from(limit).unwrap_or(u64::MAX))
        };
        let mut entries = Vec::new();
        if want > 0 {
            let end = start + want - 1;
            // The key holding `start` is the last one at or before it.
            let lo = keys::prefix(kind::USERPOS_EVENT, user.as_str());
            let from = match tree.range(lo..=keys::user_pos(user, start)).next_back() {
                Some(kv) => kv?.0.to_vec(),
                None => keys::user_pos(user, start),
            };
            for kv in tree.range(from..=keys::user_pos(user, end)) {
                let (k, v) = kv?;
                let first = pos_of(user, &k)?;
                for (pos, event) in (first..).zip(codec::feed_events(&v)?) {
                    if (start..=end).contains(&pos) {
                        entries.push(codec::feed_entry(pos, event)?);
                    }
                }
            }
        }
        let again = bounds(tree, user)?;
        if again.trimmed == b.trimmed {
            if entries.len() as u64 != want {
                return Err(Error::Corrupt(format!(
                    "feed of {user} misses events between {} and {}",
                    b.trimmed, b.head
                )));
            }
            return Ok(Feed {
                trimmed: b.trimmed,
                head: b.head,
                entries,
            });
        }
        b = again;
    }
}

/// What a batch does to one feed.
#[derive(Debug)]
struct Draft {
    user: UserId,
    /// The feed's bounds as stored when the batch first touched it.
    stored: Bounds,
    /// Events added, at `stored.head + 1` on.
    added: Vec<IVec>,
    /// The highest position trimmed once the batch lands.
    trimmed: u64,
}

/// What a batch does to every feed it touches, and how to undo the write
/// running now.
#[derive(Debug, Default)]
pub(crate) struct Drafts {
    by_user: HashMap<UserId, usize>,
    drafts: Vec<Draft>,
    /// Per change of the write running now: the draft, its events and its
    /// trimmed position before it.
    undo: Vec<(usize, usize, u64)>,
}

impl Drafts {
    pub(crate) fn is_empty(&self) -> bool {
        self.drafts.is_empty()
    }

    pub(crate) fn begin(&mut self) {
        self.undo.clear();
    }

    pub(crate) fn undo(&mut self) {
        for (i, added, trimmed) in self.undo.drain(..).rev() {
            let d = &mut self.drafts[i];
            d.added.truncate(added);
            d.trimmed = trimmed;
        }
    }

    /// The draft of `user`'s feed, whose bounds are `b`, its state noted
    /// for [`Drafts::undo`].
    fn draft(&mut self, user: &UserId, b: Bounds) -> &mut Draft {
        let i = match self.by_user.get(user) {
            Some(&i) => i,
            None => {
                self.drafts.push(Draft {
                    user: user.clone(),
                    stored: b,
                    added: Vec::new(),
                    trimmed: b.trimmed,
                });
                self.by_user.insert(user.clone(), self.drafts.len() - 1);
                self.drafts.len() - 1
            }
        };
        let d = &mut self.drafts[i];
        self.undo.push((i, d.added.len(), d.trimmed));
        d
    }
}

/// Writes what the batch's drafts did to its feeds as keys.
pub(crate) fn land(p: &mut Batch<'_>) -> Result<()> {
    let tree = p.tree;
    for d in std::mem::take(&mut p.feeds.drafts) {
        let Draft {
            user,
            stored,
            added,
            trimmed,
        } = d;
        if trimmed > stored.trimmed && stored.head > stored.trimmed {
            let range = keys::user_pos(&user, stored.trimmed + 1)
                ..=keys::user_pos(&user, trimmed.min(stored.head));
            for kv in tree.range(range) {
                let (k, v) = kv?;
                p.remove(k.to_vec());
                let pos = pos_of(&user, &k)?;
                let events = codec::feed_events(&v)?;
                let kept = usize::try_from((trimmed + 1).saturating_sub(pos)).unwrap_or(usize::MAX);
                if let Some(rest) = events.get(kept..).filter(|rest| !rest.is_empty()) {
                    p.insert(keys::user_pos(&user, trimmed + 1), codec::feed_value(rest));
                }
            }
        }
        let first = stored.head + 1;
        let skip = usize::try_from(trimmed.saturating_sub(stored.head)).unwrap_or(usize::MAX);
        if let Some(rest) = added.get(skip..).filter(|rest| !rest.is_empty()) {
            let rest: Vec<&[u8]> = rest.iter().map(|e| &e[..]).collect();
            p.insert(
                keys::user_pos(&user, first.max(trimmed + 1)),
                codec::feed_value(&rest),
            );
        }
    }
    p.feeds = Drafts::default();
    Ok(())
}

/// The time of the event at `pos` of `user`'s feed as `d` leaves it.
fn ts_at(tree: &sled::Tree, d: &Draft, pos: u64) -> Result<Timestamp> {
    let missing = || Error::Corrupt(format!("feed of {} misses position {pos}", d.user));
    if pos > d.stored.head {
        let i = usize::try_from(pos - d.stored.head - 1).unwrap_or(usize::MAX);
        return codec::event_ts(d.added.get(i).ok_or_else(missing)?);
    }
    let lo = keys::prefix(kind::USERPOS_EVENT, d.user.as_str());
    let (k, v) = tree
        .range(lo..=keys::user_pos(&d.user, pos))
        .next_back()
        .transpose()?
        .ok_or_else(missing)?;
    let first = pos_of(&d.user, &k)?;
    let events = codec::feed_events(&v)?;
    let i = usize::try_from(pos - first).unwrap_or(usize::MAX);
    codec::event_ts(events.get(i).ok_or_else(missing)?)
}

/// Drops every event of `user`'s feed, whose bounds are `b`, keeping its
/// head in its floor.
pub(crate) fn clear(p: &mut Batch<'_>, b: &mut Bounds, user: &UserId) {
    p.feeds.draft(user, *b).trimmed = b.head;
    b.trimmed = b.head;
    p.insert(keys::feed_floor(user), b.head.to_be_bytes().to_vec());
}

/// Appends an encoded event to `user`'s feed, whose bounds are `b`, then
/// applies `trim`: drops the oldest events while the feed holds more than
/// `keep` or the oldest is older than `min_ts`. A feed trimmed to nothing
/// records its head in its floor.
pub(crate) fn append(
    p: &mut Batch<'_>,
    b: &mut Bounds,
    user: &UserId,
    event: IVec,
    trim: FeedTrim,
) -> Result<()> {
    let tree = p.tree;
    let d = p.feeds.draft(user, *b);
    d.added.push(event);
    b.head += 1;
    b.trimmed = b.trimmed.max(b.head.saturating_sub(trim.keep));
    if trim.min_ts != 0 {
        while b.trimmed < b.head && ts_at(tree, d, b.trimmed + 1)? < trim.min_ts {
            b.trimmed += 1;
        }
    }
    d.trimmed = b.trimmed;
    if b.trimmed == b.head {
        p.insert(keys::feed_floor(user), b.head.to_be_bytes().to_vec());
    }
    Ok(())
}
