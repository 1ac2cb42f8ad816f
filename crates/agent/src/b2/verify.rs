//! PURE: turns what was fetched from B2 into findings a technician can act on.
//!
//! Owns: the rules for the key and the bucket (the finding and observation model they
//! fill — [`Finding`], [`CheckId`], [`Status`], [`B2Report`], [`Observations`], [`Fetch`]
//! — is `findings.rs`, re-exported here), after SOP §4 and the §6 checklist
//! (`shared/b2/REFERENCE.md` §1.7 and §2).
//! Does not: do I/O, read the clock, or judge object contents (that is `crypt`).
//! Invariants: deterministic; every check produces exactly one finding per subject, in a
//! fixed order; a setting the key may not read is `Unknown`, never `Fail`; no finding text
//! contains the application key or the session token (they are not in the inputs).
//! Limitations: the bucket-level SSE value of buckets Backblaze migrated to default SSE-B2
//! in 2026 is unconfirmed (REFERENCE §7); the per-object check backs it up.

use chrono::{DateTime, Utc};

use super::api::{
    ApiError, Bucket, DefaultRetention, FileEntry, FileLock, Gated, KeyInfo, LifecycleRule,
};
use super::findings::BUCKET_CHECKS;
pub use super::findings::{
    B2Report, CheckId, Expected, Fetch, Finding, Observations, PoolObservation, Sample, Status, why,
};
use super::sop::SOP_CAPABILITIES;

/// Capabilities Cloud Sync (rclone's B2 backend) cannot work without: bucket lookup,
/// listing, reading for comparisons, uploading and hiding (`b2_hide_file` needs writeFiles).
const SYNC_CAPABILITIES: &[&str] = &["listBuckets", "listFiles", "readFiles", "writeFiles"];

/// Read capabilities the verifier uses beyond what Cloud Sync needs.
const VERIFY_CAPABILITIES: &[&str] = &[
    "readBucketEncryption",
    "readBucketRetentions",
    "readFileRetentions",
];

/// Evaluates every check. Order: key, bucket, objects, then per pool.
pub fn evaluate(expected: &Expected, observed: &Observations, now: DateTime<Utc>) -> B2Report {
    let mut findings = vec![
        key_authorizes(expected, &observed.key),
        rclone_compatible(expected, &observed.key, &observed.v1_probe),
    ];
    findings.extend(key_findings(expected, &observed.key));
    findings.push(bucket_found(expected, &observed.bucket));
    findings.extend(bucket_findings(&observed.bucket));
    findings.push(objects_at_rest(&observed.pools));
    for pool in &observed.pools {
        findings.push(super::crypt::evaluate_pool(expected, pool));
        findings.push(archive_excluded(pool));
    }
    B2Report {
        checked_at: now,
        bucket: expected.bucket.clone(),
        findings,
    }
}

fn key_authorizes(expected: &Expected, key: &Fetch<KeyInfo>) -> Finding {
    let id = CheckId::KeyAuthorizes;
    let key_id = &expected.key_id;
    match key {
        Fetch::Got(info) => Finding::new(
            id,
            Status::Pass,
            format!(
                "B2 accepted key ID `{key_id}` (account {}).",
                info.account_id
            ),
        ),
        Fetch::Failed(e @ (ApiError::KeyRejected { .. } | ApiError::VersionUnsupported { .. })) => {
            Finding::new(
                id,
                Status::Fail,
                format!(
                    "{e}. Cloud Sync cannot run with this key. Check the key ID and \
                     application key in the TrueNAS cloud credential against IT Glue; if \
                     the key was deleted in B2, create a new bucket-scoped key (SOP 4.3), \
                     update the credential (Credentials → Backup Credentials → Cloud \
                     Credentials, then Verify Credential) and IT Glue."
                ),
            )
        }
        Fetch::Failed(e @ ApiError::CapExceeded { .. }) => Finding::new(
            id,
            Status::Fail,
            format!("{e}. Raise or remove the cap in the B2 account (Caps & Alerts)."),
        ),
        Fetch::Failed(e) => Finding::new(id, Status::Unknown, why(e)),
        Fetch::Skipped(reason) => Finding::new(id, Status::Unknown, reason.clone()),
    }
}

/// Status for checks that need the sign-in: `Unknown` with the reason when it failed.
fn not_signed_in(id: CheckId, key: &Fetch<KeyInfo>) -> Option<Finding> {
    let reason = match key {
        Fetch::Got(_) => return None,
        Fetch::Failed(e) => format!("not checked: signing in to B2 failed ({e})"),
        Fetch::Skipped(reason) => format!("not checked: {reason}"),
    };
    Some(Finding::new(id, Status::Unknown, reason))
}

fn rclone_compatible(expected: &Expected, key: &Fetch<KeyInfo>, probe: &Fetch<()>) -> Finding {
    let id = CheckId::KeyRcloneCompatible;
    if let Some(unknown) = not_signed_in(id, key) {
        return unknown;
    }
    let modern = expected
        .rclone_version
        .as_deref()
        .and_then(rclone_major_minor)
        .is_some_and(|v| v >= (1, 73));
    let shipped = expected.rclone_version.as_deref().map_or_else(
        || {
            "TrueNAS's bundled rclone (1.67.0 on 24.10 and 25.04; newer releases unconfirmed)"
                .to_owned()
        },
        |v| format!("this NAS's rclone {v}"),
    );
    match probe {
        Fetch::Got(()) => Finding::new(
            id,
            Status::Pass,
            "The key also signs in on B2 API v1, which TrueNAS's bundled rclone (before 1.73) uses.",
        ),
        Fetch::Failed(ApiError::VersionUnsupported { .. } | ApiError::KeyRejected { .. })
            if modern =>
        {
            Finding::new(
                id,
                Status::Pass,
                format!(
                    "B2 accepts this key only on API v4; {shipped} signs in with v4, so that is fine."
                ),
            )
        }
        Fetch::Failed(
            ApiError::VersionUnsupported { message, .. } | ApiError::KeyRejected { message, .. },
        ) => Finding::new(
            id,
            Status::Fail,
            format!(
                "B2 accepts this key on API v4 but refuses it on API v1 (\"{message}\"). \
                 Backblaze now issues \"multi-bucket\" keys that only v4 accepts, and {shipped} \
                 signs in with v1, so the Cloud Sync task fails at start with that HTTP 400. \
                 Confirm in the task log or with Verify Credential. Fix: upgrade TrueNAS to a \
                 release whose rclone is 1.73 or newer, or replace the key with one B2 accepts \
                 on API v1 (whether Backblaze still issues such keys is unconfirmed)."
            ),
        ),
        Fetch::Failed(e) => Finding::new(id, Status::Unknown, why(e)),
        Fetch::Skipped(reason) => Finding::new(id, Status::Unknown, reason.clone()),
    }
}

/// `(major, minor)` from `rclone v1.67.0`, `v1.70.2-DEV`, `1.73.1`.
pub fn rclone_major_minor(version: &str) -> Option<(u32, u32)> {
    let text = version.split_whitespace().find(|w| {
        w.trim_start_matches('v')
            .starts_with(|c: char| c.is_ascii_digit())
    })?;
    let mut parts = text.trim_start_matches('v').split(['.', '-']);
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next()?.parse().ok()?;
    Some((major, minor))
}

fn key_findings(expected: &Expected, key: &Fetch<KeyInfo>) -> Vec<Finding> {
    let ids = [
        CheckId::KeyBucketScope,
        CheckId::KeySyncCapabilities,
        CheckId::KeyLeastPrivilege,
    ];
    let Fetch::Got(info) = key else {
        return ids
            .iter()
            .filter_map(|&id| not_signed_in(id, key))
            .collect();
    };
    vec![
        bucket_scope(expected, info),
        sync_capabilities(info),
        least_privilege(info),
    ]
}

fn bucket_scope(expected: &Expected, info: &KeyInfo) -> Finding {
    let id = CheckId::KeyBucketScope;
    let buckets = info.allowed.buckets.as_deref().unwrap_or_default();
    let names: Vec<String> = buckets
        .iter()
        .map(|b| match &b.name {
            Some(name) if !name.is_empty() => format!("`{name}`"),
            _ => format!("a deleted bucket (id {})", b.id),
        })
        .collect();
    let fix = format!(
        "Create a key restricted to `{}` only (SOP 4.3: `b2 create-key --bucket {0} ...`), \
         put it in the TrueNAS cloud credential, update IT Glue, then delete the old key in B2 \
         if nothing else uses it. Never use the admin key or one key for several buckets (SOP §4).",
        expected.bucket
    );
    let only_ours = matches!(buckets, [b] if b.name.as_deref() == Some(expected.bucket.as_str()));
    match (buckets.is_empty(), only_ours) {
        (true, _) => Finding::new(
            id,
            Status::Fail,
            format!(
                "The key is not restricted to any bucket: it can reach every bucket in the B2 account. {fix}"
            ),
        ),
        (false, false) => Finding::new(
            id,
            Status::Fail,
            format!(
                "The key is restricted to {}, not exactly `{}`. {fix}",
                names.join(", "),
                expected.bucket
            ),
        ),
        (false, true) => prefix_scope(expected, info),
    }
}

/// A bucket-only key passes; a name-prefix restriction must still cover every pool folder.
fn prefix_scope(expected: &Expected, info: &KeyInfo) -> Finding {
    let id = CheckId::KeyBucketScope;
    let prefix = info.allowed.name_prefix.as_deref().unwrap_or_default();
    let outside: Vec<String> = expected
        .pools
        .iter()
        .map(|p| expected.pool_prefix(p))
        .filter(|folder| !folder.starts_with(prefix))
        .collect();
    match (prefix.is_empty(), outside.is_empty()) {
        (true, _) => Finding::new(
            id,
            Status::Pass,
            format!(
                "The key is restricted to bucket `{}` only.",
                expected.bucket
            ),
        ),
        (false, true) => Finding::new(
            id,
            Status::Pass,
            format!(
                "The key is restricted to bucket `{}` and to names starting with `{prefix}`.",
                expected.bucket
            ),
        ),
        (false, false) => Finding::new(
            id,
            Status::Fail,
            format!(
                "The key is limited to names starting with `{prefix}`, which excludes {}: Cloud \
                 Sync cannot write there. Create a key for the whole bucket (SOP 4.3, no name prefix).",
                outside.join(", ")
            ),
        ),
    }
}

fn missing<'a>(info: &KeyInfo, wanted: &[&'a str]) -> Vec<&'a str> {
    wanted
        .iter()
        .copied()
        .filter(|c| !info.allowed.has(c))
        .collect()
}

fn sync_capabilities(info: &KeyInfo) -> Finding {
    let id = CheckId::KeySyncCapabilities;
    let lacking = missing(info, SYNC_CAPABILITIES);
    if lacking.is_empty() {
        return Finding::new(
            id,
            Status::Pass,
            format!("The key has {}.", SYNC_CAPABILITIES.join(", ")),
        );
    }
    Finding::new(
        id,
        Status::Fail,
        format!(
            "The key lacks {}: Cloud Sync cannot back up without them. Create a key with the \
             SOP 4.3 capability list, put it in the TrueNAS cloud credential and IT Glue.",
            lacking.join(", ")
        ),
    )
}

fn least_privilege(info: &KeyInfo) -> Finding {
    let caps = &info.allowed.capabilities;
    let writes: Vec<&str> = caps
        .iter()
        .map(String::as_str)
        .filter(|c| c.starts_with("write") || c.starts_with("delete") || *c == "bypassGovernance")
        .collect();
    let extra: Vec<&str> = caps
        .iter()
        .map(String::as_str)
        .filter(|c| !SOP_CAPABILITIES.contains(c))
        .collect();
    let unreadable = missing(info, VERIFY_CAPABILITIES);
    let mut parts = vec![format!("The key has {} capabilities.", caps.len())];
    if !writes.is_empty() {
        parts.push(format!(
            "Write/delete capabilities ({}) are there by design: Cloud Sync uploads with this key \
             (SOP 4.3). Anyone holding it can change bucket settings and hide or delete unlocked \
             versions; compliance-mode Object Lock still protects locked versions.",
            writes.join(", ")
        ));
    }
    if !extra.is_empty() {
        parts.push(format!(
            "Not in the SOP's list and not needed: {}; drop them next time the key is replaced.",
            extra.join(", ")
        ));
    }
    if !unreadable.is_empty() {
        parts.push(format!(
            "Without {} the matching checks stay UNKNOWN.",
            unreadable.join(", ")
        ));
    }
    Finding::new(CheckId::KeyLeastPrivilege, Status::Info, parts.join(" "))
}

fn bucket_found(expected: &Expected, bucket: &Fetch<Option<Bucket>>) -> Finding {
    let id = CheckId::BucketFound;
    match bucket {
        Fetch::Got(Some(b)) => Finding::new(
            id,
            Status::Pass,
            format!("Bucket `{}` (id {}) found.", b.name, b.id),
        ),
        Fetch::Got(None) => Finding::new(
            id,
            Status::Fail,
            format!(
                "No bucket named `{}` is visible to this key's B2 account. Check the bucket name \
                 on the Cloud Sync task against SOP 3.2 (`truenas-<location uuid without dashes>`) \
                 and that the bucket was created (SOP 4.1).",
                expected.bucket
            ),
        ),
        Fetch::Failed(e) => Finding::new(id, Status::Unknown, why(e)),
        Fetch::Skipped(reason) => Finding::new(id, Status::Unknown, reason.clone()),
    }
}

fn bucket_findings(bucket: &Fetch<Option<Bucket>>) -> Vec<Finding> {
    let reason = match bucket {
        Fetch::Got(Some(b)) => {
            return vec![
                private(b),
                default_encryption(b),
                object_lock(b),
                default_retention(b),
                lifecycle(b),
            ];
        }
        Fetch::Got(None) => {
            "not checked: the bucket was not found (see b2.bucket.found)".to_owned()
        }
        Fetch::Failed(e) => format!(
            "not checked: the bucket's settings could not be read: {}",
            why(e)
        ),
        Fetch::Skipped(reason) => reason.clone(),
    };
    BUCKET_CHECKS[1..]
        .iter()
        .map(|&id| Finding::new(id, Status::Unknown, reason.as_str()))
        .collect()
}

fn private(b: &Bucket) -> Finding {
    let id = CheckId::BucketPrivate;
    if b.bucket_type == "allPrivate" {
        return Finding::new(id, Status::Pass, "Bucket type is allPrivate.");
    }
    Finding::new(
        id,
        Status::Fail,
        format!(
            "Bucket type is `{}`, not allPrivate: files may be downloadable without a key. Set it \
             to Private (B2 web UI → Buckets → Bucket Settings, or `b2 update-bucket {} allPrivate`, SOP 4.1).",
            b.bucket_type, b.name
        ),
    )
}

fn default_encryption(b: &Bucket) -> Finding {
    let id = CheckId::BucketDefaultEncryption;
    let Gated::Readable(sse) = &b.default_encryption else {
        return Finding::new(
            id,
            Status::Unknown,
            "The key lacks `readBucketEncryption`, so B2 hides the default encryption setting. \
             Check it in the B2 web UI (Bucket Settings → Default Encryption) or add the \
             capability to the key; b2.objects.at_rest_encryption shows what uploads got.",
        );
    };
    let mode = sse.mode.as_deref().unwrap_or("none");
    if mode == "SSE-B2" && sse.algorithm.as_deref().is_none_or(|a| a == "AES256") {
        return Finding::new(id, Status::Pass, "Default encryption is SSE-B2 (AES256).");
    }
    Finding::new(
        id,
        Status::Fail,
        format!(
            "Default encryption is `{mode}`: new uploads are not encrypted at rest by B2. Turn on \
             SSE-B2 (B2 web UI → Bucket Settings → Default Encryption, or `b2 update-bucket \
             --defaultServerSideEncryption SSE-B2 --defaultServerSideEncryptionAlgorithm AES256 \
             {} allPrivate`, SOP 4.1).",
            b.name
        ),
    )
}

fn no_retentions(id: CheckId) -> Finding {
    Finding::new(
        id,
        Status::Unknown,
        "The key lacks `readBucketRetentions`, so B2 hides the Object Lock settings. Check them \
         in the B2 web UI (Bucket Settings → Object Lock) or add the capability to the key.",
    )
}

fn object_lock(b: &Bucket) -> Finding {
    let id = CheckId::BucketObjectLock;
    match &b.file_lock {
        Gated::NotReadable => no_retentions(id),
        Gated::Readable(FileLock {
            is_file_lock_enabled: true,
            ..
        }) => Finding::new(id, Status::Pass, "Object Lock is enabled."),
        Gated::Readable(_) => Finding::new(
            id,
            Status::Fail,
            format!(
                "Object Lock is not enabled on `{}`: anyone holding the key can permanently delete backed-up \
                 versions (ransomware). Enable Object Lock on the bucket (B2 web UI → Bucket \
                 Settings; it can be turned on later but never off), then set the default retention \
                 to compliance, 14 days (SOP 4.2).",
                b.name
            ),
        ),
    }
}

fn default_retention(b: &Bucket) -> Finding {
    let id = CheckId::BucketDefaultRetention;
    let lock = match &b.file_lock {
        Gated::NotReadable => return no_retentions(id),
        Gated::Readable(lock) => lock,
    };
    let fix = format!(
        "Set it with `b2 update-bucket --defaultRetentionMode compliance --defaultRetentionPeriod \
         \"14 days\" {} allPrivate` (SOP 4.2; compliance mode cannot be undone, double-check the \
         bucket name). It applies to files uploaded afterwards.",
        b.name
    );
    let retention = lock.default_retention.clone().unwrap_or_default();
    let DefaultRetention { mode, period } = retention;
    let period_text = period.as_ref().map_or_else(
        || "no period".to_owned(),
        |p| format!("{} {}", p.duration, p.unit),
    );
    let is_14_days = period
        .as_ref()
        .is_some_and(|p| p.duration == 14 && p.unit == "days");
    match (lock.is_file_lock_enabled, mode.as_deref(), is_14_days) {
        (false, _, _) => Finding::new(
            id,
            Status::Fail,
            "No default retention: Object Lock is not enabled (see b2.bucket.object_lock).",
        ),
        (true, Some("compliance"), true) => Finding::new(
            id,
            Status::Pass,
            "Default retention is compliance mode, 14 days.",
        ),
        (true, Some("compliance"), false) => Finding::new(
            id,
            Status::Fail,
            format!(
                "Default retention is compliance mode but {period_text}; the SOP requires 14 days. {fix}"
            ),
        ),
        (true, Some("governance"), _) => Finding::new(
            id,
            Status::Fail,
            format!(
                "Default retention is governance mode ({period_text}): any key with bypassGovernance \
                 (the SOP's Cloud Sync key has it) can delete locked files. {fix}"
            ),
        ),
        (true, other, _) => Finding::new(
            id,
            Status::Fail,
            format!(
                "Object Lock is enabled but default retention is `{}`: new uploads are not locked. {fix}",
                other.unwrap_or("off")
            ),
        ),
    }
}

fn lifecycle(b: &Bucket) -> Finding {
    let id = CheckId::BucketLifecycle;
    let fix = "Set the rule `[{\"fileNamePrefix\":\"\",\"daysFromHidingToDeleting\":30,\
               \"daysFromUploadingToHiding\":null}]` (B2 web UI → Lifecycle Settings, or \
               `b2 update-bucket --lifecycleRules ...`, SOP 4.1).";
    // Rules may not overlap, so a whole-bucket ("") rule is necessarily the only one.
    let rule = b
        .lifecycle_rules
        .iter()
        .find(|r| r.file_name_prefix.is_empty());
    let Some(rule) = rule else {
        let others: Vec<&str> = b
            .lifecycle_rules
            .iter()
            .map(|r| r.file_name_prefix.as_str())
            .collect();
        let seen = if others.is_empty() {
            "There is no lifecycle rule: hidden (deleted or replaced) versions are kept and billed forever.".to_owned()
        } else {
            format!(
                "Lifecycle rules cover only the prefixes {}, not the whole bucket.",
                others.join(", ")
            )
        };
        return Finding::new(id, Status::Fail, format!("{seen} {fix}"));
    };
    match rule {
        LifecycleRule {
            days_from_hiding_to_deleting: Some(30),
            days_from_uploading_to_hiding: None,
            ..
        } => Finding::new(
            id,
            Status::Pass,
            "Hidden versions are deleted 30 days after hiding; live files are never hidden by the rule.",
        ),
        LifecycleRule {
            days_from_uploading_to_hiding: Some(days),
            ..
        } => Finding::new(
            id,
            Status::Fail,
            format!(
                "The lifecycle rule hides files {days} days after upload: live backup files would \
                 disappear from the backup. {fix}"
            ),
        ),
        LifecycleRule {
            days_from_hiding_to_deleting: other,
            ..
        } => Finding::new(
            id,
            Status::Fail,
            format!(
                "Hidden versions are deleted after {}, not 30 days. {fix}",
                other.map_or_else(|| "never".to_owned(), |d| format!("{d} days"))
            ),
        ),
    }
}

/// Per-object SSE from the listings: needs only `listFiles`, so it also covers keys that
/// cannot read the bucket default, and catches data uploaded before SSE was on.
fn objects_at_rest(pools: &[PoolObservation]) -> Finding {
    let id = CheckId::ObjectsAtRestEncryption;
    let objects: Vec<&FileEntry> = pools
        .iter()
        .filter_map(|p| match &p.listing {
            Fetch::Got(files) => Some(files),
            Fetch::Failed(_) | Fetch::Skipped(_) => None,
        })
        .flatten()
        .filter(|f| super::crypt::is_backup_object(f))
        .collect();
    let plain: Vec<&str> = objects
        .iter()
        .filter(|f| f.encryption_mode.as_deref() != Some("SSE-B2"))
        .map(|f| f.name.as_str())
        .collect();
    let not_listed = pools.iter().find_map(|p| match &p.listing {
        Fetch::Got(_) => None,
        Fetch::Failed(e) => Some(format!("listing `{}` failed: {}", p.prefix, why(e))),
        Fetch::Skipped(reason) => Some(reason.clone()),
    });
    match (objects.len(), plain.first()) {
        (0, _) => Finding::new(
            id,
            Status::Unknown,
            not_listed.unwrap_or_else(|| {
                "Nothing uploaded yet: run the first sync (SOP 7.1), then check again.".to_owned()
            }),
        ),
        (n, None) => Finding::new(
            id,
            Status::Pass,
            format!("All {n} sampled objects are stored with SSE-B2."),
        ),
        (n, Some(example)) => Finding::new(
            id,
            Status::Fail,
            format!(
                "{} of {n} sampled objects are stored without SSE-B2 (e.g. `{example}`): they were \
                 uploaded while default encryption was off. Make sure b2.bucket.default_encryption \
                 passes; existing objects stay as they are until rewritten (their content is still \
                 protected if b2.pool.encryption_on passes).",
                plain.len()
            ),
        ),
    }
}

fn archive_excluded(pool: &PoolObservation) -> Finding {
    let id = CheckId::PoolArchiveExcluded;
    let name = &pool.pool;
    // With filename encryption on, folder names are encrypted and cannot be matched.
    let names_encrypted = match &pool.listing {
        Fetch::Got(files) => files
            .iter()
            .filter(|f| super::crypt::is_backup_object(f))
            .any(|f| {
                super::crypt::name_form(&f.name, &pool.prefix) == super::crypt::NameForm::Encrypted
            }),
        Fetch::Failed(_) | Fetch::Skipped(_) => false,
    };
    match &pool.archive {
        _ if names_encrypted => Finding::for_pool(
            id,
            name,
            Status::Unknown,
            "Object names are encrypted (Filename Encryption is on), so Archive folders cannot be recognised.",
        ),
        Fetch::Got(found) if found.is_empty() => Finding::for_pool(
            id,
            name,
            Status::Pass,
            format!("Nothing under `{0}Archive/` or `{0}archive/`.", pool.prefix),
        ),
        Fetch::Got(found) => Finding::for_pool(
            id,
            name,
            Status::Fail,
            format!(
                "Found `{}` in B2: the Cloud Sync task's exclude list must contain both `/Archive/**` \
                 and `/archive/**` (one per line; TrueNAS sometimes reformats them, SOP 5.2). Fix the \
                 task's excludes; already uploaded Archive files stay in B2 until removed (Object Lock \
                 keeps them at least 14 days).",
                found[0]
            ),
        ),
        Fetch::Failed(e) => Finding::for_pool(id, name, Status::Unknown, why(e)),
        Fetch::Skipped(reason) => Finding::for_pool(id, name, Status::Unknown, reason.clone()),
    }
}

#[cfg(test)]
mod tests {
    use super::super::api::{
        Allowed, AllowedBucket, Encryption, FileEntry, Operation, Period, RangeRead,
    };
    use super::*;

    const BUCKET: &str = "truenas-a1b2c3d4e5f670718293a4b5c6d7e8f9";
    const GUID: &str = "9babab19-acc0-4587-aa05-ccd8103a1148";

    fn now() -> DateTime<Utc> {
        DateTime::from_timestamp(1_763_856_000, 0).unwrap()
    }

    fn expected() -> Expected {
        Expected {
            key_id: "0051abc".into(),
            bucket: BUCKET.into(),
            device_guid: GUID.into(),
            pools: vec!["pool0".into()],
            rclone_version: None,
        }
    }

    fn sop_key() -> KeyInfo {
        KeyInfo {
            account_id: "acc1".into(),
            allowed: Allowed {
                buckets: Some(vec![AllowedBucket {
                    id: "bkt1".into(),
                    name: Some(BUCKET.into()),
                }]),
                capabilities: SOP_CAPABILITIES.iter().map(|&c| c.to_owned()).collect(),
                name_prefix: None,
            },
        }
    }

    fn compliant_bucket() -> Bucket {
        Bucket {
            id: "bkt1".into(),
            name: BUCKET.into(),
            bucket_type: "allPrivate".into(),
            default_encryption: Gated::Readable(Encryption {
                mode: Some("SSE-B2".into()),
                algorithm: Some("AES256".into()),
            }),
            file_lock: Gated::Readable(FileLock {
                is_file_lock_enabled: true,
                default_retention: Some(DefaultRetention {
                    mode: Some("compliance".into()),
                    period: Some(Period {
                        duration: 14,
                        unit: "days".into(),
                    }),
                }),
            }),
            lifecycle_rules: vec![LifecycleRule {
                file_name_prefix: String::new(),
                days_from_hiding_to_deleting: Some(30),
                days_from_uploading_to_hiding: None,
                days_from_starting_to_canceling_unfinished_large_files: None,
            }],
        }
    }

    fn crypt_head() -> Vec<u8> {
        let mut head = super::super::crypt::MAGIC.to_vec();
        head.extend(1..=24u8);
        head
    }

    fn pool(files: Vec<FileEntry>, head: Vec<u8>) -> PoolObservation {
        let prefix = format!("{GUID}/pool0/");
        let sample = super::super::crypt::pick_sample(&files, &prefix).map(|f| Sample {
            name: f.name.clone(),
            content_length: f.content_length,
            head: Fetch::Got(RangeRead {
                bytes: head,
                total_size: Some(f.content_length),
            }),
        });
        PoolObservation {
            pool: "pool0".into(),
            prefix,
            listing: Fetch::Got(files),
            sample,
            archive: Fetch::Got(vec![]),
        }
    }

    fn file(name: &str, size: u64) -> FileEntry {
        FileEntry {
            name: format!("{GUID}/pool0/{name}"),
            action: "upload".into(),
            content_length: size,
            encryption_mode: Some("SSE-B2".into()),
        }
    }

    fn compliant() -> Observations {
        Observations {
            key: Fetch::Got(sop_key()),
            v1_probe: Fetch::Got(()),
            bucket: Fetch::Got(Some(compliant_bucket())),
            pools: vec![pool(vec![file("docs/invoice.txt.bin", 122)], crypt_head())],
        }
    }

    fn status(observed: &Observations, id: CheckId) -> (Status, String) {
        let report = evaluate(&expected(), observed, now());
        let pool = matches!(id, CheckId::PoolEncryptionOn | CheckId::PoolArchiveExcluded)
            .then_some("pool0");
        let finding = report
            .finding(id, pool)
            .unwrap_or_else(|| panic!("{id} missing"));
        (finding.status, finding.detail.clone())
    }

    fn with_bucket(change: impl FnOnce(&mut Bucket)) -> Observations {
        let mut bucket = compliant_bucket();
        change(&mut bucket);
        Observations {
            bucket: Fetch::Got(Some(bucket)),
            ..compliant()
        }
    }

    fn with_key(change: impl FnOnce(&mut KeyInfo)) -> Observations {
        let mut key = sop_key();
        change(&mut key);
        Observations {
            key: Fetch::Got(key),
            ..compliant()
        }
    }

    #[test]
    fn compliant_bucket_passes_everything() {
        let report = evaluate(&expected(), &compliant(), now());
        for finding in &report.findings {
            let want = if finding.id == CheckId::KeyLeastPrivilege {
                Status::Info
            } else {
                Status::Pass
            };
            assert_eq!(finding.status, want, "{finding:?}");
        }
        assert_eq!(report.overall(), Status::Pass);
        assert_eq!(report.findings.len(), 14);
        let json = serde_json::to_value(&report).unwrap();
        assert_eq!(json["findings"][0]["id"], "b2.key.authorizes");
        assert_eq!(json["findings"][0]["status"], "pass");
    }

    #[test]
    fn missing_read_capabilities_give_unknown_never_fail() {
        let observed = with_bucket(|b| {
            b.default_encryption = Gated::NotReadable;
            b.file_lock = Gated::NotReadable;
        });
        for id in [
            CheckId::BucketDefaultEncryption,
            CheckId::BucketObjectLock,
            CheckId::BucketDefaultRetention,
        ] {
            let (status, detail) = status(&observed, id);
            assert_eq!(status, Status::Unknown, "{id}: {detail}");
            assert!(detail.contains("lacks `read"), "{detail}");
        }
    }

    fn with_retention(mode: Option<&str>, period: Option<(u64, &str)>) -> Observations {
        with_bucket(|b| {
            b.file_lock = Gated::Readable(FileLock {
                is_file_lock_enabled: true,
                default_retention: Some(DefaultRetention {
                    mode: mode.map(String::from),
                    period: period.map(|(duration, unit)| Period {
                        duration,
                        unit: unit.into(),
                    }),
                }),
            });
        })
    }

    fn sse(mode: Option<&str>) -> Observations {
        with_bucket(|b| {
            b.default_encryption = Gated::Readable(Encryption {
                mode: mode.map(String::from),
                algorithm: None,
            });
        })
    }

    #[test]
    fn bucket_settings_that_break_the_sop_fail_with_a_fix() {
        let no_lock = || with_bucket(|b| b.file_lock = Gated::Readable(FileLock::default()));
        let cases: Vec<(Observations, CheckId, &str)> = vec![
            (
                with_bucket(|b| b.bucket_type = "allPublic".into()),
                CheckId::BucketPrivate,
                "allPublic",
            ),
            (
                sse(Some("none")),
                CheckId::BucketDefaultEncryption,
                "`none`",
            ),
            (sse(None), CheckId::BucketDefaultEncryption, "`none`"),
            (no_lock(), CheckId::BucketObjectLock, "not enabled"),
            (
                no_lock(),
                CheckId::BucketDefaultRetention,
                "Object Lock is not enabled",
            ),
            (
                with_retention(Some("governance"), Some((14, "days"))),
                CheckId::BucketDefaultRetention,
                "governance",
            ),
            (
                with_retention(Some("compliance"), Some((1, "years"))),
                CheckId::BucketDefaultRetention,
                "1 years",
            ),
            (
                with_retention(None, None),
                CheckId::BucketDefaultRetention,
                "`off`",
            ),
            (
                with_bucket(|b| b.lifecycle_rules.clear()),
                CheckId::BucketLifecycle,
                "no lifecycle rule",
            ),
            (
                with_bucket(|b| b.lifecycle_rules[0].days_from_hiding_to_deleting = Some(7)),
                CheckId::BucketLifecycle,
                "after 7 days",
            ),
            (
                with_bucket(|b| b.lifecycle_rules[0].days_from_uploading_to_hiding = Some(90)),
                CheckId::BucketLifecycle,
                "hides files 90 days after upload",
            ),
            (
                with_bucket(|b| b.lifecycle_rules[0].file_name_prefix = "logs/".into()),
                CheckId::BucketLifecycle,
                "logs/",
            ),
        ];
        for (observed, id, needle) in cases {
            let (status, detail) = status(&observed, id);
            assert_eq!(status, Status::Fail, "{id}: {detail}");
            assert!(detail.contains(needle), "{id}: `{needle}` not in: {detail}");
            assert!(
                detail.contains("SOP") || detail.contains("see b2."),
                "{id} has no fix: {detail}"
            );
        }
    }

    #[test]
    fn key_scope_rules() {
        let unrestricted = with_key(|k| k.allowed.buckets = None);
        let (s, d) = status(&unrestricted, CheckId::KeyBucketScope);
        assert_eq!(s, Status::Fail);
        assert!(d.contains("not restricted to any bucket"), "{d}");

        let other = with_key(|k| {
            k.allowed.buckets = Some(vec![AllowedBucket {
                id: "x".into(),
                name: Some("someone-else".into()),
            }]);
        });
        let (s, d) = status(&other, CheckId::KeyBucketScope);
        assert_eq!(s, Status::Fail);
        assert!(d.contains("`someone-else`"), "{d}");

        let two = with_key(|k| {
            k.allowed.buckets.as_mut().unwrap().push(AllowedBucket {
                id: "gone".into(),
                name: None,
            });
        });
        let (s, d) = status(&two, CheckId::KeyBucketScope);
        assert_eq!(s, Status::Fail);
        assert!(d.contains("deleted bucket (id gone)"), "{d}");

        let narrow = with_key(|k| k.allowed.name_prefix = Some(format!("{GUID}/pool1/")));
        let (s, d) = status(&narrow, CheckId::KeyBucketScope);
        assert_eq!(s, Status::Fail);
        assert!(d.contains("pool0"), "{d}");

        let device = with_key(|k| k.allowed.name_prefix = Some(format!("{GUID}/")));
        assert_eq!(status(&device, CheckId::KeyBucketScope).0, Status::Pass);
    }

    #[test]
    fn capability_findings() {
        let read_only = with_key(|k| {
            k.allowed.capabilities = ["listBuckets", "listFiles", "readFiles", "shareFiles"]
                .map(String::from)
                .to_vec();
        });
        let (s, d) = status(&read_only, CheckId::KeySyncCapabilities);
        assert_eq!(s, Status::Fail);
        assert!(d.contains("writeFiles"), "{d}");
        let (s, d) = status(&read_only, CheckId::KeyLeastPrivilege);
        assert_eq!(s, Status::Info);
        assert!(d.contains("shareFiles"), "{d}");
        assert!(d.contains("readBucketEncryption"), "{d}");

        let (s, d) = status(&compliant(), CheckId::KeyLeastPrivilege);
        assert_eq!(
            s,
            Status::Info,
            "write capabilities are flagged, not failed"
        );
        assert!(d.contains("by design"), "{d}");
    }

    #[test]
    fn failed_sign_in_fails_the_key_and_leaves_the_rest_unknown() {
        let observed = Observations {
            key: Fetch::Failed(ApiError::KeyRejected {
                op: Operation::Authorize,
                key_id: "0051abc".into(),
                message: "invalid application key".into(),
            }),
            v1_probe: Fetch::Skipped("not checked".into()),
            bucket: Fetch::Skipped("not checked".into()),
            pools: vec![],
        };
        let report = evaluate(&expected(), &observed, now());
        assert_eq!(report.findings[0].status, Status::Fail);
        assert!(report.findings[0].detail.contains("Cloud Sync cannot run"));
        assert!(
            report.findings[1..]
                .iter()
                .all(|f| f.status == Status::Unknown)
        );

        let offline = Observations {
            key: Fetch::Failed(ApiError::Network {
                op: Operation::Authorize,
                resource: "0051abc".into(),
                detail: "connection refused".into(),
            }),
            ..observed
        };
        let report = evaluate(&expected(), &offline, now());
        assert!(report.findings.iter().all(|f| f.status == Status::Unknown));
        assert!(report.findings[0].detail.contains("next pass"));
    }

    #[test]
    fn v1_only_keys_fail_unless_rclone_is_new_enough() {
        let v4_only = Observations {
            v1_probe: Fetch::Failed(ApiError::VersionUnsupported {
                op: Operation::AuthorizeV1,
                key_id: "0051abc".into(),
                message: "This request is not currently supported on API version number 1".into(),
            }),
            ..compliant()
        };
        let (s, d) = status(&v4_only, CheckId::KeyRcloneCompatible);
        assert_eq!(s, Status::Fail);
        assert!(d.contains("1.73"), "{d}");
        let mut exp = expected();
        exp.rclone_version = Some("rclone v1.73.1".into());
        let report = evaluate(&exp, &v4_only, now());
        assert_eq!(
            report
                .finding(CheckId::KeyRcloneCompatible, None)
                .unwrap()
                .status,
            Status::Pass
        );
        exp.rclone_version = Some("rclone v1.67.0".into());
        let report = evaluate(&exp, &v4_only, now());
        let finding = report.finding(CheckId::KeyRcloneCompatible, None).unwrap();
        assert_eq!(finding.status, Status::Fail);
        assert!(
            finding.detail.contains("rclone v1.67.0"),
            "{}",
            finding.detail
        );
    }

    #[test]
    fn ids_serialise_as_their_stable_strings() {
        let report = evaluate(&expected(), &compliant(), now());
        let order: Vec<CheckId> = report.findings.iter().map(|f| f.id).collect();
        assert_eq!(order, CheckId::ALL);
        for id in CheckId::ALL {
            assert_eq!(serde_json::to_value(id).unwrap(), id.as_str());
            let back: CheckId = serde_json::from_value(id.as_str().into()).unwrap();
            assert_eq!(back, id);
        }
    }

    #[test]
    fn rclone_versions_parse() {
        assert_eq!(rclone_major_minor("rclone v1.67.0"), Some((1, 67)));
        assert_eq!(rclone_major_minor("v1.70.2-DEV"), Some((1, 70)));
        assert_eq!(
            rclone_major_minor("1.73.0\n- os/version: debian"),
            Some((1, 73))
        );
        assert_eq!(rclone_major_minor("rclone"), None);
    }

    #[test]
    fn missing_bucket_fails_found_and_leaves_settings_unknown() {
        let observed = Observations {
            bucket: Fetch::Got(None),
            ..compliant()
        };
        let (s, d) = status(&observed, CheckId::BucketFound);
        assert_eq!(s, Status::Fail);
        assert!(d.contains("SOP 3.2"), "{d}");
        for id in [CheckId::BucketPrivate, CheckId::BucketLifecycle] {
            assert_eq!(status(&observed, id).0, Status::Unknown);
        }
        let denied = Observations {
            bucket: Fetch::Failed(ApiError::NotAllowed {
                op: Operation::ListBuckets,
                resource: BUCKET.into(),
                code: "unauthorized".into(),
                message: "not entitled".into(),
            }),
            ..compliant()
        };
        let (s, d) = status(&denied, CheckId::BucketFound);
        assert_eq!(s, Status::Unknown);
        assert!(d.contains("`listBuckets`"), "{d}");
    }

    #[test]
    fn pool_encryption_verdicts() {
        let plain = Observations {
            pools: vec![pool(
                vec![file("docs/invoice.txt", 74)],
                b"Quarterly invoice export - plain".to_vec(),
            )],
            ..compliant()
        };
        let (s, d) = status(&plain, CheckId::PoolEncryptionOn);
        assert_eq!(s, Status::Fail);
        assert!(
            d.contains("NOT encrypted") && d.contains("SOP 7.3") && d.contains("IT Glue"),
            "{d}"
        );

        let plain_bin = Observations {
            pools: vec![pool(
                vec![file("fw.bin", 74)],
                b"\x7fELF plaintext with a .bin name!".to_vec(),
            )],
            ..compliant()
        };
        let (s, d) = status(&plain_bin, CheckId::PoolEncryptionOn);
        assert_eq!(s, Status::Fail);
        assert!(d.contains("proves nothing"), "{d}");

        let truncated = Observations {
            pools: vec![pool(vec![file("a.txt.bin", 40)], crypt_head())],
            ..compliant()
        };
        assert_eq!(
            status(&truncated, CheckId::PoolEncryptionOn).0,
            Status::Fail
        );

        let empty = Observations {
            pools: vec![pool(vec![], vec![])],
            ..compliant()
        };
        let (s, d) = status(&empty, CheckId::PoolEncryptionOn);
        assert_eq!(s, Status::Unknown);
        assert!(
            d.contains("Nothing uploaded yet") && d.contains("first sync"),
            "{d}"
        );

        let mut denied = pool(vec![file("a.txt.bin", 49)], vec![]);
        denied.sample.as_mut().unwrap().head = Fetch::Failed(ApiError::NotAllowed {
            op: Operation::DownloadFileByName,
            resource: "a.txt.bin".into(),
            code: "unauthorized".into(),
            message: "no readFiles".into(),
        });
        let observed = Observations {
            pools: vec![denied],
            ..compliant()
        };
        let (s, d) = status(&observed, CheckId::PoolEncryptionOn);
        assert_eq!(s, Status::Unknown);
        assert!(d.contains("`readFiles`"), "{d}");
    }

    #[test]
    fn archive_and_at_rest_findings() {
        let mut with_archive = pool(vec![file("a.txt.bin", 49)], crypt_head());
        with_archive.archive = Fetch::Got(vec![format!("{GUID}/pool0/Archive/old.doc.bin")]);
        let observed = Observations {
            pools: vec![with_archive],
            ..compliant()
        };
        let (s, d) = status(&observed, CheckId::PoolArchiveExcluded);
        assert_eq!(s, Status::Fail);
        assert!(
            d.contains("/Archive/**") && d.contains("/archive/**"),
            "{d}"
        );

        let mut unencrypted = file("a.txt.bin", 49);
        unencrypted.encryption_mode = None;
        let observed = Observations {
            pools: vec![pool(vec![file("b.txt.bin", 49), unencrypted], crypt_head())],
            ..compliant()
        };
        let (s, d) = status(&observed, CheckId::ObjectsAtRestEncryption);
        assert_eq!(s, Status::Fail);
        assert!(d.starts_with("1 of 2"), "{d}");
    }

    #[test]
    fn unavailable_report_has_every_check_unknown() {
        let report = B2Report::unavailable(
            &expected(),
            "the agent's middleware session cannot read the key",
            now(),
        );
        assert_eq!(report.findings.len(), 14);
        assert!(report.findings.iter().all(|f| f.status == Status::Unknown));
        assert_eq!(report.overall(), Status::Unknown);
    }
}
