//! `auth.*`, `core.*` job helpers and `system.info` (`MW/plugins/auth.py`,
//! `MW/service/core_service.py`, `MW/plugins/system/info.py`).
//!
//! Owns: API-key logins (`auth.login_with_api_key`, 25.04+ `auth.login_ex` with
//! `API_KEY_PLAIN`), including the 25.04+ rule that a correct key used over an insecure
//! transport is revoked (answer `EXPIRED`, `ApiKeyRevoked` alert, key unusable after);
//! `auth.me`; `core.job_wait`/`core.job_abort`; `core.set_options`; `system.info`.
//! Does not: implement password, token or OTP logins (they answer `AUTH_ERR`).
//! Invariants: a key is compared by SHA-256 only; the plain key is never stored or echoed.
//! Limitations: no login rate limiting, no session expiry.

use serde_json::{Value, json};

use super::super::core::{Core, Ctx, JobKind, Reply, RpcError, date, errno};
use super::{id_param, object_param};
use truenas_agent::middleware::ApiFlavor;

/// Result of presenting an API key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Login {
    Success,
    AuthErr,
    Expired,
}

fn api_key_login(core: &mut Core, ctx: &mut Ctx<'_>, username: Option<&str>, key: &str) -> Login {
    let id = key.split('-').next().and_then(|s| s.parse::<u64>().ok());
    let Some(entry) = core
        .state
        .api_keys
        .iter()
        .find(|k| Some(k.id) == id)
        .cloned()
    else {
        return Login::AuthErr;
    };
    if !entry.matches(key) {
        return Login::AuthErr;
    }
    let user_linked = core.flavor() != ApiFlavor::V24_10;
    if user_linked && username.is_some_and(|u| u != entry.username) {
        return Login::AuthErr;
    }
    if entry.revoked {
        return Login::Expired;
    }
    if user_linked && !ctx.session.secure {
        // middleware [25.04+]: plugins/auth.py login_ex revokes a key used over an
        // insecure transport and answers EXPIRED.
        if let Some(k) = core.state.api_keys.iter_mut().find(|k| k.id == entry.id) {
            k.revoked = true;
        }
        core.raise_alert(
            "ApiKeyRevoked",
            &entry.id.to_string(),
            json!({"key_name": entry.name}),
            format!(
                "{}: API key has been revoked and must either be renewed or deleted.",
                entry.name
            ),
            ctx.now_ms,
        );
        return Login::Expired;
    }
    ctx.session.user = Some(entry.username);
    Login::Success
}

/// `auth.login_with_api_key [key]` → bool.
pub(crate) fn login_with_api_key(core: &mut Core, ctx: &mut Ctx<'_>, params: &[Value]) -> Value {
    let key = params.first().and_then(Value::as_str).unwrap_or_default();
    Value::Bool(api_key_login(core, ctx, None, key) == Login::Success)
}

/// `auth.login_ex [login_data]` → `{response_type, ...}`.
pub(crate) fn login_ex(core: &mut Core, ctx: &mut Ctx<'_>, params: &[Value]) -> Value {
    let data = object_param(params, 0);
    if data.get("mechanism").and_then(Value::as_str) != Some("API_KEY_PLAIN") {
        return json!({"response_type": "AUTH_ERR"});
    }
    let username = data.get("username").and_then(Value::as_str);
    let key = data
        .get("api_key")
        .and_then(Value::as_str)
        .unwrap_or_default();
    match api_key_login(core, ctx, username, key) {
        Login::Success => {
            let want_info = data
                .get("login_options")
                .and_then(|o| o.get("user_info"))
                .and_then(Value::as_bool)
                .unwrap_or(true);
            let info = if want_info {
                me(core, ctx)
            } else {
                Value::Null
            };
            let mut reply =
                json!({"response_type": "SUCCESS", "user_info": info, "authenticator": "LEVEL_1"});
            if core.flavor() >= ApiFlavor::V26_0 {
                // 26.0: `reconnect_token` is always present, null unless asked for
                // (`MW/api/v26_0_0/auth.py` `AuthRespSuccess`).
                let asked = data
                    .get("login_options")
                    .and_then(|o| o.get("reconnect_token"))
                    .and_then(Value::as_bool)
                    .unwrap_or(false);
                reply["reconnect_token"] = if asked {
                    Value::from(uuid::Uuid::new_v4().simple().to_string())
                } else {
                    Value::Null
                };
            }
            reply
        }
        Login::AuthErr => json!({"response_type": "AUTH_ERR"}),
        Login::Expired => json!({"response_type": "EXPIRED"}),
    }
}

/// `auth.me []`.
pub(crate) fn me(_core: &Core, ctx: &Ctx<'_>) -> Value {
    let user = ctx
        .session
        .user
        .clone()
        .unwrap_or_else(|| "root".to_owned());
    let uid = if user == "root" { 0 } else { 950 };
    json!({
        "pw_name": user, "pw_gecos": user, "pw_dir": if user == "root" { "/root".to_owned() } else { format!("/home/{user}") }, "pw_shell": "/usr/bin/zsh",
        "pw_uid": uid, "pw_gid": uid, "grouplist": [uid, 544], "sid": null, "source": "LOCAL", "local": true,
        "attributes": {}, "two_factor_config": {"secret_configured": false},
        "privilege": {"roles": {"$set": ["FULL_ADMIN"]}, "allowlist": [{"method": "*", "resource": "*"}], "web_shell": true},
        "account_attributes": ["LOCAL", "SYS_ADMIN"],
    })
}

/// `core.set_options [options]`: 25.04 → null; 25.10 → the option set (`legacy_jobs`).
pub(crate) fn set_options(core: &mut Core, ctx: &mut Ctx<'_>, params: &[Value]) -> Value {
    let opts = object_param(params, 0);
    if core.flavor() < ApiFlavor::V25_10 {
        return Value::Null;
    }
    if let Some(legacy) = opts.get("legacy_jobs").and_then(Value::as_bool) {
        ctx.session.legacy_jobs = legacy;
    }
    json!({
        "legacy_jobs": ctx.session.legacy_jobs,
        "private_methods": opts.get("private_methods").and_then(Value::as_bool).unwrap_or(false),
        "py_exceptions": opts.get("py_exceptions").and_then(Value::as_bool).unwrap_or(false),
    })
}

fn missing_job(id: i64) -> RpcError {
    RpcError::Call {
        errno: errno::ENOENT,
        message: format!("Job {id} does not exist"),
        extra: None,
    }
}

/// `core.job_wait [id]`: a job that ends when job `id` ends (with its result).
pub(crate) fn job_wait(
    core: &mut Core,
    ctx: &mut Ctx<'_>,
    params: &[Value],
) -> Result<Reply, RpcError> {
    let id = id_param(params, 0);
    let Some(target) = u64::try_from(id).ok().filter(|t| core.jobs.contains_key(t)) else {
        return Err(missing_job(id));
    };
    let job = core.create_job(
        "core.job_wait",
        vec![Value::from(target)],
        JobKind::Wait { target },
        ctx,
    );
    if core
        .jobs
        .get(&target)
        .is_some_and(|t| t.state.is_terminal())
    {
        core.job_finish(job, ctx.now_ms);
    }
    Ok(Reply::Job(job))
}

/// `core.job_abort [id]` → null.
pub(crate) fn job_abort(
    core: &mut Core,
    ctx: &mut Ctx<'_>,
    params: &[Value],
) -> Result<Value, RpcError> {
    let id = id_param(params, 0);
    let Some(target) = u64::try_from(id).ok().filter(|t| core.jobs.contains_key(t)) else {
        return Err(missing_job(id));
    };
    core.job_abort(target, ctx.now_ms);
    Ok(Value::Null)
}

/// `system.info []`.
pub(crate) fn info(core: &Core, ctx: &Ctx<'_>) -> Value {
    let s = &core.state.system;
    let version = match core.flavor() {
        ApiFlavor::V24_10 => s.version_full(core.flavor()),
        ApiFlavor::V25_04 | ApiFlavor::V25_10 | ApiFlavor::V26_0 | ApiFlavor::V27_0 => {
            s.version_short(core.flavor())
        }
    };
    let uptime_s = (ctx.now_ms - s.boottime_ms).max(0) / 1000;
    #[expect(
        clippy::cast_precision_loss,
        reason = "uptime in seconds fits f64 exactly for any real uptime"
    )]
    let uptime_f = uptime_s as f64;
    json!({
        "version": version,
        "buildtime": date(s.boottime_ms - 86_400_000),
        "hostname": s.hostname,
        "physmem": s.physmem,
        "model": s.model,
        "cores": s.cores,
        "physical_cores": s.cores,
        "loadavg": [0.05, 0.1, 0.08],
        "uptime": format!("{} days, {}:{:02}:{:02}", uptime_s / 86_400, uptime_s % 86_400 / 3600, uptime_s % 3600 / 60, uptime_s % 60),
        "uptime_seconds": uptime_f,
        "system_serial": s.system_serial,
        "system_product": s.system_product,
        "system_product_version": null,
        "license": null,
        "boottime": date(s.boottime_ms),
        "datetime": date(ctx.now_ms),
        "timezone": s.timezone,
        "system_manufacturer": "iXsystems",
        "ecc_memory": true,
    })
}
