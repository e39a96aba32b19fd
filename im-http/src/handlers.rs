//! The REST handlers: each reads one route's request into the
//! [`im_engine::Command`] it asks for, which `Engine::execute` runs (see
//! `dispatch`); [`respond`] encodes what the command answered. Also the
//! handlers of the service routes that are no engine command.
//!
//! A handler gets its path parameters already parsed ([`Params`]: a bad id
//! is answered before the body is read) and its body already read within
//! the route's limit; it only picks the values out.

use bytes::Bytes;
use hyper::header::{ACCEPT, CONTENT_TYPE, HeaderMap, HeaderValue};
use hyper::{Response, StatusCode};
use im_engine::{
    Actor, Command, ConversationId, FieldPatch, GroupId, HistoryQuery, JoinPolicy, Limits,
    ListQuery, Outcome, Password, SendRequest, Seq, Store, UserId,
};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::json;
use serde_json::value::RawValue;

use crate::error::ApiError;
use crate::extract::{Query, bad_number, full, json, number};
use crate::metrics::Metrics;
use crate::{App, BoxBody};

/// What a handler reads a request from.
pub(crate) struct Input<'a> {
    pub(crate) params: &'a Params,
    pub(crate) query: &'a Query,
    /// The body, `None` when empty (or not read: the route takes none).
    pub(crate) body: Option<&'a [u8]>,
    pub(crate) limits: &'a Limits,
}

impl Input<'_> {
    /// The body as strict JSON (see `strict_json`), `None` when empty.
    fn json<T: DeserializeOwned>(&self) -> Result<Option<T>, ApiError> {
        self.body.map(crate::strict_json::parse).transpose()
    }
}

/// A route's path parameters, each parsed by the one rule of its name:
/// `{uid}` a user id, `{gid}` a group id, `{rid}` a room id (groups and
/// rooms share their ids), `{cid}` a conversation id, `{seq}`
/// a message number, `{key}` a reaction key (checked by the engine),
/// `{file}` a file name of the web page. Segments are
/// percent-decoded first (`dm%3Aa%3Ab` is `dm:a:b`).
#[derive(Debug, Default)]
pub(crate) struct Params {
    uid: Option<UserId>,
    gid: Option<GroupId>,
    cid: Option<ConversationId>,
    seq: Option<Seq>,
    key: Option<String>,
    file: Option<String>,
}

impl Params {
    /// Parses the raw parameters of a match, in the order of the path.
    ///
    /// # Errors
    ///
    /// 400 `invalid_id` for a bad id, 400 `invalid_request` for a bad seq.
    pub(crate) fn parse(raw: &matchit::Params<'_, '_>) -> Result<Self, ApiError> {
        let mut params = Self::default();
        for (name, value) in raw.iter() {
            let value = percent_encoding::percent_decode_str(value).decode_utf8_lossy();
            match name {
                "uid" => params.uid = Some(UserId::new(value)?),
                "gid" | "rid" => params.gid = Some(GroupId::new(value)?),
                "cid" => params.cid = Some(value.parse()?),
                "seq" => params.seq = Some(message_seq(&value)?),
                "key" => params.key = Some(value.into_owned()),
                "file" => params.file = Some(value.into_owned()),
                other => {
                    return Err(ApiError::Internal(format!(
                        "no rule for the path parameter {{{other}}}"
                    )));
                }
            }
        }
        Ok(params)
    }

    fn user(&self) -> Result<UserId, ApiError> {
        self.uid.clone().ok_or_else(|| missing("uid"))
    }

    fn group(&self) -> Result<GroupId, ApiError> {
        self.gid.clone().ok_or_else(|| missing("gid"))
    }

    fn conversation(&self) -> Result<ConversationId, ApiError> {
        self.cid.clone().ok_or_else(|| missing("cid"))
    }

    fn seq(&self) -> Result<Seq, ApiError> {
        self.seq.ok_or_else(|| missing("seq"))
    }

    fn key(&self) -> Result<String, ApiError> {
        self.key.clone().ok_or_else(|| missing("key"))
    }

    /// `{file}`, if the route has one.
    pub(crate) fn file(&self) -> Option<&str> {
        self.file.as_deref()
    }
}

/// A handler asked for a parameter its route's pattern lacks: a bug in the
/// route table, which its tests catch.
fn missing(name: &str) -> ApiError {
    ApiError::Internal(format!("the route has no {{{name}}}"))
}

/// The `{seq}` of a message path, a number as query parameters are.
pub(crate) fn message_seq(s: &str) -> Result<Seq, ApiError> {
    number(s).ok_or_else(|| bad_number("seq"))
}

/// The largest body of a route that takes none or a tiny one.
pub(crate) const SMALL_BODY: usize = 4 * 1024;

/// The largest body of `POST …/read`.
pub(crate) fn small_body_limit(_: &Limits) -> usize {
    SMALL_BODY
}

/// The largest profile or group body: every field at its largest, with
/// room for JSON escapes.
pub(crate) fn fields_body_limit(l: &Limits) -> usize {
    l.fields
        .saturating_mul(l.field_bytes.saturating_add(128))
        .saturating_mul(2)
        .saturating_add(SMALL_BODY)
}

/// The largest body of a password change or a login: two passwords at
/// their longest, every byte escaped (`\u0000`), and the envelope.
pub(crate) fn password_body_limit(_: &Limits) -> usize {
    2 * 6 * im_engine::MAX_PASSWORD + SMALL_BODY
}

/// The largest send body: the message body at its limit, plus room for
/// `client_id`, `from` and the envelope. A body between the message limit
/// and this is read and answered 413 by the engine's own check.
pub(crate) fn send_body_limit(l: &Limits) -> usize {
    l.body_bytes.saturating_add(SMALL_BODY)
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct UserBody {
    #[serde(default)]
    pub(crate) fields: FieldPatch,
    #[serde(default)]
    pub(crate) suspended: Option<bool>,
}

/// The body of `PUT /v1/groups/{gid}` and of `PUT /v1/rooms/{rid}`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct GroupBody {
    #[serde(default)]
    pub(crate) fields: FieldPatch,
    #[serde(default)]
    pub(crate) join: Option<JoinPolicy>,
    #[serde(default)]
    pub(crate) owner: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SendBody {
    pub(crate) body: Box<RawValue>,
    #[serde(default)]
    pub(crate) client_id: Option<String>,
    #[serde(default)]
    pub(crate) from: Option<String>,
    #[serde(default)]
    pub(crate) reply_to: Option<Seq>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct PasswordBody {
    pub(crate) password: Password,
    #[serde(default)]
    pub(crate) old_password: Option<Password>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct EditBody {
    pub(crate) body: Box<RawValue>,
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

/// What a parsed send body asks the engine for.
pub(crate) fn send_request(body: SendBody, limits: &Limits) -> Result<SendRequest, ApiError> {
    Ok(SendRequest {
        body: im_engine::Body::from_raw(body.body, limits.body_bytes)?,
        client_id: body.client_id,
        from: body.from.map(UserId::new).transpose()?,
        reply_to: body.reply_to,
    })
}

/// `GET /v1/users/{uid}`.
pub(crate) fn user(i: &Input<'_>) -> Result<Command, ApiError> {
    Ok(Command::User {
        id: i.params.user()?,
    })
}

/// `PUT /v1/users/{uid}`: fields, or (alone) `suspended`.
pub(crate) fn put_user(i: &Input<'_>) -> Result<Command, ApiError> {
    let body: UserBody = i.json()?.unwrap_or_default();
    let id = i.params.user()?;
    match body.suspended {
        Some(_) if !body.fields.is_empty() => Err(ApiError::BadJson(
            "\"suspended\" is set alone, without \"fields\"".into(),
        )),
        Some(suspended) => Ok(Command::Suspend { id, suspended }),
        None => Ok(Command::PutUser {
            id,
            fields: body.fields,
        }),
    }
}

/// `DELETE /v1/users/{uid}`.
pub(crate) fn erase_user(i: &Input<'_>) -> Result<Command, ApiError> {
    Ok(Command::Erase {
        id: i.params.user()?,
    })
}

/// `GET /v1/blocks`.
pub(crate) fn blocks(_: &Input<'_>) -> Result<Command, ApiError> {
    Ok(Command::Blocks)
}

/// `PUT /v1/blocks/{uid}`.
pub(crate) fn block(i: &Input<'_>) -> Result<Command, ApiError> {
    Ok(Command::Block {
        id: i.params.user()?,
    })
}

/// `DELETE /v1/blocks/{uid}`.
pub(crate) fn unblock(i: &Input<'_>) -> Result<Command, ApiError> {
    Ok(Command::Unblock {
        id: i.params.user()?,
    })
}

/// `PUT /v1/users/{uid}/password`.
pub(crate) fn set_password(i: &Input<'_>) -> Result<Command, ApiError> {
    let body: PasswordBody = i
        .json()?
        .ok_or_else(|| ApiError::BadJson("a request body is required".into()))?;
    Ok(Command::SetPassword {
        id: i.params.user()?,
        password: body.password,
        old_password: body.old_password,
    })
}

/// The query of a list page: `after`, `limit`.
pub(crate) fn list_query(q: &Query) -> Result<ListQuery, ApiError> {
    Ok(ListQuery {
        after: q.get("after").map(str::to_owned),
        limit: q.number("limit")?,
    })
}

/// `GET /v1/contacts`.
pub(crate) fn contacts(i: &Input<'_>) -> Result<Command, ApiError> {
    Ok(Command::Contacts {
        query: list_query(i.query)?,
    })
}

/// `PUT /v1/contacts/{uid}`.
pub(crate) fn link(i: &Input<'_>) -> Result<Command, ApiError> {
    Ok(Command::Link {
        id: i.params.user()?,
    })
}

/// `DELETE /v1/contacts/{uid}`.
pub(crate) fn unlink(i: &Input<'_>) -> Result<Command, ApiError> {
    Ok(Command::Unlink {
        id: i.params.user()?,
    })
}

/// `GET /v1/groups/{gid}`.
pub(crate) fn group(i: &Input<'_>) -> Result<Command, ApiError> {
    Ok(Command::Group {
        id: i.params.group()?,
    })
}

/// `PUT /v1/groups/{gid}`.
pub(crate) fn put_group(i: &Input<'_>) -> Result<Command, ApiError> {
    let body: GroupBody = i.json()?.unwrap_or_default();
    Ok(Command::PutGroup {
        id: i.params.group()?,
        fields: body.fields,
        join: body.join,
        owner: body.owner.map(UserId::new).transpose()?,
    })
}

/// `GET /v1/groups/{gid}/members`.
pub(crate) fn members(i: &Input<'_>) -> Result<Command, ApiError> {
    Ok(Command::Members {
        id: i.params.group()?,
        query: list_query(i.query)?,
    })
}

/// `PUT /v1/groups/{gid}/members/{uid}`.
pub(crate) fn join(i: &Input<'_>) -> Result<Command, ApiError> {
    Ok(Command::Join {
        group: i.params.group()?,
        user: i.params.user()?,
    })
}

/// `DELETE /v1/groups/{gid}/members/{uid}`.
pub(crate) fn leave(i: &Input<'_>) -> Result<Command, ApiError> {
    Ok(Command::Leave {
        group: i.params.group()?,
        user: i.params.user()?,
    })
}

/// `GET /v1/rooms/{rid}`.
pub(crate) fn room(i: &Input<'_>) -> Result<Command, ApiError> {
    Ok(Command::Room {
        id: i.params.group()?,
    })
}

/// `PUT /v1/rooms/{rid}`.
pub(crate) fn put_room(i: &Input<'_>) -> Result<Command, ApiError> {
    let body: GroupBody = i.json()?.unwrap_or_default();
    Ok(Command::PutRoom {
        id: i.params.group()?,
        fields: body.fields,
        join: body.join,
        owner: body.owner.map(UserId::new).transpose()?,
    })
}

/// `GET /v1/rooms/{rid}/members`.
pub(crate) fn room_members(i: &Input<'_>) -> Result<Command, ApiError> {
    Ok(Command::RoomMembers {
        id: i.params.group()?,
        query: list_query(i.query)?,
    })
}

/// `PUT /v1/rooms/{rid}/members/{uid}`.
pub(crate) fn join_room(i: &Input<'_>) -> Result<Command, ApiError> {
    Ok(Command::JoinRoom {
        room: i.params.group()?,
        user: i.params.user()?,
    })
}

/// `DELETE /v1/rooms/{rid}/members/{uid}`.
pub(crate) fn leave_room(i: &Input<'_>) -> Result<Command, ApiError> {
    Ok(Command::LeaveRoom {
        room: i.params.group()?,
        user: i.params.user()?,
    })
}

/// `GET /v1/groups/{gid}/requests`.
pub(crate) fn requests(i: &Input<'_>) -> Result<Command, ApiError> {
    Ok(Command::Requests {
        group: i.params.group()?,
    })
}

/// `DELETE /v1/groups/{gid}/requests/{uid}`.
pub(crate) fn withdraw(i: &Input<'_>) -> Result<Command, ApiError> {
    Ok(Command::Withdraw {
        group: i.params.group()?,
        user: i.params.user()?,
    })
}

/// `GET /v1/groups/{gid}/bans`.
pub(crate) fn bans(i: &Input<'_>) -> Result<Command, ApiError> {
    Ok(Command::Bans {
        group: i.params.group()?,
    })
}

/// `PUT /v1/groups/{gid}/bans/{uid}`.
pub(crate) fn ban(i: &Input<'_>) -> Result<Command, ApiError> {
    Ok(Command::Ban {
        group: i.params.group()?,
        user: i.params.user()?,
    })
}

/// `DELETE /v1/groups/{gid}/bans/{uid}`.
pub(crate) fn unban(i: &Input<'_>) -> Result<Command, ApiError> {
    Ok(Command::Unban {
        group: i.params.group()?,
        user: i.params.user()?,
    })
}

/// `GET /v1/conversations`.
pub(crate) fn conversations(i: &Input<'_>) -> Result<Command, ApiError> {
    Ok(Command::Conversations {
        query: list_query(i.query)?,
    })
}

/// `GET /v1/conversations/{cid}/messages`.
pub(crate) fn history(i: &Input<'_>) -> Result<Command, ApiError> {
    Ok(Command::History {
        conversation: i.params.conversation()?,
        query: history_query(i.query)?,
    })
}

/// `POST /v1/conversations/{cid}/messages`.
pub(crate) fn send(i: &Input<'_>) -> Result<Command, ApiError> {
    let body: SendBody = i
        .json()?
        .ok_or_else(|| ApiError::BadJson("a request body is required".into()))?;
    Ok(Command::Send {
        conversation: i.params.conversation()?,
        request: send_request(body, i.limits)?,
    })
}

/// `GET /v1/conversations/{cid}/messages/{seq}`.
pub(crate) fn message(i: &Input<'_>) -> Result<Command, ApiError> {
    Ok(Command::Message {
        conversation: i.params.conversation()?,
        seq: i.params.seq()?,
    })
}

/// `PATCH /v1/conversations/{cid}/messages/{seq}`.
pub(crate) fn edit(i: &Input<'_>) -> Result<Command, ApiError> {
    let body: EditBody = i
        .json()?
        .ok_or_else(|| ApiError::BadJson("a request body is required".into()))?;
    Ok(Command::Edit {
        conversation: i.params.conversation()?,
        seq: i.params.seq()?,
        body: im_engine::Body::from_raw(body.body, i.limits.body_bytes)?,
    })
}

/// `DELETE /v1/conversations/{cid}/messages/{seq}`.
pub(crate) fn delete(i: &Input<'_>) -> Result<Command, ApiError> {
    Ok(Command::Delete {
        conversation: i.params.conversation()?,
        seq: i.params.seq()?,
    })
}

/// `PUT /v1/conversations/{cid}/messages/{seq}/reactions/{key}`.
pub(crate) fn react(i: &Input<'_>) -> Result<Command, ApiError> {
    reaction(i, true)
}

/// `DELETE /v1/conversations/{cid}/messages/{seq}/reactions/{key}`.
pub(crate) fn unreact(i: &Input<'_>) -> Result<Command, ApiError> {
    reaction(i, false)
}

fn reaction(i: &Input<'_>, add: bool) -> Result<Command, ApiError> {
    Ok(Command::React {
        conversation: i.params.conversation()?,
        seq: i.params.seq()?,
        key: i.params.key()?,
        add,
    })
}

/// `GET /v1/conversations/{cid}/messages/{seq}/reactions`.
pub(crate) fn reactions(i: &Input<'_>) -> Result<Command, ApiError> {
    Ok(Command::Reactions {
        conversation: i.params.conversation()?,
        seq: i.params.seq()?,
    })
}

/// `POST /v1/conversations/{cid}/read`.
pub(crate) fn mark_read(i: &Input<'_>) -> Result<Command, ApiError> {
    let body: ReadBody = i.json()?.unwrap_or_default();
    Ok(Command::MarkRead {
        conversation: i.params.conversation()?,
        seq: body.seq,
    })
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TypingBody {
    #[serde(default = "yes")]
    typing: bool,
}

fn yes() -> bool {
    true
}

/// `POST /v1/conversations/{cid}/typing`.
pub(crate) fn typing(i: &Input<'_>) -> Result<Command, ApiError> {
    let body: Option<TypingBody> = i.json()?;
    Ok(Command::Typing {
        conversation: i.params.conversation()?,
        typing: body.is_none_or(|b| b.typing),
    })
}

/// `GET /v1/conversations/{cid}/reads`: `?after=<uid>&limit=`.
pub(crate) fn reads(i: &Input<'_>) -> Result<Command, ApiError> {
    Ok(Command::Reads {
        conversation: i.params.conversation()?,
        after: i.query.get("after").map(UserId::new).transpose()?,
        limit: i.query.number("limit")?,
    })
}

/// The answer to what a command answered, as `viewer` sees it (messages'
/// reactions are counted for it).
pub(crate) fn respond(outcome: Outcome, viewer: &UserId, metrics: &Metrics) -> Response<BoxBody> {
    let ok = StatusCode::OK;
    match outcome {
        Outcome::Profile(profile, created) => json(created_or_ok(created), &profile),
        Outcome::Done => json(ok, &json!({"ok": true})),
        Outcome::NoContent => {
            let mut resp = Response::new(full(Bytes::new()));
            *resp.status_mut() = StatusCode::NO_CONTENT;
            resp
        }
        Outcome::Contacts(p) => json(ok, &listed("contacts", &p.items, p.has_more, &p.next)),
        Outcome::Group(group, created) => json(created_or_ok(created), &group),
        Outcome::Members(p) => json(ok, &listed("members", &p.items, p.has_more, &p.next)),
        Outcome::Requested => json(StatusCode::ACCEPTED, &json!({"status": "requested"})),
        Outcome::Requests(requests) => json(ok, &json!({ "requests": requests })),
        Outcome::Blocks(blocks) => json(ok, &json!({ "blocks": blocks })),
        Outcome::Bans(bans) => json(ok, &json!({ "bans": bans })),
        Outcome::Sent(message, new) => {
            if new {
                metrics.message_sent();
            }
            json(created_or_ok(new), &message.view(viewer))
        }
        Outcome::History(page) => json(ok, &page.view(viewer)),
        Outcome::Message(message) => json(ok, &message.view(viewer)),
        Outcome::Read(state) => json(ok, &state),
        Outcome::Conversations(p) => {
            let rows: Vec<_> = p.items.iter().map(|c| c.view(viewer)).collect();
            json(ok, &listed("conversations", &rows, p.has_more, &p.next))
        }
        Outcome::Reactions(list) => {
            let rows: Vec<_> = list
                .iter()
                .map(|(key, users)| json!({"key": key, "users": users}))
                .collect();
            json(ok, &json!({ "reactions": rows }))
        }
        Outcome::Feed(poll) => crate::sse::poll_answer(&poll, viewer),
        Outcome::Reads(page) => json(ok, &page),
        Outcome::Signalled => no_content(),
    }
}

fn no_content() -> Response<BoxBody> {
    let mut resp = Response::new(full(Vec::new()));
    *resp.status_mut() = StatusCode::NO_CONTENT;
    resp
}

fn created_or_ok(created: bool) -> StatusCode {
    if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    }
}

/// `GET /healthz`: 200 when the store answers.
pub(crate) async fn healthz<S: Store>(
    app: &App<S>,
    name: &'static str,
) -> Result<Response<BoxBody>, ApiError> {
    app.metrics().timed(name, app.engine().ping()).await?;
    Ok(json(StatusCode::OK, &json!({"ok": true})))
}

/// `GET /livez`: 200 while the process runs. It calls nothing, so a store
/// outage never gets a healthy process restarted.
pub(crate) fn livez() -> Response<BoxBody> {
    json(StatusCode::OK, &json!({"ok": true}))
}

/// `GET /readyz`: 200 when the store answers and the server is not shutting
/// down, so a load balancer sends new requests elsewhere while it drains.
pub(crate) async fn readyz<S: Store>(
    app: &App<S>,
    name: &'static str,
) -> Result<Response<BoxBody>, ApiError> {
    if app.is_shutting_down() {
        return Err(ApiError::ShuttingDown);
    }
    app.metrics().timed(name, app.engine().ping()).await?;
    Ok(json(StatusCode::OK, &json!({"ok": true})))
}

/// `GET /metrics`, for admins.
pub(crate) fn metrics<S: Store>(
    app: &App<S>,
    actor: &Actor,
    headers: &HeaderMap,
) -> Result<Response<BoxBody>, ApiError> {
    if !actor.admin {
        return Err(ApiError::Forbidden("metrics need an admin token".into()));
    }
    Ok(metrics_answer(app, headers))
}

/// The metrics, in OpenMetrics text when the scraper asks for it (as
/// Prometheus does), else in the Prometheus text format.
pub(crate) fn metrics_answer<S: Store>(app: &App<S>, headers: &HeaderMap) -> Response<BoxBody> {
    let openmetrics = headers
        .get_all(ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.contains("application/openmetrics-text"));
    let mut resp = Response::new(full(app.metrics().render(openmetrics)));
    resp.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static(if openmetrics {
            "application/openmetrics-text; version=1.0.0; charset=utf-8"
        } else {
            "text/plain; version=0.0.4; charset=utf-8"
        }),
    );
    resp
}

/// A page of a list: `{"<name>": [...], "has_more": bool, "next": cursor or null}`.
fn listed<T: serde::Serialize>(
    name: &str,
    items: &[T],
    has_more: bool,
    next: &Option<String>,
) -> serde_json::Value {
    json!({ name: items, "has_more": has_more, "next": next })
}
