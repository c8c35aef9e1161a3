//! Instance lifecycle operations (`PATCH /v1/instances/{instance_id}/restart`).
//! One operation at a time per instance: another one queued or running → 409.

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::patch;
use store::{AuditOutcome, InstanceState, JobKind, Role, StoreError};

use crate::auth::Caller;
use crate::error::{ApiError, Result};
use crate::http::extract::Path;
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new().route("/v1/instances/{instance_id}/restart", patch(restart))
}

async fn restart(State(state): State<AppState>, caller: Caller, Path(instance_id): Path<String>) -> Result<StatusCode> {
    let instance = state.authorized_instance(&caller, &instance_id, Role::Manage).await?;
    let result = match instance.state {
        InstanceState::Provisioned | InstanceState::Available | InstanceState::Failed => {
            match state.store.enqueue_lifecycle(instance.id, JobKind::Restart).await {
                Ok(_) => {
                    state.jobs.notify_one();
                    Ok(StatusCode::ACCEPTED)
                }
                Err(StoreError::Conflict(what)) => Err(ApiError::conflict(
                    "OperationInProgress",
                    format!("the instance cannot restart now: {what}; try again when it has finished"),
                )),
                Err(e) => Err(e.into()),
            }
        }
        other => Err(ApiError::conflict(
            "InstanceNotReady",
            format!("service instance {} is {other}; only a provisioned instance can restart", instance.guid),
        )),
    };
    let (outcome, detail) = match &result {
        Ok(_) => (AuditOutcome::Success, "restart queued".to_owned()),
        Err(e) => (AuditOutcome::Failure, e.description.clone()),
    };
    state.audit(&caller, "instance.restart", Some(&instance.guid), outcome, Some(&detail)).await;
    result
}
