//! The local deployer: every node is an engine process on this machine, supervised
//! by svcdash, with its files under `<data>/instances/<local name>/node-<n>/`. The
//! local name is one svcdash made for the instance (never an id from a request); when
//! svcdash runs as root it is also the name of the instance's own account.

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::{ExitStatus, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use futures::FutureExt;
use futures::future::BoxFuture;
use nix::sys::signal::Signal;
use nix::unistd::Uid;
use tokio::io::AsyncWrite;
use tokio::process::ChildStdout;
use tokio::sync::{Mutex, watch};

use crate::files::{self, Owner};
use crate::process::{self, RunAs};
use crate::{AppCredentials, EngineKind, NodeLayout, NodeSpec, Tools, accounts, postgres, redis};

const READY_TIMEOUT: Duration = Duration::from_secs(90);
const STOP_TIMEOUT: Duration = Duration::from_secs(60);

pub struct LocalDeployer {
    root: PathBuf,
    tools: Tools,
    /// Whether each instance runs under an account of its own (svcdash is root).
    own_accounts: bool,
    /// Keyed by the instance's local name and the node's index.
    running: Mutex<HashMap<(String, i64), Running>>,
}

struct Running {
    engine: EngineKind,
    pid: u32,
    exited: watch::Receiver<Option<ExitStatus>>,
}

/// A restore being loaded next to the node's data, not yet switched in.
pub enum RestoreTarget {
    Postgresql(postgres::Restore),
    Redis,
}

impl LocalDeployer {
    /// Instances live under `root`. When svcdash runs as root every instance gets an
    /// account of its own; otherwise engines run as svcdash's own user and are not
    /// isolated from svcdash or from each other ([`Self::isolated`] says which).
    pub fn new(root: PathBuf, tools: Tools) -> anyhow::Result<Self> {
        let own_accounts = Uid::effective().is_root();
        std::fs::create_dir_all(&root).with_context(|| format!("creating {}", root.display()))?;
        // Engine accounts walk through to their own folder but cannot list the others.
        files::folder(&root, Owner::default(), if own_accounts { 0o711 } else { 0o700 })?;
        Ok(Self { root, tools, own_accounts, running: Mutex::new(HashMap::new()) })
    }

    /// Whether instances run under accounts of their own.
    pub fn isolated(&self) -> bool {
        self.own_accounts
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

    /// Creates the node's folders and data, starts it and prepares it for applications.
    /// Safe to run again after an interruption.
    pub async fn provision(&self, spec: &NodeSpec) -> anyhow::Result<()> {
        self.tools.check(spec.engine)?;
        let run_as = self.engine_user(spec).await?;
        self.check_reachable()?;
        let layout = self.layout(spec);
        layout.prepare(run_as)?;
        if spec.engine == EngineKind::Postgresql {
            postgres::init(&self.tools, &layout, spec, run_as).await?;
        }
        self.start(spec).await?;
        if spec.engine == EngineKind::Postgresql {
            postgres::setup(spec).await?;
        }
        Ok(())
    }

    /// Rebuilds the node's `system` and `ephemeral` parts from nothing (configuration,
    /// logs, pid files), keeps its `persistent` data, and starts it again.
    pub async fn recreate(&self, spec: &NodeSpec) -> anyhow::Result<()> {
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

    /// Starts the node's engine unless it runs already, and waits until it answers.
    pub async fn start(&self, spec: &NodeSpec) -> anyhow::Result<()> {
        self.start_with(spec, &[]).await
    }

    async fn start_with(&self, spec: &NodeSpec, extra: &[&str]) -> anyhow::Result<()> {
        let key = (spec.local_name.clone(), spec.index);
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
        let mut cmd = match spec.engine {
            EngineKind::Postgresql => postgres::start_command(&self.tools, &layout, spec, run_as)?,
            EngineKind::Redis => {
                redis::init(&layout, spec, run_as)?;
                redis::start_command(&self.tools, &layout, run_as, extra)?
            }
        };
        let log_path = layout.log_file(spec.engine.short_name());
        let (svcdash, _) = crate::layout::owners(run_as);
        let log = files::append(&log_path, svcdash, 0o640)?;
        cmd.stdout(Stdio::from(log.try_clone()?)).stderr(Stdio::from(log));
        let mut child = cmd.spawn().with_context(|| format!("starting {:?}", spec.engine))?;
        let pid = child.id().context("the engine exited at once")?;
        let (tx, exited) = watch::channel(None);
        let label = format!("{}/node-{}", spec.local_name, spec.index);
        tokio::spawn(async move {
            let status = child.wait().await.ok();
            tracing::info!(node = %label, ?status, "engine process exited");
            let _ = tx.send(status);
        });
        running.insert(key, Running { engine: spec.engine, pid, exited: exited.clone() });
        drop(running);
        tracing::info!(instance = %spec.instance_guid, node = spec.index, pid, port = spec.port, "engine started");

        let started = Instant::now();
        loop {
            if let Some(status) = *exited.borrow() {
                let log = files::read_tail(&log_path);
                bail!("{:?} exited during start-up ({status}): {}", spec.engine, process::tail(&log));
            }
            let ready = match spec.engine {
                EngineKind::Postgresql => postgres::is_ready(spec).await,
                EngineKind::Redis => redis::is_ready(spec).await,
            };
            if ready {
                return Ok(());
            }
            if started.elapsed() > READY_TIMEOUT {
                bail!("{:?} did not accept connections within {} s", spec.engine, READY_TIMEOUT.as_secs());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Stops an engine process a previous svcdash left running (it was killed, say),
    /// so the node can be started under supervision again.
    async fn stop_leftover(&self, spec: &NodeSpec, layout: &NodeLayout) {
        let pid_file = match spec.engine {
            EngineKind::Postgresql => postgres::pid_file(layout),
            EngineKind::Redis => redis::pid_file(layout),
        };
        // The engine writes the pid file: read without following links, and believe
        // it only for a process of this node, running under the node's account.
        let Some(pid) = files::read_small(&pid_file).and_then(|t| t.lines().next()?.trim().parse::<u32>().ok()) else {
            return;
        };
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        let cmdline = String::from_utf8_lossy(&cmdline);
        let names_node =
            cmdline.contains(&layout.root().display().to_string()) || cmdline.contains(&format!(":{}", spec.port));
        let account = match self.engine_user(spec).await {
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
        process::signal(pid, stop_signal(spec.engine));
        let started = Instant::now();
        while process::is_alive(pid) && started.elapsed() < STOP_TIMEOUT {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        if process::is_alive(pid) {
            process::signal(pid, Signal::SIGKILL);
        }
    }

    /// Stops the node's engine cleanly (SIGKILL only if it does not stop within a minute).
    pub async fn stop(&self, spec: &NodeSpec) -> anyhow::Result<()> {
        self.stop_node(&spec.local_name, spec.index).await;
        Ok(())
    }

    /// Stops node `index` of an instance if its engine is still the process `pid`
    /// (not one started since); needs no credentials.
    pub async fn stop_node_if(&self, local_name: &str, index: i64, pid: u32) {
        let key = (local_name.to_owned(), index);
        let node = {
            let mut running = self.running.lock().await;
            if running.get(&key).is_some_and(|n| n.pid == pid) { running.remove(&key) } else { None }
        };
        if let Some(node) = node {
            stop_process(node).await;
        }
    }

    /// Stops node `index` of an instance if it runs under svcdash; needs no credentials.
    pub async fn stop_node(&self, local_name: &str, index: i64) {
        let node = self.running.lock().await.remove(&(local_name.to_owned(), index));
        if let Some(node) = node {
            stop_process(node).await;
        }
    }

    pub async fn stop_all(&self) {
        let nodes: Vec<_> = self.running.lock().await.drain().collect();
        let stops = nodes.into_iter().map(|((name, _), node)| async move {
            tracing::info!(instance = %name, pid = node.pid, "stopping engine");
            stop_process(node).await;
        });
        futures::future::join_all(stops).await;
    }

    /// Kills every engine at once (the whole process group, so no PostgreSQL backend
    /// is left behind), without waiting: for a process that is going away and cannot
    /// await [`stop_all`](Self::stop_all), such as a test being torn down with its data.
    pub fn kill_all_now(&self) {
        if let Ok(running) = self.running.try_lock() {
            for node in running.values() {
                process::kill_group(node.pid);
            }
        }
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

    /// Stops every node of an instance, removes its files and its account.
    pub async fn destroy(&self, local_name: &str, nodes: &[NodeSpec]) -> anyhow::Result<()> {
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

    /// The process id of a running node, if it runs.
    pub async fn pid(&self, spec: &NodeSpec) -> Option<u32> {
        self.running_pid(&spec.local_name, spec.index).await
    }

    /// The process id of node `index` of an instance, if it runs; needs no credentials.
    pub async fn running_pid(&self, local_name: &str, index: i64) -> Option<u32> {
        let running = self.running.lock().await;
        running.get(&(local_name.to_owned(), index)).filter(|n| n.exited.borrow().is_none()).map(|n| n.pid)
    }

    pub async fn create_user(&self, spec: &NodeSpec, username: &str, password: &str) -> anyhow::Result<AppCredentials> {
        match spec.engine {
            EngineKind::Postgresql => postgres::create_user(spec, username, password).await,
            EngineKind::Redis => redis::create_user(spec, username, password).await,
        }
    }

    pub async fn delete_user(&self, spec: &NodeSpec, username: &str) -> anyhow::Result<()> {
        match spec.engine {
            EngineKind::Postgresql => postgres::delete_user(spec, username).await,
            EngineKind::Redis => redis::delete_user(spec, username).await,
        }
    }

    /// Starts the engine's consistent dump; returns its output and a future that says
    /// whether the dump program succeeded.
    pub async fn dump(&self, spec: &NodeSpec) -> anyhow::Result<(ChildStdout, BoxFuture<'static, anyhow::Result<()>>)> {
        let run_as = self.engine_user(spec).await?;
        let (mut cmd, what, after) = match spec.engine {
            EngineKind::Postgresql => {
                let (cmd, after) = postgres::dump_command(&self.tools, spec, run_as).await?;
                (cmd, "pg_dump", Some(after.boxed()))
            }
            EngineKind::Redis => (redis::dump_command(&self.tools, spec, run_as)?, "redis-cli --rdb", None),
        };
        let mut child =
            cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().with_context(|| format!("starting {what}"))?;
        let stdout = child.stdout.take().context("the dump has no stdout")?;
        // A 1 MiB pipe instead of 64 KiB: the dump program blocks less often.
        if let Err(e) = nix::fcntl::fcntl(&stdout, nix::fcntl::FcntlArg::F_SETPIPE_SZ(1 << 20)) {
            tracing::debug!(error = %e, "could not enlarge the dump pipe");
        }
        let stderr = process::collect_tail(child.stderr.take().context("the dump has no stderr")?);
        let done = async move {
            let result = process::finish(child, stderr, what).await;
            if let Some(after) = after {
                after.await;
            }
            result
        };
        Ok((stdout, done.boxed()))
    }

    /// Prepares a restore beside the node's data; write the plain dump into the sink,
    /// then [`commit_restore`](Self::commit_restore) or [`abort_restore`](Self::abort_restore).
    pub async fn begin_restore(
        &self,
        spec: &NodeSpec,
    ) -> anyhow::Result<(Box<dyn AsyncWrite + Unpin + Send>, RestoreTarget)> {
        match spec.engine {
            EngineKind::Postgresql => {
                let run_as = self.engine_user(spec).await?;
                let (stdin, restore) = postgres::begin_restore(&self.tools, spec, run_as).await?;
                Ok((Box::new(stdin), RestoreTarget::Postgresql(restore)))
            }
            EngineKind::Redis => {
                let path = redis::staging_file(&self.layout(spec));
                files::remove_tree(&path)?;
                let file = files::create_new(&path, 0o600)?;
                Ok((Box::new(tokio::fs::File::from_std(file)), RestoreTarget::Redis))
            }
        }
    }

    /// Switches the node over to the restored data.
    pub async fn commit_restore(&self, spec: &NodeSpec, target: RestoreTarget) -> anyhow::Result<()> {
        match target {
            RestoreTarget::Postgresql(restore) => postgres::commit(spec, restore).await,
            RestoreTarget::Redis => {
                let layout = self.layout(spec);
                let staging = redis::staging_file(&layout);
                let file = std::fs::OpenOptions::new().read(true).open(&staging)?;
                file.sync_all()?;
                let (_, engine) = crate::layout::owners(self.engine_user(spec).await?);
                files::give(&file, &staging, engine, 0o600)?;
                self.stop(spec).await?;
                redis::swap_in_staging(&layout)?;
                // Without its AOF, Redis would start empty if appendonly were on: load the
                // RDB first, then write a new AOF from it.
                self.start_with(spec, &["--appendonly", "no"]).await?;
                redis::enable_aof(spec).await
            }
        }
    }

    pub async fn abort_restore(&self, spec: &NodeSpec, target: RestoreTarget) {
        match target {
            RestoreTarget::Postgresql(restore) => postgres::abort(spec, restore).await,
            RestoreTarget::Redis => {
                let _ = files::remove_tree(&redis::staging_file(&self.layout(spec)));
            }
        }
    }
}

fn stop_signal(engine: EngineKind) -> Signal {
    match engine {
        // "Fast" shutdown: roll back open transactions, checkpoint, exit.
        EngineKind::Postgresql => Signal::SIGINT,
        // Saves an RDB snapshot and flushes the AOF, then exits.
        EngineKind::Redis => Signal::SIGTERM,
    }
}

async fn stop_process(node: Running) {
    process::signal(node.pid, stop_signal(node.engine));
    wait_or_kill(node).await;
}

async fn wait_or_kill(mut node: Running) {
    let stopped = tokio::time::timeout(STOP_TIMEOUT, node.exited.wait_for(|s| s.is_some())).await.is_ok();
    if !stopped {
        tracing::warn!(pid = node.pid, "engine did not stop in time; killing it");
        process::signal(node.pid, Signal::SIGKILL);
        let _ = node.exited.wait_for(|s| s.is_some()).await;
    }
}
