//! The B2 model server itself, over HTTP: the rules it must get right for the provisioning
//! tool (issue 15) and the verifier — v1–v3 refusing multi-bucket keys, globally unique
//! bucket names, compliance retention that can only grow, lifecycle and SSE round trips,
//! B2's error shapes. Where a rule is one the shim adds to RawSimulator, the test names it.

use secrecy::SecretString;
use serde_json::json;
use truenas_agent::b2::api::{ApiError, Client, ClientOptions};

use crate::b2model::{B2Model, SOP_CAPABILITIES, sop_lifecycle};

const BUCKET: &str = "truenas-0f1e2d3c4b5a69788796a5b4c3d2e1f0";

#[tokio::test]
async fn v1_to_v3_refuse_multi_bucket_keys_and_accept_v3_single_bucket_keys() {
    let model = B2Model::start().await;
    let admin = model.admin().await;
    let bucket_id = model.sop_bucket(&admin, BUCKET).await;
    let ids: &[&str] = &[&bucket_id];
    let v3_key = model
        .key(3, &admin, "k-v3", SOP_CAPABILITIES, Some(ids))
        .await;
    let v4_multi = model
        .key(4, &admin, "k-v4", SOP_CAPABILITIES, Some(ids))
        .await;
    let v4_all = model
        .key(4, &admin, "k-v4-all", &["listBuckets"], None)
        .await;
    assert_eq!(v3_key.reply["bucketId"], bucket_id.as_str(), "v3 shape");
    assert!(v3_key.reply.get("bucketIds").is_none(), "{}", v3_key.reply);
    assert_eq!(v4_multi.reply["bucketIds"], json!([bucket_id]), "v4 shape");

    for version in 1..=3 {
        // A v4 key with bucketIds (even one bucket) is a multi-bucket key: refused.
        let refused = model
            .authorize_raw(version, &v4_multi.id, &v4_multi.secret)
            .await;
        refused.error(400, "bad_request");
        assert_eq!(
            refused.body["message"],
            format!("This request is not currently supported on API version number {version}")
        );
        // The v3-made single-bucket key, and a v4 key without bucket restriction, work.
        let ok = model
            .authorize_raw(version, &v3_key.id, &v3_key.secret)
            .await
            .ok();
        let legacy_bucket = if version == 3 {
            &ok["apiInfo"]["storageApi"]["bucketId"]
        } else {
            &ok["allowed"]["bucketId"]
        };
        assert_eq!(*legacy_bucket, bucket_id.as_str(), "v{version}: {ok}");
        model
            .authorize_raw(version, &v4_all.id, &v4_all.secret)
            .await
            .ok();
    }
    // v4 accepts all three and shows the restriction in `allowed.buckets`.
    for key in [&v3_key, &v4_multi, &v4_all] {
        model.authorize_raw(4, &key.id, &key.secret).await.ok();
    }
    let v4 = model.authorize(&v4_multi.id, &v4_multi.secret).await;
    assert_eq!(
        v4.reply["apiInfo"]["storageApi"]["allowed"]["buckets"],
        json!([{"id": bucket_id, "name": BUCKET}])
    );

    // The agent's own client sees the refusal as "unusable on this API version".
    let client = |key: &crate::b2model::Key| {
        Client::new(
            &key.id,
            SecretString::from(key.secret.clone()),
            ClientOptions {
                api_base: model.base.clone(),
                ..ClientOptions::default()
            },
        )
        .unwrap()
    };
    let err = client(&v4_multi).probe_v1().await.unwrap_err();
    assert!(
        matches!(err, ApiError::VersionUnsupported { .. }),
        "{err:?}"
    );
    client(&v3_key).probe_v1().await.unwrap();
}

#[tokio::test]
async fn list_and_delete_keys_split_by_api_version_as_documented() {
    let model = B2Model::start().await;
    let admin = model.admin().await;
    let bucket_id = model.sop_bucket(&admin, BUCKET).await;
    let ids: &[&str] = &[&bucket_id];
    let v3_key = model
        .key(3, &admin, "k-v3", &["listFiles"], Some(ids))
        .await;
    let v4_key = model
        .key(4, &admin, "k-v4", &["listFiles"], Some(ids))
        .await;
    let listed = |version| {
        let model = &model;
        let admin = &admin;
        async move {
            let body = json!({"accountId": admin.account_id});
            let keys = model.call(version, "b2_list_keys", admin, body).await.ok();
            keys["keys"]
                .as_array()
                .unwrap()
                .iter()
                .map(|k| k["applicationKeyId"].as_str().unwrap().to_owned())
                .collect::<Vec<_>>()
        }
    };
    // b2_list_keys doc: v4 lists only multi-bucket keys, v1–v3 only the others.
    assert_eq!(listed(3).await, std::slice::from_ref(&v3_key.id));
    assert_eq!(listed(4).await, std::slice::from_ref(&v4_key.id));
    // b2_delete_key doc: a multi-bucket key only through v4, and v4 only for those.
    let delete = |version, id: &str| {
        let body = json!({"applicationKeyId": id});
        model.call(version, "b2_delete_key", &admin, body)
    };
    delete(3, &v4_key.id).await.error(400, "bad_request");
    delete(4, &v3_key.id).await.error(400, "bad_request");
    delete(3, &v3_key.id).await.ok();
    delete(4, &v4_key.id).await.ok();
    assert!(listed(3).await.is_empty() && listed(4).await.is_empty());
    // A deleted key no longer signs in.
    model
        .authorize_raw(4, &v3_key.id, &v3_key.secret)
        .await
        .error(401, "unauthorized");
}

#[tokio::test]
async fn bucket_names_are_unique_across_accounts() {
    let model = B2Model::start().await;
    let admin = model.admin().await;
    model.create_sop_bucket(&admin, BUCKET).await;
    let other = model.new_account().await;
    assert_ne!(other.account_id, admin.account_id);
    let create = |session, name: &str| {
        let body =
            json!({"accountId": other.account_id, "bucketName": name, "bucketType": "allPrivate"});
        model.call(4, "b2_create_bucket", session, body)
    };
    create(&other, BUCKET)
        .await
        .error(400, "duplicate_bucket_name");
    // Same account, same name: also taken.
    let again =
        json!({"accountId": admin.account_id, "bucketName": BUCKET, "bucketType": "allPrivate"});
    model
        .call(4, "b2_create_bucket", &admin, again)
        .await
        .error(400, "duplicate_bucket_name");
    // The other account cannot see or change the first account's bucket.
    let look = json!({"accountId": other.account_id, "bucketName": BUCKET});
    let seen = model.call(4, "b2_list_buckets", &other, look).await.ok();
    assert_eq!(seen["buckets"], json!([]));
    // Names: 6–63 characters, no "b2-" prefix (b2_create_bucket doc).
    for bad in ["short", "b2-reserved-name", &"x".repeat(64)] {
        create(&other, bad).await.error(400, "bad_request");
    }
    create(&other, "truenas-other-location").await.ok();
}

#[tokio::test]
async fn compliance_retention_can_only_grow_and_object_lock_never_turns_off() {
    let model = B2Model::start().await;
    let admin = model.admin().await;
    let bucket_id = model.sop_bucket(&admin, BUCKET).await;
    // An upload gets the bucket's default retention (compliance, 14 days from upload).
    let file = model
        .upload(&admin, &bucket_id, "guid/pool0/a.txt.bin", b"locked", &[])
        .await
        .ok();
    let retention = &file["fileRetention"]["value"];
    assert_eq!(retention["mode"], "compliance", "{file}");
    let until = retention["retainUntilTimestamp"].as_i64().unwrap();
    let uploaded = file["uploadTimestamp"].as_i64().unwrap();
    assert_eq!(until - uploaded, 14 * 86_400_000);
    let file_ref = json!({"fileId": file["fileId"], "fileName": "guid/pool0/a.txt.bin"});
    let set = |mode: Option<&str>, until: i64, bypass: bool| {
        let mut body = file_ref.clone();
        body["fileRetention"] = json!({"mode": mode, "retainUntilTimestamp": until});
        body["bypassGovernance"] = json!(bypass);
        model.call(4, "b2_update_file_retention", &admin, body)
    };
    // Shorter, removed, or weakened to governance: refused, even with bypassGovernance
    // and the master key.
    set(Some("compliance"), until - 86_400_000, true)
        .await
        .error(403, "access_denied");
    set(None, 0, true).await.error(403, "access_denied");
    set(Some("governance"), until, true)
        .await
        .error(403, "access_denied");
    // Longer: allowed.
    set(Some("compliance"), until + 86_400_000, false)
        .await
        .ok();
    // The locked version cannot be deleted.
    model
        .call(4, "b2_delete_file_version", &admin, file_ref.clone())
        .await
        .error(403, "access_denied");
    // Object Lock cannot be turned off again.
    let off =
        json!({"accountId": admin.account_id, "bucketId": bucket_id, "fileLockEnabled": false});
    model
        .call(4, "b2_update_bucket", &admin, off)
        .await
        .error(400, "file_lock_conflict");

    // Governance, by contrast, can be shortened with bypassGovernance and the capability.
    model
        .set_retention(&admin, &bucket_id, Some("governance"), 7)
        .await
        .ok();
    let gov = model
        .upload(&admin, &bucket_id, "guid/pool0/b.txt.bin", b"gov", &[])
        .await
        .ok();
    let gov_until = gov["fileRetention"]["value"]["retainUntilTimestamp"]
        .as_i64()
        .unwrap();
    let shorten = |bypass: bool| {
        let body = json!({
            "fileId": gov["fileId"], "fileName": "guid/pool0/b.txt.bin",
            "fileRetention": {"mode": "governance", "retainUntilTimestamp": gov_until - 86_400_000},
            "bypassGovernance": bypass,
        });
        model.call(4, "b2_update_file_retention", &admin, body)
    };
    shorten(false).await.error(403, "access_denied");
    shorten(true).await.ok();
}

#[tokio::test]
async fn default_retention_needs_object_lock_and_the_capability() {
    let model = B2Model::start().await;
    let admin = model.admin().await;
    let body =
        json!({"accountId": admin.account_id, "bucketName": BUCKET, "bucketType": "allPrivate"});
    let bucket = model.call(4, "b2_create_bucket", &admin, body).await.ok();
    let bucket_id = bucket["bucketId"].as_str().unwrap();
    // b2_update_bucket doc: a default retention needs a File Lock-enabled bucket...
    model
        .set_retention(&admin, bucket_id, Some("compliance"), 14)
        .await
        .error(400, "bad_request");
    // ... and writeBucketRetentions (a key with writeBuckets only is refused).
    let writer = model
        .key(
            3,
            &admin,
            "writer",
            &["listBuckets", "writeBuckets"],
            Some(&[bucket_id]),
        )
        .await;
    let writer = model.authorize(&writer.id, &writer.secret).await;
    let lock =
        json!({"accountId": admin.account_id, "bucketId": bucket_id, "fileLockEnabled": true});
    model
        .call(4, "b2_update_bucket", &writer, lock.clone())
        .await
        .error(401, "unauthorized");
    // Periods: 1–3000 days (Object Lock doc).
    model.call(4, "b2_update_bucket", &admin, lock).await.ok();
    model
        .set_retention(&admin, bucket_id, Some("compliance"), 3001)
        .await
        .error(400, "bad_request");
    let locked = model
        .set_retention(&admin, bucket_id, Some("compliance"), 14)
        .await
        .ok();
    assert_eq!(
        locked["fileLockConfiguration"]["value"],
        json!({"isFileLockEnabled": true, "defaultRetention": {"mode": "compliance", "period": {"duration": 14, "unit": "days"}}})
    );
}

#[tokio::test]
async fn lifecycle_and_encryption_round_trip() {
    let model = B2Model::start().await;
    let admin = model.admin().await;
    let created = model.create_sop_bucket(&admin, BUCKET).await;
    let bucket_id = created["bucketId"].as_str().unwrap();
    assert_eq!(created["lifecycleRules"], sop_lifecycle());
    assert_eq!(
        created["defaultServerSideEncryption"],
        json!({"isClientAuthorizedToRead": true, "value": {"mode": "SSE-B2", "algorithm": "AES256"}})
    );
    assert_eq!(created["bucketType"], "allPrivate");
    let revision = created["revision"].as_i64().unwrap();

    // Replace the lifecycle rules; read them back through b2_list_buckets.
    let rules = json!([
        {"fileNamePrefix": "a/", "daysFromHidingToDeleting": 7, "daysFromUploadingToHiding": null},
        {"fileNamePrefix": "b/", "daysFromHidingToDeleting": 1, "daysFromUploadingToHiding": 30}
    ]);
    let body =
        json!({"accountId": admin.account_id, "bucketId": bucket_id, "lifecycleRules": rules});
    let updated = model.call(4, "b2_update_bucket", &admin, body).await.ok();
    assert_eq!(updated["revision"].as_i64().unwrap(), revision + 1);
    let find = json!({"accountId": admin.account_id, "bucketName": BUCKET, "bucketTypes": ["all"]});
    let listed = model
        .call(4, "b2_list_buckets", &admin, find.clone())
        .await
        .ok();
    assert_eq!(listed["buckets"][0]["lifecycleRules"], rules);
    // Overlapping prefixes, no day count, zero days: refused (lifecycle rules doc).
    for bad in [
        json!([{"fileNamePrefix": "", "daysFromHidingToDeleting": 30}, {"fileNamePrefix": "x/", "daysFromHidingToDeleting": 1}]),
        json!([{"fileNamePrefix": "", "daysFromHidingToDeleting": null, "daysFromUploadingToHiding": null}]),
        json!([{"fileNamePrefix": "", "daysFromHidingToDeleting": 0}]),
    ] {
        let body =
            json!({"accountId": admin.account_id, "bucketId": bucket_id, "lifecycleRules": bad});
        model
            .call(4, "b2_update_bucket", &admin, body)
            .await
            .error(400, "bad_request");
    }

    // Backblaze's 2026 model: default encryption can only be SSE-B2 ("none" is refused).
    let none = json!({"accountId": admin.account_id, "bucketId": bucket_id, "defaultServerSideEncryption": {"mode": "none"}});
    model
        .call(4, "b2_update_bucket", &admin, none)
        .await
        .error(400, "bad_request");
    // A key without readBucketEncryption / readBucketRetentions sees neither value.
    let blind = model
        .key(3, &admin, "blind", &["listBuckets"], Some(&[bucket_id]))
        .await;
    let blind = model.authorize(&blind.id, &blind.secret).await;
    let seen = model.call(4, "b2_list_buckets", &blind, find).await.ok();
    assert_eq!(
        seen["buckets"][0]["defaultServerSideEncryption"]["isClientAuthorizedToRead"],
        false
    );
    assert_eq!(
        seen["buckets"][0]["fileLockConfiguration"],
        json!({"isClientAuthorizedToRead": false, "value": null})
    );

    // Objects: SSE-B2 from the bucket default shows in the listing and the download
    // header; an object written when the bucket had no default SSE shows neither.
    model
        .upload(&admin, bucket_id, "enc.bin", b"encrypted at rest", &[])
        .await
        .ok();
    model.legacy_unencrypted_bucket(BUCKET).await;
    model
        .plant(BUCKET, "plain.bin", b"not at rest", "default")
        .await;
    let list = json!({"bucketId": bucket_id, "prefix": "", "maxFileCount": 10});
    let files = model.call(4, "b2_list_file_names", &admin, list).await.ok();
    let modes: Vec<_> = files["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["fileName"].as_str().unwrap().to_owned(),
                f["serverSideEncryption"]["mode"].clone(),
            )
        })
        .collect();
    assert_eq!(
        modes,
        [
            ("enc.bin".to_owned(), json!("SSE-B2")),
            ("plain.bin".to_owned(), json!("none"))
        ]
    );
    let (status, headers, body) = model
        .download(&admin, BUCKET, "enc.bin", Some("bytes=0-8"))
        .await;
    assert_eq!((status, body.as_slice()), (206, &b"encrypted"[..]));
    assert_eq!(headers["x-bz-server-side-encryption"], "AES256");
    assert_eq!(headers["content-range"], "bytes 0-8/17");
    let (status, headers, _) = model.download(&admin, BUCKET, "plain.bin", None).await;
    assert_eq!(status, 200);
    assert!(!headers.contains_key("x-bz-server-side-encryption"));
}

#[tokio::test]
async fn errors_have_b2_shapes_and_codes() {
    let model = B2Model::start().await;
    let admin = model.admin().await;
    let bucket_id = model.sop_bucket(&admin, BUCKET).await;
    model
        .authorize_raw(4, &model.admin_key_id, "wrong")
        .await
        .error(401, "unauthorized");
    let stranger = crate::b2model::Session {
        token: "not-a-token".into(),
        ..admin.clone()
    };
    let find = json!({"accountId": admin.account_id, "bucketName": BUCKET});
    model
        .call(4, "b2_list_buckets", &stranger, find.clone())
        .await
        .error(401, "bad_auth_token");
    // An expired token: 401 expired_auth_token; signing in again works.
    assert!(model.expire_tokens(None).await >= 1);
    model
        .call(4, "b2_list_buckets", &admin, find.clone())
        .await
        .error(401, "expired_auth_token");
    let admin = model.admin().await;
    model.call(4, "b2_list_buckets", &admin, find).await.ok();
    // A restricted key naming no bucket, or another one: 401 unauthorized.
    let scoped = model
        .key(
            3,
            &admin,
            "scoped",
            &["listBuckets", "listFiles", "readFiles"],
            Some(&[&bucket_id]),
        )
        .await;
    let scoped = model.authorize(&scoped.id, &scoped.secret).await;
    let all = json!({"accountId": admin.account_id});
    model
        .call(4, "b2_list_buckets", &scoped, all)
        .await
        .error(401, "unauthorized");
    // maxFileCount beyond 10000: out_of_range. A missing file: 404 not_found; a range
    // past the end: 416.
    let list = json!({"bucketId": bucket_id, "maxFileCount": 10_001});
    model
        .call(4, "b2_list_file_names", &scoped, list)
        .await
        .error(400, "out_of_range");
    let (status, _, body) = model.download(&scoped, BUCKET, "nothing", None).await;
    let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!((status, body["code"].as_str()), (404, Some("not_found")));
    model.plant(BUCKET, "tiny", b"abc", "default").await;
    let (status, _, _) = model
        .download(&scoped, BUCKET, "tiny", Some("bytes=3-10"))
        .await;
    assert_eq!(status, 416);
}
