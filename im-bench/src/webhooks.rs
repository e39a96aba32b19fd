//! Sends beside webhook delivery: engine sends through a running server
//! whose webhook task POSTs every event to a receiver on this machine,
//! against the same sends through a server without webhooks, in the same
//! run, on memory and on sled (durable). The delivery task reads the
//! store and writes its acknowledged cursor there; the figure shows what
//! that costs the sends.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Response, StatusCode};
use hyper_util::rt::TokioIo;
use im_engine::{Engine, MemoryStore, Store};
use im_http::{App, Config, Webhook};
use tokio::sync::oneshot;

use crate::Scale;
use crate::engine_send::{Shape, rate, seed_engine};
use crate::report::{Report, Row};

/// Senders at once.
const SENDERS: usize = 64;

/// Rounds of each kind (with and without a webhook).
const ROUNDS: usize = 4;

/// A receiver answering 204 to everything; answers its URL and the count
/// of events it got.
async fn receiver() -> (String, Arc<AtomicU64>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind the receiver");
    let url = format!("http://{}/hook", listener.local_addr().expect("an address"));
    let got = Arc::new(AtomicU64::new(0));
    let count = Arc::clone(&got);
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let count = Arc::clone(&count);
            let service = service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                let count = Arc::clone(&count);
                async move {
                    let _ = req.into_body().collect().await;
                    count.fetch_add(1, Ordering::Relaxed);
                    let mut resp = Response::new(Full::new(Bytes::new()));
                    *resp.status_mut() = StatusCode::NO_CONTENT;
                    Ok::<_, Infallible>(resp)
                }
            });
            tokio::spawn(http1::Builder::new().serve_connection(TokioIo::new(stream), service));
        }
    });
    (url, got)
}

/// A server over `store`, delivering to `webhook` when given; answers its
/// engine and what stops it.
async fn server<S: Store>(store: S, webhook: Option<Webhook>) -> (Engine<S>, oneshot::Sender<()>) {
    let engine = Engine::new(store);
    seed_engine(&engine).await;
    let mut config = Config::new(b"im-bench webhooks".to_vec());
    config.webhook = webhook;
    let app = App::new(engine.clone(), config);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind the server");
    let (stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(im_http::serve(listener, app, async {
        let _ = stopped.await;
    }));
    (engine, stop)
}

async fn compare<S: Store>(report: &mut Report, name: &str, with: S, without: S, secs: f64) {
    let (url, delivered) = receiver().await;
    let hook = Webhook::new(&url, b"im-bench".to_vec()).expect("a valid URL");
    let (hooked, stop_hooked) = server(with, Some(hook)).await;
    let (plain, stop_plain) = server(without, None).await;
    // Rounds in the order without, with, with, without, …, so that a
    // machine whose load drifts during the run (other processes) weighs on
    // both alike; each figure is the mean of its rounds.
    let round = secs / ROUNDS as f64;
    let (mut base, mut value, mut busy) = (0.0, 0.0, 0.0);
    let before = delivered.load(Ordering::Relaxed);
    for r in 0..2 * ROUNDS {
        if (r % 4 == 0) || (r % 4 == 3) {
            base += rate(&plain, Shape::Direct, SENDERS, round).await / ROUNDS as f64;
        } else {
            let started = Instant::now();
            value += rate(&hooked, Shape::Direct, SENDERS, round).await / ROUNDS as f64;
            busy += started.elapsed().as_secs_f64();
        }
    }
    let deliveries = (delivered.load(Ordering::Relaxed) - before) as f64 / busy;
    let figure = format!("engine send, {name}, DM, {SENDERS} senders, webhook delivering");
    report.add(
        Row::against(
            figure,
            value,
            "msgs/s",
            base,
            "the same sends without a webhook, rounds interleaved",
        )
        .target("≥ 0.90 of without", value >= 0.9 * base),
    );
    report.add(Row::plain(
        format!("webhook deliveries meanwhile, {name} (one at a time, in order)"),
        deliveries,
        "events/s",
    ));
    let _ = (stop_hooked.send(()), stop_plain.send(()));
}

/// Runs the webhook rows.
pub async fn run(report: &mut Report, scale: &Scale) {
    let secs = scale.engine_secs;
    compare(
        report,
        "memory",
        MemoryStore::new(),
        MemoryStore::new(),
        secs,
    )
    .await;
    let (a, b) = (
        tempfile::tempdir().expect("a temporary directory"),
        tempfile::tempdir().expect("a temporary directory"),
    );
    let open = |dir: &tempfile::TempDir| {
        im_store_sled::SledStore::open(im_store_sled::SledConfig::new(dir.path()))
            .expect("open sled")
    };
    compare(report, "sled durable", open(&a), open(&b), secs).await;
}
