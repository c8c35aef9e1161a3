//! Redis clusters: one master and its replicas, with a Sentinel beside every node
//! that fails the master over when it stops answering (quorum: a majority of the
//! sentinels).
//!
//! Every connection authenticates here too. Nodes share the instance's admin
//! password: replicas log in to their master with it, sentinels to the nodes and to
//! each other. A sentinel's own `default` user is off; a binding's user may only
//! ask it where the master is (what clients of Sentinel do) and never change it.
//!
//! Sentinel rewrites its configuration file as the cluster changes, so the file is
//! written once, by svcdash, and then belongs to the engine.

use std::path::PathBuf;

use anyhow::Context;
use secrecy::ExposeSecret;
use sha2::{Digest, Sha256};

use crate::engine::{Companion, Node};
use crate::{NodeLayout, NodeSpec, files};

/// How long a master may stay silent before the sentinels call it down. Short for
/// fast failovers, long enough that a loaded small host does not fail over by
/// mistake.
const DOWN_AFTER_MS: u32 = 3000;
/// How long a failover may take before another sentinel tries.
const FAILOVER_TIMEOUT_MS: u32 = 10_000;

/// The commands a binding's user may send a sentinel: enough for clients to find
/// the master, its replicas and the other sentinels, and to follow failovers.
const BINDING_RULES: &[&str] = &[
    "-@all",
    "+auth",
    "+hello",
    "+ping",
    "+role",
    "+sentinel|get-master-addr-by-name",
    "+sentinel|master",
    "+sentinel|masters",
    "+sentinel|replicas",
    "+sentinel|slaves",
    "+sentinel|sentinels",
    "+subscribe",
    "+psubscribe",
    "+unsubscribe",
    "+punsubscribe",
];

/// The name the sentinels know the instance's master by: the instance's local name
/// (one svcdash made, fit for any configuration file).
pub fn master_name(spec: &NodeSpec) -> &str {
    &spec.local_name
}

pub fn port(spec: &NodeSpec) -> anyhow::Result<u16> {
    spec.port_named("sentinel")
}

fn config_file(layout: &NodeLayout) -> PathBuf {
    layout.data_dir().join("sentinel.conf")
}

fn pid_file(layout: &NodeLayout) -> PathBuf {
    layout.run_dir().join("sentinel.pid")
}

/// The lines of a cluster node's `redis.conf`: how it logs in to a master, and whom
/// it replicates when it was last seen as a replica (or is new and not the first
/// node). A node last seen as the master starts as one; Sentinel corrects a stale
/// view within seconds, and never by copying a replica's data over the master's.
pub fn replication_config(spec: &NodeSpec) -> String {
    let mut lines = format!(
        "masteruser {}\nmasterauth {}\nreplica-read-only yes\nreplica-serve-stale-data yes\n",
        spec.admin_user,
        spec.admin_password.expose_secret()
    );
    if let Some((index, port)) = spec.last_primary().or_else(|| first_node(spec))
        && index != spec.index
    {
        lines.push_str(&format!("replicaof 127.0.0.1 {port}\n"));
    }
    lines
}

/// Node 0, the master of a cluster none of whose nodes was seen yet.
fn first_node(spec: &NodeSpec) -> Option<(i64, u16)> {
    if spec.index == 0 {
        return Some((0, spec.port));
    }
    spec.peers.iter().find(|p| p.index == 0).map(|p| (p.index, p.port))
}

/// The node's sentinel, its configuration written first if it has none.
pub fn companion(node: &Node<'_>) -> anyhow::Result<Companion> {
    let (layout, spec) = (node.layout, node.spec);
    let port = port(spec)?;
    let file = config_file(layout);
    if std::fs::symlink_metadata(&file).is_err() {
        write_config(node, port, &file)?;
    }
    let mut command = node.command("redis-server")?;
    command.arg(&file).arg("--sentinel");
    Ok(Companion { name: "redis-sentinel", command, port, pid_file: pid_file(layout), before_server: false })
}

fn write_config(node: &Node<'_>, port: u16, file: &std::path::Path) -> anyhow::Result<()> {
    let (layout, spec) = (node.layout, node.spec);
    let (_, master_port) = spec.last_primary().or_else(|| first_node(spec)).context("the cluster has no node 0")?;
    let name = master_name(spec);
    let password = spec.admin_password.expose_secret();
    let hash = hex::encode(Sha256::digest(password.as_bytes()));
    // A majority of the sentinels, one per node.
    let nodes = spec.peers.len() + 1;
    let quorum = nodes / 2 + 1;
    let config = format!(
        "# Written by svcdash once; Sentinel keeps it up to date from here on.\n\
         port {port}\n\
         bind 127.0.0.1\n\
         daemonize no\n\
         dir {dir}\n\
         pidfile {pid}\n\
         logfile \"\"\n\
         sentinel resolve-hostnames no\n\
         sentinel deny-scripts-reconfig yes\n\
         user default off resetchannels -@all\n\
         user {admin} on #{hash} ~* &* +@all\n\
         sentinel sentinel-user {admin}\n\
         sentinel sentinel-pass {password}\n\
         sentinel monitor {name} 127.0.0.1 {master_port} {quorum}\n\
         sentinel auth-user {name} {admin}\n\
         sentinel auth-pass {name} {password}\n\
         sentinel down-after-milliseconds {name} {DOWN_AFTER_MS}\n\
         sentinel failover-timeout {name} {FAILOVER_TIMEOUT_MS}\n\
         sentinel parallel-syncs {name} 1\n",
        dir = layout.data_dir().display(),
        pid = pid_file(layout).display(),
        admin = spec.admin_user,
    );
    // In the engine's own folder: created with O_EXCL, so a link planted there is
    // refused rather than followed; then it is the engine's to rewrite.
    let (_, engine) = crate::layout::owners(node.run_as);
    let mut out = files::create_new(file, 0o600)?;
    std::io::Write::write_all(&mut out, config.as_bytes()).context("writing sentinel.conf")?;
    files::give(&out, file, engine, 0o600)
}

/// Connects to the node's sentinel as svcdash's admin.
async fn connect(spec: &NodeSpec) -> anyhow::Result<redis::aio::MultiplexedConnection> {
    super::connect_to(spec, port(spec)?).await
}

/// The port of the master as the node's sentinel knows it (`None` before it knows
/// one).
pub async fn master_port(spec: &NodeSpec) -> anyhow::Result<Option<u16>> {
    let mut conn = connect(spec).await?;
    let addr: Option<(String, u16)> = redis::cmd("SENTINEL")
        .arg("GET-MASTER-ADDR-BY-NAME")
        .arg(master_name(spec))
        .query_async(&mut conn)
        .await
        .context("asking Sentinel for the master")?;
    Ok(addr.map(|(_, port)| port))
}

/// More replicas than a cluster has: a master asked for this many refuses writes.
const REFUSE_WRITES: &str = "1000";

/// How long a switchover may take before it counts as failed.
const SWITCHOVER_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);

/// Hands the master role of `spec` to a replica without losing an acknowledged
/// write: the master refuses writes from here on (it asks for more replicas than
/// it has, so clients get `NOREPLICAS` and retry), a replica is waited for until
/// it has everything, then the node's sentinel fails the master over (no vote
/// needed). Once Sentinel has made the old master a replica, its setting goes
/// back. (`CLIENT PAUSE WRITE` would also hold Sentinel's own reconfiguration
/// of the old master until the pause ran out.)
pub async fn failover(spec: &NodeSpec) -> anyhow::Result<()> {
    let mut master = super::connect(spec).await?;
    redis::cmd("CONFIG")
        .arg("SET")
        .arg("min-replicas-to-write")
        .arg(REFUSE_WRITES)
        .query_async::<()>(&mut master)
        .await
        .context("stopping the master's writes")?;
    let result = async {
        wait_for_a_replica(&mut master).await?;
        let started = std::time::Instant::now();
        let new_master = switch(spec).await?;
        tracing::info!(seconds = started.elapsed().as_secs_f64(), port = new_master, "Sentinel promoted a replica");
        // Sentinel tells a master it replaced only seconds later; until then it
        // would take writes again once its setting goes back. What Sentinel
        // would send it, sent now:
        redis::cmd("REPLICAOF")
            .arg("127.0.0.1")
            .arg(new_master)
            .query_async::<()>(&mut master)
            .await
            .context("making the old master a replica of the new one")?;
        let started = std::time::Instant::now();
        loop {
            let role = match redis::cmd("ROLE").query_async::<Vec<redis::Value>>(&mut master).await {
                Ok(role) => role,
                Err(_) => {
                    master = super::connect(spec).await?;
                    continue;
                }
            };
            if matches!(role.first(), Some(redis::Value::BulkString(name)) if name == b"slave") {
                return Ok(());
            }
            anyhow::ensure!(
                started.elapsed() < SWITCHOVER_TIMEOUT,
                "Sentinel did not turn the old master into a replica within {} s",
                SWITCHOVER_TIMEOUT.as_secs()
            );
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }
    .await;
    // Back to the default, which the node's configuration file also has.
    let restored = async {
        let mut conn = super::connect(spec).await?;
        redis::cmd("CONFIG").arg("SET").arg("min-replicas-to-write").arg("0").query_async::<()>(&mut conn).await?;
        anyhow::Ok(())
    }
    .await;
    result?;
    restored.context("letting the old master take writes again once it is a replica")
}

/// Waits until a replica has received everything the master wrote before it
/// stopped taking writes. (The master's offset keeps growing after that: the
/// sentinels publish on it every few seconds.)
async fn wait_for_a_replica(master: &mut redis::aio::MultiplexedConnection) -> anyhow::Result<()> {
    let offset = |text: &str| text.trim().parse::<u64>().ok();
    let info: String = redis::cmd("INFO").arg("replication").query_async(master).await?;
    let written = info
        .lines()
        .find_map(|l| l.strip_prefix("master_repl_offset:"))
        .and_then(offset)
        .context("Redis did not say its replication offset")?;
    let started = std::time::Instant::now();
    while started.elapsed() < SWITCHOVER_TIMEOUT {
        let info: String = redis::cmd("INFO").arg("replication").query_async(master).await?;
        let caught_up = info.lines().filter(|l| l.starts_with("slave")).any(|l| {
            l.contains("state=online")
                && l.split(',').any(|f| f.strip_prefix("offset=").and_then(offset).is_some_and(|o| o >= written))
        });
        if caught_up {
            return Ok(());
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    anyhow::bail!("no replica caught up with the master within {} s", SWITCHOVER_TIMEOUT.as_secs())
}

/// Asks the node's sentinel for the failover and waits until it names another
/// master that says it is one; returns that master's port.
async fn switch(spec: &NodeSpec) -> anyhow::Result<u16> {
    let mut conn = connect(spec).await?;
    redis::cmd("SENTINEL")
        .arg("FAILOVER")
        .arg(master_name(spec))
        .query_async::<()>(&mut conn)
        .await
        .context("asking Sentinel to fail the master over")?;
    let started = std::time::Instant::now();
    while started.elapsed() < SWITCHOVER_TIMEOUT {
        if let Ok(Some(port)) = master_port(spec).await
            && port != spec.port
            && let Ok(mut master) = super::connect_to(spec, port).await
            && let Ok(role) = redis::cmd("ROLE").query_async::<Vec<redis::Value>>(&mut master).await
            && matches!(role.first(), Some(redis::Value::BulkString(name)) if name == b"master")
        {
            return Ok(port);
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    anyhow::bail!("no replica took over from the master within {} s", SWITCHOVER_TIMEOUT.as_secs())
}

/// Whether the node's sentinel knows every other node as a replica or the master,
/// and every other sentinel. A sentinel learns of replicas from the master every
/// ten seconds: one that has not yet, elected leader when the master dies, finds
/// "no good replica" and the failover waits for the next election (a kill soon
/// after provisioning took 45 s).
pub async fn knows_cluster(spec: &NodeSpec) -> bool {
    let others = spec.peers.len();
    let count = async |what: &str| -> anyhow::Result<usize> {
        let mut conn = connect(spec).await?;
        let list: Vec<redis::Value> =
            redis::cmd("SENTINEL").arg(what).arg(master_name(spec)).query_async(&mut conn).await?;
        Ok(list.len())
    };
    matches!(count("REPLICAS").await, Ok(n) if n >= others) && matches!(count("SENTINELS").await, Ok(n) if n >= others)
}

/// Whether most of the sentinels that answer name another node than `spec` as
/// the master: a node that still says master then is a former master about to
/// be told. (One sentinel alone may not have heard of a failover yet.)
pub async fn majority_names_another(spec: &NodeSpec) -> bool {
    let mut ports = vec![port(spec).ok()];
    ports.extend(spec.peers.iter().map(|p| p.port_named(&super::Redis, "sentinel").ok()));
    let (mut this, mut another) = (0, 0);
    for sentinel in ports.into_iter().flatten() {
        let answer = async {
            let mut conn = super::connect_to(spec, sentinel).await?;
            let addr: Option<(String, u16)> = redis::cmd("SENTINEL")
                .arg("GET-MASTER-ADDR-BY-NAME")
                .arg(master_name(spec))
                .query_async(&mut conn)
                .await?;
            anyhow::Ok(addr.map(|(_, port)| port))
        };
        match tokio::time::timeout(std::time::Duration::from_millis(500), answer).await {
            Ok(Ok(Some(port))) if port == spec.port => this += 1,
            Ok(Ok(Some(_))) => another += 1,
            _ => {}
        }
    }
    another > this
}

/// Gives a binding's user the right to ask the node's sentinel where the master
/// is, and saves it in the sentinel's file.
pub async fn create_user(spec: &NodeSpec, username: &str, password: &str) -> anyhow::Result<()> {
    let mut conn = connect(spec).await?;
    super::set_user(&mut conn, username, password, &[], BINDING_RULES)
        .await
        .context("creating the user on Sentinel")?;
    flush(&mut conn).await
}

pub async fn delete_user(spec: &NodeSpec, username: &str) -> anyhow::Result<()> {
    let mut conn = connect(spec).await?;
    redis::cmd("ACL").arg("DELUSER").arg(username).query_async::<()>(&mut conn).await?;
    flush(&mut conn).await
}

/// Sentinel keeps users in its configuration file but rewrites it only when asked.
async fn flush(conn: &mut redis::aio::MultiplexedConnection) -> anyhow::Result<()> {
    redis::cmd("SENTINEL").arg("FLUSHCONFIG").query_async::<()>(conn).await.context("saving Sentinel's users")
}
