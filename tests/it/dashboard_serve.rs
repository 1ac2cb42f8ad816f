//! The `truenas-central serve` binary with a central config file, on SQLite and on a real
//! PostgreSQL: one listener serves the agents' protocol, the dashboard and `/metrics`; the
//! evaluator and the webhook worker run in it, configured by the file (evaluation period,
//! webhook receiver and its secret file); operators and devices are created with the CLI.
//! Device tokens never open the dashboard, operator tokens never fetch documents nor post
//! reports. A bad config file stops `serve` before it listens.

use std::io::BufRead as _;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use truenas_central::webhooks::verify;

use crate::central_fixture::{DataDir, database_args, document};
use crate::dashboard_fixture::{Receiver, client, report};
use crate::support::{CENTRAL, bin};

on_both_engines!(
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    serve_runs_the_dashboard_metrics_and_webhooks_from_its_config_file,
);

const WEBHOOK_SECRET: &str = "file-webhook-secret-93d0aa";

fn central_cmd(args: &[&str]) -> Output {
    Command::new(bin(CENTRAL))
        .args(database_args(args))
        .env_remove(truenas_central::cli::DATABASE_ENV)
        .output()
        .unwrap()
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Kills the server it holds on drop (a process this test started).
struct Child(std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Writes `text` to `path` with `mode`.
fn write(path: &Path, text: &str, mode: u32) {
    truenas_agent::fs::write_atomic(path, text.as_bytes(), mode).unwrap();
}

/// Waits (bounded) until the receiver got a webhook of `event`; returns its body after
/// checking its signature against the secret file's content.
async fn wait_event(receiver: &Receiver, event: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        for (headers, bytes, body) in receiver.take() {
            let sig = headers["x-truenas-central-signature"].to_str().unwrap();
            assert!(verify(WEBHOOK_SECRET.as_bytes(), &bytes, sig), "{body}");
            if body["event"] == event {
                return body;
            }
        }
        assert!(Instant::now() < deadline, "no `{event}` webhook arrived");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn serve_runs_the_dashboard_metrics_and_webhooks_from_its_config_file() {
    let tmp = tempfile::tempdir().unwrap();
    let data_dir = DataDir::new().await;
    let data = data_dir.path().to_owned();
    let keys = tmp.path().join("keys");
    assert!(central_cmd(&["keygen", "--out", s(&keys)]).status.success());
    // A device and its document, an operator: with the CLI.
    let device_token = tmp.path().join("device.token");
    let out = central_cmd(&[
        "register",
        "--dir",
        s(&data),
        "--name",
        "nas-01",
        "--token-out",
        s(&device_token),
    ]);
    assert!(out.status.success(), "{}", text(&out));
    let doc = tmp.path().join("doc.json");
    std::fs::write(&doc, serde_json::to_vec(&document(1)).unwrap()).unwrap();
    let out = central_cmd(&[
        "publish",
        "--dir",
        s(&data),
        "--device",
        "nas-01",
        "--document",
        s(&doc),
    ]);
    assert!(out.status.success(), "{}", text(&out));
    let operator_token = tmp.path().join("ops.token");
    let out = central_cmd(&[
        "operator",
        "add",
        "--dir",
        s(&data),
        "--name",
        "ops@example.com",
        "--token-out",
        s(&operator_token),
    ]);
    assert!(out.status.success(), "{}", text(&out));
    let device_token = std::fs::read_to_string(&device_token)
        .unwrap()
        .trim()
        .to_owned();
    let operator_token = std::fs::read_to_string(&operator_token)
        .unwrap()
        .trim()
        .to_owned();
    // The config file: a fast evaluator, one webhook receiver with its secret file.
    let receiver = Receiver::start().await;
    let secret_file = tmp.path().join("ops-webhook.secret");
    write(&secret_file, &format!("{WEBHOOK_SECRET}\n"), 0o600);
    let config = tmp.path().join("central.toml");
    write(
        &config,
        &format!(
            "[fleet]\nevaluate_interval_secs = 1\n\n[dashboard]\n\
             public_origin = \"https://central.example.com\"\n\n[[webhook]]\nname = \"ops\"\n\
             url = \"{}\"\nsecret_file = \"{}\"\nevents = [\"backup.failed\", \"backup.recovered\"]\n",
            receiver.url(),
            s(&secret_file)
        ),
        0o644,
    );
    let mut child = Child(
        Command::new(bin(CENTRAL))
            .args(database_args(&[
                "serve",
                "--dir",
                s(&data),
                "--listen",
                "127.0.0.1:0",
                "--key",
                s(&keys.join("signing.key")),
                "--config",
                s(&config),
            ]))
            .env_remove(truenas_central::cli::DATABASE_ENV)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let mut first = String::new();
    std::io::BufReader::new(child.0.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    let url = first
        .trim()
        .strip_prefix("central server listening on ")
        .unwrap_or_else(|| panic!("unexpected first line {first:?}"))
        .to_owned();
    let http = client();
    let get = |path: &str, token: &str| {
        http.get(format!("{url}{path}"))
            .bearer_auth(token.to_owned())
            .send()
    };

    // The dashboard and /metrics open for the operator, on the agents' listener.
    let r = get("/", &operator_token).await.unwrap();
    assert_eq!(r.status(), 200);
    let html = r.text().await.unwrap();
    assert!(html.contains("id=\"device-nas-01\""), "{html}");
    let r = get("/devices/nas-01", &operator_token).await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        get("/metrics", &operator_token).await.unwrap().status(),
        200
    );
    // Without a credential: the login form (a page) or 401 (the metrics).
    let r = http.get(format!("{url}/")).send().await.unwrap();
    assert_eq!(r.status(), 303);
    assert_eq!(r.headers()["location"], "/login");
    let r = http.get(format!("{url}/login")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    // Device tokens never open the dashboard.
    for path in ["/", "/devices/nas-01", "/metrics"] {
        let r = get(path, &device_token).await.unwrap();
        assert_eq!(r.status(), 401, "{path} with the device token");
    }
    // Operator tokens never fetch documents nor post reports; the device's token does.
    assert_eq!(
        get("/v1/config", &operator_token).await.unwrap().status(),
        401
    );
    assert_eq!(
        get("/v1/config", &device_token).await.unwrap().status(),
        200
    );
    let post = |token: &str, state: &str| {
        let now = chrono::Utc::now();
        let r = report(now, state, Some(now - chrono::Duration::hours(1)), &[]);
        http.post(format!("{url}/v1/reports"))
            .bearer_auth(token.to_owned())
            .header("content-type", "application/json")
            .body(serde_json::to_vec(&r).unwrap())
            .send()
    };
    assert_eq!(post(&operator_token, "FAILED").await.unwrap().status(), 401);

    // The device's backup fails: the running evaluator announces it, the worker posts
    // the signed webhook; /metrics says so.
    assert_eq!(post(&device_token, "FAILED").await.unwrap().status(), 202);
    let failed = wait_event(&receiver, "backup.failed").await;
    assert_eq!(failed["device"]["name"], "nas-01");
    assert_eq!(
        failed["dashboard_url"],
        "https://central.example.com/devices/nas-01"
    );
    let metrics = get("/metrics", &operator_token)
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics
            .contains("truenas_central_device_backup_failing{device=\"nas-01\",pool=\"pool0\"} 1"),
        "{metrics}"
    );
    // It recovers.
    let now = chrono::Utc::now();
    let ok = report(now, "SUCCESS", Some(now), &[]);
    let r = http
        .post(format!("{url}/v1/reports"))
        .bearer_auth(device_token.clone())
        .header("content-type", "application/json")
        .body(serde_json::to_vec(&ok).unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    wait_event(&receiver, "backup.recovered").await;
    let metrics = get("/metrics", &operator_token)
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics
            .contains("truenas_central_device_backup_failing{device=\"nas-01\",pool=\"pool0\"} 0"),
        "{metrics}"
    );

    // SIGTERM: a clean exit, the evaluator and the worker stopped with it.
    let pid = nix::unistd::Pid::from_raw(i32::try_from(child.0.id()).unwrap());
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
    let status = child.0.wait().unwrap();
    assert!(status.success(), "{status:?}");
}

#[test]
fn serve_refuses_a_bad_config_file_before_it_listens() {
    let tmp = tempfile::tempdir().unwrap();
    let keys = tmp.path().join("keys");
    assert!(central_cmd(&["keygen", "--out", s(&keys)]).status.success());
    let config = tmp.path().join("central.toml");
    write(
        &config,
        "[fleet]\nevaluate_interval_secs = 0\n\n[[webhook]]\nname = \"ops\"\n\
         url = \"http://hooks.example.com/x\"\nsecret_file = \"/nonexistent\"\n",
        0o644,
    );
    let data = tmp.path().join("data");
    let child = Command::new(bin(CENTRAL))
        .args([
            "serve",
            "--dir",
            s(&data),
            "--listen",
            "127.0.0.1:0",
            "--key",
            s(&keys.join("signing.key")),
            "--config",
            s(&config),
        ])
        .env_remove(truenas_central::cli::DATABASE_ENV)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Bounded: a `serve` that ignored the file would run until killed.
    let mut child = Child(child);
    let deadline = Instant::now() + Duration::from_secs(60);
    while child.0.try_wait().unwrap().is_none() {
        assert!(
            Instant::now() < deadline,
            "serve kept running with a bad config file"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = std::mem::replace(&mut child.0, Command::new("true").spawn().unwrap())
        .wait_with_output()
        .unwrap();
    assert!(!out.status.success());
    let shown = text(&out);
    assert!(!shown.contains("listening"), "{shown}");
    assert!(
        shown.contains("fleet.evaluate_interval_secs: must be between 1 and 3600 (got 0)"),
        "{shown}"
    );
    assert!(shown.contains("webhook[0].url"), "{shown}");
    assert!(!data.exists(), "nothing was created: {shown}");
}
