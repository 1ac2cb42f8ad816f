//! `truenas-agent install [--check]` and `truenas-agent uninstall`.
//!
//! Prints what was done and the check, one line per piece with its fix; `--json` prints
//! the serialisable outcome/report instead (for RMMs and the VM test).
//! Exit codes (the one rule, [`crate::exit::Exit`]): 0 everything in place; 1 a piece is
//! missing or broken (install ran but the check fails, or `--check` found problems —
//! `status` shows the same as warnings); 2 refused (a bad flag, dataset, config or token
//! file: nothing was done); 3 could not do or determine it (middleware unreachable, a
//! middleware, systemd or file operation failed).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;

use super::common::ConnectFailed;
use crate::config::AgentConfig;
use crate::exit::Exit;
use crate::fault::Fault;
use crate::install::{self, CheckReport, CheckStatus, DatasetName, Host, InstallRequest};
use crate::middleware::Client;

/// Arguments of `install`.
#[derive(Debug, clap::Args)]
pub struct InstallArgs {
    /// Install dataset (default: `<root pool>/.truenas-agent`; the root pool is the only
    /// pool, or the one carrying the device GUID).
    #[arg(long, value_name = "POOL/DATASET")]
    pub dataset: Option<String>,
    /// Agent config (TOML) to install; required the first time. Validated as the agent
    /// loads it; `state_dir` and `central.token_file` are pointed at the install dataset.
    #[arg(long, value_name = "FILE")]
    pub agent_config: Option<PathBuf>,
    /// File holding the device token for central; required the first time when the
    /// config has a [central] section. Copied with mode 0600; never printed.
    #[arg(long, value_name = "FILE")]
    pub token_file: Option<PathBuf>,
    /// Install this systemd-sysext image (packaging/sysext/build.sh) instead of the
    /// running binary: it is kept on the pool, copied to /run/extensions and merged at
    /// every boot.
    #[arg(long, value_name = "IMAGE")]
    pub sysext: Option<PathBuf>,
    /// Only verify every piece of the installation and say what is missing.
    #[arg(long)]
    pub check: bool,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub host: HostArgs,
}

/// Arguments of `uninstall`.
#[derive(Debug, clap::Args)]
pub struct UninstallArgs {
    /// Install dataset (default: the one named by our init-script entry).
    #[arg(long, value_name = "POOL/DATASET")]
    pub dataset: Option<String>,
    /// Also remove the binary, config, token and state from the install dataset.
    #[arg(long)]
    pub purge: bool,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub host: HostArgs,
}

/// Host paths, overridable for tests (hidden).
#[derive(Debug, clap::Args)]
pub struct HostArgs {
    /// systemd's runtime unit directory.
    #[arg(long, hide = true, default_value = "/run/systemd/system")]
    pub systemd_run_dir: PathBuf,
    /// The `systemctl` binary.
    #[arg(long, hide = true, default_value = "/bin/systemctl")]
    pub systemctl: PathBuf,
}

impl HostArgs {
    fn host(&self) -> Host {
        let mut host = Host::default();
        host.sys.run_dir.clone_from(&self.systemd_run_dir);
        host.sys.systemctl.clone_from(&self.systemctl);
        host
    }
}

fn dataset(arg: Option<&String>) -> anyhow::Result<Option<DatasetName>> {
    arg.map(|d| DatasetName::parse(d).context("--dataset"))
        .transpose()
}

/// Runs `install` (or `install --check`).
pub(crate) async fn run_install(
    args: InstallArgs,
    global: &super::GlobalArgs,
) -> anyhow::Result<ExitCode> {
    let Start {
        host,
        dataset,
        config,
        mw,
    } = match start(&args.host, args.dataset.as_ref(), global).await? {
        Ok(start) => start,
        Err(code) => return Ok(code),
    };
    if args.check {
        let report = match install::check(&mw, &host, dataset, &config.guid_property).await {
            Ok(report) => report,
            Err(err) => return Ok(install_error(err)),
        };
        print_check(&report, args.json)?;
        return Ok(exit_for(&report));
    }
    let req = InstallRequest {
        dataset,
        binary: std::env::current_exe().context("cannot find the running binary to install")?,
        sysext_image: args.sysext,
        agent_config: args.agent_config,
        token_file: args.token_file,
        guid_property: config.guid_property,
    };
    let outcome = match install::install(&mw, &host, &req).await {
        Ok(outcome) => outcome,
        Err(err) => return Ok(install_error(err)),
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&outcome)?);
        return Ok(exit_for(&outcome.check));
    }
    println!(
        "truenas-agent {} installed on {} ({})",
        crate::VERSION,
        outcome.layout.dataset,
        outcome.layout.root.display()
    );
    println!(
        "  dataset:     {}",
        if outcome.created_dataset {
            "created"
        } else {
            "existing"
        }
    );
    println!(
        "  files:       {}",
        if outcome.written.is_empty() {
            "unchanged".to_owned()
        } else {
            format!("written: {}", outcome.written.join(", "))
        }
    );
    println!("  init script: {}", describe_init(&outcome.init_script));
    println!(
        "  service:     {}",
        if outcome.restarted {
            "(re)started"
        } else {
            "already running, left alone"
        }
    );
    println!();
    print_check(&outcome.check, false)?;
    Ok(exit_for(&outcome.check))
}

fn describe_init(change: &install::InitChange) -> String {
    match change {
        install::InitChange::Created { id } => format!("registered (id {id}, POSTINIT)"),
        install::InitChange::Updated { id, fields } => {
            format!("updated (id {id}: {})", fields.join(", "))
        }
        install::InitChange::Unchanged { id } => format!("unchanged (id {id})"),
    }
}

/// Runs `uninstall`.
pub(crate) async fn run_uninstall(
    args: UninstallArgs,
    global: &super::GlobalArgs,
) -> anyhow::Result<ExitCode> {
    let Start {
        host,
        dataset,
        config: _,
        mw,
    } = match start(&args.host, args.dataset.as_ref(), global).await? {
        Ok(start) => start,
        Err(code) => return Ok(code),
    };
    let outcome = match install::uninstall(&mw, &host, dataset, args.purge).await {
        Ok(outcome) => outcome,
        Err(err) => return Ok(install_error(err)),
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&outcome)?);
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "init script entries removed: {}",
        if outcome.removed_init_scripts.is_empty() {
            "none".to_owned()
        } else {
            format!("{:?}", outcome.removed_init_scripts)
        }
    );
    println!(
        "service: {}",
        if outcome.stopped {
            "stopped, unit removed"
        } else {
            "was not loaded"
        }
    );
    if let Some(root) = &outcome.purged {
        println!(
            "purged: binary, config, token and state removed from {}; delete the (now empty) \
             dataset in Datasets if you no longer need it",
            root.display()
        );
    }
    if let Some(root) = &outcome.kept {
        println!(
            "kept: config, token and state in {} (use --purge to remove them)",
            root.display()
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// Prints the check: one line per piece, the fix under each failure.
pub(crate) fn print_check(report: &CheckReport, json: bool) -> anyhow::Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(report)?);
        return Ok(());
    }
    println!("install check for {}:", report.dataset);
    for item in &report.items {
        let mark = match item.status {
            CheckStatus::Pass => "ok  ",
            CheckStatus::Fail => "FAIL",
        };
        println!("  {mark} {:<15} {}", item.id, item.detail);
        if let Some(fix) = &item.fix {
            println!("       {:<15} fix: {fix}", "");
        }
    }
    println!("{}", report.summary());
    Ok(())
}

/// A failing piece of the installation needs attention (`status` shows it as a warning:
/// the agent may not come back after a reboot or an update).
fn exit_for(report: &CheckReport) -> ExitCode {
    if report.ok() {
        Exit::Ok.into()
    } else {
        Exit::Attention.into()
    }
}

/// Prints why the command could not go on and returns `exit`.
/// What `install` and `uninstall` start from.
struct Start {
    host: Host,
    dataset: Option<DatasetName>,
    config: AgentConfig,
    mw: Client,
}

/// The host paths, `--dataset`, the configuration, then the middleware. A bad flag, config
/// or middleware setting is an error (exit 2); an unreachable middleware is `Err` with
/// its exit code (3, printed).
async fn start(
    host: &HostArgs,
    dataset_arg: Option<&String>,
    global: &super::GlobalArgs,
) -> anyhow::Result<Result<Start, ExitCode>> {
    let host = host.host();
    let dataset = dataset(dataset_arg)?;
    let config = super::common::agent_config(global)?;
    Ok(match super::common::connect(&config, None).await {
        Ok(mw) => Ok(Start {
            host,
            dataset,
            config,
            mw,
        }),
        Err(ConnectFailed::Settings(e)) => return Err(e.into()),
        Err(e @ ConnectFailed::Connect(_)) => Err(cannot(&e.into(), Exit::Unknown)),
    })
}

fn cannot(err: &anyhow::Error, exit: Exit) -> ExitCode {
    eprintln!("error: {err:#}");
    exit.into()
}

/// An install error by who has to act: the operator's input was refused (2), or the NAS
/// could not be used (3).
fn install_error(err: install::InstallError) -> ExitCode {
    let exit = match err.fault() {
        Fault::Operator | Fault::Central | Fault::Bug => Exit::Failing,
        Fault::Nas | Fault::Transient => Exit::Unknown,
    };
    cannot(&anyhow::Error::new(err), exit)
}
