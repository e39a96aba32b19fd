//! The write-ahead log: what makes an acknowledged write durable at the
//! cost of one `fdatasync` per group of concurrent writers, without
//! waiting for sled's flush.
//!
//! Every write of the store goes through [`Log::commit`]: under one lock it
//! numbers the write (its LSN), appends its [`record`] to an in-memory
//! buffer and applies it to sled (each tree's keys as one sled batch, with
//! the tree's [`APPLIED`] key set to the LSN). The log thread takes whatever the
//! buffer holds, writes it to the current segment file with one `write`,
//! `fdatasync`s it once, and answers every writer whose record that covered
//! ([`Log::synced`]). Writers that commit meanwhile fill the next buffer:
//! nobody waits for sled, and one sync serves them all.
//!
//! Segments (`<dir>/im-wal/<first lsn>.log`) are sealed after a second or
//! 16 MiB; the flusher thread (`flush.rs`) flushes sled in the background,
//! syncs its files, and then deletes the sealed segments whose records that
//! flush covered ([`Log::release`]). On open, [`replay`] applies again every
//! record of the segments left, in order, before anything reads the store:
//! a tree whose `APPLIED` LSN is at or past a record already holds it
//! (sled recovers a prefix of its batches), so a replay applies exactly the
//! writes sled lost, and a replay cut short by a crash starts over safely.
//! A record cut short by a crash (a torn tail, which its length or CRC-32
//! shows) was never acknowledged, and is dropped.

pub(crate) mod record;
pub(crate) mod replay;

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

use crate::crash;
use crate::error::{Error, Result};
pub(crate) use record::Writes;

/// The directory of the segments, inside the store's directory.
pub(crate) const DIR: &str = "im-wal";
/// The key, in every tree the log writes to, of the LSN of the last write
/// applied to that tree. No key of the store starts with `0x00`.
pub(crate) const APPLIED: &[u8] = b"\x00wal-applied";
/// A segment is sealed once it is this large, or this old.
const SEGMENT_BYTES: u64 = 16 << 20;
const SEGMENT_AGE: Duration = Duration::from_secs(1);

type Answer = std::result::Result<(), sled::Error>;

/// The log of a store; see the [module docs](self).
#[derive(Debug)]
pub(crate) struct Log {
    shared: Arc<Shared>,
    /// The next LSN; held while a write is applied and appended, so that
    /// the log's order is the order writes were applied in.
    next: Mutex<u64>,
    /// `None` in periodic mode: writes are applied, not logged.
    thread: Mutex<Option<JoinHandle<()>>>,
    logging: bool,
}

#[derive(Debug)]
struct Shared {
    state: Mutex<State>,
    wake: Condvar,
}

#[derive(Debug, Default)]
struct State {
    /// Records appended and not yet written.
    buf: Vec<u8>,
    /// The LSN of the last record appended, of the last write applied to
    /// sled (appended first: it may trail), and of the last one synced.
    appended: u64,
    applied: u64,
    synced: u64,
    waiting: Vec<(u64, oneshot::Sender<Answer>)>,
    /// Sealed segments, oldest first, with the LSN of their last record.
    sealed: Vec<(PathBuf, u64)>,
    /// The first failure to write or sync: nothing after it is promised.
    failed: Option<sled::Error>,
    closing: bool,
}

impl Shared {
    fn state(&self) -> MutexGuard<'_, State> {
        // Every statement under the lock leaves the state consistent.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Log {
    /// Starts logging into `dir/im-wal`, writes numbered from `next` (one
    /// past what [`replay`] found); with `logging` false (periodic mode),
    /// writes are only applied.
    pub(crate) fn start(dir: &Path, next: u64, logging: bool) -> Result<Self> {
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                appended: next - 1,
                applied: next - 1,
                synced: next - 1,
                ..State::default()
            }),
            wake: Condvar::new(),
        });
        let mut thread = None;
        if logging {
            let segments = dir.join(DIR);
            let created = !segments.exists();
            fs::create_dir_all(&segments).map_err(sled::Error::from)?;
            if created {
                sync_dir(dir).map_err(sled::Error::from)?;
            }
            let segment = Segment::create(&segments, next).map_err(sled::Error::from)?;
            thread = Some(
                std::thread::Builder::new()
                    .name("im-store-sled-log".into())
                    .spawn({
                        let shared = Arc::clone(&shared);
                        move || run(&shared, &segments, segment)
                    })
                    .map_err(Error::Thread)?,
            );
        }
        Ok(Self {
            shared,
            next: Mutex::new(next),
            thread: Mutex::new(thread),
            logging,
        })
    }

    /// Appends one write's record, then applies it (each tree's keys as one
    /// sled batch). Returns once it is applied, not once it is durable:
    /// [`Log::synced`] says when. The record goes first so that the log
    /// thread writes and syncs it while sled applies it; a write sled then
    /// fails to apply is in the log, so the log fails every write after it
    /// (and the next open replays it, as it would after a crash).
    pub(crate) fn commit(&self, trees: &[(&sled::Tree, &Writes)]) -> Result<()> {
        let mut next = self.next.lock().unwrap_or_else(PoisonError::into_inner);
        let lsn = *next;
        if self.logging {
            let mut st = self.shared.state();
            if let Some(e) = &st.failed {
                return Err(Error::Sled(e.clone()));
            }
            record::encode(&mut st.buf, lsn, trees);
            st.appended = lsn;
            *next += 1;
            self.shared.wake.notify_one();
        }
        for (tree, writes) in trees {
            let mut batch = sled::Batch::default();
            for (key, value) in writes.iter() {
                match value {
                    Some(v) => batch.insert(key.as_slice(), v.clone()),
                    None => batch.remove(key.as_slice()),
                }
            }
            if self.logging {
                batch.insert(APPLIED, &lsn.to_be_bytes()[..]);
            }
            if let Err(e) = tree.apply_batch(batch) {
                if self.logging {
                    self.shared.state().failed.get_or_insert_with(|| e.clone());
                }
                return Err(e.into());
            }
        }
        if self.logging {
            self.shared.state().applied = lsn;
        }
        Ok(())
    }

    /// The LSN of the last write applied to sled: every write at or before
    /// it is in sled's pages (not yet on disk: a flush puts it there).
    pub(crate) fn applied(&self) -> u64 {
        self.shared.state().applied
    }

    /// The LSN of the last write appended: every write committed so far is
    /// at or before it.
    pub(crate) fn appended(&self) -> u64 {
        self.shared.state().appended
    }

    /// Waits until the log holds every write up to `lsn` on stable storage.
    /// Registers at once, when called.
    pub(crate) fn synced(&self, lsn: u64) -> impl Future<Output = Result<()>> + Send + 'static {
        let registered = {
            let mut st = self.shared.state();
            if let Some(e) = &st.failed {
                Err(Error::Sled(e.clone()))
            } else if st.synced >= lsn {
                Ok(None)
            } else if st.closing {
                Err(Error::Closed)
            } else {
                let (tx, rx) = oneshot::channel();
                st.waiting.push((lsn, tx));
                Ok(Some(rx))
            }
        };
        async move {
            match registered? {
                None => Ok(()),
                Some(rx) => rx.await.map_err(|_| Error::Closed)?.map_err(Error::Sled),
            }
        }
    }

    /// Whether a sealed segment waits for a flush of sled to be deleted.
    pub(crate) fn has_sealed(&self) -> bool {
        !self.shared.state().sealed.is_empty()
    }

    /// Once sled's flush, started after [`Log::appended`] answered `upto`,
    /// is on stable storage: deletes the sealed segments it covered.
    pub(crate) fn release(&self, upto: u64) -> io::Result<()> {
        let covered: Vec<PathBuf> = {
            let mut st = self.shared.state();
            let n = st
                .sealed
                .iter()
                .take_while(|(_, last)| *last <= upto)
                .count();
            st.sealed.drain(..n).map(|(path, _)| path).collect()
        };
        // A deletion the disk forgets is harmless: replay skips what sled
        // holds.
        covered.iter().try_for_each(fs::remove_file)
    }

    /// Writes and syncs what is appended, answers every writer and stops
    /// the log thread. Idempotent.
    pub(crate) fn stop(&self) {
        self.shared.state().closing = true;
        self.shared.wake.notify_one();
        join(&self.thread);
    }
}

impl Drop for Log {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The segment being written.
#[derive(Debug)]
struct Segment {
    file: File,
    path: PathBuf,
    bytes: u64,
    opened: Instant,
}

impl Segment {
    /// A new, empty segment for the records from `first` on; its entry is on
    /// stable storage when this returns.
    fn create(dir: &Path, first: u64) -> io::Result<Self> {
        let path = dir.join(format!("{first:020}.log"));
        let file = File::options().create(true).append(true).open(&path)?;
        sync_dir(dir)?;
        Ok(Self {
            bytes: file.metadata()?.len(),
            file,
            path,
            opened: Instant::now(),
        })
    }

    fn is_full(&self) -> bool {
        self.bytes >= SEGMENT_BYTES || (self.bytes > 0 && self.opened.elapsed() >= SEGMENT_AGE)
    }

    fn append(&mut self, buf: &[u8]) -> io::Result<()> {
        if crash::reached("wal-write") {
            // A write cut short: half of it reaches the file.
            let _ = self.file.write_all(&buf[..buf.len() / 2]);
            crash::die("wal-write");
        }
        self.file.write_all(buf)?;
        self.file.sync_data()?;
        self.bytes += buf.len() as u64;
        Ok(())
    }
}

/// Waits for the thread in `slot`, if any is left: the one that stops it
/// waits, later calls do not. A panic there has been reported, and its
/// waiters saw [`Error::Closed`].
pub(crate) fn join(slot: &Mutex<Option<JoinHandle<()>>>) {
    let thread = slot.lock().unwrap_or_else(PoisonError::into_inner).take();
    if let Some(thread) = thread {
        let _ = thread.join();
    }
}

/// Syncs a directory: the entries created, renamed or removed in it.
pub(crate) fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// The log thread: writes and syncs what was appended, answers writers.
fn run(shared: &Shared, dir: &Path, mut segment: Segment) {
    let mut spare = Vec::new();
    loop {
        let (mut buf, upto, failed) = {
            let mut st = shared.state();
            while st.buf.is_empty() && !st.closing {
                st = shared.wake.wait(st).unwrap_or_else(PoisonError::into_inner);
            }
            if st.buf.is_empty() {
                return;
            }
            let buf = std::mem::replace(&mut st.buf, std::mem::take(&mut spare));
            (buf, st.appended, st.failed.clone())
        };
        let answer = match failed {
            Some(e) => Err(e),
            None => write(dir, &mut segment, &buf, shared).map_err(sled::Error::from),
        };
        let mut st = shared.state();
        match &answer {
            Ok(()) => st.synced = upto,
            Err(e) => st.failed = Some(e.clone()),
        }
        let synced = st.synced;
        let waiting = std::mem::take(&mut st.waiting);
        let (done, left): (Vec<_>, Vec<_>) = waiting
            .into_iter()
            .partition(|(lsn, _)| answer.is_err() || *lsn <= synced);
        st.waiting = left;
        drop(st);
        for (_, waiter) in done {
            // The writer may have given up waiting (its future was dropped).
            let _ = waiter.send(answer.clone());
        }
        buf.clear();
        spare = buf;
    }
}

/// Writes `buf`, sealing the segment first when it is full.
fn write(dir: &Path, segment: &mut Segment, buf: &[u8], shared: &Shared) -> io::Result<()> {
    if segment.is_full() {
        let first = shared.state().synced + 1;
        let next = Segment::create(dir, first)?;
        let old = std::mem::replace(segment, next);
        shared.state().sealed.push((old.path, first - 1));
    }
    segment.append(buf)
}
