//! The store on its own: the same writes as `MemoryStore` read back the same,
//! and what is special to sled (versions, damage, closing, big writes).

use im_engine::store::{
    Changes, ContactChange, EntryChange, FeedTrim, MemberChange, Outgoing, Recipients, Sent,
};
use im_engine::{
    Body, Contact, ConvEntry, ConversationId, Event, Group, GroupId, JoinPolicy, Member,
    Membership, MemoryStore, NewMessage, Role, Store, StoreError, User, UserId,
};

use crate::{Durability, Error, SledConfig, SledStore};

fn uid(s: &str) -> UserId {
    UserId::new(s).unwrap()
}

fn gid(s: &str) -> GroupId {
    GroupId::new(s).unwrap()
}

fn open(dir: &tempfile::TempDir) -> SledStore {
    SledStore::open(SledConfig::new(dir.path())).unwrap()
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
        },
        recipients: Recipients::Users(recipients.iter().map(|r| uid(r)).collect()),
        trim: FeedTrim::default(),
    }
}

/// A small deterministic generator, so a failure replays.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        // xorshift64*
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len() as u64) as usize]
    }
}

const USERS: [&str; 4] = ["al", "alice", "bob", "carol"];
const CONVS: [&str; 4] = ["dm:al:alice", "dm:alice:bob", "group:g", "group:h"];

fn participants(conv: &str) -> Vec<&'static str> {
    match conv {
        "dm:al:alice" => vec!["al", "alice"],
        "dm:alice:bob" => vec!["alice", "bob"],
        _ => USERS.to_vec(),
    }
}

fn random_trim(rng: &mut Rng, now: u64) -> FeedTrim {
    FeedTrim {
        keep: rng.pick(&[u64::MAX, u64::MAX, 6, 3, 1, 0]),
        min_ts: if rng.below(4) == 0 {
            now.saturating_sub(rng.below(20))
        } else {
            0
        },
    }
}

fn random_send(rng: &mut Rng, now: u64) -> Outgoing {
    let conv = rng.pick(&CONVS);
    let everyone = participants(conv);
    let from = rng.pick(&everyone);
    // Groups: the sender and some of the others, sometimes with a repeat.
    let mut recipients: Vec<&str> = everyone
        .iter()
        .copied()
        .filter(|u| *u == from || !conv.starts_with("group") || rng.below(3) > 0)
        .collect();
    if rng.below(10) == 0 {
        recipients.push(from);
    }
    let client_id = match rng.below(3) {
        0 => None,
        _ => Some(format!("c{}", rng.below(6))),
    };
    // Mostly forward in time, sometimes a little back (clocks differ).
    let ts = now.saturating_sub(rng.below(4));
    let mut out = outgoing(conv, from, &recipients, ts, client_id.as_deref());
    out.trim = random_trim(rng, now);
    out
}

fn random_changes(rng: &mut Rng, now: u64) -> Changes {
    let mut c = Changes {
        trim: random_trim(rng, now),
        ..Changes::default()
    };
    for _ in 0..rng.below(3) {
        let id = uid(rng.pick(&USERS));
        c.users.push(User {
            id,
            fields: [("n".to_string(), now.to_string())].into(),
            created_at: now,
        });
    }
    for _ in 0..rng.below(3) {
        let (owner, other) = (uid(rng.pick(&USERS)), uid(rng.pick(&USERS)));
        c.contacts.push(if rng.below(3) == 0 {
            (owner, ContactChange::Remove(other))
        } else {
            (
                owner,
                ContactChange::Put(Contact {
                    id: other,
                    since: now,
                }),
            )
        });
    }
    if rng.below(3) == 0 {
        c.groups.push(Group {
            id: gid(rng.pick(&["g", "h"])),
            owner: uid("alice"),
            fields: Default::default(),
            join: JoinPolicy::Open,
            created_at: now,
        });
    }
    for _ in 0..rng.below(3) {
        let (group, user) = (gid(rng.pick(&["g", "h"])), uid(rng.pick(&USERS)));
        c.members.push(if rng.below(3) == 0 {
            (group, MemberChange::Remove(user))
        } else {
            (
                group,
                MemberChange::Put(Member {
                    id: user,
                    role: Role::Member,
                    since: now,
                }),
            )
        });
    }
    for _ in 0..rng.below(4) {
        let user = uid(rng.pick(&USERS));
        let conversation: ConversationId = rng.pick(&CONVS).parse().unwrap();
        let change = match rng.below(3) {
            0 => EntryChange::Put(ConvEntry {
                conversation,
                read_seq: rng.below(5),
                activity: now,
            }),
            1 => EntryChange::Remove(conversation),
            _ => EntryChange::Read {
                conversation,
                seq: rng.below(12),
            },
        };
        c.entries.push((user, change));
    }
    for _ in 0..rng.below(4) {
        let user = uid(rng.pick(&USERS));
        let event = if rng.below(2) == 0 {
            Event::Read {
                conversation: rng.pick(&CONVS).parse().unwrap(),
                seq: rng.below(9),
            }
        } else {
            Event::Member {
                group: gid("g"),
                user: uid(rng.pick(&USERS)),
                change: Membership::Joined,
            }
        };
        c.events
            .push((user, now.saturating_sub(rng.below(3)), event));
    }
    c
}

/// Every read of both stores, for comparison.
async fn snapshot<S: Store>(s: &S) -> Vec<String> {
    let mut out = Vec::new();
    for u in USERS.map(uid) {
        let (Ok(user), Ok(presence)) = (s.user(&u).await, s.presence(&u).await) else {
            panic!("reads of {u} fail");
        };
        out.push(format!("user {user:?} {presence:?}"));
        let mut contacts = s.contacts(&u).await.ok().unwrap();
        contacts.sort_by(|a, b| a.id.cmp(&b.id));
        out.push(format!("contacts {u} {contacts:?}"));
        for other in USERS.map(uid) {
            out.push(format!("contact {:?}", s.contact(&u, &other).await.ok()));
        }
        let mut entries = s.entries(&u).await.ok().unwrap();
        entries.sort_by(|a, b| a.conversation.cmp(&b.conversation));
        out.push(format!("entries {u} {entries:?}"));
        for c in CONVS {
            let c = c.parse().unwrap();
            out.push(format!("entry {u} {:?}", s.entry(&u, &c).await.ok()));
        }
        let bounds = s.feed(&u, u64::MAX, 0).await.ok().unwrap();
        out.push(format!("bounds {u} {bounds:?}"));
        let afters = [
            0,
            1,
            bounds.trimmed,
            bounds.trimmed + 1,
            bounds.head.saturating_sub(1),
            bounds.head,
            u64::MAX,
        ];
        for after in afters {
            for limit in [0, 1, 2, 1000] {
                let f = s.feed(&u, after, limit).await.ok().unwrap();
                out.push(format!("feed {u} {after} {limit} {f:?}"));
            }
        }
    }
    for g in ["g", "h"].map(gid) {
        out.push(format!("group {:?}", s.group(&g).await.ok()));
        let mut members = s.members(&g).await.ok().unwrap();
        members.sort_by(|a, b| a.id.cmp(&b.id));
        out.push(format!("members {g} {members:?}"));
        for u in USERS.map(uid) {
            out.push(format!("member {:?}", s.member(&g, &u).await.ok()));
        }
    }
    for c in CONVS {
        let c: ConversationId = c.parse().unwrap();
        let last = s.last_seq(&c).await.ok().unwrap();
        out.push(format!("last {c} {last}"));
        for (from, to) in [
            (0, u64::MAX),
            (1, 1),
            (2, last),
            (last, last),
            (last + 1, last + 5),
            (3, 2),
        ] {
            let m = s.messages(&c, from, to).await.ok().unwrap();
            out.push(format!("messages {c} {from} {to} {m:?}"));
        }
    }
    out
}

/// Random sends and change sets, trims included, read back exactly as
/// `MemoryStore` reads them back, before and after a reopen.
#[tokio::test]
async fn random_writes_read_back_like_memory_store() {
    for seed in 1..=6u64 {
        let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15));
        let dir = tempfile::tempdir().unwrap();
        let mut sled = open(&dir);
        let memory = MemoryStore::new();
        for step in 0..120u64 {
            let now = 1000 + step * 3;
            if rng.below(3) == 0 {
                let c = random_changes(&mut rng, now);
                memory.commit(&c).await.unwrap();
                sled.commit(&c).await.unwrap();
            } else {
                let out = random_send(&mut rng, now);
                let want = memory.send(&out).await.unwrap();
                let got = sled.send(&out).await.unwrap();
                assert_eq!(got, want, "seed {seed} step {step}: {out:?}");
            }
            if rng.below(4) == 0 {
                let u = uid(rng.pick(&USERS));
                let online = rng.below(2) == 0;
                memory.set_presence(&u, online, now).await.unwrap();
                sled.set_presence(&u, online, now).await.unwrap();
            }
            if step % 40 == 39 {
                // Presence `online` is process-local: nobody stays online
                // across a restart.
                for u in USERS.map(uid) {
                    memory.set_presence(&u, false, now).await.unwrap();
                    sled.set_presence(&u, false, now).await.unwrap();
                }
                let path = sled.path().to_owned();
                sled.close().unwrap();
                sled = SledStore::open(SledConfig::new(path)).unwrap();
            }
            let (want, got) = (snapshot(&memory).await, snapshot(&sled).await);
            for (w, g) in want.iter().zip(&got) {
                assert_eq!(g, w, "seed {seed} step {step}");
            }
        }
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
