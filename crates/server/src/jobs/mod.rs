//! The job workers: they claim queued jobs from the store (one per instance at a
//! time) and run them. Every job records why it failed.

mod backup;
mod idle_timeout;
mod lifecycle;
mod pieces;
mod progress;
mod provision;
pub(crate) mod restore;

use std::time::Duration;

use api_types::TaskStatus;
use store::{Job, JobKind};
use tokio_util::sync::CancellationToken;

use crate::state::AppState;

/// Cleans up after jobs a previous svcdash left running, before workers start.
pub async fn recover(state: &AppState) -> anyhow::Result<()> {
    let failed = state
        .store
        .recover_interrupted_jobs("svcdash stopped while this job was running; it was not completed")
        .await?;
    for job in failed {
        tracing::warn!(job = job.id, kind = %job.kind, "marked an interrupted job failed");
        if job.kind == JobKind::Backup
            && let Some(backup_id) = job.backup_id
        {
            // An object may exist if the process died between completing the upload and
            // recording it; the backup is failed, so its object must go.
            let backup = state.store.backup(backup_id).await?;
            let instance = state.store.instance(backup.instance_id).await?;
            let base = crate::pitr::base_backup_key(&instance, &backup);
            if let Err(e) = state.storage.delete_with_leftovers(&base).await {
                tracing::warn!(
                    backup = backup.id,
                    error = format!("{e:#}"),
                    "could not remove an interrupted base backup"
                );
            }
            if let Err(e) = state.storage.delete_with_leftovers(&backup.object_key).await {
                tracing::warn!(
                    backup = backup.id,
                    error = format!("{e:#}"),
                    "could not remove the object of an interrupted backup"
                );
            }
        }
    }
    Ok(())
}

/// Runs `workers` job loops until `shutdown` is cancelled; running jobs are let finish.
pub async fn run(state: AppState, workers: usize, shutdown: CancellationToken) {
    if workers == 0 {
        // This svcdash serves the APIs only; another one (or a later start) runs the queue.
        tracing::warn!("[jobs] workers = 0: queued backups, restores and provisioning wait for a svcdash with workers");
        shutdown.cancelled().await;
        return;
    }
    let loops = (0..workers).map(|n| {
        let state = state.clone();
        let shutdown = shutdown.clone();
        tokio::spawn(async move { worker(n, state, shutdown).await })
    });
    for handle in loops.collect::<Vec<_>>() {
        let _ = handle.await;
    }
}

async fn worker(n: usize, state: AppState, shutdown: CancellationToken) {
    loop {
        if shutdown.is_cancelled() {
            return;
        }
        match state.store.claim_next_job().await {
            Ok(Some(job)) => {
                run_one(&state, job).await;
                // Another worker may be waiting for this instance to be free.
                state.jobs.notify_one();
            }
            Ok(None) => {
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = state.jobs.notified() => {}
                    _ = tokio::time::sleep(Duration::from_secs(2)) => {}
                }
            }
            Err(e) => {
                tracing::error!(worker = n, error = %e, "could not claim a job");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
}

#[tracing::instrument(skip_all, fields(job.id = job.id, job.kind = %job.kind, instance.id = job.instance_id))]
async fn run_one(state: &AppState, job: Job) {
    tracing::info!("job started");
    let started = std::time::Instant::now();
    let tracker = state.config.backups.tracker();
    let watch = matches!(job.kind, JobKind::Backup | JobKind::Restore)
        .then(|| tokio::spawn(progress::watch(state.clone(), job.id, tracker.clone())));
    let result = match job.kind {
        JobKind::Provision => provision::provision(state, &job).await,
        JobKind::PlanChange => provision::change_plan(state, &job).await,
        JobKind::Deprovision => provision::deprovision(state, &job).await,
        JobKind::Backup => backup::run(state, &job, &tracker).await,
        JobKind::Restore => restore::run(state, &job, &tracker).await,
        JobKind::Restart => lifecycle::restart(state, &job).await,
        JobKind::Recreate => lifecycle::recreate(state, &job).await,
        JobKind::Update => lifecycle::update(state, &job).await,
    };
    if let Some(watch) = watch {
        watch.abort();
    }
    let (status, error) = match (&result, tracker.cancelled()) {
        (Ok(()), None) => (TaskStatus::Done, None),
        (Ok(()), Some(_)) => {
            tracing::info!("asked to cancel after the point of no return: the job went on and is done");
            (TaskStatus::Done, None)
        }
        // Whatever broke off first, the reason is the cancel.
        (Err(_), Some(reason)) => (TaskStatus::Failed, Some(reason)),
        (Err(e), None) => (TaskStatus::Failed, Some(format!("{e:#}"))),
    };
    match &error {
        None => tracing::info!(seconds = started.elapsed().as_secs_f64(), "job done"),
        Some(e) => tracing::warn!(seconds = started.elapsed().as_secs_f64(), error = %e, "job failed"),
    }
    state.metrics.prometheus.observe_job(job.kind.as_str(), status.as_str(), started.elapsed().as_secs_f64());
    if let Err(e) = state.store.finish_job(job.id, status, error.as_deref()).await {
        tracing::error!(error = %e, "could not record the end of a job");
    }
}
