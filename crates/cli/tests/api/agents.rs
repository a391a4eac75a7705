//! Agents against a real scriptable LLM API look-alike (npm @copilotkit/aimock,
//! `scripts/llm.sh`) for each provider at its real path, with tools that reach httpbin and a
//! standard tool that fails (no search key): the model's calls go through `invoke`'s path,
//! their results go back to the model, and every step is recorded. The peer accepts one key
//! only, so which key a run used (workspace or platform) shows in whether it got through.
//! Both databases.

use chatterfly_testkit::browser::Browser;
use chatterfly_testkit::httpbin_url;
use chatterfly_testkit::peers::{McpPeer, McpPeerKind, ScriptPeer};
use fantoccini::Locator;

use super::*;

const WS: &str = "/api/workspaces/default";
const GOOD_KEY: &str = "sk-good-CANARY-4f9d2e71";
const BAD_KEY: &str = "sk-bad-CANARY-0c3b81aa";

/// Each provider with the model name its fixtures answer and the names it declares
/// `hb.ip` and `ev.get-sum` (the MCP reference server's) under.
const PROVIDERS: [(&str, &str, &str, &str); 3] = [
    ("openai", "oa-model", "hb__ip", "ev__get-sum"),
    ("anthropic", "an-model", "hb__ip", "ev__get-sum"),
    ("gemini", "ge-model", "hb.ip", "ev.get-sum"),
];

fn fixtures() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let mut list = Vec::new();
    for (_, model, ip, sum) in PROVIDERS {
        list.push(json!({"match": {"userMessage": "where am I", "hasToolResult": false, "model": model},
            "response": {"toolCalls": [{"name": ip, "arguments": {}}, {"name": "web_search", "arguments": {"query": "where am I"}},
                {"name": sum, "arguments": {"a": 19, "b": 23}}]}}));
        list.push(
            json!({"match": {"userMessage": "call a ghost", "hasToolResult": false, "model": model},
            "response": {"toolCalls": [{"name": "ghost__tool", "arguments": {}}]}}),
        );
        list.push(json!({"match": {"userMessage": "loop forever", "model": model},
            "response": {"toolCalls": [{"name": ip, "arguments": {}}]}}));
    }
    list.push(json!({"match": {"userMessage": "where am I", "hasToolResult": true}, "response": {"content": "You are at 127.0.0.1."}}));
    list.push(json!({"match": {"userMessage": "call a ghost", "hasToolResult": true}, "response": {"content": "That tool does not exist."}}));
    list.push(json!({"match": {"userMessage": "hello"}, "response": {"content": "Hi."}}));
    list.push(json!({"match": {"userMessage": "be evil"}, "response": {"content": "<img src=x onerror=alert(1)><script>alert(2)</script>"}}));
    // OpenAI only: two slow calls in one turn, and one very slow call to cancel
    list.push(json!({"match": {"userMessage": "wait twice", "hasToolResult": false},
        "response": {"toolCalls": [{"name": "hb__delay", "arguments": {"n": 1}}, {"name": "hb__delay", "arguments": {"n": 1}}]}}));
    list.push(
        json!({"match": {"userMessage": "wait twice", "hasToolResult": true}, "response": {"content": "Waited."}}),
    );
    // the browser's run: a slow call and a quick one, then the answer
    list.push(json!({"match": {"userMessage": "take your time", "hasToolResult": false},
        "response": {"toolCalls": [{"name": "hb__delay", "arguments": {"n": 2}}, {"name": "hb__ip", "arguments": {}}]}}));
    list.push(json!({"match": {"userMessage": "take your time", "hasToolResult": true}, "response": {"content": "Done waiting."}}));
    list.push(json!({"match": {"userMessage": "wait four", "hasToolResult": false}, "response": {"toolCalls": [{"name": "hb__delay", "arguments": {"n": 4}}]}}));
    list.push(
        json!({"match": {"userMessage": "wait four", "hasToolResult": true}, "response": {"content": "Waited four."}}),
    );
    list.push(json!({"match": {"userMessage": "wait long"}, "response": {"toolCalls": [{"name": "hb__delay", "arguments": {"n": 8}}]}}));
    std::fs::write(dir.path().join("fixtures.json"), json!({"fixtures": list}).to_string()).unwrap();
    dir
}

async fn agent(s: &TestServer, provider: &str, model: &str, tools: Value, max_steps: i64) -> String {
    let (st, v) = s
        .call(Method::POST, &format!("{WS}/agents"), Some(json!({"name": format!("{provider} {max_steps} {tools}"),
            "provider": provider, "model": model, "tools": tools, "max_steps": max_steps, "instructions": "Answer briefly."})))
        .await;
    assert_eq!(st, 201, "{v}");
    v["id"].as_str().unwrap().to_owned()
}

/// Starts a run and waits for its end; the run with its steps.
async fn run_to_end(s: &TestServer, agent: &str, input: Value) -> Value {
    run_to_end_with(s, agent, json!({"input": input})).await
}

async fn set_key(s: &TestServer, scope: &str, provider: &str, key: Option<&str>, base: &str) {
    let (path, body) = match scope {
        "platform" => (
            format!("/api/admin/service-credentials/{provider}"),
            json!({"api_key": key, "base_url": base}),
        ),
        _ => (format!("{WS}/services/{provider}"), json!({"api_key": key})),
    };
    let (st, v) = match key {
        Some(_) => s.call(Method::PUT, &path, Some(body)).await,
        None => s.call(Method::DELETE, &path, None).await,
    };
    assert!(st == 200 || st == 204, "{path}: {st} {v}");
}

db_tests! {
    async fn agents_call_tools_through_each_provider(db: Db) {
        let dir = fixtures();
        let llm = ScriptPeer::llm(dir.path().to_str().unwrap(), GOOD_KEY);
        let s = TestServer::start_with(BIN, db, local_upstreams(&[])).await;
        let (st, v) = s.call(Method::POST, &format!("{WS}/connections"), Some(json!({"name": "HB", "slug": "hb",
            "service_type": "http", "base_url": httpbin_url(), "operations": [{"name": "ip", "method": "GET", "path": "/ip"}]}))).await;
        assert_eq!(st, 201, "{v}");
        let mcp = McpPeer::start(McpPeerKind::EverythingHttp);
        let (st, v) = s.call(Method::POST, &format!("{WS}/connections"), Some(json!({"name": "Everything", "slug": "ev",
            "service_type": "mcp", "base_url": mcp.url}))).await;
        assert_eq!(st, 201, "{v}");
        for (provider, model, ip, sum) in PROVIDERS {
            // the platform's key is refused by the peer: the run fails with the provider's words
            set_key(&s, "platform", provider, Some(BAD_KEY), &llm.url).await;
            let a = agent(&s, provider, model, json!(["hb.ip", "web_search", "ev.get-sum"]), 5).await;
            let r = run_to_end(&s, &a, json!("where am I")).await;
            assert_eq!(r["status"], "failed", "{provider}: {r}");
            assert!(r["error"].as_str().unwrap().contains("HTTP 401"), "{provider}: {r}");
            // the workspace's key wins and gets through
            set_key(&s, "workspace", provider, Some(GOOD_KEY), &llm.url).await;
            let r = run_to_end(&s, &a, json!("where am I")).await;
            assert_eq!((r["status"].as_str(), r["output"].as_str()), (Some("succeeded"), Some("You are at 127.0.0.1.")), "{provider}: {r}");
            let steps = r["steps"].as_array().unwrap();
            let kinds: Vec<&str> = steps.iter().map(|s| s["kind"].as_str().unwrap()).collect();
            assert_eq!(kinds, ["model", "tool", "tool", "tool", "model"], "{provider}: {r}");
            assert_eq!(steps[0]["calls"][2]["name"], sum, "{provider}: declared name");
            assert_eq!(steps[0]["calls"][0]["name"], ip, "{provider}: declared name");
            assert_eq!(steps[0]["calls"][0]["tool"], "hb.ip");
            let by_tool = |t: &str| steps.iter().find(|s| s["tool"] == t).cloned().unwrap();
            let hb = by_tool("hb.ip");
            assert_eq!((hb["is_error"].as_bool(), hb["output"]["status"].as_u64()), (Some(false), Some(200)), "{hb}");
            assert!(hb["output"]["body"]["origin"].is_string(), "httpbin answered: {hb}");
            // a tool that fails is an error result for the model, and the run goes on
            let search = by_tool("web_search");
            assert_eq!((search["is_error"].as_bool(), search["error"]["code"].as_str()), (Some(true), Some("not_configured")), "{search}");
            let sum_step = by_tool("ev.get-sum");
            assert!(sum_step["output"].to_string().contains("42"), "the MCP server added: {sum_step}");
            assert!(steps.iter().all(|s| s["duration_ms"].is_u64()));
            // the calls are in the audit log under the run
            let (_, audit) = s.call(Method::GET, &format!("{WS}/audit?run={}", r["id"].as_str().unwrap()), None).await;
            let tools: Vec<&str> = audit["events"].as_array().unwrap().iter().map(|e| e["tool"].as_str().unwrap()).collect();
            assert_eq!(tools.len(), 3, "{audit}");
            assert!(tools.contains(&"hb.ip") && tools.contains(&"web_search") && tools.contains(&"ev.get-sum"), "{audit}");
            // without the workspace's key, the platform's is in effect again
            set_key(&s, "workspace", provider, None, &llm.url).await;
            let r = run_to_end(&s, &a, json!("where am I")).await;
            assert_eq!(r["status"], "failed", "{provider}: {r}");
            set_key(&s, "platform", provider, Some(GOOD_KEY), &llm.url).await;

            // a tool the agent does not have: an error result, then the answer
            let r = run_to_end(&s, &a, json!("call a ghost")).await;
            assert_eq!((r["status"].as_str(), r["output"].as_str()), (Some("succeeded"), Some("That tool does not exist.")), "{provider}: {r}");
            assert_eq!(r["steps"][1]["error"]["code"], "tool_not_found", "{r}");
            // max_steps: a model that never stops calling
            let short = agent(&s, provider, model, json!(["hb.ip"]), 2).await;
            let _ = sum;
            let r = run_to_end(&s, &short, json!("loop forever")).await;
            assert_eq!((r["status"].as_str(), r["step_count"].as_i64()), (Some("max_steps"), Some(4)), "{provider}: {r}");
            assert!(r["error"].as_str().unwrap().contains("max_steps"), "{r}");
            // messages as input
            let r = run_to_end(&s, &short, json!([{"role": "user", "content": "hi"}, {"role": "assistant", "content": "Hello."}, {"role": "user", "content": "hello"}])).await;
            assert_eq!(r["output"], "Hi.", "{provider}: {r}");
        }
        // the keys show nowhere: not in runs, events, lists or the server's log
        let (_, agents) = s.call(Method::GET, &format!("{WS}/agents"), None).await;
        for a in agents.as_array().unwrap() {
            let (_, runs) = s.call(Method::GET, &format!("{WS}/agents/{}/runs", a["id"].as_str().unwrap()), None).await;
            for r in runs.as_array().unwrap() {
                let (_, full) = s.call(Method::GET, &format!("{WS}/agents/{}/runs/{}", a["id"].as_str().unwrap(), r["id"].as_str().unwrap()), None).await;
                let text = full.to_string();
                assert!(!text.contains("CANARY"), "{text}");
            }
        }
        assert!(!s.output().contains("CANARY"), "a key in the server's log");
    }

    async fn agents_are_checked_and_kept_to_their_workspace(db: Db) {
        let s = TestServer::start_with(BIN, db, local_upstreams(&[])).await;
        for (body, pointer) in [
            (json!({"name": "a", "provider": "mistral", "model": "m"}), "/provider"),
            (json!({"name": "a", "provider": "openai", "model": "m", "max_steps": 0}), "/max_steps"),
            (json!({"name": "a", "provider": "openai", "model": "m", "max_steps": 10000}), "/max_steps"),
            (json!({"name": "", "provider": "openai", "model": "m"}), "/name"),
        ] {
            let (st, v) = s.call(Method::POST, &format!("{WS}/agents"), Some(body.clone())).await;
            assert_eq!((st, v["errors"][0]["pointer"].as_str()), (422, Some(pointer)), "{body}: {v}");
        }
        let (st, v) = s.call(Method::POST, &format!("{WS}/agents"), Some(json!({"name": "a", "provider": "openai", "model": "m", "bogus": 1}))).await;
        assert_eq!(st, 422, "{v}");
        let (st, v) = s.call(Method::POST, &format!("{WS}/agents"), Some(json!({"name": "Ghosts", "provider": "openai", "model": "m",
            "tools": ["web_search", "nope.tool", "nope.other"]}))).await;
        assert_eq!(st, 201, "{v}");
        let warned: Vec<&str> = v["warnings"].as_array().unwrap().iter().map(|w| w["tool"].as_str().unwrap()).collect();
        assert_eq!(warned, ["nope.tool", "nope.other"], "{v}");
        let id = v["id"].as_str().unwrap().to_owned();
        let (st, v) = s.call(Method::POST, &format!("{WS}/agents"), Some(json!({"name": "Ghosts", "provider": "openai", "model": "m"}))).await;
        assert_eq!((st, v["code"].as_str()), (409, Some("agent_name_taken")), "{v}");
        // a run with tools the workspace lacks fails at once, naming them
        let (st, v) = s.call(Method::POST, &format!("{WS}/agents/{id}/runs"), Some(json!({"input": "hi"}))).await;
        assert_eq!((st, v["code"].as_str()), (422, Some("unknown_tools")), "{v}");
        assert!(v["detail"].as_str().unwrap().contains("`nope.tool`"), "{v}");
        // without a key for the provider: not_configured, nothing started
        let (st, _) = s.call(Method::PATCH, &format!("{WS}/agents/{id}"), Some(json!({"tools": ["web_search"]}))).await;
        assert_eq!(st, 200);
        let (st, v) = s.call(Method::POST, &format!("{WS}/agents/{id}/runs"), Some(json!({"input": "hi"}))).await;
        assert_eq!((st, v["code"].as_str()), (422, Some("not_configured")), "{v}");
        let (st, v) = s.call(Method::POST, &format!("{WS}/agents/{id}/runs"), Some(json!({"input": 42}))).await;
        assert_eq!((st, v["errors"][0]["pointer"].as_str()), (422, Some("/input")), "{v}");
        // declarations for each provider
        for p in ["openai", "anthropic", "gemini"] {
            let (st, v) = s.call(Method::GET, &format!("{WS}/agents/{id}/declarations?provider={p}"), None).await;
            assert_eq!((st, v["provider"].as_str()), (200, Some(p)), "{v}");
            assert!(v["tools"].to_string().contains("web_search"), "{v}");
        }
        let (st, _) = s.call(Method::GET, &format!("{WS}/agents/{id}/declarations?provider=mistral"), None).await;
        assert_eq!(st, 422);
        // another workspace sees none of it
        let (_, other) = s.call(Method::POST, "/api/workspaces", Some(json!({"slug": "other", "name": "Other"}))).await;
        assert!(other["slug"] == "other", "{other}");
        for path in [
            format!("/api/workspaces/other/agents/{id}"),
            format!("/api/workspaces/other/agents/{id}/declarations"),
            format!("/api/workspaces/other/agents/{id}/runs"),
        ] {
            let (st, _) = s.call(Method::GET, &path, None).await;
            assert_eq!(st, 404, "{path}");
        }
        // a tool added later is known at once (what was declared before is not kept)
        let (st, v) = s.call(Method::PATCH, &format!("{WS}/agents/{id}"), Some(json!({"tools": ["web_search", "late.op"]}))).await;
        assert_eq!((st, v["warnings"][0]["tool"].as_str()), (200, Some("late.op")), "{v}");
        let (st, v) = s.call(Method::POST, &format!("{WS}/connections"), Some(json!({"name": "Late", "slug": "late", "service_type": "http",
            "base_url": "https://api.example.com", "operations": [{"name": "op", "method": "GET", "path": "/op"}]}))).await;
        assert_eq!(st, 201, "{v}");
        let (_, v) = s.call(Method::GET, &format!("{WS}/agents/{id}"), None).await;
        assert_eq!(v["warnings"], json!([]), "{v}");
        // the agent uses it: deleting it is refused, unless forced
        let (st, v) = s.call(Method::DELETE, &format!("{WS}/connections/late"), None).await;
        assert_eq!((st, v["used_by"][0]["kind"].as_str(), v["used_by"][0]["tools"][0].as_str()), (409, Some("agent"), Some("late.op")), "{v}");
        let (st, _) = s.call(Method::DELETE, &format!("{WS}/connections/late?force=true"), None).await;
        assert_eq!(st, 204);
        let (_, v) = s.call(Method::GET, &format!("{WS}/agents/{id}"), None).await;
        assert_eq!(v["warnings"][0]["tool"], "late.op", "{v}");
        let (st, _) = s.call(Method::DELETE, &format!("/api/workspaces/other/agents/{id}"), None).await;
        assert_eq!(st, 404);
        let (st, _) = s.call(Method::DELETE, &format!("{WS}/agents/{id}"), None).await;
        assert_eq!(st, 204);
        let (st, _) = s.call(Method::GET, &format!("{WS}/agents/{id}"), None).await;
        assert_eq!(st, 404);
    }

    async fn every_mcp_reference_tool_is_declared_within_each_providers_rules(db: Db) {
        let s = TestServer::start_with(BIN, db, local_upstreams(&[])).await;
        let mut all = Vec::new();
        for kind in [McpPeerKind::EverythingHttp, McpPeerKind::PythonHttp] {
            let peer = McpPeer::start(kind);
            let slug = if kind == McpPeerKind::PythonHttp { "py" } else { "ev" };
            let (st, c) = s.call(Method::POST, &format!("{WS}/connections"), Some(json!({"name": slug, "slug": slug,
                "service_type": "mcp", "base_url": peer.url}))).await;
            assert_eq!(st, 201, "{c}");
            for op in c["operations"].as_array().unwrap() {
                all.push(format!("{slug}.{}", op["name"].as_str().unwrap()));
            }
        }
        assert!(all.len() >= 15, "{all:?}");
        let (st, v) = s.call(Method::POST, &format!("{WS}/agents"), Some(json!({"name": "All MCP", "provider": "openai",
            "model": "m", "tools": all}))).await;
        assert_eq!(st, 201, "{v}");
        assert_eq!(v["warnings"], json!([]), "{v}");
        let id = v["id"].as_str().unwrap();
        let mut gemini = Vec::new();
        for p in chatterfly_providers::Provider::ALL {
            let (st, d) = s.call(Method::GET, &format!("{WS}/agents/{id}/declarations?provider={p}"), None).await;
            assert_eq!(st, 200, "{d}");
            assert_eq!(d["left_out"], json!([]), "{p}: {d}");
            let decls: Vec<Value> = match p {
                chatterfly_providers::Provider::OpenAi => d["tools"].as_array().unwrap().iter().map(|t| t["function"].clone()).collect(),
                chatterfly_providers::Provider::Anthropic => d["tools"].as_array().unwrap().clone(),
                chatterfly_providers::Provider::Gemini => d["tools"][0]["functionDeclarations"].as_array().unwrap().clone(),
            };
            assert_eq!(decls.len(), all.len(), "{p}");
            for decl in decls {
                let name = decl["name"].as_str().unwrap();
                let schema = if p == chatterfly_providers::Provider::Anthropic { decl.get("input_schema") } else { decl.get("parameters") };
                chatterfly_providers::check::declaration(p, name, schema).unwrap_or_else(|e| panic!("{p}: {name}: {e}\n{decl}"));
                if p == chatterfly_providers::Provider::Gemini {
                    gemini.push(decl);
                }
            }
        }
        // Google's own types accept every Gemini declaration
        let python = std::env::var("CHATTERFLY_TEST_GENAI_PYTHON").expect("CHATTERFLY_TEST_GENAI_PYTHON: run through scripts/test.sh");
        let file = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(file.path(), serde_json::to_vec(&gemini).unwrap()).unwrap();
        let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/genai_check.py");
        let out = std::process::Command::new(python).arg(script).arg(file.path()).output().unwrap();
        let said = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success() && said.contains(&format!("{0} of {0} accepted", gemini.len())), "{said}");
    }

    async fn a_turns_calls_run_at_once_and_a_run_can_be_cancelled(db: Db) {
        let dir = fixtures();
        let llm = ScriptPeer::llm(dir.path().to_str().unwrap(), GOOD_KEY);
        let mut options = local_upstreams(&[]);
        options.env.push(("CHATTERFLY_MAX_RUNS_PER_WORKSPACE".into(), "2".into()));
        let s = TestServer::start_with(BIN, db, options).await;
        let (st, v) = s.call(Method::POST, &format!("{WS}/connections"), Some(json!({"name": "HB", "slug": "hb",
            "service_type": "http", "base_url": httpbin_url(), "operations": [{"name": "delay", "method": "GET", "path": "/delay/{{n}}",
            "input_schema": {"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]}}]}))).await;
        assert_eq!(st, 201, "{v}");
        set_key(&s, "platform", "openai", Some(GOOD_KEY), &llm.url).await;
        let a = agent(&s, "openai", "oa-model", json!(["hb.delay"]), 3).await;
        // two calls of one second each, at once: the turn takes about one second
        let started = std::time::Instant::now();
        let r = run_to_end(&s, &a, json!("wait twice")).await;
        let took = started.elapsed();
        assert_eq!((r["status"].as_str(), r["output"].as_str()), (Some("succeeded"), Some("Waited.")), "{r}");
        let tool_ms: Vec<u64> = r["steps"].as_array().unwrap().iter().filter(|s| s["kind"] == "tool").map(|s| s["duration_ms"].as_u64().unwrap()).collect();
        assert_eq!(tool_ms.len(), 2);
        assert!(tool_ms.iter().all(|ms| *ms >= 1000), "{tool_ms:?} {r}");
        assert!(took < std::time::Duration::from_millis(1900), "the calls ran one after the other: {took:?}");
        // a cancel stops the run at once, while its call is still waiting
        let (st, v) = s.call(Method::POST, &format!("{WS}/agents/{a}/runs"), Some(json!({"input": "wait long"}))).await;
        assert_eq!(st, 201, "{v}");
        let id = v["id"].as_str().unwrap().to_owned();
        // two runs going on is this workspace's limit here: a third is refused
        let (st, second) = s.call(Method::POST, &format!("{WS}/agents/{a}/runs"), Some(json!({"input": "wait long"}))).await;
        assert_eq!(st, 201, "{second}");
        let (st, v) = s.call(Method::POST, &format!("{WS}/agents/{a}/runs"), Some(json!({"input": "wait long"}))).await;
        assert_eq!((st, v["code"].as_str()), (429, Some("too_many_runs")), "{v}");
        let second = second["id"].as_str().unwrap();
        assert_eq!(s.call(Method::POST, &format!("{WS}/agents/{a}/runs/{second}/cancel"), None).await.0, 202);
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        let started = std::time::Instant::now();
        let (st, _) = s.call(Method::POST, &format!("{WS}/agents/{a}/runs/{id}/cancel"), None).await;
        assert_eq!(st, 202);
        let mut r = Value::Null;
        for _ in 0..100 {
            r = s.call(Method::GET, &format!("{WS}/agents/{a}/runs/{id}"), None).await.1;
            if r["status"] != "running" {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        assert_eq!(r["status"], "cancelled", "{r}");
        assert!(started.elapsed() < std::time::Duration::from_secs(3), "{:?}", started.elapsed());
        let (st, v) = s.call(Method::POST, &format!("{WS}/agents/{a}/runs/{id}/cancel"), None).await;
        assert_eq!((st, v["code"].as_str()), (409, Some("run_ended")), "{v}");
        // the events of an ended run: its steps, then the end
        let text = super::accounts::no_redirects().get(format!("{}{WS}/agents/{a}/runs/{id}/events", s.url)).bearer_auth(&s.token)
            .send().await.unwrap().text().await.unwrap();
        assert!(text.contains("event: step") && text.contains("event: end") && text.contains("cancelled"), "{text}");
    }
}

db_tests! {
    async fn agents_are_built_run_and_watched_in_chromium(db: Db) {
        let dir = fixtures();
        let llm = ScriptPeer::llm(dir.path().to_str().unwrap(), GOOD_KEY);
        let s = TestServer::start_with(BIN, db, local_upstreams(&[])).await;
        // httpbin's look-alike whose 2-second delay lasts until the test lets it go, so the
        // page is seen while the call still runs however slow the machine
        let (held, release) = held_delays().await;
        let (st, v) = s.call(Method::POST, &format!("{WS}/connections"), Some(json!({"name": "HB", "slug": "hb",
            "service_type": "http", "base_url": held, "operations": [
                {"name": "ip", "method": "GET", "path": "/ip", "description": "The caller's address"},
                {"name": "delay", "method": "GET", "path": "/delay/{{n}}", "description": "Answers after n seconds",
                 "input_schema": {"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]}}]}))).await;
        assert_eq!(st, 201, "{v}");
        set_key(&s, "platform", "openai", Some(GOOD_KEY), &llm.url).await;
        let b = Browser::open().await;
        b.client.goto(&format!("{}/login", s.url)).await.unwrap();
        b.fill("#token", &s.token).await;
        b.click("#token-form button[type=submit]").await;
        b.wait_path("/connections").await;

        // a new agent from the Agents page: tools found by searching, picked by ticking
        b.click("header nav a[href='/agents']").await;
        b.wait_text(".count", "No agents yet").await;
        b.click("#new-agent").await;
        b.wait_path("/agents/new").await;
        b.fill("#agent-name", "Helper").await;
        b.fill("#agent-instructions", "Answer briefly.").await;
        b.wait("#agent-provider").await.select_by_value("openai").await.unwrap();
        b.fill("#agent-model", "oa-model").await;
        b.fill("#agent-max-steps", "4").await;
        b.wait_text("#picker-standard", "web_search").await;
        b.wait_text("label.pick[data-tool='hb.delay']", "Answers after n seconds").await;
        b.fill("#tool-search", "seconds").await;
        assert!(!b.wait("label.pick[data-tool='hb.ip']").await.is_displayed().await.unwrap(), "the search hides what does not match");
        assert!(b.wait("label.pick[data-tool='hb.delay']").await.is_displayed().await.unwrap());
        b.click("label.pick[data-tool='hb.delay'] input").await;
        // emptied by typing, as a person does (a WebDriver clear fires no `input`)
        b.wait("#tool-search").await.send_keys("\u{e003}\u{e003}\u{e003}\u{e003}\u{e003}\u{e003}\u{e003}").await.unwrap();
        assert!(b.wait("label.pick[data-tool='hb.ip']").await.is_displayed().await.unwrap(), "all tools again");
        b.click("label.pick[data-tool='hb.ip'] input").await;
        b.click("label.pick[data-tool='web_search'] input").await;
        b.wait_text("#picked-count", "3 tools chosen").await;
        b.screenshot("agent-editor").await;
        b.click("#save-agent").await;
        b.wait("#run-form").await;
        let url = b.client.current_url().await.unwrap();
        let id = url.path().rsplit('/').next().unwrap().to_owned();
        let (st, saved) = s.call(Method::GET, &format!("{WS}/agents/{id}"), None).await;
        assert_eq!(st, 200, "{saved}");
        let mut tools: Vec<&str> = saved["tools"].as_array().unwrap().iter().map(|t| t.as_str().unwrap()).collect();
        tools.sort_unstable();
        assert_eq!(tools, ["hb.delay", "hb.ip", "web_search"], "{saved}");
        assert_eq!((saved["model"].as_str(), saved["max_steps"].as_i64(), saved["instructions"].as_str()), (Some("oa-model"), Some(4), Some("Answer briefly.")));

        // Run: the run view follows the steps as they are taken
        b.fill("#run-input", "take your time").await;
        b.click("#run-agent").await;
        b.wait("#steps li.step[data-kind=model]").await;
        let status = b.wait("#run-status .run-status").await.attr("data-status").await.unwrap();
        assert_eq!(status.as_deref(), Some("running"), "the first step shows while the held call still runs");
        assert!(b.client.find_all(Locator::Css("#run-output")).await.unwrap().is_empty());
        // the quick call's step shows while the slow one is still held
        b.wait_text("#steps li.step[data-tool='hb.ip']", "origin").await;
        b.wait_text("#run-end", "Following the run live").await;
        b.wait_count("#steps li.step", 2).await;
        assert_eq!(b.wait("#run-status .run-status").await.attr("data-status").await.unwrap().as_deref(), Some("running"));
        let _ = release.send(true);
        b.wait_text_within("#run-output", "Done waiting.", 20).await;
        b.wait_text("#run-status", "Succeeded").await;
        b.wait_count("#steps li.step", 4).await;
        b.wait_text("#steps li.step[data-tool='hb.delay'] .badge", "ok").await;
        b.wait_text("#steps li.step[data-kind=model]", "declared as hb__delay").await;
        b.wait_text("#run-meta", "4 steps").await;
        b.screenshot("agent-run").await;
        let run_id = b.client.current_url().await.unwrap().path().rsplit('/').next().unwrap().to_owned();

        // the agent's page lists the run; the declarations show what the model receives
        b.click(&format!("a[href='/agents/{id}']")).await;
        b.wait_text(&format!("#runs tr[data-run='{run_id}']"), "Succeeded").await;
        b.click("#declarations summary").await;
        b.wait_text("#declared-names tr[data-tool='hb.delay']", "hb__delay").await;
        b.wait("#declarations-provider").await.select_by_value("gemini").await.unwrap();
        b.wait_text("#declared-names tr[data-tool='hb.delay']", "hb.delay").await;

        // a run cancelled from its page
        b.fill("#run-input", "wait long").await;
        b.click("#run-agent").await;
        b.wait("#steps li.step[data-kind=model]").await;
        b.click("#cancel-run").await;
        b.wait_text_within("#run-status", "Cancelled", 10).await;
        b.wait_text("#run-end", "cancelled").await;

        // an edit: a tool the workspace lacks is a warning on the page, to untick
        let (st, ghost) = s.call(Method::POST, &format!("{WS}/agents"), Some(json!({"name": "Ghostly", "provider": "gemini", "model": "m",
            "tools": ["hb.ip", "ghost.tool"]}))).await;
        assert_eq!(st, 201, "{ghost}");
        b.client.goto(&format!("{}/agents/{}", s.url, ghost["id"].as_str().unwrap())).await.unwrap();
        b.wait_text("#agent-warnings li[data-tool='ghost.tool']", "not a tool of this workspace").await;
        b.click("#picker-missing label.pick[data-tool='ghost.tool'] input").await;
        b.click("#save-agent").await;
        b.wait_text("#agent-form .notice", "Saved.").await;
        let (_, after) = s.call(Method::GET, &format!("{WS}/agents/{}", ghost["id"].as_str().unwrap()), None).await;
        assert_eq!(after["tools"], json!(["hb.ip"]), "{after}");
        // bad input is shown at its field
        b.fill("#agent-max-steps", "0").await;
        b.click("#save-agent").await;
        b.wait_text("[data-pointer='/max_steps'] .field-error", "1").await;
        b.client.goto(&format!("{}/agents", s.url)).await.unwrap();
        b.wait_text("#agents tr[data-agent=Helper]", "OpenAI").await;
        b.wait_text(".count", "2 of 2 agents").await;
        let page = b.client.source().await.unwrap();
        assert!(!page.contains("CANARY"), "no key on the pages");
        b.close().await;

        // hostile text (an agent's name and instructions, a model's answer) shows as text,
        // and a member sees no admin controls
        const XSS: &str = "<img src=x onerror=alert(1)>";
        let (st, evil) = s.call(Method::POST, &format!("{WS}/agents"), Some(json!({"name": format!("Evil {XSS}"), "provider": "openai",
            "model": "oa-model", "instructions": XSS, "tools": []}))).await;
        assert_eq!(st, 201, "{evil}");
        let evil = evil["id"].as_str().unwrap().to_owned();
        let (uid, member) = s.user("member@example.com").await;
        let (st, v) = s.call(Method::PUT, &format!("{WS}/members/{uid}"), Some(json!({"role": "member"}))).await;
        assert!(st == 200 || st == 201, "{v}");
        let m = Browser::open().await;
        m.client.goto(&format!("{}/login", s.url)).await.unwrap();
        m.fill("#token", &member).await;
        m.click("#token-form button[type=submit]").await;
        m.wait_path("/connections").await;
        m.client.goto(&format!("{}/agents", s.url)).await.unwrap();
        m.wait_text("#agents", "Evil <img").await;
        assert!(m.client.find_all(Locator::Css("#new-agent")).await.unwrap().is_empty(), "members create no agents");
        m.client.goto(&format!("{}/agents/{evil}", s.url)).await.unwrap();
        m.wait_text("main h1", XSS).await;
        m.wait_text("#agent-summary", XSS).await;
        for admin_only in ["#agent-form", "#delete-agent", "#run-participant"] {
            assert!(m.client.find_all(Locator::Css(admin_only)).await.unwrap().is_empty(), "a member sees {admin_only}");
        }
        // the member runs it; the model's answer is hostile text
        m.fill("#run-input", "be evil").await;
        m.click("#run-agent").await;
        m.wait_text_within("#run-output", "<script>alert(2)</script>", 20).await;
        assert!(m.client.find_all(Locator::Css("main img")).await.unwrap().is_empty(), "no element from text");
        assert!(!m.dialog_open().await);
        m.close().await;
    }
}

/// Queues LLMock's next behaviours (after forgetting the earlier ones and what it received).
async fn script(llmock: &str, behaviors: Value) {
    let http = super::accounts::no_redirects();
    let r = http.post(format!("{llmock}/_llmock/reset")).send().await.unwrap();
    assert!(r.status().is_success());
    let r = http
        .post(format!("{llmock}/_llmock/scenario"))
        .json(&json!({"behaviors": behaviors}))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{:?}", r.text().await);
}

/// How many model requests LLMock received since the last [`script`].
async fn asked(llmock: &str) -> usize {
    let v: Value = super::accounts::no_redirects()
        .get(format!("{llmock}/_llmock/requests"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let list = v
        .as_array()
        .or_else(|| v["requests"].as_array())
        .cloned()
        .unwrap_or_default();
    list.len()
}

/// A server that answers one request with the start of a JSON body, then closes the
/// connection: an answer cut in the middle. Its URL.
async fn cut_answers() -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        while let Ok((mut sock, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = vec![0u8; 64 * 1024];
                let _ = sock.read(&mut buf).await;
                let _ = sock
                    .write_all(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 4000\r\n\r\n{\"id\":\"x\",\"choices\":[{\"message\":{\"role\":\"assis")
                    .await;
                let _ = sock.shutdown().await;
            });
        }
    });
    url
}

db_tests! {
    async fn provider_faults_end_runs_with_clear_statuses(db: Db) {
        let llmock = ScriptPeer::llmock();
        let mut options = local_upstreams(&[]);
        options.env.push(("CHATTERFLY_MODEL_TIMEOUT_SECS".into(), "2".into()));
        options.env.push(("CHATTERFLY_MODEL_RETRIES".into(), "1".into()));
        let s = TestServer::start_with(BIN, db, options).await;
        let (st, v) = s.call(Method::POST, &format!("{WS}/connections"), Some(json!({"name": "HB", "slug": "hb",
            "service_type": "http", "base_url": httpbin_url(), "operations": [
                {"name": "delay", "method": "GET", "path": "/delay/{{n}}",
                 "input_schema": {"type": "object", "properties": {"n": {"type": "integer", "maximum": 3}}, "required": ["n"]}}]}))).await;
        assert_eq!(st, 201, "{v}");
        let cut = cut_answers().await;
        for (provider, root, delay) in [("openai", "", "hb__delay"), ("anthropic", "/anthropic", "hb__delay"), ("gemini", "/gemini", "hb.delay")] {
            set_key(&s, "platform", provider, Some(GOOD_KEY), &format!("{}{root}", llmock.url)).await;
            let a = agent(&s, provider, "fault-model", json!(["hb.delay", "current_time"]), 3).await;
            let check = |r: &Value, status: &str, words: &[&str]| {
                assert_eq!(r["status"], status, "{provider}: {r}");
                let error = r["error"].as_str().unwrap_or_default();
                for w in words {
                    assert!(error.contains(w), "{provider}: {w:?} not in {error:?}");
                }
                assert!(!r.to_string().contains("CANARY"), "{provider}: a key in the run: {r}");
                // the record is whole: every step has its kind and duration
                let steps = r["steps"].as_array().unwrap();
                assert_eq!(steps.len() as i64, r["step_count"].as_i64().unwrap(), "{r}");
                assert!(steps.iter().all(|s| s["duration_ms"].is_u64() && s["kind"].is_string()), "{r}");
            };

            // 401: failed with the provider's words, asked once
            script(&llmock.url, json!([{"type": "fail", "status": 401, "message": "Invalid key here", "times": null}])).await;
            let r = run_to_end(&s, &a, json!("hello")).await;
            check(&r, "failed", &["HTTP 401", "Invalid key here"]);
            assert_eq!(asked(&llmock.url).await, 1, "{provider}: a 401 is not asked again");

            // 429 once with Retry-After: asked again after it, and the run goes on
            script(&llmock.url, json!([{"type": "fail", "status": 429, "retry_after": 1},
                {"type": "reply", "text": "Fine after waiting.", "times": 1}])).await;
            let started = std::time::Instant::now();
            let r = run_to_end(&s, &a, json!("hello")).await;
            assert_eq!((r["status"].as_str(), r["output"].as_str()), (Some("succeeded"), Some("Fine after waiting.")), "{provider}: {r}");
            assert_eq!(r["steps"][0]["retries"], 1, "{r}");
            assert!(started.elapsed() >= std::time::Duration::from_millis(900), "the Retry-After was waited out");
            assert_eq!(asked(&llmock.url).await, 2);

            // 429 and 500 every time: failed after the retries, saying so
            script(&llmock.url, json!([{"type": "fail", "status": 429, "retry_after": 1, "times": null}])).await;
            let r = run_to_end(&s, &a, json!("hello")).await;
            check(&r, "failed", &["HTTP 429", "retry after 1 s", "asked 2 times"]);
            script(&llmock.url, json!([{"type": "fail", "status": 500, "times": null}])).await;
            let r = run_to_end(&s, &a, json!("hello")).await;
            check(&r, "failed", &["HTTP 500", "asked 2 times"]);
            assert_eq!(asked(&llmock.url).await, 2);
            // a Retry-After longer than a run waits: failed at once
            script(&llmock.url, json!([{"type": "fail", "status": 503, "retry_after": 600, "times": null}])).await;
            let r = run_to_end(&s, &a, json!("hello")).await;
            check(&r, "failed", &["HTTP 503", "retry after 600 s"]);
            assert_eq!(asked(&llmock.url).await, 1);

            // a model that takes longer than the timeout
            script(&llmock.url, json!([{"type": "delay", "seconds": 4}])).await;
            let r = run_to_end(&s, &a, json!("hello")).await;
            check(&r, "failed", &["did not answer within 2 s"]);

            // broken tool calls are error results for the model, and the run goes on
            for (behavior, code) in [
                (json!({"type": "tool_fault", "kind": "malformed_arguments"}), "invalid_arguments"),
                (json!({"type": "tool_fault", "kind": "unknown_tool"}), "tool_not_found"),
                (json!({"type": "reply", "tool_calls": [{"name": delay, "arguments": {"n": "soon"}}]}), "invalid_arguments"),
                (json!({"type": "reply", "tool_calls": [{"name": delay, "arguments": {"n": 99}}]}), "invalid_arguments"),
            ] {
                // (a tool fault and a scripted reply would land on the same request: the
                // answer after the fault is LLMock's own)
                let then = if behavior["type"] == "reply" { json!([behavior, {"type": "reply", "text": "Recovered."}]) } else { json!([behavior]) };
                script(&llmock.url, then).await;
                let r = run_to_end(&s, &a, json!("hello")).await;
                assert_eq!(r["status"], "succeeded", "{provider} {behavior}: {r}");
                assert!(r["output"].as_str().is_some_and(|o| !o.is_empty()), "{provider} {behavior}: {r}");
                assert_eq!(r["step_count"], 3, "{provider} {behavior}: {r}");
                let tool = r["steps"].as_array().unwrap().iter().find(|s| s["kind"] == "tool").cloned().unwrap_or_default();
                assert_eq!((tool["is_error"].as_bool(), tool["error"]["code"].as_str()), (Some(true), Some(code)), "{provider} {behavior}: {r}");
            }

            // 5,000 calls in one turn (unknown tools among them): 32 are made, the rest are
            // left out of the run, counted, and stored nowhere
            let mut many: Vec<Value> = (0..40).map(|_| json!({"name": "current_time", "arguments": {}})).collect();
            many.extend((0..4960).map(|i| json!({"name": format!("ghost_{i}"), "arguments": {}})));
            script(&llmock.url, json!([{"type": "reply", "tool_calls": many}, {"type": "reply", "text": "Enough."}])).await;
            let r = run_to_end(&s, &a, json!("hello")).await;
            assert_eq!(r["status"], "succeeded", "{provider}: {r}");
            let tools: Vec<&Value> = r["steps"].as_array().unwrap().iter().filter(|s| s["kind"] == "tool").collect();
            assert_eq!(tools.len(), 32, "{provider}");
            assert!(tools.iter().all(|t| t["is_error"] == false), "{provider}: {r}");
            assert_eq!((r["steps"][0]["calls_left_out"].as_u64(), r["steps"][0]["calls"].as_array().map(Vec::len)), (Some(4968), Some(32)), "{provider}");
            assert!(r.to_string().len() < 200_000, "{provider}: the record stays small");
            // its events come a page at a time, every step once and in order, then the end
            let text = super::accounts::no_redirects().get(format!("{}{WS}/agents/{a}/runs/{}/events", s.url, r["id"].as_str().unwrap()))
                .bearer_auth(&s.token).send().await.unwrap().text().await.unwrap();
            let seqs: Vec<i64> = text.lines().filter_map(|l| l.strip_prefix("data: ")).filter_map(|d| serde_json::from_str::<Value>(d).ok())
                .filter_map(|v| v["seq"].as_i64()).collect();
            assert_eq!(seqs, (0..r["step_count"].as_i64().unwrap()).collect::<Vec<_>>(), "{provider}");
            assert!(text.trim_end().ends_with('}') && text.contains("event: end"), "{provider}");
            if provider == "openai" {
                // a conversation that grows past 16 MiB (6 MB of text per turn) ends the run
                let turn = json!({"type": "reply", "text": "c".repeat(6 * 1024 * 1024), "tool_calls": [{"name": "current_time", "arguments": {}}]});
                script(&llmock.url, json!([turn, turn, turn])).await;
                let r = run_to_end(&s, &a, json!("hello")).await;
                check(&r, "failed", &["past 16 MiB"]);
                assert_eq!(r["step_count"], 6, "{r}");
            }

            // answers of several megabytes: 3 MB is an answer, 9 MB is refused
            let big = "a".repeat(3 * 1024 * 1024);
            script(&llmock.url, json!([{"type": "reply", "text": big}])).await;
            let r = run_to_end(&s, &a, json!("hello")).await;
            assert_eq!((r["status"].as_str(), r["output"].as_str().map(str::len)), (Some("succeeded"), Some(3 * 1024 * 1024)), "{provider}");
            script(&llmock.url, json!([{"type": "reply", "text": "b".repeat(9 * 1024 * 1024)}])).await;
            let r = run_to_end(&s, &a, json!("hello")).await;
            check(&r, "failed", &["too large"]);

            // an answer cut in the middle
            set_key(&s, "platform", provider, Some(GOOD_KEY), &cut).await;
            let r = run_to_end(&s, &a, json!("hello")).await;
            check(&r, "failed", &[&format!("{provider}'s answer could not be read whole")]);
            assert!(!r["error"].as_str().unwrap().contains("http://"), "{r}");
        }
        // no key in the server's log either
        assert!(!s.output().contains("CANARY"), "a key in the server's log");
    }
}

// Provider keys (a workspace's and the platform's), a run's own credentials and a
// participant's key, each a unique marker, go through runs whose tools echo them (httpbin)
// and whose provider repeats its key in an error: the markers must show in no run record,
// list, event stream, audit row, trace-level log line or database row, and never reach the
// model.
db_tests! {
    async fn agent_runs_leak_no_key_or_credential(db: Db) {
        use super::canary::{assert_clean, assert_sqlite_files_clean, forms, postgres_dump};
        let forms_of = |s: &[String]| forms(s);
        let llmock = ScriptPeer::llmock();
        let mut options = local_upstreams(&[]);
        options.rust_log = "trace".into();
        let s = TestServer::start_with(BIN, db, options).await;
        let tag = uuid::Uuid::new_v4().simple().to_string();
        let c = |field: &str| format!("CANARY{tag}{field}");
        let secrets = [c("wskey"), c("plkey"), c("runcred"), c("partkey")];
        let forms = forms(&secrets);
        let hb = httpbin_url();
        assert_eq!(s.call(Method::POST, &format!("{WS}/participant-roles"), Some(json!({"name": "customer"}))).await.0, 201);
        for body in [
            json!({"name": "Me", "slug": "me", "service_type": "http", "base_url": hb, "auth": {"type": "bearer"}, "fulfillment": "caller",
                "operations": [{"name": "bearer", "method": "GET", "path": "/bearer"}]}),
            json!({"name": "CRM", "slug": "crm", "service_type": "http", "base_url": hb, "auth": {"type": "api_key_header", "header": "X-Api-Key"},
                "fulfillment": "participant", "participant_role": "customer", "operations": [{"name": "headers", "method": "GET", "path": "/headers"}]}),
        ] {
            let (st, v) = s.call(Method::POST, &format!("{WS}/connections"), Some(body)).await;
            assert_eq!(st, 201, "{v}");
        }
        let (st, p) = s.call(Method::POST, &format!("{WS}/participants"), Some(json!({"name": "Pat", "role": "customer"}))).await;
        assert_eq!(st, 201, "{p}");
        let pid = p["id"].as_str().unwrap().to_owned();
        let token = p["onboarding_url"].as_str().unwrap().rsplit('/').next().unwrap().to_owned();
        let r = super::accounts::no_redirects().put(format!("{}/api/onboarding/connections/crm", s.url))
            .header("x-onboarding-token", &token).json(&json!({"key": c("partkey")})).send().await.unwrap();
        assert!(r.status().is_success(), "{:?}", r.text().await);

        let mut seen = String::new();
        let mut redacted = 0;
        for (provider, root, scope, key) in [
            ("openai", "", "workspace", c("wskey")),
            ("anthropic", "/anthropic", "platform", c("plkey")),
            ("gemini", "/gemini", "workspace", c("wskey")),
        ] {
            let base = format!("{}{root}", llmock.url);
            set_key(&s, "platform", provider, Some(&c("plkey")), &base).await;
            if scope == "workspace" {
                set_key(&s, "workspace", provider, Some(&key), &base).await;
            }
            let a = agent(&s, provider, "canary-model", json!(["me.bearer", "crm.headers"]), 3).await;
            let sep = if provider == "gemini" { "." } else { "__" };
            // the model's answer repeats every secret the run used (as a hostile or confused
            // model may)
            script(&llmock.url, json!([
                {"type": "reply", "tool_calls": [{"name": format!("me{sep}bearer"), "arguments": {}}, {"name": format!("crm{sep}headers"), "arguments": {}}]},
                {"type": "reply", "text": format!("Both called. {} {} {}", c("runcred"), c("partkey"), key)}])).await;
            let (st, run) = s.call(Method::POST, &format!("{WS}/agents/{a}/runs"),
                Some(json!({"input": "call both", "credentials": {"me": {"token": c("runcred")}}, "participant": pid}))).await;
            assert_eq!(st, 201, "{run}");
            seen.push_str(&run.to_string());
            let id = run["id"].as_str().unwrap().to_owned();
            let events = super::accounts::no_redirects().get(format!("{}{WS}/agents/{a}/runs/{id}/events", s.url)).bearer_auth(&s.token)
                .send().await.unwrap().text().await.unwrap();
            assert!(events.contains("event: end"), "{events}");
            seen.push_str(&events);
            let (_, r) = s.call(Method::GET, &format!("{WS}/agents/{a}/runs/{id}"), None).await;
            assert_eq!((r["status"].as_str(), r["output"].as_str()), (Some("succeeded"),
                Some("Both called. [REDACTED] [REDACTED] [REDACTED]")), "{provider}: {r}");
            let steps = r["steps"].as_array().unwrap();
            let bearer = steps.iter().find(|s| s["tool"] == "me.bearer").unwrap();
            assert_eq!(bearer["output"]["body"]["authenticated"], true, "httpbin got the run's token: {bearer}");
            assert_eq!(bearer["output"]["body"]["token"], "[REDACTED]", "{bearer}");
            let crm = steps.iter().find(|s| s["tool"] == "crm.headers").unwrap();
            assert_eq!(crm["output"]["body"]["headers"]["X-Api-Key"], "[REDACTED]", "httpbin got Pat's key: {crm}");
            redacted += 2;
            seen.push_str(&r.to_string());
            let (_, audit) = s.call(Method::GET, &format!("{WS}/audit?run={id}"), None).await;
            assert_eq!(audit["events"].as_array().unwrap().len(), 2, "{audit}");
            seen.push_str(&audit.to_string());
            // what the model received: the tools' outputs, never a credential in them
            let to_model = super::accounts::no_redirects().get(format!("{}/_llmock/requests", llmock.url)).send().await.unwrap().text().await.unwrap();
            assert!(to_model.contains("[REDACTED]") && to_model.contains("authenticated"), "{provider}: {to_model}");
            assert_clean("what the model received", &to_model, &forms_of(&[c("runcred"), c("partkey")]));
            // the provider repeats the key in its refusal
            script(&llmock.url, json!([{"type": "fail", "status": 401, "message": format!("Incorrect API key provided: {key}."), "times": null}])).await;
            let r = run_to_end(&s, &a, json!("hello")).await;
            assert_eq!(r["status"], "failed", "{r}");
            assert!(r["error"].as_str().unwrap().contains("Incorrect API key provided: [REDACTED]"), "{r}");
            seen.push_str(&r.to_string());
            let (_, runs) = s.call(Method::GET, &format!("{WS}/agents/{a}/runs"), None).await;
            seen.push_str(&runs.to_string());
            let (_, d) = s.call(Method::GET, &format!("{WS}/agents/{a}/declarations"), None).await;
            seen.push_str(&d.to_string());
        }
        assert_eq!(redacted, 6);
        let (_, agents) = s.call(Method::GET, &format!("{WS}/agents"), None).await;
        seen.push_str(&agents.to_string());
        assert!(seen.contains("[REDACTED]") && seen.len() > 5_000, "the check can fail: {} bytes read", seen.len());
        assert_clean("the agents API's answers and events", &seen, &forms);

        let (tdb, logs) = s.stop();
        assert!(logs.contains("TRACE") || logs.contains("DEBUG"), "logs at a verbose level");
        assert_clean("the server logs", &logs, &forms);
        match db {
            Db::Sqlite => {
                assert_sqlite_files_clean(tdb.dir.path(), &forms);
            }
            Db::Postgres => {
                let dump = postgres_dump(&tdb.url).await;
                assert!(dump.contains("agent_run_steps") || dump.contains("Both called."), "the dump holds the runs");
                assert_clean("the PostgreSQL rows", &dump, &forms);
            }
        }
    }
}

db_tests! {
    async fn runs_use_the_callers_credentials_or_a_participants(db: Db) {
        let llmock = ScriptPeer::llmock();
        let s = TestServer::start_with(BIN, db, local_upstreams(&[])).await;
        let hb = httpbin_url();
        assert_eq!(s.call(Method::POST, &format!("{WS}/participant-roles"), Some(json!({"name": "customer"}))).await.0, 201);
        for body in [
            json!({"name": "Me", "slug": "me", "service_type": "http", "base_url": hb, "auth": {"type": "bearer"}, "fulfillment": "caller",
                "operations": [{"name": "bearer", "method": "GET", "path": "/bearer"}]}),
            json!({"name": "CRM", "slug": "crm", "service_type": "http", "base_url": hb, "auth": {"type": "api_key_header", "header": "X-Api-Key"},
                "fulfillment": "participant", "participant_role": "customer", "operations": [{"name": "headers", "method": "GET", "path": "/headers"}]}),
        ] {
            let (st, v) = s.call(Method::POST, &format!("{WS}/connections"), Some(body)).await;
            assert_eq!(st, 201, "{v}");
        }
        set_key(&s, "platform", "openai", Some(GOOD_KEY), &llmock.url).await;
        let a = agent(&s, "openai", "m", json!(["me.bearer", "crm.headers"]), 3).await;
        let call = |tool: &str| json!([{"type": "reply", "tool_calls": [{"name": tool, "arguments": {}}]}, {"type": "reply", "text": "Done."}]);
        let tool_step = |r: &Value| r["steps"].as_array().unwrap().iter().find(|s| s["kind"] == "tool").cloned().unwrap();

        // a member runs it; with no key of theirs the call fails, saying where to give one,
        // and the run goes on to its answer
        let (uid, member) = s.user("member@example.com").await;
        let (st, v) = s.call(Method::PUT, &format!("{WS}/members/{uid}"), Some(json!({"role": "member"}))).await;
        assert!(st == 200 || st == 201, "{v}");
        let run_as = |body: Value| {
            let s = &s;
            let member = member.clone();
            let a = a.clone();
            async move {
                let (st, v) = s.call_as(&member, Method::POST, &format!("{WS}/agents/{a}/runs"), Some(body)).await;
                assert_eq!(st, 201, "{v}");
                let id = v["id"].as_str().unwrap().to_owned();
                for _ in 0..200 {
                    let (_, r) = s.call_as(&member, Method::GET, &format!("{WS}/agents/{a}/runs/{id}"), None).await;
                    if r["status"] != "running" {
                        return r;
                    }
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                }
                panic!("run {id} did not end");
            }
        };
        script(&llmock.url, call("me__bearer")).await;
        let r = run_as(json!({"input": "who am I"})).await;
        assert_eq!((r["status"].as_str(), r["output"].as_str()), (Some("succeeded"), Some("Done.")), "{r}");
        let t = tool_step(&r);
        assert_eq!(t["error"]["code"], "credentials_required", "{t}");
        assert!(t["error"]["message"].as_str().unwrap().contains("My Accounts"), "{t}");
        // the member's saved key (My Accounts) is used when the run brings none
        let (st, v) = s.call_as(&member, Method::PUT, &format!("{WS}/connections/me/my-credentials"), Some(json!({"token": "member-saved-token"}))).await;
        assert_eq!(st, 200, "{v}");
        script(&llmock.url, call("me__bearer")).await;
        script(&llmock.url, json!([{"type": "reply", "tool_calls": [{"name": "me__bearer", "arguments": {}}]},
            {"type": "reply", "text": "your token is member-saved-token"}])).await;
        let r = run_as(json!({"input": "who am I"})).await;
        let t = tool_step(&r);
        assert_eq!((t["output"]["body"]["authenticated"].as_bool(), t["output"]["body"]["token"].as_str()), (Some(true), Some("[REDACTED]")), "{t}");
        assert_eq!(r["output"], "your token is [REDACTED]", "a saved key the model repeats is hidden: {r}");
        let member_run = r["id"].as_str().unwrap().to_owned();
        // the admin has no saved key: the run's own credentials are used
        script(&llmock.url, call("me__bearer")).await;
        let r = run_to_end_with(&s, &a, json!({"input": "who am I", "credentials": {"me": {"token": "run-only-token"}}})).await;
        assert_eq!(tool_step(&r)["output"]["body"]["authenticated"], true, "{r}");
        script(&llmock.url, call("me__bearer")).await;
        let r = run_to_end_with(&s, &a, json!({"input": "who am I"})).await;
        assert_eq!(tool_step(&r)["error"]["code"], "credentials_required", "the run's credentials were for that run only: {r}");

        // on behalf of a participant: their key, and the run names them
        let (st, p) = s.call(Method::POST, &format!("{WS}/participants"), Some(json!({"name": "Pat", "role": "customer"}))).await;
        assert_eq!(st, 201, "{p}");
        let pid = p["id"].as_str().unwrap().to_owned();
        script(&llmock.url, call("crm__headers")).await;
        let r = run_to_end_with(&s, &a, json!({"input": "crm", "participant": pid})).await;
        let t = tool_step(&r);
        assert_eq!(t["error"]["code"], "credentials_required", "{t}");
        assert!(t["error"]["message"].as_str().unwrap().contains(pid.as_str()), "names the participant: {t}");
        assert_eq!(r["participant_id"], pid.as_str());
        let token = p["onboarding_url"].as_str().unwrap().rsplit('/').next().unwrap().to_owned();
        let resp = super::accounts::no_redirects().put(format!("{}/api/onboarding/connections/crm", s.url))
            .header("x-onboarding-token", &token).json(&json!({"key": "pat-crm-key"})).send().await.unwrap();
        assert!(resp.status().is_success());
        script(&llmock.url, call("crm__headers")).await;
        let r = run_to_end_with(&s, &a, json!({"input": "crm", "participant": pid})).await;
        let t = tool_step(&r);
        assert_eq!(t["output"]["body"]["headers"]["X-Api-Key"], "[REDACTED]", "httpbin got Pat's key: {t}");
        let (_, audit) = s.call(Method::GET, &format!("{WS}/audit?run={}", r["id"].as_str().unwrap()), None).await;
        assert_eq!(audit["events"][0]["participant_id"], pid.as_str(), "{audit}");

        // members see and cancel the runs they started; admins see all
        let (_, mine) = s.call_as(&member, Method::GET, &format!("{WS}/agents/{a}/runs"), None).await;
        let mine: Vec<&str> = mine.as_array().unwrap().iter().map(|r| r["id"].as_str().unwrap()).collect();
        assert!(mine.contains(&member_run.as_str()) && mine.len() == 2, "{mine:?}");
        let (_, all) = s.call(Method::GET, &format!("{WS}/agents/{a}/runs"), None).await;
        assert!(all.as_array().unwrap().len() > mine.len());
        let admins = r["id"].as_str().unwrap();
        for (method, path) in [(Method::GET, format!("{WS}/agents/{a}/runs/{admins}")), (Method::GET, format!("{WS}/agents/{a}/runs/{admins}/events")),
            (Method::POST, format!("{WS}/agents/{a}/runs/{admins}/cancel"))] {
            let (st, _) = s.call_as(&member, method.clone(), &path, None).await;
            assert_eq!(st, 404, "{method} {path}");
        }
        assert_eq!(s.call(Method::GET, &format!("{WS}/agents/{a}/runs/{member_run}"), None).await.0, 200, "admins see members' runs");

        // bad run input: each a 4xx at its field, nothing started
        let (_, before) = s.call(Method::GET, &format!("{WS}/agents/{a}/runs?limit=200"), None).await;
        let (_, other) = s.call(Method::POST, "/api/workspaces", Some(json!({"slug": "other", "name": "Other"}))).await;
        assert_eq!(other["slug"], "other");
        assert_eq!(s.call(Method::POST, "/api/workspaces/other/participant-roles", Some(json!({"name": "customer"}))).await.0, 201);
        let (_, stranger) = s.call(Method::POST, "/api/workspaces/other/participants", Some(json!({"name": "Sam", "role": "customer"}))).await;
        for (body, status) in [
            (json!({"input": "x", "participant": "no-such-participant"}), 404),
            (json!({"input": "x", "participant": stranger["id"]}), 404),
            (json!({"input": "x", "participant": "p".repeat(65)}), 422),
            (json!({"input": "x", "credentials": {"me": "just-a-token"}}), 422),
            (json!({"input": "x", "credentials": []}), 422),
            (json!({"input": "x", "credentials": {"nope": {"token": "t"}}}), 422),
            (json!({"input": "x", "credentials": {"crm": {"key": "k"}}}), 422),
            (json!({"input": ""}), 422),
            (json!({"input": [{"role": "assistant", "content": "hi"}]}), 422),
            (json!({"input": "x", "extra": 1}), 422),
        ] {
            let (st, v) = s.call(Method::POST, &format!("{WS}/agents/{a}/runs"), Some(body.clone())).await;
            assert_eq!(st, status, "{body}: {v}");
        }
        let (_, after) = s.call(Method::GET, &format!("{WS}/agents/{a}/runs?limit=200"), None).await;
        assert_eq!(before.as_array().unwrap().len(), after.as_array().unwrap().len(), "no run was started");
        // members run agents but do not write them
        let (st, _) = s.call_as(&member, Method::PATCH, &format!("{WS}/agents/{a}"), Some(json!({"max_steps": 5}))).await;
        assert_eq!(st, 403);
        let (st, _) = s.call_as(&member, Method::POST, &format!("{WS}/agents"), Some(json!({"name": "x", "provider": "openai", "model": "m"}))).await;
        assert_eq!(st, 403);
        let (st, _) = s.call_as(&member, Method::DELETE, &format!("{WS}/agents/{a}"), None).await;
        assert_eq!(st, 403);
    }
}

/// [`run_to_end`] with a whole run request (credentials, participant).
async fn run_to_end_with(s: &TestServer, agent: &str, body: Value) -> Value {
    let (st, v) = s
        .call(Method::POST, &format!("{WS}/agents/{agent}/runs"), Some(body))
        .await;
    assert_eq!(st, 201, "{v}");
    let id = v["id"].as_str().unwrap().to_owned();
    for _ in 0..200 {
        let (_, r) = s
            .call(Method::GET, &format!("{WS}/agents/{agent}/runs/{id}"), None)
            .await;
        if r["status"] != "running" {
            return r;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("run {id} did not end");
}

db_tests! {
    async fn a_run_outlives_no_server_and_a_live_one_is_kept(db: Db) {
        let dir = fixtures();
        let llm = ScriptPeer::llm(dir.path().to_str().unwrap(), GOOD_KEY);
        let mut options = local_upstreams(&[]);
        options.env.push(("CHATTERFLY_RUN_STALE_SECS".into(), "1".into()));
        if db == Db::Postgres {
            options.env.push(("INTEGRATION_ENCRYPTION_KEY".into(), chatterfly_testkit::server::random_key()));
        }
        let s = TestServer::start_with(BIN, db, options.clone()).await;
        let (st, v) = s.call(Method::POST, &format!("{WS}/connections"), Some(json!({"name": "HB", "slug": "hb",
            "service_type": "http", "base_url": httpbin_url(), "operations": [{"name": "delay", "method": "GET", "path": "/delay/{{n}}",
            "input_schema": {"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]}}]}))).await;
        assert_eq!(st, 201, "{v}");
        set_key(&s, "platform", "openai", Some(GOOD_KEY), &llm.url).await;
        let a = agent(&s, "openai", "oa-model", json!(["hb.delay"]), 3).await;
        // a run that waits four times longer than a silent run is given: its server keeps
        // it alive
        let r = run_to_end(&s, &a, json!("wait four")).await;
        assert_eq!((r["status"].as_str(), r["output"].as_str()), (Some("succeeded"), Some("Waited four.")), "{r}");
        // the server stops in the middle of a run: the next server ends it as failed
        let (st, v) = s.call(Method::POST, &format!("{WS}/agents/{a}/runs"), Some(json!({"input": "wait long"}))).await;
        assert_eq!(st, 201, "{v}");
        let id = v["id"].as_str().unwrap().to_owned();
        for _ in 0..100 {
            let (_, r) = s.call(Method::GET, &format!("{WS}/agents/{a}/runs/{id}"), None).await;
            if r["step_count"].as_i64() >= Some(1) {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        let (tdb, _) = s.stop();
        let s = TestServer::spawn(std::path::Path::new(BIN), tdb, &options).expect("the server starts again");
        let mut r = Value::Null;
        for _ in 0..100 {
            r = s.call(Method::GET, &format!("{WS}/agents/{a}/runs/{id}"), None).await.1;
            if r["status"] != "running" {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        assert_eq!(r["status"], "failed", "{r}");
        assert!(r["error"].as_str().unwrap().contains("server running it stopped"), "{r}");
        assert_eq!(r["step_count"], 1, "the steps taken are kept: {r}");
        // its events end too
        let text = super::accounts::no_redirects().get(format!("{}{WS}/agents/{a}/runs/{id}/events", s.url)).bearer_auth(&s.token)
            .send().await.unwrap().text().await.unwrap();
        assert!(text.contains("event: end") && text.contains("\"failed\""), "{text}");
    }
}

db_tests! {
    async fn provider_base_urls_are_outbound_targets_like_any_other(db: Db) {
        let s = TestServer::start_with(BIN, db, local_upstreams(&[])).await;
        let a = agent(&s, "openai", "m", json!([]), 2).await;
        for base in ["http://169.254.169.254", "http://10.0.0.1:8080", "http://[::ffff:169.254.169.254]", "http://[fd00::1]",
            "http://0.0.0.0:80", "http://[::1]:9", "http://100.100.100.200"] {
            set_key(&s, "platform", "openai", Some(GOOD_KEY), base).await;
            let r = run_to_end(&s, &a, json!("hello")).await;
            assert_eq!(r["status"], "failed", "{base}: {r}");
            let error = r["error"].as_str().unwrap();
            assert!(error.contains("not allowed"), "{base}: {error}");
            assert!(!r.to_string().contains("CANARY"), "{r}");
        }
        // the base URL must be an http(s) URL when it is saved
        for base in ["file:///etc/passwd", "gopher://127.0.0.1/", "not a url"] {
            let (st, v) = s.call(Method::PUT, "/api/admin/service-credentials/openai", Some(json!({"api_key": GOOD_KEY, "base_url": base}))).await;
            assert_eq!((st, v["errors"][0]["pointer"].as_str()), (422, Some("/base_url")), "{base}: {v}");
        }
        assert!(!s.output().contains("CANARY"));
    }
}
