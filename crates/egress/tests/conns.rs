//! `send`'s own connections ([`chatterfly_egress::conns`]): kept and used again, one the
//! upstream closed while idle noticed before it is used (a POST too goes through, on a new
//! connection), `Connection: close` honoured, TLS through rustls with the certificate
//! checked, and the request head as reqwest wrote it (`Host`, `Accept`).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{ConnectInfo, State};
use axum::http::HeaderMap;
use axum::routing::{get, post};
use chatterfly_egress::{AllowList, Egress, EgressError, Limits, OutboundRequest};
use http::Method;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use url::Url;

type Ports = Arc<Mutex<Vec<u16>>>;

fn client() -> Egress {
    Egress::new(AllowList::parse("127.0.0.1").unwrap(), Limits::default()).unwrap()
}

fn app(ports: Ports) -> axum::Router {
    async fn port(State(ports): State<Ports>, ConnectInfo(peer): ConnectInfo<SocketAddr>) -> String {
        ports.lock().unwrap().push(peer.port());
        peer.port().to_string()
    }
    async fn head(headers: HeaderMap) -> String {
        let get = |n: &str| {
            headers
                .get(n)
                .map(|v| v.to_str().unwrap().to_owned())
                .unwrap_or_default()
        };
        format!("{}|{}|{}", get("host"), get("accept"), get("authorization"))
    }
    axum::Router::new()
        .route("/port", get(port).post(port))
        .route("/head", post(head).get(head))
        .with_state(ports)
}

/// An upstream answering each request with the client port of its connection.
async fn upstream(ports: Ports) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(
        async move { axum::serve(listener, app(ports).into_make_service_with_connect_info::<SocketAddr>()).await },
    );
    base
}

async fn call(egress: &Egress, method: Method, url: &str) -> Result<String, EgressError> {
    let mut req = OutboundRequest::new(method, Url::parse(url).unwrap());
    req.body = Some(bytes::Bytes::from_static(b"{\"a\":1}"));
    let resp = egress.send(req, None).await?;
    assert_eq!(resp.status.as_u16(), 200);
    Ok(String::from_utf8(resp.body.to_vec()).unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_in_a_row_share_one_connection_and_concurrent_ones_come_back_to_the_pool() {
    let ports = Ports::default();
    let base = upstream(ports.clone()).await;
    let egress = client();
    for i in 0..20 {
        let method = if i % 2 == 0 { Method::GET } else { Method::POST };
        call(&egress, method, &format!("{base}/port")).await.unwrap();
    }
    let distinct: BTreeSet<u16> = ports.lock().unwrap().iter().copied().collect();
    assert_eq!(distinct.len(), 1, "20 calls in a row on one connection: {distinct:?}");

    // 8 at once open up to 8; the 40 after them use those again
    ports.lock().unwrap().clear();
    let calls: Vec<_> = (0..8)
        .map(|_| {
            let (egress, url) = (egress.clone(), format!("{base}/port"));
            tokio::spawn(async move { call(&egress, Method::GET, &url).await })
        })
        .collect();
    for c in calls {
        c.await.unwrap().unwrap();
    }
    for _ in 0..40 {
        call(&egress, Method::GET, &format!("{base}/port")).await.unwrap();
    }
    let distinct: BTreeSet<u16> = ports.lock().unwrap().iter().copied().collect();
    assert!(
        distinct.len() <= 9,
        "48 calls on the connections the first 8 opened: {distinct:?}"
    );
}

/// Answers each request on a connection, then closes the connection 50 ms later, as a server
/// closing idle connections does. Counts connections and requests.
async fn closing_upstream(counts: Arc<Mutex<(usize, usize)>>, close_header: bool) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/thing", listener.local_addr().unwrap());
    tokio::spawn(async move {
        loop {
            let (mut sock, _) = listener.accept().await.unwrap();
            counts.lock().unwrap().0 += 1;
            let counts = counts.clone();
            tokio::spawn(async move {
                if !common::read_request(&mut sock, &mut Vec::new()).await {
                    return;
                }
                counts.lock().unwrap().1 += 1;
                let answer: &[u8] = if close_header {
                    b"HTTP/1.1 200 OK\r\nconnection: close\r\ncontent-length: 2\r\n\r\nok"
                } else {
                    b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok"
                };
                sock.write_all(answer).await.unwrap();
                // closed 50 ms later, while the client holds it idle
                tokio::time::sleep(Duration::from_millis(50)).await;
            });
        }
    });
    url
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_the_upstream_closed_while_idle_is_not_used() {
    for close_header in [false, true] {
        let counts = Arc::new(Mutex::new((0, 0)));
        let url = closing_upstream(counts.clone(), close_header).await;
        let egress = client();
        for i in 0..5 {
            // a POST is never sent again: it must go out on a connection that is open
            let answer = call(&egress, Method::POST, &url).await;
            assert_eq!(answer.unwrap(), "ok", "call {i}, close header {close_header}");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let (connections, requests) = *counts.lock().unwrap();
        assert_eq!(requests, 5, "each POST sent once");
        assert_eq!(connections, 5, "a new connection for each");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_request_head_has_host_accept_and_the_callers_headers() {
    let base = upstream(Ports::default()).await;
    let egress = client();
    let port = Url::parse(&base).unwrap().port().unwrap();
    assert_eq!(
        call(&egress, Method::GET, &format!("{base}/head")).await.unwrap(),
        format!("127.0.0.1:{port}|*/*|")
    );
    let mut req = OutboundRequest::new(Method::GET, Url::parse(&format!("{base}/head")).unwrap());
    req.headers.insert("accept", "application/json".parse().unwrap());
    req.headers
        .insert("authorization", "Bearer from-the-vault".parse().unwrap());
    let resp = egress.send(req, None).await.unwrap();
    assert_eq!(
        String::from_utf8(resp.body.to_vec()).unwrap(),
        format!("127.0.0.1:{port}|application/json|Bearer from-the-vault")
    );
}

/// A TLS upstream on 127.0.0.1 with a certificate of its own (for the IP address).
async fn tls_upstream(ports: Ports) -> (String, rustls::pki_types::CertificateDer<'static>) {
    let key = rcgen::KeyPair::generate().unwrap();
    let params = rcgen::CertificateParams::new(vec!["127.0.0.1".to_owned()]).unwrap();
    let cert = params.self_signed(&key).unwrap();
    let der = cert.der().clone();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![der.clone()],
            rustls::pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into()),
        )
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("https://{}", listener.local_addr().unwrap());
    let app = app(ports);
    tokio::spawn(async move {
        loop {
            let (tcp, peer) = listener.accept().await.unwrap();
            let (acceptor, app) = (acceptor.clone(), app.clone());
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let service = hyper::service::service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                    let mut req = req.map(axum::body::Body::new);
                    req.extensions_mut().insert(ConnectInfo(peer));
                    let mut app = app.clone();
                    async move { tower::Service::call(&mut app, req).await }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(tls), service)
                    .await;
            });
        }
    });
    (base, der)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_upstreams_are_called_through_rustls_with_the_certificate_checked() {
    let ports = Ports::default();
    let (base, cert) = tls_upstream(ports.clone()).await;

    // a certificate no trusted root signed: refused at the handshake
    let refused = call(&client(), Method::GET, &format!("{base}/port")).await;
    match refused {
        Err(e @ EgressError::Connect { .. }) => {
            assert_eq!(e.code(), "upstream_unreachable");
            assert!(e.to_string().contains("TLS"), "{e}");
        }
        other => panic!("an untrusted certificate must fail the connect: {other:?}"),
    }
    assert!(ports.lock().unwrap().is_empty(), "no request went out");

    // trusted: calls in a row go over one TLS connection
    let egress = client().trusting(&[cert]).unwrap();
    for _ in 0..10 {
        call(&egress, Method::GET, &format!("{base}/port")).await.unwrap();
    }
    let port = Url::parse(&base).unwrap().port().unwrap();
    assert_eq!(
        call(&egress, Method::POST, &format!("{base}/head")).await.unwrap(),
        format!("127.0.0.1:{port}|*/*|")
    );
    let distinct: BTreeSet<u16> = ports.lock().unwrap().iter().copied().collect();
    assert_eq!(distinct.len(), 1, "{distinct:?}");
    assert_eq!(ports.lock().unwrap().len(), 10);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workspaces_never_share_a_connection() {
    let ports = Ports::default();
    let base = upstream(ports.clone()).await;
    let egress = client();
    let mut seen: std::collections::BTreeMap<Option<String>, BTreeSet<u16>> = Default::default();
    for i in 0..30 {
        let tenant = [Some("ws-a"), Some("ws-b"), None][i % 3];
        let mut req = OutboundRequest::new(Method::GET, Url::parse(&format!("{base}/port")).unwrap());
        req.tenant = tenant.map(Arc::from);
        let resp = egress.send(req, None).await.unwrap();
        let port: u16 = String::from_utf8(resp.body.to_vec()).unwrap().parse().unwrap();
        seen.entry(tenant.map(str::to_owned)).or_default().insert(port);
    }
    assert_eq!(seen.len(), 3);
    for (tenant, ports) in &seen {
        assert_eq!(
            ports.len(),
            1,
            "{tenant:?}'s 10 calls on one connection of its own: {ports:?}"
        );
    }
    let all: BTreeSet<u16> = seen.values().flatten().copied().collect();
    assert_eq!(all.len(), 3, "no connection carried two tenants' calls: {seen:?}");
}

/// Answers one request, 100 ms later closes its side of the connection (`shutdown`), and waits up to
/// 4 s for the client to close its own; sends whether it did (and how soon) on `closed`.
async fn half_closing_upstream(closed: tokio::sync::mpsc::UnboundedSender<Option<Duration>>) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/thing", listener.local_addr().unwrap());
    tokio::spawn(async move {
        loop {
            let (mut sock, _) = listener.accept().await.unwrap();
            let closed = closed.clone();
            tokio::spawn(async move {
                if !common::read_request(&mut sock, &mut Vec::new()).await {
                    return;
                }
                let mut buf = [0u8; 4096];
                sock.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
                    .await
                    .unwrap();
                // later, once the client has put the connection back in its pool
                tokio::time::sleep(Duration::from_millis(100)).await;
                sock.shutdown().await.unwrap();
                let started = std::time::Instant::now();
                let eof = tokio::time::timeout(Duration::from_secs(4), async {
                    loop {
                        match sock.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(_) => {}
                        }
                    }
                })
                .await;
                let _ = closed.send(eof.is_ok().then(|| started.elapsed()));
            });
        }
    });
    url
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_the_upstream_closed_while_idle_is_closed_without_waiting_for_a_call() {
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let url = half_closing_upstream(tx).await;
    let egress = client();
    call(&egress, Method::GET, &url).await.unwrap();
    // no call after it: the pool's own sweep closes the socket
    let closed = rx.recv().await.unwrap();
    assert!(
        closed.is_some_and(|after| after < Duration::from_millis(2500)),
        "the client side closed within the sweep's period: {closed:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_that_carried_a_redirect_carries_the_next_request() {
    let ports = Ports::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let app = app(ports.clone()).route(
        "/moved",
        get(|| async {
            (
                http::StatusCode::FOUND,
                [(http::header::LOCATION, "/port")],
                "<a href=\"/port\">moved</a>",
            )
        }),
    );
    tokio::spawn(async move { axum::serve(listener, app.into_make_service_with_connect_info::<SocketAddr>()).await });
    let egress = client();
    for _ in 0..10 {
        let mut req = OutboundRequest::new(Method::GET, Url::parse(&format!("{base}/moved")).unwrap());
        req.tenant = Some(Arc::from("ws"));
        let resp = egress.send(req, None).await.unwrap();
        assert_eq!(resp.redirects, 1);
    }
    let distinct: BTreeSet<u16> = ports.lock().unwrap().iter().copied().collect();
    assert_eq!(distinct.len(), 1, "10 redirected calls on one connection: {distinct:?}");
}

/// An upstream that answers every request, except one that comes on a connection idle for
/// over `idle` since its last answer: that connection is closed unanswered, as by a server
/// closing an idle connection just as the request arrives. Counts connections, answers and
/// requests left unanswered.
async fn impatient_upstream(idle: Duration, counts: Arc<Mutex<(usize, usize, usize)>>) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/thing", listener.local_addr().unwrap());
    tokio::spawn(async move {
        loop {
            let (mut sock, _) = listener.accept().await.unwrap();
            counts.lock().unwrap().0 += 1;
            let counts = counts.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut answered: Option<std::time::Instant> = None;
                while common::read_request(&mut sock, &mut buf).await {
                    if answered.is_some_and(|at| at.elapsed() > idle) {
                        counts.lock().unwrap().2 += 1;
                        return;
                    }
                    sock.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
                        .await
                        .unwrap();
                    counts.lock().unwrap().1 += 1;
                    answered = Some(std::time::Instant::now());
                }
            });
        }
    });
    url
}

/// A POST or PATCH (never sent twice) goes only on a connection idle for under a second, so
/// an upstream that closes idle connections as a request arrives (after 1.2 s here;
/// gunicorn after 2 s) never loses one; a GET still takes the older connection, and is sent
/// again when that one turns out closed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_never_sent_twice_go_only_on_recently_used_connections() {
    let counts = Arc::new(Mutex::new((0, 0, 0)));
    let url = impatient_upstream(Duration::from_millis(1200), counts.clone()).await;
    let egress = client();
    call(&egress, Method::POST, &url).await.unwrap();
    tokio::time::sleep(Duration::from_millis(1300)).await;
    for method in [Method::POST, Method::PATCH] {
        call(&egress, method.clone(), &url)
            .await
            .unwrap_or_else(|e| panic!("{method} on a connection idle for 1.3 s: {e}"));
    }
    assert_eq!(
        *counts.lock().unwrap(),
        (2, 3, 0),
        "(connections, answers, unanswered): the POST after the pause opened one"
    );
    // within a second: the same connection
    call(&egress, Method::POST, &url).await.unwrap();
    assert_eq!(*counts.lock().unwrap(), (2, 4, 0));
    // a GET takes the older connection; the upstream closes it; the GET goes again on a new one
    tokio::time::sleep(Duration::from_millis(1300)).await;
    call(&egress, Method::GET, &url).await.unwrap();
    assert_eq!(
        *counts.lock().unwrap(),
        (3, 5, 1),
        "the GET used the idle connection, then a new one"
    );
    // so does a POST said to be repeatable (a model's completion)
    tokio::time::sleep(Duration::from_millis(1300)).await;
    let mut req = OutboundRequest::new(Method::POST, Url::parse(&url).unwrap());
    req.repeatable = Some(true);
    assert_eq!(egress.send(req, None).await.unwrap().status.as_u16(), 200);
    assert_eq!(
        *counts.lock().unwrap(),
        (4, 6, 2),
        "the repeatable POST used the idle connection, then a new one"
    );
}

/// An upstream that refuses a large body before reading it (`413` at once, the connection
/// kept open) and then reads no more of it: its first connection's socket stays full.
/// Every other connection is answered `200 ok`.
async fn early_refusing_upstream(conns: Arc<Mutex<usize>>) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/upload", listener.local_addr().unwrap());
    tokio::spawn(async move {
        let mut held = Vec::new();
        loop {
            let (mut sock, _) = listener.accept().await.unwrap();
            let first = {
                let mut n = conns.lock().unwrap();
                *n += 1;
                *n == 1
            };
            if first {
                // the head, then nothing more is read
                let mut head = Vec::new();
                let mut byte = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") && sock.read_exact(&mut byte).await.is_ok() {
                    head.push(byte[0]);
                }
                sock.write_all(b"HTTP/1.1 413 Payload Too Large\r\ncontent-length: 0\r\n\r\n")
                    .await
                    .unwrap();
                held.push(sock);
                continue;
            }
            tokio::spawn(async move {
                let mut buf = Vec::new();
                while common::read_request(&mut sock, &mut buf).await {
                    sock.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
                        .await
                        .unwrap();
                }
            });
        }
    });
    url
}

/// A connection whose request body was not all sent when its answer came (an upstream that
/// answered early and stopped reading) is never given to the next call, which would wait
/// behind the unsent body until its timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_still_sending_a_refused_body_is_not_used_again() {
    let conns = Arc::new(Mutex::new(0));
    let url = early_refusing_upstream(conns.clone()).await;
    let egress = Egress::new(
        AllowList::parse("127.0.0.1").unwrap(),
        Limits {
            total_timeout: Duration::from_secs(3),
            ..Limits::default()
        },
    )
    .unwrap();
    // far more than the sockets' buffers hold
    let mut req = OutboundRequest::new(Method::POST, Url::parse(&url).unwrap());
    req.body = Some(bytes::Bytes::from(vec![b'x'; 64 << 20]));
    let refused = egress.send(req, None).await.unwrap();
    assert_eq!(refused.status.as_u16(), 413);
    for method in [Method::GET, Method::POST] {
        let started = std::time::Instant::now();
        let mut req = OutboundRequest::new(method.clone(), Url::parse(&url).unwrap());
        req.body = Some(bytes::Bytes::from_static(b"{}"));
        let answer = egress
            .send(req, None)
            .await
            .unwrap_or_else(|e| panic!("{method} after the refused body: {e}"));
        assert_eq!(answer.status.as_u16(), 200);
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "{method} waited {:?}",
            started.elapsed()
        );
    }
    assert_eq!(*conns.lock().unwrap(), 2, "the next calls went on one new connection");
}
