//! Method handlers: one function per middleware method, grouped by plugin.
//!
//! Owns: the dispatch table ([`call`]) from a method name to its handler, and helpers
//! shared by handlers (params access, query answering, not-found errors; the CRUD steps
//! of a table in `table.rs`).
//! Does not: check params types (done before, in `Core::dispatch`) or do I/O.
//! Invariants: a handler validates everything (rules.rs) before its first write, so a
//! rejected call leaves the box unchanged; CRUD writes emit `<namespace>.query` events
//! (`ADDED`/`CHANGED`/`REMOVED` with the id, and from 25.10 on the stored entry as
//! `fields` — [`event_fields`]), as `CRUDService` does.
//! Limitations: see each submodule.

pub(crate) mod cloudsync;
pub(crate) mod credentials;
pub(crate) mod initscript;
pub(crate) mod pool;
pub(crate) mod services;
pub(crate) mod snapshot;
pub(crate) mod system;
pub(crate) mod table;

use serde_json::{Map, Value};

use super::core::{Core, Ctx, Reply, RpcError};
use super::query::{self, QueryError};
use super::schema::Issue;

/// Runs the handler of `method` (already known to exist on this version).
pub(crate) fn call(
    core: &mut Core,
    ctx: &mut Ctx<'_>,
    method: &str,
    params: &[Value],
) -> Result<Reply, RpcError> {
    let value = |v: Value| Ok(Reply::Value(v));
    match method {
        "auth.login_with_api_key" => value(system::login_with_api_key(core, ctx, params)),
        "auth.login_ex" => value(system::login_ex(core, ctx, params)),
        "auth.me" => value(system::me(core, ctx)),
        "core.ping" => value(Value::from("pong")),
        "core.get_jobs" => value(answer(core.rendered_jobs(), params)?),
        "core.job_wait" => system::job_wait(core, ctx, params),
        "core.job_abort" => system::job_abort(core, ctx, params).map(Reply::Value),
        "core.subscribe" => value(Value::from(uuid::Uuid::new_v4().to_string())),
        "core.unsubscribe" => value(Value::Null),
        "core.set_options" => value(system::set_options(core, ctx, params)),
        "cloudsync.query" => value(answer(cloudsync::entries(core)?, params)?),
        "cloudsync.create" => cloudsync::create(core, ctx, params).map(Reply::Value),
        "cloudsync.update" => cloudsync::update(core, ctx, params).map(Reply::Value),
        "cloudsync.delete" => cloudsync::delete(core, ctx, params).map(Reply::Value),
        "cloudsync.sync" => Ok(cloudsync::sync(core, ctx, params)),
        "cloudsync.abort" => cloudsync::abort(core, ctx, params).map(Reply::Value),
        "cloudsync.list_buckets" => cloudsync::list_buckets(core, params).map(Reply::Value),
        "cloudsync.list_directory" => cloudsync::list_directory(core, params).map(Reply::Value),
        "cloudsync.providers" => value(cloudsync::providers(core)),
        "cloudsync.credentials.query" => value(answer(credentials::entries(core, ctx), params)?),
        "cloudsync.credentials.create" => credentials::create(core, ctx, params).map(Reply::Value),
        "cloudsync.credentials.update" => credentials::update(core, ctx, params).map(Reply::Value),
        "cloudsync.credentials.delete" => credentials::delete(core, params).map(Reply::Value),
        "cloudsync.credentials.verify" => credentials::verify(core, ctx, params).map(Reply::Value),
        "pool.snapshottask.query" => value(answer(snapshot::entries(core)?, params)?),
        "pool.snapshottask.create" => snapshot::create(core, params).map(Reply::Value),
        "pool.snapshottask.update" => snapshot::update(core, params).map(Reply::Value),
        "pool.snapshottask.delete" => snapshot::delete(core, params).map(Reply::Value),
        "pool.snapshottask.run" => snapshot::run(core, ctx, params),
        "zfs.snapshot.query" | "pool.snapshot.query" => {
            value(snapshot::query_snapshots(core, params)?)
        }
        "pool.dataset.snapshot_count" => value(snapshot::count(core, params)),
        "zfs.resource.snapshot.query" => value(snapshot::resource_snapshot_query(core, params)),
        "zfs.resource.snapshot.count" => value(snapshot::resource_snapshot_count(core, params)),
        "snmp.config" => value(services::snmp_config(core)),
        "snmp.update" => services::snmp_update(core, params).map(Reply::Value),
        "service.query" => value(answer(services::entries(core), params)?),
        "service.update" => services::update(core, params).map(Reply::Value),
        "service.start" => services::start(core, params).map(Reply::Value),
        "service.control" => services::control(core, ctx, params),
        "pool.query" => value(answer(pool::pools(core), params)?),
        "pool.dataset.query" => value(pool::query_datasets(core, params)?),
        "pool.dataset.update" => pool::update_dataset(core, params).map(Reply::Value),
        "pool.dataset.create" => pool::create_dataset(core, params).map(Reply::Value),
        "zfs.resource.query" => value(pool::resource_query(core, params)),
        "system.info" => value(system::info(core, ctx)),
        "system.host_id" => value(Value::from(core.state.system.host_id.clone())),
        "system.version" => value(Value::from(core.state.system.version_full(core.flavor()))),
        "system.version_short" => {
            value(Value::from(core.state.system.version_short(core.flavor())))
        }
        "alert.list" => value(Value::from(
            core.state
                .alerts
                .iter()
                .map(super::core::render_alert)
                .collect::<Vec<_>>(),
        )),
        "initshutdownscript.query" => value(answer(initscript::entries(core)?, params)?),
        "initshutdownscript.create" => initscript::create(core, params).map(Reply::Value),
        "initshutdownscript.update" => initscript::update(core, params).map(Reply::Value),
        "initshutdownscript.delete" => initscript::delete(core, params).map(Reply::Value),
        other => Err(RpcError::NoMethod(other.to_owned())),
    }
}

/// Applies the query params (`[filters, options]`) to rendered entries.
pub(crate) fn answer(entries: Vec<Value>, params: &[Value]) -> Result<Value, RpcError> {
    let filters = params.first().cloned().unwrap_or(Value::Array(Vec::new()));
    let options = params.get(1).cloned().unwrap_or(Value::Object(Map::new()));
    query::run(entries, &filters, &options).map_err(|e| match e {
        QueryError::MatchNotFound => RpcError::Other("MatchNotFound()".to_owned()),
        other => RpcError::Other(other.to_string()),
    })
}

/// Param `i` as an object (empty when absent).
pub(crate) fn object_param(params: &[Value], i: usize) -> Map<String, Value> {
    params
        .get(i)
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default()
}

/// Param `i` as an id (validated as an integer before; negative ids find nothing).
pub(crate) fn id_param(params: &[Value], i: usize) -> i64 {
    params.get(i).and_then(Value::as_i64).unwrap_or(-1)
}

/// `InstanceNotFound("<Service> <id> does not exist")`.
pub(crate) fn not_found(service: &str, id: impl std::fmt::Display) -> RpcError {
    RpcError::NotFound(format!("{service} {id} does not exist"))
}

/// Turns collected issues into an error, or `Ok` when there are none.
pub(crate) fn verdict(issues: Vec<Issue>) -> Result<(), RpcError> {
    if issues.is_empty() {
        Ok(())
    } else {
        Err(RpcError::Invalid(issues))
    }
}

/// The next free id in a table.
pub(crate) fn next_id(ids: impl Iterator<Item = u64>) -> u64 {
    ids.max().unwrap_or(0) + 1
}

/// Merges an update payload into an entry at the top level (nested objects replaced whole).
pub(crate) fn merge_top_level(old: &mut Map<String, Value>, partial: Map<String, Value>) {
    for (k, v) in partial {
        old.insert(k, v);
    }
}

/// The `fields` the middleware sends with an event a handler emitted without them: the
/// entry as stored. `CRUDService` sends `fields=rv` — the answer of `do_create` /
/// `do_update`, which is `get_instance` of the row — from 25.10 on and only the id
/// before (`MW/service/crud_service.py` `_get_crud_wrapper_func`: `send_event(…, id=…)`
/// at TS-24.10.2.4 and TS-25.04.2.6; `kwargs['fields'] = rv` at release/25.10.7,
/// TS-26.0.0-BETA.3 and master); `REMOVED` never has fields (a delete answers `True`).
/// `pool.dataset.query` is sent by `pool.dataset.create`/`update` themselves, with the
/// dataset as fields, on every version (`MW/plugins/pool_/dataset.py`, the CRUD wrapper
/// is off there: `event_send = False`).
pub(crate) fn event_fields(
    core: &Core,
    collection: &str,
    kind: super::core::EventKind,
    id: &Value,
) -> Option<Value> {
    use truenas_agent::middleware::ApiFlavor;
    if kind == super::core::EventKind::Removed {
        return None;
    }
    // A row that does not render is a simulator bug which every answer rendering the
    // same table reports (`table::to_object`); the event then goes without fields.
    let by_id = |entries: Result<Vec<Value>, RpcError>| {
        entries.ok()?.into_iter().find(|e| e.get("id") == Some(id))
    };
    let crud = core.flavor() >= ApiFlavor::V25_10;
    match collection {
        "cloudsync.query" if crud => by_id(cloudsync::entries(core)),
        "cloudsync.credentials.query" if crud => by_id(Ok(core
            .state
            .credentials
            .iter()
            .map(|c| credentials::render(c, core.flavor()))
            .collect())),
        "pool.snapshottask.query" if crud => by_id(snapshot::entries(core)),
        "initshutdownscript.query" if crud => by_id(initscript::entries(core)),
        "pool.dataset.query" => {
            let filter = Value::from(vec![Value::from(vec![
                Value::from("id"),
                Value::from("="),
                id.clone(),
            ])]);
            pool::query_datasets(core, &[filter])
                .ok()
                .and_then(|v| v.as_array().and_then(|a| a.first().cloned()))
        }
        _ => None,
    }
}
