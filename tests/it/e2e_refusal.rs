//! End to end: documents the agent must refuse — signed by an unknown key, a tampered
//! signature, a lower revision than the one applied, an invalid document — write nothing
//! on the NAS (the simulator's call record has no writing call), are reported with
//! `config.state = refused` and errors with paths, and are recorded for `status`.

use serde_json::json;
use truenas_agent::central::CentralState;
use truenas_agent::central::dsse::{self, CONFIG_PAYLOAD_TYPE};
use truenas_agent::central::report::{ConfigState, Report};
use truenas_agent::daemon::DaemonRecord;
use truenas_agent::middleware::ApiFlavor;
use truenas_agent::state_dir::StateDir;

use crate::central_fixture::{Scripted, ScriptedServer};
use crate::e2e_fixture::{
    AgentFiles, DEVICE, Nas, Running, System, applied, document, refused, signing_key,
    test_options, wait_for_report,
};

fn daemon_record(sys: &System) -> DaemonRecord {
    DaemonRecord::load(&StateDir::open(sys.files.state_path()).unwrap())
        .unwrap()
        .unwrap()
}

async fn a_document_signed_by_an_unknown_key_is_refused_and_nothing_is_written(flavor: ApiFlavor) {
    // Central signs with key 1; the agent trusts only key 9.
    let sys = System::start_with(flavor, Some(&signing_key(9))).await;
    sys.central.publish(DEVICE, &document(1)).await;
    let agent = sys.agent().await;
    let report = wait_for_report(&sys.central, "refusing the document", refused).await;
    assert_eq!(
        report.config.revision, None,
        "an unverified payload is not read"
    );
    assert_eq!(report.config.errors.len(), 1);
    assert_eq!(report.config.errors[0].path, "(envelope)");
    assert!(
        report.config.errors[0]
            .message
            .contains("no signature on the document verifies under a trusted key"),
        "{:?}",
        report.config.errors
    );
    agent.stop().await;
    assert_eq!(sys.nas.writes(), Vec::<String>::new(), "zero writes");
    let dir = StateDir::open(sys.files.state_path()).unwrap();
    let central = CentralState::load(&dir).unwrap().unwrap();
    assert!(central.applied.is_none());
    assert!(central.last_refusal.is_some());
    let daemon = daemon_record(&sys);
    assert_eq!(daemon.config_state, ConfigState::Refused);
    assert!(daemon.status.contains("REFUSED"), "{}", daemon.status);
}
per_flavour!(local a_document_signed_by_an_unknown_key_is_refused_and_nothing_is_written);

async fn a_tampered_signature_is_refused_and_nothing_is_written(flavor: ApiFlavor) {
    let key = signing_key(1);
    let good = serde_json::to_vec(&document(1)).unwrap();
    let mut envelope = dsse::sign(CONFIG_PAYLOAD_TYPE, &good, &key, None);
    // The signature is the trusted key's, over other bytes.
    envelope.payload = serde_json::to_vec(&document(2)).unwrap();
    let server = ScriptedServer::start(vec![
        Scripted::status(202), // the start report
        Scripted::status(200)
            .header("etag", "\"t1\"")
            .body(envelope.to_json()),
        Scripted::status(202), // the refusal report
        Scripted::status(304),
    ])
    .await;
    let nas = Nas::start(flavor).await;
    let files = AgentFiles::new(&server.url(), &[&key], &nas.url(), 300);
    let agent = Running::start(&files.config, test_options(&files.config)).await;
    let mut refusal: Option<Report> = None;
    for _ in 0..300 {
        refusal = server
            .seen()
            .iter()
            .filter(|s| s.uri.path() == "/v1/reports")
            .filter_map(|s| truenas_agent::central::report::decode(&s.body).ok())
            .find(refused);
        if refusal.is_some() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let refusal = refusal.expect("a refusal report");
    assert_eq!(refusal.config.errors[0].path, "(envelope)");
    agent.stop().await;
    assert_eq!(nas.writes(), Vec::<String>::new(), "zero writes");
}
per_flavour!(local a_tampered_signature_is_refused_and_nothing_is_written);

async fn a_lower_revision_is_refused_as_a_rollback_and_the_applied_one_stays(flavor: ApiFlavor) {
    let sys = System::start_with(flavor, None).await;
    sys.central.publish(DEVICE, &document(5)).await;
    let agent = sys.agent().await;
    wait_for_report(&sys.central, "with revision 5 applied", applied(5)).await;
    sys.nas.sim.clear_calls();
    sys.central.publish(DEVICE, &document(4)).await;
    let report = wait_for_report(&sys.central, "refusing revision 4", refused).await;
    assert_eq!(report.config.revision, Some(4));
    assert_eq!(report.config.errors[0].path, "revision");
    assert!(
        report.config.errors[0].message.contains("rollback"),
        "{:?}",
        report.config.errors
    );
    assert_eq!(sys.nas.writes(), Vec::<String>::new(), "zero writes");
    assert!(
        daemon_record(&sys)
            .status
            .contains("revision 4 REFUSED (see status); enforcing revision 5"),
        "{}",
        daemon_record(&sys).status
    );
    // A valid newer document clears the refusal.
    sys.central.publish(DEVICE, &document(6)).await;
    wait_for_report(&sys.central, "with revision 6 applied", applied(6)).await;
    agent.stop().await;
    assert_eq!(daemon_record(&sys).config_state, ConfigState::Applied);
}
per_flavour!(local a_lower_revision_is_refused_as_a_rollback_and_the_applied_one_stays);

async fn an_invalid_document_is_refused_with_every_path_and_nothing_is_written(flavor: ApiFlavor) {
    let sys = System::start_with(flavor, None).await;
    let mut doc = document(3);
    doc["device"]["location_uuid"] = json!("not-a-uuid");
    doc["cloud_sync"]["chunk_size_mb"] = json!(96); // a typo: unknown key
    sys.central.publish(DEVICE, &doc).await;
    let agent = sys.agent().await;
    let report = wait_for_report(&sys.central, "refusing revision 3", refused).await;
    agent.stop().await;
    assert_eq!(report.config.revision, Some(3));
    let paths: Vec<&str> = report
        .config
        .errors
        .iter()
        .map(|e| e.path.as_str())
        .collect();
    assert!(paths.contains(&"device.location_uuid"), "{paths:?}");
    assert!(
        paths.iter().any(|p| p.contains("chunk_size_mb")),
        "{paths:?}"
    );
    assert_eq!(sys.nas.writes(), Vec::<String>::new(), "zero writes");
    let dir = StateDir::open(sys.files.state_path()).unwrap();
    let central = CentralState::load(&dir).unwrap().unwrap();
    assert_eq!(central.counters.documents_refused, 1);
    assert_eq!(
        central.last_fetch.unwrap().outcome,
        truenas_agent::central::state::FetchOutcome::Refused,
        "what `status` shows"
    );
    let refusal = central.last_refusal.unwrap();
    assert_eq!(refusal.revision, Some(3));
    assert!(
        refusal.reason.contains("device.location_uuid"),
        "{}",
        refusal.reason
    );
}
per_flavour!(local an_invalid_document_is_refused_with_every_path_and_nothing_is_written);
