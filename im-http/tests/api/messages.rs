use hyper::Method;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::common::{Client, Server, WAIT};

fn seqs(page: &Value) -> Vec<u64> {
    page["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["seq"].as_u64().unwrap())
        .collect()
}

#[tokio::test]
async fn a_repeat_with_the_same_client_id_answers_the_original() {
    let s = Server::start().await;
    let [alice, bob] = s.users(["alice", "bob"]).await;
    let path = "/v1/conversations/dm:bob:alice/messages";
    let body = json!({"body": {"text": "hi"}, "client_id": "c-1"});

    let first = alice.post(path, body.clone()).await;
    assert_eq!(first.status, 201, "{}", first.text());
    let m = first.json();
    assert_eq!(m["conversation"], "dm:alice:bob");
    assert_eq!(m["seq"], 1);
    assert_eq!(m["from"], "alice");
    assert_eq!(m["body"], json!({"text": "hi"}));
    assert_eq!(m["client_id"], "c-1");
    assert!(m["ts"].as_u64().unwrap() > 0);

    let again = alice.post(path, body).await;
    assert_eq!(again.status, 200, "{}", again.text());
    assert_eq!(again.json(), m);
    // Another client id is another message; so is no client id.
    let other = alice
        .post(path, json!({"body": {"text": "hi"}, "client_id": "c-2"}))
        .await;
    assert_eq!((other.status, other.json()["seq"].clone()), (201, json!(2)));
    assert_eq!(
        bob.send("dm:alice:bob", json!({"n": 3})).await.json()["seq"],
        3
    );

    let page = bob
        .get("/v1/conversations/dm:alice:bob/messages")
        .await
        .json();
    assert_eq!(seqs(&page), [1, 2, 3]);
    assert_eq!(page["has_more"], false);
    // The body is kept exactly as sent.
    let raw = alice
        .request(Method::POST, path)
        .header("content-type", "application/json")
        .raw(r#"{"body": {"b": 1,   "a": [1, 2]}}"#)
        .send()
        .await;
    assert_eq!(raw.status, 201);
    assert!(
        raw.text().contains(r#"{"b": 1,   "a": [1, 2]}"#),
        "{}",
        raw.text()
    );
}

#[tokio::test]
async fn an_admin_may_send_as_another_user() {
    let s = Server::start().await;
    let [alice, _bob] = s.users(["alice", "bob"]).await;
    let r = s
        .admin()
        .post(
            "/v1/conversations/dm:alice:bob/messages",
            json!({"body": {"text": "from the system"}, "from": "bob"}),
        )
        .await;
    assert_eq!(
        (r.status, r.json()["from"].clone()),
        (201, json!("bob")),
        "{}",
        r.text()
    );
    alice
        .post(
            "/v1/conversations/dm:alice:bob/messages",
            json!({"body": {}, "from": "bob"}),
        )
        .await
        .assert_error(403, "forbidden");
    s.admin()
        .post(
            "/v1/conversations/dm:alice:bob/messages",
            json!({"body": {}, "from": "not valid"}),
        )
        .await
        .assert_error(400, "invalid_id");
}

#[tokio::test]
async fn sending_refuses_bad_input_and_non_participants() {
    let s = Server::start().await;
    let [alice, _bob, carol] = s.users(["alice", "bob", "carol"]).await;
    let path = "/v1/conversations/dm:alice:bob/messages";

    carol
        .send("dm:alice:bob", json!({}))
        .await
        .assert_error(403, "forbidden");
    for c in [
        "dm:alice",
        "dm:alice:alice",
        "chan:x",
        "group:",
        "dm:alice:b%20b",
    ] {
        alice
            .send(c, json!({}))
            .await
            .assert_error(400, "invalid_id");
    }
    alice
        .send("dm:alice:nobody", json!({}))
        .await
        .assert_error(404, "not_found");
    alice
        .send("group:nope", json!({}))
        .await
        .assert_error(404, "not_found");
    alice
        .send("dm:alice:bob", json!("text"))
        .await
        .assert_error(400, "invalid_request");
    alice
        .send("dm:alice:bob", json!([1]))
        .await
        .assert_error(400, "invalid_request");
    alice
        .post(path, json!({}))
        .await
        .assert_error(400, "bad_json");
    alice
        .post(path, json!({"body": {}, "extra": 1}))
        .await
        .assert_error(400, "bad_json");
    alice
        .post(path, json!({"body": {}, "client_id": 7}))
        .await
        .assert_error(400, "bad_json");
    alice
        .post(path, json!({"body": {}, "client_id": "x".repeat(65)}))
        .await
        .assert_error(400, "invalid_request");
    alice
        .post(path, json!({"body": {}, "client_id": ""}))
        .await
        .assert_error(400, "invalid_request");
    alice
        .request(Method::POST, path)
        .send()
        .await
        .assert_error(400, "bad_json");
    alice
        .request(Method::POST, path)
        .header("content-type", "text/plain")
        .raw("hello")
        .send()
        .await
        .assert_error(415, "unsupported_media_type");
    // Content types are compared without their parameters.
    let r = alice
        .request(Method::POST, path)
        .header("content-type", "Application/JSON; charset=utf-8")
        .raw(r#"{"body": {}}"#)
        .send()
        .await;
    assert_eq!(r.status, 201, "{}", r.text());
    // None of the refused requests stored anything.
    let page = alice.get(&format!("{path}?after=0")).await.json();
    assert_eq!(seqs(&page), [1]);
}

#[tokio::test]
async fn bodies_over_the_limit_are_413() {
    let s = Server::start_with(|e, _| e.limits.body_bytes = 1024).await;
    let [alice, _bob] = s.users(["alice", "bob"]).await;
    let path = "/v1/conversations/dm:alice:bob/messages";

    // Within the request limit but over the message body limit.
    let text = "x".repeat(1100);
    alice
        .send("dm:alice:bob", json!({"text": text}))
        .await
        .assert_error(413, "payload_too_large");
    // Over the request limit: refused on its Content-Length.
    let text = "x".repeat(20_000);
    alice
        .send("dm:alice:bob", json!({"text": text}))
        .await
        .assert_error(413, "payload_too_large");
    // A huge announced body is refused before it is sent at all.
    let head = format!(
        "POST {path} HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {}\r\n\
         content-type: application/json\r\ncontent-length: 100000000\r\n\r\n{{\"body\": ",
        alice.token.as_deref().unwrap()
    );
    let answer = raw_exchange(s.addr, head.as_bytes()).await;
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    // A chunked body, with no length announced, is cut off at the limit.
    let chunk = format!("{{\"body\": {{\"text\": \"{}\"}}}}", "x".repeat(6000));
    let request = format!(
        "POST {path} HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {}\r\n\
         content-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n{:x}\r\n{chunk}\r\n0\r\n\r\n",
        alice.token.as_deref().unwrap(),
        chunk.len()
    );
    let answer = raw_exchange(s.addr, request.as_bytes()).await;
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(answer.contains("payload_too_large"), "{answer}");
    let ok = alice.send("dm:alice:bob", json!({"text": "short"})).await;
    assert_eq!(ok.json()["seq"], 1);
}

#[tokio::test]
async fn history_pages_both_ways_with_has_more() {
    let s = Server::start().await;
    let [alice, bob] = s.users(["alice", "bob"]).await;
    for i in 1..=7 {
        assert_eq!(
            alice.send("dm:alice:bob", json!({"n": i})).await.status,
            201
        );
    }
    let base = "/v1/conversations/dm:alice:bob/messages";
    let page = |q: &'static str| {
        let bob = bob.clone();
        async move {
            let r = bob.get(&format!("{base}{q}")).await;
            assert_eq!(r.status, 200, "{q}: {}", r.text());
            let v = r.json();
            (seqs(&v), v["has_more"].as_bool().unwrap())
        }
    };
    assert_eq!(page("").await, (vec![1, 2, 3, 4, 5, 6, 7], false));
    assert_eq!(page("?limit=3").await, (vec![5, 6, 7], true));
    assert_eq!(page("?before=5&limit=3").await, (vec![2, 3, 4], true));
    assert_eq!(page("?before=2&limit=3").await, (vec![1], false));
    assert_eq!(page("?after=0&limit=3").await, (vec![1, 2, 3], true));
    assert_eq!(page("?after=3&limit=3").await, (vec![4, 5, 6], true));
    assert_eq!(page("?after=6&limit=3").await, (vec![7], false));
    assert_eq!(page("?after=7").await, (vec![], false));
    assert_eq!(page("?before=1").await, (vec![], false));
    // Query values are form-decoded.
    assert_eq!(page("?%6Cimit=%32").await, (vec![6, 7], true));

    for q in [
        "?before=x",
        "?after=-1",
        "?limit=ten",
        "?before=2&after=1",
        "?limit=0",
        "?limit=501",
    ] {
        bob.get(&format!("{base}{q}"))
            .await
            .assert_error(400, "invalid_request");
    }

    let m = bob.get(&format!("{base}/3")).await;
    assert_eq!((m.status, m.json()["body"].clone()), (200, json!({"n": 3})));
    bob.get(&format!("{base}/x"))
        .await
        .assert_error(400, "invalid_request");
    bob.get(&format!("{base}/-1"))
        .await
        .assert_error(400, "invalid_request");
    bob.get(&format!("{base}/99"))
        .await
        .assert_error(404, "not_found");
    bob.get("/v1/conversations/dm:alice:nobody/messages")
        .await
        .assert_error(404, "not_found");
}

#[tokio::test]
async fn unread_counts_and_read_cursors() {
    let s = Server::start().await;
    let [alice, bob] = s.users(["alice", "bob"]).await;
    for i in 1..=5 {
        alice.send("dm:alice:bob", json!({"n": i})).await;
    }
    let unread = |c: &Client| {
        let c = c.clone();
        async move {
            let list = c.get("/v1/conversations").await.json();
            let row = &list["conversations"][0];
            (
                row["unread"].as_u64().unwrap(),
                row["read_seq"].as_u64().unwrap(),
            )
        }
    };
    assert_eq!(unread(&bob).await, (5, 0));
    assert_eq!(unread(&alice).await, (0, 5));

    let read = "/v1/conversations/dm:alice:bob/read";
    let r = bob.post(read, json!({"seq": 3})).await;
    assert_eq!(
        (r.status, r.json()),
        (200, json!({"read_seq": 3, "unread": 2}))
    );
    // Never back.
    let r = bob.post(read, json!({"seq": 1})).await;
    assert_eq!(r.json(), json!({"read_seq": 3, "unread": 2}));
    assert_eq!(unread(&bob).await, (2, 3));
    // Without a seq, up to the latest; an empty body needs no content type.
    let r = bob.request(Method::POST, read).send().await;
    assert_eq!(
        (r.status, r.json()),
        (200, json!({"read_seq": 5, "unread": 0})),
        "{}",
        r.text()
    );
    assert_eq!(
        bob.post(read, json!({})).await.json(),
        json!({"read_seq": 5, "unread": 0})
    );

    bob.post(read, json!({"seq": 9}))
        .await
        .assert_error(400, "invalid_request");
    bob.post(read, json!({"seq": "3"}))
        .await
        .assert_error(400, "bad_json");
    bob.post(read, json!({"seq": -1}))
        .await
        .assert_error(400, "bad_json");

    // Sending moves the sender's own cursor.
    bob.send("dm:alice:bob", json!({"n": 6})).await;
    assert_eq!(unread(&bob).await, (0, 6));
    assert_eq!(unread(&alice).await, (1, 5));
}

#[tokio::test]
async fn the_conversation_list_is_most_recent_first() {
    let s = Server::start().await;
    let [alice, bob, carol] = s.users(["alice", "bob", "carol"]).await;
    alice.put("/v1/groups/g", json!({})).await;
    alice.put("/v1/groups/g/members/bob", json!(null)).await;
    let step = || tokio::time::sleep(std::time::Duration::from_millis(5));

    step().await;
    alice.send("dm:alice:bob", json!({"text": "1"})).await;
    step().await;
    bob.send("group:g", json!({"text": "2"})).await;
    step().await;
    carol.send("dm:carol:alice", json!({"text": "3"})).await;

    let list = alice.get("/v1/conversations").await.json();
    let rows = list["conversations"].as_array().unwrap();
    let view: Vec<_> = rows
        .iter()
        .map(|c| {
            (
                c["id"].as_str().unwrap(),
                c["kind"].as_str().unwrap(),
                c["with"].as_str().unwrap(),
                c["unread"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        view,
        [
            ("dm:alice:carol", "dm", "carol", 1),
            ("group:g", "group", "g", 1),
            ("dm:alice:bob", "dm", "bob", 0),
        ]
    );
    assert_eq!(rows[0]["last"]["body"], json!({"text": "3"}));
    assert_eq!(rows[0]["read_seq"], 0);

    step().await;
    bob.send("dm:alice:bob", json!({"text": "4"})).await;
    let list = alice.get("/v1/conversations?limit=2").await.json();
    let ids: Vec<_> = list["conversations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(ids, ["dm:alice:bob", "dm:alice:carol"]);
    alice
        .get("/v1/conversations?limit=x")
        .await
        .assert_error(400, "invalid_request");
    alice
        .get("/v1/conversations?limit=501")
        .await
        .assert_error(400, "invalid_request");
    // A group with no message yet is listed, with no last message.
    carol.put("/v1/groups/quiet", json!({})).await;
    let list = carol.get("/v1/conversations").await.json();
    assert_eq!(list["conversations"][0]["id"], "group:quiet");
    assert_eq!(list["conversations"][0]["last"], json!(null));
}

/// Writes `request` on a new connection and reads until a whole error
/// body has arrived (without sending anything more).
async fn raw_exchange(addr: std::net::SocketAddr, request: &[u8]) -> String {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream.write_all(request).await.unwrap();
    let mut answer = Vec::new();
    let mut buf = [0; 4096];
    tokio::time::timeout(WAIT, async {
        while !answer.ends_with(b"}}") {
            let n = stream.read(&mut buf).await.unwrap();
            assert!(n > 0, "closed without an answer");
            answer.extend_from_slice(&buf[..n]);
        }
    })
    .await
    .expect("an answer before the body is sent");
    String::from_utf8_lossy(&answer).into_owned()
}
