//! Command-line front end.
//!
//! Owns: the clap definitions, the tokio runtime, logging set-up, and the mapping of
//! each subcommand's outcome to an exit code. One file per subcommand; each exposes
//! `Args` (clap) and `async fn run(args, &GlobalArgs) -> anyhow::Result<ExitCode>`.
//! Does not: hold business logic — subcommands call into the library modules.
//! Invariants: the only module (with `main.rs`) that prints to stdout/stderr; no secret
//! is ever printed (library types redact them).

#![allow(clippy::print_stdout, clippy::print_stderr)]

pub mod apply;
#[cfg(feature = "central-server")]
pub mod central;
#[cfg(feature = "central-server")]
pub mod central_provision;
pub mod common;
#[cfg(all(feature = "sim", feature = "central-server"))]
pub mod demo;
pub mod document;
pub mod identity;
pub mod install;
pub mod logging;
pub mod plan;
pub mod run;
#[cfg(feature = "sim")]
pub mod sim;
pub mod status;
pub mod verify;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Provisions and watches a TrueNAS appliance's offsite backup from a signed desired state.
#[derive(Debug, Parser)]
#[command(name = "truenas-agent", version = crate::VERSION, about, long_about = None)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

/// Options every subcommand understands.
#[derive(Debug, Clone, clap::Args)]
pub struct GlobalArgs {
    /// Agent configuration file (TOML). Values given on the command line win over it.
    #[arg(long, global = true, env = "TRUENAS_AGENT_CONFIG")]
    pub config: Option<PathBuf>,
    /// Middleware URL: unix:///var/run/middleware/middlewared.sock (default),
    /// ws://127.0.0.1:6000, or wss://host.
    #[arg(long, global = true, env = "TRUENAS_AGENT_MIDDLEWARE")]
    pub middleware: Option<String>,
    /// File holding a middleware API key (only for ws:// loopback or wss://).
    #[arg(long, global = true)]
    pub api_key_file: Option<PathBuf>,
    /// Owner of the API key (required with an API key on TrueNAS 25.04+).
    #[arg(long, global = true)]
    pub api_user: Option<String>,
    /// Extra CA certificate (PEM) trusted for wss://.
    #[arg(long, global = true)]
    pub tls_ca_file: Option<PathBuf>,
    /// Pinned SHA-256 fingerprint of the middleware's TLS certificate (hex).
    #[arg(long, global = true)]
    pub tls_pin: Option<String>,
    /// State directory (owned ids, fingerprints, spool, last results).
    #[arg(long, global = true, env = "TRUENAS_AGENT_STATE_DIR")]
    pub state_dir: Option<PathBuf>,
    /// Log filter, e.g. `info` or `truenas_agent=debug` (also RUST_LOG).
    #[arg(long, global = true, default_value = "info", env = "TRUENAS_AGENT_LOG")]
    pub log: String,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the agent daemon: pull the desired state, converge, report (systemd service).
    Run(run::Args),
    /// Show what `apply` would change for a desired-state document (writes nothing).
    Plan(plan::Args),
    /// Converge the NAS to a desired-state document once.
    Apply(apply::Args),
    /// One-screen diagnosis for a technician (exit 0 healthy, 1 degraded, 2 failing or unknown).
    Status(status::Args),
    /// Evaluate the SOP verification checklist on this box (and in the B2 bucket).
    Verify(verify::Args),
    /// Show or ensure the device GUID stored on the root pool.
    Identity(identity::Args),
    /// Install the agent the TrueNAS way (files on a pool, init script, systemd unit).
    Install(install::InstallArgs),
    /// Remove the agent's init script and unit (keeps state unless --purge).
    Uninstall(install::UninstallArgs),
    /// Run a simulated TrueNAS middleware (tests, demo).
    #[cfg(feature = "sim")]
    Sim(sim::Args),
    /// The reference central server and its tools.
    #[cfg(feature = "central-server")]
    Central(central::Args),
    /// Run the whole system on this machine: simulator, central server and agent.
    #[cfg(all(feature = "sim", feature = "central-server"))]
    Demo(demo::Args),
}

/// Parses the command line and runs the chosen subcommand.
pub fn run() -> anyhow::Result<ExitCode> {
    let cli = Cli::parse();
    logging::init(&cli.global.log)?;
    // The unit sets TasksMax=64; tokio's default blocking pool may grow to 512 threads
    // (zfs/systemctl execs and file I/O run there). A handful is plenty.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .max_blocking_threads(8)
        .build()?;
    runtime.block_on(dispatch(cli))
}

async fn dispatch(cli: Cli) -> anyhow::Result<ExitCode> {
    let global = &cli.global;
    match cli.command {
        Command::Run(args) => run::run(args, global).await,
        Command::Plan(args) => plan::run(args, global).await,
        Command::Apply(args) => apply::run(args, global).await,
        Command::Status(args) => status::run(args, global).await,
        Command::Verify(args) => verify::run(args, global).await,
        Command::Identity(args) => identity::run(args, global).await,
        Command::Install(args) => install::run_install(args, global).await,
        Command::Uninstall(args) => install::run_uninstall(args, global).await,
        #[cfg(feature = "sim")]
        Command::Sim(args) => sim::run(args, global).await,
        #[cfg(feature = "central-server")]
        Command::Central(args) => central::run(args, global).await,
        #[cfg(all(feature = "sim", feature = "central-server"))]
        Command::Demo(args) => demo::run(args, global).await,
    }
}
