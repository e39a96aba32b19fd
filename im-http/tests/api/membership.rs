//! A removal racing sends, over HTTP on every store: the removed member's
//! conversation list, feed and stream stop at its removal.

use std::sync::Arc;

use im_engine::Store;
use serde_json::{Value, json};
use tokio::sync::Barrier;

use crate::common::{Server, Sse, WAIT};

/// Three members send while the owner removes a fourth; then one more
/// message. The removed member's conversation list no longer shows the
/// group, its feed holds no group message after its `left` event, and its
/// stream, read up to that event, agrees with the feed.
async fn a_removal_racing_sends_ends_the_members_view<S: Store>(store: S) {
    let s = Server::start_on(store, |_, _| {}).await;
    let [alice, bob, carol, dave] = s.users(["alice", "bob", "carol", "dave"]).await;
    assert_eq!(alice.put("/v1/groups/g", json!({})).await.status, 201);
    for u in ["bob", "carol", "dave"] {
        let r = alice
            .put(&format!("/v1/groups/g/members/{u}"), json!(null))
            .await;
        assert!(r.status < 300, "{}", r.text());
    }
    let mut stream = Sse::open(s.addr, "/v1/events?after=0", &s.token("dave", false), &[]).await;
    assert_eq!(stream.status, 200, "{}", stream.head);

    let per_sender = 30;
    let start = Arc::new(Barrier::new(4));
    let mut senders = Vec::new();
    for (i, client) in [alice.clone(), bob.clone(), carol].into_iter().enumerate() {
        let start = Arc::clone(&start);
        senders.push(tokio::spawn(async move {
            start.wait().await;
            for n in 0..per_sender {
                let r = client.send("group:g", json!({"from": i, "n": n})).await;
                assert_eq!(r.status, 201, "{}", r.text());
            }
        }));
    }
    start.wait().await;
    tokio::task::yield_now().await;
    let r = alice.delete("/v1/groups/g/members/dave").await;
    assert!(r.status < 300, "{}", r.text());
    for t in senders {
        t.await.unwrap();
    }
    let later = bob.send("group:g", json!({"later": true})).await;
    assert_eq!(later.status, 201, "{}", later.text());

    let list = dave.get("/v1/conversations").await.json();
    assert!(
        list["conversations"]
            .as_array()
            .unwrap()
            .iter()
            .all(|c| c["id"] != "group:g"),
        "the removed member's list still shows the group: {list}"
    );
    dave.get("/v1/conversations/group:g/messages")
        .await
        .assert_error(403, "forbidden");

    let r = dave
        .request(hyper::Method::GET, "/v1/events?after=0&limit=1000&wait=0")
        .header("accept", "application/json")
        .send()
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let events: Vec<Value> = r.json()["events"].as_array().unwrap().clone();
    let left = events
        .iter()
        .position(|e| e["event"] == "member" && e["data"]["user"] == "dave")
        .and_then(|first| {
            events[first..]
                .iter()
                .position(|e| e["event"] == "member" && e["data"]["change"] == "left")
                .map(|p| first + p)
        })
        .expect("dave's feed has his removal");
    assert_eq!(events[left]["data"]["user"], "dave");
    assert!(
        events[left + 1..].is_empty(),
        "events after dave's removal: {:?}",
        &events[left + 1..]
    );
    // The stream read up to the removal shows the same events.
    for want in &events[..=left] {
        let got = stream.next_event(WAIT).await.expect("the stream goes on");
        assert_eq!(
            (got.id.as_str(), &got.data),
            (want["id"].as_str().unwrap(), &want["data"])
        );
    }
}

crate::common::every_store!(
    on_every_store,
    super::a_removal_racing_sends_ends_the_members_view
);
