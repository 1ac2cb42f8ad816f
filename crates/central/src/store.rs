//! The old file data directory, read once to import it into the database.
//!
//! Owns: reading the layout central kept before the database (all files 0600, directories
//! 0700):
//! ```text
//! DIR/devices/<name>/token.sha256   SHA-256 (hex) of the device's bearer token
//! DIR/devices/<name>/config.json    the device's document (the DSSE payload), sealed with
//!                                   the at-rest key (plain JSON before sealing existed)
//! DIR/devices/<name>/secrets.json   provisioning secrets (`secrets`), sealed
//! DIR/devices/<name>/disabled       present → the device's token was refused with 403
//! DIR/devices/<name>/reports.jsonl  every accepted report: {"received_at", "report", "dropped"} per line
//! DIR/devices/<name>/latest.json    the newest report, same shape (not needed: the lines hold it)
//! ```
//! and sealing, in place, a plain `config.json` left from before sealing existed
//! ([`Store::seal_plain_documents`]), so no secret stays in clear in a file.
//! Does not: write anything else, or serve: `datastore` imports the directory into the
//! database on first open (`db::Db::import_data_dir`) and nothing reads these files after.
//! Invariants: never creates the directory; a device name is a safe single path component
//! ([`crate::db::is_valid_device_name`]); a torn last `reports.jsonl` line (a crash while
//! appending) is skipped.
//! Limitations: reads whole files (fine: each is read once, at the import).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use secrecy::{ExposeSecret as _, SecretBox};

use super::crypto::{self, AtRestKey, CryptoError};
use truenas_agent::central::fetch::read_revision;
use truenas_agent::fault::Fault;
use truenas_agent::fs::{self, FsError};

pub use crate::db::{DropTally, MAX_DOCUMENT, StoredReport, token_hash};

const TOKEN_FILE: &str = "token.sha256";
const DOCUMENT_FILE: &str = "config.json";
/// The sealed provisioning secrets of a device (see `secrets`).
pub const SECRETS_FILE: &str = "secrets.json";
const DISABLED_FILE: &str = "disabled";
const REPORTS_FILE: &str = "reports.jsonl";

/// Reading the old data directory failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("central data directory I/O failed")]
    Io(#[from] FsError),
    #[error("stored file {path} is not valid JSON")]
    Corrupt {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("at-rest encryption of the central data directory")]
    Crypto(#[from] CryptoError),
    #[error("{path} is sealed but no at-rest key was given to open it")]
    NoKey { path: PathBuf },
}

impl StoreError {
    /// The party that has to act.
    pub fn fault(&self) -> Fault {
        match self {
            StoreError::Io(_) | StoreError::Corrupt { .. } => Fault::Central,
            StoreError::Crypto(e) => e.fault(),
            StoreError::NoKey { .. } => Fault::Operator,
        }
    }
}

/// Handle on an old data directory.
#[derive(Debug, Clone)]
pub struct Store {
    root: PathBuf,
    key: Option<Arc<AtRestKey>>,
}

impl Store {
    /// The directory at `root` (nothing is created), without a key: sealed files do not
    /// open until [`Store::with_key`].
    pub fn new(root: &Path) -> Self {
        Self {
            root: root.to_owned(),
            key: None,
        }
    }

    /// The same directory, opening sealed files with `key`.
    #[must_use]
    pub fn with_key(mut self, key: Arc<AtRestKey>) -> Self {
        self.key = Some(key);
        self
    }

    /// The data directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn device_dir(&self, name: &str) -> PathBuf {
        self.root.join("devices").join(name)
    }

    fn purpose(name: &str, file: &str) -> String {
        format!("devices/{name}/{file}")
    }

    /// Registered device names (those with a token hash and a valid name), sorted.
    pub fn devices(&self) -> Result<Vec<String>, StoreError> {
        let mut names = Vec::new();
        for path in fs::list_dir(&self.root.join("devices"))? {
            let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
                continue;
            };
            if crate::db::is_valid_device_name(name) && fs::stamp(&path.join(TOKEN_FILE))?.is_some()
            {
                names.push(name.to_owned());
            }
        }
        names.sort();
        Ok(names)
    }

    /// `(token hash, device name)` for every registered device.
    pub fn token_index(&self) -> Result<Vec<(String, String)>, StoreError> {
        let mut index = Vec::new();
        for name in self.devices()? {
            let text = fs::read_to_string(&self.device_dir(&name).join(TOKEN_FILE))?;
            index.push((text.trim().to_owned(), name));
        }
        Ok(index)
    }

    /// True when the device was disabled.
    pub fn is_disabled(&self, name: &str) -> Result<bool, StoreError> {
        Ok(fs::stamp(&self.device_dir(name).join(DISABLED_FILE))?.is_some())
    }

    fn open_sealed(&self, name: &str, file: &str, bytes: &[u8]) -> Result<Vec<u8>, StoreError> {
        let key = self.key.as_ref().ok_or_else(|| StoreError::NoKey {
            path: self.device_dir(name).join(file),
        })?;
        let (plain, _) = key.open(&Self::purpose(name, file), bytes)?;
        Ok(plain.expose_secret().clone())
    }

    /// The device's document (opened when sealed), if one was published.
    pub fn document(&self, name: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let Some(bytes) = fs::read_optional(&self.device_dir(name).join(DOCUMENT_FILE))? else {
            return Ok(None);
        };
        if !crypto::is_sealed(&bytes) {
            return Ok(Some(bytes));
        }
        self.open_sealed(name, DOCUMENT_FILE, &bytes).map(Some)
    }

    /// The device's provisioning secrets record (`secrets.json`, opened), if any.
    pub fn secrets(&self, name: &str) -> Result<Option<SecretBox<Vec<u8>>>, StoreError> {
        let Some(bytes) = fs::read_optional(&self.device_dir(name).join(SECRETS_FILE))? else {
            return Ok(None);
        };
        let plain = self.open_sealed(name, SECRETS_FILE, &bytes)?;
        Ok(Some(SecretBox::new(Box::new(plain))))
    }

    /// Every stored report of a device, oldest first (a torn or unreadable line is skipped).
    pub fn reports(&self, name: &str) -> Result<Vec<StoredReport>, StoreError> {
        let bytes =
            fs::read_optional(&self.device_dir(name).join(REPORTS_FILE))?.unwrap_or_default();
        Ok(bytes
            .split(|b| *b == b'\n')
            .filter(|l| !l.is_empty())
            .filter_map(|l| serde_json::from_slice(l).ok())
            .collect())
    }

    /// True when any device's `config.json` or `secrets.json` is sealed (a new at-rest key
    /// would not open it).
    pub fn holds_sealed_files(&self) -> Result<bool, StoreError> {
        for dir in fs::list_dir(&self.root.join("devices"))? {
            for file in [DOCUMENT_FILE, SECRETS_FILE] {
                if fs::read_optional(&dir.join(file))?.is_some_and(|b| crypto::is_sealed(&b)) {
                    return Ok(true);
                }
            }
        }
        Ok(false)
    }

    /// Seals, in place, every plain `config.json` (written before sealing existed), so its
    /// secrets do not stay in clear; returns how many. A no-op once everything is sealed.
    pub fn seal_plain_documents(&self) -> Result<usize, StoreError> {
        let mut sealed = 0;
        for name in self.devices()? {
            let path = self.device_dir(&name).join(DOCUMENT_FILE);
            let Some(bytes) = fs::read_optional(&path)? else {
                continue;
            };
            if crypto::is_sealed(&bytes) {
                continue;
            }
            let key = self
                .key
                .as_ref()
                .ok_or_else(|| StoreError::NoKey { path: path.clone() })?;
            let meta = serde_json::json!({ "revision": read_revision(&bytes).ok() });
            let sealed_bytes = key.seal(&Self::purpose(&name, DOCUMENT_FILE), &meta, &bytes);
            fs::write_atomic(&path, &sealed_bytes, 0o600)?;
            sealed += 1;
        }
        if sealed > 0 {
            tracing::info!(
                documents = sealed,
                "sealed plain documents of the old data directory in place"
            );
        }
        Ok(sealed)
    }
}
