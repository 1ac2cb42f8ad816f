//! `initshutdownscript.*` (`MW/plugins/init_shutdown_script.py`).
//!
//! Owns: init/shutdown script entries and their CRUD, with the service rules (COMMAND
//! needs `command`; SCRIPT needs an existing, owner-executable regular file).
//! Does not: run the scripts.
//! Invariants: `type`/`when` are stored and shown upper-case, as the real one shows them.
//! Limitations: file checks use the scenario's `files`, then the host's file system.

use serde_json::Value;

use super::super::core::{Core, RpcError};
use super::super::rules;
use super::super::scenario::InitScript;
use super::table::{Table, from_object, to_object};
use super::{id_param, object_param, verdict};

/// Every entry, rendered.
pub(crate) fn entries(core: &Core) -> Result<Vec<Value>, RpcError> {
    core.state
        .init_scripts
        .iter()
        .map(|s| to_object(s).map(Value::Object))
        .collect()
}

/// `initshutdownscript.create [data]`.
pub(crate) fn create(core: &mut Core, params: &[Value]) -> Result<Value, RpcError> {
    let data = object_param(params, 0);
    verdict(rules::init_script(
        &core.state,
        "init_shutdown_script_create",
        &data,
    ))?;
    let entry = Table::<InitScript>::insert(core, data)?;
    to_object(&entry).map(Value::Object)
}

/// `initshutdownscript.update [id, partial]`.
pub(crate) fn update(core: &mut Core, params: &[Value]) -> Result<Value, RpcError> {
    let data = Table::<InitScript>::merged(core, id_param(params, 0), object_param(params, 1))?;
    verdict(rules::init_script(
        &core.state,
        "init_shutdown_script_update",
        &data,
    ))?;
    let entry: InitScript = from_object(data)?;
    let rendered = to_object(&entry).map(Value::Object)?;
    Table::replace(core, entry)?;
    Ok(rendered)
}

/// `initshutdownscript.delete [id]` → true.
pub(crate) fn delete(core: &mut Core, params: &[Value]) -> Result<Value, RpcError> {
    let old = Table::<InitScript>::find(core, id_param(params, 0))?;
    Table::<InitScript>::remove(core, old.id);
    Ok(Value::Bool(true))
}
