//! Gmail's built-in operations: `send_email` (a MIME message built with mail-builder: encoded
//! non-ASCII headers, text and HTML as alternatives, cc and bcc, replies in a thread),
//! `list_messages` and `get_message` (the raw message parsed with mail-parser: decoded
//! headers, text and HTML bodies). Tokens come from the caller's Google account (My
//! Accounts) or from a service account with domain-wide delegation: an RS256 JWT assertion
//! (signed with ring) for the jwt-bearer grant, the token kept in memory until shortly before
//! it expires. A call outside the granted scopes fails with `insufficient_scope` before any
//! request is sent.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE, URL_SAFE_NO_PAD};
use chatterfly_domain::email::{Mailbox, check_header_text, parse_mailbox, parse_mailbox_list};
use chatterfly_domain::{OAuthProvider, gmail_operation_scopes, split_scopes};
use chatterfly_egress::{Egress, Limits, OutboundRequest, in_play};
use chatterfly_vault::{ExposeSecret, Secret};
use http::{HeaderValue, Method, header};
use mail_builder::MessageBuilder;
use mail_builder::headers::message_id::MessageId;
use mail_builder::headers::raw::Raw;
use mail_parser::{MessageParser, MimeHeaders};
use ring::signature::RsaKeyPair;
use rustls_pki_types::PrivateKeyDer;
use rustls_pki_types::pem::PemObject;
use serde_json::{Map, Value, json};
use url::Url;

use crate::{Redactor, ToolError};

/// Google's token endpoint, used when a key file names none.
pub const GOOGLE_TOKEN_URL: &str = "https://oauth2.googleapis.com/token";
/// A service-account token this close to expiry is replaced.
const SA_MARGIN_SECS: i64 = 300;
/// The lifetime asked for in an assertion (Google's maximum).
const ASSERTION_SECS: i64 = 3600;
const JWT_BEARER: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";

/// A parsed service-account key file. The private key stays inside ring's key pair.
pub struct ServiceAccountKey {
    pub client_email: String,
    pub key_id: Option<String>,
    pub token_uri: String,
    key: RsaKeyPair,
}

impl std::fmt::Debug for ServiceAccountKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServiceAccountKey")
            .field("client_email", &self.client_email)
            .field("token_uri", &self.token_uri)
            .finish_non_exhaustive()
    }
}

impl ServiceAccountKey {
    /// Parses a Google service-account JSON key file. Messages never quote the key.
    pub fn parse(json: &str) -> Result<Self, String> {
        let v: Value = serde_json::from_str(json).map_err(|_| "the key file is not JSON".to_owned())?;
        let field = |k: &str| v.get(k).and_then(Value::as_str).filter(|s| !s.is_empty());
        if let Some(t) = field("type")
            && t != "service_account"
        {
            return Err(format!("the key file is of type `{}`, not a service account", short(t)));
        }
        let client_email = field("client_email").ok_or("the key file has no `client_email`")?;
        if chatterfly_domain::email::check_address(client_email).is_err() {
            return Err("the key file's `client_email` is not an e-mail address".into());
        }
        let pem = field("private_key").ok_or("the key file has no `private_key`")?;
        let der = PrivateKeyDer::from_pem_slice(pem.as_bytes())
            .map_err(|_| "the key file's `private_key` is not a PEM private key".to_owned())?;
        let key = match &der {
            PrivateKeyDer::Pkcs8(k) => RsaKeyPair::from_pkcs8(k.secret_pkcs8_der()),
            PrivateKeyDer::Pkcs1(k) => RsaKeyPair::from_der(k.secret_pkcs1_der()),
            _ => return Err("the key file's `private_key` is not an RSA key (Google signs with RS256)".into()),
        }
        .map_err(|e| format!("the key file's `private_key` is not a usable RSA key ({e})"))?;
        let token_uri = field("token_uri").unwrap_or(GOOGLE_TOKEN_URL);
        let parsed = Url::parse(token_uri).map_err(|_| "the key file's `token_uri` is not a URL".to_owned())?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err("the key file's `token_uri` must be an http or https URL".into());
        }
        Ok(Self {
            client_email: client_email.to_owned(),
            key_id: field("private_key_id").map(str::to_owned),
            token_uri: token_uri.to_owned(),
            key,
        })
    }

    /// An RS256 JWT assertion for the jwt-bearer grant: act as `subject` with `scopes`.
    pub fn assertion(&self, subject: &str, scopes: &str, now: i64) -> Result<String, String> {
        let mut header = json!({"alg": "RS256", "typ": "JWT"});
        if let Some(kid) = &self.key_id {
            header["kid"] = Value::String(kid.clone());
        }
        let claims = json!({
            "iss": self.client_email, "sub": subject, "scope": scopes,
            "aud": self.token_uri, "iat": now, "exp": now + ASSERTION_SECS,
        });
        let signing_input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let mut sig = vec![0u8; self.key.public().modulus_len()];
        self.key
            .sign(
                &ring::signature::RSA_PKCS1_SHA256,
                &ring::rand::SystemRandom::new(),
                signing_input.as_bytes(),
                &mut sig,
            )
            .map_err(|_| "signing the assertion failed".to_owned())?;
        Ok(format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(sig)))
    }
}

/// The scopes a service account asks for: its connection's `tiers` (default send and read).
pub fn service_account_scopes(tiers: Option<&str>) -> Result<String, String> {
    let tiers: Vec<String> = tiers
        .unwrap_or("send read")
        .split([' ', ','])
        .filter(|t| !t.is_empty())
        .map(str::to_owned)
        .collect();
    let all = OAuthProvider::Gmail.scopes_for(&tiers)?;
    let identity = OAuthProvider::Gmail.identity_scopes();
    Ok(all
        .into_iter()
        .filter(|s| !identity.contains(s))
        .collect::<Vec<_>>()
        .join(" "))
}

/// Service-account tokens kept in memory, keyed by connection and its `updated_at` (an
/// edit of the key, subject or tiers makes a new entry).
#[derive(Default)]
pub struct ServiceAccountTokens {
    cache: Mutex<HashMap<(String, String), CachedToken>>,
    locks: crate::accounts::RefreshLocks,
}

#[derive(Clone)]
struct CachedToken {
    token: Secret,
    scopes: String,
    expires_at: i64,
}

impl ServiceAccountTokens {
    fn get(&self, key: &(String, String)) -> Option<CachedToken> {
        let map = self.cache.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        map.get(key)
            .filter(|t| t.expires_at - chrono::Utc::now().timestamp() > SA_MARGIN_SECS)
            .cloned()
    }

    fn put(&self, key: (String, String), t: CachedToken) {
        let mut map = self.cache.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if map.len() > 4096 {
            let now = chrono::Utc::now().timestamp();
            map.retain(|_, v| v.expires_at > now);
        }
        map.insert(key, t);
    }

    /// A token for the connection's service account: from memory, or a new one through
    /// the jwt-bearer grant (one request at a time per connection in this process).
    pub async fn token(
        &self,
        egress: &Egress,
        conn_key: (String, String),
        key_json: &str,
        subject: &str,
        tiers: Option<&str>,
    ) -> Result<(Secret, String), ToolError> {
        if let Some(t) = self.get(&conn_key) {
            return Ok((t.token, t.scopes));
        }
        let lock = self.locks.lock_for(&conn_key.0);
        let _one = lock.lock().await;
        if let Some(t) = self.get(&conn_key) {
            return Ok((t.token, t.scopes));
        }
        let key = ServiceAccountKey::parse(key_json).map_err(ToolError::InvalidCredentials)?;
        let scopes = service_account_scopes(tiers).map_err(ToolError::InvalidCredentials)?;
        let now = chrono::Utc::now().timestamp();
        let assertion = key.assertion(subject, &scopes, now).map_err(ToolError::Internal)?;
        let _held = in_play::hold([assertion.as_str()]);
        let url =
            Url::parse(&key.token_uri).map_err(|_| ToolError::InvalidCredentials("`token_uri` is not a URL".into()))?;
        let req = crate::accounts::form_post(url, &[("grant_type", JWT_BEARER), ("assertion", &assertion)]);
        let limits = Limits {
            connect_timeout: Duration::from_secs(10),
            total_timeout: Duration::from_secs(20),
            max_response_bytes: 256 * 1024,
            max_redirects: 0,
        }
        .within(egress.max_limits());
        let resp = egress.send(req, Some(limits)).await?;
        let body: Value = serde_json::from_slice(&resp.body).unwrap_or(Value::Null);
        if !resp.status.is_success() {
            let code: String = body
                .get("error")
                .and_then(Value::as_str)
                .unwrap_or("error")
                .chars()
                .filter(|c| c.is_ascii_alphanumeric() || *c == '_')
                .take(64)
                .collect();
            return Err(ToolError::InvalidCredentials(format!(
                "Google refused the service account's token request (HTTP {}, `{code}`): check the key, the subject and that domain-wide delegation allows these scopes: {scopes}",
                resp.status.as_u16()
            )));
        }
        let token = body
            .get("access_token")
            .and_then(Value::as_str)
            .filter(|t| !t.is_empty() && !t.chars().any(char::is_control))
            .ok_or_else(|| ToolError::Upstream {
                status: resp.status.as_u16(),
                message: "the token endpoint's answer has no `access_token`".into(),
            })?;
        let expires_in = body
            .get("expires_in")
            .and_then(Value::as_i64)
            .filter(|n| *n >= 0)
            .unwrap_or(3600);
        let cached = CachedToken {
            token: Secret::from(token.to_owned()),
            scopes: body.get("scope").and_then(Value::as_str).map_or(scopes, str::to_owned),
            expires_at: now + expires_in,
        };
        self.put(conn_key, cached.clone());
        Ok((cached.token, cached.scopes))
    }
}

/// Fails with `insufficient_scope` unless `scopes` allow the operation.
pub fn check_scope(operation: &str, scopes: &str) -> Result<(), ToolError> {
    let Some(allowed) = gmail_operation_scopes(operation) else {
        return Err(ToolError::NotFound(format!("Gmail has no operation `{operation}`")));
    };
    if split_scopes(scopes).any(|s| allowed.contains(&s)) {
        return Ok(());
    }
    let tier = if operation == "send_email" { "send" } else { "read" };
    Err(ToolError::InsufficientScope(format!(
        "`{operation}` needs the Gmail `{tier}` (or `full`) tier, which this account did not grant: add it under Settings → My Accounts (or to the service account's tiers)"
    )))
}

fn string_arg<'a>(args: &'a Map<String, Value>, name: &str) -> Result<Option<&'a str>, ToolError> {
    match args.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(invalid(name, format!("`{name}` must be a string"))),
    }
}

fn invalid(name: &str, detail: String) -> ToolError {
    ToolError::InvalidArguments {
        pointer: format!("/{name}"),
        detail,
    }
}

/// Header text as RFC 2047 encoded words where it is not plain ASCII: UTF-8, base64, each
/// word at most 75 characters (45 bytes of text), split between characters, separated by
/// spaces (which decoders drop between encoded words). Plain ASCII is returned as it is.
fn encode_words(text: &str) -> String {
    if text.bytes().all(|b| (0x20..0x7f).contains(&b)) && !text.contains("=?") {
        return text.to_owned();
    }
    let mut words = Vec::new();
    let mut chunk = String::new();
    for c in text.chars() {
        if chunk.len() + c.len_utf8() > 45 {
            words.push(format!("=?utf-8?B?{}?=", STANDARD.encode(chunk.as_bytes())));
            chunk.clear();
        }
        chunk.push(c);
    }
    if !chunk.is_empty() {
        words.push(format!("=?utf-8?B?{}?=", STANDARD.encode(chunk.as_bytes())));
    }
    words.join(" ")
}

/// `Name <address>` as a header value: a plain name as a quoted string, any other as
/// encoded words (never inside quotes, RFC 2047 section 5; mail-builder's own address
/// writer quotes them, which mail parsers report as a defect).
fn mailbox_text(m: &Mailbox) -> String {
    match &m.name {
        None => format!("<{}>", m.address),
        Some(n) if n.bytes().all(|b| (0x20..0x7f).contains(&b)) && !n.contains("=?") => {
            format!("\"{}\" <{}>", n.replace('\\', "\\\\").replace('"', "\\\""), m.address)
        }
        Some(n) => format!("{} <{}>", encode_words(n), m.address),
    }
}

fn address_header(list: &[Mailbox]) -> Raw<'static> {
    Raw::new(list.iter().map(mailbox_text).collect::<Vec<_>>().join(", "))
}

/// A Message-ID as given (`<id@host>` or `id@host`), without the angle brackets.
fn message_id_arg(name: &str, text: &str) -> Result<String, ToolError> {
    check_header_text(name, text).map_err(|e| invalid(name, e))?;
    let id = text.trim().trim_start_matches('<').trim_end_matches('>');
    if id.is_empty()
        || id.len() > 512
        || !id.bytes().all(|b| b.is_ascii_graphic() && b != b'<' && b != b'>')
        || !id.contains('@')
    {
        return Err(invalid(
            name,
            format!("`{name}` must be a Message-ID such as `<abc@mail.example.com>`"),
        ));
    }
    Ok(id.to_owned())
}

/// The MIME message of a `send_email` call, and the thread to put it in. Every address and
/// header text is checked first: a line break in a subject or a name is refused, never sent.
pub fn build_message(args: &Map<String, Value>) -> Result<(Vec<u8>, Option<String>), ToolError> {
    let to = parse_mailbox_list("to", args.get("to")).map_err(|e| invalid("to", e))?;
    let cc = parse_mailbox_list("cc", args.get("cc")).map_err(|e| invalid("cc", e))?;
    let bcc = parse_mailbox_list("bcc", args.get("bcc")).map_err(|e| invalid("bcc", e))?;
    if to.is_empty() {
        return Err(invalid("to", "`to` needs at least one address".into()));
    }
    let subject = string_arg(args, "subject")?.unwrap_or_default();
    check_header_text("subject", subject).map_err(|e| invalid("subject", e))?;
    let text = string_arg(args, "text")?;
    let html = string_arg(args, "html")?;
    if text.is_none() && html.is_none() {
        return Err(invalid(
            "text",
            "give the message a body: `text`, `html` or both".into(),
        ));
    }
    let reply_to = match string_arg(args, "reply_to")? {
        Some(r) => Some(parse_mailbox("reply_to", r).map_err(|e| invalid("reply_to", e))?),
        None => None,
    };
    let thread_id = match string_arg(args, "thread_id")? {
        Some(t) if !t.is_empty() && t.len() <= 256 && t.chars().all(|c| c.is_ascii_alphanumeric()) => {
            Some(t.to_owned())
        }
        Some(_) => {
            return Err(invalid(
                "thread_id",
                "`thread_id` must be a Gmail thread id (letters and digits)".into(),
            ));
        }
        None => None,
    };
    let in_reply_to = string_arg(args, "in_reply_to")?
        .map(|t| message_id_arg("in_reply_to", t))
        .transpose()?;

    // our own Message-ID: mail-builder's would carry this machine's host name
    let own_id: [u8; 16] = rand::random();
    let own_id: String = own_id.iter().map(|b| format!("{b:02x}")).collect();
    let mut m = MessageBuilder::new()
        .message_id(MessageId::new(format!("{own_id}@chatterfly.mail")))
        .header("To", address_header(&to))
        .header("Subject", Raw::new(encode_words(subject)));
    if !cc.is_empty() {
        m = m.header("Cc", address_header(&cc));
    }
    if !bcc.is_empty() {
        m = m.header("Bcc", address_header(&bcc));
    }
    if let Some(r) = reply_to {
        m = m.header("Reply-To", address_header(&[r]));
    }
    if let Some(id) = in_reply_to {
        m = m.in_reply_to(MessageId::new(id.clone())).references(MessageId::new(id));
    }
    if let Some(t) = text {
        m = m.text_body(t.to_owned());
    }
    if let Some(h) = html {
        m = m.html_body(h.to_owned());
    }
    let raw = m
        .write_to_vec()
        .map_err(|e| ToolError::Internal(format!("building the message: {e}")))?;
    Ok((raw, thread_id))
}

/// Sends one Gmail API request with the token; a non-2xx answer becomes `upstream_error`
/// with Google's message (redacted).
async fn gmail_request(
    egress: &Egress,
    (limits, tenant): (Option<Limits>, &Option<std::sync::Arc<str>>),
    mut req: OutboundRequest,
    token: &Secret,
    redactor: &Redactor,
) -> Result<Value, ToolError> {
    let mut auth = HeaderValue::from_str(&format!("Bearer {}", token.expose_secret()))
        .map_err(|_| ToolError::InvalidCredentials("the access token cannot be sent in a header".into()))?;
    auth.set_sensitive(true);
    req.tenant = tenant.clone();
    req.headers.insert(header::AUTHORIZATION, auth);
    req.headers
        .insert(header::ACCEPT, HeaderValue::from_static("application/json"));
    let resp = egress.send(req, limits).await?;
    let body: Value = serde_json::from_slice(&resp.body).unwrap_or(Value::Null);
    let body = redactor.value(body);
    if !resp.status.is_success() {
        let message = body
            .pointer("/error/message")
            .and_then(Value::as_str)
            .unwrap_or("no message")
            .chars()
            .take(500)
            .collect::<String>();
        return Err(ToolError::Upstream {
            status: resp.status.as_u16(),
            message: format!("Gmail answered HTTP {}: {message}", resp.status.as_u16()),
        });
    }
    if !body.is_object() {
        return Err(ToolError::Upstream {
            status: resp.status.as_u16(),
            message: "Gmail's answer is not a JSON object".into(),
        });
    }
    Ok(body)
}

fn api_url(base: &str, path: &str) -> Result<Url, ToolError> {
    Url::parse(&format!("{}{path}", base.trim_end_matches('/')))
        .map_err(|_| ToolError::Internal("the connection's base URL does not make a URL".into()))
}

/// Runs one Gmail operation with a token that holds `scopes`.
/// `tenant`: the workspace whose call it is.
pub async fn call(
    egress: &Egress,
    (limits, tenant): (Option<Limits>, Option<std::sync::Arc<str>>),
    base_url: &str,
    operation: &str,
    args: &Map<String, Value>,
    token: &Secret,
    scopes: &str,
) -> Result<Value, ToolError> {
    check_scope(operation, scopes)?;
    let redactor = Redactor::for_values(vec![token.expose_secret().to_owned()]);
    let get = |url: Url| {
        gmail_request(
            egress,
            (limits, &tenant),
            OutboundRequest::new(Method::GET, url),
            token,
            &redactor,
        )
    };
    match operation {
        "send_email" => {
            let (raw, thread_id) = build_message(args)?;
            let mut body = json!({"raw": URL_SAFE.encode(&raw)});
            if let Some(t) = thread_id {
                body["threadId"] = Value::String(t);
            }
            let mut req = OutboundRequest::new(Method::POST, api_url(base_url, "/gmail/v1/users/me/messages/send")?);
            req.headers
                .insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
            req.body = Some(bytes::Bytes::from(body.to_string()));
            let answer = gmail_request(egress, (limits, &tenant), req, token, &redactor).await?;
            Ok(json!({
                "id": answer.get("id"), "thread_id": answer.get("threadId"),
                "label_ids": answer.get("labelIds").cloned().unwrap_or_else(|| json!([])),
            }))
        }
        "list_messages" => {
            let mut url = api_url(base_url, "/gmail/v1/users/me/messages")?;
            {
                let mut q = url.query_pairs_mut();
                if let Some(query) = string_arg(args, "query")? {
                    q.append_pair("q", query);
                }
                if let Some(labels) = args.get("label_ids").and_then(Value::as_array) {
                    for l in labels.iter().filter_map(Value::as_str) {
                        q.append_pair("labelIds", l);
                    }
                }
                if let Some(n) = args.get("max_results").and_then(Value::as_u64) {
                    q.append_pair("maxResults", &n.to_string());
                }
                if let Some(p) = string_arg(args, "page_token")? {
                    q.append_pair("pageToken", p);
                }
            }
            let answer = get(url).await?;
            let messages: Vec<Value> = answer
                .get("messages")
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .map(|m| json!({"id": m.get("id"), "thread_id": m.get("threadId")}))
                        .collect()
                })
                .unwrap_or_default();
            Ok(json!({
                "messages": messages,
                "next_page_token": answer.get("nextPageToken"),
                "result_size_estimate": answer.get("resultSizeEstimate"),
            }))
        }
        "get_message" => {
            let id = string_arg(args, "id")?.unwrap_or_default();
            if id.is_empty() || !id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-') {
                return Err(invalid(
                    "id",
                    "`id` must be a Gmail message id (letters, digits, `-` and `_`)".into(),
                ));
            }
            let format = string_arg(args, "format")?.unwrap_or("full");
            let wire_format = if format == "minimal" { "minimal" } else { "raw" };
            let mut url = api_url(
                base_url,
                &format!(
                    "/gmail/v1/users/me/messages/{}",
                    chatterfly_domain::encode_component(id)
                ),
            )?;
            url.query_pairs_mut().append_pair("format", wire_format);
            let answer = get(url).await?;
            let mut out = json!({
                "id": answer.get("id"), "thread_id": answer.get("threadId"),
                "label_ids": answer.get("labelIds").cloned().unwrap_or_else(|| json!([])),
                "snippet": answer.get("snippet"), "internal_date": answer.get("internalDate"),
            });
            if wire_format == "raw" {
                let raw = answer
                    .get("raw")
                    .and_then(Value::as_str)
                    .and_then(|r| URL_SAFE_NO_PAD.decode(r.trim_end_matches('=')).ok())
                    .ok_or_else(|| ToolError::Upstream {
                        status: 200,
                        message: "Gmail's answer has no readable `raw` message".into(),
                    })?;
                describe_message(&raw, format, &mut out);
                if format == "raw" {
                    out["raw"] = answer.get("raw").cloned().unwrap_or(Value::Null);
                }
            }
            Ok(redactor.value(out))
        }
        other => Err(ToolError::NotFound(format!("Gmail has no operation `{other}`"))),
    }
}

fn addresses(a: Option<&mail_parser::Address<'_>>) -> Value {
    let Some(a) = a else { return json!([]) };
    Value::Array(
        a.iter()
            .map(|x| json!({"name": x.name(), "address": x.address()}))
            .collect(),
    )
}

fn header_text(v: &mail_parser::HeaderValue<'_>, raw: Option<&str>) -> Value {
    use mail_parser::HeaderValue as H;
    match v {
        H::Text(t) => Value::String(t.to_string()),
        H::TextList(l) => Value::String(l.join(", ")),
        H::Address(a) => Value::String(
            a.iter()
                .map(|x| match (x.name(), x.address()) {
                    (Some(n), Some(ad)) => format!("{n} <{ad}>"),
                    (None, Some(ad)) => ad.to_owned(),
                    (Some(n), None) => n.to_owned(),
                    (None, None) => String::new(),
                })
                .collect::<Vec<_>>()
                .join(", "),
        ),
        H::DateTime(d) => Value::String(d.to_rfc3339()),
        _ => raw.map_or(Value::Null, |r| Value::String(r.trim().to_owned())),
    }
}

/// Decoded headers, addresses, text and HTML bodies and attachments of a raw message.
fn describe_message(raw: &[u8], format: &str, out: &mut Value) {
    let Some(msg) = MessageParser::default().parse(raw) else {
        out["parse_error"] = Value::String("the message could not be parsed as MIME".into());
        return;
    };
    let mut headers = Map::new();
    for h in msg.headers() {
        let name = h.name().to_owned();
        let value = header_text(h.value(), msg.header_raw(h.name()));
        match headers.get_mut(&name) {
            Some(Value::Array(list)) => list.push(value),
            Some(existing) => {
                let first = existing.take();
                *existing = Value::Array(vec![first, value]);
            }
            None => {
                headers.insert(name, value);
            }
        }
    }
    out["headers"] = Value::Object(headers);
    out["subject"] = msg.subject().map_or(Value::Null, |s| Value::String(s.to_owned()));
    out["from"] = addresses(msg.from());
    out["to"] = addresses(msg.to());
    out["cc"] = addresses(msg.cc());
    out["reply_to"] = addresses(msg.reply_to());
    out["date"] = msg.date().map_or(Value::Null, |d| Value::String(d.to_rfc3339()));
    out["message_id"] = msg.message_id().map_or(Value::Null, |m| Value::String(m.to_owned()));
    if format == "metadata" {
        return;
    }
    out["text"] = msg.body_text(0).map_or(Value::Null, |t| Value::String(t.into_owned()));
    out["html"] = msg.body_html(0).map_or(Value::Null, |t| Value::String(t.into_owned()));
    out["attachments"] = Value::Array(
        msg.attachments()
            .map(|a| {
                json!({
                    "filename": a.attachment_name(),
                    "content_type": a.content_type().map(|c| match c.subtype() {
                        Some(sub) => format!("{}/{sub}", c.ctype()),
                        None => c.ctype().to_owned(),
                    }),
                    "size": a.len(),
                })
            })
            .collect(),
    );
}

fn short(s: &str) -> String {
    s.chars().take(40).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap_or_default()
    }

    #[test]
    fn a_message_with_everything_parses_back() {
        let (raw, thread) = build_message(&args(json!({
            "to": ["Zoë Ünlü <zoe@example.com>", "b@example.com"], "cc": "\"Doe, Jane\" <jane@example.com>",
            "bcc": "hidden@example.com", "subject": "Grüße aus Köln 👋", "text": "Hallo", "html": "<p>Hallo</p>",
            "reply_to": "replies@example.com", "thread_id": "18c0ffee", "in_reply_to": "<orig@mail.example.com>",
        })))
        .unwrap();
        assert_eq!(thread.as_deref(), Some("18c0ffee"));
        let text = String::from_utf8_lossy(&raw);
        assert!(text.is_ascii(), "headers and bodies are encoded: {text}");
        let msg = MessageParser::default().parse(&raw).unwrap();
        assert_eq!(msg.subject(), Some("Grüße aus Köln 👋"));
        assert_eq!(msg.to().unwrap().first().unwrap().name(), Some("Zoë Ünlü"));
        assert_eq!(msg.cc().unwrap().first().unwrap().name(), Some("Doe, Jane"));
        assert_eq!(
            msg.bcc().unwrap().first().unwrap().address(),
            Some("hidden@example.com")
        );
        assert_eq!(msg.body_text(0).unwrap(), "Hallo");
        assert_eq!(msg.body_html(0).unwrap(), "<p>Hallo</p>");
        assert_eq!(msg.in_reply_to().as_text(), Some("orig@mail.example.com"));
    }

    #[test]
    fn long_names_and_subjects_become_short_encoded_words() {
        let long = "Ünïcödé ".repeat(30);
        let (raw, _) = build_message(&args(json!({
            "to": format!("{long} <a@example.com>"), "subject": long.clone(), "text": "x",
        })))
        .unwrap();
        let text = String::from_utf8_lossy(&raw);
        for word in text.split(['\r', '\n', ' ', '\t']).filter(|w| w.starts_with("=?")) {
            assert!(word.len() <= 75, "{word}");
        }
        assert!(!text.contains("\"=?"), "no encoded word inside quotes: {text}");
        let msg = MessageParser::default().parse(&raw).unwrap();
        assert_eq!(msg.subject(), Some(long.as_str()));
        assert_eq!(msg.to().unwrap().first().unwrap().name(), Some(long.trim_end()));
        assert_eq!(encode_words("plain"), "plain");
        assert_eq!(
            mailbox_text(&Mailbox {
                name: Some("A \"B\"".into()),
                address: "a@b.co".into()
            }),
            "\"A \\\"B\\\"\" <a@b.co>"
        );
    }

    #[test]
    fn header_injection_and_bad_addresses_are_refused() {
        for bad in [
            json!({"to": "a@example.com", "subject": "Hi\r\nBcc: all@example.com", "text": "x"}),
            json!({"to": "Eve\n <e@example.com>", "subject": "s", "text": "x"}),
            json!({"to": "not-an-address", "subject": "s", "text": "x"}),
            json!({"to": "a@example.com", "subject": "s"}),
            json!({"to": [], "subject": "s", "text": "x"}),
            json!({"to": "a@example.com", "subject": "s", "text": "x", "in_reply_to": "<a@b>\r\nX: y"}),
            json!({"to": "a@example.com", "subject": "s", "text": "x", "thread_id": "../x"}),
        ] {
            assert!(build_message(&args(bad.clone())).is_err(), "{bad}");
        }
    }

    #[test]
    fn scopes_gate_operations() {
        check_scope("send_email", "https://www.googleapis.com/auth/gmail.send").unwrap();
        check_scope("get_message", "openid https://mail.google.com/").unwrap();
        let e = check_scope("list_messages", "https://www.googleapis.com/auth/gmail.send").unwrap_err();
        assert_eq!(e.code(), "insufficient_scope");
        assert_eq!(
            service_account_scopes(Some("send")).unwrap(),
            "https://www.googleapis.com/auth/gmail.send"
        );
        assert!(service_account_scopes(Some("write")).is_err());
    }

    #[test]
    fn key_files_that_are_not_rsa_service_accounts_are_refused() {
        for (json, needle) in [
            ("[]", "no `client_email`"),
            ("nope", "not JSON"),
            (
                r#"{"client_email": "sa@p.iam.gserviceaccount.com"}"#,
                "no `private_key`",
            ),
            (
                r#"{"client_email": "sa@p.iam.gserviceaccount.com", "private_key": "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"}"#,
                "RSA",
            ),
            (
                r#"{"type": "authorized_user", "client_email": "sa@p.iam.gserviceaccount.com", "private_key": "x"}"#,
                "not a service account",
            ),
        ] {
            let e = ServiceAccountKey::parse(json).unwrap_err();
            assert!(e.contains(needle), "{json}: {e}");
        }
    }
}
