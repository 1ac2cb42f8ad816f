//! The on-box diagnosis behind `truenas-agent status`: one [`StatusReport`] assembled from
//! whatever each subsystem can say, every problem with the next step to take.
//!
//! Owns: the `status --json` schema ([`STATUS_SCHEMA`], stable: fields are only ever
//! added), the pure assembly [`assemble`] from [`StatusInputs`], the overall verdict and
//! its exit code, the one-screen text rendering ([`render_text`]), and the rules that
//! name the real cause: the daemon's state and stop (`daemon`), the central channel
//! judged on every contact (`central`), the document the daemon enforces.
//! Does not: connect, read files, run `systemctl` or read the clock (`cli::status`
//! gathers the inputs, and scrubs the finished report of every known secret), or decide
//! task health (`health` does).
//! Invariants: deterministic for given inputs; every section says when it could not be
//! filled and why (`middleware.reachable: false`, `checklist.source: "none"`, a section
//! listed in `unwired`), never silently empty; no secret (inputs are redacted types).
//! Limitations: sections whose source is not in this build are `null` and named in
//! `unwired` (none today). `install` is `null` when the agent is not installed as a
//! service. Central is judged from what the agent remembers (`central.json`, the spool),
//! not by calling central.

mod central;
mod daemon;
mod identity;
mod render;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

pub use central::{CentralInputs, CentralSection, spool_depth};
pub use daemon::{DaemonInputs, DaemonSection, ServiceState};
pub use render::render_text;

use crate::b2::B2Report;
use crate::exit::Exit;
use crate::health::checklist::{item_level, restated_in};
use crate::health::memory::StoredChecklist;
use crate::health::{
    Alert, Area, CloudSyncHealth, Health, HealthMemory, ItemStatus, Level, PoolHealth, Problem,
    SnapshotHealth, SnmpHealth, age_seconds, rfc3339,
};
use crate::identity::IdentityReport;
use crate::middleware::ApiInfo;
use crate::observe::Observed;

/// The `schema` value of `status --json`.
pub const STATUS_SCHEMA: &str = "truenas-agent.status/v1";

/// The overall verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Overall {
    /// Nothing needs attention (exit 0).
    Healthy,
    /// Something needs a human soon; backups are not known to be broken (exit 1).
    Degraded,
    /// Backups, snapshots or monitoring are not working (exit 2).
    Failing,
    /// The agent could not determine the state (middleware unreachable, reads failed)
    /// and nothing known is failing (exit 3).
    Unknown,
}

impl Overall {
    /// From the worst problem level.
    pub fn from_level(level: Level) -> Overall {
        match level {
            Level::Ok => Overall::Healthy,
            Level::Warning => Overall::Degraded,
            Level::Unknown => Overall::Unknown,
            Level::Failing => Overall::Failing,
        }
    }

    /// The exit code by the one rule ([`crate::exit::Exit`]): 0 healthy, 1 degraded,
    /// 2 failing, 3 unknown.
    pub fn exit_code(self) -> u8 {
        match self {
            Overall::Healthy => Exit::Ok,
            Overall::Degraded => Exit::Attention,
            Overall::Failing => Exit::Failing,
            Overall::Unknown => Exit::Unknown,
        }
        .code()
    }

    /// Upper-case label for the screen.
    pub fn label(self) -> &'static str {
        match self {
            Overall::Healthy => "HEALTHY",
            Overall::Degraded => "DEGRADED",
            Overall::Failing => "FAILING",
            Overall::Unknown => "UNKNOWN",
        }
    }
}

/// `agent`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentSection {
    pub version: String,
    pub state_dir: String,
    /// Where the desired state shown came from: `file` (`-f`), `central` (the document
    /// the daemon enforces), or `none`.
    pub config_source: String,
    /// That document's revision and mode.
    pub revision: Option<u64>,
    pub mode: Option<String>,
    /// The document the daemon enforces (`daemon.json`, `central.json`), if any — also
    /// when `-f` gave another one.
    #[serde(default)]
    pub enforced: Option<EnforcedDocument>,
}

/// The document the daemon enforces.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnforcedDocument {
    pub revision: u64,
    /// `enforce` or `report-only`.
    pub mode: String,
    /// `central`: the daemon only takes documents from central.
    pub source: String,
    /// The key that verified it (`ed25519:<key id>` or `unsigned`), when recorded.
    pub verified_by: Option<String>,
    /// When the daemon accepted it for enforcement (`central.json`).
    pub accepted_at: Option<String>,
    /// Whether the daemon enforcing it runs now (`null`: unknown).
    pub daemon_running: Option<bool>,
}

/// `middleware`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MiddlewareSection {
    pub url: String,
    pub reachable: bool,
    /// `unix-socket`, `loopback`, `tls`.
    pub transport: Option<String>,
    /// `system.version_short`, e.g. `25.04.2.6`.
    pub truenas_version: Option<String>,
    /// API family whose shapes are used: `24.10`, `25.04`, `25.10`, `26.0`, `27.0`.
    pub api: Option<String>,
    /// `json-rpc` or `legacy`.
    pub protocol: Option<String>,
    pub error: Option<String>,
    /// The API version in use: the versioned endpoint (`v26.0.0`), or
    /// `legacy /websocket` (24.10). Added after v1's first fields.
    #[serde(default)]
    pub api_version: Option<String>,
    /// The release is newer than every release this agent knows; it is driven through
    /// `api_version`, the newest API it serves that the agent knows.
    #[serde(default)]
    pub newer_than_supported: Option<bool>,
}

/// `device`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceSection {
    /// The GUID in the ZFS property on the root pool (or the one pool carrying it).
    pub guid_zfs: Option<String>,
    /// The pool carrying it.
    pub root_pool: Option<String>,
    /// The authoritative GUID (NinjaOne via the document or central), when known.
    pub guid_expected: Option<String>,
    /// `document` or `central`.
    pub guid_expected_source: Option<String>,
    /// `None` when either side is unknown.
    pub guid_matches: Option<bool>,
    /// The last `identity` run (`identity.json`): GUID in effect, source, host binding,
    /// problems. `None` when identity never ran on this state dir.
    pub identity: Option<IdentityReport>,
}

/// `backups[]`: one pool's Cloud Sync task.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BackupStatus {
    pub pool: String,
    pub task_id: Option<u64>,
    pub description: Option<String>,
    pub enabled: bool,
    /// `SUCCESS`, `RUNNING`, `FAILED`, … or `NEVER_RUN` / `MISSING`.
    pub state: String,
    pub progress_percent: Option<f64>,
    pub last_started: Option<String>,
    pub last_finished: Option<String>,
    pub last_success: Option<String>,
    pub last_success_age_s: Option<u64>,
    pub overdue: bool,
    pub due_since: Option<String>,
    pub error_class: Option<String>,
    /// The redacted tail of the failed run's error/log.
    pub excerpt: Option<String>,
    pub level: Level,
    pub message: String,
    pub next_step: Option<String>,
}

/// `snapshots[]`: one pool's periodic snapshot task.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotStatus {
    pub pool: String,
    pub task_id: Option<u64>,
    pub task_state: String,
    pub latest: Option<String>,
    pub latest_age_s: Option<u64>,
    pub count: Option<u64>,
    pub overdue: bool,
    pub level: Level,
    pub message: String,
    pub next_step: Option<String>,
}

/// `checklist`: the SOP §6 verification, live or from the last `verify`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChecklistSummary {
    /// `live` (evaluated now with `-f`), `last_verify` (from the state dir), or `none`.
    pub source: String,
    pub checked_at: Option<String>,
    pub revision: Option<u64>,
    pub pass: usize,
    pub fail: usize,
    /// Items where the box follows a document override of the SOP.
    #[serde(default)]
    pub deviates: usize,
    pub unknown: usize,
    /// Items only central can check.
    pub not_checked: usize,
    /// Failing, deviating and unknown items checkable here.
    pub attention: Vec<ChecklistLine>,
}

/// One checklist item that needs attention.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChecklistLine {
    pub id: String,
    pub title: String,
    /// `fail`, `deviates` or `unknown`.
    pub status: String,
    pub detail: String,
    pub next_step: Option<String>,
}

/// `b2`: the last B2 verification.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct B2Summary {
    pub checked_at: String,
    pub bucket: String,
    /// `pass`, `fail` or `unknown` (worst finding; `info` counts as pass).
    pub overall: String,
}

/// Everything `status` shows. Serialised as `status --json` (schema [`STATUS_SCHEMA`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StatusReport {
    pub schema: String,
    pub generated_at: String,
    pub overall: Overall,
    pub exit_code: u8,
    pub agent: AgentSection,
    pub middleware: MiddlewareSection,
    pub device: DeviceSection,
    /// Central channel state (`null`: no config and no `central.json`).
    pub central: Option<CentralSection>,
    /// The agent daemon: running or not (and why), its last pass (`null`: it never ran
    /// on this state directory and no config asks for it).
    #[serde(default)]
    pub daemon: Option<DaemonSection>,
    /// Install check: `null` when the agent is not installed as a service (no init-script
    /// entry of ours) or the check could not run (then a problem says why).
    pub install: Option<crate::install::CheckReport>,
    pub pools: Vec<PoolHealth>,
    pub backups: Vec<BackupStatus>,
    pub snapshots: Vec<SnapshotStatus>,
    pub snmp: Option<SnmpHealth>,
    pub alerts: Vec<Alert>,
    pub checklist: ChecklistSummary,
    pub b2: Option<B2Summary>,
    /// Every problem, worst first, each with its next step.
    pub problems: Vec<Problem>,
    /// Sections this build cannot fill yet.
    pub unwired: Vec<String>,
}

/// What the document says, without its secrets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DocumentInfo {
    pub revision: u64,
    pub mode: String,
    pub device_guid: Option<String>,
    pub root_pool: Option<String>,
}

/// Whether the middleware answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MiddlewareProbe {
    Reachable { url: String, api: ApiInfo },
    Unreachable { url: String, error: String },
}

/// Everything [`assemble`] needs; each part may be missing.
#[derive(Debug, Clone)]
pub struct StatusInputs<'a> {
    pub now: DateTime<Utc>,
    pub version: String,
    pub state_dir: String,
    /// The document given with `-f`, if it was read.
    pub document: Option<DocumentInfo>,
    /// Why the document given with `-f` was refused.
    pub document_error: Option<String>,
    pub middleware: MiddlewareProbe,
    /// The NAS as read (when the middleware answered).
    pub observed: Option<&'a Observed>,
    pub health: Option<&'a Health>,
    /// Why the health pass could not run although the middleware answered.
    pub health_error: Option<String>,
    /// `health.json`, when readable.
    pub memory: Option<&'a HealthMemory>,
    pub memory_error: Option<String>,
    /// What the agent knows about central.
    pub central: CentralInputs,
    /// The ZFS user property holding the device GUID (agent config).
    pub guid_property: String,
    /// The agent configuration's root pool.
    pub configured_root: Option<String>,
    /// The last identity run, and why it could not be read.
    pub identity: Option<IdentityReport>,
    pub identity_error: Option<String>,
    /// `install --check` of the installed service (`None`: not installed as a service).
    pub install: Option<crate::install::CheckReport>,
    /// Why the install check could not run.
    pub install_error: Option<String>,
    /// The daemon: `daemon.json`, the service state, the token file.
    pub daemon: DaemonInputs,
}

/// Sections not available in this build.
const UNWIRED: &[&str] = &[];

/// Builds the report: sections, problems (worst first) and the verdict.
pub fn assemble(inputs: &StatusInputs<'_>) -> StatusReport {
    let mut problems = Vec::new();
    let middleware = middleware_section(&inputs.middleware, &mut problems);
    let device = device_section(inputs, &mut problems);
    if let Some(report) = &inputs.identity {
        identity::problems(report, &mut problems);
    }
    if let Some(error) = &inputs.identity_error {
        problems.push(Problem {
            level: Level::Warning,
            area: Area::Identity,
            subject: None,
            message: format!("identity.json could not be read: {error}"),
            next_step: "Run `truenas-agent identity` to check the device GUID again.".to_owned(),
        });
    }
    if let Some(error) = &inputs.document_error {
        problems.push(Problem {
            level: Level::Failing,
            area: Area::Agent,
            subject: None,
            message: format!("the desired-state document was refused: {error}"),
            next_step: "Fix the document (every problem is listed above) or run `status` \
                        without -f."
                .to_owned(),
        });
    }
    if let Some(error) = &inputs.health_error {
        problems.push(Problem {
            level: Level::Unknown,
            area: Area::Middleware,
            subject: None,
            message: format!("the NAS could not be read: {error}"),
            next_step: "Retry; check `midclt call system.ready` and the middleware log \
                        (/var/log/middlewared.log)."
                .to_owned(),
        });
    }
    // With a health pass, its own state-file problem says this (once).
    if let Some(error) = inputs
        .memory_error
        .as_ref()
        .filter(|_| inputs.health.is_none())
    {
        problems.push(Problem {
            level: Level::Warning,
            area: Area::Agent,
            subject: None,
            message: format!("the agent's health memory could not be read: {error}"),
            next_step: format!(
                "Check the state directory {} (owner root, mode 0700); a corrupt health.json \
                 can be deleted (it only remembers last successes).",
                inputs.state_dir
            ),
        });
    }
    if let Some(health) = inputs.health {
        problems.extend(health.problems());
    }
    let daemon = daemon::section(&inputs.daemon, inputs.now, &mut problems);
    install_problems(inputs, daemon.as_ref(), &mut problems);
    let checklist = checklist_summary(inputs, &mut problems);
    let central = central::section(&inputs.central, inputs.now, &mut problems);
    problems.sort_by_key(|p| std::cmp::Reverse(p.level));
    let overall = Overall::from_level(Level::worst(problems.iter().map(|p| p.level)));
    StatusReport {
        schema: STATUS_SCHEMA.to_owned(),
        generated_at: rfc3339(&inputs.now),
        overall,
        exit_code: overall.exit_code(),
        agent: agent_section(inputs, daemon.as_ref()),
        middleware,
        device,
        central,
        daemon,
        install: inputs.install.clone(),
        pools: inputs.health.map(|h| h.pools.clone()).unwrap_or_default(),
        backups: inputs
            .health
            .map(|h| h.cloud_sync.iter().map(|c| backup(c, inputs.now)).collect())
            .unwrap_or_default(),
        snapshots: inputs
            .health
            .map(|h| h.snapshots.iter().map(snapshot).collect())
            .unwrap_or_default(),
        snmp: inputs.health.map(|h| h.snmp.clone()),
        alerts: inputs.health.map(|h| h.alerts.clone()).unwrap_or_default(),
        checklist,
        b2: b2_summary(inputs),
        problems,
        unwired: UNWIRED.iter().map(|s| (*s).to_owned()).collect(),
    }
}

/// The document shown: `-f`'s, else the one the daemon enforces.
fn agent_section(inputs: &StatusInputs<'_>, daemon: Option<&DaemonSection>) -> AgentSection {
    let enforced = inputs
        .daemon
        .record
        .as_ref()
        .filter(|r| r.config_source == crate::central::report::ConfigSource::Central)
        .and_then(|r| Some((r.revision?, r.mode?)))
        .map(|(revision, mode)| {
            let applied = inputs
                .central
                .state
                .as_ref()
                .and_then(|s| s.applied.as_ref())
                .filter(|a| a.revision == revision);
            EnforcedDocument {
                revision,
                mode: serde_text(&mode),
                source: "central".to_owned(),
                verified_by: applied.map(|a| a.verified_by.clone()),
                accepted_at: applied.map(|a| rfc3339(&a.at)),
                daemon_running: daemon.and_then(|d| d.running),
            }
        });
    let (config_source, revision, mode) = match (&inputs.document, &enforced) {
        (Some(d), _) => ("file", Some(d.revision), Some(d.mode.clone())),
        (None, Some(e)) => ("central", Some(e.revision), Some(e.mode.clone())),
        (None, None) => ("none", None, None),
    };
    AgentSection {
        version: inputs.version.clone(),
        state_dir: inputs.state_dir.clone(),
        config_source: config_source.to_owned(),
        revision,
        mode,
        enforced,
    }
}

/// Each failing piece of the installed service is a warning: the agent may not come back
/// after a reboot or a TrueNAS update. A service that is not running is the daemon
/// section's problem (with its cause), not repeated here.
fn install_problems(
    inputs: &StatusInputs<'_>,
    daemon: Option<&DaemonSection>,
    problems: &mut Vec<Problem>,
) {
    if let Some(error) = &inputs.install_error {
        problems.push(Problem {
            level: Level::Unknown,
            area: Area::Agent,
            subject: None,
            message: format!("the installation could not be checked: {error}"),
            next_step: "Run `truenas-agent install --check` for details.".to_owned(),
        });
    }
    let Some(report) = &inputs.install else {
        return;
    };
    let explained = daemon.is_some_and(|d| d.running == Some(false));
    for item in report
        .failures()
        .filter(|i| !(explained && i.id == "service_active"))
    {
        problems.push(Problem {
            level: Level::Warning,
            area: Area::Agent,
            subject: Some(item.id.clone()),
            message: format!("installation: {}", item.detail),
            next_step: item.fix.clone().unwrap_or_else(|| {
                "Run `truenas-agent install` again (idempotent) to repair the installation."
                    .to_owned()
            }),
        });
    }
}

fn middleware_section(probe: &MiddlewareProbe, problems: &mut Vec<Problem>) -> MiddlewareSection {
    match probe {
        MiddlewareProbe::Reachable { url, api } => {
            if api.newer_than_known {
                problems.push(newer_release(api));
            }
            MiddlewareSection {
                url: url.clone(),
                reachable: true,
                transport: Some(serde_text(&api.transport)),
                truenas_version: Some(api.version.clone()),
                api: Some(api.flavor.as_str().to_owned()),
                protocol: Some(serde_text(&api.protocol)),
                error: None,
                api_version: Some(api.api_label()),
                newer_than_supported: Some(api.newer_than_known),
            }
        }
        MiddlewareProbe::Unreachable { url, error } => {
            problems.push(Problem {
                level: Level::Unknown,
                area: Area::Middleware,
                subject: None,
                message: format!("the TrueNAS middleware is not reachable at {url}: {error}"),
                next_step: "Run status as root on the NAS (the agent talks to \
                            /var/run/middleware/middlewared.sock); check that the middleware \
                            is up (`systemctl status middlewared`, `midclt call core.ping`). \
                            Backups, snapshots and SNMP cannot be checked until it answers."
                    .to_owned(),
            });
            MiddlewareSection {
                url: url.clone(),
                reachable: false,
                transport: None,
                truenas_version: None,
                api: None,
                protocol: None,
                error: Some(error.clone()),
                api_version: None,
                newer_than_supported: None,
            }
        }
    }
}

/// A box newer than every release this agent knows (it still works, on an older API).
fn newer_release(api: &ApiInfo) -> Problem {
    let known: Vec<&str> = crate::middleware::ApiFlavor::ALL
        .iter()
        .map(|f| f.as_str())
        .collect();
    Problem {
        level: Level::Warning,
        area: Area::Middleware,
        subject: None,
        message: format!(
            "TrueNAS {} is newer than the releases this agent supports ({}): it is driven through API {}, the newest one it serves that the agent knows",
            api.version,
            known.join(", "),
            api.api_label(),
        ),
        next_step: "Update the agent to a release that supports this TrueNAS version; until \
                    then, check the results of each apply and verify on this box."
            .to_owned(),
    }
}

/// Adds a problem found outside [`assemble`] and recomputes the verdict.
pub fn add_problem(report: &mut StatusReport, problem: Problem) {
    report.problems.push(problem);
    report.problems.sort_by_key(|p| std::cmp::Reverse(p.level));
    report.overall = Overall::from_level(Level::worst(report.problems.iter().map(|p| p.level)));
    report.exit_code = report.overall.exit_code();
}

/// A unit enum's serde spelling (`unix-socket`, `json-rpc`).
fn serde_text<T: Serialize>(value: &T) -> String {
    match serde_json::to_value(value) {
        Ok(serde_json::Value::String(s)) => s,
        _ => String::new(),
    }
}

fn device_section(inputs: &StatusInputs<'_>, problems: &mut Vec<Problem>) -> DeviceSection {
    let doc = inputs.document.as_ref();
    let carrier = inputs.observed.and_then(|o| {
        let root = doc
            .and_then(|d| d.root_pool.as_deref())
            .or(inputs.configured_root.as_deref());
        let carriers: Vec<(&str, &str)> = o
            .pools
            .iter()
            .filter_map(|p| {
                p.user_properties
                    .get(&inputs.guid_property)
                    .filter(|v| !v.is_empty() && *v != "-")
                    .map(|v| (p.name.as_str(), v.as_str()))
            })
            .collect();
        match root {
            Some(root) => carriers.into_iter().find(|(p, _)| *p == root),
            None if carriers.len() == 1 => carriers.into_iter().next(),
            None => None,
        }
    });
    let expected = doc.and_then(|d| d.device_guid.clone());
    let matches = match (carrier, &expected) {
        (Some((_, have)), Some(want)) => Some(have.eq_ignore_ascii_case(want)),
        _ => None,
    };
    // The identity record, when it has problems, already explains a missing GUID.
    let explained = inputs
        .identity
        .as_ref()
        .is_some_and(|r| !r.problems.is_empty());
    if inputs.observed.is_some() && carrier.is_none() && !explained {
        problems.push(Problem {
            level: Level::Failing,
            area: Area::Identity,
            subject: None,
            message: format!(
                "no device GUID on the root pool (ZFS property {})",
                inputs.guid_property
            ),
            next_step: "Run `truenas-agent identity ensure` (SOP phase 2); the B2 folders are \
                        named after this GUID."
                .to_owned(),
        });
    }
    if matches == Some(false) {
        problems.push(Problem {
            level: Level::Failing,
            area: Area::Identity,
            subject: carrier.map(|(p, _)| p.to_owned()),
            message: format!(
                "the device GUID on the root pool ({}) differs from NinjaOne's ({})",
                carrier.map_or("?", |(_, g)| g),
                expected.as_deref().unwrap_or("?")
            ),
            next_step: "NinjaOne wins (SOP §7): run `truenas-agent identity ensure --guid \
                        <NinjaOne value>` to rewrite the property (the daemon does it when the \
                        document carries device.guid; `apply` never writes the GUID)."
                .to_owned(),
        });
    }
    DeviceSection {
        guid_zfs: carrier.map(|(_, g)| g.to_owned()),
        root_pool: carrier
            .map(|(p, _)| p.to_owned())
            .or_else(|| doc.and_then(|d| d.root_pool.clone())),
        guid_expected_source: expected.as_ref().map(|_| "document".to_owned()),
        guid_expected: expected,
        guid_matches: matches,
        identity: inputs.identity.clone(),
    }
}

fn time(t: Option<DateTime<Utc>>) -> Option<String> {
    t.as_ref().map(rfc3339)
}

fn backup(h: &CloudSyncHealth, now: DateTime<Utc>) -> BackupStatus {
    BackupStatus {
        pool: h.pool.clone(),
        task_id: h.task_id,
        description: h.description.clone(),
        enabled: h.enabled,
        state: h.state.as_str().to_owned(),
        progress_percent: h.progress_percent,
        last_started: time(h.last_started),
        last_finished: time(h.last_finished),
        last_success: time(h.last_success),
        last_success_age_s: h.last_success.map(|t| age_seconds(now, t)),
        overdue: h.overdue,
        due_since: time(h.due_since),
        error_class: h.failure.as_ref().map(|f| f.class.as_str().to_owned()),
        excerpt: h.failure.as_ref().map(|f| f.excerpt.clone()),
        level: h.level,
        message: h.message.clone(),
        next_step: h.next_step.clone(),
    }
}

fn snapshot(h: &SnapshotHealth) -> SnapshotStatus {
    SnapshotStatus {
        pool: h.pool.clone(),
        task_id: h.task_id,
        task_state: h.task_state.clone(),
        latest: h.latest.clone(),
        latest_age_s: h.latest_age_s,
        count: h.count,
        overdue: h.overdue,
        level: h.level,
        message: h.message.clone(),
        next_step: h.next_step.clone(),
    }
}

/// The checklist: live when evaluated with a document, else the last `verify`'s.
fn checklist_summary(inputs: &StatusInputs<'_>, problems: &mut Vec<Problem>) -> ChecklistSummary {
    let live = inputs
        .health
        .filter(|h| !h.checklist.items.is_empty())
        .map(|h| StoredChecklist {
            checked_at: inputs.now,
            revision: inputs.document.as_ref().map_or(0, |d| d.revision),
            items: h.checklist.items.clone(),
        });
    let (source, stored) = match (live, inputs.memory.and_then(|m| m.last_checklist.clone())) {
        (Some(live), _) => ("live", Some(live)),
        (None, Some(last)) => ("last_verify", Some(last)),
        (None, None) => ("none", None),
    };
    let Some(stored) = stored else {
        problems.push(Problem {
            level: Level::Warning,
            area: Area::Checklist,
            subject: None,
            message: "the SOP §6 checklist has never been verified on this box".to_owned(),
            next_step: "Run `truenas-agent verify -f <document> --allow-unsigned` (or let the \
                        daemon do it)."
                .to_owned(),
        });
        return ChecklistSummary {
            source: source.to_owned(),
            checked_at: None,
            revision: None,
            pass: 0,
            fail: 0,
            deviates: 0,
            unknown: 0,
            not_checked: 0,
            attention: Vec::new(),
        };
    };
    let n = |s| stored.items.iter().filter(|i| i.status == s).count();
    let attention: Vec<ChecklistLine> = stored
        .items
        .iter()
        .filter(|i| {
            matches!(
                i.status,
                ItemStatus::Fail | ItemStatus::Deviates | ItemStatus::Unknown
            )
        })
        .map(|i| ChecklistLine {
            id: i.id.clone(),
            title: i.title.clone(),
            status: i.status.as_str().to_owned(),
            detail: i.detail.clone(),
            next_step: i.next_step.clone(),
        })
        .collect();
    // A live checklist's problems already came with the health; add the stored ones
    // (failing items as FAILING, deviations as warnings), unless the live health
    // sections already report the same facts at that level.
    if source == "last_verify" {
        let when = rfc3339(&stored.checked_at);
        let sections = inputs.health.map(Health::problems).unwrap_or_default();
        for (item, level) in stored.items.iter().filter_map(|i| {
            item_level(i.status)
                .filter(|_| i.status != ItemStatus::Unknown)
                .filter(|level| !restated_in(&i.id, *level, &sections))
                .map(|level| (i, level))
        }) {
            problems.push(Problem {
                level,
                area: Area::Checklist,
                subject: Some(item.id.clone()),
                message: format!(
                    "{} — {} (as of the last verify, {when})",
                    item.title, item.detail
                ),
                next_step: item
                    .next_step
                    .clone()
                    .unwrap_or_else(|| "Fix it, then run `truenas-agent verify` again.".to_owned()),
            });
        }
    }
    ChecklistSummary {
        source: source.to_owned(),
        checked_at: Some(rfc3339(&stored.checked_at)),
        revision: Some(stored.revision),
        pass: n(ItemStatus::Pass),
        fail: n(ItemStatus::Fail),
        deviates: n(ItemStatus::Deviates),
        unknown: n(ItemStatus::Unknown),
        not_checked: n(ItemStatus::NotChecked),
        attention,
    }
}

fn b2_summary(inputs: &StatusInputs<'_>) -> Option<B2Summary> {
    let report: &B2Report = inputs.memory.and_then(|m| m.last_b2.as_ref())?;
    Some(B2Summary {
        checked_at: rfc3339(&report.checked_at),
        bucket: report.bucket.clone(),
        overall: match report.overall() {
            crate::b2::Status::Pass | crate::b2::Status::Info => "pass",
            crate::b2::Status::Unknown => "unknown",
            crate::b2::Status::Fail => "fail",
        }
        .to_owned(),
    })
}

#[cfg(test)]
mod tests;
