//! Triggering backups and restores: the checks, the key, and the queued job.

use backup::keys::BackupKey;
use secrecy::ExposeSecret;
use store::{AuditOutcome, Backup, BackupRequest, Instance, InstanceState, KeyKind, NewBackup, Restore, StoreError};

use crate::auth::Caller;
use crate::domain_error::{DomainError, DomainResult};
use crate::state::AppState;

pub(crate) fn outcome<T>(result: &DomainResult<T>) -> AuditOutcome {
    match result {
        Ok(_) => AuditOutcome::Success,
        Err(DomainError::Denied(_)) => AuditOutcome::Denied,
        Err(_) => AuditOutcome::Failure,
    }
}

impl AppState {
    /// Queues a backup for the caller, and records the attempt in the audit log. With
    /// a backup of the instance queued already, that one is the answer: one queued
    /// backup per instance is enough to take the newest data, and more would only
    /// hold the workers from other instances.
    pub async fn trigger_backup(&self, caller: &Caller, instance: &Instance) -> DomainResult<Backup> {
        let result = self.queue_backup(instance).await;
        let detail = match &result {
            Ok(BackupRequest::Queued(backup)) => format!("backup {} queued", backup.seq),
            Ok(BackupRequest::AlreadyQueued(backup)) => {
                format!("backup {} was already queued; no other backup queued", backup.seq)
            }
            Err(e) => e.description(),
        };
        self.audit(caller, "backup.create", Some(&instance.guid), outcome(&result), Some(&detail)).await;
        result.map(BackupRequest::into_backup)
    }

    /// Queues a restore of a done backup for the caller, and records the attempt.
    pub async fn trigger_restore(
        &self,
        caller: &Caller,
        instance: &Instance,
        backup: &Backup,
    ) -> DomainResult<Restore> {
        let result = self.queue_restore(instance, backup).await;
        let detail = match &result {
            Ok(restore) => format!("restore {} of backup {} queued", restore.seq, backup.seq),
            Err(e) => format!("restore of backup {}: {}", backup.seq, e.description()),
        };
        self.audit(caller, "restore.create", Some(&instance.guid), outcome(&result), Some(&detail)).await;
        result
    }

    /// Queues the scheduled backup of `slot` (the audit log names the schedule as
    /// actor). With a backup of the instance queued already the slot counts as done
    /// and nothing more is queued.
    pub async fn trigger_scheduled_backup(
        &self,
        instance: &Instance,
        slot: chrono::DateTime<chrono::Utc>,
    ) -> DomainResult<BackupRequest> {
        ensure_running(instance)?;
        let new = self.new_backup(instance).await?;
        let result = self.store.enqueue_scheduled_backup(new, slot).await.map_err(DomainError::from);
        if let Ok(request) = &result {
            let slot = api_types::timestamp::format(&slot);
            let detail = match request {
                BackupRequest::Queued(backup) => {
                    self.jobs.notify_one();
                    format!("backup {} queued for the schedule's {slot}", backup.seq)
                }
                BackupRequest::AlreadyQueued(backup) => {
                    format!("backup {} was already queued; the schedule's {slot} queued no other", backup.seq)
                }
            };
            self.audit_as(
                "schedule",
                None,
                "backup.create",
                Some(&instance.guid),
                AuditOutcome::Success,
                Some(&detail),
            )
            .await;
        }
        result
    }

    pub(crate) async fn queue_backup(&self, instance: &Instance) -> DomainResult<BackupRequest> {
        ensure_running(instance)?;
        let new = self.new_backup(instance).await?;
        let request = self.store.enqueue_backup(new).await?;
        if matches!(request, BackupRequest::Queued(_)) {
            self.jobs.notify_one();
        }
        Ok(request)
    }

    /// What a new backup of the instance is made with: its key and object name.
    async fn new_backup(&self, instance: &Instance) -> DomainResult<NewBackup> {
        let engine = self.engine_of(instance)?;
        // The personal key once one is set (downloads need it); else one svcdash generates.
        let key = match self.personal_key(instance).await? {
            Some(key) => key,
            None => self.generated_key(instance).await?,
        };
        Ok(NewBackup {
            instance_id: instance.id,
            key_id: key.id,
            object_key_template: format!(
                "{}/backup-{{seq}}.{}.zst.age",
                instance.backup_guid,
                engine.backup_extension()
            ),
        })
    }

    async fn queue_restore(&self, instance: &Instance, backup: &Backup) -> DomainResult<Restore> {
        ensure_running(instance)?;
        if backup.status() != api_types::TaskStatus::Done || backup.sha256.is_none() {
            return Err(DomainError::conflict(
                "BackupNotRestorable",
                format!("backup {} is {}; only a done backup can be restored", backup.seq, backup.status()),
            ));
        }
        // A restore needs every node; one the parachute holds stopped starts again only
        // with a restart (a cluster serves meanwhile, so it is not `failed`).
        if let Some(why) = crate::metrics::parachute::held(self, instance).await? {
            return Err(DomainError::conflict(
                "ParachuteActive",
                format!("{why} and a restore needs every node; free space and restart the instance first"),
            ));
        }
        // A cluster in the middle of a failover has no primary to restore first.
        let nodes = crate::cluster::restore_nodes(self, instance)
            .await
            .map_err(|e| DomainError::conflict("ClusterFailingOver", format!("{e:#}; try again in a few seconds")))?;
        let restore = match self.store.enqueue_restore(instance.id, backup.id, &nodes).await {
            Ok(restore) => restore,
            // A second queued restore would only overwrite the first once both ran.
            Err(StoreError::Conflict(queued)) => return Err(DomainError::conflict("RestoreInProgress", queued)),
            Err(e) => return Err(e.into()),
        };
        self.jobs.notify_one();
        Ok(restore)
    }

    /// The key svcdash generated for the instance, made first if it has none.
    pub async fn generated_key(&self, instance: &Instance) -> anyhow::Result<store::InstanceKey> {
        match self.store.current_key(instance.id, KeyKind::Generated).await {
            Ok(key) => Ok(key),
            Err(StoreError::NotFound) => {
                let sealed = self.master.seal(BackupKey::generate().to_secret_string().expose_secret())?;
                Ok(self.store.add_key(instance.id, KeyKind::Generated, &sealed).await?)
            }
            Err(e) => Err(e.into()),
        }
    }

    /// The backup key a backup was made with.
    pub async fn backup_key(&self, backup: &Backup) -> anyhow::Result<BackupKey> {
        self.key_by_id(backup.key_id).await
    }

    /// An instance key, unsealed.
    pub async fn key_by_id(&self, id: i64) -> anyhow::Result<BackupKey> {
        let key = self.store.key(id).await?;
        let text = self.master.unseal(&key.sealed_key)?;
        match key.kind {
            KeyKind::Generated => BackupKey::parse(&text),
            KeyKind::Personal => Ok(BackupKey::personal(text)),
        }
    }

    /// The instance's current personal encryption key, if one was set.
    pub async fn personal_key(&self, instance: &Instance) -> DomainResult<Option<store::InstanceKey>> {
        match self.store.current_key(instance.id, KeyKind::Personal).await {
            Ok(key) => Ok(Some(key)),
            Err(StoreError::NotFound) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }
}

/// Why a backup cannot be downloaded (for the 412 of both APIs), or `None` when it
/// can: it is done and encrypted with the instance's current personal key.
pub fn not_downloadable_reason(backup: &Backup, personal_key: Option<&store::InstanceKey>) -> Option<String> {
    let n = backup.seq;
    if backup.status() != api_types::TaskStatus::Done || backup.sha256.is_none() {
        return Some(format!("backup {n} is {}; only a done backup can be downloaded", backup.status()));
    }
    match personal_key {
        None => Some(format!(
            "backup {n} cannot be downloaded: no personal encryption key is set for this instance; set one \
             (backups-config) and trigger a new backup"
        )),
        Some(key) if key.id == backup.key_id => None,
        Some(_) => Some(format!(
            "backup {n} cannot be downloaded: it was not encrypted with the current personal encryption key \
             (the key was set or changed after this backup); it can still be restored"
        )),
    }
}

pub(crate) fn ensure_running(instance: &Instance) -> DomainResult<()> {
    match instance.state {
        InstanceState::Provisioned | InstanceState::Available => Ok(()),
        state => Err(DomainError::conflict(
            "InstanceNotReady",
            format!("service instance {} is {state}; backups and restores need a running instance", instance.guid),
        )),
    }
}
