//! The parachute: when a watched disk of a node reaches its threshold, svcdash
//! stops that node's engine before the disk fills and the data is damaged. The
//! node stays stopped (the instance `failed`, the reason saying why) until its
//! disks are back under their thresholds and the instance is restarted, by a
//! manager or, when the operator allows it, by svcdash itself.

use store::{AuditOutcome, Instance, InstanceState, JobKind, Node, ParachuteTrip, StoreError};

use super::points::{NodeDisks, WatchedDisk};
use super::system;
use crate::state::AppState;

/// The watched disks of a node, read now.
pub fn watched(state: &AppState, instance_guid: &str, node_index: i64) -> Vec<WatchedDisk> {
    watched_of(state, &node_disks(state, instance_guid, node_index))
}

pub fn watched_of(state: &AppState, disks: &NodeDisks) -> Vec<WatchedDisk> {
    state
        .config
        .parachute
        .thresholds()
        .map(|(name, threshold)| WatchedDisk { name, threshold, disk: disks.get(name) })
        .collect()
}

pub fn node_disks(state: &AppState, instance_guid: &str, node_index: i64) -> NodeDisks {
    let layout = state.deployer.node_layout(instance_guid, node_index);
    NodeDisks {
        system: system::disk(&layout.system()),
        ephemeral: system::disk(&layout.ephemeral()),
        persistent: system::disk(&layout.persistent()),
    }
}

fn describe(disk: &WatchedDisk) -> String {
    let used = disk.disk.map_or(0, |d| d.used_percent());
    format!("the {} disk is {used} % full (threshold {} %)", disk.name, disk.threshold)
}

/// Acts on one collection of a node: trips the parachute when a watched disk is at
/// its threshold, or queues the restart once it is released (if allowed). Returns
/// whether the parachute holds the node's engine stopped.
pub async fn check(
    state: &AppState,
    instance: &Instance,
    node: &Node,
    watched: &[WatchedDisk],
) -> anyhow::Result<bool> {
    if node.parachute.is_some() {
        let clear = watched.iter().all(|w| w.disk.is_some() && !w.over());
        if clear && state.config.parachute.auto_restart && instance.state == InstanceState::Failed {
            match state.store.enqueue_lifecycle(instance.id, JobKind::Restart).await {
                Ok(_) => {
                    state.jobs.notify_one();
                    tracing::info!(instance = %instance.guid, node = node.index, "disks are under their thresholds again; restarting");
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
    // A job (a backup, a restore) owns the engine while it runs, and a restore
    // starts it again at its end: the parachute acts at the first collection after.
    if state.store.running_job(instance.id).await?.is_some() {
        tracing::warn!(instance = %instance.guid, node = node.index, "{}; waiting for the running job to end before stopping the engine", describe(full));
        return Ok(false);
    }
    let why = describe(full);
    let reason = format!(
        "the parachute stopped the engine of node {} to protect its data: {why}; free space (or ask the operator \
         for a larger disk or threshold), then restart the instance",
        node.index
    );
    // Failed first, so the engine watchdog does not start it again meanwhile.
    state.store.set_instance_state(instance.id, InstanceState::Failed, Some(&reason)).await?;
    state
        .store
        .set_node_parachute(node.id, Some(&ParachuteTrip { disk: full.name.to_owned(), at: chrono::Utc::now() }))
        .await?;
    tracing::warn!(instance = %instance.guid, node = node.index, disk = full.name, "parachute activated: {why}; stopping the engine");
    let engine = state.engine_of(instance)?;
    state.deployer.stop(&state.node_spec(instance, engine, node)?).await?;
    let detail = format!("node {}: {why}; engine stopped", node.index);
    state
        .audit_as("parachute", None, "parachute.activated", Some(&instance.guid), AuditOutcome::Success, Some(&detail))
        .await;
    Ok(true)
}

/// Why the instance's engines may not start yet: a node the parachute stopped
/// whose watched disk is still at its threshold.
pub async fn still_full(state: &AppState, instance: &Instance) -> anyhow::Result<Option<String>> {
    for node in state.store.nodes(instance.id).await? {
        if node.parachute.is_none() {
            continue;
        }
        if let Some(full) = watched(state, &instance.guid, node.index).iter().find(|w| w.over()) {
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
