//! Where a call's credentials come from, and how they are put on the request.

use std::collections::BTreeMap;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use chatterfly_domain::{AuthType, Fulfillment, SecretFields};
use chatterfly_egress::OutboundRequest;
use chatterfly_store::{ConnectionRecord, aad};
use chatterfly_vault::{ExposeSecret, KeyRing, Secret};
use http::{HeaderName, HeaderValue};
use serde_json::{Map, Value};

use crate::ToolError;

/// `static`: the sealed credentials, opened now. `caller`: the call's `credentials`, for
/// this call only. `participant`: found by the caller (`Tools::credentials`) for the
/// participant a call names; reaching here means none was named.
pub fn resolve(
    keys: &KeyRing,
    conn: &ConnectionRecord,
    passed: Option<&Map<String, Value>>,
) -> Result<SecretFields, ToolError> {
    let t = conn.draft.auth_type;
    let slug = &conn.draft.slug;
    match conn.draft.fulfillment {
        Fulfillment::Static => {
            if passed.is_some_and(|p| !p.is_empty()) {
                return Err(ToolError::InvalidCredentials(format!(
                    "connection `{slug}` uses its stored credentials; leave `credentials` out"
                )));
            }
            match &conn.auth_sealed {
                Some(sealed) => {
                    let plain = keys
                        .open_string(sealed, &aad::connection_auth(&conn.id))
                        .map_err(|e| ToolError::Internal(format!("connection {slug}: {e}")))?;
                    SecretFields::from_sealed_json(plain.expose_secret()).map_err(|e| ToolError::Internal(e.to_owned()))
                }
                None if t.secret_fields().is_empty() => Ok(SecretFields::default()),
                None => Err(ToolError::Internal(format!(
                    "connection `{slug}` has no stored credentials"
                ))),
            }
        }
        Fulfillment::Caller => {
            if t.secret_fields().is_empty() {
                return Ok(SecretFields::default());
            }
            let shape: Vec<String> = t.secret_fields().iter().map(|f| format!("\"{f}\": …")).collect();
            let Some(passed) = passed.filter(|p| !p.is_empty()) else {
                return Err(ToolError::CredentialsRequired(format!(
                    "connection `{slug}` takes the caller's credentials: pass `credentials`: {{{}}}, or save your own for it under Settings → My Accounts (/settings/accounts)",
                    shape.join(", ")
                )));
            };
            let mut out = BTreeMap::new();
            for (k, v) in passed {
                if !t.secret_fields().contains(&k.as_str()) {
                    return Err(ToolError::InvalidCredentials(format!(
                        "`credentials` has `{k}`, which auth type `{t}` does not take; it takes {{{}}}",
                        shape.join(", ")
                    )));
                }
                if let Value::String(s) = v {
                    let max = chatterfly_domain::auth::MAX_SECRET_LEN;
                    if s.len() > max {
                        return Err(ToolError::InvalidCredentials(format!(
                            "`credentials.{k}` is longer than {max} bytes"
                        )));
                    }
                    if t == chatterfly_domain::AuthType::Basic && k == "username" && s.contains(':') {
                        return Err(ToolError::InvalidCredentials(
                            "`credentials.username` must not contain `:` (HTTP Basic cannot carry it)".into(),
                        ));
                    }
                    if let Some(e) = chatterfly_domain::auth::header_text_error(t, k, s) {
                        return Err(ToolError::InvalidCredentials(format!("`credentials.{k}`: {e}")));
                    }
                    if t == chatterfly_domain::AuthType::BotToken && !chatterfly_domain::auth::is_bot_token(s) {
                        return Err(ToolError::InvalidCredentials(
                            "`credentials.token` must be a bot token: the bot's numeric id, `:`, then letters, digits, `_` or `-`".into(),
                        ));
                    }
                }
                match v {
                    Value::String(s) if !s.is_empty() && !s.chars().any(char::is_control) => {
                        out.insert(k.clone(), Secret::from(s.clone()));
                    }
                    _ => {
                        return Err(ToolError::InvalidCredentials(format!(
                            "`credentials.{k}` must be a non-empty string without control characters"
                        )));
                    }
                }
            }
            for f in t.secret_fields() {
                if !out.contains_key(*f) {
                    return Err(ToolError::CredentialsRequired(format!("`credentials` needs `{f}`")));
                }
            }
            Ok(SecretFields(out))
        }
        Fulfillment::Participant => Err(ToolError::CredentialsRequired(format!(
            "connection `{slug}` uses the credentials of a participant: name one with `participant`"
        ))),
    }
}

fn secret<'a>(s: &'a SecretFields, field: &str) -> Result<&'a str, ToolError> {
    s.get(field)
        .map(|v| v.expose_secret())
        .ok_or_else(|| ToolError::CredentialsRequired(format!("credential `{field}` is missing")))
}

fn header_value(text: &str, what: &str) -> Result<HeaderValue, ToolError> {
    let mut v = HeaderValue::from_str(text)
        .map_err(|_| ToolError::InvalidCredentials(format!("the {what} cannot be sent in an HTTP header")))?;
    v.set_sensitive(true);
    Ok(v)
}

/// Adds the auth of the connection's type to the request, and marks what carries it so the
/// egress client drops it on a redirect to another origin.
pub fn inject(
    t: AuthType,
    public: &BTreeMap<String, String>,
    secrets: &SecretFields,
    req: &mut OutboundRequest,
) -> Result<(), ToolError> {
    match t {
        AuthType::ApiKeyHeader => {
            let name = public.get("header").map(String::as_str).unwrap_or("X-Api-Key");
            let name = HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| ToolError::Internal("stored header name is invalid".into()))?;
            req.headers
                .insert(name.clone(), header_value(secret(secrets, "key")?, "key")?);
            req.credential_headers.push(name);
        }
        AuthType::ApiKeyQuery => {
            let param = public.get("param").map(String::as_str).unwrap_or("api_key");
            req.url.query_pairs_mut().append_pair(param, secret(secrets, "key")?);
            req.credential_query.push(param.to_owned());
        }
        AuthType::Bearer => {
            let v = header_value(&format!("Bearer {}", secret(secrets, "token")?), "token")?;
            req.headers.insert(http::header::AUTHORIZATION, v);
        }
        AuthType::Basic => {
            let pair = format!("{}:{}", secret(secrets, "username")?, secret(secrets, "password")?);
            let v = header_value(&format!("Basic {}", STANDARD.encode(pair)), "username or password")?;
            req.headers.insert(http::header::AUTHORIZATION, v);
        }
        AuthType::None | AuthType::Oauth | AuthType::ServiceAccount | AuthType::BotToken => {}
    }
    Ok(())
}
