//! Provisioning, plan change and deprovisioning jobs. All are safe to run again
//! after an interruption: existing nodes keep their ports and passwords.
//!
//! A plan change from a single node to a cluster is a provision that finds node 0
//! already there: node 0 gets the ports of the cluster's tools, becomes the
//! primary and is restarted with the cluster's configuration; the new nodes are
//! made from it as replicas, and every node gets the bindings' users.

use anyhow::Context;
use store::{InstanceState, Job, NewNode, NodeRole, StoreError};

use crate::instances::sealed_secret;
use crate::state::AppState;

pub async fn provision(state: &AppState, job: &Job) -> anyhow::Result<()> {
    run(state, job, false).await
}

pub async fn change_plan(state: &AppState, job: &Job) -> anyhow::Result<()> {
    run(state, job, true).await
}

async fn run(state: &AppState, job: &Job, plan_change: bool) -> anyhow::Result<()> {
    let instance = state.store.instance(job.instance_id).await?;
    let result = async {
        let engine = state.engine_of(&instance)?;
        let plan_nodes = state
            .catalog
            .service(&instance.service_id)
            .and_then(|s| s.plan(&instance.plan_id))
            .map(|p| p.nodes)
            .context("the instance's plan is no longer in the catalog")?;
        // Every node's row first: a cluster's nodes are each other's peers from their
        // first start, and share the admin password they log in to each other with.
        let mut nodes = state.store.nodes(instance.id).await?;
        let clustered = plan_nodes > 1;
        let wanted_ports = engine.ports().len() + if clustered { engine.cluster_ports().len() } else { 0 };
        // Every instance's ports, not only this one's: a node stopped by the
        // parachute, or not yet started again after svcdash restarted, listens on
        // nothing but needs its port back.
        let mut ports_used = state.store.node_ports().await?;
        // Nodes made for a single-node plan, now in a cluster: they lack the
        // cluster's ports (or, on an engine with none, a role), and restart once
        // they have them, as nodes of the cluster.
        let mut converted = Vec::new();
        for node in
            nodes.iter_mut().filter(|n| clustered && (n.extra_ports.len() + 1 < wanted_ports || n.role.is_none()))
        {
            let mut extra_ports = node.extra_ports.clone();
            extra_ports.extend(free_ports(wanted_ports - 1 - extra_ports.len(), &mut ports_used)?);
            let mut updated = state
                .store
                .upsert_node(NewNode {
                    instance_id: instance.id,
                    index: node.index,
                    port: node.port,
                    extra_ports,
                    admin_user: node.admin_user.clone(),
                    sealed_password: node.sealed_password.clone(),
                    role: None,
                })
                .await?;
            if node.index == 0 {
                let role = if engine.members_take_writes() { NodeRole::Member } else { NodeRole::Primary };
                state.store.set_node_role(updated.id, Some(role)).await?;
                updated.role = Some(role);
            }
            converted.push(node.index);
            *node = updated;
        }
        for index in 0..plan_nodes {
            if nodes.iter().any(|n| n.index == index) {
                continue;
            }
            let sealed_password = match nodes.first() {
                Some(first) if clustered => first.sealed_password.clone(),
                _ => sealed_secret(state, 32)?.1,
            };
            let wanted = engine.ports().len() + if clustered { engine.cluster_ports().len() } else { 0 };
            let ports = free_ports(wanted, &mut ports_used)?;
            let node = state
                .store
                .upsert_node(NewNode {
                    instance_id: instance.id,
                    index,
                    port: ports[0],
                    extra_ports: ports[1..].to_vec(),
                    admin_user: "svcdash_admin".into(),
                    sealed_password,
                    // The one moment svcdash decides roles: a new cluster starts with
                    // node 0 as its primary.
                    role: clustered.then_some(match index {
                        _ if engine.members_take_writes() => NodeRole::Member,
                        0 => NodeRole::Primary,
                        _ => NodeRole::Replica,
                    }),
                })
                .await?;
            nodes.push(node);
        }
        nodes.sort_by_key(|n| n.index);
        for node in &nodes {
            let index = node.index;
            let spec = state.node_spec(&instance, &engine, node, &nodes)?;
            if converted.contains(&index) {
                state.deployer.stop(&spec).await?;
            }
            state.deployer.provision(&spec).await?;
            if let Some(from) = instance.restore_from.filter(|_| index == 0 && !plan_change) {
                let origin = state.store.instance(from.instance_id).await?;
                super::restore::new_instance_at(state, &instance, &spec, &origin, from.target_time)
                    .await
                    .with_context(|| format!("restoring {} as of {}", origin.guid, from.target_time))?;
            }
        }
        if clustered {
            for node in &nodes {
                let spec = state.node_spec(&instance, &engine, node, &nodes)?;
                crate::cluster::wait_in_sync(state, &instance, &spec).await?;
                crate::cluster::sync_users(state, &instance, &spec).await?;
            }
            crate::cluster::observe_roles(state, &instance).await?;
        }
        anyhow::Ok(())
    }
    .await;
    match &result {
        Ok(()) => {
            state.store.set_instance_state(instance.id, InstanceState::Provisioned, None).await?;
            if let Some(from) = instance.restore_from.filter(|_| instance.continuous_archiving) {
                let what = format!("its start at {}", api_types::timestamp::format(&from.target_time));
                super::restore::backup_after(state, &state.store.instance(instance.id).await?, &what).await;
            }
        }
        Err(e) => state.store.set_instance_state(instance.id, InstanceState::Failed, Some(&format!("{e:#}"))).await?,
    }
    result
}

/// `count` different free ports, none of them in `used` (ports of nodes that may
/// not be listening now); they are added to it.
fn free_ports(count: usize, used: &mut Vec<u16>) -> anyhow::Result<Vec<u16>> {
    let mut ports = Vec::with_capacity(count);
    while ports.len() < count {
        let port = engines::free_port().context("finding a free port")?;
        if !ports.contains(&port) && !used.contains(&port) {
            ports.push(port);
            used.push(port);
        }
    }
    Ok(ports)
}

pub async fn deprovision(state: &AppState, job: &Job) -> anyhow::Result<()> {
    let instance = match state.store.instance(job.instance_id).await {
        Ok(instance) => instance,
        Err(StoreError::NotFound) => return Ok(()),
        Err(e) => return Err(e.into()),
    };
    let specs = state.node_specs(&instance).await?;
    state.deployer.destroy(&instance.local_name, &specs).await?;
    state.store.set_instance_state(instance.id, InstanceState::Deleted, None).await?;
    Ok(())
}
