//! `truenas-agent run`: the daemon under systemd (`Type=notify`).
//!
//! Owns: the start-up order — configuration (`--config`, else the default path; flags
//! win), the central session (which refuses an unsafe token file before anything else
//! happens), the middleware connection, the engine — then SIGTERM/SIGINT handlers that
//! cancel the daemon, and the hand-over to [`crate::daemon::run`].
//! Does not: loop or decide anything itself.
//! Invariants: a configuration or token problem stops the start with a message that
//! names the file, the rule and the fix, before any connection is made.
//! Limitations: the configuration is read once; change it and restart the service.

use std::process::ExitCode;

use anyhow::Context;
use tokio::signal::unix::{SignalKind, signal};
use tokio_util::sync::CancellationToken;

use crate::daemon::{self, DaemonOptions, Services, SystemdNotifier};
use crate::state_dir::StateDir;

/// Arguments of `run`.
#[derive(Debug, clap::Args)]
pub struct Args {}

/// Runs the daemon until SIGTERM/SIGINT.
pub async fn run(_args: Args, global: &super::GlobalArgs) -> anyhow::Result<ExitCode> {
    let config = super::common::daemon_config(global)?;
    let central = config.central()?;
    let state = StateDir::open(&config.state_dir).with_context(|| {
        format!(
            "cannot open the state directory {}",
            config.state_dir.display()
        )
    })?;
    let session = crate::central::open(central, state.clone())?;
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
    let mw = super::common::connect_with(config.middleware.connect_options()?).await?;
    let engine = daemon::interim::NoEngine;
    let options = DaemonOptions::new(sd_notify::watchdog_enabled(), central);
    let services = Services {
        engine: &engine,
        middleware: &mw,
        jobs: &mw,
        notifier: &SystemdNotifier,
        state: &state,
    };
    daemon::run(services, session, options, &shutdown).await?;
    Ok(ExitCode::SUCCESS)
}
