//! A direct message's recipient entry: on one Redis its activity goes into
//! a field of its own (`@<conv>`), written without reading the entry. What
//! the entry reads as must be what the engine's model says, through sends,
//! read cursors, puts and removals, on one Redis and on the cluster.

use im_engine::store::{Changes, EntryChange, FeedTrim, Outgoing, Recipients, Sent};
use im_engine::{Body, ConvEntry, ConversationId, NewMessage, Store, UserId};
use redis::AsyncCommands;

use super::open;
use crate::RedisStore;
use crate::keys::Keys;
use crate::testing::{shared_cluster_url, shared_url, unique_prefix};

fn uid(s: &str) -> UserId {
    UserId::new(s).unwrap()
}

async fn send(store: &RedisStore, dm: &ConversationId, ts: u64) -> u64 {
    let out = Outgoing {
        message: NewMessage {
            conversation: dm.clone(),
            from: uid("alice"),
            ts,
            body: Body::new(r#"{"t":1}"#, 1024).unwrap(),
            client_id: None,
            reply_to: None,
        },
        recipients: Recipients::Users(vec![uid("alice"), uid("bob")]),
        trim: FeedTrim::default(),
    };
    match store.send(&out).await.unwrap() {
        Sent::New(m) => m.seq,
        other => panic!("expected a new message, got {other:?}"),
    }
}

async fn change(store: &RedisStore, change: EntryChange) {
    let changes = Changes {
        entries: vec![(uid("bob"), change)],
        ..Changes::default()
    };
    store.commit(&changes).await.unwrap();
}

/// Bob's entry of `dm` as `(read_seq, activity)`, and how many entries
/// his list holds.
async fn bob(store: &RedisStore, dm: &ConversationId) -> (Option<(u64, u64)>, usize) {
    let one = store.entry(&uid("bob"), dm).await.unwrap();
    let all = store.entries(&uid("bob")).await.unwrap();
    let listed = all.iter().find(|e| &e.conversation == dm);
    assert_eq!(one.as_ref(), listed, "the entry and the list agree");
    (one.map(|e| (e.read_seq, e.activity)), all.len())
}

async fn recipient_entries_follow_the_model(url: &str) {
    let prefix = unique_prefix();
    let store = open(url, &prefix).await;
    let dm: ConversationId = "dm:alice:bob".parse().unwrap();

    assert_eq!(send(&store, &dm, 1000).await, 1);
    assert_eq!(
        bob(&store, &dm).await,
        (Some((0, 1000)), 1),
        "created unread"
    );
    let alice = store.entry(&uid("alice"), &dm).await.unwrap().unwrap();
    assert_eq!(
        (alice.read_seq, alice.activity),
        (1, 1000),
        "the sender read it"
    );

    change(
        &store,
        EntryChange::Read {
            conversation: dm.clone(),
            seq: 1,
        },
    )
    .await;
    assert_eq!(bob(&store, &dm).await, (Some((1, 1000)), 1));
    assert_eq!(send(&store, &dm, 2000).await, 2);
    assert_eq!(
        bob(&store, &dm).await,
        (Some((1, 2000)), 1),
        "the cursor stays"
    );
    if !store.shared.cluster() {
        let keys = Keys::new(&prefix).unwrap();
        let act: Option<String> = store
            .shared
            .conn()
            .hget(keys.entries(&uid("bob")), format!("@{dm}"))
            .await
            .unwrap();
        assert_eq!(act.as_deref(), Some("2000:2"), "written beside the entry");
    }

    // A put is newer than every send before it, whatever their seqs.
    let put = ConvEntry {
        conversation: dm.clone(),
        read_seq: 0,
        activity: 1500,
    };
    change(&store, EntryChange::Put(put)).await;
    assert_eq!(bob(&store, &dm).await, (Some((0, 1500)), 1));
    assert_eq!(send(&store, &dm, 3000).await, 3);
    assert_eq!(bob(&store, &dm).await, (Some((0, 3000)), 1));
    change(
        &store,
        EntryChange::Read {
            conversation: dm.clone(),
            seq: 3,
        },
    )
    .await;
    assert_eq!(bob(&store, &dm).await, (Some((3, 3000)), 1));

    // A removal takes both fields; the next send starts a fresh entry.
    change(&store, EntryChange::Remove(dm.clone())).await;
    assert_eq!(bob(&store, &dm).await, (None, 0));
    change(
        &store,
        EntryChange::Read {
            conversation: dm.clone(),
            seq: 3,
        },
    )
    .await;
    assert_eq!(bob(&store, &dm).await, (None, 0), "a read creates no entry");
    assert_eq!(send(&store, &dm, 4000).await, 4);
    assert_eq!(bob(&store, &dm).await, (Some((0, 4000)), 1));
}

#[tokio::test]
async fn recipient_entries_follow_the_model_on_one_redis() {
    recipient_entries_follow_the_model(&shared_url()).await;
}

#[tokio::test]
async fn recipient_entries_follow_the_model_on_a_cluster() {
    recipient_entries_follow_the_model(&shared_cluster_url()).await;
}
