//! What the daemon knows between passes, and what it leaves in `daemon.json` for `status`.
//!
//! Owns: [`Memory`] — the report's `config` part as it stands, the last identity and
//! assessment, the last pass and the last error, what central and the middleware last
//! said — and its projection [`DaemonRecord`] (`daemon.json`, written atomically: what
//! `status` reads to say what the daemon enforces, why its last pass failed and how it
//! stopped — [`record_stop`]), plus the one-line [`status_line`] shown in
//! `systemctl status` (`STATUS=`).
//! Does not: decide anything (the loop and `reconcile` do) or hold a document (the loop
//! keeps the current one; documents hold secrets and are never written anywhere).
//! Invariants: nothing here is secret (texts come from errors and engine outputs that are
//! redacted before they get here); every collection is replaced, never appended to
//! without bound, so memory stays flat over days.
//! Limitations: `daemon.json` is a snapshot of this process: after a restart it shows the
//! new process, while `central.json`, `ownership.json` and `identity.json` keep history.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::engine::{Assessed, IdentityPass};
use crate::central::report::{ConfigIssue, ConfigSection, ConfigSource, ConfigState, Mode};
use crate::fault::Fault;
use crate::state_dir::{StateDir, StateError};

/// File name inside the state directory.
pub(crate) const STATE_FILE: &str = "daemon.json";

/// Why a report was sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReportReason {
    /// The daemon just started.
    Start,
    /// A reconcile pass ran (apply, refusal, drift).
    Pass,
    /// A document was refused.
    Refusal,
    /// Central served the enforced document again, verified: the refusal is over.
    RefusalCleared,
    /// The report interval elapsed.
    Schedule,
    /// A watched Cloud Sync job changed state.
    JobChanged,
    /// A middleware event changed what health reports (reported only when it did).
    NasChanged,
}

/// How a reconcile pass ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PassOutcome {
    /// The NAS matches the document.
    Converged,
    /// `report-only`: changes are pending, nothing was written.
    Pending,
    /// Steps failed, the pass was blocked or aborted, or it could not run.
    Failed,
    /// Shut down before the pass finished.
    Abandoned,
}

/// The last reconcile pass.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PassRecord {
    pub at: DateTime<Utc>,
    pub revision: u64,
    pub outcome: PassOutcome,
    /// Steps written in this pass.
    pub written: usize,
    pub failed: usize,
    /// When the next pass of this document is due (`None`: only a new document).
    pub next_at: Option<DateTime<Utc>>,
}

/// The last error the daemon met (fetch errors live in `central.json`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorRecord {
    pub at: DateTime<Utc>,
    pub fault: Fault,
    pub message: String,
}

/// The last report queued.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReportNote {
    pub at: DateTime<Utc>,
    pub report_id: uuid::Uuid,
    pub reason: ReportReason,
    /// Reports waiting in the spool after the last delivery attempt.
    pub pending: usize,
}

/// What central last said, in the daemon's words.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CentralLink {
    /// Nothing heard yet.
    #[default]
    Unknown,
    /// The last request was answered.
    Ok,
    /// 401/403: the device token is not accepted.
    TokenRejected,
    /// Network, TLS, 429 or 5xx.
    Unreachable,
}

/// The latest document central sent was refused (nothing of it was written).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Refusal {
    /// Its revision, when it could be read from a verified payload.
    pub revision: Option<u64>,
    pub errors: Vec<crate::central::report::ConfigIssue>,
}

/// Everything the daemon remembers (in memory).
#[derive(Debug, Clone, Default)]
pub struct Memory {
    pub started_at: Option<DateTime<Utc>>,
    pub config_source: ConfigSource,
    /// The last pass's view of the document being enforced: revision, state, errors,
    /// changes, drift.
    pub config: ConfigSection,
    /// Set while the latest document received is a refused one; the previous valid
    /// document (if any) is still enforced. Cleared by the next valid document.
    pub refusal: Option<Refusal>,
    /// The plan and step results of the last pass, one line each (no secrets).
    pub pass_text: Vec<String>,
    /// The revision and mode being enforced (the last valid document), if any.
    pub enforcing: Option<(u64, Mode)>,
    pub identity: Option<IdentityPass>,
    pub assessed: Option<Assessed>,
    /// `Assessed::signature` of the last report sent.
    pub reported_signature: Option<Vec<String>>,
    pub last_pass: Option<PassRecord>,
    pub last_error: Option<ErrorRecord>,
    pub last_report: Option<ReportNote>,
    pub central: CentralLink,
    /// Reports in the spool.
    pub pending_reports: usize,
    /// `Some(reason)` while the middleware does not answer.
    pub middleware_down: Option<String>,
    /// Consecutive failed passes (for the retry back-off).
    pub failures: u32,
}

/// `daemon.json`: the daemon's own view, for `status`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DaemonRecord {
    pub version: String,
    pub pid: u32,
    pub started_at: Option<DateTime<Utc>>,
    pub updated_at: DateTime<Utc>,
    /// The `STATUS=` line.
    pub status: String,
    pub config_source: ConfigSource,
    /// The document being enforced.
    pub revision: Option<u64>,
    pub mode: Option<Mode>,
    /// The latest document's state as reported (`applied|failed|refused|pending|none`).
    pub config_state: ConfigState,
    /// The plan and step results of the last pass, one line each.
    pub last_plan: Vec<String>,
    pub last_pass: Option<PassRecord>,
    pub last_error: Option<ErrorRecord>,
    pub last_report: Option<ReportNote>,
    pub central: CentralLink,
    pub middleware_reachable: bool,
    /// Why the last pass failed, each with its path (the step's target or the document
    /// field: e.g. `encryption` for a refused re-key) — the report's `config.errors`
    /// without a standing refusal's.
    #[serde(default)]
    pub pass_errors: Vec<ConfigIssue>,
    /// The latest document central sent, refused (nothing of it written), while no
    /// valid document replaced it.
    #[serde(default)]
    pub refusal: Option<Refusal>,
    /// How the process ended: `None` while it runs (or if it was killed).
    #[serde(default)]
    pub stopped: Option<StopRecord>,
}

/// How the daemon process ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StopRecord {
    pub at: DateTime<Utc>,
    /// Why it stopped: `None` for a requested stop (SIGTERM/SIGINT), else the error that
    /// stopped it (a token file others can read, the middleware not answering at start).
    pub error: Option<ErrorRecord>,
}

impl DaemonRecord {
    /// Reads `daemon.json` (for `status`).
    pub fn load(dir: &StateDir) -> Result<Option<Self>, StateError> {
        dir.read_json(STATE_FILE)
    }
}

/// Records in `daemon.json` that the daemon stopped — `error` when it could not start or
/// run (written by `truenas-agent run` on its way out, so `status` can name the cause).
/// Keeps what the last run recorded; a failure to write is logged, never fatal.
pub(crate) fn record_stop(dir: &StateDir, error: Option<ErrorRecord>) {
    let now = Utc::now();
    let mut record = match DaemonRecord::load(dir) {
        Ok(Some(record)) => record,
        Ok(None) | Err(_) => Memory::default().record(now),
    };
    record.pid = std::process::id();
    crate::VERSION.clone_into(&mut record.version);
    record.updated_at = now;
    // `status` keeps the last `STATUS=` line: what the daemon was doing when it stopped.
    record.stopped = Some(StopRecord { at: now, error });
    if let Err(e) = dir.write_json(STATE_FILE, &record) {
        tracing::warn!(error = %crate::fault::error_chain(&e), "cannot write daemon.json");
    }
}

impl Memory {
    /// The report's `config` part: the last pass, with a standing refusal on top (its
    /// revision, `refused`, its errors; the pass's changes and drift are kept).
    pub fn config_part(&self) -> ConfigSection {
        let mut config = self.config.clone();
        if let Some(refusal) = &self.refusal {
            config.revision = refusal.revision;
            config.state = ConfigState::Refused;
            config.errors.clone_from(&refusal.errors);
        }
        config
    }

    /// The `daemon.json` view of this memory.
    pub fn record(&self, now: DateTime<Utc>) -> DaemonRecord {
        DaemonRecord {
            version: crate::VERSION.to_owned(),
            pid: std::process::id(),
            started_at: self.started_at,
            updated_at: now,
            status: status_line(self),
            config_source: self.config_source,
            revision: self.enforcing.map(|(r, _)| r),
            mode: self.enforcing.map(|(_, m)| m),
            config_state: self.config_part().state,
            last_plan: self.pass_text.clone(),
            last_pass: self.last_pass.clone(),
            last_error: self.last_error.clone(),
            last_report: self.last_report.clone(),
            central: self.central,
            middleware_reachable: self.middleware_down.is_none(),
            pass_errors: self.config.errors.clone(),
            refusal: self.refusal.clone(),
            stopped: None,
        }
    }

    /// Writes `daemon.json` (atomic, 0600); a failure is logged, never fatal: the daemon's
    /// job is the NAS, not its own bookkeeping.
    pub fn save(&self, dir: &StateDir) {
        if let Err(e) = dir.write_json(STATE_FILE, &self.record(Utc::now())) {
            tracing::warn!(error = %crate::fault::error_chain(&e), "cannot write daemon.json");
        }
    }

    /// Remembers an error (and logs it once).
    pub fn note_error(&mut self, fault: Fault, message: String) {
        tracing::warn!(?fault, error = %message, "reconcile pass failed");
        self.last_error = Some(ErrorRecord {
            at: Utc::now(),
            fault,
            message,
        });
    }
}

/// The one line a technician reads in `systemctl status truenas-agent`: the most
/// important thing first (what blocks the agent), then what it enforces.
pub(crate) fn status_line(m: &Memory) -> String {
    let document = match (m.enforcing, m.config.state, &m.refusal) {
        (_, _, Some(refusal)) => {
            let refused = refusal
                .revision
                .map_or_else(|| "a document".to_owned(), |r| format!("revision {r}"));
            match m.enforcing {
                Some((r, _)) if refusal.revision == Some(r) => format!(
                    "revision {r} with other content REFUSED (see status); enforcing revision {r} \
                     as applied"
                ),
                Some((r, _)) => format!("{refused} REFUSED (see status); enforcing revision {r}"),
                None => format!("{refused} REFUSED (see status); nothing enforced"),
            }
        }
        (Some((r, mode)), state, None) => {
            let what = match (mode, state) {
                (Mode::ReportOnly, _) => "report-only, planned",
                (Mode::Enforce, ConfigState::Applied) => "converged",
                (Mode::Enforce, ConfigState::Failed) => "FAILED (see status)",
                (Mode::Enforce, ConfigState::Pending) => "applying",
                (Mode::Enforce, ConfigState::None | ConfigState::Refused) => "received",
            };
            format!("revision {r} {what}")
        }
        (None, _, None) => "no document from central yet".to_owned(),
    };
    let mut parts = vec![document];
    if let Some(reason) = &m.middleware_down {
        parts.insert(0, format!("middleware not answering: {reason}"));
    }
    match m.central {
        CentralLink::TokenRejected => {
            parts.insert(0, "central rejected the device token".to_owned());
        }
        CentralLink::Unreachable => parts.push("central unreachable".to_owned()),
        CentralLink::Ok | CentralLink::Unknown => {}
    }
    if m.pending_reports > 0 {
        parts.push(format!("{} report(s) waiting", m.pending_reports));
    }
    parts.join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn memory() -> Memory {
        Memory::default()
    }

    #[test]
    fn status_lines_say_the_most_important_thing_first() {
        let mut m = memory();
        assert_eq!(status_line(&m), "no document from central yet");
        m.enforcing = Some((7, Mode::Enforce));
        m.config.revision = Some(7);
        m.config.state = ConfigState::Applied;
        assert_eq!(status_line(&m), "revision 7 converged");
        m.refusal = Some(Refusal {
            revision: Some(8),
            errors: vec![],
        });
        assert_eq!(m.config_part().state, ConfigState::Refused);
        assert_eq!(m.config_part().revision, Some(8));
        assert_eq!(
            status_line(&m),
            "revision 8 REFUSED (see status); enforcing revision 7"
        );
        m.central = CentralLink::TokenRejected;
        m.pending_reports = 3;
        assert_eq!(
            status_line(&m),
            "central rejected the device token; revision 8 REFUSED (see status); enforcing revision 7; 3 report(s) waiting"
        );
        m.central = CentralLink::Unreachable;
        m.middleware_down = Some("connection refused".into());
        m.refusal = None;
        m.config.state = ConfigState::Failed;
        assert_eq!(
            status_line(&m),
            "middleware not answering: connection refused; revision 7 FAILED (see status); central unreachable; 3 report(s) waiting"
        );
        m.enforcing = Some((7, Mode::ReportOnly));
        m.config.state = ConfigState::Pending;
        m.middleware_down = None;
        m.central = CentralLink::Ok;
        m.pending_reports = 0;
        assert_eq!(status_line(&m), "revision 7 report-only, planned");
    }

    #[test]
    fn the_record_round_trips_through_the_state_dir() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = StateDir::open(tmp.path()).unwrap();
        let mut m = memory();
        m.enforcing = Some((3, Mode::Enforce));
        m.config.state = ConfigState::Applied;
        m.note_error(Fault::Nas, "cannot update cloud sync task #1".into());
        m.save(&dir);
        let back = DaemonRecord::load(&dir).unwrap().unwrap();
        assert_eq!(back.revision, Some(3));
        assert_eq!(back.config_state, ConfigState::Applied);
        assert_eq!(back.last_error.unwrap().fault, Fault::Nas);
        assert_eq!(back.status, "revision 3 converged");
        let (_, mode) = crate::fs::owner_and_mode(&dir.file(STATE_FILE)).unwrap();
        assert_eq!(mode, 0o600);
    }
}
