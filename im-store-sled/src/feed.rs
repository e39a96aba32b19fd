//! Feeds: their bounds read from their keys, appending with retention, and
//! reading a page as it was at one moment.
//!
//! Positions are dense from `trimmed + 1` to `head`: appends take the next
//! position and trims drop the oldest. So the first key of a feed says what
//! was trimmed and the last says where the head is, and no bounds record
//! needs a write per append. A feed trimmed to nothing keeps its head in
//! `user_feedfloor`.

use im_engine::store::FeedTrim;
use im_engine::{Feed, UserId};
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
    let first = pos_of(user, &first.0)?;
    let head = match feed.next_back().transpose()? {
        Some((last, _)) => pos_of(user, &last)?,
        None => first,
    };
    Ok(Bounds {
        head,
        trimmed: first - 1,
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
            let range = keys::user_pos(user, start)..=keys::user_pos(user, start + want - 1);
            for kv in tree.range(range) {
                let (k, v) = kv?;
                entries.push(codec::feed_entry(pos_of(user, &k)?, &v)?);
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

/// Drops every event of `user`'s feed, whose bounds are `b`, keeping its
/// head in its floor.
pub(crate) fn clear(p: &mut Batch<'_>, b: &mut Bounds, user: &UserId) {
    for pos in b.trimmed + 1..=b.head {
        p.remove(keys::user_pos(user, pos));
    }
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
    b.head += 1;
    p.insert(keys::user_pos(user, b.head), event);
    while b.trimmed < b.head {
        let oldest = b.trimmed + 1;
        let oldest_key = keys::user_pos(user, oldest);
        if b.head - b.trimmed <= trim.keep {
            if trim.min_ts == 0 {
                break;
            }
            let v = p.get(&oldest_key)?.ok_or_else(|| {
                Error::Corrupt(format!("feed of {user} misses position {oldest}"))
            })?;
            if codec::event_ts(&v)? >= trim.min_ts {
                break;
            }
        }
        p.remove(oldest_key);
        b.trimmed = oldest;
    }
    if b.trimmed == b.head {
        p.insert(keys::feed_floor(user), b.head.to_be_bytes().to_vec());
    }
    Ok(())
}
