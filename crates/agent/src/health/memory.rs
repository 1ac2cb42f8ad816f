//! What health remembers between runs: `health.json` in the state directory.
//!
//! Owns: the [`HealthMemory`] schema — per pool, the task id, when the agent first saw
//! the task and its last successful run (jobs vanish when middlewared restarts); the
//! last B2 report and the last checklist (so `status` can show them without calling B2)
//! — the pure update [`HealthMemory::remember`], and loading/saving the file.
//! Does not: decide health (it is an input to `evaluate`).
//! Invariants: holds no secret (B2 findings and checklist details are redacted texts;
//! the rest are ids and times); a memory for a task id that no longer matches the pool's
//! task is replaced, never merged; times only move forward (`last_success` = the newest
//! ever seen).
//! Limitations: single writer (see `state_dir`).

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{ChecklistItem, Health};
use crate::b2::B2Report;
use crate::state_dir::{StateDir, StateError};

/// The file this module owns in the state directory.
pub(crate) const HEALTH_FILE: &str = "health.json";

/// One remembered task.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskMemory {
    pub task_id: u64,
    /// When the agent first saw this task (or its earliest run, if older).
    pub first_seen: DateTime<Utc>,
    pub last_success: Option<DateTime<Utc>>,
}

/// The last checklist evaluated (by `verify` or the daemon).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredChecklist {
    pub checked_at: DateTime<Utc>,
    /// The document revision it was checked against.
    pub revision: u64,
    pub items: Vec<ChecklistItem>,
}

/// Everything in `health.json`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct HealthMemory {
    /// Pool → its Cloud Sync task.
    pub cloud_sync: BTreeMap<String, TaskMemory>,
    /// Pool → its periodic snapshot task.
    pub snapshots: BTreeMap<String, TaskMemory>,
    pub last_b2: Option<B2Report>,
    pub last_checklist: Option<StoredChecklist>,
}

impl HealthMemory {
    /// Loads `health.json` (absent: empty memory).
    pub fn load(dir: &StateDir) -> Result<Self, StateError> {
        Ok(dir.read_json(HEALTH_FILE)?.unwrap_or_default())
    }

    /// Saves `health.json` atomically (mode 0600).
    pub fn save(&self, dir: &StateDir) -> Result<(), StateError> {
        dir.write_json(HEALTH_FILE, self)
    }

    /// The remembered Cloud Sync task of `pool`, if it is still task `task_id`.
    pub fn cloud_sync_task(&self, pool: &str, task_id: u64) -> Option<&TaskMemory> {
        self.cloud_sync.get(pool).filter(|m| m.task_id == task_id)
    }

    /// The remembered snapshot task of `pool`, if it is still task `task_id`.
    pub fn snapshot_task(&self, pool: &str, task_id: u64) -> Option<&TaskMemory> {
        self.snapshots.get(pool).filter(|m| m.task_id == task_id)
    }

    /// The memory after an evaluation: new tasks get `first_seen`, last successes move
    /// forward, tasks that changed id start over. Pools not in `health` are kept (a
    /// `status` without a document may see fewer pools).
    #[must_use]
    pub fn remember(&self, health: &Health) -> HealthMemory {
        let mut next = self.clone();
        for sync in &health.cloud_sync {
            let Some(id) = sync.task_id else { continue };
            let seen = sync
                .last_started
                .map_or(health.evaluated_at, |s| s.min(health.evaluated_at));
            update(
                &mut next.cloud_sync,
                &sync.pool,
                id,
                seen,
                sync.last_success,
            );
        }
        for snap in &health.snapshots {
            let Some(id) = snap.task_id else { continue };
            update(
                &mut next.snapshots,
                &snap.pool,
                id,
                health.evaluated_at,
                snap.latest_at,
            );
        }
        next
    }
}

fn update(
    map: &mut BTreeMap<String, TaskMemory>,
    pool: &str,
    task_id: u64,
    seen: DateTime<Utc>,
    success: Option<DateTime<Utc>>,
) {
    let entry = map
        .entry(pool.to_owned())
        .and_modify(|m| {
            if m.task_id != task_id {
                *m = TaskMemory {
                    task_id,
                    first_seen: seen,
                    last_success: None,
                };
            }
        })
        .or_insert(TaskMemory {
            task_id,
            first_seen: seen,
            last_success: None,
        });
    entry.first_seen = entry.first_seen.min(seen);
    entry.last_success = entry.last_success.max(success);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::health::fixtures::{health_with, sync_health};
    use chrono::TimeZone;

    fn at(h: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 23, h, 0, 0).unwrap()
    }

    #[test]
    fn remembers_forward_and_restarts_on_a_new_task() {
        let mut first = sync_health("pool0", 5);
        first.last_success = Some(at(1));
        let m1 = HealthMemory::default().remember(&health_with(at(10), vec![first]));
        assert_eq!(m1.cloud_sync["pool0"].first_seen, at(10));
        assert_eq!(m1.cloud_sync["pool0"].last_success, Some(at(1)));

        // The middleware restarted: no success visible any more; the memory keeps it.
        let forgot = sync_health("pool0", 5);
        let m2 = m1.remember(&health_with(at(11), vec![forgot]));
        assert_eq!(m2.cloud_sync["pool0"].last_success, Some(at(1)));
        assert_eq!(m2.cloud_sync["pool0"].first_seen, at(10));
        assert!(m2.cloud_sync_task("pool0", 5).is_some());
        assert!(m2.cloud_sync_task("pool0", 6).is_none());

        // A new task for the pool starts over.
        let replaced = sync_health("pool0", 6);
        let m3 = m2.remember(&health_with(at(12), vec![replaced]));
        assert_eq!(m3.cloud_sync["pool0"].task_id, 6);
        assert_eq!(m3.cloud_sync["pool0"].last_success, None);
        assert_eq!(m3.cloud_sync["pool0"].first_seen, at(12));
    }

    #[test]
    fn file_round_trip() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = StateDir::open(tmp.path()).unwrap();
        assert_eq!(HealthMemory::load(&dir).unwrap(), HealthMemory::default());
        let mut memory = HealthMemory::default();
        memory.cloud_sync.insert(
            "pool0".into(),
            TaskMemory {
                task_id: 1,
                first_seen: at(1),
                last_success: Some(at(2)),
            },
        );
        memory.save(&dir).unwrap();
        assert_eq!(HealthMemory::load(&dir).unwrap(), memory);
        let (_, mode) = crate::fs::owner_and_mode(&dir.file(HEALTH_FILE)).unwrap();
        assert_eq!(mode, 0o600);
    }
}
