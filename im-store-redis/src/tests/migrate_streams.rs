//! Opening a store of format 4: logs (rooms' too) and firehose partitions
//! are renumbered in their streams, their counters removed.

use im_engine::{Actor, Body, ConversationId, Engine, Event, GroupId, SendRequest, Store, UserId};
use redis::AsyncCommands;

use super::{open, put_users};
use crate::keys::{self, Keys};
use crate::testing::{shared_cluster_url, shared_url, unique_prefix};

fn uid(s: &str) -> UserId {
    UserId::new(s).unwrap()
}

fn message_event(conv: &str, seq: u64) -> String {
    format!(r#"{{"kind":"message","conversation":"{conv}","seq":{seq}}}"#)
}

async fn xadd(
    c: &mut impl redis::aio::ConnectionLike,
    key: &str,
    id: &str,
    fields: &[(&str, &str)],
) {
    let mut cmd = redis::cmd("XADD");
    cmd.arg(key).arg(id);
    for (f, v) in fields {
        cmd.arg(*f).arg(*v);
    }
    let _: String = cmd.query_async(c).await.unwrap();
}

/// Writes, as format 4 did (ids `<n>-0`, the last number in a counter):
/// alice's direct conversation with messages 1 and 2 in its log and 3 in
/// its counter (the third was taken out of the log, as a change does), a
/// room's log with message 1, and the DM's firehose partition with two
/// events. With `interrupted`, an upgrade copied the DM log's first message
/// and stopped. Opening the store upgrades it; reads answer what format 4
/// held, and new writes go on from the old numbers.
async fn a_format_4_store_is_upgraded(url: &str, interrupted: bool) {
    let prefix = unique_prefix();
    let store = open(url, &prefix).await;
    let keys = Keys::new(&prefix).unwrap();
    let dm: ConversationId = "dm:alice:bob".parse().unwrap();
    let room = ConversationId::room(GroupId::new("r").unwrap());
    let part = if store.shared.cluster() {
        keys::shard(&dm.to_string())
    } else {
        0
    };
    let mut c = store.shared.conn();
    for (seq, body) in [(1, r#"{"n":1}"#), (2, r#"{"n":2}"#)] {
        let id = format!("{seq}-0");
        let ts = (1000 + seq).to_string();
        xadd(
            &mut c,
            &keys.log(&dm),
            &id,
            &[("f", "alice"), ("t", &ts), ("b", body)],
        )
        .await;
    }
    let _: () = c.set(keys.v4_seq(&dm), 3).await.unwrap();
    xadd(
        &mut c,
        &keys.log(&room),
        "1-0",
        &[("f", "bob"), ("t", "1001"), ("b", "{}")],
    )
    .await;
    let _: () = c.set(keys.v4_seq(&room), 1).await.unwrap();
    for pos in 1..=2 {
        let event = message_event("dm:alice:bob", pos);
        let id = format!("{pos}-0");
        xadd(
            &mut c,
            &keys.fire(part),
            &id,
            &[("t", "1001"), ("u", ""), ("e", &event)],
        )
        .await;
    }
    let _: () = c.set(keys.v4_fire_head(part), 2).await.unwrap();
    let _: () = c.hset(keys.meta(), "version", 4).await.unwrap();
    if interrupted {
        let done: u64 = crate::scripts::STREAM_V4_TO_V5
            .key(keys.log(&dm))
            .key(keys.v4_seq(&dm))
            .key(format!("{}:v5", keys.log(&dm)))
            .arg(1)
            .invoke_async(&mut c)
            .await
            .unwrap();
        assert_eq!(done, 0, "one message of two copied");
    }
    drop(store);

    let store = open(url, &prefix).await;
    let mut c = store.shared.conn();
    let version: u32 = c.hget(keys.meta(), "version").await.unwrap();
    assert_eq!(version, crate::FORMAT_VERSION);
    for counter in [
        keys.v4_seq(&dm),
        keys.v4_seq(&room),
        keys.v4_fire_head(part),
    ] {
        assert!(
            !c.exists::<_, bool>(&counter).await.unwrap(),
            "{counter} goes"
        );
    }
    assert!(
        !c.exists::<_, bool>(format!("{}:v5", keys.log(&dm)))
            .await
            .unwrap()
    );
    assert_eq!(store.last_seq(&dm).await.unwrap(), 3);
    let read: Vec<(u64, String, u64)> = store
        .messages(&dm, 1, 3)
        .await
        .unwrap()
        .into_iter()
        .map(|m| (m.seq, m.from.to_string(), m.ts))
        .collect();
    assert_eq!(read, [(1, "alice".into(), 1001), (2, "alice".into(), 1002)]);
    assert_eq!(store.last_seq(&room).await.unwrap(), 1);
    assert_eq!(
        store.messages(&room, 1, 1).await.unwrap()[0].from,
        uid("bob")
    );
    let fire = store.firehose(part as usize, 0, 10).await.unwrap();
    assert_eq!(fire.head, 2);
    let seen: Vec<Event> = fire.entries.iter().map(|e| e.event.clone()).collect();
    let expected: Vec<Event> = (1..=2)
        .map(|seq| Event::Message {
            conversation: dm.clone(),
            seq,
        })
        .collect();
    assert_eq!(seen, expected);

    // New writes go on from the old numbers.
    let engine = Engine::new(store);
    put_users(&engine, &["alice", "bob"]).await;
    let body = Body::new(r#"{"n":4}"#, 1024).unwrap();
    let (sent, _) = engine
        .send(&Actor::user(uid("alice")), &dm, SendRequest::new(body))
        .await
        .unwrap();
    assert_eq!(sent.seq, 4);
    let store = engine.try_into_store().unwrap();
    assert_eq!(store.last_seq(&dm).await.unwrap(), 4);
    let read: Vec<u64> = store
        .messages(&dm, 1, 4)
        .await
        .unwrap()
        .iter()
        .map(|m| m.seq)
        .collect();
    assert_eq!(read, [1, 2, 4]);
    let fire = store.firehose(part as usize, 2, 10).await.unwrap();
    assert_eq!(fire.head, 3);
    let seen: Vec<(u64, Event)> = fire
        .entries
        .iter()
        .map(|e| (e.pos, e.event.clone()))
        .collect();
    assert_eq!(
        seen,
        [(
            3,
            Event::Message {
                conversation: dm.clone(),
                seq: 4
            }
        )]
    );
}

#[tokio::test]
async fn a_format_4_store_is_upgraded_on_one_redis() {
    a_format_4_store_is_upgraded(&shared_url(), false).await;
}

#[tokio::test]
async fn a_format_4_upgrade_interrupted_part_way_finishes() {
    a_format_4_store_is_upgraded(&shared_url(), true).await;
}

#[tokio::test]
async fn a_format_4_store_is_upgraded_on_a_cluster() {
    a_format_4_store_is_upgraded(&shared_cluster_url(), false).await;
}

#[tokio::test]
async fn a_format_4_upgrade_interrupted_part_way_finishes_on_a_cluster() {
    a_format_4_store_is_upgraded(&shared_cluster_url(), true).await;
}
