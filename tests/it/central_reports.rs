//! `POST /v1/reports` end to end: the agent's durable spool and outbox against the
//! reference server (and a scripted server), through outages and restarts.

use std::time::Duration;

use secrecy::SecretString;
use truenas_agent::central::client::{CentralClient, ReportResponse};
use truenas_agent::central::report::{CheckStatus, ChecklistItem, CloudSyncHealth, Report};
use truenas_agent::central::spool::{SPOOL_FILE, Spool};
use truenas_agent::central::state::ReportOutcome;
use truenas_agent::central::{CentralStore, Outbox, ReportError};
use truenas_agent::fault::Fault;

use crate::central_fixture::{
    Agent, Central, DEVICE, DataDir, LogCapture, Scripted, ScriptedServer, TOKEN, signing_key,
};

/// A report of about 1 KiB carrying its number in `checklist[0].detail`.
fn numbered(n: u64) -> Report {
    let mut r = Report::new(chrono::Utc::now());
    r.checklist.push(ChecklistItem {
        id: "test.number".into(),
        title: "x".repeat(900),
        status: CheckStatus::Pass,
        detail: n.to_string(),
    });
    r
}

fn outbox(agent: &Agent, cap: u64) -> Outbox {
    let token = SecretString::from(TOKEN);
    let client = CentralClient::new(agent.central(), &token).unwrap();
    let store = CentralStore::open(agent.state_dir()).unwrap();
    Outbox::open(client, store, cap).unwrap()
}

/// An address nothing listens on (a central outage), reusable later for the server.
async fn dead_address() -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    listener.local_addr().unwrap()
}

async fn outage_spools_within_the_cap_then_delivers_in_order_without_duplicates() {
    let addr = dead_address().await;
    let agent = Agent::new(&format!("http://{addr}/"), &[&signing_key(1)], 0, false);
    let cap = 12 * 1024;
    let mut outbox = outbox(&agent, cap);
    for n in 1..=30 {
        outbox.enqueue(&numbered(n), &[]).unwrap();
        let spool_len = std::fs::metadata(agent.config.state_dir.join(SPOOL_FILE))
            .unwrap()
            .len();
        assert!(spool_len <= 2 * cap + 64 * 1024, "spool file stays bounded");
    }
    let kept = outbox.pending();
    assert!(kept > 5 && kept < 30, "{kept}");

    // Central is down: nothing delivered, everything kept, back-off grows.
    let mut waits = Vec::new();
    for _ in 0..3 {
        let d = outbox.deliver().await;
        assert_eq!(d.delivered, 0);
        assert_eq!(d.pending, kept);
        let err = d.error.unwrap();
        assert!(matches!(err, ReportError::Send(_)), "{err:?}");
        assert_eq!(err.fault(), Fault::Transient);
        waits.push(d.retry_in.unwrap());
    }
    assert!(waits[2] > waits[0], "{waits:?}");
    let state = CentralStore::open(agent.state_dir()).unwrap().snapshot();
    assert_eq!(state.last_report.unwrap().outcome, ReportOutcome::Retrying);

    // Central comes back on the same address.
    let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
    let central = Central::start_on(listener, DataDir::new().await, signing_key(1)).await;
    central.register(DEVICE, TOKEN).await;
    let d = outbox.deliver().await;
    assert!(d.error.is_none(), "{:?}", d.error);
    assert_eq!((d.delivered, d.pending, d.retry_in), (kept, 0, None));

    // The newest `kept` reports, in order, each once; the drops are announced.
    let got = central.report_numbers(DEVICE).await;
    let first = 30 - kept as u64 + 1;
    assert_eq!(got, (first..=30).collect::<Vec<_>>());
    let stored = central.reports(DEVICE).await;
    let announced: u64 = stored.iter().map(|r| r.report.agent.dropped_reports).sum();
    assert_eq!(announced, 30 - kept as u64);
    let state = CentralStore::open(agent.state_dir()).unwrap().snapshot();
    assert_eq!(state.counters.reports_dropped, 30 - kept as u64);
    assert_eq!(state.counters.reports_delivered, kept as u64);
    assert_eq!(state.counters.reports_queued, 30);
}

async fn restart_mid_spool_loses_nothing() {
    let central = Central::start(signing_key(1)).await;
    central.register(DEVICE, TOKEN).await;
    let agent = Agent::new(&central.url(), &[&central.key], 0, false);
    let mut session = agent.session();
    for n in 1..=3 {
        session.outbox.enqueue(&numbered(n), &[]).unwrap();
    }
    assert_eq!(session.outbox.deliver().await.delivered, 3);

    // Central goes down; the agent queues more, fails to deliver, and restarts.
    let (dir, addr, key) = central.stop().await;
    for n in 4..=6 {
        session.outbox.enqueue(&numbered(n), &[]).unwrap();
    }
    assert_eq!(session.outbox.deliver().await.pending, 3);
    drop(session);

    let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
    let central = Central::start_on(listener, dir, key).await;
    let mut session = agent.session();
    assert_eq!(session.outbox.pending(), 3);
    session.outbox.enqueue(&numbered(7), &[]).unwrap();
    let d = session.outbox.deliver().await;
    assert_eq!((d.delivered, d.pending), (4, 0));
    assert_eq!(central.report_numbers(DEVICE).await, [1, 2, 3, 4, 5, 6, 7]);
}

async fn a_crash_between_delivery_and_removal_is_absorbed_by_deduplication() {
    let central = Central::start(signing_key(1)).await;
    central.register(DEVICE, TOKEN).await;
    let agent = Agent::new(&central.url(), &[&central.key], 0, false);
    {
        let mut outbox = outbox(&agent, 1 << 20);
        outbox.enqueue(&numbered(1), &[]).unwrap();
        outbox.enqueue(&numbered(2), &[]).unwrap();
    }
    // The agent posts report 1 and dies before removing it from the spool.
    let mut spool = Spool::open(&agent.config.state_dir, 1 << 20).unwrap();
    let (_, body) = spool.oldest().unwrap().unwrap();
    drop(spool);
    let client = CentralClient::new(agent.central(), &SecretString::from(TOKEN)).unwrap();
    assert_eq!(
        client.post_report(body.clone()).await.unwrap(),
        ReportResponse::Accepted { status: 202 }
    );
    // After the restart it is sent again: central answers 2xx and stores it once.
    let mut outbox = outbox(&agent, 1 << 20);
    let d = outbox.deliver().await;
    assert_eq!((d.delivered, d.pending), (2, 0));
    assert_eq!(central.report_numbers(DEVICE).await, [1, 2]);
    assert_eq!(
        client.post_report(body).await.unwrap(),
        ReportResponse::Accepted { status: 200 }
    );
    assert_eq!(central.report_numbers(DEVICE).await, [1, 2]);
}

#[tokio::test(start_paused = true)]
async fn permanent_4xx_drops_retryable_statuses_keep() {
    let server = ScriptedServer::start(vec![
        Scripted::status(400),
        Scripted::status(202),
        Scripted::status(429).header("retry-after", "30"),
        Scripted::status(408),
        Scripted::status(503),
        Scripted::status(200),
        Scripted::status(422),
    ])
    .await;
    let agent = Agent::new(&server.url(), &[&signing_key(1)], 0, false);
    let mut outbox = outbox(&agent, 1 << 20);
    for n in 1..=4 {
        outbox.enqueue(&numbered(n), &[]).unwrap();
    }
    let d = outbox.deliver().await;
    assert_eq!((d.rejected, d.delivered, d.pending), (1, 1, 2));
    assert!(d.retry_in.unwrap() >= Duration::from_secs(30));
    assert_eq!(outbox.deliver().await.pending, 2, "408 keeps the report");
    assert_eq!(outbox.deliver().await.pending, 2, "503 keeps the report");
    let d = outbox.deliver().await;
    // 200 for report 3, then 422 for report 4: a 4xx is rejected for good (contract §4).
    assert_eq!(
        (d.delivered, d.rejected, d.pending, d.retry_in),
        (1, 1, 0, None)
    );
    let numbers: Vec<u64> = server
        .seen()
        .iter()
        .map(|s| {
            let r = truenas_agent::central::report::decode(&s.body).unwrap();
            r.checklist[0].detail.parse().unwrap()
        })
        .collect();
    assert_eq!(
        numbers,
        [1, 2, 3, 3, 3, 3, 4],
        "oldest first, retried in order"
    );
    for seen in server.seen() {
        assert_eq!(seen.uri.path(), "/v1/reports");
        assert_eq!(seen.headers["content-type"], "application/json");
        assert_eq!(seen.headers["user-agent"], truenas_agent::USER_AGENT);
    }
    let state = CentralStore::open(agent.state_dir()).unwrap().snapshot();
    assert_eq!(state.counters.reports_rejected, 2);
    assert_eq!(state.counters.reports_delivered, 2);
    let last = state.last_report.unwrap();
    assert_eq!(
        (last.outcome, last.status),
        (ReportOutcome::Rejected, Some(422))
    );
}

/// A rejected token (401/403) says nothing about the report: every report stays in the
/// spool, delivery backs off from the poll interval (not the 5 s transient back-off), and
/// once the token works again all of them arrive, in order.
// See: docs/central.md, "Reports and a rejected token".
#[tokio::test(start_paused = true)]
async fn token_rejected_keeps_every_report_and_backs_off() {
    let server = ScriptedServer::start(vec![
        Scripted::status(401),
        Scripted::status(403),
        Scripted::status(202),
        Scripted::status(202),
        Scripted::status(202),
    ])
    .await;
    let agent = Agent::new(&server.url(), &[&signing_key(1)], 0, false);
    let mut outbox = outbox(&agent, 1 << 20);
    for n in 1..=3 {
        outbox.enqueue(&numbered(n), &[]).unwrap();
    }
    let d = outbox.deliver().await;
    assert_eq!((d.delivered, d.rejected, d.pending), (0, 0, 3));
    let err = d.error.unwrap();
    assert_eq!(err.fault(), Fault::Central);
    assert!(
        format!("{:#}", anyhow::Error::from(err)).contains("rejected the device token"),
        "the error says what is wrong"
    );
    // Token back-off: from the poll interval (300 s), equal jitter → 150..=300 s, then
    // doubling; never the 5 s transient back-off.
    let first = d.retry_in.unwrap();
    assert!(first >= Duration::from_secs(150), "{first:?}");
    let state = CentralStore::open(agent.state_dir()).unwrap().snapshot();
    let last = state.last_report.unwrap();
    assert_eq!(
        (last.outcome, last.status, last.pending),
        (ReportOutcome::TokenRejected, Some(401), 3)
    );
    assert_eq!(state.counters.token_rejections, 1);
    assert_eq!(state.counters.reports_rejected, 0);

    let d = outbox.deliver().await;
    assert_eq!(d.pending, 3, "403 keeps the reports too");
    assert!(d.retry_in.unwrap() >= Duration::from_secs(300), "doubling");

    let d = outbox.deliver().await;
    assert!(d.error.is_none(), "{:?}", d.error);
    assert_eq!((d.delivered, d.pending, d.retry_in), (3, 0, None));
    let numbers: Vec<u64> = server
        .seen()
        .iter()
        .map(|s| {
            let r = truenas_agent::central::report::decode(&s.body).unwrap();
            r.checklist[0].detail.parse().unwrap()
        })
        .collect();
    assert_eq!(numbers, [1, 1, 1, 2, 3]);
    let state = CentralStore::open(agent.state_dir()).unwrap().snapshot();
    assert_eq!(state.counters.token_rejections, 2);
    assert_eq!(state.counters.reports_delivered, 3);
    assert_eq!(state.last_report.unwrap().outcome, ReportOutcome::Delivered);
}

async fn the_reference_server_checks_reports() {
    let central = Central::start(signing_key(1)).await;
    central.register(DEVICE, TOKEN).await;
    let agent = Agent::new(&central.url(), &[&central.key], 0, false);
    let client = CentralClient::new(agent.central(), &SecretString::from(TOKEN)).unwrap();
    let big = vec![b' '; 1024 * 1024 + 1];
    assert_eq!(
        client.post_report(big).await.unwrap(),
        ReportResponse::Rejected { status: 413 }
    );
    assert_eq!(
        client
            .post_report(b"{\"schema\":1}".to_vec())
            .await
            .unwrap(),
        ReportResponse::Rejected { status: 400 }
    );
    let mut wrong = serde_json::to_value(numbered(1)).unwrap();
    wrong["schema"] = "truenas-agent.report/v0".into();
    assert_eq!(
        client
            .post_report(serde_json::to_vec(&wrong).unwrap())
            .await
            .unwrap(),
        ReportResponse::Rejected { status: 400 }
    );
    assert!(central.reports(DEVICE).await.is_empty());
    let stranger =
        CentralClient::new(agent.central(), &SecretString::from("not-a-device")).unwrap();
    let err = stranger
        .post_report(truenas_agent::central::report::encode(&numbered(1), 0, &[]))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            truenas_agent::central::ClientError::TokenRejected { status: 401, .. }
        ),
        "{err:?}"
    );
}

async fn reports_never_carry_secrets() {
    let logs = LogCapture::start();
    let central = Central::start(signing_key(1)).await;
    central.register(DEVICE, TOKEN).await;
    let agent = Agent::new(&central.url(), &[&central.key], 0, false);
    let mut session = agent.session();
    let secrets: Vec<SecretString> = crate::support::CANARIES
        .iter()
        .map(|c| SecretString::from(*c))
        .collect();
    let secret_refs: Vec<&SecretString> = secrets.iter().collect();
    // A middleware error message that echoed a secret must not leave the box.
    let mut r = numbered(1);
    r.health.cloud_sync.push(CloudSyncHealth {
        pool: "pool0".into(),
        state: "FAILED".into(),
        message: Some(
            "rclone: bad key CANARY-B2-APPKEY-7f3a9c for salt CANARY-ENC-SALT-9d0c55".into(),
        ),
        ..CloudSyncHealth::default()
    });
    session.outbox.enqueue(&r, &secret_refs).unwrap();
    let d = session.outbox.deliver().await;
    assert_eq!(d.delivered, 1);
    let stored = central.reports(DEVICE).await;
    assert_eq!(
        stored[0].report.health.cloud_sync[0].message.as_deref(),
        Some("rclone: bad key [REDACTED] for salt [REDACTED]")
    );
    crate::support::assert_no_canary("logs", &logs.text());
    crate::support::assert_no_canary_in_dir(&agent.config.state_dir);
    central.assert_no_canary_in_data();
}

on_both_engines!(
    #[tokio::test(start_paused = true)]
    outage_spools_within_the_cap_then_delivers_in_order_without_duplicates,
    restart_mid_spool_loses_nothing,
    a_crash_between_delivery_and_removal_is_absorbed_by_deduplication,
    the_reference_server_checks_reports,
    reports_never_carry_secrets,
);
