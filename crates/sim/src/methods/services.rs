//! `snmp.*` and `service.*` (`MW/plugins/snmp.py`, `MW/plugins/service.py`).
//!
//! Owns: the SNMP config (update merges, then the v3 rules; `{"v3": false, "v3_username":
//! ""}` deletes the v3 user), a model of snmpd's own v3 users (`Scenario::snmpd`: the
//! middleware re-creates the user through snmpd only when a `v3_*` value changed, and
//! snmpd only creates it from a `createUser` line it can read), the service table
//! (`service.query`, `service.update` enable at boot, `service.start`, and 25.10's
//! `service.control` job).
//! Does not: run snmpd; `snmp.update` leaves snmpd in the run state it found (as
//! `init_v3_user` does on the real box).
//! Invariants: service state changes emit `service.query` CHANGED with the new fields
//! (and no id), `service.update` emits nothing (as on the box);
//! the config is stored before snmpd is touched, so a failed snmpd start inside
//! `snmp.update` leaves the new config stored (REFERENCE §8 row 5).
//! Limitations: every start succeeds unless `FaultPlan::snmpd_start_failures` is armed;
//! the middleware's internal starts are modelled as failing loudly (a `service.control`
//! job that errors), not as the quiet `false` of a `silent` start.

use serde_json::{Map, Value, json};

use super::super::core::{Core, Ctx, EventKind, JobFailure, JobKind, Reply, RpcError, errno};
use super::super::rules;
use super::super::scenario::{PendingSnmpUser, Service, SnmpConfig};
use super::{merge_top_level, object_param, verdict};

/// `snmp.config []`.
pub(crate) fn snmp_config(core: &Core) -> Value {
    let mut v = serde_json::to_value(&core.state.snmp).unwrap_or_default();
    v["id"] = Value::from(1);
    if core.flavor() >= truenas_agent::middleware::ApiFlavor::V27_0 {
        // 27.0 removed the SNMP log level (`18b1a2115c`, `MW/api/v27_0_0/snmp.py`).
        if let Some(map) = v.as_object_mut() {
            map.remove("loglevel");
        }
    }
    v
}

/// True when snmpd can read the `createUser` line the middleware writes for `config`:
/// `createUser USER AUTHTYPE "PASSWORD" [PRIVPROTO "PASSPHRASE"]`, unescaped
/// (`plugins/snmp_/utils_snmp_user.py` `add_snmp_user`; 24.10: `plugins/snmp.py`). A `"`
/// ends a quoted value early, `\` is snmpd's escape character (the user would get another
/// secret than the configured one), a line break or other control character splits or
/// corrupts the line, and whitespace in the user name splits it into two tokens.
pub(crate) fn create_user_usable(config: &SnmpConfig) -> bool {
    let bad_secret = |s: &str| s.chars().any(|c| c == '"' || c == '\\' || c.is_control());
    let bad_name = |s: &str| {
        s.chars()
            .any(|c| c == '"' || c == '\\' || c.is_whitespace() || c.is_control())
    };
    !bad_name(&config.v3_username)
        && !bad_secret(&config.v3_password)
        && !config.v3_privpassphrase.as_deref().is_some_and(bad_secret)
}

fn set_state(core: &mut Core, name: &str, state: &str) {
    if let Some(s) = core.state.services.iter_mut().find(|s| s.service == name) {
        state.clone_into(&mut s.state);
    }
    changed(core, name);
}

fn running(core: &Core, name: &str) -> bool {
    core.state
        .service(name)
        .is_some_and(|s| s.state == "RUNNING")
}

/// Starts a service. For snmpd this may fail (`snmpd_start_failures`), and a successful
/// start consumes the pending `createUser` line: snmpd creates the user if it can read
/// the line. Returns false when the service did not start (it is then STOPPED).
fn start_service(core: &mut Core, name: &str) -> bool {
    if name != SNMP {
        set_state(core, name, "RUNNING");
        return true;
    }
    if core.faults.snmpd_start_failures > 0 {
        core.faults.snmpd_start_failures -= 1;
        set_state(core, name, "STOPPED");
        return false;
    }
    if let Some(line) = core.state.snmpd.pending.take() {
        if line.usable {
            core.state.snmpd.users.retain(|u| *u != line.username);
            core.state.snmpd.users.push(line.username);
        }
    }
    set_state(core, name, "RUNNING");
    true
}

const SNMP: &str = "snmp";

/// The error of a start the middleware does not silence (`service.start` with `silent:
/// false`; `plugins/service.py` raises `CallError(failure_logs or "Service not running
/// after start")`).
fn not_running() -> RpcError {
    RpcError::Call {
        errno: errno::EFAULT,
        message: "Service not running after start".to_owned(),
        extra: None,
    }
}

/// `init_v3_user` (`plugins/snmp.py`): stop snmpd and delete its private config (every
/// v3 user is gone), start it to regenerate the file, stop it, append the `createUser`
/// line, start it so snmpd creates the user, then restore the run state it found.
/// A failed start ends the call with an error, the config already stored.
fn init_v3_user(core: &mut Core) -> Result<(), RpcError> {
    let was_running = running(core, SNMP);
    set_state(core, SNMP, "STOPPED");
    core.state.snmpd = super::super::scenario::Snmpd::default();
    if !start_service(core, SNMP) {
        return Err(not_running());
    }
    set_state(core, SNMP, "STOPPED");
    let config = &core.state.snmp;
    if !config.v3_username.is_empty() {
        core.state.snmpd.pending = Some(PendingSnmpUser {
            username: config.v3_username.clone(),
            usable: create_user_usable(config),
        });
    }
    if !start_service(core, SNMP) {
        return Err(not_running());
    }
    if !was_running {
        set_state(core, SNMP, "STOPPED");
    }
    Ok(())
}

/// The `v3_*` values `do_update` compares to decide whether to re-create the user.
fn v3_values(c: &SnmpConfig) -> (&str, &str, &str, Option<&str>, Option<&str>) {
    (
        &c.v3_username,
        &c.v3_authtype,
        &c.v3_password,
        c.v3_privproto.as_deref(),
        c.v3_privpassphrase.as_deref(),
    )
}

/// `snmp.update [partial]`: merge, validate, store (`_update_service`, which restarts a
/// running snmpd), then — only when a `v3_*` value changed and v3 is on — re-create the
/// v3 user through snmpd (`init_v3_user`).
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
    let deleted = !config.v3 && config.v3_username.is_empty() && !old.v3_username.is_empty();
    let reinit = config.v3 && v3_values(&config) != v3_values(&old);
    core.state.snmp = config;
    if deleted {
        core.state.snmpd = super::super::scenario::Snmpd::default();
    }
    if running(core, SNMP) {
        // `_update_service` → `service.restart` (silent): a failure leaves it stopped.
        start_service(core, SNMP);
    }
    if reinit {
        init_v3_user(core)?;
    }
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

/// `service.notify_running` after a start, stop or restart: `service.query` CHANGED with
/// the service row as fields and no id (`send_event('service.query', 'CHANGED',
/// fields=svc)`, `MW/plugins/service.py`, every version).
fn changed(core: &mut Core, name: &str) {
    if let Some(s) = core.state.service(name) {
        let fields = render(s);
        core.emit(
            "service.query",
            EventKind::Changed,
            Value::Null,
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
    // No event: `do_update` answers with the row id (`datastore.update`'s), and the
    // CRUD wrapper sends an event only for an answer that is an entry with an `id`
    // (`MW/service/crud_service.py`; `MW/plugins/service.py` `do_update`, every version).
    Ok(Value::from(service.id))
}

/// The `silent` option of `service.start` / `service.control` (default true: a failure
/// answers `false` instead of raising).
fn silent(options: &Map<String, Value>) -> bool {
    options
        .get("silent")
        .and_then(Value::as_bool)
        .unwrap_or(true)
}

/// `service.start [name, options]` → true, or `false`/an error when it did not start.
pub(crate) fn start(core: &mut Core, params: &[Value]) -> Result<Value, RpcError> {
    let key = params.first().cloned().unwrap_or(Value::Null);
    let Some(service) = find_mut(core, &key) else {
        return Err(unknown(&key));
    };
    let name = service.service.clone();
    if start_service(core, &name) {
        Ok(Value::Bool(true))
    } else if silent(&object_param(params, 1)) {
        Ok(Value::Bool(false))
    } else {
        Err(not_running())
    }
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
    let mut options = match json!({"ha_propagate": true, "silent": true, "timeout": 120}) {
        Value::Object(map) => map,
        _ => Map::new(),
    };
    merge_top_level(&mut options, object_param(params, 2));
    let silent = silent(&options);
    let args = vec![
        Value::from(verb.clone()),
        Value::from(name.clone()),
        Value::Object(options),
    ];
    Ok(Reply::Job(core.create_job(
        "service.control",
        args,
        JobKind::ServiceControl {
            verb,
            service: name,
            silent,
        },
        ctx,
    )))
}

/// Ends a `service.control` job: the service is in the state the verb asks for, or —
/// when a start failed — the job answers `false` (silent) or fails.
pub(crate) fn finish_control(
    core: &mut Core,
    verb: &str,
    name: &str,
    silent: bool,
) -> Result<Value, JobFailure> {
    if verb == "STOP" {
        set_state(core, name, "STOPPED");
        return Ok(Value::Bool(true));
    }
    if start_service(core, name) {
        Ok(Value::Bool(true))
    } else if silent {
        Ok(Value::Bool(false))
    } else {
        Err(JobFailure::call_error("Service not running after start"))
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use crate::{Scenario, Simulator};
    use truenas_agent::middleware::ApiFlavor;

    const V3: &str = "nmsQwErTyUiOp";

    fn v3(password: &str, passphrase: &str, user: &str) -> serde_json::Value {
        json!({"v3": true, "community": "", "v3_username": user, "v3_authtype": "SHA",
               "v3_password": password, "v3_privproto": "AES",
               "v3_privpassphrase": passphrase})
    }

    fn sim() -> Simulator {
        Simulator::new(Scenario::two_pools(ApiFlavor::V25_04))
    }

    /// REFERENCE §8 row 4 (`plugins/snmp_/utils_snmp_user.py`): the API accepts secrets
    /// snmpd cannot read; the user is then never created.
    #[test]
    fn snmpd_creates_the_user_only_from_a_line_it_can_read() {
        for (password, passphrase, user, created) in [
            ("good-password-1", "good-passphrase", V3, true),
            // Whitespace inside the quotes is fine for snmpd (the agent refuses it anyway).
            ("good password 1", "good-passphrase", V3, true),
            ("bad\"password", "good-passphrase", V3, false),
            ("good-password-1", "bad\\passphrase", V3, false),
            ("bad\npassword-1", "good-passphrase", V3, false),
            ("good-password-1", "good-passphrase", "two words", false),
        ] {
            let sim = sim();
            let stored = sim
                .admin_call("snmp.update", &[v3(password, passphrase, user)])
                .expect("the API accepts it");
            assert_eq!(stored["v3_username"], user);
            let s = sim.state();
            assert_eq!(
                s.snmpd.users.contains(&user.to_owned()),
                created,
                "{password:?} {passphrase:?} {user:?}: {:?}",
                s.snmpd
            );
            // init_v3_user restores the run state it found (stopped).
            assert_eq!(s.service("snmp").unwrap().state, "STOPPED");
        }
    }

    /// REFERENCE §8 row 5: the config is stored before snmpd re-creates the user; a failed
    /// start fails the call with the new config already stored, and sending the same
    /// values again does not re-create the user (only a changed `v3_*` value does).
    #[test]
    fn a_failed_snmpd_start_leaves_the_config_stored_and_the_user_missing() {
        let sim = sim();
        sim.update_faults(|f| f.snmpd_start_failures = 1);
        let err = sim
            .admin_call(
                "snmp.update",
                &[v3("good-password-1", "good-passphrase", V3)],
            )
            .unwrap_err();
        assert!(
            format!("{err:?}").contains("Service not running after start"),
            "{err:?}"
        );
        let s = sim.state();
        assert_eq!(s.snmp.v3_username, V3, "stored before the failure");
        assert!(s.snmpd.users.is_empty() && s.snmpd.pending.is_none());
        // The same values again: no v3 difference, no re-creation.
        sim.admin_call(
            "snmp.update",
            &[v3("good-password-1", "good-passphrase", V3)],
        )
        .unwrap();
        sim.admin_call("service.start", &[json!("snmp")]).unwrap();
        let s = sim.state();
        assert_eq!(s.service("snmp").unwrap().state, "RUNNING");
        assert!(s.snmpd.users.is_empty(), "{:?}", s.snmpd);
        // A changed v3 value re-creates it.
        sim.admin_call(
            "snmp.update",
            &[v3("good-password-2", "good-passphrase", V3)],
        )
        .unwrap();
        let s = sim.state();
        assert_eq!(s.snmpd.users, [V3]);
        assert_eq!(
            s.service("snmp").unwrap().state,
            "RUNNING",
            "run state kept"
        );
    }

    #[test]
    fn failed_starts_follow_the_silent_option() {
        let sim = sim();
        sim.update_faults(|f| f.snmpd_start_failures = 2);
        assert_eq!(
            sim.admin_call("service.start", &[json!("snmp")]).unwrap(),
            json!(false)
        );
        assert!(
            sim.admin_call(
                "service.start",
                &[
                    json!("snmp"),
                    json!({"ha_propagate": true, "silent": false})
                ]
            )
            .is_err()
        );
        assert_eq!(sim.state().service("snmp").unwrap().state, "STOPPED");
        assert_eq!(
            sim.admin_call("service.start", &[json!("snmp")]).unwrap(),
            json!(true)
        );
    }

    /// A scenario whose SNMP is already set up has snmpd's user.
    #[test]
    fn a_configured_scenario_has_the_user() {
        let mut s = Scenario::two_pools(ApiFlavor::V25_04);
        s.snmp.v3 = true;
        V3.clone_into(&mut s.snmp.v3_username);
        "good-password-1".clone_into(&mut s.snmp.v3_password);
        s.normalize();
        assert_eq!(s.snmpd.users, [V3]);
    }
}
