//! Keeps engines running: an engine process that exited without being asked to
//! (a crash, an OOM kill) is started again. Instances with a running job are left
//! alone, since a restore stops its engine on purpose. It also keeps the roles of
//! cluster nodes up to date, and gives a restarted cluster node the users it missed.
//! A node whose data a restore to a point in time left behind (it did not copy the
//! restored node before the restore ended) copies the primary instead of starting.
//!
//! A cluster whose primary died is left to its failover tool first: the dead node
//! is started again once another node has become the primary (it then rejoins as a
//! replica), or after [`FAILOVER_GRACE`] when none has. Starting it at once would
//! race the failover, and svcdash does not decide roles.
//!
//! Likewise a dead member of a peer cluster (Galera, RabbitMQ) is started again
//! only once the live members no longer count it (or after the grace): Galera
//! evicts a silent member after some seconds, and a new incarnation that joins
//! before that is refused over and over, while the cluster, counting both, can
//! lose its quorum.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use store::InstanceState;
use tokio_util::sync::CancellationToken;

use crate::state::AppState;

/// How long a cluster without a primary is left to elect one before its dead nodes
/// are started again anyway.
const FAILOVER_GRACE: Duration = Duration::from_secs(60);

/// When each dead node of a cluster without a primary was first seen dead, by
/// instance id and node index.
type DownSince = HashMap<(i64, i64), Instant>;

pub async fn run(state: AppState, every: Duration, shutdown: CancellationToken) {
    let mut down_since = DownSince::new();
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        if let Err(e) = check(&state, &shutdown, &mut down_since).await {
            tracing::warn!(error = format!("{e:#}"), "could not check the engines");
        }
    }
}

async fn check(state: &AppState, shutdown: &CancellationToken, down_since: &mut DownSince) -> anyhow::Result<()> {
    for instance in state.store.list_instances().await? {
        if !matches!(instance.state, InstanceState::Provisioned | InstanceState::Available) {
            continue;
        }
        if shutdown.is_cancelled() {
            return Ok(());
        }
        // Credentials are unsealed only for a node that has to be started.
        let engine = state.engine_of(&instance)?;
        // A cluster's roles first: a node started again follows the primary seen now.
        let mut nodes = state.store.nodes(instance.id).await?;
        if nodes.len() > 1 && state.store.running_job(instance.id).await?.is_none() {
            nodes = crate::cluster::observe_roles(state, &instance).await?;
        }
        let has_primary =
            nodes.iter().any(|n| matches!(n.role, Some(store::NodeRole::Primary | store::NodeRole::Member)));
        let mut dead_still_counted = None;
        for node in &nodes {
            let key = (instance.id, node.index);
            if node.parachute.is_some()
                || state.deployer.is_running(&instance.local_name, node.index).await
                || state.store.running_job(instance.id).await?.is_some()
            {
                down_since.remove(&key);
                continue;
            }
            if nodes.len() > 1 {
                let since = *down_since.entry(key).or_insert_with(Instant::now);
                if since.elapsed() < FAILOVER_GRACE {
                    if !has_primary {
                        tracing::info!(instance = %instance.guid, node = node.index, "cluster has no primary; waiting for its failover before starting the node again");
                        continue;
                    }
                    if *match &mut dead_still_counted {
                        Some(counted) => counted,
                        None => dead_still_counted.insert(dead_still_counted_by_peers(state, &instance).await?),
                    } {
                        tracing::info!(instance = %instance.guid, node = node.index, "the cluster still counts the node; waiting for its peers to let it go before starting it again");
                        continue;
                    }
                }
            }
            down_since.remove(&key);
            if !node.copy_pending {
                tracing::warn!(instance = %instance.guid, node = node.index, "engine is not running; starting it again");
            }
            let started = match state.node_spec(&instance, &engine, node, &nodes) {
                Ok(spec) => crate::cluster::start_or_copy(state, &instance, &spec).await,
                Err(e) => Err(e),
            };
            let started = match started {
                Ok(()) => {
                    crate::cluster::sync_users(state, &instance, &state.node_spec(&instance, &engine, node, &nodes)?)
                        .await
                }
                Err(e) => Err(e),
            };
            if let Err(e) = started {
                tracing::error!(instance = %instance.guid, node = node.index, error = format!("{e:#}"), "could not start the engine");
            }
        }
    }
    Ok(())
}

/// Whether a live node of the instance counts more members than are running: its
/// peers have not yet evicted a dead one. Engines without a member count say no.
async fn dead_still_counted_by_peers(state: &AppState, instance: &store::Instance) -> anyhow::Result<bool> {
    let mut live = Vec::new();
    for spec in state.node_specs(instance).await? {
        if state.deployer.is_running(&instance.local_name, spec.index).await {
            live.push(spec);
        }
    }
    for spec in &live {
        let asked = tokio::time::timeout(Duration::from_secs(3), state.deployer.replication(spec)).await;
        if let Ok(Ok(Some(engines::Replication { members: Some(members), .. }))) = asked
            && members > live.len() as u64
        {
            return Ok(true);
        }
    }
    Ok(false)
}
