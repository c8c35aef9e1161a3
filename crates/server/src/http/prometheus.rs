//! `GET /metrics`: svcdash's own figures for Prometheus, for the bearer token the
//! operator configured (`[metrics] prometheus_token`); off without one.

use axum::Router;
use axum::extract::State;
use axum::http::header::{AUTHORIZATION, CONTENT_TYPE, WWW_AUTHENTICATE};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use secrecy::ExposeSecret;

use crate::auth::session::constant_time_eq;
use crate::error::{ApiError, Result};
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new().route("/metrics", get(metrics))
}

async fn metrics(State(state): State<AppState>, headers: HeaderMap) -> Result<Response> {
    let Some(token) = &state.config.metrics.prometheus_token else {
        return Err(ApiError::not_found("/metrics is off: the operator has not set [metrics] prometheus_token"));
    };
    let presented = headers.get(AUTHORIZATION).and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Bearer "));
    if !presented.is_some_and(|p| constant_time_eq(p.as_bytes(), token.expose_secret().as_bytes())) {
        let refused =
            ApiError::unauthorized("/metrics needs the bearer token configured as [metrics] prometheus_token");
        return Ok(([(WWW_AUTHENTICATE, "Bearer")], refused).into_response());
    }
    let text = state.metrics.prometheus.render(&state).await?;
    Ok((StatusCode::OK, [(CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")], text)
        .into_response())
}
