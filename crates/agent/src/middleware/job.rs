//! Middleware jobs as the agent sees them (REFERENCE §3.2).
//!
//! Owns: the [`Job`] shape decoded from `core.get_jobs` items, job events and a cloud
//! sync task's `job` field.
//! Does not: wait for jobs (the client does) or judge their health (`health` does).
//! Invariants: decoding tolerates unknown fields and both the live and the persisted
//! copy (whose `id` and `logs_path` are null). Of `arguments` only two facts are kept
//! ([`JobArgs`]: the integer first argument — a Cloud Sync run's task id — and whether
//! the second asks for a dry run); the rest, and `result`, may carry
//! redacted-but-sensitive data and the agent has no use for them.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Value, json};

/// A job's id, unique per middlewared process lifetime.
pub type JobId = u64;

/// Job state (`WAITING → RUNNING → SUCCESS|FAILED|ABORTED`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum JobState {
    Waiting,
    Running,
    Success,
    Failed,
    Aborted,
    /// A state this agent version does not know.
    #[serde(other)]
    Unknown,
}

impl JobState {
    /// True for SUCCESS, FAILED and ABORTED.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            JobState::Success | JobState::Failed | JobState::Aborted
        )
    }
}

/// Progress of a job.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct JobProgress {
    #[serde(default)]
    pub percent: Option<f64>,
    #[serde(default)]
    pub description: Option<String>,
}

/// What the agent reads from a job's `arguments` (the params as the caller sent them,
/// `MW/job.py` `Job.__encode__`): nothing else is kept.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct JobArgs {
    /// `arguments[0]` as a non-negative integer (also from a string of digits, as
    /// `MW/utils/service/task_state.py` reads it with `int()`): for `cloudsync.sync`,
    /// the task the run belongs to.
    pub first_id: Option<u64>,
    /// `arguments[1].dry_run` is `true`: a `cloudsync.sync` dry run (UI "Dry Run"),
    /// which uploads nothing.
    pub dry_run: bool,
}

impl JobArgs {
    /// Reads the two facts from an `arguments` value (anything else: none of them).
    pub fn from_arguments(arguments: &Value) -> Self {
        let first_id = match arguments.get(0) {
            Some(Value::Number(n)) => n.as_u64(),
            Some(Value::String(s)) => s.trim().parse().ok(),
            _ => None,
        };
        let dry_run = arguments
            .get(1)
            .and_then(|o| o.get("dry_run"))
            .and_then(Value::as_bool)
            .unwrap_or(false);
        Self { first_id, dry_run }
    }
}

impl Serialize for JobArgs {
    /// As an `arguments` array that reads back to the same facts.
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        json!([self.first_id, {"dry_run": self.dry_run}]).serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for JobArgs {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Ok(Self::from_arguments(&Value::deserialize(deserializer)?))
    }
}

/// A middleware job (the subset the agent uses).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Job {
    /// `None` on the copy persisted in the task row after a middleware restart.
    #[serde(default)]
    pub id: Option<JobId>,
    #[serde(default)]
    pub method: Option<String>,
    /// The task id and dry-run flag from `arguments`.
    #[serde(default, rename = "arguments")]
    pub args: JobArgs,
    pub state: JobState,
    #[serde(default)]
    pub progress: JobProgress,
    /// Short error text on failure.
    #[serde(default)]
    pub error: Option<String>,
    /// Tail of the job log once finished (cloud sync keeps rclone's output here).
    #[serde(default)]
    pub logs_excerpt: Option<String>,
    /// Set when the job is queued (not when it starts running).
    #[serde(default, with = "super::ejson::opt_datetime")]
    pub time_started: Option<DateTime<Utc>>,
    #[serde(default, with = "super::ejson::opt_datetime")]
    pub time_finished: Option<DateTime<Utc>>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn decodes_live_and_persisted_jobs() {
        let live: Job = serde_json::from_value(json!({
            "id": 42, "method": "cloudsync.sync", "arguments": [1],
            "state": "RUNNING", "progress": {"percent": 12, "description": "x", "extra": null},
            "result": null, "error": null, "exception": null, "exc_info": null,
            "logs_path": "/var/log/jobs/42.log", "logs_excerpt": null,
            "time_started": {"$date": 1_700_000_000_000_i64}, "time_finished": null,
            "transient": false, "abortable": true, "description": null, "credentials": null
        }))
        .unwrap();
        assert_eq!(live.id, Some(42));
        assert_eq!(live.state, JobState::Running);
        assert_eq!(live.progress.percent, Some(12.0));
        assert!(live.time_started.is_some());

        let persisted: Job = serde_json::from_value(json!({
            "id": null, "state": "FAILED", "error": "boom", "logs_path": null,
            "time_finished": {"$date": 1_700_000_100_000_i64}
        }))
        .unwrap();
        assert_eq!(persisted.id, None);
        assert!(persisted.state.is_terminal());
    }

    #[test]
    fn arguments_keep_the_task_id_and_the_dry_run_flag_only() {
        let read = |args: Value| {
            serde_json::from_value::<Job>(json!({"state": "SUCCESS", "arguments": args}))
                .unwrap()
                .args
        };
        assert_eq!(
            read(json!([5])),
            JobArgs {
                first_id: Some(5),
                dry_run: false
            }
        );
        assert!(read(json!([5, {"dry_run": true}])).dry_run);
        assert!(!read(json!([5, {"dry_run": false}])).dry_run);
        assert_eq!(read(json!(["7", {}])).first_id, Some(7));
        assert_eq!(read(json!([{"secret": "x"}])), JobArgs::default());
        assert_eq!(read(json!(null)), JobArgs::default());
        let no_args: Job = serde_json::from_value(json!({"state": "RUNNING"})).unwrap();
        assert_eq!(no_args.args, JobArgs::default());
        // Round trip through the agent's own serialisation.
        let job: Job = serde_json::from_value(
            json!({"state": "SUCCESS", "arguments": [3, {"dry_run": true}]}),
        )
        .unwrap();
        let back: Job = serde_json::from_value(serde_json::to_value(&job).unwrap()).unwrap();
        assert_eq!(back.args, job.args);
    }

    #[test]
    fn unknown_state_is_tolerated() {
        let job: Job = serde_json::from_value(json!({"state": "PAUSED"})).unwrap();
        assert_eq!(job.state, JobState::Unknown);
    }
}
