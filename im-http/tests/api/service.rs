use serde_json::json;

use crate::common::{Server, Sse, eventually};

#[tokio::test]
async fn healthz_needs_no_token() {
    let s = Server::start().await;
    let r = s.anonymous().get("/healthz").await;
    assert_eq!((r.status, r.json()), (200, json!({"ok": true})));
}

#[tokio::test]
async fn metrics_need_an_admin_and_count_requests_messages_and_streams() {
    let s = Server::start().await;
    let [alice, _] = s.users(["alice", "bob"]).await;
    alice.send("dm:alice:bob", json!({})).await;
    alice.send("dm:alice:bob", json!({})).await;
    alice.get("/v1/users/nobody").await;
    alice.get("/no/such/route").await;

    s.anonymous()
        .get("/metrics")
        .await
        .assert_error(401, "unauthorized");
    alice.get("/metrics").await.assert_error(403, "forbidden");

    let _sse = Sse::open(s.addr, "/v1/events", &s.token("bob", false), &[]).await;
    let admin = s.admin();
    eventually("the stream is counted", || async {
        admin
            .get("/metrics")
            .await
            .text()
            .contains("im_sse_streams_open 1\n")
    })
    .await;
    let r = admin.get("/metrics").await;
    assert_eq!(r.status, 200);
    assert!(r.header("content-type").unwrap().starts_with("text/plain"));
    let text = r.text();
    for line in [
        r#"im_http_requests_total{route="/v1/users/{uid}",status="201"} 2"#,
        r#"im_http_requests_total{route="/v1/users/{uid}",status="404"} 1"#,
        r#"im_http_requests_total{route="/v1/conversations/{cid}/messages",status="201"} 2"#,
        r#"im_http_requests_total{route="unmatched",status="404"} 1"#,
        r#"im_http_requests_total{route="/metrics",status="403"} 1"#,
        "im_messages_sent_total 2\n",
        "# TYPE im_store_latency_seconds histogram",
        r#"im_store_latency_seconds_count{op="send"} 2"#,
        r#"im_store_latency_seconds_bucket{op="send",le="+Inf"} 2"#,
    ] {
        assert!(text.contains(line), "{line:?} missing from\n{text}");
    }
}

#[tokio::test]
async fn every_answer_carries_a_request_id() {
    let s = Server::start().await;
    let r = s
        .anonymous()
        .request(hyper::Method::GET, "/healthz")
        .header("x-request-id", "abc-123")
        .send()
        .await;
    assert_eq!(r.header("x-request-id"), Some("abc-123"));
    for path in ["/healthz", "/v1/contacts", "/nowhere"] {
        let r = s.anonymous().get(path).await;
        let id = r.header("x-request-id").unwrap();
        assert_eq!(id.len(), 32, "{id}");
        assert!(id.bytes().all(|b| b.is_ascii_hexdigit()));
    }
    let a = s.anonymous().get("/healthz").await;
    let b = s.anonymous().get("/healthz").await;
    assert_ne!(a.header("x-request-id"), b.header("x-request-id"));
}
