//! Reading requests and writing answers: JSON bodies within a size limit,
//! query parameters, JSON responses.

use bytes::Bytes;
use http_body_util::{BodyExt, Full, LengthLimitError, Limited};
use hyper::body::Body;
use hyper::header::{CONTENT_LENGTH, CONTENT_TYPE, HeaderMap, HeaderValue};
use hyper::{Response, StatusCode};
use serde::Serialize;

use crate::BoxBody;
use crate::error::ApiError;

/// A whole body.
pub(crate) fn full(data: impl Into<Bytes>) -> BoxBody {
    Full::new(data.into()).boxed_unsync()
}

/// A JSON answer.
pub(crate) fn json<T: Serialize + ?Sized>(status: StatusCode, value: &T) -> Response<BoxBody> {
    let (status, body) = match serde_json::to_vec(value) {
        Ok(body) => (status, body),
        Err(e) => {
            tracing::error!(error = %e, "could not encode an answer");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                br#"{"error":{"code":"internal","message":"internal error"}}"#.to_vec(),
            )
        }
    };
    let mut resp = Response::new(full(body));
    *resp.status_mut() = status;
    resp.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    resp
}

/// Whether a `Content-Type` names JSON (`application/json`, any parameters).
fn is_json(value: &HeaderValue) -> bool {
    value.to_str().is_ok_and(|v| {
        v.split(';')
            .next()
            .is_some_and(|t| t.trim().eq_ignore_ascii_case("application/json"))
    })
}

fn content_length(headers: &HeaderMap) -> Option<u64> {
    headers.get(CONTENT_LENGTH)?.to_str().ok()?.parse().ok()
}

/// Reads a route's JSON body of at most `limit` bytes. A body announced
/// or found to be larger is refused without being read whole. An empty
/// body answers empty bytes (or, when `required`, 400) whatever its
/// `Content-Type` says (aiohttp, for one, sends
/// `application/octet-stream` with a bodiless `PUT`): only a body with
/// something in it must be JSON.
///
/// # Errors
///
/// 415 for a non-empty body that is not `application/json`, 413 over the
/// limit, 400 `bad_json` for an empty body where one is required.
pub(crate) async fn read_body<B>(
    headers: &HeaderMap,
    body: B,
    limit: usize,
    required: bool,
) -> Result<Bytes, ApiError>
where
    B: Body,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let json_type = headers.get(CONTENT_TYPE).map(is_json);
    let not_json = json_type == Some(false);
    let announced = content_length(headers);
    // What is announced is refused before it is read: a body that is not
    // JSON, then one over the limit.
    if not_json && announced.is_some_and(|n| n > 0) {
        return Err(ApiError::UnsupportedMediaType);
    }
    if announced.is_some_and(|n| n > limit as u64) {
        return Err(ApiError::PayloadTooLarge(limit));
    }
    let bytes = match Limited::new(body, limit).collect().await {
        Ok(collected) => collected.to_bytes(),
        // Whatever else went wrong, a body that is not JSON is not empty.
        Err(_) if not_json => return Err(ApiError::UnsupportedMediaType),
        Err(e) if e.downcast_ref::<LengthLimitError>().is_some() => {
            return Err(ApiError::PayloadTooLarge(limit));
        }
        Err(_) => return Err(ApiError::Invalid("could not read the request body".into())),
    };
    if bytes.is_empty() {
        return if required {
            Err(ApiError::BadJson("a request body is required".into()))
        } else {
            Ok(bytes)
        };
    }
    if json_type != Some(true) {
        return Err(ApiError::UnsupportedMediaType);
    }
    Ok(bytes)
}

/// The one way a number is read from a query parameter or a path segment:
/// ASCII digits only, without a sign or a leading zero (`0` itself is
/// fine), within `u64`. So each number has one spelling, and `+5`, `05`,
/// ` 5` and `18446744073709551616` are refused alike.
pub(crate) fn number(text: &str) -> Option<u64> {
    let digits = !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit());
    if !digits || (text.len() > 1 && text.starts_with('0')) {
        return None;
    }
    text.parse().ok()
}

/// The 400 `invalid_request` of a number named `name` not written as
/// [`number`] reads it.
pub(crate) fn bad_number(name: &str) -> ApiError {
    ApiError::Invalid(format!(
        "{name} must be a non-negative integer in plain digits, without a sign or leading zeros"
    ))
}

/// A request's query parameters, decoded.
pub(crate) struct Query(Vec<(String, String)>);

impl Query {
    pub(crate) fn new(query: Option<&str>) -> Self {
        Self(
            form_urlencoded::parse(query.unwrap_or_default().as_bytes())
                .into_owned()
                .collect(),
        )
    }

    /// The first value of `name`.
    pub(crate) fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The first value of `name` as a non-negative integer, read as
    /// [`number`] reads it.
    pub(crate) fn number<N: TryFrom<u64>>(&self, name: &str) -> Result<Option<N>, ApiError> {
        self.get(name)
            .map(|v| {
                number(v)
                    .and_then(|n| N::try_from(n).ok())
                    .ok_or_else(|| bad_number(name))
            })
            .transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_number_has_one_spelling() {
        assert_eq!(number("0"), Some(0));
        assert_eq!(number("7"), Some(7));
        assert_eq!(number("18446744073709551615"), Some(u64::MAX));
        for bad in [
            "",
            "+1",
            "-1",
            "01",
            "00",
            "00001",
            " 1",
            "1 ",
            "1.0",
            "1e3",
            "0x1",
            "\u{661}",
            "18446744073709551616",
        ] {
            assert_eq!(number(bad), None, "{bad:?}");
        }
    }
}
