//! A webhook receiver for the tests: a real hyper server on 127.0.0.1:0
//! that checks each POST's `X-Im-Signature`, answers 500 to the first
//! `fail_first` requests and 200 after, and keeps what it acknowledged.

use std::convert::Infallible;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::Value;

/// What the receiver saw.
#[derive(Default)]
pub struct Seen {
    /// Every request, answered 2xx or not.
    pub attempts: AtomicUsize,
    /// The bodies it acknowledged (answered 200), in order.
    pub acked: Mutex<Vec<Value>>,
    /// Requests whose signature did not verify.
    pub forged: AtomicUsize,
}

/// A receiver: its URL and what it saw.
pub struct Receiver {
    pub url: String,
    pub seen: Arc<Seen>,
}

impl Receiver {
    /// Starts a receiver that checks signatures with `secret` and answers
    /// 500 to its first `fail_first` requests.
    pub async fn start(secret: &'static [u8], fail_first: usize) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        let seen = Arc::new(Seen::default());
        let state = Arc::clone(&seen);
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let state = Arc::clone(&state);
                let service = service_fn(move |req| {
                    let state = Arc::clone(&state);
                    async move { Ok::<_, Infallible>(answer(req, &state, secret, fail_first).await) }
                });
                tokio::spawn(http1::Builder::new().serve_connection(TokioIo::new(stream), service));
            }
        });
        Self { url, seen }
    }

    /// The ids of the events acknowledged, in order.
    pub fn acked(&self) -> Vec<Value> {
        self.seen.acked.lock().unwrap().clone()
    }

    /// Waits until `n` events were acknowledged; answers them.
    pub async fn wait_for(&self, n: usize, within: Duration) -> Vec<Value> {
        let deadline = Instant::now() + within;
        loop {
            let acked = self.acked();
            if acked.len() >= n {
                return acked;
            }
            assert!(
                Instant::now() < deadline,
                "{} of {n} events acknowledged in time: {acked:#?}",
                acked.len()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

async fn answer(
    req: Request<hyper::body::Incoming>,
    seen: &Seen,
    secret: &[u8],
    fail_first: usize,
) -> Response<Full<Bytes>> {
    let signature = req
        .headers()
        .get("x-im-signature")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let body = req.into_body().collect().await.unwrap().to_bytes();
    let attempt = seen.attempts.fetch_add(1, Ordering::SeqCst);
    if signature != im_http::signature(secret, &body) {
        seen.forged.fetch_add(1, Ordering::SeqCst);
        return status(StatusCode::UNAUTHORIZED);
    }
    if attempt < fail_first {
        return status(StatusCode::INTERNAL_SERVER_ERROR);
    }
    let event: Value = serde_json::from_slice(&body).unwrap();
    seen.acked.lock().unwrap().push(event);
    status(StatusCode::OK)
}

fn status(status: StatusCode) -> Response<Full<Bytes>> {
    Response::builder()
        .status(status)
        .body(Full::new(Bytes::new()))
        .unwrap()
}

/// Checks the signature with an HMAC computed here, independently of the
/// server's code: `sha256=` and the lowercase hex of HMAC-SHA256.
pub fn verify_independently(secret: &[u8], body: &[u8], header: &str) -> bool {
    use hmac::{Hmac, Mac};
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret).unwrap();
    mac.update(body);
    let Some(hex) = header.strip_prefix("sha256=") else {
        return false;
    };
    let Ok(bytes) = (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(hex.get(i..i + 2).unwrap_or("zz"), 16))
        .collect::<Result<Vec<u8>, _>>()
    else {
        return false;
    };
    mac.verify_slice(&bytes).is_ok()
}
