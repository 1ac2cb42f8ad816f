//! `truenas-dev demo`: the whole system on this machine, in a few seconds — the
//! README's first command (`cargo run -p truenas-dev -- demo`).
//!
//! Owns: the demo's set-up and what it prints. It starts a simulated 2-pool TrueNAS
//! (the simulator's socket server on a temp unix socket), a reference central server on
//! `127.0.0.1:0` with a freshly generated signing key and the contract's example
//! document (demo values, every secret generated at random), and the agent daemon
//! in-process (the production engine, the real middleware client, HTTP to central:
//! real sockets throughout). Once central has stored a report saying the document is
//! applied, it stops the agent (as SIGTERM would), prints the agent's plan and step
//! results, what the agent changed, the applied revision, the report as central stored
//! it and the `status` screen, and removes its temp directory.
//! Does not: touch the network beyond loopback, the host's ZFS (the agent reaches user
//! properties through the simulated middleware), or anything outside its temp dir.
//! Invariants: no secret is printed — the output and every file the agent wrote are
//! checked for the generated secrets before anything is shown, and the demo fails if
//! one is found; the temp directory is removed on every exit path (a drop guard).
//! Limitations: the B2 side is not checked (no network: the demo's agent.toml says
//! `[b2] check_interval_secs = 0`): the checklist says so; the
//! `status` screen is taken after the agent stopped, so it shows the daemon's last state.

use std::fmt::Write as _;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, bail};
use rand::Rng;
use rand::distributions::Alphanumeric;
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use truenas_agent::central::dsse::TrustedKey;
use truenas_agent::central::report::{CheckStatus, ConfigState, Report};
use truenas_agent::config::AgentConfig;
use truenas_agent::daemon::agent::{self, Runtime};
use truenas_agent::daemon::sop::SopSettings;
use truenas_agent::daemon::{DaemonOptions, DaemonRecord, NoNotifier};
use truenas_agent::middleware::{ApiFlavor, Client, ConnectOptions};
use truenas_agent::state_dir::StateDir;
use truenas_agent::zfs::{Backend, BackendChoice, MiddlewareProps};
use truenas_central::db::{Database, Db, token_hash};
use truenas_central::{ServerOptions, datastore, keys};
use truenas_sim::scenario::B2Account;
use truenas_sim::{JobTiming, Scenario, ServeOptions, Simulator};

/// The demo device's name at central.
pub const DEVICE: &str = "nas-demo";
const KEY_ID: &str = "0051a2b3c4d5e6f0000000001";
const LOCATION: &str = "a1b2c3d4-e5f6-7071-8293-a4b5c6d7e8f9";

/// Arguments of `demo`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Which TrueNAS release the simulated box runs: 24.10, 25.04 or 25.10.
    #[arg(long, default_value = "25.10", value_name = "VERSION")]
    pub truenas: String,
}

/// Runs the demo.
#[allow(
    clippy::print_stderr,
    reason = "the demo's one progress line on stderr; nothing secret in it"
)]
pub async fn run(args: Args) -> anyhow::Result<ExitCode> {
    let (flavor, _) = ApiFlavor::from_version_short(&args.truenas)
        .with_context(|| format!("--truenas {}: expected 24.10, 25.04 or 25.10", args.truenas))?;
    eprintln!(
        "truenas-dev demo: starting a simulated TrueNAS {flavor}, a central server and the agent…"
    );
    let options = DemoOptions {
        flavor,
        budget: Duration::from_secs(45),
    };
    let mut stdout = std::io::stdout();
    demo(&options, &DemoSecrets::random(), &mut stdout).await?;
    Ok(ExitCode::SUCCESS)
}

/// How the demo runs.
#[derive(Debug, Clone)]
pub struct DemoOptions {
    pub flavor: ApiFlavor,
    /// How long the agent may take to converge the box and report.
    pub budget: Duration,
}

/// The document's secrets and the device token.
pub struct DemoSecrets {
    pub b2_application_key: SecretString,
    pub encryption_password: SecretString,
    pub encryption_salt: SecretString,
    pub snmp_auth_password: SecretString,
    pub snmp_privacy_passphrase: SecretString,
    pub device_token: SecretString,
}

impl DemoSecrets {
    /// Fresh random values (32 alphanumerics each).
    pub fn random() -> Self {
        let fresh = || {
            let text: String = rand::thread_rng()
                .sample_iter(&Alphanumeric)
                .take(32)
                .map(char::from)
                .collect();
            SecretString::from(text)
        };
        Self {
            b2_application_key: fresh(),
            encryption_password: fresh(),
            encryption_salt: fresh(),
            snmp_auth_password: fresh(),
            snmp_privacy_passphrase: fresh(),
            device_token: fresh(),
        }
    }

    fn all(&self) -> [&SecretString; 6] {
        [
            &self.b2_application_key,
            &self.encryption_password,
            &self.encryption_salt,
            &self.snmp_auth_password,
            &self.snmp_privacy_passphrase,
            &self.device_token,
        ]
    }

    /// The secret found in `text`, if any (by position, never by value).
    fn leaked_in(&self, text: &str) -> Option<usize> {
        self.all()
            .iter()
            .position(|s| text.contains(s.expose_secret()))
    }
}

/// What the demo ended with.
#[derive(Debug)]
pub struct DemoOutcome {
    /// The report central stored that says the document is applied.
    pub report: Report,
    /// Everything printed.
    pub text: String,
}

/// The demo's temp directory, removed when dropped (also on errors).
struct DemoDir(PathBuf);

impl DemoDir {
    fn create() -> anyhow::Result<Self> {
        let path =
            std::env::temp_dir().join(format!("truenas-agent-demo-{}", uuid::Uuid::new_v4()));
        truenas_agent::fs::create_dir_all(&path, 0o700)?;
        Ok(Self(path))
    }
}

impl Drop for DemoDir {
    fn drop(&mut self) {
        if let Err(e) = truenas_agent::fs::remove_dir_all_if_exists(&self.0) {
            tracing::warn!(error = %e, "cannot remove the demo directory");
        }
    }
}

/// The contract's example document with demo values and `secrets`.
fn document(secrets: &DemoSecrets) -> Value {
    json!({
        "schema": "truenas-agent.config/v1",
        "revision": 1,
        "issued_at": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        "mode": "enforce",
        "device": {
            "guid": uuid::Uuid::new_v4().to_string(),
            "location_uuid": LOCATION,
            "location_name": "Demo Office",
            "root_pool": "pool0"
        },
        "pools": ["pool0", "pool1"],
        "b2": {"key_id": KEY_ID, "application_key": secrets.b2_application_key.expose_secret()},
        "encryption": {
            "password": secrets.encryption_password.expose_secret(),
            "salt": secrets.encryption_salt.expose_secret()
        },
        "cloud_sync": {"bandwidth": {"uplink_mbps": 100,
            "business_hours": {"start": "08:00", "end": "18:00"},
            "business_percent": 20, "off_hours_percent": 80}},
        "snapshots": {},
        "snmp": {
            "username": "nmsdemo",
            "auth_password": secrets.snmp_auth_password.expose_secret(),
            "privacy_passphrase": secrets.snmp_privacy_passphrase.expose_secret()
        },
        "actions": [{"id": "demo-first-run", "type": "run_cloud_sync", "pool": "pool0"}]
    })
}

/// Runs the demo and writes what happened to `out`. Fails (printing nothing) if a
/// secret would be shown or was written by the agent.
pub async fn demo(
    options: &DemoOptions,
    secrets: &DemoSecrets,
    out: &mut impl Write,
) -> anyhow::Result<DemoOutcome> {
    let dir = DemoDir::create()?;
    let outcome = Box::pin(run_system(options, secrets, &dir.0)).await?;
    if let Some(i) = secrets.leaked_in(&outcome.text) {
        bail!("demo self-check failed: generated secret #{i} appears in the output");
    }
    if let Some(file) = leaked_file(&dir.0.join("agent"), secrets)? {
        bail!(
            "demo self-check failed: a generated secret appears in {}",
            file.display()
        );
    }
    out.write_all(outcome.text.as_bytes())?;
    out.flush()?;
    Ok(outcome)
}

/// A file under `dir` (the agent's files) that contains a secret, if any.
fn leaked_file(dir: &Path, secrets: &DemoSecrets) -> anyhow::Result<Option<PathBuf>> {
    for path in truenas_agent::fs::list_dir(dir)? {
        if path.is_dir() {
            if let Some(found) = leaked_file(&path, secrets)? {
                return Ok(Some(found));
            }
        } else if path.file_name().is_some_and(|n| n != "token") {
            let text = String::from_utf8_lossy(&truenas_agent::fs::read(&path)?).into_owned();
            if secrets.leaked_in(&text).is_some() {
                return Ok(Some(path));
            }
        }
    }
    Ok(None)
}

async fn run_system(
    options: &DemoOptions,
    secrets: &DemoSecrets,
    dir: &Path,
) -> anyhow::Result<DemoOutcome> {
    let mut text = String::new();
    // 1. A simulated TrueNAS whose scoped B2 key sees the SOP bucket.
    let bucket = format!("truenas-{}", LOCATION.replace('-', ""));
    let mut scenario = Scenario::two_pools(options.flavor);
    scenario.b2_accounts.push(B2Account {
        account: KEY_ID.to_owned(),
        valid: true,
        buckets: Some(vec![bucket.clone()]),
    });
    let sim = Simulator::new(scenario).with_job_timing(JobTiming::Auto {
        duration: Duration::from_millis(500),
    });
    let nas = sim
        .serve(ServeOptions {
            socket: Some(dir.join("middlewared.sock")),
            ..ServeOptions::default()
        })
        .await?;
    let mw_url = nas.unix_url().context("the simulator has no unix socket")?;

    // 2. Central: a fresh key pair, the device registered, its document published.
    let key = keys::generate();
    let trusted = TrustedKey::from_signing_key(&key).to_config_string();
    // Its database: SQLite in the demo's directory (the default), its at-rest key beside.
    let store_dir = dir.join("central");
    let db = datastore::open(&store_dir, &Database::from_flag(&store_dir, None)?).await?;
    db.register(DEVICE, &token_hash(secrets.device_token.expose_secret()))
        .await?;
    db.publish_validated(DEVICE, &serde_json::to_vec(&document(secrets))?, false)
        .await?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let central_url = format!("http://{}/", listener.local_addr()?);
    let stop_central = CancellationToken::new();
    let server = tokio::spawn(truenas_central::serve(
        listener,
        db.clone(),
        ServerOptions::new(key),
        stop_central.clone(),
    ));

    // 3. The agent: its own config, token file and state dir.
    let agent_dir = dir.join("agent");
    let config = agent_files(&agent_dir, &central_url, &trusted, &mw_url, secrets)?;
    let _ = writeln!(
        text,
        "Simulated TrueNAS {} (pools pool0, pool1) on {mw_url}\n\
         Central server on {central_url}, signing key {trusted}\n\
         Agent config {}\n\
         (everything lives in {} and is removed when the demo ends)",
        nas.simulator().version(),
        agent_dir.join("agent.toml").display(),
        dir.display()
    );
    let report = Box::pin(run_agent(&config, &db, options.budget)).await;
    // `truenas-agent status`, as a technician would run it on the box now.
    let screen = match &report {
        Ok(_) => Some(status_screen(&config).await),
        Err(_) => None,
    };
    stop_central.cancel();
    let _ = server.await;
    db.close().await;
    nas.shutdown().await;
    let report = report?;
    describe(&mut text, &report, &config.state_dir)?;
    if let Some(screen) = screen {
        let _ = writeln!(text, "\n== `truenas-agent status` on the box");
        text.push_str(&screen);
    }
    trim_line_ends(&mut text);
    Ok(DemoOutcome { report, text })
}

/// The `status` screen for the demo's agent (same code path as the command).
async fn status_screen(config: &AgentConfig) -> String {
    let now = chrono::Utc::now();
    let central = config.central.as_ref();
    let ctx = truenas_agent::cli::status::Context {
        state_dir: config.state_dir.clone(),
        url: config.middleware.url.clone(),
        version: truenas_agent::VERSION.to_owned(),
        assess: truenas_agent::health::assess::AssessOptions {
            now,
            offset: truenas_agent::health::assess::local_offset(now),
            call_timeout: Duration::from_secs(5),
            b2: None,
            guid_property: config.guid_property.clone(),
            root_pool: config.root_pool.clone(),
        },
        central_config: Some(central.map(truenas_agent::cli::status::CentralSettings::from)),
        // The demo agent runs in-process, not as an installed service: no install check.
        host: None,
    };
    let connected = truenas_agent::cli::common::connect(config, Some(Duration::from_secs(5)))
        .await
        .map_err(|e| truenas_agent::fault::error_chain(&e));
    let report = truenas_agent::cli::status::report_with(
        connected.as_ref().map_err(Clone::clone),
        &truenas_agent::cli::status::DocumentArg::None,
        &ctx,
    )
    .await;
    truenas_agent::status::render_text(&report)
}

/// Writes the token file (0600) and `agent.toml`, and loads the config back.
fn agent_files(
    dir: &Path,
    central_url: &str,
    trusted: &str,
    mw_url: &str,
    secrets: &DemoSecrets,
) -> anyhow::Result<AgentConfig> {
    truenas_agent::fs::create_dir_all(dir, 0o700)?;
    let token = dir.join("token");
    truenas_agent::fs::write_atomic(
        &token,
        format!("{}\n", secrets.device_token.expose_secret()).as_bytes(),
        0o600,
    )?;
    let text = format!(
        "state_dir = \"{state}\"\nroot_pool = \"pool0\"\n\n[central]\nurl = \"{central_url}\"\n\
         token_file = \"{token}\"\ntrusted_keys = [\"{trusted}\"]\nlong_poll_wait_secs = 30\n\n\
         [middleware]\nurl = \"{mw_url}\"\n\n\
         # No network in the demo: the daemon never calls B2 (the checklist says so).\n\
         [b2]\ncheck_interval_secs = 0\n",
        state = dir.join("state").display(),
        token = token.display(),
    );
    let path = dir.join("agent.toml");
    truenas_agent::fs::write_atomic(&path, text.as_bytes(), 0o600)?;
    Ok(AgentConfig::load(&path)?)
}

/// Runs the agent until central has a report saying the document is applied (or the
/// budget is spent), then stops it the way SIGTERM does.
async fn run_agent(config: &AgentConfig, db: &Db, budget: Duration) -> anyhow::Result<Report> {
    let prepared = agent::prepare(config)?;
    let mw = Client::connect(ConnectOptions {
        url: config.middleware.url.clone(),
        ..ConnectOptions::default()
    })
    .await
    .context("cannot connect to the simulated middleware")?;
    let props = MiddlewareProps::new(mw.clone());
    let backend = BackendChoice {
        backend: Backend::Middleware,
        fallback_reason: Some(
            "the demo's box is simulated: user properties go through its middleware".to_owned(),
        ),
        fallback_error: None,
    };
    let options = DaemonOptions {
        job_debounce: Duration::from_millis(300),
        ..DaemonOptions::new(None, &prepared.central)
    };
    let runtime = Runtime {
        middleware: &mw,
        events: &mw,
        props: &props,
        backend,
        notifier: &NoNotifier,
        // The demo's agent.toml turns the B2 checks off (no network in the demo).
        settings: SopSettings::from_config(config),
        options,
    };
    let shutdown = CancellationToken::new();
    let watch = async {
        let found = wait_for_applied(db, budget).await;
        shutdown.cancel();
        found
    };
    let (ran, found) = tokio::join!(Box::pin(prepared.run(runtime, &shutdown)), watch);
    ran.context("the agent stopped with an error")?;
    found
}

async fn wait_for_applied(db: &Db, budget: Duration) -> anyhow::Result<Report> {
    let deadline = tokio::time::Instant::now() + budget;
    while tokio::time::Instant::now() < deadline {
        let applied = db
            .reports(DEVICE, 1000)
            .await?
            .into_iter()
            // Newest first: the first report that said so.
            .rev()
            .map(|r| r.report)
            .find(|r| r.config.state == ConfigState::Applied);
        if let Some(report) = applied {
            return Ok(report);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let last = db.latest_report(DEVICE).await?.map(|r| r.report.config);
    bail!(
        "the agent did not report the document as applied within {budget:?} (last report's config: {last:?})"
    )
}

/// What the demo prints after the run.
fn describe(text: &mut String, report: &Report, state: &Path) -> anyhow::Result<()> {
    let state_dir = StateDir::open(state)?;
    let central = truenas_agent::central::CentralState::load(&state_dir)?.unwrap_or_default();
    let daemon = DaemonRecord::load(&state_dir)?;
    if let Some(plan) = daemon.as_ref().filter(|d| !d.last_plan.is_empty()) {
        let _ = writeln!(text, "\n== The agent's plan and what it did");
        for line in &plan.last_plan {
            let _ = writeln!(text, "  {line}");
        }
    }
    let _ = writeln!(
        text,
        "\n== What the agent changed on the box (the report's config.changes)"
    );
    for change in &report.config.changes {
        let fields = if change.fields.is_empty() {
            String::new()
        } else {
            format!(" ({})", change.fields.join(", "))
        };
        let _ = writeln!(text, "  {:<15} {}{fields}", change.action, change.target);
    }
    if let Some(applied) = &central.applied {
        let _ = writeln!(
            text,
            "\n== Applied revision {} (verified by {}), recorded in {}",
            applied.revision,
            applied.verified_by,
            state_dir
                .file(truenas_agent::central::state::STATE_FILE)
                .display()
        );
    }
    let _ = writeln!(text, "\n== The report as central stored it (no secrets)");
    let _ = writeln!(text, "{}", serde_json::to_string_pretty(report)?);
    let _ = writeln!(text, "\n== In short (from the report)");
    summary(text, report);
    if let Some(daemon) = daemon {
        let _ = writeln!(text, "  daemon      {}", daemon.status);
    }
    Ok(())
}

/// Drops the spaces the indentation left on empty lines.
fn trim_line_ends(text: &mut String) {
    *text = text
        .lines()
        .map(str::trim_end)
        .collect::<Vec<_>>()
        .join("\n");
    text.push('\n');
}

/// A technician's one-screen summary of a report.
fn summary(text: &mut String, r: &Report) {
    let guid = r.device.guid.as_deref().unwrap_or("(none)");
    let source = r
        .device
        .guid_source
        .map(|s| {
            format!(
                " (from {})",
                serde_json::to_value(s)
                    .unwrap_or_default()
                    .as_str()
                    .unwrap_or("?")
            )
        })
        .unwrap_or_default();
    let _ = writeln!(
        text,
        "  device      {} — TrueNAS {} — GUID {guid}{source} on {}",
        r.device.hostname.as_deref().unwrap_or("?"),
        r.device.truenas_version.as_deref().unwrap_or("?"),
        r.device.root_pool.as_deref().unwrap_or("?")
    );
    let pools: Vec<String> = r
        .device
        .pools
        .iter()
        .map(|p| {
            format!(
                "{} {}",
                p.name,
                if p.healthy { "healthy" } else { "UNHEALTHY" }
            )
        })
        .collect();
    let _ = writeln!(text, "  pools       {}", pools.join(", "));
    let state = serde_json::to_value(r.config.state).unwrap_or_default();
    let _ = writeln!(
        text,
        "  document    revision {} {}, {} change(s), {} error(s)",
        r.config
            .revision
            .map_or_else(|| "-".to_owned(), |v| v.to_string()),
        state.as_str().unwrap_or("?"),
        r.config.changes.len(),
        r.config.errors.len()
    );
    for c in &r.health.cloud_sync {
        let _ = writeln!(
            text,
            "  backup      {}: task #{} {}{}",
            c.pool,
            c.task_id.map_or_else(|| "-".to_owned(), |t| t.to_string()),
            c.state,
            if c.overdue { " OVERDUE" } else { "" }
        );
    }
    for s in &r.health.snapshots {
        let _ = writeln!(
            text,
            "  snapshots   {}: task #{}",
            s.pool,
            s.task_id.map_or_else(|| "-".to_owned(), |t| t.to_string())
        );
    }
    let failing: Vec<&str> = r
        .checklist
        .iter()
        .filter(|c| c.status == CheckStatus::Fail)
        .map(|c| c.title.as_str())
        .collect();
    if !r.checklist.is_empty() {
        let _ = writeln!(
            text,
            "  checklist   {} item(s), {} failing{}",
            r.checklist.len(),
            failing.len(),
            if failing.is_empty() {
                String::new()
            } else {
                format!(": {}", failing.join("; "))
            }
        );
    }
}
