//! Limits that keep one client from starving the others.
//!
//! - Per-user rate limits on sends and on opening event streams (long polls
//!   included): a token bucket per user, off for admin tokens. Over the
//!   limit is `429 rate_limited` with `Retry-After`. The buckets are
//!   bounded: a bucket that has refilled is the same as none and is
//!   forgotten first when the table is full.
//! - Rate limits on password guesses: logins per user id named (whether it
//!   exists or not) and per client address, and password changes per user
//!   (which check the old password); the same `429 rate_limited`. A
//!   successful login empties the user's count, never the address's (a
//!   client that logs in to its own account must not earn guesses at
//!   others').
//! - A cap on each user's open event streams and long polls: one more is
//!   `429 too_many_streams` with `Retry-After` (a limit on the caller's use
//!   that lifts by itself, not a conflict with any resource's state).
//! - Caps on open connections, in all and per client address. A connection
//!   over either is answered `503 unavailable` at once, without reading its
//!   request, and closed; when even the answering is over its own small
//!   cap, the connection is closed without a word.
//!
//! Time-outs on slow or idle connections are hyper's header read timeout
//! ([`Config::header_read_timeout`](crate::Config::header_read_timeout)),
//! which also runs while a kept-alive connection waits for its next request,
//! and [`WriteTimeout`](crate::WriteTimeout) for a client that stops reading.

use std::collections::HashMap;
use std::hash::Hash;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use im_engine::{Actor, UserId};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::Semaphore;

use crate::error::ApiError;
use crate::metrics::{Metrics, Refused};

/// A token bucket's refill rate and size.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rate {
    /// Tokens added per second: the sustained rate.
    pub per_second: f64,
    /// The bucket's size: how many may come at once after a quiet spell.
    pub burst: u32,
}

impl Rate {
    /// `per_second` sustained, `burst` at once; `None` (no limit) when
    /// `per_second` is not above zero.
    pub fn new(per_second: f64, burst: u32) -> Option<Self> {
        (per_second > 0.0 && per_second.is_finite()).then_some(Self {
            per_second,
            burst: burst.max(1),
        })
    }
}

/// The server's limits on what one client may take. See the module docs.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Protection {
    /// Sends per user (`None`: unlimited).
    pub send_rate: Option<Rate>,
    /// Event streams and long polls opened per user (`None`: unlimited).
    pub stream_rate: Option<Rate>,
    /// Logins per user id, and password changes per user (`None`:
    /// unlimited).
    pub login_rate_user: Option<Rate>,
    /// Logins per client address (`None`: unlimited). Behind a reverse
    /// proxy every client has the proxy's address, unless the server trusts
    /// its `X-Forwarded-For` ([`Config::trust_forwarded_for`](crate::Config::trust_forwarded_for)).
    pub login_rate_addr: Option<Rate>,
    /// The most users whose rate buckets are kept at once.
    pub rate_users: usize,
    /// Event streams and long polls open at once per user (0: unlimited).
    pub streams_per_user: usize,
    /// Connections open at once (0: unlimited).
    pub max_connections: usize,
    /// Connections open at once from one client address (0: unlimited).
    /// Behind a reverse proxy every client has the proxy's address.
    pub max_connections_per_ip: usize,
}

impl Default for Protection {
    fn default() -> Self {
        Self {
            send_rate: Rate::new(10.0, 50),
            stream_rate: Rate::new(2.0, 20),
            login_rate_user: Rate::new(5.0 / 60.0, 5),
            login_rate_addr: Rate::new(20.0 / 60.0, 20),
            rate_users: 100_000,
            streams_per_user: 16,
            max_connections: 10_000,
            max_connections_per_ip: 1_000,
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Counters only: a panic mid-update leaves nothing worth refusing over.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

/// One token bucket per key (a user, an address), at most `max` of them.
#[derive(Debug)]
struct Buckets<K = UserId> {
    rate: Rate,
    max: usize,
    map: Mutex<HashMap<K, Bucket>>,
}

impl<K: Eq + Hash + Clone> Buckets<K> {
    fn new(rate: Rate, max: usize) -> Self {
        Self {
            rate,
            max,
            map: Mutex::default(),
        }
    }

    fn level(&self, b: &Bucket, now: Instant) -> f64 {
        let refill = now.saturating_duration_since(b.at).as_secs_f64() * self.rate.per_second;
        (b.tokens + refill).min(f64::from(self.rate.burst))
    }

    /// Takes a token for `user`, or answers how long until there is one.
    fn take(&self, user: &K, now: Instant) -> Result<(), Duration> {
        let mut map = lock(&self.map);
        if !map.contains_key(user) && map.len() >= self.max.max(1) {
            self.evict(&mut map, now);
        }
        let full = f64::from(self.rate.burst);
        let b = map.entry(user.clone()).or_insert(Bucket {
            tokens: full,
            at: now,
        });
        let tokens = (b.tokens
            + now.saturating_duration_since(b.at).as_secs_f64() * self.rate.per_second)
            .min(full);
        b.at = now;
        if tokens >= 1.0 {
            b.tokens = tokens - 1.0;
            Ok(())
        } else {
            b.tokens = tokens;
            Err(Duration::from_secs_f64(
                (1.0 - tokens) / self.rate.per_second,
            ))
        }
    }

    /// Makes room: forgets every full bucket (the same as none), and when
    /// every user is still busy, the fullest eighth, which only refills them.
    fn evict(&self, map: &mut HashMap<K, Bucket>, now: Instant) {
        let full = f64::from(self.rate.burst);
        map.retain(|_, b| self.level(b, now) < full);
        if map.len() >= self.max.max(1) {
            let mut levels: Vec<(f64, K)> = map
                .iter()
                .map(|(u, b)| (self.level(b, now), u.clone()))
                .collect();
            levels.sort_by(|a, b| b.0.total_cmp(&a.0));
            for (_, u) in levels.into_iter().take((map.len() / 8).max(1)) {
                map.remove(&u);
            }
        }
    }

    /// Forgets `key`'s bucket: it is full again.
    fn refill(&self, key: &K) {
        lock(&self.map).remove(key);
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        lock(&self.map).len()
    }
}

/// Counts held by [`Permit`]s, keyed by user or address, and their sum.
#[derive(Debug)]
struct Counts<K: Eq + Hash>(Mutex<(HashMap<K, usize>, usize)>);

impl<K: Eq + Hash + Clone> Counts<K> {
    fn new() -> Arc<Self> {
        Arc::new(Self(Mutex::new((HashMap::new(), 0))))
    }

    /// One more for `key`, unless it has `max` already or all keys have
    /// `max_total` together (0: no cap).
    fn acquire(self: &Arc<Self>, key: &K, max: usize, max_total: usize) -> Option<Permit<K>> {
        let mut guard = lock(&self.0);
        let (map, total) = &mut *guard;
        if max_total > 0 && *total >= max_total {
            return None;
        }
        let n = map.entry(key.clone()).or_insert(0);
        if max > 0 && *n >= max {
            return None;
        }
        *n += 1;
        *total += 1;
        Some(Permit {
            counts: Arc::clone(self),
            key: key.clone(),
        })
    }

    fn total(&self) -> usize {
        lock(&self.0).1
    }
}

/// Holds one count until dropped; the table forgets keys at zero, so its
/// size is bounded by what is open.
#[derive(Debug)]
pub(crate) struct Permit<K: Eq + Hash + Clone> {
    counts: Arc<Counts<K>>,
    key: K,
}

impl<K: Eq + Hash + Clone> Drop for Permit<K> {
    fn drop(&mut self) {
        let mut guard = lock(&self.counts.0);
        let (map, total) = &mut *guard;
        if let Some(n) = map.get_mut(&self.key) {
            *n -= 1;
            *total -= 1;
            if *n == 0 {
                map.remove(&self.key);
            }
        }
    }
}

/// Keeps one event stream or long poll counted as open.
pub(crate) type StreamPermit = Permit<UserId>;

/// The per-user limits of one [`App`](crate::App).
#[derive(Debug)]
pub(crate) struct Guards {
    sends: Option<Buckets>,
    streams: Option<Buckets>,
    login_users: Option<Buckets>,
    login_addrs: Option<Buckets<IpAddr>>,
    open: Arc<Counts<UserId>>,
    streams_per_user: usize,
}

/// How long a client over its stream cap is told to wait.
const STREAM_RETRY: Duration = Duration::from_secs(5);

impl Guards {
    pub(crate) fn new(p: &Protection) -> Self {
        Self {
            sends: p.send_rate.map(|r| Buckets::new(r, p.rate_users)),
            streams: p.stream_rate.map(|r| Buckets::new(r, p.rate_users)),
            login_users: p.login_rate_user.map(|r| Buckets::new(r, p.rate_users)),
            login_addrs: p.login_rate_addr.map(|r| Buckets::new(r, p.rate_users)),
            open: Counts::new(),
            streams_per_user: p.streams_per_user,
        }
    }

    /// Counts one send by `actor` against its send rate (a rate-limit
    /// check: the send itself is the engine's).
    ///
    /// # Errors
    ///
    /// [`ApiError::RateLimited`] over the user's send rate.
    pub(crate) fn limit_sends(&self, actor: &Actor) -> Result<(), ApiError> {
        take(self.sends.as_ref(), actor)
    }

    /// Counts one login attempt from `addr` (when known).
    ///
    /// # Errors
    ///
    /// [`ApiError::RateLimited`] over the address's login rate.
    pub(crate) fn limit_login_addr(&self, addr: Option<IpAddr>) -> Result<(), ApiError> {
        match (&self.login_addrs, addr) {
            (Some(b), Some(addr)) => b.take(&addr, Instant::now()).map_err(ApiError::RateLimited),
            _ => Ok(()),
        }
    }

    /// Counts one password guess for `user`: a login naming it, or a
    /// password change by it (admins are not limited).
    ///
    /// # Errors
    ///
    /// [`ApiError::RateLimited`] over the user's login rate.
    pub(crate) fn limit_password_guess(&self, actor: &Actor) -> Result<(), ApiError> {
        take(self.login_users.as_ref(), actor)
    }

    /// Empties `user`'s count of password guesses, after a login that
    /// succeeded (the address's count stays).
    pub(crate) fn login_succeeded(&self, user: &UserId) {
        if let Some(b) = &self.login_users {
            b.refill(user);
        }
    }

    /// Admits one event stream or long poll by `actor`; it counts as open
    /// until the permit is dropped (`None` for admins, who are not counted).
    ///
    /// # Errors
    ///
    /// [`ApiError::RateLimited`] over the user's rate of opening streams,
    /// [`ApiError::TooManyStreams`] over its cap of open ones.
    pub(crate) fn open_stream(&self, actor: &Actor) -> Result<Option<StreamPermit>, ApiError> {
        if actor.admin {
            return Ok(None);
        }
        let permit = self
            .open
            .acquire(&actor.user, self.streams_per_user, 0)
            .ok_or(ApiError::TooManyStreams(STREAM_RETRY))?;
        take(self.streams.as_ref(), actor)?;
        Ok(Some(permit))
    }
}

fn take(buckets: Option<&Buckets>, actor: &Actor) -> Result<(), ApiError> {
    match buckets {
        Some(b) if !actor.admin => b
            .take(&actor.user, Instant::now())
            .map_err(ApiError::RateLimited),
        _ => Ok(()),
    }
}

/// The connection caps of one [`serve`](crate::serve).
#[derive(Debug)]
pub(crate) struct Connections {
    open: Arc<Counts<IpAddr>>,
    max: usize,
    per_ip: usize,
    metrics: Arc<Metrics>,
    /// Refusals being written at once: past this, refused connections are
    /// closed without an answer, so refusing costs little.
    refusing: Arc<Semaphore>,
}

/// Keeps one connection counted as open.
pub(crate) type ConnectionPermit = Permit<IpAddr>;

impl Connections {
    pub(crate) fn new(p: &Protection, metrics: Arc<Metrics>) -> Self {
        Self {
            open: Counts::new(),
            max: p.max_connections,
            per_ip: p.max_connections_per_ip,
            metrics,
            refusing: Arc::new(Semaphore::new(64)),
        }
    }

    /// Admits a connection from `ip`, or refuses it (answering 503 when it
    /// can afford to) and answers `None`.
    pub(crate) fn admit(
        &self,
        stream: TcpStream,
        ip: IpAddr,
    ) -> Option<(TcpStream, ConnectionPermit)> {
        if let Some(permit) = self.open.acquire(&ip, self.per_ip, self.max) {
            return Some((stream, permit));
        }
        let why = if self.max > 0 && self.open.total() >= self.max {
            Refused::MaxConnections
        } else {
            Refused::MaxConnectionsPerIp
        };
        self.metrics.refused(why);
        tracing::debug!(%ip, ?why, "connection refused: over the connection cap");
        if let Ok(slot) = Arc::clone(&self.refusing).try_acquire_owned() {
            tokio::spawn(async move {
                let _slot = slot;
                let _ = tokio::time::timeout(Duration::from_secs(2), refuse(stream)).await;
            });
        }
        None
    }
}

/// Writes a 503, then reads what the client sends until it closes, so that
/// closing does not reset the connection before the client has read it.
async fn refuse(mut stream: TcpStream) -> std::io::Result<()> {
    stream.write_all(&refusal()).await?;
    stream.shutdown().await?;
    let mut buf = [0u8; 4096];
    while stream.read(&mut buf).await? > 0 {}
    Ok(())
}

/// The whole answer to a connection over the cap.
fn refusal() -> Vec<u8> {
    let e = ApiError::TooManyConnections;
    let status = e.status();
    let body =
        serde_json::json!({"error": {"code": e.code(), "message": e.to_string()}}).to_string();
    format!(
        "HTTP/1.1 {} {}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\
         retry-after: 1\r\nx-request-id: {:032x}\r\nconnection: close\r\n\r\n{body}",
        status.as_u16(),
        status.canonical_reason().unwrap_or_default(),
        body.len(),
        rand::random::<u128>(),
    )
    .into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(s: &str) -> UserId {
        UserId::new(s).unwrap()
    }

    fn buckets(per_second: f64, burst: u32, max: usize) -> Buckets {
        Buckets::new(Rate::new(per_second, burst).unwrap(), max)
    }

    #[test]
    fn a_bucket_allows_its_burst_then_its_rate() {
        let b = buckets(2.0, 3, 10);
        let t0 = Instant::now();
        for _ in 0..3 {
            b.take(&user("a"), t0).unwrap();
        }
        let wait = b.take(&user("a"), t0).unwrap_err();
        assert_eq!(wait, Duration::from_millis(500));
        // Another user has its own bucket.
        b.take(&user("b"), t0).unwrap();
        // Half a second later, one more.
        let t1 = t0 + Duration::from_millis(500);
        b.take(&user("a"), t1).unwrap();
        assert!(b.take(&user("a"), t1).is_err());
        // Long after, the burst again and no more.
        let t2 = t1 + Duration::from_secs(60);
        for _ in 0..3 {
            b.take(&user("a"), t2).unwrap();
        }
        assert!(b.take(&user("a"), t2).is_err());
    }

    #[test]
    fn the_table_stays_bounded_and_forgets_refilled_buckets_first() {
        let b = buckets(1.0, 2, 4);
        let t0 = Instant::now();
        for i in 0..100 {
            b.take(&user(&format!("u{i}")), t0).unwrap();
            assert!(b.len() <= 4);
        }
        // A limited user is remembered while idle ones come and go.
        let t1 = t0 + Duration::from_secs(10);
        b.take(&user("busy"), t1).unwrap();
        b.take(&user("busy"), t1).unwrap();
        for i in 0..3 {
            b.take(&user(&format!("v{i}")), t1 + Duration::from_secs(5))
                .unwrap();
        }
        assert!(b.take(&user("busy"), t1).is_err());
    }

    #[test]
    fn rates_of_zero_are_off() {
        assert_eq!(Rate::new(0.0, 5), None);
        assert_eq!(Rate::new(f64::NAN, 5), None);
        assert_eq!(Rate::new(1.0, 0).unwrap().burst, 1);
    }

    #[test]
    fn permits_count_until_dropped_and_forget_keys_at_zero() {
        let counts = Counts::new();
        let a = counts.acquire(&user("a"), 2, 0).unwrap();
        let b = counts.acquire(&user("a"), 2, 0).unwrap();
        assert!(counts.acquire(&user("a"), 2, 0).is_none());
        assert!(counts.acquire(&user("b"), 2, 0).is_some());
        drop(a);
        let c = counts.acquire(&user("a"), 2, 0).unwrap();
        drop(b);
        assert_eq!(counts.total(), 1);
        // The cap on the sum.
        assert!(counts.acquire(&user("z"), 0, 1).is_none());
        let _d = counts.acquire(&user("z"), 0, 2).unwrap();
        drop(c);
        assert_eq!(counts.total(), 1);
        assert_eq!(lock(&counts.0).0.len(), 1);
    }

    #[test]
    fn admins_are_not_limited() {
        let guards = Guards::new(&Protection {
            send_rate: Rate::new(1.0, 1),
            streams_per_user: 1,
            ..Protection::default()
        });
        let admin = Actor::admin(user("root"));
        for _ in 0..10 {
            guards.limit_sends(&admin).unwrap();
            assert!(guards.open_stream(&admin).unwrap().is_none());
        }
        let alice = Actor::user(user("alice"));
        guards.limit_sends(&alice).unwrap();
        assert_eq!(
            guards.limit_sends(&alice).unwrap_err().code(),
            "rate_limited"
        );
        let _s = guards.open_stream(&alice).unwrap();
        assert_eq!(
            guards.open_stream(&alice).unwrap_err().code(),
            "too_many_streams"
        );
    }
}
