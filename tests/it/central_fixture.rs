//! Fixtures for the central tests: the reference server in-process on 127.0.0.1:0, a
//! scripted server for answers the reference server never gives (429, 5xx, huge bodies),
//! an agent side (config, token file, state dir), documents with canary secrets, and a
//! log capture.

#![allow(dead_code)]

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use ed25519_dalek::SigningKey;
use serde_json::{Value, json};
use tempfile::TempDir;
use tokio_util::sync::CancellationToken;
use truenas_agent::central::dsse::{self, CONFIG_PAYLOAD_TYPE, TrustedKey};
use truenas_agent::config::{AgentConfig, CentralConfig};
use truenas_central::store::{Store, token_hash};
use truenas_central::{ServerOptions, serve};

/// The device token every test uses (a canary: it must never appear anywhere we write).
pub const TOKEN: &str = "CANARY-DEVICE-TOKEN-5e19b3";
pub const DEVICE: &str = "nas-01";

/// A desired-state document carrying every secret canary.
pub fn document(revision: u64) -> Value {
    json!({
        "schema": "truenas-agent.config/v1",
        "revision": revision,
        "issued_at": "2026-11-23T10:00:00Z",
        "mode": "enforce",
        "device": {"location_uuid": "a1b2c3d4-e5f6-7071-8293-a4b5c6d7e8f9", "root_pool": "pool0"},
        "b2": {"key_id": "0024a1b2c3d4e5f0000000001", "application_key": "CANARY-B2-APPKEY-7f3a9c"},
        "encryption": {"password": "CANARY-ENC-PASSWORD-2b8e41", "salt": "CANARY-ENC-SALT-9d0c55"},
        "snmp": {"username": "snmpuser", "auth_password": "CANARY-SNMP-AUTH-61aa07",
                 "privacy_passphrase": "CANARY-SNMP-PRIV-c4e2f8"}
    })
}

pub fn signing_key(seed: u8) -> SigningKey {
    SigningKey::from_bytes(&[seed; 32])
}

/// The reference server running in this test's runtime.
pub struct Central {
    pub dir: TempDir,
    pub addr: SocketAddr,
    pub key: SigningKey,
    shutdown: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

impl Central {
    /// Starts a server signing with `key` on a free loopback port.
    pub async fn start(key: SigningKey) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let dir = tempfile::tempdir().unwrap();
        // The at-rest key inside the temp dir, so a test leaves nothing behind (the
        // product's default puts it beside the data directory, never in it).
        Store::open(dir.path())
            .unwrap()
            .bind(&dir.path().join(".test-at-rest.key"))
            .unwrap();
        Self::start_on(listener, dir, key)
    }

    /// Starts a server on a given listener and data directory (to restart one).
    pub fn start_on(listener: tokio::net::TcpListener, dir: TempDir, key: SigningKey) -> Self {
        let addr = listener.local_addr().unwrap();
        let shutdown = CancellationToken::new();
        let options = ServerOptions {
            dir: dir.path().to_owned(),
            key: key.clone(),
            change_check: Duration::from_secs(1),
        };
        let task = tokio::spawn({
            let shutdown = shutdown.clone();
            async move { serve(listener, options, shutdown).await.unwrap() }
        });
        Self {
            dir,
            addr,
            key,
            shutdown,
            task,
        }
    }

    /// Stops the server and hands back its data directory and address.
    pub async fn stop(self) -> (TempDir, SocketAddr, SigningKey) {
        self.shutdown.cancel();
        self.task.await.unwrap();
        (self.dir, self.addr, self.key)
    }

    pub fn url(&self) -> String {
        format!("http://{}/", self.addr)
    }

    pub fn store(&self) -> Store {
        Store::open(self.dir.path()).unwrap()
    }

    pub fn register(&self, name: &str, token: &str) {
        self.store().register(name, &token_hash(token)).unwrap();
    }

    pub fn publish(&self, name: &str, doc: &Value) {
        self.store()
            .publish(name, &serde_json::to_vec(doc).unwrap(), true)
            .unwrap();
    }

    /// Ids of the reports stored for a device, in arrival order.
    pub fn report_numbers(&self, name: &str) -> Vec<u64> {
        self.store()
            .reports(name)
            .unwrap()
            .iter()
            .map(|r| {
                r.report.checklist[0]
                    .detail
                    .parse::<u64>()
                    .expect("test reports carry their number in checklist[0].detail")
            })
            .collect()
    }
}

/// The agent side: a temp dir with the token file, the state dir and the config.
pub struct Agent {
    pub dir: TempDir,
    pub config: AgentConfig,
}

impl Agent {
    /// An agent for `url`, trusting `keys` (none + `allow_unsigned` when `keys` is empty
    /// and `allow_unsigned`), long-poll `wait` seconds (0 = off).
    pub fn new(url: &str, keys: &[&SigningKey], wait: u64, allow_unsigned: bool) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let token_file = dir.path().join("token");
        truenas_agent::fs::write_atomic(&token_file, format!("{TOKEN}\n").as_bytes(), 0o600)
            .unwrap();
        let keys: Vec<String> = keys
            .iter()
            .map(|k| format!("\"{}\"", TrustedKey::from_signing_key(k).to_config_string()))
            .collect();
        let text = format!(
            "state_dir = \"{state}\"\n[central]\nurl = \"{url}\"\ntoken_file = \"{token}\"\n\
             trusted_keys = [{keys}]\nallow_unsigned = {allow_unsigned}\nlong_poll_wait_secs = {wait}\n",
            state = dir.path().join("state").display(),
            token = token_file.display(),
            keys = keys.join(", "),
        );
        let path = dir.path().join("agent.toml");
        truenas_agent::fs::write_atomic(&path, text.as_bytes(), 0o644).unwrap();
        let config = AgentConfig::load(&path).unwrap();
        Self { dir, config }
    }

    pub fn central(&self) -> &CentralConfig {
        self.config.central.as_ref().unwrap()
    }

    pub fn state_dir(&self) -> truenas_agent::state_dir::StateDir {
        truenas_agent::state_dir::StateDir::open(&self.config.state_dir).unwrap()
    }

    pub fn session(&self) -> truenas_agent::central::Session {
        truenas_agent::central::open(self.central(), self.state_dir()).unwrap()
    }

    pub fn token_file(&self) -> PathBuf {
        self.dir.path().join("token")
    }
}

/// One scripted answer.
#[derive(Clone)]
pub struct Scripted {
    pub status: u16,
    pub headers: Vec<(&'static str, String)>,
    pub body: ScriptedBody,
}

#[derive(Clone)]
pub enum ScriptedBody {
    Bytes(Vec<u8>),
    /// Streamed in chunks without a Content-Length.
    Chunked {
        chunk: usize,
        total: usize,
    },
}

impl Scripted {
    pub fn status(status: u16) -> Self {
        Self {
            status,
            headers: Vec::new(),
            body: ScriptedBody::Bytes(Vec::new()),
        }
    }

    pub fn header(mut self, name: &'static str, value: &str) -> Self {
        self.headers.push((name, value.to_owned()));
        self
    }

    pub fn body(mut self, body: Vec<u8>) -> Self {
        self.body = ScriptedBody::Bytes(body);
        self
    }

    /// A signed document response.
    pub fn document(payload_type: &str, doc: &Value, key: &SigningKey, etag: &str) -> Self {
        let env = dsse::sign(payload_type, &serde_json::to_vec(doc).unwrap(), key, None);
        Self::status(200).header("etag", etag).body(env.to_json())
    }

    pub fn config_document(doc: &Value, key: &SigningKey, etag: &str) -> Self {
        Self::document(CONFIG_PAYLOAD_TYPE, doc, key, etag)
    }
}

/// A request the scripted server saw.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: Method,
    pub uri: Uri,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

#[derive(Default)]
struct Script {
    answers: VecDeque<Scripted>,
    seen: Vec<Seen>,
}

/// A server that answers from a script, in order, and records every request.
pub struct ScriptedServer {
    pub addr: SocketAddr,
    script: Arc<Mutex<Script>>,
    shutdown: CancellationToken,
}

impl ScriptedServer {
    pub async fn start(answers: Vec<Scripted>) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let script = Arc::new(Mutex::new(Script {
            answers: answers.into(),
            seen: Vec::new(),
        }));
        let app = axum::Router::new()
            .fallback(answer)
            .with_state(script.clone());
        let shutdown = CancellationToken::new();
        tokio::spawn({
            let shutdown = shutdown.clone();
            async move {
                axum::serve(listener, app)
                    .with_graceful_shutdown(async move { shutdown.cancelled().await })
                    .await
                    .unwrap();
            }
        });
        Self {
            addr,
            script,
            shutdown,
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}/", self.addr)
    }

    pub fn push(&self, answer: Scripted) {
        self.script.lock().unwrap().answers.push_back(answer);
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.script.lock().unwrap().seen.clone()
    }
}

impl Drop for ScriptedServer {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

async fn answer(
    State(script): State<Arc<Mutex<Script>>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let next = {
        let mut script = script.lock().unwrap();
        script.seen.push(Seen {
            method,
            uri,
            headers,
            body: body.to_vec(),
        });
        script.answers.pop_front()
    };
    let Some(next) = next else {
        return (StatusCode::IM_A_TEAPOT, "script exhausted").into_response();
    };
    let body = match next.body {
        ScriptedBody::Bytes(b) => Body::from(b),
        ScriptedBody::Chunked { chunk, total } => {
            let chunks = (0..total.div_ceil(chunk)).map(move |i| {
                Ok::<_, std::io::Error>(Bytes::from(vec![b'x'; chunk.min(total - i * chunk)]))
            });
            Body::from_stream(futures_util::stream::iter(chunks))
        }
    };
    let mut response = Response::new(body);
    *response.status_mut() = StatusCode::from_u16(next.status).unwrap();
    for (name, value) in next.headers {
        response.headers_mut().insert(name, value.parse().unwrap());
    }
    response
}

/// Captures everything logged (every level, every crate) on this thread.
pub struct LogCapture {
    buffer: Arc<Mutex<Vec<u8>>>,
    _guard: tracing::subscriber::DefaultGuard,
}

#[derive(Clone)]
struct SharedWriter(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for SharedWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl LogCapture {
    pub fn start() -> Self {
        let buffer = Arc::new(Mutex::new(Vec::new()));
        let writer = SharedWriter(buffer.clone());
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .finish();
        let guard = tracing::subscriber::set_default(subscriber);
        Self {
            buffer,
            _guard: guard,
        }
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.buffer.lock().unwrap()).into_owned()
    }
}

/// Every file under `dir` except the documents central itself stores (its own data).
pub fn assert_no_canary_outside_documents(dir: &Path) {
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            assert_no_canary_outside_documents(&path);
        } else if path.file_name().is_some_and(|n| n != "config.json") {
            let bytes = std::fs::read(&path).unwrap();
            crate::support::assert_no_canary(
                &path.display().to_string(),
                &String::from_utf8_lossy(&bytes),
            );
        }
    }
}
