//! The [`Authenticator`] svcdash runs with: local users' tokens always; the
//! single sign-on provider's tokens and sessions when one is configured; access
//! decided by grants (and group mappings) or by the Cloud Controller.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use backup::keys::MasterKey;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use store::{Grant, Instance, Role, Session, Store};

use super::cache::TtlCache;
use super::cloud_foundry::CloudController;
use super::config::{AuthConfig, AuthorizerKind, GroupMapping};
use super::oidc::{BearerError, Identity, Oidc, ProviderTokens};
use super::{AuthError, Authenticator, Credential, LocalTokens, Principal, hash_token};

/// What a single sign-on session keeps in the clear (never secrets).
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct SessionClaims {
    #[serde(default)]
    pub groups: Vec<String>,
    /// When the provider's access token expires (unix seconds), if it said.
    #[serde(default)]
    pub expires_at: Option<i64>,
}

pub struct Authority {
    store: Arc<dyn Store>,
    master: MasterKey,
    local: LocalTokens,
    oidc: Option<Arc<Oidc>>,
    cloud_controller: Option<CloudController>,
    mappings: Vec<GroupMapping>,
    /// sha256 of a bearer token → its owner.
    bearers: TtlCache<String, Identity>,
}

/// Local tokens carry this prefix; anything else goes to the identity provider.
const LOCAL_TOKEN_PREFIX: &str = "sd_";

impl Authority {
    pub fn new(
        config: &AuthConfig,
        store: Arc<dyn Store>,
        master: MasterKey,
        oidc: Option<Arc<Oidc>>,
    ) -> anyhow::Result<Self> {
        let cache = Duration::from_secs(config.permission_cache_secs);
        let cloud_controller = match config.authorizer {
            AuthorizerKind::Grants => None,
            AuthorizerKind::CloudFoundry => {
                let api = config.cloud_foundry.api_url.as_deref().ok_or_else(|| {
                    anyhow::anyhow!("authorizer = \"cloud-foundry\" needs [auth.cloud_foundry] api_url")
                })?;
                let http = reqwest::Client::builder().timeout(Duration::from_secs(15)).build()?;
                Some(CloudController::new(api, http, cache))
            }
        };
        Ok(Self {
            local: LocalTokens::new(store.clone()),
            store,
            master,
            oidc,
            cloud_controller,
            mappings: config.group_mappings.clone(),
            bearers: TtlCache::new(cache),
        })
    }

    fn grants_of_groups(&self, groups: &[String]) -> Vec<Grant> {
        self.mappings
            .iter()
            .filter(|m| groups.contains(&m.group))
            .map(|m| Grant { tenant_id: m.tenant.clone(), subtenant_id: m.subtenant.clone(), role: m.role })
            .collect()
    }

    fn principal(&self, identity: &Identity, provider_token: Option<SecretString>) -> Principal {
        Principal {
            subject: format!("oidc:{}", identity.sub),
            name: identity.name.clone(),
            grants: self.grants_of_groups(&identity.groups),
            groups: identity.groups.clone(),
            provider_token,
            credential: Credential {
                token_id: None,
                expires_at: identity.expires_at.and_then(|at| chrono::DateTime::from_timestamp(at, 0)),
            },
        }
    }

    /// What a new single sign-on session stores: its claims in the clear, the tokens sealed.
    pub fn session_data(
        &self,
        identity: &Identity,
        tokens: &ProviderTokens,
    ) -> anyhow::Result<(Principal, String, String)> {
        let claims = SessionClaims { groups: identity.groups.clone(), expires_at: tokens.expires_at };
        let sealed = self.master.seal(&serde_json::to_string(tokens)?)?;
        let principal = self.principal(identity, Some(SecretString::from(tokens.access_token.clone())));
        Ok((principal, serde_json::to_string(&claims)?, sealed))
    }

    /// What a session made from a bearer token stores: for the identity provider's
    /// tokens, the groups and expiry in the clear and the token sealed (the Cloud
    /// Controller is asked with it); nothing for local tokens.
    pub fn bearer_session_data(&self, principal: &Principal) -> anyhow::Result<(String, Option<String>)> {
        let Some(token) = &principal.provider_token else { return Ok(("{}".into(), None)) };
        let expires_at = principal.credential.expires_at.map(|at| at.timestamp());
        let claims = SessionClaims { groups: principal.groups.clone(), expires_at };
        let tokens = ProviderTokens { access_token: token.expose_secret().to_owned(), refresh_token: None, expires_at };
        let sealed = self.master.seal(&serde_json::to_string(&tokens)?)?;
        Ok((serde_json::to_string(&claims)?, Some(sealed)))
    }

    fn unseal_tokens(&self, session: &Session) -> Result<Option<ProviderTokens>, AuthError> {
        let Some(sealed) = &session.sealed_tokens else { return Ok(None) };
        let text = self.master.unseal(sealed)?;
        Ok(Some(serde_json::from_str(text.expose_secret()).map_err(anyhow::Error::from)?))
    }
}

#[async_trait]
impl Authenticator for Authority {
    async fn authenticate(&self, token: &str) -> Result<Principal, AuthError> {
        if token.starts_with(LOCAL_TOKEN_PREFIX) {
            return self.local.authenticate(token).await;
        }
        let Some(oidc) = &self.oidc else {
            return Err(AuthError::Unauthenticated("the token is not valid or has expired".into()));
        };
        let key = hash_token(token);
        let now = chrono::Utc::now().timestamp();
        // A remembered answer never outlives the token.
        let cached = self.bearers.get(&key).filter(|i| i.expires_at.is_none_or(|at| at > now));
        let identity = match cached {
            Some(identity) => identity,
            None => {
                let identity = oidc.verify_bearer(token).await.map_err(|e| match e {
                    BearerError::Invalid(e) => AuthError::Unauthenticated(format!("{e:#}")),
                    BearerError::Provider(e) => AuthError::Other(e),
                })?;
                self.bearers.insert(key, identity.clone());
                identity
            }
        };
        Ok(self.principal(&identity, Some(SecretString::from(token.to_owned()))))
    }

    async fn principal_for_session(&self, session: &Session) -> Result<Principal, AuthError> {
        if session.subject.starts_with("local:") {
            return self.local.principal_for_session(session).await;
        }
        let Some(oidc) = &self.oidc else {
            return Err(AuthError::Unauthenticated("single sign-on is not configured any more; sign in again".into()));
        };
        let claims: SessionClaims = serde_json::from_str(&session.claims).unwrap_or_default();
        let expired = claims.expires_at.is_some_and(|at| at <= chrono::Utc::now().timestamp());
        let identity_now = |groups: Vec<String>| Identity {
            sub: session.subject.trim_start_matches("oidc:").to_owned(),
            name: session.user_name.clone(),
            groups,
            expires_at: claims.expires_at,
        };
        if !expired {
            let token = match &self.cloud_controller {
                Some(_) => self.unseal_tokens(session)?.map(|t| SecretString::from(t.access_token)),
                None => None,
            };
            return Ok(self.principal(&identity_now(claims.groups), token));
        }
        // The provider's sign-in expired: renew it with the refresh token, if there is one.
        let refresh = self.unseal_tokens(session)?.and_then(|t| t.refresh_token);
        let Some(refresh) = refresh else {
            return Err(AuthError::Unauthenticated("your sign-in has expired; sign in again".into()));
        };
        let (identity, tokens) = oidc.refresh(&refresh).await.map_err(|e| {
            tracing::info!(user = %session.user_name, error = format!("{e:#}"), "could not refresh a session");
            AuthError::Unauthenticated("your sign-in has expired and could not be renewed; sign in again".into())
        })?;
        let (principal, claims, sealed) = self.session_data(&identity, &tokens)?;
        self.store.touch_session(session.id, Some(&sealed), Some(&claims)).await?;
        Ok(principal)
    }

    async fn role(&self, principal: &Principal, instance: &Instance) -> Result<Option<Role>, AuthError> {
        match (&self.cloud_controller, &principal.provider_token) {
            (Some(cc), Some(token)) => cc.role(&principal.subject, token, &instance.guid).await,
            _ => Ok(principal.role_on(instance)),
        }
    }
}
