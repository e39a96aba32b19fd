//! Bearer tokens: HS256 JWTs signed with the server's secret.
//!
//! Claims are `sub` (the user the token acts as), optional `exp` and `nbf`
//! (seconds since the epoch: not valid after, not valid before) and
//! optional `admin: true`. A token comes in the
//! `Authorization: Bearer <token>` header or, for browsers' `EventSource`,
//! which cannot send headers, as `?access_token=<token>`.
//!
//! Checking a token (base64, HMAC-SHA256, JSON) was the largest single cost
//! of a small send, so tokens that verified are remembered, with their
//! expiry, in a bounded cache keyed by the whole token text: only a token
//! identical to one that verified is answered from it.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hyper::HeaderMap;
use hyper::header::AUTHORIZATION;
use im_engine::{Actor, UserId};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use crate::error::ApiError;

#[derive(Debug, Serialize, Deserialize)]
struct Claims {
    sub: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    exp: Option<u64>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    admin: bool,
    /// Other claims (`iat`, `jti`, …) are allowed and ignored, but parsed:
    /// serde skips an unknown field without checking its text, so a payload
    /// that is not even UTF-8 JSON would otherwise pass as well formed.
    #[serde(flatten)]
    other: serde_json::Map<String, serde_json::Value>,
}

/// How many verified tokens are remembered.
const VERIFIED_TOKENS: usize = 4096;

/// A token that verified: who it acts as and when it expires.
#[derive(Debug, Clone)]
struct Verified {
    actor: Actor,
    exp: Option<u64>,
}

/// Signs and checks tokens with one secret.
#[derive(Clone)]
pub struct Auth {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    verified: Arc<quick_cache::sync::Cache<String, Verified>>,
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Auth").finish_non_exhaustive()
    }
}

/// Why a token could not be made.
#[derive(Debug, thiserror::Error)]
#[error("could not sign the token")]
pub struct TokenError(#[source] jsonwebtoken::errors::Error);

impl Auth {
    /// Tokens signed with `secret`.
    pub fn new(secret: &[u8]) -> Self {
        let mut validation = Validation::new(Algorithm::HS256);
        // `exp` and `nbf` are optional; when present they are checked to the
        // second: the server checks tokens signed with its own secret, so
        // there is no skew to allow.
        validation.set_required_spec_claims::<&str>(&[]);
        validation.leeway = 0;
        validation.validate_nbf = true;
        validation.validate_aud = false;
        Self {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            validation,
            verified: Arc::new(quick_cache::sync::Cache::new(VERIFIED_TOKENS)),
        }
    }

    /// A token acting as `user`, an admin's when `admin`, valid for `ttl`
    /// (for ever without one).
    ///
    /// # Errors
    ///
    /// [`TokenError`] if signing fails, which HS256 does not in practice.
    pub fn token(
        &self,
        user: &UserId,
        admin: bool,
        ttl: Option<Duration>,
    ) -> Result<String, TokenError> {
        let exp = ttl.map(|ttl| now().saturating_add(ttl).as_secs());
        self.token_expiring(user, admin, exp)
    }

    /// A user's (not an admin's) token valid for `ttl`, and when it
    /// expires, in milliseconds since the epoch: what a login answers.
    ///
    /// # Errors
    ///
    /// [`TokenError`] if signing fails, which HS256 does not in practice.
    pub fn login_token(&self, user: &UserId, ttl: Duration) -> Result<(String, u64), TokenError> {
        // `exp` is in whole seconds; the answer says the same instant.
        let exp = now().saturating_add(ttl).as_secs();
        let token = self.token_expiring(user, false, Some(exp))?;
        Ok((token, exp.saturating_mul(1000)))
    }

    fn token_expiring(
        &self,
        user: &UserId,
        admin: bool,
        exp: Option<u64>,
    ) -> Result<String, TokenError> {
        let claims = Claims {
            sub: user.to_string(),
            exp,
            admin,
            other: serde_json::Map::new(),
        };
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .map_err(TokenError)
    }

    /// Checks a token and answers who it acts as.
    ///
    /// # Errors
    ///
    /// [`ApiError::Unauthorized`] when the token is expired or not valid
    /// yet, malformed (anything but three dot-separated parts of the
    /// base64url alphabet, without padding), wrongly signed, or names an
    /// invalid user id.
    pub fn verify(&self, token: &str) -> Result<Actor, ApiError> {
        if !is_compact(token) {
            return Err(ApiError::Unauthorized("token is malformed".into()));
        }
        if let Some(known) = self.verified.get(token) {
            // What `jsonwebtoken` checks with no leeway: expired once the
            // clock is past `exp`.
            if known.exp.is_some_and(|exp| exp < now().as_secs()) {
                self.verified.remove(token);
                return Err(ApiError::Unauthorized("token has expired".into()));
            }
            return Ok(known.actor);
        }
        let data = jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation)
            .map_err(|e| {
                use jsonwebtoken::errors::ErrorKind as K;
                ApiError::Unauthorized(
                    match e.kind() {
                        K::ExpiredSignature => "token has expired",
                        K::ImmatureSignature => "token is not valid yet",
                        K::InvalidSignature => "token signature is invalid",
                        _ => "token is malformed",
                    }
                    .into(),
                )
            })?;
        let user = UserId::new(data.claims.sub)
            .map_err(|_| ApiError::Unauthorized("token subject is not a valid user id".into()))?;
        let actor = Actor {
            user,
            admin: data.claims.admin,
        };
        self.verified.insert(
            token.to_owned(),
            Verified {
                actor: actor.clone(),
                exp: data.claims.exp,
            },
        );
        Ok(actor)
    }

    /// The caller of a request: the bearer token of its `Authorization`
    /// header, else its `access_token` query parameter.
    ///
    /// # Errors
    ///
    /// [`ApiError::Unauthorized`] when there is no token or it does not verify.
    pub fn authenticate(
        &self,
        headers: &HeaderMap,
        query: Option<&str>,
    ) -> Result<Actor, ApiError> {
        if let Some(value) = headers.get(AUTHORIZATION) {
            let token = value
                .to_str()
                .ok()
                .and_then(|v| {
                    let (scheme, token) = v.trim().split_once(' ')?;
                    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
                })
                .ok_or_else(|| {
                    ApiError::Unauthorized("authorization header must be Bearer <token>".into())
                })?;
            return self.verify(token);
        }
        let token = query
            .and_then(|q| {
                form_urlencoded::parse(q.as_bytes())
                    .find(|(k, _)| k == "access_token")
                    .map(|(_, v)| v.into_owned())
            })
            .ok_or_else(|| ApiError::Unauthorized("a bearer token is required".into()))?;
        self.verify(&token)
    }
}

/// Whether `token` has the compact form of a JWT: three non-empty parts
/// of the base64url alphabet (`A-Z a-z 0-9 - _`, no `=` padding), joined by
/// dots. Checked here rather than left to the decoder, so that the rule is
/// the server's own and holds before the cache of verified tokens is asked.
fn is_compact(token: &str) -> bool {
    let mut parts = 0;
    for part in token.split('.') {
        let base64url = |b: u8| b.is_ascii_alphanumeric() || b == b'-' || b == b'_';
        if part.is_empty() || !part.bytes().all(base64url) {
            return false;
        }
        parts += 1;
    }
    parts == 3
}

fn now() -> Duration {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
}
