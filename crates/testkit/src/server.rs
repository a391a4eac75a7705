//! The real `chatterfly` binary, spawned on a random port with a fresh database; its stdout
//! and stderr are kept so tests can read the logs (the canary test searches them).

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::Value;

use crate::{Db, TestDb, fresh_database};

/// How to start a server.
#[derive(Clone, Debug)]
pub struct Options {
    /// Extra environment (e.g. keys). The variables the server reads are cleared first.
    pub env: Vec<(String, String)>,
    pub rust_log: String,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            env: Vec::new(),
            rust_log: "debug".into(),
        }
    }
}

/// A running server. Killed on drop.
pub struct TestServer {
    pub url: String,
    /// The bootstrap admin's token.
    pub token: String,
    pub db: TestDb,
    child: Child,
    output: Arc<Mutex<String>>,
    client: reqwest::Client,
}

/// A server that exited instead of becoming ready; the database is handed back.
pub struct Exited {
    pub code: Option<i32>,
    pub output: String,
    pub db: TestDb,
}

impl std::fmt::Debug for Exited {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "exited with {:?}:\n{}", self.code, self.output)
    }
}

/// The variables that configure the server; cleared so the caller's environment cannot leak in.
const SERVER_ENV: &[&str] = &[
    "DATABASE_URL",
    "INTEGRATION_ENCRYPTION_KEY",
    "INTEGRATION_ENCRYPTION_PREVIOUS_KEYS",
    "CHATTERFLY_BOOTSTRAP_ADMIN_TOKEN",
    "CHATTERFLY_DATA_DIR",
    "CHATTERFLY_ADDR",
    "APP_URL",
    "CHATTERFLY_ALLOW_PRIVATE",
    "CHATTERFLY_MAX_CALLS_PER_WORKSPACE",
    "CHATTERFLY_METRICS_TOKEN",
    "CHATTERFLY_METRICS_ALLOW",
    "CHATTERFLY_LOG_FORMAT",
];

/// A random key (base64) for tests that set INTEGRATION_ENCRYPTION_KEY themselves.
pub fn random_key() -> String {
    use base64::Engine;
    let bytes: [u8; 32] = rand::random();
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn pipe_into(mut src: impl Read + Send + 'static, sink: Arc<Mutex<String>>) {
    std::thread::spawn(move || {
        let mut reader = BufReader::new(&mut src);
        let mut line = String::new();
        loop {
            line.clear();
            match reader.read_line(&mut line) {
                Ok(0) | Err(_) => break,
                Ok(_) => sink.lock().expect("log lock").push_str(&line),
            }
        }
    });
}

/// Runs a `chatterfly` command to completion with the same configuration a server on `db`
/// would have (e.g. `keys rotate`). Returns (exit code, stdout + stderr).
pub fn run_command(bin: &Path, db: &TestDb, args: &[&str], env: &[(String, String)]) -> (Option<i32>, String) {
    let mut cmd = base_command(bin, db, env, "info");
    cmd.args(args);
    let out = cmd.output().expect("run chatterfly");
    let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&out.stderr));
    (out.status.code(), text)
}

fn base_command(bin: &Path, db: &TestDb, env: &[(String, String)], rust_log: &str) -> Command {
    let mut cmd = Command::new(bin);
    for var in SERVER_ENV {
        cmd.env_remove(var);
    }
    cmd.env("RUST_LOG", rust_log)
        .arg("--data-dir")
        .arg(data_dir(db))
        .stdin(Stdio::null());
    if db.kind == Db::Postgres {
        cmd.arg("--database-url").arg(&db.url);
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd
}

/// The data dir of a test database: the SQLite file is `chatterfly.db` in it.
pub fn data_dir(db: &TestDb) -> PathBuf {
    db.dir.path().to_path_buf()
}

/// A plain client for talking to the server under test (the workspace's reqwest is built
/// without a default TLS provider, so install one first).
pub fn test_client() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::new()
}

impl TestServer {
    /// A fresh database and a server on it; PostgreSQL gets a random key (it requires one).
    pub async fn start(bin: &str, kind: Db) -> Self {
        Self::start_with(bin, kind, Options::default()).await
    }

    pub async fn start_with(bin: &str, kind: Db, mut options: Options) -> Self {
        let db = fresh_database(kind).await;
        if kind == Db::Postgres && !options.env.iter().any(|(k, _)| k == "INTEGRATION_ENCRYPTION_KEY") {
            options.env.push(("INTEGRATION_ENCRYPTION_KEY".into(), random_key()));
        }
        match Self::spawn(Path::new(bin), db, &options) {
            Ok(s) => s,
            Err(e) => panic!("the server did not start (exit {:?}):\n{}", e.code, e.output),
        }
    }

    /// Starts a server on an existing database. `Err` when it exits before it is ready.
    pub fn spawn(bin: &Path, db: TestDb, options: &Options) -> Result<Self, Exited> {
        let token = db.admin_token.clone();
        let mut env = vec![("CHATTERFLY_BOOTSTRAP_ADMIN_TOKEN".to_owned(), token.clone())];
        env.extend(options.env.iter().cloned());
        let mut cmd = base_command(bin, &db, &env, &options.rust_log);
        cmd.args(["serve", "--addr", "127.0.0.1:0"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("spawn chatterfly");
        let output = Arc::new(Mutex::new(String::new()));
        pipe_into(child.stdout.take().expect("stdout"), output.clone());
        pipe_into(child.stderr.take().expect("stderr"), output.clone());
        let deadline = Instant::now() + Duration::from_secs(60);
        let url = loop {
            let text = output.lock().expect("log lock").clone();
            if let Some(line) = text.lines().find(|l| l.contains("listening on http://")) {
                let url = line.rsplit(' ').next().expect("url").trim().to_owned();
                break url;
            }
            if let Ok(Some(status)) = child.try_wait() {
                std::thread::sleep(Duration::from_millis(100)); // let the pipes drain
                return Err(Exited {
                    code: status.code(),
                    output: output.lock().expect("log lock").clone(),
                    db,
                });
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!("server not ready after 60 s:\n{text}");
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        Ok(Self {
            url,
            token,
            db,
            child,
            output,
            client: test_client(),
        })
    }

    /// The server's process id (for reading its memory and open files under /proc).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Everything the server printed so far (stdout and stderr).
    pub fn output(&self) -> String {
        self.output.lock().expect("log lock").clone()
    }

    /// Stops the server and gives back its database (for a restart).
    pub fn stop(mut self) -> (TestDb, String) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        std::thread::sleep(Duration::from_millis(50));
        let out = self.output();
        // Move the db out without running Drop's kill twice.
        let db = std::mem::replace(
            &mut self.db,
            TestDb {
                url: String::new(),
                kind: Db::Sqlite,
                dir: tempfile::tempdir().expect("tempdir"),
                admin_token: String::new(),
            },
        );
        (db, out)
    }

    /// A request as the bootstrap admin.
    pub async fn call(&self, method: Method, path: &str, body: Option<Value>) -> (u16, Value) {
        self.call_as(&self.token, method, path, body).await
    }

    /// A request with a given token (empty: none).
    pub async fn call_as(&self, token: &str, method: Method, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut req = self.client.request(method, format!("{}{path}", self.url));
        if !token.is_empty() {
            req = req.bearer_auth(token);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.expect("request");
        let status = resp.status().as_u16();
        let text = resp.text().await.expect("body");
        let value = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        (status, value)
    }

    /// A raw request, for malformed bodies and odd headers: (status, content type, body).
    pub async fn raw(
        &self,
        method: Method,
        path: &str,
        content_type: Option<&str>,
        body: Vec<u8>,
    ) -> (u16, String, String) {
        let mut req = self
            .client
            .request(method, format!("{}{path}", self.url))
            .bearer_auth(&self.token);
        if let Some(ct) = content_type {
            req = req.header("content-type", ct);
        }
        let resp = req.body(body).send().await.expect("request");
        let status = resp.status().as_u16();
        let ct = resp
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        (status, ct, resp.text().await.expect("body"))
    }

    /// Creates a user and a token for it; returns (user id, token).
    pub async fn user(&self, email: &str) -> (String, String) {
        let (s, u) = self
            .call(
                Method::POST,
                "/api/users",
                Some(serde_json::json!({"email": email, "name": email})),
            )
            .await;
        assert_eq!(s, 201, "{u}");
        let id = u["id"].as_str().expect("id").to_owned();
        let (s, t) = self
            .call(
                Method::POST,
                &format!("/api/users/{id}/tokens"),
                Some(serde_json::json!({"name": "test"})),
            )
            .await;
        assert_eq!(s, 201, "{t}");
        (id, t["token"].as_str().expect("token").to_owned())
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
