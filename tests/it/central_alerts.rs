//! Transitions of a scripted scenario, seen by `/metrics` and by a real webhook receiver,
//! against central's running service (what `truenas-central serve` runs: reports arrive
//! over the protocol, the evaluator and the webhook worker run on their own): a backup
//! fails and recovers, a device goes silent and returns (an injected clock, no sleeps), a
//! backup becomes overdue by the clock, a checklist item regresses and is fixed, a
//! document is refused and accepted again. Webhooks come from the durable outbox, signed,
//! retried with back-off, given up after `max_attempts`, never carrying a secret (the
//! worker driven by hand); two central instances on one database announce each transition
//! once. Every case runs on SQLite and on a real PostgreSQL.

use std::collections::BTreeSet;
use std::sync::Arc;

use chrono::Duration;
use secrecy::SecretString;
use serde_json::Value;
use truenas_agent::central::report::ConfigState;
use truenas_central::alerts::Event;
use truenas_central::config::{CentralConfig, DeliveryConfig, WebhookTarget};
use truenas_central::monitor::{Counters, Monitor};
use truenas_central::webhooks::{Deliverer, Pass, verify};

use crate::central_db::Env;
use crate::dashboard_fixture::{Dash, Receiver, add_device, deliver, report, start_time};
use crate::support::assert_no_canary;

const SECRET: &str = "shared-webhook-secret-7c1e";

macro_rules! on_both {
    ($($case:ident),* $(,)?) => {$(
        mod $case {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                super::$case(crate::central_db::Env::sqlite().await).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                super::$case(crate::central_db::Env::postgres().await).await;
            }
        }
    )*};
}

on_both!(
    a_scripted_scenario_reaches_metrics_and_webhooks,
    failed_deliveries_are_retried_with_back_off_then_given_up,
    two_instances_announce_each_transition_once,
);

fn config(receiver: &Receiver, max_attempts: u64) -> CentralConfig {
    let mut config = CentralConfig::default();
    config.dashboard.public_origin = Some("https://central.example.com".into());
    // The running evaluator re-judges every second (time-driven transitions).
    config.evaluate_every = std::time::Duration::from_secs(1);
    config.delivery = DeliveryConfig {
        max_attempts,
        poll: std::time::Duration::from_millis(200),
        ..DeliveryConfig::default()
    };
    config.webhooks = vec![WebhookTarget {
        name: "ops".into(),
        url: receiver.url().parse().unwrap(),
        secret: SecretString::from(SECRET),
        events: Event::ALL.into_iter().collect(),
    }];
    config
}

struct Scenario {
    d: Dash,
    receiver: Receiver,
    /// `None`: central's own evaluator and worker run (live); `Some`: driven by hand.
    deliverer: Option<Deliverer>,
    seen_ids: BTreeSet<String>,
}

impl Scenario {
    /// Central's service running (`Service::serve`), reports sent over the protocol.
    async fn live(env: Env) -> Self {
        let receiver = Receiver::start().await;
        let config = config(&receiver, 30);
        let d = Dash::start(env, config, start_time()).await;
        Self::with_device(d, receiver, None).await
    }

    /// The dashboard only; the test runs the evaluator and a worker itself.
    async fn bare(env: Env, max_attempts: u64) -> Self {
        let receiver = Receiver::start().await;
        let config = config(&receiver, max_attempts);
        let d = Dash::start_bare(env, config.clone(), start_time()).await;
        let deliverer = Deliverer::new(
            d.db().clone(),
            config.webhooks.clone(),
            config.delivery,
            d.clock.clone(),
            d.monitor.counters().clone(),
        )
        .unwrap();
        Self::with_device(d, receiver, Some(deliverer)).await
    }

    async fn with_device(d: Dash, receiver: Receiver, deliverer: Option<Deliverer>) -> Self {
        add_device(
            d.db(),
            "nas-01",
            crate::dashboard_fixture::ORG_A,
            ("loc-1", "Clinic"),
        )
        .await;
        Self {
            d,
            receiver,
            deliverer,
            seen_ids: BTreeSet::new(),
        }
    }

    /// Evaluates and delivers (live: waits until central's own evaluator ran after this
    /// call and its worker emptied the outbox), and returns the events the receiver got
    /// (checking each one's signature, headers and that it carries no secret).
    async fn events(&mut self) -> Vec<Value> {
        match &self.deliverer {
            Some(deliverer) => {
                self.d.monitor.evaluate().await.unwrap();
                deliverer.deliver_due().await.unwrap();
            }
            None => self.d.settle().await,
        }
        let mut out = Vec::new();
        for (headers, bytes, body) in self.receiver.take() {
            let sig = headers["x-truenas-central-signature"].to_str().unwrap();
            assert!(
                verify(SECRET.as_bytes(), &bytes, sig),
                "signature of {body}"
            );
            assert!(!verify(b"another secret", &bytes, sig));
            assert_eq!(
                headers["x-truenas-central-event"],
                body["event"].as_str().unwrap()
            );
            assert_eq!(
                headers["x-truenas-central-delivery"],
                body["id"].as_str().unwrap()
            );
            assert_eq!(headers["content-type"], "application/json");
            assert!(
                self.seen_ids
                    .insert(body["id"].as_str().unwrap().to_owned()),
                "one id per event"
            );
            let text = String::from_utf8_lossy(&bytes).to_string();
            assert_no_canary("a webhook body", &text);
            assert!(!text.contains(SECRET));
            out.push(body);
        }
        out
    }

    async fn names(&mut self) -> Vec<String> {
        self.events()
            .await
            .iter()
            .map(|e| e["event"].as_str().unwrap().to_owned())
            .collect()
    }

    /// The device reports now (live: over the protocol; else into the database).
    async fn report(&self, state: &str, last_success_ago: Duration, failing: &[&str]) {
        let now = self.d.now();
        let r = report(now, state, Some(now - last_success_ago), failing);
        self.send(&r).await;
    }

    async fn send(&self, r: &truenas_agent::central::report::Report) {
        if self.deliverer.is_some() {
            deliver(self.d.db(), "nas-01", r, self.d.now()).await;
        } else {
            self.d.post_report("nas-01", r).await;
        }
    }

    async fn metric(&self, line_start: &str) -> String {
        self.d.metric(line_start).await
    }
}

const FAILING: &str = "truenas_central_device_backup_failing{device=\"nas-01\",pool=\"pool0\"}";
const OVERDUE: &str = "truenas_central_device_backup_overdue{device=\"nas-01\",pool=\"pool0\"}";
const SILENT: &str = "truenas_central_device_silent{device=\"nas-01\"}";
const AGE: &str = "truenas_central_device_last_report_age_seconds{device=\"nas-01\"}";
const CHECKS: &str = "truenas_central_device_checklist_failing{device=\"nas-01\"}";
const REFUSED: &str = "truenas_central_device_config_state{device=\"nas-01\",state=\"refused\"}";

async fn a_scripted_scenario_reaches_metrics_and_webhooks(env: Env) {
    let mut s = Scenario::live(env).await;
    let hour = Duration::hours(1);
    // Healthy: nothing to announce.
    s.report("SUCCESS", hour, &[]).await;
    assert!(s.names().await.is_empty());
    assert_eq!(s.metric(FAILING).await, "0");
    // The backup fails.
    s.d.clock.advance(Duration::minutes(1));
    s.report("FAILED", hour, &[]).await;
    let events = s.events().await;
    assert_eq!(events.len(), 1, "{events:?}");
    let e = &events[0];
    assert_eq!(e["event"], "backup.failed");
    assert_eq!(e["device"]["name"], "nas-01");
    assert_eq!(e["device"]["location_name"], "Clinic");
    assert_eq!(e["pool"]["name"], "pool0");
    assert_eq!(e["pool"]["state"], "FAILED");
    assert_eq!(e["pool"]["error_class"], "auth");
    assert_eq!(e["verdict"], "problem");
    assert_eq!(
        e["dashboard_url"],
        "https://central.example.com/devices/nas-01"
    );
    assert!(
        e.get("message").is_none() && !e.to_string().contains("401 unauthorized"),
        "no free text from the NAS: {e}"
    );
    assert_eq!(s.metric(FAILING).await, "1");
    // Evaluating again with nothing new announces nothing.
    assert!(s.names().await.is_empty());
    // It recovers.
    s.d.clock.advance(Duration::minutes(1));
    s.report("SUCCESS", Duration::seconds(30), &[]).await;
    assert_eq!(s.names().await, ["backup.recovered"]);
    assert_eq!(s.metric(FAILING).await, "0");
    // The device goes silent: only the clock moves (300 s interval + 600 s grace).
    s.d.clock.advance(Duration::seconds(900));
    assert!(s.names().await.is_empty(), "not yet");
    assert_eq!(s.metric(SILENT).await, "0");
    s.d.clock.advance(Duration::seconds(1));
    assert_eq!(s.names().await, ["device.silent"]);
    assert_eq!(s.metric(SILENT).await, "1");
    assert_eq!(s.metric(AGE).await, "901");
    // It comes back.
    s.report("SUCCESS", Duration::minutes(16), &[]).await;
    assert_eq!(s.names().await, ["device.returned"]);
    assert_eq!(s.metric(SILENT).await, "0");
    assert_eq!(s.metric(AGE).await, "0");
    // A checklist item regresses, then is fixed.
    s.report("SUCCESS", Duration::minutes(16), &["snmp.v3_only"])
        .await;
    let events = s.events().await;
    assert_eq!(events.len(), 1);
    assert_eq!(events[0]["event"], "checklist.regressed");
    assert_eq!(events[0]["items"][0]["id"], "snmp.v3_only");
    assert_eq!(events[0]["items"][0]["title"], "SOP item snmp.v3_only");
    assert_eq!(s.metric(CHECKS).await, "1");
    s.report("SUCCESS", Duration::minutes(16), &[]).await;
    assert_eq!(s.names().await, ["checklist.fixed"]);
    // The document is refused, then applied again.
    let now = s.d.now();
    let mut refused = report(now, "SUCCESS", Some(now - Duration::minutes(16)), &[]);
    refused.config.state = ConfigState::Refused;
    s.send(&refused).await;
    assert_eq!(s.names().await, ["document.refused"]);
    assert_eq!(s.metric(REFUSED).await, "1");
    s.report("SUCCESS", Duration::minutes(16), &[]).await;
    assert_eq!(s.names().await, ["document.accepted"]);
    // Three days pass without a word from the device: silent, and its backup overdue by
    // central's clock alone (no report says so).
    s.d.clock.advance(Duration::days(3));
    let mut names = s.names().await;
    names.sort();
    assert_eq!(names, ["backup.overdue", "device.silent"]);
    assert_eq!(s.metric(OVERDUE).await, "1");
    // It returns, still without a new success (the state keeps the newest one any report
    // announced, and the agent's own flag stays false in these reports): still overdue.
    let now = s.d.now();
    s.send(&report(now, "SUCCESS", None, &[])).await;
    assert_eq!(s.names().await, ["device.returned"]);
    assert_eq!(s.metric(OVERDUE).await, "1");
    s.report("SUCCESS", Duration::minutes(5), &[]).await;
    assert_eq!(s.names().await, ["backup.recovered"]);
    assert_eq!(s.metric(OVERDUE).await, "0");
    assert_eq!(
        s.metric("truenas_central_webhooks_delivered").await,
        "12",
        "every event delivered once"
    );
    assert_eq!(s.metric("truenas_central_webhooks_pending").await, "0");
}

async fn failed_deliveries_are_retried_with_back_off_then_given_up(env: Env) {
    let s = Scenario::bare(env, 3).await;
    *s.receiver.status.lock().unwrap() = axum::http::StatusCode::INTERNAL_SERVER_ERROR;
    s.report("FAILED", Duration::hours(1), &[]).await;
    s.d.monitor.evaluate().await.unwrap();
    let first = s.deliverer.as_ref().unwrap().deliver_due().await.unwrap();
    assert_eq!(
        first,
        Pass {
            delivered: 0,
            failed: 1,
            given_up: 0
        }
    );
    let got = s.receiver.take();
    assert_eq!(got.len(), 1);
    let id = got[0].2["id"].clone();
    // Not due again before the back-off (30 s after the first failure).
    s.d.clock.advance(Duration::seconds(29));
    assert_eq!(
        s.deliverer.as_ref().unwrap().deliver_due().await.unwrap(),
        Pass::default()
    );
    assert!(s.receiver.take().is_empty());
    // Due: the receiver works now and gets the same event (same id: it can de-duplicate).
    s.d.clock.advance(Duration::seconds(1));
    *s.receiver.status.lock().unwrap() = axum::http::StatusCode::OK;
    assert_eq!(
        s.deliverer.as_ref().unwrap().deliver_due().await.unwrap(),
        Pass {
            delivered: 1,
            failed: 0,
            given_up: 0
        }
    );
    let got = s.receiver.take();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].2["id"], id);
    assert_eq!(got[0].0["x-truenas-central-delivery"], id.as_str().unwrap());
    // A receiver that keeps failing: attempts at +0, +30 s, +60 s, then given up (3).
    *s.receiver.status.lock().unwrap() = axum::http::StatusCode::SERVICE_UNAVAILABLE;
    s.report("SUCCESS", Duration::seconds(10), &[]).await;
    s.d.monitor.evaluate().await.unwrap();
    assert_eq!(
        s.deliverer
            .as_ref()
            .unwrap()
            .deliver_due()
            .await
            .unwrap()
            .failed,
        1
    );
    s.d.clock.advance(Duration::seconds(30));
    assert_eq!(
        s.deliverer
            .as_ref()
            .unwrap()
            .deliver_due()
            .await
            .unwrap()
            .failed,
        1
    );
    s.d.clock.advance(Duration::seconds(59));
    assert_eq!(
        s.deliverer.as_ref().unwrap().deliver_due().await.unwrap(),
        Pass::default(),
        "60 s back-off"
    );
    s.d.clock.advance(Duration::seconds(1));
    assert_eq!(
        s.deliverer
            .as_ref()
            .unwrap()
            .deliver_due()
            .await
            .unwrap()
            .given_up,
        1
    );
    s.d.clock.advance(Duration::hours(2));
    assert_eq!(
        s.deliverer.as_ref().unwrap().deliver_due().await.unwrap(),
        Pass::default(),
        "never again"
    );
    assert_eq!(s.receiver.take().len(), 3);
    assert_eq!(s.d.db().webhook_totals().await.unwrap(), (0, 1, 1));
    assert_eq!(s.metric("truenas_central_webhooks_given_up").await, "1");
    assert_eq!(
        s.metric("truenas_central_webhook_failures_total").await,
        "4"
    );
}

async fn two_instances_announce_each_transition_once(env: Env) {
    let receiver = Receiver::start().await;
    let config = Arc::new(config(&receiver, 30));
    let other_db = env.another_instance().await;
    let d = Dash::start_bare(env, (*config).clone(), start_time()).await;
    let other = Monitor::new(
        other_db,
        config.clone(),
        d.clock.clone(),
        Arc::new(Counters::default()),
    );
    for i in 0..4 {
        add_device(
            d.db(),
            &format!("nas-{i}"),
            crate::dashboard_fixture::ORG_A,
            ("l", "L"),
        )
        .await;
    }
    let mut queued = 0;
    let mut conflicts = 0;
    for round in 0..6 {
        let now = d.now();
        let state = if round % 2 == 0 { "FAILED" } else { "SUCCESS" };
        for i in 0..4 {
            let r = report(now, state, Some(now - Duration::minutes(5)), &[]);
            deliver(d.db(), &format!("nas-{i}"), &r, now).await;
        }
        let (a, b) = tokio::join!(d.monitor.evaluate(), other.evaluate());
        let (a, b) = (a.unwrap(), b.unwrap());
        queued += a.queued + b.queued;
        conflicts += a.conflicts + b.conflicts;
        d.clock.advance(Duration::minutes(1));
    }
    // 4 devices × 6 transitions (failed, recovered, …), each queued once.
    assert_eq!(queued, 24, "conflicts: {conflicts}");
    assert_eq!(d.db().webhooks_pending().await.unwrap(), 24);
}
