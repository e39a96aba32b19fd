//! The OpenAPI 3 document of `docs/API.md` (`im-http/openapi.json`), served at
//! `GET /openapi.json`.
//!
//! The tests below hold it and the route table ([`ROUTES`](crate::ROUTES))
//! together: every route of the table is routed, nothing else is (checked
//! over every path made of the routes' own segments), and the document has
//! exactly the routes of the table. `tests/schemathesis.rs` then checks the
//! live server against the document.

use hyper::header::{CONTENT_TYPE, HeaderValue};
use hyper::{Response, StatusCode};

use crate::BoxBody;
use crate::extract::full;

/// The OpenAPI document.
pub const DOCUMENT: &str = include_str!("../openapi.json");

/// `GET /openapi.json`.
pub(crate) fn response() -> Response<BoxBody> {
    let mut resp = Response::new(full(DOCUMENT));
    *resp.status_mut() = StatusCode::OK;
    resp.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    resp
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use hyper::Method;

    use super::*;
    use crate::routes::{ROUTES, route};

    const METHODS: [&str; 7] = ["GET", "PUT", "POST", "DELETE", "PATCH", "HEAD", "OPTIONS"];

    fn routes() -> BTreeSet<(String, String)> {
        ROUTES
            .iter()
            .map(|r| (r.method().to_string(), r.pattern().to_owned()))
            .collect()
    }

    /// A path of `pattern` with every `{param}` filled in.
    fn example(pattern: &str) -> String {
        pattern
            .replace("{uid}", "alice")
            .replace("{gid}", "g1")
            .replace("{rid}", "r1")
            .replace("{cid}", "dm:alice:bob")
            .replace("{seq}", "1")
            .replace("{key}", "%F0%9F%91%8D")
            .replace("{file}", "app.js")
    }

    #[test]
    fn every_listed_route_is_routed_with_its_own_label() {
        for r in ROUTES {
            let path = example(r.pattern());
            let (label, matched) = route(r.method(), &path);
            assert_eq!(label, r.pattern());
            assert!(
                matched.is_ok(),
                "{} {}: {matched:?}",
                r.method(),
                r.pattern()
            );
        }
    }

    #[test]
    fn nothing_else_is_routed() {
        // Every path of up to seven segments, each drawn from the routes' own
        // literal segments at that position, a stand-in for a parameter and
        // the empty segment.
        let mut vocabulary = vec![BTreeSet::from(["x", ""]); 7];
        for r in ROUTES {
            for (i, segment) in r.pattern()[1..].split('/').enumerate() {
                if !segment.starts_with('{') {
                    vocabulary[i].insert(segment);
                }
            }
        }
        let listed = routes();
        let mut served = BTreeSet::new();
        let mut paths = vec![String::new()];
        for position in &vocabulary {
            let mut longer = Vec::new();
            for path in &paths {
                for segment in position {
                    let path = format!("{path}/{segment}");
                    for method in METHODS {
                        let m = Method::from_bytes(method.as_bytes()).unwrap();
                        if let (label, Ok(_)) = route(&m, &path) {
                            let key = (method.to_owned(), label.to_owned());
                            assert!(
                                listed.contains(&key),
                                "{method} {path} is served as {label}"
                            );
                            served.insert(key);
                        }
                    }
                    longer.push(path);
                }
            }
            paths = longer;
        }
        assert_eq!(served, listed);
    }

    #[test]
    fn the_document_has_exactly_the_listed_routes() {
        let doc: serde_json::Value = serde_json::from_str(DOCUMENT).unwrap();
        assert_eq!(doc["openapi"], "3.0.3");
        let mut documented = BTreeSet::new();
        for (path, item) in doc["paths"].as_object().unwrap() {
            for (key, operation) in item.as_object().unwrap() {
                if key == "parameters" {
                    continue;
                }
                let method = key.to_uppercase();
                assert!(METHODS.contains(&method.as_str()), "{key} in {path}");
                assert!(
                    operation["responses"]
                        .as_object()
                        .is_some_and(|r| !r.is_empty()),
                    "{method} {path} has no responses"
                );
                documented.insert((method, path.clone()));
            }
        }
        assert_eq!(documented, routes());
    }
}
