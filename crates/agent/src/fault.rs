//! Who has to act when something fails, and how an error reads on one line.
//!
//! Owns: the [`Fault`] classification shared by every module's error enum, and
//! [`error_chain`], the one-line form of an error and its causes used wherever only a
//! string is kept (state files, reports, log fields).
//! Does not: decide retries or exit codes itself; callers derive those from the fault
//! with one exhaustive `match` (see `daemon` and `cli::status`).
//! Invariants: every error enum in the library maps each variant to exactly one fault,
//! with an exhaustive `match` (no `_` arm), so a new variant forces a decision.

use serde::{Deserialize, Serialize};

/// `{error}: {cause}: {cause}…` — each link once, as anyhow's `{:#}` prints it.
pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_chain_prints_each_link() {
        #[derive(Debug, thiserror::Error)]
        #[error("outer")]
        struct Outer(#[source] std::io::Error);
        let e = Outer(std::io::Error::other("inner"));
        assert_eq!(error_chain(&e), "outer: inner");
    }
}
