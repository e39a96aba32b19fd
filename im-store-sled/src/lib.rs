//! The embedded default store of `im-engine`: the engine's data in a
//! [sled](https://docs.rs/sled/0.34.7) database in one directory, with no
//! server to run.
//!
//! Every write is atomic: a send numbers its message, appends it to the
//! conversation's log, moves `last_seq`, the sender's read cursor and the
//! conversation's activity, and appends a reference to every participant's
//! feed, all or nothing. One writer thread combines the writes queued
//! meanwhile into one sled batch, each write's changes undone alone if it
//! fails. A send to a group of N members writes N feed events and a
//! handful of other keys, and a batch of sends to it one feed key per
//! member (see [`keys`] for how).
//! With the default [`Durability::Flush`] a write answers only once it is
//! on stable storage: in the store's write-ahead log, fdatasynced, where
//! concurrent writers share one sync (group commit) and nobody waits for
//! sled's flush, which runs in the background; the log is replayed on open.
//! So an acknowledged message survives a process kill, a kernel crash and
//! a power cut.
//!
//! ```
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! use im_engine::{Actor, Body, Engine, HistoryQuery, SendRequest, UserId};
//! use im_store_sled::{SledConfig, SledStore};
//!
//! let dir = tempfile::tempdir()?;
//! let engine = Engine::new(SledStore::open(SledConfig::new(dir.path()))?);
//!
//! let root = Actor::admin(UserId::new("root")?);
//! for name in ["alice", "bob"] {
//!     engine.put_user(&root, &UserId::new(name)?, Default::default()).await?;
//! }
//! let alice = Actor::user(UserId::new("alice")?);
//! let dm = "dm:alice:bob".parse()?;
//! let body = Body::new(r#"{"text": "hi"}"#, 1024)?;
//! let (message, _) = engine.send(&alice, &dm, SendRequest::new(body)).await?;
//! assert_eq!(message.seq, 1);
//!
//! // The message is on disk now: a restarted process would find it.
//! let page = engine.history(&alice, &dm, HistoryQuery::default()).await?;
//! assert_eq!(page.messages, [message]);
//! # Ok::<_, Box<dyn std::error::Error>>(())
//! # }).unwrap();
//! ```
//!
//! # Layout
//!
//! - `lib.rs`: [`SledConfig`], [`Durability`], [`FORMAT_VERSION`].
//! - `store`: [`SledStore`]: opening, closing and the reads.
//! - `db`: the sled trees, opening sled, freeing what it deferred, waiting
//!   for it to let go.
//! - `write`: the writer: the send, membership and commit writes.
//! - `combine`: the writer thread: queued writes combined into one batch,
//!   one `apply_batch` and one log record, each write atomic on its own.
//! - `batch`: a batch's writes, readable before they land, undone write by
//!   write.
//! - `index`: the conversation index (entries, conversation states) and
//!   what the writer remembers between writes; its invariants.
//! - `feed`: feed bounds from the feed keys, appending and trimming (as
//!   drafts, written as one run per feed per batch), reads.
//! - `page`: a page of a group's members, by a range scan.
//! - `export`: the export, copied under the writer's lock.
//! - `migrate`: opening a directory of format 1.
//! - `repair`: removing what older builds wrote wrongly, once, at open.
//! - `wal`: the write-ahead log: applying and logging every write, group
//!   commit of the log, replay on open.
//! - `flush`: the one thread that flushes sled and syncs its files, in the
//!   background and when asked, and which files it syncs, and why.
//! - `crash`: the crash test's named crash points (feature `crash-points`).
//! - [`keys`]: every key layout, in one place.
//! - `codec`: value encodings.
//! - `error`: [`Error`] and its conversion into [`im_engine::StoreError`].
//!
//! # Durability
//!
//! [`Durability::Flush`] (the default) answers a write once it is on
//! stable storage in the store's write-ahead log (`<dir>/im-wal/`): applied
//! to sled, its record appended to the log, the log written and
//! fdatasynced (`File::sync_data`). One thread writes and syncs whatever
//! was appended since its last sync, so concurrent writers share one sync,
//! and no writer waits for sled's flush. sled is flushed, and its files
//! fdatasynced, in the background (sled 0.34.7's flush alone ends in
//! `sync_file_range`, which flushes neither the drive's cache nor the log's
//! size: the `flush` module says which files are synced, and why); then
//! the log segments that flush covered are deleted. On open, the segments
//! left are replayed: each tree's last applied log position tells which
//! writes sled lost, which are applied again in order; a record cut short
//! by a crash (its length or CRC-32 shows it) was never acknowledged and
//! is dropped. On a drive that honours flushes, an acknowledged write
//! survives a process kill, a kernel crash and a power cut.
//!
//! [`Durability::Periodic`] answers as soon as the write has committed in
//! sled's memory and leaves the rest to sled's background thread, which
//! every `every_ms` milliseconds writes the log and fsyncs it. Faster, but
//! any crash, a killed process included (the writes are still in its
//! memory), can lose the writes of the last `every_ms` milliseconds or so,
//! acknowledged or not. And as sled itself never syncs its blob files (log
//! entries over about 128 KiB, such as a tree node holding several large
//! messages), only the kernel's own writeback stands between those and a
//! kernel crash or power cut, until the store syncs them
//! ([`Store::flush`](im_engine::Store::flush), or closing).
//!
//! Presence is process-local: which users have a live stream open is kept
//! in memory, and after a restart everyone is offline; `last_seen` is
//! stored.

pub mod keys;

#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing;

mod batch;
mod codec;
mod combine;
mod crash;
mod db;
mod error;
mod export;
mod feed;
mod fire;
mod flush;
mod index;
mod migrate;
mod page;
mod repair;
mod rooms;
mod store;
mod wal;
mod write;

use std::path::PathBuf;

pub use error::Error;
pub use store::SledStore;

/// The format version this build writes, kept in the `meta` tree. It also
/// opens format 1 (one tree per kind of record), which it migrates on open;
/// newer versions it refuses with [`Error::UnsupportedVersion`].
pub const FORMAT_VERSION: u32 = 2;

/// When a write is answered.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Durability {
    /// After its record in the store's write-ahead log has been written and
    /// fdatasynced; concurrent writers share one sync, and sled flushes in
    /// the background. On a drive that honours flushes, an acknowledged
    /// write survives a process kill, a kernel crash and a power cut.
    #[default]
    Flush,
    /// After it has committed in memory; sled writes and fsyncs its log
    /// every `every_ms` milliseconds (at least 1). Weaker: any crash, a
    /// killed process included, can lose about the last `every_ms` of
    /// acknowledged writes (see the [crate docs](crate#durability)).
    Periodic {
        /// Milliseconds between sled's background flushes.
        every_ms: u64,
    },
}

/// How to open a [`SledStore`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SledConfig {
    /// The database directory; created when missing.
    pub path: PathBuf,
    /// When writes are answered.
    pub durability: Durability,
    /// sled's page cache size in bytes (`None`: sled's default, 1 GiB).
    pub cache_capacity: Option<u64>,
}

impl SledConfig {
    /// The defaults for a database at `path`: [`Durability::Flush`] and
    /// sled's cache size.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self {
            path: path.into(),
            durability: Durability::default(),
            cache_capacity: None,
        }
    }

    /// Sets the durability policy.
    #[must_use]
    pub fn durability(mut self, durability: Durability) -> Self {
        self.durability = durability;
        self
    }

    /// Sets sled's page cache size in bytes.
    #[must_use]
    pub fn cache_capacity(mut self, bytes: u64) -> Self {
        self.cache_capacity = Some(bytes);
        self
    }
}

#[cfg(test)]
mod tests {
    use im_engine::testing::StoreFactory;
    use tempfile::TempDir;

    use super::*;

    /// Fresh stores in temporary directories.
    pub(crate) struct SledFactory;

    impl StoreFactory for SledFactory {
        type Store = SledStore;
        type Data = TempDir;

        async fn open() -> (SledStore, TempDir) {
            let dir = tempfile::tempdir().expect("temporary directory");
            (open_for_tests(dir.path()), dir)
        }

        async fn reopen(store: SledStore, dir: &TempDir) -> SledStore {
            // Closing flushes, stops the flusher thread and waits until sled
            // has let go of the directory.
            tokio::task::spawn_blocking(move || store.close())
                .await
                .expect("close task")
                .expect("close the store");
            open_for_tests(dir.path())
        }

        fn check(store: &SledStore) {
            store.writer().check();
        }
    }

    /// A store that remembers the holders of conversations of every size,
    /// so that the suite takes that path on small ones too.
    fn open_for_tests(path: &std::path::Path) -> SledStore {
        let store = SledStore::open(SledConfig::new(path)).expect("open the store");
        store.writer().remember_every_conversation();
        store
    }

    im_engine::store_conformance_tests!(SledFactory);

    mod reopen;
    mod runs;
    mod store;
}
