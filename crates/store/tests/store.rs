//! Store tests, each run on SQLite and on PostgreSQL.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use chatterfly_domain::{ConnectionDraft, ConnectionInput, SourceDocument, SourceKind, WorkspaceRole, WorkspaceSlug};
use chatterfly_store::{
    AccountOwner, AccountWrite, AgentWrite, AuditFilter, FencedStepWrite, NewAuditEvent, NewConnection, NewStep,
    NewUser, NewWorkflowRun, NewWorkflowStep, PLATFORM, ParticipantWrite, RoleDelete, RunEnd, RunEnding, SealedUpdate,
    StepWrite, Store, StoreError, WorkflowRunFilter,
};
use chatterfly_testkit::{Db, db_tests, fresh_database, terminate_other_sessions};
use serde_json::json;

async fn store(db: Db) -> (Store, chatterfly_testkit::TestDb) {
    let t = fresh_database(db).await;
    let s = Store::connect(&t.url).await.expect("connect");
    (s, t)
}

fn user(email: &str) -> NewUser {
    NewUser {
        email: email.into(),
        name: email.into(),
        password_hash: None,
        platform_admin: false,
    }
}

fn ws(slug: &str) -> WorkspaceSlug {
    slug.parse().unwrap()
}

fn draft(slug: &str, ops: usize) -> ConnectionDraft {
    let operations: Vec<_> = (0..ops)
        .map(|i| json!({"name": format!("op_{i:04}"), "method": "GET", "path": format!("/items/{i}")}))
        .collect();
    let input: ConnectionInput = serde_json::from_value(json!({
        "name": "API", "slug": slug, "service_type": "http", "base_url": "https://api.example.com",
        "auth": {"type": "api_key_header", "header": "X-Key", "key": "k"}, "operations": operations}))
    .unwrap();
    ConnectionDraft::parse(input).unwrap().0
}

db_tests! {
    async fn migrations_are_idempotent(db: Db) {
        let (s, t) = store(db).await;
        s.close().await;
        let again = Store::connect(&t.url).await.expect("second connect applies nothing new");
        assert_eq!(again.count_users().await.unwrap(), 0);
    }

    async fn bootstrap_runs_once(db: Db) {
        let (s, _t) = store(db).await;
        let admin = NewUser { platform_admin: true, ..user("admin@localhost") };
        assert!(s.bootstrap(&admin, &ws("default"), "hash1").await.unwrap());
        assert!(!s.bootstrap(&admin, &ws("default"), "hash2").await.unwrap());
        let owner = s.user_by_token_hash("hash1").await.unwrap().unwrap();
        assert!(owner.user.platform_admin);
        assert!(s.user_by_token_hash("hash2").await.unwrap().is_none());
        let m = s.memberships_of(&owner.user.id).await.unwrap();
        assert_eq!(m.len(), 1);
        assert_eq!(m[0].workspace.slug.as_str(), "default");
        assert_eq!(m[0].role, WorkspaceRole::Admin);
    }

    async fn users_and_tokens(db: Db) {
        let (s, _t) = store(db).await;
        let u = s.create_user(&user("a@x.io")).await.unwrap();
        assert!(matches!(s.create_user(&user("a@x.io")).await, Err(StoreError::Conflict { what: "email" })));
        s.create_token(&u.id, "ci", "h-a").await.unwrap();
        assert_eq!(s.user_by_token_hash("h-a").await.unwrap().unwrap().user, u);
        assert_eq!(s.get_user(&u.id).await.unwrap().unwrap(), u);
        assert!(s.get_user("nope").await.unwrap().is_none());
        assert_eq!(s.list_users().await.unwrap().len(), 1);
    }

    async fn memberships_and_the_last_admin(db: Db) {
        let (s, _t) = store(db).await;
        let a = s.create_user(&user("a@x.io")).await.unwrap();
        let b = s.create_user(&user("b@x.io")).await.unwrap();
        let w = s.create_workspace(&ws("acme"), "Acme", &a.id).await.unwrap();
        assert!(matches!(s.create_workspace(&ws("acme"), "Again", &a.id).await, Err(StoreError::Conflict { .. })));
        s.set_member(&w.id, &b.id, WorkspaceRole::Member).await.unwrap();
        let (_, role) = s.workspace_role("acme", &b.id).await.unwrap().unwrap();
        assert_eq!(role, Some(WorkspaceRole::Member));
        // a is the only admin: cannot be demoted or removed
        assert!(matches!(s.set_member(&w.id, &a.id, WorkspaceRole::Member).await, Err(StoreError::Conflict { what: "last admin" })));
        assert!(matches!(s.remove_member(&w.id, &a.id).await, Err(StoreError::Conflict { .. })));
        s.set_member(&w.id, &b.id, WorkspaceRole::Admin).await.unwrap();
        s.set_member(&w.id, &a.id, WorkspaceRole::Member).await.unwrap();
        assert_eq!(s.members_of(&w.id).await.unwrap().len(), 2);
        s.remove_member(&w.id, &a.id).await.unwrap();
        assert!(matches!(s.remove_member(&w.id, &a.id).await, Err(StoreError::NotFound)));
        let (_, role) = s.workspace_role("acme", &a.id).await.unwrap().unwrap();
        assert_eq!(role, None);
        assert!(s.workspace_role("nope", &a.id).await.unwrap().is_none());
    }

    async fn invitations_are_accepted_once_by_their_address(db: Db) {
        let (s, _t) = store(db).await;
        let a = s.create_user(&user("a@x.io")).await.unwrap();
        let b = s.create_user(&user("b@x.io")).await.unwrap();
        let w = s.create_workspace(&ws("acme"), "Acme", &a.id).await.unwrap();
        let later = "2999-01-01T00:00:00.000Z";
        let first = s.invite(&w.id, "b@x.io", WorkspaceRole::Admin, &a.id, later).await.unwrap();
        // inviting again renews the same invitation with the new role
        let again = s.invite(&w.id, "b@x.io", WorkspaceRole::Member, &a.id, later).await.unwrap();
        assert_eq!(first.id, again.id);
        assert_eq!(again.role, WorkspaceRole::Member);
        s.invite(&w.id, "ghost@x.io", WorkspaceRole::Member, &a.id, "2000-01-01T00:00:00.000Z").await.unwrap();
        assert_eq!(s.invitations_of_workspace(&w.id).await.unwrap().len(), 2);
        let now = chatterfly_store::now();
        assert_eq!(s.invitations_for("b@x.io", &now).await.unwrap().len(), 1);
        assert_eq!(s.invitations_for("ghost@x.io", &now).await.unwrap().len(), 0, "expired");
        // only the addressee accepts, once
        assert!(matches!(s.accept_invitation(&again.id, &a.id, "a@x.io", &now).await, Err(StoreError::NotFound)));
        let inv = s.accept_invitation(&again.id, &b.id, "b@x.io", &now).await.unwrap();
        assert_eq!(inv.workspace_slug.as_str(), "acme");
        assert_eq!(s.workspace_role("acme", &b.id).await.unwrap().unwrap().1, Some(WorkspaceRole::Member));
        assert!(matches!(s.accept_invitation(&again.id, &b.id, "b@x.io", &now).await, Err(StoreError::NotFound)));
        // an admin invited as a member stays admin
        let own = s.invite(&w.id, "a@x.io", WorkspaceRole::Member, &a.id, later).await.unwrap();
        s.accept_invitation(&own.id, &a.id, "a@x.io", &now).await.unwrap();
        assert_eq!(s.workspace_role("acme", &a.id).await.unwrap().unwrap().1, Some(WorkspaceRole::Admin));
        let ghost = &s.invitations_of_workspace(&w.id).await.unwrap()[0];
        s.delete_invitation(&w.id, &ghost.id).await.unwrap();
        assert!(matches!(s.delete_invitation(&w.id, &ghost.id).await, Err(StoreError::NotFound)));
    }

    async fn sessions_expire_end_and_follow_passwords(db: Db) {
        let (s, _t) = store(db).await;
        let a = s.create_user(&user("a@x.io")).await.unwrap();
        let later = "2999-01-01T00:00:00.000Z";
        s.create_session(&a.id, "hash-live", "csrf-1", later, None).await.unwrap();
        s.create_session(&a.id, "hash-old", "csrf-2", "2000-01-01T00:00:00.000Z", None).await.unwrap();
        let live = s.user_by_session_hash("hash-live").await.unwrap().unwrap();
        assert_eq!((live.user.id.as_str(), live.csrf_token.as_str()), (a.id.as_str(), "csrf-1"));
        assert!(s.user_by_session_hash("hash-old").await.unwrap().is_none(), "expired");
        assert!(s.user_by_session_hash("nope").await.unwrap().is_none());
        // a new session sweeps the expired ones away
        s.create_session(&a.id, "hash-2", "csrf-3", later, None).await.unwrap();
        assert!(!s.delete_session("hash-old").await.unwrap());
        assert!(s.delete_session("hash-2").await.unwrap());
        assert!(s.user_by_session_hash("hash-2").await.unwrap().is_none(), "signed out");
        // a password change ends every session of the user
        assert_eq!(s.user_with_password("a@x.io").await.unwrap().unwrap().1, None);
        assert!(s.set_password(&a.id, Some("$argon2id$x")).await.unwrap());
        assert_eq!(s.user_with_password("a@x.io").await.unwrap().unwrap().1.as_deref(), Some("$argon2id$x"));
        assert!(s.user_by_session_hash("hash-live").await.unwrap().is_none());
        assert!(!s.set_password("no-such-user", None).await.unwrap());
        assert!(s.user_with_password("b@x.io").await.unwrap().is_none());
    }

    async fn connections_round_trip(db: Db) {
        let (s, _t) = store(db).await;
        let a = s.create_user(&user("a@x.io")).await.unwrap();
        let w1 = s.create_workspace(&ws("one"), "One", &a.id).await.unwrap();
        let w2 = s.create_workspace(&ws("two"), "Two", &a.id).await.unwrap();
        // 450 operations: more than one INSERT chunk, order kept
        let d = draft("api", 450);
        s.insert_connection(NewConnection { id: "c1", workspace_id: &w1.id, draft: &d, auth_sealed: Some("sealed-1"), created_by: Some(&a.id) })
            .await
            .unwrap();
        let dup = s.insert_connection(NewConnection { id: "c2", workspace_id: &w1.id, draft: &d, auth_sealed: None, created_by: None }).await;
        assert!(matches!(dup, Err(StoreError::Conflict { what: "slug" })));
        // the same slug in another workspace is fine
        s.insert_connection(NewConnection { id: "c3", workspace_id: &w2.id, draft: &d, auth_sealed: None, created_by: None })
            .await
            .unwrap();

        let got = s.get_connection(&w1.id, "api").await.unwrap().unwrap();
        assert_eq!(got.draft, d);
        assert_eq!(got.operation_count, 450);
        assert_eq!(got.auth_sealed.as_deref(), Some("sealed-1"));
        assert!(s.get_connection(&w1.id, "nope").await.unwrap().is_none());
        let list = s.list_connections(&w1.id).await.unwrap();
        assert_eq!(list.len(), 1);
        assert_eq!(list[0].operation_count, 450);
        assert!(list[0].draft.operations.is_empty());

        // rename, drop operations, keep the sealed value
        let mut d2 = draft("api_renamed", 3);
        d2.name = "Renamed".into();
        s.update_connection("c1", &w1.id, &d2, SealedUpdate::Keep, true).await.unwrap();
        let got = s.get_connection(&w1.id, "api_renamed").await.unwrap().unwrap();
        assert_eq!(got.draft, d2);
        assert_eq!(got.auth_sealed.as_deref(), Some("sealed-1"));
        s.update_connection("c1", &w1.id, &d2, SealedUpdate::Set(None), false).await.unwrap();
        assert_eq!(s.get_connection(&w1.id, "api_renamed").await.unwrap().unwrap().auth_sealed, None);
        // another workspace's id does not reach the row
        assert!(matches!(s.update_connection("c1", &w2.id, &d2, SealedUpdate::Keep, false).await, Err(StoreError::NotFound)));
        // renaming onto a taken slug conflicts
        s.insert_connection(NewConnection { id: "c4", workspace_id: &w1.id, draft: &draft("other", 0), auth_sealed: None, created_by: None })
            .await
            .unwrap();
        assert!(matches!(
            s.update_connection("c4", &w1.id, &d2, SealedUpdate::Keep, false).await,
            Err(StoreError::Conflict { what: "slug" })
        ));

        s.delete_connection(&w1.id, "api_renamed").await.unwrap();
        assert!(matches!(s.delete_connection(&w1.id, "api_renamed").await, Err(StoreError::NotFound)));
        assert!(s.operations_of("c1").await.unwrap().is_empty());
        assert_eq!(s.get_connection(&w2.id, "api").await.unwrap().unwrap().operation_count, 450);
    }

    async fn imported_operations_keep_their_mapping_and_source(db: Db) {
        let (s, _t) = store(db).await;
        let a = s.create_user(&user("a@x.io")).await.unwrap();
        let w = s.create_workspace(&ws("one"), "One", &a.id).await.unwrap();
        let doc = "openapi: 3.0.0\ninfo: {title: T, version: '1'}\npaths: {}\n".to_owned();
        let input: ConnectionInput = serde_json::from_value(json!({
            "name": "Pets", "slug": "pets", "service_type": "openapi", "base_url": "https://api.example.com",
            "operations": [{"name": "add_pet", "method": "POST", "path": "/pets/{{id}}",
                "input_schema": {"type": "object", "properties": {"id": {}, "x_trace": {}, "at_type": {}}},
                "request": {"arguments": {"id": {"in": "path"}, "x_trace": {"in": "header", "name": "X-Trace"},
                    "at_type": {"in": "body", "name": "@type"}}, "credentials": false}}],
            "source": {"type": "openapi", "document": doc}}))
        .unwrap();
        let d = ConnectionDraft::parse(input).unwrap().0;
        let rec = s.insert_connection(NewConnection { id: "c1", workspace_id: &w.id, draft: &d, auth_sealed: None, created_by: None })
            .await
            .unwrap();
        let mut expected = d.clone();
        expected.source = None;
        let got = s.get_connection(&w.id, "pets").await.unwrap().unwrap();
        assert_eq!(got.draft, expected);
        let mapping = got.draft.operations[0].request.as_ref().unwrap();
        assert!(!mapping.credentials);
        assert_eq!(mapping.arguments["at_type"].name.as_deref(), Some("@type"));
        let (_, op) = s.connection_tool(&w.id, "pets", "add_pet").await.unwrap().unwrap();
        assert_eq!(op.unwrap().request.as_ref(), Some(mapping));
        let meta = s.source_meta(&rec.id).await.unwrap().unwrap();
        assert_eq!(meta.size, doc.len() as i64);
        assert_eq!(meta.sha256.len(), 64);
        assert_eq!(s.source_document(&rec.id).await.unwrap().unwrap().document, doc);
        // an update without a source keeps it; with one replaces it
        s.update_connection("c1", &w.id, &expected, SealedUpdate::Keep, false).await.unwrap();
        assert_eq!(s.source_document("c1").await.unwrap().unwrap().document, doc);
        let mut re = expected.clone();
        re.source = Some(SourceDocument { kind: SourceKind::Openapi, document: "{}".into() });
        s.update_connection("c1", &w.id, &re, SealedUpdate::Keep, false).await.unwrap();
        assert_eq!(s.source_meta("c1").await.unwrap().unwrap().size, 2);
        s.delete_connection(&w.id, "pets").await.unwrap();
        assert!(s.source_meta("c1").await.unwrap().is_none());
    }

    async fn mcp_connections_keep_transport_server_and_tool_names(db: Db) {
        let (s, _t) = store(db).await;
        let a = s.create_user(&user("a@x.io")).await.unwrap();
        let w = s.create_workspace(&ws("one"), "One", &a.id).await.unwrap();
        let input: ConnectionInput = serde_json::from_value(json!({
            "name": "M", "slug": "m", "service_type": "mcp", "base_url": "https://mcp.example.com/sse",
            "transport": "sse", "operations": [
                {"name": "get-roots-list", "input_schema": {"type": "object"}},
                {"name": "say_hi", "mcp_tool": "say hi", "input_schema": {"type": "object"}}]}))
        .unwrap();
        let mut d = ConnectionDraft::parse(input).unwrap().0;
        assert_eq!(d.operations[0].mcp_tool.as_deref(), Some("get-roots-list"), "defaults to the name");
        d.mcp_server = Some(chatterfly_domain::McpServerInfo {
            name: "srv".into(), title: None, version: "1.0".into(), protocol_version: "2025-11-25".into(),
            instructions: Some("be nice".into()),
        });
        let rec = s.insert_connection(NewConnection { id: "m1", workspace_id: &w.id, draft: &d, auth_sealed: None, created_by: None })
            .await
            .unwrap();
        let got = s.get_connection(&w.id, "m").await.unwrap().unwrap();
        assert_eq!(got.draft, d);
        assert_eq!(got.draft.transport, Some(chatterfly_domain::McpTransport::Sse));
        let (_, op) = s.connection_tool(&w.id, "m", "say_hi").await.unwrap().unwrap();
        assert_eq!(op.unwrap().mcp_tool.as_deref(), Some("say hi"));
        let by_id = s.connection_by_id(&rec.id).await.unwrap().unwrap();
        assert_eq!(by_id.draft, d);
        assert!(s.connection_by_id("nope").await.unwrap().is_none());
        // a refresh writes the transport and server found
        let mut next = d.clone();
        next.transport = Some(chatterfly_domain::McpTransport::StreamableHttp);
        next.mcp_server = None;
        next.operations.truncate(1);
        s.update_connection("m1", &w.id, &next, SealedUpdate::Keep, true).await.unwrap();
        let got = s.get_connection(&w.id, "m").await.unwrap().unwrap();
        assert_eq!(got.draft, next);
        assert_eq!(got.operation_count, 1);
    }

    async fn sealed_values_are_listed_and_rewritten_atomically(db: Db) {
        let (s, _t) = store(db).await;
        let a = s.create_user(&user("a@x.io")).await.unwrap();
        let w = s.create_workspace(&ws("one"), "One", &a.id).await.unwrap();
        for (id, slug) in [("c1", "a"), ("c2", "b")] {
            s.insert_connection(NewConnection { id, workspace_id: &w.id, draft: &draft(slug, 1), auth_sealed: Some("old"), created_by: None })
                .await
                .unwrap();
        }
        s.ensure_vault_check(|aad| Some(format!("check:{}", String::from_utf8_lossy(aad)))).await.unwrap();
        s.ensure_vault_check(|_| Some("second writer loses".into())).await.unwrap();
        let all = s.sealed_values().await.unwrap();
        assert_eq!(all.len(), 3);
        assert!(all.iter().any(|v| v.sealed == "check:chatterfly:vault_check:sentinel"));
        assert!(all.iter().any(|v| v.aad == b"chatterfly:connection:c1:auth"));

        // an error half-way leaves everything as it was
        let mut n = 0;
        let failed = s.rewrite_sealed(|_| { n += 1; if n == 2 { Err("boom") } else { Ok(Some("new".to_owned())) } }).await.unwrap();
        assert_eq!(failed, Err("boom"));
        assert!(s.sealed_values().await.unwrap().iter().all(|v| v.sealed != "new"));

        let report = s.rewrite_sealed(|v| Ok::<_, ()>(Some(format!("new-{}", v.row_id)))).await.unwrap().unwrap();
        assert_eq!((report.examined, report.rewritten), (3, 3));
        assert!(s.sealed_values().await.unwrap().iter().all(|v| v.sealed.starts_with("new-")));
    }

    async fn concurrent_writers_do_not_fail(db: Db) {
        let (s, _t) = store(db).await;
        let a = s.create_user(&user("a@x.io")).await.unwrap();
        let w = s.create_workspace(&ws("one"), "One", &a.id).await.unwrap();
        let mut tasks = Vec::new();
        for i in 0..40 {
            let s = s.clone();
            let (wid, aid) = (w.id.clone(), a.id.clone());
            tasks.push(tokio::spawn(async move {
                let id = format!("c{i}");
                let d = draft(&format!("api_{i}"), 3);
                s.insert_connection(NewConnection { id: &id, workspace_id: &wid, draft: &d, auth_sealed: None, created_by: None }).await?;
                let u = s.create_user(&user(&format!("u{i}@x.io"))).await?;
                s.set_member(&wid, &u.id, WorkspaceRole::Member).await?;
                // a conflicting write in the mix: its rollback must not block the others
                let dup = s.create_workspace(&ws("one"), "dup", &aid).await;
                assert!(matches!(dup, Err(StoreError::Conflict { .. })));
                Ok::<_, StoreError>(())
            }));
        }
        for t in tasks {
            t.await.unwrap().unwrap();
        }
        assert_eq!(s.list_connections(&w.id).await.unwrap().len(), 40);
        assert_eq!(s.members_of(&w.id).await.unwrap().len(), 41);
    }

    async fn single_operations_and_the_tool_picker(db: Db) {
        let (s, _t) = store(db).await;
        let a = s.create_user(&user("a@x.io")).await.unwrap();
        let w = s.create_workspace(&ws("one"), "One", &a.id).await.unwrap();
        for (id, slug, n) in [("c1", "zeta", 2), ("c2", "alpha", 3)] {
            s.insert_connection(NewConnection { id, workspace_id: &w.id, draft: &draft(slug, n), auth_sealed: None, created_by: None })
                .await
                .unwrap();
        }
        let head = s.connection_head(&w.id, "alpha").await.unwrap().unwrap();
        assert_eq!((head.id.as_str(), head.operation_count, head.draft.operations.len()), ("c2", 3, 0));
        assert!(s.connection_head(&w.id, "nope").await.unwrap().is_none());
        let (rec, op) = s.connection_tool(&w.id, "alpha", "op_0001").await.unwrap().unwrap();
        assert_eq!((rec.id.as_str(), rec.operation_count), ("c2", 3));
        assert_eq!(op.unwrap().path.unwrap().as_str(), "/items/1");
        let (_, op) = s.connection_tool(&w.id, "alpha", "op_9999").await.unwrap().unwrap();
        assert!(op.is_none());
        let (_, op) = s.connection_tool(&w.id, "zeta", "op_0002").await.unwrap().unwrap();
        assert!(op.is_none(), "zeta has two operations");
        assert!(s.connection_tool(&w.id, "nope", "op_0000").await.unwrap().is_none());
        let all = s.workspace_operations(&w.id).await.unwrap();
        let names: Vec<_> = all.iter().map(|(slug, o)| format!("{slug}.{}", o.name)).collect();
        assert_eq!(names, ["alpha.op_0000", "alpha.op_0001", "alpha.op_0002", "zeta.op_0000", "zeta.op_0001"]);
    }

    async fn audit_pages_newest_first(db: Db) {
        let (s, _t) = store(db).await;
        let a = s.create_user(&user("a@x.io")).await.unwrap();
        let w = s.create_workspace(&ws("one"), "One", &a.id).await.unwrap();
        let other = s.create_workspace(&ws("two"), "Two", &a.id).await.unwrap();
        for i in 0..7u16 {
            let e = NewAuditEvent { workspace_id: w.id.clone(), user_id: Some(a.id.clone()), tool: "api.get".into(), connection_slug: Some("api".into()),
                ok: i % 2 == 0, http_status: Some(200 + i), error_code: (i % 2 == 1).then_some("upstream_error"), duration_ms: u64::from(i),
                participant_id: (i == 3).then(|| "p-1".to_owned()), run_id: (i == 2).then(|| "run-1".to_owned()) };
            s.record_audit(&e).await.unwrap();
        }
        s.record_audit(&NewAuditEvent { workspace_id: other.id.clone(), user_id: None, tool: "x".into(), connection_slug: None, ok: true,
            http_status: None, error_code: None, duration_ms: 1, participant_id: None, run_id: None }).await.unwrap();
        let page1 = s.list_audit(&w.id, None, 3, &AuditFilter::default()).await.unwrap();
        assert_eq!(page1.iter().map(|e| e.duration_ms).collect::<Vec<_>>(), [6, 5, 4]);
        assert_eq!(page1[1].error_code.as_deref(), Some("upstream_error"));
        assert_eq!(page1[0].outcome, "ok");
        let page2 = s.list_audit(&w.id, Some(&page1[2].id), 3, &AuditFilter::default()).await.unwrap();
        assert_eq!(page2.iter().map(|e| e.duration_ms).collect::<Vec<_>>(), [3, 2, 1]);
        let page3 = s.list_audit(&w.id, Some(&page2[2].id), 3, &AuditFilter::default()).await.unwrap();
        assert_eq!(page3.len(), 1);
        assert_eq!(s.list_audit(&other.id, None, 10, &AuditFilter::default()).await.unwrap().len(), 1);
        // a batch larger than one statement keeps every row
        let batch: Vec<_> = (0..250).map(|i| NewAuditEvent { workspace_id: other.id.clone(), user_id: None, tool: format!("t{i}"),
            connection_slug: None, ok: true, http_status: None, error_code: None, duration_ms: 0, participant_id: None, run_id: None }).collect();
        s.record_audit_batch(&batch).await.unwrap();
        assert_eq!(s.list_audit(&other.id, None, 500, &AuditFilter::default()).await.unwrap().len(), 251);
        // filters: each set field must match
        let only = |f: AuditFilter| { let s = &s; let w = w.id.clone(); async move { s.list_audit(&w, None, 100, &f).await.unwrap() } };
        let errors = only(AuditFilter { outcome: Some("error".into()), ..Default::default() }).await;
        assert_eq!(errors.iter().map(|e| e.duration_ms).collect::<Vec<_>>(), [5, 3, 1]);
        assert_eq!(only(AuditFilter { tool: Some("api.get".into()), ..Default::default() }).await.len(), 7);
        assert_eq!(only(AuditFilter { tool: Some("api.other".into()), ..Default::default() }).await.len(), 0);
        assert_eq!(only(AuditFilter { connection: Some("api".into()), outcome: Some("ok".into()), ..Default::default() }).await.len(), 4);
        assert_eq!(only(AuditFilter { user_id: Some(a.id.clone()), ..Default::default() }).await.len(), 7);
        assert_eq!(only(AuditFilter { user_id: Some("someone-else".into()), ..Default::default() }).await.len(), 0);
        let of_run = only(AuditFilter { run_id: Some("run-1".into()), ..Default::default() }).await;
        assert_eq!((of_run.len(), of_run[0].duration_ms, of_run[0].run_id.as_deref()), (1, 2, Some("run-1")));
        let theirs = only(AuditFilter { participant_id: Some("p-1".into()), ..Default::default() }).await;
        assert_eq!((theirs.len(), theirs[0].participant_id.as_deref(), theirs[0].duration_ms), (1, Some("p-1"), 3));
    }

    async fn service_keys_and_oauth_clients(db: Db) {
        let (s, _t) = store(db).await;
        let a = s.create_user(&user("a@x.io")).await.unwrap();
        let w = s.create_workspace(&ws("one"), "One", &a.id).await.unwrap();
        assert_eq!(s.service_credentials_for(&w.id, "brave").await.unwrap(), (None, None));
        s.put_service_credential(PLATFORM, "brave", Some("sealed-p1"), Some("http://127.0.0.1:9/")).await.unwrap();
        let (mine, platform) = s.service_credentials_for(&w.id, "brave").await.unwrap();
        assert!(mine.is_none());
        assert_eq!(platform.as_ref().unwrap().base_url.as_deref(), Some("http://127.0.0.1:9/"));
        assert_eq!(platform.unwrap().id, "platform:brave");
        s.put_service_credential(&w.id, "brave", Some("sealed-w1"), None).await.unwrap();
        s.put_service_credential(&w.id, "brave", Some("sealed-w2"), None).await.unwrap();
        let (mine, platform) = s.service_credentials_for(&w.id, "brave").await.unwrap();
        assert_eq!(mine.unwrap().api_key_sealed.as_deref(), Some("sealed-w2"), "upsert replaced the key");
        assert_eq!(platform.unwrap().api_key_sealed.as_deref(), Some("sealed-p1"));
        assert_eq!(s.service_credentials(&w.id).await.unwrap().len(), 1);
        assert_eq!(s.service_credentials(PLATFORM).await.unwrap().len(), 1);
        s.delete_service_credential(&w.id, "brave").await.unwrap();
        assert!(matches!(s.delete_service_credential(&w.id, "brave").await, Err(StoreError::NotFound)));
        assert!(s.service_credentials_for(&w.id, "brave").await.unwrap().1.is_some(), "platform key stays");
        // a platform row may carry only a base URL
        let row = s.put_service_credential(PLATFORM, "openai", None, Some("http://127.0.0.1:9/v1")).await.unwrap();
        assert!(!row.has_key());
        assert!(!s.service_credential(PLATFORM, "openai").await.unwrap().unwrap().has_key());

        assert!(s.oauth_client("gmail").await.unwrap().is_none());
        s.put_oauth_client("gmail", "cid-1", "sealed-s1", &Default::default()).await.unwrap();
        s.put_oauth_client("gmail", "cid-2", "sealed-s2", &Default::default()).await.unwrap();
        let c = s.oauth_client("gmail").await.unwrap().unwrap();
        assert_eq!((c.client_id.as_str(), c.client_secret_sealed.as_str()), ("cid-2", "sealed-s2"));
        // both are in the sealed-value list that start-up checks and rotation use
        let sealed = s.sealed_values().await.unwrap();
        assert!(sealed.iter().any(|v| v.table == "service_credentials" && v.aad == b"chatterfly:service_credential:platform:brave"));
        assert!(sealed.iter().any(|v| v.table == "oauth_providers" && v.aad == b"chatterfly:oauth_provider:gmail"));
        s.delete_oauth_client("gmail").await.unwrap();
        assert!(s.oauth_client("gmail").await.unwrap().is_none());
    }

    async fn call_context_reads_token_role_connection_and_operation_at_once(db: Db) {
        let (s, _t) = store(db).await;
        let admin = s.create_user(&user("admin@example.com")).await.unwrap();
        let member = s.create_user(&user("member@example.com")).await.unwrap();
        let outsider = s.create_user(&user("outsider@example.com")).await.unwrap();
        s.create_token(&admin.id, "a", "hash-admin").await.unwrap();
        s.create_token(&member.id, "m", "hash-member").await.unwrap();
        s.create_token(&outsider.id, "o", "hash-outsider").await.unwrap();
        let w1 = s.create_workspace(&ws("acme"), "Acme", &admin.id).await.unwrap();
        let w2 = s.create_workspace(&ws("other"), "Other", &outsider.id).await.unwrap();
        s.set_member(&w1.id, &member.id, WorkspaceRole::Member).await.unwrap();
        let d = draft("api", 3);
        s.insert_connection(NewConnection { id: "c1", workspace_id: &w1.id, draft: &d, auth_sealed: Some("sealed-1"), created_by: None })
            .await
            .unwrap();
        // the same slug in another workspace must never be what acme's caller gets
        s.insert_connection(NewConnection { id: "c2", workspace_id: &w2.id, draft: &draft("api", 5), auth_sealed: None, created_by: None })
            .await
            .unwrap();

        // an unknown token: nothing at all
        assert!(s.call_context("hash-nobody", false, "acme", "api", "op_0001").await.unwrap().is_none());
        // a web session resolves the same way while it lives; a token hash is not a session
        s.create_session(&member.id, "sess-member", "csrf", "2999-01-01T00:00:00.000Z", None).await.unwrap();
        s.create_session(&member.id, "sess-expired", "csrf", "2000-01-01T00:00:00.000Z", None).await.unwrap();
        let by_session = s.call_context("sess-member", true, "acme", "api", "op_0001").await.unwrap().unwrap();
        assert_eq!(by_session.caller.user.id, member.id);
        assert!(s.call_context("sess-expired", true, "acme", "api", "op_0001").await.unwrap().is_none());
        assert!(s.call_context("hash-member", true, "acme", "api", "op_0001").await.unwrap().is_none());
        assert!(s.call_context("sess-member", false, "acme", "api", "op_0001").await.unwrap().is_none());

        // a member: role, connection (as get_connection reads it) and operation
        let ctx = s.call_context("hash-member", false, "acme", "api", "op_0001").await.unwrap().unwrap();
        assert_eq!(ctx.caller.user.id, member.id);
        let (w, role) = ctx.workspace.clone().unwrap();
        assert_eq!(w.id, w1.id);
        assert_eq!(role, Some(WorkspaceRole::Member));
        let (conn, op) = ctx.connection.unwrap();
        let direct = s.get_connection(&w1.id, "api").await.unwrap().unwrap();
        assert_eq!(conn.id, "c1");
        assert_eq!(conn.draft.base_url, direct.draft.base_url);
        assert_eq!(conn.auth_sealed.as_deref(), Some("sealed-1"));
        assert_eq!(conn.operation_count, 3);
        assert_eq!(conn.updated_at, direct.updated_at);
        let op = op.unwrap();
        assert_eq!(op.name.as_str(), "op_0001");
        assert_eq!(op.path.as_ref().map(|p| p.as_str()), Some("/items/1"));
        let (_, lookup_op) = s.connection_tool(&w1.id, "api", "op_0001").await.unwrap().unwrap();
        assert_eq!(Some(op), lookup_op);

        // an operation the connection does not have; a connection the workspace does not have
        let ctx = s.call_context("hash-admin", false, "acme", "api", "op_0009").await.unwrap().unwrap();
        assert_eq!(ctx.workspace.unwrap().1, Some(WorkspaceRole::Admin));
        let (conn, op) = ctx.connection.unwrap();
        assert_eq!(conn.id, "c1");
        assert!(op.is_none());
        let ctx = s.call_context("hash-admin", false, "acme", "nope", "op_0001").await.unwrap().unwrap();
        assert!(ctx.workspace.is_some() && ctx.connection.is_none());

        // not a member: the workspace without a role (the API answers 404 from that)
        let ctx = s.call_context("hash-outsider", false, "acme", "api", "op_0001").await.unwrap().unwrap();
        assert_eq!(ctx.caller.user.id, outsider.id);
        assert_eq!(ctx.workspace.unwrap().1, None);
        // in their own workspace the outsider gets that workspace's connection, not acme's
        let ctx = s.call_context("hash-outsider", false, "other", "api", "op_0004").await.unwrap().unwrap();
        assert_eq!(ctx.connection.unwrap().0.id, "c2");

        // no such workspace
        let ctx = s.call_context("hash-admin", false, "ghost", "api", "op_0001").await.unwrap().unwrap();
        assert!(ctx.workspace.is_none() && ctx.connection.is_none());
    }

    async fn pooled_connections_lost_while_idle_are_replaced(db: Db) {
        // Connections are not pinged each time they are handed out (that doubled every
        // query's round trips); one that sat idle long enough is, so a PostgreSQL restart
        // or a dropped connection costs no request.
        let (s, t) = store(db).await;
        let a = s.create_user(&user("a@example.com")).await.unwrap();
        if db == Db::Postgres {
            assert!(terminate_other_sessions(&t).await >= 1, "the pool holds an idle connection");
            tokio::time::sleep(std::time::Duration::from_millis(5_500)).await;
        }
        for _ in 0..20 {
            assert_eq!(s.get_user(&a.id).await.unwrap().unwrap().email, "a@example.com");
        }
        assert_eq!(s.count_users().await.unwrap(), 1);
    }
}

db_tests! {
    // An edit and a delete of the same connection at once take its rows in the same order:
    // never a deadlock (a database error), only the edit's success or NotFound.
    async fn concurrent_edits_and_deletes_do_not_deadlock(db: Db) {
        let (s, _t) = store(db).await;
        let a = s.create_user(&user("a@x.io")).await.unwrap();
        let w = s.create_workspace(&ws("one"), "One", &a.id).await.unwrap();
        for round in 0..20 {
            let id = format!("c{round}");
            let d = draft("api", 50);
            s.insert_connection(NewConnection { id: &id, workspace_id: &w.id, draft: &d, auth_sealed: None, created_by: None })
                .await
                .unwrap();
            let (s1, s2, wid, wid2, id2) = (s.clone(), s.clone(), w.id.clone(), w.id.clone(), id.clone());
            let next = draft("api", 60);
            let edit = tokio::spawn(async move { s1.update_connection(&id2, &wid, &next, SealedUpdate::Keep, true).await.map(|_| ()) });
            let delete = tokio::spawn(async move { s2.delete_connection(&wid2, "api").await });
            for r in [edit.await.unwrap(), delete.await.unwrap()] {
                assert!(matches!(r, Ok(()) | Err(StoreError::NotFound)), "round {round}: {r:?}");
            }
            let _ = s.delete_connection(&w.id, "api").await;
        }
    }

    async fn participants_links_keys_and_accounts(db: Db) {
        let (s, _t) = store(db).await;
        let a = s.create_user(&user("a@x.io")).await.unwrap();
        let w = s.create_workspace(&ws("one"), "One", &a.id).await.unwrap();
        let other = s.create_workspace(&ws("two"), "Two", &a.id).await.unwrap();
        s.create_participant_role(&w.id, "customer", "Customers").await.unwrap();
        assert!(matches!(s.create_participant_role(&w.id, "customer", "").await, Err(StoreError::Conflict { .. })));
        assert!(s.participant_role_exists(&w.id, "customer").await.unwrap());
        assert!(!s.participant_role_exists(&other.id, "customer").await.unwrap(), "roles are per workspace");
        let p = s
            .create_participant(&w.id, &ParticipantWrite { name: "Ada", email: Some("ada@x.io"), role: "customer" })
            .await
            .unwrap();
        assert!(p.link.is_none());
        assert!(s.participant(&other.id, &p.id).await.unwrap().is_none(), "never another workspace's");
        // links: a reissue revokes the earlier one; a lookup finds revoked ones too
        s.issue_onboarding_link(&p.id, "hash-1", 4_000_000_000).await.unwrap();
        s.issue_onboarding_link(&p.id, "hash-2", 4_000_000_000).await.unwrap();
        let one = s.onboarding_link("hash-1").await.unwrap().unwrap();
        assert!(one.link.revoked_at.is_some());
        let two = s.onboarding_link("hash-2").await.unwrap().unwrap();
        assert_eq!((two.participant.id.as_str(), two.workspace_slug.as_str()), (p.id.as_str(), "one"));
        assert!(two.link.revoked_at.is_none());
        assert_eq!(s.participant(&w.id, &p.id).await.unwrap().unwrap().link.unwrap().id, "hash-2", "the live link");
        // links issued within one millisecond: the live one speaks for the participant
        for h in ["hash-0", "hash-a", "hash-2b"] {
            s.issue_onboarding_link(&p.id, h, 4_000_000_000).await.unwrap();
            assert_eq!(s.participant(&w.id, &p.id).await.unwrap().unwrap().link.unwrap().id, h, "the live link");
        }
        assert_eq!(s.revoke_onboarding_links(&p.id).await.unwrap(), 1);
        assert!(s.onboarding_link("unknown").await.unwrap().is_none());
        // keys per (participant, connection), in the sealed-value list
        let mut d = draft("api", 1);
        d.fulfillment = chatterfly_domain::connection::Fulfillment::Participant;
        d.participant_role = Some("customer".parse().unwrap());
        let conn = s
            .insert_connection(NewConnection { id: "c1", workspace_id: &w.id, draft: &d, auth_sealed: None, created_by: None })
            .await
            .unwrap();
        assert_eq!(s.participant_connections(&w.id, "customer").await.unwrap().len(), 1);
        let at = conn.updated_at.clone();
        s.put_participant_credentials(&p.id, &conn.id, &at, "sealed-k1").await.unwrap().unwrap();
        s.put_participant_credentials(&p.id, &conn.id, &at, "sealed-k2").await.unwrap().unwrap();
        // not stored once the connection changed since it was read, nor for another role
        assert!(s.put_participant_credentials(&p.id, &conn.id, "2000-01-01T00:00:00.000Z", "sealed-x").await.unwrap().is_none());
        s.create_participant_role(&w.id, "partner", "").await.unwrap();
        let eve = s
            .create_participant(&w.id, &ParticipantWrite { name: "Eve", email: None, role: "partner" })
            .await
            .unwrap();
        assert!(s.put_participant_credentials(&eve.id, &conn.id, &at, "sealed-x").await.unwrap().is_none());
        s.delete_participant(&w.id, &eve.id).await.unwrap();
        s.delete_participant_role(&w.id, "partner").await.unwrap();
        let k = s.participant_credentials(&p.id, &conn.id).await.unwrap().unwrap();
        assert_eq!((k.secrets_sealed.as_str(), k.id), ("sealed-k2", format!("{}:c1", p.id)));
        let sealed = s.sealed_values().await.unwrap();
        assert!(sealed.iter().any(|v| v.table == "participant_credentials" && v.aad == format!("chatterfly:participant_credentials:{}:c1", p.id).into_bytes()));
        // an account per (participant, connection) beside a person's own (per provider)
        let owner = AccountOwner::Participant { participant_id: &p.id, connection_id: &conn.id };
        for (id, o) in [("acc-p", owner), ("acc-u", AccountOwner::User(&a.id))] {
            s.save_account(&AccountWrite { id, owner: o, provider: "github", identity: "ada", scopes: "read:user", tokens_sealed: "t", expires_at: None })
                .await
                .unwrap();
        }
        assert_eq!(s.account_for(owner, "github").await.unwrap().unwrap().id, "acc-p");
        assert_eq!(s.account_for(AccountOwner::User(&a.id), "github").await.unwrap().unwrap().id, "acc-u");
        assert_eq!(s.accounts_of(&a.id).await.unwrap().len(), 1, "My Accounts shows a person's own only");
        assert_eq!(s.participant_accounts_of(&conn.id).await.unwrap().len(), 1);
        // a reconnect updates the same row
        s.save_account(&AccountWrite { id: "acc-p", owner, provider: "github", identity: "ada2", scopes: "repo", tokens_sealed: "t2", expires_at: Some(1) })
            .await
            .unwrap();
        assert_eq!(s.account_for(owner, "github").await.unwrap().unwrap().identity, "ada2");
        // roles in use are kept; the connection's move drops keys and accounts
        assert_eq!(s.delete_participant_role(&w.id, "customer").await.unwrap(), RoleDelete::InUse { participants: 1, connections: 1 });
        assert_eq!(s.delete_participant_credentials_of(&conn.id).await.unwrap(), 2);
        assert!(s.participant_credentials(&p.id, &conn.id).await.unwrap().is_none());
        assert!(s.account_for(owner, "github").await.unwrap().is_none());
        assert!(s.account_for(AccountOwner::User(&a.id), "github").await.unwrap().is_some(), "a person's own stays");
        // deleting a participant takes their links and keys with them
        s.put_participant_credentials(&p.id, &conn.id, &at, "sealed-k3").await.unwrap().unwrap();
        s.delete_participant(&w.id, &p.id).await.unwrap();
        assert!(s.onboarding_link("hash-2b").await.unwrap().is_none());
        assert!(s.participant_credentials_of_connection(&conn.id).await.unwrap().is_empty());
        assert!(matches!(s.delete_participant(&w.id, &p.id).await, Err(StoreError::NotFound)));
        s.delete_connection(&w.id, "api").await.unwrap();
        assert_eq!(s.delete_participant_role(&w.id, "customer").await.unwrap(), RoleDelete::Deleted);
        assert_eq!(s.delete_participant_role(&w.id, "customer").await.unwrap(), RoleDelete::NotFound);
    }

    async fn agents_runs_and_steps(db: Db) {
        let (s, _t) = store(db).await;
        let a = s.create_user(&user("a@x.io")).await.unwrap();
        let w = s.create_workspace(&ws("one"), "One", &a.id).await.unwrap();
        let other = s.create_workspace(&ws("two"), "Two", &a.id).await.unwrap();
        let write = AgentWrite {
            name: "Triage",
            instructions: "Sort issues.",
            provider: "openai",
            model: "gpt-4.1",
            tools: r#"["web_search","github.create_issue"]"#,
            max_steps: 8,
        };
        let agent = s.create_agent(&w.id, &write, Some(&a.id)).await.unwrap();
        assert_eq!((agent.name.as_str(), agent.max_steps, agent.created_by.as_deref()), ("Triage", 8, Some(a.id.as_str())));
        assert!(matches!(s.create_agent(&w.id, &write, None).await, Err(StoreError::Conflict { .. })), "names are unique per workspace");
        s.create_agent(&other.id, &write, None).await.unwrap();
        assert!(s.agent(&other.id, &agent.id).await.unwrap().is_none(), "never another workspace's");
        assert_eq!(s.agents(&w.id).await.unwrap().len(), 1);
        let renamed = s.update_agent(&w.id, &agent.id, &AgentWrite { name: "Triage 2", max_steps: 3, ..write }).await.unwrap();
        assert_eq!((renamed.name.as_str(), renamed.max_steps), ("Triage 2", 3));
        assert!(matches!(s.update_agent(&other.id, &agent.id, &write).await, Err(StoreError::NotFound)));

        // a run: steps in order with their tokens, ended once
        let run = s.create_run(&renamed, r#"[{"role":"user","text":"hi"}]"#, None, Some(&a.id)).await.unwrap();
        assert_eq!((run.status.as_str(), run.steps), ("running", 0));
        let (s1, s2) = (s.clone(), s.clone());
        let first = s1.append_step(&run.id, "model", r#"{"text":null}"#, 12, (100, 7)).await.unwrap();
        assert_eq!(first.seq, 0);
        // a turn's tool calls end at once: each step gets its own number
        let calls: Vec<_> = (0..8)
            .map(|i| {
                let (s2, id) = (s2.clone(), run.id.clone());
                tokio::spawn(async move { s2.append_step(&id, "tool", &format!(r#"{{"call":{i}}}"#), 30, (0, 0)).await })
            })
            .collect();
        let mut seqs = Vec::new();
        for c in calls {
            seqs.push(c.await.unwrap().unwrap().seq);
        }
        seqs.sort();
        assert_eq!(seqs, (1..=8).collect::<Vec<i64>>());
        let steps = s.steps(&run.id, 1).await.unwrap();
        assert_eq!((steps.len(), steps[0].kind.as_str()), (8, "tool"));
        // a batch (more than one INSERT's worth) next to a single step: one number each,
        // the batch's in its order
        let many: Vec<String> = (0..150).map(|i| format!(r#"{{"b":{i}}}"#)).collect();
        let batch: Vec<NewStep<'_>> = many.iter().map(|d| NewStep { kind: "tool", data: d, duration_ms: 1, tokens: (1, 2) }).collect();
        let (b, single) = tokio::join!(s.append_steps(&run.id, &batch), s2.append_step(&run.id, "model", "{}", 1, (0, 0)));
        let (b, single) = (b.unwrap(), single.unwrap());
        let mut all: Vec<i64> = b.iter().map(|x| x.seq).collect();
        all.push(single.seq);
        all.sort();
        assert_eq!(all, (9..160).collect::<Vec<i64>>());
        assert!(b.windows(2).all(|w| w[1].seq == w[0].seq + 1), "a batch keeps its order");
        let stored = s.steps(&run.id, 9).await.unwrap();
        assert_eq!(stored.len(), 151);
        let first_of_batch = stored.iter().find(|x| x.seq == b[0].seq).unwrap();
        assert_eq!(first_of_batch.data, r#"{"b":0}"#);
        assert!(s.append_steps(&run.id, &[]).await.unwrap().is_empty());
        assert!(matches!(s.append_steps("no-such-run", &batch[..1]).await, Err(StoreError::NotFound)));
        assert!(s.request_cancel(&w.id, &run.id).await.unwrap());
        assert!(!s.request_cancel(&other.id, &run.id).await.unwrap(), "another workspace cannot stop it");
        let r = s.run(&w.id, &run.id).await.unwrap().unwrap();
        assert_eq!((r.input_tokens, r.output_tokens, r.steps, r.cancel_requested), (250, 307, 160, true));
        let end = RunEnd { status: "cancelled", output: None, error: Some("cancelled by a@x.io") };
        assert!(s.finish_run(&run.id, &end).await.unwrap());
        assert!(!s.finish_run(&run.id, &RunEnd { status: "succeeded", output: Some("\"x\""), error: None }).await.unwrap(), "ended once");
        assert_eq!(s.run(&w.id, &run.id).await.unwrap().unwrap().status, "cancelled");
        assert!(s.run(&other.id, &run.id).await.unwrap().is_none());
        // runs listed newest first; a stale running one is failed on start
        let stale = s.create_run(&renamed, "[]", None, None).await.unwrap();
        let listed = s.runs_of(&w.id, &agent.id, None, 10).await.unwrap();
        assert_eq!(s.runs_of(&w.id, &agent.id, Some(&a.id), 10).await.unwrap().len(), 1, "only the run a started");
        assert!(s.runs_of(&w.id, &agent.id, Some("someone-else"), 10).await.unwrap().is_empty());
        assert_eq!(listed[0].id, stale.id);
        assert_eq!(s.fail_stale_runs("9999-01-01T00:00:00.000Z", "the server stopped during the run").await.unwrap(), 1);
        assert_eq!(s.run(&w.id, &stale.id).await.unwrap().unwrap().status, "failed");
        // deleting the agent takes its runs and steps
        s.delete_agent(&w.id, &agent.id).await.unwrap();
        assert!(s.run(&w.id, &run.id).await.unwrap().is_none());
        assert!(s.steps(&run.id, 0).await.unwrap().is_empty());
        assert!(matches!(s.delete_agent(&w.id, &agent.id).await, Err(StoreError::NotFound)));
    }

    async fn workflow_runs_are_claimed_once_and_fenced(db: Db) {
        let (s, _t) = store(db).await;
        let a = s.create_user(&user("a@x.io")).await.unwrap();
        let w = s.create_workspace(&ws("one"), "One", &a.id).await.unwrap();
        let other = s.create_workspace(&ws("two"), "Two", &a.id).await.unwrap();
        let def = r#"{"nodes":[{"id":"a","type":"tool","tool_name":"hb.get","input":{}}]}"#;
        let wf = s.create_workflow(&w.id, "Flow", def, Some(&a.id)).await.unwrap();
        assert!(matches!(s.create_workflow(&w.id, "Flow", def, None).await, Err(StoreError::Conflict { .. })));
        assert!(s.workflow(&other.id, &wf.id).await.unwrap().is_none(), "never another workspace's");
        assert_eq!(wf.deployed_version, None);
        // two deploys at once get two numbers
        let (d1, d2) = tokio::join!(
            s.deploy_workflow(&w.id, &wf.id, def, r#"["hb.get"]"#, Some(&a.id)),
            s.deploy_workflow(&w.id, &wf.id, def, r#"["hb.get"]"#, None)
        );
        let mut versions = vec![d1.unwrap().version, d2.unwrap().version];
        versions.sort();
        assert_eq!(versions, [1, 2]);
        assert_eq!(s.workflow(&w.id, &wf.id).await.unwrap().unwrap().deployed_version, Some(2));
        assert!(matches!(s.deploy_workflow(&other.id, &wf.id, def, "[]", None).await, Err(StoreError::NotFound)));
        let deployed = s.deployed_tools(&w.id).await.unwrap();
        assert_eq!((deployed.len(), deployed[0].version, deployed[0].tools.as_str()), (1, 2, r#"["hb.get"]"#));

        // 30 runs with 3 steps each; 6 claimers at once take each run exactly once
        let nodes = [
            NewWorkflowStep { node_id: "a", kind: "tool", target: "hb.get" },
            NewWorkflowStep { node_id: "b", kind: "tool", target: "hb.get" },
            NewWorkflowStep { node_id: "c", kind: "agent", target: "ag" },
        ];
        let mut ids = Vec::new();
        for i in 0..30 {
            let id = chatterfly_store::new_id();
            let sealed = (i == 0).then_some("cf1:sealed");
            let r = s.create_workflow_run(&NewWorkflowRun { id: &id, workspace_id: &w.id, workflow_id: &wf.id, version: 2,
                input: "{}", credentials_sealed: sealed, participant_id: None, started_by: Some(&a.id), steps: &nodes }).await.unwrap();
            assert_eq!((r.status.as_str(), r.claims), ("queued", 0));
            ids.push(id);
        }
        assert_eq!(s.unfinished_workflow_runs(&w.id).await.unwrap(), 30);
        let steps = s.workflow_steps(&ids[0]).await.unwrap();
        assert_eq!(steps.iter().map(|x| (x.node_id.as_str(), x.seq, x.status.as_str())).collect::<Vec<_>>(),
            [("a", 0, "pending"), ("b", 1, "pending"), ("c", 2, "pending")]);
        let until = chatterfly_store::now_ms() + 60_000;
        let claimers: Vec<_> = (0..6)
            .map(|k| {
                let s = s.clone();
                tokio::spawn(async move {
                    let mut got = Vec::new();
                    while let Some(r) = s.claim_workflow_run(&format!("replica-{k}"), until).await.unwrap() {
                        got.push(r.id);
                    }
                    got
                })
            })
            .collect();
        let mut claimed = Vec::new();
        for c in claimers {
            claimed.extend(c.await.unwrap());
        }
        claimed.sort();
        let mut want = ids.clone();
        want.sort();
        assert_eq!(claimed, want, "every run taken exactly once");
        assert!(s.claim_workflow_run("late", until).await.unwrap().is_none(), "nothing left while leases last");
        // a workspace holding its share waits; another's run goes first
        let o_wf = s.create_workflow(&other.id, "Other", def, None).await.unwrap();
        s.deploy_workflow(&other.id, &o_wf.id, def, "[]", None).await.unwrap();
        let o_run = chatterfly_store::new_id();
        s.create_workflow_run(&NewWorkflowRun { id: &o_run, workspace_id: &other.id, workflow_id: &o_wf.id, version: 1,
            input: "{}", credentials_sealed: None, participant_id: None, started_by: None, steps: &nodes }).await.unwrap();
        let extra = chatterfly_store::new_id();
        s.create_workflow_run(&NewWorkflowRun { id: &extra, workspace_id: &w.id, workflow_id: &wf.id, version: 2,
            input: "{}", credentials_sealed: None, participant_id: None, started_by: None, steps: &nodes }).await.unwrap();
        let got = s.claim_workflow_runs("fair", until, 10, 30).await.unwrap();
        assert_eq!(got.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(), [o_run.as_str()], "`one` holds 30 runs, its share");
        let got = s.claim_workflow_runs("fair", until, 10, 31).await.unwrap();
        assert_eq!(got.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(), [extra.as_str()]);
        // a claim asking for many takes no more than is left of a workspace's share, nor do
        // claimers at once (another workflow of `one`, so the lists below keep their counts)
        let f_wf = s.create_workflow(&w.id, "Fair", def, None).await.unwrap();
        s.deploy_workflow(&w.id, &f_wf.id, def, "[]", None).await.unwrap();
        let mut backlog = Vec::new();
        for _ in 0..8 {
            let id = chatterfly_store::new_id();
            s.create_workflow_run(&NewWorkflowRun { id: &id, workspace_id: &w.id, workflow_id: &f_wf.id, version: 1,
                input: "{}", credentials_sealed: None, participant_id: None, started_by: None, steps: &nodes }).await.unwrap();
            backlog.push(id);
        }
        let got = s.claim_workflow_runs("fair", until, 10, 33).await.unwrap();
        // (runs made in the same millisecond are equally old: which two is not asserted)
        assert_eq!(got.len(), 2, "31 running, a share of 33: two of the eight");
        assert!(got.iter().all(|r| backlog.contains(&r.id)));
        let claimers: Vec<_> = (0..6)
            .map(|k| {
                let s = s.clone();
                tokio::spawn(async move { s.claim_workflow_runs(&format!("fair-{k}"), until, 10, 36).await.unwrap().len() })
            })
            .collect();
        let mut taken = 0;
        for c in claimers {
            taken += c.await.unwrap();
        }
        assert_eq!(taken, 3, "six claimers at once take the three left of a share of 36");
        for id in &backlog {
            s.cancel_workflow_run(&w.id, id).await.unwrap();
        }
        assert!(s.may_act_in(&w.id, &a.id).await.unwrap());
        let b = s.create_user(&user("b@x.io")).await.unwrap();
        assert!(!s.may_act_in(&w.id, &b.id).await.unwrap(), "not a member");

        // only the holder writes; a cancel reaches it when it renews
        let run = s.workflow_run(&w.id, &ids[0]).await.unwrap().unwrap();
        let holder = run.lease_owner.clone().unwrap();
        let write = StepWrite { node_id: "a", status: "running", input: Some(r#"{"x":1}"#), output: None, error: None,
            attempts: r#"[{"attempt":1}]"#, duration_ms: None };
        assert!(!s.write_workflow_step(&run.id, "intruder", 1, &write).await.unwrap(), "another replica's write is refused");
        assert!(s.write_workflow_step(&run.id, &holder, 1, &write).await.unwrap());
        // a batch of several runs' writes: each fenced by its own run's holder
        let r2 = s.workflow_run(&w.id, &ids[2]).await.unwrap().unwrap();
        let h2 = r2.lease_owner.clone().unwrap();
        let end = StepWrite { status: "succeeded", output: Some(r#"{"ok":true}"#), duration_ms: Some(7), ..write };
        let batch = [
            FencedStepWrite { run_id: &r2.id, owner: &h2, rev: 1, write },
            FencedStepWrite { run_id: &r2.id, owner: &h2, rev: 2, write: StepWrite { node_id: "b", ..end } },
            FencedStepWrite { run_id: &r2.id, owner: "intruder", rev: 3, write: StepWrite { node_id: "c", ..end } },
            FencedStepWrite { run_id: "no-such-run", owner: &h2, rev: 1, write },
        ];
        assert_eq!(s.write_workflow_steps(&batch).await.unwrap(), [true, true, false, false]);
        let st2 = s.workflow_steps(&r2.id).await.unwrap();
        assert_eq!(st2.iter().map(|x| (x.status.as_str(), x.rev)).collect::<Vec<_>>(), [("running", 1), ("succeeded", 2), ("pending", 0)]);
        assert_eq!((st2[1].output.as_deref(), st2[1].duration_ms, st2[0].input.as_deref()), (Some(r#"{"ok":true}"#), Some(7), Some(r#"{"x":1}"#)));
        assert!(st2[0].started_at.is_some() && st2[1].finished_at.is_some());
        assert_eq!(s.renew_workflow_lease(&run.id, &holder, until).await.unwrap(), Some(false));
        assert_eq!(s.renew_workflow_lease(&run.id, "intruder", until).await.unwrap(), None);
        assert!(!s.cancel_workflow_run(&other.id, &run.id).await.unwrap(), "another workspace cannot stop it");
        assert!(s.cancel_workflow_run(&w.id, &run.id).await.unwrap());
        assert_eq!(s.renew_workflow_lease(&run.id, &holder, until).await.unwrap(), Some(true));
        let changed = s.workflow_steps_changed(&run.id, (0, i64::MAX), 10).await.unwrap();
        assert_eq!((changed.len(), changed[0].node_id.as_str(), changed[0].status.as_str()), (1, "a", "running"));

        // a lease that ran out: another replica takes the run over, and the first writes nothing more
        let r1 = s.workflow_run(&w.id, &ids[1]).await.unwrap().unwrap();
        let old = r1.lease_owner.clone().unwrap();
        assert_eq!(s.renew_workflow_lease(&r1.id, &old, 1).await.unwrap(), Some(false));
        let taken = s.claim_workflow_run("successor", until).await.unwrap().unwrap();
        assert_eq!((taken.id.as_str(), taken.claims, taken.status.as_str()), (r1.id.as_str(), 2, "running"));
        assert!(!s.write_workflow_step(&r1.id, &old, 1, &write).await.unwrap(), "the old holder is fenced off");
        let ok = RunEnding { status: "succeeded", output: None, error: None, close: None };
        let failed = RunEnding { status: "failed", output: None, error: Some("x"), close: Some(("skipped", 2)) };
        assert!(!s.finish_workflow_run(&r1.id, &old, &ok).await.unwrap());
        assert!(!s.finish_workflow_run(&r1.id, &old, &failed).await.unwrap());
        assert!(s.workflow_steps(&r1.id).await.unwrap().iter().all(|x| x.status == "pending"), "nothing closed by the old holder");
        assert!(s.finish_workflow_run(&r1.id, "successor", &failed).await.unwrap());
        assert!(!s.finish_workflow_run(&r1.id, "successor", &failed).await.unwrap(), "ended once");
        let ended = s.workflow_run(&w.id, &r1.id).await.unwrap().unwrap();
        assert_eq!((ended.status.as_str(), ended.lease_owner, ended.credentials_sealed), ("failed", None, None));
        assert!(s.workflow_steps(&r1.id).await.unwrap().iter().all(|x| x.status == "skipped"));
        // steps closed together share a change: paged one at a time, none is lost
        let mut after = (0, i64::MAX);
        let mut seen = Vec::new();
        while let Some(x) = s.workflow_steps_changed(&r1.id, after, 1).await.unwrap().pop() {
            after = (x.rev, x.seq);
            seen.push(x.node_id);
        }
        assert_eq!(seen, ["a", "b", "c"]);
        // the sealed credentials go when the run ends
        assert_eq!(run.credentials_sealed.as_deref(), Some("cf1:sealed"));
        assert!(s.finish_workflow_run(&run.id, &holder, &RunEnding { status: "cancelled", close: None, ..ok }).await.unwrap());
        assert_eq!(s.workflow_run(&w.id, &run.id).await.unwrap().unwrap().credentials_sealed, None);

        // a queued run cancelled ends at once
        let q = chatterfly_store::new_id();
        s.create_workflow_run(&NewWorkflowRun { id: &q, workspace_id: &w.id, workflow_id: &wf.id, version: 2,
            input: "{}", credentials_sealed: None, participant_id: None, started_by: None, steps: &nodes }).await.unwrap();
        assert!(s.cancel_workflow_run(&w.id, &q).await.unwrap());
        assert_eq!(s.workflow_run(&w.id, &q).await.unwrap().unwrap().status, "cancelled");
        assert!(s.workflow_steps(&q).await.unwrap().iter().all(|x| x.status == "cancelled"));
        assert!(!s.cancel_workflow_run(&w.id, &q).await.unwrap());
        // lists: filtered, paged newest first, members' own
        let page = s.workflow_runs_of(&w.id, &wf.id, &WorkflowRunFilter { limit: 5, ..Default::default() }).await.unwrap();
        assert_eq!((page.len(), page[0].id.as_str()), (5, q.as_str()));
        let next = s.workflow_runs_of(&w.id, &wf.id, &WorkflowRunFilter { limit: 100, before: Some(&page[4].id), ..Default::default() }).await.unwrap();
        assert_eq!(next.len(), 32 - 5);
        let cancelled = s.workflow_runs_of(&w.id, &wf.id, &WorkflowRunFilter { limit: 100, status: Some("cancelled"), ..Default::default() }).await.unwrap();
        assert_eq!(cancelled.len(), 2);
        let mine = s.workflow_runs_of(&w.id, &wf.id, &WorkflowRunFilter { limit: 100, started_by: Some(&a.id), ..Default::default() }).await.unwrap();
        assert_eq!(mine.len(), 30);
        assert!(s.workflow_runs_of(&other.id, &wf.id, &WorkflowRunFilter { limit: 100, ..Default::default() }).await.unwrap().is_empty());
        // deleting the workflow takes its runs
        s.delete_workflow(&w.id, &wf.id).await.unwrap();
        assert!(s.workflow_run(&w.id, &q).await.unwrap().is_none());
        assert!(s.workflow_steps(&q).await.unwrap().is_empty());
    }
}
