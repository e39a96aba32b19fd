//! The web chat page end to end, in a real browser: the built `im-http`
//! binary on a sled directory, and `tests/browser/chat.mjs` driving two
//! windows of headless Chromium with playwright-core. Halfway through, the
//! script asks for a server restart (same port, same data) and checks that
//! the pages resume without losing or doubling a message. Live signals are
//! checked as the pages show them: the typing line, "seen" under a read
//! message, and a contact's dot following sign-out, sign-in and a closed
//! window (the server's presence grace is 1 s here).
//!
//! Needs Debian's `chromium` and `node_modules` in `tests/browser/`;
//! `scripts/deps/browser.sh` (run by `./scripts/test`) installs both. Without
//! them this test fails and says so: it is never skipped.

#![cfg(feature = "sled")]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_im-http");
const SECRET: &str = "browser test secret";
/// The whole browser run, restart and presence checks included, takes about
/// 25 s.
const RUN_LIMIT: Duration = Duration::from_secs(120);

/// `im-http serve` on a sled directory and a fixed port.
struct Server {
    child: Child,
}

impl Server {
    fn start(data: &Path, port: u16, log: &Path) -> Server {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .unwrap();
        let child = Command::new(BIN)
            .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
            .arg("--store")
            .arg(format!("sled:{}", data.display()))
            .args(["--secret", SECRET])
            // The page's presence checks wait out the grace three times.
            .args(["--presence-grace-ms", "1000"])
            // Rooms are paced: a burst leaves a "load the skipped" line.
            .args(["--room-push-interval-ms", "1000", "--room-push-count", "3"])
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        let server = Server { child };
        let deadline = Instant::now() + Duration::from_secs(20);
        while http(port, "GET", "/healthz", None, None).map(|r| r.0) != Some(200) {
            assert!(Instant::now() < deadline, "the server did not come up");
            std::thread::sleep(Duration::from_millis(25));
        }
        server
    }

    /// SIGTERM, and a clean exit.
    fn stop(mut self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                assert!(status.success(), "im-http serve exited with {status}");
                return;
            }
            assert!(Instant::now() < deadline, "no exit after SIGTERM");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One request on a fresh connection; `None` when nothing answers.
fn http(
    port: u16,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&Value>,
) -> Option<(u16, String)> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let body = body.map(Value::to_string).unwrap_or_default();
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nhost: 127.0.0.1:{port}\r\nconnection: close\r\ncontent-length: {}\r\n",
        body.len()
    );
    if let Some(token) = token {
        req.push_str(&format!("authorization: Bearer {token}\r\n"));
    }
    if !body.is_empty() {
        req.push_str("content-type: application/json\r\n");
    }
    req.push_str("\r\n");
    req.push_str(&body);
    stream.write_all(req.as_bytes()).ok()?;
    let mut resp = String::new();
    stream.read_to_string(&mut resp).ok()?;
    let status = resp.get(9..12)?.parse().ok()?;
    let body = resp.split_once("\r\n\r\n")?.1.to_owned();
    Some((status, body))
}

/// A request that must answer `want`.
#[track_caller]
fn call(port: u16, method: &str, path: &str, token: &str, body: Value, want: u16) {
    let (status, text) = http(port, method, path, Some(token), Some(&body))
        .unwrap_or_else(|| panic!("{method} {path}: no answer"));
    assert_eq!(status, want, "{method} {path}: {text}");
}

/// A token from `im-http token`, as a shell script would get one.
fn token(user: &str, admin: bool) -> String {
    let mut cmd = Command::new(BIN);
    cmd.args(["token", user, "--secret", SECRET]);
    if admin {
        cmd.arg("--admin");
    }
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn answer(stdin: &mut ChildStdin, line: &str) {
    writeln!(stdin, "{line}").expect("the browser script reads its stdin");
}

#[test]
fn two_people_chat_in_the_web_page_across_a_server_restart() {
    let script_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser");
    assert!(
        script_dir.join("node_modules/playwright-core").is_dir(),
        "the browser test needs playwright-core: run ./scripts/test (scripts/deps/browser.sh \
         installs it), or `npm ci --prefix im-http/tests/browser`"
    );
    let shots = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("browser-screenshots");
    let _ = std::fs::remove_dir_all(&shots);
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let log = dir.path().join("server.log");
    let port = free_port();
    let mut server = Some(Server::start(&data, port, &log));

    let admin = token("root", true);
    for user in ["alice", "bob", "carol"] {
        call(
            port,
            "PUT",
            &format!("/v1/users/{user}"),
            &admin,
            json!({}),
            201,
        );
    }
    let (alice, bob) = (token("alice", false), token("bob", false));
    let bob_password = "bob's long password";
    let body = json!({ "password": bob_password });
    call(port, "PUT", "/v1/users/bob/password", &admin, body, 204);
    // Enough history for more than one page (the page loads 50 at a time),
    // sent by an admin as carol: faster than a user's send rate limit
    // allows, and admins are not rate limited.
    for i in 1..=60 {
        let body = json!({ "body": { "text": format!("page test {i}") }, "from": "carol" });
        call(
            port,
            "POST",
            "/v1/conversations/dm:carol:alice/messages",
            &admin,
            body,
            201,
        );
    }

    let mut node = Command::new("node")
        .arg("chat.mjs")
        .current_dir(&script_dir)
        .env("IM_URL", format!("http://127.0.0.1:{port}"))
        .env("IM_ALICE", &alice)
        .env("IM_BOB", &bob)
        .env("IM_BOB_PASSWORD", bob_password)
        .env("IM_SHOTS", &shots)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("node runs (install Node.js 20 or newer: scripts/deps/browser.sh does)");
    let mut stdin = node.stdin.take().unwrap();
    let stdout = BufReader::new(node.stdout.take().unwrap());

    // A stuck browser must not hang the test run.
    let (done, finished) = mpsc::channel::<()>();
    let pid = node.id();
    let watchdog = std::thread::spawn(move || {
        if finished.recv_timeout(RUN_LIMIT).is_err() {
            eprintln!("the browser test ran over {RUN_LIMIT:?}: stopping it");
            let _ = Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .status();
        }
    });

    for line in stdout.lines() {
        let line = line.unwrap();
        match line.as_str() {
            "@@stop" => {
                server.take().expect("the server is running").stop();
                answer(&mut stdin, "@@stopped");
            }
            "@@start" => {
                assert!(server.is_none(), "the server is running already");
                server = Some(Server::start(&data, port, &log));
                // Sent while Alice's page has no event stream: it must
                // get these by resuming from its cursor.
                for i in 1..=2 {
                    let body =
                        json!({ "body": { "text": format!("sent while you were away {i}") } });
                    call(
                        port,
                        "POST",
                        "/v1/conversations/dm:alice:bob/messages",
                        &bob,
                        body,
                        201,
                    );
                }
                answer(&mut stdin, "@@started");
            }
            other => println!("chat.mjs: {other}"),
        }
    }
    let status = node.wait().unwrap();
    let _ = done.send(());
    watchdog.join().unwrap();
    println!("screenshots: {}", shots.display());
    if !status.success() {
        let log = std::fs::read_to_string(&log).unwrap_or_default();
        let tail: Vec<&str> = log.lines().rev().take(40).collect();
        println!("server log (last lines, newest first):");
        for line in tail {
            println!("  {line}");
        }
    }
    assert!(
        status.success(),
        "tests/browser/chat.mjs failed ({status}); its output is above, screenshots in {}",
        shots.display()
    );
    if let Some(server) = server.take() {
        server.stop();
    }
}
