//! PURE: each device's standing — what is wrong with it, judged from what its reports left
//! in the database, its published document and the clock — and the fleet's order, worst
//! first.
//!
//! Owns: the [`Condition`]s and their severity order ([`Kind`]: backup failing, backup
//! overdue, silent, document refused, apply failed, drifted, GUID mismatch, clone
//! suspected, checklist failing, reports dropped, then notices), the two rules that are
//! transitions of *time* rather than of reports — **silent** (no report for longer than
//! the report interval plus grace) and **overdue** (no successful backup since the last
//! scheduled run that has had its grace) — and [`rank`].
//! Does not: read the database or the clock ([`assess`] takes the facts and `now`), decide
//! what to announce (`alerts`) or render anything.
//! Invariants: deterministic for given inputs; a device is [`Verdict::Healthy`] only when
//! it has reported within the silence window, reported at least one backup task and has
//! no problem — never by default; central's own overdue rule never calls a backup overdue
//! that the NAS's clock would not (see [`Policy::nas_offset`]).
//! Limitations: without the NAS's UTC offset (`[fleet] nas_utc_offset`), central's clock
//! rule uses the most lenient deadline over every offset on Earth (−12:00 … +14:00): a
//! daily backup is then called overdue by the clock 38 to 62 hours after its last success
//! instead of 12; while a device reports, the agent's own `overdue` flag (exact, it knows
//! its time zone) is used too. A pool that never succeeded counts from the device's
//! registration (central does not know when its task was created).

use chrono::{DateTime, Duration, FixedOffset, Offset as _, Utc};
use serde::Serialize;

use crate::db::{DeviceRow, DeviceState, PoolBackup};
use truenas_agent::central::report::ConfigState;
use truenas_agent::health::schedule::{Schedule, sync_due};

/// Cloud Sync job states that mean the last run failed.
const FAILED_STATES: &[&str] = &["FAILED", "ERROR", "ABORTED", "MISSING"];

/// The timings the verdicts use (`[fleet]` in the central config file).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    /// How often agents report at least (their `central.report_interval_secs`).
    pub report_interval: Duration,
    /// How much later than the report interval a report may come before the device is
    /// silent.
    pub silent_grace: Duration,
    /// How long after a scheduled run a backup may take to succeed (the agent's default
    /// is 12 h).
    pub backup_grace: Duration,
    /// The NAS boxes' UTC offset, if the whole fleet shares one; `None`: unknown, so the
    /// clock rule takes the most lenient deadline (see the module's limitations).
    pub nas_offset: Option<FixedOffset>,
    /// Reports lost by a device's spool count as a problem for this long after the loss
    /// was announced.
    pub drops_window: Duration,
}

impl Default for Policy {
    fn default() -> Self {
        Self {
            report_interval: Duration::seconds(300),
            silent_grace: Duration::seconds(600),
            backup_grace: Duration::hours(12),
            nas_offset: None,
            drops_window: Duration::days(7),
        }
    }
}

impl Policy {
    /// How long without a report makes a device silent.
    pub fn silent_after(&self) -> Duration {
        self.report_interval + self.silent_grace
    }
}

/// What central knows of a device's published document (never its secrets).
#[derive(Debug, Clone)]
pub struct DocumentFacts {
    pub revision: u64,
    /// The Cloud Sync schedule (the SOP's daily 00:00 unless the document overrides it);
    /// `None` when the published document does not validate.
    pub backup_schedule: Option<Schedule>,
    /// `device.guid` of the document (lower-case), when it names one.
    pub guid: Option<String>,
    /// `pools` of the document; `None`: every imported pool.
    pub pools: Option<Vec<String>>,
}

/// Everything [`assess`] needs about one device.
#[derive(Debug, Clone, Copy)]
pub struct DeviceFacts<'a> {
    pub row: &'a DeviceRow,
    pub state: &'a DeviceState,
    pub document: Option<&'a DocumentFacts>,
    /// Other devices whose newest report carries the same GUID.
    pub guid_twins: &'a [String],
}

/// Who decided that a backup is overdue.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Judge {
    /// The agent said so in its newest report (it knows the NAS's time zone).
    Agent,
    /// Central's clock: no success since the deadline, and the device may be silent.
    Clock,
}

/// Something about a device an operator should know, problems first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Condition {
    /// The pool's last backup run failed (or its task is missing).
    BackupFailing {
        pool: String,
        state: String,
        error_class: Option<String>,
    },
    /// No successful backup of the pool since the last scheduled run plus grace.
    BackupOverdue {
        pool: String,
        last_success: Option<DateTime<Utc>>,
        /// The scheduled run the last success must not be older than (clock rule).
        deadline: Option<DateTime<Utc>>,
        judged_by: Judge,
    },
    /// No report for longer than the report interval plus grace.
    Silent { last_report: Option<DateTime<Utc>> },
    /// The device refused its document (signature, rollback, validation, …).
    DocumentRefused { errors: u64 },
    /// Applying the document failed.
    ApplyFailed { errors: u64 },
    /// The box differed from its document (corrected or not).
    Drifted { entries: u64 },
    /// The GUID the device reports is not the one its document names.
    GuidMismatch { reported: String, expected: String },
    /// Another registered device reports the same GUID (a cloned box, a copied token).
    CloneSuspected { twins: Vec<String> },
    /// SOP checklist items fail.
    ChecklistFailing { items: u64 },
    /// The device's spool lost reports before delivery (recently).
    ReportsDropped {
        total: u64,
        last_at: Option<DateTime<Utc>>,
    },
    /// Registered, not heard from yet (within the silence window).
    AwaitingFirstReport,
    /// The newest report names no backup task: the backup cannot be judged.
    NoBackupReported,
    /// Its token is disabled (403).
    Disabled,
    /// A newer revision is published than the device has applied.
    RevisionPending {
        published: u64,
        applied: Option<u64>,
    },
    /// Checklist items the agent could not decide.
    ChecklistUnknown { items: u64 },
}

/// The kinds of [`Condition`], most severe first (the fleet page's order).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    BackupFailing,
    BackupOverdue,
    Silent,
    DocumentRefused,
    ApplyFailed,
    Drifted,
    GuidMismatch,
    CloneSuspected,
    ChecklistFailing,
    ReportsDropped,
    AwaitingFirstReport,
    NoBackupReported,
    Disabled,
    RevisionPending,
    ChecklistUnknown,
}

impl Kind {
    /// Every kind, most severe first.
    pub const ALL: [Kind; 15] = [
        Kind::BackupFailing,
        Kind::BackupOverdue,
        Kind::Silent,
        Kind::DocumentRefused,
        Kind::ApplyFailed,
        Kind::Drifted,
        Kind::GuidMismatch,
        Kind::CloneSuspected,
        Kind::ChecklistFailing,
        Kind::ReportsDropped,
        Kind::AwaitingFirstReport,
        Kind::NoBackupReported,
        Kind::Disabled,
        Kind::RevisionPending,
        Kind::ChecklistUnknown,
    ];

    /// The verdict a condition of this kind gives a device on its own.
    pub fn verdict(self) -> Verdict {
        match self {
            Kind::BackupFailing
            | Kind::BackupOverdue
            | Kind::Silent
            | Kind::DocumentRefused
            | Kind::ApplyFailed
            | Kind::Drifted
            | Kind::GuidMismatch
            | Kind::CloneSuspected
            | Kind::ChecklistFailing
            | Kind::ReportsDropped => Verdict::Problem,
            Kind::AwaitingFirstReport | Kind::NoBackupReported => Verdict::Unknown,
            Kind::Disabled | Kind::RevisionPending | Kind::ChecklistUnknown => Verdict::Notice,
        }
    }

    /// A short label (the fleet page's badge, a metric's label value).
    pub fn label(self) -> &'static str {
        match self {
            Kind::BackupFailing => "backup failing",
            Kind::BackupOverdue => "backup overdue",
            Kind::Silent => "silent",
            Kind::DocumentRefused => "document refused",
            Kind::ApplyFailed => "apply failed",
            Kind::Drifted => "drifted",
            Kind::GuidMismatch => "GUID mismatch",
            Kind::CloneSuspected => "clone suspected",
            Kind::ChecklistFailing => "checklist failing",
            Kind::ReportsDropped => "reports dropped",
            Kind::AwaitingFirstReport => "awaiting first report",
            Kind::NoBackupReported => "no backup reported",
            Kind::Disabled => "disabled",
            Kind::RevisionPending => "revision pending",
            Kind::ChecklistUnknown => "checklist unknown",
        }
    }

    fn bit(self) -> u32 {
        // `ALL` is most severe first: the most severe kind gets the highest bit.
        let index = Kind::ALL.iter().position(|k| *k == self).unwrap_or(0);
        1 << (Kind::ALL.len() - 1 - index)
    }
}

impl Condition {
    /// Its kind.
    pub fn kind(&self) -> Kind {
        match self {
            Condition::BackupFailing { .. } => Kind::BackupFailing,
            Condition::BackupOverdue { .. } => Kind::BackupOverdue,
            Condition::Silent { .. } => Kind::Silent,
            Condition::DocumentRefused { .. } => Kind::DocumentRefused,
            Condition::ApplyFailed { .. } => Kind::ApplyFailed,
            Condition::Drifted { .. } => Kind::Drifted,
            Condition::GuidMismatch { .. } => Kind::GuidMismatch,
            Condition::CloneSuspected { .. } => Kind::CloneSuspected,
            Condition::ChecklistFailing { .. } => Kind::ChecklistFailing,
            Condition::ReportsDropped { .. } => Kind::ReportsDropped,
            Condition::AwaitingFirstReport => Kind::AwaitingFirstReport,
            Condition::NoBackupReported => Kind::NoBackupReported,
            Condition::Disabled => Kind::Disabled,
            Condition::RevisionPending { .. } => Kind::RevisionPending,
            Condition::ChecklistUnknown { .. } => Kind::ChecklistUnknown,
        }
    }
}

/// A device's overall verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// At least one problem.
    Problem,
    /// Cannot be judged (never reported, no backup task reported).
    Unknown,
    /// Fine, with something worth knowing.
    Notice,
    Healthy,
}

impl Verdict {
    /// The word shown.
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Problem => "problem",
            Verdict::Unknown => "unknown",
            Verdict::Notice => "notice",
            Verdict::Healthy => "healthy",
        }
    }
}

/// One pool's backup as central judges it now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PoolStanding {
    pub pool: String,
    /// The job state of the newest report.
    pub state: String,
    pub last_success: Option<DateTime<Utc>>,
    /// `now - last_success`.
    pub age: Option<Duration>,
    pub failing: bool,
    pub overdue: bool,
}

/// A device's standing at one instant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Standing {
    pub device: String,
    pub verdict: Verdict,
    /// Most severe first.
    pub conditions: Vec<Condition>,
    pub pools: Vec<PoolStanding>,
    /// `now - last report`, if it ever reported.
    pub report_age: Option<Duration>,
    /// True while the device counts as silent.
    pub silent: bool,
}

impl Standing {
    /// True when a condition of `kind` holds.
    pub fn has(&self, kind: Kind) -> bool {
        self.conditions.iter().any(|c| c.kind() == kind)
    }

    /// One bit per kind present, the most severe highest: a larger key is worse.
    fn severity_key(&self) -> u32 {
        self.conditions
            .iter()
            .fold(0, |acc, c| acc | c.kind().bit())
    }
}

/// The device's standing at `now`.
pub fn assess(facts: DeviceFacts<'_>, policy: &Policy, now: DateTime<Utc>) -> Standing {
    let state = facts.state;
    let mut conditions = Vec::new();
    let pools: Vec<PoolStanding> = state
        .pools
        .iter()
        .map(|p| pool_standing(p, facts, policy, now, &mut conditions))
        .collect();
    let silent = is_silent(facts, policy, now);
    if silent {
        conditions.push(Condition::Silent {
            last_report: state.last_report_at,
        });
    }
    conditions.extend(report_conditions(facts, policy, now));
    if state.report_count == 0 && !silent {
        conditions.push(Condition::AwaitingFirstReport);
    }
    if state.report_count > 0 && state.pools.is_empty() {
        conditions.push(Condition::NoBackupReported);
    }
    if facts.row.disabled {
        conditions.push(Condition::Disabled);
    }
    conditions.sort_by_key(Condition::kind);
    let verdict = conditions
        .iter()
        .map(|c| c.kind().verdict())
        .min()
        .unwrap_or(Verdict::Healthy);
    Standing {
        device: facts.row.name.clone(),
        verdict,
        conditions,
        pools,
        report_age: state.last_report_at.map(|at| now - at),
        silent,
    }
}

fn pool_standing(
    p: &PoolBackup,
    facts: DeviceFacts<'_>,
    policy: &Policy,
    now: DateTime<Utc>,
    conditions: &mut Vec<Condition>,
) -> PoolStanding {
    let failing = p.error_class.is_some() || FAILED_STATES.contains(&p.state.as_str());
    if failing {
        conditions.push(Condition::BackupFailing {
            pool: p.pool.clone(),
            state: p.state.clone(),
            error_class: p.error_class.clone(),
        });
    }
    let clock = facts
        .document
        .and_then(|d| d.backup_schedule.as_ref())
        .map(|schedule| {
            clock_rule(
                schedule,
                policy,
                now,
                p.last_success_at,
                facts.row.created_at,
            )
        });
    let (overdue, deadline, judged_by) = match (p.overdue, clock) {
        (true, c) => (true, c.and_then(|c| c.0), Judge::Agent),
        (false, Some((deadline, true))) => (true, deadline, Judge::Clock),
        (false, Some((deadline, false))) => (false, deadline, Judge::Clock),
        (false, None) => (false, None, Judge::Agent),
    };
    if overdue {
        conditions.push(Condition::BackupOverdue {
            pool: p.pool.clone(),
            last_success: p.last_success_at,
            deadline,
            judged_by,
        });
    }
    PoolStanding {
        pool: p.pool.clone(),
        state: p.state.clone(),
        last_success: p.last_success_at,
        age: p.last_success_at.map(|at| now - at),
        failing,
        overdue,
    }
}

/// Central's overdue rule: `(deadline, overdue)`. With the NAS's offset, the agent's own
/// rule. Without it, the earliest deadline any offset in −12:00 … +14:00 could give: with
/// `L` the latest fire (as wall-clock time) at or before `now − grace − 12 h`, the fire
/// `L` happened at UTC `L − o` for offset `o`; `L − o ≤ now − grace` for every `o ≥ −12 h`,
/// so each offset's deadline is at least `L − o ≥ L − 14 h`. Overdue against `L − 14 h` is
/// overdue for every offset.
fn clock_rule(
    schedule: &Schedule,
    policy: &Policy,
    now: DateTime<Utc>,
    last_success: Option<DateTime<Utc>>,
    known_since: DateTime<Utc>,
) -> (Option<DateTime<Utc>>, bool) {
    if let Some(offset) = policy.nas_offset {
        let due = sync_due(
            schedule,
            now,
            offset,
            policy.backup_grace,
            last_success,
            Some(known_since),
        );
        return (due.deadline, due.overdue);
    }
    let utc = Utc.fix();
    let deadline = schedule
        .previous(now - policy.backup_grace - Duration::hours(12), utc)
        .map(|fire| fire - Duration::hours(14));
    let overdue = match (deadline, last_success) {
        (None, _) => false,
        (Some(d), Some(success)) => success < d,
        (Some(d), None) => d >= known_since,
    };
    (deadline, overdue)
}

fn is_silent(facts: DeviceFacts<'_>, policy: &Policy, now: DateTime<Utc>) -> bool {
    let since = facts.state.last_report_at.unwrap_or(facts.row.created_at);
    now - since > policy.silent_after()
}

/// The conditions that come from the newest report (and the document).
fn report_conditions(
    facts: DeviceFacts<'_>,
    policy: &Policy,
    now: DateTime<Utc>,
) -> Vec<Condition> {
    let s = facts.state;
    let mut out = Vec::new();
    match s.config_state {
        Some(ConfigState::Refused) => out.push(Condition::DocumentRefused {
            errors: s.config_errors,
        }),
        Some(ConfigState::Failed) => out.push(Condition::ApplyFailed {
            errors: s.config_errors,
        }),
        Some(ConfigState::Applied | ConfigState::Pending | ConfigState::None) | None => {}
    }
    if s.drift > 0 {
        out.push(Condition::Drifted { entries: s.drift });
    }
    let expected = facts.document.and_then(|d| d.guid.as_deref());
    if let (Some(reported), Some(expected)) = (s.guid.as_deref(), expected) {
        if !reported.eq_ignore_ascii_case(expected) {
            out.push(Condition::GuidMismatch {
                reported: reported.to_owned(),
                expected: expected.to_owned(),
            });
        }
    }
    if !facts.guid_twins.is_empty() {
        out.push(Condition::CloneSuspected {
            twins: facts.guid_twins.to_vec(),
        });
    }
    if s.checklist_failing > 0 {
        out.push(Condition::ChecklistFailing {
            items: s.checklist_failing,
        });
    }
    if s.dropped.total > 0
        && s.dropped
            .last_at
            .is_none_or(|at| now - at <= policy.drops_window)
    {
        out.push(Condition::ReportsDropped {
            total: s.dropped.total,
            last_at: s.dropped.last_at,
        });
    }
    let published = facts.row.published_revision;
    if let Some(published) = published {
        let behind = s.config_revision.is_none_or(|applied| applied < published);
        if behind && s.report_count > 0 && s.config_state != Some(ConfigState::Refused) {
            out.push(Condition::RevisionPending {
                published,
                applied: s.config_revision,
            });
        }
    }
    if s.checklist_unknown > 0 {
        out.push(Condition::ChecklistUnknown {
            items: s.checklist_unknown,
        });
    }
    out
}

/// Devices whose newest report carries the same GUID as another device's: device →
/// the others, by name.
pub fn guid_twins(states: &[DeviceState]) -> std::collections::BTreeMap<String, Vec<String>> {
    use std::collections::BTreeMap;
    let mut by_guid: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for s in states {
        if let Some(guid) = s.guid.as_deref().filter(|g| !g.is_empty()) {
            by_guid
                .entry(guid.to_ascii_lowercase())
                .or_default()
                .push(s.device.clone());
        }
    }
    let mut twins = BTreeMap::new();
    for names in by_guid.values().filter(|n| n.len() > 1) {
        for name in names {
            let others = names.iter().filter(|n| *n != name).cloned().collect();
            twins.insert(name.clone(), others);
        }
    }
    twins
}

/// Sorts standings worst first: by the set of problem kinds (the most severe kind
/// decides, then the next …), then unknown, notice, healthy, then by name.
pub fn rank(standings: &mut [Standing]) {
    standings.sort_by(|a, b| {
        let problems = |s: &Standing| {
            if s.verdict == Verdict::Problem {
                s.severity_key()
            } else {
                0
            }
        };
        problems(b)
            .cmp(&problems(a))
            .then(a.verdict.cmp(&b.verdict))
            .then(b.severity_key().cmp(&a.severity_key()))
            .then(a.device.cmp(&b.device))
    });
}

#[cfg(test)]
mod tests;
