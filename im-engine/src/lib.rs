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
//! let feed = engine.feed(&Actor::user(bob), Start::Oldest, 10).await?;
//! let names: Vec<_> = feed.events.iter().map(|e| e.data.name()).collect();
//! assert_eq!(names, ["member", "message"]);
//! # Ok::<_, im_engine::Error>(())
//! # }).unwrap();
//! ```
//!
//! # Layout
//!
//! Three layers, each building only on those below it:
//!
//! 1. [`data`]: what the store speaks: ids ([`id`]), users, contacts,
//!    groups and members, messages, index entries, feed events; and
//!    `error`, [`Error`] and [`StoreError`].
//! 2. [`store`]: the [`Store`] trait and its atomic writes, the
//!    [`Notifier`] stores wake, and [`MemoryStore`].
//! 3. The engine: `engine` ([`Engine`], [`Config`], [`Limits`], [`Actor`]),
//!    `policy` (every authorization rule, in one file),
//!    and one module per area for its operations and answers: `user`,
//!    `contact`, `group`, `message` (send, history), `change` (edits,
//!    deletes, reactions), `unread` (read
//!    cursors, the conversation list), `feed` (cursors, reads, the live
//!    stream); `view`: what a caller is shown of messages (reactions
//!    counted for it); `command`: every operation as one [`Command`] value.
//! - `testing` (feature `testing`): the conformance suite every store runs.
//!   For tests only; it carries no stability promise.

pub mod data;
mod error;
pub mod store;

mod change;
mod command;
mod contact;
mod engine;
mod feed;
mod group;
mod hooks;
mod message;
mod moderation;
mod policy;
mod unread;
mod user;
mod view;

#[cfg(any(test, feature = "testing"))]
pub mod testing;

pub use data::id;
pub use data::{
    Body, Contact, ContactNews, ConvEntry, ConversationId, Epoch, Event, Feed, FeedEntry,
    FieldPatch, Fields, Group, GroupId, JoinPolicy, MAX_CLIENT_ID, MAX_REACTION_KEY,
    MAX_REACTION_KEYS, Member, Membership, Message, NewMessage, Presence, ReactionChange,
    Reactions, Role, Seq, Timestamp, User, UserId,
};
pub use error::{Error, ErrorChain, ErrorKind, StoreError};
pub use store::{MemoryStore, Notifier, Store};

pub use change::ReactionList;
pub use command::{Command, Outcome};
pub use contact::ContactView;
pub use engine::{Actor, Clock, Config, Engine, EngineBuilder, Limits, Retention, SystemClock};
pub use feed::{Cursor, Delivered, EventData, EventPage, ResetReason, Start};
pub use group::GroupView;
pub use hooks::{
    Committed, HOOK_UNAVAILABLE, HookConfig, HookFuture, Hooks, MAX_REFUSAL_MESSAGE, OnTimeout,
    REFUSED, Verdict, is_valid_code,
};
pub use message::{HistoryPage, HistoryQuery, SendRequest};
pub use moderation::{JoinRequest, Joined, Marked};
pub use unread::{ConversationView, ReadState};
pub use user::{PresenceGuard, Profile};
pub use view::{ConversationRowView, EventDataView, HistoryView, MessageView, ReactionCount};
