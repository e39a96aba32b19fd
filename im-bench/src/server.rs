//! The servers under test, each run as a child process of the benchmark (so
//! its memory can be read on its own): im-http over a store, a bare hyper
//! handler that answers a send, and a bare SSE broadcaster.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use im_engine::{Engine, MemoryStore, Store};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::net::{TcpListener, TcpSocket};
use tokio::sync::broadcast;

use crate::seed;

/// The secret every server of the benchmark signs tokens with.
pub const SECRET: &[u8] = b"im-bench secret, not for production";

/// What a child process serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Kind {
    /// im-http over `MemoryStore`.
    ImMemory,
    /// im-http over sled, flushed before each answer.
    ImSled,
    /// im-http over `MemoryStore`, its streams watching room `r`.
    ImRoom,
    /// A hyper handler that reads a POST and answers what a send answers.
    BarePost,
    /// A hyper SSE server: `POST /send` broadcasts its body to every
    /// `GET /events` stream.
    BareSse,
}

/// Arguments of the hidden `server` subcommand.
#[derive(Debug, Clone, clap::Args)]
pub struct ServerArgs {
    /// What to serve.
    #[arg(long, value_enum)]
    pub kind: Kind,
    /// Users `u0` … to create.
    #[arg(long, default_value_t = 0)]
    pub users: usize,
    /// Members (`u0` …) of group `g` (of room `r` for `im-room`); 0 for
    /// none.
    #[arg(long, default_value_t = 0)]
    pub group: usize,
    /// The sled directory.
    #[arg(long)]
    pub dir: Option<PathBuf>,
}

async fn listen() -> std::io::Result<TcpListener> {
    let socket = TcpSocket::new_v4()?;
    socket.set_reuseaddr(true)?;
    socket.bind(SocketAddr::from(([127, 0, 0, 1], 0)))?;
    socket.listen(4096)
}

/// Runs a server until the parent closes our stdin; prints `ready <port>`.
pub async fn run(args: ServerArgs) -> Result<(), Box<dyn std::error::Error>> {
    let listener = listen().await?;
    let port = listener.local_addr()?.port();
    let stop = async {
        let mut line = String::new();
        let _ = BufReader::new(tokio::io::stdin())
            .read_line(&mut line)
            .await;
    };
    match args.kind {
        Kind::ImMemory | Kind::ImRoom => {
            serve_im(listener, port, Engine::new(MemoryStore::new()), &args, stop).await?
        }
        Kind::ImSled => {
            let dir = args.dir.clone().ok_or("--dir is needed for sled")?;
            let store = im_store_sled::SledStore::open(im_store_sled::SledConfig::new(dir))?;
            serve_im(listener, port, Engine::new(store), &args, stop).await?;
        }
        Kind::BarePost => serve_bare(listener, port, None, stop).await,
        Kind::BareSse => serve_bare(listener, port, Some(broadcast::channel(4096).0), stop).await,
    }
    Ok(())
}

async fn serve_im<S: Store>(
    listener: TcpListener,
    port: u16,
    engine: Engine<S>,
    args: &ServerArgs,
    stop: impl Future<Output = ()>,
) -> Result<(), Box<dyn std::error::Error>> {
    seed::users(&engine, args.users).await?;
    if args.group > 0 && args.kind == Kind::ImRoom {
        seed::room(&engine, "r", args.group).await?;
    } else if args.group > 0 {
        seed::group(&engine, "g", args.group).await?;
    }
    // The load is many requests from few users over few addresses: what the
    // limits exist to refuse. The figures are of the engine and transport,
    // so every limit is off.
    let mut config = im_http::Config::new(SECRET);
    let p = &mut config.protection;
    (p.send_rate, p.stream_rate) = (None, None);
    (
        p.streams_per_user,
        p.max_connections,
        p.max_connections_per_ip,
    ) = (0, 0, 0);
    let app = im_http::App::new(engine, config);
    println!("ready {port}");
    im_http::serve(listener, app, stop).await?;
    Ok(())
}

/// What a send answers, for the bare handler to answer the same.
const SENT: &str =
    r#"{"conversation":"dm:u0:u1","seq":1,"from":"u0","ts":1,"body":{"text":"hello"}}"#;

async fn serve_bare(
    listener: TcpListener,
    port: u16,
    sse: Option<broadcast::Sender<Bytes>>,
    stop: impl Future<Output = ()>,
) {
    println!("ready {port}");
    let sse = Arc::new(sse);
    let mut stop = std::pin::pin!(stop);
    loop {
        let (stream, _) = tokio::select! {
            accepted = listener.accept() => match accepted { Ok(a) => a, Err(_) => continue },
            () = &mut stop => return,
        };
        let sse = Arc::clone(&sse);
        let service = service_fn(move |req: Request<Incoming>| {
            let sse = Arc::clone(&sse);
            async move { Ok::<_, Infallible>(bare(req, sse.as_ref().as_ref()).await) }
        });
        tokio::spawn(http1::Builder::new().serve_connection(TokioIo::new(stream), service));
    }
}

type Body = http_body_util::combinators::UnsyncBoxBody<Bytes, Infallible>;

async fn bare(req: Request<Incoming>, sse: Option<&broadcast::Sender<Bytes>>) -> Response<Body> {
    let is_get = req.method() == hyper::Method::GET;
    match (sse, is_get) {
        (Some(tx), true) => {
            let mut rx = tx.subscribe();
            let stream = async_stream::stream! {
                loop {
                    match rx.recv().await {
                        Ok(frame) => yield Ok::<_, Infallible>(Frame::data(frame)),
                        Err(broadcast::error::RecvError::Lagged(_)) => continue,
                        Err(broadcast::error::RecvError::Closed) => break,
                    }
                }
            };
            Response::builder()
                .header("content-type", "text/event-stream")
                .body(StreamBody::new(stream).boxed_unsync())
                .expect("constant response")
        }
        (sse, _) => {
            let body = req
                .into_body()
                .collect()
                .await
                .map(|b| b.to_bytes())
                .unwrap_or_default();
            if let Some(tx) = sse {
                let _ = tx.send(Bytes::from(format!(
                    "event: message\ndata: {}\n\n",
                    String::from_utf8_lossy(&body)
                )));
            }
            Response::builder()
                .status(StatusCode::CREATED)
                .header("content-type", "application/json")
                .body(Full::new(Bytes::from_static(SENT.as_bytes())).boxed_unsync())
                .expect("constant response")
        }
    }
}
