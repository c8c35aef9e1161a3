//! An instance's backup settings (`/v1/instances/{instance_id}/backups-config`),
//! the personal encryption key among them: write-only, sealed under the master
//! key, never returned or logged.

use api_types::v1;
use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use secrecy::{ExposeSecret, SecretString};
use store::{AuditOutcome, Role};

use crate::auth::Caller;
use crate::error::{ApiError, Result};
use crate::http::extract::Path;
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new().route("/v1/instances/{instance_id}/backups-config", get(show).patch(update))
}

async fn show(
    State(state): State<AppState>,
    caller: Caller,
    Path(instance_id): Path<String>,
) -> Result<Json<v1::BackupsConfig>> {
    let instance = state.authorized_instance(&caller, &instance_id, Role::Read).await?;
    let settings = state.store.backup_settings(instance.id, state.config.backups.default_settings()).await?;
    Ok(Json(v1::BackupsConfig {
        min_backup_count: settings.min_backup_count,
        retention_time: settings.retention_time_days,
        min_encryption_key_length: state.config.backups.min_encryption_key_length as i64,
        exclude_from_auto_backup: settings.exclude_from_auto_backup,
    }))
}

#[derive(serde::Serialize)]
struct Updated {
    message: &'static str,
}

async fn update(
    State(state): State<AppState>,
    caller: Caller,
    Path(instance_id): Path<String>,
    body: std::result::Result<Json<v1::BackupsConfigUpdate>, axum::extract::rejection::JsonRejection>,
) -> Result<Json<Updated>> {
    let instance = state.authorized_instance(&caller, &instance_id, Role::Manage).await?;
    let Json(mut patch) = body?;
    // Out of the request at once: from here on the key is a secret.
    let key = patch.encryption_key.take().map(SecretString::from);
    let min_len = state.config.backups.min_encryption_key_length;
    let mut problems = Vec::new();
    if patch.min_backup_count.is_some_and(|n| n < 0) {
        problems.push("min_backup_count must be 0 or more".to_owned());
    }
    if patch.retention_time.is_some_and(|n| n < 0) {
        problems.push("retention_time (days) must be 0 or more".to_owned());
    }
    if key.as_ref().is_some_and(|k| k.expose_secret().chars().count() < min_len) {
        problems.push(format!("encryption_key must have at least {min_len} characters"));
    }
    if !problems.is_empty() {
        let description = format!("nothing was changed: {}", problems.join("; "));
        state
            .audit(&caller, "backups-config.update", Some(&instance.guid), AuditOutcome::Failure, Some(&description))
            .await;
        return Err(ApiError::new(axum::http::StatusCode::BAD_REQUEST, "InvalidBackupsConfig", description));
    }

    let old = state.store.backup_settings(instance.id, state.config.backups.default_settings()).await?;
    let mut new = old;
    new.min_backup_count = patch.min_backup_count.unwrap_or(old.min_backup_count);
    new.retention_time_days = patch.retention_time.unwrap_or(old.retention_time_days);
    new.exclude_from_auto_backup = patch.exclude_from_auto_backup.unwrap_or(old.exclude_from_auto_backup);
    let sealed = match &key {
        Some(key) => Some(state.master.seal(key.expose_secret())?),
        None => None,
    };
    state.store.update_backup_settings(instance.id, new, sealed.as_deref()).await?;

    let mut changes = Vec::new();
    if new.min_backup_count != old.min_backup_count {
        changes.push(format!("min_backup_count {} -> {}", old.min_backup_count, new.min_backup_count));
    }
    if new.retention_time_days != old.retention_time_days {
        changes.push(format!("retention_time {} -> {} days", old.retention_time_days, new.retention_time_days));
    }
    if new.exclude_from_auto_backup != old.exclude_from_auto_backup {
        changes.push(format!("exclude_from_auto_backup {}", new.exclude_from_auto_backup));
    }
    if key.is_some() {
        changes.push("personal encryption key set".to_owned());
    }
    let detail = if changes.is_empty() { "no change".to_owned() } else { changes.join(", ") };
    state.audit(&caller, "backups-config.update", Some(&instance.guid), AuditOutcome::Success, Some(&detail)).await;
    Ok(Json(Updated { message: "instance updated" }))
}
