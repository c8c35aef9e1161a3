//! Server-side sessions behind an opaque cookie. The cookie holds 256 random bits;
//! the store keeps only their hash, the user, a CSRF token, and when the session
//! began and was last used: it ends after `session_idle_secs` without a request
//! or `session_max_secs` after it began. A session made from a bearer token (the
//! reference's curl sign-in) also ends when that token expires or is revoked, and
//! one token holds at most [`MAX_SESSIONS_PER_BEARER`] sessions.

use axum::http::HeaderMap;
use axum::http::header::{COOKIE, HeaderValue};
use chrono::Utc;
use store::{NewSession, Session, SessionBearer, SessionLimits, StoreError};

use super::{Principal, hash_token, new_token};
use crate::error::ApiError;
use crate::state::AppState;

pub const COOKIE_NAME: &str = "svcdash_session";
/// Header carrying the session's CSRF token on requests that change something.
pub const CSRF_HEADER: &str = "x-csrf-token";

/// Sessions one bearer token holds at most; signing in again with it ends the
/// oldest. A client that keeps no cookies makes a session on every visit to the
/// dashboard URL: this keeps it from piling them up.
pub const MAX_SESSIONS_PER_BEARER: u32 = 5;

/// A session is marked used at most this often, to spare the store a write per request.
const TOUCH_EVERY_SECS: i64 = 15;

/// The value of cookie `name` in the request, if sent.
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.trim_matches('"'))
}

/// A `Set-Cookie` value: HttpOnly, SameSite=Lax, Secure when svcdash is served over https.
pub fn set_cookie(state: &AppState, name: &str, value: &str, max_age_secs: Option<u64>) -> HeaderValue {
    let mut cookie = format!("{name}={value}; Path=/; HttpOnly; SameSite=Lax");
    if state.config.https() {
        cookie.push_str("; Secure");
    }
    if let Some(age) = max_age_secs {
        cookie.push_str(&format!("; Max-Age={age}"));
    }
    HeaderValue::from_str(&cookie).expect("cookie values are URL-safe base64")
}

pub fn clear_cookie(state: &AppState, name: &str) -> HeaderValue {
    set_cookie(state, name, "", Some(0))
}

/// Sessions idle or begun before these cut-offs are over.
fn limits(state: &AppState) -> SessionLimits {
    let now = Utc::now();
    SessionLimits {
        active_since: now - chrono::Duration::seconds(state.config.auth.session_idle_secs as i64),
        created_since: now - chrono::Duration::seconds(state.config.auth.session_max_secs as i64),
    }
}

/// The live session the request's cookie names, if any; marks it used.
pub async fn from_cookie(state: &AppState, headers: &HeaderMap) -> Result<Option<Session>, ApiError> {
    let Some(value) = cookie(headers, COOKIE_NAME).filter(|v| !v.is_empty()) else { return Ok(None) };
    let session = match state.store.session_by_token_hash(&hash_token(value), limits(state)).await {
        Ok(session) => session,
        Err(StoreError::NotFound) => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    if Utc::now() - session.last_seen_at > chrono::Duration::seconds(TOUCH_EVERY_SECS) {
        state.store.touch_session(session.id, None, None).await?;
    }
    Ok(Some(session))
}

/// Starts a session for the principal; returns the `Set-Cookie` header that carries it.
pub async fn start(state: &AppState, principal: &Principal) -> Result<(Session, HeaderValue), ApiError> {
    create(state, principal, "{}".into(), None, None).await
}

/// Starts a session that keeps the identity provider's claims and (sealed) tokens.
pub async fn start_with(
    state: &AppState,
    principal: &Principal,
    claims: String,
    sealed_tokens: Option<String>,
) -> Result<(Session, HeaderValue), ApiError> {
    create(state, principal, claims, sealed_tokens, None).await
}

/// Starts a session for a principal authenticated by `token`, which ends with the
/// token: when it expires, when it is revoked (a local token), or once
/// [`MAX_SESSIONS_PER_BEARER`] newer sessions were made from the token.
pub async fn start_from_bearer(
    state: &AppState,
    principal: &Principal,
    token: &str,
) -> Result<(Session, HeaderValue), ApiError> {
    let (claims, sealed_tokens) = state.auth.bearer_session_data(principal).map_err(ApiError::internal)?;
    let bearer = SessionBearer {
        hash: hash_token(token),
        token_id: principal.credential.token_id,
        expires_at: principal.credential.expires_at,
        max_sessions: MAX_SESSIONS_PER_BEARER,
    };
    create(state, principal, claims, sealed_tokens, Some(bearer)).await
}

async fn create(
    state: &AppState,
    principal: &Principal,
    claims: String,
    sealed_tokens: Option<String>,
    bearer: Option<SessionBearer>,
) -> Result<(Session, HeaderValue), ApiError> {
    let token = new_token();
    let session = state
        .store
        .create_session(NewSession {
            token_hash: hash_token(&token),
            subject: principal.subject.clone(),
            user_name: principal.name.clone(),
            csrf_token: new_token(),
            claims,
            sealed_tokens,
            bearer,
        })
        .await?;
    Ok((session, set_cookie(state, COOKIE_NAME, &token, None)))
}

/// Requests that change something on a cookie's authority must carry its CSRF token.
pub fn check_csrf(session: &Session, headers: &HeaderMap) -> Result<(), ApiError> {
    let sent = headers.get(CSRF_HEADER).and_then(|v| v.to_str().ok());
    check_csrf_value(session, sent)
}

pub fn check_csrf_value(session: &Session, sent: Option<&str>) -> Result<(), ApiError> {
    match sent {
        Some(token) if constant_time_eq(token.as_bytes(), session.csrf_token.as_bytes()) => Ok(()),
        Some(_) => Err(ApiError::new(
            axum::http::StatusCode::FORBIDDEN,
            "CsrfTokenInvalid",
            "the CSRF token does not belong to this session; reload the page",
        )),
        None => Err(ApiError::new(
            axum::http::StatusCode::FORBIDDEN,
            "CsrfTokenMissing",
            "a change made with a session cookie needs the session's CSRF token in the X-CSRF-Token header \
             (API clients can send \"Authorization: bearer <token>\" instead)",
        )),
    }
}

/// Compares secrets in time independent of where they differ.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Removes sessions that are over and abandoned sign-in flows now and then, until shutdown.
pub async fn sweep(state: AppState, shutdown: tokio_util::sync::CancellationToken) {
    let every = std::time::Duration::from_secs(state.config.auth.session_idle_secs.clamp(10, 300));
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(every) => {}
        }
        match state.store.delete_stale_sessions(limits(&state)).await {
            Ok(0) => {}
            Ok(n) => tracing::debug!(sessions = n, "removed sessions that are over"),
            Err(e) => tracing::warn!(error = format!("{e:#}"), "could not remove sessions that are over"),
        }
    }
}
