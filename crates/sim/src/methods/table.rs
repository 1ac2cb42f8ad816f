//! One CRUD table of the simulated box (`CRUDService` in `MW/service/crud_service.py`):
//! the steps every `create`/`update`/`delete` handler takes, once.
//!
//! Owns: [`Table`] — find a row by the id a call sent (`InstanceNotFound` when there is
//! none), the next id, insert (id assigned, row decoded, stored, `ADDED` emitted),
//! update (the stored row as an object with the partial merged in at the top level, then
//! the row replaced and `CHANGED` emitted), delete (`REMOVED`); and the row ↔ JSON object
//! conversions ([`to_object`], [`from_object`]), which return an error instead of an empty
//! object.
//! Does not: validate (each handler runs its rules between [`Table::merged`] /
//! [`Table::insert`]'s input and the write) or render query entries per version (the
//! handlers do).
//! Invariants: every write emits exactly one `<namespace>.query` event, after the state
//! changed (so `fields` filled from the box show the new row); a failed conversion or a
//! row that vanished is an error of the call, never a silently empty or skipped write.
//! Limitations: a new row's id is the highest stored id + 1 (whether the real database
//! reuses the id of a deleted newest row is not modelled separately).

use std::marker::PhantomData;

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use super::super::core::{Core, EventKind, RpcError};
use super::super::scenario::{CloudSyncTask, Credential, InitScript, Scenario, SnapshotTask};
use super::{merge_top_level, next_id, not_found};

/// A row type stored in one of the scenario's tables.
pub(crate) trait Row: Clone + Serialize + DeserializeOwned {
    /// The service name in `InstanceNotFound` texts (`"<Service> <id> does not exist"`).
    const SERVICE: &'static str;
    /// The event collection its writes are announced on.
    const COLLECTION: &'static str;
    fn id(&self) -> u64;
    fn rows(state: &Scenario) -> &Vec<Self>;
    fn rows_mut(state: &mut Scenario) -> &mut Vec<Self>;
}

/// `impl Row` for a scenario table: type, service name, event collection, field.
macro_rules! rows {
    ($($row:ty => $service:literal, $collection:literal, $field:ident;)*) => {$(
        impl Row for $row {
            const SERVICE: &'static str = $service;
            const COLLECTION: &'static str = $collection;
            fn id(&self) -> u64 {
                self.id
            }
            fn rows(state: &Scenario) -> &Vec<Self> {
                &state.$field
            }
            fn rows_mut(state: &mut Scenario) -> &mut Vec<Self> {
                &mut state.$field
            }
        }
    )*};
}

rows! {
    CloudSyncTask => "CloudSync", "cloudsync.query", cloud_sync_tasks;
    Credential => "Credentials", "cloudsync.credentials.query", credentials;
    SnapshotTask => "PeriodicSnapshotTask", "pool.snapshottask.query", snapshot_tasks;
    InitScript => "InitShutdownScript", "initshutdownscript.query", init_scripts;
}

/// A value as a JSON object; anything else (or a failed conversion) is a simulator bug,
/// reported as the call's error.
pub(crate) fn to_object(value: &impl Serialize) -> Result<Map<String, Value>, RpcError> {
    match serde_json::to_value(value) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(other) => Err(RpcError::Other(format!(
            "simulator: a stored row is not an object but {}",
            truenas_agent::middleware::type_name(&other)
        ))),
        Err(e) => Err(RpcError::Other(format!("simulator: {e}"))),
    }
}

/// A row from an object that passed the params schema and the rules: failing here is a
/// simulator bug (a rule that lets through what the row cannot hold), reported as such.
pub(crate) fn from_object<R: DeserializeOwned>(data: Map<String, Value>) -> Result<R, RpcError> {
    serde_json::from_value(Value::Object(data))
        .map_err(|e| RpcError::Other(format!("simulator: {e}")))
}

/// The CRUD steps on the table of `R`.
pub(crate) struct Table<R>(PhantomData<R>);

impl<R: Row> Table<R> {
    /// The row with the id a call sent; `InstanceNotFound` when there is none (a negative
    /// id finds nothing).
    pub(crate) fn find(core: &Core, id: i64) -> Result<R, RpcError> {
        R::rows(&core.state)
            .iter()
            .find(|r| i64::try_from(r.id()) == Ok(id))
            .cloned()
            .ok_or_else(|| not_found(R::SERVICE, id))
    }

    /// The id the next inserted row gets.
    pub(crate) fn next_id(core: &Core) -> u64 {
        next_id(R::rows(&core.state).iter().map(R::id))
    }

    /// `create`: `data` (validated) gets the next id, becomes a row, is stored; `ADDED`.
    pub(crate) fn insert(core: &mut Core, mut data: Map<String, Value>) -> Result<R, RpcError> {
        data.insert("id".into(), Value::from(Self::next_id(core)));
        let row: R = from_object(data)?;
        Self::push(core, row.clone());
        Ok(row)
    }

    /// Stores a row built by the handler (its id from [`Table::next_id`]); `ADDED`.
    pub(crate) fn push(core: &mut Core, row: R) {
        let id = row.id();
        R::rows_mut(&mut core.state).push(row);
        core.emit(R::COLLECTION, EventKind::Added, Value::from(id), None);
    }

    /// `update`, first half: the stored row with id `id` as an object, with `partial`
    /// merged in at the top level (nested objects replaced whole) — what the handler
    /// validates, turns into a row ([`from_object`]) and hands to [`Table::replace`].
    pub(crate) fn merged(
        core: &Core,
        id: i64,
        partial: Map<String, Value>,
    ) -> Result<Map<String, Value>, RpcError> {
        let mut data = to_object(&Self::find(core, id)?)?;
        merge_top_level(&mut data, partial);
        Ok(data)
    }

    /// `update`, second half: replaces the stored row of the same id; `CHANGED`.
    pub(crate) fn replace(core: &mut Core, row: R) -> Result<(), RpcError> {
        let id = row.id();
        let slot = R::rows_mut(&mut core.state)
            .iter_mut()
            .find(|r| r.id() == id)
            .ok_or_else(|| not_found(R::SERVICE, id))?;
        *slot = row;
        core.emit(R::COLLECTION, EventKind::Changed, Value::from(id), None);
        Ok(())
    }

    /// `delete`: removes the row; `REMOVED`.
    pub(crate) fn remove(core: &mut Core, id: u64) {
        R::rows_mut(&mut core.state).retain(|r| r.id() != id);
        core.emit(R::COLLECTION, EventKind::Removed, Value::from(id), None);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_value_that_is_no_object_is_an_error_not_an_empty_row() {
        assert!(matches!(to_object(&5u32), Err(RpcError::Other(m)) if m.contains("number")));
        assert!(matches!(to_object(&vec![1]), Err(RpcError::Other(_))));
        let map = to_object(&serde_json::json!({"id": 1})).unwrap();
        assert_eq!(map.get("id"), Some(&Value::from(1)));
    }

    #[test]
    fn an_object_that_is_no_row_is_an_error() {
        let mut data = Map::new();
        data.insert("id".into(), Value::from("not a number"));
        let row: Result<InitScript, _> = from_object(data);
        assert!(matches!(row, Err(RpcError::Other(m)) if m.starts_with("simulator: ")));
    }
}
