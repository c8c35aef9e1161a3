//! Continuous archiving of PostgreSQL's write-ahead log (docs/pitr.md): every node
//! of an archiving instance gets a socket its server hands finished WAL files to
//! (`svcdash wal-push`, PostgreSQL's `archive_command`), and svcdash stores each
//! through the backup pipeline before it answers.

pub mod fetch;
pub mod health;
pub mod names;
mod push;

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use engines::WalListener;
use store::{Instance, InstanceState};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::state::AppState;

/// How often sockets are made for nodes that need one (new, recreated or restored).
const RECONCILE_EVERY: Duration = Duration::from_secs(2);

/// The program PostgreSQL runs to hand over a file: svcdash itself, unless the
/// configuration names another copy (an embedding process, such as the tests, is
/// not one).
pub fn client_program(config: &Config) -> anyhow::Result<PathBuf> {
    match &config.backups.wal_push_program {
        Some(program) => Ok(program.clone()),
        None => std::env::current_exe().context("finding svcdash's own program"),
    }
}

struct Listening {
    listener: Arc<WalListener>,
    task: JoinHandle<()>,
    /// When svcdash last closed the node's current file, and the close running now.
    closed_at: std::time::Instant,
    closing: Option<JoinHandle<()>>,
}

/// The nodes listened for, and those that could not be (warned about once).
#[derive(Default)]
struct Sockets {
    listening: HashMap<(i64, i64), Listening>,
    failing: HashSet<(i64, i64)>,
}

/// Keeps a socket open for every node of every archiving instance until shutdown.
pub async fn run(state: AppState, shutdown: CancellationToken) {
    let mut sockets = Sockets::default();
    loop {
        if let Err(e) = reconcile(&state, &mut sockets).await {
            tracing::warn!(error = format!("{e:#}"), "could not check the archive sockets");
        }
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = tokio::time::sleep(RECONCILE_EVERY) => {}
        }
    }
    for (_, node) in sockets.listening {
        node.task.abort();
        if let Some(closing) = node.closing {
            closing.abort();
        }
    }
}

async fn reconcile(state: &AppState, sockets: &mut Sockets) -> anyhow::Result<()> {
    let mut wanted = HashSet::new();
    for instance in state.store.list_instances().await? {
        let running =
            matches!(instance.state, InstanceState::Provisioned | InstanceState::Available | InstanceState::Failed);
        if !instance.continuous_archiving || !running {
            continue;
        }
        for spec in state.node_specs(&instance).await? {
            let key = (instance.id, spec.index);
            wanted.insert(key);
            if let Some(node) = sockets.listening.get_mut(&key)
                && node.listener.reachable()
                && !node.task.is_finished()
            {
                close_when_due(state, &instance, spec, node);
                continue;
            }
            match state.deployer.listen_for_wal(&spec, engines::WalSocket::Archive).await {
                Ok(listener) => {
                    sockets.failing.remove(&key);
                    tracing::info!(instance = %instance.guid, node = spec.index, "listening for write-ahead log");
                    let listener = Arc::new(listener);
                    let task = tokio::spawn(accept(state.clone(), instance.clone(), listener.clone()));
                    let node = Listening { listener, task, closed_at: std::time::Instant::now(), closing: None };
                    if let Some(old) = sockets.listening.insert(key, node) {
                        old.task.abort();
                    }
                }
                // Its server keeps the files and tries again; a recreate may be
                // making the folder right now.
                Err(e) if sockets.failing.insert(key) => tracing::warn!(
                    instance = %instance.guid,
                    node = spec.index,
                    error = format!("{e:#}"),
                    "cannot listen for write-ahead log"
                ),
                Err(_) => {}
            }
        }
    }
    sockets.listening.retain(|key, node| {
        let keep = wanted.contains(key);
        if !keep {
            node.task.abort();
        }
        keep
    });
    sockets.failing.retain(|key| wanted.contains(key));
    Ok(())
}

/// Closes the node's current write-ahead log file every `wal_archive_timeout_secs`
/// (when anything was written to it), so the archive is never older than that:
/// PostgreSQL's own `archive_timeout` does not fire on every server.
fn close_when_due(state: &AppState, instance: &Instance, spec: engines::NodeSpec, node: &mut Listening) {
    let every = Duration::from_secs(state.config.backups.wal_archive_timeout_secs.max(1).into());
    if node.closed_at.elapsed() < every || node.closing.as_ref().is_some_and(|c| !c.is_finished()) {
        return;
    }
    node.closed_at = std::time::Instant::now();
    let (state, guid) = (state.clone(), instance.guid.clone());
    node.closing = Some(tokio::spawn(async move {
        if let Err(e) = state.deployer.close_wal(&spec).await {
            tracing::debug!(instance = %guid, error = format!("{e:#}"), "could not close the write-ahead log file");
        }
    }));
}

async fn accept(state: AppState, instance: Instance, listener: Arc<WalListener>) {
    loop {
        match listener.listener.accept().await {
            Ok((stream, _)) => {
                tokio::spawn(push::handle(state.clone(), instance.clone(), listener.peer_uid, stream));
            }
            Err(e) => {
                tracing::warn!(instance = %instance.guid, error = %e, "accepting a write-ahead log hand-over failed");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
}
