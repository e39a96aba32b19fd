//! Reading the firehose: where a cursor starts, a merged read of the
//! partitions, the long poll and the live stream.

use std::time::Duration;

use futures_core::Stream;

use super::{FireCursor, FireStart};
use crate::data::{Event, FireEntry, UserId};
use crate::engine::{Actor, Engine};
use crate::error::Error;
use crate::feed::live::wait_for;
use crate::feed::{EventData, ResetReason};
use crate::policy::{self, Action};
use crate::store::Store;

/// How many entries a live stream reads at once (from each partition).
const BATCH: usize = 256;

/// A firehose event as delivered: references resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FireDelivered {
    /// Resume after this event with this cursor.
    pub cursor: FireCursor,
    /// The user whose feed holds it, for events of one user (`read`,
    /// `join_request`, `contact`).
    pub user: Option<UserId>,
    /// The event, as a user's stream shows it.
    pub data: EventData,
}

impl FireDelivered {
    /// The event's `data` as JSON: what a user's stream shows (seen by
    /// `viewer`), plus `"feed": <user>` for an event of one user.
    pub fn data_json(&self, viewer: &UserId) -> serde_json::Value {
        let mut data =
            serde_json::to_value(self.data.view(viewer)).unwrap_or(serde_json::Value::Null);
        if let (Some(user), Some(object)) = (&self.user, data.as_object_mut()) {
            object.insert("feed".into(), serde_json::Value::String(user.to_string()));
        }
        data
    }
}

/// Firehose events (a long poll's answer) and where to go on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FirePage {
    /// The events, possibly none.
    pub events: Vec<FireDelivered>,
    /// The cursor to poll after next.
    pub next: FireCursor,
}

impl<S: Store> Engine<S> {
    fn fire_cursor(&self, pos: Vec<u64>) -> FireCursor {
        FireCursor {
            epoch: self.store().epoch(),
            pos,
        }
    }

    /// Where reading starts for `start`, and the reset to send first if the
    /// cursor cannot be honoured (another store's, or other partitions).
    async fn fire_resolve(
        &self,
        start: FireStart,
    ) -> Result<(Vec<u64>, Option<FireDelivered>), Error> {
        let parts = self.store().firehose_partitions();
        let mut heads = Vec::with_capacity(parts);
        for part in 0..parts {
            let read = self.store().firehose(part, u64::MAX, 0);
            heads.push(read.await.map_err(Error::store)?.head);
        }
        let oldest = vec![0; parts];
        Ok(match start {
            FireStart::Live => (heads, None),
            FireStart::Oldest => (oldest, None),
            FireStart::After(c)
                if c.epoch != self.store().epoch()
                    || c.pos.len() != parts
                    || c.pos.iter().zip(&heads).any(|(p, h)| p > h) =>
            {
                let reset = FireDelivered {
                    cursor: self.fire_cursor(oldest.clone()),
                    user: None,
                    data: EventData::Reset {
                        reason: ResetReason::Unknown,
                    },
                };
                (oldest, Some(reset))
            }
            FireStart::After(c) => (c.pos, None),
        })
    }

    /// Up to `limit` events after `pos`, resolved, merged by time from the
    /// partitions (each partition's order kept), and moves `pos` on.
    async fn fire_read(&self, pos: &mut [u64], limit: usize) -> Result<Vec<FireDelivered>, Error> {
        let mut parts: Vec<std::collections::VecDeque<FireEntry>> = Vec::with_capacity(pos.len());
        for (part, after) in pos.iter().enumerate() {
            let read = self.store().firehose(part, *after, limit);
            parts.push(read.await.map_err(Error::store)?.entries.into());
        }
        let mut out = Vec::new();
        while out.len() < limit {
            let next = parts
                .iter()
                .enumerate()
                .filter_map(|(i, q)| q.front().map(|e| (e.ts, i)))
                .min();
            let Some((_, part)) = next else { break };
            let Some(entry) = parts[part].pop_front() else {
                break;
            };
            pos[part] = entry.pos;
            if let Some(data) = self.fire_resolved(&entry).await? {
                out.push(FireDelivered {
                    cursor: self.fire_cursor(pos.to_vec()),
                    user: entry.user,
                    data,
                });
            }
        }
        Ok(out)
    }

    /// What an entry is delivered as (`None` for a message the history no
    /// longer holds).
    async fn fire_resolved(&self, entry: &FireEntry) -> Result<Option<EventData>, Error> {
        let message = match &entry.event {
            Event::Message { conversation, seq } => {
                self.recent_message(conversation, *seq, entry.ts).await?
            }
            Event::Edit { conversation, seq } => {
                self.forget_message(conversation, *seq);
                self.stored_message(conversation, *seq).await?
            }
            Event::Delete {
                conversation, seq, ..
            }
            | Event::Reaction {
                conversation, seq, ..
            } => {
                self.forget_message(conversation, *seq);
                None
            }
            _ => None,
        };
        Ok(EventData::resolved(entry.event.clone(), message))
    }

    /// The firehose from `start`, at most `limit` events, without waiting
    /// (an admin only: policy rule 7).
    ///
    /// # Errors
    ///
    /// [`Error::Forbidden`], [`Error::Invalid`] for a bad limit,
    /// [`Error::Store`].
    pub async fn firehose(
        &self,
        actor: &Actor,
        start: FireStart,
        limit: Option<usize>,
    ) -> Result<FirePage, Error> {
        self.fire_poll(actor, start, Duration::ZERO, limit).await
    }

    /// A long poll of the firehose (an admin only: policy rule 7): the
    /// events after `start` as soon as there is at least one, or none after
    /// `wait`.
    ///
    /// # Errors
    ///
    /// [`Error::Forbidden`], [`Error::Invalid`] for a bad limit,
    /// [`Error::Store`].
    pub async fn fire_poll(
        &self,
        actor: &Actor,
        start: FireStart,
        wait: Duration,
        limit: Option<usize>,
    ) -> Result<FirePage, Error> {
        policy::check(actor, Action::Firehose)?;
        let limit = crate::engine::page_limit(limit, 100, self.limits().events_page)?;
        let mut wake = self.store().notifier().subscribe_any();
        let (mut pos, reset) = self.fire_resolve(start).await?;
        let mut events: Vec<_> = reset.into_iter().collect();
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            wake.mark_seen();
            let room = limit.saturating_sub(events.len()).max(1);
            events.extend(self.fire_read(&mut pos, room).await?);
            if !events.is_empty()
                || wait.is_zero()
                || !wait_for(&mut wake, Some(deadline), self.config().recheck).await
            {
                break;
            }
        }
        Ok(FirePage {
            events,
            next: self.fire_cursor(pos),
        })
    }

    /// The live firehose (an admin only: policy rule 7): first the events
    /// after `start`, then new ones as they land, each once and in each
    /// partition's order. It never ends by itself unless the store fails.
    ///
    /// # Errors
    ///
    /// [`Error::Forbidden`], [`Error::Store`].
    pub async fn fire_events(
        &self,
        actor: &Actor,
        start: FireStart,
    ) -> Result<impl Stream<Item = Result<FireDelivered, Error>> + Send + 'static, Error> {
        policy::check(actor, Action::Firehose)?;
        let mut wake = self.store().notifier().subscribe_any();
        let (mut pos, reset) = self.fire_resolve(start).await?;
        let engine = self.clone();
        Ok(async_stream::try_stream! {
            if let Some(reset) = reset {
                yield reset;
            }
            loop {
                wake.mark_seen();
                let batch = engine.fire_read(&mut pos, BATCH).await?;
                let more = batch.len() >= BATCH;
                for event in batch {
                    yield event;
                }
                if more {
                    continue;
                }
                if !wait_for(&mut wake, None, engine.config().recheck).await {
                    break;
                }
            }
        })
    }
}
