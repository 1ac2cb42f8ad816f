//! Fixtures for the dashboard, metrics and webhook tests: central's real service — what
//! `truenas-central serve` runs: the agents' protocol, the dashboard, `/metrics`, the
//! fleet evaluator and the webhook worker on one listener — over a database (SQLite or a
//! real PostgreSQL, `central_db::Env`) with a scripted clock ([`Dash::start`]), or the
//! dashboard's router alone with nothing running beside it, for tests that drive the
//! evaluator and the worker by hand ([`Dash::start_bare`]); an operator, devices and their
//! reports (over the protocol, or written straight to the database), a fleet of devices
//! in known states, and a webhook receiver that records what it gets.

#![allow(dead_code, reason = "shared by several test modules")]

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use chrono::{DateTime, Duration, DurationRound as _, Utc};
use serde_json::Value;
use tokio_util::sync::CancellationToken;
use truenas_agent::central::report::{
    CheckStatus, ChecklistItem, CloudSyncHealth, ConfigIssue, ConfigState, Report,
};
use truenas_central::clock::ManualClock;
use truenas_central::config::CentralConfig;
use truenas_central::db::{Db, Placement};
use truenas_central::monitor::{Counters, Monitor};
use truenas_central::store::token_hash;
use truenas_central::{ServerOptions, Service};

use crate::central_db::Env;
use crate::central_fixture::document;

/// The operator token the fixture creates (a canary: it must appear nowhere we render).
pub const OPERATOR_TOKEN: &str = "CANARY-OPERATOR-TOKEN-d41c07";
pub const ORG_A: &str = "0b3c8a51-8d1f-4b7e-9c2a-1f2e3d4c5b6a";
pub const ORG_B: &str = "7e1f2a3b-4c5d-4e6f-8a9b-0c1d2e3f4a5b";
pub const LOC_NORTH: &str = "a1b2c3d4-e5f6-7071-8293-a4b5c6d7e8f9";
pub const LOC_SOUTH: &str = "b2c3d4e5-f6a7-4081-9293-b4c5d6e7f8a9";

/// Central (or only its dashboard) served on 127.0.0.1:0 over a test database.
pub struct Dash {
    pub env: Env,
    pub monitor: Arc<Monitor>,
    pub clock: Arc<ManualClock>,
    pub addr: SocketAddr,
    shutdown: CancellationToken,
}

/// Now, to the second (the fixture's clock starts here).
pub fn start_time() -> DateTime<Utc> {
    Utc::now().duration_trunc(Duration::seconds(1)).unwrap()
}

impl Dash {
    /// Runs central's service as `truenas-central serve` does (`Service::serve`: the
    /// agents' protocol, the dashboard, `/metrics`, retention, the evaluator and the
    /// webhook worker) over `env` with `config`; the clock stands at `now`.
    pub async fn start(env: Env, config: CentralConfig, now: DateTime<Utc>) -> Self {
        let clock = Arc::new(ManualClock::new(now));
        let options = ServerOptions {
            config: Arc::new(config),
            clock: clock.clone(),
            ..ServerOptions::new(crate::central_fixture::signing_key(7))
        };
        let service = Service::new(env.db.clone(), options).unwrap();
        let monitor = service.monitor().clone();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let shutdown = CancellationToken::new();
        tokio::spawn({
            let shutdown = shutdown.clone();
            async move { service.serve(listener, shutdown).await.unwrap() }
        });
        Self::with_operator(env, monitor, clock, addr, shutdown).await
    }

    /// Serves only the dashboard's router over `env` with `config` (no evaluator, no
    /// webhook worker running: the test drives them); the clock stands at `now`.
    pub async fn start_bare(env: Env, config: CentralConfig, now: DateTime<Utc>) -> Self {
        let clock = Arc::new(ManualClock::new(now));
        let monitor = Arc::new(Monitor::new(
            env.db.clone(),
            Arc::new(config),
            clock.clone(),
            Arc::new(Counters::default()),
        ));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let shutdown = CancellationToken::new();
        let app = truenas_central::web::router(monitor.clone());
        tokio::spawn({
            let shutdown = shutdown.clone();
            async move {
                axum::serve(listener, app)
                    .with_graceful_shutdown(async move { shutdown.cancelled().await })
                    .await
                    .unwrap();
            }
        });
        Self::with_operator(env, monitor, clock, addr, shutdown).await
    }

    async fn with_operator(
        env: Env,
        monitor: Arc<Monitor>,
        clock: Arc<ManualClock>,
        addr: SocketAddr,
        shutdown: CancellationToken,
    ) -> Self {
        env.db
            .add_operator("ops@example.com", &token_hash(OPERATOR_TOKEN))
            .await
            .unwrap();
        Self {
            env,
            monitor,
            clock,
            addr,
            shutdown,
        }
    }

    pub fn db(&self) -> &Db {
        &self.env.db
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub fn now(&self) -> DateTime<Utc> {
        use truenas_central::clock::Clock as _;
        self.clock.now()
    }

    /// GET with the operator's bearer token; (status, body).
    pub async fn get(&self, path: &str) -> (StatusCode, String) {
        let r = client()
            .get(self.url(path))
            .bearer_auth(OPERATOR_TOKEN)
            .send()
            .await
            .unwrap();
        let status = StatusCode::from_u16(r.status().as_u16()).unwrap();
        (status, r.text().await.unwrap())
    }

    /// The `/metrics` text.
    pub async fn metrics(&self) -> String {
        let (status, body) = self.get("/metrics").await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body
    }

    /// The value of the first `/metrics` line starting with `line_start`.
    pub async fn metric(&self, line_start: &str) -> String {
        let m = self.metrics().await;
        m.lines()
            .find(|l| l.starts_with(line_start))
            .unwrap_or_else(|| panic!("no `{line_start}` in\n{m}"))
            .rsplit(' ')
            .next()
            .unwrap()
            .to_owned()
    }

    /// Sends `report` for `device` as its agent does: `POST /v1/reports` with the device's
    /// token (`token-<device>`, see [`add_device`]); central records it as received now by
    /// its clock. Panics unless central accepted it (202).
    pub async fn post_report(&self, device: &str, report: &Report) {
        let r = client()
            .post(self.url("/v1/reports"))
            .bearer_auth(format!("token-{device}"))
            .header("content-type", "application/json")
            .body(serde_json::to_vec(report).unwrap())
            .send()
            .await
            .unwrap();
        let status = r.status();
        assert_eq!(status, 202, "{device}: {}", r.text().await.unwrap());
    }

    /// As [`Dash::post_report`], with the device's own GUID and host name in the report.
    pub async fn post_report_as(&self, device: &str, report: &Report) {
        self.post_report(device, &as_device(device, report)).await;
    }

    /// Waits (bounded) until the running evaluator has completed an evaluation that began
    /// after this call, and the webhook outbox is empty (everything queued was delivered).
    pub async fn settle(&self) {
        let count = "truenas_central_evaluations_total ";
        let start: u64 = self.metric(count).await.parse().unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        // Evaluation start+1 began after this call; start+2 begins after it ended.
        loop {
            let now: u64 = self.metric(count).await.parse().unwrap();
            let pending: u64 = self
                .metric("truenas_central_webhooks_pending ")
                .await
                .parse()
                .unwrap();
            if now >= start + 2 && pending == 0 {
                return;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the evaluator did not run (evaluations {start} → {now}, {pending} webhooks pending)"
            );
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }
}

impl Drop for Dash {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// An HTTP client that follows no redirect and uses no proxy.
pub fn client() -> reqwest::Client {
    truenas_agent::middleware::tls::install_crypto_provider();
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .timeout(std::time::Duration::from_secs(30))
        .build()
        .unwrap()
}

/// Registers `name` (token `token-<name>`) at `location` of `org`, and publishes the
/// canary document (revision 1) for it.
pub async fn add_device(db: &Db, name: &str, org: &str, location: (&str, &str)) {
    db.register(name, &token_hash(&format!("token-{name}")))
        .await
        .unwrap();
    db.set_placement(
        name,
        &Placement {
            org_uuid: Some(org.to_owned()),
            location_uuid: Some(location.0.to_owned()),
            location_name: Some(location.1.to_owned()),
        },
    )
    .await
    .unwrap();
    db.publish_validated(name, &serde_json::to_vec(&document(1)).unwrap(), false)
        .await
        .unwrap();
}

/// A report created at `at`: document revision 1 applied, one pool `pool0` in `state`,
/// last success `last_success`, every checklist item passing but `failing`.
pub fn report(
    at: DateTime<Utc>,
    state: &str,
    last_success: Option<DateTime<Utc>>,
    failing: &[&str],
) -> Report {
    let mut r = Report::new(at);
    r.agent.config_source = truenas_agent::central::report::ConfigSource::Central;
    r.device.hostname = Some("truenas".into());
    r.device.guid = None;
    r.device.truenas_version = Some("25.04.2.6".into());
    r.device.api = Some("25.04".into());
    r.device.root_pool = Some("pool0".into());
    r.device.pools = vec![truenas_agent::central::report::PoolState {
        name: "pool0".into(),
        healthy: true,
    }];
    r.health.snapshots = vec![truenas_agent::central::report::SnapshotHealth {
        pool: "pool0".into(),
        task_id: Some(2),
        latest: Some("pool0@auto-latest".into()),
        latest_age_s: Some(1200),
        count: 336,
    }];
    r.config.revision = Some(1);
    r.config.state = ConfigState::Applied;
    r.health.cloud_sync = vec![CloudSyncHealth {
        pool: "pool0".into(),
        task_id: Some(1),
        state: state.into(),
        last_success,
        last_finished: last_success,
        error_class: (state == "FAILED").then(|| "auth".to_owned()),
        message: (state == "FAILED").then(|| "rclone: 401 unauthorized".to_owned()),
        ..CloudSyncHealth::default()
    }];
    r.checklist = ["cloud_sync.schedule", "snmp.v3_only", "guid.zfs_property"]
        .iter()
        .map(|id| ChecklistItem {
            id: (*id).to_owned(),
            title: format!("SOP item {id}"),
            status: if failing.contains(id) {
                CheckStatus::Fail
            } else {
                CheckStatus::Pass
            },
            detail: String::new(),
        })
        .collect();
    r
}

/// Stores `report` for `device` as received at `at`.
pub async fn deliver(db: &Db, device: &str, report: &Report, at: DateTime<Utc>) {
    db.accept_report(device, report, at).await.unwrap();
}

/// `report` with `device`'s own GUID and host name in it.
pub fn as_device(device: &str, report: &Report) -> Report {
    let mut r = report.clone();
    let n = device
        .bytes()
        .fold(0u64, |a, b| (a * 31 + u64::from(b)) % 1_000_000_000_000);
    r.device.guid = Some(format!("9babab19-acc0-4587-aa05-{n:012}"));
    r.device.hostname = Some(device.replace("nas-", "truenas-"));
    r
}

/// As [`deliver`], with the device's own GUID and host name in the report.
pub async fn deliver_as(db: &Db, device: &str, report: &Report, at: DateTime<Utc>) {
    deliver(db, device, &as_device(device, report), at).await;
}

/// The fleet the dashboard tests and screenshots use, in the order the fleet page must
/// show it (worst first).
pub const FLEET_ORDER: [&str; 7] = [
    "nas-failing",
    "nas-overdue",
    "nas-silent",
    "nas-refused",
    "nas-checklist",
    "nas-new",
    "nas-healthy",
];

/// Registers and reports the fleet of [`FLEET_ORDER`] as of `now`: a failing backup, a
/// backup four days old (overdue by central's clock: the agent does not say so), a device
/// silent for three hours, one refusing its document, one with a failing checklist item,
/// one that never reported, and a healthy one. Reports are written to the database.
pub async fn populate_fleet(db: &Db, now: DateTime<Utc>) {
    register_fleet(db).await;
    for (device, report, at) in fleet_reports(now) {
        deliver_as(db, device, &report, at).await;
    }
    add_device(db, "nas-new", ORG_A, (LOC_NORTH, "Clinic North")).await;
}

/// As [`populate_fleet`], with every report sent by its device over the protocol
/// (`POST /v1/reports` with the device's token) to a running central, whose clock is set
/// to each report's arrival time and back to where it stood.
pub async fn populate_fleet_live(d: &Dash) {
    let now = d.now();
    register_fleet(d.db()).await;
    for (device, report, at) in fleet_reports(now) {
        d.clock.set(at);
        d.post_report_as(device, &report).await;
    }
    d.clock.set(now);
    add_device(d.db(), "nas-new", ORG_A, (LOC_NORTH, "Clinic North")).await;
}

async fn register_fleet(db: &Db) {
    let north = (LOC_NORTH, "Clinic North");
    let south = (LOC_SOUTH, "Clinic South");
    for (name, org, loc) in [
        ("nas-healthy", ORG_A, north),
        ("nas-overdue", ORG_A, north),
        ("nas-failing", ORG_A, south),
        ("nas-silent", ORG_B, south),
        ("nas-refused", ORG_B, north),
        ("nas-checklist", ORG_B, south),
    ] {
        add_device(db, name, org, loc).await;
    }
}

/// The fleet's reports as of `now`: (device, report, arrival time), oldest first.
fn fleet_reports(now: DateTime<Utc>) -> Vec<(&'static str, Report, DateTime<Utc>)> {
    let fresh = now - Duration::minutes(2);
    let good = Some(now - Duration::hours(3));
    let old = Some(now - Duration::days(4));
    let long_ago = now - Duration::hours(3);
    let silent = report(
        long_ago,
        "SUCCESS",
        Some(long_ago - Duration::hours(1)),
        &[],
    );
    let mut refused = report(fresh, "SUCCESS", good, &[]);
    refused.config.state = ConfigState::Refused;
    refused.config.errors = vec![ConfigIssue {
        path: "(signature)".into(),
        message: "no signature verifies under a trusted key".into(),
    }];
    vec![
        ("nas-silent", silent, long_ago),
        ("nas-healthy", report(fresh, "SUCCESS", good, &[]), fresh),
        ("nas-overdue", report(fresh, "SUCCESS", old, &[]), fresh),
        ("nas-failing", report(fresh, "FAILED", good, &[]), fresh),
        ("nas-refused", refused, fresh),
        (
            "nas-checklist",
            report(fresh, "SUCCESS", good, &["snmp.v3_only"]),
            fresh,
        ),
    ]
}

/// What a webhook receiver got: (headers, body bytes).
pub type Received = Arc<Mutex<Vec<(HeaderMap, Bytes)>>>;

/// A webhook receiver on 127.0.0.1:0 answering `status` (changeable through the returned
/// handle) and recording every request.
pub struct Receiver {
    pub addr: SocketAddr,
    pub got: Received,
    pub status: Arc<Mutex<StatusCode>>,
    shutdown: CancellationToken,
}

impl Receiver {
    pub async fn start() -> Self {
        let got: Received = Arc::default();
        let status = Arc::new(Mutex::new(StatusCode::OK));
        let app = axum::Router::new()
            .route(
                "/hook",
                axum::routing::post(
                    |State((got, status)): State<(Received, Arc<Mutex<StatusCode>>)>,
                     headers: HeaderMap,
                     body: Bytes| async move {
                        got.lock().unwrap().push((headers, body));
                        *status.lock().unwrap()
                    },
                ),
            )
            .with_state((got.clone(), status.clone()));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let shutdown = CancellationToken::new();
        tokio::spawn({
            let shutdown = shutdown.clone();
            async move {
                axum::serve(listener, app)
                    .with_graceful_shutdown(async move { shutdown.cancelled().await })
                    .await
                    .unwrap();
            }
        });
        Self {
            addr,
            got,
            status,
            shutdown,
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}/hook", self.addr)
    }

    /// Takes what arrived so far, parsed.
    pub fn take(&self) -> Vec<(HeaderMap, Bytes, Value)> {
        self.got
            .lock()
            .unwrap()
            .drain(..)
            .map(|(h, b)| {
                let v = serde_json::from_slice(&b).unwrap();
                (h, b, v)
            })
            .collect()
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// `application/x-www-form-urlencoded` bodies (reqwest's `form` feature is not built).
pub trait FormExt {
    fn form(self, pairs: &[(&str, &str)]) -> Self;
}

impl FormExt for reqwest::RequestBuilder {
    fn form(self, pairs: &[(&str, &str)]) -> Self {
        let encode = |s: &str| {
            s.bytes()
                .map(|b| match b {
                    b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                        char::from(b).to_string()
                    }
                    _ => format!("%{b:02X}"),
                })
                .collect::<String>()
        };
        let body = pairs
            .iter()
            .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
            .collect::<Vec<_>>()
            .join("&");
        self.header("content-type", "application/x-www-form-urlencoded")
            .body(body)
    }
}
