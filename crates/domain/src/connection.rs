//! Connections: what a client sends to create or edit one, and the rules that turn it into a
//! valid [`ConnectionDraft`] (per service type, per fulfillment, write-only secrets).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::str::FromStr;

use serde::Deserialize;
use serde_json::{Value, json};

use crate::auth::{AuthSpec, AuthType, SecretFields};
use crate::error::FieldErrors;
use crate::names::{ParticipantRole, Slug, shorten};
use crate::operation::{Operation, OperationInput, OperationKind};
use crate::service::OAuthProvider;

/// What kind of service a connection reaches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ServiceType {
    Http,
    Openapi,
    Mcp,
    Gmail,
    Telegram,
}

impl ServiceType {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Http => "http",
            Self::Openapi => "openapi",
            Self::Mcp => "mcp",
            Self::Gmail => "gmail",
            Self::Telegram => "telegram",
        }
    }

    pub fn allowed_auth(self) -> &'static [AuthType] {
        use AuthType::*;
        match self {
            Self::Http | Self::Openapi => &[None, ApiKeyHeader, ApiKeyQuery, Bearer, Basic],
            Self::Mcp => &[None, Bearer],
            Self::Gmail => &[ServiceAccount, Oauth],
            Self::Telegram => &[BotToken],
        }
    }

    fn default_base_url(self) -> Option<&'static str> {
        match self {
            Self::Gmail => Some("https://gmail.googleapis.com"),
            Self::Telegram => Some("https://api.telegram.org"),
            _ => None,
        }
    }

    /// Whether the operations are built into the service rather than sent by the client.
    pub fn has_builtin_operations(self) -> bool {
        matches!(self, Self::Gmail | Self::Telegram)
    }
}

impl FromStr for ServiceType {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "http" => Ok(Self::Http),
            "openapi" => Ok(Self::Openapi),
            "mcp" => Ok(Self::Mcp),
            "gmail" => Ok(Self::Gmail),
            "telegram" => Ok(Self::Telegram),
            _ => Err(format!(
                "`{}` is not a service type: use http, openapi, mcp, gmail or telegram",
                shorten(s)
            )),
        }
    }
}

impl fmt::Display for ServiceType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How an `mcp` connection talks to its server. `auto` tries Streamable HTTP first and
/// falls back to the older HTTP+SSE transport (the MCP specification's backwards-
/// compatibility rule); discovery stores the transport it found.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum McpTransport {
    #[default]
    Auto,
    StreamableHttp,
    Sse,
}

impl McpTransport {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Auto => "auto",
            Self::StreamableHttp => "streamable_http",
            Self::Sse => "sse",
        }
    }
}

impl FromStr for McpTransport {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "auto" => Ok(Self::Auto),
            "streamable_http" => Ok(Self::StreamableHttp),
            "sse" => Ok(Self::Sse),
            _ => Err(format!(
                "`{}` is not an MCP transport: use auto, streamable_http or sse",
                shorten(s)
            )),
        }
    }
}

impl fmt::Display for McpTransport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What an MCP server said about itself when it was last discovered.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, serde::Serialize)]
pub struct McpServerInfo {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    pub version: String,
    pub protocol_version: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instructions: Option<String>,
}

/// Where a call's credentials come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Fulfillment {
    Static,
    Caller,
    Participant,
}

impl Fulfillment {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Static => "static",
            Self::Caller => "caller",
            Self::Participant => "participant",
        }
    }
}

impl FromStr for Fulfillment {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "static" => Ok(Self::Static),
            "caller" => Ok(Self::Caller),
            "participant" => Ok(Self::Participant),
            _ => Err(format!(
                "`{}` is not a fulfillment: use static, caller or participant",
                shorten(s)
            )),
        }
    }
}

/// The body of a create request.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConnectionInput {
    pub name: String,
    pub slug: String,
    pub service_type: ServiceType,
    #[serde(default)]
    pub base_url: Option<String>,
    #[serde(default, deserialize_with = "bounded_auth")]
    pub auth: Option<Value>,
    #[serde(default)]
    pub fulfillment: Option<Fulfillment>,
    #[serde(default)]
    pub participant_role: Option<String>,
    #[serde(default)]
    pub operations: Option<Vec<OperationInput>>,
    #[serde(default, deserialize_with = "optional_object")]
    pub limits: Option<ConnectionLimits>,
    /// The document the operations were imported from (openapi connections), kept for a
    /// later re-import.
    #[serde(default, deserialize_with = "optional_object")]
    pub source: Option<SourceDocument>,
    /// `mcp` connections: the transport (default `auto`).
    #[serde(default)]
    pub transport: Option<McpTransport>,
    /// `caller`/`participant` http and openapi connections with bearer auth: the OAuth
    /// provider whose account gives the token (`github`, `gmail`).
    #[serde(default)]
    pub oauth_provider: Option<String>,
}

/// The document an `openapi` connection was imported from.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct SourceDocument {
    /// `openapi` (OpenAPI 3.x and Swagger 2.0 alike).
    #[serde(rename = "type")]
    pub kind: SourceKind,
    /// The document's text, JSON or YAML, as it was imported.
    pub document: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SourceKind {
    Openapi,
}

impl SourceKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Openapi => "openapi",
        }
    }
}

impl FromStr for SourceKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "openapi" => Ok(Self::Openapi),
            _ => Err(format!("`{}` is not a source type", shorten(s))),
        }
    }
}

fn check_source(
    service: ServiceType,
    source: Option<SourceDocument>,
    errors: &mut FieldErrors,
) -> Option<SourceDocument> {
    let source = source?;
    if service != ServiceType::Openapi {
        errors.push(
            "/source",
            format!("only openapi connections keep a source document, not {service}"),
        );
        return None;
    }
    if source.document.trim().is_empty() {
        errors.push("/source/document", "the source document is empty");
        return None;
    }
    if source.document.contains('\0') {
        errors.push(
            "/source/document",
            "the source document must not contain NUL characters",
        );
        return None;
    }
    Some(source)
}

fn check_transport(
    service: ServiceType,
    given: Option<McpTransport>,
    stored: Option<McpTransport>,
    errors: &mut FieldErrors,
) -> Option<McpTransport> {
    if service != ServiceType::Mcp {
        if given.is_some() {
            errors.push(
                "/transport",
                format!("only mcp connections have a `transport`, not {service}"),
            );
        }
        return None;
    }
    Some(given.or(stored).unwrap_or_default())
}

/// A connection's own bounds on its outbound calls; each is capped by the operator's
/// maximum when a call is made. Absent fields take the operator's value.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct ConnectionLimits {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_response_bytes: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_redirects: Option<u32>,
}

impl ConnectionLimits {
    fn check(self, errors: &mut FieldErrors) -> Option<Self> {
        let mut ok = true;
        if self.timeout_ms.is_some_and(|t| t == 0 || t > 600_000) {
            errors.push("/limits/timeout_ms", "`timeout_ms` must be 1 to 600000 (10 minutes)");
            ok = false;
        }
        if self.max_response_bytes.is_some_and(|b| b == 0 || b > 1 << 30) {
            errors.push(
                "/limits/max_response_bytes",
                "`max_response_bytes` must be 1 to 1073741824 (1 GiB)",
            );
            ok = false;
        }
        if self.max_redirects.is_some_and(|r| r > 20) {
            errors.push("/limits/max_redirects", "`max_redirects` must be 0 to 20");
            ok = false;
        }
        ok.then_some(self)
    }

    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

/// The body of a patch request: every field optional; `participant_role: null` clears it.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConnectionPatch {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub slug: Option<String>,
    #[serde(default)]
    pub service_type: Option<ServiceType>,
    #[serde(default)]
    pub base_url: Option<String>,
    #[serde(default, deserialize_with = "bounded_auth")]
    pub auth: Option<Value>,
    #[serde(default)]
    pub fulfillment: Option<Fulfillment>,
    #[serde(default, deserialize_with = "double_option")]
    pub participant_role: Option<Option<String>>,
    #[serde(default)]
    pub operations: Option<Vec<OperationInput>>,
    /// `null` clears the connection's own limits.
    #[serde(default, deserialize_with = "double_option_limits")]
    pub limits: Option<Option<ConnectionLimits>>,
    /// A new source document (a re-import); the stored one is kept when absent.
    #[serde(default, deserialize_with = "optional_object")]
    pub source: Option<SourceDocument>,
    /// `mcp` connections: a new transport.
    #[serde(default)]
    pub transport: Option<McpTransport>,
    /// `null` clears it.
    #[serde(default, deserialize_with = "double_option")]
    pub oauth_provider: Option<Option<String>>,
}

fn double_option_limits<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Option<ConnectionLimits>>, D::Error> {
    optional_object(d).map(Some)
}

/// An optional object field. serde's derived structs read arrays too (the fields in
/// order); these small objects are read as a map first so that `[…]` is refused.
fn optional_object<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: serde::de::DeserializeOwned,
{
    match Option::<serde_json::Map<String, Value>>::deserialize(d)? {
        None => Ok(None),
        Some(map) => T::deserialize(Value::Object(map))
            .map(Some)
            .map_err(serde::de::Error::custom),
    }
}

fn double_option<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Option<String>>, D::Error> {
    Option::<String>::deserialize(d).map(Some)
}

/// A valid connection, without its secret values.
#[derive(Debug, Clone, PartialEq)]
pub struct ConnectionDraft {
    pub name: String,
    pub slug: Slug,
    pub service_type: ServiceType,
    pub base_url: String,
    pub auth_type: AuthType,
    pub auth_public: BTreeMap<String, String>,
    pub fulfillment: Fulfillment,
    pub participant_role: Option<ParticipantRole>,
    pub operations: Vec<Operation>,
    /// The connection's own bounds on outbound calls, if any.
    pub limits: Option<ConnectionLimits>,
    /// A source document to store with this write; `None` leaves the stored one as it is
    /// (and is what a connection read back from the store carries).
    pub source: Option<SourceDocument>,
    /// `mcp` connections: the transport (`Some` exactly for them).
    pub transport: Option<McpTransport>,
    /// `mcp` connections: the server as last discovered (set by discovery, not by clients).
    pub mcp_server: Option<McpServerInfo>,
    /// The OAuth provider whose account (the caller's or participant's) gives the bearer
    /// token of a `caller`/`participant` http or openapi connection.
    pub oauth_provider: Option<OAuthProvider>,
}

impl ConnectionDraft {
    /// A copy without the operations and the source document (which can be large).
    pub fn header(&self) -> Self {
        Self {
            name: self.name.clone(),
            slug: self.slug.clone(),
            service_type: self.service_type,
            base_url: self.base_url.clone(),
            auth_type: self.auth_type,
            auth_public: self.auth_public.clone(),
            fulfillment: self.fulfillment,
            participant_role: self.participant_role.clone(),
            operations: Vec::new(),
            limits: self.limits,
            source: None,
            transport: self.transport,
            mcp_server: self.mcp_server.clone(),
            oauth_provider: self.oauth_provider,
        }
    }

    /// The provider whose account gives a call its token, if any: the connection's
    /// `oauth_provider`, or Google for a Gmail connection with `oauth` auth.
    pub fn account_provider(&self) -> Option<OAuthProvider> {
        if self.service_type == ServiceType::Gmail && self.auth_type == AuthType::Oauth {
            return Some(OAuthProvider::Gmail);
        }
        self.oauth_provider
    }

    /// The tiers an account for this connection is asked to grant: its `tiers`, else what
    /// its operations need (Gmail: `send` and `read`; GitHub: `read`).
    pub fn account_tiers(&self) -> Vec<String> {
        let Some(provider) = self.account_provider() else {
            return Vec::new();
        };
        if let Some(t) = self.auth_public.get("tiers") {
            return t
                .split([' ', ','])
                .filter(|t| !t.is_empty())
                .map(str::to_owned)
                .collect();
        }
        match provider {
            OAuthProvider::Gmail => vec!["send".into(), "read".into()],
            OAuthProvider::Github => vec!["read".into()],
        }
    }
}

/// What happens to the sealed secrets when a connection is written.
#[derive(Debug)]
pub enum SecretsChange {
    /// Leave the stored secrets as they are.
    Keep,
    /// Replace the stored secrets with exactly these (empty: store none).
    Replace(SecretFields),
    /// Open the stored secrets, overwrite these fields, seal again.
    Merge(SecretFields),
}

impl ConnectionDraft {
    /// Validates a create request. The secrets returned are complete for `static`
    /// fulfillment and empty otherwise.
    pub fn parse(input: ConnectionInput) -> Result<(Self, SecretFields), FieldErrors> {
        let mut errors = FieldErrors::new();
        let name = check_display_name(&input.name, &mut errors);
        let slug = input.slug.parse::<Slug>().map_err(|e| errors.push("/slug", e.0)).ok();
        let service_type = input.service_type;
        let base_url = check_base_url(service_type, input.base_url.as_deref(), &mut errors);
        let auth = match &input.auth {
            None | Some(Value::Null) => {
                if matches!(service_type, ServiceType::Gmail | ServiceType::Telegram) {
                    errors.push(
                        "/auth",
                        format!("a {service_type} connection needs `auth`{}", auth_hint(service_type)),
                    );
                }
                Some(AuthSpec::none())
            }
            Some(v) => AuthSpec::parse(v).map_err(|e| errors.extend_under("/auth", e)).ok(),
        };
        let fulfillment = input.fulfillment.unwrap_or(Fulfillment::Static);
        let role = check_role(fulfillment, input.participant_role.as_deref(), &mut errors);
        let operations = check_operations(service_type, input.operations, &mut errors);
        let limits = input.limits.filter(|l| !l.is_empty()).map(|l| l.check(&mut errors));
        let source = check_source(service_type, input.source, &mut errors);
        let transport = check_transport(service_type, input.transport, None, &mut errors);

        let Some(auth) = auth else { return Err(errors) };
        check_auth_fits(service_type, fulfillment, auth.auth_type, &mut errors);
        let oauth_provider = check_oauth_provider(
            service_type,
            fulfillment,
            auth.auth_type,
            input.oauth_provider.as_deref(),
            &mut errors,
        );
        check_account_tiers(service_type, oauth_provider, &auth.auth_type, &auth.public, &mut errors);
        if fulfillment == Fulfillment::Static {
            for field in auth.auth_type.secret_fields() {
                if auth.secrets.get(field).is_none() {
                    errors.push(
                        format!("/auth/{field}"),
                        format!("auth type `{}` needs `{field}`", auth.auth_type),
                    );
                }
            }
        } else {
            refuse_secrets(fulfillment, &auth.secrets, &mut errors);
        }
        match (name, slug, base_url, operations, errors.is_empty()) {
            (Some(name), Some(slug), Some(base_url), Some(operations), true) => Ok((
                Self {
                    name,
                    slug,
                    service_type,
                    base_url,
                    auth_type: auth.auth_type,
                    auth_public: auth.public,
                    fulfillment,
                    participant_role: role.flatten(),
                    operations,
                    limits: limits.flatten(),
                    source,
                    transport,
                    mcp_server: None,
                    oauth_provider,
                },
                auth.secrets,
            )),
            _ => Err(errors),
        }
    }

    /// Applies a patch to the current connection. `stored_secrets` names the secret fields
    /// the store holds a value for. Returns the new draft, what to do with the secrets, and
    /// whether the operations changed.
    pub fn apply_patch(
        &self,
        patch: ConnectionPatch,
        stored_secrets: &BTreeSet<String>,
    ) -> Result<(Self, SecretsChange, bool), FieldErrors> {
        let mut errors = FieldErrors::new();
        if let Some(t) = patch.service_type
            && t != self.service_type
        {
            errors.push(
                "/service_type",
                "the service type of a connection cannot change; create a new connection",
            );
        }
        let name = match &patch.name {
            Some(n) => check_display_name(n, &mut errors),
            None => Some(self.name.clone()),
        };
        let slug = match &patch.slug {
            Some(s) => s.parse::<Slug>().map_err(|e| errors.push("/slug", e.0)).ok(),
            None => Some(self.slug.clone()),
        };
        let base_url = match &patch.base_url {
            Some(u) => check_base_url(self.service_type, Some(u), &mut errors),
            None => Some(self.base_url.clone()),
        };
        let fulfillment = patch.fulfillment.unwrap_or(self.fulfillment);
        let role_input = match &patch.participant_role {
            Some(r) => r.clone(),
            None if fulfillment == Fulfillment::Participant => self.participant_role.as_ref().map(|r| r.to_string()),
            None => None,
        };
        let role = check_role(fulfillment, role_input.as_deref(), &mut errors);
        let limits = match patch.limits {
            Some(Some(l)) if !l.is_empty() => l.check(&mut errors),
            Some(_) => None,
            None => self.limits,
        };
        let source = check_source(self.service_type, patch.source, &mut errors);
        let transport = check_transport(self.service_type, patch.transport, self.transport, &mut errors);
        let ops_changed = patch.operations.is_some();
        let operations = match patch.operations {
            Some(ops) => check_operations(self.service_type, Some(ops), &mut errors),
            None => Some(self.operations.clone()),
        };

        let auth = match &patch.auth {
            Some(v) => AuthSpec::parse(v).map_err(|e| errors.extend_under("/auth", e)).ok(),
            None => Some(AuthSpec {
                auth_type: self.auth_type,
                public: self.auth_public.clone(),
                secrets: SecretFields::default(),
            }),
        };
        let Some(auth) = auth else { return Err(errors) };
        check_auth_fits(self.service_type, fulfillment, auth.auth_type, &mut errors);
        let provider_input = match &patch.oauth_provider {
            Some(p) => p.clone(),
            None => self.oauth_provider.map(|p| p.as_str().to_owned()),
        };
        let oauth_provider = check_oauth_provider(
            self.service_type,
            fulfillment,
            auth.auth_type,
            provider_input.as_deref(),
            &mut errors,
        );
        check_account_tiers(
            self.service_type,
            oauth_provider,
            &auth.auth_type,
            &auth.public,
            &mut errors,
        );

        let change = if fulfillment != Fulfillment::Static {
            refuse_secrets(fulfillment, &auth.secrets, &mut errors);
            if stored_secrets.is_empty() {
                SecretsChange::Keep
            } else {
                SecretsChange::Replace(SecretFields::default())
            }
        } else {
            // Static: every secret field must be given now or already stored under the
            // same auth type (a blank or missing field keeps the stored value).
            let same_type = auth.auth_type == self.auth_type && self.fulfillment == Fulfillment::Static;
            for field in auth.auth_type.secret_fields() {
                let given = auth.secrets.get(field).is_some();
                let kept = same_type && stored_secrets.contains(*field);
                if !(given || kept) {
                    errors.push(
                        format!("/auth/{field}"),
                        format!("auth type `{}` needs `{field}`", auth.auth_type),
                    );
                }
            }
            if !same_type {
                SecretsChange::Replace(auth.secrets)
            } else if auth.secrets.is_empty() {
                SecretsChange::Keep
            } else {
                SecretsChange::Merge(auth.secrets)
            }
        };

        match (name, slug, base_url, operations, errors.is_empty()) {
            (Some(name), Some(slug), Some(base_url), Some(operations), true) => Ok((
                Self {
                    name,
                    slug,
                    service_type: self.service_type,
                    base_url,
                    auth_type: auth.auth_type,
                    auth_public: auth.public,
                    fulfillment,
                    participant_role: role.flatten(),
                    operations,
                    limits,
                    source,
                    transport,
                    mcp_server: self.mcp_server.clone(),
                    oauth_provider,
                },
                change,
                ops_changed,
            )),
            _ => Err(errors),
        }
    }
}

/// Characters that change how text around them is shown without being seen themselves:
/// direction overrides and isolates (which can make a name read backwards), zero-width
/// characters, the byte-order mark, line and paragraph separators, soft hyphens, and the
/// tag characters (invisible letters that can carry hidden text).
pub fn is_invisible_format(c: char) -> bool {
    matches!(c,
        '\u{00AD}' | '\u{061C}' | '\u{180E}' | '\u{200B}'..='\u{200F}' | '\u{2028}'..='\u{202E}'
        | '\u{2060}'..='\u{2064}' | '\u{2066}'..='\u{206F}' | '\u{FEFF}' | '\u{FFF9}'..='\u{FFFB}'
        | '\u{E0000}'..='\u{E007F}')
}

/// The most an `auth` object may hold, as JSON (a Google service account key is a few KB).
pub const MAX_AUTH_BYTES: usize = 64 * 1024;

/// `auth`, bounded before it is parsed, and refused when an object in it names a key
/// twice (which value would be the secret is not for a parser to guess).
fn bounded_auth<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Value>, D::Error> {
    use serde::de::Error;
    let raw: Option<Box<serde_json::value::RawValue>> = Option::deserialize(d)?;
    match raw {
        None => Ok(None),
        Some(r) if r.get().len() > MAX_AUTH_BYTES => Err(D::Error::custom(format!(
            "`auth` is {} bytes of JSON; at most {MAX_AUTH_BYTES} are taken",
            r.get().len()
        ))),
        Some(r) => serde_json::from_str::<Unique>(r.get())
            .map(|u| Some(u.0))
            .map_err(D::Error::custom),
    }
}

/// A JSON value whose objects name each key once.
struct Unique(Value);

impl<'de> Deserialize<'de> for Unique {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(UniqueVisitor)
    }
}

struct UniqueVisitor;

impl<'de> serde::de::Visitor<'de> for UniqueVisitor {
    type Value = Unique;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_bool<E>(self, v: bool) -> Result<Unique, E> {
        Ok(Unique(Value::Bool(v)))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Unique, E> {
        Ok(Unique(Value::from(v)))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Unique, E> {
        Ok(Unique(Value::from(v)))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Unique, E> {
        Ok(Unique(
            serde_json::Number::from_f64(v).map_or(Value::Null, Value::Number),
        ))
    }
    fn visit_str<E>(self, v: &str) -> Result<Unique, E> {
        Ok(Unique(Value::String(v.to_owned())))
    }
    fn visit_string<E>(self, v: String) -> Result<Unique, E> {
        Ok(Unique(Value::String(v)))
    }
    fn visit_unit<E>(self) -> Result<Unique, E> {
        Ok(Unique(Value::Null))
    }
    fn visit_none<E>(self) -> Result<Unique, E> {
        Ok(Unique(Value::Null))
    }
    fn visit_some<D: serde::Deserializer<'de>>(self, d: D) -> Result<Unique, D::Error> {
        Unique::deserialize(d)
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Unique, A::Error> {
        let mut out = Vec::new();
        while let Some(Unique(v)) = seq.next_element()? {
            out.push(v);
        }
        Ok(Unique(Value::Array(out)))
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Unique, A::Error> {
        let mut out = serde_json::Map::new();
        while let Some(key) = map.next_key::<String>()? {
            if out.contains_key(&key) {
                return Err(serde::de::Error::custom(format!(
                    "the key `{}` appears twice in `auth`; send it once",
                    shorten(&key)
                )));
            }
            let Unique(v) = map.next_value()?;
            out.insert(key, v);
        }
        Ok(Unique(Value::Object(out)))
    }
}

/// A name shown to people (connections, users, workspaces, tokens): trimmed, 1 to 200
/// characters, no control characters (NUL, terminal escapes, line breaks).
pub fn check_display_name(name: &str, errors: &mut FieldErrors) -> Option<String> {
    check_name_within(name, 200, errors)
}

/// [`check_display_name`] with another longest length (token names take 100).
pub fn check_name_within(name: &str, max: usize, errors: &mut FieldErrors) -> Option<String> {
    // the length counts what was sent (as the API description says), spaces included
    let long = name.chars().count() > max;
    let name = name.trim();
    if name.is_empty() {
        errors.push("/name", "`name` must not be blank");
        None
    } else if long {
        errors.push("/name", format!("`name` is longer than {max} characters"));
        None
    } else if name.chars().any(|c| c.is_control() || is_invisible_format(c)) {
        errors.push(
            "/name",
            "`name` must not contain control characters or invisible formatting (direction overrides, zero-width characters)",
        );
        None
    } else {
        Some(name.to_owned())
    }
}

fn check_base_url(service: ServiceType, url: Option<&str>, errors: &mut FieldErrors) -> Option<String> {
    let url = url.map(str::trim).filter(|u| !u.is_empty());
    let Some(raw) = url.or(service.default_base_url()) else {
        let what = if service == ServiceType::Mcp {
            "the MCP server's URL"
        } else {
            "the root URL of the API"
        };
        errors.push(
            "/base_url",
            format!("a {service} connection needs `base_url`: {what}, such as https://api.example.com"),
        );
        return None;
    };
    match check_http_url(raw) {
        Ok(url) => Some(url),
        Err(e) => {
            errors.push("/base_url", e);
            None
        }
    }
}

/// The rules every configurable base URL follows: absolute, http or https, a host, no user
/// name or password (never echoed: it may be a credential), no fragment, at most 2 KiB.
/// Private addresses are accepted here; the SSRF guard applies when the URL is called.
pub fn check_http_url(raw: &str) -> Result<String, String> {
    let raw = raw.trim();
    if raw.len() > 2048 {
        return Err("`base_url` is longer than 2048 bytes".into());
    }
    if raw
        .chars()
        .any(|c| c.is_control() || c.is_whitespace() || is_invisible_format(c))
    {
        return Err("`base_url` must not contain spaces or control characters (percent-encode them)".into());
    }
    let parsed = url::Url::parse(raw).map_err(|e| format!("`{}` is not an absolute URL ({e})", shorten(raw)))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err("`base_url` must use http or https".into());
    }
    if parsed.host_str().is_none_or(str::is_empty) {
        return Err("`base_url` must name a host".into());
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err("`base_url` must not carry a user name or password; put credentials in `auth`".into());
    }
    if parsed.fragment().is_some() {
        return Err("`base_url` must not have a fragment (`#…`)".into());
    }
    Ok(raw.to_owned())
}

fn check_role(f: Fulfillment, role: Option<&str>, errors: &mut FieldErrors) -> Option<Option<ParticipantRole>> {
    match (f, role.map(str::trim).filter(|r| !r.is_empty())) {
        (Fulfillment::Participant, None) => {
            errors.push(
                "/participant_role",
                "participant fulfillment needs a `participant_role`, such as `customer`",
            );
            None
        }
        (Fulfillment::Participant, Some(r)) => match r.parse::<ParticipantRole>() {
            Ok(r) => Some(Some(r)),
            Err(e) => {
                errors.push("/participant_role", e.0);
                None
            }
        },
        (_, Some(_)) => {
            errors.push(
                "/participant_role",
                "`participant_role` is only for participant fulfillment; leave it out or null",
            );
            None
        }
        (_, None) => Some(None),
    }
}

fn check_operations(
    service: ServiceType,
    ops: Option<Vec<OperationInput>>,
    errors: &mut FieldErrors,
) -> Option<Vec<Operation>> {
    if service.has_builtin_operations() {
        if ops.as_ref().is_some_and(|o| !o.is_empty()) {
            errors.push(
                "/operations",
                format!("{service} connections have built-in operations; leave `operations` out"),
            );
            return None;
        }
        return Some(builtin_operations(service));
    }
    let kind = if service == ServiceType::Mcp {
        OperationKind::McpTool
    } else {
        OperationKind::Http
    };
    Operation::parse_all(ops.unwrap_or_default(), kind)
        .map_err(|e| errors.extend_under("/operations", e))
        .ok()
}

fn auth_hint(service: ServiceType) -> &'static str {
    match service {
        ServiceType::Gmail => {
            " such as {\"type\": \"service_account\", \"service_account_json\": …, \"subject\": \"user@example.com\"} or {\"type\": \"oauth\"}"
        }
        ServiceType::Telegram => " such as {\"type\": \"bot_token\", \"token\": \"…\"}",
        _ => "",
    }
}

fn check_auth_fits(service: ServiceType, f: Fulfillment, t: AuthType, errors: &mut FieldErrors) {
    let allowed = service.allowed_auth();
    if !allowed.contains(&t) {
        let names: Vec<_> = allowed.iter().map(|a| a.as_str()).collect();
        errors.push(
            "/auth/type",
            format!("a {service} connection takes auth {}, not `{t}`", names.join(", ")),
        );
    }
    if t == AuthType::Oauth && f == Fulfillment::Static {
        errors.push(
            "/fulfillment",
            "oauth uses a personal account connected under My Accounts: use fulfillment `caller` or `participant`",
        );
    }
}

fn check_oauth_provider(
    service: ServiceType,
    f: Fulfillment,
    t: AuthType,
    given: Option<&str>,
    errors: &mut FieldErrors,
) -> Option<OAuthProvider> {
    let given = given?;
    let provider = match given.parse::<OAuthProvider>() {
        Ok(p) => p,
        Err(e) => {
            errors.push("/oauth_provider", e);
            return None;
        }
    };
    if !matches!(service, ServiceType::Http | ServiceType::Openapi) {
        errors.push(
            "/oauth_provider",
            format!("only http and openapi connections take `oauth_provider`, not {service}"),
        );
        return None;
    }
    if t != AuthType::Bearer {
        errors.push(
            "/oauth_provider",
            "an account gives a bearer token: use auth {\"type\": \"bearer\"} with `oauth_provider`",
        );
        return None;
    }
    if f == Fulfillment::Static {
        errors.push(
            "/oauth_provider",
            "`oauth_provider` takes each person's own account: use fulfillment `caller` or `participant`",
        );
        return None;
    }
    Some(provider)
}

/// `tiers` on an account's connection (Gmail `oauth`, or bearer with `oauth_provider`):
/// the tiers a person or participant is asked to grant, each one of the provider's.
fn check_account_tiers(
    service: ServiceType,
    provider: Option<OAuthProvider>,
    t: &AuthType,
    public: &std::collections::BTreeMap<String, String>,
    errors: &mut FieldErrors,
) {
    let Some(tiers) = public.get("tiers") else { return };
    let provider = match (t, service, provider) {
        (AuthType::Bearer, _, Some(p)) => p,
        (AuthType::Bearer, _, None) => {
            errors.push(
                "/auth/tiers",
                "`tiers` names what an account grants: only with `oauth_provider`",
            );
            return;
        }
        (AuthType::Oauth, ServiceType::Gmail, _) => OAuthProvider::Gmail,
        _ => return,
    };
    let wanted: Vec<String> = tiers
        .split([' ', ','])
        .filter(|t| !t.is_empty())
        .map(str::to_owned)
        .collect();
    if let Err(e) = provider.scopes_for(&wanted) {
        errors.push("/auth/tiers", e);
    }
}

fn refuse_secrets(f: Fulfillment, secrets: &SecretFields, errors: &mut FieldErrors) {
    for field in secrets.names() {
        errors.push(
            format!("/auth/{field}"),
            format!(
                "a `{}` connection stores no secret values (they come with each call); leave `{field}` out",
                f.as_str()
            ),
        );
    }
}

/// The operations that Gmail and Telegram connections have built in.
pub fn builtin_operations(service: ServiceType) -> Vec<Operation> {
    #[allow(non_snake_case)]
    let ADDRESSES = json!({"type": ["string", "array"], "items": {"type": "string"}, "maxItems": 500,
        "description": "Addresses: `a@example.com`, `Name <a@example.com>`, comma-separated or as an array"});
    let specs: Vec<Value> = match service {
        ServiceType::Gmail => vec![
            json!({"name": "send_email", "method": "POST", "path": "/gmail/v1/users/me/messages/send",
                "description": "Send an email from the connected account: text, HTML or both (sent as alternatives); a reply stays in its thread with `thread_id` and `in_reply_to`.",
                "input_schema": {"type": "object", "required": ["to", "subject"], "additionalProperties": false, "properties": {
                    "to": ADDRESSES, "cc": ADDRESSES, "bcc": ADDRESSES,
                    "subject": {"type": "string", "maxLength": 3992},
                    "text": {"type": "string", "description": "The plain-text body"},
                    "html": {"type": "string", "description": "The HTML body"},
                    "reply_to": {"type": "string", "description": "Where replies should go (`Name <address>` or an address)"},
                    "thread_id": {"type": "string", "description": "Gmail thread to add the message to (a reply)"},
                    "in_reply_to": {"type": "string", "description": "The Message-ID header of the message answered, e.g. `<abc@mail.example.com>`"}}}}),
            json!({"name": "list_messages", "method": "GET", "path": "/gmail/v1/users/me/messages",
                "description": "List messages (ids and thread ids), newest first, optionally filtered with a Gmail search query or labels.",
                "input_schema": {"type": "object", "additionalProperties": false, "properties": {
                    "query": {"type": "string", "description": "Gmail search query, e.g. `from:alice is:unread`"},
                    "label_ids": {"type": "array", "items": {"type": "string"}, "maxItems": 100, "description": "Only messages with all these labels, e.g. [\"INBOX\"]"},
                    "max_results": {"type": "integer", "minimum": 1, "maximum": 500},
                    "page_token": {"type": "string"}}}}),
            json!({"name": "get_message", "method": "GET", "path": "/gmail/v1/users/me/messages/{{id}}",
                "description": "Get one message by id, with its headers decoded and its text and HTML bodies.",
                "input_schema": {"type": "object", "required": ["id"], "additionalProperties": false, "properties": {
                    "id": {"type": "string", "minLength": 1, "maxLength": 256, "pattern": "^[A-Za-z0-9_-]+$"},
                    "format": {"type": "string", "enum": ["full", "metadata", "minimal", "raw"], "default": "full"}}}}),
        ],
        ServiceType::Telegram => vec![
            json!({"name": "send_message", "method": "POST", "path": "/sendMessage",
                "description": "Send a text message to a chat as the bot (up to 4,096 characters after formatting).",
                "input_schema": {"type": "object", "required": ["chat_id", "text"], "additionalProperties": false, "properties": {
                    "chat_id": {"type": ["integer", "string"], "description": "The chat's numeric id, or `@channelusername`"},
                    "text": {"type": "string", "minLength": 1, "description": "The message; with `parse_mode`, formatted as HTML or Markdown"},
                    "parse_mode": {"type": "string", "enum": ["HTML", "MarkdownV2", "Markdown"]},
                    "disable_notification": {"type": "boolean", "description": "Deliver silently"},
                    "reply_to_message_id": {"type": "integer", "description": "The id of the message this one answers"}}}}),
            json!({"name": "get_me", "method": "POST", "path": "/getMe",
                "description": "Describe the bot: its id, name and username.",
                "input_schema": {"type": "object", "additionalProperties": false, "properties": {}}}),
            json!({"name": "get_updates", "method": "POST", "path": "/getUpdates",
                "description": "Messages and other updates sent to the bot, oldest first; pass `offset` (the last update_id + 1) to acknowledge those already seen.",
                "input_schema": {"type": "object", "additionalProperties": false, "properties": {
                    "offset": {"type": "integer"},
                    "limit": {"type": "integer", "minimum": 1, "maximum": 100},
                    "timeout": {"type": "integer", "minimum": 0, "maximum": 25, "description": "Long polling, in seconds"},
                    "allowed_updates": {"type": "array", "items": {"type": "string"}, "maxItems": 20}}}}),
        ],
        _ => vec![],
    };
    specs
        .into_iter()
        .filter_map(|v| serde_json::from_value::<OperationInput>(v).ok())
        .filter_map(|input| Operation::parse(input, OperationKind::Http).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::ExposeSecret;

    fn input(v: Value) -> ConnectionInput {
        serde_json::from_value(v).unwrap()
    }

    fn http(auth: Value) -> Value {
        json!({"name": "GitHub", "slug": "github", "service_type": "http",
            "base_url": "https://api.github.com", "auth": auth,
            "operations": [{"name": "get_issue", "method": "GET", "path": "/issues/{{n}}",
                "input_schema": {"type": "object", "properties": {"n": {"type": "integer"}}}}]})
    }

    fn pointers(e: &FieldErrors) -> Vec<&str> {
        e.0.iter().map(|e| e.pointer.as_str()).collect()
    }

    #[test]
    fn static_needs_every_secret() {
        let err = ConnectionDraft::parse(input(http(json!({"type": "basic", "username": "u"})))).unwrap_err();
        assert_eq!(pointers(&err), ["/auth/password"]);
        let (d, s) = ConnectionDraft::parse(input(http(json!({"type": "bearer", "token": "t"})))).unwrap();
        assert_eq!(d.operations.len(), 1);
        assert_eq!(s.get("token").unwrap().expose_secret(), "t");
    }

    #[test]
    fn caller_and_participant_store_no_secrets() {
        let mut v = http(json!({"type": "bearer", "token": "t"}));
        v["fulfillment"] = json!("caller");
        let err = ConnectionDraft::parse(input(v.clone())).unwrap_err();
        assert_eq!(pointers(&err), ["/auth/token"]);
        v["auth"] = json!({"type": "bearer"});
        let (d, s) = ConnectionDraft::parse(input(v.clone())).unwrap();
        assert_eq!(d.fulfillment, Fulfillment::Caller);
        assert!(s.is_empty());
        v["fulfillment"] = json!("participant");
        let err = ConnectionDraft::parse(input(v.clone())).unwrap_err();
        assert_eq!(pointers(&err), ["/participant_role"]);
        v["participant_role"] = json!("customer");
        assert!(ConnectionDraft::parse(input(v)).is_ok());
    }

    #[test]
    fn service_types_restrict_auth() {
        let err = ConnectionDraft::parse(input(json!({"name": "m", "slug": "m", "service_type": "mcp",
            "base_url": "https://mcp.example.com/mcp", "auth": {"type": "basic", "username": "u", "password": "p"}})))
        .unwrap_err();
        assert_eq!(pointers(&err), ["/auth/type"]);
        let (d, _) = ConnectionDraft::parse(input(json!({"name": "t", "slug": "tg", "service_type": "telegram",
            "auth": {"type": "bot_token", "token": "1:a"}})))
        .unwrap();
        assert_eq!(d.base_url, "https://api.telegram.org");
        assert!(d.operations.iter().any(|o| o.name.as_str() == "send_message"));
        let err = ConnectionDraft::parse(input(json!({"name": "g", "slug": "g", "service_type": "gmail",
            "auth": {"type": "oauth"}})))
        .unwrap_err();
        assert_eq!(pointers(&err), ["/fulfillment"]);
    }

    #[test]
    fn builtin_operations_are_all_valid() {
        assert_eq!(builtin_operations(ServiceType::Gmail).len(), 3);
        assert_eq!(builtin_operations(ServiceType::Telegram).len(), 3);
    }

    #[test]
    fn base_url_rules() {
        for (url, ok) in [
            ("https://api.example.com", true),
            ("http://10.0.0.1:8080/v1", true), // SSRF is checked at call time, not here
            ("ftp://x", false),
            ("api.example.com", false),
            ("https://user:pw@api.example.com", false),
            ("https://api.example.com/#x", false),
        ] {
            let mut v = http(json!({"type": "none"}));
            v["base_url"] = json!(url);
            assert_eq!(ConnectionDraft::parse(input(v)).is_ok(), ok, "{url}");
        }
        let mut v = http(json!({"type": "none"}));
        v["base_url"] = json!("https://user:hunter2@api.example.com");
        let err = ConnectionDraft::parse(input(v)).unwrap_err();
        assert!(!err.summary().contains("hunter2"));
    }

    #[test]
    fn patch_keeps_merges_and_replaces_secrets() {
        let (d, _) =
            ConnectionDraft::parse(input(http(json!({"type": "basic", "username": "u", "password": "p"})))).unwrap();
        let stored: BTreeSet<String> = ["username".into(), "password".into()].into();
        let patch = |v: Value| serde_json::from_value::<ConnectionPatch>(v).unwrap();

        let (d2, change, ops) = d.apply_patch(patch(json!({"name": "Renamed"})), &stored).unwrap();
        assert_eq!(d2.name, "Renamed");
        assert!(matches!(change, SecretsChange::Keep));
        assert!(!ops);

        let (_, change, _) = d
            .apply_patch(
                patch(json!({"auth": {"type": "basic", "username": "", "password": "new"}})),
                &stored,
            )
            .unwrap();
        assert!(matches!(change, SecretsChange::Merge(ref s) if s.names().collect::<Vec<_>>() == ["password"]));

        let err = d
            .apply_patch(patch(json!({"auth": {"type": "bearer"}})), &stored)
            .unwrap_err();
        assert_eq!(pointers(&err), ["/auth/token"]);
        let (_, change, _) = d
            .apply_patch(patch(json!({"auth": {"type": "bearer", "token": "t"}})), &stored)
            .unwrap();
        assert!(matches!(change, SecretsChange::Replace(_)));

        let (d3, change, _) = d
            .apply_patch(
                patch(json!({"fulfillment": "caller", "auth": {"type": "basic"}})),
                &stored,
            )
            .unwrap();
        assert_eq!(d3.fulfillment, Fulfillment::Caller);
        assert!(matches!(change, SecretsChange::Replace(ref s) if s.is_empty()));

        let err = d
            .apply_patch(patch(json!({"service_type": "mcp"})), &stored)
            .unwrap_err();
        assert_eq!(pointers(&err), ["/service_type"]);
    }

    #[test]
    fn unknown_fields_are_refused() {
        let mut v = http(json!({"type": "none"}));
        v["fulfilment"] = json!("static");
        assert!(serde_json::from_value::<ConnectionInput>(v).is_err());
    }
}
