//! Web UI sessions and password sign-in. The store sees only the SHA-256 of a session's
//! cookie value; the CSRF token is kept as it is (alone it grants nothing: it is checked
//! only next to the cookie).

use sqlx::Row;

use crate::tenancy::{USER_COLS, user};
use crate::{Result, Store, new_id, now};

/// The user behind a live session, with the session's CSRF token.
#[derive(Debug, Clone)]
pub struct SessionOwner {
    pub user: crate::User,
    pub session_id: String,
    pub csrf_token: String,
    pub expires_at: String,
}

impl Store {
    /// Opens a session for `user_id` until `expires_at`; removes the expired ones on the way.
    /// `api_token_id`: the API token the person signed in with, if they did: revoking it
    /// ends the session.
    pub async fn create_session(
        &self,
        user_id: &str,
        token_hash: &str,
        csrf_token: &str,
        expires_at: &str,
        api_token_id: Option<&str>,
    ) -> Result<String> {
        let id = new_id();
        let at = now();
        let mut tx = self.write_tx().await?;
        sqlx::query("DELETE FROM sessions WHERE expires_at <= $1")
            .bind(&at)
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "INSERT INTO sessions (id, user_id, token_hash, csrf_token, created_at, expires_at, api_token_id) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(&id)
        .bind(user_id)
        .bind(token_hash)
        .bind(csrf_token)
        .bind(&at)
        .bind(expires_at)
        .bind(api_token_id)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(id)
    }

    /// The holder of a session that has not expired.
    pub async fn user_by_session_hash(&self, token_hash: &str) -> Result<Option<SessionOwner>> {
        let row = sqlx::query(sql!(
            "SELECT {USER_COLS}, s.id, s.csrf_token, s.expires_at FROM sessions s JOIN users u ON u.id = s.user_id \
             WHERE s.token_hash = $1 AND s.expires_at > $2"
        ))
        .bind(token_hash)
        .bind(now())
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| {
            Ok(SessionOwner {
                user: user(&r)?,
                session_id: r.try_get(5)?,
                csrf_token: r.try_get(6)?,
                expires_at: r.try_get(7)?,
            })
        })
        .transpose()
    }

    /// Ends a session (signing out). True when there was one.
    pub async fn delete_session(&self, token_hash: &str) -> Result<bool> {
        let done = sqlx::query("DELETE FROM sessions WHERE token_hash = $1")
            .bind(token_hash)
            .execute(&self.writer)
            .await?;
        Ok(done.rows_affected() > 0)
    }

    /// A user and their password hash, by e-mail address (lowercased by the caller).
    pub async fn user_with_password(&self, email: &str) -> Result<Option<(crate::User, Option<String>)>> {
        let row = sqlx::query(sql!(
            "SELECT {USER_COLS}, u.password_hash FROM users u WHERE u.email = $1"
        ))
        .bind(email)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| Ok((user(&r)?, r.try_get(5)?))).transpose()
    }

    /// Sets (or with `None` clears) a user's password hash; ends the user's sessions.
    /// False when there is no such user.
    pub async fn set_password(&self, user_id: &str, password_hash: Option<&str>) -> Result<bool> {
        let mut tx = self.write_tx().await?;
        let done = sqlx::query("UPDATE users SET password_hash = $1 WHERE id = $2")
            .bind(password_hash)
            .bind(user_id)
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM sessions WHERE user_id = $1")
            .bind(user_id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(done.rows_affected() > 0)
    }
}
