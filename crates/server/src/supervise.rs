//! Keeps engines running: an engine process that exited without being asked to
//! (a crash, an OOM kill) is started again. Instances with a running job are left
//! alone, since a restore stops its engine on purpose.

use std::time::Duration;

use store::InstanceState;
use tokio_util::sync::CancellationToken;

use crate::state::AppState;

pub async fn run(state: AppState, every: Duration, shutdown: CancellationToken) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        if let Err(e) = check(&state, &shutdown).await {
            tracing::warn!(error = format!("{e:#}"), "could not check the engines");
        }
    }
}

async fn check(state: &AppState, shutdown: &CancellationToken) -> anyhow::Result<()> {
    for instance in state.store.list_instances().await? {
        if !matches!(instance.state, InstanceState::Provisioned | InstanceState::Available) {
            continue;
        }
        if shutdown.is_cancelled() {
            return Ok(());
        }
        // Credentials are unsealed only for a node that has to be started.
        let engine = state.engine_of(&instance)?;
        for node in state.store.nodes(instance.id).await? {
            if node.parachute.is_some()
                || state.deployer.is_running(&instance.local_name, node.index).await
                || state.store.running_job(instance.id).await?.is_some()
            {
                continue;
            }
            tracing::warn!(instance = %instance.guid, node = node.index, "engine is not running; starting it again");
            let started = match state.node_spec(&instance, &engine, &node) {
                Ok(spec) => state.deployer.start(&spec).await,
                Err(e) => Err(e),
            };
            if let Err(e) = started {
                tracing::error!(instance = %instance.guid, node = node.index, error = format!("{e:#}"), "could not start the engine");
            }
        }
    }
    Ok(())
}
