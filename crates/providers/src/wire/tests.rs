use serde_json::json;

use super::*;
use crate::chat::ToolResult;
use crate::declare::{ToolSpec, declare};

fn conversation() -> Vec<Message> {
    vec![
        Message::User {
            text: "forecast for Paris".into(),
        },
        Message::Assistant {
            text: Some("Let me look.".into()),
            calls: vec![ToolCall {
                id: "call_1".into(),
                name: "weather__forecast".into(),
                arguments: json!({"city": "Paris"}),
                malformed: None,
            }],
        },
        Message::Tool {
            results: vec![ToolResult {
                id: "call_1".into(),
                name: "weather__forecast".into(),
                content: "{\"sky\":\"sunny\"}".into(),
                is_error: false,
            }],
        },
    ]
}

#[test]
fn requests_have_each_providers_shape() {
    let schema = json!({"type": "object", "properties": {"city": {"type": "string"}}});
    let specs = [ToolSpec {
        name: "weather.forecast",
        description: "Forecast",
        input_schema: &schema,
    }];
    let messages = conversation();
    for p in Provider::ALL {
        let tools = declare(p, &specs);
        let r = build(
            p,
            &Request {
                model: "m-1",
                system: "Be brief.",
                messages: &messages,
                tools: &tools,
                max_tokens: 512,
            },
        );
        let b = &r.body;
        match p {
            Provider::OpenAi => {
                assert_eq!(r.path, "/v1/chat/completions");
                assert_eq!(b["messages"][0], json!({"role": "system", "content": "Be brief."}));
                assert_eq!(
                    b["messages"][2]["tool_calls"][0]["function"]["arguments"],
                    "{\"city\":\"Paris\"}"
                );
                assert_eq!(
                    b["messages"][3],
                    json!({"role": "tool", "tool_call_id": "call_1", "content": "{\"sky\":\"sunny\"}"})
                );
                assert_eq!(b["tools"][0]["function"]["name"], "weather__forecast");
            }
            Provider::Anthropic => {
                assert_eq!(r.path, "/v1/messages");
                assert_eq!(
                    (b["system"].as_str(), b["max_tokens"].as_u64()),
                    (Some("Be brief."), Some(512))
                );
                assert_eq!(
                    b["messages"][1]["content"][1],
                    json!({"type": "tool_use", "id": "call_1", "name": "weather__forecast", "input": {"city": "Paris"}})
                );
                assert_eq!(b["messages"][2]["content"][0]["type"], "tool_result");
                assert_eq!(b["tools"][0]["input_schema"]["type"], "object");
            }
            Provider::Gemini => {
                assert_eq!(r.path, "/v1beta/models/m-1:generateContent");
                assert_eq!(b["systemInstruction"]["parts"][0]["text"], "Be brief.");
                assert_eq!(
                    b["contents"][1]["parts"][1]["functionCall"],
                    json!({"name": "weather__forecast", "args": {"city": "Paris"}, "id": "call_1"})
                );
                assert_eq!(
                    b["contents"][2]["parts"][0]["functionResponse"]["response"],
                    json!({"output": {"sky": "sunny"}})
                );
                assert_eq!(b["tools"][0]["functionDeclarations"][0]["parameters"]["type"], "OBJECT");
            }
        }
    }
    // a model name is one path segment
    let tools = declare(Provider::Gemini, &[]);
    let r = build(
        Provider::Gemini,
        &Request {
            model: "../x?y",
            system: "",
            messages: &messages,
            tools: &tools,
            max_tokens: 1,
        },
    );
    assert_eq!(r.path, "/v1beta/models/..%2Fx%3Fy:generateContent");
    assert!(!valid_model("../x?y") && valid_model("gemini-2.5-flash") && valid_model("claude-sonnet-4-5@20250929"));
}

#[test]
fn answers_become_turns() {
    let openai = json!({"choices": [{"message": {"role": "assistant", "content": null, "tool_calls": [
        {"id": "c1", "type": "function", "function": {"name": "a__b", "arguments": "{\"x\": 1}"}},
        {"id": "c2", "type": "function", "function": {"name": "a__b", "arguments": "{not json"}}]}, "finish_reason": "tool_calls"}],
        "usage": {"prompt_tokens": 10, "completion_tokens": 3}});
    let t = parse(Provider::OpenAi, 200, openai.to_string().as_bytes()).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(t.calls[0].arguments, json!({"x": 1}));
    assert_eq!(t.calls[1].malformed.as_deref(), Some("{not json"));
    assert_eq!(
        (t.usage.input_tokens, t.usage.output_tokens, t.stop.as_deref()),
        (10, 3, Some("tool_calls"))
    );

    let anthropic = json!({"content": [{"type": "text", "text": "Sunny"}, {"type": "tool_use", "id": "tu1", "name": "w", "input": {"c": "P"}}],
        "stop_reason": "tool_use", "usage": {"input_tokens": 5, "output_tokens": 7}});
    let t = parse(Provider::Anthropic, 200, anthropic.to_string().as_bytes()).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        (t.text.as_deref(), t.calls[0].id.as_str(), t.usage.output_tokens),
        (Some("Sunny"), "tu1", 7)
    );

    let gemini = json!({"candidates": [{"content": {"role": "model", "parts": [{"functionCall": {"name": "w.f", "args": {"c": "P"}}}]}, "finishReason": "STOP"}],
        "usageMetadata": {"promptTokenCount": 4, "candidatesTokenCount": 2}});
    let t = parse(Provider::Gemini, 200, gemini.to_string().as_bytes()).unwrap_or_else(|e| panic!("{e}"));
    assert!(t.calls[0].id.starts_with(LOCAL_ID), "made up, and not sent back");
    let back = build(
        Provider::Gemini,
        &Request {
            model: "g",
            system: "",
            messages: &[Message::Assistant {
                text: None,
                calls: t.calls.clone(),
            }],
            tools: &declare(Provider::Gemini, &[]),
            max_tokens: 1,
        },
    );
    assert!(back.body["contents"][0]["parts"][0]["functionCall"].get("id").is_none());
}

#[test]
fn refusals_and_garbage_are_errors_with_the_providers_words() {
    let e = parse(
        Provider::OpenAi,
        401,
        br#"{"error": {"message": "Incorrect API key provided", "type": "invalid_request_error"}}"#,
    );
    assert_eq!(
        e,
        Err(AnswerError::Refused {
            provider: Provider::OpenAi,
            status: 401,
            message: "Incorrect API key provided".into()
        })
    );
    let e = parse(
        Provider::Anthropic,
        429,
        br#"{"type": "error", "error": {"type": "rate_limit_error", "message": "slow\ndown"}}"#,
    );
    assert!(matches!(e, Err(AnswerError::Refused { status: 429, ref message, .. }) if message == "slowdown"));
    let e = parse(Provider::Gemini, 500, b"<html>oops</html>");
    assert!(matches!(e, Err(AnswerError::Refused { status: 500, ref message, .. }) if message == "no error message"));
    let long = format!("{{\"error\": {{\"message\": \"{}\"}}}}", "x".repeat(10_000));
    let Err(AnswerError::Refused { message, .. }) = parse(Provider::OpenAi, 400, long.as_bytes()) else {
        panic!()
    };
    assert_eq!(message.chars().count(), 501);
    for p in Provider::ALL {
        assert!(matches!(parse(p, 200, b"not json"), Err(AnswerError::Malformed(..))));
        assert!(matches!(parse(p, 200, b"{}"), Err(AnswerError::Malformed(..))));
    }
    let blocked = json!({"promptFeedback": {"blockReason": "SAFETY"}});
    let Err(e) = parse(Provider::Gemini, 200, blocked.to_string().as_bytes()) else {
        panic!()
    };
    assert!(e.to_string().contains("blocked (SAFETY)"), "{e}");
}

proptest::proptest! {
    #[test]
    fn any_answer_is_read_without_panicking(body in proptest::collection::vec(proptest::num::u8::ANY, 0..400), status in 100u16..600) {
        for p in Provider::ALL {
            let _ = parse(p, status, &body);
        }
    }
}
