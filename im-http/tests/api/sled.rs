//! The sled store under the server: restarts keep everything.

use std::path::Path;
use std::time::Duration;

use im_store_sled::{SledConfig, SledStore};
use serde_json::json;

use crate::binary::{Serve, token};
use crate::common::{Server, Sse, WAIT};

/// Opens the store at `dir`, waiting for a previous process's handle (its
/// background threads) to let go of it.
pub(crate) async fn open(dir: &Path) -> SledStore {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let config = SledConfig::new(dir);
        match tokio::task::spawn_blocking(move || SledStore::open(config))
            .await
            .unwrap()
        {
            Ok(store) => return store,
            Err(im_store_sled::Error::Locked { .. }) if tokio::time::Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(e) => panic!("open {}: {e}", dir.display()),
        }
    }
}

#[tokio::test]
async fn a_restart_on_the_same_directory_keeps_everything_and_old_cursors() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start_on(open(dir.path()).await, |_, _| {}).await;
    let [alice, bob] = s.users(["alice", "bob"]).await;
    alice
        .put("/v1/groups/g", json!({"fields": {"name": "G"}}))
        .await;
    alice.put("/v1/groups/g/members/bob", json!(null)).await;
    alice.put("/v1/contacts/bob", json!(null)).await;
    let mut sse = Sse::open(s.addr, "/v1/events?after=0", &s.token("bob", false), &[]).await;
    let mut last = String::new();
    for i in 1..=3 {
        let r = alice
            .post(
                "/v1/conversations/group:g/messages",
                json!({"body": {"n": i}, "client_id": format!("c{i}")}),
            )
            .await;
        assert_eq!(r.status, 201);
    }
    // member(joined), contact (alice added him), then the three messages.
    for _ in 0..5 {
        last = sse.next_event(WAIT).await.unwrap().id;
    }
    bob.post("/v1/conversations/group:g/read", json!({"seq": 1}))
        .await;
    let before = (
        bob.get("/v1/conversations").await.json(),
        alice.get("/v1/contacts").await.json(),
        bob.get("/v1/groups/g").await.json(),
    );
    drop(sse);
    alice.send("dm:alice:bob", json!({"after": "cursor"})).await;
    s.stop().await;

    let s = Server::start_on(open(dir.path()).await, |_, _| {}).await;
    let (alice, bob) = (s.client("alice"), s.client("bob"));
    let after = (
        bob.get("/v1/conversations").await.json(),
        alice.get("/v1/contacts").await.json(),
        bob.get("/v1/groups/g").await.json(),
    );
    // The dm is new since `before`; the rest is unchanged.
    assert_eq!(after.0["conversations"][1], before.0["conversations"][0]);
    // Bob's stream was open before; after a restart everyone is offline.
    let contact = |v: &serde_json::Value| {
        (
            v["contacts"][0]["id"].clone(),
            v["contacts"][0]["since"].clone(),
        )
    };
    assert_eq!(contact(&after.1), contact(&before.1));
    assert_eq!(after.1["contacts"][0]["online"], false);
    assert_eq!(after.2, before.2);
    let page = bob.get("/v1/conversations/group:g/messages").await.json();
    assert_eq!(page["messages"].as_array().unwrap().len(), 3);
    // Idempotency survives the restart too.
    let r = alice
        .post(
            "/v1/conversations/group:g/messages",
            json!({"body": {"n": 3}, "client_id": "c3"}),
        )
        .await;
    assert_eq!((r.status, r.json()["seq"].clone()), (200, json!(3)));

    // The old cursor resumes exactly after its event: the read event and
    // the dm, then live ones.
    let mut sse = Sse::open(
        s.addr,
        "/v1/events",
        &s.token("bob", false),
        &[("last-event-id", &last)],
    )
    .await;
    let e = sse.next_event(WAIT).await.unwrap();
    assert_eq!(e.event, "read");
    let e = sse.next_event(WAIT).await.unwrap();
    assert_eq!(
        (e.event.as_str(), e.data["conversation"].as_str()),
        ("message", Some("dm:alice:bob"))
    );
    alice.send("group:g", json!({"n": 4})).await;
    let e = sse.next_event(WAIT).await.unwrap();
    assert_eq!(e.data["seq"], 4);
    s.stop().await;
}

#[tokio::test]
async fn the_binary_keeps_its_secret_and_data_in_the_data_directory() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let store = format!("sled:{}", data.display());
    let serve = Serve::start(&["--store", &store]);

    let secret = data.join("secret");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&secret).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let admin = token(&["root", "--admin", "--store", &store]);
    let r = serve
        .client(&admin)
        .put("/v1/users/alice", json!({"fields": {"a": "1"}}))
        .await;
    assert_eq!(r.status, 201, "{}", r.text());
    let alice = token(&["alice", "--data-dir", data.to_str().unwrap()]);
    assert_eq!(serve.client(&alice).get("/v1/contacts").await.status, 200);
    serve.stop();

    // Started again: same secret, same data.
    let first_secret = std::fs::read(&secret).unwrap();
    let serve = Serve::start(&["--store", &store]);
    assert_eq!(std::fs::read(&secret).unwrap(), first_secret);
    let r = serve.client(&alice).get("/v1/users/alice").await;
    assert_eq!(
        (r.status, r.json()["fields"].clone()),
        (200, json!({"a": "1"}))
    );
    serve.stop();
}
