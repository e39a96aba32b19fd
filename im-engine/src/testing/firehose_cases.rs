//! The firehose cases of the conformance suite: every stored event once,
//! resumable, for admins only, kept across a reopen with the webhook's
//! acknowledged cursor.

use std::time::Duration;

use futures_util::StreamExt;

use super::StoreFactory;
use super::conformance::{body, conv, fixture, fixture_with, gid, me, root, send, uid};
use crate::data::{Epoch, Membership};
use crate::feed::{EventData, ResetReason};
use crate::firehose::{FireCursor, FireStart};
use crate::{Config, ErrorKind, Store};

/// What a firehose page shows: each event's name, its feed's user for an
/// event of one user, and its conversation and seq when it has them.
fn names(page: &crate::FirePage) -> Vec<String> {
    page.events
        .iter()
        .map(|e| {
            let mut s = e.data.name().to_owned();
            if let Some(u) = &e.user {
                s += &format!(" {u}");
            }
            if let EventData::Message(m) | EventData::Edit(m) = &e.data {
                s += &format!(" {}#{}", m.conversation, m.seq);
            }
            s
        })
        .collect()
}

/// A group of three, a direct conversation, an edit, a reaction, a delete,
/// a read, a contact and a leave: each is in the firehose once (a group's
/// message once, not once per member), in commit order, with the message
/// as it now is; a cursor resumes after its event; only an admin reads it.
pub async fn the_firehose_holds_each_event_once<F: StoreFactory>() {
    let (engine, _data, clock) = fixture_with::<F>(Config::default()).await;
    // One millisecond per write: a store whose firehose has partitions
    // orders them by time (see `Engine::firehose`).
    let mut now = 1;
    let mut tick = move || {
        now += 1;
        clock.set(now);
    };
    let g = gid("g");
    let alice = me("alice");
    tick();
    engine
        .put_group(&alice, &g, Default::default(), None)
        .await
        .expect("group");
    for u in ["bob", "carol"] {
        tick();
        engine.join(&alice, &g, &uid(u)).await.expect("join");
    }
    tick();
    send(&engine, "alice", "group:g", 1).await;
    tick();
    send(&engine, "bob", "dm:alice:bob", 2).await;
    let c = conv("group:g");
    tick();
    engine.edit(&alice, &c, 1, body(3)).await.expect("edit");
    tick();
    engine
        .react(&me("bob"), &c, 1, "ok", true)
        .await
        .expect("react");
    tick();
    engine
        .delete(&me("bob"), &conv("dm:alice:bob"), 1)
        .await
        .expect("delete");
    tick();
    engine
        .mark_read(&me("carol"), &c, Some(1))
        .await
        .expect("read");
    tick();
    engine.link(&me("carol"), &uid("bob")).await.expect("link");
    tick();
    engine
        .leave(&alice, &g, &uid("carol"))
        .await
        .expect("leave");

    let all = engine
        .firehose(&root(), FireStart::Oldest, Some(100))
        .await
        .expect("the firehose reads");
    let want = [
        "member",
        "member",
        "member",
        "message group:g#1",
        "message dm:alice:bob#1",
        "edit group:g#1",
        "reaction",
        "delete",
        "read carol",
        "contact bob",
        "member",
    ];
    assert_eq!(names(&all), want);
    // The message as it now is: edited, with its reaction.
    let EventData::Message(m) = &all.events[3].data else {
        panic!("a message: {:?}", all.events[3]);
    };
    assert_eq!(m.body, Some(body(3)));
    assert_eq!(m.reactions.len(), 1);
    assert_eq!(all.events.last().map(|e| &e.cursor), Some(&all.next));
    let EventData::Member { user, change, .. } = &all.events[10].data else {
        panic!("a member event");
    };
    assert_eq!((user, *change), (&uid("carol"), Membership::Left));
    let json = all.events[8].data_json(&uid("root"));
    assert_eq!(json["feed"], "carol", "{json}");
    assert_eq!(json["seq"], 1, "{json}");

    // Resuming after the fifth event gives the rest; a page is a page.
    let after = FireStart::After(all.events[4].cursor.clone());
    let rest = engine
        .firehose(&root(), after, Some(100))
        .await
        .expect("reads");
    assert_eq!(names(&rest), want[5..]);
    let first = engine
        .firehose(&root(), FireStart::Oldest, Some(2))
        .await
        .expect("reads");
    assert_eq!(names(&first), want[..2]);
    let next = FireStart::After(first.next.clone());
    let second = engine
        .firehose(&root(), next, Some(2))
        .await
        .expect("reads");
    assert_eq!(names(&second), want[2..4]);
    // Live starts after everything there.
    let live = engine
        .firehose(&root(), FireStart::Live, None)
        .await
        .expect("reads");
    assert!(live.events.is_empty());
    assert_eq!(live.next, all.next);

    // Another store's cursor, or one past the head, resets to the start.
    for c in [
        FireCursor {
            epoch: Epoch(engine.store().epoch().0 ^ 1),
            ..all.next.clone()
        },
        FireCursor {
            pos: all.next.pos.iter().map(|p| p + 1000).collect(),
            ..all.next.clone()
        },
        FireCursor {
            pos: vec![0; all.next.pos.len() + 1],
            ..all.next.clone()
        },
    ] {
        let page = engine
            .firehose(&root(), FireStart::After(c), Some(100))
            .await
            .expect("reads");
        assert_eq!(
            page.events[0].data,
            EventData::Reset {
                reason: ResetReason::Unknown
            }
        );
        assert_eq!(page.events.len(), want.len() + 1);
    }

    // Nobody but an admin reads it, or streams it.
    let denied = engine.firehose(&alice, FireStart::Oldest, None).await;
    assert_eq!(denied.map(|_| ()).unwrap_err().kind(), ErrorKind::Forbidden);
    let denied = engine.fire_events(&alice, FireStart::Oldest).await;
    assert_eq!(denied.map(|_| ()).unwrap_err().kind(), ErrorKind::Forbidden);
}

/// The live firehose replays from its cursor, then hears of new events as
/// they commit; a long poll answers as soon as one lands.
pub async fn the_live_firehose_hears_new_events<F: StoreFactory>() {
    let (engine, _data) = fixture::<F>().await;
    send(&engine, "alice", "dm:alice:bob", 1).await;
    let stream = engine
        .fire_events(&root(), FireStart::Oldest)
        .await
        .expect("admin streams");
    let mut stream = std::pin::pin!(stream);
    let poll = {
        let engine = engine.clone();
        tokio::spawn(async move {
            engine
                .fire_poll(&root(), FireStart::Live, Duration::from_secs(10), None)
                .await
        })
    };
    let seq = |e: &crate::FireDelivered| match &e.data {
        EventData::Message(m) => m.seq,
        other => panic!("a message: {other:?}"),
    };
    let first = stream.next().await.expect("an event").expect("no error");
    assert_eq!(seq(&first), 1);
    tokio::time::sleep(Duration::from_millis(50)).await;
    send(&engine, "bob", "dm:alice:bob", 2).await;
    let second = tokio::time::timeout(Duration::from_secs(5), stream.next())
        .await
        .expect("the stream hears of it")
        .expect("an event")
        .expect("no error");
    assert_eq!(seq(&second), 2);
    let page = poll.await.expect("joins").expect("polls");
    assert_eq!(page.events.iter().map(seq).collect::<Vec<_>>(), [2]);
}

/// The firehose and the acknowledged cursors are store state: both are
/// there after a reopen, and the firehose goes on from where it was.
pub async fn the_firehose_and_acks_survive_reopen<F: StoreFactory>() {
    let (store, data) = F::open().await;
    let engine = crate::Engine::new(store);
    for u in ["alice", "bob"] {
        engine
            .put_user(&root(), &uid(u), Default::default())
            .await
            .expect("user");
    }
    send(&engine, "alice", "dm:alice:bob", 1).await;
    let before = engine
        .firehose(&root(), FireStart::Oldest, None)
        .await
        .expect("reads");
    let store = engine.store();
    assert_eq!(
        store
            .acked("hook")
            .await
            .map_err(Into::into)
            .expect("reads"),
        None
    );
    let cursor = before.next.to_string();
    store
        .set_acked("hook", &cursor)
        .await
        .map_err(Into::into)
        .expect("stores");
    let store = engine.try_into_store().expect("the only handle");
    let store = F::reopen(store, &data).await;
    let acked = store
        .acked("hook")
        .await
        .map_err(Into::into)
        .expect("reads");
    assert_eq!(acked.as_deref(), Some(cursor.as_str()));
    let engine = crate::Engine::new(store);
    let after = engine
        .firehose(&root(), FireStart::Oldest, None)
        .await
        .expect("reads");
    assert_eq!(after.events, before.events);
    send(&engine, "bob", "dm:alice:bob", 2).await;
    let start = FireStart::After(cursor.parse().expect("a cursor"));
    let new = engine.firehose(&root(), start, None).await.expect("reads");
    assert_eq!(new.events.len(), 1, "{new:?}");
}
