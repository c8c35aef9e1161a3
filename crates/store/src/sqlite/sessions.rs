//! Sessions and pending single sign-on flows in SQLite.

use std::sync::LazyLock;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::stored_time::Stored;
use super::{SqliteStore, as_stored, now};
use crate::models::*;
use crate::{SessionStore, StoreError, StoreResult};

const SESSION_COLUMNS: &str =
    "id, subject, user_name, csrf_token, claims, sealed_tokens, created_at, last_seen_at, token_id, expires_at";

/// The sessions still within `limits` whose credential has not expired (`?` bound
/// to the active-since and created-since cut-offs, then now).
const LIVE: &str = "last_seen_at > ? AND created_at > ? AND (expires_at IS NULL OR expires_at > ?)";

/// A live session by the hash of its cookie's token (`?`), then [`LIVE`]'s cut-offs.
static SESSION_BY_TOKEN_HASH: LazyLock<String> =
    LazyLock::new(|| format!("SELECT {SESSION_COLUMNS} FROM sessions WHERE token_hash = ? AND {LIVE}"));

#[derive(sqlx::FromRow)]
struct SessionRow {
    id: i64,
    subject: String,
    user_name: String,
    csrf_token: String,
    claims: String,
    sealed_tokens: Option<String>,
    created_at: DateTime<Utc>,
    last_seen_at: DateTime<Utc>,
    token_id: Option<i64>,
    expires_at: Option<DateTime<Utc>>,
}

impl SessionRow {
    fn read(row: &rusqlite::Row) -> rusqlite::Result<Self> {
        Ok(Self {
            id: row.get("id")?,
            subject: row.get("subject")?,
            user_name: row.get("user_name")?,
            csrf_token: row.get("csrf_token")?,
            claims: row.get("claims")?,
            sealed_tokens: row.get("sealed_tokens")?,
            created_at: row.get::<_, Stored>("created_at")?.0,
            last_seen_at: row.get::<_, Stored>("last_seen_at")?.0,
            token_id: row.get("token_id")?,
            expires_at: row.get::<_, Option<Stored>>("expires_at")?.map(|t| t.0),
        })
    }
}

impl From<SessionRow> for Session {
    fn from(r: SessionRow) -> Self {
        Session {
            id: r.id,
            subject: r.subject,
            user_name: r.user_name,
            csrf_token: r.csrf_token,
            claims: r.claims,
            sealed_tokens: r.sealed_tokens,
            created_at: r.created_at,
            last_seen_at: r.last_seen_at,
            token_id: r.token_id,
            expires_at: r.expires_at,
        }
    }
}

#[derive(sqlx::FromRow)]
struct FlowRow {
    state_hash: String,
    browser_hash: String,
    sealed_verifier: String,
    nonce: String,
    return_to: String,
    created_at: DateTime<Utc>,
}

#[async_trait]
impl SessionStore for SqliteStore {
    async fn create_session(&self, new: NewSession) -> StoreResult<Session> {
        let at = now();
        let sql = format!(
            "INSERT INTO sessions (token_hash, subject, user_name, csrf_token, claims, sealed_tokens, created_at, \
             last_seen_at, token_id, bearer_hash, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) \
             RETURNING {SESSION_COLUMNS}"
        );
        let bearer = new.bearer.as_ref();
        let mut tx = self.write().await?;
        let session: Session = sqlx::query_as::<_, SessionRow>(sqlx::AssertSqlSafe(sql))
            .bind(new.token_hash)
            .bind(new.subject)
            .bind(new.user_name)
            .bind(new.csrf_token)
            .bind(new.claims)
            .bind(new.sealed_tokens)
            .bind(at)
            .bind(at)
            .bind(bearer.and_then(|b| b.token_id))
            .bind(bearer.map(|b| b.hash.as_str()))
            .bind(bearer.and_then(|b| b.expires_at))
            .fetch_one(&mut *tx)
            .await?
            .into();
        if let Some(bearer) = bearer {
            sqlx::query(
                "DELETE FROM sessions WHERE bearer_hash = ? AND id NOT IN \
                 (SELECT id FROM sessions WHERE bearer_hash = ? ORDER BY id DESC LIMIT ?)",
            )
            .bind(&bearer.hash)
            .bind(&bearer.hash)
            .bind(i64::from(bearer.max_sessions.max(1)))
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(session)
    }

    async fn session_by_token_hash(&self, token_hash: &str, limits: SessionLimits) -> StoreResult<Session> {
        // Every request from a browser reads this: inline.
        let token_hash = token_hash.to_owned();
        let cut_offs = [as_stored(limits.active_since), as_stored(limits.created_since), as_stored(now())];
        let row = self
            .readers
            .read(move |c| {
                let [active, created, now] = &cut_offs;
                c.prepare_cached(&SESSION_BY_TOKEN_HASH)?
                    .query_row((&token_hash, active, created, now), SessionRow::read)
            })
            .await?;
        Ok(row.into())
    }

    async fn touch_session(&self, id: i64, sealed_tokens: Option<&str>, claims: Option<&str>) -> StoreResult<()> {
        let done = sqlx::query(
            "UPDATE sessions SET last_seen_at = ?, sealed_tokens = COALESCE(?, sealed_tokens), \
             claims = COALESCE(?, claims) WHERE id = ?",
        )
        .bind(now())
        .bind(sealed_tokens)
        .bind(claims)
        .bind(id)
        .execute(&self.pool)
        .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }

    async fn delete_session(&self, id: i64) -> StoreResult<()> {
        sqlx::query("DELETE FROM sessions WHERE id = ?").bind(id).execute(&self.pool).await?;
        Ok(())
    }

    async fn delete_stale_sessions(&self, limits: SessionLimits) -> StoreResult<u64> {
        let mut tx = self.write().await?;
        let sql = format!("DELETE FROM sessions WHERE NOT ({LIVE})");
        let sessions = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(limits.active_since)
            .bind(limits.created_since)
            .bind(now())
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM login_flows WHERE created_at <= ?")
            .bind(limits.active_since)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(sessions.rows_affected())
    }

    async fn create_login_flow(&self, flow: LoginFlow) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO login_flows (state_hash, browser_hash, sealed_verifier, nonce, return_to, created_at) \
             VALUES (?, ?, ?, ?, ?, ?)",
        )
        .bind(flow.state_hash)
        .bind(flow.browser_hash)
        .bind(flow.sealed_verifier)
        .bind(flow.nonce)
        .bind(flow.return_to)
        .bind(flow.created_at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn take_login_flow(&self, state_hash: &str) -> StoreResult<LoginFlow> {
        let row = sqlx::query_as::<_, FlowRow>(
            "DELETE FROM login_flows WHERE state_hash = ? \
             RETURNING state_hash, browser_hash, sealed_verifier, nonce, return_to, created_at",
        )
        .bind(state_hash)
        .fetch_one(&self.pool)
        .await?;
        Ok(LoginFlow {
            state_hash: row.state_hash,
            browser_hash: row.browser_hash,
            sealed_verifier: row.sealed_verifier,
            nonce: row.nonce,
            return_to: row.return_to,
            created_at: row.created_at,
        })
    }
}
