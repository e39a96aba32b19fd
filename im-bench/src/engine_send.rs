//! Sends through the engine in process, on each store, with 1 and 64
//! concurrent senders, to direct conversations and to a 100-member group;
//! beside raw writes of the same shape: sled batches, or `EVALSHA` of a
//! minimal send script on the same Redis; and on memory with trivial
//! hooks, beside the same without hooks.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use im_engine::{
    Actor, Body, Committed, ConversationId, Engine, HookFuture, Hooks, MemoryStore, NewMessage,
    SendRequest, Store, Verdict,
};

use crate::Scale;
use crate::redis_bench::Deployment;
use crate::report::{Report, Row};
use crate::seed::{self, uid};

/// Members of the group conversation.
const GROUP: usize = 100;

#[derive(Debug, Clone, Copy)]
pub(crate) enum Shape {
    Direct,
    Group,
}

impl Shape {
    fn name(self) -> &'static str {
        match self {
            Self::Direct => "DM",
            Self::Group => "100-member group",
        }
    }

    /// Keys sled's format 2 writes per message of this shape: the message,
    /// its client id, the conversation's state, the sender's entry and its
    /// feed bounds, then a feed event per participant.
    fn keys(self) -> usize {
        let participants = match self {
            Self::Direct => 2,
            Self::Group => GROUP,
        };
        5 + participants
    }
}

/// Sends per second through `engine` by `senders` concurrent senders of
/// `shape` for `secs`.
pub(crate) async fn rate<S: Store>(
    engine: &Engine<S>,
    shape: Shape,
    senders: usize,
    secs: f64,
) -> f64 {
    let count = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + Duration::from_secs_f64(secs);
    let tasks: Vec<_> = (0..senders)
        .map(|i| {
            let (engine, count) = (engine.clone(), Arc::clone(&count));
            tokio::spawn(async move {
                let (from, conversation): (_, ConversationId) = match shape {
                    Shape::Direct => (
                        uid(2 * i),
                        format!("dm:{}:{}", uid(2 * i), uid(2 * i + 1))
                            .parse()
                            .expect("valid"),
                    ),
                    Shape::Group => (uid(i % GROUP), "group:g".parse().expect("valid")),
                };
                let actor = Actor::user(from);
                let body = Body::new(r#"{"text":"hello"}"#, 1024).expect("valid body");
                while Instant::now() < deadline {
                    engine
                        .send(&actor, &conversation, SendRequest::new(body.clone()))
                        .await
                        .expect("send");
                    count.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.expect("sender task");
    }
    count.load(Ordering::Relaxed) as f64 / secs
}

/// Raw sled: the same number of keys per message in one batch, flushed
/// before the next (as an acknowledged durable write must be), by `writers`
/// threads.
fn sled_raw(keys: usize, writers: usize, secs: f64) -> f64 {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let db = sled::open(dir.path()).expect("open sled");
    let count = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + Duration::from_secs_f64(secs);
    std::thread::scope(|s| {
        for w in 0..writers {
            let (db, count) = (&db, Arc::clone(&count));
            s.spawn(move || {
                let mut n = 0u64;
                while Instant::now() < deadline {
                    let mut batch = sled::Batch::default();
                    for k in 0..keys as u64 {
                        let key =
                            [(w as u64).to_be_bytes(), n.to_be_bytes(), k.to_be_bytes()].concat();
                        batch.insert(key, &[7u8; 64][..]);
                    }
                    db.apply_batch(batch).expect("apply");
                    db.flush().expect("flush");
                    n += 1;
                    count.fetch_add(1, Ordering::Relaxed);
                }
            });
        }
    });
    count.load(Ordering::Relaxed) as f64 / secs
}

/// What a store's send figures are compared with.
enum Ceiling<'a> {
    /// Nothing (the memory store).
    None,
    /// Raw sled batches of the same number of keys.
    Sled,
    /// `EVALSHA` of a minimal send script on the same Redis deployment.
    Redis(&'a Deployment),
    /// The same sends on a seeded memory engine without hooks.
    Unhooked(Engine<MemoryStore>),
}

impl Ceiling<'_> {
    /// The ceiling of `shape` at `senders` concurrent senders, and what it
    /// is in words.
    async fn measure(&self, shape: Shape, senders: usize, secs: f64) -> Option<(f64, String)> {
        match self {
            Self::None => None,
            Self::Unhooked(engine) => Some((
                rate(engine, shape, senders, secs).await,
                "the same on memory without hooks".to_owned(),
            )),
            Self::Sled => {
                let writers = senders.min(8);
                let ceiling =
                    tokio::task::spawn_blocking(move || sled_raw(shape.keys(), writers, secs))
                        .await
                        .expect("raw sled");
                Some((
                    ceiling,
                    format!(
                        "raw sled batch of {} keys + flush, {writers} writer(s)",
                        shape.keys()
                    ),
                ))
            }
            Self::Redis(redis) => {
                // One HSET per member for a group; the bare three commands
                // for a direct message.
                let hsets = match shape {
                    Shape::Direct => 1,
                    Shape::Group => GROUP,
                };
                let ceiling = redis.evalsha_rate(hsets, senders, secs).await;
                let how = match (senders, redis.cluster) {
                    (1, _) => "1 caller, one call at a time".to_owned(),
                    (n, false) => format!("{n} callers pipelined on one multiplexed connection"),
                    (n, true) => {
                        format!("{n} callers pipelined on one multiplexed connection per node")
                    }
                };
                Some((
                    ceiling,
                    format!("EVALSHA of INCR + XADD + {hsets} HSET, {how}"),
                ))
            }
        }
    }
}

/// The users and the group every figure sends as and to.
pub(crate) async fn seed_engine<S: Store>(engine: &Engine<S>) {
    seed::users(engine, 2 * 64).await.expect("seed users");
    seed::group(engine, "g", GROUP)
        .await
        .expect("seed the group");
}

/// Hooks that allow every send and count the events they hear of: the
/// cost of the hooks themselves.
#[derive(Debug, Default)]
struct Trivial {
    events: AtomicU64,
}

impl Hooks for Trivial {
    fn before_send<'a>(&'a self, _: &'a NewMessage) -> HookFuture<'a, Verdict> {
        Box::pin(std::future::ready(Verdict::Allow))
    }

    fn after_commit<'a>(&'a self, _: &'a Committed) -> HookFuture<'a, ()> {
        self.events.fetch_add(1, Ordering::Relaxed);
        Box::pin(std::future::ready(()))
    }
}

async fn each_shape<S: Store>(
    report: &mut Report,
    store_name: &str,
    engine: Engine<S>,
    secs: f64,
    ceiling: Ceiling<'_>,
) {
    seed_engine(&engine).await;
    for shape in [Shape::Direct, Shape::Group] {
        for senders in [1, 64] {
            let value = rate(&engine, shape, senders, secs).await;
            let figure = format!(
                "engine send, {store_name}, {}, {senders} sender(s)",
                shape.name()
            );
            let mut row = match ceiling.measure(shape, senders, secs).await {
                Some((c, what)) => Row::against(figure, value, "msgs/s", c, what),
                None => Row::plain(figure, value, "msgs/s"),
            };
            // The issue's target: a direct send on one Redis at half the
            // rate of the pipelined minimal script.
            if let (Ceiling::Redis(r), Shape::Direct, Some(c)) = (&ceiling, shape, row.ceiling)
                && !r.cluster
                && senders > 1
            {
                row = row.target("≥ 0.50 of pipelined ceiling", value >= 0.5 * c);
            }
            report.add(row);
        }
    }
}

/// Runs the in-process send figures: memory, sled, and each Redis
/// deployment in `redis` (none when the Redis rows are left out).
pub async fn run(report: &mut Report, scale: &Scale, redis: &[Deployment]) {
    let secs = scale.engine_secs;
    if only_redis() {
        return run_redis(report, secs, redis).await;
    }
    each_shape(
        report,
        "memory",
        Engine::new(MemoryStore::new()),
        secs,
        Ceiling::None,
    )
    .await;
    let unhooked = Engine::new(MemoryStore::new());
    seed_engine(&unhooked).await;
    let hooked = Engine::builder(MemoryStore::new())
        .hooks(Arc::new(Trivial::default()))
        .build();
    each_shape(
        report,
        "memory with trivial hooks",
        hooked,
        secs,
        Ceiling::Unhooked(unhooked),
    )
    .await;
    let dir = tempfile::tempdir().expect("a temporary directory");
    let store = im_store_sled::SledStore::open(im_store_sled::SledConfig::new(dir.path()))
        .expect("open sled");
    each_shape(
        report,
        "sled durable",
        Engine::new(store),
        secs,
        Ceiling::Sled,
    )
    .await;
    run_redis(report, secs, redis).await;
}

/// `IM_BENCH_ENGINE_STORES=redis` leaves out the memory and sled rows of
/// the engine group (to compare Redis builds quickly).
fn only_redis() -> bool {
    std::env::var("IM_BENCH_ENGINE_STORES").is_ok_and(|v| v == "redis")
}

/// The engine rows of each Redis deployment, and redisim's beside one Redis.
async fn run_redis(report: &mut Report, secs: f64, redis: &[Deployment]) {
    for d in redis {
        let engine = Engine::new(d.store().await);
        each_shape(report, d.name, engine, secs, Ceiling::Redis(d)).await;
        if !d.cluster {
            crate::redisim::run(report, d, secs).await;
        }
    }
}
