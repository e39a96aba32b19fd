//! Each user's event feed, cursors into it, and the live stream.
//!
//! A feed is an append-only log of small references, numbered 1, 2, 3 … per
//! user. A [`Cursor`] is a position in it plus the store's [`Epoch`], so
//! resuming is one range read, and a cursor from another store (or one
//! pointing at trimmed events) is recognised and answered with a reset,
//! never silently skipped.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use futures_core::Stream;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use crate::engine::Engine;
use crate::id::{ConversationId, GroupId, UserId};
use crate::message::{Message, Seq};
use crate::store::{FeedTrim, Store};
use crate::{Error, Timestamp};

/// A store's identity, chosen at random when its data was created.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub struct Epoch(pub u64);

impl Epoch {
    /// A new random epoch.
    pub fn random() -> Self {
        Self(rand::random())
    }
}

/// Someone joined or left a group.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Membership {
    /// Joined (or was added).
    Joined,
    /// Left (or was removed).
    Left,
}

/// A feed event as stored: a reference, never a copy of a message body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Event {
    /// A new message in one of the user's conversations.
    Message {
        /// Its conversation.
        conversation: ConversationId,
        /// Its seq.
        seq: Seq,
    },
    /// The user's read cursor moved.
    Read {
        /// The conversation.
        conversation: ConversationId,
        /// The new cursor.
        seq: Seq,
    },
    /// Someone joined or left a group of the user's.
    Member {
        /// The group.
        group: GroupId,
        /// Who.
        user: UserId,
        /// Joined or left.
        change: Membership,
    },
}

impl Event {
    /// A [`Event::Member`].
    pub fn member(group: &GroupId, user: &UserId, change: Membership) -> Self {
        Self::Member {
            group: group.clone(),
            user: user.clone(),
            change,
        }
    }
}

/// One stored feed event and its position.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FeedEntry {
    /// Its position in the feed, from 1.
    pub pos: u64,
    /// When it was appended.
    pub ts: Timestamp,
    /// The event.
    pub event: Event,
}

/// A read of a feed: some entries and the feed's bounds.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Feed {
    /// Every position up to and including this one has been trimmed.
    pub trimmed: u64,
    /// The newest position (0 for an empty feed).
    pub head: u64,
    /// The entries read, oldest first.
    pub entries: Vec<FeedEntry>,
}

/// A position in a user's feed, in a given store: the `id:` of an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub struct Cursor {
    /// The store's epoch.
    pub epoch: Epoch,
    /// The feed position of the event it follows.
    pub pos: u64,
}

impl fmt::Display for Cursor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}-{}", self.epoch.0, self.pos)
    }
}

impl FromStr for Cursor {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Error> {
        let bad = || Error::Invalid("malformed event cursor".into());
        let (epoch, pos) = s.split_once('-').ok_or_else(bad)?;
        // One spelling per cursor, the one `Display` writes: lower-case hex,
        // and a position without leading zeros (`from_str_radix` and `parse`
        // would also take a `+`, upper case and leading zeros).
        if epoch.len() != 16
            || !epoch
                .bytes()
                .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
            || pos.is_empty()
            || !pos.bytes().all(|b| b.is_ascii_digit())
            || (pos.len() > 1 && pos.starts_with('0'))
        {
            return Err(bad());
        }
        Ok(Self {
            epoch: Epoch(u64::from_str_radix(epoch, 16).map_err(|_| bad())?),
            pos: pos.parse().map_err(|_| bad())?,
        })
    }
}

/// Where a stream starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub enum Start {
    /// With the events after now only.
    Live,
    /// From the oldest event kept (`?after=0`).
    Oldest,
    /// After this cursor.
    After(Cursor),
}

impl FromStr for Start {
    type Err = Error;

    /// `"0"` is [`Start::Oldest`]; anything else must be a cursor.
    fn from_str(s: &str) -> Result<Self, Error> {
        if s == "0" {
            Ok(Self::Oldest)
        } else {
            s.parse().map(Self::After)
        }
    }
}

/// Why a stream starts over from the oldest event kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ResetReason {
    /// The cursor points before the oldest event kept.
    Expired,
    /// The cursor is from another (or a wiped) store.
    Unknown,
}

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
    /// The stream starts over from the oldest event kept.
    Reset {
        /// Why.
        reason: ResetReason,
    },
}

impl EventData {
    /// The SSE event name: `message`, `read`, `member` or `reset`.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Message(_) => "message",
            Self::Read { .. } => "read",
            Self::Member { .. } => "member",
            Self::Reset { .. } => "reset",
        }
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

/// The answer to a long poll.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Poll {
    /// The events, possibly none.
    pub events: Vec<Delivered>,
    /// The cursor to poll after next.
    pub next: Cursor,
}

/// How many feed entries a live stream reads at once.
const BATCH: usize = 256;

/// How many bytes of message bodies [`RecentMessages`] keeps.
const RECENT_BYTES: u64 = 8 << 20;

/// The messages delivered lately, by conversation and seq, bounded
/// by the size of their bodies. Messages never change once sent; an entry is
/// stale only if the store lost it and gave its seq to another message,
/// which the feed event's time tells (see `Engine::recent_message`).
pub(crate) struct RecentMessages(
    quick_cache::sync::Cache<(ConversationId, Seq), Message, BodyWeight>,
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
        self.0.insert((m.conversation.clone(), m.seq), m.clone());
    }
}

/// A message weighs its body plus a little for its ids.
#[derive(Debug, Clone, Copy)]
pub(crate) struct BodyWeight;

impl quick_cache::Weighter<(ConversationId, Seq), Message> for BodyWeight {
    fn weight(&self, _: &(ConversationId, Seq), m: &Message) -> u64 {
        m.body.get().len() as u64 + 128
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

    fn cursor(&self, pos: u64) -> Cursor {
        Cursor {
            epoch: self.store().epoch(),
            pos,
        }
    }

    fn reset(&self, pos: u64, reason: ResetReason) -> Delivered {
        Delivered {
            cursor: self.cursor(pos),
            data: EventData::Reset { reason },
        }
    }

    /// Where reading starts for `start`, and the reset to send first if the
    /// cursor cannot be honoured.
    async fn resolve(
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

    /// Message `seq` of `conversation`, whose feed event is dated `ts`, from
    /// the recent messages when it is there. A send wakes every recipient's
    /// stream at once, and each would otherwise read the same message from
    /// the store: concurrent misses for one message wait for a single read.
    async fn recent_message(
        &self,
        conversation: &ConversationId,
        seq: Seq,
        ts: Timestamp,
    ) -> Result<Option<Message>, Error> {
        let read = || async {
            self.store()
                .messages(conversation, seq, seq)
                .await
                .map_err(Error::store)
                .map(|found| found.into_iter().find(|m| m.seq == seq))
        };
        let key = (conversation.clone(), seq);
        let cached = self
            .inner
            .recent
            .0
            .get_or_insert_async(&key, async { read().await?.ok_or(None) })
            .await;
        match cached {
            // A feed event and its message share their time.
            Ok(m) if m.ts == ts => Ok(Some(m)),
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
    async fn read_after(
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
        for entry in feed.entries {
            pos = entry.pos;
            let data = match entry.event {
                Event::Message { conversation, seq } => {
                    match self.recent_message(&conversation, seq, entry.ts).await? {
                        Some(m) => EventData::Message(m),
                        // The conversation's history was trimmed past it.
                        None => continue,
                    }
                }
                Event::Read { conversation, seq } => EventData::Read { conversation, seq },
                Event::Member {
                    group,
                    user,
                    change,
                } => EventData::Member {
                    group,
                    user,
                    change,
                },
            };
            out.push(Delivered {
                cursor: self.cursor(pos),
                data,
            });
        }
        Ok((out, pos.max(feed.trimmed)))
    }

    /// The events of `user`'s feed from `start`, at most `limit`, without
    /// waiting; a reset comes first when the cursor cannot be honoured.
    ///
    /// # Errors
    ///
    /// [`Error::Store`].
    pub async fn feed(&self, user: &UserId, start: Start, limit: usize) -> Result<Poll, Error> {
        let (pos, reset) = self.resolve(user, start).await?;
        let (events, next) = self.read_after(user, pos, limit).await?;
        Ok(Poll {
            events: reset.into_iter().chain(events).collect(),
            next: self.cursor(next),
        })
    }

    /// A long poll: the events after `start` as soon as there is at least
    /// one, or none after `wait`. The user counts as online meanwhile.
    ///
    /// # Errors
    ///
    /// [`Error::Invalid`] for a bad limit, [`Error::NotFound`] for an
    /// unknown user, [`Error::Store`].
    pub async fn poll(
        &self,
        user: &UserId,
        start: Start,
        wait: Duration,
        limit: Option<usize>,
    ) -> Result<Poll, Error> {
        let limit = crate::engine::page_limit(limit, 100, self.limits().events_page)?;
        self.require_user(user).await?;
        let _online = self.connect(user).await?;
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
        Ok(Poll {
            events,
            next: self.cursor(pos),
        })
    }

    /// The live stream of `user`'s events: first those after `start`, then
    /// new ones as they land, each once and in order. It registers for
    /// wake-ups before it reads, and reads the feed after every wake-up, so
    /// nothing falls between the replay and the live part however they race.
    /// The stream holds the user online while it lives, and never ends by
    /// itself unless the store fails (the error is its last item).
    ///
    /// # Errors
    ///
    /// [`Error::NotFound`] for an unknown user, [`Error::Store`].
    pub async fn events(
        &self,
        user: &UserId,
        start: Start,
    ) -> Result<impl Stream<Item = Result<Delivered, Error>> + Send + 'static, Error> {
        self.require_user(user).await?;
        let online = self.connect(user).await?;
        let mut wake = self.store().notifier().subscribe(user);
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
                if !more && !wait_for(&mut wake, None, engine.config().recheck).await {
                    break;
                }
            }
        })
    }
}

/// Waits for a wake-up, the recheck interval, or the deadline. Returns false
/// at the deadline or when the notifier is gone.
async fn wait_for(
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cursor_has_one_spelling() {
        let c: Cursor = "00000000000000ff-42".parse().unwrap();
        assert_eq!((c.epoch, c.pos), (Epoch(255), 42));
        assert_eq!(c.to_string(), "00000000000000ff-42");
        let zero: Cursor = "00000000000000ff-0".parse().unwrap();
        assert_eq!(zero.to_string(), "00000000000000ff-0");
        for bad in [
            "+0000000000000ff-42",
            "00000000000000ff-+42",
            "00000000000000f-42",
            "00000000000000fg-42",
            "00000000000000ff-",
            "00000000000000ff",
            "00000000000000ff-4 2",
            "00000000000000ff-18446744073709551616",
            "00000000000000FF-42",
            "00000000000000ff-042",
        ] {
            assert!(bad.parse::<Cursor>().is_err(), "{bad} parsed");
        }
    }
}
