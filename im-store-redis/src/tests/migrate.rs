//! Opening a store of format 1: members move to their conversation's slot,
//! and the index entries the membership race left to removed members go;
//! opening one of format 3: feeds are renumbered in their streams (format
//! 4, then 5: `migrate_streams.rs`).

use im_engine::{Actor, ConversationId, Engine, Event, GroupId, JoinPolicy, Store, UserId};
use redis::AsyncCommands;

use super::{open, put_users};
use crate::keys::Keys;
use crate::testing::{shared_cluster_url, shared_url, unique_prefix};

fn uid(s: &str) -> UserId {
    UserId::new(s).unwrap()
}

/// Writes a group with members alice and bob through this build, then turns
/// the data into what format 1 left after the race: the members under the
/// group's key, version 1, and an entry of the group for carol, who is no
/// member. Opening it again upgrades it.
async fn a_format_1_store_is_upgraded(url: &str) {
    let prefix = unique_prefix();
    let store = open(url, &prefix).await;
    let engine = Engine::new(store);
    put_users(&engine, &["alice", "bob", "carol"]).await;
    let g = GroupId::new("g").unwrap();
    let group = ConversationId::group(g.clone());
    engine
        .put_group(
            &Actor::user(uid("alice")),
            &g,
            Default::default(),
            Some(JoinPolicy::Open),
        )
        .await
        .unwrap();
    engine
        .join(&Actor::user(uid("bob")), &g, &uid("bob"))
        .await
        .unwrap();
    let store = engine.try_into_store().unwrap();

    let keys = Keys::new(&prefix).unwrap();
    let mut c = store.shared.conn();
    let members: Vec<(String, String)> = c.hgetall(keys.members(&g)).await.unwrap();
    let v1 = format!("{prefix}{{g:g}}:members");
    let _: () = c.hset_multiple(&v1, &members).await.unwrap();
    let _: u64 = c.del(keys.members(&g)).await.unwrap();
    let _: u64 = c.del(keys.member_ids(&g)).await.unwrap();
    let _: () = c
        .hset(keys.entries(&uid("carol")), group.to_string(), "0:1")
        .await
        .unwrap();
    let _: () = c.hset(keys.meta(), "version", 1).await.unwrap();
    drop(store);

    let store = open(url, &prefix).await;
    let mut ids: Vec<String> = store
        .members(&g)
        .await
        .unwrap()
        .into_iter()
        .map(|m| m.id.to_string())
        .collect();
    ids.sort();
    assert_eq!(ids, ["alice", "bob"]);
    let page = store.members_after(&g, None, 10).await.unwrap();
    let paged: Vec<&str> = page.iter().map(|m| m.id.as_str()).collect();
    assert_eq!(
        paged,
        ["alice", "bob"],
        "format 6 indexed the moved members"
    );
    assert_eq!(store.entry(&uid("carol"), &group).await.unwrap(), None);
    assert!(store.entry(&uid("bob"), &group).await.unwrap().is_some());
    let mut c = store.shared.conn();
    assert!(!c.exists::<_, bool>(&v1).await.unwrap(), "the old key goes");
    let version: u32 = c.hget(keys.meta(), "version").await.unwrap();
    assert_eq!(version, crate::FORMAT_VERSION);
}

#[tokio::test]
async fn a_format_1_store_is_upgraded_on_one_redis() {
    a_format_1_store_is_upgraded(&shared_url()).await;
}

#[tokio::test]
async fn a_format_1_store_is_upgraded_on_a_cluster() {
    a_format_1_store_is_upgraded(&shared_cluster_url()).await;
}

/// Writes two feeds as format 3 did (ids `<pos>-0`, bounds in
/// `feedmeta`): alice's trimmed to positions 3..=5, bob's emptied at 4,
/// and an index entry `read_seq:activity`. With `interrupted`, alice's feed
/// was converted already by an upgrade that stopped before the version.
async fn a_format_3_store_is_upgraded(url: &str, interrupted: bool) {
    let prefix = unique_prefix();
    let store = open(url, &prefix).await;
    let keys = Keys::new(&prefix).unwrap();
    let (alice, bob) = (uid("alice"), uid("bob"));
    let dm: ConversationId = "dm:alice:bob".parse().unwrap();
    let mut c = store.shared.conn();
    for pos in 3..=5u64 {
        let event = format!(r#"{{"kind":"message","conversation":"dm:alice:bob","seq":{pos}}}"#);
        let _: String = redis::cmd("XADD")
            .arg(keys.feed(&alice))
            .arg(format!("{pos}-0"))
            .arg("t")
            .arg(1000 + pos)
            .arg("e")
            .arg(event)
            .query_async(&mut c)
            .await
            .unwrap();
    }
    let _: () = c
        .hset_multiple(keys.feed_meta(&alice), &[("head", 5), ("trimmed", 2)])
        .await
        .unwrap();
    let _: () = c
        .hset_multiple(keys.feed_meta(&bob), &[("head", 4), ("trimmed", 4)])
        .await
        .unwrap();
    let _: () = c
        .hset(keys.entries(&alice), dm.to_string(), "4:1005")
        .await
        .unwrap();
    let _: () = c.hset(keys.meta(), "version", 3).await.unwrap();
    if interrupted {
        let converted: u64 = crate::scripts::FEED_V3_TO_V4
            .key(keys.feed(&alice))
            .key(keys.feed_meta(&alice))
            .invoke_async(&mut c)
            .await
            .unwrap();
        assert_eq!(converted, 1);
    }
    drop(store);

    let store = open(url, &prefix).await;
    let feed = store.feed(&alice, 0, 10).await.unwrap();
    assert_eq!((feed.head, feed.trimmed), (5, 2));
    let seen: Vec<(u64, u64)> = feed.entries.iter().map(|e| (e.pos, e.ts)).collect();
    assert_eq!(seen, [(3, 1003), (4, 1004), (5, 1005)]);
    assert_eq!(
        feed.entries[2].event,
        Event::Message {
            conversation: dm.clone(),
            seq: 5
        }
    );
    let feed = store.feed(&bob, 0, 10).await.unwrap();
    assert_eq!((feed.head, feed.trimmed, feed.entries.len()), (4, 4, 0));
    let entry = store.entry(&alice, &dm).await.unwrap().unwrap();
    assert_eq!((entry.read_seq, entry.activity), (4, 1005));
    let mut c = store.shared.conn();
    for u in [&alice, &bob] {
        assert!(!c.exists::<_, bool>(keys.feed_meta(u)).await.unwrap());
    }
    let version: u32 = c.hget(keys.meta(), "version").await.unwrap();
    assert_eq!(version, crate::FORMAT_VERSION);

    // New events go on from the old positions.
    let engine = Engine::new(store);
    put_users(&engine, &["alice", "bob"]).await;
    let body = im_engine::Body::new(r#"{"t":1}"#, 1024).unwrap();
    engine
        .send(
            &Actor::user(alice.clone()),
            &dm,
            im_engine::SendRequest::new(body),
        )
        .await
        .unwrap();
    let store = engine.try_into_store().unwrap();
    let feed = store.feed(&alice, 5, 10).await.unwrap();
    assert_eq!(feed.head, 6);
    assert_eq!(feed.entries.iter().map(|e| e.pos).collect::<Vec<_>>(), [6]);
    let feed = store.feed(&bob, 0, 10).await.unwrap();
    assert_eq!((feed.head, feed.trimmed), (5, 4));
    assert_eq!(feed.entries.iter().map(|e| e.pos).collect::<Vec<_>>(), [5]);
}

#[tokio::test]
async fn a_format_3_store_is_upgraded_on_one_redis() {
    a_format_3_store_is_upgraded(&shared_url(), false).await;
}

#[tokio::test]
async fn a_format_3_upgrade_interrupted_part_way_finishes() {
    a_format_3_store_is_upgraded(&shared_url(), true).await;
}

#[tokio::test]
async fn a_format_3_store_is_upgraded_on_a_cluster() {
    a_format_3_store_is_upgraded(&shared_cluster_url(), false).await;
}
