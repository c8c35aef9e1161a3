//! Cluster instances of PostgreSQL, on pg_auto_failover: every node's server runs
//! under a keeper (`pg_autoctl create postgres … --run`, the node's main process),
//! which registers it with the formation's monitor, makes a replica with
//! `pg_basebackup` from the primary the monitor names, and promotes a replica when
//! the monitor says so. The monitor is a PostgreSQL of its own, run beside node 0
//! as its companion and started before node 0's keeper.
//!
//! Everything runs under the instance's account and listens on the loopback and
//! in a socket folder of the instance's (0700, its account's). Every connection
//! authenticates with scram: the keeper's trust rules are skipped
//! (`--skip-pg-hba`), and svcdash's `initdb` rules cover the monitor, the
//! replication and the health checks. pg_auto_failover's roles share the admin
//! password, which the keepers and the walreceivers read from a password file
//! svcdash writes into the node's `system/` folder.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use secrecy::ExposeSecret;
use sqlx::Connection;
use tokio::io::AsyncWriteExt;
use tokio::process::Command;

use super::{connect_at, initdb};
use crate::engine::{Companion, Node};
use crate::{NodeLayout, NodeSpec, files, process};

/// pg_auto_failover's own roles: the monitor's on the nodes, the replication one,
/// and the keepers' on the monitor.
const MONITOR_ROLE: &str = "pgautofailover_monitor";
const REPLICATOR_ROLE: &str = "pgautofailover_replicator";
const NODE_ROLE: &str = "autoctl_node";
const MONITOR_DATABASE: &str = "pg_auto_failover";

/// How the monitor decides that a node is lost and a replica takes over. The
/// defaults (20 s before a node counts as unhealthy, then 30 s for the old primary
/// to demote itself) add up to close to a minute of refused writes; one host
/// cannot be partitioned from its own monitor, so these are shorter.
const MONITOR_SETTINGS: &[(&str, &str)] = &[
    ("pgautofailover.health_check_period", "1000"),
    ("pgautofailover.health_check_timeout", "2000"),
    ("pgautofailover.health_check_max_retries", "1"),
    ("pgautofailover.health_check_retry_delay", "1000"),
    ("pgautofailover.node_considered_unhealthy_timeout", "3000"),
    ("pgautofailover.primary_demote_timeout", "8000"),
];

/// The keeper of a primary that reaches neither the monitor nor a replica demotes
/// itself after this many seconds; below the monitor's demote timeout, so no two
/// primaries ever take writes.
const NETWORK_PARTITION_TIMEOUT_SECS: &str = "4";

/// The monitor's port: node 0's, whichever node asks.
pub fn monitor_port(spec: &NodeSpec) -> anyhow::Result<u16> {
    if spec.index == 0 {
        return spec.port_named("monitor");
    }
    let first = spec.peers.iter().find(|p| p.index == 0).context("node 0 is not among the cluster's nodes")?;
    first.port_named(spec.engine.as_ref(), "monitor")
}

fn monitor_host(spec: &NodeSpec) -> &str {
    spec.peers.iter().find(|p| p.index == 0).map_or("127.0.0.1", |p| p.host.as_str())
}

/// A cluster node's server data. Everything of a cluster node lives in the
/// engine's own data folder: the keeper replaces the server's folder with a fresh
/// copy of the primary (made beside it, in `backup/`) when a replica is made or
/// rebuilt, which takes a parent folder the engine may write.
pub fn pgdata(layout: &NodeLayout) -> PathBuf {
    layout.data_dir().join("pgdata")
}

/// Where a keeper keeps its configuration and state (`HOME` and the XDG folders).
fn home(node: &Node<'_>) -> PathBuf {
    node.layout.data_dir().join("keeper")
}

fn monitor_data(node: &Node<'_>) -> PathBuf {
    node.layout.data_dir().join("monitor")
}

fn password_file(node: &Node<'_>) -> PathBuf {
    node.layout.system().join("pgpass")
}

/// A file `pg_autoctl` keeps for the server (or monitor) in `data`, under `root`
/// (its runtime folder for pid files, its `HOME` for configuration and state).
fn keeper_file(root: &Path, data: &Path, name: &str) -> PathBuf {
    let relative = data.strip_prefix("/").unwrap_or(data);
    root.join("pg_autoctl").join(relative).join(name)
}

/// The pid file `pg_autoctl` writes for the server (or monitor) in `data`.
pub fn pid_file(run_dir: &Path, data: &Path) -> PathBuf {
    keeper_file(run_dir, data, "pg_autoctl.pid")
}

/// The unix socket folder of every server of the instance, the same path for
/// every node: `pg_basebackup` copies the primary's configuration to the replicas,
/// and the keeper's steps that run a server with no TCP need a socket. Sockets are
/// named after their port, so the nodes do not meet in it.
fn socket_dir(layout: &NodeLayout) -> PathBuf {
    layout.root().parent().unwrap_or(layout.root()).join("run")
}

/// Makes the instance's socket folder and writes the node's password file (in
/// `system/`, svcdash's folder).
fn write_password_file(node: &Node<'_>) -> anyhow::Result<()> {
    let (_, engine) = crate::layout::owners(node.run_as);
    files::folder(&socket_dir(node.layout), engine, 0o700)?;
    let password = node.spec.admin_password.expose_secret();
    let lines: String = [node.spec.admin_user.as_str(), REPLICATOR_ROLE, MONITOR_ROLE, NODE_ROLE]
        .iter()
        .map(|role| format!("*:*:*:{role}:{password}\n"))
        .collect();
    files::write_new(&password_file(node), lines.as_bytes(), engine, 0o600)
}

/// `pg_autoctl` as the node's account, with what the keeper needs to find its
/// files and log in; connections go to `port`.
fn autoctl(node: &Node<'_>, port: u16) -> anyhow::Result<Command> {
    let pg_ctl = node.tools.find(node.spec.engine.as_ref(), "pg_ctl")?;
    let bin = pg_ctl.parent().context("pg_ctl has no folder")?;
    let mut cmd = crate::process::command(&find_autoctl()?, node.run_as);
    let home = home(node);
    cmd.env("PATH", format!("{}:{}", bin.display(), process::SAFE_PATH))
        .env("HOME", &home)
        .env("XDG_CONFIG_HOME", &home)
        .env("XDG_DATA_HOME", &home)
        .env("XDG_RUNTIME_DIR", node.layout.run_dir())
        .env("PGPASSFILE", password_file(node))
        .env("PGUSER", &node.spec.admin_user)
        .env("PGHOST", "127.0.0.1")
        .env("PGPORT", port.to_string())
        .env("PGCONNECT_TIMEOUT", "5");
    Ok(cmd)
}

/// `pg_autoctl` comes from its own package (`pg-auto-failover-cli`), off
/// PostgreSQL's program folder.
fn find_autoctl() -> anyhow::Result<PathBuf> {
    for dir in process::SAFE_PATH.split(':') {
        let path = Path::new(dir).join("pg_autoctl");
        if path.is_file() {
            return Ok(path);
        }
    }
    bail!(
        "pg_autoctl is not installed: cluster instances of PostgreSQL need the packages pg-auto-failover-cli and \
         postgresql-<version>-auto-failover"
    )
}

/// Makes what a cluster node needs before its keeper first runs: for node 0 the
/// monitor and its own data (the keeper adopts it), for the others nothing (their
/// keepers copy the primary's). Safe to run again.
pub async fn init(node: &Node<'_>) -> anyhow::Result<()> {
    write_password_file(node)?;
    as_engine(node, r#"mkdir -p -m 0700 "$1""#, &[home(node)]).await?;
    let data = pgdata(node.layout);
    if node.spec.index != 0 {
        if files::read_small(&data.join("PG_VERSION")).is_none()
            && std::fs::read_dir(&data).is_ok_and(|mut entries| entries.next().is_some())
        {
            // A copy from the primary that was cut off: the keeper copies again.
            remove(node, &data).await?;
        }
        if files::read_small(&data.join("PG_VERSION")).is_none() {
            forget_registration(node.spec).await;
            checkpoint_primary(node.spec).await;
        }
        return Ok(());
    }
    init_monitor(node).await?;
    adopt_single_node_data(node).await?;
    initdb(node, &data).await?;
    // In postgresql.conf, which the replicas' copies carry: no socket (its folder
    // would be this node's on every node), and replicas say which rows their
    // queries still need, so a long backup on a replica is not cancelled by replay.
    let sockets = format!("unix_socket_directories = '{}'", quoted(&socket_dir(node.layout))?);
    configure_server(node, &data, &[&sockets, "hot_standby_feedback = on"]).await?;
    if let Some(archive) = &node.spec.archive {
        configure_server(node, &data, &archive_settings(archive)?.iter().map(String::as_str).collect::<Vec<_>>())
            .await?;
    }
    Ok(())
}

/// A replica about to copy the primary registers with the monitor as a new node.
/// The monitor may still hold the node's name: the node was rebuilt while the
/// cluster ran (a restore in place left its data on an abandoned history), or an
/// earlier copy failed after it registered. The keeper's registration would then
/// fail on the name at every try, so the old entry goes first. A monitor that
/// does not answer (a new cluster's, not started yet) holds no such entry.
async fn forget_registration(spec: &NodeSpec) {
    let name = format!("node-{}", spec.index);
    let removed = async {
        let mut conn = connect_at(spec, monitor_port(spec)?, MONITOR_DATABASE).await?;
        let ids: Vec<i64> = sqlx::query_scalar("SELECT nodeid FROM pgautofailover.node WHERE nodename = $1")
            .bind(&name)
            .fetch_all(&mut conn)
            .await?;
        for id in &ids {
            sqlx::query("SELECT pgautofailover.remove_node($1::bigint, true)").bind(id).execute(&mut conn).await?;
        }
        conn.close().await?;
        anyhow::Ok(ids)
    };
    match removed.await {
        Ok(ids) if ids.is_empty() => {}
        Ok(ids) => {
            tracing::info!(instance = %spec.instance_guid, node = spec.index, ?ids, "the monitor's old entry of the node removed before it copies the primary");
        }
        Err(e) => {
            tracing::debug!(instance = %spec.instance_guid, node = spec.index, error = format!("{e:#}"), "the monitor was not asked for an old entry of the node");
        }
    }
}

/// Archiving, as `postgresql.conf` lines: a keeper starts the server, so these
/// cannot be options on its command line as on a single node. Every node carries
/// them (replicas copy the primary's configuration); only the primary archives
/// (`archive_mode = on`), and a promoted replica starts archiving on its new
/// timeline, through its own node's socket.
fn archive_settings(archive: &crate::WalArchive) -> anyhow::Result<Vec<String>> {
    let command = format!(
        "{} wal-push {} %p %f",
        super::archive_quote(&archive.client)?,
        crate::layout::ARCHIVE_SOCKET_FROM_DATA_CHILD
    );
    Ok(vec![
        "archive_mode = on".to_owned(),
        // A configuration value is single-quoted, with `'` doubled inside.
        format!("archive_command = '{}'", command.replace('\'', "''")),
        format!("archive_timeout = {}", archive.timeout_secs),
    ])
}

/// A path as the inside of a single-quoted configuration value.
fn quoted(path: &Path) -> anyhow::Result<String> {
    let text = path.to_str().with_context(|| format!("{} is not UTF-8", path.display()))?;
    anyhow::ensure!(!text.contains(['\'', '\\', '\n']), "{text:?} cannot be a PostgreSQL setting");
    Ok(text.to_owned())
}

/// A node made for a single-node plan has its server's data right in the data
/// folder: it moves into `pgdata/` (a plan change to a cluster).
async fn adopt_single_node_data(node: &Node<'_>) -> anyhow::Result<()> {
    let data = node.layout.data_dir();
    if files::read_small(&data.join("PG_VERSION")).is_none() {
        return Ok(());
    }
    as_engine(
        node,
        r#"set -e; cd "$1"; mkdir -m 0700 .pgdata
        find . -mindepth 1 -maxdepth 1 ! -name .pgdata ! -name keeper ! -name monitor -exec mv -t .pgdata -- {} +
        mv .pgdata pgdata"#,
        &[data],
    )
    .await
}

/// Removes a folder inside the engine's own, as the engine.
pub(super) async fn remove(node: &Node<'_>, path: &Path) -> anyhow::Result<()> {
    as_engine(node, r#"rm -rf -- "$1""#, &[path.to_path_buf()]).await
}

/// Runs a shell script as the node's account, with `paths` as its arguments:
/// for files in folders the engine owns, which svcdash (root) does not touch.
async fn as_engine(node: &Node<'_>, script: &str, paths: &[PathBuf]) -> anyhow::Result<()> {
    let mut cmd = crate::process::command(Path::new("/bin/sh"), node.run_as);
    cmd.arg("-c").arg(script).arg("sh").args(paths);
    process::run(cmd, "preparing a cluster node's folders").await.map(|_| ())
}

/// The keeper's `pg_basebackup` asks the primary for a spread checkpoint, which
/// writes its dirty buffers a tenth of a second apart: minutes on a primary that
/// took writes. A checkpoint now leaves it little to write.
async fn checkpoint_primary(spec: &NodeSpec) {
    let Ok(port) = super::primary_port(spec).await else { return };
    let done = async {
        let mut conn = connect_at(spec, port, "postgres").await?;
        super::exec(&mut conn, "CHECKPOINT".into()).await?;
        conn.close().await?;
        anyhow::Ok(())
    };
    if let Err(e) = done.await {
        tracing::warn!(
            node = spec.index,
            error = format!("{e:#}"),
            "could not checkpoint the primary before copying it"
        );
    }
}

/// Adds settings to a server's `postgresql.conf` unless they are there, writing as
/// the node's account (the file is the engine's). `ALTER SYSTEM` cannot say "no
/// socket": it writes an empty list as `""`, a folder of that name.
async fn configure_server(node: &Node<'_>, data: &Path, settings: &[&str]) -> anyhow::Result<()> {
    let mut args = vec![data.join("postgresql.conf")];
    args.extend(settings.iter().map(PathBuf::from));
    as_engine(
        node,
        r#"conf=$1; shift; for line; do grep -qxF -- "$line" "$conf" || printf '%s\n' "$line" >> "$conf" || exit 1; done"#,
        &args,
    )
    .await
}

async fn init_monitor(node: &Node<'_>) -> anyhow::Result<()> {
    let data = monitor_data(node);
    initdb(node, &data).await?;
    let sockets = format!("unix_socket_directories = '{}'", quoted(&socket_dir(node.layout))?);
    configure_server(node, &data, &[&sockets]).await?;
    let port = monitor_port(node.spec)?;
    let config = keeper_file(&home(node), &data, "pg_autoctl.cfg");
    if files::read_small(&config).is_none() {
        let pg_ctl = node.tools.find(node.spec.engine.as_ref(), "pg_ctl")?;
        let mut cmd = autoctl(node, port)?;
        cmd.args(["create", "monitor", "--pgdata"])
            .arg(&data)
            .args(["--pgport", &port.to_string(), "--pgctl"])
            .arg(pg_ctl)
            .args(["--hostname", "127.0.0.1", "--skip-pg-hba", "--no-ssl"]);
        process::run(cmd, "pg_autoctl create monitor").await?;
    }
    // `create monitor` has no --listen: it starts its server on every address.
    let mut cmd = autoctl(node, port)?;
    cmd.args(["config", "set", "--pgdata"]).arg(&data).args(["postgresql.listen_addresses", "127.0.0.1"]);
    process::run(cmd, "pg_autoctl config set").await?;
    let password = node.spec.admin_password.expose_secret();
    crate::check_identifier(password)?;
    let mut statements = vec![format!("ALTER ROLE {NODE_ROLE} PASSWORD '{password}'")];
    statements.extend(MONITOR_SETTINGS.iter().map(|(name, value)| format!("ALTER SYSTEM SET {name} = {value}")));
    single_user(node, &data, &statements).await
}

/// Runs statements on a stopped server in single-user mode, as the node's account:
/// no server listens, nothing but the statements runs.
/// Nothing is done to a server that runs (a provision resumed after svcdash
/// stopped, which finds its nodes started): what it would set is set already.
async fn single_user(node: &Node<'_>, data: &Path, statements: &[String]) -> anyhow::Result<()> {
    let running = files::read_small(&data.join("postmaster.pid"))
        .and_then(|text| text.lines().next()?.trim().parse::<u32>().ok())
        .is_some_and(process::is_alive);
    if running {
        return Ok(());
    }
    let mut cmd = node.command("postgres")?;
    cmd.arg("--single")
        .arg("-D")
        .arg(data)
        .args(["-c", "unix_socket_directories=", "-c", "listen_addresses="])
        .arg("postgres")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let mut child = cmd.spawn().context("starting postgres --single")?;
    let mut stdin = child.stdin.take().context("postgres --single has no stdin")?;
    let input: String = statements.iter().map(|s| format!("{s};\n")).collect();
    stdin.write_all(input.as_bytes()).await?;
    drop(stdin);
    let output = child.wait_with_output().await?;
    let said = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    if !output.status.success() || said.contains("ERROR:") || said.contains("FATAL:") {
        // What it said names settings and roles, never the statements' passwords.
        let errors: Vec<&str> = said.lines().filter(|l| l.contains("ERROR:") || l.contains("FATAL:")).collect();
        bail!("postgres --single on {} failed ({}): {}", data.display(), output.status, errors.join("; "));
    }
    Ok(())
}

/// The keeper of the node, which starts its server and keeps it in the role the
/// monitor gives it. The same command makes the node the first time (node 0 adopts
/// the data `init` made, the others copy the primary's) and resumes it later.
pub fn start_command(node: &Node<'_>) -> anyhow::Result<Command> {
    write_password_file(node)?;
    let spec = node.spec;
    let pg_ctl = node.tools.find(spec.engine.as_ref(), "pg_ctl")?;
    let monitor = format!(
        "postgres://{NODE_ROLE}@{}:{}/{MONITOR_DATABASE}?sslmode=disable",
        monitor_host(spec),
        monitor_port(spec)?
    );
    let mut cmd = autoctl(node, spec.port)?;
    cmd.args(["create", "postgres", "--pgdata"])
        .arg(pgdata(node.layout))
        .args(["--pgport", &spec.port.to_string(), "--pgctl"])
        .arg(pg_ctl)
        .args(["--hostname", "127.0.0.1", "--listen", "127.0.0.1"])
        .args(["--name", &format!("node-{}", spec.index), "--dbname", "postgres"])
        .args(["--monitor", &monitor, "--skip-pg-hba", "--no-ssl"])
        // Asynchronous replicas unless the plan asks for synchronous ones: then a
        // commit returns once one replica has it, and the monitor promotes the
        // replica that has the most.
        .args(["--replication-quorum", if spec.synchronous { "true" } else { "false" }])
        .arg("--run");
    Ok(cmd)
}

/// Node 0's companion: the monitor, started before node 0's server, since a
/// keeper does not start without it.
pub fn companions(node: &Node<'_>) -> anyhow::Result<Vec<Companion>> {
    if node.spec.index != 0 {
        return Ok(Vec::new());
    }
    let data = monitor_data(node);
    let port = monitor_port(node.spec)?;
    let mut command = autoctl(node, port)?;
    command.args(["run", "--pgdata"]).arg(&data);
    Ok(vec![Companion {
        name: "pg-monitor",
        command,
        port,
        pid_file: pid_file(&node.layout.run_dir(), &data),
        before_server: true,
    }])
}

/// The candidate priority pg_auto_failover gives a node unless told otherwise.
const CANDIDATE_PRIORITY: i32 = 50;

/// The monitor has just started and these nodes do not run: none of them may be
/// promoted until every node runs again. A keeper that starts tells the monitor
/// its server does not run before it has started it, and the monitor would fail
/// over to a replica whose own report is minutes old: svcdash's own restart would
/// hand a healthy cluster's primary role around. (A node lost while the monitor
/// runs is failed over as usual.)
pub async fn hold_candidates(node: &Node<'_>, stopped: &[i64]) -> anyhow::Result<()> {
    if stopped.is_empty() {
        return Ok(());
    }
    let names: Vec<String> = stopped.iter().map(|i| format!("node-{i}")).collect();
    set_candidate_priority(node, &names, 0).await
}

/// Every node runs: each may be promoted again.
pub async fn release_candidates(node: &Node<'_>) -> anyhow::Result<()> {
    let mut names = vec![format!("node-{}", node.spec.index)];
    names.extend(node.spec.peers.iter().map(|p| format!("node-{}", p.index)));
    set_candidate_priority(node, &names, CANDIDATE_PRIORITY).await
}

/// Written in the monitor's table: pg_auto_failover's own function refuses to
/// leave a group with no candidate, which is what is wanted here.
async fn set_candidate_priority(node: &Node<'_>, names: &[String], priority: i32) -> anyhow::Result<()> {
    let spec = node.spec;
    let port = monitor_port(spec)?;
    // The monitor listens a moment before it takes connections.
    let started = Instant::now();
    let mut conn = loop {
        match connect_at(spec, port, MONITOR_DATABASE).await {
            Ok(conn) => break conn,
            Err(e) if started.elapsed() < Duration::from_secs(30) => {
                tracing::debug!(error = format!("{e:#}"), "the monitor does not take connections yet");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => return Err(e),
        }
    };
    let changed = sqlx::query(
        "UPDATE pgautofailover.node SET candidatepriority = $1 WHERE nodename = ANY($2) AND candidatepriority <> $1",
    )
    .bind(priority)
    .bind(names)
    .execute(&mut conn)
    .await
    .context("setting candidate priorities on the monitor")?
    .rows_affected();
    conn.close().await?;
    if changed > 0 {
        tracing::info!(instance = %spec.instance_guid, nodes = ?names, priority, "candidate priority set on the monitor");
    }
    Ok(())
}

/// The state the node's keeper last reported to the monitor, and the one the
/// monitor wants it in; `None` before it registered.
pub async fn states(spec: &NodeSpec) -> anyhow::Result<Option<(String, String)>> {
    let mut conn = connect_at(spec, monitor_port(spec)?, MONITOR_DATABASE).await?;
    let states =
        sqlx::query_as("SELECT reportedstate::text, goalstate::text FROM pgautofailover.node WHERE nodename = $1")
            .bind(format!("node-{}", spec.index))
            .fetch_optional(&mut conn)
            .await
            .context("asking the monitor for the node's state")?;
    conn.close().await?;
    Ok(states)
}

/// Waits until the monitor holds node 0 as a settled primary (`single`, or a
/// primary state, reported as assigned). Its keeper reports `single` only once its
/// own start-up steps are done; replicas that register before wait on it within
/// their own start-up limit, and then only say they waited. Asked first, the
/// failure names the node that is late and what the monitor saw of it.
pub async fn wait_settled_primary(node: &Node<'_>) -> anyhow::Result<()> {
    const SETTLED: &[&str] = &["single", "wait_primary", "primary"];
    let started = Instant::now();
    loop {
        let seen = match states(node.spec).await {
            Ok(Some((reported, goal))) if reported == goal && SETTLED.contains(&reported.as_str()) => return Ok(()),
            Ok(Some((reported, goal))) => format!("reported {reported}, assigned {goal}"),
            Ok(None) => "not registered".to_owned(),
            Err(e) => format!("{e:#}"),
        };
        anyhow::ensure!(
            started.elapsed() < Duration::from_secs(90),
            "the keeper of node {} did not settle as the primary within 90 s (the monitor: {seen}; see its log)",
            node.spec.index
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Gives pg_auto_failover's roles on the primary the password the keepers, the
/// walreceivers and the monitor's health checks log in with. Node 0's keeper makes
/// them once it has registered; replicas cannot copy the primary before.
pub async fn set_role_passwords(node: &Node<'_>) -> anyhow::Result<()> {
    let spec = node.spec;
    let password = spec.admin_password.expose_secret();
    crate::check_identifier(password)?;
    let mut conn = connect_at(spec, spec.port, "postgres").await?;
    let started = Instant::now();
    loop {
        let found: i64 = sqlx::query_scalar("SELECT count(*) FROM pg_roles WHERE rolname IN ($1, $2)")
            .bind(MONITOR_ROLE)
            .bind(REPLICATOR_ROLE)
            .fetch_one(&mut conn)
            .await?;
        if found == 2 {
            break;
        }
        anyhow::ensure!(
            started.elapsed() < Duration::from_secs(90),
            "the keeper of node 0 did not register it with the monitor within 90 s (see its log)"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    for role in [MONITOR_ROLE, REPLICATOR_ROLE] {
        super::exec(&mut conn, format!("ALTER ROLE {role} PASSWORD '{password}'")).await?;
    }
    conn.close().await?;
    Ok(())
}

/// Sets the keeper's own timeouts (its configuration file, which it reads again
/// when told). The keeper rewrites that file while a replica is being made: a
/// read of it half-written fails, and is tried again.
///
/// `config set` signals the running keeper to read the file again, so it waits
/// until the keeper's start-up steps are done. A start-up step that fails is not
/// safely tried again: the retry finds the server the keeper started itself
/// running and refuses to go on ("PostgreSQL is already running … refusing to
/// initialize") until the keeper's supervisor gives up and stops the node. A
/// signal in the middle of the steps is one way to fail one, so none is sent.
pub async fn configure(node: &Node<'_>) -> anyhow::Result<()> {
    wait_initialized(node).await?;
    let started = Instant::now();
    loop {
        let mut cmd = autoctl(node, node.spec.port)?;
        cmd.args(["config", "set", "--pgdata"])
            .arg(pgdata(node.layout))
            .args(["timeout.network_partition_timeout", NETWORK_PARTITION_TIMEOUT_SECS]);
        match process::run(cmd, "pg_autoctl config set").await {
            Ok(_) => return Ok(()),
            Err(e) if started.elapsed() < Duration::from_secs(30) => {
                tracing::debug!(error = format!("{e:#}"), "setting the keeper's timeouts; trying again");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            Err(e) => return Err(e),
        }
    }
}

/// Waits until the keeper has removed its init file, which it does once its
/// start-up steps (registration, making or adopting the server) are done. A
/// node started before has none.
async fn wait_initialized(node: &Node<'_>) -> anyhow::Result<()> {
    let file = keeper_file(&home(node), &pgdata(node.layout), "pg_autoctl.init");
    let started = Instant::now();
    while std::fs::symlink_metadata(&file).is_ok() {
        anyhow::ensure!(
            started.elapsed() < Duration::from_secs(90),
            "the keeper of node {} did not finish its start-up steps within 90 s (see its log)",
            node.spec.index
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Ok(())
}

/// Makes this node (a replica) the primary (`pg_autoctl perform promotion`, which
/// returns once it is). Asked again while the monitor has no settled primary.
pub async fn promote(node: &Node<'_>) -> anyhow::Result<()> {
    let started = Instant::now();
    loop {
        let mut cmd = autoctl(node, node.spec.port)?;
        cmd.args(["perform", "promotion", "--pgdata"])
            .arg(pgdata(node.layout))
            .args(["--name", &format!("node-{}", node.spec.index)]);
        match process::run(cmd, "pg_autoctl perform promotion").await {
            Ok(_) => return Ok(()),
            Err(e) if started.elapsed() < Duration::from_secs(60) => {
                tracing::debug!(error = format!("{e:#}"), "the monitor did not promote the node yet; asking again");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            Err(e) => return Err(e),
        }
    }
}

/// The state the monitor wants the node in (its goal state).
async fn goal_state(spec: &NodeSpec) -> anyhow::Result<Option<String>> {
    Ok(states(spec).await?.map(|(_, goal)| goal))
}

/// Hands the primary role to a replica (`pg_autoctl perform switchover`, which
/// returns once the formation has a new primary). Just after a replica came back
/// the monitor may still hold the primary in a passing state (`wait_primary`) and
/// answers "couldn't find the primary node": asked again until it settles.
///
/// A monitor that has just started (node 0 restarted as a replica in a rolling
/// restart) may call the switchover off at once, finding the replicas not yet
/// healthy; `pg_autoctl` then returns as if done and the primary keeps its role.
/// That is seen in the primary's goal state, and the switchover is asked again.
pub async fn switchover(node: &Node<'_>) -> anyhow::Result<()> {
    let started = Instant::now();
    loop {
        let mut cmd = autoctl(node, node.spec.port)?;
        cmd.args(["perform", "switchover", "--pgdata"]).arg(pgdata(node.layout));
        match process::run(cmd, "pg_autoctl perform switchover").await {
            Ok(_) => match goal_state(node.spec).await {
                Ok(Some(goal)) if goal == "primary" && started.elapsed() < Duration::from_secs(60) => {
                    tracing::info!(instance = %node.spec.instance_guid, node = node.spec.index, "the monitor called the switchover off; asking again");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
                _ => return Ok(()),
            },
            Err(e)
                if started.elapsed() < Duration::from_secs(60)
                    && format!("{e:#}").contains("couldn't find the primary") =>
            {
                tracing::debug!(error = format!("{e:#}"), "the monitor has no settled primary yet; asking again");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            Err(e) => return Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::archive_settings;

    #[test]
    fn archive_settings_quote_the_program_inside_the_configuration_value() {
        let archive = crate::WalArchive { client: PathBuf::from("/opt/svc dash/svcdash"), timeout_secs: 60 };
        assert_eq!(
            archive_settings(&archive).unwrap(),
            [
                "archive_mode = on",
                "archive_command = '''/opt/svc dash/svcdash'' wal-push ../../../ephemeral/archive.sock %p %f'",
                "archive_timeout = 60",
            ]
        );
        let quote = crate::WalArchive { client: PathBuf::from("/opt/it's/svcdash"), timeout_secs: 60 };
        assert!(archive_settings(&quote).is_err(), "a quote in the program's path is refused");
    }
}
