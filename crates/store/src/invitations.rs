//! Invitations to a workspace, by e-mail address. Accepting one makes the user a member
//! with the invited role and removes the invitation, in one transaction.

use chatterfly_domain::{WorkspaceRole, WorkspaceSlug};
use sqlx::Row;
use sqlx::any::AnyRow;

use crate::{Result, Store, StoreError, new_id, now};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invitation {
    pub id: String,
    pub workspace_id: String,
    pub workspace_slug: WorkspaceSlug,
    pub workspace_name: String,
    pub email: String,
    pub role: WorkspaceRole,
    pub created_at: String,
    pub expires_at: String,
}

const COLS: &str = "i.id, i.workspace_id, w.slug, w.name, i.email, i.role, i.created_at, i.expires_at";

fn invitation(r: &AnyRow) -> Result<Invitation> {
    let slug: String = r.try_get(2)?;
    let role: String = r.try_get(5)?;
    Ok(Invitation {
        id: r.try_get(0)?,
        workspace_id: r.try_get(1)?,
        workspace_slug: slug
            .parse()
            .map_err(|e: chatterfly_domain::NameError| StoreError::Corrupt(e.0))?,
        workspace_name: r.try_get(3)?,
        email: r.try_get(4)?,
        role: role
            .parse()
            .map_err(|e: chatterfly_domain::NameError| StoreError::Corrupt(e.0))?,
        created_at: r.try_get(6)?,
        expires_at: r.try_get(7)?,
    })
}

impl Store {
    /// Invites `email` (already lowercased) to a workspace, or renews the pending
    /// invitation of that address with the new role and expiry.
    pub async fn invite(
        &self,
        workspace_id: &str,
        email: &str,
        role: WorkspaceRole,
        invited_by: &str,
        expires_at: &str,
    ) -> Result<Invitation> {
        let mut tx = self.write_tx().await?;
        sqlx::query(
            "INSERT INTO invitations (id, workspace_id, email, role, invited_by, created_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7) \
             ON CONFLICT (workspace_id, email) DO UPDATE SET role = excluded.role, invited_by = excluded.invited_by, \
             created_at = excluded.created_at, expires_at = excluded.expires_at",
        )
        .bind(new_id())
        .bind(workspace_id)
        .bind(email)
        .bind(role.as_str())
        .bind(invited_by)
        .bind(now())
        .bind(expires_at)
        .execute(&mut *tx)
        .await?;
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {COLS} FROM invitations i JOIN workspaces w ON w.id = i.workspace_id \
             WHERE i.workspace_id = $1 AND i.email = $2"
        )))
        .bind(workspace_id)
        .bind(email)
        .fetch_one(&mut *tx)
        .await?;
        tx.commit().await?;
        invitation(&row)
    }

    /// A workspace's pending invitations, newest first.
    pub async fn invitations_of_workspace(&self, workspace_id: &str) -> Result<Vec<Invitation>> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {COLS} FROM invitations i JOIN workspaces w ON w.id = i.workspace_id \
             WHERE i.workspace_id = $1 ORDER BY i.created_at DESC, i.id"
        )))
        .bind(workspace_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(invitation).collect()
    }

    /// The invitations addressed to `email` that have not expired at `at`.
    pub async fn invitations_for(&self, email: &str, at: &str) -> Result<Vec<Invitation>> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {COLS} FROM invitations i JOIN workspaces w ON w.id = i.workspace_id \
             WHERE i.email = $1 AND i.expires_at > $2 ORDER BY i.created_at DESC, i.id"
        )))
        .bind(email)
        .bind(at)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(invitation).collect()
    }

    /// Withdraws a pending invitation; `NotFound` when the workspace has none with that id.
    pub async fn delete_invitation(&self, workspace_id: &str, id: &str) -> Result<()> {
        let done = sqlx::query("DELETE FROM invitations WHERE workspace_id = $1 AND id = $2")
            .bind(workspace_id)
            .bind(id)
            .execute(&self.writer)
            .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }

    /// Accepts invitation `id` for the user with `email`: membership with the invited role
    /// (an existing membership keeps the higher of the two roles), invitation removed.
    /// `NotFound` unless it exists, is addressed to `email` and has not expired at `at`.
    pub async fn accept_invitation(&self, id: &str, user_id: &str, email: &str, at: &str) -> Result<Invitation> {
        let mut tx = self.write_tx().await?;
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {COLS} FROM invitations i JOIN workspaces w ON w.id = i.workspace_id \
             WHERE i.id = $1 AND i.email = $2 AND i.expires_at > $3"
        )))
        .bind(id)
        .bind(email)
        .bind(at)
        .fetch_optional(&mut *tx)
        .await?
        .ok_or(StoreError::NotFound)?;
        let inv = invitation(&row)?;
        sqlx::query(
            "INSERT INTO memberships (workspace_id, user_id, role, created_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (workspace_id, user_id) DO UPDATE SET role = CASE WHEN memberships.role = 'admin' \
             THEN 'admin' ELSE excluded.role END",
        )
        .bind(&inv.workspace_id)
        .bind(user_id)
        .bind(inv.role.as_str())
        .bind(now())
        .execute(&mut *tx)
        .await?;
        sqlx::query("DELETE FROM invitations WHERE id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(inv)
    }
}
