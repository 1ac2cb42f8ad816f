//! The running simulator shared by every connection: the core behind a lock, the event
//! bus, the call record, and the tasks that move jobs along.
//!
//! Owns: [`Simulator`] (cheap to clone; every clone is the same box) — the handle tests
//! use to read and change the box "as an admin in the UI would", inject faults, drive
//! jobs, read the call record, open in-process connections ([`Simulator::in_process`])
//! and start the socket server ([`Simulator::serve`]); [`JobTiming`]; [`CallRecord`].
//! Does not: parse wire frames (`wire.rs`, `server.rs`) or decide method outcomes (`core.rs`).
//! Invariants: the core lock is never held across an `.await`; events are broadcast in
//! the order the core produced them; the call record lives in memory only (it holds
//! params, which may hold secrets) and its `Debug` never shows params.
//! Limitations: one box per `Simulator`; time is the wall clock (`now_ms`), so job
//! durations are real durations (tokio's paused clock works for them too).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use serde_json::Value;
use tokio::sync::broadcast;

use super::core::{Core, Event, Reply, RpcError, Session};
use super::faults::{DropWhen, Failure, FaultPlan};
use super::scenario::Scenario;
use truenas_agent::middleware::{ApiFlavor, Method};

/// How jobs progress.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobTiming {
    /// Each job runs on its own: WAITING → RUNNING → 25/50/75 % → SUCCESS|FAILED over
    /// `duration`.
    Auto { duration: Duration },
    /// Jobs stay WAITING until the test runs them ([`Simulator::run_job`]).
    Manual,
}

impl Default for JobTiming {
    fn default() -> Self {
        JobTiming::Auto {
            duration: Duration::from_millis(100),
        }
    }
}

/// How a recorded call ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallOutcome {
    Ok,
    /// Failed with this error (JSON-RPC code or legacy errno, and the errname).
    Err(String),
    /// The connection was dropped instead of answering; `executed` says whether the
    /// call took effect first.
    Dropped {
        executed: bool,
    },
    /// An injected failure answered instead of the method.
    Injected,
}

/// One call the simulator received.
#[derive(Clone, PartialEq)]
pub struct CallRecord {
    /// Connection id (in-process handles count as connections too).
    pub conn: u64,
    pub method: String,
    /// The params as sent. May contain secrets: keep in memory, never print.
    pub params: Vec<Value>,
    pub outcome: CallOutcome,
}

impl CallRecord {
    /// Whether the method changes the box (per [`Method::is_write`]; unknown names are not).
    pub fn is_write(&self) -> bool {
        Method::from_name(&self.method).is_some_and(Method::is_write)
    }
}

impl std::fmt::Debug for CallRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CallRecord")
            .field("conn", &self.conn)
            .field("method", &self.method)
            .field("params", &format_args!("[{} redacted]", self.params.len()))
            .field("outcome", &self.outcome)
            .finish()
    }
}

pub(crate) struct Shared {
    core: Mutex<Core>,
    events: broadcast::Sender<Event>,
    record: Mutex<Vec<CallRecord>>,
    http: Mutex<Vec<super::server::HttpRecord>>,
    timing: Mutex<JobTiming>,
    next_conn: AtomicU64,
    /// The session of calls made on the `Simulator` itself as a `Middleware` (conn 0).
    pub(crate) default_session: Mutex<Session>,
    /// Bumped by `release_holds`; held calls wait for a change.
    holds: tokio::sync::watch::Sender<u64>,
}

/// A simulated TrueNAS middleware (one box). Clones share the box.
#[derive(Clone)]
pub struct Simulator {
    pub(crate) shared: Arc<Shared>,
}

impl std::fmt::Debug for Simulator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Simulator")
            .field("flavor", &self.flavor())
            .finish_non_exhaustive()
    }
}

/// Milliseconds since the epoch, now.
pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panicking test thread must not wedge every other user of the simulator.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Simulator {
    /// A simulator serving `scenario` (its `faults` are armed from the start).
    pub fn new(scenario: Scenario) -> Self {
        let (events, _) = broadcast::channel(4096);
        Self {
            shared: Arc::new(Shared {
                core: Mutex::new(Core::new(scenario)),
                events,
                record: Mutex::new(Vec::new()),
                http: Mutex::new(Vec::new()),
                timing: Mutex::new(JobTiming::default()),
                next_conn: AtomicU64::new(1),
                default_session: Mutex::new(Session::unix(0)),
                holds: tokio::sync::watch::channel(0).0,
            }),
        }
    }

    /// Sets how jobs progress (builder style).
    #[must_use]
    pub fn with_job_timing(self, timing: JobTiming) -> Self {
        *lock(&self.shared.timing) = timing;
        self
    }

    /// The flavour served.
    pub fn flavor(&self) -> ApiFlavor {
        lock(&self.shared.core).flavor()
    }

    /// `system.version_short`.
    pub fn version(&self) -> String {
        let core = lock(&self.shared.core);
        core.state.system.version_short(core.flavor())
    }

    /// The API versions the box serves (`GET /api/versions`; empty on 24.10).
    pub fn api_versions(&self) -> Vec<String> {
        super::routes::api_versions(self.flavor(), &self.version())
    }

    /// Every HTTP request the listeners received (WebSocket upgrades included), oldest
    /// first.
    pub fn http_requests(&self) -> Vec<super::server::HttpRecord> {
        lock(&self.shared.http).clone()
    }

    pub(crate) fn record_http(&self, record: super::server::HttpRecord) {
        lock(&self.shared.http).push(record);
    }

    /// A copy of the box as it is now (faults included).
    pub fn state(&self) -> Scenario {
        let core = lock(&self.shared.core);
        let mut s = core.state.clone();
        s.faults = core.faults.clone();
        s
    }

    /// Changes the box directly, as an admin in the UI would (no call is recorded, no
    /// event is sent).
    pub fn update_state<R>(&self, change: impl FnOnce(&mut Scenario) -> R) -> R {
        let mut core = lock(&self.shared.core);
        let result = change(&mut core.state);
        // A pool added this way gets its root dataset, as on load.
        core.state.normalize();
        result
    }

    /// Changes the armed faults.
    pub fn update_faults<R>(&self, change: impl FnOnce(&mut FaultPlan) -> R) -> R {
        change(&mut lock(&self.shared.core).faults)
    }

    /// Makes the next `cloudsync.sync` job fail with `text` (rclone's output).
    pub fn fail_next_sync(&self, text: &str) {
        self.update_faults(|f| f.sync_failures.push_back(text.to_owned()));
    }

    /// Saves the box to a JSON scenario file (secrets redacted).
    pub fn save(&self, path: &std::path::Path) -> Result<(), super::scenario::ScenarioError> {
        self.state().save(path)
    }

    /// Every call received so far, oldest first.
    pub fn calls(&self) -> Vec<CallRecord> {
        lock(&self.shared.record).clone()
    }

    /// The calls received that change the box.
    pub fn write_calls(&self) -> Vec<CallRecord> {
        self.calls()
            .into_iter()
            .filter(CallRecord::is_write)
            .collect()
    }

    /// Forgets the call record.
    pub fn clear_calls(&self) {
        lock(&self.shared.record).clear();
    }

    /// Every job, as `core.get_jobs` shows it.
    pub fn jobs(&self) -> Vec<Value> {
        lock(&self.shared.core).rendered_jobs()
    }

    /// One job, as `core.get_jobs` shows it.
    pub fn job(&self, id: u64) -> Option<Value> {
        lock(&self.shared.core).render_job(id)
    }

    /// Runs job `id` to its end now (for [`JobTiming::Manual`]). False if it could not
    /// start (not WAITING, or another run of the same task is RUNNING).
    pub fn run_job(&self, id: u64) -> bool {
        self.with_core(|c| {
            let started = c.job_begin(id);
            if started {
                c.job_progress(id, 50, "Transferring");
                c.job_finish(id, now_ms());
            }
            started
        })
    }

    /// Moves WAITING job `id` to RUNNING (for [`JobTiming::Manual`]); see [`Self::run_job`].
    pub fn start_job(&self, id: u64) -> bool {
        self.with_core(|c| c.job_begin(id))
    }

    /// Sets a RUNNING job's progress.
    pub fn set_job_progress(&self, id: u64, percent: i64, description: &str) {
        self.with_core(|c| c.job_progress(id, percent, description));
    }

    /// Ends RUNNING job `id` now, with the outcome the box dictates (injected failure,
    /// bad key, unknown bucket, locked dataset, or success).
    pub fn finish_job(&self, id: u64) {
        self.with_core(|c| c.job_finish(id, now_ms()));
    }

    /// Makes a middleware call as an admin in the web UI would: same validation, same
    /// events, but not in the call record (so "the agent made no writing call" holds).
    pub fn admin_call(&self, method: &str, params: &[Value]) -> Result<Value, RpcError> {
        let mut session = Session::unix(0);
        match self.with_core(|c| c.dispatch(&mut session, method, params, None, now_ms()))? {
            Reply::Value(v) => Ok(v),
            Reply::Job(id) => Ok(Value::from(id)),
        }
    }

    /// Lets every held call (`FaultPlan::holds`) go on, and stops holding new ones.
    pub fn release_holds(&self) {
        self.update_faults(|f| f.holds.clear());
        self.shared.holds.send_modify(|g| *g += 1);
    }

    /// Runs every WAITING job to its end now.
    pub fn run_pending_jobs(&self) {
        let pending = lock(&self.shared.core).pending_jobs();
        for id in pending {
            self.run_job(id);
        }
    }

    /// Starts a run of cloud sync task `task` as its cron entry would (as root); returns
    /// the job id.
    pub fn run_cloud_sync(&self, task: i64) -> Result<u64, RpcError> {
        let mut session = Session::unix(0);
        let reply = self.with_core(|c| {
            c.dispatch(
                &mut session,
                "cloudsync.sync",
                &[Value::from(task)],
                None,
                now_ms(),
            )
        })?;
        match reply {
            Reply::Job(id) => Ok(id),
            Reply::Value(_) => Err(RpcError::Other("not a job".into())),
        }
    }

    /// Runs periodic snapshot task `task` as zettarepl's schedule would (no API call:
    /// the same on every version, also where `pool.snapshottask.run` is a job).
    pub fn run_snapshot_task(&self, task: i64) -> Result<(), RpcError> {
        self.with_core(|c| super::methods::snapshot::run_now(c, task, now_ms()))
    }

    /// Subscribes to every event the box produces.
    pub fn events(&self) -> broadcast::Receiver<Event> {
        self.shared.events.subscribe()
    }

    /// A fresh connection id.
    pub(crate) fn next_conn(&self) -> u64 {
        self.shared.next_conn.fetch_add(1, Ordering::Relaxed)
    }

    pub(crate) fn record(&self, record: CallRecord) {
        lock(&self.shared.record).push(record);
    }

    /// Runs `f` on the core, then broadcasts its events and starts its new jobs.
    ///
    /// With [`JobTiming::Auto`], a new job whose lock is free is RUNNING before the call
    /// that created it answers: middlewared's queue loop (`MW/job.py` `JobsQueue.run`/
    /// `next`) picks a job up as soon as it is queued, long before the caller's next
    /// request. A job whose lock is held stays WAITING (and is what a further call under
    /// that lock gets back).
    pub(crate) fn with_core<R>(&self, f: impl FnOnce(&mut Core) -> R) -> R {
        let timing = *lock(&self.shared.timing);
        // Without a runtime (a plain #[test]), jobs wait to be run by hand.
        let runtime = tokio::runtime::Handle::try_current().is_ok();
        let auto = match (timing, runtime) {
            (JobTiming::Auto { duration }, true) => Some(duration),
            _ => None,
        };
        let (result, events, jobs) = {
            let mut core = lock(&self.shared.core);
            let result = f(&mut core);
            let jobs = core.take_new_jobs();
            if auto.is_some() {
                for id in &jobs {
                    core.job_begin(*id);
                }
            }
            (result, core.take_events(), jobs)
        };
        for e in events {
            // No subscriber is fine: nobody is listening.
            let _ = self.shared.events.send(e);
        }
        if let Some(duration) = auto {
            for id in jobs {
                self.spawn_job(id, duration);
            }
        }
        result
    }

    /// Handles one call for a connection: faults (delay, injected failure, drop before
    /// or after executing), the core, the call record.
    pub(crate) async fn handle(
        &self,
        session: &mut Session,
        method: &str,
        params: Vec<Value>,
        request_id: Option<Value>,
    ) -> Handled {
        let mut released = self.shared.holds.subscribe();
        let fault = self.with_core(|c| c.faults.on_call(method));
        if fault.hold {
            // Any release after the fault was read wakes this call.
            let _ = released.changed().await;
        }
        if !fault.delay.is_zero() {
            tokio::time::sleep(fault.delay).await;
        }
        let conn = session.conn;
        let record = |outcome| CallRecord {
            conn,
            method: method.to_owned(),
            params: params.clone(),
            outcome,
        };
        if fault.drop == Some(DropWhen::Before) {
            self.record(record(CallOutcome::Dropped { executed: false }));
            return Handled::Drop;
        }
        if let Some(f) = fault.fail {
            self.record(record(CallOutcome::Injected));
            return Handled::Reply(Err(injected(&f)));
        }
        let result = self.with_core(|c| c.dispatch(session, method, &params, request_id, now_ms()));
        if fault.drop == Some(DropWhen::After) {
            self.record(record(CallOutcome::Dropped { executed: true }));
            return Handled::Drop;
        }
        let outcome = match &result {
            Ok(_) => CallOutcome::Ok,
            Err(e) => CallOutcome::Err(summary(e)),
        };
        self.record(record(outcome));
        Handled::Reply(result)
    }

    /// Waits until job `id` is terminal (or `timeout`) and returns it rendered.
    pub(crate) async fn wait_job_value(&self, id: u64, timeout: Duration) -> Option<Value> {
        let mut events = self.events();
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let job = self.job(id)?;
            if job
                .get("state")
                .and_then(Value::as_str)
                .is_some_and(|s| matches!(s, "SUCCESS" | "FAILED" | "ABORTED"))
            {
                return Some(job);
            }
            // Poll as a fallback: an event may be missed if the channel lagged.
            let wait = tokio::time::sleep_until(
                deadline.min(tokio::time::Instant::now() + Duration::from_millis(50)),
            );
            tokio::select! {
                _ = events.recv() => {}
                () = wait => {}
            }
            if tokio::time::Instant::now() >= deadline {
                return self.job(id);
            }
        }
    }
}

/// What became of one call.
pub(crate) enum Handled {
    Reply(Result<Reply, RpcError>),
    /// Close the connection without answering.
    Drop,
}

fn injected(f: &Failure) -> RpcError {
    match &f.path {
        Some(path) => RpcError::Invalid(vec![super::schema::Issue {
            path: path.clone(),
            message: f.reason.clone(),
            errno: f.errno,
        }]),
        None => RpcError::Call {
            errno: f.errno,
            message: f.reason.clone(),
            extra: None,
        },
    }
}

/// A short, secret-free description of an error for the call record.
fn summary(e: &RpcError) -> String {
    match e {
        RpcError::Invalid(issues) => format!(
            "EINVAL validation: {}",
            issues
                .iter()
                .map(|i| i.path.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ),
        RpcError::NotFound(_) => "ENOENT".to_owned(),
        RpcError::Call { errno, .. } => super::core::errno::name(*errno).to_owned(),
        RpcError::NotAuthenticated => "ENOTAUTHENTICATED".to_owned(),
        RpcError::NoMethod(_) => "ENOMETHOD".to_owned(),
        RpcError::Other(_) => "EINVAL".to_owned(),
    }
}

impl Simulator {
    fn spawn_job(&self, id: u64, duration: Duration) {
        let sim = self.clone();
        let step = duration / 4;
        tokio::spawn(async move {
            // Wait for the job's turn (one job per lock at a time); it may be RUNNING
            // already (started when it was queued).
            loop {
                let (started, alive) = sim.with_core(|c| {
                    let running = c
                        .jobs
                        .get(&id)
                        .is_some_and(|j| j.state == super::core::JobState::Running);
                    let started = running || c.job_begin(id);
                    let alive = c.jobs.get(&id).is_some_and(|j| !j.state.is_terminal());
                    (started, alive)
                });
                if started {
                    break;
                }
                if !alive {
                    return;
                }
                tokio::time::sleep(step.max(Duration::from_millis(5))).await;
            }
            for pct in [25, 50, 75] {
                tokio::time::sleep(step).await;
                sim.with_core(|c| c.job_progress(id, pct, "Transferring"));
            }
            tokio::time::sleep(step).await;
            sim.with_core(|c| c.job_finish(id, now_ms()));
        });
    }
}
