//! Rooms over HTTP on every store: the room routes, every conversation
//! route with `room:<rid>`, the list's `last` and `unread`, member paging.

use serde_json::{Value, json};

use crate::common::Server;

/// The whole room flow a client sees, on one store.
async fn rooms_on_every_store<S: im_engine::Store>(store: S) {
    let s = Server::start_on(store, |_, _| {}).await;
    let [alice, bob, carol] = s.users(["alice", "bob", "carol"]).await;

    let r = alice
        .put(
            "/v1/rooms/lobby",
            json!({"fields": {"topic": "hi"}, "join": "open"}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(
        (
            r.json()["owner"].clone(),
            r.json()["join"].clone(),
            r.json()["members"].clone()
        ),
        (json!("alice"), json!("open"), json!(1))
    );
    alice
        .put("/v1/rooms/x", json!({"join": "approval"}))
        .await
        .assert_error(400, "invalid_request");
    alice
        .put("/v1/groups/lobby", json!({}))
        .await
        .assert_error(409, "conflict");
    bob.get("/v1/groups/lobby")
        .await
        .assert_error(404, "not_found");
    bob.get("/v1/rooms/nope")
        .await
        .assert_error(404, "not_found");

    assert_eq!(
        bob.put("/v1/rooms/lobby/members/bob", json!(null))
            .await
            .status,
        200
    );
    carol
        .send("room:lobby", json!({"text": "not yet"}))
        .await
        .assert_error(403, "forbidden");
    for n in 1..=3 {
        let r = alice.send("room:lobby", json!({"n": n})).await;
        assert_eq!((r.status, r.json()["seq"].clone()), (201, json!(n)));
    }
    let history = bob
        .get("/v1/conversations/room:lobby/messages")
        .await
        .json();
    let seqs: Vec<Value> = history["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["seq"].clone())
        .collect();
    assert_eq!(seqs, [json!(1), json!(2), json!(3)]);

    // The list: the room with its newest message and what bob has unread.
    let list = bob.get("/v1/conversations").await.json();
    let row = &list["conversations"][0];
    assert_eq!(
        (
            row["id"].clone(),
            row["kind"].clone(),
            row["with"].clone(),
            row["unread"].clone(),
            row["last"]["seq"].clone()
        ),
        (
            json!("room:lobby"),
            json!("room"),
            json!("lobby"),
            json!(3),
            json!(3)
        )
    );
    let r = bob
        .post("/v1/conversations/room:lobby/read", json!({"seq": 2}))
        .await;
    assert_eq!(r.json(), json!({"read_seq": 2, "unread": 1}));
    let list = alice.get("/v1/conversations").await.json();
    assert_eq!(
        list["conversations"][0]["unread"], 0,
        "a sender read its own"
    );

    // Changes, as in any conversation; nothing in anyone's feed.
    let r = bob
        .request(
            hyper::Method::PUT,
            "/v1/conversations/room:lobby/messages/1/reactions/ok",
        )
        .send()
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let r = alice
        .request(
            hyper::Method::PATCH,
            "/v1/conversations/room:lobby/messages/1",
        )
        .json(&json!({"body": {"n": 10}}))
        .send()
        .await;
    assert_eq!(
        (r.status, r.json()["body"].clone()),
        (200, json!({"n": 10}))
    );
    assert_eq!(
        alice
            .delete("/v1/conversations/room:lobby/messages/2")
            .await
            .status,
        200
    );
    let feed = bob
        .request(hyper::Method::GET, "/v1/events?after=0&wait=0")
        .header("accept", "application/json")
        .send()
        .await
        .json();
    let names: Vec<Value> = feed["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["event"].clone())
        .collect();
    assert!(
        names
            .iter()
            .all(|n| n != "message" && n != "edit" && n != "delete" && n != "reaction"),
        "a room writes no feed event: {names:?}"
    );
    bob.post(
        "/v1/conversations/room:lobby/typing",
        json!({"typing": true}),
    )
    .await
    .assert_error(400, "invalid_request");

    // Members page by id; a member leaves and loses the room.
    assert_eq!(
        carol
            .put("/v1/rooms/lobby/members/carol", json!(null))
            .await
            .status,
        200
    );
    let page = bob.get("/v1/rooms/lobby/members?limit=2").await.json();
    let ids: Vec<Value> = page["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].clone())
        .collect();
    assert_eq!(
        (ids, page["has_more"].clone()),
        (vec![json!("alice"), json!("bob")], json!(true))
    );
    let next = page["next"].as_str().unwrap().to_owned();
    let page = bob
        .get(&format!("/v1/rooms/lobby/members?limit=2&after={next}"))
        .await
        .json();
    assert_eq!(
        (page["members"][0]["id"].clone(), page["has_more"].clone()),
        (json!("carol"), json!(false))
    );
    assert_eq!(bob.get("/v1/rooms/lobby").await.json()["members"], 3);
    assert_eq!(bob.delete("/v1/rooms/lobby/members/bob").await.status, 200);
    let list = bob.get("/v1/conversations").await.json();
    assert_eq!(list["conversations"], json!([]));
    bob.get("/v1/conversations/room:lobby/messages")
        .await
        .assert_error(403, "forbidden");
    alice
        .delete("/v1/rooms/lobby/members/alice")
        .await
        .assert_error(409, "conflict");
}

crate::common::every_store!(on_every_store, super::rooms_on_every_store);

#[tokio::test]
async fn room_limits_are_configurable_and_refused_before_work() {
    let s = Server::start_with(|e, _| {
        e.limits.room_members = 2;
        e.limits.rooms_per_user = 1;
    })
    .await;
    let [alice, bob, carol] = s.users(["alice", "bob", "carol"]).await;
    assert_eq!(
        alice
            .put("/v1/rooms/a", json!({"join": "open"}))
            .await
            .status,
        201
    );
    assert_eq!(
        bob.put("/v1/rooms/a/members/bob", json!(null)).await.status,
        200
    );
    carol
        .put("/v1/rooms/a/members/carol", json!(null))
        .await
        .assert_error(409, "conflict");
    alice
        .put("/v1/rooms/b", json!({}))
        .await
        .assert_error(409, "conflict");
    assert_eq!(s.admin().get("/v1/rooms/a").await.json()["members"], 2);
}
