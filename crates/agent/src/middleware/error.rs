//! Errors of one middleware call, decoded from either protocol.
//!
//! Owns: [`CallError`] and its [`Fault`] mapping.
//! Does not: decode wire frames (that is `rpc.rs`), or retry anything.
//! Invariants: no variant carries request params, so no secret sent in a call can
//! appear in an error text. Reasons come from the middleware's reply; callers that
//! surface `reason` beyond a log line still pass it through redaction.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::Method;
use crate::fault::Fault;

/// One validation problem reported by the middleware: `[attribute path, message, errno]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ValidationItem {
    /// Dotted attribute path, e.g. `cloud_sync_create.bwlimit.0.time`.
    pub path: String,
    /// Human text from the middleware.
    pub message: String,
    /// errno (22 `EINVAL` usually).
    pub errno: i64,
}

impl std::fmt::Display for ValidationItem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

/// Why one middleware call failed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CallError {
    /// The middleware rejected the params (JSON-RPC -32602 / legacy `type: VALIDATION`).
    #[error("middleware rejected `{method}`: {}", join(.items))]
    Validation {
        method: Method,
        items: Vec<ValidationItem>,
    },
    /// The object addressed does not exist (errno `ENOENT`, `MatchNotFound`).
    #[error("`{method}`: not found: {reason}")]
    NotFound { method: Method, reason: String },
    /// The session is not logged in (errno 207).
    #[error("`{method}`: the middleware session is not authenticated")]
    NotAuthenticated { method: Method },
    /// The session lacks the role for the call (errno 13 `EACCES`), or it expired.
    #[error("`{method}`: not authorised: {reason}")]
    NotAuthorized { method: Method, reason: String },
    /// Too many calls (errno 16 `EBUSY` from the rate limiter, or JSON-RPC -32000).
    #[error("`{method}`: the middleware is rate limiting this connection")]
    RateLimited { method: Method },
    /// The method does not exist on this endpoint/version (-32601 or errno 201).
    #[error("`{method}` does not exist on this TrueNAS version")]
    MethodNotFound { method: Method },
    /// Any other middleware failure (`CallError` on the Python side).
    #[error("`{method}` failed ({errname}): {reason}")]
    Failed {
        method: Method,
        errno: Option<i64>,
        errname: String,
        reason: String,
    },
    /// No reply within the call's timeout. The call may or may not have happened.
    #[error("`{method}` timed out after {after:?}")]
    Timeout { method: Method, after: Duration },
    /// The connection dropped while the call was in flight. It may or may not have happened.
    #[error("connection to the middleware lost during `{method}`: {detail}")]
    Disconnected { method: Method, detail: String },
    /// No connection could be (re)established for the call; it was not sent.
    #[error("middleware unavailable for `{method}`: {detail}")]
    Unavailable { method: Method, detail: String },
    /// The reply could not be understood.
    #[error("`{method}`: unexpected reply from the middleware: {detail}")]
    Protocol { method: Method, detail: String },
}

fn join(items: &[ValidationItem]) -> String {
    items
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

impl CallError {
    /// The method the failed call was for.
    pub fn method(&self) -> Method {
        match self {
            CallError::Validation { method, .. }
            | CallError::NotFound { method, .. }
            | CallError::NotAuthenticated { method }
            | CallError::NotAuthorized { method, .. }
            | CallError::RateLimited { method }
            | CallError::MethodNotFound { method }
            | CallError::Failed { method, .. }
            | CallError::Timeout { method, .. }
            | CallError::Disconnected { method, .. }
            | CallError::Unavailable { method, .. }
            | CallError::Protocol { method, .. } => *method,
        }
    }

    /// Who has to act.
    pub fn fault(&self) -> Fault {
        match self {
            CallError::Validation { .. }
            | CallError::NotFound { .. }
            | CallError::NotAuthenticated { .. }
            | CallError::NotAuthorized { .. }
            | CallError::Failed { .. } => Fault::Nas,
            CallError::RateLimited { .. }
            | CallError::Timeout { .. }
            | CallError::Disconnected { .. }
            | CallError::Unavailable { .. } => Fault::Transient,
            CallError::MethodNotFound { .. } | CallError::Protocol { .. } => Fault::Bug,
        }
    }

    /// True when the connection is gone (the caller should stop the current pass).
    pub fn is_transport(&self) -> bool {
        matches!(
            self,
            CallError::Timeout { .. }
                | CallError::Disconnected { .. }
                | CallError::Unavailable { .. }
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation_error_lists_every_path() {
        let err = CallError::Validation {
            method: Method::CloudsyncCreate,
            items: vec![
                ValidationItem {
                    path: "cloud_sync_create.bwlimit.0.time".into(),
                    message: "Invalid time order".into(),
                    errno: 22,
                },
                ValidationItem {
                    path: "cloud_sync_create.credentials".into(),
                    message: "Invalid credentials".into(),
                    errno: 22,
                },
            ],
        };
        assert_eq!(
            err.to_string(),
            "middleware rejected `cloudsync.create`: cloud_sync_create.bwlimit.0.time: Invalid time order; cloud_sync_create.credentials: Invalid credentials"
        );
        assert_eq!(err.fault(), Fault::Nas);
    }
}
