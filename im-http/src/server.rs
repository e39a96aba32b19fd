//! [`serve`] and [`serve_tls`]: the accept loop, one task per connection,
//! and the graceful shutdown.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use im_engine::{ErrorChain, Store};
use tokio::net::{TcpListener, TcpStream};

use crate::conn::{self, Shutdown};
use crate::protect::ConnectionPermit;
use crate::{App, WriteTimeout, protect};

/// Bytes a connection may hold unsent before it stops counting as writable.
#[cfg(any(target_os = "linux", target_os = "android"))]
const UNSENT_LOW_WATER: u32 = 128 * 1024;

/// Serves `app` on `listener` until `shutdown` resolves.
///
/// One task per connection, HTTP/1.1 with keep-alive; a connection whose
/// writes stay blocked for [`Config::sse_stall_timeout`](crate::Config::sse_stall_timeout) is closed
/// ([`WriteTimeout`]). On shutdown it marks the server as draining
/// (`/readyz` answers 503) and keeps serving for
/// [`Config::shutdown_delay`](crate::Config::shutdown_delay), then stops accepting, ends every event stream
/// and long poll, lets the open requests finish (for at most
/// [`Config::shutdown_grace`](crate::Config::shutdown_grace)), then waits for the engine's after-commit hook
/// to hear of every committed event (as long again at most) and flushes the store.
///
/// # Errors
///
/// The store's failure to flush, as an I/O error. Failures to accept a
/// connection are logged and do not stop the server.
pub async fn serve<S: Store>(
    listener: TcpListener,
    app: App<S>,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    run(listener, app, None, shutdown).await
}

/// [`serve`] over TLS with `certificates`, with HTTP/2 and HTTP/1.1 chosen
/// by ALPN (a client that offers neither gets HTTP/1.1).
///
/// Every protection of [`serve`] holds for both: the connection caps
/// (before the handshake), the write time-out (under TLS, on the socket),
/// and the header time-out, which also bounds the TLS handshake and, over
/// HTTP/2, closes a connection (with a GOAWAY) that has had no request in
/// flight for that long. An event stream over HTTP/2 is one stream of its
/// connection: many share one connection, and flow control keeps what a
/// client has not read to one window per stream.
///
/// # Errors
///
/// As [`serve`].
#[cfg(feature = "tls")]
pub async fn serve_tls<S: Store>(
    listener: TcpListener,
    app: App<S>,
    certificates: Arc<crate::tls::Certificates>,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let acceptor = tokio_rustls::TlsAcceptor::from(certificates.server_config());
    run(listener, app, Some(acceptor), shutdown).await
}

#[cfg(feature = "tls")]
type Acceptor = tokio_rustls::TlsAcceptor;
/// Without TLS there is no acceptor.
#[cfg(not(feature = "tls"))]
type Acceptor = std::convert::Infallible;

/// Reads the suspended users now, then every `Config::suspension_refresh`
/// until the returned guard drops. A store that fails the first read is
/// read again at the next interval.
async fn watch_suspensions<S: Store>(app: &App<S>) -> AbortOnDrop {
    let engine = app.engine().clone();
    if let Err(e) = engine.refresh_suspensions().await {
        tracing::warn!(error = %ErrorChain(&e), "could not read the suspended users");
    }
    let every = app.config().suspension_refresh;
    AbortOnDrop(tokio::spawn(async move {
        engine.watch_suspensions(every).await;
    }))
}

/// Aborts a task when dropped.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

async fn run<S: Store>(
    listener: TcpListener,
    app: App<S>,
    tls: Option<Acceptor>,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let mut http1 = http1::Builder::new();
    http1
        .timer(TokioTimer::new())
        .header_read_timeout(app.config().header_read_timeout);
    let _suspensions = watch_suspensions(&app).await;
    let _webhook = app.config().webhook.clone().map(|hook| {
        let delivery =
            crate::webhook::Delivery::new(app.engine().clone(), hook, Arc::clone(app.metrics()));
        AbortOnDrop(tokio::spawn(delivery.run()))
    });
    let open = Shutdown::new();
    let connections =
        protect::Connections::new(&app.config().protection, Arc::clone(app.metrics()));
    let mut shutdown = std::pin::pin!(shutdown);
    // Set once `shutdown` has resolved: the server still accepts until this
    // delay (`Config::shutdown_delay`) is over, with `/readyz` answering 503.
    let mut draining: Option<std::pin::Pin<Box<tokio::time::Sleep>>> = None;
    loop {
        let (stream, peer) = tokio::select! {
            () = &mut shutdown, if draining.is_none() => {
                app.drain();
                let delay = app.config().shutdown_delay;
                if delay.is_zero() {
                    break;
                }
                tracing::info!(delay_ms = delay.as_millis(), "draining: /readyz answers 503");
                draining = Some(Box::pin(tokio::time::sleep(delay)));
                continue;
            }
            () = async { draining.as_mut().expect("guarded").await }, if draining.is_some() => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors and the like: wait rather
                    // than spin, and keep serving the connections we have.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let Some((stream, permit)) = connections.admit(stream, peer.ip()) else {
            continue;
        };
        let io = socket(stream, app.config().sse_stall_timeout);
        let held = Held {
            _permit: permit,
            _gauge: app.metrics().connection(),
        };
        let signal = open.watcher();
        match &tls {
            None => {
                let conn = http1.serve_connection(TokioIo::new(io), conn::service(&app, peer));
                tokio::spawn(async move {
                    let _held = held;
                    let ended = conn::drive(conn, |c| c.graceful_shutdown(), signal, None).await;
                    if let Err(e) = ended {
                        tracing::debug!(%peer, error = %e, "connection ended with an error");
                    }
                });
            }
            #[cfg(feature = "tls")]
            Some(acceptor) => {
                let (acceptor, app, http1) = (acceptor.clone(), app.clone(), http1.clone());
                tokio::spawn(async move {
                    let _held = held;
                    tls_connection(acceptor, io, &app, peer, http1, signal).await;
                });
            }
            #[cfg(not(feature = "tls"))]
            Some(never) => match *never {},
        }
    }
    drop(listener);
    tracing::info!("shutting down");
    app.close_streams();
    tokio::select! {
        () = open.shutdown() => {}
        () = tokio::time::sleep(app.config().shutdown_grace) => {
            tracing::warn!("connections still open after the grace period are dropped");
        }
    }
    // The host's after-commit hook hears of every event committed so far,
    // unless it is stuck.
    let drained = app.engine().drain_hooks();
    if tokio::time::timeout(app.config().shutdown_grace, drained)
        .await
        .is_err()
    {
        tracing::warn!("the after-commit hook had not heard of every event after the grace period");
    }
    app.engine().flush().await.map_err(std::io::Error::other)
}

/// What an admitted connection holds until it ends: its place under the
/// connection caps and in the open-connections gauge.
struct Held {
    _permit: ConnectionPermit,
    _gauge: crate::metrics::ConnectionGauge,
}

/// The socket of an admitted connection, set up for the server.
fn socket(stream: TcpStream, stall: Duration) -> WriteTimeout<TcpStream> {
    let _ = stream.set_nodelay(true);
    // The socket counts as writable while less than this is unsent, not
    // once a third of a send buffer autotuned to megabytes has drained:
    // a client that reads slowly but steadily makes write progress, so
    // the write time-out below closes only clients that stopped.
    #[cfg(any(target_os = "linux", target_os = "android"))]
    let _ = socket2::SockRef::from(&stream).set_tcp_notsent_lowat(UNSENT_LOW_WATER);
    // A client too slow to keep up with its event stream is closed here.
    WriteTimeout::new(stream, stall)
}

/// One TLS connection: the handshake within the header time-out, then
/// HTTP/2 or HTTP/1.1 as ALPN chose.
#[cfg(feature = "tls")]
async fn tls_connection<S: Store>(
    acceptor: tokio_rustls::TlsAcceptor,
    io: WriteTimeout<TcpStream>,
    app: &App<S>,
    peer: std::net::SocketAddr,
    http1: http1::Builder,
    signal: tokio::sync::watch::Receiver<()>,
) {
    let timeout = app.config().header_read_timeout;
    let stream = match tokio::time::timeout(timeout, acceptor.accept(io)).await {
        Ok(Ok(stream)) => stream,
        Ok(Err(e)) => {
            app.metrics().refused(crate::metrics::Refused::TlsHandshake);
            tracing::debug!(%peer, error = %e, "TLS handshake failed");
            return;
        }
        Err(_) => {
            app.metrics().refused(crate::metrics::Refused::TlsHandshake);
            tracing::debug!(%peer, "TLS handshake timed out");
            return;
        }
    };
    let h2 = stream.get_ref().1.alpn_protocol() == Some(b"h2");
    let io = TokioIo::new(stream);
    let ended = if h2 {
        let mut http2 =
            hyper::server::conn::http2::Builder::new(hyper_util::rt::TokioExecutor::new());
        // Pings find peers that vanished without closing.
        http2
            .timer(TokioTimer::new())
            .keep_alive_interval(app.config().keep_alive)
            .keep_alive_timeout(app.config().keep_alive.max(Duration::from_secs(20)));
        let activity = conn::Activity::new();
        let service = conn::tracked_service(app, peer, activity.clone());
        let conn = http2.serve_connection(io, service);
        conn::drive(
            conn,
            |c| c.graceful_shutdown(),
            signal,
            Some((activity, timeout)),
        )
        .await
    } else {
        let conn = http1.serve_connection(io, conn::service(app, peer));
        conn::drive(conn, |c| c.graceful_shutdown(), signal, None).await
    };
    if let Err(e) = ended {
        tracing::debug!(%peer, error = %e, "connection ended with an error");
    }
}
