//! Fixtures for the central tests: the reference server in-process on 127.0.0.1:0 on
//! either database engine, a scripted server for answers the reference server never gives
//! (429, 5xx, huge bodies), an agent side (config, token file, state dir), documents with
//! canary secrets, and a log capture.
//!
//! The engine: tests listed in `on_both_engines!` (tests/it/main.rs) run once on SQLite
//! and once on a real PostgreSQL server started for the test (`pg_server`); every other
//! test uses SQLite, or PostgreSQL when `CENTRAL_TEST_DATABASE=postgres` is set (to run
//! the e2e suite on it: `CENTRAL_TEST_DATABASE=postgres cargo nextest run e2e_`).
//! Database calls made by fixtures go through [`held`], and the server runs with
//! `hold_clock`, so tests on tokio's paused clock never see time jump while a query waits.

#![allow(dead_code)]

use std::collections::{BTreeMap, VecDeque};
use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use ed25519_dalek::SigningKey;
use secrecy::ExposeSecret as _;
use serde_json::{Value, json};
use tempfile::TempDir;
use tokio_util::sync::CancellationToken;
use truenas_agent::central::dsse::{self, CONFIG_PAYLOAD_TYPE, TrustedKey};
use truenas_agent::config::{AgentConfig, CentralConfig};
use truenas_central::db::{Database, Db, StoredReport, token_hash};
use truenas_central::{ServerOptions, datastore, serve};

use crate::pg_server::PgServer;

/// The device token every test uses (a canary: it must never appear anywhere we write).
pub const TOKEN: &str = "CANARY-DEVICE-TOKEN-5e19b3";
pub const DEVICE: &str = "nas-01";
/// The environment variable choosing the engine of tests that do not choose one.
pub const ENGINE_ENV: &str = "CENTRAL_TEST_DATABASE";

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

/// The database engine of a central fixture.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    Sqlite,
    Postgres,
}

tokio::task_local! {
    static ENGINE: Engine;
}

/// Runs a test body with `engine` as the engine of the fixtures it starts.
pub async fn with_engine<F: Future>(engine: Engine, body: F) -> F::Output {
    ENGINE.scope(engine, body).await
}

/// The engine fixtures started now use: the test's (`with_engine`), else `ENGINE_ENV`.
pub fn engine() -> Engine {
    ENGINE
        .try_with(|e| *e)
        .unwrap_or_else(|_| match std::env::var(ENGINE_ENV).ok().as_deref() {
            Some("postgres" | "postgresql" | "pg") => Engine::Postgres,
            Some("" | "sqlite") | None => Engine::Sqlite,
            Some(other) => panic!("{ENGINE_ENV}={other}: expected sqlite or postgres"),
        })
}

/// Awaits `call` while a blocking task holds tokio's paused test clock (it would otherwise
/// jump ahead while a query waits for SQLite's worker thread or PostgreSQL).
pub async fn held<F: Future>(call: F) -> F::Output {
    let (release, wait) = std::sync::mpsc::channel::<()>();
    let hold = tokio::task::spawn_blocking(move || {
        let _ = wait.recv();
    });
    let out = call.await;
    drop(release);
    let _ = hold.await;
    out
}

/// A central's data: a temp directory (the SQLite file, or on PostgreSQL only the at-rest
/// binding) and its database (on PostgreSQL a fresh database on a server of its own, kept
/// as long as this value).
pub struct DataDir {
    dir: TempDir,
    pub database: Database,
    pg: Option<Arc<PgServer>>,
}

impl DataDir {
    /// A new data directory on [`engine`], bound to an at-rest key inside it (so a test
    /// leaves nothing behind; the product's default puts it beside the directory).
    pub async fn new() -> Self {
        Self::adopt(tempfile::tempdir().unwrap()).await
    }

    /// `dir` (which may hold an old file layout to import) as a data directory on
    /// [`engine`]; binds it to a key inside it unless it is bound already.
    pub async fn adopt(dir: TempDir) -> Self {
        Self::adopt_on(engine(), dir).await
    }

    pub async fn adopt_on(engine: Engine, dir: TempDir) -> Self {
        if truenas_central::at_rest::binding(dir.path())
            .unwrap()
            .is_none()
        {
            let sealed = truenas_central::store::Store::new(dir.path())
                .holds_sealed_files()
                .unwrap();
            truenas_central::at_rest::bind(
                dir.path(),
                &dir.path().join(".test-at-rest.key"),
                sealed,
            )
            .unwrap();
        }
        Self::adopt_as_is(engine, dir).await
    }

    /// `dir` as it is (no at-rest binding added: the product's default applies).
    pub async fn adopt_as_is(engine: Engine, dir: TempDir) -> Self {
        let (database, pg) = match engine {
            Engine::Sqlite => (Database::from_flag(dir.path(), None).unwrap(), None),
            Engine::Postgres => {
                // Started from the test's own thread (the server dies with it).
                let pg = PgServer::start();
                let url = held(pg.fresh_database()).await;
                // For `truenas-central` children: see `database_args`.
                truenas_agent::fs::write_atomic(
                    &dir.path().join(DATABASE_URL_FILE),
                    format!("{url}\n").as_bytes(),
                    0o600,
                )
                .unwrap();
                (Database::Postgres(url.into()), Some(Arc::new(pg)))
            }
        };
        Self { dir, database, pg }
    }

    /// A second data directory on the same database (another central instance), bound to
    /// the same at-rest key file.
    pub fn another_instance(&self) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let binding = truenas_central::at_rest::binding(self.path())
            .unwrap()
            .unwrap();
        truenas_central::at_rest::bind(dir.path(), &binding.key_file, false).unwrap();
        Self {
            dir,
            database: self.database.clone(),
            pg: self.pg.clone(),
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn engine(&self) -> Engine {
        if self.pg.is_some() {
            Engine::Postgres
        } else {
            Engine::Sqlite
        }
    }

    /// Opens the data as `truenas-central` does.
    pub async fn open(&self) -> Db {
        held(datastore::open(self.path(), &self.database))
            .await
            .unwrap()
    }

    /// The environment a `truenas-central` child process needs for this database (the
    /// PostgreSQL URL; none, and any inherited one removed, for SQLite).
    pub fn env(&self) -> Option<String> {
        match &self.database {
            Database::Postgres(url) => Some(url.expose_secret().to_owned()),
            Database::Sqlite(_) => None,
        }
    }

    /// Applies [`DataDir::env`] to a command.
    pub fn apply_env(&self, command: &mut std::process::Command) {
        match self.env() {
            Some(url) => command.env(truenas_central::cli::DATABASE_ENV, url),
            None => command.env_remove(truenas_central::cli::DATABASE_ENV),
        };
    }

    /// Applies [`DataDir::env`] to a tokio command.
    pub fn apply_env_tokio(&self, command: &mut tokio::process::Command) {
        match self.env() {
            Some(url) => command.env(truenas_central::cli::DATABASE_ENV, url),
            None => command.env_remove(truenas_central::cli::DATABASE_ENV),
        };
    }

    /// Everything the data holds as bytes a backup would carry: every file of the
    /// directory (the SQLite files among them), plus a `pg_dump` on PostgreSQL.
    pub fn raw_dump(&self) -> Vec<u8> {
        let mut bytes = Vec::new();
        collect_files(self.path(), &mut bytes);
        if let (Database::Postgres(url), Some(pg)) = (&self.database, &self.pg) {
            let url = url.expose_secret();
            let name = url
                .split_once("localhost/")
                .and_then(|(_, rest)| rest.split_once('?'))
                .unwrap()
                .0;
            bytes.extend(pg.client("pg_dump", name, &[]));
        }
        bytes
    }

    /// The rows of the tables that hold devices, tokens, documents and credentials, as
    /// text (to prove a run changed nothing in the database). Sealed values are compared
    /// as bytes: a re-seal (new nonce) counts as a change.
    pub async fn logical_dump(&self) -> BTreeMap<String, Vec<String>> {
        held(async {
            let db = Db::open(
                &self.database,
                Arc::new(truenas_central::at_rest::KeySlot::default()),
            )
            .await
            .unwrap();
            let mut out = BTreeMap::new();
            for (table, sql) in [
                ("devices", "SELECT name, org_uuid, location_uuid, location_name, disabled FROM devices ORDER BY name"),
                ("device_tokens", "SELECT t.hash, d.name FROM device_tokens t JOIN devices d ON d.id = t.device_id ORDER BY t.hash"),
                ("documents", "SELECT d.name, doc.revision, doc.etag, doc.sealed, doc.published_at FROM documents doc JOIN devices d ON d.id = doc.device_id ORDER BY d.name"),
                ("credentials", "SELECT d.name, c.sealed, c.b2_key_id, c.fingerprints, c.updated_at FROM credentials c JOIN devices d ON d.id = c.device_id ORDER BY d.name"),
                ("meta", "SELECT key, value FROM meta ORDER BY key"),
            ] {
                out.insert(table.to_owned(), db.probe_rows(sql).await.unwrap());
            }
            db.close().await;
            out
        })
        .await
    }
}

fn collect_files(dir: &Path, out: &mut Vec<u8>) {
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            collect_files(&path, out);
        } else {
            out.extend(crate::support::read_file(&path).unwrap_or_default());
        }
    }
}

/// Where a PostgreSQL fixture leaves its database URL in its data directory, for the
/// `truenas-central` children a test runs with `--dir` (see [`database_args`]).
pub const DATABASE_URL_FILE: &str = ".test-database-url";

/// `args` for a `truenas-central` child, plus `--database-file DIR/.test-database-url`
/// when the data directory named by `--dir` is a PostgreSQL fixture's (SQLite otherwise).
pub fn database_args(args: &[&str]) -> Vec<String> {
    let mut out: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
    let dir = args
        .iter()
        .position(|a| *a == "--dir")
        .and_then(|i| args.get(i + 1));
    if let Some(dir) = dir {
        let file = Path::new(dir).join(DATABASE_URL_FILE);
        if file.exists() {
            out.push("--database-file".to_owned());
            out.push(file.display().to_string());
        }
    }
    out
}

/// The reference server running in this test's runtime.
pub struct Central {
    pub dir: DataDir,
    pub addr: SocketAddr,
    pub key: SigningKey,
    db: Db,
    shutdown: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

impl Central {
    /// Starts a server signing with `key` on a free loopback port, on [`engine`].
    pub async fn start(key: SigningKey) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        Self::start_on(listener, DataDir::new().await, key).await
    }

    /// Starts a server on a given listener and data (to restart one).
    pub async fn start_on(
        listener: tokio::net::TcpListener,
        dir: DataDir,
        key: SigningKey,
    ) -> Self {
        let addr = listener.local_addr().unwrap();
        let shutdown = CancellationToken::new();
        let db = dir.open().await;
        let options = ServerOptions {
            hold_clock: true,
            ..ServerOptions::new(key.clone())
        };
        let task = tokio::spawn({
            let shutdown = shutdown.clone();
            let db = db.clone();
            async move { serve(listener, db, options, shutdown).await.unwrap() }
        });
        Self {
            dir,
            addr,
            key,
            db,
            shutdown,
            task,
        }
    }

    /// Stops the server and hands back its data and address.
    pub async fn stop(self) -> (DataDir, SocketAddr, SigningKey) {
        self.shutdown.cancel();
        self.task.await.unwrap();
        held(self.db.close()).await;
        (self.dir, self.addr, self.key)
    }

    pub fn url(&self) -> String {
        format!("http://{}/", self.addr)
    }

    /// The server's own database handle (a publish through it wakes its long-polls at once).
    pub fn db(&self) -> &Db {
        &self.db
    }

    pub async fn register(&self, name: &str, token: &str) {
        held(self.db.register(name, &token_hash(token)))
            .await
            .unwrap();
    }

    pub async fn publish(&self, name: &str, doc: &Value) {
        held(
            self.db
                .publish(name, &serde_json::to_vec(doc).unwrap(), true),
        )
        .await
        .unwrap();
    }

    pub async fn set_disabled(&self, name: &str, disabled: bool) {
        held(self.db.set_disabled(name, disabled)).await.unwrap();
    }

    /// Every report stored for a device, in arrival order.
    pub async fn reports(&self, name: &str) -> Vec<StoredReport> {
        let mut all = held(self.db.reports(name, u32::MAX)).await.unwrap();
        all.reverse();
        all
    }

    /// Ids of the reports stored for a device, in arrival order.
    pub async fn report_numbers(&self, name: &str) -> Vec<u64> {
        self.reports(name)
            .await
            .iter()
            .map(|r| {
                r.report.checklist[0]
                    .detail
                    .parse::<u64>()
                    .expect("test reports carry their number in checklist[0].detail")
            })
            .collect()
    }

    /// Replaces the device's stored document with `bytes` (sealed with the data's key)
    /// behind the server's back, skipping every check `publish` makes: to serve documents
    /// central itself would refuse to publish (e.g. revision 0).
    pub async fn write_document_unchecked(&self, name: &str, bytes: &[u8]) {
        use sha2::Digest as _;
        let binding = truenas_central::at_rest::binding(self.dir.path())
            .unwrap()
            .unwrap();
        let key = truenas_central::crypto::AtRestKey::read(&binding.key_file).unwrap();
        let sealed =
            truenas_central::db::Sealer::seal(&key, &format!("devices/{name}/config.json"), bytes)
                .unwrap();
        let etag = format!("\"r0-{}\"", &hex::encode(sha2::Sha256::digest(bytes))[..32]);
        let url = match &self.dir.database {
            Database::Sqlite(path) => format!("sqlite://{}", path.display()),
            Database::Postgres(url) => url.expose_secret().to_owned(),
        };
        held(async {
            sqlx::any::install_default_drivers();
            let pool = sqlx::AnyPool::connect(&url).await.unwrap();
            let done = sqlx::query(
                "UPDATE documents SET sealed = $1, etag = $2 \
                 WHERE device_id = (SELECT id FROM devices WHERE name = $3)",
            )
            .bind(sealed)
            .bind(etag)
            .bind(name)
            .execute(&pool)
            .await
            .unwrap();
            assert_eq!(done.rows_affected(), 1, "a document was published before");
            pool.close().await;
        })
        .await;
    }

    /// No canary in any file of the data directory (the SQLite files among them) nor in
    /// a `pg_dump`: documents are stored sealed.
    pub fn assert_no_canary_in_data(&self) {
        crate::support::assert_no_canary(
            "central's data (files and database dump)",
            &String::from_utf8_lossy(&self.dir.raw_dump()),
        );
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

/// Every file under `dir` except `config.json` (an old file layout's document, sealed).
pub fn assert_no_canary_outside_documents(dir: &Path) {
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            assert_no_canary_outside_documents(&path);
        } else if path.file_name().is_some_and(|n| n != "config.json") {
            let bytes = crate::support::read_file(&path).unwrap();
            crate::support::assert_no_canary(
                &path.display().to_string(),
                &String::from_utf8_lossy(&bytes),
            );
        }
    }
}

/// Writes the old file data directory (what central kept before the database:
/// `devices/<name>/token.sha256`, `config.json`, `secrets.json`, `disabled`,
/// `reports.jsonl`), as the server of that time wrote it, to test its import.
pub struct OldLayout {
    pub root: PathBuf,
    key: Arc<truenas_central::crypto::AtRestKey>,
}

impl OldLayout {
    /// `root`, bound (as that server did) to the at-rest key in `key_file`.
    pub fn new(root: &Path, key_file: &Path) -> Self {
        truenas_central::at_rest::bind(root, key_file, false).unwrap();
        let key = truenas_central::crypto::AtRestKey::read(key_file).unwrap();
        Self {
            root: root.to_owned(),
            key: Arc::new(key),
        }
    }

    pub fn key(&self) -> Arc<truenas_central::crypto::AtRestKey> {
        Arc::clone(&self.key)
    }

    fn device(&self, name: &str) -> PathBuf {
        let dir = self.root.join("devices").join(name);
        truenas_agent::fs::create_dir_all(&dir, 0o700).unwrap();
        dir
    }

    pub fn register(&self, name: &str, token: &str) {
        let line = format!("{}\n", token_hash(token));
        truenas_agent::fs::write_atomic(
            &self.device(name).join("token.sha256"),
            line.as_bytes(),
            0o600,
        )
        .unwrap();
    }

    /// `config.json`, sealed (`meta`: the revision), as `publish` wrote it.
    pub fn publish(&self, name: &str, doc: &Value) {
        let bytes = serde_json::to_vec(doc).unwrap();
        let sealed = self.key.seal(
            &format!("devices/{name}/config.json"),
            &json!({"revision": doc["revision"]}),
            &bytes,
        );
        truenas_agent::fs::write_atomic(&self.device(name).join("config.json"), &sealed, 0o600)
            .unwrap();
    }

    /// `config.json` in clear, as written before sealing existed.
    pub fn publish_plain(&self, name: &str, doc: &Value) {
        truenas_agent::fs::write_atomic(
            &self.device(name).join("config.json"),
            &serde_json::to_vec(doc).unwrap(),
            0o600,
        )
        .unwrap();
    }

    /// `secrets.json`, sealed, as `provision` wrote it.
    pub fn secrets(&self, name: &str, record: &Value) {
        let sealed = self.key.seal(
            &format!("devices/{name}/secrets.json"),
            &json!({"schema": truenas_central::secrets::SECRETS_SCHEMA}),
            &serde_json::to_vec(record).unwrap(),
        );
        truenas_agent::fs::write_atomic(&self.device(name).join("secrets.json"), &sealed, 0o600)
            .unwrap();
    }

    pub fn disable(&self, name: &str) {
        truenas_agent::fs::write_atomic(&self.device(name).join("disabled"), b"", 0o600).unwrap();
    }

    pub fn append_report(&self, name: &str, stored: &StoredReport) {
        let mut line = serde_json::to_vec(stored).unwrap();
        line.push(b'\n');
        truenas_agent::fs::append_synced(&self.device(name).join("reports.jsonl"), &line, 0o600)
            .unwrap();
    }
}

/// A provisioning secrets record (`secrets::DeviceSecrets` as JSON) with canary secrets.
pub fn secrets_record(device: &str) -> Value {
    json!({
        "schema": truenas_central::secrets::SECRETS_SCHEMA,
        "device": device,
        "provisioned_at": "2026-11-20T09:00:00Z",
        "updated_at": "2026-11-20T09:00:00Z",
        "current": {
            "org_uuid": "3f2b8c1e-9d4a-4e6b-8a7c-1d2e3f4a5b6c",
            "location_uuid": "a1b2c3d4-e5f6-4071-8293-a4b5c6d7e8f9",
            "location_name": "Main Office",
            "bucket": "truenas-a1b2c3d4e5f640718293a4b5c6d7e8f9",
            "bucket_id": "bucket-id-1",
            "key": {
                "key_id": "0024a1b2c3d4e5f0000000001",
                "application_key": "CANARY-B2-APPKEY-7f3a9c",
                "name": "truenas-a1b2c3d4e5f640718293a4b5c6d7e8f9",
                "capabilities": ["listBuckets"],
                "created_via": "v3",
                "created_at": "2026-11-20T09:00:00Z"
            },
            "encryption": {
                "password": "CANARY-ENC-PASSWORD-2b8e41",
                "salt": "CANARY-ENC-SALT-9d0c55",
                "created_at": "2026-11-20T09:00:00Z"
            },
            "since": "2026-11-20T09:00:00Z"
        },
        "snmp": {
            "username": "snmpuser",
            "auth_password": "CANARY-SNMP-AUTH-61aa07",
            "privacy_passphrase": "CANARY-SNMP-PRIV-c4e2f8",
            "created_at": "2026-11-20T09:00:00Z"
        }
    })
}
