//! Pulling the desired state: one `GET /v1/config` per [`ConfigChannel::poll`], verified,
//! revision-checked, and scheduled.
//!
//! Owns: the fetch session — the ETag last seen, the revision last applied and its
//! content fingerprint, what was learnt about long-polling, the back-off states — and the
//! decision of what a response means: [`Fetched::New`] (apply it), [`Fetched::Same`]
//! (same revision and content: no-op apart from drift), [`Fetched::Unchanged`] (304),
//! [`Fetched::NoDocument`] (204/404), or a [`FetchError`] (refused document — including
//! the applied revision with other content, [`FetchError::SameRevisionChanged`] —
//! rejected token, transport trouble); recording every poll in `central.json` as a
//! contact, and clearing a standing refusal with the next verified document.
//! Does not: validate the document beyond its envelope, signature and `revision` (that
//! is `desired`'s job), apply anything, or sleep: [`Poll::next_in`] tells the daemon how
//! long to wait, so the daemon can also wake up for shutdown or reports meanwhile.
//! Invariants: a payload is handed out only after `payloadType` matched and a trusted
//! key verified it (or `allow_unsigned` with no keys); a revision lower than the last
//! applied one is refused as a rollback and never handed out; the ETag of a refused
//! document is remembered, so it is not downloaded again until it changes; the payload
//! is kept in a `SecretSlice` and never logged.
//! Limitations: the ETag is kept in memory only: after a restart the first fetch
//! downloads the current document again (the agent never stores documents, which hold
//! secrets), which is then `Same` when it was already applied.
//!
//! Session states, in what they wait on, are [`Session`] (`schedule.rs`, pure): `Polling`
//! (next request after the poll interval ± 10 %) → on a held 304 becomes `LongPolling`
//! (next request at once, the server holds it) → on an immediate 304 falls back to
//! `Polling`; any failure enters `BackingOff` (doubling, floor = `Retry-After`; for
//! 401/403 starting at the poll interval), left on the next answer. Each poll turns its
//! response into an [`Answer`] and takes the next state from [`Session::on_answer`].

use std::cmp::Ordering;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretSlice, SecretString};
use serde::Deserialize;
use serde_json::Value;
use tokio::time::Instant;

use super::client::{CentralClient, ClientError, ConfigResponse};
use super::dsse::{self, CONFIG_PAYLOAD_TYPE, DsseError, TrustPolicy, Verification};
use super::schedule::{Answer, Session, Timing};
use super::state::{
    AppliedDocument, CentralState, CentralStore, ErrorRecord, FetchOutcome, FetchRecord, Refusal,
    Via,
};
use crate::config::CentralConfig;
use crate::fault::Fault;
use crate::fault::error_chain;
use crate::state_dir::{Fingerprint, StateDir, StateError};

/// How often a run of unchanged long-poll answers is written to `central.json` (each
/// one is recorded in memory; any other outcome is written at once).
pub const UNCHANGED_WRITE_EVERY: Duration = Duration::from_secs(600);

/// Why a poll did not produce a usable document.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("cannot fetch the desired state from central")]
    Request(#[source] ClientError),
    #[error("refused the document from central")]
    Envelope(#[source] DsseError),
    #[error("refused the document from central: `revision` {rule}")]
    BadRevision { rule: String },
    #[error(
        "refused document revision {revision}: it is lower than the applied revision {last_applied} (rollback)"
    )]
    Rollback { revision: u64, last_applied: u64 },
    #[error(
        "refused document revision {revision}: same revision, different content — revision \
         {revision} is applied with other content; central must publish a change with a higher \
         revision"
    )]
    SameRevisionChanged { revision: u64 },
    #[error("cannot record the applied revision")]
    State(#[source] StateError),
}

impl FetchError {
    /// The party that has to act.
    pub fn fault(&self) -> Fault {
        match self {
            FetchError::Request(e) => e.fault(),
            FetchError::Envelope(e) => e.fault(),
            // The document's content is wrong: whoever writes documents must fix it.
            FetchError::BadRevision { .. } => Fault::Operator,
            FetchError::Rollback { .. } | FetchError::SameRevisionChanged { .. } => Fault::Central,
            FetchError::State(e) => e.fault(),
        }
    }

    /// True when a document was received and refused (report `config.state = refused`).
    pub fn is_refusal(&self) -> bool {
        match self {
            FetchError::Envelope(_)
            | FetchError::BadRevision { .. }
            | FetchError::Rollback { .. }
            | FetchError::SameRevisionChanged { .. } => true,
            FetchError::Request(_) | FetchError::State(_) => false,
        }
    }

    /// True when central rejected the device token (401/403).
    pub fn is_token_rejected(&self) -> bool {
        matches!(self, FetchError::Request(ClientError::TokenRejected { .. }))
    }

    /// The revision of a refused document, when it could be read from a verified payload.
    pub fn refused_revision(&self) -> Option<u64> {
        match self {
            FetchError::Rollback { revision, .. }
            | FetchError::SameRevisionChanged { revision } => Some(*revision),
            FetchError::Request(_)
            | FetchError::Envelope(_)
            | FetchError::BadRevision { .. }
            | FetchError::State(_) => None,
        }
    }
}

/// A document whose envelope, signature and revision passed.
pub struct VerifiedDocument {
    pub revision: u64,
    pub etag: Option<String>,
    pub verification: Verification,
    /// Keyed fingerprint of the content (see [`content_digest`]); `None` when the state
    /// directory's fingerprint key could not be used.
    pub digest: Option<Fingerprint>,
    payload: SecretSlice<u8>,
}

impl VerifiedDocument {
    /// The payload bytes (the desired-state JSON, secrets included) for `desired`.
    pub fn payload(&self) -> &[u8] {
        self.payload.expose_secret()
    }
}

impl std::fmt::Debug for VerifiedDocument {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VerifiedDocument")
            .field("revision", &self.revision)
            .field("etag", &self.etag)
            .field("verification", &self.verification)
            .field("digest", &self.digest)
            .field("payload", &"[REDACTED]")
            .finish()
    }
}

/// What a poll produced.
#[derive(Debug)]
pub enum Fetched {
    /// A verified document with a higher revision than the last applied one.
    New(VerifiedDocument),
    /// A verified document with the last applied revision and the same content (as far
    /// as its fingerprint is known): nothing new, handle drift.
    Same(VerifiedDocument),
    /// 304: the document last seen is current.
    Unchanged,
    /// 204/404: no document is assigned to this device.
    NoDocument,
}

/// One poll's result and when to poll next.
#[derive(Debug)]
pub struct Poll {
    pub result: Result<Fetched, FetchError>,
    pub next_in: Duration,
}

/// The fetch session (see the module doc for its states).
#[derive(Debug)]
pub struct ConfigChannel {
    client: CentralClient,
    trust: TrustPolicy,
    timing: Timing,
    session: Session,
    store: CentralStore,
    seen_etag: Option<String>,
    last_applied: Option<u64>,
    /// The applied document's content fingerprint (`None`: unknown, e.g. recorded by an
    /// older agent; learnt from the next fetch of the same revision).
    applied_digest: Option<Fingerprint>,
}

impl ConfigChannel {
    /// A session for `config`, resuming the applied revision from `store`.
    pub fn new(client: CentralClient, config: &CentralConfig, store: CentralStore) -> Self {
        // A revision above the bound can only come from an agent that accepted one before
        // the bound existed; keeping it would refuse every later document as a rollback.
        let applied = store
            .snapshot()
            .applied
            .filter(|a| crate::desired::wire::REVISION.allows(a.revision));
        let last_applied = applied.as_ref().map(|a| a.revision);
        let applied_digest = applied.and_then(|a| a.digest);
        Self {
            client,
            trust: config.trust.clone(),
            timing: Timing::new(config.poll_interval, config.long_poll_wait),
            session: Session::default(),
            store,
            seen_etag: None,
            last_applied,
            applied_digest,
        }
    }

    /// The revision last applied, if any.
    pub fn last_applied(&self) -> Option<u64> {
        self.last_applied
    }

    /// The session state: what the next request waits on.
    pub fn session(&self) -> Session {
        self.session
    }

    /// Sends one request and classifies the answer. Cancel-safe: dropping the future
    /// loses nothing but the request in flight.
    pub async fn poll(&mut self) -> Poll {
        let started = Instant::now();
        let response = self
            .client
            .get_config(self.seen_etag.as_deref(), self.timing.wait)
            .await;
        let elapsed = started.elapsed();
        let unit = rand::random::<f64>();
        let (result, next_in) = self.judge(response, elapsed, unit);
        self.record(&result);
        Poll { result, next_in }
    }

    /// What a response means, and the session's next state and delay.
    fn judge(
        &mut self,
        response: Result<ConfigResponse, ClientError>,
        elapsed: Duration,
        unit: f64,
    ) -> (Result<Fetched, FetchError>, Duration) {
        let (answer, result) = match response {
            Ok(ConfigResponse::Document { etag, body }) => {
                // Remember the ETag even when refusing, so the next request waits for a change.
                self.seen_etag.clone_from(&etag);
                let answer = Answer::Document {
                    etag: etag.is_some(),
                };
                let accepted = self.accept(etag, &body);
                if let Ok(Fetched::Same(doc)) = &accepted {
                    self.learn_digest(doc);
                }
                (answer, accepted)
            }
            Ok(ConfigResponse::NotModified) => {
                (Answer::Unchanged { elapsed }, Ok(Fetched::Unchanged))
            }
            Ok(ConfigResponse::NoDocument { .. }) => {
                self.seen_etag = None;
                (Answer::Unchanged { elapsed }, Ok(Fetched::NoDocument))
            }
            Err(e @ ClientError::TokenRejected { .. }) => {
                (Answer::TokenRejected, Err(FetchError::Request(e)))
            }
            Err(e) => {
                let retry_after = e.retry_after();
                (Answer::Failed { retry_after }, Err(FetchError::Request(e)))
            }
        };
        let (session, next_in) = self.session.on_answer(answer, &self.timing, unit);
        self.session = session;
        (result, next_in)
    }

    fn accept(&self, etag: Option<String>, body: &[u8]) -> Result<Fetched, FetchError> {
        let envelope = dsse::parse_envelope(body).map_err(FetchError::Envelope)?;
        let verification = dsse::verify(&envelope, CONFIG_PAYLOAD_TYPE, &self.trust)
            .map_err(FetchError::Envelope)?;
        let revision = read_revision(&envelope.payload)?;
        let digest = match content_digest(self.store.dir(), &envelope.payload) {
            Ok(digest) => Some(digest),
            Err(e) => {
                tracing::warn!(error = %error_chain(&e), "cannot fingerprint the document; its content is not compared with the applied one");
                None
            }
        };
        let document = VerifiedDocument {
            revision,
            etag,
            verification,
            digest,
            payload: SecretSlice::from(envelope.payload),
        };
        match self.last_applied.map(|last| (revision.cmp(&last), last)) {
            None | Some((Ordering::Greater, _)) => Ok(Fetched::New(document)),
            // The same revision must be the same document: "a no-op apart from drift"
            // only holds when nothing else changed.
            Some((Ordering::Equal, _))
                if self
                    .applied_digest
                    .as_ref()
                    .zip(document.digest.as_ref())
                    .is_some_and(|(applied, got)| applied != got) =>
            {
                Err(FetchError::SameRevisionChanged { revision })
            }
            Some((Ordering::Equal, _)) => Ok(Fetched::Same(document)),
            Some((Ordering::Less, last_applied)) => Err(FetchError::Rollback {
                revision,
                last_applied,
            }),
        }
    }

    /// Records that `document` was applied: later documents must have a higher revision.
    pub fn mark_applied(&mut self, document: &VerifiedDocument) -> Result<(), FetchError> {
        let verified_by = match &document.verification {
            Verification::Signed { key_id } => format!("ed25519:{key_id}"),
            Verification::Unsigned => "unsigned".to_owned(),
        };
        let applied = AppliedDocument {
            revision: document.revision,
            etag: document.etag.clone(),
            verified_by,
            at: chrono::Utc::now(),
            digest: document.digest.clone(),
        };
        self.store
            .update(|s| s.applied = Some(applied))
            .map_err(FetchError::State)?;
        self.last_applied = Some(document.revision);
        self.applied_digest.clone_from(&document.digest);
        Ok(())
    }

    /// The applied revision came again and its fingerprint was not known yet (recorded
    /// by an older agent): from now on its content is compared.
    fn learn_digest(&mut self, document: &VerifiedDocument) {
        if self.applied_digest.is_some() || document.digest.is_none() {
            return;
        }
        let written = self.store.update(|s| {
            if let Some(applied) = s
                .applied
                .as_mut()
                .filter(|a| a.revision == document.revision)
            {
                applied.digest.clone_from(&document.digest);
            }
        });
        match written {
            Ok(()) => self.applied_digest.clone_from(&document.digest),
            Err(e) => {
                tracing::warn!(error = %error_chain(&e), "cannot record the document's fingerprint");
            }
        }
    }

    /// Writes the poll's outcome into `central.json` and logs a failure.
    fn record(&self, result: &Result<Fetched, FetchError>) {
        let now = chrono::Utc::now();
        let (outcome, revision) = classify(result);
        // Another "unchanged" after an "unchanged" (the long-poll's routine answer) is
        // kept in memory and written at most every UNCHANGED_WRITE_EVERY; any other
        // outcome is written at once.
        let routine = outcome == FetchOutcome::Unchanged
            && self
                .store
                .snapshot()
                .last_fetch
                .is_some_and(|f| f.outcome == FetchOutcome::Unchanged);
        let change = |s: &mut CentralState| {
            s.counters.fetches += 1;
            s.last_fetch = Some(FetchRecord {
                at: now,
                outcome,
                revision,
            });
            s.contact(now, Via::Fetch, outcome.contact());
            // A verified document (or none assigned): an earlier refusal no longer stands.
            if matches!(
                outcome,
                FetchOutcome::NewDocument | FetchOutcome::SameRevision | FetchOutcome::NoDocument
            ) {
                s.clear_refusal(now);
            }
            let Err(e) = result else {
                // Only `New`/`Same` carry a revision: a document was received.
                if revision.is_some() {
                    s.counters.documents_received += 1;
                }
                return;
            };
            match outcome {
                FetchOutcome::Refused => {
                    s.counters.documents_received += 1;
                    s.counters.documents_refused += 1;
                    s.last_refusal = Some(Refusal {
                        at: now,
                        revision,
                        reason: error_chain(e),
                        fault: e.fault(),
                        cleared_at: None,
                    });
                }
                FetchOutcome::TokenRejected => s.counters.token_rejections += 1,
                _ => s.counters.fetch_errors += 1,
            }
            s.last_error = Some(ErrorRecord {
                at: now,
                fault: e.fault(),
                message: error_chain(e),
            });
        };
        let written = if routine {
            self.store.update_coalesced(UNCHANGED_WRITE_EVERY, change)
        } else {
            self.store.update(change)
        };
        if let Err(e) = written {
            tracing::warn!(error = %error_chain(&e), "cannot record the fetch in central.json");
        }
        if let Err(e) = result {
            tracing::warn!(fault = ?e.fault(), error = %error_chain(e), "desired-state fetch failed");
        }
    }
}

/// The outcome recorded for a poll, and the revision it concerned.
fn classify(result: &Result<Fetched, FetchError>) -> (FetchOutcome, Option<u64>) {
    match result {
        Ok(Fetched::New(d)) => (FetchOutcome::NewDocument, Some(d.revision)),
        Ok(Fetched::Same(d)) => (FetchOutcome::SameRevision, Some(d.revision)),
        Ok(Fetched::Unchanged) => (FetchOutcome::Unchanged, None),
        Ok(Fetched::NoDocument) => (FetchOutcome::NoDocument, None),
        Err(e) if e.is_refusal() => (FetchOutcome::Refused, e.refused_revision()),
        Err(e) if e.is_token_rejected() => (FetchOutcome::TokenRejected, None),
        Err(_) => (FetchOutcome::Failed, None),
    }
}

/// Keyed fingerprint of a document's content: the payload as canonical JSON (object keys
/// sorted, no whitespace) without the top-level `issued_at` — re-serialising or
/// re-signing the same document, or stamping a new issue time, is not a change.
/// Falls back to the raw bytes when the payload is not JSON (it was refused before).
pub fn content_digest(dir: &StateDir, payload: &[u8]) -> Result<Fingerprint, StateError> {
    let text = match serde_json::from_slice::<Value>(payload) {
        Ok(mut value) => {
            if let Some(map) = value.as_object_mut() {
                map.remove("issued_at");
            }
            let mut out = String::new();
            canonical(&value, &mut out);
            out
        }
        Err(_) => String::from_utf8_lossy(payload).into_owned(),
    };
    dir.fingerprint(&SecretString::from(text))
}

fn canonical(value: &Value, out: &mut String) {
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push('{');
            for (n, key) in keys.into_iter().enumerate() {
                if n > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(key.clone()).to_string());
                out.push(':');
                canonical(&map[key.as_str()], out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (n, item) in items.iter().enumerate() {
                if n > 0 {
                    out.push(',');
                }
                canonical(item, out);
            }
            out.push(']');
        }
        scalar => out.push_str(&scalar.to_string()),
    }
}

#[derive(Deserialize)]
struct RevisionOnly {
    revision: Option<Value>,
}

/// Reads `revision` from a payload, ignoring every other field. Pure and total.
pub fn read_revision(payload: &[u8]) -> Result<u64, FetchError> {
    let not_an_object = || FetchError::BadRevision {
        rule: "cannot be read: the payload is not a JSON object".to_owned(),
    };
    // serde would also fill a struct from a JSON array; only an object is a document.
    if payload.trim_ascii_start().first() != Some(&b'{') {
        return Err(not_an_object());
    }
    let doc: RevisionOnly = serde_json::from_slice(payload).map_err(|_| not_an_object())?;
    let rule = &crate::desired::wire::REVISION;
    match doc.revision {
        None => Err(FetchError::BadRevision {
            rule: "is missing".to_owned(),
        }),
        Some(v) => v
            .as_u64()
            .filter(|r| rule.allows(*r))
            .ok_or_else(|| FetchError::BadRevision { rule: rule.text() }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ed25519_dalek::SigningKey;
    use proptest::prelude::*;
    use secrecy::SecretString;

    use crate::central::dsse::TrustedKey;
    use crate::state_dir::StateDir;

    const S: fn(u64) -> Duration = Duration::from_secs;

    fn channel(dir: &std::path::Path, wait: Option<u64>) -> ConfigChannel {
        let key = SigningKey::from_bytes(&[1; 32]);
        let text = format!(
            "[central]\nurl = \"http://127.0.0.1:9\"\ntoken_file = \"/t\"\ntrusted_keys = [\"{}\"]\nlong_poll_wait_secs = {}\n",
            TrustedKey::from_signing_key(&key).to_config_string(),
            wait.unwrap_or(0)
        );
        let config = crate::config::AgentConfig::parse(&text, "t")
            .unwrap()
            .central
            .unwrap();
        let client = CentralClient::new(&config, &SecretString::from("tok")).unwrap();
        let store = CentralStore::open(StateDir::open(dir).unwrap()).unwrap();
        ConfigChannel::new(client, &config, store)
    }

    fn doc(revision: u64, seed: u8) -> ConfigResponse {
        let payload = format!(
            "{{\"schema\":\"truenas-agent.config/v1\",\"revision\":{revision},\"b2\":{{\"application_key\":\"CANARY-B2-APPKEY-7f3a9c\"}}}}"
        );
        let env = dsse::sign(
            CONFIG_PAYLOAD_TYPE,
            payload.as_bytes(),
            &SigningKey::from_bytes(&[seed; 32]),
            None,
        );
        ConfigResponse::Document {
            etag: Some(format!("\"r{revision}\"")),
            body: env.to_json(),
        }
    }

    #[test]
    fn a_run_of_unchanged_answers_is_written_once_and_any_other_outcome_at_once() {
        let tmp = tempfile::tempdir().unwrap();
        let ch = channel(tmp.path(), Some(50));
        let dir = StateDir::open(tmp.path()).unwrap();
        let on_disk = || CentralState::load(&dir).unwrap().unwrap();
        ch.record(&Ok(Fetched::Unchanged));
        assert_eq!(
            on_disk().counters.fetches,
            1,
            "the first unchanged is written"
        );
        for _ in 0..5 {
            ch.record(&Ok(Fetched::Unchanged));
        }
        assert_eq!(ch.store.snapshot().counters.fetches, 6, "counted in memory");
        assert_eq!(on_disk().counters.fetches, 1, "routine answers: no write");
        ch.record(&Err(FetchError::Request(ClientError::ServerError {
            op: super::super::client::Operation::FetchConfig,
            status: 503,
            retry_after: None,
        })));
        let state = on_disk();
        assert_eq!(
            state.counters.fetches, 7,
            "an error is written at once, with the run"
        );
        assert_eq!(state.last_fetch.unwrap().outcome, FetchOutcome::Failed);
        ch.record(&Ok(Fetched::Unchanged));
        assert_eq!(
            on_disk().last_fetch.unwrap().outcome,
            FetchOutcome::Unchanged,
            "the first unchanged after another outcome is written at once"
        );
    }

    #[test]
    fn revisions_new_same_and_rollback() {
        let tmp = tempfile::tempdir().unwrap();
        let mut ch = channel(tmp.path(), None);
        let (r, _) = ch.judge(Ok(doc(5, 1)), S(0), 0.5);
        let Ok(Fetched::New(d)) = r else {
            panic!("{r:?}")
        };
        assert_eq!(d.revision, 5);
        assert!(String::from_utf8_lossy(d.payload()).contains("\"revision\":5"));
        assert!(!format!("{d:?}").contains("CANARY"));
        ch.mark_applied(&d).unwrap();
        assert!(matches!(
            ch.judge(Ok(doc(5, 1)), S(0), 0.5).0,
            Ok(Fetched::Same(_))
        ));
        assert!(matches!(
            ch.judge(Ok(doc(6, 1)), S(0), 0.5).0,
            Ok(Fetched::New(_))
        ));
        let (r, _) = ch.judge(Ok(doc(4, 1)), S(0), 0.5);
        let err = r.unwrap_err();
        assert!(matches!(
            err,
            FetchError::Rollback {
                revision: 4,
                last_applied: 5
            }
        ));
        assert!(err.is_refusal());
        assert_eq!(err.fault(), Fault::Central);
        assert_eq!(
            err.to_string(),
            "refused document revision 4: it is lower than the applied revision 5 (rollback)"
        );
        // The applied revision survives a restart.
        let ch2 = channel(tmp.path(), None);
        assert_eq!(ch2.last_applied(), Some(5));
    }

    fn signed(payload: &str, etag: &str) -> ConfigResponse {
        let env = dsse::sign(
            CONFIG_PAYLOAD_TYPE,
            payload.as_bytes(),
            &SigningKey::from_bytes(&[1; 32]),
            None,
        );
        ConfigResponse::Document {
            etag: Some(etag.to_owned()),
            body: env.to_json(),
        }
    }

    /// 13.9: the applied revision republished with other content is refused, by name;
    /// the same content re-serialised, re-signed or stamped with a new `issued_at` is not
    /// a change; the applied content survives a restart.
    #[test]
    fn the_same_revision_with_other_content_is_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let mut ch = channel(tmp.path(), Some(50));
        let original = r#"{"revision":5,"issued_at":"2026-11-23T10:00:00Z","mode":"enforce","pools":["pool0"],"b2":{"application_key":"CANARY-B2-APPKEY-7f3a9c"}}"#;
        let Ok(Fetched::New(d)) = ch.judge(Ok(signed(original, "\"a\"")), S(0), 0.5).0 else {
            panic!("a first document is new")
        };
        ch.mark_applied(&d).unwrap();
        let reordered = r#"{ "pools": ["pool0"], "mode": "enforce", "revision": 5,
            "b2": {"application_key": "CANARY-B2-APPKEY-7f3a9c"}, "issued_at": "2026-11-24T08:00:00Z" }"#;
        assert!(matches!(
            ch.judge(Ok(signed(reordered, "\"b\"")), S(0), 0.5).0,
            Ok(Fetched::Same(_))
        ));
        let changed = r#"{"revision":5,"issued_at":"2026-11-23T10:00:00Z","mode":"enforce","pools":["pool0","pool1"],"b2":{"application_key":"CANARY-B2-APPKEY-7f3a9c"}}"#;
        let result = ch.judge(Ok(signed(changed, "\"c\"")), S(0), 0.5).0;
        ch.record(&result);
        let err = result.unwrap_err();
        assert!(
            matches!(err, FetchError::SameRevisionChanged { revision: 5 }),
            "{err:?}"
        );
        assert!(err.is_refusal());
        assert_eq!(err.fault(), Fault::Central);
        assert_eq!(err.refused_revision(), Some(5));
        assert!(
            err.to_string().contains("same revision, different content"),
            "{err}"
        );
        assert!(!err.to_string().contains("CANARY"));
        let dir = StateDir::open(tmp.path()).unwrap();
        let state = CentralState::load(&dir).unwrap().unwrap();
        let refusal = state.standing_refusal().expect("the refusal is recorded");
        assert_eq!(refusal.revision, Some(5));
        // After a restart the applied content is still known.
        let mut again = channel(tmp.path(), Some(50));
        assert!(matches!(
            again.judge(Ok(signed(changed, "\"c\"")), S(0), 0.5).0,
            Err(FetchError::SameRevisionChanged { revision: 5 })
        ));
        // Central serves the applied document again: verified, and the refusal is over.
        let result = again.judge(Ok(signed(original, "\"a\"")), S(0), 0.5).0;
        assert!(matches!(result, Ok(Fetched::Same(_))));
        again.record(&result);
        let state = CentralState::load(&dir).unwrap().unwrap();
        assert!(state.standing_refusal().is_none());
        assert!(state.last_refusal.unwrap().cleared_at.is_some());
    }

    /// A document applied by an agent that did not record fingerprints yet: the next
    /// fetch of the same revision teaches it.
    #[test]
    fn an_unknown_fingerprint_is_learnt_from_the_same_revision() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = StateDir::open(tmp.path()).unwrap();
        let store = CentralStore::open(dir.clone()).unwrap();
        store
            .update(|s| {
                s.applied = Some(AppliedDocument {
                    revision: 5,
                    etag: None,
                    verified_by: "unsigned".into(),
                    at: chrono::Utc::now(),
                    digest: None,
                });
            })
            .unwrap();
        let mut ch = channel(tmp.path(), Some(50));
        let original = r#"{"revision":5,"pools":["pool0"]}"#;
        assert!(matches!(
            ch.judge(Ok(signed(original, "\"a\"")), S(0), 0.5).0,
            Ok(Fetched::Same(_))
        ));
        assert!(
            CentralState::load(&dir)
                .unwrap()
                .unwrap()
                .applied
                .unwrap()
                .digest
                .is_some()
        );
        assert!(matches!(
            ch.judge(
                Ok(signed(r#"{"revision":5,"pools":["pool1"]}"#, "\"b\"")),
                S(0),
                0.5
            )
            .0,
            Err(FetchError::SameRevisionChanged { .. })
        ));
    }

    #[test]
    fn untrusted_signature_is_refused_and_its_etag_remembered() {
        let tmp = tempfile::tempdir().unwrap();
        let mut ch = channel(tmp.path(), Some(50));
        let (r, next) = ch.judge(Ok(doc(9, 2)), S(0), 0.5);
        let err = r.unwrap_err();
        assert!(
            matches!(
                err,
                FetchError::Envelope(DsseError::SignatureInvalid { .. })
            ),
            "{err:?}"
        );
        assert_eq!(err.fault(), Fault::Central);
        assert_eq!(ch.seen_etag.as_deref(), Some("\"r9\""));
        // Long-polling on the refused ETag: ask again at once, the server holds it.
        assert_eq!(next, S(0));
    }

    #[test]
    fn scheduling_follows_the_answers() {
        let tmp = tempfile::tempdir().unwrap();
        let mut ch = channel(tmp.path(), Some(50));
        // Held 304 → immediately again; immediate 304 → plain polling (±10 %).
        assert_eq!(
            ch.judge(Ok(ConfigResponse::NotModified), S(50), 0.5).1,
            S(0)
        );
        assert_eq!(ch.session(), Session::LongPolling);
        assert_eq!(
            ch.judge(Ok(ConfigResponse::NotModified), S(0), 0.5).1,
            S(300)
        );
        assert_eq!(ch.session(), Session::Polling);
        assert_eq!(
            ch.judge(Ok(ConfigResponse::NotModified), S(0), 0.0).1,
            S(270)
        );
        // 5xx: exponential; Retry-After is a floor.
        let e = || ClientError::ServerError {
            op: super::super::client::Operation::FetchConfig,
            status: 503,
            retry_after: None,
        };
        assert_eq!(ch.judge(Err(e()), S(0), 1.0).1, S(5));
        assert_eq!(ch.judge(Err(e()), S(0), 1.0).1, S(10));
        let limited = ClientError::RateLimited {
            op: super::super::client::Operation::FetchConfig,
            retry_after: Some(S(90)),
        };
        assert_eq!(ch.judge(Err(limited), S(0), 1.0).1, S(90));
        // An answer resets the back-off.
        let _ = ch.judge(Ok(ConfigResponse::NoDocument { status: 204 }), S(0), 0.5);
        assert_eq!(ch.judge(Err(e()), S(0), 1.0).1, S(5));
        // 401: backs off from the poll interval, doubling.
        let rejected = || ClientError::TokenRejected {
            op: super::super::client::Operation::FetchConfig,
            status: 401,
        };
        assert_eq!(ch.judge(Err(rejected()), S(0), 1.0).1, S(300));
        let (r, next) = ch.judge(Err(rejected()), S(0), 1.0);
        assert_eq!(next, S(600));
        assert!(r.unwrap_err().is_token_rejected());
    }

    #[test]
    fn plain_polling_without_wait() {
        let tmp = tempfile::tempdir().unwrap();
        let mut ch = channel(tmp.path(), None);
        assert_eq!(ch.judge(Ok(doc(1, 1)), S(0), 0.5).1, S(300));
        assert_eq!(
            ch.judge(Ok(ConfigResponse::NotModified), S(0), 0.5).1,
            S(300)
        );
    }

    /// Issue 13.5: a device that accepted a revision above the bound before the bound
    /// existed is not locked out (every later document would be a rollback).
    #[test]
    fn an_applied_revision_above_the_bound_is_ignored() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = StateDir::open(tmp.path()).unwrap();
        let state = serde_json::json!({"applied": {"revision": 9_223_372_036_854_775_807u64,
            "etag": null, "verified_by": "unsigned", "at": "2026-11-23T10:00:00Z"}});
        crate::fs::write_atomic(
            &dir.file("central.json"),
            state.to_string().as_bytes(),
            0o600,
        )
        .unwrap();
        let mut ch = channel(tmp.path(), None);
        assert_eq!(ch.last_applied(), None);
        assert!(matches!(
            ch.judge(Ok(doc(8, 1)), S(0), 0.5).0,
            Ok(Fetched::New(_))
        ));
    }

    #[test]
    fn revision_reading() {
        assert_eq!(read_revision(br#"{"revision":7,"b2":{}}"#).unwrap(), 7);
        for (bad, rule) in [
            (&br#"{"schema":"x"}"#[..], "is missing"),
            (br#"{"revision":0}"#, "from 1 to 9007199254740991"),
            (br#"{"revision":-3}"#, "from 1 to 9007199254740991"),
            (br#"{"revision":"7"}"#, "from 1 to 9007199254740991"),
            (br#"{"revision":1.5}"#, "from 1 to 9007199254740991"),
            // Issue 13.5: beyond 2^53 − 1 (a revision at 2^63 − 1 would lock the device
            // out: every later document a rollback).
            (
                br#"{"revision":9007199254740992}"#,
                "from 1 to 9007199254740991",
            ),
            (
                br#"{"revision":9223372036854775807}"#,
                "from 1 to 9007199254740991",
            ),
            (b"[1]", "not a JSON object"),
            (b"\xff", "not a JSON object"),
        ] {
            let err = read_revision(bad).unwrap_err();
            assert!(err.to_string().contains(rule), "{err}");
            assert_eq!(err.fault(), Fault::Operator);
        }
    }

    proptest! {
        #[test]
        fn read_revision_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = read_revision(&bytes);
        }
    }
}
