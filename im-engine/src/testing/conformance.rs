//! The conformance cases: one behaviour each, generic over the store, run
//! through the engine as users would see it.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use super::StoreFactory;
pub use super::hook_cases::{
    a_refused_send_stores_nothing_and_answers_the_hooks_code,
    a_rewritten_body_is_what_history_shows,
    a_send_hook_out_of_time_refuses_or_allows_as_configured,
    after_commit_never_delays_a_send_and_hears_each_event_once,
};
use super::state_machine::ManualClock;
use crate::data::{Epoch, Membership};
use crate::feed::{Cursor, EventData, ResetReason, Start};
use crate::{
    Actor, Body, Command, Config, ConversationId, Engine, ErrorKind, GroupId, HistoryQuery,
    JoinPolicy, Limits, Message, Outcome, Retention, Role, SendRequest, Store, UserId,
};

pub(crate) fn uid(s: &str) -> UserId {
    UserId::new(s).expect("valid test id")
}

pub(crate) fn gid(s: &str) -> GroupId {
    GroupId::new(s).expect("valid test id")
}

pub(crate) fn conv(s: &str) -> ConversationId {
    s.parse().expect("valid test conversation")
}

pub(crate) fn body(n: usize) -> Body {
    Body::new(&format!(r#"{{"n":{n}}}"#), 1024).expect("valid test body")
}

pub(crate) fn me(s: &str) -> Actor {
    Actor::user(uid(s))
}

pub(crate) fn root() -> Actor {
    Actor::admin(uid("root"))
}

/// The first page of a list, as large as it may be.
pub(super) fn all() -> crate::ListQuery {
    crate::ListQuery::first(crate::LIST_PAGE_MAX)
}

/// A store from `F` under an engine with `config` and a manual clock at 1,
/// with users alice, bob and carol.
pub(super) async fn fixture_with<F: StoreFactory>(
    config: Config,
) -> (Engine<F::Store>, F::Data, Arc<ManualClock>) {
    let (store, data) = F::open().await;
    let clock = Arc::new(ManualClock::default());
    clock.set(1);
    let engine = Engine::with_clock(store, config, clock.clone());
    for u in ["alice", "bob", "carol"] {
        engine
            .put_user(&root(), &uid(u), Default::default())
            .await
            .expect("admin creates users");
    }
    (engine, data, clock)
}

/// The configuration of the cases: a user goes offline 20 ms after its
/// last stream closes.
fn config() -> Config {
    Config {
        presence_grace: Duration::from_millis(20),
        ..Config::default()
    }
}

pub(super) async fn fixture<F: StoreFactory>() -> (Engine<F::Store>, F::Data) {
    let (engine, data, _) = fixture_with::<F>(config()).await;
    (engine, data)
}

pub(super) async fn send<S: Store>(engine: &Engine<S>, from: &str, c: &str, n: usize) -> Message {
    engine
        .send(&me(from), &conv(c), SendRequest::new(body(n)))
        .await
        .expect("send succeeds")
        .0
}

fn seqs(messages: &[Message]) -> Vec<u64> {
    messages.iter().map(|m| m.seq).collect()
}

pub(crate) fn kind<T: std::fmt::Debug>(r: Result<T, crate::Error>) -> ErrorKind {
    r.expect_err("expected an error").kind()
}

/// All message events in `user`'s feed, as (conversation, seq).
pub(crate) async fn feed_messages<S: Store>(engine: &Engine<S>, user: &str) -> Vec<(String, u64)> {
    let poll = engine
        .feed(&me(user), Start::Oldest, 100_000)
        .await
        .expect("feed reads");
    poll.events
        .into_iter()
        .filter_map(|e| match e.data {
            EventData::Message(m) => Some((m.conversation.to_string(), m.seq)),
            _ => None,
        })
        .collect()
}

/// Only admins create users; a user merges its own fields; nobody else's.
pub async fn users_are_created_by_admins_and_merged<F: StoreFactory>() {
    let (engine, _data) = fixture::<F>().await;
    let fields = |pairs: &[(&str, Option<&str>)]| -> crate::FieldPatch {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.map(String::from)))
            .collect()
    };
    assert_eq!(
        kind(
            engine
                .put_user(&me("dave"), &uid("dave"), fields(&[]))
                .await
        ),
        ErrorKind::Forbidden
    );
    assert_eq!(
        kind(engine.user(&root(), &uid("dave")).await),
        ErrorKind::NotFound
    );

    let (p, created) = engine
        .put_user(&root(), &uid("dave"), fields(&[("name", Some("Dave"))]))
        .await
        .unwrap();
    assert!(created);
    assert_eq!(p.fields.get("name").map(String::as_str), Some("Dave"));

    let patch = fields(&[("bio", Some("hi")), ("name", None)]);
    let (p, created) = engine
        .put_user(&me("dave"), &uid("dave"), patch)
        .await
        .unwrap();
    assert!(!created);
    assert_eq!(
        p.fields,
        BTreeMap::from([("bio".to_string(), "hi".to_string())])
    );

    assert_eq!(
        kind(engine.put_user(&me("bob"), &uid("dave"), fields(&[])).await),
        ErrorKind::Forbidden
    );
    let too_long = "x".repeat(engine.config().limits.field_bytes + 1);
    let bad = fields(&[("bio", Some(&too_long))]);
    assert_eq!(
        kind(engine.put_user(&me("dave"), &uid("dave"), bad).await),
        ErrorKind::Invalid
    );
    assert_eq!(
        engine
            .user(&root(), &uid("dave"))
            .await
            .unwrap()
            .fields
            .get("bio")
            .map(String::as_str),
        Some("hi")
    );
}

/// A direct conversation numbers messages 1, 2, 3 … and pages both ways.
pub async fn direct_messages_are_numbered_and_paged<F: StoreFactory>() {
    let (engine, _data) = fixture::<F>().await;
    for n in 1..=7 {
        let from = if n % 2 == 0 { "bob" } else { "alice" };
        let m = send(&engine, from, "dm:bob:alice", n).await;
        assert_eq!(
            (m.seq, m.conversation.to_string()),
            (n as u64, "dm:alice:bob".to_string())
        );
    }
    let alice = me("alice");
    let c = conv("dm:alice:bob");
    let page = |before, after, limit| HistoryQuery {
        before,
        after,
        limit,
    };
    let h = engine
        .history(&alice, &c, page(None, None, Some(3)))
        .await
        .unwrap();
    assert_eq!((seqs(&h.messages), h.has_more), (vec![5, 6, 7], true));
    let h = engine
        .history(&alice, &c, page(Some(5), None, Some(3)))
        .await
        .unwrap();
    assert_eq!((seqs(&h.messages), h.has_more), (vec![2, 3, 4], true));
    let h = engine
        .history(&alice, &c, page(Some(2), None, Some(3)))
        .await
        .unwrap();
    assert_eq!((seqs(&h.messages), h.has_more), (vec![1], false));
    let h = engine
        .history(&alice, &c, page(None, Some(0), Some(3)))
        .await
        .unwrap();
    assert_eq!((seqs(&h.messages), h.has_more), (vec![1, 2, 3], true));
    let h = engine
        .history(&alice, &c, page(None, Some(5), None))
        .await
        .unwrap();
    assert_eq!((seqs(&h.messages), h.has_more), (vec![6, 7], false));
    assert_eq!(
        kind(
            engine
                .history(&alice, &c, page(Some(3), Some(1), None))
                .await
        ),
        ErrorKind::Invalid
    );
    assert_eq!(
        kind(engine.history(&alice, &c, page(None, None, Some(0))).await),
        ErrorKind::Invalid
    );

    let m = engine.message(&me("bob"), &c, 4).await.unwrap();
    assert_eq!(
        (m.from.as_str(), m.body.as_ref().unwrap().get()),
        ("bob", r#"{"n":4}"#)
    );
    assert_eq!(
        kind(engine.message(&alice, &c, 8).await),
        ErrorKind::NotFound
    );

    let carol = me("carol");
    assert_eq!(
        kind(engine.history(&carol, &c, HistoryQuery::default()).await),
        ErrorKind::Forbidden
    );
    assert_eq!(
        kind(engine.message(&carol, &c, 1).await),
        ErrorKind::Forbidden
    );
    assert_eq!(
        kind(engine.send(&carol, &c, SendRequest::new(body(0))).await),
        ErrorKind::Forbidden
    );
    assert_eq!(
        kind(
            engine
                .send(&alice, &conv("dm:alice:nobody"), SendRequest::new(body(0)))
                .await
        ),
        ErrorKind::NotFound
    );
    // An admin reads any conversation, and sends as a participant.
    assert_eq!(
        engine
            .history(&root(), &c, HistoryQuery::default())
            .await
            .unwrap()
            .messages
            .len(),
        7
    );
    let as_bob = SendRequest {
        from: Some(uid("bob")),
        ..SendRequest::new(body(8))
    };
    assert_eq!(
        engine
            .send(&root(), &c, as_bob.clone())
            .await
            .unwrap()
            .0
            .from
            .as_str(),
        "bob"
    );
    assert_eq!(
        kind(engine.send(&alice, &c, as_bob).await),
        ErrorKind::Forbidden
    );
}

/// A repeated `client_id` answers the original message and stores nothing.
pub async fn client_id_makes_sends_idempotent<F: StoreFactory>() {
    let (engine, _data) = fixture::<F>().await;
    let c = conv("dm:alice:bob");
    let req = |n, id: &str| SendRequest {
        client_id: Some(id.into()),
        ..SendRequest::new(body(n))
    };
    let (first, new) = engine.send(&me("alice"), &c, req(1, "k1")).await.unwrap();
    assert!(new);
    let (again, new) = engine.send(&me("alice"), &c, req(2, "k1")).await.unwrap();
    assert!(!new);
    assert_eq!(again, first);
    let (other, new) = engine.send(&me("bob"), &c, req(3, "k1")).await.unwrap();
    assert!(new, "another sender's client_id is its own");
    assert_eq!(other.seq, 2);
    let elsewhere = engine
        .send(&me("alice"), &conv("dm:alice:carol"), req(4, "k1"))
        .await
        .unwrap();
    assert_eq!((elsewhere.0.seq, elsewhere.1), (1, true));
    assert_eq!(
        engine
            .history(&me("alice"), &c, HistoryQuery::default())
            .await
            .unwrap()
            .messages
            .len(),
        2
    );
    assert_eq!(
        feed_messages(&engine, "bob").await.len(),
        2,
        "a repeat appends no event"
    );
    let long = "k".repeat(65);
    assert_eq!(
        kind(engine.send(&me("alice"), &c, req(5, &long)).await),
        ErrorKind::Invalid
    );
}

/// Invite-only and open groups, owner powers, and the owner staying.
pub async fn group_policy_and_owner_rules<F: StoreFactory>() {
    let config = Config {
        limits: Limits {
            group_members: 3,
            ..Limits::default()
        },
        ..config()
    };
    let (engine, _data, _) = fixture_with::<F>(config).await;
    let g = gid("g");
    let (view, created) = engine
        .put_group(&me("alice"), &g, Default::default(), None)
        .await
        .unwrap();
    assert!(created);
    assert_eq!(
        (view.owner.as_str(), view.join, view.members),
        ("alice", JoinPolicy::Invite, 1)
    );
    assert_eq!(
        kind(engine.join(&me("bob"), &g, &uid("bob")).await),
        ErrorKind::Forbidden
    );
    engine.join(&me("alice"), &g, &uid("bob")).await.unwrap();
    engine.join(&me("alice"), &g, &uid("bob")).await.unwrap();
    assert_eq!(
        kind(engine.join(&me("bob"), &g, &uid("carol")).await),
        ErrorKind::Forbidden
    );
    let members = engine.members(&me("bob"), &g, &all()).await.unwrap();
    let roles: Vec<_> = members
        .items
        .iter()
        .map(|m| (m.id.as_str(), m.role))
        .collect();
    assert_eq!(roles, [("alice", Role::Owner), ("bob", Role::Member)]);
    assert_eq!(
        kind(engine.members(&me("carol"), &g, &all()).await),
        ErrorKind::Forbidden
    );
    assert_eq!(
        kind(
            engine
                .put_group(&me("bob"), &g, Default::default(), None)
                .await
        ),
        ErrorKind::Forbidden
    );

    assert_eq!(
        kind(engine.leave(&me("alice"), &g, &uid("alice")).await),
        ErrorKind::Conflict
    );
    assert_eq!(
        kind(engine.leave(&root(), &g, &uid("alice")).await),
        ErrorKind::Conflict
    );
    assert_eq!(
        kind(engine.leave(&me("carol"), &g, &uid("bob")).await),
        ErrorKind::Forbidden
    );
    send(&engine, "bob", "group:g", 1).await;
    engine.leave(&me("bob"), &g, &uid("bob")).await.unwrap();
    engine.leave(&me("bob"), &g, &uid("bob")).await.unwrap();
    let c = conv("group:g");
    assert_eq!(
        kind(
            engine
                .history(&me("bob"), &c, HistoryQuery::default())
                .await
        ),
        ErrorKind::Forbidden
    );
    assert_eq!(
        kind(engine.send(&me("bob"), &c, SendRequest::new(body(2))).await),
        ErrorKind::Forbidden
    );

    engine
        .put_group(&me("alice"), &g, Default::default(), Some(JoinPolicy::Open))
        .await
        .unwrap();
    engine.join(&me("carol"), &g, &uid("carol")).await.unwrap();
    engine.join(&me("bob"), &g, &uid("bob")).await.unwrap();
    engine
        .put_user(&root(), &uid("dave"), Default::default())
        .await
        .unwrap();
    assert_eq!(
        kind(engine.join(&me("dave"), &g, &uid("dave")).await),
        ErrorKind::Conflict,
        "the group is full"
    );
    assert_eq!(engine.group(&root(), &g).await.unwrap().members, 3);
    assert_eq!(
        kind(engine.join(&me("alice"), &gid("nope"), &uid("bob")).await),
        ErrorKind::NotFound
    );
}

/// Unread is the count of others' messages after the read cursor, which only
/// moves forward; sending moves the sender's own cursor.
pub async fn unread_counts_follow_read_cursors<F: StoreFactory>() {
    let (engine, _data) = fixture::<F>().await;
    let c = conv("dm:alice:bob");
    for n in 1..=3 {
        send(&engine, "bob", "dm:alice:bob", n).await;
    }
    let unread = |list: Vec<crate::ConversationView>| {
        list.iter()
            .map(|v| (v.unread, v.read_seq))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        unread(engine.conversations(&me("alice"), None).await.unwrap()),
        [(3, 0)]
    );
    assert_eq!(
        unread(engine.conversations(&me("bob"), None).await.unwrap()),
        [(0, 3)]
    );
    let r = engine.mark_read(&me("alice"), &c, Some(2)).await.unwrap();
    assert_eq!((r.read_seq, r.unread), (2, 1));
    let r = engine.mark_read(&me("alice"), &c, Some(1)).await.unwrap();
    assert_eq!((r.read_seq, r.unread), (2, 1), "a cursor never moves back");
    assert_eq!(
        kind(engine.mark_read(&me("alice"), &c, Some(4)).await),
        ErrorKind::Invalid
    );
    assert_eq!(
        kind(engine.mark_read(&me("carol"), &c, None).await),
        ErrorKind::Forbidden
    );
    send(&engine, "alice", "dm:alice:bob", 4).await;
    assert_eq!(
        unread(engine.conversations(&me("alice"), None).await.unwrap()),
        [(0, 4)]
    );
    assert_eq!(
        unread(engine.conversations(&me("bob"), None).await.unwrap()),
        [(1, 3)]
    );
    let r = engine.mark_read(&me("bob"), &c, None).await.unwrap();
    assert_eq!((r.read_seq, r.unread), (4, 0));
    let feed = engine.feed(&me("bob"), Start::Oldest, 100).await.unwrap();
    let last = feed.events.last().map(|e| e.data.clone());
    assert_eq!(
        last,
        Some(EventData::Read {
            conversation: c,
            seq: 4
        })
    );
}

/// The conversation list puts the most recent activity first.
pub async fn conversation_list_is_ordered_by_activity<F: StoreFactory>() {
    let (engine, _data, clock) = fixture_with::<F>(config()).await;
    clock.set(10);
    send(&engine, "bob", "dm:alice:bob", 1).await;
    clock.set(20);
    engine
        .put_group(&me("carol"), &gid("g"), Default::default(), None)
        .await
        .unwrap();
    engine
        .join(&me("carol"), &gid("g"), &uid("alice"))
        .await
        .unwrap();
    clock.set(30);
    send(&engine, "carol", "dm:alice:carol", 2).await;
    let order = |list: Vec<crate::ConversationView>| {
        list.into_iter()
            .map(|v| (v.id.to_string(), v.with))
            .collect::<Vec<_>>()
    };
    let expect = |ids: [&str; 3]| {
        ids.map(|i| (i.to_string(), conv(i).with(&uid("alice")).to_string()))
            .to_vec()
    };
    let list = engine.conversations(&me("alice"), None).await.unwrap();
    assert_eq!(list[1].last, None, "a group with no message yet");
    assert_eq!(
        order(list),
        expect(["dm:alice:carol", "group:g", "dm:alice:bob"])
    );
    clock.set(40);
    send(&engine, "alice", "dm:alice:bob", 3).await;
    let list = engine.conversations(&me("alice"), Some(2)).await.unwrap();
    assert_eq!(list[0].last.as_ref().map(|m| m.seq), Some(2));
    assert_eq!(
        order(list),
        expect(["dm:alice:bob", "dm:alice:carol", "group:g"])[..2]
    );
}

/// Each participant's feed holds each message once, and member changes.
pub async fn feeds_reference_each_message_once<F: StoreFactory>() {
    let (engine, _data) = fixture::<F>().await;
    let g = gid("g");
    engine
        .put_group(&me("alice"), &g, Default::default(), None)
        .await
        .unwrap();
    engine.join(&me("alice"), &g, &uid("bob")).await.unwrap();
    for n in 1..=5 {
        send(
            &engine,
            if n % 2 == 0 { "alice" } else { "bob" },
            "group:g",
            n,
        )
        .await;
    }
    let expect: Vec<_> = (1..=5).map(|s| ("group:g".to_string(), s)).collect();
    assert_eq!(feed_messages(&engine, "alice").await, expect);
    assert_eq!(feed_messages(&engine, "bob").await, expect);
    assert_eq!(feed_messages(&engine, "carol").await, []);
    let bob = engine.feed(&me("bob"), Start::Oldest, 1).await.unwrap();
    let joined = EventData::Member {
        group: g,
        user: uid("bob"),
        change: crate::Membership::Joined,
    };
    assert_eq!(bob.events.first().map(|e| &e.data), Some(&joined));
}

/// A cursor from another store, from the future, or before what is kept
/// starts over with a reset; never a silent skip.
pub async fn cursors_from_other_stores_or_trimmed_feeds_reset<F: StoreFactory>() {
    let config = Config {
        retention: Retention {
            events: Some(3),
            age: None,
        },
        ..config()
    };
    let (engine, _data, _) = fixture_with::<F>(config).await;
    for n in 1..=6 {
        send(&engine, "alice", "dm:alice:bob", n).await;
    }
    let epoch = engine.store().epoch();
    let bob = me("bob");
    let at = |epoch, pos| Start::After(Cursor { epoch, pos });
    let read = |start| {
        let engine = engine.clone();
        let bob = bob.clone();
        async move {
            let poll = engine.feed(&bob, start, 100).await.unwrap();
            poll.events
                .into_iter()
                .map(|e| (e.cursor.pos, e.data))
                .collect::<Vec<_>>()
        }
    };
    let kept: Vec<_> = read(Start::Oldest).await;
    assert_eq!(kept.iter().map(|(p, _)| *p).collect::<Vec<_>>(), [4, 5, 6]);
    let reset = |reason| (3, EventData::Reset { reason });
    let mut expired = vec![reset(ResetReason::Expired)];
    expired.extend(kept.clone());
    assert_eq!(read(at(epoch, 1)).await, expired);
    let mut unknown = vec![reset(ResetReason::Unknown)];
    unknown.extend(kept.clone());
    assert_eq!(read(at(Epoch(epoch.0 ^ 1), 5)).await, unknown);
    assert_eq!(read(at(epoch, 99)).await, unknown);
    assert_eq!(
        read(at(epoch, 3)).await,
        kept,
        "the cursor of the last trimmed event is still good"
    );
    assert_eq!(read(at(epoch, 6)).await, []);
    assert_eq!(read(Start::Live).await, []);
    for bad in [
        "",
        "x",
        "00-1",
        "0123456789abcdef-",
        "0123456789abcdef-1x",
        "0123456789abcdeg-1",
    ] {
        assert_eq!(kind(bad.parse::<Start>()), ErrorKind::Invalid, "{bad:?}");
    }
}

/// Events older than the retention age are dropped from a feed when it
/// grows, and a cursor into them gets an `expired` reset.
pub async fn feeds_drop_events_older_than_the_retention_age<F: StoreFactory>() {
    let retention = Retention {
        events: None,
        age: Some(Duration::from_millis(100)),
    };
    let (engine, _data, clock) = fixture_with::<F>(Config {
        retention,
        ..config()
    })
    .await;
    clock.set(1_000);
    let old = send(&engine, "alice", "dm:alice:bob", 1).await;
    let bob = me("bob");
    let cursor = engine.feed(&bob, Start::Oldest, 10).await.unwrap().events[0].cursor;
    clock.set(1_050);
    send(&engine, "alice", "dm:alice:bob", 2).await;
    let kept = engine.feed(&bob, Start::Oldest, 10).await.unwrap();
    assert_eq!(kept.events.len(), 2, "50 ms old is within the retention");
    clock.set(1_200);
    send(&engine, "alice", "dm:alice:bob", 3).await;
    let kept: Vec<_> = engine.feed(&bob, Start::Oldest, 10).await.unwrap().events;
    let kept_seqs: Vec<_> = kept
        .iter()
        .filter_map(|e| match &e.data {
            EventData::Message(m) => Some(m.seq),
            _ => None,
        })
        .collect();
    assert_eq!(kept_seqs, [3], "events older than 100 ms are gone");
    let resumed = engine
        .feed(
            &bob,
            Start::After(Cursor {
                pos: cursor.pos - 1,
                ..cursor
            }),
            10,
        )
        .await
        .unwrap();
    assert_eq!(
        resumed.events[0].data,
        EventData::Reset {
            reason: ResetReason::Expired
        }
    );
    let history = engine
        .history(&me("bob"), &old.conversation, HistoryQuery::default())
        .await
        .unwrap();
    assert_eq!(
        history.messages.len(),
        3,
        "retention trims feeds, never history"
    );
}

/// Many tasks sending to one conversation get 1..N, and every participant's
/// feed has each message once.
pub async fn concurrent_sends_get_dense_seqs<F: StoreFactory>() {
    let (engine, _data) = fixture::<F>().await;
    let g = gid("g");
    engine
        .put_group(&me("alice"), &g, Default::default(), Some(JoinPolicy::Open))
        .await
        .unwrap();
    for u in ["bob", "carol"] {
        engine.join(&me(u), &g, &uid(u)).await.unwrap();
    }
    let (tasks, each) = (8, 20);
    let mut handles = Vec::new();
    for t in 0..tasks {
        let engine = engine.clone();
        handles.push(tokio::spawn(async move {
            let from = ["alice", "bob", "carol"][t % 3];
            let mut got = Vec::new();
            for n in 0..each {
                got.push(send(&engine, from, "group:g", t * 1000 + n).await.seq);
                got.push(
                    send(&engine, "alice", "dm:alice:bob", t * 1000 + n)
                        .await
                        .seq,
                );
            }
            got
        }));
    }
    let mut all = Vec::new();
    for h in handles {
        all.extend(h.await.expect("sender task"));
    }
    let n = (tasks * each) as u64;
    all.sort_unstable();
    let expect: Vec<u64> = (1..=n).flat_map(|s| [s, s]).collect();
    assert_eq!(all, expect, "each conversation numbered 1..{n} once");
    let query = HistoryQuery {
        after: Some(0),
        limit: Some(500),
        ..Default::default()
    };
    let history = engine
        .history(&root(), &conv("group:g"), query)
        .await
        .unwrap();
    assert_eq!(seqs(&history.messages), (1..=n).collect::<Vec<_>>());
    for u in ["alice", "bob", "carol"] {
        let mut group_seqs: Vec<_> = feed_messages(&engine, u)
            .await
            .into_iter()
            .filter(|(c, _)| c == "group:g")
            .map(|(_, s)| s)
            .collect();
        group_seqs.sort_unstable();
        assert_eq!(
            group_seqs,
            (1..=n).collect::<Vec<_>>(),
            "{u}'s feed holds each group message once"
        );
    }
    for u in ["alice", "bob", "carol"] {
        for c in engine.conversations(&me(u), None).await.unwrap() {
            let query = HistoryQuery {
                after: Some(0),
                limit: Some(500),
                ..Default::default()
            };
            let log = engine
                .history(&root(), &c.id, query)
                .await
                .unwrap()
                .messages;
            let own_last = log
                .iter()
                .filter(|m| m.from.as_str() == u)
                .map(|m| m.seq)
                .max()
                .unwrap_or(0);
            let others_after = log
                .iter()
                .filter(|m| m.seq > c.read_seq && m.from.as_str() != u)
                .count() as u64;
            assert!(
                c.read_seq >= own_last,
                "{u}'s cursor in {} is before its own last send",
                c.id
            );
            assert_eq!(
                c.unread, others_after,
                "{u}'s unread in {} disagrees with the log",
                c.id
            );
        }
    }
}

/// Contacts linked within one millisecond list newest first, in the order
/// they were linked, not by id; a contact linked again keeps its place.
pub async fn contacts_linked_in_one_millisecond_list_newest_first<F: StoreFactory>() {
    let (engine, _data) = fixture::<F>().await;
    engine
        .put_user(&root(), &uid("aaron"), Default::default())
        .await
        .unwrap();
    for u in ["carol", "bob", "aaron", "bob"] {
        engine.link(&me("alice"), &uid(u)).await.unwrap();
    }
    let ids = |list: Vec<crate::ContactView>| -> Vec<String> {
        list.into_iter().map(|c| c.id.to_string()).collect()
    };
    let list = engine.contacts(&me("alice"), &all()).await.unwrap().items;
    assert_eq!(ids(list), ["aaron", "bob", "carol"]);
    engine.unlink(&me("alice"), &uid("carol")).await.unwrap();
    engine.link(&me("alice"), &uid("carol")).await.unwrap();
    let list = engine.contacts(&me("alice"), &all()).await.unwrap().items;
    assert_eq!(ids(list), ["carol", "aaron", "bob"]);
}

/// After a delete the old body is in no answer, no event and no store
/// read: history, one message, the conversation list, every feed replayed
/// from its oldest event (the recent-message cache included: the message
/// was just delivered), and the store's own reads. A repeated send with its
/// `client_id` answers the deleted message.
pub async fn a_deleted_body_is_nowhere<F: StoreFactory>() {
    let (engine, _data) = fixture::<F>().await;
    let dm = conv("dm:alice:bob");
    let secret = Body::new(r#"{"secret":"7c1f"}"#, 1024).expect("valid test body");
    let mut request = SendRequest::new(secret.clone());
    request.client_id = Some("k".into());
    let (m, _) = engine
        .send(&me("alice"), &dm, request.clone())
        .await
        .unwrap();
    // Delivered once, so that the recent-message cache holds it.
    let _ = engine.feed(&me("bob"), Start::Oldest, 100).await.unwrap();
    engine
        .react(&me("bob"), &dm, m.seq, "ok", true)
        .await
        .unwrap();
    let deleted = engine.delete(&me("alice"), &dm, m.seq).await.unwrap();
    assert_eq!((deleted.body.as_ref(), deleted.deleted_at), (None, Some(1)));
    assert!(deleted.reactions.is_empty());
    let (again, new) = engine.send(&me("alice"), &dm, request).await.unwrap();
    assert_eq!((again, new), (deleted.clone(), false));

    let mut seen = Vec::new();
    for u in ["alice", "bob"] {
        let page = engine.feed(&me(u), Start::Oldest, 100).await.unwrap();
        seen.push(format!("{page:?}"));
        let list = engine.conversations(&me(u), None).await.unwrap();
        seen.push(format!("{list:?}"));
        let history = engine
            .history(&me(u), &dm, HistoryQuery::default())
            .await
            .unwrap();
        seen.push(format!("{history:?}"));
        seen.push(format!(
            "{:?}",
            engine.message(&me(u), &dm, m.seq).await.unwrap()
        ));
    }
    let stored = engine.store().messages(&dm, 0, u64::MAX).await.unwrap();
    seen.push(format!("{stored:?}"));
    for s in seen {
        assert!(!s.contains("7c1f"), "the deleted body is still there: {s}");
    }
    assert_eq!(stored, [deleted]);
}

/// One group event as a feed shows it: a message's seq, or a membership
/// change.
#[derive(Debug, Clone, PartialEq, Eq)]
enum GroupEvent {
    Message(u64),
    Member(String, Membership),
}

/// The events of group `g` in `user`'s feed, in feed order.
async fn group_events<S: Store>(engine: &Engine<S>, user: &str, g: &str) -> Vec<GroupEvent> {
    let poll = engine
        .feed(&me(user), Start::Oldest, 100_000)
        .await
        .expect("feed reads");
    poll.events
        .into_iter()
        .filter_map(|e| match e.data {
            EventData::Message(m) if m.conversation == conv(&format!("group:{g}")) => {
                Some(GroupEvent::Message(m.seq))
            }
            EventData::Member {
                group,
                user,
                change,
            } if group.as_str() == g => Some(GroupEvent::Member(user.to_string(), change)),
            _ => None,
        })
        .collect()
}

/// Sends race joins and removals, and each member's feed holds exactly the
/// messages committed while it was a member, with its own `member` events
/// in the same order as the messages around them; a removed member's
/// conversation list stops at its removal.
///
/// The owner is a member throughout, so its feed is the order in which
/// everything committed: every other user's feed must be that order seen
/// by that user (messages while a member; a join by everyone after it, a
/// leave by everyone before it).
pub async fn membership_changes_are_ordered_with_sends<F: StoreFactory>() {
    let (engine, _data) = fixture::<F>().await;
    for u in ["dave", "erin"] {
        engine
            .put_user(&root(), &uid(u), Default::default())
            .await
            .unwrap();
    }
    let g = gid("g");
    engine
        .put_group(&me("alice"), &g, Default::default(), Some(JoinPolicy::Open))
        .await
        .unwrap();
    for u in ["bob", "carol", "dave"] {
        engine.join(&me(u), &g, &uid(u)).await.unwrap();
    }
    let (senders, each, rounds) = (3, 60, 40);
    let mut handles = Vec::new();
    for t in 0..senders {
        let engine = engine.clone();
        handles.push(tokio::spawn(async move {
            let from = ["alice", "bob", "carol"][t];
            for n in 0..each {
                send(&engine, from, "group:g", t * 1000 + n).await;
            }
        }));
    }
    let churn = {
        let engine = engine.clone();
        let g = g.clone();
        tokio::spawn(async move {
            for _ in 0..rounds {
                // The owner removes dave and adds him back; erin comes and goes.
                engine.leave(&me("alice"), &g, &uid("dave")).await.unwrap();
                engine.join(&me("erin"), &g, &uid("erin")).await.unwrap();
                engine.join(&me("alice"), &g, &uid("dave")).await.unwrap();
                engine.leave(&me("erin"), &g, &uid("erin")).await.unwrap();
            }
            engine.leave(&me("alice"), &g, &uid("dave")).await.unwrap();
            engine.join(&me("erin"), &g, &uid("erin")).await.unwrap();
        })
    };
    for h in handles {
        h.await.expect("sender task");
    }
    churn.await.expect("membership task");
    // Acknowledged after dave's last removal: never his.
    let last = send(&engine, "bob", "group:g", 9999).await;

    let order = group_events(&engine, "alice", "g").await;
    let messages = order
        .iter()
        .filter(|e| matches!(e, GroupEvent::Message(_)))
        .count();
    assert_eq!(
        messages as u64, last.seq,
        "the owner's feed has every message"
    );
    for user in ["bob", "carol", "dave", "erin"] {
        let mut member = false;
        let mut expected = Vec::new();
        for e in &order {
            match e {
                GroupEvent::Message(_) if member => expected.push(e.clone()),
                GroupEvent::Message(_) => {}
                GroupEvent::Member(who, change) => {
                    let joined = *change == Membership::Joined;
                    if who == user {
                        member = joined;
                        expected.push(e.clone());
                    } else if member {
                        expected.push(e.clone());
                    }
                }
            }
        }
        assert_eq!(
            group_events(&engine, user, "g").await,
            expected,
            "{user}'s feed is the commit order as {user} saw it"
        );
    }
    let lists = |u: &'static str| {
        let engine = engine.clone();
        async move {
            engine
                .conversations(&me(u), None)
                .await
                .unwrap()
                .into_iter()
                .find(|c| c.id == conv("group:g"))
        }
    };
    assert_eq!(
        lists("dave").await,
        None,
        "a removed member's list drops the group"
    );
    let erin = lists("erin").await.expect("erin is a member");
    let since_join = order
        .iter()
        .rev()
        .take_while(|e| **e != GroupEvent::Member("erin".into(), Membership::Joined))
        .filter(|e| matches!(e, GroupEvent::Message(_)))
        .count();
    assert_eq!(
        (erin.unread, erin.last.map(|m| m.seq)),
        (since_join as u64, Some(last.seq)),
        "erin's unread counts the messages since her last join"
    );
}

/// A stream from a cursor replays what it missed and follows new sends with
/// no gap and no duplicate however they race.
pub async fn live_stream_switches_from_replay_without_gap<F: StoreFactory>() {
    let (engine, _data) = fixture::<F>().await;
    for n in 1..=3 {
        send(&engine, "alice", "dm:alice:bob", n).await;
    }
    let total = 60;
    let stream = engine.events(&me("bob"), Start::Oldest).await.unwrap();
    let live = engine.events(&me("bob"), Start::Live).await.unwrap();
    assert!(
        engine.user(&root(), &uid("bob")).await.unwrap().online,
        "an open stream makes its user online"
    );
    let sender = {
        let engine = engine.clone();
        tokio::spawn(async move {
            for n in 4..=total {
                send(&engine, "alice", "dm:alice:bob", n).await;
            }
        })
    };
    let got = super::subscription::take(stream, total).await;
    let want: Vec<u64> = (1..=total as u64).collect();
    let got_seqs: Vec<u64> = got
        .iter()
        .map(|d| match &d.data {
            EventData::Message(m) => m.seq,
            other => panic!("unexpected {other:?}"),
        })
        .collect();
    assert_eq!(got_seqs, want);
    sender.await.expect("sender");
    let live = super::subscription::take(live, total - 3).await;
    assert!(!live.is_empty());
    let first = live.first().map(|d| d.cursor.pos).unwrap_or_default();
    let positions: Vec<u64> = live.iter().map(|d| d.cursor.pos).collect();
    assert_eq!(
        positions,
        (first..first + live.len() as u64).collect::<Vec<_>>(),
        "live events are contiguous"
    );
    drop(got);
    // Presence goes offline once every stream is gone (recorded by a task).
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let p = engine.presence(&root(), &uid("bob")).await.unwrap();
        if !p.online {
            assert!(p.last_seen.is_some());
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "bob stays online after his streams closed"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// A block and a ban are decided at the commit, like membership: senders
/// racing a block see their direct messages refused from the block's
/// commit on, so the conversation does not grow after the block was
/// acknowledged; a user racing to rejoin an open group is never a member
/// after the ban was acknowledged.
pub async fn blocks_and_bans_are_decided_at_the_commit<F: StoreFactory>() {
    let (engine, _data) = fixture::<F>().await;
    let dm = conv("dm:alice:bob");
    let mut senders = Vec::new();
    for t in 0..3 {
        let engine = engine.clone();
        let dm = dm.clone();
        senders.push(tokio::spawn(async move {
            // Bounded, so that a store that never refuses fails the test
            // rather than hanging it.
            for n in 0..20_000 {
                let sent = engine
                    .send(&me("alice"), &dm, SendRequest::new(body(t * 100_000 + n)))
                    .await;
                match sent {
                    Ok(_) => tokio::task::yield_now().await,
                    Err(crate::Error::Blocked(_)) => return,
                    Err(e) => panic!("send failed: {e}"),
                }
            }
        }));
    }
    // Let some through first.
    while engine.store().last_seq(&dm).await.unwrap() < 10 {
        tokio::task::yield_now().await;
    }
    engine.block(&me("bob"), &uid("alice")).await.unwrap();
    let at_block = engine.store().last_seq(&dm).await.unwrap();
    for s in senders {
        s.await.expect("sender task");
    }
    assert_eq!(
        engine.store().last_seq(&dm).await.unwrap(),
        at_block,
        "a direct message committed after the block was acknowledged"
    );

    let g = gid("g");
    engine
        .put_group(&me("alice"), &g, Default::default(), Some(JoinPolicy::Open))
        .await
        .unwrap();
    let churn = {
        let engine = engine.clone();
        let g = g.clone();
        tokio::spawn(async move {
            for _ in 0..5_000 {
                match engine.join(&me("carol"), &g, &uid("carol")).await {
                    Ok(_) => {}
                    Err(crate::Error::Banned(_)) => return,
                    Err(e) => panic!("join failed: {e}"),
                }
                engine.leave(&me("carol"), &g, &uid("carol")).await.unwrap();
            }
        })
    };
    while engine
        .store()
        .member(&g, &uid("carol"))
        .await
        .unwrap()
        .is_none()
    {
        tokio::task::yield_now().await;
    }
    engine.ban(&me("alice"), &g, &uid("carol")).await.unwrap();
    churn.await.expect("join task");
    assert!(
        engine
            .store()
            .member(&g, &uid("carol"))
            .await
            .unwrap()
            .is_none(),
        "a banned user joined after its ban was acknowledged"
    );
    assert_eq!(
        kind(engine.join(&me("alice"), &g, &uid("carol")).await),
        ErrorKind::Forbidden
    );
}

/// Every kind of state reads back the same after the store is reopened.
pub async fn everything_survives_reopen<F: StoreFactory>() {
    let (engine, data, clock) = fixture_with::<F>(config()).await;
    let g = gid("g");
    let name: crate::FieldPatch = [("name".to_string(), Some("Alice".to_string()))].into();
    let script = [
        (
            me("alice"),
            Command::PutUser {
                id: uid("alice"),
                fields: name,
            },
        ),
        (me("alice"), Command::Link { id: uid("bob") }),
        (
            me("alice"),
            Command::PutGroup {
                id: g.clone(),
                fields: Default::default(),
                join: Some(JoinPolicy::Open),
                owner: None,
            },
        ),
        (
            me("bob"),
            Command::Join {
                group: g.clone(),
                user: uid("bob"),
            },
        ),
        (
            me("carol"),
            Command::Join {
                group: g.clone(),
                user: uid("carol"),
            },
        ),
        (
            me("carol"),
            Command::Leave {
                group: g.clone(),
                user: uid("carol"),
            },
        ),
        (
            me("bob"),
            Command::Send {
                conversation: conv("group:g"),
                request: SendRequest {
                    client_id: Some("c1".into()),
                    ..SendRequest::new(body(1))
                },
            },
        ),
        (
            me("alice"),
            Command::Send {
                conversation: conv("dm:alice:bob"),
                request: SendRequest::new(body(2)),
            },
        ),
        (
            me("bob"),
            Command::MarkRead {
                conversation: conv("dm:alice:bob"),
                seq: None,
            },
        ),
    ];
    for (actor, command) in script {
        clock.set(clock.now_plus(1));
        engine
            .execute(&actor, command)
            .await
            .expect("script step succeeds");
    }
    let stream = engine.events(&me("carol"), Start::Live).await.unwrap();
    drop(stream);
    tokio::time::sleep(Duration::from_millis(50)).await;

    let reads = |u: &str| {
        let a = me(u);
        [
            (a.clone(), Command::User { id: a.user.clone() }),
            (a.clone(), Command::Contacts { query: all() }),
            (a.clone(), Command::Group { id: g.clone() }),
            (
                root(),
                Command::Members {
                    id: g.clone(),
                    query: all(),
                },
            ),
            (
                a.clone(),
                Command::Conversations {
                    query: crate::ListQuery::default(),
                },
            ),
            (
                a.clone(),
                Command::Feed {
                    start: Start::Oldest,
                    limit: 100,
                },
            ),
            (
                root(),
                Command::History {
                    conversation: conv("group:g"),
                    query: HistoryQuery::default(),
                },
            ),
            (
                root(),
                Command::History {
                    conversation: conv("dm:alice:bob"),
                    query: HistoryQuery::default(),
                },
            ),
        ]
    };
    let mut before = Vec::new();
    for u in ["alice", "bob", "carol"] {
        for (actor, command) in reads(u) {
            before.push(
                engine
                    .execute(&actor, command)
                    .await
                    .expect("read succeeds"),
            );
        }
    }
    let epoch = engine.store().epoch();
    let store = engine.try_into_store().expect("last engine handle");
    let store = F::reopen(store, &data).await;
    assert_eq!(
        store.epoch(),
        epoch,
        "the epoch is kept, so old cursors stay good"
    );
    let engine = Engine::with_clock(store, Config::default(), clock.clone());
    let mut after = Vec::new();
    for u in ["alice", "bob", "carol"] {
        for (actor, command) in reads(u) {
            after.push(
                engine
                    .execute(&actor, command)
                    .await
                    .expect("read succeeds"),
            );
        }
    }
    assert_eq!(after, before);
    assert!(matches!(&after[0], Outcome::Profile(p, _) if p.fields.contains_key("name")));
    let repeat = SendRequest {
        client_id: Some("c1".into()),
        ..SendRequest::new(body(9))
    };
    let (m, new) = engine
        .send(&me("bob"), &conv("group:g"), repeat)
        .await
        .unwrap();
    assert_eq!((m.seq, new), (1, false), "client ids survive reopen");
    assert_eq!(
        send(&engine, "alice", "group:g", 3).await.seq,
        2,
        "numbering continues"
    );
}

/// An erased user's suspension goes with it: a new user of that id may act.
pub async fn an_erased_users_suspension_goes_with_it<F: StoreFactory>() {
    let (engine, _data) = fixture::<F>().await;
    engine.suspend(&root(), &uid("carol"), true).await.unwrap();
    engine.erase(&root(), &uid("carol")).await.unwrap();
    engine
        .put_user(&root(), &uid("carol"), Default::default())
        .await
        .unwrap();
    let list = engine.execute(&me("carol"), Command::Blocks).await;
    assert!(list.is_ok(), "the new carol is refused: {list:?}");
}
