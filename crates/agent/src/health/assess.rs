//! The health pass: observe the NAS (and B2), evaluate, remember — the sequence `verify`,
//! `status` and the daemon share.
//!
//! Owns: [`assess`] (reads `Observed`, the ownership record and `health.json`, runs the
//! extra health reads and optionally B2, evaluates) and [`record`] (writes the updated
//! `health.json`).
//! Does not: print, decide exit codes, or write to the middleware or B2.
//! Invariants: read-only towards the NAS; every read is bounded by a timeout; the
//! document's and the NAS's own secrets are scrubbed from every text it keeps; `now` and
//! the NAS's UTC offset come from the caller (tests inject them); a missing or unreadable
//! ownership record or memory degrades to "empty" with a read error, never aborts.
//! Limitations: the UTC offset is the agent's local one (it runs on the NAS, whose
//! `/etc/localtime` the middleware's cron also uses).

use std::time::Duration;

use chrono::{DateTime, FixedOffset, Utc};

use super::memory::{HealthMemory, StoredChecklist};
use super::observe::{HealthObservations, ObserveOptions, observe, observe_b2};
use super::{Health, StateFile, StateFileError, evaluate, evaluate_nas, managed_pools};
use crate::apply::OwnershipStore;
use crate::b2::ClientOptions;
use crate::desired::DesiredState;
use crate::fault::Fault;
use crate::middleware::Middleware;
use crate::observe::{self as nas, ObserveError, Observed, READS};
use crate::scrub::Scrubber;
use crate::state_dir::{StateDir, StateError};

/// How a health pass runs.
#[derive(Debug, Clone)]
pub struct AssessOptions {
    pub now: DateTime<Utc>,
    /// The NAS's UTC offset now.
    pub offset: FixedOffset,
    /// Timeout of each middleware read.
    pub call_timeout: Duration,
    /// Run the B2 verification with these client options; `None` skips B2.
    pub b2: Option<ClientOptions>,
    /// The ZFS user property holding the device GUID (agent config).
    pub guid_property: String,
    /// The agent configuration's root pool.
    pub root_pool: Option<String>,
}

impl AssessOptions {
    /// Wall clock and the agent's local offset; 15 s per read; B2 with production options.
    pub fn live() -> Self {
        let now = Utc::now();
        Self {
            now,
            offset: local_offset(now),
            call_timeout: Duration::from_secs(15),
            b2: Some(ClientOptions::default()),
            guid_property: crate::zfs::DEFAULT_GUID_PROPERTY.to_owned(),
            root_pool: None,
        }
    }
}

/// The agent's local UTC offset at `at` (the NAS's, since the agent runs on it).
pub fn local_offset(at: DateTime<Utc>) -> FixedOffset {
    *at.with_timezone(&chrono::Local).offset()
}

/// Why a health pass could not run.
#[derive(Debug, thiserror::Error)]
pub enum AssessError {
    /// The NAS could not be read at all.
    #[error("cannot observe the NAS")]
    Observe(#[source] ObserveError),
    /// The reads did not finish in time.
    #[error("observing the NAS took longer than {0:?}")]
    TimedOut(Duration),
}

impl AssessError {
    /// Who has to act.
    pub fn fault(&self) -> Fault {
        match self {
            AssessError::Observe(e) => e.fault(),
            AssessError::TimedOut(_) => Fault::Transient,
        }
    }
}

/// The result of one health pass.
#[derive(Debug, Clone)]
pub struct Assessment {
    pub observed: Observed,
    pub health: Health,
    /// `health.json` as it should be after this pass (not yet written: see [`record`]).
    pub memory: HealthMemory,
}

/// Observes and evaluates. With a document: the SOP checklist too, and B2 when
/// `options.b2` is set. Without: task health for what the agent owns (or every pool).
pub async fn assess(
    mw: &impl Middleware,
    desired: Option<&DesiredState>,
    state: &StateDir,
    options: &AssessOptions,
) -> Result<Assessment, AssessError> {
    assess_with(mw, desired, state, options, None).await
}

/// [`assess`], starting from `observed` when the caller has just read the NAS (the
/// daemon, right after a reconcile pass: [`crate::apply::Reconciled::observed`]);
/// `None` reads it here.
pub async fn assess_with(
    mw: &impl Middleware,
    desired: Option<&DesiredState>,
    state: &StateDir,
    options: &AssessOptions,
    observed: Option<Observed>,
) -> Result<Assessment, AssessError> {
    let observed = if let Some(observed) = observed {
        observed
    } else {
        let budget = options.call_timeout * u32::try_from(READS.len()).unwrap_or(u32::MAX);
        tokio::time::timeout(budget, nas::observe(mw))
            .await
            .map_err(|_| AssessError::TimedOut(budget))?
            .map_err(AssessError::Observe)?
    };
    let base = base(state, options, &observed);
    let pools = managed_pools(desired, &observed, &base.ownership);
    let observe_options = ObserveOptions {
        call_timeout: options.call_timeout,
    };
    let obs = observe(mw, &observed, &pools, base, &observe_options).await;
    Ok(finish(mw, desired, options, observed, &pools, obs).await)
}

/// What the health evaluation knows from the middleware besides [`Observed`], read
/// earlier and kept current by the caller (the daemon's view of the NAS, from events):
/// the same parts [`observe`] reads.
#[derive(Debug, Clone, Default)]
pub struct HealthReads {
    pub runs: std::collections::BTreeMap<u64, super::TaskRuns>,
    pub snapshot_states: std::collections::BTreeMap<u64, super::SnapshotTaskState>,
    pub snapshots: std::collections::BTreeMap<String, super::SnapshotListing>,
    pub alerts: Option<Vec<super::Alert>>,
    /// Reads that failed when these parts were read.
    pub read_errors: Vec<String>,
}

/// [`assess`] from what the caller already knows: `observed` and `reads`, without a
/// middleware read (B2 aside, when `options.b2` asks for a check). The clock is
/// `options.now`: ages and overdue verdicts move with it.
pub async fn assess_from(
    mw: &impl Middleware,
    desired: Option<&DesiredState>,
    state: &StateDir,
    options: &AssessOptions,
    observed: Observed,
    reads: HealthReads,
) -> Assessment {
    let mut obs = base(state, options, &observed);
    let pools = managed_pools(desired, &observed, &obs.ownership);
    obs.runs = reads.runs;
    obs.snapshot_states = reads.snapshot_states;
    obs.snapshots = reads.snapshots;
    obs.alerts = reads.alerts;
    obs.read_errors.extend(reads.read_errors);
    finish(mw, desired, options, observed, &pools, obs).await
}

/// The observations before any health read: the state directory's records and the
/// NAS's own secrets (scrubbed from every text of the pass and what the process prints).
fn base(state: &StateDir, options: &AssessOptions, observed: &Observed) -> HealthObservations {
    let mut base = HealthObservations::empty(options.offset);
    base.guid_property.clone_from(&options.guid_property);
    base.configured_root.clone_from(&options.root_pool);
    match OwnershipStore::load(state) {
        Ok(store) => base.ownership = store.get().clone(),
        Err(e) => base
            .state_errors
            .push(state_error(StateFile::Ownership, &e)),
    }
    match HealthMemory::load(state) {
        Ok(memory) => base.memory = memory,
        Err(e) => base
            .state_errors
            .push(state_error(StateFile::HealthMemory, &e)),
    }
    let mut nas_secrets = Scrubber::default();
    nas_secrets.add_observed(observed);
    crate::scrub::remember(&nas_secrets);
    base.extra_secrets
        .extend(nas_secrets.secrets().iter().cloned());
    base
}

/// B2 (run now, or the last report remembered) and the evaluation.
async fn finish(
    mw: &impl Middleware,
    desired: Option<&DesiredState>,
    options: &AssessOptions,
    observed: Observed,
    pools: &[String],
    mut obs: HealthObservations,
) -> Assessment {
    // Without a B2 run, the last remembered report for this bucket stands in (its items
    // say when it was checked).
    if let (Some(desired), None) = (desired, &options.b2) {
        obs.b2 = obs
            .memory
            .last_b2
            .clone()
            .filter(|r| r.bucket == desired.bucket);
        obs.b2_reused = obs.b2.is_some();
    }
    if let (Some(desired), Some(client)) = (desired, &options.b2) {
        let (report, key) = observe_b2(
            mw,
            desired,
            &observed,
            pools,
            &obs,
            client.clone(),
            options.now,
        )
        .await;
        obs.b2 = Some(report);
        obs.extra_secrets.extend(key);
    }
    let health = match desired {
        Some(desired) => evaluate(desired, &observed, &obs, options.now),
        None => evaluate_nas(&observed, &obs, options.now),
    };
    let mut memory = obs.memory.remember(&health);
    if let Some(report) = obs.b2.take().filter(|_| !obs.b2_reused) {
        memory.last_b2 = Some(report);
    }
    if let Some(desired) = desired {
        memory.last_checklist = Some(StoredChecklist {
            checked_at: options.now,
            revision: desired.revision,
            items: health.checklist.items.clone(),
        });
    }
    Assessment {
        observed,
        health,
        memory,
    }
}

fn state_error(file: StateFile, e: &StateError) -> StateFileError {
    StateFileError {
        file,
        error: crate::fault::error_chain(e),
    }
}

/// Writes the pass's `health.json` (atomic, mode 0600).
pub fn record(state: &StateDir, assessment: &Assessment) -> Result<(), StateError> {
    assessment.memory.save(state)
}
