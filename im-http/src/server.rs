//! [`serve`]: the accept loop, one task per connection, and the graceful
//! shutdown.

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use hyper::Request;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use im_engine::Store;
use tokio::net::TcpListener;

use crate::{App, ClientAddr, WriteTimeout, protect};

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
/// [`Config::shutdown_grace`](crate::Config::shutdown_grace)), then flushes the store.
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
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(app.config().header_read_timeout);
    let graceful = GracefulShutdown::new();
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
        let _ = stream.set_nodelay(true);
        // The socket counts as writable while less than this is unsent, not
        // once a third of a send buffer autotuned to megabytes has drained:
        // a client that reads slowly but steadily makes write progress, so
        // the write time-out below closes only clients that stopped.
        #[cfg(any(target_os = "linux", target_os = "android"))]
        let _ = socket2::SockRef::from(&stream).set_tcp_notsent_lowat(UNSENT_LOW_WATER);
        let service = {
            let app = app.clone();
            service_fn(move |mut req: Request<hyper::body::Incoming>| {
                req.extensions_mut().insert(ClientAddr(peer));
                let app = app.clone();
                // Boxed: hyper keeps room for a request's future for the
                // whole life of its connection, and every open event
                // stream holds a connection. Boxed, that room is a pointer
                // and the future itself is freed once it has answered.
                Box::pin(async move { Ok::<_, Infallible>(app.handle(req).await) })
            })
        };
        // A client too slow to keep up with its event stream is closed here.
        let io = WriteTimeout::new(stream, app.config().sse_stall_timeout);
        let conn = graceful.watch(builder.serve_connection(TokioIo::new(io), service));
        let gauge = app.metrics().connection();
        tokio::spawn(async move {
            let _permit = (permit, gauge);
            if let Err(e) = conn.await {
                tracing::debug!(%peer, error = %e, "connection ended with an error");
            }
        });
    }
    drop(listener);
    tracing::info!("shutting down");
    app.close_streams();
    tokio::select! {
        () = graceful.shutdown() => {}
        () = tokio::time::sleep(app.config().shutdown_grace) => {
            tracing::warn!("connections still open after the grace period are dropped");
        }
    }
    app.engine().flush().await.map_err(std::io::Error::other)
}
