//! The checklist answers "does this box meet the SOP?" (issue 13.1), a second SYNC task
//! on the agent's bucket folder is a failing problem (13.12), unknown B2 items say how to
//! get an answer (13.15), and the wording items of 13.17 (a failing item is a FAILING
//! problem; no next step claims `apply` writes the GUID; no "bucket the NAS's bucket").

#![allow(
    clippy::too_many_lines,
    reason = "one scenario per test, asserted item by item"
)]

use serde_json::json;

use super::checklist::{DEVIATES, Verdict};
use super::tests::{BoxState, at, auth_failure_text, healthy_box, job, ms, now};
use super::*;
use crate::b2;
use crate::desired::DesiredState;
use crate::plan;

/// The box `b` after a pass of `desired` (the box follows the document), with the
/// document swapped in.
fn following(mut b: BoxState, desired: DesiredState) -> BoxState {
    let p = plan::plan(
        &desired,
        &b.observed,
        &b.obs.ownership,
        &plan::tests::inputs(&desired),
    );
    let (observed, ownership) = plan::tests::apply_in_memory(&p, &b.observed, &b.obs.ownership);
    b.observed = observed;
    b.obs.ownership = ownership;
    b.desired = desired;
    b
}

/// The document of the issue: every override the SOP forbids.
fn issue_document(enabled: bool) -> DesiredState {
    plan::tests::doc_with(|v| {
        v["cloud_sync"]["exclude"] = json!([]);
        v["cloud_sync"]["filename_encryption"] = json!(true);
        v["cloud_sync"]["fast_list"] = json!(false);
        v["cloud_sync"]["chunk_size_mib"] = json!(5);
        v["cloud_sync"]["schedule"] = json!("0 0 * * 0");
        v["cloud_sync"]["enabled"] = json!(enabled);
        v["cloud_sync"]["bandwidth"]["business_percent"] = json!(55);
        v["cloud_sync"]["bandwidth"]["off_hours_percent"] = json!(45);
    })
}

const TASK_ITEMS: [&str; 6] = [
    "cloud_sync.exclude",
    "cloud_sync.filename_encryption",
    "cloud_sync.fast_list",
    "cloud_sync.chunk_size",
    "cloud_sync.schedule",
    "cloud_sync.bandwidth",
];

#[test]
fn the_issue_document_passes_none_of_the_sop_items() {
    let b = following(healthy_box(), issue_document(false));
    assert!(
        b.observed
            .cloud_sync
            .iter()
            .all(|t| !t.enabled && t.attributes.chunk_size == 5),
        "the box follows the document"
    );
    let h = b.eval();
    for pool in ["pool0", "pool1"] {
        for id in TASK_ITEMS {
            let item = BoxState::item(&h, &format!("{id}/{pool}"));
            assert_ne!(
                item.status,
                ItemStatus::Pass,
                "{id}/{pool}: {}",
                item.detail
            );
            assert_eq!(
                report::check_status(item.status),
                crate::central::report::CheckStatus::Fail,
                "{id}: on the wire a deviation is a failure to meet the SOP"
            );
            assert!(item.next_step.is_some(), "{id}");
        }
        // A disabled task fails "Daily at 00:00" whatever the document says.
        let schedule = BoxState::item(&h, &format!("cloud_sync.schedule/{pool}"));
        assert_eq!(schedule.status, ItemStatus::Fail, "{}", schedule.detail);
        assert!(schedule.detail.contains("DISABLED"), "{}", schedule.detail);
        for id in [
            "cloud_sync.exclude",
            "cloud_sync.filename_encryption",
            "cloud_sync.fast_list",
            "cloud_sync.chunk_size",
            "cloud_sync.bandwidth",
        ] {
            let item = BoxState::item(&h, &format!("{id}/{pool}"));
            assert_eq!(item.status, ItemStatus::Deviates, "{id}: {}", item.detail);
            assert!(item.detail.starts_with(DEVIATES), "{}", item.detail);
            assert_eq!(item.deviations.len(), 1, "{id}");
        }
    }
    let chunk = BoxState::item(&h, "cloud_sync.chunk_size/pool0");
    assert_eq!(chunk.deviations[0].setting, "cloud_sync.chunk_size_mib");
    assert_eq!(chunk.deviations[0].document, "5 MiB");
    assert_eq!(chunk.deviations[0].sop, "96 MiB");
    let exclude = BoxState::item(&h, "cloud_sync.exclude/pool0");
    assert_eq!(exclude.deviations[0].document, "nothing excluded");
    assert!(
        exclude.detail.contains("the Archive folders are uploaded"),
        "{}",
        exclude.detail
    );
    let bandwidth = BoxState::item(&h, "cloud_sync.bandwidth/pool0");
    assert!(
        bandwidth.deviations[0]
            .document
            .starts_with("55 % in business hours"),
        "{:?}",
        bandwidth.deviations
    );
    assert!(
        bandwidth.deviations[0]
            .sop
            .starts_with("20 % in business hours"),
        "{:?}",
        bandwidth.deviations
    );
    assert!(
        BoxState::item(&h, "cloud_sync.fast_list/pool0")
            .next_step
            .unwrap()
            .contains("remove the override"),
    );
    assert_eq!(
        h.checklist.verdict(),
        Verdict::Fail,
        "the disabled task fails"
    );
    let wire = report::checklist_items(&h.checklist);
    let fast_list = wire
        .iter()
        .find(|i| i.id == "cloud_sync.fast_list/pool0")
        .unwrap();
    assert!(
        fast_list.detail.starts_with(DEVIATES),
        "{}",
        fast_list.detail
    );
    // Deviations are warnings; the disabled task's schedule is a failing problem.
    let problems = h.problems();
    let level = |id: &str| {
        problems
            .iter()
            .find(|p| p.subject.as_deref() == Some(id))
            .map(|p| p.level)
    };
    assert_eq!(level("cloud_sync.chunk_size/pool0"), Some(Level::Warning));
    assert_eq!(level("cloud_sync.schedule/pool0"), Some(Level::Failing));

    // Enabled, the weekly schedule deviates too, and the whole checklist deviates.
    let b = following(healthy_box(), issue_document(true));
    let h = b.eval();
    let schedule = BoxState::item(&h, "cloud_sync.schedule/pool0");
    assert_eq!(schedule.status, ItemStatus::Deviates, "{}", schedule.detail);
    assert_eq!(schedule.deviations[0].document, "schedule 0 0 * * 0");
    assert_eq!(schedule.deviations[0].sop, "schedule 0 0 * * *");
    assert_eq!(h.checklist.verdict(), Verdict::Deviates);
    assert_eq!(h.checklist.counts().deviates, 12);
    assert_eq!(h.level(), Level::Warning, "{:#?}", h.problems());
}

#[test]
fn a_box_that_follows_neither_fails_and_one_that_follows_the_sop_passes() {
    // The document asks for 64 MiB; the box has 32: neither value.
    let d = plan::tests::doc_with(|v| v["cloud_sync"]["chunk_size_mib"] = json!(64));
    let mut b = following(healthy_box(), d);
    b.observed.cloud_sync[0].attributes.chunk_size = 32;
    // pool1's task still has the SOP's 96 MiB: it meets the SOP (drift is the plan's
    // question, not the checklist's).
    b.observed.cloud_sync[1].attributes.chunk_size = 96;
    let h = b.eval();
    let failing = BoxState::item(&h, "cloud_sync.chunk_size/pool0");
    assert_eq!(failing.status, ItemStatus::Fail);
    assert!(failing.detail.contains("32 MiB"), "{}", failing.detail);
    assert!(
        failing.detail.contains("the SOP says 96 MiB"),
        "{}",
        failing.detail
    );
    assert!(
        failing.detail.contains("the document sets 64 MiB"),
        "{}",
        failing.detail
    );
    let meets = BoxState::item(&h, "cloud_sync.chunk_size/pool1");
    assert_eq!(meets.status, ItemStatus::Pass);
    assert!(meets.detail.contains("drift"), "{}", meets.detail);
}

#[test]
fn snapshot_task_is_judged_against_hourly_14_days_recursive() {
    // 14 DAY is the SOP's 2 WEEK.
    let d = plan::tests::doc_with(|v| {
        v["snapshots"] = json!({"lifetime_value": 14, "lifetime_unit": "DAY"});
    });
    let h = following(healthy_box(), d).eval();
    let item = BoxState::item(&h, "snapshots.task/pool0");
    assert_eq!(item.status, ItemStatus::Pass, "{}", item.detail);

    // Every two hours, kept 30 days, not recursive: the document's choice, not the SOP.
    let d = plan::tests::doc_with(|v| {
        v["snapshots"] = json!({"schedule": "0 */2 * * *", "lifetime_value": 30,
                                "lifetime_unit": "DAY", "recursive": false});
    });
    let h = following(healthy_box(), d).eval();
    let item = BoxState::item(&h, "snapshots.task/pool0");
    assert_eq!(item.status, ItemStatus::Deviates, "{}", item.detail);
    let keys: Vec<&str> = item.deviations.iter().map(|d| d.setting.as_str()).collect();
    assert_eq!(
        keys,
        [
            "snapshots.schedule",
            "snapshots.lifetime_value/lifetime_unit",
            "snapshots.recursive"
        ]
    );

    // A disabled snapshot task fails, whatever the document says.
    let d = plan::tests::doc_with(|v| v["snapshots"] = json!({"enabled": false}));
    let h = following(healthy_box(), d).eval();
    let item = BoxState::item(&h, "snapshots.task/pool1");
    assert_eq!(item.status, ItemStatus::Fail, "{}", item.detail);
}

#[test]
fn bandwidth_without_a_plan_is_unknown_or_failing_never_pass() {
    let d = plan::tests::doc_with(|v| {
        v["cloud_sync"].as_object_mut().unwrap().remove("bandwidth");
    });
    let before = healthy_box();
    let limits = before.observed.cloud_sync[0].bwlimit.clone();
    let mut b = following(before, d);
    // No limit at all (what `apply` sets without a plan): the SOP's 20 %/80 % is
    // certainly not there.
    let h = b.eval();
    let none = BoxState::item(&h, "cloud_sync.bandwidth/pool1");
    assert_eq!(none.status, ItemStatus::Fail, "{}", none.detail);
    // A limit set by hand: the uplink is unknown, so is the item.
    b.observed.cloud_sync[0].bwlimit = limits;
    let h = b.eval();
    let kept = BoxState::item(&h, "cloud_sync.bandwidth/pool0");
    assert_eq!(kept.status, ItemStatus::Unknown, "{}", kept.detail);
    assert!(kept.next_step.unwrap().contains("cloud_sync.bandwidth"));
}

/// 13.12: another enabled PUSH task into the agent's bucket folder.
fn with_second_sync_task(b: &mut BoxState, enabled: bool) -> u64 {
    let mut other = b.observed.cloud_sync[0].clone();
    other.id = 40;
    other.description = "Old manual backup".into();
    other.path = "/mnt/pool0/shares".into();
    other.enabled = enabled;
    b.observed.cloud_sync.push(other);
    40
}

#[test]
fn a_second_sync_task_on_the_agents_folder_is_failing_everywhere() {
    let mut b = healthy_box();
    let id = with_second_sync_task(&mut b, true);
    let h = b.eval();
    assert_eq!(h.shared_folders.len(), 1);
    assert_eq!(h.shared_folders[0].other_id, id);
    let problem = h
        .problems()
        .into_iter()
        .find(|p| p.area == Area::Backup && p.subject.as_deref() == Some("pool0"))
        .expect("a backup problem for pool0");
    assert_eq!(problem.level, Level::Failing);
    assert!(problem.message.contains("#40"), "{}", problem.message);
    assert!(
        problem.next_step.contains("Delete task #40"),
        "{}",
        problem.next_step
    );
    assert_eq!(h.level(), Level::Failing);
    let folder = BoxState::item(&h, "cloud_sync.folder/pool0");
    assert_eq!(folder.status, ItemStatus::Fail, "{}", folder.detail);
    assert!(folder.detail.contains("delete each other's files"));
    let wire = report::checklist_items(&h.checklist);
    assert_eq!(
        wire.iter()
            .find(|i| i.id == "cloud_sync.folder/pool0")
            .unwrap()
            .status,
        crate::central::report::CheckStatus::Fail
    );
    // Without a document too (`status` before the daemon has one).
    let nas = evaluate_nas(&b.observed, &b.obs, now());
    assert!(
        nas.problems()
            .iter()
            .any(|p| p.level == Level::Failing && p.message.contains("#40"))
    );
    // Disabled, it is a warning: it deletes nothing yet.
    let mut b = healthy_box();
    with_second_sync_task(&mut b, false);
    let h = b.eval();
    assert_eq!(h.level(), Level::Warning, "{:#?}", h.problems());
    assert_eq!(
        BoxState::item(&h, "cloud_sync.folder/pool0").status,
        ItemStatus::Pass
    );
}

#[test]
fn unknown_b2_items_say_how_to_get_an_answer() {
    let mut b = healthy_box();
    // B2 unreachable: every finding unknown.
    for f in &mut b.obs.b2.as_mut().unwrap().findings {
        f.status = b2::Status::Unknown;
        f.detail = "B2 could not be reached: dial tcp: i/o timeout".into();
    }
    let h = b.eval();
    let b2_items: Vec<&ChecklistItem> = h
        .checklist
        .items
        .iter()
        .filter(|i| i.scope == ItemScope::B2)
        .collect();
    assert!(b2_items.len() > 10);
    for item in b2_items {
        assert_eq!(item.status, ItemStatus::Unknown, "{}", item.id);
        let step = item.next_step.as_deref().unwrap();
        for fix in [
            "compliance",
            "Create a key",
            "delete the old key",
            "SSE-B2",
            "lifecycle",
        ] {
            assert!(!step.contains(fix), "{}: {step}", item.id);
        }
        assert!(step.contains("verify"), "{}: {step}", item.id);
        assert!(step.contains("api.backblazeb2.com"), "{}: {step}", item.id);
    }
    // Not checked at all: run verify.
    b.obs.b2 = None;
    let h = b.eval();
    let step = BoxState::item(&h, "b2.object_lock").next_step.unwrap();
    assert!(step.contains("without --skip-b2"), "{step}");
    // A real failure still gets its fix.
    let mut b = healthy_box();
    for f in &mut b.obs.b2.as_mut().unwrap().findings {
        if f.id == b2::CheckId::BucketObjectLock {
            f.status = b2::Status::Fail;
        }
    }
    let h = b.eval();
    let step = BoxState::item(&h, "b2.object_lock").next_step.unwrap();
    assert!(step.contains("compliance"), "{step}");
}

#[test]
fn a_failing_checklist_item_is_always_a_failing_problem() {
    let mut b = healthy_box();
    let id = b.task_id("pool0");
    b.obs.runs.insert(id, TaskRuns::default());
    let h = b.eval();
    let item = BoxState::item(&h, "cloud_sync.first_sync/pool0");
    assert_eq!(item.status, ItemStatus::Fail);
    // The backup section calls a task that never ran a warning…
    assert_eq!(h.cloud_sync[0].level, Level::Warning);
    // …so the failing item is listed itself: "1 fail" comes with a FAILING problem.
    let problems = h.problems();
    assert!(
        problems.iter().any(|p| p.level == Level::Failing
            && p.subject.as_deref() == Some("cloud_sync.first_sync/pool0")),
        "{problems:#?}"
    );
    assert_eq!(h.level(), Level::Failing);
    // When the section already says FAILING (an auth failure), the item is not repeated.
    let mut b = healthy_box();
    b.set_last(
        "pool0",
        job(
            json!({"id": 41, "state": "FAILED", "error": auth_failure_text(),
                   "time_started": ms(at(23, 0, 0)), "time_finished": ms(at(23, 0, 1))}),
        ),
    );
    let id = b.task_id("pool0");
    b.obs.runs.get_mut(&id).unwrap().last_success = None;
    b.obs.memory.cloud_sync.clear();
    let h = b.eval();
    let problems = h.problems();
    assert!(
        !problems
            .iter()
            .any(|p| p.subject.as_deref() == Some("cloud_sync.first_sync/pool0")),
        "{problems:#?}"
    );
}

#[test]
fn next_steps_do_not_claim_apply_writes_the_guid_and_name_the_bucket() {
    let mut b = healthy_box();
    b.observed.pools[0]
        .user_properties
        .remove(crate::zfs::DEFAULT_GUID_PROPERTY);
    let h = b.eval();
    let step = BoxState::item(&h, "guid.zfs_property").next_step.unwrap();
    assert!(step.contains("identity ensure"), "{step}");
    assert!(!step.contains("(or `apply`)"), "{step}");
    assert!(step.contains("`apply` never writes the GUID"), "{step}");

    // Without a document the bucket is not known: the step names it by its rule.
    let mut b = healthy_box();
    b.set_last(
        "pool0",
        job(
            json!({"id": 41, "state": "FAILED", "error": auth_failure_text(),
                   "time_started": ms(at(23, 0, 0)), "time_finished": ms(at(23, 0, 1))}),
        ),
    );
    let h = evaluate_nas(&b.observed, &b.obs, now());
    let step = h.cloud_sync[0].next_step.as_deref().unwrap();
    assert!(!step.contains("bucket the NAS's bucket"), "{step}");
    assert!(
        step.contains("scoped to the NAS's bucket (truenas-"),
        "{step}"
    );
    let h = b.eval();
    assert!(
        h.cloud_sync[0]
            .next_step
            .as_deref()
            .unwrap()
            .contains("scoped to bucket truenas-a1b2c3d4e5f670718293a4b5c6d7e8f9")
    );
}
