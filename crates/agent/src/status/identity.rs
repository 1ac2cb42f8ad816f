//! The device-identity part of `status`: the last `identity` run (`identity.json`) turned
//! into problems with next steps.
//!
//! Owns: the next step for each identity problem kind.
//! Does not: run identity rules or read ZFS (the identity module did, when it ran).
//! Invariants: a blocking identity problem is `Failing`, any other a `Warning`; every
//! message says when the identity check ran.
//! Limitations: shows the last recorded run, which may be older than the live GUID check
//! `status` makes from the pools' user properties.

use super::rfc3339;
use crate::health::{Area, Level, Problem};
use crate::identity::{IdentityReport, ProblemKind};

/// What to do about an identity problem.
fn next_step(kind: &ProblemKind) -> &'static str {
    match kind {
        ProblemKind::GuidAbsent { .. }
        | ProblemKind::NotBound { .. }
        | ProblemKind::CentralGuidDiffers { .. } => {
            "Run `truenas-agent identity ensure` (the daemon does it at start and on every document)."
        }
        ProblemKind::PoolMovedOrCloned { .. } => {
            "If this pool really moved to this NAS, confirm with `truenas-agent identity ensure \
             --rebind` (or let central confirm with `device.guid`); if this NAS is a clone of \
             another one, it must get its own identity: ask central (docs/identity.md)."
        }
        ProblemKind::SeveralPoolsSetRootPool { .. }
        | ProblemKind::SeveralPoolsCarryGuid { .. }
        | ProblemKind::RootPoolIsBootPool { .. }
        | ProblemKind::RootPoolNotImported { .. } => {
            "Set `root_pool` in the agent config (or central's `device.root_pool`) to the pool \
             that holds the device GUID, then run `truenas-agent identity ensure`."
        }
        ProblemKind::NoDataPool => "Import or create the data pool first (separate SOP).",
        ProblemKind::HostUnknown => {
            "Clone/move detection is off without /etc/hostid; nothing to do unless boxes are cloned."
        }
        ProblemKind::GuidOnOtherPool { .. }
        | ProblemKind::GuidAlsoOnOtherPools { .. }
        | ProblemKind::CorruptGuid { .. }
        | ProblemKind::GuidNotCanonical { .. }
        | ProblemKind::ReadBackMismatch { .. } => {
            "Do what the message says, then run `truenas-agent identity ensure` (docs/identity.md)."
        }
    }
}

/// Problems from the last identity run.
pub(super) fn problems(report: &IdentityReport, out: &mut Vec<Problem>) {
    let when = rfc3339(&report.checked_at);
    for p in &report.problems {
        out.push(Problem {
            level: if p.blocking {
                Level::Failing
            } else {
                Level::Warning
            },
            area: Area::Identity,
            subject: report.root_pool.clone(),
            message: format!("{} (identity check of {when})", p.message),
            next_step: next_step(&p.kind).to_owned(),
        });
    }
    if let Some(error) = &report.error {
        out.push(Problem {
            level: Level::Warning,
            area: Area::Identity,
            subject: None,
            message: format!("the last identity check ({when}) failed: {}", error.message),
            next_step: "Run `truenas-agent identity` to retry; see docs/identity.md.".to_owned(),
        });
    }
}
