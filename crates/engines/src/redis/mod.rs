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
//!
//! A cluster instance runs a master, replicas and a Sentinel beside each node
//! ([`sentinel`]); its users are made on every node, since Redis does not
//! replicate ACLs.

mod sentinel;

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use async_trait::async_trait;
use secrecy::ExposeSecret;
use sha2::{Digest, Sha256};
use tokio::process::Command;

use crate::engine::{
    BackupStream, ClusterKind, Companion, Engine, Node, NodeControl, Replication, RestoreSink, Role, StagedRestore,
    StartMode,
};
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

    fn cluster_ports(&self) -> &'static [&'static str] {
        &["sentinel"]
    }

    fn cluster_kind(&self) -> Option<ClusterKind> {
        Some(ClusterKind::MultiNode)
    }

    /// ACLs are the node's own: Redis replicates data, not users.
    fn users_replicate(&self) -> bool {
        false
    }

    fn role_name(&self, role: Role) -> &'static str {
        match role {
            Role::Primary => "master",
            Role::Replica => "replica",
            Role::Member => "member",
        }
    }

    /// What the node says (`ROLE`); a node that says master while its sentinel
    /// names another one is a former master Sentinel is about to turn into a
    /// replica, and counts as one.
    async fn role(&self, node: &Node<'_>) -> anyhow::Result<Role> {
        let mut conn = connect(node.spec).await?;
        let role: Vec<redis::Value> =
            redis::cmd("ROLE").query_async(&mut conn).await.context("asking Redis its role")?;
        match role.first() {
            Some(redis::Value::BulkString(name)) if name == b"master" => {}
            Some(redis::Value::BulkString(name)) if name == b"slave" => return Ok(Role::Replica),
            other => bail!("Redis answered ROLE with {other:?}"),
        }
        if node.spec.is_clustered() && sentinel::majority_names_another(node.spec).await {
            return Ok(Role::Replica);
        }
        Ok(Role::Primary)
    }

    /// A replica is in step once its link to the master is up (`ROLE` says
    /// `connected`) and the append-only file of what it received is written (a
    /// replica writing it refuses to shut down).
    async fn in_sync(&self, node: &Node<'_>) -> anyhow::Result<bool> {
        let mut conn = connect(node.spec).await?;
        let role: Vec<redis::Value> =
            redis::cmd("ROLE").query_async(&mut conn).await.context("asking Redis its role")?;
        let linked = match role.first() {
            Some(redis::Value::BulkString(name)) if name == b"slave" => {
                matches!(role.get(3), Some(redis::Value::BulkString(state)) if state == b"connected")
            }
            _ => true,
        };
        let info: String = redis::cmd("INFO").arg("persistence").query_async(&mut conn).await?;
        let busy = info.lines().any(|l| {
            matches!(
                l.trim(),
                "aof_rewrite_in_progress:1" | "aof_rewrite_scheduled:1" | "async_loading:1" | "loading:1"
            )
        });
        Ok(linked && !busy && sentinel::knows_cluster(node.spec).await)
    }

    /// From `INFO replication`: a master's replicas' acknowledged offsets and
    /// seconds since their last acknowledgement; a replica's offset against its
    /// master's and seconds since it last heard from it.
    async fn replication(&self, node: &Node<'_>) -> anyhow::Result<Option<Replication>> {
        if !node.spec.is_clustered() {
            return Ok(None);
        }
        let info: String = redis::cmd("INFO").arg("replication").query_async(&mut connect(node.spec).await?).await?;
        let field = |name: &str| info.lines().find_map(|l| l.strip_prefix(name)?.strip_prefix(':')).map(str::trim);
        let offset = field("master_repl_offset").and_then(|v| v.parse::<u64>().ok());
        if field("role") == Some("master") {
            let (mut bytes, mut seconds) = (None::<u64>, None::<u64>);
            for line in info.lines().filter(|l| l.starts_with("slave") && l.contains("offset=")) {
                let get = |key: &str| line.split(',').find_map(|f| f.strip_prefix(key)?.parse::<u64>().ok());
                if let (Some(own), Some(theirs)) = (offset, get("offset=")) {
                    bytes = Some(bytes.unwrap_or(0).max(own.saturating_sub(theirs)));
                }
                if let Some(lag) = get("lag=") {
                    seconds = Some(seconds.unwrap_or(0).max(lag));
                }
            }
            return Ok(Some(Replication {
                role: Role::Primary,
                lag_bytes: bytes,
                lag_seconds: seconds,
                members: None,
            }));
        }
        let seconds = field("master_last_io_seconds_ago").and_then(|v| v.parse::<u64>().ok());
        let master_port = field("master_port").and_then(|v| v.parse::<u16>().ok());
        let mut bytes = None;
        if let (Some(own), Some(port)) = (offset, master_port)
            && let Ok(mut master) = connect_to(node.spec, port).await
            && let Ok(info) = redis::cmd("INFO").arg("replication").query_async::<String>(&mut master).await
            && let Some(theirs) = info
                .lines()
                .find_map(|l| l.strip_prefix("master_repl_offset:"))
                .and_then(|v| v.trim().parse::<u64>().ok())
        {
            bytes = Some(theirs.saturating_sub(own));
        }
        Ok(Some(Replication { role: Role::Replica, lag_bytes: bytes, lag_seconds: seconds, members: None }))
    }

    async fn switchover(&self, node: &Node<'_>) -> anyhow::Result<()> {
        sentinel::failover(node.spec).await
    }

    fn companions(&self, node: &Node<'_>) -> anyhow::Result<Vec<Companion>> {
        match node.spec.is_clustered() {
            true => Ok(vec![sentinel::companion(node)?]),
            false => Ok(Vec::new()),
        }
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

    /// On a node of a cluster, the user is made on its sentinel too, and the
    /// credentials name every sentinel and the master's name besides this node's
    /// address.
    async fn create_user(&self, node: &Node<'_>, username: &str, password: &str) -> anyhow::Result<AppCredentials> {
        let spec = node.spec;
        let mut conn = connect(spec).await?;
        set_user(&mut conn, username, password, &["~*"], BINDING_RULES).await.context("creating the Redis user")?;
        redis::cmd("ACL").arg("SAVE").query_async::<()>(&mut conn).await.context("saving Redis users")?;
        if spec.is_clustered() {
            sentinel::create_user(spec, username, password).await?;
        }
        self.credentials(spec, username, password)
    }

    fn credentials(&self, spec: &NodeSpec, username: &str, password: &str) -> anyhow::Result<AppCredentials> {
        let mut extra = serde_json::Map::new();
        if spec.is_clustered() {
            let mut sentinels = vec![sentinel::port(spec)?];
            for peer in &spec.peers {
                sentinels.push(peer.port_named(self, "sentinel")?);
            }
            sentinels.sort_unstable();
            let sentinels: Vec<_> =
                sentinels.into_iter().map(|port| serde_json::json!({"host": "127.0.0.1", "port": port})).collect();
            extra.insert("sentinels".into(), sentinels.into());
            extra.insert("master_name".into(), sentinel::master_name(spec).into());
        }
        Ok(AppCredentials {
            host: "127.0.0.1".into(),
            port: spec.port,
            username: username.into(),
            password: password.into(),
            database: None,
            uri: format!("redis://{username}:{password}@127.0.0.1:{}", spec.port),
            extra,
        })
    }

    async fn delete_user(&self, node: &Node<'_>, username: &str) -> anyhow::Result<()> {
        let mut conn = connect(node.spec).await?;
        redis::cmd("ACL").arg("DELUSER").arg(username).query_async::<()>(&mut conn).await?;
        redis::cmd("ACL").arg("SAVE").query_async::<()>(&mut conn).await?;
        if node.spec.is_clustered() {
            sentinel::delete_user(node.spec, username).await?;
        }
        Ok(())
    }

    /// `redis-cli --rdb -`: a consistent point-in-time snapshot, streamed as it is
    /// made. It runs as the engine's account (a client of a server a tenant's code
    /// runs in). On a replica, it starts once the replica has everything its master
    /// had written when the backup began, so the backup holds every write
    /// acknowledged before it.
    async fn backup(&self, node: &Node<'_>) -> anyhow::Result<BackupStream> {
        let spec = node.spec;
        if spec.is_clustered() {
            catch_up(spec).await?;
        }
        let mut cmd = node.command("redis-cli")?;
        cmd.args(["-h", "127.0.0.1", "-p", &spec.port.to_string(), "--user", &spec.admin_user, "--rdb", "-"])
            .env("REDISCLI_AUTH", spec.admin_password.expose_secret());
        // The last snapshot on disk is the size of the next one, near enough.
        let estimated_size = std::fs::symlink_metadata(node.layout.data_dir().join("dump.rdb")).ok().map(|m| m.len());
        let (reader, done) = process::stream_stdout(cmd, "redis-cli --rdb")?;
        Ok(BackupStream { reader: Box::new(reader), done, estimated_size, layout: None })
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
         enable-module-command no\n\
         {replication}",
        replication = if spec.is_clustered() { sentinel::replication_config(spec) } else { String::new() },
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

/// Makes (or resets) `username` with `password`, every channel, the key patterns
/// `keys` and the command `rules`: the same `ACL SETUSER` on nodes and sentinels.
async fn set_user(
    conn: &mut redis::aio::MultiplexedConnection,
    username: &str,
    password: &str,
    keys: &[&str],
    rules: &[&str],
) -> redis::RedisResult<()> {
    redis::cmd("ACL")
        .arg("SETUSER")
        .arg(username)
        .arg("reset")
        .arg("on")
        .arg(format!(">{password}"))
        .arg(keys)
        .arg("&*")
        .arg(rules)
        .query_async(conn)
        .await
}

async fn connect(spec: &NodeSpec) -> anyhow::Result<redis::aio::MultiplexedConnection> {
    connect_to(spec, spec.port).await
}

/// Connects as svcdash's admin to the node's server, or its sentinel's `port`.
async fn connect_to(spec: &NodeSpec, port: u16) -> anyhow::Result<redis::aio::MultiplexedConnection> {
    use redis::IntoConnectionInfo;
    let info = redis::ConnectionAddr::Tcp("127.0.0.1".into(), port)
        .into_connection_info()
        .context("Redis address")?
        .set_redis_settings(
            redis::RedisConnectionInfo::default()
                .set_username(spec.admin_user.clone())
                .set_password(spec.admin_password.expose_secret()),
        );
    let client = redis::Client::open(info).context("Redis connection settings")?;
    client.get_multiplexed_async_connection().await.with_context(|| format!("connecting to Redis on port {port}"))
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

/// How long a replica may take to catch up with its master before a backup.
const CATCH_UP_TIMEOUT: Duration = Duration::from_secs(30);

/// Waits until the node, if it is a replica, has processed its master's write
/// position as of now.
async fn catch_up(spec: &NodeSpec) -> anyhow::Result<()> {
    let mut conn = connect(spec).await?;
    let info = |text: &str, name: &str| {
        text.lines().find_map(|l| l.strip_prefix(name)?.strip_prefix(':')).map(str::trim).map(str::to_owned)
    };
    let own: String = redis::cmd("INFO").arg("replication").query_async(&mut conn).await?;
    if info(&own, "role").as_deref() != Some("slave") {
        return Ok(());
    }
    let port = info(&own, "master_port").and_then(|p| p.parse::<u16>().ok()).context("the replica names no master")?;
    let master: String = redis::cmd("INFO").arg("replication").query_async(&mut connect_to(spec, port).await?).await?;
    let target = info(&master, "master_repl_offset")
        .and_then(|o| o.parse::<u64>().ok())
        .context("the master said no replication offset")?;
    let started = std::time::Instant::now();
    loop {
        let own: String = redis::cmd("INFO").arg("replication").query_async(&mut conn).await?;
        if info(&own, "master_repl_offset").and_then(|o| o.parse::<u64>().ok()).is_some_and(|o| o >= target) {
            return Ok(());
        }
        if started.elapsed() > CATCH_UP_TIMEOUT {
            bail!(
                "node {} is a replica {} s behind its master; no backup was taken from it",
                spec.index,
                CATCH_UP_TIMEOUT.as_secs()
            );
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
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
