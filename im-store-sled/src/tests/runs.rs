//! Combined writes and runs of feed events: what a batch of many writes
//! stores, read back exactly, trimmed, erased, and beside the single-event
//! keys older builds wrote.

use std::sync::Arc;

use im_engine::store::{Changes, FeedTrim, Outgoing, Recipients, Sent};
use im_engine::{Body, Event, Feed, MemoryStore, NewMessage, Store, UserId};

use super::store::{open, uid};
use crate::keys::{self, kind};
use crate::{Error, SledStore};

fn dm(conv: &str, from: &str, to: &str, ts: u64) -> Outgoing {
    Outgoing {
        message: NewMessage {
            conversation: conv.parse().unwrap(),
            from: uid(from),
            ts,
            body: Body::new("{}", 1024).unwrap(),
            client_id: None,
            reply_to: None,
        },
        recipients: Recipients::Users(vec![uid(from), uid(to)]),
        trim: FeedTrim::default(),
    }
}

/// How many keys `user`'s feed is stored in.
fn feed_keys(store: &SledStore, user: &str) -> usize {
    let prefix = keys::prefix(kind::USERPOS_EVENT, user);
    store.trees.records.scan_prefix(prefix).count()
}

/// Every page of `user`'s feed from every position, `limit` at a time,
/// must be the slice of the whole feed that follows it.
async fn check_pages(store: &impl Store, user: &UserId, whole: &Feed) {
    for after in 0..=whole.head + 1 {
        for limit in [1, 3, 64] {
            let page = store.feed(user, after, limit).await.unwrap();
            let want: Vec<_> = whole
                .entries
                .iter()
                .filter(|e| e.pos > after)
                .take(limit)
                .cloned()
                .collect();
            assert_eq!(page.entries, want, "{user} after {after}, {limit}");
            assert_eq!((page.trimmed, page.head), (whole.trimmed, whole.head));
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_sends_land_as_runs_and_read_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(open(&dir));
    let tasks: Vec<_> = (0..16u64)
        .map(|t| {
            let store = Arc::clone(&store);
            tokio::spawn(async move {
                for i in 0..20 {
                    let out = dm("dm:alice:bob", "alice", "bob", t * 100 + i);
                    assert!(matches!(store.send(&out).await.unwrap(), Sent::New(_)));
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    store.writer().check();
    let bob = uid("bob");
    let feed = store.feed(&bob, 0, usize::MAX).await.unwrap();
    assert_eq!((feed.trimmed, feed.head), (0, 320));
    let seqs: Vec<_> = feed.entries.iter().map(|e| (e.pos, &e.event)).collect();
    for (i, (pos, event)) in seqs.into_iter().enumerate() {
        let i = i as u64 + 1;
        assert_eq!(pos, i);
        assert!(matches!(event, Event::Message { seq, .. } if *seq == i));
    }
    // Writes combined: fewer keys than events.
    assert!(
        feed_keys(&store, "bob") < 320,
        "{}",
        feed_keys(&store, "bob")
    );
    check_pages(&*store, &bob, &feed).await;

    // And after a reopen (the log replayed, or sled's own copy).
    let store = Arc::into_inner(store).unwrap();
    tokio::task::spawn_blocking(move || store.close().unwrap())
        .await
        .unwrap();
    let store = open(&dir);
    assert_eq!(store.feed(&bob, 0, usize::MAX).await.unwrap(), feed);
}

/// A failed write among combined ones leaves no trace; the others land.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_write_in_a_combined_batch_drops_only_its_own() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(open(&dir));
    // Dave's entry of dm:carol:dave does not decode: a send there fails
    // once it has written its message.
    let bad = keys::user_conv(&uid("dave"), &keys::conv(&"dm:carol:dave".parse().unwrap()));
    store.trees.records.insert(&bad, &b"bad"[..]).unwrap();
    let tasks: Vec<_> = (0..40u64)
        .map(|i| {
            let store = Arc::clone(&store);
            tokio::spawn(async move {
                let out = if i % 2 == 0 {
                    dm("dm:alice:bob", "alice", "bob", i)
                } else {
                    dm("dm:carol:dave", "carol", "dave", i)
                };
                store.send(&out).await
            })
        })
        .collect();
    for (i, t) in tasks.into_iter().enumerate() {
        let sent = t.await.unwrap();
        if i % 2 == 0 {
            assert!(matches!(sent, Ok(Sent::New(_))), "{sent:?}");
        } else {
            assert!(matches!(sent, Err(Error::Corrupt(_))), "{sent:?}");
        }
    }
    store.trees.records.remove(&bad).unwrap();
    store.writer().check();
    let bob = store.feed(&uid("bob"), 0, 100).await.unwrap();
    assert_eq!(bob.head, 20);
    for user in ["carol", "dave"] {
        assert_eq!(store.feed(&uid(user), 0, 100).await.unwrap().head, 0);
        assert_eq!(feed_keys(&store, user), 0);
    }
    let conv = "dm:alice:bob".parse().unwrap();
    assert_eq!(store.last_seq(&conv).await.unwrap(), 20);
    let conv = "dm:carol:dave".parse().unwrap();
    assert_eq!(store.last_seq(&conv).await.unwrap(), 0);
    // Not even the message the failed sends wrote before failing.
    let message = keys::conv_seq(&keys::conv(&conv), 1);
    assert_eq!(store.trees.records.get(message).unwrap(), None);
}

fn read(conv: &str, seq: u64) -> Event {
    Event::Read {
        conversation: conv.parse().unwrap(),
        seq,
    }
}

/// One change set of `n` events for each of `users`, at `ts`.
fn events(users: &[&UserId], n: u64, ts: u64, trim: FeedTrim) -> Changes {
    let events = (0..n).flat_map(|i| {
        users
            .iter()
            .map(move |u| ((*u).clone(), ts + i, read("dm:alice:bob", ts + i)))
    });
    Changes {
        events: events.collect(),
        trim,
        ..Changes::default()
    }
}

/// Runs written by one change set, cut by trims by count and by age, and
/// erased, read as the memory store reads the same steps.
#[tokio::test]
async fn runs_are_trimmed_and_erased_like_single_events() {
    let dir = tempfile::tempdir().unwrap();
    let sled = open(&dir);
    let memory = MemoryStore::new();
    let (carol, dave) = (uid("carol"), uid("dave"));
    let all = FeedTrim::default();
    let keep = |keep| FeedTrim { keep, min_ts: 0 };
    let age = |min_ts| FeedTrim {
        keep: u64::MAX,
        min_ts,
    };
    let mut erase = Changes::default();
    erase.erase.push(dave.clone());
    let steps = [
        events(&[&carol, &dave], 10, 100, all),
        // A trim by count cuts the first run: its remainder is rewritten.
        events(&[&carol], 1, 200, keep(7)),
        events(&[&carol, &dave], 5, 300, keep(9)),
        // By age: the oldest event left is at 104.
        events(&[&carol], 2, 400, age(106)),
        events(&[&dave], 3, 500, age(303)),
        // Everything older than the new events: the feed keeps only them.
        events(&[&carol], 3, 600, age(600)),
        events(&[&carol], 2, 700, keep(0)),
        erase,
        events(&[&dave], 4, 800, all),
    ];
    for (i, step) in steps.iter().enumerate() {
        sled.commit(step).await.unwrap();
        memory.commit(step).await.unwrap();
        sled.writer().check();
        for user in [&carol, &dave] {
            let want = memory.feed(user, 0, usize::MAX).await.unwrap();
            let got = sled.feed(user, 0, usize::MAX).await.unwrap();
            assert_eq!(got, want, "{user} after step {i}");
            check_pages(&sled, user, &got).await;
        }
    }
    // Dave's last four events are one key; carol's feed holds none.
    assert_eq!(feed_keys(&sled, "dave"), 1);
    assert_eq!(feed_keys(&sled, "carol"), 0);
}

/// Feeds of single-event keys, as older builds wrote them, read on, and
/// take runs after them.
#[tokio::test]
async fn single_event_keys_of_older_builds_read_beside_runs() {
    let dir = tempfile::tempdir().unwrap();
    let sled = open(&dir);
    let memory = MemoryStore::new();
    let erin = uid("erin");
    let old = Changes {
        events: (1..=3)
            .map(|i| (erin.clone(), i, read("dm:a:b", i)))
            .collect(),
        ..Changes::default()
    };
    memory.commit(&old).await.unwrap();
    for (pos, (_, ts, event)) in (1..).zip(&old.events) {
        let value = crate::codec::event(*ts, event).unwrap();
        sled.trees
            .records
            .insert(keys::user_pos(&erin, pos), value)
            .unwrap();
    }
    let steps = [
        events(&[&erin], 4, 10, FeedTrim::default()),
        events(&[&erin], 2, 20, FeedTrim { keep: 4, min_ts: 0 }),
    ];
    for step in &steps {
        sled.commit(step).await.unwrap();
        memory.commit(step).await.unwrap();
        let want = memory.feed(&erin, 0, usize::MAX).await.unwrap();
        let got = sled.feed(&erin, 0, usize::MAX).await.unwrap();
        assert_eq!(got, want);
        check_pages(&sled, &erin, &got).await;
    }
    sled.writer().check();
}

#[test]
fn runs_round_trip_and_damaged_ones_are_refused() {
    use crate::codec::{event, feed_events, feed_len, feed_value};
    let events: Vec<Vec<u8>> = (1..=3)
        .map(|i| event(i, &read("dm:a:b", i)).unwrap())
        .collect();
    let refs: Vec<&[u8]> = events.iter().map(Vec::as_slice).collect();
    // One event is stored as older builds stored it.
    assert_eq!(feed_value(&refs[..1]), events[0]);
    assert_eq!(feed_events(&events[0]).unwrap(), &refs[..1]);
    let run = feed_value(&refs);
    assert_eq!(feed_len(&run).unwrap(), 3);
    assert_eq!(feed_events(&run).unwrap(), refs);
    assert_eq!(crate::codec::event_ts(&run).unwrap(), 1);
    for cut in 9..run.len() {
        assert!(
            matches!(feed_events(&run[..cut]), Err(Error::Corrupt(_))),
            "{cut}"
        );
    }
    let mut long = run.clone();
    long.push(0);
    assert!(matches!(feed_events(&long), Err(Error::Corrupt(_))));
    let mut one = run[..13].to_vec();
    one[12] = 1;
    assert!(matches!(feed_events(&one), Err(Error::Corrupt(_))));
}
