//! Cursors into a feed, and where a read starts.

use std::fmt;
use std::str::FromStr;

use serde::Serialize;

use crate::data::Epoch;
use crate::error::Error;

/// A position in a user's feed, in a given store: the `id:` of an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub struct Cursor {
    /// The store's epoch.
    pub epoch: Epoch,
    /// The feed position of the event it follows.
    pub pos: u64,
}

impl fmt::Display for Cursor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}-{}", self.epoch.0, self.pos)
    }
}

impl FromStr for Cursor {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Error> {
        let bad = || Error::Invalid("malformed event cursor".into());
        let (epoch, pos) = s.split_once('-').ok_or_else(bad)?;
        Ok(Self {
            epoch: parse_epoch(epoch).ok_or_else(bad)?,
            pos: parse_pos(pos).ok_or_else(bad)?,
        })
    }
}

/// A cursor's epoch in its one spelling, the one `Display` writes: 16
/// lower-case hex digits (`from_str_radix` alone would also take a `+` and
/// upper case).
pub(crate) fn parse_epoch(s: &str) -> Option<Epoch> {
    if s.len() != 16 || !s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        return None;
    }
    u64::from_str_radix(s, 16).ok().map(Epoch)
}

/// A position in its one spelling: decimal digits without leading zeros
/// (`parse` alone would also take a `+` and leading zeros).
pub(crate) fn parse_pos(s: &str) -> Option<u64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) || (s.len() > 1 && s.starts_with('0'))
    {
        return None;
    }
    s.parse().ok()
}

/// Where a stream starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub enum Start {
    /// With the events after now only.
    Live,
    /// From the oldest event kept (`?after=0`).
    Oldest,
    /// After this cursor.
    After(Cursor),
}

impl FromStr for Start {
    type Err = Error;

    /// `"0"` is [`Start::Oldest`]; anything else must be a cursor.
    fn from_str(s: &str) -> Result<Self, Error> {
        if s == "0" {
            Ok(Self::Oldest)
        } else {
            s.parse().map(Self::After)
        }
    }
}

/// Why a stream starts over from the oldest event kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ResetReason {
    /// The cursor points before the oldest event kept.
    Expired,
    /// The cursor is from another (or a wiped) store.
    Unknown,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cursor_has_one_spelling() {
        let c: Cursor = "00000000000000ff-42".parse().unwrap();
        assert_eq!((c.epoch, c.pos), (Epoch(255), 42));
        assert_eq!(c.to_string(), "00000000000000ff-42");
        let zero: Cursor = "00000000000000ff-0".parse().unwrap();
        assert_eq!(zero.to_string(), "00000000000000ff-0");
        for bad in [
            "+0000000000000ff-42",
            "00000000000000ff-+42",
            "00000000000000f-42",
            "00000000000000fg-42",
            "00000000000000ff-",
            "00000000000000ff",
            "00000000000000ff-4 2",
            "00000000000000ff-18446744073709551616",
            "00000000000000FF-42",
            "00000000000000ff-042",
        ] {
            assert!(bad.parse::<Cursor>().is_err(), "{bad} parsed");
        }
    }
}
