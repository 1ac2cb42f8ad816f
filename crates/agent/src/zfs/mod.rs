//! ZFS user properties, read and written directly through the `zfs`/`zpool` commands,
//! with the middleware as a fallback where those commands cannot be used.
//!
//! Owns: argument validation ([`names`]), the pure parser of `zfs get -H -p` / `zpool list
//! -H` answers ([`parse`]), the command backend ([`ZfsCommand`]: exec without a shell, a
//! fixed `PATH`, `LC_ALL=C`, a timeout with kill), the middleware backend
//! ([`MiddlewareProps`]), the [`UserProps`] seam both implement, backend selection
//! ([`choose_backend`]), and the host identity ZFS itself uses ([`HostId`], from
//! `/etc/hostid`).
//! Does not: decide which pool carries the device GUID or what to write (`identity`).
//! Invariants: every argument handed to `zfs`/`zpool` went through a validating type; no
//! command runs through a shell or with the caller's environment; every exec has a
//! deadline and is killed (with its process group) when it passes it; error texts quote at
//! most a short, sanitised excerpt of the command's output.
//! Limitations: one dataset and one property per read; the middleware backend cannot tell
//! local from inherited on TrueNAS 25.10 (it reports [`PropSource::Unknown`] there).

pub mod command;
#[cfg(test)]
pub(crate) mod fake;
pub mod names;
pub mod parse;
pub mod via_middleware;

use std::future::Future;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

pub use command::{CommandConfig, Program, SAFE_PATH, ZfsCommand};
pub use names::{
    DEFAULT_GUID_PROPERTY, DatasetName, NameError, PoolName, PropValue, UserPropKey, excerpt,
};
pub use parse::{PropSource, PropertyReading};
pub use via_middleware::MiddlewareProps;

use crate::fault::Fault;
use crate::fault::error_chain;
use crate::fs::FsError;
use crate::middleware::{CallError, Middleware};

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

/// The host identity ZFS uses (`/etc/hostid`: OpenZFS records it in the pool label and
/// warns when a pool was last used by another host), as TrueNAS exposes it:
/// `system.host_id` = lower-case hex SHA-256 of the file's bytes with surrounding ASCII
/// whitespace stripped (`plugins/system/info.py`). Never the raw hostid.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct HostId(String);

impl HostId {
    /// The identity for the contents of `/etc/hostid`; `None` when they are blank.
    pub fn from_hostid_bytes(bytes: &[u8]) -> Option<Self> {
        // Python's bytes.strip() (what the middleware calls) strips b" \t\n\r\x0b\x0c";
        // Rust's trim_ascii() does not strip \x0b, so spell the set out.
        let is_space = |b: &u8| matches!(b, b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c);
        let start = bytes.iter().position(|b| !is_space(b))?;
        let end = bytes.iter().rposition(|b| !is_space(b))?;
        Some(Self(hex::encode(Sha256::digest(&bytes[start..=end]))))
    }

    /// Accepts a `system.host_id` answer (64 hex digits; upper case is folded).
    pub fn parse(hex_digest: &str) -> Option<Self> {
        (hex_digest.len() == 64 && hex_digest.bytes().all(|b| b.is_ascii_hexdigit()))
            .then(|| Self(hex_digest.to_ascii_lowercase()))
    }

    /// The 64-hex form.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// A short form for humans (first 12 hex digits).
    pub fn short(&self) -> &str {
        &self.0[..12]
    }
}

impl std::fmt::Display for HostId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Which way user properties are reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Backend {
    /// The `zfs`/`zpool` commands (the normal case on the host).
    ZfsCommand,
    /// The middleware (`pool.dataset.query`/`update`): where the commands are unusable,
    /// e.g. in a Custom App container.
    Middleware,
}

impl std::fmt::Display for Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Backend::ZfsCommand => "zfs command",
            Backend::Middleware => "middleware",
        })
    }
}

/// Reads and writes ZFS user properties. Implemented by [`ZfsCommand`], by
/// [`MiddlewareProps`], and by [`Store`] (whichever of the two was chosen).
pub trait UserProps: Send + Sync {
    /// Which backend this is.
    fn backend(&self) -> Backend;

    /// The imported pools, boot pool included when the backend shows it.
    fn list_pools(&self) -> impl Future<Output = Result<Vec<PoolName>, ZfsError>> + Send;

    /// One user property of one dataset.
    fn get(
        &self,
        dataset: &DatasetName,
        key: &UserPropKey,
    ) -> impl Future<Output = Result<PropertyReading, ZfsError>> + Send;

    /// Sets user properties on one dataset in one operation (one `zfs set` with several
    /// `key=value`, one `pool.dataset.update`): ZFS applies them in a single transaction.
    fn set(
        &self,
        dataset: &DatasetName,
        props: &[(UserPropKey, PropValue)],
    ) -> impl Future<Output = Result<(), ZfsError>> + Send;

    /// Removes a user property from one dataset (it then inherits, or is unset).
    fn inherit(
        &self,
        dataset: &DatasetName,
        key: &UserPropKey,
    ) -> impl Future<Output = Result<(), ZfsError>> + Send;

    /// This host's identity as ZFS sees it; `None` when the host has none.
    fn host_id(&self) -> impl Future<Output = Result<Option<HostId>, ZfsError>> + Send;
}

/// The backend in use, chosen by [`choose_backend`].
#[derive(Debug)]
pub enum Store<M> {
    Command(ZfsCommand),
    Middleware(MiddlewareProps<M>),
}

/// Which backend was chosen and why, for `status` ("identity via middleware (zfs command
/// unavailable: …)").
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackendChoice {
    pub backend: Backend,
    /// Why the command backend could not be used (its error), when that was the case.
    pub fallback_reason: Option<String>,
    /// Why the middleware fallback could not be used either (then `backend` is still the
    /// command, whose error surfaces on use).
    pub fallback_error: Option<String>,
}

impl BackendChoice {
    /// The command backend, no fallback involved.
    pub fn command() -> Self {
        Self {
            backend: Backend::ZfsCommand,
            fallback_reason: None,
            fallback_error: None,
        }
    }
}

impl std::fmt::Display for BackendChoice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (&self.fallback_reason, &self.fallback_error) {
            (None, _) => write!(f, "{}", self.backend),
            (Some(reason), None) => {
                write!(f, "{} (zfs command unavailable: {reason})", self.backend)
            }
            (Some(reason), Some(error)) => write!(
                f,
                "{} (unavailable: {reason}; middleware fallback failed: {error})",
                self.backend
            ),
        }
    }
}

/// Picks the backend: the `zfs` command when `zpool list` works (or fails for a reason
/// other than "cannot be used from here"); otherwise the middleware, connecting only then
/// (`connect` is not called at all when the command works). When connecting fails, the
/// command backend is returned and the choice records both reasons.
pub async fn choose_backend_with<M, F, Fut>(
    command: ZfsCommand,
    connect: F,
) -> (Store<M>, BackendChoice)
where
    M: Middleware,
    F: FnOnce() -> Fut,
    Fut: Future<Output = Result<M, String>>,
{
    let reason = match command.list_pools().await {
        Err(err) if err.command_unusable() => error_chain(&err),
        Ok(_) | Err(_) => return (Store::Command(command), BackendChoice::command()),
    };
    match connect().await {
        Ok(mw) => {
            tracing::warn!(%reason, "zfs command unusable; using the middleware for ZFS user properties");
            let choice = BackendChoice {
                backend: Backend::Middleware,
                fallback_reason: Some(reason),
                fallback_error: None,
            };
            (Store::Middleware(MiddlewareProps::new(mw)), choice)
        }
        Err(error) => {
            let choice = BackendChoice {
                fallback_reason: Some(reason),
                fallback_error: Some(error),
                ..BackendChoice::command()
            };
            (Store::Command(command), choice)
        }
    }
}

/// [`choose_backend_with`] for a middleware connection already at hand (or none).
pub async fn choose_backend<M: Middleware>(
    command: ZfsCommand,
    middleware: Option<M>,
) -> (Store<M>, BackendChoice) {
    choose_backend_with(command, || async move {
        middleware.ok_or_else(|| "no middleware connection".to_owned())
    })
    .await
}

impl<M: Middleware> UserProps for Store<M> {
    fn backend(&self) -> Backend {
        match self {
            Store::Command(c) => c.backend(),
            Store::Middleware(m) => m.backend(),
        }
    }

    async fn list_pools(&self) -> Result<Vec<PoolName>, ZfsError> {
        match self {
            Store::Command(c) => c.list_pools().await,
            Store::Middleware(m) => m.list_pools().await,
        }
    }

    async fn get(
        &self,
        dataset: &DatasetName,
        key: &UserPropKey,
    ) -> Result<PropertyReading, ZfsError> {
        match self {
            Store::Command(c) => c.get(dataset, key).await,
            Store::Middleware(m) => m.get(dataset, key).await,
        }
    }

    async fn set(
        &self,
        dataset: &DatasetName,
        props: &[(UserPropKey, PropValue)],
    ) -> Result<(), ZfsError> {
        match self {
            Store::Command(c) => c.set(dataset, props).await,
            Store::Middleware(m) => m.set(dataset, props).await,
        }
    }

    async fn inherit(&self, dataset: &DatasetName, key: &UserPropKey) -> Result<(), ZfsError> {
        match self {
            Store::Command(c) => c.inherit(dataset, key).await,
            Store::Middleware(m) => m.inherit(dataset, key).await,
        }
    }

    async fn host_id(&self) -> Result<Option<HostId>, ZfsError> {
        match self {
            Store::Command(c) => c.host_id().await,
            Store::Middleware(m) => m.host_id().await,
        }
    }
}

/// Default location of the host id file.
pub fn default_hostid_file() -> PathBuf {
    PathBuf::from("/etc/hostid")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_id_matches_the_middleware_formula() {
        // The VM's /etc/hostid (bytes 11 8b 52 34, `hostid` = 34528b11) and what
        // `python3 -c "hashlib.sha256(open('/etc/hostid','rb').read().strip())"` printed there.
        let id = HostId::from_hostid_bytes(&[0x11, 0x8b, 0x52, 0x34]).unwrap();
        assert_eq!(
            id.as_str(),
            "8331920580b61d5d662e036c0d22d25554340cb03dac52a08aff8076d3e675bc"
        );
        assert_eq!(id.short(), "8331920580b6");
        // Python strips \x0b too; a hostid byte equal to a whitespace byte at either end
        // is stripped the same way.
        assert_eq!(
            HostId::from_hostid_bytes(&[0x0b, 0x11, 0x8b, 0x52, 0x34, b'\n']),
            Some(id)
        );
        assert_eq!(HostId::from_hostid_bytes(b" \n\x0b"), None);
        assert_eq!(HostId::from_hostid_bytes(b""), None);
    }

    #[test]
    fn host_id_answers_are_checked() {
        let hex = "8331920580B61D5D662E036C0D22D25554340CB03DAC52A08AFF8076D3E675BC";
        assert_eq!(
            HostId::parse(hex).unwrap().as_str(),
            hex.to_ascii_lowercase()
        );
        assert_eq!(HostId::parse("abc"), None);
        assert_eq!(HostId::parse(&"g".repeat(64)), None);
    }

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
