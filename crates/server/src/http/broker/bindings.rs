//! `PUT`/`GET`/`DELETE /v2/service_instances/{instance_id}/service_bindings/{binding_id}`:
//! each binding is a user of its own in the engine. `GET` hands out a binding's
//! credentials as they are now: after a plan change to a cluster, the sentinels a
//! binding made before it lacked.

use api_types::broker::{BindRequest, BindResponse, Credentials};
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::put;
use axum::{Json, Router};
use secrecy::ExposeSecret;
use store::{InstanceState, NewBinding, StoreError};

use super::input::{Path, Query, ensure_same_offering, required};
use super::{BrokerId, Failure, empty, internal};
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v2/service_instances/{instance_id}/service_bindings/{binding_id}", put(bind).get(fetch).delete(unbind))
}

fn to_credentials(c: engines::AppCredentials) -> Credentials {
    Credentials {
        host: c.host,
        port: c.port,
        username: c.username,
        password: c.password,
        database: c.database,
        uri: c.uri,
        extra: c.extra,
    }
}

/// The unbind query: the spec requires `service_id` and `plan_id`.
#[derive(serde::Deserialize)]
struct UnbindParams {
    #[serde(default)]
    service_id: Option<String>,
    #[serde(default)]
    plan_id: Option<String>,
}

/// A user name engines accept unquoted: lower-case letters and digits.
fn binding_username() -> String {
    format!("u{}", engines::generate_secret(15).to_ascii_lowercase())
}

async fn bind(
    State(state): State<AppState>,
    Path((instance_id, binding_id)): Path<(BrokerId, BrokerId)>,
    body: Bytes,
) -> Result<Response, Failure> {
    let req: BindRequest =
        serde_json::from_slice(&body).map_err(|e| Failure::bad_request(format!("invalid bind request: {e}")))?;
    let service_id = required("service_id", Some(&req.service_id))?;
    let plan_id = required("plan_id", Some(&req.plan_id))?;
    let instance = match state.store.instance_by_guid(instance_id.as_str()).await {
        Ok(i) if i.state != InstanceState::Deleted => i,
        Ok(_) | Err(StoreError::NotFound) => {
            return Err(Failure(
                StatusCode::NOT_FOUND,
                None,
                format!("there is no service instance {:?}", instance_id.as_str()),
            ));
        }
        Err(e) => return Err(internal(e)),
    };
    ensure_same_offering(&instance, Some(service_id), Some(plan_id))?;
    if !matches!(instance.state, InstanceState::Provisioned | InstanceState::Available) {
        return Err(Failure(
            StatusCode::UNPROCESSABLE_ENTITY,
            Some("ConcurrencyError"),
            format!("the instance is {}; bind once it is provisioned", instance.state),
        ));
    }
    if let Ok(existing) = state.store.binding(instance.id, binding_id.as_str()).await {
        let password = state.master.unseal(&existing.sealed_password).map_err(internal)?;
        let creds = crate::cluster::create_user(&state, &instance, &existing.username, password.expose_secret())
            .await
            .map_err(internal)?;
        return Ok((StatusCode::OK, Json(BindResponse { credentials: to_credentials(creds) })).into_response());
    }
    let username = binding_username();
    let (password, sealed_password) = crate::instances::sealed_secret(&state, 32).map_err(internal)?;
    let creds =
        crate::cluster::create_user(&state, &instance, &username, password.expose_secret()).await.map_err(internal)?;
    state
        .store
        .create_binding(NewBinding {
            instance_id: instance.id,
            guid: binding_id.as_str().to_owned(),
            username,
            sealed_password,
        })
        .await
        .map_err(internal)?;
    super::audit(&state, "binding.create", &instance.guid, &format!("binding {binding_id}")).await;
    Ok((StatusCode::CREATED, Json(BindResponse { credentials: to_credentials(creds) })).into_response())
}

/// The fetch query: `service_id` and `plan_id` are optional, and checked when given.
#[derive(serde::Deserialize)]
struct FetchParams {
    #[serde(default)]
    service_id: Option<String>,
    #[serde(default)]
    plan_id: Option<String>,
}

async fn fetch(
    State(state): State<AppState>,
    Path((instance_id, binding_id)): Path<(BrokerId, BrokerId)>,
    Query(params): Query<FetchParams>,
) -> Result<Response, Failure> {
    let not_found = |what: String| Failure(StatusCode::NOT_FOUND, None, what);
    let instance = match state.store.instance_by_guid(instance_id.as_str()).await {
        Ok(i) if i.state != InstanceState::Deleted => i,
        Ok(_) | Err(StoreError::NotFound) => {
            return Err(not_found(format!("there is no service instance {:?}", instance_id.as_str())));
        }
        Err(e) => return Err(internal(e)),
    };
    ensure_same_offering(&instance, params.service_id.as_deref(), params.plan_id.as_deref())?;
    let binding = match state.store.binding(instance.id, binding_id.as_str()).await {
        Ok(b) => b,
        Err(StoreError::NotFound) => {
            return Err(not_found(format!("there is no binding {:?} of this instance", binding_id.as_str())));
        }
        Err(e) => return Err(internal(e)),
    };
    let password = state.master.unseal(&binding.sealed_password).map_err(internal)?;
    let creds = crate::cluster::credentials(&state, &instance, &binding.username, password.expose_secret())
        .await
        .map_err(internal)?;
    super::audit(&state, "binding.read", &instance.guid, &format!("binding {binding_id}")).await;
    Ok((StatusCode::OK, Json(BindResponse { credentials: to_credentials(creds) })).into_response())
}

async fn unbind(
    State(state): State<AppState>,
    Path((instance_id, binding_id)): Path<(BrokerId, BrokerId)>,
    Query(params): Query<UnbindParams>,
) -> Result<Response, Failure> {
    let service_id = required("service_id", params.service_id.as_deref())?;
    let plan_id = required("plan_id", params.plan_id.as_deref())?;
    let instance = match state.store.instance_by_guid(instance_id.as_str()).await {
        Ok(i) => i,
        Err(StoreError::NotFound) => return Ok(empty(StatusCode::GONE)),
        Err(e) => return Err(internal(e)),
    };
    let binding = match state.store.binding(instance.id, binding_id.as_str()).await {
        Ok(b) => b,
        Err(StoreError::NotFound) => return Ok(empty(StatusCode::GONE)),
        Err(e) => return Err(internal(e)),
    };
    ensure_same_offering(&instance, Some(service_id), Some(plan_id))?;
    if instance.state != InstanceState::Deleted {
        crate::cluster::delete_user(&state, &instance, &binding.username).await.map_err(internal)?;
    }
    state.store.delete_binding(binding.id).await.map_err(internal)?;
    super::audit(&state, "binding.delete", &instance.guid, &format!("binding {binding_id}")).await;
    Ok(empty(StatusCode::OK))
}
