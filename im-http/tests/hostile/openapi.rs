use std::collections::BTreeSet;

use crate::common::Server;

#[tokio::test]
async fn the_document_is_served_without_a_token_and_lists_every_route() {
    let s = Server::start().await;
    let r = s.anonymous().get("/openapi.json").await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert!(r.header("x-request-id").is_some());
    let doc = r.json();
    assert_eq!(r.text(), im_http::openapi::DOCUMENT);
    let mut documented = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            if method != "parameters" {
                documented.insert((method.to_uppercase(), path.clone()));
            }
        }
    }
    let served: BTreeSet<_> = im_http::ROUTES
        .iter()
        .map(|r| (r.method().to_string(), r.pattern().to_owned()))
        .collect();
    assert_eq!(documented, served);
    // Only GET.
    let r = s
        .anonymous()
        .request(hyper::Method::POST, "/openapi.json")
        .send()
        .await;
    r.assert_error(405, "method_not_allowed");
}
