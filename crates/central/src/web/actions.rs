//! The dashboard's actions on a device's document, and the masked view of a document.
//!
//! Owns: "run a first backup now" ([`first_backup`]: the published document plus one
//! `run_cloud_sync` action for a pool, under the next revision and a fresh `issued_at`,
//! published through `Db::publish_validated` — the same validated path as `truenas-central
//! publish`), and [`masked`], the document as the device page shows it.
//! Does not: disable or enable tokens (one database call, in `web`), or sign (serving
//! signs on the fly).
//! Invariants: a document is changed only through the validated publish (a document the
//! agent would refuse is never published; a revision not above the published one — an
//! operator racing another — is refused, nothing half-done); the masked view shows no
//! secret: every value under a secret key is replaced, and every string that contains a
//! secret the agent's own parser finds in the document is replaced too.
//! Limitations: actions accumulate in the document (the agent runs each id at most once
//! and reports executed ids; pruning them is central ops' own pipeline's business).

use chrono::{DateTime, SecondsFormat, Utc};
use secrecy::ExposeSecret as _;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::db::{Db, DbError};

/// What replaces a secret in the masked document.
pub const MASK: &str = "•••••• (secret, masked)";

/// Keys whose values are secrets in any v1 document (and any key that looks like one).
fn is_secret_key(key: &str) -> bool {
    let k = key.to_ascii_lowercase();
    k == "application_key"
        || k == "salt"
        || k.contains("password")
        || k.contains("passphrase")
        || k.contains("secret")
        || k.contains("token")
}

/// The document as the dashboard shows it: pretty JSON, secrets masked.
pub fn masked(bytes: &[u8]) -> String {
    let Ok(mut value) = serde_json::from_slice::<Value>(bytes) else {
        return "(the published document is not valid JSON; not shown)".to_owned();
    };
    let secrets: Vec<String> = truenas_agent::desired::parse(bytes)
        .map(|d| {
            d.secrets()
                .iter()
                .map(|s| s.expose_secret().to_owned())
                .filter(|s| !s.is_empty())
                .collect()
        })
        .unwrap_or_default();
    mask(&mut value, &secrets, false);
    serde_json::to_string_pretty(&value).unwrap_or_default()
}

fn mask(value: &mut Value, secrets: &[String], under_secret_key: bool) {
    match value {
        Value::String(s) => {
            if under_secret_key || secrets.iter().any(|secret| s.contains(secret.as_str())) {
                MASK.clone_into(s);
            }
        }
        Value::Number(_) | Value::Bool(_) if under_secret_key => {
            *value = Value::String(MASK.to_owned());
        }
        Value::Array(items) => items
            .iter_mut()
            .for_each(|v| mask(v, secrets, under_secret_key)),
        Value::Object(map) => {
            for (key, v) in map.iter_mut() {
                mask(v, secrets, under_secret_key || is_secret_key(key));
            }
        }
        Value::Null | Value::Number(_) | Value::Bool(_) => {}
    }
}

/// Why an action was not done.
#[derive(Debug, thiserror::Error)]
pub enum ActionError {
    #[error("device `{device}` has no published document: provision or publish one first")]
    NoDocument { device: String },
    #[error("pool `{pool}` is not one of the device's pools ({known})")]
    UnknownPool { pool: String, known: String },
    #[error("the published document is not valid JSON")]
    NotJson,
    #[error(
        "another revision was published meanwhile (now {published}); reload the page and try again"
    )]
    Raced { published: u64 },
    #[error("the database refused the change")]
    Db(#[source] DbError),
}

/// The pools an action may name: the document's `pools`, else the pools the device
/// reports.
pub fn action_pools(document: &[u8], reported: &[String]) -> Vec<String> {
    let listed: Option<Vec<String>> = serde_json::from_slice::<Value>(document)
        .ok()
        .and_then(|v| v.get("pools").cloned())
        .and_then(|p| serde_json::from_value(p).ok());
    let mut pools = listed.unwrap_or_else(|| reported.to_vec());
    pools.sort();
    pools.dedup();
    pools
}

/// Adds a `run_cloud_sync` action for `pool` to the device's document and publishes it as
/// the next revision; returns the new revision.
pub async fn first_backup(
    db: &Db,
    device: &str,
    pool: &str,
    reported_pools: &[String],
    now: DateTime<Utc>,
) -> Result<u64, ActionError> {
    let doc = db
        .document(device)
        .await
        .map_err(ActionError::Db)?
        .ok_or_else(|| ActionError::NoDocument {
            device: device.to_owned(),
        })?;
    let pools = action_pools(&doc.bytes, reported_pools);
    if !pools.iter().any(|p| p == pool) {
        return Err(ActionError::UnknownPool {
            pool: pool.to_owned(),
            known: if pools.is_empty() {
                "none known yet".to_owned()
            } else {
                pools.join(", ")
            },
        });
    }
    let mut value: Value = serde_json::from_slice(&doc.bytes).map_err(|_| ActionError::NotJson)?;
    let revision = doc.revision + 1;
    let Some(object) = value.as_object_mut() else {
        return Err(ActionError::NotJson);
    };
    object.insert("revision".to_owned(), json!(revision));
    object.insert(
        "issued_at".to_owned(),
        json!(now.to_rfc3339_opts(SecondsFormat::Secs, true)),
    );
    let action = json!({"id": Uuid::new_v4().to_string(), "type": "run_cloud_sync", "pool": pool});
    match object.get_mut("actions").and_then(Value::as_array_mut) {
        Some(actions) => actions.push(action),
        None => {
            object.insert("actions".to_owned(), json!([action]));
        }
    }
    let bytes = serde_json::to_vec(&value).map_err(|_| ActionError::NotJson)?;
    match db.publish_validated(device, &bytes, false).await {
        Ok(published) => Ok(published),
        Err(DbError::NotNewer { published, .. }) => Err(ActionError::Raced { published }),
        Err(e) => Err(ActionError::Db(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masking_hides_secret_keys_and_secret_values_anywhere() {
        let doc = json!({
            "schema": "truenas-agent.config/v1",
            "revision": 3,
            "device": {"location_uuid": "a1b2c3d4-e5f6-7071-8293-a4b5c6d7e8f9"},
            "b2": {"key_id": "0024a1b2c3d4e5f0000000001", "application_key": "K-SECRET-123456"},
            "encryption": {"password": "P-SECRET-123456", "salt": "S-SECRET-123456"},
            "snmp": {"username": "snmpuser", "auth_password": "A-SECRET-123456",
                     "privacy_passphrase": "V-SECRET-123456"},
        });
        let text = masked(&serde_json::to_vec(&doc).unwrap());
        for secret in ["K-SECRET", "P-SECRET", "S-SECRET", "A-SECRET", "V-SECRET"] {
            assert!(!text.contains(secret), "{secret} in {text}");
        }
        assert!(
            text.contains("0024a1b2c3d4e5f0000000001"),
            "key ids are not secret"
        );
        assert!(text.contains("snmpuser"));
        assert_eq!(text.matches(MASK).count(), 5, "{text}");
    }

    #[test]
    fn a_secret_repeated_under_another_key_is_masked_too() {
        // A document the agent parses: its secrets are known by value.
        let mut doc = json!({
            "schema": "truenas-agent.config/v1",
            "revision": 3,
            "mode": "enforce",
            "device": {"location_uuid": "a1b2c3d4-e5f6-7071-8293-a4b5c6d7e8f9",
                       "location_name": "copy of K-SECRET-123456"},
            "b2": {"key_id": "0024a1b2c3d4e5f0000000001", "application_key": "K-SECRET-123456"},
            "encryption": {"password": "P-SECRET-123456", "salt": "S-SECRET-123456"},
        });
        let text = masked(&serde_json::to_vec(&doc).unwrap());
        assert!(!text.contains("K-SECRET"), "{text}");
        doc["device"]["location_name"] = json!("Clinic");
        let text = masked(&serde_json::to_vec(&doc).unwrap());
        assert!(text.contains("Clinic"), "{text}");
    }

    #[test]
    fn pools_come_from_the_document_else_from_the_reports() {
        let reported = vec!["tank".to_owned(), "pool0".to_owned()];
        assert_eq!(
            action_pools(br#"{"pools": ["b", "a"]}"#, &reported),
            ["a", "b"]
        );
        assert_eq!(action_pools(b"{}", &reported), ["pool0", "tank"]);
        assert_eq!(
            masked(b"not json"),
            "(the published document is not valid JSON; not shown)"
        );
    }
}
