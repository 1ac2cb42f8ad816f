//! One reconcile of the current document, kube-style: [`reconcile`] returns when to come
//! back ([`Next`]) or a [`ReconcileError`], and [`retry_policy`] turns an error's
//! [`Fault`] into the next attempt with one exhaustive match.
//!
//! Owns: the order identity → converge, the translation of a [`Pass`] into the report's
//! `config` part (changes for a new revision, drift for a re-check of the same one,
//! errors with a path), the pass outcome, and the retry delays per fault.
//! Does not: fetch documents, send reports, sleep, or know about the middleware: the
//! engine does the work, the loop owns time.
//! Invariants: a pass that wrote nothing never reports changes; a failed step is always
//! listed in `config.errors` with its step as the path; `report-only` never reports a
//! change, only drift with `corrected: false`.
//! Limitations: a pass is all-or-nothing for timing: one deadline covers identity and
//! converge.

use std::time::Duration;

use chrono::Utc;

use super::engine::{Engine, EngineError, Pass, StepState};
use super::memory::{Memory, PassOutcome, PassRecord};
use crate::central::report::{ConfigIssue, ConfigState, Drift, Mode};
use crate::fault::Fault;

/// Delay after a transient failure (doubled for each failure in a row, up to an hour).
pub(crate) const RETRY_TRANSIENT: Duration = Duration::from_secs(60);
/// Delay after the NAS refused something (a human or the NAS itself may fix it).
pub(crate) const RETRY_NAS: Duration = Duration::from_secs(5 * 60);
/// Delay after a problem in the document or the local setup (a new document is the real
/// fix; the NAS side may also change, e.g. a pool gets imported).
pub(crate) const RETRY_OPERATOR: Duration = Duration::from_secs(15 * 60);
/// Delay after an agent bug: keep trying, slowly, and keep reporting it.
pub(crate) const RETRY_BUG: Duration = Duration::from_secs(60 * 60);
/// The longest retry delay.
pub(crate) const RETRY_MAX: Duration = Duration::from_secs(60 * 60);

/// When to reconcile the current document again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// After this long (drift check, or a retry).
    After(Duration),
    /// Only when a new document arrives.
    NewDocument,
}

/// What a pass does besides converging.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PassPlan {
    pub cause: Cause,
    /// Read (and in `enforce` ensure) the device identity first. A repair after an
    /// event does not: identity changes are seen by full passes.
    pub identity: bool,
}

/// Why a pass is being run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cause {
    /// A document with a revision not yet applied by this process.
    NewRevision,
    /// A re-check of the revision already applied (drift), or a retry.
    Recheck,
}

/// Why a reconcile pass did not converge the NAS.
#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    #[error("cannot establish the device identity")]
    Identity(#[source] EngineError),
    #[error("cannot reconcile revision {revision}")]
    Converge {
        revision: u64,
        #[source]
        source: EngineError,
    },
    #[error("revision {revision}: the pass stopped early: {reason}")]
    Aborted {
        revision: u64,
        fault: Fault,
        reason: String,
    },
    #[error("revision {revision}: {failed} step(s) failed")]
    StepsFailed {
        revision: u64,
        failed: usize,
        fault: Fault,
    },
    #[error("revision {revision} is blocked: {}", issues(.blocked))]
    Blocked {
        revision: u64,
        blocked: Vec<ConfigIssue>,
    },
    #[error("the pass for revision {revision} did not finish within {after:?}")]
    TimedOut { revision: u64, after: Duration },
}

fn issues(list: &[ConfigIssue]) -> String {
    list.iter()
        .map(|i| format!("{}: {}", i.path, i.message))
        .collect::<Vec<_>>()
        .join("; ")
}

impl ReconcileError {
    /// Who has to act.
    pub fn fault(&self) -> Fault {
        match self {
            ReconcileError::Identity(e) | ReconcileError::Converge { source: e, .. } => e.fault(),
            ReconcileError::Aborted { fault, .. } | ReconcileError::StepsFailed { fault, .. } => {
                *fault
            }
            ReconcileError::Blocked { .. } => Fault::Operator,
            ReconcileError::TimedOut { .. } => Fault::Transient,
        }
    }
}

/// The next attempt after a failed pass, from the error's fault (kube's `error_policy`).
pub fn retry_policy(error: &ReconcileError) -> Next {
    match error.fault() {
        Fault::Transient => Next::After(RETRY_TRANSIENT),
        Fault::Nas => Next::After(RETRY_NAS),
        Fault::Operator => Next::After(RETRY_OPERATOR),
        // Central sent something it must fix; only a new document helps.
        Fault::Central => Next::NewDocument,
        Fault::Bug => Next::After(RETRY_BUG),
    }
}

/// `next` stretched for the `failures`-th failure in a row: doubling, capped at
/// [`RETRY_MAX`]. A success (`failures == 0`) is unchanged.
pub(crate) fn backed_off(next: Next, failures: u32) -> Next {
    match next {
        Next::After(d) if failures > 1 => {
            let factor = 1u32 << (failures - 1).min(6);
            Next::After(d.saturating_mul(factor).min(RETRY_MAX))
        }
        other => other,
    }
}

/// Runs identity (when `plan` says so) and one converge pass for `desired`, records the
/// outcome in `memory` (the report's `config` part and the last pass), and says when to
/// come back (`next`, when nothing is wrong).
pub(crate) async fn reconcile<E: Engine>(
    engine: &E,
    desired: &E::Desired,
    plan: PassPlan,
    next: Duration,
    memory: &mut Memory,
) -> Result<Next, ReconcileError> {
    let PassPlan { cause, identity } = plan;
    let revision = engine.revision(desired);
    let mode = engine.mode(desired);
    memory.enforcing = Some((revision, mode));
    let identity_changes = if identity {
        let identity = engine
            .identity(Some(desired), mode == Mode::Enforce)
            .await
            .map_err(ReconcileError::Identity)?;
        let changes = identity.changes.clone();
        if !changes.is_empty() {
            // Identity wrote a user property (through `zfs`, which sends no event):
            // the converge pass must see it.
            engine.resync();
        }
        memory.identity = Some(identity);
        changes
    } else {
        Vec::new()
    };
    let mut pass = engine
        .converge(desired)
        .await
        .map_err(|source| ReconcileError::Converge { revision, source })?;
    // The GUID written by identity is part of what this pass changed.
    pass.steps.splice(
        0..0,
        identity_changes
            .into_iter()
            .map(|change| super::engine::StepOutcome {
                change,
                state: StepState::Done,
            }),
    );
    record_pass(&pass, cause, memory);
    judge(&pass, next)
}

/// The report's `config` part and the last-pass record for a finished pass.
fn record_pass(pass: &Pass, cause: Cause, memory: &mut Memory) {
    let config = &mut memory.config;
    config.revision = Some(pass.revision);
    config.errors.clone_from(&pass.blocked);
    config
        .errors
        .extend(pass.failures().map(|(step, _)| ConfigIssue {
            path: step.change.target.clone(),
            message: match &step.state {
                StepState::Failed { message, .. } => message.clone(),
                StepState::Done | StepState::Skipped | StepState::NotAttempted => String::new(),
            },
        }));
    if let Some((_, reason)) = &pass.aborted {
        config.errors.push(ConfigIssue {
            path: "(pass)".to_owned(),
            message: reason.clone(),
        });
    }
    let done = pass
        .steps
        .iter()
        .filter(|s| s.state == StepState::Done)
        .map(|s| s.change.clone());
    config.changes = match cause {
        Cause::NewRevision => done.collect(),
        Cause::Recheck => Vec::new(),
    };
    config.drift = match (cause, pass.mode) {
        (Cause::Recheck, _) | (Cause::NewRevision, Mode::ReportOnly) => pass
            .steps
            .iter()
            .map(|s| Drift {
                target: s.change.target.clone(),
                fields: s.change.fields.clone(),
                corrected: s.state == StepState::Done,
            })
            .collect(),
        (Cause::NewRevision, Mode::Enforce) => Vec::new(),
    };
    config.executed_actions.clone_from(&pass.executed_actions);
    memory.pass_text = pass.text.lines().map(str::to_owned).collect();
    let failed = pass.failures().count();
    let outcome = match (pass.mode, pass.converged) {
        _ if failed > 0 || pass.aborted.is_some() || !pass.blocked.is_empty() => {
            PassOutcome::Failed
        }
        (_, true) => PassOutcome::Converged,
        (Mode::ReportOnly, false) => PassOutcome::Pending,
        (Mode::Enforce, false) => PassOutcome::Failed,
    };
    config.state = match outcome {
        PassOutcome::Converged => ConfigState::Applied,
        PassOutcome::Pending => ConfigState::Pending,
        PassOutcome::Failed | PassOutcome::Abandoned => ConfigState::Failed,
    };
    memory.last_pass = Some(PassRecord {
        at: Utc::now(),
        revision: pass.revision,
        outcome,
        written: pass
            .steps
            .iter()
            .filter(|s| s.state == StepState::Done)
            .count(),
        failed,
        next_at: None,
    });
}

/// The verdict on a pass.
fn judge(pass: &Pass, next: Duration) -> Result<Next, ReconcileError> {
    let revision = pass.revision;
    if let Some((fault, reason)) = &pass.aborted {
        return Err(ReconcileError::Aborted {
            revision,
            fault: *fault,
            reason: reason.clone(),
        });
    }
    let failures: Vec<Fault> = pass.failures().map(|(_, f)| f).collect();
    if let Some(fault) = worst(&failures) {
        return Err(ReconcileError::StepsFailed {
            revision,
            failed: failures.len(),
            fault,
        });
    }
    if !pass.blocked.is_empty() {
        return Err(ReconcileError::Blocked {
            revision,
            blocked: pass.blocked.clone(),
        });
    }
    Ok(Next::After(next))
}

/// The fault that decides the retry when several steps failed: a transient failure is
/// retried soonest, so it wins; then the NAS, the operator, central, a bug.
fn worst(faults: &[Fault]) -> Option<Fault> {
    let rank = |f: &Fault| match f {
        Fault::Transient => 0,
        Fault::Nas => 1,
        Fault::Operator => 2,
        Fault::Central => 3,
        Fault::Bug => 4,
    };
    faults.iter().copied().min_by_key(rank)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::central::report::Change;
    use crate::daemon::engine::StepOutcome;

    fn step(target: &str, state: StepState) -> StepOutcome {
        StepOutcome {
            change: Change {
                target: target.into(),
                action: "update".into(),
                fields: vec!["schedule".into()],
            },
            state,
        }
    }

    fn pass(mode: Mode, steps: Vec<StepOutcome>, converged: bool) -> Pass {
        Pass {
            revision: 7,
            mode,
            steps,
            blocked: Vec::new(),
            converged,
            aborted: None,
            text: String::new(),
            executed_actions: Vec::new(),
        }
    }

    const DRIFT: Duration = Duration::from_secs(300);

    #[test]
    fn retry_policy_follows_the_fault() {
        let e = |fault| ReconcileError::StepsFailed {
            revision: 1,
            failed: 1,
            fault,
        };
        assert_eq!(
            retry_policy(&e(Fault::Transient)),
            Next::After(RETRY_TRANSIENT)
        );
        assert_eq!(retry_policy(&e(Fault::Nas)), Next::After(RETRY_NAS));
        assert_eq!(
            retry_policy(&e(Fault::Operator)),
            Next::After(RETRY_OPERATOR)
        );
        assert_eq!(retry_policy(&e(Fault::Central)), Next::NewDocument);
        assert_eq!(retry_policy(&e(Fault::Bug)), Next::After(RETRY_BUG));
        let timed_out = ReconcileError::TimedOut {
            revision: 1,
            after: Duration::from_secs(1),
        };
        assert_eq!(retry_policy(&timed_out), Next::After(RETRY_TRANSIENT));
        let blocked = ReconcileError::Blocked {
            revision: 1,
            blocked: vec![],
        };
        assert_eq!(retry_policy(&blocked), Next::After(RETRY_OPERATOR));
    }

    #[test]
    fn retries_back_off_for_failures_in_a_row() {
        let n = Next::After(RETRY_TRANSIENT);
        assert_eq!(backed_off(n, 0), n);
        assert_eq!(backed_off(n, 1), n);
        assert_eq!(backed_off(n, 2), Next::After(Duration::from_secs(120)));
        assert_eq!(backed_off(n, 4), Next::After(Duration::from_secs(480)));
        assert_eq!(backed_off(n, 40), Next::After(RETRY_MAX));
        assert_eq!(backed_off(Next::NewDocument, 9), Next::NewDocument);
    }

    #[test]
    fn a_new_revision_reports_changes_and_converges() {
        let p = pass(
            Mode::Enforce,
            vec![step("cloud_sync:pool0", StepState::Done)],
            true,
        );
        let p = Pass {
            executed_actions: vec!["first-run".into()],
            ..p
        };
        let mut m = Memory::default();
        record_pass(&p, Cause::NewRevision, &mut m);
        assert_eq!(m.config.state, ConfigState::Applied);
        assert_eq!(m.config.changes.len(), 1);
        assert_eq!(m.config.executed_actions, ["first-run"]);
        assert!(m.config.drift.is_empty());
        assert_eq!(judge(&p, DRIFT).unwrap(), Next::After(DRIFT));
        assert_eq!(m.last_pass.unwrap().written, 1);
    }

    #[test]
    fn a_recheck_reports_drift_not_changes() {
        let p = pass(
            Mode::Enforce,
            vec![step("snapshot_task:pool1", StepState::Done)],
            true,
        );
        let mut m = Memory::default();
        record_pass(&p, Cause::Recheck, &mut m);
        assert!(m.config.changes.is_empty());
        assert_eq!(m.config.drift.len(), 1);
        assert!(m.config.drift[0].corrected);
    }

    #[test]
    fn report_only_is_pending_and_shows_uncorrected_drift() {
        let p = pass(
            Mode::ReportOnly,
            vec![step("cloud_sync:pool0", StepState::Skipped)],
            false,
        );
        let mut m = Memory::default();
        record_pass(&p, Cause::NewRevision, &mut m);
        assert_eq!(m.config.state, ConfigState::Pending);
        assert!(m.config.changes.is_empty());
        assert!(!m.config.drift[0].corrected);
        assert_eq!(judge(&p, DRIFT).unwrap(), Next::After(DRIFT));
    }

    #[test]
    fn failures_are_listed_with_their_step_and_decide_the_retry() {
        let p = pass(
            Mode::Enforce,
            vec![
                step("credential:truenas-x", StepState::Done),
                step(
                    "cloud_sync:pool0",
                    StepState::Failed {
                        fault: Fault::Nas,
                        message: "cannot update cloud sync task #1".into(),
                    },
                ),
                step(
                    "cloud_sync:pool1",
                    StepState::Failed {
                        fault: Fault::Transient,
                        message: "timed out".into(),
                    },
                ),
            ],
            false,
        );
        let mut m = Memory::default();
        record_pass(&p, Cause::NewRevision, &mut m);
        assert_eq!(m.config.state, ConfigState::Failed);
        assert_eq!(m.config.errors.len(), 2);
        assert_eq!(m.config.errors[0].path, "cloud_sync:pool0");
        assert_eq!(m.config.changes.len(), 1, "what was done is still reported");
        let err = judge(&p, DRIFT).unwrap_err();
        assert_eq!(err.fault(), Fault::Transient);
        assert_eq!(err.to_string(), "revision 7: 2 step(s) failed");
    }

    #[test]
    fn blocked_and_aborted_passes_fail() {
        let mut p = pass(Mode::Enforce, vec![], false);
        p.blocked.push(ConfigIssue {
            path: "pools[1]".into(),
            message: "pool pool9 is not imported".into(),
        });
        let mut m = Memory::default();
        record_pass(&p, Cause::NewRevision, &mut m);
        assert_eq!(m.config.state, ConfigState::Failed);
        assert_eq!(m.config.errors[0].path, "pools[1]");
        assert_eq!(judge(&p, DRIFT).unwrap_err().fault(), Fault::Operator);
        p.aborted = Some((Fault::Transient, "connection lost".into()));
        assert!(matches!(
            judge(&p, DRIFT).unwrap_err(),
            ReconcileError::Aborted { .. }
        ));
    }
}
