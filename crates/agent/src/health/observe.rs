//! The health observation shell: the middleware reads `Observed` does not make, and the
//! B2 verification run, into plain [`HealthObservations`].
//!
//! Owns: five reads with a short timeout each — `cloudsync.query` (every task's `job`
//! field = last run), `core.get_jobs` (recent successful `cloudsync.sync` jobs, plus,
//! only for a task whose `job` field is a dry run, that task's newest runs to find its
//! last real one),
//! `pool.snapshottask.query` (zettarepl state), the version's snapshot listing
//! (`zfs.snapshot.query` on 24.10/25.04, `pool.snapshot.query` on 25.10) through the
//! middleware's cheap names-only/count fast path, and `alert.list`; plus running
//! [`crate::b2::verify()`] with the key read from the task's cloud credential. The
//! requests are `middleware::calls`'s.
//! Does not: judge anything (that is [`super::evaluate`]), write to the middleware, keep
//! the B2 key beyond the run, or touch files (`memory` does).
//! Invariants: read-only (no method here `is_write`); a read that fails or times out is
//! recorded in `read_errors` and the rest still run, so one slow read never hides the
//! others; the B2 key is held in a `SecretString` only for the run and for redaction.
//! Limitations: `core.get_jobs` only knows jobs since middlewared started (and at most
//! ~1000); older successes come from the state dir (`memory`). The snapshot listing
//! looks at the pool's root dataset for the newest name and counts the whole pool.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, FixedOffset, Utc};
use secrecy::SecretString;
use serde_json::Value;

use super::Redactor;
use super::memory::HealthMemory;
pub(crate) use super::model::Alert;
use super::tasks;
use crate::b2::{self, B2Inputs, B2Report, ClientOptions, Expected};
use crate::desired::DesiredState;
use crate::middleware::{
    ApiFlavor, Call, CallError, Job, JobArgs, JobState, Middleware, calls, ejson,
};
use crate::observe::Observed;
use crate::plan::{self, Ownership};
use crate::zfs::DEFAULT_GUID_PROPERTY;

/// Runs of one Cloud Sync task. Dry runs (UI "Dry Run", `arguments[1].dry_run`) upload
/// nothing and are never taken for a run here.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TaskRuns {
    /// The last real run: the task's `job` field (in memory, or the copy persisted in
    /// the task row after a middleware restart) when it is not a dry run, else the
    /// newest real run `core.get_jobs` still holds. `None` with `dry_run_shown` false:
    /// never ran.
    pub last: Option<Job>,
    /// The newest SUCCESS run (not a dry run) the middleware still holds in memory.
    pub last_success: Option<Job>,
    /// The task's `job` field is a dry run (`MW/utils/service/task_state.py` shows
    /// every `cloudsync.sync` job, dry runs included). With `last` `None`, the last real
    /// run is unknown: the middleware no longer holds it (it forgets jobs on restart and
    /// keeps about 1000), and the dry run also replaced the copy saved in the task row.
    pub dry_run_shown: bool,
}

/// zettarepl's state of a periodic snapshot task (`pool.snapshottask.query` `state`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SnapshotTaskState {
    /// `PENDING`, `RUNNING`, `FINISHED`, `ERROR`, `HOLD`.
    pub state: String,
    pub datetime: Option<DateTime<Utc>>,
    /// The error (ERROR) or hold reason (HOLD); raw, redacted when evaluated.
    pub error: Option<String>,
    /// 25.10: `dataset@name` of the last snapshot taken.
    pub last_snapshot: Option<String>,
}

/// The snapshot names of one pool with the task's prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotListing {
    /// The name prefix listed (the naming schema up to its first `%`, e.g. `auto-`).
    pub prefix: String,
    /// Snapshot names (`name` after `@`) of the pool's root dataset with that prefix.
    pub root_names: Result<Vec<String>, String>,
    /// How many snapshots of the whole pool (recursive) have that prefix.
    pub count: Result<u64, String>,
}

/// Alert classes that concern backups, snapshots, the agent's access or the pools.
pub(crate) const RELEVANT_ALERTS: &[&str] = &[
    "CloudSyncTaskFailed",
    "TaskLocked",
    "SnapshotFailed",
    "SnapshotCount",
    "SnapshotTotalCount",
    "ApiKeyRevoked",
    "VolumeStatus",
];

/// Everything [`super::evaluate`] needs besides the document and `Observed`.
#[derive(Debug, Clone)]
pub struct HealthObservations {
    /// The NAS's UTC offset now (cron schedules fire in NAS local time).
    pub offset: FixedOffset,
    /// The agent's ownership record (`apply`'s `ownership.json`); empty when none.
    pub ownership: Ownership,
    /// The ZFS user property holding the device GUID (agent config; SOP default).
    pub guid_property: String,
    /// The agent configuration's root pool (used when the document names none).
    pub configured_root: Option<String>,
    /// Cloud Sync task id → its runs.
    pub runs: BTreeMap<u64, TaskRuns>,
    /// Snapshot task id → zettarepl state.
    pub snapshot_states: BTreeMap<u64, SnapshotTaskState>,
    /// Pool → snapshot listing.
    pub snapshots: BTreeMap<String, SnapshotListing>,
    /// Relevant alerts; `None` when they could not be read.
    pub alerts: Option<Vec<Alert>>,
    /// What the state directory remembers.
    pub memory: HealthMemory,
    /// The B2 verification, when it ran (or the last one remembered, see `b2_reused`).
    pub b2: Option<B2Report>,
    /// `b2` is the remembered report of an earlier run, not one made in this pass.
    pub b2_reused: bool,
    /// Reads that failed (texts from this agent and the middleware; redacted when
    /// evaluated).
    pub read_errors: Vec<String>,
    /// The agent's own state files that could not be read (not the middleware's fault).
    pub state_errors: Vec<super::StateFileError>,
    /// Secrets met while observing (the B2 key), for redaction only.
    pub extra_secrets: Vec<SecretString>,
}

impl HealthObservations {
    /// Observations with nothing read yet (every task "unknown").
    pub fn empty(offset: FixedOffset) -> Self {
        Self {
            offset,
            ownership: Ownership::default(),
            guid_property: DEFAULT_GUID_PROPERTY.to_owned(),
            configured_root: None,
            runs: BTreeMap::new(),
            snapshot_states: BTreeMap::new(),
            snapshots: BTreeMap::new(),
            alerts: None,
            memory: HealthMemory::default(),
            b2: None,
            b2_reused: false,
            read_errors: Vec::new(),
            state_errors: Vec::new(),
            extra_secrets: Vec::new(),
        }
    }

    /// The redactor for texts from the NAS: the document's secrets and the ones met here.
    pub fn redactor(&self, desired: Option<&DesiredState>) -> Redactor {
        let mut redactor = Redactor::new(desired.map(DesiredState::secrets).unwrap_or_default());
        for secret in &self.extra_secrets {
            redactor.add(secret);
        }
        redactor
    }
}

/// Timeouts and the B2 run's options.
#[derive(Debug, Clone)]
pub(crate) struct ObserveOptions {
    /// Timeout of each middleware read.
    pub call_timeout: Duration,
}

impl Default for ObserveOptions {
    fn default() -> Self {
        Self {
            call_timeout: Duration::from_secs(15),
        }
    }
}

/// Reads task runs, snapshot states and listings for `pools`, and alerts.
pub(crate) async fn observe(
    mw: &impl Middleware,
    observed: &Observed,
    pools: &[String],
    base: HealthObservations,
    options: &ObserveOptions,
) -> HealthObservations {
    let mut obs = base;
    let timeout = options.call_timeout;
    obs.runs = read_runs(mw, timeout, &mut obs.read_errors).await;
    match read_snapshot_states(mw, timeout).await {
        Ok(states) => obs.snapshot_states = states,
        Err(e) => obs.read_errors.push(e),
    }
    for pool in pools {
        let prefix = listing_prefix(pool, observed, &obs.ownership);
        let listing = list_snapshots(mw, observed.api.flavor, pool, &prefix, timeout).await;
        obs.snapshots.insert(pool.clone(), listing);
    }
    match read(mw, calls::alert_list(), timeout).await {
        Ok(value) => obs.alerts = Some(decode_alerts(&value)),
        Err(e) => obs.read_errors.push(format!("alerts: {e}")),
    }
    obs
}

/// Every Cloud Sync task's last run and last success (`cloudsync.query` `job`, the recent
/// successes in `core.get_jobs`, and — only for a task whose `job` is a dry run — its
/// newest runs). A failed read is pushed to `errors`; what was read is kept.
pub(crate) async fn read_runs(
    mw: &impl Middleware,
    timeout: Duration,
    errors: &mut Vec<String>,
) -> BTreeMap<u64, TaskRuns> {
    let mut runs = BTreeMap::new();
    match read(mw, calls::cloudsync_query(), timeout).await {
        Ok(value) => runs = decode_last_runs(&value),
        Err(e) => errors.push(format!("Cloud Sync last runs: {e}")),
    }
    match read(mw, calls::recent_cloudsync_successes(50), timeout).await {
        Ok(value) => attach_successes(&mut runs, &value),
        Err(e) => errors.push(format!("Cloud Sync job history: {e}")),
    }
    // Only tasks whose `job` field is a dry run need their history (rare: one read
    // each, the task's newest runs).
    let shown_dry: Vec<u64> = runs
        .iter()
        .filter(|(_, r)| r.dry_run_shown)
        .map(|(id, _)| *id)
        .collect();
    for task in shown_dry {
        match read(mw, calls::cloudsync_runs_of(task, REAL_RUN_WINDOW), timeout).await {
            Ok(value) => attach_real_runs(&mut runs, task, &value),
            Err(e) => errors.push(format!("runs of Cloud Sync task {task}: {e}")),
        }
    }
    runs
}

/// zettarepl's state of every periodic snapshot task (`pool.snapshottask.query`).
pub(crate) async fn read_snapshot_states(
    mw: &impl Middleware,
    timeout: Duration,
) -> Result<BTreeMap<u64, SnapshotTaskState>, String> {
    read(mw, calls::snapshot_tasks_query(), timeout)
        .await
        .map(|value| decode_snapshot_states(&value))
        .map_err(|e| format!("snapshot task states: {e}"))
}

/// The snapshot name prefix listed for `pool`: its task's naming schema up to the
/// first `%`, `auto-` without a task.
pub(crate) fn listing_prefix(pool: &str, observed: &Observed, ownership: &Ownership) -> String {
    tasks::snapshot_task(pool, observed, ownership).map_or_else(
        || "auto-".to_owned(),
        |(t, _)| tasks::name_prefix(&t.naming_schema),
    )
}

/// Updates the runs of the task a `cloudsync.sync` job runs (from a `core.get_jobs`
/// event): a real run becomes the task's last run (and its last success when it
/// succeeded); a dry run only marks the task's `job` field as showing one.
pub(crate) fn note_job(runs: &mut BTreeMap<u64, TaskRuns>, job: &Job) {
    let Some(task) = job.args.first_id else {
        return;
    };
    let entry = runs.entry(task).or_default();
    if job.args.dry_run {
        entry.dry_run_shown = true;
        return;
    }
    entry.dry_run_shown = false;
    let newer = |old: &Option<Job>| old.as_ref().is_none_or(|o| o.id <= job.id);
    if newer(&entry.last) {
        entry.last = Some(job.clone());
    }
    if job.state == JobState::Success {
        let later = match (&entry.last_success, job.time_finished) {
            (None, _) => true,
            (Some(old), Some(t)) => old.time_finished.is_none_or(|o| t >= o),
            (Some(_), None) => false,
        };
        if later {
            entry.last_success = Some(job.clone());
        }
    }
}

async fn read(mw: &impl Middleware, call: Call, timeout: Duration) -> Result<Value, CallError> {
    let method = call.method;
    match tokio::time::timeout(timeout, mw.call(call)).await {
        Ok(result) => result,
        Err(_) => Err(CallError::Timeout {
            method,
            after: timeout,
        }),
    }
}

/// How many of a task's newest runs are searched for its last real run.
pub(crate) const REAL_RUN_WINDOW: u64 = 50;

fn decode_job(value: &Value) -> Option<Job> {
    if value.is_null() {
        return None;
    }
    serde_json::from_value(value.clone()).ok().or_else(|| {
        // A job whose fields we cannot decode is still a run in an unknown state.
        Some(Job {
            id: None,
            method: None,
            args: JobArgs::from_arguments(value.get("arguments").unwrap_or(&Value::Null)),
            state: JobState::Unknown,
            progress: crate::middleware::JobProgress::default(),
            error: None,
            logs_excerpt: None,
            time_started: None,
            time_finished: None,
        })
    })
}

/// Task id → last run, from `cloudsync.query` entries.
pub(crate) fn decode_last_runs(value: &Value) -> BTreeMap<u64, TaskRuns> {
    value
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|task| {
            let id = task.get("id")?.as_u64()?;
            let shown = task.get("job").and_then(decode_job);
            let dry_run_shown = shown.as_ref().is_some_and(|j| j.args.dry_run);
            Some((
                id,
                TaskRuns {
                    last: shown.filter(|_| !dry_run_shown),
                    last_success: None,
                    dry_run_shown,
                },
            ))
        })
        .collect()
}

/// For a task whose `job` field is a dry run: takes its newest real run (and success)
/// from `core.get_jobs` items of that task, newest first.
pub(crate) fn attach_real_runs(runs: &mut BTreeMap<u64, TaskRuns>, task: u64, jobs: &Value) {
    let entry = runs.entry(task).or_default();
    if entry.last.is_none() {
        let mut real: Vec<Job> = jobs
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(decode_job)
            .filter(|j| j.args.first_id == Some(task) && !j.args.dry_run)
            .collect();
        real.sort_by_key(|j| j.id);
        // As the task's `job` field is chosen (`task_state.py`): the newest run, except
        // that a RUNNING one wins over a newer WAITING one.
        entry.last = real
            .into_iter()
            .fold(None, |pick: Option<Job>, j| match pick {
                Some(p) if p.state == JobState::Running => Some(p),
                _ => Some(j),
            });
    }
    attach_successes(runs, jobs);
}

/// Attaches the newest non-dry-run success per task from `core.get_jobs` items.
pub(crate) fn attach_successes(runs: &mut BTreeMap<u64, TaskRuns>, jobs: &Value) {
    for item in jobs.as_array().into_iter().flatten() {
        let Some(job) = decode_job(item).filter(|j| j.state == JobState::Success) else {
            continue;
        };
        let Some(task_id) = job.args.first_id else {
            continue;
        };
        if job.args.dry_run {
            continue;
        }
        let entry = runs.entry(task_id).or_default();
        let newer = match (&entry.last_success, job.time_finished) {
            (None, _) => true,
            (Some(old), Some(t)) => old.time_finished.is_none_or(|o| t > o),
            (Some(_), None) => false,
        };
        if newer {
            entry.last_success = Some(job);
        }
    }
}

/// Snapshot task id → state, from `pool.snapshottask.query` entries.
pub(crate) fn decode_snapshot_states(value: &Value) -> BTreeMap<u64, SnapshotTaskState> {
    value
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|task| {
            let id = task.get("id")?.as_u64()?;
            let state = task.get("state").cloned().unwrap_or(Value::Null);
            let text = |key: &str| state.get(key).and_then(Value::as_str).map(str::to_owned);
            Some((
                id,
                SnapshotTaskState {
                    state: text("state").unwrap_or_else(|| "UNKNOWN".to_owned()),
                    datetime: state.get("datetime").and_then(ejson::decode_datetime),
                    error: text("error").or_else(|| text("reason")),
                    last_snapshot: text("last_snapshot"),
                },
            ))
        })
        .collect()
}

/// Relevant, not dismissed alerts from `alert.list`.
pub(crate) fn decode_alerts(value: &Value) -> Vec<Alert> {
    value
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(decode_alert)
        .collect()
}

/// One `alert.list` entry (or `alert.list` event fields), when it is relevant and not
/// dismissed.
pub(crate) fn decode_alert(a: &Value) -> Option<Alert> {
    if a.get("dismissed").and_then(Value::as_bool).unwrap_or(false) {
        return None;
    }
    let klass = a.get("klass")?.as_str()?;
    if !RELEVANT_ALERTS.contains(&klass) {
        return None;
    }
    let text = a
        .get("formatted")
        .and_then(Value::as_str)
        .or_else(|| a.get("text").and_then(Value::as_str))
        .unwrap_or(klass);
    Some(Alert {
        klass: klass.to_owned(),
        level: a
            .get("level")
            .and_then(Value::as_str)
            .unwrap_or("UNKNOWN")
            .to_owned(),
        text: text.to_owned(),
        datetime: a.get("datetime").and_then(ejson::decode_datetime),
    })
}

/// The names and count of `pool`'s snapshots with `prefix` (two reads).
pub(crate) async fn list_snapshots(
    mw: &impl Middleware,
    flavor: ApiFlavor,
    pool: &str,
    prefix: &str,
    timeout: Duration,
) -> SnapshotListing {
    let root_names = read(mw, calls::snapshot_names(flavor, pool, prefix), timeout)
        .await
        .map_err(|e| e.to_string())
        .map(|v| decode_names(&v, prefix));
    let count = read(mw, calls::snapshot_count(flavor, pool, prefix), timeout)
        .await
        .map_err(|e| e.to_string())
        .and_then(|v| {
            v.as_u64()
                .ok_or_else(|| "the snapshot count is not a number".to_owned())
        });
    SnapshotListing {
        prefix: prefix.to_owned(),
        root_names,
        count,
    }
}

/// Snapshot names (after `@`) starting with `prefix`, from `[{name: "pool@auto-…"}]`.
pub(crate) fn decode_names(value: &Value, prefix: &str) -> Vec<String> {
    value
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|item| {
            let full = item.get("name").and_then(Value::as_str)?;
            let (_, snap) = full.split_once('@')?;
            snap.starts_with(prefix).then(|| snap.to_owned())
        })
        .collect()
}

/// Why the B2 verification could not run with the task's key.
fn unavailable(expected: &Expected, reason: &str, now: DateTime<Utc>) -> B2Report {
    B2Report::unavailable(expected, reason, now)
}

/// Runs the B2 verification with the Cloud Sync task's own key, read from its cloud
/// credential now and dropped afterwards. Returns the report and the key (for the
/// caller's redactor only).
pub(crate) async fn observe_b2(
    mw: &impl Middleware,
    desired: &DesiredState,
    observed: &Observed,
    pools: &[String],
    obs: &HealthObservations,
    options: ClientOptions,
    now: DateTime<Utc>,
) -> (B2Report, Option<SecretString>) {
    let owned = &obs.ownership;
    let guid = plan::resolve_device_guid(
        desired,
        observed,
        &obs.guid_property,
        obs.configured_root.as_deref(),
    );
    let mut expected = Expected {
        key_id: desired.b2.key_id.clone(),
        bucket: desired.bucket.clone(),
        device_guid: guid
            .as_ref()
            .map(|(g, _)| g.hyphenated().to_string())
            .unwrap_or_default(),
        pools: pools.to_vec(),
        rclone_version: None,
    };
    if let Err(e) = &guid {
        let reason = format!("not checked: the device GUID is unknown ({e})");
        return (unavailable(&expected, &reason, now), None);
    }
    let Some(credential) = credential_for(desired, observed, pools, owned) else {
        let reason = format!(
            "not checked: no cloud credential for bucket {} on this NAS (SOP 5.1)",
            desired.bucket
        );
        return (unavailable(&expected, &reason, now), None);
    };
    let (key_id, application_key) =
        match b2::credential::read_b2_key(mw, i64::try_from(credential).unwrap_or(-1)).await {
            Ok(key) => key,
            Err(e) => {
                let reason = format!("not checked: {e}");
                return (unavailable(&expected, &reason, now), None);
            }
        };
    expected.key_id.clone_from(&key_id);
    let inputs = B2Inputs {
        key_id,
        application_key: application_key.clone(),
        bucket: expected.bucket.clone(),
        device_guid: expected.device_guid.clone(),
        pools: expected.pools.clone(),
        api_base: options.api_base.clone(),
        rclone_version: None,
    };
    let report = b2::verify_with(&inputs, options, now).await;
    (report, Some(application_key))
}

/// The credential the pools' Cloud Sync tasks use; else the one named like the bucket
/// (SOP 5.1); else the one the agent owns.
fn credential_for(
    desired: &DesiredState,
    observed: &Observed,
    pools: &[String],
    owned: &Ownership,
) -> Option<u64> {
    let from_task = pools.iter().find_map(|pool| {
        tasks::cloud_sync_task(pool, observed, owned, Some(&desired.bucket))
            .and_then(|(task, _)| task.credential_id)
    });
    from_task
        .or_else(|| {
            observed
                .credentials
                .iter()
                .find(|c| c.name == desired.bucket)
                .map(|c| c.id)
        })
        .or_else(|| owned.credential.as_ref().map(|c| c.id))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn last_runs_and_successes() {
        let mut runs = decode_last_runs(&json!([
            {"id": 1, "job": {"id": 9, "state": "FAILED", "error": "x",
                              "time_finished": {"$date": 1_700_000_100_000_i64}}},
            {"id": 2, "job": null},
            {"description": "no id"}
        ]));
        assert_eq!(runs.len(), 2);
        assert_eq!(runs[&1].last.as_ref().unwrap().state, JobState::Failed);
        assert!(runs[&2].last.is_none());
        attach_successes(
            &mut runs,
            &json!([
                {"id": 8, "method": "cloudsync.sync", "arguments": [1], "state": "SUCCESS",
                 "time_finished": {"$date": 1_700_000_000_000_i64}},
                {"id": 7, "method": "cloudsync.sync", "arguments": [1, {"dry_run": true}],
                 "state": "SUCCESS", "time_finished": {"$date": 1_700_000_050_000_i64}},
                {"id": 5, "method": "cloudsync.sync", "arguments": [1, {"dry_run": false}],
                 "state": "SUCCESS", "time_finished": {"$date": 1_699_000_000_000_i64}},
                {"id": 4, "method": "cloudsync.sync", "arguments": [3], "state": "SUCCESS"}
            ]),
        );
        let success = runs[&1].last_success.as_ref().unwrap();
        assert_eq!(
            success.id,
            Some(8),
            "the dry run is skipped, the newest wins"
        );
        assert!(runs[&3].last.is_none() && runs[&3].last_success.is_some());
    }

    #[test]
    fn a_dry_run_job_field_is_replaced_by_the_last_real_run() {
        let mut runs = decode_last_runs(&json!([
            {"id": 1, "job": {"id": 12, "state": "SUCCESS", "arguments": [1, {"dry_run": true}],
                              "time_finished": {"$date": 1_700_000_300_000_i64}}},
            {"id": 2, "job": {"id": null, "state": "SUCCESS", "arguments": [2, {"dry_run": true}]}}
        ]));
        assert!(runs[&1].dry_run_shown && runs[&1].last.is_none());
        assert!(runs[&2].dry_run_shown && runs[&2].last.is_none());
        attach_real_runs(
            &mut runs,
            1,
            &json!([
                {"id": 12, "state": "SUCCESS", "arguments": [1, {"dry_run": true}]},
                {"id": 11, "state": "WAITING", "arguments": [1]},
                {"id": 10, "state": "RUNNING", "arguments": [1]},
                {"id": 9, "state": "SUCCESS", "arguments": [1],
                 "time_finished": {"$date": 1_700_000_000_000_i64}}
            ]),
        );
        let last = runs[&1].last.as_ref().unwrap();
        assert_eq!(
            last.id,
            Some(10),
            "a RUNNING run wins over a newer WAITING one"
        );
        assert_eq!(runs[&1].last_success.as_ref().unwrap().id, Some(9));
        // Nothing real among the runs the middleware still holds: unknown.
        attach_real_runs(
            &mut runs,
            2,
            &json!([{"id": 3, "state": "SUCCESS", "arguments": [2, {"dry_run": true}]}]),
        );
        assert!(runs[&2].last.is_none() && runs[&2].last_success.is_none());
    }

    #[test]
    fn snapshot_states_alerts_and_names() {
        let states = decode_snapshot_states(&json!([
            {"id": 1, "state": {"state": "PENDING"}},
            {"id": 2, "state": {"state": "ERROR", "datetime": {"$date": 1_700_000_000_000_i64},
                                "error": "cannot create snapshot: out of space"}},
            {"id": 3, "state": {"state": "HOLD", "reason": "replication running"}},
            {"id": 4, "state": {"state": "FINISHED", "last_snapshot": "pool0@auto-2026-11-23_10-00"}}
        ]));
        assert_eq!(states[&1].state, "PENDING");
        assert!(
            states[&2]
                .error
                .as_deref()
                .unwrap()
                .contains("out of space")
        );
        assert_eq!(states[&3].error.as_deref(), Some("replication running"));
        assert_eq!(
            states[&4].last_snapshot.as_deref(),
            Some("pool0@auto-2026-11-23_10-00")
        );
        let alerts = decode_alerts(&json!([
            {"klass": "CloudSyncTaskFailed", "level": "ERROR", "formatted": "Cloud sync task \"Pool0 Cloud Backup\" failed.", "dismissed": false},
            {"klass": "CloudSyncTaskFailed", "level": "ERROR", "formatted": "old", "dismissed": true},
            {"klass": "NTPHealthCheck", "level": "WARNING", "formatted": "ntp"}
        ]));
        assert_eq!(alerts.len(), 1);
        assert_eq!(alerts[0].klass, "CloudSyncTaskFailed");
        assert_eq!(
            decode_names(
                &json!([{"name": "pool0@auto-2026-11-23_10-00"}, {"name": "pool0@manual"}, {"name": "bad"}]),
                "auto-"
            ),
            vec!["auto-2026-11-23_10-00"]
        );
    }
}
