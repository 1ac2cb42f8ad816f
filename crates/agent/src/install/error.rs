//! Why install, uninstall or `install --check` could not do its job.
//!
//! Owns: [`InstallError`] and its [`Fault`] mapping.
//! Does not: decide anything; every other file of `install` returns it.
//! Invariants: no variant carries the config's or the token's contents.

use std::path::PathBuf;

use super::layout::InvalidDatasetName;
use super::systemd::CommandError;
use crate::fault::Fault;
use crate::fs::FsError;
use crate::middleware::{CallError, Method};

/// Why install / uninstall / check could not do its job.
#[derive(Debug, thiserror::Error)]
pub enum InstallError {
    #[error(transparent)]
    InvalidDataset(#[from] InvalidDatasetName),
    #[error("no pool is imported, so there is nowhere to install the agent")]
    NoPools,
    #[error(
        "cannot choose the install dataset: pools {} are imported and none (or more than one) \
         carries the device GUID; pass --dataset POOL/.truenas-agent",
        .pools.join(", ")
    )]
    AmbiguousPool { pools: Vec<String> },
    #[error("refusing to install onto {dataset}: {reason}")]
    LockedAtBoot { dataset: String, reason: String },
    #[error("refusing to install onto {dataset}: {reason}")]
    Unusable { dataset: String, reason: String },
    #[error("the first install needs {flag} ({why})")]
    MissingInput {
        flag: &'static str,
        why: &'static str,
    },
    #[error("agent config {path} is not valid TOML")]
    BadConfig {
        path: PathBuf,
        #[source]
        source: toml::de::Error,
    },
    #[error("agent config {path} would not be accepted by the agent")]
    InvalidConfig {
        path: PathBuf,
        #[source]
        source: crate::config::ConfigError,
    },
    #[error("token file {path} is empty")]
    EmptyToken { path: PathBuf },
    #[error("cannot encode the agent config")]
    EncodeConfig(#[source] toml::ser::Error),
    #[error("middleware call failed")]
    Middleware {
        #[source]
        source: CallError,
    },
    #[error("unexpected reply to `{method}`: {detail}")]
    UnexpectedReply { method: Method, detail: String },
    #[error("installer file operation failed")]
    File(#[from] FsError),
    #[error("systemd operation failed")]
    Systemd(#[from] CommandError),
}

impl InstallError {
    /// Who has to act.
    pub fn fault(&self) -> Fault {
        match self {
            InstallError::InvalidDataset(_)
            | InstallError::AmbiguousPool { .. }
            | InstallError::LockedAtBoot { .. }
            | InstallError::Unusable { .. }
            | InstallError::MissingInput { .. }
            | InstallError::BadConfig { .. }
            | InstallError::EmptyToken { .. } => Fault::Operator,
            InstallError::InvalidConfig { source, .. } => source.fault(),
            InstallError::NoPools | InstallError::File(_) => Fault::Nas,
            InstallError::Middleware { source } => source.fault(),
            InstallError::Systemd(source) => source.fault(),
            InstallError::EncodeConfig(_) | InstallError::UnexpectedReply { .. } => Fault::Bug,
        }
    }
}
