//! Why a ZFS user-property operation failed, whichever backend ran it.
//!
//! Owns: [`ZfsOp`] (what was attempted) and [`ZfsError`] with its [`Fault`] mapping and
//! the "command cannot be used from here" test the backend choice relies on.
//! Does not: run anything (`command.rs`, `via_middleware.rs`).
//! Invariants: error texts quote at most a short, sanitised excerpt of an answer.

use std::time::Duration;

use crate::fault::Fault;
use crate::fs::FsError;
use crate::middleware::CallError;

/// The operation a [`ZfsError`] is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ZfsOp {
    /// Read one user property of one dataset.
    Get,
    /// Set user properties on one dataset.
    Set,
    /// Remove a user property from one dataset (`zfs inherit`).
    Inherit,
    /// List the imported pools.
    ListPools,
    /// Find the host identity.
    HostId,
}

impl std::fmt::Display for ZfsOp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ZfsOp::Get => "zfs get",
            ZfsOp::Set => "zfs set",
            ZfsOp::Inherit => "zfs inherit",
            ZfsOp::ListPools => "zpool list",
            ZfsOp::HostId => "host id lookup",
        })
    }
}

/// Why a ZFS property operation failed.
#[derive(Debug, thiserror::Error)]
pub enum ZfsError {
    /// The program is not where we looked.
    #[error("`{program}` not found (looked in {searched})")]
    NotInstalled { program: String, searched: String },
    /// The program exists but could not be started.
    #[error("cannot start `{program}`")]
    Spawn {
        program: String,
        #[source]
        source: std::io::Error,
    },
    /// ZFS refused for lack of privilege (not root, no delegation).
    #[error("`{op}` on {resource}: permission denied ({message})")]
    PermissionDenied {
        op: ZfsOp,
        resource: String,
        message: String,
    },
    /// The dataset or pool does not exist (or is not imported).
    #[error("`{op}`: no such dataset {resource}")]
    NoSuchDataset { op: ZfsOp, resource: String },
    /// libzfs could not start: no `/dev/zfs` (container), module not loaded.
    #[error("`{op}`: ZFS cannot be used from here ({message})")]
    NotUsable { op: ZfsOp, message: String },
    /// No answer within the deadline; the process (group) was killed.
    #[error("`{op}` on {resource} timed out after {after:?} (killed)")]
    Timeout {
        op: ZfsOp,
        resource: String,
        after: Duration,
    },
    /// Any other non-zero exit.
    #[error("`{op}` on {resource} failed ({status}): {message}")]
    Failed {
        op: ZfsOp,
        resource: String,
        status: String,
        message: String,
    },
    /// The answer did not have the expected shape.
    #[error("`{op}` on {resource}: unexpected output: {detail}")]
    UnexpectedOutput {
        op: ZfsOp,
        resource: String,
        detail: String,
    },
    /// The host id file exists but cannot be read.
    #[error("cannot read the host id")]
    HostIdFile(#[source] FsError),
    /// The middleware call behind the operation failed.
    #[error("`{op}` on {resource} through the middleware failed")]
    Middleware {
        op: ZfsOp,
        resource: String,
        #[source]
        source: CallError,
    },
    /// The middleware answered something we cannot use.
    #[error("`{op}` on {resource}: unexpected middleware answer: {detail}")]
    MiddlewareAnswer {
        op: ZfsOp,
        resource: String,
        detail: String,
    },
}

impl ZfsError {
    /// Who has to act.
    pub fn fault(&self) -> Fault {
        match self {
            ZfsError::NotInstalled { .. }
            | ZfsError::Spawn { .. }
            | ZfsError::PermissionDenied { .. }
            | ZfsError::NoSuchDataset { .. }
            | ZfsError::NotUsable { .. }
            | ZfsError::Failed { .. }
            | ZfsError::HostIdFile(_) => Fault::Nas,
            ZfsError::Timeout { .. } => Fault::Transient,
            ZfsError::UnexpectedOutput { .. } | ZfsError::MiddlewareAnswer { .. } => Fault::Bug,
            ZfsError::Middleware { source, .. } => source.fault(),
        }
    }

    /// True when the `zfs` command cannot be used at all from here (so the middleware
    /// should be used instead), as opposed to failing for this one operation.
    pub fn command_unusable(&self) -> bool {
        match self {
            ZfsError::NotInstalled { .. }
            | ZfsError::Spawn { .. }
            | ZfsError::NotUsable { .. }
            | ZfsError::PermissionDenied { .. } => true,
            ZfsError::NoSuchDataset { .. }
            | ZfsError::Timeout { .. }
            | ZfsError::Failed { .. }
            | ZfsError::UnexpectedOutput { .. }
            | ZfsError::HostIdFile(_)
            | ZfsError::Middleware { .. }
            | ZfsError::MiddlewareAnswer { .. } => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_error_has_a_fault() {
        let e = ZfsError::Timeout {
            op: ZfsOp::Get,
            resource: "pool0".into(),
            after: Duration::from_secs(1),
        };
        assert_eq!(e.fault(), Fault::Transient);
        assert!(!e.command_unusable());
        let e = ZfsError::NotUsable {
            op: ZfsOp::ListPools,
            message: "x".into(),
        };
        assert!(e.command_unusable());
        assert_eq!(e.fault(), Fault::Nas);
    }
}
