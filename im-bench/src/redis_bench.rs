//! The Redis side of the suite: the `redis-server` processes it starts (one
//! server and a local 3-master cluster, through `im-store-redis`'s
//! `testing` launchers, persistence off), stores on them, and the raw
//! `EVALSHA` ceiling the engine's Redis sends are compared with.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use im_store_redis::testing::{RedisCluster, RedisServer, available, skip, unique_prefix};
use im_store_redis::{RedisConfig, RedisStore};
use redis::Script;
use redis::aio::ConnectionLike;

/// What `--smoke` and the full run say when the Redis tools are missing.
const MISSING: &str = "the Redis rows need redis-server and redis-cli on the PATH: run \
     scripts/bench (it installs them), or apt-get install redis-server (macOS: brew install \
     redis); IM_SKIP_REDIS=1 leaves the Redis rows out";

/// The Redis deployments the suite measures, started by [`Servers::start`].
#[derive(Debug)]
pub struct Servers {
    single: RedisServer,
    cluster: RedisCluster,
}

/// One deployment: its name in the figures and its URL.
#[derive(Debug, Clone)]
pub struct Deployment {
    /// `redis` or `redis cluster`.
    pub name: &'static str,
    /// The URL a [`RedisStore`] opens.
    pub url: String,
    /// Whether it is a cluster.
    pub cluster: bool,
}

impl Servers {
    /// Starts a single server and a 3-master cluster on free ports (they
    /// stop with the suite). Answers `Ok(None)` when `IM_SKIP_REDIS=1`.
    ///
    /// # Errors
    ///
    /// When `redis-server` or `redis-cli` is not on the PATH: a message that
    /// says how to install them. Never skips on its own.
    pub fn start() -> Result<Option<Self>, String> {
        if skip() {
            eprintln!("IM_SKIP_REDIS=1: the Redis rows are left out");
            return Ok(None);
        }
        for tool in ["redis-server", "redis-cli"] {
            if !available(tool) {
                return Err(format!("{tool} not found: {MISSING}"));
            }
        }
        Ok(Some(Self {
            single: RedisServer::start(false),
            cluster: RedisCluster::start(),
        }))
    }

    /// The single server, then the cluster.
    pub fn deployments(&self) -> [Deployment; 2] {
        [
            Deployment {
                name: "redis",
                url: self.single.url(),
                cluster: false,
            },
            Deployment {
                name: "redis cluster (3 masters)",
                url: self.cluster.url(),
                cluster: true,
            },
        ]
    }
}

impl Deployment {
    /// A store of its own (a fresh key prefix) on this deployment.
    ///
    /// # Panics
    ///
    /// When the store cannot open.
    pub async fn store(&self) -> RedisStore {
        RedisStore::open(RedisConfig::new(&self.url).prefix(unique_prefix()))
            .await
            .unwrap_or_else(|e| panic!("open a Redis store on {}: {e}", self.url))
    }

    /// `EVALSHA` calls per second of a script of `2 + hsets` commands
    /// (`INCR` a counter, `XADD` the message body to a stream, `HSET` one
    /// field in each of `hsets` hashes), from `callers` concurrent callers
    /// for `secs`, each caller on keys of its own in one hash slot. The
    /// callers share one multiplexed connection (one per node on a
    /// cluster), so concurrent calls are pipelined, as the store's are;
    /// one caller waits for each answer before the next call.
    ///
    /// # Panics
    ///
    /// When Redis fails.
    pub async fn evalsha_rate(&self, hsets: usize, callers: usize, secs: f64) -> f64 {
        if self.cluster {
            let nodes: Vec<String> = self
                .url
                .trim_start_matches("redis+cluster://")
                .split(',')
                .map(|n| format!("redis://{n}"))
                .collect();
            let conn = redis::cluster::ClusterClient::new(nodes)
                .expect("a cluster client")
                .get_async_connection()
                .await
                .expect("connect to the cluster");
            rate(conn, hsets, callers, secs).await
        } else {
            let client = redis::Client::open(self.url.as_str()).expect("a Redis client");
            let conn = redis::aio::ConnectionManager::new(client)
                .await
                .expect("connect to Redis");
            rate(conn, hsets, callers, secs).await
        }
    }
}

/// The ceiling's script: the least a send must do on Redis.
const CEILING: &str = r"
local seq = redis.call('INCR', KEYS[1])
redis.call('XADD', KEYS[2], '*', 'b', ARGV[1])
for i = 3, #KEYS do redis.call('HSET', KEYS[i], ARGV[2], seq) end
return seq
";

async fn rate<C>(conn: C, hsets: usize, callers: usize, secs: f64) -> f64
where
    C: ConnectionLike + Clone + Send + 'static,
{
    let script = Arc::new(Script::new(CEILING));
    let count = Arc::new(AtomicU64::new(0));
    let prefix = unique_prefix();
    // Loads the script, so that no timed call pays for it.
    script
        .prepare_invoke()
        .key(format!("{prefix}{{load}}:seq"))
        .key(format!("{prefix}{{load}}:log"))
        .arg(r#"{"text":"hello"}"#)
        .arg("c")
        .invoke_async::<u64>(&mut conn.clone())
        .await
        .expect("load the ceiling script");
    let deadline = Instant::now() + Duration::from_secs_f64(secs);
    let tasks: Vec<_> = (0..callers)
        .map(|i| {
            let (mut conn, script, count) = (conn.clone(), Arc::clone(&script), Arc::clone(&count));
            let tag = format!("{prefix}{{c{i}}}");
            tokio::spawn(async move {
                let mut inv = script.prepare_invoke();
                inv.key(format!("{tag}:seq")).key(format!("{tag}:log"));
                for h in 0..hsets {
                    inv.key(format!("{tag}:h{h}"));
                }
                inv.arg(r#"{"text":"hello"}"#).arg(format!("conv{i}"));
                while Instant::now() < deadline {
                    let _: u64 = inv.invoke_async(&mut conn).await.expect("EVALSHA");
                    count.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.expect("ceiling caller");
    }
    count.load(Ordering::Relaxed) as f64 / secs
}
