//! B2 verification end to end over loopback sockets against the fake B2 server.
//!
//! The main scenarios also run against Backblaze's own model of B2 in
//! `b2_verify_model.rs`; this file keeps them on the fake too, and is the only place for
//! what a model cannot do: injected 429/503 with and without `Retry-After`, a token that
//! expires on its first use, v4 sign-in refused as `unsupported`, echoed credentials,
//! ignored `Range`, oversized listings, deleted-bucket names, unreachable B2.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use secrecy::SecretString;
use truenas_agent::b2::api::{Pause, RetryPolicy};
use truenas_agent::b2::{self, B2Inputs, B2Report, CheckId, ClientOptions, Status};

use crate::fake_b2::{self, BUCKET, Config, FakeB2, FakeBucket, FakeFile, GUID, KEY_ID, Retention};
use crate::support::{CANARIES, assert_no_canary};

/// The application key used everywhere: a canary, so any leak is caught.
const APP_KEY: &str = CANARIES[0];
const POOLS: &[&str] = &["pool0", "pool1"];

/// Records the waits instead of sleeping (no wall-clock in tests).
#[derive(Default)]
struct RecordedPauses(Mutex<Vec<Duration>>);

impl Pause for RecordedPauses {
    fn pause(&self, duration: Duration) -> Pin<Box<dyn Future<Output = ()> + Send + '_>> {
        self.0.lock().unwrap().push(duration);
        Box::pin(std::future::ready(()))
    }
}

fn now() -> DateTime<Utc> {
    DateTime::from_timestamp(1_763_856_000, 0).unwrap()
}

fn inputs(fake: &FakeB2) -> B2Inputs {
    B2Inputs {
        key_id: KEY_ID.into(),
        application_key: SecretString::from(APP_KEY),
        bucket: BUCKET.into(),
        device_guid: GUID.into(),
        pools: POOLS.iter().map(|&p| p.to_owned()).collect(),
        api_base: fake.base.clone(),
        rclone_version: None,
    }
}

async fn run(config: Config) -> (B2Report, FakeB2, Arc<RecordedPauses>) {
    let fake = FakeB2::start(config).await;
    let pauses = Arc::new(RecordedPauses::default());
    let options = ClientOptions {
        api_base: fake.base.clone(),
        request_timeout: Duration::from_secs(10),
        connect_timeout: Duration::from_secs(5),
        retry: RetryPolicy::default(),
        pause: Arc::clone(&pauses) as Arc<dyn Pause>,
    };
    let report = b2::verify_with(&inputs(&fake), options, now()).await;
    (report, fake, pauses)
}

fn compliant() -> Config {
    Config::compliant(APP_KEY, POOLS)
}

fn get<'a>(report: &'a B2Report, id: CheckId, pool: Option<&str>) -> &'a b2::Finding {
    report
        .finding(id, pool)
        .unwrap_or_else(|| panic!("no finding {id} {pool:?} in {report:#?}"))
}

fn assert_status(report: &B2Report, id: CheckId, pool: Option<&str>, want: Status, needle: &str) {
    let finding = get(report, id, pool);
    assert_eq!(finding.status, want, "{id} {pool:?}: {}", finding.detail);
    assert!(
        finding.detail.contains(needle),
        "{id} {pool:?}: `{needle}` not in: {}",
        finding.detail
    );
}

/// Every request after sign-in carried a raw issued token (no `Bearer`).
fn assert_raw_tokens(fake: &FakeB2) {
    let tokens = fake.tokens();
    for request in fake.requests() {
        if request.path.ends_with("b2_authorize_account") {
            assert!(request.authorization.unwrap().starts_with("Basic "));
        } else {
            let header = request.authorization.expect("token header");
            assert!(tokens.contains(&header), "{} sent {header:?}", request.path);
        }
    }
}

#[tokio::test]
async fn compliant_bucket_passes_every_check() {
    let (report, fake, pauses) = run(compliant()).await;
    for finding in &report.findings {
        let want = if finding.id == CheckId::KeyLeastPrivilege {
            Status::Info
        } else {
            Status::Pass
        };
        assert_eq!(finding.status, want, "{finding:#?}");
    }
    assert_eq!(report.overall(), Status::Pass);
    for pool in POOLS {
        assert_status(
            &report,
            CheckId::PoolEncryptionOn,
            Some(pool),
            Status::Pass,
            "RCLONE",
        );
    }
    assert_eq!(fake.count("/v4/b2_authorize_account"), 1);
    assert_eq!(fake.count("/v1/b2_authorize_account"), 1);
    assert_eq!(fake.count("b2_list_buckets"), 1);
    // Each pool: one listing, two Archive probes, one ranged download of 32 bytes.
    assert_eq!(fake.count("b2_list_file_names"), 6);
    let downloads: Vec<_> = fake
        .requests()
        .into_iter()
        .filter(|r| r.path.starts_with("/file/"))
        .collect();
    assert_eq!(downloads.len(), 2);
    assert!(
        downloads
            .iter()
            .all(|d| d.status == 206 && d.range.as_deref() == Some("bytes=0-31"))
    );
    assert_raw_tokens(&fake);
    assert!(pauses.0.lock().unwrap().is_empty());
}

#[tokio::test]
async fn bad_key_fails_sign_in_and_leaves_everything_else_unknown() {
    let mut config = compliant();
    config.app_key = "a-different-key".into();
    let (report, fake, _) = run(config).await;
    assert_status(&report, CheckId::KeyAuthorizes, None, Status::Fail, KEY_ID);
    assert_status(
        &report,
        CheckId::KeyAuthorizes,
        None,
        Status::Fail,
        "Cloud Sync cannot run",
    );
    for finding in &report.findings[1..] {
        assert_eq!(finding.status, Status::Unknown, "{finding:?}");
        assert!(
            finding.detail.contains("signing in to B2 failed"),
            "{finding:?}"
        );
    }
    assert_eq!(fake.requests().len(), 1, "a bad key is not retried");
}

#[tokio::test]
async fn expired_token_is_renewed_exactly_once() {
    let mut config = compliant();
    config.faults.expire_first_token = true;
    let (report, fake, pauses) = run(config).await;
    assert_eq!(report.overall(), Status::Pass, "{report:#?}");
    assert_eq!(fake.count("/v4/b2_authorize_account"), 2);
    let statuses: Vec<u16> = fake.requests().iter().map(|r| r.status).collect();
    assert_eq!(
        statuses.iter().filter(|&&s| s == 401).count(),
        1,
        "{statuses:?}"
    );
    assert!(
        pauses.0.lock().unwrap().is_empty(),
        "a renewal is not a back-off"
    );
}

#[tokio::test]
async fn rate_limit_honours_retry_after() {
    let mut config = compliant();
    config.faults.rate_limit = Some((2, Some(3)));
    let (report, fake, pauses) = run(config).await;
    assert_eq!(report.overall(), Status::Pass, "{report:#?}");
    assert_eq!(*pauses.0.lock().unwrap(), [Duration::from_secs(3); 2]);
    assert_eq!(
        fake.requests().iter().filter(|r| r.status == 429).count(),
        2
    );
}

#[tokio::test]
async fn rate_limit_without_retry_after_backs_off_exponentially() {
    let mut config = compliant();
    config.faults.rate_limit = Some((2, None));
    let (report, _, pauses) = run(config).await;
    assert_eq!(report.overall(), Status::Pass);
    assert_eq!(
        *pauses.0.lock().unwrap(),
        [Duration::from_secs(1), Duration::from_secs(2)]
    );
}

#[tokio::test]
async fn retry_after_beyond_the_bound_gives_unknown_not_a_stall() {
    let mut config = compliant();
    config.faults.rate_limit = Some((1, Some(3600)));
    let (report, fake, pauses) = run(config).await;
    assert!(pauses.0.lock().unwrap().is_empty());
    assert_status(
        &report,
        CheckId::BucketFound,
        None,
        Status::Unknown,
        "rate limiting",
    );
    assert_status(
        &report,
        CheckId::BucketFound,
        None,
        Status::Unknown,
        "retry after 3600s",
    );
    // B2 asked for an hour: the rest of this run fails fast instead of waiting.
    assert_status(
        &report,
        CheckId::PoolEncryptionOn,
        Some("pool0"),
        Status::Unknown,
        "rate limiting",
    );
    assert_eq!(fake.count("b2_list_file_names"), 0);
}

#[tokio::test]
async fn service_unavailable_is_retried_then_reported_unknown() {
    let mut config = compliant();
    config.faults.unavailable = 2;
    let (report, _, pauses) = run(config).await;
    assert_eq!(report.overall(), Status::Pass);
    assert_eq!(pauses.0.lock().unwrap().len(), 2);

    let mut config = compliant();
    config.faults.unavailable = 100;
    let (report, fake, pauses) = run(config).await;
    assert_status(
        &report,
        CheckId::BucketFound,
        None,
        Status::Unknown,
        "HTTP 503",
    );
    assert_status(
        &report,
        CheckId::PoolEncryptionOn,
        Some("pool1"),
        Status::Unknown,
        "next pass",
    );
    // Bounded: 4 attempts, then every later call fails fast without touching B2.
    assert_eq!(fake.count("b2_list_buckets"), 4);
    assert_eq!(fake.count("b2_list_file_names"), 0);
    assert_eq!(pauses.0.lock().unwrap().len(), 3);
    assert!(
        pauses
            .0
            .lock()
            .unwrap()
            .iter()
            .all(|d| *d <= Duration::from_secs(16))
    );
}

#[tokio::test]
async fn missing_read_capabilities_are_unknown_not_fail() {
    let mut config = compliant();
    config
        .capabilities
        .retain(|c| c != "readBucketEncryption" && c != "readBucketRetentions");
    let (report, _, _) = run(config).await;
    assert_status(
        &report,
        CheckId::BucketDefaultEncryption,
        None,
        Status::Unknown,
        "readBucketEncryption",
    );
    assert_status(
        &report,
        CheckId::BucketObjectLock,
        None,
        Status::Unknown,
        "readBucketRetentions",
    );
    assert_status(
        &report,
        CheckId::BucketDefaultRetention,
        None,
        Status::Unknown,
        "readBucketRetentions",
    );
    assert_status(
        &report,
        CheckId::KeyLeastPrivilege,
        None,
        Status::Info,
        "stay UNKNOWN",
    );
    // The per-object check still sees SSE-B2 with listFiles only.
    assert_status(
        &report,
        CheckId::ObjectsAtRestEncryption,
        None,
        Status::Pass,
        "SSE-B2",
    );
    assert!(
        report.findings.iter().all(|f| f.status != Status::Fail),
        "{report:#?}"
    );
}

#[tokio::test]
async fn key_without_list_files_or_read_files_leaves_pools_unknown() {
    let mut config = compliant();
    config.capabilities.retain(|c| c != "readFiles");
    let (report, _, _) = run(config).await;
    assert_status(
        &report,
        CheckId::PoolEncryptionOn,
        Some("pool0"),
        Status::Unknown,
        "`readFiles`",
    );
    assert_status(
        &report,
        CheckId::KeySyncCapabilities,
        None,
        Status::Fail,
        "readFiles",
    );

    let mut config = compliant();
    config.capabilities.retain(|c| c != "listFiles");
    let (report, _, _) = run(config).await;
    assert_status(
        &report,
        CheckId::PoolEncryptionOn,
        Some("pool0"),
        Status::Unknown,
        "`listFiles`",
    );
    assert_status(
        &report,
        CheckId::PoolArchiveExcluded,
        Some("pool0"),
        Status::Unknown,
        "`listFiles`",
    );
}

#[tokio::test]
async fn bucket_without_object_lock_fails() {
    let mut config = compliant();
    config.buckets[0].file_lock_enabled = false;
    config.buckets[0].retention = None;
    let (report, _, _) = run(config).await;
    assert_status(
        &report,
        CheckId::BucketObjectLock,
        None,
        Status::Fail,
        "not enabled",
    );
    assert_status(
        &report,
        CheckId::BucketDefaultRetention,
        None,
        Status::Fail,
        "Object Lock is not enabled",
    );
}

#[tokio::test]
async fn sop_deviations_in_bucket_settings_fail() {
    let mut config = compliant();
    let bucket = &mut config.buckets[0];
    bucket.bucket_type = "allPublic".into();
    bucket.sse_mode = "none".into();
    bucket.retention = Some(Retention {
        mode: Some("governance".into()),
        duration: 7,
        unit: "days".into(),
    });
    bucket.lifecycle_rules = serde_json::json!([]);
    let (report, _, _) = run(config).await;
    assert_status(
        &report,
        CheckId::BucketPrivate,
        None,
        Status::Fail,
        "allPublic",
    );
    assert_status(
        &report,
        CheckId::BucketDefaultEncryption,
        None,
        Status::Fail,
        "`none`",
    );
    assert_status(
        &report,
        CheckId::BucketDefaultRetention,
        None,
        Status::Fail,
        "governance",
    );
    assert_status(
        &report,
        CheckId::BucketLifecycle,
        None,
        Status::Fail,
        "no lifecycle rule",
    );
}

#[tokio::test]
async fn plaintext_object_fails_with_what_to_do() {
    let mut config = compliant();
    config.buckets[0].files.push(FakeFile::new(
        format!("{GUID}/pool1/docs/invoice.txt"),
        fake_b2::data("plain-invoice.txt"),
    ));
    let (report, fake, _) = run(config).await;
    assert_status(
        &report,
        CheckId::PoolEncryptionOn,
        Some("pool0"),
        Status::Pass,
        "",
    );
    let finding = get(&report, CheckId::PoolEncryptionOn, Some("pool1"));
    assert_eq!(finding.status, Status::Fail);
    for needle in [
        "docs/invoice.txt",
        "NOT encrypted",
        "SOP 7.3",
        "Remote Encryption on",
        "IT Glue",
    ] {
        assert!(
            finding.detail.contains(needle),
            "`{needle}` not in {}",
            finding.detail
        );
    }
    // The plaintext-looking name was the one downloaded.
    assert!(
        fake.requests()
            .iter()
            .any(|r| r.path.ends_with("pool1/docs/invoice.txt"))
    );
}

#[tokio::test]
async fn plaintext_with_a_bin_name_still_fails() {
    let mut config = compliant();
    let bucket = &mut config.buckets[0];
    bucket.files.retain(|f| !f.name.contains("/pool0/"));
    bucket.files.push(FakeFile::new(
        format!("{GUID}/pool0/a.txt.bin"),
        fake_b2::data("plain-invoice.txt"),
    ));
    let (report, _, _) = run(config).await;
    assert_status(
        &report,
        CheckId::PoolEncryptionOn,
        Some("pool0"),
        Status::Fail,
        "proves nothing",
    );
}

#[tokio::test]
async fn empty_pool_folder_is_unknown_nothing_uploaded_yet() {
    let mut config = compliant();
    config.buckets[0]
        .files
        .retain(|f| !f.name.contains("/pool1/"));
    config.buckets[0]
        .files
        .push(FakeFile::new(format!("{GUID}/pool1/.bzEmpty"), Vec::new()));
    let (report, _, _) = run(config).await;
    assert_status(
        &report,
        CheckId::PoolEncryptionOn,
        Some("pool1"),
        Status::Unknown,
        "run the first sync",
    );
    assert_status(
        &report,
        CheckId::PoolEncryptionOn,
        Some("pool0"),
        Status::Pass,
        "",
    );
}

#[tokio::test]
async fn archive_folder_in_b2_fails() {
    let mut config = compliant();
    config.buckets[0].files.push(FakeFile::new(
        format!("{GUID}/pool0/Archive/2019/old.doc.bin"),
        fake_b2::data("crypt-invoice.txt.bin"),
    ));
    let (report, _, _) = run(config).await;
    assert_status(
        &report,
        CheckId::PoolArchiveExcluded,
        Some("pool0"),
        Status::Fail,
        "Archive/2019/old.doc.bin",
    );
    assert_status(
        &report,
        CheckId::PoolArchiveExcluded,
        Some("pool1"),
        Status::Pass,
        "",
    );
}

#[tokio::test]
async fn unencrypted_at_rest_objects_fail() {
    let mut config = compliant();
    for file in &mut config.buckets[0].files {
        file.sse = false;
    }
    let (report, _, _) = run(config).await;
    assert_status(
        &report,
        CheckId::ObjectsAtRestEncryption,
        None,
        Status::Fail,
        "without SSE-B2",
    );
}

#[tokio::test]
async fn key_restricted_to_another_bucket() {
    let mut config = compliant();
    config.allowed_buckets = Some(vec![(
        "other-id".into(),
        Some("truenas-someone-else".into()),
    )]);
    let (report, _, _) = run(config).await;
    assert_status(
        &report,
        CheckId::KeyBucketScope,
        None,
        Status::Fail,
        "`truenas-someone-else`",
    );
    assert_status(
        &report,
        CheckId::BucketFound,
        None,
        Status::Unknown,
        "outside its restriction",
    );
    assert_status(
        &report,
        CheckId::PoolEncryptionOn,
        Some("pool0"),
        Status::Unknown,
        "bucket is not available",
    );
}

#[tokio::test]
async fn unrestricted_key_fails_scope_but_checks_still_run() {
    let mut config = compliant();
    config.allowed_buckets = None;
    let (report, _, _) = run(config).await;
    assert_status(
        &report,
        CheckId::KeyBucketScope,
        None,
        Status::Fail,
        "not restricted to any bucket",
    );
    assert_status(&report, CheckId::BucketObjectLock, None, Status::Pass, "");
    assert_status(
        &report,
        CheckId::PoolEncryptionOn,
        Some("pool0"),
        Status::Pass,
        "",
    );
}

#[tokio::test]
async fn v4_only_key_is_flagged_for_truenas_rclone() {
    let mut config = compliant();
    config.v4_only = true;
    let (report, _, _) = run(config).await;
    assert_status(
        &report,
        CheckId::KeyRcloneCompatible,
        None,
        Status::Fail,
        "API version number 1",
    );
    assert_status(
        &report,
        CheckId::KeyRcloneCompatible,
        None,
        Status::Fail,
        "1.73",
    );
    assert_status(&report, CheckId::KeyAuthorizes, None, Status::Pass, "");

    let mut config = compliant();
    config.v4_only = true;
    let fake = FakeB2::start(config).await;
    let mut modern = inputs(&fake);
    modern.rclone_version = Some("rclone v1.73.0".into());
    let report = b2::verify(&modern, now()).await;
    assert_status(
        &report,
        CheckId::KeyRcloneCompatible,
        None,
        Status::Pass,
        "v1.73.0",
    );
}

#[tokio::test]
async fn v4_sign_in_refused_as_unsupported() {
    let mut config = compliant();
    config.faults.reject_v4_sign_in = true;
    let (report, _, _) = run(config).await;
    assert_status(
        &report,
        CheckId::KeyAuthorizes,
        None,
        Status::Fail,
        "not accept application key",
    );
}

#[tokio::test]
async fn unreachable_b2_gives_unknown() {
    // A port nobody listens on: bind, read the port, drop the listener.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    let pauses = Arc::new(RecordedPauses::default());
    let fake = FakeB2::start(compliant()).await;
    let inputs = inputs(&fake);
    let options = ClientOptions {
        api_base: base,
        pause: Arc::clone(&pauses) as Arc<dyn Pause>,
        ..ClientOptions::default()
    };
    let report = b2::verify_with(&inputs, options, now()).await;
    assert!(
        report.findings.iter().all(|f| f.status == Status::Unknown),
        "{report:#?}"
    );
    assert_status(
        &report,
        CheckId::KeyAuthorizes,
        None,
        Status::Unknown,
        "cannot reach B2",
    );
    assert_eq!(pauses.0.lock().unwrap().len(), 3, "bounded retries");
}

#[tokio::test]
async fn plain_http_to_a_remote_host_is_refused_before_sending_the_key() {
    let fake = FakeB2::start(compliant()).await;
    let inputs = B2Inputs {
        api_base: "http://api.backblazeb2.com".into(),
        ..inputs(&fake)
    };
    let report = b2::verify(&inputs, now()).await;
    assert_status(
        &report,
        CheckId::KeyAuthorizes,
        None,
        Status::Unknown,
        "loopback",
    );
    assert!(fake.requests().is_empty());
}

#[tokio::test]
async fn fake_rejects_bearer_tokens_like_b2() {
    let fake = FakeB2::start(compliant()).await;
    let _ = rustls::crypto::ring::default_provider().install_default();
    let http = reqwest::Client::new();
    let auth: serde_json::Value = http
        .get(format!("{}/b2api/v4/b2_authorize_account", fake.base))
        .basic_auth(KEY_ID, Some(APP_KEY))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = auth["authorizationToken"].as_str().unwrap();
    let body = serde_json::json!({"accountId": fake_b2::ACCOUNT_ID, "bucketName": BUCKET});
    let url = format!("{}/b2api/v4/b2_list_buckets", fake.base);
    let bearer = http
        .post(&url)
        .header("Authorization", format!("Bearer {token}"))
        .json(&body);
    let reply = bearer.send().await.unwrap();
    assert_eq!(reply.status(), 401);
    let raw = http.post(&url).header("Authorization", token).json(&body);
    assert_eq!(raw.send().await.unwrap().status(), 200);
}

/// Log lines from the tracing subscriber installed for this test.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn the_application_key_and_token_never_leak() {
    let logs = Captured::default();
    let writer = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    // A careless server echoing credentials in 401 messages, an expiring token, 429s.
    let mut config = compliant();
    config.faults.echo_credentials = true;
    config.faults.expire_first_token = true;
    config.faults.rate_limit = Some((1, Some(1)));
    let (ok_report, fake, _) = run(config.clone()).await;
    let mut tokens = fake.tokens();
    // Wrong key: the fake quotes "keyId:<presented key>" in its error.
    let mut wrong = config.clone();
    wrong.app_key = "not-the-canary".into();
    let (bad_report, _, _) = run(wrong).await;
    // Restricted elsewhere: 401s on the token calls.
    let mut elsewhere = config;
    elsewhere.allowed_buckets = Some(vec![("x".into(), Some("y".into()))]);
    let (other_report, fake, _) = run(elsewhere).await;
    tokens.extend(fake.tokens());

    let fake = FakeB2::start(compliant()).await;
    let inputs = inputs(&fake);
    let mut texts = vec![
        ("inputs Debug", format!("{inputs:?}")),
        (
            "client options Debug",
            format!("{:?}", ClientOptions::default()),
        ),
    ];
    for (label, report) in [
        ("ok", &ok_report),
        ("bad key", &bad_report),
        ("other bucket", &other_report),
    ] {
        texts.push((label, serde_json::to_string(report).unwrap()));
        texts.push((label, format!("{report:?}")));
    }
    let bad = get(&bad_report, CheckId::KeyAuthorizes, None);
    assert!(
        bad.detail.contains("[REDACTED]"),
        "the echoed key was scrubbed: {}",
        bad.detail
    );
    let mut client = b2::api::Client::new(
        KEY_ID,
        SecretString::from(APP_KEY),
        ClientOptions {
            api_base: fake.base.clone(),
            ..ClientOptions::default()
        },
    )
    .unwrap();
    client.authorize().await.unwrap();
    texts.push(("signed-in client Debug", format!("{client:?}")));
    let log_text = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
    assert!(
        log_text.contains("B2 verification finished"),
        "logs were captured"
    );
    texts.push(("logs", log_text));
    for (label, text) in &texts {
        assert_no_canary(label, text);
        for token in &tokens {
            assert!(
                !text.contains(token.as_str()),
                "session token leaked into {label}"
            );
        }
    }
    assert_eq!(ok_report.overall(), Status::Pass);
}

#[tokio::test]
async fn bucket_missing_from_the_account_fails_found() {
    let mut config = compliant();
    config.allowed_buckets = None;
    config.buckets[0].name = "truenas-another-location".into();
    let (report, _, _) = run(config).await;
    assert_status(&report, CheckId::BucketFound, None, Status::Fail, "SOP 3.2");
    assert_status(
        &report,
        CheckId::BucketPrivate,
        None,
        Status::Unknown,
        "b2.bucket.found",
    );
}

#[tokio::test]
async fn compliant_fake_bucket_has_real_crypt_objects() {
    // Guard against a fake that would pass anything: its default objects are the
    // real rclone fixtures, and its plaintext fixture is not encrypted.
    let bucket = FakeBucket::compliant(&["pool0"]);
    assert!(
        bucket
            .files
            .iter()
            .all(|f| f.content.starts_with(b"RCLONE\0\0"))
    );
    assert!(!fake_b2::data("plain-invoice.txt").starts_with(b"RCLONE"));
}

#[tokio::test]
async fn downloads_read_only_the_header_even_when_range_is_ignored() {
    let mut config = compliant();
    config.faults.ignore_range = true;
    // A large plaintext object: the client must stop after 32 bytes.
    config.buckets[0].files.push(FakeFile::new(
        format!("{GUID}/pool0/big.iso"),
        vec![b'A'; 8 * 1024 * 1024],
    ));
    let (report, fake, _) = run(config).await;
    assert_status(
        &report,
        CheckId::PoolEncryptionOn,
        Some("pool0"),
        Status::Fail,
        "big.iso",
    );
    assert_status(
        &report,
        CheckId::PoolEncryptionOn,
        Some("pool1"),
        Status::Pass,
        "",
    );
    assert!(
        fake.requests()
            .iter()
            .any(|r| r.path.starts_with("/file/") && r.status == 200)
    );
}

#[tokio::test]
async fn tiny_and_empty_plaintext_objects_fail() {
    for content in [b"hi".to_vec(), Vec::new()] {
        let mut config = compliant();
        config.buckets[0]
            .files
            .retain(|f| !f.name.contains("/pool0/"));
        config.buckets[0].files.push(FakeFile::new(
            format!("{GUID}/pool0/note.txt"),
            content.clone(),
        ));
        let (report, _, _) = run(config).await;
        assert_status(
            &report,
            CheckId::PoolEncryptionOn,
            Some("pool0"),
            Status::Fail,
            "NOT encrypted",
        );
    }
}

#[tokio::test]
async fn oversized_replies_are_refused() {
    let mut config = compliant();
    config.faults.oversize_listing = true;
    let (report, _, _) = run(config).await;
    assert_status(
        &report,
        CheckId::PoolEncryptionOn,
        Some("pool0"),
        Status::Unknown,
        "larger than 1048576 bytes",
    );
}

/// The technician-facing wording of a badly set-up bucket, as a golden file
/// (`tests/it/snapshots/`): review changes with care, a technician acts on these words.
#[tokio::test]
async fn wording_of_a_broken_setup() {
    let mut config = compliant();
    let bucket = &mut config.buckets[0];
    bucket.file_lock_enabled = false;
    bucket.lifecycle_rules = serde_json::json!([{"fileNamePrefix": "", "daysFromHidingToDeleting": 7, "daysFromUploadingToHiding": null}]);
    bucket.files.push(FakeFile::new(
        format!("{GUID}/pool1/docs/invoice.txt"),
        fake_b2::data("plain-invoice.txt"),
    ));
    config.capabilities.retain(|c| c != "readBucketEncryption");
    config.v4_only = true;
    let (report, _, _) = run(config).await;
    let mut text = String::new();
    for f in &report.findings {
        use std::fmt::Write as _;
        writeln!(
            text,
            "[{:?}] {} — {}\n    {}",
            f.status, f.id, f.title, f.detail
        )
        .unwrap();
    }
    insta::assert_snapshot!("b2_broken_setup", text);
}
