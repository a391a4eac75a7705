//! The importer on arbitrary input: it must never panic, never hang, and whatever it accepts
//! must be a draft the create endpoint accepts too.
#![no_main]

use chatterfly_domain::{ConnectionDraft, ConnectionInput};
use chatterfly_openapi::{Options, import};
use libfuzzer_sys::fuzz_target;
use serde_json::json;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let Ok((draft, _, _)) = import(text, &Options::default()) else {
        return;
    };
    let mut v = serde_json::to_value(&draft).expect("a draft serializes");
    let t = v["auth"]["type"].as_str().unwrap_or("none").to_owned();
    let secrets: &[&str] = match t.as_str() {
        "bearer" => &["token"],
        "api_key_header" | "api_key_query" => &["key"],
        "basic" => &["username", "password"],
        _ => &[],
    };
    for f in secrets {
        v["auth"][*f] = json!("x");
    }
    if v["base_url"] == "" {
        v["base_url"] = json!("https://api.example.com");
    }
    let input: ConnectionInput = serde_json::from_value(v).expect("a draft has the create shape");
    if let Err(e) = ConnectionDraft::parse(input) {
        panic!("the create endpoint refuses an imported draft: {e:?}");
    }
});
