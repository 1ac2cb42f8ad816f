//! `truenas-agent sim` (being built, issue #4).

use std::process::ExitCode;

/// Arguments of `central`.
#[derive(Debug, clap::Args)]
pub struct Args {}

/// Runs a central subcommand.
#[expect(
    clippy::unused_async,
    reason = "placeholder until the subcommand lands"
)]
pub async fn run(_args: Args, _global: &super::GlobalArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("`central` is not available in this build yet")
}
