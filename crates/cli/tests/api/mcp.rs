//! MCP connections against real servers no one here wrote: the MCP reference server
//! (`@modelcontextprotocol/server-everything`, npm) and a server on the official Python SDK
//! (`mcp` on PyPI), each over Streamable HTTP and over HTTP+SSE. Discovery, create,
//! calls, tool errors, large results, restarts, expired sessions, list_changed, refresh,
//! credentials on every request, and the SSRF guard.

use std::collections::BTreeSet;
use std::time::Duration;

use chatterfly_testkit::peers::{McpPeer, McpPeerKind};
use sha2::Digest;

use super::*;

const CONN: &str = "/api/workspaces/default/connections";
const DISCOVER: &str = "/api/workspaces/default/connections/discover/mcp";

fn python_tools() -> BTreeSet<String> {
    ["echo", "add", "fail", "big", "grow", "auth_seen", "peer_port"]
        .map(String::from)
        .into()
}

fn names(list: &Value, field: &str) -> BTreeSet<String> {
    list.as_array()
        .unwrap_or_else(|| panic!("not a list: {list}"))
        .iter()
        .map(|t| t[field].as_str().unwrap().to_owned())
        .collect()
}

fn text(output: &Value) -> String {
    output["content"][0]["text"]
        .as_str()
        .unwrap_or_else(|| panic!("no text content: {output}"))
        .to_owned()
}

async fn create(s: &TestServer, slug: &str, url: &str, extra: Value) -> Value {
    let mut body = json!({"name": slug, "slug": slug, "service_type": "mcp", "base_url": url});
    for (k, v) in extra.as_object().unwrap() {
        body[k] = v.clone();
    }
    let (st, c) = s.call(Method::POST, CONN, Some(body)).await;
    assert_eq!(st, 201, "{c}");
    c
}

fn sha_hex(s: &str) -> String {
    sha2::Sha256::digest(s.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

db_tests! {
    async fn every_peer_is_discovered_and_called(db: Db) {
        let s = TestServer::start_with(BIN, db, local_upstreams(&[])).await;
        for kind in McpPeerKind::ALL {
            let peer = McpPeer::start(kind);
            let want_transport = if kind.is_sse() { "sse" } else { "streamable_http" };

            // discovery, auto transport: Streamable HTTP first, SSE as the fallback
            let (st, d) = s.call(Method::POST, DISCOVER, Some(json!({"url": peer.url}))).await;
            assert_eq!(st, 200, "{kind:?}: {d}");
            assert_eq!(d["transport"], want_transport, "{kind:?}: {d}");
            assert!(d["server"]["protocol_version"].as_str().is_some_and(|v| v.starts_with("20")), "{d}");
            let tools = names(&d["tools"], "name");
            if kind.is_python() {
                assert_eq!(d["server"]["name"], "peer-python-sdk");
                assert_eq!(tools, python_tools(), "{kind:?}");
                let add = d["tools"].as_array().unwrap().iter().find(|t| t["name"] == "add").unwrap();
                assert_eq!(add["input_schema"]["properties"]["a"]["type"], "integer", "{add}");
                assert!(add["output_schema"].is_object(), "the SDK announces an output schema: {add}");
            } else {
                assert_eq!(d["server"]["name"], "mcp-servers/everything");
                assert!(d["server"]["instructions"].as_str().is_some_and(|i| !i.is_empty()), "{d}");
                for t in ["echo", "get-sum", "get-structured-content", "get-tiny-image"] {
                    assert!(tools.contains(t), "{kind:?} lacks {t}: {tools:?}");
                }
            }
            assert_eq!(names(&d["operations"], "name"), tools, "operations are named after the tools");
            // an explicit transport is used as given; the wrong one fails clearly
            let other = if kind.is_sse() { "streamable_http" } else { "sse" };
            let (st, e) = s.call(Method::POST, DISCOVER, Some(json!({"url": peer.url, "transport": other}))).await;
            assert!(st == 502 || st == 504, "{kind:?} over {other}: {st} {e}");
            assert!(e["code"].as_str().unwrap().starts_with("mcp_") || e["code"] == "upstream_error", "{e}");

            // create stores the tool list and the transport found
            let slug = format!("{kind:?}").to_lowercase();
            let c = create(&s, &slug, &peer.url, json!({})).await;
            assert_eq!(c["transport"], want_transport, "{c}");
            assert_eq!(names(&c["operations"], "name"), tools);
            assert_eq!(c["operation_count"].as_u64().unwrap() as usize, tools.len());
            assert_eq!(c["mcp_server"]["name"], d["server"]["name"]);
            let (_, catalog) = s.call(Method::GET, "/api/workspaces/default/tools", None).await;
            let listed: BTreeSet<String> = names(&catalog["connections"], "name")
                .into_iter()
                .filter_map(|n| n.strip_prefix(&format!("{slug}.")).map(str::to_owned))
                .collect();
            assert_eq!(listed, tools, "every tool is in the picker as slug.tool");

            if kind.is_python() {
                let (st, v) = invoke(&s, &format!("{slug}.echo"), json!({"text": "héllo"})).await;
                assert_eq!(st, 200, "{v}");
                assert_eq!(text(&v["output"]), "héllo");
                assert_eq!(v["output"]["structured_content"], json!({"result": "héllo"}));
                assert_eq!(v["output"]["is_error"], false);
                let (_, v) = invoke(&s, &format!("{slug}.add"), json!({"a": 2, "b": 40})).await;
                assert_eq!(v["output"]["structured_content"]["result"], 42, "{v}");
                // a tool's own error is a normal output
                // (the SDK reports "Error executing tool fail", without the exception's text)
                let (st, v) = invoke(&s, &format!("{slug}.fail"), json!({"message": "boom-7"})).await;
                assert_eq!(st, 200, "{v}");
                assert_eq!(v["output"]["is_error"], true, "{v}");
                assert!(text(&v["output"]).contains("fail"), "{v}");
                // a large result (about 290 kB, twice: as text and as structured content),
                // sent as an event stream: parsed at the large-answer gate (off the MCP
                // sessions' threads), redacted on them, and written off the async workers
                let jobs = metric(&s, "chatterfly_large_answer_jobs_total").await;
                let (st, v) = invoke(&s, &format!("{slug}.big"), json!({"n": 30000})).await;
                assert_eq!(st, 200);
                assert_eq!(metric(&s, "chatterfly_large_answer_jobs_total").await - jobs, 2.0);
                let big = text(&v["output"]);
                assert_eq!(big.lines().count(), 30000);
                assert_eq!(big.lines().last(), Some("line 29999"));
                // arguments are checked against the tool's schema before anything is sent
                let (st, v) = invoke(&s, &format!("{slug}.add"), json!({"a": "two", "b": 1})).await;
                assert_eq!(st, 422, "{v}");
                assert_eq!(v["code"], "invalid_arguments");
            } else {
                let (st, v) = invoke(&s, &format!("{slug}.echo"), json!({"message": "hi there"})).await;
                assert_eq!(st, 200, "{v}");
                assert_eq!(text(&v["output"]), "Echo: hi there");
                let (_, v) = invoke(&s, &format!("{slug}.get-sum"), json!({"a": 19, "b": 23})).await;
                assert!(text(&v["output"]).contains("42"), "tool names with `-` are called as they are: {v}");
                let (_, v) = invoke(&s, &format!("{slug}.get-structured-content"), json!({"location": "Chicago"})).await;
                assert!(v["output"]["structured_content"].is_object(), "{v}");
                let (_, v) = invoke(&s, &format!("{slug}.get-tiny-image"), json!({})).await;
                let kinds: Vec<&str> = v["output"]["content"].as_array().unwrap().iter().filter_map(|c| c["type"].as_str()).collect();
                assert!(kinds.contains(&"image"), "{v}");
                let (st, v) = invoke(&s, &format!("{slug}.echo"), json!({})).await;
                assert_eq!(st, 422, "`message` is required: {v}");
            }
        }
        // members may call but not discover
        let (_, member) = s.user("member@example.com").await;
        let (st, _) = s.call_as(&member, Method::POST, DISCOVER, Some(json!({"url": "http://127.0.0.1:1/mcp"}))).await;
        assert!(st == 403 || st == 404, "{st}");
    }

    async fn sessions_survive_restarts_and_expiry(db: Db) {
        let s = TestServer::start_with(BIN, db, local_upstreams(&[])).await;
        for kind in McpPeerKind::ALL {
            // the Python server expires idle Streamable HTTP sessions after one second
            let mut peer = if kind == McpPeerKind::PythonHttp {
                McpPeer::start_with(kind, &["1"])
            } else {
                McpPeer::start(kind)
            };
            let slug = format!("r_{kind:?}").to_lowercase();
            create(&s, &slug, &peer.url, json!({})).await;
            let (tool, args, want) = if kind.is_python() {
                ("echo", json!({"text": "again"}), "again")
            } else {
                ("echo", json!({"message": "again"}), "Echo: again")
            };
            let tool = format!("{slug}.{tool}");
            let (st, v) = invoke(&s, &tool, args.clone()).await;
            assert_eq!((st, text(&v["output"])), (200, want.to_owned()), "{kind:?} first call: {v}");
            if kind == McpPeerKind::PythonHttp {
                tokio::time::sleep(Duration::from_millis(2500)).await;
                let (st, v) = invoke(&s, &tool, args.clone()).await;
                assert_eq!(st, 200, "{kind:?} after the server expired the session: {v}");
                assert_eq!(text(&v["output"]), want);
            }
            if kind == McpPeerKind::EverythingHttp {
                // a slow call times out with the connection's limit; the session stays usable
                let slow = format!("{slug}_slow");
                create(&s, &slow, &peer.url, json!({"limits": {"timeout_ms": 1000}})).await;
                let started = std::time::Instant::now();
                let (st, v) = invoke(&s, &format!("{slow}.trigger-long-running-operation"), json!({"duration": 4, "steps": 2})).await;
                assert_eq!((st, v["code"].as_str()), (504, Some("upstream_timeout")), "{v}");
                assert!(started.elapsed() < Duration::from_secs(3), "{:?}", started.elapsed());
                let (st, v) = invoke(&s, &format!("{slow}.echo"), json!({"message": "still here"})).await;
                assert_eq!((st, text(&v["output"])), (200, "Echo: still here".to_owned()), "{v}");
            }
            peer.restart();
            let (st, v) = invoke(&s, &tool, args.clone()).await;
            assert_eq!(st, 200, "{kind:?} after a server restart: {v}");
            assert_eq!(text(&v["output"]), want);
            let (st, _) = invoke(&s, &tool, args).await;
            assert_eq!(st, 200, "{kind:?} and again");
            drop(peer);
            // the server is gone: a clear error, not a hang
            let (st, v) = invoke(&s, &tool, json!({"text": "x", "message": "x"})).await;
            assert!(st == 502 || st == 504, "{kind:?} with the server down: {st} {v}");
        }
    }

    async fn list_changed_and_refresh_update_the_tools(db: Db) {
        let s = TestServer::start_with(BIN, db, local_upstreams(&[])).await;
        let peer = McpPeer::start(McpPeerKind::PythonHttp);
        // saved from a reviewed subset: one tool described differently, one the server lacks
        create(&s, "py", &peer.url, json!({"transport": "streamable_http", "operations": [
            {"name": "echo", "description": "old words", "input_schema": {"type": "object", "properties": {"text": {"type": "string"}}}},
            {"name": "grow", "input_schema": {"type": "object", "properties": {"name": {"type": "string"}}, "required": ["name"]}},
            {"name": "gone", "input_schema": {"type": "object"}},
        ]})).await;
        let (st, r) = s.call(Method::POST, &format!("{CONN}/py/refresh"), None).await;
        assert_eq!(st, 200, "{r}");
        let set = |v: &Value| -> BTreeSet<String> { v.as_array().unwrap().iter().map(|x| x.as_str().unwrap().to_owned()).collect() };
        assert_eq!(set(&r["added"]), ["add", "auth_seen", "big", "fail", "peer_port"].map(String::from).into());
        assert_eq!(set(&r["removed"]), ["gone".to_owned()].into());
        assert_eq!(set(&r["changed"]), ["echo", "grow"].map(String::from).into(), "{r}");
        assert_eq!(names(&r["connection"]["operations"], "name"), python_tools());
        let (st, again) = s.call(Method::POST, &format!("{CONN}/py/refresh"), Some(json!({}))).await;
        assert_eq!(st, 200);
        assert!(again["added"].as_array().unwrap().is_empty() && again["changed"].as_array().unwrap().is_empty()
            && again["removed"].as_array().unwrap().is_empty(), "{again}");
        let (st, gone) = invoke(&s, "py.gone", json!({})).await;
        assert_eq!((st, gone["code"].as_str()), (404, Some("tool_not_found")));

        // a tool the server adds while a session is live: list_changed → stored (a call
        // first, so the session's event stream, where the server sends it, is open)
        let (st, _) = invoke(&s, "py.echo", json!({"text": "warm"})).await;
        assert_eq!(st, 200);
        let (st, v) = invoke(&s, "py.grow", json!({"name": "ns.sprout"})).await;
        assert_eq!(st, 200, "{v}");
        let mut found = false;
        for _ in 0..100 {
            let (_, c) = s.call(Method::GET, &format!("{CONN}/py"), None).await;
            if names(&c["operations"], "name").contains("ns.sprout") {
                found = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(found, "notifications/tools/list_changed did not refresh the operations: {}", s.output());
        let (st, v) = invoke(&s, "py.ns.sprout", json!({"text": "a dotted tool name"})).await;
        assert_eq!(st, 200, "{v}");
        assert_eq!(text(&v["output"]), "a dotted tool name");
        // refreshing something that is not MCP
        let (st, _) = s.call(Method::POST, CONN, Some(json!({"name": "h", "slug": "h", "service_type": "http",
            "base_url": "https://example.com", "operations": []}))).await;
        assert_eq!(st, 201);
        let (st, e) = s.call(Method::POST, &format!("{CONN}/h/refresh"), None).await;
        assert_eq!((st, e["code"].as_str()), (422, Some("not_mcp")), "{e}");
        let (st, _) = s.call(Method::POST, &format!("{CONN}/nope/refresh"), None).await;
        assert_eq!(st, 404);
    }

    async fn calls_keep_their_connection_alive(db: Db) {
        // The Python SDK server answers every POST with an event stream; rmcp stops reading
        // it at the answer, before its end, which used to close the connection: every call
        // paid for a new one. Now the rest is drained and the connection kept.
        let s = TestServer::start_with(BIN, db, local_upstreams(&[])).await;
        let peer = McpPeer::start(McpPeerKind::PythonHttp);
        create(&s, "keep", &peer.url, json!({"transport": "streamable_http"})).await;
        let mut ports = BTreeSet::new();
        for _ in 0..12 {
            let (st, v) = invoke(&s, "keep.peer_port", json!({})).await;
            assert_eq!(st, 200, "{v}");
            let port = text(&v["output"]);
            assert!(port.parse::<u16>().is_ok(), "{port}");
            ports.insert(port);
            // the drain runs in the background: let it finish, as a call rate would
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(ports.len() <= 2, "12 calls used {} connections: {ports:?}", ports.len());
    }

    async fn bearer_goes_on_every_request(db: Db) {
        let s = TestServer::start_with(BIN, db, local_upstreams(&[])).await;
        for kind in [McpPeerKind::PythonHttp, McpPeerKind::PythonSse] {
            let peer = McpPeer::start(kind);
            let token = format!("mcp-canary-{}", uuid::Uuid::new_v4().simple());
            let slug = format!("b_{kind:?}").to_lowercase();
            let c = create(&s, &slug, &peer.url, json!({"auth": {"type": "bearer", "token": token}})).await;
            assert_eq!(c["auth"]["token_set"], true);
            assert!(!c.to_string().contains(&token));
            for _ in 0..2 {
                let (st, v) = invoke(&s, &format!("{slug}.auth_seen"), json!({})).await;
                assert_eq!(st, 200, "{v}");
                assert_eq!(text(&v["output"]), sha_hex(&format!("Bearer {token}")), "{kind:?}");
            }
            // a server echoing the token gets it redacted
            let (_, v) = invoke(&s, &format!("{slug}.echo"), json!({"text": format!("my token is {token}")})).await;
            assert!(!v.to_string().contains(&token), "{v}");
            assert!(text(&v["output"]).contains("[REDACTED]"), "{v}");

            // caller fulfillment: each call's token, never stored
            let slug = format!("c_{kind:?}").to_lowercase();
            let ops = json!([{"name": "auth_seen", "input_schema": {"type": "object"}}]);
            create(&s, &slug, &peer.url, json!({"auth": {"type": "bearer"}, "fulfillment": "caller",
                "transport": if kind.is_sse() { "sse" } else { "streamable_http" }, "operations": ops})).await;
            for t in ["caller-one-token", "caller-two-token"] {
                let (st, v) = s.call(Method::POST, &format!("/api/workspaces/default/tools/{slug}.auth_seen/invoke"),
                    Some(json!({"arguments": {}, "credentials": {"token": t}}))).await;
                assert_eq!(st, 200, "{v}");
                assert_eq!(text(&v["output"]), sha_hex(&format!("Bearer {t}")));
            }
            let (st, v) = invoke(&s, &format!("{slug}.auth_seen"), json!({})).await;
            assert_eq!((st, v["code"].as_str()), (422, Some("credentials_required")), "{v}");
        }
        let (_, logs) = s.stop();
        assert!(!logs.contains("mcp-canary-"), "a token reached the server's log");
    }

    async fn the_ssrf_guard_covers_mcp(db: Db) {
        let peer = McpPeer::start(McpPeerKind::EverythingHttp);
        // no CHATTERFLY_ALLOW_PRIVATE: loopback in any spelling is refused before connecting
        let s = TestServer::start(BIN, db).await;
        let port = peer.port;
        for url in [
            peer.url.clone(),
            format!("http://localhost:{port}/mcp"),
            format!("http://2130706433:{port}/mcp"),
            format!("http://0x7f.1:{port}/mcp"),
            format!("http://[::ffff:127.0.0.1]:{port}/mcp"),
            "http://169.254.169.254/mcp".to_owned(),
        ] {
            for transport in ["auto", "sse"] {
                let (st, e) = s.call(Method::POST, DISCOVER, Some(json!({"url": url, "transport": transport}))).await;
                assert_eq!((st, e["code"].as_str()), (403, Some("ssrf_blocked")), "{url} {transport}: {e}");
            }
        }
        let (st, e) = s.call(Method::POST, CONN, Some(json!({"name": "m", "slug": "m", "service_type": "mcp", "base_url": peer.url}))).await;
        assert_eq!((st, e["code"].as_str()), (403, Some("ssrf_blocked")), "{e}");
        // bad input
        for (body, pointer) in [
            (json!({"url": "ftp://example.com/mcp"}), "/url"),
            (json!({"url": "https://example.com/mcp", "auth": {"type": "basic", "username": "u", "password": "p"}}), "/auth/type"),
            (json!({"url": "https://example.com/mcp", "transport": "websocket"}), "`transport`"),
        ] {
            let (st, e) = s.call(Method::POST, DISCOVER, Some(body.clone())).await;
            assert_eq!(st, 422, "{body}: {e}");
            assert!(e.to_string().contains(pointer), "{body}: {e}");
        }
    }

    async fn an_sse_endpoint_on_another_origin_is_refused(db: Db) {
        // a hostile SSE server announcing a message endpoint elsewhere
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let posts = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let seen = posts.clone();
        tokio::spawn(async move {
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            loop {
                let Ok((mut sock, _)) = listener.accept().await else { return };
                let seen = seen.clone();
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 4096];
                    let n = sock.read(&mut buf).await.unwrap_or(0);
                    let req = String::from_utf8_lossy(&buf[..n]).to_string();
                    if req.starts_with("POST") {
                        seen.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                        let _ = sock.write_all(b"HTTP/1.1 405 Method Not Allowed\r\ncontent-length: 0\r\n\r\n").await;
                        return;
                    }
                    let body = format!("event: endpoint\ndata: http://localhost:{port}/steal\n\n");
                    let _ = sock.write_all(format!("HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n\r\n{body}").as_bytes()).await;
                    tokio::time::sleep(Duration::from_secs(5)).await;
                });
            }
        });
        let s = TestServer::start_with(BIN, db, local_upstreams(&[])).await;
        let (st, e) = s.call(Method::POST, DISCOVER, Some(json!({"url": format!("http://127.0.0.1:{port}/sse"), "transport": "sse"}))).await;
        assert_eq!((st, e["code"].as_str()), (403, Some("ssrf_blocked")), "{e}");
        assert!(e["detail"].as_str().unwrap().contains("origin"), "{e}");
        assert_eq!(posts.load(std::sync::atomic::Ordering::SeqCst), 0, "nothing was posted anywhere");
    }
}
