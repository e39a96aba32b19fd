//! `Engine`: the handle every operation goes through, its configuration and
//! the checks shared by the domain modules.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::data::{ConversationId, Timestamp, UserId};
use crate::error::Error;
use crate::hooks::{AfterCommit, HookConfig, Hooks};
use crate::policy::{self, Action};
use crate::store::Store;

/// Who is asking: the user a token acts as, and whether it is an admin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor {
    /// The user the caller acts as.
    pub user: UserId,
    /// An admin may do anything and send as another user.
    pub admin: bool,
}

impl Actor {
    /// A plain user.
    pub fn user(user: UserId) -> Self {
        Self { user, admin: false }
    }

    /// An admin acting as `user`.
    pub fn admin(user: UserId) -> Self {
        Self { user, admin: true }
    }
}

/// Size limits, enforced before any work is done.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Largest message body, in bytes of JSON.
    pub body_bytes: usize,
    /// Most fields in a profile or a group.
    pub fields: usize,
    /// Largest field value, in bytes.
    pub field_bytes: usize,
    /// Most members in a group.
    pub group_members: usize,
    /// Most members in a room.
    pub room_members: usize,
    /// Most rooms one user is a member of: the conversation list reads
    /// each of the user's rooms' newest message when it is read, so this
    /// bounds the cost of one list.
    pub rooms_per_user: usize,
    /// Largest page of history or of the conversation list.
    pub page: usize,
    /// Most events in one long-poll answer.
    pub events_page: usize,
    /// Most distinct reaction keys on one message.
    pub reaction_keys: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            body_bytes: 64 * 1024,
            fields: 64,
            field_bytes: 4 * 1024,
            group_members: 10_000,
            room_members: 1_000_000,
            rooms_per_user: 1_000,
            page: 500,
            events_page: 1000,
            reaction_keys: crate::data::MAX_REACTION_KEYS,
        }
    }
}

/// How long each user's event feed is kept. Older events are trimmed; a
/// cursor that points before what is kept gets a `reset`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Retention {
    /// Keep at most this many events per user.
    pub events: Option<u64>,
    /// Keep events at most this old.
    pub age: Option<Duration>,
}

impl Default for Retention {
    fn default() -> Self {
        Self {
            events: Some(100_000),
            age: None,
        }
    }
}

/// Engine settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// Size limits.
    pub limits: Limits,
    /// Feed retention.
    pub retention: Retention,
    /// A live stream that has heard no wake-up for this long reads its feed
    /// anyway, so a lost notification (a pub/sub message across nodes) costs
    /// latency, never an event.
    pub recheck: Duration,
    /// A live stream woken sooner than this after its last read waits out
    /// the rest before reading again: under load, the events of several
    /// sends are read and written together, at a cost of at most this much
    /// latency; a stream woken less often reads at once. Zero reads at
    /// every wake-up.
    pub coalesce: Duration,
    /// What hashing a new password costs.
    pub password_cost: crate::password::PasswordCost,
    /// After a user's last stream here closes, how long it stays online
    /// before it is recorded offline and its contacts hear of it; a stream
    /// opened meanwhile announces nothing.
    pub presence_grace: Duration,
    /// Read receipts go to the other participants of direct conversations
    /// and of groups with at most this many members.
    pub receipts_max_group: usize,
    /// The hooks' time limit and what a time-out does.
    pub hooks: HookConfig,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            limits: Limits::default(),
            retention: Retention::default(),
            recheck: Duration::from_secs(5),
            coalesce: Duration::from_millis(4),
            password_cost: Default::default(),
            presence_grace: Duration::from_secs(5),
            receipts_max_group: 100,
            hooks: HookConfig::default(),
        }
    }
}

/// The time source: the system clock, or a test's own.
pub trait Clock: Send + Sync + 'static {
    /// Milliseconds since the Unix epoch.
    fn now(&self) -> Timestamp;
}

/// The system clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
    }
}

/// The IM engine over a store: a cheap `Clone` handle.
///
/// ```
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// use im_engine::{Actor, Body, Engine, MemoryStore, SendRequest, UserId};
///
/// let engine = Engine::new(MemoryStore::new());
/// let admin = Actor::admin(UserId::new("root")?);
/// for name in ["alice", "bob"] {
///     engine.put_user(&admin, &UserId::new(name)?, Default::default()).await?;
/// }
/// let alice = Actor::user(UserId::new("alice")?);
/// let dm = "dm:bob:alice".parse()?;
/// let body = Body::new(r#"{"text": "hi"}"#, 1024)?;
/// let (msg, _) = engine.send(&alice, &dm, SendRequest::new(body)).await?;
/// assert_eq!((msg.seq, msg.conversation.to_string().as_str()), (1, "dm:alice:bob"));
///
/// let bob = Actor::user(UserId::new("bob")?);
/// let list = engine.conversations(&bob, None).await?;
/// assert_eq!(list[0].unread, 1);
/// # Ok::<_, im_engine::Error>(())
/// # }).unwrap();
/// ```
pub struct Engine<S> {
    pub(crate) inner: Arc<Inner<S>>,
}

pub(crate) struct Inner<S> {
    pub(crate) store: S,
    pub(crate) config: Config,
    pub(crate) clock: Arc<dyn Clock>,
    /// Open live streams per user in this process; guarded by an async mutex
    /// so that presence changes reach the store in the order they happened.
    pub(crate) streams: tokio::sync::Mutex<HashMap<UserId, crate::signals::Streams>>,
    /// Who is typing where, through this process (see `signals`).
    pub(crate) typing: crate::signals::TypingTable,
    /// Messages sent or read lately, for the live streams (see `feed.rs`).
    pub(crate) recent: crate::feed::RecentMessages,
    /// Users known to exist (see [`Engine::require_user`]).
    pub(crate) known_users: quick_cache::sync::Cache<UserId, ()>,
    /// Hashes and checks passwords off the async workers.
    pub(crate) hasher: crate::password::Hasher,
    /// Locks that serialize the read-modify-write of a user record in this
    /// process (see [`Engine::lock_user`]), one per stripe of user ids.
    user_writes: Box<[tokio::sync::Mutex<()>]>,
    /// The suspended users, as last read.
    pub(crate) suspensions: crate::moderation::Suspensions,
    /// The host's hooks and the queue of their after-commit events.
    pub(crate) hooks: Option<AfterCommit>,
}

/// How many stripes [`Inner::user_writes`] has.
const USER_WRITE_STRIPES: usize = 64;

/// How many users [`Inner::known_users`] remembers.
const KNOWN_USERS: usize = 16_384;

impl<S> Clone for Engine<S> {
    fn clone(&self) -> Self {
        Self {
            inner: Arc::clone(&self.inner),
        }
    }
}

impl<S> std::fmt::Debug for Engine<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("config", &self.inner.config)
            .finish_non_exhaustive()
    }
}

impl<S: Store> Engine<S> {
    /// An engine with the default configuration and the system clock.
    pub fn new(store: S) -> Self {
        Self::with_config(store, Config::default())
    }

    /// An engine with `config` and the system clock.
    pub fn with_config(store: S, config: Config) -> Self {
        Self::with_clock(store, config, Arc::new(SystemClock))
    }

    /// An engine with `config` and its own clock (for tests).
    pub fn with_clock(store: S, config: Config, clock: Arc<dyn Clock>) -> Self {
        Self::builder(store).config(config).clock(clock).build()
    }

    /// A builder, for an engine with hooks (or any other setting).
    pub fn builder(store: S) -> EngineBuilder<S> {
        EngineBuilder {
            store,
            config: Config::default(),
            clock: Arc::new(SystemClock),
            hooks: None,
        }
    }

    /// The store back, if this is the last handle (to close or reopen it).
    ///
    /// # Errors
    ///
    /// The engine itself while other handles or live streams hold it.
    pub fn try_into_store(self) -> Result<S, Self> {
        Arc::try_unwrap(self.inner)
            .map(|inner| inner.store)
            .map_err(|inner| Self { inner })
    }

    /// The store.
    pub fn store(&self) -> &S {
        &self.inner.store
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.inner.config
    }

    /// Whether the store answers.
    ///
    /// # Errors
    ///
    /// [`Error::Store`] when it does not.
    pub async fn ping(&self) -> Result<(), Error> {
        self.store().ping().await.map_err(Error::store)
    }

    /// Makes every acknowledged write durable.
    ///
    /// # Errors
    ///
    /// [`Error::Store`] when the store fails.
    pub async fn flush(&self) -> Result<(), Error> {
        self.store().flush().await.map_err(Error::store)
    }

    pub(crate) fn now(&self) -> Timestamp {
        self.inner.clock.now()
    }

    pub(crate) fn limits(&self) -> &Limits {
        &self.inner.config.limits
    }

    /// Fails unless a message body is within the body limit.
    pub(crate) fn check_body(&self, body: &crate::Body) -> Result<(), Error> {
        let max = self.limits().body_bytes;
        if body.get().len() > max {
            return Err(Error::TooLarge(format!(
                "a message body is at most {max} bytes"
            )));
        }
        Ok(())
    }

    /// Fails with 404 unless the user exists. A user found once is
    /// remembered, so a send between known users reads no profile; only an
    /// erasure forgets one (on this engine: another engine sharing the
    /// store may take an erased user for existing until it restarts, which
    /// lets a direct message to it commit, into a conversation nobody
    /// reads).
    pub(crate) async fn require_user(&self, id: &UserId) -> Result<(), Error> {
        if self.inner.known_users.get(id).is_some() {
            return Ok(());
        }
        self.user_record(id).await?;
        self.inner.known_users.insert(id.clone(), ());
        Ok(())
    }

    /// Holds off every other write of `id`'s record in this process while
    /// the guard lives, so that a profile patch and a password change, each
    /// a read of the whole record then a write of it, cannot undo each
    /// other.
    pub(crate) async fn lock_user(&self, id: &UserId) -> tokio::sync::MutexGuard<'_, ()> {
        use std::hash::{BuildHasher, BuildHasherDefault, DefaultHasher};
        let hash = BuildHasherDefault::<DefaultHasher>::default().hash_one(id);
        let stripes = &self.inner.user_writes;
        // The remainder is below the stripe count, so it fits a usize.
        #[allow(clippy::cast_possible_truncation)]
        let i = (hash % stripes.len() as u64) as usize;
        stripes[i].lock().await
    }

    pub(crate) fn forget_user(&self, id: &UserId) {
        self.inner.known_users.remove(id);
    }

    /// The user's record; 404 unless it exists.
    pub(crate) async fn user_record(&self, id: &UserId) -> Result<crate::User, Error> {
        self.store()
            .user(id)
            .await
            .map_err(Error::store)?
            .ok_or_else(|| Error::NotFound(format!("user {id}")))
    }

    /// Whether `user` takes part in `c` (which must exist).
    pub(crate) async fn is_participant(
        &self,
        c: &ConversationId,
        user: &UserId,
    ) -> Result<bool, Error> {
        match c {
            ConversationId::Direct(a, b) => {
                self.require_user(a).await?;
                self.require_user(b).await?;
                Ok(a == user || b == user)
            }
            ConversationId::Group(g) | ConversationId::Room(g) => {
                self.require_conversation_space(c, g).await?;
                Ok(self
                    .store()
                    .member(g, user)
                    .await
                    .map_err(Error::store)?
                    .is_some())
            }
        }
    }

    /// Fails unless `c` exists and the actor takes part in it (policy rule
    /// 5: no admin stands in for a participant).
    pub(crate) async fn require_taking_part(
        &self,
        actor: &Actor,
        c: &ConversationId,
    ) -> Result<(), Error> {
        let participant = self.is_participant(c, &actor.user).await?;
        policy::check(
            actor,
            Action::Take {
                conversation: c,
                participant,
            },
        )
    }

    /// Fails unless `c` exists and the actor may read it: a participant, or
    /// an admin.
    pub(crate) async fn require_reader(
        &self,
        actor: &Actor,
        c: &ConversationId,
    ) -> Result<(), Error> {
        let participant = self.is_participant(c, &actor.user).await?;
        policy::check(
            actor,
            Action::Read {
                conversation: c,
                participant,
            },
        )
    }
}

/// Builds an [`Engine`]: [`Engine::builder`], then the settings that
/// differ from the defaults, then [`build`](Self::build).
///
/// ```
/// use std::sync::Arc;
/// use im_engine::{Config, Engine, Hooks, MemoryStore};
///
/// struct Quiet;
/// impl Hooks for Quiet {}
///
/// let engine = Engine::builder(MemoryStore::new())
///     .config(Config::default())
///     .hooks(Arc::new(Quiet))
///     .build();
/// # drop(engine);
/// ```
pub struct EngineBuilder<S> {
    store: S,
    config: Config,
    clock: Arc<dyn Clock>,
    hooks: Option<Arc<dyn Hooks>>,
}

impl<S> std::fmt::Debug for EngineBuilder<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EngineBuilder")
            .field("config", &self.config)
            .field("hooks", &self.hooks.is_some())
            .finish_non_exhaustive()
    }
}

impl<S: Store> EngineBuilder<S> {
    /// The configuration (default: [`Config::default`]).
    pub fn config(mut self, config: Config) -> Self {
        self.config = config;
        self
    }

    /// The clock (default: [`SystemClock`]).
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// The host's hooks (default: none, which allows every send and
    /// reports no event).
    pub fn hooks(mut self, hooks: Arc<dyn Hooks>) -> Self {
        self.hooks = Some(hooks);
        self
    }

    /// The host's hooks if any (`None`: the default, no hooks).
    pub fn maybe_hooks(mut self, hooks: Option<Arc<dyn Hooks>>) -> Self {
        self.hooks = hooks;
        self
    }

    /// The engine.
    pub fn build(self) -> Engine<S> {
        let password_cost = self.config.password_cost;
        Engine {
            inner: Arc::new(Inner {
                store: self.store,
                config: self.config,
                clock: self.clock,
                streams: Default::default(),
                typing: Default::default(),
                recent: crate::feed::RecentMessages::new(),
                known_users: quick_cache::sync::Cache::new(KNOWN_USERS),
                hasher: crate::password::Hasher::new(password_cost),
                user_writes: (0..USER_WRITE_STRIPES)
                    .map(|_| Default::default())
                    .collect(),
                suspensions: crate::moderation::Suspensions::new(),
                hooks: self.hooks.map(AfterCommit::new),
            }),
        }
    }
}

/// Checks a `limit` query value against the page limit.
pub(crate) fn page_limit(limit: Option<usize>, default: usize, max: usize) -> Result<usize, Error> {
    match limit {
        None => Ok(default.min(max)),
        Some(n) if (1..=max).contains(&n) => Ok(n),
        Some(_) => Err(Error::Invalid(format!("limit must be 1 to {max}"))),
    }
}
