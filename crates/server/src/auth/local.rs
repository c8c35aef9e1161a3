//! svcdash's own users: API tokens (random, shown once, stored as a sha256 hash)
//! and passwords (argon2id).

use std::sync::Arc;

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use base64::Engine;
use rand::RngCore;
use sha2::{Digest, Sha256};
use store::{Store, StoreError};

use super::{AuthError, Credential, Principal};

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
    Ok(principal_with(user, grants))
}

fn principal_with(user: store::User, grants: Vec<store::Grant>) -> Principal {
    Principal {
        subject: format!("local:{}", user.name),
        name: user.name,
        grants,
        groups: Vec::new(),
        provider_token: None,
        credential: Credential::default(),
    }
}

impl LocalTokens {
    pub async fn authenticate(&self, token: &str) -> Result<Principal, AuthError> {
        match self.store.token_by_hash(&hash_token(token)).await {
            Ok((token, user, grants)) => {
                let mut principal = principal_with(user, grants);
                principal.credential = Credential { token_id: Some(token.id), expires_at: token.expires_at };
                Ok(principal)
            }
            Err(StoreError::NotFound) => {
                Err(AuthError::Unauthenticated("the token is not valid, has expired or was revoked".into()))
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

/// How long a new API token lasts: `never`, or a number with a unit — `s`, `m`,
/// `h`, `d` or `w` (`90m`, `12h`, `30d`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenLifetime {
    Never,
    For(chrono::Duration),
}

impl TokenLifetime {
    /// The longest lifetime a token may be given short of `never`: ten years.
    const MAX_SECS: i64 = 10 * 366 * 24 * 3600;

    pub fn parse(text: &str) -> Result<Self, String> {
        let text = text.trim();
        if text.eq_ignore_ascii_case("never") {
            return Ok(Self::Never);
        }
        let invalid = || format!("{text:?} is not a duration like 12h, 30d or never");
        let unit_at = text.find(|c: char| !c.is_ascii_digit()).ok_or_else(invalid)?;
        let (number, unit) = text.split_at(unit_at);
        let number: i64 = number.parse().map_err(|_| invalid())?;
        let unit_secs = match unit {
            "s" => 1,
            "m" => 60,
            "h" => 3600,
            "d" => 24 * 3600,
            "w" => 7 * 24 * 3600,
            _ => return Err(invalid()),
        };
        match number.checked_mul(unit_secs) {
            Some(0) => Err(format!("{text:?} is no time at all; use never for a token that does not expire")),
            Some(secs) if secs <= Self::MAX_SECS => Ok(Self::For(chrono::Duration::seconds(secs))),
            _ => Err(format!("{text:?} is longer than ten years; use never for a token that does not expire")),
        }
    }

    /// `[auth] token_expiry_days`: 0 means tokens do not expire.
    pub fn from_days(days: u32) -> Self {
        match days {
            0 => Self::Never,
            days => Self::For(chrono::Duration::days(i64::from(days))),
        }
    }

    /// When a token made at `now` expires.
    pub fn expires_at(self, now: chrono::DateTime<chrono::Utc>) -> Option<chrono::DateTime<chrono::Utc>> {
        match self {
            Self::Never => None,
            Self::For(d) => Some(now + d),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::TokenLifetime;
    use chrono::Duration;

    #[test]
    fn token_lifetimes_parse_from_a_number_and_a_unit() {
        assert_eq!(TokenLifetime::parse("never"), Ok(TokenLifetime::Never));
        assert_eq!(TokenLifetime::parse("12h"), Ok(TokenLifetime::For(Duration::hours(12))));
        assert_eq!(TokenLifetime::parse("30d"), Ok(TokenLifetime::For(Duration::days(30))));
        assert_eq!(TokenLifetime::parse("90m"), Ok(TokenLifetime::For(Duration::minutes(90))));
        assert_eq!(TokenLifetime::parse("2w"), Ok(TokenLifetime::For(Duration::weeks(2))));
        assert_eq!(TokenLifetime::parse("5s"), Ok(TokenLifetime::For(Duration::seconds(5))));
        for bad in ["", "12", "h", "12 h", "-1d", "1.5h", "12hours", "0d", "3700d", "99999999999999999999d"] {
            assert!(TokenLifetime::parse(bad).is_err(), "{bad:?} was accepted");
        }
        assert_eq!(TokenLifetime::from_days(0), TokenLifetime::Never);
        assert_eq!(TokenLifetime::from_days(30), TokenLifetime::For(Duration::days(30)));
    }
}
