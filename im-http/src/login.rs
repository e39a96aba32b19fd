//! `POST /v1/login`: a user id and its password for a token.
//!
//! The route takes no token. Attempts count against the client address's
//! login rate before the body is read, and against the named user's (which
//! need not exist) before the password is checked; the engine checks it off
//! the async workers and answers an unknown user as late as a wrong
//! password. A token is signed here, with the server's secret, for
//! [`Config::login_ttl`](crate::Config::login_ttl).

use hyper::body::Body;
use hyper::header::{CACHE_CONTROL, HeaderValue};
use hyper::{Request, Response, StatusCode};
use im_engine::{Actor, Password, Store, UserId};
use serde::Deserialize;
use serde_json::json;

use crate::error::ApiError;
use crate::extract::{json, read_body};
use crate::routes::{BodySpec, Route};
use crate::{App, BoxBody, ClientAddr};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct LoginBody {
    user: String,
    password: Password,
}

/// Answers `POST /v1/login`.
///
/// # Errors
///
/// 429 over a rate limit, 400 for a bad body or user id, 401
/// `bad_credentials` for a wrong user or password, 503 when the store fails.
pub(crate) async fn login<S, B>(
    app: &App<S>,
    req: Request<B>,
    route: &Route,
) -> Result<Response<BoxBody>, ApiError>
where
    S: Store,
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let addr = crate::client::client_ip(
        req.extensions().get::<ClientAddr>().copied(),
        req.headers(),
        app.config().trust_forwarded_for,
    );
    app.guards().limit_login_addr(addr)?;
    let BodySpec::Json { limit, required } = route.body else {
        return Err(ApiError::Internal("the login route reads a body".into()));
    };
    let limit = limit(&app.engine().config().limits);
    let (parts, body) = req.into_parts();
    let body = read_body(&parts.headers, body, limit, required).await?;
    let body: LoginBody = crate::strict_json::parse(&body)?;
    let user = UserId::new(body.user)?;
    app.guards()
        .limit_password_guess(&Actor::user(user.clone()))?;
    let engine = app.engine();
    let who = app
        .metrics()
        .timed(route.name(), engine.login(&user, &body.password))
        .await?;
    let actor = who.ok_or(ApiError::BadCredentials)?;
    app.guards().login_succeeded(&actor.user);
    let (token, expires_at) = app
        .auth()
        .login_token(&actor.user, app.config().login_ttl)
        .map_err(|e| ApiError::Internal(crate::error::ErrorChain(&e).to_string()))?;
    let mut resp = json(
        StatusCode::OK,
        &json!({"token": token, "expires_at": expires_at}),
    );
    // A token is a credential: no cache keeps it.
    resp.headers_mut()
        .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(resp)
}
