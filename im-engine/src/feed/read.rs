//! Reading a feed: where a cursor starts, and each stored reference
//! resolved into what a client is sent.

use std::time::{Duration, Instant};

use serde::Serialize;

use super::{Cursor, ResetReason, Start};
use crate::data::{
    ContactNews, ConversationId, Event, GroupId, Membership, Message, ReactionChange, Seq,
    Timestamp, UserId,
};
use crate::engine::{Actor, Engine};
use crate::error::Error;
use crate::store::{FeedTrim, Store};

/// An event as delivered: references resolved.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum EventData {
    /// A new message.
    Message(Message),
    /// The caller's read cursor moved.
    Read {
        /// The conversation.
        conversation: ConversationId,
        /// The new cursor.
        seq: Seq,
    },
    /// Someone joined or left a group of the caller's.
    Member {
        /// The group.
        group: GroupId,
        /// Who.
        user: UserId,
        /// Joined or left.
        change: Membership,
    },
    /// A message's body was replaced: the message as it now is.
    Edit(Message),
    /// A message was deleted.
    Delete {
        /// Its conversation.
        conversation: ConversationId,
        /// Its seq.
        seq: Seq,
        /// When.
        deleted_at: Timestamp,
    },
    /// A reaction was added or removed.
    Reaction {
        /// The message's conversation.
        conversation: ConversationId,
        /// Its seq.
        seq: Seq,
        /// The reaction.
        key: String,
        /// Who.
        user: UserId,
        /// Added or removed.
        change: ReactionChange,
    },
    /// A user asks to join a group the caller owns.
    JoinRequest {
        /// The group.
        group: GroupId,
        /// Who asks.
        user: UserId,
    },
    /// A user added the caller to its contacts.
    Contact {
        /// Who.
        user: UserId,
        /// What happened.
        change: ContactNews,
    },
    /// The stream starts over from the oldest event kept.
    Reset {
        /// Why.
        reason: ResetReason,
    },
}

impl EventData {
    /// The SSE event name: `message`, `read`, `member`, `edit`, `delete`,
    /// `reaction`, `join_request`, `contact` or `reset`.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Message(_) => "message",
            Self::Read { .. } => "read",
            Self::Member { .. } => "member",
            Self::Edit(_) => "edit",
            Self::Delete { .. } => "delete",
            Self::Reaction { .. } => "reaction",
            Self::JoinRequest { .. } => "join_request",
            Self::Contact { .. } => "contact",
            Self::Reset { .. } => "reset",
        }
    }
}

impl EventData {
    /// What a stored event is delivered as, given the message it names as
    /// it now is (for `message` and `edit` events; `None` when there is no
    /// such message, and then nothing is delivered).
    pub(crate) fn resolved(event: Event, message: Option<Message>) -> Option<Self> {
        Some(match event {
            Event::Message { .. } => Self::Message(message?),
            Event::Edit { .. } => Self::Edit(message?),
            Event::Read { conversation, seq } => Self::Read { conversation, seq },
            Event::Member {
                group,
                user,
                change,
            } => Self::Member {
                group,
                user,
                change,
            },
            Event::Delete {
                conversation,
                seq,
                deleted_at,
            } => Self::Delete {
                conversation,
                seq,
                deleted_at,
            },
            Event::Reaction {
                conversation,
                seq,
                key,
                user,
                change,
            } => Self::Reaction {
                conversation,
                seq,
                key,
                user,
                change,
            },
            Event::JoinRequest { group, user } => Self::JoinRequest { group, user },
            Event::Contact { user, change } => Self::Contact { user, change },
        })
    }
}

/// A delivered event and the cursor to resume after it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivered {
    /// Resume after this event with this cursor.
    pub cursor: Cursor,
    /// The event.
    pub data: EventData,
}

/// Events read from a feed (a long poll's answer) and where to go on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventPage {
    /// The events, possibly none.
    pub events: Vec<Delivered>,
    /// The cursor to poll after next.
    pub next: Cursor,
}

/// How many bytes of message bodies [`RecentMessages`] keeps.
const RECENT_BYTES: u64 = 8 << 20;

/// How long [`RecentMessages`] answers for a message. It exists for the
/// burst of reads right after a send, when every recipient's stream wakes
/// for the same message; past that, a stream reads the store.
const RECENT_FOR: Duration = Duration::from_secs(2);

/// The messages delivered lately, by conversation and seq, bounded by the
/// size of their bodies, each for [`RECENT_FOR`]. An entry goes stale when
/// its message changes: every change through this engine drops it, a
/// stream that reads a change event drops it, and a change made through
/// another node (which this one hears of through the feed only) is seen
/// at the latest once the entry is [`RECENT_FOR`] old. It also goes stale
/// when the store lost the message and gave its seq to another one, which
/// the feed event's time tells (see `Engine::recent_message`).
pub(crate) struct RecentMessages(
    quick_cache::sync::Cache<(ConversationId, Seq), (Instant, Message), BodyWeight>,
);

impl RecentMessages {
    pub(crate) fn new() -> Self {
        Self(quick_cache::sync::Cache::with_weighter(
            4096,
            RECENT_BYTES,
            BodyWeight,
        ))
    }

    pub(crate) fn insert(&self, m: &Message) {
        let key = (m.conversation.clone(), m.seq);
        self.0.insert(key, (Instant::now(), m.clone()));
    }
}

/// A message weighs its body plus a little for its ids.
#[derive(Debug, Clone, Copy)]
pub(crate) struct BodyWeight;

impl quick_cache::Weighter<(ConversationId, Seq), (Instant, Message)> for BodyWeight {
    fn weight(&self, _: &(ConversationId, Seq), (_, m): &(Instant, Message)) -> u64 {
        m.body.as_ref().map_or(0, |b| b.get().len()) as u64 + 128
    }
}

impl<S: Store> Engine<S> {
    pub(crate) fn feed_trim(&self) -> FeedTrim {
        let r = &self.inner.config.retention;
        let age_ms = r
            .age
            .map_or(0, |a| u64::try_from(a.as_millis()).unwrap_or(u64::MAX));
        FeedTrim {
            keep: r.events.unwrap_or(u64::MAX),
            min_ts: if age_ms == 0 {
                0
            } else {
                self.now().saturating_sub(age_ms)
            },
        }
    }

    pub(super) fn cursor(&self, pos: u64) -> Cursor {
        Cursor {
            epoch: self.store().epoch(),
            pos,
        }
    }

    pub(super) fn reset(&self, pos: u64, reason: ResetReason) -> Delivered {
        Delivered {
            cursor: self.cursor(pos),
            data: EventData::Reset { reason },
        }
    }

    /// Where reading starts for `start`, and the reset to send first if the
    /// cursor cannot be honoured.
    pub(super) async fn resolve(
        &self,
        user: &UserId,
        start: Start,
    ) -> Result<(u64, Option<Delivered>), Error> {
        let feed = self
            .store()
            .feed(user, u64::MAX, 0)
            .await
            .map_err(Error::store)?;
        Ok(match start {
            Start::Live => (feed.head, None),
            Start::Oldest => (feed.trimmed, None),
            Start::After(c) if c.epoch != self.store().epoch() || c.pos > feed.head => (
                feed.trimmed,
                Some(self.reset(feed.trimmed, ResetReason::Unknown)),
            ),
            Start::After(c) if c.pos < feed.trimmed => (
                feed.trimmed,
                Some(self.reset(feed.trimmed, ResetReason::Expired)),
            ),
            Start::After(c) => (c.pos, None),
        })
    }

    /// Drops a message from the recent messages (it changed).
    pub(crate) fn forget_message(&self, conversation: &ConversationId, seq: Seq) {
        self.inner.recent.0.remove(&(conversation.clone(), seq));
    }

    /// Message `seq` of `conversation`, read from the store.
    pub(crate) async fn stored_message(
        &self,
        conversation: &ConversationId,
        seq: Seq,
    ) -> Result<Option<Message>, Error> {
        Ok(self
            .store()
            .messages(conversation, seq, seq)
            .await
            .map_err(Error::store)?
            .into_iter()
            .find(|m| m.seq == seq))
    }

    /// Message `seq` of `conversation`, whose feed event is dated `ts`, from
    /// the recent messages when it is there. A send wakes every recipient's
    /// stream at once, and each would otherwise read the same message from
    /// the store: concurrent misses for one message wait for a single read.
    pub(crate) async fn recent_message(
        &self,
        conversation: &ConversationId,
        seq: Seq,
        ts: Timestamp,
    ) -> Result<Option<Message>, Error> {
        let read = || self.stored_message(conversation, seq);
        let key = (conversation.clone(), seq);
        let cached = self
            .inner
            .recent
            .0
            .get_or_insert_async(&key, async {
                Ok((Instant::now(), read().await?.ok_or(None)?))
            })
            .await;
        match cached {
            // A feed event and its message share their time.
            Ok((at, m)) if m.ts == ts && at.elapsed() < RECENT_FOR => Ok(Some(m)),
            // A store that lost acknowledged writes (Redis restarted from an
            // older snapshot) numbers a new message with a lost one's seq.
            Ok(_) => {
                let found = read().await?;
                match &found {
                    Some(m) => self.inner.recent.insert(m),
                    None => {
                        self.inner.recent.0.remove(&key);
                    }
                }
                Ok(found)
            }
            Err(None) => Ok(None),
            Err(Some(e)) => Err(e),
        }
    }

    /// Up to `limit` events after `pos`, resolved, and the position reached.
    /// If events after `pos` were trimmed meanwhile, a reset comes first.
    pub(super) async fn read_after(
        &self,
        user: &UserId,
        mut pos: u64,
        limit: usize,
    ) -> Result<(Vec<Delivered>, u64), Error> {
        let feed = self
            .store()
            .feed(user, pos, limit)
            .await
            .map_err(Error::store)?;
        let mut out = Vec::with_capacity(feed.entries.len() + 1);
        if feed.trimmed > pos {
            out.push(self.reset(feed.trimmed, ResetReason::Expired));
        }
        // A change read here may be one this node did not make: no message
        // it names is answered from the cache, in this batch or later.
        for entry in &feed.entries {
            if let Event::Edit { conversation, seq }
            | Event::Delete {
                conversation, seq, ..
            }
            | Event::Reaction {
                conversation, seq, ..
            } = &entry.event
            {
                self.forget_message(conversation, *seq);
            }
        }
        for entry in feed.entries {
            pos = entry.pos;
            let message = match &entry.event {
                Event::Message { conversation, seq } => {
                    self.recent_message(conversation, *seq, entry.ts).await?
                }
                Event::Edit { conversation, seq } => {
                    self.stored_message(conversation, *seq).await?
                }
                _ => None,
            };
            // A message the conversation's history no longer holds.
            let Some(data) = EventData::resolved(entry.event, message) else {
                continue;
            };
            out.push(Delivered {
                cursor: self.cursor(pos),
                data,
            });
        }
        Ok((out, pos.max(feed.trimmed)))
    }

    /// The events of the actor's own feed (policy rule 6) from `start`, at
    /// most `limit`, without waiting; a reset comes first when the cursor
    /// cannot be honoured.
    ///
    /// # Errors
    ///
    /// [`Error::Store`].
    pub async fn feed(
        &self,
        actor: &Actor,
        start: Start,
        limit: usize,
    ) -> Result<EventPage, Error> {
        let user = &actor.user;
        let (pos, reset) = self.resolve(user, start).await?;
        let (events, next) = self.read_after(user, pos, limit).await?;
        Ok(EventPage {
            events: reset.into_iter().chain(events).collect(),
            next: self.cursor(next),
        })
    }
}
