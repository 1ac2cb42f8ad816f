//! `truenas-agent sim` (being built, issue #2).

use std::process::ExitCode;

/// Arguments of `sim`.
#[derive(Debug, clap::Args)]
pub struct Args {}

/// Runs the simulator.
#[expect(
    clippy::unused_async,
    reason = "placeholder until the subcommand lands"
)]
pub async fn run(_args: Args, _global: &super::GlobalArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("`sim` is not available in this build yet")
}
