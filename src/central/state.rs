//! What the agent remembers about central between runs: `central.json`.
//!
//! Owns: the [`CentralState`] schema (last applied revision and ETag, last fetch and
//! its outcome, last refusal, last report outcome, counters, last error) and
//! [`CentralStore`], the one shared handle that updates it and writes it atomically.
//! Does not: decide anything. `fetch` and `outbox` record into it; `status` reads it.
//! Invariants: every update is written through `StateDir::write_json` (atomic, 0600)
//! while the in-memory copy is locked, so two updates never interleave; nothing in it is
//! secret (error texts come from error types that never carry the token or a document).
//! Limitations: one process; a second writer of the same state dir would lose updates.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use crate::fault::Fault;
use crate::state_dir::{StateDir, StateError};

/// File name inside the state directory.
pub const STATE_FILE: &str = "central.json";

/// Everything remembered about the central channel.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct CentralState {
    /// The last document the agent applied (set by the daemon through `fetch`).
    pub applied: Option<AppliedDocument>,
    pub last_fetch: Option<FetchRecord>,
    /// The last document refused (bad signature, wrong type, rollback, bad revision).
    pub last_refusal: Option<Refusal>,
    pub last_report: Option<ReportRecord>,
    pub last_error: Option<ErrorRecord>,
    pub counters: Counters,
}

/// The last applied document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppliedDocument {
    pub revision: u64,
    pub etag: Option<String>,
    /// `ed25519:<key id>` of the key that verified it, or `unsigned`.
    pub verified_by: String,
    pub at: DateTime<Utc>,
}

/// The last `GET /v1/config`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FetchRecord {
    pub at: DateTime<Utc>,
    pub outcome: FetchOutcome,
    /// Revision of the document received, when one was.
    pub revision: Option<u64>,
}

/// How a fetch ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FetchOutcome {
    /// A verified document with a higher revision.
    NewDocument,
    /// A verified document with the applied revision.
    SameRevision,
    /// 304.
    Unchanged,
    /// 204/404.
    NoDocument,
    /// A document was received and refused.
    Refused,
    /// 401/403.
    TokenRejected,
    /// Network, TLS, 429, 5xx or an unexpected answer.
    Failed,
}

/// A refused document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Refusal {
    pub at: DateTime<Utc>,
    pub revision: Option<u64>,
    pub reason: String,
    pub fault: Fault,
}

/// The last delivery attempt of a report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReportRecord {
    pub at: DateTime<Utc>,
    pub outcome: ReportOutcome,
    /// HTTP status when there was one.
    pub status: Option<u16>,
    /// Reports still in the spool afterwards.
    pub pending: usize,
}

/// How the last report delivery ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReportOutcome {
    Delivered,
    /// Rejected for good (4xx other than 408/429) and dropped.
    Rejected,
    /// Kept in the spool for a retry.
    Retrying,
    /// Central rejected the device token (401/403): kept in the spool, retried with the
    /// token back-off (from the poll interval, doubling to 1 h).
    TokenRejected,
}

/// The last error on the channel.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorRecord {
    pub at: DateTime<Utc>,
    pub fault: Fault,
    pub message: String,
}

/// Totals since the state file was created.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Counters {
    pub fetches: u64,
    pub documents_received: u64,
    pub documents_refused: u64,
    pub fetch_errors: u64,
    /// 401/403 answers, to config fetches and report deliveries alike.
    pub token_rejections: u64,
    pub reports_queued: u64,
    pub reports_delivered: u64,
    /// Rejected for good by central (4xx other than 401/403/408/429).
    pub reports_rejected: u64,
    /// Dropped because the spool was full.
    pub reports_dropped: u64,
    /// Lost to torn or corrupt spool records.
    pub reports_lost: u64,
}

impl CentralState {
    /// Reads `central.json` without creating anything (for `status`).
    pub fn load(dir: &StateDir) -> Result<Option<Self>, StateError> {
        dir.read_json(STATE_FILE)
    }
}

/// Shared, locked handle on `central.json`.
#[derive(Debug, Clone)]
pub struct CentralStore {
    dir: StateDir,
    /// The state, and when it was last written to disk.
    inner: Arc<Mutex<(CentralState, Option<Instant>)>>,
}

impl CentralStore {
    /// Loads the state (empty when the file does not exist yet).
    pub fn open(dir: StateDir) -> Result<Self, StateError> {
        let state = CentralState::load(&dir)?.unwrap_or_default();
        Ok(Self {
            dir,
            inner: Arc::new(Mutex::new((state, None))),
        })
    }

    /// A copy of the current state.
    pub fn snapshot(&self) -> CentralState {
        self.lock().0.clone()
    }

    /// Changes the state and writes it atomically before releasing the lock.
    pub fn update(&self, change: impl FnOnce(&mut CentralState)) -> Result<(), StateError> {
        let mut guard = self.lock();
        change(&mut guard.0);
        self.dir.write_json(STATE_FILE, &guard.0)?;
        guard.1 = Some(Instant::now());
        Ok(())
    }

    /// Like [`CentralStore::update`], but writes only when the file was last written
    /// more than `max_age` ago; otherwise the change stays in memory and reaches the
    /// disk with the next write. For routine records (an unchanged long-poll answer
    /// every minute) that need not cost two fsyncs each — on a data pool that would
    /// also keep idle disks from spinning down.
    pub fn update_coalesced(
        &self,
        max_age: Duration,
        change: impl FnOnce(&mut CentralState),
    ) -> Result<(), StateError> {
        let mut guard = self.lock();
        change(&mut guard.0);
        if guard.1.is_some_and(|at| at.elapsed() < max_age) {
            return Ok(());
        }
        self.dir.write_json(STATE_FILE, &guard.0)?;
        guard.1 = Some(Instant::now());
        Ok(())
    }

    /// The state directory.
    pub fn dir(&self) -> &StateDir {
        &self.dir
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, (CentralState, Option<Instant>)> {
        // A panic while holding the lock cannot leave the plain-data state half-built in a
        // way that matters: the file on disk is only ever replaced whole.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn coalesced_updates_wait_for_max_age_or_the_next_write() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = StateDir::open(tmp.path()).unwrap();
        let store = CentralStore::open(dir.clone()).unwrap();
        let hour = Duration::from_secs(3600);
        let fetches = || {
            CentralState::load(&dir)
                .unwrap()
                .map(|s| s.counters.fetches)
        };
        store
            .update_coalesced(hour, |s| s.counters.fetches = 1)
            .unwrap();
        assert_eq!(fetches(), Some(1), "never written yet: written now");
        store
            .update_coalesced(hour, |s| s.counters.fetches = 2)
            .unwrap();
        assert_eq!(fetches(), Some(1), "written a moment ago: kept in memory");
        assert_eq!(store.snapshot().counters.fetches, 2);
        store
            .update_coalesced(Duration::ZERO, |s| s.counters.fetches = 3)
            .unwrap();
        assert_eq!(fetches(), Some(3), "older than max_age: written");
        store
            .update_coalesced(hour, |s| s.counters.fetches = 4)
            .unwrap();
        store.update(|s| s.counters.reports_delivered = 1).unwrap();
        let state = CentralState::load(&dir).unwrap().unwrap();
        assert_eq!(
            (state.counters.fetches, state.counters.reports_delivered),
            (4, 1),
            "a plain update writes the kept changes too"
        );
    }

    #[test]
    fn updates_are_persisted_and_reloaded() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = StateDir::open(tmp.path()).unwrap();
        let store = CentralStore::open(dir.clone()).unwrap();
        assert_eq!(store.snapshot(), CentralState::default());
        store
            .update(|s| {
                s.counters.fetches = 3;
                s.last_error = Some(ErrorRecord {
                    at: DateTime::UNIX_EPOCH,
                    fault: Fault::Central,
                    message: "x".into(),
                });
            })
            .unwrap();
        let again = CentralStore::open(dir.clone()).unwrap();
        assert_eq!(again.snapshot().counters.fetches, 3);
        assert_eq!(
            CentralState::load(&dir)
                .unwrap()
                .unwrap()
                .last_error
                .unwrap()
                .fault,
            Fault::Central
        );
        let (_, mode) = crate::fs::owner_and_mode(&dir.file(STATE_FILE)).unwrap();
        assert_eq!(mode, 0o600);
    }
}
