//! The parachute: when a watched disk of a node reaches its threshold, svcdash
//! stops that node's engine before the disk fills and the data is damaged. The
//! node stays stopped until its disks are back under their thresholds and the
//! instance is restarted, by a manager or, when the operator allows it, by
//! svcdash itself. A single node's instance is `failed` meanwhile, the reason
//! saying why; a cluster goes on serving from its other nodes and fails only once
//! every node is stopped.

use store::{AuditOutcome, Instance, InstanceState, JobKind, Node, ParachuteTrip, StoreError};

use super::points::{NodeDisks, WatchedDisk};
use super::system;
use crate::state::AppState;

/// The watched disks of a node, read now.
pub fn watched(state: &AppState, local_name: &str, node_index: i64) -> Vec<WatchedDisk> {
    watched_of(state, &node_disks(state, local_name, node_index))
}

pub fn watched_of(state: &AppState, disks: &NodeDisks) -> Vec<WatchedDisk> {
    state
        .config
        .parachute
        .thresholds()
        .map(|(name, threshold)| WatchedDisk { name, threshold, disk: disks.get(name) })
        .collect()
}

/// The node's disks, where its deployer can tell them (else none is watched).
pub fn node_disks(state: &AppState, local_name: &str, node_index: i64) -> NodeDisks {
    let Some(probe) = state.deployer.probe() else {
        return NodeDisks::default();
    };
    let paths = probe.disk_paths(local_name, node_index);
    NodeDisks {
        system: system::disk(&paths.system),
        ephemeral: system::disk(&paths.ephemeral),
        persistent: system::disk(&paths.persistent),
    }
}

fn describe(disk: &WatchedDisk) -> String {
    let used = disk.disk.map_or(0, |d| d.used_percent());
    format!("the {} disk is {used} % full (threshold {} %)", disk.name, disk.threshold)
}

/// Acts on one collection of a node: trips the parachute when a watched disk is at
/// its threshold, keeps a tripped node's engine stopped, or queues the restart once
/// the disks are under their thresholds again (if allowed). Returns whether the
/// parachute holds the node's engine stopped.
pub async fn check(
    state: &AppState,
    instance: &Instance,
    node: &Node,
    watched: &[WatchedDisk],
) -> anyhow::Result<bool> {
    if node.parachute.is_some() {
        keep_stopped(state, instance, node).await?;
        // A cluster keeps serving (`available`) with a node stopped; a single node's
        // instance is `failed`. Neither is restarted while a job runs on it.
        if state.config.parachute.auto_restart
            && matches!(instance.state, InstanceState::Failed | InstanceState::Available | InstanceState::Provisioned)
            && still_full(state, instance).await?.is_none()
        {
            match state.store.enqueue_lifecycle(instance.id, JobKind::Restart).await {
                Ok(_) => {
                    state.jobs.notify_one();
                    tracing::info!(instance = %instance.guid, "disks are under their thresholds again; restarting");
                    let detail = "every watched disk is under its threshold again; restart queued";
                    state
                        .audit_as(
                            "parachute",
                            None,
                            "parachute.released",
                            Some(&instance.guid),
                            AuditOutcome::Success,
                            Some(detail),
                        )
                        .await;
                }
                Err(StoreError::Conflict(_)) => {}
                Err(e) => return Err(e.into()),
            }
        }
        return Ok(true);
    }
    if !matches!(instance.state, InstanceState::Available | InstanceState::Provisioned) {
        return Ok(false);
    }
    let Some(full) = watched.iter().find(|w| w.over()) else {
        return Ok(false);
    };
    let why = describe(full);
    let reason = format!(
        "the parachute stopped the engine of node {} to protect its data: {why}; free space (or ask the operator \
         for a larger disk or threshold), then restart the instance",
        node.index
    );
    // One transaction, and only on an instance at rest: a job (a backup, a restore)
    // owns the engine while it runs, and a restore starts it again at its end, so
    // the parachute acts at the first collection after the job. The instance fails
    // once no node of it runs; until then a cluster's other nodes serve (a stopped
    // primary is failed over like a lost one).
    let trip = ParachuteTrip { disk: full.name.to_owned(), at: chrono::Utc::now() };
    if !state.store.trip_parachute(node, &trip, &reason).await? {
        tracing::warn!(instance = %instance.guid, node = node.index, "{why}; the parachute waits for the operation on the instance to end");
        return Ok(false);
    }
    tracing::warn!(instance = %instance.guid, node = node.index, disk = full.name, "parachute activated: {why}; stopping the engine");
    state.deployer.stop_node(&instance.local_name, node.index).await;
    let detail = format!("node {}: {why}; engine stopped", node.index);
    state
        .audit_as("parachute", None, "parachute.activated", Some(&instance.guid), AuditOutcome::Success, Some(&detail))
        .await;
    Ok(true)
}

/// A tripped node's engine that runs although no job does (the watchdog started it
/// just before the trip, say) is stopped again. The process must be the one seen
/// while the node was still marked: a restart releases the mark before it starts
/// the engine, so its engine is never the one stopped.
async fn keep_stopped(state: &AppState, instance: &Instance, node: &Node) -> anyhow::Result<()> {
    let Some(probe) = state.deployer.probe() else {
        return Ok(());
    };
    let Some(pid) = probe.main_pid(&instance.local_name, node.index).await else {
        return Ok(());
    };
    if state.store.running_job(instance.id).await?.is_some() {
        return Ok(());
    }
    let still_marked = state.store.nodes(instance.id).await?.iter().any(|n| n.id == node.id && n.parachute.is_some());
    if still_marked {
        tracing::warn!(instance = %instance.guid, node = node.index, pid, "the engine runs although the parachute holds it; stopping it again");
        probe.stop_node_if(&instance.local_name, node.index, pid).await;
    }
    Ok(())
}

/// Refuses work that needs every node's engine (a restore) while the parachute
/// holds a node stopped.
pub async fn ensure_released(state: &AppState, instance: &Instance) -> anyhow::Result<()> {
    match held(state, instance).await? {
        Some(why) => anyhow::bail!("{why}; free space and restart the instance first"),
        None => Ok(()),
    }
}

/// Which node the parachute holds stopped and why, if one.
pub async fn held(state: &AppState, instance: &Instance) -> anyhow::Result<Option<String>> {
    let nodes = state.store.nodes(instance.id).await?;
    Ok(nodes.iter().find_map(|n| {
        let trip = n.parachute.as_ref()?;
        Some(format!(
            "the parachute keeps the engine of node {} stopped (its {} disk reached its threshold)",
            n.index, trip.disk
        ))
    }))
}

/// Refuses work that needs one node's engine (a backup) while the parachute holds
/// every node stopped: a cluster's other nodes serve it meanwhile.
pub async fn ensure_one_released(state: &AppState, instance: &Instance) -> anyhow::Result<()> {
    let nodes = state.store.nodes(instance.id).await?;
    if nodes.iter().all(|n| n.parachute.is_some()) {
        return ensure_released(state, instance).await;
    }
    Ok(())
}

/// Why the instance's engines may not start yet: a node the parachute stopped
/// whose watched disk is still at its threshold.
pub async fn still_full(state: &AppState, instance: &Instance) -> anyhow::Result<Option<String>> {
    for node in state.store.nodes(instance.id).await? {
        if node.parachute.is_none() {
            continue;
        }
        if let Some(full) = watched(state, &instance.local_name, node.index).iter().find(|w| w.over()) {
            return Ok(Some(format!("the parachute keeps node {} stopped: {}", node.index, describe(full))));
        }
    }
    Ok(None)
}

/// Releases the parachute of every node of the instance (its engines run again).
pub async fn release(state: &AppState, instance: &Instance) -> anyhow::Result<()> {
    for node in state.store.nodes(instance.id).await? {
        if node.parachute.is_some() {
            state.store.set_node_parachute(node.id, None).await?;
            tracing::info!(instance = %instance.guid, node = node.index, "parachute released");
        }
    }
    Ok(())
}

impl AppState {
    /// Whether the parachute keeps any engine of the instance stopped.
    pub async fn parachute_activated(&self, instance: &Instance) -> store::StoreResult<bool> {
        Ok(self.store.nodes(instance.id).await?.iter().any(|n| n.parachute.is_some()))
    }
}
