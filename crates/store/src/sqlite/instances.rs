//! Instances, nodes, bindings and keys in SQLite.

use std::sync::LazyLock;

use async_trait::async_trait;
use sqlx::AssertSqlSafe;

use super::rows::{BindingRow, InstanceRow, JobRow, KeyRow, NodeRow, convert};
use super::{SqliteStore, now};
use crate::models::*;
use crate::{InstanceStore, StoreError, StoreResult};

pub(super) const INSTANCE_COLUMNS: &str = "id, guid, name, service_id, plan_id, state, state_reason, tenant_id, tenant_name, \
     subtenant_id, subtenant_name, backup_guid, local_name, version, continuous_archiving, restore_from_instance_id, \
     restore_from_time, start_timeline, created_at, updated_at, deleted_at";
const NODE_COLUMNS: &str = "id, instance_id, node_index, port, extra_ports, admin_user, sealed_password, parachute_disk, parachute_at, \
     role, role_seen_at, copy_pending";

/// An instance's newest key of a kind: read on every listing of its backups.
pub(super) const CURRENT_KEY: &str = "SELECT id, instance_id, kind, sealed_key, created_at FROM instance_keys \
     WHERE instance_id = ? AND kind = ? ORDER BY id DESC LIMIT 1";

pub(super) static INSTANCE_BY_GUID: LazyLock<String> = LazyLock::new(|| instances_where("guid = ?"));
static LIVE_INSTANCE_BY_NAME: LazyLock<String> = LazyLock::new(|| instances_where("name = ? AND deleted_at IS NULL"));
static INSTANCE_BY_BACKUP_GUID: LazyLock<String> = LazyLock::new(|| instances_where("backup_guid = ?"));

/// The instances that meet `condition`.
pub(super) fn instances_where(condition: &str) -> String {
    format!("SELECT {INSTANCE_COLUMNS} FROM instances WHERE {condition}")
}

impl SqliteStore {
    /// The instance `sql` (one of [`INSTANCE_BY_GUID`] and its kin, a `?` bound
    /// to `value`) finds. Every request about an instance reads this: inline.
    async fn instance_where(&self, sql: &'static LazyLock<String>, value: &str) -> StoreResult<Instance> {
        let value = value.to_owned();
        self.readers.read(move |c| c.prepare_cached(sql)?.query_row([&value], InstanceRow::read)).await?.try_into()
    }
}

#[async_trait]
impl InstanceStore for SqliteStore {
    async fn create_instance(&self, new: NewInstance) -> StoreResult<(Instance, Job)> {
        let now = now();
        let mut tx = self.write().await?;
        let sql = format!(
            "INSERT INTO instances (guid, name, service_id, plan_id, state, tenant_id, tenant_name, subtenant_id, \
             subtenant_name, backup_guid, local_name, version, continuous_archiving, restore_from_instance_id, \
             restore_from_time, created_at, updated_at) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) \
             RETURNING {INSTANCE_COLUMNS}"
        );
        let instance: Instance = sqlx::query_as::<_, InstanceRow>(AssertSqlSafe(sql))
            .bind(&new.guid)
            .bind(&new.name)
            .bind(&new.service_id)
            .bind(&new.plan_id)
            .bind(InstanceState::Deploying.as_str())
            .bind(&new.tenant_id)
            .bind(&new.tenant_name)
            .bind(&new.subtenant_id)
            .bind(&new.subtenant_name)
            .bind(&new.backup_guid)
            .bind(&new.local_name)
            .bind(&new.version)
            .bind(new.continuous_archiving)
            .bind(new.restore_from.map(|r| r.instance_id))
            .bind(new.restore_from.map(|r| r.target_time))
            .bind(now)
            .bind(now)
            .fetch_one(&mut *tx)
            .await?
            .try_into()?;
        let job = insert_job(&mut tx, instance.id, JobKind::Provision, None, None, None).await?;
        tx.commit().await?;
        Ok((instance, job))
    }

    async fn instance_by_guid(&self, guid: &str) -> StoreResult<Instance> {
        self.instance_where(&INSTANCE_BY_GUID, guid).await
    }

    async fn instance_by_name(&self, name: &str) -> StoreResult<Instance> {
        self.instance_where(&LIVE_INSTANCE_BY_NAME, name).await
    }

    async fn instance(&self, id: i64) -> StoreResult<Instance> {
        let sql = format!("SELECT {INSTANCE_COLUMNS} FROM instances WHERE id = ?");
        sqlx::query_as::<_, InstanceRow>(AssertSqlSafe(sql)).bind(id).fetch_one(&self.pool).await?.try_into()
    }

    async fn instance_by_backup_guid(&self, backup_guid: &str) -> StoreResult<Instance> {
        self.instance_where(&INSTANCE_BY_BACKUP_GUID, backup_guid).await
    }

    async fn list_instances(&self) -> StoreResult<Vec<Instance>> {
        let sql = format!("SELECT {INSTANCE_COLUMNS} FROM instances ORDER BY id");
        convert(sqlx::query_as::<_, InstanceRow>(AssertSqlSafe(sql)).fetch_all(&self.pool).await?)
    }

    async fn set_instance_state(&self, id: i64, state: InstanceState, reason: Option<&str>) -> StoreResult<()> {
        let now = now();
        let deleted_at = (state == InstanceState::Deleted).then_some(now);
        let done = sqlx::query(
            "UPDATE instances SET state = ?, state_reason = ?, updated_at = ?, \
             deleted_at = COALESCE(deleted_at, ?) WHERE id = ?",
        )
        .bind(state.as_str())
        .bind(reason)
        .bind(now)
        .bind(deleted_at)
        .bind(id)
        .execute(&self.pool)
        .await?;
        if done.rows_affected() == 0 {
            return Err(crate::StoreError::NotFound);
        }
        Ok(())
    }

    async fn enqueue_deprovision(&self, id: i64) -> StoreResult<Job> {
        let mut tx = self.write().await?;
        let job = insert_job(&mut tx, id, JobKind::Deprovision, None, None, None).await?;
        tx.commit().await?;
        Ok(job)
    }

    async fn enqueue_lifecycle(&self, id: i64, kind: JobKind) -> StoreResult<Job> {
        let mut tx = self.write().await?;
        refuse_if_busy(&mut tx, id).await?;
        let job = insert_job(&mut tx, id, kind, None, None, None).await?;
        tx.commit().await?;
        Ok(job)
    }

    async fn enqueue_plan_change(&self, id: i64, plan_id: &str) -> StoreResult<Job> {
        let mut tx = self.write().await?;
        refuse_if_busy(&mut tx, id).await?;
        sqlx::query(
            "UPDATE instances SET plan_id = ?, state = 'deploying', state_reason = NULL, updated_at = ? WHERE id = ?",
        )
        .bind(plan_id)
        .bind(now())
        .bind(id)
        .execute(&mut *tx)
        .await?;
        let job = insert_job(&mut tx, id, JobKind::PlanChange, None, None, None).await?;
        tx.commit().await?;
        Ok(job)
    }

    async fn set_start_timeline(&self, id: i64, timeline: i64) -> StoreResult<()> {
        let done = sqlx::query("UPDATE instances SET start_timeline = ? WHERE id = ?")
            .bind(timeline)
            .bind(id)
            .execute(&self.pool)
            .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }

    async fn set_instance_version(&self, id: i64, version: &str) -> StoreResult<()> {
        let done = sqlx::query("UPDATE instances SET version = ?, updated_at = ? WHERE id = ?")
            .bind(version)
            .bind(now())
            .bind(id)
            .execute(&self.pool)
            .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }

    async fn upsert_node(&self, node: NewNode) -> StoreResult<Node> {
        let sql = format!(
            "INSERT INTO nodes (instance_id, node_index, port, extra_ports, admin_user, sealed_password, role, \
             role_seen_at) VALUES (?, ?, ?, ?, ?, ?, ?, CASE WHEN ?7 IS NULL THEN NULL ELSE ?8 END) \
             ON CONFLICT (instance_id, node_index) DO UPDATE SET port = excluded.port, extra_ports = excluded.extra_ports, \
             admin_user = excluded.admin_user, sealed_password = excluded.sealed_password \
             RETURNING {NODE_COLUMNS}"
        );
        sqlx::query_as::<_, NodeRow>(AssertSqlSafe(sql))
            .bind(node.instance_id)
            .bind(node.index)
            .bind(i64::from(node.port))
            .bind(node.extra_ports.iter().map(u16::to_string).collect::<Vec<_>>().join(","))
            .bind(&node.admin_user)
            .bind(&node.sealed_password)
            .bind(node.role.map(NodeRole::as_str))
            .bind(now())
            .fetch_one(&self.pool)
            .await?
            .try_into()
    }

    async fn nodes(&self, instance_id: i64) -> StoreResult<Vec<Node>> {
        let sql = format!("SELECT {NODE_COLUMNS} FROM nodes WHERE instance_id = ? ORDER BY node_index");
        convert(sqlx::query_as::<_, NodeRow>(AssertSqlSafe(sql)).bind(instance_id).fetch_all(&self.pool).await?)
    }

    async fn node_ports(&self) -> StoreResult<Vec<u16>> {
        // Nodes of deleted instances stay (their backups are kept) but run no more.
        let sql = format!(
            "SELECT {NODE_COLUMNS} FROM nodes WHERE instance_id IN (SELECT id FROM instances WHERE state <> 'deleted')"
        );
        let nodes: Vec<Node> = convert(sqlx::query_as::<_, NodeRow>(AssertSqlSafe(sql)).fetch_all(&self.pool).await?)?;
        Ok(nodes.into_iter().flat_map(|n| std::iter::once(n.port).chain(n.extra_ports)).collect())
    }

    async fn trip_parachute(&self, node: &Node, trip: &ParachuteTrip, reason: &str) -> StoreResult<bool> {
        let mut tx = self.write().await?;
        let marked = sqlx::query(
            "UPDATE nodes SET parachute_disk = ?, parachute_at = ? WHERE id = ? AND EXISTS (\
                SELECT 1 FROM instances i WHERE i.id = nodes.instance_id AND i.state IN ('available', 'provisioned') \
                AND NOT EXISTS (SELECT 1 FROM jobs WHERE jobs.instance_id = i.id AND status = 'running'))",
        )
        .bind(&trip.disk)
        .bind(trip.at)
        .bind(node.id)
        .execute(&mut *tx)
        .await?;
        if marked.rows_affected() == 0 {
            return Ok(false);
        }
        sqlx::query(
            "UPDATE instances SET state = 'failed', state_reason = ?, updated_at = ? WHERE id = ? \
             AND NOT EXISTS (SELECT 1 FROM nodes WHERE nodes.instance_id = instances.id AND parachute_at IS NULL)",
        )
        .bind(reason)
        .bind(now())
        .bind(node.instance_id)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn set_node_role(&self, node_id: i64, role: Option<NodeRole>) -> StoreResult<()> {
        let done = sqlx::query("UPDATE nodes SET role = ?, role_seen_at = ? WHERE id = ?")
            .bind(role.map(NodeRole::as_str))
            .bind(now())
            .bind(node_id)
            .execute(&self.pool)
            .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }

    async fn set_node_copy_pending(&self, node_id: i64, pending: bool) -> StoreResult<()> {
        let done = sqlx::query("UPDATE nodes SET copy_pending = ? WHERE id = ?")
            .bind(pending)
            .bind(node_id)
            .execute(&self.pool)
            .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }

    async fn set_node_parachute(&self, node_id: i64, trip: Option<&ParachuteTrip>) -> StoreResult<()> {
        let done = sqlx::query("UPDATE nodes SET parachute_disk = ?, parachute_at = ? WHERE id = ?")
            .bind(trip.map(|t| t.disk.as_str()))
            .bind(trip.map(|t| t.at))
            .bind(node_id)
            .execute(&self.pool)
            .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }

    async fn create_binding(&self, b: NewBinding) -> StoreResult<Binding> {
        Ok(sqlx::query_as::<_, BindingRow>(
            "INSERT INTO bindings (instance_id, guid, username, sealed_password, created_at) VALUES (?, ?, ?, ?, ?) \
             RETURNING id, instance_id, guid, username, sealed_password, created_at",
        )
        .bind(b.instance_id)
        .bind(&b.guid)
        .bind(&b.username)
        .bind(&b.sealed_password)
        .bind(now())
        .fetch_one(&self.pool)
        .await?
        .into())
    }

    async fn binding(&self, instance_id: i64, guid: &str) -> StoreResult<Binding> {
        Ok(sqlx::query_as::<_, BindingRow>(
            "SELECT id, instance_id, guid, username, sealed_password, created_at FROM bindings \
             WHERE instance_id = ? AND guid = ?",
        )
        .bind(instance_id)
        .bind(guid)
        .fetch_one(&self.pool)
        .await?
        .into())
    }

    async fn bindings(&self, instance_id: i64) -> StoreResult<Vec<Binding>> {
        Ok(sqlx::query_as::<_, BindingRow>(
            "SELECT id, instance_id, guid, username, sealed_password, created_at FROM bindings \
             WHERE instance_id = ? ORDER BY id",
        )
        .bind(instance_id)
        .fetch_all(&self.pool)
        .await?
        .into_iter()
        .map(Into::into)
        .collect())
    }

    async fn delete_binding(&self, id: i64) -> StoreResult<()> {
        sqlx::query("DELETE FROM bindings WHERE id = ?").bind(id).execute(&self.pool).await?;
        Ok(())
    }

    async fn add_key(&self, instance_id: i64, kind: KeyKind, sealed_key: &str) -> StoreResult<InstanceKey> {
        sqlx::query_as::<_, KeyRow>(
            "INSERT INTO instance_keys (instance_id, kind, sealed_key, created_at) VALUES (?, ?, ?, ?) \
             RETURNING id, instance_id, kind, sealed_key, created_at",
        )
        .bind(instance_id)
        .bind(kind.as_str())
        .bind(sealed_key)
        .bind(now())
        .fetch_one(&self.pool)
        .await?
        .try_into()
    }

    async fn key(&self, id: i64) -> StoreResult<InstanceKey> {
        sqlx::query_as::<_, KeyRow>(
            "SELECT id, instance_id, kind, sealed_key, created_at FROM instance_keys WHERE id = ?",
        )
        .bind(id)
        .fetch_one(&self.pool)
        .await?
        .try_into()
    }

    async fn reseal_all(
        &self,
        reseal: &(dyn for<'v> Fn(&'v str) -> anyhow::Result<String> + Send + Sync),
    ) -> StoreResult<u64> {
        let mut tx = self.write().await?;
        let mut count = 0;
        for (table, column) in SEALED_COLUMNS {
            let sql = format!("SELECT rowid, {column} FROM {table} WHERE {column} IS NOT NULL");
            let rows: Vec<(i64, String)> = sqlx::query_as(sqlx::AssertSqlSafe(sql)).fetch_all(&mut *tx).await?;
            let update = format!("UPDATE {table} SET {column} = ? WHERE rowid = ?");
            for (rowid, sealed) in rows {
                let resealed = reseal(&sealed).map_err(|e| e.context(format!("re-sealing {table}.{column}")))?;
                sqlx::query(sqlx::AssertSqlSafe(update.clone())).bind(resealed).bind(rowid).execute(&mut *tx).await?;
                count += 1;
            }
        }
        tx.commit().await?;
        Ok(count)
    }

    async fn any_sealed_value(&self) -> StoreResult<Option<String>> {
        for (table, column) in SEALED_COLUMNS {
            let sql = format!("SELECT {column} FROM {table} WHERE {column} IS NOT NULL LIMIT 1");
            let value: Option<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(sql)).fetch_optional(&self.pool).await?;
            if value.is_some() {
                return Ok(value);
            }
        }
        Ok(None)
    }

    async fn current_key(&self, instance_id: i64, kind: KeyKind) -> StoreResult<InstanceKey> {
        sqlx::query_as::<_, KeyRow>(CURRENT_KEY)
            .bind(instance_id)
            .bind(kind.as_str())
            .fetch_one(&self.pool)
            .await?
            .try_into()
    }
}

/// Every column holding a value sealed under the master key.
const SEALED_COLUMNS: [(&str, &str); 5] = [
    ("nodes", "sealed_password"),
    ("bindings", "sealed_password"),
    ("instance_keys", "sealed_key"),
    ("sessions", "sealed_tokens"),
    ("login_flows", "sealed_verifier"),
];

/// Inserts a queued job inside the caller's transaction, so the write that causes
/// a job and the job itself land together.
pub(super) async fn insert_job(
    tx: &mut sqlx::SqliteConnection,
    instance_id: i64,
    kind: JobKind,
    backup_id: Option<i64>,
    restore_id: Option<i64>,
    node_index: Option<i64>,
) -> StoreResult<Job> {
    let now = now();
    sqlx::query_as::<_, JobRow>(
        "INSERT INTO jobs (instance_id, kind, backup_id, restore_id, node_index, status, created_at, updated_at) \
         VALUES (?, ?, ?, ?, ?, 'queued', ?, ?) RETURNING *",
    )
    .bind(instance_id)
    .bind(kind.as_str())
    .bind(backup_id)
    .bind(restore_id)
    .bind(node_index)
    .bind(now)
    .bind(now)
    .fetch_one(tx)
    .await?
    .try_into()
}

/// `Conflict`, naming the job, when a job of the instance is queued or running.
async fn refuse_if_busy(tx: &mut sqlx::Transaction<'_, sqlx::Sqlite>, id: i64) -> StoreResult<()> {
    let busy: Option<String> = sqlx::query_scalar(
        "SELECT kind || ' is ' || status FROM jobs WHERE instance_id = ? AND status IN ('queued', 'running') \
         ORDER BY id LIMIT 1",
    )
    .bind(id)
    .fetch_optional(&mut **tx)
    .await?;
    match busy {
        Some(busy) => Err(StoreError::Conflict(format!("another operation on the instance ({busy})"))),
        None => Ok(()),
    }
}
