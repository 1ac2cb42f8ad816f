//! The `central` section of `status`: what `central.json` and the spool say, and the
//! problems a technician can act on (token rejected, documents refused, no contact,
//! reports piling up).
//!
//! Owns: the read-only spool depth ([`spool_depth`]: reports without a removal record)
//! and the central problem rules.
//! Does not: call central, open the spool for writing, or change `central.json`.
//! Invariants: pure; "no contact" is judged against 3 poll intervals of the configured
//! (else default 300 s) interval.
//! Limitations: a daemon that is running but stuck before its first fetch shows as "has
//! not talked to central yet".

use std::time::Duration;

use chrono::{DateTime, Utc};

use super::{CentralInputs, CentralSection};
use crate::central::spool::{Record, decode_log};
use crate::central::state::{FetchOutcome, ReportOutcome};
use crate::health::{Area, Level, Problem, age_seconds, human_age};

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

/// A fetch older than this many poll intervals means the daemon is not polling.
const STALE_POLLS: u32 = 3;
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

fn judge(
    state: &crate::central::CentralState,
    inputs: &CentralInputs,
    now: DateTime<Utc>,
    problems: &mut Vec<Problem>,
) {
    rebuilt(state, now, problems);
    if let Some(fetch) = &state.last_fetch {
        match fetch.outcome {
            FetchOutcome::TokenRejected => problems.push(problem(
                Level::Failing,
                format!(
                    "central rejected the device token ({} ago); the agent gets no desired state",
                    human_age(age_seconds(now, fetch.at))
                ),
                "Re-register the device at central and write the new token into the token file \
                 (owner = the agent's user, mode 0600).",
            )),
            FetchOutcome::Refused => {
                let why = state
                    .last_refusal
                    .as_ref()
                    .map_or_else(|| "see the agent log".to_owned(), |r| r.reason.clone());
                problems.push(problem(
                    Level::Failing,
                    format!("the last document from central was refused: {why}"),
                    "Fix the document at central (signing key in the agent's trusted keys, \
                     revision higher than the applied one); the NAS keeps its current state.",
                ));
            }
            FetchOutcome::Failed => {
                let error = state
                    .last_error
                    .as_ref()
                    .map_or_else(String::new, |e| format!(": {}", e.message));
                problems.push(problem(
                    Level::Warning,
                    format!(
                        "central could not be reached at the last attempt ({} ago){error}",
                        human_age(age_seconds(now, fetch.at))
                    ),
                    "Check DNS, the gateway and the firewall towards central (HTTPS); the agent \
                     keeps retrying with back-off.",
                ));
            }
            FetchOutcome::NewDocument
            | FetchOutcome::SameRevision
            | FetchOutcome::Unchanged
            | FetchOutcome::NoDocument => {}
        }
        let poll = inputs.poll_interval.unwrap_or(Duration::from_secs(300));
        let stale = chrono::Duration::from_std(poll * STALE_POLLS).unwrap_or(chrono::Duration::MAX);
        if now - fetch.at > stale {
            problems.push(problem(
                Level::Warning,
                format!(
                    "no contact with central for {} (polling every {}s)",
                    human_age(age_seconds(now, fetch.at)),
                    poll.as_secs()
                ),
                "Is the agent service running? `systemctl status truenas-agent`, \
                 `journalctl -u truenas-agent`.",
            ));
        }
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
    use crate::central::state::{FetchRecord, ReportRecord};
    use crate::central::{CentralState, spool};
    use chrono::TimeZone;

    fn at(h: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 23, h, 0, 0).unwrap()
    }

    fn inputs(state: CentralState) -> CentralInputs {
        CentralInputs {
            configured: Some(Some("https://central.example/".into())),
            poll_interval: Some(Duration::from_secs(300)),
            state: Some(state),
            state_error: None,
            spool_depth: Some(0),
        }
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
    fn token_rejected_and_stale_contact() {
        let state = CentralState {
            last_fetch: Some(FetchRecord {
                at: at(1),
                outcome: FetchOutcome::TokenRejected,
                revision: None,
            }),
            ..CentralState::default()
        };
        let mut problems = Vec::new();
        let s = section(&inputs(state), at(10), &mut problems).unwrap();
        assert_eq!(s.configured, Some(true));
        assert!(
            problems
                .iter()
                .any(|p| p.level == Level::Failing && p.message.contains("token"))
        );
        assert!(
            problems
                .iter()
                .any(|p| p.message.contains("no contact with central"))
        );
    }

    #[test]
    fn fresh_contact_and_piling_reports() {
        let state = CentralState {
            last_fetch: Some(FetchRecord {
                at: at(10),
                outcome: FetchOutcome::Unchanged,
                revision: Some(7),
            }),
            last_report: Some(ReportRecord {
                at: at(10),
                outcome: ReportOutcome::Retrying,
                status: Some(503),
                pending: 5,
            }),
            ..CentralState::default()
        };
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
