//! A minimal HTTP/1.1 client on hyper: keep-alive POSTs and SSE readers.

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Full};
use hyper::Request;
use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

/// One keep-alive connection.
#[derive(Debug)]
pub struct Conn {
    sender: SendRequest<Full<Bytes>>,
}

impl Conn {
    /// Connects to 127.0.0.1:`port`.
    ///
    /// # Errors
    ///
    /// When the connection or handshake fails.
    pub async fn open(port: u16) -> Result<Self, Box<dyn std::error::Error + Send + Sync>> {
        let stream = TcpStream::connect(("127.0.0.1", port)).await?;
        stream.set_nodelay(true)?;
        let (sender, conn) = http1::handshake(TokioIo::new(stream)).await?;
        tokio::spawn(conn);
        Ok(Self { sender })
    }

    /// POSTs JSON and answers the status.
    ///
    /// # Errors
    ///
    /// When the request fails.
    pub async fn post(
        &mut self,
        path: &str,
        token: &str,
        body: String,
    ) -> Result<u16, Box<dyn std::error::Error + Send + Sync>> {
        let req = Request::post(path)
            .header("host", "bench")
            .header("authorization", format!("Bearer {token}"))
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(body)))?;
        // The connection takes the next request only once it has finished
        // with the last answer.
        self.sender.ready().await?;
        let resp = self.sender.send_request(req).await?;
        let status = resp.status().as_u16();
        resp.into_body().collect().await?;
        Ok(status)
    }
}

/// An open event stream.
#[derive(Debug)]
pub struct Events {
    // The connection closes when its sender is dropped.
    _sender: SendRequest<Empty<Bytes>>,
    body: hyper::body::Incoming,
}

impl Events {
    /// Opens `GET path` as an event stream and waits for the response head.
    ///
    /// # Errors
    ///
    /// When the connection fails or the answer is not 200.
    pub async fn open(
        port: u16,
        path: &str,
        token: &str,
    ) -> Result<Self, Box<dyn std::error::Error + Send + Sync>> {
        let stream = TcpStream::connect(("127.0.0.1", port)).await?;
        let (mut sender, conn) = http1::handshake::<_, Empty<Bytes>>(TokioIo::new(stream)).await?;
        tokio::spawn(conn);
        let req = Request::get(path)
            .header("host", "bench")
            .header("authorization", format!("Bearer {token}"))
            .header("accept", "text/event-stream")
            .body(Empty::new())?;
        let resp = sender.send_request(req).await?;
        if resp.status() != 200 {
            return Err(format!("event stream answered {}", resp.status()).into());
        }
        Ok(Self {
            _sender: sender,
            body: resp.into_body(),
        })
    }

    /// The next frame of data, or `None` when the stream ends.
    pub async fn next(&mut self) -> Option<Bytes> {
        loop {
            match self.body.frame().await? {
                Ok(frame) => match frame.into_data() {
                    Ok(data) => return Some(data),
                    Err(_) => continue,
                },
                Err(_) => return None,
            }
        }
    }
}

/// Every `"t":<micros>` stamp in an event frame.
pub fn stamps(frame: &[u8]) -> impl Iterator<Item = u64> + '_ {
    let pat = b"\"t\":";
    frame
        .windows(pat.len())
        .enumerate()
        .filter(move |(_, w)| *w == pat)
        .filter_map(move |(i, _)| {
            let digits: Vec<u8> = frame[i + pat.len()..]
                .iter()
                .copied()
                .take_while(u8::is_ascii_digit)
                .collect();
            std::str::from_utf8(&digits).ok()?.parse().ok()
        })
}

/// Microseconds since the Unix epoch: the stamp senders put in bodies, the
/// same clock for every process on the machine.
pub fn now_us() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}
