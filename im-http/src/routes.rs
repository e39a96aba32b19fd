//! The route table: every route the server answers, each declared once
//! with its method, path pattern, whether it needs a token and its name.
//! The matcher, the `Allow` list of a 405, the token check, the metric
//! labels and the OpenAPI cross-check (`openapi.rs`) all read [`ROUTES`].
//!
//! Adding a route takes a row here, its handler (for a REST route, a
//! function in `handlers` from the request to an [`im_engine::Command`])
//! and its entry in `openapi.json`; the tests below and in `openapi.rs`
//! check that the three agree.

use std::sync::LazyLock;

use hyper::Method;
use im_engine::{Command, Limits};

use crate::error::ApiError;
use crate::handlers::{self as h, Input};

/// One route of the table.
#[derive(Debug)]
pub struct Route {
    method: Method,
    pattern: &'static str,
    token: bool,
    name: &'static str,
    pub(crate) body: BodySpec,
    pub(crate) throttle: Throttle,
    pub(crate) handler: Handler,
}

impl Route {
    /// The method it answers.
    pub fn method(&self) -> &Method {
        &self.method
    }

    /// Its path pattern (`/v1/users/{uid}`): the path of its OpenAPI entry
    /// and the `route` label of its requests in the metrics and the log.
    pub fn pattern(&self) -> &'static str {
        self.pattern
    }

    /// Whether it needs a token.
    pub fn needs_token(&self) -> bool {
        self.token
    }

    /// Its name: the `op` label of the time its engine call takes in the
    /// metrics, and the `name` of its log line.
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// A route that needs a token, takes no body, and is not throttled.
    const fn token(
        method: Method,
        pattern: &'static str,
        name: &'static str,
        handler: Handler,
    ) -> Self {
        Self {
            method,
            pattern,
            token: true,
            name,
            body: BodySpec::None,
            throttle: Throttle::None,
            handler,
        }
    }

    /// A route anyone may call.
    const fn public(
        method: Method,
        pattern: &'static str,
        name: &'static str,
        handler: Handler,
    ) -> Self {
        let mut route = Self::token(method, pattern, name, handler);
        route.token = false;
        route
    }

    /// Takes a JSON body of at most `limit` bytes; an empty one is fine
    /// unless `required`.
    const fn body(mut self, limit: fn(&Limits) -> usize, required: bool) -> Self {
        self.body = BodySpec::Json { limit, required };
        self
    }

    /// Counts against the caller's send rate.
    const fn throttled(mut self) -> Self {
        self.throttle = Throttle::Sends;
        self
    }

    /// Counts against the caller's rate of password guesses.
    const fn guesses_password(mut self) -> Self {
        self.throttle = Throttle::PasswordGuess;
        self
    }
}

/// What a route does with a request that reached it.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Handler {
    /// Parses the request into an engine command, which
    /// [`Engine::execute`](im_engine::Engine::execute) runs: every REST
    /// route of `/v1/`.
    Command(fn(&Input<'_>) -> Result<Command, ApiError>),
    /// `GET /healthz`: the store answers.
    Healthz,
    /// `GET /livez`: the process runs.
    Livez,
    /// `GET /readyz`: the store answers and the server is not shutting down.
    Readyz,
    /// `GET /openapi.json`.
    OpenApi,
    /// `GET /metrics`, for admins.
    Metrics,
    /// A file of the web page: `{file}`, or `index.html` without one.
    Web,
    /// `GET /v1/events`: an event stream or a long poll, which hold the
    /// request open and so are no engine command.
    Events,
    /// `POST /v1/login`: a password for a token, which the server signs;
    /// it has no caller to run a command as.
    Login,
    /// `GET /v1/admin/export`: the store as JSON Lines, streamed.
    Export,
    /// `GET /v1/admin/events`: the firehose, a stream or a long poll.
    Firehose,
}

/// The body a route reads.
#[derive(Debug, Clone, Copy)]
pub(crate) enum BodySpec {
    /// None: a body sent anyway is not read.
    None,
    /// A JSON body of at most `limit` bytes for the engine's limits.
    Json {
        limit: fn(&Limits) -> usize,
        required: bool,
    },
}

/// The rate limit a route counts against, checked right after the token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Throttle {
    /// None.
    None,
    /// The caller's sends.
    Sends,
    /// The caller's password guesses (a change that checks the old one).
    PasswordGuess,
}

const GET: Method = Method::GET;
const PUT: Method = Method::PUT;
const POST: Method = Method::POST;
const DELETE: Method = Method::DELETE;
const PATCH: Method = Method::PATCH;
use Handler::Command as C;

/// Every route the server answers, one per line: method, pattern, name,
/// handler, then the body it reads and its rate limit, if any. Where a
/// path has several methods, its 405 lists them in the order of this table.
#[rustfmt::skip]
pub const ROUTES: &[Route] = &[
    Route::public(GET, "/healthz", "ping", Handler::Healthz),
    Route::public(GET, "/livez", "livez", Handler::Livez),
    Route::public(GET, "/readyz", "readyz", Handler::Readyz),
    Route::public(GET, "/openapi.json", "openapi", Handler::OpenApi),
    Route::public(GET, "/", "web", Handler::Web),
    Route::public(GET, "/web/{file}", "web", Handler::Web),
    Route::token(GET, "/metrics", "metrics", Handler::Metrics),
    Route::token(GET, "/v1/users/{uid}", "user", C(h::user)),
    Route::token(PUT, "/v1/users/{uid}", "put_user", C(h::put_user)).body(h::fields_body_limit, false),
    Route::token(DELETE, "/v1/users/{uid}", "erase_user", C(h::erase_user)),
    Route::token(PUT, "/v1/users/{uid}/password", "set_password", C(h::set_password)).body(h::password_body_limit, true).guesses_password(),
    Route::public(POST, "/v1/login", "login", Handler::Login).body(h::password_body_limit, true),
    Route::token(GET, "/v1/contacts", "contacts", C(h::contacts)),
    Route::token(PUT, "/v1/contacts/{uid}", "link", C(h::link)),
    Route::token(DELETE, "/v1/contacts/{uid}", "unlink", C(h::unlink)),
    Route::token(GET, "/v1/blocks", "blocks", C(h::blocks)),
    Route::token(PUT, "/v1/blocks/{uid}", "block", C(h::block)),
    Route::token(DELETE, "/v1/blocks/{uid}", "unblock", C(h::unblock)),
    Route::token(GET, "/v1/groups/{gid}", "group", C(h::group)),
    Route::token(PUT, "/v1/groups/{gid}", "put_group", C(h::put_group)).body(h::fields_body_limit, false),
    Route::token(GET, "/v1/groups/{gid}/members", "members", C(h::members)),
    Route::token(PUT, "/v1/groups/{gid}/members/{uid}", "join", C(h::join)),
    Route::token(DELETE, "/v1/groups/{gid}/members/{uid}", "leave", C(h::leave)),
    Route::token(GET, "/v1/groups/{gid}/requests", "requests", C(h::requests)),
    Route::token(DELETE, "/v1/groups/{gid}/requests/{uid}", "withdraw", C(h::withdraw)),
    Route::token(GET, "/v1/groups/{gid}/bans", "bans", C(h::bans)),
    Route::token(PUT, "/v1/groups/{gid}/bans/{uid}", "ban", C(h::ban)),
    Route::token(DELETE, "/v1/groups/{gid}/bans/{uid}", "unban", C(h::unban)),
    Route::token(GET, "/v1/rooms/{rid}", "room", C(h::room)),
    Route::token(PUT, "/v1/rooms/{rid}", "put_room", C(h::put_room)).body(h::fields_body_limit, false),
    Route::token(GET, "/v1/rooms/{rid}/members", "room_members", C(h::room_members)),
    Route::token(PUT, "/v1/rooms/{rid}/members/{uid}", "join_room", C(h::join_room)),
    Route::token(DELETE, "/v1/rooms/{rid}/members/{uid}", "leave_room", C(h::leave_room)),
    Route::token(GET, "/v1/conversations", "conversations", C(h::conversations)),
    Route::token(GET, "/v1/conversations/{cid}/messages", "history", C(h::history)),
    Route::token(POST, "/v1/conversations/{cid}/messages", "send", C(h::send)).body(h::send_body_limit, true).throttled(),
    Route::token(GET, "/v1/conversations/{cid}/messages/{seq}", "message", C(h::message)),
    Route::token(PATCH, "/v1/conversations/{cid}/messages/{seq}", "edit", C(h::edit)).body(h::send_body_limit, true).throttled(),
    Route::token(DELETE, "/v1/conversations/{cid}/messages/{seq}", "delete", C(h::delete)),
    Route::token(GET, "/v1/conversations/{cid}/messages/{seq}/reactions", "reactions", C(h::reactions)),
    Route::token(PUT, "/v1/conversations/{cid}/messages/{seq}/reactions/{key}", "react", C(h::react)).throttled(),
    Route::token(DELETE, "/v1/conversations/{cid}/messages/{seq}/reactions/{key}", "unreact", C(h::unreact)).throttled(),
    Route::token(POST, "/v1/conversations/{cid}/read", "mark_read", C(h::mark_read)).body(h::small_body_limit, false),
    Route::token(GET, "/v1/conversations/{cid}/reads", "reads", C(h::reads)),
    Route::token(POST, "/v1/conversations/{cid}/typing", "typing", C(h::typing)).body(h::small_body_limit, false).throttled(),
    Route::token(GET, "/v1/events", "events", Handler::Events),
    Route::token(GET, "/v1/admin/export", "export", Handler::Export),
    Route::token(GET, "/v1/admin/events", "firehose", Handler::Firehose),
];

/// A request matched to its route, with its raw path parameters.
#[derive(Debug)]
pub(crate) struct Matched<'p> {
    pub(crate) route: &'static Route,
    pub(crate) params: matchit::Params<'static, 'p>,
}

/// The routes of one path pattern.
#[derive(Debug)]
struct Path {
    pattern: &'static str,
    routes: Vec<&'static Route>,
    allow: Vec<Method>,
}

/// The matcher, built once from [`ROUTES`]: path patterns to their routes.
static ROUTER: LazyLock<matchit::Router<Path>> = LazyLock::new(|| {
    let mut paths: Vec<Path> = Vec::new();
    for route in ROUTES {
        match paths.iter_mut().find(|p| p.pattern == route.pattern) {
            Some(path) => {
                path.routes.push(route);
                path.allow.push(route.method.clone());
            }
            None => paths.push(Path {
                pattern: route.pattern,
                routes: vec![route],
                allow: vec![route.method.clone()],
            }),
        }
    }
    let mut router = matchit::Router::new();
    for path in paths {
        let pattern = path.pattern;
        router
            .insert(pattern, path)
            .unwrap_or_else(|e| panic!("route table: {pattern}: {e}"));
    }
    router
});

/// Matches a request to its route. Answers the label of its metrics and
/// log line (the route's pattern, or `unmatched`) and the match, or the
/// 404 or 405 (with the path's methods, for `Allow`) to answer.
pub(crate) fn route<'p>(
    method: &Method,
    path: &'p str,
) -> (&'static str, Result<Matched<'p>, ApiError>) {
    let Ok(found) = ROUTER.at(path) else {
        return ("unmatched", Err(ApiError::NoRoute));
    };
    let path = found.value;
    match path.routes.iter().find(|r| r.method == *method) {
        Some(&route) => (
            path.pattern,
            Ok(Matched {
                route,
                params: found.params,
            }),
        ),
        None => (path.pattern, Err(ApiError::MethodNotAllowed(&path.allow))),
    }
}

/// The pattern of `path` and the methods its routes answer, for a CORS
/// preflight; `None` when no route has this path.
pub(crate) fn methods(path: &str) -> Option<(&'static str, &'static [Method])> {
    let found = ROUTER.at(path).ok()?;
    Some((found.value.pattern, &found.value.allow))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::extract::Query;
    use crate::handlers::Params;

    /// A path of `pattern` with every `{param}` filled in.
    fn example(pattern: &str) -> String {
        pattern
            .replace("{uid}", "alice")
            .replace("{gid}", "g1")
            .replace("{rid}", "r1")
            .replace("{cid}", "dm:alice:bob")
            .replace("{seq}", "1")
            .replace("{key}", "ok")
            .replace("{file}", "app.js")
    }

    #[test]
    fn every_route_reads_its_example_request() {
        let limits = Limits::default();
        for r in ROUTES {
            let path = example(r.pattern());
            let (_, matched) = route(r.method(), &path);
            let params = Params::parse(&matched.unwrap().params)
                .unwrap_or_else(|e| panic!("{} {}: {e:?}", r.method(), r.pattern()));
            if let Handler::Command(parse) = r.handler {
                assert!(
                    r.needs_token(),
                    "{} {} runs as its caller",
                    r.method(),
                    r.pattern()
                );
                let body = match r.body {
                    BodySpec::Json { required: true, .. } if r.name() == "set_password" => {
                        Some(&br#"{"password": "long enough"}"#[..])
                    }
                    BodySpec::Json { required: true, .. } => Some(&br#"{"body": {}}"#[..]),
                    _ => None,
                };
                let input = Input {
                    params: &params,
                    query: &Query::new(None),
                    body,
                    limits: &limits,
                };
                parse(&input).unwrap_or_else(|e| panic!("{} {}: {e:?}", r.method(), r.pattern()));
            }
        }
    }

    #[test]
    fn a_wrong_method_is_answered_with_the_paths_methods_in_table_order() {
        let mut allow: BTreeMap<&str, Vec<&Method>> = BTreeMap::new();
        for r in ROUTES {
            allow.entry(r.pattern()).or_default().push(r.method());
        }
        assert_eq!(allow["/v1/conversations/{cid}/messages"], [&GET, &POST]);
        for (pattern, methods) in allow {
            let path = example(pattern);
            // No route answers TRACE.
            match route(&Method::TRACE, &path) {
                (label, Err(ApiError::MethodNotAllowed(listed))) => {
                    assert_eq!(label, pattern);
                    assert_eq!(listed.iter().collect::<Vec<_>>(), methods);
                }
                other => panic!("TRACE {path}: {other:?}"),
            }
        }
        assert!(matches!(
            route(&GET, "/v1/nothing"),
            ("unmatched", Err(ApiError::NoRoute))
        ));
    }

    #[test]
    fn each_method_and_pattern_is_declared_once() {
        for (i, a) in ROUTES.iter().enumerate() {
            for b in &ROUTES[..i] {
                assert!(
                    (a.method(), a.pattern()) != (b.method(), b.pattern()),
                    "{} {} twice",
                    a.method(),
                    a.pattern()
                );
            }
        }
    }
}
