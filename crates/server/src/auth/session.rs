//! Server-side sessions behind an opaque cookie. The cookie holds 256 random bits;
//! the store keeps only their hash, the user, a CSRF token, and when the session
//! was last used: it ends after `session_idle_secs` without a request.

use axum::http::HeaderMap;
use axum::http::header::{COOKIE, HeaderValue};
use chrono::Utc;
use store::{NewSession, Session, StoreError};

use super::{Principal, hash_token, new_token};
use crate::error::ApiError;
use crate::state::AppState;

pub const COOKIE_NAME: &str = "svcdash_session";
/// Header carrying the session's CSRF token on requests that change something.
pub const CSRF_HEADER: &str = "x-csrf-token";

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

/// The live session the request's cookie names, if any; marks it used.
pub async fn from_cookie(state: &AppState, headers: &HeaderMap) -> Result<Option<Session>, ApiError> {
    let Some(value) = cookie(headers, COOKIE_NAME).filter(|v| !v.is_empty()) else { return Ok(None) };
    let idle = chrono::Duration::seconds(state.config.auth.session_idle_secs as i64);
    let session = match state.store.session_by_token_hash(&hash_token(value), Utc::now() - idle).await {
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
    start_with(state, principal, "{}".into(), None).await
}

/// Starts a session that keeps the identity provider's claims and (sealed) tokens.
pub async fn start_with(
    state: &AppState,
    principal: &Principal,
    claims: String,
    sealed_tokens: Option<String>,
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

/// Removes idle sessions and abandoned sign-in flows now and then, until shutdown.
pub async fn sweep(state: AppState, shutdown: tokio_util::sync::CancellationToken) {
    let every = std::time::Duration::from_secs(state.config.auth.session_idle_secs.clamp(10, 300));
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(every) => {}
        }
        let cutoff = Utc::now() - chrono::Duration::seconds(state.config.auth.session_idle_secs as i64);
        match state.store.delete_stale_sessions(cutoff).await {
            Ok(0) => {}
            Ok(n) => tracing::debug!(sessions = n, "removed idle sessions"),
            Err(e) => tracing::warn!(error = format!("{e:#}"), "could not remove idle sessions"),
        }
    }
}
