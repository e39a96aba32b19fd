//! People and moderation over HTTP on every store: join approval, contact
//! events, blocks, bans, suspension, hand-over and erasure.

use std::time::{Duration, Instant};

use im_engine::Store;
use serde_json::{Value, json};

use crate::common::{Client, Server, Sse, WAIT};

/// Every stored event of `client`'s feed, by long poll.
async fn feed(client: &Client) -> Vec<Value> {
    let r = client
        .request(hyper::Method::GET, "/v1/events?after=0&limit=1000&wait=0")
        .header("accept", "application/json")
        .send()
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    r.json()["events"].as_array().unwrap().clone()
}

/// The events of `kind` in `client`'s feed, their data only.
async fn events(client: &Client, kind: &str) -> Vec<Value> {
    feed(client)
        .await
        .into_iter()
        .filter(|e| e["event"] == kind)
        .map(|e| e["data"].clone())
        .collect()
}

fn ok(r: &crate::common::Resp) {
    assert!(r.status < 300, "{} {}", r.status, r.text());
}

async fn join_approval(alice: &Client, bob: &Client) {
    let r = alice
        .put("/v1/groups/club", json!({"join": "approval"}))
        .await;
    assert_eq!(
        (r.status, r.json()["join"].clone()),
        (201, json!("approval"))
    );
    for _ in 0..2 {
        let r = bob.put("/v1/groups/club/members/bob", json!(null)).await;
        assert_eq!((r.status, r.json()), (202, json!({"status": "requested"})));
    }
    // One request, one event for the owner, however often it was asked.
    assert_eq!(
        events(alice, "join_request").await,
        [json!({"group": "club", "user": "bob"})]
    );
    let listed = alice.get("/v1/groups/club/requests").await.json();
    assert_eq!(listed["requests"][0]["user"], "bob");
    assert_eq!(listed["requests"].as_array().unwrap().len(), 1);
    bob.get("/v1/groups/club/requests")
        .await
        .assert_error(403, "forbidden");
    bob.get("/v1/groups/club/members")
        .await
        .assert_error(403, "forbidden");
    // The requester withdraws; asks again; the owner approves.
    ok(&bob.delete("/v1/groups/club/requests/bob").await);
    assert_eq!(
        alice.get("/v1/groups/club/requests").await.json(),
        json!({"requests": []})
    );
    assert_eq!(
        bob.put("/v1/groups/club/members/bob", json!(null))
            .await
            .status,
        202
    );
    ok(&alice.put("/v1/groups/club/members/bob", json!(null)).await);
    assert_eq!(
        alice.get("/v1/groups/club/requests").await.json(),
        json!({"requests": []})
    );
    assert_eq!(bob.get("/v1/groups/club/members").await.status, 200);
    // A member asking again is a member.
    ok(&bob.put("/v1/groups/club/members/bob", json!(null)).await);
}

async fn contacts_and_blocks(alice: &Client, bob: &Client, carol: &Client) {
    ok(&carol.put("/v1/contacts/alice", json!(null)).await);
    ok(&carol.put("/v1/contacts/alice", json!(null)).await);
    assert_eq!(
        events(alice, "contact").await,
        [json!({"user": "carol", "change": "added"})]
    );

    ok(&bob.send("dm:alice:bob", json!({"t": "before"})).await);
    ok(&bob.put("/v1/blocks/alice", json!(null)).await);
    let blocks = bob.get("/v1/blocks").await.json();
    assert_eq!(blocks["blocks"][0]["id"], "alice", "{blocks}");
    alice
        .send("dm:alice:bob", json!({"t": "hi"}))
        .await
        .assert_error(403, "blocked");
    bob.send("dm:alice:bob", json!({"t": "hi"}))
        .await
        .assert_error(403, "blocked");
    // Her contact add tells him nothing; groups are not affected.
    ok(&alice.put("/v1/contacts/bob", json!(null)).await);
    assert!(events(bob, "contact").await.is_empty());
    ok(&alice.send("group:club", json!({"t": "in the group"})).await);
    let history = bob
        .get("/v1/conversations/dm:alice:bob/messages")
        .await
        .json();
    assert_eq!(
        history["messages"].as_array().unwrap().len(),
        1,
        "{history}"
    );
    // Lifted, messages flow again.
    ok(&bob.delete("/v1/blocks/alice").await);
    assert_eq!(bob.get("/v1/blocks").await.json(), json!({"blocks": []}));
    assert_eq!(
        alice
            .send("dm:alice:bob", json!({"t": "again"}))
            .await
            .status,
        201
    );
    bob.put("/v1/blocks/bob", json!(null))
        .await
        .assert_error(400, "invalid_request");
}

async fn bans(alice: &Client, bob: &Client) {
    bob.put("/v1/groups/club/bans/alice", json!(null))
        .await
        .assert_error(403, "forbidden");
    ok(&alice.put("/v1/groups/club/bans/bob", json!(null)).await);
    let bans = alice.get("/v1/groups/club/bans").await.json();
    assert_eq!(bans["bans"][0]["id"], "bob", "{bans}");
    bob.send("group:club", json!({"t": "still here?"}))
        .await
        .assert_error(403, "forbidden");
    // Neither the user nor the owner brings it back.
    bob.put("/v1/groups/club/members/bob", json!(null))
        .await
        .assert_error(403, "banned");
    alice
        .put("/v1/groups/club/members/bob", json!(null))
        .await
        .assert_error(403, "banned");
    alice
        .put("/v1/groups/club/bans/alice", json!(null))
        .await
        .assert_error(409, "conflict");
    ok(&alice.delete("/v1/groups/club/bans/bob").await);
    ok(&alice.put("/v1/groups/club/members/bob", json!(null)).await);
    assert_eq!(
        bob.send("group:club", json!({"t": "back"})).await.status,
        201
    );
}

async fn suspension<S: Store>(s: &Server<S>, carol: &Client) {
    let admin = s.admin();
    let mut stream = Sse::open(s.addr, "/v1/events", &s.token("carol", false), &[]).await;
    assert_eq!(stream.status, 200, "{}", stream.head);
    let r = admin
        .put("/v1/users/carol", json!({"suspended": true}))
        .await;
    assert_eq!(
        (r.status, r.json()["suspended"].clone()),
        (200, json!(true))
    );
    let suspended = Instant::now();
    while stream.next_frame(WAIT).await.is_some() {}
    assert!(
        suspended.elapsed() < Duration::from_secs(1),
        "the stream stayed open {:?}",
        suspended.elapsed()
    );
    carol
        .get("/v1/conversations")
        .await
        .assert_error(403, "suspended");
    carol
        .request(hyper::Method::GET, "/v1/events?wait=0")
        .header("accept", "application/json")
        .send()
        .await
        .assert_error(403, "suspended");
    assert_eq!(admin.get("/v1/users/carol").await.json()["suspended"], true);
    let seen = s.client("bob").get("/v1/users/carol").await.json();
    assert!(seen.get("suspended").is_none(), "{seen}");
    admin
        .put(
            "/v1/users/carol",
            json!({"suspended": true, "fields": {"a": "b"}}),
        )
        .await
        .assert_error(400, "bad_json");
    carol
        .put("/v1/users/carol", json!({"suspended": false}))
        .await
        .assert_error(403, "suspended");
    ok(&admin
        .put("/v1/users/carol", json!({"suspended": false}))
        .await);
    assert_eq!(carol.get("/v1/conversations").await.status, 200);
    s.client("bob")
        .put("/v1/users/carol", json!({"suspended": true}))
        .await
        .assert_error(403, "forbidden");
}

async fn hand_over_and_erasure<S: Store>(s: &Server<S>, alice: &Client, bob: &Client) {
    let admin = s.admin();
    admin
        .delete("/v1/users/alice")
        .await
        .assert_error(409, "owner");
    alice
        .put("/v1/groups/club", json!({"owner": "carol"}))
        .await
        .assert_error(409, "conflict");
    let g = alice.put("/v1/groups/club", json!({"owner": "bob"})).await;
    assert_eq!((g.status, g.json()["owner"].clone()), (200, json!("bob")));
    let members = bob.get("/v1/groups/club/members").await.json();
    let role = |u: &str| {
        members["members"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["id"] == u)
            .map(|m| m["role"].clone())
    };
    assert_eq!(
        (role("alice"), role("bob")),
        (Some(json!("member")), Some(json!("owner")))
    );

    alice
        .delete("/v1/users/bob")
        .await
        .assert_error(403, "forbidden");
    ok(&admin.delete("/v1/users/alice").await);
    admin
        .get("/v1/users/alice")
        .await
        .assert_error(404, "not_found");
    let history = bob
        .get("/v1/conversations/group:club/messages")
        .await
        .json();
    let messages = history["messages"].as_array().unwrap();
    assert!(messages.iter().any(|m| m["from"] == "alice"), "{history}");
    for m in messages {
        if m["from"] == "alice" {
            assert_eq!(m["body"], Value::Null, "{m}");
            assert!(m["deleted_at"].is_number(), "{m}");
        } else {
            assert_ne!(m["body"], Value::Null, "{m}");
        }
    }
    // A direct conversation needs both its users.
    bob.get("/v1/conversations/dm:alice:bob/messages")
        .await
        .assert_error(404, "not_found");
    let members = bob.get("/v1/groups/club/members").await.json();
    assert!(
        members["members"]
            .as_array()
            .unwrap()
            .iter()
            .all(|m| m["id"] != "alice"),
        "{members}"
    );
    // The id is free again, for a new user with nothing of the old one's.
    assert_eq!(admin.put("/v1/users/alice", json!({})).await.status, 201);
    let list = alice.get("/v1/conversations").await.json();
    assert_eq!(list["conversations"], json!([]), "{list}");
    let contacts = alice.get("/v1/contacts").await.json();
    assert_eq!(contacts["contacts"], json!([]), "{contacts}");
    assert!(feed(alice).await.is_empty());
}

async fn people_and_moderation<S: Store>(store: S) {
    let s = Server::start_on(store, |_, _| {}).await;
    let [alice, bob, carol] = s.users(["alice", "bob", "carol"]).await;
    join_approval(&alice, &bob).await;
    contacts_and_blocks(&alice, &bob, &carol).await;
    bans(&alice, &bob).await;
    suspension(&s, &carol).await;
    hand_over_and_erasure(&s, &alice, &bob).await;
}

crate::common::every_store!(on_every_store, super::people_and_moderation);
