//! [`serve_metrics`]: `GET /metrics` without a token on an address of its
//! own (`--metrics-listen`), for a scraper on a private network.

use std::convert::Infallible;

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response};
use hyper_util::rt::{TokioIo, TokioTimer};
use im_engine::Store;
use tokio::net::TcpListener;

use crate::error::ApiError;
use crate::{App, BoxBody, WriteTimeout};

/// Serves `GET /metrics` of `app` on `listener`, to anyone who can reach
/// it and without a token, until [`App::close_streams`] is called (which
/// [`serve`](crate::serve) does on shutdown). Every other request is 404
/// (405 for another method on `/metrics`). Bind it to an address only the
/// scraper reaches: the metrics name routes, rates and the process's
/// resources, not users or messages, but they are still for operators.
///
/// # Errors
///
/// None so far; failures to accept are logged and do not stop it.
pub async fn serve_metrics<S: Store>(listener: TcpListener, app: App<S>) -> std::io::Result<()> {
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(app.config().header_read_timeout);
    let mut closing = std::pin::pin!(app.closing());
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    tracing::warn!(error = %e, "metrics listener: accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut closing => break,
        };
        let service = {
            let app = app.clone();
            service_fn(move |req: Request<hyper::body::Incoming>| {
                let app = app.clone();
                async move { Ok::<_, Infallible>(answer(&app, &req)) }
            })
        };
        let io = WriteTimeout::new(stream, app.config().sse_stall_timeout);
        let conn = builder.serve_connection(TokioIo::new(io), service);
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, "metrics connection ended with an error");
            }
        });
    }
    Ok(())
}

fn answer<S: Store, B>(app: &App<S>, req: &Request<B>) -> Response<BoxBody> {
    const ALLOW: &[Method] = &[Method::GET];
    match (req.method(), req.uri().path()) {
        (&Method::GET, "/metrics") => crate::handlers::metrics_answer(app, req.headers()),
        (_, "/metrics") => ApiError::MethodNotAllowed(ALLOW).into_response(),
        _ => ApiError::NoRoute.into_response(),
    }
}
