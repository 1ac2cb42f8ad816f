//! Whole-document validation: wire types → [`DesiredState`] with the SOP defaults.
//!
//! Owns: every value rule of the v1 document and the defaults table of
//! central-protocol.md §3 (documented field by field in docs/configuration.md).
//! Does not: know the NAS (pools that exist, tasks, GUID on disk).
//! Invariants: all problems are collected before returning — nothing is decided on a
//! partly valid document; each problem is reported once, at the most precise path;
//! rule texts never contain a value taken from the document.
//! Limitations: checks that need the NAS (pool imported, dataset exists) happen in
//! `plan`.

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;

use super::derive::{self, CronField, HhMm};
use super::derive::{Cron, LifetimeUnit};
use super::error::{DesiredError, FieldError};
use super::model::{
    Action, ActionKind, Adopt, B2Key, BandwidthPlan, CloudSyncSettings, DesiredState, Device,
    Encryption, Mode, RemovedPools, SCHEMA_V1, SnapshotSettings, SnmpSettings,
};
use super::sop;
use super::wire::{self, IntRule};

const REQUIRED: &str = "required";
/// The middleware caps plain strings at 1024 characters (REFERENCE §5.1).
const MAX_STRING: usize = 1024;

/// Collected problems.
#[derive(Default)]
struct Problems(Vec<FieldError>);

impl Problems {
    fn add(&mut self, path: &str, rule: &str) {
        self.0.push(FieldError::new(path, rule));
    }

    fn required<T>(&mut self, path: &str, value: Option<T>) -> Option<T> {
        if value.is_none() {
            self.add(path, REQUIRED);
        }
        value
    }
}

/// Validates a parsed JSON document; `duplicates` are the paths of keys the document
/// repeats (see `json::parse`), each refused.
pub(super) fn validate(value: &Value, duplicates: &[String]) -> Result<DesiredState, DesiredError> {
    let mut sanitised = value.clone();
    let mut structural: Vec<FieldError> = duplicates
        .iter()
        .map(|path| {
            FieldError::new(
                path,
                "duplicate key: the document names this key more than once (JSON parsers \
                 disagree on which one counts); keep exactly one",
            )
        })
        .collect();
    wire::check_structure(&mut sanitised, &mut structural);
    let Ok(doc) = serde_json::from_value::<wire::Document>(sanitised) else {
        // Unreachable while SHAPE mirrors the serde types (a unit test checks it);
        // serde's own text is not shown because it can quote document values.
        structural.push(FieldError::new(
            "(document)",
            "structure not understood by this agent version",
        ));
        return Err(DesiredError::Invalid(structural));
    };
    let mut problems = Problems::default();
    let state = build(doc, &mut problems);
    let all = merge(structural, problems.0);
    match state {
        Some(state) if all.is_empty() => Ok(state),
        _ => Err(DesiredError::Invalid(all)),
    }
}

/// Structural problems first; value problems at or under an already reported path are
/// dropped (they are consequences of the same mistake).
fn merge(structural: Vec<FieldError>, values: Vec<FieldError>) -> Vec<FieldError> {
    let covered = |path: &str| {
        structural.iter().any(|s| {
            path == s.path
                || path.starts_with(&format!("{}.", s.path))
                || path.starts_with(&format!("{}[", s.path))
        })
    };
    let extra: Vec<FieldError> = values.into_iter().filter(|v| !covered(&v.path)).collect();
    let mut all = structural;
    all.extend(extra);
    all
}

fn build(doc: wire::Document, p: &mut Problems) -> Option<DesiredState> {
    check_schema(doc.schema.as_deref(), p);
    let revision = p
        .required("revision", doc.revision)
        .and_then(|r| in_range("revision", r, &wire::REVISION, p));
    let issued_at = doc.issued_at.as_deref().and_then(|t| issued_at(t, p));
    let mode = mode(doc.mode.as_deref(), p);
    let pools = doc.pools.map(|pools| pool_list(&pools, p));
    let device = device(doc.device, p);
    let bucket = device
        .as_ref()
        .map(|(_, bucket)| bucket.clone())
        .unwrap_or_default();
    let b2 = b2(doc.b2, p);
    let encryption = encryption(doc.encryption, p);
    let cloud_sync = cloud_sync(doc.cloud_sync.unwrap_or_default(), p);
    let snapshots = snapshots(doc.snapshots.unwrap_or_default(), pools.as_ref(), p);
    let snmp = doc.snmp.and_then(|s| snmp(s, p));
    let actions = actions(doc.actions.unwrap_or_default(), pools.as_ref(), p);
    let adopt = adopt(doc.adopt.unwrap_or_default(), p);
    let removed_pools = removed_pools(doc.removed_pools.as_deref(), p);
    Some(DesiredState {
        revision: revision?,
        issued_at,
        mode: mode?,
        device: device?.0,
        pools,
        bucket,
        b2: b2?,
        encryption: encryption?,
        cloud_sync: cloud_sync?,
        snapshots: snapshots?,
        snmp,
        actions,
        adopt,
        removed_pools: removed_pools?,
    })
}

/// `value` when `rule` allows it; else the rule is reported at `path`.
fn in_range(path: &str, value: u64, rule: &IntRule, p: &mut Problems) -> Option<u64> {
    if rule.allows(value) {
        Some(value)
    } else {
        p.add(path, &rule.text());
        None
    }
}

/// [`in_range`] for values the agent keeps as `u32` (every such rule's max fits).
fn in_range_u32(path: &str, value: u64, rule: &IntRule, p: &mut Problems) -> Option<u32> {
    in_range(path, value, rule, p).and_then(|v| u32::try_from(v).ok())
}

fn check_schema(schema: Option<&str>, p: &mut Problems) {
    match schema {
        None => p.add("schema", REQUIRED),
        Some(SCHEMA_V1) => {}
        Some(_) => p.add("schema", &format!("must be `{SCHEMA_V1}`")),
    }
}

fn issued_at(text: &str, p: &mut Problems) -> Option<DateTime<Utc>> {
    let parsed = DateTime::parse_from_rfc3339(text).ok();
    if parsed.is_none() {
        p.add(
            "issued_at",
            "expected an RFC 3339 timestamp like 2026-11-23T10:00:00Z",
        );
    }
    parsed.map(|at| at.with_timezone(&Utc))
}

fn mode(text: Option<&str>, p: &mut Problems) -> Option<Mode> {
    match text {
        None | Some("enforce") => Some(Mode::Enforce),
        Some("report-only") => Some(Mode::ReportOnly),
        Some(_) => {
            p.add("mode", "expected `enforce` or `report-only`");
            None
        }
    }
}

fn removed_pools(text: Option<&str>, p: &mut Problems) -> Option<RemovedPools> {
    match text {
        None | Some("disable") => Some(RemovedPools::Disable),
        Some("delete") => Some(RemovedPools::Delete),
        Some(_) => {
            p.add("removed_pools", "expected `disable` or `delete`");
            None
        }
    }
}

/// ZFS pool-name rules (zpool(8)): starts with a letter; letters, digits, `_ - . :`;
/// not a vdev keyword. Spaces (legal in ZFS) are refused: they would end up in task
/// paths and B2 folder names.
pub(crate) fn pool_name_problem(name: &str) -> Option<&'static str> {
    const RESERVED: [&str; 5] = ["mirror", "raidz", "draid", "spare", "log"];
    let first_ok = name.chars().next().is_some_and(|c| c.is_ascii_alphabetic());
    let rest_ok = name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "_-.:".contains(c));
    if name.is_empty() {
        Some("must not be empty")
    } else if name.len() > 255 {
        Some("pool names are at most 255 characters")
    } else if !first_ok || !rest_ok {
        Some("not a pool name (a letter, then letters, digits, `_`, `-`, `.` or `:`)")
    } else if RESERVED
        .iter()
        .any(|r| name == *r || (*r != "log" && name.starts_with(r)))
    {
        Some("reserved by ZFS (vdev keyword)")
    } else if name == "boot-pool" {
        Some("the boot pool is not backed up by the SOP")
    } else {
        None
    }
}

fn pool_list(pools: &[String], p: &mut Problems) -> Vec<String> {
    if pools.is_empty() {
        p.add(
            "pools",
            "must list at least one pool (omit the key for every imported pool)",
        );
    }
    let mut seen = BTreeSet::new();
    for (i, pool) in pools.iter().enumerate() {
        let path = format!("pools[{i}]");
        if let Some(rule) = pool_name_problem(pool) {
            p.add(&path, rule);
        } else if !seen.insert(pool.as_str()) {
            p.add(&path, "listed twice");
        }
    }
    pools.to_vec()
}

fn uuid_field(path: &str, text: &str, p: &mut Problems) -> Option<uuid::Uuid> {
    let parsed = derive::parse_uuid(text);
    match parsed {
        None => p.add(
            path,
            "not a UUID (expected 8-4-4-4-12 hexadecimal digits with dashes)",
        ),
        // The all-zero and all-one UUIDs are placeholders, not identities: every device
        // (or location) left at the default would share folders (or a bucket).
        Some(u) if u.is_nil() || u.is_max() => p.add(
            path,
            "the nil/max UUID is a placeholder, not an identity (SOP 3.2: a valid UUID from \
             NinjaOne)",
        ),
        Some(_) => {}
    }
    parsed.filter(|u| !u.is_nil() && !u.is_max())
}

/// `device.guid`: a random (version 4, RFC 4122 variant) UUID, as `uuidgen` makes it in
/// SOP 2.2 and as the agent itself generates one.
fn device_guid(text: &str, p: &mut Problems) -> Option<uuid::Uuid> {
    const PATH: &str = "device.guid";
    let guid = uuid_field(PATH, text, p)?;
    if guid.get_version() == Some(uuid::Version::Random)
        && guid.get_variant() == uuid::Variant::RFC4122
    {
        Some(guid)
    } else {
        p.add(
            PATH,
            "must be a random UUIDv4 (SOP 2.2 `uuidgen`): the 13th hex digit is 4 and the 17th \
             is 8, 9, a or b",
        );
        None
    }
}

fn device(device: Option<wire::Device>, p: &mut Problems) -> Option<(Device, String)> {
    let Some(device) = device else {
        p.add("device", REQUIRED);
        return None;
    };
    let guid = device.guid.as_deref().map(|g| device_guid(g, p));
    let org_uuid = device
        .org_uuid
        .as_deref()
        .map(|o| uuid_field("device.org_uuid", o, p));
    let location_text = p.required("device.location_uuid", device.location_uuid);
    let location_uuid = location_text
        .as_deref()
        .and_then(|l| uuid_field("device.location_uuid", l, p));
    let bucket = location_text.as_deref().map(derive::bucket_name);
    if let Some(bucket) = &bucket {
        for rule in derive::bucket_name_problems(bucket) {
            p.add("device.location_uuid", &rule);
        }
    }
    if let Some(name) = &device.location_name {
        if name.chars().count() > 255 {
            p.add("device.location_name", "at most 255 characters");
        }
    }
    if let Some(root) = &device.root_pool {
        if let Some(rule) = pool_name_problem(root) {
            p.add("device.root_pool", rule);
        }
    }
    // A malformed optional UUID is an error (reported above), not "absent".
    let (Some(guid), Some(org_uuid)) = (
        guid.map_or(Some(None), |g| g.map(Some)),
        org_uuid.map_or(Some(None), |o| o.map(Some)),
    ) else {
        return None;
    };
    let device = Device {
        guid,
        org_uuid,
        location_uuid: location_uuid?,
        location_name: device.location_name,
        root_pool: device.root_pool,
    };
    Some((device, bucket?))
}

fn secret(path: &str, value: Option<SecretString>, p: &mut Problems) -> Option<SecretString> {
    let value = p.required(path, value)?;
    let len = value.expose_secret().chars().count();
    if len == 0 {
        p.add(path, "must not be empty");
        return None;
    }
    if len > MAX_STRING {
        p.add(path, &format!("at most {MAX_STRING} characters"));
        return None;
    }
    Some(value)
}

fn b2(b2: Option<wire::B2>, p: &mut Problems) -> Option<B2Key> {
    let Some(b2) = b2 else {
        p.add("b2", REQUIRED);
        return None;
    };
    let key_id = p.required("b2.key_id", b2.key_id);
    if let Some(id) = &key_id {
        if id.is_empty() || id.len() > MAX_STRING || id.chars().any(char::is_whitespace) {
            p.add(
                "b2.key_id",
                "must be a non-empty key ID without spaces (SOP 4.3 `keyId`)",
            );
        }
    }
    let application_key = secret("b2.application_key", b2.application_key, p);
    Some(B2Key {
        key_id: key_id?,
        application_key: application_key?,
    })
}

fn encryption(enc: Option<wire::Encryption>, p: &mut Problems) -> Option<Encryption> {
    let Some(enc) = enc else {
        p.add("encryption", REQUIRED);
        return None;
    };
    let password = secret("encryption.password", enc.password, p);
    let salt = secret("encryption.salt", enc.salt, p);
    Some(Encryption {
        password: password?,
        salt: salt?,
        allow_rekey: enc.allow_rekey.unwrap_or(false),
    })
}

fn schedule(
    path: &str,
    wire: Option<wire::Schedule>,
    default: &str,
    p: &mut Problems,
) -> Option<Cron> {
    let texts: [String; 5] = match wire {
        None => {
            #[allow(
                clippy::expect_used,
                reason = "invariant: the SOP default cron lines are five-field literals (unit-tested)"
            )]
            let fields = derive::split_cron_line(default).expect("invariant: defaults are valid");
            fields.map(str::to_owned)
        }
        Some(wire::Schedule::Line(line)) => {
            let Some(fields) = derive::split_cron_line(&line) else {
                p.add(
                    path,
                    "expected five cron fields \"minute hour day-of-month month day-of-week\"",
                );
                return None;
            };
            fields.map(str::to_owned)
        }
        Some(wire::Schedule::Fields(f)) => {
            let mut take = |key: &str, v: Option<String>| {
                p.required(&format!("{path}.{key}"), v).unwrap_or_default()
            };
            [
                take("minute", f.minute),
                take("hour", f.hour),
                take("dom", f.dom),
                take("month", f.month),
                take("dow", f.dow),
            ]
        }
    };
    let mut ok = true;
    for (field, text) in CronField::ALL.iter().zip(&texts) {
        if text.is_empty() {
            ok = false; // already reported as required, or an empty string
            continue;
        }
        if let Err(rule) = derive::check_cron_field(*field, text) {
            p.add(&format!("{path}.{}", field.key()), &rule);
            ok = false;
        }
    }
    let [minute, hour, dom, month, dow] = &texts;
    ok.then(|| Cron::from_fields(minute, hour, dom, month, dow))
}

fn time(path: &str, text: Option<&str>, default: &str, p: &mut Problems) -> Option<HhMm> {
    let text = text.unwrap_or(default);
    let parsed = HhMm::parse(text);
    if parsed.is_none() {
        p.add(
            path,
            "expected HH:MM (zero-padded 24-hour time, 00:00-23:59)",
        );
    }
    parsed
}

fn percent(path: &str, value: Option<u64>, default: u8, p: &mut Problems) -> Option<u8> {
    match value {
        None => Some(default),
        Some(v) => in_range(path, v, &wire::PERCENT, p).and_then(|v| u8::try_from(v).ok()),
    }
}

fn bandwidth(bw: wire::Bandwidth, p: &mut Problems) -> Option<BandwidthPlan> {
    const PATH: &str = "cloud_sync.bandwidth";
    let uplink = p.required(&format!("{PATH}.uplink_mbps"), bw.uplink_mbps);
    // Whole kilobits per second keep the arithmetic exact (the document may say 2.5).
    let kbps = uplink.and_then(|mbps| {
        let kbps = (mbps * 1000.0).round();
        // The stated rule exactly (0.0005 would round to 1 kbit/s but is below it).
        if (0.001..=100_000.0).contains(&mbps) && kbps >= 1.0 {
            #[expect(
                clippy::cast_possible_truncation,
                clippy::cast_sign_loss,
                reason = "checked: 1 ≤ kbps ≤ 1e8"
            )]
            Some(kbps as u64)
        } else {
            p.add(&format!("{PATH}.uplink_mbps"), wire::UPLINK_MBPS);
            None
        }
    });
    let hours = bw.business_hours.unwrap_or_default();
    let start = time(
        &format!("{PATH}.business_hours.start"),
        hours.start.as_deref(),
        sop::BUSINESS_START,
        p,
    );
    let end = time(
        &format!("{PATH}.business_hours.end"),
        hours.end.as_deref(),
        sop::BUSINESS_END,
        p,
    );
    if let (Some(s), Some(e)) = (start, end) {
        if s == e {
            p.add(
                &format!("{PATH}.business_hours.end"),
                "must differ from start (the window would be empty)",
            );
            return None;
        }
    }
    let business = percent(
        &format!("{PATH}.business_percent"),
        bw.business_percent,
        sop::BUSINESS_PERCENT,
        p,
    );
    let off = percent(
        &format!("{PATH}.off_hours_percent"),
        bw.off_hours_percent,
        sop::OFF_HOURS_PERCENT,
        p,
    );
    Some(BandwidthPlan {
        uplink_kbps: kbps?,
        business_start: start?,
        business_end: end?,
        business_percent: business?,
        off_hours_percent: off?,
    })
}

fn rclone_excludes(path: &str, items: &[String], p: &mut Problems) {
    let mut seen = BTreeSet::new();
    for (i, item) in items.iter().enumerate() {
        let at = format!("{path}[{i}]");
        if item.is_empty() || item.len() > MAX_STRING {
            p.add(&at, "must be a non-empty rclone filter pattern");
        } else if item.contains(['\n', '\r']) {
            p.add(&at, "one pattern per list entry (no line breaks)");
        } else if !seen.insert(item.as_str()) {
            p.add(&at, "listed twice");
        }
    }
}

fn cloud_sync(cs: wire::CloudSync, p: &mut Problems) -> Option<CloudSyncSettings> {
    let schedule = schedule("cloud_sync.schedule", cs.schedule, sop::CLOUD_SCHEDULE, p);
    let exclude = cs
        .exclude
        .unwrap_or_else(|| sop::EXCLUDE.map(str::to_owned).to_vec());
    rclone_excludes("cloud_sync.exclude", &exclude, p);
    let chunk = match cs.chunk_size_mib {
        None => Some(sop::CHUNK_SIZE_MIB),
        Some(n) => in_range_u32("cloud_sync.chunk_size_mib", n, &wire::CHUNK_SIZE_MIB, p),
    };
    let transfers = match cs.transfers {
        None => Some(None),
        Some(n) => in_range_u32("cloud_sync.transfers", n, &wire::TRANSFERS, p).map(Some),
    };
    let bandwidth = match cs.bandwidth {
        None => Some(None),
        Some(bw) => bandwidth(bw, p).map(Some),
    };
    Some(CloudSyncSettings {
        schedule: schedule?,
        exclude,
        chunk_size_mib: chunk?,
        fast_list: cs.fast_list.unwrap_or(sop::FAST_LIST),
        transfers: transfers?,
        filename_encryption: cs.filename_encryption.unwrap_or(sop::FILENAME_ENCRYPTION),
        enabled: cs.enabled.unwrap_or(true),
        follow_symlinks: cs.follow_symlinks.unwrap_or(false),
        take_snapshot: cs.take_snapshot.unwrap_or(sop::TAKE_SNAPSHOT),
        bwlimit: bandwidth
            .flatten()
            .map_or_else(Vec::new, |plan| plan.timetable()),
        bandwidth: bandwidth?,
    })
}

fn snapshots(
    s: wire::Snapshots,
    pools: Option<&Vec<String>>,
    p: &mut Problems,
) -> Option<SnapshotSettings> {
    let schedule = schedule("snapshots.schedule", s.schedule, sop::SNAPSHOT_SCHEDULE, p);
    let begin = time(
        "snapshots.begin",
        s.begin.as_deref(),
        sop::SNAPSHOT_BEGIN,
        p,
    );
    let end = time("snapshots.end", s.end.as_deref(), sop::SNAPSHOT_END, p);
    if let (Some(b), Some(e)) = (begin, end) {
        // 24.10 refuses begin > end; 25.04+ accept it and the task then errors.
        if b > e {
            p.add("snapshots.end", "must not be earlier than begin");
        }
    }
    let lifetime_value = match s.lifetime_value {
        None => Some(sop::LIFETIME_VALUE),
        Some(n) => in_range_u32("snapshots.lifetime_value", n, &wire::LIFETIME_VALUE, p),
    };
    let lifetime_unit = match s.lifetime_unit.as_deref() {
        None => Some(sop::LIFETIME_UNIT),
        Some(text) => {
            let unit = LifetimeUnit::parse(text);
            if unit.is_none() {
                p.add(
                    "snapshots.lifetime_unit",
                    "expected HOUR, DAY, WEEK, MONTH or YEAR",
                );
            }
            unit
        }
    };
    let naming_schema = s
        .naming_schema
        .unwrap_or_else(|| sop::NAMING_SCHEMA.to_owned());
    for rule in derive::naming_schema_problems(&naming_schema) {
        p.add("snapshots.naming_schema", &rule);
    }
    let recursive = s.recursive.unwrap_or(sop::RECURSIVE);
    let exclude = s.exclude.unwrap_or_default();
    snapshot_excludes(&exclude, recursive, pools, p);
    Some(SnapshotSettings {
        schedule: schedule?,
        begin: begin?,
        end: end?,
        lifetime_value: lifetime_value?,
        lifetime_unit: lifetime_unit?,
        naming_schema,
        recursive,
        exclude,
        allow_empty: s.allow_empty.unwrap_or(false),
        enabled: s.enabled.unwrap_or(true),
    })
}

fn snapshot_excludes(
    exclude: &[String],
    recursive: bool,
    pools: Option<&Vec<String>>,
    p: &mut Problems,
) {
    if !exclude.is_empty() && !recursive {
        p.add(
            "snapshots.exclude",
            "only allowed when recursive is true (middleware rule)",
        );
    }
    let mut seen = BTreeSet::new();
    for (i, item) in exclude.iter().enumerate() {
        let at = format!("snapshots.exclude[{i}]");
        let pool = item.split('/').next().unwrap_or_default();
        let well_formed = item.contains('/')
            && !item.ends_with('/')
            && !item.contains("//")
            && !item.contains(['@', ' ', '\n']);
        if !well_formed {
            p.add(&at, "expected a child dataset name like `pool0/scratch`");
        } else if pools.is_some_and(|pools| !pools.iter().any(|x| x == pool)) {
            p.add(&at, "must be a dataset of a pool listed in `pools`");
        } else if !seen.insert(item.as_str()) {
            p.add(&at, "listed twice");
        }
    }
}

/// The middleware caps `v3_username` at 20 characters (25.04+ models
/// `Field(max_length=20)`; 24.10's legacy entry `Str('v3_username', max_length=20)` and its
/// database column `String(20)`, `plugins/snmp.py`).
const SNMP_USERNAME_MAX: usize = 20;

fn snmp(s: wire::Snmp, p: &mut Problems) -> Option<SnmpSettings> {
    let username = p.required("snmp.username", s.username);
    if let Some(name) = &username {
        let len = name.chars().count();
        let ok_chars = name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c));
        if len == 0 || len > SNMP_USERNAME_MAX {
            p.add(
                "snmp.username",
                &format!(
                    "must be 1 to {SNMP_USERNAME_MAX} characters (the middleware's limit for \
                     v3_username)"
                ),
            );
        }
        if !ok_chars {
            // Also keeps out the space, `"` and `\` that break the `createUser` line the
            // middleware writes for snmpd (REFERENCE §8 row 4).
            p.add(
                "snmp.username",
                "only letters, digits, `_`, `.` and `-` (no spaces, quotes, backslashes or \
                 control characters: snmpd would never create the user)",
            );
        }
    }
    let auth = snmp_secret("snmp.auth_password", s.auth_password, p);
    let privacy = snmp_secret("snmp.privacy_passphrase", s.privacy_passphrase, p);
    Some(SnmpSettings {
        username: username?,
        auth_password: auth?,
        privacy_passphrase: privacy?,
    })
}

/// A character the middleware would write into snmpd's `createUser` line in a way
/// snmpd cannot read back: the line is `createUser USER SHA "PASSWORD" AES "PASSPHRASE"`,
/// written unescaped (`plugins/snmp_/utils_snmp_user.py` `add_snmp_user`), so a `"` ends
/// the quoted value early, a `\` is snmpd's escape character (the stored secret would
/// differ from the configured one), a line break or other control character splits or
/// corrupts the line, and whitespace is refused too (SOP 1.1 generates secrets from the
/// printable characters 33–126, none of which is whitespace; a secret with spaces cannot
/// be pasted reliably into NinjaOne).
fn snmpd_unsafe(c: char) -> bool {
    c == '"' || c == '\\' || c.is_whitespace() || c.is_control()
}

fn snmp_secret(path: &str, value: Option<SecretString>, p: &mut Problems) -> Option<SecretString> {
    let value = secret(path, value, p)?;
    let text = value.expose_secret();
    let mut ok = true;
    // The middleware requires ≥ 8 for the auth password; net-snmp needs the same for the
    // privacy passphrase or snmpd refuses the user.
    if text.chars().count() < 8 {
        p.add(path, "must be at least 8 characters");
        ok = false;
    }
    if text.chars().any(snmpd_unsafe) {
        p.add(
            path,
            "must not contain `\"`, `\\`, whitespace or control characters: the middleware \
             writes it unescaped into snmpd's createUser line and snmpd would never create the \
             user",
        );
        ok = false;
    }
    ok.then_some(value)
}

fn actions(items: Vec<wire::Action>, pools: Option<&Vec<String>>, p: &mut Problems) -> Vec<Action> {
    let mut out = Vec::new();
    let mut ids = BTreeSet::new();
    for (i, a) in items.into_iter().enumerate() {
        let at = |k: &str| format!("actions[{i}].{k}");
        let id = p.required(&at("id"), a.id);
        if let Some(id) = &id {
            if id.is_empty() || id.len() > 128 || id.chars().any(char::is_control) {
                p.add(&at("id"), "must be 1 to 128 printable characters");
            } else if !ids.insert(id.clone()) {
                p.add(&at("id"), "duplicate action id");
            }
        }
        let kind = match p.required(&at("type"), a.kind).as_deref() {
            Some("run_cloud_sync") | None => true,
            Some(_) => {
                p.add(
                    &at("type"),
                    "unknown action type (v1 knows `run_cloud_sync`)",
                );
                false
            }
        };
        let pool = p.required(&at("pool"), a.pool);
        if let Some(pool) = &pool {
            if let Some(rule) = pool_name_problem(pool) {
                p.add(&at("pool"), rule);
            } else if pools.is_some_and(|pools| !pools.contains(pool)) {
                p.add(&at("pool"), "must be one of the pools listed in `pools`");
            }
        }
        if let (Some(id), Some(pool), true) = (id, pool, kind) {
            out.push(Action {
                id,
                kind: ActionKind::RunCloudSync { pool },
            });
        }
    }
    out
}

fn ids(path: &str, ids: &[u64], p: &mut Problems) {
    let mut seen = BTreeSet::new();
    for (i, id) in ids.iter().enumerate() {
        let at = format!("{path}[{i}]");
        if in_range(&at, *id, &wire::OBJECT_ID, p).is_some() && !seen.insert(id) {
            p.add(&at, "listed twice");
        }
    }
}

fn adopt(a: wire::Adopt, p: &mut Problems) -> Adopt {
    if let Some(id) = a.credential {
        in_range("adopt.credential", id, &wire::OBJECT_ID, p);
    }
    let cloud_sync = a.cloud_sync.unwrap_or_default();
    let snapshots = a.snapshots.unwrap_or_default();
    ids("adopt.cloud_sync", &cloud_sync, p);
    ids("adopt.snapshots", &snapshots, p);
    Adopt {
        credential: a.credential,
        cloud_sync,
        snapshots,
    }
}
