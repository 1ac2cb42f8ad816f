//! Webhook delivery: signed JSON POSTs from the durable outbox, retried with back-off.
//!
//! Owns: the outbox entry's shape (`{"target": NAME, "body": {…}}`: one entry per event
//! and receiver, so each receiver is retried on its own), the signature
//! (`X-TrueNAS-Central-Signature: sha256=<hex HMAC-SHA256(secret, body bytes)>`, with
//! `X-TrueNAS-Central-Event` and `X-TrueNAS-Central-Delivery` (the event id)), one delivery
//! pass ([`Deliverer::deliver_due`]: claim what is due, POST, record the outcome) and the
//! worker loop ([`Deliverer::run`]).
//! Does not: decide what happened (`monitor`, `alerts`) or store anything but outcomes.
//! Invariants: an entry is POSTed only to the receiver it names; a 2xx marks it
//! delivered, anything else (or no answer within the timeout) schedules the next attempt
//! after `db::backoff(attempts)` (30 s doubling to 1 h) until `max_attempts`, then it is
//! given up; redirects are not followed; the stored and logged error never holds the
//! URL (receivers such as Slack carry a secret in it) nor the secret; the body carries no
//! secret (see `alerts`).
//! Limitations: at-least-once — a receiver must de-duplicate on the event id
//! (`X-TrueNAS-Central-Delivery`, the body's `id`); entries for a receiver removed from
//! the config are given up.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac as _};
use reqwest::header::{CONTENT_TYPE, HeaderValue};
use secrecy::ExposeSecret as _;
use serde_json::Value;
use sha2::Sha256;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::clock::Clock;
use crate::config::{DeliveryConfig, WebhookTarget};
use crate::db::{Db, DbError, OutboxItem, backoff};
use crate::monitor::Counters;

/// The signature header.
pub const SIGNATURE_HEADER: &str = "X-TrueNAS-Central-Signature";
/// The event name header.
pub const EVENT_HEADER: &str = "X-TrueNAS-Central-Event";
/// The event id header (the body's `id`; the same on every retry).
pub const DELIVERY_HEADER: &str = "X-TrueNAS-Central-Delivery";
/// Entries claimed per pass.
const BATCH: u32 = 10;

/// The worker could not start.
#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    #[error("cannot build the webhook HTTP client")]
    Client(#[source] reqwest::Error),
}

/// `sha256=<hex>` of `body` under `secret`.
pub fn signature(secret: &[u8], body: &[u8]) -> String {
    #[allow(
        clippy::expect_used,
        reason = "invariant: HMAC accepts keys of any length"
    )]
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("invariant: HMAC takes any key");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// Checks a signature header against `body` (constant-time; for receivers and tests).
pub fn verify(secret: &[u8], body: &[u8], header: &str) -> bool {
    let Some(hex_sig) = header.strip_prefix("sha256=") else {
        return false;
    };
    let Ok(expected) = hex::decode(hex_sig) else {
        return false;
    };
    #[allow(
        clippy::expect_used,
        reason = "invariant: HMAC accepts keys of any length"
    )]
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("invariant: HMAC takes any key");
    mac.update(body);
    mac.verify_slice(&expected).is_ok()
}

/// What one pass did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Pass {
    pub delivered: usize,
    pub failed: usize,
    pub given_up: usize,
}

/// How one attempt ended.
enum Outcome {
    Delivered,
    Failed(String),
    /// Never retried (no such receiver, malformed entry).
    Hopeless(String),
}

/// The webhook delivery worker.
pub struct Deliverer {
    db: Db,
    targets: Vec<WebhookTarget>,
    config: DeliveryConfig,
    http: reqwest::Client,
    clock: Arc<dyn Clock>,
    counters: Arc<Counters>,
    /// Hold tokio's paused test clock during each pass (`ServerOptions::hold_clock`).
    hold_clock: bool,
}

impl std::fmt::Debug for Deliverer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Deliverer")
            .field("targets", &self.targets)
            .finish_non_exhaustive()
    }
}

impl Deliverer {
    /// A worker posting to `targets`.
    pub fn new(
        db: Db,
        targets: Vec<WebhookTarget>,
        config: DeliveryConfig,
        clock: Arc<dyn Clock>,
        counters: Arc<Counters>,
    ) -> Result<Self, WebhookError> {
        truenas_agent::middleware::tls::install_crypto_provider();
        let mut builder = reqwest::Client::builder()
            .user_agent(concat!("truenas-central/", env!("CARGO_PKG_VERSION")))
            .timeout(config.timeout)
            .connect_timeout(config.timeout)
            .redirect(reqwest::redirect::Policy::none());
        // Loopback receivers (tests, a local relay) must not go through a proxy.
        if targets.iter().all(|t| t.url.scheme() == "http") && !targets.is_empty() {
            builder = builder.no_proxy();
        }
        let http = builder.build().map_err(WebhookError::Client)?;
        Ok(Self {
            db,
            targets,
            config,
            http,
            clock,
            counters,
            hold_clock: false,
        })
    }

    /// For tests on tokio's paused clock: [`Deliverer::run`] holds the clock during each
    /// pass (see `ServerOptions::hold_clock`).
    #[must_use]
    pub fn with_clock_hold(mut self, hold: bool) -> Self {
        self.hold_clock = hold;
        self
    }

    /// Whether any receiver is configured (without one the worker has nothing to do).
    pub fn has_targets(&self) -> bool {
        !self.targets.is_empty()
    }

    /// The lease of a claimed entry: longer than a batch of POSTs can take.
    fn lease(&self) -> Duration {
        self.config.timeout * (BATCH + 1) + Duration::from_secs(60)
    }

    /// Claims what is due now (by the worker's clock), POSTs each, records the outcome.
    pub async fn deliver_due(&self) -> Result<Pass, DbError> {
        let mut pass = Pass::default();
        loop {
            let now = self.clock.now();
            let items = self.db.claim_webhooks(now, BATCH, self.lease()).await?;
            if items.is_empty() {
                return Ok(pass);
            }
            let full = items.len() == BATCH as usize;
            for item in items {
                self.deliver_one(&item, now, &mut pass).await?;
            }
            if !full {
                return Ok(pass);
            }
        }
    }

    async fn deliver_one(
        &self,
        item: &OutboxItem,
        now: DateTime<Utc>,
        pass: &mut Pass,
    ) -> Result<(), DbError> {
        let (target_name, outcome) = self.attempt(item).await;
        let target = target_name.as_deref().unwrap_or("?");
        match outcome {
            Outcome::Delivered => {
                self.db.webhook_delivered(item.id, self.clock.now()).await?;
                pass.delivered += 1;
                Counters::bump(&self.counters.webhook_deliveries);
                tracing::info!(event = %item.event, webhook = target, id = item.id, "delivered a webhook");
            }
            Outcome::Failed(error) => {
                let give_up = item.attempts >= self.config.max_attempts;
                let retry_at = now
                    + chrono::Duration::from_std(backoff(item.attempts))
                        .unwrap_or(chrono::Duration::hours(1));
                self.db
                    .webhook_failed(item.id, &error, retry_at, give_up)
                    .await?;
                Counters::bump(&self.counters.webhook_failures);
                if give_up {
                    pass.given_up += 1;
                    Counters::bump(&self.counters.webhooks_given_up);
                    tracing::warn!(event = %item.event, webhook = target, id = item.id,
                        attempts = item.attempts, error = %error, "gave up a webhook");
                } else {
                    pass.failed += 1;
                    tracing::warn!(event = %item.event, webhook = target, id = item.id,
                        attempts = item.attempts, error = %error, retry_at = %retry_at, "webhook delivery failed; will retry");
                }
            }
            Outcome::Hopeless(error) => {
                self.db.webhook_failed(item.id, &error, now, true).await?;
                pass.given_up += 1;
                Counters::bump(&self.counters.webhooks_given_up);
                tracing::warn!(event = %item.event, id = item.id, error = %error, "gave up a webhook");
            }
        }
        Ok(())
    }

    /// One POST; the receiver's name and how it went.
    async fn attempt(&self, item: &OutboxItem) -> (Option<String>, Outcome) {
        let Some(name) = item.payload.get("target").and_then(Value::as_str) else {
            return (
                None,
                Outcome::Hopeless("the outbox entry names no receiver".to_owned()),
            );
        };
        let Some(body) = item.payload.get("body") else {
            return (
                Some(name.to_owned()),
                Outcome::Hopeless("the outbox entry has no body".to_owned()),
            );
        };
        let Some(target) = self.targets.iter().find(|t| t.name == name) else {
            return (
                Some(name.to_owned()),
                Outcome::Hopeless(format!("webhook `{name}` is no longer configured")),
            );
        };
        let bytes = body.to_string().into_bytes();
        let sig = signature(target.secret.expose_secret().as_bytes(), &bytes);
        let id = body.get("id").and_then(Value::as_str).unwrap_or_default();
        let request = self
            .http
            .post(target.url.clone())
            .header(CONTENT_TYPE, HeaderValue::from_static("application/json"))
            .header(SIGNATURE_HEADER, sig)
            .header(EVENT_HEADER, item.event.as_str())
            .header(DELIVERY_HEADER, id)
            .body(bytes);
        let outcome = match request.send().await {
            Ok(r) if r.status().is_success() => Outcome::Delivered,
            Ok(r) => Outcome::Failed(format!(
                "the receiver answered HTTP {}",
                r.status().as_u16()
            )),
            Err(e) => Outcome::Failed(format!(
                "no answer: {}",
                truenas_agent::fault::error_chain(&e.without_url())
            )),
        };
        (Some(name.to_owned()), outcome)
    }

    /// Delivers until `shutdown`: whenever `wake` is notified (webhooks were queued) and
    /// at least every `poll` (retries come due).
    pub async fn run(self: Arc<Self>, wake: Arc<Notify>, shutdown: CancellationToken) {
        loop {
            let hold = crate::clock::TokioHold::new(self.hold_clock);
            let pass = self.deliver_due().await;
            drop(hold);
            if let Err(e) = pass {
                tracing::warn!(error = %truenas_agent::fault::error_chain(&e), "webhook delivery pass failed");
            }
            tokio::select! {
                () = wake.notified() => {}
                () = tokio::time::sleep(self.config.poll) => {}
                () = shutdown.cancelled() => return,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_is_hmac_sha256_of_the_body() {
        // RFC 4231 test case 2.
        let sig = signature(b"Jefe", b"what do ya want for nothing?");
        assert_eq!(
            sig,
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        assert!(verify(b"Jefe", b"what do ya want for nothing?", &sig));
        assert!(!verify(b"Jefe", b"what do ya want for nothing!", &sig));
        assert!(!verify(b"jefe", b"what do ya want for nothing?", &sig));
        assert!(!verify(b"Jefe", b"x", "md5=00"));
    }
}
