//! What runs beside the calls: one pub/sub subscription per process that
//! wakes the local streams of users whose feeds grew on another node and
//! hands other nodes' signals to the local signal bus, the
//! node heartbeat that keeps this node's presence fields alive, and (on a
//! cluster) the sweep that finishes fan-outs left by crashed nodes.

use std::time::Duration;

use im_engine::store::RoomEvent;
use im_engine::{Addressed, Presence, Timestamp, UserId};
use redis::aio::{ConnectionLike, ConnectionManager};
use redis::{AsyncCommands, IntoConnectionInfo, ProtocolVersion, PushInfo, PushKind, Value};
use tokio::sync::mpsc::{UnboundedReceiver, unbounded_channel};
use tokio::task::JoinHandle;

use crate::codec;
use crate::conn::{self, Conn, Target, bounded};
use crate::error::{Result, corrupt};
use crate::keys::{self, SHARDS};
use crate::store::Shared;
use crate::{outbox, scripts};

/// The background tasks of a store; dropping this stops them.
#[derive(Debug)]
pub(crate) struct Tasks {
    handles: Vec<JoinHandle<()>>,
    /// To delete this node's heartbeat on drop, so that its users go
    /// offline at once rather than after the TTL.
    alive: (Conn, String),
}

impl Drop for Tasks {
    fn drop(&mut self) {
        for h in &self.handles {
            h.abort();
        }
        let (mut conn, key) = self.alive.clone();
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(async move {
                let del = async { Ok(conn.del::<_, ()>(&key).await?) };
                let _ = bounded(Duration::from_secs(1), del).await;
            });
        }
    }
}

/// Starts the heartbeat, the subscription and the recovery sweep (on a
/// cluster) or the publisher of the sends' notifications (on one Redis),
/// which reads `posted`.
pub(crate) fn start(
    s: &Shared,
    recovery_interval: Duration,
    posted: UnboundedReceiver<Vec<UserId>>,
) -> Tasks {
    let mut handles = vec![
        tokio::spawn(heartbeat(s.clone())),
        tokio::spawn(listen(s.clone())),
    ];
    if s.cluster() {
        handles.push(tokio::spawn(recovery(s.clone(), recovery_interval)));
    } else {
        handles.push(tokio::spawn(outbox::run(s.clone(), posted)));
    }
    Tasks {
        handles,
        alive: (s.conn(), s.keys.alive(s.node)),
    }
}

/// Renews this node's heartbeat key.
pub(crate) async fn beat(s: &Shared) -> Result<()> {
    let ttl = u64::try_from(s.node_ttl.as_millis())
        .unwrap_or(u64::MAX)
        .max(1);
    s.bounded(async {
        let _: () = redis::cmd("SET")
            .arg(s.keys.alive(s.node))
            .arg(1)
            .arg("PX")
            .arg(ttl)
            .query_async(&mut s.conn())
            .await?;
        Ok(())
    })
    .await
}

async fn heartbeat(s: Shared) {
    let every = (s.node_ttl / 3).max(Duration::from_millis(10));
    loop {
        // After a failure, beat again soon: each attempt also makes the
        // command connection reconnect, so the store is ready as soon as
        // Redis is back rather than at its next call.
        let next = match beat(&s).await {
            Ok(()) => every,
            Err(e) => {
                tracing::debug!(error = %e, "node heartbeat failed");
                every.min(Duration::from_millis(200))
            }
        };
        tokio::time::sleep(next).await;
    }
}

async fn recovery(s: Shared, every: Duration) {
    let mut tick = tokio::time::interval(every.max(Duration::from_millis(10)));
    loop {
        tick.tick().await;
        // Markers younger than one timeout may belong to sends in progress;
        // finishing those too would be harmless, only wasted work.
        match s.bounded(crate::write::recover(&s, s.timeout)).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(markers = n, "finished fan-outs left unfinished"),
            Err(e) => tracing::debug!(error = %e, "fan-out recovery failed"),
        }
    }
}

/// Marks a signal's payload: `S<node>` then one line of JSON
/// ([`Addressed`]). A feed notification starts with the node's hex id,
/// never with `S`.
const SIGNAL: char = 'S';

/// Publishes a signal to every node (this one included, at once), on the
/// channel the feed notifications use: on a cluster, the shard channel of
/// its first recipient. One message per signal, however many recipients
/// and streams.
pub(crate) async fn publish(s: &Shared, addressed: &Addressed) -> Result<()> {
    s.signals.deliver(addressed);
    let Some(first) = addressed.to.first() else {
        return Ok(());
    };
    let json = serde_json::to_string(addressed).map_err(|e| corrupt(e.to_string()))?;
    let payload = format!("{SIGNAL}{:016x}\n{json}", s.node);
    let (cmd, channel) = if s.cluster() {
        (
            "SPUBLISH",
            s.keys.shard_channel(keys::shard(first.as_str())),
        )
    } else {
        ("PUBLISH", s.keys.channel())
    };
    s.bounded(async {
        let _: Value = redis::cmd(cmd)
            .arg(channel)
            .arg(payload)
            .query_async(&mut s.conn())
            .await?;
        Ok(())
    })
    .await
}

/// Publishes a room's live event to every node following the room (this
/// one at once): one message on the room's own channel, `<node>` then one
/// line of JSON ([`RoomEvent`]), `PUBLISH` on a single Redis, `SPUBLISH`
/// (in the room's slot) on a cluster.
pub(crate) async fn publish_room(s: &Shared, event: &RoomEvent) -> Result<()> {
    s.rooms.deliver(event.clone());
    let json = serde_json::to_string(event).map_err(|e| corrupt(e.to_string()))?;
    let payload = format!("{:016x}\n{json}", s.node);
    let cmd = if s.cluster() { "SPUBLISH" } else { "PUBLISH" };
    s.bounded(async {
        let _: Value = redis::cmd(cmd)
            .arg(s.keys.room_channel(&event.room))
            .arg(payload)
            .query_async(&mut s.conn())
            .await?;
        Ok(())
    })
    .await
}

/// Hands another node's room event to the local room bus.
fn deliver_room(s: &Shared, payload: &str) {
    let Some((origin, json)) = payload.split_once('\n') else {
        return;
    };
    if u64::from_str_radix(origin, 16).ok() == Some(s.node) {
        return;
    }
    match serde_json::from_str::<RoomEvent>(json) {
        Ok(event) => s.rooms.deliver(event),
        Err(e) => tracing::debug!(error = %e, "ignored a malformed room event"),
    }
}

/// Hands another node's signal to the local bus.
fn deliver_signal(s: &Shared, payload: &str) {
    let Some((origin, json)) = payload[SIGNAL.len_utf8()..].split_once('\n') else {
        return;
    };
    if u64::from_str_radix(origin, 16).ok() == Some(s.node) {
        return;
    }
    match serde_json::from_str::<Addressed>(json) {
        Ok(addressed) => s.signals.deliver(&addressed),
        Err(e) => tracing::debug!(error = %e, "ignored a malformed signal"),
    }
}

/// Wakes the local streams of the users a notification names, unless this
/// node sent it (it woke them itself); hands a signal to the local bus.
fn deliver(s: &Shared, push: &PushInfo) {
    let Some(payload) = push.data.get(1).and_then(|v| codec::text(v).ok()) else {
        return;
    };
    let channel = push.data.first().and_then(|v| codec::text(v).ok());
    if channel.is_some_and(|c| s.keys.channel_room(&c).is_some()) {
        deliver_room(s, &payload);
        return;
    }
    if payload.starts_with(SIGNAL) {
        deliver_signal(s, &payload);
        return;
    }
    let mut lines = payload.lines();
    let origin = lines.next().and_then(|n| u64::from_str_radix(n, 16).ok());
    if origin == Some(s.node) {
        return;
    }
    let users: Vec<UserId> = lines.filter_map(|u| UserId::new(u).ok()).collect();
    s.notifier.wake(&users);
}

/// A connection able to (re)subscribe and be pinged.
enum Sub {
    Single(ConnectionManager, String),
    Cluster(redis::cluster_async::ClusterConnection, Vec<String>),
}

impl Sub {
    /// Subscribes to the notification channels and to `rooms`' channels.
    async fn subscribe(&mut self, rooms: &[String]) -> Result<()> {
        match self {
            Self::Single(c, channel) => c.subscribe(channel.as_str()).await?,
            // One command per shard channel: they live in different slots.
            Self::Cluster(c, channels) => {
                for ch in channels.iter() {
                    c.ssubscribe(ch.as_str()).await?;
                }
            }
        }
        for room in rooms {
            self.follow(room, true).await?;
        }
        Ok(())
    }

    /// Starts (`on`) or stops following one room's channel.
    async fn follow(&mut self, channel: &str, on: bool) -> Result<()> {
        match (self, on) {
            (Self::Single(c, _), true) => c.subscribe(channel).await?,
            (Self::Single(c, _), false) => c.unsubscribe(channel).await?,
            (Self::Cluster(c, _), true) => c.ssubscribe(channel).await?,
            (Self::Cluster(c, _), false) => c.sunsubscribe(channel).await?,
        }
        Ok(())
    }

    async fn ping(&mut self) -> Result<()> {
        let cmd = redis::cmd("PING");
        let _: Value = match self {
            Self::Single(c, _) => c.req_packed_command(&cmd).await?,
            Self::Cluster(c, _) => c.req_packed_command(&cmd).await?,
        };
        Ok(())
    }
}

async fn command_ping(s: &Shared) -> Result<()> {
    s.bounded(async {
        let _: Value = redis::cmd("PING").query_async(&mut s.conn()).await?;
        Ok(())
    })
    .await
}

/// Opens the subscription connection (RESP3, pushes into a channel).
async fn open_sub(s: &Shared) -> Result<(Sub, UnboundedReceiver<PushInfo>)> {
    let (tx, rx) = unbounded_channel();
    let sub = match &s.target {
        Target::Single(url) => {
            let info = url.as_str().into_connection_info()?;
            let settings = info
                .redis_settings()
                .clone()
                .set_protocol(ProtocolVersion::RESP3);
            let client = redis::Client::open(info.set_redis_settings(settings))?;
            let config = conn::manager_config(s.timeout).set_push_sender(tx);
            Sub::Single(
                ConnectionManager::new_lazy_with_config(client, config)?,
                s.keys.channel(),
            )
        }
        Target::Cluster(nodes) => {
            let client = conn::cluster_client(nodes, s.timeout, Some(tx))?;
            let c = bounded(s.timeout, async {
                Ok(client.get_async_connection().await?)
            })
            .await?;
            Sub::Cluster(c, (0..SHARDS).map(|k| s.keys.shard_channel(k)).collect())
        }
    };
    Ok((sub, rx))
}

/// The one subscription of this process. It resubscribes after every
/// disconnection; notifications published meanwhile are lost, so once it is
/// subscribed again it wakes every local stream to reread its feed.
async fn listen(s: Shared) {
    let retry = Duration::from_millis(500);
    let (mut sub, mut rx) = loop {
        match open_sub(&s).await {
            Ok(opened) => break opened,
            Err(e) => {
                tracing::debug!(error = %e, "cannot open the notification subscription yet");
                tokio::time::sleep(retry).await;
            }
        }
    };
    let (mut subscribed, mut missed) = (false, false);
    let mut tick = tokio::time::interval(retry);
    let mut follows = s.rooms.follows();
    loop {
        tokio::select! {
            follow = follows.recv() => {
                let Some((room, on)) = follow else { return };
                // Unsubscribed, the next subscription takes every room
                // followed then.
                if subscribed {
                    let channel = s.keys.room_channel(&room);
                    if let Err(e) = bounded(s.timeout, sub.follow(&channel, on)).await {
                        tracing::warn!(error = %e, %room, "could not (un)follow a room; resubscribing");
                        subscribed = false;
                    }
                }
            },
            push = rx.recv() => match push {
                None => return,
                Some(push) => match push.kind {
                    PushKind::Message | PushKind::SMessage => deliver(&s, &push),
                    PushKind::Disconnection => {
                        subscribed = false;
                        s.subscribed.store(false, std::sync::atomic::Ordering::Relaxed);
                    }
                    _ => {}
                },
            },
            _ = tick.tick() => {
                let check = if subscribed {
                    bounded(s.timeout, sub.ping()).await
                } else {
                    let rooms: Vec<String> =
                        s.rooms.followed().iter().map(|r| s.keys.room_channel(r)).collect();
                    bounded(s.timeout, sub.subscribe(&rooms)).await
                };
                let ok = check.is_ok();
                match check {
                    Ok(()) => {
                        // Whatever was published before this point may never
                        // have reached us.
                        missed |= !subscribed;
                        subscribed = true;
                    }
                    Err(e) => {
                        if subscribed {
                            tracing::warn!(error = %e, "lost the notification subscription; retrying");
                        }
                        subscribed = false;
                    }
                }
                s.subscribed.store(ok, std::sync::atomic::Ordering::Relaxed);
                // Every stream rereads its feed, once the command connection
                // answers too (the first call after an outage may fail).
                if missed && ok && command_ping(&s).await.is_ok() {
                    missed = false;
                    s.notifier.wake_all();
                }
            }
        }
    }
}

/// Records this node's first stream of `user` opening, or its last closing.
pub(crate) async fn set_presence(
    s: &Shared,
    user: &UserId,
    online: bool,
    at: Timestamp,
) -> Result<()> {
    let key = s.keys.presence(user);
    let field = keys::node_field(s.node);
    let mut inv = scripts::APPLY.prepare_invoke();
    inv.key(key).arg("").arg("").arg(s.keys.prefix());
    if online {
        inv.arg("hset").arg(1).arg(field).arg(1);
    } else {
        inv.arg("hdel").arg(1).arg(field);
        inv.arg("hset").arg(1).arg("seen").arg(at);
    }
    let _: Value = inv.invoke_async(&mut s.conn()).await?;
    Ok(())
}

/// Online while some live node holds a field for the user. Fields of nodes
/// whose heartbeat has expired are removed on the way.
pub(crate) async fn presence(s: &Shared, user: &UserId) -> Result<Presence> {
    let key = s.keys.presence(user);
    let mut conn = s.conn();
    let fields: Vec<(String, String)> = conn.hgetall(&key).await?;
    let mut p = Presence::default();
    for (field, value) in &fields {
        if field == "seen" {
            p.last_seen = value.parse().ok();
            continue;
        }
        let Some(node) = keys::field_node(field) else {
            continue;
        };
        if p.online {
            continue;
        }
        if node == s.node || conn.exists::<_, bool>(s.keys.alive(node)).await? {
            p.online = true;
        } else {
            let _: u64 = conn.hdel(&key, field).await?;
        }
    }
    Ok(p)
}
