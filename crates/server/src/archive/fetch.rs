//! Serving archived write-ahead log back to a server restoring to a point in time.
//! `svcdash wal-fetch` (its `restore_command`) sends `FETCH <name>\n`; svcdash
//! answers `OK <size>\n` and the file's plain bytes, `NONE\n` when the archive does
//! not hold it (PostgreSQL asks for files that may not exist, such as the history
//! of a timeline after the newest), or `ERR <why>\n`.
//!
//! Replay waits on every file it asks for, so the segments after the one asked for
//! are read, checked and decrypted ahead, a few at a time, while it replays; the
//! first ones while the base backup is still unpacking.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use engines::WalListener;
use store::Instance;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixStream;
use tokio::sync::Mutex;
use tokio::task::JoinHandle;

use super::names;
use crate::state::AppState;

/// Segments fetched ahead of the one asked for: 16 MiB each in memory.
const AHEAD: u64 = 3;

type Fetched = JoinHandle<anyhow::Result<Option<Vec<u8>>>>;

/// The files being fetched ahead, by name.
#[derive(Default)]
struct Ahead {
    files: HashMap<String, Fetched>,
}

/// Answers fetches on `listener` until the task is aborted. `first` is the file
/// replay starts with (the base backup's first): it and those after it are read
/// at once.
pub async fn serve(state: AppState, instance: Instance, listener: WalListener, first: &str) {
    let ahead = Arc::new(Mutex::new(Ahead::default()));
    if let Err(e) = read_ahead(&state, &instance, &mut *ahead.lock().await, first, 0).await {
        tracing::warn!(instance = %instance.guid, error = format!("{e:#}"), "could not read the first archived files ahead");
    }
    loop {
        match listener.listener.accept().await {
            Ok((stream, _)) => {
                let (state, instance, ahead) = (state.clone(), instance.clone(), ahead.clone());
                let peer_uid = listener.peer_uid;
                tokio::spawn(async move { handle(&state, &instance, peer_uid, &ahead, stream).await });
            }
            Err(e) => {
                tracing::warn!(instance = %instance.guid, error = %e, "accepting a write-ahead log fetch failed");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
}

async fn handle(
    state: &AppState,
    instance: &Instance,
    peer_uid: Option<u32>,
    ahead: &Mutex<Ahead>,
    stream: UnixStream,
) {
    let started = std::time::Instant::now();
    let peer = stream.peer_cred().map(|c| c.uid()).ok();
    let (read, mut write) = stream.into_split();
    let answer = async {
        if let Some(uid) = peer_uid
            && peer != Some(uid)
        {
            bail!("only the instance's own account may fetch its write-ahead log");
        }
        let mut header = Vec::new();
        BufReader::new(read).take(256).read_until(b'\n', &mut header).await.context("reading the request")?;
        let name = std::str::from_utf8(&header)
            .ok()
            .and_then(|h| h.strip_suffix('\n'))
            .and_then(|h| h.strip_prefix("FETCH "))
            .context("malformed request")?;
        let wal = names::parse(name).with_context(|| format!("{name:?} is not the name of a write-ahead log file"))?;
        fetch(state, instance, ahead, &wal.name).await
    }
    .await;
    let result = match answer {
        Ok(Some(bytes)) => {
            let header = format!("OK {}\n", bytes.len());
            match write.write_all(header.as_bytes()).await {
                Ok(()) => write.write_all(&bytes).await,
                Err(e) => Err(e),
            }
        }
        Ok(None) => write.write_all(b"NONE\n").await,
        Err(e) => {
            let why = format!("{e:#}").replace('\n', " ");
            tracing::warn!(instance = %instance.guid, error = %why, "a write-ahead log fetch failed");
            write.write_all(format!("ERR {why}\n").as_bytes()).await
        }
    };
    if let Err(e) = result {
        tracing::warn!(instance = %instance.guid, error = %e, "could not answer a write-ahead log fetch");
    }
    tracing::debug!(instance = %instance.guid, ms = started.elapsed().as_millis(), "write-ahead log fetch answered");
    let _ = write.shutdown().await;
}

/// The file's plain bytes, from those fetched ahead or read now; starts reading the
/// segments after it.
async fn fetch(
    state: &AppState,
    instance: &Instance,
    ahead: &Mutex<Ahead>,
    name: &str,
) -> anyhow::Result<Option<Vec<u8>>> {
    let pending = {
        let mut ahead = ahead.lock().await;
        let pending = ahead.files.remove(name);
        read_ahead(state, instance, &mut ahead, name, 1).await?;
        pending
    };
    match pending {
        Some(task) => task.await.context("a fetch ahead stopped")?,
        None => read(state, instance, name).await,
    }
}

/// Starts reading the segments `from` + `skip` ..= `from` + `AHEAD` of `from`'s
/// timeline (what replay asks for next), and stops reading any other.
async fn read_ahead(
    state: &AppState,
    instance: &Instance,
    ahead: &mut Ahead,
    from: &str,
    skip: u64,
) -> anyhow::Result<()> {
    let Some(segment) = state.store.wal_segment(instance.id, from).await? else { return Ok(()) };
    let size = segment.plain_size as u64;
    let Some((timeline, number)) = names::segment_number(from, size) else { return Ok(()) };
    let next: Vec<String> = (skip..=AHEAD).map(|i| names::segment_name(timeline, number + i, size)).collect();
    ahead.files.retain(|file, task| {
        let keep = next.contains(file);
        if !keep {
            task.abort();
        }
        keep
    });
    for file in next {
        if let std::collections::hash_map::Entry::Vacant(slot) = ahead.files.entry(file) {
            let (state, instance, wanted) = (state.clone(), instance.clone(), slot.key().clone());
            slot.insert(tokio::spawn(async move { read(&state, &instance, &wanted).await }));
        }
    }
    Ok(())
}

/// Reads one archived file back: authenticated, decrypted and checked against the
/// sha256 recorded when it was archived.
async fn read(state: &AppState, instance: &Instance, name: &str) -> anyhow::Result<Option<Vec<u8>>> {
    let started = std::time::Instant::now();
    let Some(segment) = state.store.wal_segment(instance.id, name).await? else {
        return Ok(None);
    };
    let key = state.key_by_id(segment.key_id).await?;
    let (writer, mut reader) = tokio::io::duplex(1 << 20);
    let capacity = usize::try_from(segment.plain_size).unwrap_or_default();
    let collect = tokio::spawn(async move {
        let mut plain = Vec::with_capacity(capacity);
        reader.read_to_end(&mut plain).await.map(|_| plain)
    });
    backup::download(&state.storage, &segment.object_key, &segment.sha256, key.identity(), writer)
        .await
        .with_context(|| format!("reading archived {name}"))?;
    let plain = collect.await.context("collecting a fetched file")??;
    // The object's hash was checked; the plain bytes are checked against the hand-over.
    let sha = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&plain));
    anyhow::ensure!(sha == segment.plain_sha256, "archived {name} does not match what PostgreSQL handed over");
    tracing::debug!(file = name, ms = started.elapsed().as_millis(), "archived write-ahead log file read");
    Ok(Some(plain))
}
