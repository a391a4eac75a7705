//! The accept loop: HTTP/1.1 and HTTP/2 on one port, with the bounds a server facing the
//! open network needs and `axum::serve` does not set: a client has
//! `--header-read-timeout-ms` to send its headers (which also closes idle keep-alive
//! connections), at most `--max-connections` are open at once (the rest wait in the listen
//! backlog), a client that reads nothing of its answer for `--write-stall-timeout-ms` is cut off
//! (hyper has no write timeout: an answer nobody reads would be held for ever), and
//! shutdown lets requests in flight finish for a few seconds.
//!
//! The write stall is seen on the socket, which is enough for HTTP/1.1. An HTTP/2 client
//! can read the socket and still take nothing of an answer, by keeping the stream's flow-
//! control window shut: the socket stays writable while the answer waits. So the answers
//! a connection holds ([`Unsent`], which invoke's held bodies report to) are watched too:
//! while one is held and none has moved for the same limit, the connection is closed.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

use crate::config::Config;

/// How long requests in flight get to finish at shutdown.
const DRAIN: Duration = Duration::from_secs(10);
/// A connection whose writes fail once none could be made for `limit`: any progress
/// starts the clock again, so a slow reader is served, one that reads nothing is not.
pub struct WriteStall<S> {
    inner: S,
    limit: Duration,
    stalled: Option<std::pin::Pin<Box<tokio::time::Sleep>>>,
    /// The answers held for this connection's requests, and the timer of their stall.
    unsent: Unsent,
    unsent_stalled: Option<std::pin::Pin<Box<tokio::time::Sleep>>>,
}

impl<S> WriteStall<S> {
    pub fn new(inner: S, limit: Duration, unsent: Unsent) -> Self {
        Self {
            inner,
            limit,
            stalled: None,
            unsent,
            unsent_stalled: None,
        }
    }

    /// An error once the connection's held answers have not moved for `limit`; until
    /// then a timer that wakes the connection when they will have (hyper's connection task
    /// polls its reads whenever it is woken).
    fn watch_unsent(&mut self, cx: &mut std::task::Context<'_>) -> Option<std::io::Error> {
        let Some(due) = self.unsent.due(self.limit) else {
            self.unsent_stalled = None;
            return None;
        };
        let timer = self
            .unsent_stalled
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(due)));
        if timer.deadline() != due {
            timer.as_mut().reset(due);
        }
        match timer.as_mut().poll(cx) {
            std::task::Poll::Ready(()) => Some(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "the client took none of its answer in time",
            )),
            std::task::Poll::Pending => None,
        }
    }

    /// A write's outcome: progress starts the clock again; a write that could not go
    /// ahead is an error once the stall has lasted `limit`.
    fn watch<T>(
        &mut self,
        cx: &mut std::task::Context<'_>,
        r: std::task::Poll<std::io::Result<T>>,
    ) -> std::task::Poll<std::io::Result<T>> {
        if r.is_ready() {
            self.stalled = None;
            return r;
        }
        let limit = self.limit;
        let timer = self.stalled.get_or_insert_with(|| Box::pin(tokio::time::sleep(limit)));
        match timer.as_mut().poll(cx) {
            std::task::Poll::Ready(()) => std::task::Poll::Ready(Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "the client read nothing of its answer in time",
            ))),
            std::task::Poll::Pending => std::task::Poll::Pending,
        }
    }
}

impl<S: tokio::io::AsyncRead + Unpin> tokio::io::AsyncRead for WriteStall<S> {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        if let Some(e) = self.watch_unsent(cx) {
            return std::task::Poll::Ready(Err(e));
        }
        std::pin::Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: tokio::io::AsyncWrite + Unpin> tokio::io::AsyncWrite for WriteStall<S> {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        let r = std::pin::Pin::new(&mut self.inner).poll_write(cx, buf);
        self.watch(cx, r)
    }

    fn poll_write_vectored(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> std::task::Poll<std::io::Result<usize>> {
        let r = std::pin::Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.watch(cx, r)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        let r = std::pin::Pin::new(&mut self.inner).poll_flush(cx);
        self.watch(cx, r)
    }

    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        let r = std::pin::Pin::new(&mut self.inner).poll_shutdown(cx);
        self.watch(cx, r)
    }
}

/// The answers a connection holds for its requests, which they report to as they are
/// handed on: when each last moved.
#[derive(Clone)]
pub struct Unsent(Arc<UnsentState>);

struct UnsentState {
    /// Each held answer's last move, in milliseconds since `since`, by the answer's number.
    held: std::sync::Mutex<std::collections::HashMap<u64, u64>>,
    next: AtomicU64,
    since: tokio::time::Instant,
}

impl Default for Unsent {
    fn default() -> Self {
        Self(Arc::new(UnsentState {
            held: std::sync::Mutex::new(std::collections::HashMap::new()),
            next: AtomicU64::new(0),
            since: tokio::time::Instant::now(),
        }))
    }
}

impl Unsent {
    /// One more answer held until the guard is dropped; it has just moved.
    pub fn hold(&self) -> UnsentAnswer {
        let answer = UnsentAnswer {
            unsent: self.clone(),
            id: self.0.next.fetch_add(1, Ordering::Relaxed),
        };
        answer.moved();
        answer
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.0.since.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    fn held(&self) -> std::sync::MutexGuard<'_, std::collections::HashMap<u64, u64>> {
        self.0.held.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// When the answer that moved least recently will have stalled for `limit`, if any is
    /// held: a new answer does not hide an old one that never moves.
    fn due(&self, limit: Duration) -> Option<tokio::time::Instant> {
        let oldest = self.held().values().copied().min()?;
        Some(self.0.since + Duration::from_millis(oldest) + limit)
    }
}

/// An answer held for a connection's request ([`Unsent::hold`]).
pub struct UnsentAnswer {
    unsent: Unsent,
    id: u64,
}

impl UnsentAnswer {
    /// The answer moved: a part of it was handed on to be sent.
    pub fn moved(&self) {
        let now = self.unsent.now_ms();
        self.unsent.held().insert(self.id, now);
    }
}

impl Drop for UnsentAnswer {
    fn drop(&mut self) {
        self.unsent.held().remove(&self.id);
    }
}

#[derive(Clone, Copy, Debug)]
pub struct Settings {
    pub max_connections: usize,
    pub header_read_timeout: Duration,
    pub write_stall: Duration,
}

impl From<&Config> for Settings {
    fn from(c: &Config) -> Self {
        Self {
            max_connections: c.max_connections.max(1),
            header_read_timeout: Duration::from_millis(c.header_read_timeout_ms.max(1)),
            write_stall: Duration::from_millis(c.write_stall_timeout_ms.max(1)),
        }
    }
}

/// Serves `router` on `listener` until `shutdown` completes.
pub async fn run(listener: TcpListener, router: Router, settings: Settings, shutdown: impl Future<Output = ()>) {
    let mut builder = Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(settings.header_read_timeout);
    builder
        .http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(Some(settings.header_read_timeout))
        .keep_alive_timeout(settings.header_read_timeout);
    let slots = Arc::new(Semaphore::new(settings.max_connections));
    let graceful = GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            p = slots.clone().acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => break,
            },
            () = &mut shutdown => break,
        };
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // out of file descriptors, or a connection reset before accept: wait a
                    // moment rather than spin
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let (stream, peer) = stream;
        let _ = stream.set_nodelay(true);
        let unsent = Unsent::default();
        let service = TowerToHyperService::new(
            router
                .clone()
                .layer(axum::Extension(crate::ops::PeerAddr(peer)))
                .layer(axum::Extension(unsent.clone())),
        );
        let conn = builder
            .serve_connection_with_upgrades(
                TokioIo::new(WriteStall::new(stream, settings.write_stall, unsent)),
                service,
            )
            .into_owned();
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            // a client going away mid-request is not the server's error
            let _ = conn.await;
            drop(permit);
        });
    }
    drop(listener);
    tokio::select! {
        () = graceful.shutdown() => {}
        () = tokio::time::sleep(DRAIN) => {
            tracing::warn!("requests still running after {DRAIN:?}; stopping anyway");
        }
    }
}
