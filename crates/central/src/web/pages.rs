//! PURE: the dashboard's pages as HTML strings — the login form, the fleet (worst first,
//! filterable by org and location) and one device (what `truenas-agent status` would
//! show, from its newest report; its history; its document, masked; its actions).
//!
//! Owns: what each page says and in which order, the sentences that describe each
//! condition, and the element ids the tests and the screenshots rely on (`#fleet`,
//! `#device`, `#conditions`, `#actions`, `#status`, `#checklist`, `#changes`,
//! `#history`, `#document`).
//! Does not: read the database or the clock (the caller passes a snapshot, the reports
//! and `now`), authenticate, or mask documents (`actions::masked` does; this module
//! prints what it is given).
//! Invariants: every value from the database, a report or the request is written through
//! `html::esc`; device names in links are escaped too (they are restricted to
//! `[A-Za-z0-9._-]` anyway); forms that change something carry the session's CSRF token.
//! Limitations: the history shows the newest 50 reports.

use std::fmt::Write as _;

use chrono::{DateTime, Utc};

use super::html::{ago, esc, frame, span, when};
use crate::db::Document;
use crate::fleet::{Condition, Judge, Policy, Standing, Verdict};
use crate::monitor::{DeviceView, Snapshot};
use crate::store::StoredReport;
use truenas_agent::central::report::{CheckStatus, ConfigState, Report, format_time};

/// Who is looking (for the header and the forms).
#[derive(Debug, Clone, Copy)]
pub struct Viewer<'a> {
    pub operator: &'a str,
    /// The session's CSRF token (empty for bearer-token requests).
    pub csrf: &'a str,
}

/// The fleet page's filter (`?org=…&location=…`; empty means all).
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(default)]
pub struct Filter {
    pub org: String,
    pub location: String,
}

impl Filter {
    fn keeps(&self, d: &DeviceView) -> bool {
        let matches =
            |want: &str, have: Option<&String>| want.is_empty() || have.is_some_and(|h| h == want);
        matches(&self.org, d.row.org_uuid.as_ref())
            && matches(&self.location, d.row.location_uuid.as_ref())
    }
}

/// The login page; `error`: why the last attempt failed.
pub fn login(now: DateTime<Utc>, error: Option<&str>) -> String {
    let mut body = String::from("<section class=\"login\"><h1>Log in</h1>");
    if let Some(e) = error {
        let _ = write!(body, "<p class=\"error\" id=\"login-error\">{}</p>", esc(e));
    }
    body.push_str(
        "<form method=\"post\" action=\"/login\">\
         <label for=\"token\">Operator token</label>\
         <input id=\"token\" name=\"token\" type=\"password\" autocomplete=\"current-password\" required>\
         <button id=\"login\" type=\"submit\">Log in</button></form>\
         <p class=\"muted\">Create a token with <code>truenas-central operator add</code>. \
         Device tokens do not open the dashboard.</p></section>",
    );
    frame("Log in", None, now, &body)
}

/// One sentence per condition.
pub fn describe(c: &Condition, now: DateTime<Utc>, policy: &Policy) -> String {
    let since =
        |at: Option<DateTime<Utc>>| at.map_or_else(|| "never".to_owned(), |at| ago(now, at));
    match c {
        Condition::BackupFailing {
            pool,
            state,
            error_class,
        } => match error_class {
            Some(class) => format!("Backup of pool {pool} failing: last run {state} ({class})"),
            None => format!("Backup of pool {pool} failing: last run {state}"),
        },
        Condition::BackupOverdue {
            pool,
            last_success,
            deadline,
            judged_by,
        } => {
            let why = match (judged_by, deadline) {
                (Judge::Agent, _) => "the agent says so".to_owned(),
                (Judge::Clock, Some(d)) => format!(
                    "no success since the scheduled run of {} plus {} grace",
                    format_time(d).replace('T', " "),
                    span(policy.backup_grace)
                ),
                (Judge::Clock, None) => "by central's clock".to_owned(),
            };
            format!(
                "Backup of pool {pool} overdue: last success {}; {why}",
                since(*last_success)
            )
        }
        Condition::Silent {
            last_report: Some(at),
        } => format!(
            "Silent: no report for {} (expected at least every {} plus {} grace)",
            span(now - *at),
            span(policy.report_interval),
            span(policy.silent_grace)
        ),
        Condition::Silent { last_report: None } => {
            "Silent: registered but never reported".to_owned()
        }
        Condition::DocumentRefused { errors } => {
            format!("Refusing its document ({errors} problem(s); see the status below)")
        }
        Condition::ApplyFailed { errors } => {
            format!("Applying its document failed ({errors} error(s); see the status below)")
        }
        Condition::Drifted { entries } => {
            format!("Drifted: {entries} object(s) differed from the document")
        }
        Condition::GuidMismatch { reported, expected } => {
            format!("GUID mismatch: the device reports {reported}, its document says {expected}")
        }
        Condition::CloneSuspected { twins } => format!(
            "Clone suspected: the same GUID is reported by {}",
            twins.join(", ")
        ),
        Condition::ChecklistFailing { items } => format!("{items} SOP checklist item(s) failing"),
        Condition::ReportsDropped { total, last_at } => format!(
            "{total} report(s) lost by the device's spool before delivery (last announced {})",
            since(*last_at)
        ),
        Condition::AwaitingFirstReport => "Registered; waiting for its first report".to_owned(),
        Condition::NoBackupReported => {
            "Its newest report names no Cloud Sync task: the backup cannot be judged".to_owned()
        }
        Condition::Disabled => "Its token is disabled: the device gets 403".to_owned(),
        Condition::RevisionPending { published, applied } => format!(
            "Revision {published} is published; the device reports {}",
            applied.map_or_else(|| "none".to_owned(), |a| format!("revision {a}"))
        ),
        Condition::ChecklistUnknown { items } => {
            format!("{items} SOP checklist item(s) could not be decided")
        }
    }
}

fn badges(out: &mut String, standing: &Standing) {
    let mut seen = Vec::new();
    for c in &standing.conditions {
        let kind = c.kind();
        if seen.contains(&kind) {
            continue;
        }
        seen.push(kind);
        let _ = write!(
            out,
            "<span class=\"badge {}\">{}</span>",
            kind.verdict().as_str(),
            esc(kind.label())
        );
    }
    if standing.conditions.is_empty() {
        out.push_str("<span class=\"badge healthy\">healthy</span>");
    }
}

fn pools_cell(out: &mut String, standing: &Standing) {
    if standing.pools.is_empty() {
        out.push_str("<span class=\"muted\">no backup reported</span>");
    }
    for p in &standing.pools {
        let age = p
            .age
            .map_or_else(|| "never".to_owned(), |a| format!("{} ago", span(a)));
        let _ = write!(
            out,
            "<span class=\"pool{}\" title=\"last run {}\">{}: {}</span>",
            if p.failing || p.overdue { " bad" } else { "" },
            esc(&p.state),
            esc(&p.pool),
            esc(&age)
        );
    }
}

/// The fleet page.
pub fn fleet(snapshot: &Snapshot, filter: &Filter, viewer: Viewer<'_>) -> String {
    let now = snapshot.at;
    let shown: Vec<&DeviceView> = snapshot
        .devices
        .iter()
        .filter(|d| filter.keeps(d))
        .collect();
    let count = |v: Verdict| shown.iter().filter(|d| d.standing.verdict == v).count();
    let mut body = String::new();
    let _ = write!(
        body,
        "<h1>Fleet</h1><p class=\"summary\" id=\"summary\">{} device(s): {} with problems, \
         {} unknown, {} with notices, {} healthy</p>",
        shown.len(),
        count(Verdict::Problem),
        count(Verdict::Unknown),
        count(Verdict::Notice),
        count(Verdict::Healthy)
    );
    filter_form(&mut body, snapshot, filter);
    body.push_str(
        "<table id=\"fleet\"><thead><tr><th>Device</th><th>Standing</th>\
         <th>Last good backup per pool</th><th>Last report</th><th>Location</th>\
         <th>Revision</th></tr></thead><tbody>",
    );
    for d in &shown {
        let name = &d.row.name;
        let _ = write!(
            body,
            "<tr class=\"device verdict-{}\" id=\"device-{}\"><td><a href=\"/devices/{}\">{}</a>",
            d.standing.verdict.as_str(),
            esc(name),
            esc(name),
            esc(name)
        );
        if let Some(host) = &d.state.hostname {
            let _ = write!(body, "<br><span class=\"muted\">{}</span>", esc(host));
        }
        body.push_str("</td><td>");
        badges(&mut body, &d.standing);
        body.push_str("</td><td>");
        pools_cell(&mut body, &d.standing);
        let last = d
            .state
            .last_report_at
            .map_or_else(|| "never".to_owned(), |at| ago(now, at));
        let location = d
            .row
            .location_name
            .as_deref()
            .or(d.row.location_uuid.as_deref())
            .unwrap_or("—");
        let revision = match (d.state.config_revision, d.row.published_revision) {
            (Some(a), Some(p)) if a == p => a.to_string(),
            (a, p) => format!(
                "{} / {}",
                a.map_or_else(|| "—".to_owned(), |a| a.to_string()),
                p.map_or_else(|| "—".to_owned(), |p| p.to_string())
            ),
        };
        let _ = write!(
            body,
            "</td><td>{}</td><td>{}</td><td title=\"applied / published\">{}</td></tr>",
            esc(&last),
            esc(location),
            esc(&revision)
        );
    }
    if shown.is_empty() {
        body.push_str("<tr><td colspan=\"6\" class=\"muted\">No device matches.</td></tr>");
    }
    body.push_str("</tbody></table>");
    frame("Fleet", Some((viewer.operator, viewer.csrf)), now, &body)
}

fn filter_form(out: &mut String, snapshot: &Snapshot, filter: &Filter) {
    let mut orgs: Vec<&str> = snapshot
        .devices
        .iter()
        .filter_map(|d| d.row.org_uuid.as_deref())
        .collect();
    orgs.sort_unstable();
    orgs.dedup();
    let mut locations: Vec<(&str, &str)> = snapshot
        .devices
        .iter()
        .filter_map(|d| {
            let id = d.row.location_uuid.as_deref()?;
            Some((id, d.row.location_name.as_deref().unwrap_or(id)))
        })
        .collect();
    locations.sort_unstable_by(|a, b| a.1.cmp(b.1).then(a.0.cmp(b.0)));
    locations.dedup();
    out.push_str(
        "<form class=\"filter\" method=\"get\" action=\"/\"><label>Org <select name=\"org\" id=\"org\">\
         <option value=\"\">all</option>",
    );
    for org in orgs {
        let _ = write!(
            out,
            "<option value=\"{}\"{}>{}</option>",
            esc(org),
            if filter.org == org { " selected" } else { "" },
            esc(org)
        );
    }
    out.push_str(
        "</select></label><label>Location <select name=\"location\" id=\"location\">\
         <option value=\"\">all</option>",
    );
    for (id, name) in locations {
        let _ = write!(
            out,
            "<option value=\"{}\"{}>{}</option>",
            esc(id),
            if filter.location == id {
                " selected"
            } else {
                ""
            },
            esc(name)
        );
    }
    out.push_str("</select></label><button type=\"submit\" id=\"filter\">Filter</button></form>");
}

/// What the device page shows beyond the snapshot.
#[derive(Debug, Clone, Copy)]
pub struct DeviceExtras<'a> {
    pub latest: Option<&'a StoredReport>,
    /// Newest received first.
    pub history: &'a [StoredReport],
    pub document: Option<&'a Document>,
    /// The document with its secrets masked (`actions::masked`).
    pub masked_document: Option<&'a str>,
    /// Pools a first backup may name.
    pub action_pools: &'a [String],
    /// A message after an action (`done`) or why it failed (`error`).
    pub done: Option<&'a str>,
    pub error: Option<&'a str>,
    pub policy: &'a Policy,
}

/// The device page.
pub fn device(
    view: &DeviceView,
    x: DeviceExtras<'_>,
    viewer: Viewer<'_>,
    now: DateTime<Utc>,
) -> String {
    let name = &view.row.name;
    let mut body = String::new();
    let _ = write!(
        body,
        "<section id=\"device\"><h1>{} <span class=\"badge {}\">{}</span></h1>",
        esc(name),
        view.standing.verdict.as_str(),
        view.standing.verdict.as_str()
    );
    if let Some(done) = x.done {
        let _ = write!(body, "<p class=\"done\" id=\"done\">{}</p>", esc(done));
    }
    if let Some(error) = x.error {
        let _ = write!(
            body,
            "<p class=\"error\" id=\"action-error\">{}</p>",
            esc(error)
        );
    }
    placement(&mut body, view, now);
    body.push_str("<h2>Standing</h2><ul id=\"conditions\">");
    for c in &view.standing.conditions {
        let _ = write!(
            body,
            "<li class=\"{}\">{}</li>",
            c.kind().verdict().as_str(),
            esc(&describe(c, now, x.policy))
        );
    }
    if view.standing.conditions.is_empty() {
        body.push_str("<li>Healthy: reporting, backups on time, nothing failing.</li>");
    }
    body.push_str("</ul>");
    actions(&mut body, view, &x, viewer);
    match x.latest {
        Some(latest) => status(&mut body, latest, now),
        None => body.push_str("<h2>Status</h2><p class=\"muted\" id=\"status\">No report yet.</p>"),
    }
    changes(&mut body, x.history, now);
    history(&mut body, x.history, now);
    document(&mut body, x.document, x.masked_document, now);
    body.push_str("</section>");
    frame(name, Some((viewer.operator, viewer.csrf)), now, &body)
}

fn placement(out: &mut String, view: &DeviceView, now: DateTime<Utc>) {
    let opt = |v: Option<&str>| v.unwrap_or("—").to_owned();
    let row = &view.row;
    out.push_str("<dl class=\"facts\" id=\"placement\">");
    let facts = [
        ("Org", opt(row.org_uuid.as_deref())),
        (
            "Location",
            match (&row.location_name, &row.location_uuid) {
                (Some(n), Some(u)) => format!("{n} ({u})"),
                (n, u) => opt(n.as_deref().or(u.as_deref())),
            },
        ),
        ("Registered", when(now, row.created_at)),
        (
            "Token",
            if row.disabled {
                "disabled (403)".to_owned()
            } else {
                "enabled".to_owned()
            },
        ),
        (
            "Published revision",
            row.published_revision
                .map_or_else(|| "none".to_owned(), |r| r.to_string()),
        ),
        (
            "Last report",
            view.state
                .last_report_at
                .map_or_else(|| "never".to_owned(), |at| when(now, at)),
        ),
        ("Reports stored", view.state.report_count.to_string()),
    ];
    for (k, v) in facts {
        let _ = write!(out, "<dt>{}</dt><dd>{}</dd>", esc(k), esc(&v));
    }
    out.push_str("</dl>");
}

fn actions(out: &mut String, view: &DeviceView, x: &DeviceExtras<'_>, viewer: Viewer<'_>) {
    let name = &view.row.name;
    out.push_str("<h2>Actions</h2><div class=\"actions\" id=\"actions\">");
    if x.document.is_some() && !x.action_pools.is_empty() {
        let _ = write!(
            out,
            "<form method=\"post\" action=\"/devices/{}/first-backup\">\
             <input type=\"hidden\" name=\"csrf\" value=\"{}\">\
             <label>Run a first backup now of <select name=\"pool\" id=\"first-backup-pool\">",
            esc(name),
            esc(viewer.csrf)
        );
        for pool in x.action_pools {
            let _ = write!(
                out,
                "<option value=\"{}\">{}</option>",
                esc(pool),
                esc(pool)
            );
        }
        out.push_str(
            "</select></label> <button type=\"submit\" id=\"first-backup\">Publish</button>\
             <br><span class=\"muted\">adds a <code>run_cloud_sync</code> action and publishes \
             the next revision</span></form>",
        );
    } else {
        out.push_str(
            "<p class=\"muted\">Run a first backup: needs a published document and a known pool.</p>",
        );
    }
    let (verb, path, note) = if view.row.disabled {
        ("Enable token", "enable", "the device is accepted again")
    } else {
        (
            "Disable token",
            "disable",
            "the device gets 403 and changes nothing",
        )
    };
    let _ = write!(
        out,
        "<form method=\"post\" action=\"/devices/{}/{path}\">\
         <input type=\"hidden\" name=\"csrf\" value=\"{}\">\
         <button type=\"submit\" id=\"toggle-token\">{verb}</button>\
         <br><span class=\"muted\">{note}</span></form></div>",
        esc(name),
        esc(viewer.csrf)
    );
}

fn state_word(state: ConfigState) -> &'static str {
    match state {
        ConfigState::Applied => "applied",
        ConfigState::Failed => "failed",
        ConfigState::Refused => "refused",
        ConfigState::Pending => "pending",
        ConfigState::None => "none",
    }
}

fn opt_time(now: DateTime<Utc>, at: Option<DateTime<Utc>>) -> String {
    at.map_or_else(|| "—".to_owned(), |at| when(now, at))
}

/// What `truenas-agent status` shows, from the newest report.
fn status(out: &mut String, stored: &StoredReport, now: DateTime<Utc>) {
    let r: &Report = &stored.report;
    let opt = |v: &Option<String>| v.clone().unwrap_or_else(|| "—".to_owned());
    let _ = write!(
        out,
        "<h2>Status <span class=\"muted\">(newest report, created {})</span></h2>\
         <dl class=\"facts\" id=\"status\">",
        esc(&when(now, r.created_at))
    );
    let pools = r
        .device
        .pools
        .iter()
        .map(|p| {
            format!(
                "{} ({})",
                p.name,
                if p.healthy { "healthy" } else { "UNHEALTHY" }
            )
        })
        .collect::<Vec<_>>()
        .join(", ");
    let facts = [
        ("Host", opt(&r.device.hostname)),
        (
            "GUID",
            format!(
                "{} ({})",
                opt(&r.device.guid),
                r.device
                    .guid_source
                    .map_or("—".to_owned(), |s| format!("{s:?}").to_lowercase())
            ),
        ),
        (
            "TrueNAS",
            format!(
                "{} (API {})",
                opt(&r.device.truenas_version),
                opt(&r.device.api)
            ),
        ),
        ("Root pool", opt(&r.device.root_pool)),
        (
            "Pools",
            if pools.is_empty() {
                "—".to_owned()
            } else {
                pools
            },
        ),
        (
            "Agent",
            format!(
                "{} ({:?}, document from {:?})",
                r.agent.version, r.agent.mode, r.agent.config_source
            )
            .to_lowercase(),
        ),
        (
            "Document",
            format!(
                "revision {} {}",
                r.config
                    .revision
                    .map_or_else(|| "—".to_owned(), |v| v.to_string()),
                state_word(r.config.state)
            ),
        ),
        ("Received", when(now, stored.received_at)),
        (
            "Reports lost (this report announces)",
            r.agent.dropped_reports.to_string(),
        ),
    ];
    for (k, v) in facts {
        let _ = write!(out, "<dt>{}</dt><dd>{}</dd>", esc(k), esc(&v));
    }
    out.push_str("</dl>");
    if !r.config.errors.is_empty() {
        out.push_str("<h2>Document errors</h2><ul id=\"config-errors\">");
        for e in &r.config.errors {
            let _ = write!(
                out,
                "<li><code>{}</code>: {}</li>",
                esc(&e.path),
                esc(&e.message)
            );
        }
        out.push_str("</ul>");
    }
    backups(out, r, now);
    snapshots(out, r);
    checklist(out, r);
}

fn backups(out: &mut String, r: &Report, now: DateTime<Utc>) {
    out.push_str(
        "<h2>Backups (Cloud Sync)</h2><table id=\"backups\"><thead><tr><th>Pool</th><th>State</th>\
         <th>Last success</th><th>Last run</th><th>Overdue</th><th>Error</th></tr></thead><tbody>",
    );
    for c in &r.health.cloud_sync {
        let error = match (&c.error_class, &c.message) {
            (Some(class), Some(m)) => format!("{class}: {m}"),
            (Some(class), None) => class.clone(),
            (None, Some(m)) => m.clone(),
            (None, None) => "—".to_owned(),
        };
        let _ = write!(
            out,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(&c.pool),
            esc(&c.state),
            esc(&opt_time(now, c.last_success)),
            esc(&opt_time(now, c.last_finished.or(c.last_started))),
            if c.overdue { "yes" } else { "no" },
            esc(&error)
        );
    }
    out.push_str("</tbody></table>");
}

fn snapshots(out: &mut String, r: &Report) {
    out.push_str(
        "<h2>Snapshots</h2><table id=\"snapshots\"><thead><tr><th>Pool</th>\
        <th>Newest</th><th>Age</th><th>Count</th></tr></thead><tbody>",
    );
    for s in &r.health.snapshots {
        let _ = write!(
            out,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(&s.pool),
            esc(s.latest.as_deref().unwrap_or("—")),
            esc(&s.latest_age_s.map_or_else(
                || "—".to_owned(),
                |a| span(chrono::Duration::seconds(
                    i64::try_from(a).unwrap_or(i64::MAX)
                ))
            )),
            s.count
        );
    }
    out.push_str("</tbody></table>");
}

fn checklist(out: &mut String, r: &Report) {
    out.push_str(
        "<h2>SOP checklist</h2><table id=\"checklist\"><thead><tr>\
        <th>Item</th><th>Status</th><th>Detail</th></tr></thead><tbody>",
    );
    let mut items: Vec<_> = r.checklist.iter().collect();
    items.sort_by_key(|c| match c.status {
        CheckStatus::Fail => 0,
        CheckStatus::Unknown => 1,
        CheckStatus::Pass => 2,
    });
    for c in items {
        let word = match c.status {
            CheckStatus::Fail => "fail",
            CheckStatus::Unknown => "unknown",
            CheckStatus::Pass => "pass",
        };
        let _ = write!(
            out,
            "<tr class=\"check-{word}\"><td>{}<br><span class=\"muted\">{}</span></td><td>{word}</td><td>{}</td></tr>",
            esc(&c.title),
            esc(&c.id),
            esc(&c.detail)
        );
    }
    out.push_str("</tbody></table>");
}

/// The newest report that carried changes (the last plan the agent applied), and the
/// newest drift.
fn changes(out: &mut String, history: &[StoredReport], now: DateTime<Utc>) {
    out.push_str("<h2>Last changes</h2><div id=\"changes\">");
    match history.iter().find(|s| !s.report.config.changes.is_empty()) {
        Some(s) => {
            let _ = write!(
                out,
                "<p class=\"muted\">from the report created {} (revision {})</p><ul>",
                esc(&when(now, s.report.created_at)),
                s.report
                    .config
                    .revision
                    .map_or_else(|| "—".to_owned(), |r| r.to_string())
            );
            for c in &s.report.config.changes {
                let _ = write!(
                    out,
                    "<li><code>{}</code> {} <span class=\"muted\">{}</span></li>",
                    esc(&c.target),
                    esc(&c.action),
                    esc(&c.fields.join(", "))
                );
            }
            out.push_str("</ul>");
        }
        None => out.push_str("<p class=\"muted\">No changes in the stored reports.</p>"),
    }
    if let Some(s) = history
        .first()
        .filter(|s| !s.report.config.drift.is_empty())
    {
        out.push_str("<p>Drift in the newest report:</p><ul>");
        for d in &s.report.config.drift {
            let _ = write!(
                out,
                "<li><code>{}</code> {} ({})</li>",
                esc(&d.target),
                esc(&d.fields.join(", ")),
                if d.corrected {
                    "corrected"
                } else {
                    "not corrected"
                }
            );
        }
        out.push_str("</ul>");
    }
    out.push_str("</div>");
}

fn history(out: &mut String, history: &[StoredReport], now: DateTime<Utc>) {
    out.push_str(
        "<h2>Report history</h2><table id=\"history\"><thead><tr><th>Received</th><th>Created</th>\
         <th>Document</th><th>Backups</th><th>Checklist failing</th><th>Lost before it</th>\
         </tr></thead><tbody>",
    );
    for s in history {
        let r = &s.report;
        let backups = r
            .health
            .cloud_sync
            .iter()
            .map(|c| format!("{} {}", c.pool, c.state))
            .collect::<Vec<_>>()
            .join(", ");
        let _ = write!(
            out,
            "<tr><td>{}</td><td>{}</td><td>{} {}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(&when(now, s.received_at)),
            esc(&format_time(&r.created_at)),
            r.config
                .revision
                .map_or_else(|| "—".to_owned(), |v| v.to_string()),
            state_word(r.config.state),
            esc(&backups),
            r.failing_checks().count(),
            r.agent.dropped_reports
        );
    }
    if history.is_empty() {
        out.push_str("<tr><td colspan=\"6\" class=\"muted\">No reports.</td></tr>");
    }
    out.push_str("</tbody></table>");
}

fn document(out: &mut String, doc: Option<&Document>, masked: Option<&str>, now: DateTime<Utc>) {
    out.push_str("<h2>Published document</h2>");
    match (doc, masked) {
        (Some(d), Some(text)) => {
            let _ = write!(
                out,
                "<p class=\"muted\">revision {}, published {}, ETag <code>{}</code>; secrets masked</p>\
                 <pre id=\"document\">{}</pre>",
                d.revision,
                esc(&when(now, d.published_at)),
                esc(&d.etag),
                esc(text)
            );
        }
        _ => out.push_str("<p class=\"muted\" id=\"document\">None published.</p>"),
    }
}
