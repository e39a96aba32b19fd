//! Group commit: one thread flushes for every writer waiting.
//!
//! A writer commits its batch, then registers here and waits. The
//! flusher thread takes every writer registered so far, calls `Db::flush`
//! once (sled writes its log buffers and fsyncs), and answers them all.
//! Whoever registers during that flush committed after it started, so it
//! waits for the next one: an answer always means "flushed after your
//! commit". Concurrent senders thus share one fsync, and the fsync rate, not
//! the number of writers, bounds the cost of durability.
//!
//! While the store is open only this thread calls `flush`: sled 0.34 can
//! stop making progress when many tasks await `flush_async` at once
//! (spacejam/sled#1241, #1308).

use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;

use tokio::sync::oneshot;

use crate::error::{Error, Result};

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
    /// Starts the flusher thread for `db`.
    pub(crate) fn start(db: sled::Db) -> Result<Self> {
        let shared = Arc::new(Shared::default());
        let thread = std::thread::Builder::new()
            .name("im-store-sled-flusher".into())
            .spawn({
                let shared = Arc::clone(&shared);
                move || run(&db, &shared)
            })
            .map_err(Error::Thread)?;
        Ok(Self {
            shared,
            thread: Some(thread),
        })
    }

    /// Waits until a flush that started after this call has finished, so
    /// every write committed before the call is durable.
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

    /// Answers the writers still waiting, flushes one last time and stops
    /// the thread; returns that flush's outcome. Idempotent.
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

fn run(db: &sled::Db, shared: &Shared) -> Answer {
    loop {
        let batch = {
            let mut st = shared.state();
            while st.waiting.is_empty() && !st.closing {
                st = shared.wake.wait(st).unwrap_or_else(PoisonError::into_inner);
            }
            if st.waiting.is_empty() {
                drop(st);
                return db.flush().map(drop);
            }
            std::mem::take(&mut st.waiting)
        };
        let answer = db.flush().map(drop);
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
        let mut gc = GroupCommit::start(db.clone()).unwrap();
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
}
