//! Who may do what: platform admins, workspace admins, members. A workspace the caller does
//! not belong to answers 404, exactly like one that does not exist.

use chatterfly_domain::WorkspaceRole;
use chatterfly_store::{User, Workspace};

use super::AppState;
use crate::error::ApiError;

/// The caller's standing in one workspace.
pub struct WorkspaceAccess {
    pub workspace: Workspace,
    pub role: WorkspaceRole,
}

impl WorkspaceAccess {
    /// Resolves `{ws}` for the caller. Platform admins (the operators) act as admins of every
    /// workspace; anyone else must be a member.
    pub async fn resolve(state: &AppState, user: &User, ws: &str) -> Result<Self, ApiError> {
        let found = state.store.workspace_role(ws, &user.id).await?;
        Self::check(user, ws, found)
    }

    /// The same decision from a workspace and role already read (`None`: no workspace has
    /// the slug `ws`).
    pub fn check(user: &User, ws: &str, found: Option<(Workspace, Option<WorkspaceRole>)>) -> Result<Self, ApiError> {
        match found {
            // platform admins are admins of every workspace, whatever role a workspace
            // gave them (a workspace admin cannot demote the operators)
            Some((workspace, _)) if user.platform_admin => Ok(Self {
                workspace,
                role: WorkspaceRole::Admin,
            }),
            Some((workspace, Some(role))) => Ok(Self { workspace, role }),
            _ => Err(ApiError::NotFound(format!("workspace `{}` not found", short(ws)))),
        }
    }

    pub fn require_admin(&self, action: &str) -> Result<(), ApiError> {
        if self.role == WorkspaceRole::Admin {
            Ok(())
        } else {
            Err(ApiError::Forbidden(format!(
                "only workspace admins can {action}; you are a member of `{}`",
                self.workspace.slug
            )))
        }
    }
}

pub fn require_platform_admin(user: &User, action: &str) -> Result<(), ApiError> {
    if user.platform_admin {
        Ok(())
    } else {
        Err(ApiError::Forbidden(format!("only platform admins can {action}")))
    }
}

/// Members see the runs (of agents and workflows) they started (a run's steps may hold
/// what their own accounts fetched); workspace admins see every run.
pub fn own_runs_only<'a>(access: &WorkspaceAccess, caller: &'a crate::extract::Caller) -> Option<&'a str> {
    (access.role != chatterfly_domain::WorkspaceRole::Admin).then_some(caller.user.id.as_str())
}

/// Cuts a path segment echoed in a message.
pub fn short(s: &str) -> String {
    if s.chars().count() > 80 {
        format!("{}…", s.chars().take(80).collect::<String>())
    } else {
        s.to_owned()
    }
}
