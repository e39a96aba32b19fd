//! The built `im-http` binary: `serve` and `token` together.

use std::net::SocketAddr;
use std::process::{Child, Command};
use std::time::Duration;

use serde_json::json;

use crate::common::{Client, WAIT};

const BIN: &str = env!("CARGO_BIN_EXE_im-http");

pub fn im_http(args: &[&str]) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.args(args)
        .env_remove("IM_SECRET")
        .env("RUST_LOG", "info");
    cmd
}

/// Runs `im-http token ...` and answers the token it printed.
pub fn token(args: &[&str]) -> String {
    let out = im_http(&[&["token"], args].concat()).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let token = String::from_utf8(out.stdout).unwrap();
    assert_eq!(token.trim().lines().count(), 1, "{token}");
    token.trim().to_owned()
}

/// A running `im-http serve`, stopped with SIGTERM.
pub struct Serve {
    child: Child,
    addr: SocketAddr,
}

impl Serve {
    pub fn start(args: &[&str]) -> Serve {
        let cmd = im_http(&[&["serve", "--listen", "127.0.0.1:0"], args].concat());
        let (child, addr, _log) = crate::common::spawn_serve(cmd);
        Serve { child, addr }
    }

    pub fn client(&self, token: &str) -> Client {
        Client {
            addr: self.addr,
            token: Some(token.to_owned()),
        }
    }

    /// SIGTERM, and a clean exit.
    pub fn stop(mut self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        let deadline = std::time::Instant::now() + WAIT;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                assert!(status.success(), "{status}");
                return;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "no exit after SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test]
async fn tokens_from_the_token_command_work_against_serve() {
    let secret = "binary test secret";
    let serve = Serve::start(&["--store", "memory", "--secret", secret]);
    let admin = token(&["root", "--admin", "--secret", secret, "--store", "memory"]);
    let r = serve.client(&admin).put("/v1/users/alice", json!({})).await;
    assert_eq!(r.status, 201, "{}", r.text());

    let alice = token(&["alice", "--ttl", "30m", "--secret", secret]);
    let r = serve.client(&alice).get("/v1/contacts").await;
    assert_eq!(r.status, 200, "{}", r.text());
    // A user token is not an admin's.
    let r = serve.client(&alice).put("/v1/users/bob", json!({})).await;
    assert_eq!(r.status, 403);
    // Another secret's token is refused.
    let other = token(&["alice", "--secret", "another secret"]);
    assert_eq!(serve.client(&other).get("/v1/contacts").await.status, 401);
    serve.stop();
}

#[test]
fn token_needs_a_secret_and_a_valid_user() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_str().unwrap();
    for args in [
        vec!["token", "alice", "--store", "memory"],
        vec!["token", "alice", "--data-dir", data],
        vec!["token", "not valid", "--secret", "s"],
        vec!["token", "alice", "--secret", "s", "--ttl", "soon"],
    ] {
        let out = im_http(&args).output().unwrap();
        assert!(!out.status.success(), "{args:?}");
        assert!(out.stdout.is_empty());
    }
    // The secret may come from the environment.
    let out = im_http(&["token", "alice"])
        .env("IM_SECRET", "s")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn serve_help_explains_every_option() {
    let out = im_http(&["serve", "--help"]).output().unwrap();
    let help = String::from_utf8(out.stdout).unwrap();
    for option in [
        "--listen",
        "--store",
        "--secret",
        "--max-body-bytes",
        "--max-fields",
        "--max-field-bytes",
        "--max-group-members",
        "--max-page",
        "--feed-retention-events",
        "--keep-alive-secs",
        "IM_SECRET",
    ] {
        assert!(help.contains(option), "{option} missing from\n{help}");
    }
}

#[test]
fn redis_over_tls_is_refused_at_start_with_a_clear_message() {
    for store in ["rediss://127.0.0.1:6379", "rediss+cluster://127.0.0.1:7000"] {
        let out = im_http(&["serve", "--listen", "127.0.0.1:0", "--store", store])
            .args(["--secret", "s"])
            .output()
            .unwrap();
        assert!(!out.status.success(), "{store}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains("rediss://") && stderr.contains("TLS"),
            "{stderr}"
        );
        let out = im_http(&["token", "alice", "--store", store, "--secret", "s"])
            .output()
            .unwrap();
        assert!(!out.status.success(), "{store}");
        assert!(String::from_utf8_lossy(&out.stderr).contains("TLS"));
    }
}
