use serde_json::json;

use crate::common::{Client, Server, Sse, eventually};

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
        r#"im_http_requests_total{method="PUT",route="/v1/users/{uid}",status="201"} 2"#,
        r#"im_http_requests_total{method="GET",route="/v1/users/{uid}",status="404"} 1"#,
        r#"im_http_requests_total{method="POST",route="/v1/conversations/{cid}/messages",status="201"} 2"#,
        r#"im_http_requests_total{method="GET",route="unmatched",status="404"} 1"#,
        r#"im_http_requests_total{method="GET",route="/metrics",status="403"} 1"#,
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

#[tokio::test]
async fn metrics_have_a_method_label_buckets_past_the_redis_timeout_and_the_process() {
    let s = Server::start().await;
    let [alice, _] = s.users(["alice", "bob"]).await;
    alice.send("dm:alice:bob", json!({})).await;
    let text = s.admin().get("/metrics").await.text();
    for line in [
        r#"im_http_request_duration_seconds_count{method="POST",route="/v1/conversations/{cid}/messages"} 1"#,
        r#"im_store_latency_seconds_bucket{op="send",le="5"} 1"#,
        "# TYPE im_connections_open gauge",
        "# TYPE process_cpu_seconds_total counter",
        "process_resident_memory_bytes ",
        "process_open_fds ",
        "process_max_fds ",
    ] {
        assert!(text.contains(line), "{line:?} missing from\n{text}");
    }
    // One prefix for the server's own metrics; the process metrics keep
    // the names every client library exports.
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        assert!(
            line.starts_with("im_") || line.starts_with("process_"),
            "{line}"
        );
    }
    // What Prometheus asks for first.
    let r = s
        .admin()
        .request(hyper::Method::GET, "/metrics")
        .header(
            "accept",
            "application/openmetrics-text;version=1.0.0,text/plain;q=0.5",
        )
        .send()
        .await;
    assert!(
        r.header("content-type")
            .unwrap()
            .starts_with("application/openmetrics-text"),
        "{:?}",
        r.headers
    );
    assert!(r.text().ends_with("# EOF\n"), "{}", r.text());
}

#[tokio::test]
async fn the_metrics_listener_needs_no_token_and_counts_refused_connections() {
    let s = Server::start_with(|_, c| c.protection.max_connections_per_ip = 1).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let metrics = Client {
        addr: listener.local_addr().unwrap(),
        token: None,
    };
    tokio::spawn(im_http::serve_metrics(listener, s.app.clone()));

    // One connection held open, so the next one from this address is refused.
    let held = Sse::open(s.addr, "/v1/events", &s.token("root", true), &[]).await;
    let r = s.anonymous().get("/healthz").await;
    r.assert_error(503, "unavailable");

    let r = metrics.get("/metrics").await;
    assert_eq!(r.status, 200, "{}", r.text());
    let text = r.text();
    for line in [
        r#"im_connections_refused_total{reason="max_connections_per_ip"} 1"#,
        "im_connections_open 1\n",
    ] {
        assert!(text.contains(line), "{line:?} missing from\n{text}");
    }
    // Only /metrics is there.
    metrics
        .get("/v1/contacts")
        .await
        .assert_error(404, "not_found");
    metrics.get("/healthz").await.assert_error(404, "not_found");
    let r = metrics
        .request(hyper::Method::POST, "/metrics")
        .send()
        .await;
    r.assert_error(405, "method_not_allowed");
    // The main address still wants an admin token.
    drop(held);
    let anonymous = s.anonymous();
    eventually("the held connection is closed", || async {
        anonymous.get("/metrics").await.status == 401
    })
    .await;
}

/// A request whose client leaves before the answer is logged and counted
/// with status 499, nginx's "client closed request": here a long poll.
#[tokio::test]
async fn a_request_whose_client_leaves_is_counted_as_499() {
    use tokio::io::AsyncWriteExt;
    let s = Server::start().await;
    let [_alice, bob] = s.users(["alice", "bob"]).await;
    let mut conn = tokio::net::TcpStream::connect(s.addr).await.unwrap();
    let request = format!(
        "GET /v1/events?wait=30 HTTP/1.1\r\nhost: test\r\naccept: application/json\r\n\
         authorization: Bearer {}\r\n\r\n",
        s.token("alice", false)
    );
    conn.write_all(request.as_bytes()).await.unwrap();
    // A long poll counts its user online while it waits.
    eventually("the long poll to wait", || async {
        bob.get("/v1/users/alice").await.json()["online"] == true
    })
    .await;
    drop(conn);
    let admin = s.admin();
    let line = r#"im_http_requests_total{method="GET",route="/v1/events",status="499"} 1"#;
    eventually("the abandoned poll to be counted", || async {
        admin.get("/metrics").await.text().contains(line)
    })
    .await;
}
