//! Who is asking, and what may they do on an instance.
//!
//! A request is authenticated either by `Authorization: bearer <token>` (API
//! clients, curl) or by a session cookie (browsers, and curl's cookie jar after
//! the reference's sign-in step). Handlers take a [`Caller`] and ask
//! [`AppState::authorized_instance`] for the instance with the [`Role`] they need;
//! the [`Authenticator`] behind bearer tokens is the seam single sign-on plugs into.

mod authority;
mod cache;
mod cloud_foundry;
mod config;
mod hashing;
mod limiter;
mod local;
pub mod oidc;
pub mod session;

pub use authority::Authority;
pub use config::{AuthConfig, AuthorizerKind, CloudFoundryConfig, GroupMapping, OidcConfig, ProviderKind};
pub use hashing::Slot as PasswordCheckSlot;
pub use limiter::{Attempt, LoginLimiter, ThrottleCause, Throttled};
pub use local::{
    LocalTokens, TokenLifetime, hash_password, hash_token, new_token, principal as local_principal, verify_password,
};

use std::net::IpAddr;

use async_trait::async_trait;
use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use axum::http::{HeaderMap, Method};
use store::{AuditOutcome, Grant, Instance, Role, StoreError};

use crate::error::ApiError;
use crate::state::AppState;

/// An authenticated user and what they may reach.
#[derive(Debug, Clone)]
pub struct Principal {
    /// Stable identity: `local:<name>` for svcdash's own users.
    pub subject: String,
    /// The name people see (and the audit log records).
    pub name: String,
    pub grants: Vec<Grant>,
    /// The identity provider's groups the grants come from (single sign-on users).
    pub groups: Vec<String>,
    /// The identity provider's access token, for asking the Cloud Controller.
    pub provider_token: Option<secrecy::SecretString>,
    /// The token the principal proved itself with: a session made from it ends with it.
    pub credential: Credential,
}

/// What a principal's token says about its own end.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Credential {
    /// The local API token, when it was one: revoking it ends its sessions.
    pub token_id: Option<i64>,
    /// When the token expires, if it does (or says).
    pub expires_at: Option<chrono::DateTime<chrono::Utc>>,
}

impl Principal {
    /// The strongest role the principal's grants give on this instance.
    pub fn role_on(&self, instance: &Instance) -> Option<Role> {
        self.grants.iter().filter(|g| g.covers(&instance.tenant_id, &instance.subtenant_id)).map(|g| g.role).max()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("{0}")]
    Unauthenticated(String),
    #[error(transparent)]
    Other(#[from] anyhow::Error),
}

impl From<StoreError> for AuthError {
    fn from(e: StoreError) -> Self {
        AuthError::Other(anyhow::Error::new(e))
    }
}

#[async_trait]
pub trait Authenticator: Send + Sync {
    /// Turns a bearer token into a principal.
    async fn authenticate(&self, token: &str) -> Result<Principal, AuthError>;

    /// The principal behind a session, with their current grants (renewing the
    /// identity provider's sign-in when it expired).
    async fn principal_for_session(&self, session: &store::Session) -> Result<Principal, AuthError>;

    /// What the principal may do on this instance, if anything.
    async fn role(&self, principal: &Principal, instance: &Instance) -> Result<Option<Role>, AuthError>;
}

impl From<AuthError> for ApiError {
    fn from(e: AuthError) -> Self {
        match e {
            AuthError::Unauthenticated(why) => ApiError::unauthorized(why),
            AuthError::Other(e) => ApiError::internal(e),
        }
    }
}

/// How a request proved who it is.
#[derive(Debug, Clone)]
pub enum Via {
    Bearer,
    Session(store::Session),
}

/// The authenticated caller of a dashboard route.
#[derive(Debug, Clone)]
pub struct Caller {
    pub principal: Principal,
    pub via: Via,
    /// The client's address, for the audit log.
    pub addr: Option<IpAddr>,
}

/// The token of an `Authorization: bearer <token>` header (scheme in any case).
/// `Ok(None)` without the header; an error for any other form of it.
pub fn bearer_token(headers: &HeaderMap) -> Result<Option<&str>, ApiError> {
    let Some(header) = headers.get(AUTHORIZATION) else { return Ok(None) };
    header
        .to_str()
        .ok()
        .and_then(|v| v.trim().split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim())
        .filter(|t| !t.is_empty())
        .map(Some)
        .ok_or_else(|| ApiError::unauthorized("the Authorization header must be \"bearer <token>\""))
}

/// The client's address (behind trusted proxies: the one they report, see
/// [`crate::client_addr`]).
pub fn client_addr(parts: &Parts) -> Option<IpAddr> {
    parts.extensions.get::<crate::client_addr::ClientAddr>().map(|c| c.0)
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let addr = client_addr(parts);
        if let Some(token) = bearer_token(&parts.headers)? {
            let principal = state.auth.authenticate(token).await?;
            return Ok(Caller { principal, via: Via::Bearer, addr });
        }
        let Some(session) = session::from_cookie(state, &parts.headers).await? else {
            return Err(ApiError::unauthorized(
                "no credentials: send \"Authorization: bearer <token>\" or a session cookie",
            ));
        };
        // A cookie rides along on any request a browser makes, also on those another
        // site triggers: changes need the session's CSRF token as well.
        if !is_safe(&parts.method) {
            session::check_csrf(&session, &parts.headers)?;
        }
        let principal = state.auth.principal_for_session(&session).await?;
        Ok(Caller { principal, via: Via::Session(session), addr })
    }
}

pub fn is_safe(method: &Method) -> bool {
    matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

impl AppState {
    /// The instance with this id, if the caller holds `need` on it: 404 when unknown,
    /// 403 when not theirs (recorded in the audit log when a change was refused).
    pub async fn authorized_instance(
        &self,
        caller: &Caller,
        instance_guid: &str,
        need: Role,
    ) -> Result<Instance, ApiError> {
        let instance =
            self.store.instance_by_guid(instance_guid).await.map_err(|e| unknown_instance(e, instance_guid))?;
        self.authorize(caller, &instance, need).await?;
        Ok(instance)
    }

    /// An instance's backups as the listings show them, if the caller may read
    /// the instance: 404 and 403 as [`AppState::authorized_instance`] answers.
    pub async fn authorized_backup_listing(
        &self,
        caller: &Caller,
        instance_guid: &str,
    ) -> Result<store::BackupListing, ApiError> {
        let listing = self.store.backup_listing(instance_guid).await.map_err(|e| unknown_instance(e, instance_guid))?;
        self.authorize(caller, &listing.instance, Role::Read).await?;
        Ok(listing)
    }

    /// [`Self::authorized_backup_listing`], or only the check when the listing's
    /// version is still `known`.
    pub async fn authorized_backup_listing_unless(
        &self,
        caller: &Caller,
        instance_guid: &str,
        known: Option<i64>,
    ) -> Result<store::ListingRead, ApiError> {
        let read = self
            .store
            .backup_listing_unless(instance_guid, known)
            .await
            .map_err(|e| unknown_instance(e, instance_guid))?;
        let instance = match &read {
            store::ListingRead::Changed(listing) => &listing.instance,
            store::ListingRead::Unchanged(instance) => instance,
        };
        self.authorize(caller, instance, Role::Read).await?;
        Ok(read)
    }

    /// What the Backups page shows of an instance, and the caller's role on it,
    /// if the caller may read it: 404 and 403 as [`AppState::authorized_instance`]
    /// answers.
    pub async fn authorized_backups_overview(
        &self,
        caller: &Caller,
        instance_guid: &str,
    ) -> Result<(store::BackupsOverview, Role), ApiError> {
        let defaults = self.config.backups.default_settings();
        let overview = self
            .store
            .backups_overview(instance_guid, defaults)
            .await
            .map_err(|e| unknown_instance(e, instance_guid))?;
        let role = self.authorize(caller, &overview.listing.instance, Role::Read).await?;
        Ok((overview, role))
    }

    /// [`Self::authorized_backups_overview`], or only the check when the page's
    /// version is still `known`.
    pub async fn authorized_backups_overview_unless(
        &self,
        caller: &Caller,
        instance_guid: &str,
        known: Option<i64>,
    ) -> Result<(store::OverviewRead, Role), ApiError> {
        let defaults = self.config.backups.default_settings();
        let read = self
            .store
            .backups_overview_unless(instance_guid, known, defaults)
            .await
            .map_err(|e| unknown_instance(e, instance_guid))?;
        let instance = match &read {
            store::OverviewRead::Changed(overview) => &overview.listing.instance,
            store::OverviewRead::Unchanged(instance) => instance,
        };
        let role = self.authorize(caller, instance, Role::Read).await?;
        Ok((read, role))
    }

    /// The caller's role on the instance if it is at least `need`: 403 when not
    /// (recorded in the audit log when a change was refused).
    async fn authorize(&self, caller: &Caller, instance: &Instance, need: Role) -> Result<Role, ApiError> {
        let role = self.auth.role(&caller.principal, instance).await?;
        if let Some(held) = role.filter(|held| *held >= need) {
            return Ok(held);
        }
        let instance_guid = &instance.guid;
        let description = match role {
            Some(role) => format!(
                "user {:?} may only {role} service instance {instance_guid:?}; this needs {need}",
                caller.principal.name
            ),
            None => format!("user {:?} has no access to service instance {instance_guid:?}", caller.principal.name),
        };
        if need == Role::Manage {
            self.audit(caller, "access", Some(instance_guid), AuditOutcome::Denied, Some(&description)).await;
        }
        Err(ApiError::forbidden(description))
    }
}

/// 404 for an instance id the store does not know.
fn unknown_instance(e: StoreError, instance_guid: &str) -> ApiError {
    match e {
        StoreError::NotFound => ApiError::not_found(format!("there is no service instance with id {instance_guid:?}")),
        e => e.into(),
    }
}
