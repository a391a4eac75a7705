//! MCP servers no one here wrote, started for one test each on a free loopback port by the
//! project's scripts (`scripts/mcp-everything.sh`, `scripts/python-mcp.sh`), which install
//! them (pinned) on first use. A peer that cannot be installed or started fails the test.

use std::path::PathBuf;
use std::process::Command;

/// Which server, on which transport.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum McpPeerKind {
    /// `@modelcontextprotocol/server-everything`, Streamable HTTP at `/mcp`.
    EverythingHttp,
    /// The same, HTTP+SSE at `/sse`.
    EverythingSse,
    /// The Python SDK server (`scripts/python_mcp_server.py`), Streamable HTTP at `/mcp`.
    PythonHttp,
    /// The same, HTTP+SSE at `/sse`.
    PythonSse,
}

impl McpPeerKind {
    pub const ALL: [McpPeerKind; 4] = [
        Self::EverythingHttp,
        Self::EverythingSse,
        Self::PythonHttp,
        Self::PythonSse,
    ];

    fn script_and_mode(self) -> (&'static str, &'static str) {
        match self {
            Self::EverythingHttp => ("mcp-everything.sh", "streamableHttp"),
            Self::EverythingSse => ("mcp-everything.sh", "sse"),
            Self::PythonHttp => ("python-mcp.sh", "streamable-http"),
            Self::PythonSse => ("python-mcp.sh", "sse"),
        }
    }

    pub fn is_python(self) -> bool {
        matches!(self, Self::PythonHttp | Self::PythonSse)
    }

    pub fn is_sse(self) -> bool {
        matches!(self, Self::EverythingSse | Self::PythonSse)
    }
}

/// A running peer; stopped when dropped.
pub struct McpPeer {
    pub kind: McpPeerKind,
    pub url: String,
    pub port: u16,
    pid: u32,
    extra: Vec<String>,
}

fn scripts_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../scripts")
}

fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    l.local_addr().expect("local addr").port()
}

impl McpPeer {
    pub fn start(kind: McpPeerKind) -> Self {
        Self::start_with(kind, &[])
    }

    /// `extra`: more arguments for the script (the Python server takes a session idle
    /// timeout in seconds).
    pub fn start_with(kind: McpPeerKind, extra: &[&str]) -> Self {
        let extra: Vec<String> = extra.iter().map(|s| (*s).to_owned()).collect();
        let (url, pid, port) = on_a_free_port(|port| launch(kind, port, &extra));
        Self {
            kind,
            url,
            port,
            pid,
            extra,
        }
    }

    /// Stops the server and starts it again on the same port: every session it had is gone.
    pub fn restart(&mut self) {
        self.stop();
        let (url, pid, _) = launch(self.kind, self.port, &self.extra)
            .unwrap_or_else(|taken| panic!("the peer's port was taken while it restarted: {taken}"));
        self.url = url;
        self.pid = pid;
    }

    fn stop(&mut self) {
        let _ = Command::new("kill").arg(self.pid.to_string()).status();
        for _ in 0..100 {
            if std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        let _ = Command::new("kill").args(["-9", &self.pid.to_string()]).status();
    }
}

fn launch(kind: McpPeerKind, port: u16, extra: &[String]) -> Result<(String, u32, u16), String> {
    let (script, mode) = kind.script_and_mode();
    let mut args = vec![mode.to_owned(), port.to_string()];
    args.extend(extra.iter().cloned());
    let (url, pid) = run_script(script, &args)?;
    Ok((url, pid, port))
}

/// Starts a peer on a port picked free, and on another if the port was taken before the
/// peer could bind it (tests run at once, each picking free ports: two can pick the same
/// one, and the second peer then cannot listen).
fn on_a_free_port<T>(mut start: impl FnMut(u16) -> Result<T, String>) -> T {
    let mut taken = Vec::new();
    for _ in 0..5 {
        match start(free_port()) {
            Ok(started) => return started,
            Err(why) => taken.push(why),
        }
    }
    panic!(
        "five free ports were taken before the peer could listen:\n{}",
        taken.join("\n")
    )
}

/// Runs `scripts/<script> ARGS…`, which starts a peer and prints `URL PID`; a script that
/// fails fails the test, with its output. `Err` when another process held the port
/// (the script's exit code 75): the caller tries another.
fn run_script(script: &str, args: &[String]) -> Result<(String, u32), String> {
    let out = Command::new("bash")
        .arg(scripts_dir().join(script))
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run scripts/{script}: {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout);
    if out.status.code() == Some(75) {
        return Err(String::from_utf8_lossy(&out.stderr).trim().to_owned());
    }
    assert!(
        out.status.success(),
        "scripts/{script} {} failed (the peer is needed; it installs from npm/PyPI):\n{}{}",
        args.join(" "),
        stdout,
        String::from_utf8_lossy(&out.stderr)
    );
    let mut parts = stdout.split_whitespace();
    let url = parts.next().expect("the script prints URL PID").to_owned();
    let pid = parts
        .next()
        .and_then(|p| p.parse().ok())
        .expect("the script prints URL PID");
    Ok((url, pid))
}

impl Drop for McpPeer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A peer started by one of the project's scripts (`scripts/<script> PORT [ARGS…]`, which
/// prints `URL PID`); stopped when dropped.
pub struct ScriptPeer {
    pub url: String,
    pub port: u16,
    pid: u32,
}

impl ScriptPeer {
    /// Starts `scripts/<script>` on a free port with `args` after the port.
    pub fn start(script: &str, args: &[&str]) -> Self {
        let (url, pid, port) = on_a_free_port(|port| {
            let mut all = vec![port.to_string()];
            all.extend(args.iter().map(|a| (*a).to_owned()));
            run_script(script, &all).map(|(url, pid)| (url, pid, port))
        });
        Self { url, port, pid }
    }

    /// The authorization server of the account tests (`scripts/oauth2.sh`).
    pub fn oauth2() -> Self {
        Self::start("oauth2.sh", &[])
    }

    /// The Telegram Bot API look-alike (`scripts/telegram.sh`: telegram-test-api).
    pub fn telegram() -> Self {
        Self::start("telegram.sh", &[])
    }

    /// The LLM API look-alike (`scripts/llm.sh`: aimock) with the fixtures in
    /// `fixtures` (a directory), accepting only `keys` (comma-separated).
    pub fn llm(fixtures: &str, keys: &str) -> Self {
        Self::start("llm.sh", &[fixtures, keys])
    }

    /// LLMock (`scripts/llmock.sh`, PyPI llmock): an LLM API look-alike whose next answers
    /// and faults are scripted at `URL/_llmock/scenario`.
    pub fn llmock() -> Self {
        Self::start("llmock.sh", &[])
    }

    /// The Gmail fake (`scripts/gmail-fake.sh`), checking tokens against `oauth_url`.
    pub fn gmail(oauth_url: &str) -> Self {
        Self::start("gmail-fake.sh", &[oauth_url])
    }
}

impl Drop for ScriptPeer {
    fn drop(&mut self) {
        let _ = Command::new("kill").arg(self.pid.to_string()).status();
    }
}

/// The virtualenv Python of `scripts/gmail-discovery.sh` (google-auth, cryptography).
pub fn gmail_python() -> String {
    let out = Command::new("bash")
        .arg(scripts_dir().join("gmail-discovery.sh"))
        .output()
        .expect("run scripts/gmail-discovery.sh");
    assert!(
        out.status.success(),
        "scripts/gmail-discovery.sh failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .nth(1)
        .expect("the script prints DOC PYTHON")
        .to_owned()
}
