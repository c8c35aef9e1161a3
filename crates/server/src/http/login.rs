//! svcdash's own sign-in page for local users, and signing out.
//!
//! The login form is protected against cross-site posting by a double-submit
//! token: a random value in a cookie that must come back in the form. Attempts
//! are throttled per user name and per client address, and only a few passwords
//! are checked at once ([`crate::auth::LoginLimiter`]).

use askama::Template;
use axum::extract::State;
use axum::http::header::{HeaderMap, LOCATION, SET_COOKIE};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use std::net::IpAddr;
use store::{AuditOutcome, StoreError};

use super::extract::Query;
use super::return_to::ReturnTo;
use super::ui::render;
use crate::auth::{self, Attempt, PasswordCheckSlot, Principal, ThrottleCause, Throttled, session};
use crate::client_addr::ClientAddr;
use crate::state::AppState;

const LOGIN_COOKIE: &str = "svcdash_login";

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/auth/login", get(login_page).post(login))
        .route("/auth/logout", post(logout))
        .route("/auth/callback", get(super::sso::callback))
}

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage {
    csrf: String,
    return_to: String,
    username: String,
    error: Option<String>,
}

#[derive(serde::Deserialize)]
struct LoginQuery {
    return_to: Option<String>,
}

fn page(
    state: &AppState,
    status: StatusCode,
    return_to: &ReturnTo,
    username: String,
    error: Option<String>,
) -> Response {
    let csrf = auth::new_token();
    let cookie = session::set_cookie(state, LOGIN_COOKIE, &csrf, Some(3600));
    let mut response = render(&LoginPage { csrf, return_to: return_to.to_string(), username, error });
    *response.status_mut() = status;
    response.headers_mut().append(SET_COOKIE, cookie);
    response.headers_mut().insert("cache-control", HeaderValue::from_static("no-store"));
    response
}

/// svcdash's own login page; with single sign-on, the way to the identity provider.
async fn login_page(State(state): State<AppState>, Query(query): Query<LoginQuery>) -> Response {
    let return_to = ReturnTo::or_home(query.return_to.as_deref());
    if state.oidc.is_some() {
        return super::sso::begin(&state, return_to).await;
    }
    page(&state, StatusCode::OK, &return_to, String::new(), None)
}

#[derive(serde::Deserialize)]
struct LoginForm {
    username: String,
    password: String,
    #[serde(rename = "_csrf")]
    csrf: String,
    return_to: Option<String>,
}

async fn login(
    State(state): State<AppState>,
    ClientAddr(addr): ClientAddr,
    headers: HeaderMap,
    Form(form): Form<LoginForm>,
) -> Response {
    let return_to = ReturnTo::or_home(form.return_to.as_deref());
    if state.oidc.is_some() {
        let e = crate::error::ApiError::new(
            StatusCode::NOT_FOUND,
            "NotFound",
            "passwords are not used here: sign in through the identity provider",
        );
        return super::ui::PageError(e).into_response();
    }
    let username = form.username.trim().to_owned();
    let fail = |status, why: &str| page(&state, status, &return_to, username.clone(), Some(why.to_owned()));

    let sent = session::cookie(&headers, LOGIN_COOKIE).unwrap_or_default();
    if sent.is_empty() || sent != form.csrf {
        return fail(StatusCode::FORBIDDEN, "This sign-in form has expired. Please try again.");
    }
    let (attempt, slot) = match reserve(&state, &username, addr).await {
        Ok(reserved) => reserved,
        Err(throttled) => {
            let (audited, told) = match throttled.cause {
                ThrottleCause::Address => ("too many failed sign-ins from this address", "Too many failed sign-ins."),
                ThrottleCause::User => ("sign-ins of this user are delayed", "Too many failed sign-ins for this user."),
                ThrottleCause::Busy => ("too many sign-ins at once", "Too many sign-ins at once."),
            };
            state.audit_as(&username, Some(addr), "login", None, AuditOutcome::Denied, Some(audited)).await;
            return too_many(fail(StatusCode::TOO_MANY_REQUESTS, &retry_text(told, &throttled)), &throttled);
        }
    };

    match check_password(&state, &username, form.password, slot).await {
        Ok(Some(principal)) => {
            attempt.succeeded();
            let cookie = match session::start(&state, &principal).await {
                Ok((_, cookie)) => cookie,
                Err(e) => return super::ui::PageError(e).into_response(),
            };
            state.audit_as(&principal.name, Some(addr), "login", None, AuditOutcome::Success, None).await;
            let mut response = Redirect::to(return_to.as_str()).into_response();
            response.headers_mut().append(SET_COOKIE, cookie);
            response.headers_mut().append(SET_COOKIE, session::clear_cookie(&state, LOGIN_COOKIE));
            response
        }
        Ok(None) => {
            attempt.failed();
            state
                .audit_as(
                    &username,
                    Some(addr),
                    "login",
                    None,
                    AuditOutcome::Failure,
                    Some("wrong user name or password"),
                )
                .await;
            fail(StatusCode::UNAUTHORIZED, "Wrong user name or password.")
        }
        Err(e) => super::ui::PageError(crate::error::ApiError::internal(e)).into_response(),
    }
}

/// The attempt, reserved before the password is checked so that parallel guesses
/// count at once, and a slot to check it in.
async fn reserve<'a>(
    state: &'a AppState,
    username: &str,
    addr: IpAddr,
) -> Result<(Attempt<'a>, PasswordCheckSlot<'a>), Throttled> {
    let attempt = state.login_limiter.reserve(username, Some(addr))?;
    let slot = state.login_limiter.hashing_slot().await?;
    Ok((attempt, slot))
}

fn retry_text(what: &str, throttled: &Throttled) -> String {
    match throttled.retry_after_secs() {
        1 => format!("{what} Try again in a second."),
        n => format!("{what} Try again in {n} seconds."),
    }
}

fn too_many(mut response: Response, throttled: &Throttled) -> Response {
    response.headers_mut().insert("retry-after", HeaderValue::from(throttled.retry_after_secs()));
    response
}

/// The user's principal when the password is theirs. Unknown users cost the same
/// time as known ones ([`PasswordCheckSlot::verify`]).
async fn check_password(
    state: &AppState,
    username: &str,
    password: String,
    slot: PasswordCheckSlot<'_>,
) -> anyhow::Result<Option<Principal>> {
    let user = match state.store.user_by_name(username).await {
        Ok(user) => Some(user),
        Err(StoreError::NotFound) => None,
        Err(e) => return Err(e.into()),
    };
    let hash = user.as_ref().and_then(|u| u.password_hash.clone());
    let matches = slot.verify(password, hash).await?;
    match user {
        Some(user) if matches && user.password_hash.is_some() => {
            Ok(Some(auth::local_principal(state.store.as_ref(), user).await?))
        }
        _ => Ok(None),
    }
}

#[derive(Template)]
#[template(path = "signed-out.html")]
struct SignedOut {}

#[derive(serde::Deserialize)]
struct LogoutForm {
    #[serde(rename = "_csrf")]
    csrf: String,
}

async fn logout(
    State(state): State<AppState>,
    ClientAddr(addr): ClientAddr,
    headers: HeaderMap,
    Form(form): Form<LogoutForm>,
) -> Response {
    let session = match session::from_cookie(&state, &headers).await {
        Ok(session) => session,
        Err(e) => return super::ui::PageError(e).into_response(),
    };
    if let Some(session) = session {
        if let Err(e) = session::check_csrf_value(&session, Some(&form.csrf)) {
            return super::ui::PageError(e).into_response();
        }
        if let Err(e) = state.store.delete_session(session.id).await {
            return super::ui::PageError(e.into()).into_response();
        }
        state.audit_as(&session.user_name, Some(addr), "logout", None, AuditOutcome::Success, None).await;
    }
    let clear = session::clear_cookie(&state, session::COOKIE_NAME);
    if state.oidc.is_some() {
        // Straight back to the login route would sign in again through the
        // provider's own session: say so instead.
        let mut response = super::ui::render(&SignedOut {});
        response.headers_mut().append(SET_COOKIE, clear);
        return response;
    }
    (StatusCode::SEE_OTHER, [(LOCATION, HeaderValue::from_static("/auth/login")), (SET_COOKIE, clear)]).into_response()
}
