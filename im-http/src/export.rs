//! `GET /v1/admin/export`: the whole store as JSON Lines, streamed while
//! the server runs (the format: `im_engine::store::export`).
//!
//! A task reads the engine's export and hands the body chunks of about
//! 64 KiB through a small channel, so a slow client holds back the reads
//! rather than filling memory. How consistent the snapshot is depends on
//! the store (`Store::export`). The answer waits for the store's first
//! record, so a store that does not answer is a plain 503; a store error
//! part way ends the body with an `{"error": …}` line and no end line,
//! which an import refuses.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::Response;
use hyper::body::{Body, Frame};
use hyper::header::{CACHE_CONTROL, CONTENT_TYPE, HeaderValue};
use im_engine::store::export::{Record, next};
use im_engine::{Actor, Store, StoreError};
use tokio::sync::mpsc;

use crate::error::ApiError;
use crate::{App, BoxBody};

/// Bytes gathered before a chunk is sent.
const CHUNK: usize = 64 * 1024;

/// The export, for admins.
pub(crate) async fn answer<S: Store>(
    app: &App<S>,
    actor: &Actor,
) -> Result<Response<BoxBody>, ApiError> {
    let mut lines = Box::pin(app.engine().export(actor)?);
    // The format line, then the store's first answer.
    let mut first = Vec::with_capacity(2);
    while first.len() < 2
        && let Some(line) = next(&mut lines.as_mut()).await
    {
        first.push(line.map_err(im_engine::Error::Store)?);
    }
    let (tx, rx) = mpsc::channel(4);
    tokio::spawn(async move {
        let mut buf = Vec::with_capacity(CHUNK);
        let mut first = first.into_iter();
        loop {
            let line = match first.next() {
                Some(record) => Ok(record),
                None => match next(&mut lines.as_mut()).await {
                    Some(line) => line,
                    None => break,
                },
            };
            write_line(&mut buf, line);
            if buf.len() >= CHUNK {
                let chunk = Bytes::from(std::mem::replace(&mut buf, Vec::with_capacity(CHUNK)));
                if tx.send(chunk).await.is_err() {
                    return; // The client went away.
                }
            }
        }
        if !buf.is_empty() {
            let _ = tx.send(Bytes::from(buf)).await;
        }
    });
    let mut resp = Response::new(Chunks { rx }.boxed_unsync());
    let headers = resp.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/jsonl"));
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(resp)
}

/// Appends a record's line, or the error line that ends a failed export.
fn write_line(buf: &mut Vec<u8>, line: Result<Record, StoreError>) {
    let written = line
        .map_err(|e| im_engine::ErrorChain(&e).to_string())
        .and_then(|r| serde_json::to_writer(&mut *buf, &r).map_err(|e| e.to_string()));
    if let Err(e) = written {
        tracing::error!(error = %e, "the export failed part way");
        let line = serde_json::json!({"error": {"code": "unavailable", "message": e}});
        buf.extend(line.to_string().as_bytes());
    }
    buf.push(b'\n');
}

/// A body of the chunks a task sends, ending when it drops its sender.
struct Chunks {
    rx: mpsc::Receiver<Bytes>,
}

impl Body for Chunks {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        self.rx.poll_recv(cx).map(|c| c.map(|c| Ok(Frame::data(c))))
    }
}
