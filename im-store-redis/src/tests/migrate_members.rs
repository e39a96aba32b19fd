//! Opening a store of format 5: every group's and room's member ids are
//! indexed (`P{c:group:G}:memberids`), so that its pages read the index.

use im_engine::store::{FeedTrim, MemberChange, MemberUpdate, Updated};
use im_engine::{Actor, Engine, GroupId, GroupKind, JoinPolicy, Member, Role, Store, UserId};
use redis::AsyncCommands;

use super::{open, pages, put_users};
use crate::keys::Keys;
use crate::testing::{shared_cluster_url, shared_url, unique_prefix};

fn uid(s: &str) -> UserId {
    UserId::new(s).unwrap()
}

/// Enough members that the room's hash is a hash table (past
/// `hash-max-listpack-entries`: 128 upstream, 512 in Debian's build),
/// which `HSCAN` walks in steps; a listpack it answers whole.
const ROOM_MEMBERS: usize = 1200;

/// Every member id of `group`, paged 64 at a time.
async fn paged_ids(store: &impl Store, group: &GroupId) -> Vec<String> {
    let all = pages(store, group, 64).await.concat();
    all.iter().map(|m| m.id.to_string()).collect()
}

/// Writes what format 5 held: a group `g` of alice and bob (joined through
/// this build, its index then deleted) and a room `r` of 1,200 members
/// written into its hash alone, version 5. With `interrupted`, an upgrade
/// indexed one batch of the room's members and stopped. Opening the store
/// upgrades it: pages list every member, and later leaves keep the index.
async fn a_format_5_store_gets_member_indexes(url: &str, interrupted: bool) {
    let prefix = unique_prefix();
    let engine = Engine::new(open(url, &prefix).await);
    put_users(&engine, &["alice", "bob"]).await;
    let (g, r) = (GroupId::new("g").unwrap(), GroupId::new("r").unwrap());
    let alice = Actor::user(uid("alice"));
    engine
        .put_group(&alice, &g, Default::default(), Some(JoinPolicy::Open))
        .await
        .unwrap();
    engine
        .join(&Actor::user(uid("bob")), &g, &uid("bob"))
        .await
        .unwrap();
    let store = engine.try_into_store().unwrap();
    let keys = Keys::new(&prefix).unwrap();
    let mut c = store.shared.conn();
    let mut want: Vec<String> = (0..ROOM_MEMBERS).map(|n| format!("m{n:04}")).collect();
    let records: Vec<(String, String)> = want
        .iter()
        .map(|id| {
            let m = Member {
                id: uid(id),
                role: Role::Member,
                since: 1000,
            };
            (id.clone(), serde_json::to_string(&m).unwrap())
        })
        .collect();
    let _: () = c.hset_multiple(keys.members(&r), &records).await.unwrap();
    let _: u64 = c.del(keys.member_ids(&g)).await.unwrap();
    let _: () = c.hset(keys.meta(), "version", 5).await.unwrap();
    if interrupted {
        let encoding: String = redis::cmd("OBJECT")
            .arg("ENCODING")
            .arg(keys.members(&r))
            .query_async(&mut c)
            .await
            .unwrap();
        assert_eq!(encoding, "hashtable");
        let cursor: String = crate::scripts::MEMBER_IDS_V5_TO_V6
            .key(keys.members(&r))
            .key(keys.member_ids(&r))
            .arg("0")
            .arg(10)
            .invoke_async(&mut c)
            .await
            .unwrap();
        assert_ne!(cursor, "0", "one batch of many");
        let indexed: usize = c.zcard(keys.member_ids(&r)).await.unwrap();
        assert!((1..ROOM_MEMBERS).contains(&indexed), "{indexed} indexed");
    }
    drop(store);

    let store = open(url, &prefix).await;
    let mut c = store.shared.conn();
    let version: u32 = c.hget(keys.meta(), "version").await.unwrap();
    assert_eq!(version, crate::FORMAT_VERSION);
    assert_eq!(paged_ids(&store, &r).await, want);
    assert_eq!(paged_ids(&store, &g).await, ["alice", "bob"]);

    // Later writes keep the index.
    let leave = MemberUpdate {
        group: r.clone(),
        change: MemberChange::Remove(uid("m0000")),
        at: 2000,
        max_members: 1_000_000,
        trim: FeedTrim::default(),
        kind: GroupKind::Room,
    };
    assert_eq!(store.update_member(&leave).await.unwrap(), Updated::Changed);
    want.remove(0);
    assert_eq!(paged_ids(&store, &r).await, want);
}

#[tokio::test]
async fn a_format_5_store_gets_member_indexes_on_one_redis() {
    a_format_5_store_gets_member_indexes(&shared_url(), false).await;
}

#[tokio::test]
async fn a_format_5_upgrade_interrupted_part_way_finishes() {
    a_format_5_store_gets_member_indexes(&shared_url(), true).await;
}

#[tokio::test]
async fn a_format_5_store_gets_member_indexes_on_a_cluster() {
    a_format_5_store_gets_member_indexes(&shared_cluster_url(), false).await;
}

#[tokio::test]
async fn a_format_5_upgrade_interrupted_part_way_finishes_on_a_cluster() {
    a_format_5_store_gets_member_indexes(&shared_cluster_url(), true).await;
}
