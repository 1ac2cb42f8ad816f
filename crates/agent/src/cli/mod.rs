//! Command-line front end.
//!
//! Owns: the clap definitions, the tokio runtime, logging set-up, and the mapping of
//! each subcommand's outcome to an exit code by the one rule of [`crate::exit`] (0 ok,
//! 1 attention, 2 failing or refused, 3 unknown). One file per subcommand; each exposes
//! its arguments (clap; `plan` and `apply` take [`document::DocumentArgs`], which `verify`
//! extends) and `async fn run(args, &GlobalArgs) -> anyhow::Result<ExitCode>`; what they
//! share — the configuration and the one middleware connect — is in [`common`].
//! Does not: hold business logic — subcommands call into the library modules.
//! Invariants: the only module (with `main.rs`) that prints to stdout/stderr; no secret
//! is ever printed: library types redact them, and every line printed here goes through
//! the process-wide scrubber ([`crate::scrub::scrub_output`]) — `println!`, `print!`,
//! `eprintln!` and `eprint!` are shadowed in this module tree by versions that scrub
//! (below), so no command can print around it; logs to stderr are scrubbed the same way
//! (`logging`).

#![allow(clippy::print_stdout, clippy::print_stderr)]

/// `println!` that scrubs every known secret from the line before writing it (panics on
/// a write error, as `std::println!` does; `status` and `verify` write through
/// [`write_stdout`] to see a closed pipe).
macro_rules! println {
    () => { ::std::print!("\n") };
    ($($arg:tt)*) => {
        ::std::print!("{}\n", $crate::scrub::scrub_output(&::std::format!($($arg)*)))
    };
}

/// `print!` that scrubs every known secret first.
macro_rules! print {
    ($($arg:tt)*) => {
        ::std::print!("{}", $crate::scrub::scrub_output(&::std::format!($($arg)*)))
    };
}

/// `eprintln!` that scrubs every known secret first.
macro_rules! eprintln {
    () => { ::std::eprint!("\n") };
    ($($arg:tt)*) => {
        ::std::eprint!("{}\n", $crate::scrub::scrub_output(&::std::format!($($arg)*)))
    };
}

/// `eprint!` that scrubs every known secret first.
#[allow(
    unused_macros,
    reason = "kept so that no command can print around the scrub"
)]
macro_rules! eprint {
    ($($arg:tt)*) => {
        ::std::eprint!("{}", $crate::scrub::scrub_output(&::std::format!($($arg)*)))
    };
}

pub(crate) mod apply;
pub mod common;
pub(crate) mod document;
mod global;
pub(crate) mod identity;
pub(crate) mod install;
pub mod logging;
pub(crate) mod plan;
pub(crate) mod run;
pub mod status;
pub mod verify;

pub use global::{GlobalArgs, write_stdout};

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

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the agent daemon: pull the desired state, converge, report (systemd service).
    Run(run::Args),
    /// Show what `apply` would change for a desired-state document (writes nothing).
    Plan(document::DocumentArgs),
    /// Converge the NAS to a desired-state document once.
    Apply(document::DocumentArgs),
    /// One-screen diagnosis for a technician (exit 0 healthy, 1 degraded, 2 failing, 3 unknown).
    Status(status::Args),
    /// Evaluate the SOP verification checklist on this box (and in the B2 bucket).
    Verify(verify::Args),
    /// Show or ensure the device GUID stored on the root pool.
    Identity(identity::Args),
    /// Install the agent the TrueNAS way (files on a pool, init script, systemd unit).
    Install(install::InstallArgs),
    /// Remove the agent's init script and unit (keeps state unless --purge).
    Uninstall(install::UninstallArgs),
}

/// Parses the command line (exits with clap's message on a usage error).
pub fn parse() -> Cli {
    <Cli as Parser>::parse()
}

/// The process exit code for a command's outcome — the one edge of every binary of the
/// workspace (`truenas-agent`, `truenas-sim`, `truenas-central`, `truenas-dev`): an
/// error is printed to stderr, scrubbed of every secret the command met, and exits 2; a
/// broken pipe (`truenas-agent status | head`) is not an error and exits 0.
pub fn finish(outcome: anyhow::Result<ExitCode>) -> ExitCode {
    match outcome {
        Ok(code) => code,
        Err(err) if is_broken_pipe(&err) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::from(2)
        }
    }
}

fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

/// Parses the command line and runs the chosen subcommand.
pub fn run() -> anyhow::Result<ExitCode> {
    let cli = parse();
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
    }
}
