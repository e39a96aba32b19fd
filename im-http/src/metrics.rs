//! Prometheus metrics, kept with plain atomics and small mutex-guarded maps.
//!
//! The maps are keyed by route pattern and engine operation, both fixed
//! `&'static str`s, so they stay small whatever the traffic.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::future::Future;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

/// Upper bounds of the latency histogram's buckets, in seconds.
const BUCKETS: [f64; 12] = [
    0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0,
];

#[derive(Debug, Default, Clone)]
struct Histogram {
    /// Observations at or under each bound (not cumulative; summed on output).
    buckets: [u64; BUCKETS.len()],
    count: u64,
    sum: f64,
}

impl Histogram {
    fn observe(&mut self, d: Duration) {
        let secs = d.as_secs_f64();
        if let Some(i) = BUCKETS.iter().position(|b| secs <= *b) {
            self.buckets[i] += 1;
        }
        self.count += 1;
        self.sum += secs;
    }
}

/// The server's counters.
#[derive(Debug, Default)]
pub(crate) struct Metrics {
    requests: Mutex<BTreeMap<(&'static str, u16), u64>>,
    messages_sent: AtomicU64,
    sse_open: AtomicI64,
    store: Mutex<BTreeMap<&'static str, Histogram>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding the lock leaves only a counter half-updated.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Metrics {
    pub(crate) fn request(&self, route: &'static str, status: u16) {
        *lock(&self.requests).entry((route, status)).or_default() += 1;
    }

    pub(crate) fn message_sent(&self) {
        self.messages_sent.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts an open SSE stream until the guard is dropped.
    pub(crate) fn sse_stream(self: &std::sync::Arc<Self>) -> StreamGauge {
        self.sse_open.fetch_add(1, Ordering::Relaxed);
        StreamGauge(std::sync::Arc::clone(self))
    }

    /// Runs `f`, an engine operation, and records how long it took.
    pub(crate) async fn timed<F: Future>(&self, op: &'static str, f: F) -> F::Output {
        let start = Instant::now();
        let out = f.await;
        lock(&self.store)
            .entry(op)
            .or_default()
            .observe(start.elapsed());
        out
    }

    /// The Prometheus text exposition of every metric.
    pub(crate) fn render(&self) -> String {
        let mut out = String::new();
        out.push_str(
            "# HELP im_http_requests_total HTTP requests answered, by route pattern and status.\n",
        );
        out.push_str("# TYPE im_http_requests_total counter\n");
        for ((route, status), n) in lock(&self.requests).iter() {
            let _ = writeln!(
                out,
                "im_http_requests_total{{route=\"{route}\",status=\"{status}\"}} {n}"
            );
        }
        out.push_str(
            "# HELP im_messages_sent_total Messages stored by this server (repeats not counted).\n",
        );
        out.push_str("# TYPE im_messages_sent_total counter\n");
        let _ = writeln!(
            out,
            "im_messages_sent_total {}",
            self.messages_sent.load(Ordering::Relaxed)
        );
        out.push_str("# HELP im_sse_streams_open Server-Sent Events streams open now.\n");
        out.push_str("# TYPE im_sse_streams_open gauge\n");
        let _ = writeln!(
            out,
            "im_sse_streams_open {}",
            self.sse_open.load(Ordering::Relaxed)
        );
        out.push_str("# HELP im_store_latency_seconds Time spent in engine operations, which is store round trips, by operation.\n");
        out.push_str("# TYPE im_store_latency_seconds histogram\n");
        for (op, h) in lock(&self.store).iter() {
            let mut cumulative = 0;
            for (bound, n) in BUCKETS.iter().zip(h.buckets) {
                cumulative += n;
                let _ = writeln!(
                    out,
                    "im_store_latency_seconds_bucket{{op=\"{op}\",le=\"{bound}\"}} {cumulative}"
                );
            }
            let _ = writeln!(
                out,
                "im_store_latency_seconds_bucket{{op=\"{op}\",le=\"+Inf\"}} {}",
                h.count
            );
            let _ = writeln!(out, "im_store_latency_seconds_sum{{op=\"{op}\"}} {}", h.sum);
            let _ = writeln!(
                out,
                "im_store_latency_seconds_count{{op=\"{op}\"}} {}",
                h.count
            );
        }
        out
    }
}

/// Keeps one SSE stream counted as open.
#[derive(Debug)]
pub(crate) struct StreamGauge(std::sync::Arc<Metrics>);

impl Drop for StreamGauge {
    fn drop(&mut self) {
        self.0.sse_open.fetch_sub(1, Ordering::Relaxed);
    }
}
