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

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};

use tokio::sync::Notify;

use crate::data::{Addressed, Signal, UserId};

/// Signals one stream may have waiting before the oldest is lost.
pub const BACKLOG: usize = 256;

/// Per-user queues of signals, shared by a store and its streams.
///
/// Each stream has a queue of its own that grows only while it has
/// signals waiting: an idle stream costs about a hundred bytes. (A Tokio
/// `broadcast` channel, which would do the fan-out, allocates all of its
/// `BACKLOG` slots up front: 10 KiB per user with a stream open.)
#[derive(Debug, Clone, Default)]
pub struct SignalBus {
    users: Arc<Mutex<HashMap<UserId, Vec<Weak<Queue>>>>>,
}

#[derive(Debug, Default)]
struct Queue {
    signals: Mutex<VecDeque<Arc<Signal>>>,
    arrived: Notify,
}

/// One stream's subscription: the signals addressed to its user from the
/// moment it subscribed.
#[derive(Debug)]
pub struct SignalReceiver {
    queue: Arc<Queue>,
}

impl SignalReceiver {
    /// The next signal, once there is one.
    pub async fn recv(&mut self) -> Arc<Signal> {
        loop {
            if let Some(signal) = self.try_recv() {
                return signal;
            }
            // A signal pushed since `try_recv` left a permit: no wake-up is
            // lost.
            self.queue.arrived.notified().await;
        }
    }

    /// The next signal if one is waiting.
    pub fn try_recv(&mut self) -> Option<Arc<Signal>> {
        lock(&self.queue.signals).pop_front()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl SignalBus {
    /// A bus with no subscriber.
    pub fn new() -> Self {
        Self::default()
    }

    /// Subscribes one stream of `user`.
    pub fn subscribe(&self, user: &UserId) -> SignalReceiver {
        let queue = Arc::new(Queue::default());
        let mut users = lock(&self.users);
        let streams = users.entry(user.clone()).or_default();
        streams.retain(|q| q.strong_count() > 0);
        streams.push(Arc::downgrade(&queue));
        SignalReceiver { queue }
    }

    /// Hands `signal` to every stream open here of the users it names.
    pub fn deliver(&self, addressed: &Addressed) {
        let mut users = lock(&self.users);
        if users.is_empty() {
            return;
        }
        let signal = Arc::new(addressed.signal.clone());
        for user in &addressed.to {
            let Some(streams) = users.get_mut(user) else {
                continue;
            };
            streams.retain(|q| {
                let Some(q) = q.upgrade() else {
                    return false;
                };
                let mut signals = lock(&q.signals);
                if signals.len() == BACKLOG {
                    signals.pop_front();
                }
                signals.push_back(Arc::clone(&signal));
                drop(signals);
                q.arrived.notify_one();
                true
            });
            if streams.is_empty() {
                // The user's last stream here closed.
                users.remove(user);
            }
        }
    }

    /// How many users have a stream subscribed here (for tests).
    pub fn users(&self) -> usize {
        let mut users = lock(&self.users);
        users.retain(|_, streams| streams.iter().any(|q| q.strong_count() > 0));
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
        assert!(ra.try_recv().is_none());
        assert_eq!(*rb.try_recv().unwrap(), typing("a"));
        drop(ra);
        bus.deliver(&Addressed {
            to: vec![a],
            signal: typing("b"),
        });
        assert_eq!(bus.users(), 1, "a's channel is gone with its last stream");
    }

    #[test]
    fn a_stream_behind_by_the_backlog_loses_the_oldest() {
        let bus = SignalBus::new();
        let a = UserId::new("a").unwrap();
        let mut slow = bus.subscribe(&a);
        let mut fast = bus.subscribe(&a);
        for n in 0..=BACKLOG {
            bus.deliver(&Addressed {
                to: vec![a.clone()],
                signal: typing(&format!("u{n}")),
            });
            assert_eq!(*fast.try_recv().unwrap(), typing(&format!("u{n}")));
        }
        assert_eq!(*slow.try_recv().unwrap(), typing("u1"), "u0 was lost");
        let rest = std::iter::from_fn(|| slow.try_recv()).count();
        assert_eq!(rest, BACKLOG - 1);
    }
}
