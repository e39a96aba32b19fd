//! Waiting for events: the long poll and the live stream.

use std::time::Duration;

use futures_core::Stream;
use tokio::time::Instant;

use super::{Delivered, EventPage, Start};
use crate::engine::{Actor, Engine};
use crate::error::Error;
use crate::store::{Store, Wakeup};

/// How many feed entries a live stream reads at once.
const BATCH: usize = 256;

impl<S: Store> Engine<S> {
    /// A long poll of the actor's own feed (policy rule 6): the events after
    /// `start` as soon as there is at least one, or none after `wait`. The
    /// user counts as online meanwhile.
    ///
    /// # Errors
    ///
    /// [`Error::Invalid`] for a bad limit, [`Error::NotFound`] for an
    /// unknown user, [`Error::Store`].
    pub async fn poll(
        &self,
        actor: &Actor,
        start: Start,
        wait: Duration,
        limit: Option<usize>,
    ) -> Result<EventPage, Error> {
        let limit = crate::engine::page_limit(limit, 100, self.limits().events_page)?;
        self.refuse_suspended(actor)?;
        let user = &actor.user;
        self.require_user(user).await?;
        let _online = self.connect(actor).await?;
        let mut wake = self.store().notifier().subscribe(user);
        let (mut pos, reset) = self.resolve(user, start).await?;
        let mut events: Vec<_> = reset.into_iter().collect();
        let deadline = Instant::now() + wait;
        loop {
            wake.mark_seen();
            let (batch, next) = self
                .read_after(user, pos, limit.saturating_sub(events.len()).max(1))
                .await?;
            pos = next;
            events.extend(batch);
            if !events.is_empty()
                || !wait_for(&mut wake, Some(deadline), self.config().recheck).await
            {
                break;
            }
        }
        Ok(EventPage {
            events,
            next: self.cursor(pos),
        })
    }

    /// The live stream of the actor's own events (policy rule 6): first
    /// those after `start`, then new ones as they land, each once and in
    /// order. It registers for
    /// wake-ups before it reads, and reads the feed after every wake-up, so
    /// nothing falls between the replay and the live part however they race.
    /// Wake-ups that come faster than [`Config::coalesce`](crate::Config)
    /// are coalesced: the next read waits until that long after the last.
    /// The stream holds the user online while it lives, and never ends by
    /// itself unless the store fails or the user is suspended (the error is
    /// its last item).
    ///
    /// # Errors
    ///
    /// [`Error::NotFound`] for an unknown user, [`Error::Store`].
    pub async fn events(
        &self,
        actor: &Actor,
        start: Start,
    ) -> Result<impl Stream<Item = Result<Delivered, Error>> + Send + 'static, Error> {
        self.refuse_suspended(actor)?;
        let user = &actor.user;
        self.require_user(user).await?;
        let online = self.connect(actor).await?;
        let mut wake = self.store().notifier().subscribe(user);
        let mut suspension = self.suspension_watch(user);
        let (mut pos, reset) = self.resolve(user, start).await?;
        let engine = self.clone();
        let user = user.clone();
        // Boxed: the stream holds it for its whole life.
        let reset = reset.map(Box::new);
        Ok(async_stream::try_stream! {
            let _online = online;
            let (recheck, coalesce) = (engine.config().recheck, engine.config().coalesce);
            // Moved on only when it fires, not at every read: a busy stream
            // does not touch the timer per event.
            let timer = tokio::time::sleep(recheck);
            tokio::pin!(timer);
            if let Some(reset) = reset {
                yield *reset;
            }
            loop {
                wake.mark_seen();
                let read_at = Instant::now();
                // Boxed for the time of the read: an idle stream does not
                // hold the read's state (1.4 KiB of its 2 KiB).
                let (batch, next) = Box::pin(engine.read_after(&user, pos, BATCH)).await?;
                // Positions are dense: a full batch means there may be more.
                let more = next - pos >= BATCH as u64;
                pos = next;
                for event in batch {
                    yield event;
                }
                if more {
                    continue;
                }
                let woken = loop {
                    tokio::select! {
                        alive = wake.changed() => break Ok(alive),
                        () = &mut timer => {
                            let due = read_at + recheck;
                            if Instant::now() >= due {
                                timer.as_mut().reset(Instant::now() + recheck);
                                break Ok(true);
                            }
                            timer.as_mut().reset(due);
                        }
                        () = suspension.suspended() => {
                            break Err(Error::Suspended(format!("{user} is suspended")));
                        }
                    }
                };
                if !woken? {
                    break;
                }
                // Woken again this soon: under load. What lands meanwhile
                // is read with it, in one read and one write.
                let due = read_at + coalesce;
                if Instant::now() < due {
                    tokio::time::sleep_until(due).await;
                }
            }
        })
    }
}

/// Waits for a wake-up, the recheck interval, or the deadline. Returns false
/// at the deadline or when the notifier is gone.
pub(crate) async fn wait_for(
    wake: &mut Wakeup,
    deadline: Option<Instant>,
    recheck: Duration,
) -> bool {
    let recheck = Instant::now() + recheck;
    let until = deadline.map_or(recheck, |d| d.min(recheck));
    tokio::select! {
        changed = wake.changed() => changed,
        () = tokio::time::sleep_until(until) => deadline.is_none_or(|d| until < d),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tokio::time::Instant;

    use crate::feed::{EventData, Start};
    use crate::testing::subscription::take;
    use crate::{Actor, Body, Config, Engine, MemoryStore, SendRequest, Seq, UserId};

    fn uid(s: &str) -> UserId {
        UserId::new(s).unwrap()
    }

    async fn send(engine: &Engine<MemoryStore>, n: usize) {
        let body = Body::new(&format!(r#"{{"n":{n}}}"#), 100).unwrap();
        let dm = "dm:alice:bob".parse().unwrap();
        engine
            .send(&Actor::user(uid("alice")), &dm, SendRequest::new(body))
            .await
            .unwrap();
    }

    fn seqs(events: &[crate::Delivered]) -> Vec<Seq> {
        let seq = |d: &crate::Delivered| match &d.data {
            EventData::Message(m) => m.seq,
            other => panic!("unexpected {other:?}"),
        };
        events.iter().map(seq).collect()
    }

    /// A stream woken after a quiet spell reads at once; woken again sooner
    /// than `coalesce` after that read, it reads what landed meanwhile
    /// once that time is up, every event once and in order.
    #[tokio::test(start_paused = true)]
    async fn wake_ups_under_load_are_coalesced_and_lose_nothing() {
        let coalesce = Duration::from_millis(500);
        let config = Config {
            coalesce,
            ..Config::default()
        };
        let engine = Engine::with_config(MemoryStore::new(), config);
        for u in ["alice", "bob"] {
            engine
                .put_user(&Actor::admin(uid("root")), &uid(u), Default::default())
                .await
                .unwrap();
        }
        let stream = engine
            .events(&Actor::user(uid("bob")), Start::Live)
            .await
            .unwrap();
        let mut stream = std::pin::pin!(stream);
        tokio::time::sleep(2 * coalesce).await;
        let sent = Instant::now();
        send(&engine, 1).await;
        let first = take(stream.as_mut(), 1).await;
        assert_eq!(seqs(&first), [1]);
        assert!(sent.elapsed() < coalesce, "a quiet stream reads at once");
        let read = Instant::now();
        for n in 2..=4 {
            send(&engine, n).await;
        }
        let rest = take(stream.as_mut(), 3).await;
        assert_eq!(seqs(&rest), [2, 3, 4]);
        assert!(
            read.elapsed() >= coalesce,
            "read together, once the time is up"
        );
        // The next send after a quiet spell is read at once again.
        tokio::time::sleep(2 * coalesce).await;
        let sent = Instant::now();
        send(&engine, 5).await;
        assert_eq!(seqs(&take(stream.as_mut(), 1).await), [5]);
        assert!(sent.elapsed() < coalesce);
    }
}
