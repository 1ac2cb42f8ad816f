//! `truenas-agent run`: the daemon under systemd (`Type=notify`).
//!
//! Owns: the start-up order — configuration (`--config`, else the default path; flags
//! win), the state directory and the central session (which refuses an unsafe token
//! file), all before any connection; then the middleware connection, the ZFS
//! user-property backend (the `zfs` command, or the middleware where it cannot be used),
//! SIGTERM/SIGINT handlers that cancel the daemon, and the hand-over to the daemon.
//! Does not: loop or decide anything itself (`daemon`).
//! Invariants: a configuration or token problem stops the start with a message that
//! names the file, the rule and the fix, before any connection is made; whatever stops
//! the daemon with an error is also recorded in `daemon.json` (`stopped`), so `status`
//! can name the cause after systemd gave up.
//! Limitations: the configuration is read once; change it and restart the service.

use std::process::ExitCode;

use tokio::signal::unix::{SignalKind, signal};
use tokio_util::sync::CancellationToken;

use crate::config::AgentConfig;
use crate::daemon::agent::{self, Runtime};
use crate::daemon::memory::{ErrorRecord, record_stop};
use crate::daemon::sop::SopSettings;
use crate::daemon::{DaemonOptions, SystemdNotifier};
use crate::fault::Fault;
use crate::state_dir::StateDir;
use crate::zfs::{CommandConfig, ZfsCommand, choose_backend};

/// Arguments of `run`.
#[derive(Debug, clap::Args)]
pub struct Args {}

/// Runs the daemon until SIGTERM/SIGINT.
pub(crate) async fn run(_args: Args, global: &super::GlobalArgs) -> anyhow::Result<ExitCode> {
    let config = super::common::daemon_config(global)?;
    let outcome = run_with(&config).await;
    if let Err(e) = &outcome {
        // `status` names the cause (`daemon.json`): systemd only knows the exit code.
        if config.state_dir.is_dir() {
            let fault = e
                .chain()
                .find_map(|c| c.downcast_ref::<agent::AgentError>())
                .map_or(Fault::Nas, agent::AgentError::fault);
            let message = crate::scrub::scrub_output(&format!("{e:#}"));
            record_stop(
                &StateDir::at(&config.state_dir),
                Some(ErrorRecord {
                    at: chrono::Utc::now(),
                    fault,
                    message,
                }),
            );
        }
    }
    outcome
}

async fn run_with(config: &AgentConfig) -> anyhow::Result<ExitCode> {
    let prepared = agent::prepare(config)?;
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
    let mw = super::common::connect(config, None).await?;
    // The `zfs` command on the host; the middleware only where it cannot be used (a
    // Custom App container without /dev/zfs).
    let (props, backend) =
        choose_backend(ZfsCommand::new(CommandConfig::default()), Some(mw.clone())).await;
    let options = DaemonOptions {
        resync_interval: config.middleware.resync_interval,
        ..DaemonOptions::new(sd_notify::watchdog_enabled(), &prepared.central)
    };
    // B2 checks as the config's `[b2]` section says (daily at Backblaze by default).
    let settings = SopSettings::from_config(config);
    let runtime = Runtime {
        middleware: &mw,
        events: &mw,
        props: &props,
        backend,
        notifier: &SystemdNotifier,
        settings,
        options,
    };
    // The whole daemon lives in this future: keep it on the heap.
    Box::pin(prepared.run(runtime, &shutdown)).await?;
    Ok(ExitCode::SUCCESS)
}
