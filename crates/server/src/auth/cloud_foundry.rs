//! Cloud Foundry authorization: the Cloud Controller says what a user may do on a
//! service instance (`GET /v2/service_instances/:guid/permissions` with the
//! user's own token). `manage` is needed for every change, `read` (or manage) to look.

use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use store::Role;

use super::AuthError;
use super::cache::TtlCache;

pub struct CloudController {
    api_url: String,
    http: reqwest::Client,
    /// (user subject, instance guid) → the answer.
    cache: TtlCache<(String, String), Option<Role>>,
}

#[derive(Deserialize)]
struct Permissions {
    #[serde(default)]
    manage: bool,
    #[serde(default)]
    read: bool,
}

impl CloudController {
    pub fn new(api_url: &str, http: reqwest::Client, cache_ttl: Duration) -> Self {
        Self { api_url: api_url.trim_end_matches('/').to_owned(), http, cache: TtlCache::new(cache_ttl) }
    }

    pub async fn role(
        &self,
        subject: &str,
        token: &SecretString,
        instance_guid: &str,
    ) -> Result<Option<Role>, AuthError> {
        let key = (subject.to_owned(), instance_guid.to_owned());
        if let Some(role) = self.cache.get(&key) {
            return Ok(role);
        }
        let url = format!("{}/v2/service_instances/{instance_guid}/permissions", self.api_url);
        let res = self
            .http
            .get(&url)
            .bearer_auth(token.expose_secret())
            .send()
            .await
            .map_err(|e| AuthError::Other(anyhow::anyhow!("asking the Cloud Controller for permissions: {e}")))?;
        let role = match res.status().as_u16() {
            200 => {
                let p: Permissions = res.json().await.map_err(|e| {
                    AuthError::Other(anyhow::anyhow!(
                        "the Cloud Controller's permissions answer is not understood: {e}"
                    ))
                })?;
                if p.manage {
                    Some(Role::Manage)
                } else if p.read {
                    Some(Role::Read)
                } else {
                    None
                }
            }
            401 => {
                return Err(AuthError::Unauthenticated(
                    "the Cloud Controller no longer accepts your token; sign in again".into(),
                ));
            }
            // The instance is unknown to the Cloud Controller or hidden from this user.
            403 | 404 => None,
            status => {
                return Err(AuthError::Other(anyhow::anyhow!(
                    "the Cloud Controller answered HTTP {status} to a permissions request"
                )));
            }
        };
        self.cache.insert(key, role);
        Ok(role)
    }
}
