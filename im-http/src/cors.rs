//! Cross-origin requests: which web pages on other origins may call the
//! API and open event streams ([`Cors`], `--cors-origin`).
//!
//! Off by default: answers carry no CORS headers and `OPTIONS` is 405, as
//! without this module. When on, a preflight (`OPTIONS` with `Origin` and
//! `Access-Control-Request-Method`) on a route's path is answered 204 with
//! that path's methods, the request headers the API reads and how long a
//! browser may cache the answer; every answer to a granted origin, event
//! streams included, names it in `Access-Control-Allow-Origin` and exposes
//! `X-Request-Id`, `Retry-After` and `WWW-Authenticate` to its scripts. A
//! refused origin gets no CORS header (its preflight is 403), so the browser
//! keeps the page from reading anything.
//!
//! No credentials mode: the API's tokens travel in `Authorization` or
//! `?access_token=`, never in cookies, so a page on a granted origin still
//! needs a token, and a page on another origin cannot use the caller's.
//!
//! Written here, not taken from a crate: the well-kept implementation,
//! tower-http's `CorsLayer`, is a tower middleware, and this server is plain
//! hyper with no tower stack to put it in; what it needs is to match one
//! header and add a few.

use hyper::header::{
    ACCESS_CONTROL_ALLOW_HEADERS, ACCESS_CONTROL_ALLOW_METHODS, ACCESS_CONTROL_ALLOW_ORIGIN,
    ACCESS_CONTROL_EXPOSE_HEADERS, ACCESS_CONTROL_MAX_AGE, ACCESS_CONTROL_REQUEST_METHOD,
    HeaderMap, HeaderValue, ORIGIN, VARY,
};
use hyper::{Method, Response, StatusCode};

use crate::BoxBody;
use crate::error::ApiError;
use crate::extract::full;

/// The request headers a page may send: the token, a JSON body's type, an
/// EventSource's resume cursor, the request id.
const ALLOW_HEADERS: &str = "authorization, content-type, last-event-id, x-request-id";
/// The answer headers a page's scripts may read beyond the always-safe ones.
const EXPOSE_HEADERS: &str = "x-request-id, retry-after, www-authenticate";
/// Seconds a browser may cache a preflight's answer (Chromium caps it at
/// 7200): short, so that a changed `--cors-origin` takes effect soon.
const MAX_AGE: &str = "600";

/// Which origins may call the API from a browser. See the module docs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Cors {
    origins: Origins,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
enum Origins {
    /// No CORS: the default.
    #[default]
    Off,
    /// Any origin (`*`).
    Any,
    /// These, each `scheme://host[:port]` in lower case.
    List(Vec<String>),
}

/// An origin `--cors-origin` cannot match.
#[derive(Debug, thiserror::Error)]
#[error(
    "invalid origin {0:?}: expected * or scheme://host[:port] (http or https, no path), as a browser sends it in Origin"
)]
pub struct InvalidOrigin(String);

impl Cors {
    /// No cross-origin access: no CORS headers, `OPTIONS` is 405.
    pub fn off() -> Self {
        Self::default()
    }

    /// Any origin may call the API (`Access-Control-Allow-Origin: *`).
    pub fn any() -> Self {
        Self {
            origins: Origins::Any,
        }
    }

    /// These origins may call the API; `*` among them means any. Each is
    /// `http://` or `https://`, a host and an optional port, as a browser
    /// sends it in `Origin` (a trailing `/` is dropped; case does not
    /// matter). No origins at all is [`Cors::off`].
    ///
    /// # Errors
    ///
    /// [`InvalidOrigin`] for anything else, `null` included: sandboxed
    /// frames and local files all send `Origin: null`, so granting it
    /// would grant them all.
    pub fn allow<I, O>(origins: I) -> Result<Self, InvalidOrigin>
    where
        I: IntoIterator<Item = O>,
        O: AsRef<str>,
    {
        let mut list = Vec::new();
        for origin in origins {
            let origin = origin.as_ref().trim();
            if origin == "*" {
                return Ok(Self::any());
            }
            let normal = normalize(origin).ok_or_else(|| InvalidOrigin(origin.to_owned()))?;
            if !list.contains(&normal) {
                list.push(normal);
            }
        }
        Ok(Self {
            origins: if list.is_empty() {
                Origins::Off
            } else {
                Origins::List(list)
            },
        })
    }

    /// Whether any origin is granted.
    pub fn is_on(&self) -> bool {
        self.origins != Origins::Off
    }

    /// The `Access-Control-Allow-Origin` of an answer to `origin`, if it is
    /// granted.
    fn grant(&self, origin: Option<&HeaderValue>) -> Option<HeaderValue> {
        match &self.origins {
            Origins::Off => None,
            Origins::Any => Some(HeaderValue::from_static("*")),
            Origins::List(list) => {
                let origin = origin?;
                let text = origin.to_str().ok()?.to_ascii_lowercase();
                list.contains(&text).then(|| origin.clone())
            }
        }
    }

    /// Whether answers depend on the request's `Origin`, which caches must
    /// then be told (`Vary`).
    fn varies(&self) -> bool {
        matches!(self.origins, Origins::List(_))
    }
}

/// `scheme://host[:port]` in lower case, or `None` if `origin` is not one.
fn normalize(origin: &str) -> Option<String> {
    let origin = origin.strip_suffix('/').unwrap_or(origin);
    let uri: hyper::Uri = origin.parse().ok()?;
    let scheme = uri.scheme_str()?.to_ascii_lowercase();
    let authority = uri.authority()?;
    let plain = uri.path_and_query().is_none_or(|p| p.as_str() == "/");
    let simple = !authority.as_str().contains('@') && !authority.host().is_empty();
    ((scheme == "http" || scheme == "https") && plain && simple)
        .then(|| format!("{scheme}://{}", authority.as_str().to_ascii_lowercase()))
}

/// Whether a request is a CORS preflight.
pub(crate) fn is_preflight(method: &Method, headers: &HeaderMap) -> bool {
    method == Method::OPTIONS
        && headers.contains_key(ORIGIN)
        && headers.contains_key(ACCESS_CONTROL_REQUEST_METHOD)
}

/// The answer to a preflight on a path whose routes have `methods`: 204 for
/// a granted origin, 403 for another. [`headers`] adds the origin's headers
/// afterwards, as to every answer.
pub(crate) fn preflight(
    cors: &Cors,
    headers: &HeaderMap,
    methods: &[Method],
) -> Result<Response<BoxBody>, ApiError> {
    if cors.grant(headers.get(ORIGIN)).is_none() {
        return Err(ApiError::Forbidden(
            "this origin may not call the API (--cors-origin)".into(),
        ));
    }
    let mut resp = Response::new(full(""));
    *resp.status_mut() = StatusCode::NO_CONTENT;
    let allow = methods
        .iter()
        .map(Method::as_str)
        .collect::<Vec<_>>()
        .join(", ");
    let h = resp.headers_mut();
    if let Ok(allow) = HeaderValue::from_str(&allow) {
        h.insert(ACCESS_CONTROL_ALLOW_METHODS, allow);
    }
    h.insert(
        ACCESS_CONTROL_ALLOW_HEADERS,
        HeaderValue::from_static(ALLOW_HEADERS),
    );
    h.insert(ACCESS_CONTROL_MAX_AGE, HeaderValue::from_static(MAX_AGE));
    if cors.varies() {
        for name in [
            "access-control-request-method",
            "access-control-request-headers",
        ] {
            h.append(VARY, HeaderValue::from_static(name));
        }
    }
    Ok(resp)
}

/// Adds the CORS headers of an answer to a request from `origin`: `Vary:
/// Origin` whenever the answer depends on it, and the grant for a granted
/// origin.
pub(crate) fn headers(cors: &Cors, origin: Option<&HeaderValue>, answer: &mut HeaderMap) {
    if cors.varies() {
        answer.append(VARY, HeaderValue::from_static("origin"));
    }
    if let Some(allowed) = cors.grant(origin) {
        answer.insert(ACCESS_CONTROL_ALLOW_ORIGIN, allowed);
        answer.insert(
            ACCESS_CONTROL_EXPOSE_HEADERS,
            HeaderValue::from_static(EXPOSE_HEADERS),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_are_read_as_a_browser_sends_them() {
        let cors = Cors::allow(["https://App.Example.com/", "http://localhost:3000"]).unwrap();
        let grant = |o: &'static str| cors.grant(Some(&HeaderValue::from_static(o)));
        assert_eq!(
            grant("https://app.example.com").unwrap(),
            "https://app.example.com"
        );
        assert!(grant("http://localhost:3000").is_some());
        for refused in [
            "http://app.example.com",
            "https://app.example.com:8443",
            "https://evil.example.com",
            "null",
        ] {
            assert!(grant(refused).is_none(), "{refused}");
        }
        assert!(cors.grant(None).is_none());
    }

    #[test]
    fn a_star_grants_any_and_nothing_is_off() {
        let any = Cors::allow(["https://a.example", "*"]).unwrap();
        assert_eq!(any, Cors::any());
        assert_eq!(any.grant(None).unwrap(), "*");
        assert!(!any.varies());
        let none = Cors::allow(Vec::<String>::new()).unwrap();
        assert!(!none.is_on());
        assert_eq!(none, Cors::off());
    }

    #[test]
    fn what_no_browser_sends_as_an_origin_is_refused() {
        for bad in [
            "null",
            "",
            "example.com",
            "https://example.com/app",
            "https://example.com?x=1",
            "ftp://example.com",
            "https://user@example.com",
        ] {
            assert!(Cors::allow([bad]).is_err(), "{bad}");
        }
    }
}
