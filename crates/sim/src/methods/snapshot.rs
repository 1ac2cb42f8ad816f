//! `pool.snapshottask.*`, snapshot listing and counting (`MW/plugins/snapshot.py`,
//! `MW/plugins/zfs_/snapshot.py`, `MW/plugins/pool_/snapshot.py`).
//!
//! Owns: periodic snapshot task entries (with `vmware_sync` and the zettarepl `state`;
//! `last_snapshot` on 25.10+), create/update/delete, `run` (takes the snapshots now:
//! the dataset, its descendants when recursive, minus excludes; a job on 27.0, whose
//! lookup and checks fail the job instead of the call — `MW/plugins/snapshot/__init__.py`,
//! master), `zfs.snapshot.query` / `pool.snapshot.query`, `pool.dataset.snapshot_count`,
//! and 26.0's `zfs.resource.snapshot.query` / `.count` (`MW/plugins/zfs/snapshot_crud.py`).
//! Does not: expire snapshots (no retention clock) or run tasks on their schedule.
//! Invariants: `run` emits `pool.snapshottask.query` CHANGED with `{state}` for RUNNING
//! then FINISHED/ERROR, as zettarepl's state hook does.
//! Limitations: snapshot names use UTC; `properties`/`holds` are minimal.

use serde_json::{Map, Value, json};

use super::super::core::{Core, Ctx, EventKind, JobFailure, JobKind, Reply, RpcError, date};
use super::super::rules;
use super::super::scenario::{Snapshot, SnapshotTask, TaskState};
use super::table::{Table, from_object, to_object};
use super::{answer, id_param, object_param, verdict};
use truenas_agent::middleware::ApiFlavor;

/// Every task, rendered as `pool.snapshottask.query` returns it.
pub(crate) fn entries(core: &Core) -> Result<Vec<Value>, RpcError> {
    core.state
        .snapshot_tasks
        .iter()
        .map(|t| render(core, t))
        .collect()
}

fn render(core: &Core, t: &SnapshotTask) -> Result<Value, RpcError> {
    let mut v = to_object(t)?;
    v.insert("vmware_sync".into(), Value::Bool(false));
    v.insert(
        "state".into(),
        render_state(t.state.as_ref(), core.flavor()),
    );
    Ok(Value::Object(v))
}

fn render_state(state: Option<&TaskState>, flavor: ApiFlavor) -> Value {
    let Some(s) = state else {
        return json!({"state": "PENDING"});
    };
    let mut v = json!({"state": s.state, "datetime": date(s.datetime_ms)});
    if let Some(e) = &s.error {
        v["error"] = Value::from(e.clone());
    }
    if let Some(r) = &s.reason {
        v["reason"] = Value::from(r.clone());
    }
    if flavor >= ApiFlavor::V25_10 {
        v["last_snapshot"] = s.last_snapshot.clone().map_or(Value::Null, Value::from);
    }
    v
}

/// `pool.snapshottask.create [data]`.
pub(crate) fn create(core: &mut Core, params: &[Value]) -> Result<Value, RpcError> {
    let data = object_param(params, 0);
    verdict(rules::snapshot_task(
        &core.state,
        "periodic_snapshot_create",
        &data,
    ))?;
    let task = Table::<SnapshotTask>::insert(core, data)?;
    render(core, &task)
}

/// `pool.snapshottask.update [id, partial]` (`schedule` replaced whole).
pub(crate) fn update(core: &mut Core, params: &[Value]) -> Result<Value, RpcError> {
    let mut partial = object_param(params, 1);
    partial.remove("fixate_removal_date");
    let data = Table::<SnapshotTask>::merged(core, id_param(params, 0), partial)?;
    verdict(rules::snapshot_task(
        &core.state,
        "periodic_snapshot_update",
        &data,
    ))?;
    let task: SnapshotTask = from_object(data)?;
    Table::replace(core, task.clone())?;
    render(core, &task)
}

/// `pool.snapshottask.delete [id, options]`.
pub(crate) fn delete(core: &mut Core, params: &[Value]) -> Result<Value, RpcError> {
    let old = Table::<SnapshotTask>::find(core, id_param(params, 0))?;
    Table::<SnapshotTask>::remove(core, old.id);
    Ok(Value::Bool(true))
}

/// `pool.snapshottask.run [id]`: not a job; takes the task's snapshots now.
pub(crate) fn run(core: &mut Core, ctx: &mut Ctx<'_>, params: &[Value]) -> Result<Reply, RpcError> {
    let id = id_param(params, 0);
    if core.flavor() >= ApiFlavor::V27_0 {
        // 27.0: `@job()` (`4b7769149f`): the call returns the job id; the job's result is
        // null and a missing or disabled task fails the job.
        let job = core.create_job(
            "pool.snapshottask.run",
            params.to_vec(),
            JobKind::SnapshotTaskRun { task: id },
            ctx,
        );
        return Ok(Reply::Job(job));
    }
    run_now(core, id, ctx.now_ms).map(|()| Reply::Value(Value::Null))
}

/// The end of a 27.0 `pool.snapshottask.run` job.
pub(crate) fn finish_run_job(core: &mut Core, task: i64, now_ms: i64) -> Result<Value, JobFailure> {
    run_now(core, task, now_ms)
        .map(|()| Value::Null)
        .map_err(|e| match e {
            RpcError::NotFound(text) => JobFailure::plain(format!("[ENOENT] {text}")),
            RpcError::Call { message, .. } => JobFailure::call_error(&message),
            other => JobFailure::plain(format!("{other:?}")),
        })
}

/// Runs task `id` now, as zettarepl does: RUNNING, then the snapshots and FINISHED, or
/// ERROR with a `SnapshotFailed` alert (which is not an error of the call).
pub(crate) fn run_now(core: &mut Core, id: i64, now: i64) -> Result<(), RpcError> {
    let task = Table::<SnapshotTask>::find(core, id)?;
    if !task.enabled {
        return Err(RpcError::call("Task is not enabled"));
    }
    set_state(
        core,
        task.id,
        TaskState {
            state: "RUNNING".into(),
            datetime_ms: now,
            error: None,
            reason: None,
            last_snapshot: None,
        },
    );
    let failure = core.faults.snapshot_failures.pop_front().or_else(|| {
        core.state
            .dataset(&task.dataset)
            .filter(|d| d.locked)
            .map(|_| format!("Dataset {:?} is locked", task.dataset))
    });
    if let Some(error) = failure {
        set_state(
            core,
            task.id,
            TaskState {
                state: "ERROR".into(),
                datetime_ms: now,
                error: Some(error.clone()),
                reason: None,
                last_snapshot: None,
            },
        );
        core.raise_alert(
            "SnapshotFailed",
            &task.dataset,
            json!({"dataset": task.dataset, "snapshot": null, "error": error}),
            format!(
                "Snapshot Task For Dataset \"{}\" failed: {error}.",
                task.dataset
            ),
            now,
        );
        return Ok(());
    }
    let name = snapshot_name(&task.naming_schema, now);
    let last = take_snapshots(core, &task, &name, now);
    core.clear_alert("SnapshotFailed", &task.dataset);
    set_state(
        core,
        task.id,
        TaskState {
            state: "FINISHED".into(),
            datetime_ms: now,
            error: None,
            reason: None,
            last_snapshot: Some(last),
        },
    );
    Ok(())
}

fn set_state(core: &mut Core, id: u64, state: TaskState) {
    let rendered = render_state(Some(&state), core.flavor());
    if let Some(t) = core.state.snapshot_tasks.iter_mut().find(|t| t.id == id) {
        t.state = Some(state);
    }
    core.emit(
        "pool.snapshottask.query",
        EventKind::Changed,
        Value::from(id),
        Some(json!({"state": rendered})),
    );
}

fn take_snapshots(core: &mut Core, task: &SnapshotTask, name: &str, now: i64) -> String {
    let mut targets = vec![task.dataset.clone()];
    if task.recursive {
        let excluded = |d: &str| {
            task.exclude
                .iter()
                .any(|e| d == e || d.starts_with(&format!("{e}/")))
        };
        targets.extend(
            rules::descendants(&core.state, &task.dataset)
                .into_iter()
                .filter(|d| !excluded(d)),
        );
    }
    for dataset in &targets {
        let exists = core
            .state
            .snapshots
            .iter()
            .any(|s| &s.dataset == dataset && s.name == name);
        if !exists {
            let createtxg = core.next_txg();
            core.state.snapshots.push(Snapshot {
                dataset: dataset.clone(),
                name: name.to_owned(),
                createtxg,
                task_id: Some(task.id),
                created_ms: now,
            });
        }
    }
    format!("{}@{name}", task.dataset)
}

/// strftime of the naming schema at `now_ms` (UTC); `%s` is the epoch second.
pub(crate) fn snapshot_name(schema: &str, now_ms: i64) -> String {
    let at = chrono::DateTime::from_timestamp_millis(now_ms).unwrap_or_default();
    let mut out = String::new();
    for item in chrono::format::StrftimeItems::new(schema) {
        let piece = at.format_with_items(std::iter::once(item)).to_string();
        out.push_str(&piece);
    }
    out.replace('+', ":")
}

fn render_snapshot(core: &Core, s: &Snapshot, with_retention: bool) -> Value {
    let id = format!("{}@{}", s.dataset, s.name);
    let pool = s.dataset.split('/').next().unwrap_or_default();
    let mut v = json!({
        "id": id, "name": id, "pool": pool, "dataset": s.dataset, "snapshot_name": s.name,
        "type": "SNAPSHOT", "createtxg": s.createtxg.to_string(), "properties": {},
    });
    if with_retention {
        let task = s
            .task_id
            .and_then(|t| core.state.snapshot_tasks.iter().find(|x| x.id == t));
        v["retention"] = task.map_or(Value::Null, |t| {
            json!({"datetime": date(s.created_ms + lifetime_ms(t)), "source": "periodic_snapshot_task",
                   "periodic_snapshot_task_id": t.id})
        });
    }
    v
}

fn lifetime_ms(t: &SnapshotTask) -> i64 {
    let unit = match t.lifetime_unit.as_str() {
        "HOUR" => 3_600_000,
        "DAY" => 86_400_000,
        "WEEK" => 604_800_000,
        "MONTH" => 2_678_400_000,
        _ => 31_536_000_000,
    };
    t.lifetime_value.saturating_mul(unit)
}

/// `zfs.snapshot.query` (24.10/25.04) / `pool.snapshot.query` (25.10).
pub(crate) fn query_snapshots(core: &Core, params: &[Value]) -> Result<Value, RpcError> {
    let retention = params
        .get(1)
        .and_then(|o| o.get("extra"))
        .and_then(|e| e.get("retention"))
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let entries = core
        .state
        .snapshots
        .iter()
        .map(|s| render_snapshot(core, s, retention))
        .collect();
    answer(entries, params)
}

/// `paths` and `recursive` of a `zfs.resource.snapshot.*` query: whether `dataset`'s
/// snapshots are selected (no paths = every dataset).
fn resource_selected(q: &Map<String, Value>, dataset: &str) -> bool {
    let recursive = q.get("recursive").and_then(Value::as_bool).unwrap_or(false);
    let paths: Vec<&str> = q
        .get("paths")
        .and_then(Value::as_array)
        .map(|l| l.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    paths.is_empty()
        || paths
            .iter()
            .any(|p| dataset == *p || (recursive && dataset.starts_with(&format!("{p}/"))))
}

/// `zfs.resource.snapshot.query [data]` (26.0+).
pub(crate) fn resource_snapshot_query(core: &Core, params: &[Value]) -> Value {
    let q = object_param(params, 0);
    let user = q
        .get("get_user_properties")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let holds = q.get("get_holds").and_then(Value::as_bool).unwrap_or(false);
    core.state
        .snapshots
        .iter()
        .filter(|s| resource_selected(&q, &s.dataset))
        .map(|s| {
            let name = format!("{}@{}", s.dataset, s.name);
            json!({
                "name": name, "pool": s.dataset.split('/').next().unwrap_or_default(),
                "dataset": s.dataset, "snapshot_name": s.name, "type": "SNAPSHOT",
                "createtxg": s.createtxg, "guid": 5_000_000 + s.createtxg,
                "holds": if holds { json!([]) } else { Value::Null },
                "properties": {},
                "user_properties": if user { json!({}) } else { Value::Null },
            })
        })
        .collect()
}

/// `zfs.resource.snapshot.count [data]` (26.0+): `{dataset: count}`.
pub(crate) fn resource_snapshot_count(core: &Core, params: &[Value]) -> Value {
    let q = object_param(params, 0);
    let mut counts = Map::new();
    for s in core
        .state
        .snapshots
        .iter()
        .filter(|s| resource_selected(&q, &s.dataset))
    {
        let n = counts.get(&s.dataset).and_then(Value::as_u64).unwrap_or(0);
        counts.insert(s.dataset.clone(), Value::from(n + 1));
    }
    Value::Object(counts)
}

/// `pool.dataset.snapshot_count [dataset]`: snapshots of that dataset only.
pub(crate) fn count(core: &Core, params: &[Value]) -> Value {
    let dataset = params.first().and_then(Value::as_str).unwrap_or_default();
    Value::from(
        core.state
            .snapshots
            .iter()
            .filter(|s| s.dataset == dataset)
            .count(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_schema() {
        // 2024-03-05 07:09 UTC
        let ms = 1_709_622_540_000;
        assert_eq!(
            snapshot_name("auto-%Y-%m-%d_%H-%M", ms),
            "auto-2024-03-05_07-09"
        );
        assert_eq!(snapshot_name("snap-%s", ms), "snap-1709622540");
    }
}
