//! `cloudsync.*` — Cloud Sync tasks and their runs (`MW/plugins/cloud_sync.py`).
//!
//! Owns: task query entries (credential as the full object in the version's shape, `job`
//! = last run, dry runs included, `locked`), create/update/delete, `sync` (a job under the
//! lock `cloud_sync:{args[-1]}` computed from the raw params; a job of that lock already
//! queued is handed back instead), `abort`, `list_buckets`, `list_directory`,
//! `providers`, and the outcome of a
//! run (`finish_run`): locked dataset, injected failure, missing path, bad key, unknown
//! bucket, or success — with the `CloudSyncTaskFailed` alert raised or cleared.
//! Does not: move data (a run succeeds or fails; nothing is uploaded) or schedule runs.
//! Invariants: stored tasks are complete (B2 attribute defaults filled); `update` merges at
//! the top level, so a given `attributes`/`schedule`/`bwlimit` replaces the stored one.
//! Limitations: remote folders are not modelled (`list_directory` answers an empty folder).

use serde_json::{Value, json};

use super::super::core::{Core, Ctx, Job, JobFailure, JobKind, JobState, Reply, RpcError};
use super::super::rules;
use super::super::scenario::CloudSyncTask;
use super::table::{Row, Table, from_object, to_object};
use super::{credentials, id_param, object_param, verdict};

/// Every task, rendered as `cloudsync.query` returns it.
pub(crate) fn entries(core: &Core) -> Result<Vec<Value>, RpcError> {
    core.state
        .cloud_sync_tasks
        .iter()
        .map(|t| render(core, t))
        .collect()
}

fn render(core: &Core, t: &CloudSyncTask) -> Result<Value, RpcError> {
    let mut v = to_object(t)?;
    v.remove("last_run");
    let credential = core
        .state
        .credential(t.credentials)
        .map_or(Value::Null, |c| credentials::render(c, core.flavor()));
    v.insert("credentials".into(), credential);
    v.insert("job".into(), task_job(core, t).unwrap_or(Value::Null));
    v.insert(
        "locked".into(),
        Value::Bool(rules::path_is_locked(&core.state, &t.path)),
    );
    if core.flavor() >= truenas_agent::middleware::ApiFlavor::V26_0 {
        // 26.0: `dataset`/`relative_path`, resolved from `path` (`MW/utils/mount.py`
        // `resolve_dataset_path`: null/null while the dataset cannot be resolved, e.g.
        // locked).
        let (dataset, relative) = resolve_dataset_path(&core.state, &t.path);
        v.insert("dataset".into(), dataset.map_or(Value::Null, Value::from));
        v.insert(
            "relative_path".into(),
            relative.map_or(Value::Null, Value::from),
        );
    }
    Ok(Value::Object(v))
}

/// The deepest unlocked dataset whose mountpoint holds `path`, and the rest of the path
/// (`""` at the dataset's root).
fn resolve_dataset_path(
    state: &super::super::scenario::Scenario,
    path: &str,
) -> (Option<String>, Option<String>) {
    let Some(rest) = path.trim_end_matches('/').strip_prefix("/mnt/") else {
        return (None, None);
    };
    let best = state
        .datasets
        .iter()
        .filter(|d| rest == d.name || rest.starts_with(&format!("{}/", d.name)))
        .max_by_key(|d| d.name.len());
    match best {
        Some(d) if !d.locked => {
            let relative = rest[d.name.len()..].trim_start_matches('/').to_owned();
            (Some(d.name.clone()), Some(relative))
        }
        _ => (None, None),
    }
}

/// The task's `job` field (`utils/service/task_state.py`): the newest live run, except that
/// a RUNNING run wins over a newer WAITING one; else the persisted copy of the last run.
fn task_job(core: &Core, t: &CloudSyncTask) -> Option<Value> {
    let mut pick: Option<&Job> = None;
    for j in core.jobs.values().filter(|j| j.kind_is_run_of(t.id)) {
        if pick.is_some_and(|p| p.state == JobState::Running) {
            continue;
        }
        pick = Some(j);
    }
    pick.and_then(|j| core.render_job(j.id))
        .or_else(|| t.last_run.clone())
}

impl Job {
    fn kind_is_run_of(&self, task: u64) -> bool {
        matches!(self.kind, JobKind::CloudSync { task: t, .. } if t == task)
    }
}

/// `cloudsync.create [task]`.
pub(crate) fn create(
    core: &mut Core,
    _ctx: &mut Ctx<'_>,
    params: &[Value],
) -> Result<Value, RpcError> {
    let mut data = object_param(params, 0);
    verdict(rules::cloud_sync(
        &core.state,
        "cloud_sync_create",
        &mut data,
    ))?;
    let task = Table::<CloudSyncTask>::insert(core, data)?;
    render(core, &task)
}

/// `cloudsync.update [id, partial]`: top-level merge into the stored task, then the create rules.
pub(crate) fn update(
    core: &mut Core,
    _ctx: &mut Ctx<'_>,
    params: &[Value],
) -> Result<Value, RpcError> {
    let mut data =
        Table::<CloudSyncTask>::merged(core, id_param(params, 0), object_param(params, 1))?;
    verdict(rules::cloud_sync(
        &core.state,
        "cloud_sync_update",
        &mut data,
    ))?;
    let task: CloudSyncTask = from_object(data)?;
    Table::replace(core, task.clone())?;
    render(core, &task)
}

/// `cloudsync.delete [id]`: aborts a run, removes the failure alert, deletes.
pub(crate) fn delete(
    core: &mut Core,
    ctx: &mut Ctx<'_>,
    params: &[Value],
) -> Result<Value, RpcError> {
    let task = Table::<CloudSyncTask>::find(core, id_param(params, 0))?;
    abort_task(core, &task, ctx.now_ms);
    core.clear_alert("CloudSyncTaskFailed", &task.id.to_string());
    Table::<CloudSyncTask>::remove(core, task.id);
    Ok(Value::Bool(true))
}

/// `cloudsync.sync [id, {dry_run}]`: a job under the lock `cloud_sync:{args[-1]}`,
/// computed from the params as sent (`@job(lock=lambda args: …, lock_queue_size=1)` in
/// `MW/plugins/cloud_sync.py`; `MW/main.py` hands the raw params to `Job`): `[5]` locks
/// `cloud_sync:5`, `[5, {"dry_run": false}]` locks `cloud_sync:{'dry_run': False}` —
/// shared by every task sent that options object. With a job of the same lock already
/// queued (WAITING), that job's id is returned instead of a new job (`MW/job.py`
/// `JobsQueue.add`), whichever task it runs. The job's `arguments` are the params as
/// sent. An unknown id still gets a job, which then fails: the middleware looks the task
/// up inside the job.
pub(crate) fn sync(core: &mut Core, ctx: &mut Ctx<'_>, params: &[Value]) -> Reply {
    let id = id_param(params, 0);
    // A negative id names no task; its run is a run of task 0, which cannot exist.
    let task = u64::try_from(id).unwrap_or(0);
    let lock = lock_name(params);
    let queued = core
        .jobs
        .values()
        .filter(|j| j.state == JobState::Waiting && j.lock.is_some() && j.lock == lock)
        .map(|j| j.id)
        .next_back();
    if let Some(queued) = queued {
        return Reply::Job(queued);
    }
    let dry_run = object_param(params, 1)
        .get("dry_run")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let job = core.create_job(
        "cloudsync.sync",
        params.to_vec(),
        JobKind::CloudSync { task, dry_run },
        ctx,
    );
    if let Some(j) = core.jobs.get_mut(&job) {
        j.lock = lock;
    }
    Reply::Job(job)
}

/// `cloudsync.sync`'s job lock for these params: `"cloud_sync:{}".format(args[-1])`.
pub(crate) fn lock_name(params: &[Value]) -> Option<String> {
    params
        .last()
        .map(|last| format!("cloud_sync:{}", py_str(last)))
}

/// Python's `str(value)` of a JSON-decoded value (what `"{}".format(value)` prints).
fn py_str(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => py_repr(other),
    }
}

/// Python's `repr(value)` of a JSON-decoded value. Object keys come in serde_json's
/// (sorted) order, not the order they were sent.
fn py_repr(value: &Value) -> String {
    match value {
        Value::Null => "None".to_owned(),
        Value::Bool(true) => "True".to_owned(),
        Value::Bool(false) => "False".to_owned(),
        Value::Number(n) => match (n.as_i64(), n.as_u64(), n.as_f64()) {
            (Some(i), _, _) => i.to_string(),
            (None, Some(u), _) => u.to_string(),
            (None, None, Some(f)) if f.fract() == 0.0 && f.abs() < 1e16 => format!("{f:.1}"),
            _ => n.to_string(),
        },
        Value::String(s) => {
            if s.contains('\'') && !s.contains('"') {
                format!("\"{}\"", s.replace('\\', "\\\\"))
            } else {
                format!("'{}'", s.replace('\\', "\\\\").replace('\'', "\\'"))
            }
        }
        Value::Array(items) => format!(
            "[{}]",
            items.iter().map(py_repr).collect::<Vec<_>>().join(", ")
        ),
        Value::Object(map) => format!(
            "{{{}}}",
            map.iter()
                .map(|(k, v)| format!("{}: {}", py_repr(&Value::from(k.as_str())), py_repr(v)))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// `cloudsync.abort [id]`: true if a WAITING/RUNNING run was aborted.
pub(crate) fn abort(
    core: &mut Core,
    ctx: &mut Ctx<'_>,
    params: &[Value],
) -> Result<Value, RpcError> {
    let task = Table::<CloudSyncTask>::find(core, id_param(params, 0))?;
    Ok(Value::Bool(abort_task(core, &task, ctx.now_ms)))
}

fn abort_task(core: &mut Core, task: &CloudSyncTask, now_ms: i64) -> bool {
    let live = core
        .jobs
        .values()
        .filter(|j| j.kind_is_run_of(task.id) && !j.state.is_terminal())
        .map(|j| j.id)
        .collect::<Vec<_>>();
    live.into_iter()
        .fold(false, |any, j| core.job_abort(j, now_ms) | any)
}

/// Decides how a run ends, from the box as it is when the run finishes.
pub(crate) fn finish_run(
    core: &mut Core,
    job: &Job,
    task_id: u64,
    _dry_run: bool,
    now_ms: i64,
) -> Result<Value, JobFailure> {
    let Some(task) = core
        .state
        .cloud_sync_tasks
        .iter()
        .find(|t| t.id == task_id)
        .cloned()
    else {
        return Err(JobFailure::plain(format!(
            "[ENOENT] None: {} {task_id} does not exist",
            <CloudSyncTask as Row>::SERVICE
        )));
    };
    if rules::path_is_locked(&core.state, &task.path) {
        // middleware: cloudsync.sync raises before rclone runs, after a TaskLocked alert.
        core.raise_alert(
            "TaskLocked",
            &format!("cloudsync_{}", task.id),
            json!({"identifier": task.description, "type": "Cloud Sync"}),
            format!(
                "Cloud Sync \"{}\" will not be executed because it uses a locked dataset.",
                task.description
            ),
            now_ms,
        );
        return Err(JobFailure::call_error("Dataset is locked"));
    }
    let outcome = match job.planned_failure.clone() {
        Some(text) => Err(JobFailure::call_error(&text)),
        None => rclone_outcome(core, &task),
    };
    let key = task.id.to_string();
    match &outcome {
        Ok(_) => core.clear_alert("CloudSyncTaskFailed", &key),
        Err(_) => core.raise_alert(
            "CloudSyncTaskFailed",
            &key,
            json!({"id": task.id, "name": task.description}),
            format!("Cloud sync task \"{}\" failed.", task.description),
            now_ms,
        ),
    }
    outcome
}

/// What rclone would report for this task against the simulated B2 side.
fn rclone_outcome(core: &Core, task: &CloudSyncTask) -> Result<Value, JobFailure> {
    if rules::dataset_of_path(&core.state, &task.path).is_none() {
        return Err(JobFailure::call_error(&format!(
            "Directory {:?} does not exist",
            task.path
        )));
    }
    let Some(credential) = core.state.credential(task.credentials) else {
        return Err(JobFailure::call_error("Invalid credentials"));
    };
    let account = credential
        .attributes
        .get("account")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let bucket = task
        .attributes
        .get("bucket")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let remote = remote_path(task);
    match core.state.b2_account(account) {
        Some(a) if !a.valid => Err(JobFailure::call_error(&format!(
            "Failed to create file system for \"remote:{remote}\": failed to authorize account: failed to authenticate: \
             Unauthorized: unauthorized (401 bad_auth_token)"
        ))),
        Some(a)
            if a.buckets
                .as_ref()
                .is_some_and(|l| !l.iter().any(|b| b == bucket)) =>
        {
            Err(JobFailure::call_error(&format!(
                "ERROR : Attempt 3/3 failed with 1 errors and: failed to create bucket: not allowed to create bucket \
             \"{bucket}\" (401 unauthorized)"
            )))
        }
        _ => Ok(Value::Null),
    }
}

/// `bucket/folder` with the folder's slashes trimmed (`plugins/cloud/path.py`).
fn remote_path(task: &CloudSyncTask) -> String {
    let bucket = task
        .attributes
        .get("bucket")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let folder = task
        .attributes
        .get("folder")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .trim_matches('/');
    if folder.is_empty() {
        bucket.to_owned()
    } else {
        format!("{bucket}/{folder}")
    }
}

/// Keeps the finished run in the task row (`id` and `logs_path` null), as
/// `persist_task_state_on_job_complete` does.
pub(crate) fn persist_last_run(core: &mut Core, job: &Job) {
    let JobKind::CloudSync { task, .. } = job.kind else {
        return;
    };
    let Some(mut copy) = core.render_job(job.id) else {
        return;
    };
    copy["id"] = Value::Null;
    copy["logs_path"] = Value::Null;
    if let Some(t) = core
        .state
        .cloud_sync_tasks
        .iter_mut()
        .find(|t| t.id == task)
    {
        t.last_run = Some(copy);
    }
}

/// `cloudsync.list_buckets [credentials_id]`: rclone `lsjson` items of the buckets.
pub(crate) fn list_buckets(core: &Core, params: &[Value]) -> Result<Value, RpcError> {
    let id = id_param(params, 0);
    let credential = u64::try_from(id)
        .ok()
        .and_then(|id| core.state.credential(id));
    let Some(credential) = credential else {
        return Err(RpcError::call("Invalid credentials"));
    };
    let account = credential
        .attributes
        .get("account")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let buckets = match core.state.b2_account(account) {
        Some(a) if !a.valid => return Err(rclone_auth_error()),
        Some(a) => a.buckets.clone().unwrap_or_default(),
        None => Vec::new(),
    };
    Ok(Value::from(
        buckets
            .iter()
            .map(|b| {
                json!({"Path": b, "Name": b, "Size": -1, "MimeType": "inode/directory",
                       "ModTime": "2025-01-01T00:00:00.000000000Z", "IsDir": true, "IsBucket": true, "Enabled": true})
            })
            .collect::<Vec<_>>(),
    ))
}

fn rclone_auth_error() -> RpcError {
    let stderr = "2025/01/01 00:00:00 Failed to create file system for \"remote:\": failed to authorize account: \
                  failed to authenticate: Unauthorized: unauthorized (401 bad_auth_token)\n";
    RpcError::Call {
        errno: super::super::core::errno::EFAULT,
        message: stderr.to_owned(),
        extra: Some(
            json!({"excerpt": "failed to authorize account: failed to authenticate: Unauthorized: unauthorized (401 bad_auth_token)"}),
        ),
    }
}

/// `cloudsync.list_directory [{credentials, attributes, ...}]`: validated like a task; the
/// simulated remote folder is empty.
pub(crate) fn list_directory(core: &Core, params: &[Value]) -> Result<Value, RpcError> {
    let mut data = object_param(params, 0);
    verdict(rules::task_basics(&core.state, "cloud_sync", &mut data))?;
    let credential = data
        .get("credentials")
        .and_then(Value::as_u64)
        .and_then(|id| core.state.credential(id));
    let account = credential
        .and_then(|c| c.attributes.get("account"))
        .and_then(Value::as_str)
        .unwrap_or_default();
    match core.state.b2_account(account) {
        Some(a) if !a.valid => Err(rclone_auth_error()),
        _ => Ok(Value::Array(Vec::new())),
    }
}

/// `cloudsync.providers []` (B2 only: the one provider the simulator models).
pub(crate) fn providers(core: &Core) -> Value {
    let mut b2 = json!({
        "name": "B2", "title": "Backblaze B2", "credentials_oauth": null, "buckets": true,
        "bucket_title": "Bucket",
        "task_schema": [
            {"property": "chunk_size", "schema": {"type": "integer", "title": "Upload chunk size (in megabytes)", "_required_": false}},
            {"property": "fast_list", "schema": {"type": "boolean", "title": "Use --fast-list", "_required_": false}},
        ],
    });
    if core.flavor() == truenas_agent::middleware::ApiFlavor::V24_10 {
        b2["credentials_schema"] = json!([
            {"property": "account", "schema": {"type": "string", "title": "Account ID or Application Key ID", "_required_": true}},
            {"property": "key", "schema": {"type": "string", "title": "Application Key", "_required_": true}},
        ]);
    }
    Value::from(vec![b2])
}
