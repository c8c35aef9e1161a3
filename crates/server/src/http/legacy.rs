//! The deprecated dashboard API (`/service-instances/{instance_id}/backups...`),
//! kept field for field for clients written against it. Its ids are internal ids,
//! its errors `{"msg": "..."}`.

use api_types::legacy;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use store::{Instance, Job};

use crate::auth::Caller;
use crate::error::Result;
use crate::http::extract::Path;
use crate::http::ui;
use crate::state::AppState;
use store::Role;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/service-instances/{instance_id}/backups", get(backups_page_or_list).post(create_backup))
        .route("/service-instances/{instance_id}/backups/restore", post(restore_backup))
        .route("/service-instances/{instance_id}/backups/{backup_id}/download", post(download_backup))
}

fn message(status: StatusCode, msg: impl Into<String>) -> Response {
    (status, Json(legacy::Message { msg: msg.into() })).into_response()
}

fn task(job: &Job, task_id: i64) -> legacy::AgentTask {
    legacy::AgentTask {
        id: job.id,
        task_id,
        status: job.status,
        created_at: job.created_at,
        updated_at: job.updated_at,
    }
}

/// Browsers get the Backups page here; API clients the deprecated JSON.
async fn backups_page_or_list(
    State(state): State<AppState>,
    Path(instance_id): Path<String>,
    request: axum::extract::Request,
) -> Response {
    use axum::extract::FromRequestParts;
    let (mut parts, _) = request.into_parts();
    if ui::wants_html(&parts.headers) {
        return match ui::PageCaller::from_request_parts(&mut parts, &state).await {
            Ok(ui::PageCaller(caller)) => ui::backups_page(&state, &caller, &instance_id).await.into_response(),
            Err(redirect) => redirect,
        };
    }
    match Caller::from_request_parts(&mut parts, &state).await {
        Ok(caller) => list_backups_and_restores(state, caller, instance_id).await.into_response(),
        Err(e) => e.into_response(),
    }
}

async fn list_backups_and_restores(
    state: AppState,
    caller: Caller,
    instance_id: String,
) -> Result<Json<legacy::BackupsAndRestores>> {
    let store::BackupListing { instance, backups, .. } = state.authorized_backup_listing(&caller, &instance_id).await?;
    let restores = state.store.restores(instance.id).await?;
    Ok(Json(legacy::BackupsAndRestores {
        id: instance.id,
        instance_id: instance.guid.clone(),
        backups: backups
            .iter()
            .map(|b| {
                let mut agent_task = task(&b.job, b.id);
                agent_task.status = b.status();
                legacy::Backup { id: b.id, instance_id: instance.id, backup_agent_task: agent_task }
            })
            .collect(),
        restores: restores
            .iter()
            .map(|r| legacy::Restore {
                id: r.id,
                instance_id: instance.id,
                backup_agent_tasks: r.jobs.iter().map(|j| task(j, r.id)).collect(),
            })
            .collect(),
    }))
}

async fn create_backup(
    State(state): State<AppState>,
    caller: Caller,
    Path(instance_id): Path<String>,
) -> Result<(StatusCode, Json<legacy::BackupCreated>)> {
    let instance = state.authorized_instance(&caller, &instance_id, Role::Manage).await?;
    let backup = state.trigger_backup(&caller, &instance).await?;
    Ok((StatusCode::CREATED, Json(legacy::BackupCreated { id: backup.id, message: "job to backup is queued".into() })))
}

/// The ids of a restore request. The reference's own example sends them form-encoded
/// under a JSON content type, so both encodings are read whatever the header says.
fn restore_ids(body: &[u8]) -> Option<(i64, i64)> {
    fn number(v: &serde_json::Value) -> Option<i64> {
        v.as_i64().or_else(|| v.as_str()?.trim().parse().ok())
    }
    if let Ok(serde_json::Value::Object(map)) = serde_json::from_slice::<serde_json::Value>(body) {
        return Some((number(map.get("instance_id")?)?, number(map.get("backup_id")?)?));
    }
    let (mut instance_id, mut backup_id) = (None, None);
    for (key, value) in url::form_urlencoded::parse(body) {
        match key.as_ref() {
            "instance_id" => instance_id = value.trim().parse().ok(),
            "backup_id" => backup_id = value.trim().parse().ok(),
            _ => {}
        }
    }
    Some((instance_id?, backup_id?))
}

async fn restore_backup(
    State(state): State<AppState>,
    caller: Caller,
    Path(instance_id): Path<String>,
    body: Bytes,
) -> Result<Response> {
    let instance = state.authorized_instance(&caller, &instance_id, Role::Manage).await?;
    let Some((body_instance, backup_id)) = restore_ids(&body) else {
        return Ok(message(
            StatusCode::BAD_REQUEST,
            "the body must hold instance_id and backup_id as integers (JSON or form-encoded)",
        ));
    };
    if body_instance != instance.id {
        return Ok(message(
            StatusCode::PRECONDITION_FAILED,
            format!(
                "instance_id {body_instance} does not match service instance {} (internal id {})",
                instance.guid, instance.id
            ),
        ));
    }
    let backup = match state.store.backup(backup_id).await {
        Ok(b) if b.instance_id == instance.id => b,
        Ok(_) | Err(store::StoreError::NotFound) => {
            return Ok(message(
                StatusCode::PRECONDITION_FAILED,
                format!("backup {backup_id} does not exist for service instance {}", instance.guid),
            ));
        }
        Err(e) => return Err(e.into()),
    };
    match state.trigger_restore(&caller, &instance, &backup).await {
        Ok(restore) => Ok(Json(legacy::RestoreCreated { restore_id: restore.id }).into_response()),
        // The deprecated API says 412 where the dashboard API says 409.
        Err(e @ crate::domain_error::DomainError::Conflict { .. }) => {
            Ok(message(StatusCode::PRECONDITION_FAILED, e.description()))
        }
        Err(e) => Err(e.into()),
    }
}

async fn download_backup(
    State(state): State<AppState>,
    caller: Caller,
    Path((instance_id, backup_id)): Path<(String, String)>,
    headers: axum::http::HeaderMap,
) -> Result<Response> {
    let instance: Instance = state.authorized_instance(&caller, &instance_id, Role::Manage).await?;
    let found = match backup_id.parse::<i64>() {
        Ok(id) => state.store.backup(id).await.ok().filter(|b| b.instance_id == instance.id),
        Err(_) => None,
    };
    Ok(match found {
        None => message(
            StatusCode::PRECONDITION_FAILED,
            format!("backup {backup_id:?} does not exist for service instance {}", instance.guid),
        ),
        Some(backup) => {
            crate::http::download::download(&state, &caller, &instance, &backup, &headers, |reason| {
                message(StatusCode::PRECONDITION_FAILED, reason)
            })
            .await
        }
    })
}
