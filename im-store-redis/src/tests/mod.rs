//! The conformance suite against a real single redis-server and a real
//! 3-master cluster (one each per test binary, a key prefix per test), and
//! the Redis-specific tests.

use im_engine::testing::StoreFactory;
use im_engine::{GroupId, Member, Store};

use crate::testing::{shared_cluster_url, shared_url, unique_prefix};
use crate::{RedisConfig, RedisStore};

/// Opens a store on `url` under `prefix`.
pub(crate) async fn open(url: &str, prefix: &str) -> RedisStore {
    RedisStore::open(RedisConfig::new(url).prefix(prefix))
        .await
        .unwrap_or_else(|e| panic!("open a redis store on {url}: {e:?}"))
}

/// Creates these users through `engine`, as an admin.
pub(crate) async fn put_users(engine: &im_engine::Engine<RedisStore>, ids: &[&str]) {
    let root = im_engine::Actor::admin(im_engine::UserId::new("root").unwrap());
    for u in ids {
        engine
            .put_user(
                &root,
                &im_engine::UserId::new(*u).unwrap(),
                Default::default(),
            )
            .await
            .unwrap();
    }
}

/// Every page of `group`'s members, `limit` at a time, from the start.
pub(crate) async fn pages<S: Store>(store: &S, group: &GroupId, limit: usize) -> Vec<Vec<Member>> {
    let mut out = Vec::new();
    let mut after = None;
    loop {
        let page = store
            .members_after(group, after.as_ref(), limit)
            .await
            .map_err(Into::into)
            .unwrap_or_else(|e: im_engine::StoreError| panic!("a page of {group}: {e}"));
        match page.last() {
            Some(last) => after = Some(last.id.clone()),
            None => return out,
        }
        out.push(page);
    }
}

/// Fresh stores on the shared single server.
pub(crate) struct SingleFactory;

impl StoreFactory for SingleFactory {
    type Store = RedisStore;
    type Data = (String, String);

    async fn open() -> (RedisStore, (String, String)) {
        let (url, prefix) = (shared_url(), unique_prefix());
        (open(&url, &prefix).await, (url, prefix))
    }

    async fn reopen(store: RedisStore, (url, prefix): &(String, String)) -> RedisStore {
        drop(store);
        open(url, prefix).await
    }
}

/// Fresh stores on the shared cluster.
pub(crate) struct ClusterFactory;

impl StoreFactory for ClusterFactory {
    type Store = RedisStore;
    type Data = (String, String);

    async fn open() -> (RedisStore, (String, String)) {
        let (url, prefix) = (shared_cluster_url(), unique_prefix());
        (open(&url, &prefix).await, (url, prefix))
    }

    async fn reopen(store: RedisStore, (url, prefix): &(String, String)) -> RedisStore {
        drop(store);
        open(url, prefix).await
    }
}

#[cfg(not(im_skip_redis))]
mod single {
    im_engine::store_conformance_tests!(super::SingleFactory);
}

#[cfg(not(im_skip_redis))]
mod cluster {
    im_engine::store_conformance_tests!(super::ClusterFactory);
}

#[cfg(not(im_skip_redis))]
mod dm_entries;

#[cfg(not(im_skip_redis))]
mod events;

#[cfg(not(im_skip_redis))]
mod fan_out;

#[cfg(not(im_skip_redis))]
mod members;

#[cfg(not(im_skip_redis))]
mod migrate;

#[cfg(not(im_skip_redis))]
mod migrate_members;

#[cfg(not(im_skip_redis))]
mod migrate_streams;

#[cfg(not(im_skip_redis))]
mod partial_commits;

#[cfg(not(im_skip_redis))]
mod store;
