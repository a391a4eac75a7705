//! Attacks on the SSRF guard: a table of bypass forms, each refused without the operator's
//! exception and allowed with it; then redirects, rebinding-style answers, credential
//! stripping and limits against a local server. No traffic ever leaves 127.0.0.1: refused
//! targets are refused before any connection is made, and the tests that send use guards
//! whose only exception is 127.0.0.1 with targets that resolve to no public address.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{Query, Request};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use chatterfly_egress::{AllowList, Egress, EgressError, Limits, OutboundRequest, Resolver};
use http::{HeaderName, HeaderValue, Method};
use url::Url;

/// Answers from a table; unknown names fail.
struct MapResolver(HashMap<&'static str, Vec<IpAddr>>);

impl Resolver for MapResolver {
    fn lookup<'a>(&'a self, host: &'a str) -> Pin<Box<dyn Future<Output = std::io::Result<Vec<IpAddr>>> + Send + 'a>> {
        Box::pin(async move {
            // as DNS does: case-insensitive, a trailing dot names the same host
            let name = host.trim_end_matches('.').to_ascii_lowercase();
            self.0
                .get(name.as_str())
                .cloned()
                .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::NotFound, "no such host"))
        })
    }
}

fn resolver() -> Arc<MapResolver> {
    let ip = |s: &str| s.parse::<IpAddr>().unwrap();
    Arc::new(MapResolver(HashMap::from([
        ("localhost", vec![ip("127.0.0.1"), ip("::1")]),
        ("metadata.google.internal", vec![ip("169.254.169.254")]),
        ("internal.corp.test", vec![ip("10.0.0.5")]),
        ("db.corp.test", vec![ip("192.168.1.10")]),
        ("cgnat.test", vec![ip("100.64.1.1")]),
        ("ula.test", vec![ip("fd00::1")]),
        ("linklocal6.test", vec![ip("fe80::1")]),
        ("mapped.test", vec![ip("::ffff:10.0.0.1")]),
        ("nat64.test", vec![ip("64:ff9b::a00:1")]),
        ("sixtofour.test", vec![ip("2002:c0a8:101::1")]),
        ("teredo.test", vec![ip("2001:0:4136:e378:8000:63bf:80ff:fffe")]),
        ("public-then-private.test", vec![ip("93.184.216.34"), ip("127.0.0.1")]),
        ("private-then-public.test", vec![ip("10.1.1.1"), ip("93.184.216.34")]),
        ("zero.test", vec![ip("0.0.0.0")]),
        ("multicast.test", vec![ip("224.0.0.251")]),
        ("broadcast.test", vec![ip("255.255.255.255")]),
        ("doc.test", vec![ip("203.0.113.9")]),
        ("bench.test", vec![ip("198.18.0.1")]),
        ("alibaba-metadata.test", vec![ip("100.100.100.200")]),
        ("aws-metadata6.test", vec![ip("fd00:ec2::254")]),
        ("public.test", vec![ip("93.184.216.34")]),
        ("trailing.dot.test", vec![ip("127.0.0.1")]),
    ])))
}

fn egress(allow: &str) -> Egress {
    Egress::with_resolver(AllowList::parse(allow).unwrap(), Limits::default(), resolver()).unwrap()
}

/// (URL, the exception that allows it). Every URL must be refused without the exception.
const FORMS: &[(&str, &str)] = &[
    // IPv4 loopback in every spelling the URL parser accepts
    ("http://127.0.0.1/", "127.0.0.1"),
    ("http://127.1/", "127.0.0.1"),
    ("http://127.0.1/", "127.0.0.1"),
    ("http://2130706433/", "127.0.0.1"),
    ("http://0x7f000001/", "127.0.0.1"),
    ("http://0x7f.0x0.0x0.0x1/", "127.0.0.1"),
    ("http://0177.0.0.1/", "127.0.0.1"),
    ("http://0177.0000.0000.0001/", "127.0.0.1"),
    ("http://017700000001/", "127.0.0.1"),
    ("http://0x7f.1/", "127.0.0.1"),
    ("http://127.0.0.1.:8080/", "127.0.0.1"),
    ("http://%31%32%37.0.0.1/", "127.0.0.1"),
    ("http://127.000.000.001/", "127.0.0.0/8"),
    ("http://127.255.255.254/", "127.0.0.0/8"),
    ("HTTP://127.0.0.1/", "127.0.0.1"),
    ("https://127.0.0.1:443/", "127.0.0.1"),
    ("http://0x7F000001:80/", "127.0.0.1"),
    // unspecified and "this network"
    ("http://0.0.0.0/", "0.0.0.0/8"),
    ("http://0/", "0.0.0.0/8"),
    ("http://0x0/", "0.0.0.0/8"),
    ("http://0.1.2.3/", "0.0.0.0/8"),
    // RFC 1918, CGNAT, link-local, metadata
    ("http://10.0.0.1/", "10.0.0.0/8"),
    ("http://10.255.255.255/", "10.0.0.0/8"),
    ("http://167772161/", "10.0.0.0/8"),
    ("http://0xa.0.0.1/", "10.0.0.0/8"),
    ("http://012.0.0.1/", "10.0.0.0/8"),
    ("http://172.16.0.1/", "172.16.0.0/12"),
    ("http://172.31.255.254/", "172.16.0.0/12"),
    ("http://192.168.0.1/", "192.168.0.0/16"),
    ("http://3232235521/", "192.168.0.0/16"),
    ("http://0xc0a80001/", "192.168.0.0/16"),
    ("http://100.64.0.1/", "100.64.0.0/10"),
    ("http://100.127.255.254/", "100.64.0.0/10"),
    ("http://169.254.169.254/latest/meta-data/", "169.254.169.254"),
    ("http://2852039166/", "169.254.169.254"),
    ("http://0xa9fea9fe/", "169.254.169.254"),
    ("http://0251.0376.0251.0376/", "169.254.169.254"),
    ("http://169.254.0.1/", "169.254.0.0/16"),
    ("http://100.100.100.200/", "100.64.0.0/10"),
    // reserved, documentation, benchmarking, multicast, broadcast, protocol assignments
    ("http://192.0.0.1/", "192.0.0.0/24"),
    ("http://192.0.2.1/", "192.0.2.0/24"),
    ("http://198.51.100.1/", "198.51.100.0/24"),
    ("http://203.0.113.1/", "203.0.113.0/24"),
    ("http://198.18.0.1/", "198.18.0.0/15"),
    ("http://198.19.255.1/", "198.18.0.0/15"),
    ("http://224.0.0.1/", "224.0.0.0/4"),
    ("http://239.255.255.250/", "224.0.0.0/4"),
    ("http://240.0.0.1/", "240.0.0.0/4"),
    ("http://255.255.255.255/", "255.255.255.255"),
    ("http://192.88.99.1/", "192.88.99.0/24"),
    // IPv6 literals
    ("http://[::1]/", "::1"),
    ("http://[0:0:0:0:0:0:0:1]/", "::1"),
    ("http://[::]/", "::/128"),
    ("http://[0000::0001]/", "::1"),
    ("http://[fe80::1]/", "fe80::/10"),
    ("http://[::ffff:0:7f00:1]/", "::ffff:0:0:0/96"),
    ("http://[fc00::1]/", "fc00::/7"),
    ("http://[fd12:3456::1]/", "fc00::/7"),
    ("http://[fd00:ec2::254]/", "fd00:ec2::254"),
    ("http://[fec0::1]/", "fec0::/10"),
    ("http://[ff02::1]/", "ff00::/8"),
    ("http://[2001:db8::1]/", "2001:db8::/32"),
    ("http://[100::1]/", "100::/64"),
    // IPv4 inside IPv6: mapped, compatible, NAT64, 6to4, Teredo
    ("http://[::ffff:127.0.0.1]/", "127.0.0.1"),
    ("http://[::ffff:7f00:1]/", "127.0.0.1"),
    ("http://[0:0:0:0:0:ffff:127.0.0.1]/", "127.0.0.1"),
    ("http://[::ffff:169.254.169.254]/", "169.254.169.254"),
    ("http://[::ffff:a00:1]/", "10.0.0.1"),
    ("http://[::127.0.0.1]/", "::/96"),
    ("http://[::7f00:1]/", "::/96"),
    ("http://[64:ff9b::127.0.0.1]/", "64:ff9b::/96"),
    ("http://[64:ff9b::a9fe:a9fe]/", "64:ff9b::/96"),
    ("http://[64:ff9b:1::a00:1]/", "64:ff9b:1::/48"),
    ("http://[2002:7f00:1::1]/", "2002::/16"),
    ("http://[2002:a9fe:a9fe::]/", "2002::/16"),
    ("http://[2001:0:4136:e378:8000:63bf:80ff:fffe]/", "2001::/32"),
    // userinfo and fragment confusion: the host is what the parser says it is
    ("http://evil.example@127.0.0.1/", "127.0.0.1"),
    ("http://user:pass@169.254.169.254/", "169.254.169.254"),
    ("http://public.test@10.0.0.1:80/", "10.0.0.0/8"),
    ("http://127.0.0.1#@public.test/", "127.0.0.1"),
    ("http://127.0.0.1?@public.test/", "127.0.0.1"),
    ("http://127.0.0.1\\@public.test/", "127.0.0.1"),
    ("http://127.0.0.1:80#public.test", "127.0.0.1"),
    // names resolving to non-public addresses (through the injected resolver)
    ("http://localhost/", "localhost"),
    ("http://LOCALHOST:8080/", "localhost"),
    (
        "http://metadata.google.internal/computeMetadata/v1/",
        "metadata.google.internal",
    ),
    ("http://internal.corp.test/", "*.corp.test"),
    ("http://db.corp.test:5432/", "192.168.0.0/16"),
    ("http://cgnat.test/", "cgnat.test"),
    ("http://ula.test/", "fd00::/8"),
    ("http://linklocal6.test/", "linklocal6.test"),
    ("http://mapped.test/", "10.0.0.1"),
    ("http://nat64.test/", "nat64.test"),
    ("http://sixtofour.test/", "sixtofour.test"),
    ("http://teredo.test/", "teredo.test"),
    ("http://public-then-private.test/", "127.0.0.1"),
    ("http://private-then-public.test/", "10.0.0.0/8"),
    ("http://zero.test/", "zero.test"),
    ("http://multicast.test/", "multicast.test"),
    ("http://broadcast.test/", "broadcast.test"),
    ("http://doc.test/", "doc.test"),
    ("http://bench.test/", "bench.test"),
    ("http://alibaba-metadata.test/", "alibaba-metadata.test"),
    ("http://aws-metadata6.test/", "aws-metadata6.test"),
    ("http://trailing.dot.test./", "127.0.0.1"),
];

#[tokio::test]
async fn every_bypass_form_is_refused_without_the_exception() {
    assert!(FORMS.len() >= 80, "{} forms", FORMS.len());
    let guard = egress("");
    for (url, _) in FORMS {
        let parsed = Url::parse(url).unwrap_or_else(|e| panic!("{url}: {e}"));
        match guard.check_target(&parsed).await {
            Err(EgressError::Blocked { .. }) => {}
            other => panic!("{url} ({:?}) was not refused: {other:?}", parsed.host()),
        }
        // and sending it is refused the same way, before any connection
        let err = guard
            .send(OutboundRequest::new(Method::GET, parsed), None)
            .await
            .unwrap_err();
        assert_eq!(err.code(), "ssrf_blocked", "{url}: {err}");
    }
}

#[tokio::test]
async fn the_same_targets_are_allowed_with_the_exception() {
    for (url, allow) in FORMS {
        let guard = egress(allow);
        let parsed = Url::parse(url).unwrap();
        let addrs = guard
            .check_target(&parsed)
            .await
            .unwrap_or_else(|e| panic!("{url} with CHATTERFLY_ALLOW_PRIVATE={allow}: {e}"));
        assert!(!addrs.is_empty());
    }
    // an exception for one range does not open another
    let guard = egress("10.0.0.0/8");
    assert!(
        guard
            .check_target(&Url::parse("http://127.0.0.1/").unwrap())
            .await
            .is_err()
    );
    assert!(
        guard
            .check_target(&Url::parse("http://public-then-private.test/").unwrap())
            .await
            .is_err()
    );
}

/// Fails every lookup and counts them: a name refused by name never reaches it.
struct CountingResolver(std::sync::atomic::AtomicUsize);

impl Resolver for CountingResolver {
    fn lookup<'a>(&'a self, _host: &'a str) -> Pin<Box<dyn Future<Output = std::io::Result<Vec<IpAddr>>> + Send + 'a>> {
        self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Box::pin(async { Err(std::io::Error::new(std::io::ErrorKind::NotFound, "no such host")) })
    }
}

#[tokio::test]
async fn local_and_metadata_names_are_refused_before_any_lookup() {
    let counter = Arc::new(CountingResolver(Default::default()));
    let guard = Egress::with_resolver(AllowList::default(), Limits::default(), counter.clone()).unwrap();
    let names = [
        "localhost",
        "localhost.",
        "LocalHost..",
        "api.localhost",
        "a.b.localhost.",
        "localhost.localdomain",
        "ip6-localhost",
        "metadata",
        "metadata.",
        "metadata.google.internal",
        "METADATA.GOOGLE.INTERNAL.",
        "metadata.goog",
        "instance-data",
        "instance-data.ec2.internal",
        "metadata.azure.com",
        "anything.internal",
        "printer.local.",
        "nas.home.arpa",
        "intranet",
        "fileserver",
    ];
    for name in names {
        for url in [format!("http://{name}/"), format!("https://{name}:8443/x?y=1")] {
            let parsed = Url::parse(&url).unwrap();
            let err = guard.check_target(&parsed).await.unwrap_err();
            assert_eq!(err.code(), "ssrf_blocked", "{url}: {err}");
            let err = guard
                .send(OutboundRequest::new(Method::GET, parsed), None)
                .await
                .unwrap_err();
            assert_eq!(err.code(), "ssrf_blocked", "{url}: {err}");
        }
    }
    assert_eq!(
        counter.0.load(std::sync::atomic::Ordering::SeqCst),
        0,
        "a refused name was looked up"
    );
    // names that only look alike are looked up (and here do not resolve)
    for name in [
        "localhost.example.com",
        "notlocalhost.test",
        "metadata.example.com",
        "internal.example.org",
    ] {
        let err = guard
            .check_target(&Url::parse(&format!("http://{name}/")).unwrap())
            .await
            .unwrap_err();
        assert_eq!(err.code(), "upstream_unresolvable", "{name}: {err}");
    }
    assert_eq!(counter.0.load(std::sync::atomic::Ordering::SeqCst), 4);
    // the operator's exception names the host: allowed then, whatever the resolver says
    let guard = egress("localhost,*.internal");
    for url in [
        "http://localhost/",
        "http://localhost./",
        "http://metadata.google.internal/",
    ] {
        assert!(guard.check_target(&Url::parse(url).unwrap()).await.is_ok(), "{url}");
    }
    let err = guard
        .check_target(&Url::parse("http://instance-data/").unwrap())
        .await
        .unwrap_err();
    assert_eq!(err.code(), "ssrf_blocked");
}

#[tokio::test]
async fn public_addresses_and_schemes() {
    let guard = egress("");
    for url in [
        "http://public.test/",
        "https://93.184.216.34/",
        "http://[2606:4700:4700::1111]/",
        "http://8.8.8.8:53/",
    ] {
        assert!(guard.check_target(&Url::parse(url).unwrap()).await.is_ok(), "{url}");
    }
    for url in [
        "file:///etc/passwd",
        "ftp://public.test/",
        "gopher://public.test:70/",
        "data:text/plain,hi",
        "ws://public.test/",
    ] {
        let err = guard.check_target(&Url::parse(url).unwrap()).await.unwrap_err();
        assert_eq!(err.code(), "invalid_url", "{url}: {err}");
    }
    let err = guard
        .check_target(&Url::parse("http://nowhere.test/").unwrap())
        .await
        .unwrap_err();
    assert_eq!(err.code(), "upstream_unresolvable");
}

// ---- behaviour against a local server (127.0.0.1 allowed as the operator would in tests)

async fn serve() -> (String, tokio::task::JoinHandle<()>) {
    async fn redirect(Query(q): Query<HashMap<String, String>>) -> Response {
        let status = q.get("status").and_then(|s| s.parse().ok()).unwrap_or(302);
        let to = q.get("to").cloned().unwrap_or_default();
        (StatusCode::from_u16(status).unwrap(), [(header::LOCATION, to)]).into_response()
    }
    async fn echo(req: Request) -> Response {
        let headers: HashMap<String, String> = req
            .headers()
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").to_owned()))
            .collect();
        let body = serde_json::json!({"method": req.method().as_str(), "query": req.uri().query(), "headers": headers});
        ([(header::CONTENT_TYPE, "application/json")], body.to_string()).into_response()
    }
    async fn slow() -> &'static str {
        tokio::time::sleep(Duration::from_secs(3)).await;
        "late"
    }
    async fn big() -> Vec<u8> {
        vec![b'x'; 100_000]
    }
    async fn stream() -> Response {
        let chunks = (0..100).map(|_| Ok::<_, std::io::Error>(bytes::Bytes::from(vec![b'y'; 1000])));
        // no Content-Length: the cap must hold while streaming
        axum::body::Body::from_stream(futures_util::stream::iter(chunks)).into_response()
    }
    async fn loop_(headers: HeaderMap) -> Response {
        let _ = headers;
        (StatusCode::FOUND, [(header::LOCATION, "/loop")]).into_response()
    }
    let app = Router::new()
        .route("/redirect", get(redirect).post(redirect))
        .route("/echo", get(echo).post(echo))
        .route("/slow", get(slow))
        .route("/big", get(big))
        .route("/stream", get(stream))
        .route("/loop", get(loop_));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    (format!("http://{addr}"), task)
}

fn local() -> Egress {
    let limits = Limits {
        total_timeout: Duration::from_secs(5),
        ..Limits::default()
    };
    Egress::with_resolver(
        AllowList::parse("127.0.0.1, other-origin.test").unwrap(),
        limits,
        resolver_with_other(),
    )
    .unwrap()
}

fn resolver_with_other() -> Arc<MapResolver> {
    let mut map = Arc::try_unwrap(resolver()).ok().unwrap().0;
    map.insert("other-origin.test", vec!["127.0.0.1".parse().unwrap()]);
    Arc::new(MapResolver(map))
}

fn with_credentials(url: &str) -> OutboundRequest {
    let mut req = OutboundRequest::new(Method::GET, Url::parse(url).unwrap());
    req.headers.insert(
        http::header::AUTHORIZATION,
        HeaderValue::from_static("Bearer secret-token"),
    );
    req.headers.insert(
        HeaderName::from_static("x-api-key"),
        HeaderValue::from_static("secret-key"),
    );
    req.credential_headers.push(HeaderName::from_static("x-api-key"));
    req.credential_query.push("api_key".into());
    req
}

fn echoed(body: &[u8]) -> serde_json::Value {
    serde_json::from_slice(body).unwrap()
}

#[tokio::test]
async fn redirects_to_private_targets_are_refused() {
    let (base, _server) = serve().await;
    let guard = local();
    for target in [
        "http://169.254.169.254/latest/meta-data/",
        "http://10.0.0.1/",
        "http://[::ffff:10.0.0.1]/",
        "http://internal.corp.test/",
        // refused as a whole: its first answer is private (a public-first answer would be
        // reachable here, since this guard allows 127.0.0.1, and tests never call out)
        "http://private-then-public.test/",
        "http://2852039166/",
    ] {
        let url = format!(
            "{base}/redirect?to={}",
            url::form_urlencoded::byte_serialize(target.as_bytes()).collect::<String>()
        );
        let err = guard
            .send(OutboundRequest::new(Method::GET, Url::parse(&url).unwrap()), None)
            .await
            .unwrap_err();
        assert_eq!(err.code(), "ssrf_blocked", "{target}: {err}");
    }
    let err = guard
        .send(
            OutboundRequest::new(
                Method::GET,
                Url::parse(&format!("{base}/redirect?to=file:///etc/passwd")).unwrap(),
            ),
            None,
        )
        .await
        .unwrap_err();
    assert_eq!(err.code(), "invalid_url");
}

#[tokio::test]
async fn credentials_are_dropped_when_the_origin_changes() {
    let (base, _server) = serve().await;
    let port = Url::parse(&base).unwrap().port().unwrap();
    let guard = local();

    // same origin: everything kept
    let url = format!("{base}/redirect?to=/echo%3Fapi_key%3Dk1%26q%3D1");
    let resp = guard.send(with_credentials(&url), None).await.unwrap();
    let v = echoed(&resp.body);
    assert_eq!(resp.redirects, 1);
    assert_eq!(v["headers"]["authorization"], "Bearer secret-token");
    assert_eq!(v["headers"]["x-api-key"], "secret-key");
    assert_eq!(v["query"], "api_key=k1&q=1");

    // another origin (another host name for the same server): Authorization, the key
    // header and the key query parameter are gone
    let other = format!("http://other-origin.test:{port}/echo?api_key=k1&q=1");
    let url = format!(
        "{base}/redirect?to={}",
        url::form_urlencoded::byte_serialize(other.as_bytes()).collect::<String>()
    );
    let resp = guard.send(with_credentials(&url), None).await.unwrap();
    let v = echoed(&resp.body);
    assert!(v["headers"].get("authorization").is_none(), "{v}");
    assert!(v["headers"].get("x-api-key").is_none(), "{v}");
    assert_eq!(v["query"], "q=1");

    // and they stay gone when a later hop comes back
    let back = format!("{base}/echo");
    let hop2 = format!(
        "http://other-origin.test:{port}/redirect?to={}",
        url::form_urlencoded::byte_serialize(back.as_bytes()).collect::<String>()
    );
    let url = format!(
        "{base}/redirect?to={}",
        url::form_urlencoded::byte_serialize(hop2.as_bytes()).collect::<String>()
    );
    let resp = guard.send(with_credentials(&url), None).await.unwrap();
    assert_eq!(resp.redirects, 2);
    assert!(echoed(&resp.body)["headers"].get("authorization").is_none());

    // user info in a redirect never becomes credentials the call did not have
    let with_user = format!("http://mallory:pw@127.0.0.1:{port}/echo");
    let url = format!(
        "{base}/redirect?to={}",
        url::form_urlencoded::byte_serialize(with_user.as_bytes()).collect::<String>()
    );
    let plain = chatterfly_egress::OutboundRequest::new(Method::GET, Url::parse(&url).unwrap());
    let v = echoed(&guard.send(plain, None).await.unwrap().body);
    assert!(v["headers"].get("authorization").is_none(), "{v}");

    // 303 turns a POST into a GET without its body; 307 keeps the method
    let mut post = with_credentials(&format!("{base}/redirect?status=303&to=/echo"));
    post.method = Method::POST;
    post.body = Some(bytes::Bytes::from_static(b"{}"));
    let v = echoed(&guard.send(post.clone(), None).await.unwrap().body);
    assert_eq!(v["method"], "GET");
    post.url = Url::parse(&format!("{base}/redirect?status=307&to=/echo")).unwrap();
    let v = echoed(&guard.send(post, None).await.unwrap().body);
    assert_eq!(v["method"], "POST");
}

#[tokio::test]
async fn limits_hold() {
    let (base, _server) = serve().await;
    let guard = local();
    let get = |path: &str| OutboundRequest::new(Method::GET, Url::parse(&format!("{base}{path}")).unwrap());

    let tight = Limits {
        total_timeout: Duration::from_millis(300),
        ..Limits::default()
    };
    let started = std::time::Instant::now();
    let err = guard.send(get("/slow"), Some(tight)).await.unwrap_err();
    assert_eq!(err.code(), "upstream_timeout", "{err}");
    assert!(started.elapsed() < Duration::from_secs(2));

    let small = Limits {
        max_response_bytes: 10_000,
        ..Limits::default()
    };
    for path in ["/big", "/stream"] {
        let err = guard.send(get(path), Some(small)).await.unwrap_err();
        assert_eq!(err.code(), "upstream_too_large", "{path}: {err}");
    }
    assert_eq!(guard.send(get("/big"), None).await.unwrap().body.len(), 100_000);
    assert_eq!(guard.send(get("/stream"), None).await.unwrap().body.len(), 100_000);

    let err = guard.send(get("/loop"), None).await.unwrap_err();
    assert_eq!(err.code(), "too_many_redirects");
    let two = Limits {
        max_redirects: 2,
        ..Limits::default()
    };
    let err = guard.send(get("/loop"), Some(two)).await.unwrap_err();
    assert!(err.to_string().contains("more than 2"), "{err}");

    // a connection asking for more than the operator allows gets the operator's maxima
    let greedy = Limits {
        max_redirects: 1000,
        total_timeout: Duration::from_secs(3600),
        ..Limits::default()
    };
    assert_eq!(greedy.within(guard.max_limits()).max_redirects, 5);
    assert_eq!(greedy.within(guard.max_limits()).total_timeout, Duration::from_secs(5));
}
