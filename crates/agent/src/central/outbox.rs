//! Reports on their way to central: queue into the spool, deliver oldest first.
//!
//! Owns: [`Outbox`] — encoding a [`Report`] into the spool (with the dropped count and
//! the secret scrub), and delivering the spool in order with `POST /v1/reports`:
//! 2xx removes the report, 4xx other than 401/403/408/429 drops it for good (counted),
//! 401/403 (token rejected) keeps it and backs off like a rejected config fetch (from the
//! poll interval, doubling to 1 h), anything else stops the round and backs off
//! (exponential with jitter, floor = `Retry-After`).
//! Does not: build reports or decide when to send them (the daemon: after every apply,
//! on health changes, and at least every report interval).
//! Invariants: reports leave in the order they were queued; a report is removed from
//! the spool only after central answered 2xx or a permanent 4xx (never for 401/403: a
//! rejected token says nothing about the report), so a crash or a
//! cancelled [`Outbox::deliver`] re-sends at most the one in flight (central
//! de-duplicates on `report_id`); counters, the last outcome and every contact (answered
//! or not) go to `central.json`.
//! Limitations: one report per request (no batching).

use std::time::Duration;

use chrono::Utc;
use secrecy::SecretString;

use super::client::{CentralClient, ClientError, ReportResponse};
use super::report::{self, Report};
use super::schedule::Backoff;
use super::spool::{Pushed, Spool, SpoolError};
use super::state::{CentralStore, ContactOutcome, ErrorRecord, ReportOutcome, ReportRecord, Via};
use crate::fault::Fault;
use crate::fault::error_chain;

/// Queuing or delivering reports failed.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("cannot queue the report")]
    Spool(#[source] SpoolError),
    #[error("cannot deliver reports to central")]
    Send(#[source] ClientError),
}

impl ReportError {
    /// The party that has to act.
    pub fn fault(&self) -> Fault {
        match self {
            ReportError::Spool(e) => e.fault(),
            ReportError::Send(e) => e.fault(),
        }
    }
}

/// How a delivery round went.
#[derive(Debug, Default)]
pub struct Delivery {
    pub delivered: usize,
    /// Rejected for good (4xx other than 401/403/408/429) and dropped.
    pub rejected: usize,
    /// Still in the spool.
    pub pending: usize,
    /// Why the round stopped early.
    pub error: Option<ReportError>,
    /// When to try again (`None`: the spool is empty).
    pub retry_in: Option<Duration>,
}

/// The spool plus the client that empties it.
#[derive(Debug)]
pub struct Outbox {
    client: CentralClient,
    spool: Spool,
    store: CentralStore,
    backoff: Backoff,
    /// Back-off while central rejects the token (401/403).
    auth: Backoff,
}

impl Outbox {
    /// Opens the spool in the store's state dir with a cap of `spool_max_bytes`.
    pub fn open(
        client: CentralClient,
        store: CentralStore,
        spool_max_bytes: u64,
    ) -> Result<Self, ReportError> {
        let spool = Spool::open(store.dir().path(), spool_max_bytes).map_err(ReportError::Spool)?;
        let lost = spool.stats();
        if lost.skipped_bytes > 0 {
            tracing::warn!(
                skipped_bytes = lost.skipped_bytes,
                reports_lost = lost.lost_corrupt,
                "{} bytes of unreadable spool data were skipped ({} of them report records)",
                lost.skipped_bytes,
                if lost.lost_corrupt == 0 {
                    "none".to_owned()
                } else {
                    lost.lost_corrupt.to_string()
                }
            );
        }
        if lost.lost_corrupt > 0 || lost.dropped_for_cap > 0 {
            tracing::warn!(
                torn_or_corrupt = lost.lost_corrupt,
                over_cap = lost.dropped_for_cap,
                "reports lost from the spool; the next report says how many"
            );
            if let Err(e) = store.update(|s| {
                s.counters.reports_lost += lost.lost_corrupt;
                s.counters.reports_dropped += lost.dropped_for_cap;
            }) {
                tracing::warn!(error = %error_chain(&e), "cannot record lost reports in central.json");
            }
        }
        Ok(Self {
            client,
            spool,
            store,
            backoff: Backoff::transient(),
            auth: Backoff::token_rejected(crate::config::DEFAULT_POLL_INTERVAL),
        })
    }

    /// Replaces the back-off policies: `transient` for network errors, 408/429/5xx;
    /// `token_rejected` for 401/403 ([`super::open`] starts it at the poll interval).
    #[must_use]
    pub fn with_backoff(mut self, transient: Backoff, token_rejected: Backoff) -> Self {
        self.backoff = transient;
        self.auth = token_rejected;
        self
    }

    /// Queues a report durably. `secrets` are scrubbed from it (see `report::encode`).
    pub fn enqueue(
        &mut self,
        report: &Report,
        secrets: &[&SecretString],
    ) -> Result<Pushed, ReportError> {
        let pushed = self
            .spool
            .push(|dropped| report::encode(report, dropped, secrets))
            .map_err(ReportError::Spool)?;
        if pushed.dropped > 0 {
            tracing::warn!(
                dropped = pushed.dropped,
                "report spool full: dropped the oldest reports"
            );
        }
        self.note(|s| {
            s.counters.reports_queued += 1;
            s.counters.reports_dropped += pushed.dropped;
        });
        Ok(pushed)
    }

    /// Reports waiting in the spool.
    pub fn pending(&self) -> usize {
        self.spool.len()
    }

    /// Sends queued reports, oldest first, until the spool is empty or central cannot
    /// take one (then `retry_in` says when to try again).
    pub async fn deliver(&mut self) -> Delivery {
        let mut delivery = Delivery::default();
        loop {
            let (seq, body) = match self.spool.oldest() {
                Ok(Some(next)) => next,
                Ok(None) => break,
                Err(e) => {
                    delivery.error = Some(ReportError::Spool(e));
                    delivery.retry_in = Some(self.backoff.next(rand::random(), None));
                    break;
                }
            };
            match self.client.post_report(body).await {
                Ok(response) => {
                    if let Err(e) = self.settle(seq, response, &mut delivery) {
                        delivery.error = Some(e);
                        break;
                    }
                }
                Err(e) => {
                    let retry_in = self.retry_after_error(&e);
                    self.note_error(&e, status_of(&e));
                    delivery.error = Some(ReportError::Send(e));
                    delivery.retry_in = Some(retry_in);
                    break;
                }
            }
        }
        delivery.pending = self.spool.len();
        delivery
    }

    /// The delay before the next round after a failed request: the token back-off for
    /// 401/403 (the other one restarts from scratch once the token works), else the
    /// transient one with `Retry-After` as a floor.
    fn retry_after_error(&mut self, error: &ClientError) -> Duration {
        if matches!(error, ClientError::TokenRejected { .. }) {
            self.backoff.reset();
            self.auth.next(rand::random(), None)
        } else {
            self.backoff.next(rand::random(), error.retry_after())
        }
    }

    fn settle(
        &mut self,
        seq: u64,
        response: ReportResponse,
        delivery: &mut Delivery,
    ) -> Result<(), ReportError> {
        self.backoff.reset();
        self.auth.reset();
        let (outcome, status) = match response {
            ReportResponse::Accepted { status } => {
                self.spool.remove(seq).map_err(ReportError::Spool)?;
                delivery.delivered += 1;
                (ReportOutcome::Delivered, status)
            }
            ReportResponse::Rejected { status } => {
                self.spool.reject(seq).map_err(ReportError::Spool)?;
                delivery.rejected += 1;
                tracing::warn!(status, "central rejected a report for good; dropped it");
                (ReportOutcome::Rejected, status)
            }
        };
        let pending = self.spool.len();
        self.note(|s| {
            match outcome {
                ReportOutcome::Delivered => s.counters.reports_delivered += 1,
                ReportOutcome::Rejected => s.counters.reports_rejected += 1,
                ReportOutcome::Retrying | ReportOutcome::TokenRejected => {}
            }
            let now = Utc::now();
            s.last_report = Some(ReportRecord {
                at: now,
                outcome,
                status: Some(status),
                pending,
            });
            s.contact(now, Via::Report, ContactOutcome::Answered);
        });
        Ok(())
    }

    fn note_error(&self, error: &ClientError, status: Option<u16>) {
        let pending = self.spool.len();
        let outcome = if matches!(error, ClientError::TokenRejected { .. }) {
            tracing::warn!(pending, error = %error_chain(error), "central rejected the device token; reports stay in the spool");
            ReportOutcome::TokenRejected
        } else {
            tracing::warn!(fault = ?error.fault(), error = %error_chain(error), "report delivery failed; will retry");
            ReportOutcome::Retrying
        };
        self.note(|s| {
            if outcome == ReportOutcome::TokenRejected {
                s.counters.token_rejections += 1;
            }
            let now = Utc::now();
            s.last_report = Some(ReportRecord {
                at: now,
                outcome,
                status,
                pending,
            });
            s.contact(
                now,
                Via::Report,
                if outcome == ReportOutcome::TokenRejected {
                    ContactOutcome::TokenRejected
                } else {
                    ContactOutcome::Unreachable
                },
            );
            s.last_error = Some(ErrorRecord {
                at: Utc::now(),
                fault: error.fault(),
                message: format!("cannot deliver reports to central: {}", error_chain(error)),
            });
        });
    }

    fn note(&self, change: impl FnOnce(&mut super::state::CentralState)) {
        if let Err(e) = self.store.update(change) {
            tracing::warn!(error = %error_chain(&e), "cannot record report delivery in central.json");
        }
    }
}

fn status_of(error: &ClientError) -> Option<u16> {
    match error {
        ClientError::ServerError { status, .. }
        | ClientError::UnexpectedStatus { status, .. }
        | ClientError::TokenRejected { status, .. } => Some(*status),
        ClientError::RateLimited { .. } => Some(429),
        ClientError::ReadCa(_)
        | ClientError::BadCa { .. }
        | ClientError::Setup(_)
        | ClientError::BadToken
        | ClientError::Transport { .. }
        | ClientError::BodyTooLarge { .. } => None,
    }
}
