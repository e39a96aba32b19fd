//! Webhooks (`Config::webhook`): every firehose event POSTed to a real
//! receiver, signed, in order, retried until it answers 2xx; a receiver
//! that never answers 2xx slows no send.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use im_http::Webhook;
use serde_json::{Value, json};

use crate::common::{Server, WAIT};
use crate::receiver::{Receiver, verify_independently};

const KEY: &[u8] = b"webhook test key";

fn hook(url: &str) -> Webhook {
    let mut hook = Webhook::new(url, KEY).unwrap();
    hook.backoff_first = Duration::from_millis(10);
    hook.backoff_cap = Duration::from_millis(50);
    hook.lease_ttl = Duration::from_millis(600);
    hook
}

#[test]
fn the_signature_is_hmac_sha256_in_hex() {
    // RFC 4231, test case 2.
    assert_eq!(
        im_http::signature(b"Jefe", b"what do ya want for nothing?"),
        "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
    );
    let body = br#"{"id":"1","event":"message","data":{}}"#;
    let header = im_http::signature(KEY, body);
    assert!(verify_independently(KEY, body, &header));
    assert!(!verify_independently(b"another key", body, &header));
    assert!(!verify_independently(KEY, b"{}", &header));
}

/// The ids and names of what the receiver acknowledged.
fn names(acked: &[Value]) -> Vec<String> {
    acked
        .iter()
        .map(|e| match e["event"].as_str().unwrap() {
            "message" => format!("message {}", e["data"]["body"]["n"]),
            other => other.to_owned(),
        })
        .collect()
}

/// A receiver that answers 500 to its first requests, then 200, gets
/// every event once, in order, each signed; its ids are the firehose's.
async fn a_failing_receiver_gets_everything_in_order<S: im_engine::Store>(store: S) {
    let receiver = Receiver::start(KEY, 6).await;
    let s = Server::start_on(store, |_, c| c.webhook = Some(hook(&receiver.url))).await;
    let [alice, _bob] = s.users(["alice", "bob"]).await;
    alice.put("/v1/groups/g", json!({})).await;
    alice.put("/v1/groups/g/members/bob", json!(null)).await;
    for n in 1..=8 {
        let c = if n % 2 == 0 {
            "group:g"
        } else {
            "dm:alice:bob"
        };
        let r = alice.send(c, json!({"n": n})).await;
        assert_eq!(r.status, 201, "{}", r.text());
    }
    let acked = receiver.wait_for(10, WAIT).await;
    let mut want = vec!["member".to_owned(), "member".to_owned()];
    want.extend((1..=8).map(|n| format!("message {n}")));
    assert_eq!(names(&acked), want);
    assert_eq!(
        receiver.seen.forged.load(Ordering::SeqCst),
        0,
        "every signature verifies"
    );
    assert!(receiver.seen.attempts.load(Ordering::SeqCst) >= 10 + 6);
    // Nothing more comes (each event once), and the ids are the
    // firehose's own.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(receiver.acked().len(), 10);
    let r = s
        .admin()
        .request(hyper::Method::GET, "/v1/admin/events?after=0&wait=0")
        .header("accept", "application/json")
        .send()
        .await;
    let listed = r.json();
    let ids: Vec<Value> = listed["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].clone())
        .collect();
    let acked_ids: Vec<Value> = acked.iter().map(|e| e["id"].clone()).collect();
    assert_eq!(acked_ids, ids);
    assert_eq!(acked[2]["data"]["from"], "alice");
    let metrics = s.admin().get("/metrics").await.text();
    assert!(
        metrics.contains("im_webhook_delivered_total 10"),
        "{metrics}"
    );
    assert!(metrics.contains("im_webhook_backlog 0"), "{metrics}");
}

crate::common::every_store!(
    in_order_on_every_store,
    super::a_failing_receiver_gets_everything_in_order
);

/// A receiver that never answers 2xx slows no send: sends take no longer
/// than without it, and the backlog shows on `/metrics`.
#[tokio::test]
async fn a_dead_receiver_slows_no_send() {
    let receiver = Receiver::start(KEY, usize::MAX).await;
    let s = Server::start_on(im_engine::MemoryStore::new(), |_, c| {
        c.webhook = Some(hook(&receiver.url));
    })
    .await;
    let [alice, _bob] = s.users(["alice", "bob"]).await;
    let started = Instant::now();
    for n in 0..50 {
        let r = alice.send("dm:alice:bob", json!({"n": n})).await;
        assert_eq!(r.status, 201);
    }
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    crate::common::eventually("the backlog shows", || async {
        let metrics = s.admin().get("/metrics").await.text();
        metrics.contains("im_webhook_backlog 49") || metrics.contains("im_webhook_backlog 50")
    })
    .await;
    assert!(receiver.acked().is_empty());
    let metrics = s.admin().get("/metrics").await.text();
    assert!(
        !metrics.contains("im_webhook_failed_attempts_total 0\n"),
        "{metrics}"
    );
}
