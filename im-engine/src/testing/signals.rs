//! Conformance cases for signals: who gets typing, receipts and presence,
//! and the reverse contact index presence is addressed by. Generic over
//! the store like `conformance`, and run by the same macro.

use std::pin::{Pin, pin};
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use futures_core::Stream;

use super::StoreFactory;
use crate::data::Signal;
use crate::{Actor, Config, ConversationId, Engine, ErrorKind, GroupId, Store, UserId};

fn uid(s: &str) -> UserId {
    UserId::new(s).expect("valid test id")
}

fn conv(s: &str) -> ConversationId {
    s.parse().expect("valid test conversation")
}

fn me(s: &str) -> Actor {
    Actor::user(uid(s))
}

/// The grace the presence cases run with.
const GRACE: Duration = Duration::from_millis(300);

type Signals = Pin<Box<dyn Stream<Item = Arc<Signal>> + Send>>;

/// An engine over a fresh store, with users alice, bob, carol and dave,
/// and a group `g` of alice (owner), bob and carol.
async fn fixture<F: StoreFactory>() -> (Engine<F::Store>, F::Data) {
    fixture_with_grace::<F>(GRACE).await
}

/// [`fixture`] with another presence grace.
async fn fixture_with_grace<F: StoreFactory>(grace: Duration) -> (Engine<F::Store>, F::Data) {
    let (store, data) = F::open().await;
    let config = Config {
        presence_grace: grace,
        receipts_max_group: 3,
        ..Config::default()
    };
    let engine = Engine::with_config(store, config);
    let root = Actor::admin(uid("root"));
    for u in ["alice", "bob", "carol", "dave"] {
        engine
            .put_user(&root, &uid(u), Default::default())
            .await
            .unwrap();
    }
    let g = GroupId::new("g").unwrap();
    engine
        .put_group(&me("alice"), &g, Default::default(), None)
        .await
        .unwrap();
    for u in ["bob", "carol"] {
        engine.join(&me("alice"), &g, &uid(u)).await.unwrap();
    }
    (engine, data)
}

fn listen<S: Store>(engine: &Engine<S>, user: &str) -> Signals {
    Box::pin(engine.signals(&me(user)))
}

/// The next signal within `wait`, if any.
async fn next(stream: &mut Signals, wait: Duration) -> Option<Signal> {
    let next = std::future::poll_fn(|cx| stream.as_mut().poll_next(cx));
    match tokio::time::timeout(wait, next).await {
        Ok(Some(s)) => Some((*s).clone()),
        Ok(None) => panic!("the signal stream ended"),
        Err(_) => None,
    }
}

async fn expect(stream: &mut Signals, who: &str) -> Signal {
    next(stream, Duration::from_secs(5))
        .await
        .unwrap_or_else(|| panic!("{who} gets no signal"))
}

async fn silent(stream: &mut Signals, who: &str) {
    let got = next(stream, Duration::from_millis(200)).await;
    assert_eq!(got, None, "{who} gets nothing");
}

/// The reverse contact index follows every link and unlink.
pub async fn followers_follow_contact_changes<F: StoreFactory>() {
    let (engine, _data) = fixture::<F>().await;
    let followers = |u: &str| {
        let engine = engine.clone();
        let u = uid(u);
        async move {
            let mut f = engine.store().followers(&u).await.unwrap();
            f.sort();
            f
        }
    };
    assert!(followers("alice").await.is_empty());
    engine.link(&me("bob"), &uid("alice")).await.unwrap();
    engine.link(&me("carol"), &uid("alice")).await.unwrap();
    engine.link(&me("alice"), &uid("bob")).await.unwrap();
    assert_eq!(followers("alice").await, [uid("bob"), uid("carol")]);
    assert_eq!(followers("bob").await, [uid("alice")]);
    engine.unlink(&me("bob"), &uid("alice")).await.unwrap();
    engine.unlink(&me("bob"), &uid("alice")).await.unwrap();
    assert_eq!(followers("alice").await, [uid("carol")]);
    engine.link(&me("bob"), &uid("alice")).await.unwrap();
    assert_eq!(followers("alice").await, [uid("bob"), uid("carol")]);
}

/// Typing reaches the other participants' streams, not the typer's nor a
/// stranger's; a stranger may not type.
pub async fn typing_reaches_the_other_participants<F: StoreFactory>() {
    let (engine, _data) = fixture::<F>().await;
    let [mut alice, mut bob, mut carol, mut dave] =
        ["alice", "bob", "carol", "dave"].map(|u| listen(&engine, u));
    engine
        .typing(&me("alice"), &conv("group:g"), true)
        .await
        .unwrap();
    let typing = Signal::Typing {
        conversation: conv("group:g"),
        user: uid("alice"),
        typing: true,
    };
    assert_eq!(expect(&mut bob, "bob").await, typing);
    assert_eq!(expect(&mut carol, "carol").await, typing);
    silent(&mut alice, "the typer").await;
    silent(&mut dave, "a stranger").await;
    assert_eq!(
        engine
            .typing(&me("dave"), &conv("group:g"), true)
            .await
            .map_err(|e| e.kind()),
        Err(ErrorKind::Forbidden)
    );
    engine
        .typing(&me("bob"), &conv("dm:alice:bob"), true)
        .await
        .unwrap();
    let got = expect(&mut alice, "alice").await;
    assert!(matches!(got, Signal::Typing { user, .. } if user == uid("bob")));
    silent(&mut carol, "carol, outside the direct conversation").await;
}

/// A moved read cursor reaches the other participants of a direct
/// conversation and of a small group, not of a group over the limit.
pub async fn receipts_reach_the_other_participants<F: StoreFactory>() {
    let (engine, _data) = fixture::<F>().await;
    let [mut alice, mut bob, mut carol, mut dave] =
        ["alice", "bob", "carol", "dave"].map(|u| listen(&engine, u));
    let body = crate::Body::new(r#"{"t":1}"#, 1024).unwrap();
    let send = crate::SendRequest::new(body);
    engine
        .send(&me("alice"), &conv("group:g"), send.clone())
        .await
        .unwrap();
    engine
        .mark_read(&me("bob"), &conv("group:g"), None)
        .await
        .unwrap();
    let receipt = Signal::Receipt {
        conversation: conv("group:g"),
        user: uid("bob"),
        read_seq: 1,
    };
    assert_eq!(expect(&mut alice, "alice").await, receipt);
    assert_eq!(expect(&mut carol, "carol").await, receipt);
    silent(&mut bob, "the reader").await;
    // Reading again moves nothing and tells nobody.
    engine
        .mark_read(&me("bob"), &conv("group:g"), None)
        .await
        .unwrap();
    silent(&mut alice, "alice, for a cursor that did not move").await;

    engine
        .send(&me("alice"), &conv("dm:alice:bob"), send.clone())
        .await
        .unwrap();
    engine
        .mark_read(&me("bob"), &conv("dm:alice:bob"), None)
        .await
        .unwrap();
    assert!(matches!(
        expect(&mut alice, "alice").await,
        Signal::Receipt { read_seq: 1, .. }
    ));
    silent(&mut carol, "carol, outside the direct conversation").await;

    // Four members: over this fixture's limit of three.
    engine
        .join(&me("alice"), &GroupId::new("g").unwrap(), &uid("dave"))
        .await
        .unwrap();
    engine
        .send(&me("alice"), &conv("group:g"), send)
        .await
        .unwrap();
    engine
        .mark_read(&me("bob"), &conv("group:g"), None)
        .await
        .unwrap();
    silent(&mut alice, "alice, in a group over the receipt limit").await;
    silent(&mut dave, "dave").await;
}

/// `reads` lists every participant's cursor by user id, paged, to
/// participants only.
pub async fn reads_list_every_participant<F: StoreFactory>() {
    let (engine, _data) = fixture::<F>().await;
    let body = crate::Body::new(r#"{"t":1}"#, 1024).unwrap();
    let g = conv("group:g");
    for _ in 0..2 {
        let send = crate::SendRequest::new(body.clone());
        engine.send(&me("carol"), &g, send).await.unwrap();
    }
    engine.mark_read(&me("bob"), &g, Some(1)).await.unwrap();
    let page = engine.reads(&me("alice"), &g, None, Some(2)).await.unwrap();
    let got: Vec<_> = page
        .reads
        .iter()
        .map(|r| (r.user.as_str(), r.read_seq))
        .collect();
    assert_eq!((got, page.has_more), (vec![("alice", 0), ("bob", 1)], true));
    let page = engine
        .reads(&me("alice"), &g, Some(&uid("bob")), Some(2))
        .await
        .unwrap();
    let got: Vec<_> = page
        .reads
        .iter()
        .map(|r| (r.user.as_str(), r.read_seq))
        .collect();
    assert_eq!((got, page.has_more), (vec![("carol", 2)], false));
    assert_eq!(
        engine
            .reads(&me("dave"), &g, None, None)
            .await
            .map_err(|e| e.kind()),
        Err(ErrorKind::Forbidden)
    );
    assert_eq!(
        engine
            .reads(&me("alice"), &g, None, Some(0))
            .await
            .map_err(|e| e.kind()),
        Err(ErrorKind::Invalid)
    );
}

/// A user's first stream and its last one's close (after the grace) reach
/// the streams of those who have it in their contacts; a reconnect within
/// the grace announces nothing.
pub async fn presence_reaches_followers_after_the_grace<F: StoreFactory>() {
    let (engine, _data) = fixture::<F>().await;
    engine.link(&me("bob"), &uid("alice")).await.unwrap();
    let [mut bob, mut carol] = ["bob", "carol"].map(|u| listen(&engine, u));
    let first = engine.connect(&me("alice")).await.unwrap();
    let got = expect(&mut bob, "bob").await;
    assert!(
        matches!(got, Signal::Presence { ref user, online: true, .. } if *user == uid("alice"))
    );
    silent(&mut carol, "carol, who has no contact alice").await;
    let second = engine.connect(&me("alice")).await.unwrap();
    drop(first);
    silent(&mut bob, "bob, while a stream is still open").await;
    drop(second);
    tokio::time::sleep(GRACE / 3).await;
    let back = engine.connect(&me("alice")).await.unwrap();
    silent(&mut bob, "bob, for a reconnect within the grace").await;
    tokio::time::sleep(GRACE).await;
    silent(&mut bob, "bob, while alice stays connected").await;
    drop(back);
    assert!(
        next(&mut bob, GRACE / 2).await.is_none(),
        "nothing before the grace is over"
    );
    let got = expect(&mut bob, "bob").await;
    assert!(
        matches!(
            got,
            Signal::Presence {
                online: false,
                last_seen: Some(_),
                ..
            }
        ),
        "{got:?}"
    );
    assert!(!engine.user(&me("bob"), &uid("alice")).await.unwrap().online);
    let _ = pin!(carol);
}

/// A stream whose opening is abandoned part way, as hyper abandons a
/// request whose client left before the answer, leaves no presence
/// behind: after the grace the user is offline. Abandoned after one poll,
/// then two, and so on until `connect` finishes. On Redis, which keeps it
/// waiting at every call, a `connect` abandoned after recording the user
/// online used to leave it online for good.
pub async fn presence_survives_an_abandoned_connect<F: StoreFactory>() {
    const SHORT: Duration = Duration::from_millis(20);
    let (engine, _data) = fixture_with_grace::<F>(SHORT).await;
    engine.link(&me("bob"), &uid("alice")).await.unwrap();
    let alice = me("alice");
    let online = async || engine.user(&me("bob"), &uid("alice")).await.unwrap().online;
    for polls in 1..=200 {
        // Boxed, so that `drop` drops the future itself.
        let mut connect = Box::pin(engine.connect(&alice));
        let mut finished = false;
        for _ in 0..polls {
            let polled = std::future::poll_fn(|cx| Poll::Ready(connect.as_mut().poll(cx))).await;
            if let Poll::Ready(guard) = polled {
                drop(guard.unwrap());
                finished = true;
                break;
            }
            // Lets the store's I/O move on between polls.
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        drop(connect);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while online().await {
            assert!(
                tokio::time::Instant::now() < deadline,
                "alice is still online 5 s after a connect abandoned after {polls} polls"
            );
            tokio::time::sleep(SHORT).await;
        }
        if finished {
            return;
        }
    }
    panic!("connect did not finish in 200 polls");
}

/// A user's presence reaches no one it blocks, though they have it in
/// their contacts; unblocked, they hear of it again.
pub async fn presence_skips_whom_the_user_blocks<F: StoreFactory>() {
    let (engine, _data) = fixture::<F>().await;
    for u in ["bob", "carol"] {
        engine.link(&me(u), &uid("alice")).await.unwrap();
    }
    engine.block(&me("alice"), &uid("bob")).await.unwrap();
    let [mut bob, mut carol] = ["bob", "carol"].map(|u| listen(&engine, u));
    let first = engine.connect(&me("alice")).await.unwrap();
    let got = expect(&mut carol, "carol").await;
    assert!(
        matches!(got, Signal::Presence { ref user, online: true, .. } if *user == uid("alice"))
    );
    silent(&mut bob, "bob, whom alice blocks").await;
    drop(first);
    expect(&mut carol, "carol").await;
    silent(&mut bob, "bob, whom alice blocks").await;
    engine.unblock(&me("alice"), &uid("bob")).await.unwrap();
    let _again = engine.connect(&me("alice")).await.unwrap();
    let got = expect(&mut bob, "bob, unblocked").await;
    assert!(
        matches!(got, Signal::Presence { online: true, .. }),
        "{got:?}"
    );
}
