//! `pool.query`, `pool.dataset.*`, `zfs.resource.query` (`MW/plugins/pool_/pool.py`,
//! `MW/plugins/pool_/dataset.py`, `MW/plugins/zfs/resource_crud.py`).
//!
//! Owns: pool entries (the boot pool hidden), dataset entries (nested `children`, user
//! properties with their source — inherited from an ancestor on 24.10/25.04, always
//! `LOCAL` on 25.10 — and the ZFS properties asked for), `pool.dataset.update` (user
//! properties set/remove/replace, other properties stored), `pool.dataset.create`, and
//! 25.10's `zfs.resource.query`.
//! Does not: model space accounting (sizes are fixed numbers) or encryption keys.
//! Invariants: internal datasets (`.system`, `ix-applications`, `ix-apps`, `.ix-virt`)
//! and the boot pool never appear; a dataset update emits `pool.dataset.query` CHANGED.
//! Limitations: `extra.properties` filters the handful of ZFS properties rendered.

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};

use super::super::core::{Core, EventKind, RpcError, date, errno};
use super::super::rules;
use super::super::scenario::Dataset;
use super::super::schema::Issue;
use super::{answer, object_param, verdict};
use truenas_agent::middleware::ApiFlavor;

/// `pool.query` entries.
pub(crate) fn pools(core: &Core) -> Vec<Value> {
    core.state
        .pools
        .iter()
        .filter(|p| !p.boot)
        .map(|p| {
            let mut v = json!({
                "id": p.id, "name": p.name, "guid": p.guid, "path": format!("/mnt/{}", p.name),
                "status": p.status, "healthy": p.healthy, "warning": false,
                "status_code": if p.healthy { "OK" } else { "ERROR" }, "status_detail": null,
                "scan": {"function": "SCRUB", "state": "FINISHED", "errors": 0},
                "expand": {"state": null},
                "is_upgraded": true,
                "size": 3_985_729_650_688_i64, "allocated": 1_073_741_824, "free": 3_984_655_908_864_i64,
                "freeing": 0, "fragmentation": "0",
                "size_str": "3985729650688", "allocated_str": "1073741824", "free_str": "3984655908864",
                "freeing_str": "0",
                "autotrim": {"value": "off", "rawvalue": "off", "parsed": "off", "source": "DEFAULT"},
                "topology": {"data": [], "log": [], "cache": [], "spare": [], "special": [], "dedup": []},
            });
            // The dedup table fields appear in 25.04 (`MW/plugins/pool_/pool.py` ENTRY).
            if core.flavor() != ApiFlavor::V24_10 {
                v["dedup_table_size"] = Value::from(0);
                v["dedup_table_quota"] = Value::from("auto");
            }
            if core.flavor() >= ApiFlavor::V26_0 {
                // 26.0: `all_sed` and a typed `scan` (`MW/api/v26_0_0/pool.py`).
                v["all_sed"] = Value::Null;
                v["scan"] = json!({
                    "function": "SCRUB", "state": "FINISHED",
                    "start_time": date(core.state.system.boottime_ms),
                    "end_time": date(core.state.system.boottime_ms + 3_600_000),
                    "percentage": 100.0, "bytes_to_process": 1_073_741_824_i64,
                    "bytes_processed": 1_073_741_824_i64, "bytes_issued": 1_073_741_824_i64,
                    "pause": null, "errors": 0, "total_secs_left": null,
                });
            }
            v
        })
        .collect()
}

fn is_internal(core: &Core, d: &Dataset) -> bool {
    let internal = d
        .name
        .split('/')
        .any(|c| matches!(c, ".system" | "ix-applications" | "ix-apps" | ".ix-virt"));
    internal || core.state.pool(d.pool()).is_none_or(|p| p.boot)
}

/// Options of a dataset query that change the rendering.
struct Extra {
    children: bool,
    user_props: bool,
    properties: Option<Vec<String>>,
}

fn extra(params: &[Value]) -> Extra {
    let e = params
        .get(1)
        .and_then(|o| o.get("extra"))
        .cloned()
        .unwrap_or(Value::Null);
    Extra {
        children: e
            .get("retrieve_children")
            .and_then(Value::as_bool)
            .unwrap_or(true),
        user_props: e
            .get("retrieve_user_props")
            .and_then(Value::as_bool)
            .unwrap_or(true),
        properties: e.get("properties").and_then(Value::as_array).map(|l| {
            l.iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        }),
    }
}

/// `pool.dataset.query [filters, options]`.
pub(crate) fn query_datasets(core: &Core, params: &[Value]) -> Result<Value, RpcError> {
    let x = extra(params);
    let entries = core
        .state
        .datasets
        .iter()
        .filter(|d| !is_internal(core, d))
        .map(|d| render(core, d, &x))
        .collect();
    answer(entries, params)
}

fn render(core: &Core, d: &Dataset, x: &Extra) -> Value {
    let mut v = json!({
        "id": d.name, "type": d.kind, "name": d.name, "pool": d.pool(),
        "encrypted": d.encrypted,
        "encryption_root": if d.encrypted { Value::from(d.name.clone()) } else { Value::Null },
        "key_loaded": if d.encrypted { Value::Bool(!d.locked) } else { Value::Bool(false) },
        "locked": d.locked,
        "mountpoint": d.mountpoint(),
        "children": [],
    });
    if x.user_props {
        v["user_properties"] = user_properties(core, d);
    }
    for (name, prop) in zfs_properties(d) {
        if x.properties
            .as_ref()
            .is_none_or(|want| want.contains(&name))
        {
            v[name] = prop;
        }
    }
    if x.children {
        let children: Vec<Value> = core
            .state
            .datasets
            .iter()
            .filter(|c| {
                c.name
                    .rsplit_once('/')
                    .is_some_and(|(parent, _)| parent == d.name)
            })
            .filter(|c| !is_internal(core, c))
            .map(|c| render(core, c, x))
            .collect();
        v["children"] = Value::from(children);
    }
    v
}

fn prop(value: &str, source: &str) -> Value {
    json!({"value": value, "rawvalue": value.to_lowercase(), "parsed": value, "source": source, "source_info": null})
}

fn zfs_properties(d: &Dataset) -> Vec<(String, Value)> {
    let mut out = Vec::new();
    for (name, default) in [
        ("comments", ""),
        ("compression", "LZ4"),
        ("atime", "OFF"),
        ("sync", "STANDARD"),
        ("readonly", "OFF"),
        ("snapdir", "HIDDEN"),
    ] {
        let value = match d.properties.get(name) {
            Some(Value::String(s)) if s != "INHERIT" => prop(s, "LOCAL"),
            Some(other) if !other.is_string() => prop(&other.to_string(), "LOCAL"),
            _ => prop(default, "DEFAULT"),
        };
        out.push((name.to_owned(), value));
    }
    out
}

/// Effective user properties: own values (LOCAL) plus ancestors' (INHERITED; 25.10 says LOCAL).
fn user_properties(core: &Core, d: &Dataset) -> Value {
    let mut effective: BTreeMap<String, Value> = BTreeMap::new();
    let parts: Vec<&str> = d.name.split('/').collect();
    for depth in 1..=parts.len() {
        let name = parts[..depth].join("/");
        let Some(ancestor) = core.state.dataset(&name) else {
            continue;
        };
        let own = ancestor.name == d.name;
        for (k, val) in &ancestor.user_properties {
            let (source, info) = match (own, core.flavor()) {
                // 25.10+ hard-codes LOCAL (`MW/plugins/pool_/dataset_query_utils.py`).
                (true, _) => ("LOCAL", Value::Null),
                (false, f) if f >= ApiFlavor::V25_10 => ("LOCAL", Value::Null),
                (false, _) => ("INHERITED", Value::from(ancestor.name.clone())),
            };
            effective.insert(
                k.clone(),
                json!({"value": val, "rawvalue": val, "parsed": val, "source": source, "source_info": info}),
            );
        }
    }
    Value::Object(effective.into_iter().collect())
}

/// `pool.dataset.update [id, data]` → the updated entry.
pub(crate) fn update_dataset(core: &mut Core, params: &[Value]) -> Result<Value, RpcError> {
    let id = params
        .first()
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    let data = object_param(params, 1);
    let exists = core
        .state
        .dataset(&id)
        .is_some_and(|d| !is_internal(core, d));
    if !exists {
        return Err(RpcError::Invalid(vec![Issue {
            path: "id".into(),
            message: format!("{id} does not exist"),
            errno: errno::ENOENT,
        }]));
    }
    verdict(rules::dataset_user_properties(&data))?;
    let Some(ds) = core.state.datasets.iter_mut().find(|d| d.name == id) else {
        return Err(RpcError::Other("simulator: dataset vanished".into()));
    };
    apply_update(ds, &data);
    core.emit(
        "pool.dataset.query",
        EventKind::Changed,
        Value::from(id.clone()),
        None,
    );
    let x = Extra {
        children: true,
        user_props: true,
        properties: None,
    };
    let rendered = core
        .state
        .dataset(&id)
        .map_or(Value::Null, |d| render(core, d, &x));
    Ok(rendered)
}

fn apply_update(ds: &mut Dataset, data: &Map<String, Value>) {
    if let Some(full) = data
        .get("user_properties")
        .and_then(Value::as_array)
        .filter(|l| !l.is_empty())
    {
        ds.user_properties.clear();
        for p in full {
            set_prop(ds, p);
        }
    }
    for p in data
        .get("user_properties_update")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        if p.get("remove").and_then(Value::as_bool) == Some(true) {
            if let Some(key) = p.get("key").and_then(Value::as_str) {
                ds.user_properties.remove(key);
            }
        } else {
            set_prop(ds, p);
        }
    }
    for (k, v) in data {
        if !matches!(
            k.as_str(),
            "user_properties" | "user_properties_update" | "create_ancestors" | "force_size"
        ) {
            if v == "INHERIT" {
                ds.properties.remove(k);
            } else {
                ds.properties.insert(k.clone(), v.clone());
            }
        }
    }
}

fn set_prop(ds: &mut Dataset, p: &Value) {
    if let (Some(k), Some(v)) = (
        p.get("key").and_then(Value::as_str),
        p.get("value").and_then(Value::as_str),
    ) {
        ds.user_properties.insert(k.to_owned(), v.to_owned());
    }
}

/// `pool.dataset.create [data]` → the new entry.
pub(crate) fn create_dataset(core: &mut Core, params: &[Value]) -> Result<Value, RpcError> {
    let data = object_param(params, 0);
    let name = data
        .get("name")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    let at = "pool_dataset_create.name";
    let Some((parent, _)) = name.rsplit_once('/') else {
        return Err(RpcError::invalid(
            at,
            "You need a full name, e.g. pool/newdataset",
        ));
    };
    if core.state.dataset(&name).is_some() {
        return Err(RpcError::invalid(
            at,
            format!("Path /mnt/{name} already exists"),
        ));
    }
    let ancestors = data
        .get("create_ancestors")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let mut missing = Vec::new();
    let mut cur = parent.to_owned();
    while core.state.dataset(&cur).is_none() {
        missing.push(cur.clone());
        match cur.rsplit_once('/') {
            Some((up, _)) if ancestors => cur = up.to_owned(),
            _ => {
                return Err(RpcError::invalid(
                    at,
                    "Parent dataset does not exist for specified name",
                ));
            }
        }
    }
    if core.state.pool(&cur).is_some_and(|p| p.boot) {
        return Err(RpcError::invalid(
            at,
            "Parent dataset does not exist for specified name",
        ));
    }
    let bad_keys: Vec<Issue> = data
        .get("user_properties")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .enumerate()
        .filter_map(|(i, p)| {
            let key = p.get("key").and_then(Value::as_str).unwrap_or_default();
            (!rules::zfs_user_property_name(key)).then(|| {
                Issue::new(
                    format!("pool_dataset_create.user_properties.{i}.key"),
                    format!("'{key}' is not a valid ZFS user property name"),
                )
            })
        })
        .collect();
    verdict(bad_keys)?;
    for m in missing.into_iter().rev() {
        core.state.datasets.push(Dataset::filesystem(&m));
    }
    let mut ds = Dataset::filesystem(&name);
    if let Some(kind) = data.get("type").and_then(Value::as_str) {
        kind.clone_into(&mut ds.kind);
    }
    let mut rest = data.clone();
    rest.remove("name");
    rest.remove("type");
    apply_update(&mut ds, &rest);
    core.state.datasets.push(ds);
    core.emit(
        "pool.dataset.query",
        EventKind::Added,
        Value::from(name.clone()),
        None,
    );
    let x = Extra {
        children: true,
        user_props: true,
        properties: None,
    };
    Ok(core
        .state
        .dataset(&name)
        .map_or(Value::Null, |d| render(core, d, &x)))
}

/// `zfs.resource.query [{paths, properties, get_user_properties, get_children, ...}]` (25.10).
pub(crate) fn resource_query(core: &Core, params: &[Value]) -> Value {
    let q = object_param(params, 0);
    let paths: Vec<String> = q
        .get("paths")
        .and_then(Value::as_array)
        .map(|l| {
            l.iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default();
    let user = q
        .get("get_user_properties")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let children = q
        .get("get_children")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let selected = core
        .state
        .datasets
        .iter()
        .filter(|d| !is_internal(core, d))
        .filter(|d| {
            paths.is_empty()
                || paths
                    .iter()
                    .any(|p| d.name == *p || (children && d.name.starts_with(&format!("{p}/"))))
        });
    let entries: Vec<Value> = selected
        .map(|d| {
            let props: Map<String, Value> = d
                .user_properties
                .iter()
                .map(|(k, v)| (k.clone(), Value::from(v.clone())))
                .collect();
            json!({
                "name": d.name, "pool": d.pool(), "type": d.kind,
                "guid": 1_000_000 + d.name.len(), "createtxg": 1,
                "properties": {},
                "user_properties": if user { Value::Object(props) } else { Value::Null },
                "children": [],
            })
        })
        .collect();
    Value::from(entries)
}
