//! Which cluster node serves which user: the slot map of `CLUSTER SLOTS`,
//! so that a fan-out can give each node one script for all of its
//! recipients instead of one per recipient.
//!
//! The map only groups users: a script still goes to the node redis-rs
//! routes its first key to, and a user whose slot turns out not to be that
//! node's fails the script harmlessly (see [`crate::scripts::FANOUT_NODE`]).
//! The caller then forgets the map, and the next fan-out reads it again.

use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use im_engine::UserId;
use redis::Value;

use crate::codec;
use crate::conn::Conn;
use crate::error::{Result, corrupt};

/// Redis Cluster's number of hash slots.
const SLOTS: u16 = 16384;

/// The slot of a user's keys: `{u:<id>}` is their hash tag (user ids have
/// no braces). The same CRC16 redis-rs and Redis use.
pub(crate) fn user_slot(u: &UserId) -> u16 {
    let tag = format!("u:{u}");
    crc16::State::<crc16::XMODEM>::calculate(tag.as_bytes()) % SLOTS
}

/// Slot ranges and the id of the master serving each, by first slot.
#[derive(Debug)]
pub(crate) struct SlotMap {
    ranges: Vec<(u16, u16, String)>,
}

impl SlotMap {
    /// The id of the node serving `slot`, if the map covers it.
    pub(crate) fn node(&self, slot: u16) -> Option<&str> {
        let i = self.ranges.partition_point(|(_, end, _)| *end < slot);
        self.ranges
            .get(i)
            .filter(|(start, _, _)| *start <= slot)
            .map(|(_, _, id)| id.as_str())
    }

    /// From a `CLUSTER SLOTS` answer: `[start, end, [host, port, id, …],
    /// replicas…]` per range.
    fn parse(v: &Value) -> Result<Self> {
        let mut ranges = Vec::new();
        for range in codec::array(v)? {
            let items = codec::array(range)?;
            let bound = |i: usize| -> Result<u16> {
                let n = codec::number(items.get(i).ok_or_else(|| corrupt("CLUSTER SLOTS"))?)?;
                u16::try_from(n).map_err(|_| corrupt("CLUSTER SLOTS slot"))
            };
            let master = codec::array(items.get(2).ok_or_else(|| corrupt("CLUSTER SLOTS"))?)?;
            let id = codec::text(master.get(2).ok_or_else(|| corrupt("CLUSTER SLOTS node"))?)?;
            ranges.push((bound(0)?, bound(1)?, id));
        }
        ranges.sort_unstable();
        Ok(Self { ranges })
    }
}

/// How long a failed read of the map (an ACL that refuses `CLUSTER SLOTS`,
/// say) is not tried again: meanwhile fan-outs make a script per user.
const RETRY_AFTER: Duration = Duration::from_secs(10);

/// The slot map as last read, if it is believed current.
#[derive(Debug, Default)]
pub(crate) struct Slots {
    map: RwLock<Known>,
}

/// What is known of the map.
#[derive(Debug, Default)]
enum Known {
    /// To be read.
    #[default]
    Unknown,
    Map(Arc<SlotMap>),
    /// Its last read failed at this time.
    Failed(Instant),
}

impl Slots {
    /// The map, read from the cluster when not known; `None` while a
    /// failed read is recent.
    pub(crate) async fn get(&self, conn: &mut Conn) -> Result<Option<Arc<SlotMap>>> {
        match &*self.map.read().unwrap_or_else(|e| e.into_inner()) {
            Known::Map(map) => return Ok(Some(Arc::clone(map))),
            Known::Failed(at) if at.elapsed() < RETRY_AFTER => return Ok(None),
            _ => {}
        }
        let read = async {
            let v: Value = redis::cmd("CLUSTER").arg("SLOTS").query_async(conn).await?;
            SlotMap::parse(&v)
        };
        let (known, answer) = match read.await {
            Ok(map) => {
                let map = Arc::new(map);
                (Known::Map(Arc::clone(&map)), Ok(Some(map)))
            }
            Err(e) => (Known::Failed(Instant::now()), Err(e)),
        };
        *self.map.write().unwrap_or_else(|e| e.into_inner()) = known;
        answer
    }

    /// Forgets the map: a script found it wrong (slots moved).
    pub(crate) fn forget(&self) {
        *self.map.write().unwrap_or_else(|e| e.into_inner()) = Known::Unknown;
    }

    /// Puts a map in place of the cluster's (tests: a wrong one).
    #[cfg(test)]
    pub(crate) fn set(&self, ranges: Vec<(u16, u16, String)>) {
        *self.map.write().unwrap_or_else(|e| e.into_inner()) =
            Known::Map(Arc::new(SlotMap { ranges }));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_slot_is_found_in_its_range() {
        let map = SlotMap {
            ranges: vec![
                (0, 99, "a".into()),
                (100, 199, "b".into()),
                (300, 400, "c".into()),
            ],
        };
        assert_eq!(map.node(0), Some("a"));
        assert_eq!(map.node(99), Some("a"));
        assert_eq!(map.node(100), Some("b"));
        assert_eq!(map.node(250), None);
        assert_eq!(map.node(400), Some("c"));
        assert_eq!(map.node(401), None);
    }
}
