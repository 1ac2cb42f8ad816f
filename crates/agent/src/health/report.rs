//! PURE: the report's `health` and `checklist` parts (central-protocol.md §4), filled from a
//! [`Health`] into the central channel's wire types.
//!
//! Owns: the mapping — which health fact goes into which contract field, the
//! `pass|fail|unknown` status of each checklist item, and the next step appended to a
//! non-passing item's `detail`.
//! Does not: build the rest of the report, encode or send it (`central::report` and the
//! daemon do); this is the only health submodule that names `central` types.
//! Invariants: nothing here carries a secret (the inputs are already redacted, and
//! `central::report::encode` scrubs known secrets once more); a status is only ever
//! `pass`, `fail` or `unknown` (an item only central can check is `unknown`).
//! Limitations: `count` is 0 when the snapshot count could not be read (the `message`
//! of the pool's Cloud Sync entry and `status` say why).

use super::{Checklist, Health, ItemStatus, sync};
use crate::central::report::{
    CheckStatus, ChecklistItem, CloudSyncHealth, HealthSection, SnapshotHealth,
};

/// The report's `health` part.
pub(crate) fn health_section(health: &Health) -> HealthSection {
    HealthSection {
        cloud_sync: health
            .cloud_sync
            .iter()
            .map(|h| CloudSyncHealth {
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
            .map(|s| SnapshotHealth {
                pool: s.pool.clone(),
                task_id: s.task_id,
                latest: s.latest.clone(),
                latest_age_s: s.latest_age_s,
                count: s.count.unwrap_or(0),
            })
            .collect(),
    }
}

/// The contract status of an item (`pass|fail|unknown` only): a deviation from the SOP
/// that the document asks for is `fail` — the box does not meet the SOP — and its
/// detail starts with "DEVIATES" and names the document's value and the SOP's.
pub(crate) fn check_status(status: ItemStatus) -> CheckStatus {
    match status {
        ItemStatus::Pass => CheckStatus::Pass,
        ItemStatus::Fail | ItemStatus::Deviates => CheckStatus::Fail,
        ItemStatus::Unknown | ItemStatus::NotChecked => CheckStatus::Unknown,
    }
}

/// The report's `checklist` part. The detail carries the next step when there is one.
pub(crate) fn checklist_items(checklist: &Checklist) -> Vec<ChecklistItem> {
    checklist
        .items
        .iter()
        .map(|item| ChecklistItem {
            id: item.id.clone(),
            title: item.title.clone(),
            status: check_status(item.status),
            detail: match &item.next_step {
                Some(step) => format!("{} Next step: {step}", item.detail),
                None => item.detail.clone(),
            },
        })
        .collect()
}
