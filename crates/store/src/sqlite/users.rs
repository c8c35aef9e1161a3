//! Local users, grants and tokens in SQLite.

use std::sync::LazyLock;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::rows::UserRow;
use super::stored_time::Stored;
use super::{SqliteStore, as_stored, now};
use crate::models::*;
use crate::{StoreError, StoreResult, UserStore};

#[async_trait]
impl UserStore for SqliteStore {
    async fn create_user(&self, name: &str) -> StoreResult<User> {
        Ok(sqlx::query_as::<_, UserRow>(
            "INSERT INTO users (name, created_at) VALUES (?, ?) RETURNING id, name, password_hash, created_at",
        )
        .bind(name)
        .bind(now())
        .fetch_one(&self.pool)
        .await?
        .into())
    }

    async fn user_by_name(&self, name: &str) -> StoreResult<User> {
        Ok(sqlx::query_as::<_, UserRow>("SELECT id, name, password_hash, created_at FROM users WHERE name = ?")
            .bind(name)
            .fetch_one(&self.pool)
            .await?
            .into())
    }

    async fn list_users(&self) -> StoreResult<Vec<User>> {
        Ok(sqlx::query_as::<_, UserRow>("SELECT id, name, password_hash, created_at FROM users ORDER BY name")
            .fetch_all(&self.pool)
            .await?
            .into_iter()
            .map(Into::into)
            .collect())
    }

    async fn grant(&self, user_id: i64, tenant_id: &str, subtenant_id: Option<&str>, role: Role) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO user_grants (user_id, tenant_id, subtenant_id, role) VALUES (?, ?, ?, ?) \
             ON CONFLICT (user_id, tenant_id, COALESCE(subtenant_id, '')) DO UPDATE SET role = excluded.role",
        )
        .bind(user_id)
        .bind(tenant_id)
        .bind(subtenant_id)
        .bind(role.as_str())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn revoke_grants(&self, user_id: i64, tenant_id: &str, subtenant_id: Option<&str>) -> StoreResult<u64> {
        let done = sqlx::query(
            "DELETE FROM user_grants WHERE user_id = ? AND tenant_id = ? AND (? IS NULL OR subtenant_id = ?)",
        )
        .bind(user_id)
        .bind(tenant_id)
        .bind(subtenant_id)
        .bind(subtenant_id)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected())
    }

    async fn set_password_hash(&self, user_id: i64, password_hash: &str) -> StoreResult<()> {
        let done = sqlx::query("UPDATE users SET password_hash = ? WHERE id = ?")
            .bind(password_hash)
            .bind(user_id)
            .execute(&self.pool)
            .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }

    async fn grants(&self, user_id: i64) -> StoreResult<Vec<Grant>> {
        let rows: Vec<(String, Option<String>, String)> =
            sqlx::query_as("SELECT tenant_id, subtenant_id, role FROM user_grants WHERE user_id = ? ORDER BY id")
                .bind(user_id)
                .fetch_all(&self.pool)
                .await?;
        rows.into_iter()
            .map(|(tenant_id, subtenant_id, role)| Ok(Grant { tenant_id, subtenant_id, role: role.parse()? }))
            .collect()
    }

    async fn create_token(
        &self,
        user_id: i64,
        token_hash: &str,
        expires_at: Option<DateTime<Utc>>,
    ) -> StoreResult<Token> {
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO tokens (user_id, token_hash, created_at, expires_at) VALUES (?, ?, ?, ?) RETURNING id",
        )
        .bind(user_id)
        .bind(token_hash)
        .bind(now())
        .bind(expires_at)
        .fetch_one(&self.pool)
        .await?;
        let sql = format!("SELECT {TOKEN_COLUMNS} FROM tokens t JOIN users u ON u.id = t.user_id WHERE t.id = ?");
        Ok(sqlx::query_as::<_, TokenRow>(sqlx::AssertSqlSafe(sql)).bind(id).fetch_one(&self.pool).await?.into())
    }

    async fn token_by_hash(&self, token_hash: &str) -> StoreResult<(Token, User, Vec<Grant>)> {
        // Every authenticated request reads this: inline, and with the user's
        // grants folded into the same row.
        let token_hash = token_hash.to_owned();
        let now = as_stored(now());
        let row = self
            .readers
            .read(move |c| c.prepare_cached(&TOKEN_BY_HASH)?.query_row((&token_hash, &now), TokenUserRow::read))
            .await?;
        let grants: Vec<(String, Option<String>, String)> = super::folded::parse(&row.grants)?;
        let grants = grants
            .into_iter()
            .map(|(tenant_id, subtenant_id, role)| Ok(Grant { tenant_id, subtenant_id, role: role.parse()? }))
            .collect::<StoreResult<_>>()?;
        let user = User {
            id: row.token.user_id,
            name: row.token.user_name.clone(),
            password_hash: row.password_hash,
            created_at: row.user_created_at,
        };
        Ok((row.token.into(), user, grants))
    }

    async fn list_tokens(&self, user_id: Option<i64>) -> StoreResult<Vec<Token>> {
        let sql = format!(
            "SELECT {TOKEN_COLUMNS} FROM tokens t JOIN users u ON u.id = t.user_id \
             WHERE ? IS NULL OR t.user_id = ? ORDER BY t.id"
        );
        Ok(sqlx::query_as::<_, TokenRow>(sqlx::AssertSqlSafe(sql))
            .bind(user_id)
            .bind(user_id)
            .fetch_all(&self.pool)
            .await?
            .into_iter()
            .map(Into::into)
            .collect())
    }

    async fn revoke_token(&self, id: i64) -> StoreResult<Revoked> {
        let revoked = self.revoke_where("id = ?", id).await?;
        if revoked.tokens == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(revoked)
    }

    async fn revoke_user_tokens(&self, user_id: i64) -> StoreResult<Revoked> {
        self.revoke_where("user_id = ?", user_id).await
    }
}

const TOKEN_COLUMNS: &str = "t.id, t.user_id, u.name AS user_name, t.created_at, t.expires_at";

#[derive(sqlx::FromRow)]
struct TokenRow {
    id: i64,
    user_id: i64,
    user_name: String,
    created_at: DateTime<Utc>,
    expires_at: Option<DateTime<Utc>>,
}

impl From<TokenRow> for Token {
    fn from(r: TokenRow) -> Self {
        Token {
            id: r.id,
            user_id: r.user_id,
            user_name: r.user_name,
            created_at: r.created_at,
            expires_at: r.expires_at,
        }
    }
}

/// A live token by its hash (`?1`) at a time (`?2`, as sqlx writes one), with its
/// user and the user's grants.
static TOKEN_BY_HASH: LazyLock<String> = LazyLock::new(|| {
    format!(
        "SELECT {TOKEN_COLUMNS}, u.password_hash, u.created_at AS user_created_at, \
         (SELECT json_group_array(json_array(tenant_id, subtenant_id, role)) FROM \
          (SELECT tenant_id, subtenant_id, role FROM user_grants WHERE user_id = t.user_id ORDER BY id)) AS grants \
         FROM tokens t JOIN users u ON u.id = t.user_id \
         WHERE t.token_hash = ?1 AND (t.expires_at IS NULL OR t.expires_at > ?2)"
    )
});

struct TokenUserRow {
    token: TokenRow,
    password_hash: Option<String>,
    user_created_at: DateTime<Utc>,
    /// The user's grants, as a JSON array of `[tenant_id, subtenant_id, role]`.
    grants: String,
}

impl TokenUserRow {
    fn read(row: &rusqlite::Row) -> rusqlite::Result<Self> {
        Ok(Self {
            token: TokenRow {
                id: row.get("id")?,
                user_id: row.get("user_id")?,
                user_name: row.get("user_name")?,
                created_at: row.get::<_, Stored>("created_at")?.0,
                expires_at: row.get::<_, Option<Stored>>("expires_at")?.map(|t| t.0),
            },
            password_hash: row.get("password_hash")?,
            user_created_at: row.get::<_, Stored>("user_created_at")?.0,
            grants: row.get("grants")?,
        })
    }
}

impl SqliteStore {
    /// Deletes the tokens matching `condition` (on the tokens table, one `?` bound to
    /// `value`) and the sessions made from them, in one transaction.
    async fn revoke_where(&self, condition: &'static str, value: i64) -> StoreResult<Revoked> {
        let mut tx = self.write().await?;
        let sessions = sqlx::query(sqlx::AssertSqlSafe(format!(
            "DELETE FROM sessions WHERE token_id IN (SELECT id FROM tokens WHERE {condition})"
        )))
        .bind(value)
        .execute(&mut *tx)
        .await?;
        let tokens = sqlx::query(sqlx::AssertSqlSafe(format!("DELETE FROM tokens WHERE {condition}")))
            .bind(value)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(Revoked { tokens: tokens.rows_affected(), sessions: sessions.rows_affected() })
    }
}
