//! What happens to every request that matched a route, in this order: its
//! token (when the route needs one), its rate limit, its path parameters,
//! its body, then its handler. A REST handler turns the request into an
//! [`im_engine::Command`], which [`Engine::execute`](im_engine::Engine::execute)
//! runs: the same dispatch the engine's model tests and the fuzz targets
//! drive.

use std::sync::Arc;

use bytes::Bytes;
use hyper::body::Body;
use hyper::{Request, Response};
use im_engine::{Actor, Store};

use crate::error::ApiError;
use crate::extract::{Query, read_body};
use crate::handlers::{self, Input, Params};
use crate::routes::{BodySpec, Handler, Matched, Throttle};
use crate::{App, BoxBody};

/// Answers a request that matched a route.
pub(crate) async fn dispatch<S, B>(
    app: &App<S>,
    req: Request<B>,
    matched: Matched<'_>,
) -> Result<Response<BoxBody>, ApiError>
where
    S: Store,
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let route = matched.route;
    let actor = if route.needs_token() {
        let actor = app.auth().authenticate(req.headers(), req.uri().query())?;
        // From memory: no store read (see the engine's `suspension`).
        app.engine().refuse_suspended(&actor)?;
        Some(actor)
    } else {
        None
    };
    match route.throttle {
        Throttle::None => {}
        Throttle::Sends => app.guards().limit_sends(caller(actor.as_ref())?)?,
        Throttle::PasswordGuess => app.guards().limit_password_guess(caller(actor.as_ref())?)?,
    }
    let params = Params::parse(&matched.params)?;
    match route.handler {
        Handler::Command(parse) => {
            let actor = caller(actor.as_ref())?;
            let engine = app.engine();
            let limits = &engine.config().limits;
            let (parts, body) = req.into_parts();
            let body = match route.body {
                BodySpec::None => Bytes::new(),
                BodySpec::Json { limit, required } => {
                    read_body(&parts.headers, body, limit(limits), required).await?
                }
            };
            let query = Query::new(parts.uri.query());
            let command = parse(&Input {
                params: &params,
                query: &query,
                body: (!body.is_empty()).then_some(&body[..]),
                limits,
            })?;
            // Run to its end even if the client leaves before the answer
            // (see `finish`): many commands take several store steps.
            let (engine, metrics, name) = (engine.clone(), Arc::clone(app.metrics()), route.name());
            let who = actor.clone();
            let outcome = crate::finish::to_the_end(async move {
                metrics.timed(name, engine.execute(&who, command)).await
            })
            .await?;
            Ok(handlers::respond(outcome, &actor.user, app.metrics()))
        }
        Handler::Healthz => handlers::healthz(app, route.name()).await,
        Handler::Livez => Ok(handlers::livez()),
        Handler::Readyz => handlers::readyz(app, route.name()).await,
        Handler::OpenApi => Ok(crate::openapi::response()),
        Handler::Web => crate::web::file(params.file().unwrap_or("index.html"), req.headers()),
        Handler::Metrics => handlers::metrics(app, caller(actor.as_ref())?, req.headers()),
        Handler::Login => crate::login::login(app, req, route).await,
        Handler::Export => crate::export::answer(app, caller(actor.as_ref())?).await,
        Handler::Events => {
            let actor = caller(actor.as_ref())?;
            let permit = app.guards().open_stream(actor)?;
            let (headers, query) = (req.headers(), req.uri().query());
            let answer = crate::sse::events(app, actor, headers, query, permit).await?;
            Ok(crate::sse::closing_after(answer, req.version()))
        }
        Handler::Firehose => {
            let actor = caller(actor.as_ref())?;
            let permit = app.guards().open_stream(actor)?;
            let (headers, query) = (req.headers(), req.uri().query());
            let answer = crate::firehose::events(app, actor, headers, query, permit).await?;
            Ok(crate::sse::closing_after(answer, req.version()))
        }
    }
}

/// The caller, on a route that needs a token. A route without one that
/// asks is a bug in the route table, which its tests catch.
fn caller(actor: Option<&Actor>) -> Result<&Actor, ApiError> {
    actor.ok_or_else(|| ApiError::Internal("a route without a token needs a caller".into()))
}
