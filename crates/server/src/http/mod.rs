//! The HTTP surface: the Open Service Broker API under `/v2`, the dashboard API V1
//! under `/v1/instances`, the deprecated dashboard API under `/service-instances`,
//! and the web pages at the dashboard URL and below it (`/service-instances/{id}`).

mod broker;
mod dashboard;
mod download;
mod envelope;
mod extract;
mod legacy;
mod login;
mod openapi;
mod prometheus;
mod return_to;
mod security_headers;
mod sso;
pub(crate) mod ui;
mod v1;

use axum::Router;
use axum::http::StatusCode;

use crate::error::ApiError;
use crate::state::AppState;

pub fn router(state: AppState) -> Router {
    Router::new()
        .merge(broker::router(state.clone()))
        .merge(v1::router())
        .merge(dashboard::router())
        .merge(login::router())
        .merge(ui::router())
        .merge(legacy::router())
        .merge(openapi::router())
        .merge(prometheus::router())
        .fallback(|| async { ApiError::new(StatusCode::NOT_FOUND, "NotFound", "no such route") })
        .method_not_allowed_fallback(|| async {
            ApiError::new(StatusCode::METHOD_NOT_ALLOWED, "MethodNotAllowed", "this route does not take that method")
        })
        .layer(axum::middleware::from_fn_with_state(state.clone(), envelope::surround))
        .with_state(state)
}
