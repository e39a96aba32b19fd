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
        // One spelling per cursor, the one `Display` writes: lower-case hex,
        // and a position without leading zeros (`from_str_radix` and `parse`
        // would also take a `+`, upper case and leading zeros).
        if epoch.len() != 16
            || !epoch
                .bytes()
                .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
            || pos.is_empty()
            || !pos.bytes().all(|b| b.is_ascii_digit())
            || (pos.len() > 1 && pos.starts_with('0'))
        {
            return Err(bad());
        }
        Ok(Self {
            epoch: Epoch(u64::from_str_radix(epoch, 16).map_err(|_| bad())?),
            pos: pos.parse().map_err(|_| bad())?,
        })
    }
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
