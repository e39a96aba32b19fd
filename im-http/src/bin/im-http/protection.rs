//! The `serve` options of rate limits, connection caps and what one client
//! may hold.

use std::time::Duration;

use clap::Args;
use im_http::{Config, Protection, Rate};

/// Rate limits (per user; admin tokens are not limited), connection caps,
/// and what one client may hold.
#[derive(Debug, Args)]
pub struct ProtectionArgs {
    /// Sends per second per user, sustained (0: unlimited); over it, 429
    /// `rate_limited` with `Retry-After`.
    #[arg(
        long,
        env = "IM_SEND_RATE",
        default_value_t = 10.0,
        value_name = "PER_SEC"
    )]
    send_rate: f64,
    /// Sends per user at once after a quiet spell.
    #[arg(long, env = "IM_SEND_BURST", default_value_t = 50)]
    send_burst: u32,
    /// Event streams and long polls opened per second per user, sustained
    /// (0: unlimited).
    #[arg(
        long,
        env = "IM_STREAM_RATE",
        default_value_t = 2.0,
        value_name = "PER_SEC"
    )]
    stream_rate: f64,
    /// Event streams and long polls opened per user at once after a quiet
    /// spell.
    #[arg(long, env = "IM_STREAM_BURST", default_value_t = 20)]
    stream_burst: u32,
    /// Event streams and long polls open at once per user (0: unlimited);
    /// one more is 429 `too_many_streams`.
    #[arg(long, env = "IM_MAX_STREAMS_PER_USER", default_value_t = 16)]
    max_streams_per_user: usize,
    /// Connections open at once (0: unlimited); more are answered 503 and
    /// closed.
    #[arg(long, env = "IM_MAX_CONNECTIONS", default_value_t = 10_000)]
    max_connections: usize,
    /// Connections open at once from one client address (0: unlimited).
    /// Behind a reverse proxy, every client has the proxy's address: raise
    /// it or set 0, and cap connections in the proxy.
    #[arg(long, env = "IM_MAX_CONNECTIONS_PER_IP", default_value_t = 1_000)]
    max_connections_per_ip: usize,
    /// Password guesses per minute per user id: logins naming it (whether
    /// it exists or not) and changes of its password, at most this many at
    /// once and then one every 60/N seconds (0: unlimited); over it, 429
    /// `rate_limited`. A login that succeeds empties the user's count.
    #[arg(
        long,
        env = "IM_LOGIN_RATE_USER",
        default_value_t = 5,
        value_name = "PER_MIN"
    )]
    login_rate_user: u32,
    /// Logins per minute per client address, counted as for
    /// `--login-rate-user` (0: unlimited); never emptied by a success.
    #[arg(
        long,
        env = "IM_LOGIN_RATE_ADDR",
        default_value_t = 20,
        value_name = "PER_MIN"
    )]
    login_rate_addr: u32,
    /// The longest `?wait=` a long poll may ask for, in seconds (docs/API.md:
    /// at most 60); a longer one is 400.
    #[arg(long, env = "IM_LONG_POLL_MAX_SECS", default_value_t = 60, value_parser = clap::value_parser!(u64).range(0..=60))]
    long_poll_max_secs: u64,
}

impl ProtectionArgs {
    /// Sets what these options say in `config`.
    pub fn apply(&self, config: &mut Config) {
        config.protection = self.protection();
        config.long_poll_max = Duration::from_secs(self.long_poll_max_secs);
        config.long_poll_default = config.long_poll_default.min(config.long_poll_max);
    }

    fn protection(&self) -> Protection {
        let mut p = Protection::default();
        p.send_rate = Rate::new(self.send_rate, self.send_burst);
        p.stream_rate = Rate::new(self.stream_rate, self.stream_burst);
        let per_minute = |n: u32| Rate::new(f64::from(n) / 60.0, n);
        p.login_rate_user = per_minute(self.login_rate_user);
        p.login_rate_addr = per_minute(self.login_rate_addr);
        p.streams_per_user = self.max_streams_per_user;
        p.max_connections = self.max_connections;
        p.max_connections_per_ip = self.max_connections_per_ip;
        p
    }
}
