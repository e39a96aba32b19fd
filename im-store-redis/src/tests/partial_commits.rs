//! Change sets stopped part way. On a cluster a change set is one script
//! per slot, and a commit stopped between them (a node lost, a crash)
//! leaves the earlier parts applied: running the operation again must
//! finish it.
//!
//! A block is written in two slots: the blocker's list and the direct
//! conversation's, which a send checks. Blocking again repairs a block
//! listed but not enforced.

use im_engine::{Actor, Body, ConversationId, Engine, Error, SendRequest, UserId};
use redis::AsyncCommands;

use super::{open, put_users};
use crate::keys::Keys;
use crate::testing::{shared_cluster_url, shared_url, unique_prefix};

fn me(s: &str) -> Actor {
    Actor::user(UserId::new(s).unwrap())
}

async fn bob_sends(engine: &Engine<crate::RedisStore>, dm: &ConversationId) -> Result<(), Error> {
    let body = Body::new(r#"{"text":"hi"}"#, 1024).unwrap();
    engine
        .send(&me("bob"), dm, SendRequest::new(body))
        .await
        .map(|_| ())
}

async fn blocking_again_repairs_a_half_written_block(url: &str) {
    let prefix = unique_prefix();
    let engine = Engine::new(open(url, &prefix).await);
    put_users(&engine, &["alice", "bob"]).await;
    let dm: ConversationId = "dm:alice:bob".parse().unwrap();
    let bob = UserId::new("bob").unwrap();
    engine.block(&me("alice"), &bob).await.unwrap();
    assert!(matches!(
        bob_sends(&engine, &dm).await,
        Err(Error::Blocked(_))
    ));
    let since = engine.blocks(&me("alice")).await.unwrap()[0].since;

    // What a commit stopped after the blocker's slot leaves: the block is
    // listed, and not where a send looks.
    let keys = Keys::new(&prefix).unwrap();
    let _: u64 = engine
        .store()
        .shared
        .conn()
        .hdel(keys.dm_blocks(&dm), "alice")
        .await
        .unwrap();
    bob_sends(&engine, &dm).await.unwrap();
    assert_eq!(engine.blocks(&me("alice")).await.unwrap().len(), 1);

    engine.block(&me("alice"), &bob).await.unwrap();
    assert!(matches!(
        bob_sends(&engine, &dm).await,
        Err(Error::Blocked(_))
    ));
    let blocks = engine.blocks(&me("alice")).await.unwrap();
    assert_eq!(
        blocks.iter().map(|b| b.since).collect::<Vec<_>>(),
        [since],
        "blocking again keeps the first since"
    );
}

#[tokio::test]
async fn blocking_again_repairs_a_half_written_block_on_one_redis() {
    blocking_again_repairs_a_half_written_block(&shared_url()).await;
}

#[tokio::test]
async fn blocking_again_repairs_a_half_written_block_on_a_cluster() {
    blocking_again_repairs_a_half_written_block(&shared_cluster_url()).await;
}

/// An erasure's last commit spans slots on a cluster. One stopped before
/// its end leaves the user there and suspended, so that erasing it again
/// finishes the work: the erased user's own record goes last but one, the
/// lifting of its suspension last.
#[tokio::test]
async fn an_erasure_stopped_part_way_on_a_cluster_runs_again() {
    let prefix = unique_prefix();
    let engine = Engine::new(open(&shared_cluster_url(), &prefix).await);
    put_users(&engine, &["alice", "bob"]).await;
    let (alice, bob) = (UserId::new("alice").unwrap(), UserId::new("bob").unwrap());
    engine.block(&me("alice"), &bob).await.unwrap();
    // The conversation's copy of alice's block, which the erasure removes
    // in a slot of its own, made a string: that part fails.
    let dm: ConversationId = "dm:alice:bob".parse().unwrap();
    let key = Keys::new(&prefix).unwrap().dm_blocks(&dm);
    let mut conn = engine.store().shared.conn();
    let _: () = conn.del(&key).await.unwrap();
    let _: () = conn.set(&key, "in the way").await.unwrap();

    let root = Actor::admin(UserId::new("root").unwrap());
    assert!(matches!(
        engine.erase(&root, &alice).await,
        Err(Error::Store(_))
    ));
    assert!(
        engine.user(&root, &alice).await.is_ok(),
        "alice is still there to be erased again"
    );
    assert!(engine.is_suspended(&alice), "and locked out meanwhile");

    let _: () = conn.del(&key).await.unwrap();
    engine.erase(&root, &alice).await.unwrap();
    assert!(engine.user(&root, &alice).await.is_err());
    assert!(!engine.is_suspended(&alice));
    engine.refresh_suspensions().await.unwrap();
    assert!(!engine.is_suspended(&alice), "the suspension went with her");
}
