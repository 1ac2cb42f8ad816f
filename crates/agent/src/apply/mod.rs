//! Executes a [`Plan`] through the middleware — the only module that writes to it.
//!
//! Owns: running steps in the plan's safe order (credential → check that B2 lists the
//! bucket with it → Cloud Sync tasks → snapshot tasks → SNMP → services → one-shot
//! actions), proving every write (from its answer where that is the stored row re-read,
//! else by reading back only what the answer does not prove) into the observation the
//! pass ends with ([`Outcome::observed`]), recording ownership and secret fingerprints in the state directory
//! (`ownership.json`, see [`store`]), remembering a failed SNMP apply there
//! (`snmp_retry`, so later passes re-apply SNMP until it works), and the per-step
//! [`Outcome`]. Also the
//! [`reconcile`] pass that strings observe → plan → apply → re-observe together.
//! Does not: decide what to change (`plan`), or check the document (`desired`).
//! Invariants: `report-only` sends no writing call; a step's failure is recorded and
//! the pass goes on, except transport loss or an unwritable state directory, which stop
//! it; before every create a write-ahead record is saved so an interrupted create is
//! matched back, never duplicated; an action id is recorded *before* it runs (at most
//! once) and dropped again only when the run certainly did not start (the middleware
//! refused the call, or answered with a job that is not a new run of the task);
//! credentials are proven by reading them back with a query (the write's answer is built
//! from what was sent), services by reading their row back (`service.update` answers
//! with the row id); a write that failed leaves its object as observed; secrets go only into call params, and every middleware text kept
//! in an outcome is redacted of the document's secrets.
//! Limitations: a read-back that differs is reported, not retried; the credential is
//! verified only when it or a task's credential is written in the pass.

mod exec;
mod outcome;
pub(crate) mod payload;
mod reconcile;
pub(crate) mod store;

pub use outcome::{
    ApplyError, ApplyOptions, Extra, NotStarted, Origin, Outcome, StepResult, StepStatus,
};
pub use reconcile::{ReconcileError, ReconcileOptions, Reconciled, reconcile, reconcile_observed};
pub use store::{ACTIONS_FILE, OWNERSHIP_FILE, OwnershipStore};

use crate::desired::{DesiredState, Mode};
use crate::middleware::Middleware;
use crate::observe::Observed;
use crate::plan::Plan;

/// Executes `plan` (made from `desired` and `observed`) and records ownership in
/// `store`. In `report-only` mode every step is skipped and nothing is sent.
pub async fn apply(
    plan: &Plan,
    desired: &DesiredState,
    observed: &Observed,
    mw: &impl Middleware,
    store: &mut OwnershipStore,
    options: &ApplyOptions,
) -> Outcome {
    if plan.mode == Mode::ReportOnly {
        return Outcome {
            results: plan
                .steps
                .iter()
                .enumerate()
                .map(|(i, s)| StepResult {
                    origin: Origin::Step(i),
                    summary: s.summary(),
                    status: StepStatus::Skipped {
                        reason: "mode is report-only".to_owned(),
                    },
                })
                .collect(),
            aborted: None,
            observed: Some(observed.clone()),
        };
    }
    exec::run(plan, desired, observed, mw, store, options).await
}

#[cfg(test)]
mod tests;
