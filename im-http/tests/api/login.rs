//! Passwords and `POST /v1/login`: the rules of setting a password, the
//! same answer for an unknown user and a wrong password, rate limits, the
//! token a login answers, private profile fields, and no password or hash
//! in any answer or log line.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};

use crate::common::{Client, Resp, Server};

const PASSWORD: &str = "correct horse battery";

/// A server whose login rate limits are `user` and `addr` guesses at once
/// (and one a minute after that); `None` for unlimited.
async fn server(user: Option<u32>, addr: Option<u32>) -> Server {
    Server::start_with(|_, c| {
        c.protection.login_rate_user = user.and_then(|n| im_http::Rate::new(1.0 / 60.0, n));
        c.protection.login_rate_addr = addr.and_then(|n| im_http::Rate::new(1.0 / 60.0, n));
    })
    .await
}

async fn set_password(client: &Client, user: &str, body: Value) -> Resp {
    client
        .put(&format!("/v1/users/{user}/password"), body)
        .await
}

async fn login(server: &Server, user: &str, password: &str) -> Resp {
    server
        .anonymous()
        .post("/v1/login", json!({"user": user, "password": password}))
        .await
}

/// Asserts that no secret of these tests shows in `text`.
#[track_caller]
fn no_secret(text: &str) {
    for secret in [PASSWORD, "second password", "$argon2", "argon2id"] {
        assert!(!text.contains(secret), "{secret:?} in {text}");
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

#[tokio::test]
async fn a_password_logs_in_with_a_user_token_for_a_day() {
    let s = server(None, None).await;
    let [alice, _bob] = s.users(["alice", "bob"]).await;
    let r = set_password(&alice, "alice", json!({"password": PASSWORD})).await;
    assert_eq!(r.status, 204, "{}", r.text());
    assert!(r.body.is_empty());

    let before = now_ms();
    let r = login(&s, "alice", PASSWORD).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("cache-control"), Some("no-store"));
    no_secret(&r.text());
    let token = r.json()["token"].as_str().unwrap().to_owned();
    let expires_at = r.json()["expires_at"].as_u64().unwrap();
    let day = 24 * 60 * 60 * 1000;
    assert!(
        (before + day - 1000..=now_ms() + day).contains(&expires_at),
        "{expires_at}"
    );

    let me = s.anonymous().with_token(&token);
    let r = me.get("/v1/users/alice").await;
    assert_eq!(r.status, 200, "the token works: {}", r.text());
    no_secret(&r.text());
    // As alice, not as an admin.
    assert_eq!(me.put("/v1/users/carol", json!({})).await.status, 403);
    let r = me
        .put("/v1/users/alice", json!({"fields": {"name": "A"}}))
        .await;
    assert_eq!(r.status, 200);
    no_secret(&r.text());
    no_secret(&s.admin().get("/v1/users/alice").await.text());
    // The field patch kept the password.
    assert_eq!(login(&s, "alice", PASSWORD).await.status, 200);
}

#[tokio::test]
async fn a_suspended_user_is_told_so_only_with_its_password() {
    let s = server(None, None).await;
    let [alice] = s.users(["alice"]).await;
    let r = set_password(&alice, "alice", json!({"password": PASSWORD})).await;
    assert_eq!(r.status, 204, "{}", r.text());
    let r = s
        .admin()
        .put("/v1/users/alice", json!({"suspended": true}))
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    login(&s, "alice", "a wrong password")
        .await
        .assert_error(401, "bad_credentials");
    login(&s, "alice", PASSWORD)
        .await
        .assert_error(403, "suspended");
    let r = s
        .admin()
        .put("/v1/users/alice", json!({"suspended": false}))
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(login(&s, "alice", PASSWORD).await.status, 200);
}

#[tokio::test]
async fn an_unknown_user_and_a_wrong_password_are_answered_alike() {
    let s = server(None, None).await;
    let [alice] = s.users(["alice"]).await;
    s.users(["bob"]).await; // no password
    set_password(&alice, "alice", json!({"password": PASSWORD})).await;

    let answers = [
        login(&s, "alice", "wrong password").await,
        login(&s, "nobody", PASSWORD).await,
        login(&s, "bob", PASSWORD).await,
        login(&s, "alice", "short").await,
    ];
    for r in &answers {
        r.assert_error(401, "bad_credentials");
        assert_eq!(r.body, answers[0].body, "the same body");
        let mut names: Vec<_> = r.headers.keys().map(|k| k.as_str()).collect();
        names.sort();
        let mut first: Vec<_> = answers[0].headers.keys().map(|k| k.as_str()).collect();
        first.sort();
        assert_eq!(names, first, "the same headers");
    }

    // About the same time: an unknown user is checked against a dummy
    // hash. The fastest of a few tries of each are within a factor of two
    // (the fastest, not the median: a loaded machine only adds time, and
    // a check that skipped the hash would be many times faster every time).
    let fastest = |v: Vec<Duration>| v.into_iter().min().expect("tries");
    let (mut wrong, mut unknown) = (Vec::new(), Vec::new());
    for _ in 0..7 {
        let t = Instant::now();
        login(&s, "alice", "wrong password").await;
        wrong.push(t.elapsed());
        let t = Instant::now();
        login(&s, "nobody", "wrong password").await;
        unknown.push(t.elapsed());
    }
    let (wrong, unknown) = (fastest(wrong), fastest(unknown));
    assert!(
        unknown * 2 > wrong && wrong * 2 > unknown,
        "wrong password {wrong:?}, unknown user {unknown:?}"
    );

    // A bad body or user id is no login attempt.
    let r = s
        .anonymous()
        .post("/v1/login", json!({"user": "alice"}))
        .await;
    r.assert_error(400, "bad_json");
    login(&s, "not valid!", PASSWORD)
        .await
        .assert_error(400, "invalid_id");
}

#[tokio::test]
async fn the_old_password_is_needed_once_one_is_set_and_an_admin_needs_none() {
    let s = server(None, None).await;
    let [alice, bob] = s.users(["alice", "bob"]).await;
    let path = "/v1/users/alice/password";
    assert_eq!(
        alice.put(path, json!({"password": PASSWORD})).await.status,
        204
    );

    let refused = [
        (
            &alice,
            json!({"password": "second password"}),
            403,
            "forbidden",
        ),
        (
            &alice,
            json!({"password": "second password", "old_password": "wrong one"}),
            403,
            "forbidden",
        ),
        (
            &bob,
            json!({"password": "second password", "old_password": PASSWORD}),
            403,
            "forbidden",
        ),
        (
            &alice,
            json!({"password": "short", "old_password": PASSWORD}),
            400,
            "invalid_request",
        ),
        (
            &alice,
            json!({"password": "x".repeat(1025), "old_password": PASSWORD}),
            400,
            "invalid_request",
        ),
        (&alice, json!({"password": 12345678}), 400, "bad_json"),
        (
            &alice,
            json!({"password": "second password", "extra": 1}),
            400,
            "bad_json",
        ),
    ];
    for (client, body, status, code) in refused {
        let r = client.put(path, body.clone()).await;
        r.assert_error(status, code);
        no_secret(&r.text());
        // Nothing changed.
        assert_eq!(login(&s, "alice", PASSWORD).await.status, 200, "{body}");
    }
    s.admin()
        .put("/v1/users/nobody/password", json!({"password": PASSWORD}))
        .await
        .assert_error(404, "not_found");
    s.anonymous()
        .put(path, json!({"password": PASSWORD}))
        .await
        .assert_error(401, "unauthorized");

    let r = alice
        .put(
            path,
            json!({"password": "second password", "old_password": PASSWORD}),
        )
        .await;
    assert_eq!(r.status, 204, "{}", r.text());
    login(&s, "alice", PASSWORD)
        .await
        .assert_error(401, "bad_credentials");
    assert_eq!(login(&s, "alice", "second password").await.status, 200);

    // An admin resets it without the old one.
    let r = s.admin().put(path, json!({"password": PASSWORD})).await;
    assert_eq!(r.status, 204, "{}", r.text());
    assert_eq!(login(&s, "alice", PASSWORD).await.status, 200);
}

#[tokio::test]
async fn logins_are_limited_per_user_until_one_succeeds() {
    let s = server(Some(3), None).await;
    let [alice] = s.users(["alice"]).await;
    // Set by an admin: the user's own change would count as a guess.
    set_password(&s.admin(), "alice", json!({"password": PASSWORD})).await;
    for _ in 0..2 {
        login(&s, "alice", "wrong password")
            .await
            .assert_error(401, "bad_credentials");
    }
    // A success empties the user's count: three more guesses, then no more.
    assert_eq!(login(&s, "alice", PASSWORD).await.status, 200);
    for _ in 0..3 {
        login(&s, "alice", "wrong password")
            .await
            .assert_error(401, "bad_credentials");
    }
    let r = login(&s, "alice", PASSWORD).await;
    r.assert_error(429, "rate_limited");
    let wait: u64 = r.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=60).contains(&wait), "{wait}");
    // Unknown users are counted alike, each on its own.
    for _ in 0..3 {
        login(&s, "nobody", PASSWORD)
            .await
            .assert_error(401, "bad_credentials");
    }
    login(&s, "nobody", PASSWORD)
        .await
        .assert_error(429, "rate_limited");
    // Guessing the old password of a password change counts too.
    let r = alice
        .put(
            "/v1/users/alice/password",
            json!({"password": "second password", "old_password": "guess one"}),
        )
        .await;
    r.assert_error(429, "rate_limited");
    // An admin is not limited.
    let r = s
        .admin()
        .put("/v1/users/alice/password", json!({"password": PASSWORD}))
        .await;
    assert_eq!(r.status, 204);
}

#[tokio::test]
async fn logins_are_limited_per_address_and_a_success_does_not_reset_it() {
    let s = server(None, Some(4)).await;
    let [alice] = s.users(["alice"]).await;
    set_password(&alice, "alice", json!({"password": PASSWORD})).await;
    assert_eq!(login(&s, "alice", PASSWORD).await.status, 200);
    for user in ["bob", "carol", "dave"] {
        login(&s, user, PASSWORD)
            .await
            .assert_error(401, "bad_credentials");
    }
    // Four from this address, whatever the user: the right password too.
    login(&s, "alice", PASSWORD)
        .await
        .assert_error(429, "rate_limited");
    login(&s, "erin", PASSWORD)
        .await
        .assert_error(429, "rate_limited");
}

#[tokio::test]
async fn a_login_token_expires_after_the_login_ttl() {
    let s = Server::start_with(|_, c| c.login_ttl = Duration::from_secs(1)).await;
    let [alice] = s.users(["alice"]).await;
    set_password(&alice, "alice", json!({"password": PASSWORD})).await;
    let r = login(&s, "alice", PASSWORD).await;
    let token = r.json()["token"].as_str().unwrap().to_owned();
    let expires_at = r.json()["expires_at"].as_u64().unwrap();
    assert!(expires_at <= now_ms() + 1000, "{expires_at}");
    let me = s.anonymous().with_token(&token);
    assert_eq!(me.get("/v1/contacts").await.status, 200);
    // `exp` is checked to the second: just past it, the token is refused.
    let left = (expires_at + 1100).saturating_sub(now_ms());
    tokio::time::sleep(Duration::from_millis(left)).await;
    me.get("/v1/contacts")
        .await
        .assert_error(401, "unauthorized");
}

#[tokio::test]
async fn private_fields_are_shown_only_to_the_user_and_admins() {
    let s = Server::start().await;
    let [alice, bob] = s.users(["alice", "bob"]).await;
    let r = alice
        .put(
            "/v1/users/alice",
            json!({"fields": {"name": "Alice", "_phone": "555-0100"}}),
        )
        .await;
    assert_eq!(r.json()["fields"]["_phone"], "555-0100");
    for (client, sees) in [(&alice, true), (&s.admin(), true), (&bob, false)] {
        let fields = client.get("/v1/users/alice").await.json()["fields"].clone();
        assert_eq!(fields["name"], "Alice");
        assert_eq!(fields.get("_phone").is_some(), sees, "{fields}");
    }
}

/// The real binary, its log at `debug`: after passwords are set, changed
/// and tried, no log line holds a password or a hash.
#[cfg(feature = "cli")]
#[tokio::test]
async fn no_password_or_hash_reaches_the_log() {
    let secret = "log test secret";
    let mut cmd = crate::binary::im_http(&["serve", "--listen", "127.0.0.1:0"]);
    cmd.args(["--store", "memory", "--secret", secret])
        .env("RUST_LOG", "debug");
    let (mut child, addr, log) = crate::common::spawn_serve(cmd);
    let admin = Client::signed(addr, secret, "root", true);
    let alice = Client::signed(addr, secret, "alice", false);
    assert_eq!(admin.put("/v1/users/alice", json!({})).await.status, 201);
    let path = "/v1/users/alice/password";
    assert_eq!(
        alice.put(path, json!({"password": PASSWORD})).await.status,
        204
    );
    alice
        .put(
            path,
            json!({"password": "second password", "old_password": "wrong guess"}),
        )
        .await
        .assert_error(403, "forbidden");
    let r = alice
        .put(
            path,
            json!({"password": "second password", "old_password": PASSWORD}),
        )
        .await;
    assert_eq!(r.status, 204);
    let anonymous = Client { addr, token: None };
    for password in [PASSWORD, "second password"] {
        anonymous
            .post("/v1/login", json!({"user": "alice", "password": password}))
            .await;
    }
    anonymous
        .post("/v1/login", json!({"user": "nobody", "password": PASSWORD}))
        .await;
    no_secret(&alice.get("/v1/users/alice").await.text());

    let _ = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let _ = child.wait();
    let log = log.lock().unwrap().join("\n");
    assert!(log.contains("/v1/login"), "the log has the logins: {log}");
    no_secret(&log);
}
