//! The live server against its own OpenAPI document, fuzzed by schemathesis
//! (PyPI): the built `im-http serve` binary on a memory store, seeded with
//! users, a group and messages, then `schemathesis run` as an admin and as
//! a user, checking for server errors, answers that do not match their
//! schema, undocumented status codes and content types. Any failure fails
//! the test, with schemathesis's report.
//!
//! `./scripts/test` installs schemathesis (`scripts/deps/schemathesis.sh`)
//! and passes its path in `SCHEMATHESIS`; without it, `schemathesis` on the
//! `PATH` is used. `IM_SKIP_SCHEMATHESIS=1` skips the test, and nothing
//! else does.
//!
//! A bounded run by default (a few seconds); for a longer one:
//! `SCHEMATHESIS_MAX_EXAMPLES=500 SCHEMATHESIS_SEED=random cargo test -p
//! im-http --test schemathesis -- --nocapture`.

use std::net::SocketAddr;
use std::process::{Child, Command};
use std::sync::{Arc, Mutex};

use serde_json::json;

#[allow(dead_code)]
#[path = "api/common.rs"]
mod common;

use common::Client;

const BIN: &str = env!("CARGO_BIN_EXE_im-http");
const SECRET: &str = "schemathesis test secret";

/// `im-http serve` on a free port, with its log lines kept.
struct Serve {
    child: Child,
    addr: SocketAddr,
    log: Arc<Mutex<Vec<String>>>,
}

impl Serve {
    fn start() -> Serve {
        let mut cmd = Command::new(BIN);
        cmd.args(["serve", "--listen", "127.0.0.1:0", "--store", "memory"])
            .args(["--secret", SECRET])
            // A long poll may wait 60 s by docs/API.md; the fuzzer asks for any
            // wait, so the server allows 1 s (a longer one is a documented 400).
            .args(["--long-poll-max-secs", "1"])
            .env("RUST_LOG", "info");
        let (child, addr, log) = common::spawn_serve(cmd);
        Serve { child, addr, log }
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn token(user: &str, admin: bool) -> String {
    let uid = user.parse().unwrap();
    im_http::Auth::new(SECRET.as_bytes())
        .token(&uid, admin, None)
        .unwrap()
}

/// The schemathesis executable, or `None` when the test is to be skipped.
fn schemathesis() -> Option<String> {
    if std::env::var("IM_SKIP_SCHEMATHESIS").is_ok_and(|v| v == "1") {
        eprintln!("IM_SKIP_SCHEMATHESIS=1: not running schemathesis");
        return None;
    }
    let exe = std::env::var("SCHEMATHESIS").unwrap_or_else(|_| "schemathesis".into());
    let found = Command::new(&exe)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        found,
        "schemathesis not found ({exe}): run ./scripts/test, which installs it, or \
         `pip install schemathesis==4.32.5` and set SCHEMATHESIS to its executable \
         (IM_SKIP_SCHEMATHESIS=1 skips this test)"
    );
    Some(exe)
}

/// Users root, alice, bob and carol; alice's open group g1 with bob in it;
/// a message in `dm:alice:bob` and one in `group:g1`.
async fn seed(addr: SocketAddr) {
    let admin = Client {
        addr,
        token: Some(token("root", true)),
    };
    for u in ["root", "alice", "bob", "carol"] {
        let r = admin.put(&format!("/v1/users/{u}"), json!({})).await;
        assert_eq!(r.status, 201, "{}", r.text());
    }
    let alice = admin.with_token(&token("alice", false));
    let bob = admin.with_token(&token("bob", false));
    let r = alice.put("/v1/groups/g1", json!({"join": "open"})).await;
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(
        bob.put("/v1/groups/g1/members/bob", json!({})).await.status,
        200
    );
    for c in ["dm:alice:bob", "group:g1"] {
        assert_eq!(alice.send(c, json!({"text": "hi"})).await.status, 201);
    }
}

/// Runs schemathesis as `user`; answers its exit status and output.
fn run(exe: &str, addr: SocketAddr, user: &str, admin: bool) -> (bool, String) {
    let examples = std::env::var("SCHEMATHESIS_MAX_EXAMPLES").unwrap_or_else(|_| "5".into());
    let seed = std::env::var("SCHEMATHESIS_SEED").unwrap_or_else(|_| "1".into());
    let report = tempfile::tempdir().unwrap();
    let mut cmd = Command::new(exe);
    cmd.arg("run")
        .arg(format!("http://{addr}/openapi.json"))
        .args([
            "--checks",
            "not_a_server_error,status_code_conformance,response_schema_conformance,\
             content_type_conformance,response_headers_conformance",
        ])
        .args(["--max-examples", &examples])
        .args(["--request-timeout", "10"])
        .args(["--workers", "1"])
        .arg("--header")
        .arg(format!("Authorization: Bearer {}", token(user, admin)))
        // The long poll, not an endless event stream.
        .args(["--header", "Accept: application/json"])
        .arg("--report-dir")
        .arg(report.path())
        .env("NO_COLOR", "1")
        .env("SCHEMATHESIS_TELEMETRY", "false")
        .current_dir(report.path());
    if seed != "random" {
        cmd.args(["--seed", &seed]);
    }
    let out = cmd.output().expect("schemathesis runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schemathesis_finds_nothing_against_the_live_server() {
    let Some(exe) = schemathesis() else {
        return;
    };
    let serve = Serve::start();
    seed(serve.addr).await;
    let addr = serve.addr;
    for (user, admin) in [("root", true), ("alice", false)] {
        let exe = exe.clone();
        let (ok, out) = tokio::task::spawn_blocking(move || run(&exe, addr, user, admin))
            .await
            .unwrap();
        let summary: String = out
            .lines()
            .skip_while(|l| !l.contains("SUMMARY"))
            .collect::<Vec<_>>()
            .join("\n");
        eprintln!("schemathesis as {user}:\n{summary}");
        assert!(ok, "schemathesis as {user} found problems:\n{out}");
    }
    // Nothing the fuzzer sent made the server panic or answer 500.
    let log = serve.log.lock().unwrap();
    for line in log.iter() {
        assert!(!line.contains("panicked"), "{line}");
        assert!(!line.contains("status=500"), "{line}");
    }
    let answered = log.iter().filter(|l| l.contains("request")).count();
    assert!(
        answered > 100,
        "only {answered} requests reached the server"
    );
}
