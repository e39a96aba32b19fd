use serde_json::json;

use crate::common::Server;

#[tokio::test]
async fn any_user_creates_a_group_and_only_its_owner_or_an_admin_updates_it() {
    let s = Server::start().await;
    let [alice, bob] = s.users(["alice", "bob"]).await;

    let r = alice
        .put(
            "/v1/groups/rust",
            json!({"fields": {"topic": "crabs"}, "join": "open"}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text());
    let g = r.json();
    assert_eq!(g["id"], "rust");
    assert_eq!(g["owner"], "alice");
    assert_eq!(g["join"], "open");
    assert_eq!(g["members"], 1);
    assert_eq!(g["fields"], json!({"topic": "crabs"}));
    assert!(g["created_at"].as_u64().is_some());

    let r = alice
        .put(
            "/v1/groups/rust",
            json!({"fields": {"topic": null, "name": "Rust"}}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["fields"], json!({"name": "Rust"}));
    assert_eq!(r.json()["join"], "open");

    bob.put("/v1/groups/rust", json!({"join": "invite"}))
        .await
        .assert_error(403, "forbidden");
    let r = s
        .admin()
        .put("/v1/groups/rust", json!({"join": "invite"}))
        .await;
    assert_eq!(r.status, 200);
    let r = bob.get("/v1/groups/rust").await;
    assert_eq!((r.status, r.json()["join"].clone()), (200, json!("invite")));

    bob.get("/v1/groups/nope")
        .await
        .assert_error(404, "not_found");
    bob.put("/v1/groups/rust", json!({"join": "sometimes"}))
        .await
        .assert_error(400, "bad_json");
    bob.put("/v1/groups/bad%2Fid", json!({}))
        .await
        .assert_error(400, "invalid_id");
    // A caller that is not a user cannot own a group.
    s.client("ghost")
        .put("/v1/groups/g2", json!({}))
        .await
        .assert_error(404, "not_found");
}

#[tokio::test]
async fn members_join_leave_and_the_owner_cannot_leave() {
    let s = Server::start().await;
    let [alice, bob, carol] = s.users(["alice", "bob", "carol"]).await;
    assert_eq!(alice.put("/v1/groups/g", json!({})).await.status, 201);

    // Invite-only: only the owner (or an admin) adds.
    bob.put("/v1/groups/g/members/bob", json!(null))
        .await
        .assert_error(403, "forbidden");
    for _ in 0..2 {
        let r = alice.put("/v1/groups/g/members/bob", json!(null)).await;
        assert_eq!(
            (r.status, r.json()),
            (200, json!({"ok": true})),
            "{}",
            r.text()
        );
    }
    let r = bob.get("/v1/groups/g/members").await;
    assert_eq!(r.status, 200, "{}", r.text());
    let members = r.json()["members"].as_array().unwrap().clone();
    let view: Vec<_> = members
        .iter()
        .map(|m| (m["id"].as_str().unwrap(), m["role"].as_str().unwrap()))
        .collect();
    assert_eq!(view, [("alice", "owner"), ("bob", "member")]);
    assert!(members[1]["since"].as_u64().is_some());

    carol
        .get("/v1/groups/g/members")
        .await
        .assert_error(403, "forbidden");
    assert_eq!(s.admin().get("/v1/groups/g/members").await.status, 200);
    assert_eq!(
        s.admin()
            .put("/v1/groups/g/members/carol", json!(null))
            .await
            .status,
        200
    );
    assert_eq!(bob.get("/v1/groups/g").await.json()["members"], 3);

    // Quitting, removing, idempotence, the owner.
    carol
        .delete("/v1/groups/g/members/bob")
        .await
        .assert_error(403, "forbidden");
    for _ in 0..2 {
        let r = bob.delete("/v1/groups/g/members/bob").await;
        assert_eq!((r.status, r.json()), (200, json!({"ok": true})));
    }
    assert_eq!(alice.delete("/v1/groups/g/members/carol").await.status, 200);
    alice
        .delete("/v1/groups/g/members/alice")
        .await
        .assert_error(409, "conflict");
    s.admin()
        .delete("/v1/groups/g/members/alice")
        .await
        .assert_error(409, "conflict");
    assert_eq!(alice.get("/v1/groups/g").await.json()["members"], 1);

    // Open groups: anyone joins by itself, not others.
    assert_eq!(
        alice
            .put("/v1/groups/g", json!({"join": "open"}))
            .await
            .status,
        200
    );
    assert_eq!(
        carol
            .put("/v1/groups/g/members/carol", json!(null))
            .await
            .status,
        200
    );
    carol
        .put("/v1/groups/g/members/bob", json!(null))
        .await
        .assert_error(403, "forbidden");

    alice
        .put("/v1/groups/g/members/nobody", json!(null))
        .await
        .assert_error(404, "not_found");
    alice
        .put("/v1/groups/nope/members/bob", json!(null))
        .await
        .assert_error(404, "not_found");
    alice
        .put("/v1/groups/g/members/no%20body", json!(null))
        .await
        .assert_error(400, "invalid_id");
}

#[tokio::test]
async fn a_full_group_refuses_members() {
    let s = Server::start_with(|e, _| e.limits.group_members = 2).await;
    let [alice, _bob, _carol] = s.users(["alice", "bob", "carol"]).await;
    alice.put("/v1/groups/g", json!({})).await;
    assert_eq!(
        alice
            .put("/v1/groups/g/members/bob", json!(null))
            .await
            .status,
        200
    );
    alice
        .put("/v1/groups/g/members/carol", json!(null))
        .await
        .assert_error(409, "conflict");
}

#[tokio::test]
async fn a_former_member_keeps_no_access_to_the_conversation() {
    let s = Server::start().await;
    let [alice, bob] = s.users(["alice", "bob"]).await;
    alice.put("/v1/groups/g", json!({})).await;
    alice.put("/v1/groups/g/members/bob", json!(null)).await;
    assert_eq!(bob.send("group:g", json!({"text": "hi"})).await.status, 201);
    assert_eq!(
        bob.get("/v1/conversations/group:g/messages").await.status,
        200
    );
    bob.delete("/v1/groups/g/members/bob").await;
    bob.get("/v1/conversations/group:g/messages")
        .await
        .assert_error(403, "forbidden");
    bob.get("/v1/conversations/group:g/messages/1")
        .await
        .assert_error(403, "forbidden");
    bob.send("group:g", json!({"text": "hi"}))
        .await
        .assert_error(403, "forbidden");
    bob.post("/v1/conversations/group:g/read", json!({}))
        .await
        .assert_error(403, "forbidden");
    let list = bob.get("/v1/conversations").await.json();
    assert_eq!(list["conversations"], json!([]));
}
