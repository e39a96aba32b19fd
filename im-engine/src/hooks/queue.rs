//! The after-commit queue: the engine reports each committed event into an
//! unbounded channel, and one task takes them out in order and calls
//! [`Hooks::after_commit`] on each.
//!
//! Unbounded, because the alternative costs more: a bounded queue would
//! either make a send wait for a slow hook or drop events. The task starts
//! with the first event (so an engine can be built outside a runtime) and
//! ends when the engine is dropped, after delivering what is queued.

use std::panic::AssertUnwindSafe;
use std::sync::{Arc, OnceLock};

use futures_util::FutureExt;
use tokio::sync::{mpsc, oneshot};

use super::{Committed, Hooks};

enum Item {
    Event(Box<Committed>),
    /// Answered once every event queued before it has been delivered.
    Barrier(oneshot::Sender<()>),
}

/// The engine's end of the queue.
pub(crate) struct AfterCommit {
    hooks: Arc<dyn Hooks>,
    queue: OnceLock<mpsc::UnboundedSender<Item>>,
}

impl AfterCommit {
    pub(crate) fn new(hooks: Arc<dyn Hooks>) -> Self {
        Self {
            hooks,
            queue: OnceLock::new(),
        }
    }

    /// The hooks, for the before-send check.
    pub(crate) fn hooks(&self) -> &dyn Hooks {
        &*self.hooks
    }

    fn sender(&self) -> &mpsc::UnboundedSender<Item> {
        self.queue.get_or_init(|| {
            let (tx, rx) = mpsc::unbounded_channel();
            tokio::spawn(deliver(Arc::clone(&self.hooks), rx));
            tx
        })
    }

    /// Queues `events` for the hook, in this order.
    pub(crate) fn report(&self, events: impl IntoIterator<Item = Committed>) {
        let tx = self.sender();
        for e in events {
            // The receiver lives while this sender does: the task ends only
            // once every sender is gone.
            let _ = tx.send(Item::Event(Box::new(e)));
        }
    }

    /// Waits until the hook has been called for every event reported so
    /// far.
    pub(crate) async fn drain(&self) {
        let Some(tx) = self.queue.get() else {
            return;
        };
        let (done, delivered) = oneshot::channel();
        if tx.send(Item::Barrier(done)).is_ok() {
            let _ = delivered.await;
        }
    }
}

async fn deliver(hooks: Arc<dyn Hooks>, mut rx: mpsc::UnboundedReceiver<Item>) {
    while let Some(item) = rx.recv().await {
        match item {
            Item::Event(e) => {
                // A panicking hook loses that one call, not the queue; the
                // panic itself is reported by the panic hook.
                let _ = AssertUnwindSafe(async { hooks.after_commit(&e).await })
                    .catch_unwind()
                    .await;
            }
            Item::Barrier(done) => {
                let _ = done.send(());
            }
        }
    }
}
