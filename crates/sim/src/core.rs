//! The simulated middleware itself, without I/O: a call in, a result or an error out.
//!
//! Owns: [`Core`] — the box ([`Scenario`]), the live jobs, the event outbox — and
//! [`Core::dispatch`], which does what middlewared does with one call: method lookup per
//! version, authentication, params validation (`validate.rs`), then the handler
//! (`methods/`). Also the job lifecycle the shell drives ([`Core::job_begin`],
//! [`Core::job_progress`], [`Core::job_finish`]) and alerts.
//! Does not: touch sockets, sleep, or read the clock: the shell passes `now_ms` in and
//! drains [`Core::take_events`] / [`Core::take_new_jobs`] after each step.
//! Invariants: a call that fails validation changes nothing (handlers validate
//! everything before the first write); every state change emits the event the real
//! middleware emits; job ids are increasing; a job reaches exactly one terminal state.
//! Limitations: no cron scheduler — tasks run only when asked (`cloudsync.sync`,
//! `pool.snapshottask.run`, or the test handle); no roles beyond "logged in = full admin".

use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::faults::FaultPlan;
use super::methods;
use super::scenario::{Alert, Scenario};
use super::schema::Issue;
use super::validate::{self, ParamsError};
use truenas_agent::middleware::ApiFlavor;

/// One connection's view: who is logged in and its options.
#[derive(Debug, Clone)]
pub struct Session {
    /// Connection id (also in the call record).
    pub conn: u64,
    /// Unix socket (peer is root, logged in implicitly).
    pub unix: bool,
    /// Counts as a secure transport (unix socket, TLS, loopback) for API keys.
    pub secure: bool,
    /// The logged-in user, if any.
    pub user: Option<String>,
    /// 25.10 `core.set_options {"legacy_jobs"}`: job methods answer with the job id.
    pub legacy_jobs: bool,
    /// The connection speaks the legacy `/websocket` protocol. On 25.04+ that endpoint
    /// applies the hidden v24.10 models to `cloudsync.credentials.*` (REFERENCE §1.4).
    pub legacy_protocol: bool,
}

impl Session {
    /// A unix-socket session: root, logged in.
    pub fn unix(conn: u64) -> Self {
        Self {
            conn,
            unix: true,
            secure: true,
            user: Some("root".to_owned()),
            legacy_jobs: true,
            legacy_protocol: false,
        }
    }

    /// A TCP session, not logged in yet.
    pub fn tcp(conn: u64, secure: bool) -> Self {
        Self {
            conn,
            unix: false,
            secure,
            user: None,
            legacy_jobs: true,
            legacy_protocol: false,
        }
    }
}

/// How a call failed, in middleware terms (the wire encodings are in `wire.rs`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RpcError {
    /// `ValidationErrors`: JSON-RPC -32602 / legacy `EAGAIN` + `type: VALIDATION`.
    Invalid(Vec<Issue>),
    /// `InstanceNotFound`: a single `ValidationError` with attribute `None`, errno `ENOENT`.
    NotFound(String),
    /// `CallError(errmsg, errno)`: JSON-RPC -32001; `reason` is `[ERRNAME] errmsg`.
    Call {
        errno: i64,
        message: String,
        extra: Option<Value>,
    },
    /// The session is not logged in (errno 207).
    NotAuthenticated,
    /// Unknown method on this version: -32601 / legacy `ENOMETHOD`.
    NoMethod(String),
    /// Any other exception (`EINVAL`, reason = Python's `str(e) or repr(e)`).
    Other(String),
}

impl RpcError {
    /// A `CallError` with errno `EFAULT` (the Python default).
    pub fn call(message: impl Into<String>) -> Self {
        RpcError::Call {
            errno: errno::EFAULT,
            message: message.into(),
            extra: None,
        }
    }

    /// One validation issue.
    pub fn invalid(path: impl Into<String>, message: impl Into<String>) -> Self {
        RpcError::Invalid(vec![Issue::new(path, message)])
    }
}

/// errno values the middleware uses (Linux + TrueNAS custom).
pub mod errno {
    pub const ENOENT: i64 = 2;
    pub const EAGAIN: i64 = 11;
    pub const EACCES: i64 = 13;
    pub const EFAULT: i64 = 14;
    pub const EBUSY: i64 = 16;
    pub const EEXIST: i64 = 17;
    pub const EINVAL: i64 = 22;
    pub const EBADMSG: i64 = 74;
    pub const ETOOMANYREFS: i64 = 109;
    pub const ENOMETHOD: i64 = 201;
    pub const ENOTAUTHENTICATED: i64 = 207;

    /// The symbolic name, as `get_errname` gives it.
    pub fn name(errno: i64) -> &'static str {
        match errno {
            1 => "EPERM",
            ENOENT => "ENOENT",
            EAGAIN => "EAGAIN",
            EACCES => "EACCES",
            EFAULT => "EFAULT",
            EBUSY => "EBUSY",
            EEXIST => "EEXIST",
            EINVAL => "EINVAL",
            EBADMSG => "EBADMSG",
            95 => "EOPNOTSUPP",
            ETOOMANYREFS => "ETOOMANYREFS",
            110 => "ETIMEDOUT",
            ENOMETHOD => "ENOMETHOD",
            202 => "ESERVICESTARTFAILURE",
            205 => "EDATASETISLOCKED",
            ENOTAUTHENTICATED => "ENOTAUTHENTICATED",
            _ => "EUNKNOWN",
        }
    }
}

/// A `collection_update` / legacy `added|changed|removed` event.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// Event name, e.g. `core.get_jobs`.
    pub collection: String,
    pub kind: EventKind,
    pub id: Value,
    /// For `Added`/`Changed` (jobs: the whole job).
    pub fields: Option<Value>,
}

/// Event type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    Added,
    Changed,
    Removed,
}

impl EventKind {
    /// `added`, `changed`, `removed` (the legacy `msg` and JSON-RPC `params.msg`).
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Added => "added",
            EventKind::Changed => "changed",
            EventKind::Removed => "removed",
        }
    }
}

/// What a successful call returns.
#[derive(Debug, Clone, PartialEq)]
pub enum Reply {
    Value(Value),
    /// A job was started (or an already queued one reused): its id.
    Job(u64),
}

/// Job state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobState {
    Waiting,
    Running,
    Success,
    Failed,
    Aborted,
}

impl JobState {
    /// Wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Waiting => "WAITING",
            JobState::Running => "RUNNING",
            JobState::Success => "SUCCESS",
            JobState::Failed => "FAILED",
            JobState::Aborted => "ABORTED",
        }
    }

    /// SUCCESS, FAILED or ABORTED.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            JobState::Success | JobState::Failed | JobState::Aborted
        )
    }
}

/// What a job does when it runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobKind {
    /// `cloudsync.sync`: an rclone run of a task.
    CloudSync { task: u64, dry_run: bool },
    /// `service.control` (25.10+); `silent`: a failed operation ends the job with result
    /// `false` instead of FAILED.
    ServiceControl {
        verb: String,
        service: String,
        silent: bool,
    },
    /// `pool.snapshottask.run` (a job from 27.0 on).
    SnapshotTaskRun { task: i64 },
    /// `core.job_wait`: ends when `target` ends.
    Wait { target: u64 },
}

/// A live job (REFERENCE §3.2).
#[derive(Debug, Clone, PartialEq)]
pub struct Job {
    pub id: u64,
    pub method: String,
    pub arguments: Vec<Value>,
    pub message_ids: Vec<Value>,
    pub kind: JobKind,
    pub state: JobState,
    pub percent: Option<i64>,
    pub progress_description: Option<String>,
    pub result: Value,
    pub error: Option<String>,
    pub exc_type: Option<String>,
    pub exc_errno: Option<i64>,
    pub logs_excerpt: Option<String>,
    pub time_started_ms: i64,
    pub time_finished_ms: Option<i64>,
    /// A failure text injected for this run (from `FaultPlan::sync_failures`).
    pub planned_failure: Option<String>,
    pub abortable: bool,
    pub logs: bool,
    /// The job lock (`@job(lock=…)`, computed from the params as sent): at most one job
    /// of a lock runs at a time. `None`: no lock.
    pub lock: Option<String>,
}

/// Per-call context handed to handlers.
pub struct Ctx<'a> {
    pub session: &'a mut Session,
    pub now_ms: i64,
    /// The JSON-RPC request id (25.10 jobs record it in `message_ids`).
    pub request_id: Option<Value>,
}

/// The simulated middleware.
#[derive(Debug, Clone)]
pub struct Core {
    /// The box.
    pub state: Scenario,
    /// Faults (the shell consults `on_call`; the core consumes `sync_failures`).
    pub faults: FaultPlan,
    pub(crate) jobs: BTreeMap<u64, Job>,
    next_job: u64,
    outbox: Vec<Event>,
    new_jobs: Vec<u64>,
    next_txg: u64,
    next_alert: u64,
    login_attempts: u32,
}

/// How many finished jobs are kept (the middleware keeps about 1000).
const KEPT_JOBS: usize = 1000;

impl Core {
    /// A middleware serving `state`.
    pub fn new(mut state: Scenario) -> Self {
        state.normalize();
        let faults = std::mem::take(&mut state.faults);
        let next_txg = state
            .snapshots
            .iter()
            .map(|s| s.createtxg)
            .max()
            .unwrap_or(1000)
            + 1;
        Self {
            state,
            faults,
            jobs: BTreeMap::new(),
            next_job: 1,
            outbox: Vec::new(),
            new_jobs: Vec::new(),
            next_txg,
            next_alert: 1,
            login_attempts: 0,
        }
    }

    /// The flavour served.
    pub fn flavor(&self) -> ApiFlavor {
        self.state.flavor
    }

    /// Handles one call.
    pub fn dispatch(
        &mut self,
        session: &mut Session,
        method: &str,
        params: &[Value],
        request_id: Option<Value>,
        now_ms: i64,
    ) -> Result<Reply, RpcError> {
        let Some(spec) =
            validate::method_params(method, shape_flavor(self.flavor(), session, method))
        else {
            return Err(RpcError::NoMethod(method.to_owned()));
        };
        if session.user.is_none() && !no_auth_required(method) {
            return Err(RpcError::NotAuthenticated);
        }
        if session.user.is_none() && !session.unix && method.starts_with("auth.") {
            self.rate_limit_login()?;
        }
        match validate::check_params(&spec, params) {
            Ok(()) => {}
            Err(ParamsError::Invalid(issues)) => return Err(RpcError::Invalid(issues)),
            Err(ParamsError::TooMany { expected, found }) => {
                return Err(RpcError::call(format!(
                    "Too many arguments (expected {expected}, found {found})"
                )));
            }
        }
        let mut ctx = Ctx {
            session,
            now_ms,
            request_id,
        };
        methods::call(self, &mut ctx, method, params)
    }

    /// `MW/utils/rate_limit/cache.py`: unauthenticated login calls from one origin.
    fn rate_limit_login(&mut self) -> Result<(), RpcError> {
        let Some(limit) = self.faults.login_rate_limit else {
            return Ok(());
        };
        self.login_attempts += 1;
        if self.login_attempts > limit {
            return Err(RpcError::Call {
                errno: errno::EBUSY,
                message: "Rate Limit Exceeded".to_owned(),
                extra: None,
            });
        }
        Ok(())
    }

    /// Events produced since the last call (the shell broadcasts them).
    pub fn take_events(&mut self) -> Vec<Event> {
        std::mem::take(&mut self.outbox)
    }

    /// Jobs created since the last call (the shell drives them).
    pub fn take_new_jobs(&mut self) -> Vec<u64> {
        std::mem::take(&mut self.new_jobs)
    }

    /// Queues an event. Without `fields`, the ones the middleware would send are filled
    /// in from the box as it is now (`methods::event_fields`: the stored entry, for the
    /// collections and versions that send it).
    pub fn emit(&mut self, collection: &str, kind: EventKind, id: Value, fields: Option<Value>) {
        let fields = fields.or_else(|| methods::event_fields(self, collection, kind, &id));
        self.outbox.push(Event {
            collection: collection.to_owned(),
            kind,
            id,
            fields,
        });
    }

    /// A fresh ZFS transaction group number (snapshot `createtxg`).
    pub fn next_txg(&mut self) -> u64 {
        self.next_txg += 1;
        self.next_txg
    }

    // ---- jobs -------------------------------------------------------------------

    /// Creates a job in WAITING (or RUNNING for `core.job_wait`), emits `ADDED`.
    pub fn create_job(
        &mut self,
        method: &str,
        arguments: Vec<Value>,
        kind: JobKind,
        ctx: &Ctx<'_>,
    ) -> u64 {
        let id = self.next_job;
        self.next_job += 1;
        let planned_failure = match kind {
            JobKind::CloudSync { .. } => self.faults.sync_failures.pop_front(),
            _ => None,
        };
        let waits = matches!(kind, JobKind::Wait { .. });
        let job = Job {
            id,
            method: method.to_owned(),
            arguments,
            message_ids: ctx.request_id.clone().into_iter().collect(),
            abortable: matches!(kind, JobKind::CloudSync { .. }),
            logs: matches!(kind, JobKind::CloudSync { .. }),
            kind,
            state: if waits {
                JobState::Running
            } else {
                JobState::Waiting
            },
            percent: Some(0),
            progress_description: Some(String::new()),
            result: Value::Null,
            error: None,
            exc_type: None,
            exc_errno: None,
            logs_excerpt: None,
            time_started_ms: ctx.now_ms,
            time_finished_ms: None,
            planned_failure,
            lock: None,
        };
        self.jobs.insert(id, job);
        self.job_event(id, EventKind::Added);
        if !waits {
            self.new_jobs.push(id);
        }
        self.trim_jobs();
        id
    }

    /// The job rendered as `core.get_jobs` shows it.
    pub fn render_job(&self, id: u64) -> Option<Value> {
        self.jobs.get(&id).map(|j| render_job(j, self.flavor()))
    }

    /// Moves a WAITING job to RUNNING. False while it must wait (a job with the same
    /// lock is RUNNING: `MW/job.py` `JobsQueue.next` only starts a job whose lock is
    /// free) or when it is no longer WAITING.
    pub fn job_begin(&mut self, id: u64) -> bool {
        let Some(job) = self.jobs.get(&id) else {
            return false;
        };
        if job.state != JobState::Waiting {
            return false;
        }
        if let Some(lock) = &job.lock {
            let busy = self.jobs.values().any(|j| {
                j.id != id && j.state == JobState::Running && j.lock.as_ref() == Some(lock)
            });
            if busy {
                return false;
            }
        }
        if let Some(job) = self.jobs.get_mut(&id) {
            job.state = JobState::Running;
            job.progress_description = Some("Starting".to_owned());
        }
        self.job_event(id, EventKind::Changed);
        true
    }

    /// Sets a RUNNING job's progress.
    pub fn job_progress(&mut self, id: u64, percent: i64, description: &str) {
        let Some(job) = self
            .jobs
            .get_mut(&id)
            .filter(|j| j.state == JobState::Running)
        else {
            return;
        };
        job.percent = Some(percent);
        job.progress_description = Some(description.to_owned());
        self.job_event(id, EventKind::Changed);
    }

    /// Ends a job: decides its outcome from the box as it is now and applies the effects
    /// (task `job` field, alerts, service state). No-op unless RUNNING.
    pub fn job_finish(&mut self, id: u64, now_ms: i64) {
        let Some(job) = self
            .jobs
            .get(&id)
            .filter(|j| j.state == JobState::Running)
            .cloned()
        else {
            return;
        };
        let outcome = match &job.kind {
            JobKind::CloudSync { task, dry_run } => {
                methods::cloudsync::finish_run(self, &job, *task, *dry_run, now_ms)
            }
            JobKind::ServiceControl {
                verb,
                service,
                silent,
            } => methods::services::finish_control(self, verb, service, *silent),
            JobKind::SnapshotTaskRun { task } => {
                methods::snapshot::finish_run_job(self, *task, now_ms)
            }
            JobKind::Wait { target } => {
                self.jobs
                    .get(target)
                    .map_or(Ok(Value::Null), |t| match (&t.state, &t.error) {
                        (JobState::Success, _) => Ok(t.result.clone()),
                        (_, Some(e)) => Err(JobFailure::plain(e.clone())),
                        _ => Err(JobFailure::plain("Job aborted".to_owned())),
                    })
            }
        };
        self.settle(id, outcome, now_ms);
    }

    /// Aborts a WAITING or RUNNING job. Returns false if it was not abortable or already over.
    pub fn job_abort(&mut self, id: u64, now_ms: i64) -> bool {
        let Some(job) = self.jobs.get_mut(&id) else {
            return false;
        };
        if job.state.is_terminal() {
            return false;
        }
        job.state = JobState::Aborted;
        job.error = Some("[EINTR] Job aborted".to_owned());
        job.exc_type = Some("CallError".to_owned());
        job.exc_errno = Some(4);
        job.time_finished_ms = Some(now_ms);
        self.after_terminal(id, now_ms);
        true
    }

    fn settle(&mut self, id: u64, outcome: Result<Value, JobFailure>, now_ms: i64) {
        let Some(job) = self.jobs.get_mut(&id) else {
            return;
        };
        job.time_finished_ms = Some(now_ms);
        match outcome {
            Ok(result) => {
                job.state = JobState::Success;
                job.percent = Some(100);
                job.progress_description = Some("Done".to_owned());
                job.result = result;
                if job.logs {
                    job.logs_excerpt = Some(SUCCESS_LOG.to_owned());
                }
            }
            Err(failure) => {
                job.state = JobState::Failed;
                job.error = Some(failure.error);
                job.exc_type = Some("CallError".to_owned());
                job.exc_errno = Some(errno::EFAULT);
                if job.logs {
                    job.logs_excerpt = Some(failure.log);
                }
            }
        }
        self.after_terminal(id, now_ms);
    }

    fn after_terminal(&mut self, id: u64, now_ms: i64) {
        self.job_event(id, EventKind::Changed);
        if let Some(job) = self.jobs.get(&id).cloned() {
            methods::cloudsync::persist_last_run(self, &job);
        }
        let waiters: Vec<u64> = self
            .jobs
            .values()
            .filter(|j| j.kind == JobKind::Wait { target: id } && !j.state.is_terminal())
            .map(|j| j.id)
            .collect();
        for w in waiters {
            self.job_finish(w, now_ms);
        }
    }

    fn job_event(&mut self, id: u64, kind: EventKind) {
        if let Some(fields) = self.render_job(id) {
            self.emit("core.get_jobs", kind, Value::from(id), Some(fields));
        }
    }

    fn trim_jobs(&mut self) {
        while self.jobs.len() > KEPT_JOBS {
            let oldest_done = self
                .jobs
                .values()
                .find(|j| j.state.is_terminal())
                .map(|j| j.id);
            match oldest_done {
                Some(id) => {
                    self.jobs.remove(&id);
                }
                None => break,
            }
        }
    }

    /// Every job, rendered, oldest first.
    pub fn rendered_jobs(&self) -> Vec<Value> {
        self.jobs
            .values()
            .map(|j| render_job(j, self.flavor()))
            .collect()
    }

    /// Live job ids that are not terminal.
    pub fn pending_jobs(&self) -> Vec<u64> {
        self.jobs
            .values()
            .filter(|j| !j.state.is_terminal())
            .map(|j| j.id)
            .collect()
    }

    // ---- alerts -------------------------------------------------------------------

    /// Raises (or refreshes) a one-shot alert of `klass` with `key`.
    pub fn raise_alert(&mut self, klass: &str, key: &str, args: Value, text: String, now_ms: i64) {
        self.clear_alert(klass, key);
        let uuid = format!("00000000-0000-4000-8000-{:012x}", self.next_alert);
        self.next_alert += 1;
        let alert = Alert {
            uuid: uuid.clone(),
            klass: klass.to_owned(),
            args,
            key: key.to_owned(),
            level: alert_level(klass).to_owned(),
            text,
            datetime_ms: now_ms,
            dismissed: false,
        };
        let fields = render_alert(&alert);
        self.state.alerts.push(alert);
        self.emit(
            "alert.list",
            EventKind::Added,
            Value::from(uuid),
            Some(fields),
        );
    }

    /// Removes alerts of `klass` with `key`.
    pub fn clear_alert(&mut self, klass: &str, key: &str) {
        let gone: Vec<String> = self
            .state
            .alerts
            .iter()
            .filter(|a| a.klass == klass && a.key == key)
            .map(|a| a.uuid.clone())
            .collect();
        self.state
            .alerts
            .retain(|a| !(a.klass == klass && a.key == key));
        for uuid in gone {
            self.emit("alert.list", EventKind::Removed, Value::from(uuid), None);
        }
    }
}

/// Why a job failed: the short error and the log excerpt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobFailure {
    /// `job.error` (`str(CallError)`: `[EFAULT] ...`).
    pub error: String,
    /// `job.logs_excerpt`.
    pub log: String,
}

impl JobFailure {
    /// A failure raised as `CallError(message)`.
    pub fn call_error(message: &str) -> Self {
        Self {
            error: format!("[EFAULT] {message}"),
            log: message.to_owned(),
        }
    }

    /// A failure whose error text is given verbatim.
    pub fn plain(error: String) -> Self {
        Self {
            log: error.clone(),
            error,
        }
    }
}

const SUCCESS_LOG: &str = "Transferred:   \t          0 B / 0 B, -, 0 B/s, ETA -\nChecks:                 0 / 0, -\nElapsed time:         1.0s\n";

/// The version whose models a call's params and result use: the box's, except for
/// `cloudsync.credentials.*` over the legacy endpoint of 25.04+, which converts from and to
/// the v24.10 models (`MW/api/v25_04_0/cloud_sync.py` `from_previous`/`to_previous`).
pub fn shape_flavor(flavor: ApiFlavor, session: &Session, method: &str) -> ApiFlavor {
    if session.legacy_protocol && method.starts_with("cloudsync.credentials.") {
        ApiFlavor::V24_10
    } else {
        flavor
    }
}

/// Methods callable before login (`authentication_required=False`).
fn no_auth_required(method: &str) -> bool {
    matches!(
        method,
        "auth.login_ex" | "auth.login_with_api_key" | "core.set_options"
    )
}

/// `{"$date": ms}`.
pub fn date(ms: i64) -> Value {
    json!({ "$date": ms })
}

fn render_job(j: &Job, flavor: ApiFlavor) -> Value {
    let mut v = json!({
        "id": j.id,
        "method": j.method,
        "arguments": j.arguments,
        "transient": false,
        "description": null,
        "abortable": j.abortable,
        "logs_path": if j.logs { Value::from(format!("/var/log/jobs/{}.log", j.id)) } else { Value::Null },
        "logs_excerpt": j.logs_excerpt,
        "progress": {"percent": j.percent, "description": j.progress_description, "extra": null},
        "result": j.result,
        "result_encoding_error": null,
        "error": j.error,
        "exception": j.error.as_ref().map(|e| format!("Traceback (most recent call last):\nmiddlewared.service_exception.CallError: {e}\n")),
        "exc_info": j.exc_type.as_ref().map(|t| json!({"repr": j.error.as_ref().map(|e| format!("CallError({e:?})")), "type": t, "errno": j.exc_errno, "extra": null})),
        "state": j.state.as_str(),
        "time_started": date(j.time_started_ms),
        "time_finished": j.time_finished_ms.map(date),
        "credentials": {"type": "UNIX_SOCKET", "data": {"username": "root"}},
    });
    if flavor >= ApiFlavor::V25_10 {
        v["message_ids"] = Value::from(j.message_ids.clone());
    }
    v
}

fn alert_level(klass: &str) -> &'static str {
    match klass {
        "CloudSyncTaskFailed" | "SnapshotFailed" | "TaskLocked" => "ERROR",
        _ => "WARNING",
    }
}

/// An alert as `alert.list` shows it.
pub fn render_alert(a: &Alert) -> Value {
    json!({
        "uuid": a.uuid,
        "source": "",
        "klass": a.klass,
        "args": a.args,
        "node": "A",
        "key": a.key,
        "datetime": date(a.datetime_ms),
        "last_occurrence": date(a.datetime_ms),
        "dismissed": a.dismissed,
        "mail": null,
        "text": a.text,
        "id": a.uuid,
        "level": a.level,
        "formatted": a.text,
        "one_shot": true,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use truenas_agent::middleware::Method;

    fn json_value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            (-5i64..10).prop_map(Value::from),
            any::<f64>()
                .prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
            "[a-zA-Z0-9:/@%._ -]{0,12}".prop_map(Value::from),
            prop_oneof![
                Just("pool0"),
                Just("/mnt/pool0"),
                Just("B2"),
                Just("PUSH"),
                Just("SYNC"),
                Just("id"),
                Just("="),
                Just("in"),
                Just("~"),
                Just("OR"),
                Just("08:00"),
                Just("snmp"),
                Just("START"),
                Just("API_KEY_PLAIN"),
                Just("com.x:y"),
                Just("auto-%Y-%m-%d_%H-%M"),
            ]
            .prop_map(Value::from),
        ];
        leaf.prop_recursive(4, 48, 6, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..6).prop_map(Value::from),
                prop::collection::btree_map(
                    prop_oneof![
                        "[a-z_]{1,10}".prop_map(String::from),
                        Just("type".to_owned()),
                        Just("name".to_owned()),
                        Just("provider".to_owned()),
                        Just("attributes".to_owned()),
                        Just("path".to_owned()),
                        Just("credentials".to_owned()),
                        Just("bwlimit".to_owned()),
                        Just("schedule".to_owned()),
                        Just("dataset".to_owned()),
                        Just("get".to_owned()),
                        Just("count".to_owned()),
                        Just("select".to_owned()),
                        Just("order_by".to_owned()),
                        Just("user_properties_update".to_owned()),
                        Just("key".to_owned()),
                    ],
                    inner,
                    0..6
                )
                .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    fn method() -> impl Strategy<Value = String> {
        prop_oneof![
            prop::sample::select(Method::ALL.to_vec()).prop_map(|m| m.as_str().to_owned()),
            "[a-z.]{1,20}".prop_map(String::from),
        ]
    }

    proptest! {
        /// No handler panics, whatever the params, on any version.
        #[test]
        fn dispatch_never_panics(
            flavor in prop::sample::select(ApiFlavor::ALL.to_vec()),
            calls in prop::collection::vec((method(), prop::collection::vec(json_value(), 0..4)), 1..6),
        ) {
            let mut core = Core::new(crate::Scenario::two_pools(flavor));
            let mut session = Session::unix(1);
            for (m, params) in calls {
                let _ = core.dispatch(&mut session, &m, &params, None, 1_700_000_000_000);
                for id in core.take_new_jobs() {
                    core.job_begin(id);
                    core.job_finish(id, 1_700_000_000_100);
                }
            }
        }

        /// Near-valid payloads (one field replaced by anything) reach the handlers: they
        /// never panic, and a rejected call leaves the box exactly as it was.
        #[test]
        fn rejected_calls_change_nothing(
            flavor in prop::sample::select(ApiFlavor::ALL.to_vec()),
            template in 0usize..7,
            key in prop::sample::select(vec![
                "path", "credentials", "attributes", "bwlimit", "schedule", "direction", "encryption",
                "dataset", "exclude", "naming_schema", "v3", "v3_password", "community", "user_properties_update",
                "type", "script", "provider", "name", "recursive", "snapshot",
            ]),
            value in json_value(),
        ) {
            let mut core = Core::new(crate::Scenario::two_pools(flavor));
            let mut session = Session::unix(1);
            let cred = if flavor == ApiFlavor::V24_10 {
                serde_json::json!({"name": "c", "provider": "B2", "attributes": {"account": "a", "key": "k"}})
            } else {
                serde_json::json!({"name": "c", "provider": {"type": "B2", "account": "a", "key": "k"}})
            };
            core.dispatch(&mut session, "cloudsync.credentials.create", std::slice::from_ref(&cred), None, 0).unwrap();
            let task = serde_json::json!({"path": "/mnt/pool0", "credentials": 1, "direction": "PUSH", "transfer_mode": "SYNC",
                "attributes": {"bucket": "b", "folder": ""}, "schedule": {"minute": "0"}, "encryption": true,
                "encryption_password": "p", "bwlimit": [{"time": "00:00", "bandwidth": 1}], "snapshot": false});
            core.dispatch(&mut session, "cloudsync.create", std::slice::from_ref(&task), None, 0).unwrap();
            let (method, mut params) = match template {
                0 => ("cloudsync.create", vec![task]),
                1 => ("cloudsync.update", vec![Value::from(1), task]),
                2 => ("pool.snapshottask.create", vec![serde_json::json!({"dataset": "pool0", "recursive": true, "lifetime_value": 2,
                    "lifetime_unit": "WEEK", "naming_schema": "auto-%Y-%m-%d_%H-%M", "schedule": {}, "exclude": []})]),
                3 => ("snmp.update", vec![serde_json::json!({"v3": true, "v3_username": "u", "v3_authtype": "SHA", "v3_password": "12345678", "community": ""})]),
                4 => ("pool.dataset.update", vec![Value::from("pool0"), serde_json::json!({"user_properties_update": [{"key": "a:b", "value": "c"}]})]),
                5 => ("initshutdownscript.create", vec![serde_json::json!({"type": "COMMAND", "command": "x", "when": "POSTINIT", "script": null})]),
                _ => ("cloudsync.credentials.create", vec![{
                    let mut c = cred.clone();
                    c["name"] = Value::from("d");
                    c
                }]),
            };
            let last = params.len() - 1;
            if let Some(obj) = params[last].as_object_mut() {
                obj.insert(key.to_owned(), value);
            }
            let before = core.state.clone();
            let result = core.dispatch(&mut session, method, &params, None, 0);
            if result.is_err() {
                prop_assert_eq!(&core.state, &before, "{} {:?}", method, result);
            }
        }

        /// Frame parsing is total too.
        #[test]
        fn frame_parsing_never_panics(text in ".{0,200}") {
            let _ = crate::wire::parse_jsonrpc(&text);
            let _ = crate::wire::parse_legacy(&text);
        }
    }
}
