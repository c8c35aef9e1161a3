//! How far one backup or restore stream is, its pace and its cancellation. The
//! job wraps the engine's dump (or the engine's loader) in a [`Tracked`] stream:
//! every byte through it is counted, an operator's bandwidth limit holds it back,
//! and a cancelled [`Tracker`] makes its next read or write fail, so the pipeline
//! unwinds the way it does on any error (the upload aborted, the staged restore
//! removed).

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};
use tokio_util::sync::{CancellationToken, WaitForCancellationFutureOwned};

/// Marks an unknown total.
const UNKNOWN: u64 = u64::MAX;

/// Shared by a job's stream and whoever watches it.
#[derive(Debug)]
pub struct Tracker {
    bytes: AtomicU64,
    total: AtomicU64,
    limit: Option<u64>,
    token: CancellationToken,
    reason: Mutex<Option<String>>,
}

impl Tracker {
    /// `limit`: bytes a second the stream may move, if the operator set one.
    pub fn new(limit: Option<u64>) -> Arc<Self> {
        Arc::new(Self {
            bytes: AtomicU64::new(0),
            total: AtomicU64::new(UNKNOWN),
            limit: limit.filter(|l| *l > 0),
            token: CancellationToken::new(),
            reason: Mutex::new(None),
        })
    }

    /// Bytes through the stream so far.
    pub fn bytes(&self) -> u64 {
        self.bytes.load(Ordering::Relaxed)
    }

    /// The total the job expects, if known.
    pub fn total(&self) -> Option<u64> {
        Some(self.total.load(Ordering::Relaxed)).filter(|t| *t != UNKNOWN)
    }

    pub fn set_total(&self, total: Option<u64>) {
        self.total.store(total.unwrap_or(UNKNOWN).min(UNKNOWN - 1), Ordering::Relaxed);
    }

    /// Stops the stream at its next read or write; the first reason given stays.
    pub fn cancel(&self, reason: impl Into<String>) {
        let mut held = self.reason.lock().unwrap_or_else(|p| p.into_inner());
        if held.is_none() {
            *held = Some(reason.into());
        }
        drop(held);
        self.token.cancel();
    }

    /// Why the stream was cancelled, once it was.
    pub fn cancelled(&self) -> Option<String> {
        self.reason.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// `inner`, counted, paced and cancellable by this tracker.
    pub fn track<T>(self: &Arc<Self>, inner: T) -> Tracked<T> {
        Tracked {
            inner,
            cancelled: Box::pin(self.token.clone().cancelled_owned()),
            tracker: self.clone(),
            started: Instant::now(),
            pause: None,
            counted: true,
        }
    }

    /// `inner` holding bytes counted once already (a second read of the same
    /// piece): cancellable and paced, but not counted again, so the progress of a
    /// job that reads some bytes twice still ends at its total.
    pub fn track_again<T>(self: &Arc<Self>, inner: T) -> Tracked<T> {
        Tracked { counted: false, ..self.track(inner) }
    }

    fn error(&self) -> io::Error {
        io::Error::other(self.cancelled().unwrap_or_else(|| "cancelled".into()))
    }
}

/// A reader or writer counted by a [`Tracker`].
pub struct Tracked<T> {
    inner: T,
    tracker: Arc<Tracker>,
    cancelled: Pin<Box<WaitForCancellationFutureOwned>>,
    started: Instant,
    pause: Option<Pin<Box<Sleep>>>,
    counted: bool,
}

impl<T> Tracked<T> {
    /// Ready once the stream may go on: not cancelled, and within the limit (a
    /// second's worth of bytes ahead at most).
    fn poll_turn(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.cancelled.as_mut().poll(cx).is_ready() {
            return Poll::Ready(Err(self.tracker.error()));
        }
        let Some(limit) = self.tracker.limit else { return Poll::Ready(Ok(())) };
        loop {
            if let Some(pause) = self.pause.as_mut() {
                ready!(pause.as_mut().poll(cx));
                self.pause = None;
            }
            let ahead = self.tracker.bytes().saturating_sub(limit);
            let due = self.started + Duration::from_secs_f64(ahead as f64 / limit as f64);
            if due <= Instant::now() {
                return Poll::Ready(Ok(()));
            }
            self.pause = Some(Box::pin(tokio::time::sleep_until(due)));
        }
    }

    fn count(&self, n: usize) {
        if self.counted {
            self.tracker.bytes.fetch_add(n as u64, Ordering::Relaxed);
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Tracked<T> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        ready!(this.poll_turn(cx))?;
        let before = buf.filled().len();
        ready!(Pin::new(&mut this.inner).poll_read(cx, buf))?;
        this.count(buf.filled().len() - before);
        Poll::Ready(Ok(()))
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Tracked<T> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, data: &[u8]) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        ready!(this.poll_turn(cx))?;
        let n = ready!(Pin::new(&mut this.inner).poll_write(cx, data))?;
        this.count(n);
        Poll::Ready(Ok(n))
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if this.cancelled.as_mut().poll(cx).is_ready() {
            // A loader must not take a cut-off stream for a whole one.
            return Poll::Ready(Err(this.tracker.error()));
        }
        Pin::new(&mut this.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_limit_holds_the_stream_to_its_pace() {
        let tracker = Tracker::new(Some(1 << 20));
        let data = vec![7u8; 4 << 20];
        let mut reader = tracker.track(&data[..]);
        let started = Instant::now();
        let mut out = Vec::new();
        reader.read_to_end(&mut out).await.unwrap();
        assert_eq!(out, data);
        assert_eq!(tracker.bytes(), 4 << 20);
        // One second's worth goes at once; the other three take three seconds.
        let took = started.elapsed();
        assert!(took >= Duration::from_secs(3) && took < Duration::from_secs(4), "{took:?}");
    }

    #[tokio::test]
    async fn bytes_read_again_are_not_counted_again_but_stop_on_a_cancel() {
        let tracker = Tracker::new(None);
        let mut out = Vec::new();
        tracker.track(&b"head"[..]).read_to_end(&mut out).await.unwrap();
        tracker.track_again(&b"head"[..]).read_to_end(&mut out).await.unwrap();
        assert_eq!((out.as_slice(), tracker.bytes()), (&b"headhead"[..], 4));
        tracker.cancel("cancelled by carol");
        let e = tracker.track_again(&b"head"[..]).read_to_end(&mut out).await.unwrap_err();
        assert_eq!(e.to_string(), "cancelled by carol");
    }

    #[tokio::test]
    async fn a_cancelled_stream_fails_its_next_read_and_write_with_the_reason() {
        let tracker = Tracker::new(None);
        tracker.set_total(Some(10));
        assert_eq!(tracker.total(), Some(10));
        let (client, mut server) = tokio::io::duplex(64);
        let mut reader = tracker.track(client);
        server.write_all(b"abc").await.unwrap();
        let mut buf = [0u8; 3];
        reader.read_exact(&mut buf).await.unwrap();
        // A read that waits for data is woken by the cancel.
        let waiting = tokio::spawn(async move { reader.read(&mut buf).await });
        tokio::time::sleep(Duration::from_millis(20)).await;
        tracker.cancel("cancelled by alice");
        tracker.cancel("cancelled by bob");
        let e = waiting.await.unwrap().unwrap_err();
        assert_eq!(e.to_string(), "cancelled by alice");
        let mut writer = tracker.track(tokio::io::sink());
        assert_eq!(writer.write_all(b"x").await.unwrap_err().to_string(), "cancelled by alice");
        assert_eq!(writer.shutdown().await.unwrap_err().to_string(), "cancelled by alice");
        assert_eq!(tracker.bytes(), 3);
    }
}
