//! The subscription property test: random interleavings of sends (some from
//! concurrent tasks) with subscriptions and resubscriptions at random
//! cursors. Each subscriber must see exactly the feed's events after its
//! cursor, in order, once, across its resubscriptions.

use std::future::poll_fn;
use std::pin::pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_core::Stream;
use proptest::prelude::*;
use proptest::test_runner::{Config as ProptestConfig, TestRunner};

use super::{StoreFactory, cases};
use crate::feed::{Cursor, Delivered, EventData, Start};
use crate::{
    Actor, Body, ConversationId, Engine, Error, GroupId, JoinPolicy, SendRequest, Store, UserId,
};

const USERS: [&str; 3] = ["alice", "bob", "carol"];
const CONVERSATIONS: [&str; 3] = ["dm:alice:bob", "dm:bob:carol", "group:all"];

/// Collects `n` events from a stream, failing after 10 s without one.
///
/// # Panics
///
/// When the stream fails, ends, or stalls.
pub async fn take(
    stream: impl Stream<Item = Result<Delivered, Error>>,
    n: usize,
) -> Vec<Delivered> {
    let mut stream = pin!(stream);
    let mut out = Vec::with_capacity(n);
    while out.len() < n {
        let next = poll_fn(|cx| stream.as_mut().poll_next(cx));
        match tokio::time::timeout(Duration::from_secs(10), next).await {
            Ok(Some(Ok(event))) => out.push(event),
            Ok(Some(Err(e))) => panic!("the stream failed: {e}"),
            Ok(None) => panic!("the stream ended after {} events", out.len()),
            Err(_) => panic!("no event for 10 s after {} of {n}", out.len()),
        }
    }
    out
}

/// One step of a script.
#[derive(Debug, Clone)]
enum Op {
    /// Send one message from a participant of a conversation.
    Send { conversation: usize, n: u32 },
    /// Send `count` messages from a task of their own, not awaited.
    Burst { conversation: usize, count: u32 },
    /// Subscribe subscriber `sub`, or drop its stream and resubscribe from
    /// the last cursor it saw.
    Subscribe { sub: usize, start: StartKind },
    /// Let the tasks run.
    Pause,
    /// Change the newest message of a conversation: edit it (0), react to
    /// it (1), or delete it (2).
    Change { conversation: usize, kind: u8 },
}

#[derive(Debug, Clone, Copy)]
enum StartKind {
    Live,
    Oldest,
    /// After the event at this position (clamped to the feed's head).
    At(u64),
}

fn op() -> impl Strategy<Value = Op> {
    let start = prop_oneof![
        Just(StartKind::Live),
        Just(StartKind::Oldest),
        (0..20u64).prop_map(StartKind::At)
    ];
    prop_oneof![
        4 => (0..3usize, 0..1000u32).prop_map(|(conversation, n)| Op::Send { conversation, n }),
        1 => (0..3usize, 1..20u32).prop_map(|(conversation, count)| Op::Burst { conversation, count }),
        3 => (0..4usize, start).prop_map(|(sub, start)| Op::Subscribe { sub, start }),
        1 => Just(Op::Pause),
        2 => (0..3usize, 0..3u8).prop_map(|(conversation, kind)| Op::Change { conversation, kind }),
    ]
}

/// A subscriber: whose feed, where it started, and what it received.
struct Subscriber {
    user: UserId,
    /// The lowest and highest position its first stream may have started
    /// after (a live start lies between the head before and after).
    origin: (u64, u64),
    received: Arc<Mutex<Vec<Delivered>>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

fn sender_of(conversation: &str) -> UserId {
    let u = if conversation == "dm:bob:carol" {
        "carol"
    } else {
        "alice"
    };
    UserId::new(u).expect("valid test id")
}

async fn head<S: Store>(engine: &Engine<S>, user: &UserId) -> u64 {
    engine
        .feed(&Actor::user(user.clone()), Start::Live, 1)
        .await
        .expect("feed reads")
        .next
        .pos
}

fn spawn_reader<S: Store>(
    engine: &Engine<S>,
    user: UserId,
    start: Start,
    into: Arc<Mutex<Vec<Delivered>>>,
) -> tokio::task::JoinHandle<()> {
    let engine = engine.clone();
    // Subscribe before returning, so "the head after" bounds a live start.
    let (tx, rx) = std::sync::mpsc::channel();
    let handle = tokio::spawn(async move {
        let stream = engine
            .events(&Actor::user(user), start)
            .await
            .expect("subscribe");
        let _ = tx.send(());
        let mut stream = pin!(stream);
        while let Some(event) = poll_fn(|cx| stream.as_mut().poll_next(cx)).await {
            into.lock()
                .expect("not poisoned")
                .push(event.expect("stream reads"));
        }
    });
    let _ = tokio::task::block_in_place(|| rx.recv_timeout(Duration::from_secs(10)));
    handle
}

async fn run_script<F: StoreFactory>(ops: Vec<Op>) {
    let (store, _data) = F::open().await;
    let engine = Engine::new(store);
    let root = Actor::admin(UserId::new("root").expect("valid"));
    for u in USERS {
        engine
            .put_user(&root, &UserId::new(u).expect("valid"), Default::default())
            .await
            .expect("create user");
    }
    let all = GroupId::new("all").expect("valid");
    let alice = Actor::user(UserId::new("alice").expect("valid"));
    engine
        .put_group(&alice, &all, Default::default(), Some(JoinPolicy::Open))
        .await
        .expect("create group");
    for u in ["bob", "carol"] {
        let u = UserId::new(u).expect("valid");
        engine
            .join(&Actor::user(u.clone()), &all, &u)
            .await
            .expect("join");
    }
    let epoch = engine.store().epoch();
    let mut subs: Vec<Option<Subscriber>> = (0..4).map(|_| None).collect();
    let mut bursts = Vec::new();
    for op in ops {
        match op {
            Op::Send { conversation, n } => {
                let c: ConversationId = CONVERSATIONS[conversation].parse().expect("valid");
                let body = Body::new(&format!(r#"{{"n":{n}}}"#), 1024).expect("valid");
                engine
                    .send(
                        &Actor::user(sender_of(CONVERSATIONS[conversation])),
                        &c,
                        SendRequest::new(body),
                    )
                    .await
                    .expect("send");
            }
            Op::Burst {
                conversation,
                count,
            } => {
                let engine = engine.clone();
                bursts.push(tokio::spawn(async move {
                    let c: ConversationId = CONVERSATIONS[conversation].parse().expect("valid");
                    for n in 0..count {
                        let body = Body::new(&format!(r#"{{"burst":{n}}}"#), 1024).expect("valid");
                        let from = Actor::user(sender_of(CONVERSATIONS[conversation]));
                        engine
                            .send(&from, &c, SendRequest::new(body))
                            .await
                            .expect("send");
                    }
                }));
            }
            Op::Change { conversation, kind } => {
                let c: ConversationId = CONVERSATIONS[conversation].parse().expect("valid");
                let last = engine.store().last_seq(&c).await.expect("last seq");
                if last == 0 {
                    continue;
                }
                let actor = Actor::user(sender_of(CONVERSATIONS[conversation]));
                let changed = match kind {
                    0 => {
                        let body = Body::new(r#"{"edited":1}"#, 1024).expect("valid");
                        engine.edit(&actor, &c, last, body).await
                    }
                    1 => engine.react(&actor, &c, last, "ok", true).await,
                    _ => engine.delete(&actor, &c, last).await,
                };
                // A burst's message may not be the sender's own; a deleted
                // one refuses edits and reactions. Either changes nothing.
                if let Err(e) = changed {
                    assert!(
                        matches!(
                            e.kind(),
                            crate::ErrorKind::Forbidden | crate::ErrorKind::Conflict
                        ),
                        "{e}"
                    );
                }
            }
            Op::Subscribe { sub, start } => match &mut subs[sub] {
                Some(s) => {
                    if let Some(task) = s.task.take() {
                        task.abort();
                        let _ = task.await;
                    }
                    let last = s
                        .received
                        .lock()
                        .expect("not poisoned")
                        .last()
                        .map(|d| d.cursor.pos);
                    let from = Start::After(Cursor {
                        epoch,
                        pos: last.unwrap_or(s.origin.0),
                    });
                    if last.is_none() {
                        // Nothing seen yet: the new stream fixes where the
                        // chain starts.
                        s.origin.1 = s.origin.0;
                    }
                    s.task = Some(spawn_reader(
                        &engine,
                        s.user.clone(),
                        from,
                        s.received.clone(),
                    ));
                }
                empty @ None => {
                    let user = UserId::new(USERS[sub % 3]).expect("valid");
                    let before = head(&engine, &user).await;
                    let (start, origin) = match start {
                        StartKind::Live => (Start::Live, None),
                        StartKind::Oldest => (Start::Oldest, Some(0)),
                        StartKind::At(pos) => {
                            let pos = pos.min(before);
                            (Start::After(Cursor { epoch, pos }), Some(pos))
                        }
                    };
                    let received = Arc::new(Mutex::new(Vec::new()));
                    let task = spawn_reader(&engine, user.clone(), start, received.clone());
                    let after = head(&engine, &user).await;
                    let origin = origin.map_or((before, after), |p| (p, p));
                    *empty = Some(Subscriber {
                        user,
                        origin,
                        received,
                        task: Some(task),
                    });
                }
            },
            Op::Pause => tokio::time::sleep(Duration::from_millis(2)).await,
        }
    }
    for b in bursts {
        b.await.expect("burst task");
    }
    for s in subs.into_iter().flatten() {
        let head = head(&engine, &s.user).await;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        // With nothing received yet, a live start may lie as late as the
        // head measured just after subscribing.
        while s
            .received
            .lock()
            .expect("not poisoned")
            .last()
            .map_or(s.origin.1, |d| d.cursor.pos)
            < head
        {
            assert!(
                tokio::time::Instant::now() < deadline,
                "{} never caught up to {head}: origin {:?}, got {:?}, task finished: {:?}",
                s.user,
                s.origin,
                s.received
                    .lock()
                    .expect("not poisoned")
                    .iter()
                    .map(|d| d.cursor.pos)
                    .collect::<Vec<_>>(),
                s.task.as_ref().map(|t| t.is_finished())
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        if let Some(task) = s.task {
            task.abort();
        }
        let received = s.received.lock().expect("not poisoned").clone();
        let feed = engine
            .feed(&Actor::user(s.user.clone()), Start::Oldest, 100_000)
            .await
            .expect("feed reads")
            .events;
        let first = received.first().map_or(head, |d| d.cursor.pos - 1);
        assert!(
            (s.origin.0..=s.origin.1).contains(&first),
            "{}'s events start after {first}, not within {:?}",
            s.user,
            s.origin
        );
        let expected: Vec<_> = feed.into_iter().filter(|d| d.cursor.pos > first).collect();
        assert!(
            !received
                .iter()
                .any(|d| matches!(d.data, EventData::Reset { .. }))
        );
        // A message received live shows it as it was; the feed read now
        // shows it as it is: compare what each event is, not its body.
        let ids = |events: &[Delivered]| events.iter().map(identity).collect::<Vec<_>>();
        assert_eq!(
            ids(&received),
            ids(&expected),
            "{} saw exactly the events after its cursor, once, in order",
            s.user
        );
    }
}

/// What an event is: its position, its kind, and the message it names.
fn identity(d: &Delivered) -> (u64, &'static str, Option<(String, u64)>) {
    let message = match &d.data {
        EventData::Message(m) | EventData::Edit(m) => Some((m.conversation.to_string(), m.seq)),
        EventData::Delete {
            conversation, seq, ..
        }
        | EventData::Reaction {
            conversation, seq, ..
        } => Some((conversation.to_string(), *seq)),
        _ => None,
    };
    (d.cursor.pos, d.data.name(), message)
}

/// Runs the subscription property test on stores from `F`
/// (`PROPTEST_CASES` cases, default 24, each up to 40 steps).
///
/// # Panics
///
/// With the shrunk failing script, when a subscriber misses or repeats an
/// event.
pub fn run<F: StoreFactory>() {
    let config = ProptestConfig {
        cases: cases(24),
        failure_persistence: None,
        ..ProptestConfig::default()
    };
    let mut runner = TestRunner::new(config);
    let result = runner.run(&prop::collection::vec(op(), 1..40), |ops| {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("a runtime");
        rt.block_on(run_script::<F>(ops));
        Ok(())
    });
    if let Err(e) = result {
        panic!("a subscriber missed or repeated an event: {e}");
    }
}
