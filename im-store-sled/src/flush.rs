//! Flushing sled: one thread flushes and syncs for every caller waiting,
//! and in the background whenever the write-ahead log has sealed a segment
//! (a checkpoint: once sled's copy is on stable storage, the log's copy of
//! those writes is deleted; see the `wal` module). Writers wait for the
//! log, not for this thread; [`Store::flush`](im_engine::Store::flush),
//! closing, and writers in periodic mode never wait at all.
//!
//! A writer commits its batch, then registers here and waits. The
//! flusher thread takes every writer registered so far, calls `Db::flush`
//! once, puts the store's files on stable storage ([`Files::sync`]), and
//! answers them all. Whoever registers during that flush committed after it
//! started, so it waits for the next one: an answer always means "on stable
//! storage since after your commit". Concurrent senders thus share one
//! flush and one `fdatasync`, and the sync rate, not the number of writers,
//! bounds the cost of durability.
//!
//! While the store is open only this thread calls `flush`: sled 0.34 can
//! stop making progress when many tasks await `flush_async` at once
//! (spacejam/sled#1241, #1308).
//!
//! # Why sled's flush is not enough
//!
//! sled 0.34.7's `flush` writes its log buffers with `pwrite` and then, on
//! Linux, calls `sync_file_range(WAIT_BEFORE | WRITE | WAIT_AFTER)` on the
//! range written (`pagecache/iobuf.rs`). That starts and waits for the
//! writeback of those pages, but it flushes neither the drive's volatile
//! write cache nor the file's metadata, such as its size as the log grows:
//! after a power cut or a kernel crash the write can be gone. sled's own
//! background thread does call `fsync` on the log, but only every
//! `flush_every_ms`, after the answer. So after every flush [`Files::sync`]
//! calls `fdatasync` (`File::sync_data`) itself, on a descriptor of its own:
//! an fsync through any descriptor of a file syncs that file.
//!
//! What sled 0.34.7 writes in its directory, and how each part reaches
//! stable storage:
//!
//! - `db`, the log, holds every write. Synced after every flush.
//! - `blobs/<lsn>`: a log entry over about 128 KiB (a quarter of a
//!   segment) goes to a file of its own, which sled writes but never syncs,
//!   nor the directory entry it creates (`pagecache/blob_io.rs`); the log
//!   holds only a pointer to it. After every flush the blob files not
//!   synced yet are, and then `blobs/` itself, before the log; a blob file
//!   sled has since removed needs nothing.
//! - `conf`, written once when a directory is first opened, is never
//!   synced by sled; `snap.<lsn>` snapshots are written only while opening
//!   (recovery), synced, then renamed into place without a sync of the
//!   directory (`pagecache/snapshot.rs`). Neither holds a write the log does
//!   not, and sled creates no file in the directory after opening; so
//!   [`Files::open`] syncs `conf`, the directory (the entries of `db`,
//!   `conf`, `blobs/` and the snapshot's rename) and `blobs/` once, and the
//!   parent of every directory the open created, whose entry is new too.
//!
//! Once a flush or a sync has failed, nothing written since can be promised
//! to be on disk (after a failed `fsync` Linux may drop the dirty pages and
//! report success to the next one): every later wait gets that error, until
//! the store is reopened and sled recovers what the disk holds.

use std::collections::HashSet;
use std::ffi::OsString;
use std::fs::{self, File};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

use tokio::sync::oneshot;

use crate::error::{Error, Result};
use crate::wal::Log;

/// How often the thread looks for a sealed log segment to checkpoint.
const CHECKPOINT_EVERY: Duration = Duration::from_millis(250);

type Answer = std::result::Result<(), sled::Error>;

/// The handle of the flusher thread; stops it when dropped.
#[derive(Debug)]
pub(crate) struct GroupCommit {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<Answer>>,
}

#[derive(Debug, Default)]
struct Shared {
    state: Mutex<State>,
    wake: Condvar,
}

#[derive(Debug, Default)]
struct State {
    waiting: Vec<oneshot::Sender<Answer>>,
    closing: bool,
}

impl Shared {
    fn state(&self) -> MutexGuard<'_, State> {
        // The state is a list and a flag, consistent after every statement.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl GroupCommit {
    /// Starts the flusher thread for `db`, whose directory's `files` it
    /// syncs after every flush.
    /// Checkpoints `log` after every flush.
    pub(crate) fn start(db: sled::Db, mut files: Files, log: Arc<Log>) -> Result<Self> {
        let shared = Arc::new(Shared::default());
        let thread = std::thread::Builder::new()
            .name("im-store-sled-flusher".into())
            .spawn({
                let shared = Arc::clone(&shared);
                move || run(&db, &mut files, &shared, &log)
            })
            .map_err(Error::Thread)?;
        Ok(Self {
            shared,
            thread: Some(thread),
        })
    }

    /// Waits until a flush and sync that started after this call have
    /// finished, so every write committed before the call is on stable
    /// storage.
    ///
    /// Registers at once, when called, not when first polled.
    pub(crate) fn flushed(&self) -> impl Future<Output = Result<()>> + Send + 'static {
        let registered = {
            let mut st = self.shared.state();
            if st.closing {
                Err(Error::Closed)
            } else {
                let (tx, rx) = oneshot::channel();
                st.waiting.push(tx);
                self.shared.wake.notify_one();
                Ok(rx)
            }
        };
        async move {
            registered?
                .await
                .map_err(|_| Error::Closed)?
                .map_err(Error::Sled)
        }
    }

    /// Answers the writers still waiting, flushes and syncs one last time
    /// and stops the thread; returns that flush's outcome. Idempotent.
    pub(crate) fn stop(&mut self) -> Result<()> {
        self.shared.state().closing = true;
        self.shared.wake.notify_one();
        match self.thread.take().map(JoinHandle::join) {
            None => Ok(()),
            Some(Ok(last)) => last.map_err(Error::Sled),
            // The panic has been reported already; its waiters saw `Closed`.
            Some(Err(_)) => Err(Error::Closed),
        }
    }
}

impl Drop for GroupCommit {
    fn drop(&mut self) {
        // Nobody is left to tell about a failure of the last flush; every
        // acknowledged write was flushed before its answer anyway.
        let _ = self.stop();
    }
}

/// The files of a sled 0.34.7 directory that hold its data, and how they
/// reach stable storage: see the [module docs](self).
#[derive(Debug)]
pub(crate) struct Files {
    /// `<dir>/db`, opened again for its `fdatasync`.
    log: File,
    /// `<dir>/blobs`.
    blobs: PathBuf,
    /// The blob files synced already, by name.
    synced_blobs: HashSet<OsString>,
}

impl Files {
    /// Once sled has opened `dir`: syncs what opening wrote without syncing
    /// it (`conf`, the log, the blob files, `dir` and `blobs/`, and the
    /// parent of each directory in `created`, from [`missing_dirs`]), and
    /// keeps the log open for later syncs.
    pub(crate) fn open(dir: &Path, created: &[PathBuf]) -> io::Result<Self> {
        let log = File::open(dir.join("db"))?;
        match File::open(dir.join("conf")) {
            Ok(conf) => conf.sync_data()?,
            // sled writes it again when it is missing.
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        let mut files = Self {
            log,
            blobs: dir.join("blobs"),
            synced_blobs: HashSet::new(),
        };
        files.sync_blobs()?;
        sync_dir(&files.blobs)?;
        sync_dir(dir)?;
        for created in created {
            sync_dir(parent(created))?;
        }
        files.log.sync_data()?;
        Ok(files)
    }

    /// Puts on stable storage what the `Db::flush` that just returned wrote:
    /// the new blob files and their entries first, then the log that points
    /// to them.
    fn sync(&mut self) -> io::Result<()> {
        if self.sync_blobs()? {
            sync_dir(&self.blobs)?;
        }
        self.log.sync_data()
    }

    /// Syncs the blob files not synced yet; answers whether there were any.
    fn sync_blobs(&mut self) -> io::Result<bool> {
        let mut present = HashSet::with_capacity(self.synced_blobs.len());
        let mut synced_any = false;
        for entry in fs::read_dir(&self.blobs)? {
            let name = entry?.file_name();
            if !self.synced_blobs.contains(&name) {
                match File::open(self.blobs.join(&name)) {
                    Ok(blob) => blob.sync_data()?,
                    // sled removed it meanwhile: nothing points to it.
                    Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                    Err(e) => return Err(e),
                }
                synced_any = true;
            }
            present.insert(name);
        }
        self.synced_blobs = present;
        Ok(synced_any)
    }
}

/// `path` and those of its ancestors that do not exist yet, deepest first:
/// the directories that opening a store at `path` creates, whose entries in
/// their parents [`Files::open`] syncs.
pub(crate) fn missing_dirs(path: &Path) -> Vec<PathBuf> {
    path.ancestors()
        .take_while(|dir| !dir.as_os_str().is_empty() && !dir.exists())
        .map(Path::to_path_buf)
        .collect()
}

/// The directory holding `path`'s entry.
fn parent(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// Syncs a directory: the entries created, renamed or removed in it.
fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

fn run(db: &sled::Db, files: &mut Files, shared: &Shared, log: &Log) -> Answer {
    // The first failure, which answers every wait after it.
    let mut failed: Option<sled::Error> = None;
    let mut flush = || -> Answer {
        if let Some(e) = &failed {
            return Err(e.clone());
        }
        // Every write up to here was applied to sled before this flush.
        let logged = log.applied();
        let answer = db
            .flush()
            .map(drop)
            .and_then(|()| files.sync().map_err(sled::Error::from));
        match &answer {
            Err(e) => failed = Some(e.clone()),
            Ok(()) => {
                if let Err(e) = log.release(logged) {
                    // Replay skips what sled holds: only disk space is lost.
                    tracing::warn!(error = %e, "could not delete a log segment");
                }
            }
        }
        answer
    };
    loop {
        let batch = {
            let mut st = shared.state();
            while st.waiting.is_empty() && !st.closing {
                let (guard, waited) = shared
                    .wake
                    .wait_timeout(st, CHECKPOINT_EVERY)
                    .unwrap_or_else(PoisonError::into_inner);
                st = guard;
                if waited.timed_out() && log.has_sealed() {
                    break;
                }
            }
            if st.waiting.is_empty() && st.closing {
                drop(st);
                return flush();
            }
            std::mem::take(&mut st.waiting)
        };
        let answer = flush();
        for waiter in batch {
            // The writer may have given up waiting (its future was dropped).
            let _ = waiter.send(answer.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn waiters_are_answered_and_stop_refuses_new_ones() {
        let dir = tempfile::tempdir().unwrap();
        let db = sled::Config::new().path(dir.path()).open().unwrap();
        let files = Files::open(dir.path(), &[]).unwrap();
        let log = Arc::new(Log::start(dir.path(), 1, false).unwrap());
        let mut gc = GroupCommit::start(db.clone(), files, log).unwrap();
        db.insert("k", "v").unwrap();
        let waits: Vec<_> = (0..10).map(|_| gc.flushed()).collect();
        for w in waits {
            w.await.unwrap();
        }
        let late = gc.flushed();
        gc.stop().unwrap();
        // Registered before the stop: answered by the last flush.
        late.await.unwrap();
        assert!(matches!(gc.flushed().await, Err(Error::Closed)));
    }

    #[test]
    fn blob_files_are_synced_once_and_forgotten_when_removed() {
        let dir = tempfile::tempdir().unwrap();
        let db = sled::Config::new().path(dir.path()).open().unwrap();
        let mut files = Files::open(dir.path(), &[]).unwrap();
        assert!(files.synced_blobs.is_empty());
        // Over a quarter of sled's 512 KiB segments: a blob file of its own.
        db.insert("big", vec![7u8; 200 * 1024]).unwrap();
        db.flush().unwrap();
        files.sync().unwrap();
        let blobs: HashSet<OsString> = fs::read_dir(dir.path().join("blobs"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(blobs.len(), 1);
        assert_eq!(files.synced_blobs, blobs);
        assert!(!files.sync_blobs().unwrap(), "synced already");
        for blob in &blobs {
            fs::remove_file(dir.path().join("blobs").join(blob)).unwrap();
        }
        assert!(!files.sync_blobs().unwrap());
        assert!(files.synced_blobs.is_empty());
    }

    #[test]
    fn missing_dirs_are_the_ones_opening_creates() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a").join("b");
        let created = missing_dirs(&path);
        assert_eq!(created, [path.clone(), dir.path().join("a")]);
        let _db = sled::Config::new().path(&path).open().unwrap();
        assert!(missing_dirs(&path).is_empty());
        // Syncs `a` and the temporary directory, which hold the new entries.
        Files::open(&path, &created).unwrap();
        let relative = Path::new("no-such-dir-here");
        assert_eq!(missing_dirs(relative), [relative]);
        assert_eq!(parent(relative), Path::new("."));
    }
}
