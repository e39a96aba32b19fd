//! Opening a store of format 1: members move to their conversation's slot,
//! and the index entries the membership race left to removed members go.

use im_engine::{Actor, ConversationId, Engine, GroupId, JoinPolicy, Store, UserId};
use redis::AsyncCommands;

use super::open;
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
    let root = Actor::admin(uid("root"));
    for u in ["alice", "bob", "carol"] {
        engine
            .put_user(&root, &uid(u), Default::default())
            .await
            .unwrap();
    }
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
