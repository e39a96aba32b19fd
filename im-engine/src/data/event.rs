//! Feed events as stored: small references, never copies of a message
//! body, and a read of a feed.

use serde::{Deserialize, Serialize};

use super::Timestamp;
use super::id::{ConversationId, GroupId, UserId};
use super::message::Seq;

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
    /// A message's body was replaced; read as the message now is.
    Edit {
        /// Its conversation.
        conversation: ConversationId,
        /// Its seq.
        seq: Seq,
    },
    /// A message was deleted: its body is gone.
    Delete {
        /// Its conversation.
        conversation: ConversationId,
        /// Its seq.
        seq: Seq,
        /// When.
        deleted_at: Timestamp,
    },
    /// Someone reacted to a message, or took a reaction back.
    Reaction {
        /// Its conversation.
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
    /// A user asks to join a group the receiver owns.
    #[serde(rename = "join_request")]
    JoinRequest {
        /// The group.
        group: GroupId,
        /// Who asks.
        user: UserId,
    },
    /// A user added the receiver to its contacts.
    Contact {
        /// Who.
        user: UserId,
        /// What happened.
        change: ContactNews,
    },
}

/// A change to who has a user in their contacts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ContactNews {
    /// The user added the receiver to its contacts.
    Added,
}

/// Whether a reaction was added or removed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ReactionChange {
    /// Added.
    Added,
    /// Removed.
    Removed,
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

/// One event of the firehose (every stored event once, see
/// [`Store::firehose`](crate::Store::firehose)) and its position in its
/// partition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FireEntry {
    /// Its position in its partition, from 1.
    pub pos: u64,
    /// When it was committed.
    pub ts: Timestamp,
    /// The user whose feed holds it, for events of one user (`read`,
    /// `join_request`, `contact`); `None` for the events of a conversation
    /// or a group, which every participant's feed holds.
    pub user: Option<UserId>,
    /// The event.
    pub event: Event,
}

/// A read of one firehose partition: some entries and its newest position.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Firehose {
    /// The newest position (0 for an empty partition).
    pub head: u64,
    /// The entries read, oldest first.
    pub entries: Vec<FireEntry>,
}
