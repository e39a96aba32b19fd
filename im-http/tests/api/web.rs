//! The web page's static files: no token, their types, and revalidation.

use crate::common::Server;

#[tokio::test]
async fn the_page_and_its_files_need_no_token() {
    let s = Server::start().await;
    let anon = s.anonymous();
    for (path, content_type) in [
        ("/", "text/html; charset=utf-8"),
        ("/web/app.js", "text/javascript; charset=utf-8"),
        ("/web/app.css", "text/css; charset=utf-8"),
        ("/web/icon.svg", "image/svg+xml"),
    ] {
        let r = anon.get(path).await;
        assert_eq!(r.status, 200, "{path}: {}", r.text());
        assert_eq!(r.header("content-type"), Some(content_type), "{path}");
        assert_eq!(r.header("cache-control"), Some("no-cache"), "{path}");
        assert_eq!(r.header("x-content-type-options"), Some("nosniff"));
        assert!(r.header("x-request-id").is_some());
        assert!(!r.body.is_empty());
    }
    // The API itself still needs one.
    anon.get("/v1/conversations")
        .await
        .assert_error(401, "unauthorized");
}

#[tokio::test]
async fn the_page_refers_only_to_its_own_files_and_forbids_inline_scripts() {
    let s = Server::start().await;
    let r = s.anonymous().get("/").await;
    let html = r.text();
    for file in ["/web/app.js", "/web/app.css", "/web/icon.svg"] {
        assert!(html.contains(file), "{file} is not in the page");
    }
    assert!(!html.contains("http://") && !html.contains("https://"));
    let csp = r.header("content-security-policy").unwrap();
    assert!(csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"));
    assert_eq!(r.header("referrer-policy"), Some("no-referrer"));
}

#[tokio::test]
async fn an_unchanged_file_is_not_sent_again() {
    let s = Server::start().await;
    let anon = s.anonymous();
    let first = anon.get("/web/app.js").await;
    let etag = first.header("etag").unwrap().to_owned();
    let again = anon
        .request(hyper::Method::GET, "/web/app.js")
        .header("if-none-match", &etag)
        .send()
        .await;
    assert_eq!(again.status, 304);
    assert!(again.body.is_empty());
    assert_eq!(again.header("etag"), Some(etag.as_str()));
    let stale = anon
        .request(hyper::Method::GET, "/web/app.js")
        .header("if-none-match", "\"0000000000000000\"")
        .send()
        .await;
    assert_eq!(stale.status, 200);
    assert_eq!(stale.body, first.body);
}

#[tokio::test]
async fn unknown_files_and_other_methods_are_refused() {
    let s = Server::start().await;
    let anon = s.anonymous();
    anon.get("/web/nope.js")
        .await
        .assert_error(404, "not_found");
    anon.get("/web/..%2FCargo.toml")
        .await
        .assert_error(404, "not_found");
    let r = anon.post("/", serde_json::json!({})).await;
    r.assert_error(405, "method_not_allowed");
    assert_eq!(r.header("allow"), Some("GET"));
    anon.delete("/web/app.js")
        .await
        .assert_error(405, "method_not_allowed");
}
