//! The connections [`crate::Egress::send`] sends through: HTTP/1.1 over TCP or TLS, each
//! driven by the task that sends on it. The request, the response head and every chunk of
//! the body are awaited while the same task polls the connection itself, so a call costs no
//! hand-off to a connection task and back (two cross-thread wake-ups a call with a pooled
//! client such as reqwest's; on a machine with few cores, the larger part of a proxied
//! call's cost). Between calls a connection waits in a pool of idle ones, not polled by
//! anybody; on checkout it is polled once, so one the upstream closed meanwhile is noticed
//! and dropped instead of used.
//!
//! New connections go only to addresses the guard checked: a name is resolved here, through
//! [`resolve_checked`], and the connection is made to the checked address itself; IP
//! literals were checked by the caller. TLS is rustls with the webpki roots and the ring
//! provider; only HTTP/1.1 is offered (ALPN `http/1.1`). Connections are pooled by scheme,
//! host, port and workspace (workspaces never share one), at most [`IDLE_PER_HOST`] each and
//! [`IDLE_TOTAL`] in all, for at most [`IDLE_FOR`]; a task sweeps out every second those the
//! upstream closed. A request that is never sent twice (POST, PATCH) takes only one idle for
//! under [`UNREPEATABLE_IDLE_FOR`], and a request sent again after its connection was
//! closed under it goes on a new one.

use std::collections::HashMap;
use std::future::poll_fn;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;
use url::{Host, Url};

use crate::policy::AllowList;
use crate::resolve::{Resolver, resolve_checked};
use crate::{EgressError, host_of};

/// Idle connections kept per scheme, host and port.
pub const IDLE_PER_HOST: usize = 32;
/// Idle connections kept in all.
pub const IDLE_TOTAL: usize = 256;
/// How long a connection may wait idle before it is closed.
pub const IDLE_FOR: Duration = Duration::from_secs(60);
/// The longest a connection may have waited idle to carry a request that is never sent
/// twice (POST, PATCH). Servers close idle connections after a few seconds (gunicorn after
/// 2); a request written just as the upstream closes its end gets no answer, and while one
/// that may be repeated is sent again on a new connection, one that may not would fail. So
/// such a request takes only a connection idle for less than this, else a new one (the
/// older idle ones stay for requests that may be repeated).
pub const UNREPEATABLE_IDLE_FOR: Duration = Duration::from_secs(1);

/// A TCP stream, plain or under TLS.
pub(crate) enum Stream {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

impl AsyncRead for Stream {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Stream::Plain(s) => s.is_write_vectored(),
            Stream::Tls(s) => s.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_flush(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

type Connection = Pin<Box<http1::Connection<TokioIo<Stream>, Full<Bytes>>>>;

/// Where a connection goes: scheme, host (as the URL spells it) and port; and whose calls
/// it carries (the workspace, `None` for the platform's own). Workspaces never share a
/// connection: an upstream that sent one answer too many leaves its connection an answer
/// behind, and every later call on it would get the answer to the call before, which must
/// never be another workspace's.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Key {
    https: bool,
    host: String,
    port: u16,
    tenant: Option<Arc<str>>,
}

struct Idle {
    sender: http1::SendRequest<Full<Bytes>>,
    conn: Connection,
    since: Instant,
}

/// The pool of idle connections and what it takes to open new ones.
pub(crate) struct Conns {
    idle: Mutex<Pool>,
    tls: TlsConnector,
    /// A task sweeps the pool; else the calls that use it do.
    swept_by_task: bool,
}

#[derive(Default)]
struct Pool {
    by_key: HashMap<Key, Vec<Idle>>,
    count: usize,
    swept: Option<Instant>,
}

impl Pool {
    /// Closes every connection idle for longer than [`IDLE_FOR`], and every one the
    /// upstream closed (each polled once, with nobody to wake), at most every `every`.
    fn sweep(&mut self, now: Instant, every: Duration) {
        if self.swept.is_some_and(|at| now.duration_since(at) < every) {
            return;
        }
        self.swept = Some(now);
        let mut count = 0;
        let mut cx = Context::from_waker(Waker::noop());
        self.by_key.retain(|_, list| {
            list.retain_mut(|c| {
                now.duration_since(c.since) < IDLE_FOR
                    && !c.sender.is_closed()
                    && c.conn.as_mut().poll(&mut cx).is_pending()
            });
            count += list.len();
            !list.is_empty()
        });
        self.count = count;
    }
}

/// How often the pool is swept: by a task of its own, or, without one (no runtime when the
/// client was built), by the calls that use it (less often: a call should not pay for it).
const SWEEP_EVERY: Duration = Duration::from_secs(1);
const SWEEP_ON_USE: Duration = Duration::from_secs(5);

/// One connection, taken from the pool or new, for one exchange. Given back with
/// [`Conns::give_back`] once the whole body was read; dropped otherwise (which closes it).
pub(crate) struct Lease {
    key: Key,
    sender: http1::SendRequest<Full<Bytes>>,
    /// `None` once the connection future finished (closed, or failed): dropped then, so
    /// that a request it never took fails at once instead of waiting for it.
    conn: Option<Connection>,
    /// Taken from the pool rather than opened for this call.
    pub(crate) reused: bool,
}

/// What a call's connect step needs from the client.
pub(crate) struct Dial<'a> {
    pub resolver: &'a dyn Resolver,
    pub allow: &'a AllowList,
    pub connect_timeout: Duration,
}

impl Conns {
    /// The pool, swept every second by a task on the current runtime (if there is one; else
    /// only by the calls that use it), so a connection the upstream closed while idle does
    /// not hold its socket until the next call to that origin.
    pub(crate) fn new(tls: &rustls::ClientConfig) -> Arc<Self> {
        let mut tls = tls.clone();
        tls.alpn_protocols = vec![b"http/1.1".to_vec()];
        let runtime = tokio::runtime::Handle::try_current().ok();
        let conns = Arc::new(Self {
            idle: Mutex::new(Pool::default()),
            tls: TlsConnector::from(Arc::new(tls)),
            swept_by_task: runtime.is_some(),
        });
        if let Some(runtime) = runtime {
            let weak = Arc::downgrade(&conns);
            runtime.spawn(async move {
                let mut every = tokio::time::interval(SWEEP_EVERY);
                every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                loop {
                    every.tick().await;
                    let Some(conns) = weak.upgrade() else {
                        return;
                    };
                    if let Ok(mut pool) = conns.idle.lock() {
                        pool.sweep(Instant::now(), SWEEP_EVERY);
                    }
                }
            });
        }
        conns
    }

    /// An idle connection to the URL's origin for this tenant that is still open and has
    /// waited less than `max_idle` ([`IDLE_FOR`], or [`UNREPEATABLE_IDLE_FOR`] for a request
    /// that is never sent twice; zero: a new connection), or a new one.
    pub(crate) async fn lease(
        &self,
        url: &Url,
        tenant: Option<&Arc<str>>,
        dial: Dial<'_>,
        max_idle: Duration,
    ) -> Result<Lease, EgressError> {
        let key = key_of(url, tenant)?;
        if let Some(lease) = self.take_idle(&key, max_idle) {
            return Ok(lease);
        }
        let limit = dial.connect_timeout;
        match tokio::time::timeout(limit, self.open(key, url, dial)).await {
            Ok(opened) => opened,
            Err(_) => Err(EgressError::Timeout(limit)),
        }
    }

    fn take_idle(&self, key: &Key, max_idle: Duration) -> Option<Lease> {
        let now = Instant::now();
        loop {
            let taken = {
                let mut pool = self.idle.lock().ok()?;
                if !self.swept_by_task {
                    pool.sweep(now, SWEEP_ON_USE);
                }
                let list = pool.by_key.get_mut(key)?;
                // the last one back is the freshest: if it has waited too long, all have
                if list.last().is_some_and(|c| now.duration_since(c.since) >= max_idle) {
                    return None;
                }
                let taken = list.pop();
                if list.is_empty() {
                    pool.by_key.remove(key);
                }
                if taken.is_some() {
                    pool.count = pool.count.saturating_sub(1);
                }
                taken?
            };
            if now.duration_since(taken.since) >= IDLE_FOR {
                continue;
            }
            let Idle {
                mut sender, mut conn, ..
            } = taken;
            // one poll, with nobody to wake: a connection the upstream closed meanwhile
            // finishes here, and one still open must be ready for a request at once
            let mut cx = Context::from_waker(Waker::noop());
            if conn.as_mut().poll(&mut cx).is_ready() {
                tracing::trace!(host = %key.host, port = key.port, "an idle connection was closed by the upstream");
                continue;
            }
            if !matches!(sender.poll_ready(&mut cx), Poll::Ready(Ok(()))) {
                tracing::trace!(host = %key.host, port = key.port, "an idle connection was not ready; dropped");
                continue;
            }
            tracing::trace!(host = %key.host, port = key.port, "an idle connection is used again");
            return Some(Lease {
                key: key.clone(),
                sender,
                conn: Some(conn),
                reused: true,
            });
        }
    }

    async fn open(&self, key: Key, url: &Url, dial: Dial<'_>) -> Result<Lease, EgressError> {
        let host = host_of(url);
        let addrs: Vec<IpAddr> = match url.host() {
            Some(Host::Ipv4(ip)) => vec![IpAddr::V4(ip)],
            Some(Host::Ipv6(ip)) => vec![IpAddr::V6(ip)],
            Some(Host::Domain(name)) => resolve_checked(dial.resolver, dial.allow, name).await?,
            None => return Err(EgressError::InvalidUrl("the URL has no host".into())),
        };
        let tcp = connect_any(&host, &addrs, key.port, dial.connect_timeout).await?;
        let _ = tcp.set_nodelay(true);
        let stream = if key.https {
            let name = match url.host() {
                Some(Host::Ipv4(ip)) => rustls::pki_types::ServerName::IpAddress(IpAddr::V4(ip).into()),
                Some(Host::Ipv6(ip)) => rustls::pki_types::ServerName::IpAddress(IpAddr::V6(ip).into()),
                _ => rustls::pki_types::ServerName::try_from(host.clone()).map_err(|_| EgressError::Connect {
                    host: host.clone(),
                    message: "the host is not a valid TLS server name".into(),
                })?,
            };
            let tls = self.tls.connect(name, tcp).await.map_err(|e| EgressError::Connect {
                host: host.clone(),
                message: format!("TLS: {}", crate::root_cause(&e)),
            })?;
            Stream::Tls(Box::new(tls))
        } else {
            Stream::Plain(tcp)
        };
        let (sender, conn) = http1::Builder::new()
            .handshake(TokioIo::new(stream))
            .await
            .map_err(|e| EgressError::Connect {
                host,
                message: crate::root_cause(&e),
            })?;
        tracing::trace!(host = %key.host, port = key.port, tls = key.https, "a new connection");
        Ok(Lease {
            key,
            sender,
            conn: Some(Box::pin(conn)),
            reused: false,
        })
    }

    /// Puts a connection whose exchange ended cleanly back in the pool, if it stays open.
    pub(crate) fn give_back(&self, lease: Lease) {
        let Lease { key, sender, conn, .. } = lease;
        let Some(mut conn) = conn else {
            return;
        };
        if sender.is_closed() {
            return;
        }
        // the upstream may have asked to close it (`Connection: close`): the connection
        // then finishes on this poll
        let mut cx = Context::from_waker(Waker::noop());
        if conn.as_mut().poll(&mut cx).is_ready() {
            return;
        }
        let Ok(mut pool) = self.idle.lock() else {
            return;
        };
        let now = Instant::now();
        if !self.swept_by_task {
            pool.sweep(now, SWEEP_ON_USE);
        }
        if pool.count >= IDLE_TOTAL {
            return;
        }
        let list = pool.by_key.entry(key).or_default();
        if list.len() >= IDLE_PER_HOST {
            return;
        }
        list.push(Idle {
            sender,
            conn,
            since: now,
        });
        pool.count += 1;
    }
}

impl Lease {
    /// Awaits `f` while polling the connection too (it is what moves the bytes).
    async fn drive<F: Future + Unpin>(&mut self, f: &mut F) -> F::Output {
        poll_fn(|cx| {
            if let Some(conn) = &mut self.conn
                && conn.as_mut().poll(cx).is_ready()
            {
                self.conn = None;
            }
            Pin::new(&mut *f).poll(cx)
        })
        .await
    }

    /// Sends a request on this connection and waits for the response's head.
    pub(crate) async fn send(
        &mut self,
        request: hyper::Request<Full<Bytes>>,
    ) -> Result<hyper::Response<Incoming>, hyper::Error> {
        let mut sending = Box::pin(self.sender.send_request(request));
        self.drive(&mut sending).await
    }

    /// Reads what is left of a body that is not wanted (a redirect's), so the connection can
    /// carry the next request: true when it ended within `limit` bytes.
    pub(crate) async fn drain(&mut self, body: &mut Incoming, limit: usize) -> bool {
        let mut read = 0;
        loop {
            match self.chunk(body).await {
                Ok(None) => return true,
                Ok(Some(data)) => {
                    read += data.len();
                    if read > limit {
                        return false;
                    }
                }
                Err(_) => return false,
            }
        }
    }

    /// The next chunk of data of a response's body, `None` at its end (trailers are skipped).
    pub(crate) async fn chunk(&mut self, body: &mut Incoming) -> Result<Option<Bytes>, hyper::Error> {
        loop {
            let mut next = body.frame();
            match self.drive(&mut next).await {
                None => return Ok(None),
                Some(Err(e)) => return Err(e),
                Some(Ok(frame)) => {
                    if let Ok(data) = frame.into_data() {
                        return Ok(Some(data));
                    }
                }
            }
        }
    }
}

/// Connects to the first of the checked addresses that answers, each given an equal part
/// of the connect timeout.
async fn connect_any(host: &str, addrs: &[IpAddr], port: u16, limit: Duration) -> Result<TcpStream, EgressError> {
    let n = u32::try_from(addrs.len().max(1)).unwrap_or(u32::MAX);
    let each = (limit / n).max(Duration::from_millis(500));
    let mut last = String::from("no address to connect to");
    for ip in addrs {
        match tokio::time::timeout(each, TcpStream::connect(SocketAddr::new(*ip, port))).await {
            Ok(Ok(tcp)) => return Ok(tcp),
            Ok(Err(e)) => last = e.to_string(),
            Err(_) => last = "the connection timed out".into(),
        }
    }
    Err(EgressError::Connect {
        host: host.to_owned(),
        message: last,
    })
}

fn key_of(url: &Url, tenant: Option<&Arc<str>>) -> Result<Key, EgressError> {
    let https = match url.scheme() {
        "https" => true,
        "http" => false,
        other => {
            return Err(EgressError::InvalidUrl(format!(
                "only http and https can be called, not {other}"
            )));
        }
    };
    let port = url
        .port_or_known_default()
        .ok_or_else(|| EgressError::InvalidUrl("the URL has no port".into()))?;
    Ok(Key {
        https,
        host: host_of(url),
        port,
        tenant: tenant.cloned(),
    })
}

/// Whether a request failed because its connection was closed or reset before any answer
/// came (not a failure while the answer was read).
pub(crate) fn dropped(e: &hyper::Error) -> bool {
    if e.is_incomplete_message() || e.is_canceled() {
        return true;
    }
    let mut source: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(e);
    while let Some(s) = source {
        if let Some(io) = s.downcast_ref::<io::Error>() {
            return matches!(
                io.kind(),
                io::ErrorKind::ConnectionReset | io::ErrorKind::ConnectionAborted | io::ErrorKind::BrokenPipe
            );
        }
        source = s.source();
    }
    false
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    #[test]
    fn keys_name_the_origin() {
        let k = key_of(&Url::parse("https://Example.com/a?b").unwrap(), None).unwrap();
        assert_eq!(
            k,
            Key {
                https: true,
                host: "example.com".into(),
                port: 443,
                tenant: None,
            }
        );
        let k = key_of(&Url::parse("http://[::1]:8080/").unwrap(), None).unwrap();
        assert_eq!(k.port, 8080);
        assert!(!k.https);
        assert!(key_of(&Url::parse("ftp://example.com/").unwrap(), None).is_err());
        let ws: Arc<str> = Arc::from("ws-1");
        assert_ne!(
            key_of(&Url::parse("http://example.com/").unwrap(), Some(&ws)).unwrap(),
            key_of(&Url::parse("http://example.com/").unwrap(), None).unwrap(),
            "workspaces do not share connections"
        );
    }

    #[test]
    fn the_sweep_closes_what_waited_too_long() {
        let mut pool = Pool {
            count: 3,
            ..Pool::default()
        };
        pool.sweep(Instant::now(), SWEEP_ON_USE);
        assert_eq!(pool.count, 0, "the count follows what is left");
    }
}
