//! Which at-rest key seals a central's secrets, and the database's [`Sealer`] made of it.
//!
//! Owns: the data directory's binding to its key file (`DIR/at-rest.json`: the key file's
//! absolute path and the key's id, no secret), where an unbound directory's key goes by
//! default ([`default_key_file`], beside the directory, never in it), finding the key
//! ([`resolve`]) and binding a directory ([`bind`], `keygen --dir`), and the [`Sealer`]
//! implementations the database uses: [`AtRestKey`] itself, and [`KeySlot`] (a key set
//! after the database is opened, so the database can be asked which key it already holds
//! before a new key file is ever created).
//! Does not: encrypt (`crypto` does) or decide what is sealed (`db` seals documents and
//! credentials; the old file layout's sealed files are read by `store` for the import).
//! Invariants: the key never lives inside the data directory; an existing key file is
//! never replaced; a directory whose database or files hold sealed values but that has no
//! binding is refused (a new key would not open them), as is a binding whose key file now
//! holds another key, or a key other than the one the database records.
//! Limitations: one key per directory and database; rotating the at-rest key is a manual
//! re-seal (see `crypto`).

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use secrecy::ExposeSecret as _;
use serde::{Deserialize, Serialize};

use crate::crypto::{AtRestKey, CryptoError};
use crate::db::{SealError, Sealer};
use truenas_agent::fault::Fault;
use truenas_agent::fs::{self, FsError};

/// The binding of a data directory to its at-rest key file.
pub const BINDING_FILE: &str = "at-rest.json";
const BINDING_SCHEMA: &str = "truenas-central.at-rest/v1";

/// Finding or binding the at-rest key failed.
#[derive(Debug, thiserror::Error)]
pub enum AtRestError {
    #[error("cannot read or write the at-rest binding of the data directory")]
    Io(#[from] FsError),
    #[error("{path} is not valid JSON")]
    Corrupt {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("at-rest key of the central data directory")]
    Crypto(#[from] CryptoError),
    #[error(
        "{dir} holds sealed files but no {BINDING_FILE}: restore it, or bind the directory to \
         the key file that sealed them (`truenas-central keygen --out KEYS --dir DIR` with that \
         key as KEYS/secrets.key); a new key would not open them"
    )]
    Unbound { dir: PathBuf },
    #[error(
        "the database holds values sealed with at-rest key {key_id} but {dir} is not bound to \
         an at-rest key: bind it to that key's file (`truenas-central keygen --out KEYS --dir \
         DIR` with the key as KEYS/secrets.key); a new key would not open them"
    )]
    DatabaseUnbound { dir: PathBuf, key_id: String },
    #[error(
        "{dir} is bound to at-rest key {bound} ({path}), not to {given}; one directory has one key"
    )]
    BoundElsewhere {
        dir: PathBuf,
        path: PathBuf,
        bound: String,
        given: String,
    },
    #[error(
        "the database holds values sealed with at-rest key {database}, but {dir} is bound to \
         key {given} ({path}): give this central the key file that sealed the database (one \
         database has one at-rest key; every central instance on it needs that key)"
    )]
    NotTheDatabaseKey {
        dir: PathBuf,
        path: PathBuf,
        database: String,
        given: String,
    },
}

impl AtRestError {
    /// The party that has to act.
    pub fn fault(&self) -> Fault {
        match self {
            AtRestError::Io(_) | AtRestError::Corrupt { .. } => Fault::Central,
            AtRestError::Crypto(e) => e.fault(),
            AtRestError::Unbound { .. }
            | AtRestError::DatabaseUnbound { .. }
            | AtRestError::BoundElsewhere { .. }
            | AtRestError::NotTheDatabaseKey { .. } => Fault::Operator,
        }
    }
}

/// `DIR/at-rest.json`: which key file seals this directory (no secret in it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Binding {
    pub schema: String,
    /// Absolute path of the key file.
    pub key_file: PathBuf,
    /// The key's id ([`AtRestKey::id`]), to notice a replaced key file.
    pub key_id: String,
}

/// Where an unbound directory's at-rest key goes by default: beside the directory,
/// never in it (`/srv/central/data` → `/srv/central/data.secrets.key`), so a copy of the
/// directory does not carry the key.
pub fn default_key_file(dir: &Path) -> PathBuf {
    let absolute = fs::canonical(dir)
        .or_else(|| std::path::absolute(dir).ok())
        .unwrap_or_else(|| dir.to_owned());
    let name = absolute
        .file_name()
        .map_or_else(|| "central".into(), |n| n.to_string_lossy().into_owned());
    absolute.with_file_name(format!("{name}.secrets.key"))
}

/// The directory's binding, if it has one.
pub fn binding(dir: &Path) -> Result<Option<Binding>, AtRestError> {
    let path = dir.join(BINDING_FILE);
    let Some(bytes) = fs::read_optional(&path)? else {
        return Ok(None);
    };
    serde_json::from_slice(&bytes)
        .map(Some)
        .map_err(|source| AtRestError::Corrupt { path, source })
}

/// What [`resolve`] may do when the directory has no binding yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unbound {
    /// Bind it to [`default_key_file`] (created if missing).
    Bind,
    /// Leave it: no key (a read-only look, e.g. `provision --dry-run`).
    Leave,
}

/// The at-rest key of `dir`: the bound one, checked against the key id `database`
/// records; or (unbound) a refusal when the database or the old files (`files_sealed`)
/// already hold sealed values, else, with [`Unbound::Bind`], the key at
/// [`default_key_file`] (created if missing) with the directory bound to it.
pub fn resolve(
    dir: &Path,
    database: Option<&str>,
    files_sealed: bool,
    unbound: Unbound,
) -> Result<Option<AtRestKey>, AtRestError> {
    if let Some(binding) = binding(dir)? {
        let key = AtRestKey::read(&binding.key_file)?;
        if key.id() != binding.key_id {
            return Err(AtRestError::BoundElsewhere {
                dir: dir.to_owned(),
                path: binding.key_file,
                bound: binding.key_id,
                given: key.id().to_owned(),
            });
        }
        if let Some(recorded) = database.filter(|r| *r != key.id()) {
            return Err(AtRestError::NotTheDatabaseKey {
                dir: dir.to_owned(),
                path: binding.key_file,
                database: recorded.to_owned(),
                given: key.id().to_owned(),
            });
        }
        return Ok(Some(key));
    }
    if let Some(recorded) = database {
        return Err(AtRestError::DatabaseUnbound {
            dir: dir.to_owned(),
            key_id: recorded.to_owned(),
        });
    }
    if files_sealed {
        return Err(AtRestError::Unbound {
            dir: dir.to_owned(),
        });
    }
    match unbound {
        Unbound::Leave => Ok(None),
        Unbound::Bind => bind_new(dir, &default_key_file(dir)).map(Some),
    }
}

/// Binds `dir` to the key in `key_file` (created if missing); returns the key id. Already
/// bound to that key: nothing to do; bound to another: refused; unbound but holding
/// sealed files (`files_sealed`): refused.
pub fn bind(dir: &Path, key_file: &Path, files_sealed: bool) -> Result<String, AtRestError> {
    if let Some(binding) = binding(dir)? {
        let given = match AtRestKey::read(key_file) {
            Ok(key) => key.id().to_owned(),
            Err(_) if fs::stamp(key_file)?.is_none() => "(a new key)".to_owned(),
            Err(e) => return Err(e.into()),
        };
        if given != binding.key_id {
            return Err(AtRestError::BoundElsewhere {
                dir: dir.to_owned(),
                path: binding.key_file,
                bound: binding.key_id,
                given,
            });
        }
        return Ok(binding.key_id);
    }
    if files_sealed {
        return Err(AtRestError::Unbound {
            dir: dir.to_owned(),
        });
    }
    Ok(bind_new(dir, key_file)?.id().to_owned())
}

fn bind_new(dir: &Path, key_file: &Path) -> Result<AtRestKey, AtRestError> {
    let key = if fs::stamp(key_file)?.is_some() {
        AtRestKey::read(key_file)?
    } else {
        AtRestKey::create(key_file)?
    };
    let absolute = fs::canonical(key_file).unwrap_or_else(|| key_file.to_owned());
    let binding = Binding {
        schema: BINDING_SCHEMA.to_owned(),
        key_file: absolute,
        key_id: key.id().to_owned(),
    };
    #[allow(
        clippy::expect_used,
        reason = "invariant: plain data always serialises"
    )]
    let bytes = serde_json::to_vec_pretty(&binding).expect("invariant: serialises");
    fs::create_dir_all(dir, 0o700)?;
    fs::write_atomic(&dir.join(BINDING_FILE), &bytes, 0o600)?;
    tracing::info!(key_id = %key.id(), key_file = %binding.key_file.display(), "bound the central data directory to its at-rest key");
    Ok(key)
}

/// `seal` or `open` without a key.
#[derive(Debug, thiserror::Error)]
#[error("no at-rest key is bound to the central data directory")]
pub struct NoAtRestKey;

/// The database's sealed values are `crypto`'s sealed-file format (no `meta`: the
/// database keeps the revision beside it), bound to their purpose.
impl Sealer for AtRestKey {
    fn key_id(&self) -> String {
        self.id().to_owned()
    }

    fn seal(&self, purpose: &str, plaintext: &[u8]) -> Result<Vec<u8>, SealError> {
        Ok(AtRestKey::seal(
            self,
            purpose,
            &serde_json::Value::Null,
            plaintext,
        ))
    }

    fn open(&self, purpose: &str, sealed: &[u8]) -> Result<Vec<u8>, SealError> {
        let (plain, _) = AtRestKey::open(self, purpose, sealed)?;
        Ok(plain.expose_secret().clone())
    }
}

/// A [`Sealer`] whose key is set once, after the database is opened ([`KeySlot::set`]);
/// before that every `seal` and `open` fails with [`NoAtRestKey`].
#[derive(Debug, Default)]
pub struct KeySlot(OnceLock<Arc<AtRestKey>>);

impl KeySlot {
    /// Sets the key (a second call is ignored: the first key stays).
    pub fn set(&self, key: Arc<AtRestKey>) {
        let _ = self.0.set(key);
    }

    /// The key, once set.
    pub fn get(&self) -> Option<Arc<AtRestKey>> {
        self.0.get().cloned()
    }
}

impl Sealer for KeySlot {
    fn key_id(&self) -> String {
        self.0
            .get()
            .map_or_else(|| "(none)".to_owned(), |k| k.id().to_owned())
    }

    fn seal(&self, purpose: &str, plaintext: &[u8]) -> Result<Vec<u8>, SealError> {
        let key = self.0.get().ok_or(NoAtRestKey)?;
        Sealer::seal(key.as_ref(), purpose, plaintext)
    }

    fn open(&self, purpose: &str, sealed: &[u8]) -> Result<Vec<u8>, SealError> {
        let key = self.0.get().ok_or(NoAtRestKey)?;
        Sealer::open(key.as_ref(), purpose, sealed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolve_binds_once_and_refuses_what_would_lose_secrets() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("data");
        // Read-only look at an unbound directory: no key, nothing written.
        assert!(
            resolve(&dir, None, false, Unbound::Leave)
                .unwrap()
                .is_none()
        );
        assert!(!dir.exists());
        // The database already names a key: an unbound directory is refused.
        assert!(matches!(
            resolve(&dir, Some("0123456789abcdef"), false, Unbound::Bind),
            Err(AtRestError::DatabaseUnbound { .. })
        ));
        assert!(matches!(
            resolve(&dir, None, true, Unbound::Bind),
            Err(AtRestError::Unbound { .. })
        ));
        assert!(!dir.exists(), "a refusal binds nothing");
        let key = resolve(&dir, None, false, Unbound::Bind).unwrap().unwrap();
        assert_eq!(binding(&dir).unwrap().unwrap().key_id, key.id());
        assert!(
            default_key_file(&dir).exists(),
            "the key is beside the directory"
        );
        let again = resolve(&dir, Some(key.id()), false, Unbound::Leave)
            .unwrap()
            .unwrap();
        assert_eq!(again.id(), key.id());
        assert!(matches!(
            resolve(&dir, Some("0123456789abcdef"), false, Unbound::Bind),
            Err(AtRestError::NotTheDatabaseKey { .. })
        ));
        // `bind` to another key file: refused.
        assert!(matches!(
            bind(&dir, &tmp.path().join("other.key"), false),
            Err(AtRestError::BoundElsewhere { .. })
        ));
    }

    #[test]
    fn the_slot_seals_only_once_set_and_binds_the_purpose() {
        let slot = KeySlot::default();
        assert!(Sealer::seal(&slot, "devices/a/config.json", b"x").is_err());
        slot.set(Arc::new(AtRestKey::generate()));
        let sealed = Sealer::seal(&slot, "devices/a/config.json", b"CANARY-SLOT-1").unwrap();
        assert!(!String::from_utf8_lossy(&sealed).contains("CANARY-SLOT-1"));
        assert_eq!(
            Sealer::open(&slot, "devices/a/config.json", &sealed).unwrap(),
            b"CANARY-SLOT-1"
        );
        assert!(Sealer::open(&slot, "devices/b/config.json", &sealed).is_err());
    }
}
