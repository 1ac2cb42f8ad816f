//! The daemon's middleware events, and watching the Cloud Sync jobs of the agent's
//! tasks, so a run that starts, succeeds or fails is reported without waiting for the
//! report interval.
//!
//! Owns: the [`NasEvents`] seam (one subscription per event name, merged into one
//! [`EventFeed`]: [`Client`] in production), decoding a job event into a [`JobUpdate`]
//! (job id, method, the task id from `arguments[0]`, state — nothing else is read), and
//! [`JobWatch`], which decides whether an update is a state change of a watched task.
//! Does not: apply events to the view of the NAS (the engine does), debounce or send
//! reports (the loop does), or re-subscribe by itself.
//! Invariants: `JobWatch` remembers at most [`JobWatch::CAPACITY`] jobs (oldest evicted),
//! so memory stays flat however many jobs the box runs; progress-only updates (same
//! state) are not changes; event fields are never logged (they may hold task secrets).
//! Limitations: a lagging reader misses events; a lag is treated as "something may have
//! changed" so the next report catches up.

use std::collections::{BTreeSet, VecDeque};
use std::future::Future;
use std::sync::Arc;

use serde_json::Value;

use crate::middleware::{CallError, Client, Event, JobState, Subscription, SubscriptionError};

/// The middleware method of a Cloud Sync run.
pub(crate) const CLOUDSYNC_SYNC: &str = "cloudsync.sync";

/// What the daemon reads from a job event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobUpdate {
    pub job_id: u64,
    pub method: String,
    /// `arguments[0]` when it is an integer (the task id for `cloudsync.sync`).
    pub task_id: Option<u64>,
    pub state: JobState,
}

/// One item from an event feed.
#[derive(Debug, Clone, PartialEq)]
pub enum FeedItem {
    Event(Arc<Event>),
    /// Events were missed: anything may have changed.
    Lagged,
    /// The feed is over (connection lost): subscribe again later — and read the NAS
    /// again, since what changed in between sent no event to us.
    Ended,
}

/// A live stream of middleware events (of several names, merged).
pub trait EventFeed {
    /// The next item. Cancel-safe: dropping the future loses no event.
    fn next(&mut self) -> impl Future<Output = FeedItem>;
}

/// Where middleware events come from.
pub trait NasEvents {
    type Feed: EventFeed;
    /// Subscribes to every name in `names` (all, or an error).
    fn subscribe(&self, names: &[&str]) -> impl Future<Output = Result<Self::Feed, CallError>>;
}

/// Events through the middleware client: one subscription per name (`core.subscribe` on
/// 25.04+, legacy `sub` on 24.10), merged.
#[derive(Debug)]
pub struct ClientFeed {
    subscriptions: Vec<Subscription>,
}

impl EventFeed for ClientFeed {
    async fn next(&mut self) -> FeedItem {
        if self.subscriptions.is_empty() {
            return FeedItem::Ended;
        }
        // Each `Subscription::next` is cancel-safe (a broadcast receive): the futures
        // that did not finish are dropped without losing their events.
        let waiting: Vec<_> = self
            .subscriptions
            .iter_mut()
            .map(|s| Box::pin(s.next()))
            .collect();
        let (item, _, _) = futures_util::future::select_all(waiting).await;
        match item {
            Ok(event) => FeedItem::Event(event),
            Err(SubscriptionError::Lagged { .. }) => FeedItem::Lagged,
            // One ended means the connection did: all of them have.
            Err(SubscriptionError::Ended { .. }) => FeedItem::Ended,
        }
    }
}

impl NasEvents for Client {
    type Feed = ClientFeed;
    async fn subscribe(&self, names: &[&str]) -> Result<ClientFeed, CallError> {
        let mut subscriptions = Vec::with_capacity(names.len());
        for name in names {
            subscriptions.push(Client::subscribe(self, name).await?);
        }
        Ok(ClientFeed { subscriptions })
    }
}

/// No events (e.g. a middleware seam without subscriptions): never yields.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoEvents;

/// The feed of [`NoEvents`].
#[derive(Debug)]
pub struct NoFeed;

impl EventFeed for NoFeed {
    async fn next(&mut self) -> FeedItem {
        std::future::pending().await
    }
}

impl NasEvents for NoEvents {
    type Feed = NoFeed;
    async fn subscribe(&self, _names: &[&str]) -> Result<NoFeed, CallError> {
        Ok(NoFeed)
    }
}

/// Decodes a `core.get_jobs` event. Pure; `None` for events without a job id or state.
pub(crate) fn job_update(event: &Event) -> Option<JobUpdate> {
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
pub(crate) struct JobWatch {
    seen: VecDeque<(u64, JobState)>,
}

impl JobWatch {
    /// Jobs remembered at most.
    pub(crate) const CAPACITY: usize = 64;

    /// True when `update` is a Cloud Sync run of a `watched` task whose state changed
    /// (or that was not seen before).
    pub(crate) fn changed(&mut self, update: &JobUpdate, watched: &BTreeSet<u64>) -> bool {
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
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.seen.len()
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
