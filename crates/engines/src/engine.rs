//! What an engine is to svcdash: one module behind [`Engine`], knowing how to lay
//! out, configure, start and check its server, manage its users, stream a backup
//! out of it and stage a restore beside its data. Deployers run engines; engines
//! know nothing of where they run beyond the [`Node`] they are handed.

use std::path::PathBuf;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use futures::future::BoxFuture;
use nix::sys::signal::Signal;
use secrecy::SecretString;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::process::Command;

use crate::process::RunAs;
use crate::{AppCredentials, NodeLayout, NodeSpec, Tools};

/// One node as an engine sees it: what it is, where its files are, and whom it runs as.
pub struct Node<'a> {
    pub spec: &'a NodeSpec,
    pub layout: &'a NodeLayout,
    /// The node's own account; `None` when svcdash is not root and runs engines as itself.
    pub run_as: Option<RunAs>,
    pub tools: &'a Tools,
}

impl Node<'_> {
    /// The node's port called `name` in [`Engine::ports`].
    pub fn port(&self, name: &str) -> anyhow::Result<u16> {
        self.spec.port_named(name)
    }

    /// A command running `program` of this engine as the node's account, with a
    /// cleared environment.
    pub fn command(&self, program: &str) -> anyhow::Result<Command> {
        Ok(crate::process::command(&self.tools.find(self.spec.engine.as_ref(), program)?, self.run_as))
    }
}

/// What a node is in its cluster, as the engine (or its failover tool) says. svcdash
/// observes roles and never decides them, except for the first start of a new
/// cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Takes writes (PostgreSQL's primary, Redis's master).
    Primary,
    /// Follows a primary and serves reads.
    Replica,
    /// One of a cluster whose every node takes writes (Galera, RabbitMQ), while it
    /// is in the cluster's majority.
    Member,
}

/// How far a node of a cluster is behind: for a replica, its primary's write
/// position minus its own, and the seconds since it last heard from it; for a
/// primary, the most any of its replicas is behind. A member of a cluster whose
/// every node takes writes has no lag to tell; it says how many nodes it sees in
/// step with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Replication {
    pub role: Role,
    pub lag_bytes: Option<u64>,
    pub lag_seconds: Option<u64>,
    pub members: Option<u64>,
}

/// How a clustering engine's restores are done and listed, as the reference's
/// table has them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClusterKind {
    /// Restored once, on the primary; the other nodes follow it (one restore row).
    MasterOnly,
    /// Restored on every node (one restore row per node).
    MultiNode,
}

/// A process that runs beside a cluster node's server, supervised with it (Redis's
/// Sentinel). Companions watch the cluster and may change its roles, so they are
/// what [`crate::Deployer::hold_failover`] stops.
pub struct Companion {
    /// Its log file's name and the name logs give it.
    pub name: &'static str,
    pub command: Command,
    /// The port it listens on, and the pid file it writes: to stop one left
    /// running by an earlier svcdash.
    pub port: u16,
    pub pid_file: PathBuf,
    /// Whether the server needs it running (and listening) before it starts
    /// (PostgreSQL's monitor, which its keeper registers with); otherwise it is
    /// started after the server.
    pub before_server: bool,
}

/// Why an engine is being started.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartMode {
    /// A start of a node that has been set up before.
    Normal,
    /// The start during provisioning or recreation, before [`Engine::setup`].
    Setup,
    /// The first start on data a restore just switched in.
    AfterRestore,
}

/// The plain bytes of a backup as the engine produces them, and a future that says,
/// once the stream has ended, whether they are complete.
pub struct BackupStream {
    pub reader: Box<dyn AsyncRead + Send + Unpin>,
    pub done: BoxFuture<'static, anyhow::Result<()>>,
    /// What the engine expects the stream to hold (the data's size on disk, say),
    /// for the progress of a first backup; later ones go by the one before.
    pub estimated_size: Option<u64>,
    /// Notes where the pieces of the dump lie, for a restore that loads several at
    /// once ([`Engine::begin_parallel_restore`]).
    pub layout: Option<LayoutTap>,
}

/// Sees a dump's plain bytes as they stream into the backup.
pub struct LayoutTap {
    pub tap: Box<dyn std::io::Write + Send>,
    /// The layout once the stream has ended, or `None` if it could not be made out.
    pub finish: Box<dyn FnOnce() -> Option<serde_json::Value> + Send>,
}

/// A stored backup's plain bytes, read a range at a time: decrypted, decompressed,
/// authenticated and counted by the restore's progress. A read fails rather than
/// come back short.
pub trait BackupPieces: Send + Sync {
    fn read(&self, start: u64, end: u64) -> Box<dyn AsyncRead + Send + Unpin>;
}

/// A physical base backup in progress, and where the write-ahead log it needs
/// begins (the server's position just before it started).
pub struct BaseBackupStream {
    pub stream: BackupStream,
    pub start: WalPosition,
}

/// A position in a node's write-ahead log: its timeline and the file being written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WalPosition {
    pub timeline: u32,
    pub file: String,
}

/// Where a restore to a point in time stops: the last transaction committed at or
/// before `time`, on the history of `timeline`.
#[derive(Debug, Clone)]
pub struct RecoveryTarget {
    pub time: DateTime<Utc>,
    pub timeline: u32,
    /// The applications' users as they are now: the restored data had those of the
    /// target time, so users made since would lose access and users removed since
    /// would get it back. The restored data gets exactly these before it goes live.
    pub users: Vec<(String, SecretString)>,
    /// svcdash's own program, absolute: the replaying server runs it to fetch files.
    pub client: PathBuf,
    /// When the base backup is another instance's (a new instance made at a moment
    /// of another): the admin password its data has. Replay connects with it and
    /// gives the node's own before the data goes live.
    pub source_admin_password: Option<SecretString>,
}

/// Stops and starts the node a restore is switching over; the deployer provides it.
#[async_trait]
pub trait NodeControl: Send + Sync {
    async fn stop(&self) -> anyhow::Result<()>;
    /// Stops the node whose data folder is about to be replaced: nothing it holds
    /// needs writing out first. Started on that data again, the server recovers
    /// as after a crash.
    async fn stop_discarding(&self) -> anyhow::Result<()>;
    async fn start(&self, mode: StartMode) -> anyhow::Result<()>;
}

/// A restore loaded (or being loaded) beside the node's live data.
#[async_trait]
pub trait StagedRestore: Send {
    /// Checks what was loaded and switches the node over to it. Until the check has
    /// passed, the live data is untouched; after a failure in the switch itself, the
    /// engine puts the old data back where it can.
    async fn commit(self: Box<Self>, node: &Node<'_>, control: &dyn NodeControl) -> anyhow::Result<()>;
    /// Throws the staged data away; the live data stays as it was.
    async fn abort(self: Box<Self>, node: &Node<'_>);
}

/// Where a restore's plain bytes go, and the staged restore they build.
pub struct RestoreSink {
    pub writer: Box<dyn AsyncWrite + Send + Unpin>,
    pub staged: Box<dyn StagedRestore>,
}

#[async_trait]
pub trait Engine: Send + Sync + 'static {
    /// The name a catalog's `engine` field uses.
    fn name(&self) -> &'static str;
    /// The short name of metric namespaces and log files.
    fn short_name(&self) -> &'static str;
    /// The version of the engine's server program installed here.
    async fn version(&self, tools: &Tools) -> anyhow::Result<String>;

    /// The programs the engine needs, and the OS package that brings them.
    fn programs(&self) -> &'static [&'static str];
    fn package(&self) -> &'static str;
    /// Folders off PATH where that package puts its programs, newest first.
    fn program_dirs(&self) -> Vec<PathBuf> {
        Vec::new()
    }

    /// The ports a node listens on, by name; the first is the one applications use.
    fn ports(&self) -> &'static [&'static str] {
        &["client"]
    }
    /// Ports a node of a cluster listens on besides [`Self::ports`] (its failover
    /// tool's), after them in [`NodeSpec::extra_ports`](crate::NodeSpec).
    fn cluster_ports(&self) -> &'static [&'static str] {
        &[]
    }
    /// How the engine's clusters restore; `None` for an engine that runs single
    /// nodes only.
    fn cluster_kind(&self) -> Option<ClusterKind> {
        None
    }
    /// Whether users made on the primary reach the other nodes by replication;
    /// otherwise [`Self::create_user`] runs on every node.
    fn users_replicate(&self) -> bool {
        true
    }
    /// Whether every node of a cluster takes writes: its nodes are members, with
    /// no primary to fail over or hand over.
    fn members_take_writes(&self) -> bool {
        false
    }
    /// Whether a restore starts a new cluster from the restored node: the other
    /// nodes are stopped before it, and copy that node when they start again
    /// (Galera). Otherwise the other nodes follow the restored one as they run.
    fn restore_rebuilds_peers(&self) -> bool {
        false
    }
    /// What the engine's own documentation calls a role, for pages and the CLI.
    fn role_name(&self, role: Role) -> &'static str {
        match role {
            Role::Primary => "primary",
            Role::Replica => "replica",
            Role::Member => "member",
        }
    }
    /// The node's role now, asked of the node itself.
    async fn role(&self, _node: &Node<'_>) -> anyhow::Result<Role> {
        Ok(Role::Primary)
    }
    /// Whether a replica follows its primary now (connected and streaming); a
    /// primary is in step with itself.
    async fn in_sync(&self, _node: &Node<'_>) -> anyhow::Result<bool> {
        Ok(true)
    }
    /// The node's replication figures, for metrics; `None` for an engine without
    /// clusters.
    async fn replication(&self, _node: &Node<'_>) -> anyhow::Result<Option<Replication>> {
        Ok(None)
    }
    /// Hands the primary role of `node` (the primary) to a replica through the
    /// cluster's own failover, and returns once another node has it.
    async fn switchover(&self, _node: &Node<'_>) -> anyhow::Result<()> {
        anyhow::bail!("{} runs no clusters", self.name())
    }
    /// Makes `node` (a replica) the primary through the cluster's own failover,
    /// and returns once it is.
    async fn promote(&self, _node: &Node<'_>) -> anyhow::Result<()> {
        anyhow::bail!("{} does not promote a chosen node", self.name())
    }
    /// The processes that run beside a cluster node's server, started after it
    /// or, if they say so, before it (their configuration written first).
    fn companions(&self, _node: &Node<'_>) -> anyhow::Result<Vec<Companion>> {
        Ok(Vec::new())
    }
    /// Called once a companion started before the node's server listens, with the
    /// indexes of the instance's nodes that do not run now (this one among them).
    async fn companion_started(&self, _node: &Node<'_>, _stopped: &[i64]) -> anyhow::Result<()> {
        Ok(())
    }
    /// Called once a cluster node's server is ready, with the indexes of the
    /// instance's nodes that do not run now.
    async fn server_started(&self, _node: &Node<'_>, _stopped: &[i64]) -> anyhow::Result<()> {
        Ok(())
    }
    /// Names of the node's processes, as metrics count them.
    fn process_names(&self) -> &'static [&'static str];
    /// How the server is asked to stop cleanly.
    fn stop_signal(&self) -> Signal {
        Signal::SIGTERM
    }
    /// How the server is stopped when its data is about to be replaced.
    fn discard_signal(&self) -> Signal {
        self.stop_signal()
    }
    /// The pid file the server writes (in a folder it owns: read it without trust).
    fn pid_file(&self, layout: &NodeLayout) -> PathBuf;

    /// The file name ending of a backup, before compression and encryption.
    fn backup_extension(&self) -> &'static str;
    /// What a backup holds, in a sentence for people (API and pages).
    fn backup_contents(&self) -> &'static str;
    /// Whether the engine can archive its write-ahead log as it is written
    /// ([`crate::NodeSpec::archive`]).
    fn archives_wal(&self) -> bool {
        false
    }

    /// A physical base backup for restores to a point in time (engines that
    /// [archive their write-ahead log](Self::archives_wal)).
    async fn base_backup(&self, _node: &Node<'_>) -> anyhow::Result<BaseBackupStream> {
        anyhow::bail!("{} takes no base backups", self.name())
    }
    /// Where the node's write-ahead log is now.
    async fn wal_position(&self, _node: &Node<'_>) -> anyhow::Result<WalPosition> {
        anyhow::bail!("{} has no write-ahead log to archive", self.name())
    }
    /// Commits a transaction and closes the write-ahead log file it is in, so it is
    /// archived now; returns that file's name. A restore to any time before this
    /// call then finds a commit after its target in the archive.
    async fn seal_wal(&self, _node: &Node<'_>) -> anyhow::Result<String> {
        anyhow::bail!("{} has no write-ahead log to archive", self.name())
    }
    /// Closes the write-ahead log file being written if anything was written to it
    /// since the last one was closed, so it is archived now (svcdash's own
    /// `archive_timeout`: PostgreSQL 15's does not always fire).
    async fn close_wal(&self, _node: &Node<'_>) -> anyhow::Result<()> {
        anyhow::bail!("{} has no write-ahead log to archive", self.name())
    }
    /// Prepares a restore to `target`: write a base backup's plain bytes into the
    /// sink; the commit replays the archive (fetched through the node's fetch
    /// socket) beside the live data, checks the result and switches over.
    async fn begin_point_in_time_restore(
        &self,
        _node: &Node<'_>,
        _target: &RecoveryTarget,
    ) -> anyhow::Result<RestoreSink> {
        anyhow::bail!("{} cannot restore to a point in time", self.name())
    }

    /// Makes the node's data before its first start (an empty cluster, say). Safe to
    /// run again after an interruption, and on a node with data.
    async fn init(&self, _node: &Node<'_>) -> anyhow::Result<()> {
        Ok(())
    }
    /// What the server's command line needs that only its data can tell, learnt
    /// before each start (Galera: the position a member that stopped without
    /// saying had reached); added after [`Self::start_command`]'s arguments.
    async fn start_arguments(&self, _node: &Node<'_>, _mode: StartMode) -> anyhow::Result<Vec<String>> {
        Ok(Vec::new())
    }
    /// Writes the node's configuration and returns the command that runs the server
    /// in the foreground.
    fn start_command(&self, node: &Node<'_>, mode: StartMode) -> anyhow::Result<Command>;
    /// Whether the server takes svcdash's connections.
    async fn is_ready(&self, node: &Node<'_>) -> bool;
    /// Prepares a started node for applications (databases, roles). Safe to run again.
    async fn setup(&self, _node: &Node<'_>) -> anyhow::Result<()> {
        Ok(())
    }

    /// What an application connects to `spec` with, as a user that exists. Reads
    /// nothing: bindings are handed out again with it (the broker's binding fetch).
    fn credentials(&self, spec: &NodeSpec, username: &str, password: &str) -> anyhow::Result<AppCredentials>;
    /// Creates (or resets) an application's user with rights on the instance's data only.
    async fn create_user(&self, node: &Node<'_>, username: &str, password: &str) -> anyhow::Result<AppCredentials>;
    async fn delete_user(&self, node: &Node<'_>, username: &str) -> anyhow::Result<()>;

    /// Starts a consistent backup and returns its stream.
    async fn backup(&self, node: &Node<'_>) -> anyhow::Result<BackupStream>;
    /// Prepares a restore beside the node's data; write the backup's plain bytes into
    /// the sink, then commit or abort the staged restore.
    async fn begin_restore(&self, node: &Node<'_>) -> anyhow::Result<RestoreSink>;
    /// Loads a backup whose layout the engine noted when it was taken, several pieces
    /// at once, beside the node's data; the caller checks the object as a whole
    /// meanwhile, then commits or aborts. `None`: the engine has no use for this
    /// layout, and the backup restores as one stream through [`Self::begin_restore`].
    async fn begin_parallel_restore(
        &self,
        _node: &Node<'_>,
        _layout: &serde_json::Value,
        _pieces: std::sync::Arc<dyn BackupPieces>,
    ) -> anyhow::Result<Option<Box<dyn StagedRestore>>> {
        Ok(None)
    }
}
