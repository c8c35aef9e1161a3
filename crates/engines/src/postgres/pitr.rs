//! Physical base backups and restores to a point in time (docs/pitr.md).
//!
//! A base backup is `pg_basebackup` over a replication connection as a job role of
//! its own (`REPLICATION`, nothing else), as a tar stream without write-ahead log:
//! the server's `pg_backup_stop` waits until the files the backup needs are
//! archived, so a backup that ended is restorable from the archive.
//!
//! A restore unpacks a base backup into `persistent/pitr`, beside the live data,
//! as the node's account, and starts a second server there on a free port with
//! `recovery.signal`, a `restore_command` that fetches segments through the node's
//! fetch socket, and the target. Once that server promoted, the result is checked,
//! the server stopped and the folders switched (`crate::swap`); until then the
//! live server runs untouched.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, bail, ensure};
use async_trait::async_trait;
use futures::FutureExt;
use nix::sys::signal::Signal;
use secrecy::{ExposeSecret, SecretString};
use sqlx::{Connection, PgConnection};
use tokio::process::Child;
use tokio::task::JoinHandle;

use super::{
    BASE_BACKUP_ROLE, DATABASE, OWNER, archive_quote, client_command, connect, end_job_role, ensure_user, exec,
    job_role, options,
};
use crate::engine::{
    BackupStream, BaseBackupStream, Node, NodeControl, RecoveryTarget, RestoreSink, StagedRestore, StartMode,
    WalPosition,
};
use crate::{NodeLayout, NodeSpec, files, process};

/// How long the staging server may take to stop after it promoted.
const STOP_TIMEOUT: Duration = Duration::from_secs(60);

fn staging_dir(layout: &NodeLayout) -> PathBuf {
    layout.persistent().join("pitr")
}

/// `pg_basebackup` of the whole cluster as a tar stream, uncompressed (svcdash
/// compresses), as the base backup role, whose password ends with the backup.
pub(super) async fn base_backup(node: &Node<'_>) -> anyhow::Result<BaseBackupStream> {
    let start = wal_position(node.spec).await?;
    let password = job_role(node.spec, BASE_BACKUP_ROLE).await?;
    let mut cmd = client_command(node, "pg_basebackup", BASE_BACKUP_ROLE, &password)?;
    cmd.args(["--pgdata=-", "--format=tar", "--wal-method=none", "--checkpoint=fast", "--no-manifest"]);
    let spec = node.spec.clone();
    let (reader, done) = process::stream_stdout(cmd, "pg_basebackup")?;
    let done = async move {
        let result = done.await;
        end_job_role(&spec, BASE_BACKUP_ROLE).await;
        result
    };
    Ok(BaseBackupStream {
        stream: BackupStream { reader: Box::new(reader), done: done.boxed(), estimated_size: None, layout: None },
        start,
    })
}

/// The file being written now; its first eight digits are the timeline.
pub(super) async fn wal_position(spec: &NodeSpec) -> anyhow::Result<WalPosition> {
    let mut conn = connect(spec, "postgres").await?;
    // `pg_walfile_name` names the file before a position on a file boundary (where
    // a switch leaves it): one byte on, it names the file that position is in.
    let file: String =
        sqlx::query_scalar("SELECT pg_walfile_name(pg_current_wal_lsn() + 1)").fetch_one(&mut conn).await?;
    conn.close().await?;
    position(file)
}

fn position(file: String) -> anyhow::Result<WalPosition> {
    let timeline = file.get(..8).and_then(|t| u32::from_str_radix(t, 16).ok());
    let timeline = timeline.with_context(|| format!("{file:?} is not the name of a write-ahead log file"))?;
    Ok(WalPosition { timeline, file })
}

/// `pg_switch_wal()`, which does nothing when nothing was written since the last
/// switch.
pub(super) async fn close_wal(spec: &NodeSpec) -> anyhow::Result<()> {
    let mut conn = connect(spec, "postgres").await?;
    sqlx::query("SELECT pg_switch_wal()").execute(&mut conn).await?;
    conn.close().await?;
    Ok(())
}

/// A transaction that writes a commit record now, then a switch to a new file.
pub(super) async fn seal_wal(spec: &NodeSpec) -> anyhow::Result<String> {
    let mut conn = connect(spec, "postgres").await?;
    let mut tx = conn.begin().await?;
    sqlx::query("SELECT pg_current_xact_id()").execute(&mut *tx).await?;
    tx.commit().await?;
    // The returned position is the end of the closed file: its name is that file's.
    let file: String = sqlx::query_scalar("SELECT pg_walfile_name(pg_switch_wal())").fetch_one(&mut conn).await?;
    conn.close().await?;
    Ok(file)
}

/// Makes the staging folder and starts unpacking into it as the node's account.
pub(super) async fn begin(node: &Node<'_>, target: &RecoveryTarget) -> anyhow::Result<RestoreSink> {
    let staging = staging_dir(node.layout);
    files::remove_tree(&staging)?;
    let (_, engine) = crate::layout::owners(node.run_as);
    files::folder(&staging, engine, 0o700)?;
    let tar = crate::tools::on_path("tar").context("tar was not found on PATH: install the tar package")?;
    let mut cmd = process::command(&tar, node.run_as);
    cmd.arg("--extract")
        .arg("--file=-")
        .arg("--no-same-owner")
        .arg("--directory")
        .arg(&staging)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let mut child = cmd.spawn().context("starting tar")?;
    let stdin = child.stdin.take().context("tar has no stdin")?;
    process::widen_pipe(&stdin);
    let stderr = process::collect_tail(child.stderr.take().context("tar has no stderr")?);
    let staged = PointInTime { child, stderr, target: target.clone() };
    Ok(RestoreSink { writer: Box::new(stdin), staged: Box::new(staged) })
}

/// A base backup being unpacked, and where its replay is to stop.
struct PointInTime {
    child: Child,
    stderr: JoinHandle<String>,
    target: RecoveryTarget,
}

/// `sync --file-system` of the file system `folder` is on, as the node's account
/// (which wrote what is in it): everything written there is on disk once it ends.
fn sync_command(node: &Node<'_>, folder: &Path) -> anyhow::Result<tokio::process::Command> {
    let sync = crate::tools::on_path("sync").context("sync was not found on PATH: install the coreutils package")?;
    let mut cmd = process::command(&sync, node.run_as);
    cmd.arg("--file-system").arg(folder).stdout(Stdio::null()).kill_on_drop(true);
    Ok(cmd)
}

#[async_trait]
impl StagedRestore for PointInTime {
    async fn commit(self: Box<Self>, node: &Node<'_>, control: &dyn NodeControl) -> anyhow::Result<()> {
        let staging = staging_dir(node.layout);
        let replayed = async {
            process::finish(self.child, self.stderr, "tar").await?;
            ensure!(
                files::read_small(&staging.join("backup_label")).is_some(),
                "the base backup has no backup_label; the instance was not changed"
            );
            replay(node, &staging, &self.target).await
        }
        .await;
        if let Err(e) = replayed {
            let _ = files::remove_tree(&staging);
            return Err(e);
        }
        match node.spec.is_clustered() {
            true => crate::swap::swap_in(node.layout, &ClusterNode { node, inner: control }, &staging).await,
            false => crate::swap::swap_in(node.layout, control, &staging).await,
        }
    }

    async fn abort(mut self: Box<Self>, node: &Node<'_>) {
        let _ = self.child.kill().await;
        self.stderr.abort();
        if let Err(e) = files::remove_tree(&staging_dir(node.layout)) {
            tracing::warn!(error = format!("{e:#}"), "could not remove the staging folder of a failed restore");
        }
    }
}

/// Node 0 of a cluster, restored in place: its whole data folder (server, keeper,
/// monitor) is switched for the restored server's, so it stops with its monitor,
/// and starts as the first node of a new formation on the restored data, as a
/// single node becoming a cluster does. Put back, the old folder starts as it was.
/// The other nodes are stopped before and copy it afterwards (the restore job).
struct ClusterNode<'a, 'n> {
    node: &'a Node<'n>,
    inner: &'a dyn NodeControl,
}

#[async_trait]
impl NodeControl for ClusterNode<'_, '_> {
    async fn stop(&self) -> anyhow::Result<()> {
        self.inner.stop().await
    }

    async fn stop_discarding(&self) -> anyhow::Result<()> {
        self.inner.stop().await
    }

    async fn start(&self, mode: StartMode) -> anyhow::Result<()> {
        if mode != StartMode::AfterRestore {
            return self.inner.start(mode).await;
        }
        super::keeper::init(self.node).await?;
        self.inner.start(StartMode::Setup).await?;
        super::keeper::configure(self.node).await?;
        super::keeper::set_role_passwords(self.node).await?;
        super::keeper::wait_settled_primary(self.node).await
    }
}

/// What PostgreSQL says when the archive ends before a commit after the target.
const ENDED_BEFORE_TARGET: &str = "recovery ended before configured recovery target was reached";

/// Runs a server on the staging folder until it reached the target and promoted,
/// checks it, and stops it cleanly.
///
/// Replay stops at the first commit after the target. When the archive the window
/// promised ends before one (the target is just before a gap, and nothing was
/// committed between it and the gap), every commit up to the target was replayed
/// already: replay starts again without the time and promotes at the archive's end,
/// which is the same state.
async fn replay(node: &Node<'_>, staging: &Path, target: &RecoveryTarget) -> anyhow::Result<()> {
    let (_, engine) = crate::layout::owners(node.run_as);
    files::write_new(&staging.join("recovery.signal"), b"", engine, 0o600)?;
    let port = free_port()?;
    // The staging server runs without fsync (see `start_replay`): the unpacked base
    // backup goes to disk while it replays, instead of before (3 s of a 1 GiB
    // restore here), and everything once more after it stopped, before the switch.
    let mut unpacked_to_disk = sync_command(node, staging)?.spawn().context("starting sync")?;
    let mut server = match start_replay(node, staging, port, target, true).await? {
        Replay::Promoted(server) => server,
        Replay::EndedBeforeTarget => {
            tracing::info!("the archive ends before a commit after the target; replaying it to its end");
            match start_replay(node, staging, port, target, false).await? {
                Replay::Promoted(server) => server,
                Replay::EndedBeforeTarget => {
                    bail!("PostgreSQL could not replay the archive; the instance was not changed")
                }
            }
        }
    };
    let result = async {
        let mut conn = PgConnection::connect_with(&replay_options(node.spec, target, DATABASE, port))
            .await
            .context("connecting to the application database of the restored data")?;
        sqlx::query("SELECT count(*) FROM pg_class").execute(&mut conn).await?;
        if target.source_admin_password.is_some() {
            // The data is another instance's: from here on, svcdash reaches it as this node.
            let password = node.spec.admin_password.expose_secret();
            crate::check_identifier(&node.spec.admin_user)?;
            crate::check_identifier(password)?;
            exec(&mut conn, format!("ALTER ROLE {} PASSWORD '{password}'", node.spec.admin_user)).await?;
        }
        set_users(&mut conn, &target.users).await?;
        sqlx::query("CHECKPOINT").execute(&mut conn).await?;
        conn.close().await?;
        stop(&mut server).await
    }
    .await;
    if result.is_err() {
        let _ = server.kill().await;
    }
    result?;
    let _ = unpacked_to_disk.wait().await;
    process::run(sync_command(node, staging)?, "sync --file-system")
        .await
        .context("writing the restored data to disk; the instance was not changed")?;
    Ok(())
}

enum Replay {
    Promoted(Child),
    EndedBeforeTarget,
}

/// Starts the staging server replaying the archive (up to the target's time, or to
/// its end) and waits until it promoted or stopped.
async fn start_replay(
    node: &Node<'_>,
    staging: &Path,
    port: u16,
    target: &RecoveryTarget,
    to_time: bool,
) -> anyhow::Result<Replay> {
    let (svcdash, _) = crate::layout::owners(node.run_as);
    let fetch = format!("{} wal-fetch {} %f %p", archive_quote(&target.client)?, crate::layout::FETCH_SOCKET_FROM_DATA);
    let mut cmd = super::server_command(node, staging, port)?;
    cmd.arg("-c")
        .arg(format!("restore_command={fetch}"))
        .arg("-c")
        .arg(format!("recovery_target_timeline={}", target.timeline))
        // Nothing it writes has to survive a crash of the machine: the restore then
        // failed, and its folder is thrown away. Without fsync it skips syncing the
        // whole folder before it replays, and its checkpoints only write; `replay`
        // syncs the file system once it stopped. No restartpoints either (one per GiB
        // of log by default, and the promotion waits for one under way).
        .args(["-c", "fsync=off", "-c", "max_wal_size=1TB", "-c", "checkpoint_timeout=1d"]);
    if to_time {
        cmd.arg("-c")
            .arg(format!("recovery_target_time={}", target.time.format("%Y-%m-%d %H:%M:%S%.6f+00")))
            .args(["-c", "recovery_target_action=promote"]);
    }
    let log_path = node.layout.log_file("pg-pitr");
    let log = files::append(&log_path, svcdash, 0o640)?;
    let log_start = log.metadata().map(|m| m.len()).unwrap_or(0);
    cmd.stdout(Stdio::from(log.try_clone()?)).stderr(Stdio::from(log)).kill_on_drop(true);
    let mut server = cmd.spawn().context("starting PostgreSQL on the restored data")?;
    tracing::info!(port, timeline = target.timeline, target = %target.time, to_time, "replaying the archive beside the live data");
    loop {
        if let Some(status) = server.try_wait()? {
            let said = read_from(&log_path, log_start);
            if said.contains(ENDED_BEFORE_TARGET) {
                return Ok(Replay::EndedBeforeTarget);
            }
            bail!(
                "PostgreSQL stopped while replaying the archive ({status}); the instance was not changed: {}",
                process::tail(&said)
            );
        }
        if let Ok(mut conn) = PgConnection::connect_with(&replay_options(node.spec, target, "postgres", port)).await {
            let recovering: Option<bool> =
                sqlx::query_scalar("SELECT pg_is_in_recovery()").fetch_one(&mut conn).await.ok();
            let _ = conn.close().await;
            if recovering == Some(false) {
                return Ok(Replay::Promoted(server));
            }
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// svcdash's admin connection to the replaying server: with the password the
/// base backup's data has.
fn replay_options(
    spec: &NodeSpec,
    target: &RecoveryTarget,
    database: &str,
    port: u16,
) -> sqlx::postgres::PgConnectOptions {
    let options = options(spec, database).port(port);
    match &target.source_admin_password {
        Some(password) => options.password(password.expose_secret()),
        None => options,
    }
}

/// What the log (a file svcdash owns) got from `offset` on, at most its last 64 KiB.
fn read_from(path: &Path, offset: u64) -> String {
    use std::io::{Read, Seek, SeekFrom};
    let mut text = Vec::new();
    if let Ok(mut file) = std::fs::File::open(path) {
        let len = file.metadata().map(|m| m.len()).unwrap_or(0);
        let from = offset.max(len.saturating_sub(64 << 10));
        if file.seek(SeekFrom::Start(from)).is_ok() {
            let _ = file.take(64 << 10).read_to_end(&mut text);
        }
    }
    String::from_utf8_lossy(&text).into_owned()
}

/// Gives the restored data the applications' users of now: those made since the
/// target come back, and those removed since lose their login.
async fn set_users(conn: &mut PgConnection, users: &[(String, SecretString)]) -> anyhow::Result<()> {
    for (username, password) in users {
        ensure_user(conn, username, password.expose_secret()).await?;
    }
    let members: Vec<String> = sqlx::query_scalar(
        "SELECT r.rolname FROM pg_roles r WHERE r.rolcanlogin AND NOT r.rolsuper AND r.rolname NOT LIKE 'svcdash\\_%' \
         AND pg_has_role(r.oid, (SELECT oid FROM pg_roles WHERE rolname = $1), 'MEMBER')",
    )
    .bind(OWNER)
    .fetch_all(&mut *conn)
    .await?;
    for stale in members.iter().filter(|m| !users.iter().any(|(u, _)| u == *m)) {
        crate::check_identifier(stale)?;
        exec(conn, format!("ALTER ROLE {stale} NOLOGIN PASSWORD NULL")).await?;
        if let Err(e) = exec(conn, format!("DROP ROLE {stale}")).await {
            tracing::info!(role = %stale, error = %e, "a removed user of the restored data keeps its objects, without login");
        }
    }
    Ok(())
}

async fn stop(server: &mut Child) -> anyhow::Result<()> {
    let pid = server.id().context("the restored server is gone")?;
    process::signal(pid, Signal::SIGINT);
    match tokio::time::timeout(STOP_TIMEOUT, server.wait()).await {
        Ok(status) => ensure!(status?.success(), "the restored server did not stop cleanly"),
        Err(_) => bail!("the restored server did not stop within {} s", STOP_TIMEOUT.as_secs()),
    }
    Ok(())
}

/// A port nothing listens on now. Another process may take it before the staging
/// server does; its start then fails and the restore with it, harmlessly.
fn free_port() -> anyhow::Result<u16> {
    let listener = std::net::TcpListener::bind(("127.0.0.1", 0)).context("finding a free port")?;
    Ok(listener.local_addr()?.port())
}

#[cfg(test)]
mod tests {
    use super::position;

    #[test]
    fn the_timeline_is_the_start_of_the_file_name() {
        assert_eq!(position("0000000A0000000000000003".into()).unwrap().timeline, 10);
        assert!(position("xyz".into()).is_err());
    }
}
