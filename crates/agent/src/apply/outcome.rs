//! What a pass reports: one result per plan step (and per extra check), and why a step
//! failed.
//!
//! Owns: [`Outcome`] with its [`StepResult`]s, their typed [`Origin`] (a plan step's index
//! or an [`Extra`]), [`StepStatus`], [`ApplyError`] with its fault mapping, [`NotStarted`],
//! and the pass's knobs ([`ApplyOptions`]).
//! Does not: run anything (`exec.rs`) or decide what to do (`plan`).
//! Invariants: results are matched to what they are about by their origin, never by their
//! text; every middleware text kept here was redacted of the document's secrets first.

use std::time::Duration;

use serde_json::{Value, json};

use crate::fault::Fault;
use crate::fault::error_chain;
use crate::middleware::CallError;
use crate::observe::Observed;
use crate::state_dir::StateError;

/// Why one step did not happen as planned.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    /// A middleware call failed (its text is redacted of the document's secrets).
    #[error("cannot {operation} {resource}")]
    Call {
        operation: &'static str,
        resource: String,
        #[source]
        source: CallError,
    },
    /// What the middleware stored is not what was sent.
    #[error(
        "{resource} reads back different from what was written (fields: {}); the middleware reformatted or ignored it",
        .fields.join(", ")
    )]
    ReadBack {
        resource: String,
        fields: Vec<String>,
    },
    /// `cloudsync.credentials.verify` said the key does not work.
    #[error("B2 rejected the application key: {detail}")]
    VerifyFailed { detail: String },
    /// The key works but does not list the SOP's bucket.
    #[error(
        "bucket `{bucket}` is not listed with this key: create it (SOP phase 4) or check the key's bucket restriction"
    )]
    BucketMissing { bucket: String },
    /// A job ended in another state than SUCCESS.
    #[error("{operation} {resource}: job {job} ended {state}: {detail}")]
    JobFailed {
        operation: &'static str,
        resource: String,
        job: u64,
        state: String,
        detail: String,
    },
    /// `cloudsync.sync` answered with a job that is not a new run of the task: the run
    /// did not start. The action is not recorded as done; the next pass retries it.
    #[error(
        "{resource} did not start: {reason}; the action stays pending and is retried on the next pass"
    )]
    RunNotStarted {
        resource: String,
        reason: NotStarted,
    },
    /// A reply the agent cannot use.
    #[error("unexpected reply to {operation} {resource}: {detail}")]
    Unexpected {
        operation: &'static str,
        resource: String,
        detail: String,
    },
    /// Ownership could not be recorded; going on could duplicate objects later.
    #[error("cannot record ownership in the state directory")]
    State(#[source] StateError),
    /// An earlier step this one depends on did not succeed.
    #[error("not attempted: {reason}")]
    DependencyFailed { reason: String },
}

/// Why `cloudsync.sync` did not start the run it was asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NotStarted {
    /// The middleware handed back a run of this task that was already queued before the
    /// call (one run may wait per job lock, `MW/job.py` `JobsQueue.add`).
    AlreadyQueued { job: u64 },
    /// The middleware handed back a job of another task (or of no task): a job lock
    /// shared with it had its queue full.
    OtherTask { job: u64, task: Option<u64> },
}

impl std::fmt::Display for NotStarted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            NotStarted::AlreadyQueued { job } => write!(
                f,
                "the middleware handed back job {job}, a run that was already queued before the call"
            ),
            NotStarted::OtherTask {
                job,
                task: Some(task),
            } => write!(
                f,
                "the middleware handed back job {job}, a run of cloud sync task #{task}, instead of starting a new run"
            ),
            NotStarted::OtherTask { job, task: None } => write!(
                f,
                "the middleware handed back job {job}, which is not a run of this task"
            ),
        }
    }
}

impl ApplyError {
    /// Who has to act.
    pub fn fault(&self) -> Fault {
        match self {
            ApplyError::Call { source, .. } => source.fault(),
            ApplyError::ReadBack { .. }
            | ApplyError::JobFailed { .. }
            | ApplyError::RunNotStarted { .. }
            | ApplyError::DependencyFailed { .. } => Fault::Nas,
            ApplyError::VerifyFailed { .. } | ApplyError::BucketMissing { .. } => Fault::Operator,
            ApplyError::Unexpected { .. } => Fault::Bug,
            ApplyError::State(e) => e.fault(),
        }
    }

    /// True when the pass must stop: the connection is gone, or ownership cannot be
    /// recorded.
    pub fn aborts_pass(&self) -> bool {
        match self {
            ApplyError::Call { source, .. } => source.is_transport(),
            ApplyError::State(_) => true,
            ApplyError::ReadBack { .. }
            | ApplyError::VerifyFailed { .. }
            | ApplyError::BucketMissing { .. }
            | ApplyError::JobFailed { .. }
            | ApplyError::RunNotStarted { .. }
            | ApplyError::Unexpected { .. }
            | ApplyError::DependencyFailed { .. } => false,
        }
    }
}

/// What happened to one step.
#[derive(Debug)]
pub enum StepStatus {
    /// Done and read back as written.
    Done {
        detail: Option<String>,
    },
    /// Deliberately not done (`report-only`).
    Skipped {
        reason: String,
    },
    Failed(ApplyError),
    /// The pass stopped before this step.
    NotAttempted,
}

/// Where a result of an [`Outcome`] comes from: results are matched to what they are
/// about by this, never by their text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// The plan step at this index of `Plan::steps`.
    Step(usize),
    /// Work the pass does besides the plan's steps.
    Extra(Extra),
}

/// What a pass does besides the plan's steps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Extra {
    /// Checking the B2 credential the Cloud Sync tasks use: the bucket is listed with it.
    VerifyCredential,
    /// Reading back what the answers of the pass's writes do not prove: a service's
    /// start-at-boot flag (`service.update` answers with the row id only) and its state.
    ReadBackServices,
    /// Dropping ownership records the plan found stale (`ownership.json`).
    ForgetStale,
    /// Recording a failed SNMP apply so later passes re-apply SNMP (`ownership.json`).
    RememberSnmpFailure,
    /// Dropping that record once the document no longer manages SNMP (`ownership.json`).
    ForgetSnmpRetry,
}

impl Extra {
    /// The `--json` name.
    pub fn as_str(self) -> &'static str {
        match self {
            Extra::VerifyCredential => "verify_credential",
            Extra::ReadBackServices => "read_back_services",
            Extra::ForgetStale => "forget_stale_records",
            Extra::RememberSnmpFailure => "remember_snmp_failure",
            Extra::ForgetSnmpRetry => "forget_snmp_retry",
        }
    }
}

/// One step (or one of the pass's [`Extra`]s) and its result.
#[derive(Debug)]
pub struct StepResult {
    /// What the result is about.
    pub origin: Origin,
    /// A one-line summary for people (no secrets); never matched on.
    pub summary: String,
    pub status: StepStatus,
}

impl StepResult {
    /// `--json` view.
    pub fn to_json(&self) -> Value {
        let (status, detail, fault) = match &self.status {
            StepStatus::Done { detail } => ("done", detail.clone(), None),
            StepStatus::Skipped { reason } => ("skipped", Some(reason.clone()), None),
            StepStatus::Failed(e) => ("failed", Some(error_chain(e)), Some(e.fault())),
            StepStatus::NotAttempted => ("not_attempted", None, None),
        };
        let (step, extra) = match self.origin {
            Origin::Step(i) => (Some(i), None),
            Origin::Extra(e) => (None, Some(e.as_str())),
        };
        json!({"step": step, "extra": extra, "summary": self.summary, "status": status, "detail": detail, "fault": fault})
    }
}

/// The result of applying a plan.
#[derive(Debug, Default)]
pub struct Outcome {
    pub results: Vec<StepResult>,
    /// Why the pass stopped early, if it did.
    pub aborted: Option<String>,
    /// The NAS as the pass left it: the observation the plan was made from, with every
    /// object a write touched replaced by what the middleware stored — the entry a
    /// create/update answered with where that answer is a re-read of the stored row
    /// (Cloud Sync and snapshot tasks, SNMP), the row read back where it is not
    /// (credentials, services). A write that failed leaves the object as observed.
    /// `None` when the pass was aborted (what it did is then not known).
    pub observed: Option<Observed>,
}

impl Outcome {
    /// Steps that failed.
    pub fn failures(&self) -> impl Iterator<Item = (&str, &ApplyError)> {
        self.results.iter().filter_map(|r| match &r.status {
            StepStatus::Failed(e) => Some((r.summary.as_str(), e)),
            _ => None,
        })
    }

    /// True when every step was done (none failed, skipped or left out).
    pub fn all_done(&self) -> bool {
        self.aborted.is_none()
            && self
                .results
                .iter()
                .all(|r| matches!(r.status, StepStatus::Done { .. }))
    }

    /// True when at least one step changed something.
    pub fn wrote(&self) -> bool {
        self.results
            .iter()
            .any(|r| matches!(r.status, StepStatus::Done { .. }))
    }

    /// `--json` view.
    pub fn to_json(&self) -> Value {
        json!({
            "aborted": self.aborted,
            "steps": self.results.iter().map(StepResult::to_json).collect::<Vec<_>>(),
        })
    }
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for r in &self.results {
            match &r.status {
                StepStatus::Done { detail: None } => writeln!(f, "  ok      {}", r.summary)?,
                StepStatus::Done {
                    detail: Some(detail),
                } => writeln!(f, "  ok      {} ({detail})", r.summary)?,
                StepStatus::Skipped { reason } => {
                    writeln!(f, "  skipped {} ({reason})", r.summary)?;
                }
                StepStatus::Failed(e) => {
                    writeln!(f, "  FAILED  {}\n          {}", r.summary, error_chain(e))?;
                }
                StepStatus::NotAttempted => writeln!(f, "  --      {} (not attempted)", r.summary)?,
            }
        }
        if let Some(why) = &self.aborted {
            writeln!(f, "  pass stopped: {why}")?;
        }
        Ok(())
    }
}

/// Knobs for a pass.
#[derive(Debug, Clone)]
pub struct ApplyOptions {
    /// How long to wait for a job the pass must see finish (`service.control`).
    pub job_timeout: Duration,
}

impl Default for ApplyOptions {
    fn default() -> Self {
        Self {
            job_timeout: Duration::from_secs(150),
        }
    }
}
