//! Bodies of the deprecated dashboard API (`/service-instances/:instance_id/backups...`).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::TaskStatus;

/// `GET /service-instances/:instance_id/backups`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BackupsAndRestores {
    /// The internal id of the instance.
    pub id: i64,
    /// The instance id as the broker knows it.
    pub instance_id: String,
    pub backups: Vec<Backup>,
    pub restores: Vec<Restore>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Backup {
    /// The internal id of the backup.
    pub id: i64,
    /// The internal id of the instance.
    pub instance_id: i64,
    pub backup_agent_task: AgentTask,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Restore {
    pub id: i64,
    pub instance_id: i64,
    /// One task per node the restore runs on.
    pub backup_agent_tasks: Vec<AgentTask>,
}

/// The task that carries out a backup or a restore (on one node).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AgentTask {
    pub id: i64,
    /// The internal id of the backup or restore this task belongs to.
    pub task_id: i64,
    pub status: TaskStatus,
    #[serde(with = "crate::timestamp")]
    pub created_at: DateTime<Utc>,
    #[serde(with = "crate::timestamp")]
    pub updated_at: DateTime<Utc>,
}

/// `POST /service-instances/:instance_id/backups` → 201.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BackupCreated {
    pub id: i64,
    pub message: String,
}

/// `POST /service-instances/:instance_id/backups/restore` → 200.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RestoreCreated {
    pub restore_id: i64,
}

/// The deprecated API's error body (412 and friends).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Message {
    pub msg: String,
}
