//! `truenas-agent run` (being built).

use std::process::ExitCode;

/// Arguments of `run`.
#[derive(Debug, clap::Args)]
pub struct Args {}

/// Runs `run`.
#[expect(
    clippy::unused_async,
    reason = "placeholder until the subcommand lands"
)]
pub async fn run(_args: Args, _global: &super::GlobalArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("`run` is not available in this build yet")
}
