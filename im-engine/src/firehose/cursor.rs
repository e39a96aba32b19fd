//! Cursors into the firehose: the store's epoch and a position in each
//! partition.

use std::fmt;
use std::str::FromStr;

use crate::data::Epoch;
use crate::error::Error;
use crate::feed::{parse_epoch, parse_pos};

/// A position in the firehose of a given store: the `id:` of a firehose
/// event. Spelled `<epoch as 16 hex digits>-<p0>[.<p1>…]`, one position per
/// partition; with one partition it reads like a feed cursor.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct FireCursor {
    /// The store's epoch.
    pub epoch: Epoch,
    /// The position reached in each partition.
    pub pos: Vec<u64>,
}

impl fmt::Display for FireCursor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}-", self.epoch.0)?;
        for (i, p) in self.pos.iter().enumerate() {
            if i > 0 {
                f.write_str(".")?;
            }
            write!(f, "{p}")?;
        }
        Ok(())
    }
}

/// The most partitions a cursor may name.
const MAX_PARTS: usize = 256;

impl FromStr for FireCursor {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Error> {
        let bad = || Error::Invalid("malformed event cursor".into());
        let (epoch, positions) = s.split_once('-').ok_or_else(bad)?;
        let pos = positions
            .split('.')
            .take(MAX_PARTS + 1)
            .map(|p| parse_pos(p).ok_or_else(bad))
            .collect::<Result<Vec<u64>, Error>>()?;
        if pos.len() > MAX_PARTS {
            return Err(bad());
        }
        Ok(Self {
            epoch: parse_epoch(epoch).ok_or_else(bad)?,
            pos,
        })
    }
}

/// Where a firehose read starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FireStart {
    /// With the events after now only.
    Live,
    /// From the first event (`?after=0`).
    Oldest,
    /// After this cursor.
    After(FireCursor),
}

impl FromStr for FireStart {
    type Err = Error;

    /// `"0"` is [`FireStart::Oldest`]; anything else must be a cursor.
    fn from_str(s: &str) -> Result<Self, Error> {
        if s == "0" {
            Ok(Self::Oldest)
        } else {
            s.parse().map(Self::After)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fire_cursor_has_one_spelling() {
        let c: FireCursor = "00000000000000ff-4.0.17".parse().unwrap();
        assert_eq!((c.epoch, c.pos.as_slice()), (Epoch(255), &[4, 0, 17][..]));
        assert_eq!(c.to_string(), "00000000000000ff-4.0.17");
        let one: FireCursor = "00000000000000ff-42".parse().unwrap();
        assert_eq!(one.to_string(), "00000000000000ff-42");
        for bad in [
            "00000000000000ff-",
            "00000000000000ff-1..2",
            "00000000000000ff-1.",
            "00000000000000ff-01",
            "00000000000000ff-1.+2",
            "00000000000000FF-1",
            "00000000000000f-1",
            "00000000000000ff-18446744073709551616",
        ] {
            assert!(bad.parse::<FireCursor>().is_err(), "{bad} parsed");
        }
        let many = format!("00000000000000ff-{}", vec!["1"; MAX_PARTS + 1].join("."));
        assert!(many.parse::<FireCursor>().is_err());
    }
}
