//! The validated desired state: what the rest of the agent plans and checks against.
//!
//! Owns: [`DesiredState`] and its parts (device, B2 key, encryption, Cloud Sync, snapshot
//! and SNMP settings, actions, adopt list, removed-pools policy, mode), and [`SCHEMA_V1`].
//! Does not: parse or validate (`wire.rs`, `validate.rs`); only `validate` builds one.
//! Invariants: every secret is a `SecretString`; a `DesiredState` only exists for a
//! document with zero problems.

use chrono::{DateTime, Utc};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::derive::{self, BwLimit, Cron, HhMm, LifetimeUnit};
use super::sop;

/// The only schema identifier v1 accepts.
pub const SCHEMA_V1: &str = "truenas-agent.config/v1";

/// `enforce` converges the NAS; `report-only` plans and reports but writes nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    Enforce,
    ReportOnly,
}

impl Mode {
    /// The document spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Enforce => "enforce",
            Mode::ReportOnly => "report-only",
        }
    }
}

/// What happens to the tasks of a pool that is no longer in the document (v1 extension).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RemovedPools {
    /// Keep the tasks but set `enabled: false` (default; nothing is lost).
    Disable,
    /// Delete the agent's tasks for that pool.
    Delete,
}

/// The validated, defaulted desired state.
#[derive(Debug)]
pub struct DesiredState {
    pub revision: u64,
    pub issued_at: Option<DateTime<Utc>>,
    pub mode: Mode,
    pub device: Device,
    /// Pools that get a Cloud Sync task and a snapshot task. `None`: every imported pool
    /// except `boot-pool` (resolved against the NAS by `plan`).
    pub pools: Option<Vec<String>>,
    /// `truenas-` + location UUID without dashes (SOP 3.2); also the credential name.
    pub bucket: String,
    pub b2: B2Key,
    pub encryption: Encryption,
    pub cloud_sync: CloudSyncSettings,
    pub snapshots: SnapshotSettings,
    pub snmp: Option<SnmpSettings>,
    pub actions: Vec<Action>,
    pub adopt: Adopt,
    pub removed_pools: RemovedPools,
}

/// `device`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Device {
    /// Authoritative device GUID when present (NinjaOne wins), lower-case.
    pub guid: Option<Uuid>,
    pub org_uuid: Option<Uuid>,
    pub location_uuid: Uuid,
    pub location_name: Option<String>,
    /// The pool whose root dataset carries the device GUID.
    pub root_pool: Option<String>,
}

/// The scoped B2 application key (SOP 4.3).
#[derive(Debug)]
pub struct B2Key {
    /// Key ID (an identifier, not a secret).
    pub key_id: String,
    pub application_key: SecretString,
}

/// Cloud Sync remote-encryption secrets (SOP 4.4).
#[derive(Debug)]
pub struct Encryption {
    pub password: SecretString,
    pub salt: SecretString,
    /// Allow changing the password/salt of a task that has already uploaded data.
    pub allow_rekey: bool,
}

/// Cloud Sync settings (SOP §5.2 tables, with the document's overrides applied).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CloudSyncSettings {
    pub schedule: Cron,
    pub exclude: Vec<String>,
    pub chunk_size_mib: u32,
    pub fast_list: bool,
    /// `None`: the middleware's default.
    pub transfers: Option<u32>,
    pub filename_encryption: bool,
    pub enabled: bool,
    pub follow_symlinks: bool,
    /// The SOP's "Take Snapshot" (off: Phase 6 snapshots cover it).
    pub take_snapshot: bool,
    /// The middleware's `bwlimit` timetable in bytes per second (empty: unlimited).
    pub bwlimit: Vec<BwLimit>,
    /// The document's `cloud_sync.bandwidth` that `bwlimit` was computed from (`None`:
    /// no bandwidth plan, so the client's uplink is not known).
    pub bandwidth: Option<BandwidthPlan>,
}

/// `cloud_sync.bandwidth` as validated: the client's uplink, business hours and shares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BandwidthPlan {
    /// Upload speed in whole kilobits per second.
    pub uplink_kbps: u64,
    pub business_start: HhMm,
    pub business_end: HhMm,
    pub business_percent: u8,
    pub off_hours_percent: u8,
}

impl BandwidthPlan {
    /// The document's timetable (what `bwlimit` holds).
    pub fn timetable(&self) -> Vec<BwLimit> {
        self.with_shares(self.business_percent, self.off_hours_percent)
    }

    /// The SOP's timetable for the same uplink and hours: 20 % in business hours, 80 %
    /// off-hours (Backup & Data Protection Standards, SOP 5.2 "Bandwidth Limit").
    pub fn sop_timetable(&self) -> Vec<BwLimit> {
        self.with_shares(sop::BUSINESS_PERCENT, sop::OFF_HOURS_PERCENT)
    }

    /// True when the document's shares are the SOP's.
    pub fn follows_sop(&self) -> bool {
        self.business_percent == sop::BUSINESS_PERCENT
            && self.off_hours_percent == sop::OFF_HOURS_PERCENT
    }

    fn with_shares(&self, business: u8, off: u8) -> Vec<BwLimit> {
        derive::bandwidth_timetable(
            self.uplink_kbps,
            self.business_start,
            self.business_end,
            business,
            off,
        )
    }
}

/// Periodic snapshot task settings (SOP §6.1, with overrides applied).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotSettings {
    pub schedule: Cron,
    pub begin: HhMm,
    pub end: HhMm,
    pub lifetime_value: u32,
    pub lifetime_unit: LifetimeUnit,
    pub naming_schema: String,
    pub recursive: bool,
    /// Full dataset names (`pool0/scratch`); each pool's task gets the ones under it.
    pub exclude: Vec<String>,
    pub allow_empty: bool,
    pub enabled: bool,
}

/// SNMPv3 credentials (SOP 1.1/1.2). Enforced as v3-only, SHA/AES, community empty.
#[derive(Debug)]
pub struct SnmpSettings {
    pub username: String,
    pub auth_password: SecretString,
    pub privacy_passphrase: SecretString,
}

/// A one-shot command, executed at most once per `id`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Action {
    pub id: String,
    pub kind: ActionKind,
}

/// v1 action types.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ActionKind {
    /// Start the pool's Cloud Sync task now (SOP 7.1).
    RunCloudSync { pool: String },
}

/// Existing middleware objects the document lets the agent take over (v1 extension).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Adopt {
    pub credential: Option<u64>,
    pub cloud_sync: Vec<u64>,
    pub snapshots: Vec<u64>,
}

impl DesiredState {
    /// Every secret in the document, for redacting middleware texts before they are
    /// shown or stored.
    pub fn secrets(&self) -> Vec<&SecretString> {
        let mut all = vec![
            &self.b2.application_key,
            &self.encryption.password,
            &self.encryption.salt,
        ];
        if let Some(snmp) = &self.snmp {
            all.push(&snmp.auth_password);
            all.push(&snmp.privacy_passphrase);
        }
        all
    }

    /// Replaces any secret of this document that occurs in `text` with `[REDACTED]`.
    pub fn redact(&self, text: &str) -> String {
        let mut out = text.to_owned();
        for secret in self.secrets() {
            let value = secret.expose_secret();
            // Very short values would redact ordinary words; validation requires ≥ 1
            // char, so only skip the empty string.
            if !value.is_empty() {
                out = out.replace(value, "[REDACTED]");
            }
        }
        out
    }
}
