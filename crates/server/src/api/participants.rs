//! Participants, for workspace admins: the workspace's participant roles, its participants
//! (each with an onboarding link: issued on create, reissued, revoked), what each has given
//! for which connection (never the values), and revoking it.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use chatterfly_domain::connection::Fulfillment;
use chatterfly_domain::{FieldErrors, ParticipantRole};
use chatterfly_store::{ParticipantRecord, ParticipantWrite, RoleDelete};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::AppState;
use super::access::{WorkspaceAccess, short};
use super::onboarding::{Needs, needs, new_token, onboarding_url, withdraw};
use crate::error::{ApiError, Problem};
use crate::extract::{Body, Caller, Path};

/// How long a link works unless said otherwise.
pub const DEFAULT_LINK_DAYS: i64 = 7;
const MAX_LINK_DAYS: i64 = 90;

fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

async fn admin(state: &AppState, caller: &Caller, ws: &str, action: &str) -> Result<WorkspaceAccess, ApiError> {
    let access = WorkspaceAccess::resolve(state, &caller.user, ws).await?;
    access.require_admin(action)?;
    Ok(access)
}

#[derive(Serialize, ToSchema)]
pub struct RoleView {
    pub name: String,
    pub description: String,
    pub created_at: String,
    /// How many participants have it.
    pub participants: i64,
    /// How many connections collect credentials from it.
    pub connections: i64,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RoleRequest {
    /// Lowercase letters, digits, `_` and `-`, such as `customer`.
    #[schema(pattern = r"^[a-z][a-z0-9_-]{0,62}$")]
    pub name: String,
    #[serde(default)]
    #[schema(max_length = 500)]
    pub description: String,
}

/// The workspace's participant roles (workspace admins).
#[utoipa::path(get, path = "/api/workspaces/{ws}/participant-roles", params(("ws" = String, Path)),
    responses((status = 200, body = [RoleView]), (status = 403, body = Problem), (status = 404, body = Problem)))]
pub async fn list_roles(
    State(state): State<AppState>,
    caller: Caller,
    Path(ws): Path<String>,
) -> Result<Json<Vec<RoleView>>, ApiError> {
    let access = admin(&state, &caller, &ws, "see participant roles").await?;
    let roles = state.store.participant_roles(&access.workspace.id).await?;
    Ok(Json(
        roles
            .into_iter()
            .map(|r| RoleView {
                name: r.name,
                description: r.description,
                created_at: r.created_at,
                participants: r.participants,
                connections: r.connections,
            })
            .collect(),
    ))
}

/// Add a participant role (workspace admins).
#[utoipa::path(post, path = "/api/workspaces/{ws}/participant-roles", params(("ws" = String, Path)),
    request_body = RoleRequest,
    responses((status = 201, body = RoleView), (status = 403, body = Problem), (status = 404, body = Problem),
        (status = 409, body = Problem, description = "The workspace has that role (`role_taken`)"), (status = 422, body = Problem)))]
pub async fn create_role(
    State(state): State<AppState>,
    caller: Caller,
    Path(ws): Path<String>,
    mut body: Body,
) -> Result<(StatusCode, Json<RoleView>), ApiError> {
    let access = admin(&state, &caller, &ws, "add participant roles").await?;
    let req: RoleRequest = body.json(&state).await?;
    let mut errors = FieldErrors::new();
    let name = req
        .name
        .trim()
        .parse::<ParticipantRole>()
        .map_err(|e| errors.push("/name", e.0))
        .ok();
    let description = req.description.trim().to_owned();
    if description.chars().count() > 500 || description.chars().any(char::is_control) {
        errors.push(
            "/description",
            "`description` is at most 500 characters, without control characters",
        );
    }
    let (Some(name), true) = (name, errors.is_empty()) else {
        return Err(errors.into());
    };
    state
        .store
        .create_participant_role(&access.workspace.id, name.as_str(), &description)
        .await
        .map_err(|e| match e {
            chatterfly_store::StoreError::Conflict { .. } => ApiError::Conflict {
                code: "role_taken",
                detail: format!("the workspace has a participant role `{name}` already"),
            },
            other => other.into(),
        })?;
    Ok((
        StatusCode::CREATED,
        Json(RoleView {
            name: name.to_string(),
            description,
            created_at: chatterfly_store::now(),
            participants: 0,
            connections: 0,
        }),
    ))
}

/// Delete a participant role no participant and no connection uses (workspace admins).
#[utoipa::path(delete, path = "/api/workspaces/{ws}/participant-roles/{name}",
    params(("ws" = String, Path), ("name" = String, Path)),
    responses((status = 204), (status = 403, body = Problem), (status = 404, body = Problem),
        (status = 409, body = Problem, description = "Participants or connections use it (`role_in_use`)")))]
pub async fn delete_role(
    State(state): State<AppState>,
    caller: Caller,
    Path((ws, name)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let access = admin(&state, &caller, &ws, "delete participant roles").await?;
    match state.store.delete_participant_role(&access.workspace.id, &name).await? {
        RoleDelete::Deleted => Ok(StatusCode::NO_CONTENT),
        RoleDelete::NotFound => Err(ApiError::NotFound(format!(
            "participant role `{}` not found",
            short(&name)
        ))),
        RoleDelete::InUse {
            participants,
            connections,
        } => Err(ApiError::Conflict {
            code: "role_in_use",
            detail: format!(
                "participant role `{name}` is used by {participants} participant(s) and {connections} connection(s); change or remove them first"
            ),
        }),
    }
}

/// The state of a participant's onboarding link.
#[derive(Serialize, ToSchema)]
pub struct LinkView {
    /// `active`, `expired`, `revoked`, or `none` (never issued).
    pub status: String,
    pub created_at: Option<String>,
    /// Unix seconds.
    pub expires_at: Option<i64>,
}

/// What a participant gave for one connection (never the values).
#[derive(Serialize, ToSchema)]
pub struct GivenView {
    pub connection: String,
    pub name: String,
    /// `key`, `account` or `none`.
    pub kind: String,
    pub set: bool,
    /// `account`: who the account is at the provider, and its status.
    pub identity: Option<String>,
    pub status: Option<String>,
    pub updated_at: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct ParticipantView {
    pub id: String,
    pub name: String,
    pub email: Option<String>,
    pub role: String,
    pub created_at: String,
    pub updated_at: String,
    pub link: LinkView,
    /// The link to send, shown once: when the participant is created and when the link is
    /// reissued (only the token's hash is kept).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub onboarding_url: Option<String>,
    /// Per connection of their role: what they gave.
    pub credentials: Vec<GivenView>,
}

fn link_view(p: &ParticipantRecord) -> LinkView {
    match &p.link {
        None => LinkView {
            status: "none".into(),
            created_at: None,
            expires_at: None,
        },
        Some(l) => LinkView {
            status: if l.revoked_at.is_some() {
                "revoked"
            } else if l.expires_at <= now_secs() {
                "expired"
            } else {
                "active"
            }
            .into(),
            created_at: Some(l.created_at.clone()),
            expires_at: Some(l.expires_at),
        },
    }
}

/// What participants gave, read in bulk: per connection, the keys and accounts by
/// participant id (a few queries per connection, not per participant).
#[derive(Default)]
struct Given {
    connections: std::collections::HashMap<String, Vec<chatterfly_store::ConnectionRecord>>,
    keys: std::collections::HashMap<(String, String), String>,
    accounts: std::collections::HashMap<(String, String), chatterfly_store::AccountRecord>,
}

impl Given {
    async fn load(state: &AppState, workspace_id: &str, roles: Vec<String>) -> Result<Self, ApiError> {
        let mut g = Self::default();
        for role in roles {
            if g.connections.contains_key(&role) {
                continue;
            }
            let conns = state.store.participant_connections(workspace_id, &role).await?;
            for c in &conns {
                g.add_connection(state, c).await?;
            }
            g.connections.insert(role, conns);
        }
        Ok(g)
    }

    async fn add_connection(
        &mut self,
        state: &AppState,
        c: &chatterfly_store::ConnectionRecord,
    ) -> Result<(), ApiError> {
        match needs(c) {
            Needs::Key => {
                for k in state.store.participant_credentials_of_connection(&c.id).await? {
                    self.keys.insert((k.participant_id, c.id.clone()), k.updated_at);
                }
            }
            Needs::Account(p) => {
                for a in state.store.participant_accounts_of(&c.id).await? {
                    if a.provider == p.as_str()
                        && let Some(pid) = a.participant_id.clone()
                    {
                        self.accounts.insert((pid, c.id.clone()), a);
                    }
                }
            }
            Needs::Nothing => {}
        }
        Ok(())
    }

    /// (set, identity, status, updated_at) of a participant for a connection.
    fn of(
        &self,
        participant_id: &str,
        c: &chatterfly_store::ConnectionRecord,
    ) -> (bool, Option<String>, Option<String>, Option<String>) {
        let key = (participant_id.to_owned(), c.id.clone());
        match needs(c) {
            Needs::Key => {
                let at = self.keys.get(&key).cloned();
                (at.is_some(), None, None, at)
            }
            Needs::Account(_) => match self.accounts.get(&key) {
                Some(a) => (
                    a.status == "connected",
                    Some(a.identity.clone()),
                    Some(a.status.clone()),
                    Some(a.updated_at.clone()),
                ),
                None => (false, None, None, None),
            },
            Needs::Nothing => (true, None, None, None),
        }
    }

    fn view(&self, p: ParticipantRecord, url: Option<String>) -> ParticipantView {
        let credentials = self
            .connections
            .get(&p.role)
            .map(|conns| {
                conns
                    .iter()
                    .map(|c| {
                        let (set, identity, status, updated_at) = self.of(&p.id, c);
                        GivenView {
                            connection: c.draft.slug.to_string(),
                            name: c.draft.name.clone(),
                            kind: match needs(c) {
                                Needs::Key => "key",
                                Needs::Account(_) => "account",
                                Needs::Nothing => "none",
                            }
                            .into(),
                            set,
                            identity,
                            status,
                            updated_at,
                        }
                    })
                    .collect()
            })
            .unwrap_or_default();
        ParticipantView {
            link: link_view(&p),
            id: p.id,
            name: p.name,
            email: p.email,
            role: p.role,
            created_at: p.created_at,
            updated_at: p.updated_at,
            onboarding_url: url,
            credentials,
        }
    }
}

async fn view(state: &AppState, p: ParticipantRecord, url: Option<String>) -> Result<ParticipantView, ApiError> {
    let given = Given::load(state, &p.workspace_id, vec![p.role.clone()]).await?;
    Ok(given.view(p, url))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ParticipantRequest {
    #[schema(min_length = 1, max_length = 200)]
    pub name: String,
    #[serde(default)]
    pub email: Option<String>,
    /// One of the workspace's participant roles.
    pub role: String,
    /// How long the onboarding link works, in days (1 to 90; 7 unless said).
    #[serde(default)]
    #[schema(minimum = 1, maximum = 90)]
    pub link_days: Option<i64>,
}

#[derive(Deserialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct ParticipantPatch {
    pub name: Option<String>,
    /// `null` clears it.
    #[serde(default, deserialize_with = "super::double_option")]
    #[schema(value_type = Option<String>)]
    pub email: Option<Option<String>>,
    pub role: Option<String>,
}

async fn check_participant(
    state: &AppState,
    workspace_id: &str,
    name: &str,
    email: Option<&str>,
    role: &str,
) -> Result<(String, Option<String>, String), ApiError> {
    let mut errors = FieldErrors::new();
    let name = chatterfly_domain::connection::check_display_name(name, &mut errors);
    let email = email.map(str::trim).filter(|e| !e.is_empty()).map(str::to_owned);
    if let Some(e) = &email
        && let Err(m) = chatterfly_domain::email::check_address(e)
    {
        errors.push("/email", m);
    }
    let role = match role.trim().parse::<ParticipantRole>() {
        Ok(r) => {
            if state.store.participant_role_exists(workspace_id, r.as_str()).await? {
                Some(r.to_string())
            } else {
                errors.push(
                    "/role",
                    format!("the workspace has no participant role `{r}`; add it under Participants → Roles first"),
                );
                None
            }
        }
        Err(e) => {
            errors.push("/role", e.0);
            None
        }
    };
    match (name, role, errors.is_empty()) {
        (Some(n), Some(r), true) => Ok((n, email, r)),
        _ => Err(errors.into()),
    }
}

async fn issue_link(state: &AppState, participant_id: &str, days: Option<i64>) -> Result<String, ApiError> {
    let days = days.unwrap_or(DEFAULT_LINK_DAYS);
    if !(1..=MAX_LINK_DAYS).contains(&days) {
        return Err(FieldErrors::single("/link_days", format!("a link works 1 to {MAX_LINK_DAYS} days")).into());
    }
    let (token, hash) = new_token();
    state
        .store
        .issue_onboarding_link(participant_id, &hash, now_secs() + days * 86_400)
        .await?;
    Ok(onboarding_url(&state.app_url, &token))
}

/// Add a participant (workspace admins): the answer carries their onboarding link, shown
/// this once.
#[utoipa::path(post, path = "/api/workspaces/{ws}/participants", params(("ws" = String, Path)),
    request_body = ParticipantRequest,
    responses((status = 201, body = ParticipantView), (status = 403, body = Problem), (status = 404, body = Problem),
        (status = 422, body = Problem, description = "A blank name, a bad address, or a role the workspace does not have")))]
pub async fn create_participant(
    State(state): State<AppState>,
    caller: Caller,
    Path(ws): Path<String>,
    mut body: Body,
) -> Result<(StatusCode, Json<ParticipantView>), ApiError> {
    let access = admin(&state, &caller, &ws, "add participants").await?;
    let req: ParticipantRequest = body.json(&state).await?;
    if let Some(d) = req.link_days
        && !(1..=MAX_LINK_DAYS).contains(&d)
    {
        return Err(FieldErrors::single("/link_days", format!("a link works 1 to {MAX_LINK_DAYS} days")).into());
    }
    let (name, email, role) =
        check_participant(&state, &access.workspace.id, &req.name, req.email.as_deref(), &req.role).await?;
    let p = state
        .store
        .create_participant(
            &access.workspace.id,
            &ParticipantWrite {
                name: &name,
                email: email.as_deref(),
                role: &role,
            },
        )
        .await?;
    let url = issue_link(&state, &p.id, req.link_days).await?;
    let p = state
        .store
        .participant(&access.workspace.id, &p.id)
        .await?
        .ok_or_else(|| ApiError::not_found("participant"))?;
    tracing::info!(participant = %p.id, workspace = %access.workspace.id, "participant added");
    Ok((StatusCode::CREATED, Json(view(&state, p, Some(url)).await?)))
}

/// The workspace's participants, with their links' state and what each gave.
#[utoipa::path(get, path = "/api/workspaces/{ws}/participants", params(("ws" = String, Path)),
    responses((status = 200, body = [ParticipantView]), (status = 403, body = Problem), (status = 404, body = Problem)))]
pub async fn list_participants(
    State(state): State<AppState>,
    caller: Caller,
    Path(ws): Path<String>,
) -> Result<Json<Vec<ParticipantView>>, ApiError> {
    let access = admin(&state, &caller, &ws, "see participants").await?;
    let people = state.store.participants(&access.workspace.id).await?;
    let given = Given::load(
        &state,
        &access.workspace.id,
        people.iter().map(|p| p.role.clone()).collect(),
    )
    .await?;
    Ok(Json(people.into_iter().map(|p| given.view(p, None)).collect()))
}

async fn find(state: &AppState, workspace_id: &str, id: &str) -> Result<ParticipantRecord, ApiError> {
    let found = if id.len() <= 64 {
        state.store.participant(workspace_id, id).await?
    } else {
        None
    };
    found.ok_or_else(|| ApiError::NotFound(format!("participant `{}` not found", short(id))))
}

#[utoipa::path(get, path = "/api/workspaces/{ws}/participants/{id}", params(("ws" = String, Path), ("id" = String, Path)),
    responses((status = 200, body = ParticipantView), (status = 403, body = Problem), (status = 404, body = Problem)))]
pub async fn get_participant(
    State(state): State<AppState>,
    caller: Caller,
    Path((ws, id)): Path<(String, String)>,
) -> Result<Json<ParticipantView>, ApiError> {
    let access = admin(&state, &caller, &ws, "see participants").await?;
    let p = find(&state, &access.workspace.id, &id).await?;
    Ok(Json(view(&state, p, None).await?))
}

/// Edit a participant's name, address or role. A new role drops the keys and accounts they
/// gave for the old role's connections (accounts are revoked at the provider).
#[utoipa::path(patch, path = "/api/workspaces/{ws}/participants/{id}", params(("ws" = String, Path), ("id" = String, Path)),
    request_body = ParticipantPatch,
    responses((status = 200, body = ParticipantView), (status = 403, body = Problem), (status = 404, body = Problem), (status = 422, body = Problem)))]
pub async fn update_participant(
    State(state): State<AppState>,
    caller: Caller,
    Path((ws, id)): Path<(String, String)>,
    mut body: Body,
) -> Result<Json<ParticipantView>, ApiError> {
    let access = admin(&state, &caller, &ws, "edit participants").await?;
    let p = find(&state, &access.workspace.id, &id).await?;
    let patch: ParticipantPatch = body.json(&state).await?;
    let name = patch.name.unwrap_or_else(|| p.name.clone());
    let email = match patch.email {
        Some(e) => e,
        None => p.email.clone(),
    };
    let role = patch.role.unwrap_or_else(|| p.role.clone());
    let (name, email, role) = check_participant(&state, &access.workspace.id, &name, email.as_deref(), &role).await?;
    let old_role = p.role.clone();
    // the role changes first: a key being saved at the same moment is then either refused
    // (it is stored only while the role still matches, under the participant's row lock)
    // or already stored, and withdrawn below with the old role's others
    let p = state
        .store
        .update_participant(
            &access.workspace.id,
            &p.id,
            &ParticipantWrite {
                name: &name,
                email: email.as_deref(),
                role: &role,
            },
        )
        .await?;
    // what they gave was for their old role's connections: it goes with the old role
    if role != old_role {
        for c in state
            .store
            .participant_connections(&access.workspace.id, &old_role)
            .await?
        {
            withdraw(&state, &p.id, &c).await?;
        }
    }
    Ok(Json(view(&state, p, None).await?))
}

/// Remove a participant, with their link and everything they gave (accounts are revoked
/// at the provider where they can be).
#[utoipa::path(delete, path = "/api/workspaces/{ws}/participants/{id}", params(("ws" = String, Path), ("id" = String, Path)),
    responses((status = 204), (status = 403, body = Problem), (status = 404, body = Problem)))]
pub async fn delete_participant(
    State(state): State<AppState>,
    caller: Caller,
    Path((ws, id)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let access = admin(&state, &caller, &ws, "remove participants").await?;
    let p = find(&state, &access.workspace.id, &id).await?;
    for c in state.store.participant_connections(&p.workspace_id, &p.role).await? {
        if matches!(needs(&c), Needs::Account(_)) {
            withdraw(&state, &p.id, &c).await?;
        }
    }
    state.store.delete_participant(&access.workspace.id, &p.id).await?;
    tracing::info!(participant = %p.id, "participant removed");
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct LinkRequest {
    /// How long the new link works, in days (1 to 90; 7 unless said).
    #[serde(default)]
    #[schema(minimum = 1, maximum = 90)]
    pub link_days: Option<i64>,
}

/// Issue a new onboarding link (the earlier one stops working); shown this once.
#[utoipa::path(post, path = "/api/workspaces/{ws}/participants/{id}/link", params(("ws" = String, Path), ("id" = String, Path)),
    request_body = Option<LinkRequest>,
    responses((status = 200, body = ParticipantView), (status = 403, body = Problem), (status = 404, body = Problem), (status = 422, body = Problem)))]
pub async fn reissue_link(
    State(state): State<AppState>,
    caller: Caller,
    Path((ws, id)): Path<(String, String)>,
    mut body: Body,
) -> Result<Json<ParticipantView>, ApiError> {
    let access = admin(&state, &caller, &ws, "issue onboarding links").await?;
    let p = find(&state, &access.workspace.id, &id).await?;
    let req: LinkRequest = body.optional_json(&state).await?;
    let url = issue_link(&state, &p.id, req.link_days).await?;
    let p = find(&state, &access.workspace.id, &id).await?;
    Ok(Json(view(&state, p, Some(url)).await?))
}

/// Revoke the participant's onboarding link (what they gave stays until revoked too).
#[utoipa::path(delete, path = "/api/workspaces/{ws}/participants/{id}/link", params(("ws" = String, Path), ("id" = String, Path)),
    responses((status = 204), (status = 403, body = Problem), (status = 404, body = Problem)))]
pub async fn revoke_link(
    State(state): State<AppState>,
    caller: Caller,
    Path((ws, id)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let access = admin(&state, &caller, &ws, "revoke onboarding links").await?;
    let p = find(&state, &access.workspace.id, &id).await?;
    state.store.revoke_onboarding_links(&p.id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Revoke what a participant gave for a connection (a key is deleted; an account is
/// revoked at the provider where it can be, then deleted).
#[utoipa::path(delete, path = "/api/workspaces/{ws}/participants/{id}/credentials/{slug}",
    params(("ws" = String, Path), ("id" = String, Path), ("slug" = String, Path)),
    responses((status = 204), (status = 403, body = Problem), (status = 404, body = Problem)))]
pub async fn revoke_credentials(
    State(state): State<AppState>,
    caller: Caller,
    Path((ws, id, slug)): Path<(String, String, String)>,
) -> Result<StatusCode, ApiError> {
    let access = admin(&state, &caller, &ws, "revoke participants' credentials").await?;
    let p = find(&state, &access.workspace.id, &id).await?;
    let conn = state
        .store
        .connection_head(&access.workspace.id, &slug)
        .await?
        .ok_or_else(|| super::connections::connection_not_found(&slug))?;
    if !withdraw(&state, &p.id, &conn).await? {
        return Err(ApiError::NotFound(format!(
            "participant `{}` has given nothing for `{}`",
            p.id, conn.draft.slug
        )));
    }
    tracing::info!(participant = %p.id, connection = %conn.id, "participant credentials revoked");
    Ok(StatusCode::NO_CONTENT)
}

/// One participant's standing for a connection.
#[derive(Serialize, ToSchema)]
pub struct ConnectionParticipantView {
    pub id: String,
    pub name: String,
    pub email: Option<String>,
    pub set: bool,
    pub identity: Option<String>,
    pub status: Option<String>,
    pub updated_at: Option<String>,
}

/// Which participants of the connection's role have given credentials for it, and when
/// (workspace admins; never the values).
#[utoipa::path(get, path = "/api/workspaces/{ws}/connections/{slug}/participants",
    params(("ws" = String, Path), ("slug" = String, Path)),
    responses((status = 200, body = [ConnectionParticipantView]), (status = 403, body = Problem), (status = 404, body = Problem),
        (status = 409, body = Problem, description = "Not a `participant` connection (`not_participant`)")))]
pub async fn connection_participants(
    State(state): State<AppState>,
    caller: Caller,
    Path((ws, slug)): Path<(String, String)>,
) -> Result<Json<Vec<ConnectionParticipantView>>, ApiError> {
    let access = admin(&state, &caller, &ws, "see participants").await?;
    let conn = state
        .store
        .connection_head(&access.workspace.id, &slug)
        .await?
        .ok_or_else(|| super::connections::connection_not_found(&slug))?;
    if conn.draft.fulfillment != Fulfillment::Participant {
        return Err(ApiError::Coded {
            status: StatusCode::CONFLICT,
            code: "not_participant",
            detail: format!(
                "connection `{}` does not collect participants' credentials (fulfillment `{}`)",
                conn.draft.slug,
                conn.draft.fulfillment.as_str()
            ),
        });
    }
    let role = conn
        .draft
        .participant_role
        .as_ref()
        .map(ToString::to_string)
        .unwrap_or_default();
    let mut given = Given::default();
    given.add_connection(&state, &conn).await?;
    let mut out = Vec::new();
    for p in state.store.participants(&access.workspace.id).await? {
        if p.role != role {
            continue;
        }
        let (set, identity, status, updated_at) = given.of(&p.id, &conn);
        out.push(ConnectionParticipantView {
            id: p.id,
            name: p.name,
            email: p.email,
            set,
            identity,
            status,
            updated_at,
        });
    }
    Ok(Json(out))
}
