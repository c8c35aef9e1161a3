//! One hand-over of a write-ahead log file. `svcdash wal-push` sends
//! `PUSH <name> <size> [<written>]\n` (`written`: when PostgreSQL last wrote the
//! file, in ms since the epoch) and the file's bytes; svcdash stores them through the
//! backup pipeline and answers `OK\n` once the object is complete and recorded, or
//! `ERR <why>\n`. PostgreSQL removes its file only after an `OK`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use anyhow::{Context, bail, ensure};
use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};
use store::{Instance, WalSegment};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixStream;
use tokio_util::io::InspectReader;

use super::names;
use crate::state::AppState;

/// The largest file taken: PostgreSQL's segments are 16 MiB unless `initdb` chose
/// more, and never over 1 GiB.
const MAX_FILE: u64 = 1 << 30;

pub async fn handle(state: AppState, instance: Instance, peer_uid: Option<u32>, stream: UnixStream) {
    let (result, mut stream) = receive(&state, &instance, peer_uid, stream).await;
    let answer = match result {
        Ok(name) => {
            tracing::debug!(instance = %instance.guid, file = %name, "archived a write-ahead log file");
            state.metrics.archive.archived(&instance.guid);
            state.metrics.prometheus.observe_wal_handover("archived");
            "OK\n".to_owned()
        }
        Err(e) => {
            let why = format!("{e:#}").replace('\n', " ");
            tracing::warn!(instance = %instance.guid, error = %why, "a write-ahead log hand-over failed");
            state.metrics.archive.failed(&instance.guid, &why);
            state.metrics.prometheus.observe_wal_handover("failed");
            format!("ERR {why}\n")
        }
    };
    let _ = stream.write_all(answer.as_bytes()).await;
    let _ = stream.shutdown().await;
}

/// Reads, checks and stores one file; returns the stream for the answer.
async fn receive(
    state: &AppState,
    instance: &Instance,
    peer_uid: Option<u32>,
    stream: UnixStream,
) -> (anyhow::Result<String>, tokio::net::unix::OwnedWriteHalf) {
    let peer = stream.peer_cred().map(|c| c.uid()).ok();
    let (read, write) = stream.into_split();
    let result = async {
        if let Some(uid) = peer_uid {
            ensure!(peer == Some(uid), "only the instance's own account may hand over its write-ahead log");
        }
        store_file(state, instance, read).await
    }
    .await;
    (result, write)
}

async fn store_file(
    state: &AppState,
    instance: &Instance,
    read: tokio::net::unix::OwnedReadHalf,
) -> anyhow::Result<String> {
    let mut reader = BufReader::new(read);
    let mut header = Vec::new();
    (&mut reader).take(256).read_until(b'\n', &mut header).await.context("reading the request")?;
    let header = std::str::from_utf8(&header).ok().and_then(|h| h.strip_suffix('\n')).context("malformed request")?;
    let (name, size, written) = match header.split(' ').collect::<Vec<_>>()[..] {
        ["PUSH", name, size] => (name, size, None),
        ["PUSH", name, size, written] => (name, size, Some(written.parse::<i64>().context("malformed time")?)),
        _ => bail!("malformed request"),
    };
    let size = size.parse::<u64>().context("malformed size")?;
    let wal = names::parse(name).with_context(|| format!("{name:?} is not the name of a write-ahead log file"))?;
    ensure!(size <= MAX_FILE, "{name} has {size} bytes, more than a write-ahead log file can");
    // The window takes a segment to hold everything written before this moment. A
    // segment handed over late (a backlog after svcdash or the store was down) does
    // not: the files after it, not archived yet, hold what was written meanwhile. So
    // it is when PostgreSQL last wrote the file (`wal-push` sends it), never later
    // than now.
    let now = Utc::now();
    let handed_over_at = written.and_then(DateTime::from_timestamp_millis).map_or(now, |written| written.min(now));

    let hasher = Arc::new(Mutex::new(Sha256::new()));
    let count = Arc::new(AtomicU64::new(0));
    let body = {
        let (hasher, count) = (hasher.clone(), count.clone());
        InspectReader::new(reader.take(size), move |bytes: &[u8]| {
            hasher.lock().unwrap_or_else(|e| e.into_inner()).update(bytes);
            count.fetch_add(bytes.len() as u64, Ordering::Relaxed);
        })
    };
    let plain_sha256 = move || hex::encode(hasher.lock().unwrap_or_else(|e| e.into_inner()).clone().finalize());

    // PostgreSQL hands a file over again when it did not see the answer (a crash);
    // the same contents are archived already, other contents are an error, unless
    // the file archived before belongs to nothing the history uses.
    let existing = state.store.wal_segment(instance.id, &wal.name).await?;
    let replaces = match &existing {
        Some(_) => superseded(state, instance, &wal).await?,
        None => false,
    };
    if let Some(existing) = existing.as_ref().filter(|_| !replaces) {
        let mut body = body;
        tokio::io::copy(&mut body, &mut tokio::io::sink()).await.context("reading the file")?;
        let got = count.load(Ordering::Relaxed);
        ensure!(got == size, "the file ended after {got} of {size} bytes");
        ensure!(
            existing.plain_size as u64 == size && existing.plain_sha256 == plain_sha256(),
            "{name} was archived before with other contents"
        );
        return Ok(wal.name);
    }

    let key = state.generated_key(instance).await?;
    let recipient = state.key_by_id(key.id).await?.recipient();
    // A file in place of another goes to an object of its own: the old one stays
    // whole (a replay may be reading it) until the row names the new one.
    let object_key = match replaces {
        false => format!("{}/wal/{:08X}/{}.zst.age", instance.backup_guid, wal.timeline, wal.name),
        true => format!(
            "{}/wal/{:08X}/{}.{}.zst.age",
            instance.backup_guid,
            wal.timeline,
            wal.name,
            Utc::now().timestamp_millis()
        ),
    };
    let counted = count.clone();
    let complete = async move {
        let got = counted.load(Ordering::Relaxed);
        ensure!(got == size, "the file ended after {got} of {size} bytes");
        Ok(())
    };
    let stored =
        backup::upload(&state.storage, &object_key, body, complete, recipient, &state.config.backups.pipeline())
            .await?;
    let segment = WalSegment {
        instance_id: instance.id,
        name: wal.name.clone(),
        timeline: i64::from(wal.timeline),
        object_key,
        key_id: key.id,
        size: stored.size as i64,
        sha256: stored.sha256,
        plain_size: size as i64,
        plain_sha256: plain_sha256(),
        handed_over_at,
        archived_at: Utc::now(),
    };
    match existing.filter(|_| replaces) {
        Some(old) => {
            tracing::info!(instance = %instance.guid, file = %wal.name, "archived in place of a file nothing went on from");
            state.store.replace_wal_segment(&segment).await?;
            if old.object_key != segment.object_key
                && let Err(e) = state.storage.delete(&old.object_key).await
            {
                tracing::warn!(error = format!("{e:#}"), object = %old.object_key, "could not remove the replaced file");
            }
        }
        None => state.store.record_wal_segment(&segment).await?,
    }
    Ok(wal.name)
}

/// Whether an archived file of this name may give way to another: a `.partial`
/// (kept for people, never replayed), or the history file of a timeline nothing
/// went on with. A restore's staging server archives its new timeline's history
/// file when it promotes; if the restore then fails, no segment follows it, and
/// a cluster node promoted later (it does not look in the archive for free
/// timeline numbers) takes the same number. Refusing its history file would stop
/// its archiving for good.
async fn superseded(state: &AppState, instance: &Instance, wal: &names::WalName) -> anyhow::Result<bool> {
    if wal.name.ends_with(".partial") {
        return Ok(true);
    }
    if !wal.name.ends_with(".history") {
        return Ok(false);
    }
    let timeline = i64::from(wal.timeline);
    let written =
        state.store.wal_segments(instance.id).await?.iter().any(|s| s.timeline == timeline && s.name.len() == 24);
    let forked = state.store.restores(instance.id).await?.iter().any(|r| r.timeline == Some(timeline));
    Ok(!written && !forked)
}
