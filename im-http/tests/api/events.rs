use std::time::Duration;

use serde_json::json;

use crate::common::{Event, Frame, Server, Sse, WAIT, eventually};

async fn open(s: &Server, user: &str, headers: &[(&str, &str)]) -> Sse {
    let sse = Sse::open(s.addr, "/v1/events", &s.token(user, false), headers).await;
    assert_eq!(sse.status, 200, "{}", sse.head);
    sse
}

fn seq(e: &Event) -> u64 {
    assert_eq!(e.event, "message", "{e:?}");
    e.data["seq"].as_u64().unwrap()
}

#[tokio::test]
async fn a_stream_delivers_live_messages() {
    let s = Server::start().await;
    let [alice, _bob] = s.users(["alice", "bob"]).await;
    alice.send("dm:alice:bob", json!({"text": "before"})).await;

    let mut sse = open(&s, "bob", &[]).await;
    assert_eq!(
        sse.header("content-type").as_deref(),
        Some("text/event-stream")
    );
    assert_eq!(sse.header("cache-control").as_deref(), Some("no-cache"));
    // Else a browser that closes the stream keeps the connection a while
    // to drain it for reuse, and the user stays online meanwhile.
    assert_eq!(sse.header("connection").as_deref(), Some("close"));
    assert!(sse.header("x-request-id").is_some());

    alice
        .send("dm:alice:bob", json!({"text": "line\nbreak"}))
        .await;
    let e = sse.next_event(WAIT).await.expect("an event");
    assert_eq!(e.event, "message");
    assert!(!e.id.is_empty());
    assert_eq!(
        e.data,
        json!({"conversation": "dm:alice:bob", "seq": 2, "from": "alice",
               "ts": e.data["ts"], "body": {"text": "line\nbreak"}})
    );
    // A pretty-printed body still makes one data line.
    alice
        .request(
            hyper::Method::POST,
            "/v1/conversations/dm:alice:bob/messages",
        )
        .header("content-type", "application/json")
        .raw("{\"body\": {\n  \"a\": 1\n}\n}")
        .send()
        .await;
    let e = sse.next_event(WAIT).await.unwrap();
    assert_eq!(e.data["body"], json!({"a": 1}));
}

#[tokio::test]
async fn a_stream_carries_read_and_member_events() {
    let s = Server::start().await;
    let [alice, bob] = s.users(["alice", "bob"]).await;
    alice.put("/v1/groups/g", json!({})).await;
    let mut sse = open(&s, "alice", &[]).await;
    alice.put("/v1/groups/g/members/bob", json!(null)).await;
    let e = sse.next_event(WAIT).await.unwrap();
    assert_eq!(e.event, "member");
    assert_eq!(
        e.data,
        json!({"group": "g", "user": "bob", "change": "joined"})
    );
    bob.send("group:g", json!({"x": 1})).await;
    assert_eq!(seq(&sse.next_event(WAIT).await.unwrap()), 1);
    alice
        .post("/v1/conversations/group:g/read", json!({}))
        .await;
    let e = sse.next_event(WAIT).await.unwrap();
    assert_eq!(e.event, "read");
    assert_eq!(e.data, json!({"conversation": "group:g", "seq": 1}));
    bob.delete("/v1/groups/g/members/bob").await;
    let e = sse.next_event(WAIT).await.unwrap();
    assert_eq!(
        e.data,
        json!({"group": "g", "user": "bob", "change": "left"})
    );
}

#[tokio::test]
async fn resuming_with_last_event_id_loses_and_repeats_nothing() {
    let s = Server::start().await;
    let [alice, _bob] = s.users(["alice", "bob"]).await;
    let mut sse = open(&s, "bob", &[]).await;
    for i in 1..=3 {
        alice.send("dm:alice:bob", json!({"n": i})).await;
    }
    let mut last = String::new();
    for i in 1..=3 {
        let e = sse.next_event(WAIT).await.unwrap();
        assert_eq!(seq(&e), i);
        last = e.id;
    }
    drop(sse);
    for i in 4..=5 {
        alice.send("dm:alice:bob", json!({"n": i})).await;
    }
    let mut sse = open(&s, "bob", &[("last-event-id", &last)]).await;
    assert_eq!(seq(&sse.next_event(WAIT).await.unwrap()), 4);
    assert_eq!(seq(&sse.next_event(WAIT).await.unwrap()), 5);
    alice.send("dm:alice:bob", json!({"n": 6})).await;
    assert_eq!(seq(&sse.next_event(WAIT).await.unwrap()), 6);

    // `?after=` does the same, and the header wins over it.
    let mut sse = Sse::open(
        s.addr,
        &format!("/v1/events?after={}", urlencode(&last)),
        &s.token("bob", false),
        &[],
    )
    .await;
    assert_eq!(seq(&sse.next_event(WAIT).await.unwrap()), 4);
    sse = Sse::open(
        s.addr,
        "/v1/events?after=0",
        &s.token("bob", false),
        &[("last-event-id", &last)],
    )
    .await;
    assert_eq!(seq(&sse.next_event(WAIT).await.unwrap()), 4);
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[tokio::test]
async fn after_zero_starts_from_the_oldest_event() {
    let s = Server::start().await;
    let [alice, _bob] = s.users(["alice", "bob"]).await;
    for i in 1..=3 {
        alice.send("dm:alice:bob", json!({"n": i})).await;
    }
    let mut sse = Sse::open(s.addr, "/v1/events?after=0", &s.token("bob", false), &[]).await;
    for i in 1..=3 {
        assert_eq!(seq(&sse.next_event(WAIT).await.unwrap()), i);
    }
    // Then live ones; nothing else in between.
    alice.send("dm:alice:bob", json!({"n": 4})).await;
    assert_eq!(seq(&sse.next_event(WAIT).await.unwrap()), 4);
}

#[tokio::test]
async fn a_cursor_from_another_store_gets_a_reset() {
    let other = Server::start().await;
    let [alice, _] = other.users(["alice", "bob"]).await;
    alice.send("dm:alice:bob", json!({})).await;
    let mut sse = Sse::open(
        other.addr,
        "/v1/events?after=0",
        &other.token("bob", false),
        &[],
    )
    .await;
    let foreign = sse.next_event(WAIT).await.unwrap().id;

    let s = Server::start().await;
    let [alice, _] = s.users(["alice", "bob"]).await;
    alice.send("dm:alice:bob", json!({"n": 1})).await;
    let mut sse = open(&s, "bob", &[("last-event-id", &foreign)]).await;
    let reset = sse.next_event(WAIT).await.unwrap();
    assert_eq!(reset.event, "reset");
    assert_eq!(reset.data, json!({"reason": "unknown"}));
    assert_eq!(seq(&sse.next_event(WAIT).await.unwrap()), 1);
}

#[tokio::test]
async fn a_trimmed_cursor_gets_a_reset_expired() {
    let s = Server::start_with(|e, _| e.retention.events = Some(2)).await;
    let [alice, _] = s.users(["alice", "bob"]).await;
    let mut sse = open(&s, "bob", &[]).await;
    alice.send("dm:alice:bob", json!({"n": 1})).await;
    let first = sse.next_event(WAIT).await.unwrap().id;
    drop(sse);
    for i in 2..=4 {
        alice.send("dm:alice:bob", json!({"n": i})).await;
    }
    let mut sse = open(&s, "bob", &[("last-event-id", &first)]).await;
    let reset = sse.next_event(WAIT).await.unwrap();
    assert_eq!(
        (reset.event.as_str(), reset.data.clone()),
        ("reset", json!({"reason": "expired"}))
    );
    assert_eq!(seq(&sse.next_event(WAIT).await.unwrap()), 3);
    assert_eq!(seq(&sse.next_event(WAIT).await.unwrap()), 4);
}

#[tokio::test]
async fn a_malformed_cursor_is_400() {
    let s = Server::start().await;
    s.users(["bob"]).await;
    let token = s.token("bob", false);
    for (path, headers) in [
        ("/v1/events", vec![("last-event-id", "garbage")]),
        ("/v1/events?after=garbage", vec![]),
        ("/v1/events?after=00000000000000zz-1", vec![]),
        (
            "/v1/events",
            vec![("last-event-id", "1"), ("accept", "application/json")],
        ),
    ] {
        let sse = Sse::open(s.addr, path, &token, &headers).await;
        assert_eq!(sse.status, 400, "{path} {headers:?}: {}", sse.head);
    }
    // An unknown user has no feed.
    let sse = Sse::open(s.addr, "/v1/events", &s.token("ghost", false), &[]).await;
    assert_eq!(sse.status, 404);
}

#[tokio::test]
async fn two_streams_of_one_user_both_get_every_event() {
    let s = Server::start().await;
    let [alice, _] = s.users(["alice", "bob"]).await;
    let mut one = open(&s, "bob", &[]).await;
    let mut two = open(&s, "bob", &[]).await;
    alice.send("dm:alice:bob", json!({"n": 1})).await;
    let (a, b) = (
        one.next_event(WAIT).await.unwrap(),
        two.next_event(WAIT).await.unwrap(),
    );
    assert_eq!(a, b);
    assert_eq!(seq(&a), 1);
}

#[tokio::test]
async fn an_idle_stream_gets_keep_alive_comments() {
    let s = Server::start_with(|_, c| c.keep_alive = Duration::from_millis(100)).await;
    let [alice, _] = s.users(["alice", "bob"]).await;
    let mut sse = open(&s, "bob", &[]).await;
    for _ in 0..2 {
        assert_eq!(
            sse.next_frame(WAIT).await,
            Some(Frame::Comment("keep-alive".into()))
        );
    }
    // Events in between, and the comments come back once it is idle again.
    for n in 1..=3 {
        alice.send("dm:alice:bob", json!({"n": n})).await;
    }
    // (A slow machine may take longer than a keep-alive between sends.)
    let mut bodies = Vec::new();
    while bodies.len() < 3 {
        match sse.next_frame(WAIT).await {
            Some(Frame::Event(e)) => bodies.push(e.data["body"].clone()),
            Some(Frame::Comment(_)) => {}
            None => panic!("the stream ended"),
        }
    }
    assert_eq!(bodies, [json!({"n": 1}), json!({"n": 2}), json!({"n": 3})]);
    assert_eq!(
        sse.next_frame(WAIT).await,
        Some(Frame::Comment("keep-alive".into()))
    );
}

#[tokio::test]
async fn a_user_is_online_while_a_stream_is_open() {
    let s = Server::start_with(|_, c| c.keep_alive = Duration::from_millis(50)).await;
    let [alice, _] = s.users(["alice", "bob"]).await;
    let p = alice.get("/v1/users/bob").await.json();
    assert_eq!(
        (p["online"].clone(), p["last_seen"].clone()),
        (json!(false), json!(null))
    );

    let sse = open(&s, "bob", &[]).await;
    assert_eq!(alice.get("/v1/users/bob").await.json()["online"], true);
    alice.put("/v1/contacts/bob", json!(null)).await;
    assert_eq!(
        alice.get("/v1/contacts").await.json()["contacts"][0]["online"],
        true
    );

    drop(sse);
    eventually("bob goes offline", || async {
        alice.get("/v1/users/bob").await.json()["online"] == false
    })
    .await;
    let p = alice.get("/v1/users/bob").await.json();
    assert!(p["last_seen"].as_u64().unwrap() >= p["created_at"].as_u64().unwrap());
}

fn long_poll(s: &Server, user: &str, query: &str) -> crate::common::RequestBuilder {
    s.client(user)
        .request(hyper::Method::GET, &format!("/v1/events{query}"))
        .header("accept", "application/json")
}

#[tokio::test]
async fn a_long_poll_answers_at_once_when_events_are_there() {
    let s = Server::start().await;
    let [alice, _] = s.users(["alice", "bob"]).await;
    for i in 1..=3 {
        alice.send("dm:alice:bob", json!({"n": i})).await;
    }
    let r = long_poll(&s, "bob", "?after=0&limit=2").send().await;
    assert_eq!(r.status, 200, "{}", r.text());
    // An answer that ends leaves its connection open for the next.
    assert_eq!(r.header("connection"), None);
    let v = r.json();
    let events = v["events"].as_array().unwrap();
    assert_eq!(events.len(), 2);
    assert_eq!(events[0]["event"], "message");
    assert_eq!(events[0]["data"]["seq"], 1);
    assert_eq!(events[1]["id"], v["next"]);

    let next = v["next"].as_str().unwrap();
    let r = long_poll(&s, "bob", &format!("?after={}&wait=5", urlencode(next)))
        .send()
        .await;
    let v = r.json();
    assert_eq!(v["events"].as_array().unwrap().len(), 1);
    assert_eq!(v["events"][0]["data"]["seq"], 3);

    // Bad parameters.
    for q in [
        "?wait=61",
        "?wait=x",
        "?limit=0",
        "?limit=1001",
        "?after=zz",
    ] {
        long_poll(&s, "bob", q)
            .send()
            .await
            .assert_error(400, "invalid_request");
    }
}

#[tokio::test]
async fn a_long_poll_times_out_empty_or_wakes_on_an_event() {
    let s = Server::start().await;
    let [alice, _] = s.users(["alice", "bob"]).await;
    let r = long_poll(&s, "bob", "?after=0&wait=1").send().await;
    assert_eq!(r.status, 200, "{}", r.text());
    let v = r.json();
    assert_eq!(v["events"], json!([]));
    let next = v["next"].as_str().unwrap().to_owned();

    // Without `after`, only events after the poll started.
    let waiting = tokio::spawn(long_poll(&s, "bob", "?wait=30").send());
    let from_cursor =
        tokio::spawn(long_poll(&s, "bob", &format!("?after={}&wait=30", urlencode(&next))).send());
    eventually("both polls hold bob online", || async {
        alice.get("/v1/users/bob").await.json()["online"] == true
    })
    .await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    alice.send("dm:alice:bob", json!({"n": 1})).await;
    for poll in [waiting, from_cursor] {
        let v = poll.await.unwrap().json();
        assert_eq!(v["events"].as_array().unwrap().len(), 1, "{v}");
        assert_eq!(v["events"][0]["data"]["seq"], 1);
    }
}

#[tokio::test]
async fn a_reader_that_stops_is_disconnected_in_time_and_resumes_without_loss() {
    const STALL: Duration = Duration::from_millis(200);
    let s = Server::start_with(|_, c| c.sse_stall_timeout = STALL).await;
    let [alice, _] = s.users(["alice", "bob"]).await;
    let token = s.token("bob", false);

    // A client with a tiny receive window that stops reading after the
    // response head.
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let stream = socket.connect(s.addr).await.unwrap();
    let mut slow = Sse::open_on(stream, s.addr, "/v1/events", &token, &[]).await;
    assert_eq!(slow.status, 200);
    assert_eq!(alice.get("/v1/users/bob").await.json()["online"], true);

    const N: u64 = 300;
    let text = "x".repeat(32 * 1024);
    for i in 1..=N {
        let r = alice
            .send("dm:alice:bob", json!({"n": i, "pad": text}))
            .await;
        assert_eq!(r.status, 201);
    }
    // Far more than the socket buffers hold: the server's writes have been
    // blocked since before the last send, so it closes the stream (and bob
    // goes offline) within the stall time-out, while the client still
    // reads nothing. The margin is for a loaded machine.
    let sent = tokio::time::Instant::now();
    while alice.get("/v1/users/bob").await.json()["online"] == true {
        assert!(
            sent.elapsed() < STALL + Duration::from_secs(3),
            "the stalled stream is still open"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // What the socket buffers held, then the end.
    let delivered = slow.drain().await;
    assert!(slow.ended, "the slow stream was closed");
    assert!(
        (delivered.len() as u64) < N,
        "the slow client was cut off early"
    );
    let mut got: Vec<u64> = delivered.iter().map(seq).collect();
    let mut last = delivered.last().map(|e| e.id.clone());

    // Resuming (again if need be) brings the rest, each once and in order.
    let mut reconnects = 0;
    while (got.len() as u64) < N {
        reconnects += 1;
        assert!(reconnects < 50, "too many reconnects");
        let mut sse = match &last {
            Some(cursor) => {
                Sse::open(s.addr, "/v1/events", &token, &[("last-event-id", cursor)]).await
            }
            // Bob's feed held nothing before the messages.
            None => Sse::open(s.addr, "/v1/events?after=0", &token, &[]).await,
        };
        assert_eq!(sse.status, 200);
        while (got.len() as u64) < N {
            let Some(e) = sse.next_event(WAIT).await else {
                break;
            };
            got.push(seq(&e));
            last = Some(e.id);
        }
    }
    assert_eq!(got, (1..=N).collect::<Vec<_>>());
}

#[tokio::test]
async fn shutdown_ends_open_streams() {
    let s = Server::start().await;
    s.users(["bob"]).await;
    let mut sse = open(&s, "bob", &[]).await;
    s.stop().await;
    assert_eq!(sse.next_event(WAIT).await, None);
    assert!(sse.ended);
}

#[tokio::test]
async fn each_stream_starts_with_a_retry_line_jittered_per_stream() {
    let s = Server::start_with(|_, c| c.sse_retry = Duration::from_secs(1)).await;
    s.users(["alice", "bob"]).await;
    let mut seen = Vec::new();
    for _ in 0..8 {
        let mut sse = open(&s, "bob", &[]).await;
        // Nothing else comes before the keep-alive, so the retry line is the
        // stream's first block.
        assert_eq!(sse.next_frame(Duration::from_millis(300)).await, None);
        assert!(!sse.ended);
        let retry = sse.retry.expect("a retry: line");
        assert!((1000..2000).contains(&retry), "{retry}");
        seen.push(retry);
    }
    seen.dedup();
    assert!(seen.len() > 1, "every stream got the same delay: {seen:?}");
}
