//! End to end through central outages, restarts and a rejected token, in virtual time
//! (`start_paused`: hours pass in milliseconds; every socket is real and in-process):
//! reports are spooled within the cap while central is down and delivered in order,
//! none duplicated, once it is back; a restart in the middle loses nothing; 401/403 keep
//! the spool; a shutdown flushes it.

use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

use truenas_agent::central::spool::{Record, SPOOL_FILE, decode_log};
use truenas_agent::central::{CentralState, report};
use truenas_agent::daemon::DaemonRecord;
use truenas_agent::middleware::ApiFlavor;
use truenas_agent::state_dir::StateDir;
use uuid::Uuid;

use crate::e2e_fixture::{
    AgentFiles, Central, DEVICE, Running, System, applied, document, reports, test_options,
    wait_for_report,
};

/// Report ids waiting in the agent's spool, oldest first (read from the file itself).
fn spooled(state: &Path) -> Vec<Uuid> {
    let bytes = std::fs::read(state.join(SPOOL_FILE)).unwrap_or_default();
    let log = decode_log(&bytes);
    let removed: BTreeSet<u64> = log
        .records
        .iter()
        .filter_map(|r| match r.record {
            Record::Removed { seq } => Some(seq),
            Record::Report { .. } | Record::Lost { .. } => None,
        })
        .collect();
    log.records
        .iter()
        .filter_map(|r| match &r.record {
            Record::Report { seq, payload, .. } if !removed.contains(seq) => {
                Some(report::decode(payload).unwrap().report_id)
            }
            Record::Report { .. } | Record::Removed { .. } | Record::Lost { .. } => None,
        })
        .collect()
}

fn central_state(state: &Path) -> CentralState {
    CentralState::load(&StateDir::open(state).unwrap())
        .unwrap()
        .unwrap()
}

async fn stored_ids(central: &Central) -> Vec<Uuid> {
    reports(central).await.iter().map(|r| r.report_id).collect()
}

fn assert_unique(ids: &[Uuid]) {
    let set: BTreeSet<&Uuid> = ids.iter().collect();
    assert_eq!(set.len(), ids.len(), "a report was stored twice");
}

/// A system whose agent polls every 5 minutes when central does not hold requests.
async fn system(flavor: ApiFlavor) -> System {
    let mut sys = System::start_with(flavor, None).await;
    sys.files.config.central.as_mut().unwrap().poll_interval = Duration::from_secs(300);
    sys
}

/// Starts an agent that reports every 5 minutes and re-checks for drift every 30.
async fn agent(files: &AgentFiles) -> Running {
    let mut options = test_options(&files.config);
    options.report_interval = Duration::from_secs(300);
    options.resync_interval = Duration::from_secs(1800);
    Running::start(&files.config, options).await
}

/// Lets virtual time pass until the agent's spool is empty (at most `minutes`).
async fn until_drained(state: &Path, minutes: u32) {
    for _ in 0..minutes {
        if spooled(state).is_empty() {
            return;
        }
        tokio::time::sleep(Duration::from_secs(60)).await;
    }
}

async fn a_long_outage_is_spooled_within_the_cap_and_delivered_in_order_without_duplicates(
    flavor: ApiFlavor,
) {
    let mut sys = system(flavor).await;
    sys.central.publish(DEVICE, &document(1)).await;
    let first = agent(&sys.files).await;
    let applied = wait_for_report(&sys.central, "with revision 1 applied", applied(1)).await;
    first.stop().await;
    // A spool that holds about six reports of this box (the agent restarts with it).
    let cap = 6 * (serde_json::to_vec(&applied).unwrap().len() as u64 + 64);
    sys.files.config.central.as_mut().unwrap().spool_max_bytes = cap;
    let agent = agent(&sys.files).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let before = stored_ids(&sys.central).await;

    // Central is down for three hours.
    let (dir, addr, key) = sys.central.stop().await;
    let state = sys.files.state_path();
    let spool_file = state.join(SPOOL_FILE);
    for _ in 0..6 {
        tokio::time::sleep(Duration::from_secs(30 * 60)).await;
        let size = std::fs::metadata(&spool_file).unwrap().len();
        assert!(
            size <= 2 * cap + 64 * 1024,
            "the spool file stays bounded: {size}"
        );
    }
    let waiting = spooled(&state);
    let record = DaemonRecord::load(&StateDir::open(&state).unwrap())
        .unwrap()
        .unwrap();
    assert!(
        record.status.contains("central unreachable"),
        "{}",
        record.status
    );
    let counters = central_state(&state).counters;
    assert!(
        counters.reports_dropped > 0,
        "three hours of reports overflow the spool"
    );
    assert!(waiting.len() > 3, "{}", waiting.len());

    // Central is back (same address, same data): everything waiting arrives, in
    // order, once.
    let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
    sys.central = Central::start_on(listener, dir, key).await;
    until_drained(&state, 60).await;
    assert_eq!(spooled(&state), Vec::<Uuid>::new(), "the spool drained");
    let after = stored_ids(&sys.central).await;
    assert_unique(&after);
    assert_eq!(after[..before.len()], before[..]);
    // What was waiting arrives first, oldest first; only the oldest of it may have
    // been dropped meanwhile (the spool was full and time went on).
    let delivered = &after[before.len()..];
    let kept: Vec<Uuid> = waiting
        .iter()
        .filter(|id| delivered.contains(id))
        .copied()
        .collect();
    assert!(
        kept.len() + 2 >= waiting.len(),
        "{} of {}",
        kept.len(),
        waiting.len()
    );
    assert_eq!(
        kept[..],
        waiting[waiting.len() - kept.len()..],
        "only the oldest dropped"
    );
    assert_eq!(delivered[..kept.len()], kept[..], "delivered oldest first");
    // Every dropped report is announced by exactly one stored report.
    let counters = central_state(&state).counters;
    let announced: u64 = reports(&sys.central)
        .await
        .iter()
        .map(|r| r.agent.dropped_reports)
        .sum();
    assert_eq!(announced, counters.reports_dropped);
    assert_eq!(
        counters.reports_delivered + counters.reports_dropped,
        counters.reports_queued
    );
    agent.stop().await;
}
per_flavour!(local paused a_long_outage_is_spooled_within_the_cap_and_delivered_in_order_without_duplicates);

async fn an_agent_restarted_in_the_middle_of_an_outage_loses_nothing(flavor: ApiFlavor) {
    let mut sys = system(flavor).await;
    sys.central.publish(DEVICE, &document(1)).await;
    let first = agent(&sys.files).await;
    wait_for_report(&sys.central, "with revision 1 applied", applied(1)).await;
    let (dir, addr, key) = sys.central.stop().await;
    tokio::time::sleep(Duration::from_secs(20 * 60)).await;
    first.stop().await; // its final flush fails: central is down
    let state = sys.files.state_path();
    let waiting = spooled(&state);
    assert!(waiting.len() >= 3, "{}", waiting.len());

    let second = agent(&sys.files).await;
    tokio::time::sleep(Duration::from_secs(60)).await;
    let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
    sys.central = Central::start_on(listener, dir, key).await;
    until_drained(&state, 60).await;
    assert_eq!(
        spooled(&state),
        Vec::<Uuid>::new(),
        "delivered before stopping"
    );
    second.stop().await;
    let stored = stored_ids(&sys.central).await;
    assert_unique(&stored);
    for id in &waiting {
        assert!(
            stored.contains(id),
            "report {id} from before the restart was lost"
        );
    }
    let counters = central_state(&state).counters;
    assert_eq!(counters.reports_dropped + counters.reports_lost, 0);
    assert_eq!(counters.reports_delivered, counters.reports_queued);
    assert_eq!(stored.len() as u64, counters.reports_queued);
}
per_flavour!(local paused an_agent_restarted_in_the_middle_of_an_outage_loses_nothing);

async fn a_rejected_token_keeps_every_report_until_it_works_again(flavor: ApiFlavor) {
    let sys = system(flavor).await;
    sys.central.publish(DEVICE, &document(1)).await;
    let agent = agent(&sys.files).await;
    wait_for_report(&sys.central, "with revision 1 applied", applied(1)).await;
    sys.central.set_disabled(DEVICE, true).await; // 403 from now on
    tokio::time::sleep(Duration::from_secs(30 * 60)).await;
    let state = sys.files.state_path();
    let waiting = spooled(&state);
    assert!(waiting.len() >= 3, "{}", waiting.len());
    let record = DaemonRecord::load(&StateDir::open(&state).unwrap())
        .unwrap()
        .unwrap();
    assert!(
        record
            .status
            .starts_with("central rejected the device token"),
        "{}",
        record.status
    );
    let central = central_state(&state);
    assert!(central.counters.token_rejections > 0);
    assert_eq!(central.counters.reports_rejected, 0, "nothing dropped");

    sys.central.set_disabled(DEVICE, false).await;
    // The token back-off starts at the poll interval (5 min) and doubles to 1 h.
    until_drained(&state, 120).await;
    assert_eq!(
        spooled(&state),
        Vec::<Uuid>::new(),
        "delivered once the token works"
    );
    agent.stop().await;
    let stored = stored_ids(&sys.central).await;
    assert_unique(&stored);
    for id in &waiting {
        assert!(stored.contains(id), "report {id} was lost to the 403s");
    }
}
per_flavour!(local paused a_rejected_token_keeps_every_report_until_it_works_again);

async fn shutdown_flushes_the_spool_once(flavor: ApiFlavor) {
    let mut sys = system(flavor).await;
    sys.central.publish(DEVICE, &document(1)).await;
    let agent = agent(&sys.files).await;
    wait_for_report(&sys.central, "with revision 1 applied", applied(1)).await;
    let (dir, addr, key) = sys.central.stop().await;
    tokio::time::sleep(Duration::from_secs(20 * 60)).await;
    let state = sys.files.state_path();
    let waiting = spooled(&state);
    assert!(!waiting.is_empty());
    // Central is back, but the agent is backing off; SIGTERM now.
    let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
    sys.central = Central::start_on(listener, dir, key).await;
    agent.stop().await;
    assert_eq!(
        spooled(&state),
        Vec::<Uuid>::new(),
        "flushed on the way out"
    );
    let stored = stored_ids(&sys.central).await;
    for id in &waiting {
        assert!(stored.contains(id));
    }
    let record = DaemonRecord::load(&StateDir::open(&state).unwrap())
        .unwrap()
        .unwrap();
    assert!(!record.status.contains("waiting"), "{}", record.status);
}
per_flavour!(local paused shutdown_flushes_the_spool_once);
