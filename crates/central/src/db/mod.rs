//! Central's database: one schema and one code path for SQLite (the embedded default, one
//! file in the data directory) and PostgreSQL (`--database postgres://…`, shared by several
//! central instances). Every `truenas-central` command and the server work on it (opened
//! through `datastore`, which also imports a data directory of the old file layout once).
//!
//! Owns: the connection pools ([`Db::open`]), the versioned migrations run at open
//! (`schema`), and every table: devices (name, org/location, disabled), device tokens
//! (SHA-256 hashes only), the current document per device (sealed bytes + revision +
//! ETag), per-device B2 credentials (sealed bytes + key ids + fingerprints), reports
//! (de-duplicated per device on `report_id`) with the derived per-device state the
//! dashboard reads (`reports`), operators, operator tokens and sessions (hashes only,
//! `operators`), the webhook outbox (`outbox`), the announced alert state per device
//! (`alerts`), report retention, the import of today's data directory (`import`) and
//! document-publish wake-ups (`watch`: PostgreSQL `LISTEN/NOTIFY`; on SQLite an in-process
//! channel plus a once-a-second look at the `documents` table while someone waits, for
//! publishes made by other processes), the device-name and document-schema rules
//! ([`is_valid_device_name`], [`check_document_schema`]), the stored report types
//! ([`StoredReport`], [`DropTally`]) and which at-rest key the database's sealed values
//! belong to ([`Db::bind_at_rest_key`]).
//! Does not: encrypt. Documents and credentials hold secrets; the caller supplies the
//! at-rest [`Sealer`] (the provisioning work's XChaCha20-Poly1305 key) and this module only
//! ever stores what `seal` returned. Nor does it speak HTTP, sign documents, or decide what
//! a webhook says.
//! Invariants: no secret is stored in clear (tokens and session ids as hashes, documents and
//! credentials sealed); the PostgreSQL URL (which may hold a password) is never logged nor
//! put in an error; every statement is plain SQL with `$n` parameters that both engines run;
//! a report and the derived state it changes (and the webhooks it queues) commit in one
//! transaction; the same `report_id` is stored once per device even under concurrent
//! inserts (a unique index, not a check-then-insert); a publish commits the document and
//! its notification together; a database holds values sealed under one at-rest key only
//! (its id is recorded at first open; another key is refused before anything is sealed).
//! Limitations: a report deleted by retention can be stored again if an agent replays it
//! (agents' spools hold reports for hours, retention keeps days); SQLite serialises writers
//! (one write connection per process, `busy_timeout` across processes); the timestamps
//! are milliseconds since the epoch (UTC).

mod alerts;
mod import;
mod operators;
mod outbox;
mod reports;
mod schema;
mod watch;

use std::fmt;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::str::FromStr as _;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeZone as _, Utc};
use secrecy::{ExposeSecret as _, SecretString};
use sha2::{Digest as _, Sha256};
use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{AnyPool, Executor as _, Row as _};
use tokio_util::sync::{CancellationToken, DropGuard};

use truenas_agent::central::fetch::read_revision;
use truenas_agent::fault::Fault;

pub use import::{IMPORT_META_KEY, ImportSummary, import_meta_key};
pub use operators::Operator;
pub use outbox::{NewWebhook, OutboxItem, backoff};
pub use reports::{Accepted, DeviceState, DropTally, PoolBackup, StoredReport};
pub use schema::SCHEMA_VERSION;
pub use watch::{DocumentEvent, DocumentWatch};

/// The SQLite file in the data directory.
pub const SQLITE_FILE: &str = "central.db";
/// Default report retention in days (plus each device's latest report, always kept).
pub const DEFAULT_RETENTION_DAYS: u32 = 90;
/// How long a statement may wait for a connection from the pool.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(30);
/// How long SQLite waits for another process's write lock.
const SQLITE_BUSY_TIMEOUT_MS: u32 = 10_000;
/// How often, on SQLite, the `documents` table is looked at for publishes made by other
/// processes (`truenas-central publish`) while a long-poll waits.
pub const SQLITE_WATCH_INTERVAL: Duration = Duration::from_secs(1);
/// The `meta` key recording the id of the at-rest key the database's sealed values use.
pub const AT_REST_KEY_META: &str = "at_rest.key_id";

/// Largest document accepted by `publish`: its base64 in the envelope stays under the
/// agent's 1 MiB body cap.
pub const MAX_DOCUMENT: usize = 700 * 1024;
/// The schema a published document must name.
pub const CONFIG_SCHEMA: &str = "truenas-agent.config/v1";
/// The device-name rule, as error messages state it.
pub const DEVICE_NAME_RULE: &str = "use 1 to 64 letters, digits, `-`, `_` and `.` (not first)";

/// SHA-256 (hex) of a bearer token: what is stored and looked up, never the token.
pub fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// The device-name rule: 1 to 64 ASCII letters, digits, `-`, `_` and `.`, not starting
/// with `.` (a safe single path component in the old file layout, a plain label elsewhere).
pub fn is_valid_device_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && !name.starts_with('.')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
}

/// `Err(rule)` unless the document's `schema` is [`CONFIG_SCHEMA`].
pub fn check_document_schema(document: &[u8]) -> Result<(), String> {
    #[derive(serde::Deserialize)]
    struct SchemaOnly {
        schema: Option<String>,
    }
    match serde_json::from_slice::<SchemaOnly>(document) {
        Ok(SchemaOnly { schema: Some(s) }) if s == CONFIG_SCHEMA => Ok(()),
        Ok(_) | Err(_) => Err(format!("`schema` must be \"{CONFIG_SCHEMA}\"")),
    }
}

/// Where the data lives.
#[derive(Clone)]
pub enum Database {
    /// A SQLite file (created if missing).
    Sqlite(PathBuf),
    /// A PostgreSQL URL (`postgres://` or `postgresql://`); it may hold a password.
    Postgres(SecretString),
}

impl fmt::Debug for Database {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Database::Sqlite(path) => f.debug_tuple("Sqlite").field(path).finish(),
            Database::Postgres(_) => f.write_str("Postgres([REDACTED])"),
        }
    }
}

impl Database {
    /// `--database` as given (`postgres://…`), or SQLite in `dir` when absent.
    pub fn from_flag(dir: &Path, flag: Option<SecretString>) -> Result<Self, DbError> {
        let Some(url) = flag else {
            return Ok(Database::Sqlite(dir.join(SQLITE_FILE)));
        };
        let text = url.expose_secret();
        if text.starts_with("postgres://") || text.starts_with("postgresql://") {
            Ok(Database::Postgres(url))
        } else {
            Err(DbError::BadUrl {
                rule: "`--database` must be a PostgreSQL URL (`postgres://…` or \
                       `postgresql://…`); leave it out to use SQLite in the data directory",
            })
        }
    }

    /// Which engine.
    pub fn backend(&self) -> Backend {
        match self {
            Database::Sqlite(_) => Backend::Sqlite,
            Database::Postgres(_) => Backend::Postgres,
        }
    }
}

/// The engine behind a [`Db`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Backend::Sqlite => "SQLite",
            Backend::Postgres => "PostgreSQL",
        })
    }
}

/// Why a sealed value did not open (the sealer's own error, kept as the source).
pub type SealError = Box<dyn std::error::Error + Send + Sync>;

/// The at-rest encryption the caller supplies (the provisioning work's key implements it).
/// `purpose` names what is sealed (`devices/<name>/config.json`,
/// `devices/<name>/secrets.json`, as in the file store) so a sealer can bind the
/// ciphertext to its place; this module stores the bytes `seal` returns and nothing else.
pub trait Sealer: Send + Sync {
    /// Id of the key (not secret), stored beside each sealed value.
    fn key_id(&self) -> String;
    /// Seals `plaintext` for `purpose`.
    fn seal(&self, purpose: &str, plaintext: &[u8]) -> Result<Vec<u8>, SealError>;
    /// Opens what [`Sealer::seal`] returned for the same `purpose`.
    fn open(&self, purpose: &str, sealed: &[u8]) -> Result<Vec<u8>, SealError>;
}

/// A database operation failed.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("{rule}")]
    BadUrl { rule: &'static str },
    #[error("cannot open the {backend} database")]
    Connect {
        backend: Backend,
        #[source]
        source: sqlx::Error,
    },
    #[error("a {backend} database statement failed")]
    Query {
        backend: Backend,
        #[source]
        source: sqlx::Error,
    },
    #[error(
        "the database schema is version {found}, newer than this central ({known}): run the \
         newer central, or restore a backup taken before the upgrade"
    )]
    SchemaTooNew { found: i64, known: i64 },
    #[error("cannot create the directory of the SQLite file {path}")]
    Dir {
        path: PathBuf,
        #[source]
        source: truenas_agent::fs::FsError,
    },
    #[error("device name `{name}` is invalid: {DEVICE_NAME_RULE}")]
    BadName { name: String },
    #[error("device `{name}` is not registered")]
    UnknownDevice { name: String },
    #[error("device `{name}` is already registered")]
    AlreadyRegistered { name: String },
    #[error("this token is already registered as device `{name}`")]
    TokenInUse { name: String },
    #[error("document is not valid: {rule}")]
    BadDocument { rule: String },
    /// The agent would refuse the document: every problem, as the agent reports it.
    #[error("the agent would refuse this document ({} problem(s)):\n  {}", .0.len(),
            .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n  "))]
    Refused(Vec<truenas_agent::desired::FieldError>),
    #[error(
        "document revision {revision} is not higher than the published revision {published}: \
         agents refuse a lower revision (rollback) and the same revision with other content \
         (\"same revision, different content\") — publish the change as revision {next} or \
         higher (--force publishes it anyway, only to test that refusal)",
        next = .published.saturating_add(1)
    )]
    NotNewer { revision: u64, published: u64 },
    #[error(
        "operator name `{name}` is invalid: use letters, digits, `-`, `_`, `.` and `@` (not first)"
    )]
    BadOperatorName { name: String },
    #[error("operator `{name}` does not exist")]
    UnknownOperator { name: String },
    #[error("operator `{name}` already exists")]
    OperatorExists { name: String },
    #[error("this token is already in use")]
    OperatorTokenInUse,
    #[error("{purpose} cannot be sealed")]
    Seal {
        purpose: String,
        #[source]
        source: SealError,
    },
    #[error("{purpose} does not open with the at-rest key")]
    Open {
        purpose: String,
        #[source]
        source: SealError,
    },
    #[error("{what} in the database is not valid")]
    Corrupt {
        what: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("{what} in the database is out of range")]
    OutOfRange { what: &'static str },
    #[error("cannot import device `{device}` from the data directory")]
    Import {
        device: String,
        #[source]
        source: super::store::StoreError,
    },
    #[error(
        "the database holds values sealed with at-rest key {database}, not with {given}: give \
         this central the key file that sealed them (bind the data directory to it with \
         `truenas-central keygen --out KEYS --dir DIR`, the key as KEYS/secrets.key); one \
         database has one at-rest key"
    )]
    AtRestKeyMismatch { database: String, given: String },
    #[error(
        "device `{device}` is registered with another token in the database than in the data \
         directory; resolve by hand (drop one of them) before importing"
    )]
    ImportConflict { device: String },
}

impl DbError {
    /// The party that has to act.
    pub fn fault(&self) -> Fault {
        match self {
            DbError::Connect { .. } | DbError::Query { .. } => Fault::Transient,
            DbError::SchemaTooNew { .. }
            | DbError::BadUrl { .. }
            | DbError::BadName { .. }
            | DbError::UnknownDevice { .. }
            | DbError::AlreadyRegistered { .. }
            | DbError::TokenInUse { .. }
            | DbError::BadDocument { .. }
            | DbError::Refused(_)
            | DbError::NotNewer { .. }
            | DbError::BadOperatorName { .. }
            | DbError::UnknownOperator { .. }
            | DbError::OperatorExists { .. }
            | DbError::OperatorTokenInUse
            | DbError::AtRestKeyMismatch { .. }
            | DbError::ImportConflict { .. } => Fault::Operator,
            DbError::Dir { .. }
            | DbError::Seal { .. }
            | DbError::Open { .. }
            | DbError::Corrupt { .. }
            | DbError::OutOfRange { .. } => Fault::Central,
            DbError::Import { source, .. } => source.fault(),
        }
    }
}

/// A device's published document, opened.
#[derive(Clone)]
pub struct Document {
    pub revision: u64,
    /// Strong ETag (quoted), changes with every publish of different bytes.
    pub etag: String,
    pub published_at: DateTime<Utc>,
    /// The document (it holds secrets: never log it).
    pub bytes: Vec<u8>,
}

impl fmt::Debug for Document {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Document")
            .field("revision", &self.revision)
            .field("etag", &self.etag)
            .field("published_at", &self.published_at)
            .field("bytes", &format_args!("[{} bytes]", self.bytes.len()))
            .finish()
    }
}

/// What a bearer token belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenOwner {
    pub device: String,
    pub disabled: bool,
}

/// One registered device, as listed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceRow {
    pub name: String,
    pub org_uuid: Option<String>,
    pub location_uuid: Option<String>,
    pub location_name: Option<String>,
    pub disabled: bool,
    pub created_at: DateTime<Utc>,
    /// Revision of the published document (readable without the key).
    pub published_revision: Option<u64>,
}

/// Where a device belongs (from provisioning): NinjaOne's org and location.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Placement {
    pub org_uuid: Option<String>,
    pub location_uuid: Option<String>,
    pub location_name: Option<String>,
}

/// A device's B2 credentials record, opened.
#[derive(Clone)]
pub struct Credentials {
    /// The caller's record (e.g. provisioning's `DeviceSecrets` JSON): secret.
    pub bytes: Vec<u8>,
    /// The B2 application key id (not secret).
    pub b2_key_id: Option<String>,
    /// Non-secret fingerprints of the secrets, as the caller computed them.
    pub fingerprints: serde_json::Value,
    pub updated_at: DateTime<Utc>,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("bytes", &format_args!("[{} bytes]", self.bytes.len()))
            .field("b2_key_id", &self.b2_key_id)
            .field("fingerprints", &self.fingerprints)
            .field("updated_at", &self.updated_at)
            .finish()
    }
}

/// Handle on the database (cheap to clone; all clones share the pools).
#[derive(Clone)]
pub struct Db {
    inner: Arc<Inner>,
}

struct Inner {
    backend: Backend,
    /// Reads (and, on PostgreSQL, writes).
    pool: AnyPool,
    /// Writes: on SQLite one connection, so this process never fights itself for the lock.
    writer: AnyPool,
    sealer: Arc<dyn Sealer>,
    events: tokio::sync::broadcast::Sender<DocumentEvent>,
    /// Stops the PostgreSQL listener task when the last handle goes.
    _stop: DropGuard,
}

impl fmt::Debug for Db {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Db")
            .field("backend", &self.inner.backend)
            .finish_non_exhaustive()
    }
}

/// Milliseconds since the epoch.
fn ms(at: DateTime<Utc>) -> i64 {
    at.timestamp_millis()
}

/// Back from milliseconds (out-of-range values clamp to the epoch: they cannot be written).
fn from_ms(value: i64) -> DateTime<Utc> {
    Utc.timestamp_millis_opt(value)
        .single()
        .unwrap_or(DateTime::UNIX_EPOCH)
}

fn to_i64(value: u64, what: &'static str) -> Result<i64, DbError> {
    i64::try_from(value).map_err(|_| DbError::OutOfRange { what })
}

fn to_u64(value: i64, what: &'static str) -> Result<u64, DbError> {
    u64::try_from(value).map_err(|_| DbError::OutOfRange { what })
}

/// Percent-encodes a filesystem path for a `sqlite://` URL (sqlx decodes it back).
fn sqlite_url(path: &Path) -> String {
    let mut url = String::from("sqlite://");
    for byte in path.as_os_str().as_encoded_bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'/' | b'-' | b'_' | b'.' | b'~' => {
                url.push(char::from(*byte));
            }
            _ => {
                let _ = write!(url, "%{byte:02X}");
            }
        }
    }
    url.push_str("?mode=rwc");
    url
}

/// The document's ETag: its revision and the first 128 bits of its SHA-256.
fn etag_of(revision: u64, document: &[u8]) -> String {
    format!(
        "\"r{revision}-{}\"",
        &hex::encode(Sha256::digest(document))[..32]
    )
}

fn document_purpose(name: &str) -> String {
    format!("devices/{name}/config.json")
}

fn credentials_purpose(name: &str) -> String {
    format!("devices/{name}/secrets.json")
}

/// [`is_valid_device_name`] as an error.
fn check_name(name: &str) -> Result<(), DbError> {
    if is_valid_device_name(name) {
        Ok(())
    } else {
        Err(DbError::BadName {
            name: name.to_owned(),
        })
    }
}

fn check_schema(document: &[u8]) -> Result<(), DbError> {
    check_document_schema(document).map_err(|rule| DbError::BadDocument { rule })
}

fn is_unique_violation(error: &sqlx::Error) -> bool {
    matches!(error, sqlx::Error::Database(e) if e.is_unique_violation())
}

impl Db {
    /// Opens (creating a SQLite file if needed) and migrates the database; on PostgreSQL
    /// also starts listening for document publishes (returns once listening).
    pub async fn open(database: &Database, sealer: Arc<dyn Sealer>) -> Result<Self, DbError> {
        sqlx::any::install_default_drivers();
        let backend = database.backend();
        let connect = |source| DbError::Connect { backend, source };
        let stop = CancellationToken::new();
        let (events, _) = tokio::sync::broadcast::channel(1024);
        let (pool, writer) = match database {
            Database::Sqlite(path) => {
                if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
                    truenas_agent::fs::create_dir_all(parent, 0o700).map_err(|source| {
                        DbError::Dir {
                            path: path.clone(),
                            source,
                        }
                    })?;
                }
                create_private_file(path).map_err(|e| connect(sqlx::Error::Io(e)))?;
                let options = AnyConnectOptions::from_str(&sqlite_url(path)).map_err(connect)?;
                let writer = sqlite_pool(1)
                    .connect_with(options.clone())
                    .await
                    .map_err(connect)?;
                let pool = sqlite_pool(4)
                    .connect_with(options)
                    .await
                    .map_err(connect)?;
                (pool, writer)
            }
            Database::Postgres(url) => {
                let options = AnyConnectOptions::from_str(url.expose_secret()).map_err(connect)?;
                // One direct attempt first: the pool would retry a refused connection until
                // its acquire timeout, so a wrong host or port would take that long to say so.
                let first = tokio::time::timeout(
                    ACQUIRE_TIMEOUT,
                    <sqlx::AnyConnection as sqlx::Connection>::connect_with(&options),
                )
                .await
                .map_err(|_| connect(sqlx::Error::PoolTimedOut))?
                .map_err(connect)?;
                sqlx::Connection::close(first).await.map_err(connect)?;
                let pool = AnyPoolOptions::new()
                    .max_connections(10)
                    .acquire_timeout(ACQUIRE_TIMEOUT)
                    .connect_with(options)
                    .await
                    .map_err(connect)?;
                (pool.clone(), pool)
            }
        };
        schema::migrate(backend, &writer).await?;
        match database {
            Database::Postgres(url) => {
                watch::listen(url.clone(), events.clone(), stop.clone())
                    .await
                    .map_err(connect)?;
            }
            Database::Sqlite(_) => {
                watch::poll_sqlite(
                    pool.clone(),
                    events.clone(),
                    stop.clone(),
                    SQLITE_WATCH_INTERVAL,
                )
                .await;
            }
        }
        Ok(Self {
            inner: Arc::new(Inner {
                backend,
                pool,
                writer,
                sealer,
                events,
                _stop: stop.drop_guard(),
            }),
        })
    }

    /// Which engine this is.
    pub fn backend(&self) -> Backend {
        self.inner.backend
    }

    /// Closes the pools (waits for checked-out connections to come back).
    pub async fn close(&self) {
        self.inner.pool.close().await;
        self.inner.writer.close().await;
    }

    fn query_error(&self) -> impl Fn(sqlx::Error) -> DbError + '_ {
        move |source| DbError::Query {
            backend: self.inner.backend,
            source,
        }
    }

    /// Starts a write transaction (SQLite: `BEGIN IMMEDIATE`, so a transaction that reads
    /// then writes never fails to upgrade its lock).
    async fn begin_write(&self) -> Result<sqlx::Transaction<'static, sqlx::Any>, DbError> {
        let tx = match self.inner.backend {
            Backend::Sqlite => self.inner.writer.begin_with("BEGIN IMMEDIATE").await,
            Backend::Postgres => self.inner.writer.begin().await,
        };
        tx.map_err(self.query_error())
    }

    async fn device_id(
        &self,
        executor: impl sqlx::Executor<'_, Database = sqlx::Any>,
        name: &str,
    ) -> Result<i64, DbError> {
        check_name(name)?;
        let row = sqlx::query("SELECT id FROM devices WHERE name = $1")
            .bind(name)
            .fetch_optional(executor)
            .await
            .map_err(self.query_error())?;
        match row {
            Some(row) => row.try_get(0).map_err(self.query_error()),
            None => Err(DbError::UnknownDevice {
                name: name.to_owned(),
            }),
        }
    }

    // ---- devices and tokens (mirrors `Store`) ----

    /// Registered device names, sorted.
    pub async fn devices(&self) -> Result<Vec<String>, DbError> {
        let rows = sqlx::query("SELECT name FROM devices ORDER BY name")
            .fetch_all(&self.inner.pool)
            .await
            .map_err(self.query_error())?;
        rows.iter()
            .map(|r| r.try_get(0).map_err(self.query_error()))
            .collect()
    }

    /// Every registered device with its placement and published revision, by name.
    pub async fn device_rows(&self) -> Result<Vec<DeviceRow>, DbError> {
        let rows = sqlx::query(
            "SELECT d.name, d.org_uuid, d.location_uuid, d.location_name, d.disabled, \
             d.created_at, doc.revision \
             FROM devices d LEFT JOIN documents doc ON doc.device_id = d.id ORDER BY d.name",
        )
        .fetch_all(&self.inner.pool)
        .await
        .map_err(self.query_error())?;
        rows.iter()
            .map(|r| {
                let q = self.query_error();
                Ok(DeviceRow {
                    name: r.try_get(0).map_err(&q)?,
                    org_uuid: r.try_get(1).map_err(&q)?,
                    location_uuid: r.try_get(2).map_err(&q)?,
                    location_name: r.try_get(3).map_err(&q)?,
                    disabled: r.try_get::<i64, _>(4).map_err(&q)? != 0,
                    created_at: from_ms(r.try_get(5).map_err(&q)?),
                    published_revision: r
                        .try_get::<Option<i64>, _>(6)
                        .map_err(&q)?
                        .map(|v| to_u64(v, "document revision"))
                        .transpose()?,
                })
            })
            .collect()
    }

    /// True when a device of this name is registered.
    pub async fn is_registered(&self, name: &str) -> Result<bool, DbError> {
        match self.device_id(&self.inner.pool, name).await {
            Ok(_) => Ok(true),
            Err(DbError::UnknownDevice { .. }) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Registers a device under `name` with the hash of its token ([`token_hash`]).
    pub async fn register(&self, name: &str, hash: &str) -> Result<(), DbError> {
        check_name(name)?;
        let mut tx = self.begin_write().await?;
        if let Some(owner) = self.token_owner_in(&mut *tx, hash).await? {
            return Err(DbError::TokenInUse { name: owner.device });
        }
        let now = ms(Utc::now());
        let inserted = sqlx::query(
            "INSERT INTO devices (name, disabled, created_at) VALUES ($1, 0, $2) \
             ON CONFLICT (name) DO NOTHING RETURNING id",
        )
        .bind(name)
        .bind(now)
        .fetch_optional(&mut *tx)
        .await
        .map_err(self.query_error())?;
        let Some(row) = inserted else {
            return Err(DbError::AlreadyRegistered {
                name: name.to_owned(),
            });
        };
        let id: i64 = row.try_get(0).map_err(self.query_error())?;
        let result = sqlx::query(
            "INSERT INTO device_tokens (hash, device_id, created_at) VALUES ($1, $2, $3)",
        )
        .bind(hash)
        .bind(id)
        .bind(now)
        .execute(&mut *tx)
        .await;
        match result {
            Ok(_) => {}
            // Registered concurrently by another instance between the check and here.
            Err(e) if is_unique_violation(&e) => {
                return Err(DbError::TokenInUse {
                    name: "another device".to_owned(),
                });
            }
            Err(e) => return Err(self.query_error()(e)),
        }
        tx.commit().await.map_err(self.query_error())
    }

    async fn token_owner_in(
        &self,
        executor: impl sqlx::Executor<'_, Database = sqlx::Any>,
        hash: &str,
    ) -> Result<Option<TokenOwner>, DbError> {
        let row = sqlx::query(
            "SELECT d.name, d.disabled FROM device_tokens t JOIN devices d ON d.id = t.device_id \
             WHERE t.hash = $1",
        )
        .bind(hash)
        .fetch_optional(executor)
        .await
        .map_err(self.query_error())?;
        row.map(|r| {
            Ok(TokenOwner {
                device: r.try_get(0).map_err(self.query_error())?,
                disabled: r.try_get::<i64, _>(1).map_err(self.query_error())? != 0,
            })
        })
        .transpose()
    }

    /// The device a token hash belongs to, and whether it is disabled (one lookup: the
    /// file store's `token_index` + `is_disabled`).
    pub async fn token_owner(&self, hash: &str) -> Result<Option<TokenOwner>, DbError> {
        self.token_owner_in(&self.inner.pool, hash).await
    }

    /// `(token hash, device name)` for every registered device (the file store's index).
    pub async fn token_index(&self) -> Result<Vec<(String, String)>, DbError> {
        let rows = sqlx::query(
            "SELECT t.hash, d.name FROM device_tokens t JOIN devices d ON d.id = t.device_id \
             ORDER BY d.name, t.hash",
        )
        .fetch_all(&self.inner.pool)
        .await
        .map_err(self.query_error())?;
        rows.iter()
            .map(|r| {
                Ok((
                    r.try_get(0).map_err(self.query_error())?,
                    r.try_get(1).map_err(self.query_error())?,
                ))
            })
            .collect()
    }

    /// True when the device is disabled (its token gets 403).
    pub async fn is_disabled(&self, name: &str) -> Result<bool, DbError> {
        check_name(name)?;
        let row = sqlx::query("SELECT disabled FROM devices WHERE name = $1")
            .bind(name)
            .fetch_optional(&self.inner.pool)
            .await
            .map_err(self.query_error())?;
        match row {
            Some(r) => Ok(r.try_get::<i64, _>(0).map_err(self.query_error())? != 0),
            None => Ok(false),
        }
    }

    /// Disables or re-enables a device.
    pub async fn set_disabled(&self, name: &str, disabled: bool) -> Result<(), DbError> {
        check_name(name)?;
        let done = sqlx::query("UPDATE devices SET disabled = $1 WHERE name = $2")
            .bind(i64::from(disabled))
            .bind(name)
            .execute(&self.inner.writer)
            .await
            .map_err(self.query_error())?;
        if done.rows_affected() == 0 {
            return Err(DbError::UnknownDevice {
                name: name.to_owned(),
            });
        }
        Ok(())
    }

    /// Sets where a device belongs (org / location), as provisioning learns it.
    pub async fn set_placement(&self, name: &str, placement: &Placement) -> Result<(), DbError> {
        check_name(name)?;
        let done = sqlx::query(
            "UPDATE devices SET org_uuid = $1, location_uuid = $2, location_name = $3 \
             WHERE name = $4",
        )
        .bind(placement.org_uuid.clone())
        .bind(placement.location_uuid.clone())
        .bind(placement.location_name.clone())
        .bind(name)
        .execute(&self.inner.writer)
        .await
        .map_err(self.query_error())?;
        if done.rows_affected() == 0 {
            return Err(DbError::UnknownDevice {
                name: name.to_owned(),
            });
        }
        Ok(())
    }

    // ---- documents ----

    /// Publishes after the agent's own validation (`desired::parse`): a document every
    /// agent would refuse is never published. Otherwise as [`Db::publish`].
    pub async fn publish_validated(
        &self,
        name: &str,
        document: &[u8],
        force: bool,
    ) -> Result<u64, DbError> {
        check_name(name)?;
        if document.len() > MAX_DOCUMENT {
            return Err(DbError::BadDocument {
                rule: format!("larger than {MAX_DOCUMENT} bytes"),
            });
        }
        if let Err(err) = truenas_agent::desired::parse(document) {
            return Err(DbError::Refused(err.field_errors()));
        }
        self.publish(name, document, force).await
    }

    /// Publishes a document, checking only size, `schema` and `revision`: the revision must
    /// be higher than the published one unless `force`. Sealed with the [`Sealer`]; the
    /// publish and its wake-up ([`Db::watch_documents`]) commit together.
    pub async fn publish(&self, name: &str, document: &[u8], force: bool) -> Result<u64, DbError> {
        check_name(name)?;
        if document.len() > MAX_DOCUMENT {
            return Err(DbError::BadDocument {
                rule: format!("larger than {MAX_DOCUMENT} bytes"),
            });
        }
        let revision = read_revision(document).map_err(|e| DbError::BadDocument {
            rule: e.to_string(),
        })?;
        check_schema(document)?;
        self.store_document(name, revision, document, force, Utc::now())
            .await?;
        Ok(revision)
    }

    /// Seals and stores; `force` allows a revision not above the published one.
    async fn store_document(
        &self,
        name: &str,
        revision: u64,
        document: &[u8],
        force: bool,
        at: DateTime<Utc>,
    ) -> Result<(), DbError> {
        let purpose = document_purpose(name);
        let sealed = self
            .inner
            .sealer
            .seal(&purpose, document)
            .map_err(|source| DbError::Seal {
                purpose: purpose.clone(),
                source,
            })?;
        let rev = to_i64(revision, "document revision")?;
        let mut tx = self.begin_write().await?;
        let id = self.device_id(&mut *tx, name).await?;
        // One statement decides "newer or forced" and writes, so two publishers racing on
        // two instances cannot both win with a stale check.
        let written = sqlx::query(
            "INSERT INTO documents (device_id, revision, etag, sealed, seal_key_id, published_at) \
             VALUES ($1, $2, $3, $4, $5, $6) \
             ON CONFLICT (device_id) DO UPDATE SET revision = excluded.revision, \
             etag = excluded.etag, sealed = excluded.sealed, seal_key_id = excluded.seal_key_id, \
             published_at = excluded.published_at \
             WHERE documents.revision < excluded.revision OR $7 = 1 \
             RETURNING revision",
        )
        .bind(id)
        .bind(rev)
        .bind(etag_of(revision, document))
        .bind(sealed)
        .bind(self.inner.sealer.key_id())
        .bind(ms(at))
        .bind(i64::from(force))
        .fetch_optional(&mut *tx)
        .await
        .map_err(self.query_error())?;
        if written.is_none() {
            let published: i64 = sqlx::query("SELECT revision FROM documents WHERE device_id = $1")
                .bind(id)
                .fetch_one(&mut *tx)
                .await
                .map_err(self.query_error())?
                .try_get(0)
                .map_err(self.query_error())?;
            return Err(DbError::NotNewer {
                revision,
                published: to_u64(published, "document revision")?,
            });
        }
        let event = DocumentEvent::Published {
            device: name.to_owned(),
            revision,
        };
        if self.inner.backend == Backend::Postgres {
            watch::notify_in(&mut tx, &event)
                .await
                .map_err(self.query_error())?;
        }
        tx.commit().await.map_err(self.query_error())?;
        // This process's holders hear it at once (on PostgreSQL the NOTIFY comes back a
        // moment later as a second, harmless event). No receiver is fine: nobody is
        // holding a long-poll.
        let _ = self.inner.events.send(event);
        Ok(())
    }

    /// The device's document (opened), if one is published.
    pub async fn document(&self, name: &str) -> Result<Option<Document>, DbError> {
        check_name(name)?;
        let row = sqlx::query(
            "SELECT doc.revision, doc.etag, doc.published_at, doc.sealed FROM documents doc \
             JOIN devices d ON d.id = doc.device_id WHERE d.name = $1",
        )
        .bind(name)
        .fetch_optional(&self.inner.pool)
        .await
        .map_err(self.query_error())?;
        let Some(row) = row else {
            return Ok(None);
        };
        let q = self.query_error();
        let sealed: Vec<u8> = row.try_get(3).map_err(&q)?;
        let purpose = document_purpose(name);
        let bytes = self
            .inner
            .sealer
            .open(&purpose, &sealed)
            .map_err(|source| DbError::Open { purpose, source })?;
        Ok(Some(Document {
            revision: to_u64(row.try_get(0).map_err(&q)?, "document revision")?,
            etag: row.try_get(1).map_err(&q)?,
            published_at: from_ms(row.try_get(2).map_err(&q)?),
            bytes,
        }))
    }

    /// `(revision, etag)` of the published document, without opening it (the cheap check a
    /// 304 needs).
    pub async fn document_tag(&self, name: &str) -> Result<Option<(u64, String)>, DbError> {
        check_name(name)?;
        let row = sqlx::query(
            "SELECT doc.revision, doc.etag FROM documents doc JOIN devices d \
             ON d.id = doc.device_id WHERE d.name = $1",
        )
        .bind(name)
        .fetch_optional(&self.inner.pool)
        .await
        .map_err(self.query_error())?;
        row.map(|r| {
            Ok((
                to_u64(
                    r.try_get(0).map_err(self.query_error())?,
                    "document revision",
                )?,
                r.try_get(1).map_err(self.query_error())?,
            ))
        })
        .transpose()
    }

    /// Publish wake-ups: subscribe *before* reading the state you hold on, so no publish
    /// falls between the read and the wait.
    pub fn watch_documents(&self) -> DocumentWatch {
        DocumentWatch::new(self.inner.events.subscribe())
    }

    /// How many [`DocumentWatch`]es of this handle are alive (e.g. long-polls held now).
    pub fn document_watchers(&self) -> usize {
        self.inner.events.receiver_count()
    }

    // ---- credentials ----

    /// Stores (replaces) a device's sealed credentials record.
    pub async fn set_credentials(
        &self,
        name: &str,
        record: &[u8],
        b2_key_id: Option<&str>,
        fingerprints: &serde_json::Value,
    ) -> Result<(), DbError> {
        check_name(name)?;
        let purpose = credentials_purpose(name);
        let sealed = self
            .inner
            .sealer
            .seal(&purpose, record)
            .map_err(|source| DbError::Seal {
                purpose: purpose.clone(),
                source,
            })?;
        let mut tx = self.begin_write().await?;
        let id = self.device_id(&mut *tx, name).await?;
        sqlx::query(
            "INSERT INTO credentials (device_id, sealed, seal_key_id, b2_key_id, fingerprints, \
             updated_at) VALUES ($1, $2, $3, $4, $5, $6) \
             ON CONFLICT (device_id) DO UPDATE SET sealed = excluded.sealed, \
             seal_key_id = excluded.seal_key_id, b2_key_id = excluded.b2_key_id, \
             fingerprints = excluded.fingerprints, updated_at = excluded.updated_at",
        )
        .bind(id)
        .bind(sealed)
        .bind(self.inner.sealer.key_id())
        .bind(b2_key_id.map(str::to_owned))
        .bind(fingerprints.to_string())
        .bind(ms(Utc::now()))
        .execute(&mut *tx)
        .await
        .map_err(self.query_error())?;
        tx.commit().await.map_err(self.query_error())
    }

    /// A device's credentials record, opened.
    pub async fn credentials(&self, name: &str) -> Result<Option<Credentials>, DbError> {
        check_name(name)?;
        let row = sqlx::query(
            "SELECT c.sealed, c.b2_key_id, c.fingerprints, c.updated_at FROM credentials c \
             JOIN devices d ON d.id = c.device_id WHERE d.name = $1",
        )
        .bind(name)
        .fetch_optional(&self.inner.pool)
        .await
        .map_err(self.query_error())?;
        let Some(row) = row else {
            return Ok(None);
        };
        let q = self.query_error();
        let sealed: Vec<u8> = row.try_get(0).map_err(&q)?;
        let purpose = credentials_purpose(name);
        let bytes = self
            .inner
            .sealer
            .open(&purpose, &sealed)
            .map_err(|source| DbError::Open { purpose, source })?;
        let text: String = row.try_get(2).map_err(&q)?;
        let fingerprints = serde_json::from_str(&text).map_err(|source| DbError::Corrupt {
            what: format!("credential fingerprints of `{name}`"),
            source,
        })?;
        Ok(Some(Credentials {
            bytes,
            b2_key_id: row.try_get(1).map_err(&q)?,
            fingerprints,
            updated_at: from_ms(row.try_get(3).map_err(&q)?),
        }))
    }

    /// A free-form value of the `meta` table (e.g. when the data directory was imported).
    pub async fn meta(&self, key: &str) -> Result<Option<String>, DbError> {
        let row = sqlx::query("SELECT value FROM meta WHERE key = $1")
            .bind(key)
            .fetch_optional(&self.inner.pool)
            .await
            .map_err(self.query_error())?;
        row.map(|r| r.try_get(0).map_err(self.query_error()))
            .transpose()
    }

    async fn set_meta_in(
        &self,
        executor: impl sqlx::Executor<'_, Database = sqlx::Any>,
        key: &str,
        value: &str,
    ) -> Result<(), DbError> {
        sqlx::query(
            "INSERT INTO meta (key, value) VALUES ($1, $2) \
             ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        )
        .bind(key)
        .bind(value)
        .execute(executor)
        .await
        .map_err(self.query_error())?;
        Ok(())
    }

    /// The id of the at-rest key the database's sealed values belong to: the one recorded
    /// at first open ([`Db::bind_at_rest_key`]), or (a database from before that record)
    /// the key id of any sealed row; `None` when nothing names one yet.
    pub async fn at_rest_key_id(&self) -> Result<Option<String>, DbError> {
        if let Some(id) = self.meta(AT_REST_KEY_META).await? {
            return Ok(Some(id));
        }
        let row = sqlx::query(
            "SELECT seal_key_id FROM documents UNION SELECT seal_key_id FROM credentials LIMIT 1",
        )
        .fetch_optional(&self.inner.pool)
        .await
        .map_err(self.query_error())?;
        row.map(|r| r.try_get(0).map_err(self.query_error()))
            .transpose()
    }

    /// Records `key_id` as the database's at-rest key, or checks it is the recorded one
    /// (two instances binding different keys at once: one wins, the other is refused).
    pub async fn bind_at_rest_key(&self, key_id: &str) -> Result<(), DbError> {
        if let Some(found) = self.at_rest_key_id().await? {
            if found != key_id {
                return Err(DbError::AtRestKeyMismatch {
                    database: found,
                    given: key_id.to_owned(),
                });
            }
        }
        let mut tx = self.begin_write().await?;
        sqlx::query("INSERT INTO meta (key, value) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING")
            .bind(AT_REST_KEY_META)
            .bind(key_id)
            .execute(&mut *tx)
            .await
            .map_err(self.query_error())?;
        let found: String = sqlx::query("SELECT value FROM meta WHERE key = $1")
            .bind(AT_REST_KEY_META)
            .fetch_one(&mut *tx)
            .await
            .map_err(self.query_error())?
            .try_get(0)
            .map_err(self.query_error())?;
        tx.commit().await.map_err(self.query_error())?;
        if found == key_id {
            Ok(())
        } else {
            Err(DbError::AtRestKeyMismatch {
                database: found,
                given: key_id.to_owned(),
            })
        }
    }

    /// The schema version the database is at.
    pub async fn schema_version(&self) -> Result<i64, DbError> {
        schema::current_version(&self.inner.pool)
            .await
            .map_err(self.query_error())
    }

    /// For tests and diagnostics: runs a read-only query and renders every row as one
    /// line, its columns as text joined by `|` (bytes as hex, so sealed values compare
    /// without being opened).
    pub async fn probe_rows(&self, sql: &'static str) -> Result<Vec<String>, DbError> {
        let rows = self
            .inner
            .pool
            .fetch_all(sql)
            .await
            .map_err(self.query_error())?;
        Ok(rows
            .iter()
            .map(|row| {
                (0..row.columns().len())
                    .map(|i| column_text(row, i))
                    .collect::<Vec<_>>()
                    .join("|")
            })
            .collect())
    }

    /// For tests and diagnostics: runs a read-only query returning one text or integer
    /// column (e.g. `PRAGMA journal_mode`).
    pub async fn probe(&self, sql: &'static str) -> Result<String, DbError> {
        let row = self
            .inner
            .pool
            .fetch_one(sql)
            .await
            .map_err(self.query_error())?;
        if let Ok(text) = row.try_get::<String, _>(0) {
            return Ok(text);
        }
        row.try_get::<i64, _>(0)
            .map(|v| v.to_string())
            .map_err(self.query_error())
    }
}

/// One column of a row as text (NULL, text, integer, or bytes as hex).
fn column_text(row: &sqlx::any::AnyRow, i: usize) -> String {
    if let Ok(v) = row.try_get::<Option<String>, _>(i) {
        return v.unwrap_or_else(|| "NULL".to_owned());
    }
    if let Ok(v) = row.try_get::<Option<i64>, _>(i) {
        return v.map_or_else(|| "NULL".to_owned(), |v| v.to_string());
    }
    if let Ok(v) = row.try_get::<Option<Vec<u8>>, _>(i) {
        return v.map_or_else(|| "NULL".to_owned(), hex::encode);
    }
    "?".to_owned()
}

fn sqlite_pool(connections: u32) -> AnyPoolOptions {
    AnyPoolOptions::new()
        .max_connections(connections)
        .acquire_timeout(ACQUIRE_TIMEOUT)
        // A local file's connections do not go stale: no reaper task closing and
        // reopening them behind the server's back.
        .idle_timeout(None)
        .max_lifetime(None)
        .after_connect(|conn, _| {
            Box::pin(async move {
                // WAL: readers never block the writer; FULL: a commit is on disk before it
                // returns (a report is acknowledged only once durable); foreign keys are
                // per connection in SQLite.
                conn.execute("PRAGMA journal_mode = WAL").await?;
                conn.execute("PRAGMA synchronous = FULL").await?;
                conn.execute("PRAGMA foreign_keys = ON").await?;
                conn.execute(format!("PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}").as_str())
                    .await?;
                Ok(())
            })
        })
}

/// Creates the SQLite file with mode 0600 if it does not exist (SQLite gives its `-wal`
/// and `-shm` files the same mode), so it is never readable by others, not even briefly.
fn create_private_file(path: &Path) -> Result<(), std::io::Error> {
    use std::os::unix::fs::OpenOptionsExt as _;
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
    {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(e),
    }
}
