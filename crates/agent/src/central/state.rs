//! What the agent remembers about central between runs: `central.json`.
//!
//! Owns: the [`CentralState`] schema (last applied revision, ETag and content
//! fingerprint, last fetch and its outcome, last refusal and whether it still stands,
//! last report outcome, every contact with central and the last successful one,
//! counters, last error) and [`CentralStore`], the one shared handle that updates it and
//! writes it atomically; rebuilding a damaged file when the store opens ([`Rebuilt`]).
//! Does not: decide anything. `fetch` and `outbox` record into it; `status` reads it.
//! Invariants: every update is written through `StateDir::write_json` (atomic, 0600)
//! while the in-memory copy is locked, so two updates never interleave; nothing in it is
//! secret (error texts come from error types that never carry the token or a document);
//! a `central.json` that is not valid JSON for this schema (truncated, garbage) never
//! stops the daemon: [`CentralStore::open`] keeps every top-level part that still reads,
//! starts the rest afresh, keeps the damaged bytes as `central.json.corrupt`, logs a
//! WARN and records what it did in [`CentralState::rebuilt`] (shown by `status`). A file
//! that cannot be read at all (permissions, I/O) is still an error.
//! Limitations: one process; a second writer of the same state dir would lose updates.
//! Recovery is per top-level part: a part cut in the middle (e.g. half of `counters`) is
//! lost as a whole.

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
    /// Set when the file was damaged and rebuilt by [`CentralStore::open`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rebuilt: Option<Rebuilt>,
    /// The last exchange with central of any kind — a fetch or a report delivery,
    /// answered or not (absent in files written before it existed).
    pub last_contact: Option<Contact>,
    /// The last exchange central answered (a document, 304, 204, a report accepted or
    /// rejected): stale problems (central unreachable) end here.
    pub last_success: Option<Contact>,
}

/// What [`CentralStore::open`] did with a damaged `central.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rebuilt {
    pub at: DateTime<Utc>,
    /// Why the file could not be used (the parser's message: a position, never content).
    pub reason: String,
    /// The top-level parts recovered from it (`applied`, `counters`, …); the others
    /// started afresh.
    pub kept: Vec<String>,
    /// Where the damaged bytes were kept for inspection (`None`: they could not be).
    pub damaged_copy: Option<String>,
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
    /// Loads the state (empty when the file does not exist yet). A file that is not valid
    /// JSON for this schema is rebuilt (see the module doc) and the result written at once;
    /// only a file that cannot be read or written is an error.
    pub fn open(dir: StateDir) -> Result<Self, StateError> {
        let (state, written) = match CentralState::load(&dir) {
            Ok(state) => (state.unwrap_or_default(), None),
            Err(StateError::Corrupt { path, source }) => {
                let state = rebuild(&dir, &path, &source, Utc::now())?;
                dir.write_json(STATE_FILE, &state)?;
                (state, Some(Instant::now()))
            }
            Err(e) => return Err(e),
        };
        Ok(Self {
            dir,
            inner: Arc::new(Mutex::new((state, written))),
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

/// Name of the copy of a damaged `central.json`.
pub const DAMAGED_COPY: &str = "central.json.corrupt";

/// The top-level parts of [`CentralState`], in file order.
const PARTS: [&str; 6] = [
    "applied",
    "last_fetch",
    "last_refusal",
    "last_report",
    "last_error",
    "counters",
];

/// The state recovered from the damaged file at `path`, with the damaged bytes kept
/// aside and the rebuild recorded.
fn rebuild(
    dir: &StateDir,
    path: &std::path::Path,
    error: &serde_json::Error,
    now: DateTime<Utc>,
) -> Result<CentralState, StateError> {
    let bytes = crate::fs::read(path)?;
    let (mut state, kept) = salvage(&bytes);
    let copy = dir.file(DAMAGED_COPY);
    let damaged_copy = match crate::fs::write_atomic(&copy, &bytes, 0o600) {
        Ok(()) => Some(copy.display().to_string()),
        Err(e) => {
            tracing::warn!(error = %crate::fault::error_chain(&e), "cannot keep a copy of the damaged central.json");
            None
        }
    };
    let lost: Vec<&str> = PARTS
        .iter()
        .copied()
        .filter(|p| !kept.iter().any(|k| k == p))
        .collect();
    tracing::warn!(
        path = %path.display(),
        reason = %error,
        kept = %kept.join(", "),
        started_afresh = %lost.join(", "),
        damaged_copy = damaged_copy.as_deref().unwrap_or("(none)"),
        "central.json was damaged and has been rebuilt; the agent carries on"
    );
    state.rebuilt = Some(Rebuilt {
        at: now,
        reason: error.to_string(),
        kept,
        damaged_copy,
    });
    Ok(state)
}

/// Every top-level part of a damaged `central.json` that still reads. A file cut short
/// (the common damage: a torn write on a dying disk, a full pool) is closed after its
/// last complete top-level member, which the pretty-printed layout starts with `\n  "`.
fn salvage(bytes: &[u8]) -> (CentralState, Vec<String>) {
    let mut kept = Vec::new();
    let Some(object) = parse_object(bytes) else {
        return (CentralState::default(), kept);
    };
    let state = CentralState {
        applied: part(&object, "applied", &mut kept),
        last_fetch: part(&object, "last_fetch", &mut kept),
        last_refusal: part(&object, "last_refusal", &mut kept),
        last_report: part(&object, "last_report", &mut kept),
        last_error: part(&object, "last_error", &mut kept),
        counters: part(&object, "counters", &mut kept).unwrap_or_default(),
        ..CentralState::default()
    };
    (state, kept)
}

/// One top-level part, if present, not null and valid; its name goes into `kept`.
fn part<T: serde::de::DeserializeOwned>(
    object: &serde_json::Map<String, serde_json::Value>,
    name: &str,
    kept: &mut Vec<String>,
) -> Option<T> {
    let value = object.get(name).filter(|v| !v.is_null())?;
    let parsed = serde_json::from_value(value.clone()).ok()?;
    kept.push(name.to_owned());
    Some(parsed)
}

fn parse_object(bytes: &[u8]) -> Option<serde_json::Map<String, serde_json::Value>> {
    if let Ok(serde_json::Value::Object(map)) = serde_json::from_slice(bytes) {
        return Some(map);
    }
    let starts = bytes
        .windows(4)
        .enumerate()
        .filter(|(_, w)| *w == b"\n  \"")
        .map(|(i, _)| i)
        .collect::<Vec<_>>();
    starts.iter().rev().find_map(|&cut| {
        let head = bytes[..cut].trim_ascii_end();
        let head = head.strip_suffix(b",").unwrap_or(head);
        let mut closed = head.to_vec();
        closed.extend_from_slice(b"\n}");
        match serde_json::from_slice(&closed) {
            Ok(serde_json::Value::Object(map)) => Some(map),
            _ => None,
        }
    })
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

    fn full_state() -> CentralState {
        CentralState {
            applied: Some(AppliedDocument {
                revision: 7,
                etag: Some("\"e7\"".into()),
                verified_by: "unsigned".into(),
                at: DateTime::UNIX_EPOCH,
                digest: None,
            }),
            last_fetch: Some(FetchRecord {
                at: DateTime::UNIX_EPOCH,
                outcome: FetchOutcome::Unchanged,
                revision: None,
            }),
            counters: Counters {
                fetches: 41,
                reports_delivered: 12,
                ..Counters::default()
            },
            ..CentralState::default()
        }
    }

    /// A `central.json` cut short (a torn write) used to stop the daemon at every start;
    /// now the parts before the cut are kept, the rest starts afresh, the damaged bytes
    /// are kept aside and the rebuild is recorded.
    #[test]
    fn a_truncated_file_is_rebuilt_keeping_what_reads() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = StateDir::open(tmp.path()).unwrap();
        dir.write_json(STATE_FILE, &full_state()).unwrap();
        let path = dir.file(STATE_FILE);
        let whole = std::fs::read(&path).unwrap();
        let cut = whole.windows(8).position(|w| w == b"fetches\"").unwrap() + 4;
        crate::fs::write_atomic(&path, &whole[..cut], 0o600).unwrap();
        assert!(CentralState::load(&dir).is_err(), "really damaged");

        let store = CentralStore::open(dir.clone()).unwrap();
        let state = store.snapshot();
        assert_eq!(state.applied, full_state().applied);
        assert_eq!(state.last_fetch, full_state().last_fetch);
        assert_eq!(
            state.counters,
            Counters::default(),
            "cut in the middle: started afresh"
        );
        let rebuilt = state.rebuilt.clone().unwrap();
        assert_eq!(rebuilt.kept, ["applied", "last_fetch"]);
        assert!(rebuilt.reason.contains("EOF"), "{}", rebuilt.reason);
        let copy = dir.file(DAMAGED_COPY);
        assert_eq!(rebuilt.damaged_copy.as_deref(), copy.to_str());
        assert_eq!(std::fs::read(&copy).unwrap(), &whole[..cut]);
        assert_eq!(crate::fs::owner_and_mode(&copy).unwrap().1, 0o600);
        // Written back at once: the next start reads it as it is, the record with it.
        assert_eq!(CentralState::load(&dir).unwrap().unwrap(), state);
        let again = CentralStore::open(dir).unwrap().snapshot();
        assert_eq!(again.rebuilt, Some(rebuilt));
    }

    #[test]
    fn garbage_and_wrong_types_are_rebuilt_too() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = StateDir::open(tmp.path()).unwrap();
        let path = dir.file(STATE_FILE);
        crate::fs::write_atomic(&path, &[0xff, 0x00, 0x13, 0x37], 0o600).unwrap();
        let state = CentralStore::open(dir.clone()).unwrap().snapshot();
        assert_eq!(state.applied, None);
        assert!(state.rebuilt.unwrap().kept.is_empty());

        // Valid JSON, one part of the wrong shape: the other parts are kept.
        let mut value = serde_json::to_value(full_state()).unwrap();
        value["last_fetch"] = serde_json::json!("yesterday");
        crate::fs::write_atomic(&path, value.to_string().as_bytes(), 0o600).unwrap();
        let state = CentralStore::open(dir).unwrap().snapshot();
        assert_eq!(state.applied, full_state().applied);
        assert_eq!(state.last_fetch, None);
        assert_eq!(state.counters, full_state().counters);
        assert_eq!(state.rebuilt.unwrap().kept, ["applied", "counters"]);
    }

    /// Only content damage is repaired: a file that cannot be read is still an error.
    #[test]
    fn an_unreadable_file_is_still_an_error() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = StateDir::open(tmp.path()).unwrap();
        crate::fs::create_dir_all(&dir.file(STATE_FILE), 0o700).unwrap();
        assert!(matches!(CentralStore::open(dir), Err(StateError::Io(_))));
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
