//! The desired-state document from central: wire format → validation → [`DesiredState`].
//!
//! Owns: strict parsing of the v1 document (central-protocol.md §3; unknown and
//! repeated keys refused), whole-document validation that lists every problem with its path and rule,
//! the SOP defaults, the derived values (bucket, folders, descriptions, bandwidth table),
//! and unwrapping an *unverified* DSSE envelope for `--allow-unsigned` local files.
//! Does not: check signatures or revisions against central (the central channel does),
//! talk to the middleware, or pick pools/GUIDs that depend on the NAS (`plan` does).
//! Invariants: a `DesiredState` only exists for a document with zero problems; every
//! secret is a `SecretString` from the moment it is parsed; no error text contains a
//! value from the document (paths and rules only).
//! Limitations: pool selection "every imported pool" is resolved later, against what
//! the NAS reports; per-pool overrides are not part of v1.

pub mod derive;
pub mod envelope;
mod error;
mod json;
mod load;
mod model;
pub(crate) mod sop;
mod validate;
pub(crate) mod wire;

pub use derive::{BwLimit, Cron, HhMm, LifetimeUnit};
pub use envelope::EnvelopeError;
pub use error::{DesiredError, FieldError};
pub use load::{load_file, load_local, parse};
pub use model::{
    Action, ActionKind, Adopt, B2Key, BandwidthPlan, CloudSyncSettings, DesiredState, Device,
    Encryption, Mode, RemovedPools, SCHEMA_V1, SnapshotSettings, SnmpSettings,
};

#[cfg(test)]
mod tests;
