//! Backblaze's own model of B2, over HTTP, for tests: starts `tests/b2model/b2model.py`
//! (b2sdk's `RawSimulator` behind the B2 native API, see `tests/b2model/README.md`) on a
//! loopback port and talks to it like the provisioning tool and the verifier will.
//!
//! - [`B2Model::start`] runs the server with the venv's Python (`$B2MODEL_PYTHON`, else
//!   `tests/b2model/.venv/bin/python`), waits for its one JSON ready line (bounded) and
//!   kills it when dropped. A missing venv fails the test with the command that makes it.
//! - [`B2Model::call`] sends one B2 call (`/b2api/vN/<name>`, raw token, JSON body) and
//!   returns status + JSON; [`Session`] holds a token from `b2_authorize_account`.
//! - The `/_model/...` helpers (new account, planted files, legacy bucket state, expired
//!   tokens, request log) set state the real B2 could have; they never go through keys.
//! - [`SopSetup`] builds the SOP's bucket and scoped key through the API exactly as the SOP
//!   (phase 4) does, so verifier tests start from Backblaze's model of a compliant setup.

#![allow(dead_code, reason = "helpers for issue 15's provisioning tests too")]

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use base64::Engine as _;
use serde_json::{Value, json};

/// How long the server may take to print its ready line (Python start + b2sdk import;
/// about half a second on an idle machine, much more on a loaded two-core CI box).
const READY_TIMEOUT: Duration = Duration::from_secs(120);
/// Timeout of one request to the model.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

/// The SOP 4.3 capability list, in the SOP's order.
pub const SOP_CAPABILITIES: &[&str] = &[
    "listBuckets",
    "readBuckets",
    "writeBuckets",
    "deleteBuckets",
    "listFiles",
    "readFiles",
    "writeFiles",
    "deleteFiles",
    "readBucketEncryption",
    "writeBucketEncryption",
    "readBucketRetentions",
    "writeBucketRetentions",
    "readFileLegalHolds",
    "writeFileLegalHolds",
    "readFileRetentions",
    "writeFileRetentions",
    "bypassGovernance",
];

/// The SOP 4.1 lifecycle rule.
pub fn sop_lifecycle() -> Value {
    json!([{"fileNamePrefix": "", "daysFromHidingToDeleting": 30, "daysFromUploadingToHiding": null}])
}

/// The venv's Python, or a panic that says how to make it.
fn python() -> PathBuf {
    let manifest = crate::support::repo_root();
    let python = std::env::var_os("B2MODEL_PYTHON").map_or_else(
        || manifest.join("tests/b2model/.venv/bin/python"),
        PathBuf::from,
    );
    assert!(
        python.exists(),
        "the B2 model server needs its Python venv, not found at {}. Create it with:\n  \
         python3 -m venv tests/b2model/.venv && tests/b2model/.venv/bin/pip install \
         --require-hashes -r tests/b2model/requirements.txt\n(or point B2MODEL_PYTHON at a \
         Python that has b2sdk==2.13.2; .ci/run creates the venv)",
        python.display()
    );
    python
}

/// A running model server; killed when dropped.
pub struct B2Model {
    child: Child,
    /// `http://127.0.0.1:<port>`: the API base to give clients.
    pub base: String,
    /// The first account, created at start.
    pub account_id: String,
    /// That account's master application key (the "admin key").
    pub admin_key_id: String,
    pub admin_key: String,
    http: reqwest::Client,
}

impl Drop for B2Model {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A B2 reply: HTTP status and JSON body (`{status, code, message}` on errors).
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub body: Value,
}

impl Reply {
    /// The B2 error code (`""` on success).
    pub fn code(&self) -> &str {
        self.body["code"].as_str().unwrap_or_default()
    }

    /// Panics unless 200, showing the error.
    #[track_caller]
    pub fn ok(self) -> Value {
        assert_eq!(self.status, 200, "B2 call failed: {}", self.body);
        self.body
    }

    /// Panics unless this status and code.
    #[track_caller]
    pub fn error(&self, status: u16, code: &str) {
        assert_eq!(
            (self.status, self.code()),
            (status, code),
            "unexpected reply {}",
            self.body
        );
        assert_eq!(
            self.body["status"], status,
            "error body status: {}",
            self.body
        );
        assert!(
            self.body["message"].is_string(),
            "error body: {}",
            self.body
        );
    }
}

/// A signed-in key (token from `b2_authorize_account`).
#[derive(Debug, Clone)]
pub struct Session {
    pub token: String,
    pub account_id: String,
    /// The whole sign-in reply.
    pub reply: Value,
}

/// An application key as `b2_create_key` returned it.
#[derive(Debug, Clone)]
pub struct Key {
    pub id: String,
    pub secret: String,
    pub reply: Value,
}

/// Runs the server and waits (bounded) for its ready line.
fn spawn_and_wait_ready(python: &std::path::Path) -> (Child, Value) {
    let script = crate::support::repo_root().join("tests/b2model/b2model.py");
    let mut child = Command::new(python)
        .arg(&script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {}: {e}", python.display()));
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let read = BufReader::new(stdout).read_line(&mut line);
        let _ = tx.send(read.map(|_| line));
    });
    let line = match rx.recv_timeout(READY_TIMEOUT) {
        Ok(Ok(line)) if !line.is_empty() => line,
        other => {
            let _ = child.kill();
            let status = child.wait();
            panic!("the B2 model server did not get ready ({other:?}, exit {status:?})");
        }
    };
    let ready: Value = serde_json::from_str(&line)
        .unwrap_or_else(|e| panic!("bad ready line from the model server ({e}): {line}"));
    assert_eq!(ready["b2model"], "ready", "{ready}");
    (child, ready)
}

impl B2Model {
    /// Starts a fresh server (empty model with one account).
    pub async fn start() -> Self {
        let python = python();
        let (child, ready) = tokio::task::spawn_blocking(move || spawn_and_wait_ready(&python))
            .await
            .unwrap();
        let _ = rustls::crypto::ring::default_provider().install_default();
        let http = reqwest::Client::builder()
            .timeout(REQUEST_TIMEOUT)
            .no_proxy()
            .build()
            .unwrap();
        let text = |k: &str| ready[k].as_str().unwrap().to_owned();
        Self {
            base: text("apiUrl"),
            account_id: text("accountId"),
            admin_key_id: text("adminKeyId"),
            admin_key: text("adminKey"),
            child,
            http,
        }
    }

    async fn send(&self, request: reqwest::RequestBuilder) -> Reply {
        let response = request.send().await.expect("request to the model server");
        let status = response.status().as_u16();
        let bytes = response.bytes().await.unwrap();
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&bytes)))
        };
        Reply { status, body }
    }

    /// `GET /b2api/v{version}/b2_authorize_account` with HTTP Basic.
    pub async fn authorize_raw(&self, version: u8, key_id: &str, key: &str) -> Reply {
        let basic = base64::engine::general_purpose::STANDARD.encode(format!("{key_id}:{key}"));
        let url = format!("{}/b2api/v{version}/b2_authorize_account", self.base);
        self.send(
            self.http
                .get(url)
                .header("Authorization", format!("Basic {basic}")),
        )
        .await
    }

    /// Signs in on v4, panicking on failure.
    pub async fn authorize(&self, key_id: &str, key: &str) -> Session {
        let reply = self.authorize_raw(4, key_id, key).await.ok();
        Session {
            token: reply["authorizationToken"].as_str().unwrap().to_owned(),
            account_id: reply["accountId"].as_str().unwrap().to_owned(),
            reply,
        }
    }

    /// The admin (master) key of the first account, signed in.
    pub async fn admin(&self) -> Session {
        self.authorize(&self.admin_key_id, &self.admin_key).await
    }

    /// `POST /b2api/v{version}/{name}` with the raw token and a JSON body.
    pub async fn call(&self, version: u8, name: &str, session: &Session, body: Value) -> Reply {
        let url = format!("{}/b2api/v{version}/{name}", self.base);
        self.send(
            self.http
                .post(url)
                .header("Authorization", &session.token)
                .json(&body),
        )
        .await
    }

    /// `b2_create_bucket` (v4) with the SOP's settings except the default retention:
    /// private, Object Lock on, SSE-B2, the 30-day hide→delete rule.
    pub async fn create_sop_bucket(&self, admin: &Session, name: &str) -> Value {
        let body = json!({
            "accountId": admin.account_id,
            "bucketName": name,
            "bucketType": "allPrivate",
            "fileLockEnabled": true,
            "defaultServerSideEncryption": {"mode": "SSE-B2", "algorithm": "AES256"},
            "lifecycleRules": sop_lifecycle(),
        });
        self.call(4, "b2_create_bucket", admin, body).await.ok()
    }

    /// `b2_update_bucket` (v4) setting the default retention.
    pub async fn set_retention(
        &self,
        admin: &Session,
        bucket_id: &str,
        mode: Option<&str>,
        days: u32,
    ) -> Reply {
        let retention = match mode {
            Some(mode) => json!({"mode": mode, "period": {"duration": days, "unit": "days"}}),
            None => json!({"mode": null, "period": null}),
        };
        let body = json!({"accountId": admin.account_id, "bucketId": bucket_id, "defaultRetention": retention});
        self.call(4, "b2_update_bucket", admin, body).await
    }

    /// The SOP bucket, all of phase 4.1/4.2: created, then compliance 14 days.
    pub async fn sop_bucket(&self, admin: &Session, name: &str) -> String {
        let bucket = self.create_sop_bucket(admin, name).await;
        let id = bucket["bucketId"].as_str().unwrap().to_owned();
        self.set_retention(admin, &id, Some("compliance"), 14)
            .await
            .ok();
        id
    }

    /// `b2_create_key` on v3 (`bucketId`: a single-bucket key v1 accepts) or v4
    /// (`bucketIds`: a multi-bucket key when given).
    pub async fn create_key(
        &self,
        version: u8,
        admin: &Session,
        name: &str,
        capabilities: &[&str],
        buckets: Option<&[&str]>,
    ) -> Reply {
        let mut body =
            json!({"accountId": admin.account_id, "keyName": name, "capabilities": capabilities});
        match (version, buckets) {
            (4, Some(ids)) => body["bucketIds"] = json!(ids),
            (_, Some([id])) => body["bucketId"] = json!(id),
            (_, Some(ids)) => panic!("v{version} keys take one bucketId, not {ids:?}"),
            (_, None) => {}
        }
        self.call(version, "b2_create_key", admin, body).await
    }

    /// [`Self::create_key`], panicking on failure.
    pub async fn key(
        &self,
        version: u8,
        admin: &Session,
        name: &str,
        capabilities: &[&str],
        buckets: Option<&[&str]>,
    ) -> Key {
        let reply = self
            .create_key(version, admin, name, capabilities, buckets)
            .await
            .ok();
        Key {
            id: reply["applicationKeyId"].as_str().unwrap().to_owned(),
            secret: reply["applicationKey"].as_str().unwrap().to_owned(),
            reply,
        }
    }

    /// `b2_get_upload_url` + `b2_upload_file` (SHA-1 `do_not_verify`, a B2 option).
    pub async fn upload(
        &self,
        session: &Session,
        bucket_id: &str,
        name: &str,
        content: &[u8],
        headers: &[(&str, &str)],
    ) -> Reply {
        let target = self
            .call(
                4,
                "b2_get_upload_url",
                session,
                json!({"bucketId": bucket_id}),
            )
            .await
            .ok();
        let mut request = self
            .http
            .post(target["uploadUrl"].as_str().unwrap())
            .header(
                "Authorization",
                target["authorizationToken"].as_str().unwrap(),
            )
            .header("X-Bz-File-Name", name)
            .header("Content-Type", "b2/x-auto")
            .header("X-Bz-Content-Sha1", "do_not_verify")
            .body(content.to_vec());
        for (header, value) in headers {
            request = request.header(*header, *value);
        }
        self.send(request).await
    }

    /// `GET {downloadUrl}/file/{bucket}/{name}` with an optional `Range`; status,
    /// headers and body.
    pub async fn download(
        &self,
        session: &Session,
        bucket: &str,
        name: &str,
        range: Option<&str>,
    ) -> (u16, reqwest::header::HeaderMap, Vec<u8>) {
        let mut request = self
            .http
            .get(format!("{}/file/{bucket}/{name}", self.base))
            .header("Authorization", &session.token);
        if let Some(range) = range {
            request = request.header("Range", range);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        (status, headers, response.bytes().await.unwrap().to_vec())
    }

    async fn control(&self, name: &str, body: Value) -> Value {
        let url = format!("{}/_model/{name}", self.base);
        self.send(self.http.post(url).json(&body)).await.ok()
    }

    /// A second B2 account (its master key), for cross-account rules.
    pub async fn new_account(&self) -> Session {
        let account = self.control("accounts", json!({})).await;
        self.authorize(
            account["applicationKeyId"].as_str().unwrap(),
            account["applicationKey"].as_str().unwrap(),
        )
        .await
    }

    /// Plants a file version (as if uploaded earlier): `sse` is `"default"` (the bucket's),
    /// `"SSE-B2"` or `"none"` (written before SSE existed on the bucket).
    pub async fn plant(&self, bucket: &str, name: &str, content: &[u8], sse: &str) -> Value {
        let body = json!({
            "bucketName": bucket,
            "fileName": name,
            "contentBase64": base64::engine::general_purpose::STANDARD.encode(content),
            "sse": sse,
        });
        self.control("files", body).await
    }

    /// Gives a bucket the default encryption `none` that buckets made before Backblaze's
    /// 2026 SSE-by-default change can still have (the API no longer sets it).
    pub async fn legacy_unencrypted_bucket(&self, bucket: &str) {
        self.control(
            "bucket-state",
            json!({"bucketName": bucket, "defaultServerSideEncryption": "none"}),
        )
        .await;
    }

    /// Expires every token issued so far (of one key, or all).
    pub async fn expire_tokens(&self, key_id: Option<&str>) -> u64 {
        let reply = self
            .control("expire-tokens", json!({"applicationKeyId": key_id}))
            .await;
        reply["expired"].as_u64().unwrap()
    }

    /// `(method, path, status)` of every request so far.
    pub async fn requests(&self) -> Vec<(String, String, u16)> {
        let url = format!("{}/_model/requests", self.base);
        let reply = self.send(self.http.get(url)).await.ok();
        reply["requests"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                (
                    r["method"].as_str().unwrap().to_owned(),
                    r["path"].as_str().unwrap().to_owned(),
                    u16::try_from(r["status"].as_u64().unwrap()).unwrap(),
                )
            })
            .collect()
    }

    /// How many requests went to a path ending with `suffix`.
    pub async fn count(&self, suffix: &str) -> usize {
        self.requests()
            .await
            .iter()
            .filter(|(_, path, _)| path.ends_with(suffix))
            .count()
    }
}

/// The SOP's B2 side built through the API: bucket (4.1, 4.2) and scoped key (4.3).
pub struct SopSetup {
    pub model: B2Model,
    pub admin: Session,
    pub bucket: String,
    pub bucket_id: String,
    pub key: Key,
}

impl SopSetup {
    /// A compliant setup; the key is made on v3 with `bucketId` (what v1 rclone needs)
    /// and carries `capabilities`.
    pub async fn new(bucket: &str, capabilities: &[&str]) -> Self {
        let model = B2Model::start().await;
        let admin = model.admin().await;
        let bucket_id = model.sop_bucket(&admin, bucket).await;
        let key = model
            .key(3, &admin, bucket, capabilities, Some(&[&bucket_id]))
            .await;
        Self {
            model,
            admin,
            bucket: bucket.to_owned(),
            bucket_id,
            key,
        }
    }
}
