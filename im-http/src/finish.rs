//! Runs a command to its end even when its client leaves.
//!
//! hyper drops a request's future when the connection closes before the
//! answer. An engine command dropped part way can leave an operation of
//! several store steps half done: an erase with some messages blanked and
//! the account still there, a ban without the removal, a room join without
//! its conversation entry, an approved join whose request stays pending.
//! [`to_the_end`] polls the command in place while the client waits, and
//! hands what is left of it to a task of its own when it is dropped first.
//! Spawning every command would do the same at the cost of a task and a
//! hop between threads per request, in the common case where the client
//! waits for its answer.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

/// `fut`, finished on a task of its own if dropped before it is done.
pub(crate) fn to_the_end<F>(fut: F) -> ToTheEnd<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    ToTheEnd {
        fut: Some(Box::pin(fut)),
    }
}

/// See [`to_the_end`].
pub(crate) struct ToTheEnd<T: Send + 'static> {
    /// `None` once done.
    fut: Option<Pin<Box<dyn Future<Output = T> + Send>>>,
}

impl<T: Send + 'static> Future for ToTheEnd<T> {
    type Output = T;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<T> {
        let fut = self
            .fut
            .as_mut()
            .expect("ToTheEnd polled after it was done");
        let out = std::task::ready!(fut.as_mut().poll(cx));
        self.fut = None;
        Poll::Ready(out)
    }
}

impl<T: Send + 'static> Drop for ToTheEnd<T> {
    fn drop(&mut self) {
        let Some(fut) = self.fut.take() else { return };
        // Outside a runtime (it is shutting down) nothing can finish it.
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(async move {
                let _ = fut.await;
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    use super::*;

    /// Steps that each wait, counted as they end.
    async fn steps(done: Arc<AtomicUsize>, n: usize) -> usize {
        for _ in 0..n {
            tokio::time::sleep(Duration::from_millis(5)).await;
            done.fetch_add(1, Ordering::SeqCst);
        }
        n
    }

    #[tokio::test]
    async fn a_waited_for_future_answers_in_place() {
        let done = Arc::new(AtomicUsize::new(0));
        assert_eq!(to_the_end(steps(Arc::clone(&done), 3)).await, 3);
        assert_eq!(done.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn a_dropped_future_still_runs_every_step() {
        let done = Arc::new(AtomicUsize::new(0));
        let cut = tokio::time::timeout(
            Duration::from_millis(12),
            to_the_end(steps(Arc::clone(&done), 10)),
        )
        .await;
        assert!(cut.is_err(), "the caller stopped waiting part way");
        assert!(done.load(Ordering::SeqCst) < 10);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while done.load(Ordering::SeqCst) < 10 {
            assert!(
                tokio::time::Instant::now() < deadline,
                "stopped after {} of 10 steps",
                done.load(Ordering::SeqCst)
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}
