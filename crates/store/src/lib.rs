//! svcdash's state store. Handlers and jobs talk to the [`Store`] trait only, so a
//! PostgreSQL store can join the SQLite one without touching them. One trait per
//! capability (instances, jobs, backups, users, sessions, audit); [`Store`] is all of them.

mod error;
mod models;
mod sqlite;

pub use error::{StoreError, StoreResult};
pub use models::*;
pub use sqlite::SqliteStore;

use async_trait::async_trait;

/// Instances, their nodes, bindings and encryption keys.
#[async_trait]
pub trait InstanceStore: Send + Sync {
    /// Records a new instance in state `deploying` and queues its provision job, atomically.
    async fn create_instance(&self, new: NewInstance) -> StoreResult<(Instance, Job)>;
    async fn instance_by_guid(&self, guid: &str) -> StoreResult<Instance>;
    /// The live (not deleted) instance with this name.
    async fn instance_by_name(&self, name: &str) -> StoreResult<Instance>;
    async fn instance(&self, id: i64) -> StoreResult<Instance>;
    async fn instance_by_backup_guid(&self, backup_guid: &str) -> StoreResult<Instance>;
    /// Every instance, deleted ones included, oldest first.
    async fn list_instances(&self) -> StoreResult<Vec<Instance>>;
    async fn set_instance_state(&self, id: i64, state: InstanceState, reason: Option<&str>) -> StoreResult<()>;
    /// Queues the deprovision job of an instance.
    async fn enqueue_deprovision(&self, id: i64) -> StoreResult<Job>;
    /// Queues a lifecycle job (restart, ...) unless any job of the instance is
    /// queued or running: then `Conflict`, naming it.
    async fn enqueue_lifecycle(&self, id: i64, kind: JobKind) -> StoreResult<Job>;

    /// Moves the instance to another plan and queues the provision job that adds
    /// the nodes the plan has and the instance lacks, unless any job of the
    /// instance is queued or running: then `Conflict`, naming it.
    async fn enqueue_plan_change(&self, id: i64, plan_id: &str) -> StoreResult<Job>;
    /// Records the catalog version the instance now runs.
    async fn set_instance_version(&self, id: i64, version: &str) -> StoreResult<()>;
    /// Records the timeline an instance made at a moment of another starts on.
    async fn set_start_timeline(&self, id: i64, timeline: i64) -> StoreResult<()>;

    async fn upsert_node(&self, node: NewNode) -> StoreResult<Node>;
    async fn nodes(&self, instance_id: i64) -> StoreResult<Vec<Node>>;
    /// Every port a node of any instance not deleted was given, running or not: a
    /// stopped node (by the parachute, or while svcdash restarts) starts on its
    /// own again.
    async fn node_ports(&self) -> StoreResult<Vec<u16>>;
    /// Records that a node is now seen in another role (`None`: it could not be
    /// asked), and since when.
    async fn set_node_role(&self, node_id: i64, role: Option<NodeRole>) -> StoreResult<()>;
    /// Marks a node as one that must copy the primary before it runs again, or not.
    async fn set_node_copy_pending(&self, node_id: i64, pending: bool) -> StoreResult<()>;
    /// Marks a node as stopped by the parachute (`Some`) or released (`None`).
    async fn set_node_parachute(&self, node_id: i64, trip: Option<&ParachuteTrip>) -> StoreResult<()>;
    /// Trips the parachute of a node in one transaction: the node is marked, and once
    /// every node of the instance is (a single node at once), the instance turns
    /// `failed` with `reason`; a cluster whose other nodes run keeps serving. Only if
    /// the instance is `available` or `provisioned` and no job of it runs. Returns
    /// whether it did.
    async fn trip_parachute(&self, node: &Node, trip: &ParachuteTrip, reason: &str) -> StoreResult<bool>;

    async fn create_binding(&self, binding: NewBinding) -> StoreResult<Binding>;
    async fn binding(&self, instance_id: i64, guid: &str) -> StoreResult<Binding>;
    async fn bindings(&self, instance_id: i64) -> StoreResult<Vec<Binding>>;
    async fn delete_binding(&self, id: i64) -> StoreResult<()>;

    async fn add_key(&self, instance_id: i64, kind: KeyKind, sealed_key: &str) -> StoreResult<InstanceKey>;
    /// Replaces every value sealed under the master key (engine and binding
    /// passwords, backup keys, session tokens, sign-in verifiers) with
    /// `reseal(value)`, in one transaction; returns how many there were.
    async fn reseal_all(
        &self,
        reseal: &(dyn for<'v> Fn(&'v str) -> anyhow::Result<String> + Send + Sync),
    ) -> StoreResult<u64>;
    /// Some value sealed under the master key, to tell which key the store uses.
    async fn any_sealed_value(&self) -> StoreResult<Option<String>>;
    async fn key(&self, id: i64) -> StoreResult<InstanceKey>;
    /// The newest key of this kind for the instance.
    async fn current_key(&self, instance_id: i64, kind: KeyKind) -> StoreResult<InstanceKey>;
}

/// The durable job queue.
#[async_trait]
pub trait JobStore: Send + Sync {
    /// Marks a queued job as running and returns it, skipping instances that already
    /// have a running job (one operation per instance at a time). Of the others it
    /// takes the job whose instance's tenant has the fewest running jobs, then the
    /// oldest: a tenant with many instances cannot keep another's jobs waiting.
    async fn claim_next_job(&self) -> StoreResult<Option<Job>>;
    async fn job(&self, id: i64) -> StoreResult<Job>;
    async fn finish_job(&self, id: i64, status: api_types::TaskStatus, error: Option<&str>) -> StoreResult<Job>;
    /// Records the node a running job works on, once the job has chosen it (a
    /// backup of a cluster, taken from a replica).
    async fn set_job_node(&self, id: i64, node_index: i64) -> StoreResult<()>;
    /// After svcdash stopped with jobs running: provision, deprovision, restart, recreate and update jobs go back
    /// to the queue (running them again is safe); backups and restores are marked
    /// failed with `description`, and returned so their leftovers can be cleaned up.
    async fn recover_interrupted_jobs(&self, description: &str) -> StoreResult<Vec<Job>>;
    /// The job running for an instance, if any.
    async fn running_job(&self, instance_id: i64) -> StoreResult<Option<Job>>;
    /// The newest provision, plan change, update or deprovision job of an
    /// instance: what the broker's `last_operation` reports.
    async fn last_lifecycle_job(&self, instance_id: i64) -> StoreResult<Option<Job>>;
    /// The oldest job of the instance that is queued or running, if any.
    async fn pending_job(&self, instance_id: i64) -> StoreResult<Option<Job>>;
    /// How many jobs there are of each kind and status.
    async fn job_counts(&self) -> StoreResult<Vec<(String, String, i64)>>;
    /// Records how far a running job is; returns who asked to cancel it, if
    /// anybody did (the worker's cue to stop).
    async fn record_progress(&self, id: i64, progress: JobProgress) -> StoreResult<Option<String>>;
    /// Cancels a queued job at once (failed, "cancelled by `who`"), or marks a
    /// running one for its worker to stop.
    async fn cancel_job(&self, id: i64, who: &str) -> StoreResult<CancelOutcome>;
}

/// Backups and restores.
#[async_trait]
pub trait BackupStore: Send + Sync {
    /// Records a backup (the next sequence number of the instance) and queues its
    /// job, unless a backup of the instance is queued already: then that one,
    /// unchanged. One write transaction, so requests at the same moment queue one
    /// backup between them.
    async fn enqueue_backup(&self, new: NewBackup) -> StoreResult<BackupRequest>;
    async fn backup(&self, id: i64) -> StoreResult<Backup>;
    async fn backup_by_seq(&self, instance_id: i64, seq: i64) -> StoreResult<Backup>;
    /// Newest first.
    async fn backups(&self, instance_id: i64) -> StoreResult<Vec<Backup>>;
    /// The instance with this id, its backups and its current personal key, as one
    /// read: what both APIs list on every poll of a Backups view.
    async fn backup_listing(&self, instance_guid: &str) -> StoreResult<BackupListing> {
        match self.backup_listing_unless(instance_guid, None).await? {
            ListingRead::Changed(listing) => Ok(listing),
            ListingRead::Unchanged(_) => {
                Err(StoreError::Other(anyhow::anyhow!("a listing read as unchanged from none")))
            }
        }
    }
    /// [`Self::backup_listing`], or only the instance when the listing's version is
    /// still `known`: a client polling an unchanged listing costs one small read.
    async fn backup_listing_unless(&self, instance_guid: &str, known: Option<i64>) -> StoreResult<ListingRead>;
    /// The listing and the rest of what the Backups page shows, as one read: its
    /// restores, its backup settings (`defaults` when it has none of its own) and
    /// the number of its nodes.
    async fn backups_overview(&self, instance_guid: &str, defaults: BackupSettings) -> StoreResult<BackupsOverview> {
        match self.backups_overview_unless(instance_guid, None, defaults).await? {
            OverviewRead::Changed(overview) => Ok(overview),
            OverviewRead::Unchanged(_) => {
                Err(StoreError::Other(anyhow::anyhow!("an overview read as unchanged from none")))
            }
        }
    }
    /// [`Self::backups_overview`], or only the instance when the listing's version
    /// (which the page's restores, settings and nodes move on too) is still
    /// `known`.
    async fn backups_overview_unless(
        &self,
        instance_guid: &str,
        known: Option<i64>,
        defaults: BackupSettings,
    ) -> StoreResult<OverviewRead>;
    /// Records what was stored; the caller then finishes the job.
    async fn record_backup_object(&self, id: i64, size: i64, sha256: &str, plain_size: i64) -> StoreResult<()>;
    /// Records where the pieces of a backup's object lie (JSON the server writes and
    /// reads), before the backup is done.
    async fn record_backup_layout(&self, id: i64, layout: &str) -> StoreResult<()>;
    /// The layout recorded for a backup, if any.
    async fn backup_layout(&self, id: i64) -> StoreResult<Option<String>>;

    /// Records a restore of `backup_id` with one queued job per node, unless a
    /// restore of the instance is queued already (some of its jobs not started):
    /// then `Conflict`, naming it. One write transaction.
    async fn enqueue_restore(&self, instance_id: i64, backup_id: i64, node_indexes: &[i64]) -> StoreResult<Restore>;
    /// Queues a restore of node 0 to `target_time` from the base backup taken with
    /// backup `backup_id`.
    async fn enqueue_point_in_time_restore(
        &self,
        instance_id: i64,
        backup_id: i64,
        target_time: chrono::DateTime<chrono::Utc>,
    ) -> StoreResult<Restore>;
    /// Records the timeline a restore to a point in time left the instance on, and
    /// when the instance began running on it.
    async fn set_restore_timeline(
        &self,
        id: i64,
        timeline: i64,
        forked_at: chrono::DateTime<chrono::Utc>,
    ) -> StoreResult<()>;
    async fn restore(&self, id: i64) -> StoreResult<Restore>;
    async fn restore_by_seq(&self, instance_id: i64, seq: i64) -> StoreResult<Restore>;
    /// Newest first.
    async fn restores(&self, instance_id: i64) -> StoreResult<Vec<Restore>>;

    /// Marks a backup deleted (its object is gone); its metadata stays.
    async fn mark_backup_deleted(&self, id: i64) -> StoreResult<()>;
    /// Whether a queued or running restore reads this backup.
    async fn backup_in_use(&self, id: i64) -> StoreResult<bool>;

    /// The last schedule slot the instance was backed up for.
    async fn last_scheduled_slot(&self, instance_id: i64) -> StoreResult<Option<chrono::DateTime<chrono::Utc>>>;
    /// Queues a scheduled backup for `slot` and records the slot, in one transaction;
    /// when a backup of the instance is queued already, only records the slot and
    /// returns that backup.
    async fn enqueue_scheduled_backup(
        &self,
        new: NewBackup,
        slot: chrono::DateTime<chrono::Utc>,
    ) -> StoreResult<BackupRequest>;

    /// The instance's backup settings; `defaults` when none were ever set.
    async fn backup_settings(&self, instance_id: i64, defaults: BackupSettings) -> StoreResult<BackupSettings>;
    /// Stores the settings and, when given, a new personal key, in one transaction.
    async fn update_backup_settings(
        &self,
        instance_id: i64,
        settings: BackupSettings,
        sealed_personal_key: Option<&str>,
    ) -> StoreResult<()>;
}

/// Local users, their grants and API tokens.
#[async_trait]
pub trait UserStore: Send + Sync {
    async fn create_user(&self, name: &str) -> StoreResult<User>;
    async fn user_by_name(&self, name: &str) -> StoreResult<User>;
    async fn list_users(&self) -> StoreResult<Vec<User>>;
    /// Grants a role on a tenant (or one subtenant); granting again changes the role.
    async fn grant(&self, user_id: i64, tenant_id: &str, subtenant_id: Option<&str>, role: Role) -> StoreResult<()>;
    /// Removes the user's grant on one subtenant, or with `None` every grant on the
    /// tenant (the whole tenant's and its subtenants'); returns how many there were.
    async fn revoke_grants(&self, user_id: i64, tenant_id: &str, subtenant_id: Option<&str>) -> StoreResult<u64>;
    async fn set_password_hash(&self, user_id: i64, password_hash: &str) -> StoreResult<()>;
    async fn grants(&self, user_id: i64) -> StoreResult<Vec<Grant>>;
    /// Stores a token's hash; `expires_at: None` makes a token that does not expire.
    async fn create_token(
        &self,
        user_id: i64,
        token_hash: &str,
        expires_at: Option<chrono::DateTime<chrono::Utc>>,
    ) -> StoreResult<Token>;
    /// The token with this hash, its user and the user's grants, if the token has
    /// not expired.
    async fn token_by_hash(&self, token_hash: &str) -> StoreResult<(Token, User, Vec<Grant>)>;
    /// Every token (expired ones too), or the user's, oldest first.
    async fn list_tokens(&self, user_id: Option<i64>) -> StoreResult<Vec<Token>>;
    /// Deletes a token and ends the sessions made from it, in one transaction;
    /// `NotFound` when there is no such token.
    async fn revoke_token(&self, id: i64) -> StoreResult<Revoked>;
    /// Deletes every token of the user and ends the sessions made from them.
    async fn revoke_user_tokens(&self, user_id: i64) -> StoreResult<Revoked>;
}

/// Sign-in sessions and the single sign-on flows that lead to them.
#[async_trait]
pub trait SessionStore: Send + Sync {
    /// Records a session. One made from a bearer token evicts that token's oldest
    /// sessions beyond its `max_sessions`, in the same transaction.
    async fn create_session(&self, new: NewSession) -> StoreResult<Session>;
    /// The session with this cookie hash, if it is within `limits` and its
    /// credential has not expired.
    async fn session_by_token_hash(&self, token_hash: &str, limits: SessionLimits) -> StoreResult<Session>;
    /// Marks the session used now; new provider tokens and claims replace the old when given.
    async fn touch_session(&self, id: i64, sealed_tokens: Option<&str>, claims: Option<&str>) -> StoreResult<()>;
    async fn delete_session(&self, id: i64) -> StoreResult<()>;
    /// Removes sessions outside `limits` or past their credential's expiry, and login
    /// flows begun before `limits.active_since`; returns how many sessions went.
    async fn delete_stale_sessions(&self, limits: SessionLimits) -> StoreResult<u64>;

    async fn create_login_flow(&self, flow: LoginFlow) -> StoreResult<()>;
    /// Removes and returns the flow: a `state` is good for one callback.
    async fn take_login_flow(&self, state_hash: &str) -> StoreResult<LoginFlow>;
}

/// The append-only audit log.
#[async_trait]
pub trait AuditStore: Send + Sync {
    async fn append_audit(&self, entry: NewAuditEntry) -> StoreResult<AuditEntry>;
    /// Newest first; only this instance's entries when given.
    async fn audit_entries(&self, instance_guid: Option<&str>, limit: i64) -> StoreResult<Vec<AuditEntry>>;
}

/// Everything svcdash keeps.
/// The write-ahead log of instances that archive it continuously.
#[async_trait]
pub trait ArchiveStore: Send + Sync {
    /// Records a segment whose object is complete in the backup store; a segment of
    /// the same name recorded before is kept (the caller compared them).
    async fn record_wal_segment(&self, segment: &WalSegment) -> StoreResult<()>;
    /// Records a file in place of the one of the same name (whose object the new
    /// one's overwrote): a history file of a timeline nothing went on with, say.
    async fn replace_wal_segment(&self, segment: &WalSegment) -> StoreResult<()>;
    async fn wal_segment(&self, instance_id: i64, name: &str) -> StoreResult<Option<WalSegment>>;
    /// Every segment of the instance, by name (so by timeline, then position).
    async fn wal_segments(&self, instance_id: i64) -> StoreResult<Vec<WalSegment>>;
    /// The segment archived last.
    async fn last_wal_segment(&self, instance_id: i64) -> StoreResult<Option<WalSegment>>;
    /// Records a base backup whose object is complete in the store.
    async fn record_base_backup(&self, base: &BaseBackup) -> StoreResult<()>;
    /// The instance's base backups whose backups are not deleted, oldest first.
    async fn base_backups(&self, instance_id: i64) -> StoreResult<Vec<BaseBackup>>;
    async fn base_backup(&self, backup_id: i64) -> StoreResult<Option<BaseBackup>>;
    /// Forgets the segments named (their objects are gone).
    async fn forget_wal_segments(&self, instance_id: i64, names: &[String]) -> StoreResult<()>;
}

pub trait Store: InstanceStore + JobStore + BackupStore + ArchiveStore + UserStore + SessionStore + AuditStore {}
impl<T: InstanceStore + JobStore + BackupStore + ArchiveStore + UserStore + SessionStore + AuditStore> Store for T {}
