//! Sends to a 100-member group from 64 tasks (`SENDERS=n`: n) for a few
//! seconds (with `DM=1`: each task to a direct conversation of its own) on a local
//! 3-master Redis Cluster it starts (with `SINGLE=1`: one `redis-server`),
//! then prints messages per second and what each node spent: its calls
//! per command, the microseconds of its one thread per call
//! (`INFO commandstats`), and its CPU time. A target for a profiler,
//! without the rest of im-bench around it (BENCHMARKS.md):
//!
//! `cargo build --release -p im-store-redis --features testing --example
//! profile_cluster`, then `target/release/examples/profile_cluster 3`.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use im_engine::{Actor, Body, ConversationId, Engine, GroupId, SendRequest, UserId};
use im_store_redis::testing::{RedisCluster, RedisServer, unique_prefix};
use im_store_redis::{RedisConfig, RedisStore};

const MEMBERS: usize = 100;

/// The servers, kept running until the end.
enum Servers {
    One(RedisServer),
    Cluster(RedisCluster),
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let secs: f64 = std::env::args()
        .nth(1)
        .map_or(3.0, |s| s.parse().expect("seconds"));
    let servers = if std::env::var_os("SINGLE").is_some() {
        Servers::One(RedisServer::start(false))
    } else {
        Servers::Cluster(RedisCluster::start())
    };
    let (url, ports) = match &servers {
        Servers::One(s) => (s.url(), vec![s.port()]),
        Servers::Cluster(c) => (c.url(), c.ports()),
    };
    let store = RedisStore::open(RedisConfig::new(url).prefix(unique_prefix()))
        .await
        .expect("open the store");
    let engine = Engine::new(store);
    let group = setup(&engine).await;
    let before: Vec<Stats> = ports.iter().map(|p| stats(*p)).collect();
    let rate = run(&engine, group, secs).await;
    println!("{rate:.0} msgs/s");
    for (port, before) in ports.iter().zip(before) {
        let after = stats(*port);
        let cpu = after.cpu - before.cpu;
        println!(
            "node {port}: {cpu:.2} s of CPU ({:.0}% of the run)",
            100.0 * cpu / secs
        );
        for (cmd, (calls, usec)) in &after.commands {
            let (c0, u0) = before.commands.get(cmd).copied().unwrap_or((0, 0));
            let (calls, usec) = (calls - c0, usec - u0);
            if calls > 0 {
                println!(
                    "  {cmd:<14} {:>9.0}/s {:>7.1} us/call",
                    calls as f64 / secs,
                    usec as f64 / calls as f64
                );
            }
        }
    }
    drop(servers);
}

/// What a node spent so far.
struct Stats {
    /// Seconds of CPU, user and system.
    cpu: f64,
    /// Calls and microseconds per command.
    commands: BTreeMap<String, (u64, u64)>,
}

/// `INFO commandstats` and `INFO cpu` of the node on `port`.
fn stats(port: u16) -> Stats {
    let out = std::process::Command::new("redis-cli")
        .args(["-p", &port.to_string(), "INFO", "all"])
        .output()
        .expect("redis-cli");
    let text = String::from_utf8_lossy(&out.stdout);
    let mut s = Stats {
        cpu: 0.0,
        commands: BTreeMap::new(),
    };
    for line in text.lines() {
        let cpu = line
            .strip_prefix("used_cpu_user:")
            .or_else(|| line.strip_prefix("used_cpu_sys:"));
        if let Some(v) = cpu {
            s.cpu += v.trim().parse::<f64>().unwrap_or(0.0);
        } else if let Some(rest) = line.strip_prefix("cmdstat_") {
            let (name, fields) = rest.split_once(':').unwrap_or((rest, ""));
            let field = |k: &str| {
                fields
                    .split(',')
                    .find_map(|f| f.strip_prefix(k))
                    .and_then(|v| v.parse::<u64>().ok())
                    .unwrap_or(0)
            };
            s.commands
                .insert(name.to_owned(), (field("calls="), field("usec=")));
        }
    }
    s
}

fn user(i: usize) -> UserId {
    UserId::new(format!("u{i}")).expect("valid")
}

/// A group of [`MEMBERS`] users; answers its conversation.
async fn setup(engine: &Engine<RedisStore>) -> ConversationId {
    let root = Actor::admin(user(0));
    for i in 0..MEMBERS {
        engine
            .put_user(&root, &user(i), Default::default())
            .await
            .expect("user");
    }
    let group = GroupId::new("g").expect("valid");
    let owner = Actor::user(user(0));
    engine
        .put_group(&owner, &group, Default::default(), None)
        .await
        .expect("group");
    for i in 1..MEMBERS {
        engine.join(&owner, &group, &user(i)).await.expect("join");
    }
    ConversationId::group(group)
}

/// Sends per second by `SENDERS` (default 64) tasks for `secs`.
async fn run(engine: &Engine<RedisStore>, group: ConversationId, secs: f64) -> f64 {
    let dm = std::env::var_os("DM").is_some();
    let senders: usize = std::env::var("SENDERS").map_or(64, |n| n.parse().expect("SENDERS"));
    let deadline = Instant::now() + Duration::from_secs_f64(secs);
    let count = Arc::new(AtomicU64::new(0));
    let tasks: Vec<_> = (0..senders)
        .map(|i| {
            let (engine, mut conversation) = (engine.clone(), group.clone());
            if dm {
                let other = user((i + 1 + MEMBERS / 2) % MEMBERS);
                conversation = ConversationId::direct(user(i % MEMBERS), other).expect("two");
            }
            let count = Arc::clone(&count);
            tokio::spawn(async move {
                let actor = Actor::user(user(i % MEMBERS));
                let body = Body::new(r#"{"text":"hello"}"#, 1024).expect("valid");
                while Instant::now() < deadline {
                    let req = SendRequest::new(body.clone());
                    engine.send(&actor, &conversation, req).await.expect("send");
                    count.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.expect("sender");
    }
    count.load(Ordering::Relaxed) as f64 / secs
}
