//! PURE: the diff between the desired state and the observed NAS, as a [`Plan`].
//!
//! Owns: [`plan`] (the order of the per-object planners in `tasks.rs`, the rollback and
//! root-pool blockers, the removed-pools guard), the managed pools, and the near-miss
//! pool names offered in blockers ([`similar_pool`]).
//! Does not: plan one kind of object (`tasks.rs`), or do I/O.
//! Invariants: deterministic; steps are sorted into their safe order.

use std::collections::BTreeMap;

use super::model::{Blocker, Inputs, Plan, Step, TaskRef};
use super::ownership::Ownership;
use super::tasks;
use crate::desired::{ActionKind, DesiredState};
use crate::observe::Observed;

/// Plans the changes that take `observed` to `desired`.
pub fn plan(
    desired: &DesiredState,
    observed: &Observed,
    owned: &Ownership,
    inputs: &Inputs,
) -> Plan {
    let mut p = Plan {
        revision: desired.revision,
        mode: desired.mode,
        bucket: desired.bucket.clone(),
        device_guid: inputs.device_guid,
        guid_source: inputs.guid_source.clone(),
        pools: Vec::new(),
        steps: Vec::new(),
        conflicts: Vec::new(),
        blockers: Vec::new(),
        forget: Vec::new(),
    };
    // A recorded revision above the bound was accepted before the bound existed; it
    // must not turn every later document into a rollback.
    if let Some(last) = owned
        .last_revision
        .filter(|last| crate::desired::wire::REVISION.allows(*last) && desired.revision < *last)
    {
        p.blockers.push(Blocker::Rollback {
            revision: desired.revision,
            last_applied: last,
        });
        return p;
    }
    p.pools = managed_pools(desired, observed, &mut p.blockers);
    if let Some(root) = inputs.root_pool.as_deref() {
        if observed.pool(root).is_none() {
            p.blockers.push(Blocker::RootPoolNotImported {
                pool: root.to_owned(),
            });
        }
    }
    let ctx = tasks::Ctx {
        desired,
        observed,
        owned,
        inputs,
    };
    let credential = tasks::plan_credential(&ctx, &mut p);
    let cloud_sync = tasks::plan_cloud_sync(&ctx, credential, &mut p);
    tasks::plan_snapshots(&ctx, &mut p);
    tasks::check_adopted(&ctx, &mut p);
    // Never act on "removed" pools while a listed pool is missing: a typo (`Pool0` for
    // `pool0`) would otherwise disable or delete every backup and snapshot task.
    let listed_missing = p
        .blockers
        .iter()
        .any(|b| matches!(b, Blocker::PoolNotImported { .. }));
    if !listed_missing {
        tasks::plan_removed_pools(&ctx, &mut p);
    }
    tasks::plan_snmp(&ctx, &mut p);
    plan_actions(desired, owned, &p.pools.clone(), &cloud_sync, &mut p);
    p.steps.sort_by_key(Step::phase);
    p
}

/// The pools to manage: the document's list (those imported), or every imported pool
/// except `boot-pool`.
fn managed_pools(
    desired: &DesiredState,
    observed: &Observed,
    blockers: &mut Vec<Blocker>,
) -> Vec<String> {
    match &desired.pools {
        Some(listed) => listed
            .iter()
            .filter(|pool| {
                let imported = observed.pool(pool).is_some();
                if !imported {
                    blockers.push(Blocker::PoolNotImported {
                        pool: (*pool).clone(),
                        suggestion: similar_pool(pool, observed, listed),
                    });
                }
                imported
            })
            .cloned()
            .collect(),
        None => observed
            .pools
            .iter()
            .map(|p| p.name.clone())
            .filter(|name| name != "boot-pool")
            .collect(),
    }
}

/// The imported pool a missing name most likely meant, among the pools the document
/// does not list already: the same name in another case, else the one closest by edit
/// distance (at most 2 edits, and unique).
pub fn similar_pool(name: &str, observed: &Observed, listed: &[String]) -> Option<String> {
    let names: Vec<&str> = observed
        .pools
        .iter()
        .map(|p| p.name.as_str())
        .filter(|n| *n != "boot-pool" && !listed.iter().any(|l| l == n))
        .collect();
    if let Some(same) = names.iter().find(|n| n.eq_ignore_ascii_case(name)) {
        return Some((*same).to_owned());
    }
    let lower = name.to_ascii_lowercase();
    let mut scored: Vec<(usize, &str)> = names
        .iter()
        .map(|n| (edit_distance(&lower, &n.to_ascii_lowercase()), *n))
        .filter(|(d, _)| *d <= 2)
        .collect();
    scored.sort_unstable();
    match scored.as_slice() {
        [(d, best), rest @ ..] if rest.first().is_none_or(|(d2, _)| d2 > d) => {
            Some((*best).to_owned())
        }
        _ => None,
    }
}

/// Levenshtein distance over characters.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = (prev + usize::from(ca != *cb)).min(row[j] + 1).min(cur + 1);
            prev = cur;
        }
    }
    row[b.len()]
}

fn plan_actions(
    desired: &DesiredState,
    owned: &Ownership,
    managed: &[String],
    cloud_sync: &BTreeMap<String, TaskRef>,
    p: &mut Plan,
) {
    for action in &desired.actions {
        if owned.executed_actions.contains(&action.id) {
            continue;
        }
        let ActionKind::RunCloudSync { pool } = &action.kind;
        let waiting = |reason: &str| Blocker::ActionWaiting {
            action_id: action.id.clone(),
            pool: pool.clone(),
            reason: reason.to_owned(),
        };
        if !managed.contains(pool) {
            p.blockers
                .push(waiting("the pool is not managed on this NAS"));
            continue;
        }
        match cloud_sync.get(pool) {
            Some(task) => p.steps.push(Step::RunCloudSync {
                action_id: action.id.clone(),
                pool: pool.clone(),
                task: *task,
            }),
            None => p.blockers.push(waiting(
                "the pool has no Cloud Sync task the agent manages yet",
            )),
        }
    }
}
