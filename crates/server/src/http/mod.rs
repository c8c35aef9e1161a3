//! The HTTP surface: the Open Service Broker API under `/v2`, the dashboard API V1
//! under `/v1/instances`, the deprecated dashboard API under `/service-instances`,
//! and the web pages at the dashboard URL and below it (`/service-instances/{id}`).

mod broker;
mod dashboard;
mod download;
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
use tower_http::trace::TraceLayer;

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
        .layer(axum::middleware::from_fn_with_state(state.clone(), crate::client_addr::identify))
        .layer(axum::middleware::from_fn_with_state(state.clone(), crate::metrics::prometheus::track))
        .layer(TraceLayer::new_for_http().make_span_with(|req: &axum::http::Request<_>| {
            // The matched route, not the raw path: ids stay out of span names.
            let route =
                req.extensions().get::<axum::extract::MatchedPath>().map_or("unmatched", |p| p.as_str()).to_owned();
            tracing::info_span!("http", method = %req.method(), route)
        }))
        .layer(axum::middleware::from_fn(security_headers::add))
        .with_state(state)
}
