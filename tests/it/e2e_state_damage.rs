//! Damaged state files at start-up (issue 13.13): a truncated `central.json` no longer
//! stops the daemon (a restart loop under systemd) — it is rebuilt, keeping what reads —
//! and garbage in `reports.spool` is not reported to central as lost reports.

use tokio::task::LocalSet;
use truenas_agent::central::CentralState;
use truenas_agent::central::spool::SPOOL_FILE;
use truenas_agent::central::state::{AppliedDocument, Counters, DAMAGED_COPY, STATE_FILE};
use truenas_agent::state_dir::StateDir;

use crate::e2e_fixture::{
    DEVICE, Running, System, applied, document, reports, test_options, wait_for_report,
};

/// The state directory the agent is about to use, created the way the agent does.
fn state_dir(sys: &System) -> StateDir {
    StateDir::open(sys.files.state_path()).unwrap()
}

#[tokio::test]
async fn a_truncated_central_json_is_rebuilt_and_the_daemon_runs() {
    LocalSet::new()
        .run_until(Box::pin(async {
            let sys = System::start().await;
            let dir = state_dir(&sys);
            let before = CentralState {
                applied: Some(AppliedDocument {
                    revision: 1,
                    etag: None,
                    verified_by: "unsigned".into(),
                    at: chrono::Utc::now(),
                    digest: None,
                }),
                counters: Counters {
                    fetches: 99,
                    ..Counters::default()
                },
                ..CentralState::default()
            };
            dir.write_json(STATE_FILE, &before).unwrap();
            let path = dir.file(STATE_FILE);
            let whole = std::fs::read(&path).unwrap();
            // Cut inside `counters` (the parts after it are lost with it).
            let counters = String::from_utf8_lossy(&whole)
                .find("\"counters\"")
                .unwrap();
            let cut = counters + 20;
            truenas_agent::fs::write_atomic(&path, &whole[..cut], 0o600).unwrap();

            sys.central.publish(DEVICE, &document(2)).await;
            let agent = Running::try_start(&sys.files.config, test_options(&sys.files.config))
                .await
                .unwrap_or_else(|e| {
                    panic!(
                        "the daemon refused to start: {}",
                        truenas_agent::fault::error_chain(&e)
                    )
                });
            wait_for_report(&sys.central, "with revision 2 applied", applied(2)).await;
            agent.stop().await;

            let after = CentralState::load(&dir).unwrap().unwrap();
            let rebuilt = after.rebuilt.expect("the rebuild is recorded for status");
            assert_eq!(rebuilt.kept, ["applied"]);
            assert_eq!(after.applied.unwrap().revision, 2);
            assert_eq!(
                std::fs::read(dir.file(DAMAGED_COPY)).unwrap(),
                &whole[..cut],
                "the damaged bytes are kept for inspection"
            );
        }))
        .await;
}

#[tokio::test]
async fn garbage_in_the_spool_is_not_reported_as_lost_reports() {
    LocalSet::new()
        .run_until(Box::pin(async {
            let sys = System::start().await;
            let dir = state_dir(&sys);
            truenas_agent::fs::write_atomic(
                &dir.file(SPOOL_FILE),
                b"this is not a spool record\n\x00\x00\x00garbage",
                0o600,
            )
            .unwrap();
            sys.central.publish(DEVICE, &document(1)).await;
            let agent = Running::start(&sys.files.config, test_options(&sys.files.config)).await;
            wait_for_report(&sys.central, "with revision 1 applied", applied(1)).await;
            agent.stop().await;

            let announced: u64 = reports(&sys.central)
                .await
                .iter()
                .map(|r| r.agent.dropped_reports)
                .sum();
            assert_eq!(announced, 0, "nothing was lost, nothing is announced");
            let counters = CentralState::load(&dir).unwrap().unwrap().counters;
            assert_eq!(counters.reports_lost, 0);
        }))
        .await;
}
