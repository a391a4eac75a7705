//! Telegram bots against telegram-test-api (npm, `scripts/telegram.sh`): what the bot sent
//! is read back from the peer; Telegram's refusals (401, 429 with `retry_after`, 400, a
//! redirect) come from bot ids the peer script answers as Telegram does. The bot token sits
//! in the URL path: it must never show in an answer, a log line, the audit or the database.
//! Both databases.

use chatterfly_testkit::peers::ScriptPeer;
use chatterfly_testkit::server::Options;

use super::*;

const CONN: &str = "/api/workspaces/default/connections";

async fn peer(p: &ScriptPeer, method: Method, path: &str, body: Option<Value>) -> Value {
    let mut req = super::accounts::no_redirects().request(method, format!("{}{path}", p.url));
    if let Some(b) = body {
        req = req.json(&b);
    }
    req.send().await.unwrap().json().await.unwrap()
}

/// What the bot with `token` sent, as the peer recorded it.
async fn sent(p: &ScriptPeer, token: &str) -> Vec<Value> {
    let v = peer(p, Method::POST, "/getUpdatesHistory", Some(json!({"token": token}))).await;
    v["result"].as_array().cloned().unwrap_or_default()
}

/// Requests the peer received for `token` (refused ones too).
async fn requests(p: &ScriptPeer, token: &str) -> u64 {
    peer(p, Method::GET, "/__test/requests", None).await[token]
        .as_u64()
        .unwrap_or(0)
}

async fn bot(s: &TestServer, p: &ScriptPeer, slug: &str, token: &str) {
    let (st, v) = s
        .call(
            Method::POST,
            CONN,
            Some(
                json!({"name": slug, "slug": slug, "service_type": "telegram", "base_url": p.url,
                "auth": {"type": "bot_token", "token": token}}),
            ),
        )
        .await;
    assert_eq!(st, 201, "{v}");
    assert_eq!(v["auth"], json!({"type": "bot_token", "token_set": true}));
}

fn tool(slug: &str, op: &str) -> String {
    format!("/api/workspaces/default/tools/{slug}.{op}/invoke")
}

db_tests! {
    async fn bots_send_read_and_describe_themselves(db: Db) {
        let tg = ScriptPeer::telegram();
        let s = TestServer::start_with(BIN, db, local_upstreams(&[])).await;
        let token = "5550001:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw";
        bot(&s, &tg, "tg", token).await;
        let (_, c) = s.call(Method::GET, &format!("{CONN}/tg"), None).await;
        let ops: Vec<&str> = c["operations"].as_array().unwrap().iter().map(|o| o["name"].as_str().unwrap()).collect();
        assert_eq!(ops, ["send_message", "get_me", "get_updates"]);

        let (st, v) = s.call(Method::POST, &tool("tg", "get_me"), Some(json!({}))).await;
        assert_eq!((st, v["output"]["username"].as_str()), (200, Some("TestNameBot")), "{v}");

        let (st, v) = s.call(Method::POST, &tool("tg", "send_message"), Some(json!({"arguments": {
            "chat_id": 4242, "text": "<b>Order</b> #17 &amp; more: shipped ✅", "parse_mode": "HTML",
            "disable_notification": true, "reply_to_message_id": 7}}))).await;
        assert_eq!(st, 200, "{v}");
        assert_eq!(v["output"]["chat"]["id"], 4242);
        let got = sent(&tg, token).await;
        assert_eq!(got.len(), 1, "{got:?}");
        let m = &got[0]["message"];
        assert_eq!(m["text"], "<b>Order</b> #17 &amp; more: shipped ✅");
        assert_eq!((m["chat_id"].as_i64(), m["parse_mode"].as_str()), (Some(4242), Some("HTML")));
        assert_eq!((m["disable_notification"].as_bool(), m["reply_to_message_id"].as_i64()), (Some(true), Some(7)));
        // a channel by name, and a numeric id written as text
        for chat in [json!("@my_channel"), json!("-1001234567890")] {
            let (st, v) = s.call(Method::POST, &tool("tg", "send_message"), Some(json!({"arguments": {"chat_id": chat, "text": "hi"}}))).await;
            assert_eq!(st, 200, "{v}");
        }
        assert_eq!(sent(&tg, token).await[2]["message"]["chat_id"], -1_001_234_567_890_i64, "sent as a number");

        // what people wrote to the bot
        let (_, none) = s.call(Method::POST, &tool("tg", "get_updates"), Some(json!({"arguments": {"timeout": 0}}))).await;
        assert_eq!(none["output"], json!([]), "{none}");
        peer(&tg, Method::POST, "/sendMessage", Some(json!({"botToken": token, "text": "where is my order?",
            "chat": {"id": 99, "type": "private"}, "from": {"id": 99, "first_name": "Ada"}}))).await;
        let (st, v) = s.call(Method::POST, &tool("tg", "get_updates"), Some(json!({"arguments": {"limit": 10}}))).await;
        assert_eq!(st, 200, "{v}");
        assert_eq!(v["output"][0]["message"]["text"], "where is my order?", "{v}");

        // the check the wizard makes before saving: the bot's name, nothing stored
        let (st, v) = s.call(Method::POST, &format!("{CONN}/telegram-check"), Some(json!({"token": token, "base_url": tg.url}))).await;
        assert_eq!((st, v["bot"]["first_name"].as_str()), (200, Some("Test First name")), "{v}");
        let (st, v) = s.call(Method::POST, &format!("{CONN}/telegram-check"), Some(json!({"token": "4010001:refused", "base_url": tg.url}))).await;
        assert_eq!((st, v["code"].as_str()), (422, Some("invalid_credentials")), "{v}");
        let (st, v) = s.call(Method::POST, &format!("{CONN}/telegram-check"), Some(json!({"token": "not-a-token", "base_url": tg.url}))).await;
        assert_eq!((st, v["errors"][0]["pointer"].as_str()), (422, Some("/token")), "{v}");
        let (_, list) = s.call(Method::GET, CONN, None).await;
        assert_eq!(list.as_array().unwrap().len(), 1);
        // a caller's bot token is held to the same form
        let (st, v) = s.call(Method::POST, CONN, Some(json!({"name": "C", "slug": "cbot", "service_type": "telegram",
            "base_url": tg.url, "auth": {"type": "bot_token"}, "fulfillment": "caller"}))).await;
        assert_eq!(st, 201, "{v}");
        for bad in ["../x", "123:abc?x", "123:abc/../../x"] {
            let (st, v) = s.call(Method::POST, &tool("cbot", "get_me"), Some(json!({"arguments": {}, "credentials": {"token": bad}}))).await;
            assert_eq!((st, v["code"].as_str()), (422, Some("invalid_credentials")), "{bad}: {v}");
        }
        let (st, v) = s.call(Method::POST, &tool("cbot", "get_me"), Some(json!({"arguments": {}, "credentials": {"token": token}}))).await;
        assert_eq!(st, 200, "{v}");
        s.call(Method::DELETE, &format!("{CONN}/cbot"), None).await;
        // a member may not probe tokens
        let (_, member) = s.user("m@example.com").await;
        s.call(Method::PUT, &format!("/api/workspaces/default/members/{}", s.call_as(&member, Method::GET, "/api/me", None).await.1["id"].as_str().unwrap()), Some(json!({"role": "member"}))).await;
        let (st, _) = s.call_as(&member, Method::POST, &format!("{CONN}/telegram-check"), Some(json!({"token": token, "base_url": tg.url}))).await;
        assert_eq!(st, 403);
    }

    async fn bad_messages_are_refused_before_anything_is_sent(db: Db) {
        let tg = ScriptPeer::telegram();
        let s = TestServer::start_with(BIN, db, local_upstreams(&[])).await;
        let token = "5550002:AAFqLzUlmNjbtaKsPyrDnvGWhCb3ddbE2";
        // bot tokens not of the form <digits>:<text>: refused at the field, nothing stored
        for bad in ["AAFqLzUlmNjbt", "abc:def", "5550002:", "5550002:has space", "5550002:a/b", "5550002:a\u{0}b"] {
            let (st, v) = s.call(Method::POST, CONN, Some(json!({"name": "T", "slug": "t", "service_type": "telegram",
                "base_url": tg.url, "auth": {"type": "bot_token", "token": bad}}))).await;
            assert_eq!((st, v["errors"][0]["pointer"].as_str()), (422, Some("/auth/token")), "{bad:?}: {v}");
            assert!(!v.to_string().contains("AAFqLzUlmNjbt"), "the value is not echoed: {v}");
        }
        let (_, list) = s.call(Method::GET, CONN, None).await;
        assert_eq!(list, json!([]));
        bot(&s, &tg, "tg", token).await;
        let cases = [
            (json!({"chat_id": "bob", "text": "hi"}), "/arguments/chat_id", "@username"),
            (json!({"chat_id": "@ab", "text": "hi"}), "/arguments/chat_id", "5 to 32"),
            (json!({"chat_id": 1.5, "text": "hi"}), "/arguments/chat_id", ""),
            (json!({"chat_id": 1, "text": "x".repeat(5000)}), "/arguments/text", "4096"),
            (json!({"chat_id": 1, "text": format!("<b>{}</b>", "é".repeat(4097)), "parse_mode": "HTML"}), "/arguments/text", "4096"),
            (json!({"chat_id": 1, "text": "ring \u{7} bell"}), "/arguments/text", "U+0007"),
            (json!({"chat_id": 1, "text": "esc \u{1b}[2J"}), "/arguments/text", "U+001B"),
            (json!({"chat_id": 1, "text": "<script>alert(1)</script>", "parse_mode": "HTML"}), "/arguments/text", "<script>"),
            (json!({"chat_id": 1, "text": "<b>open", "parse_mode": "HTML"}), "/arguments/text", "open"),
            (json!({"chat_id": 1, "text": "hi", "parse_mode": "RTF"}), "/arguments/parse_mode", ""),
            (json!({"chat_id": 1, "text": ""}), "/arguments/text", ""),
            (json!({"chat_id": 1, "text": "hi", "photo": "x"}), "/arguments", ""),
            (json!({"chat_id": 1, "text": "hi", "reply_to_message_id": 1e30}), "/arguments/reply_to_message_id", ""),
        ];
        for (args, pointer, needle) in cases {
            let (st, v) = s.call(Method::POST, &tool("tg", "send_message"), Some(json!({"arguments": args}))).await;
            assert_eq!(st, 422, "{args}: {v}");
            assert_eq!(v["code"], "invalid_arguments", "{v}");
            assert_eq!(v["errors"][0]["pointer"].as_str(), Some(pointer), "{args}: {v}");
            assert!(v["detail"].as_str().unwrap().contains(needle), "{args}: {v}");
        }
        assert_eq!(requests(&tg, token).await, 0, "nothing was sent");
        // exactly at the limit is sent
        let (st, v) = s.call(Method::POST, &tool("tg", "send_message"), Some(json!({"arguments": {"chat_id": 1, "text": "y".repeat(4096)}}))).await;
        assert_eq!(st, 200, "{v}");
        assert_eq!(requests(&tg, token).await, 1);
    }

    async fn telegrams_refusals_are_problems_and_the_token_shows_nowhere(db: Db) {
        let tg = ScriptPeer::telegram();
        let s = TestServer::start_with(BIN, db, Options {
            rust_log: "trace".into(),
            env: vec![("CHATTERFLY_ALLOW_PRIVATE".into(), "127.0.0.1,localhost".into())],
        }).await;
        let run = uuid::Uuid::new_v4().simple().to_string();
        let secret = |id: &str| format!("{id}:CANARY{run}");
        let (refused, flooded, no_chat, echoed, moved) =
            (secret("4010007"), secret("4290007"), secret("4000007"), secret("4180007"), secret("3020007"));
        for (slug, token) in [("refused", &refused), ("flooded", &flooded), ("nochat", &no_chat), ("echoed", &echoed), ("moved", &moved)] {
            bot(&s, &tg, slug, token).await;
        }
        let mut answers = String::new();
        let mut call = async |slug: &str, args: Value| {
            let resp = super::accounts::no_redirects()
                .post(format!("{}{}", s.url, tool(slug, "send_message")))
                .bearer_auth(&s.token)
                .json(&json!({"arguments": args}))
                .send()
                .await
                .unwrap();
            let status = resp.status().as_u16();
            let retry = resp.headers().get("retry-after").map(|v| v.to_str().unwrap().to_owned());
            let body = resp.text().await.unwrap();
            answers.push_str(&body);
            (status, retry, serde_json::from_str::<Value>(&body).unwrap())
        };
        let hi = json!({"chat_id": 5, "text": "hi"});
        let (st, _, v) = call("refused", hi.clone()).await;
        assert_eq!((st, v["code"].as_str(), v["upstream_code"].as_u64()), (422, Some("invalid_credentials"), Some(401)), "{v}");
        let (st, retry, v) = call("flooded", hi.clone()).await;
        assert_eq!((st, v["code"].as_str(), v["retry_after"].as_u64()), (429, Some("rate_limited"), Some(17)), "{v}");
        assert_eq!(retry.as_deref(), Some("17"));
        assert!(v["detail"].as_str().unwrap().contains("retry after 17"), "{v}");
        let (st, _, v) = call("nochat", hi.clone()).await;
        assert_eq!((st, v["code"].as_str()), (422, Some("telegram_error")), "{v}");
        assert!(v["detail"].as_str().unwrap().contains("chat not found"), "{v}");
        // Telegram's description echoing the token: redacted
        let (st, _, v) = call("echoed", hi.clone()).await;
        assert_eq!(st, 422, "{v}");
        assert!(v["detail"].as_str().unwrap().contains("[REDACTED]"), "{v}");
        // a redirect carrying the token in its Location: not followed, not echoed
        let (st, _, v) = call("moved", hi.clone()).await;
        assert_eq!((st, v["code"].as_str()), (502, Some("upstream_error")), "{v}");
        assert_eq!(requests(&tg, &moved).await, 1, "the redirect was not followed");
        // an unreachable Bot API server: the error names the host, not the URL
        let (st, v) = s.call(Method::PATCH, &format!("{CONN}/refused"), Some(json!({"base_url": "http://127.0.0.1:9", "auth": {"type": "bot_token", "token": refused}}))).await;
        assert_eq!(st, 200, "{v}");
        let (st, _, v) = call("refused", hi.clone()).await;
        assert_eq!((st, v["code"].as_str()), (502, Some("upstream_unreachable")), "{v}");

        // the audit has names and outcomes only
        let (_, audit) = s.call(Method::GET, "/api/workspaces/default/audit?limit=50", None).await;
        let codes: Vec<&str> = audit["events"].as_array().unwrap().iter().filter_map(|e| e["error_code"].as_str()).collect();
        for code in ["invalid_credentials", "rate_limited", "telegram_error", "upstream_error", "upstream_unreachable"] {
            assert!(codes.contains(&code), "{code} in {codes:?}");
        }
        answers.push_str(&audit.to_string());
        for slug in ["refused", "moved"] {
            answers.push_str(&s.call(Method::GET, &format!("{CONN}/{slug}"), None).await.1.to_string());
        }
        let forms = super::canary::forms(&[format!("CANARY{run}")]);
        super::canary::assert_clean("the answers", &answers, &forms);
        super::canary::assert_clean("the log (trace)", &s.output(), &forms);
        assert!(s.output().contains("sendMessage") || s.output().contains("send_message"), "the log covers the calls");
        let db_text = super::accounts::database_text(&s.db).await;
        assert!(db_text.contains("send_message"), "the database was read");
        super::canary::assert_clean("the database", &db_text, &forms);
    }
}
