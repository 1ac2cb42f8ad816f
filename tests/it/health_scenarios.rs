//! Health, the SOP checklist, `verify` and `status` against the simulator and the fake B2
//! server: a box provisioned by the SOP engine, then one thing broken per scenario, each
//! checked in `verify --json`, `status --json` and the report parts.
//!
//! The simulator stamps runs with the wall clock, so each test evaluates at the real
//! "now" (with a UTC offset of 0); every assertion tolerates where "now" falls (hourly
//! snapshots are named from now, the daily schedule's grace is 12 h).

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Duration as Span, FixedOffset, Timelike, Utc};
use serde_json::{Value, json};
use truenas_agent::apply::{ReconcileOptions, reconcile};
use truenas_agent::b2::ClientOptions;
use truenas_agent::cli::status::{Context, DocumentArg, report_with};
use truenas_agent::cli::verify::verify_with;
use truenas_agent::desired::{self, DesiredState};
use truenas_agent::health::assess::AssessOptions;
use truenas_agent::middleware::{ApiFlavor, Middleware};
use truenas_agent::state_dir::StateDir;
use truenas_agent::status::{StatusReport, render_text};
use truenas_agent::zfs::DEFAULT_GUID_PROPERTY;
use truenas_sim::scenario::{B2Account, Snapshot, TaskState};
use truenas_sim::{JobTiming, Scenario, Simulator};

use crate::fake_b2::{self, Config, FakeB2, FakeFile};
use crate::support::{SchemaChecked, assert_no_canary, assert_no_canary_in_dir};

const KEY_ID: &str = "0051a2b3c4d5e6f0000000001";
const APP_KEY: &str = "CANARY-B2-APPKEY-7f3a9c";
const BUCKET: &str = "truenas-a1b2c3d4e5f670718293a4b5c6d7e8f9";
const GUID: &str = "9babab19-acc0-4587-aa05-ccd8103a1148";
const POOLS: [&str; 2] = ["pool0", "pool1"];

/// rclone's output when B2 refuses the key (the TrueNAS job error keeps the last lines).
const AUTH_FAILURE: &str = "2026/11/23 00:00:01 CRITICAL: Failed to create file system for \"encrypted:/\": failed to make remote \"remote:truenas-a1b2c3d4e5f670718293a4b5c6d7e8f9/9babab19-acc0-4587-aa05-ccd8103a1148/pool0\" to wrap: failed to authorize account: failed to authenticate: (401 unauthorized)";

/// A sync whose only errors are deletes refused by Object Lock.
fn retention_failure() -> String {
    format!(
        "2026/11/23 00:14:02 ERROR : old.docx.bin: Couldn't delete: failed to hide \"{GUID}/pool0/old.docx.bin\": file is locked by object lock retention (403 access_denied)\n\
         2026/11/23 00:14:03 ERROR : Attempt 3/3 failed with 1 errors and: failed to delete 1 files\n\
         2026/11/23 00:14:03 NOTICE: Failed to sync: failed to delete 1 files"
    )
}

fn data(rel: &str) -> PathBuf {
    crate::support::repo_root().join("tests/data").join(rel)
}

fn document() -> DesiredState {
    let mut v: Value =
        serde_json::from_slice(&std::fs::read(data("desired/example.json")).unwrap()).unwrap();
    // Runs are started by each test, not by an action.
    v["actions"] = json!([]);
    desired::parse(&serde_json::to_vec(&v).unwrap()).unwrap()
}

/// A simulated box provisioned by the SOP engine, its state dir and its B2 bucket.
struct Rig {
    sim: Simulator,
    fake: FakeB2,
    _tmp: tempfile::TempDir,
    state: StateDir,
    desired: DesiredState,
    violations: Arc<Mutex<Vec<String>>>,
}

fn floor_hour(t: DateTime<Utc>) -> DateTime<Utc> {
    t.with_minute(0)
        .unwrap()
        .with_second(0)
        .unwrap()
        .with_nanosecond(0)
        .unwrap()
}

fn snapshot_name(t: DateTime<Utc>) -> String {
    t.format("auto-%Y-%m-%d_%H-%M").to_string()
}

impl Rig {
    async fn new(flavor: ApiFlavor, b2: impl FnOnce(&mut Config)) -> Rig {
        let mut scenario = Scenario::two_pools(flavor);
        scenario.b2_accounts.push(B2Account {
            account: KEY_ID.into(),
            valid: true,
            buckets: Some(vec![BUCKET.into()]),
        });
        let sim = Simulator::new(scenario).with_job_timing(JobTiming::Auto {
            duration: Duration::from_millis(30),
        });
        sim.update_state(|s| {
            let root = s.datasets.iter_mut().find(|d| d.name == "pool0").unwrap();
            root.user_properties
                .insert(DEFAULT_GUID_PROPERTY.into(), GUID.into());
        });
        let tmp = tempfile::tempdir().unwrap();
        let state = StateDir::open(tmp.path().join("state")).unwrap();
        let desired = document();
        let pass = reconcile(
            &sim.in_process(),
            &state,
            &desired,
            &ReconcileOptions::default(),
        )
        .await
        .unwrap();
        assert!(pass.converged(), "the SOP engine provisions the box");
        // Snapshots of the last two hours on each pool, as the hourly task takes them.
        let now = Utc::now();
        sim.update_state(|s| {
            for pool in POOLS {
                let task_id = s
                    .snapshot_tasks
                    .iter()
                    .find(|t| t.dataset == pool)
                    .unwrap()
                    .id;
                for hours in [1, 0] {
                    let at = floor_hour(now) - Span::hours(hours);
                    s.snapshots.push(Snapshot {
                        dataset: pool.into(),
                        name: snapshot_name(at),
                        createtxg: 0,
                        task_id: Some(task_id),
                        created_ms: at.timestamp_millis(),
                    });
                }
                let task = s
                    .snapshot_tasks
                    .iter_mut()
                    .find(|t| t.dataset == pool)
                    .unwrap();
                task.state = Some(TaskState {
                    state: "FINISHED".into(),
                    datetime_ms: floor_hour(now).timestamp_millis(),
                    error: None,
                    reason: None,
                    last_snapshot: Some(format!("{pool}@{}", snapshot_name(floor_hour(now)))),
                });
            }
            s.normalize();
        });
        let mut config = Config {
            key_id: KEY_ID.into(),
            ..Config::compliant(APP_KEY, &POOLS)
        };
        b2(&mut config);
        let fake = FakeB2::start(config).await;
        Rig {
            sim,
            fake,
            _tmp: tmp,
            state,
            desired,
            violations: Arc::new(Mutex::new(Vec::new())),
        }
    }

    fn mw(&self) -> SchemaChecked {
        SchemaChecked::new(&self.sim, &self.violations)
    }

    fn task_id(&self, pool: &str) -> i64 {
        let path = format!("/mnt/{pool}");
        let state = self.sim.state();
        let id = state
            .cloud_sync_tasks
            .iter()
            .find(|t| t.path == path)
            .unwrap()
            .id;
        i64::try_from(id).unwrap()
    }

    /// Runs the pool's Cloud Sync task as cron would and waits for its end (failing with
    /// `failure` if given).
    async fn run_sync(&self, pool: &str, failure: Option<&str>) {
        if let Some(text) = failure {
            self.sim.fail_next_sync(text);
        }
        let id = self.sim.run_cloud_sync(self.task_id(pool)).unwrap();
        let job = self
            .sim
            .in_process()
            .wait_job(id, Duration::from_secs(10))
            .await
            .unwrap();
        assert!(job.state.is_terminal());
    }

    async fn run_all_syncs(&self) {
        for pool in POOLS {
            self.run_sync(pool, None).await;
        }
    }

    fn options(&self, with_b2: bool) -> AssessOptions {
        AssessOptions {
            now: Utc::now(),
            offset: FixedOffset::east_opt(0).unwrap(),
            call_timeout: Duration::from_secs(5),
            b2: with_b2.then(|| ClientOptions {
                api_base: self.fake.base.clone(),
                request_timeout: Duration::from_secs(5),
                ..ClientOptions::default()
            }),
            guid_property: DEFAULT_GUID_PROPERTY.into(),
            root_pool: None,
        }
    }

    /// `verify --json` (with B2): the parsed output and the exit code.
    async fn verify(&self) -> (Value, u8) {
        let out = verify_with(
            &self.mw(),
            &self.state,
            &self.desired,
            &self.options(true),
            true,
        )
        .await;
        assert_no_canary("verify --json", &out.stdout);
        let text = verify_with(
            &self.mw(),
            &self.state,
            &self.desired,
            &self.options(true),
            false,
        )
        .await;
        assert_no_canary("verify", &text.stdout);
        assert_eq!(text.exit, out.exit, "text and JSON agree on the exit code");
        (serde_json::from_str(&out.stdout).unwrap(), out.exit)
    }

    /// `status --json` with or without the document (B2 from the last verify).
    async fn status(&self, with_document: bool) -> (StatusReport, Value) {
        let ctx = Context {
            state_dir: self.state.path().to_owned(),
            url: "unix:///var/run/middleware/middlewared.sock".into(),
            version: "test".into(),
            assess: self.options(false),
            central_config: None,
            host: None,
        };
        let doc = if with_document {
            DocumentArg::Read(Box::new(document()))
        } else {
            DocumentArg::None
        };
        let mw = self.mw();
        let report = report_with(Ok(&mw), &doc, &ctx).await;
        let json = serde_json::to_value(&report).unwrap();
        assert_no_canary("status --json", &json.to_string());
        assert_no_canary("status", &render_text(&report));
        (report, json)
    }

    fn finish(&self) {
        assert_no_canary_in_dir(self.state.path());
        let v = self.violations.lock().unwrap();
        assert!(
            v.is_empty(),
            "calls that break the API schema:\n{}",
            v.join("\n")
        );
    }
}

fn item<'a>(verify: &'a Value, id: &str) -> &'a Value {
    verify["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["id"] == id)
        .unwrap_or_else(|| panic!("no checklist item {id}"))
}

fn backup<'a>(status: &'a Value, pool: &str) -> &'a Value {
    status["backups"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["pool"] == pool)
        .unwrap()
}

fn report_sync<'a>(verify: &'a Value, pool: &str) -> &'a Value {
    verify["health"]["cloud_sync"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["pool"] == pool)
        .unwrap()
}

#[tokio::test]
async fn healthy_box_on_every_version() {
    for flavor in ApiFlavor::ALL {
        let rig = Rig::new(flavor, |_| {}).await;
        rig.run_all_syncs().await;
        rig.sim.clear_calls();
        let (verify, code) = rig.verify().await;
        assert_eq!(code, 0, "{flavor}: {verify:#}");
        assert_eq!(verify["verdict"], "pass");
        assert_eq!(verify["counts"]["fail"], 0);
        assert_eq!(verify["counts"]["not_checked"], 4);
        assert_eq!(item(&verify, "guid.ninjaone")["status"], "unknown");
        assert_eq!(item(&verify, "guid.ninjaone")["checked_by"], "central");
        assert_eq!(
            item(&verify, "b2.encryption_verified/pool1")["status"],
            "pass"
        );
        let sync = report_sync(&verify, "pool0");
        assert_eq!(sync["state"], "SUCCESS");
        assert_eq!(sync["overdue"], false);
        assert!(sync["last_success"].is_string());
        assert_eq!(verify["health"]["snapshots"][0]["count"], 2);
        // Health made only reads (the runs above were the test's, cleared before).
        assert!(
            rig.sim.write_calls().is_empty(),
            "{:?}",
            rig.sim.write_calls()
        );

        let (report, json) = rig.status(true).await;
        assert_eq!(report.exit_code, 0, "{flavor}: {:#?}", report.problems);
        assert_eq!(json["overall"], "healthy");
        assert_eq!(json["schema"], "truenas-agent.status/v1");
        assert_eq!(json["checklist"]["source"], "live");
        assert_eq!(json["b2"]["overall"], "pass", "the last verify's B2 result");
        assert_eq!(json["device"]["guid_matches"], true);
        assert_eq!(json["middleware"]["api"], flavor.as_str());
        // Without the document: task health from the ownership record, checklist from
        // the last verify.
        let (report, json) = rig.status(false).await;
        assert_eq!(report.exit_code, 0, "{:#?}", report.problems);
        assert_eq!(json["checklist"]["source"], "last_verify");
        assert_eq!(json["backups"].as_array().unwrap().len(), 2);
        rig.finish();
    }
}

async fn sync_failed_with_an_auth_error(flavor: ApiFlavor) {
    let rig = Rig::new(flavor, |_| {}).await;
    rig.run_sync("pool1", None).await;
    rig.run_sync("pool0", Some(AUTH_FAILURE)).await;
    let (verify, code) = rig.verify().await;
    assert_eq!(code, 2, "a failing item: exit 2 (the one rule)");
    let sync = report_sync(&verify, "pool0");
    assert_eq!(sync["state"], "FAILED");
    assert_eq!(sync["error_class"], "auth");
    assert!(
        sync["message"]
            .as_str()
            .unwrap()
            .contains("401 unauthorized")
    );
    assert_eq!(
        item(&verify, "cloud_sync.first_sync/pool0")["status"],
        "fail"
    );
    assert_eq!(
        item(&verify, "cloud_sync.first_sync/pool1")["status"],
        "pass"
    );
    let checklist_entry = verify["checklist"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["id"] == "cloud_sync.first_sync/pool0")
        .unwrap();
    assert!(
        checklist_entry["detail"]
            .as_str()
            .unwrap()
            .contains("Next step")
    );

    let (report, json) = rig.status(true).await;
    assert_eq!(report.exit_code, 2);
    let b = backup(&json, "pool0");
    assert_eq!(b["error_class"], "auth");
    assert_eq!(b["level"], "failing");
    assert!(
        b["next_step"]
            .as_str()
            .unwrap()
            .contains("Verify Credential")
    );
    assert!(
        b["excerpt"]
            .as_str()
            .unwrap()
            .contains("failed to authorize account")
    );
    let first = &json["problems"][0];
    assert_eq!(first["area"], "backup");
    assert_eq!(first["subject"], "pool0");
    rig.finish();
}
per_flavour!(sync_failed_with_an_auth_error);

async fn retention_locked_deletes_are_expected_not_failures(flavor: ApiFlavor) {
    let rig = Rig::new(flavor, |_| {}).await;
    rig.run_sync("pool1", None).await;
    rig.run_sync("pool0", Some(&retention_failure())).await;
    let (verify, code) = rig.verify().await;
    assert_eq!(code, 0, "{verify:#}");
    let sync = report_sync(&verify, "pool0");
    assert_eq!(
        sync["state"], "FAILED",
        "the middleware's state is reported as is"
    );
    assert_eq!(sync["error_class"], "retention_locked");
    assert_eq!(sync["overdue"], false);
    assert!(
        sync["last_success"].is_string(),
        "the run counts as a backup"
    );
    assert_eq!(
        item(&verify, "cloud_sync.first_sync/pool0")["status"],
        "pass"
    );

    let (report, json) = rig.status(true).await;
    assert_eq!(report.exit_code, 0, "{:#?}", report.problems);
    let b = backup(&json, "pool0");
    assert_eq!(b["level"], "ok");
    assert!(b["message"].as_str().unwrap().contains("expected"));
    // The middleware still raised its CloudSyncTaskFailed alert; it is listed, not a problem.
    assert!(
        json["alerts"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["klass"] == "CloudSyncTaskFailed")
    );
    rig.finish();
}
per_flavour!(retention_locked_deletes_are_expected_not_failures);

impl Rig {
    /// A UI "Dry Run" of the pool's task (`cloudsync.sync [id, {"dry_run": true}]`), run to
    /// its end: it sets the task's `job` field like a real run (`task_state.py`).
    async fn dry_run(&self, pool: &str) {
        let id = self
            .sim
            .admin_call(
                "cloudsync.sync",
                &[json!(self.task_id(pool)), json!({"dry_run": true})],
            )
            .unwrap();
        let job = self
            .sim
            .in_process()
            .wait_job(id.as_u64().unwrap(), Duration::from_secs(10))
            .await
            .unwrap();
        assert!(job.state.is_terminal());
    }
}

#[tokio::test]
async fn a_dry_run_is_not_a_backup() {
    for flavor in ApiFlavor::ALL {
        let rig = Rig::new(flavor, |_| {}).await;
        // pool0: the real run failed, then someone clicked Dry Run (it succeeds).
        rig.run_sync("pool0", Some(AUTH_FAILURE)).await;
        rig.dry_run("pool0").await;
        // pool1: only ever dry-run.
        rig.dry_run("pool1").await;
        let task = rig.sim.state().cloud_sync_tasks[0].clone();
        assert_eq!(
            task.last_run.as_ref().unwrap()["arguments"][1]["dry_run"],
            true,
            "{flavor}: the task's job is the dry run"
        );
        let (verify, code) = rig.verify().await;
        assert_eq!(code, 2, "{flavor}: {verify:#}");
        let pool0 = report_sync(&verify, "pool0");
        assert_eq!(pool0["state"], "FAILED", "{flavor}: the last real run");
        assert_eq!(pool0["error_class"], "auth");
        assert!(pool0["last_success"].is_null(), "{flavor}: {pool0:#}");
        let pool1 = report_sync(&verify, "pool1");
        assert_eq!(pool1["state"], "UNKNOWN", "{flavor}: {pool1:#}");
        assert!(pool1["last_success"].is_null());
        assert!(
            pool1["message"]
                .as_str()
                .unwrap()
                .contains("only a dry run"),
            "{pool1:#}"
        );
        for pool in POOLS {
            assert_ne!(
                item(&verify, &format!("cloud_sync.first_sync/{pool}"))["status"],
                "pass",
                "{flavor}: a dry run is not the first backup"
            );
        }
        let (report, json) = rig.status(true).await;
        assert_eq!(report.exit_code, 2, "{flavor}: {:#?}", report.problems);
        assert_eq!(backup(&json, "pool0")["level"], "failing");
        assert_eq!(backup(&json, "pool1")["level"], "unknown");
        rig.finish();
    }
}

async fn task_that_never_ran(flavor: ApiFlavor) {
    let rig = Rig::new(flavor, |_| {}).await;
    let (verify, code) = rig.verify().await;
    assert_eq!(code, 2, "the first sync has not completed (SOP 7.1)");
    for pool in POOLS {
        assert_eq!(report_sync(&verify, pool)["state"], "NEVER_RUN");
        assert_eq!(
            item(&verify, &format!("cloud_sync.first_sync/{pool}"))["status"],
            "fail"
        );
    }
    let (report, json) = rig.status(true).await;
    // The backup section calls a task first seen now a warning (not yet overdue), but
    // the SOP item "first sync completed" fails: a failing item is a FAILING problem.
    assert_eq!(report.exit_code, 2, "{:#?}", report.problems);
    assert!(
        report
            .problems
            .iter()
            .any(|p| p.level == truenas_agent::health::Level::Failing
                && p.subject.as_deref() == Some("cloud_sync.first_sync/pool0"))
    );
    let b = backup(&json, "pool0");
    assert_eq!(b["state"], "NEVER_RUN");
    assert_eq!(b["level"], "warning");
    assert!(b["next_step"].as_str().unwrap().contains("Run Now"));
    rig.finish();
}
per_flavour!(task_that_never_ran);

async fn overdue_snapshots(flavor: ApiFlavor) {
    let rig = Rig::new(flavor, |_| {}).await;
    rig.run_all_syncs().await;
    let stale = floor_hour(Utc::now()) - Span::hours(5);
    rig.sim.update_state(|s| {
        s.snapshots.retain(|snap| snap.dataset != "pool1");
        s.snapshots.push(Snapshot {
            dataset: "pool1".into(),
            name: snapshot_name(stale),
            createtxg: 0,
            task_id: None,
            created_ms: stale.timestamp_millis(),
        });
    });
    let (verify, code) = rig.verify().await;
    assert_eq!(code, 0, "snapshot freshness is health, not a §6 item");
    let snaps = verify["health"]["snapshots"].as_array().unwrap();
    let pool1 = snaps.iter().find(|s| s["pool"] == "pool1").unwrap();
    assert_eq!(pool1["latest"], snapshot_name(stale));
    assert!(pool1["latest_age_s"].as_u64().unwrap() >= 5 * 3600);
    let (report, json) = rig.status(true).await;
    assert_eq!(report.exit_code, 2);
    let s1 = json["snapshots"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["pool"] == "pool1")
        .unwrap();
    assert_eq!(s1["overdue"], true);
    assert_eq!(s1["level"], "failing");
    assert_eq!(json["problems"][0]["area"], "snapshots");
    rig.finish();
}
per_flavour!(overdue_snapshots);

async fn snmp_v2c_community_set(flavor: ApiFlavor) {
    let rig = Rig::new(flavor, |_| {}).await;
    rig.run_all_syncs().await;
    rig.sim.update_state(|s| {
        s.snmp.v3 = false;
        s.snmp.community = "public".into();
    });
    let (verify, code) = rig.verify().await;
    assert_eq!(code, 2, "a failing item: exit 2 (the one rule)");
    let snmp = item(&verify, "snmp.v3_only");
    assert_eq!(snmp["status"], "fail");
    assert!(snmp["detail"].as_str().unwrap().contains("v1/v2c"));
    let (report, json) = rig.status(true).await;
    assert_eq!(report.exit_code, 2);
    assert_eq!(json["snmp"]["community_empty"], false);
    assert_eq!(json["snmp"]["level"], "failing");
    let problems: Vec<&Value> = json["problems"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["area"] == "snmp")
        .collect();
    assert_eq!(
        problems.len(),
        1,
        "reported once, not again as a checklist item"
    );
    rig.finish();
}
per_flavour!(snmp_v2c_community_set);

async fn bucket_without_object_lock(flavor: ApiFlavor) {
    let rig = Rig::new(flavor, |c| {
        c.buckets[0].file_lock_enabled = false;
        c.buckets[0].retention = None;
    })
    .await;
    rig.run_all_syncs().await;
    let (verify, code) = rig.verify().await;
    assert_eq!(code, 2, "a failing item: exit 2 (the one rule)");
    let lock = item(&verify, "b2.object_lock");
    assert_eq!(lock["status"], "fail");
    assert_eq!(lock["checked_by"], "b2");
    assert!(
        lock["next_step"]
            .as_str()
            .unwrap()
            .contains("--defaultRetentionMode compliance")
    );
    // status without a document shows the last verify's failure.
    let (report, json) = rig.status(false).await;
    assert_eq!(report.exit_code, 2);
    assert_eq!(json["checklist"]["source"], "last_verify");
    assert_eq!(json["b2"]["overall"], "fail");
    assert!(
        json["checklist"]["attention"]
            .as_array()
            .unwrap()
            .iter()
            .any(|i| i["id"] == "b2.object_lock")
    );
    rig.finish();
}
per_flavour!(bucket_without_object_lock);

async fn plaintext_object_in_the_bucket(flavor: ApiFlavor) {
    let rig = Rig::new(flavor, |c| {
        let plain = fake_b2::data("plain-invoice.txt");
        let files = &mut c.buckets[0].files;
        files.retain(|f| !f.name.contains("/pool1/"));
        files.push(FakeFile::new(
            format!("{GUID}/pool1/docs/invoice.txt"),
            plain,
        ));
    })
    .await;
    rig.run_all_syncs().await;
    let (verify, code) = rig.verify().await;
    assert_eq!(code, 2, "a failing item: exit 2 (the one rule)");
    let enc = item(&verify, "b2.encryption_verified/pool1");
    assert_eq!(enc["status"], "fail");
    assert!(enc["next_step"].as_str().unwrap().contains("SOP 7.3"));
    assert_eq!(
        item(&verify, "b2.encryption_verified/pool0")["status"],
        "pass"
    );
    let (report, _) = rig.status(true).await;
    assert_eq!(report.exit_code, 2);
    let text = render_text(&report);
    assert!(text.contains("b2.encryption_verified/pool1"), "{text}");
    rig.finish();
}
per_flavour!(plaintext_object_in_the_bucket);

async fn middleware_down_status_says_so(flavor: ApiFlavor) {
    let rig = Rig::new(flavor, |_| {}).await;
    rig.run_all_syncs().await;
    let _ = rig.verify().await;
    let ctx = Context {
        state_dir: rig.state.path().to_owned(),
        url: "unix:///var/run/middleware/middlewared.sock".into(),
        version: "test".into(),
        assess: rig.options(false),
        central_config: None,
        host: None,
    };
    let report =
        report_with::<SchemaChecked>(Err("connection refused".into()), &DocumentArg::None, &ctx)
            .await;
    // The last verify passed and nothing can be read now: unknown, exit 3.
    assert_eq!(report.exit_code, 3, "{:#?}", report.problems);
    assert!(!report.middleware.reachable);
    assert_eq!(report.checklist.source, "last_verify");
    assert!(render_text(&report).contains("NOT REACHABLE"));
    rig.finish();
}
per_flavour!(middleware_down_status_says_so);

/// Runs the real binary (TZ=UTC, like the snapshot names the rig makes).
async fn agent(args: &[&str]) -> (std::process::Output, String) {
    let out = tokio::process::Command::new(crate::support::bin(crate::support::AGENT))
        .args(args)
        .env("TZ", "UTC")
        .env_remove("TRUENAS_AGENT_STATE_DIR")
        .env_remove("TRUENAS_AGENT_MIDDLEWARE")
        .env_remove("TRUENAS_AGENT_CONFIG")
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8(out.stdout.clone()).unwrap();
    assert_no_canary("stdout", &stdout);
    assert_no_canary("stderr", &String::from_utf8_lossy(&out.stderr));
    (out, stdout)
}

async fn cli_verify_and_status_over_the_unix_socket(flavor: ApiFlavor) {
    let rig = Rig::new(flavor, |_| {}).await;
    rig.run_sync("pool1", None).await;
    rig.run_sync("pool0", Some(AUTH_FAILURE)).await;
    let sock_dir = tempfile::tempdir().unwrap();
    let socket = sock_dir.path().join("middlewared.sock");
    let _server = rig
        .sim
        .serve(truenas_sim::ServeOptions {
            socket: Some(socket.clone()),
            ..Default::default()
        })
        .await
        .unwrap();
    let doc = sock_dir.path().join("doc.json");
    let mut v: Value =
        serde_json::from_slice(&std::fs::read(data("desired/example.json")).unwrap()).unwrap();
    v["actions"] = json!([]);
    std::fs::write(&doc, serde_json::to_vec(&v).unwrap()).unwrap();
    let url = format!("unix://{}", socket.display());
    let state = rig.state.path().display().to_string();
    let doc_path = doc.display().to_string();
    let common = ["--middleware", url.as_str(), "--state-dir", state.as_str()];

    let mut args = common.to_vec();
    args.extend([
        "verify",
        "-f",
        &doc_path,
        "--allow-unsigned",
        "--json",
        "--b2-api",
        &rig.fake.base,
    ]);
    let (out, stdout) = agent(&args).await;
    assert_eq!(out.status.code(), Some(2), "{stdout}");
    let verify: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(verify["exit_code"], 2);
    assert_eq!(verify["schema"], "truenas-agent.verify/v1");
    assert_eq!(verify["verdict"], "fail");
    assert_eq!(report_sync(&verify, "pool0")["error_class"], "auth");
    assert_eq!(item(&verify, "b2.object_lock")["status"], "pass");

    let mut args = common.to_vec();
    args.extend(["status", "--json"]);
    let (out, stdout) = agent(&args).await;
    assert_eq!(out.status.code(), Some(2), "{stdout}");
    let status: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(status["schema"], "truenas-agent.status/v1");
    assert_eq!(status["middleware"]["reachable"], true);
    assert_eq!(status["middleware"]["transport"], "unix-socket");
    assert_eq!(backup(&status, "pool0")["error_class"], "auth");
    assert_eq!(status["checklist"]["source"], "last_verify");

    let mut args = common.to_vec();
    args.extend(["status"]);
    let (out, text) = agent(&args).await;
    assert_eq!(out.status.code(), Some(2));
    assert!(text.contains("FAILING (exit 2)"), "{text}");
    assert!(text.contains("Verify Credential"), "{text}");

    // The middleware down: status says so and still shows the last verify.
    let gone = format!("unix://{}", sock_dir.path().join("nothing.sock").display());
    let (out, stdout) = agent(&[
        "--middleware",
        &gone,
        "--state-dir",
        &state,
        "status",
        "--json",
        "--timeout",
        "2",
    ])
    .await;
    assert_eq!(out.status.code(), Some(2));
    let down: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(down["middleware"]["reachable"], false);
    assert_eq!(down["overall"], "failing");
    assert_eq!(down["checklist"]["source"], "last_verify");
    rig.finish();
}
per_flavour!(cli_verify_and_status_over_the_unix_socket);

/// The one exit-code rule for `verify` (issue 13.3) and a document that deliberately
/// departs from the SOP (13.1): 0 when every item passes; after applying a document with
/// a 64 MiB chunk and `--fast-list` off the box follows it, and `verify` says DEVIATES
/// (exit 1) — never PASS; `status` shows the deviations as warnings (exit 1).
#[tokio::test]
async fn cli_verify_passes_then_deviates_as_the_document_asks() {
    let rig = Rig::new(ApiFlavor::V25_10, |_| {}).await;
    rig.run_all_syncs().await;
    let sock_dir = tempfile::tempdir().unwrap();
    let socket = sock_dir.path().join("middlewared.sock");
    let _server = rig
        .sim
        .serve(truenas_sim::ServeOptions {
            socket: Some(socket.clone()),
            ..Default::default()
        })
        .await
        .unwrap();
    let write_doc = |name: &str, edit: &dyn Fn(&mut Value)| {
        let mut v: Value =
            serde_json::from_slice(&std::fs::read(data("desired/example.json")).unwrap()).unwrap();
        v["actions"] = json!([]);
        edit(&mut v);
        let path = sock_dir.path().join(name);
        std::fs::write(&path, serde_json::to_vec(&v).unwrap()).unwrap();
        path.display().to_string()
    };
    let sop = write_doc("sop.json", &|_| {});
    let deviating = write_doc("deviating.json", &|v| {
        v["cloud_sync"]["chunk_size_mib"] = json!(64);
        v["cloud_sync"]["fast_list"] = json!(false);
    });
    let url = format!("unix://{}", socket.display());
    let state = rig.state.path().display().to_string();
    let run = |command: &'static str, doc: &str, extra: &[&str]| {
        let mut args: Vec<String> = [
            "--middleware",
            url.as_str(),
            "--state-dir",
            state.as_str(),
            command,
        ]
        .map(str::to_owned)
        .to_vec();
        if !doc.is_empty() {
            args.extend(["-f".into(), doc.to_owned(), "--allow-unsigned".into()]);
        }
        args.extend(extra.iter().map(|a| (*a).to_owned()));
        args
    };
    let b2 = ["--json", "--b2-api", rig.fake.base.as_str()];
    let args = run("verify", &sop, &b2);
    let (out, stdout) = agent(&args.iter().map(String::as_str).collect::<Vec<_>>()).await;
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    assert_eq!(
        serde_json::from_str::<Value>(&stdout).unwrap()["verdict"],
        "pass"
    );

    let args = run("apply", &deviating, &[]);
    let (out, stdout) = agent(&args.iter().map(String::as_str).collect::<Vec<_>>()).await;
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    let args = run("verify", &deviating, &b2);
    let (out, stdout) = agent(&args.iter().map(String::as_str).collect::<Vec<_>>()).await;
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    let verify: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(verify["verdict"], "deviates");
    assert_eq!(verify["exit_code"], 1);
    assert_eq!(verify["counts"]["deviates"], 4);
    let chunk = item(&verify, "cloud_sync.chunk_size/pool0");
    assert_eq!(chunk["status"], "deviates");
    assert_eq!(chunk["deviations"][0]["document"], "64 MiB");
    assert_eq!(chunk["deviations"][0]["sop"], "96 MiB");
    // The report's checklist part stays within the contract: a deviation is `fail`.
    let wire = verify["checklist"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["id"] == "cloud_sync.fast_list/pool1")
        .unwrap();
    assert_eq!(wire["status"], "fail");
    assert!(
        wire["detail"]
            .as_str()
            .unwrap()
            .starts_with("DEVIATES from the SOP as the document asks: cloud_sync.fast_list")
    );
    let args = run("verify", &deviating, &["--b2-api", rig.fake.base.as_str()]);
    let (out, text) = agent(&args.iter().map(String::as_str).collect::<Vec<_>>()).await;
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text.contains(" DEV.  cloud_sync.chunk_size/pool0"),
        "{text}"
    );
    assert!(text.contains("Result: DEVIATES"), "{text}");
    // `status` (the last verify): deviations are warnings.
    let args = run("status", "", &["--json"]);
    let (out, stdout) = agent(&args.iter().map(String::as_str).collect::<Vec<_>>()).await;
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    let status: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(status["overall"], "degraded");
    assert_eq!(status["checklist"]["deviates"], 4);
    rig.finish();
}
