//! What the agent remembers about central between runs: `central.json`.
//!
//! Owns: the [`CentralState`] schema (last applied revision, ETag and content
//! fingerprint, last fetch and its outcome, last refusal and whether it still stands,
//! last report outcome, every contact with central and the last successful one,
//! counters, last error) and
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
use crate::state_dir::{Fingerprint, StateDir, StateError};

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
    /// The last exchange with central of any kind — a fetch or a report delivery,
    /// answered or not (absent in files written before it existed).
    pub last_contact: Option<Contact>,
    /// The last exchange central answered (a document, 304, 204, a report accepted or
    /// rejected): stale problems (central unreachable) end here.
    pub last_success: Option<Contact>,
}

/// One exchange with central.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Contact {
    pub at: DateTime<Utc>,
    pub via: Via,
    pub outcome: ContactOutcome,
}

/// Which request it was.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Via {
    /// `GET /v1/config`.
    Fetch,
    /// `POST /v1/reports`.
    Report,
}

/// How central answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ContactOutcome {
    /// Central answered (whatever it said about the document or the report).
    Answered,
    /// 401/403: the device token is not accepted.
    TokenRejected,
    /// Network, TLS, 408/429, 5xx or an unexpected answer.
    Unreachable,
}

/// The last applied document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppliedDocument {
    pub revision: u64,
    pub etag: Option<String>,
    /// `ed25519:<key id>` of the key that verified it, or `unsigned`.
    pub verified_by: String,
    pub at: DateTime<Utc>,
    /// Keyed fingerprint of its content (without `issued_at`), to refuse the same
    /// revision with other content; `None` in files written before it existed.
    #[serde(default)]
    pub digest: Option<Fingerprint>,
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

impl FetchOutcome {
    /// What this outcome says about the contact with central.
    pub fn contact(self) -> ContactOutcome {
        match self {
            FetchOutcome::NewDocument
            | FetchOutcome::SameRevision
            | FetchOutcome::Unchanged
            | FetchOutcome::NoDocument
            | FetchOutcome::Refused => ContactOutcome::Answered,
            FetchOutcome::TokenRejected => ContactOutcome::TokenRejected,
            FetchOutcome::Failed => ContactOutcome::Unreachable,
        }
    }
}

/// A refused document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Refusal {
    pub at: DateTime<Utc>,
    pub revision: Option<u64>,
    pub reason: String,
    pub fault: Fault,
    /// When a later fetch verified a document again (or central said there is none):
    /// the refusal no longer stands. `None` while it does.
    #[serde(default)]
    pub cleared_at: Option<DateTime<Utc>>,
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

impl ReportOutcome {
    /// What this outcome says about the contact with central.
    pub fn contact(self) -> ContactOutcome {
        match self {
            ReportOutcome::Delivered | ReportOutcome::Rejected => ContactOutcome::Answered,
            ReportOutcome::Retrying => ContactOutcome::Unreachable,
            ReportOutcome::TokenRejected => ContactOutcome::TokenRejected,
        }
    }
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

    /// Records one exchange with central (every fetch and every delivery attempt).
    pub fn contact(&mut self, at: DateTime<Utc>, via: Via, outcome: ContactOutcome) {
        let contact = Contact { at, via, outcome };
        self.last_contact = Some(contact);
        if outcome == ContactOutcome::Answered {
            self.last_success = Some(contact);
        }
    }

    /// The last contact: recorded, or (in files written before contacts were) the newer
    /// of the last fetch and the last report delivery.
    pub fn latest_contact(&self) -> Option<Contact> {
        if self.last_contact.is_some() {
            return self.last_contact;
        }
        let fetch = self.last_fetch.as_ref().map(|f| Contact {
            at: f.at,
            via: Via::Fetch,
            outcome: f.outcome.contact(),
        });
        let report = self.last_report.as_ref().map(|r| Contact {
            at: r.at,
            via: Via::Report,
            outcome: r.outcome.contact(),
        });
        [fetch, report].into_iter().flatten().max_by_key(|c| c.at)
    }

    /// The last successful contact: recorded, or derived like [`Self::latest_contact`].
    pub fn latest_success(&self) -> Option<Contact> {
        if self.last_contact.is_some() {
            return self.last_success;
        }
        self.latest_contact()
            .filter(|c| c.outcome == ContactOutcome::Answered)
    }

    /// The refusal that still stands: the last one, unless a later fetch cleared it.
    pub fn standing_refusal(&self) -> Option<&Refusal> {
        self.last_refusal
            .as_ref()
            .filter(|r| r.cleared_at.is_none())
    }

    /// A verified document (or "no document") arrived at `at`: the last refusal ends.
    pub fn clear_refusal(&mut self, at: DateTime<Utc>) {
        if let Some(refusal) = &mut self.last_refusal {
            refusal.cleared_at.get_or_insert(at);
        }
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
