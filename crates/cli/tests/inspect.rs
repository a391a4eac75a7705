//! `chatterfly openapi inspect`: what an import would produce, without a server.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;

use chatterfly_testkit::specs_dir;
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_chatterfly");

fn inspect(args: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
    let out = Command::new(BIN)
        .arg("openapi")
        .arg("inspect")
        .args(args)
        .envs(env.iter().copied())
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

#[test]
fn inspect_prints_operations_auth_base_url_and_warnings() {
    let petstore = specs_dir().join("@readme/oas-examples/2.0/json/petstore.json");
    let path = petstore.to_str().unwrap();
    let (code, out, err) = inspect(&[path], &[]);
    assert_eq!(code, 0, "{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "Swagger Petstore (Swagger 2.0, JSON): 20 operations");
    assert!(out.contains("base URL: http://petstore.swagger.io/v2"), "{out}");
    assert!(out.contains("auth:     {\"type\":\"bearer\"}"), "{out}");
    assert!(
        lines.iter().any(|l| l
            .trim_start()
            .starts_with("DELETE  /pet/{{petId}}  deletePet (2 arguments)")),
        "{out}"
    );
    assert!(out.contains("warnings: 3"), "{out}");
    assert!(
        out.contains("/securityDefinitions/petstore_auth: oauth2 becomes a bearer token"),
        "{out}"
    );

    // --json: the import endpoint's answer
    let (code, out, err) = inspect(&[path, "--json"], &[]);
    assert_eq!(code, 0, "{err}");
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["summary"]["operations"], 20);
    assert_eq!(v["draft"]["operations"].as_array().unwrap().len(), 20);
    assert_eq!(v["draft"]["service_type"], "openapi");
    assert_eq!(v["warnings"].as_array().unwrap().len(), 3);
    assert_eq!(v["draft"]["operations"][4]["path"], "/pet/{{petId}}");
}

#[test]
fn inspect_refuses_what_cannot_be_imported() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.yaml");
    std::fs::write(&bad, "openapi: 3.0.0\npaths:\n  /a: [unclosed\n").unwrap();
    let (code, _, err) = inspect(&[bad.to_str().unwrap()], &[]);
    assert_eq!(code, 1);
    assert!(err.contains("invalid_spec: line"), "{err}");
    let (code, _, err) = inspect(&[dir.path().join("missing.json").to_str().unwrap()], &[]);
    assert_eq!(code, 1);
    assert!(err.contains("cannot read"), "{err}");
    let big = dir.path().join("big.json");
    std::fs::write(
        &big,
        format!(
            "{{\"openapi\": \"3.0.0\", \"paths\": {{}}, \"x\": \"{}\"}}",
            "a".repeat(2000)
        ),
    )
    .unwrap();
    let (code, _, err) = inspect(&[big.to_str().unwrap()], &[("CHATTERFLY_MAX_SPEC_BYTES", "1000")]);
    assert_eq!(code, 1);
    assert!(err.contains("the limit is 1000"), "{err}");
}
