//! Figures of the engine over each store, in process: one message into
//! every feed of a very large group (also on Redis), and replaying missed events at very
//! different feed depths.

use std::time::{Duration, Instant};

use im_engine::store::{Changes, FeedTrim};
use im_engine::{
    Actor, Body, Config, ConversationId, Engine, Event, MemoryStore, Retention, SendRequest, Start,
    Store,
};

use crate::Scale;
use crate::redis_bench::Deployment;
use crate::report::{Report, Row, quantile};
use crate::seed::{self, uid};

fn no_retention() -> Config {
    Config {
        retention: Retention {
            events: None,
            age: None,
        },
        ..Config::default()
    }
}

/// One small message from `u1`.
async fn send<S: Store>(engine: &Engine<S>, conversation: &ConversationId) {
    let body = Body::new(r#"{"text":"hello"}"#, 1024).expect("valid body");
    engine
        .send(&Actor::user(uid(1)), conversation, SendRequest::new(body))
        .await
        .expect("send");
}

/// The median of five sends, each into every member's feed.
async fn big_group<S: Store>(engine: &Engine<S>, members: usize) -> f64 {
    seed::users(engine, members).await.expect("seed users");
    seed::group(engine, "big", members)
        .await
        .expect("seed the group");
    let conversation = "group:big".parse().expect("valid");
    let mut times = Vec::new();
    for _ in 0..5 {
        let start = Instant::now();
        send(engine, &conversation).await;
        times.push(start.elapsed().as_secs_f64() * 1000.0);
    }
    quantile(&mut times, 0.5)
}

/// Fills `u0`'s feed with `depth` old events, then `missed` messages, and
/// times a stream replaying the missed ones from the cursor between.
async fn resume<S: Store>(engine: &Engine<S>, depth: usize, missed: usize) -> f64 {
    seed::users(engine, 2).await.expect("seed users");
    let reader = uid(0);
    let old = Event::Read {
        conversation: "dm:u0:u1".parse().expect("valid"),
        seq: 0,
    };
    let mut left = depth;
    while left > 0 {
        let n = left.min(10_000);
        let events = (0..n).map(|_| (reader.clone(), 1, old.clone())).collect();
        let changes = Changes {
            events,
            trim: FeedTrim::default(),
            ..Changes::default()
        };
        engine
            .store()
            .commit(&changes)
            .await
            .map_err(Into::into)
            .expect("fill the feed");
        left -= n;
    }
    let cursor = engine
        .feed(&Actor::user(reader.clone()), Start::Live, 1)
        .await
        .expect("read the feed")
        .next;
    let conversation: ConversationId = "dm:u0:u1".parse().expect("valid");
    let tasks: Vec<_> = (0..16)
        .map(|t| {
            let (engine, conversation) = (engine.clone(), conversation.clone());
            let count = missed / 16 + usize::from(t < missed % 16);
            tokio::spawn(async move {
                for _ in 0..count {
                    send(&engine, &conversation).await;
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.expect("sender");
    }
    let start = Instant::now();
    let stream = engine
        .events(&Actor::user(reader.clone()), Start::After(cursor))
        .await
        .expect("subscribe");
    let got = take(stream, missed).await;
    let ms = start.elapsed().as_secs_f64() * 1000.0;
    assert_eq!(got, missed, "the replay delivered every missed event");
    ms
}

async fn take(
    stream: impl futures_core::Stream<Item = Result<im_engine::Delivered, im_engine::Error>>,
    n: usize,
) -> usize {
    let mut stream = std::pin::pin!(stream);
    let mut got = 0;
    while got < n {
        let next = std::future::poll_fn(|cx| stream.as_mut().poll_next(cx));
        match tokio::time::timeout(Duration::from_secs(30), next).await {
            Ok(Some(Ok(_))) => got += 1,
            _ => break,
        }
    }
    got
}

async fn sled_engine() -> (Engine<im_store_sled::SledStore>, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let store = im_store_sled::SledStore::open(im_store_sled::SledConfig::new(dir.path()))
        .expect("open sled");
    (Engine::with_config(store, no_retention()), dir)
}

/// Runs the big-group and resume figures, the big group also on each Redis
/// deployment in `redis`.
pub async fn run(report: &mut Report, scale: &Scale, redis: &[Deployment]) {
    let members = scale.big_group;
    let memory = big_group(
        &Engine::with_config(MemoryStore::new(), no_retention()),
        members,
    )
    .await;
    report.add(
        Row::plain(
            format!("one message into every feed of a {members}-member group, memory"),
            memory,
            "ms",
        )
        .target("< 100 ms", memory < 100.0),
    );
    let (engine, _dir) = sled_engine().await;
    let sled = big_group(&engine, members).await;
    report.add(
        Row::plain(
            format!("one message into every feed of a {members}-member group, sled"),
            sled,
            "ms",
        )
        .target("< 100 ms", sled < 100.0),
    );
    for d in redis {
        let ms = big_group(
            &Engine::with_config(d.store().await, no_retention()),
            members,
        )
        .await;
        let row = Row::plain(
            format!(
                "one message into every feed of a {members}-member group, {}",
                d.name
            ),
            ms,
            "ms",
        );
        // The issue's target is for one Redis; the cluster's fan-out is a
        // script per recipient (see im-store-redis), shown without one.
        report.add(if d.cluster {
            row
        } else {
            row.target("< 200 ms", ms < 200.0)
        });
    }

    let missed = scale.resume_events;
    for (store, shallow, deep) in [
        (
            "memory",
            {
                let e = Engine::with_config(MemoryStore::new(), no_retention());
                resume(&e, scale.depths[0], missed).await
            },
            {
                let e = Engine::with_config(MemoryStore::new(), no_retention());
                resume(&e, scale.depths[1], missed).await
            },
        ),
        (
            "sled",
            {
                let (e, _d) = sled_engine().await;
                resume(&e, scale.depths[0], missed).await
            },
            {
                let (e, _d) = sled_engine().await;
                resume(&e, scale.depths[1], missed).await
            },
        ),
    ] {
        let (d0, d1) = (scale.depths[0], scale.depths[1]);
        report.add(Row::plain(
            format!("replay {missed} missed events at feed depth {d0}, {store}"),
            shallow,
            "ms",
        ));
        report.add(
            Row::against(
                format!("replay {missed} missed events at feed depth {d1}, {store}"),
                deep,
                "ms",
                shallow,
                format!("the same at depth {d0}"),
            )
            .target(
                "depth does not matter (≤ 1.5× ceiling)",
                deep <= 1.5 * shallow,
            ),
        );
    }
}
