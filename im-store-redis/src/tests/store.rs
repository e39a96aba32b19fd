//! What the conformance suite cannot see: several nodes on one Redis, a
//! crash between the two halves of a cluster send, presence across nodes,
//! and Redis going away and coming back.

use std::time::{Duration, Instant};

use im_engine::store::{FeedTrim, Outgoing, Recipients, Sent};
use im_engine::{
    Actor, Body, Config, ConversationId, Engine, Event, NewMessage, SendRequest, Start, Store,
    UserId,
};
use redis::AsyncCommands;

use super::open;
use crate::testing::{RedisServer, shared_cluster_url, shared_url, unique_prefix};
use crate::{RedisConfig, RedisStore, write};

fn uid(s: &str) -> UserId {
    UserId::new(s).unwrap()
}

async fn with_users(store: RedisStore, names: &[&str]) -> Engine<RedisStore> {
    let engine = Engine::new(store);
    for n in names {
        engine
            .put_user(&Actor::admin(uid("root")), &uid(n), Default::default())
            .await
            .unwrap();
    }
    engine
}

fn message_events(feed: &im_engine::Feed) -> Vec<(String, u64)> {
    feed.entries
        .iter()
        .filter_map(|e| match &e.event {
            Event::Message { conversation, seq } => Some((conversation.to_string(), *seq)),
            _ => None,
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fan_out_left_by_a_crashed_node_is_finished_once_by_another() {
    let (url, prefix) = (shared_cluster_url(), unique_prefix());
    let a = with_users(open(&url, &prefix).await, &["alice", "bob"])
        .await
        .try_into_store()
        .unwrap();
    let dm: ConversationId = "dm:alice:bob".parse().unwrap();
    let out = |n: u32, ts| Outgoing {
        message: NewMessage {
            conversation: dm.clone(),
            from: uid("alice"),
            ts,
            body: Body::new(&format!(r#"{{"n":{n}}}"#), 100).unwrap(),
            client_id: Some(format!("k{n}")),
            reply_to: None,
        },
        recipients: Recipients::Users(vec![uid("alice"), uid("bob")]),
        trim: FeedTrim::default(),
    };
    // Node A commits the message, then "dies" before its fan-out.
    let (sent, _) = write::commit_and_die(&a.shared, &out(1, 5)).await.unwrap();
    assert!(matches!(sent, Sent::New(ref m) if m.seq == 1));
    drop(a);

    let b = open(&url, &prefix).await;
    let bob = uid("bob");
    assert_eq!(
        b.feed(&bob, 0, 10).await.unwrap().head,
        0,
        "not fanned out yet"
    );
    // The message exists from the commit point on: a repeat answers it.
    assert!(matches!(b.send(&out(1, 6)).await.unwrap(), Sent::Duplicate(m) if m.seq == 1));
    assert!(b.recover().await.unwrap() >= 1);
    for u in ["alice", "bob"] {
        let feed = b.feed(&uid(u), 0, 10).await.unwrap();
        assert_eq!(message_events(&feed), [("dm:alice:bob".into(), 1)], "{u}");
    }
    let entry = |u: &str| {
        let b = b.clone();
        let (u, dm) = (uid(u), dm.clone());
        async move { b.entry(&u, &dm).await.unwrap().unwrap() }
    };
    assert_eq!(
        (entry("alice").await.read_seq, entry("bob").await.read_seq),
        (1, 0)
    );
    assert_eq!(entry("bob").await.activity, 5);

    // Finishing it again (a second sweep, a retried drain) changes nothing.
    write::drain(&b.shared, &dm, None).await.unwrap();
    assert_eq!(b.recover().await.unwrap(), 0);
    assert_eq!(b.feed(&bob, 0, 10).await.unwrap().head, 1);

    // A crash after the fan-out reached one recipient but not the other.
    let (_, pending) = write::commit_and_die(&b.shared, &out(2, 7)).await.unwrap();
    let pending = pending.unwrap();
    assert_eq!(pending.len(), 1);
    b.send(&out(3, 8)).await.unwrap();
    for u in ["alice", "bob"] {
        let feed = b.feed(&uid(u), 0, 10).await.unwrap();
        let seqs: Vec<u64> = message_events(&feed).iter().map(|(_, s)| *s).collect();
        assert_eq!(
            seqs,
            [1, 2, 3],
            "{u}: the later send finished the earlier one first"
        );
    }
    b.recover().await.unwrap();
    assert_eq!(b.feed(&bob, 0, 10).await.unwrap().head, 3);
    // The firehose got each message once, in order, whoever fanned it out
    // and however often.
    assert_eq!(fired_messages(&b).await, [1, 2, 3]);
}

/// The seqs of the message events in the firehose, partition by partition.
async fn fired_messages(store: &RedisStore) -> Vec<u64> {
    let mut seqs = Vec::new();
    for part in 0..store.firehose_partitions() {
        let read = store.firehose(part, 0, 100).await.unwrap();
        assert_eq!(read.head, read.entries.len() as u64);
        seqs.extend(read.entries.iter().filter_map(|e| match &e.event {
            Event::Message { seq, .. } => Some(*seq),
            _ => None,
        }));
    }
    seqs
}

/// A lease has one holder at a time: taken when free, renewed by its
/// holder, refused to another until it lapses; then the other takes it.
async fn a_lease_has_one_holder(url: &str) {
    let prefix = unique_prefix();
    let (a, b) = (open(url, &prefix).await, open(url, &prefix).await);
    let ttl = Duration::from_millis(300);
    assert!(a.lease("hook", "a", ttl).await.unwrap());
    assert!(!b.lease("hook", "b", ttl).await.unwrap());
    assert!(a.lease("hook", "a", ttl).await.unwrap(), "renewed");
    assert!(
        b.lease("other", "b", ttl).await.unwrap(),
        "leases are by name"
    );
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(a.lease("hook", "a", ttl).await.unwrap(), "renewed again");
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        !b.lease("hook", "b", ttl).await.unwrap(),
        "the renewal held it"
    );
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert!(
        b.lease("hook", "b", ttl).await.unwrap(),
        "lapsed: taken over"
    );
    assert!(!a.lease("hook", "a", ttl).await.unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lease_has_one_holder_on_one_redis() {
    a_lease_has_one_holder(&shared_url()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lease_has_one_holder_on_a_cluster() {
    a_lease_has_one_holder(&shared_cluster_url()).await;
}

/// Sends through node A until node B's stream has seen one (its
/// subscription is up), then checks that every later send reaches B at
/// once: B's engine rechecks only every minute, so only a notification can
/// wake it in time.
async fn notifications_reach_other_nodes(url: &str) {
    let prefix = unique_prefix();
    let a = with_users(open(url, &prefix).await, &["alice", "bob"]).await;
    let b = open(url, &prefix).await;
    let config = Config {
        recheck: Duration::from_secs(60),
        ..Config::default()
    };
    let b = Engine::with_config(b, config);
    let deadline = Instant::now() + Duration::from_secs(10);
    while !b.store().is_subscribed() {
        assert!(Instant::now() < deadline, "B never subscribed");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let stream = b
        .events(&Actor::user(uid("bob")), Start::Live)
        .await
        .unwrap();
    let mut stream = std::pin::pin!(stream);
    let alice = Actor::user(uid("alice"));
    let dm: ConversationId = "dm:alice:bob".parse().unwrap();
    for n in 1..=20u64 {
        let body = Body::new(&format!(r#"{{"n":{n}}}"#), 100).unwrap();
        a.send(&alice, &dm, SendRequest::new(body)).await.unwrap();
        let next = futures_util::StreamExt::next(&mut stream);
        let got = tokio::time::timeout(Duration::from_secs(2), next)
            .await
            .unwrap_or_else(|_| panic!("message {n} did not reach node B in time"))
            .unwrap()
            .unwrap();
        match got.data {
            im_engine::EventData::Message(m) => assert_eq!(m.seq, n),
            other => panic!("unexpected {other:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notifications_reach_other_nodes_on_one_redis() {
    notifications_reach_other_nodes(&shared_url()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notifications_reach_other_nodes_on_a_cluster() {
    notifications_reach_other_nodes(&shared_cluster_url()).await;
}

async fn presence_spans_nodes(url: &str) {
    let prefix = unique_prefix();
    let (a, b) = (open(url, &prefix).await, open(url, &prefix).await);
    let alice = uid("alice");
    a.set_presence(&alice, true, 1).await.unwrap();
    b.set_presence(&alice, true, 2).await.unwrap();
    a.set_presence(&alice, false, 3).await.unwrap();
    let p = b.presence(&alice).await.unwrap();
    assert!(p.online, "B still has a stream open");
    b.set_presence(&alice, false, 4).await.unwrap();
    let p = a.presence(&alice).await.unwrap();
    assert_eq!((p.online, p.last_seen), (false, Some(4)));

    // A node that dies with a stream open holds nobody online once its
    // heartbeat is gone: here, a field of a node that never beat.
    let mut conn = a.shared.conn();
    let _: () = conn
        .hset(
            a.shared.keys.presence(&alice),
            crate::keys::node_field(42),
            1,
        )
        .await
        .unwrap();
    assert!(!b.presence(&alice).await.unwrap().online);
    // And a node that stops cleanly takes its heartbeat with it.
    b.set_presence(&alice, true, 5).await.unwrap();
    assert!(a.presence(&alice).await.unwrap().online);
    drop(b);
    let deadline = Instant::now() + Duration::from_secs(10);
    while a.presence(&alice).await.unwrap().online {
        assert!(
            Instant::now() < deadline,
            "alice stays online after B stopped"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn presence_spans_nodes_on_one_redis() {
    presence_spans_nodes(&shared_url()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn presence_spans_nodes_on_a_cluster() {
    presence_spans_nodes(&shared_cluster_url()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_fail_in_bounded_time_while_redis_is_down_and_recover_after() {
    let mut server = RedisServer::start(true);
    let bound = Duration::from_millis(500);
    let config = |p: &str| RedisConfig::new(server.url()).prefix(p).timeout(bound);
    let prefix = unique_prefix();
    let a = with_users(
        RedisStore::open(config(&prefix)).await.unwrap(),
        &["alice", "bob"],
    )
    .await;
    let b = RedisStore::open(config(&prefix)).await.unwrap();
    let alice = Actor::user(uid("alice"));
    let dm: ConversationId = "dm:alice:bob".parse().unwrap();
    let body = || Body::new(r#"{"x":1}"#, 100).unwrap();
    a.send(&alice, &dm, SendRequest::new(body())).await.unwrap();

    let stream = a
        .events(&Actor::user(uid("bob")), Start::Oldest)
        .await
        .unwrap();
    let mut stream = std::pin::pin!(stream);
    assert!(
        futures_util::StreamExt::next(&mut stream)
            .await
            .unwrap()
            .is_ok()
    );

    server.kill();
    // Each call fails within a bound instead of hanging; the margin over
    // `bound` is for a loaded machine (2 cores, the rest of the suite
    // beside it), where 3× failed now and then.
    let most = bound * 10;
    for _ in 0..3 {
        let t = Instant::now();
        let r = a.send(&alice, &dm, SendRequest::new(body())).await;
        assert_eq!(r.unwrap_err().kind(), im_engine::ErrorKind::Store);
        assert!(t.elapsed() < most, "took {:?}", t.elapsed());
        let t = Instant::now();
        assert!(b.ping().await.is_err());
        assert!(t.elapsed() < most, "took {:?}", t.elapsed());
    }
    // A live stream ends with the store's error rather than hanging.
    let end = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match futures_util::StreamExt::next(&mut stream).await {
                Some(Ok(_)) => {}
                Some(Err(e)) => break Some(e),
                None => break None,
            }
        }
    })
    .await
    .expect("the stream ends while Redis is down");
    assert!(end.is_some());

    server.restart();
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        match a.send(&alice, &dm, SendRequest::new(body())).await {
            Ok((m, _)) => {
                assert_eq!(
                    m.seq, 2,
                    "the acknowledged message survived, numbering goes on"
                );
                break;
            }
            Err(e) => assert!(Instant::now() < deadline, "no recovery: {e}"),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The subscription comes back by itself.
    while !b.is_subscribed() {
        assert!(
            Instant::now() < deadline,
            "the subscription did not come back"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // So does B's command connection, without a call to prompt it.
    while b.last_seq(&dm).await.ok() != Some(2) {
        assert!(Instant::now() < deadline, "B did not reconnect");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Redis restarted from a snapshot older than its last acknowledged send
/// gives that send's seq to the next message. A node that delivered the
/// lost message must deliver the new one under that seq, not its memory of
/// the old.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_seq_reused_after_redis_lost_writes_delivers_the_new_message() {
    let mut server = RedisServer::start(false);
    let prefix = unique_prefix();
    let a = with_users(open(&server.url(), &prefix).await, &["alice", "bob"]).await;
    let b = Engine::new(open(&server.url(), &prefix).await);
    let mut conn = redis::Client::open(server.url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let () = redis::cmd("SAVE").query_async(&mut conn).await.unwrap();

    let alice = Actor::user(uid("alice"));
    let dm: ConversationId = "dm:alice:bob".parse().unwrap();
    let send = |n: u32| {
        let (a, alice, dm) = (a.clone(), alice.clone(), dm.clone());
        async move {
            let body = Body::new(&format!(r#"{{"n":{n}}}"#), 100).unwrap();
            a.send(&alice, &dm, SendRequest::new(body)).await
        }
    };
    let bodies = |poll: im_engine::EventPage| -> Vec<(u64, String)> {
        poll.events
            .into_iter()
            .filter_map(|d| match d.data {
                im_engine::EventData::Message(m) => Some((
                    m.seq,
                    m.body
                        .as_ref()
                        .map(|b| b.get().to_owned())
                        .unwrap_or_default(),
                )),
                _ => None,
            })
            .collect()
    };
    assert_eq!(send(1).await.unwrap().0.seq, 1);
    let seen = b
        .feed(&Actor::user(uid("bob")), Start::Oldest, 10)
        .await
        .unwrap();
    assert_eq!(bodies(seen), [(1, r#"{"n":1}"#.to_owned())]);

    server.kill();
    server.restart();
    let deadline = Instant::now() + Duration::from_secs(15);
    let resent = loop {
        match send(2).await {
            Ok((m, _)) => break m,
            Err(e) => assert!(Instant::now() < deadline, "no recovery: {e}"),
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(resent.seq, 1, "the snapshot did not hold the first send");
    let seen = loop {
        match b.feed(&Actor::user(uid("bob")), Start::Oldest, 10).await {
            Ok(poll) => break poll,
            Err(e) => assert!(Instant::now() < deadline, "B did not reconnect: {e}"),
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(bodies(seen), [(1, r#"{"n":2}"#.to_owned())]);
}
