//! `GET /v1/admin/events`: every stored event once, for admins, as a long
//! poll and as an event stream with the cursor rules of `GET /v1/events`.

use serde_json::{Value, json};

use crate::common::{Server, Sse, WAIT};

/// `(event, data)` of a long poll's events, and its `next`.
async fn poll(s: &Server<impl im_engine::Store>, after: &str) -> (Vec<(String, Value)>, String) {
    let r = s
        .admin()
        .request(
            hyper::Method::GET,
            &format!("/v1/admin/events?after={after}&wait=0"),
        )
        .header("accept", "application/json")
        .send()
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let body = r.json();
    let events = body["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            assert!(e["id"].as_str().is_some_and(|id| !id.is_empty()), "{e}");
            (e["event"].as_str().unwrap().to_owned(), e["data"].clone())
        })
        .collect();
    (events, body["next"].as_str().unwrap().to_owned())
}

async fn firehose_on_every_store<S: im_engine::Store>(store: S) {
    let s = Server::start_on(store, |_, _| {}).await;
    let [alice, bob, _carol] = s.users(["alice", "bob", "carol"]).await;
    alice.put("/v1/groups/g", json!({})).await;
    for u in ["bob", "carol"] {
        let r = alice
            .put(&format!("/v1/groups/g/members/{u}"), json!(null))
            .await;
        assert_eq!(r.status / 100, 2, "{}", r.text());
    }
    alice.send("group:g", json!({"text": "to three"})).await;
    bob.send("dm:alice:bob", json!({"text": "to two"})).await;
    bob.post("/v1/conversations/group:g/read", json!({})).await;

    // Once each: the group's message once, not once per member; the read
    // with its user.
    let (events, next) = poll(&s, "0").await;
    let names: Vec<&str> = events.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        ["member", "member", "member", "message", "message", "read"]
    );
    assert_eq!(events[3].1["body"], json!({"text": "to three"}));
    assert_eq!(events[3].1["conversation"], "group:g");
    assert_eq!(events[4].1["from"], "bob");
    assert_eq!(
        events[5].1,
        json!({"conversation": "group:g", "seq": 1, "feed": "bob"})
    );

    // The stream from `next` hears the next event, with an id to resume
    // after; `Last-Event-ID` resumes there.
    let token = s.token("root", true);
    let mut sse = Sse::open(
        s.addr,
        &format!("/v1/admin/events?after={next}"),
        &token,
        &[],
    )
    .await;
    assert_eq!(sse.status, 200, "{}", sse.head);
    assert_eq!(sse.header("connection").as_deref(), Some("close"));
    alice.send("dm:alice:bob", json!({"text": "live"})).await;
    let e = sse.next_event(WAIT).await.expect("the stream hears of it");
    assert_eq!(
        (e.event.as_str(), &e.data["body"]),
        ("message", &json!({"text": "live"}))
    );
    drop(sse);
    alice.send("dm:alice:bob", json!({"text": "after"})).await;
    let mut sse = Sse::open(
        s.addr,
        "/v1/admin/events",
        &token,
        &[("last-event-id", &e.id)],
    )
    .await;
    let next_one = sse.next_event(WAIT).await.expect("resumed");
    assert_eq!(next_one.data["body"], json!({"text": "after"}));

    // A malformed cursor is a 400; a user's token a 403.
    let r = s.admin().get("/v1/admin/events?after=nonsense").await;
    r.assert_error(400, "invalid_request");
    let r = alice
        .request(hyper::Method::GET, "/v1/admin/events?after=0")
        .header("accept", "application/json")
        .send()
        .await;
    r.assert_error(403, "forbidden");
    let sse = Sse::open(s.addr, "/v1/admin/events", &s.token("alice", false), &[]).await;
    assert_eq!(sse.status, 403, "{}", sse.head);
}

crate::common::every_store!(on_every_store, super::firehose_on_every_store);
