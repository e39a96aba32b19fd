//! The firehose: one log of every event once, appended in the batch of the
//! write that committed them (see the key table in `keys`).

use im_engine::{Event, FireEntry, Firehose, Timestamp, UserId};

use crate::codec;
use crate::error::{Error, Result};
use crate::keys::{self, kind};
use crate::write::Batch;

/// The position of a firehose key.
fn pos_of(key: &[u8]) -> Result<u64> {
    key.get(1..)
        .and_then(|b| <[u8; 8]>::try_from(b).ok())
        .map(u64::from_be_bytes)
        .ok_or_else(|| {
            Error::Corrupt(format!(
                "bad key in {}: {key:?}",
                kind::name(kind::POS_FIRE)
            ))
        })
}

/// The firehose's head: its last key.
fn head(tree: &sled::Tree) -> Result<u64> {
    match tree.scan_prefix([kind::POS_FIRE]).next_back().transpose()? {
        Some((key, _)) => pos_of(&key),
        None => Ok(0),
    }
}

/// Appends `events` to the firehose in this batch (the head is read from
/// the tree once per batch, then kept in it).
pub(crate) fn append(
    p: &mut Batch<'_>,
    events: impl IntoIterator<Item = (Option<UserId>, Timestamp, Event)>,
) -> Result<()> {
    let mut pos = match p.fire_head {
        Some(pos) => pos,
        None => head(p.tree)?,
    };
    for (user, ts, event) in events {
        pos += 1;
        let entry = FireEntry {
            pos,
            ts,
            user,
            event,
        };
        p.insert(keys::fire(pos), codec::json(&entry)?);
    }
    p.fire_head = Some(pos);
    Ok(())
}

/// Up to `limit` entries after `after`, with the head.
pub(crate) fn read(tree: &sled::Tree, after: u64, limit: usize) -> Result<Firehose> {
    let head = head(tree)?;
    let from = keys::fire(after.saturating_add(1));
    let entries = tree
        .range(from..)
        .take_while(|kv| {
            kv.as_ref()
                .map_or(true, |(k, _)| k.first() == Some(&kind::POS_FIRE))
        })
        .take(limit)
        .map(|kv| codec::from_json(kind::POS_FIRE, &kv?.1))
        .collect::<Result<Vec<FireEntry>>>()?;
    Ok(Firehose {
        head: head.max(entries.last().map_or(0, |e| e.pos)),
        entries,
    })
}
