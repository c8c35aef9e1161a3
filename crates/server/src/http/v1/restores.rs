//! Restores of an instance: list, show and cancel.

use api_types::v1;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use store::{Restore, StoreError};

use crate::auth::Caller;
use crate::error::{ApiError, Result};
use crate::http::extract::{Path, parse_seq};
use crate::state::AppState;
use store::Role;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/instances/{instance_id}/restores", get(list_restores))
        .route("/v1/instances/{instance_id}/restores/{id}", get(show_restore))
        .route("/v1/instances/{instance_id}/restores/{id}/cancel", post(cancel_restore))
}

pub(super) fn to_v1(restore: &Restore) -> v1::Restore {
    v1::Restore {
        id: restore.seq,
        backup_id: restore.backup_seq,
        status: restore.status(),
        triggered_at: restore.created_at,
        finished_at: restore.updated_at(),
        target_time: restore.target_time,
        progress: crate::progress::of_restore(restore, chrono::Utc::now()),
    }
}

async fn list_restores(
    State(state): State<AppState>,
    caller: Caller,
    Path(instance_id): Path<String>,
) -> Result<Json<Vec<v1::Restore>>> {
    let instance = state.authorized_instance(&caller, &instance_id, Role::Read).await?;
    Ok(Json(state.store.restores(instance.id).await?.iter().map(to_v1).collect()))
}

async fn show_restore(
    State(state): State<AppState>,
    caller: Caller,
    Path((instance_id, id)): Path<(String, String)>,
) -> Result<Json<v1::Restore>> {
    let instance = state.authorized_instance(&caller, &instance_id, Role::Read).await?;
    Ok(Json(to_v1(&find_restore(&state, &instance, &id).await?)))
}

/// Stops a queued or running restore before it touches the instance's data.
async fn cancel_restore(
    State(state): State<AppState>,
    caller: Caller,
    Path((instance_id, id)): Path<(String, String)>,
) -> Result<(StatusCode, Json<v1::Cancelled>)> {
    let instance = state.authorized_instance(&caller, &instance_id, Role::Manage).await?;
    let restore = find_restore(&state, &instance, &id).await?;
    Ok((StatusCode::ACCEPTED, Json(state.cancel_restore(&caller, &instance, &restore).await?)))
}

async fn find_restore(state: &AppState, instance: &store::Instance, id: &str) -> Result<Restore> {
    let seq = parse_seq(id, "restore")?;
    match state.store.restore_by_seq(instance.id, seq).await {
        Ok(restore) => Ok(restore),
        Err(StoreError::NotFound) => {
            Err(ApiError::not_found(format!("service instance {} has no restore {seq}", instance.guid)))
        }
        Err(e) => Err(e.into()),
    }
}
