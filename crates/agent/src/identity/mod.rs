//! The device GUID on the root pool (SOP phase 2), reconciled with central, bound to the
//! host so a moved pool or a cloned box is noticed.
//!
//! Owns: reading the GUID property of every data pool and the host binding of the root
//! pool, applying [`rules`] (root-pool choice; generate / keep / correct / refuse;
//! clone/move), the single write (GUID and binding in one `zfs set`), the read-back, the
//! [`IdentityReport`], and the `identity.json` state file.
//! Does not: run `zfs` or call the middleware itself (that is `zfs`, through
//! [`UserProps`]); fetch central's document (the caller passes `device.guid` and
//! `device.root_pool`); decide what the daemon does with an unusable GUID.
//! Invariants: writes only the GUID property and the host-binding property, only on the
//! chosen root pool's root dataset, only in [`Mode::Ensure`], only after every read
//! succeeded; a write is always read back; the GUID is reported usable only when no
//! blocking problem stands; the raw hostid is never stored (only `system.host_id`'s hash).
//! Limitations: two agents ensuring at the same moment on a fresh pool may both generate;
//! the read-back then reports a mismatch for one of them. The host binding detects a pool
//! imported on another host or a cloned boot disk with a regenerated hostid; a byte-exact
//! clone that keeps `/etc/hostid` is indistinguishable on the box (central sees two
//! reporters with one GUID).

pub(crate) mod report;
pub(crate) mod rules;

use std::collections::BTreeMap;

use uuid::Uuid;

pub use report::{
    BindingState, Change, Confirmation, Correction, GuidSource, GuidState, HostBinding,
    IdentityReport, Mode, PoolGuid, Problem, ProblemKind, ReportedError, RootPoolSource,
};
pub use rules::RootPoolHint;

use crate::fault::Fault;
use crate::state_dir::{StateDir, StateError};
use crate::zfs::{BackendChoice, DatasetName, PropertyReading, UserPropKey, UserProps, ZfsError};
use rules::{Binding, Facts, GuidValue, RuleInputs};

/// The state file `status` reads.
pub const STATE_FILE: &str = "identity.json";

/// Name (after the namespace) of the user property that binds the GUID to a host.
pub const HOST_PROPERTY_NAME: &str = "device-host";

/// Why an identity run could not complete, or its inputs are unusable.
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    /// The configured GUID property collides with the derived host-binding property.
    #[error(
        "user property `{property}` is reserved for the host binding; choose another name for the device GUID"
    )]
    PropertyClash { property: String },
    /// The host-binding property name derived from the namespace is not a valid name.
    #[error("cannot derive the host-binding property from `{property}`")]
    HostProperty {
        property: String,
        #[source]
        source: crate::zfs::NameError,
    },
    #[error("cannot list the imported pools")]
    ListPools(#[source] Box<ZfsError>),
    #[error("cannot read {property} on {dataset}")]
    Read {
        dataset: String,
        property: String,
        #[source]
        source: Box<ZfsError>,
    },
    #[error("cannot find this host's id")]
    HostId(#[source] Box<ZfsError>),
    #[error("cannot write {properties} on {dataset}")]
    Write {
        dataset: String,
        properties: String,
        #[source]
        source: Box<ZfsError>,
    },
    #[error("cannot read back {property} on {dataset} after writing it")]
    ReadBack {
        dataset: String,
        property: String,
        #[source]
        source: Box<ZfsError>,
    },
    #[error("cannot record the identity result")]
    Record(#[source] StateError),
    #[error("cannot read the last identity result")]
    Last(#[source] StateError),
}

impl IdentityError {
    /// Who has to act.
    pub fn fault(&self) -> Fault {
        match self {
            IdentityError::PropertyClash { .. } | IdentityError::HostProperty { .. } => {
                Fault::Operator
            }
            IdentityError::ListPools(source)
            | IdentityError::Read { source, .. }
            | IdentityError::HostId(source)
            | IdentityError::Write { source, .. }
            | IdentityError::ReadBack { source, .. } => source.fault(),
            IdentityError::Record(source) | IdentityError::Last(source) => source.fault(),
        }
    }
}

/// What a run needs besides the backend.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdentityInputs {
    /// The GUID property (default `com.dtctoday:device-guid`).
    pub property: UserPropKey,
    /// The host-binding property, `<namespace>:device-host`.
    pub host_property: UserPropKey,
    pub root_pool: RootPoolHint,
    /// Central's GUID (the document's `device.guid`): authoritative when present.
    pub central_guid: Option<Uuid>,
    /// A technician confirmed that this host now owns the pool (`--rebind`).
    pub rebind: bool,
}

impl IdentityInputs {
    /// Inputs for `property`, with the host-binding property derived from its namespace
    /// and no hints.
    pub fn new(property: UserPropKey) -> Result<Self, IdentityError> {
        let host_property = host_property_for(&property)?;
        Ok(Self {
            property,
            host_property,
            root_pool: RootPoolHint::default(),
            central_guid: None,
            rebind: false,
        })
    }
}

/// `<namespace>:device-host` for a GUID property `<namespace>:<name>`.
pub fn host_property_for(property: &UserPropKey) -> Result<UserPropKey, IdentityError> {
    let name = format!("{}:{HOST_PROPERTY_NAME}", property.namespace());
    // The namespace passed the same character rules, so only the length can fail here.
    let host = UserPropKey::parse(&name).map_err(|source| IdentityError::HostProperty {
        property: property.to_string(),
        source,
    })?;
    if host == *property {
        return Err(IdentityError::PropertyClash {
            property: property.to_string(),
        });
    }
    Ok(host)
}

/// Reads everything and reports, writing nothing. Pending actions appear as problems.
pub async fn observe(
    inputs: &IdentityInputs,
    store: &impl UserProps,
    backend: &BackendChoice,
) -> IdentityReport {
    run(Mode::Observe, inputs, store, backend).await
}

/// Applies the identity rules (what the daemon does at start and on every document):
/// generates, keeps or corrects the GUID, binds it to this host, reads it back.
pub async fn ensure(
    inputs: &IdentityInputs,
    store: &impl UserProps,
    backend: &BackendChoice,
) -> IdentityReport {
    run(Mode::Ensure, inputs, store, backend).await
}

/// Stores a report as the last identity result (`identity.json`, mode 0600).
pub fn record(state: &StateDir, report: &IdentityReport) -> Result<(), IdentityError> {
    state
        .write_json(STATE_FILE, report)
        .map_err(IdentityError::Record)
}

/// The last recorded identity result, if any.
pub fn last(state: &StateDir) -> Result<Option<IdentityReport>, IdentityError> {
    state.read_json(STATE_FILE).map_err(IdentityError::Last)
}

async fn run(
    mode: Mode,
    inputs: &IdentityInputs,
    store: &impl UserProps,
    backend: &BackendChoice,
) -> IdentityReport {
    let mut report = IdentityReport {
        mode,
        checked_at: chrono::Utc::now(),
        property: inputs.property.to_string(),
        backend: backend.clone(),
        guid: None,
        guid_source: None,
        usable: false,
        root_pool: None,
        root_pool_source: None,
        pools: Vec::new(),
        host_binding: HostBinding {
            property: inputs.host_property.to_string(),
            this_host: None,
            bound_host: None,
            state: BindingState::NotChecked,
        },
        changes: Vec::new(),
        correction: None,
        problems: Vec::new(),
        error: None,
    };
    if let Err(err) = run_steps(mode, inputs, store, &mut report).await {
        tracing::warn!(error = %format!("{err:#}"), "identity run failed");
        report.error = Some(ReportedError {
            fault: err.fault(),
            message: crate::fault::error_chain(&err),
        });
    }
    report.usable = report.error.is_none()
        && report.guid.is_some()
        && !report.problems.iter().any(|p| p.blocking);
    report
}

async fn run_steps(
    mode: Mode,
    inputs: &IdentityInputs,
    store: &impl UserProps,
    report: &mut IdentityReport,
) -> Result<(), IdentityError> {
    let facts = read_facts(inputs, store, report).await?;
    let (root, root_source) = match rules::choose_root(&inputs.root_pool, &facts, &inputs.property)
    {
        Ok(choice) => choice,
        Err(problem) => {
            report.problems.push(problem.into());
            return Ok(());
        }
    };
    report.root_pool = Some(root.to_string());
    report.root_pool_source = Some(root_source);
    let dataset = root.root_dataset();
    let binding_reading = read(store, &dataset, &inputs.host_property).await?;
    report
        .host_binding
        .bound_host
        .clone_from(&binding_reading.value);
    let rule_inputs = RuleInputs {
        mode,
        property: &inputs.property,
        host_property: &inputs.host_property,
        central_guid: inputs.central_guid,
        rebind: inputs.rebind,
        fresh: Uuid::new_v4(),
    };
    let decision = rules::decide(
        &rule_inputs,
        &root,
        &facts,
        &Binding::from_reading(&binding_reading),
    );
    report.guid = decision.guid;
    report.guid_source = decision.guid_source;
    report.host_binding.state = decision.binding;
    report.problems.extend(decision.problems);
    if decision.writes.is_empty() {
        return Ok(());
    }
    write_and_verify(
        store,
        &dataset,
        &decision.writes,
        &inputs.host_property,
        report,
    )
    .await?;
    report.changes = decision.changes;
    report.correction = decision.correction;
    Ok(())
}

async fn read_facts(
    inputs: &IdentityInputs,
    store: &impl UserProps,
    report: &mut IdentityReport,
) -> Result<Facts, IdentityError> {
    let pools = store
        .list_pools()
        .await
        .map_err(|e| IdentityError::ListPools(Box::new(e)))?;
    let mut guids = BTreeMap::new();
    for pool in pools.iter().filter(|p| !p.is_boot_pool()) {
        let reading = read(store, &pool.root_dataset(), &inputs.property).await?;
        let value = GuidValue::from_reading(&reading);
        report.pools.push(PoolGuid {
            pool: pool.to_string(),
            state: value.state(),
            value: value.shown(),
            source: reading.source,
        });
        guids.insert(pool.clone(), value);
    }
    let host = store
        .host_id()
        .await
        .map_err(|e| IdentityError::HostId(Box::new(e)))?;
    report.host_binding.this_host = host.as_ref().map(ToString::to_string);
    Ok(Facts { pools, guids, host })
}

async fn read(
    store: &impl UserProps,
    dataset: &DatasetName,
    key: &UserPropKey,
) -> Result<PropertyReading, IdentityError> {
    store
        .get(dataset, key)
        .await
        .map_err(|source| IdentityError::Read {
            dataset: dataset.to_string(),
            property: key.to_string(),
            source: Box::new(source),
        })
}

/// One `set` for all properties, then each is read back. A mismatch makes the GUID
/// unusable (another writer, or a backend that silently dropped the write).
async fn write_and_verify(
    store: &impl UserProps,
    dataset: &DatasetName,
    writes: &[(UserPropKey, crate::zfs::PropValue)],
    host_property: &UserPropKey,
    report: &mut IdentityReport,
) -> Result<(), IdentityError> {
    let keys: Vec<&str> = writes.iter().map(|(k, _)| k.as_str()).collect();
    tracing::info!(dataset = %dataset, properties = ?keys, "writing device identity");
    store
        .set(dataset, writes)
        .await
        .map_err(|source| IdentityError::Write {
            dataset: dataset.to_string(),
            properties: keys.join(", "),
            source: Box::new(source),
        })?;
    for (key, value) in writes {
        let reading = store
            .get(dataset, key)
            .await
            .map_err(|source| IdentityError::ReadBack {
                dataset: dataset.to_string(),
                property: key.to_string(),
                source: Box::new(source),
            })?;
        if key == host_property {
            report.host_binding.bound_host.clone_from(&reading.value);
        } else {
            refresh_pool_entry(report, &reading);
        }
        if reading.value.as_deref() != Some(value.as_str()) || !reading.source.is_set_here() {
            report.problems.push(
                ProblemKind::ReadBackMismatch {
                    pool: dataset.pool().to_string(),
                    property: key.to_string(),
                    wrote: value.to_string(),
                    read: reading.value.map(|v| crate::zfs::excerpt(&v, 80)),
                }
                .into(),
            );
        }
    }
    Ok(())
}

/// The report's per-pool entry shows the value after the write.
fn refresh_pool_entry(report: &mut IdentityReport, reading: &PropertyReading) {
    let pool = reading.dataset.pool().to_string();
    if let Some(entry) = report.pools.iter_mut().find(|p| p.pool == pool) {
        let value = GuidValue::from_reading(reading);
        entry.state = value.state();
        entry.value = value.shown();
        entry.source = reading.source.clone();
    }
}

#[cfg(test)]
mod tests;
