//! The B2 **admin** client of central (never in the appliance build): the native API calls
//! SOP phase 4 makes with the MSP's admin key, and the proof that a scoped key works the
//! way TrueNAS's rclone will use it.
//!
//! Owns: signing in with the admin key (v4), `b2_list_buckets` (one name, all types),
//! `b2_create_bucket` and `b2_update_bucket` (v4), `b2_create_key` / `b2_list_keys` /
//! `b2_delete_key` through **v3** (single-bucket keys with `bucketId`: keys made through
//! v4 with `bucketIds` are "multi-bucket" keys that v1–v3 sign-in refuse, and TrueNAS's
//! rclone < 1.73 signs in on v1), a v4 delete for a key that only v4 can delete, and
//! [`AdminClient::prove_scoped_key`]: sign in with the new key on `/b2api/v1/`, list the
//! bucket and its files on v1. Errors as [`B2AdminError`], with B2's `code`.
//! Does not: decide anything (`provision` does); the agent's read-only client is
//! `truenas_agent::b2`.
//! Invariants: keys and tokens live in `SecretString`s and sensitive headers; B2 texts are
//! truncated and scrubbed of every secret this client holds before they are kept; requests
//! go to `https://`, or `http://` on a loopback address (tests); redirects are not
//! followed; every request has a timeout and a 1 MiB body cap; reads and idempotent writes
//! are retried on 408/429/5xx/network errors (at most 4 attempts, `Retry-After` ≤ 60 s
//! honoured), creations never are (a lost answer could hide a created key or bucket: the
//! caller re-reads instead).
//! Limitations: `Retry-After` in seconds only; key listing stops after 100 pages.

use std::fmt;
use std::time::Duration;

use reqwest::header::{AUTHORIZATION, HeaderValue, RETRY_AFTER};
use reqwest::{StatusCode, Url};
use secrecy::{ExposeSecret as _, SecretString};
use serde::Deserialize;
use serde_json::{Value, json};

use truenas_agent::b2::api::{Encryption, FileLock, LifecycleRule};
use truenas_agent::fault::{Fault, error_chain};

/// Backblaze's API (the default of `--b2-api`).
pub const DEFAULT_API: &str = "https://api.backblazeb2.com";
const MAX_BODY: usize = 1024 * 1024;
const MAX_MESSAGE: usize = 300;
const ATTEMPTS: u32 = 4;

/// A B2 call of this client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    AuthorizeAdmin,
    AuthorizeV1,
    ListBuckets,
    ListBucketsV1,
    ListFileNamesV1,
    CreateBucket,
    UpdateBucket,
    CreateKey,
    ListKeys,
    DeleteKey,
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Op::AuthorizeAdmin => "b2_authorize_account (v4, admin key)",
            Op::AuthorizeV1 => "b2_authorize_account (v1, scoped key)",
            Op::ListBuckets => "b2_list_buckets (v4)",
            Op::ListBucketsV1 => "b2_list_buckets (v1, scoped key)",
            Op::ListFileNamesV1 => "b2_list_file_names (v1, scoped key)",
            Op::CreateBucket => "b2_create_bucket (v4)",
            Op::UpdateBucket => "b2_update_bucket (v4)",
            Op::CreateKey => "b2_create_key (v3)",
            Op::ListKeys => "b2_list_keys (v3)",
            Op::DeleteKey => "b2_delete_key",
        })
    }
}

/// A B2 call failed. Texts from B2 are scrubbed of every secret the client holds.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum B2AdminError {
    #[error("--b2-api `{url}` is not usable: {rule}")]
    BadUrl { url: String, rule: &'static str },
    #[error("cannot set up the HTTPS client for B2: {detail}")]
    Setup { detail: String },
    #[error("{op}: B2 answered HTTP {status} `{code}`: {message}")]
    Api {
        op: Op,
        status: u16,
        code: String,
        message: String,
    },
    #[error("{op}: B2 is unavailable (HTTP {status} `{code}` {attempts} times)")]
    Unavailable {
        op: Op,
        status: u16,
        code: String,
        attempts: u32,
    },
    #[error("{op}: cannot reach B2 ({attempts} attempts): {detail}")]
    Network {
        op: Op,
        detail: String,
        attempts: u32,
    },
    #[error("{op}: unexpected reply from B2: {detail}")]
    Protocol { op: Op, detail: String },
}

impl B2AdminError {
    /// B2's error code, when B2 answered with one.
    pub fn code(&self) -> Option<&str> {
        match self {
            B2AdminError::Api { code, .. } | B2AdminError::Unavailable { code, .. } => Some(code),
            _ => None,
        }
    }

    /// HTTP status, when B2 answered.
    pub fn status(&self) -> Option<u16> {
        match self {
            B2AdminError::Api { status, .. } | B2AdminError::Unavailable { status, .. } => {
                Some(*status)
            }
            _ => None,
        }
    }

    /// True when the request may have taken effect although no answer came back.
    pub fn is_ambiguous(&self) -> bool {
        matches!(
            self,
            B2AdminError::Unavailable { .. } | B2AdminError::Network { .. }
        )
    }

    /// Who has to act.
    pub fn fault(&self) -> Fault {
        match self {
            B2AdminError::BadUrl { .. } => Fault::Operator,
            B2AdminError::Api { status, .. } if *status == 401 || *status == 403 => Fault::Operator,
            B2AdminError::Unavailable { .. } | B2AdminError::Network { .. } => Fault::Transient,
            B2AdminError::Setup { .. }
            | B2AdminError::Api { .. }
            | B2AdminError::Protocol { .. } => Fault::Bug,
        }
    }
}

/// A bucket as `b2_list_buckets` shows it to the admin key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BucketState {
    pub id: String,
    pub name: String,
    pub account_id: String,
    pub bucket_type: String,
    /// `None`: the admin key may not read it (`isClientAuthorizedToRead: false`).
    pub default_encryption: Option<Encryption>,
    /// `None`: not readable with this key.
    pub file_lock: Option<FileLock>,
    pub lifecycle_rules: Vec<LifecycleRule>,
}

/// What the admin key is (v4 sign-in).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdminInfo {
    pub account_id: String,
    pub capabilities: Vec<String>,
    /// Buckets the key is restricted to (`None`: not restricted).
    pub restricted_to: Option<Vec<String>>,
}

/// A key just made by `b2_create_key`.
pub struct NewKey {
    pub key_id: String,
    pub application_key: SecretString,
    pub capabilities: Vec<String>,
    pub bucket_id: Option<String>,
}

impl fmt::Debug for NewKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NewKey")
            .field("key_id", &self.key_id)
            .field("capabilities", &self.capabilities)
            .field("bucket_id", &self.bucket_id)
            .finish_non_exhaustive()
    }
}

/// One key of `b2_list_keys`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyEntry {
    pub key_id: String,
    pub name: String,
    pub bucket_id: Option<String>,
    pub capabilities: Vec<String>,
}

/// What the v1 proof of a scoped key saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyProof {
    /// `allowed.bucketId` / `bucketName` of the v1 sign-in.
    pub bucket_id: Option<String>,
    pub bucket_name: Option<String>,
    pub capabilities: Vec<String>,
}

/// Client settings.
#[derive(Debug, Clone)]
pub struct AdminOptions {
    pub api_base: String,
    pub request_timeout: Duration,
    pub connect_timeout: Duration,
    /// First retry delay (doubled per attempt, at most 16 s).
    pub base_delay: Duration,
}

impl Default for AdminOptions {
    fn default() -> Self {
        Self {
            api_base: DEFAULT_API.to_owned(),
            request_timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(10),
            base_delay: Duration::from_secs(1),
        }
    }
}

struct Session {
    token: SecretString,
    api_url: Url,
    info: AdminInfo,
}

/// The admin key's client.
pub struct AdminClient {
    http: reqwest::Client,
    api_base: Url,
    key_id: String,
    key: SecretString,
    options: AdminOptions,
    session: Option<Session>,
    /// Every secret seen (keys created, tokens), for scrubbing B2 texts.
    scrub: Vec<SecretString>,
}

impl fmt::Debug for AdminClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AdminClient")
            .field("api_base", &self.api_base.as_str())
            .field("key_id", &self.key_id)
            .finish_non_exhaustive()
    }
}

/// Checks `--b2-api`: `https://`, or `http://` on a loopback address (tests only).
pub fn check_api_url(text: &str) -> Result<Url, B2AdminError> {
    let bad = |rule| B2AdminError::BadUrl {
        url: text.to_owned(),
        rule,
    };
    let url = Url::parse(text).map_err(|_| bad("not a URL"))?;
    if !url.username().is_empty() || url.password().is_some() {
        return Err(bad("must not carry credentials"));
    }
    match url.scheme() {
        "https" => Ok(url),
        "http" => {
            let host = url.host_str().unwrap_or_default();
            let bare = host.trim_start_matches('[').trim_end_matches(']');
            let loopback = bare == "localhost"
                || bare
                    .parse::<std::net::IpAddr>()
                    .is_ok_and(|ip| ip.is_loopback());
            if loopback {
                Ok(url)
            } else {
                Err(bad(
                    "plain http:// is allowed only to a loopback address (tests); use https://",
                ))
            }
        }
        _ => Err(bad("must be https://")),
    }
}

enum Attempt {
    Done(Value),
    Retry {
        status: Option<u16>,
        code: String,
        detail: String,
        after: Option<Duration>,
    },
    Fail(B2AdminError),
}

impl AdminClient {
    /// A client for the admin key. Nothing is sent until the first call.
    pub fn new(
        key_id: &str,
        key: SecretString,
        options: AdminOptions,
    ) -> Result<Self, B2AdminError> {
        let api_base = check_api_url(&options.api_base)?;
        truenas_agent::middleware::tls::install_crypto_provider();
        let mut builder = reqwest::Client::builder()
            .user_agent(truenas_agent::USER_AGENT)
            .timeout(options.request_timeout)
            .connect_timeout(options.connect_timeout)
            .redirect(reqwest::redirect::Policy::none())
            .https_only(api_base.scheme() == "https");
        if api_base.scheme() == "http" {
            builder = builder.no_proxy();
        }
        let http = builder.build().map_err(|e| B2AdminError::Setup {
            detail: error_chain(&e),
        })?;
        let scrub = vec![key.clone()];
        Ok(Self {
            http,
            api_base,
            key_id: key_id.to_owned(),
            key,
            options,
            session: None,
            scrub,
        })
    }

    fn scrubbed(&self, text: &str) -> String {
        let mut out: String = text.chars().take(MAX_MESSAGE).collect();
        for secret in &self.scrub {
            let value = secret.expose_secret();
            if !value.is_empty() {
                out = out.replace(value, "[REDACTED]");
            }
        }
        out
    }

    /// Signs in with the admin key on v4.
    pub async fn authorize(&mut self) -> Result<AdminInfo, B2AdminError> {
        let url = join(&self.api_base, "v4", "b2_authorize_account")?;
        let body = self
            .send(Op::AuthorizeAdmin, true, || {
                self.http
                    .get(url.clone())
                    .basic_auth(&self.key_id, Some(self.key.expose_secret()))
            })
            .await?;
        let (token, api_url, info) = parse_v4_sign_in(&body)?;
        self.scrub.push(token.clone());
        let api_url = check_returned(&self.api_base, &api_url, Op::AuthorizeAdmin)?;
        self.session = Some(Session {
            token,
            api_url,
            info: info.clone(),
        });
        Ok(info)
    }

    /// The admin key's account, once signed in.
    pub fn account_id(&self) -> Option<&str> {
        self.session.as_ref().map(|s| s.info.account_id.as_str())
    }

    fn session(&self, op: Op) -> Result<&Session, B2AdminError> {
        self.session.as_ref().ok_or(B2AdminError::Protocol {
            op,
            detail: "not signed in (call authorize first)".to_owned(),
        })
    }

    async fn api(
        &self,
        op: Op,
        version: &str,
        name: &str,
        body: &Value,
        retry: bool,
    ) -> Result<Value, B2AdminError> {
        let session = self.session(op)?;
        let url = join(&session.api_url, version, name)?;
        let token = sensitive(&session.token);
        self.send(op, retry, || {
            self.http
                .post(url.clone())
                .header(AUTHORIZATION, token.clone())
                .json(body)
        })
        .await
    }

    /// The bucket named `name` in the admin key's account, `None` when absent.
    pub async fn find_bucket(&self, name: &str) -> Result<Option<BucketState>, B2AdminError> {
        let op = Op::ListBuckets;
        let account = self.session(op)?.info.account_id.clone();
        let body = json!({"accountId": account, "bucketName": name, "bucketTypes": ["all"]});
        let reply = self.api(op, "v4", "b2_list_buckets", &body, true).await?;
        let buckets = reply
            .get("buckets")
            .and_then(Value::as_array)
            .ok_or_else(|| protocol(op, "no `buckets` list"))?;
        buckets
            .iter()
            .find(|b| b.get("bucketName").and_then(Value::as_str) == Some(name))
            .map(|b| parse_bucket(op, b))
            .transpose()
    }

    /// `b2_create_bucket` with the SOP 4.1 settings (not retried: see module docs).
    pub async fn create_sop_bucket(&self, name: &str) -> Result<BucketState, B2AdminError> {
        let op = Op::CreateBucket;
        let account = self.session(op)?.info.account_id.clone();
        let body = json!({
            "accountId": account,
            "bucketName": name,
            "bucketType": "allPrivate",
            "fileLockEnabled": true,
            "defaultServerSideEncryption": {"mode": "SSE-B2", "algorithm": "AES256"},
            "lifecycleRules": [{
                "fileNamePrefix": "",
                "daysFromHidingToDeleting": 30,
                "daysFromUploadingToHiding": null
            }],
        });
        let reply = self.api(op, "v4", "b2_create_bucket", &body, false).await?;
        parse_bucket(op, &reply)
    }

    /// `b2_update_bucket`: default retention compliance, `days` days (SOP 4.2).
    pub async fn set_compliance_retention(
        &self,
        bucket_id: &str,
        days: u32,
    ) -> Result<BucketState, B2AdminError> {
        let op = Op::UpdateBucket;
        let account = self.session(op)?.info.account_id.clone();
        let body = json!({
            "accountId": account,
            "bucketId": bucket_id,
            "defaultRetention": {"mode": "compliance", "period": {"duration": days, "unit": "days"}},
        });
        let reply = self.api(op, "v4", "b2_update_bucket", &body, true).await?;
        parse_bucket(op, &reply)
    }

    /// `b2_create_key` through **v3** with `bucketId` (a key v1 sign-in accepts).
    pub async fn create_bucket_key(
        &mut self,
        name: &str,
        capabilities: &[&str],
        bucket_id: &str,
    ) -> Result<NewKey, B2AdminError> {
        let op = Op::CreateKey;
        let account = self.session(op)?.info.account_id.clone();
        let body = json!({
            "accountId": account,
            "keyName": name,
            "capabilities": capabilities,
            "bucketId": bucket_id,
        });
        let reply = self.api(op, "v3", "b2_create_key", &body, false).await?;
        let text = |k: &str| reply.get(k).and_then(Value::as_str).map(str::to_owned);
        let (Some(key_id), Some(secret)) = (text("applicationKeyId"), text("applicationKey"))
        else {
            return Err(protocol(
                op,
                "no applicationKeyId/applicationKey in the reply",
            ));
        };
        let application_key = SecretString::from(secret);
        self.scrub.push(application_key.clone());
        Ok(NewKey {
            key_id,
            application_key,
            capabilities: strings(reply.get("capabilities")),
            bucket_id: text("bucketId"),
        })
    }

    /// Every key of the account that v3 lists (single-bucket and unrestricted keys).
    pub async fn list_keys(&self) -> Result<Vec<KeyEntry>, B2AdminError> {
        let op = Op::ListKeys;
        let account = self.session(op)?.info.account_id.clone();
        let mut keys = Vec::new();
        let mut start: Option<String> = None;
        for _ in 0..100 {
            let mut body = json!({"accountId": account, "maxKeyCount": 1000});
            if let Some(s) = &start {
                body["startApplicationKeyId"] = json!(s);
            }
            let reply = self.api(op, "v3", "b2_list_keys", &body, true).await?;
            for k in reply
                .get("keys")
                .and_then(Value::as_array)
                .ok_or_else(|| protocol(op, "no `keys` list"))?
            {
                let text = |f: &str| k.get(f).and_then(Value::as_str).map(str::to_owned);
                keys.push(KeyEntry {
                    key_id: text("applicationKeyId").unwrap_or_default(),
                    name: text("keyName").unwrap_or_default(),
                    bucket_id: text("bucketId"),
                    capabilities: strings(k.get("capabilities")),
                });
            }
            start = reply
                .get("nextApplicationKeyId")
                .and_then(Value::as_str)
                .map(str::to_owned);
            if start.is_none() {
                break;
            }
        }
        Ok(keys)
    }

    /// `b2_delete_key` through v3 (the version that deletes single-bucket keys); a key
    /// only v4 may delete (a multi-bucket key) is deleted through v4. `Ok(false)`: no
    /// such key (already deleted).
    pub async fn delete_key(&self, key_id: &str) -> Result<bool, B2AdminError> {
        let op = Op::DeleteKey;
        let body = json!({"applicationKeyId": key_id});
        match self.api(op, "v3", "b2_delete_key", &body, true).await {
            Ok(_) => Ok(true),
            Err(e) if e.status() == Some(400) => {
                // v3 refuses multi-bucket keys, and unknown keys; v4 tells them apart.
                match self.api(op, "v4", "b2_delete_key", &body, true).await {
                    Ok(_) => Ok(true),
                    Err(e4) if e4.status() == Some(400) => {
                        // Both refused: gone already — unless v3 still lists it.
                        let listed = self.list_keys().await?.iter().any(|k| k.key_id == key_id);
                        if listed { Err(e) } else { Ok(false) }
                    }
                    Err(e4) => Err(e4),
                }
            }
            Err(e) => Err(e),
        }
    }

    /// Proves a scoped key the way TrueNAS's rclone uses it: sign in on **v1**, list the
    /// bucket by name and its file names on v1.
    pub async fn prove_scoped_key(
        &mut self,
        key_id: &str,
        key: &SecretString,
        bucket: &str,
        bucket_id: &str,
    ) -> Result<KeyProof, B2AdminError> {
        self.scrub.push(key.clone());
        let url = join(&self.api_base, "v1", "b2_authorize_account")?;
        let body = self
            .send(Op::AuthorizeV1, true, || {
                self.http
                    .get(url.clone())
                    .basic_auth(key_id, Some(key.expose_secret()))
            })
            .await?;
        let op = Op::AuthorizeV1;
        let text = |v: &Value, k: &str| v.get(k).and_then(Value::as_str).map(str::to_owned);
        let (Some(token), Some(api_url), Some(account)) = (
            text(&body, "authorizationToken"),
            text(&body, "apiUrl"),
            text(&body, "accountId"),
        ) else {
            return Err(protocol(
                op,
                "v1 sign-in reply lacks token, apiUrl or accountId",
            ));
        };
        let token = SecretString::from(token);
        self.scrub.push(token.clone());
        let api_url = check_returned(&self.api_base, &api_url, op)?;
        let allowed = body.get("allowed").cloned().unwrap_or(Value::Null);
        let proof = KeyProof {
            bucket_id: text(&allowed, "bucketId"),
            bucket_name: text(&allowed, "bucketName"),
            capabilities: strings(allowed.get("capabilities")),
        };
        let header = sensitive(&token);
        let list_url = join(&api_url, "v1", "b2_list_buckets")?;
        let list_body = json!({"accountId": account, "bucketName": bucket});
        let listed = self
            .send(Op::ListBucketsV1, true, || {
                self.http
                    .post(list_url.clone())
                    .header(AUTHORIZATION, header.clone())
                    .json(&list_body)
            })
            .await?;
        let found = listed
            .get("buckets")
            .and_then(Value::as_array)
            .is_some_and(|b| {
                b.iter()
                    .any(|b| b.get("bucketName").and_then(Value::as_str) == Some(bucket))
            });
        if !found {
            return Err(protocol(
                Op::ListBucketsV1,
                "the scoped key signed in on v1 but its bucket is not listed",
            ));
        }
        let files_url = join(&api_url, "v1", "b2_list_file_names")?;
        let files_body = json!({"bucketId": bucket_id, "maxFileCount": 1});
        self.send(Op::ListFileNamesV1, true, || {
            self.http
                .post(files_url.clone())
                .header(AUTHORIZATION, header.clone())
                .json(&files_body)
        })
        .await?;
        Ok(proof)
    }

    /// Sends a request (rebuilt per attempt), retrying transient failures when `retry`.
    async fn send(
        &self,
        op: Op,
        retry: bool,
        build: impl Fn() -> reqwest::RequestBuilder,
    ) -> Result<Value, B2AdminError> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let outcome = self.attempt(op, build()).await;
            let (status, code, detail, after) = match outcome {
                Attempt::Done(v) => return Ok(v),
                Attempt::Fail(e) => return Err(e),
                Attempt::Retry {
                    status,
                    code,
                    detail,
                    after,
                } => (status, code, detail, after),
            };
            let give_up =
                !retry || attempt >= ATTEMPTS || after.is_some_and(|a| a > Duration::from_secs(60));
            if give_up {
                return Err(match status {
                    Some(status) => B2AdminError::Unavailable {
                        op,
                        status,
                        code,
                        attempts: attempt,
                    },
                    None => B2AdminError::Network {
                        op,
                        detail,
                        attempts: attempt,
                    },
                });
            }
            let backoff = self
                .options
                .base_delay
                .saturating_mul(2u32.saturating_pow(attempt - 1))
                .min(Duration::from_secs(16));
            tokio::time::sleep(after.unwrap_or(backoff)).await;
        }
    }

    async fn attempt(&self, op: Op, request: reqwest::RequestBuilder) -> Attempt {
        let response = match request.send().await {
            Ok(r) => r,
            Err(e) => {
                return Attempt::Retry {
                    status: None,
                    code: String::new(),
                    detail: self.scrubbed(&error_chain(&e)),
                    after: None,
                };
            }
        };
        let status = response.status();
        let after = response
            .headers()
            .get(RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        let bytes = match read_capped(response).await {
            Ok(b) => b,
            Err(detail) => {
                return Attempt::Retry {
                    status: None,
                    code: String::new(),
                    detail: self.scrubbed(&detail),
                    after: None,
                };
            }
        };
        let Ok(body) = serde_json::from_slice::<Value>(&bytes) else {
            if status.is_success() {
                return Attempt::Fail(protocol(op, "reply is not JSON"));
            }
            return Self::judge(op, status, String::new(), String::new(), after);
        };
        if status.is_success() {
            return Attempt::Done(body);
        }
        let code = body
            .get("code")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        let message = self.scrubbed(body.get("message").and_then(Value::as_str).unwrap_or(""));
        Self::judge(op, status, code, message, after)
    }

    fn judge(
        op: Op,
        status: StatusCode,
        code: String,
        message: String,
        after: Option<Duration>,
    ) -> Attempt {
        let transient = matches!(status.as_u16(), 408 | 429 | 500 | 502 | 503 | 504);
        if transient {
            Attempt::Retry {
                status: Some(status.as_u16()),
                code,
                detail: message,
                after,
            }
        } else {
            Attempt::Fail(B2AdminError::Api {
                op,
                status: status.as_u16(),
                code,
                message,
            })
        }
    }
}

async fn read_capped(mut response: reqwest::Response) -> Result<Vec<u8>, String> {
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(|e| error_chain(&e))? {
        if body.len() + chunk.len() > MAX_BODY {
            return Err(format!("reply larger than {MAX_BODY} bytes"));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

fn sensitive(token: &SecretString) -> HeaderValue {
    let mut value = HeaderValue::from_str(token.expose_secret())
        .unwrap_or_else(|_| HeaderValue::from_static("invalid-token"));
    value.set_sensitive(true);
    value
}

fn protocol(op: Op, detail: &str) -> B2AdminError {
    B2AdminError::Protocol {
        op,
        detail: detail.to_owned(),
    }
}

fn strings(value: Option<&Value>) -> Vec<String> {
    value
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

fn join(base: &Url, version: &str, name: &str) -> Result<Url, B2AdminError> {
    base.join(&format!("/b2api/{version}/{name}"))
        .map_err(|_| B2AdminError::BadUrl {
            url: base.to_string(),
            rule: "cannot add an API path to it",
        })
}

/// A URL B2 returned must keep the configured base's safety: https, or loopback http
/// when the base itself is loopback http (tests).
fn check_returned(base: &Url, text: &str, op: Op) -> Result<Url, B2AdminError> {
    let url = check_api_url(text).map_err(|_| protocol(op, "B2 returned an unusable apiUrl"))?;
    if base.scheme() == "https" && url.scheme() != "https" {
        return Err(protocol(op, "B2 returned a non-https apiUrl"));
    }
    Ok(url)
}

fn parse_v4_sign_in(body: &Value) -> Result<(SecretString, String, AdminInfo), B2AdminError> {
    let op = Op::AuthorizeAdmin;
    let text = |v: &Value, k: &str| v.get(k).and_then(Value::as_str).map(str::to_owned);
    let storage = body
        .pointer("/apiInfo/storageApi")
        .ok_or_else(|| protocol(op, "no apiInfo.storageApi"))?;
    let (Some(token), Some(api_url), Some(account_id)) = (
        text(body, "authorizationToken"),
        text(storage, "apiUrl"),
        text(body, "accountId"),
    ) else {
        return Err(protocol(
            op,
            "sign-in reply lacks token, apiUrl or accountId",
        ));
    };
    let allowed = storage.get("allowed").cloned().unwrap_or(Value::Null);
    let restricted_to = allowed
        .get("buckets")
        .and_then(Value::as_array)
        .filter(|b| !b.is_empty())
        .map(|b| {
            b.iter()
                .map(|x| {
                    text(x, "name")
                        .or_else(|| text(x, "id"))
                        .unwrap_or_default()
                })
                .collect()
        });
    Ok((
        SecretString::from(token),
        api_url,
        AdminInfo {
            account_id,
            capabilities: strings(allowed.get("capabilities")),
            restricted_to,
        },
    ))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Gated<T> {
    #[serde(default)]
    is_client_authorized_to_read: bool,
    #[serde(default)]
    value: Option<T>,
}

fn parse_bucket(op: Op, b: &Value) -> Result<BucketState, B2AdminError> {
    let text = |k: &str| b.get(k).and_then(Value::as_str).map(str::to_owned);
    let (Some(id), Some(name), Some(bucket_type)) =
        (text("bucketId"), text("bucketName"), text("bucketType"))
    else {
        return Err(protocol(
            op,
            "bucket lacks bucketId, bucketName or bucketType",
        ));
    };
    let gated = |k: &str| b.get(k).cloned().unwrap_or(Value::Null);
    let encryption: Option<Gated<Encryption>> =
        serde_json::from_value(gated("defaultServerSideEncryption"))
            .map_err(|_| protocol(op, "unreadable defaultServerSideEncryption"))?;
    let lock: Option<Gated<FileLock>> = serde_json::from_value(gated("fileLockConfiguration"))
        .map_err(|_| protocol(op, "unreadable fileLockConfiguration"))?;
    let lifecycle_rules: Vec<LifecycleRule> =
        serde_json::from_value(b.get("lifecycleRules").cloned().unwrap_or(json!([])))
            .map_err(|_| protocol(op, "unreadable lifecycleRules"))?;
    Ok(BucketState {
        id,
        name,
        account_id: text("accountId").unwrap_or_default(),
        bucket_type,
        default_encryption: encryption
            .filter(|g| g.is_client_authorized_to_read)
            .map(|g| g.value.unwrap_or_default()),
        file_lock: lock
            .filter(|g| g.is_client_authorized_to_read)
            .map(|g| g.value.unwrap_or_default()),
        lifecycle_rules,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_urls() {
        assert!(check_api_url("https://api.backblazeb2.com").is_ok());
        assert!(check_api_url("http://127.0.0.1:4000").is_ok());
        assert!(check_api_url("http://[::1]:4000").is_ok());
        assert!(check_api_url("http://localhost:4000").is_ok());
        assert!(check_api_url("http://api.backblazeb2.com").is_err());
        assert!(check_api_url("http://10.0.0.1").is_err());
        assert!(check_api_url("ftp://x").is_err());
        assert!(check_api_url("https://user:pw@api.backblazeb2.com").is_err());
        assert!(check_api_url("not a url").is_err());
    }

    #[test]
    fn bucket_parsing_hides_unreadable_values() {
        let b = json!({
            "bucketId": "b1", "bucketName": "truenas-x", "bucketType": "allPrivate",
            "accountId": "a",
            "defaultServerSideEncryption": {"isClientAuthorizedToRead": false, "value": {"mode": null}},
            "fileLockConfiguration": {"isClientAuthorizedToRead": true,
                "value": {"isFileLockEnabled": true, "defaultRetention": {"mode": "compliance", "period": {"duration": 14, "unit": "days"}}}},
            "lifecycleRules": [{"fileNamePrefix": "", "daysFromHidingToDeleting": 30, "daysFromUploadingToHiding": null}]
        });
        let s = parse_bucket(Op::ListBuckets, &b).unwrap();
        assert_eq!(s.default_encryption, None);
        assert!(s.file_lock.unwrap().is_file_lock_enabled);
        assert_eq!(s.lifecycle_rules.len(), 1);
    }
}
