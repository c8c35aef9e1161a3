//! API V1: `/v1/instances/{instance_id}/...`.

mod backups;
mod disaster_recovery;
mod lifecycle;
mod metrics;
mod pitr;
mod restores;
mod settings;

use axum::Router;

use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .merge(backups::router())
        .merge(restores::router())
        .merge(settings::router())
        .merge(disaster_recovery::router())
        .merge(lifecycle::router())
        .merge(metrics::router())
        .merge(pitr::router())
}
