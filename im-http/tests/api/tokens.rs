//! Bearer tokens beyond the basics of `users.rs`: `nbf`, and the compact
//! form JWT uses (three parts of the base64url alphabet, no padding).

use serde_json::{Value, json};

use crate::common::{SECRET, Server};

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn sign(claims: &Value) -> String {
    jsonwebtoken::encode(
        &jsonwebtoken::Header::default(),
        claims,
        &jsonwebtoken::EncodingKey::from_secret(SECRET),
    )
    .unwrap()
}

#[tokio::test]
async fn a_token_is_refused_before_its_nbf() {
    let s = Server::start().await;
    s.users(["alice"]).await;
    let anon = s.anonymous();
    let early = sign(&json!({"sub": "alice", "nbf": now() + 3600}));
    let r = anon.with_token(&early).get("/v1/users/alice").await;
    r.assert_error(401, "unauthorized");
    assert_eq!(r.header("www-authenticate"), Some("Bearer"));
    // Also as a query parameter, and again (nothing about it is remembered).
    anon.get(&format!("/v1/users/alice?access_token={early}"))
        .await
        .assert_error(401, "unauthorized");
    for claims in [
        json!({"sub": "alice", "nbf": now() - 10}),
        json!({"sub": "alice", "nbf": now() - 10, "exp": now() + 3600}),
    ] {
        let r = anon.with_token(&sign(&claims)).get("/v1/users/alice").await;
        assert_eq!(r.status, 200, "{claims}: {}", r.text());
    }
    // A token valid from a second from now is taken once that second came.
    let soon = sign(&json!({"sub": "alice", "nbf": now() + 1}));
    anon.with_token(&soon)
        .get("/v1/users/alice")
        .await
        .assert_error(401, "unauthorized");
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    let r = anon.with_token(&soon).get("/v1/users/alice").await;
    assert_eq!(r.status, 200, "{}", r.text());
}

#[tokio::test]
async fn only_the_base64url_alphabet_without_padding_is_a_token() {
    let s = Server::start().await;
    s.users(["alice"]).await;
    let anon = s.anonymous();
    // Runs of `>` and `?` encode to `-` and `_` in base64url (`+` and `/`
    // in plain base64), whatever their alignment.
    let token = sign(&json!({"sub": "alice", "x": ">>>>>>??????"}));
    let r = anon.with_token(&token).get("/v1/users/alice").await;
    assert_eq!(r.status, 200, "{}", r.text());
    let payload = token.split('.').nth(1).unwrap();
    assert!(payload.contains('-') && payload.contains('_'), "{payload}");

    let parts: Vec<&str> = token.split('.').collect();
    let with_payload = |p: &str| format!("{}.{p}.{}", parts[0], parts[2]);
    let mut variants = vec![
        // Plain base64's alphabet for the same bytes.
        with_payload(&payload.replace('-', "+").replace('_', "/")),
        // Padding, on any part.
        with_payload(&format!("{payload}=")),
        format!("{token}="),
        format!("{}=.{}.{}", parts[0], parts[1], parts[2]),
        // A fourth part, an empty one, a stray character.
        format!("{token}.e30"),
        format!("{}..{}", parts[0], parts[2]),
        format!("{}.{payload}!.{}", parts[0], parts[2]),
    ];
    variants.push(token.replacen('.', "%2E", 1));
    for bad in variants {
        anon.with_token(&bad)
            .get("/v1/users/alice")
            .await
            .assert_error(401, "unauthorized");
    }
}
