//! The authorization matrix: every route of docs/API.md, called by every kind of
//! caller, each answered with the status docs/API.md gives it; and a refused
//! call changes nothing.
//!
//! Every cell runs on a fresh server seeded the same way, so cells do not
//! depend on each other: users root, alice, bob, carol; alice's group `g1`
//! (invite only) with bob in it, and her room `r1` likewise; one message
//! from alice in `dm:alice:bob`, one in `group:g1` and one in `room:r1`; alice's password `alice-password` (carol has
//! none). Callers: no token, a token signed with another
//! secret, an expired token, carol (a stranger to the group and the
//! conversation), bob (member, participant), alice (owner: of the group, of
//! her own profile; a participant of the direct conversation) and root
//! with an admin token.

use hyper::Method;
use im_engine::Store;
use serde_json::{Value, json};

use crate::common::{Client, SECRET, Server};

/// The kinds of caller, in the order of the matrix's columns.
const CALLERS: [&str; 11] = [
    "no token",
    "bad token",
    "expired",
    "stranger",
    "member",
    "owner",
    "admin",
    "requester",
    "banned",
    "blocked",
    "suspended",
];

/// Every route of docs/API.md, with a case for each rule of who may call it:
/// method, path, body (`-` for none), then the status for each caller of
/// [`CALLERS`] (no token, bad token, expired, stranger, member, owner,
/// admin; then requester, banned, blocked, suspended).
const MATRIX: &str = r#"
GET    /healthz                                   -                               200 200 200 200 200 200 200  200 200 200 200
GET    /livez                                     -                               200 200 200 200 200 200 200  200 200 200 200
GET    /readyz                                    -                               200 200 200 200 200 200 200  200 200 200 200
GET    /openapi.json                              -                               200 200 200 200 200 200 200  200 200 200 200
GET    /metrics                                   -                               401 401 401 403 403 403 200  403 403 403 403

# Anyone with a token reads a profile; only an admin creates one; the user
# itself (or an admin) updates it.
GET    /v1/users/alice                            -                               401 401 401 200 200 200 200  200 200 200 403
PUT    /v1/users/alice                            {"fields":{"name":"A"}}         401 401 401 403 403 200 200  403 403 403 403
PUT    /v1/users/dave                             {}                              401 401 401 403 403 403 201  403 403 403 403

# Contacts are the caller's own (alice is the owner here: no one is its own
# contact).
GET    /v1/contacts                               -                               401 401 401 200 200 200 200  200 200 200 403
PUT    /v1/contacts/alice                         -                               401 401 401 200 200 400 200  200 200 200 403
DELETE /v1/contacts/alice                         -                               401 401 401 200 200 200 200  200 200 200 403

# Groups: anyone reads one and creates one; the owner (or an admin) updates
# it and adds members to an invite-only group; members (and admins) list
# members; a member quits by itself, the owner removes anyone; the owner
# cannot leave its own group.
GET    /v1/groups/g1                              -                               401 401 401 200 200 200 200  200 200 200 403
PUT    /v1/groups/g1                              {"fields":{"topic":"x"}}        401 401 401 403 403 200 200  403 403 403 403
PUT    /v1/groups/g2                              {}                              401 401 401 201 201 201 201  201 201 201 403
GET    /v1/groups/g1/members                      -                               401 401 401 403 200 200 200  403 403 403 403
PUT    /v1/groups/g1/members/carol                -                               401 401 401 403 403 200 200  403 403 403 403
DELETE /v1/groups/g1/members/bob                  -                               401 401 401 403 200 200 200  403 403 403 403
DELETE /v1/groups/g1/members/alice                -                               401 401 401 403 403 409 409  403 403 403 403

# Conversations: participants only. An admin reads any of them and sends
# as a participant with `from`; as itself it is no participant and has no
# read cursor there. Only an admin may use `from`.
GET    /v1/conversations                          -                               401 401 401 200 200 200 200  200 200 200 403
POST   /v1/conversations/dm:alice:bob/messages    {"body":{"t":1}}                401 401 401 403 201 201 403  403 403 403 403
POST   /v1/conversations/group:g1/messages        {"body":{"t":1}}                401 401 401 403 201 201 403  403 403 403 403
POST   /v1/conversations/dm:alice:bob/messages    {"body":{"t":1},"from":"alice"} 401 401 401 403 403 201 201  403 403 403 403
POST   /v1/conversations/group:g1/messages        {"body":{"t":1},"from":"bob"}   401 401 401 403 201 403 201  403 403 403 403
GET    /v1/conversations/dm:alice:bob/messages    -                               401 401 401 403 200 200 200  403 403 403 403
GET    /v1/conversations/group:g1/messages        -                               401 401 401 403 200 200 200  403 403 403 403
GET    /v1/conversations/dm:alice:bob/messages/1  -                               401 401 401 403 200 200 200  403 403 403 403
GET    /v1/conversations/group:g1/messages/1      -                               401 401 401 403 200 200 200  403 403 403 403
POST   /v1/conversations/dm:alice:bob/read        {}                              401 401 401 403 200 200 403  403 403 403 403
POST   /v1/conversations/group:g1/read            {}                              401 401 401 403 200 200 403  403 403 403 403

# Live signals: participants type (an admin is none, as for the read
# cursor); participants and admins read every participant's cursor.
POST   /v1/conversations/dm:alice:bob/typing      {"typing":true}                 401 401 401 403 204 204 403  403 403 403 403
POST   /v1/conversations/group:g1/typing          -                               401 401 401 403 204 204 403  403 403 403 403
GET    /v1/conversations/dm:alice:bob/reads       -                               401 401 401 403 200 200 200  403 403 403 403
GET    /v1/conversations/group:g1/reads           -                               401 401 401 403 200 200 200  403 403 403 403

# Messages that change: the sender edits its message (or an admin); the
# sender or the group's owner deletes it (or an admin); participants react
# (an admin, no participant, has no reaction of its own) and read the
# reactions (as admins do). alice sent message 1 of both conversations.
PATCH  /v1/conversations/dm:alice:bob/messages/1  {"body":{"t":2}}                401 401 401 403 403 200 200  403 403 403 403
PATCH  /v1/conversations/group:g1/messages/1      {"body":{"t":2}}                401 401 401 403 403 200 200  403 403 403 403
DELETE /v1/conversations/dm:alice:bob/messages/1  -                               401 401 401 403 403 200 200  403 403 403 403
DELETE /v1/conversations/group:g1/messages/1      -                               401 401 401 403 403 200 200  403 403 403 403
PUT    /v1/conversations/dm:alice:bob/messages/1/reactions/ok -                   401 401 401 403 200 200 403  403 403 403 403
PUT    /v1/conversations/group:g1/messages/1/reactions/ok -                       401 401 401 403 200 200 403  403 403 403 403
DELETE /v1/conversations/group:g1/messages/1/reactions/ok -                       401 401 401 403 200 200 403  403 403 403 403
GET    /v1/conversations/group:g1/messages/1/reactions -                          401 401 401 403 200 200 200  403 403 403 403

# Rooms behave as groups (alice's room `r1`, invite only, with bob in it,
# and one message of alice's): anyone reads one and creates one, but not
# with a group's id (they share ids); the owner (or an admin) updates it and
# adds members; members (and admins) list members; a member quits, the
# owner removes anyone and never leaves. Every conversation route takes
# `room:r1` as it takes `group:g1`, typing included.
GET    /v1/rooms/r1                               -                               401 401 401 200 200 200 200  200 200 200 403
PUT    /v1/rooms/r1                               {"fields":{"topic":"x"}}        401 401 401 403 403 200 200  403 403 403 403
PUT    /v1/rooms/r2                               {"join":"open"}                 401 401 401 201 201 201 201  201 201 201 403
PUT    /v1/rooms/g1                               {}                              401 401 401 409 409 409 409  409 409 409 403
PUT    /v1/rooms/r1                               {"owner":"bob"}                 401 401 401 403 403 200 200  403 403 403 403
GET    /v1/rooms/r1/members                       -                               401 401 401 403 200 200 200  403 403 403 403
GET    /v1/rooms/r1/members?limit=1&after=alice   -                               401 401 401 403 200 200 200  403 403 403 403
PUT    /v1/rooms/r1/members/carol                 -                               401 401 401 403 403 200 200  403 403 403 403
DELETE /v1/rooms/r1/members/bob                   -                               401 401 401 403 200 200 200  403 403 403 403
DELETE /v1/rooms/r1/members/alice                 -                               401 401 401 403 403 409 409  403 403 403 403
POST   /v1/conversations/room:r1/messages         {"body":{"t":1}}                401 401 401 403 201 201 403  403 403 403 403
POST   /v1/conversations/room:r1/messages         {"body":{"t":1},"from":"bob"}   401 401 401 403 201 403 201  403 403 403 403
GET    /v1/conversations/room:r1/messages         -                               401 401 401 403 200 200 200  403 403 403 403
GET    /v1/conversations/room:r1/messages/1       -                               401 401 401 403 200 200 200  403 403 403 403
POST   /v1/conversations/room:r1/read             {}                              401 401 401 403 200 200 403  403 403 403 403
PATCH  /v1/conversations/room:r1/messages/1       {"body":{"t":2}}                401 401 401 403 403 200 200  403 403 403 403
DELETE /v1/conversations/room:r1/messages/1       -                               401 401 401 403 403 200 200  403 403 403 403
PUT    /v1/conversations/room:r1/messages/1/reactions/ok -                        401 401 401 403 200 200 403  403 403 403 403
GET    /v1/conversations/room:r1/messages/1/reactions -                           401 401 401 403 200 200 200  403 403 403 403
POST   /v1/conversations/room:r1/typing           -                               401 401 401 403 204 204 403  403 403 403 403
GET    /v1/conversations/room:r1/reads            -                               401 401 401 403 200 200 200  403 403 403 403

# Passwords: the user itself sets its own, with the old one once it has one
# (alice has one, carol none); an admin sets anyone's without it. Logging in
# takes no token, and any token sent along is not looked at (a suspended
# user's neither: the token it gets is refused where it is used).
PUT    /v1/users/alice/password                   {"password":"new-password","old_password":"alice-password"} 401 401 401 403 403 204 204  403 403 403 403
PUT    /v1/users/alice/password                   {"password":"new-password"}     401 401 401 403 403 403 204  403 403 403 403
PUT    /v1/users/carol/password                   {"password":"new-password"}     401 401 401 204 403 403 204  403 403 403 403
POST   /v1/login                                  {"user":"alice","password":"alice-password"} 200 200 200 200 200 200 200  200 200 200 200
POST   /v1/login                                  {"user":"alice","password":"new-password"} 401 401 401 401 401 401 401  401 401 401 401

# Each caller's own feed.
GET    /v1/events?wait=0                          -                               401 401 401 200 200 200 200  200 200 200 403
# Join requests (g3's join is approval; erin asked to join it): the user
# itself asks (202); the owner (or an admin) approves by adding it, lists
# the requests; the requester, the owner or an admin withdraws one.
PUT    /v1/groups/g3/members/erin                 -                               401 401 401 403 403 200 200  202 403 403 403
PUT    /v1/groups/g3/members/carol                -                               401 401 401 202 403 200 200  403 403 403 403
GET    /v1/groups/g3/requests                     -                               401 401 401 403 403 200 200  403 403 403 403
DELETE /v1/groups/g3/requests/erin                -                               401 401 401 403 403 200 200  200 403 403 403

# Bans (frank is banned from g1): the owner (or an admin) bans, lifts and
# lists them; nobody adds a banned user back; the owner is never banned.
GET    /v1/groups/g1/bans                         -                               401 401 401 403 403 200 200  403 403 403 403
PUT    /v1/groups/g1/bans/bob                     -                               401 401 401 403 403 200 200  403 403 403 403
PUT    /v1/groups/g1/bans/alice                   -                               401 401 401 403 403 409 409  403 403 403 403
DELETE /v1/groups/g1/bans/frank                   -                               401 401 401 403 403 200 200  403 403 403 403
PUT    /v1/groups/g1/members/frank                -                               401 401 401 403 403 403 403  403 403 403 403

# Blocks are the caller's own (alice blocks gina): no one blocks itself;
# no direct message between gina and alice commits, whoever sends it.
GET    /v1/blocks                                 -                               401 401 401 200 200 200 200  200 200 200 403
PUT    /v1/blocks/alice                           -                               401 401 401 200 200 400 200  200 200 200 403
DELETE /v1/blocks/alice                           -                               401 401 401 200 200 400 200  200 200 200 403
POST   /v1/conversations/dm:alice:gina/messages   {"body":{"t":1}}                401 401 401 403 403 403 403  403 403 403 403
POST   /v1/conversations/dm:alice:gina/messages   {"body":{"t":1},"from":"alice"} 401 401 401 403 403 403 403  403 403 403 403

# Admins suspend and erase users (hank is suspended, and may do nothing);
# a user who owns a group is erased once the group has another owner,
# which its owner (or an admin) hands over to a member.
PUT    /v1/users/carol                            {"suspended":true}              401 401 401 403 403 403 200  403 403 403 403
PUT    /v1/users/hank                             {"suspended":false}             401 401 401 403 403 403 200  403 403 403 403
DELETE /v1/users/carol                            -                               401 401 401 403 403 403 200  403 403 403 403
DELETE /v1/users/alice                            -                               401 401 401 403 403 403 409  403 403 403 403
PUT    /v1/groups/g1                              {"owner":"bob"}                 401 401 401 403 403 200 200  403 403 403 403

# Paging: the same rules on every page; a bad cursor is 400 after the token.
GET    /v1/contacts?limit=1&after=1:1:bob         -                               401 401 401 200 200 200 200  200 200 200 403
GET    /v1/groups/g1/members?limit=1&after=alice  -                               401 401 401 403 200 200 200  403 403 403 403
GET    /v1/conversations?after=bad                -                               401 401 401 400 400 400 400  400 400 400 403

# The whole store, for admins only: its export and its firehose.
GET    /v1/admin/export                           -                               401 401 401 403 403 403 200  403 403 403 403
GET    /v1/admin/events?wait=0                    -                               401 401 401 403 403 403 200  403 403 403 403
"#;

struct Row {
    method: Method,
    path: String,
    body: Option<Value>,
    expect: Vec<u16>,
}

fn matrix() -> Vec<Row> {
    MATRIX
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .map(|line| {
            let cols: Vec<&str> = line.split_whitespace().collect();
            assert_eq!(cols.len(), 3 + CALLERS.len(), "{line}");
            Row {
                method: cols[0].parse().unwrap(),
                path: cols[1].to_owned(),
                body: (cols[2] != "-").then(|| serde_json::from_str(cols[2]).unwrap()),
                expect: cols[3..].iter().map(|c| c.parse().unwrap()).collect(),
            }
        })
        .collect()
}

pub async fn seed(s: &Server) {
    let admin = s.admin();
    for u in [
        "root", "alice", "bob", "carol", "erin", "frank", "gina", "hank",
    ] {
        let r = admin.put(&format!("/v1/users/{u}"), json!({})).await;
        assert_eq!(r.status, 201, "{}", r.text());
    }
    let alice = s.client("alice");
    assert_eq!(alice.put("/v1/groups/g1", json!({})).await.status, 201);
    assert_eq!(
        alice
            .put("/v1/groups/g1/members/bob", json!({}))
            .await
            .status,
        200
    );
    assert_eq!(alice.put("/v1/rooms/r1", json!({})).await.status, 201);
    assert_eq!(
        alice
            .put("/v1/rooms/r1/members/bob", json!({}))
            .await
            .status,
        200
    );
    for c in ["dm:alice:bob", "group:g1", "room:r1"] {
        assert_eq!(alice.send(c, json!({"text": "hi"})).await.status, 201);
    }
    let g3 = alice
        .put("/v1/groups/g3", json!({"join": "approval"}))
        .await;
    assert_eq!(g3.status, 201);
    let erin = s.client("erin");
    assert_eq!(
        erin.put("/v1/groups/g3/members/erin", json!(null))
            .await
            .status,
        202
    );
    for step in [
        "/v1/groups/g1/members/frank",
        "/v1/groups/g1/bans/frank",
        "/v1/blocks/gina",
    ] {
        assert_eq!(alice.put(step, json!(null)).await.status, 200, "{step}");
    }
    let r = admin
        .put("/v1/users/hank", json!({"suspended": true}))
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let r = admin
        .put(
            "/v1/users/alice/password",
            json!({"password": "alice-password"}),
        )
        .await;
    assert_eq!(r.status, 204, "{}", r.text());
}

fn caller(s: &Server, kind: &str) -> Client {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    match kind {
        "no token" => s.anonymous(),
        "bad token" => s.anonymous().with_token(
            &im_http::Auth::new(b"another secret")
                .token(&"alice".parse().unwrap(), true, None)
                .unwrap(),
        ),
        "expired" => s.anonymous().with_token(
            &jsonwebtoken::encode(
                &jsonwebtoken::Header::default(),
                &json!({"sub": "alice", "admin": true, "exp": now - 1}),
                &jsonwebtoken::EncodingKey::from_secret(SECRET),
            )
            .unwrap(),
        ),
        "stranger" => s.client("carol"),
        "member" => s.client("bob"),
        "owner" => s.client("alice"),
        "admin" => s.admin(),
        "requester" => s.client("erin"),
        "banned" => s.client("frank"),
        "blocked" => s.client("gina"),
        "suspended" => s.client("hank"),
        other => unreachable!("{other}"),
    }
}

/// Everything a caller could have changed, read by the admin and by each
/// user for what is theirs, without presence (which reading a feed moves).
pub async fn snapshot(s: &Server) -> Value {
    let admin = s.admin();
    let mut out = serde_json::Map::new();
    for u in ["root", "alice", "bob", "carol", "dave"] {
        // The stored password hash, which no answer shows: a new one (a
        // new salt) on every change.
        let stored = s.app.engine().store().user(&u.parse().unwrap()).await;
        let hash = stored.unwrap().map(|user| user.password);
        out.insert(format!("password {u}"), serde_json::to_value(hash).unwrap());
    }
    let mut put = |key: String, r: crate::common::Resp| {
        let mut v = if r.body.is_empty() {
            Value::Null
        } else {
            r.json()
        };
        if let Some(p) = v.as_object_mut() {
            p.remove("online");
            p.remove("last_seen");
        }
        out.insert(key, json!({"status": r.status, "body": v}));
    };
    for u in [
        "root", "alice", "bob", "carol", "dave", "erin", "frank", "gina", "hank",
    ] {
        put(
            format!("user {u}"),
            admin.get(&format!("/v1/users/{u}")).await,
        );
        let me = s.client(u);
        let mut contacts = me.get("/v1/contacts").await;
        if contacts.status == 200 {
            let mut v = contacts.json();
            for c in v["contacts"].as_array_mut().unwrap() {
                c.as_object_mut().unwrap().remove("online");
            }
            contacts.body = serde_json::to_vec(&v).unwrap().into();
        }
        put(format!("contacts {u}"), contacts);
        put(
            format!("conversations {u}"),
            me.get("/v1/conversations").await,
        );
        put(format!("blocks {u}"), me.get("/v1/blocks").await);
        put(
            format!("feed {u}"),
            me.request(Method::GET, "/v1/events?after=0&wait=0")
                .header("accept", "application/json")
                .send()
                .await,
        );
    }
    for g in ["g1", "g2", "g3"] {
        for what in ["", "/members", "/requests", "/bans"] {
            put(
                format!("group {g}{what}"),
                admin.get(&format!("/v1/groups/{g}{what}")).await,
            );
        }
    }
    for r in ["r1", "r2", "g1"] {
        for what in ["", "/members"] {
            put(
                format!("room {r}{what}"),
                admin.get(&format!("/v1/rooms/{r}{what}")).await,
            );
        }
    }
    for c in [
        "dm:alice:bob",
        "group:g1",
        "room:r1",
        "dm:alice:carol",
        "dm:bob:carol",
        "dm:alice:gina",
    ] {
        put(
            format!("history {c}"),
            admin.get(&format!("/v1/conversations/{c}/messages")).await,
        );
    }
    Value::Object(out)
}

/// Calls `row` as `kind` on a fresh server: `Err` with what was wrong when
/// the status is not `expect`; panics when a refused call changed state.
async fn cell(row: &Row, kind: &str, expect: u16) -> Result<(), String> {
    let s = Server::start().await;
    seed(&s).await;
    let before = if expect >= 400 {
        Some(snapshot(&s).await)
    } else {
        None
    };
    let mut req = caller(&s, kind)
        .request(row.method.clone(), &row.path)
        .header("accept", "application/json");
    if let Some(body) = &row.body {
        req = req.json(body);
    }
    let r = req.send().await;
    if r.status != expect {
        return Err(format!(
            "{} {} as {kind}: {} (want {expect}) {}",
            row.method,
            row.path,
            r.status,
            r.text()
        ));
    }
    if let Some(before) = before {
        r.assert_error(expect, &r.code());
        let after = snapshot(&s).await;
        assert_eq!(
            before, after,
            "{} {} as {kind} was refused but changed state",
            row.method, row.path
        );
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_answers_every_caller_as_api_md_says() {
    use futures_util::StreamExt;
    let rows = matrix();
    let cells = rows.iter().flat_map(|row| {
        CALLERS
            .iter()
            .zip(&row.expect)
            .map(move |(kind, &expect)| cell(row, kind, expect))
    });
    // Each cell has a server of its own: several run at once.
    let wrong: Vec<String> = futures_util::stream::iter(cells)
        .buffer_unordered(8)
        .filter_map(|r| async move { r.err() })
        .collect()
        .await;
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}
