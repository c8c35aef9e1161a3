//! The streaming pipeline. Compression, encryption and hashing run on a blocking
//! thread (zstd adds its own worker threads); the async side moves bounded chunks
//! between that thread and the object store, so memory stays flat whatever the size.

use std::future::Future;
use std::io::{self, BufReader, Read, Write};
use std::iter;

use anyhow::{Context, anyhow, bail};
use bytes::{Bytes, BytesMut};
use futures::{StreamExt, TryStreamExt};
use object_store::{GetResultPayload, ObjectStoreExt};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::mpsc;
use tokio_util::io::{ReaderStream, SyncIoBridge};

use crate::BackupStorage;
use crate::frames::{Frame, FramedEncoder};
use crate::parts::GrowingUpload;

/// Chunk handed from the encoding thread to the uploader.
const CHUNK: usize = 1 << 20;
/// Read and write buffer of the blocking side.
const COPY_BUFFER: usize = 1 << 20;
/// Chunks of [`COPY_BUFFER`] bytes read ahead of the encoder.
const INPUT_CHUNKS: usize = 8;
/// Chunks queued between two stages of a restore: enough to keep both busy.
const STAGE_CHUNKS: usize = 3;
/// How long a failed upload waits for the dump's producer to exit.
const PRODUCER_EXIT: std::time::Duration = std::time::Duration::from_secs(10);

/// How hard to compress and how to upload.
#[derive(Debug, Clone)]
pub struct PipelineOptions {
    /// zstd level (1 = fastest).
    pub zstd_level: i32,
    /// zstd worker threads; 0 compresses on the pipeline's own thread.
    pub zstd_workers: u32,
    /// The smallest multipart upload part; parts grow from it with the backup's
    /// size (see `parts`).
    pub part_size: usize,
    /// Parts uploaded at once.
    pub upload_concurrency: usize,
    /// The engine's guess of the backup's (uncompressed) size, if it has one.
    pub estimated_size: Option<u64>,
    /// Compress in independent frames of this many plain bytes (see `frames`), for
    /// backups a restore reads in pieces.
    pub frame_size: Option<u64>,
}

impl Default for PipelineOptions {
    fn default() -> Self {
        Self {
            zstd_level: 2,
            zstd_workers: 2,
            part_size: 5 << 20,
            upload_concurrency: 2,
            estimated_size: None,
            frame_size: None,
        }
    }
}

/// What a finished upload stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stored {
    /// Bytes of the stored (compressed, encrypted) object.
    pub size: u64,
    /// Hex sha256 of the stored object.
    pub sha256: String,
    /// Bytes of the dump before compression.
    pub plain_size: u64,
    /// Where each compressed frame starts.
    pub frames: Vec<Frame>,
}

/// Streams `source` through zstd and age into the object `key`.
///
/// `source_done` resolves once the producer of `source` has exited, with an error if it
/// failed; the object is only completed when the whole stream and the producer succeeded,
/// otherwise the upload is aborted and nothing is left under `key`.
pub async fn upload<R, F>(
    storage: &BackupStorage,
    key: &str,
    source: R,
    source_done: F,
    recipient: Box<dyn age::Recipient + Send>,
    options: &PipelineOptions,
) -> anyhow::Result<Stored>
where
    R: AsyncRead + Unpin + Send + 'static,
    F: Future<Output = anyhow::Result<()>>,
{
    upload_tapped(storage, key, source, source_done, recipient, options, None).await
}

/// [`upload`], showing the plain stream to `tap` on its way (an engine that notes
/// where the pieces of its dump lie).
pub async fn upload_tapped<R, F>(
    storage: &BackupStorage,
    key: &str,
    source: R,
    source_done: F,
    recipient: Box<dyn age::Recipient + Send>,
    options: &PipelineOptions,
    tap: Option<Box<dyn Write + Send>>,
) -> anyhow::Result<Stored>
where
    R: AsyncRead + Unpin + Send + 'static,
    F: Future<Output = anyhow::Result<()>>,
{
    let path = storage.path(key);
    let upload = storage
        .store()
        .put_multipart(&path)
        .await
        .with_context(|| format!("starting the upload to {}", storage.display_url()))?;
    let mut writer = GrowingUpload::new(upload, options.part_size, options.estimated_size, options.upload_concurrency);

    // The dump is read on its own task into a buffer of a few MiB, so the dump program
    // never waits on a 64 KiB pipe while the encoder is busy with a chunk.
    let (input_tx, input_rx) = mpsc::channel::<Bytes>(INPUT_CHUNKS);
    let reader = tokio::spawn(read_chunks(source, input_tx));
    let (tx, mut rx) = mpsc::channel::<Bytes>(4);
    let input = ChannelReader::new(input_rx);
    let compression =
        Compression { level: options.zstd_level, workers: options.zstd_workers, frame_size: options.frame_size };
    let encoder = tokio::task::spawn_blocking(move || encode(input, tx, recipient.as_ref(), compression, tap));

    // Hashing here, not on the encoder's thread, puts it on another core.
    let mut hasher = Sha256::new();
    let mut size = 0u64;
    let mut sent: anyhow::Result<()> = Ok(());
    while let Some(chunk) = rx.recv().await {
        hasher.update(&chunk);
        size += chunk.len() as u64;
        if let Err(e) = writer.put(chunk).await {
            sent = Err(anyhow::Error::new(e).context(format!("uploading to {}", storage.display_url())));
            break;
        }
    }
    // Closing the channel tells the encoder to stop if the upload broke off.
    drop(rx);
    let encoded = encoder.await.context("the backup pipeline thread panicked")?;
    let read = reader.await.context("the dump reader panicked")?;
    let outcome = match (sent, read, encoded) {
        (Err(e), _, _) | (Ok(()), Err(e), _) | (Ok(()), Ok(()), Err(e)) => {
            // The producer finds its output closed and exits; waiting for it lets
            // its own clean-up run (a bounded wait: dropping it kills it).
            let _ = tokio::time::timeout(PRODUCER_EXIT, source_done).await;
            Err(e)
        }
        (Ok(()), Ok(()), Ok((plain_size, frames))) => {
            source_done.await.map(|()| Stored { size, sha256: hex::encode(hasher.finalize()), plain_size, frames })
        }
    };
    match outcome {
        Ok(stored) => {
            writer.finish().await.with_context(|| format!("completing the upload to {}", storage.display_url()))?;
            Ok(stored)
        }
        Err(e) => {
            if let Err(abort) = writer.abort().await {
                tracing::warn!(error = %abort, key, "could not abort a failed upload");
            }
            Err(e)
        }
    }
}

/// Reads `source` to its end in chunks of up to [`CHUNK`] bytes, in buffers that
/// come back once the encoder has read them.
async fn read_chunks(mut source: impl AsyncRead + Unpin, tx: mpsc::Sender<Bytes>) -> anyhow::Result<()> {
    use tokio::io::AsyncReadExt;
    let pool = Pool::new(INPUT_CHUNKS);
    loop {
        let mut buf = pool.take();
        while buf.len() < CHUNK {
            if source.read_buf(&mut buf).await.context("reading the dump")? == 0 {
                break;
            }
        }
        if buf.is_empty() {
            return Ok(());
        }
        let last = buf.len() < CHUNK;
        if tx.send(pool.chunk(buf)).await.is_err() {
            // The encoder stopped; its error says why.
            return Ok(());
        }
        if last {
            return Ok(());
        }
    }
}

struct Compression {
    level: i32,
    workers: u32,
    frame_size: Option<u64>,
}

fn encode(
    mut reader: impl Read,
    tx: mpsc::Sender<Bytes>,
    recipient: &(dyn age::Recipient + Send),
    compression: Compression,
    tap: Option<Box<dyn Write + Send>>,
) -> anyhow::Result<(u64, Vec<Frame>)> {
    let sink = ChunkSink::new(tx);
    let encrypted = age::Encryptor::with_recipients(iter::once(recipient as &dyn age::Recipient))
        .context("setting up encryption")?
        .wrap_output(sink)
        .context("writing the encryption header")?;
    let Compression { level, workers, frame_size } = compression;
    let compressed = FramedEncoder::new(encrypted, level, workers, frame_size).context("setting up compression")?;
    let mut compressed = Tee { inner: compressed, tap };
    let plain_size = copy(&mut reader, &mut compressed).map_err(|e| match e {
        Copy::Read(e) => anyhow!(e).context("reading the dump"),
        Copy::Write(e) => anyhow!(e).context("compressing and encrypting"),
    })?;
    let (encrypted, frames) = compressed.inner.finish().context("finishing compression")?;
    let mut sink = encrypted.finish().context("finishing encryption")?;
    sink.send()?;
    Ok((plain_size, frames))
}

/// Writes to `inner` and shows the same bytes to `tap`.
struct Tee<W> {
    inner: W,
    tap: Option<Box<dyn Write + Send>>,
}

impl<W: Write> Write for Tee<W> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(data)?;
        if let Some(tap) = self.tap.as_mut() {
            tap.write_all(&data[..n])?;
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Collects the encrypted bytes into chunks of about [`CHUNK`] bytes and hands
/// them on, in buffers from `pool`.
struct ChunkSink {
    tx: mpsc::Sender<Bytes>,
    buf: Vec<u8>,
    pool: Pool,
}

impl ChunkSink {
    fn new(tx: mpsc::Sender<Bytes>) -> Self {
        let pool = Pool::new(POOLED);
        Self { tx, buf: pool.take(), pool }
    }

    fn send(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = self.pool.chunk(std::mem::replace(&mut self.buf, self.pool.take()));
        self.tx.blocking_send(chunk).map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "the upload stopped"))
    }
}

impl Write for ChunkSink {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        // A chunk never outgrows its buffer: growing it would allocate anew.
        if self.buf.len() + data.len() > self.buf.capacity() {
            self.send()?;
        }
        self.buf.extend_from_slice(data);
        if self.buf.len() >= CHUNK {
            self.send()?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Buffers of [`CHUNK`] bytes that come back to be filled again once the chunk
/// made of them is dropped, wherever that happens (the encoder, an upload's part,
/// the next stage of a restore). The server returns freed memory to the system at
/// once (see `malloc_tunables` in the `svcdash` crate): a new buffer per MiB would
/// cost the page faults of a fresh MiB each time (a sixth more CPU time in a
/// restore). Buffers that come back while the pool is full, or after it is gone,
/// are freed.
pub(crate) struct Pool {
    back: std::sync::mpsc::SyncSender<Vec<u8>>,
    spare: std::sync::mpsc::Receiver<Vec<u8>>,
}

/// Buffers the encrypted chunks' [`Pool`] keeps at most.
const POOLED: usize = 4;

impl Pool {
    /// A pool that keeps at most `keep` buffers.
    pub(crate) fn new(keep: usize) -> Self {
        let (back, spare) = std::sync::mpsc::sync_channel(keep);
        Self { back, spare }
    }

    /// An empty buffer of at least [`CHUNK`] bytes.
    pub(crate) fn take(&self) -> Vec<u8> {
        match self.spare.try_recv() {
            Ok(mut buf) => {
                buf.clear();
                buf
            }
            Err(_) => Vec::with_capacity(CHUNK),
        }
    }

    /// `buf` as a chunk whose buffer comes back to this pool when it is dropped.
    pub(crate) fn chunk(&self, buf: Vec<u8>) -> Bytes {
        Bytes::from_owner(Pooled { buf, back: self.back.clone() })
    }
}

struct Pooled {
    buf: Vec<u8>,
    back: std::sync::mpsc::SyncSender<Vec<u8>>,
}

impl AsRef<[u8]> for Pooled {
    fn as_ref(&self) -> &[u8] {
        &self.buf
    }
}

impl Drop for Pooled {
    fn drop(&mut self) {
        let _ = self.back.try_send(std::mem::take(&mut self.buf));
    }
}

/// Reads the object `key` back, decrypts and decompresses it into `sink`, and checks its
/// sha256 against `expected_sha256`. Age authenticates every 64 KiB chunk as it goes, so a
/// changed byte stops the stream there; the sha256 is known only at the end, so callers
/// write into a staging place and switch over only after this returns `Ok`.
///
/// Reading and hashing, decryption, and decompression each run on their own thread,
/// joined by bounded channels of about [`CHUNK`] bytes: on two cores the engine's loader
/// gets one while the three stages share the other, instead of waiting on one thread
/// that does everything in turn.
pub async fn download<W>(
    storage: &BackupStorage,
    key: &str,
    expected_sha256: &str,
    identity: Box<dyn age::Identity + Send>,
    sink: W,
) -> anyhow::Result<u64>
where
    W: AsyncWrite + Unpin + Send + 'static,
{
    let mut stream = object_chunks(storage, key).await?;

    let (tx, rx) = mpsc::channel::<Bytes>(STAGE_CHUNKS);
    let (plain_tx, plain_rx) = mpsc::channel::<Bytes>(STAGE_CHUNKS);
    let decryptor = tokio::task::spawn_blocking(move || decrypt(ChannelReader::new(rx), plain_tx, identity));
    let writer = SyncIoBridge::new(sink);
    let decompressor = tokio::task::spawn_blocking(move || decompress(ChannelReader::new(plain_rx), writer));

    let mut hasher = Sha256::new();
    let mut read: anyhow::Result<()> = Ok(());
    // Network stores deliver a few KiB at a time; handing those on one by one would
    // wake the decrypting thread for every one of them.
    let mut pending = BytesMut::new();
    loop {
        let chunk = match stream.next().await {
            Some(Ok(chunk)) => chunk,
            Some(Err(e)) => {
                read = Err(e.context("reading the backup object"));
                break;
            }
            None => break,
        };
        hasher.update(&chunk);
        let batch = if pending.is_empty() && chunk.len() >= CHUNK / 4 {
            chunk
        } else {
            pending.extend_from_slice(&chunk);
            if pending.len() < CHUNK / 4 {
                continue;
            }
            pending.split().freeze()
        };
        if tx.send(batch).await.is_err() {
            break; // the decryptor stopped; its error says why
        }
    }
    if read.is_ok() && !pending.is_empty() {
        // An error here means the decryptor stopped; its error says why.
        let _ = tx.send(pending.freeze()).await;
    }
    drop(tx);
    let decrypted = decryptor.await.context("the restore pipeline thread panicked")?;
    let decompressed = decompressor.await.context("the restore pipeline thread panicked")?;
    read?;
    // The decryptor's error explains a failed decompression (its output was cut short).
    decrypted?;
    let plain = decompressed?;
    check_sha256(hasher, expected_sha256)?;
    Ok(plain)
}

/// The stored object `key`, as chunks of up to about [`CHUNK`] bytes.
pub(crate) async fn object_chunks(
    storage: &BackupStorage,
    key: &str,
) -> anyhow::Result<futures::stream::BoxStream<'static, anyhow::Result<Bytes>>> {
    let object = storage
        .store()
        .get(&storage.path(key))
        .await
        .with_context(|| format!("reading backup object {key} from {}", storage.display_url()))?;
    Ok(match object.payload {
        // A local store's own stream reads 8 KiB per blocking call.
        GetResultPayload::File(file, _) => {
            ReaderStream::with_capacity(tokio::fs::File::from_std(file), CHUNK).map_err(anyhow::Error::new).boxed()
        }
        GetResultPayload::Stream(stream) => stream.map_err(anyhow::Error::new).boxed(),
    })
}

/// Compares a stored object's sha256 with the one recorded when it was written.
pub(crate) fn check_sha256(hasher: Sha256, expected_sha256: &str) -> anyhow::Result<()> {
    let actual = hex::encode(hasher.finalize());
    if actual != expected_sha256 {
        bail!(
            "the backup object's sha256 is {actual}, but {expected_sha256} was recorded: it was changed or damaged in the store"
        );
    }
    Ok(())
}

fn decrypt(
    reader: ChannelReader,
    tx: mpsc::Sender<Bytes>,
    identity: Box<dyn age::Identity + Send>,
) -> anyhow::Result<()> {
    let decryptor = age::Decryptor::new_buffered(BufReader::with_capacity(COPY_BUFFER, reader))
        .map_err(|e| anyhow!("the backup object is not a readable age file: {e}"))?;
    let mut decrypted = decryptor
        .decrypt(iter::once(identity.as_ref() as &dyn age::Identity))
        .map_err(|e| anyhow!("the backup object cannot be decrypted with the instance's key: {e}"))?;
    let mut sink = ChunkSink::new(tx);
    // A failed hand-over means the decompressor stopped: its error says why.
    match copy(&mut decrypted, &mut sink) {
        Ok(_) => {
            let _ = sink.send();
            Ok(())
        }
        Err(Copy::Read(e)) => Err(anyhow!("the backup object failed authentication: {e}")),
        Err(Copy::Write(_)) => Ok(()),
    }
}

fn decompress(reader: ChannelReader, mut writer: SyncIoBridge<impl AsyncWrite + Unpin>) -> anyhow::Result<u64> {
    let mut decompressed = zstd::stream::read::Decoder::new(reader).context("setting up decompression")?;
    let plain = copy(&mut decompressed, &mut writer).map_err(|e| match e {
        Copy::Read(e) => anyhow!("the backup object failed decompression: {e}"),
        Copy::Write(e) => anyhow!(e).context("feeding the engine's loader"),
    })?;
    writer.flush().context("feeding the engine's loader")?;
    writer.shutdown().context("closing the engine's loader input")?;
    Ok(plain)
}

/// A blocking reader over chunks arriving on a channel.
struct ChannelReader {
    rx: mpsc::Receiver<Bytes>,
    current: Bytes,
}

impl ChannelReader {
    fn new(rx: mpsc::Receiver<Bytes>) -> Self {
        Self { rx, current: Bytes::new() }
    }
}

impl Read for ChannelReader {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        while self.current.is_empty() {
            match self.rx.blocking_recv() {
                Some(chunk) => self.current = chunk,
                None => return Ok(0),
            }
        }
        let n = out.len().min(self.current.len());
        out[..n].copy_from_slice(&self.current.split_to(n));
        Ok(n)
    }
}

enum Copy {
    Read(io::Error),
    Write(io::Error),
}

/// `io::copy` with a large buffer, telling read errors from write errors.
fn copy(reader: &mut impl Read, writer: &mut impl Write) -> Result<u64, Copy> {
    let mut buf = vec![0u8; COPY_BUFFER];
    let mut total = 0u64;
    loop {
        let n = match reader.read(&mut buf) {
            Ok(0) => return Ok(total),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(Copy::Read(e)),
        };
        writer.write_all(&buf[..n]).map_err(Copy::Write)?;
        total += n as u64;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::BackupKey;

    /// Several MiB of text that compresses like a dump: every stage sees many chunks.
    fn dump() -> Vec<u8> {
        let mut out = Vec::new();
        let mut n: u64 = 1;
        while out.len() < 5 << 20 {
            n = n.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            out.extend_from_slice(format!("{n:x}\t{{\"row\": {}, \"tag\": \"t{}\"}}\n", n >> 40, n % 97).as_bytes());
        }
        out
    }

    async fn stored(storage: &BackupStorage, key: &BackupKey, data: &[u8]) -> Stored {
        let source = std::io::Cursor::new(data.to_vec());
        upload(storage, "obj", source, async { Ok(()) }, key.recipient(), &PipelineOptions::default()).await.unwrap()
    }

    fn local_store() -> (tempfile::TempDir, BackupStorage) {
        let dir = tempfile::tempdir().unwrap();
        let storage = BackupStorage::open(&format!("file://{}", dir.path().display()), []).unwrap();
        (dir, storage)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_backup_reads_back_byte_for_byte() {
        let (_dir, storage) = local_store();
        let key = BackupKey::generate();
        let data = dump();
        let stored = stored(&storage, &key, &data).await;
        assert_eq!(stored.plain_size, data.len() as u64);
        assert!(stored.size < stored.plain_size / 2, "{} of {} bytes", stored.size, stored.plain_size);

        let (writer, mut reader) = tokio::io::duplex(64 << 10);
        let collect = tokio::spawn(async move {
            let mut out = Vec::new();
            tokio::io::AsyncReadExt::read_to_end(&mut reader, &mut out).await.map(|_| out)
        });
        let plain = download(&storage, "obj", &stored.sha256, key.identity(), writer).await.unwrap();
        assert_eq!(plain, data.len() as u64);
        assert!(collect.await.unwrap().unwrap() == data, "the bytes read back differ");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_changed_byte_or_a_wrong_hash_fails_the_restore() {
        let (dir, storage) = local_store();
        let key = BackupKey::generate();
        let stored = stored(&storage, &key, &dump()).await;

        let wrong = "0".repeat(64);
        let e = download(&storage, "obj", &wrong, key.identity(), tokio::io::sink()).await.unwrap_err();
        assert!(format!("{e:#}").contains("was changed or damaged"), "{e:#}");

        let other = BackupKey::generate();
        let e = download(&storage, "obj", &stored.sha256, other.identity(), tokio::io::sink()).await.unwrap_err();
        assert!(format!("{e:#}").contains("cannot be decrypted"), "{e:#}");

        let path = dir.path().join("obj");
        let mut bytes = std::fs::read(&path).unwrap();
        let middle = bytes.len() / 2;
        bytes[middle] ^= 1;
        std::fs::write(&path, bytes).unwrap();
        let e = download(&storage, "obj", &stored.sha256, key.identity(), tokio::io::sink()).await.unwrap_err();
        assert!(format!("{e:#}").contains("failed authentication"), "{e:#}");
    }

    #[test]
    fn a_chunk_sinks_buffers_come_back_once_their_chunks_are_dropped() {
        let (tx, mut rx) = mpsc::channel::<Bytes>(8);
        let mut sink = ChunkSink::new(tx);
        let data = vec![7u8; 3 * CHUNK + 10];
        for piece in data.chunks(64 << 10) {
            sink.write_all(piece).unwrap();
        }
        sink.send().unwrap();
        let chunks: Vec<Bytes> = std::iter::from_fn(|| rx.try_recv().ok()).collect();
        assert_eq!(chunks.iter().map(Bytes::len).collect::<Vec<_>>(), [CHUNK, CHUNK, CHUNK, 10]);
        let first_at = chunks[0].as_ptr();
        drop(chunks);
        let again = sink.pool.take();
        assert_eq!((again.as_ptr(), again.len()), (first_at, 0), "the first chunk's buffer, emptied");
        assert!(again.capacity() >= CHUNK);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_loader_that_quits_fails_the_restore_with_its_own_error() {
        let (_dir, storage) = local_store();
        let key = BackupKey::generate();
        let stored = stored(&storage, &key, &dump()).await;
        let (writer, reader) = tokio::io::duplex(64 << 10);
        drop(reader);
        let e = download(&storage, "obj", &stored.sha256, key.identity(), writer).await.unwrap_err();
        assert!(format!("{e:#}").contains("feeding the engine's loader"), "{e:#}");
    }
}
