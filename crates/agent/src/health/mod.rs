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
//! helpers. Three I/O submodules are the imperative shell around that core: `observe`
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
pub mod checklist;
pub mod classify;
pub mod memory;
pub mod observe;
pub mod report;
pub mod schedule;
mod shared;
mod snapshots;
mod sync;
mod system;

#[cfg(test)]
pub(crate) mod tests;
#[cfg(test)]
mod verdict_tests;

use chrono::{DateTime, Duration, FixedOffset, Utc};
use serde::{Deserialize, Serialize};

pub use checklist::{Checklist, ChecklistItem, ItemScope, ItemStatus};
pub use classify::{Classified, ErrorClass, Redactor};
pub use memory::HealthMemory;
pub use observe::{Alert, HealthObservations, SnapshotListing, SnapshotTaskState, TaskRuns};
pub use shared::SharedFolder;

use crate::desired::DesiredState;
use crate::middleware::JobState;
use crate::observe::Observed;
use crate::plan::Ownership;

/// How bad something is. Ordered: `Ok < Warning < Unknown < Failing`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Level {
    /// As the SOP wants it.
    Ok,
    /// Needs attention soon, nothing lost yet (never ran, aborted, snapshot on hold).
    Warning,
    /// Could not be determined (a read failed); the message says why.
    Unknown,
    /// The backup, snapshots or monitoring are not working as the SOP requires.
    Failing,
}

impl Level {
    /// The worst of several levels (`Ok` for none).
    pub fn worst(levels: impl IntoIterator<Item = Level>) -> Level {
        levels.into_iter().max().unwrap_or(Level::Ok)
    }
}

/// What a problem is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Area {
    Agent,
    Middleware,
    Identity,
    Central,
    Install,
    Pool,
    Backup,
    Snapshots,
    Snmp,
    Alert,
    Checklist,
    B2,
}

/// One thing a technician should look at, with the next step to take.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Problem {
    pub level: Level,
    pub area: Area,
    /// The pool (or other object) it is about.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    pub message: String,
    pub next_step: String,
}

/// Tunables of the overdue rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    /// How long after a scheduled fire a Cloud Sync run may take to succeed before the
    /// task counts as overdue (12 h: an incremental nightly run throttled to 20 % during
    /// business hours still finishes well within it).
    pub sync_grace: Duration,
}

impl Default for Policy {
    fn default() -> Self {
        Self {
            sync_grace: Duration::hours(12),
        }
    }
}

/// How the agent knows which task is the pool's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TaskSource {
    /// Recorded in the agent's ownership record (created or adopted by `apply`).
    Owned,
    /// Not recorded; matched by the SOP's identity (path / dataset).
    Matched,
}

/// The run state shown for a Cloud Sync task.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum SyncState {
    /// No task for the pool.
    Missing,
    /// The task exists but its `job` is null.
    NeverRun,
    Waiting,
    Running,
    Success,
    Failed,
    Aborted,
    /// A job state this agent does not know, or the task's runs could not be read.
    Unknown,
}

impl SyncState {
    /// From a job state.
    pub fn from_job(state: JobState) -> SyncState {
        match state {
            JobState::Waiting => SyncState::Waiting,
            JobState::Running => SyncState::Running,
            JobState::Success => SyncState::Success,
            JobState::Failed => SyncState::Failed,
            JobState::Aborted => SyncState::Aborted,
            JobState::Unknown => SyncState::Unknown,
        }
    }

    /// The contract's `state` string: the job state, or `NEVER_RUN` / `MISSING`.
    pub fn as_str(self) -> &'static str {
        match self {
            SyncState::Missing => "MISSING",
            SyncState::NeverRun => "NEVER_RUN",
            SyncState::Waiting => "WAITING",
            SyncState::Running => "RUNNING",
            SyncState::Success => "SUCCESS",
            SyncState::Failed => "FAILED",
            SyncState::Aborted => "ABORTED",
            SyncState::Unknown => "UNKNOWN",
        }
    }
}

/// Where a remembered last-success time came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SuccessSource {
    /// A SUCCESS job the middleware still holds (or the task's last run).
    Job,
    /// A run that failed only on Object Lock retention (the SOP: not a failure).
    ExpectedFailure,
    /// The state directory: the middleware forgot the job (it restarted since).
    Remembered,
}

/// Health of one pool's Cloud Sync task.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CloudSyncHealth {
    pub pool: String,
    pub task_id: Option<u64>,
    pub task_source: Option<TaskSource>,
    pub description: Option<String>,
    pub enabled: bool,
    /// The task's dataset is locked (`locked: true`).
    pub locked: bool,
    pub state: SyncState,
    pub last_started: Option<DateTime<Utc>>,
    pub last_finished: Option<DateTime<Utc>>,
    pub progress_percent: Option<f64>,
    pub progress_description: Option<String>,
    pub last_success: Option<DateTime<Utc>>,
    pub last_success_source: Option<SuccessSource>,
    /// The scheduled fire the last success must not be older than.
    pub due_since: Option<DateTime<Utc>>,
    pub overdue: bool,
    /// The task's schedule (`0 0 * * *`).
    pub schedule: Option<String>,
    /// Why the last run failed (also for the expected Object Lock case).
    pub failure: Option<Classified>,
    pub level: Level,
    /// One line for the screen and the report's `message`.
    pub message: String,
    pub next_step: Option<String>,
}

/// Health of one pool's periodic snapshot task.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotHealth {
    pub pool: String,
    pub task_id: Option<u64>,
    pub task_source: Option<TaskSource>,
    pub enabled: bool,
    /// zettarepl state: `PENDING`, `RUNNING`, `FINISHED`, `ERROR`, `HOLD` (or `MISSING`,
    /// `UNKNOWN`).
    pub task_state: String,
    /// The state's error/hold reason, redacted.
    pub task_error: Option<String>,
    pub naming_schema: Option<String>,
    pub schedule: Option<String>,
    /// Name of the newest snapshot of the pool's root dataset made by the task.
    pub latest: Option<String>,
    pub latest_at: Option<DateTime<Utc>>,
    pub latest_age_s: Option<u64>,
    /// Snapshots of the whole pool (recursive) with the task's prefix.
    pub count: Option<u64>,
    pub due_since: Option<DateTime<Utc>>,
    pub overdue: bool,
    pub level: Level,
    pub message: String,
    pub next_step: Option<String>,
}

/// One imported (or expected) pool.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PoolHealth {
    pub name: String,
    /// False when the document lists the pool but it is not imported.
    pub imported: bool,
    pub healthy: bool,
    pub status: String,
    /// The agent backs this pool up (it is in the managed set).
    pub managed: bool,
    pub level: Level,
}

/// SNMP as the SOP wants it: v3 only, SHA/AES, community empty, running, on at boot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnmpHealth {
    pub v3: bool,
    pub community_empty: bool,
    pub auth_type: String,
    pub privacy_protocol: Option<String>,
    /// `None` when no document says which user to expect.
    pub username_matches: Option<bool>,
    pub service_state: String,
    pub service_enabled: bool,
    pub level: Level,
    /// Every rule broken, each a full sentence.
    pub findings: Vec<String>,
    pub next_step: Option<String>,
}

/// Everything the evaluation found.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Health {
    pub evaluated_at: DateTime<Utc>,
    pub pools: Vec<PoolHealth>,
    pub cloud_sync: Vec<CloudSyncHealth>,
    pub snapshots: Vec<SnapshotHealth>,
    pub snmp: SnmpHealth,
    /// Relevant, not dismissed middleware alerts (texts redacted).
    pub alerts: Vec<Alert>,
    /// Reads that failed while observing (redacted), so `Unknown` levels say why.
    pub read_errors: Vec<String>,
    /// Other tasks pushing into a managed pool's bucket folder (two SYNC tasks on one
    /// folder delete each other's files).
    #[serde(default)]
    pub shared_folders: Vec<SharedFolder>,
    /// The agent's own state files that could not be read (`ownership.json`,
    /// `health.json`): the agent's problem, not the middleware's.
    #[serde(default)]
    pub state_errors: Vec<StateFileError>,
    /// SOP §6; empty when evaluated without a document ([`evaluate_nas`]).
    pub checklist: Checklist,
}

/// One of the agent's state files could not be read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StateFileError {
    pub file: StateFile,
    /// Why (names the path; redacted).
    pub error: String,
}

/// The state files a health pass reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StateFile {
    /// `apply`'s record of the objects the agent manages.
    Ownership,
    /// The health memory (last successes, last checklist, last B2 report).
    HealthMemory,
}

impl StateFileError {
    /// The problem: a corrupt ownership record stops every `apply` and daemon pass (the
    /// agent cannot tell its objects from hand-made ones); a corrupt health memory only
    /// forgets last successes.
    pub fn problem(&self) -> Problem {
        match self.file {
            StateFile::Ownership => Problem {
                level: Level::Failing,
                area: Area::Agent,
                subject: Some("ownership.json".to_owned()),
                message: format!(
                    "the agent's ownership record cannot be read: {} — `apply` and every daemon \
                     pass refuse to run without it (the agent cannot tell its tasks from \
                     hand-made ones); task health below falls back to matching tasks by path",
                    self.error
                ),
                next_step: "Restore ownership.json from a snapshot of the state directory's \
                            dataset (`zfs list -t snapshot`); otherwise move it aside and hand \
                            the agent's objects back with the document's `adopt` (their ids: \
                            `truenas-agent plan`; docs/configuration.md, adopt)."
                    .to_owned(),
            },
            StateFile::HealthMemory => Problem {
                level: Level::Warning,
                area: Area::Agent,
                subject: Some("health.json".to_owned()),
                message: format!("the agent's health memory cannot be read: {}", self.error),
                next_step: "Delete health.json (it only remembers last successes and the last \
                            checklist; the next pass starts a new one)."
                    .to_owned(),
            },
        }
    }
}

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

/// Which pools are managed and which tasks are theirs: the document's view or, without
/// a document, the NAS's own.
struct Scope<'a> {
    desired: Option<&'a DesiredState>,
    /// Managed pools that are imported.
    pools: Vec<String>,
    /// Listed by the document but not imported.
    missing: Vec<String>,
}

impl<'a> Scope<'a> {
    fn from_desired(desired: &'a DesiredState, observed: &Observed) -> Self {
        let (pools, missing) = match &desired.pools {
            Some(listed) => listed
                .iter()
                .cloned()
                .partition(|p| observed.pool(p).is_some()),
            None => (default_pools(observed), Vec::new()),
        };
        Self {
            desired: Some(desired),
            pools,
            missing,
        }
    }

    /// Without a document: the pools the ownership record names, else every imported
    /// pool except `boot-pool`.
    fn from_nas(observed: &Observed, owned: &Ownership) -> Self {
        let mut recorded: Vec<String> = owned
            .cloud_sync
            .keys()
            .chain(owned.snapshot_tasks.keys())
            .cloned()
            .collect();
        recorded.sort();
        recorded.dedup();
        let (pools, missing) = if recorded.is_empty() {
            (default_pools(observed), Vec::new())
        } else {
            recorded
                .into_iter()
                .partition(|p| observed.pool(p).is_some())
        };
        Self {
            desired: None,
            pools,
            missing,
        }
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

fn default_pools(observed: &Observed) -> Vec<String> {
    observed
        .pools
        .iter()
        .map(|p| p.name.clone())
        .filter(|n| n != "boot-pool")
        .collect()
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

/// Shared inputs of the per-area evaluators.
struct Ctx<'a> {
    observed: &'a Observed,
    obs: &'a HealthObservations,
    now: DateTime<Utc>,
    offset: FixedOffset,
    policy: &'a Policy,
    redactor: &'a Redactor,
    desired: Option<&'a DesiredState>,
}

impl Ctx<'_> {
    fn bucket(&self) -> Option<&str> {
        self.desired.map(|d| d.bucket.as_str())
    }
}

/// Seconds from `then` to `now` (0 when `then` is in the future).
pub fn age_seconds(now: DateTime<Utc>, then: DateTime<Utc>) -> u64 {
    u64::try_from((now - then).num_seconds()).unwrap_or(0)
}

/// A short human age: `45s`, `12m`, `5h 3m`, `2d 4h`.
pub fn human_age(seconds: u64) -> String {
    let (d, h, m) = (seconds / 86_400, seconds / 3600 % 24, seconds / 60 % 60);
    match (d, h, m) {
        (0, 0, 0) => format!("{seconds}s"),
        (0, 0, m) => format!("{m}m"),
        (0, h, m) => format!("{h}h {m}m"),
        (d, h, _) => format!("{d}d {h}h"),
    }
}

/// RFC 3339 with whole seconds and `Z` (`2026-11-23T10:00:00Z`), as the report uses.
pub fn rfc3339(t: &DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}
