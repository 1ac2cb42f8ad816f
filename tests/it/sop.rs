//! The SOP engine end to end against the simulator, on 24.10, 25.04 and 25.10:
//! every SOP §5/§6 field on a fresh box, zero writes when converged, drift shown and
//! restored, invalid documents refused with zero calls, a dropped connection at every
//! call of a pass followed by a clean rerun, hand-made tasks left alone, no secret in
//! any output, log line or state file, and every call checked against the per-version
//! JSON Schemas in `shared/truenas-api`.

#![allow(
    clippy::print_stderr,
    clippy::format_push_string,
    clippy::type_complexity,
    reason = "test code: skip notices, collected output, boxed fault closures"
)]

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};
use truenas_agent::apply::{ReconcileOptions, Reconciled, reconcile};
use truenas_agent::desired::{self, DesiredState};
use truenas_agent::middleware::{ApiFlavor, Call, Middleware};
use truenas_agent::observe::READS;
use truenas_agent::state_dir::StateDir;
use truenas_sim::scenario::{B2Account, Pool};
use truenas_sim::{DropAt, DropWhen, JobTiming, Scenario, Simulator};

use crate::support::{
    CANARIES, SchemaChecked, assert_no_canary, assert_no_canary_in_dir, schema_dir,
};

const KEY_ID: &str = "0051a2b3c4d5e6f0000000001";
const BUCKET: &str = "truenas-a1b2c3d4e5f670718293a4b5c6d7e8f9";
const GUID: &str = "9babab19-acc0-4587-aa05-ccd8103a1148";

fn data(rel: &str) -> PathBuf {
    crate::support::repo_root().join("tests/data").join(rel)
}

fn example_value() -> Value {
    serde_json::from_slice(&std::fs::read(data("desired/example.json")).unwrap()).unwrap()
}

fn document(edit: impl FnOnce(&mut Value)) -> DesiredState {
    let mut v = example_value();
    edit(&mut v);
    desired::parse(&serde_json::to_vec(&v).unwrap()).unwrap()
}

/// A fresh 2-pool box whose scoped B2 key sees the SOP bucket.
fn fresh_box(flavor: ApiFlavor) -> Simulator {
    let mut s = Scenario::two_pools(flavor);
    s.b2_accounts.push(B2Account {
        account: KEY_ID.into(),
        valid: true,
        buckets: Some(vec![BUCKET.into()]),
    });
    Simulator::new(s)
}

/// A state dir and schema-violation sink for one test.
struct Agent {
    _tmp: tempfile::TempDir,
    state: StateDir,
    violations: Arc<Mutex<Vec<String>>>,
}

impl Agent {
    fn new() -> Self {
        let tmp = tempfile::tempdir().unwrap();
        let state = StateDir::open(tmp.path().join("state")).unwrap();
        Self {
            _tmp: tmp,
            state,
            violations: Arc::new(Mutex::new(Vec::new())),
        }
    }

    async fn pass(&self, sim: &Simulator, d: &DesiredState, write: bool) -> Reconciled {
        let mw = SchemaChecked::new(sim, &self.violations);
        let options = ReconcileOptions {
            write,
            ..ReconcileOptions::default()
        };
        reconcile(&mw, &self.state, d, &options).await.unwrap()
    }

    fn assert_schema_clean(&self) {
        let v = self.violations.lock().unwrap();
        assert!(
            v.is_empty(),
            "calls that break the API schema:\n{}",
            v.join("\n")
        );
    }
}

fn task<'a>(s: &'a Scenario, pool: &str) -> &'a truenas_sim::scenario::CloudSyncTask {
    let path = format!("/mnt/{pool}");
    let found: Vec<_> = s
        .cloud_sync_tasks
        .iter()
        .filter(|t| t.path == path)
        .collect();
    assert_eq!(found.len(), 1, "exactly one cloud sync task for {path}");
    found[0]
}

fn snap_task<'a>(s: &'a Scenario, pool: &str) -> &'a truenas_sim::scenario::SnapshotTask {
    let found: Vec<_> = s
        .snapshot_tasks
        .iter()
        .filter(|t| t.dataset == pool)
        .collect();
    assert_eq!(found.len(), 1, "exactly one snapshot task for {pool}");
    found[0]
}

/// Every field of the SOP's §5 and §6 tables (and SNMP from §1.2) on the simulated box.
fn assert_sop_fields(s: &Scenario) {
    // §5.1 the credential, named after the bucket.
    let creds: Vec<_> = s.credentials.iter().filter(|c| c.name == BUCKET).collect();
    assert_eq!(creds.len(), 1, "one credential named after the bucket");
    let cred = creds[0];
    assert_eq!(cred.provider, "B2");
    assert_eq!(cred.attributes["account"], KEY_ID);
    assert_eq!(cred.attributes["key"], "CANARY-B2-APPKEY-7f3a9c");
    for pool in ["pool0", "pool1"] {
        let t = task(s, pool);
        let cap = format!("{}{}", &pool[..1].to_uppercase(), &pool[1..]);
        assert_eq!(t.description, format!("{cap} Cloud Backup"));
        assert_eq!(t.direction, "PUSH");
        assert_eq!(t.transfer_mode, "SYNC");
        assert_eq!(t.path, format!("/mnt/{pool}"));
        assert_eq!(t.credentials, cred.id);
        assert_eq!(t.attributes["bucket"], BUCKET);
        assert_eq!(t.attributes["folder"], format!("/{GUID}/{pool}"));
        assert_eq!(
            (
                t.schedule.minute.as_str(),
                t.schedule.hour.as_str(),
                t.schedule.dom.as_str(),
                t.schedule.month.as_str(),
                t.schedule.dow.as_str()
            ),
            ("0", "0", "*", "*", "*")
        );
        assert!(t.enabled);
        assert!(!t.snapshot, "Take Snapshot unchecked");
        assert!(!t.follow_symlinks);
        assert_eq!(t.pre_script, "");
        assert_eq!(t.post_script, "");
        let mut ex = t.exclude.clone();
        ex.sort();
        assert_eq!(ex, ["/Archive/**", "/archive/**"]);
        assert_eq!(t.attributes["chunk_size"], 96);
        assert_eq!(t.attributes["fast_list"], true);
        assert!(t.encryption, "remote encryption on");
        assert!(!t.filename_encryption);
        assert_eq!(t.encryption_password, "CANARY-ENC-PASSWORD-2b8e41");
        assert_eq!(t.encryption_salt, "CANARY-ENC-SALT-9d0c55");
        let bw: Vec<(String, Option<u64>)> = t
            .bwlimit
            .iter()
            .map(|b| (b.time.clone(), b.bandwidth))
            .collect();
        assert_eq!(
            bw,
            [
                ("00:00".to_owned(), Some(10_000_000)),
                ("08:00".to_owned(), Some(2_500_000)),
                ("18:00".to_owned(), Some(10_000_000)),
            ],
            "100 Mbit/s: 80 % off-hours, 20 % business hours, in bytes/s"
        );
        assert_eq!(t.transfers, None, "transfers: middleware default");
        assert!(t.include.is_empty() && t.args.is_empty() && !t.create_empty_src_dirs);
        // §6.1 the periodic snapshot task.
        let st = snap_task(s, pool);
        assert!(st.recursive);
        assert!(st.exclude.is_empty());
        assert_eq!((st.lifetime_value, st.lifetime_unit.as_str()), (2, "WEEK"));
        assert_eq!(st.naming_schema, "auto-%Y-%m-%d_%H-%M");
        let c = &st.schedule;
        assert_eq!(
            (
                c.minute.as_str(),
                c.hour.as_str(),
                c.dom.as_str(),
                c.month.as_str(),
                c.dow.as_str()
            ),
            ("0", "*", "*", "*", "*")
        );
        assert_eq!((c.begin.as_str(), c.end.as_str()), ("00:00", "23:59"));
        assert!(!st.allow_empty);
        assert!(st.enabled);
    }
    assert_eq!(s.cloud_sync_tasks.len(), 2);
    assert_eq!(s.snapshot_tasks.len(), 2);
    // §1.2 SNMPv3 only, started and enabled at boot.
    let snmp = &s.snmp;
    assert!(snmp.v3);
    assert_eq!(snmp.community, "");
    assert_eq!(snmp.v3_username, "nmsQwErTyUiOp");
    assert_eq!(snmp.v3_authtype, "SHA");
    assert_eq!(snmp.v3_password, "CANARY-SNMP-AUTH-61aa07");
    assert_eq!(snmp.v3_privproto.as_deref(), Some("AES"));
    assert_eq!(
        snmp.v3_privpassphrase.as_deref(),
        Some("CANARY-SNMP-PRIV-c4e2f8")
    );
    let svc = s.services.iter().find(|s| s.service == "snmp").unwrap();
    assert!(svc.enable, "SNMP starts at boot");
    assert_eq!(svc.state, "RUNNING");
}

/// Waits (bounded) for a condition the simulator reaches on its own; not a timing test.
async fn wait_until(condition: impl Fn() -> bool) {
    for _ in 0..500 {
        if condition() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("condition not reached");
}

fn syncs(sim: &Simulator) -> usize {
    sim.calls()
        .iter()
        .filter(|c| c.method == "cloudsync.sync")
        .count()
}

#[tokio::test]
async fn fresh_box_gets_every_sop_field_then_zero_writes() {
    for flavor in ApiFlavor::ALL {
        let sim = fresh_box(flavor);
        let agent = Agent::new();
        let d = document(|_| {});
        let first = agent.pass(&sim, &d, true).await;
        let outcome = first.outcome.as_ref().unwrap();
        assert!(first.converged(), "{flavor}: {}\n{outcome}", first.plan);
        assert_sop_fields(&sim.state());
        assert_eq!(
            syncs(&sim),
            1,
            "{flavor}: the first-run action started one sync"
        );
        // Second apply: the box is converged; reads only.
        sim.clear_calls();
        let second = agent.pass(&sim, &d, true).await;
        assert!(second.plan.steps.is_empty(), "{flavor}: {}", second.plan);
        assert!(second.converged());
        assert!(
            sim.write_calls().is_empty(),
            "{flavor}: {:?}",
            sim.write_calls()
        );
        let methods: Vec<String> = sim.calls().iter().map(|c| c.method.clone()).collect();
        let reads: Vec<String> = READS.iter().map(|m| m.as_str().to_owned()).collect();
        assert_eq!(
            methods, reads,
            "{flavor}: a steady-state pass is exactly the 7 reads"
        );
        // `plan` on the converged box: no changes.
        let plan = agent.pass(&sim, &d, false).await;
        assert!(plan.plan.is_converged());
        assert!(
            plan.plan
                .to_string()
                .ends_with("No changes: the NAS matches the document.")
        );
        agent.assert_schema_clean();
    }
}

/// Issue 17's budget: a fresh 2-pool box is provisioned in at most 20 calls (connection
/// set-up aside: `system.version_short` and, on 25.10+, the job subscription its service
/// start waits with), proven without reading the box again: every write is proven by
/// its answer where that is a re-read of the stored row, and only the rest is read back
/// (the credential, the SNMP service row). A second pass finds nothing to do.
#[tokio::test]
async fn a_fresh_two_pool_apply_takes_at_most_20_calls_and_is_proven() {
    for flavor in ApiFlavor::ALL {
        let sim = fresh_box(flavor);
        let agent = Agent::new();
        let d = document(|_| {});
        let first = agent.pass(&sim, &d, true).await;
        assert!(first.converged(), "{flavor}: {}", first.remaining());
        let methods: Vec<String> = sim.calls().iter().map(|c| c.method.clone()).collect();
        assert!(
            methods.len() <= 20,
            "{flavor}: {} calls: {methods:?}",
            methods.len()
        );
        // Read again only what the answers do not prove.
        let count = |m: &str| methods.iter().filter(|x| *x == m).count();
        assert_eq!(count("snmp.config"), 1, "{flavor}: {methods:?}");
        assert_eq!(count("cloudsync.query"), 1, "{flavor}: {methods:?}");
        assert_eq!(count("pool.snapshottask.query"), 1, "{flavor}: {methods:?}");
        assert_eq!(
            count("cloudsync.credentials.query"),
            2,
            "{flavor}: read back once"
        );
        assert_eq!(count("service.query"), 2, "{flavor}: read back once");
        sim.clear_calls();
        let second = agent.pass(&sim, &d, true).await;
        assert!(second.plan.steps.is_empty(), "{flavor}: {}", second.plan);
        assert!(sim.write_calls().is_empty(), "{flavor}");
    }
}

#[tokio::test]
async fn report_only_writes_nothing() {
    for flavor in ApiFlavor::ALL {
        let sim = fresh_box(flavor);
        let agent = Agent::new();
        let d = document(|v| v["mode"] = json!("report-only"));
        let r = agent.pass(&sim, &d, true).await;
        assert!(!r.converged());
        assert!(!r.plan.steps.is_empty());
        assert!(sim.write_calls().is_empty(), "{flavor}");
    }
}

#[tokio::test]
async fn ui_drift_is_shown_field_by_field_and_restored() {
    for flavor in ApiFlavor::ALL {
        let sim = fresh_box(flavor);
        let agent = Agent::new();
        let d = document(|_| {});
        agent.pass(&sim, &d, true).await;
        // An admin edits the task in the UI.
        sim.update_state(|s| {
            let t = s
                .cloud_sync_tasks
                .iter_mut()
                .find(|t| t.path == "/mnt/pool1")
                .unwrap();
            t.exclude = vec!["/Archive/**".into()];
            t.attributes.insert("chunk_size".into(), json!(16));
            let st = s
                .snapshot_tasks
                .iter_mut()
                .find(|t| t.dataset == "pool0")
                .unwrap();
            st.lifetime_value = 1;
        });
        let plan = agent.pass(&sim, &d, false).await.plan;
        let changes: Vec<(String, String, String)> = plan
            .steps
            .iter()
            .flat_map(truenas_agent::plan::Step::changes)
            .map(|c| (c.field.clone(), c.from.clone(), c.to.clone()))
            .collect();
        assert_eq!(
            changes,
            [
                (
                    "attributes.chunk_size".to_owned(),
                    "16".to_owned(),
                    "96".to_owned()
                ),
                (
                    "exclude".to_owned(),
                    "[\"/Archive/**\"]".to_owned(),
                    "[\"/Archive/**\",\"/archive/**\"]".to_owned()
                ),
                ("lifetime_value".to_owned(), "1".to_owned(), "2".to_owned()),
            ],
            "{flavor}: {plan}"
        );
        sim.clear_calls();
        let r = agent.pass(&sim, &d, true).await;
        assert!(r.converged(), "{flavor}: {}", r.remaining());
        let writes: Vec<String> = sim.write_calls().iter().map(|c| c.method.clone()).collect();
        assert_eq!(
            writes,
            ["cloudsync.update", "pool.snapshottask.update"],
            "{flavor}"
        );
        assert_sop_fields(&sim.state());
        agent.assert_schema_clean();
    }
}

#[tokio::test]
async fn a_dropped_connection_at_any_call_then_a_rerun_converges_without_duplicates() {
    for flavor in ApiFlavor::ALL {
        // A clean pass tells how many calls a fresh box takes.
        let probe = fresh_box(flavor);
        Agent::new().pass(&probe, &document(|_| {}), true).await;
        let clean: Vec<(String, bool)> = probe
            .calls()
            .iter()
            .map(|c| (c.method.clone(), c.is_write()))
            .collect();
        let mut cases: Vec<(String, Box<dyn Fn(&Simulator)>)> = Vec::new();
        for (i, (method, write)) in clean.iter().enumerate() {
            if !write {
                continue;
            }
            let n = u64::try_from(i).unwrap();
            cases.push((
                format!("call {i} ({method}) not executed"),
                Box::new(move |sim: &Simulator| {
                    sim.update_faults(|f| f.drop_after_calls = Some(n));
                }),
            ));
        }
        let mut seen = std::collections::BTreeSet::new();
        for (method, write) in &clean {
            if *write && seen.insert(method.clone()) {
                let m = method.clone();
                cases.push((
                    format!("first {method} executed, reply lost"),
                    Box::new(move |sim: &Simulator| {
                        sim.update_faults(|f| {
                            f.drop_at.push(DropAt {
                                method: m.clone(),
                                when: DropWhen::After,
                                times: Some(1),
                            });
                        });
                    }),
                ));
            }
        }
        assert!(cases.len() >= 12, "{flavor}: {} cases", cases.len());
        for (label, arm) in cases {
            let sim = fresh_box(flavor);
            let agent = Agent::new();
            let d = document(|_| {});
            arm(&sim);
            let mw = SchemaChecked::new(&sim, &agent.violations);
            let first = reconcile(&mw, &agent.state, &d, &ReconcileOptions::default()).await;
            let aborted = match &first {
                Ok(r) => r.outcome.as_ref().is_some_and(|o| o.aborted.is_some()),
                Err(_) => true,
            };
            assert!(aborted, "{flavor} {label}: the pass should have stopped");
            let second = agent.pass(&sim, &d, true).await;
            let third = agent.pass(&sim, &d, false).await;
            assert!(
                second.converged() && third.plan.is_converged(),
                "{flavor} {label}: rerun did not converge:\n{}\n{:?}",
                second.remaining(),
                second.outcome.as_ref().map(ToString::to_string)
            );
            // No duplicates, every field right, the action ran at most once.
            assert_sop_fields(&sim.state());
            assert!(syncs(&sim) <= 1, "{flavor} {label}: {} syncs", syncs(&sim));
            agent.assert_schema_clean();
        }
    }
}

#[tokio::test]
async fn a_hand_made_task_on_the_same_path_is_untouched_and_reported() {
    for flavor in ApiFlavor::ALL {
        let sim = fresh_box(flavor);
        // An admin's own task on /mnt/pool0 to another bucket, and a hand-made copy of
        // the SOP task for pool1 (same name and path) made before the agent.
        let admin_cred = sim.update_state(|s| {
            let id = s.credentials.iter().map(|c| c.id).max().unwrap_or(0) + 1;
            s.credentials.push(truenas_sim::scenario::Credential {
                id,
                name: "admin-wasabi".into(),
                provider: "S3".into(),
                attributes: serde_json::from_value(
                    json!({"access_key_id": "a", "secret_access_key": "b"}),
                )
                .unwrap(),
            });
            id
        });
        let before = sim.state();
        let mw = sim.in_process();
        for (desc, path, bucket) in [
            ("Nightly to Wasabi", "/mnt/pool0", "wasabi-archive"),
            ("Pool1 Cloud Backup", "/mnt/pool1", "truenas-somewhere-else"),
        ] {
            let task = json!({
                "description": desc, "path": path, "credentials": admin_cred,
                "attributes": {"bucket": bucket, "folder": "/x"},
                "schedule": {"minute": "0", "hour": "3", "dom": "*", "month": "*", "dow": "*"},
                "direction": "PUSH", "transfer_mode": "COPY",
            });
            mw.call(Call::new(
                truenas_agent::middleware::Method::CloudsyncCreate,
                vec![task],
            ))
            .await
            .unwrap();
        }
        let admin: Vec<_> = sim.state().cloud_sync_tasks.clone();
        assert!(before.cloud_sync_tasks.is_empty());
        let agent = Agent::new();
        let d = document(|_| {});
        let r = agent.pass(&sim, &d, true).await;
        // Both are reported; the pool1 copy blocks creating a duplicate.
        let reported: Vec<(u64, bool)> = r
            .plan
            .conflicts
            .iter()
            .map(|c| (c.id, c.blocking))
            .collect();
        assert_eq!(
            reported,
            [(admin[0].id, false), (admin[1].id, true)],
            "{flavor}: {}",
            r.plan
        );
        assert!(!r.converged());
        let after = sim.state();
        for t in &admin {
            let now = after
                .cloud_sync_tasks
                .iter()
                .find(|x| x.id == t.id)
                .unwrap();
            assert_eq!(now, t, "{flavor}: the admin's task #{} was changed", t.id);
        }
        // The agent's pool0 task exists next to the admin's; none for pool1 yet.
        assert_eq!(
            after
                .cloud_sync_tasks
                .iter()
                .filter(|t| t.path == "/mnt/pool0")
                .count(),
            2
        );
        assert_eq!(
            after
                .cloud_sync_tasks
                .iter()
                .filter(|t| t.path == "/mnt/pool1")
                .count(),
            1
        );
        let text = format!("{}", r.plan);
        assert!(text.contains("list it in adopt.cloud_sync"), "{text}");
        // Adopting the copy lets the agent bring it to the SOP.
        let adopt = document(|v| v["adopt"] = json!({"cloud_sync": [admin[1].id]}));
        let r = agent.pass(&sim, &adopt, true).await;
        assert!(
            r.remaining().steps.is_empty(),
            "{flavor}: {}",
            r.remaining()
        );
        let s = sim.state();
        let pool1 = s
            .cloud_sync_tasks
            .iter()
            .find(|t| t.id == admin[1].id)
            .unwrap();
        assert_eq!(pool1.attributes["bucket"], BUCKET);
        assert_eq!(pool1.transfer_mode, "SYNC");
        let untouched = s
            .cloud_sync_tasks
            .iter()
            .find(|t| t.id == admin[0].id)
            .unwrap();
        assert_eq!(untouched, &admin[0]);
        agent.assert_schema_clean();
    }
}

#[tokio::test]
async fn secrets_never_reach_outputs_logs_or_state_files() {
    use tracing_subscriber::layer::SubscriberExt as _;
    let logs = Arc::new(Mutex::new(Vec::<u8>::new()));
    let sink = logs.clone();
    let subscriber = tracing_subscriber::registry().with(
        tracing_subscriber::fmt::layer()
            .with_ansi(false)
            .with_writer(move || LogWriter(sink.clone())),
    );
    let _guard = tracing::subscriber::set_default(
        subscriber.with(tracing_subscriber::filter::LevelFilter::TRACE),
    );
    let mut shown = String::new();
    for flavor in ApiFlavor::ALL {
        let sim = fresh_box(flavor);
        let agent = Agent::new();
        // Make one call fail with a middleware text that quotes a secret.
        sim.update_faults(|f| {
            f.failures.push(truenas_sim::Failure {
                method: "pool.snapshottask.create".into(),
                errno: 22,
                reason: "rejected CANARY-ENC-PASSWORD-2b8e41".into(),
                path: None,
                times: Some(1),
            });
        });
        let d = document(|v| {
            v["cloud_sync"]["exclude"] = json!(["/Archive/**"]);
        });
        for write in [true, true, false] {
            let r = agent.pass(&sim, &d, write).await;
            shown.push_str(&format!("{}\n{}\n{:?}\n", r.plan, r.plan.to_json(), r.plan));
            if let Some(o) = &r.outcome {
                shown.push_str(&format!("{o}\n{}\n{o:?}\n", o.to_json()));
            }
            if let Some(a) = &r.after {
                shown.push_str(&format!("{a}\n{}\n", a.to_json()));
            }
        }
        // A rekey attempt is refused, also without leaking.
        sim.update_state(|s| {
            for t in &mut s.cloud_sync_tasks {
                t.last_run = Some(json!({"state": "SUCCESS"}));
            }
        });
        let rekey = document(|v| v["encryption"]["password"] = json!("CANARY-ENC-SALT-9d0c55"));
        let r = agent.pass(&sim, &rekey, false).await;
        shown.push_str(&r.plan.to_string());
        assert!(
            shown.contains("[REDACTED]"),
            "the injected failure text was shown redacted"
        );
        assert_no_canary_in_dir(agent.state.path());
    }
    assert_no_canary("plans and outcomes", &shown);
    let logs = String::from_utf8(logs.lock().unwrap().clone()).unwrap();
    assert!(logs.contains("applying"), "logs were captured");
    assert_no_canary("log lines", &logs);
    // The canaries really were in play (they reached the simulator, only there).
    assert!(CANARIES.len() >= 5);
}

struct LogWriter(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Every invalid document fixture: exit 2, every error path on stderr, and the
/// simulator listening on the given socket receives no call at all.
#[tokio::test]
async fn invalid_documents_are_refused_with_every_path_and_zero_calls() {
    let tmp = tempfile::tempdir().unwrap();
    let sim = fresh_box(ApiFlavor::V25_04);
    let server = sim
        .serve(truenas_sim::ServeOptions {
            socket: Some(tmp.path().join("mw.sock")),
            ..Default::default()
        })
        .await
        .unwrap();
    let url = server.unix_url().unwrap();
    let dir = data("desired/invalid");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    assert!(files.len() >= 30);
    for file in files {
        let expected = std::fs::read_to_string(file.with_extension("expected")).unwrap();
        for command in ["plan", "apply"] {
            let out = tokio::task::spawn_blocking({
                let (file, url, state) = (file.clone(), url.clone(), tmp.path().join("state"));
                move || {
                    crate::support::agent_command()
                        .args([command, "--allow-unsigned", "-f"])
                        .arg(&file)
                        .args(["--middleware", &url, "--state-dir"])
                        .arg(&state)
                        .output()
                        .unwrap()
                }
            })
            .await
            .unwrap();
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(2), "{}: {stderr}", file.display());
            for path in expected.lines() {
                assert!(
                    stderr.contains(path),
                    "{}: `{path}` missing from:\n{stderr}",
                    file.display()
                );
            }
            assert_no_canary(&file.display().to_string(), &stderr);
            assert_no_canary("stdout", &String::from_utf8_lossy(&out.stdout));
        }
    }
    assert!(
        sim.calls().is_empty(),
        "an invalid document led to {} call(s)",
        sim.calls().len()
    );
    server.shutdown().await;
}

/// The schema check above is real: a call with a wrong type or an unknown key is
/// reported (checked here without relying on the simulator's own validation).
#[tokio::test]
async fn the_schema_check_reports_bad_params() {
    if schema_dir("25.04").is_none() {
        eprintln!("skipped: shared/truenas-api not found");
        return;
    }
    let sim = fresh_box(ApiFlavor::V25_04);
    let violations = Arc::new(Mutex::new(Vec::new()));
    let checked = SchemaChecked::new(&sim, &violations);
    let bad = Call::new(
        truenas_agent::middleware::Method::SnmpUpdate,
        vec![json!({"v3": "yes", "v3_colour": "blue"})],
    );
    let _ = checked.call(bad).await;
    let found = violations.lock().unwrap().clone();
    assert!(found.len() >= 2, "{found:?}");
    assert!(
        found.iter().all(|v| v.starts_with("snmp.update: params/0")),
        "{found:?}"
    );
}

/// After the first run uploaded data, a new encryption password is refused (the rest
/// still converges); `allow_rekey` lets it through.
#[tokio::test]
async fn rekey_of_a_task_that_ran_is_refused_unless_allowed() {
    for flavor in ApiFlavor::ALL {
        let sim = fresh_box(flavor);
        let agent = Agent::new();
        agent.pass(&sim, &document(|_| {}), true).await;
        // Finish the first-run action's job: pool0's task then has a last run.
        sim.run_pending_jobs();
        wait_until(|| task(&sim.state(), "pool0").last_run.is_some()).await;
        let new_password = document(|v| {
            v["encryption"]["password"] = json!("CANARY-ENC-SALT-9d0c55");
            v["snapshots"]["lifetime_value"] = json!(3);
        });
        let r = agent.pass(&sim, &new_password, true).await;
        let refused: Vec<String> = r.plan.blockers.iter().map(ToString::to_string).collect();
        assert_eq!(refused.len(), 1, "{flavor}: {refused:?}");
        assert!(refused[0].contains("would make that data unreadable"));
        let s = sim.state();
        assert_eq!(
            task(&s, "pool0").encryption_password,
            "CANARY-ENC-PASSWORD-2b8e41"
        );
        assert_eq!(
            task(&s, "pool1").encryption_password,
            "CANARY-ENC-SALT-9d0c55",
            "never ran"
        );
        assert_eq!(
            snap_task(&s, "pool0").lifetime_value,
            3,
            "other changes still applied"
        );
        let allowed = document(|v| {
            v["encryption"]["password"] = json!("CANARY-ENC-SALT-9d0c55");
            v["encryption"]["allow_rekey"] = json!(true);
            v["snapshots"]["lifetime_value"] = json!(3);
        });
        let r = agent.pass(&sim, &allowed, true).await;
        assert!(r.converged(), "{flavor}: {}", r.remaining());
        assert_eq!(
            task(&sim.state(), "pool0").encryption_password,
            "CANARY-ENC-SALT-9d0c55"
        );
        agent.assert_schema_clean();
    }
}

/// A fresh box with pools `pool0`..`pool2`, their scoped key, and jobs that run for an
/// hour (so runs started in a pass are still RUNNING or WAITING at its end).
fn three_pool_box(flavor: ApiFlavor, timing: JobTiming) -> Simulator {
    let mut s = Scenario::two_pools(flavor);
    s.pools.push(Pool {
        id: 4,
        name: "pool2".into(),
        guid: "5166234587311022401".into(),
        status: "ONLINE".into(),
        healthy: true,
        boot: false,
    });
    s.normalize();
    s.b2_accounts.push(B2Account {
        account: KEY_ID.into(),
        valid: true,
        buckets: Some(vec![BUCKET.into()]),
    });
    Simulator::new(s).with_job_timing(timing)
}

/// Three pools, no SNMP (nothing waits for a job), and `actions`.
fn three_pool_document(actions: Value) -> DesiredState {
    document(|v| {
        v["pools"] = json!(["pool0", "pool1", "pool2"]);
        v.as_object_mut().unwrap().remove("snmp");
        v["actions"] = actions;
    })
}

fn first_runs() -> Value {
    json!([
        {"id": "first-run-pool0", "type": "run_cloud_sync", "pool": "pool0"},
        {"id": "first-run-pool1", "type": "run_cloud_sync", "pool": "pool1"},
        {"id": "first-run-pool2", "type": "run_cloud_sync", "pool": "pool2"}
    ])
}

/// Live `cloudsync.sync` jobs per task id (`arguments[0]`).
fn runs_by_task(sim: &Simulator) -> std::collections::BTreeMap<u64, usize> {
    let mut out = std::collections::BTreeMap::new();
    for job in sim.jobs() {
        if job["method"] == "cloudsync.sync" {
            *out.entry(job["arguments"][0].as_u64().unwrap())
                .or_default() += 1;
        }
    }
    out
}

/// Issue 12.1: with `[id, {"dry_run": false}]` every task shared one job lock and the
/// third first run got the second task's queued job back — and was recorded as done.
#[tokio::test]
async fn first_runs_of_three_pools_each_start_a_run_of_their_own_task() {
    for flavor in ApiFlavor::ALL {
        let sim = three_pool_box(
            flavor,
            JobTiming::Auto {
                duration: Duration::from_secs(3600),
            },
        );
        let agent = Agent::new();
        let r = agent
            .pass(&sim, &three_pool_document(first_runs()), true)
            .await;
        let outcome = r.outcome.as_ref().unwrap();
        assert!(r.converged(), "{flavor}: {outcome}\n{}", r.remaining());
        let s = sim.state();
        let runs = runs_by_task(&sim);
        for pool in ["pool0", "pool1", "pool2"] {
            let id = task(&s, pool).id;
            assert_eq!(
                runs.get(&id),
                Some(&1),
                "{flavor}: one run of {pool}'s task, {runs:?}"
            );
        }
        for job in sim.jobs() {
            assert_eq!(job["state"], "RUNNING", "{flavor}: each under its own lock");
            assert_eq!(
                job["arguments"].as_array().unwrap().len(),
                1,
                "{flavor}: [id]"
            );
        }
        let ownership: Value = agent.state.read_json("ownership.json").unwrap().unwrap();
        assert_eq!(
            ownership["executed_actions"],
            json!(["first-run-pool0", "first-run-pool1", "first-run-pool2"])
        );
        agent.assert_schema_clean();
    }
}

/// A `cloudsync.sync` that hands back a run already queued before the call (here a
/// scheduled run waiting behind the running one) did not start the action's run: it is
/// reported, not recorded, and the next pass starts it.
#[tokio::test]
async fn a_run_handed_back_from_the_queue_is_retried_on_the_next_pass() {
    for flavor in ApiFlavor::ALL {
        let sim = three_pool_box(flavor, JobTiming::Manual);
        let agent = Agent::new();
        let setup = agent
            .pass(&sim, &three_pool_document(json!([])), true)
            .await;
        assert!(setup.converged(), "{flavor}: {}", setup.remaining());
        let pool0 = i64::try_from(task(&sim.state(), "pool0").id).unwrap();
        // Cron's runs: one running, one waiting (`midclt call cloudsync.sync <id>`).
        let running = sim.run_cloud_sync(pool0).unwrap();
        assert!(sim.start_job(running));
        let waiting = sim.run_cloud_sync(pool0).unwrap();
        let doc = three_pool_document(
            json!([{"id": "run-now-pool0", "type": "run_cloud_sync", "pool": "pool0"}]),
        );
        let r = agent.pass(&sim, &doc, true).await;
        assert!(!r.converged(), "{flavor}");
        let text = r.outcome.as_ref().unwrap().to_string();
        assert!(text.contains("did not start"), "{flavor}: {text}");
        assert!(text.contains(&format!("job {waiting}")), "{text}");
        assert!(text.contains("retried on the next pass"), "{text}");
        let ownership: Value = agent.state.read_json("ownership.json").unwrap().unwrap();
        assert_eq!(ownership["executed_actions"], json!([]), "{flavor}");
        assert_eq!(sim.jobs().len(), 2, "{flavor}: no new job");
        // The queue drains; the next pass starts the action's own run.
        sim.finish_job(running);
        assert!(sim.run_job(waiting));
        let again = agent.pass(&sim, &doc, true).await;
        assert!(
            again.converged(),
            "{flavor}: {}",
            again.outcome.as_ref().unwrap()
        );
        assert_eq!(sim.jobs().len(), 3, "{flavor}");
        let ownership: Value = agent.state.read_json("ownership.json").unwrap().unwrap();
        assert_eq!(ownership["executed_actions"], json!(["run-now-pool0"]));
        // And once recorded it is never run again.
        let third = agent.pass(&sim, &doc, true).await;
        assert!(third.plan.steps.is_empty(), "{flavor}: {}", third.plan);
        agent.assert_schema_clean();
    }
}

/// Issue 12.9: the create/update answer is built from the data sent (24.10 echoes it),
/// so a credential the box stored differently is only seen by reading it back.
#[tokio::test]
async fn a_credential_stored_differently_from_the_answer_is_reported() {
    for flavor in ApiFlavor::ALL {
        let sim = fresh_box(flavor);
        sim.update_faults(|f| f.credential_store_drops.push("key".into()));
        let agent = Agent::new();
        let r = agent.pass(&sim, &document(|_| {}), true).await;
        let outcome = r.outcome.as_ref().unwrap();
        let text = outcome.to_string();
        assert!(!r.converged(), "{flavor}: {text}");
        assert!(
            text.contains(
                "credential #1 reads back different from what was written (fields: provider.key)"
            ),
            "{flavor}: {text}"
        );
        assert_no_canary("outcome", &text);
        agent.assert_schema_clean();
    }
}

/// A pool dropped from the document: its tasks are disabled (default) or deleted.
#[tokio::test]
async fn removed_pools_are_disabled_or_deleted() {
    for flavor in ApiFlavor::ALL {
        for policy in ["disable", "delete"] {
            let sim = fresh_box(flavor);
            let agent = Agent::new();
            agent.pass(&sim, &document(|_| {}), true).await;
            let only0 = document(|v| {
                v["revision"] = json!(8);
                v["pools"] = json!(["pool0"]);
                v["removed_pools"] = json!(policy);
            });
            let r = agent.pass(&sim, &only0, true).await;
            assert!(r.converged(), "{flavor} {policy}: {}", r.remaining());
            let s = sim.state();
            let left: Vec<_> = s
                .cloud_sync_tasks
                .iter()
                .filter(|t| t.path == "/mnt/pool1")
                .collect();
            let snaps: Vec<_> = s
                .snapshot_tasks
                .iter()
                .filter(|t| t.dataset == "pool1")
                .collect();
            if policy == "disable" {
                assert!(left.len() == 1 && !left[0].enabled, "{flavor}");
                assert!(snaps.len() == 1 && !snaps[0].enabled, "{flavor}");
            } else {
                assert!(left.is_empty() && snaps.is_empty(), "{flavor}");
            }
            assert!(task(&s, "pool0").enabled);
            // An older revision is now refused as a rollback, with nothing written.
            sim.clear_calls();
            let old = agent.pass(&sim, &document(|_| {}), true).await;
            assert!(
                old.plan
                    .blockers
                    .iter()
                    .any(|b| b.to_string().contains("rollback"))
            );
            assert!(sim.write_calls().is_empty());
            agent.assert_schema_clean();
        }
    }
}

/// Issue 12.5 (REFERENCE §8 row 5): `snmp.update` stores the config, then snmpd fails
/// to start while the middleware re-creates the v3 user. `snmp.config` then matches the
/// document but snmpd has no user; a plain diff never retries. The agent remembers the
/// failure and re-applies SNMP (making the middleware re-create the user) until it works.
#[tokio::test]
async fn a_half_applied_snmp_is_reapplied_until_snmpd_has_the_user() {
    const USER: &str = "nmsQwErTyUiOp";
    for flavor in ApiFlavor::ALL {
        let sim = fresh_box(flavor);
        let agent = Agent::new();
        let d = document(|_| {});
        sim.update_faults(|f| f.snmpd_start_failures = 1);
        let first = agent.pass(&sim, &d, true).await;
        assert!(!first.converged(), "{flavor}");
        let failed: Vec<String> = first
            .outcome
            .as_ref()
            .unwrap()
            .failures()
            .map(|(step, _)| step.to_owned())
            .collect();
        assert_eq!(failed.len(), 1, "{flavor}: {failed:?}");
        assert!(failed[0].starts_with("update SNMP"), "{flavor}: {failed:?}");
        let s = sim.state();
        assert_eq!(s.snmp.v3_username, USER, "{flavor}: the config was stored");
        assert!(s.snmpd.users.is_empty(), "{flavor}: {:?}", s.snmpd);
        // The pass's own after-plan already says what is left: the re-apply.
        assert!(
            first
                .remaining()
                .steps
                .iter()
                .any(|st| st.view().action == "reapply"),
            "{flavor}: {}",
            first.remaining()
        );

        // The next pass re-applies SNMP although `snmp.config` already matches.
        let second = agent.pass(&sim, &d, true).await;
        assert!(second.converged(), "{flavor}: {}", second.remaining());
        let s = sim.state();
        assert_eq!(s.snmpd.users, [USER], "{flavor}: snmpd has the user");
        assert_eq!(s.snmp.v3_username, USER);
        assert_eq!(s.service("snmp").unwrap().state, "RUNNING", "{flavor}");

        // Then the retry is over: zero writes.
        sim.clear_calls();
        let third = agent.pass(&sim, &d, true).await;
        assert!(third.plan.steps.is_empty(), "{flavor}: {}", third.plan);
        assert!(sim.write_calls().is_empty(), "{flavor}");
        agent.assert_schema_clean();
    }
}

/// While the retry keeps failing, every pass tries again, and the failure stays
/// recorded in the state directory (for `status`).
#[tokio::test]
async fn a_failing_snmp_retry_is_kept_until_it_works() {
    let sim = fresh_box(ApiFlavor::V25_04);
    let agent = Agent::new();
    let d = document(|_| {});
    sim.update_faults(|f| f.snmpd_start_failures = 1);
    agent.pass(&sim, &d, true).await;
    // snmpd runs now (without the user). Next pass: the restart `snmp.update` does for a
    // running snmpd fails quietly, then the start inside the user's re-creation fails.
    sim.update_faults(|f| f.snmpd_start_failures = 2);
    let retry = agent.pass(&sim, &d, true).await;
    assert!(!retry.converged());
    let record = std::fs::read_to_string(agent.state.file("ownership.json")).unwrap();
    let own: Value = serde_json::from_str(&record).unwrap();
    assert!(
        own["snmp_retry"]["step"].as_str().unwrap().contains("SNMP"),
        "{own}"
    );
    assert_no_canary("ownership.json", &record);
    // `status` shows it.
    let (status, text) = status_of(&agent, &sim).await;
    let problem = status
        .problems
        .iter()
        .find(|p| p.message.contains("the last SNMP apply failed"))
        .unwrap_or_else(|| panic!("no SNMP retry in status:\n{text}"));
    assert_eq!(problem.area, truenas_agent::health::Area::Snmp);
    assert!(text.contains("re-applies SNMP"), "{text}");
    assert_no_canary("status", &text);
    let last = agent.pass(&sim, &d, true).await;
    assert!(last.converged(), "{}", last.remaining());
    assert_eq!(sim.state().snmpd.users, ["nmsQwErTyUiOp"]);
    let own: Value =
        serde_json::from_str(&std::fs::read_to_string(agent.state.file("ownership.json")).unwrap())
            .unwrap();
    assert!(own.get("snmp_retry").is_none(), "{own}");
    let (status, _) = status_of(&agent, &sim).await;
    assert!(
        !status
            .problems
            .iter()
            .any(|p| p.message.contains("the last SNMP apply failed"))
    );
}

/// `status` (no document) over the simulator: the report and its text.
async fn status_of(
    agent: &Agent,
    sim: &Simulator,
) -> (truenas_agent::status::StatusReport, String) {
    use truenas_agent::cli::status::{Context, DocumentArg, report_with};
    let ctx = Context {
        state_dir: agent.state.path().to_owned(),
        url: "unix:///var/run/middleware/middlewared.sock".into(),
        version: "test".into(),
        assess: truenas_agent::health::assess::AssessOptions {
            now: chrono::Utc::now(),
            offset: chrono::FixedOffset::east_opt(0).unwrap(),
            call_timeout: Duration::from_secs(5),
            b2: None,
            guid_property: truenas_agent::zfs::DEFAULT_GUID_PROPERTY.into(),
            root_pool: None,
        },
        central_config: None,
        host: None,
    };
    let mw = sim.in_process();
    let report = report_with(Ok(&mw), &DocumentArg::None, &ctx).await;
    let text = truenas_agent::status::render_text(&report);
    (report, text)
}

/// Without `--allow-unsigned`, a local document must be a DSSE envelope signed by a key
/// in the agent configuration's `[central] trusted_keys`.
#[test]
fn local_signed_envelopes_are_verified_with_the_configured_keys() {
    use truenas_agent::central::dsse;
    let tmp = tempfile::tempdir().unwrap();
    let trusted = ed25519_dalek::SigningKey::generate(&mut rand::rngs::OsRng);
    let other = ed25519_dalek::SigningKey::generate(&mut rand::rngs::OsRng);
    let token = tmp.path().join("token");
    std::fs::write(&token, "t").unwrap();
    let config = tmp.path().join("agent.toml");
    std::fs::write(
        &config,
        format!(
            "[central]\nurl = \"https://central.example/\"\ntoken_file = \"{}\"\ntrusted_keys = [\"{}\"]\n",
            token.display(),
            dsse::TrustedKey::from_signing_key(&trusted).to_config_string()
        ),
    )
    .unwrap();
    let payload = std::fs::read(data("desired/example.json")).unwrap();
    let run = |key: &ed25519_dalek::SigningKey, with_config: bool| {
        let env = dsse::sign(dsse::CONFIG_PAYLOAD_TYPE, &payload, key, None);
        let file = tmp.path().join("signed.json");
        std::fs::write(&file, env.to_json()).unwrap();
        let mut cmd = crate::support::agent_command();
        cmd.args(["plan", "-f"]).arg(&file);
        if with_config {
            cmd.arg("--config").arg(&config);
        }
        // Nothing listens here: an accepted document ends in "cannot connect" (3).
        cmd.args(["--middleware", "unix:///nonexistent/mw.sock", "--state-dir"])
            .arg(tmp.path().join("state"));
        cmd.output().unwrap()
    };
    let ok = run(&trusted, true);
    assert_eq!(
        ok.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    let forged = run(&other, true);
    let stderr = String::from_utf8_lossy(&forged.stderr);
    assert_eq!(forged.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("(document)"), "{stderr}");
    let unconfigured = run(&trusted, false);
    let stderr = String::from_utf8_lossy(&unconfigured.stderr);
    assert_eq!(unconfigured.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("--allow-unsigned"), "{stderr}");
    for out in [&ok, &forged, &unconfigured] {
        assert_no_canary("plan output", &String::from_utf8_lossy(&out.stdout));
        assert_no_canary("plan errors", &String::from_utf8_lossy(&out.stderr));
    }
}

/// Runs the agent binary (blocking, off the async thread).
async fn agent_cli(args: Vec<std::ffi::OsString>) -> std::process::Output {
    tokio::task::spawn_blocking(move || {
        crate::support::agent_command()
            .args(&args)
            .output()
            .unwrap()
    })
    .await
    .unwrap()
}

/// `plan` and `apply` through the real client over the simulator's unix socket:
/// exit codes, text and `--json`, and no secret in stdout, stderr (logs at debug) or
/// the state directory.
#[tokio::test]
async fn cli_plan_and_apply_over_the_middleware_socket() {
    for flavor in ApiFlavor::ALL {
        let tmp = tempfile::tempdir().unwrap();
        let sim = fresh_box(flavor);
        let server = sim
            .serve(truenas_sim::ServeOptions {
                socket: Some(tmp.path().join("mw.sock")),
                ..Default::default()
            })
            .await
            .unwrap();
        let url = server.unix_url().unwrap();
        let state = tmp.path().join("state");
        let doc = data("desired/example.json");
        let run = |command: &str, json: bool| {
            let mut args: Vec<std::ffi::OsString> = vec![
                command.into(),
                "--allow-unsigned".into(),
                "-f".into(),
                doc.clone().into(),
            ];
            if json {
                args.push("--json".into());
            }
            args.extend([
                "--middleware".into(),
                url.clone().into(),
                "--log".into(),
                "debug".into(),
            ]);
            args.extend(["--state-dir".into(), state.clone().into()]);
            agent_cli(args)
        };
        let mut everything = String::new();
        let mut check = |label: &str, out: &std::process::Output, code: i32| {
            let (stdout, stderr) = (
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr),
            );
            assert_eq!(
                out.status.code(),
                Some(code),
                "{flavor} {label}:\n{stdout}\n{stderr}"
            );
            everything.push_str(&stdout);
            everything.push_str(&stderr);
            stdout.into_owned()
        };
        let planned = check("plan (fresh)", &run("plan", false).await, 1);
        assert!(planned.contains("9 change(s) to make."), "{planned}");
        assert!(sim.write_calls().is_empty(), "{flavor}: plan wrote");
        let applied = check("apply --json", &run("apply", true).await, 0);
        let v: Value = serde_json::from_str(&applied).unwrap();
        assert_eq!(v["converged"], true, "{applied}");
        assert!(
            v["outcome"]["steps"]
                .as_array()
                .unwrap()
                .iter()
                .all(|s| s["status"] == "done")
        );
        assert_sop_fields(&sim.state());
        sim.clear_calls();
        let again = check("plan (converged)", &run("plan", false).await, 0);
        assert!(
            again.contains("No changes: the NAS matches the document."),
            "{again}"
        );
        let quiet = check("apply (converged)", &run("apply", false).await, 0);
        assert!(quiet.contains("No changes"), "{quiet}");
        assert!(
            sim.write_calls().is_empty(),
            "{flavor}: {:?}",
            sim.write_calls()
        );
        assert_no_canary(&format!("{flavor} CLI output and logs"), &everything);
        assert!(everything.contains("applying"), "debug logs were captured");
        assert_no_canary_in_dir(&state);
        server.shutdown().await;
    }
}

/// The same interruption through the real client: the connection closes right after
/// the first Cloud Sync task was created; `apply` stops (exit 3) and the next `apply`
/// converges with exactly one task per pool.
#[tokio::test]
async fn cli_apply_survives_a_dropped_socket_mid_pass() {
    for flavor in ApiFlavor::ALL {
        let tmp = tempfile::tempdir().unwrap();
        let sim = fresh_box(flavor);
        sim.update_faults(|f| {
            f.drop_at.push(DropAt {
                method: "cloudsync.create".into(),
                when: DropWhen::After,
                times: Some(1),
            });
        });
        let server = sim
            .serve(truenas_sim::ServeOptions {
                socket: Some(tmp.path().join("mw.sock")),
                ..Default::default()
            })
            .await
            .unwrap();
        let args: Vec<std::ffi::OsString> = vec![
            "apply".into(),
            "--allow-unsigned".into(),
            "-f".into(),
            data("desired/example.json").into(),
            "--middleware".into(),
            server.unix_url().unwrap().into(),
            "--state-dir".into(),
            tmp.path().join("state").into(),
        ];
        let first = agent_cli(args.clone()).await;
        let text = String::from_utf8_lossy(&first.stdout);
        assert_eq!(first.status.code(), Some(3), "{flavor}:\n{text}");
        assert!(text.contains("pass stopped"), "{text}");
        let second = agent_cli(args).await;
        let text = String::from_utf8_lossy(&second.stdout);
        assert_eq!(second.status.code(), Some(0), "{flavor}:\n{text}");
        assert!(text.contains("created by an interrupted apply"), "{text}");
        assert_sop_fields(&sim.state());
        server.shutdown().await;
    }
}

/// Issue 13.17: after `ownership.json` is lost, the agent's own objects look hand-made.
/// The plan says how to hand every one of them back (Cloud Sync tasks too), and the
/// first-run action that already ran is not run again once they are adopted.
#[tokio::test]
async fn after_a_lost_ownership_file_adopting_back_does_not_rerun_the_first_backup() {
    for flavor in ApiFlavor::ALL {
        let sim = fresh_box(flavor);
        let agent = Agent::new();
        let d = document(|_| {});
        let first = agent.pass(&sim, &d, true).await;
        assert!(first.converged(), "{flavor}: {}", first.remaining());
        assert_eq!(syncs(&sim), 1);
        std::fs::remove_file(agent.state.file("ownership.json")).unwrap();

        let lost = agent.pass(&sim, &d, true).await;
        let s = sim.state();
        let text = lost.plan.to_string();
        for pool in ["pool0", "pool1"] {
            let id = task(&s, pool).id;
            let line = text
                .lines()
                .find(|l| l.contains(&format!("cloud sync task #{id} ")))
                .unwrap_or_else(|| panic!("{flavor}: no conflict for #{id}:\n{text}"));
            assert!(
                line.contains("list it in adopt.cloud_sync"),
                "{flavor}: {line}"
            );
        }
        assert!(text.contains("list it in adopt.snapshots"), "{text}");
        assert!(text.contains(r#""adopt": {"credential": 1}"#), "{text}");

        let adopt = document(|v| {
            v["adopt"] = json!({
                "credential": s.credentials[0].id,
                "cloud_sync": [task(&s, "pool0").id, task(&s, "pool1").id],
                "snapshots": [snap_task(&s, "pool0").id, snap_task(&s, "pool1").id],
            });
        });
        sim.clear_calls();
        let back = agent.pass(&sim, &adopt, true).await;
        assert!(back.converged(), "{flavor}: {}", back.remaining());
        assert_eq!(
            syncs(&sim),
            0,
            "{flavor}: the first run already happened and is not repeated:\n{}",
            back.plan
        );
        let ownership: Value = agent.state.read_json("ownership.json").unwrap().unwrap();
        assert_eq!(ownership["executed_actions"], json!(["5f0c2a9e-first-run"]));
        agent.assert_schema_clean();
    }
}
