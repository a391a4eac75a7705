//! Participants: people outside the platform who give their own credentials for a
//! workspace's `participant` connections. Their roles, their onboarding links (kept by the
//! SHA-256 of the token only) and the keys they gave (sealed to '<participant>:<connection>').

use sqlx::Row;
use sqlx::any::AnyRow;

use crate::{Result, Store, StoreError, conflict, new_id, now};

/// A participant role of a workspace, with what uses it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParticipantRoleRecord {
    pub name: String,
    pub description: String,
    pub created_at: String,
    pub participants: i64,
    pub connections: i64,
}

/// An onboarding link (its token is never stored).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkRecord {
    pub id: String,
    pub created_at: String,
    /// Unix seconds.
    pub expires_at: i64,
    pub revoked_at: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParticipantRecord {
    pub id: String,
    pub workspace_id: String,
    pub name: String,
    pub email: Option<String>,
    pub role: String,
    pub created_at: String,
    pub updated_at: String,
    /// The latest link issued.
    pub link: Option<LinkRecord>,
}

/// A link found by its hash, with its participant and workspace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkLookup {
    pub link: LinkRecord,
    pub participant: ParticipantRecord,
    pub workspace_slug: String,
    pub workspace_name: String,
}

/// A participant's sealed key for a connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParticipantCredentials {
    pub id: String,
    pub participant_id: String,
    pub connection_id: String,
    pub secrets_sealed: String,
    pub created_at: String,
    pub updated_at: String,
}

/// What a new or edited participant is.
#[derive(Debug, Clone)]
pub struct ParticipantWrite<'a> {
    pub name: &'a str,
    pub email: Option<&'a str>,
    pub role: &'a str,
}

/// Why a role could not be deleted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RoleDelete {
    Deleted,
    NotFound,
    InUse { participants: i64, connections: i64 },
}

/// The row id (and sealing identity) of a participant's key for a connection.
pub fn participant_credentials_id(participant_id: &str, connection_id: &str) -> String {
    format!("{participant_id}:{connection_id}")
}

const PARTICIPANT_COLS: &str = "p.id, p.workspace_id, p.name, p.email, p.role, p.created_at, p.updated_at, \
    l.id, l.created_at, l.expires_at, l.revoked_at";

/// The link that speaks for each participant, joined on: the live one (reissuing leaves
/// at most one), else the latest (two issued in the same millisecond tie on time).
const LATEST_LINK: &str = "LEFT JOIN onboarding_links l ON l.id = (SELECT l2.id FROM onboarding_links l2 \
    WHERE l2.participant_id = p.id ORDER BY CASE WHEN l2.revoked_at IS NULL THEN 0 ELSE 1 END, \
    l2.created_at DESC, l2.id DESC LIMIT 1)";

fn participant(row: &AnyRow) -> Result<ParticipantRecord> {
    let link_id: Option<String> = row.try_get(7)?;
    let link = match link_id {
        Some(id) => Some(LinkRecord {
            id,
            created_at: row.try_get(8)?,
            expires_at: row.try_get(9)?,
            revoked_at: row.try_get(10)?,
        }),
        None => None,
    };
    Ok(ParticipantRecord {
        id: row.try_get(0)?,
        workspace_id: row.try_get(1)?,
        name: row.try_get(2)?,
        email: row.try_get(3)?,
        role: row.try_get(4)?,
        created_at: row.try_get(5)?,
        updated_at: row.try_get(6)?,
        link,
    })
}

fn credentials(row: &AnyRow) -> Result<ParticipantCredentials> {
    Ok(ParticipantCredentials {
        id: row.try_get(0)?,
        participant_id: row.try_get(1)?,
        connection_id: row.try_get(2)?,
        secrets_sealed: row.try_get(3)?,
        created_at: row.try_get(4)?,
        updated_at: row.try_get(5)?,
    })
}

const CREDENTIAL_COLS: &str = "id, participant_id, connection_id, secrets_sealed, created_at, updated_at";

impl Store {
    pub async fn participant_roles(&self, workspace_id: &str) -> Result<Vec<ParticipantRoleRecord>> {
        let rows = sqlx::query(
            "SELECT r.name, r.description, r.created_at, \
             (SELECT COUNT(*) FROM participants p WHERE p.workspace_id = r.workspace_id AND p.role = r.name), \
             (SELECT COUNT(*) FROM connections c WHERE c.workspace_id = r.workspace_id AND c.participant_role = r.name) \
             FROM participant_roles r WHERE r.workspace_id = $1 ORDER BY r.name",
        )
        .bind(workspace_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(ParticipantRoleRecord {
                    name: r.try_get(0)?,
                    description: r.try_get(1)?,
                    created_at: r.try_get(2)?,
                    participants: r.try_get(3)?,
                    connections: r.try_get(4)?,
                })
            })
            .collect()
    }

    pub async fn participant_role_exists(&self, workspace_id: &str, name: &str) -> Result<bool> {
        let row = sqlx::query("SELECT 1 FROM participant_roles WHERE workspace_id = $1 AND name = $2")
            .bind(workspace_id)
            .bind(name)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.is_some())
    }

    /// Creates a role; [`StoreError::Conflict`] when the workspace has it already.
    pub async fn create_participant_role(&self, workspace_id: &str, name: &str, description: &str) -> Result<()> {
        sqlx::query(
            "INSERT INTO participant_roles (workspace_id, name, description, created_at) VALUES ($1, $2, $3, $4)",
        )
        .bind(workspace_id)
        .bind(name)
        .bind(description)
        .bind(now())
        .execute(&self.writer)
        .await
        .map_err(conflict("participant role"))?;
        Ok(())
    }

    /// Deletes a role no participant and no connection uses.
    pub async fn delete_participant_role(&self, workspace_id: &str, name: &str) -> Result<RoleDelete> {
        let mut tx = self.write_tx().await?;
        let row = sqlx::query(
            "SELECT (SELECT COUNT(*) FROM participants WHERE workspace_id = $1 AND role = $2), \
             (SELECT COUNT(*) FROM connections WHERE workspace_id = $1 AND participant_role = $2)",
        )
        .bind(workspace_id)
        .bind(name)
        .fetch_one(&mut *tx)
        .await?;
        let (participants, connections): (i64, i64) = (row.try_get(0)?, row.try_get(1)?);
        if participants > 0 || connections > 0 {
            return Ok(RoleDelete::InUse {
                participants,
                connections,
            });
        }
        let done = sqlx::query("DELETE FROM participant_roles WHERE workspace_id = $1 AND name = $2")
            .bind(workspace_id)
            .bind(name)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(if done.rows_affected() == 0 {
            RoleDelete::NotFound
        } else {
            RoleDelete::Deleted
        })
    }

    pub async fn create_participant(&self, workspace_id: &str, p: &ParticipantWrite<'_>) -> Result<ParticipantRecord> {
        let id = new_id();
        let at = now();
        sqlx::query(
            "INSERT INTO participants (id, workspace_id, name, email, role, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $6)",
        )
        .bind(&id)
        .bind(workspace_id)
        .bind(p.name)
        .bind(p.email)
        .bind(p.role)
        .bind(&at)
        .execute(&self.writer)
        .await?;
        self.participant(workspace_id, &id).await?.ok_or(StoreError::NotFound)
    }

    pub async fn participants(&self, workspace_id: &str) -> Result<Vec<ParticipantRecord>> {
        let rows = sqlx::query(sql!(
            "SELECT {PARTICIPANT_COLS} FROM participants p {LATEST_LINK} WHERE p.workspace_id = $1 \
             ORDER BY p.name, p.id"
        ))
        .bind(workspace_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(participant).collect()
    }

    /// A participant of this workspace (never another's).
    pub async fn participant(&self, workspace_id: &str, id: &str) -> Result<Option<ParticipantRecord>> {
        let row = sqlx::query(sql!(
            "SELECT {PARTICIPANT_COLS} FROM participants p {LATEST_LINK} WHERE p.id = $1 AND p.workspace_id = $2"
        ))
        .bind(id)
        .bind(workspace_id)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(participant).transpose()
    }

    pub async fn update_participant(
        &self,
        workspace_id: &str,
        id: &str,
        p: &ParticipantWrite<'_>,
    ) -> Result<ParticipantRecord> {
        let done = sqlx::query(
            "UPDATE participants SET name = $3, email = $4, role = $5, updated_at = $6 WHERE id = $1 AND workspace_id = $2",
        )
        .bind(id)
        .bind(workspace_id)
        .bind(p.name)
        .bind(p.email)
        .bind(p.role)
        .bind(now())
        .execute(&self.writer)
        .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        self.participant(workspace_id, id).await?.ok_or(StoreError::NotFound)
    }

    /// Deletes a participant with their links, keys and accounts.
    pub async fn delete_participant(&self, workspace_id: &str, id: &str) -> Result<()> {
        let done = sqlx::query("DELETE FROM participants WHERE id = $1 AND workspace_id = $2")
            .bind(id)
            .bind(workspace_id)
            .execute(&self.writer)
            .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }

    /// Issues a link (by its token's hash), revoking the participant's earlier ones.
    pub async fn issue_onboarding_link(&self, participant_id: &str, id: &str, expires_at: i64) -> Result<LinkRecord> {
        let at = now();
        let mut tx = self.write_tx().await?;
        sqlx::query("UPDATE onboarding_links SET revoked_at = $2 WHERE participant_id = $1 AND revoked_at IS NULL")
            .bind(participant_id)
            .bind(&at)
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "INSERT INTO onboarding_links (id, participant_id, created_at, expires_at) VALUES ($1, $2, $3, $4)",
        )
        .bind(id)
        .bind(participant_id)
        .bind(&at)
        .bind(expires_at)
        .execute(&mut *tx)
        .await
        .map_err(conflict("link"))?;
        tx.commit().await?;
        Ok(LinkRecord {
            id: id.to_owned(),
            created_at: at,
            expires_at,
            revoked_at: None,
        })
    }

    /// Revokes every link of a participant; how many were live.
    pub async fn revoke_onboarding_links(&self, participant_id: &str) -> Result<u64> {
        let done =
            sqlx::query("UPDATE onboarding_links SET revoked_at = $2 WHERE participant_id = $1 AND revoked_at IS NULL")
                .bind(participant_id)
                .bind(now())
                .execute(&self.writer)
                .await?;
        Ok(done.rows_affected())
    }

    /// A link by its token's hash, with whose it is (revoked and expired ones too: the
    /// caller says which it is).
    pub async fn onboarding_link(&self, id: &str) -> Result<Option<LinkLookup>> {
        let row = sqlx::query(
            "SELECT p.id, p.workspace_id, p.name, p.email, p.role, p.created_at, p.updated_at, \
             l.id, l.created_at, l.expires_at, l.revoked_at, w.slug, w.name \
             FROM onboarding_links l JOIN participants p ON p.id = l.participant_id \
             JOIN workspaces w ON w.id = p.workspace_id WHERE l.id = $1",
        )
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| {
            let participant = participant(&r)?;
            let link = participant
                .link
                .clone()
                .ok_or_else(|| StoreError::Corrupt("a link row without its link".into()))?;
            Ok(LinkLookup {
                link,
                participant,
                workspace_slug: r.try_get(11)?,
                workspace_name: r.try_get(12)?,
            })
        })
        .transpose()
    }

    pub async fn participant_credentials(
        &self,
        participant_id: &str,
        connection_id: &str,
    ) -> Result<Option<ParticipantCredentials>> {
        let row = sqlx::query(sql!(
            "SELECT {CREDENTIAL_COLS} FROM participant_credentials WHERE id = $1"
        ))
        .bind(participant_credentials_id(participant_id, connection_id))
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(credentials).transpose()
    }

    /// Every key participants gave for a connection.
    pub async fn participant_credentials_of_connection(
        &self,
        connection_id: &str,
    ) -> Result<Vec<ParticipantCredentials>> {
        let rows = sqlx::query(sql!(
            "SELECT {CREDENTIAL_COLS} FROM participant_credentials WHERE connection_id = $1"
        ))
        .bind(connection_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(credentials).collect()
    }

    /// Every key a participant gave.
    pub async fn participant_credentials_of(&self, participant_id: &str) -> Result<Vec<ParticipantCredentials>> {
        let rows = sqlx::query(sql!(
            "SELECT {CREDENTIAL_COLS} FROM participant_credentials WHERE participant_id = $1"
        ))
        .bind(participant_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(credentials).collect()
    }

    /// Saves a participant's key for a connection (sealed with
    /// [`participant_credentials_id`]).
    pub async fn put_participant_credentials(
        &self,
        participant_id: &str,
        connection_id: &str,
        connection_updated_at: &str,
        sealed: &str,
    ) -> Result<Option<ParticipantCredentials>> {
        let id = participant_credentials_id(participant_id, connection_id);
        let at = now();
        // stored only while the connection, as the caller read it (an edit moving its
        // origin or auth drops the keys given for it), still asks the participant's role;
        // the participant's row is taken first, so that a role change at the same moment
        // either comes before (and the insert finds the new role) or waits (and its
        // withdrawal finds this key)
        let mut tx = self.write_tx().await?;
        sqlx::query("UPDATE participants SET updated_at = updated_at WHERE id = $1")
            .bind(participant_id)
            .execute(&mut *tx)
            .await?;
        let done = sqlx::query(
            "INSERT INTO participant_credentials (id, participant_id, connection_id, secrets_sealed, created_at, updated_at) \
             SELECT $1, p.id, c.id, $4, $5, $5 FROM participants p JOIN connections c ON c.workspace_id = p.workspace_id \
             WHERE p.id = $2 AND c.id = $3 AND c.updated_at = $6 AND c.fulfillment = 'participant' AND c.participant_role = p.role \
             ON CONFLICT (id) DO UPDATE SET secrets_sealed = excluded.secrets_sealed, updated_at = excluded.updated_at",
        )
        .bind(&id)
        .bind(participant_id)
        .bind(connection_id)
        .bind(sealed)
        .bind(&at)
        .bind(connection_updated_at)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        if done.rows_affected() == 0 {
            return Ok(None);
        }
        self.participant_credentials(participant_id, connection_id).await
    }

    /// Deletes a participant's key for a connection; whether there was one.
    pub async fn delete_participant_credentials(&self, participant_id: &str, connection_id: &str) -> Result<bool> {
        let done = sqlx::query("DELETE FROM participant_credentials WHERE id = $1")
            .bind(participant_credentials_id(participant_id, connection_id))
            .execute(&self.writer)
            .await?;
        Ok(done.rows_affected() > 0)
    }

    /// Participants' keys and accounts must not outlive a change of the connection's
    /// origin, auth type or role: dropped when an admin moves the connection.
    pub async fn delete_participant_credentials_of(&self, connection_id: &str) -> Result<u64> {
        let keys = sqlx::query("DELETE FROM participant_credentials WHERE connection_id = $1")
            .bind(connection_id)
            .execute(&self.writer)
            .await?;
        let accounts = sqlx::query("DELETE FROM accounts WHERE connection_id = $1 AND participant_id IS NOT NULL")
            .bind(connection_id)
            .execute(&self.writer)
            .await?;
        Ok(keys.rows_affected() + accounts.rows_affected())
    }
}
