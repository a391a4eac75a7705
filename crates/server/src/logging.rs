//! The log: `tracing` events to stderr, each line passed through
//! [`chatterfly_egress::in_play::redact_log`] before it is written, so that no line, ours or
//! a dependency's (an MCP or HTTP client printing a server's error body that echoes the
//! Authorization header), carries a credential in use.

use std::io::Write;

use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;

/// The default filter when `RUST_LOG` is not set. rmcp logs every notification an MCP
/// server sends, whole, at `info`: a hostile server could fill the disk through it.
pub const DEFAULT_FILTER: &str = "info,sqlx=warn,rmcp=warn";

/// At most this much of one event is gathered (the rest is counted, not kept)…
const GATHER_CAP: usize = 256 * 1024;
/// …and at most this much of it (of each string value, in JSON) is written, once redacted:
/// a line cut before redaction could end in the first half of a secret, so the cut comes
/// after, and far enough below the gathering cap that the longest encoded secret fits.
const LINE_CAP: usize = 16 * 1024;

/// The log's line format.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// One human-readable line per event, with its spans' fields (`request_id`, …).
    #[default]
    Text,
    /// One JSON object per line: `timestamp`, `level`, `target`, `fields`, and `spans` with
    /// their fields (the request's `request_id` among them).
    Json,
}

/// The filter for a `RUST_LOG` value: `rmcp=warn` is added unless the value names rmcp, so
/// an operator who turns the log up to `info` does not let a tenant's MCP server write
/// every notification it sends into the log (naming `rmcp` turns its lines on on purpose).
pub fn filter_for(rust_log: Option<&str>) -> String {
    match rust_log.map(str::trim) {
        None | Some("") => DEFAULT_FILTER.to_owned(),
        Some(v) if v.contains("rmcp") => v.to_owned(),
        Some(v) => format!("{v},rmcp=warn"),
    }
}

/// Installs the global subscriber: `RUST_LOG` (else [`DEFAULT_FILTER`]; see [`filter_for`]),
/// stderr, redacted.
pub fn init(format: LogFormat) {
    let rust_log = std::env::var("RUST_LOG").ok();
    let filter = EnvFilter::try_new(filter_for(rust_log.as_deref())).unwrap_or_else(|_| EnvFilter::new(DEFAULT_FILTER));
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    match format {
        LogFormat::Text => builder
            .with_writer(RedactingStderr { json: false })
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .init(),
        LogFormat::Json => builder
            .with_writer(RedactingStderr { json: true })
            .json()
            .with_current_span(false)
            .with_span_list(true)
            .init(),
    }
}

/// Makes one [`EventWriter`] per event.
/// `json`: lines are JSON objects, redacted value by value (see [`redact_json_line`]).
#[derive(Clone, Copy, Debug, Default)]
pub struct RedactingStderr {
    pub json: bool,
}

impl<'a> MakeWriter<'a> for RedactingStderr {
    type Writer = EventWriter;

    fn make_writer(&'a self) -> Self::Writer {
        EventWriter(Vec::with_capacity(256), self.json, 0)
    }
}

/// Gathers one formatted event, then writes it redacted when dropped (the formatter makes a
/// writer per event, so a secret can never be split across two writes).
pub struct EventWriter(Vec<u8>, bool, usize);

/// A JSON log line with every string *value* redacted, keys and structure untouched: a
/// secret that happens to be a piece of the format (`","level":"`) cannot break the line
/// or hide its level. A line that is not JSON is withheld.
pub fn redact_json_line(line: &str) -> String {
    fn walk(v: &mut serde_json::Value) {
        match v {
            serde_json::Value::String(s) => {
                if let std::borrow::Cow::Owned(clean) = chatterfly_egress::in_play::redact_log(s) {
                    *s = clean;
                }
            }
            serde_json::Value::Array(items) => items.iter_mut().for_each(walk),
            serde_json::Value::Object(map) => map.values_mut().for_each(walk),
            _ => {}
        }
    }
    fn cut(v: &mut serde_json::Value) {
        match v {
            serde_json::Value::String(s) if s.len() > LINE_CAP => {
                let kept = floor_char_boundary(s, LINE_CAP);
                let dropped = s.len() - kept;
                s.truncate(kept);
                s.push_str(&format!(" … [{dropped} more bytes cut]"));
            }
            serde_json::Value::Array(items) => items.iter_mut().for_each(cut),
            serde_json::Value::Object(map) => map.values_mut().for_each(cut),
            _ => {}
        }
    }
    match serde_json::from_str::<serde_json::Value>(line.trim_end()) {
        Ok(mut v) => {
            walk(&mut v);
            cut(&mut v);
            let mut out = v.to_string();
            out.push('\n');
            out
        }
        Err(_) => {
            "{\"level\":\"WARN\",\"fields\":{\"message\":\"a log line was withheld: it was not JSON\"}}\n".to_owned()
        }
    }
}

impl Write for EventWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let room = GATHER_CAP.saturating_sub(self.0.len());
        self.0.extend_from_slice(&buf[..buf.len().min(room)]);
        self.2 = self.2.saturating_add(buf.len());
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for EventWriter {
    fn drop(&mut self) {
        if self.0.is_empty() {
            return;
        }
        if self.2 > self.0.len() {
            // an event longer than the gathering cap: its JSON cannot be whole
            let note = format!("a log event of {} bytes was cut: too long", self.2);
            let _ = std::io::stderr().lock().write_all(
                if self.1 {
                    format!("{{\"level\":\"WARN\",\"fields\":{{\"message\":\"{note}\"}}}}\n")
                } else {
                    format!("[{note}]\n")
                }
                .as_bytes(),
            );
            if self.1 {
                return;
            }
        }
        let text = String::from_utf8_lossy(&self.0);
        // A fault in redaction must neither show the line nor take down the thread that
        // logged (a database worker, say): the line is withheld instead.
        let json = self.1;
        let clean = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            if json {
                redact_json_line(&text)
            } else {
                cut_line(chatterfly_egress::in_play::redact_log(&text).into_owned())
            }
        }))
        .unwrap_or_else(|_| "[a log line was withheld: it could not be checked for secrets]\n".to_owned());
        // Nowhere to report a failed write to stderr.
        let _ = std::io::stderr().lock().write_all(clean.as_bytes());
    }
}

/// The largest char boundary at or below `at`.
fn floor_char_boundary(s: &str, at: usize) -> usize {
    let mut i = at.min(s.len());
    while !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

/// A redacted text line cut to [`LINE_CAP`], saying how much was cut.
fn cut_line(mut line: String) -> String {
    let body = line.trim_end_matches('\n').len();
    if body <= LINE_CAP {
        return line;
    }
    let kept = floor_char_boundary(&line, LINE_CAP);
    line.truncate(kept);
    line.push_str(&format!(" … [{} more bytes cut]\n", body - kept));
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rmcp_stays_at_warn_unless_named() {
        assert_eq!(filter_for(None), DEFAULT_FILTER);
        assert_eq!(filter_for(Some(" ")), DEFAULT_FILTER);
        assert_eq!(filter_for(Some("info")), "info,rmcp=warn");
        assert_eq!(filter_for(Some("debug,sqlx=info")), "debug,sqlx=info,rmcp=warn");
        assert_eq!(filter_for(Some("trace,rmcp=trace")), "trace,rmcp=trace");
        assert!(EnvFilter::try_new(filter_for(Some("info"))).is_ok());
    }

    #[test]
    fn a_held_secret_never_reaches_the_line() {
        let secret = "LOGCANARY-0f9e8d7c6b5a";
        let _g = chatterfly_egress::in_play::hold([secret]);
        let line = format!("UnexpectedServerResponse(\"HTTP 400: auth={secret}\")");
        let out = chatterfly_egress::in_play::redact_log(&line);
        assert!(!out.contains(secret), "{out}");
        let mut w = RedactingStderr::default().make_writer();
        assert!(w.write_all(b"part one ").is_ok());
        assert!(w.write_all(secret.as_bytes()).is_ok());
        assert!(
            String::from_utf8_lossy(&w.0).contains(secret),
            "gathered whole, redacted on drop"
        );
    }

    #[test]
    fn a_secret_made_of_the_format_cannot_break_a_json_line() {
        let _g = chatterfly_egress::in_play::hold(["\",\"level\":\"", "timestamp", "JSONCANARY-1234"]);
        let line = r#"{"timestamp":"2026-12-03T00:00:00Z","level":"ERROR","fields":{"message":"token JSONCANARY-1234 refused","level":"x"},"target":"t"}"#;
        let out = redact_json_line(line);
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(v["level"], "ERROR");
        assert_eq!(v["timestamp"], "2026-12-03T00:00:00Z");
        assert_eq!(v["fields"]["message"], "token [REDACTED] refused");
        assert!(redact_json_line("not json").contains("withheld"));
    }

    #[test]
    fn long_lines_are_redacted_then_cut() {
        let secret = "CUTCANARY-5a4b3c2d1e";
        let _g = chatterfly_egress::in_play::hold([secret]);
        // a secret straddling the cut is redacted first, so no half of it remains
        let mut line = "x".repeat(LINE_CAP - 5);
        line.push_str(secret);
        line.push_str(&"y".repeat(3 * LINE_CAP));
        line.push('\n');
        let out = cut_line(chatterfly_egress::in_play::redact_log(&line).into_owned());
        assert!(!out.contains("CUTCAN"), "a piece of the secret is left");
        assert!(out.len() < LINE_CAP + 64, "{}", out.len());
        assert!(out.ends_with("more bytes cut]\n"), "{}", &out[out.len() - 40..]);
        // short lines pass as they are
        assert_eq!(cut_line("short\n".to_owned()), "short\n");
        // JSON: each string value is cut once redacted, and the line stays JSON
        let json = format!(
            r#"{{"level":"INFO","fields":{{"message":"{}{secret}{}"}}}}"#,
            "a".repeat(LINE_CAP - 3),
            "b".repeat(2 * LINE_CAP)
        );
        let out = redact_json_line(&json);
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        let msg = v["fields"]["message"].as_str().unwrap_or_default();
        assert!(!msg.contains("CUTC") && msg.len() < LINE_CAP + 64, "{}", msg.len());
        assert_eq!(v["level"], "INFO");
    }

    #[test]
    fn an_event_is_gathered_up_to_its_cap() {
        let mut w = RedactingStderr::default().make_writer();
        let chunk = vec![b'z'; 100 * 1024];
        for _ in 0..10 {
            assert!(w.write_all(&chunk).is_ok());
        }
        assert_eq!(w.0.len(), GATHER_CAP);
        assert_eq!(w.2, 10 * 100 * 1024);
        w.0.clear(); // nothing to write on drop
    }
}
