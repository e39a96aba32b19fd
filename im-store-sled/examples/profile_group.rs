//! Sends to a 100-member group from 64 tasks for a few seconds (with
//! `DM=1`: each task to a direct conversation of its own), on sled
//! (durable, the default) or, with `MEM=1`, on the memory store; prints
//! messages per second. A target for a profiler, without the rest of
//! im-bench around it (BENCHMARKS.md):
//!
//! `cargo build --release -p im-store-sled --example profile_group`, then
//! `perf record -g --call-graph dwarf target/release/examples/profile_group 3`.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use im_engine::UserId;
use im_engine::{Actor, Body, ConversationId, Engine, GroupId, MemoryStore, SendRequest, Store};
use im_store_sled::{SledConfig, SledStore};

const MEMBERS: usize = 100;
const SENDERS: usize = 64;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let secs: f64 = std::env::args()
        .nth(1)
        .map_or(3.0, |s| s.parse().expect("seconds"));
    let rate = if std::env::var_os("MEM").is_some() {
        run(Engine::new(MemoryStore::new()), secs).await
    } else {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let store = SledStore::open(SledConfig::new(dir.path())).expect("open sled");
        run(Engine::new(store), secs).await
    };
    println!("{rate:.0} msgs/s");
}

fn user(i: usize) -> UserId {
    UserId::new(format!("u{i}")).expect("valid")
}

async fn run<S: Store>(engine: Engine<S>, secs: f64) -> f64 {
    let root = Actor::admin(user(0));
    for i in 0..MEMBERS {
        let id = user(i);
        engine
            .put_user(&root, &id, Default::default())
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
    let dm = std::env::var_os("DM").is_some();
    let conversation = ConversationId::group(group);
    let deadline = Instant::now() + Duration::from_secs_f64(secs);
    let count = Arc::new(AtomicU64::new(0));
    let tasks: Vec<_> = (0..SENDERS)
        .map(|i| {
            let (engine, mut conversation) = (engine.clone(), conversation.clone());
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
