//! Operating the server: fair shares of tool calls between workspaces, request ids,
//! readiness, Prometheus metrics and JSON logs.

use std::time::{Duration, Instant};

use chatterfly_testkit::httpbin_url;
use chatterfly_testkit::server::test_client;

use super::*;

async fn httpbin_connection(s: &TestServer, ws: &str) {
    let body = json!({"name": "hb", "slug": "hb", "service_type": "http", "base_url": httpbin_url(),
        "operations": [
            {"name": "slow", "method": "GET", "path": "/delay/2", "input_schema": {"type": "object"}},
            {"name": "get", "method": "GET", "path": "/get", "input_schema": {"type": "object"}}]});
    let (st, v) = s
        .call(Method::POST, &format!("/api/workspaces/{ws}/connections"), Some(body))
        .await;
    assert_eq!(st, 201, "{v}");
}

/// A connection `slug` in `ws` whose one operation `get` is `GET /` on `base_url`.
async fn root_connection(s: &TestServer, ws: &str, slug: &str, base_url: &str) {
    let body = json!({"name": slug, "slug": slug, "service_type": "http", "base_url": base_url,
        "operations": [{"name": "get", "method": "GET", "path": "/", "input_schema": {"type": "object"}}]});
    let (st, v) = s
        .call(Method::POST, &format!("/api/workspaces/{ws}/connections"), Some(body))
        .await;
    assert_eq!(st, 201, "{v}");
}

/// How long each of ten calls to `path` took (each must answer 200).
async fn ten_calls(s: &TestServer, path: &str) -> Vec<Duration> {
    let mut took = Vec::new();
    for _ in 0..10 {
        let t = Instant::now();
        let (st, v) = s.call(Method::POST, path, Some(json!({"arguments": {}}))).await;
        assert_eq!(st, 200, "{v}");
        took.push(t.elapsed());
    }
    took
}

fn p50(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

/// An upstream that answers every request with the same JSON document of small
/// objects, `size` bytes long (dense enough to cost real work to redact and parse, not so dense it is kept as
/// text).
async fn large_json_upstream(size: usize) -> (String, tokio::task::JoinHandle<()>) {
    let mut doc = String::from("[");
    let mut i = 0u32;
    while doc.len() < size {
        doc.push_str(&format!("{{\"name\":\"an ordinary value {i}\",\"n\":{i}}},"));
        i += 1;
    }
    doc.push_str("{}]");
    let doc = bytes::Bytes::from(doc);
    let app = axum::Router::new().fallback(move || {
        let doc = doc.clone();
        async move { ([("content-type", "application/json")], doc) }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (url, task)
}

/// An upstream whose `/slow` declares 2 MB of JSON and sends a byte every half second, and
/// whose other paths answer 100 KB of JSON at once.
async fn trickling_upstream() -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        loop {
            let Ok((mut sock, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let mut buf = vec![0u8; 8192];
                let n = sock.read(&mut buf).await.unwrap_or(0);
                if String::from_utf8_lossy(&buf[..n]).starts_with("GET /slow") {
                    let _ = sock
                        .write_all(
                            b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 2000000\r\n\r\n[",
                        )
                        .await;
                    for _ in 0..60 {
                        tokio::time::sleep(Duration::from_millis(500)).await;
                        if sock.write_all(b"0").await.is_err() {
                            return;
                        }
                    }
                } else {
                    let body = format!("[{}0]", "1,".repeat(50_000));
                    let head = format!(
                        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                        body.len()
                    );
                    let _ = sock.write_all(head.as_bytes()).await;
                    let _ = sock.write_all(body.as_bytes()).await;
                }
            });
        }
    });
    url
}

db_tests! {
    async fn one_workspaces_slow_upstream_does_not_slow_another(db: Db) {
        let s = TestServer::start_with(BIN, db, local_upstreams(&[("CHATTERFLY_MAX_CALLS_PER_WORKSPACE", "4")])).await;
        let (st, _) = s.call(Method::POST, "/api/workspaces", Some(json!({"name": "Quiet", "slug": "quiet"}))).await;
        assert_eq!(st, 201);
        httpbin_connection(&s, "default").await;
        httpbin_connection(&s, "quiet").await;
        let quiet = "/api/workspaces/quiet/tools/hb.get/invoke";
        let before = ten_calls(&s, quiet).await;
        // the noisy workspace: 40 callers on a 2-second upstream, each calling again at once
        let url = format!("{}/api/workspaces/default/tools/hb.slow/invoke", s.url);
        let client = test_client();
        let stop = Instant::now() + Duration::from_secs(5);
        let noisy: Vec<_> = (0..40).map(|_| {
            let (client, url, token) = (client.clone(), url.clone(), s.token.clone());
            tokio::spawn(async move {
                let (mut ok, mut busy, mut retry_after) = (0, 0, None);
                while Instant::now() < stop {
                    let r = client.post(&url).bearer_auth(&token).json(&json!({"arguments": {}})).send().await.unwrap();
                    match r.status().as_u16() {
                        200 => ok += 1,
                        429 => {
                            busy += 1;
                            retry_after = r.headers().get("retry-after").map(|v| v.to_str().unwrap().to_owned());
                            let p: Value = r.json().await.unwrap();
                            assert_eq!(p["code"], "workspace_busy", "{p}");
                            tokio::time::sleep(Duration::from_millis(50)).await;
                        }
                        other => panic!("noisy call answered {other}"),
                    }
                }
                (ok, busy, retry_after)
            })
        }).collect();
        tokio::time::sleep(Duration::from_millis(500)).await;
        let during = ten_calls(&s, quiet).await;
        let (mut ok, mut busy) = (0, 0);
        for h in noisy {
            let (o, b, retry) = h.await.unwrap();
            ok += o;
            busy += b;
            if b > 0 {
                assert_eq!(retry.as_deref(), Some("1"));
            }
        }
        let (before, during) = (p50(before), p50(during));
        eprintln!("quiet p50 before {before:?}, during {during:?}; noisy ok {ok}, busy {busy}");
        // at most 4 at once for 2 s each, over about 5 s: no more than 3 rounds of 4
        assert!((4..=16).contains(&ok), "{ok} slow calls went through");
        assert!(busy > 40, "{busy} refusals");
        assert!(during < before + Duration::from_millis(250), "the quiet workspace went from {before:?} to {during:?}");
        // the refusals are in the noisy workspace's audit, one a second (a flood of refusals
        // must not flood the audit); /metrics counts them all
        let (st, page) = s.call(Method::GET, "/api/workspaces/default/audit?outcome=error&limit=500", None).await;
        assert_eq!(st, 200);
        let refused = page["events"].as_array().unwrap().iter().filter(|e| e["error_code"] == "workspace_busy").count();
        assert!((3..=8).contains(&refused), "{refused} audited refusals of {busy}");
        assert_eq!(page["events"][0]["tool"], "hb.slow");
        assert_eq!(page["events"][0]["connection"], "hb");
    }

    async fn one_workspaces_large_answers_do_not_stall_another(db: Db) {
        let (upstream, _server) = large_json_upstream(4_000_000).await;
        let s = TestServer::start_with(BIN, db, local_upstreams(&[("CHATTERFLY_METRICS_ALLOW", "127.0.0.1/32")])).await;
        let (st, _) = s.call(Method::POST, "/api/workspaces", Some(json!({"name": "Quiet", "slug": "quiet"}))).await;
        assert_eq!(st, 201);
        httpbin_connection(&s, "quiet").await;
        root_connection(&s, "default", "big", &upstream).await;
        let quiet = "/api/workspaces/quiet/tools/hb.get/invoke";
        let before = ten_calls(&s, quiet).await;
        // the noisy workspace: 6 callers of a 4 MB JSON answer, each calling again at once
        let url = format!("{}/api/workspaces/default/tools/big.get/invoke", s.url);
        let client = test_client();
        let stop = Instant::now() + Duration::from_secs(6);
        let noisy: Vec<_> = (0..6).map(|_| {
            let (client, url, token) = (client.clone(), url.clone(), s.token.clone());
            tokio::spawn(async move {
                let mut ok = 0;
                while Instant::now() < stop {
                    let r = client.post(&url).bearer_auth(&token).json(&json!({"arguments": {}})).send().await.unwrap();
                    assert_eq!(r.status(), 200);
                    let text = r.bytes().await.unwrap();
                    assert!(text.len() > 4_000_000 && text.ends_with(b"}"), "{}", text.len());
                    ok += 1;
                }
                ok
            })
        }).collect();
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let during = ten_calls(&s, quiet).await;
        let jobs = metric(&s, "chatterfly_large_answer_jobs_total").await;
        let mut ok = 0;
        for h in noisy {
            ok += h.await.unwrap();
        }
        let (before, during) = (p50(before), p50(during));
        eprintln!("large answers: quiet p50 before {before:?}, during {during:?}; noisy answers {ok}");
        assert!(ok >= 6, "{ok} large answers");
        // the large answers were worked on off the async workers
        assert!(jobs >= 2.0, "{jobs} large answer jobs");
        assert!(during < before + Duration::from_millis(250), "the quiet workspace went from {before:?} to {during:?}");
    }

    async fn a_call_whose_client_hangs_up_is_audited(db: Db) {
        let s = TestServer::start_with(BIN, db, local_upstreams(&[])).await;
        httpbin_connection(&s, "default").await;
        // the client gives up on a 2-second call after half a second: the request had gone out
        let url = format!("{}/api/workspaces/default/tools/hb.slow/invoke", s.url);
        let gone = test_client().post(&url).bearer_auth(&s.token).json(&json!({"arguments": {}}))
            .timeout(Duration::from_millis(500)).send().await;
        assert!(gone.is_err());
        let mut events = Value::Null;
        for _ in 0..50 {
            let (st, page) = s.call(Method::GET, "/api/workspaces/default/audit?outcome=error", None).await;
            assert_eq!(st, 200);
            if page["events"].as_array().is_some_and(|e| !e.is_empty()) {
                events = page["events"].clone();
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert_eq!(events.as_array().map(Vec::len), Some(1), "{events}");
        let e = &events[0];
        assert_eq!((e["tool"].as_str(), e["connection"].as_str(), e["error_code"].as_str()),
            (Some("hb.slow"), Some("hb"), Some("client_closed")), "{e}");
        assert!(e["duration_ms"].as_u64().unwrap() >= 400, "{e}");
        let text = test_client().get(format!("{}/metrics", s.url)).send().await.unwrap().text().await.unwrap();
        assert!(text.lines().any(|l| l.starts_with("chatterfly_tool_calls_total{") && l.contains("outcome=\"client_closed\"") && l.ends_with(" 1")), "{text}");
    }

    async fn a_client_that_reads_nothing_holds_room_then_is_cut_off(db: Db) {
        let (upstream, _server) = large_json_upstream(9_000_000).await;
        let s = TestServer::start_with(BIN, db, local_upstreams(&[("CHATTERFLY_WRITE_STALL_TIMEOUT_MS", "2000")])).await;
        root_connection(&s, "default", "big", &upstream).await;
        assert_eq!(metric(&s, "chatterfly_answers_held_bytes").await, 0.0);
        // a client that asks for 9 MB and reads none of it, on a small receive window
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.set_recv_buffer_size(4096).unwrap();
        let addr: std::net::SocketAddr = s.url.trim_start_matches("http://").parse().unwrap();
        let mut conn = socket.connect(addr).await.unwrap();
        let body = r#"{"arguments": {}}"#;
        let request = format!("POST /api/workspaces/default/tools/big.get/invoke HTTP/1.1\r\nhost: {addr}\r\n\
            authorization: Bearer {}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}", s.token, body.len());
        tokio::io::AsyncWriteExt::write_all(&mut conn, request.as_bytes()).await.unwrap();
        // while its answer waits to be sent, the answer holds its room (its text, not more)
        // (first the answer's cost parsed, 24 times its size; then the text being sent)
        let mut held = 0.0;
        for _ in 0..100 {
            tokio::time::sleep(Duration::from_millis(50)).await;
            held = metric(&s, "chatterfly_answers_held_bytes").await;
            if held > 0.0 && held < 12_000_000.0 {
                break;
            }
        }
        assert!((9_000_000.0..12_000_000.0).contains(&held), "{held} bytes held while the answer is unread");
        // after the stall limit the connection is closed and the room comes back
        let started = Instant::now();
        while metric(&s, "chatterfly_answers_held_bytes").await > 0.0 {
            assert!(started.elapsed() < Duration::from_secs(10), "the room is still held");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        assert!(started.elapsed() >= Duration::from_millis(1000), "{:?}", started.elapsed());
        // the server closed it: what is left to read ends
        let mut rest = Vec::new();
        let read = tokio::time::timeout(Duration::from_secs(5), tokio::io::AsyncReadExt::read_to_end(&mut conn, &mut rest)).await;
        assert!(read.is_ok(), "the connection is still open");
        assert!(rest.len() < 9_000_000, "{} bytes arrived", rest.len());
        // a client that reads gets the whole answer
        let (st, v) = invoke(&s, "big.get", json!({})).await;
        assert_eq!(st, 200);
        assert!(v["output"]["body"].as_array().unwrap().len() > 100_000);
        assert_eq!(metric(&s, "chatterfly_answers_held_bytes").await, 0.0);
    }

    async fn an_http2_client_that_keeps_its_window_shut_is_cut_off(db: Db) {
        let (upstream, _server) = large_json_upstream(2_000_000).await;
        let s = TestServer::start_with(BIN, db, local_upstreams(&[("CHATTERFLY_WRITE_STALL_TIMEOUT_MS", "2000")])).await;
        root_connection(&s, "default", "big", &upstream).await;
        // HTTP/2 with every stream's window at 0: the client reads the socket (settings,
        // pings, headers) but lets the server send none of an answer's data
        let addr: std::net::SocketAddr = s.url.trim_start_matches("http://").parse().unwrap();
        let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
        let (mut client, connection) = h2::client::Builder::new()
            .initial_window_size(0)
            .handshake::<_, bytes::Bytes>(tcp)
            .await
            .unwrap();
        let connection = tokio::spawn(connection);
        let request = http::Request::post(format!("http://{addr}/api/workspaces/default/tools/big.get/invoke"))
            .header("authorization", format!("Bearer {}", s.token))
            .header("content-type", "application/json")
            .body(())
            .unwrap();
        let (answer, mut send) = client.send_request(request, false).unwrap();
        send.send_data(bytes::Bytes::from_static(br#"{"arguments": {}}"#), true).unwrap();
        let answer = tokio::time::timeout(Duration::from_secs(20), answer).await.unwrap().unwrap();
        assert_eq!(answer.status(), 200);
        let held = metric(&s, "chatterfly_answers_held_bytes").await;
        assert!((2_000_000.0..3_000_000.0).contains(&held), "{held} bytes held while the answer is unsent");
        // the socket never stalls, the answer does: after the limit the connection is closed,
        // even though the client asks for a new answer (which moves once) every 700 ms
        let started = Instant::now();
        let mut connection = std::pin::pin!(connection);
        let mut asked = 1;
        let ended = loop {
            tokio::select! {
                ended = &mut connection => break Some(ended),
                () = tokio::time::sleep(Duration::from_millis(700)) => {}
            }
            if started.elapsed() > Duration::from_secs(10) {
                break None;
            }
            let request = http::Request::post(format!("http://{addr}/api/workspaces/default/tools/big.get/invoke"))
                .header("authorization", format!("Bearer {}", s.token))
                .header("content-type", "application/json")
                .body(())
                .unwrap();
            if let Ok((_, mut send)) = client.send_request(request, false) {
                let _ = send.send_data(bytes::Bytes::from_static(br#"{"arguments": {}}"#), true);
                asked += 1;
            }
        };
        assert!(ended.is_some(), "the connection is still open after {:?} ({asked} answers asked)", started.elapsed());
        assert!(started.elapsed() >= Duration::from_millis(1000), "{:?}", started.elapsed());
        let started = Instant::now();
        while metric(&s, "chatterfly_answers_held_bytes").await > 0.0 {
            assert!(started.elapsed() < Duration::from_secs(5), "the room is still held");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        // an HTTP/2 client that reads gets its answers, however long the connection lives
        #[allow(clippy::disallowed_methods)] // a client of the server under test
        let h2 = reqwest::Client::builder().http2_prior_knowledge().build().unwrap();
        for _ in 0..2 {
            let r = h2.post(format!("{}/api/workspaces/default/tools/big.get/invoke", s.url)).bearer_auth(&s.token)
                .json(&json!({"arguments": {}})).send().await.unwrap();
            assert_eq!((r.version(), r.status().as_u16()), (reqwest::Version::HTTP_2, 200));
            let v: Value = r.json().await.unwrap();
            assert!(v["output"]["body"].as_array().unwrap().len() > 10_000);
            tokio::time::sleep(Duration::from_millis(1500)).await;
        }
        assert_eq!(metric(&s, "chatterfly_answers_held_bytes").await, 0.0);
    }

    async fn one_workspaces_slow_answers_do_not_queue_ahead_of_another(db: Db) {
        let upstream = trickling_upstream().await;
        let s = TestServer::start_with(BIN, db, local_upstreams(&[("CHATTERFLY_MAX_INFLIGHT_ANSWER_BYTES", "104857600")])).await;
        let (st, _) = s.call(Method::POST, "/api/workspaces", Some(json!({"name": "Quiet", "slug": "quiet"}))).await;
        assert_eq!(st, 201);
        let conn = json!({"name": "t", "slug": "t", "service_type": "http", "base_url": upstream,
            "operations": [{"name": "slow", "method": "GET", "path": "/slow", "input_schema": {"type": "object"}},
                {"name": "small", "method": "GET", "path": "/small", "input_schema": {"type": "object"}}]});
        for ws in ["default", "quiet"] {
            assert_eq!(s.call(Method::POST, &format!("/api/workspaces/{ws}/connections"), Some(conn.clone())).await.0, 201);
        }
        // the noisy workspace: four answers that declare 2 MB (48 MB of cost each, of a
        // 100 MB budget) and trickle in
        let url = format!("{}/api/workspaces/default/tools/t.slow/invoke", s.url);
        let noisy: Vec<_> = (0..4).map(|_| {
            let (url, token) = (url.clone(), s.token.clone());
            tokio::spawn(async move {
                let r = test_client().post(&url).bearer_auth(&token).json(&json!({"arguments": {}}))
                    .timeout(Duration::from_secs(15)).send().await;
                r.map(|r| r.status().as_u16()).unwrap_or(0)
            })
        }).collect();
        tokio::time::sleep(Duration::from_millis(1000)).await;
        // the quiet workspace's 100 KB answer (2.4 MB of cost) does not wait behind them
        let started = Instant::now();
        let (st, v) = s.call(Method::POST, "/api/workspaces/quiet/tools/t.small/invoke", Some(json!({"arguments": {}}))).await;
        let took = started.elapsed();
        assert_eq!(st, 200, "{v}");
        eprintln!("a small answer beside another workspace's slow ones: {took:?}");
        assert!(took < Duration::from_secs(3), "it waited {took:?}");
        // the noisy workspace's own queue: past its quarter of the budget, its answers wait
        // and are refused in time
        let mut statuses = Vec::new();
        for n in noisy {
            statuses.push(n.await.unwrap());
        }
        assert!(statuses.iter().filter(|&&c| c == 503).count() >= 2, "{statuses:?}");
    }

    async fn requests_carry_an_id_in_headers_problems_and_logs(db: Db) {
        let s = TestServer::start_with(BIN, db, local_upstreams(&[])).await;
        let client = test_client();
        // a new id on every answer, a well-formed client id kept, a bad one replaced
        let r = client.get(format!("{}/api/health", s.url)).send().await.unwrap();
        let id = r.headers()["x-request-id"].to_str().unwrap().to_owned();
        assert!(id.len() >= 16, "{id}");
        let r = client.get(format!("{}/api/health", s.url)).header("x-request-id", "trace-42:a.b_c").send().await.unwrap();
        assert_eq!(r.headers()["x-request-id"], "trace-42:a.b_c");
        let r = client.get(format!("{}/api/health", s.url)).header("x-request-id", "bad id\twith\"quotes").send().await.unwrap();
        assert_ne!(r.headers()["x-request-id"], "bad id\twith\"quotes");
        // a problem document names it
        let r = client.get(format!("{}/api/workspaces/nope", s.url)).bearer_auth(&s.token)
            .header("x-request-id", "find-me-0001").send().await.unwrap();
        assert_eq!(r.status(), 404);
        assert_eq!(r.headers()["x-request-id"], "find-me-0001");
        let p: Value = r.json().await.unwrap();
        assert_eq!(p["request_id"], "find-me-0001", "{p}");
        // so does every line the server logged while serving it
        let r = client.post(format!("{}/api/users", s.url)).bearer_auth(&s.token)
            .header("x-request-id", "user-create-0002").json(&json!({"email": "rid@example.com", "name": "R"}))
            .send().await.unwrap();
        assert_eq!(r.status(), 201);
        let (_, log) = s.stop();
        let line = log.lines().find(|l| l.contains("user created")).expect("the user-created line");
        assert!(line.contains("user-create-0002"), "{line}");
    }

    async fn readiness_and_metrics(db: Db) {
        let s = TestServer::start_with(BIN, db, local_upstreams(&[
            ("CHATTERFLY_METRICS_TOKEN", "metrics-secret-0123456789"),
            ("CHATTERFLY_METRICS_ALLOW", "10.0.0.0/8"),
        ])).await;
        let (st, v) = s.call_as("", Method::GET, "/api/health/ready", None).await;
        assert_eq!((st, v["status"].as_str()), (200, Some("ready")), "{v}");
        assert_eq!(v["checks"], json!({"database": "ok", "keys": "ok"}));
        httpbin_connection(&s, "default").await;
        root_connection(&s, "default", "down", "http://127.0.0.1:9").await;
        // the watcher sees those writes too (a second invalidation): let it settle first
        tokio::time::sleep(Duration::from_millis(500)).await;
        for _ in 0..3 {
            assert_eq!(invoke(&s, "hb.get", json!({})).await.0, 200);
        }
        let (st, _) = invoke(&s, "hb.nope", json!({})).await;
        assert_eq!(st, 404);
        let (st, p) = invoke(&s, "down.get", json!({})).await;
        assert_eq!((st, p["code"].as_str()), (502, Some("upstream_unreachable")), "{p}");
        let client = test_client();
        let url = format!("{}/metrics", s.url);
        // loopback is not in the allow-list here: the token is needed
        assert_eq!(client.get(&url).send().await.unwrap().status(), 403);
        assert_eq!(client.get(&url).bearer_auth("wrong").send().await.unwrap().status(), 403);
        assert_eq!(client.get(&url).bearer_auth(&s.token).send().await.unwrap().status(), 403);
        let r = client.get(&url).bearer_auth("metrics-secret-0123456789").send().await.unwrap();
        assert_eq!(r.status(), 200);
        let text = r.text().await.unwrap();
        let value = |needle: &str| -> f64 {
            text.lines().find(|l| l.starts_with(needle)).unwrap_or_else(|| panic!("no {needle} in\n{text}"))
                .rsplit(' ').next().unwrap().parse().unwrap()
        };
        assert_eq!(value("chatterfly_tool_calls_total{kind=\"http\",outcome=\"ok\"}"), 3.0);
        assert_eq!(value("chatterfly_tool_calls_total{kind=\"unknown\",outcome=\"tool_not_found\"}"), 1.0);
        assert_eq!(value("chatterfly_tool_call_duration_seconds_count{kind=\"http\"}"), 4.0); // three ok and one unreachable
        assert_eq!(value("chatterfly_upstream_errors_total{class=\"upstream_unreachable\"}"), 1.0);
        // three calls of one tool: one read, then the cache; a missing tool is read each time
        assert_eq!(value("chatterfly_call_context_cache_misses_total"), 3.0, "{text}");
        assert_eq!(value("chatterfly_call_context_cache_hits_total"), 2.0);
        for name in ["chatterfly_db_pool_connections", "chatterfly_audit_backlog", "chatterfly_tool_calls_in_flight",
            "chatterfly_workflow_runs_queued", "chatterfly_ssrf_refusals_total", "chatterfly_upstream_errors"] {
            assert!(text.contains(name), "{name} missing");
        }
        assert!(!text.contains("metrics-secret"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_logs_name_the_request() {
    let s = TestServer::start_with(BIN, Db::Sqlite, local_upstreams(&[("CHATTERFLY_LOG_FORMAT", "json")])).await;
    let r = test_client()
        .post(format!("{}/api/users", s.url))
        .bearer_auth(&s.token)
        .header("x-request-id", "json-log-0003")
        .json(&json!({"email": "j@example.com", "name": "J"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let (_, log) = s.stop();
    let mut objects = 0;
    for line in log.lines().filter(|l| l.starts_with('{')) {
        let v: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
        assert!(v["level"].is_string() && v["timestamp"].is_string(), "{line}");
        objects += 1;
    }
    assert!(objects > 3, "{log}");
    let line = log
        .lines()
        .find(|l| l.contains("user created"))
        .expect("the user-created line");
    let v: Value = serde_json::from_str(line).unwrap();
    let spans = v["spans"].as_array().unwrap();
    assert!(spans.iter().any(|s| s["request_id"] == "json-log-0003"), "{line}");
}
