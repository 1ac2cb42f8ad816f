//! PURE: other Cloud Sync tasks that push into a managed pool's bucket folder.
//!
//! Owns: finding, for each managed pool's task, every other PUSH task whose bucket and
//! folder are the same ([`SharedFolder`]), and the problem each one is.
//! Does not: decide which task is the pool's (`tasks::cloud_sync_task` does), or edit anything:
//! the other task may be a technician's; only a human removes it.
//! Invariants: folders are compared as the middleware builds the remote path (leading
//! and trailing slashes stripped); an enabled other task is `Failing` (two SYNC tasks on
//! one folder delete each other's files), a disabled one a `Warning` (it would, once
//! enabled).
//! Limitations: a PULL task reading the folder (a restore) is not counted: it writes to
//! the NAS, not to the bucket.

pub(super) use super::model::SharedFolder;
use super::model::{Area, Level, Problem};
use crate::observe::{CloudSyncTask, Observed};
use crate::plan::Ownership;

fn same_target(a: &CloudSyncTask, b: &CloudSyncTask) -> bool {
    a.attributes.bucket == b.attributes.bucket
        && a.attributes.folder.trim_matches('/') == b.attributes.folder.trim_matches('/')
}

/// Every other PUSH task writing into the folder of each pool's task.
pub(crate) fn find(
    pools: &[String],
    observed: &Observed,
    owned: &Ownership,
    bucket: Option<&str>,
) -> Vec<SharedFolder> {
    let mut out = Vec::new();
    for pool in pools {
        let Some((task, _)) = super::tasks::cloud_sync_task(pool, observed, owned, bucket) else {
            continue;
        };
        for other in observed
            .cloud_sync
            .iter()
            .filter(|o| o.id != task.id && o.direction == "PUSH" && same_target(o, task))
        {
            out.push(SharedFolder {
                pool: pool.clone(),
                task_id: task.id,
                bucket: task.attributes.bucket.clone(),
                folder: task.attributes.folder.clone(),
                other_id: other.id,
                other_description: other.description.clone(),
                other_enabled: other.enabled,
            });
        }
    }
    out
}

/// The problem a shared folder is.
pub(crate) fn problem(s: &SharedFolder) -> Problem {
    let (level, now) = if s.other_enabled {
        (Level::Failing, "two SYNC tasks delete each other's files")
    } else {
        (
            Level::Warning,
            "it is disabled now; enabled, the two SYNC tasks would delete each other's files",
        )
    };
    Problem {
        level,
        area: Area::Backup,
        subject: Some(s.pool.clone()),
        message: format!(
            "Cloud Sync task #{} \"{}\" also pushes into {}:{}, the folder of {}'s backup task \
             #{}: {now}",
            s.other_id, s.other_description, s.bucket, s.folder, s.pool, s.task_id
        ),
        next_step: format!(
            "Delete task #{} in Data Protection → Cloud Sync Tasks, or point it at another \
             folder (SOP 5.3: one task per pool, each with its own folder). The agent never \
             edits a task it does not own; if #{} is the agent's own task from a lost state \
             directory, list it in the document's adopt.cloud_sync instead.",
            s.other_id, s.other_id
        ),
    }
}
