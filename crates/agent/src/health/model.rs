//! What health evaluation produces: the sections, their problems, the SOP checklist's
//! items, and the whole [`Health`] — the types every evaluator, `status`, the report and
//! the daemon share.
//!
//! Owns: [`Level`], [`Area`], [`Problem`], [`Policy`], the per-section types
//! ([`CloudSyncHealth`], [`SnapshotHealth`], [`PoolHealth`], [`SnmpHealth`], [`Alert`],
//! [`SharedFolder`], [`StateFileError`]), the checklist's ([`Checklist`],
//! [`ChecklistItem`], [`ItemStatus`], [`Deviation`], [`Verdict`]) and [`Health`], with the
//! small pure helpers on them (verdicts, counts, ages).
//! Does not: evaluate anything (`sync.rs`, `snapshots.rs`, `system.rs`, `checklist.rs`)
//! or read the NAS (`observe.rs`).
//! Invariants: texts held here were redacted by the evaluator that made them.

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

use super::classify::Classified;
use crate::b2;
use crate::middleware::JobState;

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

/// A middleware alert that matters for backups (REFERENCE §4.11).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Alert {
    /// The alert class, e.g. `CloudSyncTaskFailed`.
    pub klass: String,
    /// `INFO` … `EMERGENCY`.
    pub level: String,
    /// The formatted text (redacted when evaluated).
    pub text: String,
    pub datetime: Option<DateTime<Utc>>,
}

/// Another task pushing into the folder of a managed pool's task.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SharedFolder {
    pub pool: String,
    /// The pool's own task.
    pub task_id: u64,
    pub bucket: String,
    pub folder: String,
    /// The other task.
    pub other_id: u64,
    pub other_description: String,
    pub other_enabled: bool,
}

/// An item's outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ItemStatus {
    Pass,
    /// Only central can check it (NinjaOne, IT Glue, HaloPSA).
    NotChecked,
    /// The box or B2 could not tell; the detail says why.
    Unknown,
    /// The box does not hold the SOP's value because the document deliberately sets
    /// another one ([`ChecklistItem::deviations`] names both). Not SOP-compliant, not
    /// broken: a warning, never a pass.
    Deviates,
    Fail,
}

impl ItemStatus {
    /// The contract's `pass | fail | unknown` (central-protocol.md §4 allows no other):
    /// a not-checked item is `unknown`; a deviation is `fail` — the box does not meet the
    /// SOP — and its detail starts with "DEVIATES" and names both values.
    pub fn wire(self) -> &'static str {
        match self {
            ItemStatus::Pass => "pass",
            ItemStatus::Fail | ItemStatus::Deviates => "fail",
            ItemStatus::Unknown | ItemStatus::NotChecked => "unknown",
        }
    }

    /// The agent's own name (`verify --json`, `status --json`, `health.json`).
    pub fn as_str(self) -> &'static str {
        match self {
            ItemStatus::Pass => "pass",
            ItemStatus::NotChecked => "not_checked",
            ItemStatus::Unknown => "unknown",
            ItemStatus::Deviates => "deviates",
            ItemStatus::Fail => "fail",
        }
    }

    pub(super) fn from_b2(status: b2::Status) -> ItemStatus {
        match status {
            b2::Status::Pass | b2::Status::Info => ItemStatus::Pass,
            b2::Status::Unknown => ItemStatus::Unknown,
            b2::Status::Fail => ItemStatus::Fail,
        }
    }
}

/// Who can check an item.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ItemScope {
    /// The agent on the NAS (middleware, ZFS).
    Nas,
    /// The agent, in the B2 bucket with the task's key.
    B2,
    /// Only central (NinjaOne, IT Glue, HaloPSA).
    Central,
}

/// One checklist item.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChecklistItem {
    /// Stable id, e.g. `cloud_sync.mode/pool0`, `b2.object_lock`, `snmp.v3_only`.
    pub id: String,
    /// The SOP's wording (plus the pool).
    pub title: String,
    pub status: ItemStatus,
    pub scope: ItemScope,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pool: Option<String>,
    /// What was seen.
    pub detail: String,
    /// What to do, unless the item passes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_step: Option<String>,
    /// The settings in which the document departs from the SOP and the box follows the
    /// document (set when the item [`ItemStatus::Deviates`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub deviations: Vec<Deviation>,
}

/// One setting in which the document deliberately departs from the SOP.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Deviation {
    /// The document's key, e.g. `cloud_sync.chunk_size_mib`.
    pub setting: String,
    /// The document's value (what the box has), as shown.
    pub document: String,
    /// The SOP's value, as shown.
    pub sop: String,
}

/// How many items have each status.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    pub pass: usize,
    pub fail: usize,
    pub deviates: usize,
    pub unknown: usize,
    pub not_checked: usize,
}

/// The whole checklist.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checklist {
    pub items: Vec<ChecklistItem>,
}

/// Overall checklist outcome (drives `verify`'s exit code).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// Every item the box can check passes.
    Pass,
    /// At least one item fails.
    Fail,
    /// Nothing fails, but at least one box/B2 item could not be determined.
    Undetermined,
    /// Nothing fails or is unknown, but the box follows the document where it departs
    /// from the SOP.
    Deviates,
}

impl Verdict {
    /// The `verify --json` spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Pass => "pass",
            Verdict::Fail => "fail",
            Verdict::Undetermined => "undetermined",
            Verdict::Deviates => "deviates",
        }
    }
}

impl Checklist {
    /// Fail if anything fails; else undetermined if a box/B2 item is unknown; else
    /// deviates if an item follows a document override of the SOP; else pass. Items
    /// only central can check do not count.
    pub fn verdict(&self) -> Verdict {
        let has = |s| {
            self.items
                .iter()
                .any(|i: &ChecklistItem| i.status == s && i.scope != ItemScope::Central)
        };
        match (
            has(ItemStatus::Fail),
            has(ItemStatus::Unknown),
            has(ItemStatus::Deviates),
        ) {
            (true, _, _) => Verdict::Fail,
            (false, true, _) => Verdict::Undetermined,
            (false, false, true) => Verdict::Deviates,
            (false, false, false) => Verdict::Pass,
        }
    }

    /// How many items have each status.
    pub fn counts(&self) -> Counts {
        let n = |s| self.items.iter().filter(|i| i.status == s).count();
        Counts {
            pass: n(ItemStatus::Pass),
            fail: n(ItemStatus::Fail),
            deviates: n(ItemStatus::Deviates),
            unknown: n(ItemStatus::Unknown),
            not_checked: n(ItemStatus::NotChecked),
        }
    }

    /// Every item that does not pass, as a problem: a failing item is `Failing`, a
    /// deviation and an unknown item a `Warning` (they need a look, not a fix). Items
    /// that restate a health verdict are included too; [`Health::problems`] drops those
    /// the SNMP or backup section already reports at the same level or worse.
    pub fn problems(&self) -> Vec<Problem> {
        self.items.iter().filter_map(item_problem).collect()
    }
}

/// The problem an item that does not pass stands for.
pub(crate) fn item_problem(item: &ChecklistItem) -> Option<Problem> {
    let level = item_level(item.status)?;
    Some(Problem {
        level,
        area: Area::Checklist,
        subject: Some(item.id.clone()),
        message: format!("{}: {}", item.title, item.detail),
        next_step: item
            .next_step
            .clone()
            .unwrap_or_else(|| "See the item's detail.".to_owned()),
    })
}

/// The problem level of an item status (`None`: no problem).
pub(crate) fn item_level(status: ItemStatus) -> Option<Level> {
    match status {
        ItemStatus::Fail => Some(Level::Failing),
        ItemStatus::Unknown | ItemStatus::Deviates => Some(Level::Warning),
        ItemStatus::Pass | ItemStatus::NotChecked => None,
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
