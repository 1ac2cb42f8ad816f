//! Typed request builders: the exact [`Call`] the agent sends for each operation, per
//! API flavour (REFERENCE §6 is the checklist of differences). One builder per request:
//! `apply`, `observe`, `health`, `b2`, `zfs`, `install`, `scrub` and the client's job
//! lookup all take their calls from here.
//!
//! Owns: method choice and positional param shapes — credential shape (24.10 `provider`
//! string + `attributes` vs 25.04+ `provider` object), the verify param, service start
//! (`service.start` vs the 25.10+ `service.control` job), `service.update`'s id, the
//! snapshot listing method (`zfs.snapshot.query` vs the 25.10+ `pool.snapshot.query`),
//! the reads `observe` and `health` make, the user-property reads and writes of the `zfs`
//! middleware fallback, and the dataset and init-script calls of `install`.
//! Does not: decide what to send (task field values come from `apply`, the install
//! dataset's spec from `install`), send anything, or decode replies.
//! Invariants: pure functions; params are always a positional array; every builder's
//! output validates against `shared/truenas-api/<flavour>/<method>.json` (checked by
//! `tests/it/allow_list.rs`, except `pool.dataset.create`, which the schemas lack);
//! secrets go into params only (a [`Call`]'s `Debug` hides them).
//! Limitations: B2 is the only cloud provider the agent builds credentials for.

use secrecy::{ExposeSecret, SecretString};
use serde_json::{Map, Value, json};

use super::{ApiFlavor, Call, Method};

/// The name TrueNAS gives the SNMP service in `service.*`.
pub const SNMP_SERVICE: &str = "snmp";

/// A B2 application key as the credential's provider attributes.
#[derive(Debug, Clone, Copy)]
pub struct B2Key<'a> {
    /// The key ID (`account` in the middleware).
    pub key_id: &'a str,
    /// The application key (`key` in the middleware).
    pub application_key: &'a SecretString,
}

/// The credential's provider in the flavour's shape. 24.10: `("B2", {account, key})`
/// goes into two top-level keys; 25.04+: one `provider` object with `type`.
fn b2_provider_fields(flavor: ApiFlavor, key: B2Key<'_>) -> Map<String, Value> {
    let attributes = json!({
        "account": key.key_id,
        "key": key.application_key.expose_secret(),
    });
    let mut out = Map::new();
    match flavor {
        ApiFlavor::V24_10 => {
            out.insert("provider".into(), json!("B2"));
            out.insert("attributes".into(), attributes);
        }
        ApiFlavor::V25_04 | ApiFlavor::V25_10 | ApiFlavor::V26_0 | ApiFlavor::V27_0 => {
            let mut provider = json!({"type": "B2"});
            if let (Some(p), Value::Object(a)) = (provider.as_object_mut(), attributes) {
                p.extend(a);
            }
            out.insert("provider".into(), provider);
        }
    }
    out
}

/// `cloudsync.credentials.create` for a B2 key named `name`.
pub fn credential_create(flavor: ApiFlavor, name: &str, key: B2Key<'_>) -> Call {
    let mut body = Map::new();
    body.insert("name".into(), json!(name));
    body.extend(b2_provider_fields(flavor, key));
    Call::new(Method::CredentialsCreate, vec![Value::Object(body)])
}

/// `cloudsync.credentials.update`: name and the whole provider (the middleware replaces
/// `provider`/`attributes` as a unit, so a partial one would drop the other half).
pub fn credential_update(flavor: ApiFlavor, id: u64, name: &str, key: B2Key<'_>) -> Call {
    let mut body = Map::new();
    body.insert("name".into(), json!(name));
    body.extend(b2_provider_fields(flavor, key));
    Call::new(
        Method::CredentialsUpdate,
        vec![json!(id), Value::Object(body)],
    )
}

/// `cloudsync.credentials.verify`: 24.10 takes `{provider, attributes}`, 25.04+ the
/// provider object itself.
pub fn credential_verify(flavor: ApiFlavor, key: B2Key<'_>) -> Call {
    let fields = b2_provider_fields(flavor, key);
    let param = match flavor {
        ApiFlavor::V24_10 => Value::Object(fields),
        ApiFlavor::V25_04 | ApiFlavor::V25_10 | ApiFlavor::V26_0 | ApiFlavor::V27_0 => {
            fields.get("provider").cloned().unwrap_or(Value::Null)
        }
    };
    Call::new(Method::CredentialsVerify, vec![param])
}

/// `cloudsync.list_buckets [credential_id]`.
pub fn list_buckets(credential_id: u64) -> Call {
    Call::new(Method::CloudsyncListBuckets, vec![json!(credential_id)])
}

/// `cloudsync.create [task]` with a complete task object.
pub fn cloudsync_create(task: Map<String, Value>) -> Call {
    Call::new(Method::CloudsyncCreate, vec![Value::Object(task)])
}

/// `cloudsync.update [id, fields]`; nested objects in `fields` must be complete.
pub fn cloudsync_update(id: u64, fields: Map<String, Value>) -> Call {
    Call::new(
        Method::CloudsyncUpdate,
        vec![json!(id), Value::Object(fields)],
    )
}

/// `cloudsync.delete [id]`.
pub fn cloudsync_delete(id: u64) -> Call {
    Call::new(Method::CloudsyncDelete, vec![json!(id)])
}

/// `cloudsync.sync [id]` — a job; returns its id. No options object: the job lock is
/// `cloud_sync:{args[-1]}` over the params as sent (`MW/plugins/cloud_sync.py`), so
/// `[id]` locks this task alone — the lock cron's scheduled runs use too — while
/// `[id, {"dry_run": false}]` would share one lock with every task sent the same
/// options (REFERENCE §3.3).
pub fn cloudsync_sync(id: u64) -> Call {
    Call::new(Method::CloudsyncSync, vec![json!(id)])
}

/// `core.get_jobs` of the `cloudsync.sync` jobs still queued (`WAITING`): the only jobs
/// a `cloudsync.sync` call can hand back instead of starting a run (`MW/job.py`
/// `JobsQueue.add`).
pub fn queued_cloudsync_runs() -> Call {
    Call::new(
        Method::CoreGetJobs,
        vec![json!([
            ["method", "=", "cloudsync.sync"],
            ["state", "=", "WAITING"]
        ])],
    )
}

/// `core.get_jobs [[["id", "=", id]]]` → a list with that job, or empty.
pub fn job(id: u64) -> Call {
    Call::new(Method::CoreGetJobs, vec![json!([["id", "=", id]])])
}

/// `core.get_jobs` of the newest `limit` runs of Cloud Sync task `task` (newest first),
/// dry runs included: the middleware's filters cannot exclude them reliably (a path
/// missing from a job never matches, `MW/utils/filter_list.py`), so callers skip them.
pub fn cloudsync_runs_of(task: u64, limit: u64) -> Call {
    Call::new(
        Method::CoreGetJobs,
        vec![
            json!([
                ["method", "=", "cloudsync.sync"],
                ["arguments.0", "=", task]
            ]),
            json!({"order_by": ["-id"], "limit": limit}),
        ],
    )
}

/// `cloudsync.credentials.query [[["id", "=", id]]]`: the stored credential, to prove a
/// write (the create/update answer is built from the data sent, not read back).
pub fn credential_by_id(id: u64) -> Call {
    Call::new(Method::CredentialsQuery, vec![json!([["id", "=", id]])])
}

/// `pool.snapshottask.create [task]` with every field (24.10 requires all of them).
pub fn snapshot_task_create(task: Map<String, Value>) -> Call {
    Call::new(Method::SnapshotTaskCreate, vec![Value::Object(task)])
}

/// `pool.snapshottask.update [id, fields]`; `schedule` must be complete.
pub fn snapshot_task_update(id: u64, fields: Map<String, Value>) -> Call {
    Call::new(
        Method::SnapshotTaskUpdate,
        vec![json!(id), Value::Object(fields)],
    )
}

/// `pool.snapshottask.delete [id, {"fixate_removal_date": false}]`: existing snapshots
/// keep expiring by the task's retention as before.
pub fn snapshot_task_delete(id: u64) -> Call {
    Call::new(
        Method::SnapshotTaskDelete,
        vec![json!(id), json!({"fixate_removal_date": false})],
    )
}

/// `snmp.update [fields]` (a partial update; only the keys given change).
pub fn snmp_update(fields: Map<String, Value>) -> Call {
    Call::new(Method::SnmpUpdate, vec![Value::Object(fields)])
}

/// `service.update [name, {"enable": true}]`: start at boot.
pub fn service_enable(service: &str) -> Call {
    Call::new(
        Method::ServiceUpdate,
        vec![json!(service), json!({"enable": true})],
    )
}

/// Start a service now: `service.start` (24.10/25.04, returns a bool) or the 25.10+
/// `service.control START` job (`service.start` is deprecated in 25.10 and private from
/// 26.0 on).
/// `silent: false` makes a failed start an error instead of a quiet `false`.
pub fn service_start(flavor: ApiFlavor, service: &str) -> Call {
    match flavor {
        ApiFlavor::V24_10 | ApiFlavor::V25_04 => Call::new(
            Method::ServiceStart,
            vec![
                json!(service),
                json!({"ha_propagate": true, "silent": false}),
            ],
        ),
        ApiFlavor::V25_10 | ApiFlavor::V26_0 | ApiFlavor::V27_0 => Call::new(
            Method::ServiceControl,
            vec![
                json!("START"),
                json!(service),
                json!({"ha_propagate": true, "silent": false, "timeout": 120}),
            ],
        ),
    }
}

/// `pool.query []`: every imported pool (the boot pool is not listed).
pub fn pools_query() -> Call {
    Call::bare(Method::PoolQuery)
}

/// `pool.dataset.query` of the pools' root datasets only, with user properties and no
/// children or ZFS properties (the cheap form of REFERENCE §4.7).
pub fn root_datasets_query(pools: &[String]) -> Call {
    Call::new(
        Method::DatasetQuery,
        vec![
            json!([["id", "in", pools]]),
            json!({"extra": {"retrieve_children": false, "properties": [], "retrieve_user_props": true}}),
        ],
    )
}

/// `cloudsync.credentials.query []`.
pub fn credentials_query() -> Call {
    Call::bare(Method::CredentialsQuery)
}

/// `cloudsync.query []`.
pub fn cloudsync_query() -> Call {
    Call::bare(Method::CloudsyncQuery)
}

/// `pool.snapshottask.query []`.
pub fn snapshot_tasks_query() -> Call {
    Call::bare(Method::SnapshotTaskQuery)
}

/// `cloudsync.query [[["id", "=", id]]]`: one task (the daemon re-reads a task an event
/// named without its fields).
pub fn cloudsync_by_id(id: u64) -> Call {
    Call::new(Method::CloudsyncQuery, vec![json!([["id", "=", id]])])
}

/// `pool.snapshottask.query [[["id", "=", id]]]`: one task.
pub fn snapshot_task_by_id(id: u64) -> Call {
    Call::new(Method::SnapshotTaskQuery, vec![json!([["id", "=", id]])])
}

/// `snmp.config []`.
pub fn snmp_config() -> Call {
    Call::bare(Method::SnmpConfig)
}

/// `service.query [[["service", "=", name]]]`.
pub fn service_query(service: &str) -> Call {
    Call::new(
        Method::ServiceQuery,
        vec![json!([["service", "=", service]])],
    )
}

/// `core.get_jobs` of the newest `limit` successful `cloudsync.sync` jobs (all tasks):
/// health's last success of each task since middlewared started.
pub fn recent_cloudsync_successes(limit: u64) -> Call {
    Call::new(
        Method::CoreGetJobs,
        vec![
            json!([["method", "=", "cloudsync.sync"], ["state", "=", "SUCCESS"]]),
            json!({"order_by": ["-id"], "limit": limit}),
        ],
    )
}

/// `alert.list []`: the middleware's current alerts.
pub fn alert_list() -> Call {
    Call::bare(Method::AlertList)
}

/// `core.ping []`: the daemon's liveness probe.
pub fn ping() -> Call {
    Call::bare(Method::CorePing)
}

/// `system.info []`.
pub fn system_info() -> Call {
    Call::bare(Method::SystemInfo)
}

/// `system.host_id []`: SHA-256 of `/etc/hostid` (the host identity ZFS records).
pub fn host_id() -> Call {
    Call::bare(Method::SystemHostId)
}

/// The snapshot listing method of a flavour (REFERENCE §4.8; `zfs.snapshot` is private
/// in 25.10 and gone in 26.0, NEWER.md).
pub fn snapshot_method(flavor: ApiFlavor) -> Method {
    match flavor {
        ApiFlavor::V24_10 | ApiFlavor::V25_04 => Method::ZfsSnapshotQuery,
        ApiFlavor::V25_10 | ApiFlavor::V26_0 | ApiFlavor::V27_0 => Method::PoolSnapshotQuery,
    }
}

/// Names of `pool`'s root-dataset snapshots with `prefix` — the fast path: only
/// `dataset`/`name` filters and `select: ["name"]`, so the middleware lists names only.
pub fn snapshot_names(flavor: ApiFlavor, pool: &str, prefix: &str) -> Call {
    Call::new(
        snapshot_method(flavor),
        vec![
            json!([
                ["dataset", "=", pool],
                ["name", "rin", format!("@{prefix}")]
            ]),
            json!({"select": ["name"]}),
        ],
    )
}

/// Count of `pool`'s snapshots (recursive) with `prefix` — the `count` fast path.
pub fn snapshot_count(flavor: ApiFlavor, pool: &str, prefix: &str) -> Call {
    Call::new(
        snapshot_method(flavor),
        vec![
            json!([["pool", "=", pool], ["name", "rin", format!("@{prefix}")]]),
            json!({"count": true}),
        ],
    )
}

/// `pool.dataset.query`'s options for user properties only: no children, no native
/// properties (the cheap form of REFERENCE §4.7).
fn user_props_only() -> Value {
    json!({"extra": {"retrieve_children": false, "properties": [], "retrieve_user_props": true}})
}

/// `pool.dataset.query` of exactly one dataset, user properties only (the `zfs`
/// middleware fallback).
pub fn dataset_user_props(dataset: &str) -> Call {
    Call::new(
        Method::DatasetQuery,
        vec![json!([["id", "=", dataset]]), user_props_only()],
    )
}

/// `pool.dataset.query` of one dataset with its properties (encryption, key format,
/// `exec`, `readonly`, mountpoint) and without its children: what `install` checks.
pub fn dataset_query(dataset: &str) -> Call {
    Call::new(
        Method::DatasetQuery,
        vec![
            json!([["id", "=", dataset]]),
            json!({"extra": {"retrieve_children": false}}),
        ],
    )
}

/// `pool.dataset.create [spec]`.
pub fn dataset_create(spec: Map<String, Value>) -> Call {
    Call::new(Method::DatasetCreate, vec![Value::Object(spec)])
}

/// `pool.dataset.update [dataset, {"user_properties_update": items}]`.
fn user_properties_update(dataset: &str, items: Vec<Value>) -> Call {
    let mut update = Map::new();
    update.insert("user_properties_update".into(), Value::Array(items));
    Call::new(
        Method::DatasetUpdate,
        vec![json!(dataset), Value::Object(update)],
    )
}

/// `pool.dataset.update` setting user properties (`(key, value)` pairs) in one call.
pub fn user_properties_set(dataset: &str, props: &[(&str, &str)]) -> Call {
    let items = props
        .iter()
        .map(|(key, value)| json!({"key": key, "value": value}))
        .collect();
    user_properties_update(dataset, items)
}

/// `pool.dataset.update` removing a user property (`remove` = `zfs inherit`).
pub fn user_property_remove(dataset: &str, key: &str) -> Call {
    user_properties_update(dataset, vec![json!({"key": key, "remove": true})])
}

/// `initshutdownscript.query [[], {"order_by": ["id"]}]`: every entry, oldest first.
pub fn init_scripts_query() -> Call {
    Call::new(
        Method::InitScriptQuery,
        vec![json!([]), json!({"order_by": ["id"]})],
    )
}

/// `initshutdownscript.create [entry]`.
pub fn init_script_create(entry: Value) -> Call {
    Call::new(Method::InitScriptCreate, vec![entry])
}

/// `initshutdownscript.update [id, entry]`.
pub fn init_script_update(id: i64, entry: Value) -> Call {
    Call::new(Method::InitScriptUpdate, vec![json!(id), entry])
}

/// `initshutdownscript.delete [id]`.
pub fn init_script_delete(id: i64) -> Call {
    Call::new(Method::InitScriptDelete, vec![json!(id)])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> SecretString {
        SecretString::from("CANARY-B2-APPKEY-7f3a9c")
    }

    #[test]
    fn credential_shapes_per_flavour() {
        let k = key();
        let b2 = B2Key {
            key_id: "0051",
            application_key: &k,
        };
        let old = credential_create(ApiFlavor::V24_10, "truenas-x", b2);
        assert_eq!(old.method, Method::CredentialsCreate);
        assert_eq!(
            old.params,
            vec![json!({"name": "truenas-x", "provider": "B2",
                        "attributes": {"account": "0051", "key": "CANARY-B2-APPKEY-7f3a9c"}})]
        );
        for flavor in ApiFlavor::ALL.into_iter().skip(1) {
            let new = credential_create(flavor, "truenas-x", b2);
            assert_eq!(
                new.params,
                vec![json!({"name": "truenas-x",
                            "provider": {"type": "B2", "account": "0051", "key": "CANARY-B2-APPKEY-7f3a9c"}})]
            );
        }
        let upd = credential_update(ApiFlavor::V25_04, 3, "truenas-x", b2);
        assert_eq!(upd.params[0], json!(3));
        assert_eq!(upd.params[1]["provider"]["type"], "B2");
    }

    #[test]
    fn verify_param_per_flavour() {
        let k = key();
        let b2 = B2Key {
            key_id: "0051",
            application_key: &k,
        };
        assert_eq!(
            credential_verify(ApiFlavor::V24_10, b2).params,
            vec![
                json!({"provider": "B2", "attributes": {"account": "0051", "key": "CANARY-B2-APPKEY-7f3a9c"}})
            ]
        );
        assert_eq!(
            credential_verify(ApiFlavor::V25_10, b2).params,
            vec![json!({"type": "B2", "account": "0051", "key": "CANARY-B2-APPKEY-7f3a9c"})]
        );
    }

    #[test]
    fn service_start_per_flavour() {
        let old = service_start(ApiFlavor::V25_04, SNMP_SERVICE);
        assert_eq!(old.method, Method::ServiceStart);
        assert_eq!(old.params[0], json!("snmp"));
        for flavor in [ApiFlavor::V25_10, ApiFlavor::V26_0, ApiFlavor::V27_0] {
            let new = service_start(flavor, SNMP_SERVICE);
            assert_eq!(new.method, Method::ServiceControl, "{flavor}");
            assert_eq!(new.params[..2], [json!("START"), json!("snmp")]);
        }
        for flavor in ApiFlavor::ALL {
            assert!(service_start(flavor, "snmp").method.available_on(flavor));
            assert!(service_start(flavor, "snmp").method.is_write());
        }
        assert_eq!(
            service_enable("snmp").params,
            vec![json!("snmp"), json!({"enable": true})]
        );
    }

    #[test]
    fn reads_are_reads_and_writes_are_writes() {
        let reads = [
            pools_query(),
            root_datasets_query(&["pool0".into()]),
            credentials_query(),
            cloudsync_query(),
            snapshot_tasks_query(),
            snmp_config(),
            service_query("snmp"),
            list_buckets(1),
            queued_cloudsync_runs(),
            job(3),
            cloudsync_runs_of(1, 50),
            credential_by_id(1),
            recent_cloudsync_successes(50),
            alert_list(),
            ping(),
            system_info(),
            host_id(),
            dataset_user_props("pool0"),
            dataset_query("pool0/.truenas-agent"),
            init_scripts_query(),
        ];
        for call in reads {
            assert!(!call.method.is_write(), "{call:?}");
        }
        let k = key();
        let b2 = B2Key {
            key_id: "k",
            application_key: &k,
        };
        let writes = [
            credential_create(ApiFlavor::V25_04, "n", b2),
            credential_update(ApiFlavor::V25_04, 1, "n", b2),
            cloudsync_create(Map::new()),
            cloudsync_update(1, Map::new()),
            cloudsync_delete(1),
            cloudsync_sync(1),
            snapshot_task_create(Map::new()),
            snapshot_task_update(1, Map::new()),
            snapshot_task_delete(1),
            snmp_update(Map::new()),
            service_enable("snmp"),
            dataset_create(Map::new()),
            user_properties_set("pool0", &[("a:b", "c")]),
            user_property_remove("pool0", "a:b"),
            init_script_create(json!({})),
            init_script_update(1, json!({})),
            init_script_delete(1),
        ];
        for call in writes {
            assert!(call.method.is_write(), "{call:?}");
        }
        assert!(!credential_verify(ApiFlavor::V25_04, b2).method.is_write());
    }

    #[test]
    fn dataset_query_is_the_cheap_form() {
        let call = root_datasets_query(&["pool0".into(), "pool1".into()]);
        assert_eq!(call.params[0], json!([["id", "in", ["pool0", "pool1"]]]));
        assert_eq!(call.params[1]["extra"]["retrieve_children"], json!(false));
        assert_eq!(call.params[1]["extra"]["retrieve_user_props"], json!(true));
    }

    #[test]
    fn snapshot_listing_per_flavour_uses_the_fast_path() {
        for flavor in ApiFlavor::ALL {
            let expected = if flavor >= ApiFlavor::V25_10 {
                Method::PoolSnapshotQuery
            } else {
                Method::ZfsSnapshotQuery
            };
            assert_eq!(snapshot_method(flavor), expected, "{flavor}");
            assert!(expected.available_on(flavor), "{flavor}");
            for call in [
                snapshot_names(flavor, "pool0", "auto-"),
                snapshot_count(flavor, "pool0", "auto-"),
            ] {
                assert_eq!(call.method, expected);
                // Fast path: every filter is on name/pool/dataset only.
                for filter in call.params[0].as_array().unwrap() {
                    let field = filter[0].as_str().unwrap();
                    assert!(["name", "pool", "dataset"].contains(&field), "{field}");
                }
            }
        }
        let names = snapshot_names(ApiFlavor::V24_10, "pool0", "auto-");
        assert_eq!(
            names.params,
            vec![
                json!([["dataset", "=", "pool0"], ["name", "rin", "@auto-"]]),
                json!({"select": ["name"]})
            ]
        );
        assert_eq!(
            snapshot_count(ApiFlavor::V26_0, "pool0", "auto-").params[1],
            json!({"count": true})
        );
    }

    #[test]
    fn user_property_calls_touch_one_dataset_and_only_the_keys_given() {
        let query = dataset_user_props("pool0");
        assert_eq!(
            query.params,
            vec![
                json!([["id", "=", "pool0"]]),
                json!({"extra": {"retrieve_children": false, "properties": [], "retrieve_user_props": true}})
            ]
        );
        let set = user_properties_set("pool0", &[("a:guid", "g"), ("a:host", "h")]);
        assert_eq!(set.method, Method::DatasetUpdate);
        assert_eq!(
            set.params,
            vec![
                json!("pool0"),
                json!({"user_properties_update": [{"key": "a:guid", "value": "g"}, {"key": "a:host", "value": "h"}]})
            ]
        );
        assert_eq!(
            user_property_remove("pool0", "a:guid").params,
            vec![
                json!("pool0"),
                json!({"user_properties_update": [{"key": "a:guid", "remove": true}]})
            ]
        );
    }

    #[test]
    fn install_calls() {
        let info = dataset_query("pool0/.truenas-agent");
        assert_eq!(
            info.params,
            vec![
                json!([["id", "=", "pool0/.truenas-agent"]]),
                json!({"extra": {"retrieve_children": false}})
            ]
        );
        assert_eq!(
            init_scripts_query().params,
            vec![json!([]), json!({"order_by": ["id"]})]
        );
        let entry = json!({"type": "COMMAND", "command": "true"});
        assert_eq!(
            init_script_create(entry.clone()).params,
            vec![entry.clone()]
        );
        assert_eq!(
            init_script_update(4, entry.clone()).params,
            vec![json!(4), entry]
        );
        assert_eq!(init_script_delete(4).params, vec![json!(4)]);
        let mut spec = Map::new();
        spec.insert("name".into(), json!("pool0/.truenas-agent"));
        assert_eq!(
            dataset_create(spec).params,
            vec![json!({"name": "pool0/.truenas-agent"})]
        );
    }

    #[test]
    fn health_reads() {
        assert_eq!(
            recent_cloudsync_successes(50).params,
            vec![
                json!([["method", "=", "cloudsync.sync"], ["state", "=", "SUCCESS"]]),
                json!({"order_by": ["-id"], "limit": 50})
            ]
        );
        for call in [alert_list(), ping(), system_info(), host_id()] {
            assert!(call.params.is_empty(), "{call:?}");
        }
        assert_eq!(job(7).params, vec![json!([["id", "=", 7]])]);
    }
}
