//! A small, read-only client for the Backblaze B2 native API v4.
//!
//! Owns: signing in with an application key (`b2_authorize_account`, HTTP Basic), the
//! session token and its one-time renewal, the four read calls the verifier needs
//! (`b2_list_buckets`, `b2_list_file_names`, `b2_download_file_by_name` with a `Range`,
//! and a v1 sign-in probe), retries with back-off for 408/429/5xx (honouring a bounded
//! `Retry-After`), timeouts, response size caps, and [`ApiError`] with its fault.
//! Does not: decide whether a bucket is compliant (`verify`, `crypt`), write anything to
//! B2, or store the key anywhere.
//! Invariants: the application key and the session token live only in `SecretString`s
//! and in headers marked sensitive; no error, log line or `Debug` output contains them
//! (B2's own error messages are scrubbed of both before they are kept). Requests go over
//! `https://`, or `http://` to a loopback address (tests). Every request has a timeout,
//! every body a size cap, every retry loop a bound; once a call gave up on a transient
//! failure the client fails fast for the rest of its life.
//! Limitations: only the calls and fields the verifier uses are modelled; unknown fields
//! are ignored. `Retry-After` is understood in seconds only (the form B2 sends).

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use reqwest::header::{AUTHORIZATION, HeaderMap, HeaderValue, RANGE, RETRY_AFTER};
use reqwest::{StatusCode, Url};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde_json::json;

use crate::fault::Fault;
use crate::fault::error_chain;

/// Production API base: the only address the key is ever sent to by default.
pub const DEFAULT_API_BASE: &str = "https://api.backblazeb2.com";

const MAX_AUTH_BODY: usize = 64 * 1024;
const MAX_JSON_BODY: usize = 1024 * 1024;
const MAX_MESSAGE_CHARS: usize = 300;

/// Which B2 call failed (named as in Backblaze's API documentation).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    /// `b2_authorize_account` on API v4.
    Authorize,
    /// `b2_authorize_account` on API v1 (the version TrueNAS's bundled rclone uses).
    AuthorizeV1,
    /// `b2_list_buckets`.
    ListBuckets,
    /// `b2_list_file_names`.
    ListFileNames,
    /// `b2_download_file_by_name`.
    DownloadFileByName,
}

impl fmt::Display for Operation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Operation::Authorize => "b2_authorize_account (v4)",
            Operation::AuthorizeV1 => "b2_authorize_account (v1)",
            Operation::ListBuckets => "b2_list_buckets",
            Operation::ListFileNames => "b2_list_file_names",
            Operation::DownloadFileByName => "b2_download_file_by_name",
        })
    }
}

/// Why a B2 call failed. Messages quoted from B2 are scrubbed of the key and token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApiError {
    /// The configured or returned URL is not acceptable.
    #[error("B2 URL `{url}` is not usable: {rule}")]
    BadUrl { url: String, rule: &'static str },
    /// The HTTPS client could not be built.
    #[error("cannot set up the HTTPS client for B2: {detail}")]
    ClientSetup { detail: String },
    /// Sign-in refused: wrong key ID or application key, or the key was deleted.
    #[error("B2 refused application key `{key_id}` ({op}): {message}")]
    KeyRejected {
        op: Operation,
        key_id: String,
        message: String,
    },
    /// The key exists but cannot be used with this API version (400 "not currently
    /// supported on API version number N", or 401 `unsupported`).
    #[error("B2 does not accept application key `{key_id}` on this API version ({op}): {message}")]
    VersionUnsupported {
        op: Operation,
        key_id: String,
        message: String,
    },
    /// 401 `unauthorized` / 403 `access_denied`: the key lacks a capability, or the
    /// bucket / name prefix is outside the key's restriction.
    #[error("{op} on `{resource}` is not allowed for this key ({code}): {message}")]
    NotAllowed {
        op: Operation,
        resource: String,
        code: String,
        message: String,
    },
    /// 403 `*_cap_exceeded`: the account's spending caps block the call.
    #[error("{op} on `{resource}` blocked by a B2 account cap ({code})")]
    CapExceeded {
        op: Operation,
        resource: String,
        code: String,
    },
    /// 404: the file does not exist.
    #[error("{op}: `{resource}` not found")]
    NotFound { op: Operation, resource: String },
    /// 429 after the allowed retries, or with a `Retry-After` beyond our bound.
    #[error("{op} on `{resource}`: B2 is rate limiting the agent (HTTP 429{})",
        retry_after.map(|d| format!(", retry after {}s", d.as_secs())).unwrap_or_default())]
    RateLimited {
        op: Operation,
        resource: String,
        retry_after: Option<Duration>,
    },
    /// 408/5xx after the allowed retries.
    #[error("{op} on `{resource}`: B2 answered HTTP {status} ({code}) {attempts} times")]
    ServiceUnavailable {
        op: Operation,
        resource: String,
        status: u16,
        code: String,
        attempts: u32,
    },
    /// No complete answer within the request timeout (after the allowed retries).
    #[error("{op} on `{resource}`: no answer from B2 within {after:?}")]
    Timeout {
        op: Operation,
        resource: String,
        after: Duration,
    },
    /// Connection refused, DNS, TLS: B2 could not be reached (after the allowed retries).
    #[error("{op} on `{resource}`: cannot reach B2: {detail}")]
    Network {
        op: Operation,
        resource: String,
        detail: String,
    },
    /// The session token was refused again right after a fresh sign-in.
    #[error("{op} on `{resource}`: B2 refused a freshly issued session token ({code})")]
    TokenRefused {
        op: Operation,
        resource: String,
        code: String,
    },
    /// Any other 4xx: the agent sent something B2 does not accept.
    #[error("{op} on `{resource}`: B2 rejected the request (HTTP {status}, {code}): {message}")]
    Rejected {
        op: Operation,
        resource: String,
        status: u16,
        code: String,
        message: String,
    },
    /// The reply could not be understood.
    #[error("{op} on `{resource}`: unexpected reply from B2: {detail}")]
    Protocol {
        op: Operation,
        resource: String,
        detail: String,
    },
    /// The reply body exceeded the cap for this call.
    #[error("{op} on `{resource}`: reply larger than {limit} bytes")]
    TooLarge {
        op: Operation,
        resource: String,
        limit: usize,
    },
}

impl ApiError {
    /// Who has to act.
    pub fn fault(&self) -> Fault {
        match self {
            ApiError::BadUrl { .. }
            | ApiError::KeyRejected { .. }
            | ApiError::VersionUnsupported { .. }
            | ApiError::NotAllowed { .. }
            | ApiError::CapExceeded { .. }
            | ApiError::NotFound { .. } => Fault::Operator,
            ApiError::RateLimited { .. }
            | ApiError::ServiceUnavailable { .. }
            | ApiError::Timeout { .. }
            | ApiError::Network { .. }
            | ApiError::TokenRefused { .. } => Fault::Transient,
            ApiError::ClientSetup { .. }
            | ApiError::Rejected { .. }
            | ApiError::Protocol { .. }
            | ApiError::TooLarge { .. } => Fault::Bug,
        }
    }
}

/// How long the client waits between retries. Production uses tokio's timer; tests pass
/// a recorder so waits can be asserted without wall-clock time.
pub trait Pause: Send + Sync {
    /// Waits for `duration`.
    fn pause(&self, duration: Duration) -> Pin<Box<dyn Future<Output = ()> + Send + '_>>;
}

/// [`Pause`] with `tokio::time::sleep`.
#[derive(Debug, Clone, Copy, Default)]
pub struct TokioPause;

impl Pause for TokioPause {
    fn pause(&self, duration: Duration) -> Pin<Box<dyn Future<Output = ()> + Send + '_>> {
        Box::pin(tokio::time::sleep(duration))
    }
}

/// Retry bounds for one call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in total, including the first (a re-sign-in after an expired token
    /// does not count).
    pub max_attempts: u32,
    /// First back-off when B2 gives no `Retry-After`; doubled per attempt.
    pub base_delay: Duration,
    /// Ceiling of the exponential back-off.
    pub max_delay: Duration,
    /// The longest `Retry-After` we are willing to wait; beyond it the call fails as
    /// rate limited (a verifier must not stall for minutes).
    pub max_retry_after: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 4,
            base_delay: Duration::from_secs(1),
            max_delay: Duration::from_secs(16),
            max_retry_after: Duration::from_secs(60),
        }
    }
}

impl RetryPolicy {
    /// The wait before attempt `attempt + 1` after attempt `attempt` (1-based) failed
    /// in a retryable way, or `None` to give up.
    pub fn next_delay(&self, attempt: u32, retry_after: Option<Duration>) -> Option<Duration> {
        if attempt >= self.max_attempts {
            return None;
        }
        match retry_after {
            Some(wait) if wait > self.max_retry_after => None,
            Some(wait) => Some(wait),
            None => {
                let factor = 2u32.saturating_pow(attempt.saturating_sub(1));
                Some(self.base_delay.saturating_mul(factor).min(self.max_delay))
            }
        }
    }
}

/// Client settings.
#[derive(Clone)]
pub struct ClientOptions {
    /// `https://api.backblazeb2.com`, or a loopback `http://` fake in tests.
    pub api_base: String,
    /// Timeout of one whole request (connect + send + body).
    pub request_timeout: Duration,
    /// Timeout of connecting (TCP + TLS).
    pub connect_timeout: Duration,
    /// Retry bounds.
    pub retry: RetryPolicy,
    /// How retries wait.
    pub pause: Arc<dyn Pause>,
}

impl Default for ClientOptions {
    fn default() -> Self {
        Self {
            api_base: DEFAULT_API_BASE.to_owned(),
            request_timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(10),
            retry: RetryPolicy::default(),
            pause: Arc::new(TokioPause),
        }
    }
}

impl fmt::Debug for ClientOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientOptions")
            .field("api_base", &self.api_base)
            .field("request_timeout", &self.request_timeout)
            .field("connect_timeout", &self.connect_timeout)
            .field("retry", &self.retry)
            .finish_non_exhaustive()
    }
}

/// One bucket the key is restricted to (`apiInfo.storageApi.allowed.buckets[]`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct AllowedBucket {
    /// Bucket id.
    pub id: String,
    /// Bucket name; `None` when that bucket has since been deleted.
    #[serde(default)]
    pub name: Option<String>,
}

/// What the key may do (`apiInfo.storageApi.allowed`, v4 shape).
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Allowed {
    /// `None` (or empty): the key is not restricted to any bucket.
    #[serde(default)]
    pub buckets: Option<Vec<AllowedBucket>>,
    /// Capability names, e.g. `listBuckets`, `readFiles`.
    #[serde(default)]
    pub capabilities: Vec<String>,
    /// File-name prefix restriction, if any.
    #[serde(default)]
    pub name_prefix: Option<String>,
}

impl Allowed {
    /// True when the key carries capability `name`.
    pub fn has(&self, name: &str) -> bool {
        self.capabilities.iter().any(|c| c == name)
    }
}

/// What a successful v4 sign-in tells about the key (no secrets).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyInfo {
    /// The B2 account the key belongs to.
    pub account_id: String,
    /// The key's restrictions and capabilities.
    pub allowed: Allowed,
}

/// A capability-gated bucket setting: readable only with the matching `read*` capability.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Gated<T> {
    /// `isClientAuthorizedToRead: false`: the key may not see the value.
    NotReadable,
    /// The value as B2 reported it.
    Readable(T),
}

/// Bucket default server-side encryption (`defaultServerSideEncryption.value`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
pub struct Encryption {
    /// `SSE-B2`, `none`, or `None` (B2 treats null as none).
    #[serde(default)]
    pub mode: Option<String>,
    /// `AES256` for SSE-B2.
    #[serde(default)]
    pub algorithm: Option<String>,
}

/// A retention period (`{duration, unit}`, unit `days` or `years`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Period {
    pub duration: u64,
    pub unit: String,
}

/// Bucket default retention (`defaultRetention`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
pub struct DefaultRetention {
    /// `compliance`, `governance`, or `None` when retention is off.
    #[serde(default)]
    pub mode: Option<String>,
    #[serde(default)]
    pub period: Option<Period>,
}

/// Object Lock settings (`fileLockConfiguration.value`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FileLock {
    /// B2 may send `null` for a bucket that never had Object Lock: Backblaze's SDK types
    /// the field `bool | None` and its RawSimulator sends `null` for such a bucket. Read
    /// as not enabled (Object Lock is off until turned on, and never turned off again).
    #[serde(default, deserialize_with = "null_as_false")]
    pub is_file_lock_enabled: bool,
    #[serde(default)]
    pub default_retention: Option<DefaultRetention>,
}

fn null_as_false<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<bool, D::Error> {
    Ok(Option::<bool>::deserialize(deserializer)?.unwrap_or(false))
}

/// One lifecycle rule; `None` numbers are JSON `null`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LifecycleRule {
    #[serde(default)]
    pub file_name_prefix: String,
    #[serde(default)]
    pub days_from_hiding_to_deleting: Option<u64>,
    #[serde(default)]
    pub days_from_uploading_to_hiding: Option<u64>,
    #[serde(default)]
    pub days_from_starting_to_canceling_unfinished_large_files: Option<u64>,
}

/// The bucket fields the verifier checks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bucket {
    pub id: String,
    pub name: String,
    /// `allPrivate`, `allPublic`, ...
    pub bucket_type: String,
    /// Needs `readBucketEncryption`.
    pub default_encryption: Gated<Encryption>,
    /// Needs `readBucketRetentions`.
    pub file_lock: Gated<FileLock>,
    pub lifecycle_rules: Vec<LifecycleRule>,
}

/// One entry of `b2_list_file_names`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileEntry {
    /// Full object name (`<guid>/<pool>/docs/a.txt.bin`).
    pub name: String,
    /// `upload`, `folder`, `hide`, `start`.
    pub action: String,
    /// Stored (encrypted) size in bytes.
    pub content_length: u64,
    /// Per-object server-side encryption mode (`SSE-B2`), `None` when absent.
    pub encryption_mode: Option<String>,
}

/// The first bytes of an object, from a ranged download.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RangeRead {
    /// At most the requested number of bytes (fewer for a short object).
    pub bytes: Vec<u8>,
    /// Whole object size from `Content-Range` / `Content-Length`, when given.
    pub total_size: Option<u64>,
}

/// A read-only B2 session for one application key.
pub struct Client {
    http: reqwest::Client,
    api_base: Url,
    key_id: String,
    key: SecretString,
    options: ClientOptions,
    session: Option<Arc<Session>>,
    /// Set once a call has exhausted its retries on a transient failure: B2 is unreachable
    /// or throttling us, so later calls fail fast instead of each waiting out its retries.
    gave_up: Option<ApiError>,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("api_base", &self.api_base.as_str())
            .field("key_id", &self.key_id)
            .field("signed_in", &self.session.is_some())
            .finish_non_exhaustive()
    }
}

struct Session {
    token: SecretString,
    api_url: Url,
    download_url: Url,
    info: KeyInfo,
}

/// A reply read under a size cap.
struct Reply {
    status: StatusCode,
    headers: HeaderMap,
    body: Vec<u8>,
}

#[derive(Clone, Copy)]
enum BodyLimit {
    /// A larger body is an error.
    Fail(usize),
    /// Keep the first N bytes and stop reading.
    Truncate(usize),
}

/// What to do with a non-success reply.
enum Next {
    /// 401 `bad_auth_token` / `expired_auth_token`: get a new token, then repeat.
    SignInAgain {
        code: String,
    },
    /// Transient: wait (B2's `Retry-After` or back-off) and repeat, or end with `or_else`
    /// once the policy says stop.
    Retry {
        retry_after: Option<Duration>,
        or_else: ApiError,
    },
    Fail(ApiError),
}

impl Client {
    /// A client for one key. Nothing is sent until the first call.
    pub fn new(key_id: &str, key: SecretString, options: ClientOptions) -> Result<Self, ApiError> {
        let api_base = checked_url(&options.api_base)?;
        // reqwest is built with `rustls-no-provider` and panics without a process default.
        crate::middleware::tls::install_crypto_provider();
        let mut builder = reqwest::Client::builder()
            .user_agent(crate::USER_AGENT)
            .timeout(options.request_timeout)
            .connect_timeout(options.connect_timeout)
            // B2 never redirects; following one could send the token elsewhere.
            .redirect(reqwest::redirect::Policy::none())
            .https_only(api_base.scheme() == "https");
        if api_base.scheme() == "http" {
            builder = builder.no_proxy();
        }
        let http = builder.build().map_err(|e| ApiError::ClientSetup {
            detail: error_chain(&e),
        })?;
        Ok(Self {
            http,
            api_base,
            key_id: key_id.to_owned(),
            key,
            options,
            session: None,
            gave_up: None,
        })
    }

    /// Signs in on API v4 (again, if already signed in) and returns what the key may do.
    pub async fn authorize(&mut self) -> Result<KeyInfo, ApiError> {
        self.session = None;
        Ok(self.session().await?.info.clone())
    }

    /// Signs in on API **v1**, the version TrueNAS's bundled rclone (< 1.73) uses.
    /// `Err(VersionUnsupported)` means rclone on the NAS will not be able to use this key.
    pub async fn probe_v1(&mut self) -> Result<(), ApiError> {
        let url = endpoint(&self.api_base, "v1", "b2_authorize_account")?;
        self.sign_in(Operation::AuthorizeV1, url).await.map(|_| ())
    }

    /// `b2_list_buckets` for one bucket name (a restricted key must name its bucket).
    /// `Ok(None)` when no such bucket is visible to the account.
    pub async fn find_bucket(&mut self, name: &str) -> Result<Option<Bucket>, ApiError> {
        let session = self.session().await?;
        let body = json!({
            "accountId": session.info.account_id,
            "bucketName": name,
            "bucketTypes": ["all"],
        });
        let reply = self
            .post_json(Operation::ListBuckets, "b2_list_buckets", name, &body)
            .await?;
        decode_bucket(name, &reply)
    }

    /// `b2_list_file_names` under `prefix`, at most `max` entries (first page only).
    pub async fn list_file_names(
        &mut self,
        bucket_id: &str,
        prefix: &str,
        max: u32,
    ) -> Result<Vec<FileEntry>, ApiError> {
        let body = json!({
            "bucketId": bucket_id,
            "prefix": prefix,
            "maxFileCount": max.clamp(1, 1000),
        });
        let reply = self
            .post_json(
                Operation::ListFileNames,
                "b2_list_file_names",
                prefix,
                &body,
            )
            .await?;
        decode_file_names(prefix, &reply)
    }

    /// Downloads the first `len` bytes (`Range: bytes=0-(len-1)`) of `bucket/name`.
    /// Accepts 206 and 200 (then reads only `len` bytes) and short bodies.
    pub async fn read_head(
        &mut self,
        bucket: &str,
        name: &str,
        len: usize,
    ) -> Result<RangeRead, ApiError> {
        let op = Operation::DownloadFileByName;
        let len = len.max(1);
        let session = self.session().await?;
        let url = download_url(&session.download_url, bucket, name)?;
        let range = format!("bytes=0-{}", len - 1);
        let result = self
            .call(op, name, BodyLimit::Truncate(len), |http| {
                http.get(url.clone()).header(RANGE, range.as_str())
            })
            .await;
        match result {
            Ok(reply) => Ok(RangeRead {
                total_size: total_size(&reply),
                bytes: reply.body,
            }),
            // A range past the end of an empty object: B2 answers 416.
            Err(ApiError::Rejected { status: 416, .. }) => Ok(RangeRead {
                bytes: Vec::new(),
                total_size: Some(0),
            }),
            Err(e) => Err(e),
        }
    }

    /// A v4 JSON call: `POST {apiUrl}/b2api/v4/{call}` with `body` under the session's
    /// token; the reply's body (at most [`MAX_JSON_BODY`] bytes).
    async fn post_json(
        &mut self,
        op: Operation,
        call: &str,
        resource: &str,
        body: &serde_json::Value,
    ) -> Result<Vec<u8>, ApiError> {
        let session = self.session().await?;
        let url = endpoint(&session.api_url, "v4", call)?;
        let reply = self
            .call(op, resource, BodyLimit::Fail(MAX_JSON_BODY), |http| {
                http.post(url.clone()).json(body)
            })
            .await?;
        Ok(reply.body)
    }

    /// The current session, signing in on v4 first when there is none.
    async fn session(&mut self) -> Result<Arc<Session>, ApiError> {
        if let Some(session) = &self.session {
            return Ok(Arc::clone(session));
        }
        let url = endpoint(&self.api_base, "v4", "b2_authorize_account")?;
        let reply = self.sign_in(Operation::Authorize, url).await?;
        let session = Arc::new(parse_session(&self.api_base, &self.key_id, &reply.body)?);
        self.session = Some(Arc::clone(&session));
        Ok(session)
    }

    /// `b2_authorize_account` with HTTP Basic auth, retried like every other call.
    async fn sign_in(&mut self, op: Operation, url: Url) -> Result<Reply, ApiError> {
        self.fail_fast()?;
        let result = self.sign_in_with_retries(op, url).await;
        self.note_transient(result)
    }

    async fn sign_in_with_retries(&self, op: Operation, url: Url) -> Result<Reply, ApiError> {
        let resource = self.key_id.clone();
        let mut attempt = 0;
        loop {
            attempt += 1;
            let request = self
                .http
                .get(url.clone())
                .basic_auth(&self.key_id, Some(self.key.expose_secret()));
            let limit = BodyLimit::Fail(MAX_AUTH_BODY);
            let next = match self.exchange(op, &resource, request, limit).await {
                Ok(reply) if reply.status.is_success() => return Ok(reply),
                Ok(reply) => self.judge(op, &resource, &reply, attempt),
                Err(e) => transport_next(e),
            };
            self.wait_or_fail(next, attempt).await?;
        }
    }

    /// A token-authenticated call: signs in again once on an expired/bad token, retries
    /// transient failures within the policy.
    async fn call(
        &mut self,
        op: Operation,
        resource: &str,
        limit: BodyLimit,
        build: impl Fn(&reqwest::Client) -> reqwest::RequestBuilder,
    ) -> Result<Reply, ApiError> {
        self.fail_fast()?;
        let result = self.call_with_retries(op, resource, limit, build).await;
        self.note_transient(result)
    }

    fn fail_fast(&self) -> Result<(), ApiError> {
        match &self.gave_up {
            Some(e) => Err(e.clone()),
            None => Ok(()),
        }
    }

    fn note_transient<T>(&mut self, result: Result<T, ApiError>) -> Result<T, ApiError> {
        if let Err(e) = &result
            && e.fault() == Fault::Transient
        {
            self.gave_up = Some(e.clone());
        }
        result
    }

    async fn call_with_retries(
        &mut self,
        op: Operation,
        resource: &str,
        limit: BodyLimit,
        build: impl Fn(&reqwest::Client) -> reqwest::RequestBuilder,
    ) -> Result<Reply, ApiError> {
        let mut attempt = 0;
        let mut signed_in_again = false;
        loop {
            attempt += 1;
            let session = self.session().await?;
            let request = build(&self.http).header(AUTHORIZATION, token_header(&session)?);
            let next = match self.exchange(op, resource, request, limit).await {
                Ok(reply) if reply.status.is_success() => return Ok(reply),
                Ok(reply) => self.judge(op, resource, &reply, attempt),
                Err(e) => transport_next(e),
            };
            match next {
                Next::SignInAgain { code } if signed_in_again => {
                    return Err(ApiError::TokenRefused {
                        op,
                        resource: resource.to_owned(),
                        code,
                    });
                }
                Next::SignInAgain { .. } => {
                    // A token lives at most 24 h (b2_authorize_account doc); one fresh
                    // sign-in per call is enough, a second refusal is not "expiry".
                    tracing::info!(%op, "B2 session token expired; signing in again");
                    signed_in_again = true;
                    self.session = None;
                    attempt -= 1;
                }
                next => self.wait_or_fail(next, attempt).await?,
            }
        }
    }

    /// Waits before the next attempt, or returns the error that ends the call.
    async fn wait_or_fail(&self, next: Next, attempt: u32) -> Result<(), ApiError> {
        match next {
            Next::Fail(e) => Err(e),
            Next::SignInAgain { code } => Err(ApiError::Protocol {
                op: Operation::Authorize,
                resource: self.key_id.clone(),
                detail: format!("token error `{code}` while signing in"),
            }),
            Next::Retry {
                retry_after,
                or_else,
            } => {
                let Some(wait) = self.options.retry.next_delay(attempt, retry_after) else {
                    return Err(or_else);
                };
                tracing::info!(
                    attempt,
                    wait_secs = wait.as_secs_f64(),
                    "B2 call failed transiently ({or_else}); retrying"
                );
                self.options.pause.pause(wait).await;
                Ok(())
            }
        }
    }

    /// Sends one request and reads the body under `limit`. HTTP errors are not errors here.
    async fn exchange(
        &self,
        op: Operation,
        resource: &str,
        request: reqwest::RequestBuilder,
        limit: BodyLimit,
    ) -> Result<Reply, ApiError> {
        let transport = |e: reqwest::Error| self.transport_error(op, resource, &e);
        let mut response = request.send().await.map_err(transport)?;
        let status = response.status();
        let headers = response.headers().clone();
        let (cap, truncate) = match limit {
            BodyLimit::Fail(n) => (n, false),
            BodyLimit::Truncate(n) => (n, true),
        };
        // Error bodies are small JSON whatever the call.
        let cap = if status.is_success() {
            cap
        } else {
            MAX_AUTH_BODY
        };
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(transport)? {
            let room = cap - body.len();
            if chunk.len() > room {
                if truncate || !status.is_success() {
                    body.extend_from_slice(&chunk[..room]);
                    break;
                }
                return Err(ApiError::TooLarge {
                    op,
                    resource: resource.to_owned(),
                    limit: cap,
                });
            }
            body.extend_from_slice(&chunk);
        }
        tracing::debug!(%op, resource, status = status.as_u16(), bytes = body.len(), "B2 reply");
        Ok(Reply {
            status,
            headers,
            body,
        })
    }

    fn transport_error(&self, op: Operation, resource: &str, e: &reqwest::Error) -> ApiError {
        if e.is_timeout() {
            ApiError::Timeout {
                op,
                resource: resource.to_owned(),
                after: self.options.request_timeout,
            }
        } else {
            ApiError::Network {
                op,
                resource: resource.to_owned(),
                detail: self.scrub(&error_chain(e)),
            }
        }
    }

    /// Maps a non-success reply to the next step (B2 error table, REFERENCE §1.6).
    fn judge(&self, op: Operation, resource: &str, reply: &Reply, attempt: u32) -> Next {
        let body = error_body(&reply.body);
        let status = reply.status.as_u16();
        let message = self.scrub(&body.message);
        let resource = resource.to_owned();
        let key_id = self.key_id.clone();
        let is_sign_in = matches!(op, Operation::Authorize | Operation::AuthorizeV1);
        match (status, body.code.as_str()) {
            // New "multi-bucket" keys on v1-v3: 400 with this text (rclone PR #8978,
            // restic #5741); older docs list 401 `unsupported` for the same case.
            (400, _) if message.contains("not currently supported on API version") => {
                Next::Fail(ApiError::VersionUnsupported {
                    op,
                    key_id,
                    message,
                })
            }
            (401, "unsupported") => Next::Fail(ApiError::VersionUnsupported {
                op,
                key_id,
                message,
            }),
            (401, code @ ("bad_auth_token" | "expired_auth_token")) if !is_sign_in => {
                Next::SignInAgain {
                    code: code.to_owned(),
                }
            }
            (401, _) if is_sign_in => Next::Fail(ApiError::KeyRejected {
                op,
                key_id,
                message,
            }),
            (401, code) | (403, code @ "access_denied") => Next::Fail(ApiError::NotAllowed {
                op,
                resource,
                code: code.to_owned(),
                message,
            }),
            (403, code) if code.ends_with("_cap_exceeded") => Next::Fail(ApiError::CapExceeded {
                op,
                resource,
                code: code.to_owned(),
            }),
            (404, _) => Next::Fail(ApiError::NotFound { op, resource }),
            (429, _) => {
                let retry_after = retry_after(&reply.headers);
                Next::Retry {
                    retry_after,
                    or_else: ApiError::RateLimited {
                        op,
                        resource,
                        retry_after,
                    },
                }
            }
            (408 | 500 | 502 | 503 | 504, code) => Next::Retry {
                // rclone honours Retry-After on 503 too (b2.go shouldRetryNoReauth).
                retry_after: retry_after(&reply.headers),
                or_else: ApiError::ServiceUnavailable {
                    op,
                    resource,
                    status,
                    code: code.to_owned(),
                    attempts: attempt,
                },
            },
            (_, code) => Next::Fail(ApiError::Rejected {
                op,
                resource,
                status,
                code: code.to_owned(),
                message,
            }),
        }
    }

    /// Removes the key and the session token from text B2 (or a proxy) sent back.
    fn scrub(&self, text: &str) -> String {
        let mut out: String = text.chars().take(MAX_MESSAGE_CHARS).collect();
        let key = self.key.expose_secret();
        if !key.is_empty() {
            out = out.replace(key, "[REDACTED]");
        }
        if let Some(session) = &self.session {
            let token = session.token.expose_secret();
            if !token.is_empty() {
                out = out.replace(token, "[REDACTED]");
            }
        }
        out
    }
}

/// A v4 `b2_authorize_account` reply → the session, for a client whose API base is
/// `api_base` and whose key id is `key_id` (named in errors).
fn parse_session(api_base: &Url, key_id: &str, body: &[u8]) -> Result<Session, ApiError> {
    let wire: AuthorizeWire = decode(Operation::Authorize, key_id, body)?;
    let storage = wire.api_info.storage_api;
    let api_url = checked_url(&storage.api_url)?;
    let download_url = checked_url(&storage.download_url)?;
    // Never send the token over plaintext to a non-loopback host, even if told to.
    if api_base.scheme() == "https"
        && (api_url.scheme() != "https" || download_url.scheme() != "https")
    {
        return Err(ApiError::BadUrl {
            url: storage.api_url,
            rule: "B2 returned a non-https API URL",
        });
    }
    Ok(Session {
        token: wire.authorization_token,
        api_url,
        download_url,
        info: KeyInfo {
            account_id: wire.account_id,
            allowed: storage.allowed,
        },
    })
}

/// Decodes a v4 `b2_authorize_account` reply exactly as [`Client::authorize`] does (same
/// URL checks against `api_base`) and returns what it says about the key. The session
/// token is dropped. Public for the fuzz targets (`fuzz/targets.rs`); not an API.
#[doc(hidden)]
pub fn decode_authorize(api_base: &str, key_id: &str, body: &[u8]) -> Result<KeyInfo, ApiError> {
    let base = checked_url(api_base)?;
    parse_session(&base, key_id, body).map(|session| session.info)
}

/// Decodes a `b2_list_buckets` reply as [`Client::find_bucket`] does: the bucket named
/// `name`, if listed. Public for the fuzz targets; not an API.
#[doc(hidden)]
pub fn decode_bucket(name: &str, body: &[u8]) -> Result<Option<Bucket>, ApiError> {
    let wire: ListBucketsWire = decode(Operation::ListBuckets, name, body)?;
    Ok(wire
        .buckets
        .into_iter()
        .find(|b| b.bucket_name == name)
        .map(BucketWire::into_bucket))
}

/// Decodes a `b2_list_file_names` reply as [`Client::list_file_names`] does. Public for
/// the fuzz targets; not an API.
#[doc(hidden)]
pub fn decode_file_names(prefix: &str, body: &[u8]) -> Result<Vec<FileEntry>, ApiError> {
    let wire: ListFilesWire = decode(Operation::ListFileNames, prefix, body)?;
    Ok(wire.files.into_iter().map(FileWire::into_entry).collect())
}

/// Transport failures (timeouts, refused connections) are retried like a 503.
fn transport_next(error: ApiError) -> Next {
    match error {
        ApiError::Timeout { .. } | ApiError::Network { .. } => Next::Retry {
            retry_after: None,
            or_else: error,
        },
        other => Next::Fail(other),
    }
}

/// The raw token as B2 wants it (`Authorization: <token>`, no `Bearer`), marked sensitive
/// so hyper/reqwest never print it.
fn token_header(session: &Session) -> Result<HeaderValue, ApiError> {
    let mut value =
        HeaderValue::from_str(session.token.expose_secret()).map_err(|_| ApiError::Protocol {
            op: Operation::Authorize,
            resource: "authorizationToken".to_owned(),
            detail: "the session token is not a valid header value".to_owned(),
        })?;
    value.set_sensitive(true);
    Ok(value)
}

/// Accepts `https://…`, or `http://` to a loopback address (the test fake).
fn checked_url(raw: &str) -> Result<Url, ApiError> {
    let bad = |rule| ApiError::BadUrl {
        url: raw.to_owned(),
        rule,
    };
    let url = Url::parse(raw).map_err(|_| bad("not an absolute URL"))?;
    if !url.username().is_empty() || url.password().is_some() {
        return Err(bad("must not carry credentials"));
    }
    let host = url.host_str().unwrap_or_default();
    let loopback = host == "localhost"
        || host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    match (url.scheme(), host.is_empty(), loopback) {
        ("https", false, _) | ("http", false, true) => Ok(url),
        ("http", _, _) => Err(bad("plain http is allowed only to a loopback address")),
        _ => Err(bad("must be https://")),
    }
}

/// `{base}/b2api/{version}/{call}`.
fn endpoint(base: &Url, version: &str, call: &str) -> Result<Url, ApiError> {
    let raw = format!(
        "{}/b2api/{version}/{call}",
        base.as_str().trim_end_matches('/')
    );
    Url::parse(&raw).map_err(|_| ApiError::BadUrl {
        url: raw,
        rule: "cannot build the call URL",
    })
}

/// `{downloadUrl}/file/{bucket}/{name}`, each name segment percent-encoded, `/` kept
/// (b2sdk `b2_url_encode`).
fn download_url(base: &Url, bucket: &str, name: &str) -> Result<Url, ApiError> {
    let raw = format!(
        "{}/file/{}/{}",
        base.as_str().trim_end_matches('/'),
        percent_encode(bucket),
        percent_encode(name)
    );
    Url::parse(&raw).map_err(|_| ApiError::BadUrl {
        url: raw,
        rule: "cannot build the download URL",
    })
}

fn percent_encode(text: &str) -> String {
    use std::fmt::Write as _;
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~/".contains(&byte) {
            out.push(char::from(byte));
        } else {
            let _ = write!(out, "%{byte:02X}");
        }
    }
    out
}

fn decode<T: serde::de::DeserializeOwned>(
    op: Operation,
    resource: &str,
    body: &[u8],
) -> Result<T, ApiError> {
    serde_json::from_slice(body).map_err(|e| {
        // serde's "invalid type" messages quote the offending value, which could be a
        // token in a malformed sign-in reply: keep only missing-field names and positions.
        let text = e.to_string();
        let what = if text.starts_with("missing field") {
            text.split(" at line").next().unwrap_or_default().to_owned()
        } else {
            format!("{:?} error", e.classify())
        };
        ApiError::Protocol {
            op,
            resource: resource.to_owned(),
            detail: format!(
                "JSON does not match the B2 v4 shape: {what} at line {} column {}",
                e.line(),
                e.column()
            ),
        }
    })
}

/// B2's error body `{status, code, message}`; tolerant of proxies sending HTML.
#[derive(Debug, Default, Deserialize)]
struct ErrorBody {
    #[serde(default)]
    code: String,
    #[serde(default)]
    message: String,
}

fn error_body(body: &[u8]) -> ErrorBody {
    serde_json::from_slice(body).unwrap_or_default()
}

/// `Retry-After: <seconds>` (the only form B2 documents).
fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let secs: u64 = headers
        .get(RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()?;
    Some(Duration::from_secs(secs))
}

/// Object size from `Content-Range: bytes a-b/total` (206) or `Content-Length` (200).
fn total_size(reply: &Reply) -> Option<u64> {
    let header = |name| reply.headers.get(name).and_then(|v| v.to_str().ok());
    if reply.status == StatusCode::PARTIAL_CONTENT {
        return header(reqwest::header::CONTENT_RANGE)?
            .rsplit('/')
            .next()?
            .trim()
            .parse()
            .ok();
    }
    header(reqwest::header::CONTENT_LENGTH)?.trim().parse().ok()
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct AuthorizeWire {
    account_id: String,
    authorization_token: SecretString,
    api_info: ApiInfoWire,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ApiInfoWire {
    storage_api: StorageApiWire,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct StorageApiWire {
    api_url: String,
    download_url: String,
    #[serde(default)]
    allowed: Allowed,
}

#[derive(Deserialize)]
struct ListBucketsWire {
    buckets: Vec<BucketWire>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct GatedWire<T> {
    #[serde(default)]
    is_client_authorized_to_read: bool,
    #[serde(default = "Option::default")]
    value: Option<T>,
}

impl<T: Default> GatedWire<T> {
    /// Never trust `value` when the flag is false (b2sdk's simulator fills it anyway).
    fn into_gated(wire: Option<Self>) -> Gated<T> {
        match wire {
            Some(w) if w.is_client_authorized_to_read => {
                Gated::Readable(w.value.unwrap_or_default())
            }
            _ => Gated::NotReadable,
        }
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct BucketWire {
    bucket_id: String,
    bucket_name: String,
    #[serde(default)]
    bucket_type: String,
    #[serde(default)]
    default_server_side_encryption: Option<GatedWire<Encryption>>,
    #[serde(default)]
    file_lock_configuration: Option<GatedWire<FileLock>>,
    #[serde(default)]
    lifecycle_rules: Vec<LifecycleRule>,
}

impl BucketWire {
    fn into_bucket(self) -> Bucket {
        Bucket {
            id: self.bucket_id,
            name: self.bucket_name,
            bucket_type: self.bucket_type,
            default_encryption: GatedWire::into_gated(self.default_server_side_encryption),
            file_lock: GatedWire::into_gated(self.file_lock_configuration),
            lifecycle_rules: self.lifecycle_rules,
        }
    }
}

#[derive(Deserialize)]
struct ListFilesWire {
    files: Vec<FileWire>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct FileWire {
    file_name: String,
    #[serde(default)]
    action: String,
    #[serde(default)]
    content_length: u64,
    #[serde(default)]
    server_side_encryption: Option<Encryption>,
}

impl FileWire {
    fn into_entry(self) -> FileEntry {
        FileEntry {
            name: self.file_name,
            action: self.action,
            content_length: self.content_length,
            encryption_mode: self.server_side_encryption.and_then(|e| e.mode),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_must_be_https_or_loopback_http() {
        assert!(checked_url("https://api.backblazeb2.com").is_ok());
        assert!(checked_url("http://127.0.0.1:8080").is_ok());
        assert!(checked_url("http://[::1]:8080").is_ok());
        assert!(checked_url("http://localhost:1").is_ok());
        let err = checked_url("http://api.backblazeb2.com").unwrap_err();
        assert!(err.to_string().contains("loopback"), "{err}");
        assert!(checked_url("ftp://x").is_err());
        assert!(checked_url("https://user:pw@host").is_err());
        assert!(checked_url("api.backblazeb2.com").is_err());
    }

    #[test]
    fn download_urls_encode_each_segment_and_keep_slashes() {
        let base = Url::parse("https://f005.backblazeb2.com").unwrap();
        let url = download_url(&base, "bkt", "guid/pool0/My Docs/ä+b.txt.bin").unwrap();
        assert_eq!(
            url.as_str(),
            "https://f005.backblazeb2.com/file/bkt/guid/pool0/My%20Docs/%C3%A4%2Bb.txt.bin"
        );
    }

    #[test]
    fn endpoint_joins_version_and_call() {
        let base = Url::parse("http://127.0.0.1:9/").unwrap();
        assert_eq!(
            endpoint(&base, "v4", "b2_list_buckets").unwrap().as_str(),
            "http://127.0.0.1:9/b2api/v4/b2_list_buckets"
        );
    }

    #[test]
    fn back_off_doubles_is_capped_and_honours_retry_after() {
        let policy = RetryPolicy {
            max_attempts: 6,
            base_delay: Duration::from_secs(1),
            max_delay: Duration::from_secs(5),
            max_retry_after: Duration::from_secs(30),
        };
        let delays: Vec<_> = (1..6).map(|a| policy.next_delay(a, None)).collect();
        assert_eq!(
            delays,
            [1, 2, 4, 5, 5].map(|s| Some(Duration::from_secs(s)))
        );
        assert_eq!(policy.next_delay(6, None), None, "attempts are bounded");
        assert_eq!(
            policy.next_delay(1, Some(Duration::from_secs(7))),
            Some(Duration::from_secs(7))
        );
        assert_eq!(
            policy.next_delay(1, Some(Duration::from_secs(31))),
            None,
            "a Retry-After beyond the bound ends the call instead of stalling"
        );
    }

    #[test]
    fn gated_values_are_ignored_without_the_read_flag() {
        let wire: BucketWire = serde_json::from_value(json!({
            "bucketId": "b1", "bucketName": "n", "bucketType": "allPrivate",
            "defaultServerSideEncryption": {"isClientAuthorizedToRead": false, "value": {"mode": null}},
            "fileLockConfiguration": {"isClientAuthorizedToRead": true, "value": null},
            "lifecycleRules": [{"fileNamePrefix": "", "daysFromHidingToDeleting": 30, "daysFromUploadingToHiding": null}],
            "options": [], "revision": 3
        }))
        .unwrap();
        let bucket = wire.into_bucket();
        assert_eq!(bucket.default_encryption, Gated::NotReadable);
        assert_eq!(bucket.file_lock, Gated::Readable(FileLock::default()));
        assert_eq!(
            bucket.lifecycle_rules[0].days_from_hiding_to_deleting,
            Some(30)
        );
    }

    #[test]
    fn file_lock_enabled_null_reads_as_not_enabled() {
        // b2sdk's RawSimulator renders a bucket created without `fileLockEnabled` so.
        let body = br#"{"buckets": [{"bucketId": "b1", "bucketName": "n", "bucketType": "allPrivate",
            "fileLockConfiguration": {"isClientAuthorizedToRead": true,
                "value": {"isFileLockEnabled": null, "defaultRetention": {"mode": null, "period": null}}}}]}"#;
        let bucket = decode_bucket("n", body).unwrap().unwrap();
        let Gated::Readable(lock) = bucket.file_lock else {
            panic!("{bucket:?}")
        };
        assert!(!lock.is_file_lock_enabled);
    }

    #[test]
    fn retry_after_is_read_in_seconds_only() {
        let mut headers = HeaderMap::new();
        headers.insert(RETRY_AFTER, HeaderValue::from_static("3"));
        assert_eq!(retry_after(&headers), Some(Duration::from_secs(3)));
        headers.insert(
            RETRY_AFTER,
            HeaderValue::from_static("Wed, 21 Oct 2015 07:28:00 GMT"),
        );
        assert_eq!(retry_after(&headers), None);
    }

    #[test]
    fn decode_errors_never_quote_values() {
        let err = decode::<AuthorizeWire>(
            Operation::Authorize,
            "k",
            br#"{"accountId": "a", "authorizationToken": ["CANARY-TOKEN"], "apiInfo": {}}"#,
        )
        .err()
        .unwrap();
        assert!(!err.to_string().contains("CANARY"), "{err}");
        // serde itself would quote this string ("invalid type: string \"CANARY…\"").
        let err = decode::<ListFilesWire>(
            Operation::ListFileNames,
            "p",
            br#"{"files": [{"fileName": "a", "contentLength": "CANARY-TOKEN"}]}"#,
        )
        .err()
        .unwrap();
        assert!(!err.to_string().contains("CANARY"), "{err}");
        assert!(err.to_string().contains("Data error at line 1"), "{err}");
        let err = decode::<AuthorizeWire>(Operation::Authorize, "k", br#"{"accountId": "a"}"#)
            .err()
            .unwrap();
        assert!(
            err.to_string()
                .contains("missing field `authorizationToken`"),
            "{err}"
        );
    }

    #[test]
    fn client_debug_never_shows_the_key() {
        let client = Client::new(
            "0051234",
            SecretString::from("CANARY-B2-APPKEY-7f3a9c"),
            ClientOptions::default(),
        )
        .unwrap();
        let text = format!("{client:?}");
        assert!(!text.contains("CANARY"), "{text}");
        assert!(text.contains("0051234"));
    }
}
