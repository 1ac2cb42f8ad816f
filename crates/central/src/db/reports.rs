//! Reports, the per-device state derived from them, and report retention.
//!
//! Owns: [`Db::accept_report`] (de-duplication on `(device, report_id)` by a unique index,
//! the report row, the derived [`DeviceState`] and per-pool [`PoolBackup`] rows, and the
//! webhooks the caller derives from the state change — all in one transaction), the reads
//! of stored reports and states, and [`Db::prune_reports`].
//! Does not: judge health (overdue/silent/failing verdicts are the dashboard's, from these
//! facts and the clock) nor format webhooks (the caller's closure does).
//! Invariants: a report counts once (count, drop tally) however often and however
//! concurrently it is delivered; the state row is locked first in every report
//! transaction, so concurrent reports of one device serialise instead of losing updates;
//! an older report arriving late (by `created_at`) never replaces the state a newer one
//! set, but still adds its drops and can only raise a pool's last successful backup;
//! retention never deletes a device's latest report.
//! Limitations: the derived state is rewritten from the newest report, not merged field by
//! field; pools missing from a newer report are dropped from the state.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::Row as _;
use uuid::Uuid;

use super::outbox::{NewWebhook, insert_webhooks};
use super::{Db, DbError, check_name, from_ms, ms, to_i64, to_u64};
use truenas_agent::central::report::{CheckStatus, ConfigState, Report};

/// A stored report as central received it (also one line of the old file layout's
/// `reports.jsonl`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredReport {
    pub received_at: DateTime<Utc>,
    pub report: Report,
    /// Reports the agent lost before delivery, over every stored report up to this one
    /// (`None` where not known: old `reports.jsonl` lines, [`Db::reports`] rows).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dropped: Option<DropTally>,
}

/// What a device's reports say about reports its agent lost before they reached central
/// (its spool was full, or a record was damaged): each report announces the losses since
/// the one before (`agent.dropped_reports`), so the sum over the stored reports is the
/// number lost.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DropTally {
    /// Sum of `agent.dropped_reports`.
    pub total: u64,
    /// When central received the newest report announcing a loss.
    pub last_at: Option<DateTime<Utc>>,
}

impl DropTally {
    /// The tally after `report`, received at `at`.
    #[must_use]
    pub fn after(self, report: &Report, at: DateTime<Utc>) -> Self {
        let dropped = report.agent.dropped_reports;
        Self {
            total: self.total.saturating_add(dropped),
            last_at: if dropped > 0 { Some(at) } else { self.last_at },
        }
    }
}

/// A device's state as its reports left it (what the dashboard reads).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceState {
    pub device: String,
    /// When central received the most recent report (any report).
    pub last_report_at: Option<DateTime<Utc>>,
    /// `created_at` of the report the fields below come from (the newest one).
    pub latest_created_at: Option<DateTime<Utc>>,
    /// Reports stored (before retention).
    pub report_count: u64,
    /// Reports the agent lost before delivery, summed over every stored report.
    pub dropped: DropTally,
    pub agent_version: Option<String>,
    pub guid: Option<String>,
    pub hostname: Option<String>,
    pub config_revision: Option<u64>,
    pub config_state: Option<ConfigState>,
    pub config_errors: u64,
    /// Drift entries in the newest report.
    pub drift: u64,
    pub checklist_failing: u64,
    pub checklist_unknown: u64,
    /// Cloud Sync tasks failed, overdue or with an error class.
    pub cloud_sync_failing: u64,
    /// One entry per pool of the newest report, by pool name.
    pub pools: Vec<PoolBackup>,
}

impl DeviceState {
    fn empty(device: &str) -> Self {
        Self {
            device: device.to_owned(),
            last_report_at: None,
            latest_created_at: None,
            report_count: 0,
            dropped: DropTally::default(),
            agent_version: None,
            guid: None,
            hostname: None,
            config_revision: None,
            config_state: None,
            config_errors: 0,
            drift: 0,
            checklist_failing: 0,
            checklist_unknown: 0,
            cloud_sync_failing: 0,
            pools: Vec::new(),
        }
    }

    /// The state after `report`, received at `received_at`.
    #[must_use]
    pub fn after(&self, report: &Report, received_at: DateTime<Utc>) -> Self {
        let mut next = self.clone();
        next.report_count = self.report_count.saturating_add(1);
        next.dropped = self.dropped.after(report, received_at);
        next.last_report_at = Some(
            self.last_report_at
                .map_or(received_at, |t| t.max(received_at)),
        );
        let newer = self
            .latest_created_at
            .is_none_or(|latest| report.created_at >= latest);
        let best = |pool: &str, reported: Option<DateTime<Utc>>| {
            let before = self
                .pools
                .iter()
                .find(|p| p.pool == pool)
                .and_then(|p| p.last_success_at);
            before.max(reported)
        };
        if !newer {
            for pool in &mut next.pools {
                if let Some(c) = report
                    .health
                    .cloud_sync
                    .iter()
                    .find(|c| c.pool == pool.pool)
                {
                    pool.last_success_at = best(&pool.pool, c.last_success);
                }
            }
            return next;
        }
        let count = |n: usize| u64::try_from(n).unwrap_or(u64::MAX);
        next.latest_created_at = Some(report.created_at);
        next.agent_version = Some(report.agent.version.clone());
        next.guid.clone_from(&report.device.guid);
        next.hostname.clone_from(&report.device.hostname);
        next.config_revision = report.config.revision;
        next.config_state = Some(report.config.state);
        next.config_errors = count(report.config.errors.len());
        next.drift = count(report.config.drift.len());
        next.checklist_failing = count(report.failing_checks().count());
        next.checklist_unknown = count(
            report
                .checklist
                .iter()
                .filter(|c| c.status == CheckStatus::Unknown)
                .count(),
        );
        next.cloud_sync_failing = count(
            report
                .health
                .cloud_sync
                .iter()
                .filter(|c| {
                    c.overdue
                        || c.error_class.is_some()
                        || matches!(c.state.as_str(), "FAILED" | "ERROR" | "ABORTED" | "MISSING")
                })
                .count(),
        );
        let mut pools: Vec<PoolBackup> = report
            .health
            .cloud_sync
            .iter()
            .map(|c| PoolBackup {
                pool: c.pool.clone(),
                state: c.state.clone(),
                overdue: c.overdue,
                error_class: c.error_class.clone(),
                last_success_at: best(&c.pool, c.last_success),
                reported_at: report.created_at,
            })
            .collect();
        pools.sort_by(|a, b| a.pool.cmp(&b.pool));
        pools.dedup_by(|a, b| a.pool == b.pool);
        next.pools = pools;
        next
    }
}

/// One pool's backup as the newest report saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolBackup {
    pub pool: String,
    /// The Cloud Sync job state (`SUCCESS`, `FAILED`, `NEVER_RUN`, …).
    pub state: String,
    pub overdue: bool,
    pub error_class: Option<String>,
    /// The newest successful run any stored report announced for this pool.
    pub last_success_at: Option<DateTime<Utc>>,
    /// `created_at` of the report this entry comes from.
    pub reported_at: DateTime<Utc>,
}

/// What became of a delivered report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Accepted {
    /// Stored; the state before and after it.
    Stored {
        previous: Box<DeviceState>,
        state: Box<DeviceState>,
    },
    /// Already stored (same device, same `report_id`): nothing changed.
    Duplicate,
}

fn config_state_text(state: ConfigState) -> String {
    // The wire name (`applied`, `failed`, …).
    serde_json::to_value(state)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

fn config_state_from(text: &str) -> Option<ConfigState> {
    serde_json::from_value(serde_json::Value::String(text.to_owned())).ok()
}

fn opt_u64(value: Option<i64>, what: &'static str) -> Result<Option<u64>, DbError> {
    value.map(|v| to_u64(v, what)).transpose()
}

impl Db {
    /// Stores a report (de-duplicated on `report_id` per device) and updates the device's
    /// derived state, in one transaction.
    pub async fn accept_report(
        &self,
        name: &str,
        report: &Report,
        received_at: DateTime<Utc>,
    ) -> Result<Accepted, DbError> {
        self.accept_report_with(name, report, received_at, |_, _| Vec::new())
            .await
    }

    /// As [`Db::accept_report`], and queues the webhooks `webhooks(previous, next)` returns
    /// in the same transaction (so a transition is announced exactly when it is stored).
    pub async fn accept_report_with<F>(
        &self,
        name: &str,
        report: &Report,
        received_at: DateTime<Utc>,
        webhooks: F,
    ) -> Result<Accepted, DbError>
    where
        F: FnOnce(&DeviceState, &DeviceState) -> Vec<NewWebhook> + Send,
    {
        check_name(name)?;
        #[allow(
            clippy::expect_used,
            reason = "invariant: plain data always serialises"
        )]
        let body = serde_json::to_string(report).expect("invariant: a report serialises");
        let q = self.query_error();
        let mut tx = self.begin_write().await?;
        let id = self.device_id(&mut *tx, name).await?;
        // Lock the device's state row first (created if missing): concurrent reports of
        // one device serialise here on PostgreSQL; SQLite's write lock already does.
        sqlx::query(
            "INSERT INTO device_state (device_id) VALUES ($1) ON CONFLICT (device_id) \
             DO UPDATE SET report_count = device_state.report_count",
        )
        .bind(id)
        .execute(&mut *tx)
        .await
        .map_err(&q)?;
        let inserted = sqlx::query(
            "INSERT INTO reports (device_id, report_id, created_at, received_at, dropped, body) \
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (device_id, report_id) DO NOTHING \
             RETURNING id",
        )
        .bind(id)
        .bind(report.report_id.to_string())
        .bind(ms(report.created_at))
        .bind(ms(received_at))
        .bind(to_i64(report.agent.dropped_reports, "dropped reports")?)
        .bind(body)
        .fetch_optional(&mut *tx)
        .await
        .map_err(&q)?;
        let Some(row) = inserted else {
            tx.rollback().await.map_err(&q)?;
            return Ok(Accepted::Duplicate);
        };
        let report_row: i64 = row.try_get(0).map_err(&q)?;
        let previous = self
            .load_state(&mut tx, id, name)
            .await?
            .unwrap_or_else(|| DeviceState::empty(name));
        let state = previous.after(report, received_at);
        let newest = previous
            .latest_created_at
            .is_none_or(|latest| report.created_at >= latest);
        self.save_state(&mut tx, id, &state, newest.then_some(report_row))
            .await?;
        let hooks = webhooks(&previous, &state);
        insert_webhooks(self, &mut tx, Some(id), &hooks, Utc::now()).await?;
        tx.commit().await.map_err(&q)?;
        Ok(Accepted::Stored {
            previous: Box::new(previous),
            state: Box::new(state),
        })
    }

    async fn load_state(
        &self,
        tx: &mut sqlx::Transaction<'static, sqlx::Any>,
        id: i64,
        name: &str,
    ) -> Result<Option<DeviceState>, DbError> {
        let q = self.query_error();
        let row = sqlx::query(STATE_COLUMNS_BY_DEVICE)
            .bind(id)
            .fetch_optional(&mut **tx)
            .await
            .map_err(&q)?;
        let Some(row) = row else {
            return Ok(None);
        };
        let mut state = self.state_from_row(&row, name)?;
        let pools = sqlx::query(POOLS_BY_DEVICE)
            .bind(id)
            .fetch_all(&mut **tx)
            .await
            .map_err(&q)?;
        state.pools = pools
            .iter()
            .map(|r| self.pool_from_row(r))
            .collect::<Result<_, _>>()?;
        Ok(Some(state))
    }

    /// `row`: the columns of [`STATE_COLUMNS_BY_DEVICE`].
    fn state_from_row(&self, row: &sqlx::any::AnyRow, name: &str) -> Result<DeviceState, DbError> {
        let q = self.query_error();
        let count = |i: usize, what| -> Result<u64, DbError> {
            to_u64(row.try_get::<i64, _>(i).map_err(&q)?, what)
        };
        let config_state: Option<String> = row.try_get(10).map_err(&q)?;
        Ok(DeviceState {
            device: name.to_owned(),
            latest_created_at: row.try_get::<Option<i64>, _>(0).map_err(&q)?.map(from_ms),
            last_report_at: row.try_get::<Option<i64>, _>(1).map_err(&q)?.map(from_ms),
            report_count: count(2, "report count")?,
            dropped: DropTally {
                total: count(3, "dropped reports")?,
                last_at: row.try_get::<Option<i64>, _>(4).map_err(&q)?.map(from_ms),
            },
            agent_version: row.try_get(5).map_err(&q)?,
            guid: row.try_get(6).map_err(&q)?,
            hostname: row.try_get(7).map_err(&q)?,
            config_revision: opt_u64(row.try_get(8).map_err(&q)?, "config revision")?,
            // 9 is the latest report's row id.
            config_state: config_state.as_deref().and_then(config_state_from),
            config_errors: count(11, "config errors")?,
            drift: count(12, "drift")?,
            checklist_failing: count(13, "failing checks")?,
            checklist_unknown: count(14, "unknown checks")?,
            cloud_sync_failing: count(15, "failing Cloud Sync tasks")?,
            pools: Vec::new(),
        })
    }

    fn pool_from_row(&self, r: &sqlx::any::AnyRow) -> Result<PoolBackup, DbError> {
        let q = self.query_error();
        Ok(PoolBackup {
            pool: r.try_get(0).map_err(&q)?,
            state: r.try_get(1).map_err(&q)?,
            overdue: r.try_get::<i64, _>(2).map_err(&q)? != 0,
            error_class: r.try_get(3).map_err(&q)?,
            last_success_at: r.try_get::<Option<i64>, _>(4).map_err(&q)?.map(from_ms),
            reported_at: from_ms(r.try_get(5).map_err(&q)?),
        })
    }

    async fn save_state(
        &self,
        tx: &mut sqlx::Transaction<'static, sqlx::Any>,
        id: i64,
        s: &DeviceState,
        latest_report: Option<i64>,
    ) -> Result<(), DbError> {
        let q = self.query_error();
        let opt = |v: Option<u64>, what| v.map(|v| to_i64(v, what)).transpose();
        sqlx::query(
            "UPDATE device_state SET latest_report = COALESCE($1, latest_report), \
             latest_created_at = $2, last_report_at = $3, report_count = $4, dropped_total = $5, \
             last_drop_at = $6, agent_version = $7, guid = $8, hostname = $9, \
             config_revision = $10, config_state = $11, config_errors = $12, drift = $13, \
             checklist_failing = $14, checklist_unknown = $15, cloud_sync_failing = $16 \
             WHERE device_id = $17",
        )
        .bind(latest_report)
        .bind(s.latest_created_at.map(ms))
        .bind(s.last_report_at.map(ms))
        .bind(to_i64(s.report_count, "report count")?)
        .bind(to_i64(s.dropped.total, "dropped reports")?)
        .bind(s.dropped.last_at.map(ms))
        .bind(s.agent_version.clone())
        .bind(s.guid.clone())
        .bind(s.hostname.clone())
        .bind(opt(s.config_revision, "config revision")?)
        .bind(s.config_state.map(config_state_text))
        .bind(to_i64(s.config_errors, "config errors")?)
        .bind(to_i64(s.drift, "drift")?)
        .bind(to_i64(s.checklist_failing, "failing checks")?)
        .bind(to_i64(s.checklist_unknown, "unknown checks")?)
        .bind(to_i64(s.cloud_sync_failing, "failing Cloud Sync tasks")?)
        .bind(id)
        .execute(&mut **tx)
        .await
        .map_err(&q)?;
        sqlx::query("DELETE FROM pool_backups WHERE device_id = $1")
            .bind(id)
            .execute(&mut **tx)
            .await
            .map_err(&q)?;
        for p in &s.pools {
            sqlx::query(
                "INSERT INTO pool_backups (device_id, pool, state, overdue, error_class, \
                 last_success_at, reported_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
            )
            .bind(id)
            .bind(p.pool.clone())
            .bind(p.state.clone())
            .bind(i64::from(p.overdue))
            .bind(p.error_class.clone())
            .bind(p.last_success_at.map(ms))
            .bind(ms(p.reported_at))
            .execute(&mut **tx)
            .await
            .map_err(&q)?;
        }
        Ok(())
    }

    /// A device's derived state (`None`: unknown device; a device that never reported has
    /// an empty state).
    pub async fn device_state(&self, name: &str) -> Result<Option<DeviceState>, DbError> {
        check_name(name)?;
        let id = match self.device_id(&self.inner.pool, name).await {
            Ok(id) => id,
            Err(DbError::UnknownDevice { .. }) => return Ok(None),
            Err(e) => return Err(e),
        };
        let mut tx = self.inner.pool.begin().await.map_err(self.query_error())?;
        let state = self.load_state(&mut tx, id, name).await?;
        tx.commit().await.map_err(self.query_error())?;
        Ok(Some(state.unwrap_or_else(|| DeviceState::empty(name))))
    }

    /// Every device's derived state, by name (the fleet view's input).
    pub async fn device_states(&self) -> Result<Vec<DeviceState>, DbError> {
        let q = self.query_error();
        let mut tx = self.inner.pool.begin().await.map_err(&q)?;
        let rows = sqlx::query(
            "SELECT d.id, d.name, s.device_id FROM devices d \
             LEFT JOIN device_state s ON s.device_id = d.id ORDER BY d.name",
        )
        .fetch_all(&mut *tx)
        .await
        .map_err(&q)?;
        let mut states = Vec::with_capacity(rows.len());
        for row in &rows {
            let id: i64 = row.try_get(0).map_err(&q)?;
            let name: String = row.try_get(1).map_err(&q)?;
            let has_state = row.try_get::<Option<i64>, _>(2).map_err(&q)?.is_some();
            let state = if has_state {
                self.load_state(&mut tx, id, &name).await?
            } else {
                None
            };
            states.push(state.unwrap_or_else(|| DeviceState::empty(&name)));
        }
        tx.commit().await.map_err(&q)?;
        Ok(states)
    }

    /// The drop tally of a device (zero when it never reported).
    pub async fn drop_tally(&self, name: &str) -> Result<DropTally, DbError> {
        Ok(self
            .device_state(name)
            .await?
            .map(|s| s.dropped)
            .unwrap_or_default())
    }

    /// The device's newest report (by `created_at`), with the device's drop tally.
    pub async fn latest_report(&self, name: &str) -> Result<Option<StoredReport>, DbError> {
        check_name(name)?;
        let row = sqlx::query(
            "SELECT r.received_at, r.body, s.dropped_total, s.last_drop_at FROM device_state s \
             JOIN devices d ON d.id = s.device_id JOIN reports r ON r.id = s.latest_report \
             WHERE d.name = $1",
        )
        .bind(name)
        .fetch_optional(&self.inner.pool)
        .await
        .map_err(self.query_error())?;
        let Some(row) = row else {
            return Ok(None);
        };
        let q = self.query_error();
        let mut stored = Self::stored_from(
            name,
            row.try_get(0).map_err(&q)?,
            &row.try_get::<String, _>(1).map_err(&q)?,
        )?;
        stored.dropped = Some(DropTally {
            total: to_u64(row.try_get(2).map_err(&q)?, "dropped reports")?,
            last_at: row.try_get::<Option<i64>, _>(3).map_err(&q)?.map(from_ms),
        });
        Ok(Some(stored))
    }

    fn stored_from(name: &str, received_at: i64, body: &str) -> Result<StoredReport, DbError> {
        let report = serde_json::from_str(body).map_err(|source| DbError::Corrupt {
            what: format!("a stored report of `{name}`"),
            source,
        })?;
        Ok(StoredReport {
            received_at: from_ms(received_at),
            report,
            dropped: None,
        })
    }

    /// A device's stored reports, newest received first, at most `limit`.
    pub async fn reports(&self, name: &str, limit: u32) -> Result<Vec<StoredReport>, DbError> {
        let id = self.device_id(&self.inner.pool, name).await?;
        let rows = sqlx::query(
            "SELECT received_at, body FROM reports WHERE device_id = $1 \
             ORDER BY received_at DESC, id DESC LIMIT $2",
        )
        .bind(id)
        .bind(i64::from(limit))
        .fetch_all(&self.inner.pool)
        .await
        .map_err(self.query_error())?;
        let q = self.query_error();
        rows.iter()
            .map(|r| {
                Self::stored_from(
                    name,
                    r.try_get(0).map_err(&q)?,
                    &r.try_get::<String, _>(1).map_err(&q)?,
                )
            })
            .collect()
    }

    /// Every stored report id of a device.
    pub async fn report_ids(&self, name: &str) -> Result<Vec<Uuid>, DbError> {
        let id = self.device_id(&self.inner.pool, name).await?;
        let rows = sqlx::query("SELECT report_id FROM reports WHERE device_id = $1 ORDER BY id")
            .bind(id)
            .fetch_all(&self.inner.pool)
            .await
            .map_err(self.query_error())?;
        rows.iter()
            .map(|r| {
                let text: String = r.try_get(0).map_err(self.query_error())?;
                Uuid::parse_str(&text).map_err(|_| DbError::OutOfRange {
                    what: "stored report id",
                })
            })
            .collect()
    }

    /// Deletes reports received before `before`, except each device's latest, in batches of
    /// `batch` rows (one short transaction each, so serving goes on meanwhile). Returns how
    /// many were deleted.
    pub async fn prune_reports(&self, before: DateTime<Utc>, batch: u32) -> Result<u64, DbError> {
        let q = self.query_error();
        let batch = batch.max(1);
        let mut deleted = 0u64;
        loop {
            let mut tx = self.begin_write().await?;
            let done = sqlx::query(
                "DELETE FROM reports WHERE id IN (SELECT r.id FROM reports r \
                 WHERE r.received_at < $1 AND NOT EXISTS \
                 (SELECT 1 FROM device_state s WHERE s.latest_report = r.id) \
                 ORDER BY r.id LIMIT $2)",
            )
            .bind(ms(before))
            .bind(i64::from(batch))
            .execute(&mut *tx)
            .await
            .map_err(&q)?;
            tx.commit().await.map_err(&q)?;
            deleted += done.rows_affected();
            if done.rows_affected() < u64::from(batch) {
                break;
            }
            tokio::task::yield_now().await;
        }
        if deleted > 0 {
            tracing::info!(deleted, "report retention deleted old reports");
        }
        Ok(deleted)
    }

    /// [`Db::prune_reports`] for "keep `days` days" as of `now`.
    pub async fn apply_retention(&self, days: u32, now: DateTime<Utc>) -> Result<u64, DbError> {
        self.prune_reports(now - chrono::Duration::days(i64::from(days)), 500)
            .await
    }

    /// How many reports are stored in all.
    pub async fn report_count(&self) -> Result<u64, DbError> {
        let row = sqlx::query("SELECT COUNT(*) FROM reports")
            .fetch_one(&self.inner.pool)
            .await
            .map_err(self.query_error())?;
        to_u64(row.try_get(0).map_err(self.query_error())?, "report count")
    }
}

const STATE_COLUMNS_BY_DEVICE: &str = "SELECT latest_created_at, last_report_at, report_count, \
     dropped_total, last_drop_at, agent_version, guid, hostname, config_revision, latest_report, \
     config_state, config_errors, drift, checklist_failing, checklist_unknown, cloud_sync_failing \
     FROM device_state WHERE device_id = $1 AND report_count > 0";

const POOLS_BY_DEVICE: &str = "SELECT pool, state, overdue, error_class, last_success_at, \
     reported_at FROM pool_backups WHERE device_id = $1 ORDER BY pool";
