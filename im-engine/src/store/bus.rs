//! The signal bus: this process's delivery of [`Signal`]s to the event
//! streams open here.
//!
//! The engine publishes through [`Store::publish`](super::Store::publish);
//! a store shared by many processes carries the signal to the others, and
//! each process hands it to its own streams with [`SignalBus::deliver`].
//! Streams [`subscribe`](SignalBus::subscribe) per user. Nothing is kept:
//! a user without an open stream here costs one map lookup, and a stream
//! that falls more than [`BACKLOG`] signals behind loses the oldest (a
//! signal is only ever news of the moment).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::broadcast;

use crate::data::{Addressed, Signal, UserId};

/// Signals one user's streams may have waiting before the oldest is lost.
pub const BACKLOG: usize = 256;

/// Per-user channels of signals, shared by a store and its streams.
#[derive(Debug, Clone, Default)]
pub struct SignalBus {
    users: Arc<Mutex<HashMap<UserId, broadcast::Sender<Arc<Signal>>>>>,
}

/// One stream's subscription: the signals addressed to its user from the
/// moment it subscribed.
pub type SignalReceiver = broadcast::Receiver<Arc<Signal>>;

impl SignalBus {
    /// A bus with no subscriber.
    pub fn new() -> Self {
        Self::default()
    }

    /// Subscribes one stream of `user`.
    pub fn subscribe(&self, user: &UserId) -> SignalReceiver {
        let mut users = self.users.lock().unwrap_or_else(PoisonError::into_inner);
        users
            .entry(user.clone())
            .or_insert_with(|| broadcast::channel(BACKLOG).0)
            .subscribe()
    }

    /// Hands `signal` to every stream open here of the users it names.
    pub fn deliver(&self, addressed: &Addressed) {
        let mut users = self.users.lock().unwrap_or_else(PoisonError::into_inner);
        if users.is_empty() {
            return;
        }
        let signal = Arc::new(addressed.signal.clone());
        for user in &addressed.to {
            if let Some(tx) = users.get(user)
                && tx.send(Arc::clone(&signal)).is_err()
            {
                // No receiver left: the user's last stream here closed.
                users.remove(user);
            }
        }
    }

    /// How many users have a stream subscribed here (for tests).
    pub fn users(&self) -> usize {
        let mut users = self.users.lock().unwrap_or_else(PoisonError::into_inner);
        users.retain(|_, tx| tx.receiver_count() > 0);
        users.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn typing(user: &str) -> Signal {
        Signal::Typing {
            conversation: "dm:a:b".parse().unwrap(),
            user: UserId::new(user).unwrap(),
            typing: true,
        }
    }

    #[test]
    fn deliver_reaches_only_the_users_named() {
        let bus = SignalBus::new();
        let (a, b) = (UserId::new("a").unwrap(), UserId::new("b").unwrap());
        let mut ra = bus.subscribe(&a);
        let mut rb = bus.subscribe(&b);
        bus.deliver(&Addressed {
            to: vec![b.clone()],
            signal: typing("a"),
        });
        assert!(ra.try_recv().is_err());
        assert_eq!(*rb.try_recv().unwrap(), typing("a"));
        drop(ra);
        bus.deliver(&Addressed {
            to: vec![a],
            signal: typing("b"),
        });
        assert_eq!(bus.users(), 1, "a's channel is gone with its last stream");
    }
}
