//! Mounting the im-http service in a program's own hyper server.
//!
//! The program answers `/hello` itself and hands every other request to
//! [`App::handle`]. Run it with `cargo run -p im-http --example embed`, then
//! `curl -H "Authorization: Bearer $TOKEN" localhost:8081/v1/users/root`
//! with the token it prints.

use std::convert::Infallible;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use im_engine::{Actor, Engine, MemoryStore, UserId};
use im_http::{App, BoxBody, Config, WriteTimeout};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let engine = Engine::new(MemoryStore::new());
    let root = UserId::new("root")?;
    engine
        .put_user(&Actor::admin(root.clone()), &root, Default::default())
        .await?;
    let app = App::new(engine, Config::new(*b"change me: a long random secret"));
    println!("admin token: {}", app.auth().token(&root, true, None)?);

    let listener = tokio::net::TcpListener::bind("127.0.0.1:8081").await?;
    println!("listening on http://{}", listener.local_addr()?);
    loop {
        let (stream, _) = listener.accept().await?;
        // Disconnects a client that stops reading its event stream.
        let io = WriteTimeout::new(stream, app.config().sse_stall_timeout);
        let app = app.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req: Request<hyper::body::Incoming>| {
                let app = app.clone();
                async move {
                    if req.uri().path() == "/hello" {
                        return Ok::<_, Infallible>(hello());
                    }
                    Ok(app.handle(req).await)
                }
            });
            if let Err(e) = http1::Builder::new()
                .serve_connection(TokioIo::new(io), service)
                .await
            {
                eprintln!("connection error: {e}");
            }
        });
    }
}

fn hello() -> Response<BoxBody> {
    Response::new(Full::new(Bytes::from_static(b"hello from the host program\n")).boxed_unsync())
}
