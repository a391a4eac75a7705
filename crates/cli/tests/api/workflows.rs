//! Workflows against real peers: tool nodes calling httpbin and the MCP reference server,
//! an agent node asking the scriptable LLM look-alike, templates carrying values (and their
//! JSON types) from the run's input and earlier nodes, the "used by" guard, durable runs
//! (a server killed mid-run, another finishing its runs), the canary, and bad input. Both
//! databases.

use std::path::Path;
use std::time::{Duration, Instant};

use chatterfly_testkit::browser::Browser;
use chatterfly_testkit::fresh_database;
use chatterfly_testkit::httpbin_url;
use chatterfly_testkit::peers::{McpPeer, McpPeerKind, ScriptPeer};
use chatterfly_testkit::server::random_key;
use fantoccini::Locator;

use super::*;

const WS: &str = "/api/workspaces/default";
const LLM_KEY: &str = "sk-wf-CANARY-7d1e0b55";

async fn hb(s: &TestServer, slug: &str, fulfillment: &str) {
    hb_at(s, slug, fulfillment, &httpbin_url()).await;
}

/// [`hb`] with another base URL (httpbin's look-alike [`held_delays`]).
async fn hb_at(s: &TestServer, slug: &str, fulfillment: &str, base_url: &str) {
    let mut body = json!({"name": format!("HB {slug}"), "slug": slug, "service_type": "http", "base_url": base_url,
        "operations": [
            {"name": "post", "method": "POST", "path": "/anything"},
            {"name": "ip", "method": "GET", "path": "/ip"},
            {"name": "status", "method": "GET", "path": "/status/{{code}}",
             "input_schema": {"type": "object", "properties": {"code": {"type": "integer"}}, "required": ["code"]}},
            {"name": "delay", "method": "GET", "path": "/delay/{{n}}",
             "input_schema": {"type": "object", "properties": {"n": {"type": "number"}}, "required": ["n"]}}]});
    if fulfillment == "caller" {
        body["fulfillment"] = json!("caller");
        body["auth"] = json!({"type": "bearer"});
    }
    let (st, v) = s.call(Method::POST, &format!("{WS}/connections"), Some(body)).await;
    assert_eq!(st, 201, "{v}");
}

async fn create(s: &TestServer, body: Value) -> String {
    let (st, v) = s.call(Method::POST, &format!("{WS}/workflows"), Some(body)).await;
    assert_eq!(st, 201, "{v}");
    v["id"].as_str().unwrap().to_owned()
}

async fn deploy(s: &TestServer, id: &str) -> Value {
    let (st, v) = s.call(Method::POST, &format!("{WS}/workflows/{id}/deploy"), None).await;
    assert_eq!(st, 201, "{v}");
    v
}

async fn start(s: &TestServer, id: &str, body: Value) -> String {
    let (st, v) = s
        .call(Method::POST, &format!("{WS}/workflows/{id}/runs"), Some(body))
        .await;
    assert_eq!(st, 201, "{v}");
    v["id"].as_str().unwrap().to_owned()
}

async fn wait_end(s: &TestServer, id: &str, run: &str, within: Duration) -> Value {
    let deadline = Instant::now() + within;
    loop {
        let (st, r) = s
            .call(Method::GET, &format!("{WS}/workflows/{id}/runs/{run}"), None)
            .await;
        assert_eq!(st, 200, "{r}");
        if matches!(r["status"].as_str(), Some("succeeded" | "failed" | "cancelled")) {
            return r;
        }
        assert!(Instant::now() < deadline, "run {run} did not end: {r}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn step<'a>(r: &'a Value, id: &str) -> &'a Value {
    r["steps"].as_array().unwrap().iter().find(|s| s["id"] == id).unwrap()
}

fn fixtures() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let list = json!([
        {"match": {"userMessage": "summarize 7"}, "response": {"content": "Seven, in short."}},
        {"match": {"userMessage": "fail me"}, "response": {"error": {"message": "model refused", "type": "server_error"}, "status": 400}},
    ]);
    std::fs::write(dir.path().join("fixtures.json"), json!({"fixtures": list}).to_string()).unwrap();
    dir
}

db_tests! {
    async fn workflows_carry_values_between_tool_and_agent_nodes(db: Db) {
        let dir = fixtures();
        let llm = ScriptPeer::llm(dir.path().to_str().unwrap(), LLM_KEY);
        let s = TestServer::start_with(BIN, db, local_upstreams(&[])).await;
        hb(&s, "hb", "static").await;
        let mcp = McpPeer::start(McpPeerKind::EverythingHttp);
        let (st, v) = s.call(Method::POST, &format!("{WS}/connections"), Some(json!({"name": "Everything", "slug": "ev",
            "service_type": "mcp", "base_url": mcp.url}))).await;
        assert_eq!(st, 201, "{v}");
        let (st, v) = s.call(Method::PUT, "/api/admin/service-credentials/openai", Some(json!({"api_key": LLM_KEY, "base_url": llm.url}))).await;
        assert!(st == 200 || st == 204, "{v}");
        let (st, agent) = s.call(Method::POST, &format!("{WS}/agents"), Some(json!({"name": "Summarizer", "provider": "openai",
            "model": "oa-model", "instructions": "Be brief.", "tools": []}))).await;
        assert_eq!(st, 201, "{agent}");
        let agent_id = agent["id"].as_str().unwrap();

        // five nodes: node 3 uses node 1's output; the MCP server adds; the agent answers;
        // the last node gathers what came before
        let id = create(&s, json!({"name": "Five", "nodes": [
            {"id": "echo", "type": "tool", "tool_name": "hb.post", "input": {
                "n": "{{input.n}}", "flag": "{{input.flag}}", "obj": "{{input.obj}}", "list": "{{input.list}}",
                "nothing": "{{input.nothing}}", "text": "n={{input.n}} obj={{input.obj}} flag={{ input.flag }} name={{input.name}}"}},
            {"id": "ip", "type": "tool", "tool_name": "hb.ip"},
            {"id": "third", "type": "tool", "tool_name": "hb.post", "input": {
                "from_echo": "{{steps.echo.output.body.json.obj}}", "second": "{{steps.echo.output.body.json.list[1]}}",
                "origin": "{{steps.ip.output.body.origin}}"}},
            {"id": "sum", "type": "tool", "tool_name": "ev.get-sum", "input": {"a": "{{steps.echo.output.body.json.n}}", "b": 35}},
            {"id": "summary", "type": "agent", "agent": agent_id, "input": "summarize {{input.n}}"},
            {"id": "last", "type": "tool", "tool_name": "hb.post", "input": {
                "sum": "{{steps.sum.output}}", "said": "{{steps.summary.output.text}}", "third": "{{steps.third.output.body.json}}"}}
        ]})).await;
        // not deployed yet: no run
        let (st, v) = s.call(Method::POST, &format!("{WS}/workflows/{id}/runs"), Some(json!({"input": {}}))).await;
        assert_eq!((st, v["code"].as_str()), (409, Some("not_deployed")), "{v}");
        let w = deploy(&s, &id).await;
        assert_eq!((w["deployed_version"].as_i64(), w["undeployed_changes"].as_bool()), (Some(1), Some(false)), "{w}");
        let input = json!({"n": 7, "flag": true, "obj": {"a": 1, "b": [true, null]}, "list": ["x", "y"], "nothing": null, "name": "Ada"});
        let run = start(&s, &id, json!({"input": input})).await;
        let r = wait_end(&s, &id, &run, Duration::from_secs(60)).await;
        assert_eq!(r["status"], "succeeded", "{r}");
        // types kept through a whole expression; text inside a longer string
        let echoed = &step(&r, "echo")["output"]["body"]["json"];
        assert_eq!(echoed["n"], json!(7));
        assert_eq!(echoed["flag"], json!(true));
        assert_eq!(echoed["obj"], json!({"a": 1, "b": [true, null]}));
        assert_eq!(echoed["list"], json!(["x", "y"]));
        let sent = step(&r, "echo")["input"].as_object().unwrap().clone();
        assert_eq!(sent.get("nothing"), Some(&json!(null)), "null kept: {r}");
        assert_eq!(echoed["text"], json!("n=7 obj={\"a\":1,\"b\":[true,null]} flag=true name=Ada"));
        // the step's recorded input is after templating
        assert_eq!(step(&r, "echo")["input"]["n"], json!(7));
        let third = &step(&r, "third")["output"]["body"]["json"];
        assert_eq!((&third["from_echo"], &third["second"]), (&json!({"a": 1, "b": [true, null]}), &json!("y")), "{r}");
        assert!(third["origin"].as_str().unwrap().contains("127.0.0.1"), "{third}");
        assert!(step(&r, "sum")["output"].to_string().contains("42"), "the MCP server added 7 and 35: {r}");
        let summary = step(&r, "summary");
        assert_eq!((summary["output"]["text"].as_str(), summary["output"]["status"].as_str()), (Some("Seven, in short."), Some("succeeded")), "{summary}");
        let last = &r["output"]["body"]["json"];
        assert_eq!(last["said"], "Seven, in short.", "the run's output is the last node's: {r}");
        assert_eq!(last["third"]["second"], "y");
        for st in r["steps"].as_array().unwrap() {
            assert_eq!((st["status"].as_str(), st["attempts"].as_array().unwrap().len()), (Some("succeeded"), 1), "{st}");
            assert!(st["duration_ms"].is_u64() && st["started_at"].is_string() && st["finished_at"].is_string(), "{st}");
        }
        assert_eq!(r["claims"], 1);
        // the calls are in the audit under the run
        let (_, audit) = s.call(Method::GET, &format!("{WS}/audit?run={run}"), None).await;
        assert_eq!(audit["events"].as_array().unwrap().len(), 5, "five tool calls (the agent's run has none): {audit}");

        // events: every step's start and end, then the end
        let (st, _, text) = s.raw(Method::GET, &format!("{WS}/workflows/{id}/runs/{run}/events"), None, Vec::new()).await;
        assert_eq!(st, 200);
        assert_eq!(text.matches("event: step").count(), 6, "a late follower gets each step once, as it ended: {text}");
        assert!(text.trim_end().split("\n\n").last().unwrap().contains("event: end"), "{text}");

        // a missing path fails its step, naming the path; the later nodes are skipped
        let (st, v) = s.call(Method::PATCH, &format!("{WS}/workflows/{id}"), Some(json!({"nodes": [
            {"id": "echo", "type": "tool", "tool_name": "hb.post", "input": {"n": "{{input.n}}"}},
            {"id": "bad", "type": "tool", "tool_name": "hb.post", "input": {"x": "{{steps.echo.output.body.json.nope.deeper}}"}},
            {"id": "after", "type": "tool", "tool_name": "hb.ip"}]}))).await;
        assert_eq!(st, 200, "{v}");
        assert_eq!((v["undeployed_changes"].as_bool(), v["deployed_version"].as_i64()), (Some(true), Some(1)), "{v}");
        // runs keep using the deployed version until the next deploy
        let (_, still) = s.call(Method::POST, &format!("{WS}/workflows/{id}/runs"), Some(json!({"input": input}))).await;
        assert_eq!((still["version"].as_i64(), still["steps"].as_array().unwrap().len()), (Some(1), 6), "{still}");
        let w = deploy(&s, &id).await;
        assert_eq!(w["versions"].as_array().unwrap().len(), 2);
        let run = start(&s, &id, json!({"input": {"n": 1}})).await;
        let r = wait_end(&s, &id, &run, Duration::from_secs(30)).await;
        assert_eq!((r["status"].as_str(), r["version"].as_i64()), (Some("failed"), Some(2)), "{r}");
        let bad = step(&r, "bad");
        assert_eq!(bad["error"]["code"], "template_error", "{bad}");
        assert!(bad["error"]["message"].as_str().unwrap().contains("steps.echo.output.body.json.nope.deeper"), "{bad}");
        assert!(bad["error"]["message"].as_str().unwrap().contains("has no `nope`"), "{bad}");
        assert_eq!(step(&r, "after")["status"], "skipped");
        assert!(r["error"].as_str().unwrap().contains("step `bad` failed"), "{r}");
        // an upstream error status fails the step, with the answer kept
        let (st, v) = s.call(Method::PATCH, &format!("{WS}/workflows/{id}"), Some(json!({"nodes": [
            {"id": "teapot", "type": "tool", "tool_name": "hb.status", "input": {"code": 418}}]}))).await;
        assert_eq!(st, 200, "{v}");
        deploy(&s, &id).await;
        let run = start(&s, &id, json!({})).await;
        let r = wait_end(&s, &id, &run, Duration::from_secs(30)).await;
        let t = step(&r, "teapot");
        assert_eq!((t["status"].as_str(), t["error"]["code"].as_str(), t["output"]["status"].as_u64()), (Some("failed"), Some("upstream_status"), Some(418)), "{t}");

        // a graph: two branches at once, then a join reading both
        let g = create(&s, json!({"name": "Graph", "nodes": [
            {"id": "a", "type": "tool", "tool_name": "hb.delay", "input": {"n": 1}},
            {"id": "b", "type": "tool", "tool_name": "hb.delay", "input": {"n": 1}},
            {"id": "join", "type": "tool", "tool_name": "hb.post", "input": {"a": "{{steps.a.output.status}}", "b": "{{steps.b.output.status}}"}}],
            "edges": [{"from": "a", "to": "join"}, {"from": "b", "to": "join"}]})).await;
        deploy(&s, &g).await;
        let began = Instant::now();
        let run = start(&s, &g, json!({})).await;
        // followed live: the steps' starts, then their ends, then the run's end
        let (st, _, text) = s.raw(Method::GET, &format!("{WS}/workflows/{g}/runs/{run}/events"), None, Vec::new()).await;
        assert_eq!(st, 200);
        let events: Vec<Value> = text.split("\n\n").filter_map(|e| e.lines().find_map(|l| l.strip_prefix("data: "))).map(|d| serde_json::from_str(d).unwrap()).collect();
        let a_states: Vec<&str> = events.iter().filter(|e| e["id"] == "a").map(|e| e["status"].as_str().unwrap()).collect();
        assert_eq!(a_states, ["running", "succeeded"], "{text}");
        assert_eq!(events.last().unwrap()["status"], "succeeded", "{text}");
        let r = wait_end(&s, &g, &run, Duration::from_secs(30)).await;
        assert_eq!(r["status"], "succeeded", "{r}");
        assert!(began.elapsed() < Duration::from_millis(1900), "the branches ran at once: {:?}", began.elapsed());
        assert_eq!(r["output"]["body"]["json"], json!({"a": 200, "b": 200}));

        // an agent node whose run fails fails its step with the agent's words
        let f = create(&s, json!({"name": "Agent fails", "nodes": [{"id": "ask", "type": "agent", "agent": agent_id, "input": "fail me"}]})).await;
        deploy(&s, &f).await;
        let run = start(&s, &f, json!({})).await;
        let r = wait_end(&s, &f, &run, Duration::from_secs(30)).await;
        let ask = step(&r, "ask");
        assert_eq!((r["status"].as_str(), ask["error"]["code"].as_str()), (Some("failed"), Some("agent_failed")), "{r}");
        assert!(ask["error"]["message"].as_str().unwrap().contains("model refused"), "{ask}");

        // cancel a long run: it ends cancelled, its running step too
        let slow = create(&s, json!({"name": "Slow", "nodes": [{"id": "wait", "type": "tool", "tool_name": "hb.delay", "input": {"n": 8}},
            {"id": "never", "type": "tool", "tool_name": "hb.ip"}]})).await;
        deploy(&s, &slow).await;
        let run = start(&s, &slow, json!({})).await;
        tokio::time::sleep(Duration::from_millis(700)).await;
        let began = Instant::now();
        let (st, _) = s.call(Method::POST, &format!("{WS}/workflows/{slow}/runs/{run}/cancel"), None).await;
        assert_eq!(st, 202);
        let r = wait_end(&s, &slow, &run, Duration::from_secs(5)).await;
        assert!(began.elapsed() < Duration::from_secs(3), "stopped at once");
        assert_eq!((r["status"].as_str(), step(&r, "wait")["status"].as_str(), step(&r, "never")["status"].as_str()),
            (Some("cancelled"), Some("cancelled"), Some("cancelled")), "{r}");
        // the step under way says its call may have been made
        let last = step(&r, "wait")["attempts"].as_array().unwrap().last().cloned().unwrap();
        assert_eq!(last["outcome"], "cancelled", "{r}");
        assert!(last["note"].as_str().unwrap().contains("may have been made"), "{r}");
        let (st, v) = s.call(Method::POST, &format!("{WS}/workflows/{slow}/runs/{run}/cancel"), None).await;
        assert_eq!((st, v["code"].as_str()), (409, Some("run_ended")));
        // lists filter by status
        let (_, list) = s.call(Method::GET, &format!("{WS}/workflows/{slow}/runs?status=cancelled"), None).await;
        assert_eq!(list.as_array().unwrap().len(), 1, "{list}");
        let (_, list) = s.call(Method::GET, &format!("{WS}/workflows/{slow}/runs?status=succeeded"), None).await;
        assert!(list.as_array().unwrap().is_empty());
        let (st, _) = s.call(Method::GET, &format!("{WS}/workflows/{slow}/runs?status=weird"), None).await;
        assert_eq!(st, 422);
    }

    async fn workflows_are_checked_and_kept_to_their_workspace(db: Db) {
        let s = TestServer::start_with(BIN, db, local_upstreams(&[])).await;
        hb(&s, "hb", "static").await;
        let post = |nodes: Value| json!({"name": "W", "nodes": nodes});
        let bad = |body: Value| {
            let s = &s;
            async move {
                let (st, v) = s.call(Method::POST, &format!("{WS}/workflows"), Some(body)).await;
                (st, v.to_string())
            }
        };
        let tool = |id: &str, input: Value| json!({"id": id, "type": "tool", "tool_name": "hb.post", "input": input});
        // a cycle, an unknown node, a reused id, a template reaching a later node
        let (st, v) = bad(json!({"name": "W", "nodes": [tool("a", json!({})), tool("b", json!({}))],
            "edges": [{"from": "a", "to": "b"}, {"from": "b", "to": "a"}]})).await;
        assert!(st == 422 && v.contains("cycle"), "{st} {v}");
        let (st, v) = bad(json!({"name": "W", "nodes": [tool("a", json!({}))], "edges": [{"from": "a", "to": "ghost"}]})).await;
        assert!(st == 422 && v.contains("/edges/0/to"), "{st} {v}");
        let (st, v) = bad(post(json!([tool("a", json!({})), tool("a", json!({}))]))).await;
        assert!(st == 422 && v.contains("/nodes/1/id") && v.contains("unique"), "{st} {v}");
        let (st, v) = bad(post(json!([tool("a", json!({"x": "{{steps.b.output}}"})), tool("b", json!({}))]))).await;
        assert!(st == 422 && v.contains("/nodes/0/input/x") && v.contains("does not run before"), "{st} {v}");
        let (st, v) = bad(post(json!([tool("a", json!({"x": "{{steps.a.output}}"}))]))).await;
        assert!(st == 422 && v.contains("does not run before"), "a node cannot read itself: {st} {v}");
        let (st, v) = bad(post(json!([tool("a", json!({"x": "{{ nope }}"}))]))).await;
        assert!(st == 422 && v.contains("not a template"), "{st} {v}");
        let (st, v) = bad(post(json!([{"id": "a", "type": "script", "code": "rm -rf /"}]))).await;
        assert!(st == 422 && v.contains("/nodes/0"), "{st} {v}");
        // 10,000 nodes
        let many: Vec<Value> = (0..10_000).map(|i| json!({"id": format!("n{i}"), "type": "tool", "tool_name": "hb.ip"})).collect();
        let began = Instant::now();
        let (st, v) = bad(post(json!(many))).await;
        assert!((st == 422 && v.contains("at most 250 nodes")) || st == 413, "{st} {v}");
        assert!(began.elapsed() < Duration::from_secs(5));
        // a template 1 MB long, and a 1,000-deep input
        let (st, v) = bad(post(json!([tool("a", json!({"x": format!("{{{{input.{}}}}}", "a".repeat(1_000_000))}))]))).await;
        assert!(st == 413 || (st == 422 && v.contains("larger than 64 KiB")), "{st} {v}");
        let (st, v) = bad(post(json!([tool("a", json!({"x": format!("{{{{input.{}}}}}", "a".repeat(600))}))]))).await;
        assert!(st == 422 && v.contains("longer than 512"), "{st} {v}");
        let deep = format!("{}1{}", "[".repeat(1000), "]".repeat(1000));
        let (st, _, v) = s.raw(Method::POST, &format!("{WS}/workflows"), Some("application/json"),
            format!(r#"{{"name": "W", "nodes": [{{"id": "a", "type": "tool", "tool_name": "hb.ip", "input": {{"x": {deep}}}}}]}}"#).into_bytes()).await;
        assert!(st == 400 || st == 422, "{st} {v}");
        let mut nested = json!("{{input.x}}");
        for _ in 0..100 {
            nested = json!({"d": nested});
        }
        let (st, v) = bad(post(json!([tool("a", nested)]))).await;
        assert!(st == 422 && v.contains("deeper than 32"), "{st} {v}");
        // a good one; its run input must be JSON
        let id = create(&s, post(json!([tool("a", json!({"x": "{{input.x}}"}))]))).await;
        let (st, v) = s.call(Method::POST, &format!("{WS}/workflows"), Some(post(json!([])))).await;
        assert_eq!((st, v["code"].as_str()), (409, Some("workflow_name_taken")), "{v}");
        deploy(&s, &id).await;
        let (st, _, v) = s.raw(Method::POST, &format!("{WS}/workflows/{id}/runs"), Some("application/json"), b"{\"input\": nope".to_vec()).await;
        assert_eq!(st, 400, "{v}");
        let (st, _) = s.call(Method::POST, &format!("{WS}/workflows/{id}/runs"), Some(json!({"input": 1, "extra": 2}))).await;
        assert_eq!(st, 422);
        // tools that do not exist: a warning, and no deploy
        let ghost = create(&s, json!({"name": "Ghost", "nodes": [{"id": "g", "type": "tool", "tool_name": "nope.op"},
            {"id": "h", "type": "agent", "agent": "no-such-agent"}]})).await;
        let (_, v) = s.call(Method::GET, &format!("{WS}/workflows/{ghost}"), None).await;
        assert_eq!(v["warnings"].as_array().unwrap().len(), 2, "{v}");
        let (st, v) = s.call(Method::POST, &format!("{WS}/workflows/{ghost}/deploy"), None).await;
        assert_eq!((st, v["code"].as_str()), (422, Some("unknown_tools")), "{v}");
        // a run whose step finds a missing value fails with a message; the server is unharmed
        let run = start(&s, &id, json!({"input": {"y": 1}})).await;
        let r = wait_end(&s, &id, &run, Duration::from_secs(30)).await;
        assert!(step(&r, "a")["error"]["message"].as_str().unwrap().contains("`input` has no `x`"), "{r}");

        // members read and run; admins write; members see their own runs
        let (uid, member) = s.user("m@example.com").await;
        let (st, _) = s.call(Method::PUT, &format!("{WS}/members/{uid}"), Some(json!({"role": "member"}))).await;
        assert!(st == 200 || st == 201);
        let (st, _) = s.call_as(&member, Method::POST, &format!("{WS}/workflows"), Some(post(json!([])))).await;
        assert_eq!(st, 403);
        let (st, _) = s.call_as(&member, Method::PATCH, &format!("{WS}/workflows/{id}"), Some(json!({"name": "X"}))).await;
        assert_eq!(st, 403);
        let (st, _) = s.call_as(&member, Method::POST, &format!("{WS}/workflows/{id}/deploy"), None).await;
        assert_eq!(st, 403);
        let (st, _) = s.call_as(&member, Method::DELETE, &format!("{WS}/workflows/{id}"), None).await;
        assert_eq!(st, 403);
        let (st, mine) = s.call_as(&member, Method::POST, &format!("{WS}/workflows/{id}/runs"), Some(json!({"input": {"x": 2}}))).await;
        assert_eq!(st, 201, "{mine}");
        let (_, list) = s.call_as(&member, Method::GET, &format!("{WS}/workflows/{id}/runs"), None).await;
        assert_eq!(list.as_array().unwrap().len(), 1, "only the member's own run: {list}");
        let (st, _) = s.call_as(&member, Method::GET, &format!("{WS}/workflows/{id}/runs/{run}"), None).await;
        assert_eq!(st, 404, "not the admin's run");
        // another workspace sees nothing
        let (st, _) = s.call(Method::POST, "/api/workspaces", Some(json!({"slug": "other", "name": "Other"}))).await;
        assert_eq!(st, 201);
        let (ouid, outsider) = s.user("o@example.com").await;
        let (st, _) = s.call(Method::PUT, &format!("/api/workspaces/other/members/{ouid}"), Some(json!({"role": "admin"}))).await;
        assert!(st == 200 || st == 201);
        for (m, path) in [
            (Method::GET, format!("{WS}/workflows/{id}")),
            (Method::GET, format!("/api/workspaces/other/workflows/{id}")),
            (Method::GET, format!("/api/workspaces/other/workflows/{id}/runs/{run}")),
            (Method::POST, format!("/api/workspaces/other/workflows/{id}/runs")),
            (Method::POST, format!("/api/workspaces/other/workflows/{id}/deploy")),
            (Method::DELETE, format!("/api/workspaces/other/workflows/{id}")),
        ] {
            let (st, _) = s.call_as(&outsider, m.clone(), &path, Some(json!({"input": {}}))).await;
            assert_eq!(st, 404, "{m} {path}");
        }
        let (st, _) = s.call(Method::DELETE, &format!("{WS}/workflows/{id}"), None).await;
        assert_eq!(st, 204);
        let (st, _) = s.call(Method::GET, &format!("{WS}/workflows/{id}/runs/{run}"), None).await;
        assert_eq!(st, 404);
    }

    async fn connections_in_use_are_guarded(db: Db) {
        let s = TestServer::start_with(BIN, db, local_upstreams(&[])).await;
        hb(&s, "hb", "static").await;
        hb(&s, "spare", "static").await;
        let (st, agent) = s.call(Method::POST, &format!("{WS}/agents"), Some(json!({"name": "Looker", "provider": "openai",
            "model": "m", "tools": ["hb.ip", "web_search"]}))).await;
        assert_eq!(st, 201, "{agent}");
        let id = create(&s, json!({"name": "Uses hb", "nodes": [
            {"id": "a", "type": "tool", "tool_name": "hb.post", "input": {}},
            {"id": "b", "type": "tool", "tool_name": "hb.ip"}, {"id": "c", "type": "tool", "tool_name": "spare.ip"}]})).await;
        // a draft does not count; the deployed version does
        let (_, list) = s.call(Method::GET, &format!("{WS}/connections"), None).await;
        let used = |list: &Value, slug: &str| list.as_array().unwrap().iter().find(|c| c["slug"] == slug).unwrap()["used_by"].clone();
        assert_eq!(used(&list, "spare"), json!([]));
        deploy(&s, &id).await;
        let (_, list) = s.call(Method::GET, &format!("{WS}/connections"), None).await;
        let hb_used = used(&list, "hb");
        assert_eq!(hb_used.as_array().unwrap().len(), 2, "{hb_used}");
        assert!(hb_used.as_array().unwrap().contains(&json!({"kind": "agent", "id": agent["id"], "name": "Looker", "tools": ["hb.ip"]})), "{hb_used}");
        assert!(hb_used.as_array().unwrap().contains(&json!({"kind": "workflow", "id": id, "name": "Uses hb", "tools": ["hb.post", "hb.ip"]})), "{hb_used}");
        let (_, one) = s.call(Method::GET, &format!("{WS}/connections/spare"), None).await;
        assert_eq!(one["used_by"], json!([{"kind": "workflow", "id": id, "name": "Uses hb", "tools": ["spare.ip"]}]));

        // rename and delete refused with the list; other edits go through
        let (st, v) = s.call(Method::PATCH, &format!("{WS}/connections/hb"), Some(json!({"slug": "hb2"}))).await;
        assert_eq!((st, v["code"].as_str()), (409, Some("in_use")), "{v}");
        assert_eq!(v["used_by"].as_array().unwrap().len(), 2, "{v}");
        let (st, v) = s.call(Method::PATCH, &format!("{WS}/connections/hb"), Some(json!({"name": "Renamed only"}))).await;
        assert_eq!(st, 200, "{v}");
        let (st, v) = s.call(Method::DELETE, &format!("{WS}/connections/spare"), None).await;
        assert_eq!((st, v["code"].as_str()), (409, Some("in_use")), "{v}");
        assert_eq!(v["used_by"][0]["tools"], json!(["spare.ip"]));
        assert!(v["detail"].as_str().unwrap().contains("Uses hb"), "{v}");
        // forced: gone, and the run fails at the node calling it, naming the slug
        let (st, _) = s.call(Method::DELETE, &format!("{WS}/connections/spare?force=true"), None).await;
        assert_eq!(st, 204);
        let run = start(&s, &id, json!({})).await;
        let r = wait_end(&s, &id, &run, Duration::from_secs(30)).await;
        assert_eq!((step(&r, "a")["status"].as_str(), step(&r, "b")["status"].as_str()), (Some("succeeded"), Some("succeeded")), "{r}");
        let c = step(&r, "c");
        assert_eq!((c["status"].as_str(), c["error"]["code"].as_str()), (Some("failed"), Some("tool_not_found")), "{c}");
        assert!(c["error"]["message"].as_str().unwrap().contains("spare"), "{c}");
        // a forced rename: the agent and the workflow name a slug that is gone
        let (st, v) = s.call(Method::PATCH, &format!("{WS}/connections/hb?force=true"), Some(json!({"slug": "hb2"}))).await;
        assert_eq!((st, v["slug"].as_str()), (200, Some("hb2")), "{v}");
        assert_eq!(v["used_by"], json!([]));
        let run = start(&s, &id, json!({})).await;
        let r = wait_end(&s, &id, &run, Duration::from_secs(30)).await;
        assert_eq!(step(&r, "a")["error"]["code"], "tool_not_found", "{r}");
        // nothing names hb2: deleted without force
        let (st, _) = s.call(Method::DELETE, &format!("{WS}/connections/hb2"), None).await;
        assert_eq!(st, 204);
    }

    async fn a_run_survives_its_server(db: Db) {
        // SIGKILL the only server in the middle of a run; started again, it finishes the run
        let mut options = local_upstreams(&[("CHATTERFLY_WORKFLOW_LEASE_MS", "1500")]);
        options.env.push(("INTEGRATION_ENCRYPTION_KEY".into(), random_key()));
        let s = TestServer::start_with(BIN, db, options.clone()).await;
        hb(&s, "hb", "static").await;
        let id = create(&s, json!({"name": "Two slow", "nodes": [
            {"id": "first", "type": "tool", "tool_name": "hb.delay", "input": {"n": 1}},
            {"id": "second", "type": "tool", "tool_name": "hb.delay", "input": {"n": 2}},
            {"id": "careful", "type": "tool", "tool_name": "hb.ip", "on_interrupt": "fail"}]})).await;
        deploy(&s, &id).await;
        let run = start(&s, &id, json!({})).await;
        // wait until the second step is under way, then kill
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let (_, r) = s.call(Method::GET, &format!("{WS}/workflows/{id}/runs/{run}"), None).await;
            if step(&r, "second")["status"] == "running" {
                break;
            }
            assert!(Instant::now() < deadline, "{r}");
            tokio::time::sleep(Duration::from_millis(30)).await;
        }
        let (tdb, _) = s.stop();
        let s = TestServer::spawn(Path::new(BIN), tdb, &options).unwrap();
        let r = wait_end(&s, &id, &run, Duration::from_secs(30)).await;
        assert_eq!(r["status"], "succeeded", "{r}");
        assert_eq!(r["claims"], 2, "{r}");
        assert_eq!(step(&r, "first")["attempts"].as_array().unwrap().len(), 1, "a finished step is not run again: {r}");
        let attempts = step(&r, "second")["attempts"].as_array().unwrap().clone();
        assert_eq!(attempts.len(), 2, "{r}");
        assert_eq!(attempts[0]["outcome"], "interrupted");
        assert!(attempts[0]["note"].as_str().unwrap().contains("may have been made"));
        assert_eq!(attempts[1]["outcome"], "succeeded");
        assert_ne!(attempts[0]["replica"], attempts[1]["replica"]);
    }
}

db_tests! {
    async fn workflows_are_built_deployed_and_run_in_chromium(db: Db) {
        let s = TestServer::start_with(BIN, db, local_upstreams(&[])).await;
        // the 2-second delay lasts until the page has been seen following the run
        let (held, release) = held_delays().await;
        hb_at(&s, "hb", "static", &held).await;
        let b = Browser::open().await;
        b.client.goto(&format!("{}/login", s.url)).await.unwrap();
        b.fill("#token", &s.token).await;
        b.click("#token-form button[type=submit]").await;
        b.wait_path("/connections").await;

        // build: three tool nodes, each tool picked from the picker; the third reads the first
        b.click("header nav a[href='/workflows']").await;
        b.wait_text(".count", "No workflows yet").await;
        b.click("#new-workflow").await;
        b.wait_path("/workflows/new").await;
        b.fill("#workflow-name", "Greeter").await;
        b.click("#add-tool-node").await;
        b.wait_text("#inspector h3", "step1").await;
        b.fill("#tool-search", "post").await;
        b.click("label.pick[data-tool='hb.post'] input").await;
        b.wait_text("#picked-count", "Chosen: hb.post").await;
        b.wait_text("#node-list li[data-node=step1]", "hb.post").await;
        b.fill("#node-input", r#"{"name": "{{input.name}}", "n": "{{input.n}}"}"#).await;
        b.click("#add-tool-node").await;
        b.wait_text("#inspector h3", "step2").await;
        b.click("label.pick[data-tool='hb.delay'] input").await;
        b.wait_text("#tool-schema", "\"n\"").await;
        b.click("#fill-from-schema").await;
        let filled = b.wait("#node-input").await.prop("value").await.unwrap().unwrap_or_default();
        assert!(filled.contains("\"n\": 0"), "a skeleton from the schema: {filled}");
        b.fill("#node-input", r#"{"n": 2}"#).await;
        b.click("#add-tool-node").await;
        b.wait_text("#inspector h3", "step3").await;
        b.click("label.pick[data-tool='hb.post'] input").await;
        // the hints offer the nodes before this one
        b.wait("#template-hints [data-template='{{steps.step1.output}}']").await;
        b.wait("#template-hints [data-template='{{steps.step2.output}}']").await;
        b.fill("#node-input", r#"{"greeting": "Hello {{steps.step1.output.body.json.name}}", "n": "{{steps.step1.output.body.json.n}}"}"#).await;
        b.client.execute("document.querySelector('.flow-editor').scrollIntoView()", vec![]).await.unwrap();
        b.screenshot("workflow-editor").await;
        b.click("#save-workflow").await;
        b.wait_text("main", "Created. Deploy it to run it.").await;
        let url = b.client.current_url().await.unwrap();
        let id = url.path().rsplit('/').next().unwrap().to_owned();
        let (_, saved) = s.call(Method::GET, &format!("{WS}/workflows/{id}"), None).await;
        let tools: Vec<&str> = saved["nodes"].as_array().unwrap().iter().map(|n| n["tool_name"].as_str().unwrap()).collect();
        assert_eq!(tools, ["hb.post", "hb.delay", "hb.post"], "{saved}");
        assert_eq!(saved["nodes"][2]["input"]["n"], "{{steps.step1.output.body.json.n}}");
        b.wait_text("#run-workflow", "Deploy to run").await;

        // deploy, then run with an input form that names what the nodes read
        b.click("#deploy-workflow").await;
        b.wait_text("#deploy-state", "Deployed: v1").await;
        b.wait_text("#run-workflow", "Run v1").await;
        let prefilled = b.wait("#workflow-run-input").await.prop("value").await.unwrap().unwrap_or_default();
        assert!(prefilled.contains("\"name\"") && prefilled.contains("\"n\""), "{prefilled}");
        b.fill("#workflow-run-input", r#"{"name": "Ada", "n": 3}"#).await;
        b.click("#run-workflow").await;
        // the run view follows the steps live: the slow one shows running first
        b.wait_text_within("#steps li[data-node=step2] .step-status", "Running", 10).await;
        let status = b.wait("#run-status .run-status").await.attr("data-status").await.unwrap();
        assert_eq!(status.as_deref(), Some("running"));
        b.wait_text("#steps li[data-node=step1] .step-status", "Succeeded").await;
        let _ = release.send(true);
        b.wait_text_within("#run-status", "Succeeded", 20).await;
        b.wait_text("#steps li[data-node=step3] .step-status", "Succeeded").await;
        b.wait_text("#run-end", "Hello Ada").await;
        b.screenshot("workflow-run").await;
        let run_id = b.client.current_url().await.unwrap().path().rsplit('/').next().unwrap().to_owned();
        let (_, r) = s.call(Method::GET, &format!("{WS}/workflows/{id}/runs/{run_id}"), None).await;
        assert_eq!(step(&r, "step3")["output"]["body"]["json"], json!({"greeting": "Hello Ada", "n": 3}), "{r}");

        // the workflow lists its run; a bad node id is shown at its node
        b.click(&format!("a[href='/workflows/{id}']")).await;
        b.wait_text(&format!("#runs tr[data-run='{run_id}']"), "Succeeded").await;
        b.click("#node-list li[data-node=step2] .node-pick").await;
        b.fill("#node-id", "bad id").await;
        b.click("#save-workflow").await;
        b.wait_text("#workflow-form", "Node bad id (id)").await;
        b.wait("#node-list li.node.invalid").await;

        // the hub shows what uses each connection; deleting it is refused with the list
        b.client.goto(&format!("{}/connections", s.url)).await.unwrap();
        b.wait_text("#connections tr[data-slug=hb] td.used-by", "Workflow Greeter").await;
        b.client.goto(&format!("{}/connections/hb", s.url)).await.unwrap();
        b.wait_text(&format!("#used-by li[data-id='{id}']"), "hb.delay").await;
        b.fill("#confirm-slug", "hb").await;
        b.click("#delete-connection").await;
        b.wait_text(".danger-zone .notice", "Greeter").await;
        b.wait("#delete-anyway").await;
        let (st, _) = s.call(Method::GET, &format!("{WS}/connections/hb"), None).await;
        assert_eq!(st, 200, "still there");
        let page = b.client.source().await.unwrap();
        assert!(!page.contains("CANARY"));
        b.close().await;

        // a member sees the definition and runs it, without admin controls; hostile text stays text
        const XSS: &str = "<img src=x onerror=alert(1)>";
        let (st, v) = s.call(Method::PATCH, &format!("{WS}/workflows/{id}"), Some(json!({"name": format!("Greeter {XSS}")}))).await;
        assert_eq!(st, 200, "{v}");
        let (uid, member) = s.user("member@example.com").await;
        let (st, v) = s.call(Method::PUT, &format!("{WS}/members/{uid}"), Some(json!({"role": "member"}))).await;
        assert!(st == 200 || st == 201, "{v}");
        let m = Browser::open().await;
        m.client.goto(&format!("{}/login", s.url)).await.unwrap();
        m.fill("#token", &member).await;
        m.click("#token-form button[type=submit]").await;
        m.wait_path("/connections").await;
        m.client.goto(&format!("{}/workflows/{id}", s.url)).await.unwrap();
        m.wait_text("main h1", XSS).await;
        m.wait_text("#workflow-summary", "hb.delay").await;
        for admin_only in ["#workflow-form", "#delete-workflow", "#deploy-workflow", "#run-participant"] {
            assert!(m.client.find_all(Locator::Css(admin_only)).await.unwrap().is_empty(), "a member sees {admin_only}");
        }
        m.fill("#workflow-run-input", r#"{"name": "<b>Bo</b>", "n": 1}"#).await;
        m.click("#run-workflow").await;
        m.wait_text_within("#run-status", "Succeeded", 20).await;
        m.wait_text("#run-end", "Hello <b>Bo</b>").await;
        assert!(m.client.find_all(Locator::Css("main img, #run-end b")).await.unwrap().is_empty(), "no element from text");
        assert!(!m.dialog_open().await);
        m.close().await;
    }

    async fn workflow_runs_leak_no_credential(db: Db) {
        use super::canary::{assert_clean, assert_sqlite_files_clean, forms, postgres_dump};
        let mut options = local_upstreams(&[]);
        options.rust_log = "trace".into();
        let s = TestServer::start_with(BIN, db, options).await;
        let tag = uuid::Uuid::new_v4().simple().to_string();
        let run_cred = format!("CANARY{tag}runcred");
        let static_key = format!("CANARY{tag}static");
        let mine = format!("CANARY{tag}mykey");
        let forms = forms(&[run_cred.clone(), static_key.clone(), mine.clone()]);
        hb(&s, "mine", "caller").await;
        // a caller connection given per run, one with the starting user's own key, and a static one
        hb(&s, "perrun", "caller").await;
        let (st, v) = s.call(Method::POST, &format!("{WS}/connections"), Some(json!({"name": "Static", "slug": "st",
            "service_type": "http", "base_url": httpbin_url(), "auth": {"type": "api_key_header", "header": "X-Key", "key": static_key},
            "operations": [{"name": "post", "method": "POST", "path": "/anything"}]}))).await;
        assert_eq!(st, 201, "{v}");
        let (st, v) = s.call(Method::PUT, &format!("{WS}/connections/mine/my-credentials"), Some(json!({"token": mine}))).await;
        assert!(st == 200 || st == 204, "{v}");
        let id = create(&s, json!({"name": "Echo secrets", "nodes": [
            {"id": "a", "type": "tool", "tool_name": "perrun.post", "input": {"note": "{{input.note}}"}},
            {"id": "b", "type": "tool", "tool_name": "st.post", "input": {"seen": "{{steps.a.output.body.headers}}"}},
            {"id": "c", "type": "tool", "tool_name": "mine.post", "input": {"seen": "{{steps.b.output.body.headers}}", "text": "a said {{steps.a.output.body}}"}}]})).await;
        deploy(&s, &id).await;
        // credentials for a connection the workflow does not call: refused
        let (st, v) = s.call(Method::POST, &format!("{WS}/workflows/{id}/runs"), Some(json!({"input": {}, "credentials": {"st": {"token": "x"}}}))).await;
        assert_eq!(st, 422, "{v}");
        let run = start(&s, &id, json!({"input": {"note": "hello"}, "credentials": {"perrun": {"token": run_cred}}})).await;
        let r = wait_end(&s, &id, &run, Duration::from_secs(30)).await;
        assert_eq!(r["status"], "succeeded", "{r}");
        let mut seen = r.to_string();
        // httpbin echoed each key back: each shows redacted
        assert_eq!(step(&r, "a")["output"]["body"]["headers"]["Authorization"], "Bearer [REDACTED]", "{r}");
        assert_eq!(step(&r, "b")["output"]["body"]["headers"]["X-Key"], "[REDACTED]", "{r}");
        assert_eq!(step(&r, "c")["output"]["body"]["headers"]["Authorization"], "Bearer [REDACTED]", "{r}");
        let (_, _, events) = s.raw(Method::GET, &format!("{WS}/workflows/{id}/runs/{run}/events"), None, Vec::new()).await;
        seen.push_str(&events);
        let (_, list) = s.call(Method::GET, &format!("{WS}/workflows/{id}/runs"), None).await;
        seen.push_str(&list.to_string());
        let (_, audit) = s.call(Method::GET, &format!("{WS}/audit?run={run}"), None).await;
        assert_eq!(audit["events"].as_array().unwrap().len(), 3, "{audit}");
        seen.push_str(&audit.to_string());
        let (_, w) = s.call(Method::GET, &format!("{WS}/workflows/{id}"), None).await;
        seen.push_str(&w.to_string());
        assert!(seen.matches("[REDACTED]").count() >= 6 && seen.len() > 5_000, "the check can fail");
        assert_clean("the workflow API's answers and events", &seen, &forms);
        let (tdb, logs) = s.stop();
        assert!(logs.contains("TRACE") || logs.contains("DEBUG"), "logs at a verbose level");
        assert_clean("the server logs", &logs, &forms);
        match db {
            Db::Sqlite => {
                assert_sqlite_files_clean(tdb.dir.path(), &forms);
            }
            Db::Postgres => {
                let dump = postgres_dump(&tdb.url).await;
                assert!(dump.contains("workflow_run") || dump.contains("Echo secrets"), "the dump holds the runs");
                assert_clean("the PostgreSQL rows", &dump, &forms);
                // the run's sealed credentials went with its end
                let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(&tdb.url).await.unwrap();
                let left: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM workflow_runs WHERE credentials_sealed IS NOT NULL")
                    .fetch_one(&mut conn).await.unwrap();
                assert_eq!(left, 0);
            }
        }
    }
}

/// A local upstream answering `GET /big/{mb}` with a JSON document of that many MiB,
/// streamed (this process holds one chunk at a time), and `GET /kib/{n}` with one of about
/// that many KiB; its URL.
async fn big_upstream() -> String {
    use axum::routing::get;
    let app = axum::Router::new().route(
        "/kib/{n}",
        get(|axum::extract::Path(n): axum::extract::Path<usize>| async move {
            axum::Json(json!({"data": "y".repeat(n * 1024)}))
        }),
    );
    let app = app.route(
        "/big/{mb}",
        get(|axum::extract::Path(mb): axum::extract::Path<usize>| async move {
            let chunk = bytes::Bytes::from(vec![b'x'; 1024 * 1024]);
            let body = futures::stream::iter(
                std::iter::once(Ok::<_, std::io::Error>(bytes::Bytes::from_static(b"{\"data\":\"")))
                    .chain(std::iter::repeat_n(chunk, mb).map(Ok))
                    .chain(std::iter::once(Ok(bytes::Bytes::from_static(b"\"}")))),
            );
            (
                [("content-type", "application/json")],
                axum::body::Body::from_stream(body),
            )
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}")
}

db_tests! {
    async fn huge_outputs_and_participants(db: Db) {
        let up = big_upstream().await;
        let s = TestServer::start_with(BIN, db, local_upstreams(&[])).await;
        let (st, v) = s.call(Method::POST, &format!("{WS}/connections"), Some(json!({"name": "Big", "slug": "big",
            "service_type": "http", "base_url": up, "operations": [{"name": "get", "method": "GET", "path": "/big/{{mb}}",
            "input_schema": {"type": "object", "properties": {"mb": {"type": "integer"}}, "required": ["mb"]}},
            {"name": "kib", "method": "GET", "path": "/kib/{{n}}",
            "input_schema": {"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]}}]}))).await;
        assert_eq!(st, 201, "{v}");
        // a 600 KiB output is kept; it is redacted twice off the async workers: as the
        // call's answer (in the workspace's lane) and as the step's output (in its runs' lane)
        let kib = create(&s, json!({"name": "Kib", "nodes": [{"id": "k", "type": "tool", "tool_name": "big.kib", "input": {"n": 600}}]})).await;
        deploy(&s, &kib).await;
        let jobs = metric(&s, "chatterfly_large_answer_jobs_total").await;
        let run = start(&s, &kib, json!({})).await;
        let r = wait_end(&s, &kib, &run, Duration::from_secs(60)).await;
        assert_eq!(r["status"], "succeeded", "{}", &r.to_string()[..500]);
        assert_eq!(step(&r, "k")["output"]["body"]["data"].as_str().map(str::len), Some(600 * 1024));
        assert_eq!(metric(&s, "chatterfly_large_answer_jobs_total").await - jobs, 2.0);
        // 100 MB: cut by the outbound limit; 5 MB: past what a step keeps; the node reading it never runs
        let id = create(&s, json!({"name": "Big", "nodes": [
            {"id": "big", "type": "tool", "tool_name": "big.get", "input": {"mb": "{{input.mb}}"}},
            {"id": "read", "type": "tool", "tool_name": "big.get", "input": {"mb": 1, "x": "{{steps.big.output.body.data}}"}}]})).await;
        deploy(&s, &id).await;
        for (mb, code) in [(100, "upstream_too_large"), (5, "output_too_large")] {
            let run = start(&s, &id, json!({"input": {"mb": mb}})).await;
            let r = wait_end(&s, &id, &run, Duration::from_secs(60)).await;
            let big = step(&r, "big");
            assert_eq!((r["status"].as_str(), big["status"].as_str()), (Some("failed"), Some("failed")), "{mb} MB: {big}");
            assert_eq!(big["error"]["code"], code, "{mb} MB: {big}");
            assert!(big["error"]["message"].as_str().unwrap().len() < 1000, "a message, not the output");
            assert_eq!(step(&r, "read")["status"], "skipped");
            assert!(r.to_string().len() < 20_000, "the record stays small: {} bytes", r.to_string().len());
        }
        let (st, _) = s.call(Method::GET, "/api/health", None).await;
        assert_eq!(st, 200, "the server is unharmed");

        // on behalf of a participant: their key reaches httpbin, redacted in the record
        assert_eq!(s.call(Method::POST, &format!("{WS}/participant-roles"), Some(json!({"name": "customer"}))).await.0, 201);
        let (st, v) = s.call(Method::POST, &format!("{WS}/connections"), Some(json!({"name": "CRM", "slug": "crm",
            "service_type": "http", "base_url": httpbin_url(), "auth": {"type": "api_key_header", "header": "X-Api-Key"},
            "fulfillment": "participant", "participant_role": "customer",
            "operations": [{"name": "headers", "method": "GET", "path": "/headers"}]}))).await;
        assert_eq!(st, 201, "{v}");
        let crm = create(&s, json!({"name": "CRM", "nodes": [{"id": "h", "type": "tool", "tool_name": "crm.headers"}]})).await;
        deploy(&s, &crm).await;
        let (st, p) = s.call(Method::POST, &format!("{WS}/participants"), Some(json!({"name": "Pat", "role": "customer"}))).await;
        assert_eq!(st, 201, "{p}");
        let pid = p["id"].as_str().unwrap().to_owned();
        let run = start(&s, &crm, json!({"participant": pid})).await;
        let r = wait_end(&s, &crm, &run, Duration::from_secs(30)).await;
        assert_eq!(step(&r, "h")["error"]["code"], "credentials_required", "{r}");
        assert!(step(&r, "h")["error"]["message"].as_str().unwrap().contains(pid.as_str()), "names the participant: {r}");
        let token = p["onboarding_url"].as_str().unwrap().rsplit('/').next().unwrap().to_owned();
        let resp = super::accounts::no_redirects().put(format!("{}/api/onboarding/connections/crm", s.url))
            .header("x-onboarding-token", &token).json(&json!({"key": "pat-crm-key-123"})).send().await.unwrap();
        assert!(resp.status().is_success());
        let run = start(&s, &crm, json!({"participant": pid})).await;
        let r = wait_end(&s, &crm, &run, Duration::from_secs(30)).await;
        assert_eq!((r["status"].as_str(), r["participant_id"].as_str()), (Some("succeeded"), Some(pid.as_str())), "{r}");
        assert_eq!(step(&r, "h")["output"]["body"]["headers"]["X-Api-Key"], "[REDACTED]", "httpbin got Pat's key: {r}");
        let (_, audit) = s.call(Method::GET, &format!("{WS}/audit?run={run}"), None).await;
        assert_eq!(audit["events"][0]["participant_id"], pid.as_str(), "{audit}");
        // no such participant: 404
        let (st, v) = s.call(Method::POST, &format!("{WS}/workflows/{crm}/runs"), Some(json!({"participant": "nobody-like-this"}))).await;
        assert_eq!((st, v["code"].as_str()), (404, Some("participant_not_found")), "{v}");
    }
}

db_tests! {
    async fn one_workspaces_backlog_leaves_workers_to_others(db: Db) {
        let s = TestServer::start_with(BIN, db, local_upstreams(&[("CHATTERFLY_WORKFLOW_WORKSPACE_SHARE", "2")])).await;
        hb(&s, "hb", "static").await;
        let slow = create(&s, json!({"name": "Slow", "nodes": [{"id": "w", "type": "tool", "tool_name": "hb.delay", "input": {"n": 3}}]})).await;
        deploy(&s, &slow).await;
        let mut flood = Vec::new();
        for _ in 0..8 {
            flood.push(start(&s, &slow, json!({})).await);
        }
        // another workspace, its own connection and a quick workflow
        let (st, _) = s.call(Method::POST, "/api/workspaces", Some(json!({"slug": "other", "name": "Other"}))).await;
        assert_eq!(st, 201);
        let other = "/api/workspaces/other";
        let (st, v) = s.call(Method::POST, &format!("{other}/connections"), Some(json!({"name": "HB", "slug": "hb",
            "service_type": "http", "base_url": httpbin_url(), "operations": [{"name": "ip", "method": "GET", "path": "/ip"}]}))).await;
        assert_eq!(st, 201, "{v}");
        let (st, w) = s.call(Method::POST, &format!("{other}/workflows"), Some(json!({"name": "Quick",
            "nodes": [{"id": "ip", "type": "tool", "tool_name": "hb.ip"}]}))).await;
        assert_eq!(st, 201, "{w}");
        let quick = w["id"].as_str().unwrap();
        assert_eq!(s.call(Method::POST, &format!("{other}/workflows/{quick}/deploy"), None).await.0, 201);
        tokio::time::sleep(Duration::from_millis(500)).await;
        let began = Instant::now();
        let (st, r) = s.call(Method::POST, &format!("{other}/workflows/{quick}/runs"), Some(json!({}))).await;
        assert_eq!(st, 201, "{r}");
        let run = r["id"].as_str().unwrap();
        loop {
            let (_, r) = s.call(Method::GET, &format!("{other}/workflows/{quick}/runs/{run}"), None).await;
            if r["status"] == "succeeded" {
                break;
            }
            assert!(began.elapsed() < Duration::from_secs(2), "waited behind the other workspace's backlog: {r}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        // the flooding workspace had at most its share running at once
        let (_, list) = s.call(Method::GET, &format!("{WS}/workflows/{slow}/runs?status=running"), None).await;
        assert!(list.as_array().unwrap().len() <= 2, "{list}");
        // a run queued behind the backlog whose starter leaves the workspace meanwhile does
        // not run on their behalf
        let (uid, member) = s.user("leaver@example.com").await;
        assert!(s.call(Method::PUT, &format!("{WS}/members/{uid}"), Some(json!({"role": "member"}))).await.0 < 300);
        let (st, queued) = s.call_as(&member, Method::POST, &format!("{WS}/workflows/{slow}/runs"), Some(json!({}))).await;
        assert_eq!((st, queued["status"].as_str()), (201, Some("queued")), "{queued}");
        let (st, _) = s.call(Method::DELETE, &format!("{WS}/members/{uid}"), None).await;
        assert!(st < 300);
        for run in &flood {
            s.call(Method::POST, &format!("{WS}/workflows/{slow}/runs/{run}/cancel"), None).await;
        }
        let r = wait_end(&s, &slow, queued["id"].as_str().unwrap(), Duration::from_secs(30)).await;
        assert_eq!(r["status"], "failed", "{r}");
        assert!(r["error"].as_str().unwrap().contains("no longer a member"), "{r}");
        assert!(step(&r, "w")["attempts"].as_array().unwrap().is_empty(), "not called: {r}");
    }
}

/// A cancel asked on either of two replicas stops a run before its next step, without
/// waiting for the replica running it to renew its lease (30 s here).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancel_on_another_replica_stops_the_next_step() {
    let db = fresh_database(Db::Postgres).await;
    let mut options = local_upstreams(&[("CHATTERFLY_WORKFLOW_LEASE_MS", "30000")]);
    options.env.push(("INTEGRATION_ENCRYPTION_KEY".into(), random_key()));
    let a = TestServer::spawn(Path::new(BIN), super::replicas::same_database(&db), &options).unwrap();
    let b = TestServer::spawn(Path::new(BIN), super::replicas::same_database(&db), &options).unwrap();
    hb(&a, "hb", "static").await;
    let id = create(
        &a,
        json!({"name": "Two", "nodes": [
        {"id": "wait", "type": "tool", "tool_name": "hb.delay", "input": {"n": 1}},
        {"id": "never", "type": "tool", "tool_name": "hb.ip"}]}),
    )
    .await;
    deploy(&a, &id).await;
    for i in 0..4 {
        let run = start(&a, &id, json!({})).await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        // through each replica in turn: half the time not the one running it
        let s = if i % 2 == 0 { &a } else { &b };
        let (st, _) = s
            .call(Method::POST, &format!("{WS}/workflows/{id}/runs/{run}/cancel"), None)
            .await;
        assert_eq!(st, 202);
        let r = wait_end(&b, &id, &run, Duration::from_secs(5)).await;
        assert_eq!(
            (r["status"].as_str(), step(&r, "never")["status"].as_str()),
            (Some("cancelled"), Some("cancelled")),
            "{r}"
        );
        assert!(
            step(&r, "never")["attempts"].as_array().unwrap().is_empty(),
            "never called: {r}"
        );
    }
}

/// Two replicas on one PostgreSQL database run 200 workflow runs between them; one is
/// killed (SIGKILL) in the middle; the other finishes every run, and the attempts say which
/// steps may have run twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_share_runs_and_outlive_a_kill() {
    let db = fresh_database(Db::Postgres).await;
    let mut options = local_upstreams(&[
        ("CHATTERFLY_WORKFLOW_LEASE_MS", "2000"),
        ("CHATTERFLY_WORKFLOW_WORKERS", "12"),
    ]);
    options.env.push(("INTEGRATION_ENCRYPTION_KEY".into(), random_key()));
    let a = TestServer::spawn(Path::new(BIN), super::replicas::same_database(&db), &options).unwrap();
    let b = TestServer::spawn(Path::new(BIN), super::replicas::same_database(&db), &options).unwrap();
    hb(&a, "hb", "static").await;
    let id = create(
        &a,
        json!({"name": "Three", "nodes": [
        {"id": "echo", "type": "tool", "tool_name": "hb.post", "input": {"i": "{{input.i}}"}},
        {"id": "wait", "type": "tool", "tool_name": "hb.delay", "input": {"n": 0.5}},
        {"id": "again", "type": "tool", "tool_name": "hb.post", "input": {"i": "{{steps.echo.output.body.json.i}}"}}]}),
    )
    .await;
    deploy(&a, &id).await;
    let mut runs = Vec::new();
    for i in 0..200 {
        let server = if i % 2 == 0 { &a } else { &b };
        runs.push(start(server, &id, json!({"input": {"i": i}})).await);
    }
    // mid-way: some runs done, many to go
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (_, done) = b
            .call(
                Method::GET,
                &format!("{WS}/workflows/{id}/runs?status=succeeded&limit=200"),
                None,
            )
            .await;
        if done.as_array().unwrap().len() >= 30 {
            break;
        }
        assert!(Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let killed_at = Instant::now();
    let (_, a_log) = a.stop();
    assert!(a_log.contains("workflow run ended"), "replica a had run some");
    // every run finishes, on b
    let mut resumed_after = None;
    for (i, run) in runs.iter().enumerate() {
        let r = wait_end(&b, &id, run, Duration::from_secs(120)).await;
        assert_eq!(r["status"], "succeeded", "{r}");
        assert_eq!(step(&r, "again")["output"]["body"]["json"]["i"], json!(i), "{r}");
        for st in r["steps"].as_array().unwrap() {
            let attempts = st["attempts"].as_array().unwrap();
            assert!(
                !attempts.is_empty() && attempts.last().unwrap()["outcome"] == "succeeded",
                "{st}"
            );
            // a step run more than once says why
            for earlier in &attempts[..attempts.len() - 1] {
                assert_eq!(earlier["outcome"], "interrupted", "{st}");
            }
        }
        if r["claims"].as_i64().unwrap() > 1 && resumed_after.is_none() {
            resumed_after = Some(killed_at.elapsed());
        }
    }
    let (_, all) = b
        .call(Method::GET, &format!("{WS}/workflows/{id}/runs?limit=200"), None)
        .await;
    let taken_over = all
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["claims"].as_i64().unwrap() > 1)
        .count();
    assert!(taken_over > 0, "replica a held runs when it was killed");
    let mut twice = 0;
    for run in &runs {
        let (_, r) = b
            .call(Method::GET, &format!("{WS}/workflows/{id}/runs/{run}"), None)
            .await;
        twice += r["steps"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|s| s["attempts"].as_array().unwrap().len() > 1)
            .count();
    }
    assert!(
        twice > 0,
        "the steps replica a had under way were run again, and say so"
    );
    eprintln!("taken over: {taken_over} runs, {twice} steps run twice; first resumed within {resumed_after:?}");
}
