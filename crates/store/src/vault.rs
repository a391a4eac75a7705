//! Every sealed column in one list, so start-up can check the keys against all stored data
//! and `keys rotate` can re-seal everything in one transaction. A new sealed column is
//! added to [`SEALED_COLUMNS`] and nothing else needs to remember it.

use sqlx::Row;

use crate::{Result, Store, aad};

struct SealedColumn {
    table: &'static str,
    id_column: &'static str,
    column: &'static str,
    aad: fn(&str) -> Vec<u8>,
}

const SEALED_COLUMNS: &[SealedColumn] = &[
    SealedColumn {
        table: "connections",
        id_column: "id",
        column: "auth_sealed",
        aad: aad::connection_auth,
    },
    SealedColumn {
        table: "service_credentials",
        id_column: "id",
        column: "api_key_sealed",
        aad: aad::service_credential,
    },
    SealedColumn {
        table: "oauth_providers",
        id_column: "id",
        column: "client_secret_sealed",
        aad: aad::oauth_client,
    },
    SealedColumn {
        table: "accounts",
        id_column: "id",
        column: "tokens_sealed",
        aad: aad::account_tokens,
    },
    SealedColumn {
        table: "participant_credentials",
        id_column: "id",
        column: "secrets_sealed",
        aad: aad::participant_credentials,
    },
    SealedColumn {
        table: "oauth_states",
        id_column: "id",
        column: "verifier_sealed",
        aad: aad::oauth_state,
    },
    SealedColumn {
        table: "personal_credentials",
        id_column: "id",
        column: "secrets_sealed",
        aad: aad::personal_credentials,
    },
    SealedColumn {
        table: "workflow_runs",
        id_column: "id",
        column: "credentials_sealed",
        aad: aad::workflow_run_credentials,
    },
    SealedColumn {
        table: "vault_check",
        id_column: "id",
        column: "sealed",
        aad: aad::vault_check,
    },
];

/// One stored sealed value and the associated data it was sealed with.
#[derive(Debug, Clone)]
pub struct SealedValue {
    pub table: &'static str,
    pub row_id: String,
    pub aad: Vec<u8>,
    pub sealed: String,
}

/// What a rewrite did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct VaultRewrite {
    pub examined: usize,
    pub rewritten: usize,
}

const CHECK_ID: &str = "sentinel";

impl SealedColumn {
    fn select(&self) -> String {
        format!(
            "SELECT {id}, {col} FROM {t} WHERE {col} IS NOT NULL",
            id = self.id_column,
            col = self.column,
            t = self.table
        )
    }

    fn value(&self, row: &sqlx::any::AnyRow) -> Result<SealedValue> {
        let row_id: String = row.try_get(0)?;
        Ok(SealedValue {
            table: self.table,
            aad: (self.aad)(&row_id),
            row_id,
            sealed: row.try_get(1)?,
        })
    }
}

impl Store {
    /// Every sealed value in the database.
    pub async fn sealed_values(&self) -> Result<Vec<SealedValue>> {
        let mut out = Vec::new();
        for c in SEALED_COLUMNS {
            let sql = format!(
                "SELECT {id}, {col} FROM {t} WHERE {col} IS NOT NULL",
                id = c.id_column,
                col = c.column,
                t = c.table
            );
            for row in sqlx::query(sqlx::AssertSqlSafe(sql.clone()))
                .fetch_all(&self.pool)
                .await?
            {
                let row_id: String = row.try_get(0)?;
                out.push(SealedValue {
                    table: c.table,
                    aad: (c.aad)(&row_id),
                    row_id,
                    sealed: row.try_get(1)?,
                });
            }
        }
        Ok(out)
    }

    /// The database's vault sentinel, if one was written.
    pub async fn vault_check(&self) -> Result<Option<SealedValue>> {
        let row = sqlx::query("SELECT sealed FROM vault_check WHERE id = $1")
            .bind(CHECK_ID)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| {
            Ok(SealedValue {
                table: "vault_check",
                row_id: CHECK_ID.to_owned(),
                aad: aad::vault_check(CHECK_ID),
                sealed: r.try_get(0)?,
            })
        })
        .transpose()
    }

    /// Writes the sentinel with `seal(aad)` unless one exists (the first writer wins).
    pub async fn ensure_vault_check(&self, seal: impl FnOnce(&[u8]) -> Option<String>) -> Result<()> {
        if self.vault_check().await?.is_some() {
            return Ok(());
        }
        let Some(sealed) = seal(&aad::vault_check(CHECK_ID)) else {
            return Ok(());
        };
        sqlx::query("INSERT INTO vault_check (id, sealed) VALUES ($1, $2) ON CONFLICT (id) DO NOTHING")
            .bind(CHECK_ID)
            .bind(sealed)
            .execute(&self.writer)
            .await?;
        Ok(())
    }

    /// Passes every sealed value through `rewrite` in one transaction; a `Some` replaces
    /// the value. The first error rolls everything back.
    pub async fn rewrite_sealed<E>(
        &self,
        mut rewrite: impl FnMut(&SealedValue) -> std::result::Result<Option<String>, E>,
    ) -> Result<std::result::Result<VaultRewrite, E>> {
        let mut tx = self.write_tx().await?;
        let mut report = VaultRewrite::default();
        for c in SEALED_COLUMNS {
            let update = format!(
                "UPDATE {t} SET {col} = $1 WHERE {id} = $2 AND {col} = $3",
                id = c.id_column,
                col = c.column,
                t = c.table
            );
            for row in sqlx::query(sqlx::AssertSqlSafe(c.select())).fetch_all(&mut *tx).await? {
                let value = c.value(&row)?;
                report.examined += 1;
                match rewrite(&value) {
                    Ok(Some(new)) => {
                        sqlx::query(sqlx::AssertSqlSafe(update.clone()))
                            .bind(new)
                            .bind(&value.row_id)
                            .bind(&value.sealed)
                            .execute(&mut *tx)
                            .await?;
                        report.rewritten += 1;
                    }
                    Ok(None) => {}
                    Err(e) => return Ok(Err(e)),
                }
            }
        }
        tx.commit().await?;
        Ok(Ok(report))
    }
}
