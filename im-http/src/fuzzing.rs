//! What the fuzz targets in `fuzz/` run, here so that ordinary tests replay
//! their corpora on stable (`tests/fuzz_corpus.rs`). Compiled only with the
//! `fuzzing` feature, which `fuzz/` and `./scripts/test` turn on. Not part
//! of the crate's API: no stability promise.
//!
//! Each function takes the fuzzer's bytes, feeds them to the same code the
//! server runs on a request, and panics only when a property fails: every
//! parser answers `Ok` or an `ApiError` of status 400 or 401 and never
//! panics, and what parses round-trips.

use hyper::header::{HeaderMap, HeaderName, HeaderValue};
use hyper::{Method, StatusCode};
use im_engine::{ConversationId, Cursor, GroupId, Limits, Start, UserId};

use crate::auth::Auth;
use crate::error::ApiError;
use crate::extract::Query;
use crate::handlers::{self, GroupBody, Params, ReadBody, SendBody, UserBody};

/// The secret tokens are checked against.
pub const SECRET: &[u8] = b"fuzzing secret";

#[track_caller]
fn client_error(e: &ApiError, allowed: &[StatusCode]) {
    assert!(allowed.contains(&e.status()), "{e:?} is {}", e.status());
}

/// The body of a route: the first byte picks `PUT /v1/users/{uid}`,
/// `PUT /v1/groups/{gid}`, `POST …/messages` or `POST …/read`; the rest is
/// the body.
pub fn json_body(data: &[u8]) {
    let Some((&which, body)) = data.split_first() else {
        return;
    };
    let limits = Limits::default();
    let parsed_strictly = crate::strict_json::check(body).is_ok();
    let result = match which % 4 {
        0 => crate::strict_json::parse::<UserBody>(body).map(|_| ()),
        1 => crate::strict_json::parse::<GroupBody>(body).map(|_| ()),
        2 => crate::strict_json::parse::<SendBody>(body).and_then(|b| {
            let request = handlers::send_request(b, &limits)?;
            // A body that passed is one JSON object, without duplicate
            // keys, that parses again.
            let value: serde_json::Value =
                serde_json::from_str(request.body.get()).expect("a stored body parses");
            assert!(value.is_object(), "{}", request.body.get());
            crate::strict_json::check(request.body.get().as_bytes())
                .expect("a stored body is strict JSON");
            Ok(())
        }),
        _ => crate::strict_json::parse::<ReadBody>(body).map(|_| ()),
    };
    match result {
        Ok(()) => assert!(parsed_strictly),
        Err(e) => client_error(
            &e,
            &[StatusCode::BAD_REQUEST, StatusCode::PAYLOAD_TOO_LARGE],
        ),
    }
}

/// User, group and conversation ids, as text and as path segments.
pub fn ids(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let valid = |s: &str| {
        (1..=64).contains(&s.len())
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
            && s != "."
            && s != ".."
    };
    match UserId::new(text.as_ref()) {
        Ok(id) => {
            assert!(valid(&text));
            assert_eq!(id.as_str(), text);
        }
        Err(e) => {
            assert!(!valid(&text));
            client_error(&ApiError::from(e), &[StatusCode::BAD_REQUEST]);
        }
    }
    assert_eq!(GroupId::new(text.as_ref()).is_ok(), valid(&text));
    match text.parse::<ConversationId>() {
        Ok(c) => {
            let shown = c.to_string();
            assert_eq!(shown.parse::<ConversationId>().ok(), Some(c.clone()));
            if let ConversationId::Direct(a, b) = &c {
                assert!(a < b);
            }
        }
        Err(e) => client_error(&ApiError::from(e), &[StatusCode::BAD_REQUEST]),
    }
    // As a path: routing never panics, whatever the segments hold.
    for method in [Method::GET, Method::PUT, Method::POST, Method::DELETE] {
        for path in [
            format!("/v1/users/{text}"),
            format!("/v1/conversations/{text}/messages/{text}"),
            format!("/{text}"),
        ] {
            // A match's parameters parse, or are a 400.
            if let (_, Ok(matched)) = crate::routes::route(&method, &path)
                && let Err(e) = Params::parse(&matched.params)
            {
                client_error(&e, &[StatusCode::BAD_REQUEST]);
            }
        }
    }
}

/// The query string of a history page, a conversation list, a long poll.
pub fn query(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let q = Query::new(Some(&text));
    let bad = [StatusCode::BAD_REQUEST];
    if let Err(e) = handlers::history_query(&q) {
        client_error(&e, &bad);
    }
    for name in ["limit", "wait", "before", "after"] {
        match q.number::<u64>(name) {
            // One spelling per number: what parsed is written back as it came.
            Ok(Some(n)) => assert_eq!(q.get(name), Some(n.to_string().as_str())),
            Ok(None) => {}
            Err(e) => client_error(&e, &bad),
        }
        if let Err(e) = q.number::<usize>(name) {
            client_error(&e, &bad);
        }
    }
    match crate::sse::start(&HeaderMap::new(), &q) {
        Ok(start) => check_start(start),
        Err(e) => client_error(&e, &bad),
    }
    match handlers::message_seq(&text) {
        Ok(seq) => assert_eq!(seq.to_string(), text),
        Err(e) => client_error(&e, &bad),
    }
    if let Err(e) = Auth::new(SECRET).authenticate(&HeaderMap::new(), Some(&text)) {
        client_error(&e, &[StatusCode::UNAUTHORIZED]);
    }
}

fn check_start(start: Start) {
    if let Start::After(c) = start {
        assert_eq!(c.to_string().parse::<Cursor>().ok(), Some(c));
    }
}

/// A `Last-Event-ID` header (any bytes a header value may hold).
pub fn last_event_id(data: &[u8]) {
    let Ok(value) = HeaderValue::from_bytes(data) else {
        return;
    };
    let mut headers = HeaderMap::new();
    headers.insert(HeaderName::from_static("last-event-id"), value);
    match crate::sse::start(&headers, &Query::new(None)) {
        Ok(start) => check_start(start),
        Err(e) => client_error(&e, &[StatusCode::BAD_REQUEST]),
    }
}

/// A bearer token. The first byte picks how the rest is used: as the
/// token's text; as a claims payload signed with the right secret; or as a
/// header signed with the right secret over valid claims.
pub fn token(data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let auth = Auth::new(SECRET);
    let token = match mode % 3 {
        0 => String::from_utf8_lossy(rest).into_owned(),
        1 => sign(br#"{"alg":"HS256","typ":"JWT"}"#, rest),
        _ => sign(rest, br#"{"sub":"alice"}"#),
    };
    match auth.verify(&token) {
        Ok(actor) => {
            // Only what the server itself could have signed passes.
            let payload = token.split('.').nth(1).expect("three parts");
            let claims: serde_json::Value =
                serde_json::from_slice(&base64url_decode(payload)).expect("claims are JSON");
            assert_eq!(claims["sub"].as_str(), Some(actor.user.as_str()));
            assert_eq!(actor.admin, claims["admin"] == true);
        }
        Err(e) => client_error(&e, &[StatusCode::UNAUTHORIZED]),
    }
    let mut headers = HeaderMap::new();
    if let Ok(v) = HeaderValue::from_bytes(rest) {
        headers.insert(hyper::header::AUTHORIZATION, v);
        if let Err(e) = auth.authenticate(&headers, None) {
            client_error(&e, &[StatusCode::UNAUTHORIZED]);
        }
    }
}

/// A JWT over `header` and `payload`, signed with [`SECRET`].
fn sign(header: &[u8], payload: &[u8]) -> String {
    let message = format!("{}.{}", base64url(header), base64url(payload));
    let key = jsonwebtoken::EncodingKey::from_secret(SECRET);
    let signature =
        jsonwebtoken::crypto::sign(message.as_bytes(), &key, jsonwebtoken::Algorithm::HS256)
            .expect("HS256 signs anything");
    format!("{message}.{signature}")
}

const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

fn base64url(data: &[u8]) -> String {
    let mut out = String::new();
    for chunk in data.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, &b)| n | u32::from(b) << (16 - 8 * i));
        for i in 0..=chunk.len() {
            out.push(char::from(B64[(n >> (18 - 6 * i) & 63) as usize]));
        }
    }
    out
}

fn base64url_decode(text: &str) -> Vec<u8> {
    let mut bits = 0u32;
    let mut n = 0;
    let mut out = Vec::new();
    for c in text.bytes() {
        let Some(v) = B64.iter().position(|&b| b == c) else {
            break;
        };
        bits = bits << 6 | v as u32;
        n += 6;
        if n >= 8 {
            n -= 8;
            out.push((bits >> n) as u8);
        }
    }
    out
}

pub use commands::commands;

mod commands {
    use arbitrary::{Arbitrary, Unstructured};
    use im_engine::testing::model::MODEL_EPOCH;
    use im_engine::testing::state_machine::{EngineTest, Reference, Transition};
    use im_engine::{Actor, Command, Cursor, Epoch, Start, UserId};
    use proptest::strategy::{Strategy, ValueTree};
    use proptest::test_runner::TestRunner;
    use proptest_state_machine::{ReferenceStateMachine, StateMachineTest};

    // The memory store, for speed: a fuzzer runs thousands of sequences a
    // second.
    use im_engine::testing::Memory;

    /// One step, as the fuzzer's bytes spell it.
    #[derive(Debug, Arbitrary)]
    enum Step {
        /// A command; `who` under 32 makes the caller an admin.
        Do {
            user: UserId,
            who: u8,
            command: Command,
        },
        Tick(u8),
        Reopen,
    }

    impl Step {
        fn into_transition(self) -> Transition {
            match self {
                Self::Do { user, who, command } => {
                    let actor = if who < 32 {
                        Actor::admin(user)
                    } else {
                        Actor::user(user)
                    };
                    Transition::Do(actor, near(command))
                }
                Self::Tick(ms) => Transition::Tick(u64::from(ms % 4)),
                Self::Reopen => Transition::Reopen,
            }
        }
    }

    /// Feed cursors mostly of the store's own epoch, near its head, so
    /// that resuming is exercised rather than only resets; changes to
    /// messages that exist rather than only to missing ones.
    fn near(command: Command) -> Command {
        match command {
            Command::Feed {
                start: Start::After(c),
                limit,
            } => {
                let epoch = if c.epoch.0 % 8 == 7 {
                    Epoch(1)
                } else {
                    MODEL_EPOCH
                };
                Command::Feed {
                    start: Start::After(Cursor {
                        epoch,
                        pos: c.pos % 32,
                    }),
                    limit: limit % 64,
                }
            }
            // Messages that exist: a few seqs from 1.
            Command::Edit {
                conversation,
                seq,
                body,
            } => Command::Edit {
                conversation,
                seq: seq % 8,
                body,
            },
            Command::Delete { conversation, seq } => Command::Delete {
                conversation,
                seq: seq % 8,
            },
            Command::React {
                conversation,
                seq,
                key,
                add,
            } => Command::React {
                conversation,
                seq: seq % 8,
                key,
                add,
            },
            Command::Reactions { conversation, seq } => Command::Reactions {
                conversation,
                seq: seq % 8,
            },
            other => other,
        }
    }

    /// A command sequence (at most 64 steps) applied to the engine over a
    /// memory store and to the reference model, comparing every answer and,
    /// after every step, every user's conversation list, feed and every
    /// history: the model-based property test of `im_engine::testing`,
    /// driven by the fuzzer.
    ///
    /// # Panics
    ///
    /// When the engine and the model disagree.
    pub fn commands(data: &[u8]) {
        let u = Unstructured::new(data);
        let Ok(steps) = Vec::<Step>::arbitrary_take_rest(u) else {
            return;
        };
        let mut state = Reference::init_state()
            .new_tree(&mut TestRunner::deterministic())
            .expect("the initial state is a constant")
            .current();
        let mut sys = EngineTest::<Memory>::init_test(&state);
        for step in steps.into_iter().take(64) {
            let transition = step.into_transition();
            state = Reference::apply(state, &transition);
            sys = EngineTest::<Memory>::apply(sys, &state, transition);
            EngineTest::<Memory>::check_invariants(&sys, &state);
        }
    }
}
