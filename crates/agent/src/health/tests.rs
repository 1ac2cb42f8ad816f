//! Health evaluation table tests on hand-built observations (the simulator-backed
//! scenarios live in `tests/it/health_*.rs`).

use chrono::{DateTime, Utc};

use super::*;

use chrono::{FixedOffset, TimeZone};
use serde_json::json;

use crate::b2::{self, B2Report, CheckId, Finding};
use crate::desired::DesiredState;
use crate::middleware::Job;
use crate::observe::Observed;
use crate::plan::{self, Ownership};
use crate::zfs::DEFAULT_GUID_PROPERTY;

const GUID: &str = "9babab19-acc0-4587-aa05-ccd8103a1148";
const CANARIES: &[&str] = &[
    "CANARY-B2-APPKEY-7f3a9c",
    "CANARY-ENC-PASSWORD-2b8e41",
    "CANARY-ENC-SALT-9d0c55",
    "CANARY-SNMP-AUTH-61aa07",
    "CANARY-SNMP-PRIV-c4e2f8",
];

pub(crate) fn at(day: u32, h: u32, m: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, day, h, m, 0).unwrap()
}

/// "Now" in these tests: Monday 2026-11-23 10:30 UTC (NAS on UTC).
pub(crate) fn now() -> DateTime<Utc> {
    at(23, 10, 30)
}

pub(crate) fn job(value: serde_json::Value) -> Job {
    serde_json::from_value(value).unwrap()
}

pub(crate) fn ms(t: DateTime<Utc>) -> serde_json::Value {
    json!({"$date": t.timestamp_millis()})
}

pub(crate) fn success(started: DateTime<Utc>, finished: DateTime<Utc>) -> Job {
    job(
        json!({"id": 40, "state": "SUCCESS", "time_started": ms(started), "time_finished": ms(finished)}),
    )
}

/// A box provisioned exactly as the document says (the planner's in-memory apply).
pub(crate) struct BoxState {
    pub(crate) desired: DesiredState,
    pub(crate) observed: Observed,
    pub(crate) obs: HealthObservations,
}

pub(crate) fn passing_b2(pools: &[&str]) -> B2Report {
    let mut findings: Vec<Finding> = CheckId::ALL
        .iter()
        .filter(|id| !matches!(id, CheckId::PoolArchiveExcluded | CheckId::PoolEncryptionOn))
        .map(|id| Finding::new(*id, b2::Status::Pass, "ok"))
        .collect();
    for pool in pools {
        for id in [CheckId::PoolEncryptionOn, CheckId::PoolArchiveExcluded] {
            findings.push(Finding::for_pool(id, pool, b2::Status::Pass, "ok"));
        }
    }
    B2Report {
        checked_at: now(),
        bucket: "truenas-a1b2c3d4e5f670718293a4b5c6d7e8f9".into(),
        findings,
    }
}

pub(crate) fn healthy_box() -> BoxState {
    let desired = plan::tests::doc();
    let mut fresh = plan::tests::fresh(&["pool0", "pool1"]);
    fresh.pools[0]
        .user_properties
        .insert(DEFAULT_GUID_PROPERTY.into(), GUID.into());
    let p = plan::plan(
        &desired,
        &fresh,
        &Ownership::default(),
        &plan::tests::inputs(&desired),
    );
    let (mut observed, ownership) = plan::tests::apply_in_memory(&p, &fresh, &Ownership::default());
    for task in &mut observed.cloud_sync {
        task.last_run = Some(crate::middleware::JobState::Success);
    }
    let mut obs = HealthObservations::empty(FixedOffset::east_opt(0).unwrap());
    obs.ownership = ownership.clone();
    for (pool, rec) in &ownership.cloud_sync {
        let _ = pool;
        obs.runs.insert(
            rec.id,
            TaskRuns {
                last: Some(success(at(23, 0, 0), at(23, 0, 40))),
                last_success: Some(success(at(23, 0, 0), at(23, 0, 40))),
                dry_run_shown: false,
            },
        );
    }
    for rec in ownership.snapshot_tasks.values() {
        obs.snapshot_states.insert(
            rec.id,
            SnapshotTaskState {
                state: "FINISHED".into(),
                datetime: Some(at(23, 10, 0)),
                error: None,
                last_snapshot: None,
            },
        );
    }
    for pool in ["pool0", "pool1"] {
        obs.snapshots.insert(
            pool.into(),
            SnapshotListing {
                prefix: "auto-".into(),
                root_names: Ok(vec![
                    "auto-2026-11-23_09-00".into(),
                    "auto-2026-11-23_10-00".into(),
                ]),
                count: Ok(48),
            },
        );
    }
    obs.alerts = Some(Vec::new());
    obs.b2 = Some(passing_b2(&["pool0", "pool1"]));
    BoxState {
        desired,
        observed,
        obs,
    }
}

impl BoxState {
    pub(crate) fn eval(&self) -> Health {
        evaluate(&self.desired, &self.observed, &self.obs, now())
    }

    pub(crate) fn task_id(&self, pool: &str) -> u64 {
        self.obs.ownership.cloud_sync[pool].id
    }

    pub(crate) fn set_last(&mut self, pool: &str, job: Job) {
        let id = self.task_id(pool);
        self.obs.runs.get_mut(&id).unwrap().last = Some(job);
    }

    pub(crate) fn item(health: &Health, id: &str) -> ChecklistItem {
        health
            .checklist
            .items
            .iter()
            .find(|i| i.id == id)
            .unwrap_or_else(|| panic!("no item {id}"))
            .clone()
    }
}

pub(crate) fn auth_failure_text() -> &'static str {
    "2026/11/23 00:00:01 CRITICAL: Failed to create file system for \"encrypted:/\": failed to make remote \"remote:truenas-a1b2c3d4e5f670718293a4b5c6d7e8f9/9babab19-acc0-4587-aa05-ccd8103a1148/pool0\" to wrap: failed to authorize account: failed to authenticate: (401 unauthorized)"
}

#[test]
fn a_task_showing_only_a_dry_run_is_unknown_not_ok() {
    let mut b = healthy_box();
    let id = b.task_id("pool0");
    // Its `job` field was a dry run and no real run is left in memory.
    b.obs.runs.insert(
        id,
        TaskRuns {
            last: None,
            last_success: None,
            dry_run_shown: true,
        },
    );
    let h = b.eval();
    let sync = h.cloud_sync.iter().find(|s| s.pool == "pool0").unwrap();
    assert_eq!(sync.state, SyncState::Unknown);
    assert_eq!(sync.level, Level::Unknown);
    assert!(sync.message.contains("only a dry run"), "{}", sync.message);
    assert!(sync.next_step.as_deref().unwrap().contains("Run Now"));
    // The runs could not be read: `Observed`'s view of the dry run gives the same.
    b.obs.runs.remove(&id);
    if let Some(t) = b.observed.cloud_sync.iter_mut().find(|t| t.id == id) {
        t.last_run = None;
        t.dry_run_shown = true;
    }
    let h = b.eval();
    let sync = h.cloud_sync.iter().find(|s| s.pool == "pool0").unwrap();
    assert_eq!(sync.state, SyncState::Unknown);
}

#[test]
fn healthy_box_is_ok_and_passes_the_checklist() {
    let b = healthy_box();
    let h = b.eval();
    assert_eq!(h.problems(), Vec::new(), "{:#?}", h.problems());
    assert_eq!(h.level(), Level::Ok);
    for sync in &h.cloud_sync {
        assert_eq!(sync.state, SyncState::Success);
        assert_eq!(sync.task_source, Some(TaskSource::Owned));
        assert!(!sync.overdue);
        assert_eq!(sync.last_success, Some(at(23, 0, 40)));
        // 10:30 is within the 12 h grace of tonight's 00:00 fire: yesterday's fire is due.
        assert_eq!(sync.due_since, Some(at(22, 0, 0)));
    }
    for snap in &h.snapshots {
        assert_eq!(snap.latest.as_deref(), Some("auto-2026-11-23_10-00"));
        assert_eq!(snap.latest_age_s, Some(30 * 60));
        assert_eq!(snap.count, Some(48));
        assert!(!snap.overdue);
    }
    assert_eq!(
        h.checklist.verdict(),
        checklist::Verdict::Pass,
        "{:#?}",
        h.checklist
    );
    let c = h.checklist.counts();
    assert_eq!((c.fail, c.deviates, c.unknown, c.not_checked), (0, 0, 0, 4));
    // 10 box-wide + 11 task rules × 2 + 4 per-pool × 2 + HaloPSA + 5 supplementary.
    assert_eq!(c.pass + c.not_checked, 10 + 22 + 8 + 1 + 5);
    let ids: Vec<&str> = h.checklist.items.iter().map(|i| i.id.as_str()).collect();
    assert_eq!(
        &ids[..4],
        [
            "snmp.v3_only",
            "guid.zfs_property",
            "guid.ninjaone",
            "b2.bucket_name"
        ]
    );
    assert!(ids.contains(&"cloud_sync.mode/pool1"));
    let bucket = BoxState::item(&h, "b2.bucket_name");
    assert!(
        bucket.detail.contains("truenas-{org-flat}-{loc-short}"),
        "{}",
        bucket.detail
    );
    let central_item = BoxState::item(&h, "itglue.encryption");
    assert_eq!(central_item.status.wire(), "unknown");
    assert_eq!(central_item.scope, ItemScope::Central);
}

#[test]
fn auth_failure_fails_with_the_next_step() {
    let mut b = healthy_box();
    b.set_last(
        "pool0",
        job(
            json!({"id": 41, "state": "FAILED", "error": auth_failure_text(),
                   "time_started": ms(at(23, 0, 0)), "time_finished": ms(at(23, 0, 1))}),
        ),
    );
    let id = b.task_id("pool0");
    b.obs.runs.get_mut(&id).unwrap().last_success = Some(success(at(22, 0, 0), at(22, 0, 30)));
    let h = b.eval();
    let sync = &h.cloud_sync[0];
    assert_eq!(sync.state, SyncState::Failed);
    assert_eq!(sync.failure.as_ref().unwrap().class, ErrorClass::Auth);
    assert_eq!(sync.level, Level::Failing);
    assert!(
        sync.next_step
            .as_deref()
            .unwrap()
            .contains("Verify Credential")
    );
    assert_eq!(sync.last_success, Some(at(22, 0, 30)));
    assert!(
        !sync.overdue,
        "within the grace of tonight's fire yesterday's success counts"
    );
    let part = report::health_section(&h);
    assert_eq!(part.cloud_sync[0].error_class.as_deref(), Some("auth"));
    assert_eq!(part.cloud_sync[0].state, "FAILED");
    assert_eq!(h.level(), Level::Failing);
}

#[test]
fn retention_only_failure_is_expected_and_counts_as_success() {
    let mut b = healthy_box();
    let error = format!(
        "2026/11/23 00:14:02 ERROR : old.docx.bin: Couldn't delete: failed to hide \"{GUID}/pool0/old.docx.bin\": file is locked by object lock retention (403 access_denied)\n\
         2026/11/23 00:14:03 ERROR : Attempt 3/3 failed with 1 errors and: failed to delete 1 files\n\
         2026/11/23 00:14:03 NOTICE: Failed to sync: failed to delete 1 files"
    );
    b.set_last(
        "pool0",
        job(json!({"id": 42, "state": "FAILED", "error": error,
                   "time_started": ms(at(23, 0, 0)), "time_finished": ms(at(23, 0, 14))})),
    );
    let id = b.task_id("pool0");
    b.obs.runs.get_mut(&id).unwrap().last_success = None;
    let h = b.eval();
    let sync = &h.cloud_sync[0];
    assert_eq!(
        sync.failure.as_ref().unwrap().class,
        ErrorClass::RetentionLocked
    );
    assert_eq!(sync.level, Level::Ok, "{}", sync.message);
    assert_eq!(sync.last_success, Some(at(23, 0, 14)));
    assert_eq!(
        sync.last_success_source,
        Some(SuccessSource::ExpectedFailure)
    );
    assert!(!sync.overdue);
    assert!(sync.message.contains("Object Lock"));
    assert_eq!(
        report::health_section(&h).cloud_sync[0]
            .error_class
            .as_deref(),
        Some("retention_locked")
    );
    assert_eq!(h.level(), Level::Ok);
}

#[test]
fn never_ran_is_a_warning_until_a_fire_passes_then_overdue() {
    let mut b = healthy_box();
    let id = b.task_id("pool0");
    b.obs.runs.insert(id, TaskRuns::default());
    let h = b.eval();
    let sync = &h.cloud_sync[0];
    assert_eq!(sync.state, SyncState::NeverRun);
    assert_eq!(sync.level, Level::Warning);
    assert!(!sync.overdue, "first seen now: not overdue yet");
    assert!(sync.next_step.as_deref().unwrap().contains("Run Now"));
    assert_eq!(
        BoxState::item(&h, "cloud_sync.first_sync/pool0").status,
        ItemStatus::Fail
    );
    // Known for two days: overdue.
    b.obs.memory.cloud_sync.insert(
        "pool0".into(),
        memory::TaskMemory {
            task_id: id,
            first_seen: at(21, 9, 0),
            last_success: None,
        },
    );
    let h = b.eval();
    assert!(h.cloud_sync[0].overdue);
    assert_eq!(h.cloud_sync[0].level, Level::Failing);
    assert_eq!(report::health_section(&h).cloud_sync[0].state, "NEVER_RUN");
}

#[test]
fn remembered_success_survives_a_middleware_restart() {
    let mut b = healthy_box();
    let id = b.task_id("pool0");
    // The persisted copy of the last run (id null) failed; the SUCCESS job is gone.
    b.obs.runs.insert(
        id,
        TaskRuns {
            last: Some(job(json!({"id": null, "state": "ABORTED",
                                   "time_finished": ms(at(23, 1, 0))}))),
            last_success: None,
            dry_run_shown: false,
        },
    );
    b.obs.memory.cloud_sync.insert(
        "pool0".into(),
        memory::TaskMemory {
            task_id: id,
            first_seen: at(1, 0, 0),
            last_success: Some(at(23, 0, 50)),
        },
    );
    let h = b.eval();
    let sync = &h.cloud_sync[0];
    assert_eq!(sync.last_success, Some(at(23, 0, 50)));
    assert_eq!(sync.last_success_source, Some(SuccessSource::Remembered));
    assert_eq!(sync.state, SyncState::Aborted);
    assert_eq!(sync.level, Level::Warning);
}

#[test]
fn overdue_snapshots_fail() {
    let mut b = healthy_box();
    b.obs.snapshots.get_mut("pool1").unwrap().root_names = Ok(vec!["auto-2026-11-23_05-00".into()]);
    let h = b.eval();
    let snap = &h.snapshots[1];
    assert!(snap.overdue);
    assert_eq!(snap.level, Level::Failing);
    assert_eq!(snap.latest_age_s, Some(5 * 3600 + 30 * 60));
    assert!(snap.message.contains("5h 30m old"), "{}", snap.message);
    assert!(
        h.problems()
            .iter()
            .any(|p| p.area == Area::Snapshots && p.subject.as_deref() == Some("pool1"))
    );
}

#[test]
fn snapshot_task_error_and_unreadable_listing() {
    let mut b = healthy_box();
    let id = b.obs.ownership.snapshot_tasks["pool0"].id;
    b.obs.snapshot_states.get_mut(&id).unwrap().state = "ERROR".into();
    b.obs.snapshot_states.get_mut(&id).unwrap().error = Some("out of space".into());
    b.obs.snapshots.get_mut("pool1").unwrap().root_names = Err("timed out".into());
    let h = b.eval();
    assert_eq!(h.snapshots[0].level, Level::Failing);
    assert!(h.snapshots[0].message.contains("out of space"));
    assert_eq!(h.snapshots[1].level, Level::Unknown);
    assert!(!h.snapshots[1].overdue);
}

#[test]
fn snmp_v2c_community_fails() {
    let mut b = healthy_box();
    b.observed.snmp.v3 = false;
    b.observed.snmp.community = "public".into();
    let h = b.eval();
    assert_eq!(h.snmp.level, Level::Failing);
    assert!(!h.snmp.community_empty);
    assert!(h.snmp.findings.iter().any(|f| f.contains("v1/v2c")));
    let item = BoxState::item(&h, "snmp.v3_only");
    assert_eq!(item.status, ItemStatus::Fail);
    assert!(item.next_step.as_deref().unwrap().contains("SOP 1.2"));
}

#[test]
fn b2_findings_map_onto_sop_items() {
    let mut b = healthy_box();
    let report = b.obs.b2.as_mut().unwrap();
    for f in &mut report.findings {
        if f.id == CheckId::BucketObjectLock {
            f.status = b2::Status::Fail;
            f.detail = "Object Lock is not enabled".into();
        }
        if f.id == CheckId::PoolEncryptionOn && f.pool.as_deref() == Some("pool1") {
            f.status = b2::Status::Fail;
            f.detail = "plaintext object found".into();
        }
        if f.id == CheckId::KeyLeastPrivilege {
            f.status = b2::Status::Info;
            f.detail = "has writeFiles".into();
        }
    }
    let h = b.eval();
    assert_eq!(
        BoxState::item(&h, "b2.object_lock").status,
        ItemStatus::Fail
    );
    assert_eq!(
        BoxState::item(&h, "b2.encryption_verified/pool1").status,
        ItemStatus::Fail
    );
    assert_eq!(
        BoxState::item(&h, "b2.encryption_verified/pool0").status,
        ItemStatus::Pass
    );
    let info = BoxState::item(&h, "b2.key.least_privilege");
    assert_eq!(info.status, ItemStatus::Pass);
    assert!(info.detail.starts_with("For information"));
    assert_eq!(h.checklist.verdict(), checklist::Verdict::Fail);
    // Without a B2 run, B2 items are unknown and the verdict undetermined.
    b.obs.b2 = None;
    let h = b.eval();
    assert_eq!(
        BoxState::item(&h, "b2.object_lock").status,
        ItemStatus::Unknown
    );
    assert_eq!(h.checklist.verdict(), checklist::Verdict::Undetermined);
}

#[test]
fn task_field_drift_fails_its_items() {
    let mut b = healthy_box();
    let t = &mut b.observed.cloud_sync[0];
    t.exclude = vec!["/Archive/**".into()];
    t.attributes.chunk_size = 5;
    t.encryption = false;
    t.attributes.folder = "/wrong/pool0".into();
    let h = b.eval();
    for id in [
        "cloud_sync.exclude/pool0",
        "cloud_sync.chunk_size/pool0",
        "cloud_sync.remote_encryption/pool0",
        "cloud_sync.folder/pool0",
    ] {
        let item = BoxState::item(&h, id);
        assert_eq!(item.status, ItemStatus::Fail, "{id}: {}", item.detail);
        assert!(item.next_step.is_some());
    }
    assert_eq!(
        BoxState::item(&h, "cloud_sync.exclude/pool1").status,
        ItemStatus::Pass
    );
    assert!(
        BoxState::item(&h, "cloud_sync.remote_encryption/pool0")
            .detail
            .contains("plaintext")
    );
}

#[test]
fn missing_tasks_and_missing_pools() {
    let mut b = healthy_box();
    b.observed.cloud_sync.retain(|t| t.path != "/mnt/pool1");
    b.observed.pools.retain(|p| p.name != "pool1");
    let h = b.eval();
    assert_eq!(
        h.cloud_sync.len(),
        1,
        "pool1 is not imported: not a managed pool"
    );
    let missing_pool = h.pools.iter().find(|p| p.name == "pool1").unwrap();
    assert!(!missing_pool.imported);
    assert_eq!(missing_pool.level, Level::Failing);
    let mut b = healthy_box();
    b.observed.cloud_sync.retain(|t| t.path != "/mnt/pool1");
    let h = b.eval();
    assert_eq!(h.cloud_sync[1].state, SyncState::Missing);
    assert_eq!(h.cloud_sync[1].level, Level::Failing);
    assert_eq!(
        BoxState::item(&h, "cloud_sync.mode/pool1").status,
        ItemStatus::Fail
    );
}

#[test]
fn dataset_locked_task() {
    let mut b = healthy_box();
    b.observed.cloud_sync[0].locked = true;
    b.set_last(
        "pool0",
        job(
            json!({"id": 43, "state": "FAILED", "error": "Dataset is locked",
                                    "time_finished": ms(at(23, 0, 0))}),
        ),
    );
    let h = b.eval();
    assert_eq!(
        h.cloud_sync[0].failure.as_ref().unwrap().class,
        ErrorClass::DatasetLocked
    );
    assert!(
        h.cloud_sync[0]
            .next_step
            .as_deref()
            .unwrap()
            .contains("Unlock")
    );
}

#[test]
fn hand_provisioned_box_without_document_or_ownership() {
    let mut b = healthy_box();
    b.obs.ownership = Ownership::default();
    let h = evaluate_nas(&b.observed, &b.obs, now());
    assert_eq!(h.cloud_sync.len(), 2);
    assert!(
        h.cloud_sync
            .iter()
            .all(|s| s.task_source == Some(TaskSource::Matched))
    );
    assert!(
        h.snapshots
            .iter()
            .all(|s| s.task_source == Some(TaskSource::Matched))
    );
    assert!(h.checklist.items.is_empty());
    assert_eq!(h.level(), Level::Ok, "{:#?}", h.problems());
}

#[test]
fn no_secret_reaches_health_report_or_checklist() {
    let mut b = healthy_box();
    let leaky = "2026/11/23 00:00:01 ERROR : x: Failed to copy: crypt password=CANARY-ENC-PASSWORD-2b8e41 \
                 salt CANARY-ENC-SALT-9d0c55 key CANARY-B2-APPKEY-7f3a9c snmp CANARY-SNMP-AUTH-61aa07 CANARY-SNMP-PRIV-c4e2f8";
    b.set_last(
        "pool0",
        job(json!({"id": 44, "state": "FAILED", "error": leaky,
                                    "logs_excerpt": leaky, "time_finished": ms(at(23, 0, 5))})),
    );
    b.observed.snmp.community = "CANARY-SNMP-AUTH-61aa07".into();
    b.obs.read_errors.push(format!("alerts: {leaky}"));
    b.obs.alerts = Some(vec![Alert {
        klass: "ApiKeyRevoked".into(),
        level: "WARNING".into(),
        text: leaky.into(),
        datetime: None,
    }]);
    let h = b.eval();
    let all = [
        serde_json::to_string(&h).unwrap(),
        serde_json::to_string(&report::health_section(&h)).unwrap(),
        serde_json::to_string(&report::checklist_items(&h.checklist)).unwrap(),
        serde_json::to_string(&h.problems()).unwrap(),
        format!("{h:?}"),
    ];
    for text in all {
        for canary in CANARIES {
            assert!(!text.contains(canary), "{canary} leaked");
        }
    }
}

#[test]
fn report_parts_have_the_contract_shape() {
    let b = healthy_box();
    let h = b.eval();
    let health = serde_json::to_value(report::health_section(&h)).unwrap();
    let sync = &health["cloud_sync"][0];
    let mut keys: Vec<&str> = sync
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        [
            "error_class",
            "last_finished",
            "last_started",
            "last_success",
            "message",
            "overdue",
            "pool",
            "state",
            "task_id"
        ]
    );
    assert_eq!(sync["last_success"], "2026-11-23T00:40:00Z");
    assert_eq!(sync["error_class"], serde_json::Value::Null);
    let snap = &health["snapshots"][0];
    let mut keys: Vec<&str> = snap
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort_unstable();
    assert_eq!(keys, ["count", "latest", "latest_age_s", "pool", "task_id"]);
    let checklist = serde_json::to_value(report::checklist_items(&h.checklist)).unwrap();
    for item in checklist.as_array().unwrap() {
        let mut keys: Vec<&str> = item
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        keys.sort_unstable();
        assert_eq!(keys, ["detail", "id", "status", "title"]);
        assert!(["pass", "fail", "unknown"].contains(&item["status"].as_str().unwrap()));
    }
}

#[test]
fn parts_travel_in_a_full_report_and_secrets_are_scrubbed_again() {
    use crate::central::report::{self as wire, Report};
    let mut b = healthy_box();
    b.set_last(
        "pool0",
        job(
            json!({"id": 41, "state": "FAILED", "error": auth_failure_text(),
                   "time_started": ms(at(23, 0, 0)), "time_finished": ms(at(23, 0, 1))}),
        ),
    );
    let h = b.eval();
    let mut report = Report::new(now());
    report.health = report::health_section(&h);
    report.checklist = report::checklist_items(&h.checklist);
    let bytes = wire::encode(&report, 0, &b.desired.secrets());
    let back = wire::decode(&bytes).unwrap();
    assert_eq!(back.health, report.health);
    assert_eq!(back.checklist.len(), h.checklist.items.len());
    assert_eq!(
        back.health.cloud_sync[0].error_class.as_deref(),
        Some("auth")
    );
    let text = String::from_utf8(bytes).unwrap();
    for canary in CANARIES {
        assert!(!text.contains(canary));
    }
}
