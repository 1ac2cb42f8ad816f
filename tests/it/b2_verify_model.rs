//! B2 verification against Backblaze's own model of B2 (b2sdk's RawSimulator behind
//! `tests/b2model/`), set up through the B2 API the way SOP phase 4 does it: the main
//! scenarios of `b2_verify.rs`, whose fake stays for what a model cannot do (503s,
//! `Retry-After`, truncated or oversized bodies, echoed credentials, ignored `Range`).

use chrono::{DateTime, Utc};
use secrecy::SecretString;
use serde_json::json;
use truenas_agent::b2::{self, B2Inputs, B2Report, CheckId, Status};

use crate::b2model::{Key, SOP_CAPABILITIES, SopSetup};
use crate::fake_b2;

const BUCKET: &str = "truenas-a1b2c3d4e5f670718293a4b5c6d7e8f9";
const GUID: &str = "9babab19-acc0-4587-aa05-ccd8103a1148";
const POOLS: &[&str] = &["pool0", "pool1"];

fn now() -> DateTime<Utc> {
    DateTime::from_timestamp(1_763_856_000, 0).unwrap()
}

/// The compliant SOP setup with one real rclone crypt object (and an empty one) per pool.
async fn compliant() -> SopSetup {
    let setup = SopSetup::new(BUCKET, SOP_CAPABILITIES).await;
    for pool in POOLS {
        let crypt = fake_b2::data("crypt-invoice.txt.bin");
        let empty = fake_b2::data("crypt-empty.txt.bin");
        let model = &setup.model;
        model
            .plant(
                BUCKET,
                &format!("{GUID}/{pool}/docs/invoice.txt.bin"),
                &crypt,
                "default",
            )
            .await;
        model
            .plant(
                BUCKET,
                &format!("{GUID}/{pool}/empty.txt.bin"),
                &empty,
                "default",
            )
            .await;
    }
    setup
}

fn inputs(setup: &SopSetup, key: &Key) -> B2Inputs {
    B2Inputs {
        key_id: key.id.clone(),
        application_key: SecretString::from(key.secret.clone()),
        bucket: BUCKET.into(),
        device_guid: GUID.into(),
        pools: POOLS.iter().map(|&p| p.to_owned()).collect(),
        api_base: setup.model.base.clone(),
        rclone_version: None,
    }
}

async fn verify(setup: &SopSetup, key: &Key) -> B2Report {
    b2::verify(&inputs(setup, key), now()).await
}

/// A v3 key restricted to the SOP bucket with these capabilities.
async fn scoped_key(setup: &SopSetup, capabilities: &[&str]) -> Key {
    setup
        .model
        .key(
            3,
            &setup.admin,
            "scoped",
            capabilities,
            Some(&[&setup.bucket_id]),
        )
        .await
}

#[track_caller]
fn assert_status(report: &B2Report, id: CheckId, pool: Option<&str>, want: Status, needle: &str) {
    let finding = report
        .finding(id, pool)
        .unwrap_or_else(|| panic!("no finding {id} {pool:?} in {report:#?}"));
    assert_eq!(finding.status, want, "{id} {pool:?}: {}", finding.detail);
    assert!(
        finding.detail.contains(needle),
        "{id} {pool:?}: `{needle}` not in: {}",
        finding.detail
    );
}

#[tokio::test]
async fn sop_setup_made_through_the_api_passes_every_check() {
    let setup = compliant().await;
    let report = verify(&setup, &setup.key).await;
    for finding in &report.findings {
        let want = if finding.id == CheckId::KeyLeastPrivilege {
            Status::Info
        } else {
            Status::Pass
        };
        assert_eq!(finding.status, want, "{finding:#?}");
    }
    for pool in POOLS {
        assert_status(
            &report,
            CheckId::PoolEncryptionOn,
            Some(pool),
            Status::Pass,
            "RCLONE",
        );
    }
    // The v3-made key also signs in on v1 (TrueNAS's rclone).
    assert_status(
        &report,
        CheckId::KeyRcloneCompatible,
        None,
        Status::Pass,
        "",
    );
    let model = &setup.model;
    assert_eq!(model.count("/v1/b2_authorize_account").await, 1);
    assert_eq!(model.count("b2_list_buckets").await, 1);
    assert_eq!(model.count("b2_list_file_names").await, 6);
    let downloads: Vec<_> = model
        .requests()
        .await
        .into_iter()
        .filter(|(_, path, _)| path.starts_with("/file/"))
        .collect();
    assert_eq!(downloads.len(), 2, "{downloads:?}");
    assert!(downloads.iter().all(|(_, _, status)| *status == 206));
}

#[tokio::test]
async fn multi_bucket_key_made_on_v4_is_flagged_for_truenas_rclone() {
    let setup = compliant().await;
    let key = setup
        .model
        .key(
            4,
            &setup.admin,
            BUCKET,
            SOP_CAPABILITIES,
            Some(&[&setup.bucket_id]),
        )
        .await;
    let report = verify(&setup, &key).await;
    assert_status(&report, CheckId::KeyAuthorizes, None, Status::Pass, &key.id);
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
    // Everything else about the bucket is still checked and fine.
    assert_status(&report, CheckId::KeyBucketScope, None, Status::Pass, BUCKET);
    assert_status(
        &report,
        CheckId::BucketDefaultRetention,
        None,
        Status::Pass,
        "",
    );
    // With rclone ≥ 1.73 on the NAS the same key is fine.
    let mut modern = inputs(&setup, &key);
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
async fn wrong_and_deleted_keys_fail_sign_in() {
    let setup = compliant().await;
    let mut wrong = setup.key.clone();
    wrong.secret = "not-the-key".into();
    let report = verify(&setup, &wrong).await;
    assert_status(
        &report,
        CheckId::KeyAuthorizes,
        None,
        Status::Fail,
        &wrong.id,
    );
    assert!(
        report.findings[1..]
            .iter()
            .all(|f| f.status == Status::Unknown),
        "{report:#?}"
    );
    // The SOP key deleted in B2 (through v3, where it was made).
    let body = json!({"applicationKeyId": setup.key.id});
    setup
        .model
        .call(3, "b2_delete_key", &setup.admin, body)
        .await
        .ok();
    let report = verify(&setup, &setup.key).await;
    assert_status(
        &report,
        CheckId::KeyAuthorizes,
        None,
        Status::Fail,
        "Cloud Sync cannot run",
    );
}

#[tokio::test]
async fn key_scope_unrestricted_or_elsewhere() {
    let setup = compliant().await;
    // Not restricted to any bucket: scope fails, the rest is still checked.
    let wide = setup
        .model
        .key(3, &setup.admin, "wide", SOP_CAPABILITIES, None)
        .await;
    let report = verify(&setup, &wide).await;
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

    // Restricted to another bucket of the account: B2 refuses to show ours.
    let other_id = setup
        .model
        .sop_bucket(&setup.admin, "truenas-someone-else")
        .await;
    let elsewhere = setup
        .model
        .key(
            3,
            &setup.admin,
            "elsewhere",
            SOP_CAPABILITIES,
            Some(&[&other_id]),
        )
        .await;
    let report = verify(&setup, &elsewhere).await;
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
async fn missing_read_capabilities_are_unknown_not_fail() {
    let setup = compliant().await;
    let caps: Vec<&str> = SOP_CAPABILITIES
        .iter()
        .copied()
        .filter(|c| *c != "readBucketEncryption" && *c != "readBucketRetentions")
        .collect();
    let key = scoped_key(&setup, &caps).await;
    let report = verify(&setup, &key).await;
    assert_status(
        &report,
        CheckId::BucketDefaultEncryption,
        None,
        Status::Unknown,
        "readBucketEncryption",
    );
    for id in [CheckId::BucketObjectLock, CheckId::BucketDefaultRetention] {
        assert_status(&report, id, None, Status::Unknown, "readBucketRetentions");
    }
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
async fn key_without_read_files_or_list_files() {
    let setup = compliant().await;
    let no_read: Vec<&str> = SOP_CAPABILITIES
        .iter()
        .copied()
        .filter(|c| *c != "readFiles")
        .collect();
    let key = scoped_key(&setup, &no_read).await;
    let report = verify(&setup, &key).await;
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

    let no_list: Vec<&str> = SOP_CAPABILITIES
        .iter()
        .copied()
        .filter(|c| *c != "listFiles")
        .collect();
    let key = scoped_key(&setup, &no_list).await;
    let report = verify(&setup, &key).await;
    for id in [CheckId::PoolEncryptionOn, CheckId::PoolArchiveExcluded] {
        assert_status(&report, id, Some("pool0"), Status::Unknown, "`listFiles`");
    }
}

#[tokio::test]
async fn bucket_without_object_lock_fails() {
    let setup = SopSetup::new(BUCKET, SOP_CAPABILITIES).await;
    // A second, SOP-less bucket: private, SSE-B2 by default, no lock, no lifecycle.
    let body = json!({"accountId": setup.admin.account_id, "bucketName": "truenas-no-lock-here", "bucketType": "allPrivate"});
    let created = setup
        .model
        .call(4, "b2_create_bucket", &setup.admin, body)
        .await
        .ok();
    let id = created["bucketId"].as_str().unwrap();
    let key = setup
        .model
        .key(3, &setup.admin, "no-lock", SOP_CAPABILITIES, Some(&[id]))
        .await;
    let mut inputs = inputs(&setup, &key);
    inputs.bucket = "truenas-no-lock-here".into();
    let report = b2::verify(&inputs, now()).await;
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
    assert_status(
        &report,
        CheckId::BucketLifecycle,
        None,
        Status::Fail,
        "no lifecycle rule",
    );
    // Backblaze's 2026 default: a new bucket gets SSE-B2 without asking.
    assert_status(
        &report,
        CheckId::BucketDefaultEncryption,
        None,
        Status::Pass,
        "",
    );
}

#[tokio::test]
async fn sop_deviations_in_bucket_settings_fail() {
    let setup = compliant().await;
    let model = &setup.model;
    let admin = &setup.admin;
    let update = |body: serde_json::Value| {
        let mut body = body;
        body["accountId"] = json!(admin.account_id);
        body["bucketId"] = json!(setup.bucket_id);
        model.call(4, "b2_update_bucket", admin, body)
    };
    update(json!({"bucketType": "allPublic", "lifecycleRules": []}))
        .await
        .ok();
    model
        .set_retention(admin, &setup.bucket_id, Some("governance"), 7)
        .await
        .ok();
    model.legacy_unencrypted_bucket(BUCKET).await;
    let report = verify(&setup, &setup.key).await;
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
    // Retention switched off altogether: still locked, but no default retention.
    model
        .set_retention(admin, &setup.bucket_id, None, 0)
        .await
        .ok();
    let report = verify(&setup, &setup.key).await;
    assert_status(&report, CheckId::BucketObjectLock, None, Status::Pass, "");
    assert_eq!(
        report
            .finding(CheckId::BucketDefaultRetention, None)
            .unwrap()
            .status,
        Status::Fail
    );
}

#[tokio::test]
async fn objects_stored_without_sse_fail() {
    let setup = compliant().await;
    setup
        .model
        .plant(
            BUCKET,
            &format!("{GUID}/pool0/docs/old.txt.bin"),
            &fake_b2::data("crypt-invoice.txt.bin"),
            "none",
        )
        .await;
    let report = verify(&setup, &setup.key).await;
    assert_status(
        &report,
        CheckId::ObjectsAtRestEncryption,
        None,
        Status::Fail,
        "without SSE-B2",
    );
}

#[tokio::test]
async fn plaintext_and_archive_objects_fail() {
    let setup = compliant().await;
    let model = &setup.model;
    model
        .plant(
            BUCKET,
            &format!("{GUID}/pool1/docs/invoice.txt"),
            &fake_b2::data("plain-invoice.txt"),
            "default",
        )
        .await;
    model
        .plant(
            BUCKET,
            &format!("{GUID}/pool0/Archive/2019/old.doc.bin"),
            &fake_b2::data("crypt-invoice.txt.bin"),
            "default",
        )
        .await;
    let report = verify(&setup, &setup.key).await;
    assert_status(
        &report,
        CheckId::PoolEncryptionOn,
        Some("pool0"),
        Status::Pass,
        "",
    );
    assert_status(
        &report,
        CheckId::PoolEncryptionOn,
        Some("pool1"),
        Status::Fail,
        "NOT encrypted",
    );
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
async fn empty_pool_folder_is_unknown_and_missing_bucket_fails() {
    let setup = SopSetup::new(BUCKET, SOP_CAPABILITIES).await;
    let report = verify(&setup, &setup.key).await;
    assert_status(
        &report,
        CheckId::PoolEncryptionOn,
        Some("pool0"),
        Status::Unknown,
        "run the first sync",
    );
    // An account-wide key looking for a bucket that does not exist.
    let wide = setup
        .model
        .key(3, &setup.admin, "wide", SOP_CAPABILITIES, None)
        .await;
    let mut inputs = inputs(&setup, &wide);
    inputs.bucket = "truenas-another-location".into();
    let report = b2::verify(&inputs, now()).await;
    assert_status(&report, CheckId::BucketFound, None, Status::Fail, "SOP 3.2");
}

#[tokio::test]
async fn expired_session_token_is_renewed_once() {
    let setup = compliant().await;
    let mut client = b2::api::Client::new(
        &setup.key.id,
        SecretString::from(setup.key.secret.clone()),
        b2::ClientOptions {
            api_base: setup.model.base.clone(),
            ..b2::ClientOptions::default()
        },
    )
    .unwrap();
    client.authorize().await.unwrap();
    assert_eq!(setup.model.expire_tokens(Some(&setup.key.id)).await, 1);
    let bucket = client.find_bucket(BUCKET).await.unwrap().unwrap();
    assert_eq!(bucket.id, setup.bucket_id);
    let statuses: Vec<u16> = setup
        .model
        .requests()
        .await
        .into_iter()
        .filter(|(_, path, _)| path.ends_with("b2_list_buckets"))
        .map(|(_, _, status)| status)
        .collect();
    assert_eq!(statuses, [401, 200]);
}
