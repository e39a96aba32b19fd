//! [`RedisStore`]: opening, the reads, presence.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use im_engine::store::{
    Changes, Mark, Marks, MemberUpdate, MessageUpdate, MessageUpdated, Outgoing, RoomBus,
    RoomEvent, Sent, Updated,
};
use im_engine::{
    Addressed, Contact, ConvEntry, ConversationId, Epoch, Feed, Firehose, Group, GroupId, Member,
    Message, Notifier, Presence, Seq, SignalBus, Store, Timestamp, User, UserId,
};
use redis::{AsyncCommands, Value};

use crate::codec::{self, from_json};
use crate::conn::{self, Conn, Target, bounded};
use crate::drains::Drains;
use crate::error::{Error, Result, corrupt};
use crate::keys::Keys;
use crate::outbox::Outbox;
use crate::slots::Slots;
use crate::{FORMAT_VERSION, RedisConfig, live, migrate, scripts};

/// The engine's data in Redis or a Redis Cluster, shared by any number of
/// processes. Cloning it shares the connection and the background tasks,
/// which stop when the last clone is dropped.
#[derive(Debug, Clone)]
pub struct RedisStore {
    pub(crate) shared: Shared,
    epoch: Epoch,
    _tasks: Arc<live::Tasks>,
}

/// What the store's calls and its background tasks share.
#[derive(Debug, Clone)]
pub(crate) struct Shared {
    pub(crate) conn: Conn,
    pub(crate) keys: Keys,
    pub(crate) notifier: Notifier,
    /// This process's signal bus, which the subscription also delivers to.
    pub(crate) signals: SignalBus,
    /// This process's room bus, which the room subscriptions deliver to.
    pub(crate) rooms: RoomBus,
    /// This process's random id: its presence fields, heartbeat, and the
    /// origin of its notifications.
    pub(crate) node: u64,
    pub(crate) timeout: Duration,
    pub(crate) node_ttl: Duration,
    pub(crate) target: Target,
    /// Whether the notification subscription is up right now.
    pub(crate) subscribed: Arc<AtomicBool>,
    /// One fan-out drain at a time per conversation (cluster).
    pub(crate) drains: Arc<Drains>,
    /// Which node serves which user (cluster).
    pub(crate) slots: Arc<Slots>,
    /// The notifications of sends to other nodes (single Redis).
    pub(crate) outbox: Outbox,
}

impl Shared {
    pub(crate) fn cluster(&self) -> bool {
        matches!(self.conn, Conn::Cluster(_))
    }

    /// A connection handle for one call (a cheap clone).
    pub(crate) fn conn(&self) -> Conn {
        self.conn.clone()
    }

    /// Runs `fut` within the store's timeout.
    pub(crate) async fn bounded<T>(&self, fut: impl Future<Output = Result<T>>) -> Result<T> {
        bounded(self.timeout, fut).await
    }
}

impl RedisStore {
    /// Connects, loads the scripts, reads (or creates) the epoch, and starts
    /// the background tasks.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] for a bad URL or prefix; [`Error::Redis`] or
    /// [`Error::Timeout`] when Redis cannot be reached;
    /// [`Error::UnsupportedVersion`] for data of another format.
    pub async fn open(config: RedisConfig) -> Result<Self> {
        let keys = Keys::new(&config.prefix)
            .ok_or_else(|| Error::Config("the key prefix may not contain '{' or '}'".into()))?;
        let target = Target::parse(&config.url)?;
        let conn = conn::connect(&target, config.timeout).await?;
        let (outbox, posted) = Outbox::new();
        let shared = Shared {
            conn,
            keys,
            notifier: Notifier::new(),
            signals: SignalBus::new(),
            rooms: RoomBus::new(),
            node: rand::random(),
            timeout: config.timeout,
            node_ttl: config.node_ttl,
            target,
            subscribed: Arc::default(),
            drains: Arc::default(),
            slots: Arc::default(),
            outbox,
        };
        shared
            .bounded(async {
                let mut c = shared.conn();
                for script in scripts::all() {
                    script.prepare_invoke().load_async(&mut c).await?;
                }
                Ok(())
            })
            .await?;
        let epoch = meta(&shared).await?;
        live::beat(&shared).await?;
        let tasks = live::start(&shared, config.recovery_interval, posted);
        Ok(Self {
            shared,
            epoch,
            _tasks: Arc::new(tasks),
        })
    }

    /// This process's node id (its presence fields and heartbeat).
    pub fn node(&self) -> u64 {
        self.shared.node
    }

    /// Whether this process's notification subscription is up: while it is
    /// not (Redis restarting), streams still see new events, one recheck
    /// interval late.
    pub fn is_subscribed(&self) -> bool {
        self.shared.subscribed.load(Ordering::Relaxed)
    }

    /// Whether this store talks to a cluster.
    pub fn is_cluster(&self) -> bool {
        self.shared.cluster()
    }

    /// Finishes every fan-out that a crashed node left unfinished (a cluster
    /// does this by itself at start and periodically); nothing to do on a
    /// single Redis, where a send is one script.
    ///
    /// # Errors
    ///
    /// When Redis fails or does not answer in time.
    pub async fn recover(&self) -> Result<usize> {
        if !self.shared.cluster() {
            return Ok(0);
        }
        crate::write::recover(&self.shared, Duration::ZERO).await
    }

    async fn read<T>(&self, fut: impl Future<Output = Result<T>>) -> Result<T> {
        self.shared.bounded(fut).await
    }
}

/// Checks the format version (upgrading older formats) and answers the
/// epoch, creating both on a new store.
async fn meta(s: &Shared) -> Result<Epoch> {
    let key = s.keys.meta();
    let (version, epoch) = s
        .bounded(async {
            let mut c = s.conn();
            let _: bool = c.hset_nx(&key, "version", FORMAT_VERSION).await?;
            let _: bool = c
                .hset_nx(&key, "epoch", rand::random::<u64>().to_string())
                .await?;
            let read: (Option<String>, Option<String>) = redis::cmd("HMGET")
                .arg(&key)
                .arg("version")
                .arg("epoch")
                .query_async(&mut c)
                .await?;
            Ok(read)
        })
        .await?;
    let version: u32 = version
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| corrupt("store version"))?;
    match version {
        FORMAT_VERSION => {}
        1..=5 => {
            if version == 1 {
                let moved = migrate::members_v1_to_v2(s).await?;
                let dropped = migrate::drop_stray_group_entries(s).await?;
                tracing::info!(
                    groups = moved,
                    stray_entries = dropped,
                    "upgraded the Redis store from format 1 to 2"
                );
            }
            if version <= 2 {
                let indexed = migrate::followers_v2_to_v3(s).await?;
                tracing::info!(contacts = indexed, "upgraded the Redis store to format 3");
            }
            if version <= 3 {
                let feeds = migrate::feeds_v3_to_v4(s).await?;
                tracing::info!(feeds, "upgraded the Redis store to format 4");
            }
            if version <= 4 {
                let streams = migrate::streams_v4_to_v5(s).await?;
                tracing::info!(streams, "upgraded the Redis store to format 5");
            }
            let groups = migrate::member_ids_v5_to_v6(s).await?;
            s.bounded(async {
                let _: () = s.conn().hset(&key, "version", FORMAT_VERSION).await?;
                Ok(())
            })
            .await?;
            tracing::info!(groups, "upgraded the Redis store to format 6");
        }
        found => {
            return Err(Error::UnsupportedVersion {
                found,
                supported: FORMAT_VERSION,
            });
        }
    }
    epoch
        .and_then(|e| e.parse().ok())
        .map(Epoch)
        .ok_or_else(|| corrupt("store epoch"))
}

impl Store for RedisStore {
    type Error = Error;

    fn epoch(&self) -> Epoch {
        self.epoch
    }

    fn notifier(&self) -> &Notifier {
        &self.shared.notifier
    }

    fn signals(&self) -> &SignalBus {
        &self.shared.signals
    }

    fn rooms(&self) -> &RoomBus {
        &self.shared.rooms
    }

    async fn publish_room(&self, event: &RoomEvent) -> Result<()> {
        live::publish_room(&self.shared, event).await
    }

    async fn publish(&self, addressed: &Addressed) -> Result<()> {
        live::publish(&self.shared, addressed).await
    }

    async fn send(&self, send: &Outgoing) -> Result<Sent> {
        crate::write::send(&self.shared, send).await
    }

    async fn update_message(&self, update: &MessageUpdate) -> Result<MessageUpdated> {
        crate::write::update_message(&self.shared, update).await
    }

    async fn update_member(&self, update: &MemberUpdate) -> Result<Updated> {
        crate::write::update_member(&self.shared, update).await
    }

    async fn commit(&self, changes: &Changes) -> Result<()> {
        crate::write::commit(&self.shared, changes).await
    }

    async fn user(&self, id: &UserId) -> Result<Option<User>> {
        self.read(async {
            let json: Option<String> = self.shared.conn().get(self.shared.keys.user(id)).await?;
            json.map(|j| from_json("user", &j)).transpose()
        })
        .await
    }

    async fn contact(&self, owner: &UserId, id: &UserId) -> Result<Option<Contact>> {
        self.read(async {
            let json: Option<String> = self
                .shared
                .conn()
                .hget(self.shared.keys.contacts(owner), id.as_str())
                .await?;
            json.map(|j| from_json("contact", &j)).transpose()
        })
        .await
    }

    async fn contacts(&self, owner: &UserId) -> Result<Vec<Contact>> {
        self.read(async {
            let all: Vec<String> = self
                .shared
                .conn()
                .hvals(self.shared.keys.contacts(owner))
                .await?;
            all.iter().map(|j| from_json("contact", j)).collect()
        })
        .await
    }

    async fn followers(&self, user: &UserId) -> Result<Vec<UserId>> {
        self.read(async {
            let ids: Vec<String> = self
                .shared
                .conn()
                .hkeys(self.shared.keys.followers(user))
                .await?;
            ids.iter()
                .map(|id| UserId::new(id).map_err(|_| corrupt(format!("follower {id:?}"))))
                .collect()
        })
        .await
    }

    async fn group(&self, id: &GroupId) -> Result<Option<Group>> {
        self.read(async {
            let json: Option<String> = self.shared.conn().get(self.shared.keys.group(id)).await?;
            json.map(|j| from_json("group", &j)).transpose()
        })
        .await
    }

    async fn marks(&self, set: &Marks) -> Result<Vec<Mark>> {
        self.read(async {
            let all: Vec<(String, String)> = self
                .shared
                .conn()
                .hgetall(self.shared.keys.marks(set))
                .await?;
            let mut marks = all
                .iter()
                .map(|(u, since)| mark(u, since))
                .collect::<Result<Vec<_>>>()?;
            marks.sort_by(|a, b| a.user.cmp(&b.user));
            Ok(marks)
        })
        .await
    }

    async fn mark(&self, set: &Marks, user: &UserId) -> Result<Option<Mark>> {
        self.read(async {
            let since: Option<String> = self
                .shared
                .conn()
                .hget(self.shared.keys.marks(set), user.as_str())
                .await?;
            since.map(|s| mark(user.as_str(), &s)).transpose()
        })
        .await
    }

    async fn member(&self, group: &GroupId, user: &UserId) -> Result<Option<Member>> {
        self.read(async {
            let json: Option<String> = self
                .shared
                .conn()
                .hget(self.shared.keys.members(group), user.as_str())
                .await?;
            json.map(|j| from_json("member", &j)).transpose()
        })
        .await
    }

    async fn members(&self, group: &GroupId) -> Result<Vec<Member>> {
        self.read(async {
            let all: Vec<String> = self
                .shared
                .conn()
                .hvals(self.shared.keys.members(group))
                .await?;
            all.iter().map(|j| from_json("member", j)).collect()
        })
        .await
    }

    async fn member_count(&self, group: &GroupId) -> Result<usize> {
        self.read(async {
            let n: usize = self
                .shared
                .conn()
                .hlen(self.shared.keys.members(group))
                .await?;
            Ok(n)
        })
        .await
    }

    async fn members_after(
        &self,
        group: &GroupId,
        after: Option<&UserId>,
        limit: usize,
    ) -> Result<Vec<Member>> {
        self.read(crate::members::page(&self.shared, group, after, limit))
            .await
    }

    async fn last_seq(&self, conversation: &ConversationId) -> Result<Seq> {
        self.read(async {
            Ok(scripts::LAST_SEQ
                .key(self.shared.keys.log(conversation))
                .invoke_async(&mut self.shared.conn())
                .await?)
        })
        .await
    }

    async fn messages(
        &self,
        conversation: &ConversationId,
        from: Seq,
        to: Seq,
    ) -> Result<Vec<Message>> {
        if from > to {
            return Ok(Vec::new());
        }
        let (mut messages, changed) = self
            .read(crate::write::read_messages(
                &self.shared,
                conversation,
                from,
                to,
            ))
            .await?;
        for (_, record) in changed {
            messages.push(from_json("message", &record)?);
        }
        messages.sort_by_key(|m| m.seq);
        Ok(messages)
    }

    async fn entry(
        &self,
        user: &UserId,
        conversation: &ConversationId,
    ) -> Result<Option<ConvEntry>> {
        let conv = conversation.to_string();
        Ok(self
            .read(read_entries(&self.shared, user, &conv))
            .await?
            .pop())
    }

    async fn entries(&self, user: &UserId) -> Result<Vec<ConvEntry>> {
        self.read(read_entries(&self.shared, user, "")).await
    }

    async fn feed(&self, user: &UserId, after: u64, limit: usize) -> Result<Feed> {
        self.read(async {
            let limit = limit.min(1 << 30);
            let v: Value = scripts::FEED_READ
                .key(self.shared.keys.feed(user))
                .arg(after)
                .arg(limit)
                .invoke_async(&mut self.shared.conn())
                .await?;
            let [head, trimmed, entries] = codec::array(&v)? else {
                return Err(corrupt("feed read answer"));
            };
            Ok(Feed {
                head: codec::number(head)?,
                trimmed: codec::number(trimmed)?,
                entries: codec::array(entries)?
                    .iter()
                    .map(codec::feed_entry)
                    .collect::<Result<_>>()?,
            })
        })
        .await
    }

    fn firehose_partitions(&self) -> usize {
        if self.shared.cluster() {
            crate::keys::SHARDS as usize
        } else {
            1
        }
    }

    async fn firehose(&self, part: usize, after: u64, limit: usize) -> Result<Firehose> {
        if part >= self.firehose_partitions() {
            return Ok(Firehose::default());
        }
        let part = part as u64;
        self.read(async {
            let v: Value = scripts::FIRE_READ
                .key(self.shared.keys.fire(part))
                .arg(after)
                .arg(limit.min(1 << 30))
                .invoke_async(&mut self.shared.conn())
                .await?;
            let [head, entries] = codec::array(&v)? else {
                return Err(corrupt("firehose read answer"));
            };
            Ok(Firehose {
                head: codec::number(head)?,
                entries: codec::array(entries)?
                    .iter()
                    .map(codec::fire_entry)
                    .collect::<Result<_>>()?,
            })
        })
        .await
    }

    async fn acked(&self, name: &str) -> Result<Option<String>> {
        self.read(async {
            let v: Option<String> = self
                .shared
                .conn()
                .hget(self.shared.keys.acked(), name)
                .await?;
            Ok(v)
        })
        .await
    }

    async fn set_acked(&self, name: &str, value: &str) -> Result<()> {
        self.read(async {
            let _: u64 = self
                .shared
                .conn()
                .hset(self.shared.keys.acked(), name, value)
                .await?;
            Ok(())
        })
        .await
    }

    async fn lease(&self, name: &str, holder: &str, ttl: Duration) -> Result<bool> {
        self.read(async {
            let held: u64 = scripts::LEASE
                .key(self.shared.keys.lease(name))
                .arg(holder)
                .arg(u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1))
                .invoke_async(&mut self.shared.conn())
                .await?;
            Ok(held == 1)
        })
        .await
    }

    async fn set_presence(&self, user: &UserId, online: bool, at: Timestamp) -> Result<()> {
        self.read(live::set_presence(&self.shared, user, online, at))
            .await
    }

    fn export(&self) -> impl futures_util::Stream<Item = Result<im_engine::store::Record>> + Send {
        self.records()
    }

    async fn presence(&self, user: &UserId) -> Result<Presence> {
        self.read(live::presence(&self.shared, user)).await
    }

    async fn ping(&self) -> Result<()> {
        self.read(async {
            // On a cluster, PING goes to every master.
            let _: Value = redis::cmd("PING")
                .query_async(&mut self.shared.conn())
                .await?;
            Ok(())
        })
        .await
    }

    /// Redis persists by its own configuration (see the crate docs): there
    /// is nothing to flush from here, so this only checks that Redis answers.
    async fn flush(&self) -> Result<()> {
        self.ping().await
    }
}

/// A user's index entries (`conv` `""`) or the one of `conv`. On one
/// Redis a script gives a group member's entry its conversation's activity
/// when that is newer; a cluster writes every entry at every send.
async fn read_entries(s: &Shared, user: &UserId, conv: &str) -> Result<Vec<ConvEntry>> {
    let key = s.keys.entries(user);
    let pairs: Vec<(String, String)> = if s.cluster() {
        if conv.is_empty() {
            s.conn().hgetall(key).await?
        } else {
            let v: Option<String> = s.conn().hget(key, conv).await?;
            v.map(|v| (conv.to_owned(), v)).into_iter().collect()
        }
    } else {
        let v: Value = scripts::ENTRIES_READ
            .key(key)
            .arg(s.keys.prefix())
            .arg(user.as_str())
            .arg(conv)
            .invoke_async(&mut s.conn())
            .await?;
        codec::pairs(&v)?
    };
    pairs.iter().map(|(c, v)| codec::entry(c, v)).collect()
}

/// A stored mark, decoded.
fn mark(user: &str, since: &str) -> Result<Mark> {
    Ok(Mark {
        user: UserId::new(user).map_err(|_| corrupt(format!("marked user {user:?}")))?,
        since: since
            .parse()
            .map_err(|_| corrupt(format!("mark time {since:?}")))?,
    })
}
