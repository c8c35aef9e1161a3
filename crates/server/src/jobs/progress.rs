//! The watch over a running backup or restore: every second it records how far
//! the job's stream is (so any svcdash serving the API can show it) and picks up
//! a cancel asked for through any of them.

use std::sync::Arc;
use std::time::Duration;

use backup::Tracker;
use store::JobProgress;

use crate::state::AppState;

const EVERY: Duration = Duration::from_secs(1);

/// Runs until the job ends (the caller aborts it).
pub async fn watch(state: AppState, job_id: i64, tracker: Arc<Tracker>) {
    let mut tick = tokio::time::interval(EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let progress = JobProgress { bytes: tracker.bytes(), total: tracker.total() };
        match state.store.record_progress(job_id, progress).await {
            Ok(Some(who)) => tracker.cancel(format!("cancelled by {who}")),
            Ok(None) => {}
            Err(e) => tracing::warn!(job = job_id, error = %e, "could not record the progress of a job"),
        }
    }
}
