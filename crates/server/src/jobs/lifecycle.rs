//! Lifecycle jobs on a running instance. A restart stops every process of the
//! instance and starts it again; the data stays. The instance is `deploying`
//! meanwhile, then `available` (or `failed` with the reason).

use store::{InstanceState, Job};

use crate::state::AppState;

pub async fn restart(state: &AppState, job: &Job) -> anyhow::Result<()> {
    let instance = state.store.instance(job.instance_id).await?;
    state.store.set_instance_state(instance.id, InstanceState::Deploying, None).await?;
    let result = async {
        let specs = state.node_specs(&instance).await?;
        anyhow::ensure!(!specs.is_empty(), "the instance has no nodes (was it ever provisioned?)");
        for spec in specs {
            state.deployer.stop(&spec).await?;
            state.deployer.start(&spec).await?;
        }
        anyhow::Ok(())
    }
    .await;
    match &result {
        Ok(()) => state.store.set_instance_state(instance.id, InstanceState::Available, None).await?,
        Err(e) => {
            let reason = format!("restart failed: {e:#}");
            state.store.set_instance_state(instance.id, InstanceState::Failed, Some(&reason)).await?
        }
    }
    result
}
