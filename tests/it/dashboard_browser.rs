//! The dashboard in a real headless Chromium (`browser`): log in through the form, see a
//! fleet of seven simulated devices in different states in the right order, open a device,
//! trigger "run a first backup now" and see the new revision. The screenshots go to a temp
//! dir; with `UPDATE_SCREENSHOTS=1` they replace `docs/dashboard-*.png`.

use std::path::PathBuf;
use std::time::Duration;

use truenas_central::config::CentralConfig;

use crate::browser::{Browser, png_size};
use crate::central_db::Env;
use crate::dashboard_fixture::{Dash, FLEET_ORDER, OPERATOR_TOKEN, populate_fleet, start_time};

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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_logs_in_sees_the_fleet_opens_a_device_and_acts() {
    // The clock a little after the devices' registration (real time), as in production.
    let later = start_time() + chrono::Duration::minutes(10);
    let d = Dash::start(Env::sqlite().await, CentralConfig::default(), later).await;
    populate_fleet(d.db(), d.now()).await;
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
    // Disable its token from the page; the fleet shows it.
    browser.click("#toggle-token").await;
    browser.wait_text("#done", "Token disabled", WAIT).await;
    assert!(d.db().is_disabled("nas-failing").await.unwrap());
    browser.close().await;
}
