//! Helpers shared by the integration tests.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;
use truenas_agent::middleware::{ApiInfo, Call, CallError, Job, JobId, Middleware};
use truenas_sim::{InProcess, Simulator};

/// The repository root (the workspace's): `tests/data`, `fuzz/`, `docs/` are found from
/// here. This test binary belongs to `crates/dev`.
pub fn repo_root() -> PathBuf {
    let dev = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    dev.ancestors()
        .nth(2)
        .expect("crates/dev sits two levels below the repository root")
        .to_path_buf()
}

/// The appliance binary (`crates/agent`).
pub const AGENT: &str = "truenas-agent";
/// The simulator's binary (`crates/sim`).
pub const SIM: &str = "truenas-sim";
/// The reference central server's binary (`crates/central`).
pub const CENTRAL: &str = "truenas-central";

/// The path of a binary of the workspace: [`AGENT`], [`SIM`], [`CENTRAL`] or
/// `truenas-dev`.
///
/// Cargo tells a test only about its own package's binaries (`CARGO_BIN_EXE_<name>`);
/// this test belongs to `truenas-dev`, so the others are found next to this test's own
/// executable (`<target>/<profile>/deps/it-<hash>` → `<target>/<profile>/<name>`).
/// `cargo nextest run --workspace` (and `cargo test --workspace`) builds them in the
/// same invocation: each product crate has an integration test of its own, so cargo
/// builds its binaries. When one is missing or older than a source it is built from (a
/// run of this package alone, `-p truenas-dev`, after a change), it is built here first,
/// once per test process, with the cargo that built this test.
pub fn bin(name: &str) -> PathBuf {
    if name == "truenas-dev" {
        return PathBuf::from(env!("CARGO_BIN_EXE_truenas-dev"));
    }
    let exe = std::env::current_exe().expect("the test executable's path");
    let deps = exe.parent().expect("the test executable's directory");
    let profile_dir = if deps.ends_with("deps") {
        deps.parent().expect("<target>/<profile>")
    } else {
        deps
    };
    let path = profile_dir.join(name);
    if !is_fresh(&path, name) {
        build_once(name, profile_dir);
    }
    assert!(
        path.is_file(),
        "{} is missing: build it with `cargo build -p {name} --bin {name}` (or run the tests with \
         `cargo nextest run --workspace`)",
        path.display()
    );
    path
}

/// An `assert_cmd` command running the appliance binary.
pub fn agent_command() -> assert_cmd::Command {
    assert_cmd::Command::new(bin(AGENT))
}

/// Whether the binary exists and is newer than every source it is built from: its own
/// crate's and the agent's (`src/`, `build.rs`, `Cargo.toml`), the workspace's
/// `Cargo.toml` and `Cargo.lock`, and the systemd unit the agent embeds. (Not the
/// libraries' artefacts: several feature variants of one library may sit in `deps`.)
fn is_fresh(path: &std::path::Path, name: &str) -> bool {
    let modified = |p: &std::path::Path| p.metadata().and_then(|m| m.modified()).ok();
    let Some(built) = modified(path) else {
        return false;
    };
    let root = repo_root();
    let crate_dir = |c: &str| root.join("crates").join(c);
    let own = crate_dir(name.trim_start_matches("truenas-"));
    let mut sources = vec![
        root.join("Cargo.toml"),
        root.join("Cargo.lock"),
        root.join("systemd/truenas-agent.service"),
    ];
    for dir in [crate_dir("agent"), own] {
        sources.extend([dir.join("Cargo.toml"), dir.join("build.rs")]);
        collect_files(&dir.join("src"), &mut sources);
    }
    sources
        .iter()
        .filter_map(|p| modified(p))
        .all(|source| source <= built)
}

fn collect_files(dir: &std::path::Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            collect_files(&path, out);
        } else {
            out.push(path);
        }
    }
}

/// Builds one binary of the workspace (package and binary share the name), once per
/// test process.
#[allow(clippy::print_stderr, reason = "says why a test takes longer")]
fn build_once(name: &str, profile_dir: &std::path::Path) {
    static BUILT: Mutex<Vec<String>> = Mutex::new(Vec::new());
    let mut built = BUILT
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if built.iter().any(|b| b == name) {
        return;
    }
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| env!("CARGO").into());
    let mut cmd = std::process::Command::new(cargo);
    cmd.current_dir(repo_root())
        .args(["build", "--quiet", "-p", name, "--bin", name]);
    match profile_dir.file_name().and_then(|n| n.to_str()) {
        Some("debug") | None => {}
        Some(profile) => {
            cmd.args(["--profile", profile]);
        }
    }
    if let Some(target) = profile_dir.parent() {
        cmd.env("CARGO_TARGET_DIR", target);
    }
    eprintln!("support::bin: building {name} (missing or older than its sources)");
    let status = cmd.status().expect("running cargo");
    assert!(
        status.success(),
        "cargo build -p {name} --bin {name} failed"
    );
    built.push(name.to_owned());
}

/// The read-only `shared/` folder (TrueNAS API schemas, VM harness, ...):
/// `$SHARED_DIR`, else `<repo>/../shared`. `None` when absent (CI without it): tests that
/// need it skip with a message, the rest still run.
pub fn shared_dir() -> Option<PathBuf> {
    let dir =
        std::env::var_os("SHARED_DIR").map_or_else(|| repo_root().join("../shared"), PathBuf::from);
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

/// Reads a file. A SQLite file (`*.db`, `*.db-wal`, `*.db-shm`) is read by a child
/// process (`cat`): closing any descriptor of a file drops every POSIX lock this process
/// holds on it, so a test reading the database of a central server running in this very
/// process would make other processes think the server is gone (and delete its WAL).
pub fn read_file(path: &std::path::Path) -> std::io::Result<Vec<u8>> {
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    if name.ends_with(".db") || name.ends_with(".db-wal") || name.ends_with(".db-shm") {
        let out = std::process::Command::new("cat").arg(path).output()?;
        if !out.status.success() {
            return Err(std::io::Error::other(format!(
                "cat {}: {}",
                path.display(),
                String::from_utf8_lossy(&out.stderr)
            )));
        }
        return Ok(out.stdout);
    }
    std::fs::read(path)
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
        } else if let Ok(bytes) = read_file(&path) {
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
