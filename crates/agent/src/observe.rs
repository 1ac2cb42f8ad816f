//! Reads what the NAS has (pools, credentials, tasks, SNMP) into plain data: [`Observed`].
//!
//! Owns: the few middleware reads a reconcile pass needs (7, see [`READS`]) and the
//! normalisation of what the middleware reformats or shapes differently per version:
//! cron fields (`0` vs `00`), `HH:MM` times, B2 attribute defaults (`chunk_size` 96,
//! `fast_list` false) filled in, a task's credential given as an object or an id, the
//! 24.10 vs 25.04+ credential shapes, user properties as objects or plain strings,
//! and secrets that come back in clear (root) or as `********`.
//! Does not: write anything, judge what it reads (that is `plan`/`health`), or keep
//! handles: `Observed` is plain data.
//! Invariants: every secret read from the middleware is a `SecretString` inside a
//! [`SecretView`]; decoding is tolerant of unknown and missing fields (defaults are the
//! middleware's own) but an entry without an integer `id` is an error, never skipped.
//! Limitations: exclude/include lists keep their order here; `plan` compares them as
//! sets. A task whose `job` is a dry run is marked (`dry_run_shown`), not looked up
//! further: `health` finds its last real run. Only the root dataset of each pool is
//! read (that is where the GUID lives).

use std::collections::BTreeMap;

use secrecy::SecretString;
use serde::Serialize;
use serde_json::Value;

use crate::desired::{BwLimit, Cron, HhMm};
use crate::fault::Fault;
use crate::middleware::calls;
use crate::middleware::{ApiInfo, CallError, JobArgs, JobState, Method, Middleware, type_name};

/// The reads one observation makes, in order (for docs and the read-count test).
pub const READS: [Method; 7] = [
    Method::PoolQuery,
    Method::DatasetQuery,
    Method::CredentialsQuery,
    Method::CloudsyncQuery,
    Method::SnapshotTaskQuery,
    Method::SnmpConfig,
    Method::ServiceQuery,
];

/// Why the NAS could not be observed.
#[derive(Debug, thiserror::Error)]
pub enum ObserveError {
    /// A read failed.
    #[error("cannot read {what} from the middleware")]
    Read {
        what: &'static str,
        #[source]
        source: CallError,
    },
    /// A reply did not have the expected shape.
    #[error("cannot understand `{method}` reply: {detail}")]
    Decode { method: Method, detail: String },
}

impl ObserveError {
    /// Who has to act.
    pub fn fault(&self) -> Fault {
        match self {
            ObserveError::Read { source, .. } => source.fault(),
            ObserveError::Decode { .. } => Fault::Bug,
        }
    }

    /// True when the connection is gone.
    pub fn is_transport(&self) -> bool {
        match self {
            ObserveError::Read { source, .. } => source.is_transport(),
            ObserveError::Decode { .. } => false,
        }
    }
}

/// A secret as the middleware returned it.
#[derive(Debug, Clone)]
pub enum SecretView {
    /// Empty string or null: not set.
    Empty,
    /// The value in clear (root and `CLOUD_SYNC_WRITE` sessions see it).
    Value(SecretString),
    /// Redacted to `********` for this session.
    Redacted,
}

impl SecretView {
    fn from_value(value: Option<&Value>) -> SecretView {
        match value.and_then(Value::as_str) {
            None | Some("") => SecretView::Empty,
            Some("********") => SecretView::Redacted,
            Some(text) => SecretView::Value(SecretString::from(text)),
        }
    }

    /// How the plan shows it: never the value.
    pub fn shown(&self) -> &'static str {
        match self {
            SecretView::Empty => "(empty)",
            SecretView::Value(_) => "(set)",
            SecretView::Redacted => "(redacted)",
        }
    }
}

/// Everything a reconcile pass needs to know about the NAS.
#[derive(Debug, Clone)]
pub struct Observed {
    pub api: ApiInfo,
    pub pools: Vec<Pool>,
    pub credentials: Vec<Credential>,
    pub cloud_sync: Vec<CloudSyncTask>,
    pub snapshot_tasks: Vec<SnapshotTask>,
    pub snmp: Snmp,
    pub snmp_service: Service,
}

/// An imported pool and its root dataset's user properties.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Pool {
    pub name: String,
    pub healthy: bool,
    /// `ONLINE`, `DEGRADED`, …
    pub status: String,
    pub user_properties: BTreeMap<String, String>,
}

/// A cloud credential.
#[derive(Debug, Clone)]
pub struct Credential {
    pub id: u64,
    pub name: String,
    /// `B2`, `S3`, … (24.10 `provider` string or 25.04+ `provider.type`).
    pub provider: String,
    /// B2 `account` (the key ID).
    pub account: Option<String>,
    /// B2 `key` (the application key).
    pub key: SecretView,
}

/// B2 task attributes with the middleware's defaults filled in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct B2Attributes {
    pub bucket: String,
    pub folder: String,
    pub chunk_size: u64,
    pub fast_list: bool,
    /// Keys other than the four B2 ones that carry a value (a task of another provider).
    pub other_keys: Vec<String>,
}

/// A Cloud Sync task.
#[derive(Debug, Clone)]
pub struct CloudSyncTask {
    pub id: u64,
    pub description: String,
    pub path: String,
    /// The credential id, whether the middleware returned an object or an id.
    pub credential_id: Option<u64>,
    pub direction: String,
    pub transfer_mode: String,
    pub attributes: B2Attributes,
    pub schedule: Cron,
    pub enabled: bool,
    pub snapshot: bool,
    pub pre_script: String,
    pub post_script: String,
    pub include: Vec<String>,
    pub exclude: Vec<String>,
    pub args: String,
    pub bwlimit: Vec<BwLimit>,
    /// Entries of `bwlimit` that could not be read as `HH:MM` + bytes (kept for display).
    pub bwlimit_unreadable: bool,
    pub transfers: Option<u64>,
    pub encryption: bool,
    pub filename_encryption: bool,
    pub encryption_password: SecretView,
    pub encryption_salt: SecretView,
    pub create_empty_src_dirs: bool,
    pub follow_symlinks: bool,
    /// State of the last run the task's `job` field shows, when that is a real run;
    /// `None` when the task never ran (`job` is null) or `job` is a dry run.
    pub last_run: Option<JobState>,
    /// The task's `job` field is a dry run (UI "Dry Run": `arguments[1].dry_run`), which
    /// uploads nothing. It hides the last real run, which `Observed` does not look up.
    pub dry_run_shown: bool,
    pub locked: bool,
}

impl CloudSyncTask {
    /// True when the task has uploaded (or is uploading) data, or may have: its `job`
    /// is a real run, or a dry run that hides whatever ran before it (the middleware
    /// keeps one `job` per task, and forgets older runs when it restarts). Only a null
    /// `job` proves the task never ran; a small mistake must not re-key remote data.
    pub fn has_run(&self) -> bool {
        self.last_run.is_some() || self.dry_run_shown
    }
}

/// A periodic snapshot task.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotTask {
    pub id: u64,
    pub dataset: String,
    pub recursive: bool,
    pub exclude: Vec<String>,
    pub lifetime_value: u64,
    pub lifetime_unit: String,
    pub naming_schema: String,
    pub schedule: Cron,
    /// `None` when the middleware's value is not a time.
    pub begin: Option<HhMm>,
    pub end: Option<HhMm>,
    pub allow_empty: bool,
    pub enabled: bool,
}

/// The SNMP configuration fields the SOP manages.
#[derive(Debug, Clone)]
pub struct Snmp {
    pub v3: bool,
    pub community: String,
    pub v3_username: String,
    pub v3_authtype: String,
    pub v3_password: SecretView,
    pub v3_privproto: Option<String>,
    pub v3_privpassphrase: SecretView,
}

/// A system service's boot and run state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Service {
    pub enable: bool,
    /// `RUNNING`, `STOPPED`, `UNKNOWN` (empty when the service is not listed).
    pub state: String,
}

impl Observed {
    /// The pool named `name`, if imported.
    pub fn pool(&self, name: &str) -> Option<&Pool> {
        self.pools.iter().find(|p| p.name == name)
    }
}

/// Reads the NAS in [`READS`] order.
pub async fn observe(mw: &impl Middleware) -> Result<Observed, ObserveError> {
    let api = mw.api();
    let pools_raw = read(mw, calls::pools_query(), "pools").await?;
    let mut pools = decode_list(Method::PoolQuery, &pools_raw, decode_pool)?;
    if !pools.is_empty() {
        let names: Vec<String> = pools.iter().map(|p| p.name.clone()).collect();
        let datasets = read(mw, calls::root_datasets_query(&names), "root datasets").await?;
        attach_user_properties(&mut pools, &datasets)?;
    }
    let creds = read(mw, calls::credentials_query(), "cloud credentials").await?;
    let tasks = read(mw, calls::cloudsync_query(), "cloud sync tasks").await?;
    let snaps = read(mw, calls::snapshot_tasks_query(), "snapshot tasks").await?;
    let snmp = read(mw, calls::snmp_config(), "SNMP configuration").await?;
    let service = read(
        mw,
        calls::service_query(calls::SNMP_SERVICE),
        "SNMP service",
    )
    .await?;
    Ok(Observed {
        api,
        pools,
        credentials: decode_list(Method::CredentialsQuery, &creds, decode_credential)?,
        cloud_sync: decode_list(Method::CloudsyncQuery, &tasks, decode_cloud_sync)?,
        snapshot_tasks: decode_list(Method::SnapshotTaskQuery, &snaps, decode_snapshot_task)?,
        snmp: decode_snmp(&snmp),
        snmp_service: decode_service(&service),
    })
}

async fn read(
    mw: &impl Middleware,
    call: crate::middleware::Call,
    what: &'static str,
) -> Result<Value, ObserveError> {
    mw.call(call)
        .await
        .map_err(|source| ObserveError::Read { what, source })
}

fn decode_list<T>(
    method: Method,
    value: &Value,
    decode: fn(&Value) -> Result<T, String>,
) -> Result<Vec<T>, ObserveError> {
    let items = value.as_array().ok_or_else(|| ObserveError::Decode {
        method,
        detail: format!("expected a list, got {}", type_name(value)),
    })?;
    items
        .iter()
        .map(decode)
        .collect::<Result<_, _>>()
        .map_err(|detail| ObserveError::Decode { method, detail })
}

fn id_of(entry: &Value) -> Result<u64, String> {
    entry
        .get("id")
        .and_then(Value::as_u64)
        .ok_or_else(|| "an entry has no integer `id`".to_owned())
}

fn text(entry: &Value, key: &str) -> String {
    entry
        .get(key)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned()
}

fn flag(entry: &Value, key: &str, default: bool) -> bool {
    entry.get(key).and_then(Value::as_bool).unwrap_or(default)
}

fn strings(entry: &Value, key: &str) -> Vec<String> {
    entry
        .get(key)
        .and_then(crate::middleware::ejson::decode_set)
        .unwrap_or_default()
        .iter()
        .filter_map(|v| v.as_str().map(str::to_owned))
        .collect()
}

/// Decodes one `pool.query` entry (user properties come from the root dataset).
pub fn decode_pool(entry: &Value) -> Result<Pool, String> {
    let name = entry
        .get("name")
        .and_then(Value::as_str)
        .ok_or("a pool has no `name`")?;
    Ok(Pool {
        name: name.to_owned(),
        healthy: flag(entry, "healthy", false),
        status: text(entry, "status"),
        user_properties: BTreeMap::new(),
    })
}

/// User properties come as `{key: {value, rawvalue, …}}` (pool.dataset.query) or
/// `{key: "value"}` (25.10 zfs.resource.query shape); both are accepted.
fn attach_user_properties(pools: &mut [Pool], datasets: &Value) -> Result<(), ObserveError> {
    let items = datasets.as_array().ok_or_else(|| ObserveError::Decode {
        method: Method::DatasetQuery,
        detail: format!("expected a list, got {}", type_name(datasets)),
    })?;
    for item in items {
        let Some((id, props)) = dataset_user_properties(item) else {
            continue;
        };
        if let Some(pool) = pools.iter_mut().find(|p| p.name == id) {
            pool.user_properties.extend(props);
        }
    }
    Ok(())
}

/// A `pool.dataset.query` entry's name and user properties (`None` without an `id` or
/// a `user_properties` object).
pub fn dataset_user_properties(item: &Value) -> Option<(&str, BTreeMap<String, String>)> {
    let id = item.get("id").and_then(Value::as_str)?;
    let props = item.get("user_properties").and_then(Value::as_object)?;
    let mut out = BTreeMap::new();
    for (key, value) in props {
        let text = match value {
            Value::String(s) => Some(s.clone()),
            Value::Object(o) => o
                .get("value")
                .or_else(|| o.get("rawvalue"))
                .and_then(Value::as_str)
                .map(str::to_owned),
            _ => None,
        };
        if let Some(text) = text {
            out.insert(key.clone(), text);
        }
    }
    Some((id, out))
}

/// Decodes one `cloudsync.credentials.*` entry (also used to read back a write).
pub fn decode_credential(entry: &Value) -> Result<Credential, String> {
    let id = id_of(entry)?;
    // 24.10: provider "B2" + attributes {account, key}; 25.04+: provider {type, account, key}.
    let (provider, attrs) = match entry.get("provider") {
        Some(Value::Object(p)) => (
            p.get("type")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned(),
            entry.get("provider"),
        ),
        Some(Value::String(p)) => (p.clone(), entry.get("attributes")),
        _ => (String::new(), None),
    };
    let attrs = attrs.cloned().unwrap_or(Value::Null);
    Ok(Credential {
        id,
        name: text(entry, "name"),
        provider,
        account: attrs
            .get("account")
            .and_then(Value::as_str)
            .map(str::to_owned),
        key: SecretView::from_value(attrs.get("key")),
    })
}

fn decode_cron(value: Option<&Value>) -> Cron {
    let field = |key: &str, default: &str| {
        value
            .and_then(|v| v.get(key))
            .and_then(Value::as_str)
            .unwrap_or(default)
            .to_owned()
    };
    Cron::from_fields(
        &field("minute", "00"),
        &field("hour", "*"),
        &field("dom", "*"),
        &field("month", "*"),
        &field("dow", "*"),
    )
}

fn decode_attributes(value: Option<&Value>) -> B2Attributes {
    let get = |key: &str| value.and_then(|v| v.get(key));
    // Keys of other providers count only with a real value: a newer middleware may
    // echo its model's empty defaults (`region: ""`, `bucket_policy_only: false`).
    let other_keys = value
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .filter(|(k, _)| {
                    !["bucket", "folder", "chunk_size", "fast_list"].contains(&k.as_str())
                })
                .filter(|(_, v)| {
                    !matches!(v, Value::Null | Value::Bool(false)) && v.as_str() != Some("")
                })
                .map(|(k, _)| k.clone())
                .collect()
        })
        .unwrap_or_default();
    B2Attributes {
        bucket: get("bucket")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned(),
        folder: get("folder")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned(),
        // middleware: rclone/remote/b2.py fills chunk_size 96 and fast_list false.
        chunk_size: get("chunk_size").and_then(Value::as_u64).unwrap_or(96),
        fast_list: get("fast_list").and_then(Value::as_bool).unwrap_or(false),
        other_keys,
    }
}

fn decode_bwlimit(value: Option<&Value>) -> (Vec<BwLimit>, bool) {
    let mut out = Vec::new();
    let mut unreadable = false;
    for item in value.and_then(Value::as_array).into_iter().flatten() {
        let time = item
            .get("time")
            .and_then(Value::as_str)
            .and_then(HhMm::parse_lenient);
        let bandwidth = item.get("bandwidth");
        match (time, bandwidth) {
            (Some(time), Some(Value::Null) | None) => out.push(BwLimit {
                time,
                bandwidth: None,
            }),
            (Some(time), Some(b)) if b.as_u64().is_some() => out.push(BwLimit {
                time,
                bandwidth: b.as_u64(),
            }),
            _ => unreadable = true,
        }
    }
    (out, unreadable)
}

fn credential_id(value: Option<&Value>) -> Option<u64> {
    match value {
        Some(Value::Number(n)) => n.as_u64(),
        Some(Value::Object(o)) => o.get("id").and_then(Value::as_u64),
        _ => None,
    }
}

/// Decodes one `cloudsync.*` task entry (also used to read back a write).
pub fn decode_cloud_sync(entry: &Value) -> Result<CloudSyncTask, String> {
    let (bwlimit, bwlimit_unreadable) = decode_bwlimit(entry.get("bwlimit"));
    let (last_run, dry_run_shown) = match entry.get("job") {
        None | Some(Value::Null) => (None, false),
        Some(job)
            if JobArgs::from_arguments(job.get("arguments").unwrap_or(&Value::Null)).dry_run =>
        {
            (None, true)
        }
        Some(job) => (
            Some(
                job.get("state")
                    .cloned()
                    .and_then(|s| serde_json::from_value(s).ok())
                    .unwrap_or(JobState::Unknown),
            ),
            false,
        ),
    };
    Ok(CloudSyncTask {
        id: id_of(entry)?,
        description: text(entry, "description"),
        path: text(entry, "path"),
        credential_id: credential_id(entry.get("credentials")),
        direction: text(entry, "direction"),
        transfer_mode: text(entry, "transfer_mode"),
        attributes: decode_attributes(entry.get("attributes")),
        schedule: decode_cron(entry.get("schedule")),
        enabled: flag(entry, "enabled", true),
        snapshot: flag(entry, "snapshot", false),
        pre_script: text(entry, "pre_script"),
        post_script: text(entry, "post_script"),
        include: strings(entry, "include"),
        exclude: strings(entry, "exclude"),
        args: text(entry, "args"),
        bwlimit,
        bwlimit_unreadable,
        transfers: entry.get("transfers").and_then(Value::as_u64),
        encryption: flag(entry, "encryption", false),
        filename_encryption: flag(entry, "filename_encryption", false),
        encryption_password: SecretView::from_value(entry.get("encryption_password")),
        encryption_salt: SecretView::from_value(entry.get("encryption_salt")),
        create_empty_src_dirs: flag(entry, "create_empty_src_dirs", false),
        follow_symlinks: flag(entry, "follow_symlinks", false),
        last_run,
        dry_run_shown,
        locked: flag(entry, "locked", false),
    })
}

/// Decodes one `pool.snapshottask.*` entry (also used to read back a write).
pub fn decode_snapshot_task(entry: &Value) -> Result<SnapshotTask, String> {
    let schedule = entry.get("schedule");
    let time = |key: &str, default: &str| {
        let raw = schedule
            .and_then(|s| s.get(key))
            .and_then(Value::as_str)
            .unwrap_or(default);
        HhMm::parse_lenient(raw)
    };
    Ok(SnapshotTask {
        id: id_of(entry)?,
        dataset: text(entry, "dataset"),
        recursive: flag(entry, "recursive", false),
        exclude: strings(entry, "exclude"),
        lifetime_value: entry
            .get("lifetime_value")
            .and_then(Value::as_u64)
            .unwrap_or(2),
        lifetime_unit: entry
            .get("lifetime_unit")
            .and_then(Value::as_str)
            .unwrap_or("WEEK")
            .to_owned(),
        naming_schema: text(entry, "naming_schema"),
        schedule: decode_cron(schedule),
        begin: time("begin", "00:00"),
        end: time("end", "23:59"),
        allow_empty: flag(entry, "allow_empty", true),
        enabled: flag(entry, "enabled", true),
    })
}

/// Decodes the `snmp.config` / `snmp.update` entry.
pub fn decode_snmp(entry: &Value) -> Snmp {
    Snmp {
        v3: flag(entry, "v3", false),
        community: text(entry, "community"),
        v3_username: text(entry, "v3_username"),
        v3_authtype: text(entry, "v3_authtype"),
        v3_password: SecretView::from_value(entry.get("v3_password")),
        v3_privproto: entry
            .get("v3_privproto")
            .and_then(Value::as_str)
            .map(str::to_owned),
        v3_privpassphrase: SecretView::from_value(entry.get("v3_privpassphrase")),
    }
}

/// Decodes a `service.query` answer (a list or one entry).
pub fn decode_service(value: &Value) -> Service {
    let entry = match value {
        Value::Array(items) => items.first().cloned().unwrap_or(Value::Null),
        other => other.clone(),
    };
    Service {
        enable: flag(&entry, "enable", false),
        state: text(&entry, "state"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::zfs::DEFAULT_GUID_PROPERTY;
    use secrecy::ExposeSecret;
    use serde_json::json;

    #[test]
    fn credentials_in_both_shapes() {
        let old = decode_credential(&json!({"id": 3, "name": "truenas-x", "provider": "B2",
            "attributes": {"account": "0051", "key": "CANARY-B2-APPKEY-7f3a9c"}}))
        .unwrap();
        let new = decode_credential(&json!({"id": 3, "name": "truenas-x",
            "provider": {"type": "B2", "account": "0051", "key": "********"}}))
        .unwrap();
        for c in [&old, &new] {
            assert_eq!((c.id, c.provider.as_str()), (3, "B2"));
            assert_eq!(c.account.as_deref(), Some("0051"));
        }
        assert!(
            matches!(&old.key, SecretView::Value(v) if v.expose_secret() == "CANARY-B2-APPKEY-7f3a9c")
        );
        assert!(matches!(new.key, SecretView::Redacted));
        assert!(!format!("{old:?}").contains("CANARY"));
    }

    #[test]
    fn cloud_sync_task_normalised() {
        let task = decode_cloud_sync(&json!({
            "id": 5, "description": "Pool0 Cloud Backup", "path": "/mnt/pool0",
            "credentials": {"id": 3, "name": "truenas-x", "provider": {"type": "B2"}},
            "attributes": {"bucket": "truenas-x", "folder": "/g/pool0", "region": "", "acknowledge_abuse": false},
            "schedule": {"minute": "00", "hour": "0", "dom": "*", "month": "*", "dow": "*"},
            "exclude": {"$set": ["/Archive/**"]},
            "bwlimit": [{"time": "8:00", "bandwidth": 2_500_000}, {"time": "18:00", "bandwidth": null}],
            "direction": "PUSH", "transfer_mode": "SYNC", "job": null
        }))
        .unwrap();
        assert_eq!(task.credential_id, Some(3));
        assert_eq!(task.attributes.chunk_size, 96);
        assert!(task.attributes.other_keys.is_empty());
        assert!(!task.attributes.fast_list);
        assert_eq!(task.schedule.to_string(), "0 0 * * *");
        assert_eq!(task.exclude, ["/Archive/**"]);
        assert_eq!(task.bwlimit[0].time.to_string(), "08:00");
        assert_eq!(task.bwlimit[1].bandwidth, None);
        assert!(!task.has_run());
        assert!(matches!(task.encryption_password, SecretView::Empty));
        let by_id =
            decode_cloud_sync(&json!({"id": 6, "credentials": 3, "job": {"state": "SUCCESS"}}))
                .unwrap();
        assert_eq!(by_id.credential_id, Some(3));
        assert_eq!(by_id.last_run, Some(JobState::Success));
        assert!(!by_id.dry_run_shown && by_id.has_run());
        assert!(decode_cloud_sync(&json!({"description": "no id"})).is_err());
    }

    #[test]
    fn a_dry_run_in_the_job_field_is_not_a_last_run_but_may_hide_one() {
        let dry = decode_cloud_sync(&json!({"id": 6, "job": {"state": "SUCCESS",
            "arguments": [6, {"dry_run": true}]}}))
        .unwrap();
        assert_eq!(dry.last_run, None, "a dry run has no state of a real run");
        assert!(dry.dry_run_shown);
        assert!(
            dry.has_run(),
            "the dry run hides whatever ran before it: the re-key guard stays armed"
        );
        let real = decode_cloud_sync(&json!({"id": 6, "job": {"state": "FAILED",
            "arguments": [6, {"dry_run": false}]}}))
        .unwrap();
        assert_eq!(real.last_run, Some(JobState::Failed));
        assert!(!real.dry_run_shown);
    }

    #[test]
    fn user_properties_in_both_shapes() {
        let mut pools = vec![
            decode_pool(&json!({"name": "pool0", "healthy": true, "status": "ONLINE"})).unwrap(),
            decode_pool(&json!({"name": "pool1"})).unwrap(),
        ];
        attach_user_properties(
            &mut pools,
            &json!([
                {"id": "pool0", "user_properties": {DEFAULT_GUID_PROPERTY: {"value": "g", "source": "LOCAL"}}},
                {"id": "pool1", "user_properties": {"x:y": "plain"}}
            ]),
        )
        .unwrap();
        assert_eq!(pools[0].user_properties[DEFAULT_GUID_PROPERTY], "g");
        assert_eq!(pools[1].user_properties["x:y"], "plain");
        assert!(pools[0].healthy && !pools[1].healthy);
    }

    #[test]
    fn snapshot_and_snmp_and_service() {
        let t = decode_snapshot_task(&json!({"id": 7, "dataset": "pool0", "recursive": true,
            "schedule": {"minute": "0", "hour": "*", "begin": "00:00", "end": "23:59"}}))
        .unwrap();
        assert_eq!(t.schedule.to_string(), "0 * * * *");
        assert_eq!(t.end.unwrap().to_string(), "23:59");
        let s = decode_snmp(
            &json!({"v3": false, "community": "public", "v3_password": "",
                                    "v3_privproto": null}),
        );
        assert!(!s.v3 && s.v3_privproto.is_none());
        assert!(matches!(s.v3_password, SecretView::Empty));
        let svc =
            decode_service(&json!([{"service": "snmp", "enable": false, "state": "STOPPED"}]));
        assert_eq!(svc.state, "STOPPED");
        assert_eq!(decode_service(&json!([])).state, "");
    }
}
