//! The webhook outbox: durable, retried with back-off, claimed safely by several instances.
//!
//! Owns: queueing ([`Db::enqueue_webhooks`], and inside a report's transaction through
//! [`Db::accept_report_with`]), claiming what is due ([`Db::claim_webhooks`]: the claim
//! pushes `next_attempt_at` out by a lease, so another instance does not deliver it at the
//! same time), and recording the outcome ([`Db::webhook_delivered`],
//! [`Db::webhook_failed`]); [`backoff`] is the retry schedule.
//! Does not: build payloads (the caller's, and they must carry no secret) nor send HTTP.
//! Invariants: an entry is delivered at least once unless it gives up; a claim re-checks
//! "due" on the row it updates, so two instances claiming at once never both get an entry
//! (PostgreSQL re-evaluates the `WHERE` on the locked row; SQLite has one writer).
//! Limitations: at-least-once (a crash after the POST and before `webhook_delivered`
//! repeats it: receivers de-duplicate on the entry id, sent as the event id).

use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::Row as _;

use super::{Db, DbError, from_ms, ms, to_u64};

/// A webhook to queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewWebhook {
    /// Event name, e.g. `device.silent`, `backup.failed`.
    pub event: String,
    /// The JSON body to POST (no secrets).
    pub payload: serde_json::Value,
}

/// A claimed outbox entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxItem {
    pub id: i64,
    pub event: String,
    pub device: Option<String>,
    pub payload: serde_json::Value,
    /// Including this one.
    pub attempts: u64,
    pub created_at: DateTime<Utc>,
}

/// Delay before attempt `attempts + 1` after `attempts` failures: 30 s doubling, capped at
/// one hour.
pub fn backoff(attempts: u64) -> Duration {
    let exp = u32::try_from(attempts.saturating_sub(1).min(7)).unwrap_or(7);
    Duration::from_secs(30u64.saturating_mul(1 << exp)).min(Duration::from_secs(3600))
}

pub(super) async fn insert_webhooks(
    db: &Db,
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    device_id: Option<i64>,
    hooks: &[NewWebhook],
    now: DateTime<Utc>,
) -> Result<(), DbError> {
    for hook in hooks {
        sqlx::query(
            "INSERT INTO webhook_outbox (event, device_id, payload, created_at, attempts, \
             next_attempt_at) VALUES ($1, $2, $3, $4, 0, $4)",
        )
        .bind(hook.event.clone())
        .bind(device_id)
        .bind(hook.payload.to_string())
        .bind(ms(now))
        .execute(&mut **tx)
        .await
        .map_err(db.query_error())?;
    }
    Ok(())
}

impl Db {
    /// Queues webhooks about `device` (or about no device), due now.
    pub async fn enqueue_webhooks(
        &self,
        device: Option<&str>,
        hooks: &[NewWebhook],
    ) -> Result<(), DbError> {
        let mut tx = self.begin_write().await?;
        let id = match device {
            Some(name) => Some(self.device_id(&mut *tx, name).await?),
            None => None,
        };
        insert_webhooks(self, &mut tx, id, hooks, Utc::now()).await?;
        tx.commit().await.map_err(self.query_error())
    }

    /// Claims up to `limit` entries due at `now`; each is leased for `lease` (not claimable
    /// again before then unless marked failed), and its attempt counted.
    pub async fn claim_webhooks(
        &self,
        now: DateTime<Utc>,
        limit: u32,
        lease: Duration,
    ) -> Result<Vec<OutboxItem>, DbError> {
        let q = self.query_error();
        let lease = chrono::Duration::from_std(lease).unwrap_or(chrono::Duration::hours(1));
        let mut tx = self.begin_write().await?;
        let rows = sqlx::query(
            "UPDATE webhook_outbox SET attempts = attempts + 1, next_attempt_at = $1 \
             WHERE delivered_at IS NULL AND failed_at IS NULL AND next_attempt_at <= $2 \
             AND id IN (SELECT id FROM webhook_outbox WHERE delivered_at IS NULL \
             AND failed_at IS NULL AND next_attempt_at <= $2 ORDER BY next_attempt_at, id \
             LIMIT $3) \
             RETURNING id, event, device_id, payload, attempts, created_at",
        )
        .bind(ms(now + lease))
        .bind(ms(now))
        .bind(i64::from(limit))
        .fetch_all(&mut *tx)
        .await
        .map_err(&q)?;
        let mut items = Vec::with_capacity(rows.len());
        for r in &rows {
            let device_id: Option<i64> = r.try_get(2).map_err(&q)?;
            let device = match device_id {
                Some(id) => Some(
                    sqlx::query("SELECT name FROM devices WHERE id = $1")
                        .bind(id)
                        .fetch_one(&mut *tx)
                        .await
                        .map_err(&q)?
                        .try_get::<String, _>(0)
                        .map_err(&q)?,
                ),
                None => None,
            };
            let text: String = r.try_get(3).map_err(&q)?;
            let id: i64 = r.try_get(0).map_err(&q)?;
            items.push(OutboxItem {
                id,
                event: r.try_get(1).map_err(&q)?,
                device,
                payload: serde_json::from_str(&text).map_err(|source| DbError::Corrupt {
                    what: format!("webhook outbox entry {id}"),
                    source,
                })?,
                attempts: to_u64(r.try_get(4).map_err(&q)?, "webhook attempts")?,
                created_at: from_ms(r.try_get(5).map_err(&q)?),
            });
        }
        tx.commit().await.map_err(&q)?;
        items.sort_by_key(|i| i.id);
        Ok(items)
    }

    /// Records a successful delivery.
    pub async fn webhook_delivered(&self, id: i64, at: DateTime<Utc>) -> Result<(), DbError> {
        sqlx::query("UPDATE webhook_outbox SET delivered_at = $1, last_error = NULL WHERE id = $2")
            .bind(ms(at))
            .bind(id)
            .execute(&self.inner.writer)
            .await
            .map_err(self.query_error())?;
        Ok(())
    }

    /// Records a failed attempt: retried at `retry_at`, or never again when `give_up`.
    /// `error` must not hold secrets (it is stored and shown to operators).
    pub async fn webhook_failed(
        &self,
        id: i64,
        error: &str,
        retry_at: DateTime<Utc>,
        give_up: bool,
    ) -> Result<(), DbError> {
        sqlx::query(
            "UPDATE webhook_outbox SET last_error = $1, next_attempt_at = $2, \
             failed_at = $3 WHERE id = $4 AND delivered_at IS NULL",
        )
        .bind(error.to_owned())
        .bind(ms(retry_at))
        .bind(give_up.then(|| ms(Utc::now())))
        .bind(id)
        .execute(&self.inner.writer)
        .await
        .map_err(self.query_error())?;
        Ok(())
    }

    /// Entries neither delivered nor given up.
    pub async fn webhooks_pending(&self) -> Result<u64, DbError> {
        let row = sqlx::query(
            "SELECT COUNT(*) FROM webhook_outbox WHERE delivered_at IS NULL AND failed_at IS NULL",
        )
        .fetch_one(&self.inner.pool)
        .await
        .map_err(self.query_error())?;
        to_u64(
            row.try_get(0).map_err(self.query_error())?,
            "pending webhooks",
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_caps() {
        assert_eq!(backoff(1), Duration::from_secs(30));
        assert_eq!(backoff(2), Duration::from_secs(60));
        assert_eq!(backoff(3), Duration::from_secs(120));
        assert_eq!(backoff(8), Duration::from_secs(3600));
        assert_eq!(backoff(1000), Duration::from_secs(3600));
    }
}
