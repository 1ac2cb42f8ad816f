//! PURE: what has been announced about a device, and the transitions between two
//! announcements — the events webhooks carry.
//!
//! Owns: [`Announced`] (the alert-worthy part of a standing: silent, failing and overdue
//! pools, failing checklist item ids, a refused document; stored per device as JSON by
//! `db::alerts`), [`Event`] (the webhook event names), [`transitions`] between two
//! announcements, and the JSON body of one event ([`payload`]).
//! Does not: read the database or the clock, deliver anything (`webhooks`), or decide the
//! standing (`fleet`).
//! Invariants: `transitions(a, a)` is empty; every change of an announced fact yields
//! exactly one event (a pool becoming both failing and overdue yields two, one per fact);
//! a body carries names, ids, states and times — never a document value, a token, or
//! free text from the NAS (job messages, config error messages), so it cannot carry a
//! secret.
//! Limitations: a pool that disappears from the reports (removed from the document) is
//! dropped without a `backup.recovered`; checklist events name item ids and titles only.

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::db::{DeviceRow, DeviceState};
use crate::fleet::{Condition, Kind, Standing};
use truenas_agent::central::report::format_time;

/// The facts whose changes are announced.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Announced {
    pub silent: bool,
    pub refused: bool,
    pub backup_failing: BTreeSet<String>,
    pub backup_overdue: BTreeSet<String>,
    /// Ids of the failing checklist items of the newest report.
    pub checklist_failing: BTreeSet<String>,
}

impl Announced {
    /// The announcement for a standing; `failing_checks` are the ids of the failing
    /// checklist items of the newest report.
    pub fn of(standing: &Standing, failing_checks: BTreeSet<String>) -> Self {
        let pools = |pick: fn(&crate::fleet::PoolStanding) -> bool| {
            standing
                .pools
                .iter()
                .filter(|p| pick(p))
                .map(|p| p.pool.clone())
                .collect()
        };
        Self {
            silent: standing.silent,
            refused: standing.has(Kind::DocumentRefused),
            backup_failing: pools(|p| p.failing),
            backup_overdue: pools(|p| p.overdue),
            checklist_failing: failing_checks,
        }
    }

    /// The stored form.
    pub fn to_json(&self) -> String {
        #[allow(
            clippy::expect_used,
            reason = "invariant: booleans and string sets always serialise"
        )]
        let text = serde_json::to_string(self).expect("invariant: Announced serialises");
        text
    }

    /// From the stored form; `None` when it does not read (it is then replaced).
    pub fn from_json(text: &str) -> Option<Self> {
        serde_json::from_str(text).ok()
    }
}

/// A webhook event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Event {
    DeviceSilent,
    DeviceReturned,
    BackupFailed,
    BackupOverdue,
    BackupRecovered,
    ChecklistRegressed,
    ChecklistFixed,
    DocumentRefused,
    DocumentAccepted,
}

impl Event {
    /// Every event.
    pub const ALL: [Event; 9] = [
        Event::DeviceSilent,
        Event::DeviceReturned,
        Event::BackupFailed,
        Event::BackupOverdue,
        Event::BackupRecovered,
        Event::ChecklistRegressed,
        Event::ChecklistFixed,
        Event::DocumentRefused,
        Event::DocumentAccepted,
    ];

    /// The wire name (`event` in the body, `X-TrueNAS-Central-Event`).
    pub fn name(self) -> &'static str {
        match self {
            Event::DeviceSilent => "device.silent",
            Event::DeviceReturned => "device.returned",
            Event::BackupFailed => "backup.failed",
            Event::BackupOverdue => "backup.overdue",
            Event::BackupRecovered => "backup.recovered",
            Event::ChecklistRegressed => "checklist.regressed",
            Event::ChecklistFixed => "checklist.fixed",
            Event::DocumentRefused => "document.refused",
            Event::DocumentAccepted => "document.accepted",
        }
    }

    /// From the wire name.
    pub fn from_name(name: &str) -> Option<Event> {
        Event::ALL.into_iter().find(|e| e.name() == name)
    }
}

/// One change between two announcements.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transition {
    pub event: Event,
    /// The pool, for `backup.*`.
    pub pool: Option<String>,
    /// The checklist item ids, for `checklist.*`.
    pub items: Vec<String>,
}

impl Transition {
    fn device(event: Event) -> Self {
        Self {
            event,
            pool: None,
            items: Vec::new(),
        }
    }

    fn pool(event: Event, pool: &str) -> Self {
        Self {
            event,
            pool: Some(pool.to_owned()),
            items: Vec::new(),
        }
    }
}

/// What changed from `before` to `after`; `pools` are the pools the device reports now
/// (a pool no longer reported is not "recovered").
pub fn transitions(
    before: &Announced,
    after: &Announced,
    pools: &BTreeSet<String>,
) -> Vec<Transition> {
    let mut out = Vec::new();
    match (before.silent, after.silent) {
        (false, true) => out.push(Transition::device(Event::DeviceSilent)),
        (true, false) => out.push(Transition::device(Event::DeviceReturned)),
        _ => {}
    }
    for pool in after.backup_failing.difference(&before.backup_failing) {
        out.push(Transition::pool(Event::BackupFailed, pool));
    }
    for pool in after.backup_overdue.difference(&before.backup_overdue) {
        out.push(Transition::pool(Event::BackupOverdue, pool));
    }
    let bad = |a: &Announced| -> BTreeSet<String> {
        a.backup_failing.union(&a.backup_overdue).cloned().collect()
    };
    for pool in bad(before).difference(&bad(after)) {
        if pools.contains(pool) {
            out.push(Transition::pool(Event::BackupRecovered, pool));
        }
    }
    let new: Vec<String> = after
        .checklist_failing
        .difference(&before.checklist_failing)
        .cloned()
        .collect();
    if !new.is_empty() {
        out.push(Transition {
            event: Event::ChecklistRegressed,
            pool: None,
            items: new,
        });
    }
    let fixed: Vec<String> = before
        .checklist_failing
        .difference(&after.checklist_failing)
        .cloned()
        .collect();
    if !fixed.is_empty() {
        out.push(Transition {
            event: Event::ChecklistFixed,
            pool: None,
            items: fixed,
        });
    }
    match (before.refused, after.refused) {
        (false, true) => out.push(Transition::device(Event::DocumentRefused)),
        (true, false) => out.push(Transition::device(Event::DocumentAccepted)),
        _ => {}
    }
    out
}

/// Where the event happened, for its body.
#[derive(Debug, Clone, Copy)]
pub struct Context<'a> {
    pub row: &'a DeviceRow,
    pub state: &'a DeviceState,
    pub standing: &'a Standing,
    /// `(id, title)` of checklist items of the newest report, to name them.
    pub checklist_titles: &'a [(String, String)],
    /// The dashboard's public origin (`https://central.example`), for a link.
    pub public_origin: Option<&'a str>,
}

/// The JSON body of one event (no secrets: see the module's invariants).
pub fn payload(t: &Transition, ctx: Context<'_>, occurred_at: DateTime<Utc>) -> Value {
    let time = |at: Option<DateTime<Utc>>| at.map(|t| format_time(&t));
    let pool = t
        .pool
        .as_deref()
        .and_then(|name| ctx.standing.pools.iter().find(|p| p.pool == name));
    let pool_detail = pool.map(|p| {
        let error_class = ctx.standing.conditions.iter().find_map(|c| match c {
            Condition::BackupFailing {
                pool, error_class, ..
            } if *pool == p.pool => error_class.clone(),
            _ => None,
        });
        json!({
            "name": p.pool,
            "state": p.state,
            "last_success": time(p.last_success),
            "failing": p.failing,
            "overdue": p.overdue,
            "error_class": error_class,
        })
    });
    let items: Vec<Value> = t
        .items
        .iter()
        .map(|id| {
            let title = ctx
                .checklist_titles
                .iter()
                .find(|(i, _)| i == id)
                .map(|(_, title)| title.clone());
            json!({"id": id, "title": title})
        })
        .collect();
    let link = ctx
        .public_origin
        .map(|origin| format!("{}/devices/{}", origin.trim_end_matches('/'), ctx.row.name));
    json!({
        "id": Uuid::new_v4().to_string(),
        "event": t.event.name(),
        "occurred_at": format_time(&occurred_at),
        "device": {
            "name": ctx.row.name,
            "org_uuid": ctx.row.org_uuid,
            "location_uuid": ctx.row.location_uuid,
            "location_name": ctx.row.location_name,
            "guid": ctx.state.guid,
            "hostname": ctx.state.hostname,
            "last_report_at": time(ctx.state.last_report_at),
            "config_revision": ctx.state.config_revision,
        },
        "pool": pool_detail,
        "items": items,
        "verdict": ctx.standing.verdict.as_str(),
        "conditions": ctx.standing.conditions.iter().map(|c| c.kind().label()).collect::<Vec<_>>(),
        "dashboard_url": link,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(items: &[&str]) -> BTreeSet<String> {
        items.iter().map(|s| (*s).to_owned()).collect()
    }

    fn events(ts: &[Transition]) -> Vec<(&'static str, Option<&str>, Vec<&str>)> {
        ts.iter()
            .map(|t| {
                (
                    t.event.name(),
                    t.pool.as_deref(),
                    t.items.iter().map(String::as_str).collect(),
                )
            })
            .collect()
    }

    #[test]
    fn no_change_no_event() {
        let a = Announced {
            silent: true,
            refused: true,
            backup_failing: set(&["p"]),
            backup_overdue: set(&["p"]),
            checklist_failing: set(&["x"]),
        };
        assert!(transitions(&a, &a, &set(&["p"])).is_empty());
    }

    #[test]
    fn each_fact_has_its_event() {
        let before = Announced::default();
        let after = Announced {
            silent: true,
            refused: true,
            backup_failing: set(&["pool0"]),
            backup_overdue: set(&["pool0", "tank"]),
            checklist_failing: set(&["snmp.v3_only"]),
        };
        let pools = set(&["pool0", "tank"]);
        assert_eq!(
            events(&transitions(&before, &after, &pools)),
            [
                ("device.silent", None, vec![]),
                ("backup.failed", Some("pool0"), vec![]),
                ("backup.overdue", Some("pool0"), vec![]),
                ("backup.overdue", Some("tank"), vec![]),
                ("checklist.regressed", None, vec!["snmp.v3_only"]),
                ("document.refused", None, vec![]),
            ]
        );
        assert_eq!(
            events(&transitions(&after, &before, &pools)),
            [
                ("device.returned", None, vec![]),
                ("backup.recovered", Some("pool0"), vec![]),
                ("backup.recovered", Some("tank"), vec![]),
                ("checklist.fixed", None, vec!["snmp.v3_only"]),
                ("document.accepted", None, vec![]),
            ]
        );
    }

    #[test]
    fn failing_to_overdue_is_not_a_recovery_and_a_gone_pool_is_not_recovered() {
        let before = Announced {
            backup_failing: set(&["pool0", "old"]),
            ..Announced::default()
        };
        let after = Announced {
            backup_overdue: set(&["pool0"]),
            ..Announced::default()
        };
        assert_eq!(
            events(&transitions(&before, &after, &set(&["pool0"]))),
            [("backup.overdue", Some("pool0"), vec![])]
        );
    }

    #[test]
    fn checklist_items_swap_gives_both_events() {
        let before = Announced {
            checklist_failing: set(&["a", "b"]),
            ..Announced::default()
        };
        let after = Announced {
            checklist_failing: set(&["b", "c"]),
            ..Announced::default()
        };
        assert_eq!(
            events(&transitions(&before, &after, &BTreeSet::new())),
            [
                ("checklist.regressed", None, vec!["c"]),
                ("checklist.fixed", None, vec!["a"]),
            ]
        );
    }

    #[test]
    fn stored_form_round_trips_and_names_are_unique() {
        let a = Announced {
            silent: true,
            backup_overdue: set(&["p"]),
            ..Announced::default()
        };
        assert_eq!(Announced::from_json(&a.to_json()), Some(a));
        assert_eq!(Announced::from_json("{}"), Some(Announced::default()));
        assert_eq!(Announced::from_json("{\"x\":1}"), None);
        for e in Event::ALL {
            assert_eq!(Event::from_name(e.name()), Some(e));
        }
        assert_eq!(Event::from_name("backup.*"), None);
    }
}
