//! PURE: decides what must change on the NAS so it matches the desired state.
//!
//! Owns: `plan(&DesiredState, &Observed, &Ownership, &Inputs) -> Plan` — the diff
//! between desired and observed, the adopt/leave-alone rules, conflicts, refusals, the
//! device-GUID resolution order, and the plan's text/JSON rendering.
//! Does not: do I/O, read the clock, or know about JSON-RPC. Inputs in, `Plan` out.
//! Invariants: deterministic; a converged NAS plans zero steps and
//! `plan(d, apply_in_memory(plan(d, o)))` plans zero steps (proptested); no step ever
//! names an object the agent does not own, was not told to adopt, or did not create
//! in an interrupted pass (proptested); secrets appear only as `SecretString` in specs
//! and as `(changed)` in what is shown.
//! Limitations: tasks are matched by recorded id, then `adopt`, then (after an
//! interrupted create only) by the agent's exact identity; a renamed pool is a
//! removed pool plus a new one.

pub mod ownership;
mod render;
pub mod spec;
mod tasks;

use std::collections::BTreeMap;

use serde::Serialize;
use uuid::Uuid;

pub use ownership::{ObjectKind, OwnedObject, Ownership, PendingCreate, SnmpRetry};
pub use spec::{CloudSyncSpec, CredentialRef, CredentialSpec, FieldChange, SnapshotSpec, SnmpSpec};

use crate::desired::{ActionKind, DesiredState, Mode, derive};
use crate::fault::Fault;
use crate::observe::Observed;
use crate::state_dir::Fingerprint;

/// The service name SNMP has in `service.*` calls.
pub const SNMP_SERVICE: &str = "snmp";

/// Where the device GUID used for folder names came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum GuidSource {
    /// `device.guid` in the document (authoritative: NinjaOne wins).
    Document,
    /// The ZFS user property on this pool's root dataset.
    RootPool(String),
}

/// Why no device GUID could be determined.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GuidError {
    #[error(
        "no device GUID yet: run `truenas-agent identity ensure` or set device.guid in the document"
    )]
    Missing,
    #[error(
        "the device GUID property on pool `{pool}` is not a UUID; fix it with `truenas-agent identity ensure` or set device.guid"
    )]
    NotAUuid { pool: String },
    #[error("several pools carry a device GUID ({}): set device.root_pool", .pools.join(", "))]
    Ambiguous { pools: Vec<String> },
    #[error("device.root_pool `{pool}` is not imported on this NAS")]
    RootPoolNotImported { pool: String },
}

impl GuidError {
    /// Who has to act.
    pub fn fault(&self) -> Fault {
        match self {
            GuidError::Missing
            | GuidError::NotAUuid { .. }
            | GuidError::Ambiguous { .. }
            | GuidError::RootPoolNotImported { .. } => Fault::Operator,
        }
    }
}

/// Resolves the device GUID: the document's `device.guid`; else the `property` on the
/// root pool (`device.root_pool`, else the agent configuration's `root_pool`, else the
/// one pool that carries it); else an error. The agent never writes the GUID here
/// (that is `identity`).
pub fn resolve_device_guid(
    desired: &DesiredState,
    observed: &Observed,
    property: &str,
    configured_root: Option<&str>,
) -> Result<(Uuid, GuidSource), GuidError> {
    if let Some(guid) = desired.device.guid {
        return Ok((guid, GuidSource::Document));
    }
    let read = |pool: &str, value: &str| {
        derive::parse_uuid(value)
            .map(|g| (g, GuidSource::RootPool(pool.to_owned())))
            .ok_or_else(|| GuidError::NotAUuid {
                pool: pool.to_owned(),
            })
    };
    if let Some(root) = desired.device.root_pool.as_deref().or(configured_root) {
        let pool = observed
            .pool(root)
            .ok_or_else(|| GuidError::RootPoolNotImported {
                pool: root.to_owned(),
            })?;
        return match pool.user_properties.get(property) {
            Some(value) if value != "-" && !value.is_empty() => read(root, value),
            _ => Err(GuidError::Missing),
        };
    }
    let carriers: Vec<(&str, &str)> = observed
        .pools
        .iter()
        .filter_map(|p| {
            p.user_properties
                .get(property)
                .filter(|v| *v != "-" && !v.is_empty())
                .map(|v| (p.name.as_str(), v.as_str()))
        })
        .collect();
    match carriers.as_slice() {
        [] => Err(GuidError::Missing),
        [(pool, value)] => read(pool, value),
        many => Err(GuidError::Ambiguous {
            pools: many.iter().map(|(p, _)| (*p).to_owned()).collect(),
        }),
    }
}

/// Keyed fingerprints of the document's secrets (computed by the caller with the
/// state directory's key), so the planner can compare redacted secrets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretFingerprints {
    pub application_key: Fingerprint,
    pub encryption_password: Fingerprint,
    pub encryption_salt: Fingerprint,
    pub snmp_auth: Option<Fingerprint>,
    pub snmp_privacy: Option<Fingerprint>,
}

/// Everything besides the document, the NAS and the ownership record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inputs {
    pub device_guid: Uuid,
    pub guid_source: GuidSource,
    pub fingerprints: SecretFingerprints,
    /// The root pool named for the device GUID (the document's `device.root_pool`, else
    /// the agent configuration's `root_pool`); `None` when neither names one.
    pub root_pool: Option<String>,
}

/// Why the agent takes over an existing object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AdoptReason {
    /// Listed in the document's `adopt`.
    Document,
    /// The agent created it in a pass whose reply was lost (matched by exact identity).
    InterruptedCreate,
}

/// A Cloud Sync task an action refers to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TaskRef {
    Existing(u64),
    /// Created by an earlier step of the same plan.
    Planned,
}

/// One change the agent will make, in the order `apply` runs them.
#[derive(Debug, Clone)]
pub enum Step {
    CreateCredential(CredentialSpec),
    UpdateCredential {
        id: u64,
        changes: Vec<FieldChange>,
        spec: CredentialSpec,
    },
    /// Record an existing object as the agent's (no middleware write).
    Adopt {
        kind: ObjectKind,
        id: u64,
        pool: Option<String>,
        reason: AdoptReason,
    },
    CreateCloudSync(CloudSyncSpec),
    UpdateCloudSync {
        id: u64,
        changes: Vec<FieldChange>,
        spec: CloudSyncSpec,
    },
    CreateSnapshotTask(SnapshotSpec),
    UpdateSnapshotTask {
        id: u64,
        changes: Vec<FieldChange>,
        spec: SnapshotSpec,
    },
    /// `enabled: false` on a task of a pool no longer in the document.
    Disable {
        kind: ObjectKind,
        id: u64,
        pool: String,
    },
    /// Delete a task of a pool no longer in the document (`removed_pools: delete`).
    Delete {
        kind: ObjectKind,
        id: u64,
        pool: String,
    },
    UpdateSnmp {
        changes: Vec<FieldChange>,
        spec: SnmpSpec,
    },
    /// An earlier SNMP apply failed ([`SnmpRetry`]): send the whole SNMP configuration
    /// so that the middleware re-creates the v3 user (and restarts snmpd), even when
    /// `snmp.config` already reads as the document asks.
    ReapplySnmp {
        spec: SnmpSpec,
    },
    /// Start the service at boot.
    EnableService {
        service: String,
    },
    /// Start the service now.
    StartService {
        service: String,
    },
    /// One-shot action: start the pool's Cloud Sync task now (SOP 7.1).
    RunCloudSync {
        action_id: String,
        pool: String,
        task: TaskRef,
    },
}

impl Step {
    /// Safe order: credential → cloud sync → snapshots → SNMP → services → actions.
    fn phase(&self) -> u8 {
        match self {
            Step::CreateCredential(_) | Step::UpdateCredential { .. } => 0,
            Step::Adopt { kind, .. } | Step::Disable { kind, .. } | Step::Delete { kind, .. } => {
                match kind {
                    ObjectKind::Credential => 0,
                    ObjectKind::CloudSync => 1,
                    ObjectKind::SnapshotTask => 2,
                }
            }
            Step::CreateCloudSync(_) | Step::UpdateCloudSync { .. } => 1,
            Step::CreateSnapshotTask(_) | Step::UpdateSnapshotTask { .. } => 2,
            Step::UpdateSnmp { .. } | Step::ReapplySnmp { .. } => 3,
            Step::EnableService { .. } | Step::StartService { .. } => 4,
            Step::RunCloudSync { .. } => 5,
        }
    }

    /// The middleware object (kind, id) the step touches, if it is an existing one.
    pub fn touches(&self) -> Option<(ObjectKind, u64)> {
        match self {
            Step::UpdateCredential { id, .. } => Some((ObjectKind::Credential, *id)),
            Step::UpdateCloudSync { id, .. }
            | Step::RunCloudSync {
                task: TaskRef::Existing(id),
                ..
            } => Some((ObjectKind::CloudSync, *id)),
            Step::UpdateSnapshotTask { id, .. } => Some((ObjectKind::SnapshotTask, *id)),
            Step::Adopt { kind, id, .. }
            | Step::Disable { kind, id, .. }
            | Step::Delete { kind, id, .. } => Some((*kind, *id)),
            Step::CreateCredential(_)
            | Step::CreateCloudSync(_)
            | Step::CreateSnapshotTask(_)
            | Step::UpdateSnmp { .. }
            | Step::ReapplySnmp { .. }
            | Step::EnableService { .. }
            | Step::StartService { .. }
            | Step::RunCloudSync { .. } => None,
        }
    }
}

/// An object the agent does not own that overlaps with one it manages. Never edited.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Conflict {
    pub kind: ObjectKind,
    pub id: u64,
    /// Description / name as shown in the UI.
    pub name: String,
    pub pool: Option<String>,
    /// True when the NAS cannot match the document while it exists: it stops the agent
    /// from creating its own object, or it fights the agent's task (an enabled PUSH task
    /// into the same bucket folder). A human must act.
    pub blocking: bool,
    pub reason: String,
}

/// Something the plan cannot do by itself; a human has to act.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Blocker {
    /// The document is older than the last one applied.
    Rollback { revision: u64, last_applied: u64 },
    /// A pool listed in the document is not imported on this NAS. Nothing is done for
    /// it, and while any listed pool is missing no task of a "removed" pool is disabled
    /// or deleted (a mistyped name must not switch backups off).
    PoolNotImported {
        pool: String,
        /// An imported pool whose name is close (`Pool0` → `pool0`): pool names are
        /// case-sensitive.
        suggestion: Option<String>,
    },
    /// The root pool named for the device GUID (`device.root_pool`, or the agent
    /// configuration's `root_pool`) is not imported: the GUID has no home (SOP 2.2).
    RootPoolNotImported { pool: String },
    /// Changing the encryption password/salt of a task that already uploaded data.
    RekeyRefused { pool: String, id: u64 },
    /// The middleware redacts the task's encryption secrets and the agent has no
    /// fingerprint to compare with; the task already ran.
    RekeyUnverifiable { pool: String, id: u64 },
    /// An `adopt` id that does not exist.
    AdoptedMissing { object: ObjectKind, id: u64 },
    /// An `adopt` id that is not for a managed pool.
    AdoptedNotManaged { object: ObjectKind, id: u64 },
    /// An `adopt` id for a pool that already has the agent's own object.
    AdoptIgnored {
        object: ObjectKind,
        id: u64,
        owned_id: u64,
    },
    /// Cloud Sync tasks cannot be created until the credential is sorted out.
    WaitingForCredential { pool: String },
    /// An action that cannot run yet (it stays pending).
    ActionWaiting {
        action_id: String,
        pool: String,
        reason: String,
    },
}

/// An ownership record that no longer points at the agent's object (deleted, or its
/// id now belongs to something else). `apply` drops it; it is not a step.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Forget {
    pub kind: ObjectKind,
    pub pool: Option<String>,
    pub id: u64,
}

/// What the agent would do, and what it cannot.
#[derive(Debug, Clone)]
pub struct Plan {
    pub revision: u64,
    pub mode: Mode,
    pub bucket: String,
    pub device_guid: Uuid,
    pub guid_source: GuidSource,
    /// The pools the agent manages in this plan.
    pub pools: Vec<String>,
    pub steps: Vec<Step>,
    pub conflicts: Vec<Conflict>,
    pub blockers: Vec<Blocker>,
    /// Stale ownership records to drop.
    pub forget: Vec<Forget>,
}

impl Plan {
    /// True when there is nothing to do and nothing in the way: the NAS matches.
    pub fn is_converged(&self) -> bool {
        self.steps.is_empty() && self.blockers.is_empty() && !self.has_blocking_conflict()
    }

    /// True when a conflict stops the agent from creating one of its objects.
    pub fn has_blocking_conflict(&self) -> bool {
        self.conflicts.iter().any(|c| c.blocking)
    }
}

/// Plans the changes that take `observed` to `desired`.
pub fn plan(
    desired: &DesiredState,
    observed: &Observed,
    owned: &Ownership,
    inputs: &Inputs,
) -> Plan {
    let mut p = Plan {
        revision: desired.revision,
        mode: desired.mode,
        bucket: desired.bucket.clone(),
        device_guid: inputs.device_guid,
        guid_source: inputs.guid_source.clone(),
        pools: Vec::new(),
        steps: Vec::new(),
        conflicts: Vec::new(),
        blockers: Vec::new(),
        forget: Vec::new(),
    };
    // A recorded revision above the bound was accepted before the bound existed; it
    // must not turn every later document into a rollback.
    if let Some(last) = owned
        .last_revision
        .filter(|last| crate::desired::wire::REVISION.allows(*last) && desired.revision < *last)
    {
        p.blockers.push(Blocker::Rollback {
            revision: desired.revision,
            last_applied: last,
        });
        return p;
    }
    p.pools = managed_pools(desired, observed, &mut p.blockers);
    if let Some(root) = inputs.root_pool.as_deref() {
        if observed.pool(root).is_none() {
            p.blockers.push(Blocker::RootPoolNotImported {
                pool: root.to_owned(),
            });
        }
    }
    let ctx = tasks::Ctx {
        desired,
        observed,
        owned,
        inputs,
    };
    let credential = tasks::plan_credential(&ctx, &mut p);
    let cloud_sync = tasks::plan_cloud_sync(&ctx, credential, &mut p);
    tasks::plan_snapshots(&ctx, &mut p);
    tasks::check_adopted(&ctx, &mut p);
    // Never act on "removed" pools while a listed pool is missing: a typo (`Pool0` for
    // `pool0`) would otherwise disable or delete every backup and snapshot task.
    let listed_missing = p
        .blockers
        .iter()
        .any(|b| matches!(b, Blocker::PoolNotImported { .. }));
    if !listed_missing {
        tasks::plan_removed_pools(&ctx, &mut p);
    }
    tasks::plan_snmp(&ctx, &mut p);
    plan_actions(desired, owned, &p.pools.clone(), &cloud_sync, &mut p);
    p.steps.sort_by_key(Step::phase);
    p
}

/// The pools to manage: the document's list (those imported), or every imported pool
/// except `boot-pool`.
fn managed_pools(
    desired: &DesiredState,
    observed: &Observed,
    blockers: &mut Vec<Blocker>,
) -> Vec<String> {
    match &desired.pools {
        Some(listed) => listed
            .iter()
            .filter(|pool| {
                let imported = observed.pool(pool).is_some();
                if !imported {
                    blockers.push(Blocker::PoolNotImported {
                        pool: (*pool).clone(),
                        suggestion: similar_pool(pool, observed, listed),
                    });
                }
                imported
            })
            .cloned()
            .collect(),
        None => observed
            .pools
            .iter()
            .map(|p| p.name.clone())
            .filter(|name| name != "boot-pool")
            .collect(),
    }
}

/// The imported pool a missing name most likely meant, among the pools the document
/// does not list already: the same name in another case, else the one closest by edit
/// distance (at most 2 edits, and unique).
pub fn similar_pool(name: &str, observed: &Observed, listed: &[String]) -> Option<String> {
    let names: Vec<&str> = observed
        .pools
        .iter()
        .map(|p| p.name.as_str())
        .filter(|n| *n != "boot-pool" && !listed.iter().any(|l| l == n))
        .collect();
    if let Some(same) = names.iter().find(|n| n.eq_ignore_ascii_case(name)) {
        return Some((*same).to_owned());
    }
    let lower = name.to_ascii_lowercase();
    let mut scored: Vec<(usize, &str)> = names
        .iter()
        .map(|n| (edit_distance(&lower, &n.to_ascii_lowercase()), *n))
        .filter(|(d, _)| *d <= 2)
        .collect();
    scored.sort_unstable();
    match scored.as_slice() {
        [(d, best), rest @ ..] if rest.first().is_none_or(|(d2, _)| d2 > d) => {
            Some((*best).to_owned())
        }
        _ => None,
    }
}

/// Levenshtein distance over characters.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = (prev + usize::from(ca != *cb)).min(row[j] + 1).min(cur + 1);
            prev = cur;
        }
    }
    row[b.len()]
}

fn plan_actions(
    desired: &DesiredState,
    owned: &Ownership,
    managed: &[String],
    cloud_sync: &BTreeMap<String, TaskRef>,
    p: &mut Plan,
) {
    for action in &desired.actions {
        if owned.executed_actions.contains(&action.id) {
            continue;
        }
        let ActionKind::RunCloudSync { pool } = &action.kind;
        let waiting = |reason: &str| Blocker::ActionWaiting {
            action_id: action.id.clone(),
            pool: pool.clone(),
            reason: reason.to_owned(),
        };
        if !managed.contains(pool) {
            p.blockers
                .push(waiting("the pool is not managed on this NAS"));
            continue;
        }
        match cloud_sync.get(pool) {
            Some(task) => p.steps.push(Step::RunCloudSync {
                action_id: action.id.clone(),
                pool: pool.clone(),
                task: *task,
            }),
            None => p.blockers.push(waiting(
                "the pool has no Cloud Sync task the agent manages yet",
            )),
        }
    }
}

#[cfg(test)]
pub(crate) mod tests;
