//! The ownership record on disk: `ownership.json` in the state directory, and a second
//! copy of the executed action ids in `actions.json`.
//!
//! Owns: loading and atomically saving [`Ownership`] after every change, the
//! `actions.json` copy of [`Ownership::executed_actions`], and the keyed fingerprints of
//! the document's secrets.
//! Does not: decide what is owned (`plan` and `apply` do).
//! Invariants: every mutation is written (temp + fsync + rename, mode 0600) before the
//! caller goes on, so a crash loses at most the change in flight — which the
//! write-ahead `pending` record covers; the file holds fingerprints, never secrets. The
//! executed action ids loaded are the union of both files, and `ownership.json` is
//! written first: an id added is in `ownership.json` before anything else happens, and
//! an id dropped again but still in `actions.json` (a failed second write) comes back —
//! a one-shot action may be skipped by that, never run twice.
//! Limitations: single writer (see `state_dir`). Both files live in the same directory:
//! a lost `ownership.json` (deleted, or moved aside when it could not be read) keeps
//! its actions, a wiped state directory does not (central still has them from the
//! reports, `config.executed_actions`).

use std::collections::BTreeSet;

use secrecy::SecretString;
use serde::{Deserialize, Serialize};

use crate::desired::DesiredState;
use crate::plan::{Ownership, SecretFingerprints};
use crate::state_dir::{Fingerprint, StateDir, StateError};

/// The file this module owns in the state directory.
pub const OWNERSHIP_FILE: &str = "ownership.json";

/// The second copy of the executed action ids.
pub const ACTIONS_FILE: &str = "actions.json";

/// `actions.json`.
#[derive(Debug, Default, Serialize, Deserialize)]
struct ExecutedActions {
    #[serde(default)]
    executed_actions: BTreeSet<String>,
}

/// [`Ownership`] backed by `ownership.json`.
#[derive(Debug)]
pub struct OwnershipStore {
    dir: StateDir,
    record: Ownership,
}

impl OwnershipStore {
    /// Loads the record (an absent file is an empty record), with the executed action
    /// ids of `actions.json` added.
    pub fn load(dir: &StateDir) -> Result<Self, StateError> {
        let mut record: Ownership = dir.read_json(OWNERSHIP_FILE)?.unwrap_or_default();
        if let Some(copy) = dir.read_json::<ExecutedActions>(ACTIONS_FILE)? {
            record.executed_actions.extend(copy.executed_actions);
        }
        Ok(Self {
            dir: dir.clone(),
            record,
        })
    }

    /// The current record.
    pub fn get(&self) -> &Ownership {
        &self.record
    }

    /// Changes the record and writes it before returning. On a write error the
    /// in-memory record is left as it was on disk.
    pub fn update(&mut self, change: impl FnOnce(&mut Ownership)) -> Result<(), StateError> {
        let mut next = self.record.clone();
        change(&mut next);
        if next != self.record {
            self.dir.write_json(OWNERSHIP_FILE, &next)?;
            let actions_changed = next.executed_actions != self.record.executed_actions;
            self.record = next;
            if actions_changed {
                let copy = ExecutedActions {
                    executed_actions: self.record.executed_actions.clone(),
                };
                self.dir.write_json(ACTIONS_FILE, &copy)?;
            }
        }
        Ok(())
    }

    /// Keyed fingerprint of a secret (the key is created on first use).
    pub fn fingerprint(&self, secret: &SecretString) -> Result<Fingerprint, StateError> {
        self.dir.fingerprint(secret)
    }

    /// Fingerprints of every secret in the document.
    pub fn fingerprints(&self, desired: &DesiredState) -> Result<SecretFingerprints, StateError> {
        let snmp = |pick: fn(&crate::desired::SnmpSettings) -> &SecretString| {
            desired
                .snmp
                .as_ref()
                .map(|s| self.fingerprint(pick(s)))
                .transpose()
        };
        Ok(SecretFingerprints {
            application_key: self.fingerprint(&desired.b2.application_key)?,
            encryption_password: self.fingerprint(&desired.encryption.password)?,
            encryption_salt: self.fingerprint(&desired.encryption.salt)?,
            snmp_auth: snmp(|s| &s.auth_password)?,
            snmp_privacy: snmp(|s| &s.privacy_passphrase)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::OwnedObject;

    #[test]
    fn updates_are_persisted_with_mode_0600() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = StateDir::open(tmp.path().join("state")).unwrap();
        let mut store = OwnershipStore::load(&dir).unwrap();
        assert_eq!(store.get(), &Ownership::default());
        store
            .update(|o| {
                o.cloud_sync.insert("pool0".into(), OwnedObject::new(4));
            })
            .unwrap();
        let again = OwnershipStore::load(&dir).unwrap();
        assert_eq!(again.get().cloud_sync["pool0"].id, 4);
        let (_, mode) = crate::fs::owner_and_mode(&dir.file(OWNERSHIP_FILE)).unwrap();
        assert_eq!(mode, 0o600);
    }

    #[test]
    fn executed_actions_survive_a_lost_ownership_file() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = StateDir::open(tmp.path().join("state")).unwrap();
        let mut store = OwnershipStore::load(&dir).unwrap();
        store
            .update(|o| {
                o.cloud_sync.insert("pool0".into(), OwnedObject::new(4));
                o.executed_actions.insert("first-run".into());
                o.executed_actions.insert("dropped-again".into());
            })
            .unwrap();
        store
            .update(|o| {
                o.executed_actions.remove("dropped-again");
            })
            .unwrap();
        let (_, mode) = crate::fs::owner_and_mode(&dir.file(ACTIONS_FILE)).unwrap();
        assert_eq!(mode, 0o600);
        std::fs::remove_file(dir.file(OWNERSHIP_FILE)).unwrap();
        let rebuilt = OwnershipStore::load(&dir).unwrap();
        assert!(
            rebuilt.get().cloud_sync.is_empty(),
            "objects are not guessed"
        );
        assert_eq!(
            rebuilt.get().executed_actions,
            BTreeSet::from(["first-run".to_owned()]),
            "the executed action ids are kept; a dropped one stays dropped"
        );
    }
}
