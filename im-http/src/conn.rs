//! One connection's life: its service, its graceful shutdown when the
//! server stops, and for HTTP/2 the time-out of an idle connection.
//!
//! HTTP/1.1 connections have hyper's header read timeout, which also runs
//! while a kept-alive connection waits for its next request. hyper has no
//! such timer for HTTP/2, where one connection carries many requests at
//! once, so [`Activity`] counts the requests in flight (an event stream is
//! in flight until its body is dropped) and [`drive`] shuts a connection
//! down gracefully (GOAWAY, then close) once it has had none for
//! [`Config::header_read_timeout`](crate::Config::header_read_timeout).
//! The TLS handshake has the same time-out, in `server`.

use std::convert::Infallible;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
#[cfg(feature = "tls")]
use std::task::{Context, Poll};
use std::time::Duration;

#[cfg(feature = "tls")]
use bytes::Bytes;
#[cfg(feature = "tls")]
use hyper::body::{Body, Frame, SizeHint};
use hyper::service::service_fn;
use hyper::{Request, Response};
use im_engine::Store;
use tokio::sync::watch;
use tokio::time::Instant;

use crate::{App, BoxBody, ClientAddr};

/// Tells every open connection to shut down gracefully, and waits until
/// they have: what hyper-util's `GracefulShutdown` does, with the signal
/// open to [`drive`], which also shuts idle HTTP/2 connections down.
#[derive(Debug)]
pub(crate) struct Shutdown {
    tx: watch::Sender<()>,
}

impl Shutdown {
    pub(crate) fn new() -> Self {
        Self {
            tx: watch::channel(()).0,
        }
    }

    /// The signal for one more connection; it counts as open while this
    /// lives.
    pub(crate) fn watcher(&self) -> watch::Receiver<()> {
        self.tx.subscribe()
    }

    /// Signals every connection, and resolves once all have ended.
    pub(crate) async fn shutdown(self) {
        self.tx.send_replace(());
        self.tx.closed().await;
    }
}

/// Runs `conn` until it ends. When `signal` fires it calls `graceful` on
/// it (hyper's `graceful_shutdown`: finish what is in flight, take nothing
/// new); with `idle`, also once the connection has had no request in
/// flight for that long.
pub(crate) async fn drive<C>(
    conn: C,
    graceful: fn(Pin<&mut C>),
    mut signal: watch::Receiver<()>,
    idle: Option<(Activity, Duration)>,
) -> Result<(), hyper::Error>
where
    C: Future<Output = Result<(), hyper::Error>>,
{
    let mut conn = std::pin::pin!(conn);
    let mut closing = false;
    let timeout = idle.as_ref().map_or(Duration::MAX, |(_, t)| *t);
    let mut timer = Box::pin(tokio::time::sleep(timeout.min(Duration::from_secs(86_400))));
    loop {
        tokio::select! {
            done = conn.as_mut() => return done,
            changed = signal.changed(), if !closing => {
                // An error means the server is gone: shut down all the same.
                let _ = changed;
                closing = true;
                graceful(conn.as_mut());
            }
            () = &mut timer, if !closing && idle.is_some() => {
                let Some((activity, _)) = &idle else { continue };
                match activity.idle_since() {
                    Some(since) if since.elapsed() >= timeout => {
                        closing = true;
                        graceful(conn.as_mut());
                    }
                    Some(since) => timer.as_mut().reset(since + timeout),
                    None => timer.as_mut().reset(Instant::now() + timeout),
                }
            }
        }
    }
}

/// The requests in flight on one connection, and when the last one ended.
#[derive(Debug, Clone)]
pub(crate) struct Activity(Arc<Mutex<(usize, Instant)>>);

impl Activity {
    #[cfg(feature = "tls")]
    pub(crate) fn new() -> Self {
        Self(Arc::new(Mutex::new((0, Instant::now()))))
    }

    #[cfg(feature = "tls")]
    /// Counts one request as in flight until the guard is dropped.
    fn begin(&self) -> InFlight {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).0 += 1;
        InFlight(self.clone())
    }

    /// Since when nothing has been in flight, or `None` while something is.
    fn idle_since(&self) -> Option<Instant> {
        let (count, since) = *self.0.lock().unwrap_or_else(PoisonError::into_inner);
        (count == 0).then_some(since)
    }
}

#[cfg(feature = "tls")]
/// One request in flight, until its answer's body is dropped.
#[derive(Debug)]
struct InFlight(Activity);

#[cfg(feature = "tls")]
impl Drop for InFlight {
    fn drop(&mut self) {
        let mut state = self.0.0.lock().unwrap_or_else(PoisonError::into_inner);
        state.0 -= 1;
        state.1 = Instant::now();
    }
}

#[cfg(feature = "tls")]
/// An answer's body that keeps its request counted as in flight.
#[derive(Debug)]
pub(crate) struct Tracked {
    body: BoxBody,
    _in_flight: InFlight,
}

#[cfg(feature = "tls")]
impl Body for Tracked {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

/// A request's answer to come, boxed (see [`service`]).
pub(crate) type Answering<B> =
    Pin<Box<dyn Future<Output = Result<Response<B>, Infallible>> + Send>>;

/// The service of one connection from `peer`: each request gets its
/// [`ClientAddr`] and is answered by [`App::handle`].
pub(crate) fn service<S: Store>(
    app: &App<S>,
    peer: std::net::SocketAddr,
) -> impl hyper::service::Service<
    Request<hyper::body::Incoming>,
    Response = Response<BoxBody>,
    Error = Infallible,
    Future = Answering<BoxBody>,
> + Clone
+ use<S> {
    let app = app.clone();
    service_fn(move |mut req: Request<hyper::body::Incoming>| {
        req.extensions_mut().insert(ClientAddr(peer));
        let app = app.clone();
        // Boxed: hyper keeps room for a request's future for the whole
        // life of its connection, and every open event stream holds a
        // connection. Boxed, that room is a pointer and the future itself
        // is freed once it has answered.
        Box::pin(async move { Ok::<_, Infallible>(app.handle(req).await) }) as Answering<_>
    })
}

/// [`service`], with each request counted in `activity` until its answer's
/// body is dropped.
#[cfg(feature = "tls")]
pub(crate) fn tracked_service<S: Store>(
    app: &App<S>,
    peer: std::net::SocketAddr,
    activity: Activity,
) -> impl hyper::service::Service<
    Request<hyper::body::Incoming>,
    Response = Response<Tracked>,
    Error = Infallible,
    Future = Answering<Tracked>,
> + Clone
+ use<S> {
    let app = app.clone();
    service_fn(move |mut req: Request<hyper::body::Incoming>| {
        req.extensions_mut().insert(ClientAddr(peer));
        let app = app.clone();
        // Counted from here: a request dropped before its answer (the
        // client reset the stream) stops counting then.
        let in_flight = activity.begin();
        Box::pin(async move {
            let resp = app.handle(req).await;
            Ok::<_, Infallible>(resp.map(|body| Tracked {
                body,
                _in_flight: in_flight,
            }))
        }) as Answering<_>
    })
}
