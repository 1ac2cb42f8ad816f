//! The `daemon` section of `status`: is the agent daemon running, what does it enforce,
//! how did its last pass end, and — when it is not running — why it stopped.
//!
//! Owns: the rules that turn `daemon.json`, the service state and the token-file check
//! into problems with the real cause: a daemon that stopped (and the error it stopped
//! with: a token file others can read, the middleware not answering at start), a last
//! pass that failed (with every error and its path, e.g. a refused re-key), a token file
//! that will stop the next start.
//! Does not: run `systemctl` or read files (`cli::status` gathers [`DaemonInputs`]).
//! Invariants: pure; "not running" is only said when systemd or the recorded pid says so
//! (`running: null` otherwise, never guessed); a stop is `failing` when an error stopped
//! the daemon and a `warning` when someone stopped it.
//! Limitations: without systemd the pid in `daemon.json` is checked in `/proc`, which a
//! reused pid can fool; `daemon.json` is the daemon's last write (it writes on every
//! change of its state, so at most one loop tick behind).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::daemon::memory::{DaemonRecord, PassOutcome};
use crate::fault::Fault;
use crate::health::{Area, Level, Problem, age_seconds, human_age, rfc3339};

/// How `status` learnt whether the daemon runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "source", rename_all = "snake_case")]
pub enum ServiceState {
    /// `systemctl show truenas-agent.service` (the unit is loaded).
    Systemd {
        /// `active`, `activating`, `inactive`, `failed`, …
        active_state: String,
        /// `running`, `dead`, `auto-restart`, …
        sub_state: String,
        /// The last result (`success`, `exit-code`, `watchdog`, …).
        result: String,
        /// 0 when not running.
        main_pid: u32,
    },
    /// No unit loaded: the pid recorded in `daemon.json`, looked up in `/proc`.
    Pid { pid: u32, alive: bool },
    /// Neither could say.
    Unknown { why: String },
}

impl ServiceState {
    /// `Some(true/false)` when known.
    pub fn running(&self) -> Option<bool> {
        match self {
            ServiceState::Systemd { active_state, .. } => Some(matches!(
                active_state.as_str(),
                "active" | "activating" | "reloading"
            )),
            ServiceState::Pid { alive, .. } => Some(*alive),
            ServiceState::Unknown { .. } => None,
        }
    }

    /// One line for the screen.
    pub fn describe(&self) -> String {
        match self {
            ServiceState::Systemd {
                active_state,
                sub_state,
                result,
                main_pid,
            } => {
                let pid = if *main_pid > 0 {
                    format!(", pid {main_pid}")
                } else {
                    String::new()
                };
                let result = if result.is_empty() || result == "success" {
                    String::new()
                } else {
                    format!(", last result {result}")
                };
                format!("systemd: {active_state} ({sub_state}){pid}{result}")
            }
            ServiceState::Pid { pid, alive: true } => format!("pid {pid} running"),
            ServiceState::Pid { pid, alive: false } => format!("pid {pid} not running"),
            ServiceState::Unknown { why } => format!("unknown: {why}"),
        }
    }
}

/// What `status` knows about the daemon.
#[derive(Debug, Clone)]
pub struct DaemonInputs {
    /// `daemon.json`, when the daemon ever ran on this state directory.
    pub record: Option<DaemonRecord>,
    pub record_error: Option<String>,
    pub service: ServiceState,
    /// The device token file breaks the rule the daemon starts with (message with fix).
    pub token_problem: Option<String>,
    /// The agent is meant to run here: its config has a `[central]` section.
    pub expected: bool,
}

impl Default for DaemonInputs {
    fn default() -> Self {
        Self {
            record: None,
            record_error: None,
            service: ServiceState::Unknown {
                why: "not checked".to_owned(),
            },
            token_problem: None,
            expected: false,
        }
    }
}

/// `daemon` in `status --json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DaemonSection {
    /// `null` when it could not be told.
    pub running: Option<bool>,
    /// How that was found.
    pub service: ServiceState,
    /// `daemon.json` as the daemon last wrote it.
    pub record: Option<DaemonRecord>,
}

fn problem(level: Level, message: String, next_step: String) -> Problem {
    Problem {
        level,
        area: Area::Agent,
        subject: Some("daemon".to_owned()),
        message,
        next_step,
    }
}

/// The section (`None` when there is nothing to say: no record, not expected, not
/// running) and its problems.
pub(super) fn section(
    inputs: &DaemonInputs,
    now: DateTime<Utc>,
    problems: &mut Vec<Problem>,
) -> Option<DaemonSection> {
    if let Some(error) = &inputs.record_error {
        problems.push(problem(
            Level::Warning,
            format!("daemon.json could not be read: {error}"),
            "Check the state directory's permissions; the daemon rewrites daemon.json on its \
             next change (it may be deleted)."
                .to_owned(),
        ));
    }
    let running = inputs.service.running();
    if inputs.record.is_none() && !inputs.expected && running != Some(true) {
        return None;
    }
    if running == Some(false) {
        stopped(inputs, now, problems);
    } else {
        if let Some(record) = &inputs.record {
            failed_pass(record, now, problems);
        }
        if let Some(token) = &inputs.token_problem {
            problems.push(problem(
                Level::Warning,
                format!(
                    "the daemon will refuse its next start: {token} (it read the token when it \
                     started)"
                ),
                "Do what the message says before the next restart or reboot.".to_owned(),
            ));
        }
    }
    Some(DaemonSection {
        running,
        service: inputs.service.clone(),
        record: inputs.record.clone(),
    })
}

/// The daemon is not running: say since when and why.
fn stopped(inputs: &DaemonInputs, now: DateTime<Utc>, problems: &mut Vec<Problem>) {
    let record = inputs.record.as_ref();
    let stop = record.and_then(|r| r.stopped.as_ref());
    let error_stop = stop.and_then(|s| s.error.as_ref());
    let systemd_failed = matches!(
        &inputs.service,
        ServiceState::Systemd { active_state, result, .. }
            if active_state == "failed" || !(result.is_empty() || result == "success")
    );
    let (cause, fix) = if let Some(error) = error_stop {
        (
            format!("it stopped {} ago: {}", ago(now, error.at), error.message),
            next_for(error.fault),
        )
    } else if let Some(token) = &inputs.token_problem {
        (
            format!("it cannot start: {token}"),
            "Do what the message says.".to_owned(),
        )
    } else if let Some(stop) = stop {
        (
            format!(
                "it was stopped {} ago (a requested stop)",
                ago(now, stop.at)
            ),
            "Start it if nobody meant to stop it.".to_owned(),
        )
    } else if systemd_failed {
        (
            "it failed; the cause is in the journal".to_owned(),
            "Read `journalctl -u truenas-agent -b`.".to_owned(),
        )
    } else {
        ("it is not started".to_owned(), "Start it.".to_owned())
    };
    let failed = error_stop.is_some() || inputs.token_problem.is_some() || systemd_failed;
    let stale = record
        .and_then(|r| r.last_report.as_ref())
        .map_or_else(String::new, |report| {
            format!(
                "; its last report was queued {} ago — what central and this screen show of \
                 its work is from before it stopped",
                ago(now, report.at)
            )
        });
    problems.push(problem(
        if failed {
            Level::Failing
        } else {
            Level::Warning
        },
        format!(
            "the agent daemon is not running ({}): {cause}{stale}",
            inputs.service.describe()
        ),
        format!(
            "{fix} Then `systemctl restart truenas-agent` and check it with `systemctl status \
             truenas-agent` (the journal: `journalctl -u truenas-agent -b`)."
        ),
    ));
}

/// The last pass failed: every error with its path, when it is retried, who acts.
fn failed_pass(record: &DaemonRecord, now: DateTime<Utc>, problems: &mut Vec<Problem>) {
    let Some(pass) = record
        .last_pass
        .as_ref()
        .filter(|p| p.outcome == PassOutcome::Failed)
    else {
        return;
    };
    let errors = if record.pass_errors.is_empty() {
        record
            .last_error
            .as_ref()
            .map_or_else(|| "see the journal".to_owned(), |e| e.message.clone())
    } else {
        record
            .pass_errors
            .iter()
            .map(|e| format!("{}: {}", e.path, e.message))
            .collect::<Vec<_>>()
            .join("; ")
    };
    let retry = match pass.next_at {
        Some(at) if at > now => format!("; it is retried at {}", rfc3339(&at)),
        Some(_) => "; it is retried now".to_owned(),
        None => "; it is retried only when central sends a new document".to_owned(),
    };
    let fault = record
        .last_error
        .as_ref()
        .map_or(Fault::Operator, |e| e.fault);
    problems.push(problem(
        if fault == Fault::Transient {
            Level::Warning
        } else {
            Level::Failing
        },
        format!(
            "the daemon's last pass of revision {} failed {} ago ({} written, {} failed): \
             {errors}{retry}",
            pass.revision,
            ago(now, pass.at),
            pass.written,
            pass.failed
        ),
        next_for(fault),
    ));
}

/// Who has to act, in a technician's words.
fn next_for(fault: Fault) -> String {
    match fault {
        Fault::Operator => {
            "Fix what the message names: a field of the document at central (e.g. `encryption`: \
             a new password needs `allow_rekey`, docs/configuration.md) or the agent's own setup \
             on this box (config, token file, state directory)."
        }
        Fault::Nas => {
            "The NAS refused or failed: check the middleware (`midclt call core.ping`, \
             /var/log/middlewared.log) and what the message names; the daemon retries."
        }
        Fault::Central => "Central must send a corrected document with a higher revision.",
        Fault::Transient => "Nothing yet: the daemon retries by itself; act if it persists.",
        Fault::Bug => {
            "An agent bug: collect `journalctl -u truenas-agent -b` and report it; the daemon \
             retries hourly."
        }
    }
    .to_owned()
}

fn ago(now: DateTime<Utc>, at: DateTime<Utc>) -> String {
    human_age(age_seconds(now, at))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::central::report::{ConfigIssue, ConfigSource, ConfigState, Mode};
    use crate::daemon::memory::{CentralLink, ErrorRecord, PassRecord, StopRecord};
    use chrono::TimeZone;

    fn at(h: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 23, h, 0, 0).unwrap()
    }

    fn record() -> DaemonRecord {
        DaemonRecord {
            version: "0.1.0".into(),
            pid: 4242,
            started_at: Some(at(8)),
            updated_at: at(9),
            status: "revision 7 converged".into(),
            config_source: ConfigSource::Central,
            revision: Some(7),
            mode: Some(Mode::Enforce),
            config_state: ConfigState::Applied,
            last_plan: Vec::new(),
            last_pass: None,
            last_error: None,
            last_report: None,
            central: CentralLink::Ok,
            middleware_reachable: true,
            pass_errors: Vec::new(),
            refusal: None,
            stopped: None,
        }
    }

    fn systemd(active: &str, result: &str) -> ServiceState {
        ServiceState::Systemd {
            active_state: active.into(),
            sub_state: if active == "active" {
                "running"
            } else {
                "dead"
            }
            .into(),
            result: result.into(),
            main_pid: if active == "active" { 4242 } else { 0 },
        }
    }

    fn judged(inputs: &DaemonInputs) -> (Option<DaemonSection>, Vec<Problem>) {
        let mut problems = Vec::new();
        let section = section(inputs, at(10), &mut problems);
        (section, problems)
    }

    #[test]
    fn a_running_daemon_with_a_converged_pass_is_no_problem() {
        let inputs = DaemonInputs {
            record: Some(record()),
            service: systemd("active", "success"),
            expected: true,
            ..DaemonInputs::default()
        };
        let (section, problems) = judged(&inputs);
        assert!(problems.is_empty(), "{problems:#?}");
        assert_eq!(section.unwrap().running, Some(true));
    }

    #[test]
    fn nothing_to_say_without_a_record_a_config_or_a_process() {
        let (section, problems) = judged(&DaemonInputs::default());
        assert!(section.is_none());
        assert!(problems.is_empty());
    }

    #[test]
    fn a_requested_stop_is_a_warning_and_an_error_stop_failing() {
        let mut r = record();
        r.stopped = Some(StopRecord {
            at: at(9),
            error: None,
        });
        let inputs = DaemonInputs {
            record: Some(r.clone()),
            service: systemd("inactive", "success"),
            expected: true,
            ..DaemonInputs::default()
        };
        let (_, problems) = judged(&inputs);
        assert_eq!(problems.len(), 1);
        assert_eq!(problems[0].level, Level::Warning);
        assert!(
            problems[0].message.contains("requested stop"),
            "{problems:#?}"
        );
        r.stopped = Some(StopRecord {
            at: at(9),
            error: Some(ErrorRecord {
                at: at(9),
                fault: Fault::Transient,
                message: "cannot confirm the middleware connection at start-up".into(),
            }),
        });
        let inputs = DaemonInputs {
            record: Some(r),
            service: ServiceState::Pid {
                pid: 4242,
                alive: false,
            },
            ..inputs
        };
        let (section, problems) = judged(&inputs);
        assert_eq!(section.unwrap().running, Some(false));
        assert_eq!(problems[0].level, Level::Failing);
        assert!(
            problems[0].message.contains("middleware connection"),
            "{problems:#?}"
        );
    }

    #[test]
    fn a_failed_pass_names_every_error_with_its_path_and_the_retry() {
        let mut r = record();
        r.config_state = ConfigState::Failed;
        r.last_pass = Some(PassRecord {
            at: at(9),
            revision: 8,
            outcome: PassOutcome::Failed,
            written: 0,
            failed: 0,
            next_at: Some(at(11)),
        });
        r.pass_errors = vec![ConfigIssue {
            path: "encryption".into(),
            message: "the password of a task that already ran would change".into(),
        }];
        r.last_error = Some(ErrorRecord {
            at: at(9),
            fault: Fault::Operator,
            message: "revision 8 is blocked".into(),
        });
        let inputs = DaemonInputs {
            record: Some(r),
            service: systemd("active", "success"),
            expected: true,
            ..DaemonInputs::default()
        };
        let (_, problems) = judged(&inputs);
        assert_eq!(problems.len(), 1, "{problems:#?}");
        let p = &problems[0];
        assert_eq!(p.level, Level::Failing);
        assert!(
            p.message.contains("revision 8 failed 1h 0m ago"),
            "{}",
            p.message
        );
        assert!(
            p.message.contains("encryption: the password"),
            "{}",
            p.message
        );
        assert!(
            p.message.contains("retried at 2026-11-23T11:00:00Z"),
            "{}",
            p.message
        );
        assert!(p.next_step.contains("allow_rekey"), "{}", p.next_step);
    }
}
