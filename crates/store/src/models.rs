//! Rows of the state store, as the rest of svcdash sees them.

use api_types::TaskStatus;
use chrono::{DateTime, Utc};

macro_rules! text_enum {
    ($(#[$m:meta])* $name:ident { $($variant:ident => $text:literal),* $(,)? }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name { $($variant),* }

        impl $name {
            pub fn as_str(self) -> &'static str {
                match self { $(Self::$variant => $text),* }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl std::str::FromStr for $name {
            type Err = anyhow::Error;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s {
                    $($text => Ok(Self::$variant),)*
                    other => Err(anyhow::anyhow!("unknown {} {other:?}", stringify!($name))),
                }
            }
        }
    };
}

text_enum!(
    /// The states of an instance that the reference documents.
    InstanceState {
        Deploying => "deploying",
        Provisioned => "provisioned",
        Available => "available",
        Failed => "failed",
        Deleted => "deleted",
    }
);

text_enum!(
    /// What a job does.
    JobKind {
        Provision => "provision",
        Deprovision => "deprovision",
        Backup => "backup",
        Restore => "restore",
        Restart => "restart",
        Recreate => "recreate",
        Update => "update",
        PlanChange => "plan_change",
    }
);

text_enum!(
    /// Where a backup encryption key comes from.
    KeyKind {
        Generated => "generated",
        Personal => "personal",
    }
);

#[derive(Debug, Clone, PartialEq)]
pub struct Instance {
    pub id: i64,
    pub guid: String,
    pub name: String,
    pub service_id: String,
    pub plan_id: String,
    pub state: InstanceState,
    pub state_reason: Option<String>,
    pub tenant_id: String,
    pub tenant_name: Option<String>,
    pub subtenant_id: String,
    pub subtenant_name: Option<String>,
    /// The id its backups are filed under; outlives the instance for disaster recovery.
    pub backup_guid: String,
    /// The name svcdash made for it on the host (folder, account); never from a request.
    pub local_name: String,
    /// The catalog version the instance runs; `None` for instances older than
    /// version tracking (taken to be the catalog's current one).
    pub version: Option<String>,
    /// Whether its engine's write-ahead log goes to the backup store as it is
    /// written (PostgreSQL), for point-in-time recovery.
    pub continuous_archiving: bool,
    /// Made at a moment of another instance's history (provisioning restores it).
    pub restore_from: Option<RestoreFrom>,
    /// The write-ahead log timeline the instance started on: 1, or for one made at
    /// a moment of another, that one's plus one (once made).
    pub start_timeline: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub deleted_at: Option<DateTime<Utc>>,
}

/// Another instance, and the moment of its history a new instance starts from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RestoreFrom {
    pub instance_id: i64,
    pub target_time: DateTime<Utc>,
}

#[derive(Debug, Clone)]
pub struct NewInstance {
    pub guid: String,
    pub name: String,
    pub service_id: String,
    pub plan_id: String,
    pub tenant_id: String,
    pub tenant_name: Option<String>,
    pub subtenant_id: String,
    pub subtenant_name: Option<String>,
    pub backup_guid: String,
    pub local_name: String,
    pub version: String,
    pub continuous_archiving: bool,
    pub restore_from: Option<RestoreFrom>,
}

/// A write-ahead log file of an instance, complete in the backup store.
#[derive(Debug, Clone, PartialEq)]
pub struct WalSegment {
    pub instance_id: i64,
    /// PostgreSQL's name for it (`000000010000000000000003`, `00000002.history`, ...).
    pub name: String,
    pub timeline: i64,
    pub object_key: String,
    pub key_id: i64,
    pub size: i64,
    pub sha256: String,
    pub plain_size: i64,
    pub plain_sha256: String,
    /// When PostgreSQL last wrote it (no later than its hand-over): it holds
    /// everything written before.
    pub handed_over_at: DateTime<Utc>,
    pub archived_at: DateTime<Utc>,
}

/// A physical base backup of an archiving instance, taken with one of its backups.
#[derive(Debug, Clone, PartialEq)]
pub struct BaseBackup {
    pub backup_id: i64,
    pub instance_id: i64,
    pub object_key: String,
    pub key_id: i64,
    pub size: i64,
    pub sha256: String,
    pub plain_size: i64,
    pub timeline: i64,
    /// The first segment a restore from it replays, and the one it must reach
    /// before the data is consistent.
    pub start_wal: String,
    pub end_wal: String,
    pub started_at: DateTime<Utc>,
    /// Targets from here on can be reached from it.
    pub finished_at: DateTime<Utc>,
}

/// One engine process of an instance.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    pub id: i64,
    pub instance_id: i64,
    pub index: i64,
    pub port: u16,
    /// The node's other ports, in the order its engine names them.
    pub extra_ports: Vec<u16>,
    pub admin_user: String,
    pub sealed_password: String,
    /// Set while the parachute keeps the engine stopped.
    pub parachute: Option<ParachuteTrip>,
    /// The role a node of a cluster was last seen in (`None` when it could not be
    /// asked), and since when it is seen in it: a failover's time, at a glance.
    pub role: Option<NodeRole>,
    pub role_since: Option<DateTime<Utc>>,
    /// Its data lies on a history the cluster left (a restore to a point in time
    /// went back past it): it copies the primary before it runs again.
    pub copy_pending: bool,
}

text_enum!(
    /// What a node of a cluster is: the one taking writes, one following it, or
    /// one of a cluster whose every node takes writes.
    NodeRole {
        Primary => "primary",
        Replica => "replica",
        Member => "member",
    }
);

/// Which disk crossed its threshold, and when, so that svcdash stopped the node's engine.
#[derive(Debug, Clone, PartialEq)]
pub struct ParachuteTrip {
    pub disk: String,
    pub at: DateTime<Utc>,
}

#[derive(Debug, Clone)]
pub struct NewNode {
    pub instance_id: i64,
    pub index: i64,
    pub port: u16,
    pub extra_ports: Vec<u16>,
    pub admin_user: String,
    pub sealed_password: String,
    /// The role a new cluster node starts in; `None` for a single node.
    pub role: Option<NodeRole>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Binding {
    pub id: i64,
    pub instance_id: i64,
    pub guid: String,
    pub username: String,
    pub sealed_password: String,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone)]
pub struct NewBinding {
    pub instance_id: i64,
    pub guid: String,
    pub username: String,
    pub sealed_password: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct InstanceKey {
    pub id: i64,
    pub instance_id: i64,
    pub kind: KeyKind,
    pub sealed_key: String,
    pub created_at: DateTime<Utc>,
}

/// What a listing of an instance's backups shows, read together.
#[derive(Debug, Clone, PartialEq)]
pub struct BackupListing {
    pub instance: Instance,
    /// Newest first.
    pub backups: Vec<Backup>,
    /// The instance's current personal key: which backups can be downloaded.
    pub personal_key: Option<InstanceKey>,
    /// Moves on whenever what the listing shows changes (see
    /// [`crate::BackupStore::backup_listing_unless`]).
    pub version: i64,
}

/// A listing read unless the caller still had it.
#[derive(Debug, Clone, PartialEq)]
pub enum ListingRead {
    /// The listing changed since the version the caller had, or it had none.
    Changed(BackupListing),
    /// The caller's version is current: only the instance, to check who may see it.
    Unchanged(Instance),
}

/// What the Backups page shows, read unless the caller still had it.
#[derive(Debug, Clone, PartialEq)]
pub enum OverviewRead {
    /// Something the page shows changed since the version the caller had, or it
    /// had none (the overview's listing carries the new version).
    Changed(BackupsOverview),
    /// The caller's version is current: only the instance, to check who may see it.
    Unchanged(Instance),
}

/// What the Backups page shows of an instance, read together.
#[derive(Debug, Clone, PartialEq)]
pub struct BackupsOverview {
    pub listing: BackupListing,
    /// Newest first, each with its jobs.
    pub restores: Vec<Restore>,
    /// The instance's own settings, or the defaults given.
    pub settings: BackupSettings,
    /// How many nodes the instance has.
    pub nodes: usize,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Job {
    pub id: i64,
    pub instance_id: i64,
    pub kind: JobKind,
    pub backup_id: Option<i64>,
    pub restore_id: Option<i64>,
    pub node_index: Option<i64>,
    pub status: TaskStatus,
    pub error: Option<String>,
    pub created_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub updated_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    /// What a running backup or restore has processed, as its worker last said.
    pub progress: Option<JobProgress>,
    /// Who asked to cancel the job, once somebody did.
    pub cancelled_by: Option<String>,
}

/// Bytes a backup or restore has processed (of the plain data: the dump read, or
/// fed to the engine's loader) and the total it expects, if known.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JobProgress {
    pub bytes: u64,
    pub total: Option<u64>,
}

/// What asking to cancel a job did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CancelOutcome {
    /// It was queued: it is failed now and never runs.
    Cancelled,
    /// It runs: its worker stops it at the next safe point.
    Requested,
    /// It had ended already.
    Finished,
}

#[derive(Debug, Clone)]
pub struct NewBackup {
    pub instance_id: i64,
    pub key_id: i64,
    /// Where the object goes; `{seq}` is replaced by the backup's sequence number.
    pub object_key_template: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Backup {
    pub id: i64,
    pub instance_id: i64,
    pub seq: i64,
    pub key_id: i64,
    pub object_key: String,
    pub size: Option<i64>,
    pub sha256: Option<String>,
    /// Bytes of the plain dump, once the backup is done.
    pub plain_size: Option<i64>,
    pub deleted_at: Option<DateTime<Utc>>,
    /// The task that makes the backup.
    pub job: Job,
}

impl Backup {
    /// `deleted` once removed, else the status of its job.
    pub fn status(&self) -> TaskStatus {
        if self.deleted_at.is_some() { TaskStatus::Deleted } else { self.job.status }
    }
}

/// What asking for a backup did: queued a new one, or found one of the instance
/// queued already, which then answers the request.
#[derive(Debug, Clone, PartialEq)]
pub enum BackupRequest {
    Queued(Backup),
    AlreadyQueued(Backup),
}

impl BackupRequest {
    pub fn backup(&self) -> &Backup {
        match self {
            Self::Queued(b) | Self::AlreadyQueued(b) => b,
        }
    }

    pub fn into_backup(self) -> Backup {
        match self {
            Self::Queued(b) | Self::AlreadyQueued(b) => b,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Restore {
    pub id: i64,
    pub instance_id: i64,
    pub seq: i64,
    pub backup_id: i64,
    /// The sequence number of the backup within its instance.
    pub backup_seq: i64,
    pub created_at: DateTime<Utc>,
    /// The moment a restore to a point in time brings the data back to.
    pub target_time: Option<DateTime<Utc>>,
    /// The timeline the instance went on with once such a restore's node ran on
    /// the restored data (set even if a cluster's other nodes then failed to copy it).
    pub timeline: Option<i64>,
    /// When that node began running on the restored data: the new timeline's start.
    pub forked_at: Option<DateTime<Utc>>,
    /// One task per node, in the order they run (a cluster's primary first).
    pub jobs: Vec<Job>,
}

impl Restore {
    /// Failed if any node failed, running while any runs, done when all are done.
    pub fn status(&self) -> TaskStatus {
        let all = |s| self.jobs.iter().all(|j| j.status == s);
        if self.jobs.iter().any(|j| j.status == TaskStatus::Failed) {
            TaskStatus::Failed
        } else if all(TaskStatus::Done) {
            TaskStatus::Done
        } else if all(TaskStatus::Queued) {
            TaskStatus::Queued
        } else {
            TaskStatus::Running
        }
    }

    pub fn updated_at(&self) -> DateTime<Utc> {
        self.jobs.iter().map(|j| j.updated_at).max().unwrap_or(self.created_at)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct User {
    pub id: i64,
    pub name: String,
    pub password_hash: Option<String>,
    pub created_at: DateTime<Utc>,
}

text_enum!(
    /// What a grant allows on the instances it covers; `Manage` includes `Read`.
    #[derive(PartialOrd, Ord)]
    Role {
        Read => "read",
        Manage => "manage",
    }
);

/// Access to a tenant, or to one subtenant of it.
#[derive(Debug, Clone, PartialEq)]
pub struct Grant {
    pub tenant_id: String,
    pub subtenant_id: Option<String>,
    pub role: Role,
}

impl Grant {
    pub fn covers(&self, tenant_id: &str, subtenant_id: &str) -> bool {
        self.tenant_id == tenant_id && self.subtenant_id.as_deref().is_none_or(|s| s == subtenant_id)
    }
}

/// A signed-in browser (or curl cookie jar).
#[derive(Debug, Clone, PartialEq)]
pub struct Session {
    pub id: i64,
    pub subject: String,
    pub user_name: String,
    pub csrf_token: String,
    /// JSON kept for the identity provider's side (groups, token expiry).
    pub claims: String,
    /// The provider's tokens, sealed under the master key.
    pub sealed_tokens: Option<String>,
    pub created_at: DateTime<Utc>,
    pub last_seen_at: DateTime<Utc>,
    /// The local API token the session was made from, if it was.
    pub token_id: Option<i64>,
    /// When the credential the session was made from expires: the session ends then.
    pub expires_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone)]
pub struct NewSession {
    pub token_hash: String,
    pub subject: String,
    pub user_name: String,
    pub csrf_token: String,
    pub claims: String,
    pub sealed_tokens: Option<String>,
    /// Set when a bearer token made the session: it never outlives the token.
    pub bearer: Option<SessionBearer>,
}

/// The bearer token a session is made from.
#[derive(Debug, Clone)]
pub struct SessionBearer {
    /// sha256 of the token: one token holds a bounded number of sessions.
    pub hash: String,
    /// The local API token, when it is one: revoking it ends the session.
    pub token_id: Option<i64>,
    pub expires_at: Option<DateTime<Utc>>,
    /// The token holds at most this many sessions; making one more removes the oldest.
    pub max_sessions: u32,
}

/// The cut-offs that end a session besides its credential's expiry: idle too long,
/// or begun too long ago.
#[derive(Debug, Clone, Copy)]
pub struct SessionLimits {
    /// Sessions last used before this are over.
    pub active_since: DateTime<Utc>,
    /// Sessions begun before this are over.
    pub created_since: DateTime<Utc>,
}

/// A local user's API token, without the token itself (only its hash is stored).
#[derive(Debug, Clone, PartialEq)]
pub struct Token {
    pub id: i64,
    pub user_id: i64,
    pub user_name: String,
    pub created_at: DateTime<Utc>,
    /// `None`: the token does not expire.
    pub expires_at: Option<DateTime<Utc>>,
}

/// What revoking tokens removed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Revoked {
    pub tokens: u64,
    /// The sessions made from those tokens, ended with them.
    pub sessions: u64,
}

/// A single sign-on round trip that has begun and not yet come back.
#[derive(Debug, Clone, PartialEq)]
pub struct LoginFlow {
    pub state_hash: String,
    pub browser_hash: String,
    pub sealed_verifier: String,
    pub nonce: String,
    pub return_to: String,
    pub created_at: DateTime<Utc>,
}

text_enum!(
    AuditOutcome {
        Success => "success",
        Failure => "failure",
        Denied => "denied",
    }
);

#[derive(Debug, Clone)]
pub struct NewAuditEntry {
    pub actor: String,
    pub action: String,
    pub instance_guid: Option<String>,
    pub outcome: AuditOutcome,
    pub detail: Option<String>,
    pub remote_addr: Option<String>,
}

/// One state-changing action: who, what, on which instance, when, and how it went.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditEntry {
    pub id: i64,
    pub at: DateTime<Utc>,
    pub actor: String,
    pub action: String,
    pub instance_guid: Option<String>,
    pub outcome: AuditOutcome,
    pub detail: Option<String>,
    pub remote_addr: Option<String>,
}

/// An instance's backup settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BackupSettings {
    pub min_backup_count: i64,
    pub retention_time_days: i64,
    pub exclude_from_auto_backup: bool,
}
