//! `GET /v1/admin/events`: the firehose, every stored event of every user
//! once, for admins, as Server-Sent Events or a long poll with the cursor
//! rules of `GET /v1/events` (see [`crate::sse`]).

use bytes::Bytes;
use hyper::header::HeaderMap;
use hyper::{Response, StatusCode};
use im_engine::{Actor, FireDelivered, FirePage, FireStart, Store, UserId};
use serde::Serialize;

use crate::error::ApiError;
use crate::extract::{Query, json};
use crate::protect::StreamPermit;
use crate::sse::{self, SseEvent};
use crate::sse_frames::SharedData;
use crate::{App, BoxBody};

/// One firehose event as the long poll and the webhooks show it:
/// `{"id", "event", "data"}`, `data` as a user's stream shows it plus
/// `"feed"` (the user whose feed holds it) for an event of one user.
#[derive(Debug, Serialize)]
pub(crate) struct FireEvent {
    /// Its cursor.
    pub(crate) id: String,
    /// Its name.
    pub(crate) event: &'static str,
    /// What it says.
    pub(crate) data: serde_json::Value,
}

impl FireEvent {
    /// The event as `viewer` (the admin) sees it.
    pub(crate) fn new(e: &FireDelivered, viewer: &UserId) -> Self {
        Self {
            id: e.cursor.to_string(),
            event: e.data.name(),
            data: e.data_json(viewer),
        }
    }
}

impl SseEvent for FireDelivered {
    fn frame(&self, viewer: &UserId, _: &SharedData) -> Option<Bytes> {
        sse::encode(&self.cursor, self.data.name(), &self.data_json(viewer))
    }
}

/// Answers `GET /v1/admin/events`.
pub(crate) async fn events<S: Store>(
    app: &App<S>,
    actor: &Actor,
    headers: &HeaderMap,
    query: Option<&str>,
    permit: Option<StreamPermit>,
) -> Result<Response<BoxBody>, ApiError> {
    let query = Query::new(query);
    let start = match sse::cursor_text(headers, &query)? {
        Some(cursor) => cursor.parse()?,
        None => FireStart::Live,
    };
    if sse::wants_json(headers) {
        let _permit = permit;
        let wait = sse::poll_wait(app.config(), &query)?;
        let limit = query.number("limit")?;
        let page = tokio::select! {
            page = app.engine().fire_poll(actor, start, wait, limit) => page?,
            () = app.closing() => return Err(ApiError::ShuttingDown),
        };
        Ok(poll_answer(&page, &actor.user))
    } else {
        let opened = app.engine().fire_events(actor, start).await;
        // The firehose carries no signals.
        let frames = futures_util::stream::pending::<Bytes>();
        sse::stream_answer(app, actor, opened, frames, permit)
    }
}

/// `{"events": [{"id", "event", "data"}], "next"}`.
fn poll_answer(page: &FirePage, viewer: &UserId) -> Response<BoxBody> {
    let events: Vec<_> = page
        .events
        .iter()
        .map(|e| FireEvent::new(e, viewer))
        .collect();
    json(
        StatusCode::OK,
        &serde_json::json!({ "events": events, "next": page.next.to_string() }),
    )
}
