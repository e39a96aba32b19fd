//! The `serve` options of the send hook: an HTTP service that sees each
//! would-be message before it is committed.

use std::sync::Arc;
use std::time::Duration;

use clap::Args;
use im_engine::{HookConfig, Hooks, OnTimeout};
use im_http::{InvalidHookUrl, SendHook};

/// What happens to a send when the hook does not answer in time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OnTimeoutArg {
    /// Refuse it: 403 `hook_unavailable`.
    Refuse,
    /// Send it as it is.
    Allow,
}

/// The send hook.
#[derive(Debug, Args)]
pub struct SendHookArgs {
    /// POST each would-be message to this http:// or https:// URL before it is
    /// committed: a 2xx lets it through (`{"body": {…}}` replaces its
    /// body), a 4xx refuses it with the answer's `{"error": {"code",
    /// "message"}}`, anything else counts as a time-out.
    #[arg(long, env = "IM_SEND_HOOK_URL", value_name = "URL")]
    send_hook_url: Option<String>,
    /// How long a send waits for the hook, in milliseconds.
    #[arg(long, env = "IM_SEND_HOOK_TIMEOUT_MS", default_value_t = 2000, value_parser = clap::value_parser!(u64).range(1..))]
    send_hook_timeout_ms: u64,
    /// What a send does when the hook does not answer in time, answers 5xx
    /// or cannot be reached.
    #[arg(long, env = "IM_SEND_HOOK_ON_TIMEOUT", value_enum, default_value_t = OnTimeoutArg::Refuse)]
    send_hook_on_timeout: OnTimeoutArg,
}

impl SendHookArgs {
    /// The engine's hook settings.
    pub fn config(&self) -> HookConfig {
        HookConfig {
            send_timeout: Duration::from_millis(self.send_hook_timeout_ms),
            on_timeout: match self.send_hook_on_timeout {
                OnTimeoutArg::Refuse => OnTimeout::Refuse,
                OnTimeoutArg::Allow => OnTimeout::Allow,
            },
        }
    }

    /// The hook, when a URL is given.
    pub fn hooks(&self) -> Result<Option<Arc<dyn Hooks>>, InvalidHookUrl> {
        let Some(url) = &self.send_hook_url else {
            return Ok(None);
        };
        Ok(Some(Arc::new(SendHook::new(url)?)))
    }
}
