//! People's own accounts at OAuth providers (My Accounts), the connect flow's pending
//! states, and personal keys for `caller` connections. Tokens, PKCE verifiers and keys
//! arrive sealed (bound to their row ids, see [`crate::aad`]).
//!
//! Refreshing an account's access token is single-flight across replicas without holding
//! a transaction over the provider's answer: a replica takes a short lease on the row
//! (`refresh_lease`, conditional on the row's `version`), refreshes, and writes the new
//! tokens with `version + 1`; the others wait for the version to change.

use sqlx::Row;
use sqlx::any::AnyRow;

use crate::{Result, Store, StoreError, conflict, now};

/// A stored account (tokens sealed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountRecord {
    pub id: String,
    /// A person's account (My Accounts)…
    pub user_id: Option<String>,
    /// …or a participant's, for one connection.
    pub participant_id: Option<String>,
    pub connection_id: Option<String>,
    pub provider: String,
    pub identity: String,
    /// Granted scopes, as the provider wrote them.
    pub scopes: String,
    /// `connected` or `needs_reconnect`.
    pub status: String,
    pub tokens_sealed: String,
    /// When the access token expires (unix seconds); `None`: it does not say.
    pub expires_at: Option<i64>,
    pub version: i64,
    /// Until when (unix milliseconds) a replica holds the refresh.
    pub refresh_lease: Option<i64>,
    pub connected_at: String,
    pub updated_at: String,
}

const ACCOUNT_COLS: &str = "id, user_id, provider, identity, scopes, status, tokens_sealed, expires_at, version, \
    refresh_lease, connected_at, updated_at, participant_id, connection_id";

fn account(row: &AnyRow) -> Result<AccountRecord> {
    Ok(AccountRecord {
        id: row.try_get(0)?,
        user_id: row.try_get(1)?,
        provider: row.try_get(2)?,
        identity: row.try_get(3)?,
        scopes: row.try_get(4)?,
        status: row.try_get(5)?,
        tokens_sealed: row.try_get(6)?,
        expires_at: row.try_get(7)?,
        version: row.try_get(8)?,
        refresh_lease: row.try_get(9)?,
        connected_at: row.try_get(10)?,
        updated_at: row.try_get(11)?,
        participant_id: row.try_get(12)?,
        connection_id: row.try_get(13)?,
    })
}

/// Whose an account (or a connect flow) is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccountOwner<'a> {
    /// A person's, one per provider (My Accounts).
    User(&'a str),
    /// A participant's, for one connection (onboarding).
    Participant {
        participant_id: &'a str,
        connection_id: &'a str,
    },
}

impl AccountOwner<'_> {
    /// The `WHERE` condition naming this owner, its values at `$n` and `$n+1`.
    fn condition(&self, n: usize) -> String {
        match self {
            Self::User(_) => format!("user_id = ${n} AND ${} = ${}", n + 1, n + 1),
            Self::Participant { .. } => format!("participant_id = ${n} AND connection_id = ${}", n + 1),
        }
    }

    fn values(&self) -> (&str, &str) {
        match self {
            Self::User(u) => (u, ""),
            Self::Participant {
                participant_id,
                connection_id,
            } => (participant_id, connection_id),
        }
    }
}

/// A connect flow waiting for its callback.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OAuthState {
    pub id: String,
    /// A person's flow…
    pub user_id: Option<String>,
    /// …or a participant's, for one connection, through one onboarding link, in the
    /// browser whose cookie hashes to `browser_hash`.
    pub participant_id: Option<String>,
    pub connection_id: Option<String>,
    pub link_id: Option<String>,
    pub browser_hash: Option<String>,
    pub provider: String,
    pub scopes: String,
    pub verifier_sealed: String,
    pub expires_at: i64,
}

/// What the callback found for its `state`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StateTaken {
    /// Never issued (or long gone).
    Unknown,
    /// Issued and consumed before: a replay (of a participant's flow or a person's).
    Used { participant: bool },
    /// Consumed now; the caller checks its user and expiry.
    Taken(Box<OAuthState>),
}

/// What the connect flow writes for an account.
#[derive(Debug, Clone)]
pub struct AccountWrite<'a> {
    pub id: &'a str,
    pub owner: AccountOwner<'a>,
    pub provider: &'a str,
    pub identity: &'a str,
    pub scopes: &'a str,
    pub tokens_sealed: &'a str,
    pub expires_at: Option<i64>,
}

/// A person's saved key for a connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PersonalCredentials {
    pub id: String,
    pub secrets_sealed: String,
    pub updated_at: String,
}

/// The row id (and sealing identity) of a person's key for a connection.
pub fn personal_credentials_id(user_id: &str, connection_id: &str) -> String {
    format!("{user_id}:{connection_id}")
}

/// Connect flows one person may have in progress at once.
pub const MAX_PENDING_STATES: i64 = 10;

impl Store {
    /// Records a connect flow's state (by its hash) and drops states expired a day ago.
    pub async fn create_oauth_state(&self, state: &OAuthState) -> Result<()> {
        sqlx::query("DELETE FROM oauth_states WHERE expires_at < $1")
            .bind(state.expires_at - 86_400)
            .execute(&self.writer)
            .await?;
        sqlx::query(
            "INSERT INTO oauth_states (id, user_id, participant_id, connection_id, link_id, browser_hash, provider, \
             scopes, verifier_sealed, created_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
        )
        .bind(&state.id)
        .bind(&state.user_id)
        .bind(&state.participant_id)
        .bind(&state.connection_id)
        .bind(&state.link_id)
        .bind(&state.browser_hash)
        .bind(&state.provider)
        .bind(&state.scopes)
        .bind(&state.verifier_sealed)
        .bind(now())
        .bind(state.expires_at)
        .execute(&self.writer)
        .await
        .map_err(conflict("state"))?;
        // a person (or participant) has at most a few flows in progress: the oldest beyond
        // them are dropped
        let (column, owner) = match (&state.user_id, &state.participant_id) {
            (Some(u), _) => ("user_id", u),
            (None, Some(p)) => ("participant_id", p),
            (None, None) => return Ok(()),
        };
        sqlx::query(sql!(
            "DELETE FROM oauth_states WHERE {column} = $1 AND used_at IS NULL AND id NOT IN \
             (SELECT id FROM oauth_states WHERE {column} = $1 AND used_at IS NULL ORDER BY created_at DESC, id LIMIT $2)"
        ))
        .bind(owner)
        .bind(MAX_PENDING_STATES)
        .execute(&self.writer)
        .await?;
        Ok(())
    }

    /// Consumes a state: exactly one callback can take it.
    pub async fn take_oauth_state(&self, id: &str) -> Result<StateTaken> {
        let done = sqlx::query("UPDATE oauth_states SET used_at = $2 WHERE id = $1 AND used_at IS NULL")
            .bind(id)
            .bind(now())
            .execute(&self.writer)
            .await?;
        let row = sqlx::query(
            "SELECT id, user_id, provider, scopes, verifier_sealed, expires_at, participant_id, connection_id, \
             link_id, browser_hash FROM oauth_states WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        Ok(match (row, done.rows_affected()) {
            (None, _) => StateTaken::Unknown,
            (Some(row), 0) => StateTaken::Used {
                participant: row.try_get::<Option<String>, _>(6)?.is_some(),
            },
            (Some(row), _) => StateTaken::Taken(Box::new(OAuthState {
                id: row.try_get(0)?,
                user_id: row.try_get(1)?,
                provider: row.try_get(2)?,
                scopes: row.try_get(3)?,
                verifier_sealed: row.try_get(4)?,
                expires_at: row.try_get(5)?,
                participant_id: row.try_get(6)?,
                connection_id: row.try_get(7)?,
                link_id: row.try_get(8)?,
                browser_hash: row.try_get(9)?,
            })),
        })
    }

    pub async fn accounts_of(&self, user_id: &str) -> Result<Vec<AccountRecord>> {
        let rows = sqlx::query(sql!(
            "SELECT {ACCOUNT_COLS} FROM accounts WHERE user_id = $1 ORDER BY provider"
        ))
        .bind(user_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(account).collect()
    }

    /// A person's account at a provider, or a participant's for a connection.
    pub async fn account_for(&self, owner: AccountOwner<'_>, provider: &str) -> Result<Option<AccountRecord>> {
        let (a, b) = owner.values();
        let row = sqlx::query(sql!(
            "SELECT {ACCOUNT_COLS} FROM accounts WHERE {} AND provider = $3",
            owner.condition(1)
        ))
        .bind(a)
        .bind(b)
        .bind(provider)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(account).transpose()
    }

    /// The accounts participants connected for a connection.
    pub async fn participant_accounts_of(&self, connection_id: &str) -> Result<Vec<AccountRecord>> {
        let rows = sqlx::query(sql!(
            "SELECT {ACCOUNT_COLS} FROM accounts WHERE connection_id = $1 AND participant_id IS NOT NULL"
        ))
        .bind(connection_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(account).collect()
    }

    /// Deletes a participant's account for a connection; whether there was one.
    pub async fn delete_participant_account(&self, participant_id: &str, connection_id: &str) -> Result<bool> {
        let done = sqlx::query("DELETE FROM accounts WHERE participant_id = $1 AND connection_id = $2")
            .bind(participant_id)
            .bind(connection_id)
            .execute(&self.writer)
            .await?;
        Ok(done.rows_affected() > 0)
    }

    /// An account by id, only if it is this person's.
    pub async fn account(&self, user_id: &str, id: &str) -> Result<Option<AccountRecord>> {
        let row = sqlx::query(sql!(
            "SELECT {ACCOUNT_COLS} FROM accounts WHERE id = $1 AND user_id = $2"
        ))
        .bind(id)
        .bind(user_id)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(account).transpose()
    }

    /// Creates the account, or replaces the tokens, identity and scopes of the one with
    /// this id (a reconnect: status back to `connected`). A concurrent first connect of the
    /// same person and provider under another id is a [`StoreError::Conflict`].
    pub async fn save_account(&self, a: &AccountWrite<'_>) -> Result<AccountRecord> {
        let at = now();
        let (owner_a, owner_b) = a.owner.values();
        let updated = sqlx::query(sql!(
            "UPDATE accounts SET identity = $2, scopes = $3, status = 'connected', tokens_sealed = $4, \
             expires_at = $5, version = version + 1, refresh_lease = NULL, updated_at = $6 \
             WHERE id = $1 AND {}",
            a.owner.condition(7)
        ))
        .bind(a.id)
        .bind(a.identity)
        .bind(a.scopes)
        .bind(a.tokens_sealed)
        .bind(a.expires_at)
        .bind(&at)
        .bind(owner_a)
        .bind(owner_b)
        .execute(&self.writer)
        .await?;
        if updated.rows_affected() == 0 {
            let (user, participant, connection) = match a.owner {
                AccountOwner::User(u) => (Some(u), None, None),
                AccountOwner::Participant {
                    participant_id,
                    connection_id,
                } => (None, Some(participant_id), Some(connection_id)),
            };
            sqlx::query(
                "INSERT INTO accounts (id, user_id, participant_id, connection_id, provider, identity, scopes, status, \
                 tokens_sealed, expires_at, version, refresh_lease, connected_at, updated_at) \
                 VALUES ($1, $2, $9, $10, $3, $4, $5, 'connected', $6, $7, 1, NULL, $8, $8)",
            )
            .bind(a.id)
            .bind(user)
            .bind(a.provider)
            .bind(a.identity)
            .bind(a.scopes)
            .bind(a.tokens_sealed)
            .bind(a.expires_at)
            .bind(&at)
            .bind(participant)
            .bind(connection)
            .execute(&self.writer)
            .await
            .map_err(conflict("account"))?;
        }
        self.account_for(a.owner, a.provider).await?.ok_or(StoreError::NotFound)
    }

    pub async fn delete_account(&self, user_id: &str, id: &str) -> Result<()> {
        let done = sqlx::query("DELETE FROM accounts WHERE id = $1 AND user_id = $2")
            .bind(id)
            .bind(user_id)
            .execute(&self.writer)
            .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }

    /// Takes the refresh of an account at `version` until `until_ms`, unless another
    /// replica holds an unexpired lease or the tokens changed since `version` was read.
    pub async fn lease_refresh(&self, id: &str, version: i64, now_ms: i64, until_ms: i64) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE accounts SET refresh_lease = $4 WHERE id = $1 AND version = $2 \
             AND status = 'connected' AND (refresh_lease IS NULL OR refresh_lease < $3)",
        )
        .bind(id)
        .bind(version)
        .bind(now_ms)
        .bind(until_ms)
        .execute(&self.writer)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Writes refreshed tokens (the lease holder only: `version` must still match).
    pub async fn store_refreshed(
        &self,
        id: &str,
        version: i64,
        tokens_sealed: &str,
        expires_at: Option<i64>,
        scopes: Option<&str>,
    ) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE accounts SET tokens_sealed = $3, expires_at = $4, scopes = COALESCE($5, scopes), \
             version = version + 1, refresh_lease = NULL, updated_at = $6 WHERE id = $1 AND version = $2",
        )
        .bind(id)
        .bind(version)
        .bind(tokens_sealed)
        .bind(expires_at)
        .bind(scopes)
        .bind(now())
        .execute(&self.writer)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// The provider refused the refresh: the person must connect again.
    pub async fn mark_needs_reconnect(&self, id: &str, version: i64) -> Result<()> {
        sqlx::query(
            "UPDATE accounts SET status = 'needs_reconnect', version = version + 1, refresh_lease = NULL, \
             updated_at = $3 WHERE id = $1 AND version = $2",
        )
        .bind(id)
        .bind(version)
        .bind(now())
        .execute(&self.writer)
        .await?;
        Ok(())
    }

    /// Gives up a lease without new tokens (the provider could not be reached).
    pub async fn release_refresh(&self, id: &str, version: i64) -> Result<()> {
        sqlx::query("UPDATE accounts SET refresh_lease = NULL WHERE id = $1 AND version = $2")
            .bind(id)
            .bind(version)
            .execute(&self.writer)
            .await?;
        Ok(())
    }

    pub async fn personal_credentials(
        &self,
        user_id: &str,
        connection_id: &str,
    ) -> Result<Option<PersonalCredentials>> {
        let row = sqlx::query("SELECT id, secrets_sealed, updated_at FROM personal_credentials WHERE id = $1")
            .bind(personal_credentials_id(user_id, connection_id))
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| {
            Ok(PersonalCredentials {
                id: r.try_get(0)?,
                secrets_sealed: r.try_get(1)?,
                updated_at: r.try_get(2)?,
            })
        })
        .transpose()
    }

    /// Saves a person's key for a connection (sealed with [`personal_credentials_id`]).
    pub async fn put_personal_credentials(
        &self,
        user_id: &str,
        connection_id: &str,
        sealed: &str,
    ) -> Result<PersonalCredentials> {
        let id = personal_credentials_id(user_id, connection_id);
        let at = now();
        sqlx::query(
            "INSERT INTO personal_credentials (id, user_id, connection_id, secrets_sealed, updated_at) \
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (id) DO UPDATE SET secrets_sealed = excluded.secrets_sealed, \
             updated_at = excluded.updated_at",
        )
        .bind(&id)
        .bind(user_id)
        .bind(connection_id)
        .bind(sealed)
        .bind(&at)
        .execute(&self.writer)
        .await?;
        Ok(PersonalCredentials {
            id,
            secrets_sealed: sealed.to_owned(),
            updated_at: at,
        })
    }

    pub async fn delete_personal_credentials(&self, user_id: &str, connection_id: &str) -> Result<()> {
        let done = sqlx::query("DELETE FROM personal_credentials WHERE id = $1")
            .bind(personal_credentials_id(user_id, connection_id))
            .execute(&self.writer)
            .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }

    /// Personal keys must not outlive a change of the connection's origin or auth type:
    /// dropped when an admin moves the connection (as its own stored key is).
    pub async fn delete_personal_credentials_of(&self, connection_id: &str) -> Result<u64> {
        let done = sqlx::query("DELETE FROM personal_credentials WHERE connection_id = $1")
            .bind(connection_id)
            .execute(&self.writer)
            .await?;
        Ok(done.rows_affected())
    }
}
