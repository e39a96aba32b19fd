//! The data the store speaks: ids, users, contacts, groups and members,
//! messages, index entries and feed events, as they are stored. The bottom
//! layer: it imports nothing of the engine but its error, and the
//! [`Store`](crate::Store) trait above it and the engine's operations above
//! that build on it.

pub mod contact;
pub mod entry;
pub mod event;
pub mod group;
pub mod id;
pub mod message;
pub mod signal;
pub mod user;

/// Milliseconds since the Unix epoch.
pub type Timestamp = u64;

pub use contact::Contact;
pub use entry::ConvEntry;
pub use event::{
    ContactNews, Epoch, Event, Feed, FeedEntry, FireEntry, Firehose, Membership, ReactionChange,
};
pub use group::{Group, GroupKind, JoinPolicy, Member, Role};
pub use id::{ConversationId, GroupId, UserId};
pub use message::{
    Body, MAX_CLIENT_ID, MAX_REACTION_KEY, MAX_REACTION_KEYS, Message, NewMessage, Reactions, Seq,
};
pub use signal::{Addressed, Signal};
pub use user::{FieldPatch, Fields, PasswordHash, Presence, User};
