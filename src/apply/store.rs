//! The ownership record on disk: `ownership.json` in the state directory.
//!
//! Owns: loading and atomically saving [`Ownership`] after every change, and the keyed
//! fingerprints of the document's secrets.
//! Does not: decide what is owned (`plan` and `apply` do).
//! Invariants: every mutation is written (temp + fsync + rename, mode 0600) before the
//! caller goes on, so a crash loses at most the change in flight — which the
//! write-ahead `pending` record covers; the file holds fingerprints, never secrets.
//! Limitations: single writer (see `state_dir`).

use secrecy::SecretString;

use crate::desired::DesiredState;
use crate::plan::{Ownership, SecretFingerprints};
use crate::state_dir::{Fingerprint, StateDir, StateError};

/// The file this module owns in the state directory.
pub const OWNERSHIP_FILE: &str = "ownership.json";

/// [`Ownership`] backed by `ownership.json`.
#[derive(Debug)]
pub struct OwnershipStore {
    dir: StateDir,
    record: Ownership,
}

impl OwnershipStore {
    /// Loads the record (an absent file is an empty record).
    pub fn load(dir: &StateDir) -> Result<Self, StateError> {
        let record = dir.read_json(OWNERSHIP_FILE)?.unwrap_or_default();
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
            self.record = next;
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
}
