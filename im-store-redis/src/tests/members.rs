//! Pages of a group's and a room's members, read from the index of their
//! ids: through joins and leaves of every kind (a group's, a room's, a
//! change set's) they match `MemoryStore`'s page for page, and a page
//! lists the index's ids, whatever the members hash holds besides.

use im_engine::store::{Changes, FeedTrim, MemberChange, MemberUpdate, Updated};
use im_engine::{GroupId, GroupKind, Member, MemoryStore, Role, Store, UserId};
use redis::AsyncCommands;

use super::{open, pages};
use crate::Error;
use crate::testing::{shared_cluster_url, shared_url, unique_prefix};

fn uid(s: &str) -> UserId {
    UserId::new(s).unwrap()
}

fn gid(s: &str) -> GroupId {
    GroupId::new(s).unwrap()
}

fn member(id: &str, since: u64) -> Member {
    Member {
        id: uid(id),
        role: Role::Member,
        since,
    }
}

fn update(group: &GroupId, change: MemberChange, at: u64, kind: GroupKind) -> MemberUpdate {
    MemberUpdate {
        group: group.clone(),
        change,
        at,
        max_members: 1000,
        trim: FeedTrim::default(),
        kind,
    }
}

/// One step of the walk: a join or leave of user `n` in `group`, by the
/// store's join or leave (`MemberUpdate`) or by a change set.
async fn step<S: Store>(
    store: &S,
    group: &GroupId,
    kind: GroupKind,
    user: &str,
    joins: bool,
    by_changes: bool,
    at: u64,
) -> Option<Updated> {
    let change = if joins {
        MemberChange::Put(member(user, at))
    } else {
        MemberChange::Remove(uid(user))
    };
    if by_changes {
        let changes = Changes {
            members: vec![(group.clone(), change)],
            ..Changes::default()
        };
        store.commit(&changes).await.map_err(Into::into).unwrap();
        None
    } else {
        let u = update(group, change, at, kind);
        Some(store.update_member(&u).await.map_err(Into::into).unwrap())
    }
}

/// 150 joins and leaves in a group and a room, in an order that is not the
/// ids' (a small linear congruential walk over 40 users), through every
/// way a member is added or removed. After each, every page of the changed
/// one, 1, 7 and 1,000 at a time, is the memory store's; every tenth step,
/// the page of 5 after each id (member or not, and ids between members).
async fn member_pages_match_the_memory_store(url: &str) {
    let redis = open(url, &unique_prefix()).await;
    let memory = MemoryStore::new();
    let spaces = [(gid("g"), GroupKind::Group), (gid("r"), GroupKind::Room)];
    let ids: Vec<String> = (0..40).map(|n| format!("u{n:02}")).collect();
    let mut x: u64 = 7;
    for at in 1..=150u64 {
        x = (x * 1_103_515_245 + 12_345) % (1 << 31);
        let (group, kind) = &spaces[(x >> 8) as usize % 2];
        let user = &ids[(x >> 12) as usize % ids.len()];
        let joins = memory.member(group, &uid(user)).await.unwrap().is_none();
        let by_changes = (x >> 20).is_multiple_of(3);
        let a = step(&redis, group, *kind, user, joins, by_changes, at).await;
        let b = step(&memory, group, *kind, user, joins, by_changes, at).await;
        assert_eq!(a, b, "step {at}: {user} in {group}");
        for limit in [1, 7, 1000] {
            let want = pages(&memory, group, limit).await;
            assert_eq!(
                pages(&redis, group, limit).await,
                want,
                "step {at}, {limit} a page"
            );
        }
        if at.is_multiple_of(10) {
            for after in ids.iter().flat_map(|u| [u.clone(), format!("{u}a")]) {
                let after = Some(uid(&after));
                let want = memory
                    .members_after(group, after.as_ref(), 5)
                    .await
                    .unwrap();
                let got = redis.members_after(group, after.as_ref(), 5).await.unwrap();
                assert_eq!(got, want, "step {at}, after {after:?}");
            }
        }
    }
    let total: usize = pages(&memory, &gid("g"), 1000).await.concat().len()
        + pages(&memory, &gid("r"), 1000).await.concat().len();
    assert!(total > 10, "the walk leaves members to page: {total}");
}

#[tokio::test]
async fn member_pages_match_the_memory_store_on_one_redis() {
    member_pages_match_the_memory_store(&shared_url()).await;
}

#[tokio::test]
async fn member_pages_match_the_memory_store_on_a_cluster() {
    member_pages_match_the_memory_store(&shared_cluster_url()).await;
}

fn page_ids(page: &[Member]) -> Vec<String> {
    page.iter().map(|m| m.id.to_string()).collect()
}

/// A member written into the hash behind the store's back (raw `HSET`, no
/// index) is in a whole read and in no page; one removed from the hash
/// alone is still named by the index, and its page says the store is
/// damaged rather than skipping it.
async fn a_page_lists_the_ids_of_the_index(url: &str) {
    let store = open(url, &unique_prefix()).await;
    let r = gid("r");
    for (at, u) in [(1, "carol"), (2, "alice"), (3, "bob")] {
        let join = update(&r, MemberChange::Put(member(u, at)), at, GroupKind::Room);
        assert_eq!(store.update_member(&join).await.unwrap(), Updated::Changed);
    }
    let keys = store.shared.keys.clone();
    let mut c = store.shared.conn();
    let aaron = serde_json::to_string(&member("aaron", 4)).unwrap();
    let _: u64 = c.hset(keys.members(&r), "aaron", aaron).await.unwrap();
    assert_eq!(store.members(&r).await.unwrap().len(), 4);
    let page = store.members_after(&r, None, 10).await.unwrap();
    assert_eq!(page_ids(&page), ["alice", "bob", "carol"]);
    assert_eq!(page[0], member("alice", 2));

    let _: u64 = c.hdel(keys.members(&r), "bob").await.unwrap();
    let err = store.members_after(&r, None, 10).await.unwrap_err();
    assert!(matches!(err, Error::Corrupt(_)), "{err:?}");
    let after_bob = store.members_after(&r, Some(&uid("bob")), 10).await;
    assert_eq!(page_ids(&after_bob.unwrap()), ["carol"]);
}

#[tokio::test]
async fn a_page_lists_the_ids_of_the_index_on_one_redis() {
    a_page_lists_the_ids_of_the_index(&shared_url()).await;
}

#[tokio::test]
async fn a_page_lists_the_ids_of_the_index_on_a_cluster() {
    a_page_lists_the_ids_of_the_index(&shared_cluster_url()).await;
}
