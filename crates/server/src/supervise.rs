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
        for spec in state.node_specs(&instance).await? {
            if shutdown.is_cancelled() || state.store.running_job(instance.id).await?.is_some() {
                break;
            }
            if state.deployer.pid(&spec).await.is_some() {
                continue;
            }
            tracing::warn!(instance = %instance.guid, node = spec.index, "engine is not running; starting it again");
            if let Err(e) = state.deployer.start(&spec).await {
                tracing::error!(instance = %instance.guid, node = spec.index, error = format!("{e:#}"), "could not start the engine");
            }
        }
    }
    Ok(())
}
