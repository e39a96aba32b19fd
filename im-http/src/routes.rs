//! Routing and the REST handlers: parse, authenticate, call the engine,
//! encode.

use std::borrow::Cow;

use hyper::body::Body;
use hyper::header::{CONTENT_TYPE, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use im_engine::{
    Actor, ConversationId, FieldPatch, GroupId, HistoryQuery, JoinPolicy, Limits, SendRequest,
    Store, UserId,
};
use serde::Deserialize;
use serde_json::json;
use serde_json::value::RawValue;

use crate::error::ApiError;
use crate::extract::{Query, full, json, read_json};
use crate::{App, BoxBody};

/// What a request asks for, its path parameters still unparsed so that a
/// bad id is answered after authentication, like any other bad input.
#[derive(Debug)]
pub(crate) enum Endpoint {
    Healthz,
    OpenApi,
    Metrics,
    GetUser(String),
    PutUser(String),
    Contacts,
    PutContact(String),
    DeleteContact(String),
    GetGroup(String),
    PutGroup(String),
    Members(String),
    PutMember(String, String),
    DeleteMember(String, String),
    Conversations,
    Send(String),
    History(String),
    Message(String, String),
    Read(String),
    Events,
    /// A file of the web page (`index.html` for `/`); no token.
    Web(String),
}

const GET: &[Method] = &[Method::GET];
const GET_PUT: &[Method] = &[Method::GET, Method::PUT];
const PUT_DELETE: &[Method] = &[Method::PUT, Method::DELETE];
const GET_POST: &[Method] = &[Method::GET, Method::POST];
const POST: &[Method] = &[Method::POST];

/// Matches a request to its route pattern (the metrics label) and endpoint.
pub(crate) fn route(method: &Method, path: &str) -> (&'static str, Result<Endpoint, ApiError>) {
    use Endpoint as E;
    let segments: Vec<Cow<'_, str>> = path
        .strip_prefix('/')
        .unwrap_or(path)
        .split('/')
        .map(|s| percent_encoding::percent_decode_str(s).decode_utf8_lossy())
        .collect();
    let segs: Vec<&str> = segments.iter().map(|s| s.as_ref()).collect();
    let own = |s: &str| s.to_owned();
    let not_allowed = |allow| Err(ApiError::MethodNotAllowed(allow));
    match (method, segs.as_slice()) {
        (&Method::GET, ["healthz"]) => ("/healthz", Ok(E::Healthz)),
        (_, ["healthz"]) => ("/healthz", not_allowed(GET)),
        (&Method::GET, ["openapi.json"]) => ("/openapi.json", Ok(E::OpenApi)),
        (_, ["openapi.json"]) => ("/openapi.json", not_allowed(GET)),
        (&Method::GET, ["metrics"]) => ("/metrics", Ok(E::Metrics)),
        (_, ["metrics"]) => ("/metrics", not_allowed(GET)),
        (&Method::GET, [""]) => ("/", Ok(E::Web(own("index.html")))),
        (_, [""]) => ("/", not_allowed(GET)),
        (&Method::GET, ["web", f]) => ("/web/{file}", Ok(E::Web(own(f)))),
        (_, ["web", _]) => ("/web/{file}", not_allowed(GET)),

        (&Method::GET, ["v1", "users", u]) => ("/v1/users/{uid}", Ok(E::GetUser(own(u)))),
        (&Method::PUT, ["v1", "users", u]) => ("/v1/users/{uid}", Ok(E::PutUser(own(u)))),
        (_, ["v1", "users", _]) => ("/v1/users/{uid}", not_allowed(GET_PUT)),

        (&Method::GET, ["v1", "contacts"]) => ("/v1/contacts", Ok(E::Contacts)),
        (_, ["v1", "contacts"]) => ("/v1/contacts", not_allowed(GET)),
        (&Method::PUT, ["v1", "contacts", u]) => ("/v1/contacts/{uid}", Ok(E::PutContact(own(u)))),
        (&Method::DELETE, ["v1", "contacts", u]) => {
            ("/v1/contacts/{uid}", Ok(E::DeleteContact(own(u))))
        }
        (_, ["v1", "contacts", _]) => ("/v1/contacts/{uid}", not_allowed(PUT_DELETE)),

        (&Method::GET, ["v1", "groups", g]) => ("/v1/groups/{gid}", Ok(E::GetGroup(own(g)))),
        (&Method::PUT, ["v1", "groups", g]) => ("/v1/groups/{gid}", Ok(E::PutGroup(own(g)))),
        (_, ["v1", "groups", _]) => ("/v1/groups/{gid}", not_allowed(GET_PUT)),
        (&Method::GET, ["v1", "groups", g, "members"]) => {
            ("/v1/groups/{gid}/members", Ok(E::Members(own(g))))
        }
        (_, ["v1", "groups", _, "members"]) => ("/v1/groups/{gid}/members", not_allowed(GET)),
        (&Method::PUT, ["v1", "groups", g, "members", u]) => (
            "/v1/groups/{gid}/members/{uid}",
            Ok(E::PutMember(own(g), own(u))),
        ),
        (&Method::DELETE, ["v1", "groups", g, "members", u]) => (
            "/v1/groups/{gid}/members/{uid}",
            Ok(E::DeleteMember(own(g), own(u))),
        ),
        (_, ["v1", "groups", _, "members", _]) => {
            ("/v1/groups/{gid}/members/{uid}", not_allowed(PUT_DELETE))
        }

        (&Method::GET, ["v1", "conversations"]) => ("/v1/conversations", Ok(E::Conversations)),
        (_, ["v1", "conversations"]) => ("/v1/conversations", not_allowed(GET)),
        (&Method::POST, ["v1", "conversations", c, "messages"]) => {
            ("/v1/conversations/{cid}/messages", Ok(E::Send(own(c))))
        }
        (&Method::GET, ["v1", "conversations", c, "messages"]) => {
            ("/v1/conversations/{cid}/messages", Ok(E::History(own(c))))
        }
        (_, ["v1", "conversations", _, "messages"]) => {
            ("/v1/conversations/{cid}/messages", not_allowed(GET_POST))
        }
        (&Method::GET, ["v1", "conversations", c, "messages", s]) => (
            "/v1/conversations/{cid}/messages/{seq}",
            Ok(E::Message(own(c), own(s))),
        ),
        (_, ["v1", "conversations", _, "messages", _]) => {
            ("/v1/conversations/{cid}/messages/{seq}", not_allowed(GET))
        }
        (&Method::POST, ["v1", "conversations", c, "read"]) => {
            ("/v1/conversations/{cid}/read", Ok(E::Read(own(c))))
        }
        (_, ["v1", "conversations", _, "read"]) => {
            ("/v1/conversations/{cid}/read", not_allowed(POST))
        }

        (&Method::GET, ["v1", "events"]) => ("/v1/events", Ok(E::Events)),
        (_, ["v1", "events"]) => ("/v1/events", not_allowed(GET)),

        _ => ("unmatched", Err(ApiError::NoRoute)),
    }
}

/// Authenticates the request (all but `/healthz`, `/openapi.json` and the
/// web page) and runs its handler.
pub(crate) async fn dispatch<S, B>(
    app: &App<S>,
    req: Request<B>,
    endpoint: Endpoint,
) -> Result<Response<BoxBody>, ApiError>
where
    S: Store,
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    use Endpoint as E;
    match endpoint {
        E::Healthz => return healthz(app).await,
        E::OpenApi => return Ok(crate::openapi::response()),
        _ => {}
    }
    if let E::Web(name) = &endpoint {
        return crate::web::file(name, req.headers());
    }
    let actor = app.auth().authenticate(req.headers(), req.uri().query())?;
    let m = app.metrics();
    let engine = app.engine();
    let limits = &engine.config().limits;
    let ok = || json(StatusCode::OK, &json!({"ok": true}));
    match endpoint {
        E::Healthz => healthz(app).await,
        E::Web(name) => crate::web::file(&name, req.headers()),
        E::OpenApi => Ok(crate::openapi::response()),
        E::Metrics => metrics(app, &actor),
        E::GetUser(u) => {
            let profile = m.timed("user", engine.user(&UserId::new(u)?)).await?;
            Ok(json(StatusCode::OK, &profile))
        }
        E::PutUser(u) => {
            let id = UserId::new(u)?;
            let body: FieldsBody = read_json(req, fields_body_limit(limits), false)
                .await?
                .unwrap_or_default();
            let (profile, created) = m
                .timed("put_user", engine.put_user(&actor, &id, body.fields))
                .await?;
            Ok(json(created_or_ok(created), &profile))
        }
        E::Contacts => {
            let contacts = m.timed("contacts", engine.contacts(&actor)).await?;
            Ok(json(StatusCode::OK, &json!({ "contacts": contacts })))
        }
        E::PutContact(u) => {
            m.timed("link", engine.link(&actor, &UserId::new(u)?))
                .await?;
            Ok(ok())
        }
        E::DeleteContact(u) => {
            m.timed("unlink", engine.unlink(&actor, &UserId::new(u)?))
                .await?;
            Ok(ok())
        }
        E::GetGroup(g) => {
            let group = m.timed("group", engine.group(&GroupId::new(g)?)).await?;
            Ok(json(StatusCode::OK, &group))
        }
        E::PutGroup(g) => {
            let id = GroupId::new(g)?;
            let body: GroupBody = read_json(req, fields_body_limit(limits), false)
                .await?
                .unwrap_or_default();
            let (group, created) = m
                .timed(
                    "put_group",
                    engine.put_group(&actor, &id, body.fields, body.join),
                )
                .await?;
            Ok(json(created_or_ok(created), &group))
        }
        E::Members(g) => {
            let members = m
                .timed("members", engine.members(&actor, &GroupId::new(g)?))
                .await?;
            Ok(json(StatusCode::OK, &json!({ "members": members })))
        }
        E::PutMember(g, u) => {
            let (g, u) = (GroupId::new(g)?, UserId::new(u)?);
            m.timed("join", engine.join(&actor, &g, &u)).await?;
            Ok(ok())
        }
        E::DeleteMember(g, u) => {
            let (g, u) = (GroupId::new(g)?, UserId::new(u)?);
            m.timed("leave", engine.leave(&actor, &g, &u)).await?;
            Ok(ok())
        }
        E::Conversations => {
            let limit = Query::new(req.uri().query()).number("limit")?;
            let list = m
                .timed("conversations", engine.conversations(&actor, limit))
                .await?;
            Ok(json(StatusCode::OK, &json!({ "conversations": list })))
        }
        E::Send(c) => {
            app.guards().send(&actor)?;
            send(app, &actor, &c, req).await
        }
        E::History(c) => {
            let conversation: ConversationId = c.parse()?;
            let query = history_query(&Query::new(req.uri().query()))?;
            let page = m
                .timed("history", engine.history(&actor, &conversation, query))
                .await?;
            Ok(json(StatusCode::OK, &page))
        }
        E::Message(c, seq) => {
            let conversation: ConversationId = c.parse()?;
            let seq = message_seq(&seq)?;
            let message = m
                .timed("message", engine.message(&actor, &conversation, seq))
                .await?;
            Ok(json(StatusCode::OK, &message))
        }
        E::Read(c) => {
            let conversation: ConversationId = c.parse()?;
            let body: ReadBody = read_json(req, SMALL_BODY, false).await?.unwrap_or_default();
            let state = m
                .timed(
                    "mark_read",
                    engine.mark_read(&actor, &conversation, body.seq),
                )
                .await?;
            Ok(json(StatusCode::OK, &state))
        }
        E::Events => {
            let permit = app.guards().open_stream(&actor)?;
            let (headers, query) = (req.headers(), req.uri().query());
            crate::sse::events(app, &actor, headers, query, permit).await
        }
    }
}

/// The largest body of a route that takes none or a tiny one.
pub(crate) const SMALL_BODY: usize = 4 * 1024;

/// The largest profile or group body: every field at its largest, with
/// room for JSON escapes.
pub(crate) fn fields_body_limit(l: &Limits) -> usize {
    l.fields
        .saturating_mul(l.field_bytes.saturating_add(128))
        .saturating_mul(2)
        .saturating_add(SMALL_BODY)
}

/// The largest send body: the message body at its limit, plus room for
/// `client_id`, `from` and the envelope. A body between the message limit
/// and this is read and answered 413 by the engine's own check.
pub(crate) fn send_body_limit(l: &Limits) -> usize {
    l.body_bytes.saturating_add(SMALL_BODY)
}

fn created_or_ok(created: bool) -> StatusCode {
    if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FieldsBody {
    #[serde(default)]
    pub(crate) fields: FieldPatch,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct GroupBody {
    #[serde(default)]
    pub(crate) fields: FieldPatch,
    #[serde(default)]
    pub(crate) join: Option<JoinPolicy>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SendBody {
    pub(crate) body: Box<RawValue>,
    #[serde(default)]
    pub(crate) client_id: Option<String>,
    #[serde(default)]
    pub(crate) from: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ReadBody {
    #[serde(default)]
    pub(crate) seq: Option<u64>,
}

/// The query of a history page: `before`, `after`, `limit`.
pub(crate) fn history_query(q: &Query) -> Result<HistoryQuery, ApiError> {
    Ok(HistoryQuery {
        before: q.number("before")?,
        after: q.number("after")?,
        limit: q.number("limit")?,
    })
}

/// The `{seq}` of a message path.
pub(crate) fn message_seq(s: &str) -> Result<u64, ApiError> {
    s.parse()
        .map_err(|_| ApiError::Invalid("seq must be a positive integer".into()))
}

/// What a parsed send body asks the engine for.
pub(crate) fn send_request(body: SendBody, limits: &Limits) -> Result<SendRequest, ApiError> {
    Ok(SendRequest {
        body: im_engine::Body::from_raw(body.body, limits.body_bytes)?,
        client_id: body.client_id,
        from: body.from.map(UserId::new).transpose()?,
    })
}

async fn send<S, B>(
    app: &App<S>,
    actor: &Actor,
    conversation: &str,
    req: Request<B>,
) -> Result<Response<BoxBody>, ApiError>
where
    S: Store,
    B: Body + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let engine = app.engine();
    let limits = &engine.config().limits;
    let conversation: ConversationId = conversation.parse()?;
    let body: SendBody = read_json(req, send_body_limit(limits), true)
        .await?
        .ok_or_else(|| ApiError::BadJson("a request body is required".into()))?;
    let request = send_request(body, limits)?;
    let (message, new) = app
        .metrics()
        .timed("send", engine.send(actor, &conversation, request))
        .await?;
    if new {
        app.metrics().message_sent();
    }
    Ok(json(created_or_ok(new), &message))
}

async fn healthz<S: Store>(app: &App<S>) -> Result<Response<BoxBody>, ApiError> {
    app.metrics().timed("ping", app.engine().ping()).await?;
    Ok(json(StatusCode::OK, &json!({"ok": true})))
}

fn metrics<S: Store>(app: &App<S>, actor: &Actor) -> Result<Response<BoxBody>, ApiError> {
    if !actor.admin {
        return Err(ApiError::Forbidden("metrics need an admin token".into()));
    }
    let mut resp = Response::new(full(app.metrics().render()));
    resp.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    Ok(resp)
}
