//! PURE: the report's `health` and `checklist` parts (central-protocol.md §4), built from a
//! [`Health`].
//!
//! Owns: the exact wire shapes of those two parts — field names, `null`s, RFC 3339 times
//! with whole seconds and `Z`, the `pass|fail|unknown` status strings — and the mapping.
//! Does not: build the rest of the report or send it (the central channel does).
//! Invariants: field names are the contract's, binding for v1 (a test pins them against a
//! golden JSON); nothing here carries a secret (inputs are already redacted); a status is
//! only ever `pass`, `fail` or `unknown`.
//! Limitations: these structs mirror the central branch's `HealthSection` /
//! `ChecklistItem`; when that lands the lead can fill those from [`health_part`] and
//! [`checklist_part`] one-to-one.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{Checklist, Health, sync};

/// `health` of the report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HealthPart {
    pub cloud_sync: Vec<CloudSyncEntry>,
    pub snapshots: Vec<SnapshotEntry>,
}

/// `health.cloud_sync[]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CloudSyncEntry {
    pub pool: String,
    pub task_id: Option<u64>,
    /// The last run's job state (`SUCCESS`, `RUNNING`, `FAILED`, …) or `NEVER_RUN` /
    /// `MISSING`.
    pub state: String,
    #[serde(with = "opt_time")]
    pub last_started: Option<DateTime<Utc>>,
    #[serde(with = "opt_time")]
    pub last_finished: Option<DateTime<Utc>>,
    #[serde(with = "opt_time")]
    pub last_success: Option<DateTime<Utc>>,
    pub overdue: bool,
    /// `retention_locked | auth | network | dataset_locked | other` when the last run
    /// failed (`retention_locked` is the SOP's expected case, not a failure).
    pub error_class: Option<String>,
    /// One redacted line for the operator.
    pub message: Option<String>,
}

/// `health.snapshots[]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotEntry {
    pub pool: String,
    pub task_id: Option<u64>,
    /// Newest snapshot name of the pool's root dataset made by the task.
    pub latest: Option<String>,
    pub latest_age_s: Option<u64>,
    /// Snapshots of the whole pool with the task's prefix (0 when unknown).
    pub count: u64,
}

/// `checklist[]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChecklistEntry {
    pub id: String,
    pub title: String,
    /// `pass | fail | unknown`.
    pub status: String,
    pub detail: String,
}

/// The report's `health` part.
pub fn health_part(health: &Health) -> HealthPart {
    HealthPart {
        cloud_sync: health
            .cloud_sync
            .iter()
            .map(|h| CloudSyncEntry {
                pool: h.pool.clone(),
                task_id: h.task_id,
                state: h.state.as_str().to_owned(),
                last_started: h.last_started,
                last_finished: h.last_finished,
                last_success: h.last_success,
                overdue: h.overdue,
                error_class: sync::error_class(h).map(str::to_owned),
                message: Some(h.message.clone()),
            })
            .collect(),
        snapshots: health
            .snapshots
            .iter()
            .map(|s| SnapshotEntry {
                pool: s.pool.clone(),
                task_id: s.task_id,
                latest: s.latest.clone(),
                latest_age_s: s.latest_age_s,
                count: s.count.unwrap_or(0),
            })
            .collect(),
    }
}

/// The report's `checklist` part. The detail carries the next step when there is one.
pub fn checklist_part(checklist: &Checklist) -> Vec<ChecklistEntry> {
    checklist
        .items
        .iter()
        .map(|item| ChecklistEntry {
            id: item.id.clone(),
            title: item.title.clone(),
            status: item.status.wire().to_owned(),
            detail: match &item.next_step {
                Some(step) => format!("{} Next step: {step}", item.detail),
                None => item.detail.clone(),
            },
        })
        .collect()
}

mod opt_time {
    use chrono::{DateTime, Utc};
    use serde::{Deserialize, Deserializer, Serializer};

    #[allow(
        clippy::ref_option,
        reason = "serde's `with` calls it with `&Option<T>`"
    )]
    pub(super) fn serialize<S: Serializer>(
        t: &Option<DateTime<Utc>>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        match t {
            Some(t) => s.serialize_str(&super::super::rfc3339(t)),
            None => s.serialize_none(),
        }
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<DateTime<Utc>>, D::Error> {
        let text = Option::<String>::deserialize(d)?;
        text.map(|t| {
            DateTime::parse_from_rfc3339(&t)
                .map(|t| t.with_timezone(&Utc))
                .map_err(serde::de::Error::custom)
        })
        .transpose()
    }
}
