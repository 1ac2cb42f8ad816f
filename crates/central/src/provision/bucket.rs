//! The SOP's bucket settings (4.1, 4.2) and how an existing bucket compares to them.
//!
//! Owns: the expected value of every setting, the comparison of a bucket as B2 shows it,
//! and the classification: matches, only the default retention is still missing (the
//! compliance step of an earlier run was not confirmed), or differs.
//! Does not: call B2.
//! Invariants: pure; a setting the admin key cannot read is a difference (never assumed
//! to match); a retention other than "none" that is not compliance/14 days is a
//! difference that is never "fixed" (compliance retention cannot be undone or shortened).
//! Limitations: CORS rules, bucket info and replication are not SOP settings and are not
//! compared.

use serde::Serialize;

use super::super::b2admin::BucketState;

/// SOP 4.2: default retention period in days.
pub const RETENTION_DAYS: u32 = 14;

/// One setting, wanted and seen.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Setting {
    /// `bucketType`, `defaultServerSideEncryption`, `fileLockEnabled`, `lifecycleRules`,
    /// `defaultRetention`.
    pub setting: &'static str,
    pub want: String,
    /// What B2 shows (`None` before the bucket exists).
    pub have: Option<String>,
    pub status: SettingStatus,
}

/// How a setting compares.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SettingStatus {
    Ok,
    /// Will be set by this run (new bucket, or the retention step).
    ToSet,
    Differs,
}

/// The verdict on a bucket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Every setting as the SOP says.
    Matches,
    /// All but the default retention, which is unset: the compliance step remains.
    NeedsRetention,
    /// At least one setting differs.
    Differs,
}

const LIFECYCLE_WANT: &str =
    r#"[{"fileNamePrefix":"","daysFromHidingToDeleting":30,"daysFromUploadingToHiding":null}]"#;

fn want(setting: &'static str) -> String {
    match setting {
        "bucketType" => "allPrivate".to_owned(),
        "defaultServerSideEncryption" => "SSE-B2 (AES256)".to_owned(),
        "fileLockEnabled" => "true".to_owned(),
        "lifecycleRules" => LIFECYCLE_WANT.to_owned(),
        _ => format!("compliance, {RETENTION_DAYS} days"),
    }
}

const SETTINGS: [&str; 5] = [
    "bucketType",
    "defaultServerSideEncryption",
    "fileLockEnabled",
    "lifecycleRules",
    "defaultRetention",
];

/// The settings of a bucket that does not exist yet: all to set.
pub fn planned() -> Vec<Setting> {
    SETTINGS
        .iter()
        .map(|s| Setting {
            setting: s,
            want: want(s),
            have: None,
            status: SettingStatus::ToSet,
        })
        .collect()
}

/// Compares a bucket with the SOP.
pub fn compare(b: &BucketState) -> (Verdict, Vec<Setting>) {
    let unreadable = || "not readable with the admin key".to_owned();
    let mut out = Vec::new();
    let mut push = |setting: &'static str, have: String, ok: bool| {
        out.push(Setting {
            setting,
            want: want(setting),
            have: Some(have),
            status: if ok {
                SettingStatus::Ok
            } else {
                SettingStatus::Differs
            },
        });
    };
    push(
        "bucketType",
        b.bucket_type.clone(),
        b.bucket_type == "allPrivate",
    );
    match &b.default_encryption {
        Some(e) => {
            let mode = e.mode.clone().unwrap_or_else(|| "none".to_owned());
            let algorithm = e.algorithm.clone().unwrap_or_else(|| "-".to_owned());
            let ok = mode == "SSE-B2" && algorithm == "AES256";
            push(
                "defaultServerSideEncryption",
                format!("{mode} ({algorithm})"),
                ok,
            );
        }
        None => push("defaultServerSideEncryption", unreadable(), false),
    }
    match &b.file_lock {
        Some(l) => push(
            "fileLockEnabled",
            l.is_file_lock_enabled.to_string(),
            l.is_file_lock_enabled,
        ),
        None => push("fileLockEnabled", unreadable(), false),
    }
    let rules_ok = b.lifecycle_rules.len() == 1 && {
        let r = &b.lifecycle_rules[0];
        r.file_name_prefix.is_empty()
            && r.days_from_hiding_to_deleting == Some(30)
            && r.days_from_uploading_to_hiding.is_none()
            && r.days_from_starting_to_canceling_unfinished_large_files
                .is_none()
    };
    push("lifecycleRules", show_rules(b), rules_ok);
    let mut retention_unset = false;
    match &b.file_lock {
        Some(l) => {
            let r = l.default_retention.clone().unwrap_or_default();
            let (have, ok) = match (&r.mode, &r.period) {
                (None, _) => {
                    retention_unset = true;
                    ("none".to_owned(), false)
                }
                (Some(mode), Some(p)) => (
                    format!("{mode}, {} {}", p.duration, p.unit),
                    mode == "compliance"
                        && p.unit == "days"
                        && p.duration == u64::from(RETENTION_DAYS),
                ),
                (Some(mode), None) => (format!("{mode}, no period"), false),
            };
            push("defaultRetention", have, ok);
        }
        None => push("defaultRetention", unreadable(), false),
    }
    let differs: Vec<&Setting> = out
        .iter()
        .filter(|s| s.status == SettingStatus::Differs)
        .collect();
    let verdict = match differs.as_slice() {
        [] => Verdict::Matches,
        // Object Lock on and everything else right: only the retention step is left.
        [only] if only.setting == "defaultRetention" && retention_unset => Verdict::NeedsRetention,
        _ => Verdict::Differs,
    };
    if verdict == Verdict::NeedsRetention {
        for s in &mut out {
            if s.setting == "defaultRetention" {
                s.status = SettingStatus::ToSet;
            }
        }
    }
    (verdict, out)
}

fn show_rules(b: &BucketState) -> String {
    let rules: Vec<serde_json::Value> = b
        .lifecycle_rules
        .iter()
        .map(|r| {
            let mut v = serde_json::json!({
                "fileNamePrefix": r.file_name_prefix,
                "daysFromHidingToDeleting": r.days_from_hiding_to_deleting,
                "daysFromUploadingToHiding": r.days_from_uploading_to_hiding,
            });
            if let Some(d) = r.days_from_starting_to_canceling_unfinished_large_files {
                v["daysFromStartingToCancelingUnfinishedLargeFiles"] = d.into();
            }
            v
        })
        .collect();
    serde_json::Value::from(rules).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use truenas_agent::b2::api::{DefaultRetention, Encryption, FileLock, LifecycleRule, Period};

    fn sop(retention: Option<(&str, u64)>) -> BucketState {
        BucketState {
            id: "b".into(),
            name: "truenas-x".into(),
            account_id: "a".into(),
            bucket_type: "allPrivate".into(),
            default_encryption: Some(Encryption {
                mode: Some("SSE-B2".into()),
                algorithm: Some("AES256".into()),
            }),
            file_lock: Some(FileLock {
                is_file_lock_enabled: true,
                default_retention: Some(DefaultRetention {
                    mode: retention.map(|(m, _)| m.to_owned()),
                    period: retention.map(|(_, d)| Period {
                        duration: d,
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

    #[test]
    fn verdicts() {
        assert_eq!(compare(&sop(Some(("compliance", 14)))).0, Verdict::Matches);
        let (v, settings) = compare(&sop(None));
        assert_eq!(v, Verdict::NeedsRetention);
        assert!(settings.iter().any(|s| s.status == SettingStatus::ToSet));
        assert_eq!(compare(&sop(Some(("governance", 14)))).0, Verdict::Differs);
        assert_eq!(compare(&sop(Some(("compliance", 7)))).0, Verdict::Differs);
        let mut public = sop(None);
        public.bucket_type = "allPublic".into();
        let (v, settings) = compare(&public);
        assert_eq!(
            v,
            Verdict::Differs,
            "unset retention plus another difference"
        );
        let differs: Vec<_> = settings
            .iter()
            .filter(|s| s.status == SettingStatus::Differs)
            .map(|s| s.setting)
            .collect();
        assert_eq!(differs, ["bucketType", "defaultRetention"]);
        let mut no_lock = sop(None);
        no_lock.file_lock = Some(FileLock::default());
        assert_eq!(compare(&no_lock).0, Verdict::Differs);
        let mut hidden = sop(Some(("compliance", 14)));
        hidden.default_encryption = None;
        assert_eq!(compare(&hidden).0, Verdict::Differs);
        let mut rules = sop(Some(("compliance", 14)));
        rules.lifecycle_rules[0].days_from_uploading_to_hiding = Some(1);
        assert_eq!(compare(&rules).0, Verdict::Differs);
    }
}
