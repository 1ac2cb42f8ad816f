//! The whole system on one machine, over real sockets: a simulated 2-pool TrueNAS
//! (socket server on a temp unix socket), the reference central server on
//! `127.0.0.1:0`, and the agent daemon in-process (the production engine, a real
//! middleware client, reqwest to central) with short timings.
//!
//! The agent reaches ZFS user properties through the simulator's middleware, never the
//! host's `zfs` command: tests must not touch real pools.

#![allow(dead_code)]

use std::path::PathBuf;
use std::time::Duration;

use ed25519_dalek::SigningKey;
use serde_json::{Value, json};
use tempfile::TempDir;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use truenas_agent::central::dsse::TrustedKey;
use truenas_agent::central::report::{ConfigState, Report};
use truenas_agent::config::AgentConfig;
use truenas_agent::daemon::agent::{self, AgentError, Runtime};
use truenas_agent::daemon::sop::SopSettings;
use truenas_agent::daemon::{DaemonOptions, NoNotifier};
use truenas_agent::middleware::{ApiFlavor, Client, ConnectOptions};
use truenas_agent::zfs::{Backend, BackendChoice, MiddlewareProps};
use truenas_sim::scenario::B2Account;
use truenas_sim::{JobTiming, Scenario, ServeOptions, Server, Simulator};

pub use crate::central_fixture::{Central, DEVICE, TOKEN, signing_key};

pub const KEY_ID: &str = "0051a2b3c4d5e6f0000000001";
pub const BUCKET: &str = "truenas-a1b2c3d4e5f670718293a4b5c6d7e8f9";
pub const GUID: &str = "9babab19-acc0-4587-aa05-ccd8103a1148";

/// The contract's example document (every secret a canary) at `revision`.
pub fn document(revision: u64) -> Value {
    let path = crate::support::repo_root().join("tests/data/desired/example.json");
    let mut doc: Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    doc["revision"] = json!(revision);
    doc
}

/// A simulated TrueNAS serving both protocols on a temp unix socket.
pub struct Nas {
    pub sim: Simulator,
    server: Server,
    _dir: TempDir,
}

impl Nas {
    /// A fresh 2-pool box whose scoped B2 key sees the SOP bucket.
    pub async fn start(flavor: ApiFlavor) -> Self {
        let mut scenario = Scenario::two_pools(flavor);
        scenario.b2_accounts.push(B2Account {
            account: KEY_ID.into(),
            valid: true,
            buckets: Some(vec![BUCKET.into()]),
        });
        let sim = Simulator::new(scenario).with_job_timing(JobTiming::Auto {
            duration: Duration::from_millis(200),
        });
        let dir = tempfile::tempdir().unwrap();
        let server = sim
            .serve(ServeOptions {
                socket: Some(dir.path().join("middlewared.sock")),
                ..Default::default()
            })
            .await
            .unwrap();
        Self {
            sim,
            server,
            _dir: dir,
        }
    }

    pub fn url(&self) -> String {
        self.server.unix_url().unwrap()
    }

    /// Closes every connection to the box (a middleware restart).
    pub fn drop_connections(&self) {
        self.server.drop_connections();
    }

    /// Calls that changed the box so far.
    pub fn writes(&self) -> Vec<String> {
        self.sim
            .write_calls()
            .into_iter()
            .map(|c| c.method)
            .collect()
    }
}

/// The agent's files: token, state dir, config.
pub struct AgentFiles {
    pub dir: TempDir,
    pub config: AgentConfig,
}

impl AgentFiles {
    /// A config for central at `url`, trusting `keys`, middleware at `mw_url`, long-poll
    /// `wait` seconds; the poll interval is a day, so a document that arrives within a
    /// test came through a held long-poll (or the first request).
    /// The daemon's B2 checks are off (`[b2] check_interval_secs = 0`): tests never reach
    /// the internet.
    pub fn new(url: &str, keys: &[&SigningKey], mw_url: &str, wait: u64) -> Self {
        Self::with_b2(url, keys, mw_url, wait, "check_interval_secs = 0")
    }

    /// Like [`AgentFiles::new`] with `b2` as the body of the config's `[b2]` section.
    pub fn with_b2(url: &str, keys: &[&SigningKey], mw_url: &str, wait: u64, b2: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let token = dir.path().join("token");
        truenas_agent::fs::write_atomic(&token, format!("{TOKEN}\n").as_bytes(), 0o600).unwrap();
        let keys: Vec<String> = keys
            .iter()
            .map(|k| format!("\"{}\"", TrustedKey::from_signing_key(k).to_config_string()))
            .collect();
        let text = format!(
            "state_dir = \"{state}\"\nroot_pool = \"pool0\"\n\
             [central]\nurl = \"{url}\"\ntoken_file = \"{token}\"\ntrusted_keys = [{keys}]\n\
             long_poll_wait_secs = {wait}\npoll_interval_secs = 86400\nreport_interval_secs = 3600\n\
             [middleware]\nurl = \"{mw_url}\"\n[b2]\n{b2}\n",
            state = dir.path().join("state").display(),
            token = token.display(),
            keys = keys.join(", "),
        );
        let path = dir.path().join("agent.toml");
        truenas_agent::fs::write_atomic(&path, text.as_bytes(), 0o600).unwrap();
        let config = AgentConfig::load(&path).unwrap();
        Self { dir, config }
    }

    pub fn state_path(&self) -> PathBuf {
        self.config.state_dir.clone()
    }

    pub fn config_path(&self) -> PathBuf {
        self.dir.path().join("agent.toml")
    }

    pub fn token_path(&self) -> PathBuf {
        self.dir.path().join("token")
    }
}

/// Test timings: one-second ticks, a short debounce and grace.
pub fn test_options(config: &AgentConfig) -> DaemonOptions {
    DaemonOptions {
        tick: Duration::from_secs(1),
        ping_every: 5,
        job_debounce: Duration::from_millis(300),
        stop_grace: Duration::from_secs(5),
        flush_timeout: Duration::from_secs(5),
        resubscribe: Duration::from_secs(1),
        ..DaemonOptions::new(None, config.central().unwrap())
    }
}

/// A running agent daemon (spawned on the current `LocalSet`).
pub struct Running {
    shutdown: CancellationToken,
    task: JoinHandle<Result<(), AgentError>>,
}

impl Running {
    /// Starts the agent for `config` with `options`.
    pub async fn start(config: &AgentConfig, options: DaemonOptions) -> Self {
        Self::try_start(config, options).await.unwrap()
    }

    /// Starts the agent, or says why it refused to start.
    pub async fn try_start(
        config: &AgentConfig,
        options: DaemonOptions,
    ) -> Result<Self, AgentError> {
        let prepared = agent::prepare(config)?;
        let config = config.clone();
        let connect = ConnectOptions {
            url: config.middleware.url.clone(),
            ..ConnectOptions::default()
        };
        let mw = Client::connect(connect).await.unwrap();
        let shutdown = CancellationToken::new();
        let stop = shutdown.clone();
        let task = tokio::task::spawn_local(async move {
            let props = MiddlewareProps::new(mw.clone());
            let backend = BackendChoice {
                backend: Backend::Middleware,
                fallback_reason: Some("tests use the simulator's middleware".into()),
                fallback_error: None,
            };
            // B2 as the config's `[b2]` section says (off unless a test points it at a fake).
            let settings = SopSettings::from_config(&config);
            let runtime = Runtime {
                middleware: &mw,
                events: &mw,
                props: &props,
                backend,
                notifier: &NoNotifier,
                settings,
                options,
            };
            Box::pin(prepared.run(runtime, &stop)).await
        });
        Ok(Self { shutdown, task })
    }

    /// SIGTERM: cancels and waits for a clean exit.
    pub async fn stop(self) {
        self.shutdown.cancel();
        tokio::time::timeout(Duration::from_secs(30), self.task)
            .await
            .expect("the daemon stops within its grace period")
            .unwrap()
            .unwrap();
    }
}

/// Reports central stored for the device, oldest first.
pub async fn reports(central: &Central) -> Vec<Report> {
    central
        .reports(DEVICE)
        .await
        .into_iter()
        .map(|r| r.report)
        .collect()
}

/// Waits (up to a minute of real time) until central stored a report matching `want`.
pub async fn wait_for_report(
    central: &Central,
    what: &str,
    want: impl Fn(&Report) -> bool,
) -> Report {
    for _ in 0..600 {
        if let Some(r) = reports(central).await.into_iter().find(|r| want(r)) {
            return r;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let seen: Vec<String> = reports(central)
        .await
        .iter()
        .map(|r| format!("{:?}/{:?}", r.config.revision, r.config.state))
        .collect();
    panic!("no report {what} within a minute; central has {seen:?}");
}

/// A report saying `revision` is applied.
pub fn applied(revision: u64) -> impl Fn(&Report) -> bool {
    move |r| r.config.revision == Some(revision) && r.config.state == ConfigState::Applied
}

/// A report saying the latest document was refused.
pub fn refused(r: &Report) -> bool {
    r.config.state == ConfigState::Refused
}

/// The whole system: box, central (signing with `key`), and the agent's files.
pub struct System {
    pub nas: Nas,
    pub central: Central,
    pub files: AgentFiles,
}

impl System {
    /// Starts a 25.10 box and central; the agent trusts central's key.
    pub async fn start() -> Self {
        Self::start_with(ApiFlavor::V25_10, None).await
    }

    /// Starts `flavor`; the agent trusts `trusted` (default: central's key).
    pub async fn start_with(flavor: ApiFlavor, trusted: Option<&SigningKey>) -> Self {
        let nas = Nas::start(flavor).await;
        let central = Central::start(signing_key(1)).await;
        central.register(DEVICE, TOKEN).await;
        let key = trusted.unwrap_or(&central.key);
        let files = AgentFiles::new(&central.url(), &[key], &nas.url(), 300);
        Self {
            nas,
            central,
            files,
        }
    }

    pub async fn agent(&self) -> Running {
        Running::start(&self.files.config, test_options(&self.files.config)).await
    }
}
