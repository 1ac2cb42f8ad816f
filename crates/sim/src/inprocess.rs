//! An in-process connection to the simulator that implements [`Middleware`]: the same
//! core, validation, faults and call record as the socket server, without sockets.
//!
//! Owns: [`InProcess`] and the mapping of simulator errors to [`CallError`] — the
//! decoding the real client applies to the wire errors: validation → `Validation` (items
//! with paths), `InstanceNotFound`/`ENOENT` → `NotFound`, 207 → `NotAuthenticated`,
//! 13 → `NotAuthorized`, 16 → `RateLimited`, unknown method/201 → `MethodNotFound`,
//! everything else → `Failed { errno, errname, reason }`; an injected drop → `Disconnected`.
//! Does not: encode frames or keep a socket; it is logged in as root (a unix-socket peer).
//! Invariants: every call goes through `Simulator::handle`, so tests asserting on the call
//! record or on faults see in-process calls exactly like socket calls.
//! Limitations: `core.subscribe` returns an id but no events are delivered (the trait has
//! no event stream); use [`Simulator::events`] in tests instead.

use std::sync::Mutex;
use std::time::Duration;

use serde_json::Value;

use super::core::{Reply, RpcError, Session, errno};
use super::simulator::{Handled, Simulator};
use super::wire;
use truenas_agent::middleware::{
    ApiInfo, Call, CallError, Job, JobId, Method, Middleware, Protocol, TransportKind,
    ValidationItem,
};

/// A logged-in (root, unix-socket) connection to a [`Simulator`], usable wherever an
/// `impl Middleware` is expected.
pub struct InProcess {
    sim: Simulator,
    session: Mutex<Session>,
}

impl std::fmt::Debug for InProcess {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InProcess")
            .field("sim", &self.sim)
            .finish_non_exhaustive()
    }
}

impl Simulator {
    /// A new in-process connection (its own connection id in the call record).
    pub fn in_process(&self) -> InProcess {
        InProcess {
            session: Mutex::new(Session::unix(self.next_conn())),
            sim: self.clone(),
        }
    }
}

impl InProcess {
    /// A simulator for `scenario` and a connection to it.
    pub fn new(scenario: super::Scenario) -> Self {
        Simulator::new(scenario).in_process()
    }

    /// The simulator behind this connection (to inspect or change the box).
    pub fn simulator(&self) -> &Simulator {
        &self.sim
    }
}

impl Middleware for InProcess {
    fn api(&self) -> ApiInfo {
        api_of(&self.sim)
    }

    async fn call(&self, call: Call) -> Result<Value, CallError> {
        call_on(&self.sim, &self.session, call).await
    }

    async fn wait_job(&self, id: JobId, timeout: Duration) -> Result<Job, CallError> {
        wait_on(&self.sim, id, timeout).await
    }
}

/// The simulator itself is usable as a `Middleware` too: its calls go through one
/// logged-in root connection (connection id 0 in the call record).
impl Middleware for Simulator {
    fn api(&self) -> ApiInfo {
        api_of(self)
    }

    async fn call(&self, call: Call) -> Result<Value, CallError> {
        call_on(self, &self.shared.default_session, call).await
    }

    async fn wait_job(&self, id: JobId, timeout: Duration) -> Result<Job, CallError> {
        wait_on(self, id, timeout).await
    }
}

/// As the real client would detect it over the unix socket: the legacy protocol on 24.10,
/// else the highest API version the agent knows among those the box serves.
fn api_of(sim: &Simulator) -> ApiInfo {
    let flavor = sim.flavor();
    let version = sim.version();
    let pinned = truenas_agent::middleware::choose_api_version(&sim.api_versions());
    let newer = truenas_agent::middleware::ApiFlavor::from_version_short(&version)
        .is_ok_and(|(release, newer)| newer || release > flavor);
    ApiInfo {
        flavor: pinned.map_or(flavor, |(_, family)| family),
        version,
        protocol: if flavor == truenas_agent::middleware::ApiFlavor::V24_10 {
            Protocol::Legacy
        } else {
            Protocol::JsonRpc
        },
        transport: TransportKind::UnixSocket,
        api_version: pinned.map(|(name, _)| name.to_owned()),
        newer_than_known: newer,
    }
}

fn load(session: &Mutex<Session>) -> Session {
    session
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .clone()
}

fn store(slot: &Mutex<Session>, session: Session) {
    *slot
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner) = session;
}

async fn call_on(sim: &Simulator, slot: &Mutex<Session>, call: Call) -> Result<Value, CallError> {
    let method = call.method;
    let mut session = load(slot);
    let handled = sim
        .handle(&mut session, method.as_str(), call.params, None)
        .await;
    let legacy_jobs = session.legacy_jobs;
    store(slot, session);
    match handled {
        Handled::Drop => Err(CallError::Disconnected {
            method,
            detail: "the simulator dropped the connection (injected fault)".to_owned(),
        }),
        Handled::Reply(Ok(Reply::Value(v))) => Ok(v),
        Handled::Reply(Ok(Reply::Job(id))) if legacy_jobs => Ok(Value::from(id)),
        Handled::Reply(Ok(Reply::Job(id))) => {
            // 25.10 with legacy_jobs=false: the call waits for the job.
            let job = sim.wait_job_value(id, Duration::from_secs(3600)).await;
            job_outcome(method, job)
        }
        Handled::Reply(Err(e)) => Err(to_call_error(method, &e)),
    }
}

async fn wait_on(sim: &Simulator, id: JobId, timeout: Duration) -> Result<Job, CallError> {
    let method = Method::CoreGetJobs;
    let Some(job) = sim.wait_job_value(id, timeout).await else {
        return Err(CallError::NotFound {
            method,
            reason: format!("job {id} does not exist"),
        });
    };
    let terminal = job
        .get("state")
        .and_then(Value::as_str)
        .is_some_and(|s| matches!(s, "SUCCESS" | "FAILED" | "ABORTED"));
    if !terminal {
        return Err(CallError::Timeout {
            method,
            after: timeout,
        });
    }
    serde_json::from_value(job).map_err(|e| CallError::Protocol {
        method,
        detail: e.to_string(),
    })
}

fn job_outcome(method: Method, job: Option<Value>) -> Result<Value, CallError> {
    let Some(job) = job else {
        return Err(CallError::Protocol {
            method,
            detail: "job vanished".to_owned(),
        });
    };
    if job.get("state").and_then(Value::as_str) == Some("SUCCESS") {
        return Ok(job.get("result").cloned().unwrap_or(Value::Null));
    }
    let reason = job
        .get("error")
        .and_then(Value::as_str)
        .unwrap_or("job failed")
        .to_owned();
    Err(CallError::Failed {
        method,
        errno: Some(errno::EFAULT),
        errname: "EFAULT".to_owned(),
        reason,
    })
}

/// How the real client decodes each middleware error (see the module doc).
pub fn to_call_error(method: Method, e: &RpcError) -> CallError {
    match e {
        RpcError::Invalid(issues) => CallError::Validation {
            method,
            items: issues
                .iter()
                .map(|i| ValidationItem {
                    path: i.path.clone(),
                    message: i.message.clone(),
                    errno: i.errno,
                })
                .collect(),
        },
        RpcError::NotFound(message) => CallError::NotFound {
            method,
            reason: message.clone(),
        },
        RpcError::NotAuthenticated => CallError::NotAuthenticated { method },
        RpcError::NoMethod(_) => CallError::MethodNotFound { method },
        RpcError::Call {
            errno: code,
            message,
            ..
        } => match *code {
            errno::ENOENT => CallError::NotFound {
                method,
                reason: message.clone(),
            },
            errno::EACCES => CallError::NotAuthorized {
                method,
                reason: message.clone(),
            },
            errno::EBUSY => CallError::RateLimited { method },
            errno::ENOMETHOD => CallError::MethodNotFound { method },
            errno::ENOTAUTHENTICATED => CallError::NotAuthenticated { method },
            other => CallError::Failed {
                method,
                errno: Some(other),
                errname: errno::name(other).to_owned(),
                reason: wire::call_reason(other, message),
            },
        },
        // `get: true` with no match: the client reports it as "not found".
        RpcError::Other(reason) if reason == "MatchNotFound()" => CallError::NotFound {
            method,
            reason: reason.clone(),
        },
        RpcError::Other(reason) => CallError::Failed {
            method,
            errno: Some(errno::EINVAL),
            errname: "EINVAL".to_owned(),
            reason: reason.clone(),
        },
    }
}

#[cfg(test)]
#[allow(clippy::too_many_lines, clippy::needless_pass_by_value)]
mod tests {
    use super::*;
    use crate::{DropAt, DropWhen, JobTiming, Scenario};
    use serde_json::json;
    use truenas_agent::middleware::ApiFlavor;

    fn credential(flavor: ApiFlavor) -> Value {
        match flavor {
            ApiFlavor::V24_10 => {
                json!({"name": "truenas-loc", "provider": "B2", "attributes": {"account": "kid", "key": "CANARY-B2-APPKEY-7f3a9c"}})
            }
            _ => {
                json!({"name": "truenas-loc", "provider": {"type": "B2", "account": "kid", "key": "CANARY-B2-APPKEY-7f3a9c"}})
            }
        }
    }

    fn task(cred: &Value, pool: &str) -> Value {
        json!({
            "description": format!("{pool} Cloud Backup"), "path": format!("/mnt/{pool}"), "credentials": cred["id"],
            "attributes": {"bucket": "truenas-loc", "folder": format!("/guid/{pool}"), "chunk_size": 96, "fast_list": true},
            "schedule": {"minute": "0", "hour": "0", "dom": "*", "month": "*", "dow": "*"},
            "direction": "PUSH", "transfer_mode": "SYNC", "encryption": true,
            "encryption_password": "CANARY-ENC-PASSWORD-2b8e41", "encryption_salt": "CANARY-ENC-SALT-9d0c55",
            "exclude": ["/Archive/**", "/archive/**"],
        })
    }

    async fn call(mw: &InProcess, m: Method, params: Vec<Value>) -> Result<Value, CallError> {
        mw.call(Call::new(m, params)).await
    }

    #[tokio::test]
    async fn sop_flow_on_every_flavour() {
        for flavor in ApiFlavor::ALL {
            let mw = Simulator::new(Scenario::two_pools(flavor))
                .with_job_timing(JobTiming::Auto {
                    duration: Duration::from_millis(8),
                })
                .in_process();
            let cred = call(&mw, Method::CredentialsCreate, vec![credential(flavor)])
                .await
                .unwrap();
            assert_eq!(cred["id"], 1, "{flavor}");
            let t = call(&mw, Method::CloudsyncCreate, vec![task(&cred, "pool0")])
                .await
                .unwrap();
            assert_eq!(t["attributes"]["chunk_size"], 96);
            assert_eq!(t["job"], Value::Null);
            match flavor {
                ApiFlavor::V24_10 => assert_eq!(t["credentials"]["provider"], "B2"),
                _ => assert_eq!(t["credentials"]["provider"]["type"], "B2"),
            }
            let job = call(&mw, Method::CloudsyncSync, vec![t["id"].clone()])
                .await
                .unwrap();
            let done = mw
                .wait_job(job.as_u64().unwrap(), Duration::from_secs(10))
                .await
                .unwrap();
            assert_eq!(
                done.state,
                truenas_agent::middleware::JobState::Success,
                "{flavor}"
            );
            let q = call(
                &mw,
                Method::CloudsyncQuery,
                vec![json!([["id", "=", t["id"]]]), json!({"get": true})],
            )
            .await
            .unwrap();
            assert_eq!(q["job"]["state"], "SUCCESS");
        }
    }

    #[tokio::test]
    async fn failed_runs_raise_and_successful_runs_clear_the_alert() {
        let sim = Simulator::new(Scenario::two_pools(ApiFlavor::V25_04))
            .with_job_timing(JobTiming::Manual);
        let mw = sim.in_process();
        let cred = call(
            &mw,
            Method::CredentialsCreate,
            vec![credential(ApiFlavor::V25_04)],
        )
        .await
        .unwrap();
        let t = call(&mw, Method::CloudsyncCreate, vec![task(&cred, "pool0")])
            .await
            .unwrap();
        sim.fail_next_sync(
            "ERROR : file.bin: Failed to delete: file is retention-locked (403 access_denied)",
        );
        let job = call(&mw, Method::CloudsyncSync, vec![t["id"].clone()])
            .await
            .unwrap()
            .as_u64()
            .unwrap();
        // A second request while one is queued reuses the queued job.
        assert_eq!(
            call(&mw, Method::CloudsyncSync, vec![t["id"].clone()])
                .await
                .unwrap(),
            json!(job)
        );
        assert!(sim.run_job(job));
        let failed = sim.job(job).unwrap();
        assert_eq!(failed["state"], "FAILED");
        assert!(
            failed["error"]
                .as_str()
                .unwrap()
                .contains("retention-locked")
        );
        let alerts = call(&mw, Method::AlertList, vec![]).await.unwrap();
        assert_eq!(alerts[0]["klass"], "CloudSyncTaskFailed");
        let again = call(&mw, Method::CloudsyncSync, vec![t["id"].clone()])
            .await
            .unwrap()
            .as_u64()
            .unwrap();
        assert!(sim.run_job(again));
        assert_eq!(sim.job(again).unwrap()["state"], "SUCCESS");
        assert_eq!(
            call(&mw, Method::AlertList, vec![]).await.unwrap(),
            json!([])
        );
    }

    #[tokio::test]
    async fn rejected_calls_change_nothing_and_name_the_path() {
        let mw = InProcess::new(Scenario::two_pools(ApiFlavor::V25_10));
        let cred = call(
            &mw,
            Method::CredentialsCreate,
            vec![credential(ApiFlavor::V25_10)],
        )
        .await
        .unwrap();
        let mut bad = task(&cred, "pool0");
        bad["bwlimit"] =
            json!([{"time": "08:00", "bandwidth": 1}, {"time": "00:00", "bandwidth": 2}]);
        let err = call(&mw, Method::CloudsyncCreate, vec![bad])
            .await
            .unwrap_err();
        let CallError::Validation { items, .. } = &err else {
            panic!("{err:?}")
        };
        assert_eq!(items[0].path, "cloud_sync_create.bwlimit.1.time");
        assert!(!err.to_string().contains("CANARY"), "{err}");
        assert_eq!(
            call(&mw, Method::CloudsyncQuery, vec![]).await.unwrap(),
            json!([])
        );
        let missing = call(&mw, Method::CloudsyncUpdate, vec![json!(9), json!({})])
            .await
            .unwrap_err();
        assert!(matches!(missing, CallError::NotFound { .. }), "{missing:?}");
    }

    #[tokio::test]
    async fn update_replaces_nested_objects_whole() {
        let mw = InProcess::new(Scenario::two_pools(ApiFlavor::V25_04));
        let cred = call(
            &mw,
            Method::CredentialsCreate,
            vec![credential(ApiFlavor::V25_04)],
        )
        .await
        .unwrap();
        let t = call(&mw, Method::CloudsyncCreate, vec![task(&cred, "pool0")])
            .await
            .unwrap();
        let u = call(
            &mw,
            Method::CloudsyncUpdate,
            vec![
                t["id"].clone(),
                json!({"attributes": {"bucket": "b2", "folder": ""}, "schedule": {"hour": "3"}}),
            ],
        )
        .await
        .unwrap();
        assert_eq!(
            u["attributes"],
            json!({"bucket": "b2", "folder": "", "chunk_size": 96, "fast_list": false})
        );
        assert_eq!(
            u["schedule"],
            json!({"minute": "00", "hour": "3", "dom": "*", "month": "*", "dow": "*"})
        );
        assert_eq!(u["encryption_password"], "CANARY-ENC-PASSWORD-2b8e41");
    }

    #[tokio::test]
    async fn injected_drops_before_and_after() {
        let sim = Simulator::new(Scenario::two_pools(ApiFlavor::V25_04));
        let mw = sim.in_process();
        sim.update_faults(|f| {
            f.drop_at.push(DropAt {
                method: "cloudsync.credentials.create".into(),
                when: DropWhen::Before,
                times: Some(1),
            });
            f.drop_at.push(DropAt {
                method: "snmp.update".into(),
                when: DropWhen::After,
                times: Some(1),
            });
        });
        let err = call(
            &mw,
            Method::CredentialsCreate,
            vec![credential(ApiFlavor::V25_04)],
        )
        .await
        .unwrap_err();
        assert!(err.is_transport());
        assert!(sim.state().credentials.is_empty());
        let err = call(&mw, Method::SnmpUpdate, vec![json!({"location": "rack 4"})])
            .await
            .unwrap_err();
        assert!(err.is_transport());
        assert_eq!(sim.state().snmp.location, "rack 4");
        let outcomes: Vec<CallOutcome> = sim.calls().into_iter().map(|c| c.outcome).collect();
        assert_eq!(
            outcomes,
            vec![
                CallOutcome::Dropped { executed: false },
                CallOutcome::Dropped { executed: true }
            ]
        );
        assert!(!format!("{:?}", sim.calls()).contains("CANARY"));
    }

    use crate::CallOutcome;

    #[tokio::test(start_paused = true)]
    async fn delays_hold_the_reply_back_in_virtual_time() {
        let sim = Simulator::new(Scenario::two_pools(ApiFlavor::V25_04));
        sim.update_faults(|f| {
            f.delays.push(crate::Delay {
                method: Some("core.ping".into()),
                millis: 1500,
                times: Some(1),
            });
        });
        let start = tokio::time::Instant::now();
        sim.call(Call::bare(Method::CorePing)).await.unwrap();
        assert!(start.elapsed() >= Duration::from_millis(1500));
        let again = tokio::time::Instant::now();
        sim.call(Call::bare(Method::CorePing)).await.unwrap();
        assert!(again.elapsed() < Duration::from_millis(1500), "one-shot");
    }

    #[tokio::test]
    async fn the_simulator_itself_is_a_middleware() {
        let sim = Simulator::new(Scenario::two_pools(ApiFlavor::V24_10));
        assert_eq!(sim.api().protocol, Protocol::Legacy);
        let pools = sim.call(Call::bare(Method::PoolQuery)).await.unwrap();
        assert_eq!(pools.as_array().unwrap().len(), 2);
        assert_eq!(sim.calls()[0].conn, 0);
    }

    /// A box with pools pool0, pool1, pool2, a credential and one task per pool.
    async fn three_tasks(timing: JobTiming) -> (Simulator, InProcess, Vec<Value>) {
        let mut s = Scenario::two_pools(ApiFlavor::V25_04);
        s.pools.push(crate::scenario::Pool {
            id: 4,
            name: "pool2".into(),
            guid: "5166234587311022401".into(),
            status: "ONLINE".into(),
            healthy: true,
            boot: false,
        });
        s.normalize();
        let sim = Simulator::new(s).with_job_timing(timing);
        let mw = sim.in_process();
        let cred = call(
            &mw,
            Method::CredentialsCreate,
            vec![credential(ApiFlavor::V25_04)],
        )
        .await
        .unwrap();
        let mut ids = Vec::new();
        for pool in ["pool0", "pool1", "pool2"] {
            let t = call(&mw, Method::CloudsyncCreate, vec![task(&cred, pool)])
                .await
                .unwrap();
            ids.push(t["id"].clone());
        }
        (sim, mw, ids)
    }

    async fn sync(mw: &InProcess, params: Vec<Value>) -> u64 {
        call(mw, Method::CloudsyncSync, params)
            .await
            .unwrap()
            .as_u64()
            .unwrap()
    }

    #[tokio::test]
    async fn an_options_object_puts_every_task_under_one_job_lock() {
        // `cloud_sync:{args[-1]}` over the raw params: `{'dry_run': False}` for all three.
        let (sim, mw, ids) = three_tasks(JobTiming::Manual).await;
        let opts = json!({"dry_run": false});
        let first = sync(&mw, vec![ids[0].clone(), opts.clone()]).await;
        assert!(sim.start_job(first));
        let second = sync(&mw, vec![ids[1].clone(), opts.clone()]).await;
        assert_ne!(first, second, "one job may wait under the running one");
        assert!(!sim.start_job(second), "its lock is held by the first");
        // The queue of that lock is full: the third caller gets the second task's job.
        let third = sync(&mw, vec![ids[2].clone(), opts.clone()]).await;
        assert_eq!(third, second);
        assert_eq!(sim.job(third).unwrap()["arguments"], json!([ids[1], opts]));
        assert_eq!(sim.jobs().len(), 2, "no run of the third task exists");
        sim.finish_job(first);
        assert!(sim.start_job(second), "the waiting job goes next");
    }

    #[tokio::test]
    async fn the_task_id_alone_locks_per_task() {
        let (sim, mw, ids) = three_tasks(JobTiming::Manual).await;
        let jobs: Vec<u64> = {
            let mut out = Vec::new();
            for id in &ids {
                out.push(sync(&mw, vec![id.clone()]).await);
            }
            out
        };
        for (job, id) in jobs.iter().zip(&ids) {
            assert!(sim.start_job(*job), "cloud_sync:{id} is its own lock");
            assert_eq!(sim.job(*job).unwrap()["arguments"], json!([id]));
        }
        // Same task again: one more may wait; the next caller gets that one back.
        let waiting = sync(&mw, vec![ids[0].clone()]).await;
        assert!(!jobs.contains(&waiting));
        assert!(!sim.start_job(waiting));
        assert_eq!(sync(&mw, vec![ids[0].clone()]).await, waiting);
        // A different lock is a different queue, even for the same task (as on the box).
        let other = sync(&mw, vec![ids[0].clone(), json!({"dry_run": false})]).await;
        assert!(sim.start_job(other));
    }

    #[tokio::test]
    async fn with_automatic_timing_a_job_runs_as_soon_as_its_lock_is_free() {
        let (sim, mw, ids) = three_tasks(JobTiming::Auto {
            duration: Duration::from_secs(3600),
        })
        .await;
        let opts = json!({"dry_run": false});
        let first = sync(&mw, vec![ids[0].clone(), opts.clone()]).await;
        assert_eq!(sim.job(first).unwrap()["state"], "RUNNING");
        let second = sync(&mw, vec![ids[1].clone(), opts.clone()]).await;
        assert_eq!(sim.job(second).unwrap()["state"], "WAITING");
        assert_eq!(sync(&mw, vec![ids[2].clone(), opts]).await, second);
        let own = sync(&mw, vec![ids[2].clone()]).await;
        assert_eq!(sim.job(own).unwrap()["state"], "RUNNING");
    }

    #[test]
    fn lock_names_are_pythons_str_of_the_last_param() {
        use crate::methods::cloudsync::lock_name;
        assert_eq!(lock_name(&[json!(5)]).as_deref(), Some("cloud_sync:5"));
        assert_eq!(
            lock_name(&[json!(5), json!({"dry_run": false})]).as_deref(),
            Some("cloud_sync:{'dry_run': False}")
        );
        assert_eq!(
            lock_name(&[json!(5), json!({"dry_run": true})]).as_deref(),
            Some("cloud_sync:{'dry_run': True}")
        );
        assert_eq!(
            lock_name(&[json!(5), json!({})]).as_deref(),
            Some("cloud_sync:{}")
        );
        assert_eq!(lock_name(&[json!("7")]).as_deref(), Some("cloud_sync:7"));
        assert_eq!(
            lock_name(&[json!([1.0, null, "it's"])]).as_deref(),
            Some("cloud_sync:[1.0, None, \"it's\"]")
        );
        assert_eq!(lock_name(&[]), None);
    }

    #[tokio::test]
    async fn a_dry_run_sets_the_tasks_job_field() {
        // `task_state.py` shows every cloudsync.sync job of the task, dry runs included,
        // and saves it into the task row when it ends.
        let (sim, mw, ids) = three_tasks(JobTiming::Manual).await;
        let job = sync(&mw, vec![ids[0].clone(), json!({"dry_run": true})]).await;
        assert!(sim.run_job(job));
        let q = call(
            &mw,
            Method::CloudsyncQuery,
            vec![json!([["id", "=", ids[0]]]), json!({"get": true})],
        )
        .await
        .unwrap();
        assert_eq!(q["job"]["arguments"], json!([ids[0], {"dry_run": true}]));
        assert_eq!(q["job"]["state"], "SUCCESS");
        let persisted = &sim.state().cloud_sync_tasks[0].last_run;
        assert_eq!(
            persisted.as_ref().unwrap()["arguments"],
            json!([ids[0], {"dry_run": true}])
        );
    }

    #[tokio::test]
    async fn credentials_24_10_answer_the_data_sent_the_query_shows_the_row() {
        for flavor in ApiFlavor::ALL {
            let sim = Simulator::new(Scenario::two_pools(flavor));
            let mw = sim.in_process();
            let key = |v: &Value| {
                if flavor == ApiFlavor::V24_10 {
                    v["attributes"]["key"].clone()
                } else {
                    v["provider"]["key"].clone()
                }
            };
            // An update answers the keys sent plus id on 24.10, the merged entry after.
            call(&mw, Method::CredentialsCreate, vec![credential(flavor)])
                .await
                .unwrap();
            let updated = call(
                &mw,
                Method::CredentialsUpdate,
                vec![json!(1), json!({"name": "renamed"})],
            )
            .await
            .unwrap();
            if flavor == ApiFlavor::V24_10 {
                assert_eq!(updated, json!({"name": "renamed", "id": 1}));
            } else {
                assert_eq!(updated["name"], "renamed");
                assert_eq!(key(&updated), json!("CANARY-B2-APPKEY-7f3a9c"), "{flavor}");
            }
            // A box that does not keep the key: every version still answers with it.
            sim.update_faults(|f| f.credential_store_drops.push("key".into()));
            let mut sent = credential(flavor);
            sent["name"] = json!("truenas-two");
            let answer = call(&mw, Method::CredentialsCreate, vec![sent.clone()])
                .await
                .unwrap();
            assert_eq!(key(&answer), json!("CANARY-B2-APPKEY-7f3a9c"), "{flavor}");
            if flavor == ApiFlavor::V24_10 {
                let mut echo = sent.clone();
                echo["id"] = json!(2);
                assert_eq!(answer, echo, "24.10: the data sent plus id");
            }
            let stored = call(&mw, Method::CredentialsQuery, vec![json!([["id", "=", 2]])])
                .await
                .unwrap();
            assert_eq!(key(&stored[0]), Value::Null, "{flavor}: the row has no key");
        }
    }
}
