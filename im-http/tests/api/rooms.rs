//! Rooms over HTTP on every store: the room routes, every conversation
//! route with `room:<rid>`, the list's `last` and `unread`, member paging.

use std::time::Duration;

use serde_json::{Value, json};
use tokio::time::Instant;

use crate::common::{Server, Sse, WAIT};

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
    let typed = bob
        .post(
            "/v1/conversations/room:lobby/typing",
            json!({"typing": true}),
        )
        .await;
    assert_eq!(typed.status, 204, "a member types in a room");

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
    // The owner hands the room to a member (none else).
    bob.put("/v1/rooms/lobby", json!({"owner": "bob"}))
        .await
        .assert_error(403, "forbidden");
    let r = alice
        .put("/v1/rooms/lobby", json!({"owner": "carol"}))
        .await;
    assert_eq!((r.status, r.json()["owner"].clone()), (200, json!("carol")));
    alice
        .put("/v1/rooms/lobby", json!({"owner": "alice"}))
        .await
        .assert_error(403, "forbidden");
    let r = carol
        .put("/v1/rooms/lobby", json!({"owner": "alice"}))
        .await;
    assert_eq!((r.status, r.json()["owner"].clone()), (200, json!("alice")));
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

/// Live: a stream watching a room gets its events without `id:` lines;
/// the rooms are checked before the stream starts; a member who leaves
/// stops getting them.
async fn rooms_live_on_every_store<S: im_engine::Store>(store: S) {
    let s = Server::start_on(store, |_, _| {}).await;
    let [alice, bob, _carol] = s.users(["alice", "bob", "carol"]).await;
    assert_eq!(
        alice
            .put("/v1/rooms/live", json!({"join": "open"}))
            .await
            .status,
        201
    );
    assert_eq!(
        bob.put("/v1/rooms/live/members/bob", json!(null))
            .await
            .status,
        200
    );

    let carol = s.token("carol", false);
    let refused = Sse::open(s.addr, "/v1/events?rooms=live", &carol, &[]).await;
    assert_eq!(refused.status, 403, "{}", refused.head);
    let many: Vec<String> = (0..17).map(|n| format!("r{n}")).collect();
    let path = format!("/v1/events?rooms={}", many.join(","));
    assert_eq!(Sse::open(s.addr, &path, &carol, &[]).await.status, 400);
    let bad = Sse::open(s.addr, "/v1/events?rooms=a%2Fb", &carol, &[]).await;
    assert_eq!(bad.status, 400);
    bob.request(hyper::Method::GET, "/v1/events?rooms=live&wait=0")
        .header("accept", "application/json")
        .send()
        .await
        .assert_error(400, "invalid_request");

    let mut stream = Sse::open(s.addr, "/v1/events?rooms=live", &s.token("bob", false), &[]).await;
    assert_eq!(stream.status, 200, "{}", stream.head);
    let r = alice.send("room:live", json!({"text": "hello"})).await;
    assert_eq!(r.status, 201);
    let e = stream.next_event(WAIT).await.expect("the room's message");
    assert_eq!((e.event.as_str(), e.id.as_str()), ("message", ""));
    assert_eq!(
        (
            e.data["conversation"].clone(),
            e.data["seq"].clone(),
            e.data["body"].clone()
        ),
        (json!("room:live"), json!(1), json!({"text": "hello"}))
    );
    let r = alice
        .request(
            hyper::Method::PATCH,
            "/v1/conversations/room:live/messages/1",
        )
        .json(&json!({"body": {"text": "hello!"}}))
        .send()
        .await;
    assert_eq!(r.status, 200);
    let e = stream.next_event(WAIT).await.expect("the edit");
    assert_eq!(
        (e.event.as_str(), e.data["body"].clone()),
        ("edit", json!({"text": "hello!"}))
    );

    // Typing reaches the others watching the room, not the typist.
    let typed = bob
        .post(
            "/v1/conversations/room:live/typing",
            json!({"typing": true}),
        )
        .await;
    assert_eq!(typed.status, 204);
    let typed = alice
        .post(
            "/v1/conversations/room:live/typing",
            json!({"typing": true}),
        )
        .await;
    assert_eq!(typed.status, 204);
    let e = stream.next_event(WAIT).await.expect("alice's typing");
    assert_eq!(
        (e.event.as_str(), e.id.as_str(), e.data.clone()),
        (
            "typing",
            "",
            json!({"conversation": "room:live", "user": "alice", "typing": true})
        ),
        "bob's stream shows alice typing, and not bob himself"
    );

    // Removed, bob hears no more of the room.
    assert_eq!(alice.delete("/v1/rooms/live/members/bob").await.status, 200);
    assert_eq!(
        alice
            .send("room:live", json!({"text": "gone"}))
            .await
            .status,
        201
    );
    assert_eq!(
        alice
            .send("dm:alice:bob", json!({"text": "ping"}))
            .await
            .status,
        201
    );
    let e = stream.next_event(WAIT).await.expect("the direct message");
    assert_eq!(
        (e.event.as_str(), e.data["conversation"].clone()),
        ("message", json!("dm:alice:bob")),
        "nothing of the room after bob left it"
    );
}

crate::common::every_store!(live_on_every_store, super::rooms_live_on_every_store);

/// The push strategy over a real socket: a burst of 20 messages with an
/// interval of 1 s and a count of 3 reaches the stream as at most 3
/// messages per push, the newest always among them, and gaps that cover
/// every message it skipped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_reaches_a_paced_stream_as_gaps_and_the_newest() {
    let s = Server::start_with(|_, c| {
        c.room_push = im_http::RoomPush {
            interval: Duration::from_secs(1),
            count: 3,
        };
    })
    .await;
    let [alice, bob] = s.users(["alice", "bob"]).await;
    assert_eq!(
        alice
            .put("/v1/rooms/busy", json!({"join": "open"}))
            .await
            .status,
        201
    );
    assert_eq!(
        bob.put("/v1/rooms/busy/members/bob", json!(null))
            .await
            .status,
        200
    );
    let mut stream = Sse::open(s.addr, "/v1/events?rooms=busy", &s.token("bob", false), &[]).await;
    assert_eq!(stream.status, 200);
    for n in 1..=20 {
        assert_eq!(alice.send("room:busy", json!({"n": n})).await.status, 201);
    }
    // Read until the newest arrives, noting when each frame came.
    let mut got: Vec<(Instant, String, Value)> = Vec::new();
    while !got.iter().any(|(_, e, d)| e == "message" && d["seq"] == 20) {
        let e = stream
            .next_event(Duration::from_secs(5))
            .await
            .expect("the newest message comes");
        assert_eq!(e.id, "", "room events carry no id");
        got.push((Instant::now(), e.event, e.data));
    }
    // Pushes are a second apart: frames read within 300 ms are one push.
    let mut pushes: Vec<Vec<&(Instant, String, Value)>> = Vec::new();
    for frame in &got {
        match pushes.last_mut() {
            Some(p) if frame.0 - p[0].0 < Duration::from_millis(300) => p.push(frame),
            _ => pushes.push(vec![frame]),
        }
    }
    for p in &pushes {
        let messages = p.iter().filter(|f| f.1 == "message").count();
        assert!(messages <= 3, "at most 3 messages per push: {p:?}");
    }
    // Every seq 1..=20 is either delivered or inside a gap, once, in order.
    let mut next = 1;
    for (_, event, data) in &got {
        match event.as_str() {
            "gap" => {
                assert_eq!(data["conversation"], "room:busy");
                assert_eq!(data["from_seq"], next, "{got:?}");
                let to = data["to_seq"].as_u64().unwrap();
                assert!(to >= next);
                next = to + 1;
            }
            "message" => {
                assert_eq!(data["seq"], next, "{got:?}");
                next += 1;
            }
            other => panic!("unexpected {other}"),
        }
    }
    assert_eq!(next, 21);
    let delivered = got.iter().filter(|f| f.1 == "message").count();
    assert!(delivered <= 3 * pushes.len() && delivered < 20, "{got:?}");
}

/// A slow stream skips with a gap rather than being buffered: a stream
/// that reads nothing while more than the room backlog is sent gets a gap
/// and then the newest messages once it reads again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_that_falls_behind_skips_with_a_gap() {
    let s = Server::start().await;
    let [alice, bob] = s.users(["alice", "bob"]).await;
    assert_eq!(
        alice
            .put("/v1/rooms/flood", json!({"join": "open"}))
            .await
            .status,
        201
    );
    assert_eq!(
        bob.put("/v1/rooms/flood/members/bob", json!(null))
            .await
            .status,
        200
    );
    let mut stream = Sse::open(
        s.addr,
        "/v1/events?rooms=flood",
        &s.token("bob", false),
        &[],
    )
    .await;
    assert_eq!(stream.status, 200);
    // The first message is read; then the stream reads nothing while far
    // more than the backlog is sent, with bodies large enough to fill the
    // socket's buffers too.
    let filler = "x".repeat(8 * 1024);
    assert_eq!(
        alice
            .send("room:flood", json!({"n": 1, "f": filler}))
            .await
            .status,
        201
    );
    let first = stream.next_event(WAIT).await.unwrap();
    assert_eq!(first.data["seq"], 1);
    let total = im_engine::store::ROOM_BACKLOG as u64 + 600;
    for n in 2..=total {
        assert_eq!(
            alice
                .send("room:flood", json!({"n": n, "f": filler}))
                .await
                .status,
            201
        );
    }
    let mut gaps = Vec::new();
    let mut last = 1;
    while last < total {
        let e = stream.next_event(WAIT).await.expect("the stream goes on");
        match e.event.as_str() {
            "gap" => {
                assert_eq!(e.data["from_seq"], last + 1);
                gaps.push(e.data.clone());
                last = e.data["to_seq"].as_u64().unwrap();
            }
            "message" => {
                assert_eq!(e.data["seq"], last + 1);
                last += 1;
            }
            other => panic!("unexpected {other}"),
        }
    }
    assert!(!gaps.is_empty(), "a stream that fell behind skipped some");
}
