//! Archived write-ahead log segments in SQLite.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::SqliteStore;
use crate::models::{BaseBackup, WalSegment};
use crate::{ArchiveStore, StoreResult};

const COLUMNS: &str = "instance_id, name, timeline, object_key, key_id, size, sha256, plain_size, plain_sha256, \
     handed_over_at, archived_at";

#[derive(sqlx::FromRow)]
struct SegmentRow {
    instance_id: i64,
    name: String,
    timeline: i64,
    object_key: String,
    key_id: i64,
    size: i64,
    sha256: String,
    plain_size: i64,
    plain_sha256: String,
    handed_over_at: DateTime<Utc>,
    archived_at: DateTime<Utc>,
}

const BASE_COLUMNS: &str = "b.backup_id, b.instance_id, b.object_key, b.key_id, b.size, b.sha256, b.plain_size, \
     b.timeline, b.start_wal, b.end_wal, b.started_at, b.finished_at";

#[derive(sqlx::FromRow)]
struct BaseRow {
    backup_id: i64,
    instance_id: i64,
    object_key: String,
    key_id: i64,
    size: i64,
    sha256: String,
    plain_size: i64,
    timeline: i64,
    start_wal: String,
    end_wal: String,
    started_at: DateTime<Utc>,
    finished_at: DateTime<Utc>,
}

impl From<BaseRow> for BaseBackup {
    fn from(r: BaseRow) -> Self {
        BaseBackup {
            backup_id: r.backup_id,
            instance_id: r.instance_id,
            object_key: r.object_key,
            key_id: r.key_id,
            size: r.size,
            sha256: r.sha256,
            plain_size: r.plain_size,
            timeline: r.timeline,
            start_wal: r.start_wal,
            end_wal: r.end_wal,
            started_at: r.started_at,
            finished_at: r.finished_at,
        }
    }
}

impl From<SegmentRow> for WalSegment {
    fn from(r: SegmentRow) -> Self {
        WalSegment {
            instance_id: r.instance_id,
            name: r.name,
            timeline: r.timeline,
            object_key: r.object_key,
            key_id: r.key_id,
            size: r.size,
            sha256: r.sha256,
            plain_size: r.plain_size,
            plain_sha256: r.plain_sha256,
            handed_over_at: r.handed_over_at,
            archived_at: r.archived_at,
        }
    }
}

impl SqliteStore {
    /// A file's row; `on_conflict` says what becomes of an existing one.
    async fn insert_wal_segment(&self, s: &WalSegment, on_conflict: &'static str) -> StoreResult<()> {
        let mut tx = self.write().await?;
        let sql = format!(
            "INSERT INTO wal_segments (instance_id, name, timeline, object_key, key_id, size, sha256, plain_size, \
             plain_sha256, handed_over_at, archived_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) \
             ON CONFLICT (instance_id, name) {on_conflict}"
        );
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(s.instance_id)
            .bind(&s.name)
            .bind(s.timeline)
            .bind(&s.object_key)
            .bind(s.key_id)
            .bind(s.size)
            .bind(&s.sha256)
            .bind(s.plain_size)
            .bind(&s.plain_sha256)
            .bind(s.handed_over_at)
            .bind(s.archived_at)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }
}

#[async_trait]
impl ArchiveStore for SqliteStore {
    async fn record_wal_segment(&self, s: &WalSegment) -> StoreResult<()> {
        self.insert_wal_segment(s, "DO NOTHING").await
    }

    async fn replace_wal_segment(&self, s: &WalSegment) -> StoreResult<()> {
        self.insert_wal_segment(
            s,
            "DO UPDATE SET timeline = excluded.timeline, object_key = excluded.object_key, key_id = excluded.key_id, \
             size = excluded.size, sha256 = excluded.sha256, plain_size = excluded.plain_size, \
             plain_sha256 = excluded.plain_sha256, handed_over_at = excluded.handed_over_at, \
             archived_at = excluded.archived_at",
        )
        .await
    }

    async fn wal_segment(&self, instance_id: i64, name: &str) -> StoreResult<Option<WalSegment>> {
        let sql = format!("SELECT {COLUMNS} FROM wal_segments WHERE instance_id = ? AND name = ?");
        let row = sqlx::query_as::<_, SegmentRow>(sqlx::AssertSqlSafe(sql))
            .bind(instance_id)
            .bind(name)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.map(Into::into))
    }

    async fn wal_segments(&self, instance_id: i64) -> StoreResult<Vec<WalSegment>> {
        let sql = format!("SELECT {COLUMNS} FROM wal_segments WHERE instance_id = ? ORDER BY name");
        let rows =
            sqlx::query_as::<_, SegmentRow>(sqlx::AssertSqlSafe(sql)).bind(instance_id).fetch_all(&self.pool).await?;
        Ok(rows.into_iter().map(Into::into).collect())
    }

    async fn last_wal_segment(&self, instance_id: i64) -> StoreResult<Option<WalSegment>> {
        let sql = format!(
            "SELECT {COLUMNS} FROM wal_segments WHERE instance_id = ? ORDER BY archived_at DESC, id DESC LIMIT 1"
        );
        let row = sqlx::query_as::<_, SegmentRow>(sqlx::AssertSqlSafe(sql))
            .bind(instance_id)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.map(Into::into))
    }

    async fn record_base_backup(&self, b: &BaseBackup) -> StoreResult<()> {
        let mut tx = self.write().await?;
        sqlx::query(
            "INSERT INTO base_backups (backup_id, instance_id, object_key, key_id, size, sha256, plain_size, \
             timeline, start_wal, end_wal, started_at, finished_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(b.backup_id)
        .bind(b.instance_id)
        .bind(&b.object_key)
        .bind(b.key_id)
        .bind(b.size)
        .bind(&b.sha256)
        .bind(b.plain_size)
        .bind(b.timeline)
        .bind(&b.start_wal)
        .bind(&b.end_wal)
        .bind(b.started_at)
        .bind(b.finished_at)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn base_backups(&self, instance_id: i64) -> StoreResult<Vec<BaseBackup>> {
        let sql = format!(
            "SELECT {BASE_COLUMNS} FROM base_backups b JOIN backups k ON k.id = b.backup_id \
             WHERE b.instance_id = ? AND k.deleted_at IS NULL ORDER BY b.finished_at, b.backup_id"
        );
        let rows =
            sqlx::query_as::<_, BaseRow>(sqlx::AssertSqlSafe(sql)).bind(instance_id).fetch_all(&self.pool).await?;
        Ok(rows.into_iter().map(Into::into).collect())
    }

    async fn base_backup(&self, backup_id: i64) -> StoreResult<Option<BaseBackup>> {
        let sql = format!(
            "SELECT {BASE_COLUMNS} FROM base_backups b JOIN backups k ON k.id = b.backup_id \
             WHERE b.backup_id = ? AND k.deleted_at IS NULL"
        );
        let row =
            sqlx::query_as::<_, BaseRow>(sqlx::AssertSqlSafe(sql)).bind(backup_id).fetch_optional(&self.pool).await?;
        Ok(row.map(Into::into))
    }

    async fn forget_wal_segments(&self, instance_id: i64, names: &[String]) -> StoreResult<()> {
        let mut tx = self.write().await?;
        for name in names {
            sqlx::query("DELETE FROM wal_segments WHERE instance_id = ? AND name = ?")
                .bind(instance_id)
                .bind(name)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }
}
