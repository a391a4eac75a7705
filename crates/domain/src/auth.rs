//! Auth shapes: which fields each auth type has, which of them are secret, and their rules.
//!
//! Secret field values are parsed straight into [`SecretString`]s; this module never formats
//! one into a message. Public fields (a header name, a query parameter name, a subject) are
//! ordinary strings and are shown in responses.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use secrecy::{ExposeSecret, SecretString};
use serde_json::{Map, Value};

use crate::error::FieldErrors;
use crate::names::shorten;

/// How a connection authenticates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AuthType {
    None,
    ApiKeyHeader,
    ApiKeyQuery,
    Bearer,
    Basic,
    /// Gmail: a Google service account with domain-wide delegation.
    ServiceAccount,
    /// Gmail: a personal Google account connected under My Accounts.
    Oauth,
    /// Telegram: a bot token.
    BotToken,
}

impl AuthType {
    pub const ALL: [AuthType; 8] = [
        Self::None,
        Self::ApiKeyHeader,
        Self::ApiKeyQuery,
        Self::Bearer,
        Self::Basic,
        Self::ServiceAccount,
        Self::Oauth,
        Self::BotToken,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::ApiKeyHeader => "api_key_header",
            Self::ApiKeyQuery => "api_key_query",
            Self::Bearer => "bearer",
            Self::Basic => "basic",
            Self::ServiceAccount => "service_account",
            Self::Oauth => "oauth",
            Self::BotToken => "bot_token",
        }
    }

    /// Fields shown in responses and stored in plain text.
    pub fn public_fields(self) -> &'static [&'static str] {
        match self {
            Self::ApiKeyHeader => &["header"],
            Self::ApiKeyQuery => &["param"],
            Self::ServiceAccount => &["subject", "tiers"],
            // the tiers a person or participant is asked to grant (an account's connection)
            Self::Oauth | Self::Bearer => &["tiers"],
            _ => &[],
        }
    }

    /// Public fields that may be left out.
    pub fn optional_public_fields(self) -> &'static [&'static str] {
        match self {
            Self::ServiceAccount | Self::Oauth | Self::Bearer => &["tiers"],
            _ => &[],
        }
    }

    /// Fields that are write-only and sealed in the vault.
    pub fn secret_fields(self) -> &'static [&'static str] {
        match self {
            Self::None | Self::Oauth => &[],
            Self::ApiKeyHeader | Self::ApiKeyQuery => &["key"],
            Self::Bearer | Self::BotToken => &["token"],
            Self::Basic => &["username", "password"],
            Self::ServiceAccount => &["service_account_json"],
        }
    }
}

impl FromStr for AuthType {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Self::ALL
            .into_iter()
            .find(|t| t.as_str() == s)
            .ok_or_else(|| {
                format!(
                    "`{}` is not an auth type: use none, api_key_header, api_key_query, bearer, basic, service_account, oauth or bot_token",
                    shorten(s)
                )
            })
    }
}

impl fmt::Display for AuthType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Secret field values by field name. Debug prints names only.
#[derive(Default)]
pub struct SecretFields(pub BTreeMap<String, SecretString>);

impl SecretFields {
    pub fn get(&self, field: &str) -> Option<&SecretString> {
        self.0.get(field)
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.0.keys().map(String::as_str)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The JSON document that is sealed in the vault: `{"field": "value", …}`. The caller
    /// owns the returned plaintext and must hand it to the vault without keeping it.
    pub fn to_sealable_json(&self) -> zeroize::Zeroizing<String> {
        let map: Map<String, Value> = self
            .0
            .iter()
            .map(|(k, v)| (k.clone(), Value::String(v.expose_secret().to_owned())))
            .collect();
        zeroize::Zeroizing::new(Value::Object(map).to_string())
    }

    /// Reads the document that [`to_sealable_json`](Self::to_sealable_json) wrote.
    pub fn from_sealed_json(json: &str) -> Result<Self, String> {
        let map: BTreeMap<String, String> =
            serde_json::from_str(json).map_err(|_| "sealed credentials are not a JSON object of strings".to_owned())?;
        Ok(Self(map.into_iter().map(|(k, v)| (k, SecretString::from(v))).collect()))
    }
}

impl fmt::Debug for SecretFields {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.0.keys()).finish()?;
        f.write_str(" [REDACTED]")
    }
}

/// An `auth` object as a client sent it, parsed: the type, its public fields, and whichever
/// secret fields were given with a non-blank value.
#[derive(Debug)]
pub struct AuthSpec {
    pub auth_type: AuthType,
    pub public: BTreeMap<String, String>,
    pub secrets: SecretFields,
}

/// The longest secret field accepted (stored, or passed with a call).
pub const MAX_SECRET_LEN: usize = 16 * 1024;
const MAX_SERVICE_ACCOUNT_LEN: usize = 64 * 1024;

impl AuthSpec {
    pub fn none() -> Self {
        Self {
            auth_type: AuthType::None,
            public: BTreeMap::new(),
            secrets: SecretFields::default(),
        }
    }

    /// Parses `{"type": …, fields…}`. Pointers in errors are relative to the auth object.
    pub fn parse(value: &Value) -> Result<Self, FieldErrors> {
        let mut errors = FieldErrors::new();
        let Some(obj) = value.as_object() else {
            return Err(FieldErrors::single(
                "",
                "`auth` must be an object such as {\"type\": \"bearer\", \"token\": \"…\"}",
            ));
        };
        let auth_type = match obj.get("type") {
            Some(Value::String(t)) => t.parse::<AuthType>().map_err(|e| FieldErrors::single("/type", e))?,
            Some(_) => return Err(FieldErrors::single("/type", "`type` must be a string")),
            None => return Err(FieldErrors::single("/type", "`auth` needs a `type`")),
        };
        let mut public = BTreeMap::new();
        let mut secrets = BTreeMap::new();
        for (field, v) in obj {
            let field = field.as_str();
            if field == "type" {
                continue;
            }
            let pointer = format!("/{}", crate::error::pointer_token(field));
            if auth_type.public_fields().contains(&field) {
                // a list may be given as an array of strings (`tiers`)
                let joined = match v {
                    Value::Array(items) if auth_type.optional_public_fields().contains(&field) => items
                        .iter()
                        .map(|i| i.as_str().map(str::to_owned))
                        .collect::<Option<Vec<_>>>()
                        .map(|parts| Value::String(parts.join(" "))),
                    _ => None,
                };
                match joined.as_ref().unwrap_or(v) {
                    Value::String(s) => match check_public(auth_type, field, s.trim()) {
                        Ok(()) => {
                            public.insert(field.to_owned(), s.trim().to_owned());
                        }
                        Err(e) => errors.push(pointer, e),
                    },
                    _ => errors.push(pointer, format!("`{field}` must be a string")),
                }
            } else if auth_type.secret_fields().contains(&field) {
                match secret_value(auth_type, field, v) {
                    Ok(Some(s)) => {
                        secrets.insert(field.to_owned(), s);
                    }
                    Ok(None) => {}
                    Err(e) => errors.push(pointer, e),
                }
            } else if field.ends_with("_set") {
                // Echo of a response (`"token_set": true`): harmless, ignored.
            } else {
                errors.push(
                    pointer,
                    format!(
                        "`{}` is not a field of auth type `{auth_type}`{}",
                        shorten(field),
                        expected_fields(auth_type)
                    ),
                );
            }
        }
        for field in auth_type.public_fields() {
            if auth_type.optional_public_fields().contains(field) {
                continue;
            }
            if !public.contains_key(*field) && !obj.contains_key(*field) {
                errors.push(format!("/{field}"), format!("auth type `{auth_type}` needs `{field}`"));
            }
        }
        errors.into_result(Self {
            auth_type,
            public,
            secrets: SecretFields(secrets),
        })
    }
}

fn expected_fields(t: AuthType) -> String {
    let all: Vec<_> = t
        .public_fields()
        .iter()
        .chain(t.secret_fields())
        .map(|f| format!("`{f}`"))
        .collect();
    if all.is_empty() {
        "; it takes no fields".to_owned()
    } else {
        format!("; it takes {}", all.join(", "))
    }
}

/// Checks one public auth field (a header name, a query parameter name, a subject).
pub fn check_public(t: AuthType, field: &str, v: &str) -> Result<(), String> {
    if v.is_empty() {
        return Err(format!("`{field}` must not be blank"));
    }
    match (t, field) {
        (AuthType::ApiKeyHeader, "header") => {
            let token = v.len() <= 128
                && v.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
            if !token {
                return Err(format!("`{}` is not a valid HTTP header name", shorten(v)));
            }
            let reserved = [
                "host",
                "content-length",
                "transfer-encoding",
                "connection",
                "upgrade",
                "te",
                "trailer",
            ];
            if reserved.contains(&v.to_ascii_lowercase().as_str()) {
                return Err(format!(
                    "`{v}` is set by the HTTP client and cannot carry a key; choose another header"
                ));
            }
            Ok(())
        }
        (AuthType::ApiKeyQuery, "param") => {
            if v.len() > 128
                || v.chars()
                    .any(|c| c.is_control() || c.is_whitespace() || "&=#?".contains(c))
            {
                return Err(format!("`{}` is not a valid query parameter name", shorten(v)));
            }
            Ok(())
        }
        (AuthType::ServiceAccount, "subject") => {
            if crate::email::check_address(v).is_err() {
                return Err(format!(
                    "`subject` must be the e-mail address of the user to act as; `{}` is not one",
                    shorten(v)
                ));
            }
            Ok(())
        }
        (AuthType::ServiceAccount | AuthType::Oauth, "tiers") => {
            let tiers: Vec<&str> = v.split([' ', ',']).filter(|t| !t.is_empty()).collect();
            if tiers.is_empty() || !tiers.iter().all(|t| ["send", "read", "full"].contains(t)) {
                return Err("`tiers` must name Gmail tiers: send, read, full".into());
            }
            Ok(())
        }
        // checked against the connection's `oauth_provider` (the only place it may appear)
        (AuthType::Bearer, "tiers") => {
            if v.is_empty() || v.len() > 200 || !v.chars().all(|c| c.is_ascii_lowercase() || " ,_".contains(c)) {
                return Err("`tiers` must name tiers of the connection's `oauth_provider`, such as `read repo`".into());
            }
            Ok(())
        }
        _ => Ok(()),
    }
}

/// A secret field's value; `Ok(None)` when blank or null (meaning: keep what is stored).
/// Messages never include the value.
fn secret_value(t: AuthType, field: &str, v: &Value) -> Result<Option<SecretString>, String> {
    let text = match v {
        Value::Null => return Ok(None),
        Value::String(s) if s.trim().is_empty() => return Ok(None),
        Value::String(s) => s.clone(),
        Value::Object(_) if t == AuthType::ServiceAccount => v.to_string(),
        _ => return Err(format!("`{field}` must be a string")),
    };
    if t == AuthType::ServiceAccount {
        if text.len() > MAX_SERVICE_ACCOUNT_LEN {
            return Err(format!("`{field}` is longer than {MAX_SERVICE_ACCOUNT_LEN} bytes"));
        }
        let parsed: Value = serde_json::from_str(&text)
            .map_err(|_| format!("`{field}` must be the JSON key file of a Google service account"))?;
        let has = |k: &str| parsed.get(k).and_then(Value::as_str).is_some_and(|s| !s.is_empty());
        if !(has("client_email") && has("private_key")) {
            return Err(format!(
                "`{field}` must be a service account key file with `client_email` and `private_key`"
            ));
        }
        return Ok(Some(SecretString::from(text)));
    }
    if text.len() > MAX_SECRET_LEN {
        return Err(format!("`{field}` is longer than {MAX_SECRET_LEN} bytes"));
    }
    if text.chars().any(|c| c.is_control()) {
        return Err(format!("`{field}` must not contain line breaks or control characters"));
    }
    if let Some(e) = header_text_error(t, field, &text) {
        return Err(e);
    }
    if t == AuthType::BotToken && !is_bot_token(&text) {
        return Err(
            "`token` must be a bot token as @BotFather gives it: the bot's numeric id, `:`, then letters, digits, `_` or `-` (e.g. `123456789:AAE…`)"
                .into(),
        );
    }
    if t == AuthType::Basic && field == "username" && text.contains(':') {
        return Err("`username` must not contain `:` (HTTP Basic cannot carry it)".into());
    }
    Ok(Some(SecretString::from(text)))
}

/// A secret sent as an HTTP header value as it is (an API key in a header, a bearer token)
/// must be visible ASCII or spaces: other bytes reach the upstream raw, where they are read
/// back in some other character set (and echoed in a form redaction does not know).
pub fn header_text_error(t: AuthType, field: &str, text: &str) -> Option<String> {
    let in_header = matches!(
        (t, field),
        (AuthType::ApiKeyHeader, "key") | (AuthType::Bearer, "token")
    );
    if !in_header {
        return None;
    }
    if !text.bytes().all(|b| (0x20..0x7f).contains(&b)) {
        return Some(format!(
            "`{field}` must be ASCII letters, digits, punctuation or spaces: it is sent as an HTTP header"
        ));
    }
    // HTTP drops a header value's outer spaces: the upstream would read (and echo) a value
    // other than the one given, which redaction would not know
    (text.starts_with(' ') || text.ends_with(' ')).then(|| {
        format!("`{field}` must not begin or end with a space: it is sent as an HTTP header, which drops them")
    })
}

/// A Telegram bot token: `<bot id>:<secret>`, the id 1 to 20 digits, the secret 1 to 200
/// characters of `A-Z a-z 0-9 _ -` (so it is one clean URL path segment).
pub fn is_bot_token(s: &str) -> bool {
    let Some((id, secret)) = s.split_once(':') else {
        return false;
    };
    (1..=20).contains(&id.len())
        && id.bytes().all(|b| b.is_ascii_digit())
        && (1..=200).contains(&secret.len())
        && secret
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// The `auth` object of a response: type, public fields, and `<field>_set` for each secret.
pub fn auth_response(t: AuthType, public: &BTreeMap<String, String>, secret_set: impl Fn(&str) -> bool) -> Value {
    let mut obj = Map::new();
    obj.insert("type".into(), Value::String(t.as_str().into()));
    for field in t.public_fields() {
        if let Some(v) = public.get(*field) {
            obj.insert((*field).into(), Value::String(v.clone()));
        }
    }
    for field in t.secret_fields() {
        obj.insert(format!("{field}_set"), Value::Bool(secret_set(field)));
    }
    Value::Object(obj)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn every_shape_parses() {
        let cases = [
            (json!({"type": "none"}), 0),
            (json!({"type": "api_key_header", "header": "X-Api-Key", "key": "k"}), 1),
            (json!({"type": "api_key_query", "param": "api_key", "key": "k"}), 1),
            (json!({"type": "bearer", "token": "t"}), 1),
            (json!({"type": "basic", "username": "u", "password": "p"}), 2),
            (
                json!({"type": "service_account", "subject": "a@b.c",
                "service_account_json": {"client_email": "x@y", "private_key": "-----"}}),
                1,
            ),
            (json!({"type": "oauth"}), 0),
            (json!({"type": "bot_token", "token": "123:abc"}), 1),
            (json!({"type": "oauth", "tiers": ["send"]}), 0),
        ];
        for (v, n) in cases {
            let a = AuthSpec::parse(&v).unwrap_or_else(|e| panic!("{v}: {e}"));
            assert_eq!(a.secrets.0.len(), n, "{v}");
        }
    }

    #[test]
    fn bot_tokens_have_their_form() {
        assert!(is_bot_token("123456789:AAEhBOweik6ad9r_QXMENQjcrGbqCr4K-bs"));
        for bad in [
            "",
            ":",
            "1:",
            ":a",
            "12a:b",
            "1:a b",
            "1:a/b",
            "1:a%2F",
            "123456789012345678901:a",
            "1:a:b",
        ] {
            assert!(!is_bot_token(bad), "{bad}");
        }
    }

    #[test]
    fn blank_secrets_mean_keep() {
        let a = AuthSpec::parse(&json!({"type": "bearer", "token": "  "})).unwrap();
        assert!(a.secrets.is_empty());
        let a = AuthSpec::parse(&json!({"type": "bearer", "token_set": true})).unwrap();
        assert!(a.secrets.is_empty());
    }

    #[test]
    fn bad_shapes_point_at_fields() {
        for (v, pointer) in [
            (json!({"type": "bearer", "tokn": "x"}), "/tokn"),
            (json!({"type": "magic"}), "/type"),
            (json!({}), "/type"),
            (json!({"type": "api_key_header", "key": "k"}), "/header"),
            (
                json!({"type": "api_key_header", "header": "Bad Header", "key": "k"}),
                "/header",
            ),
            (
                json!({"type": "api_key_header", "header": "Host", "key": "k"}),
                "/header",
            ),
            (json!({"type": "api_key_query", "param": "a&b", "key": "k"}), "/param"),
            (json!({"type": "bearer", "token": 5}), "/token"),
            (json!({"type": "bearer", "token": "a\r\nX-Injected: 1"}), "/token"),
            (
                json!({"type": "basic", "username": "a:b", "password": "p"}),
                "/username",
            ),
            (
                json!({"type": "service_account", "subject": "a@b.co", "service_account_json": "{}"}),
                "/service_account_json",
            ),
            (
                json!({"type": "service_account", "subject": "not an address", "service_account_json": "{}"}),
                "/subject",
            ),
            (
                json!({"type": "service_account", "subject": "a@b.co", "tiers": ["send", "write"]}),
                "/tiers",
            ),
            (json!({"type": "bot_token", "token": "abc:def"}), "/token"),
            (json!({"type": "bot_token", "token": "123456"}), "/token"),
            (json!({"type": "bot_token", "token": "123:abc/../x"}), "/token"),
            (json!({"type": "bot_token", "token": "123:"}), "/token"),
            (json!({"type": "bearer", "token": "tokén"}), "/token"),
            (
                json!({"type": "api_key_header", "header": "X-Key", "key": "k✓"}),
                "/key",
            ),
            (
                json!({"type": "api_key_header", "header": "X-Key", "key": " key-with-a-leading-space"}),
                "/key",
            ),
            (
                json!({"type": "bearer", "token": "token-with-a-trailing-space "}),
                "/token",
            ),
            (json!({"type": "bearer", "token": "x".repeat(16 * 1024 + 1)}), "/token"),
            (json!({"type": "oauth", "tiers": "send admin"}), "/tiers"),
        ] {
            let err = AuthSpec::parse(&v).unwrap_err();
            assert_eq!(err.0[0].pointer, pointer, "{v}: {err}");
        }
    }

    #[test]
    fn messages_never_echo_secret_values() {
        let canary = "CANARY-9f8e7d-secret";
        for v in [
            json!({"type": "bearer", "token": format!("{canary}\n")}),
            json!({"type": "basic", "username": format!("{canary}:x"), "password": "p"}),
            json!({"type": "service_account", "subject": "a@b", "service_account_json": canary}),
            json!({"type": "bearer", "token": canary.repeat(2000)}),
            json!({"type": "bot_token", "token": canary}),
        ] {
            let err = AuthSpec::parse(&v).unwrap_err();
            assert!(!format!("{err:?} {err}").contains("CANARY"), "{err}");
        }
        let ok = AuthSpec::parse(&json!({"type": "bearer", "token": canary})).unwrap();
        assert!(!format!("{ok:?}").contains("CANARY"));
    }

    #[test]
    fn response_shows_set_flags_only() {
        let v = auth_response(
            AuthType::ApiKeyHeader,
            &BTreeMap::from([("header".into(), "X-K".into())]),
            |_| true,
        );
        assert_eq!(v, json!({"type": "api_key_header", "header": "X-K", "key_set": true}));
    }
}
