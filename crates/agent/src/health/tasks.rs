//! Which Cloud Sync and snapshot task is a pool's, for every part of health that needs
//! to know (evaluators, the checklist, the observation of snapshot listings).
//!
//! Owns: [`cloud_sync_task`], [`snapshot_task`] and a naming schema's fixed prefix
//! ([`name_prefix`]).
//! Does not: judge the task.
//! Invariants: a task another pool owns is never matched.

use super::model::TaskSource;
use crate::desired::derive;
use crate::observe::{CloudSyncTask, Observed, SnapshotTask};
use crate::plan::{ObjectKind, Ownership};

/// The pool's Cloud Sync task: the one the ownership record names, else the SOP-shaped
/// PUSH task from `/mnt/<pool>` that no other pool owns (preferring the document's
/// bucket, then the SOP description, then the lowest id).
pub(crate) fn cloud_sync_task<'a>(
    pool: &str,
    observed: &'a Observed,
    owned: &Ownership,
    bucket: Option<&str>,
) -> Option<(&'a CloudSyncTask, TaskSource)> {
    if let Some(record) = owned.cloud_sync.get(pool) {
        if let Some(task) = observed.cloud_sync.iter().find(|t| t.id == record.id) {
            return Some((task, TaskSource::Owned));
        }
    }
    let path = derive::pool_path(pool);
    let description = derive::description(pool);
    observed
        .cloud_sync
        .iter()
        .filter(|t| t.path.trim_end_matches('/') == path && t.direction == "PUSH")
        .filter(|t| !owned.owns(ObjectKind::CloudSync, t.id))
        .min_by_key(|t| {
            (
                bucket.is_some_and(|b| t.attributes.bucket != b),
                t.description != description,
                t.id,
            )
        })
        .map(|t| (t, TaskSource::Matched))
}

/// The pool's snapshot task: the recorded one, else a task on the pool's root dataset
/// that no other pool owns (preferring recursive `auto-` tasks, then the lowest id).
pub(crate) fn snapshot_task<'a>(
    pool: &str,
    observed: &'a Observed,
    owned: &Ownership,
) -> Option<(&'a SnapshotTask, TaskSource)> {
    if let Some(record) = owned.snapshot_tasks.get(pool) {
        if let Some(task) = observed.snapshot_tasks.iter().find(|t| t.id == record.id) {
            return Some((task, TaskSource::Owned));
        }
    }
    observed
        .snapshot_tasks
        .iter()
        .filter(|t| t.dataset == pool && !owned.owns(ObjectKind::SnapshotTask, t.id))
        .min_by_key(|t| (!t.recursive, !t.naming_schema.starts_with("auto-"), t.id))
        .map(|t| (t, TaskSource::Matched))
}

/// The fixed text a naming schema's names start with (`auto-%Y…` → `auto-`).
pub(crate) fn name_prefix(schema: &str) -> String {
    schema.split('%').next().unwrap_or_default().to_owned()
}
