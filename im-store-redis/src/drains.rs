//! One fan-out drain at a time per conversation in this process (cluster).
//!
//! A drain applies every pending record of its conversation, not only its
//! own send's (see `write`), so concurrent sends to one group that each
//! drained at once would each apply every in-flight record to every member:
//! work that grows with the number of concurrent senders, until sends time
//! out. Queued behind the drain in progress, a send finds its record
//! applied already, or applies it together with the others that queued.
//! Only scheduling changes here: what a drain does in Redis, and its safety
//! when a node dies, are the same.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use im_engine::ConversationId;
use tokio::sync::{Mutex as AsyncMutex, OwnedMutexGuard};

/// The drain lock of each conversation being drained.
#[derive(Debug, Default)]
pub(crate) struct Drains {
    locks: Mutex<HashMap<ConversationId, Arc<AsyncMutex<()>>>>,
}

/// Held while draining a conversation; forgets the lock once nobody else
/// holds or waits for it.
#[derive(Debug)]
pub(crate) struct DrainGuard<'a> {
    drains: &'a Drains,
    conversation: ConversationId,
    guard: Option<OwnedMutexGuard<()>>,
    /// Whether the lock was free when asked for (no drain running or
    /// waiting): the caller may then use the pending records its commit
    /// answered instead of reading them again. A drain may still have run
    /// between the commit and the lock; the records are then partly applied
    /// already, which the watermarks make harmless.
    pub(crate) first: bool,
}

impl Drains {
    /// Waits until no other drain of `c` runs in this process.
    pub(crate) async fn lock(&self, c: &ConversationId) -> DrainGuard<'_> {
        let lock = {
            let mut locks = self.locks.lock().unwrap_or_else(|e| e.into_inner());
            Arc::clone(locks.entry(c.clone()).or_default())
        };
        let (guard, first) = match Arc::clone(&lock).try_lock_owned() {
            Ok(g) => (g, true),
            Err(_) => (lock.lock_owned().await, false),
        };
        DrainGuard {
            drains: self,
            conversation: c.clone(),
            guard: Some(guard),
            first,
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
}
