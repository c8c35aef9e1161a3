//! The backup job: the engine's dump, streamed through the pipeline into the store;
//! for an instance archiving its write-ahead log, a base backup before it.

use std::io::ErrorKind;
use std::sync::Arc;

use anyhow::Context;
use api_types::TaskStatus;
use backup::Tracker;
use chrono::Utc;
use engines::NodeSpec;
use store::{Backup, BaseBackup, Instance, Job};

use crate::state::AppState;

pub async fn run(state: &AppState, job: &Job, tracker: &Arc<Tracker>) -> anyhow::Result<()> {
    let backup_id = job.backup_id.context("a backup job without a backup")?;
    let backup = state.store.backup(backup_id).await?;
    let instance = state.store.instance(job.instance_id).await?;
    crate::metrics::parachute::ensure_one_released(state, &instance).await?;
    let spec = match job.node_index {
        Some(node) => state
            .node_specs(&instance)
            .await?
            .into_iter()
            .find(|s| s.index == node)
            .with_context(|| format!("instance {} has no node {node}", instance.guid))?,
        None => {
            let spec = crate::cluster::backup_source(state, &instance).await?;
            state.store.set_job_node(job.id, spec.index).await?;
            spec
        }
    };
    let base = match spec.archive.is_some() && spec.engine.archives_wal() {
        // From the primary, whatever node dumps: the job role's password is set on
        // it, and only the primary archives the files the base backup needs.
        true => {
            let primary = match spec.is_clustered() {
                true => crate::cluster::primary(state, &instance).await?,
                false => spec.clone(),
            };
            Some(base_backup(state, &instance, &backup, &primary, tracker).await?)
        }
        false => None,
    };
    let dumped = dump(state, &backup, &spec, tracker).await;
    match (dumped, base) {
        (Ok(()), Some(base)) => {
            state.store.record_base_backup(&base).await?;
            tracing::info!(backup = backup.seq, bytes = base.size, "base backup recorded");
            Ok(())
        }
        (Ok(()), None) => Ok(()),
        (Err(e), base) => {
            if let Some(base) = base
                && let Err(gone) = state.storage.delete_with_leftovers(&base.object_key).await
            {
                tracing::warn!(backup = backup.seq, error = format!("{gone:#}"), "could not remove a base backup");
            }
            Err(e)
        }
    }
}

async fn dump(state: &AppState, backup: &Backup, spec: &NodeSpec, tracker: &Arc<Tracker>) -> anyhow::Result<()> {
    let key = state.backup_key(backup).await?;
    let stream = state.deployer.backup(spec).await?;
    // The backup before is the best guess of this one's size; the engine's, else.
    let before = state
        .store
        .backups(backup.instance_id)
        .await?
        .into_iter()
        .find_map(|b| (b.id != backup.id && b.job.status == TaskStatus::Done).then_some(b.plain_size).flatten());
    let estimate = before.and_then(|b| u64::try_from(b).ok()).or(stream.estimated_size);
    // A base backup streamed through the tracker before.
    tracker.set_total(estimate.map(|e| tracker.bytes() + e));
    let (tap, layout) = stream.layout.map(|l| (l.tap, l.finish)).unzip();
    let frame_size = layout.is_some().then_some(super::pieces::FRAME_SIZE);
    let stored = backup::upload_tapped(
        &state.storage,
        &backup.object_key,
        Box::new(tracker.track(stream.reader)),
        stream.done,
        key.recipient(),
        &backup::PipelineOptions { estimated_size: estimate, frame_size, ..state.config.backups.pipeline() },
        tap,
    )
    .await?;
    let size = i64::try_from(stored.size).context("backup size")?;
    let plain_size = i64::try_from(stored.plain_size).context("backup size")?;
    if let Some(engine) = layout.and_then(|finish| finish()) {
        let layout = super::pieces::Layout { frames: stored.frames, engine };
        state.store.record_backup_layout(backup.id, &serde_json::to_string(&layout)?).await?;
    }
    state.store.record_backup_object(backup.id, size, &stored.sha256, plain_size).await?;
    tracing::info!(backup = backup.seq, bytes = stored.size, plain_bytes = stored.plain_size, "backup stored");
    Ok(())
}

/// A physical base backup, encrypted like the write-ahead log with the instance's
/// generated key (only svcdash reads it back). The server waits until the log it
/// needs is archived before the stream ends; it is recorded with its backup.
async fn base_backup(
    state: &AppState,
    instance: &Instance,
    backup: &Backup,
    spec: &NodeSpec,
    tracker: &Arc<Tracker>,
) -> anyhow::Result<BaseBackup> {
    let started_at = Utc::now();
    let key = state.generated_key(instance).await?;
    let recipient = state.key_by_id(key.id).await?.recipient();
    let base = state.deployer.base_backup(spec).await?;
    let object_key = crate::pitr::base_backup_key(instance, backup);
    let idle = std::time::Duration::from_secs(state.config.backups.base_backup_idle_timeout_secs.max(1));
    let reader = super::idle_timeout::IdleTimeout::new(base.stream.reader, idle, "pg_basebackup");
    let stored = backup::upload(
        &state.storage,
        &object_key,
        Box::new(tracker.track(reader)),
        base.stream.done,
        recipient,
        &state.config.backups.pipeline(),
    )
    .await
    .map_err(|e| {
        let silent =
            e.chain().any(|c| c.downcast_ref::<std::io::Error>().is_some_and(|e| e.kind() == ErrorKind::TimedOut));
        match silent {
            true => e.context(
                "taking the base backup: it waits until the write-ahead log it needs is archived, and archiving is \
                 behind (the instance's continuous_archiving says why)",
            ),
            false => e.context("taking the base backup"),
        }
    })?;
    // Moments from here on are reachable from it (rounded up to the API's precision).
    let finished_at = crate::pitr::ceil_millis(Utc::now());
    let end = state.deployer.wal_position(spec).await?;
    tracing::info!(backup = backup.seq, bytes = stored.size, plain_bytes = stored.plain_size, "base backup stored");
    Ok(BaseBackup {
        backup_id: backup.id,
        instance_id: instance.id,
        object_key,
        key_id: key.id,
        size: i64::try_from(stored.size).context("base backup size")?,
        sha256: stored.sha256,
        plain_size: i64::try_from(stored.plain_size).context("base backup size")?,
        timeline: i64::from(base.start.timeline),
        start_wal: base.start.file,
        end_wal: end.file,
        started_at,
        finished_at,
    })
}
