use hyper::Method;
use serde_json::json;

use crate::common::{SECRET, Server};

#[tokio::test]
async fn admin_creates_a_user_and_the_user_merges_fields() {
    let s = Server::start().await;
    let r = s
        .admin()
        .put(
            "/v1/users/alice",
            json!({"fields": {"name": "Alice", "avatar": "a.png"}}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text());
    let p = r.json();
    assert_eq!(p["id"], "alice");
    assert_eq!(p["fields"], json!({"name": "Alice", "avatar": "a.png"}));
    assert!(p["created_at"].as_u64().unwrap() > 0);
    assert_eq!(p["online"], false);
    assert_eq!(p["last_seen"], json!(null));

    // The user itself updates: a null deletes a field.
    let alice = s.client("alice");
    let r = alice
        .put(
            "/v1/users/alice",
            json!({"fields": {"avatar": null, "city": "Paris"}}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        r.json()["fields"],
        json!({"name": "Alice", "city": "Paris"})
    );
    assert_eq!(r.json()["created_at"], p["created_at"]);

    // Anyone with a token reads it.
    let r = s.client("bob").get("/v1/users/alice").await;
    assert_eq!(r.status, 200);
    assert_eq!(
        r.json()["fields"],
        json!({"name": "Alice", "city": "Paris"})
    );
    assert_eq!(r.header("content-type"), Some("application/json"));

    // An empty body is an empty patch.
    let r = alice.request(Method::PUT, "/v1/users/alice").send().await;
    assert_eq!(r.status, 200, "{}", r.text());
}

#[tokio::test]
async fn only_an_admin_creates_users_and_only_the_user_updates_itself() {
    let s = Server::start().await;
    let [_alice] = s.users(["alice"]).await;
    let bob = s.client("bob");
    bob.put("/v1/users/bob", json!({"fields": {}}))
        .await
        .assert_error(403, "forbidden");
    bob.put("/v1/users/alice", json!({"fields": {"name": "x"}}))
        .await
        .assert_error(403, "forbidden");
    bob.get("/v1/users/bob")
        .await
        .assert_error(404, "not_found");
    assert_eq!(
        s.admin().get("/v1/users/alice").await.json()["fields"],
        json!({})
    );
}

#[tokio::test]
async fn bad_input_is_refused_and_changes_nothing() {
    let s = Server::start_with(|e, _| e.limits.fields = 2).await;
    let [alice] = s.users(["alice"]).await;
    alice
        .put("/v1/users/alice", json!({"fields": {"name": "Alice"}}))
        .await;

    alice
        .get("/v1/users/a%20b")
        .await
        .assert_error(400, "invalid_id");
    alice
        .get(&format!("/v1/users/{}", "a".repeat(65)))
        .await
        .assert_error(400, "invalid_id");
    alice
        .get("/v1/users/a:b")
        .await
        .assert_error(400, "invalid_id");

    // A non-string field value, broken JSON, an unknown key.
    alice
        .put("/v1/users/alice", json!({"fields": {"name": 5}}))
        .await
        .assert_error(400, "bad_json");
    let put = || alice.request(Method::PUT, "/v1/users/alice");
    put()
        .header("content-type", "application/json")
        .raw(r#"{"fields": {"name": "#)
        .send()
        .await
        .assert_error(400, "bad_json");
    put()
        .json(&json!({"feilds": {"name": "x"}}))
        .send()
        .await
        .assert_error(400, "bad_json");
    put()
        .json(&json!(["not", "an", "object"]))
        .send()
        .await
        .assert_error(400, "bad_json");
    // Not JSON at all.
    put()
        .header("content-type", "text/plain")
        .raw(r#"{"fields": {}}"#)
        .send()
        .await
        .assert_error(415, "unsupported_media_type");
    put()
        .raw(r#"{"fields": {}}"#)
        .send()
        .await
        .assert_error(415, "unsupported_media_type");
    // Over the engine's field limits.
    alice
        .put(
            "/v1/users/alice",
            json!({"fields": {"a": "1", "b": "2", "c": "3"}}),
        )
        .await
        .assert_error(400, "invalid_request");

    let r = alice.get("/v1/users/alice").await;
    assert_eq!(r.json()["fields"], json!({"name": "Alice"}));
}

#[tokio::test]
async fn tokens_are_checked() {
    let s = Server::start().await;
    s.users(["alice"]).await;
    let anon = s.anonymous();

    let r = anon.get("/v1/users/alice").await;
    r.assert_error(401, "unauthorized");
    assert_eq!(r.header("www-authenticate"), Some("Bearer"));

    // Signed with another secret.
    let other = im_http::Auth::new(b"another secret")
        .token(&"alice".parse().unwrap(), true, None)
        .unwrap();
    anon.with_token(&other)
        .get("/v1/users/alice")
        .await
        .assert_error(401, "unauthorized");
    // Malformed.
    anon.with_token("not.a.jwt")
        .get("/v1/users/alice")
        .await
        .assert_error(401, "unauthorized");
    anon.with_token("")
        .get("/v1/users/alice")
        .await
        .assert_error(401, "unauthorized");
    anon.request(Method::GET, "/v1/users/alice")
        .header("authorization", "Basic YWxpY2U6cHc=")
        .send()
        .await
        .assert_error(401, "unauthorized");

    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let sign = |claims: serde_json::Value| {
        jsonwebtoken::encode(
            &jsonwebtoken::Header::default(),
            &claims,
            &jsonwebtoken::EncodingKey::from_secret(SECRET),
        )
        .unwrap()
    };
    // Expired.
    anon.with_token(&sign(json!({"sub": "alice", "exp": now - 10})))
        .get("/v1/users/alice")
        .await
        .assert_error(401, "unauthorized");
    // Not yet expired, and without `exp` at all: both fine.
    for claims in [
        json!({"sub": "alice", "exp": now + 3600}),
        json!({"sub": "alice"}),
    ] {
        let r = anon.with_token(&sign(claims)).get("/v1/users/alice").await;
        assert_eq!(r.status, 200, "{}", r.text());
    }
    // Accepted, then refused once it has expired: the server remembers
    // tokens that verified, but never past their `exp`.
    let soon = sign(json!({"sub": "alice", "exp": now + 2}));
    for _ in 0..2 {
        let r = anon.with_token(&soon).get("/v1/users/alice").await;
        assert_eq!(r.status, 200, "{}", r.text());
    }
    while std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        <= now + 2
    {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    anon.with_token(&soon)
        .get("/v1/users/alice")
        .await
        .assert_error(401, "unauthorized");
    // A subject that is not a user id, a missing one, a non-boolean admin.
    for claims in [
        json!({"sub": "a b"}),
        json!({"admin": true}),
        json!({"sub": "alice", "admin": "yes"}),
    ] {
        anon.with_token(&sign(claims))
            .get("/v1/users/alice")
            .await
            .assert_error(401, "unauthorized");
    }
    // `admin: false` is a user token.
    anon.with_token(&sign(json!({"sub": "alice", "admin": false})))
        .put("/v1/users/carol", json!({}))
        .await
        .assert_error(403, "forbidden");

    // The query parameter, for EventSource.
    let token = s.token("alice", false);
    let r = anon
        .get(&format!("/v1/users/alice?access_token={token}"))
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    anon.get("/v1/users/alice?access_token=nope")
        .await
        .assert_error(401, "unauthorized");
}

#[tokio::test]
async fn unknown_routes_are_404_and_wrong_methods_405_with_allow() {
    let s = Server::start().await;
    let alice = s.client("alice");
    for path in [
        "/web",
        "/v1",
        "/v1/users",
        "/v1/users/alice/x",
        "/v2/users/alice",
        "/v1/users/alice/",
    ] {
        alice.get(path).await.assert_error(404, "not_found");
    }
    let cases = [
        (Method::POST, "/v1/users/alice", "GET, PUT, DELETE"),
        (Method::POST, "/v1/contacts", "GET"),
        (Method::GET, "/v1/contacts/bob", "PUT, DELETE"),
        (Method::POST, "/v1/groups/g", "GET, PUT"),
        (Method::PUT, "/v1/groups/g/members", "GET"),
        (Method::GET, "/v1/groups/g/members/bob", "PUT, DELETE"),
        (Method::POST, "/v1/conversations", "GET"),
        (
            Method::PUT,
            "/v1/conversations/dm:a:b/messages",
            "GET, POST",
        ),
        // DELETE and PATCH are routes of a message since "Messages that change".
        (
            Method::POST,
            "/v1/conversations/dm:a:b/messages/1",
            "GET, PATCH, DELETE",
        ),
        (
            Method::POST,
            "/v1/conversations/dm:a:b/messages/1/reactions/ok",
            "PUT, DELETE",
        ),
        (Method::GET, "/v1/conversations/dm:a:b/read", "POST"),
        (Method::POST, "/v1/events", "GET"),
        (Method::POST, "/healthz", "GET"),
        (Method::POST, "/metrics", "GET"),
    ];
    for (method, path, allow) in cases {
        let r = s.anonymous().request(method.clone(), path).send().await;
        r.assert_error(405, "method_not_allowed");
        assert_eq!(r.header("allow"), Some(allow), "{method} {path}");
        assert!(r.header("x-request-id").is_some());
    }
}

#[tokio::test]
async fn dot_and_dot_dot_are_no_ids_since_no_client_could_address_them() {
    let s = Server::start().await;
    let [alice, _bob] = s.users(["alice", "bob"]).await;
    let admin = s.admin();
    for id in [".", "..", "%2E", "%2E%2E"] {
        admin
            .put(&format!("/v1/users/{id}"), json!({}))
            .await
            .assert_error(400, "invalid_id");
        alice
            .get(&format!("/v1/users/{id}"))
            .await
            .assert_error(400, "invalid_id");
        alice
            .put(&format!("/v1/contacts/{id}"), json!(null))
            .await
            .assert_error(400, "invalid_id");
        alice
            .put(&format!("/v1/groups/{id}"), json!({}))
            .await
            .assert_error(400, "invalid_id");
        alice
            .put(&format!("/v1/groups/g/members/{id}"), json!(null))
            .await
            .assert_error(400, "invalid_id");
        alice
            .send(&format!("dm:alice:{id}"), json!({"text": "hi"}))
            .await
            .assert_error(400, "invalid_id");
    }
    admin
        .post(
            "/v1/conversations/dm:alice:bob/messages",
            json!({"body": {}, "from": ".."}),
        )
        .await
        .assert_error(400, "invalid_id");
    // Other ids of dots are still ids.
    let r = admin.put("/v1/users/...", json!({})).await;
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(admin.get("/v1/users/.a").await.code(), "not_found");
}

#[tokio::test]
async fn an_empty_body_may_have_any_content_type() {
    let s = Server::start().await;
    let [alice, bob] = s.users(["alice", "bob"]).await;
    // What aiohttp sends for a PUT without a body.
    let bodiless = |client: &crate::common::Client, method: Method, path: &str| {
        client
            .request(method, path)
            .header("content-type", "application/octet-stream")
            .header("content-length", "0")
            .raw("")
    };
    let r = bodiless(&alice, Method::PUT, "/v1/users/alice")
        .send()
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["fields"], json!({}));
    let r = bodiless(&alice, Method::PUT, "/v1/groups/g").send().await;
    assert_eq!(r.status, 201, "{}", r.text());
    let r = bodiless(&bob, Method::PUT, "/v1/contacts/alice")
        .send()
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let r = alice
        .request(Method::PUT, "/v1/users/alice")
        .header("content-type", "text/plain")
        .raw("")
        .send()
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    alice.send("dm:alice:bob", json!({"text": "hi"})).await;
    let r = bodiless(&bob, Method::POST, "/v1/conversations/dm:alice:bob/read")
        .send()
        .await;
    assert_eq!(
        (r.status, r.json()),
        (200, json!({"read_seq": 1, "unread": 0}))
    );
    // A send needs a body, and says so rather than asking for JSON.
    bodiless(
        &bob,
        Method::POST,
        "/v1/conversations/dm:alice:bob/messages",
    )
    .send()
    .await
    .assert_error(400, "bad_json");
    // A body with something in it must still be JSON.
    alice
        .request(Method::PUT, "/v1/users/alice")
        .header("content-type", "application/octet-stream")
        .raw("{}")
        .send()
        .await
        .assert_error(415, "unsupported_media_type");
}
