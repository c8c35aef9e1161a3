//! Where and how nodes run. svcdash's jobs talk to a [`Deployer`]; the local one
//! runs engines as processes on this machine, later ones will run them on other
//! hosts or in Kubernetes. What only some deployers can tell (the disks and
//! processes of a node, for metrics and the parachute) is a capability they offer
//! through [`Deployer::probe`].

use std::path::PathBuf;

use async_trait::async_trait;

use crate::{
    AppCredentials, BackupStream, BaseBackupStream, NodeSpec, RecoveryTarget, Replication, RestoreSink, Role,
    StagedRestore, WalPosition,
};

/// The two sockets of an archiving node: where it hands its write-ahead log over,
/// and where a restore to a point in time fetches it back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WalSocket {
    Archive,
    Fetch,
}

#[async_trait]
pub trait Deployer: Send + Sync {
    /// Makes the node's folders and data, starts it and prepares it for
    /// applications. Safe to run again after an interruption.
    async fn provision(&self, spec: &NodeSpec) -> anyhow::Result<()>;
    /// Rebuilds everything of the node but its persistent data, and starts it.
    async fn recreate(&self, spec: &NodeSpec) -> anyhow::Result<()>;
    /// Throws the node's data away and provisions it again: a cluster's replica
    /// then copies the primary as a new one does (after a restore of the primary
    /// left its data on an abandoned history).
    async fn rebuild(&self, spec: &NodeSpec) -> anyhow::Result<()>;
    /// Starts the node unless it runs, and waits until it answers.
    async fn start(&self, spec: &NodeSpec) -> anyhow::Result<()>;
    /// Stops the node cleanly.
    async fn stop(&self, spec: &NodeSpec) -> anyhow::Result<()>;
    /// Stops every node of an instance and removes everything it had on its hosts.
    async fn destroy(&self, local_name: &str, nodes: &[NodeSpec]) -> anyhow::Result<()>;
    /// The node's role now, asked of the node.
    async fn role(&self, spec: &NodeSpec) -> anyhow::Result<Role>;
    /// The node's replication figures (lag), for metrics.
    async fn replication(&self, spec: &NodeSpec) -> anyhow::Result<Option<Replication>>;
    /// Whether a replica follows its primary now.
    async fn in_sync(&self, spec: &NodeSpec) -> anyhow::Result<bool>;
    /// Hands the primary role of `spec` to another node, and returns once one has it.
    async fn switchover(&self, spec: &NodeSpec) -> anyhow::Result<()>;
    /// Makes `spec` (a replica) the primary, and returns once it is.
    async fn promote(&self, spec: &NodeSpec) -> anyhow::Result<()>;
    /// Stops what would fail a cluster over (its nodes' companions), until
    /// [`release_failover`](Self::release_failover): a restore replacing the
    /// primary's data must not see a replica promoted meanwhile.
    async fn hold_failover(&self, nodes: &[NodeSpec]);
    /// Starts the companions [`hold_failover`](Self::hold_failover) stopped, on the
    /// nodes that run.
    async fn release_failover(&self, nodes: &[NodeSpec]) -> anyhow::Result<()>;
    /// Whether node `index` of an instance runs (with its companions); needs no
    /// credentials.
    async fn is_running(&self, local_name: &str, index: i64) -> bool;
    /// Stops node `index` of an instance if it runs; needs no credentials.
    async fn stop_node(&self, local_name: &str, index: i64);
    /// Stops every node this deployer runs (svcdash is shutting down).
    async fn stop_all(&self);
    /// Kills every node at once without waiting, for a process that is going away
    /// and cannot await [`stop_all`](Self::stop_all) (a test torn down with its data).
    fn kill_all_now(&self) {}

    async fn create_user(&self, spec: &NodeSpec, username: &str, password: &str) -> anyhow::Result<AppCredentials>;
    async fn delete_user(&self, spec: &NodeSpec, username: &str) -> anyhow::Result<()>;

    /// Starts a consistent backup of the node.
    async fn backup(&self, spec: &NodeSpec) -> anyhow::Result<BackupStream>;
    /// Prepares a restore beside the node's data.
    async fn begin_restore(&self, spec: &NodeSpec) -> anyhow::Result<RestoreSink>;
    /// Loads a backup several pieces at once beside the node's data, if its engine
    /// can use the layout it noted (see `Engine::begin_parallel_restore`).
    async fn begin_parallel_restore(
        &self,
        spec: &NodeSpec,
        layout: &serde_json::Value,
        pieces: std::sync::Arc<dyn crate::engine::BackupPieces>,
    ) -> anyhow::Result<Option<Box<dyn StagedRestore>>>;
    /// Prepares a restore to a point in time beside the node's data: the base
    /// backup's plain bytes go into the sink; its commit replays the archive.
    async fn begin_point_in_time_restore(
        &self,
        spec: &NodeSpec,
        _target: &RecoveryTarget,
    ) -> anyhow::Result<RestoreSink> {
        anyhow::bail!("this deployer cannot restore node {} of {} to a point in time", spec.index, spec.local_name)
    }
    /// Starts a physical base backup of an archiving node.
    async fn base_backup(&self, spec: &NodeSpec) -> anyhow::Result<BaseBackupStream> {
        anyhow::bail!("this deployer cannot take base backups of node {} of {}", spec.index, spec.local_name)
    }
    /// Where the node's write-ahead log is now.
    async fn wal_position(&self, spec: &NodeSpec) -> anyhow::Result<WalPosition> {
        anyhow::bail!("this deployer cannot read the write-ahead log position of {}", spec.local_name)
    }
    /// Commits a transaction and closes the current write-ahead log file, so the
    /// archive holds everything up to now; returns that file's name.
    async fn seal_wal(&self, spec: &NodeSpec) -> anyhow::Result<String> {
        anyhow::bail!("this deployer cannot close the write-ahead log of {}", spec.local_name)
    }
    /// Closes the node's current write-ahead log file if anything was written to it.
    async fn close_wal(&self, spec: &NodeSpec) -> anyhow::Result<()> {
        anyhow::bail!("this deployer cannot close the write-ahead log of {}", spec.local_name)
    }
    /// Verifies the loaded restore and switches the node over to it.
    async fn commit_restore(&self, spec: &NodeSpec, staged: Box<dyn StagedRestore>) -> anyhow::Result<()>;
    async fn abort_restore(&self, spec: &NodeSpec, staged: Box<dyn StagedRestore>);

    /// Listens where the node hands over its write-ahead log ([`crate::WalArchive`]),
    /// or fetches it back during a restore to a point in time: a fresh socket
    /// replacing any earlier one. The node must be provisioned.
    async fn listen_for_wal(&self, spec: &NodeSpec, _socket: WalSocket) -> anyhow::Result<WalListener> {
        anyhow::bail!("this deployer cannot archive node {} of {}", spec.index, spec.local_name)
    }

    /// Whether instances are isolated from each other and from svcdash (each runs
    /// under an account of its own, say).
    fn isolated(&self) -> bool;
    /// Figures of the nodes' hosts, where this deployer can read them.
    fn probe(&self) -> Option<&dyn NodeProbe> {
        None
    }
}

/// What a deployer can tell about the machine a node runs on.
#[async_trait]
pub trait NodeProbe: Send + Sync {
    /// The node's folders by the reference's disk names (`system`, `ephemeral`,
    /// `persistent`): the filesystems holding them are the node's disks.
    fn disk_paths(&self, local_name: &str, index: i64) -> NodeDiskPaths;
    /// The node's processes now (the engine's main process first), or none when it
    /// does not run.
    async fn processes(&self, local_name: &str, index: i64) -> Vec<u32>;
    /// The node's main process, if it runs.
    async fn main_pid(&self, local_name: &str, index: i64) -> Option<u32>;
    /// Stops the node if its main process is still `pid` (not one started since).
    async fn stop_node_if(&self, local_name: &str, index: i64, pid: u32);
}

/// A socket a node hands its write-ahead log to.
#[derive(Debug)]
pub struct WalListener {
    pub listener: tokio::net::UnixListener,
    /// The only uid that may connect (the node's account); `None` when engines run
    /// as svcdash's own user.
    pub peer_uid: Option<u32>,
    path: PathBuf,
    inode: u64,
}

impl WalListener {
    pub fn new(listener: tokio::net::UnixListener, path: PathBuf, peer_uid: Option<u32>) -> anyhow::Result<Self> {
        use std::os::unix::fs::MetadataExt;
        let inode = std::fs::symlink_metadata(&path)?.ino();
        Ok(Self { listener, peer_uid, path, inode })
    }

    /// Whether the node can still reach this socket: a recreate removes the folder
    /// it lives in, and the node then needs a new one.
    pub fn reachable(&self) -> bool {
        use std::os::unix::fs::MetadataExt;
        std::fs::symlink_metadata(&self.path).is_ok_and(|m| m.ino() == self.inode)
    }
}

#[derive(Debug, Clone)]
pub struct NodeDiskPaths {
    pub system: PathBuf,
    pub ephemeral: PathBuf,
    pub persistent: PathBuf,
}
