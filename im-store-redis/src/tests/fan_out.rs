//! A cluster fan-out gives each node one script for the recipients it
//! serves, grouped by a slot map read from the cluster. The map's slots
//! must be the cluster's, and a map that is wrong (slots moved) must cost
//! only speed: each event still lands once in each feed.

use futures_util::FutureExt;
use im_engine::store::{FeedTrim, Outgoing, Recipients};
use im_engine::{
    Actor, Body, ConversationId, Engine, Event, GroupId, NewMessage, SendRequest, Store, UserId,
};
use redis::AsyncCommands;

use super::{open, put_users};
use crate::codec::Pending;
use crate::fan_out;
use crate::keys::Keys;
use crate::slots::user_slot;
use crate::testing::{RedisCluster, shared_cluster_url, unique_prefix};
use crate::write;

const MEMBERS: usize = 24;

fn member(i: usize) -> String {
    format!("m{i}")
}

#[tokio::test]
async fn user_slots_are_the_cluster_s() {
    let prefix = unique_prefix();
    let store = open(&shared_cluster_url(), &prefix).await;
    let keys = Keys::new(&prefix).unwrap();
    for i in 0..MEMBERS {
        let u = UserId::new(member(i)).unwrap();
        let slot: u16 = redis::cmd("CLUSTER")
            .arg("KEYSLOT")
            .arg(keys.feed(&u))
            .query_async(&mut store.shared.conn())
            .await
            .unwrap();
        assert_eq!(user_slot(&u), slot, "{u}");
    }
}

/// Sends `n` messages to `g` from `m0`.
async fn send(engine: &Engine<crate::RedisStore>, g: &ConversationId, n: usize) {
    let body = Body::new(r#"{"text":"hi"}"#, 1024).unwrap();
    for _ in 0..n {
        engine
            .send(
                &Actor::user(UserId::new("m0").unwrap()),
                g,
                SendRequest::new(body.clone()),
            )
            .await
            .unwrap();
    }
}

/// Each member's message events, by seq, and its unread entry.
async fn check(engine: &Engine<crate::RedisStore>, g: &ConversationId, sent: u64) {
    for i in 0..MEMBERS {
        let u = UserId::new(member(i)).unwrap();
        let feed = engine.store().feed(&u, 0, 1000).await.unwrap();
        let seqs: Vec<u64> = feed
            .entries
            .iter()
            .filter_map(|e| match &e.event {
                Event::Message { seq, .. } => Some(*seq),
                _ => None,
            })
            .collect();
        assert_eq!(seqs, (1..=sent).collect::<Vec<_>>(), "{u}'s feed");
        let entry = engine
            .store()
            .entry(&u, g)
            .await
            .unwrap()
            .expect("an entry");
        let read = if i == 0 { sent } else { 0 };
        assert_eq!(entry.read_seq, read, "{u}'s read cursor");
    }
}

/// A store on the cluster at `url` under `prefix`, with a group of
/// [`MEMBERS`] users whose owner is `m0`.
async fn group(url: &str, prefix: &str) -> (Engine<crate::RedisStore>, ConversationId) {
    let engine = Engine::new(open(url, prefix).await);
    let ids: Vec<String> = (0..MEMBERS).map(member).collect();
    put_users(&engine, &ids.iter().map(String::as_str).collect::<Vec<_>>()).await;
    let gid = GroupId::new("g").unwrap();
    let owner = Actor::user(UserId::new("m0").unwrap());
    engine
        .put_group(&owner, &gid, Default::default(), None)
        .await
        .unwrap();
    for id in &ids[1..] {
        engine
            .join(&owner, &gid, &UserId::new(id.as_str()).unwrap())
            .await
            .unwrap();
    }
    (engine, ConversationId::group(gid))
}

#[tokio::test]
async fn a_wrong_slot_map_costs_speed_not_events() {
    let prefix = unique_prefix();
    let (engine, g) = group(&shared_cluster_url(), &prefix).await;
    send(&engine, &g, 2).await;
    check(&engine, &g, 2).await;

    // A map that puts every slot on one node: its script reaches users of
    // the other nodes, fails there, and is done again user by user.
    let slots = &engine.store().shared.slots;
    slots.set(vec![(0, 16383, "all".into())]);
    send(&engine, &g, 1).await;
    check(&engine, &g, 3).await;
    // It was forgotten, and the cluster's read again for the next send.
    send(&engine, &g, 1).await;
    check(&engine, &g, 4).await;
    let map = slots.get(&mut engine.store().shared.conn()).await.unwrap();
    assert_ne!(map.unwrap().node(0), Some("all"));

    // Nothing left pending.
    let keys = Keys::new(&prefix).unwrap();
    let pending: u64 = engine
        .store()
        .shared
        .conn()
        .zcard(keys.pending(&g))
        .await
        .unwrap();
    assert_eq!(pending, 0);
}

/// Concurrent sends to one group queue for its drain, and one drain may
/// apply the records of many; still, each send answers only once its
/// message is in every member's feed.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_send_answers_once_its_message_is_in_every_feed() {
    let prefix = unique_prefix();
    let (engine, g) = group(&shared_cluster_url(), &prefix).await;
    let last = UserId::new(member(MEMBERS - 1)).unwrap();
    let senders = (0..MEMBERS).map(|i| {
        let (engine, g, last) = (engine.clone(), g.clone(), last.clone());
        tokio::spawn(async move {
            let from = Actor::user(UserId::new(member(i)).unwrap());
            let body = Body::new(r#"{"text":"hi"}"#, 1024).unwrap();
            for _ in 0..10 {
                let (m, _) = engine
                    .send(&from, &g, SendRequest::new(body.clone()))
                    .await
                    .unwrap();
                let feed = engine.store().feed(&last, 0, 1000).await.unwrap();
                let there = feed
                    .entries
                    .iter()
                    .any(|e| matches!(&e.event, Event::Message { seq, .. } if *seq == m.seq));
                assert!(there, "message {} answered before it reached {last}", m.seq);
            }
        })
    });
    for s in senders.collect::<Vec<_>>() {
        s.await.unwrap();
    }
}

/// A send that finds the drain lock free drains the records its commit
/// answered, which may predate the commit of a send that queued behind
/// it: that send must still drain its own.
#[tokio::test]
async fn a_drain_of_the_records_a_commit_answered_covers_no_other_send() {
    let prefix = unique_prefix();
    let engine = Engine::new(open(&shared_cluster_url(), &prefix).await);
    put_users(&engine, &["alice", "bob"]).await;
    let s = &engine.store().shared;
    let dm: ConversationId = "dm:alice:bob".parse().unwrap();
    let out = |n: u64| Outgoing {
        message: NewMessage {
            conversation: dm.clone(),
            from: UserId::new("alice").unwrap(),
            ts: n,
            body: Body::new(r#"{"text":"hi"}"#, 100).unwrap(),
            client_id: None,
            reply_to: None,
        },
        recipients: Recipients::Users(vec![
            UserId::new("alice").unwrap(),
            UserId::new("bob").unwrap(),
        ]),
        trim: FeedTrim::default(),
    };
    // A commits, then B; A takes the free lock, and B asks for it.
    let (_, a_records) = write::commit_and_die(s, &out(1)).await.unwrap();
    let (_, b_records) = write::commit_and_die(s, &out(2)).await.unwrap();
    let mut a = s.drains.lock(&dm).await;
    assert!(a.first);
    let b = s.drains.lock(&dm);
    let mut b = std::pin::pin!(b);
    assert!(b.as_mut().now_or_never().is_none());
    write::drain_after_commit(s, &dm, a_records.unwrap(), &mut a)
        .await
        .unwrap();
    drop(a);
    let mut b = b.await;
    assert!(!b.covered, "A drained only the records of its own commit");
    write::drain_after_commit(s, &dm, b_records.unwrap(), &mut b)
        .await
        .unwrap();
    let bob = UserId::new("bob").unwrap();
    let feed = engine.store().feed(&bob, 0, 10).await.unwrap();
    assert_eq!(feed.head, 2);
}

/// A command to the cluster node on `port` alone.
async fn on_node(port: u16, cmd: &redis::Cmd) -> redis::RedisResult<redis::Value> {
    let client = redis::Client::open(format!("redis://127.0.0.1:{port}")).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    cmd.query_async(&mut conn).await
}

/// A user whose slot is being moved to another master, one of its keys
/// there already: a master's call that reaches that user stops before it
/// writes anything of theirs. Here a change's event would be appended to
/// the user's feed before the message after it reads the entry, which has
/// gone; the user done again one by one would then get that event twice.
#[tokio::test]
async fn a_user_whose_slot_is_moving_gets_nothing_from_a_failed_call() {
    // A cluster of its own: moving a slot would disturb other tests.
    let cluster = RedisCluster::start();
    let prefix = unique_prefix();
    let (engine, g) = group(&cluster.url(), &prefix).await;
    send(&engine, &g, 1).await;
    let s = &engine.store().shared;
    let map = s.slots.get(&mut s.conn()).await.unwrap().unwrap();
    let mut ids = Vec::new();
    for port in cluster.ports() {
        let id = on_node(port, redis::cmd("CLUSTER").arg("MYID"))
            .await
            .unwrap();
        ids.push((port, codec_text(&id)));
    }
    // Two members one master serves: `u` will move, `v` stays.
    let members: Vec<UserId> = (1..MEMBERS)
        .map(|i| UserId::new(member(i)).unwrap())
        .collect();
    let node = |u: &UserId| map.node(user_slot(u)).unwrap().to_owned();
    let (u, v) = members
        .iter()
        .flat_map(|u| members.iter().map(move |v| (u, v)))
        .find(|(u, v)| u != v && node(u) == node(v))
        .expect("two members on one master");
    let (a_port, a_id) = ids.iter().find(|(_, id)| *id == node(u)).unwrap().clone();
    let (b_port, b_id) = ids.iter().find(|(_, id)| *id != a_id).unwrap().clone();
    let slot = user_slot(u);
    let setslot = |state: &str, id: &str| {
        let mut c = redis::cmd("CLUSTER");
        c.arg("SETSLOT").arg(slot).arg(state).arg(id);
        c
    };
    on_node(b_port, &setslot("IMPORTING", &a_id)).await.unwrap();
    on_node(a_port, &setslot("MIGRATING", &b_id)).await.unwrap();
    let keys = Keys::new(&prefix).unwrap();
    let mut migrate = redis::cmd("MIGRATE");
    migrate
        .arg("127.0.0.1")
        .arg(b_port)
        .arg(keys.entries(u))
        .arg(0)
        .arg(5000);
    on_node(a_port, &migrate).await.unwrap();

    let record = |seq, mseq, who: &str, event: &str| Pending {
        raw: String::new(),
        seq,
        mseq,
        ts: 7,
        keep: 1 << 53,
        min_ts: 0,
        who: who.into(),
        event: event.into(),
        recipients: vec![u.clone(), v.clone()],
    };
    let records = [
        record(
            1,
            1,
            "*",
            r#"{"kind":"edit","conversation":"group:g","seq":1}"#,
        ),
        record(2, 0, "m0", ""),
    ];
    let group = [(v, vec![0, 1]), (u, vec![0, 1])];
    let xlen = |user: &UserId| {
        let cmd = redis::cmd("XLEN").arg(keys.feed(user)).clone();
        async move { codec_number(&on_node(a_port, &cmd).await.unwrap()) }
    };
    let (u_before, v_before) = (xlen(u).await, xlen(v).await);
    let answer = fan_out::to_node(s, &g.to_string(), &records, &group).await;
    assert!(answer.is_err(), "it stops at the moving user: {answer:?}");
    assert_eq!(xlen(v).await, v_before + 2, "the user before it got both");
    assert_eq!(xlen(u).await, u_before, "the moving user got nothing");
}

fn codec_text(v: &redis::Value) -> String {
    crate::codec::text(v).unwrap()
}

fn codec_number(v: &redis::Value) -> u64 {
    crate::codec::number(v).unwrap()
}

/// One member's view of the group: its read cursor (`None`: no entry),
/// its feed's events, and whether the entry's activity is the time of the
/// newest message in that feed.
async fn view(
    engine: &Engine<crate::RedisStore>,
    g: &ConversationId,
    u: &UserId,
) -> (Option<u64>, Vec<String>, bool) {
    let feed = engine.store().feed(u, 0, 1000).await.unwrap();
    let events = feed
        .entries
        .iter()
        .map(|e| serde_json::to_string(&e.event).unwrap())
        .collect();
    let newest = feed
        .entries
        .iter()
        .rev()
        .find(|e| matches!(e.event, Event::Message { .. }))
        .map(|e| e.ts);
    let entry = engine.store().entry(u, g).await.unwrap();
    let activity_right = entry.as_ref().is_none_or(|e| Some(e.activity) == newest);
    (entry.map(|e| e.read_seq), events, activity_right)
}

/// Joins, sends and leaves of one member, fanned out in one batch: what
/// each member's entry and feed end as must be what they end as when each
/// is fanned out alone (the batch writes each entry once, at its end).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_of_joins_sends_and_leaves_ends_as_one_at_a_time() {
    let mut views = Vec::new();
    for batched in [false, true] {
        let prefix = unique_prefix();
        let (engine, g) = group(&shared_cluster_url(), &prefix).await;
        put_users(&engine, &["x"]).await;
        let (gid, x) = (GroupId::new("g").unwrap(), UserId::new("x").unwrap());
        let s = &engine.store().shared;
        let keys = Keys::new(&prefix).unwrap();
        // Held, every operation below commits and then waits for the
        // drain, which then finds them all pending at once.
        let hold = if batched {
            Some(s.drains.lock(&g).await)
        } else {
            None
        };
        let mut tasks = Vec::new();
        for (i, op) in ["join", "m0", "x", "leave", "join", "m1"]
            .into_iter()
            .enumerate()
        {
            let (engine, gid, conv, x) = (engine.clone(), gid.clone(), g.clone(), x.clone());
            let task = tokio::spawn(async move {
                let owner = Actor::user(UserId::new("m0").unwrap());
                let body = Body::new(r#"{"text":"hi"}"#, 100).unwrap();
                match op {
                    "join" => drop(engine.join(&owner, &gid, &x).await.unwrap()),
                    "leave" => engine
                        .leave(&Actor::user(x.clone()), &gid, &x)
                        .await
                        .unwrap(),
                    "m0" | "m1" | "x" => {
                        let from = Actor::user(UserId::new(op).unwrap());
                        engine
                            .send(&from, &conv, SendRequest::new(body))
                            .await
                            .unwrap();
                    }
                    _ => unreachable!(),
                }
            });
            if batched {
                // Wait for its commit: its record is pending.
                let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
                loop {
                    let n: usize = s.conn().zcard(keys.pending(&g)).await.unwrap();
                    if n > i {
                        break;
                    }
                    assert!(std::time::Instant::now() < deadline, "op {op} committed");
                    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
                }
                tasks.push(task);
            } else {
                task.await.unwrap();
            }
        }
        drop(hold);
        for t in tasks {
            t.await.unwrap();
        }
        let mut v = Vec::new();
        for u in ["x", "m0", "m1", "m5"] {
            v.push(view(&engine, &g, &UserId::new(u).unwrap()).await);
        }
        views.push(v);
    }
    for (one, batch) in views[0].iter().zip(&views[1]) {
        assert!(one.2 && batch.2, "the activity is the newest message's");
        assert_eq!((&one.0, &one.1), (&batch.0, &batch.1));
    }
    // x read its own message 2, left, and joined again at 2.
    assert_eq!(views[1][0].0, Some(2));
}
