//! Chatterfly's domain: the names, shapes and rules of connections, with no IO.
//!
//! Everything that comes from outside (a request body, a stored row) is parsed into these
//! types once, at the edge; a value of a type here is valid by construction, so nothing
//! above re-checks it. This crate never touches a socket, a file, a database or a clock,
//! and never formats a secret value into a message.

pub mod auth;
pub mod connection;
pub mod density;
pub mod email;
pub mod error;
pub mod mapping;
pub mod names;
pub mod operation;
pub mod request;
pub mod service;
pub mod telegram;
pub mod template;

pub use auth::{AuthSpec, AuthType, SecretFields, auth_response};
pub use connection::{
    ConnectionDraft, ConnectionInput, ConnectionLimits, ConnectionPatch, Fulfillment, McpServerInfo, McpTransport,
    SecretsChange, ServiceType, SourceDocument, SourceKind, builtin_operations, check_http_url,
};
pub use error::{FieldError, FieldErrors};
pub use mapping::{ArgumentTarget, Location, QueryStyle, RequestMapping};
pub use names::{NameError, OperationName, ParticipantRole, Slug, ToolName, WorkspaceRole, WorkspaceSlug};
pub use operation::{HttpMethod, Operation, OperationInput, OperationKind, check_mcp_tool_name};
pub use request::{Body, BuildError, BuiltRequest, build_request, encode_component};
pub use service::{Endpoints, OAuthProvider, Service, Tier, gmail_operation_scopes, split_scopes};
pub use template::PathTemplate;
