//! svcdash's own users: API tokens (random, shown once, stored as a sha256 hash)
//! and passwords (argon2id).

use std::sync::Arc;

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use base64::Engine;
use rand::RngCore;
use sha2::{Digest, Sha256};
use store::{Store, StoreError};

use super::{AuthError, Principal};

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

/// An argon2id hash (PHC string) of a password, with a fresh salt. Slow on purpose:
/// call it off the async threads.
pub fn hash_password(password: &str) -> anyhow::Result<String> {
    let mut salt = [0u8; 16];
    rand::rng().fill_bytes(&mut salt);
    let salt = SaltString::encode_b64(&salt).map_err(|e| anyhow::anyhow!("encoding a salt: {e}"))?;
    Ok(argon2::Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map_err(|e| anyhow::anyhow!("hashing the password: {e}"))?
        .to_string())
}

/// Whether `password` matches a hash from [`hash_password`]. Slow on purpose.
pub fn verify_password(password: &str, hash: &str) -> bool {
    PasswordHash::new(hash).is_ok_and(|h| argon2::Argon2::default().verify_password(password.as_bytes(), &h).is_ok())
}

/// A local user as a principal, with their current grants.
pub async fn principal(store: &dyn Store, user: store::User) -> Result<Principal, AuthError> {
    let grants = store.grants(user.id).await?;
    Ok(Principal { subject: format!("local:{}", user.name), name: user.name, grants, provider_token: None })
}

impl LocalTokens {
    pub async fn authenticate(&self, token: &str) -> Result<Principal, AuthError> {
        match self.store.user_by_token_hash(&hash_token(token)).await {
            Ok(user) => principal(self.store.as_ref(), user).await,
            Err(StoreError::NotFound) => {
                Err(AuthError::Unauthenticated("the token is not valid or has expired".into()))
            }
            Err(e) => Err(e.into()),
        }
    }

    pub async fn principal_for_session(&self, session: &store::Session) -> Result<Principal, AuthError> {
        let gone = || AuthError::Unauthenticated("the session's user no longer exists; sign in again".into());
        let name = session.subject.strip_prefix("local:").ok_or_else(gone)?;
        match self.store.user_by_name(name).await {
            Ok(user) => principal(self.store.as_ref(), user).await,
            Err(StoreError::NotFound) => Err(gone()),
            Err(e) => Err(e.into()),
        }
    }
}
