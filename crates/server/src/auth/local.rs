//! Local users' API tokens: random, shown once, stored only as a sha256 hash.

use std::sync::Arc;

use async_trait::async_trait;
use base64::Engine;
use rand::RngCore;
use sha2::{Digest, Sha256};
use store::{Store, StoreError};

use super::{AuthError, Authenticator, Principal};

pub struct LocalTokens {
    store: Arc<dyn Store>,
}

impl LocalTokens {
    pub fn new(store: Arc<dyn Store>) -> Self {
        Self { store }
    }
}

/// A new token: 32 random bytes, URL-safe base64, with a recognisable prefix.
pub fn new_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    format!("sd_{}", base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes))
}

/// Tokens carry 256 bits of randomness, so a plain hash is enough to store them safely.
pub fn hash_token(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

#[async_trait]
impl Authenticator for LocalTokens {
    async fn authenticate(&self, token: &str) -> Result<Principal, AuthError> {
        let user = match self.store.user_by_token_hash(&hash_token(token)).await {
            Ok(user) => user,
            Err(StoreError::NotFound) => {
                return Err(AuthError::Unauthenticated("the token is not valid or has expired".into()));
            }
            Err(e) => return Err(AuthError::Other(e.into())),
        };
        let grants = self.store.grants(user.id).await.map_err(|e| AuthError::Other(e.into()))?;
        Ok(Principal { name: user.name, grants })
    }
}
