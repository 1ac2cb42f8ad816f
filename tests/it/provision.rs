//! `truenas-central provision | escrow | rotate-key` (issue 15) through the binary,
//! against Backblaze's own model of B2 (`tests/b2model/`), the reference central server
//! and — end to end — the simulated TrueNAS with the agent daemon converging to what
//! provisioning published.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::task::LocalSet;
use truenas_agent::middleware::ApiFlavor;
use truenas_central::db::{Database, token_hash};
use truenas_sim::scenario::B2Account;

use crate::b2model::B2Model;
use crate::central_fixture::{
    Central, DataDir, LogCapture, database_args, engine, held, signing_key,
};
use crate::e2e_fixture::{AgentFiles, Nas, Running, applied, test_options, wait_for_report};

const ORG: &str = "3f2b8c1e-9d4a-4e6b-8a7c-1d2e3f4a5b6c";
const LOCATION: &str = "a1b2c3d4-e5f6-4071-8293-a4b5c6d7e8f9";
const BUCKET: &str = "truenas-a1b2c3d4e5f640718293a4b5c6d7e8f9";
const NEW_LOCATION: &str = "0f0e0d0c-0b0a-4908-8706-050403020100";
const NEW_BUCKET: &str = "truenas-0f0e0d0c0b0a49088706050403020100";
const WRITES: [&str; 4] = [
    "b2_create_bucket",
    "b2_update_bucket",
    "b2_create_key",
    "b2_delete_key",
];

/// One run of the binary.
struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Run {
    fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}\n{}", self.stdout, self.stderr))
    }
}

async fn central(args: &[&str]) -> Run {
    let out = tokio::process::Command::new(crate::support::bin(crate::support::CENTRAL))
        .args(database_args(args))
        .env_remove("TRUENAS_AGENT_CONFIG")
        .env_remove(truenas_central::cli::DATABASE_ENV)
        .output()
        .await
        .unwrap();
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// The admin key file (mode 0600), as the technician keeps it.
fn admin_key_file(dir: &Path, model: &B2Model) -> PathBuf {
    let path = dir.join("b2-admin.key");
    let line = format!("{}:{}\n", model.admin_key_id, model.admin_key);
    truenas_agent::fs::write_atomic(&path, line.as_bytes(), 0o600).unwrap();
    path
}

/// `provision` with the contract's flags for `location`.
async fn provision(
    data: &Path,
    key: &Path,
    model: &B2Model,
    location: &str,
    extra: &[&str],
) -> Run {
    let mut args = vec![
        "provision",
        "--dir",
        data.to_str().unwrap(),
        "--device",
        "nas-01",
        "--org-uuid",
        ORG,
        "--location-uuid",
        location,
        "--location-name",
        "Main Office",
        "--root-pool",
        "pool0",
        "--pools",
        "pool0,pool1",
        "--uplink-mbps",
        "100",
        "--business-hours",
        "08:00-18:00",
        "--b2-admin-key-file",
        key.to_str().unwrap(),
        "--b2-api",
        &model.base,
        "--json",
    ];
    args.extend_from_slice(extra);
    central(&args).await
}

async fn escrow(data: &Path, show: bool) -> Value {
    let mut args = vec![
        "escrow",
        "--dir",
        data.to_str().unwrap(),
        "--device",
        "nas-01",
        "--json",
    ];
    if show {
        args.push("--show-secrets");
    }
    let run = central(&args).await;
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    run.json()
}

/// Every file under `dir` (relative path → bytes).
fn snapshot(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut out = BTreeMap::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            for (p, b) in snapshot(&path) {
                out.insert(Path::new(entry.file_name().as_os_str()).join(p), b);
            }
        } else {
            out.insert(
                PathBuf::from(entry.file_name()),
                crate::support::read_file(&path).unwrap(),
            );
        }
    }
    out
}

/// [`snapshot`] without the SQLite files (a reader may touch `central.db-shm`; what the
/// database holds is compared through `DataDir::logical_dump`).
fn snapshot_outside_db(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut files = snapshot(dir);
    files.retain(|p, _| !p.to_string_lossy().starts_with("central.db"));
    files
}

/// Writing B2 calls the model saw since request number `from`.
async fn b2_writes_since(model: &B2Model, from: usize) -> Vec<String> {
    model
        .requests()
        .await
        .into_iter()
        .skip(from)
        .map(|(_, path, _)| path)
        .filter(|p| WRITES.iter().any(|w| p.ends_with(w)))
        .collect()
}

fn assert_absent(label: &str, haystack: &str, secrets: &[String]) {
    for s in secrets {
        assert!(
            !haystack.contains(s.as_str()),
            "a secret appears in {label}"
        );
    }
}

fn assert_no_secret_in_files(dir: &Path, secrets: &[String]) {
    for (path, bytes) in snapshot(dir) {
        assert_absent(
            &path.display().to_string(),
            &String::from_utf8_lossy(&bytes),
            secrets,
        );
    }
}

/// The secrets of an `escrow --show-secrets --json` view.
fn escrow_secrets(e: &Value) -> Vec<String> {
    let mut out: Vec<String> = [
        &e["backup"]["b2_application_key"],
        &e["backup"]["encryption_password"],
        &e["backup"]["encryption_salt"],
        &e["nms"]["auth_password"],
        &e["nms"]["privacy_passphrase"],
    ]
    .iter()
    .map(|v| v.as_str().unwrap().to_owned())
    .collect();
    for p in e["previous_destinations"].as_array().unwrap() {
        out.push(p["encryption_password"].as_str().unwrap().to_owned());
        out.push(p["encryption_salt"].as_str().unwrap().to_owned());
    }
    out
}

/// The sim's B2 accepts `key_id` for `bucket` (what the real B2 would say for the key).
fn nas_knows_key(nas: &Nas, key_id: &str, bucket: &str) {
    nas.sim.update_state(|s| {
        s.b2_accounts.push(B2Account {
            account: key_id.to_owned(),
            valid: true,
            buckets: Some(vec![bucket.to_owned()]),
        });
    });
}

fn sim_task_secrets(nas: &Nas) -> Vec<(String, String, String, i64)> {
    let tasks = nas
        .sim
        .admin_call("cloudsync.query", &[])
        .expect("cloudsync.query");
    tasks
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["attributes"]["bucket"].as_str().unwrap().to_owned(),
                t["encryption_password"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
                t["encryption_salt"].as_str().unwrap_or_default().to_owned(),
                t["id"].as_i64().unwrap(),
            )
        })
        .collect()
}

#[tokio::test]
async fn provision_end_to_end_converges_and_escrow_shows_the_record() {
    LocalSet::new().run_until(Box::pin(end_to_end())).await;
}

async fn end_to_end() {
    let logs = LogCapture::start();
    let model = B2Model::start().await;
    let central_srv = Central::start(signing_key(1)).await;
    let nas = Nas::start(ApiFlavor::V25_10).await;
    let work = tempfile::tempdir().unwrap();
    let key = admin_key_file(work.path(), &model);
    let data = central_srv.dir.path().to_owned();
    let token = work.path().join("nas-01.token");
    let token_arg = ["--token-out", token.to_str().unwrap()];

    // A dry run changes nothing, in B2, in DIR or in the database.
    let before_dir = snapshot_outside_db(&data);
    let before_db = central_srv.dir.logical_dump().await;
    let from = model.requests().await.len();
    let mut dry = token_arg.to_vec();
    dry.extend(["--dry-run", "--confirm-compliance-lock"]);
    let run = provision(&data, &key, &model, LOCATION, &dry).await;
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    let plan = run.json();
    assert_eq!(plan["outcome"], "done");
    assert_eq!(plan["plan"]["bucket"]["action"], "create");
    assert_eq!(plan["plan"]["key"]["action"], "create");
    assert_eq!(plan["plan"]["device"]["action"], "register");
    assert_eq!(plan["plan"]["document"]["revision"], 1);
    assert!(b2_writes_since(&model, from).await.is_empty());
    assert_eq!(
        snapshot_outside_db(&data),
        before_dir,
        "a dry run wrote into DIR"
    );
    assert_eq!(
        central_srv.dir.logical_dump().await,
        before_db,
        "a dry run wrote into the database"
    );
    assert!(!token.exists());

    // The real run.
    let mut real = token_arg.to_vec();
    real.push("--confirm-compliance-lock");
    let run = provision(&data, &key, &model, LOCATION, &real).await;
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    let report = run.json();
    assert_eq!(report["outcome"], "done", "{report}");
    let mut outputs = format!("{}{}", run.stdout, run.stderr);
    let writes = b2_writes_since(&model, from).await;
    assert_eq!(
        writes,
        [
            "/b2api/v4/b2_create_bucket",
            "/b2api/v4/b2_update_bucket",
            "/b2api/v3/b2_create_key"
        ],
        "the bucket through v4, the key through v3"
    );

    // B2 holds the SOP bucket, and a key v1 accepts, restricted to it.
    let admin = model.admin().await;
    let buckets = model
        .call(
            4,
            "b2_list_buckets",
            &admin,
            json!({"accountId": admin.account_id, "bucketName": BUCKET}),
        )
        .await
        .ok();
    let b = &buckets["buckets"][0];
    assert_eq!(b["bucketType"], "allPrivate");
    assert_eq!(
        b["fileLockConfiguration"]["value"]["defaultRetention"],
        json!({"mode": "compliance", "period": {"duration": 14, "unit": "days"}})
    );
    assert_eq!(
        b["defaultServerSideEncryption"]["value"]["mode"],
        json!("SSE-B2")
    );
    assert_eq!(b["lifecycleRules"], crate::b2model::sop_lifecycle());

    let record = escrow(&data, true).await;
    let key_id = record["backup"]["b2_key_id"].as_str().unwrap().to_owned();
    let app_key = record["backup"]["b2_application_key"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(record["backup"]["bucket_name"], BUCKET);
    assert_eq!(
        record["backup"]["label"],
        "TrueNAS Cloud Backup — Main Office"
    );
    assert!(
        record["backup"]["device_guid"].is_null(),
        "not reported yet"
    );
    let v1 = model.authorize_raw(1, &key_id, &app_key).await.ok();
    assert_eq!(
        v1["allowed"]["bucketId"], b["bucketId"],
        "v1 accepts the key, one bucket"
    );
    let mut caps: Vec<String> =
        serde_json::from_value(v1["allowed"]["capabilities"].clone()).unwrap();
    caps.sort();
    let mut sop: Vec<String> = crate::b2model::SOP_CAPABILITIES
        .iter()
        .map(|c| (*c).to_owned())
        .collect();
    sop.sort();
    assert_eq!(caps, sop, "exactly the SOP 4.3 capabilities");
    let password = record["backup"]["encryption_password"].as_str().unwrap();
    assert_eq!(
        base64::Engine::decode(&base64::engine::general_purpose::STANDARD, password)
            .unwrap()
            .len(),
        32
    );
    let snmp_user = record["nms"]["snmp_username"].as_str().unwrap().to_owned();
    assert_eq!(snmp_user.len(), 12);

    // The NAS: the sim's B2 knows the key as B2 does; the agent uses the provisioned token.
    nas_knows_key(&nas, &key_id, BUCKET);
    let files = AgentFiles::new(&central_srv.url(), &[&central_srv.key], &nas.url(), 300);
    std::fs::copy(&token, files.token_path()).unwrap();
    let agent = Running::start(&files.config, test_options(&files.config)).await;
    let done = wait_for_report(&central_srv, "revision 1 applied", applied(1)).await;
    let guid = done
        .device
        .guid
        .clone()
        .expect("the agent reports its GUID");

    // The middleware holds exactly the escrowed secrets.
    let creds = nas
        .sim
        .admin_call("cloudsync.credentials.query", &[])
        .unwrap();
    let cred = &creds[0];
    assert_eq!(cred["name"], BUCKET);
    assert_eq!(cred["provider"]["account"], key_id.as_str());
    assert_eq!(cred["provider"]["key"], app_key.as_str());
    let tasks = sim_task_secrets(&nas);
    assert_eq!(tasks.len(), 2);
    for (bucket, pw, salt, _) in &tasks {
        assert_eq!(bucket, BUCKET);
        assert_eq!(pw, password);
        assert_eq!(salt, record["backup"]["encryption_salt"].as_str().unwrap());
    }
    let snmp = nas.sim.admin_call("snmp.config", &[]).unwrap();
    assert_eq!(snmp["v3_username"], snmp_user.as_str());

    // Escrow now carries the reported GUID; without --show-secrets it hides them.
    let record = escrow(&data, true).await;
    assert_eq!(record["backup"]["device_guid"], guid.as_str());
    let hidden = escrow(&data, false).await;
    assert_eq!(hidden["backup"]["b2_key_id"], key_id.as_str());
    let secrets = {
        let mut s = escrow_secrets(&record);
        s.push(model.admin_key.clone());
        s.push(std::fs::read_to_string(&token).unwrap().trim().to_owned());
        s
    };
    assert_absent(
        "escrow without --show-secrets",
        &hidden.to_string(),
        &secrets,
    );

    // Re-run with the same flags: nothing to do, nothing written anywhere.
    let db_before = central_srv.dir.logical_dump().await;
    let from = model.requests().await.len();
    let run = provision(&data, &key, &model, LOCATION, &real).await;
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    assert_eq!(run.json()["outcome"], "nothing_to_do", "{}", run.stdout);
    outputs.push_str(&run.stdout);
    outputs.push_str(&run.stderr);
    assert!(b2_writes_since(&model, from).await.is_empty());
    let db_after = central_srv.dir.logical_dump().await;
    for table in [
        "devices",
        "device_tokens",
        "documents",
        "credentials",
        "meta",
    ] {
        assert!(
            !db_after[table].is_empty() || table == "meta",
            "{table} is empty"
        );
        assert_eq!(
            db_before[table], db_after[table],
            "{table} changed on a no-op re-run"
        );
    }

    // Canary scan: no secret in outputs, logs, or any file of DIR (documents and
    // secrets are sealed).
    agent.stop().await;
    assert_absent("provision outputs", &outputs, &secrets);
    assert_absent("logs", &logs.text(), &secrets);
    assert_no_secret_in_files(&data, &secrets);
    assert_absent(
        "the database",
        &String::from_utf8_lossy(&central_srv.dir.raw_dump()),
        &secrets,
    );
}

#[tokio::test]
async fn moved_device_and_key_rotation_end_to_end() {
    LocalSet::new()
        .run_until(Box::pin(moved_and_rotated()))
        .await;
}

async fn moved_and_rotated() {
    let model = B2Model::start().await;
    let central_srv = Central::start(signing_key(1)).await;
    let nas = Nas::start(ApiFlavor::V25_10).await;
    let work = tempfile::tempdir().unwrap();
    let key = admin_key_file(work.path(), &model);
    let data = central_srv.dir.path().to_owned();
    let token = work.path().join("nas-01.token");
    let first = [
        "--token-out",
        token.to_str().unwrap(),
        "--confirm-compliance-lock",
    ];
    let run = provision(&data, &key, &model, LOCATION, &first).await;
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    let old = escrow(&data, true).await;
    let old_key = old["backup"]["b2_key_id"].as_str().unwrap().to_owned();
    nas_knows_key(&nas, &old_key, BUCKET);
    let files = AgentFiles::new(&central_srv.url(), &[&central_srv.key], &nas.url(), 300);
    std::fs::copy(&token, files.token_path()).unwrap();
    let agent = Running::start(&files.config, test_options(&files.config)).await;
    wait_for_report(&central_srv, "revision 1 applied", applied(1)).await;
    // The tasks upload data: from now on a password change would be a re-key.
    for (_, _, _, id) in sim_task_secrets(&nas) {
        nas.sim.run_cloud_sync(id).unwrap();
    }
    for _ in 0..200 {
        let tasks = nas.sim.admin_call("cloudsync.query", &[]).unwrap();
        let ran = tasks
            .as_array()
            .unwrap()
            .iter()
            .all(|t| t["job"]["state"] == "SUCCESS");
        if ran {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // The device moves to another location: new bucket, new key, new encryption.
    let run = provision(
        &data,
        &key,
        &model,
        NEW_LOCATION,
        &["--confirm-compliance-lock"],
    )
    .await;
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    let report = run.json();
    assert_eq!(report["plan"]["device"]["moved_from"], BUCKET);
    assert_eq!(report["plan"]["secrets"]["encryption"], "generate");
    assert_eq!(report["plan"]["secrets"]["snmp"], "keep");
    let moved = escrow(&data, true).await;
    assert_eq!(moved["backup"]["bucket_name"], NEW_BUCKET);
    let prev = &moved["previous_destinations"][0];
    assert_eq!(prev["bucket_name"], BUCKET);
    assert_eq!(
        prev["encryption_password"],
        old["backup"]["encryption_password"]
    );
    let new_key = moved["backup"]["b2_key_id"].as_str().unwrap().to_owned();
    let new_password = moved["backup"]["encryption_password"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_ne!(
        new_password,
        old["backup"]["encryption_password"].as_str().unwrap()
    );
    nas_knows_key(&nas, &new_key, NEW_BUCKET);
    // The agent takes the new destination (a new target, not a refused re-key).
    wait_for_report(&central_srv, "revision 2 applied", applied(2)).await;
    for (bucket, pw, _, _) in sim_task_secrets(&nas) {
        assert_eq!(bucket, NEW_BUCKET);
        assert_eq!(pw, new_password);
    }

    // Key rotation: new key published; the old one deleted only after the device's
    // report says the new revision applied. The NAS is offline at first: the wait times
    // out (exit 6) and both keys stay valid.
    agent.stop().await;
    let moved_secret = moved["backup"]["b2_application_key"]
        .as_str()
        .unwrap()
        .to_owned();
    let rotate = |wait: &'static str| {
        let data = data.clone();
        let key = key.clone();
        let base = model.base.clone();
        async move {
            central(&[
                "rotate-key",
                "--dir",
                data.to_str().unwrap(),
                "--device",
                "nas-01",
                "--b2-admin-key-file",
                key.to_str().unwrap(),
                "--b2-api",
                &base,
                "--wait-secs",
                wait,
                "--json",
            ])
            .await
        }
    };
    let run = rotate("1").await;
    assert_eq!(run.code, 6, "{}{}", run.stdout, run.stderr);
    assert_eq!(run.json()["outcome"], "pending");
    let admin = model.admin().await;
    let keys_of_bucket = || {
        let admin = admin.clone();
        let model = &model;
        async move {
            let keys = model
                .call(
                    3,
                    "b2_list_keys",
                    &admin,
                    json!({"accountId": admin.account_id}),
                )
                .await
                .ok();
            let mut ids: Vec<String> = keys["keys"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|k| k["keyName"] == NEW_BUCKET)
                .map(|k| k["applicationKeyId"].as_str().unwrap().to_owned())
                .collect();
            ids.sort();
            ids
        }
    };
    let both = keys_of_bucket().await;
    assert_eq!(both.len(), 2, "old and new key: {both:?}");
    let rotated_key = both.iter().find(|k| **k != new_key).unwrap().clone();
    assert_eq!(
        model.authorize_raw(1, &new_key, &moved_secret).await.status,
        200,
        "the old key stays valid until the device applied the new one"
    );
    // The NAS comes back; its B2 knows the new key. A second run resumes the rotation.
    nas_knows_key(&nas, &rotated_key, NEW_BUCKET);
    let agent = Running::start(&files.config, test_options(&files.config)).await;
    let run = rotate("120").await;
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    let out = run.json();
    assert_eq!(out["outcome"], "done", "{out}");
    assert!(
        out["notes"][0].as_str().unwrap().contains("resuming"),
        "{out}"
    );
    let report = wait_for_report(&central_srv, "revision 3 applied", applied(3)).await;
    assert_eq!(report.config.revision, Some(3));
    // The old key is gone from B2 (no third key was made); the new one is in the credential.
    assert_eq!(keys_of_bucket().await, std::slice::from_ref(&rotated_key));
    let gone = model.authorize_raw(1, &new_key, &moved_secret).await;
    assert_eq!(
        gone.status, 401,
        "the replaced key was deleted: {}",
        gone.body
    );
    let creds = nas
        .sim
        .admin_call("cloudsync.credentials.query", &[])
        .unwrap();
    assert_eq!(creds[0]["provider"]["account"], rotated_key.as_str());
    let after = escrow(&data, true).await;
    assert_eq!(after["backup"]["b2_key_id"], rotated_key.as_str());
    agent.stop().await;
}

#[tokio::test]
async fn conflicts_and_bad_input_stop_with_nothing_changed() {
    let model = B2Model::start().await;
    let work = tempfile::tempdir().unwrap();
    let key = admin_key_file(work.path(), &model);
    let data = work.path().join("central");
    let admin = model.admin().await;

    // 1. Compliance not confirmed, new bucket: stops before creating anything.
    let from = model.requests().await.len();
    let run = provision(&data, &key, &model, LOCATION, &[]).await;
    assert_eq!(run.code, 3, "{}{}", run.stdout, run.stderr);
    let out = run.json();
    assert_eq!(out["outcome"], "refused");
    assert_eq!(
        out["plan"]["bucket"]["compliance_lock"],
        "needs_confirmation"
    );
    let reason = out["reason"].as_str().unwrap();
    for word in [
        "COMPLIANCE",
        "14 days",
        BUCKET,
        "--confirm-compliance-lock",
        "nothing was changed",
        model.account_id.as_str(),
    ] {
        assert!(reason.contains(word), "{word} missing: {reason}");
    }
    assert!(b2_writes_since(&model, from).await.is_empty());
    assert!(!data.exists(), "DIR was created by a refused run");

    // 2. The bucket exists in this account with other settings: every difference listed.
    let other = "b7e1c2d3-0a4b-4c5d-8e6f-7a8b9c0d1e2f";
    let other_bucket = "truenas-b7e1c2d30a4b4c5d8e6f7a8b9c0d1e2f";
    let made = model
        .call(
            4,
            "b2_create_bucket",
            &admin,
            json!({"accountId": admin.account_id, "bucketName": other_bucket,
                   "bucketType": "allPublic", "fileLockEnabled": true}),
        )
        .await
        .ok();
    model
        .set_retention(
            &admin,
            made["bucketId"].as_str().unwrap(),
            Some("governance"),
            7,
        )
        .await
        .ok();
    let list = |name: &'static str| {
        let admin = admin.clone();
        let model = &model;
        async move {
            model
                .call(
                    4,
                    "b2_list_buckets",
                    &admin,
                    json!({"accountId": admin.account_id, "bucketName": name}),
                )
                .await
                .ok()
        }
    };
    let bucket_before = list(other_bucket).await;
    let from = model.requests().await.len();
    let run = provision(&data, &key, &model, other, &["--confirm-compliance-lock"]).await;
    assert_eq!(run.code, 3, "{}{}", run.stdout, run.stderr);
    let out = run.json();
    assert_eq!(out["plan"]["bucket"]["action"], "conflict");
    let differs: Vec<&str> = out["plan"]["bucket"]["settings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["status"] == "differs")
        .map(|s| s["setting"].as_str().unwrap())
        .collect();
    assert_eq!(
        differs,
        ["bucketType", "lifecycleRules", "defaultRetention"]
    );
    assert!(
        out["reason"]
            .as_str()
            .unwrap()
            .contains("governance, 7 days")
    );
    assert!(b2_writes_since(&model, from).await.is_empty());
    assert_eq!(list(other_bucket).await, bucket_before, "B2 unchanged");
    assert!(!data.exists(), "DIR unchanged");

    // 3. The name is taken by another B2 account: the SOP's troubleshooting advice.
    let taken = "c1d2e3f4-a5b6-4c7d-8e9f-0a1b2c3d4e5f";
    let taken_bucket = "truenas-c1d2e3f4a5b64c7d8e9f0a1b2c3d4e5f";
    let stranger = model.new_account().await;
    model.create_sop_bucket(&stranger, taken_bucket).await;
    let from = model.requests().await.len();
    let run = provision(&data, &key, &model, taken, &["--confirm-compliance-lock"]).await;
    assert_eq!(run.code, 3, "{}{}", run.stdout, run.stderr);
    let reason = run.json()["reason"].as_str().unwrap().to_owned();
    assert!(reason.contains("duplicate_bucket_name"), "{reason}");
    assert!(reason.contains("location UUID"), "{reason}");
    let writes = b2_writes_since(&model, from).await;
    assert_eq!(
        writes,
        ["/b2api/v4/b2_create_bucket"],
        "only the refused create"
    );
    assert!(
        list(taken_bucket).await["buckets"]
            .as_array()
            .unwrap()
            .is_empty()
    );
    assert!(!data.exists(), "DIR unchanged");

    // 4. Bad input: every problem at once, nothing read from B2.
    let loose = work.path().join("loose.key");
    truenas_agent::fs::write_atomic(&loose, b"id:key\n", 0o644).unwrap();
    let from = model.requests().await.len();
    let run = central(&[
        "provision",
        "--dir",
        data.to_str().unwrap(),
        "--device",
        "nas/01",
        "--org-uuid",
        "nope",
        "--location-uuid",
        "a1b2c3d4-e5f6-1071-8293-a4b5c6d7e8f9",
        "--pools",
        "pool0,boot-pool",
        "--business-hours",
        "8-18",
        "--b2-admin-key-file",
        loose.to_str().unwrap(),
        "--b2-api",
        "http://b2.example.com",
        "--json",
    ])
    .await;
    assert_eq!(run.code, 2, "{}{}", run.stdout, run.stderr);
    let fields: Vec<String> = run.json()["problems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["field"].as_str().unwrap().to_owned())
        .collect();
    for flag in [
        "--device",
        "--org-uuid",
        "--location-uuid",
        "--pools",
        "--business-hours",
        "--b2-admin-key-file",
        "--b2-api",
    ] {
        assert!(fields.iter().any(|f| f == flag), "{flag} not in {fields:?}");
    }
    let calls: Vec<String> = model
        .requests()
        .await
        .into_iter()
        .skip(from)
        .map(|(_, path, _)| path)
        .filter(|p| p.starts_with("/b2api/"))
        .collect();
    assert!(calls.is_empty(), "no B2 call on bad input: {calls:?}");
    assert!(!data.exists());

    // Text output names the exit code and the refusal.
    let run = central(&[
        "provision",
        "--dir",
        data.to_str().unwrap(),
        "--device",
        "nas-01",
        "--org-uuid",
        ORG,
        "--location-uuid",
        LOCATION,
        "--b2-admin-key-file",
        key.to_str().unwrap(),
        "--b2-api",
        &model.base,
        "--dry-run",
    ])
    .await;
    assert_eq!(run.code, 3);
    assert!(
        run.stdout.contains("compliance lock: needs_confirmation"),
        "{}",
        run.stdout
    );
    assert!(run.stdout.contains("result: refused"), "{}", run.stdout);
    assert!(!run.stdout.contains(&model.admin_key));
}

/// An old data directory (before the database) with a document from before at-rest
/// sealing: the first start seals it in place, imports it, binds the key beside DIR; a
/// copy of DIR without the key opens nothing.
#[tokio::test]
async fn plain_documents_are_sealed_and_a_copied_dir_leaks_nothing() {
    let work = tempfile::tempdir().unwrap();
    let data = tempfile::tempdir_in(work.path()).unwrap();
    let device = data.path().join("devices/nas-01");
    truenas_agent::fs::create_dir_all(&device, 0o700).unwrap();
    let hash = format!("{}\n", token_hash("tok"));
    truenas_agent::fs::write_atomic(&device.join("token.sha256"), hash.as_bytes(), 0o600).unwrap();
    // A document written before at-rest sealing existed (plain JSON with secrets).
    let doc = crate::central_fixture::document(4);
    let plain = serde_json::to_vec(&doc).unwrap();
    let path = device.join("config.json");
    truenas_agent::fs::write_atomic(&path, &plain, 0o600).unwrap();
    // The first start seals it in place and imports it.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let data = DataDir::adopt_as_is(engine(), data).await;
    let srv = Central::start_on(listener, data, signing_key(1)).await;
    assert!(
        truenas_central::crypto::is_sealed(&std::fs::read(&path).unwrap()),
        "the first start sealed the plain document in place"
    );
    let served = held(srv.db().document("nas-01")).await.unwrap().unwrap();
    assert_eq!(served.bytes, plain, "the same document, from the database");
    assert_eq!(served.revision, 4);
    let (data, _, _) = srv.stop().await;
    crate::support::assert_no_canary_in_dir(data.path());
    crate::support::assert_no_canary(
        "the data (files and database)",
        &String::from_utf8_lossy(&data.raw_dump()),
    );
    // The key was made beside DIR, not in it.
    let binding = truenas_central::at_rest::binding(data.path())
        .unwrap()
        .unwrap();
    assert!(
        !binding
            .key_file
            .starts_with(std::fs::canonicalize(data.path()).unwrap()),
        "the at-rest key lives outside DIR"
    );
    assert_eq!(
        binding.key_file.parent(),
        Some(std::fs::canonicalize(work.path()).unwrap().as_path())
    );
    // The revision reads without the key, and the database records the key's id.
    let dump = data.logical_dump().await;
    assert!(dump["documents"][0].starts_with("nas-01|4|"), "{dump:?}");
    assert!(
        dump["meta"]
            .iter()
            .any(|m| *m == format!("at_rest.key_id|{}", binding.key_id)),
        "{dump:?}"
    );
    // A copy of DIR (and its database) without the key: nothing opens.
    let aside = work.path().join("key-aside");
    std::fs::rename(&binding.key_file, &aside).unwrap();
    let err = held(truenas_central::datastore::open(
        data.path(),
        &data.database,
    ))
    .await
    .unwrap_err();
    assert!(
        truenas_agent::fault::error_chain(&err).contains("at-rest key"),
        "{}",
        truenas_agent::fault::error_chain(&err)
    );
    assert!(
        truenas_central::store::Store::new(data.path())
            .document("nas-01")
            .is_err()
    );
    // `keygen --dir` binds a fresh directory (and its new database) to KEYS/secrets.key.
    let fresh = work.path().join("fresh");
    let keys = work.path().join("keys");
    let run = central(&[
        "keygen",
        "--out",
        keys.to_str().unwrap(),
        "--dir",
        fresh.to_str().unwrap(),
    ])
    .await;
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    let bound = truenas_central::at_rest::binding(&fresh).unwrap().unwrap();
    assert_eq!(
        bound.key_file,
        std::fs::canonicalize(keys.join("secrets.key")).unwrap()
    );
    let recorded =
        truenas_central::datastore::recorded_key_id(&Database::from_flag(&fresh, None).unwrap())
            .await
            .unwrap();
    assert_eq!(recorded.as_deref(), Some(bound.key_id.as_str()));
    let mode = std::fs::metadata(keys.join("secrets.key")).unwrap();
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&mode.permissions()) & 0o777,
        0o600
    );
    // Another key for that database is refused before anything is bound.
    let other = work.path().join("other");
    std::fs::create_dir(&other).unwrap();
    copy_closed_sqlite(&fresh.join("central.db"), &other.join("central.db")).await;
    let run = central(&[
        "keygen",
        "--out",
        work.path().join("keys2").to_str().unwrap(),
        "--dir",
        other.to_str().unwrap(),
    ])
    .await;
    assert_ne!(run.code, 0, "{}{}", run.stdout, run.stderr);
    assert!(
        run.stderr.contains("sealed with at-rest key"),
        "{}",
        run.stderr
    );
    assert!(truenas_central::at_rest::binding(&other).unwrap().is_none());
}

/// Copies a SQLite database that no process uses any more, as files. The last
/// connection's close checkpoints the write-ahead log into the main file and removes it,
/// but that may finish after the closing call returned (sqlx closes SQLite connections on
/// their worker threads): copying the main file alone before then copies a database
/// without its latest commits, or a page mid-checkpoint ("database disk image is
/// malformed"). So wait (bounded) for the log to go; if it stays, copy it too.
async fn copy_closed_sqlite(from: &std::path::Path, to: &std::path::Path) {
    let wal = |p: &std::path::Path| {
        let mut name = p.as_os_str().to_owned();
        name.push("-wal");
        std::path::PathBuf::from(name)
    };
    for _ in 0..200 {
        if !wal(from).exists() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    std::fs::copy(from, to).unwrap();
    if wal(from).exists() {
        std::fs::copy(wal(from), wal(to)).unwrap();
    }
}

#[tokio::test]
async fn a_hand_provisioned_device_is_imported_not_rekeyed() {
    // SOP phase 4 done by hand: the bucket, a v3 key, a document typed in and published.
    let model = B2Model::start().await;
    let admin = model.admin().await;
    let bucket_id = model.sop_bucket(&admin, BUCKET).await;
    let hand_key = model
        .key(
            3,
            &admin,
            BUCKET,
            crate::b2model::SOP_CAPABILITIES,
            Some(&[&bucket_id]),
        )
        .await;
    let work = tempfile::tempdir().unwrap();
    let key = admin_key_file(work.path(), &model);
    let data_dir = tempfile::tempdir_in(work.path()).unwrap();
    truenas_central::at_rest::bind(data_dir.path(), &work.path().join("secrets.key"), false)
        .unwrap();
    let data_dir = DataDir::adopt_as_is(engine(), data_dir).await;
    let data = data_dir.path().to_owned();
    let db = data_dir.open().await;
    held(db.register("nas-01", &token_hash("hand-token")))
        .await
        .unwrap();
    let doc = json!({
        "schema": "truenas-agent.config/v1",
        "revision": 5,
        "device": {"org_uuid": ORG, "location_uuid": LOCATION, "root_pool": "pool0"},
        "b2": {"key_id": hand_key.id, "application_key": hand_key.secret},
        "encryption": {"password": "HAND-PASSWORD-1", "salt": "HAND-SALT-2"},
        "snmp": {"username": "handuser", "auth_password": "HAND-AUTH-345",
                 "privacy_passphrase": "HAND-PRIV-678"},
        "snapshots": {"lifetime_value": 3}
    });
    held(db.publish("nas-01", &serde_json::to_vec(&doc).unwrap(), false))
        .await
        .unwrap();

    let from = model.requests().await.len();
    let run = provision(
        &data,
        &key,
        &model,
        LOCATION,
        &["--confirm-compliance-lock"],
    )
    .await;
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    let out = run.json();
    let plan = &out["plan"];
    assert_eq!(plan["bucket"]["action"], "reuse");
    assert_eq!(plan["key"]["action"], "keep", "{out}");
    assert_eq!(plan["key"]["key_id"], hand_key.id.as_str());
    assert_eq!(plan["secrets"]["encryption"], "import");
    assert_eq!(plan["secrets"]["snmp"], "import");
    assert_eq!(plan["document"]["revision"], 6);
    let changes: Vec<&str> = plan["document"]["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap())
        .collect();
    assert!(
        !changes.contains(&"encryption") && !changes.contains(&"b2"),
        "{changes:?}"
    );
    assert!(
        b2_writes_since(&model, from).await.is_empty(),
        "nothing made in B2"
    );
    let record = escrow(&data, true).await;
    assert_eq!(record["backup"]["encryption_password"], "HAND-PASSWORD-1");
    assert_eq!(record["backup"]["b2_key_id"], hand_key.id.as_str());
    assert_eq!(record["nms"]["snmp_username"], "handuser");
    // The operator's other settings survive.
    let published: Value =
        serde_json::from_slice(&held(db.document("nas-01")).await.unwrap().unwrap().bytes).unwrap();
    assert_eq!(published["snapshots"]["lifetime_value"], 3);
    // And now it is central's: a re-run is a no-op.
    let run = provision(
        &data,
        &key,
        &model,
        LOCATION,
        &["--confirm-compliance-lock"],
    )
    .await;
    assert_eq!(run.json()["outcome"], "nothing_to_do", "{}", run.stdout);
}
