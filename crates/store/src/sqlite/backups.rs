//! Backups and restores in SQLite.

use std::collections::HashMap;
use std::sync::LazyLock;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::AssertSqlSafe;

use super::folded::{self, folded};
use super::instances::{INSTANCE_COLUMNS, insert_job};
use super::rows::{BACKUP_SELECT, BackupRow, InstanceRow, JOB_SELECT, JobRow, KeyRow, RestoreRow, convert};
use super::{SqliteStore, now};
use crate::models::*;
use crate::{BackupStore, StoreResult};

const RESTORE_SELECT: &str = "SELECT r.id, r.instance_id, r.seq, r.backup_id, b.seq AS backup_seq, r.created_at, \
     r.target_time, r.timeline, r.forked_at \
     FROM restores r JOIN backups b ON b.id = r.backup_id";

/// An instance's backups, each with its job: the Backups page and API lists.
pub(super) static BACKUPS: LazyLock<String> =
    LazyLock::new(|| folded::<BackupRow>(BACKUP_SELECT, "WHERE b.instance_id = ?"));
/// An instance by its id (`?1`) and its newest key of kind `?2` as one folded row
/// (NULL without one): the head of a listing, whose backups [`BACKUP_ROWS`] reads
/// in the same read transaction.
pub(super) static LISTING: LazyLock<String> = LazyLock::new(|| listing(""));

/// [`LISTING`] and what else the Backups page shows: the restores and their jobs
/// folded as [`RESTORES`] and [`RESTORE_JOBS`] fold them, the instance's own
/// backup settings as one folded row (NULL without), and how many nodes it has.
pub(super) static OVERVIEW: LazyLock<String> = LazyLock::new(|| {
    let restores = folded::<RestoreRow>(RESTORE_SELECT, "WHERE r.instance_id = instances.id");
    let jobs = folded::<JobRow>(JOB_SELECT, "WHERE instance_id = instances.id AND restore_id IS NOT NULL");
    let settings =
        format!("SELECT {} FROM backup_settings WHERE instance_id = instances.id", folded::row::<SettingsRow>());
    let nodes = "SELECT count(*) FROM nodes WHERE instance_id = instances.id";
    listing(&format!(
        ", ({restores}) AS restores, ({jobs}) AS restore_jobs, ({settings}) AS settings, ({nodes}) AS nodes"
    ))
});

/// An instance's backups by its id (`?1`), a row each: read on the calling
/// thread, rows cost no hand-off, and reading their columns costs less than
/// SQLite writing them as JSON and serde parsing it.
pub(super) static BACKUP_ROWS: LazyLock<String> = LazyLock::new(|| {
    folded::check_columns::<BackupRow>(BACKUP_SELECT);
    format!("{BACKUP_SELECT} WHERE b.instance_id = ?1")
});

/// [`LISTING`] with more columns after its own.
fn listing(more_columns: &str) -> String {
    let key = format!(
        "SELECT {} FROM instance_keys WHERE instance_id = instances.id AND kind = ?2 ORDER BY id DESC LIMIT 1",
        folded::row::<KeyRow>()
    );
    format!(
        "SELECT {INSTANCE_COLUMNS}, listing_version, ({key}) AS personal_key{more_columns} FROM instances WHERE guid = ?1"
    )
}

/// The head of a listing (`head_sql`, read by `head`) and the instance's backups,
/// in one read transaction so that they agree; the backups only when the head's
/// listing version is not `known`.
fn read_listing<H>(
    c: &rusqlite::Connection,
    head_sql: &str,
    instance_guid: &str,
    known: Option<i64>,
    head: impl FnOnce(&rusqlite::Row) -> rusqlite::Result<H>,
) -> rusqlite::Result<(H, Option<Vec<BackupRow>>)> {
    let transaction = c.unchecked_transaction()?;
    let (head, instance_id, version) =
        c.prepare_cached(head_sql)?.query_row((instance_guid, KeyKind::Personal.as_str()), |row| {
            Ok((head(row)?, row.get::<_, i64>("id")?, row.get::<_, i64>("listing_version")?))
        })?;
    let backups = match known == Some(version) {
        true => None,
        false => {
            Some(c.prepare_cached(&BACKUP_ROWS)?.query_map([instance_id], BackupRow::read)?.collect::<Result<_, _>>()?)
        }
    };
    transaction.commit()?;
    Ok((head, backups))
}

/// Backups as the lists show them: newest first.
fn newest_first(rows: Vec<BackupRow>) -> StoreResult<Vec<Backup>> {
    let mut backups: Vec<Backup> = convert(rows)?;
    backups.sort_unstable_by_key(|b| std::cmp::Reverse(b.seq));
    Ok(backups)
}

struct ListingRow {
    instance: InstanceRow,
    backups: Vec<BackupRow>,
    personal_key: Option<String>,
    version: i64,
}

impl ListingRow {
    /// The head of a listing: its instance and key, the backups still to come.
    fn read_head(row: &rusqlite::Row) -> rusqlite::Result<Self> {
        Ok(Self {
            instance: InstanceRow::read(row)?,
            backups: Vec::new(),
            personal_key: row.get("personal_key")?,
            version: row.get("listing_version")?,
        })
    }

    fn read(self) -> StoreResult<BackupListing> {
        let backups = newest_first(self.backups)?;
        let personal_key = match self.personal_key {
            Some(json) => Some(folded::parse::<KeyRow>(&json)?.try_into()?),
            None => None,
        };
        Ok(BackupListing { instance: self.instance.try_into()?, backups, personal_key, version: self.version })
    }
}

struct OverviewRow {
    listing: ListingRow,
    restores: String,
    restore_jobs: String,
    settings: Option<String>,
    nodes: i64,
}

impl OverviewRow {
    fn read_row(row: &rusqlite::Row) -> rusqlite::Result<Self> {
        Ok(Self {
            listing: ListingRow::read_head(row)?,
            restores: row.get("restores")?,
            restore_jobs: row.get("restore_jobs")?,
            settings: row.get("settings")?,
            nodes: row.get("nodes")?,
        })
    }
}

#[derive(serde::Deserialize)]
struct SettingsRow {
    min_backup_count: i64,
    retention_time_days: i64,
    /// SQLite's JSON has no booleans: 0 or 1.
    exclude_from_auto_backup: i64,
}

/// An instance's restores.
pub(super) static RESTORES: LazyLock<String> =
    LazyLock::new(|| folded::<RestoreRow>(RESTORE_SELECT, "WHERE r.instance_id = ?"));
/// The jobs of an instance's restores (one per node restored).
pub(super) static RESTORE_JOBS: LazyLock<String> =
    LazyLock::new(|| folded::<JobRow>(JOB_SELECT, "WHERE instance_id = ? AND restore_id IS NOT NULL"));

impl SqliteStore {
    async fn backup_where(&self, condition: &str, a: i64, b: Option<i64>) -> StoreResult<Backup> {
        let sql = format!("{BACKUP_SELECT} WHERE {condition}");
        let mut q = sqlx::query_as::<_, BackupRow>(AssertSqlSafe(sql)).bind(a);
        if let Some(b) = b {
            q = q.bind(b);
        }
        q.fetch_one(&self.pool).await?.try_into()
    }

    /// Attaches the per-node jobs to restore rows.
    async fn with_jobs(&self, rows: Vec<RestoreRow>) -> StoreResult<Vec<Restore>> {
        let Some(instance_id) = rows.first().map(|r| r.instance_id) else {
            return Ok(Vec::new());
        };
        let jobs = folded::fetch::<JobRow>(&self.pool, &RESTORE_JOBS, instance_id).await?;
        attach_jobs(rows, jobs)
    }

    async fn one_restore(&self, row: RestoreRow) -> StoreResult<Restore> {
        self.with_jobs(vec![row]).await?.pop().ok_or(crate::StoreError::NotFound)
    }
}

/// Restores newest first, each with its jobs (the instance's restore jobs).
fn attach_jobs(mut rows: Vec<RestoreRow>, jobs: Vec<JobRow>) -> StoreResult<Vec<Restore>> {
    rows.sort_unstable_by_key(|r| std::cmp::Reverse(r.seq));
    let mut jobs: Vec<Job> = convert(jobs)?;
    jobs.sort_unstable_by_key(|j| j.id);
    let mut by_restore: HashMap<i64, Vec<Job>> = HashMap::new();
    for job in jobs {
        by_restore.entry(job.restore_id.unwrap_or_default()).or_default().push(job);
    }
    Ok(rows
        .into_iter()
        .map(|r| Restore {
            jobs: by_restore.remove(&r.id).unwrap_or_default(),
            id: r.id,
            instance_id: r.instance_id,
            seq: r.seq,
            backup_id: r.backup_id,
            backup_seq: r.backup_seq,
            created_at: r.created_at,
            target_time: r.target_time,
            timeline: r.timeline,
            forked_at: r.forked_at,
        })
        .collect())
}

#[async_trait]
impl BackupStore for SqliteStore {
    async fn enqueue_backup(&self, new: NewBackup) -> StoreResult<BackupRequest> {
        let mut tx = self.write().await?;
        let queued = queued_backup(&mut tx, new.instance_id).await?;
        let id = match queued {
            Some(id) => id,
            None => insert_backup(&mut tx, &new).await?,
        };
        tx.commit().await?;
        let backup = self.backup(id).await?;
        Ok(if queued.is_some() { BackupRequest::AlreadyQueued(backup) } else { BackupRequest::Queued(backup) })
    }

    async fn backup(&self, id: i64) -> StoreResult<Backup> {
        self.backup_where("b.id = ?", id, None).await
    }

    async fn backup_by_seq(&self, instance_id: i64, seq: i64) -> StoreResult<Backup> {
        self.backup_where("b.instance_id = ? AND b.seq = ?", instance_id, Some(seq)).await
    }

    async fn backups(&self, instance_id: i64) -> StoreResult<Vec<Backup>> {
        newest_first(folded::fetch::<BackupRow>(&self.pool, &BACKUPS, instance_id).await?)
    }

    async fn backup_listing_unless(&self, instance_guid: &str, known: Option<i64>) -> StoreResult<ListingRead> {
        let guid = instance_guid.to_owned();
        let read = move |c: &rusqlite::Connection| read_listing(c, &LISTING, &guid, known, ListingRow::read_head);
        match self.readers.read(read).await? {
            (head, Some(backups)) => Ok(ListingRead::Changed(ListingRow { backups, ..head }.read()?)),
            (head, None) => Ok(ListingRead::Unchanged(head.instance.try_into()?)),
        }
    }

    async fn backups_overview_unless(
        &self,
        instance_guid: &str,
        known: Option<i64>,
        defaults: BackupSettings,
    ) -> StoreResult<OverviewRead> {
        let guid = instance_guid.to_owned();
        let read = move |c: &rusqlite::Connection| {
            // A poll of an unchanged page reads the listing's head only; a change
            // reads the whole overview, at its own version.
            if let Some(known) = known {
                let head = c.prepare_cached(&LISTING)?.query_row((&guid, KeyKind::Personal.as_str()), |row| {
                    Ok((ListingRow::read_head(row)?, row.get::<_, i64>("listing_version")?))
                })?;
                if head.1 == known {
                    return Ok(Err(head.0));
                }
            }
            read_listing(c, &OVERVIEW, &guid, None, OverviewRow::read_row).map(Ok)
        };
        let (mut row, backups) = match self.readers.read(read).await? {
            Ok(overview) => overview,
            Err(head) => return Ok(OverviewRead::Unchanged(head.instance.try_into()?)),
        };
        row.listing.backups = backups.unwrap_or_default();
        let settings = match row.settings {
            Some(json) => {
                let s: SettingsRow = folded::parse(&json)?;
                BackupSettings {
                    min_backup_count: s.min_backup_count,
                    retention_time_days: s.retention_time_days,
                    exclude_from_auto_backup: s.exclude_from_auto_backup != 0,
                }
            }
            None => defaults,
        };
        Ok(OverviewRead::Changed(BackupsOverview {
            restores: attach_jobs(folded::parse(&row.restores)?, folded::parse(&row.restore_jobs)?)?,
            listing: row.listing.read()?,
            settings,
            nodes: usize::try_from(row.nodes).unwrap_or(0),
        }))
    }

    async fn record_backup_object(&self, id: i64, size: i64, sha256: &str, plain_size: i64) -> StoreResult<()> {
        sqlx::query("UPDATE backups SET size = ?, sha256 = ?, plain_size = ? WHERE id = ?")
            .bind(size)
            .bind(sha256)
            .bind(plain_size)
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn record_backup_layout(&self, id: i64, layout: &str) -> StoreResult<()> {
        sqlx::query("INSERT OR REPLACE INTO backup_layouts (backup_id, layout) VALUES (?, ?)")
            .bind(id)
            .bind(layout)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn backup_layout(&self, id: i64) -> StoreResult<Option<String>> {
        Ok(sqlx::query_scalar("SELECT layout FROM backup_layouts WHERE backup_id = ?")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?)
    }

    async fn enqueue_restore(&self, instance_id: i64, backup_id: i64, node_indexes: &[i64]) -> StoreResult<Restore> {
        self.insert_restore(instance_id, backup_id, None, node_indexes).await
    }

    async fn enqueue_point_in_time_restore(
        &self,
        instance_id: i64,
        backup_id: i64,
        target_time: DateTime<Utc>,
    ) -> StoreResult<Restore> {
        self.insert_restore(instance_id, backup_id, Some(target_time), &[0]).await
    }

    async fn set_restore_timeline(&self, id: i64, timeline: i64, forked_at: DateTime<Utc>) -> StoreResult<()> {
        let mut tx = self.write().await?;
        sqlx::query("UPDATE restores SET timeline = ?, forked_at = ? WHERE id = ?")
            .bind(timeline)
            .bind(forked_at)
            .bind(id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn restore(&self, id: i64) -> StoreResult<Restore> {
        let sql = format!("{RESTORE_SELECT} WHERE r.id = ?");
        let row = sqlx::query_as::<_, RestoreRow>(AssertSqlSafe(sql)).bind(id).fetch_one(&self.pool).await?;
        self.one_restore(row).await
    }

    async fn restore_by_seq(&self, instance_id: i64, seq: i64) -> StoreResult<Restore> {
        let sql = format!("{RESTORE_SELECT} WHERE r.instance_id = ? AND r.seq = ?");
        let row = sqlx::query_as::<_, RestoreRow>(AssertSqlSafe(sql))
            .bind(instance_id)
            .bind(seq)
            .fetch_one(&self.pool)
            .await?;
        self.one_restore(row).await
    }

    async fn restores(&self, instance_id: i64) -> StoreResult<Vec<Restore>> {
        let rows = folded::fetch::<RestoreRow>(&self.pool, &RESTORES, instance_id).await?;
        self.with_jobs(rows).await
    }

    async fn backup_settings(&self, instance_id: i64, defaults: BackupSettings) -> StoreResult<BackupSettings> {
        let row: Option<(i64, i64, bool)> = sqlx::query_as(
            "SELECT min_backup_count, retention_time_days, exclude_from_auto_backup FROM backup_settings \
             WHERE instance_id = ?",
        )
        .bind(instance_id)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map_or(defaults, |(min_backup_count, retention_time_days, exclude_from_auto_backup)| BackupSettings {
            min_backup_count,
            retention_time_days,
            exclude_from_auto_backup,
        }))
    }

    async fn update_backup_settings(
        &self,
        instance_id: i64,
        settings: BackupSettings,
        sealed_personal_key: Option<&str>,
    ) -> StoreResult<()> {
        let mut tx = self.write().await?;
        sqlx::query(
            "INSERT INTO backup_settings (instance_id, min_backup_count, retention_time_days, \
             exclude_from_auto_backup, updated_at) VALUES (?, ?, ?, ?, ?) ON CONFLICT (instance_id) DO UPDATE SET \
             min_backup_count = excluded.min_backup_count, retention_time_days = excluded.retention_time_days, \
             exclude_from_auto_backup = excluded.exclude_from_auto_backup, updated_at = excluded.updated_at",
        )
        .bind(instance_id)
        .bind(settings.min_backup_count)
        .bind(settings.retention_time_days)
        .bind(settings.exclude_from_auto_backup)
        .bind(now())
        .execute(&mut *tx)
        .await?;
        if let Some(sealed) = sealed_personal_key {
            sqlx::query("INSERT INTO instance_keys (instance_id, kind, sealed_key, created_at) VALUES (?, ?, ?, ?)")
                .bind(instance_id)
                .bind(KeyKind::Personal.as_str())
                .bind(sealed)
                .bind(now())
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn mark_backup_deleted(&self, id: i64) -> StoreResult<()> {
        sqlx::query("UPDATE backups SET deleted_at = ? WHERE id = ? AND deleted_at IS NULL")
            .bind(now())
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn backup_in_use(&self, id: i64) -> StoreResult<bool> {
        Ok(sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM jobs WHERE kind = 'restore' AND backup_id = ? \
             AND status IN ('queued', 'running'))",
        )
        .bind(id)
        .fetch_one(&self.pool)
        .await?)
    }

    async fn last_scheduled_slot(&self, instance_id: i64) -> StoreResult<Option<chrono::DateTime<chrono::Utc>>> {
        Ok(sqlx::query_scalar("SELECT last_slot FROM backup_schedule WHERE instance_id = ?")
            .bind(instance_id)
            .fetch_optional(&self.pool)
            .await?)
    }

    async fn enqueue_scheduled_backup(
        &self,
        new: NewBackup,
        slot: chrono::DateTime<chrono::Utc>,
    ) -> StoreResult<BackupRequest> {
        let mut tx = self.write().await?;
        let queued = queued_backup(&mut tx, new.instance_id).await?;
        let id = match queued {
            Some(id) => id,
            None => insert_backup(&mut tx, &new).await?,
        };
        sqlx::query(
            "INSERT INTO backup_schedule (instance_id, last_slot) VALUES (?, ?) \
             ON CONFLICT (instance_id) DO UPDATE SET last_slot = excluded.last_slot",
        )
        .bind(new.instance_id)
        .bind(slot)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        let backup = self.backup(id).await?;
        Ok(if queued.is_some() { BackupRequest::AlreadyQueued(backup) } else { BackupRequest::Queued(backup) })
    }
}

/// The instance's backup whose job waits in the queue, if any.
async fn queued_backup(tx: &mut sqlx::SqliteConnection, instance_id: i64) -> StoreResult<Option<i64>> {
    Ok(sqlx::query_scalar(
        "SELECT b.id FROM backups b JOIN jobs j ON j.id = b.job_id \
         WHERE b.instance_id = ? AND j.status = 'queued' ORDER BY b.id LIMIT 1",
    )
    .bind(instance_id)
    .fetch_optional(&mut *tx)
    .await?)
}

/// Records a backup (the instance's next sequence number) and its queued job.
async fn insert_backup(tx: &mut sqlx::SqliteConnection, new: &NewBackup) -> StoreResult<i64> {
    let seq: i64 = sqlx::query_scalar("SELECT COALESCE(MAX(seq), 0) + 1 FROM backups WHERE instance_id = ?")
        .bind(new.instance_id)
        .fetch_one(&mut *tx)
        .await?;
    let job = insert_job(tx, new.instance_id, JobKind::Backup, None, None, None).await?;
    let object_key = new.object_key_template.replace("{seq}", &seq.to_string());
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO backups (instance_id, seq, job_id, key_id, object_key) VALUES (?, ?, ?, ?, ?) RETURNING id",
    )
    .bind(new.instance_id)
    .bind(seq)
    .bind(job.id)
    .bind(new.key_id)
    .bind(&object_key)
    .fetch_one(&mut *tx)
    .await?;
    sqlx::query("UPDATE jobs SET backup_id = ? WHERE id = ?").bind(id).bind(job.id).execute(&mut *tx).await?;
    Ok(id)
}

impl SqliteStore {
    async fn insert_restore(
        &self,
        instance_id: i64,
        backup_id: i64,
        target_time: Option<DateTime<Utc>>,
        node_indexes: &[i64],
    ) -> StoreResult<Restore> {
        let mut tx = self.write().await?;
        let queued: Option<(i64, i64)> = sqlx::query_as(
            "SELECT r.seq, b.seq FROM restores r JOIN backups b ON b.id = r.backup_id \
             WHERE r.instance_id = ? AND EXISTS (\
                SELECT 1 FROM jobs j WHERE j.restore_id = r.id AND j.status = 'queued') \
             ORDER BY r.id LIMIT 1",
        )
        .bind(instance_id)
        .fetch_optional(&mut *tx)
        .await?;
        if let Some((restore, backup)) = queued {
            return Err(crate::StoreError::Conflict(format!(
                "restore {restore} (of backup {backup}) is queued; a second restore can be queued once it runs"
            )));
        }
        let seq: i64 = sqlx::query_scalar("SELECT COALESCE(MAX(seq), 0) + 1 FROM restores WHERE instance_id = ?")
            .bind(instance_id)
            .fetch_one(&mut *tx)
            .await?;
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO restores (instance_id, seq, backup_id, created_at, target_time) VALUES (?, ?, ?, ?, ?) \
             RETURNING id",
        )
        .bind(instance_id)
        .bind(seq)
        .bind(backup_id)
        .bind(now())
        .bind(target_time)
        .fetch_one(&mut *tx)
        .await?;
        for &node in node_indexes {
            insert_job(&mut tx, instance_id, JobKind::Restore, Some(backup_id), Some(id), Some(node)).await?;
        }
        tx.commit().await?;
        self.restore(id).await
    }
}
