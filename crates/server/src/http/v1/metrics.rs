//! `GET /v1/instances/{instance_id}/metrics?quantity=N`: the kept collections of
//! every node of the instance as Graphite lines, the newest `quantity` per node
//! (all kept ones without it).

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use store::Role;

use crate::auth::Caller;
use crate::error::{ApiError, Result};
use crate::http::extract::{Path, Query};
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new().route("/v1/instances/{instance_id}/metrics", get(metrics))
}

#[derive(serde::Deserialize)]
struct MetricsQuery {
    quantity: Option<String>,
}

async fn metrics(
    State(state): State<AppState>,
    caller: Caller,
    Path(instance_id): Path<String>,
    Query(query): Query<MetricsQuery>,
) -> Result<Json<Vec<String>>> {
    let instance = state.authorized_instance(&caller, &instance_id, Role::Read).await?;
    let quantity = match query.quantity.as_deref() {
        None => None,
        Some(text) => Some(text.parse::<usize>().ok().filter(|q| *q >= 1).ok_or_else(|| {
            ApiError::new(
                axum::http::StatusCode::BAD_REQUEST,
                "InvalidQuantity",
                format!("quantity must be a whole number of at least 1, not {text:?}"),
            )
        })?),
    };
    Ok(Json(state.metrics.history.lines(&instance.guid, quantity)))
}
