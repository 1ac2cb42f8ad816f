//! End to end: how the agent starts and what it leaves behind — a token file others can
//! read stops the start (in-process and through the real binary) with a message naming
//! the file, the mode and the fix; and no secret from the document appears in any report
//! central stored, any log line, the spool or any state file, through a whole life
//! (apply, a failed Cloud Sync run whose error echoes a secret, a refused document,
//! shutdown).

use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use serde_json::json;
use tokio::task::LocalSet;
use truenas_agent::middleware::ApiFlavor;

use crate::central_fixture::LogCapture;
use crate::e2e_fixture::{
    AgentFiles, DEVICE, Nas, Running, System, applied, document, refused, reports, test_options,
    wait_for_report,
};
use crate::support::{assert_no_canary, assert_no_canary_in_dir};

fn open_token(files: &AgentFiles) {
    std::fs::set_permissions(files.token_path(), std::fs::Permissions::from_mode(0o644)).unwrap();
}

#[tokio::test]
async fn a_token_file_others_can_read_stops_the_start() {
    LocalSet::new()
        .run_until(async {
            let nas = Nas::start(ApiFlavor::V25_10).await;
            let files = AgentFiles::new("http://127.0.0.1:9/", &[], &nas.url(), 0);
            open_token(&files);
            let Err(err) = Running::try_start(&files.config, test_options(&files.config)).await
            else {
                panic!("the agent started with a token file of mode 0644");
            };
            let text = format!("{:#}", anyhow::Error::new(err));
            assert!(text.contains("mode 0644"), "{text}");
            assert!(
                text.contains(&files.token_path().display().to_string()),
                "{text}"
            );
            assert!(text.contains("chmod 600"), "{text}");
            assert_no_canary("the error", &text);
            assert!(nas.sim.calls().is_empty(), "refused before connecting");
        })
        .await;
}

#[test]
fn the_binary_refuses_a_token_file_others_can_read() {
    let dir = tempfile::tempdir().unwrap();
    let files = AgentFiles::new(
        "http://127.0.0.1:9/",
        &[],
        &format!("unix://{}", dir.path().join("nothing.sock").display()),
        0,
    );
    open_token(&files);
    let out = crate::support::agent_command()
        .arg("--config")
        .arg(files.config_path())
        .arg("run")
        .timeout(Duration::from_secs(60))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("cannot use the device token"), "{stderr}");
    assert!(stderr.contains("mode 0644"), "{stderr}");
    assert!(stderr.contains("Fix: chmod 600"), "{stderr}");
    assert_no_canary("stderr", &stderr);
    assert_no_canary("stdout", &String::from_utf8_lossy(&out.stdout));
}

async fn no_secret_from_the_document_reaches_a_report_log_line_spool_or_state_file(
    flavor: ApiFlavor,
) {
    let logs = LogCapture::start();
    let sys = System::start_with(flavor, None).await;
    sys.central.publish(DEVICE, &document(1)).await;
    let agent = sys.agent().await;
    wait_for_report(&sys.central, "with revision 1 applied", applied(1)).await;

    // A failed run whose rclone output echoes the application key.
    sys.nas
        .sim
        .fail_next_sync("Failed to authorize with key CANARY-B2-APPKEY-7f3a9c: 401 unauthorized");
    let task = sys.nas.sim.state().cloud_sync_tasks[0].id;
    sys.nas
        .sim
        .run_cloud_sync(i64::try_from(task).unwrap())
        .unwrap();
    wait_for_report(&sys.central, "after the failed run", |r| {
        r.health
            .cloud_sync
            .iter()
            .any(|c| c.task_id == Some(task) && c.state == "FAILED")
    })
    .await;

    // An invalid revision 2, with every secret in it.
    let mut bad = document(2);
    bad["cloud_sync"]["typo"] = json!("CANARY-ENC-PASSWORD-2b8e41");
    sys.central.publish(DEVICE, &bad).await;
    wait_for_report(&sys.central, "refusing revision 2", refused).await;
    agent.stop().await;

    for report in reports(&sys.central).await {
        assert_no_canary("a stored report", &serde_json::to_string(&report).unwrap());
    }
    sys.central.assert_no_canary_in_data();
    assert_no_canary_in_dir(&sys.files.state_path());
    // The middleware did get them (the box is configured), nothing else did.
    let scenario = serde_json::to_string(&sys.nas.sim.state()).unwrap();
    assert!(scenario.contains("CANARY-B2-APPKEY-7f3a9c"));
    let text = logs.text();
    assert!(
        text.contains("reconcile pass finished"),
        "the capture saw the agent"
    );
    assert_no_canary("the agent's logs", &text);
}
per_flavour!(local no_secret_from_the_document_reaches_a_report_log_line_spool_or_state_file);
