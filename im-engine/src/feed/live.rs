//! Waiting for events: the long poll and the live stream.

use std::time::Duration;

use futures_core::Stream;
use tokio::sync::watch;

use super::{Delivered, EventPage, Start};
use crate::engine::{Actor, Engine};
use crate::error::Error;
use crate::store::Store;

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
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            wake.borrow_and_update();
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
        Ok(async_stream::try_stream! {
            let _online = online;
            if let Some(reset) = reset {
                yield reset;
            }
            loop {
                wake.borrow_and_update();
                let (batch, next) = engine.read_after(&user, pos, BATCH).await?;
                // Positions are dense: a full batch means there may be more.
                let more = next - pos >= BATCH as u64;
                pos = next;
                for event in batch {
                    yield event;
                }
                if more {
                    continue;
                }
                let woken = tokio::select! {
                    alive = wait_for(&mut wake, None, engine.config().recheck) => Ok(alive),
                    () = suspension.suspended() => {
                        Err(Error::Suspended(format!("{user} is suspended")))
                    }
                };
                if !woken? {
                    break;
                }
            }
        })
    }
}

/// Waits for a wake-up, the recheck interval, or the deadline. Returns false
/// at the deadline or when the notifier is gone.
pub(crate) async fn wait_for(
    wake: &mut watch::Receiver<u64>,
    deadline: Option<tokio::time::Instant>,
    recheck: Duration,
) -> bool {
    let recheck = tokio::time::Instant::now() + recheck;
    let until = deadline.map_or(recheck, |d| d.min(recheck));
    tokio::select! {
        changed = wake.changed() => changed.is_ok(),
        () = tokio::time::sleep_until(until) => deadline.is_none_or(|d| until < d),
    }
}
