//! Import of an old file data directory (`store`) into the database.
//!
//! Owns: [`Db::import_data_dir`]: every registered device (token hash, disabled flag),
//! its published document and its provisioning secrets (`secrets.json`, through
//! [`Db::set_credentials`]), both re-sealed with the database's [`super::Sealer`], and
//! every stored report (with its original `received_at`), then a `meta` row recording the
//! import of that directory ([`import_meta_key`]).
//! Does not: change or delete the data directory (keep it until the database is proven,
//! then archive it), or decide when to import (`datastore` does it once per directory, at
//! the first open).
//! Invariants: idempotent — a re-run adds only what is missing (devices by name, the
//! document only if the database has none or a lower revision, the secrets only if the
//! database has none, reports by `report_id`); a device registered in both with different
//! token hashes stops the import with an error naming it, before anything of that device
//! is written; everything of a device is read (and opened) before anything of it is
//! written.
//! Limitations: each device is imported in its own transactions (a failure half-way
//! leaves earlier devices imported; re-running finishes the job).

use std::path::Path;

use chrono::Utc;
use secrecy::ExposeSecret as _;

use super::{Db, DbError};
use crate::secrets::DeviceSecrets;
use crate::store::Store;
use truenas_agent::central::fetch::read_revision;

/// What an import did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImportSummary {
    pub devices_added: u64,
    pub documents_imported: u64,
    pub credentials_imported: u64,
    pub reports_imported: u64,
    pub reports_already_present: u64,
    pub disabled: u64,
}

/// The prefix of the `meta` keys recording imports: `import.file_store:<directory>`.
pub const IMPORT_META_KEY: &str = "import.file_store";

/// The `meta` key recording the import of the data directory `dir` (its absolute path).
pub fn import_meta_key(dir: &Path) -> String {
    let absolute = truenas_agent::fs::canonical(dir)
        .or_else(|| std::path::absolute(dir).ok())
        .unwrap_or_else(|| dir.to_owned());
    format!("{IMPORT_META_KEY}:{}", absolute.display())
}

impl Db {
    /// Imports the file data directory `store` (see the module doc).
    pub async fn import_data_dir(&self, store: &Store) -> Result<ImportSummary, DbError> {
        let mut summary = ImportSummary::default();
        let index = store.token_index().map_err(|source| DbError::Import {
            device: "(the device list)".to_owned(),
            source,
        })?;
        for (hash, name) in index {
            let fail = |source| DbError::Import {
                device: name.clone(),
                source,
            };
            // Read everything of this device first: nothing is written for it if any
            // part cannot be read.
            let disabled = store.is_disabled(&name).map_err(fail)?;
            let document = store.document(&name).map_err(fail)?;
            let secrets = store.secrets(&name).map_err(fail)?;
            let reports = store.reports(&name).map_err(fail)?;
            let revision = match &document {
                Some(bytes) => Some(read_revision(bytes).map_err(|e| DbError::BadDocument {
                    rule: format!("device `{name}`: {e}"),
                })?),
                None => None,
            };
            let facts = match &secrets {
                Some(bytes) => {
                    Some(DeviceSecrets::from_record(bytes.expose_secret(), &name)?.facts())
                }
                None => None,
            };

            match self.token_owner(&hash).await? {
                Some(owner) if owner.device == name => {}
                Some(_) => return Err(DbError::ImportConflict { device: name }),
                None if self.is_registered(&name).await? => {
                    return Err(DbError::ImportConflict { device: name });
                }
                None => {
                    self.register(&name, &hash).await?;
                    summary.devices_added += 1;
                }
            }
            if disabled {
                self.set_disabled(&name, true).await?;
                summary.disabled += 1;
            }
            if let (Some(bytes), Some(revision)) = (document, revision) {
                let current = self.document_tag(&name).await?.map(|(r, _)| r);
                if current.is_none_or(|r| r < revision) {
                    // As published then: no re-validation (the file store served it).
                    self.store_document(&name, revision, &bytes, false, Utc::now())
                        .await?;
                    summary.documents_imported += 1;
                }
            }
            if let (Some(bytes), Some((key_id, fingerprints))) = (secrets, facts) {
                if self.credentials(&name).await?.is_none() {
                    self.set_credentials(
                        &name,
                        bytes.expose_secret(),
                        key_id.as_deref(),
                        &fingerprints,
                    )
                    .await?;
                    summary.credentials_imported += 1;
                }
            }
            for stored in &reports {
                match self
                    .accept_report(&name, &stored.report, stored.received_at)
                    .await?
                {
                    super::Accepted::Stored { .. } => summary.reports_imported += 1,
                    super::Accepted::Duplicate => summary.reports_already_present += 1,
                }
            }
        }
        let note = serde_json::json!({
            "from": store.root(),
            "at": Utc::now(),
            "devices_added": summary.devices_added,
            "documents_imported": summary.documents_imported,
            "credentials_imported": summary.credentials_imported,
            "reports_imported": summary.reports_imported,
        })
        .to_string();
        let mut tx = self.begin_write().await?;
        self.set_meta_in(&mut *tx, &import_meta_key(store.root()), &note)
            .await?;
        tx.commit().await.map_err(self.query_error())?;
        tracing::info!(
            from = %store.root().display(),
            devices = summary.devices_added,
            documents = summary.documents_imported,
            credentials = summary.credentials_imported,
            reports = summary.reports_imported,
            "imported the file data directory into the database; its files are left as they \
             are and no longer read (archive DIR/devices once the database is proven)"
        );
        Ok(summary)
    }
}
