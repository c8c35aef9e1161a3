//! What every request and answer passes through, in one layer: the client's
//! address is recorded, the handler runs in a span named by its route, the answer
//! is counted and timed for Prometheus and gets the security headers.
//!
//! One layer rather than one per concern: each `from_fn` layer boxes the inner
//! service and its future for every request, and four of them (two cloning the
//! state besides) cost the listing route about a sixth of its throughput under
//! load (`bench/api-load.py`).

use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use tracing::Instrument;

use super::security_headers;
use crate::state::AppState;

pub async fn surround(State(state): State<AppState>, mut request: Request, next: Next) -> Response {
    crate::client_addr::identify(&state.config.http, &mut request);
    let method = request.method().clone();
    // The matched route, not the raw path: ids stay out of span names and labels.
    let route = request.extensions().get::<MatchedPath>().cloned();
    let route = route.as_ref().map_or("unmatched", MatchedPath::as_str);
    let span = tracing::info_span!("http", %method, route);
    let started = Instant::now();
    let mut response = next.run(request).instrument(span.clone()).await;
    let elapsed = started.elapsed();
    let status = response.status();
    if status.is_server_error() {
        tracing::warn!(parent: &span, status = status.as_u16(), ms = elapsed.as_millis(), "answered with a server error");
    } else {
        tracing::debug!(parent: &span, status = status.as_u16(), ms = elapsed.as_millis(), "answered");
    }
    state.metrics.prometheus.observe_request(&method, route, status, elapsed.as_secs_f64());
    security_headers::add(response.headers_mut());
    response
}
