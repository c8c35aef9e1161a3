//! Point-in-time recovery of archiving PostgreSQL instances: the window, and a
//! restore to a target time.

use api_types::v1;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use store::Role;

use crate::auth::Caller;
use crate::error::{ApiError, Result};
use crate::http::extract::Path;
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/instances/{instance_id}/pitr", get(window))
        .route("/v1/instances/{instance_id}/pitr/restore", post(restore))
}

async fn window(
    State(state): State<AppState>,
    caller: Caller,
    Path(instance_id): Path<String>,
) -> Result<Json<v1::PitrWindow>> {
    let instance = state.authorized_instance(&caller, &instance_id, Role::Read).await?;
    let window = state.pitr_window(&instance).await?;
    let (Some(start_time), Some(end_time)) = (window.start(), window.end()) else {
        return Err(ApiError::conflict(
            "NoRecoveryWindow",
            format!(
                "service instance {} has no point in time to restore to yet: its first base backup is taken with \
                 its next backup, and the window opens once the write-ahead log after it is archived",
                instance.guid
            ),
        ));
    };
    Ok(Json(v1::PitrWindow {
        start_time,
        end_time,
        gaps: window
            .gaps
            .iter()
            .map(|g| v1::PitrGap { start_time: g.start, end_time: g.end, reason: g.reason.clone() })
            .collect(),
        last_archived_at: window.last_archived_at,
        timeline: window.current_timeline(),
    }))
}

async fn restore(
    State(state): State<AppState>,
    caller: Caller,
    Path(instance_id): Path<String>,
    body: std::result::Result<Json<v1::PitrRestoreRequest>, axum::extract::rejection::JsonRejection>,
) -> Result<(StatusCode, Json<v1::PitrRestoreQueued>)> {
    let instance = state.authorized_instance(&caller, &instance_id, Role::Manage).await?;
    let Json(request) = body?;
    let restore = state.trigger_point_in_time_restore(&caller, &instance, &request.target_time).await?;
    Ok((StatusCode::ACCEPTED, Json(v1::PitrRestoreQueued { status: restore.status(), id: restore.seq })))
}
