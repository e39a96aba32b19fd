//! The semantics of an instant-messaging server, over a pluggable store.
//!
//! `im-engine` knows users, contacts, groups and their members, direct and
//! group conversations, their append-only message logs, read cursors and
//! unread counts, the conversation list, and each user's event feed with a
//! live stream that resumes from a cursor. It does no I/O of its own: a
//! [`Store`] keeps the data ([`MemoryStore`] here; sled and Redis in their
//! own crates), and the HTTP server lives in `im-http`.
//!
//! Every operation goes through an [`Engine`] and names its caller as an
//! [`Actor`]; the engine decides who may do what and enforces the limits
//! before any work is done, then hands the store one atomic write.
//!
//! ```
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! use im_engine::{Actor, Body, Engine, GroupId, MemoryStore, SendRequest, Start, UserId};
//!
//! let engine = Engine::new(MemoryStore::new());
//! let root = Actor::admin(UserId::new("root")?);
//! let (alice, bob) = (UserId::new("alice")?, UserId::new("bob")?);
//! for u in [&alice, &bob] {
//!     engine.put_user(&root, u, Default::default()).await?;
//! }
//!
//! // Alice creates a group and adds Bob; Bob's feed hears of both.
//! let g = GroupId::new("rust")?;
//! engine.put_group(&Actor::user(alice.clone()), &g, Default::default(), None).await?;
//! engine.join(&Actor::user(alice.clone()), &g, &bob).await?;
//!
//! let conv = "group:rust".parse()?;
//! let body = Body::new(r#"{"text": "hello"}"#, 1024)?;
//! engine.send(&Actor::user(alice), &conv, SendRequest::new(body)).await?;
//!
//! let feed = engine.feed(&bob, Start::Oldest, 10).await?;
//! let names: Vec<_> = feed.events.iter().map(|e| e.data.name()).collect();
//! assert_eq!(names, ["member", "message"]);
//! # Ok::<_, im_engine::Error>(())
//! # }).unwrap();
//! ```
//!
//! # Layout
//!
//! - [`id`]: validated user, group and conversation ids.
//! - `engine`: [`Engine`], [`Config`], [`Limits`], [`Actor`].
//! - `user`, `contact`, `group`, `message`, `unread`, `feed`: one domain
//!   area each, its records and its operations.
//! - [`store`]: the [`Store`] trait and its atomic writes.
//! - `notify`: wake-ups for live streams.
//! - `command`: every operation as one [`Command`] value.
//! - `memory`: [`MemoryStore`].
//! - `testing` (feature `testing`): the conformance suite every store runs.
//!   For tests only; it carries no stability promise.

mod command;
mod contact;
mod engine;
mod error;
mod feed;
mod group;
pub mod id;
mod memory;
mod message;
mod notify;
pub mod store;
mod unread;
mod user;

#[cfg(any(test, feature = "testing"))]
pub mod testing;

/// Milliseconds since the Unix epoch.
pub type Timestamp = u64;

pub use command::{Command, Outcome};
pub use contact::{Contact, ContactView};
pub use engine::{Actor, Clock, Config, Engine, Limits, Retention, SystemClock};
pub use error::{Error, ErrorKind};
pub use feed::{
    Cursor, Delivered, Epoch, Event, EventData, Feed, FeedEntry, Membership, Poll, ResetReason,
    Start,
};
pub use group::{Group, GroupView, JoinPolicy, Member, Role};
pub use id::{ConversationId, GroupId, UserId};
pub use memory::MemoryStore;
pub use message::{
    Body, HistoryPage, HistoryQuery, MAX_CLIENT_ID, Message, NewMessage, SendRequest, Seq,
};
pub use notify::Notifier;
pub use store::{Store, StoreError};
pub use unread::{ConvEntry, ConversationView, ReadState};
pub use user::{FieldPatch, Fields, Presence, PresenceGuard, Profile, User};
