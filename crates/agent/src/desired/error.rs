//! Why a document could not become a [`DesiredState`](super::DesiredState).
//!
//! Owns: [`FieldError`] (one problem: its path and the rule it breaks) and
//! [`DesiredError`] with its [`Fault`] mapping.
//! Does not: find the problems (`wire.rs`, `validate.rs`).
//! Invariants: no error text contains a value from the document (paths and rules only).

use std::fmt;

use serde::{Deserialize, Serialize};

use super::envelope::EnvelopeError;
use crate::fault::Fault;
use crate::fs::FsError;

/// One problem in a document: where, and which rule it breaks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FieldError {
    /// Dotted path with list indexes, e.g. `cloud_sync.bandwidth.business_hours.start`.
    pub path: String,
    /// The rule, e.g. `expected HH:MM (zero-padded 24-hour time)`.
    pub rule: String,
}

impl FieldError {
    /// A problem at `path`.
    pub fn new(path: &str, rule: &str) -> Self {
        Self {
            path: path.to_owned(),
            rule: rule.to_owned(),
        }
    }
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.rule)
    }
}

/// Why a document could not become a [`DesiredState`].
#[derive(Debug, thiserror::Error)]
pub enum DesiredError {
    /// The document file could not be read.
    #[error("cannot read the desired-state document")]
    Read(#[source] FsError),
    /// The bytes are not JSON at all.
    #[error("desired-state document is not valid JSON (line {line}, column {column})")]
    Syntax { line: usize, column: usize },
    /// A DSSE envelope that could not be unwrapped.
    #[error("cannot unwrap the document's DSSE envelope")]
    Envelope(#[source] EnvelopeError),
    /// A local document was given without `--allow-unsigned`.
    #[error(
        "refusing an unverified local document: pass --allow-unsigned (tests, lab boxes), or \
         give --config with [central] trusted_keys to check a signed envelope"
    )]
    Unverified,
    /// The document breaks one or more rules (all of them are listed).
    #[error("desired-state document is invalid ({} problem(s)): {}", .0.len(), list(.0))]
    Invalid(Vec<FieldError>),
}

fn list(errors: &[FieldError]) -> String {
    errors
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

impl DesiredError {
    /// Who has to act.
    pub fn fault(&self) -> Fault {
        match self {
            DesiredError::Read(_)
            | DesiredError::Syntax { .. }
            | DesiredError::Envelope(_)
            | DesiredError::Unverified
            | DesiredError::Invalid(_) => Fault::Operator,
        }
    }

    /// The problems with their paths (one pseudo-path for non-validation errors, with
    /// the whole cause chain: "cannot read the desired-state document: cannot read
    /// /path/doc.json: No such file or directory").
    pub fn field_errors(&self) -> Vec<FieldError> {
        match self {
            DesiredError::Invalid(errors) => errors.clone(),
            DesiredError::Read(_)
            | DesiredError::Syntax { .. }
            | DesiredError::Envelope(_)
            | DesiredError::Unverified => vec![FieldError::new(
                "(document)",
                &crate::fault::error_chain(self),
            )],
        }
    }
}
