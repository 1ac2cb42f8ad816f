//! The `central` section of `status`: what `central.json` and the spool say, and the
//! problems a technician can act on (token rejected, documents refused, no contact,
//! reports piling up).
//!
//! Owns: the read-only spool depth ([`spool_depth`]: reports without a removal record)
//! and the central problem rules.
//! Does not: call central, open the spool for writing, or change `central.json`.
//! Invariants: pure; every contact counts (a fetch or a report delivery, answered or
//! not) and the newest decides, so a success clears what an earlier failure said; a
//! refusal stands until a later fetch verified a document (`cleared_at`); "no contact"
//! is judged against 3 poll or report intervals of the configured (else default 300 s)
//! ones, at least 15 minutes.
//! Limitations: a daemon that is running but stuck before its first fetch shows as "has
//! not talked to central yet"; the state is what the agent last wrote, up to one report
//! interval (at most 10 minutes for routine long-poll answers) behind.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::central::CentralState;
use crate::central::spool::{Record, decode_log};
use crate::central::state::{ContactOutcome, ReportOutcome, Via};
use crate::health::{Area, Level, Problem, age_seconds, human_age};

/// `central`: the channel as the agent remembers it (`central.json` and the spool).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CentralSection {
    /// Whether the agent's config file names a central endpoint (`None`: no config read).
    pub configured: Option<bool>,
    pub url: Option<String>,
    /// What `central.json` says (`None`: the agent never talked to central).
    pub state: Option<CentralState>,
    /// Reports waiting in the spool (`None`: the spool could not be read).
    pub spool_depth: Option<usize>,
}

/// What the agent knows about central, from its config file and state dir.
#[derive(Debug, Clone, Default)]
pub struct CentralInputs {
    /// `Some(url)` / `Some(None)` when a config file was read (with / without `[central]`);
    /// `None` when no config file was given.
    pub configured: Option<Option<String>>,
    /// The plain polling interval (to judge "no contact for too long").
    pub poll_interval: Option<std::time::Duration>,
    /// The report interval (the agent reports at least this often).
    pub report_interval: Option<std::time::Duration>,
    pub state: Option<CentralState>,
    pub state_error: Option<String>,
    pub spool_depth: Option<usize>,
}

/// Reports pending in a spool log (`reports.spool`): reports not marked removed. Pure.
pub fn spool_depth(bytes: &[u8]) -> usize {
    let log = decode_log(bytes);
    let removed: std::collections::BTreeSet<u64> = log
        .records
        .iter()
        .filter_map(|r| match r.record {
            Record::Removed { seq } => Some(seq),
            Record::Report { .. } | Record::Lost { .. } => None,
        })
        .collect();
    log.records
        .iter()
        .filter(|r| matches!(r.record, Record::Report { seq, .. } if !removed.contains(&seq)))
        .count()
}

/// No contact for this many poll (or report) intervals means the agent is not talking
/// to central.
const STALE_POLLS: u32 = 3;
/// … but never less than this: the agent retries an unreachable central with a back-off
/// of up to 10 minutes, and routine long-poll answers reach `central.json` at most every
/// 10 minutes when nothing else is written (`central::fetch::UNCHANGED_WRITE_EVERY`).
const STALE_FLOOR: Duration = Duration::from_secs(15 * 60);
/// Reports pending beyond this are worth a warning.
const PENDING_WARN: usize = 3;

fn problem(level: Level, message: String, next_step: &str) -> Problem {
    Problem {
        level,
        area: Area::Central,
        subject: None,
        message,
        next_step: next_step.to_owned(),
    }
}

/// The section, and the problems it shows.
pub(super) fn section(
    inputs: &CentralInputs,
    now: DateTime<Utc>,
    problems: &mut Vec<Problem>,
) -> Option<CentralSection> {
    if let Some(error) = &inputs.state_error {
        problems.push(problem(
            Level::Warning,
            format!("central.json could not be read: {error}"),
            "Check the state directory's permissions; a damaged central.json is rebuilt by the \
             agent at its next start (`systemctl restart truenas-agent`), keeping what still \
             reads.",
        ));
    }
    let configured = inputs.configured.as_ref().map(Option::is_some);
    if configured.is_none() && inputs.state.is_none() {
        return None;
    }
    let Some(state) = &inputs.state else {
        if configured == Some(true) {
            problems.push(problem(
                Level::Warning,
                "the agent has not talked to central yet".to_owned(),
                "Start the agent service (`systemctl start truenas-agent`) and check its log \
                 (`journalctl -u truenas-agent`).",
            ));
        }
        return Some(CentralSection {
            configured,
            url: inputs.configured.clone().flatten(),
            state: None,
            spool_depth: inputs.spool_depth,
        });
    };
    judge(state, inputs, now, problems);
    Some(CentralSection {
        configured,
        url: inputs.configured.clone().flatten(),
        state: Some(state.clone()),
        spool_depth: inputs.spool_depth,
    })
}

/// A rebuilt `central.json` is shown for this long after the rebuild.
const REBUILT_SHOWN_FOR_DAYS: i64 = 7;

/// What each top-level part of `central.json` is, for the rebuild message.
fn part_name(part: &str) -> &str {
    match part {
        "applied" => "the applied revision",
        "last_fetch" => "the last fetch",
        "last_refusal" => "the last refusal",
        "last_report" => "the last report delivery",
        "last_error" => "the last error",
        "counters" => "the counters",
        other => other,
    }
}

/// The daemon found `central.json` damaged and rebuilt it (shown for a week).
fn rebuilt(state: &crate::central::CentralState, now: DateTime<Utc>, problems: &mut Vec<Problem>) {
    let Some(r) = &state.rebuilt else {
        return;
    };
    if now - r.at > chrono::Duration::days(REBUILT_SHOWN_FOR_DAYS) {
        return;
    }
    let kept = if r.kept.is_empty() {
        "nothing could be kept".to_owned()
    } else {
        format!(
            "kept {}",
            r.kept
                .iter()
                .map(|p| part_name(p))
                .collect::<Vec<_>>()
                .join(", ")
        )
    };
    let copy = r.damaged_copy.as_ref().map_or_else(String::new, |c| {
        format!(" The damaged file was kept as {c}; delete it once looked at.")
    });
    problems.push(problem(
        Level::Warning,
        format!(
            "central.json was damaged and rebuilt {} ago ({}); {kept}, the rest started afresh",
            human_age(age_seconds(now, r.at)),
            r.reason
        ),
        &format!(
            "Nothing to do for the agent: it carries on and fetches the document again. A \
             damaged state file can mean trouble with the pool holding the state directory: \
             check `zpool status` and the free space.{copy}"
        ),
    ));
}

fn via(v: Via) -> &'static str {
    match v {
        Via::Fetch => "fetching the document",
        Via::Report => "delivering a report",
    }
}

/// How long without any contact means the agent is not talking to central.
pub(super) fn stale_after(inputs: &CentralInputs) -> Duration {
    let poll = inputs.poll_interval.unwrap_or(Duration::from_secs(300));
    let report = inputs.report_interval.unwrap_or(poll);
    (poll.max(report) * STALE_POLLS).max(STALE_FLOOR)
}

/// The problems `central.json` shows. Every contact counts — a fetch or a report
/// delivery, answered or not — and the newest decides: a success clears what an
/// earlier failure said.
fn judge(
    state: &CentralState,
    inputs: &CentralInputs,
    now: DateTime<Utc>,
    problems: &mut Vec<Problem>,
) {
    rebuilt(state, now, problems);
    let last = state.latest_contact();
    let success = state.latest_success();
    if let Some(contact) = last {
        let ago = human_age(age_seconds(now, contact.at));
        match contact.outcome {
            ContactOutcome::TokenRejected => problems.push(problem(
                Level::Failing,
                format!(
                    "central rejected the device token ({ago} ago, {}); the agent gets no desired \
                     state and its reports wait in the spool",
                    via(contact.via)
                ),
                "Re-register the device at central and write the new token into the token file \
                 (owner = the agent's user, mode 0600).",
            )),
            ContactOutcome::Unreachable => {
                let error = state
                    .last_error
                    .as_ref()
                    .filter(|e| e.at >= contact.at)
                    .map_or_else(String::new, |e| format!(": {}", e.message));
                let since = success.map_or_else(
                    || "never reached it".to_owned(),
                    |s| format!("last reached {} ago", human_age(age_seconds(now, s.at))),
                );
                problems.push(problem(
                    Level::Warning,
                    format!(
                        "central could not be reached at the last attempt ({ago} ago, {}){error}; \
                         {since}",
                        via(contact.via)
                    ),
                    "Check DNS, the gateway and the firewall towards central (HTTPS); the agent \
                     keeps retrying with back-off and keeps its reports until central answers.",
                ));
            }
            ContactOutcome::Answered => {}
        }
        let stale = stale_after(inputs);
        let silent = chrono::Duration::from_std(stale).unwrap_or(chrono::Duration::MAX);
        if contact.outcome != ContactOutcome::TokenRejected && now - contact.at > silent {
            problems.push(problem(
                Level::Warning,
                format!(
                    "no contact with central for {ago} (neither a fetch nor a report; expected at \
                     least every {})",
                    human_age(stale.as_secs() / u64::from(STALE_POLLS))
                ),
                "Is the agent service running? `systemctl status truenas-agent`, \
                 `journalctl -u truenas-agent`.",
            ));
        }
    }
    if let Some(refusal) = state.standing_refusal() {
        problems.push(problem(
            Level::Failing,
            format!(
                "the last document from central was refused ({} ago): {}",
                human_age(age_seconds(now, refusal.at)),
                refusal.reason
            ),
            "Fix the document at central (signing key in the agent's trusted keys, a revision \
             higher than the applied one — a change always needs a new revision); the NAS keeps \
             its current state. The refusal clears with the next document that verifies.",
        ));
    }
    if let Some(report) = &state.last_report {
        let pending = inputs.spool_depth.unwrap_or(report.pending);
        if report.outcome == ReportOutcome::Rejected {
            problems.push(problem(
                Level::Warning,
                format!(
                    "central rejected the last report for good (HTTP {})",
                    report
                        .status
                        .map_or_else(|| "?".to_owned(), |s| s.to_string())
                ),
                "Check the agent log for the reason; central may need an update for this agent \
                 version.",
            ));
        }
        if report.outcome == ReportOutcome::Retrying && pending >= PENDING_WARN {
            problems.push(problem(
                Level::Warning,
                format!("{pending} reports are waiting to be delivered to central"),
                "They are kept on disk and sent when central answers again; check the \
                 connection to central.",
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::central::spool;
    use crate::central::state::{Contact, FetchOutcome, FetchRecord, Refusal, ReportRecord};
    use crate::fault::Fault;
    use chrono::TimeZone;

    fn at(h: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 23, h, 0, 0).unwrap()
    }

    fn inputs(state: CentralState) -> CentralInputs {
        CentralInputs {
            configured: Some(Some("https://central.example/".into())),
            poll_interval: Some(Duration::from_secs(300)),
            report_interval: None,
            state: Some(state),
            state_error: None,
            spool_depth: Some(0),
        }
    }

    #[allow(clippy::unnecessary_wraps, reason = "the field is an Option")]
    fn fetch(at: DateTime<Utc>, outcome: FetchOutcome) -> Option<FetchRecord> {
        Some(FetchRecord {
            at,
            outcome,
            revision: None,
        })
    }

    #[allow(clippy::unnecessary_wraps, reason = "the field is an Option")]
    fn report(at: DateTime<Utc>, outcome: ReportOutcome) -> Option<ReportRecord> {
        Some(ReportRecord {
            at,
            outcome,
            status: Some(202),
            pending: 0,
        })
    }

    fn judged(state: CentralState, poll_secs: u64, now: DateTime<Utc>) -> Vec<Problem> {
        let mut i = inputs(state);
        i.poll_interval = Some(Duration::from_secs(poll_secs));
        i.report_interval = Some(Duration::from_secs(poll_secs));
        let mut problems = Vec::new();
        section(&i, now, &mut problems).unwrap();
        problems
    }

    #[test]
    fn spool_depth_counts_pending_reports() {
        let mut log = Vec::new();
        for (seq, payload) in [
            (1, b"{}".to_vec()),
            (2, b"{}".to_vec()),
            (3, b"{}".to_vec()),
        ] {
            spool::Record::Report {
                seq,
                announced: 0,
                payload,
            }
            .encode_into(&mut log);
        }
        spool::Record::Removed { seq: 1 }.encode_into(&mut log);
        assert_eq!(spool_depth(&log), 2);
        assert_eq!(spool_depth(b"garbage"), 0);
    }

    #[test]
    fn a_rebuilt_central_json_is_a_warning_for_a_week() {
        let state = CentralState {
            rebuilt: Some(crate::central::state::Rebuilt {
                at: at(1),
                reason: "EOF while parsing an object at line 20 column 5".into(),
                kept: vec!["applied".into(), "last_fetch".into()],
                damaged_copy: Some("/state/central.json.corrupt".into()),
            }),
            ..CentralState::default()
        };
        let mut problems = Vec::new();
        section(&inputs(state.clone()), at(3), &mut problems).unwrap();
        let p = problems
            .iter()
            .find(|p| p.message.contains("central.json was damaged and rebuilt"))
            .unwrap_or_else(|| panic!("{problems:?}"));
        assert_eq!(p.level, Level::Warning);
        assert!(p.message.contains("rebuilt 2h 0m ago"), "{}", p.message);
        assert!(
            p.message
                .contains("kept the applied revision, the last fetch"),
            "{}",
            p.message
        );
        assert!(
            p.next_step.contains("/state/central.json.corrupt"),
            "{}",
            p.next_step
        );
        let mut later = Vec::new();
        section(
            &inputs(state),
            at(3) + chrono::Duration::days(8),
            &mut later,
        )
        .unwrap();
        assert!(
            !later.iter().any(|p| p.message.contains("rebuilt")),
            "{later:?}"
        );
    }

    #[test]
    fn a_rejected_token_is_failing_and_explains_the_silence() {
        let state = CentralState {
            last_fetch: fetch(at(1), FetchOutcome::TokenRejected),
            ..CentralState::default()
        };
        let mut problems = Vec::new();
        let s = section(&inputs(state), at(10), &mut problems).unwrap();
        assert_eq!(s.configured, Some(true));
        assert_eq!(problems.len(), 1, "{problems:#?}");
        assert_eq!(problems[0].level, Level::Failing);
        assert!(problems[0].message.contains("token"), "{problems:#?}");
        // A report delivery rejected for its token says the same.
        let state = CentralState {
            last_fetch: fetch(at(9), FetchOutcome::Unchanged),
            last_report: report(at(10), ReportOutcome::TokenRejected),
            ..CentralState::default()
        };
        let problems = judged(state, 300, at(10));
        assert!(
            problems
                .iter()
                .any(|p| p.level == Level::Failing && p.message.contains("delivering a report")),
            "{problems:#?}"
        );
    }

    #[test]
    fn silence_is_a_warning_after_three_intervals_and_at_least_fifteen_minutes() {
        let contact = |t| CentralState {
            last_contact: Some(Contact {
                at: t,
                via: Via::Report,
                outcome: ContactOutcome::Answered,
            }),
            ..CentralState::default()
        };
        let ten = at(10);
        let quiet = |mins: i64, poll| {
            judged(contact(ten - chrono::Duration::minutes(mins)), poll, ten)
                .iter()
                .any(|p| p.message.contains("no contact with central"))
        };
        assert!(
            !quiet(14, 30),
            "30 s intervals: still within the 15 min floor"
        );
        assert!(quiet(16, 30));
        assert!(!quiet(16, 600), "3 × 10 min");
        assert!(quiet(31, 600));
    }

    /// 13.11: with report and poll intervals of 30 s every held long-poll is interrupted
    /// by a report, so no fetch completes for hours — while reports flow.
    #[test]
    fn reports_are_contact_while_held_long_polls_never_complete() {
        let now = at(10);
        let state = CentralState {
            last_fetch: fetch(at(7), FetchOutcome::Unchanged),
            last_report: report(
                now - chrono::Duration::seconds(20),
                ReportOutcome::Delivered,
            ),
            ..CentralState::default()
        };
        let problems = judged(state.clone(), 30, now);
        assert!(problems.is_empty(), "{problems:#?}");
        // The same as this agent records it.
        let mut recorded = state;
        recorded.contact(at(7), Via::Fetch, ContactOutcome::Answered);
        recorded.contact(
            now - chrono::Duration::seconds(20),
            Via::Report,
            ContactOutcome::Answered,
        );
        let problems = judged(recorded, 30, now);
        assert!(problems.is_empty(), "{problems:#?}");
    }

    /// 13.11: after an outage, "could not be reached" ends with the next successful
    /// contact, whatever it is — not with a new revision.
    #[test]
    fn the_next_success_clears_an_outage() {
        let now = at(10);
        let failed = CentralState {
            last_fetch: fetch(at(9), FetchOutcome::Failed),
            last_report: report(at(8), ReportOutcome::Retrying),
            ..CentralState::default()
        };
        let problems = judged(failed.clone(), 30, now);
        assert!(
            problems
                .iter()
                .any(|p| p.message.contains("could not be reached")),
            "{problems:#?}"
        );
        let mut back = failed;
        back.last_report = report(now - chrono::Duration::seconds(5), ReportOutcome::Delivered);
        let problems = judged(back.clone(), 30, now);
        assert!(problems.is_empty(), "{problems:#?}");
        // Recorded contacts: a failure after the success is shown again, with when
        // central was last reached.
        back.contact(
            now - chrono::Duration::seconds(5),
            Via::Report,
            ContactOutcome::Answered,
        );
        back.contact(
            now - chrono::Duration::seconds(1),
            Via::Fetch,
            ContactOutcome::Unreachable,
        );
        let problems = judged(back, 30, now);
        assert_eq!(problems.len(), 1, "{problems:#?}");
        assert!(
            problems[0].message.contains("last reached 5s ago"),
            "{problems:#?}"
        );
    }

    /// 13.9: a refusal stands until a later fetch verified a document.
    #[test]
    fn a_refusal_stands_until_a_verified_fetch_clears_it() {
        let now = at(10);
        let mut state = CentralState {
            last_fetch: fetch(now, FetchOutcome::Unchanged),
            last_refusal: Some(Refusal {
                at: at(9),
                revision: None,
                reason: "no signature verifies".into(),
                fault: Fault::Central,
                cleared_at: None,
            }),
            ..CentralState::default()
        };
        let problems = judged(state.clone(), 30, now);
        assert!(
            problems
                .iter()
                .any(|p| p.level == Level::Failing && p.message.contains("was refused")),
            "304s after a refusal: the refused document is still what central serves"
        );
        state.clear_refusal(now);
        assert!(judged(state, 30, now).is_empty());
    }

    #[test]
    fn piling_reports() {
        let mut state = CentralState {
            last_fetch: fetch(at(10), FetchOutcome::Unchanged),
            last_report: Some(ReportRecord {
                at: at(10),
                outcome: ReportOutcome::Retrying,
                status: Some(503),
                pending: 5,
            }),
            ..CentralState::default()
        };
        state.contact(at(10), Via::Fetch, ContactOutcome::Answered);
        let mut problems = Vec::new();
        let mut i = inputs(state);
        i.spool_depth = None;
        section(&i, at(10), &mut problems).unwrap();
        assert_eq!(problems.len(), 1, "{problems:#?}");
        assert!(problems[0].message.contains("5 reports"));
    }

    #[test]
    fn no_config_and_no_state_is_no_section() {
        let mut problems = Vec::new();
        assert!(section(&CentralInputs::default(), at(1), &mut problems).is_none());
        assert!(problems.is_empty());
        // Configured but never talked: a warning.
        let i = CentralInputs {
            configured: Some(Some("https://c/".into())),
            ..CentralInputs::default()
        };
        assert!(section(&i, at(1), &mut problems).is_some());
        assert_eq!(problems.len(), 1);
    }
}
