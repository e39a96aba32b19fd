//! One fan-out drain at a time per conversation in this process (cluster).
//!
//! A drain applies every pending record of its conversation, not only its
//! own send's (see `write`), so concurrent sends to one group that each
//! drained at once would each apply every in-flight record to every member:
//! work that grows with the number of concurrent senders, until sends time
//! out. Queued behind the drain in progress, a send finds its record
//! applied already, or applies it together with the others that queued.
//!
//! A send whose record has been applied by a drain that read the pending
//! records after the send's commit does not drain at all: otherwise each
//! of the senders queued behind a big drain ran a round of its own over
//! the one or two records committed since, one script per member each, and
//! a group's senders moved in a convoy of one-record drains. Only
//! scheduling changes here: what a drain does in Redis, and its safety
//! when a node dies, are the same.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use im_engine::ConversationId;
use tokio::sync::{Mutex as AsyncMutex, OwnedMutexGuard};

/// The drain lock of each conversation being drained.
#[derive(Debug, Default)]
pub(crate) struct Drains {
    locks: Mutex<HashMap<ConversationId, DrainLock>>,
}

/// A conversation's drain lock, and how many drains of it have started.
#[derive(Debug, Default)]
struct DrainLock {
    /// Holds the number of the last drain that finished whole.
    lock: Arc<AsyncMutex<u64>>,
    /// Drains started, numbered from 1 (under the map's lock).
    started: u64,
}

/// Held while draining a conversation; forgets the lock once nobody else
/// holds or waits for it.
#[derive(Debug)]
pub(crate) struct DrainGuard<'a> {
    drains: &'a Drains,
    conversation: ConversationId,
    guard: Option<OwnedMutexGuard<u64>>,
    /// Whether the lock was free when asked for (no drain running or
    /// waiting): the caller may then use the pending records its commit
    /// answered instead of reading them again. A drain may still have run
    /// between the commit and the lock; the records are then partly applied
    /// already, which the watermarks make harmless.
    pub(crate) first: bool,
    /// Whether a drain started after [`Drains::lock`] was called has
    /// finished whole. Only drains that read the pending records
    /// themselves after [`DrainGuard::start`] are counted, so every record
    /// committed before the call is applied.
    pub(crate) covered: bool,
}

impl Drains {
    /// Waits until no other drain of `c` runs in this process. Call it
    /// after the commit whose records are to be drained.
    pub(crate) async fn lock(&self, c: &ConversationId) -> DrainGuard<'_> {
        let (lock, asked_at) = {
            let mut locks = self.locks.lock().unwrap_or_else(|e| e.into_inner());
            let entry = locks.entry(c.clone()).or_default();
            (Arc::clone(&entry.lock), entry.started)
        };
        let (guard, first) = match Arc::clone(&lock).try_lock_owned() {
            Ok(g) => (g, true),
            Err(_) => (lock.lock_owned().await, false),
        };
        DrainGuard {
            drains: self,
            conversation: c.clone(),
            covered: *guard > asked_at,
            guard: Some(guard),
            first,
        }
    }
}

impl DrainGuard<'_> {
    /// Marks the start of a drain that reads the pending records itself
    /// (not a commit's answer, which may predate the commits of the sends
    /// waiting); answers its number, for [`Self::finished`].
    pub(crate) fn start(&self) -> u64 {
        let mut locks = self.drains.locks.lock().unwrap_or_else(|e| e.into_inner());
        // Ours while we hold it: a lock is only forgotten when idle.
        let entry = locks.entry(self.conversation.clone()).or_default();
        entry.started += 1;
        entry.started
    }

    /// Records that drain `n` (from [`Self::start`]) finished whole.
    pub(crate) fn finished(&mut self, n: u64) {
        if let Some(g) = self.guard.as_mut() {
            **g = n;
        }
    }
}

impl Drop for DrainGuard<'_> {
    fn drop(&mut self) {
        let mut locks = self.drains.locks.lock().unwrap_or_else(|e| e.into_inner());
        // Ours and the map's: nobody else holds or waits for it (a waiter
        // clones it under the map's lock, which we hold).
        let idle = self
            .guard
            .take()
            .is_some_and(|g| Arc::strong_count(OwnedMutexGuard::mutex(&g)) == 2);
        if idle {
            locks.remove(&self.conversation);
        }
    }
}

#[cfg(test)]
mod tests {
    use futures_util::FutureExt;

    use super::*;

    #[tokio::test]
    async fn drains_of_one_conversation_queue_and_are_forgotten_after() {
        let drains = Drains::default();
        let (a, b): (ConversationId, ConversationId) =
            ("group:a".parse().unwrap(), "group:b".parse().unwrap());
        let first = drains.lock(&a).await;
        assert!(first.first);
        // Another conversation does not wait.
        assert!(drains.lock(&b).await.first);
        let waiter = drains.lock(&a);
        let mut waiter = std::pin::pin!(waiter);
        assert!(waiter.as_mut().now_or_never().is_none(), "it waits");
        drop(first);
        let second = waiter.await;
        assert!(!second.first, "it waited for a drain");
        drop(second);
        assert!(drains.locks.lock().unwrap().is_empty());
    }

    #[tokio::test]
    async fn a_drain_started_after_a_commit_covers_it_once_finished() {
        let drains = Drains::default();
        let c: ConversationId = "group:a".parse().unwrap();
        // A drain runs; a send commits meanwhile, then asks for the lock.
        let mut running = drains.lock(&c).await;
        let n = running.start();
        let early = drains.lock(&c);
        let mut early = std::pin::pin!(early);
        assert!(early.as_mut().now_or_never().is_none());
        running.finished(n);
        drop(running);
        // That drain started before the send asked: it may not have seen
        // the send's record.
        let mut early = early.await;
        assert!(!early.covered);
        // Another send asks before the drain starts: the drain covers it.
        let late = drains.lock(&c);
        let mut late = std::pin::pin!(late);
        assert!(late.as_mut().now_or_never().is_none());
        let n = early.start();
        early.finished(n);
        drop(early);
        assert!(late.await.covered);
    }

    #[tokio::test]
    async fn a_failed_drain_covers_nobody() {
        let drains = Drains::default();
        let c: ConversationId = "group:a".parse().unwrap();
        let running = drains.lock(&c).await;
        let waiter = drains.lock(&c);
        let mut waiter = std::pin::pin!(waiter);
        assert!(waiter.as_mut().now_or_never().is_none());
        let _ = running.start();
        // It fails: never marked finished.
        drop(running);
        assert!(!waiter.await.covered);
    }
}
