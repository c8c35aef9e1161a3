//! `GET /v1/openapi.json`: the document describing every route.

use axum::Router;
use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;
use axum::routing::get;

use crate::state::AppState;

pub const DOCUMENT: &str = include_str!("../../openapi.json");

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/openapi.json", get(|| async { ([(CONTENT_TYPE, "application/json")], DOCUMENT).into_response() }))
}
