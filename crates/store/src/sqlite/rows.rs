//! Raw rows as SQLite returns them, and their conversion into models.

use anyhow::Context;
use chrono::{DateTime, Utc};

use super::stored_time::Stored;

use crate::StoreError;
use crate::models::*;

#[derive(sqlx::FromRow)]
pub(super) struct InstanceRow {
    id: i64,
    guid: String,
    name: String,
    service_id: String,
    plan_id: String,
    state: String,
    state_reason: Option<String>,
    tenant_id: String,
    tenant_name: Option<String>,
    subtenant_id: String,
    subtenant_name: Option<String>,
    backup_guid: String,
    local_name: String,
    version: Option<String>,
    continuous_archiving: bool,
    restore_from_instance_id: Option<i64>,
    restore_from_time: Option<DateTime<Utc>>,
    start_timeline: Option<i64>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    deleted_at: Option<DateTime<Utc>>,
}

impl InstanceRow {
    /// The instance's columns of a row read by the store's inline readers.
    pub(super) fn read(row: &rusqlite::Row) -> rusqlite::Result<Self> {
        Ok(Self {
            id: row.get("id")?,
            guid: row.get("guid")?,
            name: row.get("name")?,
            service_id: row.get("service_id")?,
            plan_id: row.get("plan_id")?,
            state: row.get("state")?,
            state_reason: row.get("state_reason")?,
            tenant_id: row.get("tenant_id")?,
            tenant_name: row.get("tenant_name")?,
            subtenant_id: row.get("subtenant_id")?,
            subtenant_name: row.get("subtenant_name")?,
            backup_guid: row.get("backup_guid")?,
            local_name: row.get("local_name")?,
            version: row.get("version")?,
            continuous_archiving: row.get("continuous_archiving")?,
            restore_from_instance_id: row.get("restore_from_instance_id")?,
            restore_from_time: row.get::<_, Option<Stored>>("restore_from_time")?.map(|t| t.0),
            start_timeline: row.get("start_timeline")?,
            created_at: row.get::<_, Stored>("created_at")?.0,
            updated_at: row.get::<_, Stored>("updated_at")?.0,
            deleted_at: row.get::<_, Option<Stored>>("deleted_at")?.map(|t| t.0),
        })
    }
}

impl TryFrom<InstanceRow> for Instance {
    type Error = StoreError;
    fn try_from(r: InstanceRow) -> Result<Self, StoreError> {
        Ok(Instance {
            id: r.id,
            guid: r.guid,
            name: r.name,
            service_id: r.service_id,
            plan_id: r.plan_id,
            state: r.state.parse()?,
            state_reason: r.state_reason,
            tenant_id: r.tenant_id,
            tenant_name: r.tenant_name,
            subtenant_id: r.subtenant_id,
            subtenant_name: r.subtenant_name,
            backup_guid: r.backup_guid,
            local_name: r.local_name,
            version: r.version,
            continuous_archiving: r.continuous_archiving,
            restore_from: match (r.restore_from_instance_id, r.restore_from_time) {
                (Some(instance_id), Some(target_time)) => Some(RestoreFrom { instance_id, target_time }),
                _ => None,
            },
            start_timeline: r.start_timeline.unwrap_or(1),
            created_at: r.created_at,
            updated_at: r.updated_at,
            deleted_at: r.deleted_at,
        })
    }
}

#[derive(sqlx::FromRow)]
pub(super) struct NodeRow {
    id: i64,
    instance_id: i64,
    node_index: i64,
    port: i64,
    extra_ports: String,
    admin_user: String,
    sealed_password: String,
    parachute_disk: Option<String>,
    parachute_at: Option<DateTime<Utc>>,
    role: Option<String>,
    role_seen_at: Option<DateTime<Utc>>,
    copy_pending: bool,
}

impl TryFrom<NodeRow> for Node {
    type Error = StoreError;
    fn try_from(r: NodeRow) -> Result<Self, StoreError> {
        Ok(Node {
            id: r.id,
            instance_id: r.instance_id,
            index: r.node_index,
            port: u16::try_from(r.port).context("node port out of range")?,
            extra_ports: r
                .extra_ports
                .split(',')
                .filter(|p| !p.is_empty())
                .map(|p| p.parse::<u16>().context("node port out of range"))
                .collect::<Result<_, _>>()?,
            admin_user: r.admin_user,
            sealed_password: r.sealed_password,
            parachute: match (r.parachute_disk, r.parachute_at) {
                (Some(disk), Some(at)) => Some(ParachuteTrip { disk, at }),
                _ => None,
            },
            role: r.role.as_deref().map(str::parse).transpose()?,
            role_since: r.role_seen_at,
            copy_pending: r.copy_pending,
        })
    }
}

#[derive(sqlx::FromRow)]
pub(super) struct BindingRow {
    id: i64,
    instance_id: i64,
    guid: String,
    username: String,
    sealed_password: String,
    created_at: DateTime<Utc>,
}

impl From<BindingRow> for Binding {
    fn from(r: BindingRow) -> Self {
        Binding {
            id: r.id,
            instance_id: r.instance_id,
            guid: r.guid,
            username: r.username,
            sealed_password: r.sealed_password,
            created_at: r.created_at,
        }
    }
}

#[derive(sqlx::FromRow, serde::Deserialize)]
pub(super) struct KeyRow {
    id: i64,
    instance_id: i64,
    kind: String,
    sealed_key: String,
    #[serde(deserialize_with = "super::stored_time::required")]
    created_at: DateTime<Utc>,
}

impl TryFrom<KeyRow> for InstanceKey {
    type Error = StoreError;
    fn try_from(r: KeyRow) -> Result<Self, StoreError> {
        Ok(InstanceKey {
            id: r.id,
            instance_id: r.instance_id,
            kind: r.kind.parse()?,
            sealed_key: r.sealed_key,
            created_at: r.created_at,
        })
    }
}

/// A job, as [`JOB_SELECT`] reads it.
#[derive(sqlx::FromRow, serde::Deserialize)]
pub(super) struct JobRow {
    id: i64,
    instance_id: i64,
    kind: String,
    backup_id: Option<i64>,
    restore_id: Option<i64>,
    node_index: Option<i64>,
    status: String,
    error: Option<String>,
    #[serde(deserialize_with = "super::stored_time::required")]
    created_at: DateTime<Utc>,
    #[serde(deserialize_with = "super::stored_time::optional")]
    started_at: Option<DateTime<Utc>>,
    #[serde(deserialize_with = "super::stored_time::required")]
    updated_at: DateTime<Utc>,
    #[serde(deserialize_with = "super::stored_time::optional")]
    finished_at: Option<DateTime<Utc>>,
    progress_bytes: Option<i64>,
    progress_total: Option<i64>,
    cancelled_by: Option<String>,
}

pub(super) const JOB_SELECT: &str = "SELECT id, instance_id, kind, backup_id, restore_id, node_index, status, error, \
     created_at, started_at, updated_at, finished_at, progress_bytes, progress_total, cancelled_by FROM jobs";

impl TryFrom<JobRow> for Job {
    type Error = StoreError;
    fn try_from(r: JobRow) -> Result<Self, StoreError> {
        Ok(Job {
            id: r.id,
            instance_id: r.instance_id,
            kind: r.kind.parse()?,
            backup_id: r.backup_id,
            restore_id: r.restore_id,
            node_index: r.node_index,
            status: r.status.parse().map_err(anyhow::Error::msg)?,
            error: r.error,
            created_at: r.created_at,
            started_at: r.started_at,
            updated_at: r.updated_at,
            finished_at: r.finished_at,
            progress: r.progress_bytes.map(|bytes| JobProgress {
                bytes: u64::try_from(bytes).unwrap_or(0),
                total: r.progress_total.and_then(|t| u64::try_from(t).ok()),
            }),
            cancelled_by: r.cancelled_by,
        })
    }
}

/// A backup joined with its job.
#[derive(sqlx::FromRow, serde::Deserialize)]
pub(super) struct BackupRow {
    id: i64,
    instance_id: i64,
    seq: i64,
    key_id: i64,
    object_key: String,
    size: Option<i64>,
    sha256: Option<String>,
    plain_size: Option<i64>,
    #[serde(deserialize_with = "super::stored_time::optional")]
    deleted_at: Option<DateTime<Utc>>,
    job_id: i64,
    kind: String,
    node_index: Option<i64>,
    status: String,
    error: Option<String>,
    #[serde(deserialize_with = "super::stored_time::required")]
    created_at: DateTime<Utc>,
    #[serde(deserialize_with = "super::stored_time::optional")]
    started_at: Option<DateTime<Utc>>,
    #[serde(deserialize_with = "super::stored_time::required")]
    updated_at: DateTime<Utc>,
    #[serde(deserialize_with = "super::stored_time::optional")]
    finished_at: Option<DateTime<Utc>>,
    progress_bytes: Option<i64>,
    progress_total: Option<i64>,
    cancelled_by: Option<String>,
}

pub(super) const BACKUP_SELECT: &str = "SELECT b.id, b.instance_id, b.seq, b.key_id, b.object_key, b.size, b.sha256, \
     b.plain_size, b.deleted_at, b.job_id, j.kind, j.node_index, j.status, j.error, j.created_at, j.started_at, \
     j.updated_at, j.finished_at, j.progress_bytes, j.progress_total, j.cancelled_by FROM backups b JOIN jobs j ON j.id = b.job_id";

impl BackupRow {
    /// A row of [`BACKUP_SELECT`], whose columns are this struct's fields in
    /// order (see [`super::folded::check_columns`]).
    pub(super) fn read(row: &rusqlite::Row) -> rusqlite::Result<Self> {
        Ok(Self {
            id: row.get(0)?,
            instance_id: row.get(1)?,
            seq: row.get(2)?,
            key_id: row.get(3)?,
            object_key: row.get(4)?,
            size: row.get(5)?,
            sha256: row.get(6)?,
            plain_size: row.get(7)?,
            deleted_at: row.get::<_, Option<Stored>>(8)?.map(|t| t.0),
            job_id: row.get(9)?,
            kind: row.get(10)?,
            node_index: row.get(11)?,
            status: row.get(12)?,
            error: row.get(13)?,
            created_at: row.get::<_, Stored>(14)?.0,
            started_at: row.get::<_, Option<Stored>>(15)?.map(|t| t.0),
            updated_at: row.get::<_, Stored>(16)?.0,
            finished_at: row.get::<_, Option<Stored>>(17)?.map(|t| t.0),
            progress_bytes: row.get(18)?,
            progress_total: row.get(19)?,
            cancelled_by: row.get(20)?,
        })
    }
}

impl TryFrom<BackupRow> for Backup {
    type Error = StoreError;
    fn try_from(r: BackupRow) -> Result<Self, StoreError> {
        let job = JobRow {
            id: r.job_id,
            instance_id: r.instance_id,
            kind: r.kind,
            backup_id: Some(r.id),
            restore_id: None,
            node_index: r.node_index,
            status: r.status,
            error: r.error,
            created_at: r.created_at,
            started_at: r.started_at,
            updated_at: r.updated_at,
            finished_at: r.finished_at,
            progress_bytes: r.progress_bytes,
            progress_total: r.progress_total,
            cancelled_by: r.cancelled_by,
        };
        Ok(Backup {
            id: r.id,
            instance_id: r.instance_id,
            seq: r.seq,
            key_id: r.key_id,
            object_key: r.object_key,
            size: r.size,
            sha256: r.sha256,
            plain_size: r.plain_size,
            deleted_at: r.deleted_at,
            job: job.try_into()?,
        })
    }
}

#[derive(sqlx::FromRow, serde::Deserialize)]
pub(super) struct RestoreRow {
    pub id: i64,
    pub instance_id: i64,
    pub seq: i64,
    pub backup_id: i64,
    pub backup_seq: i64,
    #[serde(deserialize_with = "super::stored_time::required")]
    pub created_at: DateTime<Utc>,
    #[serde(deserialize_with = "super::stored_time::optional")]
    pub target_time: Option<DateTime<Utc>>,
    pub timeline: Option<i64>,
    #[serde(deserialize_with = "super::stored_time::optional")]
    pub forked_at: Option<DateTime<Utc>>,
}

#[derive(sqlx::FromRow)]
pub(super) struct UserRow {
    id: i64,
    name: String,
    password_hash: Option<String>,
    created_at: DateTime<Utc>,
}

impl From<UserRow> for User {
    fn from(r: UserRow) -> Self {
        User { id: r.id, name: r.name, password_hash: r.password_hash, created_at: r.created_at }
    }
}

pub(super) fn convert<R, T>(rows: Vec<R>) -> Result<Vec<T>, StoreError>
where
    T: TryFrom<R, Error = StoreError>,
{
    rows.into_iter().map(T::try_from).collect()
}
