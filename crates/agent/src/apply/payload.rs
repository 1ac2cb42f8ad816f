//! Task and SNMP objects as the middleware takes them, built from the plan's specs.
//!
//! Owns: the JSON encoding of [`CloudSyncSpec`], [`SnapshotSpec`] and [`SnmpSpec`] —
//! complete objects for creates; for updates only the changed top-level keys, each
//! nested object (`attributes`, `schedule`) complete because the middleware replaces
//! them whole (REFERENCE §4.3 "top-level replace").
//! Does not: send anything.
//! Invariants: this and `middleware::calls` are the only places where secrets are
//! exposed, and only into the returned maps that become call params.
//! Limitations: B2 attributes only.

use std::collections::BTreeSet;

use secrecy::ExposeSecret;
use serde_json::{Map, Value, json};

use crate::desired::{BwLimit, Cron};
use crate::plan::spec::sop;
use crate::plan::{CloudSyncSpec, FieldChange, SnapshotSpec, SnmpSpec};

/// The top-level keys an update must send for these changes.
pub(crate) fn keys(changes: &[FieldChange]) -> BTreeSet<String> {
    changes.iter().map(|c| c.key().to_owned()).collect()
}

fn only(mut fields: Map<String, Value>, keep: Option<&BTreeSet<String>>) -> Map<String, Value> {
    if let Some(keep) = keep {
        fields.retain(|k, _| keep.contains(k));
    }
    fields
}

fn cron(c: &Cron) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("minute".into(), json!(c.minute));
    m.insert("hour".into(), json!(c.hour));
    m.insert("dom".into(), json!(c.dom));
    m.insert("month".into(), json!(c.month));
    m.insert("dow".into(), json!(c.dow));
    m
}

fn bwlimit(table: &[BwLimit]) -> Value {
    table
        .iter()
        .map(|s| json!({"time": s.time.to_string(), "bandwidth": s.bandwidth}))
        .collect()
}

/// A Cloud Sync task object: every field for a create (`keep = None`), or only `keep`.
pub(crate) fn cloud_sync(
    spec: &CloudSyncSpec,
    credential_id: u64,
    keep: Option<&BTreeSet<String>>,
) -> Map<String, Value> {
    let fields = json!({
        "description": spec.description,
        "path": spec.path,
        "credentials": credential_id,
        "attributes": {
            "bucket": spec.bucket,
            "folder": spec.folder,
            "chunk_size": spec.chunk_size,
            "fast_list": spec.fast_list,
        },
        "schedule": cron(&spec.schedule),
        "pre_script": "",
        "post_script": "",
        "snapshot": spec.snapshot,
        "include": [],
        "exclude": spec.exclude,
        "args": "",
        "enabled": spec.enabled,
        "bwlimit": bwlimit(&spec.bwlimit),
        "transfers": spec.transfers,
        "direction": sop::DIRECTION,
        "transfer_mode": sop::TRANSFER_MODE,
        "encryption": true,
        "filename_encryption": spec.filename_encryption,
        "encryption_password": spec.encryption_password.expose_secret(),
        "encryption_salt": spec.encryption_salt.expose_secret(),
        "create_empty_src_dirs": false,
        "follow_symlinks": spec.follow_symlinks,
    });
    only(into_map(fields), keep)
}

/// A periodic snapshot task object: every field (24.10 requires all on create).
pub(crate) fn snapshot_task(
    spec: &SnapshotSpec,
    keep: Option<&BTreeSet<String>>,
) -> Map<String, Value> {
    let mut schedule = cron(&spec.schedule);
    schedule.insert("begin".into(), json!(spec.begin.to_string()));
    schedule.insert("end".into(), json!(spec.end.to_string()));
    let fields = json!({
        "dataset": spec.dataset,
        "recursive": spec.recursive,
        "exclude": spec.exclude,
        "lifetime_value": spec.lifetime_value,
        "lifetime_unit": spec.lifetime_unit.as_str(),
        "naming_schema": spec.naming_schema,
        "schedule": schedule,
        "allow_empty": spec.allow_empty,
        "enabled": spec.enabled,
    });
    only(into_map(fields), keep)
}

/// `{"enabled": false}` for disabling a task.
pub(crate) fn disabled() -> Map<String, Value> {
    into_map(json!({"enabled": false}))
}

/// The SNMP fields the SOP manages (SOP 1.2: v3 only, SHA, AES, community empty).
pub(crate) fn snmp(spec: &SnmpSpec, keep: Option<&BTreeSet<String>>) -> Map<String, Value> {
    let fields = json!({
        "v3": true,
        "community": "",
        "v3_username": spec.username,
        "v3_authtype": sop::SNMP_AUTHTYPE,
        "v3_password": spec.auth_password.expose_secret(),
        "v3_privproto": sop::SNMP_PRIVPROTO,
        "v3_privpassphrase": spec.privacy_passphrase.expose_secret(),
    });
    only(into_map(fields), keep)
}

fn into_map(value: Value) -> Map<String, Value> {
    match value {
        Value::Object(map) => map,
        // invariant: every caller passes a `json!({...})` object literal.
        _ => Map::new(),
    }
}
