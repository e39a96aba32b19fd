//! The web chat page: `GET /` and `GET /web/{file}`, plain HTML, CSS and
//! JavaScript from `im-http/web/`, compiled into the binary so that the
//! server stays one file and the page works without any network but the
//! server's own.
//!
//! The files need no token (the page asks for one and then talks to the
//! `/v1/` routes like any other client). Every answer carries a strong
//! `ETag` (a hash of the file, computed at compile time) and
//! `Cache-Control: no-cache`: a browser keeps its copy but asks each time,
//! and gets `304 Not Modified` until a new binary serves a new file. The
//! page itself gets a Content-Security-Policy that allows only the
//! server's own scripts, styles and connections, so data shown in the page
//! can never run as code even if the page escaped it wrongly.

use hyper::header::{
    CACHE_CONTROL, CONTENT_TYPE, ETAG, HeaderMap, HeaderValue, IF_NONE_MATCH, REFERRER_POLICY,
    X_CONTENT_TYPE_OPTIONS, X_FRAME_OPTIONS,
};
use hyper::{Response, StatusCode};

use crate::BoxBody;
use crate::error::ApiError;
use crate::extract::full;

/// One embedded file.
struct File {
    name: &'static str,
    content_type: &'static str,
    body: &'static [u8],
    etag: u64,
}

macro_rules! file {
    ($name:literal, $content_type:literal) => {
        File {
            name: $name,
            content_type: $content_type,
            body: include_bytes!(concat!("../web/", $name)),
            etag: fnv1a(include_bytes!(concat!("../web/", $name))),
        }
    };
}

/// Every file of the page. `index.html` is served at `/`, the others at
/// `/web/{name}`.
const FILES: &[File] = &[
    file!("index.html", "text/html; charset=utf-8"),
    file!("app.js", "text/javascript; charset=utf-8"),
    file!("app.css", "text/css; charset=utf-8"),
    file!("icon.svg", "image/svg+xml"),
];

/// The page's own origin only; `data:` images are not needed. Inline
/// scripts and styles are refused, which is what makes an escaping mistake
/// harmless rather than an injection.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
                   connect-src 'self'; base-uri 'none'; form-action 'none'; \
                   frame-ancestors 'none'";

/// 64-bit FNV-1a, as a `const fn` so each ETag is fixed at compile time.
const fn fnv1a(bytes: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    let mut i = 0;
    while i < bytes.len() {
        hash ^= bytes[i] as u64;
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
        i += 1;
    }
    hash
}

/// Answers `GET /` (`name` is `index.html`) or `GET /web/{name}`.
///
/// # Errors
///
/// 404 `not_found` for a name that is not one of the page's files.
pub(crate) fn file(name: &str, headers: &HeaderMap) -> Result<Response<BoxBody>, ApiError> {
    let file = FILES
        .iter()
        .find(|f| f.name == name)
        .ok_or(ApiError::NoRoute)?;
    let etag = format!("\"{:016x}\"", file.etag);
    let fresh = headers
        .get_all(IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|t| t.trim())
        // If-None-Match compares weakly: `W/"x"` matches `"x"`.
        .any(|t| t == "*" || t.strip_prefix("W/").unwrap_or(t) == etag);
    let mut resp = if fresh {
        let mut resp = Response::new(full(""));
        *resp.status_mut() = StatusCode::NOT_MODIFIED;
        resp
    } else {
        let mut resp = Response::new(full(file.body));
        resp.headers_mut()
            .insert(CONTENT_TYPE, HeaderValue::from_static(file.content_type));
        resp
    };
    let h = resp.headers_mut();
    h.insert(
        ETAG,
        HeaderValue::from_str(&etag).expect("hex digits in quotes are a valid header value"),
    );
    h.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    if file.name == "index.html" {
        h.insert("content-security-policy", HeaderValue::from_static(CSP));
        // A token may be in the address (`?token=`) until the page moves it
        // to sessionStorage: never send the address anywhere else.
        h.insert(REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
        h.insert(X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    }
    Ok(resp)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_file_is_served_with_its_type_and_etag() {
        for f in FILES {
            let resp = file(f.name, &HeaderMap::new()).unwrap();
            assert_eq!(resp.status(), StatusCode::OK);
            assert_eq!(resp.headers()[CONTENT_TYPE], f.content_type);
            assert_eq!(resp.headers()[CACHE_CONTROL], "no-cache");
            let etag = resp.headers()[ETAG].clone();
            let mut headers = HeaderMap::new();
            headers.insert(IF_NONE_MATCH, etag);
            let again = file(f.name, &headers).unwrap();
            assert_eq!(again.status(), StatusCode::NOT_MODIFIED, "{}", f.name);
        }
    }

    #[test]
    fn a_stale_etag_gets_the_file_and_an_unknown_name_404() {
        let mut headers = HeaderMap::new();
        headers.insert(IF_NONE_MATCH, HeaderValue::from_static("\"0\", W/\"1\""));
        assert_eq!(file("app.js", &headers).unwrap().status(), StatusCode::OK);
        assert!(matches!(
            file("../Cargo.toml", &HeaderMap::new()),
            Err(ApiError::NoRoute)
        ));
    }

    #[test]
    fn the_fnv1a_hash_matches_its_reference_values() {
        assert_eq!(fnv1a(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a(b"a"), 0xaf63_dc4c_8601_ec8c);
    }
}
