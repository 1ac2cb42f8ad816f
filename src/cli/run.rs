//! `truenas-agent run`: the daemon under systemd (`Type=notify`).
//!
//! Connects to the middleware, installs SIGTERM/SIGINT handlers that cancel the daemon,
//! and hands over to [`crate::daemon::run`] (the skeleton the lead extends, issue #4).

use std::process::ExitCode;

use tokio::signal::unix::{SignalKind, signal};
use tokio_util::sync::CancellationToken;

use crate::daemon::{self, DaemonOptions, SystemdNotifier};

/// Arguments of `run`.
#[derive(Debug, clap::Args)]
pub struct Args {}

/// Runs the daemon until SIGTERM/SIGINT.
pub async fn run(_args: Args, global: &super::GlobalArgs) -> anyhow::Result<ExitCode> {
    let shutdown = CancellationToken::new();
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let on_signal = shutdown.clone();
    tokio::spawn(async move {
        tokio::select! {
            _ = term.recv() => tracing::info!("SIGTERM received"),
            _ = int.recv() => tracing::info!("SIGINT received"),
        }
        on_signal.cancel();
    });
    let mw = super::common::connect(global).await?;
    let opts = DaemonOptions::from_watchdog(sd_notify::watchdog_enabled());
    daemon::run(&mw, &SystemdNotifier, &shutdown, opts).await?;
    Ok(ExitCode::SUCCESS)
}
