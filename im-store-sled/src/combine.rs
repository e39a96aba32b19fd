//! The writer thread: writes queued by every caller, combined into one sled
//! batch and one log record.
//!
//! sled's cost is per key and per batch; a durable write waits for the
//! log's sync anyway. So callers queue their writes and wait; the writer
//! thread takes every write queued, runs them in order against one
//! [`Batch`] (each reading what the ones before it wrote), applies it with
//! one `apply_batch` and one log record, and answers each. Writes that
//! arrive meanwhile make up the next batch.
//!
//! Each write is atomic on its own: one that fails (or panics) has its own
//! changes undone and is answered its error; the writes before it land. As
//! what the writer remembers ([`Known`]) may hold the failed write's
//! changes, the batch so far is applied at once and `Known` forgotten
//! before the writes after it run.

use std::panic::{self, AssertUnwindSafe};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

use tokio::sync::oneshot;

use crate::batch::Batch;
use crate::error::{Error, Result};
use crate::index::Known;
use crate::wal::{self, Log};

/// Writes combined into one batch at most.
const MAX_COMBINED: usize = 256;
/// How long the writer waits for one more write, while fewer than came
/// together last time are queued.
const LINGER: Duration = Duration::from_micros(200);

/// A queued write: run into a batch, answered once the batch landed.
pub(crate) trait Job: Send {
    /// Runs the write; false when it failed (its changes must be undone).
    fn run(&mut self, p: &mut Batch<'_>, known: &mut Known) -> bool;
    /// Answers the caller, given how the batch's apply went.
    fn answer(self: Box<Self>, applied: &Result<()>);
}

struct Pending<F, T> {
    f: Option<F>,
    out: Option<Result<T>>,
    tx: oneshot::Sender<Result<T>>,
}

impl<F, T> Job for Pending<F, T>
where
    F: FnOnce(&mut Batch<'_>, &mut Known) -> Result<T> + Send,
    T: Send,
{
    fn run(&mut self, p: &mut Batch<'_>, known: &mut Known) -> bool {
        let out = self.f.take().map_or(Err(Error::Closed), |f| f(p, known));
        let ok = out.is_ok();
        self.out = Some(out);
        ok
    }

    fn answer(self: Box<Self>, applied: &Result<()>) {
        let out = match (self.out, applied) {
            (Some(Ok(_)), Err(e)) => Err(again(e)),
            (Some(out), _) => out,
            // It panicked: the panic is reported; the caller sees a failure.
            (None, _) => Err(Error::Closed),
        };
        // The caller may have stopped waiting.
        let _ = self.tx.send(out);
    }
}

/// The same failure, for each writer of a batch.
fn again(e: &Error) -> Error {
    match e {
        Error::Sled(e) => Error::Sled(e.clone()),
        _ => Error::Closed,
    }
}

/// Takes the lock on `known`. After a panic under it, starts again from
/// what is on disk.
pub(crate) fn lock(known: &Mutex<Known>) -> MutexGuard<'_, Known> {
    let mut guard = known.lock().unwrap_or_else(|poisoned| {
        known.clear_poison();
        let mut guard = poisoned.into_inner();
        guard.forget();
        guard
    });
    guard.keep_to_budget();
    guard
}

/// The queue and the thread that runs it.
#[derive(Debug)]
pub(crate) struct Combiner {
    tx: Mutex<Option<Sender<Box<dyn Job>>>>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl Combiner {
    pub(crate) fn start(
        records: sled::Tree,
        log: Arc<Log>,
        known: Arc<Mutex<Known>>,
    ) -> Result<Self> {
        let (tx, rx) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("im-store-sled-writer".into())
            .spawn(move || run(&rx, &records, &log, &known))
            .map_err(Error::Thread)?;
        Ok(Self {
            tx: Mutex::new(Some(tx)),
            thread: Mutex::new(Some(thread)),
        })
    }

    /// Queues `f`; resolves to its answer once the batch it ran in landed
    /// (applied and logged, not yet synced).
    pub(crate) fn submit<T, F>(&self, f: F) -> impl Future<Output = Result<T>> + Send + 'static
    where
        F: FnOnce(&mut Batch<'_>, &mut Known) -> Result<T> + Send + 'static,
        T: Send + 'static,
    {
        let (tx, rx) = oneshot::channel();
        let job = Box::new(Pending {
            f: Some(f),
            out: None,
            tx,
        });
        let queued = match &*self.tx.lock().unwrap_or_else(PoisonError::into_inner) {
            Some(queue) => queue.send(job).is_ok(),
            None => false,
        };
        async move {
            if !queued {
                return Err(Error::Closed);
            }
            rx.await.map_err(|_| Error::Closed)?
        }
    }

    /// Runs what is queued, then stops the thread. Idempotent.
    pub(crate) fn stop(&self) {
        drop(
            self.tx
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .take(),
        );
        wal::join(&self.thread);
    }
}

impl Drop for Combiner {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The writer thread; see the [module docs](self).
fn run(rx: &Receiver<Box<dyn Job>>, records: &sled::Tree, log: &Log, known: &Mutex<Known>) {
    // As many writes as came together last time: wait for the stragglers.
    let mut expect = 1;
    while let Ok(first) = rx.recv() {
        let mut queued = vec![first];
        while queued.len() < MAX_COMBINED {
            match rx.try_recv() {
                Ok(job) => queued.push(job),
                Err(_) if queued.len() >= expect => break,
                Err(_) => match rx.recv_timeout(LINGER) {
                    Ok(job) => queued.push(job),
                    Err(_) => break,
                },
            }
        }
        expect = queued.len();
        let mut known = lock(known);
        let mut jobs = queued.into_iter().peekable();
        while jobs.peek().is_some() {
            let mut batch = Batch::new(records);
            let mut ran = Vec::new();
            let mut failed = false;
            for mut job in jobs.by_ref() {
                batch.begin();
                let ok = panic::catch_unwind(AssertUnwindSafe(|| job.run(&mut batch, &mut known)))
                    .unwrap_or(false);
                ran.push(job);
                if !ok {
                    batch.undo();
                    failed = true;
                    break;
                }
            }
            let applied = batch.apply(log);
            if failed || applied.is_err() {
                known.forget();
            }
            for job in ran {
                job.answer(&applied);
            }
        }
    }
}
