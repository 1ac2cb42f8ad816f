//! How the daemon talks to its service manager (sd_notify).
//!
//! Owns: the [`Notifier`] seam and [`SystemdNotifier`] (`READY=1`, `WATCHDOG=1`,
//! `STATUS=`, `STOPPING=1` over `$NOTIFY_SOCKET`).
//! Does not: decide when to notify (the loop does) or compute the status text (`memory`).
//! Invariants: fire-and-forget like sd_notify itself: a failure is logged, never fatal;
//! outside systemd (no `$NOTIFY_SOCKET`) every call is a no-op.
//! Limitations: no `EXTEND_TIMEOUT_USEC`; the loop keeps every wait below the watchdog
//! period instead.

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

/// Discards everything (the demo and tests that do not look at notifications).
#[derive(Debug, Clone, Copy, Default)]
pub struct NoNotifier;

impl Notifier for NoNotifier {
    fn ready(&self, _: &str) {}
    fn watchdog(&self) {}
    fn status(&self, _: &str) {}
    fn stopping(&self) {}
}
