//! `truenas-agent apply` (being built).

use std::process::ExitCode;

/// Arguments of `apply`.
#[derive(Debug, clap::Args)]
pub struct Args {}

/// Runs `apply`.
#[expect(
    clippy::unused_async,
    reason = "placeholder until the subcommand lands"
)]
pub async fn run(_args: Args, _global: &super::GlobalArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("`apply` is not available in this build yet")
}
