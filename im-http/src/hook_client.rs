//! The HTTP client of the hooks (`--send-hook-url`, `--webhook-url`):
//! `http://` URLs, and with the `tls` feature `https://` ones, whose
//! certificates are checked against the webpki roots (Mozilla's), with
//! rustls on ring like the server.

use bytes::Bytes;
use http_body_util::Full;
use hyper::Uri;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

/// What the client connects with.
#[cfg(feature = "tls")]
type Connector = hyper_rustls::HttpsConnector<HttpConnector>;
#[cfg(not(feature = "tls"))]
type Connector = HttpConnector;

/// The client: one connection pool.
pub(crate) type HookClient = Client<Connector, Full<Bytes>>;

/// A new client.
pub(crate) fn client() -> HookClient {
    Client::builder(TokioExecutor::new()).build(connector())
}

#[cfg(feature = "tls")]
fn connector() -> Connector {
    let roots = rustls::RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("ring supports the default protocol versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(config)
        .https_or_http()
        .enable_http1()
        .build()
}

#[cfg(not(feature = "tls"))]
fn connector() -> Connector {
    HttpConnector::new()
}

/// The schemes the client reaches.
#[cfg(feature = "tls")]
const SCHEMES: &[&str] = &["http", "https"];
#[cfg(not(feature = "tls"))]
const SCHEMES: &[&str] = &["http"];

/// `url` when it is an absolute URL the client can reach.
pub(crate) fn parse_url(url: &str) -> Option<Uri> {
    let uri: Uri = url.parse().ok()?;
    let scheme = uri.scheme_str()?;
    (SCHEMES.contains(&scheme) && uri.host().is_some()).then_some(uri)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hooks_take_absolute_http_and_https_urls() {
        assert!(parse_url("http://127.0.0.1:9/hook").is_some());
        assert_eq!(
            parse_url("https://hooks.example/x").is_some(),
            cfg!(feature = "tls")
        );
        for bad in [
            "ftp://example/x",
            "/relative",
            "example.com/x",
            "http://",
            "",
        ] {
            assert!(parse_url(bad).is_none(), "{bad}");
        }
    }
}
