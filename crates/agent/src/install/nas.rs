//! The middleware calls `install` makes: pools, the install dataset, init-script entries.
//!
//! Owns: sending those calls (built by `middleware::calls`), decoding their replies into [`DatasetInfo`] / [`InitEntry`],
//! and the rule "will this dataset be unlocked when the box boots" ([`boot_lock`]).
//! Does not: write files or run systemd; never touches an init-script entry without our
//!   marker, nor a dataset other than the one it was asked to create.
//! Invariants: params are built only from validated names and our own spec; every field
//!   decoded from a reply is checked for its type.
//! Limitations: key-encrypted datasets are accepted on the strength of TrueNAS storing
//!   the key in its config database and unlocking them at import (REFERENCE §4.7 and the
//!   `pool.dataset.create` doc); a key kept only in a KMIP server is not distinguished.

use std::path::PathBuf;

use serde::Serialize;
use serde_json::{Map, Value, json};

use super::error::InstallError;
use super::layout::DatasetName;
use super::units::{InitScriptSpec, is_ours};
use crate::middleware::{Call, Method, Middleware, calls, type_name};

/// The facts about a dataset that decide whether the agent can live on it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct DatasetInfo {
    pub name: String,
    /// Null for a dataset that is not mounted.
    pub mountpoint: Option<PathBuf>,
    pub encrypted: bool,
    /// Locked now (encrypted and key not loaded).
    pub locked: bool,
    /// `PASSPHRASE`, `HEX`, `RAW` (upper-cased), when encrypted.
    pub key_format: Option<String>,
    /// `ON` / `OFF`: whether binaries on it may be executed.
    pub exec: Option<String>,
    /// `ON` / `OFF`.
    pub readonly: Option<String>,
}

impl DatasetInfo {
    /// Decodes one `pool.dataset.query` entry.
    pub(crate) fn from_entry(entry: &Value) -> Result<Self, String> {
        let name = entry
            .get("id")
            .and_then(Value::as_str)
            .ok_or("entry without a string `id`")?
            .to_owned();
        let encrypted = entry
            .get("encrypted")
            .and_then(Value::as_bool)
            .ok_or_else(|| format!("dataset {name}: `encrypted` missing or not a boolean"))?;
        let prop = |key: &str| {
            entry
                .get(key)
                .and_then(|p| p.get("value").or(Some(p)))
                .and_then(Value::as_str)
                .map(str::to_ascii_uppercase)
        };
        Ok(Self {
            mountpoint: entry
                .get("mountpoint")
                .and_then(Value::as_str)
                .filter(|m| !m.is_empty() && *m != "none" && *m != "legacy")
                .map(PathBuf::from),
            encrypted,
            locked: entry
                .get("locked")
                .and_then(Value::as_bool)
                .unwrap_or(false),
            key_format: prop("key_format").filter(|f| f != "NONE"),
            exec: prop("exec"),
            readonly: prop("readonly"),
            name,
        })
    }
}

/// Why a dataset cannot hold the agent because it would not be readable at boot;
/// `None` when it can.
pub(crate) fn boot_lock(info: &DatasetInfo) -> Option<String> {
    if !info.encrypted {
        return None;
    }
    let format = info.key_format.as_deref();
    match (format, info.locked) {
        (Some("PASSPHRASE"), _) => Some(
            "it is encrypted with a passphrase: TrueNAS leaves such datasets locked after every \
             boot until someone types the passphrase, so the agent could not start"
                .to_owned(),
        ),
        (_, true) => Some(
            "it is locked now (encryption key not loaded); unlock it, or choose an unencrypted \
             or key-encrypted dataset"
                .to_owned(),
        ),
        (Some("HEX" | "RAW"), false) => None,
        (other, false) => Some(format!(
            "it is encrypted with a key format the installer does not know ({}), so it cannot \
             tell whether TrueNAS unlocks it at boot",
            other.unwrap_or("none reported")
        )),
    }
}

/// Names of the imported pools (`pool.query`).
pub(crate) async fn pools(mw: &impl Middleware) -> Result<Vec<String>, InstallError> {
    let reply = call(mw, calls::pools_query()).await?;
    list(&reply, Method::PoolQuery)?
        .iter()
        .map(|p| {
            p.get("name")
                .and_then(Value::as_str)
                .map(str::to_owned)
                .ok_or_else(|| unexpected(Method::PoolQuery, "pool entry without a `name`"))
        })
        .collect()
}

/// Pools whose root dataset carries the device GUID property `guid_property`.
pub(crate) async fn pools_with_guid(
    mw: &impl Middleware,
    pools: &[String],
    guid_property: &str,
) -> Result<Vec<String>, InstallError> {
    let reply = call(mw, calls::root_datasets_query(pools)).await?;
    Ok(list(&reply, Method::DatasetQuery)?
        .iter()
        .filter(|ds| {
            ds.get("user_properties")
                .and_then(|p| p.get(guid_property))
                .is_some()
        })
        .filter_map(|ds| ds.get("id").and_then(Value::as_str).map(str::to_owned))
        .collect())
}

/// One dataset, or `None` when it does not exist.
pub(crate) async fn dataset(
    mw: &impl Middleware,
    name: &str,
) -> Result<Option<DatasetInfo>, InstallError> {
    let reply = call(mw, calls::dataset_query(name)).await?;
    let entries = list(&reply, Method::DatasetQuery)?;
    entries
        .first()
        .map(|e| DatasetInfo::from_entry(e).map_err(|d| unexpected(Method::DatasetQuery, &d)))
        .transpose()
}

/// Creates the install dataset: a plain filesystem, executable, writable, with POSIX
/// ACLs so that the 0700/0600 modes the installer sets are the whole story (on an NFSv4
/// ACL dataset with `aclmode=restricted`, chmod is refused and inherited ACEs could grant
/// share users access); everything else (compression, encryption) is inherited.
/// POSIX needs `aclmode=DISCARD` (middleware `pool_/dataset.py` `__common_validation`).
pub(crate) async fn create_dataset(
    mw: &impl Middleware,
    name: &DatasetName,
) -> Result<(), InstallError> {
    call(mw, calls::dataset_create(dataset_spec(name)))
        .await
        .map(drop)
}

/// The install dataset's `pool.dataset.create` spec (see [`create_dataset`]).
fn dataset_spec(name: &DatasetName) -> Map<String, Value> {
    let spec = [
        ("name", name.as_str()),
        ("type", "FILESYSTEM"),
        (
            "comments",
            "truenas-agent: binary, config and state (managed by truenas-agent install)",
        ),
        ("exec", "ON"),
        ("readonly", "OFF"),
        ("share_type", "GENERIC"),
        ("acltype", "POSIX"),
        ("aclmode", "DISCARD"),
    ];
    spec.into_iter()
        .map(|(key, value)| (key.to_owned(), json!(value)))
        .collect()
}

/// An init-script entry carrying our marker.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct InitEntry {
    pub id: i64,
    pub entry: Value,
}

impl InitEntry {
    /// The entry's command (empty if absent).
    pub(crate) fn command(&self) -> &str {
        self.entry
            .get("command")
            .and_then(Value::as_str)
            .unwrap_or_default()
    }

    /// The entry's comment.
    pub(crate) fn comment(&self) -> &str {
        self.entry
            .get("comment")
            .and_then(Value::as_str)
            .unwrap_or_default()
    }
}

/// Every init-script entry with our marker, oldest first. Other entries are not returned,
/// so nothing downstream can touch them.
pub(crate) async fn our_init_entries(mw: &impl Middleware) -> Result<Vec<InitEntry>, InstallError> {
    let reply = call(mw, calls::init_scripts_query()).await?;
    let mut ours = Vec::new();
    for entry in list(&reply, Method::InitScriptQuery)? {
        let comment = entry.get("comment").and_then(Value::as_str).unwrap_or("");
        if !is_ours(comment) {
            continue;
        }
        let id = entry
            .get("id")
            .and_then(Value::as_i64)
            .ok_or_else(|| unexpected(Method::InitScriptQuery, "entry without an integer `id`"))?;
        ours.push(InitEntry {
            id,
            entry: entry.clone(),
        });
    }
    Ok(ours)
}

/// What happened to our init-script entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "action")]
pub enum InitChange {
    Created { id: i64 },
    Updated { id: i64, fields: Vec<String> },
    Unchanged { id: i64 },
}

/// Makes exactly one entry of ours match `spec`: updates the first one found (or
/// creates it) and deletes any duplicates of ours.
pub(crate) async fn ensure_init_entry(
    mw: &impl Middleware,
    spec: &InitScriptSpec,
) -> Result<InitChange, InstallError> {
    let ours = our_init_entries(mw).await?;
    let Some((first, duplicates)) = ours.split_first() else {
        let reply = call(mw, calls::init_script_create(spec.to_json())).await?;
        let id = reply
            .get("id")
            .and_then(Value::as_i64)
            .ok_or_else(|| unexpected(Method::InitScriptCreate, "reply without an integer `id`"))?;
        return Ok(InitChange::Created { id });
    };
    for dup in duplicates {
        call(mw, calls::init_script_delete(dup.id)).await?;
    }
    let fields = spec.differences(&first.entry);
    if fields.is_empty() {
        return Ok(InitChange::Unchanged { id: first.id });
    }
    call(mw, calls::init_script_update(first.id, spec.to_json())).await?;
    Ok(InitChange::Updated {
        id: first.id,
        fields: fields.into_iter().map(str::to_owned).collect(),
    })
}

/// Deletes every entry of ours; returns their ids.
pub(crate) async fn delete_init_entries(mw: &impl Middleware) -> Result<Vec<i64>, InstallError> {
    let ours = our_init_entries(mw).await?;
    for entry in &ours {
        call(mw, calls::init_script_delete(entry.id)).await?;
    }
    Ok(ours.into_iter().map(|e| e.id).collect())
}

async fn call(mw: &impl Middleware, call: Call) -> Result<Value, InstallError> {
    mw.call(call)
        .await
        .map_err(|source| InstallError::Middleware { source })
}

fn list(reply: &Value, method: Method) -> Result<&Vec<Value>, InstallError> {
    reply.as_array().ok_or_else(|| {
        unexpected(
            method,
            &format!("expected a list, got {}", type_name(reply)),
        )
    })
}

fn unexpected(method: Method, detail: &str) -> InstallError {
    InstallError::UnexpectedReply {
        method,
        detail: detail.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(encrypted: bool, locked: bool, format: Option<&str>) -> DatasetInfo {
        DatasetInfo {
            name: "pool0/.truenas-agent".into(),
            mountpoint: Some("/mnt/pool0/.truenas-agent".into()),
            encrypted,
            locked,
            key_format: format.map(str::to_owned),
            exec: Some("ON".into()),
            readonly: Some("OFF".into()),
        }
    }

    #[test]
    fn boot_lock_rules() {
        assert_eq!(boot_lock(&info(false, false, None)), None);
        assert_eq!(boot_lock(&info(true, false, Some("HEX"))), None);
        assert_eq!(boot_lock(&info(true, false, Some("RAW"))), None);
        let pass = boot_lock(&info(true, false, Some("PASSPHRASE"))).unwrap();
        assert!(pass.contains("passphrase"), "{pass}");
        let locked = boot_lock(&info(true, true, Some("HEX"))).unwrap();
        assert!(locked.contains("locked now"), "{locked}");
        assert!(
            boot_lock(&info(true, false, None))
                .unwrap()
                .contains("none reported")
        );
    }

    #[test]
    fn decodes_dataset_entries_of_every_shape() {
        let entry = json!({
            "id": "pool0/a", "encrypted": true, "locked": false,
            "key_format": {"value": "passphrase", "rawvalue": "passphrase"},
            "exec": {"value": "ON"}, "readonly": {"value": "OFF"},
            "mountpoint": "/mnt/pool0/a"
        });
        let info = DatasetInfo::from_entry(&entry).unwrap();
        assert_eq!(info.key_format.as_deref(), Some("PASSPHRASE"));
        assert_eq!(info.mountpoint, Some(PathBuf::from("/mnt/pool0/a")));
        let unmounted = json!({"id": "pool0/b", "encrypted": false, "mountpoint": null});
        assert_eq!(
            DatasetInfo::from_entry(&unmounted).unwrap().mountpoint,
            None
        );
        let bad = json!({"id": "pool0/c"});
        assert!(
            DatasetInfo::from_entry(&bad)
                .unwrap_err()
                .contains("encrypted")
        );
    }
}
