//! Users, API tokens (hashes only), workspaces and memberships.

use chatterfly_domain::{WorkspaceRole, WorkspaceSlug};
use sqlx::Row;
use sqlx::any::AnyRow;

use crate::{Result, Store, StoreError, conflict, new_id, now};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub id: String,
    pub email: String,
    pub name: String,
    pub platform_admin: bool,
    pub created_at: String,
}

#[derive(Debug, Clone)]
pub struct NewUser {
    pub email: String,
    pub name: String,
    pub password_hash: Option<String>,
    pub platform_admin: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Workspace {
    pub id: String,
    pub slug: WorkspaceSlug,
    pub name: String,
    pub created_at: String,
}

/// A user's membership, seen from the user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Membership {
    pub workspace: Workspace,
    pub role: WorkspaceRole,
}

/// A workspace's member, seen from the workspace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    pub user_id: String,
    pub email: String,
    pub name: String,
    pub role: WorkspaceRole,
}

/// The user behind an API token, and which token it was.
#[derive(Debug, Clone)]
pub struct TokenOwner {
    pub user: User,
    pub token_id: String,
}

pub(crate) const USER_COLS: &str = "u.id, u.email, u.name, u.platform_admin, u.created_at";
pub(crate) const WS_COLS: &str = "w.id, w.slug, w.name, w.created_at";

pub(crate) fn user(row: &AnyRow) -> Result<User> {
    Ok(User {
        id: row.try_get(0)?,
        email: row.try_get(1)?,
        name: row.try_get(2)?,
        platform_admin: row.try_get::<i64, _>(3)? != 0,
        created_at: row.try_get(4)?,
    })
}

pub(crate) fn workspace(row: &AnyRow, at: usize) -> Result<Workspace> {
    let slug: String = row.try_get(at + 1)?;
    Ok(Workspace {
        id: row.try_get(at)?,
        slug: slug
            .parse()
            .map_err(|_| StoreError::Corrupt(format!("workspace slug `{slug}`")))?,
        name: row.try_get(at + 2)?,
        created_at: row.try_get(at + 3)?,
    })
}

pub(crate) fn role(text: &str) -> Result<WorkspaceRole> {
    text.parse().map_err(|_| StoreError::Corrupt(format!("role `{text}`")))
}

impl Store {
    pub async fn count_users(&self) -> Result<i64> {
        let row = sqlx::query("SELECT COUNT(*) FROM users").fetch_one(&self.pool).await?;
        Ok(row.try_get(0)?)
    }

    pub async fn create_user(&self, new: &NewUser) -> Result<User> {
        let u = User {
            id: new_id(),
            email: new.email.clone(),
            name: new.name.clone(),
            platform_admin: new.platform_admin,
            created_at: now(),
        };
        sqlx::query(
            "INSERT INTO users (id, email, name, password_hash, platform_admin, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(&u.id)
        .bind(&u.email)
        .bind(&u.name)
        .bind(new.password_hash.as_deref())
        .bind(i64::from(u.platform_admin))
        .bind(&u.created_at)
        .execute(&self.writer)
        .await
        .map_err(conflict("email"))?;
        Ok(u)
    }

    pub async fn get_user(&self, id: &str) -> Result<Option<User>> {
        let row = sqlx::query(sql!("SELECT {USER_COLS} FROM users u WHERE u.id = $1"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(user).transpose()
    }

    pub async fn list_users(&self) -> Result<Vec<User>> {
        let rows = sqlx::query(sql!("SELECT {USER_COLS} FROM users u ORDER BY u.created_at, u.id"))
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(user).collect()
    }

    /// Stores a token's hash; the token itself is never given to the store.
    pub async fn create_token(&self, user_id: &str, name: &str, token_hash: &str) -> Result<String> {
        let id = new_id();
        sqlx::query("INSERT INTO api_tokens (id, user_id, name, token_hash, created_at) VALUES ($1, $2, $3, $4, $5)")
            .bind(&id)
            .bind(user_id)
            .bind(name)
            .bind(token_hash)
            .bind(now())
            .execute(&self.writer)
            .await
            .map_err(conflict("token"))?;
        Ok(id)
    }

    /// A user's tokens (id, name, created at), oldest first; never a token or its hash.
    pub async fn list_tokens(&self, user_id: &str) -> Result<Vec<(String, String, String)>> {
        let rows =
            sqlx::query("SELECT id, name, created_at FROM api_tokens WHERE user_id = $1 ORDER BY created_at, id")
                .bind(user_id)
                .fetch_all(&self.pool)
                .await?;
        rows.iter()
            .map(|r| Ok((r.try_get(0)?, r.try_get(1)?, r.try_get(2)?)))
            .collect()
    }

    /// Revokes one of a user's tokens, and ends the web sessions opened with it; `false`
    /// when the user has no such token.
    pub async fn delete_token(&self, user_id: &str, token_id: &str) -> Result<bool> {
        let mut tx = self.write_tx().await?;
        let done = sqlx::query("DELETE FROM api_tokens WHERE id = $1 AND user_id = $2")
            .bind(token_id)
            .bind(user_id)
            .execute(&mut *tx)
            .await?;
        if done.rows_affected() > 0 {
            sqlx::query("DELETE FROM sessions WHERE api_token_id = $1")
                .bind(token_id)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(done.rows_affected() > 0)
    }

    pub async fn user_by_token_hash(&self, token_hash: &str) -> Result<Option<TokenOwner>> {
        let row = sqlx::query(sql!(
            "SELECT {USER_COLS}, t.id FROM api_tokens t JOIN users u ON u.id = t.user_id WHERE t.token_hash = $1"
        ))
        .bind(token_hash)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| {
            Ok(TokenOwner {
                user: user(&r)?,
                token_id: r.try_get(5)?,
            })
        })
        .transpose()
    }

    /// Creates a workspace with `creator` as its first admin.
    pub async fn create_workspace(&self, slug: &WorkspaceSlug, name: &str, creator: &str) -> Result<Workspace> {
        let ws = Workspace {
            id: new_id(),
            slug: slug.clone(),
            name: name.to_owned(),
            created_at: now(),
        };
        let mut tx = self.write_tx().await?;
        sqlx::query("INSERT INTO workspaces (id, slug, name, created_at) VALUES ($1, $2, $3, $4)")
            .bind(&ws.id)
            .bind(ws.slug.as_str())
            .bind(&ws.name)
            .bind(&ws.created_at)
            .execute(&mut *tx)
            .await
            .map_err(conflict("workspace slug"))?;
        sqlx::query("INSERT INTO memberships (workspace_id, user_id, role, created_at) VALUES ($1, $2, 'admin', $3)")
            .bind(&ws.id)
            .bind(creator)
            .bind(&ws.created_at)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(ws)
    }

    pub async fn workspace_by_slug(&self, slug: &str) -> Result<Option<Workspace>> {
        let row = sqlx::query(sql!("SELECT {WS_COLS} FROM workspaces w WHERE w.slug = $1"))
            .bind(slug)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| workspace(&r, 0)).transpose()
    }

    /// A workspace and the user's role in it, in one query; `None` when either is missing.
    pub async fn workspace_role(
        &self,
        slug: &str,
        user_id: &str,
    ) -> Result<Option<(Workspace, Option<WorkspaceRole>)>> {
        let row = sqlx::query(sql!(
            "SELECT {WS_COLS}, m.role FROM workspaces w \
             LEFT JOIN memberships m ON m.workspace_id = w.id AND m.user_id = $2 WHERE w.slug = $1"
        ))
        .bind(slug)
        .bind(user_id)
        .fetch_optional(&self.pool)
        .await?;
        let Some(r) = row else { return Ok(None) };
        let role_text: Option<String> = r.try_get(4)?;
        Ok(Some((workspace(&r, 0)?, role_text.as_deref().map(role).transpose()?)))
    }

    pub async fn list_workspaces(&self) -> Result<Vec<Workspace>> {
        let rows = sqlx::query(sql!("SELECT {WS_COLS} FROM workspaces w ORDER BY w.slug"))
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(|r| workspace(r, 0)).collect()
    }

    pub async fn memberships_of(&self, user_id: &str) -> Result<Vec<Membership>> {
        let rows = sqlx::query(sql!(
            "SELECT {WS_COLS}, m.role FROM memberships m JOIN workspaces w ON w.id = m.workspace_id \
             WHERE m.user_id = $1 ORDER BY w.slug"
        ))
        .bind(user_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(Membership {
                    workspace: workspace(r, 0)?,
                    role: role(&r.try_get::<String, _>(4)?)?,
                })
            })
            .collect()
    }

    pub async fn members_of(&self, workspace_id: &str) -> Result<Vec<Member>> {
        let rows = sqlx::query(
            "SELECT u.id, u.email, u.name, m.role FROM memberships m JOIN users u ON u.id = m.user_id \
             WHERE m.workspace_id = $1 ORDER BY u.email",
        )
        .bind(workspace_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(Member {
                    user_id: r.try_get(0)?,
                    email: r.try_get(1)?,
                    name: r.try_get(2)?,
                    role: role(&r.try_get::<String, _>(3)?)?,
                })
            })
            .collect()
    }

    /// Adds a member or changes a member's role. Refuses to demote the last admin.
    pub async fn set_member(&self, workspace_id: &str, user_id: &str, new_role: WorkspaceRole) -> Result<()> {
        let mut tx = self.write_tx().await?;
        if new_role == WorkspaceRole::Member {
            last_admin_guard(&mut tx, workspace_id, user_id).await?;
        }
        sqlx::query(
            "INSERT INTO memberships (workspace_id, user_id, role, created_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (workspace_id, user_id) DO UPDATE SET role = excluded.role",
        )
        .bind(workspace_id)
        .bind(user_id)
        .bind(new_role.as_str())
        .bind(now())
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Removes a member; `NotFound` when not a member. Refuses to remove the last admin.
    pub async fn remove_member(&self, workspace_id: &str, user_id: &str) -> Result<()> {
        let mut tx = self.write_tx().await?;
        last_admin_guard(&mut tx, workspace_id, user_id).await?;
        let done = sqlx::query("DELETE FROM memberships WHERE workspace_id = $1 AND user_id = $2")
            .bind(workspace_id)
            .bind(user_id)
            .execute(&mut *tx)
            .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        tx.commit().await?;
        Ok(())
    }

    /// First start: the `default` workspace, the platform admin and its token, in one
    /// transaction. Returns `false` (and writes nothing) when any user exists already, which
    /// is also what a replica that lost the race to another one sees.
    pub async fn bootstrap(&self, admin: &NewUser, workspace_slug: &WorkspaceSlug, token_hash: &str) -> Result<bool> {
        let mut tx = self.write_tx().await?;
        let row = sqlx::query("SELECT COUNT(*) FROM users").fetch_one(&mut *tx).await?;
        if row.try_get::<i64, _>(0)? > 0 {
            return Ok(false);
        }
        let (uid, wid, at) = (new_id(), new_id(), now());
        let result: Result<()> = async {
            sqlx::query(
                "INSERT INTO users (id, email, name, password_hash, platform_admin, created_at) VALUES ($1, $2, $3, $4, 1, $5)",
            )
            .bind(&uid)
            .bind(&admin.email)
            .bind(&admin.name)
            .bind(admin.password_hash.as_deref())
            .bind(&at)
            .execute(&mut *tx)
            .await
            .map_err(conflict("email"))?;
            sqlx::query("INSERT INTO workspaces (id, slug, name, created_at) VALUES ($1, $2, $3, $4)")
                .bind(&wid)
                .bind(workspace_slug.as_str())
                .bind("Default")
                .bind(&at)
                .execute(&mut *tx)
                .await
                .map_err(conflict("workspace slug"))?;
            sqlx::query("INSERT INTO memberships (workspace_id, user_id, role, created_at) VALUES ($1, $2, 'admin', $3)")
                .bind(&wid)
                .bind(&uid)
                .bind(&at)
                .execute(&mut *tx)
                .await?;
            sqlx::query("INSERT INTO api_tokens (id, user_id, name, token_hash, created_at) VALUES ($1, $2, 'bootstrap', $3, $4)")
                .bind(new_id())
                .bind(&uid)
                .bind(token_hash)
                .bind(&at)
                .execute(&mut *tx)
                .await
                .map_err(conflict("token"))?;
            Ok(())
        }
        .await;
        match result {
            Ok(()) => {
                tx.commit().await?;
                Ok(true)
            }
            Err(StoreError::Conflict { .. }) => Ok(false),
            Err(e) => Err(e),
        }
    }
}

async fn last_admin_guard(tx: &mut sqlx::Transaction<'_, sqlx::Any>, workspace_id: &str, user_id: &str) -> Result<()> {
    let row = sqlx::query(
        "SELECT \
           (SELECT COUNT(*) FROM memberships WHERE workspace_id = $1 AND role = 'admin'), \
           (SELECT COUNT(*) FROM memberships WHERE workspace_id = $1 AND user_id = $2 AND role = 'admin')",
    )
    .bind(workspace_id)
    .bind(user_id)
    .fetch_one(&mut **tx)
    .await?;
    let (admins, is_admin): (i64, i64) = (row.try_get(0)?, row.try_get(1)?);
    if is_admin > 0 && admins <= 1 {
        return Err(StoreError::Conflict { what: "last admin" });
    }
    Ok(())
}
