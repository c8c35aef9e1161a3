//! `PATCH /v2/service_instances/{instance_id}`: a plan change, as an asynchronous
//! operation the platform follows with `last_operation`. From a single node to a
//! cluster of the same engine, the instance keeps its node (and its data, users
//! and address) as node 0 and gains replicas made from it. A request that changes
//! nothing answers 200; a change svcdash cannot make answers 422 and changes
//! nothing.

use api_types::broker::UpdateRequest;
use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use store::{InstanceState, StoreError};

use super::input::{Path, Query, required};
use super::instances::{AsyncParams, find, operation_name, require_async};
use super::{BrokerId, Failure, internal};
use crate::state::AppState;

pub(super) async fn update(
    State(state): State<AppState>,
    Path(instance_id): Path<BrokerId>,
    Query(params): Query<AsyncParams>,
    body: Bytes,
) -> Result<Response, Failure> {
    require_async(params.accepts_incomplete.as_deref())?;
    let req: UpdateRequest =
        serde_json::from_slice(&body).map_err(|e| Failure::bad_request(format!("invalid update request: {e}")))?;
    let service_id = required("service_id", Some(&req.service_id))?;
    let Some(instance) = find(&state, instance_id.as_str()).await?.filter(|i| i.state != InstanceState::Deleted) else {
        return Err(Failure(
            StatusCode::NOT_FOUND,
            None,
            format!("there is no service instance {:?}", instance_id.as_str()),
        ));
    };
    if service_id != instance.service_id {
        return Err(Failure::bad_request(format!(
            "service_id {service_id:?} is not the instance's service; a service cannot be changed"
        )));
    }
    let service = state.catalog.service(&instance.service_id).ok_or_else(|| {
        internal(anyhow::anyhow!("service {} of instance {} is not in the catalog", instance.service_id, instance.guid))
    })?;
    let plan_id = match req.plan_id.as_deref() {
        None => None,
        Some(plan) => Some(required("plan_id", Some(plan))?).filter(|p| *p != instance.plan_id),
    };
    let Some(plan_id) = plan_id else {
        return upgrade(&state, &instance, service, req.maintenance_info.as_ref()).await;
    };
    let plan = service
        .plan(plan_id)
        .ok_or_else(|| Failure::bad_request(format!("unknown plan_id {plan_id:?} for service {}", service.name)))?;
    let current = service.plan(&instance.plan_id).map_or(1, |p| p.nodes);
    if plan.nodes < current {
        return Err(Failure(
            StatusCode::UNPROCESSABLE_ENTITY,
            Some("PlanChangeNotSupported"),
            format!(
                "plan {} has fewer nodes than the instance runs ({current}); svcdash does not remove nodes from an \
                 instance. Create an instance of plan {} and restore a backup into it instead",
                plan.name, plan.name
            ),
        ));
    }
    let unsupported = |why: String| Err(Failure(StatusCode::UNPROCESSABLE_ENTITY, Some("PlanChangeNotSupported"), why));
    // A single node becomes a cluster of either kind (its keeper is made with the
    // new plan's setting); a running cluster keeps the kind it was made with.
    if current > 1 && service.plan(&instance.plan_id).is_some_and(|p| p.synchronous != plan.synchronous) {
        return unsupported(format!(
            "plan {} replicates {}synchronously and the instance's plan does not; svcdash does not change that on \
             a running cluster yet. Create an instance of plan {} and restore a backup into it instead",
            plan.name,
            if plan.synchronous { "" } else { "a" },
            plan.name
        ));
    }
    if plan.nodes == current {
        // Plans of a service differ in their nodes and their archiving default only;
        // the default applies when an instance is made.
        return Ok(nothing_to_do());
    }
    if !matches!(instance.state, InstanceState::Provisioned | InstanceState::Available) {
        return Err(Failure(
            StatusCode::UNPROCESSABLE_ENTITY,
            Some("ConcurrencyError"),
            format!("the instance is {}; change its plan once it is provisioned", instance.state),
        ));
    }
    let job = match state.store.enqueue_plan_change(instance.id, plan_id).await {
        Ok(job) => job,
        Err(StoreError::Conflict(busy)) => {
            return Err(Failure(StatusCode::UNPROCESSABLE_ENTITY, Some("ConcurrencyError"), busy));
        }
        Err(e) => return Err(internal(e)),
    };
    state.jobs.notify_one();
    super::audit(&state, "instance.update", &instance.guid, &format!("plan changed to {}", plan.name)).await;
    Ok((StatusCode::ACCEPTED, Json(serde_json::json!({ "operation": operation_name(job.id) }))).into_response())
}

/// The platform's upgrade (`maintenance_info`): to the catalog's release, as the
/// Updates page's update; nothing when the instance runs it already.
async fn upgrade(
    state: &AppState,
    instance: &store::Instance,
    service: &crate::catalog::Service,
    asked: Option<&api_types::broker::MaintenanceInfo>,
) -> Result<Response, Failure> {
    let Some(asked) = asked else { return Ok(nothing_to_do()) };
    check_maintenance_info(service, asked)?;
    if state.available_updates(instance).is_empty() {
        return Ok(nothing_to_do());
    }
    let job = match state.queue_lifecycle(instance, store::JobKind::Update).await {
        Ok(job) => job,
        Err(crate::domain_error::DomainError::Conflict { description, .. }) => {
            return Err(Failure(StatusCode::UNPROCESSABLE_ENTITY, Some("ConcurrencyError"), description));
        }
        Err(e) => return Err(internal(e)),
    };
    super::audit(state, "instance.upgrade", &instance.guid, &format!("to release {}", service.version)).await;
    Ok((StatusCode::ACCEPTED, Json(serde_json::json!({ "operation": operation_name(job.id) }))).into_response())
}

/// A platform's `maintenance_info` must name the catalog's release: it fetched an
/// older catalog otherwise.
pub(super) fn check_maintenance_info(
    service: &crate::catalog::Service,
    asked: &api_types::broker::MaintenanceInfo,
) -> Result<(), Failure> {
    let offered = service.maintenance_info();
    if offered.as_ref().map(|m| &m.version) == Some(&asked.version) {
        return Ok(());
    }
    Err(Failure(
        StatusCode::UNPROCESSABLE_ENTITY,
        Some("MaintenanceInfoConflict"),
        format!(
            "maintenance_info version {:?} is not the catalog's ({}); fetch the catalog again",
            asked.version,
            offered.map_or_else(|| "none".to_owned(), |m| m.version)
        ),
    ))
}

fn nothing_to_do() -> Response {
    (StatusCode::OK, Json(serde_json::json!({}))).into_response()
}
