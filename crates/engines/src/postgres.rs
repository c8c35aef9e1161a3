//! PostgreSQL: one cluster per node, one application database owned by a NOLOGIN
//! role. Bound users are members of that role, so whatever they create belongs to
//! the database owner and survives their unbinding and a restore.

use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, bail};
use secrecy::ExposeSecret;
use sqlx::postgres::PgConnectOptions;
use sqlx::{AssertSqlSafe, ConnectOptions, Connection, PgConnection};
use tokio::process::{Child, ChildStdin, Command};
use tokio::task::JoinHandle;

use crate::process::{self, RunAs};
use crate::{AppCredentials, EngineKind, NodeLayout, NodeSpec, Tools};

/// The application database and the role that owns it.
pub const DATABASE: &str = "app";
const OWNER: &str = "app_owner";
/// Where a restore loads before it replaces the application database.
const STAGING: &str = "app_restore";
const REPLACED: &str = "app_replaced";

const PG: EngineKind = EngineKind::Postgresql;

fn data_dir(layout: &NodeLayout) -> std::path::PathBuf {
    layout.persistent().join("pgdata")
}

/// Creates the cluster unless it exists already (so a resumed provision is safe).
pub async fn init(tools: &Tools, layout: &NodeLayout, spec: &NodeSpec, run_as: Option<RunAs>) -> anyhow::Result<()> {
    let data = data_dir(layout);
    if data.join("PG_VERSION").exists() {
        return Ok(());
    }
    if data.exists() {
        // A half-made cluster from an interrupted initdb.
        std::fs::remove_dir_all(&data).context("removing an incomplete cluster")?;
    }
    let pwfile = layout.system().join("initdb.pw");
    write_private(&pwfile, spec.admin_password.expose_secret(), run_as)?;
    let mut cmd = process::command(&tools.find(PG, "initdb")?, run_as);
    cmd.arg("-D")
        .arg(&data)
        .args(["--username", &spec.admin_user, "--auth", "scram-sha-256", "--encoding", "UTF8", "--locale", "C"])
        .arg(format!("--pwfile={}", pwfile.display()));
    let result = process::run(cmd, "initdb").await;
    let _ = std::fs::remove_file(&pwfile);
    result.map(|_| ())
}

pub fn start_command(
    tools: &Tools,
    layout: &NodeLayout,
    spec: &NodeSpec,
    run_as: Option<RunAs>,
) -> anyhow::Result<Command> {
    let mut cmd = process::command(&tools.find(PG, "postgres")?, run_as);
    cmd.arg("-D")
        .arg(data_dir(layout))
        .arg("-c")
        .arg(format!("port={}", spec.port))
        .args(["-c", "listen_addresses=127.0.0.1"])
        // TCP only: a socket path under a deep data folder can pass the 107-byte limit.
        .args(["-c", "unix_socket_directories="])
        .args(["-c", "logging_collector=off"]);
    Ok(cmd)
}

fn options(spec: &NodeSpec, database: &str) -> PgConnectOptions {
    PgConnectOptions::new()
        .host("127.0.0.1")
        .port(spec.port)
        .username(&spec.admin_user)
        .password(spec.admin_password.expose_secret())
        .database(database)
        .disable_statement_logging()
}

async fn connect(spec: &NodeSpec, database: &str) -> anyhow::Result<PgConnection> {
    PgConnection::connect_with(&options(spec, database))
        .await
        .with_context(|| format!("connecting to PostgreSQL on port {}", spec.port))
}

pub async fn is_ready(spec: &NodeSpec) -> bool {
    match connect(spec, "postgres").await {
        Ok(conn) => {
            let _ = conn.close().await;
            true
        }
        Err(_) => false,
    }
}

/// Creates the owner role and the application database if missing.
pub async fn setup(spec: &NodeSpec) -> anyhow::Result<()> {
    let mut conn = connect(spec, "postgres").await?;
    let role: Option<i32> =
        sqlx::query_scalar("SELECT 1 FROM pg_roles WHERE rolname = $1").bind(OWNER).fetch_optional(&mut conn).await?;
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
    conn.close().await?;
    // PostgreSQL 15 no longer lets every role create in `public`; the owner role needs it.
    let mut conn = connect(spec, DATABASE).await?;
    exec(&mut conn, format!("ALTER SCHEMA public OWNER TO {OWNER}")).await?;
    conn.close().await?;
    Ok(())
}

/// Runs statements built only from this module's constants and checked identifiers.
async fn exec(conn: &mut PgConnection, sql: String) -> sqlx::Result<()> {
    sqlx::raw_sql(AssertSqlSafe(sql)).execute(conn).await.map(|_| ())
}

fn check_identifier(name: &str) -> anyhow::Result<()> {
    if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        bail!("{name:?} is not a safe identifier");
    }
    Ok(())
}

pub async fn create_user(spec: &NodeSpec, username: &str, password: &str) -> anyhow::Result<AppCredentials> {
    check_identifier(username)?;
    check_identifier(password)?;
    let mut conn = connect(spec, "postgres").await?;
    let exists: Option<i32> = sqlx::query_scalar("SELECT 1 FROM pg_roles WHERE rolname = $1")
        .bind(username)
        .fetch_optional(&mut conn)
        .await?;
    let verb = if exists.is_some() { "ALTER" } else { "CREATE" };
    exec(&mut conn, format!("{verb} ROLE {username} LOGIN PASSWORD '{password}'")).await?;
    exec(&mut conn, format!("GRANT {OWNER} TO {username}; ALTER ROLE {username} SET role = '{OWNER}'")).await?;
    conn.close().await?;
    Ok(AppCredentials {
        host: "127.0.0.1".into(),
        port: spec.port,
        username: username.into(),
        password: password.into(),
        database: Some(DATABASE.into()),
        uri: format!("postgres://{username}:{password}@127.0.0.1:{}/{DATABASE}", spec.port),
    })
}

pub async fn delete_user(spec: &NodeSpec, username: &str) -> anyhow::Result<()> {
    check_identifier(username)?;
    let mut conn = connect(spec, "postgres").await?;
    sqlx::query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = $1")
        .bind(username)
        .execute(&mut conn)
        .await?;
    exec(&mut conn, format!("DROP ROLE IF EXISTS {username}")).await?;
    conn.close().await?;
    Ok(())
}

fn client_command(tools: &Tools, program: &str, spec: &NodeSpec) -> anyhow::Result<Command> {
    // Client programs connect over TCP, so they need not run as the engine user.
    let mut cmd = process::command(&tools.find(PG, program)?, None);
    cmd.args(["--host", "127.0.0.1", "--port", &spec.port.to_string(), "--username", &spec.admin_user])
        .arg("--no-password")
        .env("PGPASSWORD", spec.admin_password.expose_secret())
        .env("PGCONNECT_TIMEOUT", "10")
        .kill_on_drop(true);
    Ok(cmd)
}

/// `pg_dump` of the application database in the custom format, uncompressed: svcdash compresses.
pub fn dump_command(tools: &Tools, spec: &NodeSpec) -> anyhow::Result<Command> {
    let mut cmd = client_command(tools, "pg_dump", spec)?;
    cmd.args(["--format=custom", "--compress=0", "--dbname", DATABASE]);
    Ok(cmd)
}

/// A load in progress into the staging database.
pub struct Restore {
    child: Child,
    stderr: JoinHandle<String>,
}

/// Creates an empty staging database and starts `pg_restore` into it; the returned
/// stdin takes the dump. The application database is not touched until [`commit`].
pub async fn begin_restore(tools: &Tools, spec: &NodeSpec) -> anyhow::Result<(ChildStdin, Restore)> {
    let mut conn = connect(spec, "postgres").await?;
    exec(&mut conn, format!("DROP DATABASE IF EXISTS {STAGING} WITH (FORCE)")).await?;
    exec(&mut conn, format!("CREATE DATABASE {STAGING} OWNER {OWNER} TEMPLATE template0 ENCODING 'UTF8'")).await?;
    conn.close().await?;

    let mut cmd = client_command(tools, "pg_restore", spec)?;
    cmd.args(["--exit-on-error", "--single-transaction", "--dbname", STAGING])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().context("starting pg_restore")?;
    let stdin = child.stdin.take().context("pg_restore has no stdin")?;
    let stderr = process::collect_tail(child.stderr.take().context("pg_restore has no stderr")?);
    Ok((stdin, Restore { child, stderr }))
}

/// Waits for `pg_restore`, then swaps the staging database in for the application
/// database. Connections are refused for the moment of the swap and the old data dropped.
pub async fn commit(spec: &NodeSpec, restore: Restore) -> anyhow::Result<()> {
    process::finish(restore.child, restore.stderr, "pg_restore").await?;
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
        format!("DROP DATABASE {REPLACED} WITH (FORCE)"),
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
    Ok(())
}

/// Stops a load and drops the staging database; the application database stays as it was.
pub async fn abort(spec: &NodeSpec, mut restore: Restore) {
    let _ = restore.child.kill().await;
    restore.stderr.abort();
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

/// Writes a file only the engine user can read.
pub(crate) fn write_private(path: &std::path::Path, text: &str, run_as: Option<RunAs>) -> anyhow::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let _ = std::fs::remove_file(path);
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("writing {}", path.display()))?;
    file.write_all(text.as_bytes())?;
    process::chown_tree(path, run_as)?;
    Ok(())
}
