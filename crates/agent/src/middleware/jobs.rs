//! Waiting for middleware jobs (REFERENCE §3.3).
//!
//! Owns: the per-connection [`JobTracker`] (a `core.get_jobs` subscription feeding a
//! bounded cache of the latest state of each job), and [`wait`]: catch up with one
//! `core.get_jobs [[["id","=",ID]]]` query (the job may have finished — or, for
//! `cloudsync.sync`, have been queued earlier — before we asked), then follow events,
//! polling every `job_poll_interval` in case events are lost or refused.
//! Does not: start jobs or judge their outcome (a FAILED job is returned, not an error).
//! Invariants: the subscription exists before a job-starting call is sent (the client
//! calls [`starts_job`]); the cache never holds more than its capacity; after a
//! reconnect, a job is only followed further if it is provably the same job (same
//! method and queue time) — job ids restart at 1 when middlewared restarts.
//! Limitations: a job that fell out of the middleware's memory (it keeps ~1000) is
//! reported as not found.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::Value;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tracing::debug;

use super::calls;
use super::client::{Client, Session, call_error};
use super::conn::{Subscription, SubscriptionError};
use super::rpc::Event;
use super::{CallError, Job, JobId, Method};

/// The event carrying every job change (fields = the whole job).
pub const EVENT: &str = "core.get_jobs";

/// Methods that start a job and answer with its id.
pub fn starts_job(method: Method) -> bool {
    matches!(
        method,
        Method::CloudsyncSync | Method::ServiceControl | Method::CoreJobWait
    )
}

/// The latest known state of recently seen jobs, bounded.
#[derive(Debug)]
pub struct JobCache {
    jobs: HashMap<JobId, Job>,
    /// Ids in the order first seen; the oldest finished job is evicted first.
    order: VecDeque<JobId>,
    capacity: usize,
}

impl JobCache {
    /// An empty cache holding at most `capacity` jobs (at least 1).
    pub fn new(capacity: usize) -> Self {
        Self {
            jobs: HashMap::new(),
            order: VecDeque::new(),
            capacity: capacity.max(1),
        }
    }

    /// Records a job's state (jobs without an id are ignored).
    pub fn update(&mut self, job: Job) {
        let Some(id) = job.id else { return };
        if self.jobs.insert(id, job).is_none() {
            self.order.push_back(id);
            if self.jobs.len() > self.capacity {
                self.evict_one();
            }
        }
    }

    fn evict_one(&mut self) {
        let finished = self
            .order
            .iter()
            .position(|id| self.jobs.get(id).is_some_and(|j| j.state.is_terminal()));
        // With nothing finished, the oldest running job goes: the poll still finds it.
        if let Some(id) = self.order.remove(finished.unwrap_or(0)) {
            self.jobs.remove(&id);
        }
    }

    /// The latest state of `id`, if seen.
    pub fn get(&self, id: JobId) -> Option<&Job> {
        self.jobs.get(&id)
    }

    /// Number of jobs held.
    pub fn len(&self) -> usize {
        self.jobs.len()
    }

    /// True when no job is held.
    pub fn is_empty(&self) -> bool {
        self.jobs.is_empty()
    }
}

/// Decodes a job from an event (`fields` is the whole job; the id may be outside it).
pub fn job_from_event(event: &Event) -> Option<Job> {
    let mut job: Job = serde_json::from_value(event.fields.clone()?).ok()?;
    if job.id.is_none() {
        job.id = event.id.as_ref().and_then(Value::as_u64);
    }
    Some(job)
}

/// Follows `core.get_jobs` events of one connection.
pub struct JobTracker {
    cache: Arc<Mutex<JobCache>>,
    changes: watch::Receiver<u64>,
    task: JoinHandle<()>,
}

impl JobTracker {
    /// Starts following `sub` (a `core.get_jobs` subscription).
    pub fn start(sub: Subscription, capacity: usize) -> Self {
        let cache = Arc::new(Mutex::new(JobCache::new(capacity)));
        let (tx, changes) = watch::channel(0);
        let task = tokio::spawn(follow(sub, cache.clone(), tx));
        Self {
            cache,
            changes,
            task,
        }
    }

    /// The latest state of `id` seen in events.
    pub fn latest(&self, id: JobId) -> Option<Job> {
        self.cache
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(id)
            .cloned()
    }

    /// A receiver that changes on every job event (and closes when events stop).
    pub fn changes(&self) -> watch::Receiver<u64> {
        self.changes.clone()
    }
}

impl Drop for JobTracker {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn follow(mut sub: Subscription, cache: Arc<Mutex<JobCache>>, tx: watch::Sender<u64>) {
    loop {
        match sub.next().await {
            Ok(event) => {
                if let Some(job) = job_from_event(&event) {
                    cache
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .update(job);
                }
            }
            // Missed events: waiters are woken and the next poll catches up.
            Err(SubscriptionError::Lagged { missed }) => debug!(missed, "job events missed"),
            Err(SubscriptionError::Ended { reason }) => {
                debug!(%reason, "job events ended");
                return;
            }
        }
        tx.send_modify(|n| *n = n.wrapping_add(1));
    }
}

/// What identifies a job across a reconnect (ids are reused after a middleware restart).
#[derive(Debug, Clone, PartialEq)]
struct Identity {
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

/// Waits until job `id` is SUCCESS, FAILED or ABORTED, at most `timeout`.
pub async fn wait(client: &Client, id: JobId, timeout: Duration) -> Result<Job, CallError> {
    let deadline = Instant::now() + timeout;
    let timed_out = CallError::Timeout {
        method: Method::CoreGetJobs,
        after: timeout,
    };
    let mut identity = None;
    // Reconnects while waiting are bounded: each needs a live session first.
    for _ in 0..5 {
        let session = tokio::time::timeout_at(deadline, client.session(Method::CoreGetJobs))
            .await
            .map_err(|_| timed_out.clone())??;
        match wait_on(client, &session, id, deadline, timeout, &mut identity).await {
            Err(error @ (CallError::Disconnected { .. } | CallError::Unavailable { .. }))
                if identity.is_some() =>
            {
                debug!(id, %error, "connection lost while waiting for a job; reconnecting");
            }
            other => return other,
        }
    }
    Err(CallError::Unavailable {
        method: Method::CoreGetJobs,
        detail: format!("the connection kept dropping while waiting for job {id}"),
    })
}

/// Waits on one session: query, then events until the next poll, until terminal.
async fn wait_on(
    client: &Client,
    session: &Session,
    id: JobId,
    deadline: Instant,
    timeout: Duration,
    identity: &mut Option<Identity>,
) -> Result<Job, CallError> {
    let tracker = session.jobs(client.settings(), client.call_timeout()).await;
    let mut changes = tracker.map(JobTracker::changes);
    loop {
        let job = query(client, session, id).await?;
        check_identity(identity, &job, id)?;
        if job.state.is_terminal() {
            return Ok(job);
        }
        let poll_at = deadline.min(Instant::now() + client.settings().job_poll_interval);
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
async fn query(client: &Client, session: &Session, id: JobId) -> Result<Job, CallError> {
    let call = calls::job(id);
    let method = call.method;
    let timeout = client.call_timeout();
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
    use crate::middleware::JobState;
    use crate::middleware::rpc::EventKind;

    fn job(id: JobId, state: &str) -> Job {
        serde_json::from_value(json!({"id": id, "method": "cloudsync.sync", "state": state}))
            .unwrap()
    }

    #[test]
    fn cache_is_bounded_and_evicts_finished_jobs_first() {
        let mut cache = JobCache::new(3);
        cache.update(job(1, "RUNNING"));
        cache.update(job(2, "SUCCESS"));
        cache.update(job(3, "RUNNING"));
        cache.update(job(4, "WAITING"));
        assert_eq!(cache.len(), 3);
        assert!(cache.get(2).is_none(), "the finished job goes first");
        assert!(cache.get(1).is_some());
        cache.update(job(5, "RUNNING"));
        assert_eq!(cache.len(), 3);
        assert!(cache.get(1).is_none(), "then the oldest");
        // An update of a known job does not grow the cache.
        cache.update(job(5, "SUCCESS"));
        assert_eq!(cache.len(), 3);
        assert_eq!(cache.get(5).unwrap().state, JobState::Success);
        cache.update(serde_json::from_value(json!({"state": "RUNNING"})).unwrap());
        assert_eq!(cache.len(), 3);
    }

    #[test]
    fn jobs_from_events() {
        let event = Event {
            collection: EVENT.into(),
            kind: EventKind::Changed,
            id: Some(json!(9)),
            fields: Some(json!({"state": "FAILED", "error": "boom"})),
        };
        let job = job_from_event(&event).unwrap();
        assert_eq!(job.id, Some(9));
        assert_eq!(job.state, JobState::Failed);
        let removed = Event {
            fields: None,
            ..event
        };
        assert!(job_from_event(&removed).is_none());
    }

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

    #[test]
    fn job_starting_methods() {
        assert!(starts_job(Method::CloudsyncSync));
        assert!(starts_job(Method::ServiceControl));
        assert!(!starts_job(Method::ServiceStart));
        assert!(!starts_job(Method::SnapshotTaskRun));
    }
}
