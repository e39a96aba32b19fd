//! The `serve` options of the webhook: where every firehose event is
//! POSTed, signed.

use clap::Args;
use im_http::{InvalidWebhookUrl, Webhook};

/// The webhook.
#[derive(Debug, Args)]
pub struct WebhookArgs {
    /// POST every stored event (the firehose of `GET /v1/admin/events`) to
    /// this http:// or https:// URL as `{"id", "event", "data"}`, in
    /// order, each retried with backoff (capped at 30 s) until it answers
    /// 2xx; delivery resumes after the last acknowledged event on restart.
    #[arg(
        long,
        env = "IM_WEBHOOK_URL",
        value_name = "URL",
        requires = "webhook_secret"
    )]
    webhook_url: Option<String>,
    /// The key of each POST's `X-Im-Signature: sha256=<hex HMAC-SHA256 of
    /// the body>`; required with `--webhook-url`.
    #[arg(
        long,
        env = "IM_WEBHOOK_SECRET",
        value_name = "SECRET",
        hide_env_values = true
    )]
    webhook_secret: Option<String>,
    /// With several servers on one Redis, one delivers; another takes over
    /// this many milliseconds after it stops.
    #[arg(long, env = "IM_WEBHOOK_LEASE_MS", default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(100..))]
    webhook_lease_ms: u64,
}

impl WebhookArgs {
    /// The webhook, when a URL is given.
    pub fn webhook(&self) -> Result<Option<Webhook>, InvalidWebhookUrl> {
        match (&self.webhook_url, &self.webhook_secret) {
            (Some(url), Some(secret)) => {
                let mut hook = Webhook::new(url, secret.as_bytes())?;
                hook.lease_ttl = std::time::Duration::from_millis(self.webhook_lease_ms);
                Ok(Some(hook))
            }
            _ => Ok(None),
        }
    }
}
