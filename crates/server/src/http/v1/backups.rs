//! Backups of an instance: list, show, trigger, download, restore.

use api_types::v1;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use store::{Backup, Instance, ListingRead, StoreError};

use crate::auth::Caller;
use crate::error::{ApiError, Result};
use crate::http::extract::{Path, parse_seq};
use crate::listing_cache::Listing;
use crate::state::AppState;
use store::Role;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/instances/{instance_id}/backups", get(list_backups).post(create_backup))
        .route("/v1/instances/{instance_id}/backups/{id}", get(show_backup).delete(delete_backup))
        .route("/v1/instances/{instance_id}/backups/{id}/download", get(download_backup))
        .route("/v1/instances/{instance_id}/backups/{id}/restore", post(restore_backup))
        .route("/v1/instances/{instance_id}/backups/{id}/cancel", post(cancel_backup))
}

/// The backup as API V1 shows it; `personal_key` is the instance's current one.
pub fn to_v1(backup: &Backup, personal_key: Option<&store::InstanceKey>) -> v1::Backup {
    v1::Backup {
        id: backup.seq,
        size: backup.size.unwrap_or(0),
        status: backup.status(),
        triggered_at: backup.job.created_at,
        finished_at: backup.deleted_at.unwrap_or(backup.job.updated_at),
        downloadable: crate::backups::not_downloadable_reason(backup, personal_key).is_none(),
        progress: crate::progress::of_job(&backup.job, chrono::Utc::now()),
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

/// Served from the listing kept for the instance while it is current (see
/// [`crate::listing_cache`]); access is checked on every request.
async fn list_backups(
    State(state): State<AppState>,
    caller: Caller,
    Path(instance_id): Path<String>,
) -> Result<Response> {
    let kept = state.listings.get(&instance_id);
    let known = kept.as_ref().map(|k| k.version);
    let body = match (state.authorized_backup_listing_unless(&caller, &instance_id, known).await?, kept) {
        (ListingRead::Unchanged(_), Some(kept)) => kept.body,
        (ListingRead::Changed(listing), _) => {
            let key = listing.personal_key.as_ref();
            let backups: Vec<v1::Backup> = listing.backups.iter().map(|b| to_v1(b, key)).collect();
            let body = Bytes::from(serde_json::to_vec(&backups).map_err(ApiError::internal)?);
            if backups.iter().all(|b| b.progress.is_none()) {
                state.listings.keep(&instance_id, Listing { version: listing.version, body: body.clone() });
            }
            body
        }
        (ListingRead::Unchanged(_), None) => {
            return Err(ApiError::internal(anyhow::anyhow!("the store found a listing unchanged that was not kept")));
        }
    };
    Ok(([(header::CONTENT_TYPE, "application/json")], body).into_response())
}

async fn show_backup(
    State(state): State<AppState>,
    caller: Caller,
    Path((instance_id, id)): Path<(String, String)>,
) -> Result<Json<v1::Backup>> {
    let instance = state.authorized_instance(&caller, &instance_id, Role::Read).await?;
    let key = state.personal_key(&instance).await?;
    Ok(Json(to_v1(&find_backup(&state, &instance, &id).await?, key.as_ref())))
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
    headers: axum::http::HeaderMap,
) -> Result<Response> {
    let instance = state.authorized_instance(&caller, &instance_id, Role::Manage).await?;
    let backup = find_backup(&state, &instance, &id).await?;
    Ok(crate::http::download::download(&state, &caller, &instance, &backup, &headers, |reason| {
        let body = serde_json::json!({ "message": reason, "status": 412 });
        (StatusCode::PRECONDITION_FAILED, Json(body)).into_response()
    })
    .await)
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

/// Stops a queued or running backup; it is listed failed, "cancelled by" the caller.
async fn cancel_backup(
    State(state): State<AppState>,
    caller: Caller,
    Path((instance_id, id)): Path<(String, String)>,
) -> Result<(StatusCode, Json<v1::Cancelled>)> {
    let instance = state.authorized_instance(&caller, &instance_id, Role::Manage).await?;
    let backup = find_backup(&state, &instance, &id).await?;
    Ok((StatusCode::ACCEPTED, Json(state.cancel_backup(&caller, &instance, &backup).await?)))
}

/// Removes one backup's object; its metadata stays, with status `deleted`.
async fn delete_backup(
    State(state): State<AppState>,
    caller: Caller,
    Path((instance_id, id)): Path<(String, String)>,
) -> Result<Json<v1::Backup>> {
    let instance = state.authorized_instance(&caller, &instance_id, Role::Manage).await?;
    let backup = find_backup(&state, &instance, &id).await?;
    let result = crate::retention::delete_one(&state, &backup).await;
    let (outcome, detail) = match &result {
        Ok(()) => (store::AuditOutcome::Success, format!("backup {} deleted", backup.seq)),
        Err(e) => (store::AuditOutcome::Failure, format!("backup {}: {}", backup.seq, e.description)),
    };
    state.audit(&caller, "backup.delete", Some(&instance.guid), outcome, Some(&detail)).await;
    result?;
    let key = state.personal_key(&instance).await?;
    Ok(Json(to_v1(&state.store.backup(backup.id).await?, key.as_ref())))
}
