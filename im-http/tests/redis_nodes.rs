//! Several `im-http` processes on one Redis (and on a Redis Cluster): the
//! real binary, spawned twice, with real redis-server processes.
//!
//! - what is sent through node A reaches an SSE client on node B once, in
//!   order; a cursor from A resumes on B; presence spans the nodes;
//! - typing, presence and receipts raised on node A reach a stream on
//!   node B (signals cross nodes over the store's pub/sub);
//! - Redis SIGKILLed under a send load: 503s with the JSON error body
//!   within a bounded time, recovery without restarting im-http, and every
//!   acknowledged message still there (appendonly);
//! - a suspension through node A closes a stream on node B within a
//!   second;
//! - `cross_node_latency` (ignored by default) measures send-through-A to
//!   event-on-B latency:
//!   `cargo test --release -p im-http --test redis_nodes -- --ignored --nocapture`.
#![cfg(feature = "redis")]

#[allow(dead_code)]
#[path = "api/common.rs"]
mod common;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use common::{Client, Sse, WAIT};
use im_store_redis::testing::{RedisServer, shared_cluster_url, shared_url, skip, unique_prefix};
use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_im-http");
const SECRET: &str = "redis nodes test secret";

/// A running `im-http serve` on a Redis store, killed when dropped.
struct Node {
    child: Child,
    addr: SocketAddr,
}

impl Node {
    fn start(url: &str, prefix: &str, timeout_ms: u64) -> Node {
        Self::start_with(url, prefix, timeout_ms, &[])
    }

    /// A node started with `extra` arguments too.
    fn start_with(url: &str, prefix: &str, timeout_ms: u64, extra: &[&str]) -> Node {
        let mut cmd = Command::new(BIN);
        cmd.args(["serve", "--listen", "127.0.0.1:0", "--store", url])
            .args(["--redis-prefix", prefix, "--secret", SECRET])
            .args(["--redis-timeout-ms", &timeout_ms.to_string()])
            // These tests load the store on purpose; rate limits have tests
            // of their own.
            .args(["--send-rate", "0"])
            .args(["--presence-grace-ms", "300"])
            .args(extra)
            .env_remove("IM_SECRET")
            .env("RUST_LOG", "info");
        let (child, addr, _log) = common::spawn_serve(cmd);
        Node { child, addr }
    }

    fn client(&self, user: &str, admin: bool) -> Client {
        Client::signed(self.addr, SECRET, user, admin)
    }

    async fn sse(&self, user: &str, headers: &[(&str, &str)], path: &str) -> Sse {
        let token = self.client(user, false).token.unwrap();
        let sse = Sse::open(self.addr, path, &token, headers).await;
        assert_eq!(sse.status, 200, "{}", sse.head);
        sse
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn create_users(node: &Node, names: &[&str]) {
    for name in names {
        let r = node
            .client("root", true)
            .put(&format!("/v1/users/{name}"), json!({}))
            .await;
        assert_eq!(r.status, 201, "{}", r.text());
    }
}

/// The message events of a stream until `n` have come, with their ids.
async fn messages(sse: &mut Sse, n: usize) -> Vec<(String, u64)> {
    let mut out = Vec::new();
    while out.len() < n {
        let e = sse
            .next_event(WAIT)
            .await
            .unwrap_or_else(|| panic!("only {} of {n} events came", out.len()));
        assert_eq!(e.event, "message", "{e:?}");
        out.push((e.id, e.data["seq"].as_u64().unwrap()));
    }
    out
}

async fn two_nodes_share_one_store(url: &str) {
    let prefix = unique_prefix();
    let (a, b) = (
        Node::start(url, &prefix, 2000),
        Node::start(url, &prefix, 2000),
    );
    create_users(&a, &["alice", "bob"]).await;
    let mut live = b.sse("bob", &[], "/v1/events").await;
    // Bob is online, as node A sees it.
    common::eventually("bob online through A", || async {
        a.client("bob", false).get("/v1/users/bob").await.json()["online"] == json!(true)
    })
    .await;

    let alice = a.client("alice", false);
    let total = 30;
    for n in 1..=total {
        let r = alice.send("dm:alice:bob", json!({ "n": n })).await;
        assert_eq!(r.status, 201, "{}", r.text());
    }
    let got = messages(&mut live, total).await;
    let seqs: Vec<u64> = got.iter().map(|(_, s)| *s).collect();
    assert_eq!(
        seqs,
        (1..=total as u64).collect::<Vec<_>>(),
        "once each, in order"
    );
    assert!(
        live.next_event(Duration::from_millis(300)).await.is_none(),
        "nothing more"
    );

    // A cursor handed out by A resumes on B.
    let poll = a
        .client("bob", false)
        .request(hyper::Method::GET, "/v1/events?after=0&limit=10")
        .header("accept", "application/json")
        .send()
        .await
        .json();
    let cursor = poll["events"][9]["id"].as_str().unwrap().to_owned();
    assert_eq!(poll["events"][9]["data"]["seq"], json!(10));
    let mut resumed = b
        .sse("bob", &[("last-event-id", &cursor)], "/v1/events")
        .await;
    let again = messages(&mut resumed, total - 10).await;
    assert_eq!(again, got[10..], "the same events, with the same ids");
    assert!(
        resumed
            .next_event(Duration::from_millis(300))
            .await
            .is_none()
    );

    drop((live, resumed));
    common::eventually("bob offline once his streams closed", || async {
        a.client("bob", false).get("/v1/users/bob").await.json()["online"] == json!(false)
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_share_one_redis() {
    if skip() {
        return;
    }
    two_nodes_share_one_store(&shared_url()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_share_one_redis_cluster() {
    if skip() {
        return;
    }
    two_nodes_share_one_store(&shared_cluster_url()).await;
}

/// An admin suspends a user through node A: its stream on node B closes
/// within a second (B reads the suspended users every 500 ms by default),
/// and B refuses its requests; lifted through A, B serves it again.
async fn a_suspension_reaches_every_node(url: &str) {
    let prefix = unique_prefix();
    let (a, b) = (
        Node::start(url, &prefix, 2000),
        Node::start(url, &prefix, 2000),
    );
    create_users(&a, &["carol"]).await;
    let mut live = b.sse("carol", &[], "/v1/events").await;
    let r = a
        .client("root", true)
        .put("/v1/users/carol", json!({"suspended": true}))
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let suspended = Instant::now();
    while live.next_frame(WAIT).await.is_some() {}
    let took = suspended.elapsed();
    assert!(
        took < Duration::from_secs(1),
        "node B's stream stayed open {took:?}"
    );
    b.client("carol", false)
        .get("/v1/conversations")
        .await
        .assert_error(403, "suspended");

    let r = a
        .client("root", true)
        .put("/v1/users/carol", json!({"suspended": false}))
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    common::eventually("carol served by B again", || async {
        b.client("carol", false)
            .get("/v1/conversations")
            .await
            .status
            == 200
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_suspension_reaches_every_node_on_one_redis() {
    if skip() {
        return;
    }
    a_suspension_reaches_every_node(&shared_url()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_suspension_reaches_every_node_on_a_redis_cluster() {
    if skip() {
        return;
    }
    a_suspension_reaches_every_node(&shared_cluster_url()).await;
}

/// The next signal (an event without `id:`) named `event`, skipping
/// stored events.
async fn signal(sse: &mut Sse, event: &str) -> Value {
    loop {
        let e = sse.next_event(WAIT).await.expect("a signal");
        if e.id.is_empty() {
            assert_eq!(e.event, event, "{e:?}");
            return e.data;
        }
    }
}

async fn signals_cross_nodes(url: &str) {
    let prefix = unique_prefix();
    let (a, b) = (
        Node::start(url, &prefix, 2000),
        Node::start(url, &prefix, 2000),
    );
    create_users(&a, &["alice", "bob"]).await;
    let (alice, bob) = (a.client("alice", false), b.client("bob", false));
    assert_eq!(bob.put("/v1/contacts/alice", json!({})).await.status, 200);
    let mut bob_on_b = b.sse("bob", &[], "/v1/events").await;

    let alice_on_a = a.sse("alice", &[], "/v1/events").await;
    let online = signal(&mut bob_on_b, "presence").await;
    assert_eq!(
        (&online["user"], &online["online"]),
        (&json!("alice"), &json!(true))
    );

    let r = alice
        .post("/v1/conversations/dm:alice:bob/typing", json!({}))
        .await;
    assert_eq!(r.status, 204, "{}", r.text());
    assert_eq!(
        signal(&mut bob_on_b, "typing").await,
        json!({"conversation": "dm:alice:bob", "user": "alice", "typing": true})
    );

    assert_eq!(bob.send("dm:alice:bob", json!({"t": 1})).await.status, 201);
    let r = alice
        .post("/v1/conversations/dm:alice:bob/read", json!({}))
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        signal(&mut bob_on_b, "receipt").await,
        json!({"conversation": "dm:alice:bob", "user": "alice", "read_seq": 1})
    );

    drop(alice_on_a);
    let offline = signal(&mut bob_on_b, "presence").await;
    assert_eq!(
        (&offline["user"], &offline["online"]),
        (&json!("alice"), &json!(false))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signals_cross_nodes_on_one_redis() {
    if skip() {
        return;
    }
    signals_cross_nodes(&shared_url()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signals_cross_nodes_on_a_redis_cluster() {
    if skip() {
        return;
    }
    signals_cross_nodes(&shared_cluster_url()).await;
}

/// A room's message sent through node A reaches every stream watching the
/// room on node B (two there) and on A, once each, without `id:`; node B
/// follows the room with one subscription however many of its streams
/// watch it (on one Redis, `PUBSUB NUMSUB` counts one per node).
async fn two_nodes_share_a_room(url: &str, count_subscribers: bool) {
    let prefix = unique_prefix();
    let (a, b) = (
        Node::start(url, &prefix, 2000),
        Node::start(url, &prefix, 2000),
    );
    create_users(&a, &["alice", "bob", "carol"]).await;
    let alice = a.client("alice", false);
    assert_eq!(
        alice
            .put("/v1/rooms/hall", json!({"join": "open"}))
            .await
            .status,
        201
    );
    for u in ["bob", "carol"] {
        let r = b
            .client(u, false)
            .put(&format!("/v1/rooms/hall/members/{u}"), json!(null))
            .await;
        assert_eq!(r.status, 200, "{}", r.text());
    }
    let path = "/v1/events?rooms=hall";
    let mut on_b = [
        b.sse("bob", &[], path).await,
        b.sse("carol", &[], path).await,
    ];
    let mut on_a = a.sse("alice", &[], path).await;
    if count_subscribers {
        let channel = format!("{prefix}{{c:group:hall}}:roomlive");
        let out = Command::new("redis-cli")
            .args(["-u", url, "PUBSUB", "NUMSUB", &channel])
            .output()
            .expect("redis-cli runs");
        let text = String::from_utf8_lossy(&out.stdout);
        assert_eq!(
            text.lines().nth(1),
            Some("2"),
            "one subscription per node: {text}"
        );
    }
    for n in 1..=3u64 {
        assert_eq!(alice.send("room:hall", json!({"n": n})).await.status, 201);
    }
    for sse in on_b.iter_mut().chain([&mut on_a]) {
        for n in 1..=3u64 {
            let e = sse.next_event(WAIT).await.expect("the room's message");
            assert_eq!((e.event.as_str(), e.id.as_str()), ("message", ""));
            assert_eq!(
                (e.data["seq"].clone(), e.data["body"].clone()),
                (json!(n), json!({"n": n}))
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_share_a_room_on_one_redis() {
    if skip() {
        return;
    }
    two_nodes_share_a_room(&shared_url(), true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_share_a_room_on_a_redis_cluster() {
    if skip() {
        return;
    }
    two_nodes_share_a_room(&shared_cluster_url(), false).await;
}

#[test]
fn token_on_a_redis_store_needs_the_secret() {
    let out = Command::new(BIN)
        .args(["token", "alice", "--store", "redis://127.0.0.1:1"])
        .env_remove("IM_SECRET")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--secret or IM_SECRET"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_crash_is_503_then_recovers_and_keeps_every_acknowledged_message() {
    if skip() {
        return;
    }
    let mut server = RedisServer::start(true);
    let bound = Duration::from_millis(1000);
    let node = Node::start(&server.url(), &unique_prefix(), 1000);
    create_users(&node, &["alice", "bob"]).await;
    let alice = node.client("alice", false);

    // Two senders; each remembers what was acknowledged.
    let acked = std::sync::Arc::new(std::sync::Mutex::new(BTreeMap::<u64, u64>::new()));
    let unavailable = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut senders = Vec::new();
    for t in 0..2u64 {
        let (alice, acked, unavailable, stop) = (
            alice.clone(),
            acked.clone(),
            unavailable.clone(),
            stop.clone(),
        );
        senders.push(tokio::spawn(async move {
            let mut n = t * 1_000_000;
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                n += 1;
                let started = Instant::now();
                let r = alice
                    .post(
                        "/v1/conversations/dm:alice:bob/messages",
                        json!({"body": {"n": n}, "client_id": format!("c{n}")}),
                    )
                    .await;
                let took = started.elapsed();
                match r.status {
                    201 => {
                        acked
                            .lock()
                            .unwrap()
                            .insert(r.json()["seq"].as_u64().unwrap(), n);
                    }
                    503 => {
                        r.assert_error(503, "unavailable");
                        assert!(took < bound * 3, "a 503 took {took:?}");
                        unavailable.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                    other => panic!("unexpected {other}: {}", r.text()),
                }
            }
        }));
    }
    let wait_for = |what: &str, check: &dyn Fn() -> bool| {
        let deadline = Instant::now() + WAIT;
        while !check() {
            assert!(Instant::now() < deadline, "timed out: {what}");
            std::thread::sleep(Duration::from_millis(10));
        }
    };
    wait_for("some sends before the crash", &|| {
        acked.lock().unwrap().len() >= 50
    });
    server.kill();
    let acked_at_crash = acked.lock().unwrap().len();
    wait_for("503s while Redis is down", &|| {
        unavailable.load(std::sync::atomic::Ordering::SeqCst) >= 4
    });
    let health = node.client("root", true).get("/healthz").await;
    health.assert_error(503, "unavailable");

    server.restart();
    wait_for("sends succeed again", &|| {
        acked.lock().unwrap().len() >= acked_at_crash + 50
    });
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    for s in senders {
        s.await.unwrap();
    }
    assert_eq!(node.client("root", true).get("/healthz").await.status, 200);

    // Every acknowledged message is there, with its body.
    let acked = acked.lock().unwrap().clone();
    let mut stored = BTreeMap::new();
    let mut after = 0;
    loop {
        let page = alice
            .get(&format!(
                "/v1/conversations/dm:alice:bob/messages?after={after}&limit=500"
            ))
            .await
            .json();
        for m in page["messages"].as_array().unwrap() {
            let seq = m["seq"].as_u64().unwrap();
            stored.insert(seq, m["body"]["n"].as_u64().unwrap());
            after = seq;
        }
        if page["has_more"] != json!(true) {
            break;
        }
    }
    for (seq, n) in &acked {
        assert_eq!(stored.get(seq), Some(n), "acknowledged message {seq} lost");
    }
    let seqs: Vec<u64> = stored.keys().copied().collect();
    assert_eq!(seqs, (1..=seqs.len() as u64).collect::<Vec<_>>(), "no gap");
}

/// Percentile `p` (0..=100) of sorted samples.
fn percentile(sorted: &[Duration], p: usize) -> Duration {
    sorted[(sorted.len() * p / 100).min(sorted.len() - 1)]
}

async fn latency(label: &str, url: &str, extra: &[&str]) {
    let prefix = unique_prefix();
    let (a, b) = (
        Node::start_with(url, &prefix, 2000, extra),
        Node::start_with(url, &prefix, 2000, extra),
    );
    create_users(&a, &["alice", "bob"]).await;
    let mut sse = b.sse("bob", &[], "/v1/events").await;
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(u64, Instant)>();
    tokio::spawn(async move {
        while let Some(e) = sse.next_event(WAIT).await {
            let seq = e.data["seq"].as_u64().unwrap_or_default();
            if tx.send((seq, Instant::now())).is_err() {
                break;
            }
        }
    });
    let alice = a.client("alice", false);
    // Warm up (and make sure B's subscription is up).
    for n in 0..20 {
        alice.send("dm:alice:bob", json!({ "warm": n })).await;
        rx.recv().await.unwrap();
    }
    let count = 300;
    let mut samples = Vec::with_capacity(count);
    for n in 0..count {
        let sent = Instant::now();
        let r = alice.send("dm:alice:bob", json!({ "n": n })).await;
        assert_eq!(r.status, 201);
        let (_, arrived) = tokio::time::timeout(WAIT, rx.recv())
            .await
            .unwrap()
            .unwrap();
        samples.push(arrived - sent);
    }
    samples.sort();
    let value: Value = json!({
        "store": label,
        "flags": extra.join(" "),
        "messages": count,
        "p50_ms": percentile(&samples, 50).as_secs_f64() * 1e3,
        "p99_ms": percentile(&samples, 99).as_secs_f64() * 1e3,
        "max_ms": samples[count - 1].as_secs_f64() * 1e3,
    });
    println!("cross-node latency: {value}");
}

/// Send through node A → event on node B's SSE stream, over 300 messages
/// sent one after the other, on one Redis and on the cluster; with the
/// default wake-up coalescing (each message here comes sooner than 4 ms
/// after the stream's last read, so it waits) and without it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement: run with --ignored --nocapture"]
async fn cross_node_latency() {
    for extra in [&[][..], &["--stream-coalesce-ms", "0"][..]] {
        latency("redis", &shared_url(), extra).await;
        latency("redis-cluster", &shared_cluster_url(), extra).await;
    }
}
