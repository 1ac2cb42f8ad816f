//! Following middleware jobs (REFERENCE §3.3).
//!
//! Owns: the per-connection [`JobTracker`] (a `core.get_jobs` subscription feeding a
//! bounded cache of the latest state of each job) and which job-starting methods are
//! subscribed for before they are sent ([`subscribe_before`]).
//! Does not: wait for one job (`session.rs` does, on one session; `client.rs` retries it
//! across reconnects), start jobs or judge their outcome.
//! Invariants: the subscription exists before a call that starts a job its caller always
//! waits for (the client asks [`subscribe_before`]), and before the catch-up query of
//! every wait (`session.rs`); a `cloudsync.sync` run, mostly started and left, costs no
//! subscription until someone waits for it; the cache never holds more than its capacity.
//! Limitations: a tracker ends with its connection.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, PoisonError};

use serde_json::Value;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::debug;

use super::conn::{Subscription, SubscriptionError};
use super::rpc::Event;
use super::{Job, JobId, Method};

/// The event carrying every job change (fields = the whole job).
pub const EVENT: &str = "core.get_jobs";

/// Methods that start a short job their callers always wait for (a service start, a
/// job wait): the client subscribes to job events before sending them, so the wait
/// follows the job from its first event. `cloudsync.sync` is not one: a run is
/// mostly started and left, and a wait for it subscribes then catches up with a query.
pub fn subscribe_before(method: Method) -> bool {
    matches!(method, Method::ServiceControl | Method::CoreJobWait)
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
    fn awaited_job_methods_subscribe_first() {
        assert!(subscribe_before(Method::ServiceControl));
        assert!(subscribe_before(Method::CoreJobWait));
        assert!(!subscribe_before(Method::CloudsyncSync));
        assert!(!subscribe_before(Method::ServiceStart));
        assert!(!subscribe_before(Method::SnapshotTaskRun));
    }
}
