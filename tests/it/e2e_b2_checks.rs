//! The daemon's B2 checks follow the config's `[b2]` section (issue 13.14): pointed at a
//! local fake B2 it makes its calls there; `check_interval_secs = 0` makes none; a restart
//! within the interval does not check again.

use tokio::task::LocalSet;

use crate::e2e_fixture::{
    AgentFiles, DEVICE, KEY_ID, Running, System, applied, document, reports, test_options,
    wait_for_report,
};
use crate::fake_b2::{Config, FakeB2};

const APP_KEY: &str = "CANARY-B2-APPKEY-7f3a9c";

/// A fake B2 that knows the example document's key (the one `apply` puts into the
/// simulated box's credential).
async fn fake_b2() -> FakeB2 {
    let mut config = Config::compliant(APP_KEY, &["pool0", "pool1"]);
    config.key_id = KEY_ID.into();
    FakeB2::start(config).await
}

/// The system with the agent's `[b2]` section set to `b2`.
async fn system(b2: &str) -> System {
    let mut sys = System::start().await;
    sys.files = AgentFiles::with_b2(
        &sys.central.url(),
        &[&sys.central.key],
        &sys.nas.url(),
        300,
        b2,
    );
    sys
}

#[tokio::test]
async fn the_daemon_checks_the_b2_api_the_config_names() {
    LocalSet::new()
        .run_until(Box::pin(async {
            let fake = fake_b2().await;
            let sys = system(&format!(
                "check_interval_secs = 3600\napi_url = \"{}\"",
                fake.base
            ))
            .await;
            sys.central.publish(DEVICE, &document(1)).await;
            let agent = sys.agent().await;
            let report = wait_for_report(&sys.central, "with revision 1 applied", applied(1)).await;
            agent.stop().await;

            // The check went to the fake: signed in with the document's key (v4, and the
            // v1 probe), looked the bucket up.
            assert!(
                fake.count("/b2api/v4/b2_authorize_account") >= 1,
                "{:?}",
                fake.requests()
            );
            assert!(
                fake.count("/b2api/v1/b2_authorize_account") >= 1,
                "{:?}",
                fake.requests()
            );
            assert!(fake.count("/b2_list_buckets") >= 1, "{:?}", fake.requests());
            // …and its answers are in the report's checklist (the compliant fake bucket).
            let bucket = report
                .checklist
                .iter()
                .find(|c| c.id == "b2.bucket_name")
                .unwrap_or_else(|| panic!("no b2.bucket_name in {:?}", report.checklist));
            assert_eq!(
                bucket.status,
                truenas_agent::central::report::CheckStatus::Pass,
                "{bucket:?}"
            );

            // A restart within the interval does not check again (health.json remembers
            // the last check).
            let before = fake.requests().len();
            let old: Vec<_> = reports(&sys.central)
                .await
                .iter()
                .map(|r| r.report_id)
                .collect();
            let agent = Running::start(&sys.files.config, test_options(&sys.files.config)).await;
            // A report after the restart with the document enforced and the checklist
            // assessed (the point where a due check would have run).
            wait_for_report(&sys.central, "with the checklist after the restart", |r| {
                !old.contains(&r.report_id) && applied(1)(r) && !r.checklist.is_empty()
            })
            .await;
            agent.stop().await;
            assert_eq!(fake.requests().len(), before, "{:?}", fake.requests());
        }))
        .await;
}

#[tokio::test]
async fn with_b2_checks_off_the_daemon_never_calls_b2() {
    LocalSet::new()
        .run_until(Box::pin(async {
            let fake = fake_b2().await;
            let sys = system(&format!(
                "check_interval_secs = 0\napi_url = \"{}\"",
                fake.base
            ))
            .await;
            sys.central.publish(DEVICE, &document(1)).await;
            let agent = sys.agent().await;
            let report = wait_for_report(&sys.central, "with revision 1 applied", applied(1)).await;
            agent.stop().await;
            assert!(fake.requests().is_empty(), "{:?}", fake.requests());
            // The B2 items say they were not checked — never a pass.
            let bucket = report
                .checklist
                .iter()
                .find(|c| c.id == "b2.bucket_name")
                .unwrap_or_else(|| panic!("no b2.bucket_name in {:?}", report.checklist));
            assert_ne!(
                bucket.status,
                truenas_agent::central::report::CheckStatus::Pass,
                "{bucket:?}"
            );
        }))
        .await;
}
