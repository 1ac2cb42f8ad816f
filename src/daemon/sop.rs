//! The production [`Engine`]: the daemon's seam wired to the library modules —
//! `desired` (validation), `identity` (the device GUID), `apply::reconcile` (observe →
//! plan → apply → re-observe) and `health::assess` (task health, the SOP checklist).
//!
//! Owns: the translation of those modules' results into the report's parts: plan steps
//! into `changes` (object, pool, action, field *names*), blockers and blocking conflicts
//! into `config.errors` with a path, identity problems into `device.*` issues (pending
//! identity actions are not problems), the device part (hostname from `system.info`,
//! version, pools); the B2 check's cadence (at most every [`SopSettings::b2_every`]; in
//! between `health` reuses the last result, dated). `health::report` fills the report's
//! `health` and `checklist` parts itself.
//! Does not: decide when anything runs (the loop does) or hold the document.
//! Invariants: every text handed out comes from types that never carry a secret value
//! (plans show `(changed)`, apply and health redact middleware texts with the document's
//! secrets); the identity writes only in `ensure` (the loop asks for it only in
//! `enforce`); `report-only` documents go through `apply` too, which skips every step
//! without sending a writing call.
//! Limitations: identity reads its own five things; the health assessment right after
//! a converge pass reuses that pass's last observation (at most [`FRESH_FOR`] old)
//! instead of reading the same seven things again, other assessments read them.

use std::cell::Cell;
use std::collections::BTreeSet;
use std::time::Duration;

use chrono::Utc;
use secrecy::SecretString;
use serde_json::Value;
use tokio::time::Instant;

use super::engine::{Assessed, Engine, EngineError, IdentityPass, Pass, StepOutcome, StepState};
use crate::apply::{self, OwnershipStore, ReconcileOptions, Reconciled, StepStatus};
use crate::b2::ClientOptions;
use crate::central::report::{Change, ConfigIssue, DeviceSection, GuidSource, Mode, PoolState};
use crate::desired::{self, DesiredState};
use crate::fault::Fault;
use crate::health::{self, assess};
use crate::identity::{self, IdentityInputs, IdentityReport, ProblemKind};
use crate::middleware::{Call, Method, Middleware};
use crate::observe::Observed;
use crate::plan::{Blocker, Plan, Step};
use crate::state_dir::StateDir;
use crate::zfs::{BackendChoice, PoolName, UserProps};

/// How long the observation a converge pass ended with stands in for a fresh read in
/// the assessment that follows it.
pub const FRESH_FOR: Duration = Duration::from_secs(30);

/// Knobs of the production engine.
#[derive(Clone)]
pub struct SopSettings {
    /// The ZFS user property with the device GUID (`guid_property` in the config).
    pub guid_property: String,
    /// Timeout of each health read.
    pub call_timeout: Duration,
    /// Check B2 (with the task's own key) at most this often; `None`: never (the demo,
    /// tests without a fake B2). Between checks the last B2 result is reused, dated.
    pub b2_every: Option<Duration>,
    /// The B2 client (production: the real API).
    pub b2: ClientOptions,
}

impl std::fmt::Debug for SopSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SopSettings")
            .field("guid_property", &self.guid_property)
            .field("call_timeout", &self.call_timeout)
            .field("b2_every", &self.b2_every)
            .finish_non_exhaustive()
    }
}

impl SopSettings {
    /// Production settings: B2 checked once a day.
    pub fn new(guid_property: &str) -> Self {
        Self {
            guid_property: guid_property.to_owned(),
            call_timeout: Duration::from_secs(15),
            b2_every: Some(Duration::from_secs(24 * 3600)),
            b2: ClientOptions::default(),
        }
    }
}

/// The engine over the real modules.
pub struct SopEngine<'a, M, P> {
    mw: &'a M,
    props: &'a P,
    backend: BackendChoice,
    state: StateDir,
    identity: IdentityInputs,
    settings: SopSettings,
    last_b2: Cell<Option<Instant>>,
    /// The NAS as the last converge pass left it, and when: see [`FRESH_FOR`].
    fresh: Cell<Option<(Instant, Observed)>>,
}

impl<'a, M: Middleware, P: UserProps> SopEngine<'a, M, P> {
    /// An engine over `mw` (middleware) and `props` (ZFS user properties, reached the way
    /// `backend` says), keeping its records in `state`. `identity` carries the GUID
    /// property, the host-binding property and the local root-pool hint.
    pub fn new(
        mw: &'a M,
        props: &'a P,
        backend: BackendChoice,
        state: StateDir,
        identity: IdentityInputs,
        settings: SopSettings,
    ) -> Self {
        Self {
            mw,
            props,
            backend,
            state,
            identity,
            settings,
            last_b2: Cell::new(None),
            fresh: Cell::new(None),
        }
    }

    /// B2 options when a check is due now.
    fn b2_due(&self) -> Option<ClientOptions> {
        let every = self.settings.b2_every?;
        let due = self.last_b2.get().is_none_or(|at| at.elapsed() >= every);
        due.then(|| {
            self.last_b2.set(Some(Instant::now()));
            self.settings.b2.clone()
        })
    }

    async fn hostname(&self) -> Option<String> {
        let call = self.mw.call(Call::bare(Method::SystemInfo));
        let info = tokio::time::timeout(self.settings.call_timeout, call)
            .await
            .ok()?
            .ok()?;
        info.get("hostname")
            .and_then(Value::as_str)
            .map(str::to_owned)
    }
}

impl<M: Middleware, P: UserProps> Engine for SopEngine<'_, M, P> {
    type Desired = DesiredState;

    fn validate(&self, payload: &[u8]) -> Result<DesiredState, Vec<ConfigIssue>> {
        desired::parse(payload).map_err(|e| {
            e.field_errors()
                .into_iter()
                .map(|f| ConfigIssue {
                    path: f.path,
                    message: f.rule,
                })
                .collect()
        })
    }

    fn revision(&self, desired: &DesiredState) -> u64 {
        desired.revision
    }

    fn mode(&self, desired: &DesiredState) -> Mode {
        match desired.mode {
            desired::Mode::Enforce => Mode::Enforce,
            desired::Mode::ReportOnly => Mode::ReportOnly,
        }
    }

    fn secrets<'d>(&self, desired: &'d DesiredState) -> Vec<&'d SecretString> {
        desired.secrets()
    }

    async fn identity(
        &self,
        desired: Option<&DesiredState>,
        write: bool,
    ) -> Result<IdentityPass, EngineError> {
        let mut inputs = self.identity.clone();
        if let Some(d) = desired {
            inputs.central_guid = d.device.guid;
            // `desired` validated the name with the middleware's pool-name rule.
            inputs.root_pool.document = d
                .device
                .root_pool
                .as_deref()
                .and_then(|p| PoolName::parse(p).ok());
        }
        let report = if write {
            identity::ensure(&inputs, self.props, &self.backend).await
        } else {
            identity::observe(&inputs, self.props, &self.backend).await
        };
        if let Err(e) = identity::record(&self.state, &report) {
            tracing::warn!(error = %crate::fault::error_chain(&e), "cannot record identity.json");
        }
        if let Some(error) = &report.error {
            let operation = if write {
                "ensure the device identity"
            } else {
                "read the device identity"
            };
            return Err(EngineError::new(
                operation,
                error.fault,
                error.message.clone(),
            ));
        }
        Ok(identity_pass(&report))
    }

    async fn converge(&self, desired: &DesiredState) -> Result<Pass, EngineError> {
        self.fresh.set(None);
        let options = ReconcileOptions {
            // `apply` skips every step of a report-only document without a call.
            write: true,
            guid_property: self.settings.guid_property.clone(),
            root_pool: self
                .identity
                .root_pool
                .local
                .as_ref()
                .map(ToString::to_string),
            apply: apply::ApplyOptions::default(),
        };
        let reconciled = apply::reconcile(self.mw, &self.state, desired, &options)
            .await
            .map_err(|e| {
                let operation = match &e {
                    apply::ReconcileError::Observe(_) => "observe the NAS",
                    apply::ReconcileError::Guid(_) => "determine the device GUID",
                    apply::ReconcileError::State(_) => "use the state directory",
                    apply::ReconcileError::ReObserve(_) => "re-observe the NAS",
                };
                let fault = e.fault();
                EngineError::new(operation, fault, e)
            })?;
        let pass = pass_of(desired, &reconciled, self.mode(desired));
        self.fresh.set(
            reconciled
                .observed
                .map(|observed| (Instant::now(), observed)),
        );
        Ok(pass)
    }

    async fn assess(&self, desired: Option<&DesiredState>) -> Result<Assessed, EngineError> {
        let now = Utc::now();
        let options = assess::AssessOptions {
            now,
            offset: assess::local_offset(now),
            call_timeout: self.settings.call_timeout,
            b2: desired.and_then(|_| self.b2_due()),
            guid_property: self.settings.guid_property.clone(),
            root_pool: self
                .identity
                .root_pool
                .local
                .as_ref()
                .map(ToString::to_string),
        };
        let fresh = self
            .fresh
            .take()
            .filter(|(at, _)| at.elapsed() <= FRESH_FOR)
            .map(|(_, observed)| observed);
        let assessment = assess::assess_with(self.mw, desired, &self.state, &options, fresh)
            .await
            .map_err(|e| {
                let fault = e.fault();
                EngineError::new("assess task health", fault, e)
            })?;
        if let Err(e) = assess::record(&self.state, &assessment) {
            tracing::warn!(error = %crate::fault::error_chain(&e), "cannot record health.json");
        }
        let api = self.mw.api();
        let device = DeviceSection {
            guid: None,
            guid_source: None,
            hostname: self.hostname().await,
            truenas_version: Some(api.version.clone()),
            api: Some(api.flavor.as_str().to_owned()),
            root_pool: None,
            pools: assessment
                .observed
                .pools
                .iter()
                .map(|p| PoolState {
                    name: p.name.clone(),
                    healthy: p.healthy,
                })
                .collect(),
        };
        Ok(Assessed {
            device,
            health: health::report::health_section(&assessment.health),
            checklist: health::report::checklist_items(&assessment.health.checklist),
        })
    }

    fn watched_tasks(&self) -> BTreeSet<u64> {
        OwnershipStore::load(&self.state)
            .map(|store| store.get().cloud_sync.values().map(|o| o.id).collect())
            .unwrap_or_default()
    }
}

/// The identity run in the daemon's terms.
fn identity_pass(report: &IdentityReport) -> IdentityPass {
    let property = report.property.clone();
    let host_property = report.host_binding.property.clone();
    let changes = report
        .changes
        .iter()
        .map(|c| match c {
            identity::Change::WroteGuid { pool, .. } => {
                change(&format!("zfs:{pool}"), "set", &property)
            }
            identity::Change::CorrectedGuid { pool, .. } => {
                change(&format!("zfs:{pool}"), "correct", &property)
            }
            identity::Change::BoundHost { pool, .. } | identity::Change::Rebound { pool, .. } => {
                change(&format!("zfs:{pool}"), "set", &host_property)
            }
        })
        .collect();
    // Pending actions (no GUID yet, not bound yet, central's GUID differs) are what the
    // next `ensure` does, not something for a human: only the others are reported.
    let problems: Vec<ConfigIssue> = report
        .problems
        .iter()
        .filter(|p| p.fault != Fault::Transient)
        .map(|p| ConfigIssue {
            path: identity_path(&p.kind).to_owned(),
            message: p.message.clone(),
        })
        .collect();
    let fault = report
        .problems
        .iter()
        .filter(|p| p.blocking && p.fault != Fault::Transient)
        .map(|p| p.fault)
        .next();
    IdentityPass {
        guid: report.guid.clone(),
        guid_source: report.guid_source.map(|s| match s {
            identity::GuidSource::Zfs => GuidSource::Zfs,
            identity::GuidSource::Generated => GuidSource::Generated,
            identity::GuidSource::Central => GuidSource::Central,
        }),
        root_pool: report.root_pool.clone(),
        usable: report.usable,
        changes,
        problems,
        fault,
    }
}

fn change(target: &str, action: &str, field: &str) -> Change {
    Change {
        target: target.to_owned(),
        action: action.to_owned(),
        fields: vec![field.to_owned()],
    }
}

/// Which document field an identity problem is about.
fn identity_path(kind: &ProblemKind) -> &'static str {
    match kind {
        ProblemKind::SeveralPoolsSetRootPool { .. }
        | ProblemKind::SeveralPoolsCarryGuid { .. }
        | ProblemKind::NoDataPool
        | ProblemKind::RootPoolIsBootPool { .. }
        | ProblemKind::RootPoolNotImported { .. }
        | ProblemKind::GuidOnOtherPool { .. }
        | ProblemKind::GuidAlsoOnOtherPools { .. } => "device.root_pool",
        ProblemKind::CorruptGuid { .. }
        | ProblemKind::GuidNotCanonical { .. }
        | ProblemKind::PoolMovedOrCloned { .. }
        | ProblemKind::HostUnknown
        | ProblemKind::GuidAbsent { .. }
        | ProblemKind::CentralGuidDiffers { .. }
        | ProblemKind::NotBound { .. }
        | ProblemKind::ReadBackMismatch { .. } => "device.guid",
    }
}

/// A finished reconcile in the daemon's terms.
fn pass_of(desired: &DesiredState, r: &Reconciled, mode: Mode) -> Pass {
    let plan = &r.plan;
    let mut steps: Vec<StepOutcome> = Vec::new();
    let mut aborted = None;
    match &r.outcome {
        Some(outcome) => {
            let mut unmatched: Vec<&Step> = plan.steps.iter().collect();
            for result in &outcome.results {
                let position = unmatched.iter().position(|s| s.summary() == result.summary);
                let change = match position {
                    Some(i) => change_of(unmatched.remove(i)),
                    // Results that are not plan steps: the credential check, dropping
                    // stale ownership records.
                    None => Change {
                        target: "credential".to_owned(),
                        action: "verify".to_owned(),
                        fields: Vec::new(),
                    },
                };
                let state = match &result.status {
                    StepStatus::Done { .. } => StepState::Done,
                    StepStatus::Skipped { .. } => StepState::Skipped,
                    StepStatus::Failed(e) => {
                        if e.aborts_pass() && aborted.is_none() {
                            aborted = outcome.aborted.clone().map(|why| (e.fault(), why));
                        }
                        StepState::Failed {
                            fault: e.fault(),
                            message: format!(
                                "{}: {}",
                                result.summary,
                                crate::fault::error_chain(e)
                            ),
                        }
                    }
                    StepStatus::NotAttempted => StepState::NotAttempted,
                };
                // The credential check is not a change on its own: keep it only when it
                // failed (then it explains why the tasks were not attempted).
                let is_step = position.is_some();
                if is_step || matches!(state, StepState::Failed { .. }) {
                    steps.push(StepOutcome { change, state });
                }
            }
            if aborted.is_none() {
                aborted = outcome.aborted.clone().map(|why| (Fault::Transient, why));
            }
        }
        None => steps.extend(plan.steps.iter().map(|s| StepOutcome {
            change: change_of(s),
            state: StepState::NotAttempted,
        })),
    }
    let remaining = r.remaining();
    let mut text = plan.to_string();
    if let Some(outcome) = r.outcome.as_ref().filter(|o| !o.results.is_empty()) {
        text.push_str("\nApplying:\n");
        text.push_str(&outcome.to_string());
    }
    if let Some(after) = &r.after {
        text.push_str("\nAfter applying:\n");
        text.push_str(&after.to_string());
    }
    Pass {
        revision: desired.revision,
        mode,
        steps,
        blocked: blocked(remaining),
        converged: r.converged(),
        aborted,
        text,
    }
}

/// A plan step as a report change: `<object>:<pool or #id>`, the action, field names.
fn change_of(step: &Step) -> Change {
    let view = step.view();
    let target = match (view.pool, view.id) {
        (Some(pool), _) => format!("{}:{pool}", view.object),
        (None, Some(id)) => format!("{}:#{id}", view.object),
        (None, None) => match step {
            Step::EnableService { service } | Step::StartService { service } => {
                format!("service:{service}")
            }
            _ => view.object.to_owned(),
        },
    };
    let mut fields: Vec<String> = view.changes.iter().map(|c| c.field.clone()).collect();
    fields.dedup();
    Change {
        target,
        action: view.action.to_owned(),
        fields,
    }
}

/// What stops the plan, as report errors: blockers and blocking conflicts.
fn blocked(plan: &Plan) -> Vec<ConfigIssue> {
    let mut out: Vec<ConfigIssue> = plan
        .blockers
        .iter()
        .filter(|b| !matches!(b, Blocker::ActionWaiting { .. }))
        .map(|b| ConfigIssue {
            path: blocker_path(b).to_owned(),
            message: b.to_string(),
        })
        .collect();
    out.extend(
        plan.conflicts
            .iter()
            .filter(|c| c.blocking)
            .map(|c| ConfigIssue {
                path: match &c.pool {
                    Some(pool) => format!("pools.{pool}"),
                    None => "b2".to_owned(),
                },
                message: c.to_string(),
            }),
    );
    out
}

/// Which document field a blocker is about.
fn blocker_path(blocker: &Blocker) -> &'static str {
    match blocker {
        Blocker::Rollback { .. } => "revision",
        Blocker::PoolNotImported { .. } => "pools",
        Blocker::RootPoolNotImported { .. } => "device.root_pool",
        Blocker::RekeyRefused { .. } | Blocker::RekeyUnverifiable { .. } => "encryption",
        Blocker::AdoptedMissing { .. }
        | Blocker::AdoptedNotManaged { .. }
        | Blocker::AdoptIgnored { .. } => "adopt",
        Blocker::WaitingForCredential { .. } => "b2",
        Blocker::ActionWaiting { .. } => "actions",
    }
}
