//! Cancelling a backup or a restore. A queued one never runs; a running one is
//! marked in the store, and its worker (on whichever svcdash runs it) stops at
//! its next read or write: a backup's upload is aborted, so no object is left;
//! a restore's staged data is removed before the node's data is touched. Once a
//! restore switches the node over, it is too late, and it completes.

use api_types::{TaskStatus, v1};
use store::{Backup, CancelOutcome, Instance, Restore};

use crate::auth::Caller;
use crate::backups::outcome;
use crate::domain_error::{DomainError, DomainResult};
use crate::state::AppState;

impl AppState {
    pub async fn cancel_backup(
        &self,
        caller: &Caller,
        instance: &Instance,
        backup: &Backup,
    ) -> DomainResult<v1::Cancelled> {
        let result = self.cancel_jobs(caller, &[backup.job.id], &format!("backup {}", backup.seq), backup.seq).await;
        self.audit_cancel(caller, instance, "backup.cancel", &result).await;
        result
    }

    pub async fn cancel_restore(
        &self,
        caller: &Caller,
        instance: &Instance,
        restore: &Restore,
    ) -> DomainResult<v1::Cancelled> {
        let what = format!("restore {}", restore.seq);
        // Nodes restore one after another: once one has its new data, stopping
        // would leave the others with the old.
        let result = match restore.jobs.iter().any(|j| j.status == TaskStatus::Done) {
            true if restore.status() != TaskStatus::Done => Err(DomainError::conflict(
                "TooLateToCancel",
                format!("{what} has restored some nodes already; it goes on so that every node holds the same data"),
            )),
            _ => {
                let ids: Vec<i64> = restore.jobs.iter().map(|j| j.id).collect();
                self.cancel_jobs(caller, &ids, &what, restore.seq).await
            }
        };
        self.audit_cancel(caller, instance, "restore.cancel", &result).await;
        result
    }

    async fn cancel_jobs(&self, caller: &Caller, ids: &[i64], what: &str, seq: i64) -> DomainResult<v1::Cancelled> {
        let mut outcomes = Vec::new();
        for id in ids {
            outcomes.push(self.store.cancel_job(*id, &caller.principal.name).await?);
        }
        let who = &caller.principal.name;
        if outcomes.contains(&CancelOutcome::Requested) {
            Ok(v1::Cancelled {
                id: seq,
                status: TaskStatus::Running,
                message: format!("{what} is stopping: cancelled by {who}"),
            })
        } else if outcomes.contains(&CancelOutcome::Cancelled) {
            Ok(v1::Cancelled { id: seq, status: TaskStatus::Failed, message: format!("{what} was cancelled by {who}") })
        } else {
            Err(DomainError::conflict(
                "NotRunning",
                format!("{what} has ended; only a queued or running one can be cancelled"),
            ))
        }
    }

    async fn audit_cancel(
        &self,
        caller: &Caller,
        instance: &Instance,
        action: &str,
        result: &DomainResult<v1::Cancelled>,
    ) {
        let detail = match result {
            Ok(c) => c.message.clone(),
            Err(e) => e.description(),
        };
        self.audit(caller, action, Some(&instance.guid), outcome(result), Some(&detail)).await;
    }
}
