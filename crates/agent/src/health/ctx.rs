//! What the per-area evaluators are given: the pools in scope and the shared inputs.
//!
//! Owns: [`Scope`] (the managed pools: the document's, else the ownership record's, else
//! every imported data pool) and [`Ctx`].
//! Does not: evaluate anything.
//! Invariants: `boot-pool` is never a managed pool by default.

use chrono::{DateTime, FixedOffset, Utc};

use super::classify::Redactor;
use super::model::Policy;
use super::observe::HealthObservations;
use crate::desired::DesiredState;
use crate::observe::Observed;
use crate::plan::Ownership;

/// Which pools are managed and which tasks are theirs: the document's view or, without
/// a document, the NAS's own.
pub(super) struct Scope<'a> {
    pub(super) desired: Option<&'a DesiredState>,
    /// Managed pools that are imported.
    pub(super) pools: Vec<String>,
    /// Listed by the document but not imported.
    pub(super) missing: Vec<String>,
}

impl<'a> Scope<'a> {
    pub(super) fn from_desired(desired: &'a DesiredState, observed: &Observed) -> Self {
        let (pools, missing) = match &desired.pools {
            Some(listed) => listed
                .iter()
                .cloned()
                .partition(|p| observed.pool(p).is_some()),
            None => (default_pools(observed), Vec::new()),
        };
        Self {
            desired: Some(desired),
            pools,
            missing,
        }
    }

    /// Without a document: the pools the ownership record names, else every imported
    /// pool except `boot-pool`.
    pub(super) fn from_nas(observed: &Observed, owned: &Ownership) -> Self {
        let mut recorded: Vec<String> = owned
            .cloud_sync
            .keys()
            .chain(owned.snapshot_tasks.keys())
            .cloned()
            .collect();
        recorded.sort();
        recorded.dedup();
        let (pools, missing) = if recorded.is_empty() {
            (default_pools(observed), Vec::new())
        } else {
            recorded
                .into_iter()
                .partition(|p| observed.pool(p).is_some())
        };
        Self {
            desired: None,
            pools,
            missing,
        }
    }
}

pub(super) fn default_pools(observed: &Observed) -> Vec<String> {
    observed
        .pools
        .iter()
        .map(|p| p.name.clone())
        .filter(|n| n != "boot-pool")
        .collect()
}

/// Shared inputs of the per-area evaluators.
pub(super) struct Ctx<'a> {
    pub(super) observed: &'a Observed,
    pub(super) obs: &'a HealthObservations,
    pub(super) now: DateTime<Utc>,
    pub(super) offset: FixedOffset,
    pub(super) policy: &'a Policy,
    pub(super) redactor: &'a Redactor,
    pub(super) desired: Option<&'a DesiredState>,
}

impl Ctx<'_> {
    pub(super) fn bucket(&self) -> Option<&str> {
        self.desired.map(|d| d.bucket.as_str())
    }
}
