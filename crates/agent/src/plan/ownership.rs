//! What the agent owns on the NAS, as recorded in its state directory.
//!
//! Owns: the [`Ownership`] record's shape (persisted by `apply` as `ownership.json`):
//! owned object ids per pool, keyed fingerprints of the secrets last written, executed
//! action ids, the last applied revision, write-ahead records of creates in flight, and
//! an SNMP apply that failed and must be re-applied ([`SnmpRetry`]).
//! Does not: read or write files (`apply::OwnershipStore` does).
//! Invariants: holds no secret, only [`Fingerprint`]s; an id is recorded only after the
//! middleware confirmed the object; a [`PendingCreate`] is written *before* a create
//! is sent, so an interrupted create can be matched back instead of duplicated.
//! Limitations: one agent per NAS; two agents with different state dirs would each
//! treat the other's objects as hand-made.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::state_dir::Fingerprint;

/// Kinds of middleware objects the agent manages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ObjectKind {
    Credential,
    CloudSync,
    SnapshotTask,
}

impl ObjectKind {
    /// Human name.
    pub fn label(self) -> &'static str {
        match self {
            ObjectKind::Credential => "credential",
            ObjectKind::CloudSync => "cloud sync task",
            ObjectKind::SnapshotTask => "snapshot task",
        }
    }
}

/// An object the agent created or adopted.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OwnedObject {
    pub id: u64,
    /// Fingerprints of the secrets last written into it, by middleware field name
    /// (`key`, `encryption_password`, `encryption_salt`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub fingerprints: BTreeMap<String, Fingerprint>,
}

impl OwnedObject {
    /// A record with no fingerprints yet.
    pub fn new(id: u64) -> Self {
        Self {
            id,
            fingerprints: BTreeMap::new(),
        }
    }
}

/// A create that was about to be sent. If the reply is lost, the next plan claims the
/// object with exactly this identity and an id above `max_id_before` (ids only grow).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingCreate {
    pub kind: ObjectKind,
    /// The pool for tasks; `None` for the credential.
    pub pool: Option<String>,
    /// The largest id of this kind seen before the create was sent.
    pub max_id_before: u64,
}

/// An SNMP apply (`snmp.update`, or the snmpd start after it) that failed. The
/// middleware stores the new settings *before* it re-creates the v3 user through
/// snmpd (REFERENCE §8 row 5), so after a failure `snmp.config` may already match the
/// document while snmpd has no such user: a plain diff would never retry. While this is
/// recorded, every pass re-applies SNMP in a way that makes the middleware re-create the
/// user, and starts snmpd, until that succeeds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnmpRetry {
    /// When the failure happened (RFC 3339).
    pub failed_at: String,
    /// The step that failed (its one-line summary; no secrets).
    pub step: String,
    /// Why, redacted of the document's secrets.
    pub error: String,
}

/// The agent's ownership record.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ownership {
    #[serde(default)]
    pub credential: Option<OwnedObject>,
    /// Pool → Cloud Sync task.
    #[serde(default)]
    pub cloud_sync: BTreeMap<String, OwnedObject>,
    /// Pool → periodic snapshot task.
    #[serde(default)]
    pub snapshot_tasks: BTreeMap<String, OwnedObject>,
    /// Fingerprints of the SNMP secrets last written (`v3_password`, `v3_privpassphrase`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub snmp_fingerprints: BTreeMap<String, Fingerprint>,
    /// Ids of one-shot actions already executed (or attempted: at most once).
    #[serde(default)]
    pub executed_actions: BTreeSet<String>,
    /// The last document revision `apply` ran in enforce mode.
    #[serde(default)]
    pub last_revision: Option<u64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pending: Vec<PendingCreate>,
    /// A failed SNMP apply still to be retried.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snmp_retry: Option<SnmpRetry>,
}

impl Ownership {
    /// The owned task map for a task kind (`None` for the credential).
    pub fn tasks(&self, kind: ObjectKind) -> Option<&BTreeMap<String, OwnedObject>> {
        match kind {
            ObjectKind::CloudSync => Some(&self.cloud_sync),
            ObjectKind::SnapshotTask => Some(&self.snapshot_tasks),
            ObjectKind::Credential => None,
        }
    }

    /// Mutable owned task map for a task kind.
    pub fn tasks_mut(&mut self, kind: ObjectKind) -> Option<&mut BTreeMap<String, OwnedObject>> {
        match kind {
            ObjectKind::CloudSync => Some(&mut self.cloud_sync),
            ObjectKind::SnapshotTask => Some(&mut self.snapshot_tasks),
            ObjectKind::Credential => None,
        }
    }

    /// True when `id` of `kind` is recorded as ours (for any pool).
    pub fn owns(&self, kind: ObjectKind, id: u64) -> bool {
        match kind {
            ObjectKind::Credential => self.credential.as_ref().is_some_and(|c| c.id == id),
            ObjectKind::CloudSync | ObjectKind::SnapshotTask => self
                .tasks(kind)
                .is_some_and(|m| m.values().any(|o| o.id == id)),
        }
    }

    /// The pending create for `kind`/`pool`, if one was interrupted.
    pub fn pending_for(&self, kind: ObjectKind, pool: Option<&str>) -> Option<&PendingCreate> {
        self.pending
            .iter()
            .find(|p| p.kind == kind && p.pool.as_deref() == pool)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_tolerates_missing_keys() {
        let mut own = Ownership::default();
        own.cloud_sync.insert("pool0".into(), OwnedObject::new(5));
        own.pending.push(PendingCreate {
            kind: ObjectKind::SnapshotTask,
            pool: Some("pool1".into()),
            max_id_before: 3,
        });
        let text = serde_json::to_string(&own).unwrap();
        let back: Ownership = serde_json::from_str(&text).unwrap();
        assert_eq!(back, own);
        assert!(back.owns(ObjectKind::CloudSync, 5));
        assert!(!back.owns(ObjectKind::SnapshotTask, 5));
        assert!(
            back.pending_for(ObjectKind::SnapshotTask, Some("pool1"))
                .is_some()
        );
        let empty: Ownership = serde_json::from_str("{}").unwrap();
        assert_eq!(empty, Ownership::default());
    }
}
