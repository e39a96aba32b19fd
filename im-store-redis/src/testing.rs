//! Real `redis-server` processes for tests: a single server or a local
//! 3-master cluster, each on free ports in a temporary directory. For tests
//! only: no stability promise.
//!
//! - [`shared_url`] and [`shared_cluster_url`] start one server (cluster)
//!   per test binary, on first use, or answer `IM_TEST_REDIS_URL`
//!   (`IM_TEST_REDIS_CLUSTER_URL`) when set. Give each test its own
//!   [`unique_prefix`].
//! - [`RedisServer`] is a server of one test's own, which it may kill and
//!   restart (the fault tests).
//!
//! When `redis-server` is not on the PATH these panic with a message that
//! says how to install it. `IM_SKIP_REDIS=1` is the only way to skip the
//! Redis tests (see [`skip`]); they are never skipped by default.
//!
//! Every server runs under a small shell watchdog that kills it when the
//! test process is gone, so servers shared through a `static` (never
//! dropped) do not outlive their test binary.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Whether the person running the tests asked to skip the Redis ones
/// (`IM_SKIP_REDIS=1`).
pub fn skip() -> bool {
    std::env::var("IM_SKIP_REDIS").is_ok_and(|v| v == "1")
}

const INSTALL: &str = "the Redis tests need redis-server and redis-cli on the PATH: install them \
     (Debian/Ubuntu: apt-get install redis-server; macOS: brew install redis), or point \
     IM_TEST_REDIS_URL (and IM_TEST_REDIS_CLUSTER_URL) at servers of your own, or skip these \
     tests explicitly with IM_SKIP_REDIS=1";

/// Whether `tool` (`redis-server`, `redis-cli`) runs from the PATH.
pub fn available(tool: &str) -> bool {
    Command::new(tool)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn require(tool: &str) {
    assert!(available(tool), "{tool} not found: {INSTALL}");
}

/// A key prefix no other test uses.
pub fn unique_prefix() -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    format!(
        "t{:x}-{}-{:x}:",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed),
        rand::random::<u32>()
    )
}

/// The URL of this test binary's shared single server.
pub fn shared_url() -> String {
    if let Ok(url) = std::env::var("IM_TEST_REDIS_URL") {
        return url;
    }
    static SERVER: OnceLock<RedisServer> = OnceLock::new();
    SERVER.get_or_init(|| RedisServer::start(false)).url()
}

/// The URL (`redis+cluster://…`) of this test binary's shared cluster.
pub fn shared_cluster_url() -> String {
    if let Ok(url) = std::env::var("IM_TEST_REDIS_CLUSTER_URL") {
        return url;
    }
    static CLUSTER: OnceLock<RedisCluster> = OnceLock::new();
    CLUSTER.get_or_init(RedisCluster::start).url()
}

/// A free TCP port on 127.0.0.1 (and, for a cluster node, its bus port
/// `port + 10000` too).
fn free_port(bus: bool) -> u16 {
    for _ in 0..100 {
        let l = TcpListener::bind("127.0.0.1:0").expect("bind a free port");
        let port = l.local_addr().expect("local address").port();
        if !bus || (port < 55_000 && TcpListener::bind(("127.0.0.1", port + 10_000)).is_ok()) {
            return port;
        }
    }
    panic!("no free port pair for a cluster node")
}

/// Sends one inline command and answers the raw reply, or `None` when the
/// server does not answer.
fn raw_command(port: u16, command: &str) -> Option<String> {
    let addr = ("127.0.0.1", port);
    let mut s = TcpStream::connect(addr).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(1))).ok()?;
    s.write_all(format!("{command}\r\n").as_bytes()).ok()?;
    let mut buf = vec![0u8; 64 * 1024];
    let n = s.read(&mut buf).ok()?;
    Some(String::from_utf8_lossy(&buf[..n]).into_owned())
}

/// A `redis-server` of a test's own, killed when dropped.
#[derive(Debug)]
pub struct RedisServer {
    port: u16,
    dir: PathBuf,
    _tmp: Option<tempfile::TempDir>,
    args: Vec<String>,
    watchdog: Option<Child>,
    pid: Option<u32>,
}

impl RedisServer {
    /// Starts a server on a free port in a new temporary directory, with
    /// persistence off, or with `appendonly yes` (`appendfsync everysec`)
    /// when `appendonly` is set.
    ///
    /// # Panics
    ///
    /// When `redis-server` is missing or does not start.
    pub fn start(appendonly: bool) -> Self {
        let aof = if appendonly { "yes" } else { "no" };
        Self::start_with_args(&["--appendonly", aof], false)
    }

    fn start_with_args(extra: &[&str], cluster: bool) -> Self {
        require("redis-server");
        let tmp = tempfile::tempdir().expect("temporary directory");
        let port = free_port(cluster);
        let dir = tmp.path().to_path_buf();
        let mut args: Vec<String> = [
            "--port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--dir",
            dir.to_str().expect("UTF-8 temporary path"),
            "--logfile",
            "redis.log",
        ]
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
        args.extend(extra.iter().map(|s| (*s).to_owned()));
        let mut server = Self {
            port,
            dir,
            _tmp: Some(tmp),
            args,
            watchdog: None,
            pid: None,
        };
        server.spawn();
        server
    }

    /// Starts `redis-server` under the watchdog and waits for its PONG.
    fn spawn(&mut self) {
        // The watchdog prints the server's pid, then kills the server once
        // the test process is gone.
        let script = r#"p=$1; shift; redis-server "$@" >/dev/null 2>&1 & r=$!; echo "$r"
while kill -0 "$p" 2>/dev/null && kill -0 "$r" 2>/dev/null; do sleep 0.2; done
kill -9 "$r" 2>/dev/null"#;
        let mut child = Command::new("sh")
            .arg("-c")
            .arg(script)
            .arg("sh")
            .arg(std::process::id().to_string())
            .args(&self.args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run sh to start redis-server: {e}"));
        let mut line = String::new();
        let mut out = child.stdout.take().expect("watchdog stdout");
        let mut byte = [0u8; 1];
        while out.read(&mut byte).is_ok_and(|n| n == 1) && byte[0] != b'\n' {
            line.push(char::from(byte[0]));
        }
        self.pid = line.trim().parse().ok();
        self.watchdog = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        while raw_command(self.port, "PING").is_none_or(|r| !r.starts_with("+PONG")) {
            assert!(
                Instant::now() < deadline,
                "redis-server on port {} did not answer PING; its log: {}",
                self.port,
                std::fs::read_to_string(self.dir.join("redis.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// `redis://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Its data directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Kills the server with SIGKILL (as a crash would), leaving its files.
    pub fn kill(&mut self) {
        if let Some(pid) = self.pid.take() {
            let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
        }
        if let Some(mut w) = self.watchdog.take() {
            let _ = w.kill();
            let _ = w.wait();
        }
        // Wait until the port is closed.
        let deadline = Instant::now() + Duration::from_secs(10);
        while raw_command(self.port, "PING").is_some() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Starts the server again on the same port and directory (after
    /// [`kill`](Self::kill)); with `appendonly yes` it reloads its data.
    pub fn restart(&mut self) {
        self.kill();
        self.spawn();
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Three `redis-server` masters made into a cluster by `redis-cli --cluster
/// create`.
#[derive(Debug)]
pub struct RedisCluster {
    nodes: Vec<RedisServer>,
}

impl RedisCluster {
    /// Starts three nodes, creates the cluster and waits for
    /// `cluster_state:ok` on each.
    ///
    /// # Panics
    ///
    /// When `redis-server` or `redis-cli` is missing or the cluster does not
    /// form.
    pub fn start() -> Self {
        require("redis-cli");
        let nodes: Vec<RedisServer> = (0..3)
            .map(|_| {
                RedisServer::start_with_args(
                    &[
                        "--appendonly",
                        "no",
                        "--cluster-enabled",
                        "yes",
                        "--cluster-config-file",
                        "nodes.conf",
                        "--cluster-node-timeout",
                        "2000",
                    ],
                    true,
                )
            })
            .collect();
        let addrs: Vec<String> = nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.port))
            .collect();
        let out = Command::new("redis-cli")
            .arg("--cluster")
            .arg("create")
            .args(&addrs)
            .args(["--cluster-replicas", "0", "--cluster-yes"])
            .stdin(Stdio::null())
            .output()
            .expect("run redis-cli --cluster create");
        assert!(
            out.status.success(),
            "redis-cli --cluster create failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let deadline = Instant::now() + Duration::from_secs(30);
        for n in &nodes {
            while !raw_command(n.port, "CLUSTER INFO")
                .is_some_and(|i| i.contains("cluster_state:ok"))
            {
                assert!(
                    Instant::now() < deadline,
                    "the cluster did not reach cluster_state:ok"
                );
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        Self { nodes }
    }

    /// The ports of its nodes.
    pub fn ports(&self) -> Vec<u16> {
        self.nodes.iter().map(|n| n.port).collect()
    }

    /// `redis+cluster://127.0.0.1:a,127.0.0.1:b,127.0.0.1:c`.
    pub fn url(&self) -> String {
        let addrs: Vec<String> = self
            .nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.port))
            .collect();
        format!("redis+cluster://{}", addrs.join(","))
    }
}
