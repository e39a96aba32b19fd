//! Wake-ups for live streams: "this user's feed advanced".
//!
//! A notification carries no event, only the news that a feed grew; a woken
//! stream reads the feed from its own cursor. So a lost or doubled wake-up
//! costs latency or one empty read, never an event.
//!
//! A send to a group wakes every member's streams, under the store's write,
//! so a wake-up is made cheap: a counter and one [`Notify`] per user (a
//! `watch` channel locks eight), in a map hashed with aHash.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::Notify;

use crate::data::UserId;

/// One feed's wake-ups: how many there were, and who waits for the next.
#[derive(Debug, Default)]
struct Wakes {
    count: AtomicU64,
    /// Set when the notifier is gone: no wake-up will come.
    closed: AtomicBool,
    waiters: Notify,
}

impl Wakes {
    fn wake(&self) {
        self.count.fetch_add(1, Ordering::Release);
        self.waiters.notify_waiters();
    }

    fn close(&self) {
        self.closed.store(true, Ordering::Release);
        self.waiters.notify_waiters();
    }
}

/// A stream's registration for wake-ups of one feed (or of any feed): it
/// counts every wake-up since it was made. Mark them seen, read the feed,
/// then wait for [`Wakeup::changed`], and no growth can slip between the
/// read and the wait.
#[derive(Debug)]
pub struct Wakeup {
    wakes: Arc<Wakes>,
    seen: u64,
}

impl Wakeup {
    fn new(wakes: Arc<Wakes>) -> Self {
        let seen = wakes.count.load(Ordering::Acquire);
        Self { wakes, seen }
    }

    /// Marks every wake-up so far as seen.
    pub fn mark_seen(&mut self) {
        self.seen = self.wakes.count.load(Ordering::Acquire);
    }

    /// Whether a wake-up came that is not marked seen.
    pub fn has_changed(&self) -> bool {
        self.wakes.count.load(Ordering::Acquire) != self.seen
    }

    /// Waits for a wake-up not yet seen and marks it seen; false when the
    /// notifier is gone and none will come.
    pub async fn changed(&mut self) -> bool {
        loop {
            let notified = self.wakes.waiters.notified();
            let mut notified = std::pin::pin!(notified);
            // Registered before the count is read: a wake-up after the read
            // finds this waiter.
            notified.as_mut().enable();
            let count = self.wakes.count.load(Ordering::Acquire);
            if count != self.seen {
                self.seen = count;
                return true;
            }
            if self.wakes.closed.load(Ordering::Acquire) {
                return false;
            }
            notified.await;
        }
    }
}

/// The users whose streams are registered; dropped with the last clone of
/// the notifier, which ends every wait.
#[derive(Debug, Default)]
struct Users(HashMap<UserId, Arc<Wakes>, ahash::RandomState>);

impl Drop for Users {
    fn drop(&mut self) {
        for wakes in self.0.values() {
            wakes.close();
        }
    }
}

/// Ends the waits of the firehose's streams with the last clone of the
/// notifier.
#[derive(Debug, Default)]
struct Any(Arc<Wakes>);

impl Drop for Any {
    fn drop(&mut self) {
        self.0.close();
    }
}

/// Per-user wake-ups, shared by a store and the streams reading from it.
#[derive(Debug, Clone, Default)]
pub struct Notifier {
    users: Arc<Mutex<Users>>,
    /// Woken whenever any feed grows: the firehose's streams.
    any: Arc<Any>,
}

impl Notifier {
    /// A notifier with no subscriber.
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers for wake-ups of `user`'s feed. The registration counts
    /// every wake-up from now on: mark them seen, read the feed, then wait
    /// for a change, and no growth can slip between the read and the wait.
    pub fn subscribe(&self, user: &UserId) -> Wakeup {
        let mut users = self.users.lock().unwrap_or_else(PoisonError::into_inner);
        let wakes = users.0.entry(user.clone()).or_default();
        Wakeup::new(Arc::clone(wakes))
    }

    /// Registers for wake-ups of any feed's growth (the firehose's
    /// streams), as [`Notifier::subscribe`] does for one user's.
    pub fn subscribe_any(&self) -> Wakeup {
        Wakeup::new(Arc::clone(&self.any.0))
    }

    /// Wakes every stream of these users, and the firehose's.
    pub fn wake<'a>(&self, users: impl IntoIterator<Item = &'a UserId>) {
        if Arc::strong_count(&self.any.0) > 1 {
            self.any.0.wake();
        }
        let mut map = self.users.lock().unwrap_or_else(PoisonError::into_inner);
        let map = &mut map.0;
        if map.is_empty() {
            return;
        }
        for user in users {
            if let Some(wakes) = map.get(user) {
                // Only the map holds it: every stream of the user is gone.
                if Arc::strong_count(wakes) == 1 {
                    map.remove(user);
                } else {
                    wakes.wake();
                }
            }
        }
    }

    /// Wakes every stream, for when wake-ups may have been lost: a store's
    /// subscription to other nodes' notifications came back after a gap.
    /// Each stream then reads its feed once, finding what it missed.
    pub fn wake_all(&self) {
        self.any.0.wake();
        let mut map = self.users.lock().unwrap_or_else(PoisonError::into_inner);
        map.0.retain(|_, wakes| Arc::strong_count(wakes) > 1);
        for wakes in map.0.values() {
            wakes.wake();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn wake_all_wakes_every_stream_and_forgets_the_closed() {
        let notifier = Notifier::new();
        let (alice, bob) = (UserId::new("alice").unwrap(), UserId::new("bob").unwrap());
        let mut a = notifier.subscribe(&alice);
        let b = notifier.subscribe(&bob);
        drop(notifier.subscribe(&UserId::new("carol").unwrap()));
        notifier.wake([&alice]);
        assert!(a.has_changed() && !b.has_changed());
        a.mark_seen();
        notifier.wake_all();
        assert!(a.has_changed() && b.has_changed());
        let users = notifier.users.lock().unwrap();
        assert_eq!(users.0.len(), 2, "carol's stream is gone");
    }

    #[tokio::test]
    async fn a_wake_up_before_the_wait_is_not_lost_and_is_seen_once() {
        let notifier = Notifier::new();
        let alice = UserId::new("alice").unwrap();
        let mut a = notifier.subscribe(&alice);
        let mut any = notifier.subscribe_any();
        notifier.wake([&alice]);
        notifier.wake([&alice]);
        // Both wake-ups came before the wait: one wait returns at once.
        assert!(a.changed().await && any.changed().await);
        let again = tokio::time::timeout(Duration::from_millis(20), a.changed()).await;
        assert!(again.is_err(), "no wake-up since the last seen");
        // A wake-up while waiting ends the wait.
        let waiting = tokio::spawn(async move { a.changed().await });
        tokio::task::yield_now().await;
        notifier.wake([&alice]);
        assert!(waiting.await.unwrap());
    }

    #[tokio::test]
    async fn waits_end_when_the_notifier_is_gone() {
        let notifier = Notifier::new();
        let mut a = notifier.subscribe(&UserId::new("alice").unwrap());
        let mut any = notifier.subscribe_any();
        let waiting = tokio::spawn(async move { (a.changed().await, any.changed().await) });
        tokio::task::yield_now().await;
        drop(notifier);
        assert_eq!(waiting.await.unwrap(), (false, false));
    }
}
