//! The simulated TrueNAS box as data: what a scenario file holds.
//!
//! Owns: [`Scenario`] and its parts (system identity, pools, datasets with user
//! properties, snapshots, cloud credentials, cloud sync tasks, periodic snapshot tasks,
//! SNMP config, snmpd's own v3 users, services, init/shutdown scripts, alerts, API keys,
//! script files, faults),
//! the presets ([`Scenario::two_pools`]), loading a scenario from JSON (with normalisation:
//! pool root datasets, API key hashing) and saving it back with secrets redacted.
//! Does not: validate middleware calls (`validate.rs`) or run jobs (`core.rs`).
//! Invariants: stored task objects are always complete (defaults filled), so rendering
//! them needs no further defaults; a saved scenario never contains a secret (credential
//! secrets, encryption password/salt, SNMP secrets become [`REDACTED`], API keys are
//! stored as SHA-256 only); ids are unique per table.
//! Limitations: live jobs are not saved (a middlewared restart forgets them too; a
//! task's last run survives as `last_run`, the persisted copy). Directories inside
//! datasets are not modelled: any path under an existing dataset mountpoint exists.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use super::faults::FaultPlan;
use truenas_agent::middleware::ApiFlavor;

/// What a redacted secret reads as in a saved scenario.
pub const REDACTED: &str = "(redacted by the simulator)";

/// A simulated box.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    /// Which TrueNAS release family it pretends to be.
    pub flavor: ApiFlavor,
    #[serde(default)]
    pub system: SystemIdentity,
    #[serde(default)]
    pub pools: Vec<Pool>,
    /// Datasets (pool root datasets are added on load when missing).
    #[serde(default)]
    pub datasets: Vec<Dataset>,
    #[serde(default)]
    pub snapshots: Vec<Snapshot>,
    #[serde(default)]
    pub credentials: Vec<Credential>,
    /// The simulated B2 side (key validity, visible buckets), by key id.
    #[serde(default)]
    pub b2_accounts: Vec<B2Account>,
    #[serde(default)]
    pub cloud_sync_tasks: Vec<CloudSyncTask>,
    #[serde(default)]
    pub snapshot_tasks: Vec<SnapshotTask>,
    #[serde(default)]
    pub snmp: SnmpConfig,
    /// What snmpd itself holds (not visible through the API).
    #[serde(default)]
    pub snmpd: Snmpd,
    #[serde(default = "default_services")]
    pub services: Vec<Service>,
    #[serde(default)]
    pub init_scripts: Vec<InitScript>,
    #[serde(default)]
    pub alerts: Vec<Alert>,
    /// API keys TCP clients may log in with.
    #[serde(default)]
    pub api_keys: Vec<ApiKeyEntry>,
    /// Regular files the box has (for `initshutdownscript` `SCRIPT` entries).
    #[serde(default)]
    pub files: Vec<FileEntry>,
    /// Faults to inject from the start.
    #[serde(default)]
    pub faults: FaultPlan,
}

/// `system.*` identity.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SystemIdentity {
    pub hostname: String,
    /// `system.version_short`; `None` = the flavour's default release.
    pub version: Option<String>,
    /// `system.host_id` (64 hex).
    pub host_id: String,
    pub physmem: u64,
    pub model: String,
    pub cores: u32,
    pub timezone: String,
    pub system_serial: Option<String>,
    pub system_product: Option<String>,
    /// Milliseconds since the epoch.
    pub boottime_ms: i64,
    /// A vendor-customised build (`system.vendor.is_vendored`): from 26.0.0-BETA.3 on only
    /// these open the loopback TCP listener `127.0.0.1:6000` (`MW/main.py`, ef45f3bd5d).
    pub vendored: bool,
}

impl Default for SystemIdentity {
    fn default() -> Self {
        Self {
            hostname: "truenas".to_owned(),
            version: None,
            host_id: "5d8e1f0c7a9b4e6f8a1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e6f7a8b9c0d1e2f3a".to_owned(),
            physmem: 34_359_738_368,
            model: "Intel(R) Xeon(R) CPU E-2224 @ 3.40GHz".to_owned(),
            cores: 4,
            timezone: "America/New_York".to_owned(),
            system_serial: Some("A1-SIM-0001".to_owned()),
            system_product: Some("TRUENAS-SIM".to_owned()),
            boottime_ms: 1_763_000_000_000,
            vendored: false,
        }
    }
}

impl SystemIdentity {
    /// `system.version_short` for a flavour. The defaults are the newest release of each
    /// family (26.0: the newest tag, `TS-26.0.0-BETA.3`; 27.0: a `master` nightly, whose
    /// manifest version carries `MASTER`, `MW/utils/__init__.py` `sw_info`).
    pub fn version_short(&self, flavor: ApiFlavor) -> String {
        self.version.clone().unwrap_or_else(|| {
            match flavor {
                ApiFlavor::V24_10 => "24.10.2.4",
                ApiFlavor::V25_04 => "25.04.2.6",
                ApiFlavor::V25_10 => "25.10.6",
                ApiFlavor::V26_0 => "26.0.0-BETA.3",
                ApiFlavor::V27_0 => "27.0.0-MASTER-20260822-095245",
            }
            .to_owned()
        })
    }

    /// `system.version` (the full name).
    pub fn version_full(&self, flavor: ApiFlavor) -> String {
        match flavor {
            ApiFlavor::V24_10 => format!("TrueNAS-SCALE-{}", self.version_short(flavor)),
            ApiFlavor::V25_04 | ApiFlavor::V25_10 | ApiFlavor::V26_0 | ApiFlavor::V27_0 => {
                format!("TrueNAS-{}", self.version_short(flavor))
            }
        }
    }
}

/// A ZFS pool (`pool.query` entry).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Pool {
    pub id: u64,
    pub name: String,
    #[serde(default = "default_guid")]
    pub guid: String,
    /// `ONLINE`, `DEGRADED`, `FAULTED`, `OFFLINE`, `UNAVAIL`, `REMOVED`, `SUSPENDED`.
    #[serde(default = "online")]
    pub status: String,
    #[serde(default = "yes")]
    pub healthy: bool,
    /// The boot pool: hidden from `pool.query` as on the real box.
    #[serde(default)]
    pub boot: bool,
}

/// A dataset (`pool.dataset.query` entry).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Dataset {
    /// `pool/child/...`; the pool's root dataset is the pool name.
    pub name: String,
    /// `FILESYSTEM` or `VOLUME`.
    #[serde(default = "filesystem", rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub encrypted: bool,
    /// Encrypted and its key is not loaded.
    #[serde(default)]
    pub locked: bool,
    /// ZFS user properties (`name` contains `:`).
    #[serde(default)]
    pub user_properties: BTreeMap<String, String>,
    /// Other ZFS properties set through `pool.dataset.create/update` (upper-case values).
    #[serde(default)]
    pub properties: BTreeMap<String, Value>,
}

impl Dataset {
    /// A plain, unencrypted filesystem dataset.
    pub fn filesystem(name: &str) -> Self {
        Self {
            name: name.to_owned(),
            kind: filesystem(),
            encrypted: false,
            locked: false,
            user_properties: BTreeMap::new(),
            properties: BTreeMap::new(),
        }
    }

    /// The pool the dataset is on.
    pub fn pool(&self) -> &str {
        self.name.split('/').next().unwrap_or(&self.name)
    }

    /// `/mnt/<name>`.
    pub fn mountpoint(&self) -> String {
        format!("/mnt/{}", self.name)
    }
}

/// A ZFS snapshot.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Snapshot {
    pub dataset: String,
    /// The part after `@`.
    pub name: String,
    #[serde(default)]
    pub createtxg: u64,
    /// Periodic snapshot task that took it (for `retention`).
    #[serde(default)]
    pub task_id: Option<u64>,
    /// Creation time, ms since the epoch.
    #[serde(default)]
    pub created_ms: i64,
}

/// A cloud credential (`cloudsync.credentials` entry), stored the 24.10 way
/// (`provider` string + `attributes`) and rendered per version.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Credential {
    pub id: u64,
    pub name: String,
    /// Provider type, e.g. `B2`.
    pub provider: String,
    /// Provider attributes, e.g. `{account, key}` for B2 (secrets included).
    pub attributes: Map<String, Value>,
}

/// The simulated Backblaze side of one application key, by key id (`account`): what
/// `cloudsync.credentials.verify`, `cloudsync.list_buckets` and sync runs see.
/// A key id not listed is valid and sees every bucket (and lists none).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct B2Account {
    /// The application key id (the credential's `account`).
    pub account: String,
    /// Whether the key authenticates.
    #[serde(default = "yes")]
    pub valid: bool,
    /// Buckets the key can see (`list_buckets`); a run into any other bucket fails.
    /// `None`: every bucket exists (and none is listed).
    #[serde(default)]
    pub buckets: Option<Vec<String>>,
}

/// Provider attribute names that hold secrets (redacted on save).
pub const SECRET_ATTRIBUTES: &[&str] = &[
    "key",
    "secret_access_key",
    "pass",
    "token",
    "client_secret",
    "service_account_credentials",
    "application_credential_secret",
    "auth_token",
];

/// A cron schedule of a cloud sync task.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Cron {
    #[serde(default = "minute_00")]
    pub minute: String,
    #[serde(default = "star")]
    pub hour: String,
    #[serde(default = "star")]
    pub dom: String,
    #[serde(default = "star")]
    pub month: String,
    #[serde(default = "star")]
    pub dow: String,
}

impl Default for Cron {
    fn default() -> Self {
        Self {
            minute: minute_00(),
            hour: star(),
            dom: star(),
            month: star(),
            dow: star(),
        }
    }
}

/// One `bwlimit` entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BwLimit {
    pub time: String,
    /// Bytes per second; `None` = unlimited from `time` on.
    pub bandwidth: Option<u64>,
}

/// A cloud sync task as stored (defaults filled).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CloudSyncTask {
    #[serde(default)]
    pub id: u64,
    #[serde(default)]
    pub description: String,
    pub path: String,
    /// Credential id.
    pub credentials: u64,
    /// Provider task attributes, with provider defaults filled (B2: `chunk_size`, `fast_list`).
    pub attributes: Map<String, Value>,
    #[serde(default)]
    pub schedule: Cron,
    #[serde(default)]
    pub pre_script: String,
    #[serde(default)]
    pub post_script: String,
    #[serde(default)]
    pub snapshot: bool,
    #[serde(default)]
    pub include: Vec<String>,
    #[serde(default)]
    pub exclude: Vec<String>,
    #[serde(default)]
    pub args: String,
    #[serde(default = "yes")]
    pub enabled: bool,
    #[serde(default)]
    pub bwlimit: Vec<BwLimit>,
    #[serde(default)]
    pub transfers: Option<u64>,
    pub direction: String,
    pub transfer_mode: String,
    #[serde(default)]
    pub encryption: bool,
    #[serde(default)]
    pub filename_encryption: bool,
    #[serde(default)]
    pub encryption_password: String,
    #[serde(default)]
    pub encryption_salt: String,
    #[serde(default)]
    pub create_empty_src_dirs: bool,
    #[serde(default)]
    pub follow_symlinks: bool,
    /// The persisted copy of the last finished run (`id`/`logs_path` null), shown as `job`
    /// when no live job exists (REFERENCE §4.3).
    #[serde(default)]
    pub last_run: Option<Value>,
}

/// A periodic snapshot task schedule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SnapshotCron {
    #[serde(default = "minute_00")]
    pub minute: String,
    #[serde(default = "star")]
    pub hour: String,
    #[serde(default = "star")]
    pub dom: String,
    #[serde(default = "star")]
    pub month: String,
    #[serde(default = "star")]
    pub dow: String,
    #[serde(default = "begin")]
    pub begin: String,
    #[serde(default = "end")]
    pub end: String,
}

impl Default for SnapshotCron {
    fn default() -> Self {
        Self {
            minute: minute_00(),
            hour: star(),
            dom: star(),
            month: star(),
            dow: star(),
            begin: begin(),
            end: end(),
        }
    }
}

/// A periodic snapshot task as stored (defaults filled).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SnapshotTask {
    #[serde(default)]
    pub id: u64,
    pub dataset: String,
    #[serde(default)]
    pub recursive: bool,
    #[serde(default)]
    pub exclude: Vec<String>,
    #[serde(default = "two")]
    pub lifetime_value: i64,
    #[serde(default = "week")]
    pub lifetime_unit: String,
    #[serde(default = "default_naming_schema")]
    pub naming_schema: String,
    #[serde(default)]
    pub schedule: SnapshotCron,
    #[serde(default = "yes")]
    pub allow_empty: bool,
    #[serde(default = "yes")]
    pub enabled: bool,
    /// zettarepl state; `None` = `PENDING` (never ran in this middleware lifetime).
    #[serde(default)]
    pub state: Option<TaskState>,
}

/// A periodic snapshot task's zettarepl state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TaskState {
    /// `RUNNING`, `FINISHED`, `ERROR` or `HOLD`.
    pub state: String,
    /// ms since the epoch.
    pub datetime_ms: i64,
    #[serde(default)]
    pub error: Option<String>,
    #[serde(default)]
    pub reason: Option<String>,
    /// `dataset@name` of the last snapshot taken (shown on 25.10 only).
    #[serde(default)]
    pub last_snapshot: Option<String>,
}

/// `snmp.config` (the 25.04 shape; 24.10 is the same).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SnmpConfig {
    pub location: String,
    pub contact: String,
    pub traps: bool,
    pub v3: bool,
    pub community: String,
    pub v3_username: String,
    pub v3_authtype: String,
    pub v3_password: String,
    pub v3_privproto: Option<String>,
    pub v3_privpassphrase: Option<String>,
    pub loglevel: i64,
    pub options: String,
    pub zilstat: bool,
}

impl Default for SnmpConfig {
    // A fresh install: v2c with community "public", v3 off (what the SOP must change).
    fn default() -> Self {
        Self {
            location: String::new(),
            contact: String::new(),
            traps: false,
            v3: false,
            community: "public".to_owned(),
            v3_username: String::new(),
            v3_authtype: "SHA".to_owned(),
            v3_password: String::new(),
            v3_privproto: None,
            v3_privpassphrase: None,
            loglevel: 3,
            options: String::new(),
            zilstat: false,
        }
    }
}

/// snmpd's own state, which the API does not show: the SNMPv3 users it created, and the
/// `createUser` line the middleware wrote for its next start (`/var/lib/snmp/snmpd.conf`,
/// `plugins/snmp_/utils_snmp_user.py`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Snmpd {
    /// v3 users snmpd created with the configured secrets (an NMS can log in as them).
    pub users: Vec<String>,
    /// The `createUser` line waiting for snmpd's next start (no secret kept).
    pub pending: Option<PendingSnmpUser>,
}

/// A `createUser` line in snmpd's private config.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PendingSnmpUser {
    pub username: String,
    /// False when snmpd cannot use the line: a `"`, `\`, line break or other control
    /// character in a secret, or whitespace/quote/backslash in the user name (the
    /// middleware writes them unescaped), so snmpd never creates the user as configured.
    pub usable: bool,
}

/// A system service (`service.query` entry).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Service {
    pub id: u64,
    pub service: String,
    /// Start at boot.
    pub enable: bool,
    /// `RUNNING`, `STOPPED` or `UNKNOWN`.
    pub state: String,
}

/// An init/shutdown script entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InitScript {
    #[serde(default)]
    pub id: u64,
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default = "empty_some")]
    pub command: Option<String>,
    #[serde(default = "empty_some")]
    pub script: Option<String>,
    pub when: String,
    #[serde(default = "yes")]
    pub enabled: bool,
    #[serde(default = "ten")]
    pub timeout: i64,
    #[serde(default)]
    pub comment: String,
}

/// An alert (`alert.list` entry).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Alert {
    pub uuid: String,
    /// Alert class, e.g. `CloudSyncTaskFailed`.
    pub klass: String,
    #[serde(default)]
    pub args: Value,
    #[serde(default)]
    pub key: String,
    /// `INFO`, `NOTICE`, `WARNING`, `ERROR`, `CRITICAL`, `ALERT`, `EMERGENCY`.
    pub level: String,
    pub text: String,
    #[serde(default)]
    pub datetime_ms: i64,
    #[serde(default)]
    pub dismissed: bool,
}

/// An API key TCP clients may log in with. Scenario files may give the plain `key`
/// (`<id>-<secret>`); it is hashed on load and only the hash is ever saved.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiKeyEntry {
    pub id: u64,
    pub name: String,
    /// Owner (25.04+ keys are user-linked).
    #[serde(default = "root")]
    pub username: String,
    /// Plain key, input only.
    #[serde(default, skip_serializing)]
    pub key: Option<String>,
    /// SHA-256 (hex) of the full `<id>-<secret>` key.
    #[serde(default)]
    pub key_sha256: String,
    /// Revoked (e.g. used over an insecure transport).
    #[serde(default)]
    pub revoked: bool,
}

impl ApiKeyEntry {
    /// A key entry from its plain value (`<id>-<secret>`).
    pub fn new(id: u64, name: &str, username: &str, plain: &str) -> Self {
        Self {
            id,
            name: name.to_owned(),
            username: username.to_owned(),
            key: None,
            key_sha256: hash_key(plain),
            revoked: false,
        }
    }

    /// Whether `plain` is this key.
    pub fn matches(&self, plain: &str) -> bool {
        hash_key(plain) == self.key_sha256
    }
}

/// SHA-256 hex of a plain API key.
pub fn hash_key(plain: &str) -> String {
    hex::encode(Sha256::digest(plain.as_bytes()))
}

/// A file on the simulated box.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileEntry {
    pub path: String,
    /// Owner-execute bit set.
    #[serde(default = "yes")]
    pub executable: bool,
}

/// Why a scenario file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ScenarioError {
    #[error("cannot read scenario file")]
    Read(#[source] truenas_agent::fs::FsError),
    #[error("scenario file {path} is not a valid scenario")]
    Parse {
        path: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("scenario is inconsistent: {0}")]
    Invalid(String),
    #[error("cannot write scenario file")]
    Write(#[source] truenas_agent::fs::FsError),
}

impl ScenarioError {
    /// Who has to act.
    pub fn fault(&self) -> truenas_agent::fault::Fault {
        match self {
            ScenarioError::Read(_)
            | ScenarioError::Parse { .. }
            | ScenarioError::Invalid(_)
            | ScenarioError::Write(_) => truenas_agent::fault::Fault::Operator,
        }
    }
}

impl Scenario {
    /// An empty box of this flavour (no pools).
    pub fn empty(flavor: ApiFlavor) -> Self {
        Self {
            flavor,
            system: SystemIdentity::default(),
            pools: Vec::new(),
            datasets: Vec::new(),
            snapshots: Vec::new(),
            credentials: Vec::new(),
            b2_accounts: Vec::new(),
            cloud_sync_tasks: Vec::new(),
            snapshot_tasks: Vec::new(),
            snmp: SnmpConfig::default(),
            snmpd: Snmpd::default(),
            services: default_services(),
            init_scripts: Vec::new(),
            alerts: Vec::new(),
            api_keys: Vec::new(),
            files: Vec::new(),
            faults: FaultPlan::default(),
        }
    }

    /// The standard test box: `pool0` and `pool1` ONLINE (plus the hidden `boot-pool`),
    /// hostname `truenas-sim`, SNMP v2c "public" and the SNMP service STOPPED.
    pub fn two_pools(flavor: ApiFlavor) -> Self {
        let mut s = Self::empty(flavor);
        "truenas-sim".clone_into(&mut s.system.hostname);
        s.pools = vec![
            pool(1, "pool0", "11053582731939540419"),
            pool(2, "pool1", "4722170512405512883"),
            Pool {
                boot: true,
                ..pool(3, "boot-pool", "9007199254740993")
            },
        ];
        s.normalize();
        s
    }

    /// Reads a scenario from a JSON file and normalises it.
    pub fn load(path: &Path) -> Result<Self, ScenarioError> {
        let text = truenas_agent::fs::read_to_string(path).map_err(ScenarioError::Read)?;
        let mut scenario: Scenario =
            serde_json::from_str(&text).map_err(|source| ScenarioError::Parse {
                path: path.display().to_string(),
                source,
            })?;
        scenario.normalize();
        scenario.check_consistency()?;
        Ok(scenario)
    }

    /// Writes the scenario to a JSON file (mode 0600), secrets redacted.
    pub fn save(&self, path: &Path) -> Result<(), ScenarioError> {
        let text = serde_json::to_vec_pretty(&self.redacted())
            .map_err(|e| ScenarioError::Invalid(format!("cannot serialise: {e}")))?;
        truenas_agent::fs::write_atomic(path, &text, 0o600).map_err(ScenarioError::Write)
    }

    /// A copy with every secret replaced by [`REDACTED`].
    #[must_use]
    pub fn redacted(&self) -> Self {
        let mut s = self.clone();
        for c in &mut s.credentials {
            for (k, v) in &mut c.attributes {
                if SECRET_ATTRIBUTES.contains(&k.as_str()) {
                    *v = Value::from(REDACTED);
                }
            }
        }
        for t in &mut s.cloud_sync_tasks {
            for secret in [&mut t.encryption_password, &mut t.encryption_salt] {
                if !secret.is_empty() {
                    REDACTED.clone_into(secret);
                }
            }
        }
        if !s.snmp.v3_password.is_empty() {
            REDACTED.clone_into(&mut s.snmp.v3_password);
        }
        if s.snmp.v3_privpassphrase.is_some() {
            s.snmp.v3_privpassphrase = Some(REDACTED.to_owned());
        }
        for k in &mut s.api_keys {
            k.key = None;
        }
        s
    }

    /// Fills what a scenario file may leave out: root datasets of pools, API key hashes,
    /// and snmpd's user for a v3 config that names one (a box set up before).
    pub fn normalize(&mut self) {
        let snmp = &self.snmp;
        if snmp.v3
            && !snmp.v3_username.is_empty()
            && self.snmpd == Snmpd::default()
            && crate::methods::services::create_user_usable(snmp)
        {
            self.snmpd.users.push(snmp.v3_username.clone());
        }
        for p in self.pools.iter().filter(|p| !p.boot) {
            if !self.datasets.iter().any(|d| d.name == p.name) {
                self.datasets.push(Dataset::filesystem(&p.name));
            }
        }
        for k in &mut self.api_keys {
            if let Some(plain) = k.key.take() {
                k.key_sha256 = hash_key(&plain);
            }
        }
    }

    fn check_consistency(&self) -> Result<(), ScenarioError> {
        let dup = |what: &str, ids: Vec<u64>| {
            let mut sorted = ids.clone();
            sorted.sort_unstable();
            sorted.dedup();
            if sorted.len() == ids.len() {
                Ok(())
            } else {
                Err(ScenarioError::Invalid(format!("duplicate {what} id")))
            }
        };
        dup("pool", self.pools.iter().map(|p| p.id).collect())?;
        dup(
            "credential",
            self.credentials.iter().map(|c| c.id).collect(),
        )?;
        dup(
            "cloud sync task",
            self.cloud_sync_tasks.iter().map(|t| t.id).collect(),
        )?;
        dup(
            "snapshot task",
            self.snapshot_tasks.iter().map(|t| t.id).collect(),
        )?;
        dup(
            "init script",
            self.init_scripts.iter().map(|t| t.id).collect(),
        )?;
        dup("service", self.services.iter().map(|t| t.id).collect())?;
        dup("api key", self.api_keys.iter().map(|t| t.id).collect())?;
        for d in &self.datasets {
            if !self.pools.iter().any(|p| p.name == d.pool()) {
                return Err(ScenarioError::Invalid(format!(
                    "dataset `{}` is on no listed pool",
                    d.name
                )));
            }
        }
        Ok(())
    }

    /// The pool of this name (boot pool included).
    pub fn pool(&self, name: &str) -> Option<&Pool> {
        self.pools.iter().find(|p| p.name == name)
    }

    /// The dataset of this name.
    pub fn dataset(&self, name: &str) -> Option<&Dataset> {
        self.datasets.iter().find(|d| d.name == name)
    }

    /// The credential with this id.
    pub fn credential(&self, id: u64) -> Option<&Credential> {
        self.credentials.iter().find(|c| c.id == id)
    }

    /// The simulated B2 side of key id `account`, if listed.
    pub fn b2_account(&self, account: &str) -> Option<&B2Account> {
        self.b2_accounts.iter().find(|a| a.account == account)
    }

    /// The service called `name`.
    pub fn service(&self, name: &str) -> Option<&Service> {
        self.services.iter().find(|s| s.service == name)
    }
}

fn pool(id: u64, name: &str, guid: &str) -> Pool {
    Pool {
        id,
        name: name.to_owned(),
        guid: guid.to_owned(),
        status: online(),
        healthy: true,
        boot: false,
    }
}

fn default_services() -> Vec<Service> {
    ["cifs", "nfs", "snmp", "ssh", "ups"]
        .iter()
        .zip(1..)
        .map(|(name, id)| Service {
            id,
            service: (*name).to_owned(),
            enable: false,
            state: "STOPPED".to_owned(),
        })
        .collect()
}

fn default_guid() -> String {
    "0".to_owned()
}
fn online() -> String {
    "ONLINE".to_owned()
}
fn yes() -> bool {
    true
}
fn filesystem() -> String {
    "FILESYSTEM".to_owned()
}
fn minute_00() -> String {
    "00".to_owned()
}
fn star() -> String {
    "*".to_owned()
}
fn begin() -> String {
    "00:00".to_owned()
}
fn end() -> String {
    "23:59".to_owned()
}
fn two() -> i64 {
    2
}
fn ten() -> i64 {
    10
}
fn week() -> String {
    "WEEK".to_owned()
}
fn root() -> String {
    "root".to_owned()
}
#[expect(
    clippy::unnecessary_wraps,
    reason = "serde default for an Option field"
)]
fn empty_some() -> Option<String> {
    Some(String::new())
}
/// The default periodic snapshot naming schema.
pub fn default_naming_schema() -> String {
    "auto-%Y-%m-%d_%H-%M".to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_pools_has_root_datasets_and_hidden_boot_pool() {
        let s = Scenario::two_pools(ApiFlavor::V25_04);
        assert!(s.dataset("pool0").is_some());
        assert!(s.dataset("pool1").is_some());
        assert!(s.dataset("boot-pool").is_none());
        assert!(s.pool("boot-pool").unwrap().boot);
        assert_eq!(s.snmp.community, "public");
        assert_eq!(s.service("snmp").unwrap().state, "STOPPED");
    }

    #[test]
    fn save_and_load_round_trip_without_secrets() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.json");
        let mut s = Scenario::two_pools(ApiFlavor::V24_10);
        s.credentials.push(Credential {
            id: 1,
            name: "c".into(),
            provider: "B2".into(),
            attributes: serde_json::from_value(
                serde_json::json!({"account": "id", "key": "CANARY-B2-APPKEY-7f3a9c"}),
            )
            .unwrap(),
        });
        s.api_keys
            .push(ApiKeyEntry::new(1, "k", "root", "1-CANARY-API-KEY-0a7d62"));
        s.save(&path).unwrap();
        let text = std::fs::read(&path).unwrap();
        let text = String::from_utf8(text).unwrap();
        assert!(!text.contains("CANARY"), "{text}");
        let back = Scenario::load(&path).unwrap();
        assert_eq!(back, s.redacted());
        assert!(back.api_keys[0].matches("1-CANARY-API-KEY-0a7d62"));
    }

    #[test]
    fn plain_api_keys_are_hashed_on_load() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.json");
        truenas_agent::fs::write_atomic(
            &path,
            br#"{"flavor":"25.10","pools":[{"id":1,"name":"tank"}],
                "api_keys":[{"id":3,"name":"a","key":"3-abc"}]}"#,
            0o600,
        )
        .unwrap();
        let s = Scenario::load(&path).unwrap();
        assert!(s.api_keys[0].key.is_none());
        assert!(s.api_keys[0].matches("3-abc"));
        assert!(s.dataset("tank").is_some());
    }

    #[test]
    fn inconsistent_scenarios_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.json");
        truenas_agent::fs::write_atomic(
            &path,
            br#"{"flavor":"25.04","datasets":[{"name":"nopool/x"}]}"#,
            0o600,
        )
        .unwrap();
        assert!(matches!(
            Scenario::load(&path),
            Err(ScenarioError::Invalid(_))
        ));
        truenas_agent::fs::write_atomic(&path, br#"{"flavor":"25.04","bogus":1}"#, 0o600).unwrap();
        assert!(matches!(
            Scenario::load(&path),
            Err(ScenarioError::Parse { .. })
        ));
    }
}
