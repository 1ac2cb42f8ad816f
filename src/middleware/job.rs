//! Middleware jobs as the agent sees them (REFERENCE §3.2).
//!
//! Owns: the [`Job`] shape decoded from `core.get_jobs` items, job events and a cloud
//! sync task's `job` field.
//! Does not: wait for jobs (the client does) or judge their health (`health` does).
//! Invariants: decoding tolerates unknown fields and both the live and the persisted
//! copy (whose `id` and `logs_path` are null). `arguments` and `result` are not kept:
//! they may carry redacted-but-sensitive data and the agent has no use for them.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

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

/// A middleware job (the subset the agent uses).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Job {
    /// `None` on the copy persisted in the task row after a middleware restart.
    #[serde(default)]
    pub id: Option<JobId>,
    #[serde(default)]
    pub method: Option<String>,
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
    fn unknown_state_is_tolerated() {
        let job: Job = serde_json::from_value(json!({"state": "PAUSED"})).unwrap();
        assert_eq!(job.state, JobState::Unknown);
    }
}
