//! The seam between the daemon loop and the pieces it drives: document validation
//! (`desired`), the device identity (`identity`), the SOP engine (`observe` → `plan` →
//! `apply`), and health/checklist (`health`).
//!
//! Owns: the [`Engine`] trait and the plain data it hands back ([`IdentityPass`],
//! [`Pass`], [`Assessed`]), already shaped like the report's parts (contract §4), and
//! [`EngineError`], which keeps a failing piece's error and its [`Fault`].
//! Does not: implement any of it. `daemon::sop` is the production engine over the real
//! modules; the daemon's unit tests use a scripted one.
//! Invariants: nothing in these types is secret (step texts, issues and messages are
//! redacted by the engine before they get here); secrets are handed out only by
//! [`Engine::secrets`], as `SecretString`s, for the report scrub.
//! Limitations: one engine per daemon; the engine keeps no document itself — the daemon
//! owns the current document and passes it in.

use std::collections::BTreeSet;
use std::future::Future;

use secrecy::SecretString;

use crate::central::report::{
    Change, ChecklistItem, ConfigIssue, DeviceSection, GuidSource, HealthSection, Mode,
};
use crate::fault::Fault;
use crate::middleware::Event;

/// What the daemon needs from the pieces it drives.
pub trait Engine {
    /// A validated desired-state document (secrets inside as `SecretString`).
    type Desired;

    /// Parses and validates a verified payload; on refusal, every problem with its path.
    fn validate(&self, payload: &[u8]) -> Result<Self::Desired, Vec<ConfigIssue>>;

    /// The document's revision.
    fn revision(&self, desired: &Self::Desired) -> u64;

    /// The document's mode.
    fn mode(&self, desired: &Self::Desired) -> Mode;

    /// Every secret of the document, scrubbed from reports.
    fn secrets<'d>(&self, desired: &'d Self::Desired) -> Vec<&'d SecretString>;

    /// Reads the device identity and, with `write`, applies the identity rules (the
    /// document's `device.guid` wins; else keep, else generate).
    fn identity(
        &self,
        desired: Option<&Self::Desired>,
        write: bool,
    ) -> impl Future<Output = Result<IdentityPass, EngineError>>;

    /// One reconcile pass for the document: observe → plan → apply (`enforce`) or plan
    /// only (`report-only`) → re-observe.
    fn converge(&self, desired: &Self::Desired) -> impl Future<Output = Result<Pass, EngineError>>;

    /// Task health and the SOP checklist (with a document), or health alone.
    fn assess(
        &self,
        desired: Option<&Self::Desired>,
    ) -> impl Future<Output = Result<Assessed, EngineError>>;

    /// Ids of the Cloud Sync tasks the agent manages (whose jobs the daemon watches).
    fn watched_tasks(&self) -> BTreeSet<u64>;

    /// The middleware events the engine keeps its view of the NAS current from.
    fn event_names(&self) -> &'static [&'static str];

    /// Applies one event to the engine's view of the NAS; says what it touched. Pure
    /// (no I/O): what an event names without its state is read at the next use.
    fn on_event(&self, event: &Event) -> Touched;

    /// Forgets the view of the NAS: the next pass or assessment reads it in full
    /// (after a reconnect, missed events, or at the resync interval).
    fn resync(&self);

    /// Reads what sends no event (slowly, on the loop's poll interval); says what
    /// changed.
    fn poll(&self) -> impl Future<Output = Result<Touched, EngineError>>;
}

/// What an event (or a poll) changed in the engine's view of the NAS.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Touched {
    /// Something the document governs (or that could conflict with it): plan again.
    pub plan: bool,
    /// Something health reports: assess again (report when it changed).
    pub health: bool,
}

impl Touched {
    pub const NONE: Touched = Touched {
        plan: false,
        health: false,
    };
    pub const HEALTH: Touched = Touched {
        plan: false,
        health: true,
    };
    pub const ALL: Touched = Touched {
        plan: true,
        health: true,
    };
}

/// A piece of the pass failed as a whole.
#[derive(Debug, thiserror::Error)]
#[error("{operation} failed")]
pub struct EngineError {
    /// What was being done, e.g. `observe the NAS`.
    pub operation: &'static str,
    pub fault: Fault,
    #[source]
    pub source: Box<dyn std::error::Error + Send + Sync>,
}

impl EngineError {
    /// Wraps a module's error with its fault.
    pub fn new(
        operation: &'static str,
        fault: Fault,
        source: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) -> Self {
        Self {
            operation,
            fault,
            source: source.into(),
        }
    }

    /// Who has to act.
    pub fn fault(&self) -> Fault {
        self.fault
    }
}

/// The device identity after an identity run.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct IdentityPass {
    pub guid: Option<String>,
    pub guid_source: Option<GuidSource>,
    pub root_pool: Option<String>,
    /// True when the GUID may be used (found or written, read back, nothing blocking).
    pub usable: bool,
    /// What was written (GUID generated or corrected, host binding).
    pub changes: Vec<Change>,
    /// What a human has to sort out (several pools and no root pool, a corrupt value, …).
    pub problems: Vec<ConfigIssue>,
    /// Who has to act on `problems` (the worst of them), when there are any.
    pub fault: Option<Fault>,
}

/// What happened to one planned step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StepState {
    /// Written and read back.
    Done,
    /// Deliberately not done (`report-only`).
    Skipped,
    Failed {
        fault: Fault,
        message: String,
    },
    /// The pass stopped before this step.
    NotAttempted,
}

/// One planned step: what it changes (names only) and what became of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepOutcome {
    pub change: Change,
    pub state: StepState,
}

/// One reconcile pass of a document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pass {
    pub revision: u64,
    pub mode: Mode,
    pub steps: Vec<StepOutcome>,
    /// What the plan cannot do by itself (blockers, blocking conflicts), as path + rule.
    pub blocked: Vec<ConfigIssue>,
    /// True when the NAS matches the document at the end of the pass.
    pub converged: bool,
    /// Why the pass stopped early (transport loss, unwritable state directory).
    pub aborted: Option<(Fault, String)>,
    /// The plan and step results for a human (logs, the demo). No secrets.
    pub text: String,
    /// Ids of the document's actions recorded as executed (`config.executed_actions`).
    pub executed_actions: Vec<String>,
}

impl Pass {
    /// Steps that failed, with their fault.
    pub fn failures(&self) -> impl Iterator<Item = (&StepOutcome, Fault)> {
        self.steps.iter().filter_map(|s| match &s.state {
            StepState::Failed { fault, .. } => Some((s, *fault)),
            StepState::Done | StepState::Skipped | StepState::NotAttempted => None,
        })
    }

    /// True when at least one step wrote something.
    pub fn wrote(&self) -> bool {
        self.steps.iter().any(|s| s.state == StepState::Done)
    }
}

/// The report's device, health and checklist parts.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Assessed {
    pub device: DeviceSection,
    pub health: HealthSection,
    pub checklist: Vec<crate::central::report::ChecklistItem>,
}

impl Assessed {
    /// What counts as a health change worth a report: task states, overdue flags, error
    /// classes, snapshot presence, pool health and checklist statuses — not ages or
    /// counts, which change on their own every hour.
    pub fn signature(&self) -> Vec<String> {
        let mut sig: Vec<String> = self
            .device
            .pools
            .iter()
            .map(|p| format!("pool:{}:{}", p.name, p.healthy))
            .collect();
        sig.extend(self.health.cloud_sync.iter().map(|c| {
            format!(
                "sync:{}:{:?}:{}:{}:{:?}",
                c.pool, c.task_id, c.state, c.overdue, c.error_class
            )
        }));
        sig.extend(
            self.health
                .snapshots
                .iter()
                .map(|s| format!("snap:{}:{:?}:{}", s.pool, s.task_id, s.latest.is_some())),
        );
        sig.extend(
            self.checklist
                .iter()
                .map(|c: &ChecklistItem| format!("check:{}:{:?}", c.id, c.status)),
        );
        sig
    }
}
