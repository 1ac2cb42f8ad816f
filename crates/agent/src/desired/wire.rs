//! The v1 document exactly as it travels (central-protocol.md §3), as serde types.
//!
//! Owns: the field names and JSON types of every key, the range of every number
//! ([`IntRule`]: one text per key, used for wrong types and out-of-range values alike, so
//! a message always states the key's real rule), and the structural check
//! ([`check_structure`]) that reports every unknown key and every wrong JSON type with
//! its path in one pass — serde alone stops at the first problem.
//! Does not: apply defaults or judge values (that is `validate`).
//! Invariants: every struct is `deny_unknown_fields`; every field is optional here so
//! a missing key is reported by `validate` together with everything else; [`SHAPE`]
//! lists exactly the serde fields (a test parses a document built from the shape);
//! secret fields deserialize straight into `SecretString` and no error text here ever
//! contains a value from the document.
//! Limitations: `null` is accepted wherever a key is optional and means "absent".

use secrecy::SecretString;
use serde::Deserialize;
use serde_json::Value;

use super::error::FieldError;

/// The document's top level.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Document {
    pub schema: Option<String>,
    pub revision: Option<u64>,
    pub issued_at: Option<String>,
    pub mode: Option<String>,
    pub device: Option<Device>,
    pub pools: Option<Vec<String>>,
    pub b2: Option<B2>,
    pub encryption: Option<Encryption>,
    pub cloud_sync: Option<CloudSync>,
    pub snapshots: Option<Snapshots>,
    pub snmp: Option<Snmp>,
    pub actions: Option<Vec<Action>>,
    /// v1 extension: existing objects the agent may take over.
    pub adopt: Option<Adopt>,
    /// v1 extension: what happens to the tasks of pools no longer listed.
    pub removed_pools: Option<String>,
}

/// `device`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Device {
    pub guid: Option<String>,
    pub org_uuid: Option<String>,
    pub location_uuid: Option<String>,
    pub location_name: Option<String>,
    pub root_pool: Option<String>,
}

/// `b2`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct B2 {
    pub key_id: Option<String>,
    pub application_key: Option<SecretString>,
}

/// `encryption`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Encryption {
    pub password: Option<SecretString>,
    pub salt: Option<SecretString>,
    pub allow_rekey: Option<bool>,
}

/// `cloud_sync`: per-setting overrides of the SOP defaults.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct CloudSync {
    pub bandwidth: Option<Bandwidth>,
    pub schedule: Option<Schedule>,
    pub exclude: Option<Vec<String>>,
    pub chunk_size_mib: Option<u64>,
    pub fast_list: Option<bool>,
    pub transfers: Option<u64>,
    pub filename_encryption: Option<bool>,
    pub enabled: Option<bool>,
    pub follow_symlinks: Option<bool>,
    pub take_snapshot: Option<bool>,
}

/// `cloud_sync.bandwidth`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Bandwidth {
    pub uplink_mbps: Option<f64>,
    pub business_hours: Option<BusinessHours>,
    pub business_percent: Option<u64>,
    pub off_hours_percent: Option<u64>,
}

/// `cloud_sync.bandwidth.business_hours`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct BusinessHours {
    pub start: Option<String>,
    pub end: Option<String>,
}

/// A schedule: a crontab line (`"0 0 * * *"`) or the middleware's field object.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub(crate) enum Schedule {
    Line(String),
    Fields(CronFields),
}

/// `{minute, hour, dom, month, dow}`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct CronFields {
    pub minute: Option<String>,
    pub hour: Option<String>,
    pub dom: Option<String>,
    pub month: Option<String>,
    pub dow: Option<String>,
}

/// `snapshots`: per-setting overrides of the SOP defaults.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Snapshots {
    pub schedule: Option<Schedule>,
    pub begin: Option<String>,
    pub end: Option<String>,
    pub lifetime_value: Option<u64>,
    pub lifetime_unit: Option<String>,
    pub naming_schema: Option<String>,
    pub recursive: Option<bool>,
    pub exclude: Option<Vec<String>>,
    pub allow_empty: Option<bool>,
    pub enabled: Option<bool>,
}

/// `snmp`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Snmp {
    pub username: Option<String>,
    pub auth_password: Option<SecretString>,
    pub privacy_passphrase: Option<SecretString>,
}

/// One entry of `actions`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Action {
    pub id: Option<String>,
    #[serde(rename = "type")]
    pub kind: Option<String>,
    pub pool: Option<String>,
}

/// `adopt` (v1 extension): ids of existing middleware objects to take over.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Adopt {
    pub credential: Option<u64>,
    pub cloud_sync: Option<Vec<u64>>,
    pub snapshots: Option<Vec<u64>>,
}

/// The allowed range of a whole-number key, and how its rule reads in messages.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct IntRule {
    pub min: u64,
    pub max: u64,
    /// What the number is, e.g. `a whole percentage`.
    pub what: &'static str,
    /// Why the range is what it is (may be empty), e.g. ` (5 MiB is B2's smallest part)`.
    pub why: &'static str,
}

impl IntRule {
    /// The rule as a message: `must be a whole percentage from 1 to 100`.
    pub(crate) fn text(&self) -> String {
        format!(
            "must be {} from {} to {}{}",
            self.what, self.min, self.max, self.why
        )
    }

    /// True when `value` is in range.
    pub(crate) fn allows(&self, value: u64) -> bool {
        (self.min..=self.max).contains(&value)
    }
}

/// The largest integer every JSON implementation reads exactly (JavaScript's
/// `Number.MAX_SAFE_INTEGER`, 2^53 − 1): `2^53 + 1` already reads back as `2^53`.
pub(crate) const MAX_SAFE_INTEGER: u64 = (1 << 53) - 1;

/// `revision` (central-protocol.md §3: an integer ≥ 1 that strictly increases). The
/// ceiling keeps it exact in every JSON implementation and leaves room to go on: a
/// revision at `u64::MAX` would make every later document a rollback.
pub(crate) const REVISION: IntRule = IntRule {
    min: 1,
    max: MAX_SAFE_INTEGER,
    what: "a whole number",
    why: " (2^53 − 1, the largest integer every JSON implementation reads exactly)",
};
/// `cloud_sync.bandwidth.business_percent` / `off_hours_percent`.
pub(crate) const PERCENT: IntRule = IntRule {
    min: 1,
    max: 100,
    what: "a whole percentage",
    why: "",
};
/// `cloud_sync.chunk_size_mib` (B2 refuses parts under 5 MiB; the middleware checks ≥ 5).
pub(crate) const CHUNK_SIZE_MIB: IntRule = IntRule {
    min: 5,
    max: 4096,
    what: "a whole number of MiB",
    why: " (5 MiB is B2's smallest part)",
};
/// `cloud_sync.transfers` (the middleware wants > 0; more than 128 parallel transfers
/// only exhausts the box's memory with 96 MiB chunks).
pub(crate) const TRANSFERS: IntRule = IntRule {
    min: 1,
    max: 128,
    what: "a whole number",
    why: "",
};
/// `snapshots.lifetime_value`.
pub(crate) const LIFETIME_VALUE: IntRule = IntRule {
    min: 1,
    max: 100_000,
    what: "a whole number",
    why: "",
};
/// Middleware object ids in `adopt` (ids start at 1).
pub(crate) const OBJECT_ID: IntRule = IntRule {
    min: 1,
    max: MAX_SAFE_INTEGER,
    what: "an id",
    why: "",
};
/// `cloud_sync.bandwidth.uplink_mbps`.
pub(crate) const UPLINK_MBPS: &str = "must be an upload speed in Mbit/s from 0.001 to 100000";

/// JSON type a key must have.
#[derive(Debug)]
pub(crate) enum Kind {
    Str,
    /// Whole number in a range.
    UInt(&'static IntRule),
    /// Any number; the rule's text.
    Number(&'static str),
    Bool,
    Obj(&'static [(&'static str, Kind)]),
    List(&'static Kind),
    /// A string or an object with these keys (schedules).
    StrOrObj(&'static [(&'static str, Kind)]),
}

const CRON_FIELDS: &[(&str, Kind)] = &[
    ("minute", Kind::Str),
    ("hour", Kind::Str),
    ("dom", Kind::Str),
    ("month", Kind::Str),
    ("dow", Kind::Str),
];

/// The document's structure: every key and its JSON type, mirroring the serde types.
pub(crate) const SHAPE: Kind = Kind::Obj(&[
    ("schema", Kind::Str),
    ("revision", Kind::UInt(&REVISION)),
    ("issued_at", Kind::Str),
    ("mode", Kind::Str),
    (
        "device",
        Kind::Obj(&[
            ("guid", Kind::Str),
            ("org_uuid", Kind::Str),
            ("location_uuid", Kind::Str),
            ("location_name", Kind::Str),
            ("root_pool", Kind::Str),
        ]),
    ),
    ("pools", Kind::List(&Kind::Str)),
    (
        "b2",
        Kind::Obj(&[("key_id", Kind::Str), ("application_key", Kind::Str)]),
    ),
    (
        "encryption",
        Kind::Obj(&[
            ("password", Kind::Str),
            ("salt", Kind::Str),
            ("allow_rekey", Kind::Bool),
        ]),
    ),
    (
        "cloud_sync",
        Kind::Obj(&[
            (
                "bandwidth",
                Kind::Obj(&[
                    ("uplink_mbps", Kind::Number(UPLINK_MBPS)),
                    (
                        "business_hours",
                        Kind::Obj(&[("start", Kind::Str), ("end", Kind::Str)]),
                    ),
                    ("business_percent", Kind::UInt(&PERCENT)),
                    ("off_hours_percent", Kind::UInt(&PERCENT)),
                ]),
            ),
            ("schedule", Kind::StrOrObj(CRON_FIELDS)),
            ("exclude", Kind::List(&Kind::Str)),
            ("chunk_size_mib", Kind::UInt(&CHUNK_SIZE_MIB)),
            ("fast_list", Kind::Bool),
            ("transfers", Kind::UInt(&TRANSFERS)),
            ("filename_encryption", Kind::Bool),
            ("enabled", Kind::Bool),
            ("follow_symlinks", Kind::Bool),
            ("take_snapshot", Kind::Bool),
        ]),
    ),
    (
        "snapshots",
        Kind::Obj(&[
            ("schedule", Kind::StrOrObj(CRON_FIELDS)),
            ("begin", Kind::Str),
            ("end", Kind::Str),
            ("lifetime_value", Kind::UInt(&LIFETIME_VALUE)),
            ("lifetime_unit", Kind::Str),
            ("naming_schema", Kind::Str),
            ("recursive", Kind::Bool),
            ("exclude", Kind::List(&Kind::Str)),
            ("allow_empty", Kind::Bool),
            ("enabled", Kind::Bool),
        ]),
    ),
    (
        "snmp",
        Kind::Obj(&[
            ("username", Kind::Str),
            ("auth_password", Kind::Str),
            ("privacy_passphrase", Kind::Str),
        ]),
    ),
    (
        "actions",
        Kind::List(&Kind::Obj(&[
            ("id", Kind::Str),
            ("type", Kind::Str),
            ("pool", Kind::Str),
        ])),
    ),
    (
        "adopt",
        Kind::Obj(&[
            ("credential", Kind::UInt(&OBJECT_ID)),
            ("cloud_sync", Kind::List(&Kind::UInt(&OBJECT_ID))),
            ("snapshots", Kind::List(&Kind::UInt(&OBJECT_ID))),
        ]),
    ),
    ("removed_pools", Kind::Str),
]);

/// Reports every unknown key and wrong JSON type under `value`, with paths, and
/// sanitises `value` so serde can parse the rest: unknown keys are removed and a value
/// of the wrong type is replaced by an empty one of the right type. `validate` then
/// drops its own findings at or under a path reported here, so each problem is listed
/// once.
pub(crate) fn check_structure(value: &mut Value, errors: &mut Vec<FieldError>) {
    if value.is_null() {
        // `null` is "absent" for keys, but the document itself must be an object.
        errors.push(FieldError::new(display_path(""), "expected an object"));
        *value = empty_of(&SHAPE);
    }
    check(value, &SHAPE, "", errors);
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_owned()
    } else {
        format!("{path}.{key}")
    }
}

fn check(value: &mut Value, kind: &Kind, path: &str, errors: &mut Vec<FieldError>) {
    let rule = match (kind, &*value) {
        // `null` means "absent" for every optional key; `validate` reports required ones.
        (_, Value::Null)
        | (Kind::Str | Kind::StrOrObj(_), Value::String(_))
        | (Kind::Bool, Value::Bool(_))
        | (Kind::Number(_), Value::Number(_)) => None,
        (Kind::UInt(_), Value::Number(n)) if n.is_u64() => None,
        (Kind::Obj(fields) | Kind::StrOrObj(fields), Value::Object(_)) => {
            check_object(value, fields, path, errors);
            None
        }
        (Kind::List(item_kind), Value::Array(_)) => {
            if let Value::Array(items) = value {
                for (i, item) in items.iter_mut().enumerate() {
                    check(item, item_kind, &format!("{path}[{i}]"), errors);
                }
            }
            None
        }
        (Kind::UInt(rule), _) => Some(format!("{} (got {})", rule.text(), shown(value))),
        (Kind::Number(rule), _) => Some(format!("{rule} (got {})", shown(value))),
        (Kind::Str, _) => Some("expected a string".to_owned()),
        (Kind::Bool, _) => Some("expected true or false".to_owned()),
        (Kind::StrOrObj(_), _) => {
            Some("expected a crontab line like \"0 0 * * *\" or an object".to_owned())
        }
        (Kind::Obj(_), _) => Some("expected an object".to_owned()),
        (Kind::List(_), _) => Some("expected a list".to_owned()),
    };
    if let Some(rule) = rule {
        errors.push(FieldError::new(display_path(path), &rule));
        *value = empty_of(kind);
    }
}

/// What kind of value was found, without showing it (documents hold secrets).
pub(crate) fn shown(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "true or false",
        Value::Number(n) if n.is_u64() => "a whole number",
        Value::Number(n) if n.is_i64() => "a negative number",
        Value::Number(n) => match n.as_f64() {
            Some(f) if f.fract() != 0.0 => "a fractional number",
            Some(f) if f < 0.0 => "a negative number",
            _ => "a number too large for a whole number",
        },
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

fn check_object(
    value: &mut Value,
    fields: &[(&str, Kind)],
    path: &str,
    errors: &mut Vec<FieldError>,
) {
    let Value::Object(map) = value else { return };
    let unknown: Vec<String> = map
        .keys()
        .filter(|key| !fields.iter().any(|(name, _)| name == key))
        .cloned()
        .collect();
    for key in unknown {
        map.remove(&key);
        errors.push(FieldError::new(
            &join(path, &key),
            &format!("unknown key (expected one of: {})", names(fields)),
        ));
    }
    for (key, item) in map.iter_mut() {
        if let Some((_, child)) = fields.iter().find(|(name, _)| name == key) {
            check(item, child, &join(path, key), errors);
        }
    }
}

/// A well-typed stand-in for a value of the wrong type.
fn empty_of(kind: &Kind) -> Value {
    match kind {
        Kind::Str => Value::String(String::new()),
        Kind::UInt(_) | Kind::Number(_) => Value::from(0),
        Kind::Bool => Value::Bool(false),
        Kind::Obj(_) | Kind::StrOrObj(_) => Value::Object(serde_json::Map::new()),
        Kind::List(_) => Value::Array(Vec::new()),
    }
}

fn display_path(path: &str) -> &str {
    if path.is_empty() { "(document)" } else { path }
}

fn names(fields: &[(&str, Kind)]) -> String {
    fields
        .iter()
        .map(|(name, _)| *name)
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// A value of `kind` with every key present.
    fn sample(kind: &Kind) -> Value {
        match kind {
            Kind::Str => json!("x"),
            Kind::UInt(_) => json!(1),
            Kind::Number(_) => json!(1.5),
            Kind::Bool => json!(true),
            Kind::Obj(fields) | Kind::StrOrObj(fields) => Value::Object(
                fields
                    .iter()
                    .map(|(name, child)| ((*name).to_owned(), sample(child)))
                    .collect(),
            ),
            Kind::List(item) => json!([sample(item)]),
        }
    }

    #[test]
    fn shape_and_serde_agree_on_every_key() {
        let mut full = sample(&SHAPE);
        let mut errors = Vec::new();
        check_structure(&mut full, &mut errors);
        assert!(errors.is_empty(), "{errors:?}");
        // serde accepts every key the shape lists (deny_unknown_fields would refuse
        // one the serde types lack).
        let doc: Document = serde_json::from_value(full).expect("serde accepts the shape");
        assert!(doc.adopt.unwrap().snapshots.is_some());
        // Schedules also parse as crontab lines.
        let line: Schedule = serde_json::from_value(json!("0 0 * * *")).unwrap();
        assert!(matches!(line, Schedule::Line(_)));
    }

    #[test]
    fn serde_refuses_unknown_keys_at_every_level() {
        fn objects(kind: &Kind, path: &mut Vec<String>, out: &mut Vec<Vec<String>>) {
            match kind {
                Kind::Obj(fields) | Kind::StrOrObj(fields) => {
                    out.push(path.clone());
                    for (name, child) in *fields {
                        path.push((*name).to_owned());
                        objects(child, path, out);
                        path.pop();
                    }
                }
                Kind::List(item) => {
                    path.push("0".to_owned());
                    objects(item, path, out);
                    path.pop();
                }
                _ => {}
            }
        }
        let mut paths = Vec::new();
        objects(&SHAPE, &mut Vec::new(), &mut paths);
        assert!(paths.len() > 10);
        for path in paths {
            let mut doc = sample(&SHAPE);
            let mut node = &mut doc;
            for part in &path {
                node = match part.parse::<usize>() {
                    Ok(i) => &mut node[i],
                    Err(_) => &mut node[part.as_str()],
                };
            }
            node.as_object_mut()
                .unwrap()
                .insert("surprise".into(), json!(1));
            assert!(
                serde_json::from_value::<Document>(doc.clone()).is_err(),
                "serde accepted an unknown key under {path:?}"
            );
            let mut errors = Vec::new();
            check_structure(&mut doc, &mut errors);
            assert_eq!(errors.len(), 1, "{path:?}: {errors:?}");
            assert!(errors[0].path.ends_with("surprise"), "{errors:?}");
            // The sanitised document parses.
            serde_json::from_value::<Document>(doc).expect("sanitised document parses");
        }
    }

    #[test]
    fn every_problem_is_listed_with_its_path() {
        let mut doc = json!({
            "revision": "7",
            "device": {"location_uuid": 5, "colour": "red"},
            "pools": ["pool0", 3],
            "cloud_sync": {"bandwidth": {"uplink_mbps": "fast", "business_hours": []}},
            "snapshots": {"schedule": 5},
            "actions": [{"id": "a", "typo": 1}],
            "extra": true
        });
        let mut errors = Vec::new();
        check_structure(&mut doc, &mut errors);
        let mut paths: Vec<&str> = errors.iter().map(|e| e.path.as_str()).collect();
        paths.sort_unstable();
        assert_eq!(
            paths,
            [
                "actions[0].typo",
                "cloud_sync.bandwidth.business_hours",
                "cloud_sync.bandwidth.uplink_mbps",
                "device.colour",
                "device.location_uuid",
                "extra",
                "pools[1]",
                "revision",
                "snapshots.schedule",
            ]
        );
    }

    #[test]
    fn errors_never_echo_values() {
        let mut doc = json!({"b2": {"application_key": 12345, "key_idd": "CANARY"}});
        let mut errors = Vec::new();
        check_structure(&mut doc, &mut errors);
        for e in &errors {
            assert!(!e.to_string().contains("12345"));
            assert!(!e.to_string().contains("CANARY"));
        }
    }

    #[test]
    fn not_an_object_at_all() {
        let mut errors = Vec::new();
        let mut doc = json!([1, 2]);
        check_structure(&mut doc, &mut errors);
        assert_eq!(errors[0].path, "(document)");
        assert_eq!(doc, json!({}));
    }
}
