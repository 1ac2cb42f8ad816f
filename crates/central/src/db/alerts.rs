//! The announced alert state per device: what the webhooks last said about it, so a
//! transition (of a report or of time) is announced exactly once across every central
//! instance.
//!
//! Owns: the `device_alerts` table — one opaque text per device (the caller's JSON) —
//! and [`Db::announce`], a compare-and-set of that text that queues the transition's
//! webhooks in the same transaction.
//! Does not: decide what the text means or what the webhooks say (`alerts`, `monitor`).
//! Invariants: a change is recorded, and its webhooks queued, only if the stored text is
//! still what the caller read: two instances evaluating at once cannot both announce one
//! transition (the conditional `UPDATE` re-checks the row it locks on PostgreSQL; SQLite
//! has one writer); a first announcement inserts with `ON CONFLICT DO NOTHING`.
//! Limitations: none.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use sqlx::Row as _;

use super::outbox::{NewWebhook, insert_webhooks};
use super::{Db, DbError, ms, to_u64};

impl Db {
    /// Every device's announced state as stored, by device name (devices never announced
    /// are absent).
    pub async fn announcements(&self) -> Result<HashMap<String, String>, DbError> {
        let q = self.query_error();
        let rows = sqlx::query(
            "SELECT d.name, a.announced FROM device_alerts a JOIN devices d ON d.id = a.device_id",
        )
        .fetch_all(&self.inner.pool)
        .await
        .map_err(&q)?;
        rows.iter()
            .map(|r| Ok((r.try_get(0).map_err(&q)?, r.try_get(1).map_err(&q)?)))
            .collect()
    }

    /// Replaces `device`'s announced state with `next` if it is still `expected` (`None`:
    /// nothing announced yet), and queues `hooks` in the same transaction. Returns false,
    /// changing nothing, when another writer got there first.
    pub async fn announce(
        &self,
        device: &str,
        expected: Option<&str>,
        next: &str,
        hooks: &[NewWebhook],
        at: DateTime<Utc>,
    ) -> Result<bool, DbError> {
        let q = self.query_error();
        let mut tx = self.begin_write().await?;
        let id = self.device_id(&mut *tx, device).await?;
        let won = match expected {
            None => sqlx::query(
                "INSERT INTO device_alerts (device_id, announced, updated_at) VALUES ($1, $2, $3) \
                 ON CONFLICT (device_id) DO NOTHING",
            )
            .bind(id)
            .bind(next)
            .bind(ms(at))
            .execute(&mut *tx)
            .await
            .map_err(&q)?,
            Some(expected) => sqlx::query(
                "UPDATE device_alerts SET announced = $1, updated_at = $2 \
                 WHERE device_id = $3 AND announced = $4",
            )
            .bind(next)
            .bind(ms(at))
            .bind(id)
            .bind(expected)
            .execute(&mut *tx)
            .await
            .map_err(&q)?,
        }
        .rows_affected()
            == 1;
        if !won {
            tx.rollback().await.map_err(&q)?;
            return Ok(false);
        }
        insert_webhooks(self, &mut tx, Some(id), hooks, at).await?;
        tx.commit().await.map_err(&q)?;
        Ok(true)
    }

    /// Outbox totals: `(pending, delivered, given up)`.
    pub async fn webhook_totals(&self) -> Result<(u64, u64, u64), DbError> {
        let q = self.query_error();
        let row = sqlx::query(
            "SELECT COUNT(CASE WHEN delivered_at IS NULL AND failed_at IS NULL THEN 1 END), \
             COUNT(CASE WHEN delivered_at IS NOT NULL THEN 1 END), \
             COUNT(CASE WHEN failed_at IS NOT NULL THEN 1 END) FROM webhook_outbox",
        )
        .fetch_one(&self.inner.pool)
        .await
        .map_err(&q)?;
        let get = |i: usize| -> Result<u64, DbError> {
            to_u64(row.try_get::<i64, _>(i).map_err(&q)?, "webhook count")
        };
        Ok((get(0)?, get(1)?, get(2)?))
    }
}
