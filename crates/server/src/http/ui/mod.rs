//! The dashboard's web pages, rendered on the server (askama). They live at the
//! dashboard URL and below it; browsers ask for `text/html` there, API clients
//! for JSON, and each route answers in kind. Changes go through the JSON API from
//! a small script (`assets/app.js`) with the session's CSRF token.

mod assets;
mod chart;
pub(crate) mod format;
mod metrics;
mod page_buffers;
mod pages;
mod pitr;
mod views;

pub use pages::{backups_page, overview_page};

use askama::Template;
use axum::Router;
use axum::extract::FromRequestParts;
use axum::http::header::ACCEPT;
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::get;

use crate::auth::{Caller, Via};
use crate::error::ApiError;
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/", get(pages::instances_page))
        .route("/service-instances/{instance_id}/metrics", get(metrics::metrics_page))
        .route("/service-instances/{instance_id}/updates", get(pages::updates_page))
        .merge(assets::router())
}

/// Whether the client prefers a page to JSON: browsers put `text/html` in `Accept`.
pub fn wants_html(headers: &HeaderMap) -> bool {
    headers.get(ACCEPT).and_then(|v| v.to_str().ok()).is_some_and(|accept| accept.contains("text/html"))
}

/// A caller of a page: without credentials the browser goes to the login page
/// and comes back to where it was.
pub struct PageCaller(pub Caller);

impl FromRequestParts<AppState> for PageCaller {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        match Caller::from_request_parts(parts, state).await {
            Ok(caller) => Ok(PageCaller(caller)),
            Err(e) if e.status == StatusCode::UNAUTHORIZED => {
                let here = parts.uri.path_and_query().map_or("/", |p| p.as_str());
                Err(login_redirect(here))
            }
            Err(e) => Err(PageError::from(e).into_response()),
        }
    }
}

pub fn login_redirect(return_to: &str) -> Response {
    let query = url::form_urlencoded::Serializer::new(String::new()).append_pair("return_to", return_to).finish();
    Redirect::to(&format!("/auth/login?{query}")).into_response()
}

/// An error shown as a page.
pub struct PageError(pub ApiError);

impl From<ApiError> for PageError {
    fn from(e: ApiError) -> Self {
        PageError(e)
    }
}

impl From<crate::domain_error::DomainError> for PageError {
    fn from(e: crate::domain_error::DomainError) -> Self {
        PageError(e.into())
    }
}

impl From<store::StoreError> for PageError {
    fn from(e: store::StoreError) -> Self {
        PageError(e.into())
    }
}

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage<'a> {
    title: &'a str,
    description: &'a str,
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        let title = match self.0.status {
            StatusCode::FORBIDDEN => "No access",
            StatusCode::NOT_FOUND => "Not found",
            s if s.is_server_error() => "Something went wrong",
            _ => "Cannot show this page",
        };
        let page = ErrorPage { title, description: &self.0.description };
        (self.0.status, render(&page)).into_response()
    }
}

/// Renders a template; a template that fails to render is a bug, logged and shown as 500.
pub fn render<T: Template>(template: &T) -> Response {
    let mut html = page_buffers::take(T::SIZE_HINT);
    match template.render_into(&mut html) {
        Ok(()) => Html(page_buffers::body(html)).into_response(),
        Err(e) => {
            page_buffers::give_back(html);
            ApiError::internal(anyhow::anyhow!("rendering a page: {e}")).into_response()
        }
    }
}

/// What every page's frame needs.
pub struct Frame {
    pub user: String,
    pub csrf: String,
    pub nav: Option<Nav>,
    /// A job is queued or running: the page reloads itself until none is.
    pub busy: bool,
}

pub struct Nav {
    pub guid: String,
    pub active: &'static str,
    /// The caller may restart and recreate the instance: the buttons show.
    pub manage: bool,
}

impl Nav {
    pub fn new(guid: &str, active: &'static str, role: Option<store::Role>) -> Self {
        Nav { guid: guid.to_owned(), active, manage: role == Some(store::Role::Manage) }
    }
}

impl Frame {
    pub fn new(caller: &Caller) -> Self {
        let csrf = match &caller.via {
            Via::Session(session) => session.csrf_token.clone(),
            // A bearer caller sends its token; it needs no CSRF token.
            Via::Bearer => String::new(),
        };
        Frame { user: caller.principal.name.clone(), csrf, nav: None, busy: false }
    }
}
