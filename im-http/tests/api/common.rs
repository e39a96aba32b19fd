//! A server on 127.0.0.1:0 in this process, and small HTTP and SSE clients
//! that talk to it over real sockets.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::header::HeaderMap;
use hyper::{Method, Request};
use hyper_util::rt::TokioIo;
use im_engine::{Engine, MemoryStore, Store, UserId};
use im_http::{App, Config};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub const SECRET: &[u8] = b"test secret, not for production";

/// Generous bound for anything the tests wait for.
pub const WAIT: Duration = Duration::from_secs(20);

pub struct Server<S = MemoryStore> {
    pub addr: SocketAddr,
    pub app: App<S>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<std::io::Result<()>>>,
}

impl Server<MemoryStore> {
    pub async fn start() -> Self {
        Self::start_with(|_, _| {}).await
    }

    /// A server whose engine and HTTP settings `tweak` adjusts.
    pub async fn start_with(tweak: impl FnOnce(&mut im_engine::Config, &mut Config)) -> Self {
        Self::start_on(MemoryStore::new(), tweak).await
    }
}

impl<S: Store> Server<S> {
    pub async fn start_on(
        store: S,
        tweak: impl FnOnce(&mut im_engine::Config, &mut Config),
    ) -> Self {
        Self::start_hooked(store, None, tweak).await
    }

    /// A server whose engine has `hooks`.
    pub async fn start_hooked(
        store: S,
        hooks: Option<std::sync::Arc<dyn im_engine::Hooks>>,
        tweak: impl FnOnce(&mut im_engine::Config, &mut Config),
    ) -> Self {
        let mut engine_config = im_engine::Config::default();
        let mut config = Config::new(SECRET);
        // These tests send in bursts; tests/hostile/ tests the rate limits.
        config.protection.send_rate = None;
        config.protection.stream_rate = None;
        config.protection.login_rate_user = None;
        config.protection.login_rate_addr = None;
        // Users go offline soon after their last stream closes; the
        // presence tests set their own grace.
        engine_config.presence_grace = Duration::from_millis(100);
        tweak(&mut engine_config, &mut config);
        let engine = Engine::builder(store)
            .config(engine_config)
            .maybe_hooks(hooks)
            .build();
        let app = App::new(engine, config);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(im_http::serve(listener, app.clone(), async {
            let _ = stopped.await;
        }));
        Self {
            addr,
            app,
            stop: Some(stop),
            task: Some(task),
        }
    }

    pub fn token(&self, user: &str, admin: bool) -> String {
        self.app
            .auth()
            .token(&UserId::new(user).unwrap(), admin, None)
            .unwrap()
    }

    /// A client acting as `user`.
    pub fn client(&self, user: &str) -> Client {
        Client {
            addr: self.addr,
            token: Some(self.token(user, false)),
        }
    }

    /// An admin client acting as `root`.
    pub fn admin(&self) -> Client {
        Client {
            addr: self.addr,
            token: Some(self.token("root", true)),
        }
    }

    /// A client without a token.
    pub fn anonymous(&self) -> Client {
        Client {
            addr: self.addr,
            token: None,
        }
    }

    /// Creates users (as an admin) and answers a client for each.
    pub async fn users<const N: usize>(&self, names: [&str; N]) -> [Client; N] {
        for name in names {
            let r = self
                .admin()
                .put(&format!("/v1/users/{name}"), serde_json::json!({}))
                .await;
            assert_eq!(r.status, 201, "creating {name}: {}", r.text());
        }
        names.map(|n| self.client(n))
    }

    /// Resolves `serve`'s shutdown future and returns at once.
    pub fn begin_stop(&mut self) {
        if let Some(stop) = self.stop.take() {
            stop.send(()).unwrap();
        }
    }

    /// Shuts the server down and waits for `serve` to return.
    pub async fn stop(mut self) {
        self.begin_stop();
        let task = self.task.take().unwrap();
        tokio::time::timeout(WAIT, task)
            .await
            .expect("serve returns after shutdown")
            .unwrap()
            .unwrap();
    }
}

impl<S> Drop for Server<S> {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

#[derive(Clone)]
pub struct Client {
    pub addr: SocketAddr,
    pub token: Option<String>,
}

#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Resp {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text()))
    }

    /// The `error.code` of an error answer.
    pub fn code(&self) -> String {
        self.json()["error"]["code"]
            .as_str()
            .unwrap_or_else(|| panic!("not an error: {}", self.text()))
            .to_owned()
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// Asserts an error answer's status and code.
    #[track_caller]
    pub fn assert_error(&self, status: u16, code: &str) {
        assert_eq!(self.status, status, "{}", self.text());
        assert_eq!(self.code(), code, "{}", self.text());
        let message = self.json()["error"]["message"].as_str().unwrap().to_owned();
        assert!(
            !message.is_empty() && !message.ends_with('.'),
            "{message:?}"
        );
    }
}

impl Client {
    /// A client of the server at `addr` acting as `user`, with a token
    /// signed with `secret` (a server spawned with `--secret`). Used by the
    /// test crates that spawn the binary (`durability`, `redis_nodes`).
    #[allow(dead_code)]
    pub fn signed(addr: SocketAddr, secret: &str, user: &str, admin: bool) -> Client {
        let token = im_http::Auth::new(secret.as_bytes())
            .token(&UserId::new(user).unwrap(), admin, None)
            .unwrap();
        Client {
            addr,
            token: Some(token),
        }
    }

    pub fn with_token(&self, token: &str) -> Client {
        Client {
            addr: self.addr,
            token: Some(token.to_owned()),
        }
    }

    pub fn request(&self, method: Method, path: &str) -> RequestBuilder {
        let mut b = RequestBuilder {
            addr: self.addr,
            builder: Request::builder()
                .method(method)
                .uri(path)
                .header("host", self.addr.to_string()),
            body: Bytes::new(),
        };
        if let Some(t) = &self.token {
            b = b.header("authorization", &format!("Bearer {t}"));
        }
        b
    }

    pub async fn get(&self, path: &str) -> Resp {
        self.request(Method::GET, path).send().await
    }

    pub async fn delete(&self, path: &str) -> Resp {
        self.request(Method::DELETE, path).send().await
    }

    pub async fn put(&self, path: &str, body: Value) -> Resp {
        self.request(Method::PUT, path).json(&body).send().await
    }

    pub async fn post(&self, path: &str, body: Value) -> Resp {
        self.request(Method::POST, path).json(&body).send().await
    }

    /// Sends `{"body": body}` to a conversation.
    pub async fn send(&self, conversation: &str, body: Value) -> Resp {
        self.post(
            &format!("/v1/conversations/{conversation}/messages"),
            serde_json::json!({ "body": body }),
        )
        .await
    }
}

pub struct RequestBuilder {
    addr: SocketAddr,
    builder: hyper::http::request::Builder,
    body: Bytes,
}

impl RequestBuilder {
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.builder = self.builder.header(name, value);
        self
    }

    pub fn json(self, body: &Value) -> Self {
        self.header("content-type", "application/json")
            .raw(serde_json::to_vec(body).unwrap())
    }

    pub fn raw(mut self, body: impl Into<Bytes>) -> Self {
        self.body = body.into();
        self
    }

    pub async fn send(self) -> Resp {
        let req = self.builder.body(Full::new(self.body)).unwrap();
        tokio::time::timeout(WAIT, async move {
            let stream = TcpStream::connect(self.addr).await.unwrap();
            let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
                .await
                .unwrap();
            tokio::spawn(conn);
            let resp = sender.send_request(req).await.unwrap();
            let (parts, body) = resp.into_parts();
            Resp {
                status: parts.status.as_u16(),
                headers: parts.headers,
                body: body.collect().await.unwrap().to_bytes(),
            }
        })
        .await
        .expect("the server answers in time")
    }
}

/// One block of an event stream.
#[derive(Debug, Clone, PartialEq)]
pub enum Frame {
    Event(Event),
    Comment(String),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub id: String,
    pub event: String,
    pub data: Value,
}

/// An event stream read off a raw socket: the response head, then the
/// chunked body decoded by hand and split into SSE blocks.
pub struct Sse {
    stream: TcpStream,
    pub status: u16,
    pub head: String,
    raw: Vec<u8>,
    text: Vec<u8>,
    pub ended: bool,
    /// The last `retry:` the stream sent, in milliseconds. A block with
    /// nothing else is no frame: it is kept here and skipped.
    pub retry: Option<u64>,
    /// Body bytes read, for a body with a `Content-Length`.
    body_read: usize,
}

impl Sse {
    /// `GET path` with `headers` (and `Authorization` when `token`).
    pub async fn open(addr: SocketAddr, path: &str, token: &str, headers: &[(&str, &str)]) -> Sse {
        let stream = TcpStream::connect(addr).await.unwrap();
        Self::open_on(stream, addr, path, token, headers).await
    }

    pub async fn open_on(
        mut stream: TcpStream,
        addr: SocketAddr,
        path: &str,
        token: &str,
        headers: &[(&str, &str)],
    ) -> Sse {
        let mut req =
            format!("GET {path} HTTP/1.1\r\nhost: {addr}\r\naccept: text/event-stream\r\n");
        // An empty token sends none: a browser's EventSource cannot.
        if !token.is_empty() {
            req.push_str(&format!("authorization: Bearer {token}\r\n"));
        }
        for (k, v) in headers {
            req.push_str(&format!("{k}: {v}\r\n"));
        }
        req.push_str("\r\n");
        stream.write_all(req.as_bytes()).await.unwrap();
        let mut sse = Sse {
            stream,
            status: 0,
            head: String::new(),
            raw: Vec::new(),
            text: Vec::new(),
            ended: false,
            retry: None,
            body_read: 0,
        };
        let deadline = tokio::time::Instant::now() + WAIT;
        let end = loop {
            if let Some(i) = find(&sse.raw, b"\r\n\r\n") {
                break i;
            }
            assert!(
                sse.fill(deadline).await,
                "connection closed before the head"
            );
        };
        sse.head = String::from_utf8(sse.raw[..end].to_vec()).unwrap();
        sse.raw.drain(..end + 4);
        sse.status = sse.head[9..12].parse().unwrap();
        sse
    }

    pub fn header(&self, name: &str) -> Option<String> {
        self.head.lines().skip(1).find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case(name).then(|| v.trim().to_owned())
        })
    }

    /// Reads more bytes; false at end of stream or deadline.
    async fn fill(&mut self, deadline: tokio::time::Instant) -> bool {
        let mut buf = [0u8; 16 * 1024];
        match tokio::time::timeout_at(deadline, self.stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => {
                self.ended = true;
                false
            }
            Ok(Ok(n)) => {
                self.raw.extend_from_slice(&buf[..n]);
                true
            }
            Err(_) => false,
        }
    }

    /// Moves whole chunks from `raw` to `text` (or everything, for a body
    /// with a `Content-Length`, which ends at that length).
    fn dechunk(&mut self) {
        if let Some(length) = self.header("content-length") {
            let length: usize = length.parse().unwrap();
            self.body_read += self.raw.len();
            self.text.append(&mut self.raw);
            if self.body_read >= length {
                self.ended = true;
            }
            return;
        }
        while let Some(line_end) = find(&self.raw, b"\r\n") {
            let line = std::str::from_utf8(&self.raw[..line_end]).unwrap();
            let size = usize::from_str_radix(line.split(';').next().unwrap().trim(), 16).unwrap();
            if size == 0 {
                self.ended = true;
                self.raw.clear();
                return;
            }
            let total = line_end + 2 + size + 2;
            if self.raw.len() < total {
                return;
            }
            self.text
                .extend_from_slice(&self.raw[line_end + 2..line_end + 2 + size]);
            self.raw.drain(..total);
        }
    }

    /// The next block, or `None` at the end of the stream or after `timeout`.
    pub async fn next_frame(&mut self, timeout: Duration) -> Option<Frame> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            self.dechunk();
            if let Some(i) = find(&self.text, b"\n\n") {
                let block = String::from_utf8(self.text[..i].to_vec()).unwrap();
                self.text.drain(..i + 2);
                let (retry, frame) = parse_block(&block);
                self.retry = retry.or(self.retry);
                match frame {
                    Some(frame) => return Some(frame),
                    None => continue,
                }
            }
            if self.ended || !self.fill(deadline).await {
                return None;
            }
        }
    }

    /// The next event, skipping comments.
    pub async fn next_event(&mut self, timeout: Duration) -> Option<Event> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match self.next_frame(left).await? {
                Frame::Event(e) => return Some(e),
                Frame::Comment(_) => {}
            }
        }
    }

    /// Every event until the stream ends (or `WAIT` passes).
    pub async fn drain(&mut self) -> Vec<Event> {
        let mut out = Vec::new();
        while let Some(e) = self.next_event(WAIT).await {
            out.push(e);
        }
        out
    }
}

/// A block's `retry:` value, and the frame it is (none when it only had a
/// `retry:` line).
fn parse_block(block: &str) -> (Option<u64>, Option<Frame>) {
    if let Some(comment) = block.strip_prefix(':') {
        return (None, Some(Frame::Comment(comment.trim().to_owned())));
    }
    let (mut id, mut event, mut data) = (String::new(), String::new(), None);
    let mut retry = None;
    let mut fields = 0;
    for line in block.lines() {
        let (field, value) = line.split_once(": ").unwrap_or((line, ""));
        if field != "retry" {
            fields += 1;
        }
        match field {
            "retry" => retry = Some(value.parse().expect("retry is a number")),
            "id" => id = value.to_owned(),
            "event" => event = value.to_owned(),
            "data" => {
                assert!(data.is_none(), "one data line per event: {block}");
                data = Some(serde_json::from_str(value).unwrap());
            }
            other => panic!("unexpected field {other:?} in {block:?}"),
        }
    }
    if fields == 0 {
        return (retry, None);
    }
    let frame = Frame::Event(Event {
        id,
        event,
        data: data.unwrap_or(Value::Null),
    });
    (retry, Some(frame))
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Waits until `check` holds, polling; panics after `WAIT`.
pub async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + WAIT;
    while !check().await {
        assert!(tokio::time::Instant::now() < deadline, "timed out: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Spawns `im-http serve` as built by `cmd` (which should listen on port
/// 0), keeps every line it logs, and waits until it logs its address.
#[cfg(feature = "cli")]
pub fn spawn_serve(
    mut cmd: std::process::Command,
) -> (
    std::process::Child,
    SocketAddr,
    std::sync::Arc<std::sync::Mutex<Vec<String>>>,
) {
    use std::io::{BufRead, BufReader};
    use std::process::Stdio;

    let mut child = cmd
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start im-http");
    let stderr = child.stderr.take().expect("piped stderr");
    let log = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let lines = std::sync::Arc::clone(&log);
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            // `addr=…` in a text log line, `"addr":"…"` in a JSON one.
            if let Some(addr) = line.split("addr=").nth(1) {
                let _ = tx.send(
                    addr.split_whitespace()
                        .next()
                        .unwrap_or_default()
                        .to_owned(),
                );
            } else if let Some(addr) = line.split("\"addr\":\"").nth(1) {
                let _ = tx.send(addr.split('"').next().unwrap_or_default().to_owned());
            }
            lines.lock().expect("not poisoned").push(line);
        }
    });
    let addr = rx
        .recv_timeout(WAIT)
        .expect("the server logs its address")
        .parse()
        .expect("a socket address");
    (child, addr, log)
}

/// A Redis store under a fresh prefix at `url`, or `None` when the person
/// running the tests asked to skip Redis (`IM_SKIP_REDIS=1`).
#[cfg(feature = "redis")]
#[allow(dead_code)]
pub async fn redis_store(url: impl FnOnce() -> String) -> Option<im_store_redis::RedisStore> {
    use im_store_redis::testing::{skip, unique_prefix};
    if skip() {
        return None;
    }
    let config = im_store_redis::RedisConfig::new(url()).prefix(unique_prefix());
    Some(im_store_redis::RedisStore::open(config).await.unwrap())
}

/// A module `$name` of one test per store, each running `$scenario`
/// (an `async fn` generic over the store, named as seen from inside the
/// module) on memory, sled, one Redis and the Redis Cluster.
#[allow(unused_macros)] // by the test binaries that share this file
macro_rules! every_store {
    ($name:ident, $scenario:path) => {
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn memory() {
                $scenario(im_engine::MemoryStore::new()).await;
            }

            #[cfg(feature = "sled")]
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sled() {
                let dir = tempfile::tempdir().unwrap();
                $scenario(crate::sled::open(dir.path()).await).await;
            }

            #[cfg(feature = "redis")]
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn one_redis() {
                let url = im_store_redis::testing::shared_url;
                if let Some(store) = crate::common::redis_store(url).await {
                    $scenario(store).await;
                }
            }

            #[cfg(feature = "redis")]
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn redis_cluster() {
                let url = im_store_redis::testing::shared_cluster_url;
                if let Some(store) = crate::common::redis_store(url).await {
                    $scenario(store).await;
                }
            }
        }
    };
}
#[allow(unused_imports)]
pub(crate) use every_store;
