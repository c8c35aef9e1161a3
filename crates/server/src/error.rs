//! The dashboard API's one error type. Its body is `{"error": "CamelCase",
//! "description": "..."}`; server errors are logged once, with their cause chain,
//! and never shown to the caller.

use axum::Json;
use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use store::StoreError;

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub error: &'static str,
    pub description: String,
}

pub type Result<T, E = ApiError> = std::result::Result<T, E>;

impl ApiError {
    pub fn new(status: StatusCode, error: &'static str, description: impl Into<String>) -> Self {
        Self { status, error, description: description.into() }
    }

    pub fn bad_request(description: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "BadRequest", description)
    }

    pub fn not_found(description: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "NotFound", description)
    }

    pub fn unauthorized(description: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "Unauthorized", description)
    }

    pub fn forbidden(description: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "Forbidden", description)
    }

    pub fn conflict(error: &'static str, description: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, error, description)
    }

    /// An unexpected failure: logged here, hidden from the caller.
    pub fn internal(e: impl Into<anyhow::Error>) -> Self {
        let e = e.into();
        tracing::error!(error = format!("{e:#}"), "request failed");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "InternalServerError",
            "an unexpected error occurred; the operator's logs have the details",
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = api_types::ErrorBody { error: self.error.to_owned(), description: self.description };
        (self.status, Json(body)).into_response()
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound => Self::not_found("not found"),
            StoreError::Conflict(what) => Self::conflict("Conflict", what),
            StoreError::Other(e) => Self::internal(e),
        }
    }
}

impl From<crate::domain_error::DomainError> for ApiError {
    fn from(e: crate::domain_error::DomainError) -> Self {
        use crate::domain_error::DomainError;
        match e {
            DomainError::NotFound(what) => Self::not_found(what),
            DomainError::Denied(why) => Self::forbidden(why),
            DomainError::Conflict { code, description } => Self::conflict(code, description),
            DomainError::Invalid { code, description } => Self::new(StatusCode::BAD_REQUEST, code, description),
            DomainError::Internal(e) => Self::internal(e),
        }
    }
}

impl From<anyhow::Error> for ApiError {
    fn from(e: anyhow::Error) -> Self {
        Self::internal(e)
    }
}

impl From<JsonRejection> for ApiError {
    fn from(r: JsonRejection) -> Self {
        // axum's text names the problem (syntax error at line/column, missing field, ...).
        // A well-formed body of the wrong shape (axum: 422) is a bad request too.
        match r.status() {
            StatusCode::UNSUPPORTED_MEDIA_TYPE => {
                Self::new(StatusCode::UNSUPPORTED_MEDIA_TYPE, "UnsupportedMediaType", r.body_text())
            }
            status if status.is_client_error() && status != StatusCode::UNPROCESSABLE_ENTITY => {
                Self::new(status, "BadRequest", r.body_text())
            }
            _ => Self::bad_request(r.body_text()),
        }
    }
}

impl From<PathRejection> for ApiError {
    fn from(r: PathRejection) -> Self {
        Self::bad_request(format!("invalid path parameter: {}", r.body_text()))
    }
}

impl From<QueryRejection> for ApiError {
    fn from(r: QueryRejection) -> Self {
        Self::bad_request(format!("invalid query string: {}", r.body_text()))
    }
}
