//! The seam between the agent and ZFS user properties.
//!
//! Owns: the [`UserProps`] trait both backends implement and [`Backend`], which names them.
//! Does not: implement it (`command.rs`, `via_middleware.rs`, `backend.rs`).
//! Invariants: `set` writes all its properties in one operation.

use std::future::Future;

use serde::{Deserialize, Serialize};

use super::error::ZfsError;
use super::host_id::HostId;
use super::names::{DatasetName, PoolName, PropValue, UserPropKey};
use super::parse::PropertyReading;

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

/// Reads and writes ZFS user properties. Implemented by [`ZfsCommand`](super::ZfsCommand), by
/// [`MiddlewareProps`](super::MiddlewareProps), and by [`Store`](super::Store) (whichever of the two was chosen).
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
