//! The `im-http` binary: `serve` runs the server, `token` prints a token
//! signed with the server's secret.

use std::io::{IsTerminal, Write as _};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::str::FromStr;
use std::time::Duration;

#[path = "im-http/protection.rs"]
mod protection;
#[path = "im-http/send_hook.rs"]
mod send_hook;
#[path = "im-http/snapshot.rs"]
mod snapshot;
#[path = "im-http/webhook.rs"]
mod webhook;

use clap::{Args, Parser, Subcommand};
use im_engine::{Engine, Limits, MemoryStore, Retention, Store, UserId};
use im_http::error::ErrorChain;
use im_http::{App, Auth, Config};

/// The HTTP and Server-Sent Events server of im-engine.
#[derive(Debug, Parser)]
#[command(name = "im-http", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the server until SIGINT or SIGTERM.
    Serve(Box<Serve>),
    /// Print a token signed with the server's secret, e.g.
    /// `TOKEN=$(im-http token alice)`.
    Token(TokenArgs),
    /// Write a stopped server's store as JSON Lines (a running server's:
    /// `GET /v1/admin/export`).
    Export(snapshot::ExportArgs),
    /// Load an export into an empty store of any kind.
    Import(snapshot::ImportArgs),
}

/// Where the data lives.
#[derive(Debug, Clone)]
enum StoreSpec {
    /// `memory`: nothing survives a restart.
    Memory,
    /// `sled:<dir>`: an embedded database in `<dir>`.
    Sled(PathBuf),
    /// `redis://host:port[/db]` or `redis+cluster://h1:p1,h2:p2,…`: shared
    /// by every node that names it.
    Redis(String),
}

impl FromStr for StoreSpec {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        if s == "memory" {
            Ok(Self::Memory)
        } else if let Some(dir) = s.strip_prefix("sled:").filter(|d| !d.is_empty()) {
            Ok(Self::Sled(dir.into()))
        } else if ["redis://", "redis+cluster://"]
            .iter()
            .any(|scheme| s.starts_with(scheme))
        {
            Ok(Self::Redis(s.to_owned()))
        } else if s.starts_with("rediss://") || s.starts_with("rediss+cluster://") {
            // The redis client is built without TLS: refused here, at start,
            // rather than by a connection error on the first store call.
            Err(
                "Redis over TLS (rediss://) is not supported: reach Redis with \
                 redis:// on a private network or through a TLS tunnel \
                 (stunnel, spiped)"
                    .into(),
            )
        } else {
            Err("expected sled:<dir>, memory, redis://host:port[/db] or \
                 redis+cluster://h1:p1,h2:p2,..."
                .into())
        }
    }
}

impl StoreSpec {
    fn data_dir(&self) -> Option<&Path> {
        match self {
            Self::Memory | Self::Redis(_) => None,
            Self::Sled(dir) => Some(dir),
        }
    }
}

#[derive(Debug, Args)]
struct SecretArgs {
    /// The HS256 secret that signs tokens. Without it, the one kept in the
    /// data directory (file `secret`, created on the server's first start;
    /// with the `memory` store, a random one that dies with the process).
    #[arg(long, env = "IM_SECRET", hide_env_values = true)]
    secret: Option<String>,
    /// Read the secret from this file instead (surrounding whitespace is
    /// dropped): keeps it out of the process list and the environment, e.g.
    /// a mounted container secret.
    #[arg(long, env = "IM_SECRET_FILE", value_name = "PATH")]
    secret_file: Option<PathBuf>,
}

impl SecretArgs {
    /// The secret given by `--secret` or `--secret-file`, if any.
    fn given(&self) -> Result<Option<Vec<u8>>, BoxError> {
        match (&self.secret, &self.secret_file) {
            (Some(_), Some(_)) => {
                Err("pass one of --secret (IM_SECRET) and --secret-file (IM_SECRET_FILE)".into())
            }
            (Some(s), None) => Ok(Some(s.as_bytes().to_vec())),
            (None, Some(path)) => {
                let text = std::fs::read_to_string(path)
                    .map_err(|e| format!("cannot read the secret file {}: {e}", path.display()))?;
                let secret = text.trim();
                if secret.is_empty() {
                    return Err(format!("the secret file {} is empty", path.display()).into());
                }
                Ok(Some(secret.as_bytes().to_vec()))
            }
            (None, None) => Ok(None),
        }
    }
}

#[derive(Debug, Args)]
struct Serve {
    /// Address to listen on.
    #[arg(long, env = "IM_LISTEN", default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// Serve HTTPS (HTTP/2 and HTTP/1.1 by ALPN) with the certificate chain
    /// in this PEM file, the server's certificate first; needs --tls-key.
    /// SIGHUP reads both files again, for new connections.
    #[arg(long, env = "IM_TLS_CERT", value_name = "PEM", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// The private key of --tls-cert, in a PEM file (PKCS#8, PKCS#1 or SEC1).
    #[arg(long, env = "IM_TLS_KEY", value_name = "PEM", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Also serve GET /metrics on this address, without a token (on the
    /// main address it needs an admin token). Bind it where only the
    /// scraper reaches.
    #[arg(long, env = "IM_METRICS_LISTEN", value_name = "ADDR")]
    metrics_listen: Option<SocketAddr>,
    /// Where the data lives: `sled:<dir>` (an embedded database in <dir>),
    /// `memory` (lost on exit), `redis://host:port[/db]` or
    /// `redis+cluster://h1:p1,h2:p2,...` (shared by every node naming it;
    /// needs --secret or IM_SECRET, the same on every node; without TLS:
    /// `rediss://` is refused).
    #[arg(long, env = "IM_STORE", default_value = "sled:./im-data")]
    store: StoreSpec,
    #[command(flatten)]
    secret: SecretArgs,
    /// Largest message body, in bytes of JSON.
    #[arg(long, env = "IM_MAX_BODY_BYTES", default_value_t = Limits::default().body_bytes)]
    max_body_bytes: usize,
    /// Most fields in a profile or a group.
    #[arg(long, env = "IM_MAX_FIELDS", default_value_t = Limits::default().fields)]
    max_fields: usize,
    /// Largest profile or group field value, in bytes.
    #[arg(long, env = "IM_MAX_FIELD_BYTES", default_value_t = Limits::default().field_bytes)]
    max_field_bytes: usize,
    /// Most members in a group.
    #[arg(long, env = "IM_MAX_GROUP_MEMBERS", default_value_t = Limits::default().group_members)]
    max_group_members: usize,
    /// Most members in a room.
    #[arg(long, env = "IM_MAX_ROOM_MEMBERS", default_value_t = Limits::default().room_members)]
    max_room_members: usize,
    /// Most rooms one user is a member of (the conversation list reads
    /// each of the user's rooms' newest message).
    #[arg(long, env = "IM_MAX_ROOMS_PER_USER", default_value_t = Limits::default().rooms_per_user)]
    max_rooms_per_user: usize,
    /// Milliseconds between pushes of a room's messages to an event stream
    /// (0: each message at once).
    #[arg(long, env = "IM_ROOM_PUSH_INTERVAL_MS", default_value_t = 0)]
    room_push_interval_ms: u64,
    /// The most messages of one room a stream gets per push: the newest
    /// (the others are an `event: gap`).
    #[arg(long, env = "IM_ROOM_PUSH_COUNT", default_value_t = im_http::RoomPush::default().count)]
    room_push_count: usize,
    /// Largest page of history or of the conversation list.
    #[arg(long, env = "IM_MAX_PAGE", default_value_t = Limits::default().page)]
    max_page: usize,
    /// Events kept per user for resuming streams; an older cursor gets
    /// `event: reset`.
    #[arg(long, env = "IM_FEED_RETENTION_EVENTS", default_value_t = 100_000)]
    feed_retention_events: u64,
    /// Seconds between `: keep-alive` comments on an idle event stream.
    #[arg(long, env = "IM_KEEP_ALIVE_SECS", default_value_t = 15)]
    keep_alive_secs: u64,
    /// Milliseconds a user stays online after its last event stream
    /// closed; a stream opened within it announces nothing to its contacts
    /// (a page reload, a reconnect).
    #[arg(long, env = "IM_PRESENCE_GRACE_MS", default_value_t = 5000)]
    presence_grace_ms: u64,
    /// Milliseconds within which an event stream woken again after its
    /// last read waits out the rest, so that under load it reads and
    /// writes the events of several sends at once. At most this much
    /// latency under load, none when quiet; 0 reads at every wake-up (the
    /// lowest latency for quick exchanges, more reads and writes under
    /// load).
    #[arg(long, env = "IM_STREAM_COALESCE_MS", default_value_t = default_coalesce_ms())]
    stream_coalesce_ms: u64,
    /// Read receipts go live to the other members of groups up to this
    /// size (and always in direct conversations).
    #[arg(long, env = "IM_RECEIPTS_MAX_GROUP", default_value_t = im_engine::Config::default().receipts_max_group)]
    receipts_max_group: usize,
    /// Seconds a client may take to send a request head.
    #[arg(long, env = "IM_HEADER_TIMEOUT_SECS", default_value_t = 30)]
    header_timeout_secs: u64,
    /// Seconds the server keeps serving on SIGINT or SIGTERM with /readyz
    /// answering 503, before it stops accepting, so that a load balancer
    /// polling /readyz sends new clients elsewhere first.
    #[arg(long, env = "IM_SHUTDOWN_DELAY_SECS", default_value_t = 0)]
    shutdown_delay_secs: u64,
    /// How long a token that `POST /v1/login` answers is valid, e.g. `24h`,
    /// `30m`, `7days`.
    #[arg(long, env = "IM_LOGIN_TTL", default_value = "24h", value_parser = humantime::parse_duration)]
    login_ttl: Duration,
    /// Seconds open requests get to finish on shutdown.
    #[arg(long, env = "IM_SHUTDOWN_GRACE_SECS", default_value_t = 10)]
    shutdown_grace_secs: u64,
    /// sled only: answer writes before they reach the disk and let sled
    /// flush every <MS> milliseconds. Faster, but any crash (a killed
    /// process too) can lose the last <MS> of acknowledged writes. Without
    /// it, every write is flushed and fdatasynced before its answer
    /// (concurrent writes share one sync).
    #[arg(long, env = "IM_SLED_PERIODIC_FLUSH_MS", value_name = "MS")]
    sled_periodic_flush_ms: Option<u64>,
    /// redis only: put before every key and channel, so that several
    /// deployments share one Redis.
    #[arg(long, env = "IM_REDIS_PREFIX", default_value = "im:")]
    redis_prefix: String,
    /// redis only: every store call fails (503) when Redis has not answered
    /// within this many milliseconds.
    #[arg(long, env = "IM_REDIS_TIMEOUT_MS", default_value_t = 2000)]
    redis_timeout_ms: u64,
    /// An origin whose web pages may call the API and open event streams
    /// (`https://chat.example.com`); repeat it for more, or `*` for any.
    /// Without it, answers carry no CORS headers.
    #[arg(long, env = "IM_CORS_ORIGIN", value_delimiter = ',', value_name = "ORIGIN", value_parser = origin)]
    cors_origin: Vec<String>,
    /// Each request's log line names the first address of its
    /// X-Forwarded-For as the client, rather than the connection's peer.
    /// Only behind a reverse proxy that sets that header: a client can
    /// write anything in it.
    #[arg(long, env = "IM_TRUST_FORWARDED_FOR")]
    trust_forwarded_for: bool,
    /// How often, in milliseconds, the server reads which users are
    /// suspended: a suspension made through another node sharing the store
    /// takes effect here within this time (through this node, at once).
    #[arg(long, env = "IM_SUSPENSION_REFRESH_MS", default_value_t = 500, value_parser = clap::value_parser!(u64).range(50..))]
    suspension_refresh_ms: u64,
    /// Log lines as plain text or as JSON objects, one per line.
    #[arg(long, env = "IM_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    #[command(flatten)]
    protection: protection::ProtectionArgs,
    #[command(flatten)]
    send_hook: send_hook::SendHookArgs,
    #[command(flatten)]
    webhook: webhook::WebhookArgs,
}

/// How log lines are written (to stderr).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum LogFormat {
    /// `2026-01-01T00:00:00Z INFO request method=GET …`, coloured on a terminal.
    Text,
    /// One JSON object per line, its fields at the top level.
    Json,
}

/// Checks one `--cors-origin` as the library will read it.
/// The engine's default `coalesce`, in whole milliseconds.
fn default_coalesce_ms() -> u64 {
    u64::try_from(im_engine::Config::default().coalesce.as_millis()).unwrap_or(u64::MAX)
}

fn origin(s: &str) -> Result<String, String> {
    im_http::Cors::allow([s]).map_err(|e| e.to_string())?;
    Ok(s.to_owned())
}

#[derive(Debug, Args)]
struct TokenArgs {
    /// The user the token acts as.
    uid: String,
    /// Make it an admin token: it may do anything, and send as another user.
    #[arg(long)]
    admin: bool,
    /// How long the token is valid, e.g. `24h`, `30m`, `90s`, `7days`.
    #[arg(long, default_value = "24h", value_parser = humantime::parse_duration)]
    ttl: Duration,
    /// The server's store, to find its data directory (as in `serve`).
    #[arg(long, default_value = "sled:./im-data", conflicts_with = "data_dir")]
    store: StoreSpec,
    /// The server's data directory, where its `secret` file is.
    #[arg(long)]
    data_dir: Option<PathBuf>,
    #[command(flatten)]
    secret: SecretArgs,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Token(args) => match token(&args) {
            Ok(token) => {
                println!("{token}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("im-http token: {}", ErrorChain(e.as_ref()));
                ExitCode::FAILURE
            }
        },
        Command::Export(args) => offline("export", snapshot::export(args)),
        Command::Import(args) => offline("import", snapshot::import(args)),
        Command::Serve(args) => {
            init_logs(args.log_format);
            let runtime = match tokio::runtime::Runtime::new() {
                Ok(rt) => rt,
                Err(e) => {
                    eprintln!("im-http serve: cannot start the runtime: {e}");
                    return ExitCode::FAILURE;
                }
            };
            match runtime.block_on(serve(*args)) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    tracing::error!("{}", ErrorChain(e.as_ref()));
                    ExitCode::FAILURE
                }
            }
        }
    }
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Runs `export` or `import` to its end: the count of records on stderr,
/// or the error.
fn offline(name: &str, task: impl Future<Output = Result<u64, BoxError>>) -> ExitCode {
    let done = tokio::runtime::Runtime::new()
        .map_err(BoxError::from)
        .and_then(|rt| rt.block_on(task));
    match done {
        Ok(n) => {
            eprintln!("im-http {name}: {n} records");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("im-http {name}: {}", ErrorChain(e.as_ref()));
            ExitCode::FAILURE
        }
    }
}

/// Logs to stderr, filtered by `RUST_LOG` (default `info`).
fn init_logs(format: LogFormat) {
    let filter =
        tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into());
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => logs.with_ansi(std::io::stderr().is_terminal()).init(),
        LogFormat::Json => logs
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .init(),
    }
}

fn token(args: &TokenArgs) -> Result<String, BoxError> {
    let user = UserId::new(&args.uid)?;
    let dir = args.data_dir.as_deref().or(args.store.data_dir());
    let secret = match (args.secret.given()?, dir) {
        (Some(s), _) => s,
        (None, Some(dir)) => read_secret(dir)?.ok_or_else(|| {
            format!(
                "no secret in {}: start the server once, or pass --secret or IM_SECRET",
                dir.display()
            )
        })?,
        (None, None) if matches!(args.store, StoreSpec::Redis(_)) => {
            return Err(
                "a redis store keeps no secret and has no data directory: pass --secret or \
                 IM_SECRET, the one every serve node uses"
                    .into(),
            );
        }
        (None, None) => {
            return Err(
                "a memory store keeps its secret in memory: pass --secret or IM_SECRET \
                 to both serve and token"
                    .into(),
            );
        }
    };
    Ok(Auth::new(&secret).token(&user, args.admin, Some(args.ttl))?)
}

/// The secret kept in `dir`, if there is one.
fn read_secret(dir: &Path) -> Result<Option<Vec<u8>>, BoxError> {
    let path = dir.join("secret");
    match std::fs::read(&path) {
        Ok(bytes) => {
            let secret = String::from_utf8(bytes)
                .map_err(|_| format!("{} is not text", path.display()))?
                .trim()
                .as_bytes()
                .to_vec();
            if secret.is_empty() {
                return Err(format!("{} is empty", path.display()).into());
            }
            Ok(Some(secret))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(format!("cannot read {}: {e}", path.display()).into()),
    }
}

/// A new random secret: 32 bytes, as hex so that it can be passed as
/// `--secret` too.
fn new_secret() -> Vec<u8> {
    let bytes: [u8; 32] = rand::random();
    bytes
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<String>()
        .into_bytes()
}

/// The secret kept in `dir`, created (mode 0600) on first start.
fn data_dir_secret(dir: &Path) -> Result<Vec<u8>, BoxError> {
    if let Some(secret) = read_secret(dir)? {
        return Ok(secret);
    }
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let path = dir.join("secret");
    let secret = new_secret();
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    match options.open(&path) {
        Ok(mut file) => {
            file.write_all(&secret)
                .and_then(|()| file.sync_all())
                .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
            tracing::info!(path = %path.display(), "generated a new token secret");
            Ok(secret)
        }
        // Another process made it first: use theirs.
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            read_secret(dir)?.ok_or_else(|| format!("{} vanished", path.display()).into())
        }
        Err(e) => Err(format!("cannot create {}: {e}", path.display()).into()),
    }
}

async fn serve(args: Serve) -> Result<(), BoxError> {
    let secret = match (args.secret.given()?, args.store.data_dir()) {
        (Some(s), _) => s,
        (None, Some(dir)) => data_dir_secret(dir)?,
        (None, None) if matches!(args.store, StoreSpec::Redis(_)) => {
            return Err("a redis store needs --secret or --secret-file (IM_SECRET, IM_SECRET_FILE), the same on every node".into());
        }
        (None, None) => {
            tracing::warn!(
                "no --secret or IM_SECRET: using a random one that lives only as long as this \
                 process, so `im-http token` cannot sign for it"
            );
            new_secret()
        }
    };
    let engine_config = im_engine::Config {
        limits: Limits {
            body_bytes: args.max_body_bytes,
            fields: args.max_fields,
            field_bytes: args.max_field_bytes,
            group_members: args.max_group_members,
            room_members: args.max_room_members,
            rooms_per_user: args.max_rooms_per_user,
            page: args.max_page,
            ..Limits::default()
        },
        retention: Retention {
            events: Some(args.feed_retention_events),
            ..Retention::default()
        },
        presence_grace: Duration::from_millis(args.presence_grace_ms),
        coalesce: Duration::from_millis(args.stream_coalesce_ms),
        receipts_max_group: args.receipts_max_group,
        hooks: args.send_hook.config(),
        ..im_engine::Config::default()
    };
    let hooks = args.send_hook.hooks()?;
    let mut config = Config::new(secret);
    config.keep_alive = Duration::from_secs(args.keep_alive_secs.max(1));
    config.room_push = im_http::RoomPush {
        interval: Duration::from_millis(args.room_push_interval_ms),
        count: args.room_push_count.max(1),
    };
    config.header_read_timeout = Duration::from_secs(args.header_timeout_secs.max(1));
    config.shutdown_delay = Duration::from_secs(args.shutdown_delay_secs);
    config.shutdown_grace = Duration::from_secs(args.shutdown_grace_secs);
    config.login_ttl = args.login_ttl;
    args.protection.apply(&mut config);
    config.cors = im_http::Cors::allow(&args.cors_origin)?;
    config.trust_forwarded_for = args.trust_forwarded_for;
    config.suspension_refresh = Duration::from_millis(args.suspension_refresh_ms);
    config.webhook = args.webhook.webhook()?;
    let listener = bind(args.listen)?;
    let listeners = Listeners {
        main: listener,
        metrics: args.metrics_listen.map(bind).transpose()?,
        tls: tls(&args)?,
    };
    match &args.store {
        StoreSpec::Memory => {
            run(
                listeners,
                engine(MemoryStore::new(), engine_config, hooks),
                config,
            )
            .await
        }
        #[cfg(feature = "sled")]
        StoreSpec::Sled(dir) => {
            let mut sled_config = im_store_sled::SledConfig::new(dir.clone());
            if let Some(every_ms) = args.sled_periodic_flush_ms {
                sled_config =
                    sled_config.durability(im_store_sled::Durability::Periodic { every_ms });
            }
            // Opening blocks while sled recovers its log.
            let store =
                tokio::task::spawn_blocking(move || im_store_sled::SledStore::open(sled_config))
                    .await?
                    .map_err(|e| format!("cannot open the sled store: {}", ErrorChain(&e)))?;
            run(listeners, engine(store, engine_config, hooks), config).await
        }
        #[cfg(not(feature = "sled"))]
        StoreSpec::Sled(_) => Err("this build has no sled store (feature `sled`)".into()),
        #[cfg(feature = "redis")]
        StoreSpec::Redis(url) => {
            let redis_config = im_store_redis::RedisConfig::new(url.clone())
                .prefix(args.redis_prefix.clone())
                .timeout(Duration::from_millis(args.redis_timeout_ms.max(1)));
            let store = im_store_redis::RedisStore::open(redis_config)
                .await
                .map_err(|e| format!("cannot open the redis store: {}", ErrorChain(&e)))?;
            run(listeners, engine(store, engine_config, hooks), config).await
        }
        #[cfg(not(feature = "redis"))]
        StoreSpec::Redis(url) => {
            Err(format!("this build has no redis store (feature `redis`) for {url}").into())
        }
    }
}

/// Listens with a large accept backlog, so that bursts of new connections
/// wait in the kernel rather than being refused.
fn bind(addr: SocketAddr) -> Result<tokio::net::TcpListener, BoxError> {
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()
    } else {
        tokio::net::TcpSocket::new_v6()
    }?;
    socket.set_reuseaddr(true)?;
    socket
        .bind(addr)
        .map_err(|e| format!("cannot listen on {addr}: {e}"))?;
    Ok(socket.listen(4096)?)
}

/// The addresses `serve` listens on, and its certificates.
struct Listeners {
    main: tokio::net::TcpListener,
    metrics: Option<tokio::net::TcpListener>,
    tls: Option<Certificates>,
}

#[cfg(feature = "tls")]
type Certificates = std::sync::Arc<im_http::tls::Certificates>;
/// A build without TLS has none.
#[cfg(not(feature = "tls"))]
type Certificates = std::convert::Infallible;

/// The certificates of `--tls-cert` and `--tls-key`, if given.
fn tls(args: &Serve) -> Result<Option<Certificates>, BoxError> {
    let (Some(cert), Some(key)) = (&args.tls_cert, &args.tls_key) else {
        return Ok(None);
    };
    #[cfg(feature = "tls")]
    {
        let certs = im_http::tls::Certificates::load(cert, key)
            .map_err(|e| format!("cannot use the TLS certificate: {}", ErrorChain(&e)))?;
        Ok(Some(certs))
    }
    #[cfg(not(feature = "tls"))]
    {
        Err(format!(
            "this build has no TLS (feature `tls`) for {} and {}",
            cert.display(),
            key.display()
        )
        .into())
    }
}

/// Reads the certificate files again on each SIGHUP; a failed reload keeps
/// the certificates in use.
#[cfg(all(unix, feature = "tls"))]
async fn reload_on_sighup(certs: Certificates) {
    use tokio::signal::unix::{SignalKind, signal};
    let mut hangups = match signal(SignalKind::hangup()) {
        Ok(hangups) => hangups,
        Err(e) => {
            tracing::warn!(error = %e, "cannot watch SIGHUP: certificates are read only at start");
            return;
        }
    };
    while hangups.recv().await.is_some() {
        match certs.reload() {
            Ok(()) => tracing::info!("SIGHUP: reloaded the TLS certificate and key"),
            Err(e) => tracing::error!(
                error = %ErrorChain(&e),
                "SIGHUP: kept the TLS certificate in use, the new one cannot be used"
            ),
        }
    }
}

/// The engine over `store`, with the send hook if one is configured.
fn engine<S: Store>(
    store: S,
    config: im_engine::Config,
    hooks: Option<std::sync::Arc<dyn im_engine::Hooks>>,
) -> Engine<S> {
    Engine::builder(store)
        .config(config)
        .maybe_hooks(hooks)
        .build()
}

async fn run<S: Store>(
    listeners: Listeners,
    engine: Engine<S>,
    config: Config,
) -> Result<(), BoxError> {
    let app = App::new(engine, config);
    if let Some(metrics) = listeners.metrics {
        let addr = metrics.local_addr()?;
        tracing::info!(metrics_listen = %addr, "serving /metrics without a token");
        tokio::spawn(im_http::serve_metrics(metrics, app.clone()));
    }
    let listener = listeners.main;
    let addr = listener.local_addr()?;
    match listeners.tls {
        None => {
            tracing::info!(%addr, "listening");
            im_http::serve(listener, app, shutdown_signal()).await?;
        }
        #[cfg(feature = "tls")]
        Some(certs) => {
            tracing::info!(%addr, "listening with TLS (HTTP/2 and HTTP/1.1)");
            #[cfg(unix)]
            tokio::spawn(reload_on_sighup(std::sync::Arc::clone(&certs)));
            im_http::serve_tls(listener, app, certs, shutdown_signal()).await?;
        }
        #[cfg(not(feature = "tls"))]
        Some(never) => match never {},
    }
    tracing::info!("stopped");
    Ok(())
}

/// Resolves on SIGINT or SIGTERM.
async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot watch SIGTERM; SIGINT only");
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
