//! One reconcile pass: observe → resolve the device GUID → plan → apply → re-observe.
//!
//! Owns: the order of those phases and what is recorded at the end of a pass (the
//! revision applied).
//! Does not: fetch documents (central), run forever (daemon), or print (cli).
//! Invariants: with `write: false` no writing call is sent and nothing but the
//! fingerprint key is created in the state directory; a converged NAS costs exactly
//! the reads of `observe::READS` and no write.
//! After writes, the NAS is not read again in full: the plan "after" is made from the
//! observation as the writes' proofs left it (`Outcome::observed`: each write's stored row,
//! from its answer where that is a re-read of the row, read back where it is not), so a
//! fresh 2-pool box costs 20 calls and a converged one the 7 reads alone.
//! Limitations: a change someone else makes to an object the pass did not write, between
//! the first read and the end of the pass, is seen by the next pass (as with any read).

use tracing::info;

use super::{ApplyOptions, Outcome, OwnershipStore, apply};
use crate::desired::{DesiredState, Mode};
use crate::fault::Fault;
use crate::middleware::Middleware;
use crate::observe::{self, ObserveError, Observed};
use crate::plan::{self, GuidError, Inputs, Plan};
use crate::state_dir::{StateDir, StateError};
use crate::zfs::DEFAULT_GUID_PROPERTY;

/// Why a pass could not run to the end.
#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    #[error("cannot observe the NAS")]
    Observe(#[source] ObserveError),
    #[error("cannot determine the device GUID")]
    Guid(#[source] GuidError),
    #[error("cannot use the state directory")]
    State(#[source] StateError),
}

impl ReconcileError {
    /// Who has to act.
    pub fn fault(&self) -> Fault {
        match self {
            ReconcileError::Observe(e) => e.fault(),
            ReconcileError::Guid(e) => e.fault(),
            ReconcileError::State(e) => e.fault(),
        }
    }
}

/// Knobs for a pass.
#[derive(Debug, Clone)]
pub struct ReconcileOptions {
    /// False: plan only (the `plan` command).
    pub write: bool,
    /// The ZFS user property holding the device GUID.
    pub guid_property: String,
    /// The agent configuration's root pool (used when the document names none).
    pub root_pool: Option<String>,
    pub apply: ApplyOptions,
}

impl Default for ReconcileOptions {
    fn default() -> Self {
        Self {
            write: true,
            guid_property: DEFAULT_GUID_PROPERTY.to_owned(),
            root_pool: None,
            apply: ApplyOptions::default(),
        }
    }
}

/// What a pass found and did.
#[derive(Debug)]
pub struct Reconciled {
    /// The plan made from the first observation.
    pub plan: Plan,
    /// Step results (`None` when planning only).
    pub outcome: Option<Outcome>,
    /// The plan made after the writes, when anything was written: what is still left.
    pub after: Option<Plan>,
    /// The NAS as it was at the end of the pass: the observation with the writes' proven
    /// results (`Outcome::observed`), or the first observation when nothing was
    /// written; `None` when the pass was aborted after writing. Lets a caller that
    /// assesses health right after the pass skip reading the same seven things again.
    pub observed: Option<Observed>,
}

impl Reconciled {
    /// True when the NAS matches the document at the end of the pass.
    pub fn converged(&self) -> bool {
        match (&self.outcome, &self.after) {
            (Some(outcome), Some(after)) => {
                after.is_converged()
                    && outcome.failures().next().is_none()
                    && outcome.aborted.is_none()
            }
            (Some(outcome), None) => self.plan.is_converged() && outcome.all_done(),
            (None, _) => self.plan.is_converged(),
        }
    }

    /// The last plan known: after the writes if any, else the first one.
    pub fn remaining(&self) -> &Plan {
        self.after.as_ref().unwrap_or(&self.plan)
    }
}

/// Runs one pass against the NAS for `desired`.
pub async fn reconcile(
    mw: &impl Middleware,
    state: &StateDir,
    desired: &DesiredState,
    options: &ReconcileOptions,
) -> Result<Reconciled, ReconcileError> {
    let observed = observe::observe(mw)
        .await
        .map_err(ReconcileError::Observe)?;
    reconcile_observed(mw, state, desired, options, observed).await
}

/// [`reconcile`] from an observation the caller keeps current (the daemon's view of the
/// NAS, from events): no read before planning.
pub async fn reconcile_observed(
    mw: &impl Middleware,
    state: &StateDir,
    desired: &DesiredState,
    options: &ReconcileOptions,
    observed: Observed,
) -> Result<Reconciled, ReconcileError> {
    let (device_guid, guid_source) = plan::resolve_device_guid(
        desired,
        &observed,
        &options.guid_property,
        options.root_pool.as_deref(),
    )
    .map_err(ReconcileError::Guid)?;
    let mut store = OwnershipStore::load(state).map_err(ReconcileError::State)?;
    let inputs = Inputs {
        device_guid,
        guid_source,
        fingerprints: store.fingerprints(desired).map_err(ReconcileError::State)?,
        root_pool: desired
            .device
            .root_pool
            .clone()
            .or_else(|| options.root_pool.clone()),
    };
    let first = plan::plan(desired, &observed, store.get(), &inputs);
    info!(
        revision = desired.revision,
        steps = first.steps.len(),
        conflicts = first.conflicts.len(),
        blockers = first.blockers.len(),
        "planned"
    );
    if !options.write {
        return Ok(Reconciled {
            plan: first,
            outcome: None,
            after: None,
            observed: Some(observed),
        });
    }
    let outcome = apply(&first, desired, &observed, mw, &mut store, &options.apply).await;
    let rolled_back = first
        .blockers
        .iter()
        .any(|b| matches!(b, plan::Blocker::Rollback { .. }));
    if desired.mode == Mode::Enforce && outcome.aborted.is_none() && !rolled_back {
        let revision = desired.revision;
        store
            .update(|o| {
                o.last_revision = Some(o.last_revision.map_or(revision, |r| r.max(revision)));
            })
            .map_err(ReconcileError::State)?;
    }
    let (after, last_observed) = match (&outcome.observed, outcome.wrote()) {
        (Some(proven), true) => {
            let after = plan::plan(desired, proven, store.get(), &inputs);
            (Some(after), Some(proven.clone()))
        }
        // Aborted after writing: the first observation no longer describes the NAS.
        (None, true) => (None, None),
        (_, false) => (None, Some(observed)),
    };
    Ok(Reconciled {
        plan: first,
        outcome: Some(outcome),
        after,
        observed: last_observed,
    })
}
