//! Who is asking, and may they touch this instance. Handlers use [`Caller`] and
//! [`AppState::authorized_instance`]; the [`Authenticator`] behind them is the one
//! seam single sign-on plugs into.

mod local;

pub use local::{LocalTokens, hash_token, new_token};

use async_trait::async_trait;
use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use store::{Grant, Instance, StoreError};

use crate::error::ApiError;
use crate::state::AppState;

/// An authenticated user and what they may reach.
#[derive(Debug, Clone)]
pub struct Principal {
    pub name: String,
    pub grants: Vec<Grant>,
}

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("{0}")]
    Unauthenticated(String),
    #[error(transparent)]
    Other(#[from] anyhow::Error),
}

#[async_trait]
pub trait Authenticator: Send + Sync {
    /// Turns a bearer token into a principal.
    async fn authenticate(&self, token: &str) -> Result<Principal, AuthError>;

    /// Whether the principal may see and change this instance.
    async fn may_access(&self, principal: &Principal, instance: &Instance) -> Result<bool, AuthError> {
        Ok(principal.grants.iter().any(|g| g.covers(&instance.tenant_id, &instance.subtenant_id)))
    }
}

impl From<AuthError> for ApiError {
    fn from(e: AuthError) -> Self {
        match e {
            AuthError::Unauthenticated(why) => ApiError::unauthorized(why),
            AuthError::Other(e) => ApiError::internal(e),
        }
    }
}

/// The authenticated caller of a dashboard API route.
#[derive(Debug, Clone)]
pub struct Caller(pub Principal);

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let header = parts.headers.get(AUTHORIZATION).ok_or_else(|| {
            ApiError::unauthorized("no credentials: send the header \"Authorization: bearer <token>\"")
        })?;
        let token = header
            .to_str()
            .ok()
            .and_then(|v| v.trim().split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, token)| token.trim())
            .filter(|t| !t.is_empty())
            .ok_or_else(|| ApiError::unauthorized("the Authorization header must be \"bearer <token>\""))?;
        Ok(Caller(state.auth.authenticate(token).await?))
    }
}

impl AppState {
    /// The instance with this id, if the caller may access it: 404 when unknown, 403 when not theirs.
    pub async fn authorized_instance(&self, caller: &Caller, instance_guid: &str) -> Result<Instance, ApiError> {
        let instance = match self.store.instance_by_guid(instance_guid).await {
            Ok(instance) => instance,
            Err(StoreError::NotFound) => {
                return Err(ApiError::not_found(format!("there is no service instance with id {instance_guid:?}")));
            }
            Err(e) => return Err(e.into()),
        };
        if !self.auth.may_access(&caller.0, &instance).await? {
            return Err(ApiError::forbidden(format!(
                "user {:?} has no access to service instance {instance_guid:?}",
                caller.0.name
            )));
        }
        Ok(instance)
    }
}
