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
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(RedactingStderr);
    match format {
        LogFormat::Text => builder
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .init(),
        LogFormat::Json => builder.json().with_current_span(false).with_span_list(true).init(),
    }
}

/// Makes one [`EventWriter`] per event.
#[derive(Clone, Copy, Debug, Default)]
pub struct RedactingStderr;

impl<'a> MakeWriter<'a> for RedactingStderr {
    type Writer = EventWriter;

    fn make_writer(&'a self) -> Self::Writer {
        EventWriter(Vec::with_capacity(256))
    }
}

/// Gathers one formatted event, then writes it redacted when dropped (the formatter makes a
/// writer per event, so a secret can never be split across two writes).
pub struct EventWriter(Vec<u8>);

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
        let clean = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            chatterfly_egress::in_play::redact_log(&text).into_owned()
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
        let mut w = RedactingStderr.make_writer();
        assert!(w.write_all(b"part one ").is_ok());
        assert!(w.write_all(secret.as_bytes()).is_ok());
        assert!(
            String::from_utf8_lossy(&w.0).contains(secret),
            "gathered whole, redacted on drop"
        );
    }
}
