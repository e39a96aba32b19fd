//! Floods: rate limits, the cap on a user's event streams, slow and idle
//! connections, and more connections than the server takes. Timeouts are
//! set short so that each test takes a second or two.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use hyper::Method;
use im_http::Rate;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

use crate::common::{Server, Sse};
use crate::input::{raw, status};

/// Reads until the server closes the connection; answers how long that
/// took, or `None` if it is still open after `wait`.
async fn closed_within(stream: &mut TcpStream, wait: Duration) -> Option<Duration> {
    let start = Instant::now();
    let mut buf = [0u8; 4096];
    loop {
        match tokio::time::timeout(wait.saturating_sub(start.elapsed()), stream.read(&mut buf))
            .await
        {
            Ok(Ok(0) | Err(_)) => return Some(start.elapsed()),
            Ok(Ok(_)) => {}
            Err(_) => return None,
        }
    }
}

/// A connection from `source` (any 127.0.0.0/8 address is this machine).
async fn connect_from(source: [u8; 4], addr: SocketAddr) -> TcpStream {
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind(SocketAddr::from((source, 0))).unwrap();
    socket.connect(addr).await.unwrap()
}

#[tokio::test]
async fn sends_over_the_rate_are_429_with_retry_after_and_admins_are_not_limited() {
    let s = Server::start_with(|_, c| c.protection.send_rate = Rate::new(1.0, 3)).await;
    let [alice, bob] = s.users(["alice", "bob"]).await;
    for i in 0..3 {
        let r = alice.send("dm:alice:bob", json!({ "n": i })).await;
        assert_eq!(r.status, 201, "{}", r.text());
    }
    let r = alice.send("dm:alice:bob", json!({"n": 3})).await;
    r.assert_error(429, "rate_limited");
    assert_eq!(r.header("retry-after"), Some("1"));
    // Others have their own budget; an admin has none.
    assert_eq!(bob.send("dm:alice:bob", json!({})).await.status, 201);
    for i in 0..10 {
        let r = s
            .admin()
            .post(
                "/v1/conversations/dm:alice:bob/messages",
                json!({"body": {"n": i}, "from": "alice"}),
            )
            .await;
        assert_eq!(r.status, 201, "{}", r.text());
    }
    // The refused send stored nothing: 3 + 1 + 10 messages.
    let history = s
        .admin()
        .get("/v1/conversations/dm:alice:bob/messages?limit=100")
        .await;
    assert_eq!(history.json()["messages"].as_array().unwrap().len(), 14);
    // After the wait it says, alice may send again.
    tokio::time::sleep(Duration::from_millis(1_050)).await;
    assert_eq!(alice.send("dm:alice:bob", json!({})).await.status, 201);
}

#[tokio::test]
async fn opening_streams_is_rate_limited_and_capped_per_user() {
    let s = Server::start_with(|_, c| {
        c.protection.stream_rate = Rate::new(0.2, 3);
        c.protection.streams_per_user = 2;
    })
    .await;
    s.users(["alice", "bob"]).await;
    let token = s.token("alice", false);
    let mut a = Sse::open(s.addr, "/v1/events", &token, &[]).await;
    let b = Sse::open(s.addr, "/v1/events", &token, &[]).await;
    assert_eq!((a.status, b.status), (200, 200));
    // A third one, stream or long poll, is over the cap.
    let c = Sse::open(s.addr, "/v1/events", &token, &[]).await;
    assert_eq!(c.status, 429, "{}", c.head);
    assert_eq!(c.header("retry-after").as_deref(), Some("5"));
    let poll = s
        .client("alice")
        .request(Method::GET, "/v1/events?wait=0")
        .header("accept", "application/json")
        .send()
        .await;
    poll.assert_error(429, "too_many_streams");
    // Bob is not capped by alice's streams.
    let bob = Sse::open(s.addr, "/v1/events", &s.token("bob", false), &[]).await;
    assert_eq!(bob.status, 200);
    // Closing one frees its place (once the server has seen it close).
    drop(b);
    let poll = || {
        s.client("alice")
            .request(Method::GET, "/v1/events?wait=0")
            .header("accept", "application/json")
    };
    let deadline = Instant::now() + Duration::from_secs(5);
    let r = loop {
        let r = poll().send().await;
        if r.status != 429 || Instant::now() > deadline {
            break r;
        }
        assert_eq!(r.code(), "too_many_streams");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(r.status, 200, "{}", r.text());
    // That was the last of alice's burst of 3 opens.
    let r = poll().send().await;
    r.assert_error(429, "rate_limited");
    let wait: u64 = r.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=5).contains(&wait), "{wait}");
    // The stream that stayed open still works.
    s.client("bob").send("dm:alice:bob", json!({"hi": 1})).await;
    assert!(a.next_event(Duration::from_secs(5)).await.is_some());
}

#[tokio::test]
async fn a_slowloris_client_is_closed_after_the_header_timeout_and_others_are_served() {
    let s = Server::start_with(|_, c| c.header_read_timeout = Duration::from_millis(800)).await;
    let mut slow = TcpStream::connect(s.addr).await.unwrap();
    slow.write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\n")
        .await
        .unwrap();
    let trickle = async {
        // One header byte every 100 ms: never a whole head.
        for _ in 0..40 {
            tokio::time::sleep(Duration::from_millis(100)).await;
            if slow.write_all(b"x").await.is_err() {
                break;
            }
        }
    };
    let others = async {
        for _ in 0..5 {
            assert_eq!(s.anonymous().get("/healthz").await.status, 200);
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    let started = Instant::now();
    tokio::join!(trickle, others);
    let mut buf = [0u8; 1024];
    let closed = matches!(
        tokio::time::timeout(Duration::from_secs(1), slow.read(&mut buf)).await,
        Ok(Ok(0) | Err(_))
    );
    assert!(closed, "the slow connection is closed");
    assert!(started.elapsed() < Duration::from_secs(6));
}

#[tokio::test]
async fn an_idle_kept_alive_connection_is_closed_after_the_timeout() {
    let s = Server::start_with(|_, c| c.header_read_timeout = Duration::from_millis(500)).await;
    let mut stream = TcpStream::connect(s.addr).await.unwrap();
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .unwrap();
    let mut buf = vec![0u8; 4096];
    let n = stream.read(&mut buf).await.unwrap();
    assert!(buf[..n].starts_with(b"HTTP/1.1 200"));
    // Kept alive, then idle: closed once the timeout passes.
    let closed = closed_within(&mut stream, Duration::from_secs(5)).await;
    let after = closed.expect("an idle connection is closed");
    assert!(after >= Duration::from_millis(300), "{after:?}");
}

/// 2000, or fewer when this process may not open that many files (each
/// connection is one on each side).
fn flood_size() -> usize {
    let soft = std::fs::read_to_string("/proc/self/limits")
        .ok()
        .and_then(|limits| {
            let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
            line.split_whitespace().nth(3)?.parse::<usize>().ok()
        })
        .unwrap_or(1024);
    2000.min(soft.saturating_sub(300) / 2).max(200)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thousands_of_idle_connections_from_one_address_are_capped_and_others_are_served() {
    const CAP: usize = 50;
    let s = Server::start_with(|_, c| {
        c.protection.max_connections_per_ip = CAP;
        c.header_read_timeout = Duration::from_secs(2);
    })
    .await;
    s.users(["alice"]).await;
    // Thousands of connections from 127.0.0.2 that never send a byte.
    let n = flood_size();
    let mut flood = Vec::new();
    for _ in 0..n {
        flood.push(connect_from([127, 0, 0, 2], s.addr).await);
    }
    // Another address is served at once, meanwhile.
    let started = Instant::now();
    for _ in 0..5 {
        let r = s.client("alice").get("/v1/users/alice").await;
        assert_eq!(r.status, 200, "{}", r.text());
    }
    assert!(started.elapsed() < Duration::from_secs(2));
    // Of the flood, at most CAP are still open (idle, waiting for the
    // header timeout); the rest were answered 503 or closed.
    let mut refused = 0;
    let mut still_open = 0;
    let mut answered = None;
    let mut buf = [0u8; 1024];
    for stream in &mut flood {
        match tokio::time::timeout(Duration::from_millis(1), stream.read(&mut buf)).await {
            Err(_) => still_open += 1,
            Ok(Ok(n)) if n > 0 => {
                answered.get_or_insert_with(|| String::from_utf8_lossy(&buf[..n]).into_owned());
                refused += 1;
            }
            Ok(_) => refused += 1,
        }
    }
    assert!(still_open <= CAP, "{still_open} open");
    assert!(refused >= n - CAP, "{refused} of {n} refused");
    let answer = answered.expect("some refusals are answered");
    assert_eq!(status(&answer), 503, "{answer}");
    assert!(answer.contains(r#""code":"unavailable""#), "{answer}");
    assert!(
        answer.to_ascii_lowercase().contains("retry-after: 1"),
        "{answer}"
    );
    drop(flood);
    // The cap is freed as they close: 127.0.0.2 is served again.
    let mut again = connect_from([127, 0, 0, 2], s.addr).await;
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        again
            .write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
            .await
            .unwrap();
        let mut answer = String::new();
        let _ = again.read_to_string(&mut answer).await;
        if status(&answer) == 200 {
            break;
        }
        assert!(Instant::now() < deadline, "{answer}");
        tokio::time::sleep(Duration::from_millis(50)).await;
        again = connect_from([127, 0, 0, 2], s.addr).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_the_connection_cap_a_new_connection_is_answered_503_at_once() {
    let s = Server::start_with(|_, c| {
        c.protection.max_connections = 20;
        c.protection.max_connections_per_ip = 0;
        c.header_read_timeout = Duration::from_millis(800);
    })
    .await;
    let mut idle = Vec::new();
    for _ in 0..20 {
        idle.push(connect_from([127, 0, 0, 3], s.addr).await);
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    let started = Instant::now();
    let answer = raw(
        s.addr,
        b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n",
        Duration::from_secs(5),
    )
    .await;
    assert!(started.elapsed() < Duration::from_millis(500));
    assert_eq!(status(&answer), 503, "{answer}");
    assert!(answer.contains("x-request-id: "), "{answer}");
    // Once the idle ones time out, there is room again.
    for stream in &mut idle {
        assert!(
            closed_within(stream, Duration::from_secs(5))
                .await
                .is_some()
        );
    }
    let answer = raw(
        s.addr,
        b"GET /healthz HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n",
        Duration::from_secs(5),
    )
    .await;
    assert_eq!(status(&answer), 200, "{answer}");
}
