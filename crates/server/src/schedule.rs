//! Scheduled backups. The operator's cron schedule (`[backups] schedule`, UTC)
//! gives slots; each instance starts at its slot plus an offset within
//! `schedule_spread_secs`, derived from its id, so thousands of instances do not
//! start at once (the job workers bound how many run together). An instance is
//! backed up once for the newest slot it has not been backed up for: after
//! downtime the missed run happens once, not once per missed slot. An instance
//! with a backup still queued gets no other for the slot: the queued one takes
//! the newest data when it runs.

use std::str::FromStr;

use chrono::{DateTime, Duration, Utc};
use croner::Cron;
use sha2::{Digest, Sha256};
use store::InstanceState;
use tokio_util::sync::CancellationToken;

use crate::state::AppState;

/// The operator's schedule, checked when the configuration is loaded.
pub fn parse(expression: &str) -> anyhow::Result<Cron> {
    Cron::from_str(expression)
        .map_err(|e| anyhow::anyhow!("[backups] schedule {expression:?} is not a cron schedule: {e}"))
}

/// Checks now and then whether an instance is due, until shutdown.
pub async fn run(state: AppState, cron: Cron, every: std::time::Duration, shutdown: CancellationToken) {
    loop {
        if let Err(e) = tick(&state, &cron, Utc::now()).await {
            tracing::error!(error = format!("{e:#}"), "scheduling backups failed");
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(every) => {}
        }
    }
}

/// Queues the backups due at `now`; returns the instances queued (tests pass the
/// time they want).
pub async fn tick(state: &AppState, cron: &Cron, now: DateTime<Utc>) -> anyhow::Result<Vec<String>> {
    let spread = state.config.backups.schedule_spread_secs;
    let mut queued = Vec::new();
    for instance in state.store.list_instances().await? {
        if !matches!(instance.state, InstanceState::Provisioned | InstanceState::Available) {
            continue;
        }
        let settings = state.store.backup_settings(instance.id, state.config.backups.default_settings()).await?;
        if settings.exclude_from_auto_backup {
            continue;
        }
        let offset = Duration::seconds(offset_secs(&instance.guid, spread));
        // The newest slot whose start for this instance has come.
        let Ok(slot) = cron.find_previous_occurrence(&(now - offset), true) else { continue };
        let start = slot + offset;
        // Slots before the instance existed are not owed to it.
        if instance.created_at > start {
            continue;
        }
        if state.store.last_scheduled_slot(instance.id).await?.is_some_and(|last| last >= slot) {
            continue;
        }
        match state.trigger_scheduled_backup(&instance, slot).await {
            Ok(store::BackupRequest::Queued(_)) => queued.push(instance.guid.clone()),
            Ok(store::BackupRequest::AlreadyQueued(backup)) => {
                tracing::info!(instance = %instance.guid, backup = backup.seq, "a backup is queued already: slot skipped")
            }
            Err(e) => {
                tracing::warn!(instance = %instance.guid, error = %e.description(), "could not queue a scheduled backup")
            }
        }
    }
    Ok(queued)
}

/// The instance's start offset within the spread: the same on every run and host.
pub fn offset_secs(guid: &str, spread_secs: u64) -> i64 {
    if spread_secs == 0 {
        return 0;
    }
    let digest = Sha256::digest(guid.as_bytes());
    let n = u64::from_be_bytes(digest[..8].try_into().expect("8 bytes"));
    (n % spread_secs) as i64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_are_stable_and_within_the_spread() {
        let a = offset_secs("0d6c3f5e-1111-4000-8000-000000000001", 3600);
        assert_eq!(a, offset_secs("0d6c3f5e-1111-4000-8000-000000000001", 3600));
        assert!((0..3600).contains(&a));
        let spread: std::collections::HashSet<i64> =
            (0..200).map(|n| offset_secs(&format!("instance-{n}"), 3600) / 60).collect();
        assert!(spread.len() > 40, "200 instances land in {} distinct minutes", spread.len());
        assert_eq!(offset_secs("x", 0), 0);
    }

    #[test]
    fn schedules_parse_or_say_why_not() {
        assert!(parse("30 1 * * *").is_ok());
        assert!(parse("every night").unwrap_err().to_string().contains("not a cron schedule"));
    }
}
