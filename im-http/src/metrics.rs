//! Prometheus metrics, kept and encoded by `prometheus-client`.
//!
//! The server's own metrics share the prefix `im_`; the process metrics
//! (`process`) keep the `process_` names every Prometheus client library
//! exports, which dashboards and alerts already query. Labels take values
//! from small fixed sets only (methods, route patterns, statuses, engine
//! operations), so the series stay few whatever the traffic.

use std::fmt::Write as _;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hyper::Method;
use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue, LabelValueEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

pub(crate) mod listener;
#[cfg(target_os = "linux")]
mod process;

/// Upper bounds of the store latency buckets, in seconds: from a cached
/// read to past the Redis time-out (`--redis-timeout-ms`, 2 s by default),
/// so that calls that time out land in a bucket of their own.
const STORE_BUCKETS: [f64; 16] = [
    0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0,
];

/// Upper bounds of the request duration buckets: the store's, and up to the
/// longest long poll (60 s).
const REQUEST_BUCKETS: [f64; 18] = [
    0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0, 30.0, 60.0,
];

/// An answer's status as a label value.
#[derive(Debug, Clone, Copy, Hash, PartialEq, Eq)]
struct Status(u16);

impl EncodeLabelValue for Status {
    fn encode(&self, encoder: &mut LabelValueEncoder<'_>) -> std::fmt::Result {
        write!(encoder, "{}", self.0)
    }
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    method: &'static str,
    route: &'static str,
    status: Status,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    method: &'static str,
    route: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OpLabels {
    op: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RefusedLabels {
    reason: &'static str,
}

type Histograms<L> = Family<L, Histogram, fn() -> Histogram>;

/// Why a connection was refused before its first request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refused {
    /// The server holds `--max-connections` already.
    MaxConnections,
    /// The client's address holds `--max-connections-per-ip` already.
    MaxConnectionsPerIp,
    /// Its TLS handshake failed or took longer than the header time-out.
    #[cfg(feature = "tls")]
    TlsHandshake,
}

impl Refused {
    fn label(self) -> &'static str {
        match self {
            Self::MaxConnections => "max_connections",
            Self::MaxConnectionsPerIp => "max_connections_per_ip",
            #[cfg(feature = "tls")]
            Self::TlsHandshake => "tls_handshake",
        }
    }
}

/// The server's metrics.
#[derive(Debug)]
pub(crate) struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    durations: Histograms<RouteLabels>,
    messages_sent: Counter,
    sse_open: Gauge,
    store: Histograms<OpLabels>,
    connections_open: Gauge,
    refused: Family<RefusedLabels, Counter>,
    webhook_backlog: Gauge,
    webhook_delivered: Counter,
    webhook_failed: Counter,
}

impl Default for Metrics {
    fn default() -> Self {
        let requests = Family::default();
        let durations: Histograms<RouteLabels> =
            Family::new_with_constructor(|| Histogram::new(REQUEST_BUCKETS));
        let messages_sent = Counter::default();
        let sse_open = Gauge::default();
        let store: Histograms<OpLabels> =
            Family::new_with_constructor(|| Histogram::new(STORE_BUCKETS));
        let connections_open = Gauge::default();
        let refused = Family::default();
        let (webhook_backlog, webhook_delivered, webhook_failed) = Default::default();

        let mut registry = Registry::default();
        #[cfg(target_os = "linux")]
        registry.register_collector(Box::new(process::ProcessCollector::new()));
        let im = registry.sub_registry_with_prefix("im");
        im.register(
            "http_requests",
            "HTTP requests answered, by method, route pattern and status",
            requests.clone(),
        );
        im.register(
            "http_request_duration_seconds",
            "Time from a request's arrival to its answer's head, by method and route pattern (an event stream's head goes out at once, a long poll's after its wait)",
            durations.clone(),
        );
        im.register(
            "messages_sent",
            "Messages stored by this server (repeats not counted)",
            messages_sent.clone(),
        );
        im.register(
            "sse_streams_open",
            "Server-Sent Events streams open now",
            sse_open.clone(),
        );
        im.register(
            "store_latency_seconds",
            "Time spent in engine operations, which is store round trips, by operation",
            store.clone(),
        );
        im.register(
            "connections_open",
            "Client connections open now",
            connections_open.clone(),
        );
        im.register(
            "connections_refused",
            "Connections closed before their first request, by reason: over a connection cap (answered 503), or a TLS handshake that failed or timed out",
            refused.clone(),
        );
        im.register(
            "webhook_backlog",
            "Firehose events this server's webhook delivery has not yet read (0 on a server that does not hold the delivery lease)",
            Gauge::clone(&webhook_backlog),
        );
        im.register(
            "webhook_delivered",
            "Firehose events the webhook receiver acknowledged with a 2xx",
            Counter::clone(&webhook_delivered),
        );
        im.register(
            "webhook_failed_attempts",
            "Webhook POSTs that failed (no answer in time, or not a 2xx) and are retried",
            Counter::clone(&webhook_failed),
        );
        Self {
            registry,
            webhook_backlog,
            webhook_delivered,
            webhook_failed,
            requests,
            durations,
            messages_sent,
            sse_open,
            store,
            connections_open,
            refused,
        }
    }
}

/// A method as a label value: the standard ones by name, any other as
/// `other`, so that made-up methods make no new series.
fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::PUT => "PUT",
        Method::POST => "POST",
        Method::DELETE => "DELETE",
        Method::PATCH => "PATCH",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        Method::CONNECT => "CONNECT",
        Method::TRACE => "TRACE",
        _ => "other",
    }
}

impl Metrics {
    /// Counts one answered request and the time to its answer's head.
    pub(crate) fn request(
        &self,
        method: &Method,
        route: &'static str,
        status: u16,
        took: Duration,
    ) {
        let method = method_label(method);
        self.requests
            .get_or_create(&RequestLabels {
                method,
                route,
                status: Status(status),
            })
            .inc();
        self.durations
            .get_or_create(&RouteLabels { method, route })
            .observe(took.as_secs_f64());
    }

    pub(crate) fn webhook_backlog(&self, events: u64) {
        self.webhook_backlog
            .set(i64::try_from(events).unwrap_or(i64::MAX));
    }

    pub(crate) fn webhook_delivered(&self) {
        self.webhook_delivered.inc();
    }

    pub(crate) fn webhook_failed(&self) {
        self.webhook_failed.inc();
    }

    pub(crate) fn message_sent(&self) {
        self.messages_sent.inc();
    }

    /// Counts an open SSE stream until the guard is dropped.
    pub(crate) fn sse_stream(self: &Arc<Self>) -> StreamGauge {
        self.sse_open.inc();
        StreamGauge(Arc::clone(self))
    }

    /// Counts an open connection until the guard is dropped.
    pub(crate) fn connection(self: &Arc<Self>) -> ConnectionGauge {
        self.connections_open.inc();
        ConnectionGauge(Arc::clone(self))
    }

    /// Counts a connection refused before its first request.
    pub(crate) fn refused(&self, why: Refused) {
        self.refused
            .get_or_create(&RefusedLabels {
                reason: why.label(),
            })
            .inc();
    }

    /// Runs `f`, an engine operation, and records how long it took.
    pub(crate) async fn timed<F: Future>(&self, op: &'static str, f: F) -> F::Output {
        let start = Instant::now();
        let out = f.await;
        self.store
            .get_or_create(&OpLabels { op })
            .observe(start.elapsed().as_secs_f64());
        out
    }

    /// Every metric in the Prometheus text format (version 0.0.4), or in
    /// OpenMetrics text when `openmetrics`.
    pub(crate) fn render(&self, openmetrics: bool) -> String {
        let mut out = String::new();
        let encoded = if openmetrics {
            prometheus_client::encoding::text::encode(&mut out, &self.registry)
        } else {
            prometheus_client::encoding::prometheus_text::encode(&mut out, &self.registry)
        };
        if let Err(e) = encoded {
            tracing::error!(error = %e, "could not encode the metrics");
        }
        out
    }
}

/// Keeps one SSE stream counted as open.
#[derive(Debug)]
pub(crate) struct StreamGauge(Arc<Metrics>);

impl Drop for StreamGauge {
    fn drop(&mut self) {
        self.0.sse_open.dec();
    }
}

/// Keeps one connection counted as open.
#[derive(Debug)]
pub(crate) struct ConnectionGauge(Arc<Metrics>);

impl Drop for ConnectionGauge {
    fn drop(&mut self) {
        self.0.connections_open.dec();
    }
}
