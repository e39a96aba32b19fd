//! [`SendHook`]: the engine's before-send hook over HTTP, for hosts in
//! other languages (`--send-hook-url`).
//!
//! Each would-be message is POSTed to the URL as
//! `{"message": {"conversation", "from", "body", "client_id", "reply_to"}}`.
//! A 2xx lets it through, or replaces its body when it answers
//! `{"body": {…}}`; a 4xx refuses it with the answer's
//! `{"error": {"code", "message"}}` (or [`REFUSED`] and a default message);
//! any other status, an unreachable URL or a malformed answer is
//! [`Verdict::NoAnswer`], which the engine treats like a time-out
//! ([`im_engine::HookConfig`]).

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::header::{CONTENT_TYPE, HeaderValue};
use hyper::{Method, Request, StatusCode, Uri};
use im_engine::{
    Body, ConversationId, HookFuture, Hooks, NewMessage, REFUSED, Seq, UserId, Verdict,
};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

/// The largest answer read from the hook, in bytes; a longer one is
/// malformed.
const MAX_ANSWER: usize = 1024 * 1024;

/// What a refusal without a message of its own says.
const DEFAULT_MESSAGE: &str = "the send hook refused this message";

/// A URL `--send-hook-url` cannot use.
#[derive(Debug, thiserror::Error)]
#[error("the send hook URL must be http(s)://host[:port]/path: {0}")]
pub struct InvalidHookUrl(String);

/// The before-send hook that asks an HTTP service.
#[derive(Debug, Clone)]
pub struct SendHook {
    url: Uri,
    client: crate::hook_client::HookClient,
}

#[derive(Serialize)]
struct Ask<'a> {
    message: Asked<'a>,
}

#[derive(Serialize)]
struct Asked<'a> {
    conversation: &'a ConversationId,
    from: &'a UserId,
    body: &'a Body,
    client_id: Option<&'a str>,
    reply_to: Option<Seq>,
}

#[derive(Deserialize)]
struct Allowed {
    body: Option<Box<RawValue>>,
}

#[derive(Deserialize)]
struct Refused {
    error: Option<RefusedError>,
}

#[derive(Deserialize)]
struct RefusedError {
    code: Option<String>,
    message: Option<String>,
}

impl SendHook {
    /// A hook that asks `url` (`http://`, or `https://` with the `tls` feature).
    ///
    /// # Errors
    ///
    /// [`InvalidHookUrl`] for anything but an absolute `http://` (or, with `tls`, `https://`) URL.
    pub fn new(url: &str) -> Result<Self, InvalidHookUrl> {
        let uri =
            crate::hook_client::parse_url(url).ok_or_else(|| InvalidHookUrl(url.to_owned()))?;
        Ok(Self {
            url: uri,
            client: crate::hook_client::client(),
        })
    }

    /// Asks the service about `m`.
    async fn ask(&self, m: &NewMessage) -> Result<Verdict, String> {
        let ask = Ask {
            message: Asked {
                conversation: &m.conversation,
                from: &m.from,
                body: &m.body,
                client_id: m.client_id.as_deref(),
                reply_to: m.reply_to,
            },
        };
        let json = serde_json::to_vec(&ask).map_err(|e| e.to_string())?;
        let mut req = Request::new(Full::new(Bytes::from(json)));
        *req.method_mut() = Method::POST;
        *req.uri_mut() = self.url.clone();
        req.headers_mut()
            .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        let resp = self.client.request(req).await.map_err(|e| e.to_string())?;
        let status = resp.status();
        if !(status.is_success() || status.is_client_error()) {
            return Err(format!("answered {status}"));
        }
        let answer = Limited::new(resp.into_body(), MAX_ANSWER)
            .collect()
            .await
            .map_err(|e| format!("reading the answer: {e}"))?
            .to_bytes();
        if status.is_client_error() {
            return Ok(refusal(status, &answer));
        }
        if answer.iter().all(u8::is_ascii_whitespace) {
            return Ok(Verdict::Allow);
        }
        let allowed: Allowed =
            serde_json::from_slice(&answer).map_err(|e| format!("a malformed answer: {e}"))?;
        match allowed.body {
            // The engine checks it against the body limit.
            Some(raw) => Body::from_raw(raw, usize::MAX)
                .map(Verdict::Replace)
                .map_err(|e| format!("a malformed body: {e}")),
            None => Ok(Verdict::Allow),
        }
    }
}

/// The refusal of a 4xx answer: its own code and message where it gives
/// them (the engine checks the code), else defaults.
fn refusal(status: StatusCode, answer: &[u8]) -> Verdict {
    let error = serde_json::from_slice::<Refused>(answer)
        .ok()
        .and_then(|r| r.error);
    let (code, message) = error.map_or((None, None), |e| (e.code, e.message));
    tracing::debug!(%status, ?code, "the send hook refused a message");
    Verdict::Refuse {
        code: code.unwrap_or_else(|| REFUSED.to_owned()),
        message: message.unwrap_or_else(|| DEFAULT_MESSAGE.to_owned()),
    }
}

impl Hooks for SendHook {
    fn before_send<'a>(&'a self, message: &'a NewMessage) -> HookFuture<'a, Verdict> {
        Box::pin(async move {
            self.ask(message).await.unwrap_or_else(|e| {
                tracing::warn!(url = %self.url, error = %e, "the send hook gave no answer");
                Verdict::NoAnswer
            })
        })
    }
}
