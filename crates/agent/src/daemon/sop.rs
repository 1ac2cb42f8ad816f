//! The production [`Engine`]: the daemon's seam wired to the library modules —
//! `desired` (validation), `identity` (the device GUID), `apply::reconcile` (observe →
//! plan → apply → re-observe) and `health::assess` (task health, the SOP checklist).
//!
//! Owns: the translation of those modules' results into the report's parts: plan steps
//! into `changes` (object, pool, action, field *names*), blockers and blocking conflicts
//! into `config.errors` with a path, identity problems into `device.*` issues (pending
//! identity actions are not problems), the device part (hostname from `system.info`,
//! version, pools); the B2 check's cadence (at most every [`SopSettings::b2_every`],
//! counted from the last check `health.json` records, so a restart does not call B2
//! again; in between `health` reuses the last result, dated). `health::report` fills the report's
//! `health` and `checklist` parts itself.
//! Does not: decide when anything runs (the loop does) or hold the document.
//! Invariants: every text handed out comes from types that never carry a secret value
//! (plans show `(changed)`, apply and health redact middleware texts with the document's
//! secrets); the identity writes only in `ensure` (the loop asks for it only in
//! `enforce`); `report-only` documents go through `apply` too, which skips every step
//! without sending a writing call.
//! The NAS is read in full only when there is no view of it (at start, after
//! [`Engine::resync`]); otherwise passes plan on the view events keep current
//! ([`super::view::NasView`]: what an event named without its state is read first), a
//! pass's proven writes become the view, and assessments evaluate the view against the
//! clock, reading only snapshot listings older than [`super::view::LISTING_MAX_AGE`].
//! Limitations: identity reads its own five things (the loop asks for it on full
//! passes and new documents only).

use std::cell::Cell;
use std::collections::BTreeSet;
use std::time::Duration;

use chrono::{DateTime, Utc};
use secrecy::SecretString;
use tokio::time::Instant;

use super::engine::{
    Assessed, Engine, EngineError, IdentityPass, Pass, StepOutcome, StepState, Touched,
};
use super::view::{self, LISTING_MAX_AGE, NasView};
use crate::apply::{self, Extra, Origin, OwnershipStore, ReconcileOptions, Reconciled, StepStatus};
use crate::b2::ClientOptions;
use crate::central::report::{Change, ConfigIssue, DeviceSection, GuidSource, Mode, PoolState};
use crate::config::AgentConfig;
use crate::desired::{self, DesiredState};
use crate::fault::Fault;
use crate::health::assess::AssessError;
use crate::health::{self, assess};
use crate::identity::{self, IdentityInputs, IdentityReport, ProblemKind};
use crate::middleware::{Event, Middleware};
use crate::observe::ObserveError;
use crate::plan::{Blocker, Plan, Step};
use crate::state_dir::StateDir;
use crate::zfs::{BackendChoice, PoolName, UserProps};

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
    /// Production settings: B2 checked once a day, at Backblaze.
    pub fn new(guid_property: &str) -> Self {
        Self {
            guid_property: guid_property.to_owned(),
            call_timeout: Duration::from_secs(15),
            b2_every: Some(crate::config::DEFAULT_B2_CHECK_INTERVAL),
            b2: ClientOptions::default(),
        }
    }

    /// The settings the agent configuration asks for: its `guid_property`, and the `[b2]`
    /// section — how often B2 is checked (never with `check_interval_secs = 0`) and at
    /// which API (`api_url`).
    pub fn from_config(config: &AgentConfig) -> Self {
        Self {
            b2_every: config.b2.check_interval,
            b2: ClientOptions {
                api_base: config.b2.api_url.clone(),
                ..ClientOptions::default()
            },
            ..Self::new(&config.guid_property)
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
    b2_cadence: B2Cadence,
    /// The NAS as events and proven writes left it; `None`: read it in full next.
    view: Cell<Option<NasView>>,
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
        let b2_cadence = B2Cadence::new(settings.b2_every, &state, Utc::now(), Instant::now());
        Self {
            mw,
            props,
            backend,
            state,
            identity,
            settings,
            b2_cadence,
            view: Cell::new(None),
        }
    }

    /// The view to plan on or evaluate: the one kept, with what events named without
    /// their state read now, or a full read.
    async fn view(&self) -> Result<NasView, ObserveError> {
        match self.view.take() {
            Some(mut view) => {
                if view.is_stale() {
                    view.refresh(self.mw).await?;
                }
                Ok(view)
            }
            None => NasView::read(self.mw, self.settings.call_timeout).await,
        }
    }

    /// B2 options when a check is due now.
    fn b2_due(&self) -> Option<ClientOptions> {
        self.b2_cadence
            .take_due(Instant::now())
            .then(|| self.settings.b2.clone())
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
        let mut view = self
            .view()
            .await
            .map_err(|e| EngineError::new("observe the NAS", e.fault(), e))?;
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
        let planned_on = view.observed.clone();
        let reconciled =
            match apply::reconcile_observed(self.mw, &self.state, desired, &options, planned_on)
                .await
            {
                Ok(reconciled) => reconciled,
                Err(e) => {
                    // Nothing was written: the view still stands.
                    self.view.set(Some(view));
                    let operation = match &e {
                        apply::ReconcileError::Observe(_) => "observe the NAS",
                        apply::ReconcileError::Guid(_) => "determine the device GUID",
                        apply::ReconcileError::State(_) => "use the state directory",
                    };
                    let fault = e.fault();
                    return Err(EngineError::new(operation, fault, e));
                }
            };
        let mut pass = pass_of(desired, &reconciled, self.mode(desired));
        pass.executed_actions = executed_actions(&self.state, desired);
        // What the writes proved is the NAS now; an aborted pass proves nothing, so the
        // next use reads it in full.
        if let Some(after) = reconciled.observed {
            view.observed = after;
            self.view.set(Some(view));
        }
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
        let mut view = self.view().await.map_err(|e| {
            let fault = e.fault();
            EngineError::new("assess task health", fault, AssessError::Observe(e))
        })?;
        // Listings only for the pools health evaluates, each with its task's prefix,
        // and read again at most every `LISTING_MAX_AGE`.
        let ownership = OwnershipStore::load(&self.state)
            .map(|s| s.get().clone())
            .unwrap_or_default();
        let wanted: Vec<(String, String)> =
            health::managed_pools(desired, &view.observed, &ownership)
                .into_iter()
                .map(|pool| {
                    let prefix = health::observe::listing_prefix(&pool, &view.observed, &ownership);
                    (pool, prefix)
                })
                .collect();
        view.ensure_listings(
            self.mw,
            &wanted,
            LISTING_MAX_AGE,
            self.settings.call_timeout,
        )
        .await;
        let hostname = view.hostname().map(str::to_owned);
        let assessment = assess::assess_from(
            self.mw,
            desired,
            &self.state,
            &options,
            view.observed.clone(),
            view.health_reads(),
        )
        .await;
        self.view.set(Some(view));
        if let Err(e) = assess::record(&self.state, &assessment) {
            tracing::warn!(error = %crate::fault::error_chain(&e), "cannot record health.json");
        }
        let api = self.mw.api();
        let device = DeviceSection {
            guid: None,
            guid_source: None,
            hostname,
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

    fn event_names(&self) -> &'static [&'static str] {
        view::EVENTS
    }

    fn on_event(&self, event: &Event) -> Touched {
        match self.view.take() {
            Some(mut view) => {
                let touched = view.apply(event);
                self.view.set(Some(view));
                touched
            }
            // No view: the next use reads the NAS in full anyway.
            None => Touched::NONE,
        }
    }

    fn resync(&self) {
        self.view.set(None);
    }

    async fn poll(&self) -> Result<Touched, EngineError> {
        let Some(mut view) = self.view.take() else {
            return Ok(Touched::NONE);
        };
        let polled = view.poll(self.mw).await;
        self.view.set(Some(view));
        polled.map_err(|e| EngineError::new("poll the NAS", e.fault(), e))
    }
}

/// When the daemon checks B2: never without an interval, else at most once per
/// interval, counted from the last check — this process's, or before the first one the
/// check `health.json` recorded (so a restart, or a restart loop, does not call B2 again).
#[derive(Debug)]
struct B2Cadence {
    every: Option<Duration>,
    last: Cell<Option<Instant>>,
}

impl B2Cadence {
    /// `wall_now` and `now` are the same moment on the wall and the monotonic clock.
    fn new(
        every: Option<Duration>,
        state: &StateDir,
        wall_now: DateTime<Utc>,
        now: Instant,
    ) -> Self {
        Self {
            every,
            last: Cell::new(last_b2_check(state, wall_now, now)),
        }
    }

    /// True when a check is due at `now`; the check then counts as done at `now`.
    fn take_due(&self, now: Instant) -> bool {
        let Some(every) = self.every else {
            return false;
        };
        let due = self
            .last
            .get()
            .is_none_or(|at| now.saturating_duration_since(at) >= every);
        if due {
            self.last.set(Some(now));
        }
        due
    }
}

/// When the last B2 check recorded in `health.json` ran, on the monotonic clock: `now`
/// minus its age (a time in the future counts as just now). `None` when there is none (or
/// the file cannot be read: then a check is due, as on a fresh box).
fn last_b2_check(state: &StateDir, wall_now: DateTime<Utc>, now: Instant) -> Option<Instant> {
    let checked_at = health::HealthMemory::load(state).ok()?.last_b2?.checked_at;
    let age = (wall_now - checked_at).to_std().unwrap_or(Duration::ZERO);
    Some(now.checked_sub(age).unwrap_or(now))
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
            for result in &outcome.results {
                let step = match result.origin {
                    Origin::Step(i) => plan.steps.get(i),
                    Origin::Extra(_) => None,
                };
                let change = match (step, result.origin) {
                    (Some(step), _) => change_of(step),
                    (None, Origin::Extra(extra)) => extra_change(extra),
                    // An index outside the plan cannot come out of `apply`; shown as
                    // what it is rather than dropped.
                    (None, Origin::Step(i)) => Change {
                        target: format!("(step {i})"),
                        action: "apply".to_owned(),
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
                // The pass's extras (the credential check, state-directory records) are
                // not changes on their own: keep them only when they failed (then they
                // explain why steps were not attempted, or what is not recorded).
                let is_step = matches!(result.origin, Origin::Step(_));
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
        executed_actions: Vec::new(),
    }
}

/// The document's actions the ownership record lists as executed (none if it cannot be
/// read: the pass already said why).
fn executed_actions(state: &StateDir, desired: &DesiredState) -> Vec<String> {
    let Ok(store) = OwnershipStore::load(state) else {
        return Vec::new();
    };
    desired
        .actions
        .iter()
        .filter(|a| store.get().executed_actions.contains(&a.id))
        .map(|a| a.id.clone())
        .collect()
}

/// What one of the pass's extras is about, as a report change.
fn extra_change(extra: Extra) -> Change {
    let (target, action) = match extra {
        Extra::VerifyCredential => ("credential", "verify"),
        Extra::ReadBackServices => ("service:snmp", "read back"),
        Extra::ForgetStale => ("ownership.json", "forget stale records"),
        Extra::RememberSnmpFailure => ("ownership.json", "record the failed SNMP apply"),
        Extra::ForgetSnmpRetry => ("ownership.json", "forget the failed SNMP apply"),
    };
    Change {
        target: target.to_owned(),
        action: action.to_owned(),
        fields: Vec::new(),
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::b2::{B2Report, Expected};
    use crate::health::HealthMemory;

    const HOUR: Duration = Duration::from_secs(3600);

    fn state_with_b2_check(checked_at: Option<DateTime<Utc>>) -> (tempfile::TempDir, StateDir) {
        let tmp = tempfile::tempdir().unwrap();
        let state = StateDir::open(tmp.path()).unwrap();
        if let Some(at) = checked_at {
            let expected = Expected {
                key_id: "k".into(),
                bucket: "truenas-a1b2c3d4e5f670718293a4b5c6d7e8f9".into(),
                device_guid: "9babab19-acc0-4587-aa05-ccd8103a1148".into(),
                pools: vec!["pool0".into()],
                rclone_version: None,
            };
            let memory = HealthMemory {
                last_b2: Some(B2Report::unavailable(&expected, "test", at)),
                ..HealthMemory::default()
            };
            memory.save(&state).unwrap();
        }
        (tmp, state)
    }

    /// The interval is honoured on tokio's paused clock: due at once on a fresh box, then
    /// not again until a whole interval has passed.
    #[tokio::test(start_paused = true)]
    async fn b2_checks_keep_their_interval() {
        let (_tmp, state) = state_with_b2_check(None);
        let cadence = B2Cadence::new(Some(HOUR), &state, Utc::now(), Instant::now());
        assert!(cadence.take_due(Instant::now()), "first check at start");
        assert!(!cadence.take_due(Instant::now()));
        tokio::time::advance(Duration::from_secs(3599)).await;
        assert!(!cadence.take_due(Instant::now()), "one second early");
        tokio::time::advance(Duration::from_secs(1)).await;
        assert!(cadence.take_due(Instant::now()), "an interval later");
        assert!(!cadence.take_due(Instant::now()));
    }

    /// `check_interval_secs = 0`: never due, however long the daemon runs.
    #[tokio::test(start_paused = true)]
    async fn b2_checks_off_are_never_due() {
        let (_tmp, state) = state_with_b2_check(None);
        let cadence = B2Cadence::new(None, &state, Utc::now(), Instant::now());
        for _ in 0..48 {
            assert!(!cadence.take_due(Instant::now()));
            tokio::time::advance(HOUR).await;
        }
    }

    /// A restart does not call B2 again: the interval counts from the check `health.json`
    /// recorded (30 minutes ago here), and a recorded time in the future counts as now.
    #[tokio::test(start_paused = true)]
    async fn a_restart_keeps_the_interval_from_health_json() {
        let wall = Utc::now();
        let (_tmp, state) = state_with_b2_check(Some(wall - chrono::Duration::minutes(30)));
        let cadence = B2Cadence::new(Some(HOUR), &state, wall, Instant::now());
        assert!(!cadence.take_due(Instant::now()), "checked 30 minutes ago");
        tokio::time::advance(Duration::from_secs(29 * 60)).await;
        assert!(!cadence.take_due(Instant::now()));
        tokio::time::advance(Duration::from_secs(60)).await;
        assert!(
            cadence.take_due(Instant::now()),
            "an hour after the recorded check"
        );

        let (_tmp, state) = state_with_b2_check(Some(wall + chrono::Duration::hours(5)));
        let cadence = B2Cadence::new(Some(HOUR), &state, wall, Instant::now());
        assert!(
            !cadence.take_due(Instant::now()),
            "a future time counts as now"
        );
        tokio::time::advance(HOUR).await;
        assert!(cadence.take_due(Instant::now()));
    }

    /// Results that are not plan steps keep their own identity: a failed record of the
    /// state directory is not reported as a failed credential check, and each step's
    /// result lands on its own step.
    #[test]
    fn results_are_matched_to_their_origin_not_their_text() {
        use crate::apply::{ApplyError, Outcome, StepResult};
        use crate::plan::tests::{doc, fresh, inputs};
        let d = doc();
        let observed = fresh(&["pool0", "pool1"]);
        let plan = crate::plan::plan(
            &d,
            &observed,
            &crate::plan::Ownership::default(),
            &inputs(&d),
        );
        assert!(plan.steps.len() > 3);
        let mut results: Vec<StepResult> = plan
            .steps
            .iter()
            .enumerate()
            .map(|(i, s)| StepResult {
                origin: Origin::Step(i),
                summary: s.summary(),
                status: StepStatus::Done { detail: None },
            })
            .collect();
        results.push(StepResult {
            origin: Origin::Extra(Extra::ForgetStale),
            summary: "drop stale ownership records".to_owned(),
            status: StepStatus::Failed(ApplyError::State(crate::state_dir::StateError::BadKey {
                path: "/state/key".into(),
            })),
        });
        let reconciled = Reconciled {
            plan,
            outcome: Some(Outcome {
                results,
                aborted: None,
                observed: None,
            }),
            after: None,
            observed: None,
        };
        let pass = pass_of(&d, &reconciled, Mode::Enforce);
        let failed: Vec<&StepOutcome> = pass.failures().map(|(s, _)| s).collect();
        assert_eq!(failed.len(), 1);
        assert_ne!(
            (
                failed[0].change.target.as_str(),
                failed[0].change.action.as_str()
            ),
            ("credential", "verify"),
            "a failed ownership record is not a failed credential check"
        );
        assert_eq!(failed[0].change.target, "ownership.json");
    }

    #[test]
    fn settings_follow_the_b2_section() {
        let config = AgentConfig::parse(
            "[b2]\ncheck_interval_secs = 7200\napi_url = \"http://127.0.0.1:9\"\n",
            "agent.toml",
        )
        .unwrap();
        let settings = SopSettings::from_config(&config);
        assert_eq!(settings.b2_every, Some(Duration::from_secs(7200)));
        assert_eq!(settings.b2.api_base, "http://127.0.0.1:9");
        let off = AgentConfig::parse("[b2]\ncheck_interval_secs = 0\n", "agent.toml").unwrap();
        assert_eq!(SopSettings::from_config(&off).b2_every, None);
        let default = SopSettings::from_config(&AgentConfig::default());
        assert_eq!(default.b2_every, Some(Duration::from_secs(86_400)));
        assert_eq!(default.b2.api_base, "https://api.backblazeb2.com");
    }
}
