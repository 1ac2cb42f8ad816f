//! `apply` against a scripted fake middleware that fails on any unexpected call.
//! (The simulator-backed end-to-end tests live in `tests/it/sop.rs`.)

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::Duration;

use serde_json::{Value, json};

use super::*;
use crate::middleware::{
    ApiFlavor, ApiInfo, Call, CallError, Job, JobId, Method, Protocol, TransportKind,
};
use crate::plan::tests::{doc, doc_with, fresh};
use crate::plan::{self as planner, GuidSource, Inputs, ObjectKind, Step};
use crate::state_dir::StateDir;

type Responder = Box<dyn Fn(&Call) -> Result<Value, CallError> + Send + Sync>;

/// Answers calls from a script, in order; anything else is a test failure.
struct Scripted {
    flavor: ApiFlavor,
    script: Mutex<VecDeque<(Method, Responder)>>,
    seen: Mutex<Vec<Method>>,
}

impl Scripted {
    fn new(flavor: ApiFlavor, script: Vec<(Method, Responder)>) -> Self {
        Self {
            flavor,
            script: Mutex::new(script.into()),
            seen: Mutex::new(Vec::new()),
        }
    }

    fn leftover(&self) -> Vec<Method> {
        self.script
            .lock()
            .unwrap()
            .iter()
            .map(|(m, _)| *m)
            .collect()
    }

    fn writes(&self) -> usize {
        self.seen
            .lock()
            .unwrap()
            .iter()
            .filter(|m| m.is_write())
            .count()
    }
}

impl Middleware for Scripted {
    fn api(&self) -> ApiInfo {
        ApiInfo {
            flavor: self.flavor,
            version: "test".into(),
            protocol: Protocol::JsonRpc,
            transport: TransportKind::UnixSocket,
            api_version: None,
            newer_than_known: false,
        }
    }

    async fn call(&self, call: Call) -> Result<Value, CallError> {
        self.seen.lock().unwrap().push(call.method);
        let next = self.script.lock().unwrap().pop_front();
        match next {
            Some((method, respond)) if method == call.method => respond(&call),
            Some((method, _)) => panic!("expected {method}, got {call:?}"),
            None => panic!("unexpected call {call:?}"),
        }
    }

    async fn wait_job(&self, id: JobId, _timeout: Duration) -> Result<Job, CallError> {
        Ok(serde_json::from_value(json!({"id": id, "state": "SUCCESS"})).unwrap())
    }
}

/// Echoes the created object back with an id, as the middleware's `create` does.
fn created(id: u64) -> Responder {
    Box::new(move |call| {
        let mut entry = call.params[0].clone();
        entry["id"] = json!(id);
        Ok(entry)
    })
}

/// A create that the box stores as given, and the query that reads it back.
fn created_and_stored(id: u64) -> (Responder, Responder) {
    let row = std::sync::Arc::new(Mutex::new(Value::Null));
    let keep = row.clone();
    let create: Responder = Box::new(move |call| {
        let mut entry = call.params[0].clone();
        entry["id"] = json!(id);
        *keep.lock().unwrap() = entry.clone();
        Ok(entry)
    });
    let query: Responder = Box::new(move |_| Ok(json!([row.lock().unwrap().clone()])));
    (create, query)
}

/// The job a `cloudsync.sync [task]` started, as `core.get_jobs` lists it.
fn run_of(task: u64, job: u64) -> Responder {
    reply(json!([{"id": job, "method": "cloudsync.sync", "arguments": [task], "state": "RUNNING"}]))
}

fn reply(value: Value) -> Responder {
    Box::new(move |_| Ok(value.clone()))
}

fn dropped() -> Responder {
    Box::new(|call| {
        Err(CallError::Disconnected {
            method: call.method,
            detail: "peer closed".into(),
        })
    })
}

const BUCKET: &str = "truenas-a1b2c3d4e5f670718293a4b5c6d7e8f9";

/// The SNMP service row as `service.query` shows it after the pass's service steps.
fn snmp_service(enable: bool, state: &str) -> Responder {
    reply(json!([{"id": 7, "service": "snmp", "enable": enable, "state": state, "pids": []}]))
}

/// The calls a fresh 2-pool box needs, in order: no re-read of what the answers prove,
/// no queue checks around the run of a task created in the same pass.
fn fresh_script(flavor: ApiFlavor) -> Vec<(Method, Responder)> {
    let start = if flavor >= ApiFlavor::V25_10 {
        (Method::ServiceControl, reply(json!(900)))
    } else {
        (Method::ServiceStart, reply(json!(true)))
    };
    let (create, stored) = created_and_stored(1);
    vec![
        (Method::CredentialsCreate, create),
        (Method::CredentialsQuery, stored),
        (
            Method::CloudsyncListBuckets,
            reply(json!([{"Name": BUCKET, "IsBucket": true}])),
        ),
        (Method::CloudsyncCreate, created(1)),
        (Method::CloudsyncCreate, created(2)),
        (Method::SnapshotTaskCreate, created(1)),
        (Method::SnapshotTaskCreate, created(2)),
        (
            Method::SnmpUpdate,
            Box::new(|call: &Call| Ok(call.params[0].clone())),
        ),
        (Method::ServiceUpdate, reply(json!(7))),
        start,
        (Method::CloudsyncSync, reply(json!(41))),
        (Method::ServiceQuery, snmp_service(true, "RUNNING")),
    ]
}

struct Fixture {
    _tmp: tempfile::TempDir,
    dir: StateDir,
}

fn fixture() -> Fixture {
    let tmp = tempfile::tempdir().unwrap();
    let dir = StateDir::open(tmp.path().join("state")).unwrap();
    Fixture { _tmp: tmp, dir }
}

async fn run(
    d: &crate::desired::DesiredState,
    observed: &Observed,
    mw: &Scripted,
    fx: &Fixture,
) -> (Outcome, OwnershipStore, planner::Plan) {
    let mut store = OwnershipStore::load(&fx.dir).unwrap();
    let inputs = Inputs {
        device_guid: d.device.guid.unwrap(),
        guid_source: GuidSource::Document,
        fingerprints: store.fingerprints(d).unwrap(),
        root_pool: d.device.root_pool.clone(),
    };
    let p = planner::plan(d, observed, store.get(), &inputs);
    let outcome = apply(&p, d, observed, mw, &mut store, &ApplyOptions::default()).await;
    (outcome, store, p)
}

fn statuses(o: &Outcome) -> Vec<&'static str> {
    o.results
        .iter()
        .map(|r| match r.status {
            StepStatus::Done { .. } => "done",
            StepStatus::Skipped { .. } => "skipped",
            StepStatus::Failed(_) => "failed",
            StepStatus::NotAttempted => "not_attempted",
        })
        .collect()
}

#[tokio::test]
async fn fresh_box_is_provisioned_in_order_and_recorded() {
    for flavor in ApiFlavor::ALL {
        let fx = fixture();
        let d = doc();
        let mut o = fresh(&["pool0", "pool1"]);
        o.api.flavor = flavor;
        let mw = Scripted::new(flavor, fresh_script(flavor));
        let (outcome, store, plan) = run(&d, &o, &mw, &fx).await;
        assert!(outcome.all_done(), "{flavor}: {outcome}");
        assert!(mw.leftover().is_empty(), "{flavor}: {:?}", mw.leftover());
        let own = store.get();
        assert_eq!(own.credential.as_ref().unwrap().id, 1);
        assert_eq!(own.cloud_sync["pool1"].id, 2);
        assert_eq!(own.snapshot_tasks["pool0"].id, 1);
        assert!(own.pending.is_empty());
        assert!(own.executed_actions.contains("5f0c2a9e-first-run"));
        assert!(
            own.cloud_sync["pool0"]
                .fingerprints
                .contains_key("encryption_salt")
        );
        assert_eq!(own.snmp_fingerprints.len(), 2);
        // The verification shows up as its own result, right after the credential, and
        // every other result names its step.
        assert_eq!(
            outcome.results[1].origin,
            Origin::Extra(Extra::VerifyCredential)
        );
        let steps: Vec<Origin> = outcome
            .results
            .iter()
            .map(|r| r.origin)
            .filter(|o| matches!(o, Origin::Step(_)))
            .collect();
        let expected: Vec<Origin> = (0..plan.steps.len()).map(Origin::Step).collect();
        assert_eq!(steps, expected);
    }
}

#[tokio::test]
async fn report_only_sends_nothing() {
    let fx = fixture();
    let d = doc_with(|v| v["mode"] = json!("report-only"));
    let mw = Scripted::new(ApiFlavor::V25_04, Vec::new());
    let (outcome, store, p) = run(&d, &fresh(&["pool0", "pool1"]), &mw, &fx).await;
    assert_eq!(mw.writes(), 0);
    assert!(!p.steps.is_empty());
    assert!(statuses(&outcome).iter().all(|s| *s == "skipped"));
    assert_eq!(store.get(), &planner::Ownership::default());
}

#[tokio::test]
async fn read_back_difference_is_an_error_and_the_pass_goes_on() {
    let fx = fixture();
    let d = doc();
    let mut script = fresh_script(ApiFlavor::V25_04);
    // TrueNAS "reformats" the excludes of the first task into one entry.
    script[3] = (
        Method::CloudsyncCreate,
        Box::new(|call: &Call| {
            let mut entry = call.params[0].clone();
            entry["id"] = json!(1);
            entry["exclude"] = json!(["/Archive/**\n/archive/**"]);
            Ok(entry)
        }),
    );
    let mw = Scripted::new(ApiFlavor::V25_04, script);
    let (outcome, store, _) = run(&d, &fresh(&["pool0", "pool1"]), &mw, &fx).await;
    let failures: Vec<_> = outcome.failures().collect();
    assert_eq!(failures.len(), 1);
    assert!(matches!(failures[0].1, ApplyError::ReadBack { fields, .. } if fields == &["exclude"]));
    assert!(mw.leftover().is_empty(), "the rest of the pass still ran");
    assert_eq!(
        store.get().cloud_sync["pool0"].id,
        1,
        "the object exists and is ours"
    );
}

#[tokio::test]
async fn connection_loss_stops_the_pass_and_leaves_a_write_ahead_record() {
    let fx = fixture();
    let d = doc();
    let mut script = fresh_script(ApiFlavor::V25_04);
    script.truncate(5);
    script[4] = (Method::CloudsyncCreate, dropped());
    let mw = Scripted::new(ApiFlavor::V25_04, script);
    let (outcome, store, _) = run(&d, &fresh(&["pool0", "pool1"]), &mw, &fx).await;
    assert!(outcome.aborted.is_some());
    assert_eq!(
        statuses(&outcome),
        [
            "done",
            "done",
            "done",
            "failed",
            "not_attempted",
            "not_attempted",
            "not_attempted",
            "not_attempted",
            "not_attempted",
            "not_attempted"
        ]
    );
    let pending = &store.get().pending;
    assert_eq!(pending.len(), 1);
    assert_eq!(
        (pending[0].kind, pending[0].pool.as_deref()),
        (ObjectKind::CloudSync, Some("pool1"))
    );
    assert_eq!(
        pending[0].max_id_before, 1,
        "pool0's task created in this pass counts"
    );
}

#[tokio::test]
async fn a_key_that_does_not_verify_holds_back_cloud_sync_only() {
    for verify_ok in [false, true] {
        let fx = fixture();
        let d = doc();
        let mut script = fresh_script(ApiFlavor::V25_04);
        if verify_ok {
            // The key signs in; the bucket is not among those it lists.
            script[2] = (
                Method::CloudsyncListBuckets,
                reply(json!([{"Name": "another-bucket"}])),
            );
        } else {
            // The listing fails: only then is the key checked on its own.
            script[2] = (
                Method::CloudsyncListBuckets,
                Box::new(|call: &Call| {
                    Err(CallError::Failed {
                        method: call.method,
                        errno: Some(14),
                        errname: "EFAULT".into(),
                        reason: "failed to authorize account: 401 bad_auth_token".into(),
                    })
                }),
            );
            script.insert(
                3,
                (
                    Method::CredentialsVerify,
                    reply(json!({"valid": false, "error": "401 bad key CANARY-B2-APPKEY-7f3a9c"})),
                ),
            );
        }
        // No cloud sync creates and no run of a task that does not exist.
        script.retain(|(m, _)| !matches!(m, Method::CloudsyncCreate | Method::CloudsyncSync));
        let mw = Scripted::new(ApiFlavor::V25_04, script);
        let (outcome, store, _) = run(&d, &fresh(&["pool0", "pool1"]), &mw, &fx).await;
        assert!(mw.leftover().is_empty(), "{:?}", mw.leftover());
        let text = outcome.to_string();
        assert!(!text.contains("CANARY"), "{text}");
        assert!(store.get().cloud_sync.is_empty());
        assert_eq!(store.get().snapshot_tasks.len(), 2, "snapshots still done");
        let expected = if verify_ok {
            "is not listed with this key"
        } else {
            "B2 rejected the application key"
        };
        assert!(text.contains(expected), "{text}");
        assert!(text.contains("[REDACTED]") || verify_ok, "{text}");
    }
}

#[tokio::test]
async fn actions_are_recorded_before_they_run() {
    let fx = fixture();
    let d = doc();
    let mut script = fresh_script(ApiFlavor::V25_04);
    let sync = script.len() - 2;
    script[sync] = (Method::CloudsyncSync, dropped());
    let mw = Scripted::new(ApiFlavor::V25_04, script);
    let (outcome, store, _) = run(&d, &fresh(&["pool0", "pool1"]), &mw, &fx).await;
    assert!(outcome.aborted.is_some());
    assert!(store.get().executed_actions.contains("5f0c2a9e-first-run"));
}

#[tokio::test]
async fn middleware_texts_are_redacted() {
    let fx = fixture();
    let d = doc();
    let mut script = fresh_script(ApiFlavor::V25_04);
    script[6] = (
        Method::SnapshotTaskCreate,
        Box::new(|call: &Call| {
            Err(CallError::Failed {
                method: call.method,
                errno: Some(22),
                errname: "EINVAL".into(),
                reason: "bad value CANARY-SNMP-AUTH-61aa07".into(),
            })
        }),
    );
    let mw = Scripted::new(ApiFlavor::V25_04, script);
    let (outcome, _, _) = run(&d, &fresh(&["pool0", "pool1"]), &mw, &fx).await;
    let text = format!("{outcome}{}", outcome.to_json());
    assert!(text.contains("bad value [REDACTED]"), "{text}");
    assert!(!text.contains("CANARY"));
}

#[tokio::test]
async fn updates_send_only_changed_keys_with_complete_nested_objects() {
    let fx = fixture();
    let d = doc();
    let mw = Scripted::new(ApiFlavor::V25_04, fresh_script(ApiFlavor::V25_04));
    let (_, store, first) = run(&d, &fresh(&["pool0", "pool1"]), &mw, &fx).await;
    let (mut observed, _) =
        crate::plan::tests::apply_in_memory(&first, &fresh(&["pool0", "pool1"]), store.get());
    // Ids in the model match the scripted ones (1, 2 …).
    observed.cloud_sync[0].attributes.folder = "/moved".into();
    let sent = std::sync::Arc::new(Mutex::new(Value::Null));
    let keep = sent.clone();
    let mw = Scripted::new(
        ApiFlavor::V25_04,
        vec![(
            Method::CloudsyncUpdate,
            Box::new(move |call: &Call| {
                *keep.lock().unwrap() = call.params[1].clone();
                let mut entry = call.params[1].clone();
                entry["id"] = call.params[0].clone();
                Ok(entry)
            }),
        )],
    );
    let (outcome, _, p) = run(&d, &observed, &mw, &fx).await;
    assert!(
        matches!(&p.steps[..], [Step::UpdateCloudSync { .. }]),
        "{p}"
    );
    assert!(outcome.all_done(), "{outcome}");
    let body = sent.lock().unwrap().clone();
    assert_eq!(
        body.as_object().unwrap().keys().collect::<Vec<_>>(),
        ["attributes"]
    );
    assert_eq!(
        body["attributes"],
        json!({"bucket": BUCKET, "folder": "/9babab19-acc0-4587-aa05-ccd8103a1148/pool0",
               "chunk_size": 96, "fast_list": true})
    );
}

/// A box an earlier pass provisioned without the first-run action (the same ids as the
/// scripted middleware hands out), recorded in `fx`: the document's action is all that
/// is left, and it runs a task that existed before the pass.
async fn only_the_run_left(fx: &Fixture) -> Observed {
    let d = doc_with(|v| v["actions"] = json!([]));
    let mut script = fresh_script(ApiFlavor::V25_04);
    script.retain(|(m, _)| *m != Method::CloudsyncSync);
    let mw = Scripted::new(ApiFlavor::V25_04, script);
    let (outcome, store, first) = run(&d, &fresh(&["pool0", "pool1"]), &mw, fx).await;
    assert!(outcome.all_done(), "{outcome}");
    crate::plan::tests::apply_in_memory(&first, &fresh(&["pool0", "pool1"]), store.get()).0
}

/// The calls of a run of an existing task: the queued runs, the run, the job listed.
fn script_with_run(
    queued: Value,
    sync: Responder,
    listed: Option<Responder>,
) -> Vec<(Method, Responder)> {
    let mut script = Vec::new();
    script.push((Method::CoreGetJobs, reply(queued)));
    script.push((Method::CloudsyncSync, sync));
    if let Some(listed) = listed {
        script.push((Method::CoreGetJobs, listed));
    }
    script
}

#[tokio::test]
async fn a_run_handed_back_from_the_queue_is_not_started_and_stays_pending() {
    // The middleware answers with job 40, which was already queued before the call.
    let queued =
        json!([{"id": 40, "method": "cloudsync.sync", "arguments": [1], "state": "WAITING"}]);
    let fx = fixture();
    let observed = only_the_run_left(&fx).await;
    let mw = Scripted::new(
        ApiFlavor::V25_04,
        script_with_run(queued, reply(json!(40)), None),
    );
    let (outcome, store, _) = run(&doc(), &observed, &mw, &fx).await;
    assert!(mw.leftover().is_empty(), "{:?}", mw.leftover());
    let failures: Vec<_> = outcome.failures().collect();
    assert_eq!(failures.len(), 1, "{outcome}");
    assert!(matches!(
        failures[0].1,
        ApplyError::RunNotStarted {
            reason: NotStarted::AlreadyQueued { job: 40 },
            ..
        }
    ));
    assert!(
        outcome.to_string().contains("retried on the next pass"),
        "{outcome}"
    );
    assert!(
        !store.get().executed_actions.contains("5f0c2a9e-first-run"),
        "not recorded as done: the next pass runs it"
    );
}

#[tokio::test]
async fn a_run_of_another_task_is_not_started_and_stays_pending() {
    let fx = fixture();
    let observed = only_the_run_left(&fx).await;
    let mw = Scripted::new(
        ApiFlavor::V25_04,
        script_with_run(json!([]), reply(json!(77)), Some(run_of(2, 77))),
    );
    let (outcome, store, _) = run(&doc(), &observed, &mw, &fx).await;
    assert!(mw.leftover().is_empty(), "{:?}", mw.leftover());
    let failures: Vec<_> = outcome.failures().collect();
    assert!(
        matches!(
            failures[..],
            [(
                _,
                ApplyError::RunNotStarted {
                    reason: NotStarted::OtherTask {
                        job: 77,
                        task: Some(2)
                    },
                    ..
                }
            )]
        ),
        "{outcome}"
    );
    assert_eq!(failures[0].1.fault(), crate::fault::Fault::Nas);
    let text = outcome.to_string();
    assert!(text.contains("a run of cloud sync task #2"), "{text}");
    assert!(!store.get().executed_actions.contains("5f0c2a9e-first-run"));
}

#[tokio::test]
async fn a_refused_run_stays_pending_a_lost_reply_does_not() {
    let refused: Responder = Box::new(|call| {
        Err(CallError::Failed {
            method: call.method,
            errno: Some(16),
            errname: "EBUSY".into(),
            reason: "This job is already being performed by another user".into(),
        })
    });
    let fx = fixture();
    let observed = only_the_run_left(&fx).await;
    let mw = Scripted::new(ApiFlavor::V25_04, script_with_run(json!([]), refused, None));
    let (outcome, store, _) = run(&doc(), &observed, &mw, &fx).await;
    assert_eq!(outcome.failures().count(), 1, "{outcome}");
    assert!(!store.get().executed_actions.contains("5f0c2a9e-first-run"));
    // A reply lost in flight may have started the run: at most once.
    let fx = fixture();
    let observed = only_the_run_left(&fx).await;
    let mw = Scripted::new(
        ApiFlavor::V25_04,
        script_with_run(json!([]), dropped(), None),
    );
    let (_, store, _) = run(&doc(), &observed, &mw, &fx).await;
    assert!(store.get().executed_actions.contains("5f0c2a9e-first-run"));
}

#[tokio::test]
async fn the_run_is_started_with_the_task_id_alone() {
    let fx = fixture();
    let observed = only_the_run_left(&fx).await;
    let sent = std::sync::Arc::new(Mutex::new(Vec::new()));
    let keep = sent.clone();
    let sync: Responder = Box::new(move |call| {
        *keep.lock().unwrap() = call.params.clone();
        Ok(json!(41))
    });
    let mw = Scripted::new(
        ApiFlavor::V25_04,
        script_with_run(json!([]), sync, Some(run_of(1, 41))),
    );
    let (outcome, store, _) = run(&doc(), &observed, &mw, &fx).await;
    assert!(outcome.all_done(), "{outcome}");
    // No options object: the job lock is then per task (`cloud_sync:1`).
    assert_eq!(*sent.lock().unwrap(), vec![json!(1)]);
    assert!(store.get().executed_actions.contains("5f0c2a9e-first-run"));
}

#[tokio::test]
async fn a_credential_is_proven_from_what_the_box_stored_not_from_the_answer() {
    for flavor in ApiFlavor::ALL {
        let fx = fixture();
        let mut script = fresh_script(flavor);
        // The answer echoes the key; the stored row has none (dropped by the box).
        script[1] = (
            Method::CredentialsQuery,
            Box::new(move |_| {
                let stored = if flavor == ApiFlavor::V24_10 {
                    json!({"id": 1, "name": BUCKET, "provider": "B2",
                           "attributes": {"account": "0051a2b3c4d5e6f0000000001"}})
                } else {
                    json!({"id": 1, "name": BUCKET,
                           "provider": {"type": "B2", "account": "0051a2b3c4d5e6f0000000001"}})
                };
                Ok(json!([stored]))
            }),
        );
        let mut o = fresh(&["pool0", "pool1"]);
        o.api.flavor = flavor;
        let mw = Scripted::new(flavor, script);
        let (outcome, _, _) = run(&doc(), &o, &mw, &fx).await;
        let failures: Vec<_> = outcome.failures().collect();
        assert!(
            matches!(failures.first(), Some((_, ApplyError::ReadBack { fields, .. })) if fields.iter().any(|f| f.contains("key"))),
            "{flavor}: {outcome}"
        );
        assert!(!outcome.to_string().contains("CANARY"), "{outcome}");
    }
}

/// Plans `d` again on what the pass proved (`Outcome::observed`).
fn plan_after(d: &DesiredState, outcome: &Outcome, store: &OwnershipStore) -> planner::Plan {
    let inputs = Inputs {
        device_guid: d.device.guid.unwrap(),
        guid_source: GuidSource::Document,
        fingerprints: store.fingerprints(d).unwrap(),
        root_pool: d.device.root_pool.clone(),
    };
    let after = outcome.observed.as_ref().expect("the pass was not aborted");
    planner::plan(d, after, store.get(), &inputs)
}

/// What the writes' answers and the read-backs proved is the observation after the pass:
/// planning on it finds nothing left, without reading the box again.
#[tokio::test]
async fn the_proven_writes_are_the_observation_after_the_pass() {
    for flavor in ApiFlavor::ALL {
        let fx = fixture();
        let d = doc();
        let mut o = fresh(&["pool0", "pool1"]);
        o.api.flavor = flavor;
        let mw = Scripted::new(flavor, fresh_script(flavor));
        let (outcome, store, _) = run(&d, &o, &mw, &fx).await;
        assert!(mw.leftover().is_empty(), "{flavor}: {:?}", mw.leftover());
        let after = outcome.observed.as_ref().unwrap();
        assert_eq!(after.credentials.len(), 1);
        assert_eq!(after.cloud_sync.len(), 2);
        assert_eq!(after.snapshot_tasks.len(), 2);
        assert!(after.snmp.v3);
        assert!(after.snmp_service.enable);
        assert_eq!(after.snmp_service.state, "RUNNING");
        assert!(
            after
                .cloud_sync
                .iter()
                .any(crate::observe::CloudSyncTask::has_run),
            "the first-run action's task counts as having run"
        );
        let again = plan_after(&d, &outcome, &store);
        assert!(again.is_converged(), "{flavor}: {again}");
        assert_eq!(
            outcome.results.last().map(|r| r.origin),
            Some(Origin::Extra(Extra::ReadBackServices))
        );
    }
}

/// `service.update` answers with the row id only: the start-at-boot flag is proven by
/// reading the row back, and a box that did not keep it is not converged.
#[tokio::test]
async fn an_unproven_service_flag_is_read_back_not_assumed() {
    let fx = fixture();
    let d = doc();
    let mut script = fresh_script(ApiFlavor::V25_04);
    let last = script.len() - 1;
    script[last] = (Method::ServiceQuery, snmp_service(false, "RUNNING"));
    let mw = Scripted::new(ApiFlavor::V25_04, script);
    let (outcome, store, _) = run(&d, &fresh(&["pool0", "pool1"]), &mw, &fx).await;
    assert!(!outcome.observed.as_ref().unwrap().snmp_service.enable);
    let again = plan_after(&d, &outcome, &store);
    assert!(
        matches!(&again.steps[..], [Step::EnableService { .. }]),
        "{again}"
    );
}

/// A write that fails leaves its object as observed; an aborted pass proves nothing.
#[tokio::test]
async fn a_failed_write_is_not_taken_for_done_and_an_abort_proves_nothing() {
    let fx = fixture();
    let d = doc();
    let mut script = fresh_script(ApiFlavor::V25_04);
    script[5] = (
        Method::SnapshotTaskCreate,
        Box::new(|call: &Call| {
            Err(CallError::Failed {
                method: call.method,
                errno: Some(22),
                errname: "EINVAL".into(),
                reason: "refused".into(),
            })
        }),
    );
    let mw = Scripted::new(ApiFlavor::V25_04, script);
    let (outcome, store, _) = run(&d, &fresh(&["pool0", "pool1"]), &mw, &fx).await;
    assert_eq!(outcome.observed.as_ref().unwrap().snapshot_tasks.len(), 1);
    let again = plan_after(&d, &outcome, &store);
    assert!(
        matches!(&again.steps[..], [Step::CreateSnapshotTask(_)]),
        "{again}"
    );

    let fx = fixture();
    let mut script = fresh_script(ApiFlavor::V25_04);
    script[5] = (Method::SnapshotTaskCreate, dropped());
    let mw = Scripted::new(ApiFlavor::V25_04, script);
    let (outcome, _, _) = run(&d, &fresh(&["pool0", "pool1"]), &mw, &fx).await;
    assert!(outcome.aborted.is_some());
    assert!(outcome.observed.is_none());
}

/// The run of a task created in the same pass: recorded before the call, dropped again
/// when the middleware refused it, kept when the reply was lost.
#[tokio::test]
async fn a_new_tasks_run_keeps_the_at_most_once_rule() {
    for (answer, kept) in [
        (
            Box::new(|call: &Call| {
                Err(CallError::Failed {
                    method: call.method,
                    errno: Some(16),
                    errname: "EBUSY".into(),
                    reason: "busy".into(),
                })
            }) as Responder,
            false,
        ),
        (dropped(), true),
    ] {
        let fx = fixture();
        let mut script = fresh_script(ApiFlavor::V25_04);
        let sync = script.len() - 2;
        script[sync] = (Method::CloudsyncSync, answer);
        let mw = Scripted::new(ApiFlavor::V25_04, script);
        let (_, store, _) = run(&doc(), &fresh(&["pool0", "pool1"]), &mw, &fx).await;
        assert_eq!(
            store.get().executed_actions.contains("5f0c2a9e-first-run"),
            kept
        );
    }
}
