use chrono::TimeZone as _;

use super::*;
use crate::db::{DeviceRow, DeviceState, PoolBackup};
use crate::monitor::blank_state;
use truenas_agent::desired::Cron;

fn t(day: u32, hour: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, day, hour, 0, 0).unwrap()
}

fn row(name: &str) -> DeviceRow {
    DeviceRow {
        name: name.to_owned(),
        org_uuid: None,
        location_uuid: None,
        location_name: None,
        disabled: false,
        created_at: t(1, 0),
        published_revision: Some(3),
    }
}

fn pool(name: &str, state: &str, last_success: Option<DateTime<Utc>>) -> PoolBackup {
    PoolBackup {
        pool: name.to_owned(),
        state: state.to_owned(),
        overdue: false,
        error_class: None,
        last_success_at: last_success,
        reported_at: t(20, 0),
    }
}

/// A device that reported at `last` with one healthy pool that last succeeded at `success`.
fn reporting(name: &str, last: DateTime<Utc>, success: DateTime<Utc>) -> DeviceState {
    let mut s = blank_state(name);
    s.report_count = 5;
    s.last_report_at = Some(last);
    s.latest_created_at = Some(last);
    s.config_revision = Some(3);
    s.config_state = Some(ConfigState::Applied);
    s.pools = vec![pool("pool0", "SUCCESS", Some(success))];
    s
}

fn daily() -> DocumentFacts {
    DocumentFacts {
        revision: 3,
        backup_schedule: Some(
            Schedule::parse(&Cron::from_fields("0", "0", "*", "*", "*")).unwrap(),
        ),
        guid: None,
        pools: None,
    }
}

fn judge(
    row: &DeviceRow,
    state: &DeviceState,
    doc: Option<&DocumentFacts>,
    policy: &Policy,
    now: DateTime<Utc>,
) -> Standing {
    assess(
        DeviceFacts {
            row,
            state,
            document: doc,
            guid_twins: &[],
        },
        policy,
        now,
    )
}

fn kinds(s: &Standing) -> Vec<Kind> {
    s.conditions.iter().map(Condition::kind).collect()
}

#[test]
fn a_reporting_device_with_a_recent_backup_is_healthy() {
    let now = t(20, 10);
    let r = row("a");
    let s = reporting("a", now - Duration::minutes(2), t(20, 1));
    let standing = judge(&r, &s, Some(&daily()), &Policy::default(), now);
    assert_eq!(standing.verdict, Verdict::Healthy, "{standing:?}");
    assert!(standing.conditions.is_empty());
    assert_eq!(standing.pools[0].age, Some(Duration::hours(9)));
    assert!(!standing.silent);
}

#[test]
fn silence_is_a_transition_of_time() {
    let policy = Policy::default(); // 300 s + 600 s
    let r = row("a");
    let last = t(20, 10);
    let s = reporting("a", last, t(20, 1));
    let at = |secs| {
        judge(
            &r,
            &s,
            Some(&daily()),
            &policy,
            last + Duration::seconds(secs),
        )
    };
    assert!(!at(900).silent, "exactly at the limit: not yet");
    let silent = at(901);
    assert!(silent.silent);
    assert_eq!(kinds(&silent), [Kind::Silent]);
    assert_eq!(silent.verdict, Verdict::Problem);
}

#[test]
fn a_device_that_never_reported_waits_then_is_silent() {
    let r = row("new");
    let s = blank_state("new");
    let policy = Policy::default();
    let early = judge(&r, &s, None, &policy, r.created_at + Duration::minutes(5));
    assert_eq!(kinds(&early), [Kind::AwaitingFirstReport]);
    assert_eq!(early.verdict, Verdict::Unknown, "never healthy by default");
    let late = judge(&r, &s, None, &policy, r.created_at + Duration::hours(1));
    assert_eq!(kinds(&late), [Kind::Silent]);
}

#[test]
fn overdue_by_the_clock_uses_the_most_lenient_deadline_without_an_offset() {
    // Daily at 00:00 local, grace 12 h, offset unknown: the deadline is the fire at or
    // before now − 24 h, minus 14 h.
    let r = row("a");
    let policy = Policy::default();
    let success = t(18, 1);
    // Reports keep coming (not silent); the agent does not flag the backup overdue.
    let judge_at = |now: DateTime<Utc>| {
        let s = reporting("a", now - Duration::minutes(1), success);
        judge(&r, &s, Some(&daily()), &policy, now)
    };
    // now = 20th 01:00 → now − 24 h = 19th 01:00 → fire 19th 00:00 → deadline 18th 10:00.
    let standing = judge_at(t(20, 1));
    assert!(standing.has(Kind::BackupOverdue), "{standing:?}");
    match &standing.conditions[0] {
        Condition::BackupOverdue {
            deadline,
            judged_by,
            ..
        } => {
            assert_eq!(*deadline, Some(t(18, 10)));
            assert_eq!(*judged_by, Judge::Clock);
        }
        other => panic!("{other:?}"),
    }
    // now = 19th 23:00 → now − 24 h = 18th 23:00 → fire 18th 00:00 → deadline 17th 10:00.
    assert!(!judge_at(t(19, 23)).has(Kind::BackupOverdue));
}

#[test]
fn with_the_nas_offset_the_agents_rule_applies() {
    let r = row("a");
    let policy = Policy {
        nas_offset: FixedOffset::east_opt(0),
        ..Policy::default()
    };
    let now = t(20, 13);
    let s = reporting("a", now - Duration::minutes(1), t(19, 1));
    // Fire 20th 00:00 + 12 h grace ≤ 13:00 → deadline 20th 00:00 > last success.
    let standing = judge(&r, &s, Some(&daily()), &policy, now);
    assert!(standing.has(Kind::BackupOverdue));
    let earlier = judge(&r, &s, Some(&daily()), &policy, t(20, 11));
    assert!(!earlier.has(Kind::BackupOverdue));
}

#[test]
fn the_agents_overdue_flag_counts_without_a_schedule() {
    let now = t(20, 10);
    let r = row("a");
    let mut s = reporting("a", now, t(20, 1));
    s.pools[0].overdue = true;
    let standing = judge(&r, &s, None, &Policy::default(), now);
    assert!(matches!(
        standing.conditions[0],
        Condition::BackupOverdue {
            judged_by: Judge::Agent,
            ..
        }
    ));
}

#[test]
fn report_facts_become_conditions_in_severity_order() {
    let now = t(20, 10);
    let mut r = row("a");
    r.disabled = true;
    r.published_revision = Some(4);
    let mut s = reporting("a", now, t(20, 1));
    s.pools.push(PoolBackup {
        error_class: Some("auth".into()),
        ..pool("tank", "FAILED", None)
    });
    s.config_state = Some(ConfigState::Failed);
    s.config_errors = 2;
    s.drift = 1;
    s.guid = Some("AAAA".into());
    s.checklist_failing = 3;
    s.checklist_unknown = 1;
    s.dropped = crate::store::DropTally {
        total: 2,
        last_at: Some(now - Duration::days(1)),
    };
    let doc = DocumentFacts {
        guid: Some("bbbb".into()),
        ..daily()
    };
    let twins = ["b".to_owned()];
    let standing = assess(
        DeviceFacts {
            row: &r,
            state: &s,
            document: Some(&doc),
            guid_twins: &twins,
        },
        &Policy::default(),
        now,
    );
    assert_eq!(
        kinds(&standing),
        [
            Kind::BackupFailing,
            // Never succeeded since registration (19 days ago): overdue by the clock too.
            Kind::BackupOverdue,
            Kind::ApplyFailed,
            Kind::Drifted,
            Kind::GuidMismatch,
            Kind::CloneSuspected,
            Kind::ChecklistFailing,
            Kind::ReportsDropped,
            Kind::Disabled,
            Kind::RevisionPending,
            Kind::ChecklistUnknown,
        ]
    );
    // Old drops no longer count; a GUID that matches but for case is no mismatch.
    s.dropped.last_at = Some(now - Duration::days(8));
    s.guid = Some("BBBB".into());
    let standing = judge(&r, &s, Some(&doc), &Policy::default(), now);
    assert!(!standing.has(Kind::ReportsDropped) && !standing.has(Kind::GuidMismatch));
}

#[test]
fn refused_hides_the_pending_revision_and_no_backup_is_unknown() {
    let now = t(20, 10);
    let mut r = row("a");
    r.published_revision = Some(9);
    let mut s = reporting("a", now, t(20, 1));
    s.config_state = Some(ConfigState::Refused);
    let standing = judge(&r, &s, None, &Policy::default(), now);
    assert_eq!(kinds(&standing), [Kind::DocumentRefused]);
    s.config_state = Some(ConfigState::Applied);
    s.config_revision = Some(9);
    s.pools.clear();
    let standing = judge(&r, &s, None, &Policy::default(), now);
    assert_eq!(kinds(&standing), [Kind::NoBackupReported]);
    assert_eq!(standing.verdict, Verdict::Unknown);
}

#[test]
fn twins_are_found_by_guid_case_insensitively() {
    let mut a = blank_state("a");
    a.guid = Some("ABC".into());
    let mut b = blank_state("b");
    b.guid = Some("abc".into());
    let mut c = blank_state("c");
    c.guid = Some("other".into());
    let twins = guid_twins(&[a, b, c, blank_state("d")]);
    assert_eq!(twins.get("a"), Some(&vec!["b".to_owned()]));
    assert_eq!(twins.get("b"), Some(&vec!["a".to_owned()]));
    assert_eq!(twins.len(), 2);
}

#[test]
fn rank_puts_the_worst_first() {
    let standing = |name: &str, kinds: &[Kind]| Standing {
        device: name.to_owned(),
        verdict: kinds
            .iter()
            .map(|k| k.verdict())
            .min()
            .unwrap_or(Verdict::Healthy),
        conditions: kinds
            .iter()
            .map(|k| match k {
                Kind::BackupFailing => Condition::BackupFailing {
                    pool: "p".into(),
                    state: "FAILED".into(),
                    error_class: None,
                },
                Kind::BackupOverdue => Condition::BackupOverdue {
                    pool: "p".into(),
                    last_success: None,
                    deadline: None,
                    judged_by: Judge::Agent,
                },
                Kind::Silent => Condition::Silent { last_report: None },
                Kind::DocumentRefused => Condition::DocumentRefused { errors: 1 },
                Kind::ChecklistFailing => Condition::ChecklistFailing { items: 1 },
                Kind::ReportsDropped => Condition::ReportsDropped {
                    total: 1,
                    last_at: None,
                },
                Kind::AwaitingFirstReport => Condition::AwaitingFirstReport,
                Kind::Disabled => Condition::Disabled,
                other => panic!("{other:?}"),
            })
            .collect(),
        pools: Vec::new(),
        report_age: None,
        silent: false,
    };
    let mut all = vec![
        standing("healthy", &[]),
        standing("notice", &[Kind::Disabled]),
        standing("unknown", &[Kind::AwaitingFirstReport]),
        standing("dropped", &[Kind::ReportsDropped]),
        standing("checklist", &[Kind::ChecklistFailing]),
        standing("refused", &[Kind::DocumentRefused]),
        standing("silent", &[Kind::Silent]),
        standing("overdue", &[Kind::BackupOverdue]),
        standing("failing", &[Kind::BackupFailing]),
        standing("failing-and-silent", &[Kind::BackupFailing, Kind::Silent]),
        standing("a-failing", &[Kind::BackupFailing]),
    ];
    rank(&mut all);
    let order: Vec<&str> = all.iter().map(|s| s.device.as_str()).collect();
    assert_eq!(
        order,
        [
            "failing-and-silent",
            "a-failing",
            "failing",
            "overdue",
            "silent",
            "refused",
            "checklist",
            "dropped",
            "unknown",
            "notice",
            "healthy",
        ]
    );
}
