//! What svcdash's operations (backups, restores, lifecycle) answer when they refuse
//! or fail, in their own terms. Each interface says it its own way: the dashboard
//! API as `{"error", "description"}` with a status, the deprecated API as a
//! `{"status", "message"}` (412 where the dashboard API says 409), the CLI as text.

use store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum DomainError {
    #[error("{0}")]
    NotFound(String),
    /// The caller may not do this.
    #[error("{0}")]
    Denied(String),
    /// The instance's state does not allow it now (an operation runs, a restore is
    /// queued, the parachute holds it): the request may succeed later.
    #[error("{description}")]
    Conflict { code: &'static str, description: String },
    /// The request itself is wrong.
    #[error("{description}")]
    Invalid { code: &'static str, description: String },
    /// Something broke; the caller learns no more than that.
    #[error(transparent)]
    Internal(anyhow::Error),
}

pub type DomainResult<T> = Result<T, DomainError>;

impl DomainError {
    pub fn conflict(code: &'static str, description: impl Into<String>) -> Self {
        Self::Conflict { code, description: description.into() }
    }

    pub fn invalid(code: &'static str, description: impl Into<String>) -> Self {
        Self::Invalid { code, description: description.into() }
    }

    /// What a person is told.
    pub fn description(&self) -> String {
        match self {
            Self::Internal(_) => "an unexpected error occurred; the operator's logs have the details".to_owned(),
            other => other.to_string(),
        }
    }
}

impl From<StoreError> for DomainError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound => Self::NotFound("not found".to_owned()),
            StoreError::Conflict(what) => Self::conflict("Conflict", what),
            StoreError::Other(e) => Self::Internal(e),
        }
    }
}

impl From<anyhow::Error> for DomainError {
    fn from(e: anyhow::Error) -> Self {
        Self::Internal(e)
    }
}
