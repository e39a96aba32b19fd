//! `GET /v1/events`: the caller's event feed as a Server-Sent Events
//! stream, or as a long poll for clients that ask for JSON.
//!
//! A stream is the response body itself: it reads the engine's live
//! stream and the user's signals (typing, presence, receipts), adds keep-alive comments and watches for shutdown, and runs only
//! when hyper pulls it, as fast as the client reads; no task and no buffer
//! of its own. A client so far behind that the connection's writes stay
//! blocked for [`Config::sse_stall_timeout`](crate::Config::sse_stall_timeout)
//! is disconnected by [`WriteTimeout`](crate::WriteTimeout): the feed in the
//! store is the buffer, and the client resumes from its last cursor.

use std::convert::Infallible;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::Bytes;
use futures_core::Stream;
use futures_util::StreamExt;
use http_body_util::BodyExt;
use hyper::body::{Body, Frame};
use hyper::header::{ACCEPT, CACHE_CONTROL, CONNECTION, CONTENT_TYPE, HeaderMap, HeaderValue};
use hyper::{Response, StatusCode, Version};
use im_engine::{Actor, Delivered, GroupId, MAX_WATCHED_ROOMS, Signal, Start, Store, UserId};
use pin_project_lite::pin_project;
use serde::Serialize;
use tokio::time::{Instant, Sleep};

use crate::error::{ApiError, ErrorChain};
use crate::extract::{Query, full, json};
use crate::protect::StreamPermit;
use crate::room_stream::room_frames;
use crate::sse_frames::SharedData;
use crate::{App, BoxBody};

/// Answers `GET /v1/events`.
pub(crate) async fn events<S: Store>(
    app: &App<S>,
    actor: &Actor,
    headers: &HeaderMap,
    query: Option<&str>,
    permit: Option<StreamPermit>,
) -> Result<Response<BoxBody>, ApiError> {
    let query = Query::new(query);
    let start = start(headers, &query)?;
    let rooms = rooms(&query)?;
    if wants_json(headers) {
        if !rooms.is_empty() {
            return Err(ApiError::Invalid(
                "rooms are watched on an event stream (text/event-stream); \
                 a long poll reads a room's history instead"
                    .into(),
            ));
        }
        // The permit counts the long poll as open until it answers.
        let _permit = permit;
        long_poll(app, actor, start, &query).await
    } else {
        stream(app, actor, start, &rooms, permit).await
    }
}

/// `?rooms=<rid>,<rid>`: the rooms to watch (none without it).
fn rooms(query: &Query) -> Result<Vec<GroupId>, ApiError> {
    let Some(list) = query.get("rooms") else {
        return Ok(Vec::new());
    };
    let rooms = list
        .split(',')
        .filter(|r| !r.is_empty())
        .map(GroupId::new)
        .collect::<Result<Vec<_>, _>>()?;
    if rooms.len() > MAX_WATCHED_ROOMS {
        return Err(ApiError::Invalid(format!(
            "a stream watches at most {MAX_WATCHED_ROOMS} rooms"
        )));
    }
    Ok(rooms)
}

/// Where to start: `Last-Event-ID` (what a reconnecting `EventSource`
/// sends), else `?after=`, else live.
pub(crate) fn start(headers: &HeaderMap, query: &Query) -> Result<Start, ApiError> {
    match cursor_text(headers, query)? {
        Some(cursor) => Ok(cursor.parse()?),
        None => Ok(Start::Live),
    }
}

/// The cursor a stream starts after, as text: `Last-Event-ID`, else
/// `?after=`; `None` for live.
pub(crate) fn cursor_text<'a>(
    headers: &'a HeaderMap,
    query: &'a Query,
) -> Result<Option<&'a str>, ApiError> {
    let header = headers
        .get("last-event-id")
        .map(|v| {
            v.to_str()
                .map_err(|_| ApiError::Invalid("malformed event cursor".into()))
        })
        .transpose()?
        .filter(|v| !v.is_empty());
    Ok(header.or_else(|| query.get("after")))
}

/// Whether the client asked for JSON rather than an event stream.
pub(crate) fn wants_json(headers: &HeaderMap) -> bool {
    let types = || {
        headers
            .get_all(ACCEPT)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(|t| t.split(';').next().unwrap_or_default().trim())
    };
    types().any(|t| t.eq_ignore_ascii_case("application/json"))
        && !types().any(|t| t.eq_ignore_ascii_case("text/event-stream"))
}

#[derive(Serialize)]
struct PollEvent<'a> {
    id: String,
    event: &'static str,
    data: im_engine::EventDataView<'a>,
}

async fn long_poll<S: Store>(
    app: &App<S>,
    actor: &Actor,
    start: Start,
    query: &Query,
) -> Result<Response<BoxBody>, ApiError> {
    let wait = poll_wait(app.config(), query)?;
    let limit = query.number("limit")?;
    let poll = tokio::select! {
        poll = app.engine().poll(actor, start, wait, limit) => poll?,
        () = app.closing() => return Err(ApiError::ShuttingDown),
    };
    Ok(poll_answer(&poll, &actor.user))
}

/// How long a long poll waits: `?wait=` seconds (up to the maximum), or
/// the default.
pub(crate) fn poll_wait(config: &crate::Config, query: &Query) -> Result<Duration, ApiError> {
    Ok(match query.number::<u64>("wait")? {
        None => config.long_poll_default,
        Some(secs) if Duration::from_secs(secs) <= config.long_poll_max => {
            Duration::from_secs(secs)
        }
        Some(_) => {
            return Err(ApiError::Invalid(format!(
                "wait must be 0 to {} seconds",
                config.long_poll_max.as_secs()
            )));
        }
    })
}

/// The answer of a long poll: `{"events": [{"id", "event", "data"}], "next"}`.
pub(crate) fn poll_answer(poll: &im_engine::EventPage, viewer: &UserId) -> Response<BoxBody> {
    let events: Vec<_> = poll
        .events
        .iter()
        .map(|d| PollEvent {
            id: d.cursor.to_string(),
            event: d.data.name(),
            data: d.data.view(viewer),
        })
        .collect();
    json(
        StatusCode::OK,
        &serde_json::json!({ "events": events, "next": poll.next.to_string() }),
    )
}

async fn stream<S: Store>(
    app: &App<S>,
    actor: &Actor,
    start: Start,
    rooms: &[GroupId],
    permit: Option<StreamPermit>,
) -> Result<Response<BoxBody>, ApiError> {
    // Registered before answering: once the client has the response head,
    // every later event, signal and room event reaches it. A room the
    // caller may not read refuses the stream (403) before it starts.
    let rooms = app.engine().watch_rooms(actor, rooms).await?;
    let rooms = room_frames(rooms, actor.user.clone(), app.config().room_push);
    let signals = app.engine().signals(actor).map(|s| encode_signal(&s));
    let signals = futures_util::stream::select(signals, rooms);
    let opened = app.engine().events(actor, start).await;
    stream_answer(app, actor, opened, signals, permit)
}

/// The answer of an event stream the engine opened (`opened`, or why it
/// could not), with `frames` (signals, room events: encoded, without `id:`)
/// beside its events.
pub(crate) fn stream_answer<S, T, E, Sg>(
    app: &App<S>,
    actor: &Actor,
    opened: Result<E, im_engine::Error>,
    frames: Sg,
    permit: Option<StreamPermit>,
) -> Result<Response<BoxBody>, ApiError>
where
    S: Store,
    T: SseEvent + 'static,
    E: Stream<Item = Result<T, im_engine::Error>> + Send + 'static,
    Sg: Stream<Item = Bytes> + Send + 'static,
{
    let config = app.config();
    let retry = retry_ms(config.sse_retry);
    let body = match opened {
        Ok(events) => EventBody::new(
            events,
            frames,
            (actor.user.clone(), Arc::clone(app.shared_data())),
            config.keep_alive,
            retry,
            app.closing(),
            (app.metrics().sse_stream(), permit),
        )
        .boxed_unsync(),
        Err(e) if e.kind() == im_engine::ErrorKind::Store => {
            // An outage answered 503 would leave every page without live
            // events until reloaded; the long poll keeps its 503.
            unavailable(&e, retry)
        }
        Err(e) => return Err(e.into()),
    };
    Ok(stream_response(body))
}

/// An event stream's response: its body with the stream's headers.
fn stream_response(body: BoxBody) -> Response<BoxBody> {
    let mut resp = Response::new(body);
    let headers = resp.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    // Tells a buffering reverse proxy (nginx) to pass events on at once.
    headers.insert("x-accel-buffering", HeaderValue::from_static("no"));
    resp
}

/// `answer` with `Connection: close` when it is an event stream on
/// HTTP/1.x. A browser keeps a keep-alive connection whose response it
/// stopped reading (`EventSource.close()`, a closed tab) open for up to 5 s
/// to drain the rest and reuse it (Chromium's `HttpResponseBodyDrainer`),
/// and the stream would live on that long: its user still online, its
/// permit still taken. An event stream never ends to be reused anyway.
/// HTTP/2 forbids the header, and resets a stream its client closes.
pub(crate) fn closing_after(mut answer: Response<BoxBody>, version: Version) -> Response<BoxBody> {
    let streams = answer
        .headers()
        .get(CONTENT_TYPE)
        .map(HeaderValue::as_bytes)
        == Some(b"text/event-stream");
    if streams && version < Version::HTTP_2 {
        answer
            .headers_mut()
            .insert(CONNECTION, HeaderValue::from_static("close"));
    }
    answer
}

/// The body of an event stream the store cannot open now: a `retry:` line
/// and a comment, so that a browser's `EventSource` tries again (it gives
/// up for good on any status but 200).
fn unavailable(e: &im_engine::Error, retry: u64) -> BoxBody {
    tracing::warn!(error = %ErrorChain(e), "event stream refused: the store is unavailable");
    full(format!(
        "retry: {retry}\n\n: the store is unavailable, reconnect later\n\n"
    ))
}

pin_project! {
    /// The body of an event stream: a `retry:` line, each event and each
    /// signal or room event (without `id:`: `signals` has them as frames), and a keep-alive
    /// comment after `keep_alive` without one, until `closing` resolves or
    /// the store fails. `guards` (the open-streams gauge and the user's
    /// stream permit) are held while it lives.
    ///
    /// It runs only when hyper pulls it, so it buffers nothing: a client
    /// that stops reading stops it, and [`WriteTimeout`](crate::WriteTimeout)
    /// closes the connection once its writes have been blocked for the stall
    /// time-out. Written by hand rather than as an `async_stream` because
    /// every idle stream holds one: a generator keeps both the values it
    /// was given and the copies it pinned, twice the size.
    struct EventBody<E, Sg, C, G> {
        #[pin]
        events: E,
        #[pin]
        signals: Sg,
        #[pin]
        closing: C,
        #[pin]
        idle: Sleep,
        // Whose stream: messages' reactions are counted for it.
        viewer: UserId,
        // Message events encoded once for every stream of the server.
        shared: Arc<SharedData>,
        keep_alive: Duration,
        // The `retry:` line still to send first, in milliseconds.
        retry: Option<u64>,
        // When the last frame went out; `idle` is moved on from it only when
        // it fires, so a busy stream does not touch the timer per event.
        last_frame: Instant,
        done: bool,
        _guards: G,
    }
}

impl<E, Sg, C, G> EventBody<E, Sg, C, G> {
    #[allow(clippy::too_many_arguments)]
    fn new(
        events: E,
        signals: Sg,
        (viewer, shared): (UserId, Arc<SharedData>),
        keep_alive: Duration,
        retry_ms: u64,
        closing: C,
        guards: G,
    ) -> Self {
        Self {
            events,
            signals,
            closing,
            idle: tokio::time::sleep(keep_alive),
            viewer,
            shared,
            keep_alive,
            retry: Some(retry_ms),
            last_frame: Instant::now(),
            done: false,
            _guards: guards,
        }
    }
}

/// An item of an event stream: it knows its SSE frame.
pub(crate) trait SseEvent {
    /// The frame (`id:`, `event:`, one `data:` line) as `viewer` sees it,
    /// or `None` when it cannot be encoded (logged).
    /// `shared` holds the data of new messages encoded once for every
    /// stream of the server.
    fn frame(&self, viewer: &UserId, shared: &SharedData) -> Option<Bytes>;
}

impl SseEvent for Delivered {
    fn frame(&self, viewer: &UserId, shared: &SharedData) -> Option<Bytes> {
        let name = self.data.name();
        if let im_engine::EventData::Message(m) = &self.data
            && let Some(data) = shared.message(m, || encode_data(&self.data.view(viewer)))
        {
            return Some(frame(&self.cursor, name, &data));
        }
        encode(&self.cursor, name, &self.data.view(viewer))
    }
}

impl<T, E, Sg, C, G> Body for EventBody<E, Sg, C, G>
where
    T: SseEvent,
    E: Stream<Item = Result<T, im_engine::Error>>,
    Sg: Stream<Item = Bytes>,
    C: Future<Output = ()>,
{
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        let mut this = self.project();
        if *this.done {
            return Poll::Ready(None);
        }
        if let Some(ms) = this.retry.take() {
            return Poll::Ready(Some(Ok(Frame::data(Bytes::from(format!(
                "retry: {ms}\n\n"
            ))))));
        }
        loop {
            if this.closing.as_mut().poll(cx).is_ready() {
                *this.done = true;
                return Poll::Ready(None);
            }
            let frame = match this.events.as_mut().poll_next(cx) {
                Poll::Ready(Some(Ok(event))) => match event.frame(this.viewer, this.shared) {
                    Some(frame) => gather(
                        frame,
                        this.events.as_mut(),
                        cx,
                        this.viewer,
                        this.shared,
                        this.done,
                    ),
                    None => continue,
                },
                Poll::Ready(Some(Err(e))) => {
                    // A store error, or the user's suspension.
                    tracing::info!(error = %e, "event stream ended");
                    *this.done = true;
                    return Poll::Ready(None);
                }
                Poll::Ready(None) => {
                    *this.done = true;
                    return Poll::Ready(None);
                }
                Poll::Pending => {
                    if let Poll::Ready(Some(frame)) = this.signals.as_mut().poll_next(cx) {
                        *this.last_frame = Instant::now();
                        return Poll::Ready(Some(Ok(Frame::data(frame))));
                    }
                    ready!(this.idle.as_mut().poll(cx));
                    let due = *this.last_frame + *this.keep_alive;
                    if Instant::now() < due {
                        // A frame went out since the timer was set.
                        this.idle.as_mut().reset(due);
                        continue;
                    }
                    this.idle.as_mut().reset(Instant::now() + *this.keep_alive);
                    Bytes::from_static(b": keep-alive\n\n")
                }
            };
            *this.last_frame = Instant::now();
            return Poll::Ready(Some(Ok(Frame::data(frame))));
        }
    }

    fn is_end_stream(&self) -> bool {
        self.done
    }
}

/// The most bytes of events a stream gathers into one write.
const GATHER: usize = 16 * 1024;

/// `first` and the events ready right after it, up to [`GATHER`] bytes, as
/// one frame: a stream that fell behind, or was woken for several events,
/// writes them to its socket at once (one chunk, one write), not one by
/// one. The end of `events` (or its error) sets `done`, after this frame.
fn gather<T, E>(
    first: Bytes,
    mut events: Pin<&mut E>,
    cx: &mut Context<'_>,
    viewer: &UserId,
    shared: &SharedData,
    done: &mut bool,
) -> Bytes
where
    T: SseEvent,
    E: Stream<Item = Result<T, im_engine::Error>>,
{
    let mut out: Option<Vec<u8>> = None;
    while out.as_ref().map_or(first.len(), Vec::len) < GATHER {
        let frame = match events.as_mut().poll_next(cx) {
            Poll::Ready(Some(Ok(event))) => match event.frame(viewer, shared) {
                Some(frame) => frame,
                None => continue,
            },
            Poll::Ready(Some(Err(e))) => {
                tracing::info!(error = %e, "event stream ended");
                *done = true;
                break;
            }
            Poll::Ready(None) => {
                *done = true;
                break;
            }
            Poll::Pending => break,
        };
        out.get_or_insert_with(|| {
            let mut out = Vec::with_capacity(4 * first.len().max(frame.len()));
            out.extend_from_slice(&first);
            out
        })
        .extend_from_slice(&frame);
    }
    out.map_or(first, Bytes::from)
}

/// The reconnection delay one stream announces: `base` plus a random
/// jitter of up to `base`, in milliseconds.
fn retry_ms(base: Duration) -> u64 {
    let base = u64::try_from(base.as_millis())
        .unwrap_or(u64::MAX / 2)
        .max(1);
    base + rand::random_range(0..base)
}

/// One signal as an SSE frame: `event:` and one `data:` line, no `id:`
/// (a signal is never replayed, so it moves no cursor).
fn encode_signal(signal: &Signal) -> Bytes {
    Bytes::from(format!(
        "event: {}\ndata: {}\n\n",
        signal.name(),
        signal.data_json()
    ))
}

/// One event as an SSE frame: `id:`, `event:` and one `data:` line.
pub(crate) fn encode(
    id: &impl std::fmt::Display,
    name: &str,
    data: &impl Serialize,
) -> Option<Bytes> {
    Some(frame(id, name, &encode_data(data)?))
}

/// The SSE frame of an event whose `data:` JSON is `data`.
fn frame(id: &impl std::fmt::Display, name: &str, data: &[u8]) -> Bytes {
    let head = format!("id: {id}\nevent: {name}\ndata: ");
    let mut frame = Vec::with_capacity(head.len() + data.len() + 2);
    frame.extend_from_slice(head.as_bytes());
    frame.extend_from_slice(data);
    frame.extend_from_slice(b"\n\n");
    Bytes::from(frame)
}

/// An event's `data:` JSON, on one line.
fn encode_data(data: &impl Serialize) -> Option<Bytes> {
    let mut data = match serde_json::to_string(data) {
        Ok(data) => data,
        Err(e) => {
            tracing::error!(error = %e, "could not encode an event");
            return None;
        }
    };
    // A message body is kept as sent, and may be pretty-printed. Outside
    // strings (where JSON escapes them) line breaks are only whitespace, so
    // blanking them keeps the JSON and makes it one `data:` line.
    if data.contains(['\n', '\r']) {
        data = data.replace(['\n', '\r'], " ");
    }
    Some(Bytes::from(data))
}
