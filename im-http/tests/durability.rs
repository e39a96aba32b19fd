//! Durability at the system-call level: the real `im-http serve` on a sled
//! store, run under `strace -f`, while a client sends messages one at a
//! time. For every acknowledged send (each `201` the server writes to its
//! socket), the trace must show, in this order:
//!
//! 1. the send's data written to the store's write-ahead log (a `write` to
//!    a segment `<dir>/im-wal/<lsn>.log` that holds the message's
//!    `client_id`);
//! 2. an `fsync` or `fdatasync` of that segment, started after that write
//!    had returned and returned before 3. (sled's own `sync_file_range` on
//!    its files does not count: it flushes neither the drive's cache nor
//!    the file's size);
//! 3. the `201` holding the message's `client_id` written to the socket.
//!
//! The same check runs in periodic mode (`--sled-periodic-flush-ms`), which
//! answers before flushing, and must find sends that break it: proof that
//! the check can fail.
//!
//! strace must be installed (`scripts/deps/strace.sh` installs it for
//! `scripts/test`); without it these tests fail, saying so.
//!
//! `cargo test -p im-http --test durability`
#![cfg(feature = "sled")]

#[allow(dead_code)]
#[path = "api/common.rs"]
mod common;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use common::{Client, WAIT};
use serde_json::json;

const BIN: &str = env!("CARGO_BIN_EXE_im-http");
const SECRET: &str = "durability test secret";
/// Messages sent, one at a time, in each run.
const SENDS: usize = 8;
/// The system calls traced: every way the server writes to a file or a
/// socket, and every way it syncs a file.
const TRACED: &str = "trace=write,writev,pwrite64,pwritev,pwritev2,sendto,sendmsg,\
                      fsync,fdatasync,sync_file_range";

/// Fails, saying how to install it, when strace is missing or cannot trace.
fn require_strace() {
    const HOW: &str = "install the strace package (apt-get install strace; \
                       ./scripts/test installs it through scripts/deps/strace.sh)";
    let out = Command::new("strace")
        .args(["-f", "-o", "/dev/null", "true"])
        .output()
        .unwrap_or_else(|e| panic!("these tests need strace ({e}): {HOW}"));
    assert!(
        out.status.success(),
        "strace cannot trace here (it needs ptrace): {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `im-http serve` under strace; kills both when dropped.
struct Traced {
    strace: Child,
    /// The traced server: strace's only child.
    server: u32,
    addr: std::net::SocketAddr,
}

impl Traced {
    fn start(data: &Path, trace: &Path, extra: &[&str]) -> Traced {
        require_strace();
        let mut cmd = Command::new("strace");
        cmd.args(["-f", "-y", "-s", "1048576", "-e", TRACED, "-o"])
            .arg(trace)
            .args(["--", BIN, "serve", "--listen", "127.0.0.1:0"])
            .arg("--store")
            .arg(format!("sled:{}", data.display()))
            .args(["--secret", SECRET])
            .args(extra)
            .env_remove("IM_SECRET")
            .env("RUST_LOG", "info");
        let (strace, addr, _log) = common::spawn_serve(cmd);
        let children = format!("/proc/{0}/task/{0}/children", strace.id());
        let server = std::fs::read_to_string(&children)
            .unwrap_or_else(|e| panic!("{children}: {e}"))
            .split_whitespace()
            .next()
            .and_then(|pid| pid.parse().ok())
            .expect("strace runs the server as its child");
        Traced {
            strace,
            server,
            addr,
        }
    }

    fn client(&self, user: &str, admin: bool) -> Client {
        Client::signed(self.addr, SECRET, user, admin)
    }

    /// SIGTERM to the server, and waits until strace (which exits with it)
    /// has written the whole trace.
    fn stop(mut self) {
        signal("TERM", self.server);
        let deadline = Instant::now() + WAIT;
        while self.strace.try_wait().unwrap().is_none() {
            assert!(Instant::now() < deadline, "no exit after SIGTERM");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Traced {
    fn drop(&mut self) {
        if self.strace.try_wait().ok().flatten().is_none() {
            // Killing strace alone would leave the server running, detached.
            signal("KILL", self.server);
            let _ = self.strace.kill();
            let _ = self.strace.wait();
        }
    }
}

fn signal(name: &str, pid: u32) {
    let _ = Command::new("kill")
        .args([&format!("-{name}"), &pid.to_string()])
        .status();
}

/// The `client_id` of the `i`th message: unique in the trace, and no
/// prefix of another.
fn marker(i: usize) -> String {
    format!("durability-probe-{i:03}-end")
}

/// Runs the server on a new sled directory with `extra` arguments, sends
/// [`SENDS`] messages one after the other (each answered 201 before the
/// next), stops it, and answers the trace and the log's directory.
async fn traced_sends(extra: &[&str]) -> (String, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let trace = tmp.path().join("strace.txt");
    let server = Traced::start(&data, &trace, extra);
    for user in ["alice", "bob"] {
        let r = server
            .client("root", true)
            .put(&format!("/v1/users/{user}"), json!({}))
            .await;
        assert_eq!(r.status, 201, "{}", r.text());
    }
    let alice = server.client("alice", false);
    for i in 0..SENDS {
        let r = alice
            .post(
                "/v1/conversations/dm:alice:bob/messages",
                json!({"body": {"n": i}, "client_id": marker(i)}),
            )
            .await;
        assert_eq!(r.status, 201, "{}", r.text());
    }
    server.stop();
    // strace names files by their resolved path.
    let log = data.canonicalize().unwrap().join("im-wal");
    (std::fs::read_to_string(&trace).unwrap(), log)
}

/// One system call of the trace.
#[derive(Debug)]
struct Call {
    name: String,
    /// Its arguments and result, with the part after an `<unfinished ...>`.
    text: String,
    /// The lines it started and returned on: another call's line between
    /// them ran while it was in the kernel.
    start: usize,
    end: usize,
}

/// The calls of an `strace -f` log, whose lines start with the thread id.
/// A call that another thread's call interrupted in the log is split in two
/// lines: `name(args <unfinished ...>` and `<... name resumed>rest`.
fn parse(trace: &str) -> Vec<Call> {
    let mut calls = Vec::new();
    let mut open: HashMap<&str, usize> = HashMap::new();
    for (line_no, line) in trace.lines().enumerate() {
        let Some((tid, rest)) = line.split_once(' ') else {
            continue;
        };
        let rest = rest.trim_start();
        if let Some(resumed) = rest.strip_prefix("<... ") {
            let Some(i) = open.remove(tid) else { continue };
            let call: &mut Call = &mut calls[i];
            call.text.push_str(resumed);
            call.end = line_no;
        } else if let Some((name, args)) = rest.split_once('(') {
            if name.starts_with(['-', '+']) || name.contains(' ') {
                continue;
            }
            let unfinished = args.ends_with("<unfinished ...>");
            calls.push(Call {
                name: name.to_owned(),
                text: args.to_owned(),
                start: line_no,
                end: line_no,
            });
            if unfinished {
                open.insert(tid, calls.len() - 1);
            }
        }
    }
    calls
}

/// The file a call's first argument names (`7</dir/file>`), as strace -y
/// shows it.
fn file_of(c: &Call) -> Option<&str> {
    let (_, rest) = c.text.split_once('<')?;
    Some(rest.split_once('>')?.0)
}

/// Every send of [`traced_sends`] whose 201 was written without its data
/// having been written to a segment in `log` and then that segment
/// fsynced; empty when all were.
fn unsynced_acks(trace: &str, log: &Path) -> Vec<String> {
    let calls = parse(trace);
    let in_log = format!("{}/", log.display());
    let on_log = |c: &Call| file_of(c).is_some_and(|f| f.starts_with(&in_log));
    let is_write = |c: &Call| {
        ["write", "writev", "pwrite64", "pwritev", "pwritev2"].contains(&c.name.as_str())
    };
    let writes_log = |c: &Call| is_write(c) && on_log(c);
    let is_sync = |c: &Call| c.name == "fsync" || c.name == "fdatasync";
    let is_socket_write = |c: &Call| {
        ["write", "writev", "sendto", "sendmsg"].contains(&c.name.as_str())
            && file_of(c).is_some_and(|f| f.starts_with("TCP") || f.starts_with("socket"))
    };
    let syncs = calls.iter().filter(|c| is_sync(c) && on_log(c)).count();
    let mut failures = Vec::new();
    for i in 0..SENDS {
        let m = marker(i);
        let ack = calls
            .iter()
            .find(|c| is_socket_write(c) && c.text.contains("HTTP/1.1 201") && c.text.contains(&m))
            .unwrap_or_else(|| {
                panic!("no 201 holding {m} in the trace, which the client received:\n{trace}")
            });
        let Some(data) = calls
            .iter()
            .rfind(|c| writes_log(c) && c.text.contains(&m) && c.end < ack.start)
        else {
            failures.push(format!(
                "send {i}: its 201 (line {}) was written before its data reached {}",
                ack.start + 1,
                log.display()
            ));
            continue;
        };
        if !calls.iter().any(|c| {
            is_sync(c) && file_of(c) == file_of(data) && c.start > data.end && c.end < ack.start
        }) {
            failures.push(format!(
                "send {i}: no fsync or fdatasync of {} between its data write (line {}) and its 201 (line {})",
                file_of(data).unwrap_or("?"),
                data.end + 1,
                ack.start + 1
            ));
        }
    }
    if !failures.is_empty() {
        failures.push(format!(
            "({syncs} fsync/fdatasync calls on the log in {} traced calls)",
            calls.len()
        ));
    }
    failures
}

#[tokio::test]
async fn every_durable_send_is_fsynced_before_its_201() {
    let (trace, log) = traced_sends(&[]).await;
    let failures = unsynced_acks(&trace, &log);
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[tokio::test]
async fn the_check_catches_periodic_mode_answering_before_the_sync() {
    let (trace, log) = traced_sends(&["--sled-periodic-flush-ms", "1000"]).await;
    let failures = unsynced_acks(&trace, &log);
    assert!(
        !failures.is_empty(),
        "periodic mode answers before it flushes: the check should have failed"
    );
    eprintln!("periodic mode, as expected:\n{}", failures.join("\n"));
}
