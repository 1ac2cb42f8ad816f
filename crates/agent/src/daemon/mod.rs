//! The long-running agent (`truenas-agent run`): pull the desired state from central,
//! converge the NAS, report — for days, under systemd.
//!
//! Owns: the loop and its timing. One iteration is: long-poll central (while the
//! background keeps the watchdog, the middleware ping, report deliveries and the
//! middleware's events going) → on a document: validate → identity (the document's GUID
//! wins) → converge (plan on the engine's view of the NAS → apply, or plan only in
//! `report-only`) → health and checklist → report. Between documents the NAS is watched,
//! not polled: events keep the engine's view current, and an event that touches what
//! the document governs runs a pass on the view soon after (debounced,
//! [`DaemonOptions::event_debounce`]), so drift made by hand is repaired within seconds;
//! an event that touches health assesses the view again and reports when it changed.
//! A full read of the NAS (a resync pass) runs after every (re)subscription, after missed
//! events, after a failed pass ([`reconcile::retry_policy`], from the error's fault) and
//! every [`DaemonOptions::resync_interval`], since what changes behind the middleware's
//! back sends no event; what sends no event at all is polled every
//! [`DaemonOptions::poll_interval`]. It reports on its own schedule from the view (no
//! read), and soon after a watched Cloud Sync job changes state (debounced). It owns the service contract the unit relies on: `READY=1`
//! after the first successful middleware call, `WATCHDOG=1` from the loop itself (also
//! while a step runs), `STATUS=` lines a technician can read, `STOPPING=1`, and a clean
//! exit on SIGTERM/SIGINT (the current step gets a grace period, then is abandoned —
//! `apply` is safe to interrupt — and the spool gets one bounded delivery attempt).
//! Does not: parse, plan, apply or judge health itself (the [`Engine`] does, over the
//! library modules), talk HTTP (the central `Session`), or install signal handlers
//! (`cli::run` cancels the token).
//! Invariants: a refused document writes nothing and is reported (`config.state =
//! refused`, errors with paths) while the previous valid document stays enforced; no
//! secret reaches a log, report or state file (the document's secrets are handed to the
//! report scrub, and only `SecretString`s hold them); every await is bounded (steps by
//! their own timeouts and a pass deadline, deliveries and fetches by the client's); memory
//! stays flat: no growing collection (job states capped, everything else replaced), one
//! middleware client and one HTTP client for the whole run.
//! Limitations: one document at a time (a newer one waits for the current pass); the
//! ETag and the document live in memory only, so a restart fetches the document again.
//!
//! ```text
//! agent.rs      start-up from the config: prepare (token, state) → run with the SOP engine
//! engine.rs     the seam to desired / identity / SOP engine / health (Engine trait)
//! sop.rs        the production Engine over desired / identity / apply / health
//! reconcile.rs  one pass → Result<Next, ReconcileError>; retry_policy by fault
//! memory.rs     what the daemon knows; daemon.json; the STATUS= line
//! report.rs     the report from memory
//! jobs.rs       the middleware event feed; core.get_jobs events → "a watched job changed state"
//! view.rs       the engine's view of the NAS: a full read, then events (and a slow poll)
//! notify.rs     sd_notify
//! ```

pub mod agent;
pub(crate) mod engine;
pub(crate) mod jobs;
pub(crate) mod memory;
pub(crate) mod notify;
pub(crate) mod reconcile;
pub(crate) mod report;
pub mod sop;
pub(crate) mod view;

use std::collections::BTreeSet;
use std::future::Future;
use std::time::Duration;

use chrono::Utc;
use secrecy::SecretString;
use tokio::time::{Instant, Interval, MissedTickBehavior, sleep_until};
use tokio_util::sync::CancellationToken;

pub use engine::{
    Assessed, Engine, EngineError, IdentityPass, Pass, StepOutcome, StepState, Touched,
};
pub use jobs::{ClientFeed, EventFeed, FeedItem, JobUpdate, NasEvents, NoEvents};
pub use memory::{DaemonRecord, Memory, PassOutcome, ReportReason};
pub use notify::{NoNotifier, Notifier, SystemdNotifier};
pub use reconcile::{Cause, Next, PassPlan, ReconcileError, retry_policy};

use crate::central::client::ClientError;
use crate::central::report::{ConfigIssue, ConfigSection, ConfigSource, ConfigState, Mode};
use crate::central::state::{
    ErrorRecord as CentralErrorRecord, FetchOutcome, Refusal as RefusalRecord,
};
use crate::central::{
    CentralStore, ConfigChannel, FetchError, Fetched, Outbox, ReportError, Session,
    VerifiedDocument,
};
use crate::config::CentralConfig;
use crate::fault::Fault;
use crate::fault::error_chain;
use crate::middleware::{CallError, Method, Middleware, calls};
use crate::state_dir::StateDir;
use jobs::JobWatch;
use memory::{CentralLink, PassRecord, ReportNote};

/// Timing of the daemon.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DaemonOptions {
    /// Loop period: the watchdog is petted every tick.
    pub tick: Duration,
    /// Ping the middleware every this many ticks.
    pub ping_every: u32,
    /// A report at least this often (contract §4: at least every poll interval).
    pub report_interval: Duration,
    /// Read the NAS in full and reconcile this often (`[middleware]
    /// resync_interval_secs`): what changes behind the middleware's back sends no event.
    pub resync_interval: Duration,
    /// Without a live event feed, reconcile this often instead (the NAS is then polled).
    pub fallback_interval: Duration,
    /// Wait this long after an event that touches what the document governs before
    /// planning (coalesces the several events of one edit).
    pub event_debounce: Duration,
    /// Read what sends no event (the SNMP configuration, a service's start-at-boot
    /// flag) this often.
    pub poll_interval: Duration,
    /// Wait this long after a watched job changed state before reporting (coalesces
    /// WAITING → RUNNING → SUCCESS of a short run into one report).
    pub job_debounce: Duration,
    /// Deadline of one reconcile pass (identity + observe + plan + apply + re-observe).
    pub pass_timeout: Duration,
    /// Deadline of one health assessment.
    pub assess_timeout: Duration,
    /// On SIGTERM, how long the current step may still run before it is abandoned
    /// (below the unit's `TimeoutStopSec=30s`, leaving room for the final flush).
    pub stop_grace: Duration,
    /// Bound of the final delivery attempt on shutdown.
    pub flush_timeout: Duration,
    /// Wait before subscribing to job events again after the subscription ended.
    pub resubscribe: Duration,
}

impl DaemonOptions {
    /// The production timing: ticks at half the systemd watchdog period (`WatchdogSec=`,
    /// from `$WATCHDOG_USEC`) or every 30 s without one; reports at the configured report
    /// interval; a full read every 6 hours (set [`DaemonOptions::resync_interval`] from
    /// the agent config's `[middleware] resync_interval_secs`).
    pub fn new(watchdog: Option<Duration>, central: &CentralConfig) -> Self {
        let tick = watchdog.map_or(Duration::from_secs(30), |w| {
            (w / 2).clamp(Duration::from_secs(1), Duration::from_secs(30))
        });
        // About once a minute.
        let ping_every = u32::try_from((60 / tick.as_secs().max(1)).max(1)).unwrap_or(1);
        Self {
            tick,
            ping_every,
            report_interval: central.report_interval,
            resync_interval: crate::config::DEFAULT_RESYNC_INTERVAL,
            fallback_interval: central.report_interval,
            event_debounce: Duration::from_secs(2),
            poll_interval: Duration::from_secs(3600),
            job_debounce: Duration::from_secs(10),
            pass_timeout: Duration::from_secs(30 * 60),
            assess_timeout: Duration::from_secs(5 * 60),
            stop_grace: Duration::from_secs(20),
            flush_timeout: Duration::from_secs(5),
            resubscribe: Duration::from_secs(30),
        }
    }
}

/// What the daemon drives. All borrowed: the caller owns the connections.
pub struct Services<'a, E, M, J, N> {
    pub engine: &'a E,
    /// For the liveness ping (the engine has its own handle on the same client).
    pub middleware: &'a M,
    /// The middleware's events (job changes, and the collections the engine watches).
    pub events: &'a J,
    pub notifier: &'a N,
    pub state: &'a StateDir,
}

/// Why the daemon stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error("cannot confirm the middleware connection at start-up")]
    Startup(#[source] CallError),
}

impl DaemonError {
    /// Who has to act.
    pub fn fault(&self) -> Fault {
        match self {
            DaemonError::Startup(e) => e.fault(),
        }
    }
}

/// Runs until `shutdown` is cancelled. The middleware is already connected and the
/// central session open (its token file checked).
pub async fn run<E, M, J, N>(
    services: Services<'_, E, M, J, N>,
    session: Session,
    options: DaemonOptions,
    shutdown: &CancellationToken,
) -> Result<(), DaemonError>
where
    E: Engine,
    M: Middleware,
    J: NasEvents,
    N: Notifier,
{
    let api = services.middleware.api();
    // One round trip before READY=1: "active" means the agent can talk to TrueNAS.
    ping(services.middleware, options.tick)
        .await
        .map_err(DaemonError::Startup)?;
    tracing::info!(
        version = crate::VERSION,
        truenas = %api.version,
        api = %api.flavor,
        transport = ?api.transport,
        "truenas-agent started"
    );
    services.notifier.ready(&format!(
        "connected to TrueNAS {} ({:?})",
        api.version, api.transport
    ));
    let Session {
        config: mut channel,
        outbox,
        store,
    } = session;
    let mut daemon = Daemon::new(services, options, shutdown, outbox, store);
    daemon.start().await;
    let mut poll_at = Instant::now();
    while !shutdown.is_cancelled() && !daemon.abandoned {
        let wake = if Instant::now() >= poll_at {
            tokio::select! {
                biased;
                () = shutdown.cancelled() => break,
                due = daemon.background() => Wake::Due(due),
                poll = channel.poll() => Wake::Polled(poll.result, poll.next_in),
            }
        } else {
            tokio::select! {
                biased;
                () = shutdown.cancelled() => break,
                due = daemon.background() => Wake::Due(due),
                () = sleep_until(poll_at) => continue,
            }
        };
        match wake {
            Wake::Polled(result, next_in) => {
                poll_at = Instant::now() + next_in;
                daemon.on_poll(result, &mut channel).await;
            }
            Wake::Due(Due::Reconcile(kind)) => daemon.run_pass(kind).await,
            Wake::Due(Due::Report(reason, force)) => daemon.assess_and_report(reason, force).await,
            Wake::Due(Due::Poll) => daemon.poll().await,
        }
    }
    daemon.stop().await;
    Ok(())
}

/// What woke the loop.
enum Wake {
    Polled(Result<Fetched, FetchError>, Duration),
    Due(Due),
}

/// Work the background asks the loop to do (outside the droppable background future).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Due {
    Reconcile(PassKind),
    /// Assess and report; `force`: even when health did not change.
    Report(ReportReason, bool),
    /// Read what sends no event.
    Poll,
}

/// How a pass sees the NAS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PassKind {
    /// Read it in full first (identity included): a resync.
    Full,
    /// Plan on the engine's view, kept current by events: a repair.
    Event,
}

/// The document being enforced.
struct Current<D> {
    desired: D,
    revision: u64,
    /// A pass of this revision ran to the end in this process (later passes are drift
    /// checks), or central.json already recorded it as applied.
    applied: bool,
}

/// When each kind of background work is next due.
#[expect(
    clippy::struct_field_names,
    reason = "each field is the instant something is due"
)]
struct Timers {
    /// The next full pass (resync, or a retry after a failure).
    reconcile_at: Option<Instant>,
    /// The next pass on the view, after an event touched what the document governs.
    event_pass_at: Option<Instant>,
    report_at: Instant,
    deliver_at: Option<Instant>,
    job_report_at: Option<Instant>,
    /// An assessment after an event touched health (reported when it changed).
    health_at: Option<Instant>,
    poll_at: Instant,
    resubscribe_at: Option<Instant>,
}

struct Daemon<'a, E: Engine, M, J: NasEvents, N> {
    s: Services<'a, E, M, J, N>,
    opts: DaemonOptions,
    shutdown: &'a CancellationToken,
    outbox: Outbox,
    store: CentralStore,
    memory: Memory,
    current: Option<Current<E::Desired>>,
    ticker: Interval,
    ticks: u32,
    timers: Timers,
    feed: Option<J::Feed>,
    watch: JobWatch,
    watched: BTreeSet<u64>,
    /// Shutdown interrupted a step past its grace period.
    abandoned: bool,
    /// The scheduled report was handed to the periodic pass due shortly (see
    /// [`Daemon::report_due_soon`]).
    report_with_next_pass: bool,
    /// Event passes in a row that wrote something: each waits twice as long as the
    /// one before (a box someone or something keeps changing back is not fought every
    /// few seconds).
    writing_event_passes: u32,
    /// The feed ended or lagged: read the NAS in full once events flow again.
    resync_on_subscribe: bool,
}

impl<'a, E, M, J, N> Daemon<'a, E, M, J, N>
where
    E: Engine,
    M: Middleware,
    J: NasEvents,
    N: Notifier,
{
    fn new(
        s: Services<'a, E, M, J, N>,
        opts: DaemonOptions,
        shutdown: &'a CancellationToken,
        outbox: Outbox,
        store: CentralStore,
    ) -> Self {
        let mut ticker = tokio::time::interval(opts.tick);
        ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let now = Instant::now();
        let memory = Memory {
            pending_reports: outbox.pending(),
            ..Memory::default()
        };
        Self {
            timers: Timers {
                reconcile_at: None,
                event_pass_at: None,
                report_at: now + opts.report_interval,
                // Reports left in the spool by an earlier run go out at once.
                deliver_at: (outbox.pending() > 0).then_some(now),
                job_report_at: None,
                health_at: None,
                poll_at: now + opts.poll_interval,
                // `start` subscribes before its first read.
                resubscribe_at: None,
            },
            s,
            opts,
            shutdown,
            outbox,
            store,
            memory,
            current: None,
            ticker,
            ticks: 0,
            feed: None,
            watch: JobWatch::default(),
            watched: BTreeSet::new(),
            abandoned: false,
            report_with_next_pass: false,
            writing_event_passes: 0,
            resync_on_subscribe: false,
        }
    }

    /// What central hears first: the box as it is, before any document. Nothing is
    /// written before central has said `enforce`.
    async fn start(&mut self) {
        self.memory.started_at = Some(Utc::now());
        // Events first, then the first read: nothing that changes in between is missed.
        self.subscribe().await;
        self.watched = self.s.engine.watched_tasks();
        let identity =
            tokio::time::timeout(self.opts.pass_timeout, self.s.engine.identity(None, false));
        match self.keepalive(identity).await {
            Some(Ok(Ok(identity))) => self.memory.identity = Some(identity),
            Some(Ok(Err(e))) => self.memory.note_error(e.fault(), error_chain(&e)),
            Some(Err(_)) => self.memory.note_error(
                Fault::Transient,
                "reading the device identity timed out".to_owned(),
            ),
            None => return,
        }
        self.assess_and_report(ReportReason::Start, true).await;
    }

    /// Runs `fut` while petting the watchdog; on shutdown it gets `stop_grace` to finish.
    /// `None`: abandoned (the caller must stop).
    async fn keepalive<F: Future>(&mut self, fut: F) -> Option<F::Output> {
        let out = keepalive(
            fut,
            &mut self.ticker,
            self.s.notifier,
            self.shutdown,
            self.opts.stop_grace,
        )
        .await;
        if out.is_none() {
            self.abandoned = true;
        }
        out
    }

    /// Keeps the service alive until there is work for the loop: pets the watchdog,
    /// pings the middleware, retries deliveries, follows job events. Cancel-safe (its
    /// state lives in `self`; an interrupted delivery loses nothing).
    async fn background(&mut self) -> Due {
        loop {
            tokio::select! {
                biased;
                _ = self.ticker.tick() => self.on_tick().await,
                () = sleep_until_opt(self.timers.reconcile_at) => {
                    self.timers.reconcile_at = None;
                    return Due::Reconcile(PassKind::Full);
                }
                () = sleep_until_opt(self.timers.event_pass_at) => {
                    self.timers.event_pass_at = None;
                    return Due::Reconcile(PassKind::Event);
                }
                () = sleep_until_opt(self.timers.job_report_at) => {
                    self.timers.job_report_at = None;
                    return Due::Report(ReportReason::JobChanged, true);
                }
                () = sleep_until_opt(self.timers.health_at) => {
                    self.timers.health_at = None;
                    return Due::Report(ReportReason::NasChanged, false);
                }
                () = sleep_until(self.timers.poll_at) => {
                    self.timers.poll_at = Instant::now() + self.opts.poll_interval;
                    return Due::Poll;
                }
                () = sleep_until(self.timers.report_at) => {
                    let now = Instant::now();
                    self.timers.report_at = now + self.opts.report_interval;
                    // A periodic pass due shortly assesses health anyway: it carries
                    // this report instead of a second full read of the NAS.
                    let pass_soon = self
                        .timers
                        .reconcile_at
                        .is_some_and(|at| at <= now + self.pairing_window());
                    if self.current.is_some() && pass_soon {
                        self.report_with_next_pass = true;
                        continue;
                    }
                    return Due::Report(ReportReason::Schedule, true);
                }
                () = sleep_until_opt(self.timers.deliver_at) => self.deliver().await,
                () = sleep_until_opt(self.timers.resubscribe_at) => self.subscribe().await,
                item = next_item(&mut self.feed) => self.on_feed_item(item),
            }
        }
    }

    async fn on_tick(&mut self) {
        self.s.notifier.watchdog();
        self.ticks = self.ticks.wrapping_add(1);
        if self.ticks % self.opts.ping_every != 0 {
            return;
        }
        match (
            ping(self.s.middleware, self.opts.tick).await,
            &self.memory.middleware_down,
        ) {
            (Ok(()), None) => {}
            (Ok(()), Some(_)) => {
                tracing::info!("middleware reachable again");
                self.memory.middleware_down = None;
                self.publish_status();
            }
            (Err(e), was) => {
                if was.is_none() {
                    tracing::warn!(error = %e, "middleware not answering");
                }
                self.memory.middleware_down = Some(e.to_string());
                self.publish_status();
            }
        }
    }

    async fn subscribe(&mut self) {
        self.timers.resubscribe_at = None;
        let names = self.s.engine.event_names();
        match self.keepalive(self.s.events.subscribe(names)).await {
            Some(Ok(feed)) => {
                self.feed = Some(feed);
                if std::mem::take(&mut self.resync_on_subscribe) {
                    // What changed while no event reached us (a reconnect, a middleware
                    // restart) is only seen by reading the NAS again.
                    tracing::info!(
                        "following the middleware's events again; reading the NAS in full"
                    );
                    self.resync_soon();
                }
            }
            Some(Err(e)) => {
                tracing::debug!(error = %error_chain(&e), "cannot follow the middleware's events yet");
                self.timers.resubscribe_at = Some(Instant::now() + self.opts.resubscribe);
            }
            None => {}
        }
    }

    /// Forgets the engine's view and, with a document, runs a full pass now.
    fn resync_soon(&mut self) {
        self.s.engine.resync();
        if self.current.is_some() {
            self.timers.event_pass_at = None;
            self.timers.reconcile_at = Some(Instant::now());
        }
    }

    fn on_feed_item(&mut self, item: FeedItem) {
        match item {
            FeedItem::Event(event) => self.on_event(&event),
            FeedItem::Lagged => {
                tracing::info!("middleware events were missed; reading the NAS in full");
                self.resync_soon();
            }
            FeedItem::Ended => {
                self.feed = None;
                self.resync_on_subscribe = true;
                self.timers.resubscribe_at = Some(Instant::now() + self.opts.resubscribe);
            }
        }
    }

    fn on_event(&mut self, event: &crate::middleware::Event) {
        if event.collection == crate::middleware::jobs::EVENT {
            if let Some(update) = jobs::job_update(event) {
                if self.watch.changed(&update, &self.watched) {
                    tracing::info!(job = update.job_id, task = ?update.task_id, state = ?update.state, "cloud sync job changed state");
                    if self.timers.job_report_at.is_none() {
                        self.timers.job_report_at = Some(Instant::now() + self.opts.job_debounce);
                    }
                }
            }
        }
        let touched = self.s.engine.on_event(event);
        let now = Instant::now();
        if touched.plan && self.current.is_some() {
            self.schedule_event_pass(now);
        } else if touched.health && self.timers.health_at.is_none() {
            self.timers.health_at = Some(now + self.opts.job_debounce);
        }
    }

    /// A pass on the view after the debounce — unless a full pass (a retry, a resync)
    /// comes first anyway, and never sooner than the back-off of event passes that kept
    /// writing.
    fn schedule_event_pass(&mut self, now: Instant) {
        let backoff = self
            .opts
            .event_debounce
            .saturating_mul(1u32 << self.writing_event_passes.min(10))
            .min(self.opts.fallback_interval.max(self.opts.event_debounce));
        let at = now + backoff;
        if self.timers.reconcile_at.is_some_and(|full| full <= at) {
            return;
        }
        if self.timers.event_pass_at.is_none_or(|t| t > at) {
            self.timers.event_pass_at = Some(at);
        }
    }

    /// Reads what sends no event; plans or assesses when it changed.
    async fn poll(&mut self) {
        match self.keepalive(self.s.engine.poll()).await {
            Some(Ok(touched)) => {
                if touched.plan && self.current.is_some() {
                    self.schedule_event_pass(Instant::now());
                } else if touched.health && self.timers.health_at.is_none() {
                    self.timers.health_at = Some(Instant::now());
                }
            }
            Some(Err(e)) => self.memory.note_error(e.fault(), error_chain(&e)),
            None => {}
        }
    }

    /// Handles one answer from central.
    async fn on_poll(&mut self, result: Result<Fetched, FetchError>, channel: &mut ConfigChannel) {
        match result {
            Ok(Fetched::New(doc)) => {
                self.link(CentralLink::Ok);
                self.on_document(doc, false, channel).await;
            }
            Ok(Fetched::Same(doc)) => {
                self.link(CentralLink::Ok);
                if self
                    .current
                    .as_ref()
                    .is_none_or(|c| c.revision != doc.revision)
                {
                    self.on_document(doc, true, channel).await;
                } else if self.memory.refusal.is_some() {
                    // Central serves the enforced document again, correctly verified:
                    // the refusal of what it served in between is over.
                    tracing::info!(
                        revision = doc.revision,
                        "the enforced document verifies again; the earlier refusal is cleared"
                    );
                    self.memory.refusal = None;
                    self.publish_status();
                    self.assess_and_report(ReportReason::RefusalCleared, true)
                        .await;
                }
            }
            Ok(Fetched::Unchanged) => self.link(CentralLink::Ok),
            Ok(Fetched::NoDocument) => {
                self.link(CentralLink::Ok);
                self.unassigned().await;
            }
            Err(e) if e.is_refusal() => {
                self.link(CentralLink::Ok);
                let revision = e.refused_revision();
                let path = match &e {
                    FetchError::Envelope(_) => "(envelope)",
                    FetchError::Request(_)
                    | FetchError::BadRevision { .. }
                    | FetchError::Rollback { .. }
                    | FetchError::SameRevisionChanged { .. }
                    | FetchError::State(_) => "revision",
                };
                let issue = ConfigIssue {
                    path: path.to_owned(),
                    message: error_chain(&e),
                };
                // The channel already recorded this refusal in central.json.
                self.refuse(revision, vec![issue], None).await;
            }
            Err(e) if e.is_token_rejected() => self.link(CentralLink::TokenRejected),
            Err(_) => self.link(CentralLink::Unreachable),
        }
    }

    /// A verified document: validate it, then converge to it.
    async fn on_document(
        &mut self,
        doc: VerifiedDocument,
        seen_before: bool,
        channel: &mut ConfigChannel,
    ) {
        let revision = doc.revision;
        let desired = match self.s.engine.validate(doc.payload()) {
            Ok(desired) => desired,
            Err(issues) => {
                let fault = Fault::Operator;
                self.refuse(Some(revision), issues, Some(fault)).await;
                return;
            }
        };
        let mode = self.s.engine.mode(&desired);
        // Nothing the process logs from now on may show the document's secrets.
        crate::scrub::remember_all(self.s.engine.secrets(&desired));
        tracing::info!(revision, mode = ?mode, "accepted desired-state document");
        // Accepted for enforcement: later documents must have a higher revision, even
        // if this pass does not finish (the plan is state-based, so the next pass of
        // this revision completes it). A report-only document is not applied.
        if mode == Mode::Enforce && !seen_before {
            if let Err(e) = channel.mark_applied(&doc) {
                self.memory.note_error(e.fault(), error_chain(&e));
            }
        }
        drop(doc);
        self.memory.config_source = ConfigSource::Central;
        self.memory.refusal = None;
        self.current = Some(Current {
            desired,
            revision,
            applied: seen_before,
        });
        // A new document plans on the view (kept current by events) after identity.
        self.run_pass(PassKind::Event).await;
    }

    /// A refused document: nothing is written; the refusal is recorded and reported,
    /// and the previous valid document (if any) stays enforced.
    async fn refuse(
        &mut self,
        revision: Option<u64>,
        errors: Vec<ConfigIssue>,
        record: Option<Fault>,
    ) {
        tracing::warn!(
            revision = ?revision,
            problems = errors.len(),
            paths = ?errors.iter().map(|e| e.path.as_str()).collect::<Vec<_>>(),
            "refused the document from central; nothing was written"
        );
        if let Some(fault) = record {
            let reason = errors
                .iter()
                .map(|e| format!("{}: {}", e.path, e.message))
                .collect::<Vec<_>>()
                .join("; ");
            // The channel recorded a received document; from the agent's point of view
            // that fetch ended in a refusal (what `status` shows).
            let at = Utc::now();
            let reason = format!("invalid document: {reason}");
            let written = self.store.update(|s| {
                s.counters.documents_refused += 1;
                if let Some(fetch) = &mut s.last_fetch {
                    fetch.outcome = FetchOutcome::Refused;
                }
                s.last_refusal = Some(RefusalRecord {
                    at,
                    revision,
                    reason: reason.clone(),
                    fault,
                    cleared_at: None,
                });
                s.last_error = Some(CentralErrorRecord {
                    at,
                    fault,
                    message: reason,
                });
            });
            if let Err(e) = written {
                tracing::warn!(error = %error_chain(&e), "cannot record the refusal in central.json");
            }
        }
        let refusal = memory::Refusal { revision, errors };
        if self.memory.refusal.as_ref() == Some(&refusal) {
            return; // the same refusal again (e.g. after a restart): already reported
        }
        self.memory.config_source = ConfigSource::Central;
        self.memory.refusal = Some(refusal);
        self.publish_status();
        self.assess_and_report(ReportReason::Refusal, true).await;
    }

    /// 204/404: no document is assigned; stop enforcing (once).
    async fn unassigned(&mut self) {
        if self.current.is_none()
            && self.memory.refusal.is_none()
            && self.memory.config.state == ConfigState::None
        {
            return;
        }
        tracing::info!("central has no document for this device; enforcing nothing");
        self.current = None;
        self.timers.reconcile_at = None;
        self.memory.enforcing = None;
        self.memory.refusal = None;
        self.memory.config = ConfigSection::default();
        self.memory.config_source = ConfigSource::None;
        self.publish_status();
        self.assess_and_report(ReportReason::Pass, true).await;
    }

    /// One reconcile pass of the current document, then health and a report.
    async fn run_pass(&mut self, kind: PassKind) {
        let Some(current) = &self.current else {
            return;
        };
        let (revision, cause) = (
            current.revision,
            if current.applied {
                Cause::Recheck
            } else {
                Cause::NewRevision
            },
        );
        if kind == PassKind::Full {
            self.s.engine.resync();
            self.timers.event_pass_at = None;
        }
        // The device identity is read (and, in `enforce`, ensured) on full passes and
        // for a new document; a repair after an event plans on the view alone.
        let identity = kind == PassKind::Full || cause == Cause::NewRevision;
        self.s
            .notifier
            .status(&format!("reconciling revision {revision}"));
        let pass = tokio::time::timeout(
            self.opts.pass_timeout,
            reconcile::reconcile(
                self.s.engine,
                &current.desired,
                reconcile::PassPlan { cause, identity },
                self.opts.resync_interval,
                &mut self.memory,
            ),
        );
        let out = keepalive(
            pass,
            &mut self.ticker,
            self.s.notifier,
            self.shutdown,
            self.opts.stop_grace,
        )
        .await;
        let result = match out {
            Some(Ok(result)) => result,
            Some(Err(_)) => Err(ReconcileError::TimedOut {
                revision,
                after: self.opts.pass_timeout,
            }),
            None => {
                self.abandoned = true;
                self.memory.last_pass = Some(PassRecord {
                    at: Utc::now(),
                    revision,
                    outcome: PassOutcome::Abandoned,
                    written: 0,
                    failed: 0,
                    next_at: None,
                });
                self.memory.save(self.s.state);
                return;
            }
        };
        let next = self.settle(revision, &result);
        let wrote = self
            .memory
            .last_pass
            .as_ref()
            .is_some_and(|p| p.written > 0);
        self.writing_event_passes = match (kind, wrote) {
            (PassKind::Event, true) => self.writing_event_passes.saturating_add(1),
            _ => 0,
        };
        let now = Instant::now();
        self.timers.reconcile_at = match (result.is_ok(), kind, next) {
            (_, _, Next::NewDocument) => None,
            // A repair keeps the resync schedule (a full pass is due anyway).
            (true, PassKind::Event, Next::After(d)) => {
                Some(self.timers.reconcile_at.unwrap_or(now + d))
            }
            // Without events, the NAS is polled.
            (true, PassKind::Full, Next::After(d)) if self.feed.is_none() => {
                Some(now + d.min(self.opts.fallback_interval))
            }
            // A failure is retried by a full pass after the policy's delay; a full pass
            // that went well comes back at the resync interval.
            (_, _, Next::After(d)) => Some(now + d),
        };
        if let Some(last) = &mut self.memory.last_pass {
            last.next_at = self.timers.reconcile_at.and_then(|at| {
                chrono::Duration::from_std(at.saturating_duration_since(now))
                    .ok()
                    .map(|d| Utc::now() + d)
            });
        }
        self.watched = self.s.engine.watched_tasks();
        self.publish_status();
        let force = cause == Cause::NewRevision
            || wrote
            || result.is_err()
            || std::mem::take(&mut self.report_with_next_pass)
            || self.report_due_soon();
        self.assess_and_report(ReportReason::Pass, force).await;
    }

    /// How close a scheduled report and a full pass must be to share one health
    /// assessment: half the report interval, at most the resync interval.
    fn pairing_window(&self) -> Duration {
        (self.opts.report_interval / 2).min(self.opts.resync_interval)
    }

    /// Whether the scheduled report is due within [`Daemon::pairing_window`]: then the
    /// pass that just assessed health sends it now (early, never late), which lines the
    /// report timer up with the passes — one read of the NAS per cycle, not two.
    fn report_due_soon(&self) -> bool {
        self.timers.report_at <= Instant::now() + self.pairing_window()
    }

    /// Records a pass result; returns when to come back.
    fn settle(&mut self, revision: u64, result: &Result<Next, ReconcileError>) -> Next {
        match result {
            Ok(next) => {
                self.memory.failures = 0;
                if let Some(c) = &mut self.current {
                    c.applied = true;
                }
                tracing::info!(revision, state = ?self.memory.config.state, "reconcile pass finished");
                *next
            }
            Err(e) => {
                self.memory.failures = self.memory.failures.saturating_add(1);
                match e {
                    // The pass never got to a plan: say so in the report.
                    ReconcileError::Identity(_)
                    | ReconcileError::Converge { .. }
                    | ReconcileError::TimedOut { .. } => {
                        self.memory.config = ConfigSection {
                            revision: Some(revision),
                            state: ConfigState::Failed,
                            errors: vec![ConfigIssue {
                                path: "(pass)".to_owned(),
                                message: error_chain(e),
                            }],
                            changes: Vec::new(),
                            drift: Vec::new(),
                            // No pass ran: what was executed before still stands.
                            executed_actions: std::mem::take(
                                &mut self.memory.config.executed_actions,
                            ),
                        };
                        self.memory.last_pass = Some(PassRecord {
                            at: Utc::now(),
                            revision,
                            outcome: PassOutcome::Failed,
                            written: 0,
                            failed: 0,
                            next_at: None,
                        });
                    }
                    ReconcileError::Aborted { .. }
                    | ReconcileError::StepsFailed { .. }
                    | ReconcileError::Blocked { .. } => {
                        if let Some(c) = &mut self.current {
                            c.applied = true;
                        }
                    }
                }
                self.memory.note_error(e.fault(), error_chain(e));
                reconcile::backed_off(retry_policy(e), self.memory.failures)
            }
        }
    }

    /// Assesses health; reports when `force`d, for reasons that always report, or when
    /// the health changed since the last report.
    async fn assess_and_report(&mut self, reason: ReportReason, force: bool) {
        let desired = self.current.as_ref().map(|c| &c.desired);
        let assess = tokio::time::timeout(self.opts.assess_timeout, self.s.engine.assess(desired));
        let out = keepalive(
            assess,
            &mut self.ticker,
            self.s.notifier,
            self.shutdown,
            self.opts.stop_grace,
        )
        .await;
        match out {
            Some(Ok(Ok(assessed))) => self.memory.assessed = Some(assessed),
            Some(Ok(Err(e))) => self.memory.note_error(e.fault(), error_chain(&e)),
            Some(Err(_)) => self.memory.note_error(
                Fault::Transient,
                format!(
                    "the health assessment did not finish within {:?}",
                    self.opts.assess_timeout
                ),
            ),
            None => {
                self.abandoned = true;
                return;
            }
        }
        let signature = self.memory.assessed.as_ref().map(Assessed::signature);
        let changed = signature != self.memory.reported_signature;
        let always = match reason {
            ReportReason::Start
            | ReportReason::Refusal
            | ReportReason::RefusalCleared
            | ReportReason::Schedule
            | ReportReason::JobChanged => true,
            ReportReason::Pass | ReportReason::NasChanged => false,
        };
        if force || always || changed {
            self.memory.reported_signature = signature;
            self.report(reason).await;
        }
    }

    /// Queues a report (durably) and delivers unless central asked us to wait.
    async fn report(&mut self, reason: ReportReason) {
        let report = report::build(&self.memory, Utc::now());
        // The document's secrets and every other secret the process met (the NAS's own
        // task passwords, credential keys and SNMP secrets, the token).
        let known = crate::scrub::known();
        let mut secrets: Vec<&SecretString> = self
            .current
            .as_ref()
            .map(|c| self.s.engine.secrets(&c.desired))
            .unwrap_or_default();
        secrets.extend(known.secrets());
        match self.outbox.enqueue(&report, &secrets) {
            Ok(_) => {
                tracing::info!(report_id = %report.report_id, reason = ?reason, config = ?report.config.state, "report queued");
                self.memory.last_report = Some(ReportNote {
                    at: report.created_at,
                    report_id: report.report_id,
                    reason,
                    pending: self.outbox.pending(),
                });
            }
            Err(e) => self.memory.note_error(e.fault(), error_chain(&e)),
        }
        self.timers.report_at = Instant::now() + self.opts.report_interval;
        let now = Instant::now();
        if self.timers.deliver_at.is_none_or(|at| at <= now) {
            self.deliver().await;
        } else {
            self.memory.pending_reports = self.outbox.pending();
            self.publish_status();
        }
    }

    /// One delivery round.
    async fn deliver(&mut self) {
        self.timers.deliver_at = None;
        let delivery = keepalive(
            self.outbox.deliver(),
            &mut self.ticker,
            self.s.notifier,
            self.shutdown,
            self.opts.stop_grace,
        )
        .await;
        let Some(delivery) = delivery else {
            self.abandoned = true;
            return;
        };
        self.timers.deliver_at = delivery.retry_in.map(|d| Instant::now() + d);
        self.memory.pending_reports = delivery.pending;
        if let Some(note) = &mut self.memory.last_report {
            note.pending = delivery.pending;
        }
        let link = match &delivery.error {
            None => CentralLink::Ok,
            Some(ReportError::Send(ClientError::TokenRejected { .. })) => {
                CentralLink::TokenRejected
            }
            Some(ReportError::Send(e)) if e.fault() == Fault::Transient => CentralLink::Unreachable,
            Some(e) => {
                self.memory.note_error(e.fault(), error_chain(e));
                self.memory.central
            }
        };
        self.memory.central = link;
        self.publish_status();
    }

    fn link(&mut self, link: CentralLink) {
        if self.memory.central != link {
            self.memory.central = link;
            self.publish_status();
        }
    }

    fn publish_status(&self) {
        self.s.notifier.status(&memory::status_line(&self.memory));
        self.memory.save(self.s.state);
    }

    /// Shutdown: `STOPPING=1`, one bounded delivery attempt, the final `daemon.json`.
    async fn stop(mut self) {
        tracing::info!("stopping");
        self.s.notifier.stopping();
        if self.outbox.pending() > 0 {
            let flush = tokio::time::timeout(self.opts.flush_timeout, self.outbox.deliver());
            if let Ok(d) = flush.await {
                tracing::info!(
                    delivered = d.delivered,
                    pending = d.pending,
                    "flushed the report spool"
                );
            } else {
                tracing::warn!(
                    pending = self.outbox.pending(),
                    "could not flush the report spool in time; reports stay queued"
                );
            }
        }
        self.memory.pending_reports = self.outbox.pending();
        self.memory.save(self.s.state);
        memory::record_stop(self.s.state, None);
    }
}

/// Runs `fut` while petting the watchdog every tick. On shutdown, `fut` gets `grace` to
/// finish; `None` when it did not (abandoned: every step is safe to interrupt).
async fn keepalive<F: Future>(
    fut: F,
    ticker: &mut Interval,
    notifier: &impl Notifier,
    shutdown: &CancellationToken,
    grace: Duration,
) -> Option<F::Output> {
    tokio::pin!(fut);
    let mut deadline: Option<Instant> = None;
    loop {
        tokio::select! {
            biased;
            out = &mut fut => return Some(out),
            _ = ticker.tick() => notifier.watchdog(),
            () = shutdown.cancelled(), if deadline.is_none() => {
                tracing::info!(?grace, "shutdown requested: letting the current step finish");
                notifier.status("stopping: finishing the current step");
                deadline = Some(Instant::now() + grace);
            }
            () = sleep_until_opt(deadline) => {
                tracing::warn!("the current step did not finish in time; abandoning it");
                return None;
            }
        }
    }
}

async fn sleep_until_opt(at: Option<Instant>) {
    match at {
        Some(at) => sleep_until(at).await,
        None => std::future::pending().await,
    }
}

async fn next_item<F: EventFeed>(feed: &mut Option<F>) -> FeedItem {
    match feed {
        Some(feed) => feed.next().await,
        None => std::future::pending().await,
    }
}

async fn ping(mw: &impl Middleware, limit: Duration) -> Result<(), CallError> {
    match tokio::time::timeout(limit, mw.call(calls::ping())).await {
        Ok(result) => result.map(drop),
        Err(_) => Err(CallError::Timeout {
            method: Method::CorePing,
            after: limit,
        }),
    }
}

#[cfg(test)]
mod tests;
