//! Bad input of every kind, over real sockets: bodies one byte over each
//! limit, deep nesting, invalid UTF-8, huge and strange ids, duplicate
//! keys. Each is answered as docs/API.md says, the server goes on serving, and
//! nothing is stored.

use std::net::SocketAddr;
use std::time::Duration;

use hyper::Method;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::authz::{seed, snapshot};
use crate::common::{Client, Server};

/// Writes `request` on a new connection and reads until the server closes
/// it or `wait` passes; answers everything read, as text.
pub async fn raw(addr: SocketAddr, request: &[u8], wait: Duration) -> String {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    // The server may answer (and close) before it has read everything.
    let _ = stream.write_all(request).await;
    let mut out = Vec::new();
    let mut buf = [0u8; 16 * 1024];
    let deadline = tokio::time::Instant::now() + wait;
    while let Ok(Ok(n)) = tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
        if n == 0 {
            break;
        }
        out.extend_from_slice(&buf[..n]);
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The status of a raw answer.
pub fn status(answer: &str) -> u16 {
    answer
        .get(9..12)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {answer:?}"))
}

/// Small limits, so that bodies at them are small.
const BODY_BYTES: usize = 1000;
const FIELDS: usize = 2;
const FIELD_BYTES: usize = 10;
/// The request body limits of im-http/README.md for these limits.
const SMALL_BODY: usize = 4096;
const FIELDS_BODY: usize = FIELDS * (FIELD_BYTES + 128) * 2 + SMALL_BODY;
const SEND_BODY: usize = BODY_BYTES + SMALL_BODY;

async fn server() -> Server {
    let s = Server::start_with(|e, _| {
        e.limits.body_bytes = BODY_BYTES;
        e.limits.fields = FIELDS;
        e.limits.field_bytes = FIELD_BYTES;
    })
    .await;
    seed(&s).await;
    s
}

/// `json` padded with spaces to exactly `len` bytes: still the same JSON.
fn padded(json: &str, len: usize) -> Vec<u8> {
    assert!(json.len() <= len);
    let mut v = json.as_bytes().to_vec();
    v.resize(len, b' ');
    v
}

async fn send_raw(c: &Client, method: Method, path: &str, body: Vec<u8>) -> crate::common::Resp {
    c.request(method, path)
        .header("content-type", "application/json")
        .raw(body)
        .send()
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodies_at_each_limit_pass_and_one_byte_over_is_413() {
    let s = server().await;
    let alice = s.client("alice");
    let cases: [(Method, &str, &str, usize, u16); 4] = [
        (
            Method::PUT,
            "/v1/users/alice",
            r#"{"fields":{}}"#,
            FIELDS_BODY,
            200,
        ),
        (
            Method::PUT,
            "/v1/groups/g1",
            r#"{"fields":{}}"#,
            FIELDS_BODY,
            200,
        ),
        (
            Method::POST,
            "/v1/conversations/dm:alice:bob/messages",
            r#"{"body":{}}"#,
            SEND_BODY,
            201,
        ),
        (
            Method::POST,
            "/v1/conversations/dm:alice:bob/read",
            "{}",
            SMALL_BODY,
            200,
        ),
    ];
    let before = snapshot(&s).await;
    for (method, path, json, limit, _) in &cases {
        let r = send_raw(&alice, method.clone(), path, padded(json, limit + 1)).await;
        r.assert_error(413, "payload_too_large");
        // Without a Content-Length: chunked, cut off as it passes the limit.
        let head = format!(
            "{method} {path} HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {}\r\n\
             content-type: application/json\r\ntransfer-encoding: chunked\r\n\
             connection: close\r\n\r\n",
            alice.token.as_deref().unwrap()
        );
        let mut request = head.into_bytes();
        let body = padded(json, limit + 1);
        for chunk in body.chunks(1000) {
            request.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
            request.extend_from_slice(chunk);
            request.extend_from_slice(b"\r\n");
        }
        request.extend_from_slice(b"0\r\n\r\n");
        let answer = raw(s.addr, &request, Duration::from_secs(5)).await;
        assert_eq!(status(&answer), 413, "{method} {path} chunked: {answer}");
        assert!(answer.contains(r#""code":"payload_too_large""#), "{answer}");
    }
    // A message body one byte over the engine's limit, in an envelope
    // under the request limit.
    let text = "x".repeat(BODY_BYTES - r#"{"t":""}"#.len());
    let r = alice.send("dm:alice:bob", json!({ "t": text })).await;
    assert_eq!(r.status, 201, "{}", r.text());
    let r = alice
        .send("dm:alice:bob", json!({ "t": format!("{text}x") }))
        .await;
    r.assert_error(413, "payload_too_large");
    // At each limit: accepted.
    let mut expected = before.clone();
    for (method, path, json, limit, ok) in &cases {
        let r = send_raw(&alice, method.clone(), path, padded(json, *limit)).await;
        assert_eq!(r.status, *ok, "{method} {path}: {}", r.text());
    }
    let after = snapshot(&s).await;
    // Only the accepted requests changed anything: the sends at the limits.
    expected["history dm:alice:bob"] = after["history dm:alice:bob"].clone();
    for u in ["alice", "bob"] {
        for key in [format!("conversations {u}"), format!("feed {u}")] {
            expected[&key] = after[&key].clone();
        }
    }
    let messages = after["history dm:alice:bob"]["body"]["messages"]
        .as_array()
        .unwrap()
        .len();
    assert_eq!(messages, 3, "the seeded one and the two at the limits");
    for key in ["group g1", "user alice"] {
        expected[key] = after[key].clone();
    }
    assert_eq!(expected, after);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_bodies_are_400_and_change_nothing() {
    let s = Server::start_with(|e, _| e.limits.body_bytes = 200_000).await;
    seed(&s).await;
    let alice = s.client("alice");
    let before = snapshot(&s).await;
    let send = "/v1/conversations/dm:alice:bob/messages";
    let deep = format!(r#"{{"body":{{"a":{}}}}}"#, "[".repeat(100_000));
    let cases: Vec<(Method, &str, Vec<u8>)> = vec![
        // Deep nesting: 1e5 brackets.
        (Method::POST, send, deep.into_bytes()),
        (Method::POST, send, "[".repeat(100_000).into_bytes()),
        // Invalid UTF-8, in a string and outside one.
        (
            Method::POST,
            send,
            b"{\"body\":{\"t\":\"\xff\xfe\"}}".to_vec(),
        ),
        (
            Method::PUT,
            "/v1/users/alice",
            b"{\"fields\":{\"n\":\"\xc3\x28\"}}".to_vec(),
        ),
        (Method::POST, send, b"\xef\xbb\xbf{\"body\":{}}".to_vec()),
        // Duplicate keys: at the top, in fields, inside a message body.
        (
            Method::POST,
            send,
            br#"{"body":{},"body":{"x":1}}"#.to_vec(),
        ),
        (
            Method::PUT,
            "/v1/users/alice",
            br#"{"fields":{"n":"a","n":"b"}}"#.to_vec(),
        ),
        (
            Method::PUT,
            "/v1/groups/g1",
            br#"{"join":"open","join":"invite"}"#.to_vec(),
        ),
        (
            Method::POST,
            send,
            br#"{"body":{"a":1,"\u0061":2}}"#.to_vec(),
        ),
        (
            Method::POST,
            "/v1/conversations/group:g1/read",
            br#"{"seq":1,"seq":0}"#.to_vec(),
        ),
        // Not JSON, not the shape, trailing data, a lone surrogate.
        (Method::POST, send, b"{\"body\":".to_vec()),
        (Method::POST, send, br#"{"body":{}} {}"#.to_vec()),
        (Method::POST, send, br#"{"body":"text"}"#.to_vec()),
        (Method::POST, send, br#"{"body":{"s":"\ud800"}}"#.to_vec()),
        (Method::POST, send, br#"{"body":{"n":1e999}}"#.to_vec()),
        (
            Method::PUT,
            "/v1/users/alice",
            br#"{"fields":{"n":5}}"#.to_vec(),
        ),
    ];
    for (method, path, body) in cases {
        let shown = String::from_utf8_lossy(&body[..body.len().min(60)]).into_owned();
        let r = send_raw(&alice, method, path, body).await;
        assert_eq!(r.status, 400, "{path} {shown}: {}", r.text());
        let code = r.code();
        assert!(
            code == "bad_json" || code == "invalid_request",
            "{path} {shown}: {}",
            r.text()
        );
    }
    // Not JSON at all.
    alice
        .request(Method::POST, send)
        .header("content-type", "text/plain")
        .raw("{}")
        .send()
        .await
        .assert_error(415, "unsupported_media_type");
    assert_eq!(before, snapshot(&s).await);
    assert_eq!(s.anonymous().get("/healthz").await.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn strange_ids_are_400_invalid_id_and_huge_ones_are_refused_early() {
    let s = server().await;
    let alice = s.client("alice");
    let before = snapshot(&s).await;
    let ids = [
        "a%00b",
        "a%1Bb",
        "a%0Ab",
        "a%7Fb",
        "%C3%A9",
        "%E2%80%AE",
        "%F0%9F%98%80",
        "%FF%FE",
        "a%2Fb",
        "..",
        "a%20",
        "",
    ];
    for id in ids {
        for path in [
            format!("/v1/users/{id}"),
            format!("/v1/groups/{id}/members/alice"),
            format!("/v1/conversations/dm:alice:{id}/messages"),
            format!("/v1/conversations/group:{id}/messages/1"),
        ] {
            let r = alice.get(&path).await;
            if id.is_empty() {
                // An empty segment matches no route, or is no id.
                assert!(
                    [400, 403, 404, 405].contains(&r.status),
                    "{path}: {}",
                    r.text()
                );
                continue;
            }
            if path.starts_with("/v1/groups") {
                r.assert_error(405, "method_not_allowed");
                let r = alice.put(&path, json!({})).await;
                r.assert_error(400, "invalid_id");
            } else {
                r.assert_error(400, "invalid_id");
            }
        }
    }
    // A 64 KB id is read and refused as an id.
    let long = "a".repeat(60_000);
    alice
        .get(&format!("/v1/users/{long}"))
        .await
        .assert_error(400, "invalid_id");
    alice
        .send(&format!("dm:alice:{long}"), json!({}))
        .await
        .assert_error(400, "invalid_id");
    // A 1 MB id is over what hyper reads of a request head (about 400 KB):
    // it answers a bare 431 or 414 and closes, before any route.
    let token = alice.token.as_deref().unwrap();
    let huge = format!(
        "GET /v1/users/{} HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {token}\r\n\r\n",
        "a".repeat(1 << 20)
    );
    let answer = raw(s.addr, huge.as_bytes(), Duration::from_secs(5)).await;
    assert!(
        [414, 431].contains(&status(&answer)),
        "{}",
        &answer[..answer.len().min(200)]
    );
    // Raw bytes that are not a valid request target: refused by hyper, or
    // by the id check (hyper passes UTF-8 through).
    for target in [
        &b"/v1/users/\xc3\xa9"[..],
        b"/v1/users/a\x01b",
        b"/v1/users/a b",
    ] {
        let mut request = b"GET ".to_vec();
        request.extend_from_slice(target);
        request.extend_from_slice(
            format!(
                " HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {token}\r\nconnection: close\r\n\r\n"
            )
            .as_bytes(),
        );
        let answer = raw(s.addr, &request, Duration::from_secs(5)).await;
        assert_eq!(status(&answer), 400, "{answer}");
    }
    // A header value that is not text.
    let mut request = format!(
        "GET /v1/events HTTP/1.1\r\nhost: x\r\naccept: application/json\r\n\
         authorization: Bearer {token}\r\nconnection: close\r\nlast-event-id: "
    )
    .into_bytes();
    request.extend_from_slice(b"\xff\xfe\r\n\r\n");
    let answer = raw(s.addr, &request, Duration::from_secs(5)).await;
    assert_eq!(status(&answer), 400, "{answer}");
    assert!(answer.contains(r#""code":"invalid_request""#), "{answer}");
    assert_eq!(before, snapshot(&s).await);
    assert_eq!(s.anonymous().get("/healthz").await.status, 200);
}
