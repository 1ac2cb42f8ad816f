//! `cloudsync.credentials.*` — cloud credentials (`CredentialsService`, `MW/plugins/cloud_sync.py`).
//!
//! Owns: the per-version shape (24.10 `{provider: "B2", attributes: {…}}`, 25.04+
//! `{provider: {type: "B2", …}}`), create/update/delete (unique name; refused while a task
//! uses the credential; answers built from the data sent — 24.10 echoes it plus `id` —
//! never from the stored row), and `verify` against the simulated B2 side.
//! Does not: redact secrets — the session is a full admin (root or an admin's API key),
//! and the real middleware shows secrets to those.
//! Invariants: stored the 24.10 way (provider type + attributes), rendered per version.
//! Limitations: `verify` knows only B2 keys; other providers always verify.

use serde_json::{Map, Value, json};

use super::super::core::{Core, Ctx, RpcError, shape_flavor};
use super::super::rules;
use super::super::scenario::Credential;
use super::super::schema::{self, Style};
use super::super::validate;
use super::table::Table;
use super::{id_param, merge_top_level, object_param, verdict};
use truenas_agent::middleware::ApiFlavor;

/// A credential as the version shows it.
pub(crate) fn render(c: &Credential, flavor: ApiFlavor) -> Value {
    Value::Object(render_object(c, flavor))
}

/// [`render`] as the object it always is.
fn render_object(c: &Credential, flavor: ApiFlavor) -> Map<String, Value> {
    let mut entry = Map::new();
    entry.insert("id".into(), Value::from(c.id));
    entry.insert("name".into(), Value::from(c.name.clone()));
    match flavor {
        ApiFlavor::V24_10 => {
            entry.insert("provider".into(), Value::from(c.provider.clone()));
            entry.insert("attributes".into(), Value::Object(c.attributes.clone()));
        }
        ApiFlavor::V25_04 | ApiFlavor::V25_10 | ApiFlavor::V26_0 | ApiFlavor::V27_0 => {
            let mut provider = Map::new();
            provider.insert("type".into(), Value::from(c.provider.clone()));
            provider.extend(c.attributes.clone());
            entry.insert("provider".into(), Value::Object(provider));
        }
    }
    entry
}

/// Every credential, rendered in the call's shape.
pub(crate) fn entries(core: &Core, ctx: &Ctx<'_>) -> Vec<Value> {
    let shape = shape(core, ctx, "cloudsync.credentials.query");
    core.state
        .credentials
        .iter()
        .map(|c| render(c, shape))
        .collect()
}

fn shape(core: &Core, ctx: &Ctx<'_>, method: &str) -> ApiFlavor {
    shape_flavor(core.flavor(), ctx.session, method)
}

/// A 24.10-shaped payload on a 25.04+ box (legacy endpoint) is converted to the current
/// provider object, which the current model then validates.
fn check_converted(
    core: &Core,
    shape: ApiFlavor,
    schema: &str,
    provider: &str,
    attributes: &Map<String, Value>,
) -> Result<(), RpcError> {
    if shape != ApiFlavor::V24_10 || core.flavor() == ApiFlavor::V24_10 {
        return Ok(());
    }
    let mut object = attributes.clone();
    object.insert("type".into(), Value::from(provider));
    let mut issues = Vec::new();
    let ty = validate::provider_ty(core.flavor());
    schema::check(
        &ty,
        &Value::Object(object),
        &format!("{schema}.provider"),
        Style::Pydantic,
        &mut issues,
    );
    verdict(issues)
}

/// Splits a payload in the version's shape into (provider type, attributes).
fn split(flavor: ApiFlavor, data: &Map<String, Value>) -> (String, Map<String, Value>) {
    match flavor {
        ApiFlavor::V24_10 => (
            data.get("provider")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned(),
            data.get("attributes")
                .and_then(Value::as_object)
                .cloned()
                .unwrap_or_default(),
        ),
        ApiFlavor::V25_04 | ApiFlavor::V25_10 | ApiFlavor::V26_0 | ApiFlavor::V27_0 => {
            let mut attrs = data
                .get("provider")
                .and_then(Value::as_object)
                .cloned()
                .unwrap_or_default();
            let kind = attrs
                .remove("type")
                .and_then(|t| t.as_str().map(str::to_owned))
                .unwrap_or_default();
            (kind, attrs)
        }
    }
}

/// What `create`/`update` answer. 24.10 returns the data it was sent plus `id` — for an
/// update only the keys sent (`do_create`/`do_update` end with `data["id"] = …; return
/// data`, `MW/plugins/cloud_sync.py` @ TS-24.10.2.4); 25.04+ return the merged data
/// after `compress`/`extend` (the stored shape, not a read of the row).
fn answer(
    core: &Core,
    shape: ApiFlavor,
    credential: &Credential,
    mut sent: Map<String, Value>,
    id: u64,
) -> Value {
    if core.flavor() == ApiFlavor::V24_10 {
        sent.insert("id".into(), Value::from(id));
        Value::Object(sent)
    } else {
        render(credential, shape)
    }
}

/// The row as stored: without the attributes `FaultPlan::credential_store_drops` names.
fn stored(core: &Core, mut credential: Credential) -> Credential {
    for key in &core.faults.credential_store_drops {
        credential.attributes.remove(key);
    }
    credential
}

/// The credential a create/update payload (in the call's shape) describes, as row `id`,
/// once the service rules pass (`existing`: the row being updated, for the unique name).
fn checked(
    core: &Core,
    shape: ApiFlavor,
    schema: &str,
    data: &Map<String, Value>,
    id: u64,
    existing: Option<u64>,
) -> Result<Credential, RpcError> {
    let name = data
        .get("name")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    let (provider, attributes) = split(shape, data);
    check_converted(core, shape, schema, &provider, &attributes)?;
    verdict(rules::credential(
        &core.state,
        schema,
        &name,
        &provider,
        &Value::Object(attributes.clone()),
        existing,
    ))?;
    Ok(Credential {
        id,
        name,
        provider,
        attributes,
    })
}

/// `cloudsync.credentials.create [data]`.
pub(crate) fn create(core: &mut Core, ctx: &Ctx<'_>, params: &[Value]) -> Result<Value, RpcError> {
    let shape = shape(core, ctx, "cloudsync.credentials.create");
    let data = object_param(params, 0);
    let id = Table::<Credential>::next_id(core);
    let credential = checked(
        core,
        shape,
        "cloud_sync_credentials_create",
        &data,
        id,
        None,
    )?;
    let answer = answer(core, shape, &credential, data, id);
    let credential = stored(core, credential);
    Table::push(core, credential);
    Ok(answer)
}

/// `cloudsync.credentials.update [id, partial]`: `provider` replaced as a whole.
pub(crate) fn update(core: &mut Core, ctx: &Ctx<'_>, params: &[Value]) -> Result<Value, RpcError> {
    let shape = shape(core, ctx, "cloudsync.credentials.update");
    let old = Table::<Credential>::find(core, id_param(params, 0))?;
    let mut data = render_object(&old, shape);
    merge_top_level(&mut data, object_param(params, 1));
    let schema = "cloud_sync_credentials_update";
    let credential = checked(core, shape, schema, &data, old.id, Some(old.id))?;
    let answer = answer(core, shape, &credential, object_param(params, 1), old.id);
    let credential = stored(core, credential);
    Table::replace(core, credential)?;
    Ok(answer)
}

/// `cloudsync.credentials.delete [id]`.
pub(crate) fn delete(core: &mut Core, params: &[Value]) -> Result<Value, RpcError> {
    let old = Table::<Credential>::find(core, id_param(params, 0))?;
    if let Some(task) = core
        .state
        .cloud_sync_tasks
        .iter()
        .find(|t| t.credentials == old.id)
    {
        let what = if task.description.is_empty() {
            task.id.to_string()
        } else {
            task.description.clone()
        };
        return Err(RpcError::call(format!(
            "This credential is used by cloud sync task {what}"
        )));
    }
    Table::<Credential>::remove(core, old.id);
    Ok(Value::Bool(true))
}

/// `cloudsync.credentials.verify [provider]` (24.10: `[{provider, attributes}]`).
pub(crate) fn verify(core: &Core, ctx: &Ctx<'_>, params: &[Value]) -> Result<Value, RpcError> {
    let shape = shape(core, ctx, "cloudsync.credentials.verify");
    let data = object_param(params, 0);
    let (provider, attributes) = match shape {
        ApiFlavor::V24_10 if core.flavor() != ApiFlavor::V24_10 => {
            let (p, a) = split(ApiFlavor::V24_10, &data);
            check_converted(core, shape, "cloud_sync_credentials_create", &p, &a)?;
            (p, a)
        }
        ApiFlavor::V24_10 => {
            let (p, a) = split(ApiFlavor::V24_10, &data);
            // middleware [24.10]: verify runs `_validate` with an empty name first.
            verdict(rules::legacy_provider_attributes(
                "cloud_sync_credentials_create",
                &p,
                &Value::Object(a.clone()),
            ))?;
            (p, a)
        }
        ApiFlavor::V25_04 | ApiFlavor::V25_10 | ApiFlavor::V26_0 | ApiFlavor::V27_0 => {
            let mut a = data;
            let p = a
                .remove("type")
                .and_then(|t| t.as_str().map(str::to_owned))
                .unwrap_or_default();
            (p, a)
        }
    };
    let account = attributes
        .get("account")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let bad = provider == "B2" && core.state.b2_account(account).is_some_and(|a| !a.valid);
    if bad {
        let excerpt = "failed to authorize account: failed to authenticate: Unauthorized: unauthorized (401 bad_auth_token)";
        return Ok(json!({
            "valid": false,
            "error": format!("2025/01/01 00:00:00 Failed to create file system for \"remote:\": {excerpt}\n"),
            "excerpt": excerpt,
        }));
    }
    Ok(json!({ "valid": true }))
}
