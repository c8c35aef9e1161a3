//! The local deployer: every node is an engine process on this machine, supervised
//! by svcdash, with its files under `<data>/instances/<local name>/node-<n>/`. The
//! local name is one svcdash made for the instance (never an id from a request); when
//! svcdash runs as root it is also the name of the instance's own account.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::process::{ExitStatus, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use async_trait::async_trait;
use nix::sys::signal::Signal;
use nix::unistd::Uid;
use tokio::sync::{Mutex, watch};

use crate::deployer::{Deployer, NodeDiskPaths, NodeProbe, WalSocket};
use crate::engine::{
    BackupStream, BaseBackupStream, Node, NodeControl, RecoveryTarget, RestoreSink, Role, StagedRestore, StartMode,
    WalPosition,
};
use crate::files::{self, Owner};
use crate::process::{self, RunAs};
use crate::{AppCredentials, EngineRef, NodeLayout, NodeSpec, Tools, WalListener, accounts};

const READY_TIMEOUT: Duration = Duration::from_secs(90);
const STOP_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a node may take to answer a question about its state.
const PROBE_TIMEOUT: Duration = Duration::from_secs(15);
/// How often a node that has not stopped yet is asked again.
const ASK_AGAIN: Duration = Duration::from_secs(2);

pub struct LocalDeployer {
    root: PathBuf,
    tools: Tools,
    /// Whether each instance runs under an account of its own (svcdash is root).
    own_accounts: bool,
    /// Keyed by the instance's local name and the node's index.
    running: Mutex<HashMap<(String, i64), Running>>,
    /// The nodes' companions (Sentinel), keyed as `running`.
    companions: Mutex<HashMap<(String, i64), Vec<Companion>>>,
    /// Instances whose companions are stopped on purpose ([`Deployer::hold_failover`]).
    held: Mutex<HashSet<String>>,
}

/// A running companion process of a node.
struct Companion {
    name: &'static str,
    pid: u32,
    exited: watch::Receiver<Option<ExitStatus>>,
}

impl Companion {
    fn runs(&self) -> bool {
        self.exited.borrow().is_none()
    }
}

struct Running {
    engine: EngineRef,
    pid: u32,
    /// The node's account, whose every process belongs to the node.
    uid: Option<u32>,
    exited: watch::Receiver<Option<ExitStatus>>,
}

impl LocalDeployer {
    async fn stop_node_discarding(&self, spec: &NodeSpec) {
        let node = self.running.lock().await.remove(&(spec.local_name.clone(), spec.index));
        if let Some(node) = node {
            let signal = node.engine.discard_signal();
            process::signal(node.pid, signal);
            wait_or_kill(node, signal).await;
        }
    }

    /// Instances live under `root`. When svcdash runs as root every instance gets an
    /// account of its own; otherwise engines run as svcdash's own user and are not
    /// isolated from svcdash or from each other ([`Deployer::isolated`] says which).
    pub fn new(root: PathBuf, tools: Tools) -> anyhow::Result<Self> {
        let own_accounts = Uid::effective().is_root();
        std::fs::create_dir_all(&root).with_context(|| format!("creating {}", root.display()))?;
        // Engine accounts walk through to their own folder but cannot list the others.
        files::folder(&root, Owner::default(), if own_accounts { 0o711 } else { 0o700 })?;
        Ok(Self {
            root,
            tools,
            own_accounts,
            running: Mutex::new(HashMap::new()),
            companions: Mutex::new(HashMap::new()),
            held: Mutex::new(HashSet::new()),
        })
    }

    pub fn tools(&self) -> &Tools {
        &self.tools
    }

    pub fn layout(&self, spec: &NodeSpec) -> NodeLayout {
        self.node_layout(&spec.local_name, spec.index)
    }

    pub fn node_layout(&self, local_name: &str, index: i64) -> NodeLayout {
        NodeLayout::new(self.root.join(local_name).join(format!("node-{index}")))
    }

    /// The account the node's engine runs as (made first if needed); `None` when
    /// svcdash is not root.
    async fn engine_user(&self, spec: &NodeSpec) -> anyhow::Result<Option<RunAs>> {
        if !self.own_accounts {
            return Ok(None);
        }
        let (name, comment) = (spec.local_name.clone(), format!("svcdash instance {}", spec.local_name));
        let user = tokio::task::spawn_blocking(move || accounts::ensure(&name, &comment)).await??;
        Ok(Some(user))
    }

    /// The account of a node that was made already: what every call but a start
    /// uses, so a check running while the instance is deleted does not make its
    /// account again (it would outlive the instance).
    async fn existing_engine_user(&self, spec: &NodeSpec) -> anyhow::Result<Option<RunAs>> {
        if !self.own_accounts {
            return Ok(None);
        }
        let name = spec.local_name.clone();
        let found = tokio::task::spawn_blocking(move || accounts::find(&name)).await??;
        Ok(Some(found.with_context(|| format!("the account {} is missing", spec.local_name))?))
    }

    /// Runs `work` with the node as its engine sees it.
    async fn with_node<'s, T>(
        &'s self,
        spec: &'s NodeSpec,
        work: impl AsyncFnOnce(&Node<'_>) -> anyhow::Result<T>,
    ) -> anyhow::Result<T> {
        let layout = self.layout(spec);
        let run_as = self.existing_engine_user(spec).await?;
        let node = Node { spec, layout: &layout, run_as, tools: &self.tools };
        work(&node).await
    }

    /// A question to a node's engine, bounded: a server may take the connection and
    /// then not answer, and that must not hold the job or the check that asked
    /// (connecting alone is bounded by each engine).
    async fn probe<'s, T>(
        &'s self,
        spec: &'s NodeSpec,
        what: &str,
        work: impl AsyncFnOnce(&Node<'_>) -> anyhow::Result<T>,
    ) -> anyhow::Result<T> {
        tokio::time::timeout(PROBE_TIMEOUT, self.with_node(spec, work)).await.unwrap_or_else(|_| {
            Err(anyhow::anyhow!(
                "node {} of {} did not say {what} within {} s",
                spec.index,
                spec.local_name,
                PROBE_TIMEOUT.as_secs()
            ))
        })
    }

    /// Engine accounts must be able to walk down to the instances folder.
    fn check_reachable(&self) -> anyhow::Result<()> {
        use std::os::unix::fs::PermissionsExt;
        if !self.own_accounts {
            return Ok(());
        }
        for ancestor in self.root.ancestors() {
            if let Ok(meta) = ancestor.metadata()
                && meta.permissions().mode() & 0o001 == 0
            {
                bail!(
                    "engine accounts cannot enter {} (mode {:o}); give it o+x or move the data folder",
                    ancestor.display(),
                    meta.permissions().mode() & 0o777
                );
            }
        }
        Ok(())
    }

    /// Starts the node's server unless it runs, and its companions unless failover
    /// is held: those the server needs first before it, the others after it.
    async fn start_with(&self, spec: &NodeSpec, mode: StartMode) -> anyhow::Result<()> {
        let companions = spec.is_clustered() && !self.held.lock().await.contains(&spec.local_name);
        if companions {
            self.start_companions(spec, true).await?;
        }
        self.start_server(spec, mode).await?;
        if spec.is_clustered() {
            let stopped = self.stopped_nodes(spec).await;
            let told = self.with_node(spec, async |node| spec.engine.server_started(node, &stopped).await).await;
            if let Err(e) = told {
                tracing::warn!(instance = %spec.instance_guid, node = spec.index, error = format!("{e:#}"), "could not tell the cluster that the node runs");
            }
        }
        if companions {
            self.start_companions(spec, false).await?;
        }
        Ok(())
    }

    /// The indexes of the nodes of `spec`'s instance (itself included) that do not run.
    async fn stopped_nodes(&self, spec: &NodeSpec) -> Vec<i64> {
        let mut stopped = Vec::new();
        for index in std::iter::once(spec.index).chain(spec.peers.iter().map(|p| p.index)) {
            if self.running_pid(&spec.local_name, index).await.is_none() {
                stopped.push(index);
            }
        }
        stopped.sort_unstable();
        stopped
    }

    /// Starts those of the node's companions that do not run, of those started
    /// before the server or of the others; the first are waited for until they
    /// listen.
    async fn start_companions(&self, spec: &NodeSpec, before_server: bool) -> anyhow::Result<()> {
        let key = (spec.local_name.clone(), spec.index);
        let mut companions = self.companions.lock().await;
        let list = companions.entry(key).or_default();
        if !list.is_empty() && list.iter().all(Companion::runs) {
            return Ok(());
        }
        let layout = self.layout(spec);
        let run_as = self.existing_engine_user(spec).await?;
        let node = Node { spec, layout: &layout, run_as, tools: &self.tools };
        let wanted = spec.engine.companions(&node)?;
        let (svcdash, _) = crate::layout::owners(run_as);
        for mut companion in wanted.into_iter().filter(|c| c.before_server == before_server) {
            if list.iter().any(|c| c.name == companion.name && c.runs()) {
                continue;
            }
            list.retain(|c| c.name != companion.name);
            self.stop_leftover_pid(spec, &companion.pid_file, companion.port).await;
            let log = files::append(&layout.log_file(companion.name), svcdash, 0o640)?;
            companion.command.stdout(Stdio::from(log.try_clone()?)).stderr(Stdio::from(log));
            let mut child = companion.command.spawn().with_context(|| format!("starting {}", companion.name))?;
            let pid = child.id().with_context(|| format!("{} exited at once", companion.name))?;
            let (tx, exited) = watch::channel(None);
            let label = format!("{}/node-{} {}", spec.local_name, spec.index, companion.name);
            tokio::spawn(async move {
                let status = child.wait().await.ok();
                tracing::info!(node = %label, ?status, "companion process exited");
                let _ = tx.send(status);
            });
            tracing::info!(instance = %spec.instance_guid, node = spec.index, pid, name = companion.name, "companion started");
            list.push(Companion { name: companion.name, pid, exited: exited.clone() });
            if before_server {
                let log = layout.log_file(companion.name);
                wait_listening(companion.name, companion.port, &exited, &log).await?;
                let stopped = self.stopped_nodes(spec).await;
                if let Err(e) = spec.engine.companion_started(&node, &stopped).await {
                    tracing::warn!(instance = %spec.instance_guid, node = spec.index, error = format!("{e:#}"), "could not tell the cluster which nodes are starting");
                }
            }
        }
        Ok(())
    }

    /// Stops the node's companions, if any run.
    async fn stop_companions(&self, local_name: &str, index: i64) {
        let list = self.companions.lock().await.remove(&(local_name.to_owned(), index)).unwrap_or_default();
        for mut companion in list {
            if !companion.runs() {
                continue;
            }
            process::signal(companion.pid, Signal::SIGTERM);
            let stopped = tokio::time::timeout(STOP_TIMEOUT, companion.exited.wait_for(|s| s.is_some())).await.is_ok();
            if !stopped {
                tracing::warn!(
                    pid = companion.pid,
                    name = companion.name,
                    "companion did not stop in time; killing it"
                );
                process::signal(companion.pid, Signal::SIGKILL);
                let _ = companion.exited.wait_for(|s| s.is_some()).await;
            }
        }
    }

    /// Whether every companion the node was started with still runs (or failover
    /// is held, and they are meant to be stopped).
    async fn companions_run(&self, local_name: &str, index: i64) -> bool {
        if self.held.lock().await.contains(local_name) {
            return true;
        }
        let companions = self.companions.lock().await;
        companions.get(&(local_name.to_owned(), index)).is_none_or(|list| list.iter().all(Companion::runs))
    }

    async fn start_server(&self, spec: &NodeSpec, mode: StartMode) -> anyhow::Result<()> {
        let key = (spec.local_name.clone(), spec.index);
        let engine = spec.engine.clone();
        let mut running = self.running.lock().await;
        if let Some(node) = running.get(&key)
            && node.exited.borrow().is_none()
        {
            return Ok(());
        }
        let layout = self.layout(spec);
        anyhow::ensure!(
            files::is_folder(layout.root()),
            "the node's folder {} is missing (instances made before svcdash gave each instance an account of \
             its own cannot start: restore their latest backup into a new instance)",
            layout.root().display()
        );
        let run_as = self.engine_user(spec).await?;
        layout.prepare(run_as)?;
        self.stop_leftover(spec, &layout).await;
        let node = Node { spec, layout: &layout, run_as, tools: &self.tools };
        let arguments = engine.start_arguments(&node, mode).await?;
        let mut cmd = engine.start_command(&node, mode)?;
        cmd.args(arguments);
        let log_path = layout.log_file(engine.short_name());
        let (svcdash, _) = crate::layout::owners(run_as);
        let log = files::append(&log_path, svcdash, 0o640)?;
        cmd.stdout(Stdio::from(log.try_clone()?)).stderr(Stdio::from(log));
        let mut child = cmd.spawn().with_context(|| format!("starting {}", engine.name()))?;
        let pid = child.id().context("the engine exited at once")?;
        let (tx, exited) = watch::channel(None);
        let label = format!("{}/node-{}", spec.local_name, spec.index);
        tokio::spawn(async move {
            let status = child.wait().await.ok();
            tracing::info!(node = %label, ?status, "engine process exited");
            let _ = tx.send(status);
        });
        let uid = run_as.map(|u| u.uid.as_raw());
        running.insert(key, Running { engine: engine.clone(), pid, uid, exited: exited.clone() });
        drop(running);
        tracing::info!(instance = %spec.instance_guid, node = spec.index, pid, port = spec.port, "engine started");

        let started = Instant::now();
        loop {
            if let Some(status) = *exited.borrow() {
                let log = files::read_tail(&log_path);
                bail!("{} exited during start-up ({status}): {}", engine.name(), process::tail(&log));
            }
            if engine.is_ready(&node).await {
                return Ok(());
            }
            if started.elapsed() > READY_TIMEOUT {
                let log = files::read_tail(&log_path);
                bail!(
                    "{} did not accept connections within {} s: {}",
                    engine.name(),
                    READY_TIMEOUT.as_secs(),
                    process::tail(&log)
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Stops an engine process a previous svcdash left running (it was killed, say),
    /// so the node can be started under supervision again.
    async fn stop_leftover(&self, spec: &NodeSpec, layout: &NodeLayout) {
        self.stop_leftover_pid(spec, &spec.engine.pid_file(layout), spec.port).await;
    }

    /// Stops the process named in `pid_file` if it is one of this node's: its
    /// command line names the node's folder or `port`, and it runs under the
    /// node's account.
    async fn stop_leftover_pid(&self, spec: &NodeSpec, pid_file: &std::path::Path, port: u16) {
        let layout = self.layout(spec);
        // The engine writes the pid file: read without following links, and believe
        // it only for a process of this node, running under the node's account.
        let Some(pid) = files::read_small(pid_file).and_then(|t| t.lines().next()?.trim().parse::<u32>().ok()) else {
            return;
        };
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        let cmdline = String::from_utf8_lossy(&cmdline);
        let names_node =
            cmdline.contains(&layout.root().display().to_string()) || cmdline.contains(&format!(":{port}"));
        let account = match self.existing_engine_user(spec).await {
            Ok(account) => account,
            Err(_) => return,
        };
        let same_account = match (account, i32::try_from(pid).ok().and_then(accounts::process_uids)) {
            (Some(user), Some((real, _))) => real == user.uid,
            (None, Some(_)) => true,
            (_, None) => false,
        };
        if !process::is_alive(pid) || !names_node || !same_account {
            return;
        }
        tracing::warn!(pid, instance = %spec.instance_guid, node = spec.index, "stopping an engine left running by an earlier svcdash");
        process::signal(pid, spec.engine.stop_signal());
        let started = Instant::now();
        while process::is_alive(pid) && started.elapsed() < STOP_TIMEOUT {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        if process::is_alive(pid) {
            process::signal(pid, Signal::SIGKILL);
        }
    }

    /// The process id of a running node, if it runs.
    pub async fn pid(&self, spec: &NodeSpec) -> Option<u32> {
        self.running_pid(&spec.local_name, spec.index).await
    }

    /// The process id of node `index` of an instance, if it runs; needs no credentials.
    pub async fn running_pid(&self, local_name: &str, index: i64) -> Option<u32> {
        let running = self.running.lock().await;
        running.get(&(local_name.to_owned(), index)).filter(|n| n.exited.borrow().is_none()).map(|n| n.pid)
    }

    /// Removes the accounts of every instance under this deployer's folder, killing
    /// what runs under them: for a test being torn down with its data (accounts are
    /// host-wide and would outlive it). Blocking.
    pub fn remove_accounts_now(&self) {
        if !self.own_accounts {
            return;
        }
        let names: Vec<String> = std::fs::read_dir(&self.root)
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| e.file_name().to_str().map(str::to_owned))
            .collect();
        for name in names {
            if accounts::exists(&name)
                && let Err(e) = accounts::remove(&name)
            {
                tracing::warn!(account = %name, error = format!("{e:#}"), "could not remove an instance's account");
            }
        }
    }
}

#[async_trait]
impl Deployer for LocalDeployer {
    async fn provision(&self, spec: &NodeSpec) -> anyhow::Result<()> {
        let engine = spec.engine.clone();
        self.tools.check(engine.as_ref())?;
        let run_as = self.engine_user(spec).await?;
        self.check_reachable()?;
        let layout = self.layout(spec);
        layout.prepare(run_as)?;
        engine.init(&Node { spec, layout: &layout, run_as, tools: &self.tools }).await?;
        self.start_with(spec, StartMode::Setup).await?;
        engine.setup(&Node { spec, layout: &layout, run_as, tools: &self.tools }).await
    }

    async fn recreate(&self, spec: &NodeSpec) -> anyhow::Result<()> {
        let layout = self.layout(spec);
        anyhow::ensure!(
            files::is_folder(&layout.data_dir()),
            "the node's persistent data ({}) is missing; recreating keeps data and cannot make it",
            layout.data_dir().display()
        );
        self.stop(spec).await?;
        self.stop_leftover(spec, &layout).await;
        for dir in [layout.system(), layout.ephemeral()] {
            files::remove_tree(&dir)?;
        }
        self.provision(spec).await
    }

    async fn rebuild(&self, spec: &NodeSpec) -> anyhow::Result<()> {
        let layout = self.layout(spec);
        self.stop(spec).await?;
        self.stop_leftover(spec, &layout).await;
        if files::is_folder(&layout.data_dir()) {
            crate::swap::discard(&layout, &layout.data_dir());
            anyhow::ensure!(
                !files::is_folder(&layout.data_dir()),
                "could not move node {}'s old data aside",
                spec.index
            );
        }
        for dir in [layout.system(), layout.ephemeral()] {
            files::remove_tree(&dir)?;
        }
        self.provision(spec).await
    }

    async fn start(&self, spec: &NodeSpec) -> anyhow::Result<()> {
        self.start_with(spec, StartMode::Normal).await
    }

    async fn stop(&self, spec: &NodeSpec) -> anyhow::Result<()> {
        self.stop_node(&spec.local_name, spec.index).await;
        Ok(())
    }

    async fn destroy(&self, local_name: &str, nodes: &[NodeSpec]) -> anyhow::Result<()> {
        for spec in nodes {
            self.stop(spec).await?;
        }
        files::remove_tree(&self.root.join(local_name))?;
        if self.own_accounts {
            let name = local_name.to_owned();
            tokio::task::spawn_blocking(move || accounts::remove(&name)).await??;
        }
        Ok(())
    }

    async fn listen_for_wal(&self, spec: &NodeSpec, socket: WalSocket) -> anyhow::Result<WalListener> {
        let layout = self.layout(spec);
        anyhow::ensure!(
            files::is_folder(&layout.ephemeral()),
            "node {} of {} has no folders yet",
            spec.index,
            spec.local_name
        );
        let account = if self.own_accounts {
            let name = spec.local_name.clone();
            let found = tokio::task::spawn_blocking(move || accounts::find(&name)).await??;
            Some(found.with_context(|| format!("the account {} is missing", spec.local_name))?)
        } else {
            None
        };
        // `ephemeral/` belongs to svcdash, the engine's group may only enter it.
        let (svcdash, _) = crate::layout::owners(account);
        let mode = if account.is_some() { 0o660 } else { 0o600 };
        let (name, path) = match socket {
            WalSocket::Archive => (crate::layout::ARCHIVE_SOCKET, layout.archive_socket()),
            WalSocket::Fetch => (crate::layout::FETCH_SOCKET, layout.fetch_socket()),
        };
        let listener = files::unix_socket(&layout.ephemeral(), name, svcdash, mode)?;
        WalListener::new(listener, path, account.map(|user| user.uid.as_raw()))
    }

    async fn role(&self, spec: &NodeSpec) -> anyhow::Result<Role> {
        self.probe(spec, "its role", async |node| spec.engine.role(node).await).await
    }

    async fn replication(&self, spec: &NodeSpec) -> anyhow::Result<Option<crate::Replication>> {
        self.probe(spec, "its replication", async |node| spec.engine.replication(node).await).await
    }

    async fn in_sync(&self, spec: &NodeSpec) -> anyhow::Result<bool> {
        self.probe(spec, "whether it is in step", async |node| spec.engine.in_sync(node).await).await
    }

    async fn switchover(&self, spec: &NodeSpec) -> anyhow::Result<()> {
        self.with_node(spec, async |node| spec.engine.switchover(node).await).await
    }

    async fn promote(&self, spec: &NodeSpec) -> anyhow::Result<()> {
        self.with_node(spec, async |node| spec.engine.promote(node).await).await
    }

    async fn hold_failover(&self, nodes: &[NodeSpec]) {
        for spec in nodes {
            self.held.lock().await.insert(spec.local_name.clone());
            self.stop_companions(&spec.local_name, spec.index).await;
        }
    }

    async fn release_failover(&self, nodes: &[NodeSpec]) -> anyhow::Result<()> {
        for spec in nodes {
            self.held.lock().await.remove(&spec.local_name);
        }
        for spec in nodes.iter().filter(|s| s.is_clustered()) {
            if self.running_pid(&spec.local_name, spec.index).await.is_some() {
                self.start_companions(spec, true).await?;
                self.start_companions(spec, false).await?;
            }
        }
        Ok(())
    }

    async fn is_running(&self, local_name: &str, index: i64) -> bool {
        self.running_pid(local_name, index).await.is_some() && self.companions_run(local_name, index).await
    }

    async fn stop_node(&self, local_name: &str, index: i64) {
        self.stop_companions(local_name, index).await;
        let node = self.running.lock().await.remove(&(local_name.to_owned(), index));
        if let Some(node) = node {
            stop_process(node).await;
        }
    }

    async fn stop_all(&self) {
        let companions: Vec<_> = self.companions.lock().await.keys().cloned().collect();
        futures::future::join_all(companions.iter().map(|(name, index)| self.stop_companions(name, *index))).await;
        // Instances at once, each one's nodes one by one, node 0 last: the node that
        // leaves a cluster last is the one that may start it again (Galera), and
        // node 0 is the one started first.
        let mut instances: std::collections::BTreeMap<String, Vec<(i64, Running)>> = Default::default();
        for ((name, index), node) in self.running.lock().await.drain() {
            instances.entry(name).or_default().push((index, node));
        }
        let stops = instances.into_iter().map(|(name, mut nodes)| async move {
            nodes.sort_by_key(|(index, _)| std::cmp::Reverse(*index));
            for (_, node) in nodes {
                tracing::info!(instance = %name, pid = node.pid, "stopping engine");
                stop_process(node).await;
            }
        });
        futures::future::join_all(stops).await;
    }

    async fn create_user(&self, spec: &NodeSpec, username: &str, password: &str) -> anyhow::Result<AppCredentials> {
        self.with_node(spec, async |node| spec.engine.create_user(node, username, password).await).await
    }

    async fn delete_user(&self, spec: &NodeSpec, username: &str) -> anyhow::Result<()> {
        self.with_node(spec, async |node| spec.engine.delete_user(node, username).await).await
    }

    async fn backup(&self, spec: &NodeSpec) -> anyhow::Result<BackupStream> {
        self.with_node(spec, async |node| spec.engine.backup(node).await).await
    }

    async fn begin_restore(&self, spec: &NodeSpec) -> anyhow::Result<RestoreSink> {
        self.with_node(spec, async |node| spec.engine.begin_restore(node).await).await
    }

    async fn begin_parallel_restore(
        &self,
        spec: &NodeSpec,
        layout: &serde_json::Value,
        pieces: std::sync::Arc<dyn crate::engine::BackupPieces>,
    ) -> anyhow::Result<Option<Box<dyn StagedRestore>>> {
        self.with_node(spec, async |node| spec.engine.begin_parallel_restore(node, layout, pieces).await).await
    }

    async fn begin_point_in_time_restore(
        &self,
        spec: &NodeSpec,
        target: &RecoveryTarget,
    ) -> anyhow::Result<RestoreSink> {
        self.with_node(spec, async |node| spec.engine.begin_point_in_time_restore(node, target).await).await
    }

    async fn base_backup(&self, spec: &NodeSpec) -> anyhow::Result<BaseBackupStream> {
        self.with_node(spec, async |node| spec.engine.base_backup(node).await).await
    }

    async fn wal_position(&self, spec: &NodeSpec) -> anyhow::Result<WalPosition> {
        self.with_node(spec, async |node| spec.engine.wal_position(node).await).await
    }

    async fn close_wal(&self, spec: &NodeSpec) -> anyhow::Result<()> {
        self.with_node(spec, async |node| spec.engine.close_wal(node).await).await
    }

    async fn seal_wal(&self, spec: &NodeSpec) -> anyhow::Result<String> {
        self.with_node(spec, async |node| spec.engine.seal_wal(node).await).await
    }

    async fn commit_restore(&self, spec: &NodeSpec, staged: Box<dyn StagedRestore>) -> anyhow::Result<()> {
        let control = Control { deployer: self, spec };
        self.with_node(spec, async |node| staged.commit(node, &control).await).await
    }

    async fn abort_restore(&self, spec: &NodeSpec, staged: Box<dyn StagedRestore>) {
        let result = self
            .with_node(spec, async |node| {
                staged.abort(node).await;
                Ok(())
            })
            .await;
        if let Err(e) = result {
            tracing::warn!(error = format!("{e:#}"), "could not clean up after a failed restore");
        }
    }

    /// Kills whole process groups, so no PostgreSQL backend is left behind.
    fn kill_all_now(&self) {
        if let Ok(companions) = self.companions.try_lock() {
            for companion in companions.values().flatten() {
                process::kill_group(companion.pid);
            }
        }
        if let Ok(running) = self.running.try_lock() {
            for node in running.values() {
                process::kill_group(node.pid);
            }
        }
    }

    fn isolated(&self) -> bool {
        self.own_accounts
    }

    fn probe(&self) -> Option<&dyn NodeProbe> {
        Some(self)
    }
}

#[async_trait]
impl NodeProbe for LocalDeployer {
    fn disk_paths(&self, local_name: &str, index: i64) -> NodeDiskPaths {
        let layout = self.node_layout(local_name, index);
        NodeDiskPaths { system: layout.system(), ephemeral: layout.ephemeral(), persistent: layout.persistent() }
    }

    /// The engine's main process, its companions, and every process of the node's
    /// account whose name is one of the engine's (RabbitMQ's port mapper daemonizes,
    /// say, and leaves the main process's tree) but those of the instance's other
    /// nodes, which share the account: each node runs in process groups of its own.
    async fn processes(&self, local_name: &str, index: i64) -> Vec<u32> {
        let (pid, uid, engine, other_groups, first) = {
            let running = self.running.lock().await;
            let Some(n) = running.get(&(local_name.to_owned(), index)).filter(|n| n.exited.borrow().is_none()) else {
                return Vec::new();
            };
            let others: Vec<u32> =
                running.iter().filter(|((name, i), _)| name == local_name && *i != index).map(|(_, n)| n.pid).collect();
            let first = running.keys().filter(|(name, _)| name == local_name).map(|(_, i)| *i).min();
            (n.pid, n.uid, n.engine.clone(), others, first == Some(index))
        };
        let (own_companions, other_groups) = {
            let companions = self.companions.lock().await;
            let own: Vec<u32> = companions
                .get(&(local_name.to_owned(), index))
                .into_iter()
                .flatten()
                .filter(|c| c.runs())
                .map(|c| c.pid)
                .collect();
            let mut groups = other_groups;
            groups.extend(
                companions
                    .iter()
                    .filter(|((name, i), _)| name == local_name && *i != index)
                    .flat_map(|(_, list)| list.iter().map(|c| c.pid)),
            );
            (own, groups)
        };
        let mut pids = vec![pid];
        pids.extend(own_companions);
        let own_groups = pids.clone();
        if let Some(uid) = uid {
            let names = engine.process_names();
            let others = tokio::task::spawn_blocking(move || accounts::processes_of(uid, names)).await;
            let (own_root, instance_root) =
                (self.node_layout(local_name, index).root().to_owned(), self.root.join(local_name));
            for other in others.unwrap_or_default() {
                // A process working in a node's folder (PostgreSQL's run in their data
                // folder) is that node's, whatever started it.
                let foreign = match std::fs::read_link(format!("/proc/{other}/cwd")) {
                    Ok(cwd) if cwd.starts_with(&instance_root) => !cwd.starts_with(&own_root),
                    _ => match process::groups_of(other) {
                        // Gone since it was listed: nobody's.
                        [None, None] => true,
                        // In no node's group nor folder (a port mapper the nodes share,
                        // daemonized): the first running node's, counted once.
                        groups => {
                            let in_own = groups.iter().flatten().any(|group| own_groups.contains(group));
                            !in_own && (groups.iter().flatten().any(|group| other_groups.contains(group)) || !first)
                        }
                    },
                };
                if !pids.contains(&other) && !foreign {
                    pids.push(other);
                }
            }
        }
        pids
    }

    async fn main_pid(&self, local_name: &str, index: i64) -> Option<u32> {
        self.running_pid(local_name, index).await
    }

    async fn stop_node_if(&self, local_name: &str, index: i64, pid: u32) {
        let key = (local_name.to_owned(), index);
        let node = {
            let mut running = self.running.lock().await;
            if running.get(&key).is_some_and(|n| n.pid == pid) { running.remove(&key) } else { None }
        };
        if let Some(node) = node {
            stop_process(node).await;
        }
    }
}

/// What a restore's commit may do to its node.
struct Control<'a> {
    deployer: &'a LocalDeployer,
    spec: &'a NodeSpec,
}

#[async_trait]
impl NodeControl for Control<'_> {
    async fn stop(&self) -> anyhow::Result<()> {
        self.deployer.stop(self.spec).await
    }

    async fn stop_discarding(&self) -> anyhow::Result<()> {
        self.deployer.stop_node_discarding(self.spec).await;
        Ok(())
    }

    async fn start(&self, mode: StartMode) -> anyhow::Result<()> {
        self.deployer.start_with(self.spec, mode).await
    }
}

/// Waits until a companion the server needs accepts connections on `port`.
async fn wait_listening(
    name: &str,
    port: u16,
    exited: &watch::Receiver<Option<ExitStatus>>,
    log: &std::path::Path,
) -> anyhow::Result<()> {
    let started = Instant::now();
    loop {
        if let Some(status) = *exited.borrow() {
            bail!("{name} exited during start-up ({status}): {}", process::tail(&files::read_tail(log)));
        }
        if tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_ok() {
            return Ok(());
        }
        if started.elapsed() > READY_TIMEOUT {
            bail!(
                "{name} did not listen on port {port} within {} s: {}",
                READY_TIMEOUT.as_secs(),
                process::tail(&files::read_tail(log))
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn stop_process(node: Running) {
    let signal = node.engine.stop_signal();
    process::signal(node.pid, signal);
    wait_or_kill(node, signal).await;
}

/// Waits for the node's exit, asking again every few seconds: an engine may turn
/// a request down while it is busy (Redis does while writing its first append-only
/// file after a full sync, and does not try again by itself).
async fn wait_or_kill(mut node: Running, signal: Signal) {
    let started = Instant::now();
    let mut stopped = false;
    while started.elapsed() < STOP_TIMEOUT {
        if tokio::time::timeout(ASK_AGAIN, node.exited.wait_for(|s| s.is_some())).await.is_ok() {
            stopped = true;
            break;
        }
        process::signal(node.pid, signal);
    }
    if !stopped {
        tracing::warn!(pid = node.pid, "engine did not stop in time; killing it");
        process::signal(node.pid, Signal::SIGKILL);
        let _ = node.exited.wait_for(|s| s.is_some()).await;
    }
}
