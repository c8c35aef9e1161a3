//! Local users, grants and tokens in SQLite.

use async_trait::async_trait;

use super::rows::UserRow;
use super::{SqliteStore, now};
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

    async fn create_token(&self, user_id: i64, token_hash: &str) -> StoreResult<()> {
        sqlx::query("INSERT INTO tokens (user_id, token_hash, created_at) VALUES (?, ?, ?)")
            .bind(user_id)
            .bind(token_hash)
            .bind(now())
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn user_by_token_hash(&self, token_hash: &str) -> StoreResult<User> {
        Ok(sqlx::query_as::<_, UserRow>(
            "SELECT u.id, u.name, u.password_hash, u.created_at FROM tokens t JOIN users u ON u.id = t.user_id \
             WHERE t.token_hash = ? AND (t.expires_at IS NULL OR t.expires_at > ?)",
        )
        .bind(token_hash)
        .bind(now())
        .fetch_one(&self.pool)
        .await?
        .into())
    }
}
