//! The restore job (one per node): the object is read back, authenticated, hashed
//! and loaded beside the node's data; only when all of that succeeded does the node
//! switch over to it. A failure leaves the instance's data as it was.

use anyhow::Context;
use store::Job;

use crate::state::AppState;

pub async fn run(state: &AppState, job: &Job) -> anyhow::Result<()> {
    let backup_id = job.backup_id.context("a restore job without a backup")?;
    let backup = state.store.backup(backup_id).await?;
    let expected = backup.sha256.clone().context("the backup has no recorded checksum; it never completed")?;
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
    let sink = state.deployer.begin_restore(&spec).await?;
    match backup::download(&state.storage, &backup.object_key, &expected, key.identity(), sink.writer).await {
        Ok(bytes) => {
            tracing::info!(backup = backup.seq, plain_bytes = bytes, "backup verified and loaded; switching over");
            state.deployer.commit_restore(&spec, sink.staged).await
        }
        Err(e) => {
            state.deployer.abort_restore(&spec, sink.staged).await;
            Err(e)
        }
    }
}
