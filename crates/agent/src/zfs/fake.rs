//! Test double: installs `tests/data/fake-zfs.sh` as `zfs` and `zpool` in a temporary
//! directory and drives it through files (see the script's header). Shared by the unit
//! tests of `zfs` and `identity`.

#![allow(clippy::unwrap_used, clippy::missing_panics_doc)]

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::command::{CommandConfig, Program, ZfsCommand};

const SCRIPT: &str = include_str!("../../../../tests/data/fake-zfs.sh");

/// A fake `zfs`/`zpool` pair with its state directory.
pub(crate) struct FakeZfs {
    dir: tempfile::TempDir,
}

impl FakeZfs {
    /// Fake with these imported pools.
    pub(crate) fn new(pools: &[&str]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        for name in ["zfs", "zpool"] {
            crate::fs::write_atomic(&dir.path().join(name), SCRIPT.as_bytes(), 0o755).unwrap();
        }
        let fake = Self { dir };
        fake.set_pools(pools);
        fake.write_hostid(&[0x11, 0x8b, 0x52, 0x34]);
        fake
    }

    pub(crate) fn path(&self) -> &Path {
        self.dir.path()
    }

    pub(crate) fn set_pools(&self, pools: &[&str]) {
        self.write("pools", &lines(pools));
    }

    pub(crate) fn set_datasets(&self, datasets: &[&str]) {
        self.write("datasets", &lines(datasets));
    }

    /// Stores a property value as if `zfs set` had (any bytes, tabs included).
    pub(crate) fn set_prop(&self, dataset: &str, key: &str, value: &str) {
        let dir = self.prop_dir(dataset);
        crate::fs::create_dir_all(&dir, 0o755).unwrap();
        crate::fs::write_atomic(&dir.join(key), value.as_bytes(), 0o644).unwrap();
    }

    /// Makes the SOURCE column of a stored property read `source`.
    pub(crate) fn set_prop_source(&self, dataset: &str, key: &str, source: &str) {
        let path = self.prop_dir(dataset).join(format!("{key}.src"));
        crate::fs::write_atomic(&path, source.as_bytes(), 0o644).unwrap();
    }

    /// The stored value, if any.
    pub(crate) fn prop(&self, dataset: &str, key: &str) -> Option<String> {
        crate::fs::read_optional(&self.prop_dir(dataset).join(key))
            .unwrap()
            .map(|b| String::from_utf8(b).unwrap())
    }

    /// A failure mode for every run (`sleep`, `eperm`, `garbage`, …).
    pub(crate) fn fail(&self, mode: &str) {
        self.write("fail", mode);
    }

    /// A failure mode for one program and subcommand, e.g. `("zfs", "set", "eperm")`.
    pub(crate) fn fail_op(&self, program: &str, subcommand: &str, mode: &str) {
        self.write(&format!("fail.{program}.{subcommand}"), mode);
    }

    pub(crate) fn clear_failures(&self) {
        for entry in std::fs::read_dir(self.path()).unwrap().flatten() {
            if entry.file_name().to_string_lossy().starts_with("fail") {
                std::fs::remove_file(entry.path()).unwrap();
            }
        }
    }

    pub(crate) fn write_hostid(&self, bytes: &[u8]) {
        crate::fs::write_atomic(&self.hostid_file(), bytes, 0o644).unwrap();
    }

    pub(crate) fn hostid_file(&self) -> PathBuf {
        self.path().join("hostid")
    }

    /// Every run so far, one line each: `prog [arg] [arg] …`.
    pub(crate) fn argv(&self) -> Vec<String> {
        crate::fs::read_optional(&self.path().join("argv.log"))
            .unwrap()
            .map(|b| String::from_utf8(b).unwrap())
            .unwrap_or_default()
            .lines()
            .map(str::to_owned)
            .collect()
    }

    /// Runs of `zfs set` and `zfs inherit` so far.
    pub(crate) fn writes(&self) -> Vec<String> {
        self.argv()
            .into_iter()
            .filter(|l| l.starts_with("zfs [set]") || l.starts_with("zfs [inherit]"))
            .collect()
    }

    pub(crate) fn backend(&self) -> ZfsCommand {
        self.backend_with_timeout(Duration::from_secs(20))
    }

    pub(crate) fn backend_with_timeout(&self, timeout: Duration) -> ZfsCommand {
        ZfsCommand::new(CommandConfig {
            zfs: Program::Path(self.path().join("zfs")),
            zpool: Program::Path(self.path().join("zpool")),
            hostid_file: self.hostid_file(),
            timeout,
        })
    }

    fn prop_dir(&self, dataset: &str) -> PathBuf {
        self.path().join("props").join(dataset.replace('/', "%"))
    }

    fn write(&self, name: &str, content: &str) {
        crate::fs::write_atomic(&self.path().join(name), content.as_bytes(), 0o644).unwrap();
    }
}

fn lines(items: &[&str]) -> String {
    items.iter().flat_map(|i| [*i, "\n"]).collect()
}

/// A small in-memory middleware that answers only what the identity fallback sends
/// (`pool.query`, `pool.dataset.query`, `pool.dataset.update`, `system.host_id`) the way
/// the middleware of the given flavour does, records every call, and fails the test on
/// any other method. Pool root datasets exist for every pool; `datasets` adds children.
pub(crate) struct FakeMiddleware {
    pub(crate) flavor: crate::middleware::ApiFlavor,
    state: std::sync::Mutex<MwState>,
}

#[derive(Default)]
struct MwState {
    pools: Vec<String>,
    datasets: Vec<String>,
    props: std::collections::BTreeMap<(String, String), String>,
    host_id: Option<String>,
    calls: Vec<crate::middleware::Call>,
    fail_next: Option<crate::middleware::CallError>,
}

impl FakeMiddleware {
    pub(crate) fn new(flavor: crate::middleware::ApiFlavor, pools: &[&str]) -> Self {
        let state = MwState {
            pools: pools.iter().map(|p| (*p).to_owned()).collect(),
            host_id: Some(
                "8331920580b61d5d662e036c0d22d25554340cb03dac52a08aff8076d3e675bc".to_owned(),
            ),
            ..MwState::default()
        };
        Self {
            flavor,
            state: std::sync::Mutex::new(state),
        }
    }

    pub(crate) fn set_datasets(&self, datasets: &[&str]) {
        self.state.lock().unwrap().datasets = datasets.iter().map(|d| (*d).to_owned()).collect();
    }

    pub(crate) fn set_prop(&self, dataset: &str, key: &str, value: &str) {
        self.state
            .lock()
            .unwrap()
            .props
            .insert((dataset.to_owned(), key.to_owned()), value.to_owned());
    }

    pub(crate) fn prop(&self, dataset: &str, key: &str) -> Option<String> {
        self.state
            .lock()
            .unwrap()
            .props
            .get(&(dataset.to_owned(), key.to_owned()))
            .cloned()
    }

    pub(crate) fn set_host_id(&self, host_id: Option<&str>) {
        self.state.lock().unwrap().host_id = host_id.map(str::to_owned);
    }

    pub(crate) fn fail_next(&self, err: crate::middleware::CallError) {
        self.state.lock().unwrap().fail_next = Some(err);
    }

    pub(crate) fn calls(&self) -> Vec<crate::middleware::Call> {
        self.state.lock().unwrap().calls.clone()
    }

    fn answer(&self, call: &crate::middleware::Call) -> serde_json::Value {
        use crate::middleware::Method;
        use serde_json::json;
        let mut state = self.state.lock().unwrap();
        match call.method {
            Method::PoolQuery => json!(
                state
                    .pools
                    .iter()
                    .map(|p| json!({"id": 1, "name": p, "status": "ONLINE"}))
                    .collect::<Vec<_>>()
            ),
            Method::SystemHostId => json!(state.host_id),
            Method::DatasetQuery => {
                let id = call.params[0][0][2].as_str().unwrap().to_owned();
                assert_eq!(call.params[0][0][1], "=", "one dataset per query");
                assert_eq!(call.params[1]["extra"]["retrieve_children"], false);
                let exists = state.pools.contains(&id) || state.datasets.contains(&id);
                if !exists {
                    return json!([]);
                }
                json!([{"id": id, "name": id, "user_properties": self.user_props(&state, &id)}])
            }
            Method::DatasetUpdate => {
                let id = call.params[0].as_str().unwrap().to_owned();
                for item in call.params[1]["user_properties_update"].as_array().unwrap() {
                    let key = item["key"].as_str().unwrap().to_owned();
                    if item.get("remove") == Some(&json!(true)) {
                        state.props.remove(&(id.clone(), key));
                    } else {
                        let value = item["value"].as_str().unwrap().to_owned();
                        state.props.insert((id.clone(), key), value);
                    }
                }
                json!({"id": id})
            }
            other => panic!("unexpected middleware call {other}"),
        }
    }

    /// User properties as the middleware shows them: own values LOCAL, inherited ones
    /// INHERITED (24.10/25.04) — and everything LOCAL on 25.10.
    fn user_props(&self, state: &MwState, id: &str) -> serde_json::Value {
        use serde_json::json;
        let mut out = serde_json::Map::new();
        let mut ancestors: Vec<&str> = Vec::new();
        let mut at = id;
        while let Some((parent, _)) = at.rsplit_once('/') {
            ancestors.push(parent);
            at = parent;
        }
        let keys: std::collections::BTreeSet<&String> =
            state.props.keys().map(|(_, k)| k).collect();
        for key in keys {
            let own = state
                .props
                .get(&(id.to_owned(), key.clone()))
                .map(|v| (v, "LOCAL", None));
            let found = own.or_else(|| {
                ancestors.iter().find_map(|a| {
                    state
                        .props
                        .get(&((*a).to_owned(), key.clone()))
                        .map(|v| (v, "INHERITED", Some((*a).to_owned())))
                })
            });
            let Some((value, source, info)) = found else {
                continue;
            };
            let source = if self.flavor >= crate::middleware::ApiFlavor::V25_10 {
                "LOCAL"
            } else {
                source
            };
            out.insert(
                key.clone(),
                json!({"value": value, "rawvalue": value, "parsed": value, "source": source, "source_info": info}),
            );
        }
        serde_json::Value::Object(out)
    }
}

impl crate::middleware::Middleware for FakeMiddleware {
    fn api(&self) -> crate::middleware::ApiInfo {
        crate::middleware::ApiInfo {
            flavor: self.flavor,
            version: self.flavor.as_str().to_owned(),
            protocol: crate::middleware::Protocol::JsonRpc,
            transport: crate::middleware::TransportKind::UnixSocket,
            api_version: None,
            newer_than_known: false,
        }
    }

    async fn call(
        &self,
        call: crate::middleware::Call,
    ) -> Result<serde_json::Value, crate::middleware::CallError> {
        let failure = {
            let mut state = self.state.lock().unwrap();
            state.calls.push(call.clone());
            state.fail_next.take()
        };
        match failure {
            Some(err) => Err(err),
            None => Ok(self.answer(&call)),
        }
    }

    async fn wait_job(
        &self,
        _id: crate::middleware::JobId,
        _timeout: Duration,
    ) -> Result<crate::middleware::Job, crate::middleware::CallError> {
        panic!("identity never waits for a job")
    }
}
