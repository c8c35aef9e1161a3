//! `PUT`/`DELETE /v2/service_instances/{instance_id}` and `last_operation`.

use api_types::TaskStatus;
use api_types::broker::{LastOperation, ProvisionRequest, ProvisionResponse};
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, put};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Map, Value};
use store::{Instance, InstanceState, JobKind, StoreError};

use super::input::{Path, Query, ensure_same_offering, optional, required};
use super::{BrokerId, Failure, empty, internal};
use crate::instances::Tenancy;
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v2/service_instances/{instance_id}", put(provision).delete(deprovision).patch(super::update::update))
        .route("/v2/service_instances/{instance_id}/last_operation", get(last_operation))
}

#[derive(Deserialize)]
pub(super) struct AsyncParams {
    #[serde(default)]
    pub(super) accepts_incomplete: Option<String>,
}

/// `DELETE /v2/service_instances/{instance_id}`'s query: the spec requires
/// `service_id` and `plan_id`.
#[derive(Deserialize)]
struct DeprovisionParams {
    #[serde(default)]
    accepts_incomplete: Option<String>,
    #[serde(default)]
    service_id: Option<String>,
    #[serde(default)]
    plan_id: Option<String>,
}

/// `last_operation`'s query: each optional, none blank.
#[derive(Deserialize)]
struct LastOperationParams {
    #[serde(default)]
    service_id: Option<String>,
    #[serde(default)]
    plan_id: Option<String>,
    #[serde(default)]
    operation: Option<String>,
}

pub(super) fn require_async(accepts_incomplete: Option<&str>) -> Result<(), Failure> {
    if accepts_incomplete == Some("true") {
        Ok(())
    } else {
        Err(Failure(
            StatusCode::UNPROCESSABLE_ENTITY,
            Some("AsyncRequired"),
            "this service plan requires client support for asynchronous service operations".into(),
        ))
    }
}

/// A non-blank string of the request's context.
fn string(map: Option<&Map<String, Value>>, key: &str) -> Option<String> {
    map?.get(key)?.as_str().filter(|v| !v.trim().is_empty()).map(str::to_owned)
}

/// The tenant and subtenant: the organisation and space of the request's context,
/// else its `organization_guid` and `space_guid` (which platforms set to the same,
/// and Kubernetes platforms to the cluster and namespace).
fn tenancy(req: &ProvisionRequest) -> Tenancy {
    let ctx = req.context.as_ref();
    let tenant_id =
        string(ctx, "organization_guid").or_else(|| req.organization_guid.clone()).unwrap_or_else(|| "default".into());
    let subtenant_id = string(ctx, "space_guid").or_else(|| req.space_guid.clone()).unwrap_or_else(|| "default".into());
    Tenancy {
        tenant_id,
        tenant_name: string(ctx, "organization_name"),
        subtenant_id,
        subtenant_name: string(ctx, "space_name").or_else(|| string(ctx, "namespace")),
    }
}

/// Checks what the spec requires of a provision request before anything is looked up.
fn check_provision(req: &ProvisionRequest) -> Result<(), Failure> {
    required("service_id", Some(&req.service_id))?;
    required("plan_id", Some(&req.plan_id))?;
    required("organization_guid", req.organization_guid.as_deref())?;
    required("space_guid", req.space_guid.as_deref())?;
    Ok(())
}

async fn provision(
    State(state): State<AppState>,
    Path(instance_id): Path<BrokerId>,
    Query(params): Query<AsyncParams>,
    body: Bytes,
) -> Result<Response, Failure> {
    require_async(params.accepts_incomplete.as_deref())?;
    let req: ProvisionRequest =
        serde_json::from_slice(&body).map_err(|e| Failure::bad_request(format!("invalid provision request: {e}")))?;
    check_provision(&req)?;
    let service = state
        .catalog
        .service(&req.service_id)
        .ok_or_else(|| Failure::bad_request(format!("unknown service_id {:?}", req.service_id)))?;
    let plan = service
        .plan(&req.plan_id)
        .ok_or_else(|| Failure::bad_request(format!("service {} has no plan {:?}", service.name, req.plan_id)))?;
    if let Some(asked) = &req.maintenance_info {
        super::update::check_maintenance_info(service, asked)?;
    }
    let asked = match req.parameters.as_ref().and_then(|p| p.get("continuous_archiving")) {
        None | Some(serde_json::Value::Null) => None,
        Some(serde_json::Value::Bool(b)) => Some(*b),
        Some(other) => {
            return Err(Failure::bad_request(format!(
                "parameter continuous_archiving must be true or false, not {other}"
            )));
        }
    };
    let continuous_archiving = state.continuous_archiving(service, plan, asked).map_err(Failure::bad_request)?;
    let tenants = tenancy(&req);
    let restore_from = match req.parameters.as_ref().and_then(|p| p.get("restore_from")) {
        None | Some(serde_json::Value::Null) => None,
        Some(asked) => Some(
            state.check_restore_from(asked, service, plan, &tenants.tenant_id).await.map_err(Failure::bad_request)?,
        ),
    };
    let instance_id = instance_id.as_str();
    let dashboard_url = state.dashboard_url(instance_id);

    match state.store.instance_by_guid(instance_id).await {
        Ok(existing) => {
            let same = existing.service_id == req.service_id
                && existing.plan_id == req.plan_id
                && existing.tenant_id == tenants.tenant_id
                && existing.subtenant_id == tenants.subtenant_id
                && existing.state != InstanceState::Deleted;
            if !same {
                return Ok(empty(StatusCode::CONFLICT));
            }
            let job = state.store.last_lifecycle_job(existing.id).await.map_err(internal)?;
            return Ok(match job {
                Some(job) if job.kind == JobKind::Provision && !job.status.is_finished() => (
                    StatusCode::ACCEPTED,
                    Json(ProvisionResponse { dashboard_url, operation: Some(operation_name(job.id)) }),
                )
                    .into_response(),
                _ => (StatusCode::OK, Json(ProvisionResponse { dashboard_url, operation: None })).into_response(),
            });
        }
        Err(StoreError::NotFound) => {}
        Err(e) => return Err(internal(e)),
    }

    let name = string(req.context.as_ref(), "instance_name").unwrap_or_else(|| instance_id.to_owned());
    let start = crate::instances::Start { continuous_archiving, restore_from };
    let created = state.create_instance(instance_id, &name, service, plan, tenants, start).await;
    let (_, job) = match created {
        Ok(created) => created,
        // Another instance holds the name: fall back to the id, which is unique.
        Err(StoreError::Conflict(_)) if name != instance_id => state
            .create_instance(instance_id, instance_id, service, plan, tenancy(&req), start)
            .await
            .map_err(internal)?,
        Err(StoreError::Conflict(_)) => return Ok(empty(StatusCode::CONFLICT)),
        Err(e) => return Err(internal(e)),
    };
    super::audit(&state, "instance.provision", instance_id, &format!("{} / {}", service.name, plan.name)).await;
    Ok((StatusCode::ACCEPTED, Json(ProvisionResponse { dashboard_url, operation: Some(operation_name(job.id)) }))
        .into_response())
}

pub(super) fn operation_name(job_id: i64) -> String {
    format!("job-{job_id}")
}

pub(super) async fn find(state: &AppState, instance_id: &str) -> Result<Option<Instance>, Failure> {
    match state.store.instance_by_guid(instance_id).await {
        Ok(instance) => Ok(Some(instance)),
        Err(StoreError::NotFound) => Ok(None),
        Err(e) => Err(internal(e)),
    }
}

async fn last_operation(
    State(state): State<AppState>,
    Path(instance_id): Path<BrokerId>,
    Query(params): Query<LastOperationParams>,
) -> Result<Response, Failure> {
    let service_id = optional("service_id", params.service_id.as_deref())?;
    let plan_id = optional("plan_id", params.plan_id.as_deref())?;
    optional("operation", params.operation.as_deref())?;
    let Some(instance) = find(&state, instance_id.as_str()).await? else {
        return Ok(empty(StatusCode::GONE));
    };
    ensure_same_offering(&instance, service_id, plan_id)?;
    let job = state.store.last_lifecycle_job(instance.id).await.map_err(internal)?;
    let Some(job) = job else {
        return Ok(empty(StatusCode::GONE));
    };
    if job.kind == JobKind::Deprovision && job.status == TaskStatus::Done {
        return Ok(empty(StatusCode::GONE));
    }
    let (op_state, description) = match job.status {
        TaskStatus::Queued | TaskStatus::Running => ("in progress", None),
        TaskStatus::Done => ("succeeded", None),
        TaskStatus::Failed | TaskStatus::Deleted => ("failed", job.error.clone()),
    };
    Ok(Json(LastOperation { state: op_state.into(), description }).into_response())
}

async fn deprovision(
    State(state): State<AppState>,
    Path(instance_id): Path<BrokerId>,
    Query(params): Query<DeprovisionParams>,
) -> Result<Response, Failure> {
    require_async(params.accepts_incomplete.as_deref())?;
    let service_id = required("service_id", params.service_id.as_deref())?;
    let plan_id = required("plan_id", params.plan_id.as_deref())?;
    let Some(instance) = find(&state, instance_id.as_str()).await?.filter(|i| i.state != InstanceState::Deleted) else {
        return Ok(empty(StatusCode::GONE));
    };
    ensure_same_offering(&instance, Some(service_id), Some(plan_id))?;
    let job = match state.store.last_lifecycle_job(instance.id).await.map_err(internal)? {
        Some(job) if job.kind == JobKind::Deprovision && !job.status.is_finished() => job,
        _ => {
            let job = state.delete_instance(&instance).await.map_err(internal)?;
            super::audit(&state, "instance.deprovision", &instance.guid, "processes and data removed; backups kept")
                .await;
            job
        }
    };
    Ok((StatusCode::ACCEPTED, Json(serde_json::json!({ "operation": operation_name(job.id) }))).into_response())
}
