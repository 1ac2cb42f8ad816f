//! `initshutdownscript.*` (`MW/plugins/init_shutdown_script.py`).
//!
//! Owns: init/shutdown script entries and their CRUD, with the service rules (COMMAND
//! needs `command`; SCRIPT needs an existing, owner-executable regular file).
//! Does not: run the scripts.
//! Invariants: `type`/`when` are stored and shown upper-case, as the real one shows them.
//! Limitations: file checks use the scenario's `files`, then the host's file system.

use serde_json::{Map, Value};

use super::super::core::{Core, EventKind, RpcError};
use super::super::rules;
use super::super::scenario::InitScript;
use super::{id_param, merge_top_level, next_id, not_found, object_param, verdict};

const SERVICE: &str = "InitShutdownScript";

/// Every entry, rendered.
pub(crate) fn entries(core: &Core) -> Vec<Value> {
    core.state
        .init_scripts
        .iter()
        .map(|s| serde_json::to_value(s).unwrap_or_default())
        .collect()
}

fn into_entry(data: Map<String, Value>) -> Result<InitScript, RpcError> {
    serde_json::from_value(Value::Object(data))
        .map_err(|e| RpcError::Other(format!("simulator: {e}")))
}

/// `initshutdownscript.create [data]`.
pub(crate) fn create(core: &mut Core, params: &[Value]) -> Result<Value, RpcError> {
    let mut data = object_param(params, 0);
    verdict(rules::init_script(
        &core.state,
        "init_shutdown_script_create",
        &data,
    ))?;
    let id = next_id(core.state.init_scripts.iter().map(|s| s.id));
    data.insert("id".into(), Value::from(id));
    let entry = into_entry(data)?;
    let rendered = serde_json::to_value(&entry).unwrap_or_default();
    core.state.init_scripts.push(entry);
    core.emit(
        "initshutdownscript.query",
        EventKind::Added,
        Value::from(id),
        None,
    );
    Ok(rendered)
}

/// `initshutdownscript.update [id, partial]`.
pub(crate) fn update(core: &mut Core, params: &[Value]) -> Result<Value, RpcError> {
    let id = id_param(params, 0);
    let Some(old) = core
        .state
        .init_scripts
        .iter()
        .find(|s| i64::try_from(s.id) == Ok(id))
        .cloned()
    else {
        return Err(not_found(SERVICE, id));
    };
    let mut data = match serde_json::to_value(&old) {
        Ok(Value::Object(map)) => map,
        _ => Map::new(),
    };
    merge_top_level(&mut data, object_param(params, 1));
    verdict(rules::init_script(
        &core.state,
        "init_shutdown_script_update",
        &data,
    ))?;
    let entry = into_entry(data)?;
    let rendered = serde_json::to_value(&entry).unwrap_or_default();
    if let Some(slot) = core.state.init_scripts.iter_mut().find(|s| s.id == old.id) {
        *slot = entry;
    }
    core.emit(
        "initshutdownscript.query",
        EventKind::Changed,
        Value::from(old.id),
        None,
    );
    Ok(rendered)
}

/// `initshutdownscript.delete [id]` → true.
pub(crate) fn delete(core: &mut Core, params: &[Value]) -> Result<Value, RpcError> {
    let id = id_param(params, 0);
    let Some(old) = core
        .state
        .init_scripts
        .iter()
        .find(|s| i64::try_from(s.id) == Ok(id))
        .cloned()
    else {
        return Err(not_found(SERVICE, id));
    };
    core.state.init_scripts.retain(|s| s.id != old.id);
    core.emit(
        "initshutdownscript.query",
        EventKind::Removed,
        Value::from(old.id),
        None,
    );
    Ok(Value::Bool(true))
}
