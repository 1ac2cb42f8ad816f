//! Cross-field and state rules the middleware's services apply after the params schema
//! (REFERENCE §5.3), with the real attribute paths and messages.
//!
//! Owns: one function per service check — cloud sync tasks (credential exists, `args`
//! shell-splittable, B2 attribute keys/defaults/`chunk_size`, path inside a pool and not
//! `.zfs`, bwlimit order, snapshot rules, encryption password), cloud credentials (unique
//! name, 24.10 provider attributes), periodic snapshot tasks (dataset exists, exclude
//! rules), SNMP, dataset user properties, init/shutdown scripts.
//! Does not: check JSON types (the params schema did, so fields read here are well-typed
//! or absent) or change the box — except filling provider defaults into the payload.
//! Invariants: pure functions of (box, payload); every problem found is returned, in the
//! order the middleware reports them.
//! Limitations: PULL tasks' remote folder existence (a live `rclone lsjson` on the box) is
//! not checked; only B2 task attributes are validated per provider.

use std::collections::BTreeSet;

use serde_json::{Map, Value};

use super::scenario::Scenario;
use super::schema::{self, Issue, Style};
use super::validate::b2_task_attributes;
use truenas_agent::middleware::ApiFlavor;

/// Reads a bool field with its default.
fn flag(data: &Map<String, Value>, key: &str) -> bool {
    data.get(key).and_then(Value::as_bool).unwrap_or(false)
}

fn text<'a>(data: &'a Map<String, Value>, key: &str) -> &'a str {
    data.get(key).and_then(Value::as_str).unwrap_or_default()
}

/// Cloud sync create/update (`name` = `cloud_sync_create` / `cloud_sync_update`).
/// Fills the B2 attribute defaults (`chunk_size: 96`, `fast_list: false`) into `data`.
pub fn cloud_sync(state: &Scenario, name: &str, data: &mut Map<String, Value>) -> Vec<Issue> {
    let mut issues = Vec::new();
    // middleware: plugins/cloud_sync.py `_basic_validate`
    if flag(data, "encryption") && text(data, "encryption_password").is_empty() {
        issues.push(Issue::new(
            format!("{name}.encryption_password"),
            "This field is required when encryption is enabled",
        ));
    }
    issues.extend(task_basics(state, name, data));
    issues.extend(local_path(
        state,
        &format!("{name}.path"),
        text(data, "path"),
    ));
    if flag(data, "snapshot") && has_child_datasets(state, text(data, "path")) {
        issues.push(Issue::new(
            format!("{name}.snapshot"),
            "This option is only available for datasets that have no further nesting",
        ));
    }
    issues.extend(bwlimit_order(name, data));
    if flag(data, "snapshot") {
        if text(data, "direction") != "PUSH" {
            issues.push(Issue::new(
                format!("{name}.snapshot"),
                "This option can only be enabled for PUSH tasks",
            ));
        }
        if text(data, "transfer_mode") == "MOVE" {
            issues.push(Issue::new(
                format!("{name}.snapshot"),
                "This option can not be used for MOVE transfer mode",
            ));
        }
    }
    issues
}

/// `args`, credential and provider attributes (`plugins/cloud/crud.py` `_basic_validate`);
/// also used by `cloudsync.list_directory` with `name` = `cloud_sync`.
pub fn task_basics(state: &Scenario, name: &str, data: &mut Map<String, Value>) -> Vec<Issue> {
    let mut issues = Vec::new();
    if let Err(e) = shell_split(text(data, "args")) {
        issues.push(Issue::new(
            format!("{name}.args"),
            format!("Parse error: {e}"),
        ));
    }
    let credential = data
        .get("credentials")
        .and_then(Value::as_u64)
        .and_then(|id| state.credential(id));
    let Some(credential) = credential else {
        issues.push(Issue::new(
            format!("{name}.credentials"),
            "Invalid credentials",
        ));
        return issues;
    };
    if !issues.is_empty() {
        return issues;
    }
    if credential.provider == "B2" {
        let attributes = data
            .entry("attributes")
            .or_insert_with(|| Value::Object(Map::new()));
        issues.extend(b2_attributes(state.flavor, name, attributes));
    }
    issues
}

/// B2 task attributes: only `bucket`, `folder`, `chunk_size`, `fast_list`; defaults filled.
fn b2_attributes(flavor: ApiFlavor, name: &str, attributes: &mut Value) -> Vec<Issue> {
    let style = if flavor >= ApiFlavor::V25_10 {
        Style::Pydantic
    } else {
        Style::Legacy
    };
    let mut issues = Vec::new();
    let path = format!("{name}.attributes");
    schema::check(
        &b2_task_attributes().ty(),
        attributes,
        &path,
        style,
        &mut issues,
    );
    if !issues.is_empty() {
        return issues;
    }
    let Some(map) = attributes.as_object_mut() else {
        return issues;
    };
    map.entry("chunk_size").or_insert(Value::from(96));
    map.entry("fast_list").or_insert(Value::Bool(false));
    let chunk = map.get("chunk_size").and_then(Value::as_i64).unwrap_or(96);
    if chunk < 5 {
        issues.push(match flavor {
            // middleware [25.10, 26.0, master]: rclone/remote/b2.py reports under the bare
            // attribute name.
            ApiFlavor::V25_10 | ApiFlavor::V26_0 | ApiFlavor::V27_0 => {
                Issue::new("chunk_size", "Must be greater than or equal to 5")
            }
            ApiFlavor::V24_10 | ApiFlavor::V25_04 => Issue::new(
                format!("{path}.chunk_size"),
                "Should be greater than or equal to 5",
            ),
        });
    }
    issues
}

/// `check_path_resides_within_volume_sync` (`MW/validators.py`).
pub fn local_path(state: &Scenario, attribute: &str, path: &str) -> Vec<Issue> {
    let mut issues = Vec::new();
    let normal = normalize_path(path);
    let inside_pool = path.starts_with("/mnt/")
        && state
            .pools
            .iter()
            .filter(|p| !p.boot)
            .any(|p| is_within(&normal, &format!("/mnt/{}", p.name)));
    if !inside_pool {
        issues.push(Issue::new(
            attribute,
            "The path must reside within a pool mount point",
        ));
    }
    let parts: Vec<&str> = normal.split('/').collect();
    let is_ctl_dir = matches!(parts.as_slice(), [.., ".zfs"] | [.., ".zfs", "snapshot"]);
    if is_ctl_dir {
        issues.push(Issue::new(
            attribute,
            "The ZFS control directory (.zfs) and snapshot directory (.zfs/snapshot) are not permitted paths. \
             If a snapshot within this directory must be accessed through the path-based API, then it should \
             be called directly, e.g. '/mnt/dozer/.zfs/snapshot/mysnap'.",
        ));
    }
    issues
}

/// `/a/./b/../c/` → `/a/c`.
pub fn normalize_path(path: &str) -> String {
    let mut out: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                out.pop();
            }
            p => out.push(p),
        }
    }
    format!("/{}", out.join("/"))
}

fn is_within(path: &str, parent: &str) -> bool {
    path == parent || path.starts_with(&format!("{parent}/"))
}

/// The deepest dataset whose mountpoint contains `path`.
pub fn dataset_of_path<'a>(
    state: &'a Scenario,
    path: &str,
) -> Option<&'a super::scenario::Dataset> {
    let normal = normalize_path(path);
    state
        .datasets
        .iter()
        .filter(|d| is_within(&normal, &d.mountpoint()))
        .max_by_key(|d| d.name.len())
}

/// Whether `path`'s dataset (or an ancestor) is locked.
pub fn path_is_locked(state: &Scenario, path: &str) -> bool {
    let Some(ds) = dataset_of_path(state, path) else {
        return false;
    };
    state
        .datasets
        .iter()
        .any(|d| d.locked && (d.name == ds.name || ds.name.starts_with(&format!("{}/", d.name))))
}

fn has_child_datasets(state: &Scenario, path: &str) -> bool {
    let rel = normalize_path(path);
    let rel = rel.trim_start_matches("/mnt/");
    state
        .datasets
        .iter()
        .any(|d| d.kind == "FILESYSTEM" && d.name.starts_with(&format!("{rel}/")))
}

fn bwlimit_order(name: &str, data: &Map<String, Value>) -> Vec<Issue> {
    let times: Vec<&str> = data
        .get("bwlimit")
        .and_then(Value::as_array)
        .map(|l| {
            l.iter()
                .map(|e| e.get("time").and_then(Value::as_str).unwrap_or_default())
                .collect()
        })
        .unwrap_or_default();
    // middleware: plugins/cloud_sync.py compares the strings, so "8:00" sorts after "18:00".
    times
        .windows(2)
        .enumerate()
        .filter(|(_, w)| w[0] >= w[1])
        .map(|(i, w)| {
            Issue::new(
                format!("{name}.bwlimit.{}.time", i + 1),
                format!("Invalid time order: {}, {}", w[0], w[1]),
            )
        })
        .collect()
}

/// Python `shlex.split` acceptance: quotes must close, a trailing backslash needs a character.
pub fn shell_split(args: &str) -> Result<Vec<String>, &'static str> {
    let mut words = Vec::new();
    let mut cur = String::new();
    let mut in_word = false;
    let mut chars = args.chars();
    while let Some(c) = chars.next() {
        match c {
            '\'' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(x) => cur.push(x),
                        None => return Err("No closing quotation"),
                    }
                }
            }
            '"' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => cur.push(chars.next().ok_or("No closing quotation")?),
                        Some(x) => cur.push(x),
                        None => return Err("No closing quotation"),
                    }
                }
            }
            '\\' => {
                in_word = true;
                cur.push(chars.next().ok_or("No escaped character")?);
            }
            c if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut cur));
                    in_word = false;
                }
            }
            c => {
                in_word = true;
                cur.push(c);
            }
        }
    }
    if in_word {
        words.push(cur);
    }
    Ok(words)
}

/// Cloud credential create/update: unique name; on 24.10 the provider and its attributes.
pub fn credential(
    state: &Scenario,
    schema_name: &str,
    name: &str,
    provider: &str,
    attributes: &Value,
    id: Option<u64>,
) -> Vec<Issue> {
    let mut issues = Vec::new();
    if state
        .credentials
        .iter()
        .any(|c| c.name == name && Some(c.id) != id)
    {
        issues.push(Issue::new(
            format!("{schema_name}.name"),
            "Object with this name already exists",
        ));
    }
    if state.flavor == ApiFlavor::V24_10 {
        issues.extend(legacy_provider_attributes(
            schema_name,
            provider,
            attributes,
        ));
    }
    issues
}

/// 24.10 validates the `attributes` dict against the provider's legacy `credentials_schema`.
pub fn legacy_provider_attributes(
    schema_name: &str,
    provider: &str,
    attributes: &Value,
) -> Vec<Issue> {
    let mut issues = Vec::new();
    if !PROVIDERS.contains(&provider) {
        issues.push(Issue::new(
            format!("{schema_name}.provider"),
            "Invalid provider",
        ));
        return issues;
    }
    if provider == "B2" {
        let b2 = schema::obj(vec![
            schema::req("account", schema::s()),
            schema::req("key", schema::s()),
        ])
        .ty();
        schema::check(
            &b2,
            attributes,
            &format!("{schema_name}.attributes"),
            Style::Legacy,
            &mut issues,
        );
    }
    issues
}

/// Provider names (`REMOTES`).
pub const PROVIDERS: &[&str] = &[
    "AZUREBLOB",
    "B2",
    "BOX",
    "DROPBOX",
    "FTP",
    "GOOGLE_CLOUD_STORAGE",
    "GOOGLE_DRIVE",
    "GOOGLE_PHOTOS",
    "HTTP",
    "HUBIC",
    "MEGA",
    "ONEDRIVE",
    "PCLOUD",
    "S3",
    "SFTP",
    "STORJ_IX",
    "OPENSTACK_SWIFT",
    "WEBDAV",
    "YANDEX",
];

/// Periodic snapshot task (`plugins/snapshot.py` `_validate`), `schema` = `periodic_snapshot_create/update`.
pub fn snapshot_task(state: &Scenario, schema_name: &str, data: &Map<String, Value>) -> Vec<Issue> {
    let mut issues = Vec::new();
    let dataset = text(data, "dataset");
    // `pool.filesystem_choices`: filesystems and volumes, not the boot pool.
    let exists = state
        .dataset(dataset)
        .is_some_and(|d| state.pool(d.pool()).is_some_and(|p| !p.boot));
    if !exists {
        issues.push(Issue::new(
            format!("{schema_name}.dataset"),
            "Dataset not found",
        ));
    }
    let exclude: Vec<&str> = data
        .get("exclude")
        .and_then(Value::as_array)
        .map(|l| l.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    if !flag(data, "recursive") && !exclude.is_empty() {
        issues.push(Issue::new(
            format!("{schema_name}.exclude"),
            "Excluding datasets is not necessary for non-recursive periodic snapshot tasks",
        ));
    }
    for (i, e) in exclude.iter().enumerate() {
        if !e.starts_with(&format!("{dataset}/")) {
            issues.push(Issue::new(
                format!("{schema_name}.exclude.{i}"),
                "Excluded dataset should be a child or other descendant of the selected dataset",
            ));
        }
    }
    issues
}

/// `snmp.update` on the merged config (`plugins/snmp.py` `do_update`): two rounds, as the
/// middleware checks the "required" group before the lengths.
pub fn snmp(new: &Map<String, Value>) -> Vec<Issue> {
    let mut issues = Vec::new();
    let v3 = flag(new, "v3");
    if !v3 && text(new, "community").is_empty() {
        issues.push(Issue::new(
            "snmp_update.community",
            "This field is required when SNMPv3 is disabled",
        ));
    }
    if v3 {
        for field in ["v3_username", "v3_authtype", "v3_password"] {
            if text(new, field).is_empty() {
                issues.push(Issue::new(
                    format!("snmp_update.{field}"),
                    "This field is required when SNMPv3 is enabled",
                ));
            }
        }
    }
    if !issues.is_empty() {
        return issues;
    }
    let password = text(new, "v3_password");
    if !password.is_empty() && password.chars().count() < 8 {
        issues.push(Issue::new(
            "snmp_update.v3_password",
            "Password must contain at least 8 characters",
        ));
    }
    let privproto = new
        .get("v3_privproto")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if !privproto.is_empty() && text(new, "v3_privpassphrase").is_empty() {
        issues.push(Issue::new(
            "snmp_update.v3_privpassphrase",
            "This field is required when SNMPv3 private protocol is specified",
        ));
    }
    issues
}

/// `pool.dataset.update` user-property rules (`plugins/pool_/dataset.py`) plus the ZFS
/// name rule for user properties (lower-case letters, digits, `:_.-`, ≤ 255, a `:`
/// not first), which ZFS enforces and the middleware reports as a validation error.
pub fn dataset_user_properties(data: &Map<String, Value>) -> Vec<Issue> {
    let schema_name = "pool_dataset_update";
    let mut issues = Vec::new();
    let updates = data
        .get("user_properties_update")
        .and_then(Value::as_array)
        .filter(|l| !l.is_empty());
    let full = data
        .get("user_properties")
        .and_then(Value::as_array)
        .filter(|l| !l.is_empty());
    match (updates, full) {
        (Some(_), Some(_)) => issues.push(Issue::new(
            format!("{schema_name}.user_properties_update"),
            "Should not be specified when \"user_properties\" are explicitly specified",
        )),
        (Some(updates), None) => {
            for (i, p) in updates.iter().enumerate() {
                let at = format!("{schema_name}.user_properties_update.{i}");
                let has_value = p.get("value").is_some();
                let remove = p.get("remove").and_then(Value::as_bool).unwrap_or(false);
                if has_value && remove {
                    issues.push(Issue::new(
                        format!("{at}.remove"),
                        "When \"value\" is specified, this cannot be set",
                    ));
                } else if !has_value && p.get("remove").is_none() {
                    issues.push(Issue::new(
                        format!("{at}.value"),
                        "Either \"value\" or \"remove\" must be specified",
                    ));
                }
            }
        }
        _ => {}
    }
    for (list, field) in [
        (updates, "user_properties_update"),
        (full, "user_properties"),
    ] {
        for (i, p) in list.into_iter().flatten().enumerate() {
            let key = p.get("key").and_then(Value::as_str).unwrap_or_default();
            if !zfs_user_property_name(key) {
                issues.push(Issue::new(
                    format!("{schema_name}.{field}.{i}.key"),
                    format!("'{key}' is not a valid ZFS user property name"),
                ));
            }
        }
    }
    issues
}

/// ZFS user property name syntax.
pub fn zfs_user_property_name(key: &str) -> bool {
    key.len() <= 255
        && key.contains(':')
        && !key.starts_with(':')
        && key
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || ":_.-".contains(c))
}

/// Init/shutdown script (`plugins/init_shutdown_script.py` `validate`).
pub fn init_script(state: &Scenario, schema_name: &str, data: &Map<String, Value>) -> Vec<Issue> {
    let mut issues = Vec::new();
    match text(data, "type") {
        "COMMAND" if text(data, "command").is_empty() => {
            issues.push(Issue::new(
                format!("{schema_name}.command"),
                "This field is required",
            ));
        }
        "SCRIPT" => {
            let script = text(data, "script");
            if script.is_empty() {
                issues.push(Issue::new(
                    format!("{schema_name}.script"),
                    "This field is required",
                ));
            } else {
                match script_file(state, script) {
                    FileCheck::Missing => issues.push(Issue {
                        path: format!("{schema_name}.script"),
                        message: format!("Path {script} not found"),
                        errno: super::core::errno::ENOENT,
                    }),
                    FileCheck::NotFile => issues.push(Issue::new(
                        format!("{schema_name}.script"),
                        "Script must be a regular file not 'DIRECTORY'",
                    )),
                    FileCheck::NotExecutable => issues.push(Issue::new(
                        format!("{schema_name}.script"),
                        "Script must have execute bit set for the user",
                    )),
                    FileCheck::Ok => {}
                }
            }
        }
        _ => {}
    }
    issues
}

enum FileCheck {
    Ok,
    Missing,
    NotFile,
    NotExecutable,
}

/// Scenario files first; then the host's own file system, read-only, so tests that
/// install a real script file in a temp dir can point an init script at it.
fn script_file(state: &Scenario, path: &str) -> FileCheck {
    if let Some(f) = state.files.iter().find(|f| f.path == path) {
        return if f.executable {
            FileCheck::Ok
        } else {
            FileCheck::NotExecutable
        };
    }
    if state.datasets.iter().any(|d| d.mountpoint() == path) {
        return FileCheck::NotFile;
    }
    match std::fs::metadata(path) {
        Err(_) => FileCheck::Missing,
        Ok(m) if !m.is_file() => FileCheck::NotFile,
        Ok(m) => {
            use std::os::unix::fs::PermissionsExt;
            if m.permissions().mode() & 0o100 == 0 {
                FileCheck::NotExecutable
            } else {
                FileCheck::Ok
            }
        }
    }
}

/// The names of every dataset below `root` (not `root` itself).
pub fn descendants(state: &Scenario, root: &str) -> BTreeSet<String> {
    state
        .datasets
        .iter()
        .filter(|d| d.name.starts_with(&format!("{root}/")))
        .map(|d| d.name.clone())
        .collect()
}

#[cfg(test)]
#[allow(clippy::too_many_lines, clippy::needless_pass_by_value)]
mod tests {
    use super::*;
    use crate::scenario::{Credential, Dataset};
    use serde_json::json;

    fn state(flavor: ApiFlavor) -> Scenario {
        let mut s = Scenario::two_pools(flavor);
        s.datasets.push(Dataset::filesystem("pool1/media"));
        s.credentials.push(Credential {
            id: 1,
            name: "truenas-abc".into(),
            provider: "B2".into(),
            attributes: serde_json::from_value(json!({"account": "k", "key": "s"})).unwrap(),
        });
        s
    }

    fn task() -> Map<String, Value> {
        serde_json::from_value(json!({
            "path": "/mnt/pool0", "credentials": 1, "direction": "PUSH", "transfer_mode": "SYNC",
            "attributes": {"bucket": "b", "folder": "/g/pool0"},
            "bwlimit": [{"time": "00:00", "bandwidth": 1}, {"time": "08:00", "bandwidth": 2}],
        }))
        .unwrap()
    }

    fn paths(issues: &[Issue]) -> Vec<String> {
        issues
            .iter()
            .map(|i| format!("{}: {}", i.path, i.message))
            .collect()
    }

    #[test]
    fn a_good_task_passes_and_gets_b2_defaults() {
        for f in ApiFlavor::ALL {
            let mut t = task();
            assert_eq!(
                paths(&cloud_sync(&state(f), "cloud_sync_create", &mut t)),
                Vec::<String>::new()
            );
            assert_eq!(t["attributes"]["chunk_size"], 96);
            assert_eq!(t["attributes"]["fast_list"], false);
        }
    }

    /// One case per cross-field rule.
    #[test]
    fn rule_table() {
        type Edit = fn(&mut Map<String, Value>);
        let cases: Vec<(ApiFlavor, Edit, &str)> = vec![
            (
                ApiFlavor::V25_04,
                |t| {
                    t.insert("credentials".into(), json!(9));
                },
                "cloud_sync_create.credentials: Invalid credentials",
            ),
            (
                ApiFlavor::V25_04,
                |t| {
                    t.insert("args".into(), json!("--x 'y"));
                },
                "cloud_sync_create.args: Parse error: No closing quotation",
            ),
            (
                ApiFlavor::V25_04,
                |t| {
                    t.insert("encryption".into(), json!(true));
                },
                "cloud_sync_create.encryption_password: This field is required when encryption is enabled",
            ),
            (
                ApiFlavor::V25_04,
                |t| {
                    t.insert("path".into(), json!("/mnt/pool7"));
                },
                "cloud_sync_create.path: The path must reside within a pool mount point",
            ),
            (
                ApiFlavor::V25_04,
                |t| {
                    t.insert("path".into(), json!("/tmp"));
                },
                "cloud_sync_create.path: The path must reside within a pool mount point",
            ),
            (
                ApiFlavor::V25_04,
                |t| {
                    t.insert("path".into(), json!("/mnt/pool0/../boot-pool"));
                },
                "cloud_sync_create.path: The path must reside within a pool mount point",
            ),
            (
                ApiFlavor::V25_10,
                |t| {
                    t.insert("path".into(), json!("/mnt/pool0/.zfs"));
                },
                "cloud_sync_create.path: The ZFS control directory",
            ),
            (
                ApiFlavor::V25_04,
                |t| {
                    t["bwlimit"][1]["time"] = json!("00:00");
                },
                "cloud_sync_create.bwlimit.1.time: Invalid time order: 00:00, 00:00",
            ),
            (
                ApiFlavor::V25_04,
                |t| {
                    t.insert("bwlimit".into(), json!([{"time": "8:00", "bandwidth": 1}, {"time": "18:00", "bandwidth": 1}]));
                },
                "cloud_sync_create.bwlimit.1.time: Invalid time order: 8:00, 18:00",
            ),
            (
                ApiFlavor::V25_04,
                |t| {
                    t.insert("attributes".into(), json!({"bucket": "b"}));
                },
                "cloud_sync_create.attributes.folder: attribute required",
            ),
            (
                ApiFlavor::V25_10,
                |t| {
                    t.insert("attributes".into(), json!({"bucket": "b"}));
                },
                "cloud_sync_create.attributes.folder: Field required",
            ),
            (
                ApiFlavor::V25_04,
                |t| {
                    t.insert("attributes".into(), json!({"bucket": "", "folder": ""}));
                },
                "cloud_sync_create.attributes.bucket: Empty value not allowed",
            ),
            (
                ApiFlavor::V25_04,
                |t| {
                    t["attributes"]["region"] = json!("x");
                },
                "cloud_sync_create.attributes.region: Field was not expected",
            ),
            (
                ApiFlavor::V25_10,
                |t| {
                    t["attributes"]["region"] = json!("x");
                },
                "cloud_sync_create.attributes.region: Extra inputs are not permitted",
            ),
            (
                ApiFlavor::V25_04,
                |t| {
                    t["attributes"]["chunk_size"] = json!(4);
                },
                "cloud_sync_create.attributes.chunk_size: Should be greater than or equal to 5",
            ),
            (
                ApiFlavor::V25_10,
                |t| {
                    t["attributes"]["chunk_size"] = json!(4);
                },
                "chunk_size: Must be greater than or equal to 5",
            ),
            (
                ApiFlavor::V25_04,
                |t| {
                    t.insert("snapshot".into(), json!(true));
                    t.insert("direction".into(), json!("PULL"));
                },
                "cloud_sync_create.snapshot: This option can only be enabled for PUSH tasks",
            ),
            (
                ApiFlavor::V25_04,
                |t| {
                    t.insert("snapshot".into(), json!(true));
                    t.insert("transfer_mode".into(), json!("MOVE"));
                },
                "cloud_sync_create.snapshot: This option can not be used for MOVE transfer mode",
            ),
            (
                ApiFlavor::V25_04,
                |t| {
                    t.insert("snapshot".into(), json!(true));
                    t.insert("path".into(), json!("/mnt/pool1"));
                },
                "cloud_sync_create.snapshot: This option is only available for datasets that have no further nesting",
            ),
        ];
        for (flavor, edit, want) in cases {
            let mut t = task();
            edit(&mut t);
            let got = paths(&cloud_sync(&state(flavor), "cloud_sync_create", &mut t));
            assert!(
                got.iter().any(|g| g.starts_with(want)),
                "{flavor}: wanted {want}, got {got:?}"
            );
        }
    }

    #[test]
    fn credential_rules() {
        let s = state(ApiFlavor::V25_04);
        assert_eq!(
            paths(&credential(
                &s,
                "cloud_sync_credentials_create",
                "truenas-abc",
                "B2",
                &json!({}),
                None
            )),
            vec!["cloud_sync_credentials_create.name: Object with this name already exists"]
        );
        assert!(credential(&s, "x", "truenas-abc", "B2", &json!({}), Some(1)).is_empty());
        let s24 = state(ApiFlavor::V24_10);
        assert_eq!(
            paths(&credential(&s24, "c", "n", "B3", &json!({}), None)),
            vec!["c.provider: Invalid provider"]
        );
        assert_eq!(
            paths(&credential(
                &s24,
                "c",
                "n",
                "B2",
                &json!({"account": "a", "secret": "x"}),
                None
            )),
            vec![
                "c.attributes.key: attribute required",
                "c.attributes.secret: Field was not expected"
            ]
        );
    }

    #[test]
    fn snapshot_task_rules() {
        let s = state(ApiFlavor::V25_04);
        let d = |v: Value| -> Map<String, Value> { serde_json::from_value(v).unwrap() };
        let n = "periodic_snapshot_create";
        assert!(
            snapshot_task(&s, n, &d(json!({"dataset": "pool0", "recursive": true}))).is_empty()
        );
        assert_eq!(
            paths(&snapshot_task(&s, n, &d(json!({"dataset": "pool9"})))),
            vec![format!("{n}.dataset: Dataset not found")]
        );
        assert_eq!(
            paths(&snapshot_task(&s, n, &d(json!({"dataset": "boot-pool"})))),
            vec![format!("{n}.dataset: Dataset not found")]
        );
        assert_eq!(
            paths(&snapshot_task(
                &s,
                n,
                &d(json!({"dataset": "pool1", "exclude": ["pool1/media"]}))
            )),
            vec![format!(
                "{n}.exclude: Excluding datasets is not necessary for non-recursive periodic snapshot tasks"
            )]
        );
        assert_eq!(
            paths(&snapshot_task(
                &s,
                n,
                &d(json!({"dataset": "pool1", "recursive": true, "exclude": ["pool0/x"]}))
            )),
            vec![format!(
                "{n}.exclude.0: Excluded dataset should be a child or other descendant of the selected dataset"
            )]
        );
    }

    #[test]
    fn snmp_rules() {
        let m = |v: Value| -> Map<String, Value> { serde_json::from_value(v).unwrap() };
        assert_eq!(
            paths(&snmp(&m(json!({"v3": false, "community": ""})))),
            vec!["snmp_update.community: This field is required when SNMPv3 is disabled"]
        );
        assert_eq!(snmp(&m(json!({"v3": true, "community": ""}))).len(), 3);
        assert_eq!(
            paths(&snmp(&m(
                json!({"v3": true, "v3_username": "u", "v3_authtype": "SHA", "v3_password": "short", "v3_privproto": "AES", "v3_privpassphrase": null})
            ))),
            vec![
                "snmp_update.v3_password: Password must contain at least 8 characters",
                "snmp_update.v3_privpassphrase: This field is required when SNMPv3 private protocol is specified"
            ]
        );
        assert!(snmp(&m(json!({"v3": true, "v3_username": "u", "v3_authtype": "SHA", "v3_password": "longenough", "v3_privproto": "AES", "v3_privpassphrase": "p"}))).is_empty());
    }

    #[test]
    fn user_property_rules() {
        let m = |v: Value| -> Map<String, Value> { serde_json::from_value(v).unwrap() };
        let at = "pool_dataset_update";
        assert_eq!(
            paths(&dataset_user_properties(&m(
                json!({"user_properties_update": [{"key": "a:b", "value": "x", "remove": true}]})
            ))),
            vec![format!(
                "{at}.user_properties_update.0.remove: When \"value\" is specified, this cannot be set"
            )]
        );
        assert_eq!(
            paths(&dataset_user_properties(&m(
                json!({"user_properties_update": [{"key": "a:b"}]})
            ))),
            vec![format!(
                "{at}.user_properties_update.0.value: Either \"value\" or \"remove\" must be specified"
            )]
        );
        assert_eq!(
            paths(&dataset_user_properties(&m(
                json!({"user_properties_update": [{"key": "a:b", "value": "x"}], "user_properties": [{"key": "c:d", "value": "y"}]})
            ))),
            vec![format!(
                "{at}.user_properties_update: Should not be specified when \"user_properties\" are explicitly specified"
            )]
        );
        assert_eq!(
            paths(&dataset_user_properties(&m(
                json!({"user_properties_update": [{"key": "Com.X:Guid", "value": "x"}]})
            ))),
            vec![format!(
                "{at}.user_properties_update.0.key: 'Com.X:Guid' is not a valid ZFS user property name"
            )]
        );
        assert!(dataset_user_properties(&m(json!({"user_properties_update": [{"key": "com.dtctoday:device-guid", "value": "x"}, {"key": "a:b", "remove": true}]}))).is_empty());
    }

    #[test]
    fn init_script_rules() {
        let mut s = state(ApiFlavor::V25_04);
        s.files.push(crate::scenario::FileEntry {
            path: "/mnt/pool0/x.sh".into(),
            executable: true,
        });
        s.files.push(crate::scenario::FileEntry {
            path: "/mnt/pool0/y.sh".into(),
            executable: false,
        });
        let m = |v: Value| -> Map<String, Value> { serde_json::from_value(v).unwrap() };
        let n = "init_shutdown_script_create";
        assert_eq!(
            paths(&init_script(
                &s,
                n,
                &m(json!({"type": "COMMAND", "command": ""}))
            )),
            vec![format!("{n}.command: This field is required")]
        );
        assert_eq!(
            paths(&init_script(&s, n, &m(json!({"type": "SCRIPT"})))),
            vec![format!("{n}.script: This field is required")]
        );
        assert!(
            init_script(
                &s,
                n,
                &m(json!({"type": "SCRIPT", "script": "/mnt/pool0/x.sh"}))
            )
            .is_empty()
        );
        assert_eq!(
            paths(&init_script(
                &s,
                n,
                &m(json!({"type": "SCRIPT", "script": "/mnt/pool0/y.sh"}))
            )),
            vec![format!(
                "{n}.script: Script must have execute bit set for the user"
            )]
        );
        assert_eq!(
            paths(&init_script(
                &s,
                n,
                &m(json!({"type": "SCRIPT", "script": "/nonexistent/z.sh"}))
            )),
            vec![format!("{n}.script: Path /nonexistent/z.sh not found")]
        );
    }

    #[test]
    fn shell_split_like_python() {
        assert_eq!(
            shell_split("--a 'b c' \"d\\\"e\"").unwrap(),
            vec!["--a", "b c", "d\"e"]
        );
        assert_eq!(shell_split("").unwrap(), Vec::<String>::new());
        assert!(shell_split("x\\").is_err());
        assert!(shell_split("\"x").is_err());
    }
}
