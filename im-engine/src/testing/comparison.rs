//! The store on its own, against [`MemoryStore`]: random sends, joins,
//! leaves and change sets, with random retention, read back exactly as
//! `MemoryStore` reads them back, before and after reopening. Below the
//! engine, so it also writes what the engine never would (entries without
//! membership, repeats, time going back a little), which a store must keep
//! all the same.

use crate::store::{
    Changes, ContactChange, EntryChange, FeedTrim, Mark, MarkChange, Marks, MemberChange,
    MemberUpdate, MessageChange, MessageUpdate, Outgoing, Recipients, Store,
};
use crate::{
    Body, Contact, ConvEntry, ConversationId, Event, Group, GroupId, GroupKind, JoinPolicy, Member,
    Membership, MemoryStore, NewMessage, Role, User, UserId,
};

use super::StoreFactory;

fn uid(s: &str) -> UserId {
    UserId::new(s).expect("valid test id")
}

fn gid(s: &str) -> GroupId {
    GroupId::new(s).expect("valid test id")
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
            conversation: conv.parse().expect("valid test conversation"),
            from: uid(from),
            ts,
            body: Body::new(&format!(r#"{{"n":{ts}}}"#), 1024).expect("valid test body"),
            client_id: client_id.map(str::to_owned),
            reply_to: None,
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
/// `room:h` shares its members with `group:h`, as a store sees them.
const CONVS: [&str; 5] = [
    "dm:al:alice",
    "dm:alice:bob",
    "group:g",
    "group:h",
    "room:h",
];

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
    // Groups: the sender and some of the others.
    let recipients: Vec<&str> = everyone
        .iter()
        .copied()
        .filter(|u| *u == from || !conv.starts_with("group") || rng.below(3) > 0)
        .collect();
    let client_id = match rng.below(3) {
        0 => None,
        _ => Some(format!("c{}", rng.below(6))),
    };
    // Mostly forward in time, sometimes a little back (clocks differ).
    let ts = now.saturating_sub(rng.below(4));
    let mut out = outgoing(conv, from, &recipients, ts, client_id.as_deref());
    out.trim = random_trim(rng, now);
    // Most group sends go to the members as the store has them.
    if let Some(group) = conv.strip_prefix("group:")
        && rng.below(3) > 0
    {
        out.recipients = Recipients::Members(gid(group));
    }
    if let Some(room) = conv.strip_prefix("room:") {
        out.recipients = Recipients::Room(gid(room));
    }
    out
}

fn random_message_update(rng: &mut Rng, now: u64) -> MessageUpdate {
    let conv = rng.pick(&CONVS);
    let user = uid(rng.pick(&participants(conv)));
    let change = match rng.below(4) {
        0 => MessageChange::Edit(
            Body::new(&format!(r#"{{"e":{now}}}"#), 1024).expect("valid test body"),
        ),
        1 => MessageChange::Delete,
        _ => MessageChange::React {
            user,
            key: rng.pick(&["a", "b", "c"]).to_owned(),
            add: rng.below(3) > 0,
        },
    };
    let recipients = match conv.strip_prefix("group:") {
        _ if conv.starts_with("room:") => Recipients::Room(gid("h")),
        Some(group) if rng.below(2) == 0 => Recipients::Members(gid(group)),
        _ => Recipients::Users(participants(conv).into_iter().map(uid).collect()),
    };
    MessageUpdate {
        conversation: conv.parse().expect("valid test conversation"),
        seq: rng.below(8),
        change,
        at: now,
        recipients,
        max_reaction_keys: 2,
        trim: random_trim(rng, now),
    }
}

fn random_update(rng: &mut Rng, now: u64) -> MemberUpdate {
    let user = uid(rng.pick(&USERS));
    MemberUpdate {
        group: gid(rng.pick(&["g", "h"])),
        change: if rng.below(2) == 0 {
            MemberChange::Remove(user)
        } else {
            MemberChange::Put(Member {
                id: user,
                role: Role::Member,
                since: now,
            })
        },
        at: now.saturating_sub(rng.below(3)),
        max_members: rng.pick(&[2, 3, 100]) as usize,
        trim: random_trim(rng, now),
        kind: rng.pick(&[GroupKind::Group, GroupKind::Group, GroupKind::Room]),
    }
}

/// `last` answers a conversation's `last_seq`: read cursors never pass it
/// (the engine checks), and stores may count on that.
fn random_changes(rng: &mut Rng, now: u64, last: impl Fn(&ConversationId) -> u64) -> Changes {
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
            password: None,
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
                    order: rng.below(3),
                }),
            )
        });
    }
    if rng.below(3) == 0 {
        c.groups.push(Group {
            id: gid(rng.pick(&["g", "h"])),
            kind: GroupKind::Group,
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
        let conversation: ConversationId =
            rng.pick(&CONVS).parse().expect("valid test conversation");
        let cursor = rng.below(last(&conversation) + 1);
        let change = match rng.below(3) {
            0 => EntryChange::Put(ConvEntry {
                conversation,
                read_seq: cursor,
                activity: now,
            }),
            1 => EntryChange::Remove(conversation),
            _ => EntryChange::Read {
                conversation,
                seq: cursor,
            },
        };
        c.entries.push((user, change));
    }
    for _ in 0..rng.below(4) {
        let user = uid(rng.pick(&USERS));
        let event = if rng.below(2) == 0 {
            Event::Read {
                conversation: rng.pick(&CONVS).parse().expect("valid test conversation"),
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
    for _ in 0..rng.below(4) {
        let (set, user) = (random_marks(rng), uid(rng.pick(&USERS)));
        if set == Marks::Blocks(user.clone()) {
            continue; // Nobody blocks itself: the engine checks.
        }
        c.marks.push(if rng.below(3) == 0 {
            (set, MarkChange::Remove(user))
        } else {
            (set, MarkChange::Put(Mark { user, since: now }))
        });
    }
    if rng.below(8) == 0 {
        c.erase.push(uid(rng.pick(&USERS)));
    }
    c
}

fn random_marks(rng: &mut Rng) -> Marks {
    match rng.below(4) {
        0 => Marks::Requests(gid(rng.pick(&["g", "h"]))),
        1 => Marks::Bans(gid(rng.pick(&["g", "h"]))),
        2 => Marks::Blocks(uid(rng.pick(&USERS))),
        _ => Marks::Suspended,
    }
}

/// Every read of both stores, for comparison.
async fn snapshot<S: Store>(s: &S) -> Vec<String> {
    let mut out = Vec::new();
    for u in USERS.map(uid) {
        let (Ok(user), Ok(presence)) = (s.user(&u).await, s.presence(&u).await) else {
            panic!("reads of {u} fail");
        };
        out.push(format!("user {user:?} {presence:?}"));
        let mut contacts = s.contacts(&u).await.expect("contacts read");
        contacts.sort_by(|a, b| a.id.cmp(&b.id));
        out.push(format!("contacts {u} {contacts:?}"));
        for other in USERS.map(uid) {
            out.push(format!(
                "contact {:?}",
                s.contact(&u, &other).await.expect("the read succeeds")
            ));
        }
        let mut entries = s.entries(&u).await.expect("the read succeeds");
        entries.sort_by(|a, b| a.conversation.cmp(&b.conversation));
        out.push(format!("entries {u} {entries:?}"));
        for c in CONVS {
            let c = c.parse().expect("valid test conversation");
            out.push(format!(
                "entry {u} {:?}",
                s.entry(&u, &c).await.expect("the read succeeds")
            ));
        }
        let bounds = s.feed(&u, u64::MAX, 0).await.expect("the read succeeds");
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
                let f = s.feed(&u, after, limit).await.expect("the read succeeds");
                out.push(format!("feed {u} {after} {limit} {f:?}"));
            }
        }
    }
    let mut sets = vec![Marks::Suspended];
    for u in USERS.map(uid) {
        sets.push(Marks::Blocks(u));
    }
    for g in ["g", "h"].map(gid) {
        sets.extend([Marks::Requests(g.clone()), Marks::Bans(g)]);
    }
    for set in sets {
        let marks = s.marks(&set).await.expect("the read succeeds");
        out.push(format!("marks {set:?} {marks:?}"));
        for u in USERS.map(uid) {
            let mark = s.mark(&set, &u).await.expect("the read succeeds");
            out.push(format!("mark {set:?} {u} {mark:?}"));
        }
    }
    for g in ["g", "h"].map(gid) {
        out.push(format!(
            "group {:?}",
            s.group(&g).await.expect("the read succeeds")
        ));
        let mut members = s.members(&g).await.expect("the read succeeds");
        members.sort_by(|a, b| a.id.cmp(&b.id));
        out.push(format!("members {g} {members:?}"));
        for u in USERS.map(uid) {
            out.push(format!(
                "member {:?}",
                s.member(&g, &u).await.expect("the read succeeds")
            ));
        }
        // Pages by id: `al` sorts before `alice`, its prefix after it.
        for after in std::iter::once(None).chain(USERS.map(|u| Some(uid(u)))) {
            for limit in [0, 1, 3, usize::MAX] {
                let page = s
                    .members_after(&g, after.as_ref(), limit)
                    .await
                    .expect("the read succeeds");
                out.push(format!("members after {after:?}, {limit}: {page:?}"));
            }
        }
    }
    for c in CONVS {
        let c: ConversationId = c.parse().expect("valid test conversation");
        let last = s.last_seq(&c).await.expect("the read succeeds");
        out.push(format!("last {c} {last}"));
        for (from, to) in [
            (0, u64::MAX),
            (1, 1),
            (2, last),
            (last, last),
            (last + 1, last + 5),
            (3, 2),
        ] {
            let m = s.messages(&c, from, to).await.expect("the read succeeds");
            out.push(format!("messages {c} {from} {to} {m:?}"));
        }
    }
    out
}

/// Random sends, joins, leaves and change sets, trims included, read back
/// exactly as `MemoryStore` reads them back, before and after a reopen;
/// [`StoreFactory::check`] after every step. `PROPTEST_CASES` sets the
/// number of seeds (default 4).
///
/// # Panics
///
/// When a read differs from `MemoryStore`'s, or a check fails.
pub async fn random_writes_read_back_like_memory_store<F: StoreFactory>() {
    for seed in 1..=super::cases(4) {
        let mut rng = Rng(u64::from(seed).wrapping_mul(0x9E37_79B9_7F4A_7C15));
        let (mut store, data) = F::open().await;
        let memory = MemoryStore::new();
        for step in 0..120u64 {
            let now = 1000 + step * 3;
            match rng.below(6) {
                0 | 1 => {
                    let mut last = std::collections::HashMap::new();
                    for c in CONVS {
                        let c: ConversationId = c.parse().expect("valid test conversation");
                        let seq = memory.last_seq(&c).await.expect("memory");
                        last.insert(c, seq);
                    }
                    let c = random_changes(&mut rng, now, |c| last[c]);
                    memory.commit(&c).await.expect("memory commits");
                    store.commit(&c).await.expect("the store commits");
                }
                2 if rng.below(2) == 0 => {
                    let u = random_message_update(&mut rng, now);
                    let want = memory.update_message(&u).await.expect("memory updates");
                    let got = store.update_message(&u).await.expect("the store updates");
                    assert_eq!(got, want, "seed {seed} step {step}: {u:?}");
                }
                2 => {
                    let u = random_update(&mut rng, now);
                    let want = memory.update_member(&u).await.expect("memory updates");
                    let got = store.update_member(&u).await.expect("the store updates");
                    assert_eq!(got, want, "seed {seed} step {step}: {u:?}");
                }
                _ => {
                    let out = random_send(&mut rng, now);
                    let want = memory.send(&out).await.expect("memory sends");
                    let got = store.send(&out).await.expect("the store sends");
                    assert_eq!(got, want, "seed {seed} step {step}: {out:?}");
                }
            }
            if rng.below(4) == 0 {
                let u = uid(rng.pick(&USERS));
                let online = rng.below(2) == 0;
                memory.set_presence(&u, online, now).await.expect("memory");
                store
                    .set_presence(&u, online, now)
                    .await
                    .expect("the store");
            }
            if step % 40 == 39 {
                // Presence `online` is process-local: nobody stays online
                // across a restart.
                for u in USERS.map(uid) {
                    memory.set_presence(&u, false, now).await.expect("memory");
                    store.set_presence(&u, false, now).await.expect("the store");
                }
                store = F::reopen(store, &data).await;
            }
            F::check(&store);
            // Every read of both, every other step (each is a few hundred
            // reads: a cluster takes a while).
            if step % 2 == 1 {
                let (want, got) = (snapshot(&memory).await, snapshot(&store).await);
                for (w, g) in want.iter().zip(&got) {
                    assert_eq!(g, w, "seed {seed} step {step}");
                }
            }
        }
    }
}
