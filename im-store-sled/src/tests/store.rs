//! The store on its own: what is special to sled (versions, damage,
//! closing, big writes). The comparison with `MemoryStore` is in the
//! conformance suite (`im_engine::testing::comparison`).

use im_engine::store::{Changes, EntryChange, FeedTrim, Outgoing, Recipients, Sent};
use im_engine::{
    Body, ConvEntry, ConversationId, Event, MemoryStore, NewMessage, Store, StoreError, UserId,
};

use crate::{Durability, Error, SledConfig, SledStore};

pub(super) fn uid(s: &str) -> UserId {
    UserId::new(s).unwrap()
}

/// A store that remembers the holders of conversations of every size.
pub(super) fn open(dir: &tempfile::TempDir) -> SledStore {
    let store = SledStore::open(SledConfig::new(dir.path())).unwrap();
    store.writer().remember_every_conversation();
    store
}

fn outgoing(
    conv: &str,
    from: &str,
    recipients: &[&str],
    ts: u64,
    client_id: Option<&str>,
) -> Outgoing {
    Outgoing {
        message: NewMessage {
            conversation: conv.parse().unwrap(),
            from: uid(from),
            ts,
            body: Body::new(&format!(r#"{{"n":{ts}}}"#), 1024).unwrap(),
            client_id: client_id.map(str::to_owned),
            reply_to: None,
        },
        recipients: Recipients::Users(recipients.iter().map(|r| uid(r)).collect()),
        trim: FeedTrim::default(),
    }
}

#[tokio::test]
async fn a_repeated_client_id_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let first = outgoing("dm:alice:bob", "alice", &["alice", "bob"], 5, Some("x"));
    let Sent::New(m) = store.send(&first).await.unwrap() else {
        panic!("first send is new");
    };
    let again = outgoing("dm:alice:bob", "alice", &["alice", "bob"], 9, Some("x"));
    assert_eq!(
        store.send(&again).await.unwrap(),
        Sent::Duplicate(m.clone())
    );
    // The same id from the other participant is its own message.
    let other = outgoing("dm:alice:bob", "bob", &["alice", "bob"], 9, Some("x"));
    assert!(matches!(store.send(&other).await.unwrap(), Sent::New(m2) if m2.seq == 2));
    let conv = "dm:alice:bob".parse().unwrap();
    assert_eq!(store.last_seq(&conv).await.unwrap(), 2);
    assert_eq!(store.feed(&uid("alice"), 0, 10).await.unwrap().head, 2);
}

/// A send to more members than run inline takes the blocking pool, and
/// still lands whole.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_send_to_a_large_group_reaches_every_member() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let names: Vec<String> = (0..1500).map(|i| format!("m{i}")).collect();
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    for ts in 1..=2 {
        let out = outgoing("group:big", "m0", &refs, ts, None);
        assert!(matches!(store.send(&out).await.unwrap(), Sent::New(m) if m.seq == ts));
    }
    let conv: ConversationId = "group:big".parse().unwrap();
    for name in [&names[0], &names[777], &names[1499]] {
        let feed = store.feed(&uid(name), 0, 10).await.unwrap();
        assert_eq!(feed.head, 2);
        let entry = store.entry(&uid(name), &conv).await.unwrap().unwrap();
        assert_eq!(entry.activity, 2);
        assert_eq!(entry.read_seq, if name == "m0" { 2 } else { 0 });
    }
}

#[tokio::test]
async fn the_epoch_is_kept_and_a_new_directory_gets_a_new_one() {
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let first = open(&a);
    let epoch = first.epoch();
    assert_ne!(open(&b).epoch(), epoch);
    first.close().unwrap();
    assert_eq!(open(&a).epoch(), epoch);
}

#[tokio::test]
async fn another_format_version_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    open(&dir).close().unwrap();
    {
        let db = sled::open(dir.path()).unwrap();
        let meta = db.open_tree(crate::keys::tree::META).unwrap();
        meta.insert(crate::keys::meta::VERSION, &7u32.to_be_bytes()[..])
            .unwrap();
        db.flush().unwrap();
    }
    let err = loop {
        match SledStore::open(SledConfig::new(dir.path())) {
            Err(Error::Locked { .. }) => std::thread::sleep(std::time::Duration::from_millis(5)),
            Err(e) => break e,
            Ok(_) => panic!("opened a version 7 store"),
        }
    };
    assert!(matches!(
        StoreError::from(err),
        StoreError::UnsupportedVersion {
            found: 7,
            supported: crate::FORMAT_VERSION
        }
    ));
}

/// A value that cannot be decoded is an error, never "no data".
#[tokio::test]
async fn an_undecodable_value_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let records = &store.trees.records;
    records
        .insert(crate::keys::user(&uid("alice")), "not json")
        .unwrap();
    records
        .insert(crate::keys::user_conv(&uid("bob"), b"dm:alice:bob"), "x")
        .unwrap();
    assert!(matches!(
        store.user(&uid("alice")).await,
        Err(Error::Corrupt(_))
    ));
    assert!(matches!(
        store.entries(&uid("bob")).await,
        Err(Error::Corrupt(_))
    ));
    // The feed's keys say it holds positions 1 to 3, and 2 is not there.
    let event = crate::codec::event(
        1,
        &Event::Read {
            conversation: "dm:alice:bob".parse().unwrap(),
            seq: 0,
        },
    )
    .unwrap();
    for pos in [1, 3] {
        records
            .insert(crate::keys::user_pos(&uid("carol"), pos), &event[..])
            .unwrap();
    }
    assert!(matches!(
        store.feed(&uid("carol"), 0, 10).await,
        Err(Error::Corrupt(_))
    ));
    // An entry whose conversation keeps no state.
    let entry = crate::codec::Entry {
        read_seq: 0,
        activity: 1,
        since: 0,
    };
    records
        .insert(
            crate::keys::user_conv(&uid("carol"), b"group:g"),
            &entry.encode()[..],
        )
        .unwrap();
    assert!(matches!(
        store
            .entry(&uid("carol"), &"group:g".parse().unwrap())
            .await,
        Err(Error::Corrupt(_))
    ));
    let send = outgoing("dm:alice:bob", "alice", &["alice", "bob"], 1, None);
    assert!(matches!(store.send(&send).await, Err(Error::Corrupt(_))));
}

/// A damaged directory is an error on open, never a panic or an empty store.
#[test]
fn a_directory_with_garbage_files_is_refused() {
    for victim in ["db", "conf", "snap"] {
        let dir = tempfile::tempdir().unwrap();
        let rt = tokio::runtime::Runtime::new().unwrap();
        rt.block_on(async {
            let store = open(&dir);
            store
                .send(&outgoing(
                    "dm:alice:bob",
                    "alice",
                    &["alice", "bob"],
                    1,
                    None,
                ))
                .await
                .unwrap();
            store.close().unwrap();
        });
        let mut damaged = 0;
        for entry in std::fs::read_dir(dir.path()).unwrap() {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            if path.is_file() && name.starts_with(victim) {
                let len = std::fs::metadata(&path).unwrap().len() as usize;
                let garbage: Vec<u8> = (0..len.max(64)).map(|i| (i * 7 + 13) as u8).collect();
                std::fs::write(&path, garbage).unwrap();
                damaged += 1;
            }
        }
        if damaged == 0 {
            // sled writes a snapshot file only now and then.
            assert_eq!(victim, "snap", "no {victim} file to damage");
            continue;
        }
        let err = SledStore::open(SledConfig::new(dir.path())).expect_err(victim);
        let msg = err.to_string();
        eprintln!("{victim}: {msg}");
        assert!(
            matches!(
                err,
                Error::Corrupt(_) | Error::Open { .. } | Error::OpenPanicked { .. }
            ),
            "{victim}: {msg}"
        );
    }
}

#[tokio::test]
async fn periodic_durability_stores_the_same() {
    let dir = tempfile::tempdir().unwrap();
    let config = SledConfig::new(dir.path()).durability(Durability::Periodic { every_ms: 5 });
    let store = SledStore::open(config.clone()).unwrap();
    assert_eq!(store.durability(), Durability::Periodic { every_ms: 5 });
    let out = outgoing("dm:alice:bob", "alice", &["alice", "bob"], 1, None);
    assert!(matches!(store.send(&out).await.unwrap(), Sent::New(_)));
    store.flush().await.unwrap();
    store.ping().await.unwrap();
    store.close().unwrap();
    let store = SledStore::open(config).unwrap();
    let conv = "dm:alice:bob".parse().unwrap();
    assert_eq!(store.last_seq(&conv).await.unwrap(), 1);
}

/// `close` returns only when the directory can be opened again.
#[tokio::test]
async fn close_lets_the_directory_open_again_at_once() {
    let dir = tempfile::tempdir().unwrap();
    for ts in 1..=20 {
        let store = open(&dir);
        let out = outgoing("dm:alice:bob", "alice", &["alice", "bob"], ts, None);
        assert!(matches!(store.send(&out).await.unwrap(), Sent::New(m) if m.seq == ts));
        store.close().unwrap();
    }
}

/// The writer remembers who holds entries of a conversation; a leave and a
/// join in one change set keep their number but change who they are, and
/// the next send must see that (the activity of the one who joined stays
/// its own, the one who left gets a new entry).
#[tokio::test]
async fn entry_holders_are_followed_through_a_leave_and_a_join_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let sled = open(&dir);
    let memory = MemoryStore::new();
    let conv: ConversationId = "group:g".parse().unwrap();
    let put = |user: &str, ts| {
        (
            uid(user),
            EntryChange::Put(ConvEntry {
                conversation: conv.clone(),
                read_seq: 0,
                activity: ts,
            }),
        )
    };
    let first = Changes {
        entries: vec![put("a", 1), put("b", 1), put("c", 1)],
        ..Changes::default()
    };
    let swap = Changes {
        entries: vec![(uid("c"), EntryChange::Remove(conv.clone())), put("d", 3)],
        ..Changes::default()
    };
    let steps = [
        (Some(first), None),
        (
            None,
            Some(outgoing("group:g", "a", &["a", "b", "c"], 2, None)),
        ),
        (Some(swap), None),
        (
            None,
            Some(outgoing("group:g", "a", &["a", "b", "c"], 4, None)),
        ),
        (
            None,
            Some(outgoing("group:g", "b", &["a", "b", "c", "d"], 5, None)),
        ),
    ];
    for (i, (changes, send)) in steps.into_iter().enumerate() {
        if let Some(c) = changes {
            memory.commit(&c).await.unwrap();
            sled.commit(&c).await.unwrap();
        }
        if let Some(out) = send {
            assert_eq!(
                sled.send(&out).await.unwrap(),
                memory.send(&out).await.unwrap()
            );
        }
        for user in ["a", "b", "c", "d"].map(uid) {
            assert_eq!(
                sled.entries(&user).await.unwrap(),
                memory.entries(&user).await.unwrap(),
                "step {i}: {user}"
            );
        }
    }
}
