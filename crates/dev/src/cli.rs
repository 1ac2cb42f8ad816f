//! The `truenas-dev` command line: `truenas-dev demo` (the README's first command,
//! `cargo run -p truenas-dev -- demo`).
//!
//! Owns: the clap definitions, the tokio runtime and logging set-up.
//! Does not: hold the demo itself ([`crate::demo`]).
//! Invariants: what the demo prints is checked for its secrets before it is shown.
//! Limitations: logs go to stderr only (the agent's `cli::logging`).

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use truenas_agent::cli::logging;

use crate::demo;

/// The command line of `truenas-dev`.
#[derive(Debug, Parser)]
#[command(name = "truenas-dev", version = truenas_agent::VERSION, long_about = None,
          about = "Developer tools of truenas-agent: the demo")]
pub struct Cli {
    /// Log filter: a level (trace, debug, info, warn, error, off) or TARGET=LEVEL, e.g.
    /// `info` or `warn,truenas_agent=debug`. A valid RUST_LOG wins.
    #[arg(long, global = true, default_value = "info", value_parser = logging::parse_filter)]
    pub log: String,
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the whole system on this machine: simulator, central server and agent.
    Demo(demo::Args),
}

/// Parses the command line and runs the chosen subcommand.
pub fn run() -> anyhow::Result<ExitCode> {
    let cli = Cli::parse();
    logging::init(&cli.log)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .max_blocking_threads(8)
        .build()?;
    runtime.block_on(async {
        match cli.command {
            Command::Demo(args) => demo::run(args).await,
        }
    })
}
