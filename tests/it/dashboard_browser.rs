//! The dashboard in a real headless Chromium (`browser`), served by central's running
//! service (what `truenas-central serve` runs) on SQLite and on a real PostgreSQL: seven
//! simulated devices report over the protocol; log in through the form, see the fleet in
//! different states (healthy, overdue, failing, silent, refused, …) in the right order,
//! open a device, trigger "run a first backup now" and see the new revision (and the
//! device fetch it), disable the device's token (and see the device refused). The
//! screenshots go to a temp dir; with `UPDATE_SCREENSHOTS=1` they replace
//! `docs/dashboard-*.png` (run it with the `sqlite` filter).

use std::path::PathBuf;
use std::time::Duration;

use truenas_central::config::CentralConfig;

use crate::browser::{Browser, png_size};
use crate::central_db::Env;
use crate::dashboard_fixture::{
    Dash, FLEET_ORDER, OPERATOR_TOKEN, client, populate_fleet_live, start_time,
};

const WAIT: Duration = Duration::from_secs(30);

/// Where the screenshots go.
fn shots() -> (PathBuf, Option<tempfile::TempDir>) {
    if std::env::var_os("UPDATE_SCREENSHOTS").is_some() {
        (crate::support::repo_root().join("docs"), None)
    } else {
        let tmp = tempfile::tempdir().unwrap();
        (tmp.path().to_owned(), Some(tmp))
    }
}

async fn shoot(browser: &Browser, dir: &std::path::Path, name: &str) {
    let path = dir.join(name);
    browser.save_screenshot(&path).await;
    let (width, height) = png_size(&std::fs::read(&path).unwrap()).expect("a PNG");
    assert!(width >= 1000 && height >= 600, "{name}: {width}x{height}");
}

/// Positions of the device names in the fleet table's text, in page order.
fn order_in(text: &str) -> Vec<&'static str> {
    let mut found: Vec<(usize, &'static str)> = FLEET_ORDER
        .iter()
        .filter_map(|name| {
            // `nas-new` must not match inside another name: match whole lines' starts.
            text.lines()
                .position(|l| l.starts_with(name) && !l[name.len()..].starts_with('-'))
                .map(|i| (i, *name))
        })
        .collect();
    found.sort_unstable();
    found.into_iter().map(|(_, n)| n).collect()
}

mod an_operator_logs_in_sees_the_fleet_opens_a_device_and_acts {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sqlite() {
        super::an_operator_logs_in_sees_the_fleet_opens_a_device_and_acts(
            crate::central_db::Env::sqlite().await,
        )
        .await;
    }
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres() {
        super::an_operator_logs_in_sees_the_fleet_opens_a_device_and_acts(
            crate::central_db::Env::postgres().await,
        )
        .await;
    }
}

/// `GET /v1/config` as the device `name` does (its token): the status.
async fn device_fetch(d: &Dash, name: &str) -> u16 {
    client()
        .get(d.url("/v1/config"))
        .bearer_auth(format!("token-{name}"))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

async fn an_operator_logs_in_sees_the_fleet_opens_a_device_and_acts(env: Env) {
    // The clock a little after the devices' registration (real time), as in production.
    let later = start_time() + chrono::Duration::minutes(10);
    let d = Dash::start(env, CentralConfig::default(), later).await;
    populate_fleet_live(&d).await;
    let (dir, _keep) = shots();
    let browser = Browser::start().await;
    // Not logged in: the fleet page sends the browser to the login form.
    browser.goto(&d.url("/")).await;
    assert_eq!(browser.title().await, "Log in · TrueNAS central");
    assert!(browser.current_url().await.ends_with("/login"));
    // A device's token is not an operator's.
    browser.fill("#token", "token-nas-healthy").await;
    browser.click("#login").await;
    browser
        .wait_text("#login-error", "Unknown or disabled operator token", WAIT)
        .await;
    shoot(&browser, &dir, "dashboard-login.png").await;
    browser.fill("#token", OPERATOR_TOKEN).await;
    browser.click("#login").await;
    let summary = browser.wait_text("#summary", "7 device(s)", WAIT).await;
    assert_eq!(
        summary,
        "7 device(s): 5 with problems, 1 unknown, 0 with notices, 1 healthy"
    );
    let table = browser.text("#fleet tbody").await;
    assert_eq!(order_in(&table), FLEET_ORDER, "{table}");
    assert!(table.contains("backup overdue"), "{table}");
    shoot(&browser, &dir, "dashboard-fleet.png").await;
    // The failing device's page: what its newest report says.
    browser.click("#device-nas-failing a").await;
    browser.wait_text("#device h1", "nas-failing", WAIT).await;
    let conditions = browser.text("#conditions").await;
    assert!(
        conditions.contains("Backup of pool pool0 failing: last run FAILED (auth)"),
        "{conditions}"
    );
    let status = browser.text("#backups").await;
    assert!(status.contains("rclone: 401 unauthorized"), "{status}");
    let document = browser.text("#document").await;
    assert!(document.contains("(secret, masked)"), "{document}");
    crate::support::assert_no_canary("the device page", &document);
    shoot(&browser, &dir, "dashboard-device.png").await;
    // Run a first backup now: a new revision appears, with the action in it.
    browser.click("#first-backup").await;
    let done = browser
        .wait_text("#done", "Published revision 2", WAIT)
        .await;
    assert!(done.contains("run_cloud_sync"), "{done}");
    let document = browser.text("#document").await;
    assert!(
        document.contains("\"type\": \"run_cloud_sync\""),
        "{document}"
    );
    assert!(
        browser
            .text("#placement")
            .await
            .contains("Published revision\n2")
    );
    assert_eq!(
        d.db()
            .document("nas-failing")
            .await
            .unwrap()
            .unwrap()
            .revision,
        2
    );
    shoot(&browser, &dir, "dashboard-action.png").await;
    // The device fetches the new revision from the same server.
    let fetched = client()
        .get(d.url("/v1/config"))
        .bearer_auth("token-nas-failing")
        .send()
        .await
        .unwrap();
    assert_eq!(fetched.status(), 200);
    let envelope: serde_json::Value = fetched.json().await.unwrap();
    let payload = base64::Engine::decode(
        &base64::engine::general_purpose::STANDARD,
        envelope["payload"].as_str().unwrap(),
    )
    .unwrap();
    let served: serde_json::Value = serde_json::from_slice(&payload).unwrap();
    assert_eq!(served["revision"], 2);
    assert_eq!(served["actions"][0]["type"], "run_cloud_sync");
    // Disable its token from the page: the device is refused (403), then accepted again.
    browser.click("#toggle-token").await;
    browser.wait_text("#done", "Token disabled", WAIT).await;
    assert!(d.db().is_disabled("nas-failing").await.unwrap());
    assert_eq!(device_fetch(&d, "nas-failing").await, 403);
    browser.click("#toggle-token").await;
    browser.wait_text("#done", "Token enabled", WAIT).await;
    assert_eq!(device_fetch(&d, "nas-failing").await, 200);
    // Back on the fleet page the order still holds.
    browser.goto(&d.url("/")).await;
    let table = browser.text("#fleet tbody").await;
    assert_eq!(order_in(&table), FLEET_ORDER, "{table}");
    browser.close().await;
}
