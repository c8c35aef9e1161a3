//! The dashboard URL itself and the instance routes beside it.
//!
//! `GET /service-instances/{id}` (the `dashboard_url` the broker hands out) is
//! where the reference's curl sign-in lands: a request with `Authorization:
//! bearer <token>` and no session yet is checked, given a session cookie and
//! redirected back to the same URL (marked `?signed_in=1`, so a client that keeps
//! no cookies is served with its token instead of redirected again). Later
//! requests need the cookie alone, there, below it and under `/v1`. The session
//! ends with the token (see [`session::start_from_bearer`]). Browsers get the
//! overview page there.
//!
//! `GET /v1/instances/{id}` is an API route like the rest of `/v1`: a bearer token
//! is answered at once, with no session and no redirect, however often it polls.

use api_types::v1;
use axum::Json;
use axum::Router;
use axum::extract::{OriginalUri, State};
use axum::http::header::{LOCATION, SET_COOKIE};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use store::{AuditOutcome, Instance, InstanceState, Role};

use super::extract::{Path, Query};
use super::ui;
use crate::auth::{Authenticator, Caller, Via, bearer_token, session};
use crate::error::{ApiError, Result};
use crate::state::AppState;

/// Marks the URL the bearer sign-in redirects to.
const SIGNED_IN: &str = "signed_in";

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/service-instances/{instance_id}", get(dashboard))
        .route("/v1/instances/{instance_id}", get(get_instance))
        .route("/v1/instances", get(list_instances))
        .route("/v1/instances/{instance_id}/audit", get(audit_log))
}

/// The dashboard URL: signs curl in with its bearer token, then the overview.
async fn dashboard(
    State(state): State<AppState>,
    Path(guid): Path<String>,
    OriginalUri(uri): OriginalUri,
    request: axum::extract::Request,
) -> Response {
    let (parts, _) = request.into_parts();
    match sign_in_with_bearer(&state, &guid, &uri, &parts).await {
        Ok(Some(redirect)) => return redirect,
        Ok(None) => {}
        Err(e) => return respond_error(&parts.headers, e),
    }
    overview(&state, &guid, &uri, parts).await
}

async fn get_instance(
    State(state): State<AppState>,
    Path(guid): Path<String>,
    OriginalUri(uri): OriginalUri,
    request: axum::extract::Request,
) -> Response {
    let (parts, _) = request.into_parts();
    overview(&state, &guid, &uri, parts).await
}

/// The instance's overview: a page for browsers, the reference's JSON for API clients.
async fn overview(state: &AppState, guid: &str, uri: &Uri, parts: Parts) -> Response {
    let html = ui::wants_html(&parts.headers);
    let caller = match caller(state, parts).await {
        Ok(caller) => caller,
        Err(e) if html && e.status == StatusCode::UNAUTHORIZED => {
            return ui::login_redirect(uri.path_and_query().map_or("/", |p| p.as_str()));
        }
        Err(e) => return respond_error_html(html, e),
    };
    if html {
        return ui::overview_page(state, &caller, guid).await.into_response();
    }
    match instance_json(state, &caller, guid).await {
        Ok(json) => json.into_response(),
        Err(e) => e.into_response(),
    }
}

/// A bearer token without a session: checks the token and the instance, starts a
/// session made from the token and redirects to the same URL. `Ok(None)` when there
/// is nothing to do.
async fn sign_in_with_bearer(state: &AppState, guid: &str, uri: &Uri, parts: &Parts) -> Result<Option<Response>> {
    let Some(token) = bearer_token(&parts.headers)? else { return Ok(None) };
    // Back from the redirect without the cookie: the client keeps no cookies, so
    // the token alone must do (another redirect would loop).
    let query = uri.query().unwrap_or_default();
    if url::form_urlencoded::parse(query.as_bytes()).any(|(k, _)| k == SIGNED_IN) {
        return Ok(None);
    }
    if session::from_cookie(state, &parts.headers).await?.is_some() {
        return Ok(None);
    }
    let principal = state.auth.authenticate(token).await?;
    let caller = Caller { principal, via: Via::Bearer, addr: crate::auth::client_addr(parts) };
    state.authorized_instance(&caller, guid, Role::Read).await?;
    let (_, cookie) = session::start_from_bearer(state, &caller.principal, token).await?;
    state
        .audit(&caller, "session.create", Some(guid), AuditOutcome::Success, Some("signed in with a bearer token"))
        .await;
    let target = if query.is_empty() {
        format!("{}?{SIGNED_IN}=1", uri.path())
    } else {
        format!("{}?{query}&{SIGNED_IN}=1", uri.path())
    };
    let location =
        HeaderValue::from_str(&target).map_err(|e| ApiError::internal(anyhow::anyhow!("redirect target: {e}")))?;
    Ok(Some((StatusCode::FOUND, [(LOCATION, location), (SET_COOKIE, cookie)]).into_response()))
}

async fn caller(state: &AppState, mut parts: Parts) -> Result<Caller> {
    use axum::extract::FromRequestParts;
    Caller::from_request_parts(&mut parts, state).await
}

fn respond_error(headers: &HeaderMap, e: ApiError) -> Response {
    respond_error_html(ui::wants_html(headers), e)
}

fn respond_error_html(html: bool, e: ApiError) -> Response {
    if html { ui::PageError(e).into_response() } else { e.into_response() }
}

pub async fn to_v1(state: &AppState, instance: &Instance, role: Role) -> Result<v1::Instance> {
    let parachute_activated = state.parachute_activated(instance).await?;
    let continuous_archiving = match instance.continuous_archiving {
        true => Some(state.archiving_status(instance).await?),
        false => None,
    };
    let dashboard = state.dashboard_url(&instance.guid);
    Ok(v1::Instance {
        available_updates: state.available_updates(instance),
        created_at: instance.created_at,
        id: instance.id,
        name: instance.name.clone(),
        plan_id: instance.plan_id.clone(),
        service_guid: instance.service_id.clone(),
        service_id: instance.service_id.clone(),
        state: instance.state.to_string(),
        subtenant_id: instance.subtenant_id.clone(),
        subtenant_name: instance.subtenant_name.clone().unwrap_or_else(|| instance.subtenant_id.clone()),
        tenant_id: instance.tenant_id.clone(),
        tenant_name: instance.tenant_name.clone().unwrap_or_else(|| instance.tenant_id.clone()),
        updated_at: instance.updated_at,
        urls: vec![
            v1::InstanceUrl {
                display_name: "Service Instance Dashboard".into(),
                id: "Dashboard".into(),
                link: dashboard.clone(),
            },
            v1::InstanceUrl {
                display_name: "Backups".into(),
                id: "Backups".into(),
                link: format!("{dashboard}/backups"),
            },
        ],
        access: role.to_string(),
        version: state.version_of(instance),
        state_description: instance.state_reason.clone().filter(|_| instance.state == InstanceState::Failed),
        parachute_activated,
        continuous_archiving,
        nodes: cluster_nodes(state, instance).await?,
    })
}

/// A cluster's nodes as the API shows them; none for a single node.
async fn cluster_nodes(state: &AppState, instance: &Instance) -> Result<Vec<v1::InstanceNode>> {
    let nodes = crate::cluster::labelled_nodes(state, instance).await.map_err(ApiError::internal)?;
    Ok(nodes
        .into_iter()
        .map(|(n, role)| v1::InstanceNode {
            index: n.index,
            role: role.to_owned(),
            role_since: n.role_since,
            port: n.port,
            parachute_disk: n.parachute.map(|t| t.disk),
        })
        .collect())
}

async fn instance_json(state: &AppState, caller: &Caller, guid: &str) -> Result<Json<v1::Instance>> {
    let instance = state.authorized_instance(caller, guid, Role::Read).await?;
    let role = state.auth.role(&caller.principal, &instance).await?.unwrap_or(Role::Read);
    Ok(Json(to_v1(state, &instance, role).await?))
}

/// The instances the caller may see, oldest first.
async fn list_instances(State(state): State<AppState>, caller: Caller) -> Result<Json<Vec<v1::Instance>>> {
    let mut visible = Vec::new();
    for instance in state.store.list_instances().await? {
        if instance.state == InstanceState::Deleted {
            continue;
        }
        if let Some(role) = state.auth.role(&caller.principal, &instance).await? {
            visible.push(to_v1(&state, &instance, role).await?);
        }
    }
    Ok(Json(visible))
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct AuditQuery {
    /// At most this many entries (1 to 1000, default 100).
    limit: Option<i64>,
}

async fn audit_log(
    State(state): State<AppState>,
    caller: Caller,
    Path(guid): Path<String>,
    Query(query): Query<AuditQuery>,
) -> Result<Json<Vec<v1::AuditEntry>>> {
    let limit = query.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::bad_request(format!("limit must be between 1 and 1000, not {limit}")));
    }
    let instance = state.authorized_instance(&caller, &guid, Role::Manage).await?;
    let entries = state.store.audit_entries(Some(&instance.guid), limit).await?;
    Ok(Json(
        entries
            .into_iter()
            .map(|e| v1::AuditEntry {
                id: e.id,
                at: e.at,
                actor: e.actor,
                action: e.action,
                outcome: e.outcome.to_string(),
                detail: e.detail,
                remote_addr: e.remote_addr,
            })
            .collect(),
    ))
}
