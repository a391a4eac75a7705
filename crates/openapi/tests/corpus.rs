//! Every document of the corpus (scripts/specs.sh: ReadMe's OAS examples for Swagger 2.0,
//! OpenAPI 3.0 and 3.1 in JSON and YAML, Scalar's Galaxy, GitHub's description) imports
//! without error into a draft the create endpoint accepts, with one operation per
//! path × method pair, counted here independently with serde_json.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use chatterfly_domain::{ConnectionDraft, ConnectionInput};
use chatterfly_openapi::{Options, import};
use chatterfly_testkit::specs_dir;
use serde_json::{Value, json};

const METHODS: [&str; 8] = ["get", "put", "post", "delete", "options", "head", "patch", "trace"];

/// Method → how many operations use it, from the JSON form of a document.
fn method_counts(json_doc: &Path) -> BTreeMap<String, usize> {
    let v: Value = serde_json::from_str(&std::fs::read_to_string(json_doc).unwrap()).unwrap();
    let mut counts = BTreeMap::new();
    for (_, item) in v["paths"].as_object().into_iter().flatten() {
        // a path item may be a reference
        let item = match item.get("$ref").and_then(Value::as_str) {
            Some(r) => v.pointer(r.trim_start_matches('#')).unwrap_or(item),
            None => item,
        };
        for m in METHODS {
            if item.get(m).is_some_and(Value::is_object) {
                *counts.entry(m.to_uppercase()).or_insert(0) += 1;
            }
        }
    }
    counts
}

/// The document and the JSON document its operations are counted from (its JSON twin for
/// YAML files).
fn corpus() -> Vec<(PathBuf, PathBuf)> {
    let dir = specs_dir();
    let oas = dir.join("@readme/oas-examples");
    let mut out = Vec::new();
    for version in ["2.0", "3.0", "3.1"] {
        for (sub, ext) in [("json", "json"), ("yaml", "yaml")] {
            let mut stack = vec![oas.join(version).join(sub)];
            while let Some(d) = stack.pop() {
                for entry in std::fs::read_dir(&d).unwrap() {
                    let path = entry.unwrap().path();
                    if path.is_dir() {
                        stack.push(path);
                    } else if path.extension().is_some_and(|e| e == ext) {
                        let twin = if ext == "json" {
                            path.clone()
                        } else {
                            let rel = path.strip_prefix(oas.join(version).join("yaml")).unwrap();
                            oas.join(version).join("json").join(rel).with_extension("json")
                        };
                        assert!(twin.exists(), "{} has no JSON twin to count from", path.display());
                        out.push((path, twin));
                    }
                }
            }
        }
    }
    let galaxy = dir.join("@scalar/galaxy/dist");
    out.push((galaxy.join("3.1.json"), galaxy.join("3.1.json")));
    out.push((galaxy.join("3.1.yaml"), galaxy.join("3.1.json")));
    let github = dir.join("@octokit/openapi/generated/api.github.com.json");
    out.push((github.clone(), github));
    out.sort();
    out
}

/// The draft as the create endpoint would take it once the user filled in secrets and,
/// where the document gave none, a base URL.
fn accept(mut draft: Value) -> ConnectionDraft {
    let auth = draft["auth"].as_object_mut().unwrap();
    match auth["type"].as_str().unwrap() {
        "bearer" => {
            auth.insert("token".into(), json!("t"));
        }
        "api_key_header" | "api_key_query" => {
            auth.insert("key".into(), json!("k"));
        }
        "basic" => {
            auth.insert("username".into(), json!("u"));
            auth.insert("password".into(), json!("p"));
        }
        _ => {}
    }
    if draft["base_url"] == "" {
        draft["base_url"] = json!("https://api.example.com");
    }
    let input: ConnectionInput = serde_json::from_value(draft).unwrap();
    ConnectionDraft::parse(input)
        .unwrap_or_else(|e| panic!("the create endpoint refuses the draft: {e:?}"))
        .0
}

#[test]
fn every_corpus_document_imports_into_an_acceptable_draft() {
    let files = corpus();
    assert!(files.len() >= 130, "only {} documents found", files.len());
    let mut total = 0;
    for (doc, twin) in &files {
        let text = std::fs::read_to_string(doc).unwrap();
        let (draft, warnings, summary) =
            import(&text, &Options::default()).unwrap_or_else(|e| panic!("{}: {e}", doc.display()));
        let expected = method_counts(twin);
        let mut got = BTreeMap::new();
        let mut written = Vec::new();
        for op in &draft.operations {
            *got.entry(op.method.clone()).or_insert(0) += 1;
            // the importer's own writer and serde_json write the same bytes
            written.clear();
            op.write_json(&mut written).unwrap();
            assert_eq!(
                written,
                serde_json::to_vec(op).unwrap(),
                "{}: {}",
                doc.display(),
                op.name
            );
        }
        assert_eq!(got, expected, "{}: operations per method", doc.display());
        assert_eq!(summary.operations, draft.operations.len(), "{}", doc.display());
        for w in &warnings {
            assert!(
                w.pointer.is_empty() || w.pointer.starts_with('/'),
                "{}: {w:?}",
                doc.display()
            );
        }
        let accepted = accept(serde_json::to_value(&draft).unwrap());
        assert_eq!(accepted.operations.len(), draft.operations.len());
        total += draft.operations.len();
    }
    // GitHub alone has 1,223
    assert!(total > 1500, "{total}");
}

#[test]
fn yaml_and_json_forms_give_the_same_draft() {
    let dir = specs_dir();
    let oas = dir.join("@readme/oas-examples");
    for (version, name) in [
        ("2.0", "petstore"),
        ("3.0", "petstore"),
        ("3.1", "petstore"),
        ("3.0", "parameters-style"),
    ] {
        let json_text = std::fs::read_to_string(oas.join(version).join("json").join(format!("{name}.json"))).unwrap();
        let yaml_text = std::fs::read_to_string(oas.join(version).join("yaml").join(format!("{name}.yaml"))).unwrap();
        let (a, _, _) = import(&json_text, &Options::default()).unwrap();
        let (b, _, _) = import(&yaml_text, &Options::default()).unwrap();
        assert_eq!(
            serde_json::to_value(&a).unwrap(),
            serde_json::to_value(&b).unwrap(),
            "{version}/{name}"
        );
    }
}
