//! One logged-in middleware connection: [`Session`], and waiting for a job on it.
//!
//! Owns: the session (its connection, the detected [`ApiInfo`], and its `core.get_jobs`
//! [`JobTracker`], subscribed on first use), the mapping of a connection-level failure to
//! [`CallError`] ([`call_error`]), and waiting for one job on one session
//! ([`wait_on`]): catch up with one `core.get_jobs [[["id","=",ID]]]` query (the job may
//! have finished — or, for `cloudsync.sync`, have been queued earlier — before we asked),
//! then follow events, polling every `poll_interval` in case events are lost or refused.
//! Does not: connect or reconnect (`client.rs`, which retries [`wait_on`] on a new
//! session), start jobs or judge their outcome (a FAILED job is returned, not an error).
//! Invariants: after a reconnect, a job is only followed further if it is provably the
//! same job (same method and queue time, [`Identity`]) — job ids restart at 1 when
//! middlewared restarts.
//! Limitations: a job that fell out of the middleware's memory (it keeps ~1000) is
//! reported as not found.

use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::OnceCell;
use tokio::time::Instant;
use tracing::warn;

use super::calls;
use super::conn::{CallFailure, Conn};
use super::jobs::{self, JobTracker};
use super::{ApiInfo, CallError, Job, JobId, Method, Protocol};

/// How a session waits for a job (from the client's settings).
#[derive(Debug, Clone, Copy)]
pub(crate) struct JobWait {
    /// Query the job again this often, in case events are lost.
    pub(crate) poll_interval: Duration,
    /// How many jobs the tracker remembers.
    pub(crate) cache_capacity: usize,
    /// The timeout of each query and of the subscription.
    pub(crate) call_timeout: Duration,
}

/// One logged-in connection and what was detected on it.
pub(crate) struct Session {
    pub(crate) conn: Conn,
    pub(crate) api: ApiInfo,
    jobs: OnceCell<Option<JobTracker>>,
}

impl Session {
    /// A session on `conn`, with what was detected on it.
    pub(crate) fn new(conn: Conn, api: ApiInfo) -> Self {
        Self {
            conn,
            api,
            jobs: OnceCell::new(),
        }
    }

    /// Whether the connection is still up.
    pub(crate) fn is_open(&self) -> bool {
        self.conn.closed_reason().is_none()
    }

    /// The `core.get_jobs` tracker, subscribed on first use; `None` if the
    /// subscription was refused (waiting then polls only).
    pub(crate) async fn jobs(&self, capacity: usize, timeout: Duration) -> Option<&JobTracker> {
        self.jobs
            .get_or_init(|| async {
                match self.conn.subscribe(jobs::EVENT, timeout).await {
                    Ok(sub) => Some(JobTracker::start(sub, capacity)),
                    Err(failure) => {
                        warn!(
                            ?failure,
                            "cannot subscribe to job events; waiting for jobs by polling"
                        );
                        None
                    }
                }
            })
            .await
            .as_ref()
    }
}

/// Maps a connection-level failure of a call to [`CallError`].
pub(crate) fn call_error(
    method: Method,
    protocol: Protocol,
    timeout: Duration,
    failure: CallFailure,
) -> CallError {
    match failure {
        CallFailure::NotSent(detail) => CallError::Unavailable { method, detail },
        CallFailure::Lost(detail) => CallError::Disconnected { method, detail },
        CallFailure::TimedOut => CallError::Timeout {
            method,
            after: timeout,
        },
        CallFailure::TooLarge { bytes, limit } => CallError::Protocol {
            method,
            detail: format!(
                "the request is {bytes} bytes, over the middleware's {limit}-byte message limit; not sent"
            ),
        },
        CallFailure::Remote(error) => error.to_call_error(method, protocol),
    }
}

/// What identifies a job across a reconnect (ids are reused after a middleware restart).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Identity {
    method: Option<String>,
    queued: Option<DateTime<Utc>>,
}

impl Identity {
    fn of(job: &Job) -> Self {
        Self {
            method: job.method.clone(),
            queued: job.time_started,
        }
    }
}

/// Waits on one session: query, then events until the next poll, until terminal.
pub(crate) async fn wait_on(
    session: &Session,
    how: JobWait,
    id: JobId,
    deadline: Instant,
    timeout: Duration,
    identity: &mut Option<Identity>,
) -> Result<Job, CallError> {
    let tracker = session.jobs(how.cache_capacity, how.call_timeout).await;
    let mut changes = tracker.map(JobTracker::changes);
    loop {
        let job = query(session, how.call_timeout, id).await?;
        check_identity(identity, &job, id)?;
        if job.state.is_terminal() {
            return Ok(job);
        }
        let poll_at = deadline.min(Instant::now() + how.poll_interval);
        loop {
            if let Some(job) = tracker.and_then(|t| t.latest(id)) {
                if job.state.is_terminal() {
                    check_identity(identity, &job, id)?;
                    return Ok(job);
                }
            }
            let change = async {
                match changes.as_mut() {
                    Some(rx) => rx.changed().await.is_ok(),
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                live = change => if !live { changes = None },
                () = tokio::time::sleep_until(poll_at) => break,
            }
        }
        if Instant::now() >= deadline {
            return Err(CallError::Timeout {
                method: Method::CoreGetJobs,
                after: timeout,
            });
        }
    }
}

fn check_identity(seen: &mut Option<Identity>, job: &Job, id: JobId) -> Result<(), CallError> {
    let now = Identity::of(job);
    match seen {
        Some(before) if *before != now => Err(CallError::NotFound {
            method: Method::CoreGetJobs,
            reason: format!(
                "job {id} is gone: the middleware restarted and the id now names another job"
            ),
        }),
        Some(_) => Ok(()),
        None => {
            *seen = Some(now);
            Ok(())
        }
    }
}

/// `core.get_jobs [[["id","=",ID]]]`: one job or not found.
async fn query(session: &Session, timeout: Duration, id: JobId) -> Result<Job, CallError> {
    let call = calls::job(id);
    let method = call.method;
    let reply = session
        .conn
        .call(method, &call.params, timeout)
        .await
        .map_err(|f| call_error(method, session.api.protocol, timeout, f))?;
    let first = reply.as_array().and_then(|jobs| jobs.first()).cloned();
    let Some(first) = first else {
        return Err(CallError::NotFound {
            method,
            reason: format!(
                "job {id} is not known to the middleware (it keeps only recent jobs, and forgets them on restart)"
            ),
        });
    };
    // serde's message can quote the offending value, so it is not passed on.
    serde_json::from_value(first).map_err(|_| CallError::Protocol {
        method,
        detail: format!("job {id} does not have the shape of a middleware job"),
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn identity_detects_a_reused_id() {
        let mut seen = None;
        let first: Job = serde_json::from_value(
            json!({"id": 3, "method": "cloudsync.sync", "state": "RUNNING", "time_started": {"$date": 1_000}}),
        )
        .unwrap();
        check_identity(&mut seen, &first, 3).unwrap();
        check_identity(&mut seen, &first, 3).unwrap();
        let other: Job = serde_json::from_value(
            json!({"id": 3, "method": "service.control", "state": "RUNNING", "time_started": {"$date": 5_000}}),
        )
        .unwrap();
        let err = check_identity(&mut seen, &other, 3).unwrap_err();
        assert!(err.to_string().contains("restarted"), "{err}");
    }
}
