//! Provisioning and deprovisioning jobs. Both are safe to run again after an
//! interruption: existing nodes keep their ports and passwords.

use anyhow::Context;
use store::{InstanceState, Job, NewNode, StoreError};

use crate::instances::sealed_secret;
use crate::state::AppState;

pub async fn provision(state: &AppState, job: &Job) -> anyhow::Result<()> {
    let instance = state.store.instance(job.instance_id).await?;
    let result = async {
        let engine = state.engine_of(&instance)?;
        let plan_nodes = state
            .catalog
            .service(&instance.service_id)
            .and_then(|s| s.plan(&instance.plan_id))
            .map(|p| p.nodes)
            .context("the instance's plan is no longer in the catalog")?;
        let existing = state.store.nodes(instance.id).await?;
        for index in 0..plan_nodes {
            let node = match existing.iter().find(|n| n.index == index) {
                Some(node) => node.clone(),
                None => {
                    let (_, sealed_password) = sealed_secret(state, 32)?;
                    let ports = free_ports(engine.ports().len())?;
                    state
                        .store
                        .upsert_node(NewNode {
                            instance_id: instance.id,
                            index,
                            port: ports[0],
                            extra_ports: ports[1..].to_vec(),
                            admin_user: "svcdash_admin".into(),
                            sealed_password,
                        })
                        .await?
                }
            };
            let spec = state.node_spec(&instance, &engine, &node)?;
            state.deployer.provision(&spec).await?;
            if let Some(from) = instance.restore_from.filter(|_| index == 0) {
                let origin = state.store.instance(from.instance_id).await?;
                super::restore::new_instance_at(state, &instance, &spec, &origin, from.target_time)
                    .await
                    .with_context(|| format!("restoring {} as of {}", origin.guid, from.target_time))?;
            }
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

/// `count` different free ports.
fn free_ports(count: usize) -> anyhow::Result<Vec<u16>> {
    let mut ports = Vec::with_capacity(count);
    while ports.len() < count {
        let port = engines::free_port().context("finding a free port")?;
        if !ports.contains(&port) {
            ports.push(port);
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
