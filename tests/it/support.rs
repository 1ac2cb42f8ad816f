//! Helpers shared by the integration tests.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;
use truenas_agent::middleware::{ApiInfo, Call, CallError, Job, JobId, Middleware};
use truenas_agent::sim::{InProcess, Simulator};

/// The read-only `shared/` folder (TrueNAS API schemas, VM harness, ...):
/// `$SHARED_DIR`, else `<repo>/../shared`. `None` when absent (CI without it): tests that
/// need it skip with a message, the rest still run.
pub fn shared_dir() -> Option<PathBuf> {
    let dir = std::env::var_os("SHARED_DIR").map_or_else(
        || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared"),
        PathBuf::from,
    );
    dir.join("truenas-api").is_dir().then_some(dir)
}

/// Directory of the TrueNAS API schemas for one release (`24.10`, `25.04`, `25.10`).
pub fn schema_dir(release: &str) -> Option<PathBuf> {
    shared_dir().map(|d| d.join("truenas-api").join(release))
}

/// Canary secret values: tests put these into documents and then scan every output,
/// log line and written file for them.
pub const CANARIES: &[&str] = &[
    "CANARY-B2-APPKEY-7f3a9c",
    "CANARY-ENC-PASSWORD-2b8e41",
    "CANARY-ENC-SALT-9d0c55",
    "CANARY-SNMP-AUTH-61aa07",
    "CANARY-SNMP-PRIV-c4e2f8",
    "CANARY-DEVICE-TOKEN-5e19b3",
    "CANARY-API-KEY-0a7d62",
];

/// Panics naming the canary and where it was found.
pub fn assert_no_canary(label: &str, text: &str) {
    for canary in CANARIES {
        assert!(
            !text.contains(canary),
            "secret canary {canary} leaked into {label}"
        );
    }
}

/// Scans every regular file under `dir` (recursively) for canaries.
pub fn assert_no_canary_in_dir(dir: &std::path::Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            assert_no_canary_in_dir(&path);
        } else if let Ok(bytes) = std::fs::read(&path) {
            assert_no_canary(
                &path.display().to_string(),
                &String::from_utf8_lossy(&bytes),
            );
        }
    }
}

/// Validates every call's params against `shared/truenas-api/<ver>/<method>.json`
/// before passing it on; violations are collected (paths and keywords only: messages
/// could quote secrets).
pub struct SchemaChecked {
    inner: InProcess,
    dir: Option<PathBuf>,
    cache: Mutex<BTreeMap<String, Arc<jsonschema::Validator>>>,
    violations: Arc<Mutex<Vec<String>>>,
}

impl SchemaChecked {
    #[allow(clippy::print_stderr)]
    pub fn new(sim: &Simulator, violations: &Arc<Mutex<Vec<String>>>) -> Self {
        let dir = schema_dir(sim.flavor().as_str());
        if dir.is_none() {
            eprintln!("shared/truenas-api not found: calls are not schema-checked");
        }
        Self {
            inner: sim.in_process(),
            dir,
            cache: Mutex::new(BTreeMap::new()),
            violations: violations.clone(),
        }
    }

    fn check(&self, call: &Call) {
        let Some(dir) = &self.dir else { return };
        let name = call.method.as_str();
        let validator = {
            let mut cache = self.cache.lock().unwrap();
            if let Some(v) = cache.get(name) {
                v.clone()
            } else {
                let path = dir.join(format!("{name}.json"));
                let Ok(text) = std::fs::read(&path) else {
                    self.violations
                        .lock()
                        .unwrap()
                        .push(format!("{name}: no schema in {}", dir.display()));
                    return;
                };
                let schema: Value = serde_json::from_slice(&text).unwrap();
                let v = Arc::new(jsonschema::validator_for(&schema).unwrap());
                cache.insert(name.to_owned(), v.clone());
                v
            }
        };
        let params = Value::Array(call.params.clone());
        for e in validator.iter_errors(&params) {
            self.violations.lock().unwrap().push(format!(
                "{name}: params{} breaks `{}`",
                e.instance_path(),
                e.schema_path()
            ));
        }
    }
}

impl Middleware for SchemaChecked {
    fn api(&self) -> ApiInfo {
        self.inner.api()
    }
    async fn call(&self, call: Call) -> Result<Value, CallError> {
        self.check(&call);
        self.inner.call(call).await
    }
    async fn wait_job(&self, id: JobId, timeout: Duration) -> Result<Job, CallError> {
        self.inner.wait_job(id, timeout).await
    }
}
