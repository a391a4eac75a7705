//! The cross-workspace matrix, generated from the server's own OpenAPI document: every
//! route with a path parameter × another workspace's objects × each role. A route added
//! later is in the matrix without anyone writing it down.
//!
//! Workspace `theirs` (its own admin) holds a connection, a participant role, a
//! participant, an invitation and its admin's token. The callers are the admin and a member
//! of workspace `ours`, neither of them platform admins. Each route is called (1) with
//! `theirs` as the workspace, where it must answer 404, exactly as a workspace that does
//! not exist, and (2) with `ours` as the workspace and their objects' ids, where it must
//! not succeed. No answer is a 5xx, none names their objects, and afterwards all of
//! theirs is still there, unchanged.

use super::*;

struct Theirs {
    user_id: String,
    token: String,
    token_id: String,
    participant: String,
    invitation: String,
}

async fn theirs(s: &TestServer) -> Theirs {
    let (st, _) = s
        .call(
            Method::POST,
            "/api/workspaces",
            Some(json!({"name": "Theirs", "slug": "theirs"})),
        )
        .await;
    assert_eq!(st, 201);
    let (st, _) = s
        .call(
            Method::POST,
            "/api/workspaces",
            Some(json!({"name": "Ours", "slug": "ours"})),
        )
        .await;
    assert_eq!(st, 201);
    let (user_id, token) = s.user("owner@theirs.example").await;
    let ws = "/api/workspaces/theirs";
    assert_eq!(
        s.call(
            Method::PUT,
            &format!("{ws}/members/{user_id}"),
            Some(json!({"role": "admin"}))
        )
        .await
        .0,
        200
    );
    assert_eq!(
        s.call_as(
            &token,
            Method::POST,
            &format!("{ws}/participant-roles"),
            Some(json!({"name": "vip"}))
        )
        .await
        .0,
        201
    );
    let (st, v) = s
        .call_as(
            &token,
            Method::POST,
            &format!("{ws}/connections"),
            Some(json!({
        "name": "Their CRM", "slug": "crm", "service_type": "http", "base_url": "https://crm.example.com",
        "auth": {"type": "bearer", "token": "their-secret-token"},
        "operations": [{"name": "get", "method": "GET", "path": "/x"}]})),
        )
        .await;
    assert_eq!(st, 201, "{v}");
    let (st, p) = s
        .call_as(
            &token,
            Method::POST,
            &format!("{ws}/participants"),
            Some(json!({"name": "Their Vip", "role": "vip"})),
        )
        .await;
    assert_eq!(st, 201, "{p}");
    let (st, i) = s
        .call_as(
            &token,
            Method::POST,
            &format!("{ws}/invitations"),
            Some(json!({"email": "guest@theirs.example"})),
        )
        .await;
    assert_eq!(st, 201, "{i}");
    let (st, tokens) = s
        .call_as(&token, Method::GET, &format!("/api/users/{user_id}/tokens"), None)
        .await;
    assert_eq!(st, 200);
    Theirs {
        token_id: tokens[0]["id"].as_str().unwrap().to_owned(),
        user_id,
        token,
        participant: p["id"].as_str().unwrap().to_owned(),
        invitation: i["id"].as_str().unwrap().to_owned(),
    }
}

/// Fills a path template: their objects' ids where the parameter names one of theirs.
fn fill(template: &str, ws: &str, t: &Theirs) -> String {
    let unknown = "0193a0d0-0000-7000-8000-000000000000";
    let mut out = String::new();
    let mut rest = template;
    while let Some(start) = rest.find('{') {
        out.push_str(&rest[..start]);
        let end = rest[start..].find('}').unwrap() + start;
        let name = &rest[start + 1..end];
        let value = match name {
            "ws" => ws.to_owned(),
            "slug" => "crm".to_owned(),
            "name" => "vip".to_owned(),
            "user_id" => t.user_id.clone(),
            "token_id" => t.token_id.clone(),
            "tool_name" => "crm.get".to_owned(),
            "provider" => "github".to_owned(),
            "service" => "brave".to_owned(),
            "id" if template.starts_with("/api/users/") => t.user_id.clone(),
            "id" if template.starts_with("/api/me/invitations/") => t.invitation.clone(),
            "id" if template.contains("/participants/") => t.participant.clone(),
            "id" if template.contains("/invitations/") => t.invitation.clone(),
            _ => unknown.to_owned(),
        };
        out.push_str(&value);
        rest = &rest[end + 1..];
    }
    out.push_str(rest);
    out
}

db_tests! {
    async fn no_route_reaches_another_workspace(db: Db) {
        let s = TestServer::start(BIN, db).await;
        let t = theirs(&s).await;
        let (admin_id, admin) = s.user("admin@ours.example").await;
        let (member_id, member) = s.user("member@ours.example").await;
        for (id, role) in [(&admin_id, "admin"), (&member_id, "member")] {
            let (st, _) = s.call(Method::PUT, &format!("/api/workspaces/ours/members/{id}"), Some(json!({"role": role}))).await;
            assert_eq!(st, 200);
        }
        let (_, doc) = s.call(Method::GET, "/api/openapi.json", None).await;
        let mut checked = 0;
        let mut routes = 0;
        for (template, item) in doc["paths"].as_object().unwrap() {
            if !template.contains('{') {
                continue;
            }
            for method in ["get", "post", "put", "patch", "delete"] {
                if item.get(method).is_none() {
                    continue;
                }
                routes += 1;
                let m = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
                let body = (method != "get" && method != "delete").then(|| json!({}));
                let mut targets = vec![(fill(template, "theirs", &t), true)];
                if template.contains("{ws}") && template.matches('{').count() > 1 {
                    targets.push((fill(template, "ours", &t), false));
                }
                for (path, their_ws) in targets {
                    for (who, token) in [("admin", &admin), ("member", &member)] {
                        let (st, v) = s.call_as(token, m.clone(), &path, body.clone()).await;
                        let at = format!("{who} {method} {path} ({template})");
                        assert!(st < 500, "{at}: {st} {v}");
                        assert!(!(200..300).contains(&st), "{at} succeeded: {st} {v}");
                        if their_ws {
                            if template.starts_with("/api/workspaces/{ws}") {
                                assert_eq!(st, 404, "{at}: {v}");
                            } else if template.starts_with("/api/admin/") {
                                assert_eq!(st, 403, "{at}: {v}");
                            }
                        }
                        let text = v.to_string();
                        assert!(!text.contains("Their Vip") && !text.contains("Their CRM") && !text.contains("their-secret"),
                            "{at} shows their objects: {text}");
                        checked += 1;
                    }
                }
            }
        }
        eprintln!("{routes} routes with a path parameter, {checked} requests");
        assert!(routes >= 60, "only {routes} routes with a path parameter");
        // theirs is all still there
        let ws = "/api/workspaces/theirs";
        let (st, c) = s.call_as(&t.token, Method::GET, &format!("{ws}/connections/crm"), None).await;
        assert_eq!((st, c["name"].as_str()), (200, Some("Their CRM")), "{c}");
        let (st, p) = s.call_as(&t.token, Method::GET, &format!("{ws}/participants/{}", t.participant), None).await;
        assert_eq!((st, p["name"].as_str()), (200, Some("Their Vip")));
        let (st, list) = s.call_as(&t.token, Method::GET, &format!("{ws}/invitations"), None).await;
        assert_eq!(st, 200);
        assert!(list.to_string().contains(&t.invitation));
        let (st, roles) = s.call_as(&t.token, Method::GET, &format!("{ws}/participant-roles"), None).await;
        assert_eq!(st, 200);
        assert!(roles.to_string().contains("vip"));
        let (st, members) = s.call_as(&t.token, Method::GET, &format!("{ws}/members"), None).await;
        assert_eq!(st, 200);
        // the platform admin who created it and its owner; nobody from ours got in
        assert_eq!(members.as_array().unwrap().len(), 2, "{members}");
        assert!(!members.to_string().contains("ours.example"), "{members}");
    }
}
