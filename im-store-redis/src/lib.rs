#![doc = include_str!("../README.md")]
//!
//! # Layout
//!
//! - `lib.rs`: [`RedisConfig`].
//! - `store`: [`RedisStore`]: opening, the reads, presence.
//! - `write`: sends and change sets, atomic on one Redis; on a cluster, the
//!   commit point, the fan-out and its recovery.
//! - `drains`: one fan-out drain at a time per conversation in a process.
//! - `fan_out`: a cluster fan-out's recipient step, one script per master.
//! - `slots`: which master serves which user (`CLUSTER SLOTS`).
//! - `export`: the export, key by key (how consistent it is).
//! - `members`: a page of a group's members, from the index of their ids.
//! - `live`: the background tasks: the one pub/sub subscription that wakes
//!   local streams, the node heartbeat, the fan-out recovery sweep.
//! - `scripts`: the Lua scripts.
//! - `migrate`: upgrades of the stored format.
//! - [`keys`]: every key layout, in one place (the table is there).
//! - `conn`: connections and timeouts.
//! - `codec`: value encodings.
//! - `error`: [`Error`] and its conversion into [`im_engine::StoreError`].
//! - `testing` (feature `testing`): real `redis-server` processes for tests.

pub mod keys;

mod codec;
mod conn;
mod drains;
mod error;
mod export;
mod fan_out;
mod live;
mod members;
mod migrate;
mod outbox;
mod rooms;
mod scripts;
mod slots;
mod store;
mod write;

#[cfg(any(test, feature = "testing"))]
pub mod testing;

use std::time::Duration;

pub use error::Error;
pub use store::RedisStore;

/// The format version this build reads and writes, kept in `P{meta}:store`.
pub const FORMAT_VERSION: u32 = 6;

/// How to open a [`RedisStore`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedisConfig {
    /// `redis://host:port[/db]` for one server, or
    /// `redis+cluster://h1:p1,h2:p2,…` for a cluster (some of its nodes).
    pub url: String,
    /// Put before every key and channel name, so that several stores (or
    /// tests) share one Redis. May not contain `{` or `}`.
    pub prefix: String,
    /// Every store call fails with [`Error::Timeout`] when Redis has not
    /// answered within this bound (Redis down, restarting, overloaded).
    pub timeout: Duration,
    /// A node that has not renewed its heartbeat for this long counts as
    /// gone: the users only it held online go offline.
    pub node_ttl: Duration,
    /// How often a cluster node looks for fan-outs that a crashed node left
    /// unfinished (it also looks once at start).
    pub recovery_interval: Duration,
}

impl RedisConfig {
    /// The defaults for `url`: prefix `im:`, 2 s timeout, 10 s node TTL,
    /// recovery every 5 s.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            prefix: "im:".into(),
            timeout: Duration::from_secs(2),
            node_ttl: Duration::from_secs(10),
            recovery_interval: Duration::from_secs(5),
        }
    }

    /// Sets the key prefix.
    #[must_use]
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// Sets the bound on every store call.
    #[must_use]
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }
}

#[cfg(test)]
mod tests;
