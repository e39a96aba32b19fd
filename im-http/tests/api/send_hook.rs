//! The send hook over HTTP (`SendHook`, `--send-hook-url`): a real hyper
//! server in the test receives each would-be message and answers as a
//! moderation service would.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use im_engine::{MemoryStore, OnTimeout, Store};
use im_http::SendHook;
use serde_json::{Value, json};

use crate::common::Server;

/// What the receiver got: each request's JSON.
type Received = Arc<Mutex<Vec<Value>>>;

/// Answers by the message's `text`: `spam` 403 with a code, `darn` 200
/// with a new body, `teapot` 418 without a body, `slow` after 5 s, `boom`
/// 500; anything else 204.
async fn answer(req: Request<hyper::body::Incoming>, received: Received) -> Response<Full<Bytes>> {
    let body = req.into_body().collect().await.unwrap().to_bytes();
    let ask: Value = serde_json::from_slice(&body).unwrap();
    let text = ask["message"]["body"]["text"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    received.lock().unwrap().push(ask);
    let (status, body) = match text.as_str() {
        "spam" => (
            StatusCode::FORBIDDEN,
            json!({"error": {"code": "spam", "message": "no spam here"}}).to_string(),
        ),
        "darn" => (StatusCode::OK, json!({"body": {"text": "***"}}).to_string()),
        "teapot" => (StatusCode::IM_A_TEAPOT, String::new()),
        "slow" => {
            tokio::time::sleep(Duration::from_secs(5)).await;
            (StatusCode::NO_CONTENT, String::new())
        }
        "boom" => (StatusCode::INTERNAL_SERVER_ERROR, String::new()),
        _ => (StatusCode::NO_CONTENT, String::new()),
    };
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body)))
        .unwrap()
}

/// Starts the receiver on 127.0.0.1:0; answers its URL and what it got.
async fn receiver() -> (String, Received) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr: SocketAddr = listener.local_addr().unwrap();
    let received = Received::default();
    let got = Arc::clone(&received);
    tokio::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            let got = Arc::clone(&got);
            let service = service_fn(move |req| {
                let got = Arc::clone(&got);
                async move { Ok::<_, Infallible>(answer(req, got).await) }
            });
            tokio::spawn(http1::Builder::new().serve_connection(TokioIo::new(stream), service));
        }
    });
    (format!("http://{addr}/hook"), received)
}

async fn hooked<S: Store>(store: S, url: &str, timeout_ms: u64, on: OnTimeout) -> Server<S> {
    let hook = SendHook::new(url).unwrap();
    Server::start_hooked(store, Some(Arc::new(hook)), |engine, _| {
        engine.hooks.send_timeout = Duration::from_millis(timeout_ms);
        engine.hooks.on_timeout = on;
    })
    .await
}

fn texts(history: &Value) -> Vec<String> {
    let messages = history["messages"].as_array().unwrap();
    messages
        .iter()
        .map(|m| m["body"]["text"].to_string())
        .collect()
}

/// The hook sees each would-be message as JSON; a 4xx refuses it with the
/// hook's code (or `refused`) and stores nothing; a 200 with a body
/// replaces it; a 204 lets it through.
async fn the_send_hook_refuses_rewrites_and_allows<S: Store>(store: S) {
    let (url, received) = receiver().await;
    let s = hooked(store, &url, 5000, OnTimeout::Refuse).await;
    let [alice, bob] = s.users(["alice", "bob"]).await;

    let r = alice
        .post(
            "/v1/conversations/dm:alice:bob/messages",
            json!({"body": {"text": "hello"}, "client_id": "c1"}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(
        received.lock().unwrap()[0],
        json!({"message": {
            "conversation": "dm:alice:bob",
            "from": "alice",
            "body": {"text": "hello"},
            "client_id": "c1",
            "reply_to": null,
        }})
    );

    let r = alice.send("dm:alice:bob", json!({"text": "spam"})).await;
    r.assert_error(403, "spam");
    assert_eq!(r.json()["error"]["message"], "no spam here");
    bob.send("dm:alice:bob", json!({"text": "teapot"}))
        .await
        .assert_error(403, "refused");

    let r = bob
        .post(
            "/v1/conversations/dm:alice:bob/messages",
            json!({"body": {"text": "darn"}, "reply_to": 1}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(r.json()["body"], json!({"text": "***"}));
    assert_eq!(r.json()["seq"], 2, "refused sends used no seq");
    assert_eq!(received.lock().unwrap()[3]["message"]["reply_to"], 1);

    let history = bob.get("/v1/conversations/dm:alice:bob/messages").await;
    assert_eq!(texts(&history.json()), [r#""hello""#, r#""***""#]);
    let list = alice.get("/v1/conversations").await.json();
    assert_eq!(list["conversations"][0]["unread"], 1, "{list}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_send_hook_refuses_rewrites_and_allows_on_memory() {
    the_send_hook_refuses_rewrites_and_allows(MemoryStore::new()).await;
}

#[cfg(feature = "sled")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_send_hook_refuses_rewrites_and_allows_on_sled() {
    let dir = tempfile::tempdir().unwrap();
    the_send_hook_refuses_rewrites_and_allows(crate::sled::open(dir.path()).await).await;
}

/// A hook that answers late, answers 5xx or cannot be reached refuses the
/// send with `hook_unavailable` by default, and lets it through with
/// `OnTimeout::Allow`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_failing_or_unreachable_hook_follows_the_time_out_policy() {
    let (url, _) = receiver().await;
    // A port nobody listens on.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}/hook", l.local_addr().unwrap())
    };
    for (url, text) in [(&url, "slow"), (&url, "boom"), (&closed, "hello")] {
        let s = hooked(MemoryStore::new(), url, 200, OnTimeout::Refuse).await;
        let [alice, _] = s.users(["alice", "bob"]).await;
        let r = alice.send("dm:alice:bob", json!({ "text": text })).await;
        r.assert_error(403, "hook_unavailable");
        let history = alice.get("/v1/conversations/dm:alice:bob/messages").await;
        assert_eq!(texts(&history.json()), Vec::<String>::new());

        let s = hooked(MemoryStore::new(), url, 200, OnTimeout::Allow).await;
        let [alice, _] = s.users(["alice", "bob"]).await;
        let r = alice.send("dm:alice:bob", json!({ "text": text })).await;
        assert_eq!(r.status, 201, "{text} on {url}: {}", r.text());
    }
}

#[test]
fn a_send_hook_url_must_be_plain_http() {
    for bad in ["", "ftp://x/hook", "https://x/hook", "/hook", "http://"] {
        assert!(SendHook::new(bad).is_err(), "{bad:?}");
    }
    assert!(SendHook::new("http://127.0.0.1:9/hook").is_ok());
}

#[cfg(feature = "redis")]
mod redis {
    use im_store_redis::testing::{shared_cluster_url, shared_url, skip, unique_prefix};
    use im_store_redis::{RedisConfig, RedisStore};

    async fn on(url: impl FnOnce() -> String) {
        // Only when the person running the tests asked (IM_SKIP_REDIS=1).
        if skip() {
            return;
        }
        let config = RedisConfig::new(url()).prefix(unique_prefix());
        let store = RedisStore::open(config).await.unwrap();
        super::the_send_hook_refuses_rewrites_and_allows(store).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_send_hook_refuses_rewrites_and_allows_on_one_redis() {
        on(shared_url).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_send_hook_refuses_rewrites_and_allows_on_a_redis_cluster() {
        on(shared_cluster_url).await;
    }
}
