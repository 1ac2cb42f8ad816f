//! The loop's service contract with a scripted engine, a fake middleware and central
//! down (a loopback port nobody listens on): READY / WATCHDOG / STATUS / STOPPING,
//! the watchdog petted during a long step, retries by fault, shutdown in the middle of
//! a step. Documents and reports end to end are in `tests/it/daemon_loop.rs` and
//! `tests/it/e2e_*.rs`.

use std::cell::{Cell, RefCell};
use std::collections::BTreeSet;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};

use serde_json::{Value, json};

use super::*;
use crate::central::report::{CheckStatus, ChecklistItem};
use crate::middleware::{ApiFlavor, ApiInfo, Call, Job, JobId, Protocol, TransportKind};

#[derive(Default)]
struct Recorder(Mutex<Vec<String>>);

impl Recorder {
    fn log(&self) -> Vec<String> {
        self.0.lock().unwrap().clone()
    }
}

impl Notifier for Recorder {
    fn ready(&self, status: &str) {
        self.0.lock().unwrap().push(format!("READY {status}"));
    }
    fn watchdog(&self) {
        self.0.lock().unwrap().push("WATCHDOG".into());
    }
    fn status(&self, status: &str) {
        self.0.lock().unwrap().push(format!("STATUS {status}"));
    }
    fn stopping(&self) {
        self.0.lock().unwrap().push("STOPPING".into());
    }
}

/// Answers `core.ping` with "pong", failing calls number `fail`.
struct Pinged {
    calls: AtomicU32,
    fail: std::ops::Range<u32>,
}

impl Pinged {
    fn up() -> Self {
        Self {
            calls: AtomicU32::new(0),
            fail: 0..0,
        }
    }
}

impl Middleware for Pinged {
    fn api(&self) -> ApiInfo {
        ApiInfo {
            flavor: ApiFlavor::V25_10,
            version: "25.10.7".into(),
            protocol: Protocol::JsonRpc,
            transport: TransportKind::UnixSocket,
            api_version: Some("v25.10.5".into()),
            newer_than_known: false,
        }
    }
    async fn call(&self, call: Call) -> Result<Value, CallError> {
        assert_eq!(call.method, Method::CorePing, "the loop itself only pings");
        let n = self.calls.fetch_add(1, Ordering::SeqCst);
        if self.fail.contains(&n) {
            Err(CallError::Disconnected {
                method: Method::CorePing,
                detail: "socket closed".into(),
            })
        } else {
            Ok(json!("pong"))
        }
    }
    async fn wait_job(&self, _: JobId, _: Duration) -> Result<Job, CallError> {
        unreachable!()
    }
}

/// An engine whose identity read takes `identity_takes` and fails while `fail_identity`.
#[derive(Default)]
struct Scripted {
    identity_takes: Duration,
    identity_calls: Cell<u32>,
    assess_calls: Cell<u32>,
    fail_identity: Cell<bool>,
    writes: RefCell<Vec<bool>>,
}

impl Engine for Scripted {
    type Desired = u64;
    fn validate(&self, _: &[u8]) -> Result<u64, Vec<ConfigIssue>> {
        Ok(1)
    }
    fn revision(&self, d: &u64) -> u64 {
        *d
    }
    fn mode(&self, _: &u64) -> Mode {
        Mode::Enforce
    }
    fn secrets<'d>(&self, _: &'d u64) -> Vec<&'d SecretString> {
        Vec::new()
    }
    async fn identity(&self, _: Option<&u64>, write: bool) -> Result<IdentityPass, EngineError> {
        self.identity_calls.set(self.identity_calls.get() + 1);
        self.writes.borrow_mut().push(write);
        tokio::time::sleep(self.identity_takes).await;
        if self.fail_identity.get() {
            return Err(EngineError::new(
                "read the device identity",
                Fault::Transient,
                "zfs get timed out",
            ));
        }
        Ok(IdentityPass {
            guid: Some("9babab19-acc0-4587-aa05-ccd8103a1148".into()),
            usable: true,
            ..IdentityPass::default()
        })
    }
    async fn converge(&self, d: &u64) -> Result<Pass, EngineError> {
        Ok(Pass {
            revision: *d,
            mode: Mode::Enforce,
            steps: Vec::new(),
            blocked: Vec::new(),
            converged: true,
            aborted: None,
            text: String::new(),
            executed_actions: Vec::new(),
        })
    }
    async fn assess(&self, _: Option<&u64>) -> Result<Assessed, EngineError> {
        self.assess_calls.set(self.assess_calls.get() + 1);
        Ok(Assessed {
            checklist: vec![ChecklistItem {
                id: "x".into(),
                title: "x".into(),
                status: CheckStatus::Pass,
                detail: String::new(),
            }],
            ..Assessed::default()
        })
    }
    fn watched_tasks(&self) -> BTreeSet<u64> {
        BTreeSet::new()
    }
    fn event_names(&self) -> &'static [&'static str] {
        &[]
    }
    fn on_event(&self, _: &crate::middleware::Event) -> Touched {
        Touched::NONE
    }
    fn resync(&self) {}
    async fn poll(&self) -> Result<Touched, EngineError> {
        Ok(Touched::NONE)
    }
}

/// A central session to a loopback port nobody listens on (central is down).
struct DeadCentral {
    _dir: tempfile::TempDir,
    state: StateDir,
    config: crate::config::AgentConfig,
}

impl DeadCentral {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let token = dir.path().join("token");
        crate::fs::write_atomic(&token, b"tok-123456\n", 0o600).unwrap();
        let text = format!(
            "state_dir = \"{}\"\n[central]\nurl = \"http://127.0.0.1:{port}/\"\ntoken_file = \"{}\"\nallow_unsigned = true\nlong_poll_wait_secs = 0\n",
            dir.path().join("state").display(),
            token.display()
        );
        let config = crate::config::AgentConfig::parse(&text, "test").unwrap();
        let state = StateDir::open(&config.state_dir).unwrap();
        Self {
            _dir: dir,
            state,
            config,
        }
    }

    fn session(&self) -> Session {
        crate::central::open(self.config.central().unwrap(), self.state.clone()).unwrap()
    }

    fn options(&self, tick: u64) -> DaemonOptions {
        DaemonOptions {
            tick: Duration::from_secs(tick),
            ping_every: 2,
            ..DaemonOptions::new(None, self.config.central().unwrap())
        }
    }
}

fn services<'a, E: Engine>(
    engine: &'a E,
    mw: &'a Pinged,
    rec: &'a Recorder,
    state: &'a StateDir,
) -> Services<'a, E, Pinged, NoEvents, Recorder> {
    Services {
        engine,
        middleware: mw,
        events: &NoEvents,
        notifier: rec,
        state,
    }
}

async fn stop_after(token: CancellationToken, after: Duration) {
    tokio::time::sleep(after).await;
    token.cancel();
}

#[tokio::test(start_paused = true)]
async fn ready_then_watchdog_then_clean_stop() {
    let central = DeadCentral::new();
    let mw = Pinged {
        calls: AtomicU32::new(0),
        // The start-up ping is call 0; pings on every 2nd tick: the 2nd one fails.
        fail: 2..3,
    };
    let rec = Recorder::default();
    let engine = Scripted::default();
    let shutdown = CancellationToken::new();
    let (result, ()) = tokio::join!(
        run(
            services(&engine, &mw, &rec, &central.state),
            central.session(),
            central.options(10),
            &shutdown
        ),
        stop_after(shutdown.clone(), Duration::from_secs(75))
    );
    result.unwrap();
    let log = rec.log();
    assert_eq!(log[0], "READY connected to TrueNAS 25.10.7 (UnixSocket)");
    assert_eq!(log.last().unwrap(), "STOPPING");
    // Ticks at 0, 10, …, 70 s: 8 heartbeats, all from the loop.
    assert_eq!(
        log.iter().filter(|l| *l == "WATCHDOG").count(),
        8,
        "{log:?}"
    );
    let statuses: Vec<_> = log.iter().filter(|l| l.starts_with("STATUS")).collect();
    assert!(
        statuses
            .iter()
            .any(|s| s.contains("middleware not answering: ")),
        "{statuses:?}"
    );
    let last = statuses.last().unwrap();
    assert!(
        !last.contains("middleware not answering"),
        "recovered: {last}"
    );
    assert!(last.contains("central unreachable"), "{last}");
    assert!(last.contains("no document from central yet"), "{last}");
    // Nothing written before central said `enforce`; central down: the start report
    // waits in the spool, and daemon.json says so.
    assert_eq!(*engine.writes.borrow(), [false]);
    let record = DaemonRecord::load(&central.state).unwrap().unwrap();
    assert_eq!(record.last_report.unwrap().reason, ReportReason::Start);
    assert!(
        record.status.contains("1 report(s) waiting"),
        "{}",
        record.status
    );
}

#[tokio::test(start_paused = true)]
async fn no_ready_without_the_middleware() {
    let central = DeadCentral::new();
    let mw = Pinged {
        calls: AtomicU32::new(0),
        fail: 0..1,
    };
    let rec = Recorder::default();
    let engine = Scripted::default();
    let err = run(
        services(&engine, &mw, &rec, &central.state),
        central.session(),
        central.options(30),
        &CancellationToken::new(),
    )
    .await
    .unwrap_err();
    assert_eq!(err.fault(), Fault::Transient);
    assert!(rec.log().is_empty(), "READY must not be sent");
    assert_eq!(engine.identity_calls.get(), 0);
}

#[tokio::test(start_paused = true)]
async fn the_watchdog_is_petted_while_a_step_runs() {
    let central = DeadCentral::new();
    let mw = Pinged::up();
    let rec = Recorder::default();
    // The start-up identity read takes 100 s, ten ticks.
    let engine = Scripted {
        identity_takes: Duration::from_secs(100),
        ..Scripted::default()
    };
    let shutdown = CancellationToken::new();
    let (result, ()) = tokio::join!(
        run(
            services(&engine, &mw, &rec, &central.state),
            central.session(),
            central.options(10),
            &shutdown
        ),
        stop_after(shutdown.clone(), Duration::from_secs(105))
    );
    result.unwrap();
    let log = rec.log();
    let heartbeats_before_report = log
        .iter()
        .take_while(|l| !l.contains("report(s) waiting"))
        .filter(|l| *l == "WATCHDOG")
        .count();
    assert!(heartbeats_before_report >= 10, "{log:?}");
    assert_eq!(engine.assess_calls.get(), 1, "the start report followed");
}

#[tokio::test(start_paused = true)]
async fn shutdown_abandons_a_step_after_the_grace_period() {
    let central = DeadCentral::new();
    let mw = Pinged::up();
    let rec = Recorder::default();
    let engine = Scripted {
        identity_takes: Duration::from_secs(3600),
        ..Scripted::default()
    };
    let shutdown = CancellationToken::new();
    let started = Instant::now();
    let (result, ()) = tokio::join!(
        run(
            services(&engine, &mw, &rec, &central.state),
            central.session(),
            central.options(10),
            &shutdown
        ),
        stop_after(shutdown.clone(), Duration::from_secs(5))
    );
    result.unwrap();
    let took = started.elapsed();
    let grace = central.options(10).stop_grace;
    assert!(took >= Duration::from_secs(5) + grace, "{took:?}");
    assert!(
        took < Duration::from_secs(5) + grace + Duration::from_secs(1),
        "{took:?}"
    );
    let log = rec.log();
    assert!(log.contains(&"STATUS stopping: finishing the current step".to_owned()));
    assert_eq!(log.last().unwrap(), "STOPPING");
    assert_eq!(
        engine.assess_calls.get(),
        0,
        "nothing after the abandoned step"
    );
}

#[tokio::test(start_paused = true)]
async fn a_failing_start_is_remembered_and_reported() {
    let central = DeadCentral::new();
    let mw = Pinged::up();
    let rec = Recorder::default();
    let engine = Scripted::default();
    engine.fail_identity.set(true);
    let shutdown = CancellationToken::new();
    let (result, ()) = tokio::join!(
        run(
            services(&engine, &mw, &rec, &central.state),
            central.session(),
            central.options(10),
            &shutdown
        ),
        stop_after(shutdown.clone(), Duration::from_secs(1))
    );
    result.unwrap();
    let record = DaemonRecord::load(&central.state).unwrap().unwrap();
    let error = record.last_error.unwrap();
    assert_eq!(error.fault, Fault::Transient);
    assert!(
        error.message.contains("zfs get timed out"),
        "{}",
        error.message
    );
    assert_eq!(engine.assess_calls.get(), 1, "still assessed and reported");
}

#[test]
fn options_follow_the_watchdog_and_the_config() {
    let central = DeadCentral::new();
    let c = central.config.central().unwrap();
    let o = DaemonOptions::new(Some(Duration::from_secs(90)), c);
    assert_eq!((o.tick, o.ping_every), (Duration::from_secs(30), 2));
    let o = DaemonOptions::new(Some(Duration::from_secs(10)), c);
    assert_eq!((o.tick, o.ping_every), (Duration::from_secs(5), 12));
    let o = DaemonOptions::new(None, c);
    assert_eq!(o.tick, Duration::from_secs(30));
    assert_eq!(o.report_interval, c.report_interval);
    assert!(
        o.stop_grace + o.flush_timeout < Duration::from_secs(30),
        "TimeoutStopSec=30s"
    );
}
