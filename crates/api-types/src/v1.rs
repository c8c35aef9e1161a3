//! API V1 bodies (`/v1/instances/:instance_id/...`).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::TaskStatus;

/// One backup of an instance; `id` is its sequence number within the instance.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Backup {
    pub id: i64,
    /// Bytes stored (compressed and encrypted); 0 until the backup is done.
    pub size: i64,
    pub status: TaskStatus,
    #[serde(with = "crate::timestamp")]
    pub triggered_at: DateTime<Utc>,
    /// When the status last changed, as the reference defines it.
    #[serde(with = "crate::timestamp")]
    pub finished_at: DateTime<Utc>,
    pub downloadable: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BackupCreated {
    pub id: i64,
    pub message: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Restore {
    pub id: i64,
    pub backup_id: i64,
    pub status: TaskStatus,
    #[serde(with = "crate::timestamp")]
    pub triggered_at: DateTime<Utc>,
    #[serde(with = "crate::timestamp")]
    pub finished_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RestoreCreated {
    pub id: i64,
}

/// A service instance as its dashboard shows it (`GET /v1/instances/:instance_id`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Instance {
    /// The instance id the platform gave (a GUID in Cloud Foundry).
    pub id: String,
    pub name: String,
    pub service_id: String,
    pub service_name: String,
    pub plan_id: String,
    pub plan_name: String,
    /// `deploying`, `provisioned`, `failed` or `deleted`.
    pub state: String,
    /// Why the instance failed, when it did.
    pub state_description: Option<String>,
    pub tenant_id: String,
    pub tenant_name: Option<String>,
    pub subtenant_id: String,
    pub subtenant_name: Option<String>,
    pub dashboard_url: String,
    /// What the caller may do: `read` or `manage`.
    pub access: String,
    #[serde(with = "crate::timestamp")]
    pub created_at: DateTime<Utc>,
    #[serde(with = "crate::timestamp")]
    pub updated_at: DateTime<Utc>,
}

/// One entry of an instance's audit log, newest first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditEntry {
    pub id: i64,
    #[serde(with = "crate::timestamp")]
    pub at: DateTime<Utc>,
    /// Who acted: a user name, or `broker:<name>` for the platform.
    pub actor: String,
    /// What they did, such as `backup.create` or `restore.create`.
    pub action: String,
    /// `success`, `failure` or `denied`.
    pub outcome: String,
    pub detail: Option<String>,
    pub remote_addr: Option<String>,
}

/// An instance's backup settings (`GET /v1/instances/:instance_id/backups-config`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BackupsConfig {
    pub min_backup_count: i64,
    /// Days.
    pub retention_time: i64,
    pub min_encryption_key_length: i64,
    pub exclude_from_auto_backup: bool,
}

/// `PATCH /v1/instances/:instance_id/backups-config`: every field optional; the
/// encryption key is write-only.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BackupsConfigUpdate {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encryption_key: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_backup_count: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retention_time: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exclude_from_auto_backup: Option<bool>,
}
