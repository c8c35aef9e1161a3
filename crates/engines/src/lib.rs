//! Data-service engines and the deployers that run them. Each engine is one module
//! behind [`Engine`] (PostgreSQL, Redis, MariaDB, RabbitMQ), found by its catalog
//! name in the [`Registry`]; a [`Deployer`] runs their nodes, and
//! [`LocalDeployer`] does so as supervised processes on this machine.

mod accounts;
mod deployer;
mod engine;
mod files;
mod layout;
pub mod local;
mod mariadb;
mod postgres;
mod process;
mod rabbitmq;
mod redis;
mod registry;
mod swap;
mod tools;

pub use deployer::{Deployer, NodeDiskPaths, NodeProbe, WalListener, WalSocket};
pub use engine::{
    BackupPieces, BackupStream, BaseBackupStream, ClusterKind, Companion, Engine, LayoutTap, Node, NodeControl,
    RecoveryTarget, Replication, RestoreSink, Role, StagedRestore, StartMode, WalPosition,
};
pub use layout::NodeLayout;
pub use local::LocalDeployer;
pub use process::RunAs;
pub use registry::{EngineRef, Registry};
pub use tools::{Tools, ToolsConfig};

use std::path::PathBuf;

use anyhow::Context;
use secrecy::SecretString;

/// Everything needed to run one node of an instance.
#[derive(Clone)]
pub struct NodeSpec {
    pub engine: EngineRef,
    pub instance_guid: String,
    /// The name svcdash made for the instance on this host: its folder's name and,
    /// when svcdash runs as root, its account's. Never an id from a request.
    pub local_name: String,
    pub index: i64,
    /// The port applications connect to.
    pub port: u16,
    /// The engine's other ports, in the order of [`Engine::ports`] after the first.
    pub extra_ports: Vec<u16>,
    pub admin_user: String,
    pub admin_password: SecretString,
    /// Where the node hands its write-ahead log, when the instance archives it.
    pub archive: Option<WalArchive>,
    /// The role the node was last seen in; `None` for a single node, or a cluster
    /// node never seen yet.
    pub role: Option<Role>,
    /// The instance's other nodes, for a node of a cluster.
    pub peers: Vec<Peer>,
    /// Whether a cluster's commits wait for a replica to have them (the plan's
    /// `synchronous`).
    pub synchronous: bool,
}

/// Another node of the same instance, as a node of a cluster reaches it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Peer {
    pub index: i64,
    /// Where it runs; the local deployer's nodes all run on `127.0.0.1`.
    pub host: String,
    pub port: u16,
    pub extra_ports: Vec<u16>,
    /// The role it was last seen in.
    pub role: Option<Role>,
}

/// How a node archives its write-ahead log: it runs `client wal-push SOCKET FILE
/// NAME` for every finished file, and the server listening on the node's archive
/// socket ([`Deployer::listen_for_wal`]) stores it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WalArchive {
    /// svcdash's own program, absolute.
    pub client: PathBuf,
    /// Seconds after which a partly filled segment is handed over anyway.
    pub timeout_secs: u32,
}

impl NodeSpec {
    /// The node's port called `name` in its engine's [`Engine::ports`] (or
    /// [`Engine::cluster_ports`]).
    pub fn port_named(&self, name: &str) -> anyhow::Result<u16> {
        port_named(self.engine.as_ref(), self.port, &self.extra_ports, name)
            .with_context(|| format!("node {} of {}", self.index, self.local_name))
    }

    /// Whether the node is one of a cluster's.
    pub fn is_clustered(&self) -> bool {
        !self.peers.is_empty()
    }

    /// Every node of the cluster (this one and its peers) by index, as (index,
    /// host, client port).
    pub fn cluster_addresses(&self) -> Vec<(i64, &str, u16)> {
        let mut nodes: Vec<(i64, &str, u16)> = vec![(self.index, "127.0.0.1", self.port)];
        nodes.extend(self.peers.iter().map(|p| (p.index, p.host.as_str(), p.port)));
        nodes.sort_unstable();
        nodes
    }

    /// Every node of the cluster as `host:port`, by index: multi-host URIs.
    pub fn host_ports(&self) -> Vec<String> {
        self.cluster_addresses().iter().map(|(_, host, port)| format!("{host}:{port}")).collect()
    }

    /// Every node of the cluster as a binding's `hosts` field, `[{"host", "port"}]`.
    pub fn hosts_field(&self) -> serde_json::Value {
        self.cluster_addresses().iter().map(|(_, host, port)| serde_json::json!({"host": host, "port": port})).collect()
    }

    /// The node of the cluster last seen as its primary (this one or a peer), as
    /// (index, port).
    pub fn last_primary(&self) -> Option<(i64, u16)> {
        if self.role == Some(Role::Primary) {
            return Some((self.index, self.port));
        }
        self.peers.iter().find(|p| p.role == Some(Role::Primary)).map(|p| (p.index, p.port))
    }
}

impl Peer {
    /// The peer's port called `name`, as [`NodeSpec::port_named`].
    pub fn port_named(&self, engine: &dyn Engine, name: &str) -> anyhow::Result<u16> {
        port_named(engine, self.port, &self.extra_ports, name).with_context(|| format!("node {}", self.index))
    }
}

fn port_named(engine: &dyn Engine, port: u16, extra: &[u16], name: &str) -> anyhow::Result<u16> {
    let position = engine
        .ports()
        .iter()
        .chain(engine.cluster_ports())
        .position(|p| *p == name)
        .with_context(|| format!("{} nodes have no {name} port", engine.name()))?;
    match position {
        0 => Ok(port),
        n => extra.get(n - 1).copied().with_context(|| format!("no {name} port was given")),
    }
}

impl std::fmt::Debug for NodeSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeSpec")
            .field("engine", &self.engine.name())
            .field("instance_guid", &self.instance_guid)
            .field("local_name", &self.local_name)
            .field("index", &self.index)
            .field("port", &self.port)
            .field("extra_ports", &self.extra_ports)
            .field("archive", &self.archive)
            .field("role", &self.role)
            .field("peers", &self.peers)
            .finish_non_exhaustive()
    }
}

/// What an application gets to reach its instance.
#[derive(Debug, Clone)]
pub struct AppCredentials {
    pub host: String,
    pub port: u16,
    pub username: String,
    pub password: String,
    pub database: Option<String>,
    pub uri: String,
    /// Further fields an engine offers (RabbitMQ: the management API's URL).
    pub extra: serde_json::Map<String, serde_json::Value>,
}

/// Refuses a user name or password that would need quoting in an engine's
/// statements (svcdash makes both from letters, digits and `_`).
pub(crate) fn check_identifier(name: &str) -> anyhow::Result<()> {
    if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        anyhow::bail!("{name:?} is not a safe identifier");
    }
    Ok(())
}

/// Letters and digits only, so generated secrets never need quoting.
pub fn generate_secret(len: usize) -> String {
    use rand::distr::{Alphanumeric, SampleString};
    Alphanumeric.sample_string(&mut rand::rng(), len)
}

/// A new local name for an instance: `sd-` and ten random lower-case letters and
/// digits, fit for a folder and an account name (at most 32 characters, starting
/// with a letter).
pub fn new_local_name() -> String {
    format!("sd-{}", generate_secret(10).to_ascii_lowercase())
}

/// A free TCP port on the loopback interface.
pub fn free_port() -> std::io::Result<u16> {
    Ok(std::net::TcpListener::bind(("127.0.0.1", 0))?.local_addr()?.port())
}
