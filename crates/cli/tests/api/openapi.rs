//! The API describes itself: `/api/openapi.json` is OpenAPI 3.1 and lists every route, and
//! every route it lists exists.

use super::*;

/// The routes of SPEC section 4 built so far, plus the extras this server adds.
const EXPECTED: &[(&str, &str)] = &[
    ("get", "/api/health"),
    ("get", "/api/me"),
    ("post", "/api/workspaces"),
    ("get", "/api/workspaces"),
    ("get", "/api/workspaces/{ws}"),
    ("post", "/api/users"),
    ("get", "/api/users"),
    ("post", "/api/users/{id}/tokens"),
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
