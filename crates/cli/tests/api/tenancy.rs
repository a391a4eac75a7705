//! Users, tokens, workspaces, members, and the walls between workspaces.

use super::*;

db_tests! {
    async fn me_answers_with_the_bootstrap_token(db: Db) {
        let s = TestServer::start(BIN, db).await;
        let (status, me) = s.call(Method::GET, "/api/me", None).await;
        assert_eq!(status, 200, "{me}");
        assert_eq!(me["email"], "admin@localhost");
        assert_eq!(me["platform_admin"], true);
        assert_eq!(me["workspaces"][0]["slug"], "default");
        assert_eq!(me["workspaces"][0]["role"], "admin");
        for token in ["", "cft_wrong", "Basic abc"] {
            let (status, p) = s.call_as(token, Method::GET, "/api/me", None).await;
            assert_eq!(status, 401, "{token}: {p}");
            assert_eq!(p["code"], "unauthorized");
        }
        let (status, h) = s.call_as("", Method::GET, "/api/health", None).await;
        assert_eq!((status, h["status"].as_str()), (200, Some("ok")));
    }

    async fn users_tokens_and_workspaces(db: Db) {
        let s = TestServer::start(BIN, db).await;
        let (uid, token) = s.user("ada@example.com").await;
        let (status, me) = s.call_as(&token, Method::GET, "/api/me", None).await;
        assert_eq!((status, me["id"].as_str()), (200, Some(uid.as_str())));
        assert_eq!(me["workspaces"], json!([]));

        let (status, p) = s.call(Method::POST, "/api/users", Some(json!({"email": "ADA@example.com", "name": "Again"}))).await;
        assert_eq!((status, p["code"].as_str()), (409, Some("email_taken")));
        let (status, p) = s.call(Method::POST, "/api/users", Some(json!({"email": "nope", "name": "", "password": "short"}))).await;
        assert_eq!(status, 422);
        let pointers: Vec<_> = p["errors"].as_array().unwrap().iter().map(|e| e["pointer"].as_str().unwrap()).collect();
        assert_eq!(pointers, ["/email", "/name", "/password"]);

        // only platform admins create users and workspaces
        let (status, _) = s.call_as(&token, Method::POST, "/api/users", Some(json!({"email": "x@y.z", "name": "x"}))).await;
        assert_eq!(status, 403);
        let (status, _) = s.call_as(&token, Method::POST, "/api/workspaces", Some(json!({"name": "W", "slug": "w"}))).await;
        assert_eq!(status, 403);

        let (status, w) = s.call(Method::POST, "/api/workspaces", Some(json!({"name": "Acme", "slug": "acme"}))).await;
        assert_eq!(status, 201, "{w}");
        assert_eq!(w["role"], "admin");
        let (status, p) = s.call(Method::POST, "/api/workspaces", Some(json!({"name": "Acme", "slug": "acme"}))).await;
        assert_eq!((status, p["code"].as_str()), (409, Some("slug_taken")));
        let (status, p) = s.call(Method::POST, "/api/workspaces", Some(json!({"name": "Bad", "slug": "Bad Slug"}))).await;
        assert_eq!((status, p["errors"][0]["pointer"].as_str()), (422, Some("/slug")));

        // a user mints its own tokens, not another's
        let (status, t) = s.call_as(&token, Method::POST, &format!("/api/users/{uid}/tokens"), Some(json!({"name": "laptop"}))).await;
        assert_eq!(status, 201);
        assert!(t["token"].as_str().unwrap().starts_with("cft_"));
        let (admin_id, _) = (s.call(Method::GET, "/api/me", None).await.1["id"].as_str().unwrap().to_owned(), ());
        let (status, _) = s.call_as(&token, Method::POST, &format!("/api/users/{admin_id}/tokens"), Some(json!({"name": "steal"}))).await;
        assert_eq!(status, 404);

        let (_, list) = s.call_as(&token, Method::GET, "/api/workspaces", None).await;
        assert_eq!(list, json!([]));
        let (_, list) = s.call(Method::GET, "/api/workspaces", None).await;
        assert_eq!(list.as_array().unwrap().len(), 2);
    }

    async fn members_roles_and_permissions(db: Db) {
        let s = TestServer::start(BIN, db).await;
        let (member_id, member) = s.user("m@example.com").await;
        let (outsider_id, outsider) = s.user("o@example.com").await;
        let (status, m) = s.call(Method::PUT, &format!("/api/workspaces/default/members/{member_id}"), Some(json!({"role": "member"}))).await;
        assert_eq!((status, m["role"].as_str()), (200, Some("member")), "{m}");
        let (status, p) = s.call(Method::PUT, "/api/workspaces/default/members/nobody", Some(json!({"role": "member"}))).await;
        assert_eq!((status, p["code"].as_str()), (404, Some("not_found")));
        let (status, _) = s.call(Method::PUT, &format!("/api/workspaces/default/members/{member_id}"), Some(json!({"role": "owner"}))).await;
        assert_eq!(status, 422);

        let conn = json!({"name": "API", "slug": "api", "service_type": "http", "base_url": "https://api.example.com"});
        // members read connections but cannot create, edit or delete them
        let (status, p) = s.call_as(&member, Method::POST, "/api/workspaces/default/connections", Some(conn.clone())).await;
        assert_eq!((status, p["code"].as_str()), (403, Some("forbidden")), "{p}");
        let (status, _) = s.call(Method::POST, "/api/workspaces/default/connections", Some(conn.clone())).await;
        assert_eq!(status, 201);
        let (status, list) = s.call_as(&member, Method::GET, "/api/workspaces/default/connections", None).await;
        assert_eq!((status, list.as_array().unwrap().len()), (200, 1));
        let (status, _) = s.call_as(&member, Method::GET, "/api/workspaces/default/connections/api", None).await;
        assert_eq!(status, 200);
        let (status, _) = s.call_as(&member, Method::PATCH, "/api/workspaces/default/connections/api", Some(json!({"name": "X"}))).await;
        assert_eq!(status, 403);
        let (status, _) = s.call_as(&member, Method::DELETE, "/api/workspaces/default/connections/api", None).await;
        assert_eq!(status, 403);
        let (status, _) = s.call_as(&member, Method::PUT, &format!("/api/workspaces/default/members/{outsider_id}"), Some(json!({"role": "admin"}))).await;
        assert_eq!(status, 403);

        // outsiders see nothing, not even that the workspace exists
        for (method, path) in [
            (Method::GET, "/api/workspaces/default"),
            (Method::GET, "/api/workspaces/default/connections"),
            (Method::GET, "/api/workspaces/default/connections/api"),
            (Method::GET, "/api/workspaces/default/members"),
            (Method::DELETE, "/api/workspaces/default/connections/api"),
        ] {
            let (status, p) = s.call_as(&outsider, method.clone(), path, None).await;
            assert_eq!((status, p["code"].as_str()), (404, Some("not_found")), "{method} {path}: {p}");
        }

        // promote, then the last admin cannot leave
        let (status, _) = s.call(Method::PUT, &format!("/api/workspaces/default/members/{member_id}"), Some(json!({"role": "admin"}))).await;
        assert_eq!(status, 200);
        let (status, _) = s.call_as(&member, Method::PATCH, "/api/workspaces/default/connections/api", Some(json!({"name": "Now admin"}))).await;
        assert_eq!(status, 200);
        let admin_id = s.call(Method::GET, "/api/me", None).await.1["id"].as_str().unwrap().to_owned();
        let (status, _) = s.call(Method::DELETE, &format!("/api/workspaces/default/members/{admin_id}"), None).await;
        assert_eq!(status, 204);
        let (status, p) = s.call_as(&member, Method::DELETE, &format!("/api/workspaces/default/members/{member_id}"), None).await;
        assert_eq!((status, p["code"].as_str()), (409, Some("last_admin")));
        let (_, members) = s.call_as(&member, Method::GET, "/api/workspaces/default/members", None).await;
        assert_eq!(members.as_array().unwrap().len(), 1);
    }

    async fn nothing_crosses_workspaces(db: Db) {
        let s = TestServer::start(BIN, db).await;
        let (a_id, a) = s.user("a@example.com").await;
        let (b_id, b) = s.user("b@example.com").await;
        for (slug, uid) in [("wa", &a_id), ("wb", &b_id)] {
            let (status, _) = s.call(Method::POST, "/api/workspaces", Some(json!({"name": slug, "slug": slug}))).await;
            assert_eq!(status, 201);
            let (status, _) = s.call(Method::PUT, &format!("/api/workspaces/{slug}/members/{uid}"), Some(json!({"role": "admin"}))).await;
            assert_eq!(status, 200);
        }
        let conn = json!({"name": "Secret API", "slug": "shared_name", "service_type": "http",
            "base_url": "https://a.example.com", "auth": {"type": "bearer", "token": "a-token"}});
        let (status, _) = s.call_as(&a, Method::POST, "/api/workspaces/wa/connections", Some(conn)).await;
        assert_eq!(status, 201);
        // b, admin of wb, reaches nothing of wa by any path
        for (method, path, body) in [
            (Method::GET, "/api/workspaces/wa/connections/shared_name", None),
            (Method::PATCH, "/api/workspaces/wa/connections/shared_name", Some(json!({"name": "pwned"}))),
            (Method::DELETE, "/api/workspaces/wa/connections/shared_name", None),
            (Method::POST, "/api/workspaces/wa/connections", Some(json!({"name": "x", "slug": "x", "service_type": "http", "base_url": "https://x.io"}))),
        ] {
            let (status, p) = s.call_as(&b, method.clone(), path, body).await;
            assert_eq!(status, 404, "{method} {path}: {p}");
            assert!(!p.to_string().contains("Secret API"));
        }
        // the same slug in wb is a different object
        let (status, p) = s.call_as(&b, Method::GET, "/api/workspaces/wb/connections/shared_name", None).await;
        assert_eq!(status, 404, "{p}");
        let (_, c) = s.call_as(&a, Method::GET, "/api/workspaces/wa/connections/shared_name", None).await;
        assert_eq!(c["name"], "Secret API");
    }

    async fn people_join_by_invitation_and_ids_leak_nothing(db: Db) {
        let s = TestServer::start(BIN, db).await;
        // a workspace admin who is not a platform admin
        let (st, _) = s.call(Method::POST, "/api/workspaces", Some(json!({"name": "Acme", "slug": "acme"}))).await;
        assert_eq!(st, 201);
        let (wa_id, wa) = s.user("wa@example.com").await;
        let (st, _) = s.call(Method::PUT, &format!("/api/workspaces/acme/members/{wa_id}"), Some(json!({"role": "admin"}))).await;
        assert_eq!(st, 200);
        let (ada_id, ada) = s.user("ada@example.com").await;
        let (_, other) = s.user("other@example.com").await;
        // adding by id: an existing user and an unknown id answer alike, without an e-mail
        let put = |id: String| {
            let s = &s;
            let wa = wa.clone();
            async move { s.call_as(&wa, Method::PUT, &format!("/api/workspaces/acme/members/{id}"), Some(json!({"role": "member"}))).await }
        };
        let (st_known, known) = put(ada_id.clone()).await;
        let (st_unknown, unknown) = put(uuid::Uuid::now_v7().to_string()).await;
        assert_eq!((st_known, st_unknown), (404, 404), "{known} {unknown}");
        assert_eq!(known["code"], unknown["code"]);
        for v in [&known, &unknown] {
            assert!(!v.to_string().contains("ada@example.com"), "{v}");
            assert!(v["detail"].as_str().unwrap().contains("invitations"), "{v}");
        }
        // inviting: the same answer whether or not the address has an account
        let (st1, a) = s.call_as(&wa, Method::POST, "/api/workspaces/acme/invitations", Some(json!({"email": "Ada@Example.com"}))).await;
        let (st2, b) = s.call_as(&wa, Method::POST, "/api/workspaces/acme/invitations", Some(json!({"email": "nobody@example.com", "role": "admin"}))).await;
        assert_eq!((st1, st2), (201, 201), "{a} {b}");
        let keys = |v: &Value| v.as_object().unwrap().keys().cloned().collect::<Vec<_>>();
        assert_eq!(keys(&a), keys(&b));
        assert_eq!(a["email"], "ada@example.com");
        assert_eq!(a["role"], "member");
        assert!(!a.to_string().contains(&ada_id), "{a}");
        let (st, v) = s.call_as(&wa, Method::POST, "/api/workspaces/acme/invitations", Some(json!({"email": "not an address"}))).await;
        assert_eq!((st, v["errors"][0]["pointer"].as_str()), (422, Some("/email")), "{v}");
        // members may not invite; other workspaces see nothing
        let (st, _) = s.call_as(&ada, Method::POST, "/api/workspaces/acme/invitations", Some(json!({"email": "x@example.com"}))).await;
        assert_eq!(st, 404);
        let (st, list) = s.call_as(&wa, Method::GET, "/api/workspaces/acme/invitations", None).await;
        assert_eq!(st, 200);
        assert_eq!(list.as_array().unwrap().len(), 2, "{list}");
        // the invited user sees it and accepts; someone else cannot
        let (st, mine) = s.call_as(&ada, Method::GET, "/api/me/invitations", None).await;
        assert_eq!(st, 200);
        assert_eq!(mine.as_array().unwrap().len(), 1, "{mine}");
        assert_eq!(mine[0]["workspace"], "acme");
        let (_, theirs) = s.call_as(&other, Method::GET, "/api/me/invitations", None).await;
        assert_eq!(theirs.as_array().unwrap().len(), 0, "{theirs}");
        let id = a["id"].as_str().unwrap();
        let (st, _) = s.call_as(&other, Method::POST, &format!("/api/me/invitations/{id}/accept"), None).await;
        assert_eq!(st, 404);
        let (st, _) = s.call_as(&ada, Method::GET, "/api/workspaces/acme", None).await;
        assert_eq!(st, 404, "not a member before accepting");
        let (st, v) = s.call_as(&ada, Method::POST, &format!("/api/me/invitations/{id}/accept"), None).await;
        assert_eq!((st, v["role"].as_str(), v["workspace"].as_str()), (200, Some("member"), Some("acme")), "{v}");
        let (st, _) = s.call_as(&ada, Method::GET, "/api/workspaces/acme", None).await;
        assert_eq!(st, 200);
        let (st, _) = s.call_as(&ada, Method::POST, &format!("/api/me/invitations/{id}/accept"), None).await;
        assert_eq!(st, 404, "an invitation is used once");
        // now a member: the admin may change the role by id
        let (st, v) = put(ada_id.clone()).await;
        assert_eq!((st, v["email"].as_str()), (200, Some("ada@example.com")), "{v}");
        // withdrawing
        let bid = b["id"].as_str().unwrap();
        let (st, _) = s.call_as(&wa, Method::DELETE, &format!("/api/workspaces/acme/invitations/{bid}"), None).await;
        assert_eq!(st, 204);
        let (st, _) = s.call_as(&wa, Method::DELETE, &format!("/api/workspaces/acme/invitations/{bid}"), None).await;
        assert_eq!(st, 404);
        let (_, list) = s.call_as(&wa, Method::GET, "/api/workspaces/acme/invitations", None).await;
        assert_eq!(list.as_array().unwrap().len(), 0, "{list}");
    }
}
