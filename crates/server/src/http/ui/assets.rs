//! The pages' stylesheet and script, compiled into the binary.

use axum::Router;
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use axum::response::IntoResponse;
use axum::routing::get;

use crate::state::AppState;

const CSS: &str = include_str!("../../../assets/app.css");
const JS: &str = include_str!("../../../assets/app.js");

pub fn router() -> Router<AppState> {
    Router::new().route("/assets/app.css", get(css)).route("/assets/app.js", get(js))
}

// No fingerprints in the names, so browsers must check back now and then.
const CACHE: &str = "public, max-age=300";

async fn css() -> impl IntoResponse {
    ([(CONTENT_TYPE, "text/css; charset=utf-8"), (CACHE_CONTROL, CACHE)], CSS)
}

async fn js() -> impl IntoResponse {
    ([(CONTENT_TYPE, "text/javascript; charset=utf-8"), (CACHE_CONTROL, CACHE)], JS)
}
