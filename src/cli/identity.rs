//! `truenas-agent identity` (being built).

use std::process::ExitCode;

/// Arguments of `identity`.
#[derive(Debug, clap::Args)]
pub struct Args {}

/// Runs `identity`.
#[expect(
    clippy::unused_async,
    reason = "placeholder until the subcommand lands"
)]
pub async fn run(_args: Args, _global: &super::GlobalArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("`identity` is not available in this build yet")
}
