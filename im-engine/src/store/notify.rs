//! Wake-ups for live streams: "this user's feed advanced".
//!
//! A notification carries no event, only the news that a feed grew; a woken
//! stream reads the feed from its own cursor. So a lost or doubled wake-up
//! costs latency or one empty read, never an event.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::watch;

use crate::data::UserId;

/// Per-user wake-ups, shared by a store and the streams reading from it.
#[derive(Debug, Clone, Default)]
pub struct Notifier {
    users: Arc<Mutex<HashMap<UserId, watch::Sender<u64>>>>,
    /// Woken whenever any feed grows: the firehose's streams.
    any: Arc<watch::Sender<u64>>,
}

impl Notifier {
    /// A notifier with no subscriber.
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers for wake-ups of `user`'s feed. The receiver counts every
    /// wake-up from now on: mark it seen, read the feed, then wait for a
    /// change, and no growth can slip between the read and the wait.
    pub fn subscribe(&self, user: &UserId) -> watch::Receiver<u64> {
        let mut users = self.users.lock().unwrap_or_else(PoisonError::into_inner);
        users
            .entry(user.clone())
            .or_insert_with(|| watch::channel(0).0)
            .subscribe()
    }

    /// Registers for wake-ups of any feed's growth (the firehose's
    /// streams), as [`Notifier::subscribe`] does for one user's.
    pub fn subscribe_any(&self) -> watch::Receiver<u64> {
        self.any.subscribe()
    }

    /// Wakes every stream of these users, and the firehose's.
    pub fn wake<'a>(&self, users: impl IntoIterator<Item = &'a UserId>) {
        if self.any.receiver_count() > 0 {
            self.any.send_modify(|n| *n = n.wrapping_add(1));
        }
        let mut map = self.users.lock().unwrap_or_else(PoisonError::into_inner);
        if map.is_empty() {
            return;
        }
        for user in users {
            if let Some(tx) = map.get(user) {
                if tx.receiver_count() == 0 {
                    map.remove(user);
                } else {
                    tx.send_modify(|n| *n = n.wrapping_add(1));
                }
            }
        }
    }

    /// Wakes every stream, for when wake-ups may have been lost: a store's
    /// subscription to other nodes' notifications came back after a gap.
    /// Each stream then reads its feed once, finding what it missed.
    pub fn wake_all(&self) {
        self.any.send_modify(|n| *n = n.wrapping_add(1));
        let mut map = self.users.lock().unwrap_or_else(PoisonError::into_inner);
        map.retain(|_, tx| tx.receiver_count() > 0);
        for tx in map.values() {
            tx.send_modify(|n| *n = n.wrapping_add(1));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wake_all_wakes_every_stream_and_forgets_the_closed() {
        let notifier = Notifier::new();
        let (alice, bob) = (UserId::new("alice").unwrap(), UserId::new("bob").unwrap());
        let mut a = notifier.subscribe(&alice);
        let b = notifier.subscribe(&bob);
        drop(notifier.subscribe(&UserId::new("carol").unwrap()));
        notifier.wake([&alice]);
        assert!(a.has_changed().unwrap() && !b.has_changed().unwrap());
        a.borrow_and_update();
        notifier.wake_all();
        assert!(a.has_changed().unwrap() && b.has_changed().unwrap());
        let users = notifier.users.lock().unwrap();
        assert_eq!(users.len(), 2, "carol's stream is gone");
    }
}
