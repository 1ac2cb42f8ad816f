//! Who has to act when something fails.
//!
//! Owns: the [`Fault`] classification shared by every module's error enum.
//! Does not: decide retries or exit codes itself; callers derive those from the fault
//! with one exhaustive `match` (see `daemon` and `cli::status`).
//! Invariants: every error enum in the library maps each variant to exactly one fault,
//! with an exhaustive `match` (no `_` arm), so a new variant forces a decision.

use serde::{Deserialize, Serialize};

/// The party that must act for an error to go away.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Fault {
    /// The desired state or the local configuration is wrong: a human must fix the input.
    Operator,
    /// The NAS (middleware, ZFS) refused or is in a state the agent cannot fix by itself.
    Nas,
    /// The central endpoint misbehaved or rejected us (token, signature, rollback).
    Central,
    /// Timeouts, dropped connections, 5xx: retrying later is expected to work.
    Transient,
    /// The agent itself is wrong (an invariant broke); report it.
    Bug,
}

impl Fault {
    /// True when retrying the same operation later may succeed without a human.
    pub fn is_retryable(self) -> bool {
        match self {
            Fault::Transient => true,
            Fault::Operator | Fault::Nas | Fault::Central | Fault::Bug => false,
        }
    }
}
