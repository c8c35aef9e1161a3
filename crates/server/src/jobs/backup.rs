//! The backup job: the engine's dump, streamed through the pipeline into the store.

use anyhow::Context;
use store::Job;

use crate::state::AppState;

pub async fn run(state: &AppState, job: &Job) -> anyhow::Result<()> {
    let backup_id = job.backup_id.context("a backup job without a backup")?;
    let backup = state.store.backup(backup_id).await?;
    let instance = state.store.instance(job.instance_id).await?;
    crate::metrics::parachute::ensure_released(state, &instance).await?;
    let node = job.node_index.unwrap_or(0);
    let spec = state
        .node_specs(&instance)
        .await?
        .into_iter()
        .find(|s| s.index == node)
        .with_context(|| format!("instance {} has no node {node}", instance.guid))?;
    let key = state.backup_key(&backup).await?;
    let stream = state.deployer.backup(&spec).await?;
    let stored = backup::upload(
        &state.storage,
        &backup.object_key,
        stream.reader,
        stream.done,
        key.recipient(),
        &state.config.backups.pipeline(),
    )
    .await?;
    let size = i64::try_from(stored.size).context("backup size")?;
    state.store.record_backup_object(backup.id, size, &stored.sha256).await?;
    tracing::info!(backup = backup.seq, bytes = stored.size, plain_bytes = stored.plain_size, "backup stored");
    Ok(())
}
