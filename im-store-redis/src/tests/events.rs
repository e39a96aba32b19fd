//! The feed events the Lua scripts write are exactly serde's encoding of
//! `Event`, for every kind a script writes, so that what Rust decodes and
//! re-encodes is what Redis holds.

use im_engine::{Actor, Engine, Event, GroupId, JoinPolicy, SendRequest, UserId};
use redis::AsyncCommands;

use super::{open, put_users};
use crate::RedisStore;
use crate::keys::Keys;
use crate::testing::{shared_cluster_url, shared_url, unique_prefix};

fn uid(s: &str) -> UserId {
    UserId::new(s).unwrap()
}

async fn scripts_write_serdes_encoding(url: &str) {
    let prefix = unique_prefix();
    let engine: Engine<RedisStore> = Engine::new(open(url, &prefix).await);
    put_users(&engine, &["alice", "bob"]).await;
    let (alice, bob) = (Actor::user(uid("alice")), Actor::user(uid("bob")));
    let g = GroupId::new("g.1").unwrap();
    engine
        .put_group(&alice, &g, Default::default(), Some(JoinPolicy::Open))
        .await
        .unwrap();
    engine.join(&bob, &g, &uid("bob")).await.unwrap();
    let body = || im_engine::Body::new(r#"{"n":1}"#, 100).unwrap();
    for c in ["dm:alice:bob", "group:g.1"] {
        engine
            .send(&bob, &c.parse().unwrap(), SendRequest::new(body()))
            .await
            .unwrap();
    }
    engine
        .mark_read(&alice, &"group:g.1".parse().unwrap(), None)
        .await
        .unwrap();
    engine.leave(&bob, &g, &uid("bob")).await.unwrap();

    let keys = Keys::new(&prefix).unwrap();
    let mut kinds = Vec::new();
    for user in ["alice", "bob"] {
        let entries: Vec<(String, Vec<(String, String)>)> = engine
            .store()
            .shared
            .conn()
            .xrange_all(keys.feed(&uid(user)))
            .await
            .unwrap();
        for (_, fields) in entries {
            let (_, stored) = fields.iter().find(|(f, _)| f == "e").unwrap();
            let event: Event = serde_json::from_str(stored).unwrap();
            assert_eq!(
                stored,
                &serde_json::to_string(&event).unwrap(),
                "{user}'s feed holds an event as serde would not write it"
            );
            kinds.push(serde_json::to_value(&event).unwrap()["kind"].clone());
        }
    }
    for kind in ["message", "read", "member"] {
        assert!(kinds.contains(&kind.into()), "no {kind} event written");
    }
}

#[tokio::test]
async fn scripts_write_serdes_encoding_on_one_redis() {
    scripts_write_serdes_encoding(&shared_url()).await;
}

#[tokio::test]
async fn scripts_write_serdes_encoding_on_a_cluster() {
    scripts_write_serdes_encoding(&shared_cluster_url()).await;
}
