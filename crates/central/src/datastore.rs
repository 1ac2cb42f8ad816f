//! Opening central's data: the database, the at-rest key its secrets are sealed with, and
//! (once) the old file data directory.
//!
//! Owns: what every `truenas-central` command does before it touches data ([`open`]):
//! open the database (SQLite `DIR/central.db` by default, or PostgreSQL) and run its
//! migrations; find the at-rest key through `DIR/at-rest.json` (`at_rest`), creating and
//! binding one beside DIR only when neither the database nor the directory holds anything
//! sealed yet; record the key's id in the database, or check it is the recorded one; and,
//! the first time a directory with the old file layout (`DIR/devices/<name>/…`) is opened,
//! seal any plain `config.json` in place and import everything into the database
//! (`Db::import_data_dir`), leaving the files where they are. Also the read-only look
//! `provision` plans with ([`peek`]).
//! Does not: decide what the commands do with the data, or delete or move the old files
//! (they are no longer read after the import; archive them once the database is proven).
//! Invariants: a database holds values sealed under one key: a key file is created only
//! when the database records none, and a key other than the recorded one is refused
//! before anything is sealed; a directory is imported once per database (a `meta` row
//! names it), so a device enabled in the database after the import is not disabled again
//! by a later start; [`peek`] never creates the SQLite file, a key file or a binding.
//! Limitations: on PostgreSQL, [`peek`] runs the migrations of a database that has none
//! yet (creating the empty tables); a directory whose import failed half-way is imported
//! again at the next open (idempotent: only what is missing is added).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::at_rest::{self, AtRestError, KeySlot, Unbound};
use crate::db::{Database, Db, DbError, import_meta_key};
use crate::store::{Store, StoreError};
use truenas_agent::fault::Fault;

/// Opening central's data failed.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    #[error(transparent)]
    Db(#[from] DbError),
    #[error(transparent)]
    AtRest(#[from] AtRestError),
    #[error("cannot read the old data directory to import it")]
    Store(#[from] StoreError),
    #[error(
        "{dir} holds devices in the old file layout that are not in the database yet; a \
         read-only run does not import them: run any command without --dry-run first (e.g. \
         `truenas-central devices --dir DIR`), which imports them"
    )]
    NotImported { dir: PathBuf },
}

impl DataError {
    /// The party that has to act.
    pub fn fault(&self) -> Fault {
        match self {
            DataError::Db(e) => e.fault(),
            DataError::AtRest(e) => e.fault(),
            DataError::Store(e) => e.fault(),
            DataError::NotImported { .. } => Fault::Operator,
        }
    }
}

/// What the old layout of `dir` holds: its devices, and whether any of its files is sealed.
fn old_layout(store: &Store) -> Result<(Vec<String>, bool), StoreError> {
    let devices = store.devices()?;
    let sealed = !devices.is_empty() && store.holds_sealed_files()?;
    Ok((devices, sealed))
}

/// Opens the data of `dir` for reading and writing (see the module doc).
pub async fn open(dir: &Path, database: &Database) -> Result<Db, DataError> {
    let store = Store::new(dir);
    let (devices, files_sealed) = old_layout(&store)?;
    let slot = Arc::new(KeySlot::default());
    let db = Db::open(database, slot.clone()).await?;
    let recorded = db.at_rest_key_id().await?;
    let key = at_rest::resolve(dir, recorded.as_deref(), files_sealed, Unbound::Bind)?;
    let Some(key) = key.map(Arc::new) else {
        // `Unbound::Bind` always ends with a key or an error.
        return Err(DataError::AtRest(AtRestError::Unbound {
            dir: dir.to_owned(),
        }));
    };
    db.bind_at_rest_key(key.id()).await?;
    slot.set(Arc::clone(&key));
    if !devices.is_empty() && db.meta(&import_meta_key(dir)).await?.is_none() {
        let store = store.with_key(key);
        store.seal_plain_documents()?;
        let summary = db.import_data_dir(&store).await?;
        tracing::info!(
            dir = %dir.display(),
            devices = devices.len(),
            added = summary.devices_added,
            reports = summary.reports_imported,
            "first start on the database: the old data directory was imported; its files under \
             devices/ are left as they are and no longer read"
        );
    }
    Ok(db)
}

/// A look at the data of `dir` that creates nothing: `None` when there is no data yet
/// (no SQLite file and no old layout). An old layout not imported yet is imported when
/// `import` is true (the first start, as [`open`] would), else refused.
pub async fn peek(dir: &Path, database: &Database, import: bool) -> Result<Option<Db>, DataError> {
    let store = Store::new(dir);
    let (devices, files_sealed) = old_layout(&store)?;
    if let Database::Sqlite(path) = database {
        let exists = truenas_agent::fs::stamp(path)
            .map_err(StoreError::Io)?
            .is_some();
        if !exists {
            return match (devices.is_empty(), import) {
                (true, _) => Ok(None),
                (false, true) => open(dir, database).await.map(Some),
                (false, false) => Err(DataError::NotImported {
                    dir: dir.to_owned(),
                }),
            };
        }
    }
    let slot = Arc::new(KeySlot::default());
    let db = Db::open(database, slot.clone()).await?;
    if !devices.is_empty() && db.meta(&import_meta_key(dir)).await?.is_none() {
        if !import {
            return Err(DataError::NotImported {
                dir: dir.to_owned(),
            });
        }
        db.close().await;
        return open(dir, database).await.map(Some);
    }
    let recorded = db.at_rest_key_id().await?;
    if let Some(key) = at_rest::resolve(dir, recorded.as_deref(), files_sealed, Unbound::Leave)? {
        slot.set(Arc::new(key));
    }
    Ok(Some(db))
}

/// The at-rest key id the database records (see `Db::at_rest_key_id`), without opening
/// anything sealed; `None` also when there is no SQLite file yet (nothing is created).
pub async fn recorded_key_id(database: &Database) -> Result<Option<String>, DataError> {
    if let Database::Sqlite(path) = database {
        if truenas_agent::fs::stamp(path)
            .map_err(StoreError::Io)?
            .is_none()
        {
            return Ok(None);
        }
    }
    let db = Db::open(database, Arc::new(KeySlot::default())).await?;
    let recorded = db.at_rest_key_id().await;
    db.close().await;
    Ok(recorded?)
}
