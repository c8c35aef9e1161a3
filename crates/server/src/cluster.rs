//! Instances of several nodes. svcdash observes which node is the primary (the
//! engine or its failover tool decides) and records what it saw; jobs and bindings
//! then pick their node from that: users go where the engine needs them, backups
//! come from a healthy replica, restores go where the engine's cluster kind says.

use std::time::Duration;

use anyhow::Context;
use engines::{AppCredentials, ClusterKind, NodeSpec, Role};
use store::{Instance, Node, NodeRole};

use crate::state::AppState;

/// How long a node may take to say its role before it counts as not answering.
const ROLE_TIMEOUT: Duration = Duration::from_secs(3);

pub fn engine_role(role: NodeRole) -> Role {
    match role {
        NodeRole::Primary => Role::Primary,
        NodeRole::Replica => Role::Replica,
        NodeRole::Member => Role::Member,
    }
}

fn stored_role(role: Role) -> NodeRole {
    match role {
        Role::Primary => NodeRole::Primary,
        Role::Replica => NodeRole::Replica,
        Role::Member => NodeRole::Member,
    }
}

/// A node's last seen role as the engine names it ("master" for Redis), or
/// "unknown" for a cluster node that did not answer; `None` for a single node.
fn role_label(engine: &engines::EngineRef, nodes: usize, role: Option<NodeRole>) -> Option<&'static str> {
    match (nodes, role) {
        (0 | 1, _) => None,
        (_, Some(role)) => Some(engine.role_name(engine_role(role))),
        (_, None) => Some("unknown"),
    }
}

/// A cluster's nodes as stored, each with its last seen role as the engine names it
/// ("unknown" while it does not answer); none for a single node. What the pages,
/// the API and the CLI show.
pub async fn labelled_nodes(state: &AppState, instance: &Instance) -> anyhow::Result<Vec<(Node, &'static str)>> {
    let nodes = state.store.nodes(instance.id).await?;
    if nodes.len() < 2 {
        return Ok(Vec::new());
    }
    let engine = state.engine_of(instance)?;
    let count = nodes.len();
    Ok(nodes
        .into_iter()
        .map(|n| {
            let label = role_label(&engine, count, n.role).unwrap_or("unknown");
            (n, label)
        })
        .collect())
}

/// Asks every node of a cluster instance its role and records the answers (no
/// role for a node that does not run or answer). Single nodes have no role.
pub async fn observe_roles(state: &AppState, instance: &Instance) -> anyhow::Result<Vec<Node>> {
    let nodes = state.store.nodes(instance.id).await?;
    if nodes.len() < 2 {
        return Ok(nodes);
    }
    let specs = state.node_specs(instance).await?;
    let mut seen = Vec::with_capacity(nodes.len());
    for (node, spec) in nodes.into_iter().zip(&specs) {
        let role = match tokio::time::timeout(ROLE_TIMEOUT, state.deployer.role(spec)).await {
            Ok(Ok(role)) => Some(stored_role(role)),
            Ok(Err(e)) => {
                tracing::debug!(instance = %instance.guid, node = node.index, error = format!("{e:#}"), "node did not say its role");
                None
            }
            Err(_) => None,
        };
        if role != node.role {
            tracing::info!(
                instance = %instance.guid,
                node = node.index,
                was = node.role.map(NodeRole::as_str).unwrap_or("unknown"),
                now = role.map(NodeRole::as_str).unwrap_or("unknown"),
                "node role changed"
            );
            // Only changes are written: roles are asked at every engine check.
            state.store.set_node_role(node.id, role).await?;
            seen.push(Node { role, role_since: Some(chrono::Utc::now()), ..node });
            continue;
        }
        seen.push(node);
    }
    Ok(seen)
}

/// The instance's nodes with their roles as seen now.
async fn observed_specs(state: &AppState, instance: &Instance) -> anyhow::Result<Vec<NodeSpec>> {
    let engine = state.engine_of(instance)?;
    let nodes = observe_roles(state, instance).await?;
    nodes.iter().map(|n| state.node_spec(instance, &engine, n, &nodes)).collect()
}

/// The node taking writes now: a single node, or the cluster's primary.
pub async fn primary(state: &AppState, instance: &Instance) -> anyhow::Result<NodeSpec> {
    let specs = observed_specs(state, instance).await?;
    pick_primary(&instance.guid, specs)
}

/// The primary, or in a cluster whose every node takes writes, the first member
/// (the one svcdash's own writes go to).
fn pick_primary(guid: &str, specs: Vec<NodeSpec>) -> anyhow::Result<NodeSpec> {
    if specs.len() == 1 {
        return specs.into_iter().next().context("no node");
    }
    let members = specs.iter().any(|s| s.role == Some(Role::Member));
    let wanted = if members { Role::Member } else { Role::Primary };
    specs
        .into_iter()
        .find(|s| s.role == Some(wanted))
        .with_context(|| format!("no node of instance {guid} answers as its primary now (a failover may be under way)"))
}

/// Where a backup is taken: a replica (or a member other than the first) that
/// answers, so the clients of the node taking svcdash's writes do not share it
/// with the backup; else that node.
pub async fn backup_source(state: &AppState, instance: &Instance) -> anyhow::Result<NodeSpec> {
    let specs = observed_specs(state, instance).await?;
    let primary = pick_primary(&instance.guid, specs.clone())?;
    if let Some(other) =
        specs.iter().find(|s| s.index != primary.index && matches!(s.role, Some(Role::Replica | Role::Member)))
    {
        return Ok(other.clone());
    }
    Ok(primary)
}

/// The nodes a restore runs on, in order: the primary alone for engines whose
/// replicas follow it, else every node, the primary first (replicas that load the
/// same data next find it there when they reconnect).
pub async fn restore_nodes(state: &AppState, instance: &Instance) -> anyhow::Result<Vec<i64>> {
    let specs = observed_specs(state, instance).await?;
    if specs.len() < 2 {
        return Ok(specs.iter().map(|s| s.index).collect());
    }
    let engine = state.engine_of(instance)?;
    let primary = pick_primary(&instance.guid, specs.clone())?.index;
    Ok(match engine.cluster_kind() {
        Some(ClusterKind::MultiNode) => {
            std::iter::once(primary).chain(specs.iter().map(|s| s.index).filter(|i| *i != primary)).collect()
        }
        Some(ClusterKind::MasterOnly) | None => vec![primary],
    })
}

/// What a lifecycle job does to each node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Stop and start the node's processes.
    Restart,
    /// Rebuild everything of the node but its data, and start it.
    Recreate,
}

impl Step {
    /// A node whose data a restore left behind copies the primary instead.
    async fn run(self, state: &AppState, instance: &Instance, spec: &NodeSpec) -> anyhow::Result<()> {
        if copy_if_pending(state, instance, spec).await? {
            return Ok(());
        }
        match self {
            Self::Restart => {
                state.deployer.stop(spec).await?;
                state.deployer.start(spec).await
            }
            Self::Recreate => state.deployer.recreate(spec).await,
        }
    }
}

/// Has a node marked `copy_pending` (its data lies on a history the cluster left,
/// after a restore to a point in time) copy the primary, as a new replica does, and
/// clears the mark; says whether it did. Such a node never starts on its own data.
pub async fn copy_if_pending(state: &AppState, instance: &Instance, spec: &NodeSpec) -> anyhow::Result<bool> {
    let nodes = state.store.nodes(instance.id).await?;
    let Some(node) = nodes.iter().find(|n| n.index == spec.index && n.copy_pending) else {
        return Ok(false);
    };
    tracing::warn!(instance = %instance.guid, node = spec.index, "node's data lies on a history the cluster left; it copies the primary");
    state.deployer.rebuild(spec).await?;
    state.store.set_node_copy_pending(node.id, false).await?;
    Ok(true)
}

/// Starts a node again, or has it copy the primary if it is marked `copy_pending`.
pub async fn start_or_copy(state: &AppState, instance: &Instance, spec: &NodeSpec) -> anyhow::Result<()> {
    match copy_if_pending(state, instance, spec).await? {
        true => Ok(()),
        false => state.deployer.start(spec).await,
    }
}

/// How long a node may take to follow its primary again after a lifecycle step.
const IN_SYNC_TIMEOUT: Duration = Duration::from_secs(120);

/// Runs `step` on every node so that the instance keeps serving: a cluster's
/// replicas first, each back in step with the primary before the next; then the
/// primary's role goes to a replica (a switchover, done by the cluster's own
/// failover tool) and the old primary goes last, returning as a replica. A single
/// node just gets the step.
pub async fn rolling(state: &AppState, instance: &Instance, step: Step) -> anyhow::Result<()> {
    let specs = observed_specs(state, instance).await?;
    if specs.len() < 2 {
        for spec in &specs {
            step.run(state, instance, spec).await?;
        }
        return Ok(());
    }
    if specs[0].engine.members_take_writes() {
        // No primary to hand over: one member at a time, each back in step before
        // the next.
        for spec in &specs {
            step.run(state, instance, spec).await?;
            wait_in_sync(state, instance, spec).await?;
        }
        observe_roles(state, instance).await?;
        return Ok(());
    }
    let Ok(primary) = pick_primary(&instance.guid, specs.clone()) else {
        // Nothing serves writes to keep serving (nodes down, a recreate to repair
        // them): every node gets the step, in order.
        tracing::warn!(instance = %instance.guid, "no node is the primary; the cluster does not roll");
        for spec in &specs {
            step.run(state, instance, spec).await?;
        }
        return Ok(());
    };
    for replica in specs.iter().filter(|s| s.index != primary.index) {
        step.run(state, instance, replica).await?;
        wait_in_sync(state, instance, replica).await?;
    }
    tracing::info!(instance = %instance.guid, node = primary.index, "handing the primary role to a replica");
    let started = std::time::Instant::now();
    state.deployer.switchover(&primary).await?;
    // The old primary restarts following whichever node it sees as the primary:
    // wait until every node agrees on the new one.
    let specs = loop {
        let specs = observed_specs(state, instance).await?;
        let primaries: Vec<i64> = specs.iter().filter(|s| s.role == Some(Role::Primary)).map(|s| s.index).collect();
        if primaries.len() == 1 && primaries[0] != primary.index {
            break specs;
        }
        anyhow::ensure!(
            started.elapsed() < IN_SYNC_TIMEOUT,
            "after the switchover, the nodes did not agree on a new primary within {} s",
            IN_SYNC_TIMEOUT.as_secs()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    tracing::info!(instance = %instance.guid, seconds = started.elapsed().as_secs_f64(), "switchover done");
    let old = specs.iter().find(|s| s.index == primary.index).context("the old primary is gone")?;
    step.run(state, instance, old).await?;
    wait_in_sync(state, instance, old).await?;
    observe_roles(state, instance).await?;
    Ok(())
}

/// How often a node that stops while it joins its cluster is started again.
const JOIN_RESTARTS: u32 = 3;

/// Waits until the node follows its primary (a primary at once). A node whose
/// processes stop meanwhile is started again, a few times: a failover tool may
/// give up on a start-up hiccup (pg_autoctl stops when one of its services exits
/// too often in a second), and the supervisor leaves nodes alone while a job runs.
pub async fn wait_in_sync(state: &AppState, instance: &Instance, spec: &NodeSpec) -> anyhow::Result<()> {
    let started = std::time::Instant::now();
    let mut restarts = 0;
    loop {
        if restarts < JOIN_RESTARTS && !state.deployer.is_running(&instance.local_name, spec.index).await {
            let parachute =
                state.store.nodes(instance.id).await?.iter().any(|n| n.index == spec.index && n.parachute.is_some());
            anyhow::ensure!(!parachute, "node {} was stopped by the parachute", spec.index);
            restarts += 1;
            tracing::warn!(instance = %instance.guid, node = spec.index, "node stopped before it followed its primary; starting it again");
            state.deployer.start(spec).await.with_context(|| format!("starting node {} again", spec.index))?;
        }
        match state.deployer.in_sync(spec).await {
            Ok(true) => return Ok(()),
            Ok(false) | Err(_) if started.elapsed() < IN_SYNC_TIMEOUT => {
                tokio::time::sleep(Duration::from_millis(200)).await
            }
            Ok(false) => anyhow::bail!(
                "node {} of {} did not follow its primary again within {} s",
                spec.index,
                instance.guid,
                IN_SYNC_TIMEOUT.as_secs()
            ),
            Err(e) => return Err(e.context(format!("node {} did not answer after its restart", spec.index))),
        }
    }
}

/// Makes (or resets) a binding's user where the engine needs it, and returns the
/// credentials for the primary. On an engine that does not replicate its users,
/// the user is made on every node that runs; a node that does not gets it when it
/// is started again ([`sync_users`]).
pub async fn create_user(
    state: &AppState,
    instance: &Instance,
    username: &str,
    password: &str,
) -> anyhow::Result<AppCredentials> {
    let specs = observed_specs(state, instance).await?;
    let primary = pick_primary(&instance.guid, specs.clone())?;
    if specs.len() > 1 && !primary.engine.users_replicate() {
        for spec in specs.iter().filter(|s| s.index != primary.index) {
            if !state.deployer.is_running(&instance.local_name, spec.index).await {
                tracing::warn!(instance = %instance.guid, node = spec.index, "node does not run; it gets the user when it starts");
                continue;
            }
            state.deployer.create_user(spec, username, password).await?;
        }
    }
    state.deployer.create_user(&primary, username, password).await
}

/// A binding's credentials as they are now, without touching any engine: the
/// addresses of the node last seen taking writes (node 0 of a cluster never seen),
/// and, for a cluster, what lets clients follow a failover.
pub async fn credentials(
    state: &AppState,
    instance: &Instance,
    username: &str,
    password: &str,
) -> anyhow::Result<AppCredentials> {
    let specs = state.node_specs(instance).await?;
    let spec = specs
        .iter()
        .find(|s| matches!(s.role, Some(Role::Primary | Role::Member)))
        .or(specs.first())
        .with_context(|| format!("instance {} has no nodes", instance.guid))?;
    spec.engine.credentials(spec, username, password)
}

/// Removes a binding's user from every node that has it; fails while a node does
/// not answer, so a revoked user cannot outlive the binding on a node that was down.
pub async fn delete_user(state: &AppState, instance: &Instance, username: &str) -> anyhow::Result<()> {
    let specs = observed_specs(state, instance).await?;
    if specs.len() > 1 && !specs[0].engine.users_replicate() {
        for spec in &specs {
            state.deployer.delete_user(spec, username).await?;
        }
        return Ok(());
    }
    state.deployer.delete_user(&pick_primary(&instance.guid, specs)?, username).await
}

/// Gives a node that was just started every binding's user, on engines that do not
/// replicate users: it may have missed some while it was down.
pub async fn sync_users(state: &AppState, instance: &Instance, spec: &NodeSpec) -> anyhow::Result<()> {
    if !spec.is_clustered() || spec.engine.users_replicate() {
        return Ok(());
    }
    for binding in state.store.bindings(instance.id).await? {
        let password = state.master.unseal(&binding.sealed_password)?;
        state.deployer.create_user(spec, &binding.username, secrecy::ExposeSecret::expose_secret(&password)).await?;
    }
    Ok(())
}
