//! The one outbound HTTP client of Chatterfly. Every call a tenant can cause (HTTP tools,
//! and later MCP, OpenAPI, OAuth and providers) goes through [`Egress`], which:
//!
//! - allows only `http` and `https`;
//! - resolves host names itself and refuses the call when any resolved address is not
//!   globally routable ([`ip::blocked_reason`]), unless the operator allowed it
//!   (`CHATTERFLY_ALLOW_PRIVATE`, [`AllowList`]); IP literals in any spelling are checked
//!   the same way after URL parsing normalized them;
//! - connects only to the addresses it checked, so there is no second lookup to rebind
//!   ([`conns`] dials the checked addresses itself; the streaming client's DNS resolver is
//!   the guarded one);
//! - follows redirects by hand, at most N, checking every hop, and drops credentials
//!   (Authorization, the connection's key header and key query parameter, cookies) when
//!   the origin changes;
//! - bounds every call: connect timeout, total timeout, response size (streamed, refused
//!   past the cap before it is all read), redirect count.
//!
//! `clippy.toml` forbids building a `reqwest::Client` anywhere else, so no code path can
//! bypass the guard by accident. This crate never logs a URL's query or a header value.

pub mod answers;
pub mod conns;
pub mod forms;
pub mod heavy;
pub mod in_play;
pub mod ip;
pub mod policy;
pub mod resolve;
mod streaming;

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http::header::{AUTHORIZATION, CONTENT_LENGTH, CONTENT_TYPE, COOKIE, LOCATION, PROXY_AUTHORIZATION};
use http::{HeaderMap, HeaderName, Method, StatusCode};
use url::{Host, Url};

pub use policy::AllowList;
pub use resolve::{Resolver, SystemResolver, resolve_checked};

/// Why an outbound call did not happen or did not finish. Messages never contain a URL's
/// query string or a header value (either may carry a credential).
#[derive(Debug, Clone, thiserror::Error)]
pub enum EgressError {
    #[error("calls to {host} are not allowed: {} is {reason}; an operator can allow it with CHATTERFLY_ALLOW_PRIVATE", addr.map_or_else(|| "it".to_owned(), |a| a.to_string()))]
    Blocked {
        host: String,
        addr: Option<IpAddr>,
        reason: &'static str,
    },
    #[error("{0}")]
    InvalidUrl(String),
    #[error("cannot resolve {host}: {message}")]
    Resolve { host: String, message: String },
    #[error("cannot connect to {host}: {message}")]
    Connect { host: String, message: String },
    #[error("the call took longer than {0:?}")]
    Timeout(Duration),
    #[error("the response is larger than {limit} bytes")]
    TooLarge { limit: usize },
    #[error("more than {limit} redirects")]
    TooManyRedirects { limit: usize },
    #[error("the HTTP exchange failed: {0}")]
    Http(String),
    /// The body came in a content encoding this server cannot decode (gzip, deflate and br
    /// are decoded): passed on as it is, a credential the upstream echoed in it could not
    /// be redacted, so it is not passed on at all.
    #[error(
        "the upstream answered in the `{0}` content encoding, which Chatterfly does not decode; the body is withheld"
    )]
    UnsupportedEncoding(String),
    #[error("cannot build the HTTP client: {0}")]
    Setup(String),
    /// The answers being read and handled at once have the server's budget for them
    /// (`CHATTERFLY_MAX_INFLIGHT_ANSWER_BYTES`), and none finished in time.
    #[error("too many large answers are being handled on this server at once; try again in a moment")]
    Busy,
}

impl EgressError {
    /// The stable problem code the API shows for this error.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Blocked { .. } => "ssrf_blocked",
            Self::InvalidUrl(_) => "invalid_url",
            Self::Resolve { .. } => "upstream_unresolvable",
            Self::Connect { .. } => "upstream_unreachable",
            Self::Timeout(_) => "upstream_timeout",
            Self::TooLarge { .. } => "upstream_too_large",
            Self::TooManyRedirects { .. } => "too_many_redirects",
            Self::Http(_) => "upstream_error",
            Self::UnsupportedEncoding(_) => "upstream_encoding",
            Self::Setup(_) => "internal",
            Self::Busy => "server_busy",
        }
    }
}

/// Bounds on one call. A connection may ask for tighter or looser values; they are capped
/// by the operator's maxima ([`Limits::within`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub connect_timeout: Duration,
    pub total_timeout: Duration,
    pub max_response_bytes: usize,
    pub max_redirects: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_secs(10),
            total_timeout: Duration::from_secs(30),
            max_response_bytes: 10 * 1024 * 1024,
            max_redirects: 5,
        }
    }
}

impl Limits {
    /// These limits, none above `max`.
    pub fn within(self, max: Limits) -> Limits {
        Limits {
            connect_timeout: self.connect_timeout.min(max.connect_timeout),
            total_timeout: self.total_timeout.min(max.total_timeout),
            max_response_bytes: self.max_response_bytes.min(max.max_response_bytes),
            max_redirects: self.max_redirects.min(max.max_redirects),
        }
    }
}

/// One request to send.
#[derive(Debug, Clone)]
pub struct OutboundRequest {
    pub method: Method,
    pub url: Url,
    pub headers: HeaderMap,
    pub body: Option<Bytes>,
    /// Headers that carry a credential besides Authorization (an API-key header); dropped
    /// with Authorization when a redirect leaves the origin.
    pub credential_headers: Vec<HeaderName>,
    /// Query parameters that carry a credential; removed from a redirect target on
    /// another origin.
    pub credential_query: Vec<String>,
    /// Whose call it is (a workspace): its answer takes room from their share of the
    /// budget for answers in flight first ([`answers`]).
    pub tenant: Option<Arc<str>>,
    /// Whether the request may be sent twice. `None`: as its method says (GET, HEAD,
    /// OPTIONS, PUT and DELETE may; POST and PATCH may not). `Some(true)`: a POST that
    /// changes nothing (a model's completion), which may then take a connection idle for
    /// longer and is sent once more, on a new one, if that connection turns out closed.
    pub repeatable: Option<bool>,
}

impl OutboundRequest {
    pub fn new(method: Method, url: Url) -> Self {
        Self {
            method,
            url,
            headers: HeaderMap::new(),
            body: None,
            credential_headers: Vec::new(),
            credential_query: Vec::new(),
            tenant: None,
            repeatable: None,
        }
    }
}

/// What came back.
#[derive(Debug, Clone)]
pub struct OutboundResponse {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
    /// The answer's room in the budget for answers in flight, held as long as this (or
    /// what the body becomes) lives.
    pub room: answers::AnswerRoom,
    /// The URL of the last hop.
    pub url: Url,
    pub redirects: usize,
}

/// The guarded client. Cheap to clone; share one per process.
#[derive(Clone)]
pub struct Egress {
    /// The connections `send` uses, each driven by the calling task ([`conns`]).
    conns: Arc<conns::Conns>,
    /// The guarded clients for response streams (MCP): one per workspace, each with a pool
    /// of its own ([`Egress::streaming_client`]).
    streaming: Arc<streaming::Clients>,
    allow: Arc<AllowList>,
    resolver: Arc<dyn Resolver>,
    max: Limits,
    /// Room for the answers being read and handled at once ([`answers`]).
    answers: answers::Answers,
    /// The gate of work on large answers ([`heavy`]).
    heavy: heavy::Heavy,
}

impl Egress {
    /// A client with the system resolver.
    pub fn new(allow: AllowList, max: Limits) -> Result<Self, EgressError> {
        Self::with_resolver(allow, max, Arc::new(SystemResolver))
    }

    /// A client with an injected resolver (tests).
    pub fn with_resolver(allow: AllowList, max: Limits, resolver: Arc<dyn Resolver>) -> Result<Self, EgressError> {
        let allow = Arc::new(allow);
        let mut tls = tls_config(&[])?;
        tls.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        // `send` has connections of its own, driven by each call's task; the streaming
        // clients' are opened, and driven, on the MCP sessions' runtime, whose threads
        // parse large answers: an HTTP call is never handed one of them
        let conns = conns::Conns::new(&tls);
        let streaming = Arc::new(streaming::Clients::new(streaming::Setup {
            tls,
            resolver: resolver.clone(),
            allow: allow.clone(),
            connect_timeout: max.connect_timeout,
        })?);
        Ok(Self {
            conns,
            streaming,
            allow,
            resolver,
            max,
            answers: answers::Answers::default(),
            heavy: heavy::Heavy::default(),
        })
    }

    /// The same client, also trusting these certificates for [`Egress::send`] (tests, with
    /// a certificate of their own for a local TLS upstream).
    #[doc(hidden)]
    pub fn trusting(mut self, extra: &[rustls::pki_types::CertificateDer<'static>]) -> Result<Self, EgressError> {
        self.conns = conns::Conns::new(&tls_config(extra)?);
        Ok(self)
    }

    /// The same client with its own budget for answers in flight.
    pub fn with_answers(mut self, answers: answers::Answers) -> Self {
        self.answers = answers;
        self
    }

    /// The budget for answers in flight, for answers read by other clients (MCP's).
    pub fn answers(&self) -> &answers::Answers {
        &self.answers
    }

    /// The gate of work on large answers, for the layers above that redact, parse and
    /// serialize them.
    pub fn heavy(&self) -> &heavy::Heavy {
        &self.heavy
    }

    pub fn max_limits(&self) -> Limits {
        self.max
    }

    /// The guarded client itself, for protocols that hold a response stream open (MCP's
    /// Streamable HTTP and HTTP+SSE transports) and so cannot go through [`Egress::send`].
    /// Host names are checked by the guarded resolver on every new connection; it follows
    /// no redirects and uses no proxy. IP literals never reach a resolver: the caller must
    /// pass every URL it will request through [`Egress::check_target`] first (the MCP
    /// client checks the server URL, and the SSE transport keeps its POST endpoint on the
    /// same origin). There is no total timeout: the caller bounds each exchange. Its
    /// connections are pooled apart from [`Egress::send`]'s, and apart for each `tenant`
    /// (the workspace whose calls it carries; `None` for calls of no workspace): a server
    /// that sends an answer nobody asked for leaves it on its connection, where the next
    /// request on that connection would read it, so no two workspaces ever share one. A
    /// workspace's client lives as long as its holders (its sessions): its idle connections
    /// close with the last of them.
    pub fn streaming_client(&self, tenant: Option<&str>) -> Result<Arc<reqwest::Client>, EgressError> {
        self.streaming.get(tenant)
    }

    /// The guard's own error inside an error chain from the streaming client (a refused
    /// address, a failed connect, a timeout), if there is one.
    pub fn classify(error: &(dyn std::error::Error + 'static), url: &Url) -> Option<EgressError> {
        let mut source: Option<&(dyn std::error::Error + 'static)> = Some(error);
        while let Some(s) = source {
            if let Some(inner) = s.downcast_ref::<EgressError>() {
                return Some(inner.clone());
            }
            if let Some(e) = s.downcast_ref::<reqwest::Error>() {
                // the streaming client has only a connect timeout
                if e.is_timeout() {
                    return Some(EgressError::Connect {
                        host: host_of(url),
                        message: "the connection timed out".into(),
                    });
                }
                if e.is_connect() {
                    return Some(map_reqwest_ref(e, url, Limits::default()));
                }
            }
            source = s.source();
        }
        None
    }

    /// Checks a target without calling it: the scheme, and every address the host is or
    /// resolves to. Returns the addresses.
    pub async fn check_target(&self, url: &Url) -> Result<Vec<IpAddr>, EgressError> {
        match literal_or_name(url)? {
            Target::Ip(host, ip) => {
                self.allow.check(&host, ip).map_err(|reason| EgressError::Blocked {
                    host,
                    addr: Some(ip),
                    reason,
                })?;
                Ok(vec![ip])
            }
            Target::Name(host) => resolve_checked(self.resolver.as_ref(), &self.allow, &host).await,
        }
    }

    /// Sends a request under the guard and the limits (the operator's maxima when `None`).
    pub async fn send(&self, req: OutboundRequest, limits: Option<Limits>) -> Result<OutboundResponse, EgressError> {
        let limits = limits.unwrap_or(self.max).within(self.max);
        match tokio::time::timeout(limits.total_timeout, self.send_inner(req, limits)).await {
            Ok(result) => result,
            Err(_) => Err(EgressError::Timeout(limits.total_timeout)),
        }
    }

    async fn send_inner(&self, req: OutboundRequest, limits: Limits) -> Result<OutboundResponse, EgressError> {
        let OutboundRequest {
            mut method,
            mut url,
            mut headers,
            mut body,
            credential_headers,
            credential_query,
            tenant,
            repeatable,
        } = req;
        let mut redirects = 0;
        let mut sent_again = false;
        loop {
            // IP literals are checked here; names are checked by the guarded resolver as
            // the client connects (and only the checked addresses are dialled).
            // Names refused by name are refused here too, before the client parses them.
            match literal_or_name(&url)? {
                Target::Ip(host, ip) => self.allow.check(&host, ip).map_err(|reason| EgressError::Blocked {
                    host,
                    addr: Some(ip),
                    reason,
                })?,
                Target::Name(host) => self.allow.check_name(&host).map_err(|reason| EgressError::Blocked {
                    host,
                    addr: None,
                    reason,
                })?,
            }
            let mut lease = self
                .conns
                .lease(
                    &url,
                    tenant.as_ref(),
                    conns::Dial {
                        resolver: self.resolver.as_ref(),
                        allow: &self.allow,
                        connect_timeout: limits.connect_timeout,
                    },
                    // sent again: on a new connection (the idle ones may be as stale as
                    // the one that failed)
                    if sent_again {
                        Duration::ZERO
                    } else if repeatable.unwrap_or_else(|| method.is_idempotent()) {
                        conns::IDLE_FOR
                    } else {
                        conns::UNREPEATABLE_IDLE_FOR
                    },
                )
                .await?;
            let request = hyper_request(&method, &url, &headers, body.as_ref())?;
            let resp = match lease.send(request).await {
                Ok(resp) => resp,
                // a kept-alive connection the upstream closed just as the request went out
                // (servers close idle connections after a few seconds: gunicorn after 2):
                // a request that may be repeated is sent once more, on a new connection
                Err(e)
                    if lease.reused
                        && !sent_again
                        && repeatable.unwrap_or_else(|| method.is_idempotent())
                        && conns::dropped(&e) =>
                {
                    sent_again = true;
                    tracing::debug!(
                        "the upstream closed the connection before it answered; sending the request once more"
                    );
                    continue;
                }
                Err(e) => return Err(EgressError::Http(root_cause(&e))),
            };
            let status = resp.status();
            let location = resp
                .headers()
                .get(LOCATION)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            if let (true, Some(location)) = (status.is_redirection(), location) {
                if redirects >= limits.max_redirects {
                    return Err(EgressError::TooManyRedirects {
                        limit: limits.max_redirects,
                    });
                }
                // the redirect's own body (a line of HTML, usually) is read and dropped, so
                // its connection can carry the next hop or the next call
                let mut unwanted = resp.into_body();
                if lease.drain(&mut unwanted, REDIRECT_BODY_KEPT).await {
                    self.conns.give_back(lease);
                }
                let mut next = url
                    .join(&location)
                    .map_err(|e| EgressError::InvalidUrl(format!("the redirect target is not a URL: {e}")))?;
                // user info in a redirect would become an Authorization header the
                // connection never had: an upstream cannot choose what credentials are sent
                if !next.username().is_empty() || next.password().is_some() {
                    let _ = next.set_username("");
                    let _ = next.set_password(None);
                }
                if next.origin() != url.origin() {
                    for h in [AUTHORIZATION, PROXY_AUTHORIZATION, COOKIE]
                        .iter()
                        .chain(&credential_headers)
                    {
                        headers.remove(h);
                    }
                    strip_query(&mut next, &credential_query);
                }
                let to_get = status == StatusCode::SEE_OTHER
                    || ((status == StatusCode::MOVED_PERMANENTLY || status == StatusCode::FOUND)
                        && method == Method::POST);
                if to_get {
                    if method != Method::HEAD {
                        method = Method::GET;
                    }
                    body = None;
                    headers.remove(CONTENT_TYPE);
                    headers.remove(CONTENT_LENGTH);
                }
                redirects += 1;
                url = next;
                continue;
            }
            let mut headers = resp.headers().clone();
            // a body still encoded could hide an echoed credential from redaction: it is
            // decoded here (one layer of gzip, deflate or br) or withheld
            let coding = body_coding(&headers)?;
            let factor = answers::factor(&headers);
            let mut room = answers::AnswerRoom::of(tenant.clone());
            let (_, incoming) = resp.into_parts();
            let raw = read_capped(&mut lease, incoming, limits, (&self.answers, &mut room, factor)).await?;
            self.conns.give_back(lease);
            let body = match coding {
                None => raw,
                Some(c) => {
                    let cap = limits.max_response_bytes;
                    let decoded = if raw.len() >= heavy::HEAVY_BYTES / 16 {
                        // a large expansion is a large job: off the async workers
                        self.heavy.run("", move || decode(c, &raw, cap)).await.map_err(|_| {
                            EgressError::Http(format!("the upstream's {c:?} body could not be decoded"))
                        })??
                    } else {
                        decode(c, &raw, cap)?
                    };
                    if !self.answers.cover(&mut room, decoded.len(), factor).await {
                        return Err(EgressError::Busy);
                    }
                    headers.remove(reqwest::header::CONTENT_ENCODING);
                    headers.remove(CONTENT_LENGTH);
                    decoded
                }
            };
            return Ok(OutboundResponse {
                status,
                headers,
                body,
                room,
                url,
                redirects,
            });
        }
    }
}

/// rustls with the ring provider, trusting the webpki roots (and `extra`).
fn tls_config(extra: &[rustls::pki_types::CertificateDer<'static>]) -> Result<rustls::ClientConfig, EgressError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    for cert in extra {
        roots.add(cert.clone()).map_err(|e| EgressError::Setup(e.to_string()))?;
    }
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| EgressError::Setup(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

/// The most of a redirect's body read to keep its connection (beyond it, the connection
/// is closed instead).
const REDIRECT_BODY_KEPT: usize = 64 * 1024;

enum Target {
    Ip(String, IpAddr),
    Name(String),
}

/// The scheme must be http or https; the host is an IP literal (already normalized by the
/// URL parser: decimal, octal, hex and short IPv4 forms become dotted quads) or a name.
fn literal_or_name(url: &Url) -> Result<Target, EgressError> {
    if !matches!(url.scheme(), "http" | "https") {
        return Err(EgressError::InvalidUrl(format!(
            "only http and https can be called, not {}",
            url.scheme()
        )));
    }
    match url.host() {
        Some(Host::Ipv4(ip)) => Ok(Target::Ip(ip.to_string(), IpAddr::V4(ip))),
        Some(Host::Ipv6(ip)) => Ok(Target::Ip(ip.to_string(), IpAddr::V6(ip))),
        Some(Host::Domain(d)) if !d.is_empty() => Ok(Target::Name(d.to_owned())),
        _ => Err(EgressError::InvalidUrl("the URL has no host".into())),
    }
}

fn strip_query(url: &mut Url, names: &[String]) {
    if names.is_empty() || url.query().is_none() {
        return;
    }
    let kept: Vec<(String, String)> = url
        .query_pairs()
        .filter(|(k, _)| !names.iter().any(|n| n == k))
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    if kept.is_empty() {
        url.set_query(None);
    } else {
        url.query_pairs_mut().clear().extend_pairs(kept);
    }
}

fn host_of(url: &Url) -> String {
    url.host_str().unwrap_or_default().to_owned()
}

fn map_reqwest_ref(e: &reqwest::Error, url: &Url, limits: Limits) -> EgressError {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(s) = source {
        if let Some(inner) = s.downcast_ref::<EgressError>() {
            return inner.clone();
        }
        source = s.source();
    }
    if e.is_timeout() {
        return EgressError::Timeout(limits.connect_timeout);
    }
    // root causes never include the URL: reqwest puts it only in its own top-level message
    if e.is_connect() {
        return EgressError::Connect {
            host: host_of(url),
            message: root_cause_below(e),
        };
    }
    EgressError::Http(root_cause_below(e))
}

/// The deepest cause of a reqwest error, leaving out reqwest's own message (which names
/// the URL, query included).
fn root_cause_below(e: &reqwest::Error) -> String {
    use std::error::Error as _;
    match e.source() {
        Some(s) => root_cause(s),
        None => if e.is_connect() {
            "connection failed"
        } else {
            "request failed"
        }
        .to_owned(),
    }
}

fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut last = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        last = s.to_string();
        source = s.source();
    }
    last
}

/// A content coding this server decodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Coding {
    Gzip,
    Deflate,
    Brotli,
}

/// How the body is encoded, from every `Content-Encoding` and `Transfer-Encoding` line:
/// nothing, or one layer this server decodes. Anything else (two layers, an unknown coding,
/// a transfer coding other than `chunked`, which the HTTP client leaves in place) is
/// refused.
const REGISTERED_CODINGS: [&str; 13] = [
    "compress",
    "x-compress",
    "zstd",
    "exi",
    "pack200-gzip",
    "aes128gcm",
    "dcb",
    "dcz",
    "gzip",
    "x-gzip",
    "deflate",
    "br",
    "chunked",
];

fn body_coding(headers: &reqwest::header::HeaderMap) -> Result<Option<Coding>, EgressError> {
    let list = |name| {
        headers
            .get_all(name)
            .iter()
            .flat_map(|v| {
                String::from_utf8_lossy(v.as_bytes())
                    .split(',')
                    .map(|c| c.trim().to_ascii_lowercase())
                    .filter(|c| !c.is_empty())
                    .collect::<Vec<_>>()
            })
            .collect::<Vec<_>>()
    };
    // the upstream's own words are not repeated unless they are a registered coding's name:
    // a header value can carry anything, an echoed credential too
    let refuse = |what: &str| {
        let named: Vec<&str> = what
            .split(", ")
            .map(|c| {
                if REGISTERED_CODINGS.contains(&c) {
                    c
                } else {
                    "(an unregistered name)"
                }
            })
            .collect();
        EgressError::UnsupportedEncoding(named.join(", "))
    };
    let transfer = list(reqwest::header::TRANSFER_ENCODING);
    if let Some(other) = transfer.iter().find(|c| c.as_str() != "chunked") {
        return Err(refuse(other));
    }
    let content: Vec<String> = list(reqwest::header::CONTENT_ENCODING)
        .into_iter()
        .filter(|c| c != "identity")
        .collect();
    match content.as_slice() {
        [] => Ok(None),
        [one] => match one.as_str() {
            "gzip" | "x-gzip" => Ok(Some(Coding::Gzip)),
            "deflate" => Ok(Some(Coding::Deflate)),
            "br" => Ok(Some(Coding::Brotli)),
            other => Err(refuse(other)),
        },
        several => Err(refuse(&several.join(", "))),
    }
}

/// Decodes one layer, at most `cap` bytes of output (a small body that inflates past the
/// cap is refused like a large one).
fn decode(coding: Coding, raw: &[u8], cap: usize) -> Result<Bytes, EgressError> {
    use std::io::Read;
    let limit = u64::try_from(cap).unwrap_or(u64::MAX).saturating_add(1);
    let mut out = Vec::new();
    let read = match coding {
        Coding::Gzip => flate2::read::MultiGzDecoder::new(raw).take(limit).read_to_end(&mut out),
        Coding::Deflate => {
            // `deflate` is zlib-wrapped by the standard; some servers send it bare
            let zlib = flate2::read::ZlibDecoder::new(raw).take(limit).read_to_end(&mut out);
            if zlib.is_err() {
                out.clear();
                flate2::read::DeflateDecoder::new(raw).take(limit).read_to_end(&mut out)
            } else {
                zlib
            }
        }
        Coding::Brotli => brotli_decompressor::Decompressor::new(raw, 4096)
            .take(limit)
            .read_to_end(&mut out),
    };
    if read.is_err() {
        return Err(EgressError::Http(format!(
            "the upstream's {coding:?} body could not be decoded"
        )));
    }
    if out.len() > cap {
        return Err(EgressError::TooLarge { limit: cap });
    }
    Ok(Bytes::from(out))
}

/// The body, at most `limits.max_response_bytes`, with room in the answers' budget taken
/// for all of a declared length before reading, or as the bytes arrive.
async fn read_capped(
    lease: &mut conns::Lease,
    mut body: hyper::body::Incoming,
    limits: Limits,
    (answers, room, factor): (&answers::Answers, &mut answers::AnswerRoom, usize),
) -> Result<Bytes, EgressError> {
    use hyper::body::Body as _;
    let cap = limits.max_response_bytes;
    if let Some(n) = body.size_hint().exact() {
        if n > cap as u64 {
            return Err(EgressError::TooLarge { limit: cap });
        }
        if !answers.cover(room, usize::try_from(n).unwrap_or(cap), factor).await {
            return Err(EgressError::Busy);
        }
    }
    let mut buf = BytesMut::new();
    while let Some(chunk) = lease
        .chunk(&mut body)
        .await
        .map_err(|e| EgressError::Http(root_cause(&e)))?
    {
        if buf.len() + chunk.len() > cap {
            return Err(EgressError::TooLarge { limit: cap });
        }
        if !answers.cover(room, buf.len() + chunk.len(), factor).await {
            return Err(EgressError::Busy);
        }
        if buf.is_empty() && body.is_end_stream() {
            // the whole body in one chunk: no copy
            return Ok(chunk);
        }
        buf.extend_from_slice(&chunk);
    }
    Ok(buf.freeze())
}

/// The request as it goes on the wire: origin-form target, `Host` (unless the caller set
/// one), `Accept: */*` (unless the caller set one), the URL's user info as Basic
/// credentials (unless the caller set `Authorization`).
fn hyper_request(
    method: &Method,
    url: &Url,
    headers: &HeaderMap,
    body: Option<&Bytes>,
) -> Result<hyper::Request<http_body_util::Full<Bytes>>, EgressError> {
    let target = &url[url::Position::BeforePath..url::Position::AfterQuery];
    let target = if target.is_empty() { "/" } else { target };
    let uri = http::Uri::try_from(target)
        .map_err(|e| EgressError::InvalidUrl(format!("the URL's path cannot be sent: {e}")))?;
    let mut request = hyper::Request::new(http_body_util::Full::new(body.cloned().unwrap_or_default()));
    *request.method_mut() = method.clone();
    *request.uri_mut() = uri;
    let h = request.headers_mut();
    h.clone_from(headers);
    if !h.contains_key(http::header::HOST) {
        let host = host_of(url);
        let value = match url.port() {
            Some(port) => format!("{host}:{port}"),
            None => host,
        };
        let value = http::HeaderValue::try_from(value)
            .map_err(|_| EgressError::InvalidUrl("the URL's host cannot be sent".into()))?;
        h.insert(http::header::HOST, value);
    }
    if !h.contains_key(http::header::ACCEPT) {
        h.insert(http::header::ACCEPT, http::HeaderValue::from_static("*/*"));
    }
    if (!url.username().is_empty() || url.password().is_some()) && !h.contains_key(AUTHORIZATION) {
        use base64::Engine as _;
        let decode = |s: &str| percent_encoding::percent_decode_str(s).decode_utf8_lossy().into_owned();
        let user = decode(url.username());
        let pass = url.password().map(decode).unwrap_or_default();
        let token = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"));
        let mut value = http::HeaderValue::try_from(format!("Basic {token}"))
            .map_err(|_| EgressError::InvalidUrl("the URL's user info cannot be sent".into()))?;
        value.set_sensitive(true);
        h.insert(AUTHORIZATION, value);
    }
    Ok(request)
}

#[cfg(test)]
mod coding_tests {
    use std::io::Write;

    use reqwest::header::{CONTENT_ENCODING, HeaderMap, HeaderValue, TRANSFER_ENCODING};

    use super::*;

    fn headers(lines: &[(&reqwest::header::HeaderName, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (name, value) in lines {
            h.append((*name).clone(), HeaderValue::from_str(value).unwrap());
        }
        h
    }

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    #[test]
    fn one_layer_is_decoded_and_anything_more_is_refused() {
        assert_eq!(body_coding(&headers(&[])).unwrap(), None);
        assert_eq!(body_coding(&headers(&[(&CONTENT_ENCODING, "identity")])).unwrap(), None);
        assert_eq!(body_coding(&headers(&[(&TRANSFER_ENCODING, "chunked")])).unwrap(), None);
        assert_eq!(
            body_coding(&headers(&[(&CONTENT_ENCODING, "GZIP")])).unwrap(),
            Some(Coding::Gzip)
        );
        assert_eq!(
            body_coding(&headers(&[(&CONTENT_ENCODING, "identity"), (&CONTENT_ENCODING, "br")])).unwrap(),
            Some(Coding::Brotli)
        );
        // every line counts: two layers, on one line or two, are refused
        for lines in [
            vec![(&CONTENT_ENCODING, "gzip"), (&CONTENT_ENCODING, "gzip")],
            vec![(&CONTENT_ENCODING, "gzip, gzip")],
            vec![(&CONTENT_ENCODING, "deflate"), (&CONTENT_ENCODING, "deflate")],
            vec![(&CONTENT_ENCODING, "zstd")],
            vec![(&CONTENT_ENCODING, "bogus")],
            // a transfer coding other than chunked is left in the body by the client
            vec![(&TRANSFER_ENCODING, "gzip, chunked")],
            vec![(&TRANSFER_ENCODING, "gzip"), (&CONTENT_ENCODING, "gzip")],
        ] {
            assert!(
                matches!(body_coding(&headers(&lines)), Err(EgressError::UnsupportedEncoding(_))),
                "{lines:?}"
            );
        }
        // the upstream's words are not repeated, unless a registered coding's name
        let refused = |v: &str| {
            body_coding(&headers(&[(&CONTENT_ENCODING, v)]))
                .unwrap_err()
                .to_string()
        };
        let said = refused("Canary-6aebe11e03ee28d3");
        assert!(!said.to_ascii_lowercase().contains("6aebe11e"), "{said}");
        assert!(said.contains("(an unregistered name)"), "{said}");
        assert!(refused("zstd").contains("`zstd`"));
        assert!(refused("gzip, secret-value").contains("`gzip, (an unregistered name)`"));
    }

    #[test]
    fn decoding_is_whole_and_capped() {
        // a body of two gzip members is decoded whole
        let mut two = gzip(b"first half, ");
        two.extend(gzip(b"second half"));
        assert_eq!(
            &decode(Coding::Gzip, &two, 1000).unwrap()[..],
            b"first half, second half"
        );
        // zlib-wrapped and bare deflate
        let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
        z.write_all(b"zlib body").unwrap();
        assert_eq!(
            &decode(Coding::Deflate, &z.finish().unwrap(), 100).unwrap()[..],
            b"zlib body"
        );
        let mut d = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::default());
        d.write_all(b"bare body").unwrap();
        assert_eq!(
            &decode(Coding::Deflate, &d.finish().unwrap(), 100).unwrap()[..],
            b"bare body"
        );
        // a bomb: 10 MB of zeros in about 10 KB, against a 1 MB cap
        let bomb = gzip(&vec![0u8; 10_000_000]);
        assert!(bomb.len() < 100_000);
        assert!(matches!(
            decode(Coding::Gzip, &bomb, 1_000_000),
            Err(EgressError::TooLarge { .. })
        ));
        // not what it says it is
        assert!(decode(Coding::Gzip, b"plain text", 100).is_err());
    }
}
