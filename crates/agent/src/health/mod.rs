//! Task health and the SOP verification checklist: is the backup really happening?
//!
//! Owns: the PURE evaluation [`evaluate`]`(&DesiredState, &Observed, &HealthObservations,
//! now) -> Health` (and [`evaluate_nas`] when no document is at hand): per pool the Cloud
//! Sync task (last run, last success, overdue, classified failure), the periodic snapshot
//! task (state, newest `auto-` snapshot, age, count), pools, SNMP and relevant alerts,
//! each with a level and the next step for a technician; other tasks pushing into a
//! managed pool's bucket folder ([`SharedFolder`]); the SOP §6 [`checklist`] (the box
//! against the SOP, deviations the document asks for told apart); the contract §4
//! report parts ([`report`]). Submodules `schedule` and `classify` are pure
//! helpers; the shared types are in `model` (sections, problems, checklist items,
//! [`Health`]), the evaluators' inputs in `ctx`, "which task is the pool's" in `tasks`.
//! Three I/O submodules are the imperative shell around that core: `observe`
//! (the extra middleware reads and the B2 run → [`HealthObservations`]), `memory`
//! (`health.json` in the state dir: last successes, first-seen times, last B2 report and
//! checklist) and `assess` (the whole pass `verify`, `status` and the daemon share).
//! Does not: write to the middleware or B2, decide retries, or print (`cli` does).
//! Invariants: `evaluate` is deterministic and reads no clock: `now` and the NAS's UTC
//! offset are inputs; every text that came from the NAS is redacted (the document's
//! secrets and anything key-like) before it is stored in a [`Health`]; a fact that could
//! not be read is `Unknown`, never `Ok`.
//! Limitations: tasks are found by the ownership record, else by the SOP's identity
//! (`/mnt/<pool>` PUSH task, snapshot task on `<pool>`); snapshots are attributed to a
//! task by its naming-schema prefix, so two tasks sharing a schema on one pool are
//! counted together.

mod against;
pub mod assess;
pub(crate) mod checklist;
pub(crate) mod classify;
mod ctx;
pub(crate) mod memory;
mod model;
pub(crate) mod observe;
pub(crate) mod report;
pub mod schedule;
mod shared;
mod snapshots;
mod sync;
mod system;
mod tasks;

#[cfg(test)]
mod fixtures;
#[cfg(test)]
pub(crate) mod tests;
#[cfg(test)]
mod verdict_tests;

use chrono::{DateTime, Utc};

pub use crate::scrub::Scrubber as Redactor;
pub use classify::{Classified, ErrorClass};
pub use memory::HealthMemory;
pub use model::{
    Alert, Area, Checklist, ChecklistItem, CloudSyncHealth, Health, ItemScope, ItemStatus, Level,
    Policy, PoolHealth, Problem, SharedFolder, SnapshotHealth, SnmpHealth, StateFile,
    StateFileError, SuccessSource, SyncState, TaskSource, age_seconds, human_age, rfc3339,
};
pub use observe::{HealthObservations, SnapshotListing, SnapshotTaskState, TaskRuns};

use ctx::{Ctx, Scope};

use crate::desired::DesiredState;
use crate::observe::Observed;
use crate::plan::Ownership;

impl Health {
    /// The worst level of all sections (the checklist counts through its failures).
    pub fn level(&self) -> Level {
        Level::worst(self.problems().iter().map(|p| p.level))
    }

    /// Every problem with its next step, worst first. A failing checklist item is
    /// always a `Failing` problem: an item whose facts a section already reports at its
    /// level or worse (SNMP, the pool's backup) is not listed twice.
    pub fn problems(&self) -> Vec<Problem> {
        let mut out = Vec::new();
        system::pool_problems(&self.pools, &mut out);
        for sync in &self.cloud_sync {
            sync::problem(sync, &mut out);
        }
        out.extend(self.shared_folders.iter().map(shared::problem));
        for snap in &self.snapshots {
            snapshots::problem(snap, &mut out);
        }
        system::snmp_problem(&self.snmp, &mut out);
        system::alert_problems(&self.alerts, &mut out);
        out.extend(self.state_errors.iter().map(StateFileError::problem));
        for error in &self.read_errors {
            out.push(Problem {
                level: Level::Unknown,
                area: Area::Middleware,
                subject: None,
                message: error.clone(),
                next_step: "Retry; if it persists, check that the middleware is responsive \
                            (`midclt call core.ping`)."
                    .to_owned(),
            });
        }
        let sections = out.clone();
        out.extend(self.checklist.problems().into_iter().filter(|p| {
            !p.subject
                .as_deref()
                .is_some_and(|id| checklist::restated_in(id, p.level, &sections))
        }));
        out.sort_by_key(|p| std::cmp::Reverse(p.level));
        out
    }
}

/// The pools health looks at (imported ones): the document's, else those the ownership
/// record names, else every imported pool except `boot-pool`.
pub fn managed_pools(
    desired: Option<&DesiredState>,
    observed: &Observed,
    owned: &Ownership,
) -> Vec<String> {
    match desired {
        Some(d) => Scope::from_desired(d, observed).pools,
        None => Scope::from_nas(observed, owned).pools,
    }
}

/// Evaluates health and the SOP checklist against the desired state.
pub fn evaluate(
    desired: &DesiredState,
    observed: &Observed,
    obs: &HealthObservations,
    now: DateTime<Utc>,
) -> Health {
    let scope = Scope::from_desired(desired, observed);
    let mut health = evaluate_scope(&scope, observed, obs, now, &Policy::default());
    health.checklist = checklist::evaluate(desired, observed, obs, &health);
    health
}

/// Evaluates task health without a document (e.g. `status` on a box whose daemon has
/// not fetched one): the pools the agent owns tasks for, else every data pool. No
/// checklist.
pub fn evaluate_nas(observed: &Observed, obs: &HealthObservations, now: DateTime<Utc>) -> Health {
    let scope = Scope::from_nas(observed, &obs.ownership);
    evaluate_scope(&scope, observed, obs, now, &Policy::default())
}

fn evaluate_scope(
    scope: &Scope<'_>,
    observed: &Observed,
    obs: &HealthObservations,
    now: DateTime<Utc>,
    policy: &Policy,
) -> Health {
    let redactor = obs.redactor(scope.desired);
    let ctx = Ctx {
        observed,
        obs,
        now,
        offset: obs.offset,
        policy,
        redactor: &redactor,
        desired: scope.desired,
    };
    Health {
        evaluated_at: now,
        pools: system::pools(scope, observed),
        cloud_sync: scope
            .pools
            .iter()
            .map(|p| sync::evaluate(&ctx, p))
            .collect(),
        snapshots: scope
            .pools
            .iter()
            .map(|p| snapshots::evaluate(&ctx, p))
            .collect(),
        snmp: system::snmp(&ctx),
        alerts: system::alerts(&ctx),
        read_errors: obs.read_errors.iter().map(|e| redactor.scrub(e)).collect(),
        shared_folders: shared::find(&scope.pools, observed, &obs.ownership, ctx.bucket()),
        state_errors: obs
            .state_errors
            .iter()
            .map(|e| StateFileError {
                file: e.file,
                error: redactor.scrub(&e.error),
            })
            .collect(),
        checklist: Checklist::default(),
    }
}
