//! The agent's state directory: small JSON files, one per concern, plus the local
//! fingerprint key.
//!
//! Owns: the directory (mode 0700), atomic JSON read/write of named files (mode 0600),
//! and keyed fingerprints of secrets (HMAC-SHA256 with a random local key kept in
//! `fingerprint.key`, mode 0600).
//! Does not: decide what each file contains. Each module owns its own file name
//! (`ownership.json` → apply, `central.json` → central, `identity.json` → identity, …)
//! and its own schema; no module reads another module's file directly.
//! Invariants: no secret value is ever written here, only [`Fingerprint`]s; every write
//! is atomic (see [`crate::fs::write_atomic`]).
//! Limitations: single writer (the daemon or one CLI command at a time); concurrent
//! writers of the *same* file would lose updates (last rename wins), never corrupt it.

use std::path::{Path, PathBuf};

use hmac::{Hmac, Mac};
use rand::RngCore;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize, de::DeserializeOwned};
use sha2::Sha256;

use crate::fault::Fault;
use crate::fs::{self, FsError};

/// Default location on TrueNAS when nothing else is configured. The installer places
/// the state dir on a pool (it survives upgrades); this default is for development.
pub const DEFAULT_STATE_DIR: &str = "/var/lib/truenas-agent";

const KEY_FILE: &str = "fingerprint.key";
const KEY_LEN: usize = 32;

/// Errors reading or writing the state directory.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("state directory I/O failed")]
    Io(#[from] FsError),
    #[error("state file {path} is not valid JSON for this agent version")]
    Corrupt {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error(
        "fingerprint key {path} has the wrong length (expected {KEY_LEN} bytes); delete it to start over"
    )]
    BadKey { path: PathBuf },
    #[error("cannot encode state file {name}")]
    Encode {
        name: String,
        #[source]
        source: serde_json::Error,
    },
}

impl StateError {
    /// The party that has to act.
    pub fn fault(&self) -> Fault {
        match self {
            StateError::Io(_) | StateError::Corrupt { .. } | StateError::BadKey { .. } => {
                Fault::Nas
            }
            StateError::Encode { .. } => Fault::Bug,
        }
    }
}

/// A keyed fingerprint of a secret: `hmac-sha256:<hex>`. Safe to store and print.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Fingerprint(String);

impl Fingerprint {
    /// The printable form.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Handle on the state directory.
#[derive(Debug, Clone)]
pub struct StateDir {
    root: PathBuf,
}

impl StateDir {
    /// Opens (and creates, mode 0700) the state directory.
    pub fn open(root: impl Into<PathBuf>) -> Result<Self, StateError> {
        let root = root.into();
        fs::create_dir_all(&root, 0o700)?;
        Ok(Self { root })
    }

    /// A handle that does not create anything (for read-only use such as `status`).
    pub fn at(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    /// The directory path.
    pub fn path(&self) -> &Path {
        &self.root
    }

    /// Path of a named file inside the directory.
    pub fn file(&self, name: &str) -> PathBuf {
        self.root.join(name)
    }

    /// Reads a JSON file; `None` when it does not exist yet.
    pub fn read_json<T: DeserializeOwned>(&self, name: &str) -> Result<Option<T>, StateError> {
        let path = self.file(name);
        let Some(bytes) = fs::read_optional(&path)? else {
            return Ok(None);
        };
        serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|source| StateError::Corrupt { path, source })
    }

    /// Writes a JSON file atomically with mode 0600.
    pub fn write_json<T: Serialize>(&self, name: &str, value: &T) -> Result<(), StateError> {
        let mut bytes = serde_json::to_vec_pretty(value).map_err(|source| StateError::Encode {
            name: name.to_owned(),
            source,
        })?;
        bytes.push(b'\n');
        fs::write_atomic(&self.file(name), &bytes, 0o600)?;
        Ok(())
    }

    /// Keyed fingerprint of a secret, creating the local key on first use.
    pub fn fingerprint(&self, secret: &SecretString) -> Result<Fingerprint, StateError> {
        let key = self.fingerprint_key()?;
        Ok(fingerprint_with_key(&key, secret))
    }

    fn fingerprint_key(&self) -> Result<Vec<u8>, StateError> {
        let path = self.file(KEY_FILE);
        if let Some(key) = fs::read_optional(&path)? {
            if key.len() != KEY_LEN {
                return Err(StateError::BadKey { path });
            }
            return Ok(key);
        }
        let mut key = vec![0u8; KEY_LEN];
        rand::rngs::OsRng.fill_bytes(&mut key);
        fs::write_atomic(&path, &key, 0o600)?;
        Ok(key)
    }
}

/// HMAC-SHA256 of a secret under `key`, as `hmac-sha256:<hex>`.
pub fn fingerprint_with_key(key: &[u8], secret: &SecretString) -> Fingerprint {
    #[allow(
        clippy::expect_used,
        reason = "invariant: HMAC-SHA256 accepts keys of any length, so `new_from_slice` cannot fail"
    )]
    let mut mac =
        Hmac::<Sha256>::new_from_slice(key).expect("invariant: HMAC takes any key length");
    mac.update(secret.expose_secret().as_bytes());
    Fingerprint(format!(
        "hmac-sha256:{}",
        hex::encode(mac.finalize().into_bytes())
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprints_are_keyed_stable_and_secret_free() {
        let dir = tempfile::tempdir().unwrap();
        let state = StateDir::open(dir.path().join("state")).unwrap();
        let canary = SecretString::from("CANARY-SECRET-123");
        let a = state.fingerprint(&canary).unwrap();
        let b = state.fingerprint(&canary).unwrap();
        assert_eq!(a, b);
        assert!(!a.as_str().contains("CANARY"));
        let other = StateDir::open(dir.path().join("other")).unwrap();
        assert_ne!(
            a,
            other.fingerprint(&canary).unwrap(),
            "keys differ per state dir"
        );
        let (_, mode) = fs::owner_and_mode(&state.file(KEY_FILE)).unwrap();
        assert_eq!(mode, 0o600);
        let (_, dir_mode) = fs::owner_and_mode(state.path()).unwrap();
        assert_eq!(dir_mode, 0o700);
    }

    #[test]
    fn json_round_trip_and_missing() {
        let dir = tempfile::tempdir().unwrap();
        let state = StateDir::open(dir.path()).unwrap();
        assert_eq!(state.read_json::<Vec<u32>>("x.json").unwrap(), None);
        state.write_json("x.json", &vec![1u32, 2]).unwrap();
        assert_eq!(
            state.read_json::<Vec<u32>>("x.json").unwrap(),
            Some(vec![1, 2])
        );
    }

    #[test]
    fn corrupt_file_is_reported_with_path() {
        let dir = tempfile::tempdir().unwrap();
        let state = StateDir::open(dir.path()).unwrap();
        fs::write_atomic(&state.file("x.json"), b"{not json", 0o600).unwrap();
        let err = state.read_json::<Vec<u32>>("x.json").unwrap_err();
        assert!(err.to_string().contains("x.json"));
    }
}
