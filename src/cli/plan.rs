//! `truenas-agent plan` (being built).

use std::process::ExitCode;

/// Arguments of `plan`.
#[derive(Debug, clap::Args)]
pub struct Args {}

/// Runs `plan`.
#[expect(
    clippy::unused_async,
    reason = "placeholder until the subcommand lands"
)]
pub async fn run(_args: Args, _global: &super::GlobalArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("`plan` is not available in this build yet")
}
