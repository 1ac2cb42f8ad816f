//! The `status` screen: sections first, then every problem with its next step.
//!
//! Owns: the text layout (one line per section, a row per pool, wrapped problems).
//! Does not: decide anything shown (all of it is in the [`StatusReport`]).
//! Invariants: pure; every problem is printed with its next step; text wraps at
//! [`WIDTH`] columns with hanging indents.
//! Limitations: long URLs and rclone lines are not broken inside a word.

use std::fmt::Write as _;

use super::{Overall, StatusReport};
use crate::health::{Level, human_age};

/// Text width the screen wraps to.
const WIDTH: usize = 96;

/// Renders the report as the technician's one-screen text.
pub fn render_text(r: &StatusReport) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "truenas-agent {} · status at {} · {} (exit {})\n",
        r.agent.version,
        r.generated_at,
        r.overall.label(),
        r.exit_code
    );
    header(r, &mut out);
    tasks(r, &mut out);
    problems(r, &mut out);
    out
}

fn line(out: &mut String, label: &str, text: &str) {
    let _ = writeln!(out, "{label:<11} {text}");
}

fn header(r: &StatusReport, out: &mut String) {
    let m = &r.middleware;
    let mw = if m.reachable {
        format!(
            "reachable ({} {}): TrueNAS {}, API {} ({}){}",
            m.transport.as_deref().unwrap_or("?"),
            m.url,
            m.truenas_version.as_deref().unwrap_or("?"),
            m.api_version.as_deref().or(m.api.as_deref()).unwrap_or("?"),
            m.protocol.as_deref().unwrap_or("?"),
            if m.newer_than_supported == Some(true) {
                ", NEWER than this agent supports"
            } else {
                ""
            }
        )
    } else {
        format!("NOT REACHABLE at {}", m.url)
    };
    line(out, "Middleware", &mw);
    let d = &r.device;
    let device = match (&d.guid_zfs, d.guid_matches) {
        (Some(g), Some(true)) => format!(
            "GUID {g} on {} (matches the {})",
            d.root_pool.as_deref().unwrap_or("?"),
            d.guid_expected_source.as_deref().unwrap_or("document")
        ),
        (Some(g), Some(false)) => format!(
            "GUID {g} on {} — DIFFERS from NinjaOne's {}",
            d.root_pool.as_deref().unwrap_or("?"),
            d.guid_expected.as_deref().unwrap_or("?")
        ),
        (Some(g), None) => format!("GUID {g} on {}", d.root_pool.as_deref().unwrap_or("?")),
        (None, _) if m.reachable => "NO device GUID on the root pool".to_owned(),
        (None, _) => "unknown (middleware not reachable)".to_owned(),
    };
    line(out, "Device", &device);
    line(out, "Document", &document_line(r));
    line(out, "Central", &central_line(r));
    if let Some(daemon) = daemon_line(r) {
        line(out, "Daemon", &daemon);
    }
    if !r.pools.is_empty() {
        let pools: Vec<String> = r
            .pools
            .iter()
            .map(|p| format!("{} {}", p.name, p.status))
            .collect();
        line(out, "Pools", &pools.join(", "));
    }
    if let Some(s) = &r.snmp {
        let text = if s.level == Level::Ok {
            format!(
                "v3 only, {}/{}, {}, starts at boot",
                s.auth_type,
                s.privacy_protocol.as_deref().unwrap_or("-"),
                s.service_state
            )
        } else {
            s.findings.join("; ")
        };
        line(out, "SNMP", &text);
    }
    let c = &r.checklist;
    let checklist = match c.source.as_str() {
        "none" => "never verified (run `truenas-agent verify`)".to_owned(),
        source => format!(
            "{} {} (revision {}): {} pass, {} fail, {}{} unknown, {} checked by central",
            if source == "live" {
                "checked now"
            } else {
                "last verified"
            },
            c.checked_at.as_deref().unwrap_or("?"),
            c.revision.unwrap_or_default(),
            c.pass,
            c.fail,
            if c.deviates > 0 {
                format!("{} deviate, ", c.deviates)
            } else {
                String::new()
            },
            c.unknown,
            c.not_checked
        ),
    };
    line(out, "Checklist", &checklist);
    if let Some(b2) = &r.b2 {
        line(
            out,
            "B2",
            &format!(
                "{} last checked {}: {}",
                b2.bucket, b2.checked_at, b2.overall
            ),
        );
    }
    out.push('\n');
}

/// The document shown: `-f`'s, else the one the daemon enforces, and where it came from.
fn document_line(r: &StatusReport) -> String {
    let a = &r.agent;
    let enforced = a.enforced.as_ref().map(|e| {
        let mut text = format!("revision {} ({}) from central", e.revision, e.mode);
        if let Some(key) = &e.verified_by {
            let _ = write!(text, ", verified by {key}");
        }
        if let Some(at) = &e.accepted_at {
            let _ = write!(text, ", accepted {at}");
        }
        text.push_str(match e.daemon_running {
            Some(true) => ", enforced by the daemon",
            Some(false) => ", last enforced by the daemon (NOT RUNNING)",
            None => ", enforced by the daemon (whether it runs is unknown)",
        });
        text
    });
    match (a.config_source.as_str(), a.revision, &a.mode, enforced) {
        ("file", Some(rev), Some(mode), None) => {
            format!("revision {rev} ({mode}), read from a file")
        }
        ("file", Some(rev), Some(mode), Some(daemon)) => {
            format!("revision {rev} ({mode}), read from a file; the daemon has {daemon}")
        }
        (_, _, _, Some(daemon)) => daemon,
        _ => match r.daemon.as_ref().and_then(|d| d.record.as_ref()) {
            Some(_) => "none: the daemon has no document from central (pass -f DOC for the \
                        checklist)"
                .to_owned(),
            None => "none given (task health only; pass -f DOC for the checklist)".to_owned(),
        },
    }
}

/// The daemon: running or not, and its own one-line state (`STATUS=`).
fn daemon_line(r: &StatusReport) -> Option<String> {
    let d = r.daemon.as_ref()?;
    let service = d.service.describe();
    let state = d.record.as_ref().map_or_else(
        || "no daemon.json (never ran on this state directory)".to_owned(),
        |rec| match &rec.stopped {
            Some(stop) => format!(
                "stopped {}{}",
                stop.at.format("%Y-%m-%dT%H:%M:%SZ"),
                stop.error
                    .as_ref()
                    .map_or_else(String::new, |e| format!(": {}", e.message))
            ),
            None => format!(
                "\"{}\" (as of {})",
                rec.status,
                rec.updated_at.format("%Y-%m-%dT%H:%M:%SZ")
            ),
        },
    );
    Some(match d.running {
        Some(true) => format!("running ({service}): {state}"),
        Some(false) => format!("NOT RUNNING ({service}): {state}"),
        None => format!("unknown ({service}): {state}"),
    })
}

fn central_line(r: &StatusReport) -> String {
    let Some(c) = &r.central else {
        return "not configured (local documents only)".to_owned();
    };
    let Some(state) = &c.state else {
        return format!(
            "{} — no contact yet",
            c.url.as_deref().unwrap_or("configured")
        );
    };
    let mut parts = Vec::new();
    if let Some(url) = &c.url {
        parts.push(url.clone());
    }
    if let Some(applied) = &state.applied {
        parts.push(format!("applied revision {}", applied.revision));
    }
    if let Some(fetch) = &state.last_fetch {
        let outcome = serde_json::to_value(fetch.outcome)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default();
        parts.push(format!(
            "last fetch {} ({outcome})",
            fetch.at.format("%Y-%m-%dT%H:%M:%SZ")
        ));
    }
    if let Some(report) = &state.last_report {
        let outcome = serde_json::to_value(report.outcome)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default();
        parts.push(format!(
            "last report {} ({outcome})",
            report.at.format("%Y-%m-%dT%H:%M:%SZ")
        ));
    }
    parts.push(format!(
        "spool {}",
        c.spool_depth
            .map_or_else(|| "?".to_owned(), |d| d.to_string())
    ));
    parts.join(", ")
}

fn tasks(r: &StatusReport, out: &mut String) {
    if !r.backups.is_empty() {
        out.push_str("Backups (Cloud Sync)\n");
        for b in &r.backups {
            let success = b.last_success_age_s.map_or_else(
                || "never succeeded".to_owned(),
                |s| format!("last success {} ago", human_age(s)),
            );
            let mut flags = Vec::new();
            if b.overdue {
                flags.push("OVERDUE".to_owned());
            }
            if let Some(class) = &b.error_class {
                flags.push(format!("[{class}]"));
            }
            if !b.enabled && b.state != "MISSING" {
                flags.push("DISABLED".to_owned());
            }
            let row = format!(
                "  {:<8} {:<9} {:<28} {}",
                b.pool,
                b.state,
                success,
                flags.join(" ")
            );
            let _ = writeln!(out, "{}", row.trim_end());
        }
    }
    if !r.snapshots.is_empty() {
        out.push_str("Snapshots\n");
        for s in &r.snapshots {
            let newest = match (&s.latest, s.latest_age_s) {
                (Some(n), Some(age)) => format!("newest {n} ({} old)", human_age(age)),
                (Some(n), None) => format!("newest {n}"),
                (None, _) => "no snapshot yet".to_owned(),
            };
            let count = s
                .count
                .map_or_else(String::new, |c| format!(", {c} on the pool"));
            let _ = writeln!(
                out,
                "  {:<8} {:<9} {newest}{count}{}",
                s.pool,
                s.task_state,
                if s.overdue { "  OVERDUE" } else { "" }
            );
        }
    }
    if !r.backups.is_empty() || !r.snapshots.is_empty() {
        out.push('\n');
    }
}

fn problems(r: &StatusReport, out: &mut String) {
    if r.problems.is_empty() {
        out.push_str("All good: nothing needs attention.\n");
        return;
    }
    let _ = writeln!(out, "Problems ({}) — worst first", r.problems.len());
    for (n, p) in r.problems.iter().enumerate() {
        let level = match p.level {
            Level::Failing => "FAILING",
            Level::Unknown => "UNKNOWN",
            Level::Warning => "WARNING",
            Level::Ok => "OK",
        };
        let area = serde_json::to_value(p.area)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default();
        let subject = p
            .subject
            .as_deref()
            .map_or_else(String::new, |s| format!(" {s}"));
        let _ = writeln!(out, "{:>3}. {level} {area}{subject}", n + 1);
        wrap(out, "     ", &p.message);
        wrap(out, "     Next: ", &p.next_step);
    }
    if r.overall == Overall::Unknown {
        out.push_str("\nSome state could not be determined: fix the UNKNOWN items first.\n");
    }
}

/// Word-wraps `text` to [`WIDTH`], the first line after `lead`, the rest aligned under it.
fn wrap(out: &mut String, lead: &str, text: &str) {
    let indent = " ".repeat(lead.chars().count());
    let mut current = lead.to_owned();
    let mut empty = true;
    for word in text.split_whitespace() {
        if !empty && current.chars().count() + 1 + word.chars().count() > WIDTH {
            out.push_str(current.trim_end());
            out.push('\n');
            current.clone_from(&indent);
            empty = true;
        }
        if !empty {
            current.push(' ');
        }
        current.push_str(word);
        empty = false;
    }
    out.push_str(current.trim_end());
    out.push('\n');
}
