//! `snmp.*` and `service.*` (`MW/plugins/snmp.py`, `MW/plugins/service.py`).
//!
//! Owns: the SNMP config (update merges, then the v3 rules; `{"v3": false, "v3_username":
//! ""}` deletes the v3 user), the service table (`service.query`, `service.update` enable at
//! boot, `service.start`, and 25.10's `service.control` job).
//! Does not: run snmpd; `snmp.update` does not start the service (as on the real box).
//! Invariants: service state changes emit `service.query` CHANGED with the new fields.
//! Limitations: every start succeeds unless a fault is injected.

use serde_json::{Map, Value, json};

use super::super::core::{Core, Ctx, EventKind, JobKind, Reply, RpcError, errno};
use super::super::rules;
use super::super::scenario::{Service, SnmpConfig};
use super::{merge_top_level, object_param, verdict};

/// `snmp.config []`.
pub(crate) fn snmp_config(core: &Core) -> Value {
    let mut v = serde_json::to_value(&core.state.snmp).unwrap_or_default();
    v["id"] = Value::from(1);
    if core.flavor() >= crate::middleware::ApiFlavor::V27_0 {
        // 27.0 removed the SNMP log level (`18b1a2115c`, `MW/api/v27_0_0/snmp.py`).
        if let Some(map) = v.as_object_mut() {
            map.remove("loglevel");
        }
    }
    v
}

/// `snmp.update [partial]`.
pub(crate) fn snmp_update(core: &mut Core, params: &[Value]) -> Result<Value, RpcError> {
    let old = core.state.snmp.clone();
    let mut new = match serde_json::to_value(&old) {
        Ok(Value::Object(map)) => map,
        _ => Map::new(),
    };
    merge_top_level(&mut new, object_param(params, 0));
    verdict(rules::snmp(&new))?;
    let mut config: SnmpConfig = serde_json::from_value(Value::Object(new))
        .map_err(|e| RpcError::Other(format!("simulator: {e}")))?;
    if !config.v3 && config.v3_username.is_empty() && !old.v3_username.is_empty() {
        // Deleting the v3 user resets every v3 setting to its default.
        let defaults = SnmpConfig::default();
        config.v3_authtype = defaults.v3_authtype;
        config.v3_password = defaults.v3_password;
        config.v3_privproto = defaults.v3_privproto;
        config.v3_privpassphrase = defaults.v3_privpassphrase;
    }
    core.state.snmp = config;
    Ok(snmp_config(core))
}

fn render(s: &Service) -> Value {
    let pids: Vec<u32> = if s.state == "RUNNING" {
        vec![4242]
    } else {
        Vec::new()
    };
    json!({"id": s.id, "service": s.service, "enable": s.enable, "state": s.state, "pids": pids})
}

/// Every service, rendered.
pub(crate) fn entries(core: &Core) -> Vec<Value> {
    core.state.services.iter().map(render).collect()
}

fn find_mut<'a>(core: &'a mut Core, key: &Value) -> Option<&'a mut Service> {
    core.state.services.iter_mut().find(|s| match key {
        Value::String(name) => &s.service == name,
        Value::Number(n) => n.as_u64() == Some(s.id),
        _ => false,
    })
}

fn changed(core: &mut Core, name: &str) {
    if let Some(s) = core.state.service(name) {
        let (id, fields) = (s.id, render(s));
        core.emit(
            "service.query",
            EventKind::Changed,
            Value::from(id),
            Some(fields),
        );
    }
}

fn unknown(key: &Value) -> RpcError {
    let shown = key.as_str().map_or_else(|| key.to_string(), str::to_owned);
    RpcError::Call {
        errno: errno::ENOENT,
        message: format!("Service {shown} not found"),
        extra: None,
    }
}

/// `service.update [id_or_name, {enable}]` → the service row id.
pub(crate) fn update(core: &mut Core, params: &[Value]) -> Result<Value, RpcError> {
    let key = params.first().cloned().unwrap_or(Value::Null);
    let enable = object_param(params, 1)
        .get("enable")
        .and_then(Value::as_bool);
    let Some(service) = find_mut(core, &key) else {
        return Err(unknown(&key));
    };
    if let Some(enable) = enable {
        service.enable = enable;
    }
    let (id, name) = (service.id, service.service.clone());
    changed(core, &name);
    Ok(Value::from(id))
}

/// `service.start [name, options]` → true.
pub(crate) fn start(core: &mut Core, params: &[Value]) -> Result<Value, RpcError> {
    let key = params.first().cloned().unwrap_or(Value::Null);
    let Some(service) = find_mut(core, &key) else {
        return Err(unknown(&key));
    };
    "RUNNING".clone_into(&mut service.state);
    let name = service.service.clone();
    changed(core, &name);
    Ok(Value::Bool(true))
}

/// `service.control [verb, name, options]` (25.10): a job whose result is a bool.
pub(crate) fn control(
    core: &mut Core,
    ctx: &mut Ctx<'_>,
    params: &[Value],
) -> Result<Reply, RpcError> {
    let verb = params
        .first()
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    let key = params.get(1).cloned().unwrap_or(Value::Null);
    let Some(service) = find_mut(core, &key) else {
        return Err(unknown(&key));
    };
    let name = service.service.clone();
    let options = json!({"ha_propagate": true, "silent": true, "timeout": 120});
    let args = vec![
        Value::from(verb.clone()),
        Value::from(name.clone()),
        options,
    ];
    Ok(Reply::Job(core.create_job(
        "service.control",
        args,
        JobKind::ServiceControl {
            verb,
            service: name,
        },
        ctx,
    )))
}

/// Ends a `service.control` job: the service is in the state the verb asks for.
pub(crate) fn finish_control(core: &mut Core, verb: &str, name: &str) -> Value {
    let state = if verb == "STOP" { "STOPPED" } else { "RUNNING" };
    if let Some(s) = core.state.services.iter_mut().find(|s| s.service == name) {
        state.clone_into(&mut s.state);
    }
    changed(core, name);
    Value::Bool(true)
}
