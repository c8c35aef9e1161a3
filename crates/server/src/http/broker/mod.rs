//! The Open Service Broker API v2: catalog, asynchronous provisioning with
//! last_operation, deprovisioning, and bindings with real engine credentials.

mod bindings;
mod id;
mod input;
mod instances;
mod update;

pub use id::BrokerId;

use api_types::broker::BrokerError;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::http::header::AUTHORIZATION;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use base64::Engine;
use secrecy::ExposeSecret;

use crate::auth::session::constant_time_eq;
use crate::state::AppState;

/// The oldest broker API version whose requests svcdash understands.
const MIN_VERSION: (u32, u32) = (2, 13);

pub fn router(state: AppState) -> Router<AppState> {
    Router::new()
        .route("/v2/catalog", get(catalog))
        .merge(instances::router())
        .merge(bindings::router())
        .layer(middleware::from_fn_with_state(state, check_request))
}

/// A broker error response.
pub struct Failure(pub StatusCode, pub Option<&'static str>, pub String);

impl IntoResponse for Failure {
    fn into_response(self) -> Response {
        (self.0, Json(BrokerError { error: self.1.map(str::to_owned), description: self.2 })).into_response()
    }
}

impl Failure {
    /// A request the broker refuses as malformed: nothing was changed.
    pub fn bad_request(description: impl Into<String>) -> Self {
        Self(StatusCode::BAD_REQUEST, Some("BadRequest"), description.into())
    }
}

/// An unexpected failure: logged here, hidden from the platform.
pub fn internal(e: impl Into<anyhow::Error>) -> Failure {
    let e = e.into();
    tracing::error!(error = format!("{e:#}"), "broker request failed");
    Failure(
        StatusCode::INTERNAL_SERVER_ERROR,
        None,
        "an unexpected error occurred; the operator's logs have the details".into(),
    )
}

pub fn empty(status: StatusCode) -> Response {
    (status, Json(serde_json::json!({}))).into_response()
}

/// Records what the platform did through the broker API in the audit log.
async fn audit(state: &AppState, action: &str, instance_guid: &str, detail: &str) {
    let actor = format!("broker:{}", state.config.broker.username);
    state.audit_as(&actor, None, action, Some(instance_guid), store::AuditOutcome::Success, Some(detail)).await;
}

/// Basic auth, then the API version header.
async fn check_request(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let broker = &state.config.broker;
    let Some(password) = &broker.password else {
        return Failure(
            StatusCode::UNAUTHORIZED,
            None,
            "the broker API is disabled: no broker password is configured".into(),
        )
        .into_response();
    };
    let given = req
        .headers()
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic ").or_else(|| v.strip_prefix("basic ")))
        .and_then(|b64| base64::engine::general_purpose::STANDARD.decode(b64.trim()).ok())
        .and_then(|bytes| String::from_utf8(bytes).ok());
    let expected = format!("{}:{}", broker.username, password.expose_secret());
    if !given.is_some_and(|g| constant_time_eq(g.as_bytes(), expected.as_bytes())) {
        return (
            StatusCode::UNAUTHORIZED,
            [("WWW-Authenticate", "Basic realm=\"svcdash broker\"")],
            Json(serde_json::json!({})),
        )
            .into_response();
    }
    let version = req.headers().get("X-Broker-API-Version").and_then(|v| v.to_str().ok()).map(str::to_owned);
    match version.as_deref().and_then(parse_version) {
        Some(v) if v >= MIN_VERSION => next.run(req).await,
        Some(_) => Failure(
            StatusCode::PRECONDITION_FAILED,
            None,
            format!(
                "X-Broker-API-Version {} is too old; svcdash needs {}.{} or newer",
                version.unwrap_or_default(),
                MIN_VERSION.0,
                MIN_VERSION.1
            ),
        )
        .into_response(),
        None => Failure(
            StatusCode::PRECONDITION_FAILED,
            None,
            format!(
                "the X-Broker-API-Version header is missing or malformed; send {}.{} or newer",
                MIN_VERSION.0, MIN_VERSION.1
            ),
        )
        .into_response(),
    }
}

fn parse_version(text: &str) -> Option<(u32, u32)> {
    let (major, minor) = text.trim().split_once('.')?;
    Some((major.parse().ok()?, minor.parse().ok()?))
}

async fn catalog(State(state): State<AppState>) -> Json<api_types::broker::Catalog> {
    // The secret goes to every holder of the broker credentials: only when the operator says so.
    let dashboard_client = match (&state.config.auth.provider, &state.oidc) {
        (crate::auth::ProviderKind::Uaa, Some(oidc)) if state.config.auth.catalog_dashboard_client => {
            Some(api_types::broker::DashboardClient {
                id: oidc.client_id().to_owned(),
                secret: state
                    .config
                    .auth
                    .oidc
                    .client_secret
                    .as_ref()
                    .map(|s| secrecy::ExposeSecret::expose_secret(s).to_owned())
                    .unwrap_or_default(),
                redirect_uri: oidc.redirect_url().to_owned(),
            })
        }
        _ => None,
    };
    Json(state.catalog.broker_catalog(dashboard_client))
}

#[cfg(test)]
mod tests {
    #[test]
    fn versions_compare_numerically() {
        assert!(super::parse_version("2.17").unwrap() >= super::MIN_VERSION);
        assert!(super::parse_version("2.9").unwrap() < super::MIN_VERSION);
        assert!(super::parse_version("two").is_none());
    }
}
