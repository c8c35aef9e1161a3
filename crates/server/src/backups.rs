//! Triggering backups and restores: the checks, the key, and the queued job.

use backup::keys::BackupKey;
use secrecy::ExposeSecret;
use store::{AuditOutcome, Backup, Instance, InstanceState, KeyKind, NewBackup, Restore, StoreError};

use crate::auth::Caller;
use crate::error::ApiError;
use crate::state::AppState;

fn outcome<T>(result: &Result<T, ApiError>) -> AuditOutcome {
    match result {
        Ok(_) => AuditOutcome::Success,
        Err(e) if e.status == axum::http::StatusCode::FORBIDDEN => AuditOutcome::Denied,
        Err(_) => AuditOutcome::Failure,
    }
}

impl AppState {
    /// Queues a backup for the caller, and records the attempt in the audit log.
    pub async fn trigger_backup(&self, caller: &Caller, instance: &Instance) -> Result<Backup, ApiError> {
        let result = self.queue_backup(instance).await;
        let detail = match &result {
            Ok(backup) => format!("backup {} queued", backup.seq),
            Err(e) => e.description.clone(),
        };
        self.audit(caller, "backup.create", Some(&instance.guid), outcome(&result), Some(&detail)).await;
        result
    }

    /// Queues a restore of a done backup for the caller, and records the attempt.
    pub async fn trigger_restore(
        &self,
        caller: &Caller,
        instance: &Instance,
        backup: &Backup,
    ) -> Result<Restore, ApiError> {
        let result = self.queue_restore(instance, backup).await;
        let detail = match &result {
            Ok(restore) => format!("restore {} of backup {} queued", restore.seq, backup.seq),
            Err(e) => format!("restore of backup {}: {}", backup.seq, e.description),
        };
        self.audit(caller, "restore.create", Some(&instance.guid), outcome(&result), Some(&detail)).await;
        result
    }

    async fn queue_backup(&self, instance: &Instance) -> Result<Backup, ApiError> {
        ensure_running(instance)?;
        let engine = self.engine_of(instance)?;
        let key = match self.store.current_key(instance.id, KeyKind::Generated).await {
            Ok(key) => key,
            Err(StoreError::NotFound) => {
                let sealed = self.master.seal(BackupKey::generate().to_secret_string().expose_secret())?;
                self.store.add_key(instance.id, KeyKind::Generated, &sealed).await?
            }
            Err(e) => return Err(e.into()),
        };
        let backup = self
            .store
            .enqueue_backup(NewBackup {
                instance_id: instance.id,
                key_id: key.id,
                object_key_template: format!(
                    "{}/backup-{{seq}}.{}.zst.age",
                    instance.backup_guid,
                    engine.dump_extension()
                ),
            })
            .await?;
        self.jobs.notify_one();
        Ok(backup)
    }

    async fn queue_restore(&self, instance: &Instance, backup: &Backup) -> Result<Restore, ApiError> {
        ensure_running(instance)?;
        if backup.status() != api_types::TaskStatus::Done || backup.sha256.is_none() {
            return Err(ApiError::conflict(
                "BackupNotRestorable",
                format!("backup {} is {}; only a done backup can be restored", backup.seq, backup.status()),
            ));
        }
        let nodes: Vec<i64> = self.store.nodes(instance.id).await?.iter().map(|n| n.index).collect();
        let restore = self.store.enqueue_restore(instance.id, backup.id, &nodes).await?;
        self.jobs.notify_one();
        Ok(restore)
    }

    /// The backup key a backup was made with.
    pub async fn backup_key(&self, backup: &Backup) -> anyhow::Result<BackupKey> {
        let key = self.store.key(backup.key_id).await?;
        BackupKey::parse(&self.master.unseal(&key.sealed_key)?)
    }
}

/// Why a backup cannot be downloaded, for the 412 of both APIs. Backups are
/// downloadable only when made with a personal encryption key.
pub fn not_downloadable_reason(backup_number: i64) -> String {
    format!(
        "backup {backup_number} cannot be downloaded: it was encrypted with a key svcdash generated, not with a \
         personal encryption key; set a personal key and trigger a new backup"
    )
}

fn ensure_running(instance: &Instance) -> Result<(), ApiError> {
    match instance.state {
        InstanceState::Provisioned | InstanceState::Available => Ok(()),
        state => Err(ApiError::conflict(
            "InstanceNotReady",
            format!("service instance {} is {state}; backups and restores need a running instance", instance.guid),
        )),
    }
}
