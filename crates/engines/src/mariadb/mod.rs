//! MariaDB: one server per node, one application database (`app`). svcdash's admin
//! user reaches the server over TCP with a password; the node's own account logs
//! in over the node's socket by `unix_socket` (as `mariadb-install-db` makes it),
//! which is how the backup tool connects, running as that account.
//!
//! Bindings are users with every right on `app` and none beyond: no global
//! privilege (`SUPER`, `FILE`, `PROCESS`, `SHUTDOWN`, …), no grant option.
//!
//! Backups are physical (`mariadb-backup --stream=xbstream`): faster to take and far
//! faster to restore than a logical dump (see the closing figures in `bench/`), and
//! they restore every database object exactly. A restore is unpacked and prepared
//! beside the live data, which is switched out only once `--prepare` succeeded.
//! The restored server gets the users and grants the instance had just before the
//! restore, not the backup's: bindings keep working, and a backup of another
//! instance (disaster recovery) brings none of that instance's credentials along.

use std::path::PathBuf;
use std::process::Stdio;

use anyhow::Context;
use async_trait::async_trait;
use secrecy::ExposeSecret;
use sqlx::mysql::{MySqlConnectOptions, MySqlSslMode};
use sqlx::{AssertSqlSafe, ConnectOptions, Connection, MySqlConnection};
use tokio::process::{Child, Command};
use tokio::task::JoinHandle;

use crate::engine::{
    BackupStream, ClusterKind, Engine, Node, NodeControl, Replication, RestoreSink, Role, StagedRestore, StartMode,
};
use crate::{AppCredentials, NodeLayout, NodeSpec, Tools, files, process};

/// The application database.
pub const DATABASE: &str = "app";
/// The user MariaDB itself needs; restores leave it as it is.
const SYSTEM_USER: &str = "mariadb.sys";
/// A locked account with every right on `app`: the definer of views, routines,
/// triggers and events whose creator is gone (an unbound binding, or another
/// instance's binding after disaster recovery), so they keep working with the
/// rights every binding has.
const OWNER: &str = "app_owner";

mod galera;

/// The server's InnoDB buffer pool.
const BUFFER_POOL: &str = "128M";

pub struct Mariadb;

/// The server's socket, relative to its data folder (its working directory): the
/// absolute path can pass the 107-byte limit of socket paths under a deep data folder.
/// Clients that use it run in the data folder too.
const SOCKET: &str = "../../ephemeral/run/mysqld.sock";

/// Statements the server runs at its next start, before it takes connections;
/// svcdash writes it, the server reads it (group-readable).
fn init_file(layout: &NodeLayout) -> PathBuf {
    layout.system().join("init.sql")
}

/// Where a restore is unpacked: the engine's, beside the data.
fn staging_dir(layout: &NodeLayout) -> PathBuf {
    layout.persistent().join("restore")
}

/// The OS user name the node's processes run as, which `unix_socket` maps to the
/// database user of the same name.
fn os_user(node: &Node<'_>) -> anyhow::Result<String> {
    let uid = node.run_as.map_or_else(nix::unistd::Uid::effective, |r| r.uid);
    Ok(nix::unistd::User::from_uid(uid)?.context("the node's account has no name")?.name)
}

#[async_trait]
impl Engine for Mariadb {
    fn name(&self) -> &'static str {
        "mariadb"
    }

    fn short_name(&self) -> &'static str {
        "mariadb"
    }

    async fn version(&self, tools: &Tools) -> anyhow::Result<String> {
        // "mariadbd  Ver 10.11.19-MariaDB-0+deb12u1 for debian-linux-gnu on x86_64 (Debian 12)"
        let out = process::version_output(&tools.find(self, "mariadbd")?, "--version").await?;
        let version = out.split_whitespace().skip_while(|w| *w != "Ver").nth(1).context("no version")?;
        Ok(version.split('-').next().unwrap_or(version).to_owned())
    }

    fn programs(&self) -> &'static [&'static str] {
        &["mariadbd", "mariadb-install-db", "mariadb-backup", "mbstream"]
    }

    fn package(&self) -> &'static str {
        "mariadb-server and mariadb-backup"
    }

    fn program_dirs(&self) -> Vec<PathBuf> {
        vec![PathBuf::from("/usr/sbin"), PathBuf::from("/usr/bin")]
    }

    fn process_names(&self) -> &'static [&'static str] {
        // Galera's state transfers run through these.
        &["mariadbd", "mariadb-backup", "mbstream", "socat"]
    }

    fn cluster_ports(&self) -> &'static [&'static str] {
        &["galera", "ist", "sst"]
    }

    fn cluster_kind(&self) -> Option<ClusterKind> {
        Some(ClusterKind::MasterOnly)
    }

    fn members_take_writes(&self) -> bool {
        true
    }

    fn restore_rebuilds_peers(&self) -> bool {
        true
    }

    /// A member of the cluster's primary component; a node outside it (cut off
    /// from the majority, or joining) answers an error, and counts as unknown.
    async fn role(&self, node: &Node<'_>) -> anyhow::Result<Role> {
        if !node.spec.is_clustered() {
            return Ok(Role::Primary);
        }
        let status = galera_status(node.spec).await?;
        anyhow::ensure!(status.primary_component, "the node is not in the cluster's primary component");
        Ok(Role::Member)
    }

    async fn in_sync(&self, node: &Node<'_>) -> anyhow::Result<bool> {
        if !node.spec.is_clustered() {
            return Ok(true);
        }
        let status = galera_status(node.spec).await?;
        Ok(status.primary_component && status.synced)
    }

    /// The members of the primary component the node is in.
    async fn replication(&self, node: &Node<'_>) -> anyhow::Result<Option<Replication>> {
        if !node.spec.is_clustered() {
            return Ok(None);
        }
        let status = galera_status(node.spec).await?;
        anyhow::ensure!(status.primary_component, "the node is not in the cluster's primary component");
        Ok(Some(Replication { role: Role::Member, lag_bytes: None, lag_seconds: None, members: status.size }))
    }

    fn pid_file(&self, layout: &NodeLayout) -> PathBuf {
        layout.run_dir().join("mariadbd.pid")
    }

    fn backup_extension(&self) -> &'static str {
        "xbstream"
    }

    fn backup_contents(&self) -> &'static str {
        "a physical copy of the data of the server (an xbstream of mariadb-backup): every table, view, routine, \
         trigger and event; users and grants stay as they are when it is restored"
    }

    /// `mariadb-install-db` unless the data folder holds a server already.
    async fn init(&self, node: &Node<'_>) -> anyhow::Result<()> {
        if node.spec.is_clustered() {
            galera::ensure_certificate(node).await?;
            // A joining node's data comes from a member by state transfer.
            if node.spec.index != 0 {
                return Ok(());
            }
        }
        let data = node.layout.data_dir();
        if files::is_folder(&data.join("mysql")) && std::fs::symlink_metadata(data.join("ibdata1")).is_ok() {
            return Ok(());
        }
        if std::fs::read_dir(&data).is_ok_and(|mut entries| entries.next().is_some()) {
            files::remove_tree(&data).context("removing an incomplete data folder")?;
            node.layout.prepare(node.run_as)?;
        }
        let mut cmd = node.command("mariadb-install-db")?;
        // As the account itself, so every file is its own and `unix_socket` lets it in.
        cmd.args(["--no-defaults", "--skip-test-db", "--auth-root-authentication-method=socket"])
            .arg(format!("--datadir={}", data.display()))
            .arg(format!("--user={}", os_user(node)?));
        process::run(cmd, "mariadb-install-db").await.map(|_| ())
    }

    /// A member that stopped without saying (killed, its machine lost) starts at
    /// the position InnoDB recovers, so it catches up by IST instead of a full copy.
    async fn start_arguments(&self, node: &Node<'_>, _mode: StartMode) -> anyhow::Result<Vec<String>> {
        if !node.spec.is_clustered() || !galera::crashed(node) {
            return Ok(Vec::new());
        }
        galera::write_config(node, &os_user(node)?, BUFFER_POOL)?;
        let mut cmd = node.command("mariadbd")?;
        cmd.arg(format!("--defaults-file={}", galera::config_file(node.layout).display()))
            .arg(format!("--datadir={}", node.layout.data_dir().display()))
            .arg(format!("--socket={SOCKET}"))
            .args(["--wsrep-recover", "--skip-networking"])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        // The server's log goes to its stderr, read here, never through a file
        // the engine could replace.
        let output = cmd.output().await.context("starting mariadbd --wsrep-recover")?;
        let position = galera::recovered_position(&String::from_utf8_lossy(&output.stderr));
        if position.is_none() {
            // The member then copies everything, as without the position.
            tracing::warn!(instance = %node.spec.instance_guid, node = node.spec.index, status = %output.status, "could not recover the member's position");
        }
        Ok(position.map(|p| vec![format!("--wsrep-start-position={p}")]).unwrap_or_default())
    }

    fn start_command(&self, node: &Node<'_>, mode: StartMode) -> anyhow::Result<Command> {
        let layout = node.layout;
        let clustered = node.spec.is_clustered();
        let new_cluster = clustered && galera::starts_new_cluster(node, mode)?;
        // A member joining a cluster gets every user and database from it: it runs
        // no statements of its own at start (a recreated member, say).
        let joiner = clustered && !new_cluster;
        match mode {
            StartMode::Setup if joiner => {}
            StartMode::Setup => write_init_file(node, &admin_statements(node.spec))?,
            // The commit wrote the users to bring back.
            StartMode::AfterRestore => {}
            StartMode::Normal => {
                let _ = files::remove_tree(&init_file(layout));
            }
        }
        let mut cmd = node.command("mariadbd")?;
        // --no-defaults (or svcdash's own file) first: nothing of /etc/mysql applies.
        if clustered {
            galera::write_config(node, &os_user(node)?, BUFFER_POOL)?;
            cmd.arg(format!("--defaults-file={}", galera::config_file(layout).display()));
            if new_cluster {
                tracing::info!(instance = %node.spec.instance_guid, node = node.spec.index, "starting a new Galera cluster");
                cmd.arg("--wsrep-new-cluster");
            }
        } else {
            cmd.arg("--no-defaults");
        }
        cmd.arg(format!("--datadir={}", layout.data_dir().display()))
            .arg(format!("--port={}", node.spec.port))
            .arg("--bind-address=127.0.0.1")
            .arg(format!("--socket={SOCKET}"))
            .arg(format!("--pid-file={}", self.pid_file(layout).display()))
            .arg(format!("--tmpdir={}", layout.run_dir().display()))
            .args(["--skip-name-resolve", "--local-infile=0"]);
        if !clustered {
            // A cluster node's is in its file: Galera's state transfer passes this
            // option on to mariadb-backup, which refuses it.
            cmd.arg(format!("--innodb-buffer-pool-size={BUFFER_POOL}"));
        }
        if mode != StartMode::Normal && !joiner {
            cmd.arg(format!("--init-file={}", init_file(layout).display()));
        }
        Ok(cmd)
    }

    /// Takes connections; a node of a cluster, once it is synced with it.
    async fn is_ready(&self, node: &Node<'_>) -> bool {
        if node.spec.is_clustered() {
            return galera_status(node.spec).await.is_ok_and(|s| s.primary_component && s.synced);
        }
        match connect(node.spec).await {
            Ok(conn) => {
                let _ = conn.close().await;
                true
            }
            Err(_) => false,
        }
    }

    async fn setup(&self, node: &Node<'_>) -> anyhow::Result<()> {
        // The file holds the admin password; the server has read it.
        files::remove_tree(&init_file(node.layout))?;
        Ok(())
    }

    async fn create_user(&self, node: &Node<'_>, username: &str, password: &str) -> anyhow::Result<AppCredentials> {
        let spec = node.spec;
        crate::check_identifier(username)?;
        crate::check_identifier(password)?;
        let mut conn = connect(spec).await?;
        for statement in [
            format!("CREATE USER IF NOT EXISTS '{username}'@'%' IDENTIFIED BY '{password}'"),
            format!("ALTER USER '{username}'@'%' IDENTIFIED BY '{password}'"),
            format!("GRANT ALL PRIVILEGES ON `{DATABASE}`.* TO '{username}'@'%'"),
        ] {
            exec(&mut conn, statement).await.context("creating the MariaDB user")?;
        }
        conn.close().await?;
        self.credentials(spec, username, password)
    }

    /// For a cluster, every node's address: any member takes writes, so clients
    /// go on with the next when one is lost (`hosts`, and the multi-host forms of
    /// the MariaDB connectors: `uri` and `jdbcUrl`).
    fn credentials(&self, spec: &NodeSpec, username: &str, password: &str) -> anyhow::Result<AppCredentials> {
        let mut extra = serde_json::Map::new();
        let uri = if spec.is_clustered() {
            let hosts = spec.host_ports();
            extra.insert("hosts".into(), spec.hosts_field());
            extra.insert(
                "jdbcUrl".into(),
                format!("jdbc:mariadb:sequential://{}/{DATABASE}?user={username}&password={password}", hosts.join(","))
                    .into(),
            );
            format!("mysql://{username}:{password}@{}/{DATABASE}", hosts.join(","))
        } else {
            format!("mysql://{username}:{password}@127.0.0.1:{}/{DATABASE}", spec.port)
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
        let mut conn = connect(node.spec).await?;
        exec(&mut conn, format!("DROP USER IF EXISTS '{username}'@'%'")).await?;
        adopt_orphans_or_warn(&mut conn).await;
        let sessions: Vec<u64> = sqlx::query_scalar("SELECT id FROM information_schema.processlist WHERE user = ?")
            .bind(username)
            .fetch_all(&mut conn)
            .await?;
        for id in sessions {
            let _ = exec(&mut conn, format!("KILL {id}")).await;
        }
        conn.close().await?;
        Ok(())
    }

    /// `mariadb-backup --backup --stream=xbstream`, run as the node's account (it
    /// reads the data files and logs in over the socket).
    async fn backup(&self, node: &Node<'_>) -> anyhow::Result<BackupStream> {
        let layout = node.layout;
        let scratch = layout.run_dir().join("backup");
        files::remove_tree(&scratch)?;
        let mut cmd = node.command("mariadb-backup")?;
        cmd.arg("--no-defaults")
            .args(["--backup", "--stream=xbstream"])
            .arg(format!("--datadir={}", layout.data_dir().display()))
            .arg(format!("--target-dir={}", scratch.display()))
            .arg(format!("--tmpdir={}", layout.run_dir().display()))
            .arg(format!("--socket={SOCKET}"))
            .arg(format!("--user={}", os_user(node)?))
            .current_dir(layout.data_dir());
        let estimated_size = data_bytes(node.spec).await.ok();
        let (reader, done) = process::stream_stdout(cmd, "mariadb-backup")?;
        Ok(BackupStream { reader: Box::new(reader), done, estimated_size, layout: None })
    }

    /// `mbstream -x` into a folder beside the data.
    async fn begin_restore(&self, node: &Node<'_>) -> anyhow::Result<RestoreSink> {
        let staging = staging_dir(node.layout);
        files::remove_tree(&staging)?;
        let (_, engine) = crate::layout::owners(node.run_as);
        files::folder(&staging, engine, 0o700)?;
        let mut cmd = node.command("mbstream")?;
        cmd.arg("-x")
            .arg("-C")
            .arg(&staging)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let mut child = cmd.spawn().context("starting mbstream")?;
        let stdin = child.stdin.take().context("mbstream has no stdin")?;
        process::widen_pipe(&stdin);
        let stderr = process::collect_tail(child.stderr.take().context("mbstream has no stderr")?);
        Ok(RestoreSink { writer: Box::new(stdin), staged: Box::new(Restore { child, stderr }) })
    }
}

fn options(spec: &NodeSpec) -> MySqlConnectOptions {
    MySqlConnectOptions::new()
        .host("127.0.0.1")
        .port(spec.port)
        .username(&spec.admin_user)
        .password(spec.admin_password.expose_secret())
        // Loopback only; the server has no certificate.
        .ssl_mode(MySqlSslMode::Disabled)
        // Statements carry passwords (CREATE USER ... IDENTIFIED BY): never logged.
        .disable_statement_logging()
}

async fn connect(spec: &NodeSpec) -> anyhow::Result<MySqlConnection> {
    // A node of a cluster that lost its machine may not answer at all: bounded, so
    // a cluster's jobs go on to the next node.
    tokio::time::timeout(std::time::Duration::from_secs(10), MySqlConnection::connect_with(&options(spec)))
        .await
        .map_err(|_| anyhow::anyhow!("MariaDB on port {} did not answer within 10 s", spec.port))?
        .with_context(|| format!("connecting to MariaDB on port {}", spec.port))
}

/// Bytes of the tables and indexes: about what a physical backup copies.
async fn data_bytes(spec: &NodeSpec) -> anyhow::Result<u64> {
    let mut conn = connect(spec).await?;
    let bytes: u64 = sqlx::query_scalar(
        "SELECT CAST(COALESCE(SUM(data_length + index_length), 0) AS UNSIGNED) FROM information_schema.tables",
    )
    .fetch_one(&mut conn)
    .await?;
    conn.close().await?;
    Ok(bytes)
}

/// What Galera says of the node now.
async fn galera_status(spec: &NodeSpec) -> anyhow::Result<galera::Status> {
    let mut conn = connect(spec).await?;
    let rows: Vec<(String, String)> = sqlx::query_as(
        "SHOW GLOBAL STATUS WHERE Variable_name IN \
         ('wsrep_cluster_status', 'wsrep_local_state_comment', 'wsrep_ready', 'wsrep_cluster_size')",
    )
    .fetch_all(&mut conn)
    .await
    .context("asking Galera for the node's state")?;
    conn.close().await?;
    Ok(galera::status(&rows))
}

/// Runs statements built only from this module's constants and checked identifiers.
async fn exec(conn: &mut MySqlConnection, sql: String) -> sqlx::Result<()> {
    sqlx::raw_sql(AssertSqlSafe(sql)).execute(conn).await.map(|_| ())
}

/// svcdash's admin user (with this node's password) and the application database.
fn admin_statements(spec: &NodeSpec) -> Vec<String> {
    let (user, password) = (&spec.admin_user, spec.admin_password.expose_secret());
    vec![
        format!("CREATE USER IF NOT EXISTS '{user}'@'127.0.0.1' IDENTIFIED BY '{password}';"),
        format!("ALTER USER '{user}'@'127.0.0.1' IDENTIFIED BY '{password}';"),
        format!("GRANT ALL PRIVILEGES ON *.* TO '{user}'@'127.0.0.1' WITH GRANT OPTION;"),
        format!("CREATE DATABASE IF NOT EXISTS `{DATABASE}`;"),
        format!("CREATE USER IF NOT EXISTS '{OWNER}'@'localhost' ACCOUNT LOCK;"),
        format!("GRANT ALL PRIVILEGES ON `{DATABASE}`.* TO '{OWNER}'@'localhost';"),
    ]
}

/// Gives the views, routines, triggers and events of `app` whose definer no longer
/// exists to `app_owner`; logs what it could not.
async fn adopt_orphans_or_warn(conn: &mut MySqlConnection) {
    if let Err(e) = adopt_orphans(conn).await {
        tracing::warn!(error = format!("{e:#}"), "could not give objects of departed users to {OWNER}");
    }
}

async fn adopt_orphans(conn: &mut MySqlConnection) -> anyhow::Result<()> {
    let users: std::collections::HashSet<String> =
        sqlx::query_scalar("SELECT CAST(CONCAT(user, '@', host) AS CHAR) FROM mysql.user")
            .fetch_all(&mut *conn)
            .await?
            .into_iter()
            .collect();
    // (kind, name, definer); definers read `user@host`.
    let objects: Vec<(String, String, String)> = sqlx::query_as(
        "SELECT 'VIEW', table_name, definer FROM information_schema.views WHERE table_schema = ? \
         UNION ALL SELECT routine_type, routine_name, definer FROM information_schema.routines WHERE routine_schema = ? \
         UNION ALL SELECT 'TRIGGER', trigger_name, definer FROM information_schema.triggers WHERE trigger_schema = ? \
         UNION ALL SELECT 'EVENT', event_name, definer FROM information_schema.events WHERE event_schema = ?",
    )
    .bind(DATABASE)
    .bind(DATABASE)
    .bind(DATABASE)
    .bind(DATABASE)
    .fetch_all(&mut *conn)
    .await?;
    let owner = format!("`{OWNER}`@`localhost`");
    for (kind, name, definer) in objects.into_iter().filter(|(_, _, d)| !users.contains(d)) {
        let Some((user, host)) = definer.rsplit_once('@') else { continue };
        let quoted = format!("`{DATABASE}`.`{}`", name.replace('`', "``"));
        let old = format!("DEFINER=`{}`@`{}`", user.replace('`', "``"), host.replace('`', "``"));
        let statements = match kind.as_str() {
            "EVENT" => {
                // ALTER EVENT needs a clause besides the definer: its own comment again.
                let comment: String = sqlx::query_scalar(
                    "SELECT event_comment FROM information_schema.events WHERE event_schema = ? AND event_name = ?",
                )
                .bind(DATABASE)
                .bind(&name)
                .fetch_one(&mut *conn)
                .await?;
                let comment = comment.replace('\\', "\\\\").replace('\'', "''");
                vec![format!("ALTER DEFINER={owner} EVENT {quoted} COMMENT '{comment}'")]
            }
            "VIEW" | "PROCEDURE" | "FUNCTION" | "TRIGGER" => {
                // The server's own text of the object, one statement, with only its
                // definer changed; `SHOW CREATE` names no database, so it runs in `app`.
                let column = if kind == "VIEW" { 1 } else { 2 };
                let row =
                    sqlx::raw_sql(AssertSqlSafe(format!("SHOW CREATE {kind} {quoted}"))).fetch_one(&mut *conn).await?;
                let text: String = sqlx::Row::try_get(&row, column)?;
                anyhow::ensure!(text.contains(&old), "{kind} {name}: its text does not name its definer {definer}");
                let text = text.replacen(&old, &format!("DEFINER={owner}"), 1);
                if kind == "VIEW" {
                    vec![text.replacen("CREATE ", "CREATE OR REPLACE ", 1)]
                } else {
                    // Made again under the SQL mode it was made with (`||`, quotes).
                    let mode: String = sqlx::Row::try_get(&row, 1)?;
                    vec![
                        format!("SET SESSION sql_mode = '{}'", mode.replace('\'', "''")),
                        format!("DROP {kind} {quoted}"),
                        text,
                    ]
                }
            }
            _ => continue,
        };
        exec(conn, format!("USE `{DATABASE}`")).await?;
        for statement in statements {
            exec(conn, statement).await.with_context(|| format!("giving {kind} {name} to {OWNER}"))?;
        }
        tracing::info!(kind, name, definer, "gave an object of a departed user to {OWNER}");
    }
    Ok(())
}

/// One statement a line, as the server reads its init file.
fn write_init_file(node: &Node<'_>, statements: &[String]) -> anyhow::Result<()> {
    let path = init_file(node.layout);
    let (svcdash, _) = crate::layout::owners(node.run_as);
    let mut text = statements.join("\n");
    text.push('\n');
    files::write_new(&path, text.as_bytes(), svcdash, 0o640).context("writing the server's init file")
}

/// The tables holding users and their grants.
const PRIVILEGE_TABLES: &[&str] =
    &["global_priv", "db", "tables_priv", "columns_priv", "procs_priv", "proxies_priv", "roles_mapping"];

/// The live server's users and grants, as rows to put back into the privilege
/// tables (every user but MariaDB's own). Rows rather than `CREATE USER`/`GRANT`:
/// the server's init file runs plain statements without a user to grant as.
async fn privileges_now(spec: &NodeSpec) -> anyhow::Result<Vec<String>> {
    let mut conn = connect(spec).await?;
    let mut statements = Vec::new();
    for table in PRIVILEGE_TABLES {
        let columns: Vec<String> = sqlx::query_scalar(
            "SELECT CAST(column_name AS CHAR) FROM information_schema.columns \
             WHERE table_schema = 'mysql' AND table_name = ? ORDER BY ordinal_position",
        )
        .bind(table)
        .fetch_all(&mut conn)
        .await?;
        anyhow::ensure!(!columns.is_empty(), "mysql.{table} has no columns");
        let names = columns.iter().map(|c| format!("`{c}`")).collect::<Vec<_>>().join(", ");
        let values = columns.iter().map(|c| format!("QUOTE(`{c}`)")).collect::<Vec<_>>().join(", ");
        // QUOTE escapes every value and spells NULL as NULL.
        let sql = format!(
            "SELECT CAST(CONCAT('INSERT INTO mysql.{table} ({names}) VALUES (', CONCAT_WS(', ', {values}), ');') \
             AS CHAR) FROM mysql.{table} WHERE user <> '{SYSTEM_USER}'"
        );
        let rows: Vec<String> = sqlx::query_scalar(AssertSqlSafe(sql)).fetch_all(&mut conn).await?;
        statements.extend(rows);
    }
    conn.close().await?;
    anyhow::ensure!(
        statements.iter().any(|s| s.starts_with("INSERT INTO mysql.global_priv") && s.contains(&spec.admin_user)),
        "svcdash's admin user is missing"
    );
    Ok(statements)
}

/// An xbstream being unpacked beside the data.
struct Restore {
    child: Child,
    stderr: JoinHandle<String>,
}

#[async_trait]
impl StagedRestore for Restore {
    /// Prepares the unpacked copy (which checks it), then swaps it in for the data
    /// with the users of the live server; if the server does not come up on it, the
    /// old data goes back.
    async fn commit(self: Box<Self>, node: &Node<'_>, control: &dyn NodeControl) -> anyhow::Result<()> {
        let layout = node.layout;
        process::finish(self.child, self.stderr, "mbstream").await?;
        let staging = staging_dir(layout);
        anyhow::ensure!(
            files::read_small(&staging.join("xtrabackup_checkpoints")).is_some(),
            "the backup is not a mariadb-backup stream; the instance was not changed"
        );
        let mut prepare = node.command("mariadb-backup")?;
        prepare.arg("--no-defaults").arg("--prepare").arg(format!("--target-dir={}", staging.display()));
        process::run(prepare, "mariadb-backup --prepare").await?;

        let mut init: Vec<String> =
            PRIVILEGE_TABLES.iter().map(|t| format!("DELETE FROM mysql.{t} WHERE user <> '{SYSTEM_USER}';")).collect();
        init.extend(privileges_now(node.spec).await?);
        init.push("FLUSH PRIVILEGES;".to_owned());
        write_init_file(node, &init)?;

        let swapped = crate::swap::swap_in(layout, control, &staging).await;
        let _ = files::remove_tree(&init_file(layout));
        swapped?;
        // The backup's objects may be defined by users the live server does not have.
        let mut conn = connect(node.spec).await?;
        adopt_orphans_or_warn(&mut conn).await;
        conn.close().await?;
        Ok(())
    }

    async fn abort(mut self: Box<Self>, node: &Node<'_>) {
        let _ = self.child.kill().await;
        self.stderr.abort();
        if let Err(e) = files::remove_tree(&staging_dir(node.layout)) {
            tracing::warn!(error = format!("{e:#}"), "could not remove the staging folder of a failed restore");
        }
    }
}
