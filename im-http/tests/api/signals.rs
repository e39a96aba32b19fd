//! Live signals over real sockets: typing, receipts and presence reach
//! exactly the streams they should (not the sender's, not strangers', not
//! long polls, not a replay from `?after=0`), carry no `id:`, and a
//! reconnect within the presence grace announces nothing.

use std::time::Duration;

use serde_json::{Value, json};

use crate::common::{Event, Server, Sse, WAIT};

/// How long a stream that should get nothing is watched.
const QUIET: Duration = Duration::from_millis(400);

async fn open(s: &Server, user: &str, query: &str) -> Sse {
    let path = format!("/v1/events{query}");
    let sse = Sse::open(s.addr, &path, &s.token(user, false), &[]).await;
    assert_eq!(sse.status, 200, "{}", sse.head);
    sse
}

/// The next event, which must be a signal: named `event`, without `id:`.
async fn signal(sse: &mut Sse, event: &str) -> Value {
    let e: Event = sse.next_event(WAIT).await.expect("a signal");
    assert_eq!((e.event.as_str(), e.id.as_str()), (event, ""), "{e:?}");
    e.data
}

async fn quiet(sse: &mut Sse, who: &str) {
    let got = sse.next_event(QUIET).await;
    assert!(got.is_none(), "{who} got {got:?}");
}

/// alice owns group `g` with bob; carol is a stranger to it.
async fn group(s: &Server) -> [crate::common::Client; 3] {
    let users = s.users(["alice", "bob", "carol"]).await;
    assert_eq!(users[0].put("/v1/groups/g", json!({})).await.status, 201);
    let r = users[0].put("/v1/groups/g/members/bob", json!({})).await;
    assert_eq!(r.status, 200, "{}", r.text());
    users
}

#[tokio::test]
async fn typing_reaches_only_the_other_participants_open_streams() {
    let s = Server::start().await;
    let [alice, bob, carol] = group(&s).await;
    let mut bob_sse = open(&s, "bob", "").await;
    let mut alice_sse = open(&s, "alice", "").await;
    let mut carol_sse = open(&s, "carol", "").await;
    let poll = {
        let bob = bob.clone();
        tokio::spawn(async move {
            bob.request(hyper::Method::GET, "/v1/events?after=0&wait=1")
                .header("accept", "application/json")
                .send()
                .await
        })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;

    let r = alice
        .post("/v1/conversations/group:g/typing", json!({"typing": true}))
        .await;
    assert_eq!((r.status, r.text()), (204, String::new()));
    assert_eq!(
        signal(&mut bob_sse, "typing").await,
        json!({"conversation": "group:g", "user": "alice", "typing": true})
    );
    quiet(&mut alice_sse, "the typer").await;
    quiet(&mut carol_sse, "a stranger").await;
    let polled = poll.await.unwrap().json();
    let names: Vec<_> = polled["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["event"].clone())
        .collect();
    assert!(
        !names.contains(&json!("typing")),
        "a long poll got {polled}"
    );
    // A replay holds stored events only.
    let mut replay = open(&s, "bob", "?after=0").await;
    while let Some(e) = replay.next_event(QUIET).await {
        assert!(!e.id.is_empty() && e.event != "typing", "replayed {e:?}");
    }

    // A stranger may not type; a direct conversation's peer gets it.
    carol
        .post("/v1/conversations/group:g/typing", json!({}))
        .await
        .assert_error(403, "forbidden");
    let r = bob
        .request(hyper::Method::POST, "/v1/conversations/dm:bob:alice/typing")
        .send()
        .await;
    assert_eq!(r.status, 204);
    assert_eq!(
        signal(&mut alice_sse, "typing").await,
        json!({"conversation": "dm:alice:bob", "user": "bob", "typing": true})
    );
    quiet(&mut carol_sse, "carol, outside the direct conversation").await;
    alice
        .post("/v1/conversations/group:g/typing", json!({"typing": "yes"}))
        .await
        .assert_error(400, "bad_json");
}

#[tokio::test]
async fn a_moved_read_cursor_reaches_the_other_participants_and_reads_lists_it() {
    let s = Server::start().await;
    let [alice, bob, _carol] = group(&s).await;
    let mut alice_sse = open(&s, "alice", "").await;
    let mut bob_sse = open(&s, "bob", "").await;
    let mut carol_sse = open(&s, "carol", "").await;
    alice.send("dm:alice:bob", json!({"t": 1})).await;
    for sse in [&mut alice_sse, &mut bob_sse] {
        assert_eq!(sse.next_event(WAIT).await.unwrap().event, "message");
    }
    let r = bob
        .post("/v1/conversations/dm:alice:bob/read", json!({}))
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(
        signal(&mut alice_sse, "receipt").await,
        json!({"conversation": "dm:alice:bob", "user": "bob", "read_seq": 1})
    );
    // Bob's own stream gets the stored `read` event, with its cursor.
    let read = bob_sse.next_event(WAIT).await.unwrap();
    assert_eq!(read.event, "read");
    assert!(!read.id.is_empty());
    quiet(&mut bob_sse, "the reader").await;
    quiet(&mut carol_sse, "a stranger").await;

    let page = alice.get("/v1/conversations/dm:alice:bob/reads").await;
    assert_eq!(
        page.json(),
        json!({"reads": [{"user": "alice", "read_seq": 1}, {"user": "bob", "read_seq": 1}],
               "has_more": false})
    );
    let page = alice
        .get("/v1/conversations/group:g/reads?after=alice&limit=1")
        .await;
    assert_eq!(
        page.json(),
        json!({"reads": [{"user": "bob", "read_seq": 0}], "has_more": false})
    );
    alice
        .get("/v1/conversations/group:g/reads?after=no%20id")
        .await
        .assert_error(400, "invalid_id");
    alice
        .get("/v1/conversations/group:g/reads?limit=1001")
        .await
        .assert_error(400, "invalid_request");
}

#[tokio::test]
async fn presence_reaches_contacts_and_a_reconnect_within_the_grace_says_nothing() {
    const GRACE: Duration = Duration::from_millis(800);
    let s = Server::start_with(|e, _| e.presence_grace = GRACE).await;
    let [_alice, bob, _carol] = s.users(["alice", "bob", "carol"]).await;
    assert_eq!(bob.put("/v1/contacts/alice", json!({})).await.status, 200);
    let mut bob_sse = open(&s, "bob", "").await;
    let mut carol_sse = open(&s, "carol", "").await;

    let first = open(&s, "alice", "").await;
    let online = signal(&mut bob_sse, "presence").await;
    assert_eq!(
        (&online["user"], &online["online"]),
        (&json!("alice"), &json!(true))
    );
    quiet(&mut carol_sse, "carol, who has no contact alice").await;

    // A reload: closed and opened again within the grace.
    drop(first);
    tokio::time::sleep(GRACE / 4).await;
    let second = open(&s, "alice", "").await;
    quiet(&mut bob_sse, "bob, for a reconnect within the grace").await;
    tokio::time::sleep(GRACE).await;
    quiet(&mut bob_sse, "bob, while alice stays").await;

    drop(second);
    let closed = tokio::time::Instant::now();
    let offline = signal(&mut bob_sse, "presence").await;
    assert!(closed.elapsed() >= GRACE / 2, "announced before the grace");
    assert_eq!(
        (&offline["user"], &offline["online"]),
        (&json!("alice"), &json!(false))
    );
    assert!(offline["last_seen"].is_u64(), "{offline}");
    quiet(&mut carol_sse, "carol").await;
}
