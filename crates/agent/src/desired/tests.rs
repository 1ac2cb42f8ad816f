//! Table tests for document parsing and validation.

use secrecy::ExposeSecret;
use serde_json::{Value, json};

use super::*;

const EXAMPLE: &str = include_str!("../../../../tests/data/desired/example.json");
const CANARIES: [&str; 5] = [
    "CANARY-B2-APPKEY-7f3a9c",
    "CANARY-ENC-PASSWORD-2b8e41",
    "CANARY-ENC-SALT-9d0c55",
    "CANARY-SNMP-AUTH-61aa07",
    "CANARY-SNMP-PRIV-c4e2f8",
];

fn example() -> Value {
    serde_json::from_str(EXAMPLE).unwrap()
}

fn parse_value(v: &Value) -> Result<DesiredState, DesiredError> {
    parse(&serde_json::to_vec(v).unwrap())
}

/// Paths reported for a document, sorted.
fn paths(v: &Value) -> Vec<String> {
    match parse_value(v) {
        Ok(_) => Vec::new(),
        Err(DesiredError::Invalid(errors)) => {
            let mut p: Vec<String> = errors.into_iter().map(|e| e.path).collect();
            p.sort();
            p
        }
        Err(other) => panic!("unexpected error {other}"),
    }
}

/// Applies `edit` to the example and returns the reported paths.
fn paths_after(edit: impl FnOnce(&mut Value)) -> Vec<String> {
    let mut v = example();
    edit(&mut v);
    paths(&v)
}

#[test]
fn contract_example_parses_with_sop_defaults() {
    let d = parse(EXAMPLE.as_bytes()).unwrap();
    assert_eq!(d.revision, 7);
    assert_eq!(d.mode, Mode::Enforce);
    assert_eq!(d.bucket, "truenas-a1b2c3d4e5f670718293a4b5c6d7e8f9");
    assert_eq!(
        d.device.guid.unwrap().to_string(),
        "9babab19-acc0-4587-aa05-ccd8103a1148"
    );
    assert_eq!(
        d.pools.as_deref(),
        Some(&["pool0".into(), "pool1".into()][..])
    );
    assert_eq!(d.b2.key_id, "0051a2b3c4d5e6f0000000001");
    assert_eq!(d.b2.application_key.expose_secret(), CANARIES[0]);
    let cs = &d.cloud_sync;
    assert_eq!(cs.schedule.to_string(), "0 0 * * *");
    assert_eq!(cs.exclude, ["/Archive/**", "/archive/**"]);
    assert_eq!(cs.chunk_size_mib, 96);
    assert!(cs.fast_list && cs.enabled);
    assert!(!cs.filename_encryption && !cs.follow_symlinks && !cs.take_snapshot);
    assert_eq!(cs.transfers, None);
    let table: Vec<String> = cs.bwlimit.iter().map(ToString::to_string).collect();
    assert_eq!(
        table,
        ["00:00,10000000B/s", "08:00,2500000B/s", "18:00,10000000B/s"]
    );
    let s = &d.snapshots;
    assert_eq!(s.schedule.to_string(), "0 * * * *");
    assert_eq!(
        (s.begin.to_string(), s.end.to_string()),
        ("00:00".into(), "23:59".into())
    );
    assert_eq!((s.lifetime_value, s.lifetime_unit), (2, LifetimeUnit::Week));
    assert_eq!(s.naming_schema, "auto-%Y-%m-%d_%H-%M");
    assert!(s.recursive && s.enabled && !s.allow_empty && s.exclude.is_empty());
    assert_eq!(d.snmp.as_ref().unwrap().username, "nmsQwErTyUiOp");
    assert_eq!(
        d.actions,
        [Action {
            id: "5f0c2a9e-first-run".into(),
            kind: ActionKind::RunCloudSync {
                pool: "pool0".into()
            }
        }]
    );
    assert_eq!(d.adopt, Adopt::default());
    assert_eq!(d.removed_pools, RemovedPools::Disable);
    assert!(!d.encryption.allow_rekey);
}

#[test]
fn debug_output_never_shows_secrets() {
    let d = parse(EXAMPLE.as_bytes()).unwrap();
    let shown = format!("{d:?}");
    for canary in CANARIES {
        assert!(!shown.contains(canary), "{canary} in Debug");
    }
}

#[test]
fn redact_replaces_every_document_secret() {
    let d = parse(EXAMPLE.as_bytes()).unwrap();
    let text = format!("rclone said {} and {}", CANARIES[0], CANARIES[3]);
    let red = d.redact(&text);
    assert_eq!(red, "rclone said [REDACTED] and [REDACTED]");
}

#[test]
fn minimal_document_gets_every_default() {
    let d = parse_value(&json!({
        "schema": "truenas-agent.config/v1", "revision": 1,
        "device": {"location_uuid": "a1b2c3d4-e5f6-7071-8293-a4b5c6d7e8f9"},
        "b2": {"key_id": "k", "application_key": "a"},
        "encryption": {"password": "p", "salt": "s"}
    }))
    .unwrap();
    assert_eq!(d.pools, None);
    assert_eq!(d.device.guid, None);
    assert!(
        d.cloud_sync.bwlimit.is_empty(),
        "no bandwidth section: unlimited"
    );
    assert!(d.snmp.is_none() && d.actions.is_empty());
}

#[test]
fn overrides_in_both_schedule_forms() {
    let mut v = example();
    v["cloud_sync"]["schedule"] =
        json!({"minute": "30", "hour": "01", "dom": "*", "month": "*", "dow": "1-5"});
    v["snapshots"] = json!({"schedule": "*/15 * * * *", "lifetime_value": 14, "lifetime_unit": "DAY",
                            "exclude": ["pool0/scratch"], "begin": "06:00", "end": "22:00"});
    let d = parse_value(&v).unwrap();
    assert_eq!(d.cloud_sync.schedule.to_string(), "30 1 * * 1-5");
    assert_eq!(d.snapshots.schedule.to_string(), "*/15 * * * *");
    assert_eq!(d.snapshots.lifetime_unit, LifetimeUnit::Day);
    assert_eq!(d.snapshots.exclude, ["pool0/scratch"]);
}

#[test]
fn dsse_envelope_only_with_allow_unsigned() {
    use base64::Engine as _;
    let payload = base64::engine::general_purpose::STANDARD.encode(EXAMPLE);
    let env = json!({"payloadType": envelope::PAYLOAD_TYPE, "payload": payload, "signatures": []});
    let bytes = serde_json::to_vec(&env).unwrap();
    assert!(matches!(
        load_local(&bytes, false),
        Err(DesiredError::Unverified)
    ));
    assert_eq!(load_local(&bytes, true).unwrap().revision, 7);
    assert!(matches!(
        load_local(EXAMPLE.as_bytes(), false),
        Err(DesiredError::Unverified)
    ));
    assert_eq!(load_local(EXAMPLE.as_bytes(), true).unwrap().revision, 7);
}

#[test]
fn syntax_errors_have_a_position_and_no_content() {
    let err = parse(b"{\"b2\": {\"application_key\": \"CANARY-B2-APPKEY-7f3a9c\"").unwrap_err();
    assert!(matches!(err, DesiredError::Syntax { line: 1, .. }), "{err}");
    assert!(!err.to_string().contains("CANARY"));
}

/// One row per rule: (what, edit, expected paths).
#[test]
#[allow(clippy::too_many_lines)]
fn each_rule_reports_its_path() {
    type Edit = fn(&mut Value);
    let table: &[(&str, Edit, &[&str])] = &[
        (
            "bad uuid",
            |v| v["device"]["location_uuid"] = json!("not-a-uuid"),
            &["device.location_uuid"],
        ),
        (
            "long bucket",
            |v| {
                v["device"]["location_uuid"] =
                    json!("a1b2c3d4-e5f6-7071-8293-a4b5c6d7e8f9a1b2c3d4e5f6");
            },
            &["device.location_uuid", "device.location_uuid"],
        ),
        (
            "bad guid",
            |v| v["device"]["guid"] = json!("9babab19"),
            &["device.guid"],
        ),
        (
            "bad org",
            |v| v["device"]["org_uuid"] = json!(""),
            &["device.org_uuid"],
        ),
        (
            "unknown key",
            |v| v["cloud_sync"]["chunk_size"] = json!(96),
            &["cloud_sync.chunk_size"],
        ),
        ("unknown top key", |v| v["pool"] = json!("x"), &["pool"]),
        (
            "bad time",
            |v| v["cloud_sync"]["bandwidth"]["business_hours"]["start"] = json!("8:00"),
            &["cloud_sync.bandwidth.business_hours.start"],
        ),
        (
            "empty window",
            |v| v["cloud_sync"]["bandwidth"]["business_hours"]["end"] = json!("08:00"),
            &["cloud_sync.bandwidth.business_hours.end"],
        ),
        (
            "missing secret",
            |v| {
                v["b2"].as_object_mut().unwrap().remove("application_key");
            },
            &["b2.application_key"],
        ),
        (
            "empty secret",
            |v| v["encryption"]["salt"] = json!(""),
            &["encryption.salt"],
        ),
        (
            "missing section",
            |v| {
                v.as_object_mut().unwrap().remove("encryption");
            },
            &["encryption"],
        ),
        (
            "missing location",
            |v| {
                v["device"].as_object_mut().unwrap().remove("location_uuid");
            },
            &["device.location_uuid"],
        ),
        (
            "schema",
            |v| v["schema"] = json!("truenas-agent.config/v2"),
            &["schema"],
        ),
        ("revision 0", |v| v["revision"] = json!(0), &["revision"]),
        (
            "revision type",
            |v| v["revision"] = json!("7"),
            &["revision"],
        ),
        (
            "negative revision",
            |v| v["revision"] = json!(-1),
            &["revision"],
        ),
        ("mode", |v| v["mode"] = json!("yolo"), &["mode"]),
        (
            "issued_at",
            |v| v["issued_at"] = json!("yesterday"),
            &["issued_at"],
        ),
        (
            "pool name",
            |v| v["pools"] = json!(["pool0", "1bad"]),
            &["pools[1]"],
        ),
        (
            "duplicate pool",
            |v| v["pools"] = json!(["pool0", "pool0"]),
            &["pools[1]"],
        ),
        (
            "boot pool",
            |v| v["pools"] = json!(["boot-pool"]),
            &["actions[0].pool", "pools[0]"],
        ),
        (
            "no pools",
            |v| v["pools"] = json!([]),
            &["actions[0].pool", "pools"],
        ),
        (
            "percent",
            |v| v["cloud_sync"]["bandwidth"]["business_percent"] = json!(0),
            &["cloud_sync.bandwidth.business_percent"],
        ),
        (
            "percent high",
            |v| v["cloud_sync"]["bandwidth"]["off_hours_percent"] = json!(101),
            &["cloud_sync.bandwidth.off_hours_percent"],
        ),
        (
            "uplink",
            |v| v["cloud_sync"]["bandwidth"]["uplink_mbps"] = json!(0),
            &["cloud_sync.bandwidth.uplink_mbps"],
        ),
        (
            "uplink missing",
            |v| {
                v["cloud_sync"]["bandwidth"]
                    .as_object_mut()
                    .unwrap()
                    .remove("uplink_mbps");
            },
            &["cloud_sync.bandwidth.uplink_mbps"],
        ),
        (
            "cron field",
            |v| v["cloud_sync"]["schedule"] = json!("0 25 * * *"),
            &["cloud_sync.schedule.hour"],
        ),
        (
            "cron fields",
            |v| v["cloud_sync"]["schedule"] = json!("0 0 * *"),
            &["cloud_sync.schedule"],
        ),
        (
            "cron object",
            |v| v["snapshots"]["schedule"] = json!({"minute": "61", "hour": "*"}),
            &[
                "snapshots.schedule.dom",
                "snapshots.schedule.dow",
                "snapshots.schedule.minute",
                "snapshots.schedule.month",
            ],
        ),
        (
            "naming schema",
            |v| v["snapshots"]["naming_schema"] = json!("auto-%Y"),
            &["snapshots.naming_schema"],
        ),
        (
            "lifetime unit",
            |v| v["snapshots"]["lifetime_unit"] = json!("week"),
            &["snapshots.lifetime_unit"],
        ),
        (
            "lifetime value",
            |v| v["snapshots"]["lifetime_value"] = json!(0),
            &["snapshots.lifetime_value"],
        ),
        (
            "window",
            |v| {
                v["snapshots"]["begin"] = json!("12:00");
                v["snapshots"]["end"] = json!("06:00");
            },
            &["snapshots.end"],
        ),
        (
            "snapshot exclude",
            |v| v["snapshots"]["exclude"] = json!(["scratch", "pool9/x"]),
            &["snapshots.exclude[0]", "snapshots.exclude[1]"],
        ),
        (
            "exclude without recursive",
            |v| v["snapshots"] = json!({"recursive": false, "exclude": ["pool0/x"]}),
            &["snapshots.exclude"],
        ),
        (
            "rclone exclude",
            |v| v["cloud_sync"]["exclude"] = json!(["", "/a\n/b", "/x", "/x"]),
            &[
                "cloud_sync.exclude[0]",
                "cloud_sync.exclude[1]",
                "cloud_sync.exclude[3]",
            ],
        ),
        (
            "chunk",
            |v| v["cloud_sync"]["chunk_size_mib"] = json!(4),
            &["cloud_sync.chunk_size_mib"],
        ),
        (
            "transfers",
            |v| v["cloud_sync"]["transfers"] = json!(0),
            &["cloud_sync.transfers"],
        ),
        (
            "snmp user",
            |v| v["snmp"]["username"] = json!("a-very-long-username-indeed"),
            &["snmp.username"],
        ),
        (
            "snmp short",
            |v| v["snmp"]["auth_password"] = json!("short"),
            &["snmp.auth_password"],
        ),
        (
            "snmp missing",
            |v| {
                v["snmp"]
                    .as_object_mut()
                    .unwrap()
                    .remove("privacy_passphrase");
            },
            &["snmp.privacy_passphrase"],
        ),
        (
            "action type",
            |v| v["actions"][0]["type"] = json!("reboot"),
            &["actions[0].type"],
        ),
        (
            "action pool",
            |v| v["actions"][0]["pool"] = json!("pool7"),
            &["actions[0].pool"],
        ),
        (
            "action dup",
            |v| {
                v["actions"] = json!([{"id": "a", "type": "run_cloud_sync", "pool": "pool0"},
                                                 {"id": "a", "type": "run_cloud_sync", "pool": "pool1"}]);
            },
            &["actions[1].id"],
        ),
        (
            "adopt",
            |v| v["adopt"] = json!({"credential": 0, "cloud_sync": [5, 5], "snapshots": [0]}),
            &[
                "adopt.cloud_sync[1]",
                "adopt.credential",
                "adopt.snapshots[0]",
            ],
        ),
        (
            "removed_pools",
            |v| v["removed_pools"] = json!("destroy"),
            &["removed_pools"],
        ),
        (
            "null document section",
            |v| v["device"] = Value::Null,
            &["device"],
        ),
        ("wrong type section", |v| v["b2"] = json!("key"), &["b2"]),
        (
            "schedule type",
            |v| v["cloud_sync"]["schedule"] = json!(5),
            &["cloud_sync.schedule"],
        ),
    ];
    let mut wrong = Vec::new();
    for (what, edit, expected) in table {
        let got = paths_after(*edit);
        if got != *expected {
            wrong.push(format!("rule `{what}`: got {got:?}, expected {expected:?}"));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn every_problem_is_reported_at_once() {
    let got = paths_after(|v| {
        v["device"]["location_uuid"] = json!("nope");
        v["cloud_sync"]["bandwidth"]["business_hours"]["start"] = json!("8am");
        v["snmp"]["colour"] = json!("blue");
        v["b2"].as_object_mut().unwrap().remove("application_key");
        v["revision"] = json!("seven");
    });
    assert_eq!(
        got,
        [
            "b2.application_key",
            "cloud_sync.bandwidth.business_hours.start",
            "device.location_uuid",
            "revision",
            "snmp.colour"
        ]
    );
}

#[test]
fn error_texts_never_contain_document_values() {
    let mut v = example();
    v["b2"]["application_key"] = json!(12345);
    v["snmp"]["auth_password"] = json!("CANARY-SNMP-AUTH-61aa07".get(..5));
    v["device"]["location_uuid"] = json!("CANARY-ENC-PASSWORD-2b8e41");
    v["encryption"]["pasword"] = json!("CANARY-ENC-SALT-9d0c55");
    let err = parse_value(&v).unwrap_err();
    let text = err.to_string();
    for canary in CANARIES.iter().chain(&["12345", "CANAR"]) {
        assert!(!text.contains(canary), "{canary} in {text}");
    }
}

/// Every file in `tests/data/desired/invalid/` is refused with exactly the paths its
/// `.expected` sidecar lists.
#[test]
fn invalid_fixtures_report_their_paths() {
    let dir =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/data/desired/invalid");
    let mut checked = 0;
    let mut wrong = Vec::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().and_then(|e| e.to_str()) != Some("json") {
            continue;
        }
        let expected = crate::fs::read_to_string(&path.with_extension("expected")).unwrap();
        let mut expected: Vec<&str> = expected.lines().collect();
        expected.sort_unstable();
        let err = load_file(&path, true).expect_err("fixture must be refused");
        let text = err.to_string();
        let mut got: Vec<String> = err.field_errors().into_iter().map(|e| e.path).collect();
        got.sort();
        if got != expected {
            wrong.push(format!(
                "{}: got {got:?}, expected {expected:?}",
                path.display()
            ));
        }
        for canary in CANARIES {
            assert!(
                !text.contains(canary),
                "{canary} in the error for {}",
                path.display()
            );
        }
        checked += 1;
    }
    assert!(checked >= 30, "only {checked} fixtures");
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

/// Issue 13.7: a repeated key is refused wherever it is, with its path (serde_json
/// alone keeps the last one silently).
#[test]
fn duplicate_keys_are_refused_with_their_path() {
    use base64::Engine as _;
    let text = EXAMPLE
        .replacen(
            "\"revision\": 7,",
            "\"revision\": 7, \"revision\": 8,",
            1,
        )
        .replacen(
            "\"guid\": \"9babab19-acc0-4587-aa05-ccd8103a1148\",",
            "\"guid\": \"9babab19-acc0-4587-aa05-ccd8103a1148\", \"guid\": \"1babab19-acc0-4587-aa05-ccd8103a1148\",",
            1,
        )
        .replacen(
            "\"pool\": \"pool0\"}",
            "\"pool\": \"pool0\", \"pool\": \"pool1\"}",
            1,
        );
    assert_ne!(text, EXAMPLE, "the edits applied");
    let err = parse(text.as_bytes()).unwrap_err();
    let mut got: Vec<String> = err.field_errors().into_iter().map(|e| e.path).collect();
    got.sort();
    assert_eq!(got, ["actions[0].pool", "device.guid", "revision"], "{err}");
    assert!(err.to_string().contains("duplicate key"), "{err}");
    // Also in a local file and inside an envelope's payload; and in the envelope itself.
    assert!(load_local(text.as_bytes(), true).is_err());
    let payload = base64::engine::general_purpose::STANDARD.encode(&text);
    let env = format!(
        "{{\"payloadType\": \"{}\", \"payload\": \"{payload}\", \"signatures\": []}}",
        envelope::PAYLOAD_TYPE
    );
    assert!(matches!(
        load_local(env.as_bytes(), true),
        Err(DesiredError::Invalid(_))
    ));
    let good = base64::engine::general_purpose::STANDARD.encode(EXAMPLE);
    let twice = format!(
        "{{\"payloadType\": \"{0}\", \"payload\": \"{good}\", \"payload\": \"{payload}\", \"signatures\": []}}",
        envelope::PAYLOAD_TYPE
    );
    assert!(matches!(
        load_local(twice.as_bytes(), true),
        Err(DesiredError::Envelope(EnvelopeError::DuplicateKey(_)))
    ));
}

/// Issue 13.7: `device.guid` must be a random (v4) UUID; nil/max UUIDs are refused for
/// every identity field.
#[test]
fn placeholder_and_non_v4_uuids_are_refused() {
    let table: &[(&str, &str, &str, bool)] = &[
        (
            "device",
            "guid",
            "00000000-0000-0000-0000-000000000000",
            false,
        ),
        (
            "device",
            "guid",
            "ffffffff-ffff-ffff-ffff-ffffffffffff",
            false,
        ),
        // version 1 (time-based), version 7, and a v4 with the wrong variant
        (
            "device",
            "guid",
            "9babab19-acc0-1587-aa05-ccd8103a1148",
            false,
        ),
        (
            "device",
            "guid",
            "9babab19-acc0-7587-aa05-ccd8103a1148",
            false,
        ),
        (
            "device",
            "guid",
            "9babab19-acc0-4587-ca05-ccd8103a1148",
            false,
        ),
        (
            "device",
            "guid",
            "9BABAB19-ACC0-4587-AA05-CCD8103A1148",
            true,
        ),
        (
            "device",
            "org_uuid",
            "00000000-0000-0000-0000-000000000000",
            false,
        ),
        (
            "device",
            "location_uuid",
            "00000000-0000-0000-0000-000000000000",
            false,
        ),
        // The SOP's own example location UUID is version 7: kept working (its bucket
        // name is what the SOP computes), see docs/configuration.md.
        (
            "device",
            "location_uuid",
            "a1b2c3d4-e5f6-7071-8293-a4b5c6d7e8f9",
            true,
        ),
    ];
    for (section, key, value, ok) in table {
        let got = paths_after(|v| v[*section][*key] = json!(value));
        let expected: Vec<String> = if *ok {
            Vec::new()
        } else {
            vec![format!("{section}.{key}")]
        };
        assert_eq!(got, expected, "{section}.{key} = {value}");
    }
    let mut v = example();
    v["device"]["guid"] = json!("9babab19-acc0-1587-aa05-ccd8103a1148");
    let err = parse_value(&v).unwrap_err().to_string();
    assert!(err.contains("UUIDv4"), "{err}");
}

/// Issue 13.5: a revision beyond 2^53 − 1 would lock the device out (every later
/// document a rollback) and is not exact in every JSON implementation.
#[test]
fn revisions_are_bounded() {
    const MAX: u64 = (1 << 53) - 1;
    assert_eq!(
        paths_after(|v| v["revision"] = json!(MAX)),
        Vec::<String>::new()
    );
    for bad in [MAX + 1, 9_223_372_036_854_775_807, u64::MAX] {
        let mut v = example();
        v["revision"] = json!(bad);
        let err = parse_value(&v).unwrap_err();
        let errors = err.field_errors();
        assert_eq!(errors.len(), 1, "{err}");
        assert_eq!(errors[0].path, "revision");
        assert!(errors[0].rule.contains("9007199254740991"), "{err}");
    }
}

/// Issue 13.8: for every numeric key, every kind of wrong value gets a message that
/// names the key and its real range (not "a whole number ≥ 0").
#[test]
#[allow(clippy::too_many_lines, reason = "one table")]
fn numeric_messages_state_the_real_range() {
    // (path as edited, path reported, min, max): the ranges of docs/configuration.md.
    let table: &[(&[&str], &str, &str, &str)] = &[
        (&["revision"], "revision", "1", "9007199254740991"),
        (
            &["cloud_sync", "chunk_size_mib"],
            "cloud_sync.chunk_size_mib",
            "5",
            "4096",
        ),
        (
            &["cloud_sync", "transfers"],
            "cloud_sync.transfers",
            "1",
            "128",
        ),
        (
            &["cloud_sync", "bandwidth", "business_percent"],
            "cloud_sync.bandwidth.business_percent",
            "1",
            "100",
        ),
        (
            &["cloud_sync", "bandwidth", "off_hours_percent"],
            "cloud_sync.bandwidth.off_hours_percent",
            "1",
            "100",
        ),
        (
            &["cloud_sync", "bandwidth", "uplink_mbps"],
            "cloud_sync.bandwidth.uplink_mbps",
            "0.001",
            "100000",
        ),
        (
            &["snapshots", "lifetime_value"],
            "snapshots.lifetime_value",
            "1",
            "100000",
        ),
        (
            &["adopt", "credential"],
            "adopt.credential",
            "1",
            "9007199254740991",
        ),
        (
            &["adopt", "cloud_sync", "0"],
            "adopt.cloud_sync[0]",
            "1",
            "9007199254740991",
        ),
        (
            &["adopt", "snapshots", "0"],
            "adopt.snapshots[0]",
            "1",
            "9007199254740991",
        ),
    ];
    let two_to_64: Value = serde_json::from_str("18446744073709551616").unwrap();
    let bad_values = [
        json!(-3),
        json!(-96),
        two_to_64,
        json!("5"),
        json!(20.5),
        json!(0),
        json!(1e300),
        json!(true),
    ];
    let mut wrong = Vec::new();
    for (edit, reported, min, max) in table {
        for bad in &bad_values {
            let mut v = example();
            let mut node = &mut v;
            for (i, part) in edit.iter().enumerate() {
                if *part == "0" {
                    *node = json!([Value::Null]);
                    node = &mut node[0];
                } else {
                    if node.get(*part).is_none() && i + 1 < edit.len() {
                        node[*part] = json!({});
                    }
                    node = &mut node[*part];
                }
            }
            *node = bad.clone();
            let errors = match parse_value(&v) {
                Ok(_) => {
                    // 20.5 is a valid uplink speed.
                    if !(*reported == "cloud_sync.bandwidth.uplink_mbps" && bad.is_f64()) {
                        wrong.push(format!("{reported} = {bad}: accepted"));
                    }
                    continue;
                }
                Err(e) => e.field_errors(),
            };
            let at: Vec<&FieldError> = errors.iter().filter(|e| e.path == *reported).collect();
            let others: Vec<&FieldError> = errors.iter().filter(|e| e.path != *reported).collect();
            if at.len() != 1 || !others.is_empty() {
                wrong.push(format!("{reported} = {bad}: {errors:?}"));
                continue;
            }
            let rule = &at[0].rule;
            if !rule.contains(&format!("from {min} to {max}")) {
                wrong.push(format!(
                    "{reported} = {bad}: `{rule}` does not say {min}–{max}"
                ));
            }
            if rule.contains("≥ 0") {
                wrong.push(format!("{reported} = {bad}: `{rule}` states a wrong rule"));
            }
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    // The uplink's bounds are exactly the stated ones.
    for (mbps, ok) in [
        (0.001, true),
        (0.0005, false),
        (100_000.0, true),
        (100_000.5, false),
    ] {
        let got = paths_after(|v| v["cloud_sync"]["bandwidth"]["uplink_mbps"] = json!(mbps));
        assert_eq!(got.is_empty(), ok, "{mbps}: {got:?}");
    }
}

/// The table above covers every numeric key of the document (a new numeric key needs a
/// row, i.e. a stated range).
#[test]
fn every_numeric_key_has_a_stated_range() {
    fn numeric(kind: &wire::Kind, path: String, out: &mut Vec<String>) {
        match kind {
            wire::Kind::UInt(_) | wire::Kind::Number(_) => out.push(path),
            wire::Kind::Obj(fields) | wire::Kind::StrOrObj(fields) => {
                for (name, child) in *fields {
                    let p = if path.is_empty() {
                        (*name).to_owned()
                    } else {
                        format!("{path}.{name}")
                    };
                    numeric(child, p, out);
                }
            }
            wire::Kind::List(item) => numeric(item, format!("{path}[0]"), out),
            wire::Kind::Str | wire::Kind::Bool => {}
        }
    }
    let mut found = Vec::new();
    numeric(&wire::SHAPE, String::new(), &mut found);
    found.sort();
    assert_eq!(
        found,
        [
            "adopt.cloud_sync[0]",
            "adopt.credential",
            "adopt.snapshots[0]",
            "cloud_sync.bandwidth.business_percent",
            "cloud_sync.bandwidth.off_hours_percent",
            "cloud_sync.bandwidth.uplink_mbps",
            "cloud_sync.chunk_size_mib",
            "cloud_sync.transfers",
            "revision",
            "snapshots.lifetime_value",
        ]
    );
}

/// Issue 12.4: secrets and user names snmpd cannot use (the middleware writes them
/// unescaped into `createUser USER SHA "PASSWORD" AES "PASSPHRASE"`) are refused, naming
/// the field and the rule.
#[test]
fn snmp_values_snmpd_cannot_use_are_refused() {
    let bad_secrets = [
        "has\"quote1",
        "back\\slash1",
        "has space12",
        "tab\there12",
        "line\nbreak1",
        "carriage\r12",
        "nul\u{0}char12",
        "del\u{7f}char12",
        "nbsp\u{a0}char1",
    ];
    for field in ["auth_password", "privacy_passphrase"] {
        for bad in bad_secrets {
            let mut v = example();
            v["snmp"][field] = json!(bad);
            let err = parse_value(&v).unwrap_err();
            let errors = err.field_errors();
            assert_eq!(errors.len(), 1, "{field} {bad:?}: {err}");
            assert_eq!(errors[0].path, format!("snmp.{field}"));
            assert!(errors[0].rule.contains("createUser"), "{}", errors[0].rule);
            assert!(!err.to_string().contains(bad), "the value is never echoed");
        }
    }
    // SOP 1.1 generates secrets from every printable character 33–126 but `"` and `\`
    // are the only ones that break the line; the rest is fine.
    let printable: String = (33u8..=126)
        .map(char::from)
        .filter(|c| *c != '"' && *c != '\\')
        .collect();
    let mut v = example();
    v["snmp"]["auth_password"] = json!(printable);
    v["snmp"]["privacy_passphrase"] = json!("çà-unicode-is-fine");
    assert!(parse_value(&v).is_ok());
    for (name, ok) in [
        ("has space", false),
        ("quote\"d", false),
        ("back\\slash", false),
        ("new\nline", false),
        ("a23456789012345678901", false),
        ("a2345678901234567890", true),
        ("nms_user.1-x", true),
    ] {
        let got = paths_after(|v| v["snmp"]["username"] = json!(name));
        assert_eq!(got.is_empty(), ok, "{name:?}: {got:?}");
        if !ok {
            assert_eq!(got, ["snmp.username"], "{name:?}");
        }
    }
    let mut v = example();
    v["snmp"]["username"] = json!("a23456789012345678901");
    let err = parse_value(&v).unwrap_err().to_string();
    assert!(err.contains("1 to 20 characters"), "{err}");
}
