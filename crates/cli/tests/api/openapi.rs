//! The API describes itself: `/api/openapi.json` is OpenAPI 3.1 and lists every route, and
//! every route it lists exists.

use super::*;

/// The routes of SPEC section 4 built so far, plus the extras this server adds.
pub const EXPECTED: &[(&str, &str)] = &[
    ("get", "/api/health"),
    ("get", "/api/health/ready"),
    ("get", "/api/me"),
    ("post", "/api/auth/login"),
    ("get", "/api/auth/session"),
    ("post", "/api/auth/logout"),
    ("post", "/api/workspaces"),
    ("get", "/api/workspaces"),
    ("get", "/api/workspaces/{ws}"),
    ("post", "/api/users"),
    ("get", "/api/users"),
    ("post", "/api/users/{id}/tokens"),
    ("get", "/api/users/{id}/tokens"),
    ("delete", "/api/users/{id}/tokens/{token_id}"),
    ("get", "/api/workspaces/{ws}/members"),
    ("put", "/api/workspaces/{ws}/members/{user_id}"),
    ("delete", "/api/workspaces/{ws}/members/{user_id}"),
    ("post", "/api/workspaces/{ws}/invitations"),
    ("get", "/api/workspaces/{ws}/invitations"),
    ("delete", "/api/workspaces/{ws}/invitations/{id}"),
    ("get", "/api/me/invitations"),
    ("post", "/api/me/invitations/{id}/accept"),
    ("get", "/api/workspaces/{ws}/connections"),
    ("post", "/api/workspaces/{ws}/connections"),
    ("get", "/api/workspaces/{ws}/connections/{slug}"),
    ("patch", "/api/workspaces/{ws}/connections/{slug}"),
    ("delete", "/api/workspaces/{ws}/connections/{slug}"),
    ("post", "/api/workspaces/{ws}/connections/import/openapi"),
    ("post", "/api/workspaces/{ws}/connections/validate"),
    ("get", "/api/workspaces/{ws}/connections/{slug}/source"),
    ("post", "/api/workspaces/{ws}/connections/discover/mcp"),
    ("post", "/api/workspaces/{ws}/connections/{slug}/refresh"),
    ("get", "/api/workspaces/{ws}/tools"),
    ("post", "/api/workspaces/{ws}/tools/{tool_name}/invoke"),
    ("get", "/api/workspaces/{ws}/audit"),
    ("get", "/api/admin/service-credentials/{service}"),
    ("put", "/api/admin/service-credentials/{service}"),
    ("delete", "/api/admin/service-credentials/{service}"),
    ("get", "/api/workspaces/{ws}/services"),
    ("put", "/api/workspaces/{ws}/services/{service}"),
    ("delete", "/api/workspaces/{ws}/services/{service}"),
    ("get", "/api/admin/oauth-providers/{id}"),
    ("put", "/api/admin/oauth-providers/{id}"),
    ("delete", "/api/admin/oauth-providers/{id}"),
    ("get", "/api/me/accounts"),
    ("get", "/api/me/account-providers"),
    ("post", "/api/me/accounts/{provider}/connect"),
    ("get", "/api/auth/connect/{provider}/callback"),
    ("delete", "/api/me/accounts/{id}"),
    ("get", "/api/workspaces/{ws}/connections/{slug}/my-credentials"),
    ("put", "/api/workspaces/{ws}/connections/{slug}/my-credentials"),
    ("delete", "/api/workspaces/{ws}/connections/{slug}/my-credentials"),
    ("get", "/api/workspaces/{ws}/participant-roles"),
    ("post", "/api/workspaces/{ws}/participant-roles"),
    ("delete", "/api/workspaces/{ws}/participant-roles/{name}"),
    ("get", "/api/workspaces/{ws}/participants"),
    ("post", "/api/workspaces/{ws}/participants"),
    ("get", "/api/workspaces/{ws}/participants/{id}"),
    ("patch", "/api/workspaces/{ws}/participants/{id}"),
    ("delete", "/api/workspaces/{ws}/participants/{id}"),
    ("post", "/api/workspaces/{ws}/participants/{id}/link"),
    ("delete", "/api/workspaces/{ws}/participants/{id}/link"),
    ("delete", "/api/workspaces/{ws}/participants/{id}/credentials/{slug}"),
    ("get", "/api/workspaces/{ws}/connections/{slug}/participants"),
    ("post", "/api/workspaces/{ws}/connections/telegram-check"),
    ("get", "/api/workspaces/{ws}/agents"),
    ("post", "/api/workspaces/{ws}/agents"),
    ("get", "/api/workspaces/{ws}/agents/{id}"),
    ("patch", "/api/workspaces/{ws}/agents/{id}"),
    ("delete", "/api/workspaces/{ws}/agents/{id}"),
    ("get", "/api/workspaces/{ws}/agents/{id}/declarations"),
    ("post", "/api/workspaces/{ws}/agents/{id}/runs"),
    ("get", "/api/workspaces/{ws}/agents/{id}/runs"),
    ("get", "/api/workspaces/{ws}/agents/{id}/runs/{run_id}"),
    ("post", "/api/workspaces/{ws}/agents/{id}/runs/{run_id}/cancel"),
    ("get", "/api/workspaces/{ws}/agents/{id}/runs/{run_id}/events"),
    ("get", "/api/workspaces/{ws}/workflows"),
    ("post", "/api/workspaces/{ws}/workflows"),
    ("get", "/api/workspaces/{ws}/workflows/{id}"),
    ("patch", "/api/workspaces/{ws}/workflows/{id}"),
    ("delete", "/api/workspaces/{ws}/workflows/{id}"),
    ("post", "/api/workspaces/{ws}/workflows/{id}/deploy"),
    ("post", "/api/workspaces/{ws}/workflows/{id}/runs"),
    ("get", "/api/workspaces/{ws}/workflows/{id}/runs"),
    ("get", "/api/workspaces/{ws}/workflows/{id}/runs/{run_id}"),
    ("post", "/api/workspaces/{ws}/workflows/{id}/runs/{run_id}/cancel"),
    ("get", "/api/workspaces/{ws}/workflows/{id}/runs/{run_id}/events"),
    ("get", "/api/onboarding"),
    ("put", "/api/onboarding/connections/{slug}"),
    ("delete", "/api/onboarding/connections/{slug}"),
    ("post", "/api/onboarding/connections/{slug}/connect"),
];

db_tests! {
    async fn the_document_lists_every_route(db: Db) {
        let s = TestServer::start(BIN, db).await;
        let (st, doc) = s.call_as("", Method::GET, "/api/openapi.json", None).await;
        assert_eq!(st, 200);
        assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"), "{}", doc["openapi"]);
        let mut listed = Vec::new();
        for (path, item) in doc["paths"].as_object().unwrap() {
            for method in ["get", "post", "put", "patch", "delete"] {
                if item.get(method).is_some() {
                    listed.push((method.to_owned(), path.clone()));
                }
            }
        }
        let mut expected: Vec<_> = EXPECTED.iter().map(|(m, p)| ((*m).to_owned(), (*p).to_owned())).collect();
        expected.sort();
        listed.sort();
        assert_eq!(listed, expected);
        assert!(doc["components"]["schemas"]["Problem"].is_object());
        assert!(doc["components"]["securitySchemes"]["bearer"].is_object());

        // every listed route is served (never the router's "no such route" or 405)
        let admin = s.call(Method::GET, "/api/me", None).await.1["id"].as_str().unwrap().to_owned();
        for (method, path) in &listed {
            let concrete = path
                .replace("{ws}", "default")
                .replace("{slug}", "nope")
                .replace("{user_id}", "nobody")
                .replace("{tool_name}", "current_time")
                .replace("{service}", "brave")
                .replace("/oauth-providers/{id}", "/oauth-providers/gmail")
                .replace("{id}", &admin);
            let m = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            let body = (m != Method::GET && m != Method::DELETE).then(|| json!({}));
            let (st, v) = s.call(m, &concrete, body).await;
            assert_ne!(st, 405, "{method} {path}");
            assert!(!v.to_string().contains("no such route"), "{method} {path}: {v}");
            assert!(st < 500, "{method} {path}: {v}");
        }
    }
}

/// Runs a command to completion; panics with its output when it fails.
fn run_ok(what: &str, cmd: &mut std::process::Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{what}: cannot run: {e}"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{what} failed ({:?}):\n{text}", out.status.code());
    text
}

const VALIDATE: &str = r#"
import SwaggerParser from "@apidevtools/swagger-parser";
const api = await SwaggerParser.validate(process.argv[2]);
console.log("VALID", api.openapi, Object.keys(api.paths).length);
"#;

/// A client as a user would write it: the types generated from the document, the calls
/// made with openapi-fetch. `tsc --strict` must accept it, and it must work.
const CLIENT: &str = r#"
import createClient from "openapi-fetch";
import type { paths } from "./api.js";

declare const process: { env: Record<string, string | undefined> };

const client = createClient<paths>({
  baseUrl: process.env.BASE,
  headers: { Authorization: `Bearer ${process.env.TOKEN}` },
});
const ws = { path: { ws: "default" } };
const created = await client.POST("/api/workspaces/{ws}/connections", {
  params: ws,
  body: {
    name: "Echo", slug: "echo", service_type: "http", base_url: process.env.UPSTREAM,
    auth: { type: "bearer", token: "generated-client-secret" },
    operations: [{ name: "anything", method: "POST", path: "/anything/{{id}}", description: "echo",
      input_schema: { type: "object", properties: { id: { type: "string" } }, required: ["id"] } }],
  },
});
if (created.error || created.response.status !== 201) throw new Error("create: " + JSON.stringify(created.error));
const slug: string = created.data.slug;
const called = await client.POST("/api/workspaces/{ws}/tools/{tool_name}/invoke", {
  params: { path: { ws: "default", tool_name: `${slug}.anything` } },
  body: { arguments: { id: "abc" } },
});
if (called.error) throw new Error("invoke: " + JSON.stringify(called.error));
const output = called.data.output as { status: number; body: { url: string } };
if (output.status !== 200 || !output.body.url.endsWith("/anything/abc")) throw new Error("output: " + JSON.stringify(output));
const missing = await client.GET("/api/workspaces/{ws}/connections/{slug}", { params: { path: { ws: "default", slug: "nope" } } });
if (missing.response.status !== 404 || missing.error?.code !== "not_found") throw new Error("404: " + JSON.stringify(missing.error));
console.log("CLIENT OK", slug, called.data.duration_ms >= 0);
"#;

db_tests! {
    async fn the_document_validates_and_a_generated_client_works(db: Db) {
        let tools = chatterfly_testkit::api_doc_tools();
        let node_modules = tools.join("node/node_modules");
        let s = TestServer::start_with(BIN, db, local_upstreams(&[])).await;
        let (st, _, text) = s.raw(Method::GET, "/api/openapi.json", None, Vec::new()).await;
        assert_eq!(st, 200);
        let dir = tempfile::tempdir().unwrap();
        let doc = dir.path().join("openapi.json");
        std::fs::write(&doc, &text).unwrap();
        std::os::unix::fs::symlink(&node_modules, dir.path().join("node_modules")).unwrap();
        std::fs::write(dir.path().join("validate.mjs"), VALIDATE).unwrap();
        let out = run_ok("swagger-parser", std::process::Command::new("node").arg("validate.mjs").arg(&doc).current_dir(dir.path()));
        assert!(out.contains("VALID 3.1"), "{out}");
        let out = run_ok("openapi-spec-validator", std::process::Command::new(tools.join("venv/bin/openapi-spec-validator")).arg(&doc));
        assert!(out.contains("OK"), "{out}");
        run_ok("openapi-typescript", std::process::Command::new("node")
            .arg(node_modules.join("openapi-typescript/bin/cli.js")).arg(&doc).arg("-o").arg(dir.path().join("api.d.ts")));
        std::fs::write(dir.path().join("client.mts"), CLIENT).unwrap();
        run_ok("tsc --strict on the generated types and a client", std::process::Command::new("node")
            .arg(node_modules.join("typescript/bin/tsc"))
            .args(["--strict", "--target", "es2022", "--module", "nodenext", "--moduleResolution", "nodenext", "client.mts"])
            .current_dir(dir.path()));
        let out = run_ok("the generated client", std::process::Command::new("node").arg("client.mjs")
            .env("BASE", &s.url).env("TOKEN", &s.token).env("UPSTREAM", chatterfly_testkit::httpbin_url())
            .current_dir(dir.path()));
        assert!(out.contains("CLIENT OK echo true"), "{out}");
    }
}
