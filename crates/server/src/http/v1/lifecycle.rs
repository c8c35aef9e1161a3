//! Instance lifecycle operations: `PATCH /v1/instances/{instance_id}/restart`,
//! `/recreate` and `/updates` → 202, the work done by a job. One operation at a
//! time per instance: another one queued or running → 409.

use api_types::v1;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::patch;
use axum::{Json, Router};
use store::{AuditOutcome, Instance, JobKind, Role};

use crate::auth::Caller;
use crate::error::{ApiError, Result};
use crate::http::extract::Path;
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/instances/{instance_id}/restart", patch(restart))
        .route("/v1/instances/{instance_id}/recreate", patch(recreate))
        .route("/v1/instances/{instance_id}/updates", patch(update))
}

async fn restart(State(state): State<AppState>, caller: Caller, Path(instance_id): Path<String>) -> Result<StatusCode> {
    let instance = state.authorized_instance(&caller, &instance_id, Role::Manage).await?;
    let result = queue(&state, &instance, JobKind::Restart).await;
    record(&state, &caller, &instance, "instance.restart", &result).await;
    result
}

async fn recreate(
    State(state): State<AppState>,
    caller: Caller,
    Path(instance_id): Path<String>,
) -> Result<StatusCode> {
    let instance = state.authorized_instance(&caller, &instance_id, Role::Manage).await?;
    let result = queue(&state, &instance, JobKind::Recreate).await;
    record(&state, &caller, &instance, "instance.recreate", &result).await;
    result
}

async fn update(
    State(state): State<AppState>,
    caller: Caller,
    Path(instance_id): Path<String>,
    body: std::result::Result<Json<v1::UpdateRequest>, axum::extract::rejection::JsonRejection>,
) -> Result<StatusCode> {
    let instance = state.authorized_instance(&caller, &instance_id, Role::Manage).await?;
    let result = async {
        let Json(request) = body?;
        let Some(service) = state.catalog.service(&request.service_id) else {
            return Err(ApiError::new(
                StatusCode::NOT_FOUND,
                "ServiceNotFound",
                format!("there is no service {:?} in the catalog", request.service_id),
            ));
        };
        if service.id != instance.service_id {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "ServiceMismatch",
                format!(
                    "service instance {} was created from service {}, not {}",
                    instance.guid, instance.service_id, service.id
                ),
            ));
        }
        if state.available_updates(&instance).is_empty() {
            return Err(ApiError::conflict(
                "NoUpdateAvailable",
                format!("service instance {} already runs {} {}", instance.guid, service.name, service.version),
            ));
        }
        queue(&state, &instance, JobKind::Update).await
    }
    .await;
    record(&state, &caller, &instance, "instance.update", &result).await;
    result
}

async fn queue(state: &AppState, instance: &Instance, kind: JobKind) -> Result<StatusCode> {
    Ok(state.queue_lifecycle(instance, kind).await.map(|_| StatusCode::ACCEPTED)?)
}

async fn record(state: &AppState, caller: &Caller, instance: &Instance, action: &str, result: &Result<StatusCode>) {
    let (outcome, detail) = match result {
        Ok(_) => (AuditOutcome::Success, "queued".to_owned()),
        Err(e) => (AuditOutcome::Failure, e.description.clone()),
    };
    state.audit(caller, action, Some(&instance.guid), outcome, Some(&detail)).await;
}
