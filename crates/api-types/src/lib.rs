//! Request and response bodies of svcdash's HTTP APIs: the dashboard API V1, the
//! deprecated dashboard API and the Open Service Broker API. The server, the CLI
//! and the tests share these types, so a field renamed here is renamed everywhere.

pub mod broker;
pub mod legacy;
pub mod timestamp;
pub mod v1;

use serde::{Deserialize, Serialize};

/// The error body of every dashboard API route: `{"error": "CamelCase", "description": "..."}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// A single word in camel case that identifies the error condition.
    pub error: String,
    /// A user-facing message explaining why the request failed.
    pub description: String,
}

/// The status of a backup, a restore or the task behind it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TaskStatus {
    Queued,
    Running,
    Done,
    Failed,
    Deleted,
}

impl TaskStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Running => "running",
            Self::Done => "done",
            Self::Failed => "failed",
            Self::Deleted => "deleted",
        }
    }

    /// Whether the task can still change on its own.
    pub fn is_finished(self) -> bool {
        matches!(self, Self::Done | Self::Failed | Self::Deleted)
    }
}

impl std::fmt::Display for TaskStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for TaskStatus {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s {
            "queued" => Self::Queued,
            "running" => Self::Running,
            "done" => Self::Done,
            "failed" => Self::Failed,
            "deleted" => Self::Deleted,
            other => return Err(format!("unknown task status {other:?}")),
        })
    }
}
