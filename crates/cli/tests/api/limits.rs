//! Attacks on the server's inbound limits, over raw TCP where a well-behaved client would
//! not go: headers that never end, bodies declared larger than the cap or never finished,
//! big bodies from people who may not send them, and what a large request costs in memory.

use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::*;

fn addr(s: &TestServer) -> String {
    s.url.trim_start_matches("http://").to_owned()
}

/// Sends `head` (and `body`) on a fresh connection and reads the status line of the answer,
/// waiting at most `wait`. `None` when no answer came in time or the connection closed.
async fn status_of(s: &TestServer, head: &str, body: &[u8], wait: Duration) -> Option<u16> {
    let mut c = TcpStream::connect(addr(s)).await.unwrap();
    c.write_all(head.as_bytes()).await.unwrap();
    if !body.is_empty() {
        c.write_all(body).await.unwrap();
    }
    let mut buf = vec![0u8; 4096];
    let n = tokio::time::timeout(wait, c.read(&mut buf)).await.ok()?.ok()?;
    let text = String::from_utf8_lossy(&buf[..n]);
    text.split_whitespace().nth(1)?.parse().ok()
}

fn post_head(path: &str, token: &str, length: u64) -> String {
    format!(
        "POST {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json\r\nContent-Length: {length}\r\n\r\n"
    )
}

/// The server's open file descriptors.
fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, Iterator::count)
}

/// The server's peak resident memory so far, in KiB.
fn peak_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap()
}

db_tests! {
    async fn slow_headers_are_cut_off_while_others_are_served(db: Db) {
        let s = TestServer::start_with(BIN, db, chatterfly_testkit::server::Options {
            env: vec![
                ("CHATTERFLY_HEADER_READ_TIMEOUT_MS".into(), "1000".into()),
                ("CHATTERFLY_MAX_CONNECTIONS".into(), "100".into()),
            ],
            ..Default::default()
        }).await;
        let before = open_fds(s.pid());
        // 300 clients that start a request and never finish its headers
        let mut slow = Vec::new();
        for _ in 0..300 {
            let mut c = TcpStream::connect(addr(&s)).await.unwrap();
            c.write_all(b"GET /api/health HTTP/1.1\r\nHost: x\r\nX-Slow: ").await.unwrap();
            slow.push(c);
        }
        // meanwhile ordinary requests are answered (at most a header timeout late)
        for _ in 0..5 {
            let started = Instant::now();
            let (st, v) = s.call(Method::GET, "/api/me", None).await;
            assert_eq!(st, 200, "{v}");
            assert!(started.elapsed() < Duration::from_secs(5), "{:?}", started.elapsed());
        }
        assert!(open_fds(s.pid()) <= before + 100 + 16, "at most 100 connections open: {} fds", open_fds(s.pid()));
        // every slow client is closed by the server
        let deadline = Instant::now() + Duration::from_secs(10);
        for mut c in slow {
            let mut buf = [0u8; 512];
            let left = deadline.saturating_duration_since(Instant::now());
            match tokio::time::timeout(left, c.read(&mut buf)).await {
                Ok(Ok(_) | Err(_)) => {} // answered (408) and closed, or reset
                Err(_) => panic!("a connection that never sent its headers is still open after 10 s"),
            }
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(open_fds(s.pid()) <= before + 8, "descriptors back to {before}: {}", open_fds(s.pid()));
        let (st, _) = s.call(Method::GET, "/api/me", None).await;
        assert_eq!(st, 200);
    }

    async fn bodies_are_read_only_for_those_who_may_send_them(db: Db) {
        let s = TestServer::start_with(BIN, db, chatterfly_testkit::server::Options {
            env: vec![("CHATTERFLY_BODY_READ_TIMEOUT_MS".into(), "1500".into())],
            ..Default::default()
        }).await;
        let (member_id, member) = s.user("member@example.com").await;
        let (st, v) = s.call(Method::PUT, &format!("/api/workspaces/default/members/{member_id}"), Some(json!({"role": "member"}))).await;
        assert_eq!(st, 200, "{v}");
        let (outsider_id, outsider) = s.user("outsider@example.com").await;
        let (st, v) = s.call(Method::POST, "/api/workspaces", Some(json!({"name": "Other", "slug": "other"}))).await;
        assert_eq!(st, 201, "{v}");
        let (st, v) = s.call(Method::PUT, &format!("/api/workspaces/other/members/{outsider_id}"), Some(json!({"role": "admin"}))).await;
        assert_eq!(st, 200, "{v}");
        let create = "/api/workspaces/default/connections";
        let wait = Duration::from_secs(3);
        // 50 MB declared, 1 KiB sent: each is answered at once, no body read
        let partial = vec![b' '; 1024];
        let len = 50_000_000;
        for (who, token, expected) in [("no token", "nope", 401), ("another workspace's admin", outsider.as_str(), 404), ("a member", member.as_str(), 403)] {
            let started = Instant::now();
            let st = status_of(&s, &post_head(create, token, len), &partial, wait).await;
            assert_eq!(st, Some(expected), "{who}");
            assert!(started.elapsed() < Duration::from_secs(2), "{who}: {:?}", started.elapsed());
        }
        // a declared length over the cap: 413 before any body
        let st = status_of(&s, &post_head(create, &s.token, 1 << 40), b"", wait).await;
        assert_eq!(st, Some(413));
        // a tool call takes the ordinary cap (1 MiB)
        let st = status_of(&s, &post_head("/api/workspaces/default/tools/current_time/invoke", &s.token, 2 << 20), b"", wait).await;
        assert_eq!(st, Some(413));
        let big = format!("{{\"arguments\": {{}}, \"pad\": \"{}\"}}", "x".repeat(2 << 20));
        let (st, ct, _) = s.raw(Method::POST, "/api/workspaces/default/tools/current_time/invoke", Some("application/json"), big.into_bytes()).await;
        assert_eq!((st, ct.as_str()), (413, "application/problem+json"));
        // an admin who never finishes the body: 408 after the body read timeout
        let started = Instant::now();
        let st = status_of(&s, &post_head(create, &s.token, 10_000), &partial, Duration::from_secs(5)).await;
        assert_eq!(st, Some(408));
        assert!(started.elapsed() >= Duration::from_millis(1400), "{:?}", started.elapsed());
        // declaring large bodies and sending nothing holds no room: others' bodies are read
        let mut idle = Vec::new();
        for _ in 0..20 {
            let mut c = TcpStream::connect(addr(&s)).await.unwrap();
            c.write_all(post_head(create, &s.token, 50_000_000).as_bytes()).await.unwrap();
            idle.push(c);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
        let started = Instant::now();
        let (st, v) = s.call_as(&member, Method::POST, "/api/me/invitations/none/accept", None).await;
        assert_eq!(st, 404, "{v}");
        let (st, v) = s.call(Method::POST, "/api/workspaces", Some(json!({"name": "Third", "slug": "third"}))).await;
        assert_eq!(st, 201, "{v}");
        assert!(started.elapsed() < Duration::from_secs(2), "a small body waited {:?}", started.elapsed());
        drop(idle);
        // and the server carries on
        let (st, _) = s.call(Method::GET, "/api/me", None).await;
        assert_eq!(st, 200);
    }

    async fn a_large_connection_costs_a_bounded_multiple_of_its_size(db: Db) {
        let s = TestServer::start(BIN, db).await;
        // 2,000 operations with schemas of about 4 KB each: about 9 MB of JSON
        let props: serde_json::Map<String, Value> = (0..60)
            .map(|i| (format!("field_{i}"), json!({"type": "string", "description": format!("the field number {i} of this operation"), "maxLength": 100})))
            .collect();
        let ops: Vec<Value> = (0..2000)
            .map(|i| json!({"name": format!("op_{i}"), "method": "POST", "path": format!("/things/{i}"),
                "description": "x".repeat(200), "input_schema": {"type": "object", "properties": props}}))
            .collect();
        let body = json!({"name": "Big", "slug": "big", "service_type": "http", "base_url": "https://api.example.com", "operations": ops});
        let bytes = serde_json::to_vec(&body).unwrap();
        assert!(bytes.len() > 8_000_000, "{}", bytes.len());
        let base = peak_rss_kib(s.pid());
        let (st, _, text) = s.raw(Method::POST, "/api/workspaces/default/connections", Some("application/json"), bytes.clone()).await;
        assert_eq!(st, 201, "{}", &text[..text.len().min(500)]);
        let created = peak_rss_kib(s.pid());
        let ratio = (created.saturating_sub(base) * 1024) as f64 / bytes.len() as f64;
        eprintln!("creating a {} byte connection: peak RSS grew {ratio:.1}x", bytes.len());
        // about ten times (measured 9.3x to 9.7x here; the margin is for the allocator's
        // moods on a busy machine, not for growth: a copy of the operations would be 16x)
        assert!(ratio <= 11.0, "creating it cost {ratio:.1}x the body in memory");
        // reading it back (every member lists the tools) stays cheap too
        let (st, v) = s.call(Method::GET, "/api/workspaces/default/tools", None).await;
        assert_eq!(st, 200);
        assert_eq!(v["connections"].as_array().unwrap().len(), 2000);
        let (st, _) = s.call(Method::GET, "/api/workspaces/default/connections/big", None).await;
        assert_eq!(st, 200);
        let read = (peak_rss_kib(s.pid()).saturating_sub(created) * 1024) as f64 / bytes.len() as f64;
        eprintln!("reading it back: peak RSS grew {read:.1}x more");
        // (the schemas are parsed to be listed: about ten times their text, and the
        // allocator keeps what the create freed on other threads)
        assert!(read <= 12.0, "reading it back cost {read:.1}x the body more");
        // past the per-schema cap: refused with the operation's pointer
        let huge: serde_json::Map<String, Value> = (0..20_000)
            .map(|i| (format!("f{i}"), json!({"type": "string", "description": "one field of a very large schema"})))
            .collect();
        let (st, v) = s.call(Method::POST, "/api/workspaces/default/connections", Some(json!({
            "name": "Huge", "slug": "huge", "service_type": "http", "base_url": "https://api.example.com",
            "operations": [{"name": "op", "method": "POST", "path": "/x", "input_schema": {"type": "object", "properties": huge}}]}))).await;
        assert_eq!(st, 422, "{v}");
        // refused before it is parsed, naming the field
        assert!(v["detail"].as_str().unwrap().contains("operations[0].input_schema"), "{v}");
        // an oversized `auth` likewise
        let big_auth = json!({"name": "A", "slug": "auth_big", "service_type": "http", "base_url": "https://api.example.com",
            "auth": {"type": "bearer", "token": "t", "pad": "p".repeat(100_000)}});
        let (st, v) = s.call(Method::POST, "/api/workspaces/default/connections", Some(big_auth)).await;
        assert_eq!((st, v["code"].as_str()), (422, Some("invalid_body")), "{v}");
        assert!(v["detail"].as_str().unwrap().contains("`auth`"), "{v}");
        // long lists of tiny values (a huge array parses to many times its size): refused
        // on the text, before it is parsed
        let dense = json!({"name": "A", "slug": "dense", "service_type": "http", "base_url": "https://api.example.com",
            "auth": {"type": "bearer", "token": "t", "pad": vec![0; 100_000]}});
        let (st, v) = s.call(Method::POST, "/api/workspaces/default/connections", Some(dense)).await;
        assert_eq!((st, v["code"].as_str()), (422, Some("too_many_values")), "{v}");
    }

    async fn enum_heavy_schemas_cost_a_bounded_multiple_of_their_size(db: Db) {
        let s = TestServer::start(BIN, db).await;
        // about the densest a connection may be: enums of short strings, 17 bytes per value
        let values: Vec<String> = (0..4_000).map(|i| format!("value_{i:08}")).collect();
        let ops: Vec<Value> = (0..60)
            .map(|i| json!({"name": format!("op_{i}"), "method": "GET", "path": "/x",
                "input_schema": {"type": "object", "properties": {"a": {"enum": values}, "b": {"enum": values}}}}))
            .collect();
        let body = json!({"name": "Enums", "slug": "enums", "service_type": "http", "base_url": "https://api.example.com", "operations": ops});
        let bytes = serde_json::to_vec(&body).unwrap();
        let base = peak_rss_kib(s.pid());
        let (st, _, text) = s.raw(Method::POST, "/api/workspaces/default/connections", Some("application/json"), bytes.clone()).await;
        assert_eq!(st, 201, "{}", &text[..text.len().min(500)]);
        let ratio = (peak_rss_kib(s.pid()).saturating_sub(base) * 1024) as f64 / bytes.len() as f64;
        eprintln!("creating an enum-heavy {} byte connection: peak RSS grew {ratio:.1}x", bytes.len());
        assert!(ratio <= 12.0, "creating it cost {ratio:.1}x the body in memory");
        // denser than that is refused on the text, before it is parsed
        let tiny: Vec<String> = (0..4_000).map(|i| format!("v{i}")).collect();
        let ops: Vec<Value> = (0..20)
            .map(|i| json!({"name": format!("op_{i}"), "method": "GET", "path": "/x",
                "input_schema": {"type": "object", "properties": {"a": {"enum": tiny}}}}))
            .collect();
        let (st, v) = s.call(Method::POST, "/api/workspaces/default/connections", Some(json!({
            "name": "Tiny", "slug": "tiny", "service_type": "http", "base_url": "https://api.example.com", "operations": ops}))).await;
        assert_eq!((st, v["code"].as_str()), (422, Some("too_many_values")), "{v}");
    }
}

/// A small document whose schemas refer to each other four ways at each of twelve levels
/// (`S0` → 4 × `S1` → … → `S11`), used by every operation: fully inlined, one operation's
/// schema would be 4^11 objects.
fn reference_chain(operations: usize) -> String {
    let mut schemas = serde_json::Map::new();
    for i in 0..12 {
        let next = if i < 11 {
            json!({"$ref": format!("#/components/schemas/S{}", i + 1)})
        } else {
            json!({"type": "string"})
        };
        let props: serde_json::Map<String, Value> = (0..4).map(|j| (format!("p{j}"), next.clone())).collect();
        schemas.insert(
            format!("S{i}"),
            json!({"type": "object", "description": format!("level {i}"), "properties": props}),
        );
    }
    let mut paths = serde_json::Map::new();
    for k in 0..operations {
        let body = json!({"content": {"application/json": {"schema": {"$ref": "#/components/schemas/S0"}}}});
        paths.insert(format!("/op{k}"), json!({"post": {"operationId": format!("op{k}"), "requestBody": body,
            "responses": {"200": {"description": "ok", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/S0"}}}}}}}));
    }
    json!({"openapi": "3.0.3", "info": {"title": "chain", "version": "1"}, "servers": [{"url": "https://api.example.com"}],
        "paths": paths, "components": {"schemas": schemas}}).to_string()
}

db_tests! {
    async fn a_reference_chain_cannot_blow_up_an_import(db: Db) {
        let s = TestServer::start(BIN, db).await;
        let doc = reference_chain(5000);
        assert!(doc.len() < 2_000_000, "{}", doc.len());
        let base = peak_rss_kib(s.pid());
        let started = Instant::now();
        let (st, _, text) = s.raw(Method::POST, "/api/workspaces/default/connections/import/openapi",
            Some("application/json"), doc.into_bytes()).await;
        let took = started.elapsed();
        assert_eq!(st, 200, "{}", &text[..text.len().min(400)]);
        let grown = peak_rss_kib(s.pid()).saturating_sub(base) / 1024;
        eprintln!("5,000 operations over a reference chain: {} bytes of answer, {took:?}, peak RSS +{grown} MiB", text.len());
        let v: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["draft"]["operations"].as_array().unwrap().len(), 5000);
        assert!(text.len() < 40_000_000, "the draft is bounded: {} bytes", text.len());
        assert!(grown < 100, "peak memory grew {grown} MiB");
        assert!(v["warnings"].as_array().unwrap().iter().any(|w| w["reason"].as_str().unwrap().contains("expand into more than")), "{}", v["warnings"]);
        // the draft is a connection the server accepts as it is
        let (st, c) = s.call(Method::POST, "/api/workspaces/default/connections", Some(v["draft"].clone())).await;
        assert_eq!(st, 201, "{}", c.to_string().chars().take(400).collect::<String>());
        assert_eq!(c["operation_count"], 5000);
    }
}

/// Reads one answer from `c`: its status, its head (lower case) and its body (by its
/// `Content-Length`). `None` when the connection closed first.
async fn answer(c: &mut TcpStream) -> Option<(u16, String, Vec<u8>)> {
    /// Reads more onto `buf` (within 5 s); `None` when the connection closed.
    async fn more(c: &mut TcpStream, buf: &mut Vec<u8>) -> Option<()> {
        let mut chunk = [0u8; 4096];
        let n = tokio::time::timeout(Duration::from_secs(5), c.read(&mut chunk))
            .await
            .ok()?
            .ok()?;
        buf.extend_from_slice(&chunk[..n]);
        (n > 0).then_some(())
    }
    let mut buf = Vec::new();
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        more(c, &mut buf).await?;
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_ascii_lowercase();
    let status = head.split_whitespace().nth(1)?.parse().ok()?;
    let length: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    let mut body = buf.split_off(head_end);
    while body.len() < length {
        more(c, &mut body).await?;
    }
    Some((status, head, body))
}

/// An answer given before the request's body was read (a refused token, a workspace the
/// caller is not in) says `Connection: close`, and the connection is closed: a keep-alive
/// client opens a new one instead of losing its next request. Answers to requests whose
/// body was read keep the connection for the next request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_before_the_body_is_read_say_the_connection_closes() {
    let s = TestServer::start(BIN, Db::Sqlite).await;
    let (uid, token) = s.user("keepalive@example.com").await;
    let member = format!("/api/workspaces/default/members/{uid}");
    assert_eq!(
        s.call(Method::PUT, &member, Some(json!({"role": "member"}))).await.0,
        200
    );
    let body = br#"{"arguments":{}}"#;
    let tool = "/api/workspaces/default/tools/current_time/invoke";
    for (what, path, bearer, status) in [
        ("a refused token", tool, "cft_not_a_token", 401),
        (
            "another workspace",
            "/api/workspaces/nowhere/tools/current_time/invoke",
            token.as_str(),
            404,
        ),
        (
            "another workspace's connection tool",
            "/api/workspaces/nowhere/tools/a.b/invoke",
            token.as_str(),
            404,
        ),
    ] {
        let mut c = TcpStream::connect(addr(&s)).await.unwrap();
        c.write_all(post_head(path, bearer, body.len() as u64).as_bytes())
            .await
            .unwrap();
        c.write_all(body).await.unwrap();
        let (st, head, _) = answer(&mut c).await.unwrap_or_else(|| panic!("{what}: no answer"));
        assert_eq!(st, status, "{what}: {head}");
        assert!(
            head.contains("\r\nconnection: close\r\n"),
            "{what}: the answer does not say the connection closes: {head}"
        );
        // and it does close
        let mut rest = [0u8; 64];
        let n = tokio::time::timeout(Duration::from_secs(5), c.read(&mut rest)).await;
        assert!(
            matches!(n, Ok(Ok(0)) | Ok(Err(_))),
            "{what}: the connection stayed open: {n:?}"
        );
    }
    // the body read (the call made, or refused after reading it): the connection carries on
    let mut c = TcpStream::connect(addr(&s)).await.unwrap();
    for (path, status) in [
        (tool, 200),
        ("/api/workspaces/default/tools/nope.op/invoke", 404),
        (tool, 200),
    ] {
        c.write_all(post_head(path, &token, body.len() as u64).as_bytes())
            .await
            .unwrap();
        c.write_all(body).await.unwrap();
        let (st, head, _) = answer(&mut c).await.expect("an answer on the kept connection");
        assert_eq!(st, status, "{path}: {head}");
        assert!(!head.contains("connection: close"), "{path}: {head}");
    }
}

/// The server starts under the soft open-file limit many systems give a process (1,024; 256
/// here) and raises it to the hard limit: every client, kept-alive upstream connection and
/// MCP session is a file, and a few hundred workspaces' sessions reach 1,024.
#[test]
fn the_server_raises_its_open_file_limit_to_the_hard_one() {
    fn limits(pid: u32) -> Option<(u64, u64)> {
        let text = std::fs::read_to_string(format!("/proc/{pid}/limits")).ok()?;
        let line = text.lines().find(|l| l.starts_with("Max open files"))?;
        let mut n = line.split_whitespace().skip(3);
        Some((n.next()?.parse().ok()?, n.next()?.parse().ok()?))
    }
    let dir = tempfile::tempdir().unwrap();
    let mut child = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!(
            "ulimit -S -n 256 && exec {BIN} serve --data-dir {} --addr 127.0.0.1:0",
            dir.path().display()
        ))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    // the log, line by line, until the server says it is ready (after the limit is set)
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stderr).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    let mut log = String::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    while !log.contains(" ready ") {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) => {
                log.push_str(&line);
                log.push('\n');
            }
            Err(_) => break,
        }
    }
    let seen = limits(pid);
    let _ = child.kill();
    let _ = child.wait();
    assert!(log.contains(" ready "), "the server did not start: {log}");
    let (soft, hard) = seen.expect("the server's limits");
    assert!(hard > 256, "this machine's hard limit ({hard}) leaves nothing to raise");
    assert_eq!(soft, hard, "the soft limit stayed at {soft}; log: {log}");
    assert!(log.contains("open-file limit"), "said at start: {log}");
}
