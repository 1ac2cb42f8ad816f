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

mod diff;
mod guid;
mod model;
pub(crate) mod ownership;
mod render;
pub(crate) mod spec;
mod tasks;

pub use diff::{plan, similar_pool};
pub use guid::{GuidError, GuidSource, resolve_device_guid};
pub use model::{
    AdoptReason, Blocker, Conflict, Forget, Inputs, Plan, SNMP_SERVICE, SecretFingerprints, Step,
    TaskRef,
};
pub use ownership::{ObjectKind, OwnedObject, Ownership, PendingCreate, SnmpRetry};
pub use spec::{CloudSyncSpec, CredentialRef, CredentialSpec, FieldChange, SnapshotSpec, SnmpSpec};

#[cfg(test)]
pub(crate) mod tests;
