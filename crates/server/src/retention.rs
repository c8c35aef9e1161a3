//! Removing old backups. A finished backup goes (its object deleted from the
//! store, its metadata kept with status `deleted`) once it is older than the
//! instance's `retention_time` and at least `min_backup_count` newer `done`
//! backups exist. Backups of a deprovisioned instance stay for the operator's
//! `deleted_instance_retention_days`, then all go. A backup a queued or running
//! restore reads is never removed.

use chrono::{DateTime, Duration, Utc};
use store::{AuditOutcome, Backup, Instance, InstanceState};
use tokio_util::sync::CancellationToken;

use crate::error::ApiError;
use crate::state::AppState;

/// What one pass removed, and what it could not.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Pass {
    /// (instance guid, backup number)
    pub removed: Vec<(String, i64)>,
    pub failed: usize,
}

/// Runs a pass now and then until shutdown.
pub async fn run(state: AppState, every: std::time::Duration, shutdown: CancellationToken) {
    loop {
        match apply(&state, Utc::now()).await {
            Ok(pass) if !pass.removed.is_empty() || pass.failed > 0 => {
                tracing::info!(removed = pass.removed.len(), failed = pass.failed, "retention pass")
            }
            Ok(_) => {}
            Err(e) => tracing::error!(error = format!("{e:#}"), "retention pass failed"),
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(every) => {}
        }
    }
}

/// One pass as of `now` (tests pass the time they want).
pub async fn apply(state: &AppState, now: DateTime<Utc>) -> anyhow::Result<Pass> {
    let mut pass = Pass::default();
    for instance in state.store.list_instances().await? {
        let backups = state.store.backups(instance.id).await?;
        for backup in expired(state, &instance, &backups, now).await? {
            if state.store.backup_in_use(backup.id).await? {
                continue;
            }
            match remove(state, backup).await {
                Ok(()) => {
                    let detail = format!("backup {} removed by retention", backup.seq);
                    state
                        .audit_as(
                            "retention",
                            None,
                            "backup.delete",
                            Some(&instance.guid),
                            AuditOutcome::Success,
                            Some(&detail),
                        )
                        .await;
                    pass.removed.push((instance.guid.clone(), backup.seq));
                }
                Err(e) => {
                    tracing::warn!(instance = %instance.guid, backup = backup.seq, error = format!("{e:#}"), "could not remove a backup");
                    pass.failed += 1;
                }
            }
        }
        // The archive goes with the base backups that needed it, never before; files
        // lost from the store show as gaps.
        if instance.continuous_archiving {
            if let Err(e) = state.check_archive(&instance).await {
                tracing::warn!(instance = %instance.guid, error = format!("{e:#}"), "could not check the archive");
                pass.failed += 1;
            }
            match state.prune_wal(&instance).await {
                Ok(0) => {}
                Ok(n) => {
                    tracing::info!(instance = %instance.guid, segments = n, "archived write-ahead log removed by retention")
                }
                Err(e) => {
                    tracing::warn!(instance = %instance.guid, error = format!("{e:#}"), "could not prune the archive");
                    pass.failed += 1;
                }
            }
        }
    }
    Ok(pass)
}

/// The instance's backups (newest first) that retention removes as of `now`.
async fn expired<'a>(
    state: &AppState,
    instance: &Instance,
    backups: &'a [Backup],
    now: DateTime<Utc>,
) -> anyhow::Result<Vec<&'a Backup>> {
    let finished = |b: &&Backup| b.deleted_at.is_none() && b.job.status.is_finished();
    if instance.state == InstanceState::Deleted {
        let gone = instance.deleted_at.unwrap_or(instance.updated_at);
        let keep = Duration::days(state.config.backups.deleted_instance_retention_days);
        return Ok(if now - gone >= keep { backups.iter().filter(finished).collect() } else { Vec::new() });
    }
    let settings = state.store.backup_settings(instance.id, state.config.backups.default_settings()).await?;
    let cutoff = now - Duration::days(settings.retention_time_days);
    let mut newer_done = 0;
    let mut out = Vec::new();
    for backup in backups.iter().filter(finished) {
        if newer_done >= settings.min_backup_count && backup.job.created_at < cutoff {
            out.push(backup);
        }
        if backup.job.status == api_types::TaskStatus::Done {
            newer_done += 1;
        }
    }
    Ok(out)
}

/// Deletes the backup's object (and any upload leftovers) and its base backup's,
/// then marks it deleted.
pub async fn remove(state: &AppState, backup: &Backup) -> anyhow::Result<()> {
    if let Some(base) = state.store.base_backup(backup.id).await? {
        state.storage.delete_with_leftovers(&base.object_key).await?;
    }
    state.storage.delete_with_leftovers(&backup.object_key).await?;
    state.store.mark_backup_deleted(backup.id).await?;
    Ok(())
}

/// `DELETE` of one backup by a person: refused while a restore reads it.
pub async fn delete_one(state: &AppState, backup: &Backup) -> Result<(), ApiError> {
    if backup.deleted_at.is_some() {
        return Ok(());
    }
    if !backup.job.status.is_finished() {
        return Err(ApiError::conflict(
            "BackupNotFinished",
            format!("backup {} is {}; wait until it has finished", backup.seq, backup.status()),
        ));
    }
    if state.store.backup_in_use(backup.id).await? {
        return Err(ApiError::new(
            axum::http::StatusCode::LOCKED,
            "BackupInUse",
            format!("backup {} is being restored; delete it after the restore has finished", backup.seq),
        ));
    }
    remove(state, backup).await.map_err(ApiError::internal)
}
