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
//! # Hooks
//!
//! A host acts on messages through [`Hooks`]: a word filter refuses or
//! rewrites sends before they are committed, and an event counter hears
//! of every committed event once, without ever delaying a send.
//!
//! ```
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! use std::sync::Arc;
//! use std::sync::atomic::{AtomicUsize, Ordering};
//! use im_engine::{
//!     Actor, Body, Committed, Engine, Error, HookFuture, Hooks, MemoryStore, NewMessage,
//!     SendRequest, UserId, Verdict,
//! };
//!
//! #[derive(Default)]
//! struct Moderator {
//!     events: AtomicUsize,
//! }
//!
//! impl Hooks for Moderator {
//!     // The word filter: "spam" is refused, "darn" rewritten.
//!     fn before_send<'a>(&'a self, m: &'a NewMessage) -> HookFuture<'a, Verdict> {
//!         let text = m.body.get();
//!         let verdict = if text.contains("spam") {
//!             Verdict::refuse("spam", "no spam here")
//!         } else if text.contains("darn") {
//!             Verdict::Replace(Body::new(r#"{"text": "***"}"#, 1024).unwrap())
//!         } else {
//!             Verdict::Allow
//!         };
//!         Box::pin(async move { verdict })
//!     }
//!
//!     // The event counter.
//!     fn after_commit<'a>(&'a self, _: &'a Committed) -> HookFuture<'a, ()> {
//!         self.events.fetch_add(1, Ordering::Relaxed);
//!         Box::pin(async {})
//!     }
//! }
//!
//! let hooks = Arc::new(Moderator::default());
//! let engine = Engine::builder(MemoryStore::new()).hooks(hooks.clone()).build();
//! let root = Actor::admin(UserId::new("root")?);
//! for u in ["alice", "bob"] {
//!     engine.put_user(&root, &UserId::new(u)?, Default::default()).await?;
//! }
//! let alice = Actor::user(UserId::new("alice")?);
//! let dm = "dm:alice:bob".parse()?;
//! let say = |text: &str| SendRequest::new(Body::new(&format!(r#"{{"text": "{text}"}}"#), 1024).unwrap());
//!
//! let refused = engine.send(&alice, &dm, say("buy spam")).await.unwrap_err();
//! assert!(matches!(&refused, Error::Refused { code, .. } if code == "spam"));
//! let (m, _) = engine.send(&alice, &dm, say("darn")).await?;
//! assert_eq!(m.body.unwrap().get(), r#"{"text": "***"}"#);
//!
//! // One message event, told once although two feeds hold it.
//! engine.drain_hooks().await;
//! assert_eq!(hooks.events.load(Ordering::Relaxed), 1);
//! # Ok::<_, Box<dyn std::error::Error>>(())
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
//!    [`Notifier`] stores wake, the [`SignalBus`] signals reach streams
//!    by, [`MemoryStore`], and [`store::export`]: the export format and
//!    the importer.
//! 3. The engine: `engine` ([`Engine`], [`Config`], [`Limits`], [`Actor`]),
//!    `policy` (every authorization rule, in one file), `password`
//!    (Argon2id hashes, computed off the async workers),
//!    and one module per area for its operations and answers: `user`,
//!    `contact`, `group`, `message` (send, history), `change` (edits,
//!    deletes, reactions), `unread` (read
//!    cursors, the conversation list), `feed` (cursors, reads, the live
//!    stream), `signals` (typing, presence, receipts: what goes only to
//!    the streams open at the moment); `page`: list pages and their
//!    cursors ([`ListQuery`], [`Page`]); `export`: the admins' export;
//!    `view`: what a caller is shown of messages (reactions counted for
//!    it); `command`: every operation as one [`Command`] value;
//!    `hooks`: the host's [`Hooks`], the before-send check and the
//!    after-commit queue.
//! - `testing` (feature `testing`): the conformance suite every store runs.
//!   For tests only; it carries no stability promise.

pub mod data;
mod error;
pub mod store;

mod change;
mod command;
mod contact;
mod engine;
mod export;
mod feed;
mod firehose;
mod group;
mod hooks;
mod message;
mod moderation;
mod page;
mod password;
mod policy;
mod room;
mod room_live;
mod signals;
mod unread;
mod user;
mod view;

#[cfg(any(test, feature = "testing"))]
pub mod testing;

pub use data::id;
pub use data::{Addressed, Signal};
pub use data::{
    Body, Contact, ContactNews, ConvEntry, ConversationId, Epoch, Event, Feed, FeedEntry,
    FieldPatch, Fields, FireEntry, Firehose, Group, GroupId, GroupKind, JoinPolicy, MAX_CLIENT_ID,
    MAX_REACTION_KEY, MAX_REACTION_KEYS, Member, Membership, Message, NewMessage, PasswordHash,
    Presence, ReactionChange, Reactions, Role, Seq, Timestamp, User, UserId,
};
pub use error::{Error, ErrorChain, ErrorKind, StoreError};
pub use store::{MemoryStore, Notifier, SignalBus, Store};

pub use change::ReactionList;
pub use command::{Command, Outcome};
pub use contact::ContactView;
pub use engine::{Actor, Clock, Config, Engine, EngineBuilder, Limits, Retention, SystemClock};
pub use feed::{Cursor, Delivered, EventData, EventPage, ResetReason, Start};
pub use firehose::{FireCursor, FireDelivered, FirePage, FireStart};
pub use group::GroupView;
pub use hooks::{
    Committed, HOOK_UNAVAILABLE, HookConfig, HookFuture, Hooks, MAX_REFUSAL_MESSAGE, OnTimeout,
    REFUSED, Verdict, is_valid_code,
};
pub use message::{HistoryPage, HistoryQuery, SendRequest};
pub use moderation::{JoinRequest, Joined, Marked};
pub use page::{LIST_PAGE_DEFAULT, LIST_PAGE_MAX, ListQuery, Page};
pub use password::{MAX_PASSWORD, MIN_PASSWORD, Password, PasswordCost};
pub use room_live::MAX_WATCHED_ROOMS;
pub use signals::{PresenceGuard, ReadCursor, ReadsPage, TYPING_EVERY, TYPING_HOLD};
pub use unread::{ConversationView, ReadState};
pub use user::Profile;
pub use view::{ConversationRowView, EventDataView, HistoryView, MessageView, ReactionCount};
