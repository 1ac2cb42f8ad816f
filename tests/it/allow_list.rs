//! The method allow-list against the TrueNAS API schemas of each supported version
//! (`shared/truenas-api/<version>/index.json` and `<method>.json`).
//!
//! - every `Method` exists exactly on the versions `Method::available_on` says;
//! - the params of every call the client makes by itself (`middleware::client_calls`)
//!   and of the agent's own requests (`middleware::calls`, per flavour) validate against
//!   the version's schema.
//!
//! Skips with a message when `shared/` is absent.

use std::path::Path;

use secrecy::SecretString;
use serde_json::Value;
use truenas_agent::middleware::{ApiFlavor, Call, Method, calls, client_calls};

use crate::support::schema_dir;

/// Methods the agent may call that the generated schemas do not cover.
const NOT_IN_SCHEMAS: &[Method] = &[Method::DatasetCreate];

fn index(dir: &Path) -> serde_json::Map<String, Value> {
    let text = std::fs::read_to_string(dir.join("index.json")).unwrap();
    let index: Value = serde_json::from_str(&text).unwrap();
    index["methods"].as_object().unwrap().clone()
}

fn schema(dir: &Path, method: Method) -> Value {
    let text = std::fs::read_to_string(dir.join(format!("{}.json", method.as_str()))).unwrap();
    serde_json::from_str(&text).unwrap()
}

/// Panics with every schema error of `call` on `flavor`.
fn assert_valid(dir: &Path, flavor: ApiFlavor, call: &Call) {
    assert_valid_on(dir, flavor.as_str(), call);
}

/// Panics with every schema error of `call` against the schemas of `release`.
fn assert_valid_on(dir: &Path, release: &str, call: &Call) {
    let schema = schema(dir, call.method);
    let validator = jsonschema::validator_for(&schema).unwrap();
    let params = Value::Array(call.params.clone());
    let errors: Vec<String> = validator
        .iter_errors(&params)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect();
    // The params may hold the test key: the messages are about shapes; print them.
    assert!(
        errors.is_empty(),
        "{} params invalid on {release}: {errors:?}",
        call.method
    );
}

/// Every release with a schema directory, including those this build may not speak yet.
const SCHEMA_RELEASES: &[&str] = &["24.10", "25.04", "25.10", "26.0", "27.0"];

#[test]
fn run_and_job_calls_match_every_schema_directory() {
    // Built the same on every version: `cloudsync.sync [id]` (no options object, so the
    // job lock is per task), the queued-run and job reads around it, the real-run
    // lookup of health, and the credential read-back.
    let made = [
        calls::cloudsync_sync(7),
        calls::queued_cloudsync_runs(),
        calls::job(42),
        calls::cloudsync_runs_of(7, 50),
        calls::credential_by_id(3),
    ];
    for release in SCHEMA_RELEASES {
        let Some(dir) = schema_dir(release) else {
            eprintln!("skipped: shared/truenas-api/{release} not found (set SHARED_DIR)");
            continue;
        };
        for call in &made {
            assert_valid_on(&dir, release, call);
        }
    }
}

#[test]
fn every_method_exists_exactly_where_available_on_says() {
    for flavor in ApiFlavor::ALL {
        let Some(dir) = schema_dir(flavor.as_str()) else {
            eprintln!("skipped: shared/truenas-api not found (set SHARED_DIR)");
            return;
        };
        let known = index(&dir);
        for method in Method::ALL {
            if NOT_IN_SCHEMAS.contains(method) {
                continue;
            }
            assert_eq!(
                known.contains_key(method.as_str()),
                method.available_on(flavor),
                "{method} on {flavor}: schema index and Method::available_on disagree"
            );
        }
    }
}

#[test]
fn the_clients_own_calls_match_every_schema() {
    let key = SecretString::from("1-abcdefghijklmnop".to_owned());
    for flavor in ApiFlavor::ALL {
        let Some(dir) = schema_dir(flavor.as_str()) else {
            eprintln!("skipped: shared/truenas-api not found (set SHARED_DIR)");
            return;
        };
        let mut calls = vec![client_calls::version_short(), calls::job(42)];
        if flavor == ApiFlavor::V24_10 {
            // The legacy protocol's login (JSON-RPC logs in with `auth.login_ex`).
            calls.push(client_calls::login_with_api_key(&key));
        } else {
            // JSON-RPC only: 24.10 logs in with the key alone and subscribes with `sub`.
            calls.push(client_calls::login_ex_api_key("agent", &key));
            calls.push(client_calls::subscribe("core.get_jobs"));
            calls.push(client_calls::unsubscribe("5c0ad7a2-sub"));
        }
        for call in &calls {
            assert!(
                call.method.available_on(flavor),
                "{} on {flavor}",
                call.method
            );
            assert_valid(&dir, flavor, call);
        }
    }
}

/// The agent's own requests (`middleware::calls`) that carry no task payload, built for
/// each flavour, against that flavour's schemas (the task payloads are checked by the
/// simulator, `crates/sim/src/schema.rs`; the install calls by `install.rs`'s scripted NAS).
#[test]
fn the_agents_requests_match_every_schema() {
    let key = SecretString::from("K005-abcdefghijklmnop".to_owned());
    let b2 = calls::B2Key {
        key_id: "0051abc",
        application_key: &key,
    };
    for flavor in ApiFlavor::ALL {
        let Some(dir) = schema_dir(flavor.as_str()) else {
            eprintln!("skipped: shared/truenas-api not found (set SHARED_DIR)");
            return;
        };
        let made = [
            calls::pools_query(),
            calls::root_datasets_query(&["pool0".into()]),
            calls::credentials_query(),
            calls::cloudsync_query(),
            calls::snapshot_tasks_query(),
            calls::snmp_config(),
            calls::service_query(calls::SNMP_SERVICE),
            calls::service_enable(calls::SNMP_SERVICE),
            calls::service_start(flavor, calls::SNMP_SERVICE),
            calls::credential_verify(flavor, b2),
            calls::list_buckets(3),
            calls::recent_cloudsync_successes(50),
            calls::alert_list(),
            calls::snapshot_names(flavor, "pool0", "auto-"),
            calls::snapshot_count(flavor, "pool0", "auto-"),
            calls::ping(),
            calls::system_info(),
            calls::host_id(),
            calls::dataset_user_props("pool0"),
            calls::dataset_query("pool0/.truenas-agent"),
            calls::user_properties_set("pool0", &[("com.example:guid", "g")]),
            calls::user_property_remove("pool0", "com.example:guid"),
            calls::init_scripts_query(),
            calls::init_script_delete(4),
        ];
        for call in &made {
            assert!(
                call.method.available_on(flavor),
                "{} on {flavor}",
                call.method
            );
            assert_valid(&dir, flavor, call);
        }
    }
}

#[test]
fn a_wrong_payload_is_caught_by_the_check() {
    // The check above must be able to fail: a login without a username is invalid.
    let Some(dir) = schema_dir("25.04") else {
        eprintln!("skipped: shared/truenas-api not found (set SHARED_DIR)");
        return;
    };
    let bad = Call::new(
        Method::AuthLoginEx,
        vec![serde_json::json!({"mechanism": "API_KEY_PLAIN", "api_key": "1-x"})],
    );
    let result = std::panic::catch_unwind(|| assert_valid(&dir, ApiFlavor::V25_04, &bad));
    assert!(result.is_err());
}
