//! Restores to a point in time of archiving PostgreSQL instances (docs/pitr.md):
//! the window they can reach, the checks before one is queued, and pruning the
//! archive along with retention.

pub mod window;

use anyhow::Context;
use chrono::{DateTime, SubsecRound, Utc};
use store::{Instance, Restore, StoreError};

use crate::archive::names;
use crate::auth::Caller;
use crate::domain_error::{DomainError, DomainResult};
use crate::state::AppState;
use window::{Fork, Window};

/// A moment rounded up to whole milliseconds, the precision the API shows: a
/// window's start read back from the API is then inside the window.
pub fn ceil_millis(t: DateTime<Utc>) -> DateTime<Utc> {
    let down = t.trunc_subsecs(3);
    if down == t { t } else { down + chrono::Duration::milliseconds(1) }
}

/// Where the base backup taken with `backup` goes: beside the instance's other
/// objects, named by the backup's number (so an interrupted job's leftover can be
/// found and removed).
pub fn base_backup_key(instance: &Instance, backup: &store::Backup) -> String {
    format!("{}/base/{}.tar.zst.age", instance.backup_guid, backup.seq)
}

/// Where the history forked: the restores to a point in time whose node ran on the
/// restored data, in order. That includes a cluster restore that failed afterwards
/// (a node did not copy the restored one): the instance went on from its target
/// all the same. A row from before `forked_at` was recorded only has a timeline once
/// done, and then its end is when it forked.
fn forks(restores: &[Restore]) -> Vec<Fork> {
    let mut forks: Vec<Fork> = restores
        .iter()
        .filter_map(|r| {
            Some(Fork {
                seq: r.seq,
                target_time: r.target_time?,
                forked_at: r.forked_at.unwrap_or_else(|| r.updated_at()),
                timeline: u32::try_from(r.timeline?).ok()?,
            })
        })
        .collect();
    forks.sort_by_key(|f| f.seq);
    forks
}

impl AppState {
    /// The window of an instance that archives its write-ahead log; 404 for others.
    pub async fn pitr_window(&self, instance: &Instance) -> DomainResult<Window> {
        if !instance.continuous_archiving {
            return Err(DomainError::NotFound(format!(
                "service instance {} does not archive its write-ahead log: point-in-time recovery is for PostgreSQL \
                 instances created with continuous archiving",
                instance.guid
            )));
        }
        let bases = self.store.base_backups(instance.id).await?;
        let segments = self.store.wal_segments(instance.id).await?;
        let forks = forks(&self.store.restores(instance.id).await?);
        let first = u32::try_from(instance.start_timeline).unwrap_or(1);
        // A cluster's new timelines are its failovers and switchovers.
        let promotions = match self.store.nodes(instance.id).await?.len() > 1 {
            true => window::promotions(first, &segments, &forks),
            false => Vec::new(),
        };
        Ok(Window::compute(first, &bases, &segments, &forks, &promotions))
    }

    /// How the instance's archiving is going: its newest archived file, and whether
    /// the newest hand-over failed.
    pub async fn archiving_status(&self, instance: &Instance) -> anyhow::Result<api_types::v1::ArchivingStatus> {
        let last = self.store.last_wal_segment(instance.id).await?;
        let health = self.metrics.archive.get(&instance.guid);
        let behind = health.behind();
        Ok(api_types::v1::ArchivingStatus {
            last_archived_at: last.map(|s| s.archived_at),
            behind,
            error: health.last_error.filter(|_| behind).map(|(_, why)| why),
        })
    }

    /// Checks `target` (ISO 8601) against the window and queues the restore.
    pub async fn trigger_point_in_time_restore(
        &self,
        caller: &Caller,
        instance: &Instance,
        target: &str,
    ) -> DomainResult<Restore> {
        let result = self.queue_point_in_time_restore(instance, target).await;
        let detail = match &result {
            Ok(restore) => format!("restore {} to {target} queued", restore.seq),
            Err(e) => format!("restore to {target:?}: {}", e.description()),
        };
        self.audit(caller, "restore.create", Some(&instance.guid), crate::backups::outcome(&result), Some(&detail))
            .await;
        result
    }

    async fn queue_point_in_time_restore(&self, instance: &Instance, target: &str) -> DomainResult<Restore> {
        let window = self.pitr_window(instance).await?;
        let shown = match (window.start(), window.end()) {
            (Some(start), Some(end)) => {
                format!(
                    "the window is {} to {}",
                    api_types::timestamp::format(&start),
                    api_types::timestamp::format(&end)
                )
            }
            _ => "no point in time can be restored yet".to_owned(),
        };
        let target = DateTime::parse_from_rfc3339(target).map(|t| t.with_timezone(&Utc)).map_err(|_| {
            DomainError::invalid(
                "InvalidTargetTime",
                format!("target_time {target:?} is not an ISO 8601 time such as 2026-11-30T10:15:00.000Z; {shown}"),
            )
        })?;
        crate::backups::ensure_running(instance)?;
        let plan = window.plan(target).map_err(|why| DomainError::invalid("TargetTimeOutOfRange", why))?;
        let restore = match self.store.enqueue_point_in_time_restore(instance.id, plan.backup_id, target).await {
            Ok(restore) => restore,
            Err(StoreError::Conflict(queued)) => return Err(DomainError::conflict("RestoreInProgress", queued)),
            Err(e) => return Err(e.into()),
        };
        self.jobs.notify_one();
        Ok(restore)
    }

    /// Forgets the archived files whose objects are gone from the store (lost, or
    /// removed by hand), so the window shows the hole instead of promising what a
    /// restore could not fetch. Returns their names.
    pub async fn check_archive(&self, instance: &Instance) -> anyhow::Result<Vec<String>> {
        use futures::TryStreamExt;
        // Read before listing: a file recorded by then has its object already.
        let segments = self.store.wal_segments(instance.id).await?;
        let prefix = self.storage.path(&format!("{}/wal", instance.backup_guid));
        let present: std::collections::HashSet<String> = self
            .storage
            .store()
            .list(Some(&prefix))
            .map_ok(|meta| meta.location.to_string())
            .try_collect()
            .await
            .context("listing the archive")?;
        let missing: Vec<String> = segments
            .into_iter()
            .filter(|s| !present.contains(&self.storage.path(&s.object_key).to_string()))
            .map(|s| s.name)
            .collect();
        if !missing.is_empty() {
            tracing::warn!(
                instance = %instance.guid,
                files = ?missing,
                "archived write-ahead log files are missing from the backup store; the recovery window has a gap"
            );
            self.store.forget_wal_segments(instance.id, &missing).await?;
        }
        Ok(missing)
    }

    /// Checks the provision parameter `restore_from`, `{"instance_id": ..,
    /// "target_time": ..}`: an instance of the same service and tenant (so of the
    /// same people) that archives, and a moment inside its window.
    pub async fn check_restore_from(
        &self,
        asked: &serde_json::Value,
        service: &crate::catalog::Service,
        plan: &crate::catalog::Plan,
        tenant_id: &str,
    ) -> Result<store::RestoreFrom, String> {
        let field = |name: &str| asked.get(name).and_then(|v| v.as_str()).filter(|v| !v.trim().is_empty());
        let (Some(origin), Some(target)) = (field("instance_id"), field("target_time")) else {
            return Err(
                "parameter restore_from must be {\"instance_id\": \"...\", \"target_time\": \"<ISO 8601>\"}".into()
            );
        };
        if plan.nodes > 1 {
            return Err(format!(
                "restore_from makes a single-node instance; plan {} has {} nodes. Make it on a single-node plan \
                 (a cluster's moment restores there too), then change its plan to {}",
                plan.name, plan.nodes, plan.name
            ));
        }
        let unknown = || format!("restore_from: there is no instance {origin:?} of this service in this organization");
        let origin = match self.store.instance_by_guid(origin).await {
            Ok(found) => found,
            Err(StoreError::NotFound) => return Err(unknown()),
            Err(e) => return Err(format!("restore_from: {e}")),
        };
        if origin.tenant_id != tenant_id
            || origin.service_id != service.id
            || origin.state == store::InstanceState::Deleted
        {
            return Err(unknown());
        }
        let window = self.pitr_window(&origin).await.map_err(|e| format!("restore_from: {}", e.description()))?;
        let target_time = DateTime::parse_from_rfc3339(target).map(|t| t.with_timezone(&Utc)).map_err(|_| {
            format!("restore_from: target_time {target:?} is not an ISO 8601 time such as 2026-11-30T10:15:00.000Z")
        })?;
        window.plan(target_time).map_err(|why| format!("restore_from: {why}"))?;
        Ok(store::RestoreFrom { instance_id: origin.id, target_time })
    }

    /// Removes the archived segments no retained base backup needs: those before
    /// the first segment of the oldest one. With no base backup left, a deleted
    /// instance's archive goes entirely; a live one's stays for its next base backup.
    pub async fn prune_wal(&self, instance: &Instance) -> anyhow::Result<usize> {
        let bases = self.store.base_backups(instance.id).await?;
        let segments = self.store.wal_segments(instance.id).await?;
        let size = segments.iter().find(|s| s.name.len() == 24).map_or(16 << 20, |s| s.plain_size as u64);
        let oldest = bases.iter().filter_map(|b| names::segment_number(&b.start_wal, size)).map(|(_, n)| n).min();
        let doomed: Vec<_> = match oldest {
            Some(first) => segments
                .iter()
                .filter(|s| names::segment_number(s.name.get(..24).unwrap_or(""), size).is_some_and(|(_, n)| n < first))
                .collect(),
            None if instance.state == store::InstanceState::Deleted => segments.iter().collect(),
            None => Vec::new(),
        };
        let mut gone = Vec::new();
        for segment in doomed {
            self.storage
                .delete(&segment.object_key)
                .await
                .with_context(|| format!("removing archived segment {}", segment.name))?;
            gone.push(segment.name.clone());
        }
        self.store.forget_wal_segments(instance.id, &gone).await?;
        Ok(gone.len())
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    fn restore(seq: i64, timeline: Option<i64>, forked_at: Option<DateTime<Utc>>) -> Restore {
        let at = |minute| Utc.with_ymd_and_hms(2026, 11, 30, 10, minute, 0).unwrap();
        Restore {
            id: seq,
            instance_id: 1,
            seq,
            backup_id: 1,
            backup_seq: 1,
            created_at: at(seq as u32),
            target_time: Some(at(0)),
            timeline,
            forked_at,
            jobs: Vec::new(),
        }
    }

    #[test]
    fn a_restore_is_a_fork_once_its_timeline_is_recorded_from_when_it_forked() {
        let forked = Utc.with_ymd_and_hms(2026, 11, 30, 11, 0, 0).unwrap();
        let found = forks(&[restore(3, Some(3), Some(forked)), restore(2, None, None), restore(1, Some(2), None)]);
        assert_eq!(found.iter().map(|f| (f.seq, f.timeline)).collect::<Vec<_>>(), [(1, 2), (3, 3)]);
        assert_eq!(found[1].forked_at, forked);
        // A row from before `forked_at` was recorded: its end.
        assert_eq!(found[0].forked_at, restore(1, Some(2), None).updated_at());
    }
}
