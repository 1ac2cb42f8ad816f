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

mod backend;
pub(crate) mod command;
mod error;
#[cfg(test)]
pub(crate) mod fake;
mod host_id;
pub(crate) mod names;
pub mod parse;
mod props;
pub mod via_middleware;

pub use backend::{BackendChoice, Store, choose_backend, choose_backend_with};
pub use command::{CommandConfig, Program, SAFE_PATH, ZfsCommand};
pub use error::{ZfsError, ZfsOp};
pub use host_id::{HostId, default_hostid_file};
pub use names::{
    DEFAULT_GUID_PROPERTY, DatasetName, NameError, PoolName, PropValue, UserPropKey, excerpt,
};
pub use parse::{PropSource, PropertyReading};
pub use props::{Backend, UserProps};
pub use via_middleware::MiddlewareProps;
