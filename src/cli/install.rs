//! `truenas-agent install` / `uninstall` (being built, issue #8).

use std::process::ExitCode;

/// Arguments of `install`.
#[derive(Debug, clap::Args)]
pub struct InstallArgs {}

/// Arguments of `uninstall`.
#[derive(Debug, clap::Args)]
pub struct UninstallArgs {}

/// Runs `install`.
#[expect(
    clippy::unused_async,
    reason = "placeholder until the subcommand lands"
)]
pub async fn run_install(
    _args: InstallArgs,
    _global: &super::GlobalArgs,
) -> anyhow::Result<ExitCode> {
    anyhow::bail!("`install` is not available in this build yet")
}

/// Runs `uninstall`.
#[expect(
    clippy::unused_async,
    reason = "placeholder until the subcommand lands"
)]
pub async fn run_uninstall(
    _args: UninstallArgs,
    _global: &super::GlobalArgs,
) -> anyhow::Result<ExitCode> {
    anyhow::bail!("`uninstall` is not available in this build yet")
}
