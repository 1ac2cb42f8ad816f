//! `truenas-central devices`: what every device last said, in one view.
//!
//! Owns: [`DeviceSummary`] (from the database: the device row, its derived state — last
//! report time, drop tally, reports stored — and its newest report's details) and the text
//! rendering.
//! Does not: read anything but the database; no network.
//! Invariants: pure given the database contents and `now`.
//! Limitations: a device that never reported shows only its published revision; the
//! details come from the newest report by the agent's clock (`created_at`), the last
//! report time from central's (the most recent receipt of any report).

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::db::{Db, DbError};
use truenas_agent::central::report::{ConfigState, Report, format_time};

/// A snapshot is stale when the newest one is older than this (the SOP schedule is hourly).
pub const SNAPSHOT_STALE_AFTER_S: u64 = 2 * 3600;

/// One device's state as central sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DeviceSummary {
    pub name: String,
    pub disabled: bool,
    /// Revision of the document currently published for it.
    pub published_revision: Option<u64>,
    pub guid: Option<String>,
    pub hostname: Option<String>,
    /// When central received the newest report.
    pub last_report_at: Option<DateTime<Utc>>,
    pub agent_version: Option<String>,
    pub config_revision: Option<u64>,
    pub config_state: Option<ConfigState>,
    /// `path: message` of each config error in the newest report.
    pub config_errors: Vec<String>,
    pub health: HealthSummary,
    /// Ids of the failing checklist items.
    pub failing_checks: Vec<String>,
    /// Reports the agent lost (spool full or damaged) announced by the newest report.
    pub dropped_reports: u64,
    /// Reports the agent lost before they reached central, over every stored report.
    pub dropped_reports_total: u64,
    /// When central received the newest report announcing a loss.
    pub last_drop_at: Option<DateTime<Utc>>,
    /// Reports stored for it over time (retention deletes old ones but not this count).
    pub reports_received: u64,
}

/// Task health in a few numbers.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct HealthSummary {
    pub cloud_sync_tasks: usize,
    /// Pools whose Cloud Sync task failed, is overdue or reports an error class.
    pub cloud_sync_failing: Vec<String>,
    pub snapshot_tasks: usize,
    /// Pools whose newest snapshot is older than two hours.
    pub snapshots_stale: Vec<String>,
    /// Pools whose snapshot task has not taken a snapshot yet (a new task waits for its
    /// first hourly fire: the agent's `status` shows it as PENDING, a warning — not
    /// stale).
    pub snapshots_none_yet: Vec<String>,
    /// Pools the agent reports without a snapshot task.
    pub snapshots_no_task: Vec<String>,
}

/// Summaries of every registered device, by name.
pub async fn summarize(db: &Db) -> Result<Vec<DeviceSummary>, DbError> {
    let rows = db.device_rows().await?;
    let states = db.device_states().await?;
    let mut out = Vec::with_capacity(rows.len());
    for row in rows {
        let state = states.iter().find(|s| s.device == row.name);
        let latest = match state {
            Some(s) if s.report_count > 0 => db.latest_report(&row.name).await?,
            _ => None,
        };
        let mut s = summary(
            row.name.clone(),
            row.disabled,
            row.published_revision,
            latest.map(|l| (l.received_at, l.report)),
        );
        if let Some(state) = state {
            s.last_report_at = state.last_report_at.or(s.last_report_at);
            s.dropped_reports_total = state.dropped.total;
            s.last_drop_at = state.dropped.last_at;
            s.reports_received = state.report_count;
        }
        out.push(s);
    }
    Ok(out)
}

fn summary(
    name: String,
    disabled: bool,
    published_revision: Option<u64>,
    latest: Option<(DateTime<Utc>, Report)>,
) -> DeviceSummary {
    let mut s = DeviceSummary {
        name,
        disabled,
        published_revision,
        guid: None,
        hostname: None,
        last_report_at: None,
        agent_version: None,
        config_revision: None,
        config_state: None,
        config_errors: Vec::new(),
        health: HealthSummary::default(),
        failing_checks: Vec::new(),
        dropped_reports: 0,
        dropped_reports_total: 0,
        last_drop_at: None,
        reports_received: 0,
    };
    let Some((received_at, r)) = latest else {
        return s;
    };
    s.guid.clone_from(&r.device.guid);
    s.hostname.clone_from(&r.device.hostname);
    s.last_report_at = Some(received_at);
    s.agent_version = Some(r.agent.version.clone());
    s.config_revision = r.config.revision;
    s.config_state = Some(r.config.state);
    s.config_errors = r
        .config
        .errors
        .iter()
        .map(|e| format!("{}: {}", e.path, e.message))
        .collect();
    s.health = HealthSummary {
        cloud_sync_tasks: r.health.cloud_sync.len(),
        cloud_sync_failing: r
            .health
            .cloud_sync
            .iter()
            .filter(|c| {
                c.overdue
                    || c.error_class.is_some()
                    || matches!(c.state.as_str(), "FAILED" | "ERROR" | "ABORTED" | "MISSING")
            })
            .map(|c| c.pool.clone())
            .collect(),
        snapshot_tasks: r.health.snapshots.len(),
        snapshots_stale: r
            .health
            .snapshots
            .iter()
            .filter(|t| {
                t.latest_age_s
                    .is_some_and(|age| age > SNAPSHOT_STALE_AFTER_S)
            })
            .map(|t| t.pool.clone())
            .collect(),
        snapshots_none_yet: r
            .health
            .snapshots
            .iter()
            .filter(|t| t.task_id.is_some() && t.latest_age_s.is_none())
            .map(|t| t.pool.clone())
            .collect(),
        snapshots_no_task: r
            .health
            .snapshots
            .iter()
            .filter(|t| t.task_id.is_none() && t.latest_age_s.is_none())
            .map(|t| t.pool.clone())
            .collect(),
    };
    s.failing_checks = r.failing_checks().map(|c| c.id.clone()).collect();
    s.dropped_reports = r.agent.dropped_reports;
    s
}

/// The text view: one block per device.
pub fn render(devices: &[DeviceSummary], now: DateTime<Utc>) -> String {
    if devices.is_empty() {
        return "no devices registered\n".to_owned();
    }
    let mut out = String::new();
    for d in devices {
        out.push_str(&render_one(d, now));
    }
    out
}

fn render_one(d: &DeviceSummary, now: DateTime<Utc>) -> String {
    use std::fmt::Write as _;
    let opt = |v: &Option<String>| v.clone().unwrap_or_else(|| "-".to_owned());
    let rev = |v: Option<u64>| v.map_or_else(|| "-".to_owned(), |r| r.to_string());
    let list = |v: &[String]| {
        if v.is_empty() {
            "none".to_owned()
        } else {
            v.join(", ")
        }
    };
    let last = d.last_report_at.map_or_else(
        || "never".to_owned(),
        |at| format!("{} ({} ago)", format_time(&at), age(now, at)),
    );
    let state = d
        .config_state
        .map_or_else(|| "-".to_owned(), |s| format!("{s:?}").to_lowercase());
    let h = &d.health;
    // Writing into a String cannot fail.
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{}{}\n  guid: {}  host: {}  agent: {}\n  last report: {last}",
        d.name,
        if d.disabled { " [disabled]" } else { "" },
        opt(&d.guid),
        opt(&d.hostname),
        opt(&d.agent_version),
    );
    let _ = writeln!(
        out,
        "  config: revision {} {state} (published {})",
        rev(d.config_revision),
        rev(d.published_revision)
    );
    for e in &d.config_errors {
        let _ = writeln!(out, "    error: {e}");
    }
    let mut snapshots = format!("stale: {}", list(&h.snapshots_stale));
    if !h.snapshots_none_yet.is_empty() {
        let _ = write!(
            snapshots,
            ", no snapshot yet (pending): {}",
            h.snapshots_none_yet.join(", ")
        );
    }
    if !h.snapshots_no_task.is_empty() {
        let _ = write!(snapshots, ", no task: {}", h.snapshots_no_task.join(", "));
    }
    let _ = writeln!(
        out,
        "  health: cloud sync {} task(s), failing: {}; snapshots {} task(s), {snapshots}",
        h.cloud_sync_tasks,
        list(&h.cloud_sync_failing),
        h.snapshot_tasks,
    );
    let _ = writeln!(out, "  failing checklist: {}", list(&d.failing_checks));
    let lost = match (d.dropped_reports_total, d.last_drop_at) {
        (0, _) => "none".to_owned(),
        (n, Some(at)) => format!(
            "{n} (spool full or damaged on the NAS), last announced {} ({} ago)",
            format_time(&at),
            age(now, at)
        ),
        (n, None) => format!("{n} (spool full or damaged on the NAS)"),
    };
    let _ = writeln!(out, "  reports lost before delivery: {lost}");
    out
}

fn age(now: DateTime<Utc>, at: DateTime<Utc>) -> String {
    let secs = (now - at).num_seconds().max(0);
    match secs {
        0..60 => format!("{secs}s"),
        60..3600 => format!("{}m", secs / 60),
        3600..86_400 => format!("{}h", secs / 3600),
        _ => format!("{}d", secs / 86_400),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone as _;
    use truenas_agent::central::report::{
        CheckStatus, ChecklistItem, CloudSyncHealth, ConfigIssue, SnapshotHealth,
    };

    #[test]
    fn summary_and_text() {
        let now = Utc.with_ymd_and_hms(2026, 11, 23, 10, 5, 0).unwrap();
        let mut r = Report::new(now);
        r.device.guid = Some("9babab19-acc0-4587-aa05-ccd8103a1148".into());
        r.config.revision = Some(7);
        r.config.state = ConfigState::Failed;
        r.config.errors.push(ConfigIssue {
            path: "cloud_sync[pool1]".into(),
            message: "middleware refused".into(),
        });
        r.health.cloud_sync = vec![
            CloudSyncHealth {
                pool: "pool0".into(),
                state: "SUCCESS".into(),
                ..CloudSyncHealth::default()
            },
            CloudSyncHealth {
                pool: "pool1".into(),
                state: "FAILED".into(),
                ..CloudSyncHealth::default()
            },
        ];
        r.health.snapshots = vec![SnapshotHealth {
            pool: "pool0".into(),
            latest_age_s: Some(9000),
            ..SnapshotHealth::default()
        }];
        r.checklist.push(ChecklistItem {
            id: "snmp.v3_only".into(),
            title: "SNMPv3 only".into(),
            status: CheckStatus::Fail,
            detail: String::new(),
        });
        r.agent.dropped_reports = 2;
        let s = summary("nas-01".into(), false, Some(8), Some((now, r)));
        assert_eq!(s.health.cloud_sync_failing, ["pool1"]);
        assert_eq!(s.health.snapshots_stale, ["pool0"]);
        assert_eq!(s.failing_checks, ["snmp.v3_only"]);
        let text = render(&[s], now + chrono::Duration::minutes(3));
        assert!(
            text.contains("nas-01\n  guid: 9babab19-acc0-4587-aa05-ccd8103a1148"),
            "{text}"
        );
        assert!(
            text.contains("last report: 2026-11-23T10:05:00Z (3m ago)"),
            "{text}"
        );
        assert!(
            text.contains("config: revision 7 failed (published 8)"),
            "{text}"
        );
        assert!(
            text.contains("error: cloud_sync[pool1]: middleware refused"),
            "{text}"
        );
        assert!(
            text.contains("failing: pool1; snapshots 1 task(s), stale: pool0"),
            "{text}"
        );
        assert!(text.contains("failing checklist: snmp.v3_only"), "{text}");
        assert!(
            text.contains("reports lost before delivery: none"),
            "summary() alone knows no tally: {text}"
        );
        let mut lost = summary("nas-03".into(), false, None, None);
        lost.dropped_reports_total = 7;
        lost.last_drop_at = Some(now - chrono::Duration::days(2));
        let text = render(&[lost], now);
        assert!(
            text.contains(
                "reports lost before delivery: 7 (spool full or damaged on the NAS), last \
                 announced 2026-11-21T10:05:00Z (2d ago)"
            ),
            "{text}"
        );
        // A new snapshot task that has not fired yet is pending, not stale (the agent's
        // `status` says PENDING); a pool without a task says so.
        let mut fresh = Report::new(now);
        fresh.health.snapshots = vec![
            SnapshotHealth {
                pool: "pool0".into(),
                task_id: Some(3),
                ..SnapshotHealth::default()
            },
            SnapshotHealth {
                pool: "pool1".into(),
                ..SnapshotHealth::default()
            },
        ];
        let s = summary("nas-03".into(), false, Some(1), Some((now, fresh)));
        assert!(s.health.snapshots_stale.is_empty(), "{:?}", s.health);
        assert_eq!(s.health.snapshots_none_yet, ["pool0"]);
        assert_eq!(s.health.snapshots_no_task, ["pool1"]);
        let text = render(&[s], now);
        assert!(
            text.contains("stale: none, no snapshot yet (pending): pool0, no task: pool1"),
            "{text}"
        );
        let never = summary("nas-02".into(), true, None, None);
        let text = render(&[never], now);
        assert!(text.contains("nas-02 [disabled]"), "{text}");
        assert!(text.contains("last report: never"), "{text}");
    }
}
