//! `ApiError`: every way a request can fail, and the one place that picks
//! its status and machine-readable code.

use std::time::Duration;

use hyper::header::{ALLOW, HeaderValue, RETRY_AFTER, WWW_AUTHENTICATE};
use hyper::{Method, Response, StatusCode};
use serde::Serialize;

use crate::BoxBody;

/// A failed request, answered as `{"error": {"code": "...", "message": "..."}}`.
///
/// Client errors pass their message through; server errors are logged in
/// full and answered with a generic message.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ApiError {
    /// An engine operation failed; its kind picks the status.
    #[error(transparent)]
    Engine(#[from] im_engine::Error),
    /// The body is not JSON, or not of the expected shape.
    #[error("{0}")]
    BadJson(String),
    /// A query parameter or header is malformed.
    #[error("{0}")]
    Invalid(String),
    /// No token, or a token that is expired, malformed or wrongly signed.
    #[error("{0}")]
    Unauthorized(String),
    /// A login named a user that does not exist, has no password, or has
    /// another one: the same answer for each.
    #[error("wrong user or password")]
    BadCredentials,
    /// The caller is authenticated but may not use this route.
    #[error("{0}")]
    Forbidden(String),
    /// No route has this path.
    #[error("no such route")]
    NoRoute,
    /// The path exists but not with this method.
    #[error("method not allowed")]
    MethodNotAllowed(&'static [Method]),
    /// The request body is over the route's limit.
    #[error("request body is over {0} bytes")]
    PayloadTooLarge(usize),
    /// A body-carrying route got a body that is not `application/json`.
    #[error("content type must be application/json")]
    UnsupportedMediaType,
    /// The server is shutting down.
    #[error("server is shutting down")]
    ShuttingDown,
    /// The caller is over its rate limit; it may try again after this long.
    #[error("too many requests, slow down")]
    RateLimited(Duration),
    /// The caller has as many event streams open as it may; it may try
    /// again after this long (or once it has closed one).
    #[error("too many event streams open for this user")]
    TooManyStreams(Duration),
    /// The server has as many connections open as it may (in all, or from
    /// the client's address).
    #[error("too many connections, try again later")]
    TooManyConnections,
    /// A bug on the server's side.
    #[error("internal error")]
    Internal(String),
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    error: ErrorDetail<'a>,
}

#[derive(Serialize)]
struct ErrorDetail<'a> {
    code: &'a str,
    message: &'a str,
}

impl ApiError {
    /// The status and the stable machine-readable code of the answer,
    /// decided together so that they cannot drift apart.
    fn status_and_code(&self) -> (StatusCode, &str) {
        use im_engine::ErrorKind as K;
        match self {
            Self::Engine(e) => {
                let (status, code) = match e.kind() {
                    K::InvalidId => (StatusCode::BAD_REQUEST, "invalid_id"),
                    K::Invalid => (StatusCode::BAD_REQUEST, "invalid_request"),
                    K::TooLarge => (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large"),
                    K::NotFound => (StatusCode::NOT_FOUND, "not_found"),
                    K::Forbidden => (StatusCode::FORBIDDEN, "forbidden"),
                    K::Conflict => (StatusCode::CONFLICT, "conflict"),
                    K::Store => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
                };
                // The engine's own code where it has one (`deleted`, a
                // send hook's refusal, …).
                (status, e.code().unwrap_or(code))
            }
            Self::BadJson(_) => (StatusCode::BAD_REQUEST, "bad_json"),
            Self::Invalid(_) => (StatusCode::BAD_REQUEST, "invalid_request"),
            Self::Unauthorized(_) => (StatusCode::UNAUTHORIZED, "unauthorized"),
            Self::BadCredentials => (StatusCode::UNAUTHORIZED, "bad_credentials"),
            Self::Forbidden(_) => (StatusCode::FORBIDDEN, "forbidden"),
            Self::NoRoute => (StatusCode::NOT_FOUND, "not_found"),
            Self::MethodNotAllowed(_) => (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed"),
            Self::PayloadTooLarge(_) => (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large"),
            Self::UnsupportedMediaType => {
                (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type")
            }
            Self::ShuttingDown | Self::TooManyConnections => {
                (StatusCode::SERVICE_UNAVAILABLE, "unavailable")
            }
            Self::RateLimited(_) => (StatusCode::TOO_MANY_REQUESTS, "rate_limited"),
            Self::TooManyStreams(_) => (StatusCode::TOO_MANY_REQUESTS, "too_many_streams"),
            Self::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        }
    }

    /// The status this error is answered with.
    pub fn status(&self) -> StatusCode {
        self.status_and_code().0
    }

    /// The stable machine-readable code of the answer (a send hook's
    /// refusal answers the hook's own).
    pub fn code(&self) -> &str {
        self.status_and_code().1
    }

    /// The text shown to the client: the error's own for client errors, a
    /// generic one for server errors, which are logged here in full instead.
    fn public_message(&self) -> String {
        match self {
            Self::Engine(e @ im_engine::Error::Store(_)) => {
                tracing::error!(error = %ErrorChain(e), "store failed");
                "the store is unavailable, try again later".into()
            }
            Self::Internal(detail) => {
                tracing::error!(error = %detail, "internal error");
                "internal error".into()
            }
            other => other.to_string(),
        }
    }

    /// The HTTP answer for this error.
    pub fn into_response(self) -> Response<BoxBody> {
        let status = self.status();
        let message = self.public_message();
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code(),
                message: &message,
            },
        };
        let mut resp = crate::extract::json(status, &body);
        match &self {
            Self::MethodNotAllowed(methods) => {
                let allow = methods
                    .iter()
                    .map(Method::as_str)
                    .collect::<Vec<_>>()
                    .join(", ");
                if let Ok(v) = HeaderValue::from_str(&allow) {
                    resp.headers_mut().insert(ALLOW, v);
                }
            }
            Self::Unauthorized(_) => {
                resp.headers_mut()
                    .insert(WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            }
            Self::RateLimited(wait) | Self::TooManyStreams(wait) => {
                // Whole seconds, rounded up: a client that waits this long
                // is admitted.
                let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
                resp.headers_mut()
                    .insert(RETRY_AFTER, HeaderValue::from(secs.max(1)));
            }
            _ => {}
        }
        resp
    }
}

/// An error and its sources, for logs: see [`im_engine::ErrorChain`].
pub use im_engine::ErrorChain;
