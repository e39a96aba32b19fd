//! The HTTP server of `im-engine`: the REST routes and the Server-Sent
//! Events stream of the repository's `docs/API.md`, on hyper.
//!
//! The server parses requests, authenticates their bearer token, calls the
//! [`Engine`], and encodes the answer; the engine decides who may do what
//! and every limit. [`serve`] runs the server on a listener until a shutdown
//! future resolves. [`App`] is the service itself, for a Rust program that
//! mounts it in its own hyper server (see `examples/embed.rs`). The
//! `im-http` binary (`serve`, `token`) picks a store and calls [`serve`].
//!
//! # Layout
//!
//! - `lib.rs`: [`App`] and [`Config`].
//! - `server`: [`serve`] and `serve_tls`, the accept loop.
//! - `conn`: one connection's service, graceful shutdown and, over HTTP/2,
//!   idle time-out.
//! - `tls` (feature `tls`): the certificates of `serve_tls`, reloadable.
//! - `routes`: [`ROUTES`], the route table (method, path pattern, token,
//!   name, body, handler), and the matcher built from it.
//! - `dispatch`: what every matched request goes through: token, rate
//!   limit, path parameters, body, handler.
//! - `handlers`: one small function per REST route, from the request to an
//!   [`im_engine::Command`] that [`Engine::execute`] runs, and the encoding
//!   of its answer.
//! - `extract`: JSON bodies within a size limit, query parameters, JSON
//!   answers.
//! - `sse`: `GET /v1/events`, as an SSE stream or a long poll.
//! - `login`: `POST /v1/login`, a password for a token.
//! - `write_timeout`: [`WriteTimeout`], which closes a connection whose writes stay
//!   blocked (a client too slow for its event stream).
//! - [`auth`]: HS256 bearer tokens.
//! - `client`: [`ClientAddr`], who sent a request, for its log line.
//! - `cors`: [`Cors`], which web pages on other origins may call the API.
//! - [`error`]: [`ApiError`], which alone picks statuses and error codes,
//!   and [`ErrorChain`](error::ErrorChain), an error with its sources for logs.
//! - `metrics`: the Prometheus metrics of `GET /metrics` (with
//!   `prometheus-client`), the process metrics, and [`serve_metrics`], their
//!   own listener without a token.
//! - `web`: the web chat page (`GET /`, `GET /web/{file}`), embedded from
//!   `im-http/web/`.
//! - [`openapi`]: the OpenAPI document, checked against [`ROUTES`].
//! - `protect`: rate limits, the per-user stream cap, connection caps
//!   ([`Protection`]).
//! - `strict_json`: request bodies without duplicate keys or deep nesting.
//! - `send_hook`: [`SendHook`], the engine's before-send hook over HTTP
//!   (`--send-hook-url`).
//! - `fuzzing` (hidden, feature `fuzzing`): what the fuzz targets in
//!   `fuzz/` run.
//! - `src/bin/im-http.rs`: the binary (feature `cli`).
//!
//! # Example
//!
//! ```
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! use im_engine::{Engine, MemoryStore, UserId};
//! use im_http::{App, Config};
//!
//! let app = App::new(Engine::new(MemoryStore::new()), Config::new(*b"a long random secret"));
//! // The token an admin script would use.
//! let token = app.auth().token(&UserId::new("root")?, true, None)?;
//! assert!(!token.is_empty());
//!
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//! let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
//! let server = tokio::spawn(im_http::serve(listener, app, async {
//!     stopped.await.ok();
//! }));
//! stop.send(()).ok();
//! server.await??;
//! # Ok::<_, Box<dyn std::error::Error>>(())
//! # }).unwrap();
//! ```

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::combinators::UnsyncBoxBody;
use hyper::body::Body;
use hyper::header::HeaderValue;
use hyper::{Method, Request, Response};
use im_engine::{Engine, Store};
use tokio::sync::watch;

pub mod auth;
mod client;
mod conn;
mod cors;
mod dispatch;
pub mod error;
mod export;
mod extract;
mod finish;
mod firehose;
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing;
mod handlers;
mod hook_client;
mod login;
mod metrics;
pub mod openapi;
mod protect;
mod room_stream;
mod routes;
mod send_hook;
mod server;
mod sse;
mod sse_frames;
mod strict_json;
#[cfg(feature = "tls")]
pub mod tls;
mod web;
mod webhook;
mod write_timeout;

pub use auth::Auth;
pub use client::ClientAddr;
pub use cors::{Cors, InvalidOrigin};
pub use error::ApiError;
pub use metrics::listener::serve_metrics;
pub use protect::{Protection, Rate};
pub use room_stream::RoomPush;
pub use routes::{ROUTES, Route};
pub use send_hook::{InvalidHookUrl, SendHook};
pub use server::serve;
#[cfg(feature = "tls")]
pub use server::serve_tls;
pub use webhook::{InvalidWebhookUrl, Webhook, signature};
pub use write_timeout::WriteTimeout;

/// The body of every answer.
pub type BoxBody = UnsyncBoxBody<Bytes, Infallible>;

/// The `X-Request-Id` header.
pub const REQUEST_ID: &str = "x-request-id";

/// Server settings. Size limits are the engine's own
/// ([`im_engine::Limits`] in its [`im_engine::Config`]); the largest request
/// body of each route is derived from them.
#[derive(Clone)]
#[non_exhaustive]
pub struct Config {
    /// The HS256 secret tokens are signed with.
    pub secret: Vec<u8>,
    /// A `: keep-alive` comment is sent on an idle event stream this often.
    pub keep_alive: Duration,
    /// The base of the reconnection delay each event stream announces in
    /// its first line (`retry:`); each stream adds a random jitter of up to
    /// as much again, so that clients cut off together (a restart) do not
    /// all come back in the same second.
    pub sse_retry: Duration,
    /// A long poll's wait when the request names none.
    pub long_poll_default: Duration,
    /// The longest wait a long poll may ask for.
    pub long_poll_max: Duration,
    /// A connection that has not sent a whole request head in this time is
    /// closed.
    pub header_read_timeout: Duration,
    /// A connection whose writes stay blocked this long is closed: an
    /// event stream's client too slow to keep up is disconnected, and
    /// resumes with its cursor, losing nothing ([`WriteTimeout`]).
    pub sse_stall_timeout: Duration,
    /// On shutdown, how long the server keeps serving with `/readyz`
    /// answering 503 before it stops accepting, so that a load balancer
    /// that polls it stops sending new clients first (0: stop at once).
    pub shutdown_delay: Duration,
    /// On shutdown, how long open connections get to finish.
    pub shutdown_grace: Duration,
    /// How long a token that `POST /v1/login` answers is valid.
    pub login_ttl: Duration,
    /// Rate limits and connection caps.
    pub protection: Protection,
    /// Which web pages on other origins may call the API (off by default).
    pub cors: Cors,
    /// Whether a request's log line names the first address of its
    /// `X-Forwarded-For` as its client (see [`ClientAddr`]). Only behind a
    /// reverse proxy that sets that header: a client can write anything in
    /// it.
    pub trust_forwarded_for: bool,
    /// How often the server reads which users are suspended, so that a
    /// suspension made through another node sharing the store takes effect
    /// here (a suspension through this node takes effect at once).
    pub suspension_refresh: Duration,
    /// Where every firehose event is POSTed, if anywhere ([`Webhook`]).
    pub webhook: Option<Webhook>,
    /// How event streams pace the messages of the rooms they watch.
    pub room_push: RoomPush,
}

impl Config {
    /// The defaults, with this secret.
    pub fn new(secret: impl Into<Vec<u8>>) -> Self {
        Self {
            secret: secret.into(),
            keep_alive: Duration::from_secs(15),
            sse_retry: Duration::from_secs(3),
            long_poll_default: Duration::from_secs(25),
            long_poll_max: Duration::from_secs(60),
            header_read_timeout: Duration::from_secs(30),
            sse_stall_timeout: Duration::from_secs(10),
            shutdown_delay: Duration::ZERO,
            shutdown_grace: Duration::from_secs(10),
            login_ttl: Duration::from_secs(24 * 60 * 60),
            protection: Protection::default(),
            cors: Cors::off(),
            trust_forwarded_for: false,
            suspension_refresh: Duration::from_millis(500),
            webhook: None,
            room_push: RoomPush::default(),
        }
    }
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("secret", &"<redacted>")
            .field("keep_alive", &self.keep_alive)
            .field("sse_retry", &self.sse_retry)
            .field("long_poll_default", &self.long_poll_default)
            .field("long_poll_max", &self.long_poll_max)
            .field("header_read_timeout", &self.header_read_timeout)
            .field("sse_stall_timeout", &self.sse_stall_timeout)
            .field("shutdown_delay", &self.shutdown_delay)
            .field("shutdown_grace", &self.shutdown_grace)
            .field("login_ttl", &self.login_ttl)
            .field("protection", &self.protection)
            .field("cors", &self.cors)
            .field("trust_forwarded_for", &self.trust_forwarded_for)
            .field("suspension_refresh", &self.suspension_refresh)
            .field("webhook", &self.webhook)
            .field("room_push", &self.room_push)
            .finish()
    }
}

/// The HTTP service over an engine: a cheap `Clone` handle.
///
/// [`App::handle`] answers one request; mount it in any hyper server, or
/// let [`serve`] run one. A server of your own should wrap each
/// connection in a [`WriteTimeout`], as [`serve`] does, or event stream
/// clients that stop reading are never disconnected.
pub struct App<S> {
    inner: Arc<Inner<S>>,
}

struct Inner<S> {
    engine: Engine<S>,
    config: Config,
    auth: Auth,
    metrics: Arc<metrics::Metrics>,
    guards: protect::Guards,
    /// Set once the server begins to shut down: `/readyz` answers 503.
    draining: AtomicBool,
    /// Set once the server shuts down: event streams and long polls end.
    closing: watch::Sender<bool>,
    /// Message events encoded once for every stream.
    shared_data: Arc<sse_frames::SharedData>,
}

impl<S> Clone for App<S> {
    fn clone(&self) -> Self {
        Self {
            inner: Arc::clone(&self.inner),
        }
    }
}

impl<S> std::fmt::Debug for App<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("App")
            .field("config", &self.inner.config)
            .finish_non_exhaustive()
    }
}

impl<S: Store> App<S> {
    /// The service over `engine`.
    pub fn new(engine: Engine<S>, config: Config) -> Self {
        Self {
            inner: Arc::new(Inner {
                engine,
                auth: Auth::new(&config.secret),
                guards: protect::Guards::new(&config.protection),
                config,
                metrics: Arc::default(),
                draining: AtomicBool::new(false),
                closing: watch::channel(false).0,
                shared_data: Arc::new(sse_frames::SharedData::new()),
            }),
        }
    }

    /// The encoded message events event streams share.
    pub(crate) fn shared_data(&self) -> &Arc<sse_frames::SharedData> {
        &self.inner.shared_data
    }

    /// The engine.
    pub fn engine(&self) -> &Engine<S> {
        &self.inner.engine
    }

    /// The settings.
    pub fn config(&self) -> &Config {
        &self.inner.config
    }

    /// The token signer and checker, with this server's secret.
    pub fn auth(&self) -> &Auth {
        &self.inner.auth
    }

    pub(crate) fn metrics(&self) -> &Arc<metrics::Metrics> {
        &self.inner.metrics
    }

    pub(crate) fn guards(&self) -> &protect::Guards {
        &self.inner.guards
    }

    /// Marks the server as shutting down: `GET /readyz` answers 503 from
    /// now on, and everything else is served as before. [`serve`] calls it
    /// as soon as its shutdown future resolves, then waits
    /// [`Config::shutdown_delay`] before it stops accepting.
    pub fn drain(&self) {
        self.inner.draining.store(true, Ordering::SeqCst);
    }

    /// Whether [`App::drain`] or [`App::close_streams`] has been called.
    pub fn is_shutting_down(&self) -> bool {
        self.inner.draining.load(Ordering::SeqCst) || *self.inner.closing.borrow()
    }

    /// Ends every event stream and long poll, now and from now on, so that
    /// connections can finish. [`serve`] calls it on shutdown; a program
    /// that mounts [`App::handle`] itself calls it before waiting for its
    /// connections.
    pub fn close_streams(&self) {
        self.drain();
        self.inner.closing.send_replace(true);
    }

    /// Resolves once [`App::close_streams`] has been called.
    pub(crate) fn closing(&self) -> impl Future<Output = ()> + Send + 'static {
        let mut rx = self.inner.closing.subscribe();
        async move {
            let _ = rx.wait_for(|closing| *closing).await;
        }
    }

    /// Answers one request. Never fails: errors are answers too. Every
    /// answer carries `X-Request-Id` (the request's own, when it has a
    /// sensible one), and one log line names the method, route pattern and
    /// name ([`Route`]), status, duration, request id and client (from the
    /// request's [`ClientAddr`] extension, or its `X-Forwarded-For` with
    /// [`Config::trust_forwarded_for`]).
    pub async fn handle<B>(&self, req: Request<B>) -> Response<BoxBody>
    where
        B: Body + Send + 'static,
        B::Data: Send,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let started = Instant::now();
        let request_id = req
            .headers()
            .get(REQUEST_ID)
            .filter(|v| {
                let b = v.as_bytes();
                !b.is_empty() && b.len() <= 200 && b.iter().all(|c| c.is_ascii_graphic())
            })
            .cloned()
            .unwrap_or_else(new_request_id);
        let client = client::client(
            req.extensions().get::<ClientAddr>().copied(),
            req.headers(),
            self.inner.config.trust_forwarded_for,
        );
        let method = req.method().clone();
        // The match borrows the path; the handler takes the request. A
        // `Uri` clone shares its bytes.
        let uri = req.uri().clone();
        let cors = &self.inner.config.cors;
        let origin = cors
            .is_on()
            .then(|| req.headers().get(hyper::header::ORIGIN).cloned())
            .flatten();
        let (route, name, answer) = if cors.is_on() && cors::is_preflight(&method, req.headers()) {
            match routes::methods(uri.path()) {
                Some((pattern, methods)) => (
                    pattern,
                    "preflight",
                    cors::preflight(cors, req.headers(), methods),
                ),
                None => ("unmatched", "", Err(ApiError::NoRoute)),
            }
        } else {
            let (route, matched) = routes::route(&method, uri.path());
            let name = matched.as_ref().map_or("", |m| m.route.name());
            let mut unanswered = Unanswered {
                metrics: &self.inner.metrics,
                method: &method,
                route,
                name,
                started,
                request_id: &request_id,
                client: &client,
                answered: false,
            };
            let answer = match matched {
                Ok(matched) => dispatch::dispatch(self, req, matched).await,
                Err(e) => Err(e),
            };
            unanswered.answered = true;
            (route, name, answer)
        };
        let mut resp = answer.unwrap_or_else(ApiError::into_response);
        if cors.is_on() {
            cors::headers(cors, origin.as_ref(), resp.headers_mut());
        }
        let status = resp.status();
        resp.headers_mut().insert(REQUEST_ID, request_id.clone());
        let took = started.elapsed();
        self.inner
            .metrics
            .request(&method, route, status.as_u16(), took);
        log_request(
            &method,
            route,
            name,
            status.as_u16(),
            took,
            &request_id,
            &client,
        );
        resp
    }
}

/// The status a request whose client left before its answer is logged and
/// counted with: nginx's "client closed request".
const CLIENT_LEFT: u16 = 499;

/// Logs and counts a request whose client left before its answer (hyper
/// drops the request's future then), unless it was answered. A command
/// still runs to its end (see `finish`); this tells the operator the client
/// did not hear how it went, as a proxy's time-out would cause.
struct Unanswered<'a> {
    metrics: &'a metrics::Metrics,
    method: &'a Method,
    route: &'static str,
    name: &'static str,
    started: Instant,
    request_id: &'a HeaderValue,
    client: &'a client::Client,
    answered: bool,
}

impl Drop for Unanswered<'_> {
    fn drop(&mut self) {
        if self.answered {
            return;
        }
        let took = self.started.elapsed();
        self.metrics
            .request(self.method, self.route, CLIENT_LEFT, took);
        let (method, route, name) = (self.method, self.route, self.name);
        log_request(
            method,
            route,
            name,
            CLIENT_LEFT,
            took,
            self.request_id,
            self.client,
        );
    }
}

/// A request's log line.
fn log_request(
    method: &Method,
    route: &str,
    name: &str,
    status: u16,
    took: std::time::Duration,
    request_id: &HeaderValue,
    client: &client::Client,
) {
    tracing::info!(
        method = %method,
        route,
        name,
        status,
        duration_ms = %format_args!("{:.3}", took.as_secs_f64() * 1000.0),
        request_id = request_id.to_str().unwrap_or_default(),
        client = %client,
        "request"
    );
}

fn new_request_id() -> HeaderValue {
    HeaderValue::from_str(&format!("{:032x}", rand::random::<u128>()))
        .expect("hex digits are a valid header value")
}

/// The workspace README's Rust examples, compiled and run as doctests so
/// they cannot fall out of date.
#[cfg(all(doctest, feature = "sled"))]
#[doc = include_str!("../../README.md")]
pub struct ReadmeDoctests;
