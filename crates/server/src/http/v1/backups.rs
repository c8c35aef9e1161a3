//! Backups of an instance: list, show, trigger, download, restore.

use api_types::v1;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use store::{Backup, Instance, StoreError};

use crate::auth::Caller;
use crate::error::{ApiError, Result};
use crate::http::extract::{Path, parse_seq};
use crate::state::AppState;
use store::Role;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/instances/{instance_id}/backups", get(list_backups).post(create_backup))
        .route("/v1/instances/{instance_id}/backups/{id}", get(show_backup))
        .route("/v1/instances/{instance_id}/backups/{id}/download", get(download_backup))
        .route("/v1/instances/{instance_id}/backups/{id}/restore", post(restore_backup))
}

pub fn to_v1(backup: &Backup) -> v1::Backup {
    v1::Backup {
        id: backup.seq,
        size: backup.size.unwrap_or(0),
        status: backup.status(),
        triggered_at: backup.job.created_at,
        finished_at: backup.deleted_at.unwrap_or(backup.job.updated_at),
        // Only backups made with a personal encryption key can be downloaded.
        downloadable: false,
    }
}

async fn find_backup(state: &AppState, instance: &Instance, id: &str) -> Result<Backup> {
    let seq = parse_seq(id, "backup")?;
    match state.store.backup_by_seq(instance.id, seq).await {
        Ok(backup) => Ok(backup),
        Err(StoreError::NotFound) => {
            Err(ApiError::not_found(format!("service instance {} has no backup {seq}", instance.guid)))
        }
        Err(e) => Err(e.into()),
    }
}

async fn list_backups(
    State(state): State<AppState>,
    caller: Caller,
    Path(instance_id): Path<String>,
) -> Result<Json<Vec<v1::Backup>>> {
    let instance = state.authorized_instance(&caller, &instance_id, Role::Read).await?;
    let backups = state.store.backups(instance.id).await?;
    Ok(Json(backups.iter().map(to_v1).collect()))
}

async fn show_backup(
    State(state): State<AppState>,
    caller: Caller,
    Path((instance_id, id)): Path<(String, String)>,
) -> Result<Json<v1::Backup>> {
    let instance = state.authorized_instance(&caller, &instance_id, Role::Read).await?;
    Ok(Json(to_v1(&find_backup(&state, &instance, &id).await?)))
}

async fn create_backup(
    State(state): State<AppState>,
    caller: Caller,
    Path(instance_id): Path<String>,
) -> Result<Json<v1::BackupCreated>> {
    let instance = state.authorized_instance(&caller, &instance_id, Role::Manage).await?;
    let backup = state.trigger_backup(&caller, &instance).await?;
    Ok(Json(v1::BackupCreated { id: backup.seq, message: "job to backup is queued".into() }))
}

async fn download_backup(
    State(state): State<AppState>,
    caller: Caller,
    Path((instance_id, id)): Path<(String, String)>,
) -> Result<Response> {
    let instance = state.authorized_instance(&caller, &instance_id, Role::Manage).await?;
    let backup = find_backup(&state, &instance, &id).await?;
    let body = serde_json::json!({
        "message": crate::backups::not_downloadable_reason(backup.seq),
        "status": 412,
    });
    Ok((StatusCode::PRECONDITION_FAILED, Json(body)).into_response())
}

async fn restore_backup(
    State(state): State<AppState>,
    caller: Caller,
    Path((instance_id, id)): Path<(String, String)>,
) -> Result<Json<v1::RestoreCreated>> {
    let instance = state.authorized_instance(&caller, &instance_id, Role::Manage).await?;
    let backup = find_backup(&state, &instance, &id).await?;
    let restore = state.trigger_restore(&caller, &instance, &backup).await?;
    Ok(Json(v1::RestoreCreated { id: restore.seq }))
}
