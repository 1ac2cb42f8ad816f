//! End to end over real sockets (simulated TrueNAS + reference central + the agent
//! daemon): first boot converges and reports; a new revision is applied within one
//! long-poll; drift is put back and reported as drift; a Cloud Sync run that changes
//! state is reported without waiting for the report interval.

use serde_json::json;
use truenas_agent::central::CentralState;
use truenas_agent::central::report::{ConfigSource, GuidSource, Mode};
use truenas_agent::daemon::DaemonRecord;
use truenas_agent::middleware::ApiFlavor;
use truenas_agent::state_dir::StateDir;

use crate::e2e_fixture::{
    BUCKET, DEVICE, GUID, System, applied, document, reports, wait_for_report,
};

async fn first_boot_converges_and_reports(flavor: ApiFlavor) {
    let sys = System::start_with(flavor, None).await;
    sys.central.publish(DEVICE, &document(1)).await;
    let agent = sys.agent().await;
    let report = wait_for_report(&sys.central, "with revision 1 applied", applied(1)).await;

    // The box now has what the SOP says.
    let state = sys.nas.sim.state();
    assert_eq!(state.credentials.len(), 1);
    assert_eq!(state.cloud_sync_tasks.len(), 2);
    assert_eq!(state.snapshot_tasks.len(), 2);
    for task in &state.cloud_sync_tasks {
        assert_eq!(task.attributes["bucket"], json!(BUCKET));
        assert!(task.encryption);
    }
    assert!(state.snmp.v3);
    assert_eq!(state.snmp.community, "");
    assert_eq!(
        state.dataset("pool0").unwrap().user_properties["com.dtctoday:device-guid"],
        GUID,
        "the document's GUID is on the root pool"
    );

    // The report says so.
    assert_eq!(report.agent.config_source, ConfigSource::Central);
    assert_eq!(report.agent.mode, Mode::Enforce);
    assert_eq!(report.device.guid.as_deref(), Some(GUID));
    assert_eq!(report.device.guid_source, Some(GuidSource::Central));
    assert_eq!(report.device.root_pool.as_deref(), Some("pool0"));
    assert_eq!(report.device.hostname.as_deref(), Some("truenas-sim"));
    assert_eq!(report.device.api.as_deref(), Some(flavor.as_str()));
    let pools: Vec<&str> = report
        .device
        .pools
        .iter()
        .map(|p| p.name.as_str())
        .collect();
    assert_eq!(pools, ["pool0", "pool1"]);
    assert!(
        report.config.errors.is_empty(),
        "{:?}",
        report.config.errors
    );
    let targets: Vec<&str> = report
        .config
        .changes
        .iter()
        .map(|c| c.target.as_str())
        .collect();
    for want in [
        "credential",
        "cloud_sync:pool0",
        "cloud_sync:pool1",
        "snapshot_task:pool0",
        "snapshot_task:pool1",
        "snmp",
        "zfs:pool0",
    ] {
        assert!(targets.contains(&want), "{want} missing from {targets:?}");
    }
    assert_eq!(
        report.config.executed_actions,
        ["5f0c2a9e-first-run"],
        "the report keeps the executed action in central's record of the device"
    );
    let synced: Vec<&str> = report
        .health
        .cloud_sync
        .iter()
        .map(|c| c.pool.as_str())
        .collect();
    assert_eq!(synced, ["pool0", "pool1"]);
    assert!(
        !report.checklist.is_empty(),
        "the SOP checklist is reported"
    );
    let ids: Vec<&str> = report.checklist.iter().map(|c| c.id.as_str()).collect();
    assert!(ids.iter().any(|i| i.starts_with("cloud_sync.")), "{ids:?}");
    // Reported before any document too (the start report), and never a duplicate id.
    let all = reports(&sys.central).await;
    assert!(all.len() >= 2, "{}", all.len());
    let mut ids: Vec<_> = all.iter().map(|r| r.report_id).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), all.len());

    agent.stop().await;
    // What `status` reads from the state directory.
    let dir = StateDir::open(sys.files.state_path()).unwrap();
    let central = CentralState::load(&dir).unwrap().unwrap();
    assert_eq!(central.applied.unwrap().revision, 1);
    let daemon = DaemonRecord::load(&dir).unwrap().unwrap();
    assert_eq!(daemon.revision, Some(1));
    assert!(
        daemon.status.contains("revision 1 converged"),
        "{}",
        daemon.status
    );
    assert!(!daemon.last_plan.is_empty());
    for file in [
        "ownership.json",
        "identity.json",
        "daemon.json",
        "central.json",
    ] {
        assert!(sys.files.state_path().join(file).exists(), "{file}");
    }
}

per_flavour!(local first_boot_converges_and_reports);

async fn a_new_revision_is_applied_within_one_long_poll(flavor: ApiFlavor) {
    let sys = System::start_with(flavor, None).await;
    sys.central.publish(DEVICE, &document(1)).await;
    let agent = sys.agent().await;
    wait_for_report(&sys.central, "with revision 1 applied", applied(1)).await;
    // The agent now holds a 300 s long-poll and would otherwise ask again only
    // after a day: revision 2 arriving within the test's minute can only have
    // come through the held request.
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let mut doc = document(2);
    doc["cloud_sync"]["schedule"] = json!("30 1 * * *");
    sys.central.publish(DEVICE, &doc).await;
    let report = wait_for_report(&sys.central, "with revision 2 applied", applied(2)).await;
    let changed: Vec<_> = report
        .config
        .changes
        .iter()
        .map(|c| (c.target.as_str(), c.action.as_str(), c.fields.clone()))
        .collect();
    assert_eq!(
        changed,
        [
            ("cloud_sync:pool0", "update", vec!["schedule".to_owned()]),
            ("cloud_sync:pool1", "update", vec!["schedule".to_owned()]),
        ]
    );
    for task in sys.nas.sim.state().cloud_sync_tasks {
        assert_eq!(
            (task.schedule.minute.as_str(), task.schedule.hour.as_str()),
            ("30", "1")
        );
    }
    agent.stop().await;
}
per_flavour!(local a_new_revision_is_applied_within_one_long_poll);

async fn drift_is_put_back_and_reported_as_drift(flavor: ApiFlavor) {
    let sys = System::start_with(flavor, None).await;
    sys.central.publish(DEVICE, &document(1)).await;
    let mut options = crate::e2e_fixture::test_options(&sys.files.config);
    options.resync_interval = std::time::Duration::from_secs(2);
    let agent = crate::e2e_fixture::Running::start(&sys.files.config, options).await;
    wait_for_report(&sys.central, "with revision 1 applied", applied(1)).await;
    // Someone changes the schedule in the UI.
    sys.nas.sim.update_state(|s| {
        s.cloud_sync_tasks[0].schedule.hour = "5".into();
    });
    let report = wait_for_report(&sys.central, "with drift", |r| !r.config.drift.is_empty()).await;
    assert_eq!(report.config.revision, Some(1));
    assert!(
        report.config.changes.is_empty(),
        "a re-check reports drift, not changes"
    );
    let drift = &report.config.drift[0];
    assert!(drift.target.starts_with("cloud_sync:"), "{drift:?}");
    assert_eq!(drift.fields, ["schedule"]);
    assert!(drift.corrected);
    assert_eq!(sys.nas.sim.state().cloud_sync_tasks[0].schedule.hour, "0");
    agent.stop().await;
}
per_flavour!(local drift_is_put_back_and_reported_as_drift);

async fn a_periodic_pass_reads_the_nas_once_for_converge_and_health(flavor: ApiFlavor) {
    let sys = System::start_with(flavor, None).await;
    sys.central.publish(DEVICE, &document(1)).await;
    let mut options = crate::e2e_fixture::test_options(&sys.files.config);
    options.resync_interval = std::time::Duration::from_secs(1);
    let agent = crate::e2e_fixture::Running::start(&sys.files.config, options).await;
    wait_for_report(&sys.central, "with revision 1 applied", applied(1)).await;
    sys.nas.sim.clear_calls();
    let count = |method: &str| {
        sys.nas
            .sim
            .calls()
            .iter()
            .filter(|c| c.method == method)
            .count()
    };
    // `alert.list` is read once per health assessment; `snmp.config` only by the
    // NAS observation (converge's and, when it has none to reuse, health's).
    for _ in 0..600 {
        if count("alert.list") >= 3 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    agent.stop().await;
    let (assessments, snmp_reads) = (count("alert.list"), count("snmp.config"));
    assert!(
        assessments >= 3,
        "only {assessments} periodic passes in a minute"
    );
    // Each periodic pass converges, then assesses from the observation the
    // converge pass ended with: one observation per pass (plus one for a pass the
    // stop may have cut short after converging). Reading twice would be 2 per pass.
    assert!(
        snmp_reads <= assessments + 1,
        "{snmp_reads} snmp.config reads for {assessments} assessments"
    );
    assert!(
        sys.nas.writes().is_empty(),
        "a converged box is not written"
    );
}
per_flavour!(local a_periodic_pass_reads_the_nas_once_for_converge_and_health);

async fn scheduled_reports_ride_on_the_periodic_passes(flavor: ApiFlavor) {
    let sys = System::start_with(flavor, None).await;
    sys.central.publish(DEVICE, &document(1)).await;
    let mut options = crate::e2e_fixture::test_options(&sys.files.config);
    options.resync_interval = std::time::Duration::from_secs(2);
    options.report_interval = std::time::Duration::from_secs(2);
    let agent = crate::e2e_fixture::Running::start(&sys.files.config, options).await;
    wait_for_report(&sys.central, "with revision 1 applied", applied(1)).await;
    sys.nas.sim.clear_calls();
    let before = reports(&sys.central).await.len();
    tokio::time::sleep(std::time::Duration::from_secs(9)).await;
    agent.stop().await;
    let count = |method: &str| {
        sys.nas
            .sim
            .calls()
            .iter()
            .filter(|c| c.method == method)
            .count()
    };
    // `alert.list`: one per health assessment; `system.host_id`: one per
    // identity read, i.e. per periodic pass.
    let (assessments, passes) = (count("alert.list"), count("system.host_id"));
    let sent = reports(&sys.central).await.len() - before;
    assert!(passes >= 3, "only {passes} passes in 9 s");
    assert!(
        sent >= 3,
        "only {sent} reports in 9 s at a 2 s report interval"
    );
    // Reports are as frequent as configured, and each one comes from a pass's
    // own assessment: no separate health read for the schedule (that would be
    // about one more assessment per pass).
    assert!(
        assessments <= passes + 1,
        "{assessments} assessments for {passes} passes and {sent} reports"
    );
}
per_flavour!(local scheduled_reports_ride_on_the_periodic_passes);

async fn a_cloud_sync_run_is_reported_when_its_job_changes_state(flavor: ApiFlavor) {
    let sys = System::start_with(flavor, None).await;
    let mut doc = document(1);
    doc["actions"] = json!([]);
    sys.central.publish(DEVICE, &doc).await;
    let agent = sys.agent().await;
    wait_for_report(&sys.central, "with revision 1 applied", applied(1)).await;
    let before = reports(&sys.central).await.len();
    // The nightly run starts by cron (report interval: an hour).
    let task = sys.nas.sim.state().cloud_sync_tasks[0].id;
    sys.nas
        .sim
        .run_cloud_sync(i64::try_from(task).unwrap())
        .unwrap();
    let report = wait_for_report(&sys.central, "after the run", |r| {
        r.health
            .cloud_sync
            .iter()
            .any(|c| c.task_id == Some(task) && c.state == "SUCCESS")
    })
    .await;
    assert!(reports(&sys.central).await.len() > before);
    assert_eq!(
        report.config.state,
        truenas_agent::central::report::ConfigState::Applied
    );
    agent.stop().await;
}
per_flavour!(local a_cloud_sync_run_is_reported_when_its_job_changes_state);
