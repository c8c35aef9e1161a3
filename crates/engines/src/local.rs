//! The local deployer: every node is an engine process on this machine, supervised
//! by svcdash, with its files under `<data>/instances/<instance>/node-<n>/`.

use std::collections::HashMap;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use nix::sys::signal::Signal;
use tokio::io::AsyncWrite;
use tokio::process::ChildStdout;
use tokio::sync::{Mutex, watch};

use crate::process::{self, RunAs};
use crate::{AppCredentials, EngineKind, NodeLayout, NodeSpec, Tools, postgres, redis};

const READY_TIMEOUT: Duration = Duration::from_secs(90);
const STOP_TIMEOUT: Duration = Duration::from_secs(60);

pub struct LocalDeployer {
    root: PathBuf,
    tools: Tools,
    run_as: Option<RunAs>,
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
    /// `run_as` names the user engines run as when svcdash runs as root.
    pub fn new(root: PathBuf, tools: Tools, run_as: &str) -> anyhow::Result<Self> {
        std::fs::create_dir_all(&root).with_context(|| format!("creating {}", root.display()))?;
        Ok(Self { root, tools, run_as: RunAs::resolve(run_as)?, running: Mutex::new(HashMap::new()) })
    }

    pub fn tools(&self) -> &Tools {
        &self.tools
    }

    pub fn layout(&self, spec: &NodeSpec) -> NodeLayout {
        self.node_layout(&spec.instance_guid, spec.index)
    }

    pub fn node_layout(&self, instance_guid: &str, index: i64) -> NodeLayout {
        NodeLayout::new(self.root.join(instance_guid).join(format!("node-{index}")))
    }

    /// Creates the node's folders and data, starts it and prepares it for applications.
    /// Safe to run again after an interruption.
    pub async fn provision(&self, spec: &NodeSpec) -> anyhow::Result<()> {
        self.tools.check(spec.engine)?;
        let layout = self.layout(spec);
        for dir in [layout.system(), layout.ephemeral().join("log"), layout.persistent()] {
            std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        self.check_reachable(layout.root())?;
        process::chown_tree(layout.root(), self.run_as).context("handing the node's folders to the engine user")?;
        if spec.engine == EngineKind::Postgresql {
            postgres::init(&self.tools, &layout, spec, self.run_as).await?;
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
            layout.persistent().is_dir(),
            "the node's persistent data ({}) is missing; recreating keeps data and cannot make it",
            layout.persistent().display()
        );
        self.stop(spec).await?;
        self.stop_leftover(spec, &layout).await;
        for dir in [layout.system(), layout.ephemeral()] {
            if dir.exists() {
                std::fs::remove_dir_all(&dir).with_context(|| format!("removing {}", dir.display()))?;
            }
        }
        self.provision(spec).await
    }

    /// The engine user must be able to walk down to the node's folder.
    fn check_reachable(&self, dir: &Path) -> anyhow::Result<()> {
        use std::os::unix::fs::PermissionsExt;
        if self.run_as.is_none() {
            return Ok(());
        }
        for ancestor in dir.ancestors().skip(1) {
            if let Ok(meta) = ancestor.metadata()
                && meta.permissions().mode() & 0o001 == 0
            {
                bail!(
                    "the engine user cannot enter {} (mode {:o}); give it o+x or move the data folder",
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
        let key = (spec.instance_guid.clone(), spec.index);
        let mut running = self.running.lock().await;
        if let Some(node) = running.get(&key)
            && node.exited.borrow().is_none()
        {
            return Ok(());
        }
        let layout = self.layout(spec);
        self.stop_leftover(spec, &layout).await;
        let mut cmd = match spec.engine {
            EngineKind::Postgresql => postgres::start_command(&self.tools, &layout, spec, self.run_as)?,
            EngineKind::Redis => {
                redis::init(&layout, spec, self.run_as)?;
                redis::start_command(&self.tools, &layout, self.run_as, extra)?
            }
        };
        let log_path = layout.log_file(spec.engine.short_name());
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .with_context(|| format!("opening {}", log_path.display()))?;
        cmd.stdout(Stdio::from(log.try_clone()?)).stderr(Stdio::from(log));
        let mut child = cmd.spawn().with_context(|| format!("starting {:?}", spec.engine))?;
        let pid = child.id().context("the engine exited at once")?;
        let (tx, exited) = watch::channel(None);
        let label = format!("{}/node-{}", spec.instance_guid, spec.index);
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
                let log = std::fs::read_to_string(&log_path).unwrap_or_default();
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
            EngineKind::Postgresql => layout.persistent().join("pgdata").join("postmaster.pid"),
            EngineKind::Redis => layout.ephemeral().join("redis.pid"),
        };
        let Some(pid) =
            std::fs::read_to_string(&pid_file).ok().and_then(|t| t.lines().next()?.trim().parse::<u32>().ok())
        else {
            return;
        };
        // Only a process of this node: its command line names the node's folder or port.
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        let cmdline = String::from_utf8_lossy(&cmdline);
        let ours =
            cmdline.contains(&layout.root().display().to_string()) || cmdline.contains(&format!(":{}", spec.port));
        if !process::is_alive(pid) || !ours {
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
        self.stop_node(&spec.instance_guid, spec.index).await;
        Ok(())
    }

    /// Stops node `index` of an instance if its engine is still the process `pid`
    /// (not one started since); needs no credentials.
    pub async fn stop_node_if(&self, instance_guid: &str, index: i64, pid: u32) {
        let key = (instance_guid.to_owned(), index);
        let node = {
            let mut running = self.running.lock().await;
            if running.get(&key).is_some_and(|n| n.pid == pid) { running.remove(&key) } else { None }
        };
        if let Some(node) = node {
            stop_process(node).await;
        }
    }

    /// Stops node `index` of an instance if it runs under svcdash; needs no credentials.
    pub async fn stop_node(&self, instance_guid: &str, index: i64) {
        let node = self.running.lock().await.remove(&(instance_guid.to_owned(), index));
        if let Some(node) = node {
            stop_process(node).await;
        }
    }

    pub async fn stop_all(&self) {
        let nodes: Vec<_> = self.running.lock().await.drain().collect();
        let stops = nodes.into_iter().map(|((guid, _), node)| async move {
            tracing::info!(instance = %guid, pid = node.pid, "stopping engine");
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

    /// Stops every node of an instance and removes its files.
    pub async fn destroy(&self, instance_guid: &str, nodes: &[NodeSpec]) -> anyhow::Result<()> {
        for spec in nodes {
            self.stop(spec).await?;
        }
        let dir = self.root.join(instance_guid);
        if dir.exists() {
            std::fs::remove_dir_all(&dir).with_context(|| format!("removing {}", dir.display()))?;
        }
        Ok(())
    }

    /// The process id of a running node, if it runs.
    pub async fn pid(&self, spec: &NodeSpec) -> Option<u32> {
        self.running_pid(&spec.instance_guid, spec.index).await
    }

    /// The process id of node `index` of an instance, if it runs; needs no credentials.
    pub async fn running_pid(&self, instance_guid: &str, index: i64) -> Option<u32> {
        let running = self.running.lock().await;
        running.get(&(instance_guid.to_owned(), index)).filter(|n| n.exited.borrow().is_none()).map(|n| n.pid)
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
    pub fn dump(
        &self,
        spec: &NodeSpec,
    ) -> anyhow::Result<(ChildStdout, impl Future<Output = anyhow::Result<()>> + use<>)> {
        let (mut cmd, what) = match spec.engine {
            EngineKind::Postgresql => (postgres::dump_command(&self.tools, spec)?, "pg_dump"),
            EngineKind::Redis => (redis::dump_command(&self.tools, spec)?, "redis-cli --rdb"),
        };
        let mut child =
            cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().with_context(|| format!("starting {what}"))?;
        let stdout = child.stdout.take().context("the dump has no stdout")?;
        // A 1 MiB pipe instead of 64 KiB: the dump program blocks less often.
        if let Err(e) = nix::fcntl::fcntl(&stdout, nix::fcntl::FcntlArg::F_SETPIPE_SZ(1 << 20)) {
            tracing::debug!(error = %e, "could not enlarge the dump pipe");
        }
        let stderr = process::collect_tail(child.stderr.take().context("the dump has no stderr")?);
        Ok((stdout, process::finish(child, stderr, what)))
    }

    /// Prepares a restore beside the node's data; write the plain dump into the sink,
    /// then [`commit_restore`](Self::commit_restore) or [`abort_restore`](Self::abort_restore).
    pub async fn begin_restore(
        &self,
        spec: &NodeSpec,
    ) -> anyhow::Result<(Box<dyn AsyncWrite + Unpin + Send>, RestoreTarget)> {
        match spec.engine {
            EngineKind::Postgresql => {
                let (stdin, restore) = postgres::begin_restore(&self.tools, spec).await?;
                Ok((Box::new(stdin), RestoreTarget::Postgresql(restore)))
            }
            EngineKind::Redis => {
                let path = redis::staging_file(&self.layout(spec));
                let file =
                    tokio::fs::File::create(&path).await.with_context(|| format!("creating {}", path.display()))?;
                Ok((Box::new(file), RestoreTarget::Redis))
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
                std::fs::File::open(&staging)?.sync_all()?;
                process::chown_tree(&staging, self.run_as)?;
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
                let _ = std::fs::remove_file(redis::staging_file(&self.layout(spec)));
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
