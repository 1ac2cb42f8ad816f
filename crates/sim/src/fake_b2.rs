//! A fake Backblaze B2 native API (v4) on `127.0.0.1:0` for tests (the integration tests
//! and `benchtool b2`). Test code: it panics on what a test fake may panic on.
//!
//! Mimics what the verifier relies on (shapes from `shared/b2/REFERENCE.md` §1, §6):
//! - `GET /b2api/{v1..v4}/b2_authorize_account` with HTTP Basic `keyId:applicationKey`;
//!   v4 answers with `apiInfo.storageApi.allowed {buckets, capabilities, namePrefix}`, v1
//!   with the flat legacy `allowed`; a "multi-bucket" (v4-only) key gets B2's 400 "not
//!   currently supported on API version number N" on v1-v3; 401 `unauthorized` for a bad key.
//! - `POST /b2api/v4/b2_list_buckets` and `b2_list_file_names`, `GET /file/{bucket}/{name}`:
//!   `Authorization` must be the raw token (no `Bearer`, like B2) or 401 `bad_auth_token`;
//!   capabilities are enforced (401 `unauthorized`), a restricted key must name its bucket,
//!   `defaultServerSideEncryption` / `fileLockConfiguration` / `fileRetention` are gated by
//!   `readBucketEncryption` / `readBucketRetentions` / `readFileRetentions`;
//!   `maxFileCount` outside 1..=10000 is 400 `out_of_range`; `Range: bytes=a-b` gives 206 +
//!   `Content-Range`, past the end 416, a missing file 404 `not_found`.
//! - Faults per test ([`Faults`]): first token expired once, N × 429 with `Retry-After`,
//!   N × 503, v4 sign-in refused with 401 `unsupported`, an error message that echoes the
//!   presented key (to prove the client scrubs it), `Range` ignored (200 + whole object),
//!   a listing larger than the client's cap.
//!
//! Every request is recorded ([`FakeB2::requests`]) so tests can count sign-ins and retries.
//!
//! This is our reading of B2. For Backblaze's own model (b2sdk's RawSimulator over HTTP)
//! use `b2model.rs`; this fake is for the faults and malformed replies a model never sends.

#![allow(
    clippy::unwrap_used,
    clippy::missing_panics_doc,
    reason = "a test fake: a failed bind, a poisoned lock or a missing data file is a test failure, and the panic says so"
)]
#![allow(
    clippy::result_large_err,
    reason = "handlers short-circuit with a ready error Response; boxing buys nothing in a test fake"
)]

use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine as _;
use serde_json::{Value, json};

/// The SOP's capability list (SOP 4.3), as the agent defines it.
pub use truenas_agent::b2::SOP_CAPABILITIES;

pub const BUCKET: &str = "truenas-a1b2c3d4e5f670718293a4b5c6d7e8f9";
pub const BUCKET_ID: &str = "4a48fe8875c6214145260818";
pub const GUID: &str = "9babab19-acc0-4587-aa05-ccd8103a1148";
pub const KEY_ID: &str = "0051a2b3c4d5e6f0000000007";
pub const ACCOUNT_ID: &str = "0123456789ab";

/// One stored object.
#[derive(Debug, Clone)]
pub struct FakeFile {
    pub name: String,
    pub content: Vec<u8>,
    /// Stored with SSE-B2.
    pub sse: bool,
}

impl FakeFile {
    pub fn new(name: impl Into<String>, content: Vec<u8>) -> Self {
        Self {
            name: name.into(),
            content,
            sse: true,
        }
    }
}

/// Default retention of a bucket (`None` mode = retention off).
#[derive(Debug, Clone)]
pub struct Retention {
    pub mode: Option<String>,
    pub duration: u64,
    pub unit: String,
}

/// One bucket.
#[derive(Debug, Clone)]
pub struct FakeBucket {
    pub id: String,
    pub name: String,
    pub bucket_type: String,
    /// `SSE-B2` or `none`.
    pub sse_mode: String,
    pub file_lock_enabled: bool,
    pub retention: Option<Retention>,
    pub lifecycle_rules: Value,
    pub files: Vec<FakeFile>,
}

impl FakeBucket {
    /// The SOP bucket: private, SSE-B2, Object Lock with compliance 14 days, 30-day
    /// hide→delete rule, one real rclone crypt object per pool folder.
    pub fn compliant(pools: &[&str]) -> Self {
        let crypt = data("crypt-invoice.txt.bin");
        let files = pools
            .iter()
            .flat_map(|pool| {
                [
                    FakeFile::new(format!("{GUID}/{pool}/docs/invoice.txt.bin"), crypt.clone()),
                    FakeFile::new(
                        format!("{GUID}/{pool}/empty.txt.bin"),
                        data("crypt-empty.txt.bin"),
                    ),
                ]
            })
            .collect();
        Self {
            id: BUCKET_ID.into(),
            name: BUCKET.into(),
            bucket_type: "allPrivate".into(),
            sse_mode: "SSE-B2".into(),
            file_lock_enabled: true,
            retention: Some(Retention {
                mode: Some("compliance".into()),
                duration: 14,
                unit: "days".into(),
            }),
            lifecycle_rules: json!([{
                "fileNamePrefix": "",
                "daysFromHidingToDeleting": 30,
                "daysFromUploadingToHiding": null
            }]),
            files,
        }
    }
}

/// A test data file from the repository's `tests/data/b2/` (panics when it is missing:
/// test code).
pub fn data(name: &str) -> Vec<u8> {
    std::fs::read(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../tests/data/b2")
            .join(name),
    )
    .unwrap()
}

/// Injected failures.
#[derive(Debug, Clone, Default)]
pub struct Faults {
    /// The first token issued answers 401 `expired_auth_token` on its first use.
    pub expire_first_token: bool,
    /// The first N token calls answer 429 with this `Retry-After` (seconds), if any.
    pub rate_limit: Option<(u32, Option<u64>)>,
    /// The first N token calls answer 503.
    pub unavailable: u32,
    /// v4 sign-in answers 401 `unsupported`.
    pub reject_v4_sign_in: bool,
    /// 401 messages quote the presented key / token (a careless server or proxy).
    pub echo_credentials: bool,
    /// Downloads ignore `Range` and send the whole object with 200.
    pub ignore_range: bool,
    /// `b2_list_file_names` pads its reply past 1 MiB (a misbehaving proxy).
    pub oversize_listing: bool,
}

/// The fake's configuration: one application key and the account's buckets.
#[derive(Debug, Clone)]
pub struct Config {
    pub key_id: String,
    pub app_key: String,
    /// `None`: key not restricted; else `(id, name)` pairs (name `None` = deleted bucket).
    pub allowed_buckets: Option<Vec<(String, Option<String>)>>,
    pub capabilities: Vec<String>,
    pub name_prefix: Option<String>,
    /// A "multi-bucket" key: v1-v3 sign-in answers 400.
    pub v4_only: bool,
    pub buckets: Vec<FakeBucket>,
    pub faults: Faults,
}

impl Config {
    /// The SOP setup: a key restricted to the compliant bucket with the SOP capabilities.
    pub fn compliant(app_key: &str, pools: &[&str]) -> Self {
        Self {
            key_id: KEY_ID.into(),
            app_key: app_key.into(),
            allowed_buckets: Some(vec![(BUCKET_ID.into(), Some(BUCKET.into()))]),
            capabilities: SOP_CAPABILITIES.iter().map(|&c| c.to_owned()).collect(),
            name_prefix: None,
            v4_only: false,
            buckets: vec![FakeBucket::compliant(pools)],
            faults: Faults::default(),
        }
    }

    fn has(&self, capability: &str) -> bool {
        self.capabilities.iter().any(|c| c == capability)
    }

    fn allows_bucket(&self, id: Option<&str>, name: Option<&str>) -> bool {
        match &self.allowed_buckets {
            None => true,
            Some(list) => list.iter().any(|(bid, bname)| {
                id.is_some_and(|i| i == bid) || (name.is_some() && bname.as_deref() == name)
            }),
        }
    }
}

/// One request as the fake saw it.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub path: String,
    pub status: u16,
    /// The `Authorization` header as sent.
    pub authorization: Option<String>,
    pub range: Option<String>,
}

struct State_ {
    config: Config,
    tokens: Vec<(String, bool)>,
    token_calls: u32,
    requests: Vec<Recorded>,
}

type Shared = Arc<Mutex<State_>>;

/// A running fake; dropped with the test's runtime.
pub struct FakeB2 {
    /// `http://127.0.0.1:<port>`.
    pub base: String,
    state: Shared,
}

impl FakeB2 {
    /// Starts the fake on a random loopback port.
    pub async fn start(config: Config) -> Self {
        let state: Shared = Arc::new(Mutex::new(State_ {
            config,
            tokens: Vec::new(),
            token_calls: 0,
            requests: Vec::new(),
        }));
        let app = Router::new()
            .route("/b2api/{version}/b2_authorize_account", get(authorize))
            .route("/b2api/v4/b2_list_buckets", post(list_buckets))
            .route("/b2api/v4/b2_list_file_names", post(list_file_names))
            .route("/file/{bucket}/{*name}", get(download))
            .with_state(Arc::clone(&state));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Self { base, state }
    }

    /// Every request so far.
    pub fn requests(&self) -> Vec<Recorded> {
        self.state.lock().unwrap().requests.clone()
    }

    /// Requests whose path ends with `suffix`.
    pub fn count(&self, suffix: &str) -> usize {
        self.requests()
            .iter()
            .filter(|r| r.path.ends_with(suffix))
            .count()
    }

    /// The tokens issued so far.
    pub fn tokens(&self) -> Vec<String> {
        self.state
            .lock()
            .unwrap()
            .tokens
            .iter()
            .map(|(t, _)| t.clone())
            .collect()
    }
}

fn error(status: StatusCode, code: &str, message: &str) -> Response {
    let body = json!({"status": status.as_u16(), "code": code, "message": message});
    (status, axum::Json(body)).into_response()
}

fn record(state: &mut State_, path: &str, headers: &HeaderMap, response: &Response) {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    state.requests.push(Recorded {
        path: path.to_owned(),
        status: response.status().as_u16(),
        authorization: header("authorization"),
        range: header("range"),
    });
}

async fn authorize(
    State(state): State<Shared>,
    Path(version): Path<String>,
    headers: HeaderMap,
) -> Response {
    let mut s = state.lock().unwrap();
    let response = authorize_reply(&mut s, &version, &headers);
    record(
        &mut s,
        &format!("/b2api/{version}/b2_authorize_account"),
        &headers,
        &response,
    );
    response
}

fn authorize_reply(s: &mut State_, version: &str, headers: &HeaderMap) -> Response {
    let presented = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
        .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b).ok())
        .and_then(|b| String::from_utf8(b).ok())
        .unwrap_or_default();
    let expected = format!("{}:{}", s.config.key_id, s.config.app_key);
    if presented != expected {
        let message = if s.config.faults.echo_credentials {
            format!("invalid application key: {presented}")
        } else {
            "invalid application key id or application key".to_owned()
        };
        return error(StatusCode::UNAUTHORIZED, "unauthorized", &message);
    }
    let number = version.trim_start_matches('v');
    if version != "v4" && s.config.v4_only {
        return error(
            StatusCode::BAD_REQUEST,
            "bad_request",
            &format!("This request is not currently supported on API version number {number}"),
        );
    }
    if version == "v4" && s.config.faults.reject_v4_sign_in {
        return error(
            StatusCode::UNAUTHORIZED,
            "unsupported",
            "the applicationKeyId is valid, but cannot be used with this version of the B2 API",
        );
    }
    let token = format!("4_fake{}_{}", s.tokens.len() + 1, "0".repeat(40));
    s.tokens.push((token.clone(), true));
    let base = headers
        .get("host")
        .and_then(|h| h.to_str().ok())
        .map(|h| format!("http://{h}"))
        .unwrap_or_default();
    let body = if version == "v4" {
        v4_authorize_body(&s.config, &token, &base)
    } else {
        v1_authorize_body(&s.config, &token, &base)
    };
    (StatusCode::OK, axum::Json(body)).into_response()
}

fn v4_authorize_body(config: &Config, token: &str, base: &str) -> Value {
    let buckets = config.allowed_buckets.as_ref().map(|list| {
        list.iter()
            .map(|(id, name)| json!({"id": id, "name": name}))
            .collect::<Vec<_>>()
    });
    json!({
        "accountId": ACCOUNT_ID,
        "authorizationToken": token,
        "apiInfo": {
            "storageApi": {
                "apiUrl": base,
                "downloadUrl": base,
                "s3ApiUrl": "https://s3.eu-central-003.backblazeb2.com",
                "recommendedPartSize": 100_000_000,
                "absoluteMinimumPartSize": 5_000_000,
                "allowed": {
                    "buckets": buckets,
                    "capabilities": config.capabilities,
                    "namePrefix": config.name_prefix,
                },
                "infoType": "storageApi"
            },
            "groupsApi": {}
        },
        "applicationKeyExpirationTimestamp": null
    })
}

fn v1_authorize_body(config: &Config, token: &str, base: &str) -> Value {
    let first = config.allowed_buckets.as_ref().and_then(|l| l.first());
    json!({
        "accountId": ACCOUNT_ID,
        "authorizationToken": token,
        "apiUrl": base,
        "downloadUrl": base,
        "recommendedPartSize": 100_000_000,
        "absoluteMinimumPartSize": 5_000_000,
        "allowed": {
            "bucketId": first.map(|(id, _)| id),
            "bucketName": first.and_then(|(_, name)| name.clone()),
            "capabilities": config.capabilities,
            "namePrefix": config.name_prefix,
        }
    })
}

/// Token + injected transient faults, shared by every token-authenticated call.
fn gate(s: &mut State_, headers: &HeaderMap) -> Result<(), Response> {
    s.token_calls += 1;
    let n = s.token_calls;
    if let Some((count, retry_after)) = s.config.faults.rate_limit
        && n <= count
    {
        let mut response = error(
            StatusCode::TOO_MANY_REQUESTS,
            "too_many_requests",
            "slow down",
        );
        if let Some(secs) = retry_after {
            response.headers_mut().insert(
                "retry-after",
                HeaderValue::from_str(&secs.to_string()).unwrap(),
            );
        }
        return Err(response);
    }
    let rate_limited = s.config.faults.rate_limit.map_or(0, |(c, _)| c);
    if n <= rate_limited + s.config.faults.unavailable {
        return Err(error(
            StatusCode::SERVICE_UNAVAILABLE,
            "service_unavailable",
            "try later",
        ));
    }
    let presented = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let Some(index) = s
        .tokens
        .iter()
        .position(|(t, valid)| *t == presented && *valid)
    else {
        let message = if s.config.faults.echo_credentials {
            format!("bad token {presented}")
        } else {
            "Invalid authorization token".to_owned()
        };
        return Err(error(StatusCode::UNAUTHORIZED, "bad_auth_token", &message));
    };
    if index == 0 && s.config.faults.expire_first_token {
        s.tokens[0].1 = false;
        return Err(error(
            StatusCode::UNAUTHORIZED,
            "expired_auth_token",
            "Authorization token has expired",
        ));
    }
    Ok(())
}

fn unauthorized(what: &str) -> Response {
    error(StatusCode::UNAUTHORIZED, "unauthorized", what)
}

async fn list_buckets(State(state): State<Shared>, headers: HeaderMap, body: Bytes) -> Response {
    let mut s = state.lock().unwrap();
    let response = gate(&mut s, &headers)
        .and_then(|()| list_buckets_reply(&s.config, &body))
        .unwrap_or_else(|r| r);
    record(&mut s, "/b2api/v4/b2_list_buckets", &headers, &response);
    response
}

fn list_buckets_reply(config: &Config, body: &[u8]) -> Result<Response, Response> {
    let request: Value = serde_json::from_slice(body)
        .map_err(|_| error(StatusCode::BAD_REQUEST, "bad_request", "body is not JSON"))?;
    if request["accountId"] != ACCOUNT_ID {
        return Err(error(
            StatusCode::BAD_REQUEST,
            "bad_request",
            "accountId is wrong",
        ));
    }
    if !config.has("listBuckets") {
        return Err(unauthorized(
            "application key does not have listBuckets capability",
        ));
    }
    let id = request["bucketId"].as_str();
    let name = request["bucketName"].as_str();
    if config.allowed_buckets.is_some() && !config.allows_bucket(id, name) {
        return Err(unauthorized(
            "application key is restricted to another bucket",
        ));
    }
    let buckets: Vec<Value> = config
        .buckets
        .iter()
        .filter(|b| id.is_none_or(|i| i == b.id) && name.is_none_or(|n| n == b.name))
        .map(|b| bucket_json(config, b))
        .collect();
    Ok((StatusCode::OK, axum::Json(json!({"buckets": buckets}))).into_response())
}

fn bucket_json(config: &Config, b: &FakeBucket) -> Value {
    let sse = if config.has("readBucketEncryption") {
        json!({"isClientAuthorizedToRead": true, "value": {"mode": b.sse_mode,
               "algorithm": (b.sse_mode == "SSE-B2").then_some("AES256")}})
    } else {
        json!({"isClientAuthorizedToRead": false})
    };
    let retention = b.retention.as_ref().map_or(
        json!({"mode": null, "period": null}),
        |r| json!({"mode": r.mode, "period": r.mode.as_ref().map(|_| json!({"duration": r.duration, "unit": r.unit}))}),
    );
    let lock = if config.has("readBucketRetentions") {
        json!({"isClientAuthorizedToRead": true,
               "value": {"isFileLockEnabled": b.file_lock_enabled, "defaultRetention": retention}})
    } else {
        json!({"isClientAuthorizedToRead": false, "value": null})
    };
    json!({
        "accountId": ACCOUNT_ID,
        "bucketId": b.id,
        "bucketName": b.name,
        "bucketType": b.bucket_type,
        "bucketInfo": {},
        "corsRules": [],
        "defaultServerSideEncryption": sse,
        "fileLockConfiguration": lock,
        "lifecycleRules": b.lifecycle_rules,
        "replicationConfiguration": {"isClientAuthorizedToRead": false, "value": null},
        "options": [],
        "revision": 3
    })
}

async fn list_file_names(State(state): State<Shared>, headers: HeaderMap, body: Bytes) -> Response {
    let mut s = state.lock().unwrap();
    let response = gate(&mut s, &headers)
        .and_then(|()| list_files_reply(&s.config, &body))
        .unwrap_or_else(|r| r);
    record(&mut s, "/b2api/v4/b2_list_file_names", &headers, &response);
    response
}

fn list_files_reply(config: &Config, body: &[u8]) -> Result<Response, Response> {
    let request: Value = serde_json::from_slice(body)
        .map_err(|_| error(StatusCode::BAD_REQUEST, "bad_request", "body is not JSON"))?;
    if !config.has("listFiles") {
        return Err(unauthorized(
            "application key does not have listFiles capability",
        ));
    }
    let bucket_id = request["bucketId"].as_str().unwrap_or_default();
    if !config.allows_bucket(Some(bucket_id), None) {
        return Err(unauthorized(
            "application key is restricted to another bucket",
        ));
    }
    let bucket = config
        .buckets
        .iter()
        .find(|b| b.id == bucket_id)
        .ok_or_else(|| error(StatusCode::BAD_REQUEST, "bad_bucket_id", "Invalid bucketId"))?;
    let max = request["maxFileCount"].as_u64().unwrap_or(100);
    if !(1..=10_000).contains(&max) {
        return Err(error(
            StatusCode::BAD_REQUEST,
            "out_of_range",
            "maxFileCount out of range",
        ));
    }
    let prefix = request["prefix"].as_str().unwrap_or_default();
    if let Some(np) = &config.name_prefix
        && !prefix.starts_with(np.as_str())
    {
        return Err(unauthorized("prefix is outside the key's namePrefix"));
    }
    let start = request["startFileName"].as_str().unwrap_or_default();
    let mut files: Vec<&FakeFile> = bucket
        .files
        .iter()
        .filter(|f| f.name.starts_with(prefix) && f.name.as_str() >= start)
        .collect();
    files.sort_by(|a, b| a.name.cmp(&b.name));
    let max = usize::try_from(max).unwrap();
    let next = files.get(max).map(|f| f.name.clone());
    let listed: Vec<Value> = files
        .iter()
        .take(max)
        .map(|f| file_json(config, bucket, f))
        .collect();
    if config.faults.oversize_listing {
        let padding = "x".repeat(2 * 1024 * 1024);
        let body = json!({"files": listed, "nextFileName": next, "padding": padding});
        return Ok((StatusCode::OK, axum::Json(body)).into_response());
    }
    Ok((
        StatusCode::OK,
        axum::Json(json!({"files": listed, "nextFileName": next})),
    )
        .into_response())
}

fn file_json(config: &Config, bucket: &FakeBucket, f: &FakeFile) -> Value {
    let retention = if config.has("readFileRetentions") {
        json!({"isClientAuthorizedToRead": true,
               "value": {"mode": "compliance", "retainUntilTimestamp": 1_765_065_600_000_u64}})
    } else {
        json!({"isClientAuthorizedToRead": false, "value": null})
    };
    let mut entry = json!({
        "accountId": ACCOUNT_ID,
        "bucketId": bucket.id,
        "fileId": format!("4_z{}_f1_{}", bucket.id, f.name.len()),
        "fileName": f.name,
        "action": if f.name.ends_with('/') { "folder" } else { "upload" },
        "contentLength": f.content.len(),
        "contentSha1": "none",
        "contentType": "application/octet-stream",
        "fileInfo": {"src_last_modified_millis": "1763856000000"},
        "fileRetention": retention,
        "legalHold": {"isClientAuthorizedToRead": false, "value": null},
        "uploadTimestamp": 1_763_856_000_000_u64,
        "replicationStatus": null
    });
    if f.sse {
        entry["serverSideEncryption"] = json!({"mode": "SSE-B2", "algorithm": "AES256"});
    }
    entry
}

async fn download(
    State(state): State<Shared>,
    Path((bucket, name)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    let mut s = state.lock().unwrap();
    let response = gate(&mut s, &headers)
        .and_then(|()| download_reply(&s.config, &bucket, &name, &headers))
        .unwrap_or_else(|r| r);
    record(
        &mut s,
        &format!("/file/{bucket}/{name}"),
        &headers,
        &response,
    );
    response
}

fn download_reply(
    config: &Config,
    bucket: &str,
    name: &str,
    headers: &HeaderMap,
) -> Result<Response, Response> {
    if !config.has("readFiles") {
        return Err(unauthorized(
            "application key does not have readFiles capability",
        ));
    }
    if !config.allows_bucket(None, Some(bucket)) {
        return Err(unauthorized(
            "application key is restricted to another bucket",
        ));
    }
    let file = config
        .buckets
        .iter()
        .find(|b| b.name == bucket)
        .and_then(|b| b.files.iter().find(|f| f.name == name))
        .ok_or_else(|| error(StatusCode::NOT_FOUND, "not_found", "File not present"))?;
    let total = file.content.len();
    let range = headers
        .get("range")
        .and_then(|v| v.to_str().ok())
        .filter(|_| !config.faults.ignore_range);
    let (status, body, content_range) = match range.and_then(parse_range) {
        Some((start, _)) if start >= total => {
            return Err(error(
                StatusCode::RANGE_NOT_SATISFIABLE,
                "range_not_satisfiable",
                "bad range",
            ));
        }
        Some((start, end)) => {
            let end = end.min(total - 1);
            (
                StatusCode::PARTIAL_CONTENT,
                file.content[start..=end].to_vec(),
                Some(format!("bytes {start}-{end}/{total}")),
            )
        }
        None => (StatusCode::OK, file.content.clone(), None),
    };
    let mut response = (status, body).into_response();
    let h = response.headers_mut();
    h.insert(
        "x-bz-file-name",
        HeaderValue::from_str(&file.name.replace(' ', "%20")).unwrap(),
    );
    h.insert("x-bz-file-id", HeaderValue::from_static("4_zfake"));
    h.insert("x-bz-content-sha1", HeaderValue::from_static("none"));
    if file.sse {
        h.insert(
            "x-bz-server-side-encryption",
            HeaderValue::from_static("AES256"),
        );
    }
    if let Some(cr) = content_range {
        h.insert("content-range", HeaderValue::from_str(&cr).unwrap());
    }
    Ok(response)
}

/// `bytes=a-b` (one inclusive range; the only form the client sends).
fn parse_range(header: &str) -> Option<(usize, usize)> {
    let (a, b) = header.strip_prefix("bytes=")?.split_once('-')?;
    Some((a.parse().ok()?, b.parse().ok()?))
}
