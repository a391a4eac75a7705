//! Connections and their operations. Credentials arrive here sealed; the store never opens
//! them. Operations live in their own table so one tool can be looked up without reading
//! a whole imported API (GitHub's has 1,200 operations).

use std::collections::BTreeMap;

use chatterfly_domain::{ConnectionDraft, Operation, SourceDocument, SourceKind};
use serde_json::Value;
use sqlx::any::AnyRow;
use sqlx::{Any, Row, Transaction};

use crate::{Result, Store, StoreError, conflict, now};

/// A connection to insert: its id is chosen by the caller, because the sealed credentials
/// are bound to it before the row exists.
pub struct NewConnection<'a> {
    pub id: &'a str,
    pub workspace_id: &'a str,
    pub draft: &'a ConnectionDraft,
    pub auth_sealed: Option<&'a str>,
    pub created_by: Option<&'a str>,
}

/// A stored connection. `draft.operations` is empty when read by [`Store::list_connections`];
/// `operation_count` is always right.
#[derive(Debug, Clone)]
pub struct ConnectionRecord {
    pub id: String,
    pub workspace_id: String,
    pub draft: ConnectionDraft,
    pub operation_count: i64,
    pub auth_sealed: Option<String>,
    pub created_by: Option<String>,
    pub created_at: String,
    pub updated_at: String,
}

pub(crate) const COLS: &str = "c.id, c.workspace_id, c.slug, c.name, c.service_type, c.base_url, c.auth_type, c.auth_public, \
    c.auth_sealed, c.fulfillment, c.participant_role, c.created_by, c.created_at, c.updated_at, \
    (SELECT COUNT(*) FROM connection_operations o2 WHERE o2.connection_id = c.id), c.limits, c.transport, c.mcp_server, c.oauth_provider";
/// The number of columns in [`COLS`].
pub(crate) const COLS_COUNT: usize = 19;

fn corrupt(what: &str) -> impl FnOnce(String) -> StoreError + '_ {
    move |e| StoreError::Corrupt(format!("{what}: {e}"))
}

fn record(row: &AnyRow) -> Result<ConnectionRecord> {
    record_at(row, 0)
}

/// A connection from the [`COLS_COUNT`] columns of [`COLS`] starting at `at`.
pub(crate) fn record_at(row: &AnyRow, at: usize) -> Result<ConnectionRecord> {
    let text = |i: usize| row.try_get::<String, _>(at + i);
    let auth_public: BTreeMap<String, String> =
        serde_json::from_str(&text(7)?).map_err(|e| StoreError::Corrupt(format!("auth_public: {e}")))?;
    let role: Option<String> = row.try_get(at + 10)?;
    let draft = ConnectionDraft {
        slug: text(2)?
            .parse()
            .map_err(|e: chatterfly_domain::NameError| StoreError::Corrupt(e.0))?,
        name: text(3)?,
        service_type: text(4)?.parse().map_err(corrupt("service_type"))?,
        base_url: text(5)?,
        auth_type: text(6)?.parse().map_err(corrupt("auth_type"))?,
        auth_public,
        fulfillment: text(9)?.parse().map_err(corrupt("fulfillment"))?,
        participant_role: role
            .map(|r| r.parse())
            .transpose()
            .map_err(|e: chatterfly_domain::NameError| StoreError::Corrupt(e.0))?,
        operations: Vec::new(),
        limits: row
            .try_get::<Option<String>, _>(at + 15)?
            .map(|l| serde_json::from_str(&l))
            .transpose()
            .map_err(|e| StoreError::Corrupt(format!("limits: {e}")))?,
        source: None,
        transport: row
            .try_get::<Option<String>, _>(at + 16)?
            .map(|t| t.parse())
            .transpose()
            .map_err(corrupt("transport"))?,
        mcp_server: row
            .try_get::<Option<String>, _>(at + 17)?
            .map(|l| serde_json::from_str(&l))
            .transpose()
            .map_err(|e| StoreError::Corrupt(format!("mcp_server: {e}")))?,
        oauth_provider: row
            .try_get::<Option<String>, _>(at + 18)?
            .map(|p| p.parse())
            .transpose()
            .map_err(corrupt("oauth_provider"))?,
    };
    Ok(ConnectionRecord {
        id: text(0)?,
        workspace_id: text(1)?,
        draft,
        auth_sealed: row.try_get(at + 8)?,
        created_by: row.try_get(at + 11)?,
        created_at: text(12)?,
        updated_at: text(13)?,
        operation_count: row.try_get(at + 14)?,
    })
}

fn operation(row: &AnyRow) -> Result<Operation> {
    operation_at(row, 0)
}

/// The operation columns, in the order [`operation_at`] reads them.
pub(crate) const OP_COLS: &str =
    "o.name, o.method, o.path, o.description, o.input_schema, o.output_schema, o.request, o.mcp_tool";
const OP_COUNT: usize = 8;

/// An operation from eight columns starting at `at`: name, method, path, description,
/// input schema, output schema, request mapping, MCP tool name.
pub(crate) fn operation_at(row: &AnyRow, at: usize) -> Result<Operation> {
    let json = |s: String| serde_json::from_str::<Value>(&s).map_err(|e| StoreError::Corrupt(format!("schema: {e}")));
    let output: Option<String> = row.try_get(at + 5)?;
    let request = row
        .try_get::<Option<String>, _>(at + 6)?
        .map(|r| serde_json::from_str(&r))
        .transpose()
        .map_err(|e| StoreError::Corrupt(format!("request mapping: {e}")))?;
    Operation::from_stored(
        &row.try_get::<String, _>(at)?,
        row.try_get::<Option<String>, _>(at + 1)?.as_deref(),
        row.try_get::<Option<String>, _>(at + 2)?.as_deref(),
        row.try_get(at + 3)?,
        json(row.try_get(at + 4)?)?,
        output.map(json).transpose()?,
        request,
        row.try_get::<Option<String>, _>(at + 7)?,
    )
    .map_err(corrupt("operation"))
}

/// Rows per INSERT statement: 10 parameters each stays far below both databases' limits.
const OPS_PER_INSERT: usize = 200;
/// Bytes of serialized schemas per INSERT statement: a statement's arguments are copied
/// on their way to the database (into the driver's arguments, then onto the wire), so a
/// large API goes in slices and those copies stay this small, whatever its size.
const BYTES_PER_INSERT: usize = 1 << 20;

/// One operation's row, its JSON columns serialized.
struct OperationRow {
    name: String,
    method: Option<String>,
    path: Option<String>,
    description: String,
    input_schema: String,
    output_schema: Option<String>,
    request: Option<String>,
    mcp_tool: Option<String>,
}

impl OperationRow {
    fn of(op: &Operation) -> Self {
        Self {
            name: op.name.as_str().to_owned(),
            method: op.method.map(|m| m.as_str().to_owned()),
            path: op.path.as_ref().map(|p| p.as_str().to_owned()),
            description: op.description.clone(),
            input_schema: op.input_schema.to_string(),
            output_schema: op.output_schema.as_ref().map(Value::to_string),
            request: op.request.as_ref().and_then(|r| serde_json::to_string(r).ok()),
            mcp_tool: op.mcp_tool.clone(),
        }
    }

    fn bytes(&self) -> usize {
        self.input_schema.len()
            + self.output_schema.as_ref().map_or(0, String::len)
            + self.request.as_ref().map_or(0, String::len)
            + self.description.len()
    }
}

async fn insert_operations(tx: &mut Transaction<'_, Any>, connection_id: &str, ops: &[Operation]) -> Result<()> {
    let mut rows: Vec<OperationRow> = Vec::new();
    let mut bytes = 0;
    let mut first = 0;
    for (i, op) in ops.iter().enumerate() {
        let row = OperationRow::of(op);
        bytes += row.bytes();
        rows.push(row);
        if rows.len() == OPS_PER_INSERT || bytes >= BYTES_PER_INSERT || i + 1 == ops.len() {
            let next = first + rows.len();
            insert_rows(tx, connection_id, first, std::mem::take(&mut rows)).await?;
            first = next;
            bytes = 0;
        }
    }
    Ok(())
}

/// One INSERT of `rows`, the first at `position` `first`.
async fn insert_rows(
    tx: &mut Transaction<'_, Any>,
    connection_id: &str,
    first: usize,
    rows: Vec<OperationRow>,
) -> Result<()> {
    let mut sql = String::from(
        "INSERT INTO connection_operations \
         (connection_id, position, name, method, path, description, input_schema, output_schema, request, mcp_tool) \
         VALUES ",
    );
    for i in 0..rows.len() {
        let b = i * 10;
        if i > 0 {
            sql.push_str(", ");
        }
        let params: Vec<String> = (1..=10).map(|k| format!("${}", b + k)).collect();
        sql.push('(');
        sql.push_str(&params.join(", "));
        sql.push(')');
    }
    let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
    for (i, row) in rows.into_iter().enumerate() {
        let position = i64::try_from(first + i).unwrap_or(i64::MAX);
        q = q
            .bind(connection_id.to_owned())
            .bind(position)
            .bind(row.name)
            .bind(row.method)
            .bind(row.path)
            .bind(row.description)
            .bind(row.input_schema)
            .bind(row.output_schema)
            .bind(row.request)
            .bind(row.mcp_tool);
    }
    q.execute(&mut **tx).await?;
    Ok(())
}

impl Store {
    /// Brings the stored built-in operations (Gmail's, Telegram's) of every connection of
    /// `service_type` up to this build's definitions: each connection gets exactly `ops`, in
    /// order. Run at start; connections already up to date are not touched. Returns how
    /// many connections changed.
    pub async fn sync_builtin_operations(&self, service_type: &str, ops: &[Operation]) -> Result<u64> {
        let expected: Vec<(String, String, Option<String>, String)> = ops
            .iter()
            .map(|o| {
                (
                    o.name.as_str().to_owned(),
                    o.input_schema.to_string(),
                    o.path.as_ref().map(|p| p.as_str().to_owned()),
                    o.description.clone(),
                )
            })
            .collect();
        let ids: Vec<String> = sqlx::query("SELECT id FROM connections WHERE service_type = $1")
            .bind(service_type)
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(|r| r.try_get::<String, _>(0))
            .collect::<std::result::Result<_, _>>()?;
        let mut changed = 0;
        for id in ids {
            let rows = sqlx::query(
                "SELECT name, input_schema, path, description FROM connection_operations \
                 WHERE connection_id = $1 ORDER BY position",
            )
            .bind(&id)
            .fetch_all(&self.pool)
            .await?;
            let stored: Vec<(String, String, Option<String>, String)> = rows
                .iter()
                .map(|r| -> Result<_> {
                    let schema: String = r.try_get(1)?;
                    // compare parsed: the stored text may order keys differently
                    let schema = serde_json::from_str::<Value>(&schema)
                        .map(|v| v.to_string())
                        .unwrap_or(schema);
                    Ok((
                        r.try_get(0)?,
                        schema,
                        r.try_get(2)?,
                        r.try_get::<Option<String>, _>(3)?.unwrap_or_default(),
                    ))
                })
                .collect::<Result<_>>()?;
            if stored == expected {
                continue;
            }
            let mut tx = self.write_tx().await?;
            // the connection's row first, in the order an edit takes them
            sqlx::query("UPDATE connections SET updated_at = $2 WHERE id = $1")
                .bind(&id)
                .bind(now())
                .execute(&mut *tx)
                .await?;
            sqlx::query("DELETE FROM connection_operations WHERE connection_id = $1")
                .bind(&id)
                .execute(&mut *tx)
                .await?;
            insert_operations(&mut tx, &id, ops).await?;
            tx.commit().await?;
            changed += 1;
        }
        Ok(changed)
    }
}

/// How an update treats the sealed credentials.
pub enum SealedUpdate<'a> {
    Keep,
    Set(Option<&'a str>),
}

impl Store {
    /// How many operations the workspace's connections have: all of them (`slug` `None`)
    /// or one connection's. Cheap: counts rows, reads none.
    pub async fn operation_total(&self, workspace_id: &str, slug: Option<&str>) -> Result<i64> {
        let row = sqlx::query(
            "SELECT COUNT(*) FROM connection_operations o JOIN connections c ON c.id = o.connection_id \
             WHERE c.workspace_id = $1 AND ($2 = '' OR c.slug = $2)",
        )
        .bind(workspace_id)
        .bind(slug.unwrap_or(""))
        .fetch_one(&self.pool)
        .await?;
        Ok(row.try_get::<i64, _>(0)?)
    }

    /// Writes a new connection with its operations and source document, in one
    /// transaction. The record returned carries neither (its `operation_count` is set):
    /// the caller has them, and a large API is not copied.
    pub async fn insert_connection(&self, new: NewConnection<'_>) -> Result<ConnectionRecord> {
        let d = new.draft;
        let at = now();
        let mut tx = self.write_tx().await?;
        sqlx::query(
            "INSERT INTO connections (id, workspace_id, slug, name, service_type, base_url, auth_type, auth_public, \
             auth_sealed, fulfillment, participant_role, created_by, created_at, updated_at, limits, transport, mcp_server, oauth_provider) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $13, $14, $15, $16, $17)",
        )
        .bind(new.id)
        .bind(new.workspace_id)
        .bind(d.slug.as_str())
        .bind(&d.name)
        .bind(d.service_type.as_str())
        .bind(&d.base_url)
        .bind(d.auth_type.as_str())
        .bind(public_json(d))
        .bind(new.auth_sealed)
        .bind(d.fulfillment.as_str())
        .bind(d.participant_role.as_ref().map(|r| r.as_str()))
        .bind(new.created_by)
        .bind(&at)
        .bind(limits_json(d))
        .bind(d.transport.map(|t| t.as_str()))
        .bind(server_json(d))
        .bind(d.oauth_provider.map(|p| p.as_str()))
        .execute(&mut *tx)
        .await
        .map_err(conflict("slug"))?;
        insert_operations(&mut tx, new.id, &d.operations).await?;
        if let Some(source) = &d.source {
            write_source(&mut tx, new.id, source, &at).await?;
        }
        tx.commit().await?;
        Ok(ConnectionRecord {
            id: new.id.to_owned(),
            workspace_id: new.workspace_id.to_owned(),
            draft: d.header(),
            operation_count: i64::try_from(d.operations.len()).unwrap_or(i64::MAX),
            auth_sealed: new.auth_sealed.map(str::to_owned),
            created_by: new.created_by.map(str::to_owned),
            created_at: at.clone(),
            updated_at: at,
        })
    }

    /// Writes a connection's new state; operations are replaced when `ops_changed`. Returns
    /// the new `updated_at`.
    pub async fn update_connection(
        &self,
        id: &str,
        workspace_id: &str,
        d: &ConnectionDraft,
        sealed: SealedUpdate<'_>,
        ops_changed: bool,
    ) -> Result<String> {
        let at = now();
        let mut tx = self.write_tx().await?;
        let (set_sealed, sealed_value) = match sealed {
            SealedUpdate::Keep => (0i64, None),
            SealedUpdate::Set(v) => (1i64, v),
        };
        let done = sqlx::query(
            "UPDATE connections SET slug = $3, name = $4, base_url = $5, auth_type = $6, auth_public = $7, \
             auth_sealed = CASE WHEN $8 = 1 THEN $9 ELSE auth_sealed END, fulfillment = $10, participant_role = $11, \
             updated_at = $12, limits = $13, transport = $14, mcp_server = $15, oauth_provider = $16 WHERE id = $1 AND workspace_id = $2",
        )
        .bind(id)
        .bind(workspace_id)
        .bind(d.slug.as_str())
        .bind(&d.name)
        .bind(&d.base_url)
        .bind(d.auth_type.as_str())
        .bind(public_json(d))
        .bind(set_sealed)
        .bind(sealed_value)
        .bind(d.fulfillment.as_str())
        .bind(d.participant_role.as_ref().map(|r| r.as_str()))
        .bind(&at)
        .bind(limits_json(d))
        .bind(d.transport.map(|t| t.as_str()))
        .bind(server_json(d))
        .bind(d.oauth_provider.map(|p| p.as_str()))
        .execute(&mut *tx)
        .await
        .map_err(conflict("slug"))?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        if ops_changed {
            sqlx::query("DELETE FROM connection_operations WHERE connection_id = $1")
                .bind(id)
                .execute(&mut *tx)
                .await?;
            insert_operations(&mut tx, id, &d.operations).await?;
        }
        if let Some(source) = &d.source {
            write_source(&mut tx, id, source, &at).await?;
        }
        tx.commit().await?;
        Ok(at)
    }

    /// One connection with all its operations.
    pub async fn get_connection(&self, workspace_id: &str, slug: &str) -> Result<Option<ConnectionRecord>> {
        let Some(mut rec) = self.connection_head(workspace_id, slug).await? else {
            return Ok(None);
        };
        rec.draft.operations = self.operations_of(&rec.id).await?;
        Ok(Some(rec))
    }

    /// One connection without its operations.
    pub async fn connection_head(&self, workspace_id: &str, slug: &str) -> Result<Option<ConnectionRecord>> {
        let row = sqlx::query(sql!(
            "SELECT {COLS} FROM connections c WHERE c.workspace_id = $1 AND c.slug = $2"
        ))
        .bind(workspace_id)
        .bind(slug)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(record).transpose()
    }

    /// A connection's slug, by id.
    pub async fn connection_slug_of(&self, id: &str) -> Result<Option<String>> {
        let row = sqlx::query("SELECT slug FROM connections WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| r.try_get(0).map_err(StoreError::from)).transpose()
    }

    /// The connections of a workspace that collect credentials from participants of `role`
    /// (without their operations).
    pub async fn participant_connections(&self, workspace_id: &str, role: &str) -> Result<Vec<ConnectionRecord>> {
        let rows = sqlx::query(sql!(
            "SELECT {COLS} FROM connections c WHERE c.workspace_id = $1 AND c.fulfillment = 'participant' \
             AND c.participant_role = $2 ORDER BY c.name, c.slug"
        ))
        .bind(workspace_id)
        .bind(role)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(record).collect()
    }

    /// A connection with all its operations, by id (a refresh started by the server itself).
    pub async fn connection_by_id(&self, id: &str) -> Result<Option<ConnectionRecord>> {
        let row = sqlx::query(sql!("SELECT {COLS} FROM connections c WHERE c.id = $1"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        let Some(mut rec) = row.as_ref().map(record).transpose()? else {
            return Ok(None);
        };
        rec.draft.operations = self.operations_of(&rec.id).await?;
        Ok(Some(rec))
    }

    /// A connection (without its operations) and one of its operations, in one query: the
    /// tool-call path. `None` when there is no such connection; the operation is `None`
    /// when the connection has no operation of that name.
    pub async fn connection_tool(
        &self,
        workspace_id: &str,
        slug: &str,
        operation_name: &str,
    ) -> Result<Option<(ConnectionRecord, Option<Operation>)>> {
        let row = sqlx::query(sql!(
            "SELECT {COLS}, {OP_COLS} \
             FROM connections c LEFT JOIN connection_operations o ON o.connection_id = c.id AND o.name = $3 \
             WHERE c.workspace_id = $1 AND c.slug = $2"
        ))
        .bind(workspace_id)
        .bind(slug)
        .bind(operation_name)
        .fetch_optional(&self.pool)
        .await?;
        let Some(row) = row else { return Ok(None) };
        let rec = record(&row)?;
        let op = match row.try_get::<Option<String>, _>(COLS_COUNT)? {
            None => None,
            Some(_) => Some(operation_at(&row, COLS_COUNT)?),
        };
        Ok(Some((rec, op)))
    }

    /// Every operation of every connection of a workspace, with the connection's slug, in
    /// slug then position order (the tool picker).
    pub async fn workspace_operations(&self, workspace_id: &str) -> Result<Vec<(String, Operation)>> {
        let rows = sqlx::query(sql!(
            "SELECT {OP_COLS}, c.slug \
             FROM connection_operations o JOIN connections c ON c.id = o.connection_id \
             WHERE c.workspace_id = $1 ORDER BY c.slug, o.position"
        ))
        .bind(workspace_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| Ok((r.try_get::<String, _>(OP_COUNT)?, operation(r)?)))
            .collect()
    }

    /// What changes whenever a workspace's tools may have: its connections' count and
    /// latest change (cheap; what is built from the tools is kept while it is the same).
    pub async fn catalog_stamp(&self, workspace_id: &str) -> Result<String> {
        let row = sqlx::query("SELECT COUNT(*), MAX(updated_at) FROM connections WHERE workspace_id = $1")
            .bind(workspace_id)
            .fetch_one(&self.pool)
            .await?;
        let count: i64 = row.try_get(0)?;
        let latest: Option<String> = row.try_get(1)?;
        Ok(format!("{count}/{}", latest.unwrap_or_default()))
    }

    pub async fn operations_of(&self, connection_id: &str) -> Result<Vec<Operation>> {
        let rows = sqlx::query(sql!(
            "SELECT {OP_COLS} FROM connection_operations o WHERE o.connection_id = $1 ORDER BY o.position"
        ))
        .bind(connection_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(operation).collect()
    }

    /// Every connection of a workspace, without operations, by slug.
    pub async fn list_connections(&self, workspace_id: &str) -> Result<Vec<ConnectionRecord>> {
        let rows = sqlx::query(sql!(
            "SELECT {COLS} FROM connections c WHERE c.workspace_id = $1 ORDER BY c.slug"
        ))
        .bind(workspace_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(record).collect()
    }

    /// Deletes a connection and its operations; `NotFound` when there is none.
    pub async fn delete_connection(&self, workspace_id: &str, slug: &str) -> Result<()> {
        let mut tx = self.write_tx().await?;
        // The connection's row first, as an edit takes it (`update_connection` locks the row,
        // then replaces the operations): taking the operations first could deadlock against
        // a concurrent edit on PostgreSQL (schemathesis met one as a 500).
        let found = sqlx::query("UPDATE connections SET updated_at = updated_at WHERE workspace_id = $1 AND slug = $2")
            .bind(workspace_id)
            .bind(slug)
            .execute(&mut *tx)
            .await?;
        if found.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        // Explicit, so it holds on SQLite connections opened without foreign keys too.
        for child in ["connection_operations", "connection_sources"] {
            sqlx::query(sql!(
                "DELETE FROM {child} WHERE connection_id IN \
                 (SELECT id FROM connections WHERE workspace_id = $1 AND slug = $2)"
            ))
            .bind(workspace_id)
            .bind(slug)
            .execute(&mut *tx)
            .await?;
        }
        let done = sqlx::query("DELETE FROM connections WHERE workspace_id = $1 AND slug = $2")
            .bind(workspace_id)
            .bind(slug)
            .execute(&mut *tx)
            .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        tx.commit().await?;
        Ok(())
    }
}

/// What is stored about a connection's source document, without the document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceMeta {
    pub kind: SourceKind,
    pub sha256: String,
    pub size: i64,
    pub updated_at: String,
}

async fn write_source(
    tx: &mut Transaction<'_, Any>,
    connection_id: &str,
    source: &SourceDocument,
    at: &str,
) -> Result<()> {
    let sha = hex_sha256(source.document.as_bytes());
    let size = i64::try_from(source.document.len()).unwrap_or(i64::MAX);
    sqlx::query("DELETE FROM connection_sources WHERE connection_id = $1")
        .bind(connection_id)
        .execute(&mut **tx)
        .await?;
    sqlx::query(
        "INSERT INTO connection_sources (connection_id, kind, sha256, size, document, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(connection_id)
    .bind(source.kind.as_str())
    .bind(sha)
    .bind(size)
    .bind(&source.document)
    .bind(at)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

fn hex_sha256(bytes: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

impl Store {
    /// What is known about a connection's source document, if it has one.
    pub async fn source_meta(&self, connection_id: &str) -> Result<Option<SourceMeta>> {
        let row = sqlx::query("SELECT kind, sha256, size, updated_at FROM connection_sources WHERE connection_id = $1")
            .bind(connection_id)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| {
            Ok(SourceMeta {
                kind: r.try_get::<String, _>(0)?.parse().map_err(corrupt("source kind"))?,
                sha256: r.try_get(1)?,
                size: r.try_get(2)?,
                updated_at: r.try_get(3)?,
            })
        })
        .transpose()
    }

    /// A connection's source document.
    pub async fn source_document(&self, connection_id: &str) -> Result<Option<SourceDocument>> {
        let row = sqlx::query("SELECT kind, document FROM connection_sources WHERE connection_id = $1")
            .bind(connection_id)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| {
            Ok(SourceDocument {
                kind: r.try_get::<String, _>(0)?.parse().map_err(corrupt("source kind"))?,
                document: r.try_get(1)?,
            })
        })
        .transpose()
    }
}

fn limits_json(d: &ConnectionDraft) -> Option<String> {
    d.limits.as_ref().and_then(|l| serde_json::to_string(l).ok())
}

fn server_json(d: &ConnectionDraft) -> Option<String> {
    d.mcp_server.as_ref().and_then(|s| serde_json::to_string(s).ok())
}

fn public_json(d: &ConnectionDraft) -> String {
    serde_json::to_string(&d.auth_public).unwrap_or_else(|_| "{}".to_owned())
}
