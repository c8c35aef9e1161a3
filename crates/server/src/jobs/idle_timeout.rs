//! A reader that fails when its source stays silent for too long: for producers
//! that can wait forever without a word, such as `pg_basebackup` waiting for its
//! log to be archived.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, ReadBuf};
use tokio::time::{Instant, Sleep};

/// Fails a read with `TimedOut` once the source has had nothing for `limit` in a
/// row. Only time spent waiting on the source counts, not time the consumer took
/// between reads (a slow upload is not silence).
pub struct IdleTimeout<R> {
    inner: R,
    limit: Duration,
    what: &'static str,
    waiting: Option<Pin<Box<Sleep>>>,
}

impl<R> IdleTimeout<R> {
    pub fn new(inner: R, limit: Duration, what: &'static str) -> Self {
        Self { inner, limit, what, waiting: None }
    }
}

impl<R: AsyncRead + Unpin> AsyncRead for IdleTimeout<R> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_read(cx, buf) {
            Poll::Ready(result) => {
                this.waiting = None;
                Poll::Ready(result)
            }
            Poll::Pending => {
                let limit = this.limit;
                let sleep =
                    this.waiting.get_or_insert_with(|| Box::pin(tokio::time::sleep_until(Instant::now() + limit)));
                match sleep.as_mut().poll(cx) {
                    Poll::Ready(()) => Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        format!("{} sent nothing for {} s", this.what, limit.as_secs()),
                    ))),
                    Poll::Pending => Poll::Pending,
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_source_that_goes_silent_fails_the_read_after_the_limit() {
        let (mut writer, reader) = tokio::io::duplex(64);
        let mut reader = IdleTimeout::new(reader, Duration::from_secs(10), "the producer");
        writer.write_all(b"abc").await.unwrap();
        let mut got = [0u8; 3];
        reader.read_exact(&mut got).await.unwrap();
        assert_eq!(&got, b"abc");
        let started = Instant::now();
        let error = reader.read(&mut got).await.unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::TimedOut);
        assert_eq!(error.to_string(), "the producer sent nothing for 10 s");
        assert_eq!(started.elapsed(), Duration::from_secs(10));
        drop(writer);
    }

    #[tokio::test(start_paused = true)]
    async fn a_slow_consumer_is_not_silence() {
        let (mut writer, reader) = tokio::io::duplex(64);
        let mut reader = IdleTimeout::new(reader, Duration::from_secs(10), "the producer");
        writer.write_all(b"abcdef").await.unwrap();
        let mut got = [0u8; 3];
        reader.read_exact(&mut got).await.unwrap();
        // The consumer is busy elsewhere for longer than the limit; the data waits.
        tokio::time::sleep(Duration::from_secs(60)).await;
        reader.read_exact(&mut got).await.unwrap();
        assert_eq!(&got, b"def");
        // Silence, but shorter than the limit, then more data: no error.
        let write_later = async {
            tokio::time::sleep(Duration::from_secs(9)).await;
            writer.write_all(b"g").await.unwrap();
            writer
        };
        let mut one = [0u8; 1];
        let (read, _writer) = tokio::join!(reader.read_exact(&mut one), write_later);
        read.unwrap();
        assert_eq!(&one, b"g");
    }
}
