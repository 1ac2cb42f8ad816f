//! Which device GUID the plan uses for folder names, and where it came from.
//!
//! Owns: [`resolve_device_guid`] (the document's `device.guid`, else the ZFS user
//! property on the root pool) with [`GuidSource`] and [`GuidError`].
//! Does not: read ZFS (the caller passes what it read) or write the property (`identity`).
//! Invariants: several pools carrying a GUID with no root pool named is an error, never a
//! guess.

use serde::Serialize;
use uuid::Uuid;

use crate::desired::{DesiredState, derive};
use crate::fault::Fault;
use crate::observe::Observed;

/// Where the device GUID used for folder names came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum GuidSource {
    /// `device.guid` in the document (authoritative: NinjaOne wins).
    Document,
    /// The ZFS user property on this pool's root dataset.
    RootPool(String),
}

/// Why no device GUID could be determined.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GuidError {
    #[error(
        "no device GUID yet: run `truenas-agent identity ensure` or set device.guid in the document"
    )]
    Missing,
    #[error(
        "the device GUID property on pool `{pool}` is not a UUID; fix it with `truenas-agent identity ensure` or set device.guid"
    )]
    NotAUuid { pool: String },
    #[error("several pools carry a device GUID ({}): set device.root_pool", .pools.join(", "))]
    Ambiguous { pools: Vec<String> },
    #[error("device.root_pool `{pool}` is not imported on this NAS")]
    RootPoolNotImported { pool: String },
}

impl GuidError {
    /// Who has to act.
    pub fn fault(&self) -> Fault {
        match self {
            GuidError::Missing
            | GuidError::NotAUuid { .. }
            | GuidError::Ambiguous { .. }
            | GuidError::RootPoolNotImported { .. } => Fault::Operator,
        }
    }
}

/// Resolves the device GUID: the document's `device.guid`; else the `property` on the
/// root pool (`device.root_pool`, else the agent configuration's `root_pool`, else the
/// one pool that carries it); else an error. The agent never writes the GUID here
/// (that is `identity`).
pub fn resolve_device_guid(
    desired: &DesiredState,
    observed: &Observed,
    property: &str,
    configured_root: Option<&str>,
) -> Result<(Uuid, GuidSource), GuidError> {
    if let Some(guid) = desired.device.guid {
        return Ok((guid, GuidSource::Document));
    }
    let read = |pool: &str, value: &str| {
        derive::parse_uuid(value)
            .map(|g| (g, GuidSource::RootPool(pool.to_owned())))
            .ok_or_else(|| GuidError::NotAUuid {
                pool: pool.to_owned(),
            })
    };
    if let Some(root) = desired.device.root_pool.as_deref().or(configured_root) {
        let pool = observed
            .pool(root)
            .ok_or_else(|| GuidError::RootPoolNotImported {
                pool: root.to_owned(),
            })?;
        return match pool.user_properties.get(property) {
            Some(value) if value != "-" && !value.is_empty() => read(root, value),
            _ => Err(GuidError::Missing),
        };
    }
    let carriers: Vec<(&str, &str)> = observed
        .pools
        .iter()
        .filter_map(|p| {
            p.user_properties
                .get(property)
                .filter(|v| *v != "-" && !v.is_empty())
                .map(|v| (p.name.as_str(), v.as_str()))
        })
        .collect();
    match carriers.as_slice() {
        [] => Err(GuidError::Missing),
        [(pool, value)] => read(pool, value),
        many => Err(GuidError::Ambiguous {
            pools: many.iter().map(|(p, _)| (*p).to_owned()).collect(),
        }),
    }
}
