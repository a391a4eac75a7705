//! The log: `tracing` events to stderr, each line passed through
//! [`chatterfly_egress::in_play::redact_log`] before it is written, so that no line, ours or
//! a dependency's (an MCP or HTTP client printing a server's error body that echoes the
//! Authorization header), carries a credential in use.

use std::io::Write;

use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;

/// The default filter when `RUST_LOG` is not set.
pub const DEFAULT_FILTER: &str = "info,sqlx=warn";

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

/// Installs the global subscriber: `RUST_LOG` (else [`DEFAULT_FILTER`]), stderr, redacted.
pub fn init(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(DEFAULT_FILTER));
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
        EventWriter(Vec::with_capacity(256), self.json)
    }
}

/// Gathers one formatted event, then writes it redacted when dropped (the formatter makes a
/// writer per event, so a secret can never be split across two writes).
pub struct EventWriter(Vec<u8>, bool);

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
    match serde_json::from_str::<serde_json::Value>(line.trim_end()) {
        Ok(mut v) => {
            walk(&mut v);
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
        self.0.extend_from_slice(buf);
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
        let text = String::from_utf8_lossy(&self.0);
        // A fault in redaction must neither show the line nor take down the thread that
        // logged (a database worker, say): the line is withheld instead.
        let json = self.1;
        let clean = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            if json {
                redact_json_line(&text)
            } else {
                chatterfly_egress::in_play::redact_log(&text).into_owned()
            }
        }))
        .unwrap_or_else(|_| "[a log line was withheld: it could not be checked for secrets]\n".to_owned());
        // Nowhere to report a failed write to stderr.
        let _ = std::io::stderr().lock().write_all(clean.as_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
