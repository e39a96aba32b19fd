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
use im_engine::{OnTimeout, Store};
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

crate::common::every_store!(
    on_every_store,
    super::the_send_hook_refuses_rewrites_and_allows
);
