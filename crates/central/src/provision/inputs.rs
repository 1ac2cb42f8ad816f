//! Every input of `provision`, checked before anything is read or written, all problems
//! at once, each named by its command-line flag.
//!
//! Owns: the flag rules (device name, UUIDv4s, location name, pool list, uplink,
//! business hours, the admin key file's mode/owner/format, `--b2-api`) and the mapping of
//! the agent's own document validation (`desired::parse`, run on a probe document built
//! from the flags) back to flags — so the bucket name (`truenas-<location uuid>` by B2's
//! and the SOP's rules), pool names and times are judged by exactly the rules the agent
//! applies.
//! Does not: touch B2 or the data directory.
//! Invariants: no problem text contains the admin key; a flag gets the problems of its own
//! rules first, the document's only when its own rules passed (one mistake, one line).
//! Limitations: none known.

use std::path::{Path, PathBuf};

use secrecy::{ExposeSecret as _, SecretString};
use serde::Serialize;
use serde_json::{Value, json};
use uuid::Uuid;

use super::super::b2admin::check_api_url;
use crate::db::{DEVICE_NAME_RULE, Database, is_valid_device_name};
use truenas_agent::desired::{self, HhMm, derive};

/// One input problem: the flag and the rule it breaks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    pub field: String,
    pub rule: String,
}

impl Problem {
    pub(crate) fn new(field: &str, rule: impl Into<String>) -> Self {
        Self {
            field: field.to_owned(),
            rule: rule.into(),
        }
    }
}

/// What `--rotate` can renew.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Rotate {
    /// New SNMPv3 username, auth password and privacy passphrase.
    Snmp,
    /// New Cloud Sync encryption password and salt (the agent refuses to re-key a task
    /// that already uploaded data; see docs/provisioning.md).
    Encryption,
}

/// The command line of `provision`, as given.
#[derive(Debug, Clone)]
pub struct Request {
    pub dir: PathBuf,
    /// Where central's data lives (SQLite in `dir` by default).
    pub database: Database,
    pub device: String,
    pub org_uuid: String,
    pub location_uuid: String,
    pub location_name: Option<String>,
    pub root_pool: Option<String>,
    pub pools: Option<String>,
    pub uplink_mbps: Option<String>,
    pub business_hours: Option<String>,
    pub admin_key_file: PathBuf,
    pub b2_api: String,
    pub confirm_compliance_lock: bool,
    pub dry_run: bool,
    pub rotate: Vec<Rotate>,
    pub token_out: Option<PathBuf>,
}

/// Cloud Sync bandwidth inputs (SOP 5.2 "Bandwidth Limit").
#[derive(Debug, Clone, PartialEq)]
pub struct Bandwidth {
    pub uplink_mbps: serde_json::Number,
    /// `(start, end)` when `--business-hours` was given (else the SOP default 08:00-18:00).
    pub business_hours: Option<(String, String)>,
}

/// The admin key from `--b2-admin-key-file`.
pub struct AdminKey {
    pub key_id: String,
    pub key: SecretString,
}

impl std::fmt::Debug for AdminKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdminKey")
            .field("key_id", &self.key_id)
            .finish_non_exhaustive()
    }
}

/// Checked inputs.
#[derive(Debug)]
pub struct Inputs {
    pub device: String,
    pub org_uuid: Uuid,
    pub location_uuid: Uuid,
    pub location_name: Option<String>,
    pub root_pool: Option<String>,
    pub pools: Option<Vec<String>>,
    pub bandwidth: Option<Bandwidth>,
    /// `truenas-<location uuid, lower-case, no dashes>` (SOP 3.2).
    pub bucket: String,
    pub admin: AdminKey,
    pub api: String,
}

/// Checks every input; all problems at once.
pub fn validate(req: &Request) -> Result<Inputs, Vec<Problem>> {
    let mut problems = Vec::new();
    if !is_valid_device_name(&req.device) {
        problems.push(Problem::new("--device", DEVICE_NAME_RULE));
    }
    let org = uuid_v4("--org-uuid", &req.org_uuid, &mut problems);
    let location = uuid_v4("--location-uuid", &req.location_uuid, &mut problems);
    if let Some(name) = &req.location_name {
        if name.trim().is_empty()
            || name.chars().count() > 255
            || name.chars().any(char::is_control)
        {
            problems.push(Problem::new(
                "--location-name",
                "1 to 255 characters, no control characters",
            ));
        }
    }
    let pools = req.pools.as_deref().map(|text| {
        let pools: Vec<String> = text.split(',').map(|p| p.trim().to_owned()).collect();
        if pools.iter().any(String::is_empty) {
            problems.push(Problem::new(
                "--pools",
                "a comma-separated list of pool names without empty entries (P1,P2)",
            ));
        }
        pools
    });
    let bandwidth = bandwidth(req, &mut problems);
    let admin = admin_key(&req.admin_key_file, &mut problems);
    if let Err(e) = check_api_url(&req.b2_api) {
        problems.push(Problem::new("--b2-api", e.to_string()));
    }
    // The agent's own rules, on a document with these values.
    let probe = probe_document(req, pools.as_ref(), bandwidth.as_ref());
    if let Err(e) = desired::parse(probe.to_string().as_bytes()) {
        for f in e.field_errors() {
            let flag = flag_for(&f.path);
            if !problems.iter().any(|p| p.field == flag) {
                problems.push(Problem::new(flag, f.rule));
            }
        }
    }
    let bucket = derive::bucket_name(&req.location_uuid);
    match (org, location, admin) {
        (Some(org_uuid), Some(location_uuid), Some(admin)) if problems.is_empty() => Ok(Inputs {
            device: req.device.clone(),
            org_uuid,
            location_uuid,
            location_name: req.location_name.clone(),
            root_pool: req.root_pool.clone(),
            pools,
            bandwidth,
            bucket,
            admin,
            api: req.b2_api.clone(),
        }),
        _ => Err(problems),
    }
}

fn uuid_v4(flag: &str, text: &str, problems: &mut Vec<Problem>) -> Option<Uuid> {
    let Some(uuid) = derive::parse_uuid(text) else {
        problems.push(Problem::new(
            flag,
            "not a UUID (expected 8-4-4-4-12 hexadecimal digits with dashes, as in NinjaOne)",
        ));
        return None;
    };
    if uuid.is_nil() {
        problems.push(Problem::new(flag, "must not be the nil UUID"));
        return None;
    }
    if uuid.get_version_num() != 4 {
        problems.push(Problem::new(
            flag,
            "must be a version-4 UUID (SOP 3.2: NinjaOne's UUID fields hold UUIDv4s)",
        ));
        return None;
    }
    Some(uuid)
}

fn bandwidth(req: &Request, problems: &mut Vec<Problem>) -> Option<Bandwidth> {
    let hours = req.business_hours.as_deref().and_then(|text| {
        let parsed = text
            .split_once('-')
            .and_then(|(s, e)| Some((HhMm::parse(s)?, HhMm::parse(e)?)));
        match parsed {
            Some((s, e)) if s == e => {
                problems.push(Problem::new(
                    "--business-hours",
                    "start and end must differ (the window would be empty)",
                ));
                None
            }
            Some((s, e)) => Some((s.to_string(), e.to_string())),
            None => {
                problems.push(Problem::new(
                    "--business-hours",
                    "expected HH:MM-HH:MM (zero-padded 24-hour times, e.g. 08:00-18:00)",
                ));
                None
            }
        }
    });
    let Some(text) = req.uplink_mbps.as_deref() else {
        if req.business_hours.is_some() {
            problems.push(Problem::new(
                "--business-hours",
                "needs --uplink-mbps (the limits are shares of the uplink)",
            ));
        }
        return None;
    };
    let number = text
        .parse::<u64>()
        .ok()
        .map(serde_json::Number::from)
        .or_else(|| {
            text.parse::<f64>()
                .ok()
                .filter(|f| f.is_finite())
                .and_then(serde_json::Number::from_f64)
        });
    let Some(uplink_mbps) = number else {
        problems.push(Problem::new(
            "--uplink-mbps",
            "expected the client's upload speed in Mbit/s, a number such as 100 or 2.5",
        ));
        return None;
    };
    Some(Bandwidth {
        uplink_mbps,
        business_hours: hours,
    })
}

/// Reads `--b2-admin-key-file` (for `rotate-key`): the key, or its problems.
pub fn read_admin_key(path: &Path) -> Result<AdminKey, Vec<Problem>> {
    let mut problems = Vec::new();
    admin_key(path, &mut problems).ok_or(problems)
}

/// Reads `--b2-admin-key-file`: one line `<applicationKeyId>:<applicationKey>`, mode 0600
/// or 0400, owned by the caller.
fn admin_key(path: &Path, problems: &mut Vec<Problem>) -> Option<AdminKey> {
    const FLAG: &str = "--b2-admin-key-file";
    let (owner, mode) = match truenas_agent::fs::owner_and_mode(path) {
        Ok(x) => x,
        Err(e) => {
            problems.push(Problem::new(
                FLAG,
                format!("cannot read it: {}", truenas_agent::fault::error_chain(&e)),
            ));
            return None;
        }
    };
    let me = nix::unistd::geteuid().as_raw();
    let shown = path.display();
    if owner != me {
        problems.push(Problem::new(
            FLAG,
            format!("must be owned by you (uid {me}), not uid {owner}: chown {me} {shown}"),
        ));
        return None;
    }
    if mode != 0o600 && mode != 0o400 {
        problems.push(Problem::new(
            FLAG,
            format!("must have mode 0600 or 0400, not {mode:04o}: chmod 600 {shown}"),
        ));
        return None;
    }
    let bytes = match truenas_agent::fs::read(path) {
        Ok(b) => secrecy::SecretBox::new(Box::new(b)),
        Err(e) => {
            problems.push(Problem::new(
                FLAG,
                format!("cannot read it: {}", truenas_agent::fault::error_chain(&e)),
            ));
            return None;
        }
    };
    let format_rule = "must hold one line `<applicationKeyId>:<applicationKey>`";
    let Ok(text) = std::str::from_utf8(bytes.expose_secret()) else {
        problems.push(Problem::new(FLAG, format_rule));
        return None;
    };
    let line = text.trim();
    let parsed = line.split_once(':').filter(|(id, key)| {
        !id.is_empty()
            && !key.is_empty()
            && !line.contains(['\n', '\r'])
            && line.bytes().all(|b| b.is_ascii_graphic())
    });
    let Some((key_id, key)) = parsed else {
        problems.push(Problem::new(FLAG, format_rule));
        return None;
    };
    Some(AdminKey {
        key_id: key_id.to_owned(),
        key: SecretString::from(key.to_owned()),
    })
}

/// A document with the flags' values and placeholder secrets, for `desired::parse`.
fn probe_document(req: &Request, pools: Option<&Vec<String>>, bw: Option<&Bandwidth>) -> Value {
    let mut device = json!({
        "org_uuid": req.org_uuid,
        "location_uuid": req.location_uuid,
    });
    if let Some(name) = &req.location_name {
        device["location_name"] = json!(name);
    }
    if let Some(root) = &req.root_pool {
        device["root_pool"] = json!(root);
    }
    let mut doc = json!({
        "schema": desired::SCHEMA_V1,
        "revision": 1,
        "device": device,
        "b2": {"key_id": "probe", "application_key": "probe-key"},
        "encryption": {"password": "probe-password", "salt": "probe-salt"},
    });
    if let Some(pools) = pools.filter(|p| !p.iter().any(String::is_empty)) {
        doc["pools"] = json!(pools);
    }
    if let Some(bw) = bw {
        doc["cloud_sync"] = json!({"bandwidth": bandwidth_json(bw)});
    }
    doc
}

/// `cloud_sync.bandwidth` of the document for these inputs.
pub fn bandwidth_json(bw: &Bandwidth) -> Value {
    let mut v = json!({"uplink_mbps": bw.uplink_mbps});
    if let Some((start, end)) = &bw.business_hours {
        v["business_hours"] = json!({"start": start, "end": end});
    }
    v
}

/// The flag a document path comes from.
fn flag_for(path: &str) -> &'static str {
    const MAP: &[(&str, &str)] = &[
        ("device.org_uuid", "--org-uuid"),
        ("device.location_uuid", "--location-uuid"),
        ("device.location_name", "--location-name"),
        ("device.root_pool", "--root-pool"),
        ("pools", "--pools"),
        ("cloud_sync.bandwidth.uplink_mbps", "--uplink-mbps"),
        ("cloud_sync.bandwidth.business_hours", "--business-hours"),
    ];
    MAP.iter()
        .find(|(prefix, _)| {
            path == *prefix
                || path.starts_with(&format!("{prefix}."))
                || path.starts_with(&format!("{prefix}["))
        })
        .map_or("(document)", |(_, flag)| flag)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(key_file: &Path) -> Request {
        Request {
            dir: PathBuf::from("/nonexistent"),
            database: Database::Sqlite(PathBuf::from("/nonexistent/central.db")),
            device: "nas-01".into(),
            org_uuid: "3f2b8c1e-9d4a-4e6b-8a7c-1d2e3f4a5b6c".into(),
            location_uuid: "a1b2c3d4-e5f6-4071-8293-a4b5c6d7e8f9".into(),
            location_name: Some("Main Office".into()),
            root_pool: Some("pool0".into()),
            pools: Some("pool0,pool1".into()),
            uplink_mbps: Some("100".into()),
            business_hours: Some("08:00-18:00".into()),
            admin_key_file: key_file.to_owned(),
            b2_api: "https://api.backblazeb2.com".into(),
            confirm_compliance_lock: false,
            dry_run: false,
            rotate: Vec::new(),
            token_out: None,
        }
    }

    fn key_file(dir: &Path, mode: u32, text: &str) -> PathBuf {
        let path = dir.join(format!("admin-{mode:o}.key"));
        truenas_agent::fs::write_atomic(&path, text.as_bytes(), mode).unwrap();
        path
    }

    #[test]
    fn good_inputs() {
        let tmp = tempfile::tempdir().unwrap();
        let file = key_file(tmp.path(), 0o600, "0012345:K005secret\n");
        let inputs = validate(&request(&file)).unwrap();
        assert_eq!(inputs.bucket, "truenas-a1b2c3d4e5f640718293a4b5c6d7e8f9");
        assert_eq!(inputs.admin.key_id, "0012345");
        assert_eq!(inputs.pools.unwrap(), ["pool0", "pool1"]);
        assert!(!format!("{:?}", inputs.admin).contains("K005secret"));
        let ro = key_file(tmp.path(), 0o400, "0012345:K005secret");
        assert!(validate(&request(&ro)).is_ok());
    }

    #[test]
    fn every_problem_at_once_by_flag() {
        let tmp = tempfile::tempdir().unwrap();
        let file = key_file(tmp.path(), 0o644, "0012345:K005secret\n");
        let mut req = request(&file);
        req.device = "../x".into();
        req.org_uuid = "not-a-uuid".into();
        req.location_uuid = "a1b2c3d4-e5f6-1071-8293-a4b5c6d7e8f9".into(); // v1
        req.pools = Some("pool0,,mirror".into());
        req.root_pool = Some("9bad".into());
        req.uplink_mbps = Some("fast".into());
        req.business_hours = Some("8:00-18:00".into());
        req.b2_api = "http://example.com".into();
        let problems = validate(&req).unwrap_err();
        let fields: Vec<&str> = problems.iter().map(|p| p.field.as_str()).collect();
        for flag in [
            "--device",
            "--org-uuid",
            "--location-uuid",
            "--pools",
            "--root-pool",
            "--uplink-mbps",
            "--business-hours",
            "--b2-api",
            "--b2-admin-key-file",
        ] {
            assert!(fields.contains(&flag), "{flag} missing in {problems:?}");
        }
        let shown = format!("{problems:?}");
        assert!(!shown.contains("K005secret"), "{shown}");
        assert!(shown.contains("chmod 600"), "{shown}");
    }

    #[test]
    fn document_rules_reach_the_flags() {
        let tmp = tempfile::tempdir().unwrap();
        let file = key_file(tmp.path(), 0o600, "id:key");
        let mut req = request(&file);
        req.pools = Some("pool0,boot-pool".into());
        req.root_pool = Some("mirror".into());
        let problems = validate(&req).unwrap_err();
        assert!(
            problems
                .iter()
                .any(|p| p.field == "--pools" && p.rule.contains("boot pool")),
            "{problems:?}"
        );
        assert!(
            problems.iter().any(|p| p.field == "--root-pool"),
            "{problems:?}"
        );
        let mut req = request(&file);
        req.uplink_mbps = None;
        let problems = validate(&req).unwrap_err();
        assert_eq!(problems[0].field, "--business-hours", "{problems:?}");
        for bad in ["", "id", ":key", "id:", "id:key with space"] {
            let f = key_file(tmp.path(), 0o600, bad);
            let problems = validate(&request(&f)).unwrap_err();
            assert_eq!(problems[0].field, "--b2-admin-key-file", "{bad:?}");
        }
    }
}
