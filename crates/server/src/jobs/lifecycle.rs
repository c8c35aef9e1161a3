//! Lifecycle jobs on a running instance, node by node; the data always stays. A
//! cluster rolls: replicas first, then a switchover, then the old primary
//! ([`crate::cluster::rolling`]), so it keeps serving.
//! - restart: every engine process stops and starts again;
//! - recreate: each node's system and ephemeral parts are rebuilt from nothing,
//!   then its engine starts on the kept persistent data;
//! - update: a recreate onto the catalog's current version of the service, which
//!   the instance then runs.
//!
//! The instance is `deploying` meanwhile, then `available` (or `failed` with the
//! reason). A node the parachute stopped starts only once its disks are back under
//! their thresholds; a successful run releases the parachute.

use store::{InstanceState, Job};

use crate::metrics::parachute;
use crate::state::AppState;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Operation {
    Restart,
    Recreate,
    Update,
}

impl Operation {
    fn name(self) -> &'static str {
        match self {
            Self::Restart => "restart",
            Self::Recreate => "recreate",
            Self::Update => "update",
        }
    }
}

pub async fn restart(state: &AppState, job: &Job) -> anyhow::Result<()> {
    run(state, job, Operation::Restart).await
}

pub async fn recreate(state: &AppState, job: &Job) -> anyhow::Result<()> {
    run(state, job, Operation::Recreate).await
}

pub async fn update(state: &AppState, job: &Job) -> anyhow::Result<()> {
    run(state, job, Operation::Update).await
}

async fn run(state: &AppState, job: &Job, operation: Operation) -> anyhow::Result<()> {
    let instance = state.store.instance(job.instance_id).await?;
    anyhow::ensure!(instance.state != InstanceState::Deleted, "service instance {} is deleted", instance.guid);
    state.store.set_instance_state(instance.id, InstanceState::Deploying, None).await?;
    let result = async {
        let version =
            match operation {
                Operation::Update => {
                    Some(state.catalog.service(&instance.service_id).map(|s| s.version.clone()).ok_or_else(|| {
                        anyhow::anyhow!("service {} is no longer in the catalog", instance.service_id)
                    })?)
                }
                _ => None,
            };
        if let Some(why) = parachute::still_full(state, &instance).await? {
            anyhow::bail!("{why}; free space on it first");
        }
        let specs = state.node_specs(&instance).await?;
        anyhow::ensure!(!specs.is_empty(), "the instance has no nodes (was it ever provisioned?)");
        // Released before any engine starts, so the parachute never takes a
        // starting engine for one that should not run.
        parachute::release(state, &instance).await?;
        let step = match operation {
            Operation::Restart => crate::cluster::Step::Restart,
            Operation::Recreate | Operation::Update => crate::cluster::Step::Recreate,
        };
        crate::cluster::rolling(state, &instance, step).await?;
        if let Some(version) = version {
            state.store.set_instance_version(instance.id, &version).await?;
            tracing::info!(instance = %instance.guid, %version, "instance updated");
        }
        anyhow::Ok(())
    }
    .await;
    match &result {
        Ok(()) => state.store.set_instance_state(instance.id, InstanceState::Available, None).await?,
        Err(e) => {
            let reason = format!("{} failed: {e:#}", operation.name());
            state.store.set_instance_state(instance.id, InstanceState::Failed, Some(&reason)).await?
        }
    }
    result
}
