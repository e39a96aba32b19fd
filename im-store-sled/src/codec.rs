//! Value encodings (see the table in [`keys`](crate::keys)).
//!
//! Records are JSON, as im-engine derives it. The small values on the send
//! path (conversation state, index entries, counters) are fixed-size
//! big-endian numbers: they cost a copy, not a parse.

use im_engine::{ConvEntry, ConversationId, Event, FeedEntry, Seq, Timestamp};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::{Error, Result};
use crate::keys::kind;

/// Encodes a record.
pub(crate) fn json<T: Serialize>(value: &T) -> Result<Vec<u8>> {
    serde_json::to_vec(value).map_err(Error::Encode)
}

/// Decodes a record of `kind`.
pub(crate) fn from_json<T: DeserializeOwned>(kind: u8, bytes: &[u8]) -> Result<T> {
    serde_json::from_slice(bytes)
        .map_err(|e| Error::Corrupt(format!("undecodable value in {}: {e}", kind::name(kind))))
}

/// Decodes `N` numbers (`u32` or `u64` BE) stored under `what`.
fn numbers<const N: usize, T, const W: usize>(
    what: &str,
    bytes: &[u8],
    from_be: fn([u8; W]) -> T,
) -> Result<[T; N]>
where
    T: Copy + Default,
{
    if bytes.len() != N * W {
        return Err(Error::Corrupt(format!(
            "value in {what} is {} bytes, expected {}",
            bytes.len(),
            N * W
        )));
    }
    let mut out = [T::default(); N];
    for (value, chunk) in out.iter_mut().zip(bytes.chunks_exact(W)) {
        *value = from_be(chunk.try_into().expect("W bytes"));
    }
    Ok(out)
}

/// Decodes a `u64` BE stored under `what` (a tree or kind name).
pub(crate) fn to_u64(what: &str, bytes: &[u8]) -> Result<u64> {
    numbers(what, bytes, u64::from_be_bytes).map(|[v]| v)
}

/// Decodes a `u32` BE stored under `what`.
pub(crate) fn to_u32(what: &str, bytes: &[u8]) -> Result<u32> {
    numbers(what, bytes, u32::from_be_bytes).map(|[v]| v)
}

/// Decodes `N` `u64` BE stored under `what`.
pub(crate) fn to_u64s<const N: usize>(what: &str, bytes: &[u8]) -> Result<[u64; N]> {
    numbers(what, bytes, u64::from_be_bytes)
}

/// `values` as `u64` BE, one after the other, in `B = 8 N` bytes.
fn from_u64s<const N: usize, const B: usize>(values: [u64; N]) -> [u8; B] {
    const { assert!(B == 8 * N) };
    let mut v = [0; B];
    for (chunk, value) in v.chunks_exact_mut(8).zip(values) {
        chunk.copy_from_slice(&value.to_be_bytes());
    }
    v
}

/// A conversation index entry without its conversation, which is in the
/// key. Its activity is its own only until the conversation's activity
/// moves past `since` (see [`keys`](crate::keys)).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Entry {
    pub(crate) read_seq: Seq,
    pub(crate) activity: Timestamp,
    /// The conversation's `last_seq` when `activity` was written.
    pub(crate) since: Seq,
}

impl Entry {
    pub(crate) fn encode(self) -> [u8; 24] {
        from_u64s([self.read_seq, self.activity, self.since])
    }

    pub(crate) fn decode(bytes: &[u8]) -> Result<Self> {
        let [read_seq, activity, since] = to_u64s(kind::name(kind::USERCONV_ENTRY), bytes)?;
        Ok(Self {
            read_seq,
            activity,
            since,
        })
    }

    /// The entry as the engine sees it, with the activity `state` gives it.
    pub(crate) fn into_conv_entry(
        self,
        conversation: ConversationId,
        state: &ConvState,
    ) -> ConvEntry {
        ConvEntry {
            conversation,
            read_seq: self.read_seq,
            activity: if state.activity_seq > self.since {
                state.activity
            } else {
                self.activity
            },
        }
    }
}

/// What a conversation keeps for itself: its newest seq, the activity of
/// the last send that reached every holder of an entry, and how many
/// entries it has.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct ConvState {
    pub(crate) last_seq: Seq,
    /// The time of the last send that reached every holder…
    pub(crate) activity: Timestamp,
    /// …and its seq (0: none yet).
    pub(crate) activity_seq: Seq,
    /// How many users have an index entry for the conversation.
    pub(crate) holders: u64,
}

impl ConvState {
    pub(crate) fn encode(self) -> [u8; 32] {
        from_u64s([
            self.last_seq,
            self.activity,
            self.activity_seq,
            self.holders,
        ])
    }

    pub(crate) fn decode(bytes: &[u8]) -> Result<Self> {
        let [last_seq, activity, activity_seq, holders] =
            to_u64s(kind::name(kind::CONV_STATE), bytes)?;
        if activity_seq > last_seq {
            return Err(Error::Corrupt(format!(
                "conversation activity at seq {activity_seq} past its last seq {last_seq}"
            )));
        }
        Ok(Self {
            last_seq,
            activity,
            activity_seq,
            holders,
        })
    }
}

/// A feed's bounds: its newest position and the highest one trimmed. Not
/// stored: derived from the feed's keys (see [`keys`](crate::keys)).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Bounds {
    pub(crate) head: u64,
    pub(crate) trimmed: u64,
}

/// A feed event: its time, then the event as JSON.
pub(crate) fn event(ts: Timestamp, event: &Event) -> Result<Vec<u8>> {
    let mut v = ts.to_be_bytes().to_vec();
    serde_json::to_writer(&mut v, event).map_err(Error::Encode)?;
    Ok(v)
}

/// The time of an encoded feed event.
pub(crate) fn event_ts(bytes: &[u8]) -> Result<Timestamp> {
    let name = kind::name(kind::USERPOS_EVENT);
    let ts = bytes
        .get(..8)
        .ok_or_else(|| Error::Corrupt(format!("value in {name} is too short")))?;
    to_u64(name, ts)
}

/// The byte after the time that marks a run of events; a single event has
/// its JSON there, which is an object (`{`).
const RUN: u8 = 0;

/// A feed key's value holding `events` (each encoded by [`event`]), at
/// consecutive positions from the key's: a single event as it is, more as a
/// run: `ts u64 | 0x00 | count u32 | (len u32 | event)*`, the time first
/// being the first event's.
pub(crate) fn feed_value(events: &[&[u8]]) -> Vec<u8> {
    if let [one] = events {
        return one.to_vec();
    }
    let len = events.iter().map(|e| e.len() + 4).sum::<usize>();
    let mut v = Vec::with_capacity(13 + len);
    v.extend_from_slice(events.first().map_or(&[0; 8][..], |e| &e[..8.min(e.len())]));
    v.push(RUN);
    v.extend_from_slice(
        &u32::try_from(events.len())
            .unwrap_or(u32::MAX)
            .to_be_bytes(),
    );
    for e in events {
        v.extend_from_slice(&u32::try_from(e.len()).unwrap_or(u32::MAX).to_be_bytes());
        v.extend_from_slice(e);
    }
    v
}

fn bad_run() -> Error {
    Error::Corrupt(format!(
        "bad run of events in {}",
        kind::name(kind::USERPOS_EVENT)
    ))
}

/// The header of a run: its count and the rest, or `None` for a single
/// event.
fn run(bytes: &[u8]) -> Result<Option<(u32, &[u8])>> {
    match bytes.get(8) {
        Some(&RUN) => {
            let count = bytes.get(9..13).ok_or_else(bad_run)?;
            let count = u32::from_be_bytes(count.try_into().expect("4 bytes"));
            Ok(Some((count, &bytes[13..])))
        }
        _ => Ok(None),
    }
}

/// How many events a feed key's value holds.
pub(crate) fn feed_len(bytes: &[u8]) -> Result<u64> {
    Ok(run(bytes)?.map_or(1, |(count, _)| u64::from(count)))
}

/// The events (each as [`event`] encodes it) a feed key's value holds.
pub(crate) fn feed_events(bytes: &[u8]) -> Result<Vec<&[u8]>> {
    let Some((count, mut rest)) = run(bytes)? else {
        return Ok(vec![bytes]);
    };
    if count < 2 {
        return Err(bad_run());
    }
    let mut events = Vec::with_capacity(count.min(1 << 16) as usize);
    for _ in 0..count {
        let len = rest.get(..4).ok_or_else(bad_run)?;
        let len = u32::from_be_bytes(len.try_into().expect("4 bytes")) as usize;
        let event = rest
            .get(4..)
            .and_then(|r| r.get(..len))
            .ok_or_else(bad_run)?;
        events.push(event);
        rest = &rest[4 + len..];
    }
    // Each event has its time, and the run's is its first event's.
    if !rest.is_empty()
        || events.iter().any(|e| e.len() < 8)
        || events.first().map(|e| &e[..8]) != bytes.get(..8)
    {
        return Err(bad_run());
    }
    Ok(events)
}

/// Decodes a feed event stored at `pos`.
pub(crate) fn feed_entry(pos: u64, bytes: &[u8]) -> Result<FeedEntry> {
    let ts = event_ts(bytes)?;
    let event = from_json(kind::USERPOS_EVENT, &bytes[8..])?;
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
            since: 9,
        };
        assert_eq!(Entry::decode(&e.encode()).unwrap(), e);
        let s = ConvState {
            last_seq: 9,
            activity: 5,
            activity_seq: 8,
            holders: 3,
        };
        assert_eq!(ConvState::decode(&s.encode()).unwrap(), s);
        assert!(matches!(Entry::decode(b"short"), Err(Error::Corrupt(_))));
        let ahead = ConvState {
            activity_seq: 10,
            ..s
        };
        assert!(matches!(
            ConvState::decode(&ahead.encode()),
            Err(Error::Corrupt(_))
        ));
        assert_eq!(to_u32("meta", &7u32.to_be_bytes()).unwrap(), 7);
        assert!(matches!(to_u64("meta", &[1, 2]), Err(Error::Corrupt(_))));

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

    #[test]
    fn an_entry_takes_the_conversations_activity_once_it_moved_on() {
        let e = Entry {
            read_seq: 0,
            activity: 100,
            since: 4,
        };
        let c: ConversationId = "group:g".parse().unwrap();
        let mut s = ConvState {
            last_seq: 4,
            activity: 50,
            activity_seq: 4,
            holders: 2,
        };
        assert_eq!(e.into_conv_entry(c.clone(), &s).activity, 100);
        s.last_seq = 5;
        s.activity_seq = 5;
        s.activity = 120;
        assert_eq!(e.into_conv_entry(c, &s).activity, 120);
    }
}
