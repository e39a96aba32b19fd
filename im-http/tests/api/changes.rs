//! Messages that change, over HTTP on every store: edits, deletes for
//! everyone, reactions and replies, their events, and erasure.

use hyper::Method;
use im_engine::Store;
use serde_json::{Value, json};

use crate::common::{Client, Server, Sse, WAIT};

fn path(seq: u64) -> String {
    format!("/v1/conversations/group:g/messages/{seq}")
}

async fn patch(c: &Client, p: &str, body: Value) -> crate::common::Resp {
    c.request(Method::PATCH, p).json(&body).send().await
}

/// The events of `user` from the oldest kept, by long poll.
async fn events(c: &Client) -> Vec<Value> {
    let r = c
        .request(Method::GET, "/v1/events?after=0&limit=1000&wait=0")
        .header("accept", "application/json")
        .send()
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    r.json()["events"].as_array().unwrap().clone()
}

async fn messages_change_on_every_store<S: Store>(store: S) {
    let s = Server::start_on(store, |_, _| {}).await;
    let [alice, bob, carol] = s.users(["alice", "bob", "carol"]).await;
    assert_eq!(
        alice
            .put("/v1/groups/g", json!({"join": "open"}))
            .await
            .status,
        201
    );
    for (c, u) in [(&bob, "bob"), (&carol, "carol")] {
        let r = c
            .put(&format!("/v1/groups/g/members/{u}"), json!(null))
            .await;
        assert!(r.status < 300, "{}", r.text());
    }
    let mut stream = Sse::open(s.addr, "/v1/events", &s.token("carol", false), &[]).await;
    assert_eq!(stream.status, 200);

    let secret = json!({"text": "the secret 7c1f"});
    let r = bob
        .post(
            "/v1/conversations/group:g/messages",
            json!({"body": secret, "client_id": "b1"}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text());
    let reply = alice
        .post(
            "/v1/conversations/group:g/messages",
            json!({"body": {"text": "re"}, "reply_to": 1}),
        )
        .await;
    assert_eq!((reply.status, &reply.json()["reply_to"]), (201, &json!(1)));
    alice
        .post(
            "/v1/conversations/group:g/messages",
            json!({"body": {}, "reply_to": 9}),
        )
        .await
        .assert_error(400, "invalid_reply");

    // Edits: the sender only.
    patch(&alice, &path(1), json!({"body": {"text": "no"}}))
        .await
        .assert_error(403, "forbidden");
    let r = patch(&bob, &path(1), json!({"body": {"text": "edited"}})).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["body"], json!({"text": "edited"}));
    assert!(r.json()["edited_at"].as_u64().is_some());

    // Reactions: counted for whoever looks.
    let key = "/reactions/%F0%9F%91%8D";
    let r = carol
        .request(Method::PUT, &format!("{}{key}", path(1)))
        .send()
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        r.json()["reactions"],
        json!([{"key": "👍", "count": 1, "me": true}])
    );
    let seen_by_bob = bob.get(&path(1)).await.json();
    assert_eq!(
        seen_by_bob["reactions"],
        json!([{"key": "👍", "count": 1, "me": false}])
    );
    let r = bob.get(&format!("{}/reactions", path(1))).await;
    assert_eq!(
        r.json(),
        json!({"reactions": [{"key": "👍", "users": ["carol"]}]})
    );
    carol
        .request(Method::PUT, &format!("{}/reactions/a%07b", path(1)))
        .send()
        .await
        .assert_error(400, "invalid_request");

    // Deletes: the sender or the group's owner; the body is erased.
    carol.delete(&path(1)).await.assert_error(403, "forbidden");
    let r = alice.delete(&path(1)).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["body"], Value::Null);
    assert!(r.json()["deleted_at"].as_u64().is_some());
    assert!(r.json().get("reactions").is_none());
    assert_eq!(alice.delete(&path(1)).await.status, 200, "again");
    patch(&bob, &path(1), json!({"body": {"text": "back"}}))
        .await
        .assert_error(409, "deleted");
    carol
        .request(Method::PUT, &format!("{}{key}", path(1)))
        .send()
        .await
        .assert_error(409, "deleted");
    // A repeat of its send answers the deleted message and stores nothing.
    let r = bob
        .post(
            "/v1/conversations/group:g/messages",
            json!({"body": secret, "client_id": "b1"}),
        )
        .await;
    let repeat = (r.status, r.json()["seq"].clone(), r.json()["body"].clone());
    assert_eq!(repeat, (200, json!(1), Value::Null));

    // The live stream saw every change once, in order; refusals and
    // repeats sent nothing.
    let mut names = Vec::new();
    while names.len() < 5 {
        let e = stream.next_event(WAIT).await.expect("the stream goes on");
        if e.event == "delete" {
            assert_eq!(
                (&e.data["seq"], e.data["deleted_at"].is_u64()),
                (&json!(1), true)
            );
        }
        names.push(e.event);
    }
    assert_eq!(names, ["message", "message", "edit", "reaction", "delete"]);

    // Nothing answers the old body any more: history, one message, the
    // conversation list, a replay of every event.
    let everything = [
        alice.get("/v1/conversations/group:g/messages").await.text(),
        bob.get(&path(1)).await.text(),
        carol.get("/v1/conversations").await.text(),
        serde_json::to_string(&events(&carol).await).unwrap(),
        serde_json::to_string(&events(&bob).await).unwrap(),
    ];
    for answer in everything {
        assert!(
            !answer.contains("7c1f"),
            "the old body is still there: {answer}"
        );
        assert!(
            !answer.contains("edited"),
            "the edited body is still there: {answer}"
        );
    }
    // Changes moved no unread count: carol has both messages unread.
    let list = carol.get("/v1/conversations").await.json();
    assert_eq!(list["conversations"][0]["unread"], 2);
}

crate::common::every_store!(on_every_store, super::messages_change_on_every_store);
