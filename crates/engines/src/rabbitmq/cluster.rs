//! Cluster instances of RabbitMQ: three nodes of one Erlang cluster, every one of
//! which takes connections and publishes. Queues declared without a type are
//! quorum queues (Raft, a member on each node), so a lost node loses no
//! confirmed message; definitions (users, queues, exchanges, policies) are the
//! cluster's.
//!
//! Nodes of one host find each other through the port mapper, so every node of an
//! instance uses node 0's `epmd` port; they share the instance's Erlang cookie. A
//! new node joins the first of the listed nodes that runs at its first boot
//! (classic-config peer discovery). Node 0 keeps the name of a single node, so a
//! single node becomes a cluster without a rename.

use anyhow::Context;
use secrecy::ExposeSecret;
use serde_json::{Value, json};
use sha2::Digest;

use crate::NodeSpec;

/// The Erlang node name of node `index`.
pub fn node_name(index: i64) -> String {
    match index {
        0 => "rabbit@localhost".to_owned(),
        i => format!("rabbit-{i}@localhost"),
    }
}

/// The port mapper the node registers with: node 0's for every node of a cluster.
pub fn epmd_port(spec: &NodeSpec) -> anyhow::Result<u16> {
    if spec.index == 0 || !spec.is_clustered() {
        return spec.port_named("epmd");
    }
    let first = spec.peers.iter().find(|p| p.index == 0).context("node 0 is not among the cluster's nodes")?;
    first.port_named(spec.engine.as_ref(), "epmd")
}

/// The instance's Erlang cookie, the same on every node: derived from the admin
/// password the nodes share, which it reveals nothing of.
pub fn cookie(spec: &NodeSpec) -> String {
    let digest = sha2::Sha256::digest(format!("svcdash erlang cookie\0{}", spec.admin_password.expose_secret()));
    digest.iter().map(|b| format!("{b:02X}")).collect()
}

/// The lines of `rabbitmq.conf` that make the node one of its cluster.
pub fn config_lines(spec: &NodeSpec) -> String {
    let mut indexes: Vec<i64> = spec.peers.iter().map(|p| p.index).collect();
    indexes.push(spec.index);
    indexes.sort_unstable();
    let mut lines = String::from(
        "cluster_formation.peer_discovery_backend = classic_config\ncluster_partition_handling = pause_minority\n",
    );
    for (n, index) in indexes.iter().enumerate() {
        lines.push_str(&format!("cluster_formation.classic_config.nodes.{} = {}\n", n + 1, node_name(*index)));
    }
    lines
}

/// What `GET /api/nodes` on a node says of the cluster: whether `name` runs
/// without a partition, and how many nodes run.
pub fn members(nodes: &[Value], name: &str) -> (bool, usize) {
    let running = |n: &&Value| n["running"].as_bool() == Some(true);
    let partitioned = |n: &Value| n["partitions"].as_array().is_some_and(|p| !p.is_empty());
    let me = nodes.iter().filter(running).any(|n| n["name"].as_str() == Some(name) && !partitioned(n));
    (me, nodes.iter().filter(running).count())
}

/// The body that makes a virtual host whose queues are quorum queues unless
/// declared otherwise (3.10 keeps the type only when the host is made with it).
pub fn quorum_vhost() -> Value {
    json!({"defaultqueuetype": "quorum"})
}
