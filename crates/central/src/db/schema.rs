//! The schema, as versioned migrations run at open on both engines.
//!
//! Owns: [`MIGRATIONS`] (one SQL text per version, written once for both engines: the only
//! engine differences, auto-increment ids and byte columns, are `{id}` and `{blob}`
//! placeholders; flags are BIGINT 0/1, which both engines and sqlx's `Any` driver read
//! alike) and [`migrate`], which applies the missing ones in one transaction and
//! records each in `central_schema`.
//! Does not: downgrade. A database newer than this binary is refused, never touched.
//! Invariants: a version, once released, never changes (add a new one instead); running
//! [`migrate`] again is a no-op; two instances starting at once on one PostgreSQL apply each
//! migration once (an advisory lock serialises them); on SQLite `BEGIN IMMEDIATE` does.
//! Limitations: forward only.

use chrono::Utc;
use sqlx::{AnyPool, Row as _};

use super::{Backend, DbError};

/// One schema change.
pub(super) struct Migration {
    pub version: i64,
    pub name: &'static str,
    pub sql: &'static str,
}

/// The schema version this binary writes.
pub const SCHEMA_VERSION: i64 = 2;

/// Every migration, in order (versions 1, 2, …).
pub(super) const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "initial schema",
        sql: r"
CREATE TABLE meta (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE devices (
    id {id},
    name TEXT NOT NULL UNIQUE,
    org_uuid TEXT,
    location_uuid TEXT,
    location_name TEXT,
    disabled BIGINT NOT NULL DEFAULT 0,
    created_at BIGINT NOT NULL
);
CREATE TABLE device_tokens (
    hash TEXT PRIMARY KEY,
    device_id BIGINT NOT NULL REFERENCES devices (id) ON DELETE CASCADE,
    created_at BIGINT NOT NULL
);
CREATE INDEX device_tokens_device ON device_tokens (device_id);
CREATE TABLE documents (
    device_id BIGINT PRIMARY KEY REFERENCES devices (id) ON DELETE CASCADE,
    revision BIGINT NOT NULL,
    etag TEXT NOT NULL,
    sealed {blob} NOT NULL,
    seal_key_id TEXT NOT NULL,
    published_at BIGINT NOT NULL
);
CREATE TABLE credentials (
    device_id BIGINT PRIMARY KEY REFERENCES devices (id) ON DELETE CASCADE,
    sealed {blob} NOT NULL,
    seal_key_id TEXT NOT NULL,
    b2_key_id TEXT,
    fingerprints TEXT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE TABLE reports (
    id {id},
    device_id BIGINT NOT NULL REFERENCES devices (id) ON DELETE CASCADE,
    report_id TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    received_at BIGINT NOT NULL,
    dropped BIGINT NOT NULL,
    body TEXT NOT NULL,
    UNIQUE (device_id, report_id)
);
CREATE INDEX reports_device_received ON reports (device_id, received_at);
CREATE INDEX reports_received ON reports (received_at);
CREATE TABLE device_state (
    device_id BIGINT PRIMARY KEY REFERENCES devices (id) ON DELETE CASCADE,
    latest_report BIGINT REFERENCES reports (id) ON DELETE SET NULL,
    latest_created_at BIGINT,
    last_report_at BIGINT,
    report_count BIGINT NOT NULL DEFAULT 0,
    dropped_total BIGINT NOT NULL DEFAULT 0,
    last_drop_at BIGINT,
    agent_version TEXT,
    guid TEXT,
    hostname TEXT,
    config_revision BIGINT,
    config_state TEXT,
    config_errors BIGINT NOT NULL DEFAULT 0,
    drift BIGINT NOT NULL DEFAULT 0,
    checklist_failing BIGINT NOT NULL DEFAULT 0,
    checklist_unknown BIGINT NOT NULL DEFAULT 0,
    cloud_sync_failing BIGINT NOT NULL DEFAULT 0
);
CREATE TABLE pool_backups (
    device_id BIGINT NOT NULL REFERENCES devices (id) ON DELETE CASCADE,
    pool TEXT NOT NULL,
    state TEXT NOT NULL,
    overdue BIGINT NOT NULL,
    error_class TEXT,
    last_success_at BIGINT,
    reported_at BIGINT NOT NULL,
    PRIMARY KEY (device_id, pool)
);
CREATE TABLE operators (
    id {id},
    name TEXT NOT NULL UNIQUE,
    disabled BIGINT NOT NULL DEFAULT 0,
    created_at BIGINT NOT NULL
);
CREATE TABLE operator_tokens (
    hash TEXT PRIMARY KEY,
    operator_id BIGINT NOT NULL REFERENCES operators (id) ON DELETE CASCADE,
    created_at BIGINT NOT NULL,
    last_used_at BIGINT
);
CREATE TABLE sessions (
    hash TEXT PRIMARY KEY,
    operator_id BIGINT NOT NULL REFERENCES operators (id) ON DELETE CASCADE,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX sessions_expires ON sessions (expires_at);
CREATE TABLE webhook_outbox (
    id {id},
    event TEXT NOT NULL,
    device_id BIGINT REFERENCES devices (id) ON DELETE CASCADE,
    payload TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    attempts BIGINT NOT NULL DEFAULT 0,
    next_attempt_at BIGINT NOT NULL,
    last_error TEXT,
    delivered_at BIGINT,
    failed_at BIGINT
);
CREATE INDEX webhook_outbox_due ON webhook_outbox (next_attempt_at);
",
    },
    Migration {
        version: 2,
        name: "announced alert state per device",
        sql: r"
CREATE TABLE device_alerts (
    device_id BIGINT PRIMARY KEY REFERENCES devices (id) ON DELETE CASCADE,
    announced TEXT NOT NULL,
    updated_at BIGINT NOT NULL
);
",
    },
];

/// Arbitrary constant naming central's migration lock among PostgreSQL advisory locks.
const PG_MIGRATION_LOCK: i64 = 0x7472_6e61_735f_6462;

/// The SQL of a migration for one engine.
pub(super) fn render(sql: &str, backend: Backend) -> String {
    let (id, blob) = match backend {
        Backend::Sqlite => ("INTEGER PRIMARY KEY AUTOINCREMENT", "BLOB"),
        Backend::Postgres => (
            "BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY",
            "BYTEA",
        ),
    };
    sql.replace("{id}", id).replace("{blob}", blob)
}

/// The version recorded in `central_schema` (0 when none).
pub(super) async fn current_version(pool: &AnyPool) -> Result<i64, sqlx::Error> {
    let row = sqlx::query("SELECT COALESCE(MAX(version), 0) FROM central_schema")
        .fetch_one(pool)
        .await?;
    row.try_get(0)
}

/// Applies every missing migration (in one transaction).
pub(super) async fn migrate(backend: Backend, pool: &AnyPool) -> Result<(), DbError> {
    let q = |source| DbError::Query { backend, source };
    let mut tx = match backend {
        Backend::Sqlite => pool.begin_with("BEGIN IMMEDIATE").await,
        Backend::Postgres => pool.begin().await,
    }
    .map_err(q)?;
    if backend == Backend::Postgres {
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(PG_MIGRATION_LOCK)
            .execute(&mut *tx)
            .await
            .map_err(q)?;
    }
    sqlx::query(
        "CREATE TABLE IF NOT EXISTS central_schema (version BIGINT PRIMARY KEY, \
         name TEXT NOT NULL, applied_at BIGINT NOT NULL)",
    )
    .execute(&mut *tx)
    .await
    .map_err(q)?;
    let found: i64 = sqlx::query("SELECT COALESCE(MAX(version), 0) FROM central_schema")
        .fetch_one(&mut *tx)
        .await
        .map_err(q)?
        .try_get(0)
        .map_err(q)?;
    if found > SCHEMA_VERSION {
        return Err(DbError::SchemaTooNew {
            found,
            known: SCHEMA_VERSION,
        });
    }
    for migration in MIGRATIONS.iter().filter(|m| m.version > found) {
        for statement in render(migration.sql, backend)
            .split(';')
            .map(str::trim)
            .filter(|s| !s.is_empty())
        {
            sqlx::raw_sql(statement)
                .execute(&mut *tx)
                .await
                .map_err(q)?;
        }
        sqlx::query("INSERT INTO central_schema (version, name, applied_at) VALUES ($1, $2, $3)")
            .bind(migration.version)
            .bind(migration.name)
            .bind(Utc::now().timestamp_millis())
            .execute(&mut *tx)
            .await
            .map_err(q)?;
        tracing::info!(version = migration.version, name = migration.name, %backend, "applied a database migration");
    }
    tx.commit().await.map_err(q)
}
