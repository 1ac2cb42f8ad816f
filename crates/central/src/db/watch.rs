//! Document-publish wake-ups for held long-polls, across instances.
//!
//! Owns: the event type ([`DocumentEvent`]), the subscriber ([`DocumentWatch`]), on
//! PostgreSQL the `NOTIFY` sent inside a publish's transaction plus the listener task that
//! turns notifications (from every instance, this one included) into events, and on
//! SQLite the watcher that finds publishes made by other processes on the same file
//! (`truenas-central publish` while `serve` runs): it compares every device's document
//! ETag with what it saw before, every [`super::SQLITE_WATCH_INTERVAL`] while anyone
//! subscribes. A publish through a handle also announces itself to that process at once.
//! Does not: hold requests or compare ETags (the server does, after each event).
//! Invariants: PostgreSQL delivers a `NOTIFY` only if its transaction commits, so no event
//! announces a document that is not there; whenever events may have been missed (the
//! listener lost its connection, the SQLite watcher's read failed, or a subscriber fell
//! behind) subscribers get [`DocumentEvent::Resync`] and must re-read what they hold; the
//! SQLite watcher's baseline is taken before `Db::open` returns and kept while nobody
//! subscribes, so no publish after the open goes unannounced. An event may come twice
//! (harmless: the holder re-reads and finds nothing new).
//! Limitations: every subscriber sees every device's events and filters (fine for
//! thousands of held requests; a per-device map would be the next step); on SQLite another
//! process's publish is seen within about a second, and the watcher reads every device's
//! ETag each time (fine for thousands of devices).

use std::collections::HashMap;
use std::time::Duration;

use secrecy::{ExposeSecret as _, SecretString};
use sqlx::{AnyPool, Row as _};
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

/// The PostgreSQL channel.
pub(super) const CHANNEL: &str = "truenas_central_documents";
/// Pause before the listener reconnects after an error.
const RECONNECT_PAUSE: Duration = Duration::from_secs(1);

/// Something changed about published documents.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DocumentEvent {
    /// `device` has a new document.
    Published { device: String, revision: u64 },
    /// Events may have been lost: re-read every document you are waiting on.
    Resync,
}

impl DocumentEvent {
    /// True when a holder of `device` must look again.
    pub fn concerns(&self, device: &str) -> bool {
        match self {
            DocumentEvent::Published { device: d, .. } => d == device,
            DocumentEvent::Resync => true,
        }
    }
}

/// A subscription to [`DocumentEvent`]s.
#[derive(Debug)]
pub struct DocumentWatch {
    rx: broadcast::Receiver<DocumentEvent>,
}

impl DocumentWatch {
    pub(super) fn new(rx: broadcast::Receiver<DocumentEvent>) -> Self {
        Self { rx }
    }

    /// The next event; `None` once the database is closed (no more events will come).
    pub async fn recv(&mut self) -> Option<DocumentEvent> {
        match self.rx.recv().await {
            Ok(event) => Some(event),
            Err(broadcast::error::RecvError::Lagged(_)) => Some(DocumentEvent::Resync),
            Err(broadcast::error::RecvError::Closed) => None,
        }
    }

    /// The next event that concerns `device` (or a resync).
    pub async fn wait_for(&mut self, device: &str) -> Option<DocumentEvent> {
        loop {
            let event = self.recv().await?;
            if event.concerns(device) {
                return Some(event);
            }
        }
    }
}

fn payload(event: &DocumentEvent) -> Option<String> {
    match event {
        DocumentEvent::Published { device, revision } => {
            Some(serde_json::json!({"device": device, "revision": revision}).to_string())
        }
        DocumentEvent::Resync => None,
    }
}

fn parse(payload: &str) -> DocumentEvent {
    let value: serde_json::Value = serde_json::from_str(payload).unwrap_or_default();
    match (value["device"].as_str(), value["revision"].as_u64()) {
        (Some(device), Some(revision)) => DocumentEvent::Published {
            device: device.to_owned(),
            revision,
        },
        // Someone else's NOTIFY on our channel, or a newer format: look again.
        _ => DocumentEvent::Resync,
    }
}

/// Queues the `NOTIFY` of `event` in a publish's transaction (sent at commit).
pub(super) async fn notify_in(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    event: &DocumentEvent,
) -> Result<(), sqlx::Error> {
    if let Some(payload) = payload(event) {
        sqlx::query("SELECT pg_notify($1, $2)")
            .bind(CHANNEL)
            .bind(payload)
            .execute(&mut **tx)
            .await?;
    }
    Ok(())
}

/// Starts the listener task; returns once it listens (so a publish made after `open`
/// returns is seen), or the first connection error.
pub(super) async fn listen(
    url: SecretString,
    events: broadcast::Sender<DocumentEvent>,
    stop: CancellationToken,
) -> Result<(), sqlx::Error> {
    let mut listener = sqlx::postgres::PgListener::connect(url.expose_secret()).await?;
    listener.listen(CHANNEL).await?;
    tokio::spawn(async move {
        loop {
            let next = tokio::select! {
                () = stop.cancelled() => return,
                next = listener.try_recv() => next,
            };
            match next {
                Ok(Some(notification)) => {
                    let _ = events.send(parse(notification.payload()));
                }
                // The connection dropped; the listener reconnects and re-listens on the
                // next call. Whatever was published meanwhile was not heard.
                Ok(None) => {
                    let _ = events.send(DocumentEvent::Resync);
                }
                Err(e) => {
                    tracing::warn!(error = %truenas_agent::fault::error_chain(&e), "the PostgreSQL document listener failed; retrying");
                    let _ = events.send(DocumentEvent::Resync);
                    tokio::select! {
                        () = stop.cancelled() => return,
                        () = tokio::time::sleep(RECONNECT_PAUSE) => {}
                    }
                }
            }
        }
    });
    Ok(())
}

/// Every device's document: name → (etag, revision).
async fn document_tags(pool: &AnyPool) -> Result<HashMap<String, (String, u64)>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT d.name, doc.etag, doc.revision FROM documents doc \
         JOIN devices d ON d.id = doc.device_id",
    )
    .fetch_all(pool)
    .await?;
    let mut tags = HashMap::with_capacity(rows.len());
    for row in &rows {
        let revision: i64 = row.try_get(2)?;
        tags.insert(
            row.try_get(0)?,
            (row.try_get(1)?, u64::try_from(revision).unwrap_or(0)),
        );
    }
    Ok(tags)
}

/// [`document_tags`] on a blocking thread: while it waits for SQLite's worker, a runtime
/// on tokio's paused test clock does not jump ahead (a blocking task holds it), so a
/// read never looks slower than it is. Costs one thread hop a second, only while someone
/// waits.
async fn document_tags_held(pool: &AnyPool) -> Option<HashMap<String, (String, u64)>> {
    let pool = pool.clone();
    let handle = tokio::runtime::Handle::current();
    let read = tokio::task::spawn_blocking(move || handle.block_on(document_tags(&pool))).await;
    match read {
        Ok(Ok(tags)) => Some(tags),
        Ok(Err(e)) => {
            tracing::warn!(error = %truenas_agent::fault::error_chain(&e), "cannot read the documents table for publish wake-ups; retrying");
            None
        }
        Err(_) => None,
    }
}

/// Starts the SQLite watcher for publishes by other processes (see the module doc); its
/// baseline is read before this returns.
pub(super) async fn poll_sqlite(
    pool: AnyPool,
    events: broadcast::Sender<DocumentEvent>,
    stop: CancellationToken,
    interval: Duration,
) {
    let mut seen = document_tags_held(&pool).await;
    tokio::spawn(async move {
        loop {
            tokio::select! {
                () = stop.cancelled() => return,
                () = tokio::time::sleep(interval) => {}
            }
            if events.receiver_count() == 0 {
                continue;
            }
            let now = document_tags_held(&pool).await;
            match (&seen, &now) {
                (Some(before), Some(after)) => {
                    for (device, (etag, revision)) in after {
                        if before.get(device).is_none_or(|(e, _)| e != etag) {
                            let _ = events.send(DocumentEvent::Published {
                                device: device.clone(),
                                revision: *revision,
                            });
                        }
                    }
                }
                // No baseline (a failed read): anything may have changed.
                (None, Some(_)) | (_, None) => {
                    let _ = events.send(DocumentEvent::Resync);
                }
            }
            if now.is_some() {
                seen = now;
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payload_round_trip_and_foreign_notifications() {
        let event = DocumentEvent::Published {
            device: "nas-01".into(),
            revision: 7,
        };
        assert_eq!(parse(&payload(&event).unwrap()), event);
        assert_eq!(parse("hello"), DocumentEvent::Resync);
        assert!(event.concerns("nas-01"));
        assert!(!event.concerns("nas-02"));
        assert!(DocumentEvent::Resync.concerns("nas-02"));
    }
}
