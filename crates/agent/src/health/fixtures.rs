//! Hand-built health values for unit tests of the modules that take a [`Health`].

use chrono::{DateTime, Utc};

use super::model::{Checklist, CloudSyncHealth, Health, Level, SnmpHealth, SyncState, TaskSource};

/// A minimal Cloud Sync health for `pool` / task `id` (no runs).
pub(crate) fn sync_health(pool: &str, id: u64) -> CloudSyncHealth {
    CloudSyncHealth {
        pool: pool.to_owned(),
        task_id: Some(id),
        task_source: Some(TaskSource::Owned),
        description: Some("x".to_owned()),
        enabled: true,
        locked: false,
        state: SyncState::NeverRun,
        last_started: None,
        last_finished: None,
        progress_percent: None,
        progress_description: None,
        last_success: None,
        last_success_source: None,
        due_since: None,
        overdue: false,
        schedule: None,
        failure: None,
        level: Level::Ok,
        message: String::new(),
        next_step: None,
    }
}

/// A health with only these Cloud Sync entries.
pub(crate) fn health_with(at: DateTime<Utc>, cloud_sync: Vec<CloudSyncHealth>) -> Health {
    Health {
        evaluated_at: at,
        pools: Vec::new(),
        cloud_sync,
        snapshots: Vec::new(),
        snmp: SnmpHealth {
            v3: true,
            community_empty: true,
            auth_type: "SHA".to_owned(),
            privacy_protocol: Some("AES".to_owned()),
            username_matches: None,
            service_state: "RUNNING".to_owned(),
            service_enabled: true,
            level: Level::Ok,
            findings: Vec::new(),
            next_step: None,
        },
        alerts: Vec::new(),
        read_errors: Vec::new(),
        shared_folders: Vec::new(),
        state_errors: Vec::new(),
        checklist: Checklist::default(),
    }
}
