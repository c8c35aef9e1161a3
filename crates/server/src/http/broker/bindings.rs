//! `PUT`/`DELETE /v2/service_instances/{instance_id}/service_bindings/{binding_id}`:
//! each binding is a user of its own in the engine.

use api_types::broker::{BindRequest, BindResponse, Credentials};
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::put;
use axum::{Json, Router};
use secrecy::ExposeSecret;
use store::{InstanceState, NewBinding, StoreError};

use super::{Failure, empty, internal};
use crate::http::extract::Path;
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new().route("/v2/service_instances/{instance_id}/service_bindings/{binding_id}", put(bind).delete(unbind))
}

fn to_credentials(c: engines::AppCredentials) -> Credentials {
    Credentials {
        host: c.host,
        port: c.port,
        username: c.username,
        password: c.password,
        database: c.database,
        uri: c.uri,
    }
}

/// A user name engines accept unquoted: lower-case letters and digits.
fn binding_username() -> String {
    format!("u{}", engines::generate_secret(15).to_ascii_lowercase())
}

async fn bind(
    State(state): State<AppState>,
    Path((instance_id, binding_id)): Path<(String, String)>,
    body: Bytes,
) -> Result<Response, Failure> {
    let req: BindRequest = serde_json::from_slice(&body)
        .map_err(|e| Failure(StatusCode::BAD_REQUEST, Some("BadRequest"), format!("invalid bind request: {e}")))?;
    let instance = match state.store.instance_by_guid(&instance_id).await {
        Ok(i) if i.state != InstanceState::Deleted => i,
        Ok(_) | Err(StoreError::NotFound) => {
            return Err(Failure(StatusCode::NOT_FOUND, None, format!("there is no service instance {instance_id:?}")));
        }
        Err(e) => return Err(internal(e)),
    };
    if req.service_id != instance.service_id || req.plan_id != instance.plan_id {
        return Err(Failure(
            StatusCode::BAD_REQUEST,
            Some("BadRequest"),
            "service_id or plan_id does not match the instance".into(),
        ));
    }
    if !matches!(instance.state, InstanceState::Provisioned | InstanceState::Available) {
        return Err(Failure(
            StatusCode::UNPROCESSABLE_ENTITY,
            Some("ConcurrencyError"),
            format!("the instance is {}; bind once it is provisioned", instance.state),
        ));
    }
    let specs = state.node_specs(&instance).await.map_err(internal)?;
    let spec = specs.first().ok_or_else(|| internal(anyhow::anyhow!("instance has no nodes")))?;

    if let Ok(existing) = state.store.binding(instance.id, &binding_id).await {
        let password = state.master.unseal(&existing.sealed_password).map_err(internal)?;
        let creds =
            state.deployer.create_user(spec, &existing.username, password.expose_secret()).await.map_err(internal)?;
        return Ok((StatusCode::OK, Json(BindResponse { credentials: to_credentials(creds) })).into_response());
    }
    let username = binding_username();
    let (password, sealed_password) = crate::instances::sealed_secret(&state, 32).map_err(internal)?;
    let creds = state.deployer.create_user(spec, &username, password.expose_secret()).await.map_err(internal)?;
    state
        .store
        .create_binding(NewBinding { instance_id: instance.id, guid: binding_id.clone(), username, sealed_password })
        .await
        .map_err(internal)?;
    super::audit(&state, "binding.create", &instance.guid, &format!("binding {binding_id}")).await;
    Ok((StatusCode::CREATED, Json(BindResponse { credentials: to_credentials(creds) })).into_response())
}

async fn unbind(
    State(state): State<AppState>,
    Path((instance_id, binding_id)): Path<(String, String)>,
) -> Result<Response, Failure> {
    let instance = match state.store.instance_by_guid(&instance_id).await {
        Ok(i) => i,
        Err(StoreError::NotFound) => return Ok(empty(StatusCode::GONE)),
        Err(e) => return Err(internal(e)),
    };
    let binding = match state.store.binding(instance.id, &binding_id).await {
        Ok(b) => b,
        Err(StoreError::NotFound) => return Ok(empty(StatusCode::GONE)),
        Err(e) => return Err(internal(e)),
    };
    if instance.state != InstanceState::Deleted {
        let specs = state.node_specs(&instance).await.map_err(internal)?;
        if let Some(spec) = specs.first() {
            state.deployer.delete_user(spec, &binding.username).await.map_err(internal)?;
        }
    }
    state.store.delete_binding(binding.id).await.map_err(internal)?;
    super::audit(&state, "binding.delete", &instance.guid, &format!("binding {binding_id}")).await;
    Ok(empty(StatusCode::OK))
}
