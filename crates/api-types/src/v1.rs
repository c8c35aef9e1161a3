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
    /// While the backup runs: how far it is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub progress: Option<Progress>,
}

/// How far a running backup or restore is, as its worker said within the last
/// seconds. Bytes are of the plain data: the engine's dump as it is read, or
/// as it is fed to the engine's loader.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Progress {
    pub bytes_done: u64,
    /// What the job expects in all: for a backup an estimate (the previous
    /// backup's size, else the engine's data size); null while unknown.
    pub bytes_total: Option<u64>,
    /// The average since the job started.
    pub bytes_per_second: u64,
    /// Seconds left at that rate; null while the total is unknown.
    pub eta_seconds: Option<u64>,
    /// 0 to 99 while running; null while the total is unknown.
    pub percent: Option<u8>,
    /// Who asked to cancel it; it stops at its next safe point.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cancel_requested_by: Option<String>,
}

/// The answer to `POST .../backups/:id/cancel` and `POST .../restores/:id/cancel`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Cancelled {
    pub id: i64,
    /// `failed` when it was queued and never runs; `running` while it stops.
    pub status: TaskStatus,
    pub message: String,
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
    /// For a restore to a point in time: the moment it brings the data back to.
    #[serde(default, skip_serializing_if = "Option::is_none", with = "crate::timestamp::option")]
    pub target_time: Option<DateTime<Utc>>,
    /// While the restore runs: how far it is (on the node it works on now).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub progress: Option<Progress>,
}

/// The times a restore to a point in time can reach (`GET /v1/instances/:id/pitr`):
/// the reference's `start_time` and `end_time`, and what lies between them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PitrWindow {
    #[serde(with = "crate::timestamp")]
    pub start_time: DateTime<Utc>,
    #[serde(with = "crate::timestamp")]
    pub end_time: DateTime<Utc>,
    /// Stretches between the two no restore can reach, oldest first.
    pub gaps: Vec<PitrGap>,
    /// When the newest write-ahead log file reached the backup store.
    #[serde(with = "crate::timestamp::option")]
    pub last_archived_at: Option<DateTime<Utc>>,
    /// The timeline the instance writes on: 1, plus one per restore to a point in time
    /// (and in a cluster, one per failover or switchover).
    pub timeline: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PitrGap {
    #[serde(with = "crate::timestamp")]
    pub start_time: DateTime<Utc>,
    #[serde(with = "crate::timestamp")]
    pub end_time: DateTime<Utc>,
    pub reason: String,
}

/// `POST /v1/instances/:id/pitr/restore`. The time is text so a malformed one gets
/// the API's error, naming the window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PitrRestoreRequest {
    pub target_time: String,
}

/// The answer to a queued restore to a point in time: the reference's `status`,
/// and the restore's id in the restore history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PitrRestoreQueued {
    pub status: TaskStatus,
    pub id: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RestoreCreated {
    pub id: i64,
}

/// A service instance's overview (`GET /v1/instances/:instance_id`), as the
/// reference documents it, plus `access`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Instance {
    pub available_updates: Vec<AvailableUpdate>,
    #[serde(with = "crate::timestamp")]
    pub created_at: DateTime<Utc>,
    /// The instance's internal id.
    pub id: i64,
    pub name: String,
    pub plan_id: String,
    /// The same as `service_id` (the reference's example carries both).
    pub service_guid: String,
    pub service_id: String,
    /// `deploying`, `provisioned`, `available`, `failed` or `deleted`.
    pub state: String,
    pub subtenant_id: String,
    pub subtenant_name: String,
    pub tenant_id: String,
    pub tenant_name: String,
    #[serde(with = "crate::timestamp")]
    pub updated_at: DateTime<Utc>,
    pub urls: Vec<InstanceUrl>,
    /// What the caller may do: `read` or `manage` (svcdash's addition).
    pub access: String,
    /// The release of the service the instance runs (svcdash's addition).
    pub version: String,
    /// Why the instance is `failed` (svcdash's addition).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state_description: Option<String>,
    /// Whether the parachute keeps an engine of the instance stopped because a disk
    /// reached its threshold (svcdash's addition).
    #[serde(default)]
    pub parachute_activated: bool,
    /// For instances archiving their write-ahead log: how it is going (svcdash's
    /// addition).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub continuous_archiving: Option<ArchivingStatus>,
    /// A cluster's nodes: which one takes writes now, since when, and which the
    /// parachute holds (svcdash's addition; absent for a single node).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub nodes: Vec<InstanceNode>,
}

/// A node of a cluster instance, as last seen.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InstanceNode {
    pub index: i64,
    /// As the engine names it (`primary` or `replica`; Redis: `master`,
    /// `replica`; MariaDB and RabbitMQ, whose every node takes writes:
    /// `member`), or `unknown` while the node does not answer.
    pub role: String,
    /// Since when the node is seen in that role.
    #[serde(with = "crate::timestamp::option")]
    pub role_since: Option<DateTime<Utc>>,
    pub port: u16,
    /// While the parachute holds the node's engine stopped: the disk that
    /// reached its threshold.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parachute_disk: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ArchivingStatus {
    /// When the newest write-ahead log file reached the backup store.
    #[serde(with = "crate::timestamp::option")]
    pub last_archived_at: Option<DateTime<Utc>>,
    /// Whether the newest hand-over failed: PostgreSQL keeps its files and retries.
    pub behind: bool,
    /// Why it failed, while behind.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AvailableUpdate {
    pub name: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub version: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InstanceUrl {
    pub display_name: String,
    pub id: String,
    pub link: String,
}

/// `POST /v1/instances/:instance_id/disaster-recovery/prepare`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DisasterRecoveryPrepare {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encryption_key: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DisasterRecoveryPrepared {
    pub backup_guid: String,
}

/// `POST /v1/instances/:instance_id/disaster-recovery/perform`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DisasterRecoveryPerform {
    pub backup_guid: String,
    pub encryption_key: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DisasterRecoveryPerformed {
    pub restore_id: i64,
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

/// `PATCH /v1/instances/:instance_id/updates`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpdateRequest {
    /// The service the instance was created from.
    pub service_id: String,
}
