//! The device's desired-state document as provisioning writes it (central-protocol §3).
//!
//! Owns: which keys provisioning decides (`schema`, `revision`, `issued_at`, `device`,
//! `pools`, `b2`, `encryption`, `snmp`, `cloud_sync.bandwidth`) and that every other key
//! of the published document (an operator's `mode`, `snapshots` or `cloud_sync`
//! overrides, `actions`, `adopt`, `removed_pools`) is carried over; whether a new
//! document differs from the published one (revision and `issued_at` aside).
//! Does not: validate (the caller runs `desired::parse`, the agent's own validation) or
//! publish.
//! Invariants: pure; `device.guid` is never set (the agent keeps or generates the GUID;
//! NinjaOne's value, when central ops have it, is theirs to add); `encryption.allow_rekey`
//! is never carried over (a moved device's new destination is not a re-key).
//! Limitations: none known.

use chrono::{DateTime, SecondsFormat, Utc};
use secrecy::ExposeSecret as _;
use serde_json::{Map, Value, json};

use super::inputs::{Inputs, bandwidth_json};
use crate::secrets::DeviceSecrets;
use truenas_agent::desired::SCHEMA_V1;

/// Top-level keys provisioning owns.
const OWNED: [&str; 8] = [
    "schema",
    "revision",
    "issued_at",
    "device",
    "pools",
    "b2",
    "encryption",
    "snmp",
];

/// The document for `inputs` and `secrets`, on top of the published `base`.
pub fn compose(
    base: Option<&Value>,
    inputs: &Inputs,
    secrets: &DeviceSecrets,
    revision: u64,
    issued_at: DateTime<Utc>,
) -> Value {
    let mut doc = Map::new();
    if let Some(Value::Object(base)) = base {
        for (k, v) in base {
            if !OWNED.contains(&k.as_str()) {
                doc.insert(k.clone(), v.clone());
            }
        }
    }
    doc.insert("schema".into(), json!(SCHEMA_V1));
    doc.insert("revision".into(), json!(revision));
    doc.insert(
        "issued_at".into(),
        json!(issued_at.to_rfc3339_opts(SecondsFormat::Secs, true)),
    );
    doc.entry("mode").or_insert_with(|| json!("enforce"));
    let mut device = json!({
        "org_uuid": inputs.org_uuid.hyphenated().to_string(),
        "location_uuid": inputs.location_uuid.hyphenated().to_string(),
    });
    if let Some(name) = &inputs.location_name {
        device["location_name"] = json!(name);
    }
    if let Some(root) = &inputs.root_pool {
        device["root_pool"] = json!(root);
    }
    doc.insert("device".into(), device);
    match &inputs.pools {
        Some(pools) => {
            doc.insert("pools".into(), json!(pools));
        }
        None => {
            doc.remove("pools");
        }
    }
    let current = &secrets.current;
    if let Some(key) = &current.key {
        doc.insert(
            "b2".into(),
            json!({"key_id": key.key_id, "application_key": key.application_key.expose_secret()}),
        );
    }
    doc.insert(
        "encryption".into(),
        json!({
            "password": current.encryption.password.expose_secret(),
            "salt": current.encryption.salt.expose_secret(),
        }),
    );
    doc.insert(
        "snmp".into(),
        json!({
            "username": secrets.snmp.username,
            "auth_password": secrets.snmp.auth_password.expose_secret(),
            "privacy_passphrase": secrets.snmp.privacy_passphrase.expose_secret(),
        }),
    );
    let mut cloud_sync = match doc.remove("cloud_sync") {
        Some(Value::Object(m)) => m,
        _ => Map::new(),
    };
    match &inputs.bandwidth {
        Some(bw) => {
            cloud_sync.insert("bandwidth".into(), bandwidth_json(bw));
        }
        None => {
            cloud_sync.remove("bandwidth");
        }
    }
    if !cloud_sync.is_empty() {
        doc.insert("cloud_sync".into(), Value::Object(cloud_sync));
    }
    Value::Object(doc)
}

/// True when two documents say the same apart from `revision` and `issued_at`.
pub fn same_content(a: &Value, b: &Value) -> bool {
    let strip = |v: &Value| {
        let mut v = v.clone();
        if let Some(m) = v.as_object_mut() {
            m.remove("revision");
            m.remove("issued_at");
        }
        v
    };
    strip(a) == strip(b)
}

/// Top-level keys whose content differs (for the plan; never values).
pub fn changed_keys(old: Option<&Value>, new: &Value) -> Vec<String> {
    let empty = Map::new();
    let old = old.and_then(Value::as_object).unwrap_or(&empty);
    let new_map = new.as_object().unwrap_or(&empty);
    let mut keys: Vec<String> = new_map
        .keys()
        .chain(old.keys())
        .filter(|k| !matches!(k.as_str(), "revision" | "issued_at"))
        .filter(|k| old.get(k.as_str()) != new_map.get(k.as_str()))
        .cloned()
        .collect();
    keys.sort();
    keys.dedup();
    keys
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::provision::inputs::{AdminKey, Bandwidth};
    use crate::secrets::{Destination, new_encryption, new_snmp};

    fn inputs(bandwidth: Option<Bandwidth>, pools: Option<Vec<String>>) -> Inputs {
        Inputs {
            device: "nas-01".into(),
            org_uuid: uuid::Uuid::new_v4(),
            location_uuid: uuid::Uuid::new_v4(),
            location_name: None,
            root_pool: Some("pool0".into()),
            pools,
            bandwidth,
            bucket: "truenas-x".into(),
            admin: AdminKey {
                key_id: "id".into(),
                key: "k".to_owned().into(),
            },
            api: "https://api.backblazeb2.com".into(),
        }
    }

    fn record() -> DeviceSecrets {
        let now = Utc::now();
        DeviceSecrets {
            schema: String::new(),
            device: "nas-01".into(),
            provisioned_at: now,
            updated_at: now,
            current: Destination {
                org_uuid: uuid::Uuid::new_v4(),
                location_uuid: uuid::Uuid::new_v4(),
                location_name: None,
                bucket: "truenas-x".into(),
                bucket_id: "b".into(),
                key: None,
                encryption: new_encryption(now),
                since: now,
                retired_at: None,
            },
            snmp: new_snmp(now),
            previous: Vec::new(),
            replaced_keys: Vec::new(),
        }
    }

    #[test]
    fn carries_operator_keys_and_owns_its_own() {
        let base = json!({
            "schema": SCHEMA_V1, "revision": 4, "mode": "report-only",
            "pools": ["old"], "snapshots": {"lifetime_value": 3},
            "cloud_sync": {"bandwidth": {"uplink_mbps": 5}, "transfers": 8},
            "encryption": {"password": "p", "salt": "s", "allow_rekey": true},
            "actions": [{"id": "a", "type": "run_cloud_sync", "pool": "pool0"}]
        });
        let bw = Bandwidth {
            uplink_mbps: 100.into(),
            business_hours: None,
        };
        let doc = compose(
            Some(&base),
            &inputs(Some(bw), None),
            &record(),
            5,
            Utc::now(),
        );
        assert_eq!(doc["mode"], "report-only");
        assert_eq!(doc["snapshots"]["lifetime_value"], 3);
        assert_eq!(doc["actions"][0]["id"], "a");
        assert_eq!(doc["cloud_sync"]["transfers"], 8);
        assert_eq!(doc["cloud_sync"]["bandwidth"], json!({"uplink_mbps": 100}));
        assert!(doc.get("pools").is_none(), "no --pools: every pool");
        assert!(doc["encryption"].get("allow_rekey").is_none());
        assert_eq!(doc["revision"], 5);
        assert!(
            truenas_agent::desired::parse(doc.to_string().as_bytes()).is_err(),
            "no b2 key yet"
        );
        // Without --uplink-mbps the bandwidth goes; an emptied cloud_sync disappears.
        let base = json!({"cloud_sync": {"bandwidth": {"uplink_mbps": 5}}});
        let doc = compose(Some(&base), &inputs(None, None), &record(), 1, Utc::now());
        assert!(doc.get("cloud_sync").is_none());
        assert_eq!(doc["mode"], "enforce");
        let again = compose(Some(&doc), &inputs(None, None), &record(), 2, Utc::now());
        assert!(
            !same_content(&doc, &again),
            "new secrets each record() call"
        );
        assert!(changed_keys(Some(&doc), &again).contains(&"encryption".to_owned()));
    }
}
