//! The fleet, judged now: one [`Snapshot`] for the pages and `/metrics`, and the periodic
//! evaluator that announces transitions (of reports and of time) through the webhook
//! outbox.
//!
//! Owns: reading what `fleet::assess` needs from the database (device rows, derived
//! states, the published documents' schedule/GUID/pools, the newest report's failing
//! checklist items) with a per-process cache keyed by document revision and newest
//! report; [`Monitor::evaluate`] (compare each device's [`Announced`] state with the
//! stored one, and announce the difference once — `Db::announce` is a compare-and-set);
//! [`Monitor::run`], which evaluates every `evaluate_interval_secs` and soon after a
//! report ([`Monitor::report_stored`]); the process's [`Counters`].
//! Does not: render (`web`, `metrics`), deliver webhooks (`webhooks`), or judge (`fleet`).
//! Invariants: a transition is announced once across every instance sharing the
//! database (the loser of a compare-and-set skips, and the next evaluation starts from
//! what the winner stored); nothing from a document but its revision, Cloud Sync
//! schedule, `device.guid` and `pools` leaves this module (the opened document is
//! dropped at once); a document that does not open or validate is judged without a
//! schedule (the agent's own `overdue` flag still counts) and logged.
//! Limitations: a snapshot reads every device's state (one query per device for its
//! pools): fine for hundreds to a few thousand devices per page load.

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use chrono::{DateTime, Utc};
use serde_json::json;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::alerts::{self, Announced, Context, transitions};
use crate::clock::Clock;
use crate::config::CentralConfig;
use crate::db::{Db, DbError, DeviceRow, DeviceState, NewWebhook};
use crate::fleet::{self, DeviceFacts, DocumentFacts, Standing};
use crate::store::DropTally;
use truenas_agent::health::schedule::Schedule;

/// What the process counted since it started (for `/metrics`).
#[derive(Debug, Default)]
pub struct Counters {
    pub evaluations: AtomicU64,
    pub evaluation_errors: AtomicU64,
    /// Devices whose announced state changed (transitions recorded).
    pub announcements: AtomicU64,
    /// Compare-and-set races lost to another instance.
    pub announce_conflicts: AtomicU64,
    pub webhooks_queued: AtomicU64,
    pub webhook_deliveries: AtomicU64,
    pub webhook_failures: AtomicU64,
    pub webhooks_given_up: AtomicU64,
    pub logins: AtomicU64,
    pub login_failures: AtomicU64,
    pub auth_failures: AtomicU64,
    pub actions: AtomicU64,
}

impl Counters {
    /// Adds one.
    pub fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// Reads one.
    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }
}

/// The monitor failed to read or write the database.
#[derive(Debug, thiserror::Error)]
pub enum MonitorError {
    #[error("cannot read the fleet from the database")]
    Read(#[source] DbError),
    #[error("cannot record the announced state of device `{device}`")]
    Announce {
        device: String,
        #[source]
        source: DbError,
    },
}

impl MonitorError {
    /// The party that has to act.
    pub fn fault(&self) -> truenas_agent::fault::Fault {
        match self {
            MonitorError::Read(e) | MonitorError::Announce { source: e, .. } => e.fault(),
        }
    }
}

/// One device, judged.
#[derive(Debug, Clone)]
pub struct DeviceView {
    pub row: DeviceRow,
    pub state: DeviceState,
    pub standing: Standing,
    /// Failing checklist item ids and every item's title, from the newest report.
    pub checks: Arc<LatestChecks>,
}

/// The checklist of a device's newest report, reduced.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LatestChecks {
    pub failing: BTreeSet<String>,
    /// `(id, title)` of every item.
    pub titles: Vec<(String, String)>,
}

/// The fleet at one instant, worst first.
#[derive(Debug, Clone)]
pub struct Snapshot {
    pub at: DateTime<Utc>,
    pub devices: Vec<DeviceView>,
}

/// What one evaluation did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Evaluation {
    /// Devices whose announced state was recorded anew.
    pub announced: usize,
    /// Webhook entries queued (one per event and receiver).
    pub queued: usize,
    /// Compare-and-set races lost to another instance.
    pub conflicts: usize,
}

/// What a cached checklist was read from: the newest report's `created_at` and the
/// report count.
type ChecksKey = (Option<DateTime<Utc>>, u64);

#[derive(Default)]
struct Cache {
    /// device → (published revision, facts)
    documents: HashMap<String, (u64, Arc<DocumentFacts>)>,
    /// device → ((newest report's created_at, report count), checks)
    checks: HashMap<String, (ChecksKey, Arc<LatestChecks>)>,
}

/// The fleet evaluator.
pub struct Monitor {
    db: Db,
    config: Arc<CentralConfig>,
    clock: Arc<dyn Clock>,
    counters: Arc<Counters>,
    cache: Mutex<Cache>,
    /// Set after a report: evaluate soon.
    nudge: Notify,
    /// Woken when webhooks were queued.
    deliveries: Arc<Notify>,
    /// Hold tokio's paused test clock during each evaluation (`ServerOptions::hold_clock`).
    hold_clock: bool,
}

impl std::fmt::Debug for Monitor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Monitor").finish_non_exhaustive()
    }
}

impl Monitor {
    /// A monitor over `db`.
    pub fn new(
        db: Db,
        config: Arc<CentralConfig>,
        clock: Arc<dyn Clock>,
        counters: Arc<Counters>,
    ) -> Self {
        Self {
            db,
            config,
            clock,
            counters,
            cache: Mutex::new(Cache::default()),
            nudge: Notify::new(),
            deliveries: Arc::new(Notify::new()),
            hold_clock: false,
        }
    }

    /// For tests on tokio's paused clock: [`Monitor::run`] holds the clock during each
    /// evaluation (see `ServerOptions::hold_clock`).
    #[must_use]
    pub fn with_clock_hold(mut self, hold: bool) -> Self {
        self.hold_clock = hold;
        self
    }

    /// The database.
    pub fn db(&self) -> &Db {
        &self.db
    }

    /// The config.
    pub fn config(&self) -> &CentralConfig {
        &self.config
    }

    /// Now, by the monitor's clock.
    pub fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }

    /// The clock.
    pub fn clock(&self) -> Arc<dyn Clock> {
        Arc::clone(&self.clock)
    }

    /// The counters.
    pub fn counters(&self) -> &Arc<Counters> {
        &self.counters
    }

    /// Notified whenever webhooks were queued (the delivery worker waits on it).
    pub fn deliveries(&self) -> Arc<Notify> {
        Arc::clone(&self.deliveries)
    }

    /// A report of some device was stored: evaluate soon (a report's transitions are
    /// announced within moments, not at the next tick).
    pub fn report_stored(&self) {
        self.nudge.notify_one();
    }

    /// Every device judged now, worst first.
    pub async fn snapshot(&self) -> Result<Snapshot, MonitorError> {
        let at = self.clock.now();
        let rows = self.db.device_rows().await.map_err(MonitorError::Read)?;
        let mut states: HashMap<String, DeviceState> = self
            .db
            .device_states()
            .await
            .map_err(MonitorError::Read)?
            .into_iter()
            .map(|s| (s.device.clone(), s))
            .collect();
        let all: Vec<DeviceState> = states.values().cloned().collect();
        let twins = fleet::guid_twins(&all);
        let mut devices = Vec::with_capacity(rows.len());
        for row in rows {
            // Registered after the states were read: judged with no reports.
            let state = states
                .remove(&row.name)
                .unwrap_or_else(|| blank_state(&row.name));
            let document = self.document_facts(&row).await;
            let checks = self.latest_checks(&state).await?;
            let none = Vec::new();
            let facts = DeviceFacts {
                row: &row,
                state: &state,
                document: document.as_deref(),
                guid_twins: twins.get(&row.name).unwrap_or(&none),
            };
            let standing = fleet::assess(facts, &self.config.fleet, at);
            devices.push(DeviceView {
                row,
                state,
                standing,
                checks,
            });
        }
        let mut standings: Vec<Standing> = devices.iter().map(|d| d.standing.clone()).collect();
        fleet::rank(&mut standings);
        let mut by_name: HashMap<String, DeviceView> = devices
            .into_iter()
            .map(|d| (d.row.name.clone(), d))
            .collect();
        let devices = standings
            .iter()
            .filter_map(|s| by_name.remove(&s.device))
            .collect();
        Ok(Snapshot { at, devices })
    }

    /// The facts of the published document (cached per revision).
    async fn document_facts(&self, row: &DeviceRow) -> Option<Arc<DocumentFacts>> {
        let revision = row.published_revision?;
        {
            let cache = self.cache.lock().unwrap_or_else(PoisonError::into_inner);
            if let Some((cached, facts)) = cache.documents.get(&row.name) {
                if *cached == revision {
                    return Some(Arc::clone(facts));
                }
            }
        }
        let facts = Arc::new(match self.db.document(&row.name).await {
            Ok(Some(doc)) => facts_of(&row.name, doc.revision, &doc.bytes),
            Ok(None) => return None,
            Err(e) => {
                tracing::warn!(device = %row.name, error = %truenas_agent::fault::error_chain(&e),
                    "cannot open the published document; judging the device without its schedule");
                DocumentFacts {
                    revision,
                    backup_schedule: None,
                    guid: None,
                    pools: None,
                }
            }
        });
        let mut cache = self.cache.lock().unwrap_or_else(PoisonError::into_inner);
        cache
            .documents
            .insert(row.name.clone(), (facts.revision, Arc::clone(&facts)));
        Some(facts)
    }

    /// The newest report's checklist (cached per newest report).
    async fn latest_checks(&self, state: &DeviceState) -> Result<Arc<LatestChecks>, MonitorError> {
        if state.report_count == 0 {
            return Ok(Arc::default());
        }
        let key = (state.latest_created_at, state.report_count);
        {
            let cache = self.cache.lock().unwrap_or_else(PoisonError::into_inner);
            if let Some((cached, checks)) = cache.checks.get(&state.device) {
                if *cached == key {
                    return Ok(Arc::clone(checks));
                }
            }
        }
        let latest = self
            .db
            .latest_report(&state.device)
            .await
            .map_err(MonitorError::Read)?;
        let checks = Arc::new(latest.map_or_else(LatestChecks::default, |stored| {
            let report = stored.report;
            LatestChecks {
                failing: report.failing_checks().map(|c| c.id.clone()).collect(),
                titles: report
                    .checklist
                    .iter()
                    .map(|c| (c.id.clone(), c.title.clone()))
                    .collect(),
            }
        }));
        let mut cache = self.cache.lock().unwrap_or_else(PoisonError::into_inner);
        cache
            .checks
            .insert(state.device.clone(), (key, Arc::clone(&checks)));
        Ok(checks)
    }

    /// Judges every device now and announces what changed since the last announcement
    /// (queueing one webhook per event and receiver that wants it).
    pub async fn evaluate(&self) -> Result<Evaluation, MonitorError> {
        Counters::bump(&self.counters.evaluations);
        let snapshot = self.snapshot().await?;
        let stored = self.db.announcements().await.map_err(MonitorError::Read)?;
        let mut done = Evaluation::default();
        for view in &snapshot.devices {
            let name = &view.row.name;
            let next = Announced::of(&view.standing, view.checks.failing.clone());
            let before_text = stored.get(name).map(String::as_str);
            let before = before_text
                .and_then(Announced::from_json)
                .unwrap_or_default();
            if before == next && before_text.is_none_or(|t| Announced::from_json(t).is_some()) {
                continue;
            }
            let hooks = self.webhooks_for(view, &before, &next, snapshot.at);
            let won = self
                .db
                .announce(name, before_text, &next.to_json(), &hooks, snapshot.at)
                .await
                .map_err(|source| MonitorError::Announce {
                    device: name.clone(),
                    source,
                })?;
            if !won {
                done.conflicts += 1;
                Counters::bump(&self.counters.announce_conflicts);
                continue;
            }
            done.announced += 1;
            done.queued += hooks.len();
            Counters::bump(&self.counters.announcements);
            for hook in &hooks {
                tracing::info!(device = %name, event = %hook.event, "queued a webhook");
                Counters::bump(&self.counters.webhooks_queued);
            }
        }
        if done.queued > 0 {
            self.deliveries.notify_one();
        }
        Ok(done)
    }

    /// One outbox entry per transition and receiver that wants its event.
    fn webhooks_for(
        &self,
        view: &DeviceView,
        before: &Announced,
        next: &Announced,
        at: DateTime<Utc>,
    ) -> Vec<NewWebhook> {
        let pools: BTreeSet<String> = view.standing.pools.iter().map(|p| p.pool.clone()).collect();
        let ctx = Context {
            row: &view.row,
            state: &view.state,
            standing: &view.standing,
            checklist_titles: &view.checks.titles,
            public_origin: self.config.dashboard.public_origin.as_deref(),
        };
        let mut hooks = Vec::new();
        for t in transitions(before, next, &pools) {
            let body = alerts::payload(&t, ctx, at);
            for target in self
                .config
                .webhooks
                .iter()
                .filter(|w| w.events.contains(&t.event))
            {
                hooks.push(NewWebhook {
                    event: t.event.name().to_owned(),
                    payload: json!({"target": target.name, "body": body}),
                });
            }
        }
        hooks
    }

    /// Evaluates every `evaluate_interval_secs`, and soon after a report, until
    /// `shutdown`; prunes expired login sessions on the way.
    pub async fn run(self: Arc<Self>, shutdown: CancellationToken) {
        let mut tick = tokio::time::interval(self.config.evaluate_every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                () = self.nudge.notified() => {}
                () = shutdown.cancelled() => return,
            }
            let _hold = crate::clock::TokioHold::new(self.hold_clock);
            match self.evaluate().await {
                Ok(e) if e.announced > 0 => {
                    tracing::debug!(
                        announced = e.announced,
                        queued = e.queued,
                        "fleet evaluated"
                    );
                }
                Ok(_) => {}
                Err(e) => {
                    Counters::bump(&self.counters.evaluation_errors);
                    tracing::warn!(error = %truenas_agent::fault::error_chain(&e), "fleet evaluation failed");
                }
            }
            if let Err(e) = self.db.prune_sessions(self.clock.now()).await {
                tracing::warn!(error = %truenas_agent::fault::error_chain(&e), "cannot prune expired sessions");
            }
        }
    }
}

/// The facts of a document (never kept: only the schedule, GUID and pools leave).
pub fn facts_of(device: &str, revision: u64, bytes: &[u8]) -> DocumentFacts {
    match truenas_agent::desired::parse(bytes) {
        Ok(desired) => {
            let schedule = Schedule::parse(&desired.cloud_sync.schedule)
                .map_err(|e| {
                    tracing::warn!(device, error = %e, "the published Cloud Sync schedule does not parse");
                })
                .ok();
            DocumentFacts {
                revision,
                backup_schedule: schedule,
                guid: desired.device.guid.map(|g| g.to_string()),
                pools: desired.pools.clone(),
            }
        }
        Err(e) => {
            tracing::warn!(
                device,
                problems = e.field_errors().len(),
                "the published document does not validate; judging the device without its schedule"
            );
            DocumentFacts {
                revision,
                backup_schedule: None,
                guid: None,
                pools: None,
            }
        }
    }
}

/// The state of a device that never reported.
pub fn blank_state(device: &str) -> DeviceState {
    DeviceState {
        device: device.to_owned(),
        last_report_at: None,
        latest_created_at: None,
        report_count: 0,
        dropped: DropTally::default(),
        agent_version: None,
        guid: None,
        hostname: None,
        config_revision: None,
        config_state: None,
        config_errors: 0,
        drift: 0,
        checklist_failing: 0,
        checklist_unknown: 0,
        cloud_sync_failing: 0,
        pools: Vec::new(),
    }
}
