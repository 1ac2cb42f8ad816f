//! The reference server's data directory.
//!
//! Owns the layout (all files 0600, directories 0700):
//! ```text
//! DIR/devices/<name>/token.sha256   SHA-256 (hex) of the device's bearer token
//! DIR/devices/<name>/config.json    the device's desired-state document (the DSSE payload),
//!                                   sealed with the at-rest key (see `crypto`)
//! DIR/devices/<name>/secrets.json   provisioning secrets (`secrets`), sealed
//! DIR/at-rest.json                  which at-rest key file seals this directory (path + key id)
//! DIR/devices/<name>/disabled       present → the device's token is refused with 403
//! DIR/devices/<name>/reports.jsonl  every accepted report: {"received_at", "report", "dropped"} per line
//! DIR/devices/<name>/latest.json    the newest report, same shape
//! ```
//! `dropped` is the running [`DropTally`] up to and including that report (the sum of the
//! agents' `agent.dropped_reports`), so `truenas-central devices` reads it from `latest.json`
//! instead of every line. Lines written before it existed have none; the server
//! recomputes the tally from all lines on a device's first report after a start.
//! Does not: sign (the server signs on the fly) or speak HTTP. Content rules are the
//! agent's own: [`Store::publish_validated`] (what `truenas-central publish` uses) runs the
//! agent's `desired` validation; [`Store::publish`] checks only `schema` and `revision`
//! (tests use it to serve documents an agent must refuse).
//! Invariants: tokens are never stored, only their hashes; documents and `latest.json`
//! are replaced atomically; report lines are appended with fsync before the server says
//! 2xx; a device name is a safe single path component; every file holding a secret is
//! written sealed (a plain `config.json` from before sealing existed is read as is and
//! sealed by [`Store::seal_plain_documents`], which `serve` runs at start); the at-rest
//! key never lives inside the directory. The key is found through `at-rest.json`; an
//! unbound directory that holds nothing sealed yet is bound on first need to
//! [`default_key_file`] (created if missing), one that holds sealed files but no binding
//! is refused (a new key would not open them).
//! Limitations: `reports.jsonl` grows without rotation (rotate it with the usual tools
//! while the server is stopped); lookups scan `devices/` (fine for hundreds of devices).

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use super::crypto::{self, AtRestKey, CryptoError};
use truenas_agent::central::fetch::read_revision;
use truenas_agent::central::report::Report;
use truenas_agent::fault::Fault;
use truenas_agent::fs::{self, FileStamp, FsError};

/// Largest document accepted by `publish`: its base64 in the envelope stays under the
/// agent's 1 MiB body cap.
pub const MAX_DOCUMENT: usize = 700 * 1024;

const TOKEN_FILE: &str = "token.sha256";
const DOCUMENT_FILE: &str = "config.json";
/// The sealed provisioning secrets of a device (see `secrets`).
pub const SECRETS_FILE: &str = "secrets.json";
const DISABLED_FILE: &str = "disabled";
const REPORTS_FILE: &str = "reports.jsonl";
const LATEST_FILE: &str = "latest.json";
/// The binding of the directory to its at-rest key file.
pub const BINDING_FILE: &str = "at-rest.json";
const BINDING_SCHEMA: &str = "truenas-central.at-rest/v1";

/// A data-directory operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("central data directory I/O failed")]
    Io(#[from] FsError),
    #[error("device name `{name}` is invalid: use letters, digits, `-`, `_` and `.` (not first)")]
    BadName { name: String },
    #[error("device `{name}` is not registered")]
    UnknownDevice { name: String },
    #[error("device `{name}` is already registered")]
    AlreadyRegistered { name: String },
    #[error("this token is already registered as device `{name}`")]
    TokenInUse { name: String },
    #[error("document is not valid: {rule}")]
    BadDocument { rule: String },
    /// The agent would refuse the document: every problem, as the agent reports it.
    #[error("the agent would refuse this document ({} problem(s)):\n  {}", .0.len(),
            .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n  "))]
    Refused(Vec<truenas_agent::desired::FieldError>),
    #[error(
        "document revision {revision} is not higher than the published revision {published}: \
         agents refuse a lower revision (rollback) and the same revision with other content \
         (\"same revision, different content\") — publish the change as revision {next} or \
         higher (--force publishes it anyway, only to test that refusal)",
        next = .published.saturating_add(1)
    )]
    NotNewer { revision: u64, published: u64 },
    #[error("stored file {path} is not valid JSON")]
    Corrupt {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("at-rest encryption of the central data directory")]
    Crypto(#[from] CryptoError),
    #[error(
        "{dir} holds sealed files but no {BINDING_FILE}: restore it, or bind the directory to \
         the key file that sealed them (`truenas-central keygen --out KEYS --dir DIR` with that key as \
         KEYS/secrets.key); a new key would not open them"
    )]
    Unbound { dir: PathBuf },
    #[error(
        "{dir} is bound to at-rest key {bound} ({path}), not to {given}; one directory has one key"
    )]
    BoundElsewhere {
        dir: PathBuf,
        path: PathBuf,
        bound: String,
        given: String,
    },
}

impl StoreError {
    /// The party that has to act.
    pub fn fault(&self) -> Fault {
        match self {
            StoreError::Io(_) | StoreError::Corrupt { .. } => Fault::Central,
            StoreError::Crypto(e) => e.fault(),
            StoreError::Unbound { .. }
            | StoreError::BoundElsewhere { .. }
            | StoreError::BadName { .. }
            | StoreError::UnknownDevice { .. }
            | StoreError::AlreadyRegistered { .. }
            | StoreError::TokenInUse { .. }
            | StoreError::BadDocument { .. }
            | StoreError::Refused(_)
            | StoreError::NotNewer { .. } => Fault::Operator,
        }
    }
}

/// One stored report line.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredReport {
    pub received_at: DateTime<Utc>,
    pub report: Report,
    /// Reports the agent lost before delivery, over every stored report up to this one
    /// (`None` in lines stored before the tally existed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dropped: Option<DropTally>,
}

/// What a device's reports say about reports its agent lost before they reached central
/// (its spool was full, or a record was damaged): each report announces the losses since
/// the one before (`agent.dropped_reports`), so the sum over the stored reports is the
/// number lost.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DropTally {
    /// Sum of `agent.dropped_reports`.
    pub total: u64,
    /// When central received the newest report announcing a loss.
    pub last_at: Option<DateTime<Utc>>,
}

impl DropTally {
    /// The tally after `report`, received at `at`.
    #[must_use]
    pub fn after(self, report: &Report, at: DateTime<Utc>) -> Self {
        let dropped = report.agent.dropped_reports;
        Self {
            total: self.total.saturating_add(dropped),
            last_at: if dropped > 0 { Some(at) } else { self.last_at },
        }
    }
}

/// Handle on the data directory.
#[derive(Debug, Clone)]
pub struct Store {
    root: PathBuf,
    /// The at-rest key, loaded (or bound) on first need.
    key: Arc<OnceLock<Arc<AtRestKey>>>,
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
pub fn default_key_file(root: &Path) -> PathBuf {
    let absolute = fs::canonical(root)
        .or_else(|| std::path::absolute(root).ok())
        .unwrap_or_else(|| root.to_owned());
    let name = absolute
        .file_name()
        .map_or_else(|| "central".into(), |n| n.to_string_lossy().into_owned());
    absolute.with_file_name(format!("{name}.secrets.key"))
}

/// SHA-256 (hex) of a bearer token.
pub fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

impl Store {
    /// Opens (and creates) the data directory.
    pub fn open(root: &Path) -> Result<Self, StoreError> {
        fs::create_dir_all(&root.join("devices"), 0o700)?;
        Ok(Self {
            root: root.to_owned(),
            key: Arc::new(OnceLock::new()),
        })
    }

    /// A handle that creates nothing until something is written (for read-only runs such
    /// as `provision --dry-run`: a missing directory reads as empty).
    pub fn peek(root: &Path) -> Self {
        Self {
            root: root.to_owned(),
            key: Arc::new(OnceLock::new()),
        }
    }

    /// The binding, if the directory has one.
    pub fn binding(&self) -> Result<Option<Binding>, StoreError> {
        let path = self.root.join(BINDING_FILE);
        let Some(bytes) = fs::read_optional(&path)? else {
            return Ok(None);
        };
        serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|source| StoreError::Corrupt { path, source })
    }

    /// The at-rest key: the bound one, or (unbound, nothing sealed yet) the key at
    /// [`default_key_file`], created if missing, and the directory bound to it.
    pub fn at_rest_key(&self) -> Result<Arc<AtRestKey>, StoreError> {
        if let Some(key) = self.key.get() {
            return Ok(Arc::clone(key));
        }
        let key = match self.binding()? {
            Some(binding) => {
                let key = AtRestKey::read(&binding.key_file)?;
                if key.id() != binding.key_id {
                    return Err(StoreError::BoundElsewhere {
                        dir: self.root.clone(),
                        path: binding.key_file,
                        bound: binding.key_id,
                        given: key.id().to_owned(),
                    });
                }
                key
            }
            None => self.bind_new(&default_key_file(&self.root))?,
        };
        Ok(Arc::clone(self.key.get_or_init(|| Arc::new(key))))
    }

    /// Binds the directory to the key in `key_file` (created if missing). Already bound
    /// to that key: nothing to do; bound to another: refused.
    pub fn bind(&self, key_file: &Path) -> Result<String, StoreError> {
        if let Some(binding) = self.binding()? {
            let given = match AtRestKey::read(key_file) {
                Ok(key) => key.id().to_owned(),
                Err(_) if fs::stamp(key_file)?.is_none() => "(a new key)".to_owned(),
                Err(e) => return Err(e.into()),
            };
            if given != binding.key_id {
                return Err(StoreError::BoundElsewhere {
                    dir: self.root.clone(),
                    path: binding.key_file,
                    bound: binding.key_id,
                    given,
                });
            }
            return Ok(binding.key_id);
        }
        let key = self.bind_new(key_file)?;
        let id = key.id().to_owned();
        let _ = self.key.set(Arc::new(key));
        Ok(id)
    }

    fn bind_new(&self, key_file: &Path) -> Result<AtRestKey, StoreError> {
        if self.holds_sealed_files()? {
            return Err(StoreError::Unbound {
                dir: self.root.clone(),
            });
        }
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
        fs::write_atomic(&self.root.join(BINDING_FILE), &bytes, 0o600)?;
        tracing::info!(key_id = %key.id(), key_file = %binding.key_file.display(), "bound the central data directory to its at-rest key");
        Ok(key)
    }

    fn holds_sealed_files(&self) -> Result<bool, StoreError> {
        for dir in fs::list_dir(&self.root.join("devices"))? {
            for file in [DOCUMENT_FILE, SECRETS_FILE] {
                if fs::read_optional(&dir.join(file))?.is_some_and(|b| crypto::is_sealed(&b)) {
                    return Ok(true);
                }
            }
        }
        Ok(false)
    }

    fn purpose(name: &str, file: &str) -> String {
        format!("devices/{name}/{file}")
    }

    /// Writes `plaintext` sealed to `devices/<name>/<file>` with non-secret `meta`.
    pub fn write_sealed(
        &self,
        name: &str,
        file: &str,
        meta: &serde_json::Value,
        plaintext: &[u8],
    ) -> Result<(), StoreError> {
        check_name(name)?;
        let key = self.at_rest_key()?;
        let sealed = key.seal(&Self::purpose(name, file), meta, plaintext);
        let dir = self.device_dir(name);
        fs::create_dir_all(&dir, 0o700)?;
        fs::write_atomic(&dir.join(file), &sealed, 0o600)?;
        Ok(())
    }

    /// Opens `devices/<name>/<file>` (sealed), `None` when absent.
    pub fn read_sealed(
        &self,
        name: &str,
        file: &str,
    ) -> Result<Option<secrecy::SecretBox<Vec<u8>>>, StoreError> {
        check_name(name)?;
        let Some(bytes) = fs::read_optional(&self.device_dir(name).join(file))? else {
            return Ok(None);
        };
        let key = self.at_rest_key()?;
        let (plain, _) = key.open(&Self::purpose(name, file), &bytes)?;
        Ok(Some(plain))
    }

    /// Seals every plain `config.json` (written before sealing existed); returns how
    /// many. A no-op once everything is sealed.
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
            let revision = read_revision(&bytes).ok();
            self.write_sealed(
                &name,
                DOCUMENT_FILE,
                &serde_json::json!({ "revision": revision }),
                &bytes,
            )?;
            sealed += 1;
        }
        if sealed > 0 {
            tracing::info!(documents = sealed, "sealed plain documents at rest");
        }
        Ok(sealed)
    }

    /// The revision of the device's published document, read without the key.
    pub fn published_revision(&self, name: &str) -> Result<Option<u64>, StoreError> {
        let path = self.device_dir(name).join(DOCUMENT_FILE);
        let Some(bytes) = fs::read_optional(&path)? else {
            return Ok(None);
        };
        if crypto::is_sealed(&bytes) {
            let meta = crypto::peek_meta(&Self::purpose(name, DOCUMENT_FILE), &bytes)?;
            return Ok(meta.get("revision").and_then(serde_json::Value::as_u64));
        }
        Ok(read_revision(&bytes).ok())
    }

    /// The data directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn device_dir(&self, name: &str) -> PathBuf {
        self.root.join("devices").join(name)
    }

    /// Registered device names, sorted.
    pub fn devices(&self) -> Result<Vec<String>, StoreError> {
        let mut names = Vec::new();
        for path in fs::list_dir(&self.root.join("devices"))? {
            if fs::stamp(&path.join(TOKEN_FILE))?.is_some() {
                if let Some(name) = path.file_name().and_then(|n| n.to_str()) {
                    names.push(name.to_owned());
                }
            }
        }
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

    /// Registers a device under `name` with the hash of its token.
    pub fn register(&self, name: &str, hash: &str) -> Result<(), StoreError> {
        check_name(name)?;
        if let Some((_, owner)) = self.token_index()?.into_iter().find(|(h, _)| h == hash) {
            return Err(StoreError::TokenInUse { name: owner });
        }
        let dir = self.device_dir(name);
        if fs::stamp(&dir.join(TOKEN_FILE))?.is_some() {
            return Err(StoreError::AlreadyRegistered {
                name: name.to_owned(),
            });
        }
        fs::create_dir_all(&dir, 0o700)?;
        fs::write_atomic(&dir.join(TOKEN_FILE), format!("{hash}\n").as_bytes(), 0o600)?;
        Ok(())
    }

    /// Publishes a document after the agent's own validation (`desired::parse`): a
    /// document every agent would refuse is never published. Otherwise as [`Store::publish`].
    pub fn publish_validated(
        &self,
        name: &str,
        document: &[u8],
        force: bool,
    ) -> Result<u64, StoreError> {
        self.registered(name)?;
        if document.len() > MAX_DOCUMENT {
            return Err(StoreError::BadDocument {
                rule: format!("larger than {MAX_DOCUMENT} bytes"),
            });
        }
        if let Err(err) = truenas_agent::desired::parse(document) {
            return Err(StoreError::Refused(err.field_errors()));
        }
        self.publish(name, document, force)
    }

    /// Publishes a document for a device, checking only `schema` and `revision`. The
    /// revision must be higher than the published one unless `force` (to test agents'
    /// rollback refusal, or to start over).
    pub fn publish(&self, name: &str, document: &[u8], force: bool) -> Result<u64, StoreError> {
        self.registered(name)?;
        if document.len() > MAX_DOCUMENT {
            return Err(StoreError::BadDocument {
                rule: format!("larger than {MAX_DOCUMENT} bytes"),
            });
        }
        let revision = read_revision(document).map_err(|e| StoreError::BadDocument {
            rule: e.to_string(),
        })?;
        check_schema(document)?;
        if let Some(published) = self.published_revision(name)? {
            if revision <= published && !force {
                return Err(StoreError::NotNewer {
                    revision,
                    published,
                });
            }
        }
        self.write_sealed(
            name,
            DOCUMENT_FILE,
            &serde_json::json!({ "revision": revision }),
            document,
        )?;
        Ok(revision)
    }

    /// The device's document (opened when sealed), if one is published.
    pub fn document(&self, name: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let Some(bytes) = fs::read_optional(&self.device_dir(name).join(DOCUMENT_FILE))? else {
            return Ok(None);
        };
        if !crypto::is_sealed(&bytes) {
            return Ok(Some(bytes));
        }
        let key = self.at_rest_key()?;
        let (plain, _) = key.open(&Self::purpose(name, DOCUMENT_FILE), &bytes)?;
        Ok(Some(secrecy::ExposeSecret::expose_secret(&plain).clone()))
    }

    /// Cheap change detector for the device's document.
    pub fn document_stamp(&self, name: &str) -> Result<Option<FileStamp>, StoreError> {
        Ok(fs::stamp(&self.device_dir(name).join(DOCUMENT_FILE))?)
    }

    /// True when a device of this name is registered (has a token hash).
    pub fn is_registered(&self, name: &str) -> Result<bool, StoreError> {
        check_name(name)?;
        Ok(fs::stamp(&self.device_dir(name).join(TOKEN_FILE))?.is_some())
    }

    /// True when the device is disabled (its token gets 403).
    pub fn is_disabled(&self, name: &str) -> Result<bool, StoreError> {
        Ok(fs::stamp(&self.device_dir(name).join(DISABLED_FILE))?.is_some())
    }

    /// Disables or re-enables a device.
    pub fn set_disabled(&self, name: &str, disabled: bool) -> Result<(), StoreError> {
        let path = self.registered(name)?.join(DISABLED_FILE);
        if disabled {
            fs::write_atomic(&path, b"", 0o600)?;
        } else {
            fs::remove_file_if_exists(&path)?;
        }
        Ok(())
    }

    /// Appends a report to `reports.jsonl` (fsync). A torn last line (a crash while
    /// appending) is closed first so it cannot swallow the new one.
    pub fn append_report(&self, name: &str, stored: &StoredReport) -> Result<(), StoreError> {
        let path = self.device_dir(name).join(REPORTS_FILE);
        let mut line = Vec::new();
        if let Some(stamp) = fs::stamp(&path)?.filter(|s| s.len > 0) {
            if fs::read_range(&path, stamp.len - 1, 1)? != b"\n" {
                line.push(b'\n');
            }
        }
        #[allow(
            clippy::expect_used,
            reason = "invariant: plain data always serialises"
        )]
        let bytes = serde_json::to_vec(stored).expect("invariant: report serialises");
        line.extend(bytes);
        line.push(b'\n');
        fs::append_synced(&path, &line, 0o600)?;
        Ok(())
    }

    /// Replaces `latest.json` (a cache of the newest line, for `truenas-central devices`).
    pub fn write_latest(&self, name: &str, stored: &StoredReport) -> Result<(), StoreError> {
        #[allow(
            clippy::expect_used,
            reason = "invariant: plain data always serialises"
        )]
        let bytes = serde_json::to_vec(stored).expect("invariant: report serialises");
        fs::write_atomic(&self.device_dir(name).join(LATEST_FILE), &bytes, 0o600)?;
        Ok(())
    }

    /// Every stored report id of a device (for de-duplication).
    pub fn report_ids(&self, name: &str) -> Result<Vec<uuid::Uuid>, StoreError> {
        Ok(self
            .reports(name)?
            .into_iter()
            .map(|r| r.report.report_id)
            .collect())
    }

    /// Every stored report id of a device and the drop tally over them (what the server
    /// needs before it accepts the device's first report after a start).
    pub fn report_log(&self, name: &str) -> Result<(Vec<uuid::Uuid>, DropTally), StoreError> {
        let mut tally = DropTally::default();
        let ids = self
            .reports(name)?
            .into_iter()
            .map(|r| {
                tally = tally.after(&r.report, r.received_at);
                r.report.report_id
            })
            .collect();
        Ok((ids, tally))
    }

    /// The drop tally of a device: from `latest.json`, or (for reports stored before the
    /// tally existed) computed from every stored report.
    pub fn drop_tally(&self, name: &str) -> Result<DropTally, StoreError> {
        match self.latest(name)?.and_then(|l| l.dropped) {
            Some(tally) => Ok(tally),
            None => Ok(self.report_log(name)?.1),
        }
    }

    /// Every stored report of a device, oldest first. A torn last line (crash while
    /// appending) is skipped.
    pub fn reports(&self, name: &str) -> Result<Vec<StoredReport>, StoreError> {
        let bytes =
            fs::read_optional(&self.device_dir(name).join(REPORTS_FILE))?.unwrap_or_default();
        Ok(bytes
            .split(|b| *b == b'\n')
            .filter(|l| !l.is_empty())
            .filter_map(|l| serde_json::from_slice(l).ok())
            .collect())
    }

    /// The newest report of a device.
    pub fn latest(&self, name: &str) -> Result<Option<StoredReport>, StoreError> {
        let path = self.device_dir(name).join(LATEST_FILE);
        let Some(bytes) = fs::read_optional(&path)? else {
            return Ok(None);
        };
        serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|source| StoreError::Corrupt { path, source })
    }

    fn registered(&self, name: &str) -> Result<PathBuf, StoreError> {
        check_name(name)?;
        let dir = self.device_dir(name);
        if fs::stamp(&dir.join(TOKEN_FILE))?.is_none() {
            return Err(StoreError::UnknownDevice {
                name: name.to_owned(),
            });
        }
        Ok(dir)
    }
}

pub(crate) fn check_name(name: &str) -> Result<(), StoreError> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && !name.starts_with('.')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
    if ok {
        Ok(())
    } else {
        Err(StoreError::BadName {
            name: name.to_owned(),
        })
    }
}

fn check_schema(document: &[u8]) -> Result<(), StoreError> {
    #[derive(Deserialize)]
    struct SchemaOnly {
        schema: Option<String>,
    }
    let expected = "truenas-agent.config/v1";
    match serde_json::from_slice::<SchemaOnly>(document) {
        Ok(SchemaOnly { schema: Some(s) }) if s == expected => Ok(()),
        Ok(_) | Err(_) => Err(StoreError::BadDocument {
            rule: format!("`schema` must be \"{expected}\""),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn register_publish_and_report() {
        let tmp = tempfile::tempdir().unwrap();
        let store = Store::open(&tmp.path().join("data")).unwrap();
        let hash = token_hash("tok");
        store.register("nas-01", &hash).unwrap();
        assert!(matches!(
            store.register("nas-01", &token_hash("other")),
            Err(StoreError::AlreadyRegistered { .. })
        ));
        assert!(matches!(
            store.register("nas-02", &hash),
            Err(StoreError::TokenInUse { .. })
        ));
        assert!(matches!(
            store.register("../x", &token_hash("x")),
            Err(StoreError::BadName { .. })
        ));
        assert_eq!(
            store.token_index().unwrap(),
            vec![(hash, "nas-01".to_owned())]
        );
        let doc = |r: u64| format!("{{\"schema\":\"truenas-agent.config/v1\",\"revision\":{r}}}");
        assert_eq!(
            store.publish("nas-01", doc(2).as_bytes(), false).unwrap(),
            2
        );
        assert!(matches!(
            store.publish("nas-01", doc(1).as_bytes(), false),
            Err(StoreError::NotNewer {
                revision: 1,
                published: 2
            })
        ));
        assert!(matches!(
            store.publish("nas-01", doc(2).as_bytes(), false),
            Err(StoreError::NotNewer { .. })
        ));
        // The same revision: agents refuse it unless the content is identical, so the
        // hint is a higher revision, not --force.
        let same = store
            .publish("nas-01", doc(2).as_bytes(), false)
            .unwrap_err();
        let text = same.to_string();
        assert!(text.contains("same revision, different content"), "{text}");
        assert!(text.contains("as revision 3 or higher"), "{text}");
        assert!(text.contains("only to test that refusal"), "{text}");
        assert_eq!(store.publish("nas-01", doc(1).as_bytes(), true).unwrap(), 1);
        assert!(matches!(
            store.publish("nas-01", b"{\"revision\":3}", false),
            Err(StoreError::BadDocument { .. })
        ));
        assert!(matches!(
            store.publish("ghost", doc(1).as_bytes(), false),
            Err(StoreError::UnknownDevice { .. })
        ));
        let report = StoredReport {
            received_at: Utc::now(),
            report: Report::new(Utc::now()),
            dropped: None,
        };
        store.append_report("nas-01", &report).unwrap();
        store.write_latest("nas-01", &report).unwrap();
        assert_eq!(
            store.report_ids("nas-01").unwrap(),
            vec![report.report.report_id]
        );
        assert_eq!(
            store.latest("nas-01").unwrap().unwrap().report.report_id,
            report.report.report_id
        );
        let (_, mode) =
            fs::owner_and_mode(&tmp.path().join("data/devices/nas-01/reports.jsonl")).unwrap();
        assert_eq!(mode, 0o600);
    }

    #[test]
    fn the_drop_tally_sums_the_announced_losses() {
        let tmp = tempfile::tempdir().unwrap();
        let store = Store::open(tmp.path()).unwrap();
        store.register("nas-01", &token_hash("tok")).unwrap();
        let t0 = Utc::now();
        let mut tally = DropTally::default();
        for (i, dropped) in [0u64, 3, 0, 2, 0].into_iter().enumerate() {
            let at = t0 + chrono::Duration::minutes(i64::try_from(i).unwrap());
            let mut report = Report::new(at);
            report.agent.dropped_reports = dropped;
            // Lines without a tally, as stored before it existed.
            let stored = StoredReport {
                received_at: at,
                report,
                dropped: None,
            };
            tally = tally.after(&stored.report, at);
            store.append_report("nas-01", &stored).unwrap();
            store.write_latest("nas-01", &stored).unwrap();
        }
        let expected = DropTally {
            total: 5,
            last_at: Some(t0 + chrono::Duration::minutes(3)),
        };
        assert_eq!(tally, expected);
        assert_eq!(store.report_log("nas-01").unwrap().1, expected);
        assert_eq!(
            store.drop_tally("nas-01").unwrap(),
            expected,
            "computed from the lines"
        );
        let mut latest = store.latest("nas-01").unwrap().unwrap();
        latest.dropped = Some(DropTally {
            total: 9,
            last_at: None,
        });
        store.write_latest("nas-01", &latest).unwrap();
        assert_eq!(
            store.drop_tally("nas-01").unwrap().total,
            9,
            "read from latest.json"
        );
    }
}
