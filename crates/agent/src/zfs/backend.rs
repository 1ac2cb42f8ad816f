//! Which backend reaches ZFS user properties on this box, and the chosen one as a
//! [`UserProps`].
//!
//! Owns: [`choose_backend`] (the command first, the middleware when the command cannot be
//! used from here), [`Store`] (the chosen backend) and [`BackendChoice`] (what `status`
//! shows about the choice).
//! Does not: read or write properties itself (the backends do).
//! Invariants: the middleware is connected to only when the command cannot be used.

use std::future::Future;

use serde::{Deserialize, Serialize};

use super::command::ZfsCommand;
use super::error::ZfsError;
use super::host_id::HostId;
use super::names::{DatasetName, PoolName, PropValue, UserPropKey};
use super::parse::PropertyReading;
use super::props::{Backend, UserProps};
use super::via_middleware::MiddlewareProps;
use crate::fault::error_chain;
use crate::middleware::Middleware;

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
