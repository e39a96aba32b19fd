//! A directory in format 1 (one tree per kind of record, written here with
//! raw sled writes of that layout) opens with all its data in format 2, also
//! when a migration was interrupted: by leftovers of each step, and by
//! SIGKILL at several moments of a real one.
//!
//! The child of the kill test is this test binary itself, re-executed with
//! `IM_STORE_SLED_MIGRATE_CHILD` set, running only [`child_process`].

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use im_engine::store::{FeedTrim, Outgoing, Recipients, Sent};
use im_engine::{
    Body, Contact, ConvEntry, ConversationId, Epoch, Event, Group, GroupId, JoinPolicy, Member,
    Membership, NewMessage, Role, Store, User, UserId,
};
use im_store_sled::{Error, FORMAT_VERSION, SledConfig, SledStore};

const CHILD_ENV: &str = "IM_STORE_SLED_MIGRATE_CHILD";
const EPOCH: u64 = 0x0123_4567_89AB_CDEF;
const V1_TREES: [&str; 11] = [
    "userid_user",
    "ownercontact_contact",
    "groupid_group",
    "groupuser_member",
    "conv_lastseq",
    "convseq_message",
    "convsenderclientid_seq",
    "userconv_entry",
    "userpos_event",
    "user_feedbounds",
    "user_lastseen",
];

fn uid(i: usize) -> UserId {
    UserId::new(format!("u{i}")).unwrap()
}

fn group() -> ConversationId {
    ConversationId::group(GroupId::new("g").unwrap())
}

fn dm() -> ConversationId {
    ConversationId::direct(uid(0), uid(1)).unwrap()
}

/// `parts` joined by `0xFF`, as format 1 built its keys.
fn key(parts: &[&[u8]]) -> Vec<u8> {
    parts.join(&0xFF_u8)
}

fn pair(a: u64, b: u64) -> Vec<u8> {
    [a.to_be_bytes(), b.to_be_bytes()].concat()
}

fn json<T: serde::Serialize>(value: &T) -> Vec<u8> {
    serde_json::to_vec(value).unwrap()
}

/// The test data, at a scale: `users` users in group `g` with `messages`
/// messages, a direct conversation of `u0` and `u1` with two, and a feed of
/// `events` events per user of which the oldest are trimmed.
#[derive(Debug, Clone, Copy)]
struct Scale {
    users: usize,
    messages: u64,
    events: u64,
}

impl Scale {
    /// How many events of user `i`'s feed were trimmed: `u2` has none
    /// left, so only its floor says where its feed stands.
    fn trimmed(self, i: usize) -> u64 {
        match i {
            2 => self.events,
            _ => i as u64 % 3,
        }
    }

    fn read_seq(self, i: usize) -> u64 {
        i as u64 % (self.messages + 1)
    }

    fn message(self, conversation: &ConversationId, seq: u64) -> im_engine::Message {
        let from = match conversation {
            ConversationId::Group(_) | ConversationId::Room(_) => uid(seq as usize % self.users),
            ConversationId::Direct(..) => uid(seq as usize % 2),
        };
        NewMessage {
            conversation: conversation.clone(),
            from,
            ts: 100 + seq,
            body: Body::new(&format!(r#"{{"n":{seq}}}"#), 1024).unwrap(),
            client_id: (seq % 2 == 1).then(|| format!("c{seq}")),
            reply_to: None,
        }
        .numbered(seq)
    }

    fn event(self, pos: u64) -> Event {
        match pos % 3 {
            0 => Event::Member {
                group: GroupId::new("g").unwrap(),
                user: uid(1),
                change: Membership::Joined,
            },
            1 => Event::Message {
                conversation: group(),
                seq: pos,
            },
            _ => Event::Read {
                conversation: dm(),
                seq: 1,
            },
        }
    }
}

/// Writes the test data in format 1 at `dir`, through raw sled writes.
fn write_v1(dir: &Path, s: Scale) {
    let db = sled::open(dir).unwrap();
    let tree = |name: &str| db.open_tree(name).unwrap();
    let meta = tree("meta");
    meta.insert("version", &1u32.to_be_bytes()[..]).unwrap();
    meta.insert("epoch", &EPOCH.to_be_bytes()[..]).unwrap();
    let g = GroupId::new("g").unwrap();
    tree("groupid_group")
        .insert(
            "g",
            json(&Group {
                id: g,
                kind: Default::default(),
                owner: uid(0),
                fields: Default::default(),
                join: JoinPolicy::Open,
                created_at: 1,
            }),
        )
        .unwrap();
    let mut users = sled::Batch::default();
    let mut contacts = sled::Batch::default();
    let mut members = sled::Batch::default();
    let mut entries = sled::Batch::default();
    let mut events = sled::Batch::default();
    let mut bounds = sled::Batch::default();
    for i in 0..s.users {
        let (u, name) = (uid(i), format!("u{i}"));
        let name = name.as_bytes();
        let user = User {
            id: u.clone(),
            fields: [("n".to_string(), i.to_string())].into(),
            created_at: i as u64,
            password: None,
        };
        users.insert(name, json(&user));
        let contact = Contact {
            id: uid((i + 1) % s.users),
            since: 7,
            order: 0,
        };
        contacts.insert(key(&[name, contact.id.as_str().as_bytes()]), json(&contact));
        let role = if i == 0 { Role::Owner } else { Role::Member };
        let member = Member {
            id: u.clone(),
            role,
            since: 2,
        };
        members.insert(key(&[b"g", name]), json(&member));
        let entry = pair(s.read_seq(i), 1000 + i as u64);
        entries.insert(key(&[name, b"group:g"]), entry);
        for pos in s.trimmed(i) + 1..=s.events {
            let mut v = pos.to_be_bytes().to_vec();
            v.extend(json(&s.event(pos)));
            events.insert(key(&[name, &pos.to_be_bytes()]), v);
        }
        bounds.insert(name, pair(s.events, s.trimmed(i)));
    }
    entries.insert(key(&[b"u0", b"dm:u0:u1"]), pair(2, 500));
    entries.insert(key(&[b"u1", b"dm:u0:u1"]), pair(1, 500));
    tree("userid_user").apply_batch(users).unwrap();
    tree("ownercontact_contact").apply_batch(contacts).unwrap();
    tree("groupuser_member").apply_batch(members).unwrap();
    tree("userconv_entry").apply_batch(entries).unwrap();
    tree("userpos_event").apply_batch(events).unwrap();
    tree("user_feedbounds").apply_batch(bounds).unwrap();
    for (c, last) in [(group(), s.messages), (dm(), 2)] {
        let conv = c.to_string();
        tree("conv_lastseq")
            .insert(&conv, &last.to_be_bytes()[..])
            .unwrap();
        for seq in 1..=last {
            let m = s.message(&c, seq);
            tree("convseq_message")
                .insert(key(&[conv.as_bytes(), &seq.to_be_bytes()]), json(&m))
                .unwrap();
            if let Some(id) = &m.client_id {
                let k = key(&[conv.as_bytes(), m.from.as_str().as_bytes(), id.as_bytes()]);
                tree("convsenderclientid_seq")
                    .insert(k, &seq.to_be_bytes()[..])
                    .unwrap();
            }
        }
    }
    tree("user_lastseen")
        .insert("u0", &99u64.to_be_bytes()[..])
        .unwrap();
    db.flush().unwrap();
}

/// Opens the store, waiting out a lock that a just-killed process may still
/// hold for a moment.
fn open(dir: &Path) -> SledStore {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match SledStore::open(SledConfig::new(dir)) {
            Err(Error::Locked { .. }) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(10));
            }
            other => return other.expect("open the store"),
        }
    }
}

/// Checks that `store` holds exactly the test data.
async fn check(store: &SledStore, s: Scale) {
    assert_eq!(store.epoch(), Epoch(EPOCH));
    let g = GroupId::new("g").unwrap();
    assert_eq!(store.group(&g).await.unwrap().unwrap().owner, uid(0));
    assert_eq!(store.members(&g).await.unwrap().len(), s.users);
    for (c, last) in [(group(), s.messages), (dm(), 2)] {
        assert_eq!(store.last_seq(&c).await.unwrap(), last, "{c}");
        let want: Vec<_> = (1..=last).map(|seq| s.message(&c, seq)).collect();
        assert_eq!(store.messages(&c, 1, u64::MAX).await.unwrap(), want, "{c}");
    }
    for i in 0..s.users {
        let u = uid(i);
        let user = store.user(&u).await.unwrap().unwrap();
        assert_eq!(user.fields["n"], i.to_string());
        let contacts = store.contacts(&u).await.unwrap();
        assert_eq!(
            contacts,
            [Contact {
                id: uid((i + 1) % s.users),
                since: 7,
                order: 0,
            }]
        );
        assert_eq!(
            store.member(&g, &u).await.unwrap().unwrap().role,
            if i == 0 { Role::Owner } else { Role::Member }
        );
        let mut want = vec![ConvEntry {
            conversation: group(),
            read_seq: s.read_seq(i),
            activity: 1000 + i as u64,
        }];
        if i < 2 {
            want.push(ConvEntry {
                conversation: dm(),
                read_seq: 2 - i as u64,
                activity: 500,
            });
        }
        let mut got = store.entries(&u).await.unwrap();
        got.sort_by(|a, b| a.conversation.cmp(&b.conversation));
        want.sort_by(|a, b| a.conversation.cmp(&b.conversation));
        assert_eq!(got, want, "{u}");
        let feed = store.feed(&u, 0, usize::MAX).await.unwrap();
        assert_eq!((feed.trimmed, feed.head), (s.trimmed(i), s.events), "{u}");
        let events: Vec<_> = feed
            .entries
            .iter()
            .map(|e| (e.pos, e.ts, &e.event))
            .collect();
        let want: Vec<_> = (s.trimmed(i) + 1..=s.events)
            .map(|p| (p, p, s.event(p)))
            .collect();
        let want: Vec<_> = want.iter().map(|(p, t, e)| (*p, *t, e)).collect();
        assert_eq!(events, want, "{u}");
    }
    let seen = |i| async move { store.presence(&uid(i)).await.unwrap().last_seen };
    assert_eq!((seen(0).await, seen(1).await), (Some(99), None));
}

/// What a store opened from the test data does next: client ids still
/// deduplicate, a send to everyone moves everyone's activity, and a feed
/// that was trimmed to nothing goes on from its head.
async fn go_on(store: &SledStore, s: Scale) {
    let repeat = s.message(&group(), 1);
    let out = |message: NewMessage| Outgoing {
        message,
        recipients: Recipients::Users((0..s.users).map(uid).collect()),
        trim: FeedTrim::default(),
    };
    let again = NewMessage {
        conversation: group(),
        from: repeat.from.clone(),
        ts: 5000,
        body: Body::new("{}", 1024).unwrap(),
        client_id: repeat.client_id.clone(),
        reply_to: None,
    };
    assert_eq!(
        store.send(&out(again)).await.unwrap(),
        Sent::Duplicate(repeat)
    );
    let new = NewMessage {
        conversation: group(),
        from: uid(0),
        ts: 5000,
        body: Body::new("{}", 1024).unwrap(),
        client_id: None,
        reply_to: None,
    };
    let Sent::New(m) = store.send(&out(new)).await.unwrap() else {
        panic!("a new message");
    };
    assert_eq!(m.seq, s.messages + 1);
    for i in 0..s.users {
        let e = store.entry(&uid(i), &group()).await.unwrap().unwrap();
        assert_eq!(e.activity, 5000);
        let read_seq = if i == 0 { m.seq } else { s.read_seq(i) };
        assert_eq!(e.read_seq, read_seq);
    }
    let feed = store.feed(&uid(2), 0, 10).await.unwrap();
    assert_eq!((feed.trimmed, feed.head), (s.events, s.events + 1));
}

/// The trees of the directory and its format version, read raw.
fn raw_state(dir: &Path) -> (Vec<String>, u32) {
    let db = sled::open(dir).unwrap();
    let names = db
        .tree_names()
        .iter()
        .map(|n| String::from_utf8_lossy(n).into_owned())
        .collect();
    let version = db
        .open_tree("meta")
        .unwrap()
        .get("version")
        .unwrap()
        .unwrap();
    (
        names,
        u32::from_be_bytes(version.as_ref().try_into().unwrap()),
    )
}

fn assert_migrated(dir: &Path) {
    let (names, version) = raw_state(dir);
    assert_eq!(version, FORMAT_VERSION);
    for old in V1_TREES {
        assert!(!names.iter().any(|n| n == old), "{old} is still there");
    }
}

const SMALL: Scale = Scale {
    users: 5,
    messages: 4,
    events: 6,
};

#[tokio::test]
async fn a_format_1_directory_opens_with_all_its_data() {
    let dir = tempfile::tempdir().unwrap();
    write_v1(dir.path(), SMALL);
    let store = open(dir.path());
    check(&store, SMALL).await;
    // Once more, now from format 2.
    store.close().unwrap();
    let store = open(dir.path());
    check(&store, SMALL).await;
    go_on(&store, SMALL).await;
    store.close().unwrap();
    assert_migrated(dir.path());
}

/// A crash before the new version landed leaves format 1 whole and part of
/// the new tree: the next open starts the migration over.
#[tokio::test]
async fn a_migration_interrupted_before_its_version_starts_over() {
    let dir = tempfile::tempdir().unwrap();
    write_v1(dir.path(), SMALL);
    {
        let db = sled::open(dir.path()).unwrap();
        let records = db.open_tree("records").unwrap();
        let stranger = User {
            id: UserId::new("mallory").unwrap(),
            fields: Default::default(),
            created_at: 0,
            password: None,
        };
        records.insert(b"umallory", json(&stranger)).unwrap();
        records.insert(b"eu3\xFFgroup:g", &[0u8; 24][..]).unwrap();
        db.flush().unwrap();
    }
    let store = open(dir.path());
    check(&store, SMALL).await;
    let mallory = UserId::new("mallory").unwrap();
    assert_eq!(store.user(&mallory).await.unwrap(), None);
    go_on(&store, SMALL).await;
    store.close().unwrap();
    assert_migrated(dir.path());
}

/// A crash after the new version landed leaves old trees behind: the next
/// open drops them.
#[tokio::test]
async fn old_trees_left_after_a_migration_are_dropped() {
    let dir = tempfile::tempdir().unwrap();
    write_v1(dir.path(), SMALL);
    open(dir.path()).close().unwrap();
    {
        let db = sled::open(dir.path()).unwrap();
        db.open_tree("userconv_entry")
            .unwrap()
            .insert(b"u0\xFFgroup:h", pair(1, 1))
            .unwrap();
        db.flush().unwrap();
    }
    let store = open(dir.path());
    check(&store, SMALL).await;
    store.close().unwrap();
    assert_migrated(dir.path());
}

/// The child's entry point; a no-op (passing) test in a normal run.
#[test]
fn child_process() {
    let Ok(dir) = std::env::var(CHILD_ENV) else {
        return;
    };
    let mut out = std::io::stdout().lock();
    writeln!(out, "OPENING").unwrap();
    out.flush().unwrap();
    let store = open(Path::new(&dir));
    writeln!(out, "OPENED").unwrap();
    out.flush().unwrap();
    store.close().unwrap();
}

/// Kills real migrations with SIGKILL at moments further and further into
/// them, until one finishes; whatever each left, the next open finishes the
/// job.
#[tokio::test]
async fn a_migration_killed_at_any_moment_is_finished_by_the_next_open() {
    let scale = Scale {
        users: 1000,
        messages: 40,
        events: 10,
    };
    let dir = tempfile::tempdir().unwrap();
    write_v1(dir.path(), scale);
    let mut kills = Vec::new();
    let mut delay = Duration::from_millis(2);
    loop {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "child_process",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD_ENV, dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        while !line.contains("OPENING") {
            line.clear();
            assert!(stdout.read_line(&mut line).unwrap() > 0, "the child ended");
        }
        std::thread::sleep(delay);
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        let mut rest = String::new();
        let _ = std::io::Read::read_to_string(&mut stdout, &mut rest);
        if rest.contains("OPENED") {
            break;
        }
        kills.push(delay);
        assert!(kills.len() < 24, "no open finished within {delay:?}");
        delay = delay * 3 / 2;
    }
    eprintln!("killed while opening after {kills:?}; one finished within {delay:?}");
    assert!(!kills.is_empty(), "no open was interrupted");
    let store = open(dir.path());
    check(&store, scale).await;
    go_on(&store, scale).await;
    store.close().unwrap();
    assert_migrated(dir.path());
}
