//! The HTTP client of the hooks (`--send-hook-url`, `--webhook-url`).

use bytes::Bytes;
use http_body_util::Full;
use hyper::Uri;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

/// The client: one connection pool.
pub(crate) type HookClient = Client<HttpConnector, Full<Bytes>>;

/// A new client.
pub(crate) fn client() -> HookClient {
    Client::builder(TokioExecutor::new()).build_http()
}

/// `url` when it is an absolute URL the client can reach.
pub(crate) fn parse_url(url: &str) -> Option<Uri> {
    let uri: Uri = url.parse().ok()?;
    (uri.scheme_str() == Some("http") && uri.host().is_some()).then_some(uri)
}
