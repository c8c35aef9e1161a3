//! PostgreSQL: one cluster per node, one application database owned by a NOLOGIN
//! role. Bound users are members of that role, so whatever they create belongs to
//! the database owner and survives their unbinding and a restore.
//!
//! Only svcdash's admin role is a superuser, and it never runs a tenant's code:
//! dumps and restores run the tenant's functions (a CHECK constraint, an index
//! expression, a trigger), so they connect as roles of their own with the least
//! rights that work. `svcdash_backup` reads everything (`pg_read_all_data`, row
//! security bypassed) and may not write; `svcdash_restore` loads as the database
//! owner role (`--role app_owner`, `--no-owner --no-privileges`): every restored
//! object belongs to `app_owner`, grants are not replayed (every binding has the
//! owner role's rights anyway). Their passwords are made for one job and cleared
//! after it.
//!
//! A cluster instance runs its nodes under pg_auto_failover ([`keeper`]): streaming
//! replicas, a monitor beside node 0, and bindings that name every node so libpq
//! finds the primary after a failover.

mod archive;
mod keeper;
mod parallel;
mod pitr;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, bail};
use async_trait::async_trait;
use futures::FutureExt;
use nix::sys::signal::Signal;
use secrecy::ExposeSecret;
use sqlx::postgres::PgConnectOptions;
use sqlx::{AssertSqlSafe, ConnectOptions, Connection, PgConnection};
use tokio::process::{Child, Command};
use tokio::task::JoinHandle;

use crate::engine::{
    BackupPieces, BackupStream, BaseBackupStream, ClusterKind, Companion, Engine, LayoutTap, Node, NodeControl,
    RecoveryTarget, Replication, RestoreSink, Role, StagedRestore, StartMode, WalPosition,
};
use crate::{AppCredentials, NodeLayout, NodeSpec, Tools, files, process};

/// The application database and the role that owns it.
pub const DATABASE: &str = "app";
const OWNER: &str = "app_owner";
/// Where a restore loads before it replaces the application database.
const STAGING: &str = "app_restore";
const REPLACED: &str = "app_replaced";
/// The role dumps connect as: reads everything, changes nothing.
const BACKUP_ROLE: &str = "svcdash_backup";
/// The role restores connect as: a member of the owner role, nothing more.
const RESTORE_ROLE: &str = "svcdash_restore";
/// The role base backups connect as: replication, nothing else.
const BASE_BACKUP_ROLE: &str = "svcdash_basebackup";

pub struct Postgres;

#[async_trait]
impl Engine for Postgres {
    fn name(&self) -> &'static str {
        "postgresql"
    }

    fn short_name(&self) -> &'static str {
        "pg"
    }

    async fn version(&self, tools: &Tools) -> anyhow::Result<String> {
        // "postgres (PostgreSQL) 15.14 (Debian 15.14-0+deb12u1)"
        let out = process::version_output(&tools.find(self, "postgres")?, "--version").await?;
        out.split_whitespace().nth(2).map(str::to_owned).context("postgres --version said nothing")
    }

    fn programs(&self) -> &'static [&'static str] {
        &["initdb", "postgres", "pg_dump", "pg_restore", "pg_basebackup"]
    }

    fn package(&self) -> &'static str {
        "postgresql"
    }

    fn program_dirs(&self) -> Vec<PathBuf> {
        crate::tools::versioned_dirs("/usr/lib/postgresql")
    }

    fn process_names(&self) -> &'static [&'static str] {
        &["postgres", "pg_autoctl"]
    }

    fn cluster_ports(&self) -> &'static [&'static str] {
        &["monitor"]
    }

    fn cluster_kind(&self) -> Option<ClusterKind> {
        Some(ClusterKind::MasterOnly)
    }

    async fn role(&self, node: &Node<'_>) -> anyhow::Result<Role> {
        if !node.spec.is_clustered() {
            return Ok(Role::Primary);
        }
        Ok(if in_recovery(node.spec, node.spec.port).await? { Role::Replica } else { Role::Primary })
    }

    /// A replica is in step once its walreceiver streams from the primary.
    async fn in_sync(&self, node: &Node<'_>) -> anyhow::Result<bool> {
        if !node.spec.is_clustered() {
            return Ok(true);
        }
        // A keeper that has just made its node restarts its own services before it
        // reports a settled state, and may stop on the way (its supervisor gives up
        // on a service that exits five times in a second): until then the node is
        // not part of the cluster, whatever its server does.
        let Some((reported, goal)) = keeper::states(node.spec).await? else { return Ok(false) };
        if !in_recovery(node.spec, node.spec.port).await? {
            return Ok(reported == goal);
        }
        if (reported.as_str(), goal.as_str()) != ("secondary", "secondary") {
            return Ok(false);
        }
        let mut conn = connect(node.spec, "postgres").await?;
        let status: Option<String> =
            sqlx::query_scalar("SELECT status FROM pg_stat_wal_receiver").fetch_optional(&mut conn).await?;
        conn.close().await?;
        Ok(status.as_deref() == Some("streaming"))
    }

    /// A primary's figures are the most any replica is behind in replay; a
    /// replica's, what it received but has not replayed and the seconds since it
    /// last heard from its primary.
    async fn replication(&self, node: &Node<'_>) -> anyhow::Result<Option<Replication>> {
        if !node.spec.is_clustered() {
            return Ok(None);
        }
        let mut conn = connect(node.spec, "postgres").await?;
        let replica: bool = sqlx::query_scalar("SELECT pg_is_in_recovery()").fetch_one(&mut conn).await?;
        let (bytes, seconds): (Option<f64>, Option<f64>) = if replica {
            sqlx::query_as(
                "SELECT pg_wal_lsn_diff(pg_last_wal_receive_lsn(), pg_last_wal_replay_lsn())::float8, \
                 (SELECT extract(epoch FROM now() - last_msg_receipt_time)::float8 FROM pg_stat_wal_receiver)",
            )
            .fetch_one(&mut conn)
            .await?
        } else {
            sqlx::query_as(
                "SELECT max(pg_wal_lsn_diff(pg_current_wal_lsn(), replay_lsn))::float8, \
                 max(extract(epoch FROM replay_lag))::float8 FROM pg_stat_replication",
            )
            .fetch_one(&mut conn)
            .await?
        };
        conn.close().await?;
        Ok(Some(Replication {
            role: if replica { Role::Replica } else { Role::Primary },
            lag_bytes: bytes.map(|b| b.max(0.0) as u64),
            lag_seconds: seconds.map(|s| s.max(0.0).round() as u64),
            members: None,
        }))
    }

    async fn switchover(&self, node: &Node<'_>) -> anyhow::Result<()> {
        keeper::switchover(node).await
    }

    async fn promote(&self, node: &Node<'_>) -> anyhow::Result<()> {
        keeper::promote(node).await
    }

    fn companions(&self, node: &Node<'_>) -> anyhow::Result<Vec<Companion>> {
        keeper::companions(node)
    }

    async fn companion_started(&self, node: &Node<'_>, stopped: &[i64]) -> anyhow::Result<()> {
        keeper::hold_candidates(node, stopped).await
    }

    async fn server_started(&self, node: &Node<'_>, stopped: &[i64]) -> anyhow::Result<()> {
        if stopped.is_empty() { keeper::release_candidates(node).await } else { Ok(()) }
    }

    fn stop_signal(&self) -> Signal {
        // "Fast" shutdown: roll back open transactions, checkpoint, exit.
        Signal::SIGINT
    }

    fn discard_signal(&self) -> Signal {
        // "Immediate" shutdown: no checkpoint writing out buffers of data that is
        // about to be replaced (half a second and more on a busy server). Data that
        // is put back after a failed switch recovers from its log, as after a crash.
        Signal::SIGQUIT
    }

    /// A cluster node's keeper's when it has one (the keeper starts its server
    /// again when the server alone is stopped), else the server's.
    fn pid_file(&self, layout: &NodeLayout) -> PathBuf {
        let keeper = keeper::pid_file(&layout.run_dir(), &keeper::pgdata(layout));
        if files::read_small(&keeper).is_some() {
            return keeper;
        }
        layout.data_dir().join("postmaster.pid")
    }

    fn backup_extension(&self) -> &'static str {
        "dump"
    }

    fn backup_contents(&self) -> &'static str {
        "the application database in the custom format of pg_dump (schema, data, large objects); roles and \
         their passwords are not part of it"
    }

    fn archives_wal(&self) -> bool {
        true
    }

    async fn base_backup(&self, node: &Node<'_>) -> anyhow::Result<BaseBackupStream> {
        pitr::base_backup(node).await
    }

    async fn wal_position(&self, node: &Node<'_>) -> anyhow::Result<WalPosition> {
        pitr::wal_position(node.spec).await
    }

    async fn close_wal(&self, node: &Node<'_>) -> anyhow::Result<()> {
        pitr::close_wal(node.spec).await
    }

    async fn seal_wal(&self, node: &Node<'_>) -> anyhow::Result<String> {
        pitr::seal_wal(node.spec).await
    }

    async fn begin_point_in_time_restore(
        &self,
        node: &Node<'_>,
        target: &RecoveryTarget,
    ) -> anyhow::Result<RestoreSink> {
        pitr::begin(node, target).await
    }

    /// Creates the cluster unless it exists already (so a resumed provision is safe).
    async fn init(&self, node: &Node<'_>) -> anyhow::Result<()> {
        if node.spec.is_clustered() {
            return keeper::init(node).await;
        }
        initdb(node, &node.layout.data_dir()).await
    }

    fn start_command(&self, node: &Node<'_>, _mode: StartMode) -> anyhow::Result<Command> {
        if node.spec.is_clustered() {
            return keeper::start_command(node);
        }
        server_command(node, &node.layout.data_dir(), node.spec.port)
    }

    async fn is_ready(&self, node: &Node<'_>) -> bool {
        match connect(node.spec, "postgres").await {
            Ok(conn) => {
                let _ = conn.close().await;
                true
            }
            Err(_) => false,
        }
    }

    /// Creates the owner role and the application database if missing; on a
    /// cluster's replica there is nothing to do (it has the primary's).
    async fn setup(&self, node: &Node<'_>) -> anyhow::Result<()> {
        let spec = node.spec;
        if spec.is_clustered() {
            keeper::configure(node).await?;
            if in_recovery(spec, spec.port).await? {
                return Ok(());
            }
            keeper::set_role_passwords(node).await?;
        }
        let mut conn = connect(spec, "postgres").await?;
        let role: Option<i32> = sqlx::query_scalar("SELECT 1 FROM pg_roles WHERE rolname = $1")
            .bind(OWNER)
            .fetch_optional(&mut conn)
            .await?;
        if role.is_none() {
            exec(&mut conn, format!("CREATE ROLE {OWNER} NOLOGIN")).await?;
        }
        let db: Option<i32> = sqlx::query_scalar("SELECT 1 FROM pg_database WHERE datname = $1")
            .bind(DATABASE)
            .fetch_optional(&mut conn)
            .await?;
        if db.is_none() {
            exec(&mut conn, format!("CREATE DATABASE {DATABASE} OWNER {OWNER}")).await?;
        }
        // Bound users reach the application database only: the others are svcdash's.
        exec(
            &mut conn,
            "REVOKE ALL ON DATABASE postgres FROM PUBLIC; REVOKE ALL ON DATABASE template1 FROM PUBLIC".into(),
        )
        .await?;
        conn.close().await?;
        // PostgreSQL 15 no longer lets every role create in `public`; the owner role needs it.
        let mut conn = connect(spec, DATABASE).await?;
        exec(&mut conn, format!("ALTER SCHEMA public OWNER TO {OWNER}")).await?;
        conn.close().await?;
        Ok(())
    }

    async fn create_user(&self, node: &Node<'_>, username: &str, password: &str) -> anyhow::Result<AppCredentials> {
        let spec = node.spec;
        crate::check_identifier(username)?;
        crate::check_identifier(password)?;
        let mut conn = connect(spec, "postgres").await?;
        ensure_user(&mut conn, username, password).await?;
        conn.close().await?;
        self.credentials(spec, username, password)
    }

    /// For a cluster, a libpq multi-host URI of every node that connects only
    /// to the one taking writes, so clients follow a failover with the same
    /// credentials; `hosts` lists the nodes for clients that take them apart.
    fn credentials(&self, spec: &NodeSpec, username: &str, password: &str) -> anyhow::Result<AppCredentials> {
        let mut extra = serde_json::Map::new();
        let uri = if spec.is_clustered() {
            let hosts = spec.host_ports();
            extra.insert("hosts".into(), spec.hosts_field());
            format!("postgres://{username}:{password}@{}/{DATABASE}?target_session_attrs=read-write", hosts.join(","))
        } else {
            format!("postgres://{username}:{password}@127.0.0.1:{}/{DATABASE}", spec.port)
        };
        Ok(AppCredentials {
            host: "127.0.0.1".into(),
            port: spec.port,
            username: username.into(),
            password: password.into(),
            database: Some(DATABASE.into()),
            uri,
            extra,
        })
    }

    async fn delete_user(&self, node: &Node<'_>, username: &str) -> anyhow::Result<()> {
        crate::check_identifier(username)?;
        let mut conn = connect(node.spec, "postgres").await?;
        sqlx::query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = $1")
            .bind(username)
            .execute(&mut conn)
            .await?;
        exec(&mut conn, format!("DROP ROLE IF EXISTS {username}")).await?;
        conn.close().await?;
        Ok(())
    }

    /// `pg_dump` of the application database in the custom format, uncompressed
    /// (svcdash compresses), as `svcdash_backup`, whose password ends with the dump.
    /// On a cluster's replica the role is given its password on the primary (a
    /// replica takes no writes), and the dump waits until the replica has that.
    async fn backup(&self, node: &Node<'_>) -> anyhow::Result<BackupStream> {
        let spec = node.spec;
        let writer = match spec.is_clustered() && in_recovery(spec, spec.port).await? {
            true => primary_port(spec).await?,
            false => spec.port,
        };
        let password = job_role_at(spec, writer, BACKUP_ROLE).await?;
        if writer != spec.port {
            wait_replayed(spec, writer).await?;
        }
        let estimated_size = table_bytes(spec).await.ok();
        let mut cmd = client_command(node, "pg_dump", BACKUP_ROLE, &password)?;
        cmd.args(["--format=custom", "--compress=0", "--dbname", DATABASE]);
        let spec = spec.clone();
        let (reader, done) = process::stream_stdout(cmd, "pg_dump")?;
        let done = async move {
            let result = done.await;
            end_job_role_at(&spec, writer, BACKUP_ROLE).await;
            result
        };
        Ok(BackupStream { reader: Box::new(reader), done: done.boxed(), estimated_size, layout: Some(layout_tap()) })
    }

    /// Creates an empty staging database and starts `pg_restore` into it; the
    /// application database is not touched until the commit.
    async fn begin_restore(&self, node: &Node<'_>) -> anyhow::Result<RestoreSink> {
        let spec = node.spec;
        new_staging(spec).await?;
        let password = job_role(spec, RESTORE_ROLE).await?;
        let mut cmd = client_command(node, "pg_restore", RESTORE_ROLE, &password)?;
        // The tenant's functions run during the load (constraints, index expressions):
        // as the owner role, never as a superuser, and ownership and grants of the dump
        // are not replayed (they could name roles that no longer exist).
        cmd.args(["--exit-on-error", "--single-transaction", "--no-owner", "--no-privileges"])
            .args(["--role", OWNER, "--dbname", STAGING])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().context("starting pg_restore")?;
        let stdin = child.stdin.take().context("pg_restore has no stdin")?;
        process::widen_pipe(&stdin);
        let stderr = process::collect_tail(child.stderr.take().context("pg_restore has no stderr")?);
        Ok(RestoreSink { writer: Box::new(stdin), staged: Box::new(Restore { child, stderr }) })
    }

    /// Loads the archive's tables and builds its indexes several at once
    /// ([`parallel`]) into an empty staging database.
    async fn begin_parallel_restore(
        &self,
        node: &Node<'_>,
        layout: &serde_json::Value,
        pieces: Arc<dyn BackupPieces>,
    ) -> anyhow::Result<Option<Box<dyn StagedRestore>>> {
        let Ok(layout) = serde_json::from_value::<archive::ArchiveLayout>(layout.clone()) else {
            return Ok(None);
        };
        let spec = node.spec;
        new_staging(spec).await?;
        let password = job_role(spec, RESTORE_ROLE).await?;
        match parallel::load(node, &layout, pieces, &password, parallel::loaders()).await {
            Ok(()) => Ok(Some(Box::new(Loaded))),
            Err(e) => {
                end_job_role(spec, RESTORE_ROLE).await;
                drop_staging(spec).await;
                Err(e)
            }
        }
    }
}

/// An empty staging database, owned by the owner role.
async fn new_staging(spec: &NodeSpec) -> anyhow::Result<()> {
    let mut conn = connect(spec, "postgres").await?;
    exec(&mut conn, format!("DROP DATABASE IF EXISTS {STAGING} WITH (FORCE)")).await?;
    exec(&mut conn, format!("CREATE DATABASE {STAGING} OWNER {OWNER} TEMPLATE template0 ENCODING 'UTF8'")).await?;
    conn.close().await?;
    Ok(())
}

/// Notes where the dump's tables lie as it streams past.
fn layout_tap() -> LayoutTap {
    let scanner = Arc::new(Mutex::new(archive::Scanner::new()));
    let finish = {
        let scanner = scanner.clone();
        move || {
            let scanner = std::mem::take(&mut *scanner.lock().unwrap_or_else(|p| p.into_inner()));
            match scanner.finish() {
                Ok(layout) => serde_json::to_value(layout).ok(),
                Err(why) => {
                    tracing::warn!(why, "the dump's layout was not made out; it will restore as one stream");
                    None
                }
            }
        }
    };
    LayoutTap { tap: Box::new(ScannerTap(scanner)), finish: Box::new(finish) }
}

struct ScannerTap(Arc<Mutex<archive::Scanner>>);

impl std::io::Write for ScannerTap {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).observe(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Makes a cluster in `data` unless one is there (removing what an interrupted
/// `initdb` left), its superuser the node's admin role with scram everywhere.
async fn initdb(node: &Node<'_>, data: &Path) -> anyhow::Result<()> {
    let (layout, spec) = (node.layout, node.spec);
    if files::read_small(&data.join("PG_VERSION")).is_some() {
        return Ok(());
    }
    let (_, engine) = crate::layout::owners(node.run_as);
    if std::fs::read_dir(data).is_ok_and(|mut entries| entries.next().is_some()) {
        if data == layout.data_dir() {
            files::remove_tree(data).context("removing an incomplete cluster")?;
            layout.prepare(node.run_as)?;
        } else {
            // Inside the engine's own folder (a cluster node's): removed as the engine.
            keeper::remove(node, data).await.context("removing an incomplete cluster")?;
        }
    }
    let pwfile = layout.system().join("initdb.pw");
    files::write_new(&pwfile, spec.admin_password.expose_secret().as_bytes(), engine, 0o600)?;
    let mut cmd = node.command("initdb")?;
    cmd.arg("-D")
        .arg(data)
        .args(["--username", &spec.admin_user, "--auth", "scram-sha-256", "--encoding", "UTF8", "--locale", "C"])
        .arg(format!("--pwfile={}", pwfile.display()));
    let result = process::run(cmd, "initdb").await;
    let _ = std::fs::remove_file(&pwfile);
    result.map(|_| ())
}

/// The server on `data`, listening on `port` of the loopback only, archiving when
/// the instance archives.
fn server_command(node: &Node<'_>, data: &Path, port: u16) -> anyhow::Result<Command> {
    let mut cmd = node.command("postgres")?;
    cmd.arg("-D")
        .arg(data)
        .arg("-c")
        .arg(format!("port={port}"))
        .args(["-c", "listen_addresses=127.0.0.1"])
        // TCP only: a socket path under a deep data folder can pass the 107-byte limit.
        .args(["-c", "unix_socket_directories="])
        .args(["-c", "logging_collector=off"])
        // A single server waits for no replica and keeps no log for one, whatever
        // data it runs on: data restored from a cluster's base backup names the
        // cluster's standbys (every commit would wait for them forever) and carries
        // pg_auto_failover's `wal_keep_size` of 8 GB.
        .args(["-c", "synchronous_standby_names=", "-c", "wal_keep_size=0"]);
    if let Some(archive) = &node.spec.archive {
        // PostgreSQL runs the command with the data folder as working directory
        // (%p is relative to it) and removes a file only after it exited 0,
        // which `wal-push` does once svcdash has the file in the backup store.
        let command =
            format!("{} wal-push {} %p %f", archive_quote(&archive.client)?, crate::layout::ARCHIVE_SOCKET_FROM_DATA);
        cmd.args(["-c", "archive_mode=on"])
            .arg("-c")
            .arg(format!("archive_command={command}"))
            .arg("-c")
            .arg(format!("archive_timeout={}", archive.timeout_secs));
    }
    Ok(cmd)
}

/// A path as one word of `archive_command`, which a shell runs after PostgreSQL
/// replaced its `%` escapes: single-quoted, so only `'` and `%` cannot be in it.
fn archive_quote(path: &std::path::Path) -> anyhow::Result<String> {
    let text = path.to_str().with_context(|| format!("{} is not UTF-8", path.display()))?;
    if text.contains(['\'', '%', '\n']) {
        anyhow::bail!("{text:?} cannot be part of PostgreSQL's archive_command");
    }
    Ok(format!("'{text}'"))
}

fn options(spec: &NodeSpec, database: &str) -> PgConnectOptions {
    options_at(spec, spec.port, database)
}

/// Options for the node of the same cluster listening on `port` (the cluster's
/// nodes share the admin password).
fn options_at(spec: &NodeSpec, port: u16, database: &str) -> PgConnectOptions {
    PgConnectOptions::new()
        .host("127.0.0.1")
        .port(port)
        .username(&spec.admin_user)
        .password(spec.admin_password.expose_secret())
        .database(database)
        // Statements carry passwords (CREATE ROLE ... PASSWORD): never logged.
        .disable_statement_logging()
}

async fn connect(spec: &NodeSpec, database: &str) -> anyhow::Result<PgConnection> {
    connect_at(spec, spec.port, database).await
}

async fn connect_at(spec: &NodeSpec, port: u16, database: &str) -> anyhow::Result<PgConnection> {
    // A node that lost its machine may not answer at all: bounded, so a cluster's
    // jobs go on to the next node.
    tokio::time::timeout(Duration::from_secs(10), PgConnection::connect_with(&options_at(spec, port, database)))
        .await
        .map_err(|_| anyhow::anyhow!("PostgreSQL on port {port} did not answer within 10 s"))?
        .with_context(|| format!("connecting to PostgreSQL on port {port}"))
}

/// Bytes of the application's tables (with their TOAST, without indexes): about
/// what a dump of their rows holds.
async fn table_bytes(spec: &NodeSpec) -> anyhow::Result<u64> {
    let mut conn = connect(spec, DATABASE).await?;
    let bytes: i64 = sqlx::query_scalar(
        "SELECT COALESCE(sum(pg_table_size(c.oid)), 0)::bigint FROM pg_class c \
         JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE c.relkind IN ('r', 'm', 'p') AND n.nspname NOT IN ('pg_catalog', 'information_schema')",
    )
    .fetch_one(&mut conn)
    .await?;
    conn.close().await?;
    Ok(u64::try_from(bytes).unwrap_or(0))
}

async fn in_recovery(spec: &NodeSpec, port: u16) -> anyhow::Result<bool> {
    let mut conn = connect_at(spec, port, "postgres").await?;
    let replica: bool = sqlx::query_scalar("SELECT pg_is_in_recovery()").fetch_one(&mut conn).await?;
    conn.close().await?;
    Ok(replica)
}

/// The port of the cluster's node taking writes now, asked of the nodes themselves.
async fn primary_port(spec: &NodeSpec) -> anyhow::Result<u16> {
    for peer in &spec.peers {
        if let Ok(false) = in_recovery(spec, peer.port).await {
            return Ok(peer.port);
        }
    }
    bail!("no node of the cluster answers as its primary now (a failover may be under way)")
}

/// Waits until the replica `spec` has replayed everything the primary on
/// `primary` had written when this was called.
async fn wait_replayed(spec: &NodeSpec, primary: u16) -> anyhow::Result<()> {
    let mut conn = connect_at(spec, primary, "postgres").await?;
    let target: String = sqlx::query_scalar("SELECT pg_current_wal_lsn()::text").fetch_one(&mut conn).await?;
    conn.close().await?;
    let mut conn = connect(spec, "postgres").await?;
    let started = std::time::Instant::now();
    loop {
        let behind: Option<f64> =
            sqlx::query_scalar("SELECT pg_wal_lsn_diff($1::pg_lsn, pg_last_wal_replay_lsn())::float8")
                .bind(&target)
                .fetch_one(&mut conn)
                .await?;
        if behind.is_some_and(|b| b <= 0.0) {
            break;
        }
        anyhow::ensure!(
            started.elapsed() < Duration::from_secs(60),
            "the replica on port {} did not replay the primary's log within 60 s",
            spec.port
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    conn.close().await?;
    Ok(())
}

/// Creates or resets an application's user: a member of the owner role, acting as it.
async fn ensure_user(conn: &mut PgConnection, username: &str, password: &str) -> anyhow::Result<()> {
    crate::check_identifier(username)?;
    crate::check_identifier(password)?;
    let exists: Option<i32> = sqlx::query_scalar("SELECT 1 FROM pg_roles WHERE rolname = $1")
        .bind(username)
        .fetch_optional(&mut *conn)
        .await?;
    let verb = if exists.is_some() { "ALTER" } else { "CREATE" };
    exec(conn, format!("{verb} ROLE {username} LOGIN PASSWORD '{password}'")).await?;
    exec(conn, format!("GRANT {OWNER} TO {username}; ALTER ROLE {username} SET role = '{OWNER}'")).await?;
    Ok(())
}

/// Runs statements built only from this module's constants and checked identifiers.
async fn exec(conn: &mut PgConnection, sql: String) -> sqlx::Result<()> {
    sqlx::raw_sql(AssertSqlSafe(sql)).execute(conn).await.map(|_| ())
}

/// A client program connecting as `role` with a password made for this job. It runs
/// as the engine's account, not as svcdash's: a client talks to a server a tenant's
/// code runs in.
fn client_command(node: &Node<'_>, program: &str, role: &str, password: &str) -> anyhow::Result<Command> {
    let mut cmd = node.command(program)?;
    cmd.args(["--host", "127.0.0.1", "--port", &node.spec.port.to_string(), "--username", role])
        .arg("--no-password")
        .env("PGPASSWORD", password)
        .env("PGCONNECT_TIMEOUT", "10")
        .kill_on_drop(true);
    Ok(cmd)
}

/// Gives a job role (`svcdash_backup`, `svcdash_restore`) a new password and the
/// rights it needs, creating it if missing; returns the password.
async fn job_role(spec: &NodeSpec, role: &str) -> anyhow::Result<String> {
    job_role_at(spec, spec.port, role).await
}

/// [`job_role`] on the node listening on `port`.
async fn job_role_at(spec: &NodeSpec, port: u16, role: &str) -> anyhow::Result<String> {
    let (attributes, member_of) = match role {
        BACKUP_ROLE => ("NOREPLICATION BYPASSRLS", Some(format!("pg_read_all_data, {OWNER}"))),
        RESTORE_ROLE => ("NOREPLICATION NOBYPASSRLS", Some(OWNER.to_owned())),
        BASE_BACKUP_ROLE => ("REPLICATION NOBYPASSRLS", None),
        other => bail!("{other:?} is not a job role"),
    };
    let grant = member_of.map(|roles| format!("; GRANT {roles} TO {role}")).unwrap_or_default();
    let password = crate::generate_secret(32);
    let mut conn = connect_at(spec, port, "postgres").await?;
    let exists: Option<i32> =
        sqlx::query_scalar("SELECT 1 FROM pg_roles WHERE rolname = $1").bind(role).fetch_optional(&mut conn).await?;
    let verb = if exists.is_some() { "ALTER" } else { "CREATE" };
    exec(
        &mut conn,
        format!(
            "{verb} ROLE {role} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE {attributes} PASSWORD '{password}'{grant}"
        ),
    )
    .await
    .with_context(|| format!("preparing the role {role}"))?;
    conn.close().await?;
    Ok(password)
}

/// Takes the job role's password away once its job is over.
async fn end_job_role(spec: &NodeSpec, role: &str) {
    end_job_role_at(spec, spec.port, role).await
}

async fn end_job_role_at(spec: &NodeSpec, port: u16, role: &str) {
    let result = async {
        let mut conn = connect_at(spec, port, "postgres").await?;
        exec(&mut conn, format!("ALTER ROLE {role} PASSWORD NULL")).await?;
        conn.close().await?;
        anyhow::Ok(())
    }
    .await;
    if let Err(e) = result {
        tracing::warn!(role, error = format!("{e:#}"), "could not clear a job role's password");
    }
}

/// A load in progress into the staging database.
struct Restore {
    child: Child,
    stderr: JoinHandle<String>,
}

#[async_trait]
impl StagedRestore for Restore {
    /// Waits for `pg_restore`, then swaps the staging database in for the
    /// application database ([`swap_in_staging`]).
    async fn commit(self: Box<Self>, node: &Node<'_>, _control: &dyn NodeControl) -> anyhow::Result<()> {
        let spec = node.spec;
        let loaded = process::finish(self.child, self.stderr, "pg_restore").await;
        end_job_role(spec, RESTORE_ROLE).await;
        loaded?;
        swap_in_staging(spec).await
    }

    /// Stops the load and drops the staging database.
    async fn abort(mut self: Box<Self>, node: &Node<'_>) {
        let _ = self.child.kill().await;
        self.stderr.abort();
        end_job_role(node.spec, RESTORE_ROLE).await;
        drop_staging(node.spec).await;
    }
}

/// A staging database loaded in full.
struct Loaded;

#[async_trait]
impl StagedRestore for Loaded {
    async fn commit(self: Box<Self>, node: &Node<'_>, _control: &dyn NodeControl) -> anyhow::Result<()> {
        end_job_role(node.spec, RESTORE_ROLE).await;
        swap_in_staging(node.spec).await
    }

    async fn abort(self: Box<Self>, node: &Node<'_>) {
        end_job_role(node.spec, RESTORE_ROLE).await;
        drop_staging(node.spec).await;
    }
}

/// Swaps the staging database in for the application database. Connections are
/// refused for the moment of the swap; the old data is dropped after it.
async fn swap_in_staging(spec: &NodeSpec) -> anyhow::Result<()> {
    let mut conn = connect(spec, "postgres").await?;
    let steps = [
        format!("DROP DATABASE IF EXISTS {REPLACED} WITH (FORCE)"),
        format!("ALTER DATABASE {DATABASE} ALLOW_CONNECTIONS false"),
        format!(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
             WHERE datname IN ('{DATABASE}', '{STAGING}') AND pid <> pg_backend_pid()"
        ),
        format!("ALTER DATABASE {DATABASE} RENAME TO {REPLACED}"),
        format!("ALTER DATABASE {STAGING} RENAME TO {DATABASE}"),
    ];
    for step in &steps {
        // Terminated backends can take a moment to go; retry the renames briefly.
        let mut attempt = 0;
        loop {
            match exec(&mut conn, step.clone()).await {
                Ok(_) => break,
                Err(e) if attempt < 20 && e.to_string().contains("being accessed by other users") => {
                    attempt += 1;
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(e) => return Err(e).with_context(|| format!("switching to the restored database ({step})")),
            }
        }
    }
    conn.close().await?;
    // The restored data serves from here on. Dropping the old database makes the
    // server write out every dirty page first (seconds after a large load): it
    // goes on in the background, and the next restore drops what it left.
    let spec = spec.clone();
    tokio::spawn(async move {
        let dropped = async {
            let mut conn = connect(&spec, "postgres").await?;
            exec(&mut conn, format!("DROP DATABASE IF EXISTS {REPLACED} WITH (FORCE)")).await?;
            conn.close().await?;
            anyhow::Ok(())
        };
        if let Err(e) = dropped.await {
            tracing::warn!(error = format!("{e:#}"), "could not drop the database a restore replaced");
        }
    });
    Ok(())
}

async fn drop_staging(spec: &NodeSpec) {
    match connect(spec, "postgres").await {
        Ok(mut conn) => {
            if let Err(e) = exec(&mut conn, format!("DROP DATABASE IF EXISTS {STAGING} WITH (FORCE)")).await {
                tracing::warn!(error = %e, "could not drop the staging database of a failed restore");
            }
            let _ = conn.close().await;
        }
        Err(e) => tracing::warn!(error = %e, "could not drop the staging database of a failed restore"),
    }
}
