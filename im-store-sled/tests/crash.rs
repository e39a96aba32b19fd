//! Crash safety with real processes: a child process sends messages and
//! reports each acknowledged one; the test kills it at twelve points,
//! reopening the same directory each time, and checks that nothing
//! acknowledged was lost and that every derived structure agrees with the
//! logs. Most kills are a SIGKILL after some number of acknowledgements;
//! others are crash points (feature `crash-points`) where the child aborts
//! by itself: halfway through a write to the write-ahead log, and in the
//! middle of replaying it while opening. The same run in periodic mode,
//! which answers before anything is on disk, must lose acknowledged sends:
//! proof that the check can fail. Also: a directory another process holds
//! is refused clearly.
//!
//! The child is this test binary itself, re-executed with
//! `IM_STORE_SLED_CHILD` set, running only [`child_process`].

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

use im_engine::{
    Actor, Body, ConversationId, Engine, Event, GroupId, Message, SendRequest, Store, StoreError,
    UserId,
};
use im_store_sled::{Durability, Error, SledConfig, SledStore};

const CHILD_ENV: &str = "IM_STORE_SLED_CHILD";
/// Arms a crash point in the child (see the crate's `crash.rs`).
const CRASH_ENV: &str = "IM_STORE_SLED_CRASH";
const USERS: usize = 6;
const SENDERS: usize = 8;

fn uid(i: usize) -> UserId {
    UserId::new(format!("u{i}")).unwrap()
}

/// A group member who never sends, only reads: the engine's `mark_read`
/// reads `last_seq` and the cursor separately, so a reader that also sends
/// in the conversation could see its own send land in between.
fn reader() -> UserId {
    UserId::new("reader").unwrap()
}

fn group() -> GroupId {
    GroupId::new("g").unwrap()
}

/// Sender task `t` writes to the group and to its own direct conversation
/// (shared with another task: 8 tasks, 6 users).
fn conversation_of(t: usize, n: u64) -> ConversationId {
    if n.is_multiple_of(3) {
        ConversationId::group(group())
    } else {
        ConversationId::direct(uid(t % USERS), uid((t + 1) % USERS)).unwrap()
    }
}

fn body_of(client_id: &str) -> String {
    format!(r#"{{"c":"{client_id}"}}"#)
}

/// Opens the store, waiting out a lock that a just-killed process may still
/// hold for a moment.
fn open_store(dir: &Path) -> SledStore {
    open_store_with(SledConfig::new(dir))
}

fn open_store_with(config: SledConfig) -> SledStore {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match SledStore::open(config.clone()) {
            Err(Error::Locked { .. }) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(10));
            }
            other => return other.expect("open the store"),
        }
    }
}

/// The child's entry point; a no-op (passing) test in a normal run.
#[test]
fn child_process() {
    let Ok(spec) = std::env::var(CHILD_ENV) else {
        return;
    };
    let mut parts = spec.splitn(3, ':');
    let (mode, round, dir) = (
        parts.next().unwrap(),
        parts.next().unwrap().to_owned(),
        parts.next().unwrap(),
    );
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let mut config = SledConfig::new(dir);
        if mode == "send-periodic" {
            config = config.durability(Durability::Periodic { every_ms: 1000 });
        }
        let store = open_store_with(config);
        match mode {
            "hold" => {
                report("READY");
                // Hold the store until the parent kills us.
                std::thread::sleep(Duration::from_secs(60));
            }
            "send" | "send-periodic" => send_until_killed(Engine::new(store), round).await,
            other => panic!("unknown child mode {other}"),
        }
    });
}

/// One line on stdout, flushed before returning: once the parent reads it,
/// it was acknowledged.
fn report(line: &str) {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{line}").unwrap();
    out.flush().unwrap();
}

async fn send_until_killed(engine: Engine<SledStore>, round: String) {
    let root = Actor::admin(UserId::new("root").unwrap());
    for user in (0..USERS).map(uid).chain([reader()]) {
        engine
            .put_user(&root, &user, Default::default())
            .await
            .unwrap();
    }
    let owner = Actor::user(uid(0));
    engine
        .put_group(&owner, &group(), Default::default(), None)
        .await
        .unwrap();
    for user in (1..USERS).map(uid).chain([reader()]) {
        engine.join(&owner, &group(), &user).await.unwrap();
    }
    report("READY");
    let tasks: Vec<_> = (0..SENDERS)
        .map(|t| {
            let engine = engine.clone();
            let round = round.clone();
            tokio::spawn(async move {
                for n in 0u64.. {
                    let conversation = conversation_of(t, n);
                    let client_id = format!("r{round}t{t}n{n}");
                    let mut req = SendRequest::new(Body::new(&body_of(&client_id), 1024).unwrap());
                    req.client_id = Some(client_id.clone());
                    let sender = Actor::user(uid(t % USERS));
                    let (m, new) = engine.send(&sender, &conversation, req).await.unwrap();
                    assert!(new);
                    report(&format!("ACK {conversation} {} {client_id}", m.seq));
                    if conversation.kind() == "group" && n.is_multiple_of(2) {
                        // The reader catches up: cursors move by reading too.
                        let reader = Actor::user(reader());
                        engine
                            .mark_read(&reader, &conversation, None)
                            .await
                            .unwrap();
                    }
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
}

fn spawn_child(mode: &str, round: usize, dir: &Path) -> (Child, BufReader<ChildStdout>) {
    spawn_child_crashing(mode, round, dir, None)
}

/// A child that aborts by itself at `crash` (`<point>:<n>`), if given.
fn spawn_child_crashing(
    mode: &str,
    round: usize,
    dir: &Path,
    crash: Option<&str>,
) -> (Child, BufReader<ChildStdout>) {
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    match crash {
        Some(point) => cmd.env(CRASH_ENV, point),
        None => cmd.env_remove(CRASH_ENV),
    };
    let mut child = cmd
        .args([
            "--exact",
            "child_process",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, format!("{mode}:{round}:{}", dir.display()))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let stdout = BufReader::new(child.stdout.take().unwrap());
    (child, stdout)
}

type Acks = Vec<(String, u64, String)>;

/// Reads the child's lines until `acks` acknowledged sends (or READY when
/// `acks` is 0); returns them as (conversation, seq, client_id).
fn read_acks(stdout: &mut BufReader<ChildStdout>, acks: usize) -> Acks {
    let (out, crashed) = read_lines(stdout, acks);
    assert_eq!(crashed, None, "the child crashed after {} acks", out.len());
    out
}

/// [`read_acks`], ending early at a `CRASH <point>` line: answers the
/// point too.
fn read_lines(stdout: &mut BufReader<ChildStdout>, acks: usize) -> (Acks, Option<String>) {
    let mut out = Vec::new();
    let mut line = String::new();
    loop {
        line.clear();
        let n = stdout.read_line(&mut line).unwrap();
        assert!(n > 0, "the child ended early after {} acks", out.len());
        // The harness may have begun the line (`test child_process ... `).
        let line = line.trim_end();
        if let Some((_, point)) = line.split_once("CRASH ") {
            return (out, Some(point.to_owned()));
        }
        if line.ends_with("READY") && acks == 0 {
            return (out, None);
        }
        if let Some((_, rest)) = line.split_once("ACK ") {
            let mut f = rest.split(' ');
            let (conv, seq, cid) = (f.next().unwrap(), f.next().unwrap(), f.next().unwrap());
            out.push((conv.to_owned(), seq.parse().unwrap(), cid.to_owned()));
            if out.len() == acks {
                return (out, None);
            }
        }
    }
}

/// How a round ends.
enum Kill {
    /// SIGKILL after this many acknowledged sends.
    After(usize),
    /// The child aborts at a crash point, `<point>:<n>`.
    At(&'static str),
}

/// Runs the rounds in `dir` in `mode`, answers every send acknowledged.
fn crash_rounds(mode: &str, dir: &Path, rounds: &[Kill]) -> Acks {
    let mut acked = Vec::new();
    for (round, kill) in rounds.iter().enumerate() {
        match kill {
            Kill::After(n) => {
                let (mut child, mut stdout) = spawn_child(mode, round, dir);
                acked.extend(read_acks(&mut stdout, *n));
                child.kill().unwrap(); // SIGKILL
                child.wait().unwrap();
            }
            Kill::At(spec) => {
                let (mut child, mut stdout) = spawn_child_crashing(mode, round, dir, Some(spec));
                let point = spec.split(':').next().unwrap();
                // A replay point must be reached while opening, before the
                // child is ready.
                let until = if point == "replay" { 0 } else { usize::MAX };
                let (got, crashed) = read_lines(&mut stdout, until);
                if crashed.as_deref() != Some(point) {
                    child.kill().unwrap();
                    child.wait().unwrap();
                    panic!("{spec}: the child did not crash there ({crashed:?})");
                }
                acked.extend(got);
                assert!(!child.wait().unwrap().success(), "{spec}: it aborts");
            }
        }
    }
    acked
}

#[test]
fn acknowledged_sends_survive_sigkill() {
    let started = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    // Twelve kills. A replay runs on every open after a kill (the log holds
    // the writes of the last second or so): the crash in the middle of one
    // comes right after a kill, and the open after it replays again.
    // A short round (under the second after which a log segment is
    // sealed) leaves every write of its child in the log: enough records
    // for the replay that follows to crash at the fifth.
    let rounds = [
        Kill::After(50),
        Kill::At("replay:2"),
        Kill::After(200),
        Kill::At("wal-write:40"),
        Kill::After(30),
        Kill::At("replay:1"),
        Kill::At("replay:5"),
        Kill::After(500),
        Kill::At("wal-write:15"),
        Kill::After(300),
        Kill::At("wal-write:200"),
        Kill::After(1),
    ];
    let acked = crash_rounds("send", dir.path(), &rounds);
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let (engine, logs) = check_after_crashes(dir.path(), &acked).await;
        let lost = lost(&logs, &acked);
        assert!(lost.is_empty(), "{}", lost.join("\n"));
        check_numbering_goes_on(&engine, &logs, &acked).await;
    });
    assert!(
        started.elapsed() < Duration::from_secs(120),
        "took {:?}",
        started.elapsed()
    );
}

#[test]
fn the_check_catches_periodic_mode_losing_acknowledged_sends() {
    let dir = tempfile::tempdir().unwrap();
    let rounds = [Kill::After(100), Kill::After(300), Kill::After(200)];
    let acked = crash_rounds("send-periodic", dir.path(), &rounds);
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let (_, logs) = check_after_crashes(dir.path(), &acked).await;
        let lost = lost(&logs, &acked);
        assert!(
            !lost.is_empty(),
            "periodic mode answers before anything is on disk: the check should have failed"
        );
        eprintln!(
            "periodic mode, as expected: {} lost, first: {}",
            lost.len(),
            lost[0]
        );
    });
}

/// The messages of `acked` missing from `logs`, or there with another
/// client id or body.
fn lost(logs: &BTreeMap<ConversationId, Vec<Message>>, acked: &Acks) -> Vec<String> {
    let mut lost = Vec::new();
    for (conv, seq, cid) in acked {
        let log = &logs[&conv.parse::<ConversationId>().unwrap()];
        match log.get(*seq as usize - 1) {
            None => lost.push(format!("acknowledged {conv} #{seq} ({cid}) was lost")),
            Some(m)
                if m.client_id.as_deref() != Some(cid.as_str())
                    || m.body.as_ref().map(|b| b.get()) != Some(body_of(cid).as_str()) =>
            {
                lost.push(format!("acknowledged {conv} #{seq} ({cid}) is now {m:?}"));
            }
            Some(_) => {}
        }
    }
    lost
}

/// Checks that every structure agrees with the conversation logs, which it
/// answers.
async fn check_after_crashes(
    dir: &Path,
    acked: &Acks,
) -> (Engine<SledStore>, BTreeMap<ConversationId, Vec<Message>>) {
    let engine = Engine::new(open_store(dir));
    let store = engine.store();
    let mut conversations: BTreeSet<ConversationId> = (0..SENDERS)
        .flat_map(|t| [conversation_of(t, 0), conversation_of(t, 1)])
        .collect();
    conversations.extend(acked.iter().map(|(c, ..)| c.parse().unwrap()));

    // Every log is dense from 1 and holds each client id once.
    let mut logs = BTreeMap::new();
    for c in &conversations {
        let last = store.last_seq(c).await.unwrap();
        let log = store.messages(c, 1, u64::MAX).await.unwrap();
        let seqs: Vec<u64> = log.iter().map(|m| m.seq).collect();
        assert_eq!(seqs, (1..=last).collect::<Vec<_>>(), "{c}: seqs 1..={last}");
        let ids: BTreeSet<_> = log.iter().map(|m| m.client_id.clone().unwrap()).collect();
        assert_eq!(ids.len(), log.len(), "{c}: a client id appears twice");
        logs.insert(c.clone(), log);
    }

    for user in (0..USERS).map(uid).chain([reader()]) {
        // The feed references each message of the user's conversations once.
        let feed = store.feed(&user, 0, usize::MAX).await.unwrap();
        assert_eq!(feed.trimmed, 0);
        assert_eq!(feed.entries.len() as u64, feed.head);
        let mut seen = BTreeMap::new();
        for e in &feed.entries {
            if let Event::Message { conversation, seq } = &e.event {
                *seen.entry((conversation.clone(), *seq)).or_insert(0) += 1;
            }
        }
        let mut want = BTreeMap::new();
        for (c, log) in &logs {
            let takes_part = match c {
                ConversationId::Direct(a, b) => *a == user || *b == user,
                ConversationId::Group(_) | ConversationId::Room(_) => true,
            };
            if takes_part {
                want.extend(log.iter().map(|m| ((c.clone(), m.seq), 1)));
            }
        }
        assert_eq!(seen, want, "{user}'s feed");

        // Unread counts: last_seq - read_seq, which is exactly the others'
        // messages after the cursor.
        let views = engine
            .conversations(&Actor::user(user.clone()), Some(500))
            .await
            .unwrap();
        let entries = store.entries(&user).await.unwrap();
        assert_eq!(views.len(), entries.len());
        for e in &entries {
            let log = &logs[&e.conversation];
            let last = log.len() as u64;
            assert!(
                e.read_seq <= last,
                "{user} read past the end of {}",
                e.conversation
            );
            let others_after = log
                .iter()
                .filter(|m| m.seq > e.read_seq && m.from != user)
                .count() as u64;
            assert_eq!(
                others_after,
                last - e.read_seq,
                "{user} in {}",
                e.conversation
            );
            let view = views.iter().find(|v| v.id == e.conversation).unwrap();
            assert_eq!(view.unread, last - e.read_seq);
            // Every send reaches every participant: the conversation's
            // activity is its last message's time.
            if let Some(newest) = log.last() {
                assert_eq!(
                    e.activity, newest.ts,
                    "{user} in {}: activity",
                    e.conversation
                );
            }
        }
    }

    (engine, logs)
}

/// Client ids still deduplicate, and the store goes on numbering.
async fn check_numbering_goes_on(
    engine: &Engine<SledStore>,
    logs: &BTreeMap<ConversationId, Vec<Message>>,
    acked: &Acks,
) {
    let (conv, seq, cid) = acked.last().unwrap();
    let conversation: ConversationId = conv.parse().unwrap();
    let t: usize = cid.split(['t', 'n']).nth(1).unwrap().parse().unwrap();
    let mut req = SendRequest::new(Body::new(&body_of(cid), 1024).unwrap());
    req.client_id = Some(cid.clone());
    let (m, new) = engine
        .send(&Actor::user(uid(t % USERS)), &conversation, req)
        .await
        .unwrap();
    assert_eq!((m.seq, new), (*seq, false));
    let body = Body::new(r#"{"after":"crashes"}"#, 1024).unwrap();
    let (m, new) = engine
        .send(
            &Actor::user(uid(t % USERS)),
            &conversation,
            SendRequest::new(body),
        )
        .await
        .unwrap();
    assert_eq!((m.seq, new), (logs[&conversation].len() as u64 + 1, true));
}

#[test]
fn a_directory_held_by_another_process_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (mut child, mut stdout) = spawn_child("hold", 0, dir.path());
    read_acks(&mut stdout, 0);
    let err = SledStore::open(SledConfig::new(dir.path())).expect_err("the child holds it");
    assert!(matches!(err, Error::Locked { .. }), "{err:?}");
    assert_eq!(
        err.to_string(),
        format!(
            "database at {} is in use by another process",
            dir.path().display()
        )
    );
    assert!(matches!(StoreError::from(err), StoreError::Backend(_)));
    child.kill().unwrap();
    child.wait().unwrap();
    // Once the holder is gone, the directory opens.
    let store = open_store(dir.path());
    assert_eq!(store.path(), dir.path());
}
