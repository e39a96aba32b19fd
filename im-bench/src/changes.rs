//! Messages that change, in process, on each store: the rate of edits and
//! of reactions to a 100-member group's message, beside the rate of sends
//! to the same group measured in the same run. The target: an edit or a
//! reaction costs at most 1.5× a send (its rate is at least 2/3 of the
//! send's).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use im_engine::{Actor, Body, ConversationId, Engine, MemoryStore, SendRequest, Seq, Store};

use crate::Scale;
use crate::redis_bench::Deployment;
use crate::report::{Report, Row};
use crate::seed::{self, uid};

/// Members of the group.
const GROUP: usize = 100;
/// Concurrent callers, each on a message of its own.
const CALLERS: usize = 8;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Send,
    Edit,
    React,
}

impl Op {
    fn name(self) -> &'static str {
        match self {
            Self::Send => "send",
            Self::Edit => "edit",
            Self::React => "reaction",
        }
    }
}

/// Ops per second by [`CALLERS`] members, each on its own message (an edit
/// replaces its body; a reaction is added and taken back in turn).
async fn rate<S: Store>(engine: &Engine<S>, op: Op, own: &[Seq], secs: f64) -> f64 {
    let count = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + Duration::from_secs_f64(secs);
    let conversation: ConversationId = "group:g".parse().expect("valid");
    let tasks: Vec<_> = own
        .iter()
        .enumerate()
        .map(|(i, &seq)| {
            let (engine, count, conversation) =
                (engine.clone(), Arc::clone(&count), conversation.clone());
            tokio::spawn(async move {
                let actor = Actor::user(uid(i));
                let mut n = 0u64;
                while Instant::now() < deadline {
                    let body =
                        Body::new(&format!(r#"{{"text":"hello {n}"}}"#), 1024).expect("valid body");
                    match op {
                        Op::Send => engine
                            .send(&actor, &conversation, SendRequest::new(body))
                            .await
                            .map(drop),
                        Op::Edit => engine
                            .edit(&actor, &conversation, seq, body)
                            .await
                            .map(drop),
                        Op::React => engine
                            .react(&actor, &conversation, seq, "ok", n.is_multiple_of(2))
                            .await
                            .map(drop),
                    }
                    .expect("the operation succeeds");
                    n += 1;
                    count.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.expect("caller task");
    }
    count.load(Ordering::Relaxed) as f64 / secs
}

async fn on_store<S: Store>(report: &mut Report, store_name: &str, engine: Engine<S>, secs: f64) {
    seed::users(&engine, GROUP).await.expect("seed users");
    seed::group(&engine, "g", GROUP)
        .await
        .expect("seed the group");
    let conversation: ConversationId = "group:g".parse().expect("valid");
    let mut own = Vec::new();
    for i in 0..CALLERS {
        let body = Body::new(r#"{"text":"mine"}"#, 1024).expect("valid body");
        let (m, _) = engine
            .send(&Actor::user(uid(i)), &conversation, SendRequest::new(body))
            .await
            .expect("seed a message");
        own.push(m.seq);
    }
    let send = rate(&engine, Op::Send, &own, secs).await;
    for op in [Op::Edit, Op::React] {
        let value = rate(&engine, op, &own, secs).await;
        let figure = format!(
            "{}, {store_name}, 100-member group, {CALLERS} callers",
            op.name()
        );
        let row = Row::against(
            figure,
            value,
            "ops/s",
            send,
            format!("sends to the same group, {CALLERS} senders, same run"),
        )
        .target(
            "≥ 2/3 of the send rate (≤ 1.5× a send's cost)",
            value >= send * 2.0 / 3.0,
        );
        report.add(row);
    }
}

/// Runs the rows on memory, sled and each Redis deployment in `redis`.
pub async fn run(report: &mut Report, scale: &Scale, redis: &[Deployment]) {
    let secs = scale.engine_secs;
    on_store(report, "memory", Engine::new(MemoryStore::new()), secs).await;
    let dir = tempfile::tempdir().expect("a temporary directory");
    let store = im_store_sled::SledStore::open(im_store_sled::SledConfig::new(dir.path()))
        .expect("open sled");
    on_store(report, "sled durable", Engine::new(store), secs).await;
    for d in redis {
        on_store(report, d.name, Engine::new(d.store().await), secs).await;
    }
}
