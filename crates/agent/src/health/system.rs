//! PURE: pools, SNMP and alerts — the parts of health that are not per-task.
//!
//! Owns: the SOP 1.2 SNMP rules (v3 only, SHA/AES, community blank, user, running, at
//! boot), pool health, and which alerts become problems.
//! Does not: read anything (inputs are `Observed` and the observed alerts).
//! Invariants: the SNMP community is shown only redacted; task alerts
//! (`CloudSyncTaskFailed`, `SnapshotFailed`, `TaskLocked`) never become problems of their
//! own — the task verdicts explain them.
//! Limitations: SNMP credentials are compared by user name only (secrets are write-only
//! to the agent: the SOP engine fingerprints them).

use super::observe::Alert;
use super::{Area, Ctx, Level, PoolHealth, Problem, Scope, SnmpHealth};
use crate::observe::Observed;

/// Every imported pool, plus pools the document lists that are not imported.
pub(crate) fn pools(scope: &Scope<'_>, observed: &Observed) -> Vec<PoolHealth> {
    let mut out: Vec<PoolHealth> = observed
        .pools
        .iter()
        .map(|p| PoolHealth {
            name: p.name.clone(),
            imported: true,
            healthy: p.healthy,
            status: p.status.clone(),
            managed: scope.pools.contains(&p.name),
            level: if p.healthy { Level::Ok } else { Level::Failing },
        })
        .collect();
    out.extend(scope.missing.iter().map(|name| PoolHealth {
        name: name.clone(),
        imported: false,
        healthy: false,
        status: "NOT IMPORTED".to_owned(),
        managed: true,
        level: Level::Failing,
    }));
    out
}

pub(crate) fn pool_problems(pools: &[PoolHealth], out: &mut Vec<Problem>) {
    for pool in pools.iter().filter(|p| p.level != Level::Ok) {
        let (message, next_step) = if pool.imported {
            (
                format!("pool {} is {} (not healthy)", pool.name, pool.status),
                format!(
                    "Open Storage → {} → status: replace the failed disk or clear the error, \
                     then run a scrub. Backups of a damaged pool may be incomplete.",
                    pool.name
                ),
            )
        } else {
            (
                format!(
                    "pool {} is listed in the desired state but not imported on this NAS",
                    pool.name
                ),
                "Import the pool (Storage → Import Pool), or have central remove it from the \
                 document's `pools`."
                    .to_owned(),
            )
        };
        out.push(Problem {
            level: pool.level,
            area: Area::Pool,
            subject: Some(pool.name.clone()),
            message,
            next_step,
        });
    }
}

/// SNMP against SOP 1.2: v3 on, SHA, AES, community blank, running, started at boot.
pub(crate) fn snmp(ctx: &Ctx<'_>) -> SnmpHealth {
    let snmp = &ctx.observed.snmp;
    let service = &ctx.observed.snmp_service;
    let wanted_user = ctx
        .desired
        .and_then(|d| d.snmp.as_ref())
        .map(|s| &s.username);
    let username_matches = wanted_user.map(|u| *u == snmp.v3_username);
    let mut findings = Vec::new();
    if !snmp.v3 {
        findings.push(
            "SNMPv3 is off: the box answers SNMPv1/v2c, which DTC policy forbids (SOP §4)"
                .to_owned(),
        );
    }
    if !snmp.community.trim().is_empty() {
        findings.push(format!(
            "the v1/v2c community is set (\"{}\"); the SOP wants it blank",
            ctx.redactor.scrub(&snmp.community)
        ));
    }
    if snmp.v3 && snmp.v3_authtype != "SHA" {
        findings.push(format!(
            "authentication type is `{}`, the SOP wants SHA",
            if snmp.v3_authtype.is_empty() {
                "none"
            } else {
                &snmp.v3_authtype
            }
        ));
    }
    if snmp.v3 && snmp.v3_privproto.as_deref() != Some("AES") {
        findings.push(format!(
            "privacy protocol is `{}`, the SOP wants AES",
            snmp.v3_privproto.as_deref().unwrap_or("none")
        ));
    }
    if username_matches == Some(false) {
        findings.push("the SNMPv3 username differs from the one in the desired state".to_owned());
    }
    if service.state != "RUNNING" {
        findings.push(format!(
            "the SNMP service is {}",
            if service.state.is_empty() {
                "not listed"
            } else {
                &service.state
            }
        ));
    }
    let not_at_boot = !service.enable;
    let level = match (findings.is_empty(), not_at_boot) {
        (false, _) => Level::Failing,
        (true, true) => Level::Warning,
        (true, false) => Level::Ok,
    };
    if not_at_boot {
        findings.push("the SNMP service does not start at boot (Auto-start off)".to_owned());
    }
    let next_step = (level != Level::Ok).then(|| {
        "Set SNMP as in SOP 1.2 (System Settings → Services → SNMP: SNMP v3 Support on, SHA, \
         AES, Community blank, credentials from IT Glue \"TrueNAS — NMS Credentials\"), start the \
         service and tick Start Automatically — or run `truenas-agent apply` with the \
         document's `snmp` section."
            .to_owned()
    });
    SnmpHealth {
        v3: snmp.v3,
        community_empty: snmp.community.trim().is_empty(),
        auth_type: snmp.v3_authtype.clone(),
        privacy_protocol: snmp.v3_privproto.clone(),
        username_matches,
        service_state: service.state.clone(),
        service_enabled: service.enable,
        level,
        findings,
        next_step,
    }
}

pub(crate) fn snmp_problem(snmp: &SnmpHealth, out: &mut Vec<Problem>) {
    if snmp.level == Level::Ok {
        return;
    }
    out.push(Problem {
        level: snmp.level,
        area: Area::Snmp,
        subject: None,
        message: format!("SNMP: {}", snmp.findings.join("; ")),
        next_step: snmp.next_step.clone().unwrap_or_default(),
    });
}

/// Relevant alerts with their texts redacted.
pub(crate) fn alerts(ctx: &Ctx<'_>) -> Vec<Alert> {
    ctx.obs
        .alerts
        .iter()
        .flatten()
        .map(|a| Alert {
            text: ctx.redactor.scrub(&a.text),
            ..a.clone()
        })
        .collect()
}

/// Alerts that task health does not already explain become warnings. Task alerts
/// (`CloudSyncTaskFailed`, `SnapshotFailed`, `TaskLocked`) are covered by the tasks'
/// own verdicts — and may be left over from a run that only hit Object Lock.
pub(crate) fn alert_problems(alerts: &[Alert], out: &mut Vec<Problem>) {
    const COVERED: &[&str] = &["CloudSyncTaskFailed", "SnapshotFailed", "TaskLocked"];
    for alert in alerts
        .iter()
        .filter(|a| !COVERED.contains(&a.klass.as_str()))
    {
        let next_step = match alert.klass.as_str() {
            "ApiKeyRevoked" => {
                "An API key was revoked (used over an insecure transport?). If it is \
                                the agent's, create a new key and use it only over the unix socket \
                                or wss:// (see docs/operations.md)."
                    .to_owned()
            }
            "SnapshotCount" | "SnapshotTotalCount" => "Too many snapshots: check the snapshot \
                tasks' lifetimes (SOP: 2 weeks) and remove stray manual snapshots."
                .to_owned(),
            _ => {
                "Read the alert in the TrueNAS UI (bell icon), fix it, then dismiss it.".to_owned()
            }
        };
        out.push(Problem {
            level: Level::Warning,
            area: Area::Alert,
            subject: Some(alert.klass.clone()),
            message: format!("TrueNAS alert ({}): {}", alert.level, alert.text),
            next_step,
        });
    }
}
