//! A connection's I/O with a write deadline. hyper bounds how long a client
//! may take to send a request head (and the gate bounds the body), but
//! nothing bounds how long a client may leave an answer unread: one that
//! pipelines requests with large answers and never reads them would hold its
//! connection (and a slot of the connection cap) for ever. [`WriteDeadline`]
//! fails a write or flush that has made no progress for its timeout, and
//! hyper then closes the connection.

use hyper::rt::{Read, ReadBufCursor, Write};
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

/// `inner`, whose writes fail with [`io::ErrorKind::TimedOut`] after
/// `timeout` without progress.
pub struct WriteDeadline<T> {
    inner: T,
    timeout: Duration,
    /// Running while a write is blocked; reset by any progress.
    stalled: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl<T> WriteDeadline<T> {
    pub fn new(inner: T, timeout: Duration) -> WriteDeadline<T> {
        WriteDeadline { inner, timeout, stalled: None }
    }

    /// Passes a finished write through (clearing the stall), and turns a
    /// blocked one into an error once it has been blocked for the timeout.
    fn watch<R>(&mut self, cx: &mut Context<'_>, result: Poll<io::Result<R>>) -> Poll<io::Result<R>> {
        if result.is_ready() {
            self.stalled = None;
            return result;
        }
        let timeout = self.timeout;
        let stalled = self.stalled.get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
        match stalled.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("the client read nothing of its answer for {} ms", timeout.as_millis()),
            ))),
            Poll::Pending => Poll::Pending,
        }
    }
}

/// Whether a connection ended because a write made no progress in time.
pub fn is_write_timeout(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut source = Some(error);
    while let Some(e) = source {
        if e.downcast_ref::<io::Error>().is_some_and(|io| io.kind() == io::ErrorKind::TimedOut) {
            return true;
        }
        source = e.source();
    }
    false
}

impl<T: Read + Unpin> Read for WriteDeadline<T> {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: ReadBufCursor<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_read(cx, buf)
    }
}

impl<T: Write + Unpin> Write for WriteDeadline<T> {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let result = Pin::new(&mut this.inner).poll_write(cx, buf);
        this.watch(cx, result)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let result = Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        this.watch(cx, result)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let result = Pin::new(&mut this.inner).poll_flush(cx);
        this.watch(cx, result)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let result = Pin::new(&mut this.inner).poll_shutdown(cx);
        this.watch(cx, result)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hyper_util::rt::TokioIo;
    use tokio::io::{AsyncReadExt, DuplexStream};

    async fn write(io: &mut WriteDeadline<TokioIo<DuplexStream>>, buf: &[u8]) -> io::Result<usize> {
        std::future::poll_fn(|cx| Pin::new(&mut *io).poll_write(cx, buf)).await
    }

    /// Issue 8: a write blocked for the timeout fails with `TimedOut`; one
    /// that is unblocked sooner succeeds, and the next stall is timed afresh.
    #[tokio::test]
    async fn a_write_blocked_past_the_timeout_fails_and_progress_resets_the_clock() {
        const TIMEOUT: Duration = Duration::from_millis(200);
        let (near, mut far) = tokio::io::duplex(64);
        let mut io = WriteDeadline::new(TokioIo::new(near), TIMEOUT);
        assert_eq!(write(&mut io, &[1; 64]).await.unwrap(), 64, "fills the pipe");

        let reader = tokio::spawn(async move {
            tokio::time::sleep(TIMEOUT / 2).await;
            let mut buf = [0u8; 64];
            far.read_exact(&mut buf).await.unwrap();
            far
        });
        assert_eq!(write(&mut io, &[2; 64]).await.unwrap(), 64, "unblocked within the timeout");
        let far = reader.await.unwrap();

        let started = std::time::Instant::now();
        let e = write(&mut io, &[3; 64]).await.unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::TimedOut, "{e}");
        assert!(started.elapsed() >= TIMEOUT, "failed after {:?}", started.elapsed());
        assert!(is_write_timeout(&e));
        drop(far);
    }
}
