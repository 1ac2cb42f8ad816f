//! Operators of the dashboard: accounts, their bearer tokens and login sessions.
//!
//! Owns: operator rows, operator token hashes, session-id hashes with their expiry.
//! Does not: create tokens or session ids (the caller draws them from the OS CSPRNG and
//! passes their SHA-256, as for device tokens), set cookies or check CSRF.
//! Invariants: only hashes are stored; an operator token never matches a device token
//! lookup and the reverse (separate tables); a disabled operator's tokens and sessions do
//! not authenticate; an expired session does not authenticate.
//! Limitations: no roles (every operator sees and acts on the whole fleet).

use chrono::{DateTime, Utc};
use sqlx::Row as _;

use super::{Db, DbError, from_ms, is_unique_violation, ms, to_u64};

/// An operator account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Operator {
    pub id: i64,
    pub name: String,
    pub disabled: bool,
    pub created_at: DateTime<Utc>,
}

fn check_operator_name(name: &str) -> Result<(), DbError> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && !name.starts_with('.')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.@".contains(c));
    if ok {
        Ok(())
    } else {
        Err(DbError::BadOperatorName {
            name: name.to_owned(),
        })
    }
}

impl Db {
    fn operator_from(&self, r: &sqlx::any::AnyRow) -> Result<Operator, DbError> {
        let q = self.query_error();
        Ok(Operator {
            id: r.try_get(0).map_err(&q)?,
            name: r.try_get(1).map_err(&q)?,
            disabled: r.try_get::<i64, _>(2).map_err(&q)? != 0,
            created_at: from_ms(r.try_get(3).map_err(&q)?),
        })
    }

    /// Creates an operator with its first token (hash).
    pub async fn add_operator(&self, name: &str, token_hash: &str) -> Result<Operator, DbError> {
        check_operator_name(name)?;
        let q = self.query_error();
        let now = ms(Utc::now());
        let mut tx = self.begin_write().await?;
        let row = sqlx::query(
            "INSERT INTO operators (name, disabled, created_at) VALUES ($1, 0, $2) \
             ON CONFLICT (name) DO NOTHING RETURNING id, name, disabled, created_at",
        )
        .bind(name)
        .bind(now)
        .fetch_optional(&mut *tx)
        .await
        .map_err(&q)?;
        let Some(row) = row else {
            return Err(DbError::OperatorExists {
                name: name.to_owned(),
            });
        };
        let operator = self.operator_from(&row)?;
        let added = sqlx::query(
            "INSERT INTO operator_tokens (hash, operator_id, created_at) VALUES ($1, $2, $3)",
        )
        .bind(token_hash)
        .bind(operator.id)
        .bind(now)
        .execute(&mut *tx)
        .await;
        match added {
            Ok(_) => {}
            Err(e) if is_unique_violation(&e) => return Err(DbError::OperatorTokenInUse),
            Err(e) => return Err(q(e)),
        }
        tx.commit().await.map_err(&q)?;
        Ok(operator)
    }

    /// Adds another token (hash) to an operator.
    pub async fn add_operator_token(&self, name: &str, token_hash: &str) -> Result<(), DbError> {
        let q = self.query_error();
        let mut tx = self.begin_write().await?;
        let operator = self.operator_in(&mut tx, name).await?;
        let added = sqlx::query(
            "INSERT INTO operator_tokens (hash, operator_id, created_at) VALUES ($1, $2, $3)",
        )
        .bind(token_hash)
        .bind(operator.id)
        .bind(ms(Utc::now()))
        .execute(&mut *tx)
        .await;
        match added {
            Ok(_) => {}
            Err(e) if is_unique_violation(&e) => return Err(DbError::OperatorTokenInUse),
            Err(e) => return Err(q(e)),
        }
        tx.commit().await.map_err(&q)
    }

    async fn operator_in(
        &self,
        tx: &mut sqlx::Transaction<'static, sqlx::Any>,
        name: &str,
    ) -> Result<Operator, DbError> {
        let row =
            sqlx::query("SELECT id, name, disabled, created_at FROM operators WHERE name = $1")
                .bind(name)
                .fetch_optional(&mut **tx)
                .await
                .map_err(self.query_error())?;
        match row {
            Some(r) => self.operator_from(&r),
            None => Err(DbError::UnknownOperator {
                name: name.to_owned(),
            }),
        }
    }

    /// Every operator, by name.
    pub async fn operators(&self) -> Result<Vec<Operator>, DbError> {
        let rows =
            sqlx::query("SELECT id, name, disabled, created_at FROM operators ORDER BY name")
                .fetch_all(&self.inner.pool)
                .await
                .map_err(self.query_error())?;
        rows.iter().map(|r| self.operator_from(r)).collect()
    }

    /// Disables or re-enables an operator (its tokens and sessions stop or resume working).
    pub async fn set_operator_disabled(&self, name: &str, disabled: bool) -> Result<(), DbError> {
        let done = sqlx::query("UPDATE operators SET disabled = $1 WHERE name = $2")
            .bind(i64::from(disabled))
            .bind(name)
            .execute(&self.inner.writer)
            .await
            .map_err(self.query_error())?;
        if done.rows_affected() == 0 {
            return Err(DbError::UnknownOperator {
                name: name.to_owned(),
            });
        }
        Ok(())
    }

    /// The enabled operator an operator-token hash belongs to (and notes its use).
    pub async fn operator_for_token(&self, token_hash: &str) -> Result<Option<Operator>, DbError> {
        let q = self.query_error();
        let row = sqlx::query(
            "SELECT o.id, o.name, o.disabled, o.created_at FROM operator_tokens t \
             JOIN operators o ON o.id = t.operator_id WHERE t.hash = $1 AND o.disabled = 0",
        )
        .bind(token_hash)
        .fetch_optional(&self.inner.pool)
        .await
        .map_err(&q)?;
        let Some(row) = row else {
            return Ok(None);
        };
        sqlx::query("UPDATE operator_tokens SET last_used_at = $1 WHERE hash = $2")
            .bind(ms(Utc::now()))
            .bind(token_hash)
            .execute(&self.inner.writer)
            .await
            .map_err(&q)?;
        self.operator_from(&row).map(Some)
    }

    /// Records a login session (the hash of its id) for an operator until `expires_at`.
    pub async fn create_session(
        &self,
        operator_id: i64,
        session_hash: &str,
        expires_at: DateTime<Utc>,
    ) -> Result<(), DbError> {
        sqlx::query(
            "INSERT INTO sessions (hash, operator_id, created_at, expires_at) \
             VALUES ($1, $2, $3, $4)",
        )
        .bind(session_hash)
        .bind(operator_id)
        .bind(ms(Utc::now()))
        .bind(ms(expires_at))
        .execute(&self.inner.writer)
        .await
        .map_err(self.query_error())?;
        Ok(())
    }

    /// The enabled operator of a session still valid at `now`.
    pub async fn session_operator(
        &self,
        session_hash: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<Operator>, DbError> {
        let row = sqlx::query(
            "SELECT o.id, o.name, o.disabled, o.created_at FROM sessions s \
             JOIN operators o ON o.id = s.operator_id \
             WHERE s.hash = $1 AND s.expires_at > $2 AND o.disabled = 0",
        )
        .bind(session_hash)
        .bind(ms(now))
        .fetch_optional(&self.inner.pool)
        .await
        .map_err(self.query_error())?;
        row.map(|r| self.operator_from(&r)).transpose()
    }

    /// Ends a session (logout).
    pub async fn delete_session(&self, session_hash: &str) -> Result<(), DbError> {
        sqlx::query("DELETE FROM sessions WHERE hash = $1")
            .bind(session_hash)
            .execute(&self.inner.writer)
            .await
            .map_err(self.query_error())?;
        Ok(())
    }

    /// Deletes sessions expired at `now`; returns how many.
    pub async fn prune_sessions(&self, now: DateTime<Utc>) -> Result<u64, DbError> {
        let done = sqlx::query("DELETE FROM sessions WHERE expires_at <= $1")
            .bind(ms(now))
            .execute(&self.inner.writer)
            .await
            .map_err(self.query_error())?;
        Ok(done.rows_affected())
    }

    /// Sessions in the table (expired ones included until pruned).
    pub async fn session_count(&self) -> Result<u64, DbError> {
        let row = sqlx::query("SELECT COUNT(*) FROM sessions")
            .fetch_one(&self.inner.pool)
            .await
            .map_err(self.query_error())?;
        to_u64(row.try_get(0).map_err(self.query_error())?, "session count")
    }
}
