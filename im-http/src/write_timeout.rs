//! A connection whose writes stay blocked too long is closed.
//!
//! This is how a client too slow to keep up with its event stream is
//! disconnected: once the socket's buffers are full, hyper's write stays
//! pending, hyper stops pulling the stream's body, and after the time-out
//! the write fails and hyper ends the connection. The feed in the store is
//! the buffer; the client resumes from its cursor and loses nothing.
//! Idle connections pay for no timer: one is made the first time a write
//! blocks, and kept for the next.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

/// Wraps a connection's IO: a write that makes no progress for `timeout`
/// fails with [`io::ErrorKind::TimedOut`], which ends the connection.
/// Reads pass through untouched.
///
/// [`serve`](crate::serve) wraps every connection in one, with
/// [`Config::sse_stall_timeout`](crate::Config::sse_stall_timeout); a
/// program that mounts [`App::handle`](crate::App::handle) in its own
/// server can do the same:
///
/// ```
/// # async fn f(stream: tokio::net::TcpStream) {
/// use std::time::Duration;
/// use hyper_util::rt::TokioIo;
///
/// let io = TokioIo::new(im_http::WriteTimeout::new(stream, Duration::from_secs(10)));
/// # drop(io);
/// # }
/// ```
#[derive(Debug)]
pub struct WriteTimeout<IO> {
    io: IO,
    timeout: Duration,
    /// Made the first time a write blocks, kept for the next.
    timer: Option<Pin<Box<Sleep>>>,
    /// Whether the timer runs for the write now blocked.
    armed: bool,
}

impl<IO> WriteTimeout<IO> {
    /// `io`, whose writes fail once blocked for `timeout`.
    pub fn new(io: IO, timeout: Duration) -> Self {
        Self {
            io,
            timeout,
            timer: None,
            armed: false,
        }
    }

    /// The wrapped IO.
    pub fn get_ref(&self) -> &IO {
        &self.io
    }

    /// What a write answered: progress disarms the timer; a blocked write
    /// arms it, or fails once it has run out.
    fn watch<T>(&mut self, cx: &mut Context<'_>, poll: Poll<io::Result<T>>) -> Poll<io::Result<T>> {
        if poll.is_ready() {
            self.armed = false;
            return poll;
        }
        let deadline = Instant::now() + self.timeout;
        let timer = self
            .timer
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
        if !self.armed {
            timer.as_mut().reset(deadline);
            self.armed = true;
        }
        ready!(timer.as_mut().poll(cx));
        self.armed = false;
        Poll::Ready(Err(io::Error::new(
            io::ErrorKind::TimedOut,
            "the peer read nothing for the write time-out",
        )))
    }
}

impl<IO: AsyncRead + Unpin> AsyncRead for WriteTimeout<IO> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for WriteTimeout<IO> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let poll = Pin::new(&mut self.io).poll_write(cx, buf);
        self.watch(cx, poll)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let poll = Pin::new(&mut self.io).poll_write_vectored(cx, bufs);
        self.watch(cx, poll)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let poll = Pin::new(&mut self.io).poll_flush(cx);
        self.watch(cx, poll)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let poll = Pin::new(&mut self.io).poll_shutdown(cx);
        self.watch(cx, poll)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test(start_paused = true)]
    async fn a_write_blocked_past_the_timeout_fails_and_progress_restarts_it() {
        let (near, mut far) = tokio::io::duplex(16);
        let mut io = WriteTimeout::new(near, Duration::from_secs(10));
        io.write_all(&[0; 16]).await.unwrap();
        // Full: the next write blocks, and fails after the time-out.
        let started = Instant::now();
        let err = io.write_all(&[1; 8]).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        assert_eq!(started.elapsed(), Duration::from_secs(10));

        // A reader that drains a little every 6 s keeps it going.
        let reader = tokio::spawn(async move {
            let mut buf = [0; 16];
            let mut total = 0;
            while total < 16 + 48 {
                tokio::time::sleep(Duration::from_secs(6)).await;
                total += far.read(&mut buf).await.unwrap();
            }
            total
        });
        io.write_all(&[2; 48]).await.unwrap();
        assert_eq!(reader.await.unwrap(), 64);
    }
}
