//! The long-running agent process under systemd (`truenas-agent run`).
//!
//! This is the SKELETON the lead extends with the reconcile loop (fetch → validate →
//! observe → plan → apply → re-observe → report, issue #4). What it does today is the
//! service contract the packaging relies on, and that part is meant to stay:
//! readiness, watchdog, liveness of the middleware connection, clean shutdown.
//!
//! Owns: the daemon's lifecycle: `READY=1` once the middleware connection works, a
//!   `WATCHDOG=1` heartbeat sent from the loop itself (so a hung loop gets restarted by
//!   systemd), a periodic `core.ping` as a liveness probe with `STATUS=` updates, and
//!   `STOPPING=1` + return on cancellation (SIGTERM/SIGINT, wired in `cli::run`).
//! Does not: connect to the middleware (the caller passes a connected `impl Middleware`),
//!   install signal handlers, or do any reconcile work yet.
//! Invariants: the watchdog is only petted from the loop; a failed ping is logged and
//!   reported in `STATUS=`, never fatal (the client reconnects by itself); every wait
//!   is bounded by the tick.
//! Limitations: no fetch/apply/report yet (issue #4 — extend [`run`]'s loop body, see the
//!   `tick` arm); `Notifier` calls are fire-and-forget like sd_notify itself.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::fault::Fault;
use crate::middleware::{Call, CallError, Method, Middleware};

/// How the daemon talks to its service manager. [`SystemdNotifier`] in production.
pub trait Notifier {
    /// Start-up finished (`READY=1`).
    fn ready(&self, status: &str);
    /// Still alive (`WATCHDOG=1`).
    fn watchdog(&self);
    /// Human-readable state for `systemctl status` (`STATUS=`).
    fn status(&self, status: &str);
    /// Shutting down (`STOPPING=1`).
    fn stopping(&self);
}

/// sd_notify over `$NOTIFY_SOCKET`; a no-op when not run by systemd.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemdNotifier;

impl SystemdNotifier {
    fn send(states: &[sd_notify::NotifyState<'_>]) {
        if let Err(e) = sd_notify::notify(states) {
            tracing::warn!(error = %e, "cannot notify systemd");
        }
    }
}

impl Notifier for SystemdNotifier {
    fn ready(&self, status: &str) {
        Self::send(&[
            sd_notify::NotifyState::Ready,
            sd_notify::NotifyState::Status(status),
        ]);
    }
    fn watchdog(&self) {
        Self::send(&[sd_notify::NotifyState::Watchdog]);
    }
    fn status(&self, status: &str) {
        Self::send(&[sd_notify::NotifyState::Status(status)]);
    }
    fn stopping(&self) {
        Self::send(&[sd_notify::NotifyState::Stopping]);
    }
}

/// Timing of the loop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DaemonOptions {
    /// Loop period: the watchdog is petted every tick.
    pub tick: Duration,
    /// Ping the middleware every this many ticks.
    pub ping_every: u32,
}

impl DaemonOptions {
    /// Ticks at half the systemd watchdog period (`WatchdogSec=`), or every 30 s without one.
    pub fn from_watchdog(watchdog: Option<Duration>) -> Self {
        let tick = watchdog.map_or(Duration::from_secs(30), |w| {
            (w / 2).clamp(Duration::from_secs(1), Duration::from_secs(30))
        });
        // About once a minute.
        let ping_every = u32::try_from((60 / tick.as_secs().max(1)).max(1)).unwrap_or(1);
        Self { tick, ping_every }
    }
}

/// Why the daemon stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error("cannot confirm the middleware connection at start-up")]
    Startup(#[source] CallError),
}

impl DaemonError {
    /// Who has to act.
    pub fn fault(&self) -> Fault {
        match self {
            DaemonError::Startup(e) => e.fault(),
        }
    }
}

/// Runs until `shutdown` is cancelled. `mw` is already connected.
pub async fn run(
    mw: &impl Middleware,
    notifier: &impl Notifier,
    shutdown: &CancellationToken,
    opts: DaemonOptions,
) -> Result<(), DaemonError> {
    let api = mw.api();
    // One round trip before READY=1: "active" means the agent can talk to TrueNAS.
    ping(mw, opts.tick).await.map_err(DaemonError::Startup)?;
    tracing::info!(
        version = crate::VERSION,
        truenas = %api.version,
        api = %api.flavor,
        transport = ?api.transport,
        "truenas-agent started"
    );
    let status = format!("connected to TrueNAS {} ({:?})", api.version, api.transport);
    notifier.ready(&status);
    let mut ticker = tokio::time::interval(opts.tick);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut ticks: u32 = 0;
    let mut healthy = true;
    loop {
        tokio::select! {
            () = shutdown.cancelled() => break,
            _ = ticker.tick() => {}
        }
        notifier.watchdog();
        ticks = ticks.wrapping_add(1);
        if ticks % opts.ping_every != 0 {
            continue;
        }
        // Issue #4: the reconcile pass goes here (bounded by its own timeouts).
        match ping(mw, opts.tick).await {
            Ok(()) if !healthy => {
                healthy = true;
                tracing::info!("middleware reachable again");
                notifier.status(&status);
            }
            Ok(()) => {}
            Err(e) => {
                if healthy {
                    tracing::warn!(error = %e, "middleware not answering");
                }
                healthy = false;
                notifier.status(&format!("middleware not answering: {e}"));
            }
        }
    }
    tracing::info!("stopping");
    notifier.stopping();
    Ok(())
}

async fn ping(mw: &impl Middleware, limit: Duration) -> Result<(), CallError> {
    match tokio::time::timeout(limit, mw.call(Call::bare(Method::CorePing))).await {
        Ok(result) => result.map(drop),
        Err(_) => Err(CallError::Timeout {
            method: Method::CorePing,
            after: limit,
        }),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicU32, Ordering};

    use serde_json::{Value, json};

    use super::*;
    use crate::middleware::{ApiFlavor, ApiInfo, Job, JobId, Protocol, TransportKind};

    #[derive(Default)]
    struct Recorder(Mutex<Vec<String>>);

    impl Notifier for Recorder {
        fn ready(&self, status: &str) {
            self.0.lock().unwrap().push(format!("READY {status}"));
        }
        fn watchdog(&self) {
            self.0.lock().unwrap().push("WATCHDOG".into());
        }
        fn status(&self, status: &str) {
            self.0.lock().unwrap().push(format!("STATUS {status}"));
        }
        fn stopping(&self) {
            self.0.lock().unwrap().push("STOPPING".into());
        }
    }

    /// Answers `core.ping` with "pong", failing calls number `fail_from..fail_to`.
    struct Pinged {
        calls: AtomicU32,
        fail: std::ops::Range<u32>,
    }

    impl Middleware for Pinged {
        fn api(&self) -> ApiInfo {
            ApiInfo {
                flavor: ApiFlavor::V25_10,
                version: "25.10.7".into(),
                protocol: Protocol::JsonRpc,
                transport: TransportKind::UnixSocket,
            }
        }
        async fn call(&self, call: Call) -> Result<Value, CallError> {
            assert_eq!(call.method, Method::CorePing, "the skeleton only pings");
            let n = self.calls.fetch_add(1, Ordering::SeqCst);
            if self.fail.contains(&n) {
                Err(CallError::Disconnected {
                    method: Method::CorePing,
                    detail: "socket closed".into(),
                })
            } else {
                Ok(json!("pong"))
            }
        }
        async fn wait_job(&self, _: JobId, _: Duration) -> Result<Job, CallError> {
            unreachable!()
        }
    }

    #[tokio::test(start_paused = true)]
    async fn ready_then_watchdog_then_clean_stop() {
        let mw = Pinged {
            calls: AtomicU32::new(0),
            fail: 2..3,
        };
        let rec = Recorder::default();
        let shutdown = CancellationToken::new();
        let opts = DaemonOptions {
            tick: Duration::from_secs(10),
            ping_every: 2,
        };
        let stopper = shutdown.clone();
        let (result, ()) = tokio::join!(run(&mw, &rec, &shutdown, opts), async move {
            tokio::time::sleep(Duration::from_secs(75)).await;
            stopper.cancel();
        });
        result.unwrap();
        let log = rec.0.lock().unwrap().clone();
        assert_eq!(log[0], "READY connected to TrueNAS 25.10.7 (UnixSocket)");
        assert_eq!(log.last().unwrap(), "STOPPING");
        // Ticks at 0,10,...,70 s: 8 heartbeats; pings on every 2nd tick, the 2nd fails
        // (status says so) and the next one reports recovery.
        assert_eq!(log.iter().filter(|l| *l == "WATCHDOG").count(), 8);
        let statuses: Vec<_> = log.iter().filter(|l| l.starts_with("STATUS")).collect();
        assert_eq!(statuses.len(), 2, "{log:?}");
        assert!(statuses[0].contains("middleware not answering"));
        assert!(statuses[1].contains("connected to TrueNAS"));
    }

    #[tokio::test(start_paused = true)]
    async fn no_ready_without_the_middleware() {
        let mw = Pinged {
            calls: AtomicU32::new(0),
            fail: 0..1,
        };
        let rec = Recorder::default();
        let err = run(
            &mw,
            &rec,
            &CancellationToken::new(),
            DaemonOptions::from_watchdog(None),
        )
        .await
        .unwrap_err();
        assert_eq!(err.fault(), Fault::Transient);
        assert!(rec.0.lock().unwrap().is_empty(), "READY must not be sent");
    }

    #[test]
    fn ticks_at_half_the_watchdog() {
        let o = DaemonOptions::from_watchdog(Some(Duration::from_secs(90)));
        assert_eq!(o.tick, Duration::from_secs(30));
        assert_eq!(o.ping_every, 2);
        let o = DaemonOptions::from_watchdog(Some(Duration::from_secs(10)));
        assert_eq!(o.tick, Duration::from_secs(5));
        assert_eq!(o.ping_every, 12);
        assert_eq!(
            DaemonOptions::from_watchdog(None).tick,
            Duration::from_secs(30)
        );
    }
}
