//! Builds the report the daemon queues for central (contract §4) from what it remembers.
//!
//! Owns: [`build`] — which part of the report comes from where: `agent` from the document
//! being enforced, `device` from the last assessment with the identity run on top,
//! `config` from the last pass or refusal (identity problems added to its errors),
//! `health` and `checklist` from the last assessment.
//! Does not: encode, scrub or send (the outbox does, with the document's secrets).
//! Invariants: pure; a part that is unknown stays empty/`null` rather than guessed.
//! Limitations: the report carries the state at build time; a report queued during a
//! long outage says what was true then, not when it arrives.

use chrono::{DateTime, Utc};

use super::memory::Memory;
use crate::central::report::{Mode, Report};

/// The report for `memory` at `now`.
pub(crate) fn build(memory: &Memory, now: DateTime<Utc>) -> Report {
    let mut report = Report::new(now);
    report.agent.mode = memory.enforcing.map_or(Mode::Enforce, |(_, mode)| mode);
    report.agent.config_source = memory.config_source;
    if let Some(assessed) = &memory.assessed {
        report.device.clone_from(&assessed.device);
        report.health.clone_from(&assessed.health);
        report.checklist.clone_from(&assessed.checklist);
    }
    report.config = memory.config_part();
    if let Some(identity) = &memory.identity {
        report.device.guid.clone_from(&identity.guid);
        report.device.guid_source = identity.guid_source;
        if identity.root_pool.is_some() {
            report.device.root_pool.clone_from(&identity.root_pool);
        }
        for problem in &identity.problems {
            if !report.config.errors.contains(problem) {
                report.config.errors.push(problem.clone());
            }
        }
    }
    report
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::central::report::{
        ConfigIssue, ConfigSource, ConfigState, DeviceSection, GuidSource, PoolState,
    };
    use crate::daemon::engine::{Assessed, IdentityPass};

    #[test]
    fn parts_come_from_where_they_are_known() {
        let mut m = Memory::default();
        let empty = build(&m, Utc::now());
        assert_eq!(empty.config.state, ConfigState::None);
        assert_eq!(empty.agent.config_source, ConfigSource::None);
        assert_eq!(empty.device.guid, None);

        m.config_source = ConfigSource::Central;
        m.enforcing = Some((4, Mode::ReportOnly));
        m.config.revision = Some(4);
        m.config.state = ConfigState::Pending;
        m.assessed = Some(Assessed {
            device: DeviceSection {
                hostname: Some("nas01".into()),
                root_pool: Some("pool0".into()),
                pools: vec![PoolState {
                    name: "pool0".into(),
                    healthy: true,
                }],
                ..DeviceSection::default()
            },
            ..Assessed::default()
        });
        let problem = ConfigIssue {
            path: "device.root_pool".into(),
            message: "several pools and none carries the GUID".into(),
        };
        m.identity = Some(IdentityPass {
            guid: Some("9babab19-acc0-4587-aa05-ccd8103a1148".into()),
            guid_source: Some(GuidSource::Central),
            problems: vec![problem.clone()],
            ..IdentityPass::default()
        });
        let r = build(&m, Utc::now());
        assert_eq!(r.agent.mode, Mode::ReportOnly);
        assert_eq!(r.agent.config_source, ConfigSource::Central);
        assert_eq!(r.device.hostname.as_deref(), Some("nas01"));
        assert_eq!(r.device.root_pool.as_deref(), Some("pool0"), "kept");
        assert_eq!(r.device.guid_source, Some(GuidSource::Central));
        assert_eq!(r.config.revision, Some(4));
        assert_eq!(r.config.errors, vec![problem]);
    }
}
