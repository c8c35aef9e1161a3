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
use async_trait::async_trait;
use secrecy::ExposeSecret;
use sha2::{Digest, Sha256};
use tokio::process::Command;

use crate::engine::{BackupStream, Engine, Node, NodeControl, RestoreSink, StagedRestore, StartMode};
use crate::{AppCredentials, NodeLayout, NodeSpec, Tools, files, process};

pub struct Redis;

fn config_file(layout: &NodeLayout) -> PathBuf {
    layout.system().join("redis.conf")
}

fn acl_file(layout: &NodeLayout) -> PathBuf {
    layout.data_dir().join("users.acl")
}

fn rdb_file(layout: &NodeLayout) -> PathBuf {
    layout.data_dir().join("dump.rdb")
}

/// Beside the data folder, not in it: svcdash writes it, and the engine cannot plant
/// anything in `persistent` itself.
fn staging_file(layout: &NodeLayout) -> PathBuf {
    layout.persistent().join("restore.rdb.partial")
}

fn aof_dir(layout: &NodeLayout) -> PathBuf {
    layout.data_dir().join("appendonlydir")
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

#[async_trait]
impl Engine for Redis {
    fn name(&self) -> &'static str {
        "redis"
    }

    fn short_name(&self) -> &'static str {
        "redis"
    }

    async fn version(&self, tools: &Tools) -> anyhow::Result<String> {
        // "Redis server v=7.0.15 sha=00000000:0 malloc=jemalloc-5.3.0 bits=64 build=..."
        let out = process::version_output(&tools.find(self, "redis-server")?, "--version").await?;
        out.split_whitespace()
            .find_map(|w| w.strip_prefix("v="))
            .map(str::to_owned)
            .context("redis-server --version said no version")
    }

    fn programs(&self) -> &'static [&'static str] {
        &["redis-server", "redis-cli"]
    }

    fn package(&self) -> &'static str {
        "redis-server"
    }

    fn process_names(&self) -> &'static [&'static str] {
        &["redis-server"]
    }

    fn pid_file(&self, layout: &NodeLayout) -> PathBuf {
        layout.run_dir().join("redis.pid")
    }

    fn backup_extension(&self) -> &'static str {
        "rdb"
    }

    fn backup_contents(&self) -> &'static str {
        "an RDB snapshot of every key in every database; users (ACLs) are not part of it"
    }

    /// Writes the server configuration (every start) and the ACL file (first start
    /// only); after a restore, the server starts from the RDB file alone.
    fn start_command(&self, node: &Node<'_>, mode: StartMode) -> anyhow::Result<Command> {
        write_config(node)?;
        let mut cmd = node.command("redis-server")?;
        cmd.arg(config_file(node.layout));
        if mode == StartMode::AfterRestore {
            // Without its AOF, Redis would start empty if appendonly were on: load the
            // RDB first, then write a new AOF from it.
            cmd.args(["--appendonly", "no"]);
        }
        Ok(cmd)
    }

    async fn is_ready(&self, node: &Node<'_>) -> bool {
        match connect(node.spec).await {
            Ok(mut conn) => {
                // While loading its data Redis answers LOADING; wait for a plain PONG.
                matches!(redis::cmd("PING").query_async::<String>(&mut conn).await, Ok(pong) if pong == "PONG")
            }
            Err(_) => false,
        }
    }

    async fn create_user(&self, node: &Node<'_>, username: &str, password: &str) -> anyhow::Result<AppCredentials> {
        let spec = node.spec;
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
            extra: Default::default(),
        })
    }

    async fn delete_user(&self, node: &Node<'_>, username: &str) -> anyhow::Result<()> {
        let mut conn = connect(node.spec).await?;
        redis::cmd("ACL").arg("DELUSER").arg(username).query_async::<()>(&mut conn).await?;
        redis::cmd("ACL").arg("SAVE").query_async::<()>(&mut conn).await?;
        Ok(())
    }

    /// `redis-cli --rdb -`: a consistent point-in-time snapshot, streamed as it is
    /// made. It runs as the engine's account (a client of a server a tenant's code
    /// runs in).
    async fn backup(&self, node: &Node<'_>) -> anyhow::Result<BackupStream> {
        let spec = node.spec;
        let mut cmd = node.command("redis-cli")?;
        cmd.args(["-h", "127.0.0.1", "-p", &spec.port.to_string(), "--user", &spec.admin_user, "--rdb", "-"])
            .env("REDISCLI_AUTH", spec.admin_password.expose_secret());
        let (reader, done) = process::stream_stdout(cmd, "redis-cli --rdb")?;
        Ok(BackupStream { reader: Box::new(reader), done })
    }

    /// The RDB file is written beside the data folder, and swapped in once complete.
    async fn begin_restore(&self, node: &Node<'_>) -> anyhow::Result<RestoreSink> {
        let writer = files::staging_writer(&staging_file(node.layout))?;
        Ok(RestoreSink { writer: Box::new(writer), staged: Box::new(Restore) })
    }
}

fn write_config(node: &Node<'_>) -> anyhow::Result<()> {
    let (layout, spec) = (node.layout, node.spec);
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
        pid = Redis.pid_file(layout).display(),
    );
    let (svcdash, engine) = crate::layout::owners(node.run_as);
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

/// An RDB file written completely beside the data.
struct Restore;

#[async_trait]
impl StagedRestore for Restore {
    /// Checks the file is an RDB file, then stops the server, swaps the file in (the
    /// append-only files go: they hold the old data) and starts it on the file.
    async fn commit(self: Box<Self>, node: &Node<'_>, control: &dyn NodeControl) -> anyhow::Result<()> {
        let layout = node.layout;
        let staging = staging_file(layout);
        let file = std::fs::OpenOptions::new().read(true).open(&staging)?;
        file.sync_all()?;
        let mut magic = [0u8; 5];
        std::io::Read::read_exact(&mut &file, &mut magic).context("reading the restored RDB file")?;
        anyhow::ensure!(&magic == b"REDIS", "the backup is not an RDB file; the instance was not changed");
        let (_, engine) = crate::layout::owners(node.run_as);
        files::give(&file, &staging, engine, 0o600)?;
        control.stop().await?;
        files::remove_tree(&aof_dir(layout)).context("removing the old append-only files")?;
        // `rename` replaces whatever is at `dump.rdb` (a link too) without following it.
        std::fs::rename(&staging, rdb_file(layout)).context("moving the restored RDB file in place")?;
        control.start(StartMode::AfterRestore).await?;
        enable_aof(node.spec).await
    }

    async fn abort(self: Box<Self>, node: &Node<'_>) {
        let _ = files::remove_tree(&staging_file(node.layout));
    }
}

/// Turns the append-only file back on after a restore started the server without it,
/// and waits until the rewrite of the restored data into a new AOF is done.
async fn enable_aof(spec: &NodeSpec) -> anyhow::Result<()> {
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
