//! `/livez` and `/readyz`: what an orchestrator polls to restart a process
//! and to route clients to it. (`outage.rs` has the store outage.)

use std::time::Duration;

use serde_json::json;

use crate::common::{Server, WAIT, eventually};

#[tokio::test]
async fn livez_and_readyz_answer_without_a_token() {
    let s = Server::start().await;
    for path in ["/livez", "/readyz"] {
        let r = s.anonymous().get(path).await;
        assert_eq!((r.status, r.json()), (200, json!({"ok": true})), "{path}");
    }
}

#[tokio::test]
async fn readyz_is_503_while_the_server_drains_and_everything_else_is_served() {
    let mut s = Server::start_with(|_, c| c.shutdown_delay = Duration::from_secs(2)).await;
    let [alice, _] = s.users(["alice", "bob"]).await;
    s.begin_stop();
    let anonymous = s.anonymous();
    eventually("readyz answers 503", || async {
        anonymous.get("/readyz").await.status == 503
    })
    .await;
    anonymous
        .get("/readyz")
        .await
        .assert_error(503, "unavailable");
    // New connections are still accepted and served while it drains.
    assert_eq!(anonymous.get("/livez").await.status, 200);
    assert_eq!(anonymous.get("/healthz").await.status, 200);
    let r = alice
        .send("dm:alice:bob", json!({"text": "still here"}))
        .await;
    assert_eq!(r.status, 201, "{}", r.text());
    // Then it stops by itself.
    tokio::time::timeout(WAIT, s.stop()).await.unwrap();
}

#[tokio::test]
async fn readyz_is_503_once_streams_are_closed_for_shutdown() {
    let s = Server::start().await;
    assert_eq!(s.anonymous().get("/readyz").await.status, 200);
    // What a program that mounts `App::handle` itself calls on shutdown.
    s.app.close_streams();
    s.anonymous()
        .get("/readyz")
        .await
        .assert_error(503, "unavailable");
    assert_eq!(s.anonymous().get("/livez").await.status, 200);
}
