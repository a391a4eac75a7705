//! `chatterfly openapi inspect FILE [--json]`: what importing a document would produce,
//! without a server. Operations are written as they are made, so even GitHub's description
//! (1,200 operations) never sits in memory twice.

use std::io::{self, BufWriter, Write};
use std::path::Path;

use anyhow::Context;
use chatterfly_openapi::{Importer, Options, load, max_nodes_for};
use serde_json::json;

pub fn run(file: &Path, json_out: bool, max_bytes: usize) -> anyhow::Result<()> {
    let meta = std::fs::metadata(file).with_context(|| format!("cannot read {}", file.display()))?;
    if meta.len() > max_bytes as u64 {
        anyhow::bail!(
            "invalid_spec: {} is {} bytes; the limit is {max_bytes} (CHATTERFLY_MAX_SPEC_BYTES)",
            file.display(),
            meta.len()
        );
    }
    let bytes = std::fs::read(file).with_context(|| format!("cannot read {}", file.display()))?;
    let text = String::from_utf8(bytes).map_err(|e| {
        anyhow::anyhow!(
            "invalid_spec: the document is not UTF-8 text (byte {})",
            e.utf8_error().valid_up_to()
        )
    })?;
    let (root, format) = load(&text, max_nodes_for(text.len())).map_err(|e| anyhow::anyhow!("invalid_spec: {e}"))?;
    let mut importer =
        Importer::new(&root, format, &Options::default()).map_err(|e| anyhow::anyhow!("invalid_spec: {e}"))?;

    let stdout = io::stdout();
    let mut out = BufWriter::with_capacity(1 << 16, stdout.lock());
    let mut io_result = Ok(());
    if json_out {
        write!(
            out,
            "{{\"summary\":{},\"draft\":{{\"name\":{},\"slug\":{},\"service_type\":\"openapi\",\"base_url\":{},\"auth\":{},\"fulfillment\":\"static\",\"operations\":[",
            serde_json::to_string(&importer.summary)?,
            json!(importer.name),
            json!(importer.slug),
            json!(importer.base_url),
            importer.auth,
        )?;
        let mut first = true;
        let mut buf = Vec::new();
        importer.each_operation(|op| {
            if io_result.is_ok() {
                buf.clear();
                if !first {
                    buf.push(b',');
                }
                first = false;
                io_result = op
                    .write_json(&mut buf)
                    .map_err(anyhow::Error::from)
                    .and_then(|()| out.write_all(&buf).map_err(anyhow::Error::from));
            }
        });
        io_result?;
        let warnings = importer.warnings();
        writeln!(out, "]}},\"warnings\":{}}}", serde_json::to_string(&warnings)?)?;
    } else {
        let s = &importer.summary;
        let kind = if s.version == "2.0" { "Swagger" } else { "OpenAPI" };
        writeln!(
            out,
            "{} ({kind} {}, {}): {} operations",
            importer.name, s.version, s.format, s.operations
        )?;
        writeln!(out, "slug:     {}", importer.slug)?;
        let base = if importer.base_url.is_empty() {
            "(none: fill it in)"
        } else {
            importer.base_url.as_str()
        };
        writeln!(out, "base URL: {base}")?;
        writeln!(out, "auth:     {}", importer.auth)?;
        writeln!(out, "operations:")?;
        importer.each_operation(|op| {
            if io_result.is_ok() {
                let args = op.input_schema["properties"].as_object().map_or(0, |p| p.len());
                let summary = op.description.lines().next().unwrap_or("");
                io_result = writeln!(
                    out,
                    "  {:<7} {}  {} ({args} arguments){}{}",
                    op.method,
                    op.path,
                    op.name,
                    if op.request.as_ref().is_some_and(|r| !r.credentials) {
                        ", no credentials"
                    } else {
                        ""
                    },
                    if summary.is_empty() {
                        String::new()
                    } else {
                        format!(": {summary}")
                    }
                )
                .map_err(anyhow::Error::from);
            }
        });
        io_result?;
        let warnings = importer.warnings();
        writeln!(out, "warnings: {}", warnings.len())?;
        for w in &warnings {
            let at = if w.pointer.is_empty() {
                "document"
            } else {
                w.pointer.as_str()
            };
            writeln!(out, "  {at}: {}", w.reason)?;
        }
    }
    out.flush()?;
    // the process ends next: freeing a tree of a million nodes one by one would only cost time
    drop(importer);
    std::mem::forget(root);
    std::mem::forget(text);
    Ok(())
}
