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
