//! PURE: the B2 verification's finding and observation model, shared by the key and
//! bucket rules (`verify.rs`) and the object-content rules (`crypt.rs`).
//!
//! Owns: [`Finding`], [`CheckId`], [`Status`], [`B2Report`] (with the report when B2
//! could not be checked at all), [`Expected`], the observations ([`Observations`],
//! [`PoolObservation`], [`Sample`], [`Fetch`]) and [`why`] a fetch gave no value.
//! Does not: judge anything (the rules are in `verify.rs` and `crypt.rs`), do I/O.
//! Invariants: no type holds the application key or the session token.
//! Limitations: none known.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::api::{ApiError, Bucket, FileEntry, KeyInfo, Operation, RangeRead};

/// Outcome of one check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Matches the SOP.
    Pass,
    /// An observation for the technician, never counted as failing.
    Info,
    /// Could not be determined (missing read capability, network, rate limit, nothing
    /// uploaded yet); the detail says why.
    Unknown,
    /// Does not match the SOP: the detail says what to do.
    Fail,
}

/// Stable identifiers of the B2 checks (used by `verify --json` and the report).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum CheckId {
    #[serde(rename = "b2.key.authorizes")]
    KeyAuthorizes,
    #[serde(rename = "b2.key.rclone_compatible")]
    KeyRcloneCompatible,
    #[serde(rename = "b2.key.bucket_scope")]
    KeyBucketScope,
    #[serde(rename = "b2.key.sync_capabilities")]
    KeySyncCapabilities,
    #[serde(rename = "b2.key.least_privilege")]
    KeyLeastPrivilege,
    #[serde(rename = "b2.bucket.found")]
    BucketFound,
    #[serde(rename = "b2.bucket.private")]
    BucketPrivate,
    #[serde(rename = "b2.bucket.default_encryption")]
    BucketDefaultEncryption,
    #[serde(rename = "b2.bucket.object_lock")]
    BucketObjectLock,
    #[serde(rename = "b2.bucket.default_retention")]
    BucketDefaultRetention,
    #[serde(rename = "b2.bucket.lifecycle")]
    BucketLifecycle,
    #[serde(rename = "b2.objects.at_rest_encryption")]
    ObjectsAtRestEncryption,
    #[serde(rename = "b2.pool.archive_excluded")]
    PoolArchiveExcluded,
    #[serde(rename = "b2.pool.encryption_on")]
    PoolEncryptionOn,
}

impl CheckId {
    /// Every check, in report order (per-pool checks last).
    pub const ALL: [CheckId; 14] = [
        CheckId::KeyAuthorizes,
        CheckId::KeyRcloneCompatible,
        CheckId::KeyBucketScope,
        CheckId::KeySyncCapabilities,
        CheckId::KeyLeastPrivilege,
        CheckId::BucketFound,
        CheckId::BucketPrivate,
        CheckId::BucketDefaultEncryption,
        CheckId::BucketObjectLock,
        CheckId::BucketDefaultRetention,
        CheckId::BucketLifecycle,
        CheckId::ObjectsAtRestEncryption,
        CheckId::PoolEncryptionOn,
        CheckId::PoolArchiveExcluded,
    ];

    /// The stable id string, e.g. `b2.bucket.private`.
    pub fn as_str(self) -> &'static str {
        match self {
            CheckId::KeyAuthorizes => "b2.key.authorizes",
            CheckId::KeyRcloneCompatible => "b2.key.rclone_compatible",
            CheckId::KeyBucketScope => "b2.key.bucket_scope",
            CheckId::KeySyncCapabilities => "b2.key.sync_capabilities",
            CheckId::KeyLeastPrivilege => "b2.key.least_privilege",
            CheckId::BucketFound => "b2.bucket.found",
            CheckId::BucketPrivate => "b2.bucket.private",
            CheckId::BucketDefaultEncryption => "b2.bucket.default_encryption",
            CheckId::BucketObjectLock => "b2.bucket.object_lock",
            CheckId::BucketDefaultRetention => "b2.bucket.default_retention",
            CheckId::BucketLifecycle => "b2.bucket.lifecycle",
            CheckId::ObjectsAtRestEncryption => "b2.objects.at_rest_encryption",
            CheckId::PoolArchiveExcluded => "b2.pool.archive_excluded",
            CheckId::PoolEncryptionOn => "b2.pool.encryption_on",
        }
    }

    /// One-line title for the technician.
    pub fn title(self) -> &'static str {
        match self {
            CheckId::KeyAuthorizes => "B2 accepts the Cloud Sync key",
            CheckId::KeyRcloneCompatible => "Key works with TrueNAS's rclone (B2 API v1 sign-in)",
            CheckId::KeyBucketScope => "Scoped application key restricted to this bucket only",
            CheckId::KeySyncCapabilities => "Key has the capabilities Cloud Sync needs",
            CheckId::KeyLeastPrivilege => "Key capabilities (least privilege)",
            CheckId::BucketFound => "Bucket exists and the key can see it",
            CheckId::BucketPrivate => "Bucket is private",
            CheckId::BucketDefaultEncryption => "Bucket has SSE-B2 default encryption",
            CheckId::BucketObjectLock => "Bucket has Object Lock enabled",
            CheckId::BucketDefaultRetention => "Default retention: compliance mode, 14 days",
            CheckId::BucketLifecycle => "Lifecycle rule: delete hidden versions after 30 days",
            CheckId::ObjectsAtRestEncryption => "Uploaded objects are SSE-B2 encrypted at rest",
            CheckId::PoolArchiveExcluded => "Archive folders absent from the B2 listing",
            CheckId::PoolEncryptionOn => "Remote Encryption really on",
        }
    }
}

impl std::fmt::Display for CheckId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One checked item.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Finding {
    pub id: CheckId,
    /// The pool the finding is about, for per-pool checks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pool: Option<String>,
    pub title: String,
    pub status: Status,
    /// What was seen and, unless passing, what to do.
    pub detail: String,
}

impl Finding {
    /// A bucket/key-level finding.
    pub fn new(id: CheckId, status: Status, detail: impl Into<String>) -> Self {
        Self {
            id,
            pool: None,
            title: id.title().to_owned(),
            status,
            detail: detail.into(),
        }
    }

    /// A per-pool finding.
    pub fn for_pool(id: CheckId, pool: &str, status: Status, detail: impl Into<String>) -> Self {
        Self {
            pool: Some(pool.to_owned()),
            title: format!("{} ({pool})", id.title()),
            ..Self::new(id, status, detail)
        }
    }
}

/// Everything the B2 verification found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct B2Report {
    pub checked_at: DateTime<Utc>,
    pub bucket: String,
    pub findings: Vec<Finding>,
}

impl B2Report {
    /// The finding with `id` (and `pool`, for per-pool checks).
    pub fn finding(&self, id: CheckId, pool: Option<&str>) -> Option<&Finding> {
        self.findings
            .iter()
            .find(|f| f.id == id && f.pool.as_deref() == pool)
    }

    /// The worst status: `Fail` > `Unknown` > `Pass`/`Info`.
    pub fn overall(&self) -> Status {
        match self.findings.iter().map(|f| f.status).max() {
            Some(Status::Fail) => Status::Fail,
            Some(Status::Unknown) => Status::Unknown,
            Some(Status::Pass | Status::Info) | None => Status::Pass,
        }
    }

    /// Every check `Unknown` with the same reason, for when the key itself is not
    /// available (e.g. the middleware redacts it for this session).
    pub fn unavailable(expected: &Expected, reason: &str, now: DateTime<Utc>) -> Self {
        let unknown = |id| Finding::new(id, Status::Unknown, reason);
        let mut findings: Vec<Finding> = KEY_CHECKS
            .iter()
            .chain(BUCKET_CHECKS)
            .map(|&id| unknown(id))
            .collect();
        findings.push(unknown(CheckId::ObjectsAtRestEncryption));
        for pool in &expected.pools {
            for id in [CheckId::PoolEncryptionOn, CheckId::PoolArchiveExcluded] {
                findings.push(Finding::for_pool(id, pool, Status::Unknown, reason));
            }
        }
        Self {
            checked_at: now,
            bucket: expected.bucket.clone(),
            findings,
        }
    }
}

const KEY_CHECKS: &[CheckId] = &[
    CheckId::KeyAuthorizes,
    CheckId::KeyRcloneCompatible,
    CheckId::KeyBucketScope,
    CheckId::KeySyncCapabilities,
    CheckId::KeyLeastPrivilege,
];

pub(crate) const BUCKET_CHECKS: &[CheckId] = &[
    CheckId::BucketFound,
    CheckId::BucketPrivate,
    CheckId::BucketDefaultEncryption,
    CheckId::BucketObjectLock,
    CheckId::BucketDefaultRetention,
    CheckId::BucketLifecycle,
];

/// What the SOP says this NAS's B2 side must look like.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expected {
    /// Application key ID (not secret; shown to match IT Glue).
    pub key_id: String,
    /// `truenas-<location uuid, no dashes>`.
    pub bucket: String,
    /// Device GUID (dashed), the first folder level.
    pub device_guid: String,
    /// Pools backed up, one folder each: `<guid>/<pool>/`.
    pub pools: Vec<String>,
    /// `rclone version` of the NAS, when the caller could observe it.
    pub rclone_version: Option<String>,
}

impl Expected {
    /// The object-name prefix of one pool's backup (`<guid>/<pool>/`, SOP 3.3 without the
    /// leading slash, which TrueNAS strips).
    pub fn pool_prefix(&self, pool: &str) -> String {
        format!("{}/{}/", self.device_guid, pool)
    }
}

/// The result of one fetch: not attempted (and why), failed, or got a value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fetch<T> {
    Skipped(String),
    Failed(ApiError),
    Got(T),
}

impl<T> From<Result<T, ApiError>> for Fetch<T> {
    fn from(result: Result<T, ApiError>) -> Self {
        match result {
            Ok(v) => Fetch::Got(v),
            Err(e) => Fetch::Failed(e),
        }
    }
}

/// The first bytes of one sampled object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sample {
    /// Full object name.
    pub name: String,
    /// Size from the listing.
    pub content_length: u64,
    /// The ranged read (`bytes=0-31`).
    pub head: Fetch<RangeRead>,
}

/// What was fetched for one pool folder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolObservation {
    pub pool: String,
    /// `<guid>/<pool>/`.
    pub prefix: String,
    /// The first names under the prefix.
    pub listing: Fetch<Vec<FileEntry>>,
    /// The object whose header was read (chosen by `crypt::pick_sample`).
    pub sample: Option<Sample>,
    /// Names found under `<prefix>Archive/` and `<prefix>archive/`.
    pub archive: Fetch<Vec<String>>,
}

/// Everything fetched with the key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Observations {
    /// v4 sign-in.
    pub key: Fetch<KeyInfo>,
    /// v1 sign-in probe (TrueNAS's rclone).
    pub v1_probe: Fetch<()>,
    /// `b2_list_buckets` by name; `Got(None)` = no such bucket.
    pub bucket: Fetch<Option<Bucket>>,
    /// One entry per expected pool, in order.
    pub pools: Vec<PoolObservation>,
}

/// Why a fetch did not produce a value, in words for the technician.
pub fn why(error: &ApiError) -> String {
    match error {
        ApiError::NotAllowed { op, message, .. } => format!(
            "the key is not allowed to call {op} (B2 said: {message}); it lacks the `{}` \
             capability or the bucket is outside its restriction",
            capability_for(*op)
        ),
        ApiError::RateLimited { .. } => {
            format!("{error}; the check runs again on the next pass")
        }
        ApiError::Timeout { .. }
        | ApiError::Network { .. }
        | ApiError::ServiceUnavailable { .. }
        | ApiError::TokenRefused { .. } => {
            format!(
                "B2 could not be reached reliably ({error}); the check runs again on the next pass"
            )
        }
        other => other.to_string(),
    }
}

fn capability_for(op: Operation) -> &'static str {
    match op {
        Operation::Authorize | Operation::AuthorizeV1 | Operation::ListBuckets => "listBuckets",
        Operation::ListFileNames => "listFiles",
        Operation::DownloadFileByName => "readFiles",
    }
}
