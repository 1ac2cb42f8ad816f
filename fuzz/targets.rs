//! Fuzz target bodies: one function per parser of input from outside the process.
//!
//! Owns: which entry points each target drives and the oracles beyond "does not panic":
//! round trips (`parse(encode(x)) == x`), redaction (a secret from the input never shows
//! in a `Debug` or an error text), and signature soundness (nothing verifies under the
//! fixed fuzz key unless that key made the signature).
//! Does not: do I/O, read the clock or draw random numbers, so every crash reproduces
//! from its input file alone. The libFuzzer harness (`fuzz/fuzz_targets/*.rs`) and the
//! stable corpus replay (`tests/it/fuzz_corpus.rs`) both include this file with
//! `#[path]`, so CI replays exactly what the fuzzer ran.
//! Invariants: each target is a `fn(&[u8])` listed in [`TARGETS`] under the name of its
//!   `fuzz/fuzz_targets/<name>.rs` binary and its `fuzz/corpus/<name>/` directory; a
//!   target panics only when the code under test panics or breaks an oracle.
//! Limitations: secrets are recognised by the `CANARY` marker the seed corpus uses
//!   (see `tests/it/support.rs`), so the redaction oracles only watch values that carry
//!   it; a `CANARY` value that also appears where showing it is legitimate (a key, an
//!   id, a non-secret field) is not watched.

use std::fmt::Debug;

use chrono::{DateTime, TimeZone as _, Utc};
use ed25519_dalek::SigningKey;
use secrecy::ExposeSecret as _;
use serde_json::Value;

use truenas_agent::b2::api::{self as b2_api, FileEntry, RangeRead};
use truenas_agent::b2::verify::{Expected, Fetch, Observations, PoolObservation, Sample};
use truenas_agent::b2::{credential as b2_credential, crypt, verify as b2_verify};
use truenas_agent::central::dsse::{self, CONFIG_PAYLOAD_TYPE, TrustPolicy, TrustedKey};
use truenas_agent::central::{client as central_client, fetch, report, spool};
use truenas_agent::config::{AgentConfig, Overrides};
use truenas_agent::desired::{self, DesiredError, envelope};
use truenas_agent::middleware::rpc::{self, Incoming, RemoteError};
use truenas_agent::middleware::{self, ApiFlavor, Job, Method, Protocol, ejson, jobs};
use truenas_agent::observe;
use truenas_agent::zfs::parse as zfs_parse;
use truenas_agent::zfs::via_middleware as zfs_mw;
use truenas_agent::zfs::{DatasetName, PoolName, PropValue, UserPropKey, excerpt};
use truenas_sim::core::{Core, Session};
use truenas_sim::{Scenario, query, wire};

/// A target body: one input, no result; it panics on a finding.
pub type Target = fn(&[u8]);

/// Every target: its name (the `fuzz/fuzz_targets/<name>.rs` binary and the
/// `fuzz/corpus/<name>/` directory) and its body.
pub const TARGETS: &[(&str, Target)] = &[
    ("middleware_frame", middleware_frame),
    ("middleware_objects", middleware_objects),
    ("desired_document", desired_document),
    ("central_envelope", central_envelope),
    ("central_payload", central_payload),
    ("report_spool", report_spool),
    ("zfs_output", zfs_output),
    ("b2_response", b2_response),
    ("sim_frame", sim_frame),
    ("agent_config", agent_config),
];

/// Marker of the secret values in the seed corpus (the canaries of `tests/it/support.rs`).
const MARKER: &str = "CANARY";

// ---------------------------------------------------------------------------------------
// middleware: frames of both protocols, error mapping, jobs and ejson
// ---------------------------------------------------------------------------------------

/// One WebSocket text frame from the middleware, decoded as each protocol
/// (`middleware::rpc::decode`), then everything the client does with the result: error
/// mapping for every method, job decoding from events and replies, ejson values, the
/// version string of `system.version_short`.
pub fn middleware_frame(data: &[u8]) {
    // tungstenite hands over text frames as `str` (it rejects invalid UTF-8 itself).
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    for protocol in [Protocol::JsonRpc, Protocol::Legacy] {
        match rpc::decode(protocol, text) {
            Ok(incoming) => check_incoming(protocol, &incoming),
            Err(error) => {
                let secrets = json_secrets(data);
                assert_hidden("a frame error", &error.to_string(), &secrets, "");
            }
        }
    }
}

fn check_incoming(protocol: Protocol, incoming: &Incoming) {
    let shown = format!("{incoming:?}");
    match incoming {
        Incoming::Reply { id, outcome } => {
            let allowed = format!("{id:?}");
            match outcome {
                Ok(result) => {
                    assert_hidden(
                        "the Debug of a reply",
                        &shown,
                        &secrets_in(result),
                        &allowed,
                    );
                    decode_reply_value(result);
                }
                Err(remote) => map_remote_error(remote, protocol),
            }
        }
        Incoming::Event(event) => {
            let allowed = format!("{:?} {:?}", event.collection, event.id);
            if let Some(fields) = &event.fields {
                assert_hidden(
                    "the Debug of an event",
                    &shown,
                    &secrets_in(fields),
                    &allowed,
                );
                decode_reply_value(fields);
            }
            if let Some(job) = jobs::job_from_event(event) {
                assert!(job.id.is_some() || event.id.as_ref().and_then(Value::as_u64).is_none());
            }
        }
        Incoming::SubscriptionEnded {
            error: Some(remote),
            ..
        } => map_remote_error(remote, protocol),
        Incoming::SubscriptionEnded { error: None, .. }
        | Incoming::Ready { .. }
        | Incoming::Connected
        | Incoming::HandshakeFailed
        | Incoming::Pong
        | Incoming::Ignored { .. } => {}
    }
}

fn map_remote_error(remote: &RemoteError, protocol: Protocol) {
    for &method in Method::ALL {
        let error = remote.to_call_error(method, protocol);
        assert_eq!(error.method(), method, "a mapped error names its call");
        let _ = (error.to_string(), error.fault(), error.is_transport());
    }
}

/// What the client and `observe` decode from a reply's result.
fn decode_reply_value(value: &Value) {
    let _ = serde_json::from_value::<Job>(value.clone());
    let _ = middleware::job_id_of(Method::CloudsyncSync, value);
    if let Some(version) = value.as_str() {
        if let Ok((flavor, newer)) = ApiFlavor::from_version_short(version) {
            let release = middleware::release_of(version).expect("parsed above");
            assert_eq!(
                newer,
                flavor.release() < release,
                "a known release maps to its family, a newer one to the family below it"
            );
        }
    }
    let members: Vec<&Value> = match value {
        Value::Object(map) => map.values().collect(),
        Value::Array(items) => items.iter().collect(),
        _ => Vec::new(),
    };
    for v in std::iter::once(value).chain(members) {
        if let Some(at) = ejson::decode_datetime(v) {
            // Encoding then decoding a decoded instant gives it back (ms precision).
            let again = ejson::decode_datetime(&ejson::encode_datetime(at));
            assert_eq!(
                again.map(|d| d.timestamp_millis()),
                Some(at.timestamp_millis())
            );
        }
        let _ = (
            ejson::decode_time(v),
            ejson::decode_date(v),
            ejson::decode_set(v),
        );
    }
}

/// A middleware query answer (`cloudsync.query`, `cloudsync.credentials.query`,
/// `pool.snapshottask.query`, `snmp.config`, `pool.query`, `pool.dataset.query`), decoded
/// by every decoder that reads such answers; secret attributes must never show in the
/// decoded values' `Debug`.
pub fn middleware_objects(data: &[u8]) {
    let Ok(answer) = serde_json::from_slice::<Value>(data) else {
        return;
    };
    let entries: Vec<&Value> = match &answer {
        Value::Array(items) => items.iter().collect(),
        other => vec![other],
    };
    for entry in entries {
        decode_entry(entry);
    }
    let _ = zfs_mw::decode_pools(&answer);
    let dataset = DatasetName::parse("pool0").expect("invariant: a valid dataset name");
    let key = UserPropKey::parse("com.dtctoday:device-guid").expect("invariant: a valid key");
    for flavor in ApiFlavor::ALL {
        if let Ok(Some(reading)) = zfs_mw::decode_reading(flavor, &dataset, &key, &answer) {
            assert_eq!(
                reading.dataset, dataset,
                "a reading is about the dataset asked for"
            );
            assert_eq!(
                reading.property, key,
                "a reading is about the property asked for"
            );
        }
    }
}

fn decode_entry(entry: &Value) {
    let checks: [(&str, &[&str], Option<String>); 4] = [
        (
            "a credential",
            &["key"],
            observe::decode_credential(entry)
                .ok()
                .map(|c| format!("{c:?}")),
        ),
        (
            "a cloud sync task",
            &["encryption_password", "encryption_salt"],
            observe::decode_cloud_sync(entry)
                .ok()
                .map(|t| format!("{t:?}")),
        ),
        (
            "a snapshot task",
            &[],
            observe::decode_snapshot_task(entry)
                .ok()
                .map(|t| format!("{t:?}")),
        ),
        (
            "the SNMP config",
            &["v3_password", "v3_privpassphrase"],
            Some(format!("{:?}", observe::decode_snmp(entry))),
        ),
    ];
    for (what, secret_keys, shown) in checks {
        if let Some(shown) = shown {
            let secrets = secrets_under(entry, secret_keys);
            let allowed = strings_except(entry, secret_keys);
            assert_hidden(&format!("the Debug of {what}"), &shown, &secrets, &allowed);
        }
    }
    match b2_credential::b2_key(entry) {
        Ok((key_id, key)) => {
            let secrets = secrets_under(entry, &["key"]);
            let shown = format!("{key_id} {key:?}");
            assert_hidden(
                "a B2 key",
                &shown,
                &secrets,
                &strings_except(entry, &["key"]),
            );
            assert!(!key.expose_secret().is_empty() || secrets.is_empty());
        }
        Err(error) => {
            let secrets = secrets_under(entry, &["key"]);
            let allowed = strings_except(entry, &["key"]);
            assert_hidden(
                "a B2 credential error",
                &error.to_string(),
                &secrets,
                &allowed,
            );
        }
    }
}

// ---------------------------------------------------------------------------------------
// desired state and the central channel
// ---------------------------------------------------------------------------------------

/// A desired-state document as bytes: `desired::parse` (wire → validation → derived
/// values) and `desired::load_local` (which also unwraps an unverified DSSE envelope).
/// Error texts never contain a value from the document; the parsed state never shows a
/// secret; the derived bucket is the SOP's `truenas-` + 32 hex digits.
pub fn desired_document(data: &[u8]) {
    let mut secrets = json_secrets(data);
    // What `load_local` validates: the envelope's payload, or the input itself.
    let mut document = data.to_vec();
    let value = serde_json::from_slice::<Value>(data).ok();
    if let Some(value) = value.as_ref().filter(|v| envelope::looks_like_envelope(v)) {
        match envelope::unwrap_unverified(value) {
            Ok(payload) => {
                secrets.extend(json_secrets(&payload));
                document = payload;
            }
            Err(error) => assert_hidden("an envelope error", &error.to_string(), &secrets, ""),
        }
    }
    check_desired(desired::parse(data), data, &secrets);
    check_desired(desired::load_local(data, true), &document, &secrets);
    assert!(
        matches!(
            desired::load_local(data, false),
            Err(DesiredError::Unverified | DesiredError::Syntax { .. })
        ),
        "a local document is refused without --allow-unsigned"
    );
}

/// `document`: the JSON the result was validated from (for telling secrets from values
/// that may be shown); `value_secrets`: marked values no error text may contain.
fn check_desired(
    result: Result<desired::DesiredState, DesiredError>,
    document: &[u8],
    value_secrets: &[String],
) {
    match result {
        Ok(state) => {
            let shown = format!("{state:?}");
            for secret in state.secrets() {
                let secret = secret.expose_secret();
                if secret.contains(MARKER) && !non_secret_text(document).contains(secret) {
                    assert!(
                        !shown.contains(secret),
                        "a secret shows in Debug of DesiredState"
                    );
                }
            }
            let flat = state.bucket.strip_prefix("truenas-").unwrap_or_default();
            assert!(
                flat.len() == 32 && flat.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')),
                "bucket `{}` is not truenas-<32 lower-case hex digits>",
                state.bucket
            );
            assert!(state.revision >= 1, "revision must be at least 1");
        }
        Err(error) => {
            let _ = error.fault();
            assert_hidden("a document error", &error.to_string(), value_secrets, "");
            for field in error.field_errors() {
                assert_hidden("a field error", &field.to_string(), value_secrets, "");
            }
        }
    }
}

/// Every string of a JSON document that is not the value of a secret field (the key
/// names, and the values of every other field), concatenated.
fn non_secret_text(data: &[u8]) -> String {
    const SECRET_KEYS: &[&str] = &[
        "application_key",
        "password",
        "salt",
        "auth_password",
        "privacy_passphrase",
    ];
    serde_json::from_slice::<Value>(data)
        .map(|v| strings_except(&v, SECRET_KEYS))
        .unwrap_or_default()
}

/// The fixed key the fuzz corpus's signed envelopes are signed with.
pub const FUZZ_SIGNING_SEED: [u8; 32] = [7; 32];

/// A DSSE envelope from `GET /v1/config`: `dsse::parse_envelope`, `verify` under the
/// fixed fuzz key and under "unsigned allowed", `open`, and for an accepted envelope the
/// rest of the central pipeline (`fetch::read_revision`, `desired::parse`). Nothing
/// verifies unless the fixed key made that very signature (Ed25519 signing is
/// deterministic); `to_json` round-trips.
pub fn central_envelope(data: &[u8]) {
    let key = SigningKey::from_bytes(&FUZZ_SIGNING_SEED);
    let trusted = TrustPolicy {
        keys: vec![TrustedKey::from_signing_key(&key)],
        allow_unsigned: false,
    };
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(parsed) = TrustedKey::parse(text) {
            let again = TrustedKey::parse(&parsed.to_config_string());
            assert_eq!(again.as_ref(), Ok(&parsed), "a trusted key round-trips");
        }
    }
    let envelope = match dsse::parse_envelope(data) {
        Ok(envelope) => envelope,
        Err(error) => {
            assert_hidden(
                "an envelope error",
                &error.to_string(),
                &json_secrets(data),
                "",
            );
            let _ = error.fault();
            return;
        }
    };
    let round_trip = dsse::parse_envelope(&envelope.to_json());
    assert_eq!(round_trip.as_ref(), Ok(&envelope), "to_json round-trips");
    let verified = dsse::verify(&envelope, CONFIG_PAYLOAD_TYPE, &trusted);
    match &verified {
        Ok(_) => {
            let expected = dsse::sign(CONFIG_PAYLOAD_TYPE, &envelope.payload, &key, None);
            let genuine = &expected.signatures[0].sig;
            assert_eq!(envelope.payload_type, CONFIG_PAYLOAD_TYPE);
            assert!(
                envelope.signatures.iter().any(|s| &s.sig == genuine),
                "an envelope verified without the key's own signature"
            );
            // The rest of the fetch pipeline, on the verified payload.
            let _ = fetch::read_revision(&envelope.payload);
            let secrets = json_secrets(&envelope.payload);
            check_desired(
                desired::parse(&envelope.payload),
                &envelope.payload,
                &secrets,
            );
        }
        Err(error) => {
            let secrets = json_secrets(&envelope.payload);
            assert_hidden("a verification error", &error.to_string(), &secrets, "");
        }
    }
    let opened = dsse::open(data, CONFIG_PAYLOAD_TYPE, &trusted);
    assert_eq!(opened.is_ok(), verified.is_ok(), "open = parse + verify");
    let unsigned = TrustPolicy {
        keys: Vec::new(),
        allow_unsigned: true,
    };
    assert_eq!(
        dsse::verify(&envelope, CONFIG_PAYLOAD_TYPE, &unsigned).is_ok(),
        envelope.payload_type == CONFIG_PAYLOAD_TYPE,
        "unsigned policy checks only the payload type"
    );
    let resigned = dsse::sign(&envelope.payload_type, &envelope.payload, &key, None);
    assert!(
        dsse::verify(&resigned, &envelope.payload_type, &trusted).is_ok(),
        "an envelope the key signed verifies"
    );
}

/// Other bytes central sends or receives: a verified payload's `revision`
/// (`fetch::read_revision`), a report body (`report::decode`, as the reference central
/// server validates `POST /v1/reports`; re-encoding is stable and scrubs secrets), and a
/// `Retry-After` header (`client::parse_retry_after`).
pub fn central_payload(data: &[u8]) {
    match fetch::read_revision(data) {
        Ok(revision) => assert!(revision >= 1),
        Err(error) => {
            let _ = (error.to_string(), error.fault());
        }
    }
    if let Ok(decoded) = report::decode(data) {
        let _ = decoded.schema == report::REPORT_SCHEMA;
        let _ = decoded.failing_checks().count();
        let dropped = decoded.agent.dropped_reports;
        let encoded = report::encode(&decoded, dropped, &[]);
        let again = report::decode(&encoded).expect("an encoded report decodes");
        assert_eq!(
            report::encode(&again, dropped, &[]),
            encoded,
            "encoding is stable"
        );
        let canaries: Vec<secrecy::SecretString> = CANARIES.iter().map(|&c| c.into()).collect();
        let refs: Vec<&secrecy::SecretString> = canaries.iter().collect();
        let scrubbed =
            String::from_utf8_lossy(&report::encode(&decoded, dropped, &refs)).into_owned();
        for canary in CANARIES {
            assert!(
                !scrubbed.contains(canary),
                "report::encode left a secret in"
            );
        }
    }
    if let Ok(text) = std::str::from_utf8(data) {
        let now = Utc.with_ymd_and_hms(2026, 11, 23, 10, 0, 0).single();
        if let Some(after) = now.and_then(|now| central_client::parse_retry_after(text, now)) {
            assert!(
                after <= central_client::MAX_RETRY_AFTER,
                "Retry-After is clamped"
            );
        }
    }
}

/// The secret values the seed corpus uses (the same as `tests/it/support.rs`).
const CANARIES: &[&str] = &[
    "CANARY-B2-APPKEY-7f3a9c",
    "CANARY-ENC-PASSWORD-2b8e41",
    "CANARY-ENC-SALT-9d0c55",
    "CANARY-SNMP-AUTH-61aa07",
    "CANARY-SNMP-PRIV-c4e2f8",
    "CANARY-DEVICE-TOKEN-5e19b3",
    "CANARY-API-KEY-0a7d62",
];

/// The report spool's log file (`central::spool::decode_log` / `decode_record`): every
/// decoded record lies inside the input and re-encodes to exactly its bytes; the valid
/// records, written back to back, decode to the same records with no damage.
pub fn report_spool(data: &[u8]) {
    let log = spool::decode_log(data);
    let mut end = 0u64;
    let mut clean = Vec::new();
    for located in &log.records {
        assert!(
            located.offset >= end,
            "records are in file order and do not overlap"
        );
        let start = usize::try_from(located.offset).expect("invariant: offset < input length");
        let len = usize::try_from(located.len).expect("invariant: len < input length");
        let bytes = &data[start..start + len];
        assert_eq!(
            located.record.encode(),
            bytes,
            "a record re-encodes to its bytes"
        );
        assert_eq!(
            spool::decode_record(bytes),
            Some((located.record.clone(), len))
        );
        end = located.offset + located.len;
        located.record.encode_into(&mut clean);
    }
    if let Some(torn) = log.torn_at {
        assert!(
            torn >= end && torn < data.len() as u64,
            "the torn tail is after the records"
        );
    }
    let again = spool::decode_log(&clean);
    assert_eq!(again.corrupt_regions, 0);
    assert_eq!(again.torn_at, None);
    let records = |l: &spool::DecodedLog| l.records.iter().map(|r| r.record.clone()).collect();
    let (before, after): (Vec<_>, Vec<_>) = (records(&log), records(&again));
    assert_eq!(before, after, "valid records survive being rewritten");
    if let Some((record, used)) = spool::decode_record(data) {
        assert!(used <= data.len());
        assert_eq!(log.records.first().map(|r| &r.record), Some(&record));
    }
}

// ---------------------------------------------------------------------------------------
// zfs, B2
// ---------------------------------------------------------------------------------------

/// What `zfs get -H -p -o name,property,source,value` and `zpool list -H -o name` print,
/// their stderr (`classify_failure`), and the name/value validators applied to each line.
pub fn zfs_output(data: &[u8]) {
    let dataset = DatasetName::parse("pool0").expect("invariant: a valid dataset name");
    let key = UserPropKey::parse("com.dtctoday:device-guid").expect("invariant: a valid key");
    match zfs_parse::parse_get(data, &dataset, &key) {
        Ok(reading) => {
            assert_eq!(reading.dataset, dataset);
            assert_eq!(reading.property, key);
            assert_eq!(
                reading.value.is_none(),
                reading.source == zfs_parse::PropSource::None
            );
        }
        Err(error) => assert_excerpt_only(&error.to_string()),
    }
    match zfs_parse::parse_pool_list(data) {
        Ok(pools) => {
            for pool in pools {
                assert_eq!(PoolName::parse(pool.as_str()).as_ref(), Ok(&pool));
            }
        }
        Err(error) => assert_excerpt_only(&error.to_string()),
    }
    let text = String::from_utf8_lossy(data);
    let _ = zfs_parse::classify_failure(&text);
    for line in text.lines().take(64) {
        let _ = zfs_parse::parse_source(line);
        check_name(line, DatasetName::parse, DatasetName::as_str);
        check_name(line, PoolName::parse, PoolName::as_str);
        check_name(line, UserPropKey::parse, UserPropKey::as_str);
        check_name(line, PropValue::parse, PropValue::as_str);
        let short = excerpt(line, 16);
        assert!(short.chars().count() <= 17 || short.contains('\\'));
        assert!(
            !short.chars().any(char::is_control),
            "excerpts are single-line"
        );
    }
}

/// A validator accepts its own output unchanged, and its error texts are single-line.
fn check_name<T: PartialEq + Debug, E: std::fmt::Display>(
    line: &str,
    parse: fn(&str) -> Result<T, E>,
    as_str: fn(&T) -> &str,
) {
    match parse(line) {
        Ok(name) => assert_eq!(parse(as_str(&name)).ok().as_ref(), Some(&name)),
        Err(error) => assert_excerpt_only(&error.to_string()),
    }
}

/// Error texts quote input only through `excerpt`: never a raw control character.
fn assert_excerpt_only(text: &str) {
    assert!(
        !text.chars().any(|c| c.is_control() && c != '\n'),
        "an error text carries a raw control character: {text:?}"
    );
}

/// A B2 API reply body, decoded as each call's reply (`b2_authorize_account` v4,
/// `b2_list_buckets`, `b2_list_file_names`), then judged by the pure verifier
/// (`b2::verify::evaluate` with the decoded key, bucket and listing, and the input's
/// first bytes as the sampled object header).
pub fn b2_response(data: &[u8]) {
    const BUCKET: &str = "truenas-a1b2c3d4e5f670718293a4b5c6d7e8f9";
    const GUID: &str = "9babab19-acc0-4587-aa05-ccd8103a1148";
    let prefix = format!("{GUID}/pool0/");
    let key = b2_api::decode_authorize(b2_api::DEFAULT_API_BASE, "0051a2b3c4d5", data);
    let bucket = b2_api::decode_bucket(BUCKET, data);
    let listing = b2_api::decode_file_names(&prefix, data);
    for error in [
        key.as_ref().err(),
        bucket.as_ref().err(),
        listing.as_ref().err(),
    ]
    .into_iter()
    .flatten()
    {
        let _ = (error.to_string(), error.fault(), b2_verify::why(error));
    }
    let files: Vec<FileEntry> = listing.clone().unwrap_or_default();
    let sample = crypt::pick_sample(&files, &prefix).map(|file| Sample {
        name: file.name.clone(),
        content_length: file.content_length,
        head: Fetch::Got(RangeRead {
            bytes: data.iter().copied().take(crypt::HEADER_LEN).collect(),
            total_size: Some(file.content_length),
        }),
    });
    for file in &files {
        let _ = (
            crypt::name_form(&file.name, &prefix),
            crypt::is_backup_object(file),
        );
        if let Some(plain) = crypt::decrypted_size(file.content_length) {
            assert_eq!(crypt::encrypted_size(plain), file.content_length);
        }
    }
    let _ = crypt::inspect_header(data);
    let version = String::from_utf8_lossy(data);
    let _ = b2_verify::rclone_major_minor(&version);
    let expected = Expected {
        key_id: "0051a2b3c4d5".to_owned(),
        bucket: BUCKET.to_owned(),
        device_guid: GUID.to_owned(),
        pools: vec!["pool0".to_owned()],
        rclone_version: Some(version.chars().take(64).collect()),
    };
    let observed = Observations {
        key: key.into(),
        v1_probe: Fetch::Got(()),
        bucket: bucket.into(),
        pools: vec![PoolObservation {
            pool: "pool0".to_owned(),
            prefix,
            listing: listing.into(),
            sample,
            archive: Fetch::Got(files.iter().map(|f| f.name.clone()).collect()),
        }],
    };
    let now = DateTime::<Utc>::from_timestamp(1_795_000_000, 0).unwrap_or_default();
    let report = b2_verify::evaluate(&expected, &observed, now);
    let _ = report.overall();
}

// ---------------------------------------------------------------------------------------
// simulator, agent config
// ---------------------------------------------------------------------------------------

/// Frames a test client sends the simulator: the first byte picks the API flavour, then
/// each line is one frame, parsed as JSON-RPC (`sim::wire::parse_jsonrpc`) or legacy
/// (`parse_legacy`) and dispatched to the sans-IO core of a two-pool box (root over the
/// unix socket), jobs run to completion, every answer and event rendered as the server
/// would. The params of a `sim.query` frame go to `sim::query::run` directly.
pub fn sim_frame(data: &[u8]) {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let Ok(text) = std::str::from_utf8(rest) else {
        return;
    };
    let flavor = ApiFlavor::ALL[usize::from(selector) % ApiFlavor::ALL.len()];
    let mut core = Core::new(Scenario::two_pools(flavor));
    let mut session = Session::unix(1);
    let mut now_ms = 1_795_000_000_000_i64;
    for line in text.lines().take(8) {
        now_ms += 1000;
        let (id, method, params) = match wire::parse_jsonrpc(line) {
            Ok(request) => (
                request.id.unwrap_or(Value::Null),
                request.method,
                request.params,
            ),
            Err(Some(frame)) => {
                let _ = frame.to_string();
                continue;
            }
            Err(None) => continue,
        };
        if method == "sim.query" {
            run_query(&params);
            continue;
        }
        dispatch(&mut core, &mut session, (&id, &method, &params), now_ms);
    }
    for line in text.lines().take(8) {
        if let Some(wire::Legacy::Method {
            id,
            method: Some(method),
            params: Ok(params),
        }) = wire::parse_legacy(line)
        {
            session.legacy_protocol = true;
            now_ms += 1000;
            dispatch(&mut core, &mut session, (&id, &method, &params), now_ms);
        }
    }
}

fn dispatch(core: &mut Core, session: &mut Session, call: (&Value, &str, &[Value]), now_ms: i64) {
    let (id, method, params) = call;
    let answer = match core.dispatch(session, method, params, Some(id.clone()), now_ms) {
        Ok(reply) => format!("{reply:?}"),
        Err(error) => {
            let frames = [
                wire::jsonrpc_error(id, &error),
                wire::legacy_error(id, &error),
            ];
            frames.iter().map(Value::to_string).collect()
        }
    };
    let _ = answer;
    for job in core.take_new_jobs() {
        if core.job_begin(job) {
            core.job_progress(job, 50, "half way");
            core.job_finish(job, now_ms + 500);
        }
        let _ = core.render_job(job).map(|j| j.to_string());
    }
    for event in core.take_events() {
        let _ = (
            wire::notification(&event).to_string(),
            wire::legacy_event(&event).to_string(),
        );
    }
}

/// `params`: `[entries, filters, options]`, the query language of every `*.query` method.
fn run_query(params: &[Value]) {
    let entries = params
        .first()
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let count = entries.len();
    let filters = params.get(1).cloned().unwrap_or(Value::Null);
    let options = params.get(2).cloned().unwrap_or(Value::Null);
    if let Ok(Value::Array(page)) = query::run(entries, &filters, &options) {
        assert!(page.len() <= count, "a query never invents entries");
    }
}

/// The agent's TOML configuration (`config::AgentConfig::parse`): local input, but
/// every value in it is validated with an error naming the key.
pub fn agent_config(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match AgentConfig::parse(text, "fuzz.toml") {
        Ok(config) => {
            let _ = format!("{config:?}");
            let _ = config.central().map(|c| (c.config_url(), c.reports_url()));
            // Re-validating a valid configuration (what the command-line overrides do)
            // accepts it again.
            let again = config.with_overrides(Overrides::default());
            assert!(
                again.is_ok(),
                "a valid configuration fails its own re-validation"
            );
        }
        Err(error) => {
            let _ = (error.to_string(), error.fault());
        }
    }
}

// ---------------------------------------------------------------------------------------
// oracle helpers
// ---------------------------------------------------------------------------------------

/// Panics when `shown` contains one of `secrets`, unless that secret also occurs in
/// `allowed` (text that may legitimately be shown: ids, keys, non-secret fields).
fn assert_hidden(what: &str, shown: &str, secrets: &[String], allowed: &str) {
    for secret in secrets {
        if !allowed.contains(secret.as_str()) {
            assert!(
                !shown.contains(secret.as_str()),
                "a secret value shows in {what}"
            );
        }
    }
}

/// The marked string values of a JSON input that no object key contains (keys are shown
/// in paths; values never are).
fn json_secrets(data: &[u8]) -> Vec<String> {
    let Ok(value) = serde_json::from_slice::<Value>(data) else {
        return Vec::new();
    };
    let keys = keys_of(&value);
    secrets_in(&value)
        .into_iter()
        .filter(|s| !keys.contains(s.as_str()))
        .collect()
}

/// Every marked string value inside `value`.
fn secrets_in(value: &Value) -> Vec<String> {
    let mut out = Vec::new();
    walk(value, &mut |key, v| {
        if let (None, Value::String(s)) = (key, v) {
            if s.contains(MARKER) {
                out.push(s.clone());
            }
        }
    });
    out
}

/// The marked string values directly under one of `keys` (at any depth).
fn secrets_under(value: &Value, keys: &[&str]) -> Vec<String> {
    let mut out = Vec::new();
    walk(value, &mut |key, v| {
        if let (Some(key), Value::String(s)) = (key, v) {
            if keys.contains(&key) && s.contains(MARKER) {
                out.push(s.clone());
            }
        }
    });
    out
}

/// Every key and every string value except those directly under one of `keys`.
fn strings_except(value: &Value, keys: &[&str]) -> String {
    let mut out = String::new();
    walk(value, &mut |key, v| {
        if let Some(key) = key {
            out.push_str(key);
            out.push('\n');
        }
        if let Value::String(s) = v {
            if !key.is_some_and(|k| keys.contains(&k)) {
                out.push_str(s);
                out.push('\n');
            }
        }
    });
    out
}

/// Every object key, concatenated.
fn keys_of(value: &Value) -> String {
    let mut out = String::new();
    walk(value, &mut |key, _| {
        if let Some(key) = key {
            out.push_str(key);
            out.push('\n');
        }
    });
    out
}

/// Visits every value with the object key it sits under (`None` for the root and list
/// items). Iterative: a deeply nested input must not overflow the stack here.
fn walk(value: &Value, visit: &mut dyn FnMut(Option<&str>, &Value)) {
    let mut stack: Vec<(Option<&str>, &Value)> = vec![(None, value)];
    while let Some((key, v)) = stack.pop() {
        visit(key, v);
        match v {
            Value::Object(map) => stack.extend(map.iter().map(|(k, v)| (Some(k.as_str()), v))),
            Value::Array(items) => stack.extend(items.iter().map(|v| (None, v))),
            Value::Null | Value::Bool(_) | Value::Number(_) | Value::String(_) => {}
        }
    }
}
