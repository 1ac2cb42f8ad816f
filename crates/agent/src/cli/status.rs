//! `truenas-agent status [--json] [-f DOC --allow-unsigned] [--check-b2]`: the one-screen
//! diagnosis for a field technician, or stable JSON for an RMM.
//!
//! Owns: gathering the inputs of [`crate::status::assemble`] — the state dir (read only:
//! `health.json`, `ownership.json`, `identity.json`, `central.json`, the spool,
//! `daemon.json`), whether the daemon runs (`systemctl show`, else the recorded pid), the
//! token file's mode, the optional document, a short-timeout connection and health pass —
//! scrubbing the finished report of every secret it could meet (the document's and the
//! NAS's own, read first: [`crate::scrub::learn`]), and printing it with the documented
//! exit code (0 healthy, 1 degraded, 2 failing, 3 unknown).
//! Does not: write anything (not even `health.json`: the daemon and `verify` own it), or
//! decide what is a problem (`status` and `health` do).
//! Invariants: works without a running daemon and with the middleware down (then it says
//! so and shows what the state dir remembers); every read is bounded by `--timeout`.
//! Limitations: see `crate::status` for sections not wired in this build.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use crate::b2::ClientOptions;
use crate::central::CentralState;
use crate::central::spool::SPOOL_FILE;
use crate::config::{AgentConfig, ConfigError};
use crate::daemon::DaemonRecord;
use crate::desired::DesiredState;
use crate::health::HealthMemory;
use crate::health::assess::{AssessOptions, assess, local_offset};
use crate::middleware::Middleware;
use crate::scrub::Scrubber;
use crate::state_dir::StateDir;
use crate::status::{
    CentralInputs, DaemonInputs, DocumentInfo, MiddlewareProbe, ServiceState, StatusInputs,
    StatusReport, assemble, render_text, spool_depth,
};

/// Arguments of `status`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Print the report as JSON (schema truenas-agent.status/v1, see docs/operations.md).
    #[arg(long)]
    pub json: bool,
    /// Also evaluate the SOP checklist against this desired-state document.
    #[arg(short = 'f', long = "file", value_name = "DOC")]
    pub file: Option<PathBuf>,
    /// Accept a local document without a verified signature (tests, lab boxes).
    #[arg(long)]
    pub allow_unsigned: bool,
    /// With -f: also check the B2 bucket now (otherwise the last `verify` result is shown).
    #[arg(long)]
    pub check_b2: bool,
    /// Seconds each middleware read (and connecting) may take: 1 to 300.
    #[arg(long, default_value_t = 5, value_name = "SECONDS",
          value_parser = clap::value_parser!(u64).range(1..=300))]
    pub timeout: u64,
    /// B2 API base URL (a B2 test double); https only, or http on loopback. Default: the
    /// config's `[b2] api_url` (itself `https://api.backblazeb2.com` by default).
    #[arg(long, hide = true)]
    pub b2_api: Option<String>,
}

/// Everything `status` needs besides the middleware and the document.
#[derive(Debug, Clone)]
pub struct Context {
    pub state_dir: PathBuf,
    pub url: String,
    pub version: String,
    pub assess: AssessOptions,
    /// The agent config file's central settings: `None` = no config file given;
    /// `Some(None)` = a config without `[central]`.
    pub central_config: Option<Option<CentralSettings>>,
    /// Where systemd and its tools are, for the install check (`None`: skip the check).
    pub host: Option<crate::install::Host>,
}

/// What `status` needs of the config's `[central]` section.
#[derive(Debug, Clone)]
pub struct CentralSettings {
    pub url: String,
    pub poll_interval: Duration,
    pub report_interval: Duration,
    /// The device token file (its mode is checked, it is never read).
    pub token_file: PathBuf,
}

impl From<&crate::config::CentralConfig> for CentralSettings {
    fn from(c: &crate::config::CentralConfig) -> Self {
        Self {
            url: c.url.to_string(),
            poll_interval: c.poll_interval,
            report_interval: c.report_interval,
            token_file: c.token_file.clone(),
        }
    }
}

/// What the state dir says about central: `central.json` and the spool depth.
fn central_inputs(state: &StateDir, ctx: &Context) -> CentralInputs {
    let (central_state, state_error) = match CentralState::load(state) {
        Ok(s) => (s, None),
        Err(e) => (None, Some(crate::fault::error_chain(&e))),
    };
    let spool = crate::fs::read_optional(&state.file(SPOOL_FILE))
        .ok()
        .map(|bytes| bytes.map_or(0, |b| spool_depth(&b)));
    CentralInputs {
        configured: ctx
            .central_config
            .as_ref()
            .map(|c| c.as_ref().map(|c| c.url.clone())),
        poll_interval: ctx
            .central_config
            .iter()
            .flatten()
            .map(|c| c.poll_interval)
            .next(),
        report_interval: ctx
            .central_config
            .iter()
            .flatten()
            .map(|c| c.report_interval)
            .next(),
        state: central_state,
        state_error,
        spool_depth: spool,
    }
}

/// The document as given with `-f`: not given, read, or refused (with the reason).
#[derive(Debug)]
pub enum DocumentArg {
    None,
    Read(Box<DesiredState>),
    Refused(String),
}

/// Builds the report. `mw` is the connected middleware, or why connecting failed.
pub async fn report_with<M: Middleware>(
    mw: Result<&M, String>,
    document: &DocumentArg,
    ctx: &Context,
) -> StatusReport {
    let state = StateDir::at(&ctx.state_dir);
    // Every secret this report could meet — the document's and the ones the NAS holds
    // (read first, so that even a failed observation's error text is scrubbed).
    let mut scrubber = Scrubber::default();
    if let DocumentArg::Read(d) = document {
        scrubber.add_desired(d);
    }
    if let Ok(mw) = &mw {
        scrubber.merge(&crate::scrub::learn(*mw, ctx.assess.call_timeout).await);
    }
    let identity = crate::identity::last(&state).map_err(|e| crate::fault::error_chain(&e));
    let (memory, memory_error) = match HealthMemory::load(&state) {
        Ok(m) => (Some(m), None),
        Err(e) => (None, Some(crate::fault::error_chain(&e))),
    };
    let desired = match document {
        DocumentArg::Read(d) => Some(d.as_ref()),
        DocumentArg::None | DocumentArg::Refused(_) => None,
    };
    let (install, install_error) = match (&mw, &ctx.host) {
        (Ok(mw), Some(host)) => install_check(*mw, host, &ctx.assess).await,
        _ => (None, None),
    };
    let (probe, assessment, health_error) = match mw {
        Err(error) => (
            MiddlewareProbe::Unreachable {
                url: ctx.url.clone(),
                error,
            },
            None,
            None,
        ),
        Ok(mw) => {
            let probe = MiddlewareProbe::Reachable {
                url: ctx.url.clone(),
                api: mw.api(),
            };
            match assess(mw, desired, &state, &ctx.assess).await {
                Ok(a) => (probe, Some(a), None),
                Err(e) => (probe, None, Some(crate::fault::error_chain(&e))),
            }
        }
    };
    if let Some(a) = &assessment {
        scrubber.add_observed(&a.observed);
    }
    let mut daemon = daemon_inputs(&state, ctx).await;
    daemon.record_error = daemon.record_error.map(free_text(&scrubber));
    crate::scrub::remember(&scrubber);
    // Error texts may quote the middleware: scrubbed like any text from the NAS.
    let free = free_text(&scrubber);
    let health_error = health_error.map(&free);
    let memory_error = memory_error.map(&free);
    let install_error = install_error.map(&free);
    let identity = identity.map_err(&free);
    let probe = match probe {
        MiddlewareProbe::Unreachable { url, error } => MiddlewareProbe::Unreachable {
            url,
            error: free(error),
        },
        reachable @ MiddlewareProbe::Reachable { .. } => reachable,
    };
    // The pass's memory carries a B2 report run just now (`--check-b2`); else the file's.
    let memory = assessment.as_ref().map(|a| a.memory.clone()).or(memory);
    let mut report = assemble(&StatusInputs {
        now: ctx.assess.now,
        version: ctx.version.clone(),
        state_dir: ctx.state_dir.display().to_string(),
        document: desired.map(|d| DocumentInfo {
            revision: d.revision,
            mode: d.mode.as_str().to_owned(),
            device_guid: d.device.guid.map(|g| g.to_string()),
            root_pool: d.device.root_pool.clone(),
        }),
        document_error: match document {
            DocumentArg::Refused(why) => Some(why.clone()),
            DocumentArg::None | DocumentArg::Read(_) => None,
        },
        middleware: probe,
        observed: assessment.as_ref().map(|a| &a.observed),
        health: assessment.as_ref().map(|a| &a.health),
        health_error,
        memory: memory.as_ref(),
        memory_error,
        central: central_inputs(&state, ctx),
        guid_property: ctx.assess.guid_property.clone(),
        configured_root: ctx.assess.root_pool.clone(),
        identity: identity.clone().ok().flatten(),
        identity_error: identity.err(),
        install,
        install_error,
        daemon,
    });
    if let Some(problem) = snmp_retry_problem(&state) {
        crate::status::add_problem(&mut report, problem);
    }
    scrub_report(report, &scrubber)
}

/// A failed SNMP apply the agent keeps retrying (`ownership.json` `snmp_retry`).
fn snmp_retry_problem(state: &StateDir) -> Option<crate::health::Problem> {
    let retry = crate::apply::OwnershipStore::load(state)
        .ok()?
        .get()
        .snmp_retry
        .clone()?;
    Some(crate::health::Problem {
        level: crate::health::Level::Warning,
        area: crate::health::Area::Snmp,
        subject: None,
        message: format!(
            "the last SNMP apply failed at {} (\"{}\": {}); the middleware may hold the new \
             settings while snmpd lacks the SNMPv3 user",
            retry.failed_at, retry.step, retry.error
        ),
        next_step: "Nothing to do while the agent runs: every pass re-applies SNMP (the \
                    middleware re-creates the v3 user) and starts snmpd until it works. If it \
                    keeps failing, check `systemctl status snmpd` and /var/log/middlewared.log."
            .to_owned(),
    })
}

/// The report with every known secret replaced in every text it holds.
fn scrub_report(report: StatusReport, scrubber: &Scrubber) -> StatusReport {
    if scrubber.is_empty() {
        return report;
    }
    #[allow(
        clippy::expect_used,
        reason = "invariant: a StatusReport round-trips through serde_json (plain data, \
                  string keys; `round_trips` in status::tests)"
    )]
    let mut value = serde_json::to_value(&report).expect("invariant: the report serialises");
    scrubber.scrub_json(&mut value);
    #[allow(
        clippy::expect_used,
        reason = "invariant: scrubbing only rewrites strings, so the value still fits"
    )]
    let scrubbed = serde_json::from_value(value).expect("invariant: the report deserialises");
    scrubbed
}

/// Scrubs a free text (an error message) with every known and apparent secret.
fn free_text(scrubber: &Scrubber) -> impl Fn(String) -> String + Copy + '_ {
    move |text: String| scrubber.scrub(&text)
}

/// What `status` knows about the daemon: `daemon.json`, whether it runs (systemd, else
/// the recorded pid), and whether the token file would stop its next start.
async fn daemon_inputs(state: &StateDir, ctx: &Context) -> DaemonInputs {
    let (record, record_error) = match DaemonRecord::load(state) {
        Ok(record) => (record, None),
        Err(e) => (None, Some(crate::fault::error_chain(&e))),
    };
    let central = ctx.central_config.as_ref().and_then(Option::as_ref);
    let service = service_state(ctx.host.as_ref(), record.as_ref(), ctx.assess.call_timeout).await;
    DaemonInputs {
        record,
        record_error,
        service,
        // The rule the daemon starts with (the token itself is never read here).
        token_problem: central.and_then(|c| {
            crate::config::check_private_file("central.token_file", &c.token_file)
                .err()
                .map(|e| crate::fault::error_chain(&e))
        }),
        expected: central.is_some(),
    }
}

/// Whether the daemon runs: `systemctl show truenas-agent.service` (exec'd without a
/// shell, bounded by `timeout`) when the unit is loaded; else the pid `daemon.json`
/// recorded, looked up in `/proc`.
async fn service_state(
    host: Option<&crate::install::Host>,
    record: Option<&DaemonRecord>,
    timeout: Duration,
) -> ServiceState {
    let mut systemd_error = None;
    if let Some(host) = host {
        let systemd = crate::install::Systemd::new(&host.sys.systemctl, &host.sys.sh);
        match tokio::time::timeout(timeout, systemd.show()).await {
            Ok(Ok(unit)) if unit.load_state == "loaded" => {
                return ServiceState::Systemd {
                    active_state: unit.active_state,
                    sub_state: unit.sub_state,
                    result: unit.result,
                    main_pid: unit.main_pid,
                };
            }
            Ok(Ok(_)) => {}
            Ok(Err(e)) => systemd_error = Some(e.to_string()),
            Err(_) => systemd_error = Some(format!("systemctl gave no answer within {timeout:?}")),
        }
    }
    match record {
        Some(r) => ServiceState::Pid {
            pid: r.pid,
            alive: r.stopped.is_none()
                && r.pid > 0
                && std::path::Path::new(&format!("/proc/{}", r.pid)).exists(),
        },
        None => ServiceState::Unknown {
            why: systemd_error.unwrap_or_else(|| {
                "no truenas-agent unit is loaded and the daemon never ran on this state \
                 directory"
                    .to_owned()
            }),
        },
    }
}

/// `install --check` of the installed service, bounded in time (it runs `systemctl`).
async fn install_check<M: Middleware>(
    mw: &M,
    host: &crate::install::Host,
    assess: &AssessOptions,
) -> (Option<crate::install::CheckReport>, Option<String>) {
    let budget = assess.call_timeout.saturating_mul(4);
    let check = crate::install::check_if_installed(mw, host, &assess.guid_property);
    match tokio::time::timeout(budget, check).await {
        Ok(Ok(report)) => (report, None),
        Ok(Err(e)) => (None, Some(crate::fault::error_chain(&e))),
        Err(_) => (None, Some(format!("no answer within {budget:?}"))),
    }
}

/// Runs `status`.
pub async fn run(args: Args, global: &super::GlobalArgs) -> anyhow::Result<ExitCode> {
    // A bad flag is refused at once, naming the flag (the technician typed it just now);
    // a bad config file is reported, not fatal: status then uses the defaults and flags.
    let (config, config_error) = match super::common::agent_config(global) {
        Ok(c) => (c, None),
        Err(e @ ConfigError::Flags { .. }) => return Err(e.into()),
        Err(e) => (
            AgentConfig::default().with_overrides(super::common::overrides(global))?,
            Some(crate::fault::error_chain(&e)),
        ),
    };
    let document = match &args.file {
        None => DocumentArg::None,
        Some(path) => match super::document::load(path, args.allow_unsigned, &config) {
            Ok((d, _)) => DocumentArg::Read(Box::new(d)),
            Err(e) => DocumentArg::Refused(e.summary()),
        },
    };
    let central_config = global
        .config
        .as_ref()
        .map(|_| config.central.as_ref().map(CentralSettings::from));
    let now = chrono::Utc::now();
    let timeout = Duration::from_secs(args.timeout);
    let ctx = Context {
        state_dir: config.state_dir.clone(),
        url: config.middleware.url.clone(),
        version: crate::VERSION.to_owned(),
        assess: AssessOptions {
            now,
            offset: local_offset(now),
            call_timeout: timeout,
            b2: args.check_b2.then(|| ClientOptions {
                api_base: args
                    .b2_api
                    .clone()
                    .unwrap_or_else(|| config.b2.api_url.clone()),
                request_timeout: Duration::from_secs(10),
                ..ClientOptions::default()
            }),
            guid_property: config.guid_property.clone(),
            root_pool: config.root_pool.clone(),
        },
        central_config,
        host: Some(crate::install::Host::default()),
    };
    // `report_with` learns the NAS's secrets first thing.
    let connected = super::common::connect_only(&config, Some(timeout))
        .await
        .map(|(client, _)| client)
        .map_err(|e| crate::fault::error_chain(&e));
    let mut report = report_with(connected.as_ref().map_err(Clone::clone), &document, &ctx).await;
    if let Some(error) = config_error {
        crate::status::add_problem(
            &mut report,
            crate::health::Problem {
                level: crate::health::Level::Warning,
                area: crate::health::Area::Agent,
                subject: None,
                message: format!("the agent config file could not be used: {error}"),
                next_step: "Fix the file (every problem is listed) — the daemon refuses to \
                            start with it."
                    .to_owned(),
            },
        );
    }
    let text = if args.json {
        format!("{}\n", serde_json::to_string_pretty(&report)?)
    } else {
        render_text(&report)
    };
    // Scrubbed once more with every secret this process met; a closed pipe
    // (`status | head`) surfaces as an error `cli::finish` maps to exit 0.
    super::write_stdout(&text)?;
    Ok(ExitCode::from(report.exit_code))
}
