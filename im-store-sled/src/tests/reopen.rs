//! Every kind of state reads back the same after the store is closed and
//! opened again, through the engine.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use im_engine::{
    Actor, Body, Clock, Config, ConversationId, Engine, GroupId, HistoryQuery, JoinPolicy,
    ListQuery, Retention, SendRequest, Start, Store, Timestamp, UserId,
};

use crate::{SledConfig, SledStore};

/// A clock that moves only when told, so both runs read the same times.
#[derive(Debug, Default)]
struct TestClock(AtomicU64);

impl Clock for TestClock {
    fn now(&self) -> Timestamp {
        self.0.load(Ordering::SeqCst)
    }
}

fn uid(s: &str) -> UserId {
    UserId::new(s).unwrap()
}

fn config() -> Config {
    Config {
        // Small enough that feeds get trimmed.
        retention: Retention {
            events: Some(4),
            age: None,
        },
        ..Config::default()
    }
}

/// Everything the engine can read, rendered for comparison.
async fn everything(engine: &Engine<SledStore>) -> Vec<String> {
    let users = ["alice", "bob", "carol"];
    let convs: [ConversationId; 2] = ["dm:alice:bob".parse().unwrap(), "group:g".parse().unwrap()];
    let mut out = vec![format!("epoch {:?}", engine.store().epoch())];
    for name in users {
        let me = Actor::user(uid(name));
        out.push(format!(
            "{:?}",
            engine.user(&Actor::admin(uid("root")), &uid(name)).await
        ));
        out.push(format!(
            "{:?}",
            engine.contacts(&me, &ListQuery::default()).await
        ));
        out.push(format!("{:?}", engine.conversations(&me, None).await));
        out.push(format!(
            "{:?}",
            engine
                .feed(&Actor::user(uid(name)), Start::Oldest, 100)
                .await
        ));
        for c in &convs {
            out.push(format!(
                "{:?}",
                engine.history(&me, c, HistoryQuery::default()).await
            ));
        }
    }
    let g = GroupId::new("g").unwrap();
    out.push(format!(
        "{:?}",
        engine.group(&Actor::admin(uid("root")), &g).await
    ));
    out.push(format!(
        "{:?}",
        engine
            .members(&Actor::user(uid("alice")), &g, &ListQuery::default())
            .await
    ));
    out
}

fn body(text: &str) -> Body {
    Body::new(&format!(r#"{{"text":"{text}"}}"#), 1024).unwrap()
}

fn with_client_id(text: &str, id: &str) -> SendRequest {
    let mut req = SendRequest::new(body(text));
    req.client_id = Some(id.into());
    req
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_kind_of_state_survives_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(TestClock::default());
    let tick = || clock.0.fetch_add(10, Ordering::SeqCst);
    let store = SledStore::open(SledConfig::new(dir.path())).unwrap();
    let engine = Engine::with_clock(store, config(), clock.clone());

    let root = Actor::admin(uid("root"));
    let (alice, bob, carol) = (
        Actor::user(uid("alice")),
        Actor::user(uid("bob")),
        Actor::user(uid("carol")),
    );
    for name in ["alice", "bob", "carol"] {
        tick();
        let fields = [("name".to_string(), Some(name.to_uppercase()))].into();
        engine.put_user(&root, &uid(name), fields).await.unwrap();
    }
    tick();
    engine.link(&alice, &uid("bob")).await.unwrap();
    engine.link(&carol, &uid("alice")).await.unwrap();
    let g = GroupId::new("g").unwrap();
    let fields = [("topic".to_string(), Some("sled".to_string()))].into();
    engine
        .put_group(&alice, &g, fields, Some(JoinPolicy::Open))
        .await
        .unwrap();
    tick();
    engine.join(&bob, &g, &uid("bob")).await.unwrap();
    engine.join(&alice, &g, &uid("carol")).await.unwrap();

    let dm: ConversationId = "dm:alice:bob".parse().unwrap();
    let group = ConversationId::group(g.clone());
    let mut sent = Vec::new();
    for (i, (who, conv)) in [
        (&alice, &dm),
        (&bob, &group),
        (&bob, &dm),
        (&carol, &group),
        (&alice, &group),
    ]
    .into_iter()
    .enumerate()
    {
        tick();
        let req = with_client_id(&format!("m{i}"), &format!("c{i}"));
        sent.push(engine.send(who, conv, req).await.unwrap().0);
    }
    tick();
    engine.mark_read(&bob, &dm, Some(1)).await.unwrap();
    engine.mark_read(&carol, &group, None).await.unwrap();

    // A stream opens and closes: carol's `last_seen` is recorded.
    tick();
    let online = engine.connect(&Actor::user(uid("carol"))).await.unwrap();
    assert!(
        engine
            .presence(&Actor::admin(uid("root")), &uid("carol"))
            .await
            .unwrap()
            .online
    );
    drop(online);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while engine
        .presence(&Actor::admin(uid("root")), &uid("carol"))
        .await
        .unwrap()
        .online
    {
        assert!(std::time::Instant::now() < deadline, "carol stays online");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let last_seen = engine
        .presence(&Actor::admin(uid("root")), &uid("carol"))
        .await
        .unwrap()
        .last_seen;
    assert!(last_seen.is_some());

    let before = everything(&engine).await;
    let alice_feed = engine.store().feed(&uid("alice"), 0, 100).await.unwrap();
    assert!(alice_feed.trimmed > 0, "the retention trimmed alice's feed");

    // The task that recorded the close may still hold a handle a moment.
    let mut engine = engine;
    let store = loop {
        match engine.try_into_store() {
            Ok(store) => break store,
            Err(e) => engine = e,
        }
        assert!(
            std::time::Instant::now() < deadline,
            "an engine handle stays alive"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    let path = dir.path().to_owned();
    let store = tokio::task::spawn_blocking(move || {
        store.close().unwrap();
        SledStore::open(SledConfig::new(path)).unwrap()
    })
    .await
    .unwrap();
    let engine = Engine::with_clock(store, config(), clock.clone());
    assert_eq!(everything(&engine).await, before);
    let p = engine
        .presence(&Actor::admin(uid("root")), &uid("carol"))
        .await
        .unwrap();
    assert_eq!((p.online, p.last_seen), (false, last_seen));

    // Client ids still deduplicate, numbering and feeds go on.
    let (again, new) = engine
        .send(&carol, &group, with_client_id("m3", "c3"))
        .await
        .unwrap();
    assert_eq!((again, new), (sent[3].clone(), false));
    tick();
    let (next, new) = engine
        .send(&bob, &dm, SendRequest::new(body("after")))
        .await
        .unwrap();
    assert_eq!((next.seq, new), (3, true));
    let feed = engine.store().feed(&uid("alice"), 0, 100).await.unwrap();
    assert_eq!(feed.head, alice_feed.head + 1);
    assert_eq!(feed.trimmed, alice_feed.trimmed + 1);
}
