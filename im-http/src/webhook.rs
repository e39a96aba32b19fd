//! Webhooks (`--webhook-url`, `--webhook-secret`): every firehose event
//! POSTed to a URL as `{"id", "event", "data"}`, signed with
//! `X-Im-Signature: sha256=<hex HMAC-SHA256 of the body>`, in order, each
//! retried with capped exponential backoff until it answers 2xx.
//!
//! One task per server reads the firehose from the cursor last
//! acknowledged, which it keeps in the store ([`Store::set_acked`]) after
//! each page of 2xx answers (and every 200 ms within one), so a restart
//! resumes after the last acknowledged event stored: delivery is at least
//! once (events acknowledged after the last store are sent again), and the
//! receiver deduplicates by `id`. Among servers
//! sharing a store, the one holding the store's lease ([`Store::lease`])
//! delivers; the others wait, and take over once it stops renewing. The
//! task only reads the store: a slow or dead receiver never slows a send.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use hmac::{Hmac, Mac};
use http_body_util::{BodyExt, Full};
use hyper::header::{CONTENT_TYPE, HeaderValue};
use hyper::{Method, Request, Uri};
use im_engine::{Actor, Engine, FireCursor, FireDelivered, FireStart, Store, UserId};
use sha2::Sha256;

use crate::firehose::FireEvent;
use crate::metrics::Metrics;

/// The name of the acknowledged cursor and of the lease in the store.
const NAME: &str = "webhook";

/// The most events read from the firehose at once.
const PAGE: usize = 100;

/// How long delivery waits after catching up before it reads again.
const GATHER: Duration = Duration::from_millis(20);

/// While a page is delivered, the acknowledged cursor is stored at least
/// this often (and at its end).
const ACK_EVERY: Duration = Duration::from_millis(200);

/// A URL `--webhook-url` cannot use.
#[derive(Debug, thiserror::Error)]
#[error("the webhook URL must be http(s)://host[:port]/path: {0}")]
pub struct InvalidWebhookUrl(String);

/// Where and how events are delivered.
#[derive(Clone)]
pub struct Webhook {
    url: Uri,
    secret: Vec<u8>,
    /// The first retry's delay; each next one doubles, up to `backoff_cap`.
    pub backoff_first: Duration,
    /// The longest delay between two attempts (default 30 s).
    pub backoff_cap: Duration,
    /// How long one POST may take before it counts as failed.
    pub request_timeout: Duration,
    /// How long the delivering server's lease lasts unless renewed; another
    /// server takes over this long after the holder stops.
    pub lease_ttl: Duration,
}

impl std::fmt::Debug for Webhook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Webhook")
            .field("url", &self.url)
            .field("secret", &"<redacted>")
            .field("backoff_first", &self.backoff_first)
            .field("backoff_cap", &self.backoff_cap)
            .field("request_timeout", &self.request_timeout)
            .field("lease_ttl", &self.lease_ttl)
            .finish()
    }
}

impl Webhook {
    /// Delivery to `url` signed with `secret`, with the default timings.
    ///
    /// # Errors
    ///
    /// [`InvalidWebhookUrl`] for anything but an absolute `http://` or
    /// `https://` URL.
    pub fn new(url: &str, secret: impl Into<Vec<u8>>) -> Result<Self, InvalidWebhookUrl> {
        let uri =
            crate::hook_client::parse_url(url).ok_or_else(|| InvalidWebhookUrl(url.into()))?;
        Ok(Self {
            url: uri,
            secret: secret.into(),
            backoff_first: Duration::from_millis(100),
            backoff_cap: Duration::from_secs(30),
            request_timeout: Duration::from_secs(10),
            lease_ttl: Duration::from_secs(10),
        })
    }

    /// The signature header's value for `body`: `sha256=<hex>`.
    pub fn signature(&self, body: &[u8]) -> String {
        signature(&self.secret, body)
    }
}

/// `sha256=<hex HMAC-SHA256 of body under secret>`.
pub fn signature(secret: &[u8], body: &[u8]) -> String {
    // HMAC takes a key of any length.
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes any key length");
    mac.update(body);
    let hex: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("sha256={hex}")
}

/// The delivery task of one server.
pub(crate) struct Delivery<S> {
    engine: Engine<S>,
    hook: Webhook,
    metrics: Arc<Metrics>,
    client: crate::hook_client::HookClient,
    /// This server's name for the lease.
    holder: String,
    actor: Actor,
}

impl<S: Store> Delivery<S> {
    pub(crate) fn new(engine: Engine<S>, hook: Webhook, metrics: Arc<Metrics>) -> Self {
        Self {
            engine,
            hook,
            metrics,
            client: crate::hook_client::client(),
            holder: format!("{:016x}", rand::random::<u64>()),
            actor: Actor::admin(UserId::new("webhook").expect("a valid id")),
        }
    }

    /// Delivers until the server shuts down (the future is dropped).
    pub(crate) async fn run(self) {
        loop {
            match self.lead().await {
                Ok(()) => {}
                Err(e) => tracing::warn!(error = %e, "webhook delivery paused"),
            }
            tokio::time::sleep(self.hook.lease_ttl / 3).await;
        }
    }

    /// Whether this server holds the lease (taking or renewing it).
    async fn leading(&self) -> Result<bool, String> {
        let store = self.engine.store();
        store
            .lease(NAME, &self.holder, self.hook.lease_ttl)
            .await
            .map_err(|e| e.into().to_string())
    }

    /// While this server holds the lease: reads the firehose from the
    /// acknowledged cursor and delivers each event. Returns once the lease
    /// is lost (or was never had).
    async fn lead(&self) -> Result<(), String> {
        if !self.leading().await? {
            return Ok(());
        }
        tracing::info!(holder = %self.holder, "delivering webhooks");
        let store = self.engine.store();
        let acked = store.acked(NAME).await.map_err(|e| e.into().to_string())?;
        // What the receiver has: the cursor last acknowledged (the start
        // of every partition when none was).
        let mut acked = match acked {
            Some(cursor) => cursor.parse().map_err(|e| format!("{e}"))?,
            None => FireCursor {
                epoch: store.epoch(),
                pos: vec![0; store.firehose_partitions()],
            },
        };
        let mut start = match acked.pos.iter().all(|p| *p == 0) {
            true => FireStart::Oldest,
            false => FireStart::After(acked.clone()),
        };
        let renew_every = self.hook.lease_ttl / 3;
        let mut renewed = tokio::time::Instant::now();
        loop {
            let page = self
                .engine
                .fire_poll(&self.actor, start.clone(), renew_every, Some(PAGE))
                .await
                .map_err(|e| e.to_string())?;
            self.backlog(&acked).await;
            let mut stored = tokio::time::Instant::now();
            for event in &page.events {
                if !self.deliver(event, &acked).await? {
                    self.store_acked(&acked).await?;
                    return Ok(());
                }
                self.metrics.webhook_delivered();
                acked = event.cursor.clone();
                // Stored at the end of the page, and meanwhile every
                // `ACK_EVERY`: a store write per event would cost the
                // sends more than it saves in repeats after a crash.
                if stored.elapsed() >= ACK_EVERY {
                    self.store_acked(&acked).await?;
                    stored = tokio::time::Instant::now();
                }
            }
            if !page.events.is_empty() {
                self.store_acked(&acked).await?;
            }
            self.backlog(&acked).await;
            start = FireStart::After(page.next);
            if !page.events.is_empty() && page.events.len() < PAGE {
                // Caught up: let a few events gather rather than read the
                // store for each one as it lands.
                tokio::time::sleep(GATHER).await;
            }
            if renewed.elapsed() >= renew_every || page.events.is_empty() {
                if !self.leading().await? {
                    return Ok(());
                }
                renewed = tokio::time::Instant::now();
            }
        }
    }

    /// Stores `acked` as the last event acknowledged.
    async fn store_acked(&self, acked: &FireCursor) -> Result<(), String> {
        let store = self.engine.store();
        store
            .set_acked(NAME, &acked.to_string())
            .await
            .map_err(|e| e.into().to_string())
    }

    /// Sets the backlog gauge: the events after `cursor`, the last one
    /// acknowledged.
    async fn backlog(&self, cursor: &FireCursor) {
        let store = self.engine.store();
        let mut behind = 0;
        for (part, pos) in cursor.pos.iter().enumerate() {
            if let Ok(read) = store.firehose(part, u64::MAX, 0).await {
                behind += read.head.saturating_sub(*pos);
            }
        }
        self.metrics.webhook_backlog(behind);
    }

    /// POSTs one event until it answers 2xx: `Ok(true)`. `Ok(false)` when
    /// the lease was lost meanwhile (another server delivers now).
    async fn deliver(&self, event: &FireDelivered, acked: &FireCursor) -> Result<bool, String> {
        let body = serde_json::to_vec(&FireEvent::new(event, &self.actor.user))
            .map_err(|e| e.to_string())?;
        let body = Bytes::from(body);
        let signature = self.hook.signature(&body);
        let mut delay = self.hook.backoff_first;
        let mut renewed = tokio::time::Instant::now();
        loop {
            match self.post(&body, &signature).await {
                Ok(()) => return Ok(true),
                Err(e) => {
                    self.metrics.webhook_failed();
                    tracing::debug!(error = %e, id = %event.cursor, "webhook attempt failed");
                }
            }
            self.backlog(acked).await;
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(self.hook.backoff_cap);
            if renewed.elapsed() >= self.hook.lease_ttl / 3 {
                if !self.leading().await? {
                    return Ok(false);
                }
                renewed = tokio::time::Instant::now();
            }
        }
    }

    async fn post(&self, body: &Bytes, signature: &str) -> Result<(), String> {
        let mut req = Request::new(Full::new(body.clone()));
        *req.method_mut() = Method::POST;
        *req.uri_mut() = self.hook.url.clone();
        let headers = req.headers_mut();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        headers.insert(
            "x-im-signature",
            HeaderValue::from_str(signature).map_err(|e| e.to_string())?,
        );
        let attempt = async {
            let resp = self.client.request(req).await.map_err(|e| e.to_string())?;
            let status = resp.status();
            // Read the answer, so the connection can be used again.
            let _ = resp.into_body().collect().await;
            if status.is_success() {
                Ok(())
            } else {
                Err(format!("answered {status}"))
            }
        };
        tokio::time::timeout(self.hook.request_timeout, attempt)
            .await
            .map_err(|_| "timed out".to_owned())?
    }
}
