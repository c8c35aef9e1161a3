//! Single sign-on: `/auth/login` sends the browser to the identity provider,
//! `/auth/callback` takes it back. A sign-in is bound to the browser that began
//! it (a cookie), good for one callback (its `state` is consumed), and short-lived.

use axum::extract::State;
use axum::http::header::{HeaderMap, LOCATION, SET_COOKIE};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use store::{AuditOutcome, LoginFlow, StoreError};

use super::return_to::ReturnTo;
use super::ui::PageError;
use crate::auth::{self, session};
use crate::client_addr::ClientAddr;
use crate::error::ApiError;
use crate::state::AppState;

const FLOW_COOKIE: &str = "svcdash_flow";
/// A sign-in must come back from the provider within this time.
const FLOW_TTL_SECS: i64 = 600;

fn bad(description: impl Into<String>) -> Response {
    PageError(ApiError::new(StatusCode::BAD_REQUEST, "SignInFailed", description)).into_response()
}

/// Redirects the browser to the identity provider, remembering where it wanted to go.
pub async fn begin(state: &AppState, return_to: ReturnTo) -> Response {
    let Some(oidc) = &state.oidc else { return bad("single sign-on is not configured") };
    let begun = match oidc.begin().await {
        Ok(begun) => begun,
        Err(e) => return PageError(ApiError::internal(e)).into_response(),
    };
    let browser = auth::new_token();
    let sealed_verifier = {
        use secrecy::ExposeSecret;
        match state.master.seal(begun.pkce_verifier.expose_secret()) {
            Ok(sealed) => sealed,
            Err(e) => return PageError(ApiError::internal(e)).into_response(),
        }
    };
    let flow = LoginFlow {
        state_hash: auth::hash_token(&begun.state),
        browser_hash: auth::hash_token(&browser),
        sealed_verifier,
        nonce: begun.nonce,
        return_to: return_to.to_string(),
        created_at: Utc::now(),
    };
    if let Err(e) = state.store.create_login_flow(flow).await {
        return PageError(e.into()).into_response();
    }
    let Ok(location) = HeaderValue::from_str(&begun.url) else {
        return PageError(ApiError::internal(anyhow::anyhow!("the authorization URL is not a header value")))
            .into_response();
    };
    let cookie = session::set_cookie(state, FLOW_COOKIE, &browser, Some(FLOW_TTL_SECS as u64));
    (StatusCode::SEE_OTHER, [(LOCATION, location), (SET_COOKIE, cookie)]).into_response()
}

#[derive(serde::Deserialize)]
pub struct Callback {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
    error_description: Option<String>,
}

pub async fn callback(
    State(state): State<AppState>,
    ClientAddr(addr): ClientAddr,
    headers: HeaderMap,
    super::extract::Query(query): super::extract::Query<Callback>,
) -> Response {
    let Some(oidc) = state.oidc.clone() else { return bad("single sign-on is not configured") };
    let Some(flow_state) = query.state.as_deref().filter(|s| !s.is_empty()) else {
        return bad("the identity provider's answer has no state parameter");
    };
    // Taken, not read: a state (and its code) signs in once.
    let flow = match state.store.take_login_flow(&auth::hash_token(flow_state)).await {
        Ok(flow) => flow,
        Err(StoreError::NotFound) => {
            return bad("this sign-in is unknown, was already used, or has expired; please sign in again");
        }
        Err(e) => return PageError(e.into()).into_response(),
    };
    let browser = session::cookie(&headers, FLOW_COOKIE).unwrap_or_default();
    if browser.is_empty() || auth::hash_token(browser) != flow.browser_hash {
        return bad("this sign-in was begun in another browser; please sign in again");
    }
    if Utc::now() - flow.created_at > chrono::Duration::seconds(FLOW_TTL_SECS) {
        return bad("this sign-in took too long; please sign in again");
    }
    if let Some(error) = &query.error {
        let why = query.error_description.as_deref().unwrap_or(error);
        state.audit_as("-", Some(addr), "login", None, AuditOutcome::Failure, Some(why)).await;
        return bad(format!("the identity provider did not sign you in: {why}"));
    }
    let Some(code) = query.code.as_deref() else { return bad("the identity provider's answer has no code") };
    let verifier = match state.master.unseal(&flow.sealed_verifier) {
        Ok(v) => v,
        Err(e) => return PageError(ApiError::internal(e)).into_response(),
    };
    let (identity, tokens) = {
        use secrecy::ExposeSecret;
        match oidc.finish(code, verifier.expose_secret(), &flow.nonce).await {
            Ok(done) => done,
            Err(e) => {
                let why = format!("{e:#}");
                tracing::info!(error = %why, "single sign-on failed");
                state.audit_as("-", Some(addr), "login", None, AuditOutcome::Failure, Some(&why)).await;
                return bad(format!("signing in failed: {why}"));
            }
        }
    };
    let (principal, claims, sealed) = match state.auth.session_data(&identity, &tokens) {
        Ok(data) => data,
        Err(e) => return PageError(ApiError::internal(e)).into_response(),
    };
    let cookie = match session::start_with(&state, &principal, claims, Some(sealed)).await {
        Ok((_, cookie)) => cookie,
        Err(e) => return PageError(e).into_response(),
    };
    state.audit_as(&principal.name, Some(addr), "login", None, AuditOutcome::Success, Some("single sign-on")).await;
    // Checked again: a flow stored by an earlier version may hold any target.
    let return_to = ReturnTo::or_home(Some(&flow.return_to));
    let location = HeaderValue::from_str(return_to.as_str()).unwrap_or(HeaderValue::from_static("/"));
    let mut response = (StatusCode::SEE_OTHER, [(LOCATION, location), (SET_COOKIE, cookie)]).into_response();
    response.headers_mut().append(SET_COOKIE, session::clear_cookie(&state, FLOW_COOKIE));
    response
}
