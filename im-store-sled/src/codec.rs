//! Value encodings (see the table in [`keys`](crate::keys)).
//!
//! Records are JSON, as im-engine derives it. The small values on the send
//! path (index entries, feed bounds, counters) are fixed-size big-endian
//! numbers: a send to a large group touches one of each per member, so they
//! cost a copy, not a parse.

use im_engine::{ConvEntry, ConversationId, Event, FeedEntry, Seq, Timestamp};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::{Error, Result};

/// Encodes a record.
pub(crate) fn json<T: Serialize>(value: &T) -> Result<Vec<u8>> {
    serde_json::to_vec(value).map_err(Error::Encode)
}

/// Decodes a record read from `tree`.
pub(crate) fn from_json<T: DeserializeOwned>(tree: &str, bytes: &[u8]) -> Result<T> {
    serde_json::from_slice(bytes)
        .map_err(|e| Error::Corrupt(format!("undecodable value in {tree}: {e}")))
}

fn fixed<const N: usize>(tree: &str, bytes: &[u8]) -> Result<[u8; N]> {
    bytes.try_into().map_err(|_| {
        Error::Corrupt(format!(
            "value in {tree} is {} bytes, expected {N}",
            bytes.len()
        ))
    })
}

/// Decodes a `u64` BE read from `tree`.
pub(crate) fn to_u64(tree: &str, bytes: &[u8]) -> Result<u64> {
    fixed(tree, bytes).map(u64::from_be_bytes)
}

/// Decodes a `u32` BE read from `tree`.
pub(crate) fn to_u32(tree: &str, bytes: &[u8]) -> Result<u32> {
    fixed(tree, bytes).map(u32::from_be_bytes)
}

fn pair(a: u64, b: u64) -> [u8; 16] {
    let mut v = [0; 16];
    v[..8].copy_from_slice(&a.to_be_bytes());
    v[8..].copy_from_slice(&b.to_be_bytes());
    v
}

fn unpair(tree: &str, bytes: &[u8]) -> Result<(u64, u64)> {
    let v: [u8; 16] = fixed(tree, bytes)?;
    let (a, b) = v.split_at(8);
    Ok((
        u64::from_be_bytes(a.try_into().expect("8 bytes")),
        u64::from_be_bytes(b.try_into().expect("8 bytes")),
    ))
}

/// A conversation index entry without its conversation, which is in the key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Entry {
    pub(crate) read_seq: Seq,
    pub(crate) activity: Timestamp,
}

impl Entry {
    pub(crate) fn encode(self) -> [u8; 16] {
        pair(self.read_seq, self.activity)
    }

    pub(crate) fn decode(bytes: &[u8]) -> Result<Self> {
        let (read_seq, activity) = unpair(crate::keys::tree::USERCONV_ENTRY, bytes)?;
        Ok(Self { read_seq, activity })
    }

    pub(crate) fn from_conv_entry(e: &ConvEntry) -> Self {
        Self {
            read_seq: e.read_seq,
            activity: e.activity,
        }
    }

    pub(crate) fn into_conv_entry(self, conversation: ConversationId) -> ConvEntry {
        ConvEntry {
            conversation,
            read_seq: self.read_seq,
            activity: self.activity,
        }
    }
}

/// A feed's bounds: its newest position and the highest one trimmed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Bounds {
    pub(crate) head: u64,
    pub(crate) trimmed: u64,
}

impl Bounds {
    pub(crate) fn encode(self) -> [u8; 16] {
        pair(self.head, self.trimmed)
    }

    pub(crate) fn decode(bytes: &[u8]) -> Result<Self> {
        let (head, trimmed) = unpair(crate::keys::tree::USER_FEEDBOUNDS, bytes)?;
        if trimmed > head {
            return Err(Error::Corrupt(format!(
                "feed trimmed past its head ({trimmed} > {head})"
            )));
        }
        Ok(Self { head, trimmed })
    }
}

/// A feed event: its time, then the event as JSON.
pub(crate) fn event(ts: Timestamp, event: &Event) -> Result<Vec<u8>> {
    let mut v = ts.to_be_bytes().to_vec();
    serde_json::to_writer(&mut v, event).map_err(Error::Encode)?;
    Ok(v)
}

/// The time of an encoded feed event.
pub(crate) fn event_ts(bytes: &[u8]) -> Result<Timestamp> {
    let ts = bytes.get(..8).ok_or_else(|| {
        Error::Corrupt(format!(
            "value in {} is too short",
            crate::keys::tree::USERPOS_EVENT
        ))
    })?;
    to_u64(crate::keys::tree::USERPOS_EVENT, ts)
}

/// Decodes a feed event stored at `pos`.
pub(crate) fn feed_entry(pos: u64, bytes: &[u8]) -> Result<FeedEntry> {
    let ts = event_ts(bytes)?;
    let event = from_json(crate::keys::tree::USERPOS_EVENT, &bytes[8..])?;
    Ok(FeedEntry { pos, ts, event })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_values_round_trip() {
        let e = Entry {
            read_seq: 7,
            activity: 1_700_000_000_000,
        };
        assert_eq!(Entry::decode(&e.encode()).unwrap(), e);
        let b = Bounds {
            head: 9,
            trimmed: 3,
        };
        assert_eq!(Bounds::decode(&b.encode()).unwrap(), b);
        assert!(matches!(Entry::decode(b"short"), Err(Error::Corrupt(_))));
        let inverted = Bounds {
            head: 1,
            trimmed: 2,
        };
        assert!(matches!(
            Bounds::decode(&inverted.encode()),
            Err(Error::Corrupt(_))
        ));

        let ev = Event::Read {
            conversation: "group:g".parse().unwrap(),
            seq: 4,
        };
        let bytes = event(42, &ev).unwrap();
        assert_eq!(event_ts(&bytes).unwrap(), 42);
        let entry = feed_entry(5, &bytes).unwrap();
        assert_eq!((entry.pos, entry.ts, entry.event), (5, 42, ev));
        assert!(matches!(feed_entry(1, b"1234"), Err(Error::Corrupt(_))));
    }
}
