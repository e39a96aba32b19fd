//! Rooms: a send into a room of 10 members against one of 100,000 (on
//! memory, sled and one Redis), a room message to many live streams on one
//! node against the bare SSE broadcaster, and a 100,000-member group (the
//! group limit refuses it; a send to the largest group it takes) against
//! the same room.

use std::time::{Duration, Instant};

use im_engine::{Actor, Body, ConversationId, Engine, GroupId, MemoryStore, SendRequest, Store};

use crate::Scale;
use crate::child::Server;
use crate::fanout::{deliver, stamped, subscribe};
use crate::redis_bench::Deployment;
use crate::report::{Report, Row};
use crate::seed::{self, uid};
use crate::server::Kind;

/// Sends per second into `conversation` as `u0`, one at a time, for `secs`.
async fn send_rate<S: Store>(engine: &Engine<S>, conversation: &ConversationId, secs: f64) -> f64 {
    let actor = Actor::user(uid(0));
    let body = Body::new(r#"{"text":"hello"}"#, 1024).expect("valid body");
    // A few first, so that caches and the first write do not count.
    for _ in 0..10 {
        engine
            .send(&actor, conversation, SendRequest::new(body.clone()))
            .await
            .expect("send");
    }
    let start = Instant::now();
    let deadline = start + Duration::from_secs_f64(secs);
    let mut n = 0u64;
    while Instant::now() < deadline {
        engine
            .send(&actor, conversation, SendRequest::new(body.clone()))
            .await
            .expect("send");
        n += 1;
    }
    n as f64 / start.elapsed().as_secs_f64()
}

/// The send rate into a room of `members` on a fresh engine from `open`.
async fn room_rate<S: Store>(engine: Engine<S>, id: &str, members: usize, secs: f64) -> f64 {
    seed::users(&engine, 1).await.expect("seed the sender");
    seed::room(&engine, id, members)
        .await
        .expect("seed the room");
    // What the seeding set off in the store (sled's flushes, a Redis AOF
    // rewrite) settles first: the figure is a room's send, not the seed's.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let room = ConversationId::room(GroupId::new(id).expect("valid id"));
    send_rate(&engine, &room, secs).await
}

/// Room sends with `small` and `big` members on one store.
async fn small_and_big<S: Store, F, Fut>(
    report: &mut Report,
    store_name: &str,
    open: F,
    (small, big): (usize, usize),
    secs: f64,
) where
    F: Fn() -> Fut,
    Fut: Future<Output = Engine<S>>,
{
    let small_rate = room_rate(open().await, "small", small, secs).await;
    let big_rate = room_rate(open().await, "big", big, secs).await;
    eprintln!("  {store_name}: {small_rate:.0} msgs/s with {small}, {big_rate:.0} with {big}");
    report.add(
        Row::against(
            format!("room send, {store_name}, {big} members, 1 sender"),
            big_rate,
            "msgs/s",
            small_rate,
            format!("the same room send with {small} members"),
        )
        .target("≤ 1.5× slower", big_rate * 1.5 >= small_rate),
    );
}

/// Runs the room figures.
pub async fn run(report: &mut Report, scale: &Scale, redis: &[Deployment]) {
    let secs = scale.engine_secs;
    let sizes = (10, scale.big_room);
    small_and_big(
        report,
        "memory",
        || async { Engine::new(MemoryStore::new()) },
        sizes,
        secs,
    )
    .await;
    let dir = tempfile::tempdir().expect("a temporary directory");
    let opened = std::cell::Cell::new(0);
    let open_sled = || async {
        opened.set(opened.get() + 1);
        let path = dir.path().join(opened.get().to_string());
        let store = im_store_sled::SledStore::open(im_store_sled::SledConfig::new(path))
            .expect("open sled");
        Engine::new(store)
    };
    small_and_big(report, "sled durable", open_sled, sizes, secs).await;
    for d in redis.iter().filter(|d| !d.cluster) {
        small_and_big(
            report,
            d.name,
            || async { Engine::new(d.store().await) },
            sizes,
            secs,
        )
        .await;
    }

    // A group as big as the room: refused past the group limit. The
    // largest group there is, against the room.
    let limit = im_engine::Limits::default().group_members;
    let engine = Engine::new(MemoryStore::new());
    seed::users(&engine, 1).await.expect("seed the sender");
    seed::group(&engine, "g", limit)
        .await
        .expect("seed the group");
    let extra = uid(limit);
    let root = Actor::admin(uid(limit + 1));
    engine
        .put_user(&root, &extra, Default::default())
        .await
        .expect("one more user");
    let group = GroupId::new("g").expect("valid id");
    let refused = engine.join(&root, &group, &extra).await.is_err();
    report.add(
        Row::plain(
            format!(
                "group of {} members: the join past {limit} refused",
                sizes.1
            ),
            if refused { 1.0 } else { 0.0 },
            "refused",
        )
        .target("refused (rooms take it)", refused),
    );
    let group_rate = send_rate(&engine, &ConversationId::group(group), secs).await;
    let room_rate = room_rate(Engine::new(MemoryStore::new()), "r", sizes.1, secs).await;
    eprintln!(
        "  group of {limit}: {group_rate:.1} msgs/s; room of {}: {room_rate:.0}",
        sizes.1
    );
    report.add(Row::against(
        format!("room send, memory, {} members", sizes.1),
        room_rate,
        "msgs/s",
        group_rate,
        format!("group send, memory, {limit} members (the group limit)"),
    ));

    // One room message to many live streams on one node.
    let n = scale.room_streams;
    let rate = 10;
    // One server at a time: the client holds each stream's socket, and
    // twice 10,000 would pass a common open-file limit of 20,000.
    let b = {
        let bare = Server::start(Kind::BareSse, 0, 0, None).await;
        let subs = subscribe(bare.port, Kind::BareSse, 1..=n, stamped()).await;
        deliver(bare.port, Kind::BareSse, &subs, n, rate, scale.secs).await
    };
    let m = {
        let im = Server::start(Kind::ImRoom, n + 1, n + 1, None).await;
        let subs = subscribe(im.port, Kind::ImRoom, 1..=n, stamped()).await;
        deliver(im.port, Kind::ImRoom, &subs, n, rate, scale.secs).await
    };
    eprintln!(
        "  room to {n} streams: p99 {:.1} ms (bare {:.1} ms)",
        m.p99, b.p99
    );
    let ceiling = format!("bare SSE broadcast, {n} subscribers");
    report.add(Row::against(
        format!("room message to {n} streams, {rate} msgs/s: delivered"),
        m.per_sec,
        "events/s",
        b.per_sec,
        ceiling.clone(),
    ));
    report.add(
        Row::against(
            format!("room message to {n} streams, {rate} msgs/s: p99"),
            m.p99,
            "ms",
            b.p99,
            ceiling,
        )
        .target("≤ 2× ceiling", m.p99 <= 2.0 * b.p99),
    );
}
