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
use tokio::task::LocalSet;
use truenas_agent::apply::{ReconcileOptions, reconcile};
use truenas_agent::central::CentralState;
use truenas_agent::central::report::{ConfigState, Report};
use truenas_agent::cli::status::{CentralSettings, Context, DocumentArg, report_with};
use truenas_agent::daemon::DaemonRecord;
use truenas_agent::desired::{self, DesiredState};
use truenas_agent::health::assess::AssessOptions;
use truenas_agent::health::{Area, Level};
use truenas_agent::middleware::{ApiFlavor, Middleware};
use truenas_agent::state_dir::StateDir;
use truenas_agent::status::{StatusReport, render_text};
use truenas_agent::zfs::DEFAULT_GUID_PROPERTY;
use truenas_sim::scenario::{Alert, B2Account};
use truenas_sim::{Failure, JobTiming, Scenario, ServeOptions, Server, Simulator};

use crate::e2e_fixture::{
    Central, DEVICE, Running, System, applied, document as e2e_document, reports, signing_key,
    test_options, wait_for_report,
};
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
    crate::support::repo_root().join("tests/data").join(rel)
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
                .insert(DEFAULT_GUID_PROPERTY.into(), GUID.into());
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

                ..Default::default()
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
                guid_property: DEFAULT_GUID_PROPERTY.into(),
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
async fn run_agent(args: &[&str]) -> (Option<i32>, String) {
    let out = tokio::process::Command::new(crate::support::bin(crate::support::AGENT))
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
            let (code, text) = run_agent(&args).await;
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
    // The daemon (`run`), central down, at debug level, until SIGTERM.
    let token = nas.dir.path().join("token");
    truenas_agent::fs::write_atomic(&token, b"CANARY-DEVICE-TOKEN-5e19b3\n", 0o600).unwrap();
    let config = nas.dir.path().join("agent.toml");
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    std::fs::write(
        &config,
        format!(
            "state_dir = \"{state}\"\n[central]\nurl = \"http://{closed}/\"\ntoken_file = \"{token}\"\n\
             allow_unsigned = true\n[middleware]\nurl = \"{url}\"\n",
            token = token.display()
        ),
    )
    .unwrap();
    let child = tokio::process::Command::new(crate::support::bin(crate::support::AGENT))
        .args([
            "--config",
            config.to_str().unwrap(),
            "--log",
            "debug",
            "run",
        ])
        .env_remove("RUST_LOG")
        .env_remove("JOURNAL_STREAM")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    // Until it has started, assessed the box and tried to report (daemon.json written).
    let record = nas.state.path().join("daemon.json");
    for _ in 0..200 {
        if record.exists() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let pid = nix::unistd::Pid::from_raw(i32::try_from(child.id().unwrap()).unwrap());
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
    let out = tokio::time::timeout(Duration::from_secs(30), child.wait_with_output())
        .await
        .expect("the daemon stops on SIGTERM")
        .unwrap();
    let text = format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("truenas-agent started"), "{text}");
    let found: Vec<&str> = NAS_SECRETS
        .iter()
        .chain(crate::support::CANARIES)
        .copied()
        .filter(|secret| text.contains(secret))
        .collect();
    if !found.is_empty() {
        leaks.push(format!("`run` --log debug shows {found:?}:\n{text}"));
    }
    assert!(leaks.is_empty(), "{}", leaks.join("\n\n"));
}

// ---------------------------------------------------------------------------------------
// The daemon, central and `status` together (the reference central server, the daemon
// in-process, `status` as a technician runs it).

/// `status` (no `-f`) for the system's box and state directory, the config's
/// `[central]` given, as `truenas-agent --config … status` resolves it.
async fn status_of(sys: &System, host: Option<truenas_agent::install::Host>) -> StatusReport {
    let central = sys.files.config.central.as_ref().unwrap();
    let ctx = Context {
        state_dir: sys.files.state_path(),
        url: sys.nas.url(),
        version: "test".into(),
        assess: AssessOptions {
            now: chrono::Utc::now(),
            offset: chrono::FixedOffset::east_opt(0).unwrap(),
            call_timeout: Duration::from_secs(5),
            b2: None,
            guid_property: DEFAULT_GUID_PROPERTY.into(),
            root_pool: None,
        },
        central_config: Some(Some(CentralSettings::from(central))),
        host,
    };
    let mw = sys.nas.sim.in_process();
    report_with(Ok(&mw), &DocumentArg::None, &ctx).await
}

/// Waits (up to a minute) for a report after the first `skip` ones that matches `want`.
async fn wait_for_report_after(
    central: &Central,
    skip: usize,
    what: &str,
    want: impl Fn(&Report) -> bool,
) -> (usize, Report) {
    for _ in 0..600 {
        if let Some((n, r)) = reports(central)
            .await
            .into_iter()
            .enumerate()
            .skip(skip)
            .find(|(_, r)| want(r))
        {
            return (n, r);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let seen: Vec<String> = reports(central)
        .await
        .iter()
        .map(|r| format!("{:?}/{:?}", r.config.revision, r.config.state))
        .collect();
    panic!("no report {what} after #{skip} within a minute; central has {seen:?}");
}

fn refused_with(text: &'static str) -> impl Fn(&Report) -> bool {
    move |r| {
        r.config.state == ConfigState::Refused
            && r.config.errors.iter().any(|e| e.message.contains(text))
    }
}

fn text_of(report: &StatusReport) -> String {
    render_text(report)
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

/// 13.9: a refusal clears with the next correctly verified fetch — central served a
/// wrongly signed document for a while, then the right one again (same revision) — and
/// a republished same revision with other content is refused by name and reported.
#[tokio::test]
async fn a_refusal_clears_with_the_next_verified_fetch_and_a_changed_same_revision_is_refused() {
    LocalSet::new()
        .run_until(Box::pin(async {
            let mut sys = System::start().await;
            let original = e2e_document(1);
            sys.central.publish(DEVICE, &original).await;
            let agent = sys.agent().await;
            wait_for_report(&sys.central, "with revision 1 applied", applied(1)).await;

            // Central signs with a key the agent does not trust, for a while.
            let (dir, addr, _) = sys.central.stop().await;
            let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
            sys.central = Central::start_on(listener, dir, signing_key(9)).await;
            let (n, _) = wait_for_report_after(
                &sys.central,
                0,
                "refusing the foreign signature",
                refused_with("no signature"),
            )
            .await;
            // Then the right key again: the same document, verified.
            let (dir, addr, _) = sys.central.stop().await;
            let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
            sys.central = Central::start_on(listener, dir, signing_key(1)).await;
            let (n, cleared) =
                wait_for_report_after(&sys.central, n + 1, "clearing the refusal", |r| {
                    r.config.state != ConfigState::Refused
                })
                .await;
            assert_eq!(cleared.config.state, ConfigState::Applied, "{cleared:#?}");
            assert_eq!(cleared.config.revision, Some(1));
            let report = status_of(&sys, None).await;
            assert!(
                !report
                    .problems
                    .iter()
                    .any(|p| p.message.contains("refused")),
                "{:#?}",
                report.problems
            );
            let record = DaemonRecord::load(&StateDir::open(sys.files.state_path()).unwrap())
                .unwrap()
                .unwrap();
            assert!(record.refusal.is_none(), "{record:#?}");
            assert!(!record.status.contains("REFUSED"), "{}", record.status);

            // Revision 1 republished with other content: refused by name, reported.
            let mut changed = original.clone();
            changed["snapshots"]["lifetime_value"] = json!(3);
            sys.central.publish(DEVICE, &changed).await;
            let (n, refusal) = wait_for_report_after(
                &sys.central,
                n + 1,
                "refusing the changed revision 1",
                refused_with("same revision, different content"),
            )
            .await;
            assert_eq!(refusal.config.revision, Some(1));
            assert_eq!(refusal.config.errors[0].path, "revision");
            let report = status_of(&sys, None).await;
            let text = text_of(&report);
            assert!(
                report.problems.iter().any(|p| p.level == Level::Failing
                    && p.message.contains("same revision, different content")),
                "{text}"
            );
            // Nothing of it was applied: the snapshot lifetime is still the SOP's.
            assert!(
                sys.nas
                    .sim
                    .state()
                    .snapshot_tasks
                    .iter()
                    .all(|t| t.lifetime_value == 2)
            );
            // The original again: the refusal clears.
            sys.central.publish(DEVICE, &original).await;
            wait_for_report_after(&sys.central, n + 1, "clearing it", |r| {
                r.config.state == ConfigState::Applied
            })
            .await;
            let report = status_of(&sys, None).await;
            assert!(
                !report
                    .problems
                    .iter()
                    .any(|p| p.message.contains("refused")),
                "{:#?}",
                report.problems
            );
            agent.stop().await;
        }))
        .await;
}

/// 13.10 and 13.17: the daemon's last pass failed (a refused re-key): `status` says
/// which revision failed, why (the blocker, with its path) and when it is retried, and
/// shows the revision the daemon enforces and where it came from — not "none given".
#[tokio::test]
async fn status_names_why_the_daemons_pass_failed_and_what_it_enforces() {
    LocalSet::new()
        .run_until(Box::pin(async {
            let sys = System::start().await;
            sys.central.publish(DEVICE, &e2e_document(1)).await;
            let agent = sys.agent().await;
            wait_for_report(&sys.central, "with revision 1 applied", applied(1)).await;
            // The first-run action uploaded data: pool0's task has a last run.
            for _ in 0..300 {
                if sys
                    .nas
                    .sim
                    .state()
                    .cloud_sync_tasks
                    .iter()
                    .any(|t| t.path == "/mnt/pool0" && t.last_run.is_some())
                {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            let mut rekey = e2e_document(2);
            rekey["encryption"]["password"] = json!("CANARY-ENC-SALT-9d0c55");
            sys.central.publish(DEVICE, &rekey).await;
            wait_for_report(&sys.central, "with revision 2 failed", |r| {
                r.config.revision == Some(2) && r.config.state == ConfigState::Failed
            })
            .await;
            let report = status_of(&sys, None).await;
            let text = text_of(&report);
            let failed = report
                .problems
                .iter()
                .find(|p| p.message.contains("last pass of revision 2 failed"))
                .unwrap_or_else(|| panic!("no problem names the failed pass:\n{text}"));
            assert_eq!(failed.level, Level::Failing);
            assert!(
                failed.message.contains("would make that data unreadable"),
                "{}",
                failed.message
            );
            assert!(
                failed.message.contains("it is retried at"),
                "{}",
                failed.message
            );
            assert!(
                failed.next_step.contains("allow_rekey"),
                "{}",
                failed.next_step
            );
            // What the daemon enforces, and from where.
            assert_eq!(report.agent.config_source, "central");
            assert_eq!(report.agent.revision, Some(2));
            let enforced = report.agent.enforced.as_ref().unwrap();
            assert_eq!(enforced.daemon_running, Some(true));
            assert!(
                enforced
                    .verified_by
                    .as_deref()
                    .unwrap()
                    .starts_with("ed25519:")
            );
            assert!(!text.contains("none given"), "{text}");
            assert!(
                text.contains("Document revision 2 (enforce) from central, verified by ed25519:"),
                "{text}"
            );
            assert!(text.contains("enforced by the daemon"), "{text}");
            assert_eq!(report.daemon.as_ref().unwrap().running, Some(true));
            agent.stop().await;
        }))
        .await;
}

/// A fake `systemctl` that answers `show` with this unit state.
fn fake_systemctl(dir: &Path, active: &str, result: &str) -> truenas_agent::install::Host {
    let path = dir.join("systemctl");
    let script = format!(
        "#!/bin/sh\nprintf 'LoadState=loaded\\nActiveState={active}\\nSubState={sub}\\nMainPID=0\\nNRestarts=5\\nResult={result}\\n'\n",
        sub = if active == "active" {
            "running"
        } else {
            "failed"
        },
    );
    std::fs::write(&path, script).unwrap();
    std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    truenas_agent::install::Host {
        sys: truenas_agent::install::SystemPaths {
            systemctl: path,
            ..truenas_agent::install::SystemPaths::default()
        },
        owner_uid: nix::unistd::geteuid().as_raw(),
    }
}

/// 13.10: a daemon stopped by a token file others can read: `status` does not show a
/// healthy channel ("last report delivered") but says the daemon is not running and why
/// — from systemd and from what `truenas-agent run` recorded on its way out.
#[tokio::test]
async fn status_says_the_daemon_stopped_and_names_the_token_file() {
    LocalSet::new()
        .run_until(Box::pin(async {
            let sys = System::start().await;
            sys.central.publish(DEVICE, &e2e_document(1)).await;
            let agent = sys.agent().await;
            wait_for_report(&sys.central, "with revision 1 applied", applied(1)).await;
            agent.stop().await;
            // Someone copies the token file with the wrong mode; the service restarts.
            let token = sys.files.token_path();
            std::fs::set_permissions(&token, std::os::unix::fs::PermissionsExt::from_mode(0o644))
                .unwrap();
            let config = sys.files.config_path();
            let (code, output) = run_agent(&["--config", config.to_str().unwrap(), "run"]).await;
            assert_eq!(code, Some(2), "{output}");
            assert!(output.contains("chmod 600"), "{output}");

            let tmp = tempfile::tempdir().unwrap();
            for host in [
                None,
                Some(fake_systemctl(tmp.path(), "failed", "exit-code")),
            ] {
                let with_systemd = host.is_some();
                let report = status_of(&sys, host).await;
                let text = text_of(&report);
                let daemon = report.daemon.as_ref().unwrap();
                assert_eq!(daemon.running, Some(false), "{text}");
                let p = report
                    .problems
                    .iter()
                    .find(|p| p.message.contains("the agent daemon is not running"))
                    .unwrap_or_else(|| panic!("no problem says the daemon is down:\n{text}"));
                assert_eq!(p.level, Level::Failing);
                assert!(p.message.contains("central.token_file"), "{}", p.message);
                assert!(p.message.contains("chmod 600"), "{}", p.message);
                assert!(
                    p.message.contains("from before it stopped"),
                    "{}",
                    p.message
                );
                if with_systemd {
                    assert!(p.message.contains("systemd: failed"), "{}", p.message);
                }
                assert!(text.contains("Daemon NOT RUNNING"), "{text}");
                assert!(
                    text.contains("last enforced by the daemon (NOT RUNNING)"),
                    "{text}"
                );
                assert_eq!(report.exit_code, 2);
            }
        }))
        .await;
}

/// 13.10: a corrupt `ownership.json` is the agent's own problem, named — not "middleware
/// UNKNOWN".
#[tokio::test]
async fn a_corrupt_ownership_record_is_named_not_blamed_on_the_middleware() {
    let nas = LeakyBox::new().await;
    nas.sim.update_faults(|f| f.failures.clear());
    std::fs::write(
        nas.state.path().join("ownership.json"),
        b"{\"version\": 1, \"tru",
    )
    .unwrap();
    let report = nas.status(&DocumentArg::None).await;
    let text = text_of(&report);
    assert!(
        !report.problems.iter().any(|p| p.area == Area::Middleware),
        "{text}"
    );
    let p = report
        .problems
        .iter()
        .find(|p| p.subject.as_deref() == Some("ownership.json"))
        .unwrap_or_else(|| panic!("no problem names ownership.json:\n{text}"));
    assert_eq!(p.area, Area::Agent);
    assert_eq!(p.level, Level::Failing);
    assert!(p.message.contains("ownership.json"), "{}", p.message);
    assert!(p.next_step.contains("adopt"), "{}", p.next_step);
}

/// 13.11: with report and poll intervals of 30 s every held long-poll is interrupted by
/// a report and never completes — every report is a contact, recorded with its time.
#[tokio::test(start_paused = true)]
async fn every_report_is_a_recorded_contact_while_held_polls_never_complete() {
    LocalSet::new()
        .run_until(Box::pin(async {
            let sys = System::start().await;
            sys.central.publish(DEVICE, &e2e_document(1)).await;
            let mut options = test_options(&sys.files.config);
            options.report_interval = Duration::from_secs(30);
            options.resync_interval = Duration::from_secs(30);
            let agent = Running::start(&sys.files.config, options).await;
            wait_for_report(&sys.central, "with revision 1 applied", applied(1)).await;
            let dir = StateDir::open(sys.files.state_path()).unwrap();
            let fetches = CentralState::load(&dir).unwrap().unwrap().counters.fetches;
            // Ten minutes of 30 s reports while central holds each long-poll (50 s+).
            tokio::time::sleep(Duration::from_secs(600)).await;
            let raw: Value = serde_json::from_slice(
                &std::fs::read(sys.files.state_path().join("central.json")).unwrap(),
            )
            .unwrap();
            assert_eq!(
                raw["counters"]["fetches"].as_u64(),
                Some(fetches),
                "no held long-poll completed: {raw:#}"
            );
            assert_eq!(raw["last_contact"]["via"], "report", "{raw:#}");
            assert_eq!(raw["last_contact"]["outcome"], "answered", "{raw:#}");
            let state = CentralState::load(&dir).unwrap().unwrap();
            let contact = state.last_contact.unwrap();
            assert!(contact.at >= state.last_fetch.unwrap().at);
            assert_eq!(state.last_success, Some(contact));
            agent.stop().await;
        }))
        .await;
}
