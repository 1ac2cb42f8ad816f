//! The time the dashboard, the fleet evaluator and the webhook worker judge by.
//!
//! Owns: the [`Clock`] seam — [`SystemClock`] in production, [`ManualClock`] for tests
//! that script time (a device going silent, a backup becoming overdue) without sleeping —
//! and [`TokioHold`], which keeps tokio's paused test clock still while a call waits.
//! Does not: drive timers. Loops still wait on tokio's timers; only the verdicts ("how long
//! since …", "due at …") read this clock.
//! Invariants: `SystemClock` is `Utc::now()`; a `ManualClock` only moves when told.
//! Limitations: none.

use std::sync::{Mutex, PoisonError};

use chrono::{DateTime, Duration, Utc};

/// A source of the current time.
pub trait Clock: Send + Sync {
    /// Now.
    fn now(&self) -> DateTime<Utc>;
}

/// The system's wall clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// A clock that moves only when told (tests).
#[derive(Debug)]
pub struct ManualClock {
    now: Mutex<DateTime<Utc>>,
}

impl ManualClock {
    /// A clock standing at `at`.
    pub fn new(at: DateTime<Utc>) -> Self {
        Self {
            now: Mutex::new(at),
        }
    }

    /// Sets the time.
    pub fn set(&self, at: DateTime<Utc>) {
        *self.now.lock().unwrap_or_else(PoisonError::into_inner) = at;
    }

    /// Moves the time forward by `by`.
    pub fn advance(&self, by: Duration) {
        let mut now = self.now.lock().unwrap_or_else(PoisonError::into_inner);
        *now += by;
    }
}

impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        *self.now.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// While alive (and asked for), a blocking task that keeps tokio's paused test clock from
/// auto-advancing: a database call waiting for SQLite's worker thread or for PostgreSQL
/// would otherwise let the test clock jump ahead (`ServerOptions::hold_clock`). Off in
/// production, where it would only cost a thread hop per call.
#[derive(Debug)]
pub struct TokioHold {
    _release: Option<std::sync::mpsc::Sender<()>>,
}

impl TokioHold {
    /// Holds the clock when `enabled` (must run inside a tokio runtime then).
    pub fn new(enabled: bool) -> Self {
        if !enabled {
            return Self { _release: None };
        }
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        // Ends when the sender is dropped (`recv` fails).
        drop(tokio::task::spawn_blocking(move || {
            let _ = rx.recv();
        }));
        Self { _release: Some(tx) }
    }
}
