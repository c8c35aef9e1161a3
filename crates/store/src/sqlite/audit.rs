//! The audit log in SQLite: appended to, never updated.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::{SqliteStore, now};
use crate::models::*;
use crate::{AuditStore, StoreError, StoreResult};

const COLUMNS: &str = "id, at, actor, action, instance_guid, outcome, detail, remote_addr";

#[derive(sqlx::FromRow)]
struct AuditRow {
    id: i64,
    at: DateTime<Utc>,
    actor: String,
    action: String,
    instance_guid: Option<String>,
    outcome: String,
    detail: Option<String>,
    remote_addr: Option<String>,
}

impl TryFrom<AuditRow> for AuditEntry {
    type Error = StoreError;

    fn try_from(r: AuditRow) -> Result<Self, StoreError> {
        Ok(AuditEntry {
            id: r.id,
            at: r.at,
            actor: r.actor,
            action: r.action,
            instance_guid: r.instance_guid,
            outcome: r.outcome.parse()?,
            detail: r.detail,
            remote_addr: r.remote_addr,
        })
    }
}

#[async_trait]
impl AuditStore for SqliteStore {
    async fn append_audit(&self, entry: NewAuditEntry) -> StoreResult<AuditEntry> {
        let sql = format!(
            "INSERT INTO audit_log (at, actor, action, instance_guid, outcome, detail, remote_addr) \
             VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING {COLUMNS}"
        );
        sqlx::query_as::<_, AuditRow>(sqlx::AssertSqlSafe(sql))
            .bind(now())
            .bind(entry.actor)
            .bind(entry.action)
            .bind(entry.instance_guid)
            .bind(entry.outcome.as_str())
            .bind(entry.detail)
            .bind(entry.remote_addr)
            .fetch_one(&self.pool)
            .await?
            .try_into()
    }

    async fn audit_entries(&self, instance_guid: Option<&str>, limit: i64) -> StoreResult<Vec<AuditEntry>> {
        let sql = format!(
            "SELECT {COLUMNS} FROM audit_log WHERE (?1 IS NULL OR instance_guid = ?1) ORDER BY id DESC LIMIT ?2"
        );
        let rows = sqlx::query_as::<_, AuditRow>(sqlx::AssertSqlSafe(sql))
            .bind(instance_guid)
            .bind(limit)
            .fetch_all(&self.pool)
            .await?;
        super::rows::convert(rows)
    }
}
