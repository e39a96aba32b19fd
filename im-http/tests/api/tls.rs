//! HTTPS with `serve_tls`: HTTP/2 negotiated by ALPN with a real client
//! (hyper's, over tokio-rustls), event streams over it, HTTP/1.1 for
//! clients that want it, the time-outs of both, and certificates read
//! again on SIGHUP.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Method, Request, StatusCode, Version};
use hyper_util::rt::{TokioExecutor, TokioIo};
use im_engine::{Engine, MemoryStore, UserId};
use im_http::tls::Certificates;
use im_http::{App, Config};
use serde_json::{Value, json};
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;
use tokio::sync::oneshot;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;
use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName};
use tokio_rustls::rustls::{ClientConfig, RootCertStore};

use crate::common::{SECRET, WAIT, eventually};

/// A self-signed certificate for 127.0.0.1 and localhost, as PEM files in
/// `dir` named after `name`.
fn self_signed(dir: &Path, name: &str) -> (PathBuf, PathBuf, CertificateDer<'static>) {
    let made =
        rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])
            .unwrap();
    let (cert, key) = (
        dir.join(format!("{name}.crt")),
        dir.join(format!("{name}.key")),
    );
    std::fs::write(&cert, made.cert.pem()).unwrap();
    std::fs::write(&key, made.signing_key.serialize_pem()).unwrap();
    (cert, key, made.cert.der().clone())
}

struct TlsServer {
    addr: SocketAddr,
    app: App<MemoryStore>,
    root: CertificateDer<'static>,
    _dir: tempfile::TempDir,
    _stop: oneshot::Sender<()>,
}

impl TlsServer {
    async fn start(tweak: impl FnOnce(&mut Config)) -> TlsServer {
        let dir = tempfile::tempdir().unwrap();
        let (cert, key, root) = self_signed(dir.path(), "server");
        let mut config = Config::new(SECRET);
        config.protection.send_rate = None;
        config.protection.stream_rate = None;
        tweak(&mut config);
        let app = App::new(Engine::new(MemoryStore::new()), config);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let certs = Certificates::load(cert, key).unwrap();
        tokio::spawn(im_http::serve_tls(listener, app.clone(), certs, async {
            let _ = stopped.await;
        }));
        TlsServer {
            addr,
            app,
            root,
            _dir: dir,
            _stop: stop,
        }
    }

    fn token(&self, user: &str, admin: bool) -> String {
        self.app
            .auth()
            .token(&UserId::new(user).unwrap(), admin, None)
            .unwrap()
    }
}

/// A TLS connection to `addr` that trusts only `root` and offers `alpn`.
async fn connect(
    addr: SocketAddr,
    root: &CertificateDer<'static>,
    alpn: &[&[u8]],
) -> TlsStream<TcpStream> {
    let mut roots = RootCertStore::empty();
    roots.add(root.clone()).unwrap();
    let mut config = ClientConfig::builder_with_provider(Arc::new(
        tokio_rustls::rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    let tcp = TcpStream::connect(addr).await.unwrap();
    let name = ServerName::IpAddress(std::net::Ipv4Addr::LOCALHOST.into());
    TlsConnector::from(Arc::new(config))
        .connect(name, tcp)
        .await
        .unwrap()
}

type H2 = hyper::client::conn::http2::SendRequest<Full<Bytes>>;

/// An HTTP/2 connection: its sender, and the task that drives it (it ends
/// when the server closes the connection).
async fn h2(s: &TlsServer) -> (H2, tokio::task::JoinHandle<()>) {
    let tls = connect(s.addr, &s.root, &[b"h2", b"http/1.1"]).await;
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    let (sender, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tls))
            .await
            .unwrap();
    let task = tokio::spawn(async move {
        let _ = conn.await;
    });
    (sender, task)
}

fn request(method: Method, path: &str, token: &str, body: Option<Value>) -> Request<Full<Bytes>> {
    let mut b = Request::builder()
        .method(method)
        .uri(format!("https://127.0.0.1{path}"))
        .header("authorization", format!("Bearer {token}"));
    if body.is_some() {
        b = b.header("content-type", "application/json");
    }
    let body = body.map_or_else(Bytes::new, |v| Bytes::from(v.to_string()));
    b.body(Full::new(body)).unwrap()
}

/// An answer read whole.
struct Answer {
    status: StatusCode,
    version: Version,
    headers: hyper::HeaderMap,
    body: Bytes,
}

async fn send(sender: &mut H2, req: Request<Full<Bytes>>) -> Answer {
    let resp = tokio::time::timeout(WAIT, sender.send_request(req))
        .await
        .unwrap()
        .unwrap();
    let (status, version, headers) = (resp.status(), resp.version(), resp.headers().clone());
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    Answer {
        status,
        version,
        headers,
        body,
    }
}

/// Reads an event stream's body until its text contains `needle`.
async fn read_until(body: &mut Incoming, text: &mut String, needle: &str) {
    tokio::time::timeout(WAIT, async {
        while !text.contains(needle) {
            let frame = body.frame().await.expect("the stream goes on").unwrap();
            if let Ok(data) = frame.into_data() {
                text.push_str(std::str::from_utf8(&data).unwrap());
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("no {needle:?} in {text:?}"));
}

#[tokio::test]
async fn http2_is_negotiated_and_carries_requests_beside_an_event_stream() {
    let s = TlsServer::start(|_| {}).await;
    let (mut sender, _conn) = h2(&s).await;
    let admin = s.token("root", true);
    for user in ["alice", "bob"] {
        let path = format!("/v1/users/{user}");
        let r = send(
            &mut sender,
            request(Method::PUT, &path, &admin, Some(json!({}))),
        )
        .await;
        assert_eq!(
            (r.status, r.version),
            (StatusCode::CREATED, Version::HTTP_2)
        );
    }
    let r = send(&mut sender, request(Method::GET, "/healthz", "", None)).await;
    assert_eq!((r.status, r.version), (StatusCode::OK, Version::HTTP_2));
    assert!(r.headers.contains_key("x-request-id"));

    // Bob's event stream and Alice's send share one connection.
    let events = tokio::time::timeout(
        WAIT,
        sender.send_request(request(
            Method::GET,
            "/v1/events",
            &s.token("bob", false),
            None,
        )),
    )
    .await
    .unwrap()
    .unwrap();
    assert_eq!(events.status(), StatusCode::OK);
    assert_eq!(events.version(), Version::HTTP_2);
    assert_eq!(events.headers()["content-type"], "text/event-stream");
    // HTTP/2 has no `Connection` header: the HTTP/1.1 stream's is not sent.
    assert!(!events.headers().contains_key("connection"));
    let mut body = events.into_body();
    let mut text = String::new();
    read_until(&mut body, &mut text, "retry: ").await;

    let sent = request(
        Method::POST,
        "/v1/conversations/dm:alice:bob/messages",
        &s.token("alice", false),
        Some(json!({"body": {"text": "over h2"}})),
    );
    let r = send(&mut sender, sent).await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    read_until(&mut body, &mut text, "over h2").await;
    assert!(text.contains("event: message"), "{text}");
}

#[tokio::test]
async fn http1_is_served_to_clients_that_offer_only_it_or_nothing() {
    let s = TlsServer::start(|_| {}).await;
    for alpn in [&[&b"http/1.1"[..]][..], &[]] {
        let tls = connect(s.addr, &s.root, alpn).await;
        let negotiated = tls.get_ref().1.alpn_protocol().map(<[u8]>::to_vec);
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
            .await
            .unwrap();
        tokio::spawn(conn);
        let resp = sender
            .send_request(request(Method::GET, "/livez", "", None))
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::OK, "{negotiated:?}");
        assert_eq!(resp.version(), Version::HTTP_11);
        assert_eq!(
            negotiated.as_deref(),
            alpn.first().copied(),
            "what ALPN agreed on"
        );
    }
}

#[tokio::test]
async fn a_handshake_never_finished_is_closed_and_counted() {
    let s = TlsServer::start(|c| c.header_read_timeout = Duration::from_millis(300)).await;
    let mut tcp = TcpStream::connect(s.addr).await.unwrap();
    let mut buf = [0u8; 64];
    let read = tokio::time::timeout(WAIT, tcp.read(&mut buf)).await;
    assert!(matches!(read, Ok(Ok(0) | Err(_))), "closed: {read:?}");

    let (mut sender, _conn) = h2(&s).await;
    let r = send(
        &mut sender,
        request(Method::GET, "/metrics", &s.token("root", true), None),
    )
    .await;
    let text = String::from_utf8_lossy(&r.body).into_owned();
    assert!(
        text.contains(r#"im_connections_refused_total{reason="tls_handshake"} 1"#),
        "{text}"
    );
}

#[tokio::test]
async fn an_idle_http2_connection_is_closed_but_not_one_with_a_stream_open() {
    let timeout = Duration::from_millis(400);
    let s = TlsServer::start(|c| c.header_read_timeout = timeout).await;
    let (mut idle, idle_conn) = h2(&s).await;
    let admin = s.token("root", true);
    for user in ["alice", "bob"] {
        let path = format!("/v1/users/{user}");
        send(
            &mut idle,
            request(Method::PUT, &path, &admin, Some(json!({}))),
        )
        .await;
    }

    let (mut busy, busy_conn) = h2(&s).await;
    let events = busy
        .send_request(request(
            Method::GET,
            "/v1/events",
            &s.token("bob", false),
            None,
        ))
        .await
        .unwrap();
    let mut body = events.into_body();
    let mut text = String::new();
    read_until(&mut body, &mut text, "retry: ").await;

    // The idle one is closed by the server after the time-out.
    let started = tokio::time::Instant::now();
    tokio::time::timeout(WAIT, idle_conn)
        .await
        .expect("the server closes an idle HTTP/2 connection")
        .unwrap();
    assert!(started.elapsed() >= timeout / 2, "{:?}", started.elapsed());

    // Long after, the one holding a stream still delivers.
    tokio::time::sleep(timeout * 3).await;
    assert!(!busy_conn.is_finished());
    let (mut other, _other_conn) = h2(&s).await;
    let sent = request(
        Method::POST,
        "/v1/conversations/dm:alice:bob/messages",
        &s.token("alice", false),
        Some(json!({"body": {"text": "still there"}})),
    );
    assert_eq!(send(&mut other, sent).await.status, StatusCode::CREATED);
    read_until(&mut body, &mut text, "still there").await;
}

/// The peer certificate a new connection is shown.
async fn served_certificate(addr: SocketAddr, root: &CertificateDer<'static>) -> Option<Vec<u8>> {
    let tcp = TcpStream::connect(addr).await.unwrap();
    let mut roots = RootCertStore::empty();
    roots.add(root.clone()).unwrap();
    let config = ClientConfig::builder_with_provider(Arc::new(
        tokio_rustls::rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let name = ServerName::IpAddress(std::net::Ipv4Addr::LOCALHOST.into());
    // A connection that does not trust what it is shown fails: None.
    let tls = TlsConnector::from(Arc::new(config))
        .connect(name, tcp)
        .await
        .ok()?;
    let certs = tls.get_ref().1.peer_certificates()?;
    Some(certs[0].to_vec())
}

#[cfg(all(unix, feature = "cli"))]
#[tokio::test]
async fn the_binary_serves_https_and_reads_its_certificate_again_on_sighup() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key, first) = self_signed(dir.path(), "live");
    let mut cmd =
        crate::binary::im_http(&["serve", "--listen", "127.0.0.1:0", "--store", "memory"]);
    cmd.args(["--secret", "s"])
        .env("IM_TLS_CERT", &cert)
        .env("IM_TLS_KEY", &key);
    let (mut child, addr, log) = crate::common::spawn_serve(cmd);
    let pid = child.id().to_string();
    let hup = || {
        let status = std::process::Command::new("kill")
            .args(["-HUP", &pid])
            .status()
            .unwrap();
        assert!(status.success());
    };
    assert_eq!(served_certificate(addr, &first).await, Some(first.to_vec()));

    // A new certificate in the same files, then SIGHUP.
    let (_, _, second) = self_signed(dir.path(), "next");
    std::fs::rename(dir.path().join("next.crt"), &cert).unwrap();
    std::fs::rename(dir.path().join("next.key"), &key).unwrap();
    assert_eq!(served_certificate(addr, &first).await, Some(first.to_vec()));
    hup();
    eventually("the new certificate is served", || async {
        served_certificate(addr, &second).await == Some(second.to_vec())
    })
    .await;

    // A broken file is not taken: the server keeps the last good one.
    std::fs::write(&key, "not a key").unwrap();
    hup();
    eventually("the failed reload is logged", || async {
        log.lock()
            .unwrap()
            .iter()
            .any(|l| l.contains("kept the TLS certificate"))
    })
    .await;
    assert_eq!(
        served_certificate(addr, &second).await,
        Some(second.to_vec())
    );
    assert!(child.try_wait().unwrap().is_none(), "still running");
    let _ = child.kill();
    let _ = child.wait();
}
