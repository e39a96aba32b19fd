//! The conformance cases of the host's hooks: a refusing or rewriting
//! before-send hook, its time limit, and an after-commit hook that is slow.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Semaphore;

use super::StoreFactory;
use super::conformance::{body, conv, feed_messages, gid, me, root, uid};
use crate::data::Membership;
use crate::{
    Body, Committed, Config, Engine, Error, Event, HOOK_UNAVAILABLE, HistoryQuery, HookConfig,
    HookFuture, Hooks, NewMessage, OnTimeout, REFUSED, SendRequest, Store, Verdict,
};

/// Refuses bodies with `spam` (code `spam`), with `bad code` (code
/// `Bad Code`, which is no code), answers nothing for `ask later`, and
/// replaces `darn` by `{"text":"***"}` and `huge` by a body over any test
/// limit.
#[derive(Debug)]
struct WordFilter;

impl Hooks for WordFilter {
    fn before_send<'a>(&'a self, m: &'a NewMessage) -> HookFuture<'a, Verdict> {
        let text = m.body.get();
        let verdict = if text.contains("spam") {
            Verdict::refuse("spam", "no spam here")
        } else if text.contains("bad code") {
            Verdict::refuse("Bad Code", "refused with a bad code")
        } else if text.contains("ask later") {
            Verdict::NoAnswer
        } else if text.contains("darn") {
            Verdict::Replace(Body::new(r#"{"text":"***"}"#, 1024).expect("valid body"))
        } else if text.contains("huge") {
            let huge = format!(r#"{{"text":"{}"}}"#, "x".repeat(2000));
            Verdict::Replace(Body::new(&huge, usize::MAX).expect("valid body"))
        } else {
            Verdict::Allow
        };
        Box::pin(std::future::ready(verdict))
    }
}

/// A before-send hook that never answers.
#[derive(Debug)]
struct Silent;

impl Hooks for Silent {
    fn before_send<'a>(&'a self, _: &'a NewMessage) -> HookFuture<'a, Verdict> {
        Box::pin(std::future::pending())
    }
}

/// An after-commit hook that waits for a permit per event, and keeps what
/// it heard.
#[derive(Debug)]
struct Gated {
    permits: Semaphore,
    heard: Mutex<Vec<Committed>>,
}

impl Hooks for Gated {
    fn after_commit<'a>(&'a self, event: &'a Committed) -> HookFuture<'a, ()> {
        Box::pin(async move {
            self.permits.acquire().await.expect("open").forget();
            self.heard.lock().expect("not poisoned").push(event.clone());
        })
    }
}

fn text(s: &str) -> Body {
    Body::new(&format!(r#"{{"text":"{s}"}}"#), 1024).expect("valid test body")
}

/// A store from `F` under an engine with `hooks` and `config`, with users
/// alice, bob and carol.
async fn hooked<F: StoreFactory>(
    hooks: Arc<dyn Hooks>,
    config: Config,
) -> (Engine<F::Store>, F::Data) {
    let (store, data) = F::open().await;
    let engine = Engine::builder(store).config(config).hooks(hooks).build();
    for u in ["alice", "bob", "carol"] {
        engine
            .put_user(&root(), &uid(u), Default::default())
            .await
            .expect("admin creates users");
    }
    (engine, data)
}

async fn send_text<S: Store>(engine: &Engine<S>, s: &str) -> Result<crate::Message, Error> {
    let (alice, dm) = (me("alice"), conv("dm:alice:bob"));
    let r = engine.send(&alice, &dm, SendRequest::new(text(s))).await;
    r.map(|(m, _)| m)
}

fn refusal<T: std::fmt::Debug>(r: Result<T, Error>) -> (String, String) {
    match r {
        Err(Error::Refused { code, message }) => (code, message),
        other => panic!("expected a refusal, got {other:?}"),
    }
}

async fn history<S: Store>(engine: &Engine<S>, c: &str) -> Vec<String> {
    let (root, c) = (root(), conv(c));
    let page = engine.history(&root, &c, HistoryQuery::default()).await;
    let page = page.expect("history reads");
    let bodies = page.messages.iter().map(|m| m.body.as_ref().map(Body::get));
    bodies.map(|b| b.unwrap_or("null").to_owned()).collect()
}

/// A refused send answers the hook's code and message, and stores nothing:
/// no message, no feed event, no seq used up.
pub async fn a_refused_send_stores_nothing_and_answers_the_hooks_code<F: StoreFactory>() {
    let (engine, _data) = hooked::<F>(Arc::new(WordFilter), Config::default()).await;
    let (code, message) = refusal(send_text(&engine, "buy spam").await);
    assert_eq!((code.as_str(), message.as_str()), ("spam", "no spam here"));
    let e = send_text(&engine, "spam").await.expect_err("refused");
    assert_eq!(
        (e.kind(), e.code()),
        (crate::ErrorKind::Forbidden, Some("spam"))
    );
    // A code that is not lowercase snake_case is answered as `refused`.
    assert_eq!(refusal(send_text(&engine, "bad code").await).0, REFUSED);

    assert_eq!(history(&engine, "dm:alice:bob").await, Vec::<String>::new());
    for u in ["alice", "bob"] {
        assert_eq!(feed_messages(&engine, u).await, []);
    }
    let m = send_text(&engine, "hello").await.expect("allowed");
    assert_eq!(m.seq, 1, "a refused send used no seq");
}

/// A replaced body is what is stored: history, the feed and the sender's
/// answer show it; a replacement over the body limit is refused whole.
pub async fn a_rewritten_body_is_what_history_shows<F: StoreFactory>() {
    let config = Config {
        limits: crate::Limits {
            body_bytes: 1024,
            ..Default::default()
        },
        ..Config::default()
    };
    let (engine, _data) = hooked::<F>(Arc::new(WordFilter), config).await;
    let sent = send_text(&engine, "darn it").await.expect("sent");
    assert_eq!(sent.body.as_ref().map(Body::get), Some(r#"{"text":"***"}"#));
    let e = send_text(&engine, "huge").await.expect_err("too large");
    assert_eq!(e.kind(), crate::ErrorKind::TooLarge);
    assert_eq!(
        history(&engine, "dm:alice:bob").await,
        [r#"{"text":"***"}"#]
    );
    let feed = engine.feed(&me("bob"), crate::Start::Oldest, 10).await;
    let feed = feed.expect("feed reads");
    let crate::EventData::Message(m) = &feed.events[0].data else {
        panic!("a message event: {feed:?}");
    };
    assert_eq!(m.body.as_ref().map(Body::get), Some(r#"{"text":"***"}"#));
    assert_eq!(feed.events.len(), 1);
}

/// A before-send hook that does not answer in time (or answers
/// [`Verdict::NoAnswer`]) refuses the send by default with
/// `hook_unavailable`, and lets it through as it is when so configured.
pub async fn a_send_hook_out_of_time_refuses_or_allows_as_configured<F: StoreFactory>() {
    let config = |on_timeout| Config {
        hooks: HookConfig {
            send_timeout: Duration::from_millis(50),
            on_timeout,
        },
        ..Config::default()
    };
    let (engine, _data) = hooked::<F>(Arc::new(Silent), config(OnTimeout::Refuse)).await;
    assert_eq!(refusal(send_text(&engine, "hi").await).0, HOOK_UNAVAILABLE);
    assert_eq!(history(&engine, "dm:alice:bob").await, Vec::<String>::new());
    let (engine, _data) = hooked::<F>(Arc::new(WordFilter), config(OnTimeout::Refuse)).await;
    assert_eq!(
        refusal(send_text(&engine, "ask later").await).0,
        HOOK_UNAVAILABLE
    );

    let (engine, _data) = hooked::<F>(Arc::new(Silent), config(OnTimeout::Allow)).await;
    send_text(&engine, "hi").await.expect("allowed on time-out");
    let (engine, _data) = hooked::<F>(Arc::new(WordFilter), config(OnTimeout::Allow)).await;
    send_text(&engine, "ask later").await.expect("allowed");
    assert_eq!(
        history(&engine, "dm:alice:bob").await,
        [r#"{"text":"ask later"}"#]
    );
}

/// While the after-commit hook is stuck, writes go on; once it moves, it
/// hears of every event in commit order, a group's message once (not once
/// per member), a read once with its reader.
pub async fn after_commit_never_delays_a_send_and_hears_each_event_once<F: StoreFactory>() {
    let gated = Arc::new(Gated {
        permits: Semaphore::new(0),
        heard: Mutex::default(),
    });
    let (engine, _data) = hooked::<F>(gated.clone(), Config::default()).await;
    let g = gid("g");
    let alice = me("alice");
    let writes = async {
        engine
            .put_group(&alice, &g, Default::default(), None)
            .await?;
        engine.join(&alice, &g, &uid("bob")).await?;
        engine.join(&alice, &g, &uid("carol")).await?;
        for n in 0..20 {
            engine
                .send(&alice, &conv("group:g"), SendRequest::new(body(n)))
                .await?;
        }
        engine
            .mark_read(&me("bob"), &conv("group:g"), Some(20))
            .await
    };
    tokio::time::timeout(Duration::from_secs(10), writes)
        .await
        .expect("writes do not wait for the after-commit hook")
        .expect("writes succeed");
    assert!(gated.heard.lock().expect("not poisoned").is_empty());

    gated.permits.add_permits(1000);
    engine.drain_hooks().await;
    let heard = std::mem::take(&mut *gated.heard.lock().expect("not poisoned"));
    let joined = |u: &str| Event::member(&g, &uid(u), Membership::Joined);
    let mut want: Vec<_> = ["alice", "bob", "carol"].map(|u| (None, joined(u))).into();
    for seq in 1..=20 {
        let conversation = conv("group:g");
        want.push((None, Event::Message { conversation, seq }));
    }
    let read = Event::Read {
        conversation: conv("group:g"),
        seq: 20,
    };
    want.push((Some(uid("bob")), read));
    let got: Vec<_> = heard
        .iter()
        .map(|c| (c.user.clone(), c.event.clone()))
        .collect();
    assert_eq!(got, want);
    let bodies: Vec<_> = heard.iter().filter_map(|c| c.message.as_ref()).collect();
    assert_eq!(bodies.len(), 20, "each message event carries its message");
    assert!(
        bodies
            .iter()
            .all(|m| m.body.is_some() && m.from == uid("alice"))
    );
}
