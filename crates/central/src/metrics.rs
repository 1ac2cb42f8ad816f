//! `GET /metrics`: the fleet and the server in the Prometheus text exposition format
//! (version 0.0.4).
//!
//! Owns: the metric names, their HELP/TYPE lines, their labels, and the rendering of a
//! [`Snapshot`] plus the process [`Counters`] and the database's totals.
//! Does not: authenticate (`web` does: operators only) or judge (`fleet` did).
//! Invariants: each family's samples are contiguous under one HELP and TYPE line; label
//! values are escaped (`\`, `"`, newline); per-device series carry `device` (and
//! `pool`) only — the org, location and host are on `truenas_central_device_info`, to
//! join with `group_left`; an age is absent, never a made-up number, when its event never
//! happened; no secret is a label or a value.
//! Limitations: ages are computed at scrape time from central's clock.

use std::fmt::Write as _;

use chrono::{DateTime, Utc};

use crate::fleet::{Kind, Verdict};
use crate::monitor::{Counters, DeviceView, Snapshot};
use truenas_agent::central::report::ConfigState;

/// The database's totals, read at scrape time.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Totals {
    pub reports_stored: u64,
    pub webhooks_pending: u64,
    pub webhooks_delivered: u64,
    pub webhooks_given_up: u64,
    /// `Some("sqlite")`, `Some("postgresql")`.
    pub backend: &'static str,
}

/// The content type of the exposition format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

struct Family {
    name: &'static str,
    help: &'static str,
    kind: &'static str,
    samples: Vec<(String, String)>,
}

impl Family {
    fn new(name: &'static str, kind: &'static str, help: &'static str) -> Self {
        Self {
            name,
            help,
            kind,
            samples: Vec::new(),
        }
    }

    fn add(&mut self, labels: &[(&str, &str)], value: &dyn std::fmt::Display) {
        let mut text = String::new();
        if !labels.is_empty() {
            text.push('{');
            for (i, (k, v)) in labels.iter().enumerate() {
                if i > 0 {
                    text.push(',');
                }
                let _ = write!(text, "{k}=\"{}\"", escape(v));
            }
            text.push('}');
        }
        self.samples.push((text, value.to_string()));
    }

    fn render(&self, out: &mut String) {
        let _ = writeln!(out, "# HELP {} {}", self.name, self.help);
        let _ = writeln!(out, "# TYPE {} {}", self.name, self.kind);
        for (labels, value) in &self.samples {
            let _ = writeln!(out, "{}{labels} {value}", self.name);
        }
    }
}

/// A label value, escaped.
fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Seconds from `at` to `now` (milliseconds kept).
fn age(now: DateTime<Utc>, at: DateTime<Utc>) -> String {
    #[allow(
        clippy::cast_precision_loss,
        reason = "milliseconds of an age fit f64's 53 bits for 285,000 years"
    )]
    let secs = (now - at).num_milliseconds() as f64 / 1000.0;
    format!("{secs}")
}

fn flag(value: bool) -> u8 {
    u8::from(value)
}

const CONFIG_STATES: [(ConfigState, &str); 5] = [
    (ConfigState::Applied, "applied"),
    (ConfigState::Failed, "failed"),
    (ConfigState::Refused, "refused"),
    (ConfigState::Pending, "pending"),
    (ConfigState::None, "none"),
];

/// The per-device families, filled device by device.
struct DeviceFamilies {
    info: Family,
    report_age: Family,
    silent: Family,
    reports: Family,
    dropped: Family,
    backup_age: Family,
    overdue: Family,
    failing: Family,
    checks_failing: Family,
    checks_unknown: Family,
    config_state: Family,
    applied: Family,
    published: Family,
    drift: Family,
    guid: Family,
    disabled: Family,
    problems: Family,
}

impl DeviceFamilies {
    #[rustfmt::skip]
    fn new() -> Self {
        Self {
            info: Family::new("truenas_central_device_info", "gauge",
                "Always 1: a registered device with its org, location, host and agent version."),
            report_age: Family::new("truenas_central_device_last_report_age_seconds", "gauge",
                "Seconds since central received the device's newest report (absent: never reported)."),
            silent: Family::new("truenas_central_device_silent", "gauge",
                "1 when no report came for longer than the report interval plus grace."),
            reports: Family::new("truenas_central_device_reports_total", "counter",
                "Reports stored for the device (before retention)."),
            dropped: Family::new("truenas_central_device_reports_dropped_total", "counter",
                "Reports the device's spool lost before delivery, as its reports announced them."),
            backup_age: Family::new("truenas_central_device_backup_last_success_age_seconds", "gauge",
                "Seconds since the pool's newest successful Cloud Sync backup (absent: never succeeded)."),
            overdue: Family::new("truenas_central_device_backup_overdue", "gauge",
                "1 when the pool has no successful backup since its last scheduled run plus grace."),
            failing: Family::new("truenas_central_device_backup_failing", "gauge",
                "1 when the pool's last backup run failed (or its task is missing)."),
            checks_failing: Family::new("truenas_central_device_checklist_failing", "gauge",
                "SOP checklist items failing in the device's newest report."),
            checks_unknown: Family::new("truenas_central_device_checklist_unknown", "gauge",
                "SOP checklist items the agent could not decide in its newest report."),
            config_state: Family::new("truenas_central_device_config_state", "gauge",
                "1 for the state of the device's document in its newest report (applied, failed, refused, pending, none)."),
            applied: Family::new("truenas_central_device_config_revision", "gauge",
                "The document revision the device reports (absent: none)."),
            published: Family::new("truenas_central_device_published_revision", "gauge",
                "The document revision published for the device (absent: none)."),
            drift: Family::new("truenas_central_device_drift", "gauge",
                "Drift entries (the box differed from its document) in the newest report."),
            guid: Family::new("truenas_central_device_guid_conflict", "gauge",
                "1 when the reported GUID differs from the document's or another device reports it too."),
            disabled: Family::new("truenas_central_device_disabled", "gauge",
                "1 when the device's token is disabled."),
            problems: Family::new("truenas_central_device_problems", "gauge",
                "Problems central sees on the device (0: none; see the dashboard for which)."),
        }
    }

    fn add(&mut self, d: &DeviceView, now: DateTime<Utc>) {
        let name = d.row.name.as_str();
        let device = [("device", name)];
        let st = &d.state;
        let or_empty = |v: &Option<String>| v.clone().unwrap_or_default();
        self.info.add(
            &[
                ("device", name),
                ("org_uuid", &or_empty(&d.row.org_uuid)),
                ("location_uuid", &or_empty(&d.row.location_uuid)),
                ("location_name", &or_empty(&d.row.location_name)),
                ("hostname", &or_empty(&st.hostname)),
                ("agent_version", &or_empty(&st.agent_version)),
            ],
            &1,
        );
        if let Some(at) = st.last_report_at {
            self.report_age.add(&device, &age(now, at));
        }
        self.silent.add(&device, &flag(d.standing.silent));
        self.reports.add(&device, &st.report_count);
        self.dropped.add(&device, &st.dropped.total);
        for p in &d.standing.pools {
            let labels = [("device", name), ("pool", p.pool.as_str())];
            if let Some(at) = p.last_success {
                self.backup_age.add(&labels, &age(now, at));
            }
            self.overdue.add(&labels, &flag(p.overdue));
            self.failing.add(&labels, &flag(p.failing));
        }
        self.checks_failing.add(&device, &st.checklist_failing);
        self.checks_unknown.add(&device, &st.checklist_unknown);
        for (state, label) in CONFIG_STATES {
            let on = flag(st.config_state == Some(state));
            self.config_state
                .add(&[("device", name), ("state", label)], &on);
        }
        if let Some(r) = st.config_revision {
            self.applied.add(&device, &r);
        }
        if let Some(r) = d.row.published_revision {
            self.published.add(&device, &r);
        }
        self.drift.add(&device, &st.drift);
        let conflict = d.standing.has(Kind::GuidMismatch) || d.standing.has(Kind::CloneSuspected);
        self.guid.add(&device, &flag(conflict));
        self.disabled.add(&device, &flag(d.row.disabled));
        let problems = d
            .standing
            .conditions
            .iter()
            .filter(|c| c.kind().verdict() == Verdict::Problem)
            .count();
        self.problems.add(&device, &problems);
    }

    fn render(&self, out: &mut String) {
        for family in [
            &self.info,
            &self.report_age,
            &self.silent,
            &self.reports,
            &self.dropped,
            &self.backup_age,
            &self.overdue,
            &self.failing,
            &self.checks_failing,
            &self.checks_unknown,
            &self.config_state,
            &self.applied,
            &self.published,
            &self.drift,
            &self.guid,
            &self.disabled,
            &self.problems,
        ] {
            family.render(out);
        }
    }
}

/// Renders the exposition.
pub fn render(snapshot: &Snapshot, counters: &Counters, totals: &Totals) -> String {
    let mut devices = DeviceFamilies::new();
    for d in &snapshot.devices {
        devices.add(d, snapshot.at);
    }
    let mut verdicts = Family::new(
        "truenas_central_devices",
        "gauge",
        "Registered devices by verdict (problem, unknown, notice, healthy).",
    );
    for verdict in [
        Verdict::Problem,
        Verdict::Unknown,
        Verdict::Notice,
        Verdict::Healthy,
    ] {
        let n = snapshot
            .devices
            .iter()
            .filter(|d| d.standing.verdict == verdict)
            .count();
        verdicts.add(&[("verdict", verdict.as_str())], &n);
    }
    let mut out = String::new();
    devices.render(&mut out);
    verdicts.render(&mut out);
    render_server(&mut out, counters, totals);
    out
}

#[rustfmt::skip]
fn render_server(out: &mut String, c: &Counters, t: &Totals) {
    let mut one = |name, kind, help, labels: &[(&str, &str)], value: u64| {
        let mut f = Family::new(name, kind, help);
        f.add(labels, &value);
        f.render(out);
    };
    one("truenas_central_build_info", "gauge", "Always 1: the running central's version and database engine.",
        &[("version", env!("CARGO_PKG_VERSION")), ("database", t.backend)], 1);
    one("truenas_central_reports_stored", "gauge", "Reports in the database (every device, after retention).",
        &[], t.reports_stored);
    one("truenas_central_webhooks_pending", "gauge", "Webhooks in the outbox neither delivered nor given up (every instance).",
        &[], t.webhooks_pending);
    one("truenas_central_webhooks_delivered", "gauge", "Webhooks in the outbox that were delivered (every instance).",
        &[], t.webhooks_delivered);
    one("truenas_central_webhooks_given_up", "gauge", "Webhooks in the outbox that were given up after their last attempt (every instance).",
        &[], t.webhooks_given_up);
    let get = Counters::get;
    one("truenas_central_webhook_deliveries_total", "counter", "Webhook POSTs this process delivered (2xx).",
        &[], get(&c.webhook_deliveries));
    one("truenas_central_webhook_failures_total", "counter", "Webhook POSTs this process saw fail (retried or given up).",
        &[], get(&c.webhook_failures));
    one("truenas_central_evaluations_total", "counter", "Fleet evaluations this process ran.",
        &[], get(&c.evaluations));
    one("truenas_central_evaluation_errors_total", "counter", "Fleet evaluations that failed (database errors).",
        &[], get(&c.evaluation_errors));
    one("truenas_central_announcements_total", "counter", "Devices whose announced state this process changed.",
        &[], get(&c.announcements));
    one("truenas_central_logins_total", "counter", "Dashboard logins through the form.",
        &[], get(&c.logins));
    one("truenas_central_login_failures_total", "counter", "Dashboard logins refused (unknown or disabled operator token).",
        &[], get(&c.login_failures));
    one("truenas_central_auth_failures_total", "counter", "Dashboard requests refused for authentication or CSRF.",
        &[], get(&c.auth_failures));
    one("truenas_central_actions_total", "counter", "Dashboard actions done (first backup, disable, enable).",
        &[], get(&c.actions));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_values_are_escaped() {
        let mut f = Family::new("m", "gauge", "h");
        f.add(&[("a", "x\"y\\z\nw")], &1);
        let mut out = String::new();
        f.render(&mut out);
        assert_eq!(
            out,
            "# HELP m h\n# TYPE m gauge\nm{a=\"x\\\"y\\\\z\\nw\"} 1\n"
        );
    }

    #[test]
    fn ages_keep_milliseconds() {
        let t = DateTime::UNIX_EPOCH;
        assert_eq!(age(t + chrono::Duration::milliseconds(1500), t), "1.5");
        assert_eq!(age(t + chrono::Duration::seconds(7200), t), "7200");
    }
}
