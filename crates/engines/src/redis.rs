//! Redis: one server per node with RDB snapshots plus an append-only file. Users
//! live in an ACL file next to the data; a restore swaps in the backed-up RDB file.
//!
//! Every connection authenticates: the `default` user is off. svcdash's admin user
//! may do everything; a binding's user may do everything to the data and nothing to
//! the server — no `CONFIG` (its `dir` would let Redis write anywhere its account
//! can), `MODULE`, `DEBUG`, `ACL` changes, `SHUTDOWN`, replication (`REPLICAOF`,
//! `SLAVEOF`, `SYNC`, `PSYNC`, `FAILOVER`), `MIGRATE` (which connects elsewhere),
//! `SAVE`/`BGSAVE`, `MONITOR` or killing clients: what hosted Redis services
//! restrict as well.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use secrecy::ExposeSecret;
use sha2::{Digest, Sha256};
use tokio::process::Command;

use crate::files;
use crate::process::{self, RunAs};
use crate::{AppCredentials, EngineKind, NodeLayout, NodeSpec, Tools};

const REDIS: EngineKind = EngineKind::Redis;

fn config_file(layout: &NodeLayout) -> PathBuf {
    layout.system().join("redis.conf")
}

fn acl_file(layout: &NodeLayout) -> PathBuf {
    layout.data_dir().join("users.acl")
}

pub fn rdb_file(layout: &NodeLayout) -> PathBuf {
    layout.data_dir().join("dump.rdb")
}

/// Beside the data folder, not in it: svcdash writes it, and the engine cannot plant
/// anything in `persistent` itself.
pub fn staging_file(layout: &NodeLayout) -> PathBuf {
    layout.persistent().join("restore.rdb.partial")
}

fn aof_dir(layout: &NodeLayout) -> PathBuf {
    layout.data_dir().join("appendonlydir")
}

pub fn pid_file(layout: &NodeLayout) -> PathBuf {
    layout.run_dir().join("redis.pid")
}

/// What a binding's user may run: everything on the data, nothing on the server.
/// `@admin` holds CONFIG, MODULE, DEBUG, ACL changes, SHUTDOWN, SAVE, BGSAVE,
/// MONITOR, replication and client kills; the rest are named for clarity or are
/// outside `@admin` (MIGRATE).
const BINDING_RULES: &[&str] = &[
    "+@all",
    "-@admin",
    "-config",
    "-module",
    "-debug",
    "-shutdown",
    "-replicaof",
    "-slaveof",
    "-failover",
    "-sync",
    "-psync",
    "-migrate",
    "-save",
    "-bgsave",
    "-bgrewriteaof",
    "-monitor",
    "-acl",
    "+acl|whoami",
];

/// Writes the server configuration (every start) and the ACL file (first start only).
pub fn init(layout: &NodeLayout, spec: &NodeSpec, run_as: Option<RunAs>) -> anyhow::Result<()> {
    let config = format!(
        "# Written by svcdash; changes are overwritten.\n\
         bind 127.0.0.1\n\
         port {port}\n\
         protected-mode yes\n\
         daemonize no\n\
         dir {dir}\n\
         dbfilename dump.rdb\n\
         appendonly yes\n\
         repl-diskless-sync-delay 0\n\
         appenddirname appendonlydir\n\
         save 3600 1 300 100 60 10000\n\
         aclfile {acl}\n\
         pidfile {pid}\n\
         logfile \"\"\n\
         enable-protected-configs no\n\
         enable-debug-command no\n\
         enable-module-command no\n",
        port = spec.port,
        dir = layout.data_dir().display(),
        acl = acl_file(layout).display(),
        pid = pid_file(layout).display(),
    );
    let (svcdash, engine) = crate::layout::owners(run_as);
    files::write_new(&config_file(layout), config.as_bytes(), svcdash, 0o640).context("writing redis.conf")?;
    // In the engine's own folder: created with O_EXCL, so a link planted there is
    // refused rather than followed.
    let acl = acl_file(layout);
    if std::fs::symlink_metadata(&acl).is_err() {
        let hash = hex::encode(Sha256::digest(spec.admin_password.expose_secret().as_bytes()));
        let rules = format!("user default off resetchannels -@all\nuser {} on #{hash} ~* &* +@all\n", spec.admin_user);
        let mut file = files::create_new(&acl, 0o600)?;
        std::io::Write::write_all(&mut file, rules.as_bytes()).context("writing the ACL file")?;
        files::give(&file, &acl, engine, 0o600)?;
    }
    Ok(())
}

/// `redis-server` with the node's configuration and any `extra` settings (`--name value`).
pub fn start_command(
    tools: &Tools,
    layout: &NodeLayout,
    run_as: Option<RunAs>,
    extra: &[&str],
) -> anyhow::Result<Command> {
    let mut cmd = process::command(&tools.find(REDIS, "redis-server")?, run_as);
    cmd.arg(config_file(layout)).args(extra);
    Ok(cmd)
}

async fn connect(spec: &NodeSpec) -> anyhow::Result<redis::aio::MultiplexedConnection> {
    use redis::IntoConnectionInfo;
    let info = redis::ConnectionAddr::Tcp("127.0.0.1".into(), spec.port)
        .into_connection_info()
        .context("Redis address")?
        .set_redis_settings(
            redis::RedisConnectionInfo::default()
                .set_username(spec.admin_user.clone())
                .set_password(spec.admin_password.expose_secret()),
        );
    let client = redis::Client::open(info).context("Redis connection settings")?;
    client
        .get_multiplexed_async_connection()
        .await
        .with_context(|| format!("connecting to Redis on port {}", spec.port))
}

pub async fn is_ready(spec: &NodeSpec) -> bool {
    match connect(spec).await {
        Ok(mut conn) => {
            // While loading its data Redis answers LOADING; wait for a plain PONG.
            matches!(redis::cmd("PING").query_async::<String>(&mut conn).await, Ok(pong) if pong == "PONG")
        }
        Err(_) => false,
    }
}

pub async fn create_user(spec: &NodeSpec, username: &str, password: &str) -> anyhow::Result<AppCredentials> {
    let mut conn = connect(spec).await?;
    redis::cmd("ACL")
        .arg("SETUSER")
        .arg(username)
        .arg("reset")
        .arg("on")
        .arg(format!(">{password}"))
        .arg("~*")
        .arg("&*")
        .arg(BINDING_RULES)
        .query_async::<()>(&mut conn)
        .await
        .context("creating the Redis user")?;
    redis::cmd("ACL").arg("SAVE").query_async::<()>(&mut conn).await.context("saving Redis users")?;
    Ok(AppCredentials {
        host: "127.0.0.1".into(),
        port: spec.port,
        username: username.into(),
        password: password.into(),
        database: None,
        uri: format!("redis://{username}:{password}@127.0.0.1:{}", spec.port),
    })
}

pub async fn delete_user(spec: &NodeSpec, username: &str) -> anyhow::Result<()> {
    let mut conn = connect(spec).await?;
    redis::cmd("ACL").arg("DELUSER").arg(username).query_async::<()>(&mut conn).await?;
    redis::cmd("ACL").arg("SAVE").query_async::<()>(&mut conn).await?;
    Ok(())
}

/// `redis-cli --rdb -`: a consistent point-in-time snapshot, streamed as it is made.
/// It runs as the engine's account (a client of a server a tenant's code runs in).
pub fn dump_command(tools: &Tools, spec: &NodeSpec, run_as: Option<RunAs>) -> anyhow::Result<Command> {
    let mut cmd = process::command(&tools.find(REDIS, "redis-cli")?, run_as);
    cmd.args(["-h", "127.0.0.1", "-p", &spec.port.to_string(), "--user", &spec.admin_user, "--rdb", "-"])
        .env("REDISCLI_AUTH", spec.admin_password.expose_secret())
        .kill_on_drop(true);
    Ok(cmd)
}

/// Turns the append-only file back on after a restore started the server without it,
/// and waits until the rewrite of the restored data into a new AOF is done.
pub async fn enable_aof(spec: &NodeSpec) -> anyhow::Result<()> {
    let mut conn = connect(spec).await?;
    redis::cmd("CONFIG").arg("SET").arg("appendonly").arg("yes").query_async::<()>(&mut conn).await?;
    for _ in 0..600 {
        let info: String = redis::cmd("INFO").arg("persistence").query_async(&mut conn).await?;
        let field = |name: &str| {
            info.lines()
                .find_map(|l| l.strip_prefix(name).and_then(|v| v.strip_prefix(':')))
                .map(str::trim)
                .map(str::to_owned)
        };
        if field("aof_enabled").as_deref() == Some("1")
            && field("aof_rewrite_in_progress").as_deref() == Some("0")
            && field("aof_rewrite_scheduled").as_deref() == Some("0")
        {
            if field("aof_last_bgrewrite_status").as_deref() != Some("ok") {
                bail!("Redis could not write its append-only file after the restore");
            }
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    bail!("Redis did not finish writing its append-only file within a minute")
}

/// Swaps a fully written staging RDB file in for the node's data; the server must be
/// stopped. `rename` replaces whatever is at `dump.rdb` (a link too) without following it.
pub fn swap_in_staging(layout: &NodeLayout) -> anyhow::Result<()> {
    files::remove_tree(&aof_dir(layout)).context("removing the old append-only files")?;
    std::fs::rename(staging_file(layout), rdb_file(layout)).context("moving the restored RDB file in place")?;
    Ok(())
}
