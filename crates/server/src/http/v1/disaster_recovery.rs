//! Disaster recovery: `prepare` hands out the id an instance's backups are filed
//! under (and may set its personal key); `perform`, on another instance of the
//! same service, restores the origin's newest backup made with that key. The
//! origin may be gone: its backups and keys outlive it.

use api_types::v1;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use axum::{Json, Router};
use secrecy::{ExposeSecret, SecretString};
use store::{AuditOutcome, KeyKind, Role, StoreError};

use crate::auth::Caller;
use crate::error::{ApiError, Result};
use crate::http::extract::Path;
use crate::state::AppState;

type Body<T> = std::result::Result<Json<T>, axum::extract::rejection::JsonRejection>;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/instances/{instance_id}/disaster-recovery/prepare", post(prepare))
        .route("/v1/instances/{instance_id}/disaster-recovery/perform", post(perform))
}

async fn prepare(
    State(state): State<AppState>,
    caller: Caller,
    Path(instance_id): Path<String>,
    // The body is optional: without one (no Content-Type), nothing is set.
    body: std::result::Result<Option<Json<v1::DisasterRecoveryPrepare>>, axum::extract::rejection::JsonRejection>,
) -> Result<Json<v1::DisasterRecoveryPrepared>> {
    let instance = state.authorized_instance(&caller, &instance_id, Role::Manage).await?;
    let request = body?.map(|Json(r)| r).unwrap_or_default();
    if let Some(key) = request.encryption_key.map(SecretString::from) {
        let min = state.config.backups.min_encryption_key_length;
        if key.expose_secret().chars().count() < min {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "InvalidBackupsConfig",
                format!("encryption_key must have at least {min} characters; nothing was changed"),
            ));
        }
        let settings = state.store.backup_settings(instance.id, state.config.backups.default_settings()).await?;
        let sealed = state.master.seal(key.expose_secret())?;
        state.store.update_backup_settings(instance.id, settings, Some(&sealed)).await?;
    }
    state.audit(&caller, "disaster-recovery.prepare", Some(&instance.guid), AuditOutcome::Success, None).await;
    Ok(Json(v1::DisasterRecoveryPrepared { backup_guid: instance.backup_guid }))
}

async fn perform(
    State(state): State<AppState>,
    caller: Caller,
    Path(instance_id): Path<String>,
    body: Body<v1::DisasterRecoveryPerform>,
) -> Result<Json<v1::DisasterRecoveryPerformed>> {
    let destination = state.authorized_instance(&caller, &instance_id, Role::Manage).await?;
    let Json(request) = body?;
    let key = SecretString::from(request.encryption_key);
    let result = find_and_restore(&state, &caller, &destination, &request.backup_guid, &key).await;
    let detail = match &result {
        Ok(restore) => format!("restore {} from backups {}", restore.restore_id, request.backup_guid),
        Err(e) => format!("from backups {}: {}", request.backup_guid, e.description),
    };
    let outcome = if result.is_ok() { AuditOutcome::Success } else { AuditOutcome::Failure };
    state.audit(&caller, "disaster-recovery.perform", Some(&destination.guid), outcome, Some(&detail)).await;
    result.map(Json)
}

async fn find_and_restore(
    state: &AppState,
    caller: &Caller,
    destination: &store::Instance,
    backup_guid: &str,
    key: &SecretString,
) -> Result<v1::DisasterRecoveryPerformed> {
    let origin = match state.store.instance_by_backup_guid(backup_guid).await {
        Ok(origin) => origin,
        Err(StoreError::NotFound) => {
            return Err(ApiError::not_found(format!("there are no backups filed under {backup_guid:?}")));
        }
        Err(e) => return Err(e.into()),
    };
    if origin.service_id != destination.service_id {
        return Err(ApiError::conflict(
            "ServiceMismatch",
            format!(
                "the backups under {backup_guid} are of another service ({}) than this instance's ({}); \
                 restore them into an instance of the same service",
                origin.service_id, destination.service_id
            ),
        ));
    }
    // The newest done backup made with this personal key.
    let mut opened: Vec<(i64, bool)> = Vec::new();
    let mut chosen = None;
    for backup in state.store.backups(origin.id).await? {
        if backup.status() != api_types::TaskStatus::Done || backup.sha256.is_none() {
            continue;
        }
        let matches = match opened.iter().find(|(id, _)| *id == backup.key_id) {
            Some((_, matches)) => *matches,
            None => {
                let stored = state.store.key(backup.key_id).await?;
                let matches = stored.kind == KeyKind::Personal
                    && crate::auth::session::constant_time_eq(
                        state.master.unseal(&stored.sealed_key)?.expose_secret().as_bytes(),
                        key.expose_secret().as_bytes(),
                    );
                opened.push((backup.key_id, matches));
                matches
            }
        };
        if matches {
            chosen = Some(backup);
            break;
        }
    }
    let Some(backup) = chosen else {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "NoBackupForKey",
            format!(
                "no finished backup under {backup_guid} was encrypted with this encryption key; check the key \
                 (backups made before a personal key was set cannot be used for disaster recovery)"
            ),
        ));
    };
    let restore = state.trigger_restore(caller, destination, &backup).await?;
    Ok(v1::DisasterRecoveryPerformed { restore_id: restore.seq })
}
