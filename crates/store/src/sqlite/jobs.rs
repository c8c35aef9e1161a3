//! The job queue in SQLite. SQLite has one writer at a time, so the claim below is
//! atomic without row locks. Claims are fair across tenants: the tenant with the
//! fewest running jobs goes first, so one with many instances (or many queued
//! backups) cannot hold every worker.

use api_types::TaskStatus;
use async_trait::async_trait;

use super::rows::{JobRow, convert};
use super::{SqliteStore, now};
use crate::models::*;
use crate::{JobStore, StoreError, StoreResult};

#[async_trait]
impl JobStore for SqliteStore {
    async fn claim_next_job(&self) -> StoreResult<Option<Job>> {
        let now = now();
        let row = sqlx::query_as::<_, JobRow>(
            "UPDATE jobs SET status = 'running', started_at = ?, updated_at = ? WHERE id = (\
                SELECT j.id FROM jobs j JOIN instances i ON i.id = j.instance_id \
                WHERE j.status = 'queued' AND NOT EXISTS (\
                    SELECT 1 FROM jobs r WHERE r.instance_id = j.instance_id AND r.status = 'running') \
                ORDER BY (\
                    SELECT COUNT(*) FROM jobs r JOIN instances ri ON ri.id = r.instance_id \
                    WHERE r.status = 'running' AND ri.tenant_id = i.tenant_id), j.id \
                LIMIT 1) \
             RETURNING *",
        )
        .bind(now)
        .bind(now)
        .fetch_optional(&self.pool)
        .await?;
        row.map(Job::try_from).transpose()
    }

    async fn job(&self, id: i64) -> StoreResult<Job> {
        sqlx::query_as::<_, JobRow>("SELECT * FROM jobs WHERE id = ?").bind(id).fetch_one(&self.pool).await?.try_into()
    }

    async fn finish_job(&self, id: i64, status: TaskStatus, error: Option<&str>) -> StoreResult<Job> {
        let now = now();
        sqlx::query_as::<_, JobRow>(
            "UPDATE jobs SET status = ?, error = ?, updated_at = ?, finished_at = ? WHERE id = ? RETURNING *",
        )
        .bind(status.as_str())
        .bind(error)
        .bind(now)
        .bind(now)
        .bind(id)
        .fetch_one(&self.pool)
        .await?
        .try_into()
    }

    async fn set_job_node(&self, id: i64, node_index: i64) -> StoreResult<()> {
        let done = sqlx::query("UPDATE jobs SET node_index = ?, updated_at = ? WHERE id = ?")
            .bind(node_index)
            .bind(now())
            .bind(id)
            .execute(&self.pool)
            .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }

    async fn recover_interrupted_jobs(&self, description: &str) -> StoreResult<Vec<Job>> {
        let now = now();
        sqlx::query(
            "UPDATE jobs SET status = 'queued', started_at = NULL, updated_at = ? \
             WHERE status = 'running' AND kind IN ('provision', 'deprovision', 'restart', 'recreate', 'update', 'plan_change')",
        )
        .bind(now)
        .execute(&self.pool)
        .await?;
        convert(
            sqlx::query_as::<_, JobRow>(
                "UPDATE jobs SET status = 'failed', error = ?, updated_at = ?, finished_at = ? \
                 WHERE status = 'running' RETURNING *",
            )
            .bind(description)
            .bind(now)
            .bind(now)
            .fetch_all(&self.pool)
            .await?,
        )
    }

    async fn running_job(&self, instance_id: i64) -> StoreResult<Option<Job>> {
        sqlx::query_as::<_, JobRow>("SELECT * FROM jobs WHERE instance_id = ? AND status = 'running' LIMIT 1")
            .bind(instance_id)
            .fetch_optional(&self.pool)
            .await?
            .map(Job::try_from)
            .transpose()
    }

    async fn last_lifecycle_job(&self, instance_id: i64) -> StoreResult<Option<Job>> {
        sqlx::query_as::<_, JobRow>(
            "SELECT * FROM jobs WHERE instance_id = ? AND kind IN ('provision', 'deprovision', 'plan_change', 'update') \
             ORDER BY id DESC LIMIT 1",
        )
        .bind(instance_id)
        .fetch_optional(&self.pool)
        .await?
        .map(Job::try_from)
        .transpose()
    }

    async fn job_counts(&self) -> StoreResult<Vec<(String, String, i64)>> {
        Ok(sqlx::query_as("SELECT kind, status, COUNT(*) FROM jobs GROUP BY kind, status ORDER BY kind, status")
            .fetch_all(&self.pool)
            .await?)
    }

    async fn pending_job(&self, instance_id: i64) -> StoreResult<Option<Job>> {
        sqlx::query_as::<_, JobRow>(
            "SELECT * FROM jobs WHERE instance_id = ? AND status IN ('queued', 'running') ORDER BY id LIMIT 1",
        )
        .bind(instance_id)
        .fetch_optional(&self.pool)
        .await?
        .map(Job::try_from)
        .transpose()
    }

    async fn record_progress(&self, id: i64, progress: JobProgress) -> StoreResult<Option<String>> {
        let bytes = i64::try_from(progress.bytes).unwrap_or(i64::MAX);
        let total = progress.total.map(|t| i64::try_from(t).unwrap_or(i64::MAX));
        let cancelled: Option<Option<String>> = sqlx::query_scalar(
            "UPDATE jobs SET progress_bytes = ?, progress_total = ? WHERE id = ? AND status = 'running' \
             RETURNING cancelled_by",
        )
        .bind(bytes)
        .bind(total)
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        Ok(cancelled.flatten())
    }

    async fn cancel_job(&self, id: i64, who: &str) -> StoreResult<CancelOutcome> {
        let now = now();
        let queued = sqlx::query(
            "UPDATE jobs SET status = 'failed', error = ?, cancelled_by = ?, updated_at = ?, finished_at = ? \
             WHERE id = ? AND status = 'queued'",
        )
        .bind(format!("cancelled by {who}"))
        .bind(who)
        .bind(now)
        .bind(now)
        .bind(id)
        .execute(&self.pool)
        .await?;
        if queued.rows_affected() > 0 {
            return Ok(CancelOutcome::Cancelled);
        }
        // The first to ask is the one named.
        let running =
            sqlx::query("UPDATE jobs SET cancelled_by = COALESCE(cancelled_by, ?) WHERE id = ? AND status = 'running'")
                .bind(who)
                .bind(id)
                .execute(&self.pool)
                .await?;
        Ok(match running.rows_affected() {
            0 => CancelOutcome::Finished,
            _ => CancelOutcome::Requested,
        })
    }
}
