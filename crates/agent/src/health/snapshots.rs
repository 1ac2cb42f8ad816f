//! PURE: one pool's periodic snapshot task — zettarepl state, newest `auto-` snapshot,
//! its age, the count, overdue (older than ~two schedule periods) and the verdict.
//!
//! Owns: reading times out of snapshot names (the
//! task's naming schema), and the verdict (disabled → ERROR → unreadable → overdue → hold
//! → none yet → fine).
//! Does not: find the pool's snapshot task (`tasks`), list snapshots (`observe` does, on
//! the fast path) or do I/O.
//! Invariants: without a readable listing nothing is called overdue (the level is
//! `Unknown`); the newest snapshot is chosen by encoded time, not by name order.
//! Limitations: names are assumed to carry NAS local time (zettarepl's default) unless the
//! schema has `%z`; snapshots are attributed to the task by name prefix only.

use chrono::{DateTime, FixedOffset, NaiveDateTime, TimeZone, Utc};

use super::schedule::{Schedule, snapshot_due};
use super::tasks::snapshot_task;
use super::{Area, Ctx, Level, Problem, SnapshotHealth, age_seconds, human_age};

/// The time a snapshot name encodes under `schema` (zettarepl names use the NAS's local
/// time unless the schema has `%z`; `%s` is epoch seconds).
pub(crate) fn name_time(name: &str, schema: &str, offset: FixedOffset) -> Option<DateTime<Utc>> {
    if schema.contains("%z") {
        return DateTime::parse_from_str(name, schema)
            .ok()
            .map(|t| t.with_timezone(&Utc));
    }
    let naive = NaiveDateTime::parse_from_str(name, schema).ok()?;
    if schema.contains("%s") {
        return Some(naive.and_utc());
    }
    offset
        .from_local_datetime(&naive)
        .single()
        .map(|t| t.with_timezone(&Utc))
}

/// The newest name (by encoded time; lexical order when times cannot be read).
fn newest(
    names: &[String],
    schema: &str,
    offset: FixedOffset,
) -> Option<(String, Option<DateTime<Utc>>)> {
    let timed = names
        .iter()
        .filter_map(|n| name_time(n, schema, offset).map(|t| (n, t)))
        .max_by_key(|(_, t)| *t);
    match timed {
        Some((name, at)) => Some((name.clone(), Some(at))),
        None => names.iter().max().map(|n| (n.clone(), None)),
    }
}

/// Health of `pool`'s periodic snapshot task.
pub(crate) fn evaluate(ctx: &Ctx<'_>, pool: &str) -> SnapshotHealth {
    let Some((task, source)) = snapshot_task(pool, ctx.observed, &ctx.obs.ownership) else {
        return missing(pool);
    };
    let state = ctx.obs.snapshot_states.get(&task.id);
    let listing = ctx.obs.snapshots.get(pool);
    let names = listing.and_then(|l| l.root_names.as_ref().ok());
    // 25.10 also names the last snapshot in the state; use it when the listing failed.
    let from_state = state
        .and_then(|s| s.last_snapshot.as_deref())
        .and_then(|full| full.split_once('@'))
        .filter(|(dataset, _)| *dataset == pool)
        .map(|(_, snap)| vec![snap.to_owned()]);
    let latest = names
        .cloned()
        .or(from_state)
        .and_then(|n| newest(&n, &task.naming_schema, ctx.offset));
    let schedule = Schedule::parse(&task.schedule).map(|s| match (task.begin, task.end) {
        (Some(b), Some(e)) => s.with_window(b, e),
        _ => s,
    });
    let known_since = ctx
        .obs
        .memory
        .snapshot_task(pool, task.id)
        .map_or(ctx.now, |m| m.first_seen);
    let latest_at = latest.as_ref().and_then(|(_, at)| *at);
    let due = schedule
        .as_ref()
        .ok()
        .map(|s| snapshot_due(s, ctx.now, ctx.offset, latest_at, Some(known_since)));
    let listing_error = listing
        .and_then(|l| l.root_names.as_ref().err())
        .map(|e| ctx.redactor.scrub(e));
    let mut health = SnapshotHealth {
        pool: pool.to_owned(),
        task_id: Some(task.id),
        task_source: Some(source),
        enabled: task.enabled,
        task_state: state.map_or_else(|| "UNKNOWN".to_owned(), |s| s.state.clone()),
        task_error: state
            .and_then(|s| s.error.as_deref())
            .map(|e| ctx.redactor.scrub(e)),
        naming_schema: Some(task.naming_schema.clone()),
        schedule: Some(task.schedule.to_string()),
        latest: latest.as_ref().map(|(n, _)| n.clone()),
        latest_at,
        latest_age_s: latest_at.map(|t| age_seconds(ctx.now, t)),
        count: listing.and_then(|l| l.count.as_ref().ok().copied()),
        due_since: due.and_then(|d| d.deadline),
        // Without a listing nothing can be said about age.
        overdue: due.is_some_and(|d| d.overdue) && (names.is_some() || latest.is_some()),
        level: Level::Ok,
        message: String::new(),
        next_step: None,
    };
    let unreadable = latest.is_none() && names.is_none();
    let (level, message, next) = verdict(
        &health,
        unreadable,
        listing_error.as_deref(),
        schedule.is_err(),
    );
    health.level = level;
    health.message = message;
    health.next_step = next;
    health
}

fn missing(pool: &str) -> SnapshotHealth {
    SnapshotHealth {
        pool: pool.to_owned(),
        task_id: None,
        task_source: None,
        enabled: false,
        task_state: "MISSING".to_owned(),
        task_error: None,
        naming_schema: None,
        schedule: None,
        latest: None,
        latest_at: None,
        latest_age_s: None,
        count: None,
        due_since: None,
        overdue: false,
        level: Level::Failing,
        message: format!("no periodic snapshot task on pool {pool}: no local point-in-time copies"),
        next_step: Some(format!(
            "Run `truenas-agent apply`, or create it as in SOP 6.1 (Data Protection → Periodic \
             Snapshot Tasks → Add: dataset {pool}, recursive, 2 weeks, auto-%Y-%m-%d_%H-%M, hourly)."
        )),
    }
}

fn verdict(
    h: &SnapshotHealth,
    unreadable: bool,
    listing_error: Option<&str>,
    bad_schedule: bool,
) -> (Level, String, Option<String>) {
    let name = format!(
        "snapshot task {} on {}",
        h.task_id.unwrap_or_default(),
        h.pool
    );
    let page = "Data Protection → Periodic Snapshot Tasks";
    let age = h.latest_age_s.map_or_else(
        || "of unknown age".to_owned(),
        |s| format!("{} old", human_age(s)),
    );
    if !h.enabled {
        return (
            Level::Failing,
            format!("{name} is disabled: no new snapshots are taken"),
            Some(format!("Enable it ({page}), or run `truenas-agent apply`.")),
        );
    }
    if h.task_state == "ERROR" {
        return (
            Level::Failing,
            format!(
                "{name} failed: {}",
                h.task_error
                    .as_deref()
                    .unwrap_or("zettarepl reports an error")
            ),
            Some(format!(
                "Open {page} and the SnapshotFailed alert for details (pool full? dataset \
                 missing or locked?), fix the cause, then use Run Now on the task."
            )),
        );
    }
    if unreadable {
        return (
            Level::Unknown,
            format!(
                "{name}: the snapshots could not be listed ({})",
                listing_error.unwrap_or("not read")
            ),
            Some(
                "Retry; on the NAS, `zfs list -t snapshot | grep auto-` shows them (SOP 6.2)."
                    .to_owned(),
            ),
        );
    }
    if h.overdue {
        let message = match &h.latest {
            Some(latest) => format!("{name} is overdue: the newest snapshot {latest} is {age}"),
            None => format!("{name} is overdue: the pool has no snapshot from it yet"),
        };
        return (
            Level::Failing,
            message,
            Some(format!(
                "Check the task in {page} (enabled, schedule {}, begin/end window) and the \
                 SnapshotFailed alert; Run Now takes one immediately.",
                h.schedule.as_deref().unwrap_or("?")
            )),
        );
    }
    if bad_schedule {
        return (
            Level::Unknown,
            format!(
                "{name}: the schedule `{}` is not understood",
                h.schedule.as_deref().unwrap_or("?")
            ),
            Some("Set the SOP schedule (hourly) or run `truenas-agent apply`.".to_owned()),
        );
    }
    settled(h, &name, &age, page)
}

/// Hold, not yet taken, or fine.
fn settled(
    h: &SnapshotHealth,
    name: &str,
    age: &str,
    page: &str,
) -> (Level, String, Option<String>) {
    if h.task_state == "HOLD" {
        return (
            Level::Warning,
            format!(
                "{name} is on hold: {}",
                h.task_error
                    .as_deref()
                    .unwrap_or("zettarepl did not say why")
            ),
            Some(format!(
                "See {page}; the hold usually ends when the blocking task finishes."
            )),
        );
    }
    match &h.latest {
        None => (
            Level::Warning,
            format!("{name} has not taken a snapshot yet"),
            Some(
                "Wait for the next scheduled time (SOP 6.2: up to an hour), then check again."
                    .to_owned(),
            ),
        ),
        Some(latest) => (
            Level::Ok,
            format!(
                "{name}: newest {latest} ({age}), {} snapshots on the pool",
                h.count.map_or_else(|| "?".to_owned(), |c| c.to_string())
            ),
            None,
        ),
    }
}

/// The problem this task's health represents, if any.
pub(crate) fn problem(h: &SnapshotHealth, out: &mut Vec<Problem>) {
    if h.level == Level::Ok {
        return;
    }
    out.push(Problem {
        level: h.level,
        area: Area::Snapshots,
        subject: Some(h.pool.clone()),
        message: h.message.clone(),
        next_step: h.next_step.clone().unwrap_or_default(),
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_times() {
        let utc = FixedOffset::east_opt(0).unwrap();
        let plus2 = FixedOffset::east_opt(2 * 3600).unwrap();
        assert_eq!(
            crate::health::tasks::name_prefix("auto-%Y-%m-%d_%H-%M"),
            "auto-"
        );
        assert_eq!(crate::health::tasks::name_prefix("%Y%m%d"), "");
        let t = name_time("auto-2026-11-23_10-00", "auto-%Y-%m-%d_%H-%M", utc).unwrap();
        assert_eq!(t.to_rfc3339(), "2026-11-23T10:00:00+00:00");
        // Names carry the NAS's local time.
        let t = name_time("auto-2026-11-23_10-00", "auto-%Y-%m-%d_%H-%M", plus2).unwrap();
        assert_eq!(t.to_rfc3339(), "2026-11-23T08:00:00+00:00");
        assert!(name_time("auto-garbage", "auto-%Y-%m-%d_%H-%M", utc).is_none());
        let names = vec![
            "auto-2026-11-23_09-00".to_owned(),
            "auto-2026-11-23_10-00".to_owned(),
            "auto-2026-11-22_23-00".to_owned(),
        ];
        let (latest, at) = newest(&names, "auto-%Y-%m-%d_%H-%M", utc).unwrap();
        assert_eq!(latest, "auto-2026-11-23_10-00");
        assert!(at.is_some());
        assert!(newest(&[], "auto-%Y", utc).is_none());
    }
}
