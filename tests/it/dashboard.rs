//! The fleet dashboard over HTTP (in-process router, SQLite and a real PostgreSQL):
//! operator authentication (bearer token, login form, session cookie, CSRF), the fleet
//! page's order and filters, the device page, the actions, escaping of hostile text,
//! masked documents, `/metrics`, and the shipped Prometheus alert rules.

use std::collections::BTreeSet;

use axum::http::StatusCode;
use truenas_agent::central::report::{CheckStatus, ChecklistItem, ConfigState, Report};
use truenas_central::config::CentralConfig;
use truenas_central::db::Placement;
use truenas_central::store::token_hash;

use crate::central_db::Env;
use crate::dashboard_fixture::{
    Dash, FLEET_ORDER, FormExt as _, LOC_NORTH, OPERATOR_TOKEN, ORG_B, add_device, client, deliver,
    populate_fleet, populate_fleet_live, report, start_time,
};
use crate::support::assert_no_canary;

macro_rules! on_both {
    ($($case:ident),* $(,)?) => {$(
        mod $case {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                super::$case(crate::central_db::Env::sqlite().await).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                super::$case(crate::central_db::Env::postgres().await).await;
            }
        }
    )*};
}

on_both!(fleet_page_is_worst_first_and_filters);

async fn dash(env: Env) -> Dash {
    Dash::start(env, CentralConfig::default(), start_time()).await
}

/// Device names in the order the page lists them.
fn listed(html: &str) -> Vec<String> {
    html.match_indices("<tr class=\"device ")
        .filter_map(|(i, _)| {
            let rest = &html[i..];
            let id = rest.find("id=\"device-")? + "id=\"device-".len();
            let end = rest[id..].find('"')?;
            Some(rest[id..id + end].to_owned())
        })
        .collect()
}

async fn fleet_page_is_worst_first_and_filters(env: Env) {
    let d = dash(env).await;
    populate_fleet_live(&d).await;
    let (status, html) = d.get("/").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(listed(&html), FLEET_ORDER, "{html}");
    assert!(html.contains("7 device(s): 5 with problems, 1 unknown, 0 with notices, 1 healthy"));
    // One line each with the age of the last good backup per pool.
    assert!(html.contains("pool0: 4d 0h ago"), "{html}");
    assert!(html.contains("pool0: 3h 0m ago"), "{html}");
    let (_, org_b) = d.get(&format!("/?org={ORG_B}")).await;
    assert_eq!(
        listed(&org_b),
        ["nas-silent", "nas-refused", "nas-checklist"]
    );
    let (_, north) = d.get(&format!("/?location={LOC_NORTH}")).await;
    assert_eq!(
        listed(&north),
        ["nas-overdue", "nas-refused", "nas-new", "nas-healthy"]
    );
    let (_, both) = d.get(&format!("/?org={ORG_B}&location={LOC_NORTH}")).await;
    assert_eq!(listed(&both), ["nas-refused"]);
    assert_no_canary("the fleet page", &html);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn device_tokens_never_open_the_dashboard() {
    let d = dash(Env::sqlite().await).await;
    add_device(d.db(), "nas-01", ORG_B, (LOC_NORTH, "North")).await;
    let http = client();
    for path in ["/", "/devices/nas-01", "/metrics"] {
        let r = http
            .get(d.url(path))
            .bearer_auth("token-nas-01")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401, "{path} with a device token");
        assert_eq!(r.headers()["www-authenticate"], "Bearer");
        let ok = http
            .get(d.url(path))
            .bearer_auth(OPERATOR_TOKEN)
            .send()
            .await
            .unwrap();
        assert_eq!(ok.status(), 200, "{path} with the operator token");
    }
    // A device token in the login form is refused as well.
    let r = http
        .post(d.url("/login"))
        .form(&[("token", "token-nas-01")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert!(r.headers().get("set-cookie").is_none());
    // No credential: a page goes to the login form, an API call gets 401.
    let r = http.get(d.url("/")).send().await.unwrap();
    assert_eq!(r.status(), 303);
    assert_eq!(r.headers()["location"], "/login");
    assert_eq!(
        http.get(d.url("/metrics")).send().await.unwrap().status(),
        401
    );
    // A bad bearer token is not rescued by anything else, and a disabled operator is out.
    let r = http
        .get(d.url("/"))
        .bearer_auth("nope")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    d.db()
        .set_operator_disabled("ops@example.com", true)
        .await
        .unwrap();
    let r = http
        .get(d.url("/"))
        .bearer_auth(OPERATOR_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_tokens_never_fetch_documents_nor_post_reports() {
    let d = dash(Env::sqlite().await).await;
    add_device(d.db(), "nas-01", ORG_B, (LOC_NORTH, "North")).await;
    let http = client();
    // The same server, the same listener: the operator's token opens the dashboard …
    let r = http
        .get(d.url("/"))
        .bearer_auth(OPERATOR_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    // … and the device's token fetches its document …
    let r = http
        .get(d.url("/v1/config"))
        .bearer_auth("token-nas-01")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    // … but the operator's token neither fetches a document nor posts a report.
    let r = http
        .get(d.url("/v1/config"))
        .bearer_auth(OPERATOR_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let body = r.text().await.unwrap();
    assert!(!body.contains("CANARY"), "{body}");
    let now = d.now();
    let r = http
        .post(d.url("/v1/reports"))
        .bearer_auth(OPERATOR_TOKEN)
        .header("content-type", "application/json")
        .body(serde_json::to_vec(&report(now, "SUCCESS", Some(now), &[])).unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(d.db().report_count().await.unwrap(), 0);
}

/// The session cookie of a login (`name=value`), after checking its attributes.
async fn log_in(d: &Dash) -> String {
    let r = client()
        .post(d.url("/login"))
        .header("origin", format!("http://{}", d.addr))
        .form(&[("token", OPERATOR_TOKEN)])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    assert_eq!(r.headers()["location"], "/");
    let cookie = r.headers()["set-cookie"].to_str().unwrap().to_owned();
    for attribute in ["Secure", "HttpOnly", "SameSite=Lax", "Path=/"] {
        assert!(cookie.contains(attribute), "{cookie}");
    }
    assert!(
        cookie.starts_with("__Host-truenas-central-session="),
        "{cookie}"
    );
    assert!(!cookie.contains(OPERATOR_TOKEN));
    cookie.split(';').next().unwrap().to_owned()
}

fn csrf_of(html: &str) -> String {
    let at = html.find("name=\"csrf\" value=\"").unwrap() + "name=\"csrf\" value=\"".len();
    html[at..at + 64].to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_sets_a_session_cookie_and_csrf_guards_the_actions() {
    let d = dash(Env::sqlite().await).await;
    add_device(d.db(), "nas-01", ORG_B, (LOC_NORTH, "North")).await;
    let cookie = log_in(&d).await;
    let http = client();
    let page = http
        .get(d.url("/devices/nas-01"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    for (name, value) in [
        ("cache-control", "no-store"),
        ("x-frame-options", "DENY"),
        ("referrer-policy", "same-origin"),
    ] {
        assert_eq!(page.headers()[name], value);
    }
    assert!(
        page.headers()["content-security-policy"]
            .to_str()
            .unwrap()
            .contains("default-src 'none'")
    );
    let html = page.text().await.unwrap();
    assert!(html.contains("ops@example.com"));
    let csrf = csrf_of(&html);
    let origin = format!("http://{}", d.addr);
    let post = |path: &'static str, csrf: String, origin: String| {
        let http = http.clone();
        let url = d.url(path);
        let cookie = cookie.clone();
        async move {
            http.post(url)
                .header("cookie", cookie)
                .header("origin", origin)
                .form(&[("csrf", &csrf)])
                .send()
                .await
                .unwrap()
        }
    };
    // Without the token, with another session's token, or from another site: refused.
    let r = post("/devices/nas-01/disable", String::new(), origin.clone()).await;
    assert_eq!(r.status(), 403);
    let other = truenas_central::web::auth::csrf_token("another-session");
    let r = post("/devices/nas-01/disable", other, origin.clone()).await;
    assert_eq!(r.status(), 403);
    let r = post(
        "/devices/nas-01/disable",
        csrf.clone(),
        "https://evil.example".into(),
    )
    .await;
    assert_eq!(r.status(), 403);
    assert!(
        !d.db().is_disabled("nas-01").await.unwrap(),
        "nothing was done"
    );
    // With both: done.
    let r = post("/devices/nas-01/disable", csrf.clone(), origin.clone()).await;
    assert_eq!(r.status(), 303);
    assert_eq!(r.headers()["location"], "/devices/nas-01?done=disabled");
    assert!(d.db().is_disabled("nas-01").await.unwrap());
    let r = post("/devices/nas-01/enable", csrf.clone(), origin.clone()).await;
    assert_eq!(r.status(), 303);
    assert!(!d.db().is_disabled("nas-01").await.unwrap());
    // A bearer-token client needs no CSRF token (browsers never send the header by
    // themselves).
    let r = http
        .post(d.url("/devices/nas-01/disable"))
        .bearer_auth(OPERATOR_TOKEN)
        .form(&[("csrf", "")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    assert!(d.db().is_disabled("nas-01").await.unwrap());
    // Logout ends the session: the cookie no longer opens anything.
    assert_eq!(d.db().session_count().await.unwrap(), 1);
    let r = post("/logout", csrf, origin).await;
    assert_eq!(r.status(), 303);
    assert!(
        r.headers()["set-cookie"]
            .to_str()
            .unwrap()
            .contains("Max-Age=0")
    );
    assert_eq!(d.db().session_count().await.unwrap(), 0);
    let r = http
        .get(d.url("/"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303, "back to the login form");
    // A login from another site is refused.
    let r = http
        .post(d.url("/login"))
        .header("origin", "https://evil.example")
        .form(&[("token", OPERATOR_TOKEN)])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_expire_by_the_clock() {
    let d = dash(Env::sqlite().await).await;
    let cookie = log_in(&d).await;
    let get = || {
        client()
            .get(d.url("/"))
            .header("cookie", cookie.clone())
            .send()
    };
    assert_eq!(get().await.unwrap().status(), 200);
    d.clock
        .advance(chrono::Duration::hours(12) + chrono::Duration::seconds(1));
    assert_eq!(get().await.unwrap().status(), 303);
}

const HOSTILE: &str = "<script>alert('x')</script>\"><img src=x onerror=alert(1)>";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_text_is_rendered_inert() {
    let d = dash(Env::sqlite().await).await;
    let db = d.db();
    add_device(db, "nas-01", ORG_B, (LOC_NORTH, "North")).await;
    db.set_placement(
        "nas-01",
        &Placement {
            org_uuid: Some(format!("org{HOSTILE}")),
            location_uuid: Some(format!("loc{HOSTILE}")),
            location_name: Some(format!("Clinic {HOSTILE}")),
        },
    )
    .await
    .unwrap();
    let now = d.now();
    let mut r: Report = report(now, "FAILED", None, &["snmp.v3_only"]);
    r.device.hostname = Some(format!("host{HOSTILE}"));
    r.agent.version = format!("1.0{HOSTILE}");
    r.health.cloud_sync[0].pool = format!("pool{HOSTILE}");
    r.health.cloud_sync[0].message = Some(format!("rclone said {HOSTILE}"));
    r.health.cloud_sync[0].error_class = Some(format!("class{HOSTILE}"));
    r.config.state = ConfigState::Refused;
    r.config.errors = vec![truenas_agent::central::report::ConfigIssue {
        path: format!("path{HOSTILE}"),
        message: format!("message{HOSTILE}"),
    }];
    r.checklist.push(ChecklistItem {
        id: format!("id{HOSTILE}"),
        title: format!("title{HOSTILE}"),
        status: CheckStatus::Fail,
        detail: format!("detail{HOSTILE}"),
    });
    r.config.changes = vec![truenas_agent::central::report::Change {
        target: format!("target{HOSTILE}"),
        action: format!("action{HOSTILE}"),
        fields: vec![format!("field{HOSTILE}")],
    }];
    deliver(db, "nas-01", &r, now).await;
    for path in [
        "/",
        "/devices/nas-01",
        &format!("/?org=org{}", "%3Cscript%3E"),
    ] {
        let (status, html) = d.get(path).await;
        assert_eq!(status, StatusCode::OK, "{path}");
        for raw in ["<script", "<img", "onerror=alert(1)>", "\"><img"] {
            assert!(!html.contains(raw), "{path} carries raw `{raw}`: {html}");
        }
    }
    let (_, html) = d.get("/devices/nas-01").await;
    assert!(
        html.contains("host&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;&quot;&gt;&lt;img"),
        "the text is shown, escaped: {html}"
    );
    assert!(html.contains("detail&lt;script&gt;"));
    assert!(html.contains("target&lt;script&gt;"));
    // Metrics label values are escaped in their own way, and the names stay intact.
    let metrics = d.metrics().await;
    assert!(
        metrics.contains(
            r#"location_name="Clinic <script>alert('x')</script>\"><img src=x onerror=alert(1)>""#
        ),
        "{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_reaches_a_page_or_the_metrics() {
    let d = dash(Env::sqlite().await).await;
    populate_fleet(d.db(), d.now()).await;
    let (_, page) = d.get("/devices/nas-healthy").await;
    assert!(page.contains("•••••• (secret, masked)"), "{page}");
    assert!(
        page.contains("0024a1b2c3d4e5f0000000001"),
        "the key id is shown"
    );
    for path in [
        "/",
        "/devices/nas-healthy",
        "/devices/nas-refused",
        "/metrics",
        "/login",
    ] {
        let (_, body) = d.get(path).await;
        assert_no_canary(path, &body);
        assert!(!body.contains(OPERATOR_TOKEN), "{path}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn first_backup_publishes_the_next_revision_through_the_validated_path() {
    let d = dash(Env::sqlite().await).await;
    let db = d.db();
    add_device(db, "nas-01", ORG_B, (LOC_NORTH, "North")).await;
    let now = d.now();
    deliver(db, "nas-01", &report(now, "NEVER_RUN", None, &[]), now).await;
    let http = client();
    let post = |pool: &'static str| {
        http.post(d.url("/devices/nas-01/first-backup"))
            .bearer_auth(OPERATOR_TOKEN)
            .form(&[("pool", pool), ("csrf", "")])
            .send()
    };
    // A pool the device does not have: refused, nothing published.
    let r = post("pool7").await.unwrap();
    assert_eq!(r.status(), 400);
    assert!(
        r.text()
            .await
            .unwrap()
            .contains("pool `pool7` is not one of the device&#39;s pools (pool0)")
    );
    assert_eq!(db.document("nas-01").await.unwrap().unwrap().revision, 1);
    let r = post("pool0").await.unwrap();
    assert_eq!(r.status(), 303);
    assert_eq!(
        r.headers()["location"],
        "/devices/nas-01?done=first-backup&revision=2"
    );
    let doc = db.document("nas-01").await.unwrap().unwrap();
    assert_eq!(doc.revision, 2);
    let value: serde_json::Value = serde_json::from_slice(&doc.bytes).unwrap();
    let actions = value["actions"].as_array().unwrap();
    assert_eq!(actions.len(), 1);
    assert_eq!(actions[0]["type"], "run_cloud_sync");
    assert_eq!(actions[0]["pool"], "pool0");
    // What the agent will parse: valid, with the action, secrets unchanged.
    let desired = truenas_agent::desired::parse(&doc.bytes).unwrap();
    assert_eq!(desired.actions.len(), 1);
    assert_eq!(
        value["b2"]["application_key"],
        crate::central_fixture::document(1)["b2"]["application_key"]
    );
    // A second click: another action, the next revision.
    assert_eq!(post("pool0").await.unwrap().status(), 303);
    let doc = db.document("nas-01").await.unwrap().unwrap();
    assert_eq!(doc.revision, 3);
    let (_, page) = d.get("/devices/nas-01?done=first-backup&revision=3").await;
    assert!(page.contains("Published revision 3 with a run_cloud_sync action"));
    assert!(
        page.contains("&quot;type&quot;: &quot;run_cloud_sync&quot;"),
        "the document shows it"
    );
    // A device without a document cannot get one this way.
    db.register("nas-bare", &token_hash("bare")).await.unwrap();
    let r = http
        .post(d.url("/devices/nas-bare/first-backup"))
        .bearer_auth(OPERATOR_TOKEN)
        .form(&[("pool", "pool0")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(
        db.document("nas-bare").await.unwrap().map(|d| d.revision),
        None
    );
    let r = http
        .post(d.url("/devices/ghost/first-backup"))
        .bearer_auth(OPERATOR_TOKEN)
        .form(&[("pool", "pool0")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn device_page_shows_status_history_changes_and_document() {
    let d = dash(Env::sqlite().await).await;
    let db = d.db();
    add_device(db, "nas-01", ORG_B, (LOC_NORTH, "Clinic North")).await;
    let now = d.now();
    let mut first = report(
        now - chrono::Duration::hours(1),
        "SUCCESS",
        Some(now - chrono::Duration::hours(2)),
        &[],
    );
    first.config.changes = vec![truenas_agent::central::report::Change {
        target: "cloud_sync:pool0".into(),
        action: "create".into(),
        fields: vec!["encryption_password".into()],
    }];
    deliver(db, "nas-01", &first, now - chrono::Duration::hours(1)).await;
    let second = report(
        now,
        "SUCCESS",
        Some(now - chrono::Duration::hours(2)),
        &["snmp.v3_only"],
    );
    deliver(db, "nas-01", &second, now).await;
    let (status, html) = d.get("/devices/nas-01").await;
    assert_eq!(status, StatusCode::OK);
    for needle in [
        "id=\"status\"",
        "Clinic North",
        "1 SOP checklist item(s) failing",
        "SOP item snmp.v3_only",
        "<code>cloud_sync:pool0</code> create",
        "encryption_password",
        "id=\"history\"",
        "id=\"document\"",
        "revision 1, published",
        "Run a first backup now",
        "Disable token",
    ] {
        assert!(html.contains(needle), "missing {needle}: {html}");
    }
    assert!(
        html.matches("<tr><td>").count() >= 2,
        "two reports in the history"
    );
    let (status, _) = d.get("/devices/ghost").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = d.get("/devices/..%2Fetc").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_say_what_the_fleet_page_says() {
    let d = dash(Env::sqlite().await).await;
    populate_fleet(d.db(), d.now()).await;
    let m = d.metrics().await;
    for line in [
        "truenas_central_device_backup_failing{device=\"nas-failing\",pool=\"pool0\"} 1",
        "truenas_central_device_backup_overdue{device=\"nas-overdue\",pool=\"pool0\"} 1",
        "truenas_central_device_backup_overdue{device=\"nas-healthy\",pool=\"pool0\"} 0",
        "truenas_central_device_backup_last_success_age_seconds{device=\"nas-overdue\",pool=\"pool0\"} 345600",
        "truenas_central_device_last_report_age_seconds{device=\"nas-silent\"} 10800",
        "truenas_central_device_silent{device=\"nas-silent\"} 1",
        "truenas_central_device_silent{device=\"nas-healthy\"} 0",
        "truenas_central_device_config_state{device=\"nas-refused\",state=\"refused\"} 1",
        "truenas_central_device_config_state{device=\"nas-refused\",state=\"applied\"} 0",
        "truenas_central_device_checklist_failing{device=\"nas-checklist\"} 1",
        "truenas_central_device_reports_total{device=\"nas-healthy\"} 1",
        "truenas_central_devices{verdict=\"problem\"} 5",
        "truenas_central_devices{verdict=\"healthy\"} 1",
        "truenas_central_reports_stored 6",
    ] {
        assert!(m.contains(line), "missing `{line}`:\n{m}");
    }
    assert!(
        !m.contains("truenas_central_device_last_report_age_seconds{device=\"nas-new\"}"),
        "an age that never began is absent, not zero"
    );
    check_exposition_format(&m);
}

/// Every sample belongs to the family announced by the HELP/TYPE lines before it, and
/// each family appears once.
fn check_exposition_format(text: &str) {
    let mut families = BTreeSet::new();
    let mut current = String::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap();
            assert!(["gauge", "counter"].contains(&kind), "{line}");
            assert!(families.insert(name.to_owned()), "family {name} twice");
            name.clone_into(&mut current);
        } else if line.starts_with("# HELP ") {
        } else {
            let name = line.split(['{', ' ']).next().unwrap();
            assert_eq!(name, current, "sample outside its family: {line}");
            let value = line.rsplit(' ').next().unwrap();
            assert!(value.parse::<f64>().is_ok(), "{line}");
        }
    }
}

/// Metric names used in the shipped alert rules: `truenas_central_…` identifiers in each
/// `expr:` line.
fn rule_metrics(rules: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut alert = String::new();
    for line in rules.lines() {
        let t = line.trim();
        if let Some(name) = t.strip_prefix("- alert: ") {
            name.clone_into(&mut alert);
        }
        if let Some(expr) = t.strip_prefix("expr: ") {
            let mut rest = expr;
            while let Some(i) = rest.find("truenas_central_") {
                let tail = &rest[i..];
                let end = tail
                    .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                    .unwrap_or(tail.len());
                out.push((alert.clone(), tail[..end].to_owned()));
                rest = &tail[end..];
            }
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_alert_rules_name_metrics_that_exist() {
    let path = crate::support::repo_root().join("packaging/prometheus/truenas-central.rules.yml");
    let rules = std::fs::read_to_string(&path).unwrap();
    // The structure Prometheus expects: groups → rules, each with alert, expr, for,
    // labels.severity and annotations.summary, no tabs (YAML forbids them).
    assert!(
        rules.starts_with("groups:") || rules.contains("\ngroups:"),
        "{rules}"
    );
    assert!(!rules.contains('\t'));
    let alerts: Vec<&str> = rules
        .lines()
        .filter_map(|l| l.trim().strip_prefix("- alert: "))
        .collect();
    for wanted in [
        "TrueNASBackupOverdue",
        "TrueNASBackupFailing",
        "TrueNASDeviceSilent",
        "TrueNASChecklistRegressed",
        "TrueNASDocumentRefused",
    ] {
        assert!(alerts.contains(&wanted), "no {wanted} in {alerts:?}");
    }
    for key in ["expr:", "for:", "severity:", "summary:"] {
        assert_eq!(
            rules.lines().filter(|l| l.trim().starts_with(key)).count(),
            alerts.len(),
            "every rule has `{key}`"
        );
    }
    let d = dash(Env::sqlite().await).await;
    populate_fleet(d.db(), d.now()).await;
    let m = d.metrics().await;
    let used = rule_metrics(&rules);
    assert!(used.len() >= alerts.len());
    for (alert, metric) in used {
        assert!(
            m.contains(&format!("# TYPE {metric} ")),
            "alert {alert} uses {metric}, which /metrics does not expose"
        );
    }
}

fn central(args: &[&str]) -> std::process::Output {
    std::process::Command::new(crate::support::bin(crate::support::CENTRAL))
        .args(args)
        .env_remove("TRUENAS_CENTRAL_DATABASE")
        .output()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_add_writes_a_private_token_and_keeps_only_its_hash() {
    use std::os::unix::fs::PermissionsExt as _;
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let file = tmp.path().join("alice.token");
    let s = |p: &std::path::Path| p.to_str().unwrap().to_owned();
    let out = central(&[
        "operator",
        "add",
        "--dir",
        &s(&dir),
        "--name",
        "alice",
        "--token-out",
        &s(&file),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mode = std::fs::metadata(&file).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    let token = std::fs::read_to_string(&file).unwrap().trim().to_owned();
    assert_eq!(token.len(), 43, "256 bits, URL-safe base64");
    let printed = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!printed.contains(&token), "{printed}");
    // Never overwrites a token file; a second operator of the same name leaves no file.
    let again = central(&[
        "operator",
        "add",
        "--dir",
        &s(&dir),
        "--name",
        "bob",
        "--token-out",
        &s(&file),
    ]);
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("refusing to overwrite"));
    let other = tmp.path().join("other.token");
    let dup = central(&[
        "operator",
        "add",
        "--dir",
        &s(&dir),
        "--name",
        "alice",
        "--token-out",
        &s(&other),
    ]);
    assert!(!dup.status.success());
    assert!(String::from_utf8_lossy(&dup.stderr).contains("operator `alice` already exists"));
    assert!(!other.exists(), "no file holds a token that does not work");
    // The database has the hash, never the token; the token opens the dashboard.
    let mut raw = Vec::new();
    for suffix in ["central.db", "central.db-wal"] {
        raw.extend(std::fs::read(dir.join(suffix)).unwrap_or_default());
    }
    assert!(!String::from_utf8_lossy(&raw).contains(&token));
    let env = Env {
        db: truenas_central::db::Db::open(
            &truenas_central::db::Database::Sqlite(dir.join("central.db")),
            std::sync::Arc::new(crate::central_db::TestSealer),
        )
        .await
        .unwrap(),
        database: truenas_central::db::Database::Sqlite(dir.join("central.db")),
        pg: None,
        _dir: tempfile::tempdir().unwrap(),
    };
    assert_eq!(
        env.db
            .operator_for_token(&token_hash(&token))
            .await
            .unwrap()
            .map(|o| o.name),
        Some("alice".to_owned())
    );
    let list = central(&["operator", "list", "--dir", &s(&dir)]);
    assert!(String::from_utf8_lossy(&list.stdout).starts_with("alice  (since "));
    assert!(
        central(&["operator", "disable", "--dir", &s(&dir), "--name", "alice"])
            .status
            .success()
    );
    assert_eq!(
        env.db
            .operator_for_token(&token_hash(&token))
            .await
            .unwrap(),
        None
    );
    let list = central(&["operator", "list", "--dir", &s(&dir)]);
    assert!(String::from_utf8_lossy(&list.stdout).starts_with("alice [disabled]"));
}
