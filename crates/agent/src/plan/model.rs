//! What a plan is made of: the steps, conflicts and blockers the planner produces and
//! `apply`, `status` and the renderers consume.
//!
//! Owns: [`Plan`], [`Step`] (with its safe order and the object it touches), [`Conflict`],
//! [`Blocker`], [`Forget`], [`TaskRef`], [`AdoptReason`] and the planner's [`Inputs`].
//! Does not: decide anything (`diff.rs`, `tasks.rs`) or render (`render.rs`).
//! Invariants: secrets appear only as `SecretString` inside specs.

use serde::Serialize;
use uuid::Uuid;

use super::guid::GuidSource;
use super::ownership::ObjectKind;
use super::spec::{CloudSyncSpec, CredentialSpec, FieldChange, SnapshotSpec, SnmpSpec};
use crate::desired::Mode;
use crate::state_dir::Fingerprint;

/// The service name SNMP has in `service.*` calls.
pub const SNMP_SERVICE: &str = "snmp";

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
    pub(super) fn phase(&self) -> u8 {
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
