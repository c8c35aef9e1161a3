//! Reading one piece of a backup: a range of its plain bytes, decrypted and
//! decompressed from the nearest frame before it, without reading what comes
//! before that frame. A restore that loads several pieces at once opens one of
//! these per piece, and checks the object as a whole with [`verify`] beside them:
//! age authenticates every chunk a piece reads, the sha256 covers the rest.

use std::io::{self, Read, Seek, SeekFrom};
use std::iter;
use std::sync::Arc;

use anyhow::{Context, anyhow, bail};
use bytes::Bytes;
use futures::StreamExt;
use object_store::path::Path;
use object_store::{GetOptions, GetRange, GetResultPayload, ObjectStore, ObjectStoreExt};
use sha2::{Digest, Sha256};
use tokio::io::AsyncRead;
use tokio::runtime::Handle;
use tokio::sync::mpsc;
use tokio_util::io::{StreamReader, SyncIoBridge};

use crate::BackupStorage;
use crate::frames::{Frame, frame_for};
use crate::pipeline::{Pool, check_sha256, object_chunks};

/// Plain bytes handed on at once, and how many such chunks wait at most.
const CHUNK: usize = 1 << 20;
const QUEUED: usize = 2;

/// Plain bytes `start..end` of the backup object `key`, as a stream. Reading fails
/// if the object cannot be read, decrypted or decompressed, or ends early.
pub fn read_range(
    storage: &BackupStorage,
    key: &str,
    identity: Box<dyn age::Identity + Send>,
    frames: &[Frame],
    start: u64,
    end: u64,
) -> impl AsyncRead + Send + Unpin + 'static {
    let (tx, rx) = mpsc::channel::<io::Result<Bytes>>(QUEUED);
    let object = ObjectReader::new(storage.store().clone(), storage.path(key), Handle::current());
    let from = frame_for(frames, start);
    let what = format!("bytes {start}..{end} of backup object {key}");
    tokio::task::spawn_blocking(move || {
        if let Err(e) = decode(object, identity, from, start, end, &tx) {
            let _ = tx.blocking_send(Err(io::Error::other(format!("{:#}", e.context(what)))));
        }
    });
    StreamReader::new(stream_of(rx))
}

fn stream_of(
    mut rx: mpsc::Receiver<io::Result<Bytes>>,
) -> impl futures::Stream<Item = io::Result<Bytes>> + Send + Unpin + 'static {
    Box::pin(futures::stream::poll_fn(move |cx| rx.poll_recv(cx)))
}

fn decode(
    object: ObjectReader,
    identity: Box<dyn age::Identity + Send>,
    from: Frame,
    start: u64,
    end: u64,
    tx: &mpsc::Sender<io::Result<Bytes>>,
) -> anyhow::Result<()> {
    let decryptor = age::Decryptor::new(object).map_err(|e| anyhow!("not a readable age file: {e}"))?;
    let mut plain = decryptor
        .decrypt(iter::once(identity.as_ref() as &dyn age::Identity))
        .map_err(|e| anyhow!("cannot be decrypted with the instance's key: {e}"))?;
    plain.seek(SeekFrom::Start(from.compressed)).context("finding the frame to start at")?;
    let mut decompressed = zstd::stream::read::Decoder::new(plain).context("setting up decompression")?;
    let skip = start - from.plain;
    let skipped = io::copy(&mut (&mut decompressed).take(skip), &mut io::sink()).context("reading up to the range")?;
    if skipped < skip {
        bail!("the stream ends {} bytes before the range", skip - skipped);
    }
    // The reader's chunks come back to be filled again (see [`Pool`]).
    let pool = Pool::new(QUEUED + 1);
    let mut left = end - start;
    while left > 0 {
        let mut buf = pool.take();
        buf.resize(CHUNK.min(usize::try_from(left).unwrap_or(CHUNK)), 0);
        let mut filled = 0;
        while filled < buf.len() {
            match decompressed.read(&mut buf[filled..]) {
                Ok(0) => bail!("the stream ends {} bytes before the range does", left - filled as u64),
                Ok(n) => filled += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(anyhow!("failed authentication or decompression: {e}")),
            }
        }
        left -= filled as u64;
        if tx.blocking_send(Ok(pool.chunk(buf))).is_err() {
            return Ok(()); // the reader went away
        }
    }
    Ok(())
}

/// Reads the whole object and checks its sha256 against the recorded one; returns
/// its size.
pub async fn verify(storage: &BackupStorage, key: &str, expected_sha256: &str) -> anyhow::Result<u64> {
    let mut chunks = object_chunks(storage, key).await?;
    let mut hasher = Sha256::new();
    let mut size = 0u64;
    while let Some(chunk) = chunks.next().await {
        let chunk = chunk.context("reading the backup object")?;
        hasher.update(&chunk);
        size += chunk.len() as u64;
    }
    check_sha256(hasher, expected_sha256)?;
    Ok(size)
}

/// A blocking, seekable reader over an object: every seek that moves starts a new
/// ranged read from there to the end, read only as far as it is used.
struct ObjectReader {
    store: Arc<dyn ObjectStore>,
    path: Path,
    handle: Handle,
    size: Option<u64>,
    pos: u64,
    body: Option<Box<dyn Read + Send>>,
}

impl ObjectReader {
    fn new(store: Arc<dyn ObjectStore>, path: Path, handle: Handle) -> Self {
        Self { store, path, handle, size: None, pos: 0, body: None }
    }

    fn size(&mut self) -> io::Result<u64> {
        if let Some(size) = self.size {
            return Ok(size);
        }
        let meta = self.handle.block_on(self.store.head(&self.path)).map_err(io::Error::other)?;
        self.size = Some(meta.size);
        Ok(meta.size)
    }

    fn open(&mut self) -> io::Result<Box<dyn Read + Send>> {
        let options = GetOptions { range: Some(GetRange::Offset(self.pos)), ..Default::default() };
        let result = self.handle.block_on(self.store.get_opts(&self.path, options)).map_err(io::Error::other)?;
        Ok(match result.payload {
            GetResultPayload::File(mut file, _) => {
                file.seek(SeekFrom::Start(result.range.start))?;
                Box::new(io::BufReader::with_capacity(CHUNK, file.take(result.range.end - result.range.start)))
            }
            GetResultPayload::Stream(stream) => {
                let stream = stream.map(|chunk| chunk.map_err(io::Error::other));
                Box::new(SyncIoBridge::new_with_handle(StreamReader::new(stream), self.handle.clone()))
            }
        })
    }
}

impl Read for ObjectReader {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if self.body.is_none() {
            if self.pos >= self.size()? {
                return Ok(0);
            }
            self.body = Some(self.open()?);
        }
        let n = self.body.as_mut().expect("opened above").read(out)?;
        self.pos += n as u64;
        Ok(n)
    }
}

impl Seek for ObjectReader {
    fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
        let pos = match to {
            SeekFrom::Start(pos) => Some(pos),
            SeekFrom::Current(delta) => self.pos.checked_add_signed(delta),
            SeekFrom::End(delta) => self.size()?.checked_add_signed(delta),
        }
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "seek before the start"))?;
        if pos != self.pos {
            self.body = None;
            self.pos = pos;
        }
        Ok(pos)
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::AsyncReadExt;

    use super::*;
    use crate::keys::BackupKey;
    use crate::{PipelineOptions, upload};

    fn dump(len: usize) -> Vec<u8> {
        let mut n: u64 = 7;
        let mut out = Vec::with_capacity(len);
        while out.len() < len {
            n = n.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            out.extend_from_slice(format!("{:x}\trow {}\n", n >> 20, n % 1000).as_bytes());
        }
        out.truncate(len);
        out
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn any_range_reads_back_as_stored_and_the_whole_object_verifies() {
        let dir = tempfile::tempdir().unwrap();
        let storage = BackupStorage::open(&format!("file://{}", dir.path().display()), []).unwrap();
        let key = BackupKey::generate();
        let data = dump(3_000_000);
        let options = PipelineOptions { frame_size: Some(256 * 1024), ..PipelineOptions::default() };
        let source = std::io::Cursor::new(data.clone());
        let stored = upload(&storage, "obj", source, async { Ok(()) }, key.recipient(), &options).await.unwrap();
        assert_eq!(stored.frames.len(), 12);

        // Ranges inside one frame, across frames, at a frame's start, up to the end,
        // and the whole (chunks handed back and filled again).
        for (start, end) in [
            (0, 10),
            (100, 300_000),
            (262_144, 262_145),
            (1_000_001, 2_999_999),
            (2_500_000, 3_000_000),
            (0, 3_000_000),
        ] {
            let mut piece = Vec::new();
            let mut reader = read_range(&storage, "obj", key.identity(), &stored.frames, start, end);
            reader.read_to_end(&mut piece).await.unwrap();
            assert!(piece == data[start as usize..end as usize], "bytes {start}..{end}");
        }
        assert_eq!(verify(&storage, "obj", &stored.sha256).await.unwrap(), stored.size);

        // A range past the end fails instead of coming back short.
        let mut reader = read_range(&storage, "obj", key.identity(), &stored.frames, 2_900_000, 3_000_100);
        let error = reader.read_to_end(&mut Vec::new()).await.unwrap_err();
        assert!(error.to_string().contains("ends 100 bytes before"), "{error}");

        // Another key cannot read it; a changed byte fails the check.
        let other = BackupKey::generate();
        let mut reader = read_range(&storage, "obj", other.identity(), &stored.frames, 0, 10);
        assert!(reader.read_to_end(&mut Vec::new()).await.is_err());
        let file = dir.path().join("obj");
        let mut bytes = std::fs::read(&file).unwrap();
        let middle = bytes.len() / 2;
        bytes[middle] ^= 1;
        std::fs::write(&file, bytes).unwrap();
        assert!(verify(&storage, "obj", &stored.sha256).await.unwrap_err().to_string().contains("sha256"));
        let mut reader = read_range(&storage, "obj", key.identity(), &stored.frames, 0, 3_000_000);
        assert!(reader.read_to_end(&mut Vec::new()).await.is_err(), "age notices the changed chunk");
    }
}
