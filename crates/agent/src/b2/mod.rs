//! Read-only Backblaze B2 verification with the scoped key: bucket settings (SOP §4, §6)
//! and "Encryption really on" (SOP 7.3).
//!
//! Owns: the top-level [`verify`] (fetch with the key → pure evaluation → [`B2Report`]),
//! and its submodules: `api` (the B2 native API v4 client), `verify` (PURE key/bucket
//! rules and the finding model), `crypt` (PURE rclone crypt recognition), `credential`
//! (the key from the middleware's cloud credential).
//! Does not: write to B2, store the key, or decide what the technician sees overall (the
//! checklist assembly in `health` and `status` does).
//! Invariants: the application key is held only in `SecretString`s and sent only to the
//! configured B2 API (https, or loopback http in tests); every check that could not run
//! says why; a setting the key may not read is `Unknown`, never `Fail`.
//! Limitations: samples one object per pool and the first page (10 names) of each pool
//! folder; the rclone version on the NAS is an input (this module does not run it).

pub mod api;
pub mod credential;
pub mod crypt;
pub(crate) mod findings;
pub(crate) mod sop;
pub mod verify;

use chrono::{DateTime, Utc};
use secrecy::SecretString;

pub use api::{ApiError, ClientOptions, DEFAULT_API_BASE};
pub use sop::SOP_CAPABILITIES;
pub use verify::{B2Report, CheckId, Expected, Finding, Status};

use api::Client;
use verify::{Fetch, Observations, PoolObservation, Sample};

/// Names listed per pool folder (one Class C transaction each; enough to spot plaintext).
const LIST_PER_POOL: u32 = 10;

/// What the B2 verification needs. `Debug` redacts the application key.
#[derive(Debug, Clone)]
pub struct B2Inputs {
    /// Application key ID from the Cloud Sync credential (`account`).
    pub key_id: String,
    /// Application key from the Cloud Sync credential (`key`).
    pub application_key: SecretString,
    /// The bucket the SOP computed for this location.
    pub bucket: String,
    /// Device GUID (dashed): the first folder level in the bucket.
    pub device_guid: String,
    /// Pools backed up (one folder each).
    pub pools: Vec<String>,
    /// B2 API base; [`DEFAULT_API_BASE`] in production.
    pub api_base: String,
    /// `rclone version` output of the NAS, when known (for the v1 sign-in pitfall).
    pub rclone_version: Option<String>,
}

impl B2Inputs {
    /// The expectations derived from these inputs (no secrets).
    pub fn expected(&self) -> Expected {
        Expected {
            key_id: self.key_id.clone(),
            bucket: self.bucket.clone(),
            device_guid: self.device_guid.clone(),
            pools: self.pools.clone(),
            rclone_version: self.rclone_version.clone(),
        }
    }
}

/// Checks the bucket and the uploaded objects with the Cloud Sync key; production
/// timeouts and retries.
pub async fn verify(inputs: &B2Inputs, now: DateTime<Utc>) -> B2Report {
    let options = ClientOptions {
        api_base: inputs.api_base.clone(),
        ..ClientOptions::default()
    };
    verify_with(inputs, options, now).await
}

/// [`verify`] with explicit client options (`options.api_base` wins over
/// `inputs.api_base`).
pub async fn verify_with(
    inputs: &B2Inputs,
    options: ClientOptions,
    now: DateTime<Utc>,
) -> B2Report {
    let expected = inputs.expected();
    let observed = observe(inputs, &expected, options).await;
    let report = verify::evaluate(&expected, &observed, now);
    tracing::info!(
        bucket = %expected.bucket,
        overall = ?report.overall(),
        "B2 verification finished"
    );
    report
}

/// All the I/O: sign in, probe v1, read the bucket, then list and sample each pool folder.
async fn observe(inputs: &B2Inputs, expected: &Expected, options: ClientOptions) -> Observations {
    let mut client = match Client::new(&inputs.key_id, inputs.application_key.clone(), options) {
        Ok(client) => client,
        Err(e) => return after_failed_sign_in(expected, Fetch::Failed(e)),
    };
    let key = Fetch::from(client.authorize().await);
    let Fetch::Got(info) = &key else {
        return after_failed_sign_in(expected, key);
    };
    let v1_probe = Fetch::from(client.probe_v1().await);
    let bucket = Fetch::from(client.find_bucket(&expected.bucket).await);
    // Without listBuckets the restricted key still names its bucket's id.
    let bucket_id = match &bucket {
        Fetch::Got(Some(b)) => Some(b.id.clone()),
        _ => info
            .allowed
            .buckets
            .iter()
            .flatten()
            .find(|b| b.name.as_deref() == Some(expected.bucket.as_str()))
            .map(|b| b.id.clone()),
    };
    let mut pools = Vec::with_capacity(expected.pools.len());
    for pool in &expected.pools {
        pools.push(observe_pool(&mut client, expected, bucket_id.as_deref(), pool).await);
    }
    Observations {
        key,
        v1_probe,
        bucket,
        pools,
    }
}

fn after_failed_sign_in(expected: &Expected, key: Fetch<api::KeyInfo>) -> Observations {
    const REASON: &str = "not checked: signing in to B2 failed (see b2.key.authorizes)";
    Observations {
        key,
        v1_probe: skipped(REASON),
        bucket: skipped(REASON),
        pools: expected
            .pools
            .iter()
            .map(|pool| PoolObservation {
                pool: pool.clone(),
                prefix: expected.pool_prefix(pool),
                listing: skipped(REASON),
                sample: None,
                archive: skipped(REASON),
            })
            .collect(),
    }
}

fn skipped<T>(reason: &str) -> Fetch<T> {
    Fetch::Skipped(reason.to_owned())
}

async fn observe_pool(
    client: &mut Client,
    expected: &Expected,
    bucket_id: Option<&str>,
    pool: &str,
) -> PoolObservation {
    let prefix = expected.pool_prefix(pool);
    let Some(bucket_id) = bucket_id else {
        const REASON: &str = "not checked: the bucket is not available (see b2.bucket.found)";
        return PoolObservation {
            pool: pool.to_owned(),
            prefix,
            listing: skipped(REASON),
            sample: None,
            archive: skipped(REASON),
        };
    };
    let listing = Fetch::from(
        client
            .list_file_names(bucket_id, &prefix, LIST_PER_POOL)
            .await,
    );
    let sample = match &listing {
        Fetch::Got(files) => match crypt::pick_sample(files, &prefix) {
            Some(file) => Some(Sample {
                name: file.name.clone(),
                content_length: file.content_length,
                head: Fetch::from(
                    client
                        .read_head(&expected.bucket, &file.name, crypt::HEADER_LEN)
                        .await,
                ),
            }),
            None => None,
        },
        Fetch::Failed(_) | Fetch::Skipped(_) => None,
    };
    let archive = archive_names(client, bucket_id, &prefix).await;
    PoolObservation {
        pool: pool.to_owned(),
        prefix,
        listing,
        sample,
        archive,
    }
}

/// Names under `<prefix>Archive/` and `<prefix>archive/` (the SOP's excludes).
async fn archive_names(client: &mut Client, bucket_id: &str, prefix: &str) -> Fetch<Vec<String>> {
    let mut found = Vec::new();
    for folder in ["Archive/", "archive/"] {
        let listed = client
            .list_file_names(bucket_id, &format!("{prefix}{folder}"), 1)
            .await;
        match listed {
            Ok(files) => found.extend(files.into_iter().map(|f| f.name)),
            Err(e) => return Fetch::Failed(e),
        }
    }
    Fetch::Got(found)
}
