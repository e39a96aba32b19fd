//! Live delivery: SSE fan-out to a group's subscribers at fixed send rates,
//! and the memory an idle stream costs; each beside a bare hyper SSE
//! broadcaster fed the same way.

use std::ops::RangeInclusive;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use im_http::Auth;

use crate::Scale;
use crate::child::Server;
use crate::client::{Conn, Events, now_us, stamps};
use crate::report::{Report, Row, quantile};
use crate::seed::uid;
use crate::server::{Kind, SECRET};

/// What a subscriber makes of a frame: the latency in ms of each delivery
/// it holds, given the time it arrived (µs since the epoch).
pub type Measure = Arc<dyn Fn(&[u8], u64, &mut Vec<f64>) + Send + Sync>;

/// The latency of each `"t":<micros>` stamp in a frame.
pub fn stamped() -> Measure {
    Arc::new(|frame, now, out| {
        out.extend(stamps(frame).map(|t| now.saturating_sub(t) as f64 / 1000.0));
    })
}

/// Open event streams, counting deliveries and their latencies.
pub struct Subscribers {
    latencies: Arc<Mutex<Vec<f64>>>,
    received: Arc<AtomicU64>,
    _tasks: Vec<tokio::task::JoinHandle<()>>,
}

/// Deliveries of one load: their rate and latency quantiles.
pub struct Delivery {
    /// Deliveries per second, over the sending time and the drain.
    pub per_sec: f64,
    /// Median latency, ms.
    pub p50: f64,
    /// 99th percentile latency, ms.
    pub p99: f64,
}

/// Opens one stream per user of `users` (`u<i>` for im-http; the bare
/// broadcaster takes no user) and records each delivery's latency.
pub async fn subscribe(
    port: u16,
    kind: Kind,
    users: RangeInclusive<usize>,
    measure: Measure,
) -> Subscribers {
    let auth = Auth::new(SECRET);
    let latencies = Arc::new(Mutex::new(Vec::new()));
    let received = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::with_capacity(users.clone().count());
    for i in users {
        let (path, token) = match kind {
            Kind::BareSse => ("/events".to_string(), String::new()),
            Kind::ImRoom => (
                "/v1/events?rooms=r".to_string(),
                auth.token(&uid(i), false, None).expect("token"),
            ),
            _ => (
                "/v1/events".to_string(),
                auth.token(&uid(i), false, None).expect("token"),
            ),
        };
        let mut events = Events::open(port, &path, &token)
            .await
            .expect("open an event stream");
        let (latencies, received) = (Arc::clone(&latencies), Arc::clone(&received));
        let measure = Arc::clone(&measure);
        tasks.push(tokio::spawn(async move {
            let mut got = Vec::new();
            while let Some(frame) = events.next().await {
                measure(&frame, now_us(), &mut got);
                if got.is_empty() {
                    continue;
                }
                received.fetch_add(got.len() as u64, Ordering::Relaxed);
                latencies.lock().expect("not poisoned").append(&mut got);
            }
        }));
    }
    Subscribers {
        latencies,
        received,
        _tasks: tasks,
    }
}

impl Subscribers {
    /// Waits (up to 20 s) until `expected` deliveries arrived, then takes
    /// what arrived since the last call; `start` is when sending began.
    pub async fn drain(&self, expected: u64, start: Instant) -> Delivery {
        let deadline = Instant::now() + Duration::from_secs(20);
        while self.received.load(Ordering::Relaxed) < expected && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let received = self.received.swap(0, Ordering::Relaxed);
        tokio::time::sleep(Duration::from_millis(50)).await;
        let mut latencies = std::mem::take(&mut *self.latencies.lock().expect("not poisoned"));
        Delivery {
            per_sec: received as f64 / start.elapsed().as_secs_f64(),
            p50: quantile(&mut latencies, 0.5),
            p99: quantile(&mut latencies, 0.99),
        }
    }
}

/// Sends at `rate` for `secs`, then waits for the streams to drain.
pub async fn deliver(
    port: u16,
    kind: Kind,
    subs: &Subscribers,
    subscribers: usize,
    rate: u32,
    secs: f64,
) -> Delivery {
    let mut conn = Conn::open(port).await.expect("connect the sender");
    let conversation = match kind {
        Kind::ImRoom => "room:r",
        _ => "group:g",
    };
    let (path, token) = match kind {
        Kind::BareSse => ("/send".to_string(), String::new()),
        _ => (
            format!("/v1/conversations/{conversation}/messages"),
            Auth::new(SECRET)
                .token(&uid(0), false, None)
                .expect("token"),
        ),
    };
    let start = Instant::now();
    let total = (f64::from(rate) * secs).ceil() as u64;
    let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / f64::from(rate)));
    for _ in 0..total {
        tick.tick().await;
        let status = conn
            .post(&path, &token, format!(r#"{{"body":{{"t":{}}}}}"#, now_us()))
            .await
            .expect("send");
        assert!(status < 300, "a send answered {status}");
    }
    subs.drain(total * subscribers as u64, start).await
}

/// Runs the SSE fan-out and idle-stream figures.
pub async fn run(report: &mut Report, scale: &Scale) {
    let n = scale.fanout_subscribers;
    let im = Server::start(Kind::ImMemory, n + 1, n + 1, None).await;
    let bare = Server::start(Kind::BareSse, 0, 0, None).await;
    let im_subs = subscribe(im.port, Kind::ImMemory, 1..=n, stamped()).await;
    let bare_subs = subscribe(bare.port, Kind::BareSse, 1..=n, stamped()).await;
    for &rate in &scale.rates {
        let b = deliver(bare.port, Kind::BareSse, &bare_subs, n, rate, scale.secs).await;
        let m = deliver(im.port, Kind::ImMemory, &im_subs, n, rate, scale.secs).await;
        let ceiling = format!("bare SSE broadcast, {n} subscribers");
        report.add(Row::against(
            format!("SSE fan-out to {n}, {rate} msgs/s: delivered"),
            m.per_sec,
            "events/s",
            b.per_sec,
            ceiling.clone(),
        ));
        report.add(Row::against(
            format!("SSE fan-out to {n}, {rate} msgs/s: p50"),
            m.p50,
            "ms",
            b.p50,
            ceiling.clone(),
        ));
        report.add(
            Row::against(
                format!("SSE fan-out to {n}, {rate} msgs/s: p99"),
                m.p99,
                "ms",
                b.p99,
                ceiling,
            )
            .target("≤ 2× ceiling", m.p99 <= 2.0 * b.p99),
        );
    }
    drop((im_subs, bare_subs, im, bare));

    let streams = scale.idle_streams;
    let per_stream = |kind| async move {
        let server = Server::start(kind, streams + 1, 0, None).await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        let before = server.rss_kib();
        let subs = subscribe(server.port, kind, 1..=streams, stamped()).await;
        tokio::time::sleep(Duration::from_secs(1)).await;
        let after = server.rss_kib();
        drop(subs);
        after.saturating_sub(before) as f64 / streams as f64
    };
    let bare_kib = per_stream(Kind::BareSse).await;
    let im_kib = per_stream(Kind::ImMemory).await;
    report.add(
        Row::against(
            format!("idle SSE memory per stream, {streams} streams"),
            im_kib,
            "KiB",
            bare_kib,
            "bare hyper SSE server",
        )
        .target(
            "≤ 1.5× ceiling and < 17 KiB",
            im_kib <= 1.5 * bare_kib && im_kib < 17.0,
        ),
    );
}
