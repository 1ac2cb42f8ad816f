//! Watching the Cloud Sync jobs of the agent's tasks, so a run that starts, succeeds or
//! fails is reported without waiting for the report interval.
//!
//! Owns: the [`JobEvents`] seam (a `core.get_jobs` subscription: [`Client`] in
//! production), decoding an event into a [`JobUpdate`] (job id, method, the task id from
//! `arguments[0]`, state — nothing else is read), and [`JobWatch`], which decides whether
//! an update is a state change of a watched task.
//! Does not: debounce or send reports (the loop does), or re-subscribe by itself.
//! Invariants: `JobWatch` remembers at most [`JobWatch::CAPACITY`] jobs (oldest evicted),
//! so memory stays flat however many jobs the box runs; progress-only updates (same
//! state) are not changes; event fields are never logged (they may hold task secrets).
//! Limitations: a lagging reader misses events; a lag is treated as "something may have
//! changed" so the next report catches up.

use std::collections::{BTreeSet, VecDeque};
use std::future::Future;

use serde_json::Value;

use crate::middleware::{CallError, Client, Event, JobState, Subscription, SubscriptionError};

/// The middleware method of a Cloud Sync run.
pub const CLOUDSYNC_SYNC: &str = "cloudsync.sync";

/// What the daemon reads from a job event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobUpdate {
    pub job_id: u64,
    pub method: String,
    /// `arguments[0]` when it is an integer (the task id for `cloudsync.sync`).
    pub task_id: Option<u64>,
    pub state: JobState,
}

/// One item from a job feed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FeedItem {
    Update(JobUpdate),
    /// Events were missed: something may have changed.
    Lagged,
    /// The feed is over (connection lost): subscribe again later.
    Ended,
}

/// A live stream of job events.
pub trait JobFeed {
    /// The next item. Cancel-safe: dropping the future loses no event.
    fn next(&mut self) -> impl Future<Output = FeedItem>;
}

/// Where job events come from.
pub trait JobEvents {
    type Feed: JobFeed;
    /// Subscribes to `core.get_jobs`.
    fn subscribe(&self) -> impl Future<Output = Result<Self::Feed, CallError>>;
}

/// `core.get_jobs` events through the middleware client.
#[derive(Debug)]
pub struct ClientJobFeed(Subscription);

impl JobFeed for ClientJobFeed {
    async fn next(&mut self) -> FeedItem {
        loop {
            match self.0.next().await {
                Ok(event) => {
                    if let Some(update) = job_update(&event) {
                        return FeedItem::Update(update);
                    }
                }
                Err(SubscriptionError::Lagged { .. }) => return FeedItem::Lagged,
                Err(SubscriptionError::Ended { .. }) => return FeedItem::Ended,
            }
        }
    }
}

impl JobEvents for Client {
    type Feed = ClientJobFeed;
    async fn subscribe(&self) -> Result<ClientJobFeed, CallError> {
        Client::subscribe(self, "core.get_jobs")
            .await
            .map(ClientJobFeed)
    }
}

/// No job events (e.g. a middleware seam without subscriptions): never yields.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoJobEvents;

/// The feed of [`NoJobEvents`].
#[derive(Debug)]
pub struct NoFeed;

impl JobFeed for NoFeed {
    async fn next(&mut self) -> FeedItem {
        std::future::pending().await
    }
}

impl JobEvents for NoJobEvents {
    type Feed = NoFeed;
    async fn subscribe(&self) -> Result<NoFeed, CallError> {
        Ok(NoFeed)
    }
}

/// Decodes a `core.get_jobs` event. Pure; `None` for events without a job id or state.
pub fn job_update(event: &Event) -> Option<JobUpdate> {
    let fields = event.fields.as_ref()?;
    let job_id = fields
        .get("id")
        .and_then(Value::as_u64)
        .or_else(|| event.id.as_ref().and_then(Value::as_u64))?;
    let state: JobState = serde_json::from_value(fields.get("state")?.clone()).ok()?;
    let method = fields
        .get("method")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    let task_id = fields
        .get("arguments")
        .and_then(|a| a.get(0))
        .and_then(Value::as_u64);
    Some(JobUpdate {
        job_id,
        method,
        task_id,
        state,
    })
}

/// Which job states were last seen, to tell state changes from progress updates.
#[derive(Debug, Default)]
pub struct JobWatch {
    seen: VecDeque<(u64, JobState)>,
}

impl JobWatch {
    /// Jobs remembered at most.
    pub const CAPACITY: usize = 64;

    /// True when `update` is a Cloud Sync run of a `watched` task whose state changed
    /// (or that was not seen before).
    pub fn changed(&mut self, update: &JobUpdate, watched: &BTreeSet<u64>) -> bool {
        let ours =
            update.method == CLOUDSYNC_SYNC && update.task_id.is_some_and(|t| watched.contains(&t));
        if !ours {
            return false;
        }
        match self.seen.iter_mut().find(|(id, _)| *id == update.job_id) {
            Some((_, state)) if *state == update.state => false,
            Some((_, state)) => {
                *state = update.state;
                true
            }
            None => {
                if self.seen.len() == Self::CAPACITY {
                    self.seen.pop_front();
                }
                self.seen.push_back((update.job_id, update.state));
                true
            }
        }
    }

    /// Jobs currently remembered.
    pub fn len(&self) -> usize {
        self.seen.len()
    }

    /// True when nothing is remembered.
    pub fn is_empty(&self) -> bool {
        self.seen.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::middleware::EventKind;

    fn event(fields: Value) -> Event {
        Event {
            collection: "core.get_jobs".into(),
            kind: EventKind::Changed,
            id: Some(json!(42)),
            fields: Some(fields),
        }
    }

    fn update(job: u64, task: u64, state: JobState) -> JobUpdate {
        JobUpdate {
            job_id: job,
            method: CLOUDSYNC_SYNC.into(),
            task_id: Some(task),
            state,
        }
    }

    #[test]
    fn decodes_only_what_it_needs() {
        let u = job_update(&event(json!({
            "id": 42, "method": "cloudsync.sync", "arguments": [3, {"dry_run": false}],
            "state": "RUNNING", "progress": {"percent": 10},
            "credentials": {"attributes": {"key": "CANARY-B2-APPKEY-7f3a9c"}}
        })))
        .unwrap();
        assert_eq!(u, update(42, 3, JobState::Running));
        assert!(!format!("{u:?}").contains("CANARY"));
        // The id may sit outside the fields; no state → not a job update.
        let u = job_update(&event(json!({"method": "pool.scrub", "state": "SUCCESS"}))).unwrap();
        assert_eq!((u.job_id, u.task_id), (42, None));
        assert!(job_update(&event(json!({"id": 1}))).is_none());
        assert!(job_update(&event(json!({"id": 1, "state": 5}))).is_none());
    }

    #[test]
    fn only_state_changes_of_watched_sync_jobs_count() {
        let watched: BTreeSet<u64> = [3].into();
        let mut w = JobWatch::default();
        assert!(w.changed(&update(1, 3, JobState::Waiting), &watched));
        assert!(w.changed(&update(1, 3, JobState::Running), &watched));
        assert!(
            !w.changed(&update(1, 3, JobState::Running), &watched),
            "progress only"
        );
        assert!(w.changed(&update(1, 3, JobState::Success), &watched));
        assert!(
            !w.changed(&update(2, 9, JobState::Running), &watched),
            "not our task"
        );
        let mut other = update(3, 3, JobState::Running);
        other.method = "pool.scrub".into();
        assert!(!w.changed(&other, &watched), "not a sync");
    }

    #[test]
    fn memory_is_capped() {
        let watched: BTreeSet<u64> = [3].into();
        let mut w = JobWatch::default();
        for job in 0..1000 {
            w.changed(&update(job, 3, JobState::Running), &watched);
        }
        assert_eq!(w.len(), JobWatch::CAPACITY);
    }
}
