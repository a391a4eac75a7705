//! Every operation of the OpenAPI corpus the test script installs (scripts/specs.sh:
//! ReadMe's OAS examples, Scalar's Galaxy, GitHub's 1,223 operations), declared to each
//! provider, keeps that provider's rules (`check::declaration`, the rules written down once
//! with their source), and every Gemini declaration is accepted by Google's own
//! `google-genai` types (scripts/genai.sh, scripts/genai_check.py).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;

use chatterfly_openapi::{Options, import};
use chatterfly_providers::declare::{ToolSpec, declare};
use chatterfly_providers::{Provider, check};
use chatterfly_testkit::specs_dir;
use serde_json::Value;

fn documents() -> Vec<PathBuf> {
    let dir = specs_dir();
    let mut out = Vec::new();
    let oas = dir.join("@readme/oas-examples");
    let mut stack: Vec<PathBuf> = ["2.0", "3.0", "3.1"].iter().map(|v| oas.join(v).join("json")).collect();
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "json") {
                out.push(path);
            }
        }
    }
    out.push(dir.join("@scalar/galaxy/dist/3.1.json"));
    out.push(dir.join("@octokit/openapi/generated/api.github.com.json"));
    out.sort();
    out
}

#[test]
fn every_corpus_operation_is_declared_within_each_providers_rules() {
    let docs = documents();
    assert!(docs.len() >= 60, "only {} documents", docs.len());
    let mut gemini = Vec::new();
    let mut operations = 0;
    for doc in &docs {
        let text = std::fs::read_to_string(doc).unwrap();
        let Ok((draft, _, _)) = import(&text, &Options::default()) else {
            panic!("{} does not import", doc.display());
        };
        let names: Vec<String> = draft.operations.iter().map(|o| format!("api.{}", o.name)).collect();
        let specs: Vec<ToolSpec> = draft
            .operations
            .iter()
            .zip(&names)
            .map(|(o, n)| ToolSpec {
                name: n,
                description: &o.description,
                input_schema: &o.input_schema,
            })
            .collect();
        operations += specs.len();
        for p in Provider::ALL {
            // a request takes at most 128 tools: every operation, a hundred at a time
            for chunk in specs.chunks(100) {
                let d = declare(p, chunk);
                assert_eq!(d.tools.len() + d.left_out.len(), chunk.len(), "{}", doc.display());
                for l in &d.left_out {
                    assert!(
                        l.reason.contains("KB"),
                        "{}: {} left out: {}",
                        doc.display(),
                        l.tool,
                        l.reason
                    );
                }
                let wire = d.wire();
                let decls: Vec<Value> = match p {
                    Provider::OpenAi => wire.as_array().unwrap().iter().map(|t| t["function"].clone()).collect(),
                    Provider::Anthropic => wire.as_array().unwrap().clone(),
                    Provider::Gemini => wire
                        .get(0)
                        .and_then(|t| t["functionDeclarations"].as_array().cloned())
                        .unwrap_or_default(),
                };
                assert_eq!(decls.len(), d.tools.len());
                for decl in decls {
                    let name = decl["name"].as_str().unwrap();
                    let schema = match p {
                        Provider::Anthropic => decl.get("input_schema"),
                        _ => decl.get("parameters"),
                    };
                    check::declaration(p, name, schema)
                        .unwrap_or_else(|e| panic!("{} ({p}): {name}: {e}", doc.display()));
                    assert!(d.by_name(name).is_some(), "{name} maps back");
                    if p == Provider::Gemini {
                        gemini.push(decl);
                    }
                }
            }
        }
    }
    assert!(operations > 1500, "{operations} operations");
    // Google's own types
    let python = std::env::var("CHATTERFLY_TEST_GENAI_PYTHON").unwrap_or_else(|_| {
        panic!("CHATTERFLY_TEST_GENAI_PYTHON is not set: scripts/test.sh sets it (export CHATTERFLY_TEST_GENAI_PYTHON=$(scripts/genai.sh))")
    });
    let file = tempfile_path();
    std::fs::write(&file, serde_json::to_vec(&gemini).unwrap()).unwrap();
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../scripts/genai_check.py");
    let out = std::process::Command::new(&python)
        .arg(&script)
        .arg(&file)
        .output()
        .unwrap();
    let _ = std::fs::remove_file(&file);
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "google-genai refused declarations:\n{said}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(said.contains(&format!("{0} of {0} accepted", gemini.len())), "{said}");
    println!(
        "{} documents, {operations} operations; google-genai: {}",
        docs.len(),
        said.trim()
    );
}

fn tempfile_path() -> PathBuf {
    std::env::temp_dir().join(format!("chatterfly-gemini-decls-{}.json", std::process::id()))
}
