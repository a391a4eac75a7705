//! A `tools/call` of a workspace's session is POSTed by Chatterfly's own code (so a large
//! JSON answer is parsed in its turn); every other way a server can answer it must come
//! out as it does through rmcp's client, which sessions without a workspace still use.
//! Each answer shape below is called both ways and must end the same, but for one
//! difference on purpose: an event over the limit fails the call alone through Chatterfly
//! (through rmcp it ends the session's stream).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use chatterfly_egress::{AllowList, Egress, Limits};
use chatterfly_mcp::{McpClient, McpError, PoolSettings, Target};
use serde_json::{Value, json};

/// The largest event the sessions take here (the egress answer limit).
const MAX_ANSWER: usize = 512 * 1024;

fn headers(content_type: &str) -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert("mcp-session-id", "s1".parse().unwrap());
    h.insert(header::CONTENT_TYPE, content_type.parse().unwrap());
    h
}

/// The shapes' server; as `way=sessionless…` it gives no session id.
async fn mcp(
    state: axum::extract::State<Arc<[AtomicBool; 6]>>,
    way: axum::extract::Query<std::collections::HashMap<String, String>>,
    req: HeaderMap,
    body: Bytes,
) -> Response {
    let sessionless = way.get("way").is_some_and(|w| w.starts_with("sessionless"));
    let mut answer = shapes(state, way, req, body).await;
    if sessionless {
        answer.headers_mut().remove("mcp-session-id");
    }
    answer
}

async fn shapes(
    axum::extract::State(expired): axum::extract::State<Arc<[AtomicBool; 6]>>,
    axum::extract::Query(way): axum::extract::Query<std::collections::HashMap<String, String>>,
    req: HeaderMap,
    body: Bytes,
) -> Response {
    let msg: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let id = msg.get("id").cloned().unwrap_or(Value::Null);
    let answer = |result: Value| json!({"jsonrpc": "2.0", "id": id, "result": result}).to_string();
    let small = |text: &str| answer(json!({"content": [{"type": "text", "text": text}], "isError": false}));
    // the client's answer to a request this server sent
    if msg.get("method").is_none()
        && let Some(asked) = id.as_str()
    {
        let way = way.get("way").cloned().unwrap_or_default();
        ANSWERS.lock().unwrap().insert(format!("{way}:{asked}"), msg.clone());
        return StatusCode::ACCEPTED.into_response();
    }
    if msg.get("method").and_then(Value::as_str) == Some("notifications/cancelled") {
        let way = way.get("way").cloned().unwrap_or_default();
        CANCELLED
            .lock()
            .unwrap()
            .insert(way, msg["params"]["requestId"].clone());
    }
    match msg.get("method").and_then(Value::as_str) {
        Some("tools/list") => {
            return (
                headers("application/json"),
                answer(json!({"tools": [{"name": "json", "inputSchema": {"type": "object"}}]})),
            )
                .into_response();
        }
        Some("initialize") => {
            return (
                headers("application/json"),
                answer(json!({"protocolVersion": "2025-03-26", "capabilities": {"tools": {}},
                    "serverInfo": {"name": "shapes", "version": "1"}})),
            )
                .into_response();
        }
        Some("tools/call") => {}
        _ => return StatusCode::ACCEPTED.into_response(),
    }
    let name = msg["params"]["name"].as_str().unwrap_or("");
    let way = way.get("way").cloned().unwrap_or_default();
    *SENT.lock().unwrap().entry(format!("{way}:{name}")).or_default() += 1;
    let header = |name: &str| req.get(name).and_then(|v| v.to_str().ok()).map(str::to_owned);
    CALLS.lock().unwrap().insert(
        way.clone(),
        (id.clone(), header("mcp-session-id"), header("mcp-protocol-version")),
    );
    let sse = |data: String| {
        (
            headers("text/event-stream"),
            format!("event: message\ndata: {data}\n\n"),
        )
            .into_response()
    };
    match name {
        "json" => (headers("application/json; charset=utf-8"), small("json")).into_response(),
        "slow" => {
            tokio::time::sleep(Duration::from_millis(600)).await;
            (headers("application/json"), small("slow")).into_response()
        }
        "sse" => sse(small("sse")),
        "sse_slow" => {
            tokio::time::sleep(Duration::from_millis(1500)).await;
            sse(small("late"))
        }
        // 200,000 zeros: parsed, about 60 times their text
        "dense_json" | "dense_sse" => {
            let zeros = format!("[{}0]", "0,".repeat(200_000));
            let text = answer(json!({"content": [{"type": "text", "text": "dense"}], "isError": false}))
                .replacen("\"isError\"", &format!("\"structuredContent\":{{\"zeros\":{zeros}}},\"isError\""), 1);
            if name == "dense_sse" {
                sse(text)
            } else {
                (headers("application/json"), text).into_response()
            }
        }
        // requests to the client, then the answer
        "sse_asks_then_answers" => {
            let asks = [
                json!({"jsonrpc": "2.0", "id": "p1", "method": "ping"}),
                json!({"jsonrpc": "2.0", "id": "p2", "method": "roots/list"}),
                json!({"jsonrpc": "2.0", "id": "p3", "method": "sampling/createMessage",
                    "params": {"messages": [{"role": "user", "content": {"type": "text", "text": "hi"}}], "maxTokens": 1}}),
                json!({"jsonrpc": "2.0", "id": "p4", "method": "elicitation/create",
                    "params": {"message": "ok?", "requestedSchema": {"type": "object", "properties": {}}}}),
                json!({"jsonrpc": "2.0", "id": "p5", "method": "x/unknown", "params": {}}),
            ];
            let events: String = asks.iter().map(|a| format!("event: message\ndata: {a}\n\n")).collect();
            (headers("text/event-stream"), format!("{events}event: message\ndata: {}\n\n", small("asked"))).into_response()
        }
        "sse_tools_changed_then_answers" => (
            headers("text/event-stream"),
            format!(
                "event: message\ndata: {}\n\nevent: message\ndata: {}\n\n",
                json!({"jsonrpc": "2.0", "method": "notifications/tools/list_changed"}),
                small("changed")
            ),
        )
            .into_response(),
        // 2 MB of notifications before the answer (read partly on the calling task, the
        // rest on the MCP sessions' runtime)
        "sse_notes_then_answers" => {
            let note = json!({"jsonrpc": "2.0", "method": "notifications/message",
                "params": {"level": "info", "data": "n".repeat(40_000)}});
            let notes: String = (0..50).map(|_| format!("event: message\ndata: {note}\n\n")).collect();
            (headers("text/event-stream"), format!("{notes}event: message\ndata: {}\n\n", small("noted"))).into_response()
        }
        // a stream the server ends before the answer, which it gives on the resumed stream
        "sse_resume" => {
            RESUMING.lock().unwrap().insert(way.clone(), id.clone());
            (headers("text/event-stream"), "id: r1\nretry: 10\ndata: \n\n").into_response()
        }
        "sse_crlf_after_note" => (
            headers("text/event-stream"),
            format!(
                ": hi\r\n\r\nevent: message\r\ndata: {{\"jsonrpc\":\"2.0\",\"method\":\"notifications/message\",\"params\":{{\"level\":\"info\",\"data\":\"x\"}}}}\r\n\r\nevent: message\r\ndata: {}\r\n\r\n",
                small("crlf")
            ),
        )
            .into_response(),
        "rpc_error_500" => (
            StatusCode::INTERNAL_SERVER_ERROR,
            headers("application/json"),
            json!({"jsonrpc": "2.0", "id": id, "error": {"code": -32000, "message": "boom"}}).to_string(),
        )
            .into_response(),
        "rpc_error_400" => (
            StatusCode::BAD_REQUEST,
            headers("application/json"),
            json!({"jsonrpc": "2.0", "id": id, "error": {"code": -32602, "message": "bad arguments"}}).to_string(),
        )
            .into_response(),
        "text_500" => (StatusCode::INTERNAL_SERVER_ERROR, headers("text/plain"), "down").into_response(),
        "text_418" => (StatusCode::IM_A_TEAPOT, headers("text/plain"), "short and stout").into_response(),
        "unauthorized" => {
            let mut h = headers("application/json");
            h.insert(header::WWW_AUTHENTICATE, "Bearer realm=\"x\"".parse().unwrap());
            (StatusCode::UNAUTHORIZED, h, "{}").into_response()
        }
        "forbidden" => {
            let mut h = headers("application/json");
            h.insert(
                header::WWW_AUTHENTICATE,
                "Bearer error=\"insufficient_scope\", scope=\"tools:call\"".parse().unwrap(),
            );
            (StatusCode::FORBIDDEN, h, "{}").into_response()
        }
        "unauthorized_bare" => (StatusCode::UNAUTHORIZED, headers("text/plain"), "no").into_response(),
        "rate_limited" => {
            let mut h = headers("text/plain");
            h.insert(header::RETRY_AFTER, "1".parse().unwrap());
            (StatusCode::TOO_MANY_REQUESTS, h, "slow down").into_response()
        }
        "plain_text" => (headers("text/plain"), "hello").into_response(),
        "bad_json" => (headers("application/json"), "{not json").into_response(),
        "too_large_json" => (headers("application/json"), "x".repeat(MAX_ANSWER * 2)).into_response(),
        "too_large_event" => sse(format!("\"{}\"", "x".repeat(MAX_ANSWER * 2))),
        // how the TypeScript SDK's servers say they forgot a session: 400, an error
        // without an id
        "expired_idless" => {
            if req.contains_key("mcp-session-id") && !expired[4 + usize::from(way == "rmcp")].swap(true, SeqCst) {
                return (
                    StatusCode::BAD_REQUEST,
                    headers("application/json"),
                    json!({"jsonrpc": "2.0", "id": null, "error": {"code": -32000, "message": "Bad Request: No valid session ID provided"}})
                        .to_string(),
                )
                    .into_response();
            }
            (headers("application/json"), small("again")).into_response()
        }
        // event streams that carry no answer to the call
        "sse_other_id" => sse(json!({"jsonrpc": "2.0", "id": 987_654, "result": {"content": [], "isError": false}}).to_string()),
        "sse_other_then_right" => (
            headers("text/event-stream"),
            format!(
                "event: message\ndata: {}\n\nevent: message\ndata: {}\n\n",
                json!({"jsonrpc": "2.0", "id": 987_654, "result": {"content": [], "isError": false}}),
                small("right")
            ),
        )
            .into_response(),
        "sse_idless_error" => sse(json!({"jsonrpc": "2.0", "id": null, "error": {"code": -32603, "message": "it broke"}}).to_string()),
        "sse_notification_then_end" => sse(
            json!({"jsonrpc": "2.0", "method": "notifications/message", "params": {"level": "info", "data": "x"}})
                .to_string(),
        ),
        "sse_empty" => (headers("text/event-stream"), "").into_response(),
        // a resumable stream closed before the answer (the client is to resume it)
        "sse_priming_then_end" => (headers("text/event-stream"), "id: e1\nretry: 10\ndata: \n\n").into_response(),
        // a server that forgets every session as soon as a call comes
        "always_expired" => StatusCode::NOT_FOUND.into_response(),
        "always_expired_idless" => (
            StatusCode::BAD_REQUEST,
            headers("application/json"),
            json!({"jsonrpc": "2.0", "id": null, "error": {"code": -32000, "message": "Bad Request: No valid session ID provided"}})
                .to_string(),
        )
            .into_response(),
        "expired_once_json" | "expired_once_sse" => {
            let which = usize::from(name.ends_with("sse"));
            let flag = which * 2 + usize::from(way == "rmcp");
            if req.contains_key("mcp-session-id") && !expired[flag].swap(true, SeqCst) {
                return StatusCode::NOT_FOUND.into_response();
            }
            if which == 1 { sse(small("again")) } else { (headers("application/json"), small("again")).into_response() }
        }
        // answers to no call sent: rmcp drops them, and the call waits for its timeout
        "other_id" => (
            headers("application/json"),
            json!({"jsonrpc": "2.0", "id": 987_654, "result": {"content": [], "isError": false}}).to_string(),
        )
            .into_response(),
        "notification_body" => (
            headers("application/json"),
            json!({"jsonrpc": "2.0", "method": "notifications/message", "params": {"level": "info", "data": "x"}})
                .to_string(),
        )
            .into_response(),
        // an error without an id: the server could not read the request
        "idless_error" => (
            headers("application/json"),
            json!({"jsonrpc": "2.0", "id": null, "error": {"code": -32700, "message": "Parse error"}}).to_string(),
        )
            .into_response(),
        // a refusal by middleware that cannot echo the id (as the Python SDK's)
        "foreign_id_error" => (
            StatusCode::BAD_REQUEST,
            headers("application/json"),
            json!({"jsonrpc": "2.0", "id": "server-error", "error": {"code": -32600, "message": "Bad Request: No valid session ID provided"}})
                .to_string(),
        )
            .into_response(),
        _ => (headers("application/json"), small("unknown")).into_response(),
    }
}

/// How many times each `tools/call` reached the server, by `way:tool`.
static SENT: std::sync::Mutex<std::collections::BTreeMap<String, usize>> =
    std::sync::Mutex::new(std::collections::BTreeMap::new());

/// The last `tools/call` of each way: its id, and the session id and protocol version it
/// was sent with.
type Call = (Value, Option<String>, Option<String>);
static CALLS: std::sync::Mutex<std::collections::BTreeMap<String, Call>> =
    std::sync::Mutex::new(std::collections::BTreeMap::new());
/// The id a `notifications/cancelled` named, by way.
static CANCELLED: std::sync::Mutex<std::collections::BTreeMap<String, Value>> =
    std::sync::Mutex::new(std::collections::BTreeMap::new());
/// The client's answers to the server's requests, by `way:id`.
static ANSWERS: std::sync::Mutex<std::collections::BTreeMap<String, Value>> =
    std::sync::Mutex::new(std::collections::BTreeMap::new());
/// The call whose stream is resumed, by way.
static RESUMING: std::sync::Mutex<std::collections::BTreeMap<String, Value>> =
    std::sync::Mutex::new(std::collections::BTreeMap::new());

/// A stream resumed with `Last-Event-ID: r1` carries the answer to the call that began it.
async fn resume(
    axum::extract::Query(way): axum::extract::Query<std::collections::HashMap<String, String>>,
    req: HeaderMap,
) -> Response {
    let way = way.get("way").cloned().unwrap_or_default();
    let call = RESUMING.lock().unwrap().get(&way).cloned();
    match call {
        // an answer over the sessions' limit on the resumed stream
        Some(id) if way.starts_with("resume-big") && req.get("last-event-id").is_some_and(|v| v == "r1") => {
            let answer = json!({"jsonrpc": "2.0", "id": id,
                "result": {"content": [{"type": "text", "text": "x".repeat(MAX_ANSWER * 2)}], "isError": false}});
            (
                headers("text/event-stream"),
                format!("id: r2\nevent: message\ndata: {answer}\n\n"),
            )
                .into_response()
        }
        Some(id) if req.get("last-event-id").is_some_and(|v| v == "r1") => {
            let answer = json!({"jsonrpc": "2.0", "id": id,
                "result": {"content": [{"type": "text", "text": "resumed"}], "isError": false}});
            (
                headers("text/event-stream"),
                format!("id: r2\nevent: message\ndata: {answer}\n\n"),
            )
                .into_response()
        }
        _ => StatusCode::METHOD_NOT_ALLOWED.into_response(),
    }
}

fn sent(way: &str, tool: &str) -> usize {
    SENT.lock().unwrap().get(&format!("{way}:{tool}")).copied().unwrap_or(0)
}

fn start_server() -> String {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let state: Arc<[AtomicBool; 6]> = Arc::new(std::array::from_fn(|_| AtomicBool::new(false)));
            let app = axum::Router::new()
                .route("/mcp", post(mcp).get(resume).delete(|| async { StatusCode::OK }))
                .with_state(state);
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            tx.send(format!("http://{}/mcp", listener.local_addr().unwrap()))
                .unwrap();
            axum::serve(listener, app).await.unwrap();
        });
    });
    rx.recv().unwrap()
}

/// How a call ended, comparably: its text, or its error's code and kind.
fn outcome(r: &Result<Value, McpError>) -> String {
    match r {
        Ok(v) => format!("ok {}", v["content"][0]["text"]),
        Err(McpError::Rpc { code, message }) => format!("rpc {code} {message}"),
        Err(McpError::Unauthorized(status)) => format!("unauthorized {status}"),
        Err(e) => e.code().to_owned(),
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

fn limits() -> Limits {
    Limits {
        max_response_bytes: MAX_ANSWER,
        total_timeout: Duration::from_secs(20),
        ..Limits::default()
    }
}

fn client() -> Arc<McpClient> {
    let egress = Egress::new(AllowList::parse("127.0.0.1").unwrap(), limits()).unwrap();
    McpClient::new(egress, PoolSettings::default()).0
}

/// The test server as `way` (counted apart) calls it: through Chatterfly's own POST when
/// there is a workspace, rmcp's otherwise.
fn target(url: &str, way: &str, workspace: Option<&str>) -> Target {
    Target {
        url: format!("{url}?way={way}").parse().unwrap(),
        bearer: None,
        transport: chatterfly_domain::McpTransport::StreamableHttp,
        limits: limits(),
        workspace: workspace.map(Arc::from),
    }
}

#[test]
fn every_answer_shape_ends_a_call_as_through_rmcp() {
    let url = start_server();
    runtime().block_on(async {
        let client = client();
        let target = |workspace: Option<&str>| {
            let way = if workspace.is_some() { "chatterfly" } else { "rmcp" };
            target(&url, way, workspace)
        };
        let (ours, rmcps) = (target(Some("w")), target(None));
        let expected = [
            ("json", "ok \"json\""),
            ("sse", "ok \"sse\""),
            ("sse_crlf_after_note", "ok \"crlf\""),
            ("rpc_error_500", "rpc -32000 boom"),
            ("rpc_error_400", "rpc -32602 bad arguments"),
            ("text_500", "mcp_protocol_error"),
            ("text_418", "mcp_protocol_error"),
            ("unauthorized", "unauthorized 401"),
            ("forbidden", "unauthorized 403"),
            ("unauthorized_bare", "unauthorized 401"),
            ("rate_limited", "mcp_protocol_error"),
            ("plain_text", "mcp_protocol_error"),
            ("bad_json", "mcp_protocol_error"),
            ("too_large_json", "upstream_too_large"),
            ("too_large_event", "upstream_too_large"),
            ("expired_once_json", "ok \"again\""),
            ("expired_once_sse", "ok \"again\""),
            ("expired_idless", "ok \"again\""),
        ];
        let mut seen = Vec::new();
        for (tool, want) in expected {
            let mut got = Vec::new();
            let mut times = Vec::new();
            for (label, t) in [("chatterfly", &ours), ("rmcp", &rmcps)] {
                // a session of its own per shape and way, so one's failure leaves no trace;
                // it answers once first (a failure after that made rmcp's way send the
                // call again on a new session)
                let conn = format!("{tool}-{label}");
                let first = client.call(&conn, t, "json", serde_json::Map::new()).await;
                assert_eq!(outcome(&first), "ok \"json\"");
                let before = sent(label, tool);
                let started = Instant::now();
                let r = client.call(&conn, t, tool, serde_json::Map::new()).await;
                let took = started.elapsed();
                assert!(
                    took < Duration::from_secs(10),
                    "{tool} through {label} took {took:?}: {r:?}"
                );
                got.push(outcome(&r));
                times.push(sent(label, tool) - before);
            }
            seen.push(format!("{tool}: {} / {} (sent {:?})", got[0], got[1], times));
            // sent once, whatever the server answered; twice after a forgotten session
            let once = if tool.starts_with("expired") { 2 } else { 1 };
            assert_eq!(
                times[0],
                once,
                "{tool}: sent {} times through Chatterfly\n{}",
                times[0],
                seen.join("\n")
            );
            // one difference on purpose: through rmcp an event over the limit ended the
            // session's stream (a protocol error, and the call sent again on a new session);
            // through Chatterfly it fails the call alone, as the over-large answer it is
            let rmcps_want = match tool {
                "too_large_event" => "mcp_protocol_error",
                _ => want,
            };
            assert_eq!(got[1], rmcps_want, "{tool}: rmcp's POST\n{}", seen.join("\n"));
            assert_eq!(got[0], want, "{tool}\n{}", seen.join("\n"));
        }
    });
}

/// A call whose answer cannot be used fails alone: another call on the same session, in
/// flight meanwhile, gets its answer (through rmcp's client the session was closed,
/// failing both).
#[test]
fn an_unusable_answer_fails_its_call_not_the_session() {
    let url = start_server();
    runtime().block_on(async {
        let client = client();
        let t = target(&url, "shared", Some("w"));
        assert_eq!(
            outcome(&client.call("shared", &t, "json", serde_json::Map::new()).await),
            "ok \"json\""
        );
        let bad_ones = [
            "text_500",
            "bad_json",
            "too_large_json",
            "too_large_event",
            "rate_limited",
            "plain_text",
            "other_id",
            "sse_other_id",
            "sse_other_then_right",
            "sse_notification_then_end",
            "sse_empty",
        ];
        for bad in bad_ones {
            let slow = tokio::spawn({
                let (client, t) = (client.clone(), t.clone());
                async move { client.call("shared", &t, "slow", serde_json::Map::new()).await }
            });
            tokio::time::sleep(Duration::from_millis(150)).await;
            let r = client.call("shared", &t, bad, serde_json::Map::new()).await;
            assert!(r.is_err(), "{bad}: {r:?}");
            assert_eq!(
                outcome(&slow.await.unwrap()),
                "ok \"slow\"",
                "{bad} failed the call beside it"
            );
        }
        assert_eq!(sent("shared", "slow"), bad_ones.len(), "no call sent twice");
        for bad in bad_ones {
            assert_eq!(sent("shared", bad), 1, "{bad} sent once");
        }
    });
}

/// A JSON answer that answers no call sent (another id, a notification) fails its call at
/// once; a JSON-RPC error without the call's id (the server could not read the request,
/// or its middleware refused it) is the call's answer. Through rmcp's client the first two
/// leave the call waiting for its timeout, and the errors do not reach it. The session
/// goes on. (A 400 with an error without an id, to a request with a session id, is a
/// forgotten session: `expired_idless` in the test above.)
#[test]
fn an_answer_to_no_call_fails_at_once() {
    let url = start_server();
    runtime().block_on(async {
        let client = client();
        for (way, tool, want) in [
            ("chatterfly", "other_id", "mcp_protocol_error"),
            ("chatterfly", "sse_other_id", "mcp_protocol_error"),
            ("chatterfly", "sse_other_then_right", "mcp_protocol_error"),
            ("chatterfly", "sse_idless_error", "rpc -32603 it broke"),
            ("chatterfly", "sse_notification_then_end", "mcp_protocol_error"),
            ("chatterfly", "sse_empty", "mcp_protocol_error"),
            ("chatterfly", "notification_body", "mcp_protocol_error"),
            // with a session id and without (a 400 would say the session was forgotten)
            ("chatterfly", "idless_error", "rpc -32700 Parse error"),
            ("sessionless", "idless_error", "rpc -32700 Parse error"),
            (
                "chatterfly",
                "foreign_id_error",
                "rpc -32600 Bad Request: No valid session ID provided",
            ),
        ] {
            let ours = target(&url, way, Some("w"));
            let mut rmcps = target(&url, &format!("{way}-rmcp"), None);
            rmcps.limits.total_timeout = Duration::from_secs(2);
            let conn = format!("{way}-{tool}-ours");
            let started = Instant::now();
            let r = client.call(&conn, &ours, tool, serde_json::Map::new()).await;
            assert!(
                started.elapsed() < Duration::from_secs(1),
                "{tool} took {:?}",
                started.elapsed()
            );
            assert_eq!(outcome(&r), want, "{tool}: {r:?}");
            assert_eq!(sent(way, tool), 1, "{tool}: sent once");
            assert_eq!(
                outcome(&client.call(&conn, &ours, "json", serde_json::Map::new()).await),
                "ok \"json\"",
                "{tool}: the session went on"
            );
            let conn = format!("{way}-{tool}-rmcp");
            let first = client.call(&conn, &rmcps, "json", serde_json::Map::new()).await;
            assert_eq!(outcome(&first), "ok \"json\"", "{tool}");
            let r = client.call(&conn, &rmcps, tool, serde_json::Map::new()).await;
            // rmcp reads an id-less error to a request with a session id as a forgotten
            // session, whatever the status, and sends the call again
            if way == "chatterfly" && tool.ends_with("idless_error") || tool.starts_with("sse") {
                // rmcp ended the session on the event streams (and sent the call again)
                let ended = format!("{r:?}").contains("closed the session");
                assert!(outcome(&r) != want || ended, "{tool} through rmcp: {r:?}");
            } else {
                assert_eq!(outcome(&r), "upstream_timeout", "{tool} through rmcp: {r:?}");
            }
        }
    });
}

/// A server that forgets the session every time a call comes: rmcp opens a new session and
/// sends the call again once; the call then fails, and is not sent a third and a fourth
/// time on yet another session (it was, before).
#[test]
fn a_call_is_sent_at_most_twice_to_a_server_that_keeps_forgetting() {
    let url = start_server();
    runtime().block_on(async {
        let client = client();
        let t = target(&url, "forgetful", Some("w"));
        for tool in ["always_expired", "always_expired_idless"] {
            let conn = format!("forgetful-{tool}");
            // a session used once already (one that failed fresh was never sent again)
            assert_eq!(
                outcome(&client.call(&conn, &t, "json", serde_json::Map::new()).await),
                "ok \"json\""
            );
            let started = Instant::now();
            let r = client.call(&conn, &t, tool, serde_json::Map::new()).await;
            assert!(
                started.elapsed() < Duration::from_secs(5),
                "{tool} took {:?}",
                started.elapsed()
            );
            assert_eq!(outcome(&r), "mcp_protocol_error", "{tool}: {r:?}");
            assert!(format!("{r:?}").contains("did not know the session"), "{tool}: {r:?}");
            assert_eq!(
                sent("forgetful", tool),
                2,
                "{tool}: sent, then sent again once on a new session"
            );
        }
    });
}

/// A call's event stream that carried an event id and ended before the answer is left for
/// rmcp to resume (`GET` with `Last-Event-ID`), not failed as an answerless stream.
#[test]
fn a_resumable_stream_is_left_to_be_resumed() {
    let url = start_server();
    runtime().block_on(async {
        let client = client();
        let mut t = target(&url, "resumable", Some("w"));
        t.limits.total_timeout = Duration::from_secs(3);
        let r = client
            .call("resumable", &t, "sse_priming_then_end", serde_json::Map::new())
            .await;
        assert!(r.is_err(), "{r:?}");
        assert!(!format!("{r:?}").contains("ended without an answer"), "{r:?}");
        let r = client
            .call("answerless", &t, "sse_notification_then_end", serde_json::Map::new())
            .await;
        assert!(format!("{r:?}").contains("ended without an answer"), "{r:?}");
    });
}

/// A workspace's call is sent past rmcp's message loop (an id of Chatterfly's own) with the
/// session's id and protocol version, from the session's first call on; a session without
/// a workspace calls through rmcp; a server without sessions gets no session id.
#[test]
fn a_workspace_call_is_sent_past_rmcp_with_its_sessions_headers() {
    let url = start_server();
    runtime().block_on(async {
        let client = client();
        for (way, workspace) in [("past", Some("w")), ("through", None), ("sessionless-past", Some("w"))] {
            let t = target(&url, way, workspace);
            let r = client.call(way, &t, "json", serde_json::Map::new()).await;
            assert_eq!(outcome(&r), "ok \"json\"", "{way}");
            let (id, session, version) = CALLS.lock().unwrap().get(way).cloned().unwrap();
            let id = id.as_i64().unwrap();
            assert_eq!(id >= 1 << 50, workspace.is_some(), "{way}: id {id}");
            let want_session = (way != "sessionless-past").then(|| "s1".to_owned());
            assert_eq!(session, want_session, "{way}");
            assert_eq!(version.as_deref(), Some("2025-03-26"), "{way}");
        }
    });
}

/// Requests the server sends during a call are answered as rmcp's default client answers
/// them, whichever way the call went.
#[test]
fn requests_during_a_call_are_answered_as_through_rmcp() {
    let url = start_server();
    runtime().block_on(async {
        let client = client();
        let mut answers = Vec::new();
        for (way, workspace) in [("asked-past", Some("w")), ("asked-through", None)] {
            let t = target(&url, way, workspace);
            let r = client
                .call(way, &t, "sse_asks_then_answers", serde_json::Map::new())
                .await;
            assert_eq!(outcome(&r), "ok \"asked\"", "{way}");
            let deadline = Instant::now() + Duration::from_secs(5);
            let got = loop {
                let got: Vec<Value> = (1..=5)
                    .filter_map(|n| ANSWERS.lock().unwrap().get(&format!("{way}:p{n}")).cloned())
                    .collect();
                if got.len() == 5 || Instant::now() > deadline {
                    break got;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            };
            assert_eq!(got.len(), 5, "{way}: every request answered: {got:?}");
            // the result, or the error's code
            answers.push(
                got.iter()
                    .map(|a| a.get("result").cloned().unwrap_or_else(|| a["error"]["code"].clone()))
                    .collect::<Vec<_>>(),
            );
        }
        assert_eq!(answers[0], answers[1]);
        assert_eq!(answers[0][0], json!({}), "ping");
        assert_eq!(answers[0][1], json!({"roots": []}));
        assert_eq!(answers[0][2], json!(-32601), "sampling: method not found");
        assert_eq!(answers[0][3]["action"], "decline");
        assert_eq!(answers[0][4], json!(-32601));
    });
}

/// `notifications/tools/list_changed` during a call lists the tools again; an answer after
/// 2 MB of notifications arrives; and a stream the server ends with an event id before the
/// answer is resumed for it.
#[test]
fn a_calls_stream_reports_changed_tools_and_is_resumed() {
    let url = start_server();
    runtime().block_on(async {
        let egress = Egress::new(AllowList::parse("127.0.0.1").unwrap(), limits()).unwrap();
        let (client, mut changes) = McpClient::new(egress, PoolSettings::default());
        let t = target(&url, "changes", Some("w"));
        let r = client
            .call("changes", &t, "sse_tools_changed_then_answers", serde_json::Map::new())
            .await;
        assert_eq!(outcome(&r), "ok \"changed\"");
        let changed = tokio::time::timeout(Duration::from_secs(5), changes.recv())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(changed.connection_id, "changes");
        assert_eq!(
            changed.tools.iter().map(|t| t.name.as_str()).collect::<Vec<_>>(),
            ["json"]
        );
        for (way, workspace) in [("notes-past", Some("w")), ("notes-through", None)] {
            let t = target(&url, way, workspace);
            let r = client
                .call(way, &t, "sse_notes_then_answers", serde_json::Map::new())
                .await;
            assert_eq!(outcome(&r), "ok \"noted\"", "{way}: {r:?}");
        }
        for (way, workspace) in [("resume-past", Some("w")), ("resume-through", None)] {
            let t = target(&url, way, workspace);
            let r = client.call(way, &t, "sse_resume", serde_json::Map::new()).await;
            assert_eq!(outcome(&r), "ok \"resumed\"", "{way}: {r:?}");
            assert_eq!(sent(way, "sse_resume"), 1, "{way}: sent once");
        }
        // the resumed stream keeps the sessions' limit on each event
        let t = target(&url, "resume-big-past", Some("w"));
        let r = client
            .call("resume-big-past", &t, "sse_resume", serde_json::Map::new())
            .await;
        assert_eq!(outcome(&r), "upstream_too_large", "{r:?}");
        assert_eq!(sent("resume-big-past", "sse_resume"), 1, "sent once");
    });
}

/// A server that cannot be reached is `upstream_unreachable` whichever transport the
/// connection names (a Streamable HTTP session said "the server's answer is not MCP").
#[test]
fn a_server_not_reached_is_unreachable_not_a_protocol_error() {
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    runtime().block_on(async {
        let client = client();
        for transport in [
            chatterfly_domain::McpTransport::StreamableHttp,
            chatterfly_domain::McpTransport::Auto,
            chatterfly_domain::McpTransport::Sse,
        ] {
            let mut t = target(&format!("http://127.0.0.1:{closed}/mcp"), "closed", Some("w"));
            t.transport = transport;
            let r = client.call("closed", &t, "json", serde_json::Map::new()).await;
            assert_eq!(outcome(&r), "upstream_unreachable", "{transport:?}: {r:?}");
        }
    });
}

/// A result too dense to parse whole (200,000 zeros: about 60 times its text once parsed)
/// keeps its structured content as its text, as a JSON body or an event stream, sent past
/// rmcp or through it.
#[test]
fn a_dense_answer_is_handed_on_as_text() {
    let url = start_server();
    runtime().block_on(async {
        let client = client();
        // (without a workspace rmcp's own client reads a JSON body: tests and tools only)
        for (way, workspace, tools) in [
            ("dense-past", Some("w"), &["dense_json", "dense_sse"][..]),
            ("dense-through", None, &["dense_sse"][..]),
        ] {
            for &tool in tools {
                let t = target(&url, way, workspace);
                let out = client.call(way, &t, tool, serde_json::Map::new()).await.unwrap();
                assert_eq!(out["content"][0]["text"], "dense", "{way} {tool}");
                let text = out["structured_content"]
                    .as_str()
                    .unwrap_or_else(|| panic!("{way} {tool}: text"));
                assert!(
                    text.starts_with("{\"zeros\":[0,0,0,") && text.len() > 400_000,
                    "{way} {tool}"
                );
                let parsed: Value = serde_json::from_str(text).unwrap();
                assert_eq!(parsed["zeros"].as_array().map(Vec::len), Some(200_001));
            }
        }
    });
}

/// A call given up (timed out, or its caller gone) is cancelled with the server
/// (`notifications/cancelled` naming it), whichever way it went.
#[test]
fn a_call_given_up_is_cancelled_with_the_server() {
    let url = start_server();
    runtime().block_on(async {
        let client = client();
        for (way, workspace) in [("cancel-past", Some("w")), ("cancel-through", None)] {
            let mut t = target(&url, way, workspace);
            assert_eq!(
                outcome(&client.call(way, &t, "json", serde_json::Map::new()).await),
                "ok \"json\""
            );
            t.limits.total_timeout = Duration::from_millis(300);
            let r = client.call(way, &t, "sse_slow", serde_json::Map::new()).await;
            assert_eq!(outcome(&r), "upstream_timeout", "{way}");
            let called = CALLS.lock().unwrap().get(way).cloned().unwrap().0;
            let deadline = Instant::now() + Duration::from_secs(3);
            loop {
                let named = CANCELLED.lock().unwrap().get(way).cloned();
                if named.as_ref() == Some(&called) {
                    break;
                }
                assert!(
                    Instant::now() < deadline,
                    "{way}: cancelled {named:?}, the call was {called}"
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    });
}
