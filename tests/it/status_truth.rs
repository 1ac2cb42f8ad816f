//! `status` tells the truth and never a secret (issue 13, items 2, 9, 10, 11 and the
//! `status` wording of 17), against the simulator, the reference central server and the
//! real binary.
//!
//! The NAS's own secrets in these tests are *not* the document's and do not look like
//! keys (lower case, no mixed case), so only a scrubber that knows them — read from the
//! middleware, as `status` does — can keep them out of the output.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{Value, json};
use tempfile::TempDir;
use truenas_agent::apply::{ReconcileOptions, reconcile};
use truenas_agent::cli::status::{Context, DocumentArg, report_with};
use truenas_agent::desired::{self, DesiredState};
use truenas_agent::health::assess::AssessOptions;
use truenas_agent::middleware::{ApiFlavor, Middleware};
use truenas_agent::observe::DEVICE_GUID_PROPERTY;
use truenas_agent::sim::scenario::{Alert, B2Account};
use truenas_agent::sim::{Failure, JobTiming, Scenario, ServeOptions, Server, Simulator};
use truenas_agent::state_dir::StateDir;
use truenas_agent::status::{StatusReport, render_text};

use crate::support::assert_no_canary;

const KEY_ID: &str = "0051a2b3c4d5e6f0000000001";
const BUCKET: &str = "truenas-a1b2c3d4e5f670718293a4b5c6d7e8f9";
const GUID: &str = "9babab19-acc0-4587-aa05-ccd8103a1148";

/// The NAS's own secrets (set by hand before the agent came, or left from an older
/// document): lower case, so no "looks like a key" heuristic catches them.
const NAS_ENC_PASSWORD: &str = "correct horse battery staple";
const NAS_ENC_SALT: &str = "pepper-and-salt-4471";
const NAS_SNMP_AUTH: &str = "snmp-auth-hunter2-secret";
const NAS_SNMP_PRIV: &str = "snmp-privacy-opensesame9";
const NAS_SECRETS: [&str; 4] = [NAS_ENC_PASSWORD, NAS_ENC_SALT, NAS_SNMP_AUTH, NAS_SNMP_PRIV];

/// Panics naming the NAS secret (or document canary) found in `text`.
fn assert_no_secret(label: &str, text: &str) {
    assert_no_canary(label, text);
    for secret in NAS_SECRETS {
        assert!(
            !text.contains(secret),
            "the NAS secret {secret:?} leaked into {label}:\n{text}"
        );
    }
}

fn data(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(rel)
}

fn document_value() -> Value {
    let mut v: Value =
        serde_json::from_slice(&std::fs::read(data("desired/example.json")).unwrap()).unwrap();
    v["actions"] = json!([]);
    v
}

fn document() -> DesiredState {
    desired::parse(&serde_json::to_vec(&document_value()).unwrap()).unwrap()
}

/// A box provisioned by the SOP engine whose secrets were then changed on the NAS, with
/// those secrets planted in a job error, an alert and a middleware error text.
struct LeakyBox {
    sim: Simulator,
    server: Server,
    dir: TempDir,
    state: StateDir,
}

impl LeakyBox {
    async fn new() -> Self {
        let mut scenario = Scenario::two_pools(ApiFlavor::V25_04);
        scenario.b2_accounts.push(B2Account {
            account: KEY_ID.into(),
            valid: true,
            buckets: Some(vec![BUCKET.into()]),
        });
        let sim = Simulator::new(scenario).with_job_timing(JobTiming::Auto {
            duration: Duration::from_millis(30),
        });
        sim.update_state(|s| {
            let root = s.datasets.iter_mut().find(|d| d.name == "pool0").unwrap();
            root.user_properties
                .insert(DEVICE_GUID_PROPERTY.into(), GUID.into());
        });
        let dir = tempfile::tempdir().unwrap();
        let state = StateDir::open(dir.path().join("state")).unwrap();
        let pass = reconcile(
            &sim.in_process(),
            &state,
            &document(),
            &ReconcileOptions::default(),
        )
        .await
        .unwrap();
        assert!(pass.converged());
        // Someone changed the secrets on the NAS by hand.
        sim.update_state(|s| {
            for t in &mut s.cloud_sync_tasks {
                t.encryption_password = NAS_ENC_PASSWORD.into();
                t.encryption_salt = NAS_ENC_SALT.into();
            }
            s.snmp.v3_password = NAS_SNMP_AUTH.into();
            s.snmp.v3_privpassphrase = Some(NAS_SNMP_PRIV.into());
        });
        // rclone echoes the crypt settings in its error (job error and log excerpt).
        sim.fail_next_sync(&format!(
            "CRITICAL: Failed to create file system for \"encrypted:/\": crypt: \
             bad password {NAS_ENC_PASSWORD} or salt {NAS_ENC_SALT}"
        ));
        let task = sim
            .state()
            .cloud_sync_tasks
            .iter()
            .find(|t| t.path == "/mnt/pool0")
            .unwrap()
            .id;
        let job = sim.run_cloud_sync(i64::try_from(task).unwrap()).unwrap();
        sim.in_process()
            .wait_job(job, Duration::from_secs(10))
            .await
            .unwrap();
        // An alert quoting the SNMP secrets, and a middleware read failing with a text
        // that echoes one.
        sim.update_state(|s| {
            s.alerts.push(Alert {
                uuid: "a1".into(),
                klass: "VolumeStatus".into(),
                args: json!({}),
                key: String::new(),
                level: "CRITICAL".into(),
                text: format!("snmpd: auth {NAS_SNMP_AUTH} / priv {NAS_SNMP_PRIV} rejected"),
                datetime_ms: 0,
                dismissed: false,
            });
        });
        sim.update_faults(|f| {
            f.failures.push(Failure {
                method: "core.get_jobs".into(),
                errno: 14,
                reason: format!("cannot list jobs: privacy {NAS_SNMP_PRIV} invalid"),
                path: None,
                times: None,
            });
        });
        let server = sim
            .serve(ServeOptions {
                socket: Some(dir.path().join("middlewared.sock")),
                listen: None,
            })
            .await
            .unwrap();
        let doc = dir.path().join("doc.json");
        std::fs::write(&doc, serde_json::to_vec(&document_value()).unwrap()).unwrap();
        Self {
            sim,
            server,
            dir,
            state,
        }
    }

    fn ctx(&self) -> Context {
        Context {
            state_dir: self.state.path().to_owned(),
            url: "unix:///var/run/middleware/middlewared.sock".into(),
            version: "test".into(),
            assess: AssessOptions {
                now: chrono::Utc::now(),
                offset: chrono::FixedOffset::east_opt(0).unwrap(),
                call_timeout: Duration::from_secs(5),
                b2: None,
                guid_property: DEVICE_GUID_PROPERTY.into(),
                root_pool: None,
            },
            central_config: None,
            host: None,
        }
    }

    async fn status(&self, doc: &DocumentArg) -> StatusReport {
        let mw = self.sim.in_process();
        report_with(Ok(&mw), doc, &self.ctx()).await
    }

    fn doc_path(&self) -> String {
        self.dir.path().join("doc.json").display().to_string()
    }
}

fn check_report(label: &str, report: &StatusReport) {
    assert_no_secret(
        &format!("{label} --json"),
        &serde_json::to_string_pretty(report).unwrap(),
    );
    assert_no_secret(label, &render_text(report));
}

/// 13.2: `status` and `status --json`, with and without a document, never show the
/// NAS's secrets planted in a job error, an alert and middleware error texts.
#[tokio::test]
async fn status_scrubs_the_nas_secrets_from_job_errors_alerts_and_middleware_errors() {
    let nas = LeakyBox::new().await;
    let report = nas.status(&DocumentArg::None).await;
    check_report("status", &report);
    // The planted texts are really shown (scrubbed), not dropped.
    let backup = report.backups.iter().find(|b| b.pool == "pool0").unwrap();
    assert_eq!(backup.state, "FAILED", "{backup:#?}");
    assert!(
        backup
            .excerpt
            .as_deref()
            .unwrap_or("")
            .contains("[REDACTED]"),
        "{backup:#?}"
    );
    assert!(
        report.alerts.iter().any(|a| a.text.contains("[REDACTED]")),
        "{:#?}",
        report.alerts
    );
    assert!(
        report
            .problems
            .iter()
            .any(|p| p.message.contains("cannot list jobs")),
        "{:#?}",
        report.problems
    );
    check_report("status", &report);
    let with_doc = nas.status(&DocumentArg::Read(Box::new(document()))).await;
    check_report("status -f", &with_doc);

    // A read that fails the whole observation: the middleware's error text is shown
    // (scrubbed) as the reason the NAS could not be read.
    nas.sim.update_faults(|f| {
        f.failures.push(Failure {
            method: "service.query".into(),
            errno: 14,
            reason: format!("snmpd.conf: authpass {NAS_SNMP_AUTH} salt {NAS_ENC_SALT}"),
            path: None,
            times: None,
        });
    });
    let report = nas.status(&DocumentArg::None).await;
    assert!(
        report
            .problems
            .iter()
            .any(|p| p.message.contains("snmpd.conf")),
        "{:#?}",
        report.problems
    );
    check_report("status (observation failed)", &report);
}

/// Runs the real binary with `args`; returns (exit code, stdout + stderr).
async fn agent(args: &[&str]) -> (Option<i32>, String) {
    let out = tokio::process::Command::new(assert_cmd::cargo::cargo_bin("truenas-agent"))
        .args(args)
        .env("TZ", "UTC")
        .env_remove("TRUENAS_AGENT_STATE_DIR")
        .env_remove("TRUENAS_AGENT_MIDDLEWARE")
        .env_remove("TRUENAS_AGENT_CONFIG")
        .env_remove("RUST_LOG")
        .output()
        .await
        .unwrap();
    let text = format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code(), text)
}

/// 13.2, every command: the same box through the real binary — `status` (text, JSON,
/// with a document), `verify`, `plan`, `apply` (whose writes the middleware refuses with
/// texts echoing the NAS's current secrets), `identity` and `install --check` — and
/// nothing secret on stdout or stderr, at any log level.
#[tokio::test]
async fn no_command_prints_a_secret() {
    let nas = LeakyBox::new().await;
    // The middleware refuses the agent's writes, quoting the values it has.
    nas.sim.update_faults(|f| {
        for (method, reason) in [
            (
                "cloudsync.update",
                format!("encryption_salt: {NAS_ENC_SALT} cannot be changed while {NAS_ENC_PASSWORD} is set"),
            ),
            (
                "snmp.update",
                format!("v3_password: {NAS_SNMP_AUTH} is in use; privacy {NAS_SNMP_PRIV}"),
            ),
        ] {
            f.failures.push(Failure {
                method: method.into(),
                errno: 22,
                reason,
                path: None,
                times: None,
            });
        }
    });
    let url = nas.server.unix_url().unwrap();
    let state = nas.state.path().display().to_string();
    let doc = nas.doc_path();
    let base = ["--middleware", url.as_str(), "--state-dir", state.as_str()];
    let commands: Vec<Vec<&str>> = vec![
        vec!["status"],
        vec!["status", "--json"],
        vec!["status", "-f", &doc, "--allow-unsigned"],
        vec!["status", "-f", &doc, "--allow-unsigned", "--json"],
        vec!["verify", "-f", &doc, "--allow-unsigned", "--skip-b2"],
        vec![
            "verify",
            "-f",
            &doc,
            "--allow-unsigned",
            "--skip-b2",
            "--json",
        ],
        vec!["plan", "-f", &doc, "--allow-unsigned"],
        vec!["plan", "-f", &doc, "--allow-unsigned", "--json"],
        vec!["apply", "-f", &doc, "--allow-unsigned"],
        vec!["identity", "--zfs-bin", "/nonexistent/zfs"],
        vec!["identity", "--zfs-bin", "/nonexistent/zfs", "--json"],
        vec!["install", "--check"],
    ];
    let mut leaks = Vec::new();
    for command in commands {
        for log in ["info", "debug"] {
            let mut args = base.to_vec();
            args.extend(["--log", log]);
            args.extend(command.iter().copied());
            let (code, text) = agent(&args).await;
            let found: Vec<&str> = NAS_SECRETS
                .iter()
                .chain(crate::support::CANARIES)
                .copied()
                .filter(|secret| text.contains(secret))
                .collect();
            if !found.is_empty() {
                leaks.push(format!(
                    "`{}` --log {log} (exit {code:?}) shows {found:?}:\n{text}",
                    command.join(" ")
                ));
            }
        }
    }
    assert!(leaks.is_empty(), "{}", leaks.join("\n\n"));
}
