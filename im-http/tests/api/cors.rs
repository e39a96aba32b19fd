//! Pages on other origins: `Config::cors` (`--cors-origin`).

use hyper::Method;
use im_http::Cors;
use serde_json::json;

use crate::common::{Resp, Server, Sse, WAIT};

const PAGE: &str = "https://chat.example.com";

async fn server(cors: Cors) -> Server {
    Server::start_with(|_, c| c.cors = cors).await
}

fn preflight(s: &Server, path: &str, origin: &str, method: &str) -> crate::common::RequestBuilder {
    s.anonymous()
        .request(Method::OPTIONS, path)
        .header("origin", origin)
        .header("access-control-request-method", method)
        .header(
            "access-control-request-headers",
            "authorization, content-type",
        )
}

fn vary(r: &Resp) -> Vec<String> {
    r.headers
        .get_all("vary")
        .iter()
        .flat_map(|v| v.to_str().unwrap().split(','))
        .map(|v| v.trim().to_ascii_lowercase())
        .collect()
}

#[tokio::test]
async fn a_granted_origin_is_named_on_every_answer_with_the_headers_it_may_read() {
    let s = server(Cors::allow([PAGE, "http://localhost:3000"]).unwrap()).await;
    let [alice, _] = s.users(["alice", "bob"]).await;
    let r = alice
        .request(Method::GET, "/v1/contacts")
        .header("origin", PAGE)
        .send()
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("access-control-allow-origin"), Some(PAGE));
    assert!(vary(&r).contains(&"origin".to_owned()), "{:?}", r.headers);
    let exposed = r.header("access-control-expose-headers").unwrap();
    for name in ["x-request-id", "retry-after"] {
        assert!(exposed.contains(name), "{exposed}");
    }
    // Errors too, so the page can read what went wrong.
    let r = s
        .anonymous()
        .request(Method::GET, "/v1/contacts")
        .header("origin", PAGE)
        .send()
        .await;
    r.assert_error(401, "unauthorized");
    assert_eq!(r.header("access-control-allow-origin"), Some(PAGE));
    // No credentials mode: tokens are never cookies.
    assert_eq!(r.header("access-control-allow-credentials"), None);
}

#[tokio::test]
async fn a_refused_origin_gets_no_cors_header() {
    let s = server(Cors::allow([PAGE]).unwrap()).await;
    let [alice] = s.users(["alice"]).await;
    for origin in [
        "https://evil.example.com",
        "http://chat.example.com",
        "null",
    ] {
        let r = alice
            .request(Method::GET, "/v1/contacts")
            .header("origin", origin)
            .send()
            .await;
        assert_eq!(r.status, 200);
        assert_eq!(r.header("access-control-allow-origin"), None, "{origin}");
        assert_eq!(r.header("access-control-expose-headers"), None);
        assert!(vary(&r).contains(&"origin".to_owned()));

        let r = preflight(&s, "/v1/contacts", origin, "GET").send().await;
        r.assert_error(403, "forbidden");
        assert_eq!(r.header("access-control-allow-origin"), None, "{origin}");
        assert_eq!(r.header("access-control-allow-methods"), None);
    }
}

#[tokio::test]
async fn a_preflight_is_answered_with_the_paths_methods() {
    let s = server(Cors::allow([PAGE]).unwrap()).await;
    let r = preflight(&s, "/v1/conversations/dm:alice:bob/messages", PAGE, "POST")
        .send()
        .await;
    assert_eq!(r.status, 204, "{}", r.text());
    assert!(r.body.is_empty());
    assert_eq!(r.header("access-control-allow-origin"), Some(PAGE));
    assert_eq!(r.header("access-control-allow-methods"), Some("GET, POST"));
    let headers = r.header("access-control-allow-headers").unwrap();
    for name in ["authorization", "content-type", "last-event-id"] {
        assert!(headers.contains(name), "{headers}");
    }
    let max_age: u64 = r.header("access-control-max-age").unwrap().parse().unwrap();
    assert!(max_age > 0);
    assert!(vary(&r).contains(&"origin".to_owned()));
    // A path no route has is 404; OPTIONS without the preflight headers is
    // still 405.
    preflight(&s, "/v1/nothing", PAGE, "GET")
        .send()
        .await
        .assert_error(404, "not_found");
    let r = s
        .anonymous()
        .request(Method::OPTIONS, "/v1/contacts")
        .header("origin", PAGE)
        .send()
        .await;
    r.assert_error(405, "method_not_allowed");
}

#[tokio::test]
async fn an_event_source_on_a_granted_origin_gets_its_stream_with_access_token() {
    let s = server(Cors::allow([PAGE]).unwrap()).await;
    let [alice, _] = s.users(["alice", "bob"]).await;
    let token = s.token("bob", false);
    // What a browser's EventSource sends: no Authorization header.
    let mut sse = Sse::open(
        s.addr,
        &format!("/v1/events?access_token={token}"),
        "",
        &[("origin", PAGE)],
    )
    .await;
    assert_eq!(sse.status, 200, "{}", sse.head);
    assert_eq!(
        sse.header("access-control-allow-origin").as_deref(),
        Some(PAGE)
    );
    assert_eq!(
        sse.header("content-type").as_deref(),
        Some("text/event-stream")
    );
    alice.send("dm:alice:bob", json!({"text": "hi"})).await;
    let event = sse.next_event(WAIT).await.expect("an event");
    assert_eq!(event.data["body"], json!({"text": "hi"}));
}

#[tokio::test]
async fn a_star_grants_every_origin_without_vary() {
    let s = server(Cors::any()).await;
    let r = s
        .anonymous()
        .request(Method::GET, "/healthz")
        .header("origin", "https://anyone.example")
        .send()
        .await;
    assert_eq!(r.header("access-control-allow-origin"), Some("*"));
    assert!(vary(&r).is_empty(), "{:?}", r.headers);
    let r = preflight(&s, "/v1/events", "https://anyone.example", "GET")
        .send()
        .await;
    assert_eq!(r.status, 204);
    assert_eq!(r.header("access-control-allow-methods"), Some("GET"));
}

#[tokio::test]
async fn without_cors_nothing_changes() {
    let s = Server::start().await;
    let r = s
        .anonymous()
        .request(Method::GET, "/healthz")
        .header("origin", PAGE)
        .send()
        .await;
    assert_eq!(r.status, 200);
    for name in ["access-control-allow-origin", "vary"] {
        assert_eq!(r.header(name), None, "{name}");
    }
    preflight(&s, "/v1/contacts", PAGE, "GET")
        .send()
        .await
        .assert_error(405, "method_not_allowed");
}
