//! The central database (`truenas_central::db`) on both engines: every case runs once on
//! SQLite (a file in a temp dir) and once on a real PostgreSQL server (`pg_server`).
//! Cases about several instances open two `Db` handles (two pools) on one database.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeZone as _, Utc};
use serde_json::json;
use tempfile::TempDir;
use truenas_agent::central::report::{
    CheckStatus, ChecklistItem, CloudSyncHealth, ConfigState, Report,
};
use truenas_central::db::{
    Accepted, Backend, Database, Db, DbError, DocumentEvent, NewWebhook, SCHEMA_VERSION, SealError,
    Sealer,
};
use truenas_central::db::{StoredReport, token_hash};
use truenas_central::store::Store;

use crate::central_fixture::{OldLayout, document, secrets_record};
use crate::pg_server::PgServer;
use crate::support::{CANARIES, assert_no_canary};

/// A stand-in for the at-rest key (the provisioning work supplies the real one): a
/// reversible transform that hides the plaintext bytes and binds the purpose, so the
/// tests can prove what the database stores is what `seal` returned, never the clear text.
pub struct TestSealer;

const SEAL_TAG: &[u8] = b"TEST-SEALED/";

impl Sealer for TestSealer {
    fn key_id(&self) -> String {
        "test-key-0001".to_owned()
    }

    fn seal(&self, purpose: &str, plaintext: &[u8]) -> Result<Vec<u8>, SealError> {
        let mut out = SEAL_TAG.to_vec();
        out.extend(purpose.as_bytes());
        out.push(0);
        out.extend(plaintext.iter().map(|b| b ^ 0xa5));
        Ok(out)
    }

    fn open(&self, purpose: &str, sealed: &[u8]) -> Result<Vec<u8>, SealError> {
        let rest = sealed.strip_prefix(SEAL_TAG).ok_or("not sealed")?;
        let split = rest.iter().position(|b| *b == 0).ok_or("no purpose")?;
        if &rest[..split] != purpose.as_bytes() {
            return Err("sealed for another purpose".into());
        }
        Ok(rest[split + 1..].iter().map(|b| b ^ 0xa5).collect())
    }
}

fn sealer() -> Arc<dyn Sealer> {
    Arc::new(TestSealer)
}

/// One test database and what keeps it alive.
pub struct Env {
    pub db: Db,
    pub database: Database,
    pub pg: Option<PgServer>,
    pub _dir: TempDir,
}

impl Env {
    pub async fn sqlite() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let database = Database::Sqlite(dir.path().join("data").join("central.db"));
        let db = Db::open(&database, sealer()).await.unwrap();
        Self {
            db,
            database,
            pg: None,
            _dir: dir,
        }
    }

    pub async fn postgres() -> Self {
        let pg = PgServer::start();
        let url = pg.fresh_database().await;
        let database = Database::Postgres(url.into());
        let db = Db::open(&database, sealer()).await.unwrap();
        Self {
            db,
            database,
            pg: Some(pg),
            _dir: tempfile::tempdir().unwrap(),
        }
    }

    /// A second instance on the same database (its own pools and listener).
    pub async fn another_instance(&self) -> Db {
        Db::open(&self.database, sealer()).await.unwrap()
    }

    /// Everything the database holds, as bytes a backup would carry: the SQLite files, or
    /// a `pg_dump` of the database.
    pub fn raw_dump(&self) -> Vec<u8> {
        match (&self.database, &self.pg) {
            (Database::Sqlite(path), _) => {
                let mut bytes = Vec::new();
                for suffix in ["", "-wal", "-shm"] {
                    let mut name = path.as_os_str().to_owned();
                    name.push(suffix);
                    bytes.extend(
                        crate::support::read_file(std::path::Path::new(&name)).unwrap_or_default(),
                    );
                }
                bytes
            }
            (Database::Postgres(url), Some(pg)) => {
                use secrecy::ExposeSecret as _;
                let url = url.expose_secret();
                let name = url
                    .split_once("localhost/")
                    .and_then(|(_, rest)| rest.split_once('?'))
                    .unwrap()
                    .0;
                pg.client("pg_dump", name, &[])
            }
            (Database::Postgres(_), None) => unreachable!(),
        }
    }
}

/// Runs `case` on SQLite and on PostgreSQL, as two tests.
macro_rules! on_both {
    ($($case:ident),* $(,)?) => {$(
        mod $case {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                super::$case(super::Env::sqlite().await).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                super::$case(super::Env::postgres().await).await;
            }
        }
    )*};
}

on_both!(
    devices_tokens_and_disable,
    publish_rules_and_documents,
    secrets_are_sealed_at_rest,
    reports_dedup_and_derived_state,
    concurrent_reports_from_two_instances,
    retention_keeps_each_devices_latest,
    migrations_are_idempotent_and_refuse_newer,
    document_publishes_wake_watchers,
    operators_tokens_and_sessions,
    webhook_outbox,
    import_of_the_file_data_directory,
);

fn at(minutes: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 23, 10, 0, 0).unwrap() + chrono::Duration::minutes(minutes)
}

fn report(created: DateTime<Utc>) -> Report {
    Report::new(created)
}

fn doc_bytes(revision: u64) -> Vec<u8> {
    serde_json::to_vec(&document(revision)).unwrap()
}

async fn devices_tokens_and_disable(env: Env) {
    let db = &env.db;
    let hash = token_hash("tok-1");
    db.register("nas-01", &hash).await.unwrap();
    db.register("nas-02", &token_hash("tok-2")).await.unwrap();
    assert!(matches!(
        db.register("nas-01", &token_hash("other")).await,
        Err(DbError::AlreadyRegistered { name }) if name == "nas-01"
    ));
    assert!(matches!(
        db.register("nas-03", &hash).await,
        Err(DbError::TokenInUse { name }) if name == "nas-01"
    ));
    assert!(matches!(
        db.register("../x", &token_hash("x")).await,
        Err(DbError::BadName { .. })
    ));
    assert_eq!(db.devices().await.unwrap(), ["nas-01", "nas-02"]);
    assert_eq!(
        db.token_index().await.unwrap(),
        vec![
            (hash.clone(), "nas-01".to_owned()),
            (token_hash("tok-2"), "nas-02".to_owned())
        ]
    );
    let owner = db.token_owner(&hash).await.unwrap().unwrap();
    assert_eq!((owner.device.as_str(), owner.disabled), ("nas-01", false));
    assert_eq!(db.token_owner(&token_hash("nope")).await.unwrap(), None);
    db.set_disabled("nas-01", true).await.unwrap();
    assert!(db.is_disabled("nas-01").await.unwrap());
    assert!(db.token_owner(&hash).await.unwrap().unwrap().disabled);
    db.set_disabled("nas-01", false).await.unwrap();
    assert!(!db.is_disabled("nas-01").await.unwrap());
    assert!(matches!(
        db.set_disabled("ghost", true).await,
        Err(DbError::UnknownDevice { .. })
    ));
    assert!(db.is_registered("nas-02").await.unwrap());
    assert!(!db.is_registered("ghost").await.unwrap());
    db.set_placement(
        "nas-02",
        &truenas_central::db::Placement {
            org_uuid: Some("0b3c8a51-8d1f-4b7e-9c2a-1f2e3d4c5b6a".into()),
            location_uuid: Some("a1b2c3d4-e5f6-7071-8293-a4b5c6d7e8f9".into()),
            location_name: Some("Clinic North".into()),
        },
    )
    .await
    .unwrap();
    let rows = db.device_rows().await.unwrap();
    assert_eq!(rows[1].location_name.as_deref(), Some("Clinic North"));
    assert_eq!(rows[0].location_name, None);
    assert_eq!(rows[0].published_revision, None);
}

async fn publish_rules_and_documents(env: Env) {
    let db = &env.db;
    db.register("nas-01", &token_hash("t")).await.unwrap();
    let doc = |r: u64| format!("{{\"schema\":\"truenas-agent.config/v1\",\"revision\":{r}}}");
    assert_eq!(
        db.document("nas-01").await.unwrap().map(|d| d.revision),
        None
    );
    assert_eq!(
        db.publish("nas-01", doc(2).as_bytes(), false)
            .await
            .unwrap(),
        2
    );
    let first = db.document("nas-01").await.unwrap().unwrap();
    assert_eq!(first.bytes, doc(2).as_bytes());
    assert!(matches!(
        db.publish("nas-01", doc(1).as_bytes(), false).await,
        Err(DbError::NotNewer {
            revision: 1,
            published: 2
        })
    ));
    assert!(matches!(
        db.publish("nas-01", doc(2).as_bytes(), false).await,
        Err(DbError::NotNewer {
            revision: 2,
            published: 2
        })
    ));
    assert_eq!(
        db.publish("nas-01", doc(1).as_bytes(), true).await.unwrap(),
        1
    );
    let forced = db.document("nas-01").await.unwrap().unwrap();
    assert_eq!(forced.revision, 1);
    assert_ne!(forced.etag, first.etag, "a new document has a new ETag");
    assert_eq!(
        db.document_tag("nas-01").await.unwrap(),
        Some((1, forced.etag.clone()))
    );
    assert!(matches!(
        db.publish("nas-01", b"{\"revision\":3}", false).await,
        Err(DbError::BadDocument { .. })
    ));
    assert!(matches!(
        db.publish("ghost", doc(1).as_bytes(), false).await,
        Err(DbError::UnknownDevice { .. })
    ));
    let huge = format!(
        "{{\"schema\":\"truenas-agent.config/v1\",\"revision\":9,\"pad\":\"{}\"}}",
        "x".repeat(800 * 1024)
    );
    assert!(matches!(
        db.publish("nas-01", huge.as_bytes(), false).await,
        Err(DbError::BadDocument { rule }) if rule.contains("larger than")
    ));
    // The agent's own validation: an empty document is refused with the agent's problems.
    assert!(matches!(
        db.publish_validated("nas-01", doc(5).as_bytes(), false).await,
        Err(DbError::Refused(problems)) if !problems.is_empty()
    ));
    assert_eq!(
        db.publish_validated("nas-01", &doc_bytes(5), false)
            .await
            .unwrap(),
        5
    );
    assert_eq!(
        db.device_rows().await.unwrap()[0].published_revision,
        Some(5)
    );
}

async fn secrets_are_sealed_at_rest(env: Env) {
    let db = &env.db;
    db.register("nas-01", &token_hash("CANARY-DEVICE-TOKEN-5e19b3"))
        .await
        .unwrap();
    db.publish_validated("nas-01", &doc_bytes(1), false)
        .await
        .unwrap();
    let record = json!({"application_key": "CANARY-B2-APPKEY-7f3a9c",
                        "password": "CANARY-ENC-PASSWORD-2b8e41"});
    db.set_credentials(
        "nas-01",
        record.to_string().as_bytes(),
        Some("0024a1b2c3d4e5f0000000001"),
        &json!({"application_key": "sha256:1f2e"}),
    )
    .await
    .unwrap();
    // Read back through the sealer...
    let opened = db.document("nas-01").await.unwrap().unwrap();
    assert!(String::from_utf8_lossy(&opened.bytes).contains("CANARY-ENC-SALT-9d0c55"));
    let creds = db.credentials("nas-01").await.unwrap().unwrap();
    assert_eq!(creds.bytes, record.to_string().as_bytes());
    assert_eq!(
        creds.b2_key_id.as_deref(),
        Some("0024a1b2c3d4e5f0000000001")
    );
    assert_eq!(creds.fingerprints["application_key"], "sha256:1f2e");
    assert!(
        !format!("{creds:?}{opened:?}").contains("CANARY"),
        "Debug shows no secret"
    );
    // ...while the database itself (what a backup carries) holds none of the secrets:
    // only sealed bytes, the token's hash and non-secret ids.
    let dump = env.raw_dump();
    let text = String::from_utf8_lossy(&dump);
    assert_no_canary("the database contents", &text);
    assert!(
        text.contains("test-key-0001") && text.contains(&token_hash("CANARY-DEVICE-TOKEN-5e19b3")),
        "the dump is readable (the scan saw the rows)"
    );
    assert_eq!(CANARIES.len(), 7);
}

fn failing_check(id: &str) -> ChecklistItem {
    ChecklistItem {
        id: id.to_owned(),
        title: id.to_owned(),
        status: CheckStatus::Fail,
        detail: String::new(),
    }
}

async fn reports_dedup_and_derived_state(env: Env) {
    let db = &env.db;
    db.register("nas-01", &token_hash("t")).await.unwrap();
    let mut r1 = report(at(0));
    r1.agent.dropped_reports = 3;
    r1.config.revision = Some(4);
    r1.config.state = ConfigState::Failed;
    r1.checklist = vec![failing_check("snmp.v3_only"), failing_check("b2.lock")];
    r1.health.cloud_sync = vec![CloudSyncHealth {
        pool: "pool0".into(),
        state: "SUCCESS".into(),
        last_success: Some(at(-30)),
        ..CloudSyncHealth::default()
    }];
    let Accepted::Stored { previous, state } =
        db.accept_report("nas-01", &r1, at(1)).await.unwrap()
    else {
        panic!("first delivery is stored")
    };
    assert_eq!(previous.report_count, 0);
    assert_eq!(state.report_count, 1);
    assert_eq!(
        db.accept_report("nas-01", &r1, at(2)).await.unwrap(),
        Accepted::Duplicate
    );
    // A newer report: the state follows it.
    let mut r2 = report(at(60));
    r2.agent.dropped_reports = 2;
    r2.config.revision = Some(5);
    r2.config.state = ConfigState::Applied;
    r2.health.cloud_sync = vec![CloudSyncHealth {
        pool: "pool0".into(),
        state: "FAILED".into(),
        last_success: None,
        error_class: Some("auth".into()),
        ..CloudSyncHealth::default()
    }];
    db.accept_report("nas-01", &r2, at(61)).await.unwrap();
    // An older report arriving late (created between r1 and r2) with a newer success.
    let mut late = report(at(30));
    late.config.state = ConfigState::Refused;
    late.health.cloud_sync = vec![CloudSyncHealth {
        pool: "pool0".into(),
        state: "SUCCESS".into(),
        last_success: Some(at(20)),
        ..CloudSyncHealth::default()
    }];
    db.accept_report("nas-01", &late, at(90)).await.unwrap();
    let s = db.device_state("nas-01").await.unwrap().unwrap();
    assert_eq!(s.report_count, 3);
    assert_eq!(s.dropped.total, 5);
    assert_eq!(s.dropped.last_at, Some(at(61)));
    assert_eq!(s.last_report_at, Some(at(90)));
    assert_eq!(
        s.latest_created_at,
        Some(at(60)),
        "the late report is older"
    );
    assert_eq!(s.config_state, Some(ConfigState::Applied));
    assert_eq!(s.config_revision, Some(5));
    assert_eq!(s.checklist_failing, 0);
    assert_eq!(s.cloud_sync_failing, 1);
    assert_eq!(s.pools.len(), 1);
    assert_eq!(s.pools[0].state, "FAILED");
    assert_eq!(
        s.pools[0].last_success_at,
        Some(at(20)),
        "the newest success any report announced"
    );
    let latest = db.latest_report("nas-01").await.unwrap().unwrap();
    assert_eq!(latest.report.report_id, r2.report_id);
    assert_eq!(latest.dropped.unwrap().total, 5);
    let history = db.reports("nas-01", 2).await.unwrap();
    assert_eq!(
        history
            .iter()
            .map(|r| r.report.report_id)
            .collect::<Vec<_>>(),
        [late.report_id, r2.report_id]
    );
    assert_eq!(history[0].received_at, at(90));
    assert_eq!(db.report_ids("nas-01").await.unwrap().len(), 3);
    assert_eq!(db.drop_tally("nas-01").await.unwrap().total, 5);
    // Another device's report with the same id is its own report.
    db.register("nas-02", &token_hash("t2")).await.unwrap();
    assert!(matches!(
        db.accept_report("nas-02", &r1, at(5)).await.unwrap(),
        Accepted::Stored { .. }
    ));
    let states = db.device_states().await.unwrap();
    assert_eq!(states.len(), 2);
    assert_eq!(states[1].checklist_failing, 2);
    assert!(matches!(
        db.accept_report("ghost", &r1, at(5)).await,
        Err(DbError::UnknownDevice { .. })
    ));
}

async fn concurrent_reports_from_two_instances(env: Env) {
    let a = env.db.clone();
    let b = env.another_instance().await;
    a.register("nas-01", &token_hash("t")).await.unwrap();
    // The same report delivered 16 times at once through two instances: stored once.
    let mut same = report(at(0));
    same.agent.dropped_reports = 1;
    let mut tasks = Vec::new();
    for i in 0..16 {
        let db = if i % 2 == 0 { a.clone() } else { b.clone() };
        let r = same.clone();
        tasks.push(tokio::spawn(async move {
            db.accept_report("nas-01", &r, at(1)).await.unwrap()
        }));
    }
    let mut stored = 0;
    for t in tasks {
        if matches!(t.await.unwrap(), Accepted::Stored { .. }) {
            stored += 1;
        }
    }
    assert_eq!(
        stored, 1,
        "one delivery stored, every other one a duplicate"
    );
    // 20 different reports at once: none lost, every drop counted once.
    let mut tasks = Vec::new();
    for i in 0..20 {
        let db = if i % 2 == 0 { a.clone() } else { b.clone() };
        let mut r = report(at(i + 1));
        r.agent.dropped_reports = 2;
        tasks.push(tokio::spawn(async move {
            db.accept_report("nas-01", &r, at(100)).await.unwrap()
        }));
    }
    for t in tasks {
        assert!(matches!(t.await.unwrap(), Accepted::Stored { .. }));
    }
    let s = b.device_state("nas-01").await.unwrap().unwrap();
    assert_eq!(s.report_count, 21);
    assert_eq!(s.dropped.total, 41);
    assert_eq!(s.latest_created_at, Some(at(20)));
    assert_eq!(a.report_count().await.unwrap(), 21);
}

async fn retention_keeps_each_devices_latest(env: Env) {
    let db = &env.db;
    let now = at(200 * 24 * 60);
    for name in ["nas-01", "nas-02"] {
        db.register(name, &token_hash(name)).await.unwrap();
    }
    // nas-01: one report a day for 120 days; nas-02: one report, 150 days ago.
    for day in 0..120 {
        let when = now - chrono::Duration::days(120 - day);
        db.accept_report("nas-01", &report(when), when)
            .await
            .unwrap();
    }
    let old = now - chrono::Duration::days(150);
    let only = report(old);
    db.accept_report("nas-02", &only, old).await.unwrap();
    assert_eq!(db.report_count().await.unwrap(), 121);
    let deleted = db.apply_retention(90, now).await.unwrap();
    // nas-01 keeps days -90..-1 (90 reports; the one exactly 90 days old is not older
    // than the cut-off); nas-02 keeps its only, latest, report.
    assert_eq!(deleted, 30);
    assert_eq!(db.report_count().await.unwrap(), 91);
    assert_eq!(
        db.latest_report("nas-02")
            .await
            .unwrap()
            .unwrap()
            .report
            .report_id,
        only.report_id
    );
    // Small batches give the same result, and a second run deletes nothing.
    assert_eq!(
        db.prune_reports(now - chrono::Duration::days(10), 7)
            .await
            .unwrap(),
        80
    );
    assert_eq!(db.report_count().await.unwrap(), 11);
    assert_eq!(
        db.prune_reports(now - chrono::Duration::days(10), 7)
            .await
            .unwrap(),
        0
    );
    // Everything older than now: only each device's latest survives.
    db.prune_reports(now, 3).await.unwrap();
    assert_eq!(db.report_count().await.unwrap(), 2);
    let s = db.device_state("nas-01").await.unwrap().unwrap();
    assert_eq!(
        s.report_count,
        121 - 1,
        "the state's counters are not rewritten"
    );
}

async fn migrations_are_idempotent_and_refuse_newer(env: Env) {
    assert_eq!(env.db.schema_version().await.unwrap(), SCHEMA_VERSION);
    env.db.register("nas-01", &token_hash("t")).await.unwrap();
    // Opening again (twice at once: two instances starting together) changes nothing.
    let (a, b) = tokio::join!(
        Db::open(&env.database, sealer()),
        Db::open(&env.database, sealer())
    );
    let (a, _b) = (a.unwrap(), b.unwrap());
    assert_eq!(a.schema_version().await.unwrap(), SCHEMA_VERSION);
    assert_eq!(a.devices().await.unwrap(), ["nas-01"]);
    assert_eq!(
        a.probe("SELECT COUNT(*) FROM central_schema")
            .await
            .unwrap(),
        SCHEMA_VERSION.to_string()
    );
    if env.db.backend() == Backend::Sqlite {
        assert_eq!(a.probe("PRAGMA journal_mode").await.unwrap(), "wal");
        assert_eq!(a.probe("PRAGMA foreign_keys").await.unwrap(), "1");
        assert_eq!(a.probe("PRAGMA synchronous").await.unwrap(), "2", "FULL");
        let Database::Sqlite(path) = &env.database else {
            unreachable!()
        };
        let mode = std::os::unix::fs::PermissionsExt::mode(
            &std::fs::metadata(path).unwrap().permissions(),
        ) & 0o777;
        assert_eq!(mode, 0o600);
    }
    // A database written by a newer central is refused, not touched.
    a.probe("SELECT 1").await.unwrap();
    raw_execute(
        &env,
        "INSERT INTO central_schema (version, name, applied_at) VALUES (999, 'future', 0)",
    )
    .await;
    let err = Db::open(&env.database, sealer()).await.unwrap_err();
    assert!(
        matches!(err, DbError::SchemaTooNew { found: 999, known } if known == SCHEMA_VERSION),
        "{err}"
    );
}

/// Runs one statement outside the `Db` API (to plant states the API never writes).
async fn raw_execute(env: &Env, sql: &str) {
    use sqlx::Connection as _;
    match &env.database {
        Database::Sqlite(path) => {
            let mut c = sqlx::SqliteConnection::connect(&format!("sqlite://{}", path.display()))
                .await
                .unwrap();
            sqlx::query(sql).execute(&mut c).await.unwrap();
        }
        Database::Postgres(url) => {
            use secrecy::ExposeSecret as _;
            let mut c = sqlx::PgConnection::connect(url.expose_secret())
                .await
                .unwrap();
            sqlx::query(sql).execute(&mut c).await.unwrap();
        }
    }
}

async fn document_publishes_wake_watchers(env: Env) {
    let db = &env.db;
    db.register("nas-01", &token_hash("t")).await.unwrap();
    let mut watch = db.watch_documents();
    db.publish_validated("nas-01", &doc_bytes(1), false)
        .await
        .unwrap();
    let event = tokio::time::timeout(Duration::from_secs(60), watch.wait_for("nas-01"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        event,
        DocumentEvent::Published {
            device: "nas-01".into(),
            revision: 1
        }
    );
    if db.backend() == Backend::Postgres {
        // The publishing instance hears itself at once, and again through NOTIFY.
        let again = tokio::time::timeout(Duration::from_secs(60), watch.wait_for("nas-01"))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(again, event);
    }
    // A refused publish wakes nobody; the next real one does.
    assert!(
        db.publish_validated("nas-01", &doc_bytes(1), false)
            .await
            .is_err()
    );
    db.publish_validated("nas-01", &doc_bytes(2), false)
        .await
        .unwrap();
    let event = tokio::time::timeout(Duration::from_secs(60), watch.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        event,
        DocumentEvent::Published {
            device: "nas-01".into(),
            revision: 2
        }
    );
    if db.backend() == Backend::Postgres {
        // Two instances: a publish through one wakes watchers of the other.
        let other = env.another_instance().await;
        let mut theirs = other.watch_documents();
        db.publish_validated("nas-01", &doc_bytes(3), false)
            .await
            .unwrap();
        let event = tokio::time::timeout(Duration::from_secs(60), theirs.wait_for("nas-01"))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            event,
            DocumentEvent::Published {
                device: "nas-01".into(),
                revision: 3
            }
        );
        assert_eq!(other.document_tag("nas-01").await.unwrap().unwrap().0, 3);
    }
}

async fn operators_tokens_and_sessions(env: Env) {
    let db = &env.db;
    let op_hash = token_hash("operator-token-1");
    let alice = db
        .add_operator("alice@msp.example", &op_hash)
        .await
        .unwrap();
    assert!(matches!(
        db.add_operator("alice@msp.example", &token_hash("x")).await,
        Err(DbError::OperatorExists { .. })
    ));
    assert!(matches!(
        db.add_operator("bob", &op_hash).await,
        Err(DbError::OperatorTokenInUse)
    ));
    assert!(
        db.operators()
            .await
            .unwrap()
            .iter()
            .all(|o| o.name != "bob"),
        "nothing half-created"
    );
    assert!(matches!(
        db.add_operator("../bob", &token_hash("y")).await,
        Err(DbError::BadOperatorName { .. })
    ));
    assert_eq!(
        db.operator_for_token(&op_hash)
            .await
            .unwrap()
            .map(|o| o.name),
        Some("alice@msp.example".to_owned())
    );
    // Device tokens and operator tokens never cross.
    db.register("nas-01", &token_hash("device-token"))
        .await
        .unwrap();
    assert_eq!(
        db.operator_for_token(&token_hash("device-token"))
            .await
            .unwrap(),
        None
    );
    assert_eq!(db.token_owner(&op_hash).await.unwrap(), None);
    db.add_operator_token("alice@msp.example", &token_hash("operator-token-2"))
        .await
        .unwrap();
    assert!(
        db.operator_for_token(&token_hash("operator-token-2"))
            .await
            .unwrap()
            .is_some()
    );
    // Sessions: valid until they expire.
    let session = token_hash("session-id-1");
    db.create_session(alice.id, &session, at(60)).await.unwrap();
    assert_eq!(
        db.session_operator(&session, at(59))
            .await
            .unwrap()
            .map(|o| o.id),
        Some(alice.id)
    );
    assert_eq!(db.session_operator(&session, at(60)).await.unwrap(), None);
    // A disabled operator's tokens and sessions stop working.
    db.set_operator_disabled("alice@msp.example", true)
        .await
        .unwrap();
    assert_eq!(db.operator_for_token(&op_hash).await.unwrap(), None);
    assert_eq!(db.session_operator(&session, at(0)).await.unwrap(), None);
    db.set_operator_disabled("alice@msp.example", false)
        .await
        .unwrap();
    assert!(
        db.session_operator(&session, at(0))
            .await
            .unwrap()
            .is_some()
    );
    db.create_session(alice.id, &token_hash("session-id-2"), at(10))
        .await
        .unwrap();
    assert_eq!(db.prune_sessions(at(30)).await.unwrap(), 1);
    assert_eq!(db.session_count().await.unwrap(), 1);
    db.delete_session(&session).await.unwrap();
    assert_eq!(db.session_operator(&session, at(0)).await.unwrap(), None);
    assert!(matches!(
        db.set_operator_disabled("nobody", true).await,
        Err(DbError::UnknownOperator { .. })
    ));
}

async fn webhook_outbox(env: Env) {
    let db = &env.db;
    db.register("nas-01", &token_hash("t")).await.unwrap();
    let mut failing = report(at(0));
    failing.health.cloud_sync = vec![CloudSyncHealth {
        pool: "pool0".into(),
        state: "FAILED".into(),
        ..CloudSyncHealth::default()
    }];
    // The caller derives webhooks from the state change; they commit with the report.
    let hooks = |before: &truenas_central::db::DeviceState,
                 after: &truenas_central::db::DeviceState| {
        if before.cloud_sync_failing == 0 && after.cloud_sync_failing > 0 {
            vec![NewWebhook {
                event: "backup.failed".into(),
                payload: json!({"device": after.device, "pools": ["pool0"]}),
            }]
        } else {
            Vec::new()
        }
    };
    db.accept_report_with("nas-01", &failing, at(1), hooks)
        .await
        .unwrap();
    // A duplicate delivery queues nothing.
    db.accept_report_with("nas-01", &failing, at(2), hooks)
        .await
        .unwrap();
    db.enqueue_webhooks(
        None,
        &[NewWebhook {
            event: "server.started".into(),
            payload: json!({}),
        }],
    )
    .await
    .unwrap();
    assert_eq!(db.webhooks_pending().await.unwrap(), 2);
    let now = Utc::now();
    let claimed = db
        .claim_webhooks(now, 10, Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(claimed.len(), 2);
    assert_eq!(claimed[0].event, "backup.failed");
    assert_eq!(claimed[0].device.as_deref(), Some("nas-01"));
    assert_eq!(claimed[0].payload["pools"][0], "pool0");
    assert_eq!(claimed[0].attempts, 1);
    assert_eq!(claimed[1].device, None);
    // Leased: not claimable again before the lease ends.
    assert!(
        db.claim_webhooks(now, 10, Duration::from_secs(60))
            .await
            .unwrap()
            .is_empty()
    );
    db.webhook_delivered(claimed[1].id, now).await.unwrap();
    db.webhook_failed(
        claimed[0].id,
        "HTTP 503",
        now + chrono::Duration::seconds(30),
        false,
    )
    .await
    .unwrap();
    assert!(
        db.claim_webhooks(
            now + chrono::Duration::seconds(29),
            10,
            Duration::from_secs(60)
        )
        .await
        .unwrap()
        .is_empty()
    );
    let again = db
        .claim_webhooks(
            now + chrono::Duration::seconds(30),
            10,
            Duration::from_secs(60),
        )
        .await
        .unwrap();
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].attempts, 2);
    db.webhook_failed(again[0].id, "HTTP 410", now, true)
        .await
        .unwrap();
    assert_eq!(db.webhooks_pending().await.unwrap(), 0);
    // Two instances claiming at once never both get an entry.
    let other = env.another_instance().await;
    let many: Vec<NewWebhook> = (0..40)
        .map(|i| NewWebhook {
            event: format!("e{i}"),
            payload: json!({"i": i}),
        })
        .collect();
    db.enqueue_webhooks(Some("nas-01"), &many).await.unwrap();
    let later = Utc::now() + chrono::Duration::seconds(1);
    // Eight claimers, four per instance, each taking a few at a time until none is left.
    let mut tasks = Vec::new();
    for i in 0..8 {
        let db = if i % 2 == 0 {
            db.clone()
        } else {
            other.clone()
        };
        tasks.push(tokio::spawn(async move {
            let mut mine = Vec::new();
            loop {
                let got = db
                    .claim_webhooks(later, 3, Duration::from_secs(600))
                    .await
                    .unwrap();
                if got.is_empty() {
                    return mine;
                }
                mine.extend(got.into_iter().map(|item| item.id));
            }
        }));
    }
    let mut ids = Vec::new();
    for t in tasks {
        ids.extend(t.await.unwrap());
    }
    let claimed = ids.len();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), claimed, "no entry claimed twice");
    assert_eq!(ids.len(), 40, "every entry claimed once");
}

async fn import_of_the_file_data_directory(env: Env) {
    let data = tempfile::tempdir().unwrap();
    let old = OldLayout::new(data.path(), &data.path().join("old.key"));
    old.register("nas-01", "tok-1");
    old.register("nas-02", "tok-2");
    old.publish("nas-01", &document(7));
    old.secrets("nas-01", &secrets_record("nas-01"));
    old.disable("nas-02");
    let mut ids = Vec::new();
    for i in 0..3 {
        let mut r = report(at(i * 10));
        r.agent.dropped_reports = 1;
        ids.push(r.report_id);
        let stored = StoredReport {
            received_at: at(i * 10 + 1),
            report: r,
            dropped: None,
        };
        old.append_report("nas-01", &stored);
    }
    let store = Store::new(data.path()).with_key(old.key());
    let db = &env.db;
    let summary = db.import_data_dir(&store).await.unwrap();
    assert_eq!(summary.devices_added, 2);
    assert_eq!(summary.documents_imported, 1);
    assert_eq!(summary.credentials_imported, 1);
    assert_eq!(summary.reports_imported, 3);
    assert_eq!(summary.disabled, 1);
    assert_eq!(db.devices().await.unwrap(), ["nas-01", "nas-02"]);
    assert_eq!(
        db.token_owner(&token_hash("tok-1"))
            .await
            .unwrap()
            .unwrap()
            .device,
        "nas-01"
    );
    assert!(db.is_disabled("nas-02").await.unwrap());
    let imported = db.document("nas-01").await.unwrap().unwrap();
    assert_eq!(imported.revision, 7);
    assert_eq!(imported.bytes, store.document("nas-01").unwrap().unwrap());
    // The provisioning secrets: the same record, with its key id and non-secret facts.
    let credentials = db.credentials("nas-01").await.unwrap().unwrap();
    let record: serde_json::Value = serde_json::from_slice(&credentials.bytes).unwrap();
    assert_eq!(record, secrets_record("nas-01"));
    assert_eq!(
        credentials.b2_key_id.as_deref(),
        Some("0024a1b2c3d4e5f0000000001")
    );
    assert_eq!(
        credentials.fingerprints["bucket"],
        "truenas-a1b2c3d4e5f640718293a4b5c6d7e8f9"
    );
    assert_no_canary(
        "the credentials' clear facts",
        &credentials.fingerprints.to_string(),
    );
    assert!(db.credentials("nas-02").await.unwrap().is_none());
    assert_eq!(db.report_ids("nas-01").await.unwrap(), ids);
    let s = db.device_state("nas-01").await.unwrap().unwrap();
    assert_eq!(s.dropped.total, 3);
    assert_eq!(s.last_report_at, Some(at(21)), "original received_at kept");
    let note = db
        .meta(&truenas_central::db::import_meta_key(data.path()))
        .await
        .unwrap()
        .expect("the import of this directory is recorded");
    assert!(note.contains("\"credentials_imported\":1"), "{note}");
    // Idempotent: a re-run adds nothing (and keeps newer credentials).
    db.set_credentials("nas-01", b"{}", None, &json!({}))
        .await
        .unwrap();
    let again = db.import_data_dir(&store).await.unwrap();
    assert_eq!(again.devices_added, 0);
    assert_eq!(again.documents_imported, 0);
    assert_eq!(again.credentials_imported, 0);
    assert_eq!(again.reports_imported, 0);
    assert_eq!(again.reports_already_present, 3);
    assert_eq!(db.report_count().await.unwrap(), 3);
    assert_eq!(
        db.credentials("nas-01").await.unwrap().unwrap().bytes,
        b"{}"
    );
    // The imported document and secrets are sealed like published ones.
    assert_no_canary(
        "the database after import",
        &String::from_utf8_lossy(&env.raw_dump()),
    );
    // A device registered with another token in the database stops the import.
    let other = tempfile::tempdir().unwrap();
    let conflicting = OldLayout::new(other.path(), &other.path().join("old.key"));
    conflicting.register("nas-01", "a-different-token");
    let err = db
        .import_data_dir(&Store::new(other.path()).with_key(conflicting.key()))
        .await
        .unwrap_err();
    assert!(
        matches!(err, DbError::ImportConflict { ref device } if device == "nas-01"),
        "{err}"
    );
}

#[tokio::test]
async fn postgres_connection_errors_never_show_the_url() {
    let url = "postgres://central:CANARY-API-KEY-0a7d62@127.0.0.1:1/central";
    let database =
        Database::from_flag(std::path::Path::new("/nonexistent"), Some(url.into())).unwrap();
    assert!(!format!("{database:?}").contains("CANARY"));
    let err = Db::open(&database, sealer()).await.unwrap_err();
    let chain = truenas_agent::fault::error_chain(&err);
    assert!(
        chain.contains("cannot open the PostgreSQL database"),
        "{chain}"
    );
    assert_no_canary("a connection error", &chain);
    assert_no_canary("a connection error (Debug)", &format!("{err:?}"));
    assert!(matches!(
        Database::from_flag(std::path::Path::new("/srv"), Some("mysql://x".into())),
        Err(DbError::BadUrl { .. })
    ));
    assert!(matches!(
        Database::from_flag(std::path::Path::new("/srv/central"), None).unwrap(),
        Database::Sqlite(path) if path == std::path::Path::new("/srv/central/central.db")
    ));
}

#[tokio::test]
async fn a_sealed_value_does_not_open_for_another_device() {
    // The purpose handed to the sealer names the device: a row copied to another device
    // does not open (with a real AEAD the same holds cryptographically).
    let env = Env::sqlite().await;
    let db = &env.db;
    db.register("nas-01", &token_hash("a")).await.unwrap();
    db.register("nas-02", &token_hash("b")).await.unwrap();
    db.publish_validated("nas-01", &doc_bytes(1), false)
        .await
        .unwrap();
    raw_execute(
        &env,
        "INSERT INTO documents (device_id, revision, etag, sealed, seal_key_id, published_at) \
         SELECT (SELECT id FROM devices WHERE name = 'nas-02'), revision, etag, sealed, \
         seal_key_id, published_at FROM documents",
    )
    .await;
    let err = db.document("nas-02").await.unwrap_err();
    assert!(
        matches!(err, DbError::Open { ref purpose, .. } if purpose == "devices/nas-02/config.json"),
        "{err}"
    );
}

#[tokio::test]
async fn sqlite_lives_in_a_data_directory_with_any_name() {
    // Spaces, `?`, `#` and `%` in the path must reach SQLite as a file name, not as URL
    // syntax (the driver takes a URL).
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("central data #1?x=%20");
    let database = Database::from_flag(&data, None).unwrap();
    let db = Db::open(&database, sealer()).await.unwrap();
    db.register("nas-01", &token_hash("t")).await.unwrap();
    drop(db);
    assert!(data.join("central.db").is_file());
    let again = Db::open(&database, sealer()).await.unwrap();
    assert_eq!(again.devices().await.unwrap(), ["nas-01"]);
}
