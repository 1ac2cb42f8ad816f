//! `truenas-agent identity` end to end against the scripted fake `zfs`/`zpool`
//! (`tests/data/fake-zfs.sh`), and the middleware fallback's requests against the
//! per-version middleware schemas. The real OpenZFS run is `tests/vm/identity.host.sh`.

use std::path::{Path, PathBuf};

use assert_cmd::Command;
use serde_json::Value;

use crate::support;

const KEY: &str = "com.dtctoday:device-guid";
const HOST_KEY: &str = "com.dtctoday:device-host";
const A: &str = "9babab19-acc0-4587-aa05-ccd8103a1148";
const C: &str = "0f0c6a4e-2b4b-4c7e-9d3e-6b1f2a3c4d5e";
/// The fake's /etc/hostid (the VM's: `hostid` prints 34528b11) and its system.host_id.
const HOSTID_BYTES: [u8; 4] = [0x11, 0x8b, 0x52, 0x34];
const H1: &str = "8331920580b61d5d662e036c0d22d25554340cb03dac52a08aff8076d3e675bc";

/// A fake `zfs`/`zpool` pair in a temporary directory, plus a state dir.
struct Box {
    dir: tempfile::TempDir,
}

impl Box {
    fn new(pools: &[&str]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let script =
            std::fs::read(crate::support::repo_root().join("tests/data/fake-zfs.sh")).unwrap();
        for name in ["zfs", "zpool"] {
            let path = dir.path().join(name);
            std::fs::write(&path, &script).unwrap();
            set_mode(&path, 0o755);
        }
        let b = Self { dir };
        b.write("pools", &lines(pools));
        std::fs::write(b.path("hostid"), HOSTID_BYTES).unwrap();
        b
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn write(&self, name: &str, text: &str) {
        std::fs::write(self.path(name), text).unwrap();
    }

    fn set_prop(&self, dataset: &str, key: &str, value: &str) {
        let dir = self.path("props").join(dataset.replace('/', "%"));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(key), value).unwrap();
    }

    fn prop(&self, dataset: &str, key: &str) -> Option<String> {
        std::fs::read_to_string(self.path("props").join(dataset.replace('/', "%")).join(key)).ok()
    }

    fn writes(&self) -> Vec<String> {
        std::fs::read_to_string(self.path("argv.log"))
            .unwrap_or_default()
            .lines()
            .filter(|l| l.starts_with("zfs [set]") || l.starts_with("zfs [inherit]"))
            .map(str::to_owned)
            .collect()
    }

    fn cmd(&self, args: &[&str]) -> Command {
        let mut cmd = crate::support::agent_command();
        cmd.env_remove("RUST_LOG")
            .args(["--log", "warn", "--state-dir"])
            .arg(self.path("state"))
            .arg("identity")
            .args(args)
            .arg("--zfs-bin")
            .arg(self.path("zfs"))
            .arg("--zpool-bin")
            .arg(self.path("zpool"))
            .arg("--hostid-file")
            .arg(self.path("hostid"));
        cmd
    }

    /// Runs, checks the exit code, returns (stdout, stderr).
    fn run(&self, args: &[&str], code: i32) -> (String, String) {
        let out = self.cmd(args).output().unwrap();
        let stdout = String::from_utf8(out.stdout).unwrap();
        let stderr = String::from_utf8(out.stderr).unwrap();
        assert_eq!(
            out.status.code(),
            Some(code),
            "identity {args:?}\nstdout:\n{stdout}\nstderr:\n{stderr}"
        );
        (stdout, stderr)
    }

    fn json(&self, args: &[&str], code: i32) -> Value {
        let mut all = args.to_vec();
        all.push("--json");
        serde_json::from_str(&self.run(&all, code).0).unwrap()
    }
}

fn lines(items: &[&str]) -> String {
    items.iter().flat_map(|i| [*i, "\n"]).collect()
}

fn set_mode(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

fn kinds(report: &Value) -> Vec<&str> {
    report["problems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["kind"].as_str().unwrap())
        .collect()
}

#[test]
fn several_pools_without_root_pool_are_refused() {
    let b = Box::new(&["boot-pool", "pool0", "pool1"]);
    let (text, _) = b.run(&[], 2);
    assert!(
        text.contains("PROBLEM       several pools, set root_pool"),
        "{text}"
    );
    let report = b.json(&["ensure"], 2);
    assert_eq!(kinds(&report), ["several_pools_set_root_pool"]);
    assert_eq!(report["usable"], false);
    assert!(b.writes().is_empty());
}

#[test]
fn ensure_generates_keeps_and_records() {
    let b = Box::new(&["boot-pool", "pool0", "pool1"]);
    let first = b.json(&["ensure", "--pool", "pool0"], 0);
    let guid = first["guid"].as_str().unwrap().to_owned();
    let uuid = uuid::Uuid::try_parse(&guid).unwrap();
    assert_eq!(uuid.get_version_num(), 4);
    assert_eq!(guid, guid.to_lowercase());
    assert_eq!(first["guid_source"], "generated");
    assert_eq!(first["root_pool"], "pool0");
    assert_eq!(first["host_binding"]["state"], "bound");
    assert_eq!(first["host_binding"]["bound_host"], H1);
    assert_eq!(b.prop("pool0", KEY).as_deref(), Some(guid.as_str()));
    assert_eq!(b.prop("pool1", KEY), None);
    assert_eq!(b.prop("boot-pool", KEY), None);

    // The daemon's rerun: no --pool needed now (the one carrier), nothing written.
    let second = b.json(&["ensure"], 0);
    assert_eq!(second["guid"], guid.as_str());
    assert_eq!(second["guid_source"], "zfs");
    assert_eq!(second["root_pool_source"], "carrier");
    assert_eq!(second["changes"], serde_json::json!([]));
    assert_eq!(b.writes().len(), 1, "{:?}", b.writes());

    // Recorded for `status`, private, and without the raw hostid.
    let state = b.path("state/identity.json");
    let recorded: Value = serde_json::from_str(&std::fs::read_to_string(&state).unwrap()).unwrap();
    assert_eq!(recorded, second);
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&state).unwrap().permissions())
            & 0o777,
        0o600
    );
    let raw = "34528b11";
    let (text, _) = b.run(&[], 0);
    for shown in [text.as_str(), &second.to_string(), &recorded.to_string()] {
        assert!(!shown.contains(raw), "the raw hostid leaked: {shown}");
    }
    assert!(
        text.starts_with(&format!("Device GUID   {guid} (source: zfs)\n")),
        "{text}"
    );
    assert!(
        text.contains("Root pool     pool0 (the one pool carrying the GUID)"),
        "{text}"
    );
    assert!(
        text.contains("Host binding  bound to this host 8331920580b6"),
        "{text}"
    );
    support::assert_no_canary("identity output", &text);
}

#[test]
fn a_central_guid_overrides_and_reports_the_old_value() {
    let b = Box::new(&["pool0"]);
    b.set_prop("pool0", KEY, A);
    b.set_prop("pool0", HOST_KEY, H1);
    // Upper case on the command line is accepted and normalised.
    let report = b.json(&["ensure", "--guid", &C.to_uppercase()], 0);
    assert_eq!(report["guid"], C);
    assert_eq!(report["guid_source"], "central");
    assert_eq!(
        report["correction"],
        serde_json::json!({"old": A, "new": C})
    );
    assert_eq!(b.prop("pool0", KEY).as_deref(), Some(C));
    let (text, _) = b.run(&["ensure", "--guid", C], 0);
    assert!(text.contains("(source: central)"), "{text}");
    assert!(
        !text.contains("Correction"),
        "nothing to correct the second time: {text}"
    );
}

#[test]
fn a_corrupt_guid_is_reported_and_only_central_replaces_it() {
    let b = Box::new(&["pool0"]);
    b.set_prop("pool0", KEY, "not a\tuuid");
    let report = b.json(&["ensure"], 2);
    assert_eq!(kinds(&report), ["corrupt_guid"]);
    assert_eq!(b.prop("pool0", KEY).as_deref(), Some("not a\tuuid"));
    let report = b.json(&["ensure", "--guid", A], 0);
    assert_eq!(report["correction"]["old"], "not a\\tuuid");
    assert_eq!(b.prop("pool0", KEY).as_deref(), Some(A));
}

#[test]
fn a_moved_pool_is_detected_and_rebound_only_on_request() {
    let b = Box::new(&["pool0"]);
    b.run(&["ensure"], 0);
    std::fs::write(b.path("hostid"), [0x78, 0x56, 0x34, 0x12]).unwrap();
    let (text, _) = b.run(&[], 2);
    assert!(
        text.contains("PROBLEM       pool moved or box cloned"),
        "{text}"
    );
    assert!(
        text.contains("bound to ANOTHER host 8331920580b6"),
        "{text}"
    );
    let report = b.json(&["ensure"], 2);
    assert_eq!(kinds(&report), ["pool_moved_or_cloned"]);
    assert_eq!(report["usable"], false);
    assert_eq!(b.writes().len(), 1, "no automatic rebind");
    let report = b.json(&["ensure", "--rebind"], 0);
    assert_eq!(report["changes"][0]["change"], "rebound");
    assert_eq!(report["changes"][0]["confirmed_by"], "technician");
    assert_ne!(b.prop("pool0", HOST_KEY).as_deref(), Some(H1));
    b.run(&[], 0);
}

#[test]
fn get_shows_inherited_values_on_children() {
    let b = Box::new(&["pool0"]);
    b.write("datasets", "pool0/child\npool0/child/grand\n");
    b.set_prop("pool0", KEY, A);
    let (text, _) = b.run(&["get", "pool0/child/grand"], 0);
    assert_eq!(
        text,
        format!("pool0/child/grand\t{KEY}\t{A}\t(inherited from pool0)\n")
    );
    let reading: Value =
        serde_json::from_str(&b.run(&["get", "pool0/child", "--json"], 0).0).unwrap();
    assert_eq!(
        reading["source"],
        serde_json::json!({"kind": "inherited", "from": "pool0"})
    );
    let (_, err) = b.run(&["get", "pool0/nope"], 2);
    assert!(err.contains("no such dataset pool0/nope"), "{err}");
}

#[test]
fn another_property_namespace_is_honoured() {
    let b = Box::new(&["pool0"]);
    let report = b.json(&["ensure", "--property", "com.example:guid"], 0);
    assert_eq!(report["property"], "com.example:guid");
    assert_eq!(
        report["host_binding"]["property"],
        "com.example:device-host"
    );
    assert!(b.prop("pool0", "com.example:guid").is_some());
    assert!(b.prop("pool0", KEY).is_none());
}

#[test]
fn the_config_file_supplies_property_root_pool_and_state_dir() {
    let b = Box::new(&["pool0", "pool1"]);
    let state = b.path("cfg-state");
    let config = b.path("agent.toml");
    std::fs::write(
        &config,
        format!(
            "state_dir = \"{}\"\nguid_property = \"com.example:guid\"\nroot_pool = \"pool1\"\n",
            state.display()
        ),
    )
    .unwrap();
    let run = |extra: &[&str]| {
        let out = crate::support::agent_command()
            .args(["--log", "warn", "--config"])
            .arg(&config)
            .args(["identity", "ensure", "--json", "--zfs-bin"])
            .arg(b.path("zfs"))
            .arg("--zpool-bin")
            .arg(b.path("zpool"))
            .arg("--hostid-file")
            .arg(b.path("hostid"))
            .args(extra)
            .output()
            .unwrap();
        let report: Value = serde_json::from_slice(&out.stdout).unwrap();
        (out.status.code(), report)
    };
    let (code, report) = run(&[]);
    assert_eq!(code, Some(0), "{report}");
    assert_eq!(report["property"], "com.example:guid");
    assert_eq!(report["root_pool"], "pool1");
    assert_eq!(report["root_pool_source"], "config");
    assert!(b.prop("pool1", "com.example:guid").is_some());
    assert!(
        state.join("identity.json").is_file(),
        "recorded in the config's state_dir"
    );
    // Flags win over the file.
    let (code, report) = run(&["--property", KEY, "--pool", "pool0"]);
    assert_eq!(code, Some(0), "{report}");
    assert_eq!(report["property"], KEY);
    assert_eq!(report["root_pool"], "pool0");
    assert!(b.prop("pool0", KEY).is_some());
    // A broken config file is refused before anything runs.
    std::fs::write(&config, "root_pool = \"1pool\"\n").unwrap();
    let out = b.cmd(&[]).arg("--config").arg(&config).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("root_pool"));
}

#[test]
fn bad_input_names_the_flag_and_the_rule() {
    let b = Box::new(&["pool0"]);
    for (args, expected) in [
        (
            vec!["ensure", "--guid", "abc"],
            "--guid `abc` must be a UUID in the dashed form",
        ),
        (
            vec!["ensure", "--guid", &A.replace('-', "")],
            "must be a UUID in the dashed form",
        ),
        (
            vec!["--pool", "0pool"],
            "--pool: pool name `0pool` must start with a letter",
        ),
        (
            vec!["--pool", "pool0/x"],
            "--pool: pool name `pool0/x` may contain only",
        ),
        (
            vec!["--property", "nocolon"],
            "--property: user property name `nocolon` must contain `:`",
        ),
        (
            vec!["--property", "com.example:device-host"],
            "reserved for the host binding",
        ),
        (
            vec!["get", "pool0@snap"],
            "DATASET: dataset name `pool0@snap` may contain only letters, digits, space, `-`, `_`, `.`, `:` and `/` (found @)",
        ),
    ] {
        let (_, err) = b.run(&args, 2);
        assert!(err.contains(expected), "{args:?}: {err}");
    }
    let out = crate::support::agent_command()
        .args(["identity", "--zfs-bin", "bin/zfs"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains(
            "--zfs-bin: program `bin/zfs` must be an absolute path or a bare command name"
        )
    );
    assert!(b.writes().is_empty());
}

#[test]
fn zfs_failures_exit_3_with_a_clear_message() {
    let b = Box::new(&["pool0"]);
    // zfs missing
    let out = crate::support::agent_command()
        .args(["--log", "warn", "identity", "--json", "--zpool-bin"])
        .arg(b.path("nope"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3), "could not find out: unknown");
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["error"]["fault"], "nas");
    let message = report["error"]["message"].as_str().unwrap();
    assert!(
        message.starts_with("cannot list the imported pools: ")
            && message.contains("nope` not found"),
        "{message}"
    );
    // permission denied, as zfs prints it
    b.write("fail.zfs.set", "eperm");
    let (text, _) = b.run(&["ensure"], 3);
    assert!(
        text.contains("ERROR         cannot write com.dtctoday:device-guid, com.dtctoday:device-host on pool0: `zfs set` on pool0 (com.dtctoday:device-guid, com.dtctoday:device-host): permission denied (cannot set property for 'pool0': permission denied)"),
        "{text}"
    );
    std::fs::remove_file(b.path("fail.zfs.set")).unwrap();
    // a hanging zfs is killed at the deadline
    b.write("fail.zfs.get", "sleep");
    let report = b.json(&["--zfs-timeout", "1"], 3);
    assert_eq!(report["error"]["fault"], "transient");
    assert!(
        report["error"]["message"]
            .as_str()
            .unwrap()
            .contains("timed out after 1s (killed)")
    );
    std::fs::remove_file(b.path("fail.zfs.get")).unwrap();
    // weird output
    b.write("fail.zfs.get", "wrongname");
    let report = b.json(&[], 3);
    assert_eq!(report["error"]["fault"], "bug");
    assert!(
        report["error"]["message"]
            .as_str()
            .unwrap()
            .contains("unexpected output: the answer is about `other`, not `pool0`")
    );
}

/// The middleware fallback sends exactly what the per-version schemas accept.
#[test]
fn fallback_requests_match_the_middleware_schemas() {
    use truenas_agent::middleware::calls;
    use truenas_agent::zfs::{DatasetName, UserPropKey};
    let Some(_) = support::shared_dir() else {
        eprintln!("skipped: shared/truenas-api not found (set SHARED_DIR)");
        return;
    };
    let ds = DatasetName::parse("pool0").unwrap();
    let key = UserPropKey::parse(KEY).unwrap();
    let calls = [
        calls::pools_query(),
        calls::dataset_user_props(ds.as_str()),
        calls::user_properties_set(ds.as_str(), &[(key.as_str(), A), (HOST_KEY, H1)]),
        calls::user_property_remove(ds.as_str(), key.as_str()),
        calls::host_id(),
    ];
    for release in ["24.10", "25.04", "25.10"] {
        let dir = support::schema_dir(release).unwrap();
        for call in &calls {
            let file = dir.join(format!("{}.json", call.method.as_str()));
            let schema: Value =
                serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
            let validator = jsonschema::validator_for(&schema).unwrap();
            let params = Value::Array(call.params.clone());
            let errors: Vec<String> = validator
                .iter_errors(&params)
                .map(|e| e.to_string())
                .collect();
            assert!(errors.is_empty(), "{release} {}: {errors:?}", call.method);
        }
        let result: Value = serde_json::from_str(
            &std::fs::read_to_string(dir.join("system.host_id.result.json")).unwrap(),
        )
        .unwrap();
        assert!(
            jsonschema::is_valid(&result, &Value::String(H1.into())),
            "{release}"
        );
    }
}

// ---- the middleware fallback against the simulator ----

mod against_the_simulator {
    use std::time::Duration;

    use truenas_agent::identity::{self, IdentityInputs, RootPoolHint};
    use truenas_agent::middleware::{ApiFlavor, Method};
    use truenas_agent::zfs::{
        Backend, CommandConfig, DatasetName, PoolName, Program, PropSource, UserPropKey, UserProps,
        ZfsCommand, choose_backend,
    };
    use truenas_sim::{InProcess, Scenario};

    use super::{Box, C, KEY};

    /// A `zfs` that cannot be used here (as in a Custom App container without /dev/zfs).
    fn unusable_zfs(b: &Box) -> ZfsCommand {
        b.write("fail", "notusable");
        ZfsCommand::new(CommandConfig {
            zfs: Program::Path(b.path("zfs")),
            zpool: Program::Path(b.path("zpool")),
            hostid_file: b.path("hostid"),
            timeout: Duration::from_secs(20),
        })
    }

    fn inputs(pool: Option<&str>) -> IdentityInputs {
        IdentityInputs {
            root_pool: RootPoolHint {
                document: None,
                local: pool.map(|p| PoolName::parse(p).unwrap()),
            },
            ..IdentityInputs::new(UserPropKey::parse(KEY).unwrap()).unwrap()
        }
    }

    fn user_props(mw: &InProcess, dataset: &str) -> std::collections::BTreeMap<String, String> {
        mw.simulator()
            .state()
            .dataset(dataset)
            .unwrap()
            .user_properties
            .clone()
    }

    fn dataset_updates(mw: &InProcess) -> usize {
        mw.simulator()
            .write_calls()
            .iter()
            .filter(|c| c.method == Method::DatasetUpdate.as_str())
            .count()
    }

    #[tokio::test]
    async fn the_rules_run_through_the_middleware_on_every_flavour() {
        for flavor in ApiFlavor::ALL {
            let b = Box::new(&["pool0"]);
            let mut scenario = Scenario::two_pools(flavor);
            scenario
                .datasets
                .push(truenas_sim::scenario::Dataset::filesystem("pool0/child"));
            scenario.normalize();
            let host = scenario.system.host_id.clone();
            let mw = InProcess::new(scenario);
            let (store, choice) = choose_backend(unusable_zfs(&b), Some(&mw)).await;
            assert_eq!(choice.backend, Backend::Middleware, "{flavor}");
            assert!(
                choice.to_string().starts_with("middleware (zfs command unavailable: `zpool list`: ZFS cannot be used from here"),
                "{flavor}: {choice}"
            );

            // Two data pools (the boot pool is not even listed): refuse without root_pool.
            let report = identity::ensure(&inputs(None), &store, &choice).await;
            assert_eq!(
                report.problems[0].message.split(':').next(),
                Some("several pools, set root_pool"),
                "{flavor}"
            );
            assert_eq!(dataset_updates(&mw), 0);

            let report = identity::ensure(&inputs(Some("pool0")), &store, &choice).await;
            assert!(report.usable, "{flavor}: {report:?}");
            let guid = report.guid.clone().unwrap();
            assert_eq!(uuid::Uuid::try_parse(&guid).unwrap().get_version_num(), 4);
            let props = user_props(&mw, "pool0");
            assert_eq!(props.get(KEY), Some(&guid), "{flavor}");
            assert_eq!(
                props.get("com.dtctoday:device-host"),
                Some(&host),
                "{flavor}: system.host_id"
            );
            assert!(user_props(&mw, "pool1").is_empty());
            assert_eq!(
                dataset_updates(&mw),
                1,
                "{flavor}: one update for both properties"
            );

            // Rerun: kept, nothing written (on 25.10 the source is `unknown`, still ours).
            let again = identity::ensure(&inputs(None), &store, &choice).await;
            assert_eq!(again.guid.as_deref(), Some(guid.as_str()));
            assert!(again.changes.is_empty(), "{flavor}");
            assert_eq!(dataset_updates(&mw), 1);

            // Children: inherited (24.10/25.04); 25.10 cannot tell.
            let child = store
                .get(
                    &DatasetName::parse("pool0/child").unwrap(),
                    &UserPropKey::parse(KEY).unwrap(),
                )
                .await
                .unwrap();
            assert_eq!(child.value.as_deref(), Some(guid.as_str()));
            let expected = if flavor >= ApiFlavor::V25_10 {
                PropSource::Unknown
            } else {
                PropSource::Inherited {
                    from: Some("pool0".into()),
                }
            };
            assert_eq!(child.source, expected, "{flavor}");

            // Central wins.
            let central = IdentityInputs {
                central_guid: Some(uuid::Uuid::try_parse(C).unwrap()),
                ..inputs(None)
            };
            let report = identity::ensure(&central, &store, &choice).await;
            assert_eq!(
                report.correction.as_ref().map(|c| c.old.as_str()),
                Some(guid.as_str())
            );
            assert_eq!(
                user_props(&mw, "pool0").get(KEY).map(String::as_str),
                Some(C)
            );

            // The box now answers with another host id: moved or cloned.
            mw.simulator()
                .update_state(|s| s.system.host_id = "ab".repeat(32));
            let seen = identity::observe(&inputs(None), &store, &choice).await;
            assert!(
                seen.problems
                    .iter()
                    .any(|p| p.message.starts_with("pool moved or box cloned")),
                "{flavor}: {seen:?}"
            );
            assert!(!seen.usable);

            // A pool the middleware says does not exist.
            let err = store
                .get(
                    &DatasetName::parse("pool9").unwrap(),
                    &UserPropKey::parse(KEY).unwrap(),
                )
                .await
                .unwrap_err();
            assert!(
                err.to_string().contains("no such dataset pool9"),
                "{flavor}: {err}"
            );
        }
    }
}

/// The binary itself: `zfs` unusable, the middleware socket given with `--middleware`.
#[tokio::test]
async fn the_cli_falls_back_to_the_middleware_socket() {
    use truenas_agent::middleware::ApiFlavor;
    use truenas_sim::{Scenario, ServeOptions, Simulator};
    for flavor in ApiFlavor::ALL {
        let b = Box::new(&["pool0"]);
        b.write("fail", "notusable");
        let sim = Simulator::new(Scenario::two_pools(flavor));
        let server = sim
            .serve(ServeOptions {
                socket: Some(b.path("middlewared.sock")),
                ..Default::default()
            })
            .await
            .unwrap();
        let mut cmd = b.cmd(&["ensure", "--pool", "pool0", "--json"]);
        cmd.arg("--middleware").arg(server.unix_url().unwrap());
        // The binary runs on a blocking thread while this runtime serves the socket.
        let out = tokio::task::spawn_blocking(move || cmd.output().unwrap())
            .await
            .unwrap();
        let report: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(out.status.code(), Some(0), "{flavor}: {report}");
        assert_eq!(report["backend"]["backend"], "middleware", "{flavor}");
        assert!(
            report["backend"]["fallback_reason"]
                .as_str()
                .unwrap()
                .contains("/dev/zfs and /proc/self/mounts are required"),
            "{flavor}: {report}"
        );
        let state = sim.state();
        let props = &state.dataset("pool0").unwrap().user_properties;
        assert_eq!(props.get(KEY).map(String::as_str), report["guid"].as_str());
        assert_eq!(
            props.get(HOST_KEY),
            Some(&state.system.host_id),
            "{flavor}: bound to the box's system.host_id"
        );
        assert!(b.writes().is_empty(), "{flavor}: zfs was not used");
        let mut cmd = b.cmd(&[]);
        cmd.arg("--middleware").arg(server.unix_url().unwrap());
        let out = tokio::task::spawn_blocking(move || cmd.output().unwrap())
            .await
            .unwrap();
        assert_eq!(out.status.code(), Some(0));
        let text = String::from_utf8(out.stdout).unwrap();
        assert!(
            text.contains("Backend       middleware (zfs command unavailable: `zpool list`: ZFS cannot be used from here"),
            "{flavor}: {text}"
        );
    }
}

/// Neither `zfs` nor the middleware: both reasons are reported, exit 3 (unknown).
#[test]
fn without_zfs_and_without_middleware_both_reasons_are_reported() {
    let b = Box::new(&["pool0"]);
    b.write("fail", "notusable");
    let mut cmd = b.cmd(&["--json"]);
    cmd.arg("--middleware")
        .arg(format!("unix://{}", b.path("no-such.sock").display()));
    let out = cmd.output().unwrap();
    assert_eq!(out.status.code(), Some(3));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["backend"]["backend"], "zfs-command");
    assert!(
        report["backend"]["fallback_error"]
            .as_str()
            .unwrap()
            .contains("no-such.sock"),
        "{report}"
    );
}

/// The one exit-code rule (issue 13.3): usable and quiet 0; a problem that blocks nothing
/// (no host id: clone detection off) 1; a blocking problem 2 (above); a failed operation 3.
#[test]
fn exit_codes_follow_the_one_rule() {
    let b = Box::new(&["pool0"]);
    b.run(&["ensure"], 0);
    b.run(&[], 0);
    let (text, _) = b.run(&[], 0);
    assert!(text.ends_with("Result        OK (exit 0)\n"), "{text}");
    std::fs::remove_file(b.path("hostid")).unwrap();
    let (text, _) = b.run(&[], 1);
    assert!(
        text.ends_with("Result        ATTENTION (exit 1)\n"),
        "{text}"
    );
    let report = b.json(&[], 1);
    assert_eq!(report["usable"], true, "{report}");
    assert!(
        report["problems"]
            .as_array()
            .unwrap()
            .iter()
            .all(|p| p["blocking"] == false),
        "{report}"
    );
}
