//! Property tests: the parsers of outside input never panic on anything, and the name rules
//! agree with the regular expressions of the contract (SPEC section 4).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use chatterfly_domain::{
    AuthSpec, ConnectionDraft, ConnectionInput, HttpMethod, OperationName, PathTemplate, Slug, ToolName, build_request,
};
use proptest::prelude::*;
use serde_json::Value;

/// Any JSON value, a few levels deep, with strings that look like the real thing.
fn json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
        "[a-z_{}/?#@:. \\-]{0,20}".prop_map(Value::String),
        any::<String>().prop_map(Value::String),
        prop_oneof![
            Just("http"),
            Just("mcp"),
            Just("gmail"),
            Just("telegram"),
            Just("openapi"),
            Just("bearer"),
            Just("basic"),
            Just("none"),
            Just("static"),
            Just("caller"),
            Just("participant"),
            Just("GET"),
            Just("/x/{{id}}"),
            Just("https://api.example.com"),
            Just("api_key_header"),
            Just("service_account"),
        ]
        .prop_map(|s| Value::String(s.to_owned())),
    ];
    leaf.prop_recursive(4, 64, 8, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(
                prop_oneof![
                    Just("name"),
                    Just("slug"),
                    Just("service_type"),
                    Just("base_url"),
                    Just("auth"),
                    Just("type"),
                    Just("token"),
                    Just("key"),
                    Just("header"),
                    Just("param"),
                    Just("username"),
                    Just("password"),
                    Just("operations"),
                    Just("method"),
                    Just("path"),
                    Just("input_schema"),
                    Just("properties"),
                    Just("fulfillment"),
                    Just("participant_role"),
                    Just("subject"),
                    Just("service_account_json"),
                    Just("output_schema"),
                ]
                .prop_map(str::to_owned),
                inner,
                0..8
            )
            .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    /// The counted length of a value is the length serde_json writes, escapes included.
    #[test]
    fn value_len_is_the_written_length(v in json(), s in "[\\x00-\\x1f\"\\\\\\x7f a-zé€😀]{0,30}", u in any::<u64>()) {
        use chatterfly_domain::operation::value_len;
        prop_assert_eq!(value_len(&v), serde_json::to_string(&v).unwrap().len());
        let s = Value::String(s);
        prop_assert_eq!(value_len(&s), serde_json::to_string(&s).unwrap().len());
        let o = serde_json::json!({s.as_str().unwrap_or(""): [u, -(u as i128 / 2) as i64, u as f64 / 7.0, s]});
        prop_assert_eq!(value_len(&o), serde_json::to_string(&o).unwrap().len());
    }

    #[test]
    fn slug_rule_matches_the_contract(s in "\\PC{0,70}|[a-z][a-z0-9_]{0,65}") {
        let re = regex::Regex::new("^[a-z][a-z0-9_]{0,62}$").unwrap();
        prop_assert_eq!(s.parse::<Slug>().is_ok(), re.is_match(&s));
    }

    #[test]
    fn operation_name_rule_matches_the_contract(s in "\\PC{0,130}|[A-Za-z0-9_.\\-]{0,130}") {
        let re = regex::Regex::new("^[A-Za-z0-9_.\\-]{1,128}$").unwrap();
        prop_assert_eq!(s.parse::<OperationName>().is_ok(), re.is_match(&s));
    }

    #[test]
    fn tool_names_split_at_the_first_dot(slug in "[a-z][a-z0-9_]{0,10}", op in "[A-Za-z0-9_.\\-]{1,20}") {
        let t: ToolName = format!("{slug}.{op}").parse().unwrap();
        prop_assert_eq!(t.slug.as_str(), slug.as_str());
        prop_assert_eq!(t.operation.as_str(), op.as_str());
    }

    #[test]
    fn path_templates_never_panic_and_round_trip(s in "\\PC{0,60}|/[a-z{}/?=&#.]{0,40}") {
        if let Ok(t) = PathTemplate::parse(&s) {
            prop_assert!(s.starts_with('/') && !s.starts_with("//"));
            prop_assert_eq!(PathTemplate::parse(t.as_str()).unwrap(), t.clone());
            for p in t.params() {
                prop_assert!(p.bytes().all(|b| b.is_ascii_alphanumeric() || b"_-.".contains(&b)));
            }
        }
    }

    #[test]
    fn auth_parsing_never_panics(v in json()) {
        let _ = AuthSpec::parse(&v);
    }

    #[test]
    fn connection_parsing_never_panics(v in json()) {
        if let Ok(input) = serde_json::from_value::<ConnectionInput>(v) {
            let _ = ConnectionDraft::parse(input);
        }
    }

    /// Connection-shaped documents with arbitrary parts: these reach every rule.
    #[test]
    fn connection_shaped_documents_never_panic(
        service in prop_oneof![Just("http"), Just("openapi"), Just("mcp"), Just("gmail"), Just("telegram")],
        slug in "[a-z][a-z0-9_]{0,8}|\\PC{0,10}",
        base_url in prop_oneof![Just(Value::Null), json(), "https?://[a-z.:@#0-9/]{0,20}".prop_map(Value::String)],
        auth in json(),
        fulfillment in prop_oneof![Just("static"), Just("caller"), Just("participant")],
        role in json(),
        ops in prop::collection::vec(json(), 0..4),
    ) {
        let v = serde_json::json!({"name": "n", "slug": slug, "service_type": service, "base_url": base_url,
            "auth": auth, "fulfillment": fulfillment, "participant_role": role, "operations": ops});
        // A wrong type for base_url, participant_role or an operation field stops at serde.
        if let Ok(input) = serde_json::from_value::<ConnectionInput>(v) {
            let _ = ConnectionDraft::parse(input);
        }
    }

    /// Whatever the values, the target stays put: same origin, same number of path
    /// segments, the template's literal parts where they were, nothing in the fragment.
    #[test]
    fn arguments_never_change_the_target(a in "\\PC{0,30}|[./?#@%:\\\\ ]{0,10}", b in "\\PC{0,30}", q in "\\PC{0,30}") {
        let t = PathTemplate::parse("/v1/{{a}}/items/{{b}}?q={{q}}").unwrap();
        let args = serde_json::json!({"a": a, "b": b, "q": q});
        let base = url::Url::parse("https://api.example.com/base").unwrap();
        match build_request(base.as_str(), HttpMethod::Get, &t, args.as_object().unwrap(), None) {
            Ok(r) => {
                prop_assert_eq!(r.url.origin(), base.origin());
                let segments: Vec<_> = r.url.path_segments().unwrap().collect();
                prop_assert_eq!(segments.len(), 5, "{}", r.url);
                prop_assert_eq!(segments[0], "base");
                prop_assert_eq!(segments[1], "v1");
                prop_assert_eq!(segments[3], "items");
                prop_assert!(r.url.fragment().is_none());
                prop_assert_eq!(r.url.query_pairs().count(), 1);
            }
            Err(e) => prop_assert!(a == "." || a == ".." || b == "." || b == "..", "{e}"),
        }
    }
}
