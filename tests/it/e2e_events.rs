//! The daemon follows the middleware's events (issue 17), end to end over real sockets
//! on a paused clock: a technician's edit through the middleware (`admin_call`: the same
//! validation and events as the web UI) is repaired within seconds, without reading the
//! NAS in full; a change that sends no event (`update_state`: behind the middleware's
//! back) waits for the next full read (resync), and a quiet box is not read at all in
//! between; a dropped connection is followed by a full read; what the agent does not own
//! is never written.
//!
//! Every duration here is virtual (`start_paused`): "within seconds" is measured on
//! tokio's clock, never the wall clock.

use std::time::Duration;

use serde_json::{Value, json};
use tokio::time::Instant;
use truenas_agent::daemon::DaemonOptions;
use truenas_agent::middleware::ApiFlavor;
use truenas_sim::Simulator;

use crate::e2e_fixture::{
    DEVICE, Running, System, applied, document, reports, test_options, wait_for_report,
};

/// How long a repair after an event may take (virtual time): the debounce and a pass.
const REPAIR_WITHIN: Duration = Duration::from_secs(10);

/// Production-like timing: reports every 5 minutes, a full read every 6 hours.
fn options(sys: &System) -> DaemonOptions {
    let mut options = test_options(&sys.files.config);
    options.report_interval = Duration::from_secs(300);
    options.resync_interval = Duration::from_secs(6 * 3600);
    options
}

/// Starts the agent and waits until revision 1 is applied and the box is quiet (the
/// first-run Cloud Sync job over, its report sent).
async fn converged(sys: &System, options: DaemonOptions) -> Running {
    sys.central.publish(DEVICE, &document(1)).await;
    let agent = Running::start(&sys.files.config, options).await;
    wait_for_report(&sys.central, "with revision 1 applied", applied(1)).await;
    tokio::time::sleep(Duration::from_secs(30)).await;
    sys.nas.sim.clear_calls();
    agent
}

/// Waits (virtual time, at most a minute) until `done` holds of the box; the time taken.
async fn until(
    sim: &Simulator,
    what: &str,
    done: impl Fn(&truenas_sim::Scenario) -> bool,
) -> Duration {
    let start = Instant::now();
    while !done(&sim.state()) {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "not {what} within a minute"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    start.elapsed()
}

fn count(sim: &Simulator, method: &str) -> usize {
    sim.calls().iter().filter(|c| c.method == method).count()
}

/// The methods the agent called, in order, without the keep-alives.
fn reads_and_writes(sim: &Simulator) -> Vec<String> {
    sim.calls()
        .into_iter()
        .map(|c| c.method)
        .filter(|m| m != "core.ping")
        .collect()
}

/// Asserts the repair planned on the events' view: no full read of the NAS (`pool.query`
/// and `snmp.config` are read only by a full read) and no identity pass.
fn no_full_read(sim: &Simulator) {
    for method in ["pool.query", "snmp.config", "system.host_id"] {
        assert_eq!(
            count(sim, method),
            0,
            "a repair after an event reads only what the event did not carry: {:?}",
            reads_and_writes(sim)
        );
    }
}

async fn a_technician_disabling_a_task_is_repaired_within_seconds(flavor: ApiFlavor) {
    let sys = System::start_with(flavor, None).await;
    let agent = converged(&sys, options(&sys)).await;
    let sim = &sys.nas.sim;
    let id = sim.state().cloud_sync_tasks[0].id;
    sim.admin_call("cloudsync.update", &[json!(id), json!({"enabled": false})])
        .unwrap();
    assert!(!sim.state().cloud_sync_tasks[0].enabled);
    let took = until(sim, "enabled again", |s| s.cloud_sync_tasks[0].enabled).await;
    assert!(took <= REPAIR_WITHIN, "repaired after {took:?}");
    no_full_read(sim);
    assert_eq!(
        sys.nas.writes(),
        ["cloudsync.update"],
        "one write puts it back"
    );
    agent.stop().await;
}
per_flavour!(local paused a_technician_disabling_a_task_is_repaired_within_seconds);

async fn a_technician_removing_an_exclude_is_repaired_within_seconds(flavor: ApiFlavor) {
    let sys = System::start_with(flavor, None).await;
    let agent = converged(&sys, options(&sys)).await;
    let sim = &sys.nas.sim;
    let task = sim.state().cloud_sync_tasks[1].clone();
    assert!(!task.exclude.is_empty(), "the SOP task has excludes");
    let mut fewer = task.exclude.clone();
    fewer.pop();
    sim.admin_call(
        "cloudsync.update",
        &[json!(task.id), json!({"exclude": fewer})],
    )
    .unwrap();
    let took = until(sim, "its excludes back", |s| {
        s.cloud_sync_tasks[1].exclude == task.exclude
    })
    .await;
    assert!(took <= REPAIR_WITHIN, "repaired after {took:?}");
    no_full_read(sim);
    assert_eq!(sys.nas.writes(), ["cloudsync.update"]);
    // The repair is reported as drift, corrected.
    let report = wait_for_report(&sys.central, "with the drift", |r| {
        r.config
            .drift
            .iter()
            .any(|d| d.fields.iter().any(|f| f == "exclude"))
    })
    .await;
    assert!(
        report.config.drift.iter().all(|d| d.corrected),
        "{:?}",
        report.config.drift
    );
    agent.stop().await;
}
per_flavour!(local paused a_technician_removing_an_exclude_is_repaired_within_seconds);

async fn a_technician_deleting_a_snapshot_task_is_repaired_within_seconds(flavor: ApiFlavor) {
    let sys = System::start_with(flavor, None).await;
    let agent = converged(&sys, options(&sys)).await;
    let sim = &sys.nas.sim;
    let before = sim.state().snapshot_tasks;
    assert_eq!(before.len(), 2);
    let gone = before[0].clone();
    sim.admin_call("pool.snapshottask.delete", &[json!(gone.id)])
        .unwrap();
    let took = until(sim, "a snapshot task for the pool again", |s| {
        s.snapshot_tasks.iter().any(|t| t.dataset == gone.dataset)
    })
    .await;
    assert!(took <= REPAIR_WITHIN, "repaired after {took:?}");
    no_full_read(sim);
    assert_eq!(sys.nas.writes(), ["pool.snapshottask.create"]);
    let again = sim.state().snapshot_tasks;
    let made = again.iter().find(|t| t.dataset == gone.dataset).unwrap();
    assert_eq!(
        (
            &made.naming_schema,
            made.lifetime_value,
            &made.lifetime_unit
        ),
        (
            &gone.naming_schema,
            gone.lifetime_value,
            &gone.lifetime_unit
        )
    );
    agent.stop().await;
}
per_flavour!(local paused a_technician_deleting_a_snapshot_task_is_repaired_within_seconds);

async fn what_the_agent_does_not_own_is_never_written(flavor: ApiFlavor) {
    let sys = System::start_with(flavor, None).await;
    let sim = &sys.nas.sim;
    // An admin's own credential and task (to Wasabi, on the same pool).
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
    let theirs = sim
        .admin_call(
            "cloudsync.create",
            &[json!({
                "description": "Nightly to Wasabi", "path": "/mnt/pool0", "credentials": admin_cred,
                "attributes": {"bucket": "wasabi-archive", "folder": "/x"},
                "schedule": {"minute": "0", "hour": "3", "dom": "*", "month": "*", "dow": "*"},
                "direction": "PUSH", "transfer_mode": "COPY",
            })],
        )
        .unwrap();
    let theirs = theirs
        .get("id")
        .and_then(Value::as_u64)
        .or_else(|| theirs.as_u64())
        .unwrap();
    let agent = converged(&sys, options(&sys)).await;
    let ours = sim
        .state()
        .cloud_sync_tasks
        .iter()
        .find(|t| t.id != theirs)
        .unwrap()
        .id;
    // The technician disables both, and changes the schedule of theirs.
    sim.admin_call(
        "cloudsync.update",
        &[json!(theirs), json!({"enabled": false, "schedule": {"minute": "5", "hour": "4", "dom": "*", "month": "*", "dow": "*"}})],
    )
    .unwrap();
    sim.admin_call(
        "cloudsync.update",
        &[json!(ours), json!({"enabled": false})],
    )
    .unwrap();
    let theirs_now = |s: &truenas_sim::Scenario| {
        s.cloud_sync_tasks
            .iter()
            .find(|t| t.id == theirs)
            .cloned()
            .unwrap()
    };
    let edited = theirs_now(&sim.state());
    let took = until(sim, "ours enabled again", |s| {
        s.cloud_sync_tasks.iter().any(|t| t.id == ours && t.enabled)
    })
    .await;
    assert!(took <= REPAIR_WITHIN, "repaired after {took:?}");
    // A minute later: theirs is as the technician left it; the only write was ours.
    tokio::time::sleep(Duration::from_secs(60)).await;
    assert_eq!(theirs_now(&sim.state()), edited);
    let writes = sim.write_calls();
    assert_eq!(writes.len(), 1, "{writes:?}");
    assert_eq!(writes[0].method, "cloudsync.update");
    assert_eq!(writes[0].params[0], json!(ours));
    agent.stop().await;
}
per_flavour!(local paused what_the_agent_does_not_own_is_never_written);

async fn a_change_without_an_event_waits_for_the_resync_and_a_quiet_box_is_not_read(
    flavor: ApiFlavor,
) {
    let sys = System::start_with(flavor, None).await;
    let mut options = options(&sys);
    options.resync_interval = Duration::from_secs(1800);
    let agent = converged(&sys, options).await;
    let sim = &sys.nas.sim;
    let converged_at = Instant::now();
    let reported = reports(&sys.central).await.len();
    // Behind the middleware's back (a database restore, say): no event.
    sim.update_state(|s| s.cloud_sync_tasks[0].enabled = false);
    // 20 minutes: four scheduled reports, not one middleware read besides keep-alives.
    tokio::time::sleep(Duration::from_secs(20 * 60)).await;
    assert_eq!(
        reads_and_writes(sim),
        Vec::<String>::new(),
        "a quiet box is only pinged"
    );
    assert!(count(sim, "core.ping") > 0);
    assert!(
        reports(&sys.central).await.len() >= reported + 3,
        "reports go on from the view"
    );
    assert!(
        !sim.state().cloud_sync_tasks[0].enabled,
        "no event, no repair yet"
    );
    tokio::time::sleep_until(converged_at + Duration::from_secs(29 * 60)).await;
    assert!(
        !sim.state().cloud_sync_tasks[0].enabled,
        "no repair before the resync"
    );
    // The full read at 30 minutes (from the first pass) sees it and puts it back.
    until(sim, "enabled again after the resync", |s| {
        s.cloud_sync_tasks[0].enabled
    })
    .await;
    let at = converged_at.elapsed();
    assert!(
        at >= Duration::from_secs(1740) && at <= Duration::from_secs(1800) + REPAIR_WITHIN,
        "repaired {at:?} after convergence, the resync is due at 30 min"
    );
    assert!(count(sim, "pool.query") >= 1, "a full read");
    assert_eq!(sys.nas.writes(), ["cloudsync.update"]);
    agent.stop().await;
}
per_flavour!(local paused a_change_without_an_event_waits_for_the_resync_and_a_quiet_box_is_not_read);

async fn a_reconnect_reads_the_nas_in_full(flavor: ApiFlavor) {
    let sys = System::start_with(flavor, None).await;
    let agent = converged(&sys, options(&sys)).await;
    let sim = &sys.nas.sim;
    // While the middleware restarts, a change that no event reaches us for.
    sim.update_state(|s| s.cloud_sync_tasks[0].enabled = false);
    sys.nas.drop_connections();
    let took = until(sim, "enabled again after the reconnect", |s| {
        s.cloud_sync_tasks[0].enabled
    })
    .await;
    assert!(
        took <= REPAIR_WITHIN,
        "repaired {took:?} after the reconnect"
    );
    assert!(count(sim, "pool.query") >= 1, "a full read");
    assert_eq!(sys.nas.writes(), ["cloudsync.update"]);
    agent.stop().await;
}
per_flavour!(local paused a_reconnect_reads_the_nas_in_full);

/// At most this many middleware reads an hour on a quiet, converged box between resyncs
/// (keep-alives aside): the hourly SNMP poll (2 reads: it sends no event) and each
/// pool's snapshot listing (2 reads per pool, read at most hourly).
const QUIET_READS_PER_HOUR: usize = 2 + 2 * 2;

async fn a_quiet_box_is_read_only_for_what_sends_no_event(flavor: ApiFlavor) {
    let sys = System::start_with(flavor, None).await;
    let agent = converged(&sys, options(&sys)).await;
    let sim = &sys.nas.sim;
    let reported = reports(&sys.central).await.len();
    // Three hours, well inside the 6-hour resync.
    tokio::time::sleep(Duration::from_secs(3 * 3600)).await;
    let reads = reads_and_writes(sim);
    assert!(
        reads.len() <= 3 * QUIET_READS_PER_HOUR,
        "{} reads in 3 quiet hours: {reads:?}",
        reads.len()
    );
    for method in &reads {
        assert!(
            [
                "snmp.config",
                "service.query",
                "zfs.snapshot.query",
                "pool.snapshot.query",
            ]
            .contains(&method.as_str()),
            "only what sends no event is read: {reads:?}"
        );
    }
    assert!(sys.nas.writes().is_empty());
    assert!(
        reports(&sys.central).await.len() >= reported + 30,
        "a report every 5 minutes, from the view"
    );
    agent.stop().await;
}
per_flavour!(local paused a_quiet_box_is_read_only_for_what_sends_no_event);
