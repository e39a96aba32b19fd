//! Webhooks with the real binary (`--webhook-url`, `--webhook-secret`):
//! a server SIGKILLed and restarted resumes after the last acknowledged
//! event (sled, one Redis), and two servers on one Redis deliver each
//! event once between them, the survivor taking over when the one
//! delivering is killed.
#![cfg(any(feature = "sled", feature = "redis"))]

#[allow(dead_code)]
#[path = "api/common.rs"]
mod common;
#[allow(dead_code)]
#[path = "api/receiver.rs"]
mod receiver;

use std::net::SocketAddr;
use std::process::{Child, Command};
use std::time::Duration;

use common::{Client, WAIT};
use receiver::Receiver;
use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_im-http");
const SECRET: &str = "webhook nodes test secret";
const KEY: &[u8] = b"webhook nodes key";

/// A running `im-http serve` with a webhook, killed (SIGKILL) when
/// dropped.
struct Node {
    child: Child,
    addr: SocketAddr,
}

impl Node {
    fn start(store_args: &[&str], url: &str) -> Node {
        let mut cmd = Command::new(BIN);
        cmd.args(["serve", "--listen", "127.0.0.1:0", "--secret", SECRET])
            .args(store_args)
            .args(["--webhook-url", url, "--webhook-lease-ms", "1000"])
            .args(["--send-rate", "0"])
            .env("IM_WEBHOOK_SECRET", std::str::from_utf8(KEY).unwrap())
            .env_remove("IM_SECRET")
            .env("RUST_LOG", "info");
        let (child, addr, _log) = common::spawn_serve(cmd);
        Node { child, addr }
    }

    fn client(&self, user: &str, admin: bool) -> Client {
        Client::signed(self.addr, SECRET, user, admin)
    }

    /// How many events this node's receiver acknowledged, from its metrics.
    async fn delivered(&self) -> u64 {
        let text = self.client("root", true).get("/metrics").await.text();
        text.lines()
            .find_map(|l| l.strip_prefix("im_webhook_delivered_total "))
            .and_then(|n| n.trim().parse().ok())
            .unwrap_or(0)
    }

    /// SIGKILL, and wait for the process to go.
    fn kill(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn users(node: &Node) {
    for name in ["alice", "bob"] {
        let r = node
            .client("root", true)
            .put(&format!("/v1/users/{name}"), json!({}))
            .await;
        assert!(r.status / 100 == 2, "{}", r.text());
    }
}

async fn send(node: &Node, from: u64, to: u64) {
    let alice = node.client("alice", false);
    for n in from..=to {
        let r = alice.send("dm:alice:bob", json!({ "n": n })).await;
        assert_eq!(r.status, 201, "{}", r.text());
    }
}

/// The `n` of each message event acknowledged, in order; each id once.
fn numbers(acked: &[Value]) -> Vec<u64> {
    let mut ids: Vec<&str> = acked.iter().map(|e| e["id"].as_str().unwrap()).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), acked.len(), "each event once: {acked:#?}");
    acked
        .iter()
        .map(|e| {
            assert_eq!(e["event"], "message", "{e}");
            e["data"]["body"]["n"].as_u64().unwrap()
        })
        .collect()
}

/// Sends 1..=5 and waits for the receiver to acknowledge them, kills the
/// server with SIGKILL, starts it again on the same store, sends 6..=8:
/// the receiver gets 6, 7, 8 next, not 1..=5 again.
async fn resumes_after_sigkill(store_args: &[&str]) {
    let receiver = Receiver::start(KEY, 0).await;
    let node = Node::start(store_args, &receiver.url);
    users(&node).await;
    send(&node, 1, 5).await;
    receiver.wait_for(5, WAIT).await;
    // The acknowledgement is stored right after the 2xx.
    tokio::time::sleep(Duration::from_millis(300)).await;
    node.kill();

    let node = Node::start(store_args, &receiver.url);
    send(&node, 6, 8).await;
    let acked = receiver.wait_for(8, WAIT).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        numbers(&receiver.acked()),
        (1..=8).collect::<Vec<_>>(),
        "{acked:#?}"
    );
}

#[cfg(feature = "sled")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_server_resumes_after_the_last_acknowledged_event_on_sled() {
    let dir = tempfile::tempdir().unwrap();
    let store = format!("sled:{}", dir.path().join("data").display());
    resumes_after_sigkill(&["--store", &store]).await;
}

#[cfg(feature = "redis")]
fn redis_args(prefix: &str) -> Vec<String> {
    let url = im_store_redis::testing::shared_url();
    ["--store", &url, "--redis-prefix", prefix]
        .map(str::to_owned)
        .into()
}

#[cfg(feature = "redis")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_server_resumes_after_the_last_acknowledged_event_on_redis() {
    if im_store_redis::testing::skip() {
        return;
    }
    let args = redis_args(&im_store_redis::testing::unique_prefix());
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    resumes_after_sigkill(&args).await;
}

/// Two servers on one Redis: each event reaches the receiver once between
/// them, from the one holding the lease; when that one is killed, the
/// other delivers what comes next.
#[cfg(feature = "redis")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_deliver_each_event_once_and_hand_over() {
    if im_store_redis::testing::skip() {
        return;
    }
    let receiver = Receiver::start(KEY, 0).await;
    let args = redis_args(&im_store_redis::testing::unique_prefix());
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let a = Node::start(&args, &receiver.url);
    let b = Node::start(&args, &receiver.url);
    users(&a).await;
    send(&a, 1, 5).await;
    send(&b, 6, 10).await;
    receiver.wait_for(10, WAIT).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(numbers(&receiver.acked()), (1..=10).collect::<Vec<_>>());
    let (da, db) = (a.delivered().await, b.delivered().await);
    assert_eq!((da.min(db), da.max(db)), (0, 10), "one node delivers");

    // Kill the one delivering; the other takes over within the lease.
    let (survivor, holder) = if da > 0 { (b, a) } else { (a, b) };
    holder.kill();
    send(&survivor, 11, 15).await;
    receiver.wait_for(15, WAIT).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(numbers(&receiver.acked()), (1..=15).collect::<Vec<_>>());
    assert_eq!(survivor.delivered().await, 5);
}
