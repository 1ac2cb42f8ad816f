//! `install` / `install --check` / `uninstall` against a scripted NAS (an in-memory
//! middleware that checks every call's params against the per-version schemas and fails
//! on any method the installer has no business calling) and a fake `systemctl`.
//! The real thing (simulator socket, real systemd, real ZFS) is `tests/vm/install.host.sh`.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use serde_json::{Value, json};
use truenas_agent::install::{
    self, CheckStatus, DatasetName, Host, InitChange, InstallError, InstallRequest, SystemPaths,
};
use truenas_agent::middleware::{
    ApiFlavor, ApiInfo, Call, CallError, Job, JobId, Method, Middleware, Protocol, TransportKind,
    ValidationItem,
};

use truenas_agent::zfs::DEFAULT_GUID_PROPERTY;

use crate::support::{CANARIES, assert_no_canary, assert_no_canary_in_dir, schema_dir};

/// A scripted NAS: pools, datasets (mounted under a temp dir), init-script entries.
struct ScriptedNas {
    flavor: ApiFlavor,
    mnt: PathBuf,
    state: Mutex<NasState>,
}

#[derive(Default)]
struct NasState {
    pools: Vec<String>,
    datasets: Vec<Value>,
    scripts: Vec<Value>,
    next_id: i64,
    calls: Vec<(Method, Vec<Value>)>,
}

impl ScriptedNas {
    fn new(flavor: ApiFlavor, mnt: &Path, pools: &[&str]) -> Self {
        let mut state = NasState {
            next_id: 1,
            ..NasState::default()
        };
        for pool in pools {
            state.pools.push((*pool).to_owned());
            std::fs::create_dir_all(mnt.join(pool)).unwrap();
            state.datasets.push(dataset_entry(mnt, pool, false, None));
        }
        Self {
            flavor,
            mnt: mnt.to_owned(),
            state: Mutex::new(state),
        }
    }

    fn add_script(&self, entry: Value) -> i64 {
        let mut st = self.state.lock().unwrap();
        let id = st.next_id;
        st.next_id += 1;
        let mut entry = entry;
        entry["id"] = json!(id);
        st.scripts.push(entry);
        id
    }

    fn scripts(&self) -> Vec<Value> {
        self.state.lock().unwrap().scripts.clone()
    }

    fn set_dataset(&self, entry: Value) {
        let mut st = self.state.lock().unwrap();
        st.datasets.retain(|d| d["id"] != entry["id"]);
        st.datasets.push(entry);
    }

    fn writes(&self) -> Vec<Method> {
        let st = self.state.lock().unwrap();
        st.calls
            .iter()
            .map(|(m, _)| *m)
            .filter(|m| m.is_write())
            .collect()
    }

    fn all_params(&self) -> String {
        let st = self.state.lock().unwrap();
        format!("{:?}", st.calls.iter().map(|(_, p)| p).collect::<Vec<_>>())
    }

    fn check_schema(&self, call: &Call) -> Result<(), CallError> {
        let Some(dir) = schema_dir(self.flavor.as_str()) else {
            return Ok(());
        };
        let path = dir.join(format!("{}.json", call.method.as_str()));
        let Ok(text) = std::fs::read_to_string(&path) else {
            // pool.dataset.create is not in the shared schemas (checked by hand below).
            return Ok(());
        };
        let schema: Value = serde_json::from_str(&text).unwrap();
        let validator = jsonschema::validator_for(&schema).unwrap();
        let params = Value::Array(call.params.clone());
        let errors: Vec<String> = validator
            .iter_errors(&params)
            .map(|e| e.to_string())
            .collect();
        if errors.is_empty() {
            Ok(())
        } else {
            Err(CallError::Validation {
                method: call.method,
                items: errors
                    .into_iter()
                    .map(|message| ValidationItem {
                        path: call.method.as_str().into(),
                        message,
                        errno: 22,
                    })
                    .collect(),
            })
        }
    }

    fn handle(&self, call: &Call) -> Value {
        let mut st = self.state.lock().unwrap();
        st.calls.push((call.method, call.params.clone()));
        let p = &call.params;
        match call.method {
            Method::PoolQuery => json!(
                st.pools
                    .iter()
                    .map(|n| json!({"id": 1, "name": n}))
                    .collect::<Vec<_>>()
            ),
            Method::DatasetQuery => {
                let filter = &p[0][0];
                let wanted: Vec<Value> = match filter[1].as_str() {
                    Some("=") => vec![filter[2].clone()],
                    Some("in") => filter[2].as_array().unwrap().clone(),
                    other => panic!("unexpected dataset filter {other:?}"),
                };
                json!(
                    st.datasets
                        .iter()
                        .filter(|d| wanted.contains(&d["id"]))
                        .cloned()
                        .collect::<Vec<_>>()
                )
            }
            Method::DatasetCreate => {
                let spec = &p[0];
                let allowed = [
                    "name",
                    "type",
                    "comments",
                    "exec",
                    "readonly",
                    "share_type",
                    "acltype",
                    "aclmode",
                ];
                for key in spec.as_object().unwrap().keys() {
                    assert!(
                        allowed.contains(&key.as_str()),
                        "unexpected create key {key}"
                    );
                }
                assert_eq!(spec["exec"], "ON");
                assert_eq!(
                    (&spec["acltype"], &spec["aclmode"]),
                    (&json!("POSIX"), &json!("DISCARD"))
                );
                let name = spec["name"].as_str().unwrap().to_owned();
                std::fs::create_dir_all(self.mnt.join(&name)).unwrap();
                let parent = st
                    .datasets
                    .iter()
                    .find(|d| d["id"] == json!(name.rsplit_once('/').unwrap().0))
                    .cloned()
                    .unwrap();
                let mut entry = dataset_entry(&self.mnt, &name, false, None);
                entry["encrypted"] = parent["encrypted"].clone();
                entry["key_format"] = parent["key_format"].clone();
                st.datasets.push(entry.clone());
                entry
            }
            Method::InitScriptQuery => json!(st.scripts),
            Method::InitScriptCreate => {
                let mut entry = p[0].clone();
                let id = st.next_id;
                st.next_id += 1;
                entry["id"] = json!(id);
                st.scripts.push(entry.clone());
                entry
            }
            Method::InitScriptUpdate => {
                let id = p[0].as_i64().unwrap();
                let entry = st.scripts.iter_mut().find(|s| s["id"] == id).unwrap();
                for (k, v) in p[1].as_object().unwrap() {
                    entry[k] = v.clone();
                }
                entry.clone()
            }
            Method::InitScriptDelete => {
                let id = p[0].as_i64().unwrap();
                st.scripts.retain(|s| s["id"] != id);
                json!(true)
            }
            other => panic!("the installer has no business calling {other}"),
        }
    }
}

fn dataset_entry(mnt: &Path, name: &str, encrypted: bool, key_format: Option<&str>) -> Value {
    json!({
        "id": name, "name": name, "pool": name.split('/').next().unwrap(),
        "type": "FILESYSTEM", "encrypted": encrypted, "locked": false, "key_loaded": encrypted,
        "encryption_root": if encrypted { json!(name) } else { Value::Null },
        "key_format": {"value": key_format, "rawvalue": key_format.unwrap_or("none")},
        "exec": {"value": "ON"}, "readonly": {"value": "OFF"},
        "mountpoint": mnt.join(name).display().to_string(),
        "user_properties": {},
    })
}

impl Middleware for ScriptedNas {
    fn api(&self) -> ApiInfo {
        ApiInfo {
            flavor: self.flavor,
            version: "test".into(),
            protocol: Protocol::JsonRpc,
            transport: TransportKind::UnixSocket,
            api_version: None,
            newer_than_known: false,
        }
    }

    async fn call(&self, call: Call) -> Result<Value, CallError> {
        assert!(
            call.method.available_on(self.flavor),
            "{} on {}",
            call.method,
            self.flavor
        );
        self.check_schema(&call)?;
        Ok(self.handle(&call))
    }

    async fn wait_job(&self, _id: JobId, _timeout: Duration) -> Result<Job, CallError> {
        panic!("the installer starts no jobs")
    }
}

/// A fake `systemctl`: keeps the unit's state in files next to it, logs every call.
/// The unit is "found" in the runtime dir, else in the (fake) merged sysext `/usr`.
const FAKE_SYSTEMCTL: &str = r#"#!/bin/sh
d=$(dirname "$0")
echo "$*" >> "$d/calls.log"
load=$(cat "$d/load" 2>/dev/null || echo not-found)
active=$(cat "$d/active" 2>/dev/null || echo inactive)
case "$1" in
  --version) echo "systemd 252 (252.39-1~deb12u2)" ;;
  daemon-reload)
    if [ -f "@RUN@/truenas-agent.service" ]; then echo loaded > "$d/load"; echo "@RUN@/truenas-agent.service" > "$d/frag"
    elif [ -f "@USR@/lib/systemd/system/truenas-agent.service" ]; then echo loaded > "$d/load"; echo "@USR@/lib/systemd/system/truenas-agent.service" > "$d/frag"
    else echo not-found > "$d/load"; : > "$d/frag"; fi ;;
  start|restart)
    if [ "$load" != loaded ]; then echo "Unit truenas-agent.service not found." >&2; exit 5; fi
    echo active > "$d/active"; echo "$1" >> "$d/starts.log" ;;
  stop) echo inactive > "$d/active" ;;
  reset-failed) ;;
  show)
    sub=dead; pid=0; [ "$active" = active ] && { sub=running; pid=4242; }
    frag=; dropins=
    [ "$load" = loaded ] && { frag=$(cat "$d/frag"); dropins="@RUN@/truenas-agent.service.d/install.conf"; }
    printf 'LoadState=%s\nActiveState=%s\nSubState=%s\nFragmentPath=%s\nDropInPaths=%s\nMainPID=%s\nNRestarts=0\nActiveEnterTimestamp=Mon 2026-11-23 10:00:00 UTC\nResult=success\n' \
      "$load" "$active" "$sub" "$frag" "$dropins" "$pid" ;;
  *) echo "fake systemctl: unexpected $*" >&2; exit 1 ;;
esac
"#;

/// A fake `systemd-sysext refresh`: "merges" an image in the extensions dir by putting
/// an agent and the unit into the fake `/usr`, and unmerges when it is gone.
const FAKE_SYSEXT: &str = r#"#!/bin/sh
d=$(dirname "$0")
echo "sysext $*" >> "$d/calls.log"
[ "$1" = refresh ] || { echo "fake sysext: unexpected $*" >&2; exit 1; }
if [ -f "@EXT@/truenas-agent.raw" ]; then
  mkdir -p "@USR@/bin" "@USR@/lib/systemd/system"
  printf '#!/bin/sh\necho "truenas-agent 0.0.0 (sysext)"\n' > "@USR@/bin/truenas-agent"
  chmod 0755 "@USR@/bin/truenas-agent"
  echo "[Service]" > "@USR@/lib/systemd/system/truenas-agent.service"
else
  rm -rf "@USR@/bin" "@USR@/lib"
fi
"#;

/// The operator's config: `install` points `central.token_file` and `state_dir` at the
/// install dataset.
const AGENT_TOML: &str = "# from central ops\n[central]\nurl = \"https://central.example\"\n\
    token_file = \"/root/token\"\nallow_unsigned = true\n";

/// Stands in for the agent binary: `install --check` runs `<binary> --version`.
const FAKE_AGENT: &[u8] = b"#!/bin/sh\necho 'truenas-agent 0.0.0 (fake)'\n";
const NEWER_AGENT: &[u8] = b"#!/bin/sh\necho 'truenas-agent 0.0.1 (fake)'\n";

struct Env {
    tmp: tempfile::TempDir,
    host: Host,
    nas: ScriptedNas,
}

impl Env {
    fn new(flavor: ApiFlavor, pools: &[&str]) -> Self {
        let tmp = tempfile::tempdir().unwrap();
        let run = tmp.path().join("run/systemd/system");
        std::fs::create_dir_all(&run).unwrap();
        let sd = tmp.path().join("sd");
        std::fs::create_dir_all(&sd).unwrap();
        let ext = tmp.path().join("run/extensions");
        let usr = tmp.path().join("usr");
        let fill = |text: &str| {
            text.replace("@RUN@", &run.display().to_string())
                .replace("@EXT@", &ext.display().to_string())
                .replace("@USR@", &usr.display().to_string())
        };
        let systemctl = sd.join("systemctl");
        let sysext = sd.join("systemd-sysext");
        for (path, text) in [(&systemctl, FAKE_SYSTEMCTL), (&sysext, FAKE_SYSEXT)] {
            std::fs::write(path, fill(text)).unwrap();
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        let owner_uid = std::fs::metadata(tmp.path()).unwrap().uid();
        let mnt = tmp.path().join("mnt");
        let nas = ScriptedNas::new(flavor, &mnt, pools);
        // Inputs the operator hands to install.
        std::fs::write(tmp.path().join("agent.toml"), AGENT_TOML).unwrap();
        std::fs::write(tmp.path().join("token"), CANARIES[5]).unwrap();
        std::fs::write(tmp.path().join("truenas-agent"), FAKE_AGENT).unwrap();
        let host = Host {
            sys: SystemPaths {
                run_dir: run,
                systemctl,
                sh: PathBuf::from("/bin/sh"),
                extensions_dir: ext,
                sysext,
                sysext_usr: usr,
            },
            owner_uid,
        };
        Self { tmp, host, nas }
    }

    fn request(&self, dataset: Option<&str>) -> InstallRequest {
        InstallRequest {
            dataset: dataset.map(|d| DatasetName::parse(d).unwrap()),
            binary: self.tmp.path().join("truenas-agent"),
            sysext_image: None,
            agent_config: Some(self.tmp.path().join("agent.toml")),
            token_file: Some(self.tmp.path().join("token")),
            guid_property: DEFAULT_GUID_PROPERTY.to_owned(),
        }
    }

    fn root(&self) -> PathBuf {
        self.tmp.path().join("mnt/pool0/.truenas-agent")
    }

    fn sd_log(&self, name: &str) -> String {
        std::fs::read_to_string(self.tmp.path().join("sd").join(name)).unwrap_or_default()
    }

    /// What the middleware does at POSTINIT after a reboot: /run is empty, systemd has
    /// forgotten the unit, then every enabled POSTINIT command runs under `sh -c`.
    fn reboot(&self) {
        let run = &self.host.sys.run_dir;
        std::fs::remove_dir_all(run).unwrap();
        std::fs::create_dir_all(run).unwrap();
        let _ = std::fs::remove_dir_all(&self.host.sys.extensions_dir);
        let _ = std::fs::remove_dir_all(&self.host.sys.sysext_usr);
        let sd = self.tmp.path().join("sd");
        std::fs::write(sd.join("load"), "not-found").unwrap();
        std::fs::write(sd.join("active"), "inactive").unwrap();
        for script in self.nas.scripts() {
            if script["enabled"] == true && script["when"] == "POSTINIT" {
                let status = std::process::Command::new("sh")
                    .args(["-c", script["command"].as_str().unwrap()])
                    .status()
                    .unwrap();
                assert!(status.success());
            }
        }
    }
}

type Breaker<'a> = Box<dyn Fn() + 'a>;

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o7777
}

#[tokio::test]
async fn install_creates_everything_then_is_idempotent() {
    for flavor in ApiFlavor::ALL {
        let env = Env::new(flavor, &["pool0"]);
        let admin = env.nas.add_script(json!({
            "type": "COMMAND", "command": "echo admin", "when": "POSTINIT", "enabled": true,
            "timeout": 10, "comment": "the admin's own"
        }));
        let out = install::install(&env.nas, &env.host, &env.request(None))
            .await
            .unwrap();
        assert!(out.created_dataset);
        assert_eq!(out.layout.dataset.as_str(), "pool0/.truenas-agent");
        assert!(matches!(out.init_script, InitChange::Created { .. }));
        assert!(out.restarted);
        assert!(out.check.ok(), "{:#?}", out.check);
        let root = env.root();
        assert_eq!(mode(&root), 0o700);
        assert_eq!(mode(&root.join("bin/truenas-agent")), 0o755);
        assert_eq!(mode(&root.join("agent.toml")), 0o600);
        assert_eq!(mode(&root.join("token")), 0o600);
        assert_eq!(mode(&root.join("state")), 0o700);
        assert_eq!(
            std::fs::read_to_string(root.join("token")).unwrap(),
            CANARIES[5]
        );
        let config = std::fs::read_to_string(root.join("agent.toml")).unwrap();
        assert!(
            config.contains(&format!(
                "token_file = \"{}\"",
                root.join("token").display()
            )),
            "{config}"
        );
        assert!(config.contains(&format!("state_dir = \"{}\"", root.join("state").display())));
        let loaded = truenas_agent::config::AgentConfig::load(&root.join("agent.toml")).unwrap();
        assert_eq!(loaded.state_dir, root.join("state"));
        assert_eq!(loaded.central().unwrap().token_file, root.join("token"));
        // The boot command put the unit and its drop-in in /run and started it.
        let run = &env.host.sys.run_dir;
        let dropin =
            std::fs::read_to_string(run.join("truenas-agent.service.d/install.conf")).unwrap();
        assert!(dropin.contains(&format!("ExecStart={}/bin/truenas-agent", root.display())));
        assert!(!dropin.contains("RestartSteps"), "fake systemd is 252");
        // The admin's entry is untouched; ours is COMMAND/POSTINIT/enabled.
        let scripts = env.nas.scripts();
        assert_eq!(scripts.len(), 2);
        assert_eq!(scripts[0]["id"], admin);
        assert_eq!(scripts[0]["command"], "echo admin");
        assert_eq!(scripts[1]["when"], "POSTINIT");
        assert_eq!(scripts[1]["type"], "COMMAND");

        // Same inputs again: nothing written, entry unchanged, no restart.
        let again = install::install(&env.nas, &env.host, &env.request(None))
            .await
            .unwrap();
        assert!(!again.created_dataset);
        assert!(again.written.is_empty(), "{:?}", again.written);
        assert!(matches!(again.init_script, InitChange::Unchanged { .. }));
        assert!(!again.restarted);
        // Only the first install restarted it (the boot command's `start --no-block`
        // and the final `start` are no-ops on a running unit).
        assert_eq!(env.sd_log("starts.log").matches("restart").count(), 1);
        assert_eq!(
            env.nas
                .writes()
                .iter()
                .filter(|m| **m == Method::InitScriptCreate)
                .count(),
            1
        );

        // Upgrade: a new binary is written and the service restarted; config/token
        // flags may be left out once installed.
        std::fs::write(env.tmp.path().join("truenas-agent"), NEWER_AGENT).unwrap();
        let mut req = env.request(None);
        req.agent_config = None;
        req.token_file = None;
        let upgrade = install::install(&env.nas, &env.host, &req).await.unwrap();
        assert_eq!(upgrade.written, vec!["binary"]);
        assert!(upgrade.restarted);
        assert_eq!(
            std::fs::read(root.join("bin/truenas-agent")).unwrap(),
            NEWER_AGENT
        );
        let binary = upgrade
            .check
            .items
            .iter()
            .find(|i| i.id == "binary")
            .unwrap();
        assert!(
            binary.detail.contains("truenas-agent 0.0.1 (fake)"),
            "{binary:?}"
        );

        // No secret anywhere but in the token file.
        assert_no_canary("outcome", &format!("{upgrade:?}"));
        assert_no_canary("middleware params", &env.nas.all_params());
        std::fs::remove_file(root.join("token")).unwrap();
        std::fs::remove_file(env.tmp.path().join("token")).unwrap();
        assert_no_canary_in_dir(env.tmp.path());
    }
}

async fn reboot_brings_it_back_and_check_names_each_missing_piece(flavor: ApiFlavor) {
    let env = Env::new(flavor, &["pool0"]);
    install::install(&env.nas, &env.host, &env.request(None))
        .await
        .unwrap();
    env.reboot();
    let report = install::check(&env.nas, &env.host, None, DEFAULT_GUID_PROPERTY)
        .await
        .unwrap();
    assert!(report.ok(), "{report:#?}");
    assert_eq!(report.summary(), "install: ok (8/8)");

    let root = env.root();
    let failing = |report: &install::CheckReport| {
        report
            .items
            .iter()
            .filter(|i| i.status == CheckStatus::Fail)
            .map(|i| (i.id.clone(), i.detail.clone(), i.fix.clone().unwrap()))
            .collect::<Vec<_>>()
    };
    // Remove each piece in turn; the check names it (and only it) with a fix, and a
    // re-install repairs it.
    let breaks: Vec<(&str, Breaker)> = vec![
        (
            "binary",
            Box::new(|| std::fs::remove_file(root.join("bin/truenas-agent")).unwrap()),
        ),
        (
            "config",
            Box::new(|| std::fs::remove_file(root.join("agent.toml")).unwrap()),
        ),
        (
            "token",
            Box::new(|| {
                std::fs::set_permissions(
                    root.join("token"),
                    std::fs::Permissions::from_mode(0o644),
                )
                .unwrap();
            }),
        ),
        (
            "init_script",
            Box::new(|| {
                let id = env.nas.scripts()[0]["id"].as_i64().unwrap();
                env.nas
                    .state
                    .lock()
                    .unwrap()
                    .scripts
                    .retain(|s| s["id"] != id);
            }),
        ),
        (
            "unit_files",
            Box::new(|| {
                std::fs::remove_file(
                    env.host
                        .sys
                        .run_dir
                        .join("truenas-agent.service.d/install.conf"),
                )
                .unwrap();
            }),
        ),
        (
            "service_active",
            Box::new(|| std::fs::write(env.tmp.path().join("sd/active"), "failed").unwrap()),
        ),
    ];
    for (piece, breaker) in breaks {
        breaker();
        let report = install::check(&env.nas, &env.host, None, DEFAULT_GUID_PROPERTY)
            .await
            .unwrap();
        let fails = failing(&report);
        assert_eq!(fails.len(), 1, "{piece}: {fails:#?}");
        assert_eq!(fails[0].0, piece);
        assert!(!fails[0].2.is_empty());
        install::install(&env.nas, &env.host, &env.request(None))
            .await
            .unwrap();
        let repaired = install::check(&env.nas, &env.host, None, DEFAULT_GUID_PROPERTY)
            .await
            .unwrap();
        assert!(repaired.ok(), "{piece} not repaired: {repaired:#?}");
    }
    // unit_loaded: systemd lost the unit (e.g. someone ran daemon-reload after deleting it).
    std::fs::write(env.tmp.path().join("sd/load"), "not-found").unwrap();
    let report = install::check(&env.nas, &env.host, None, DEFAULT_GUID_PROPERTY)
        .await
        .unwrap();
    let ids: Vec<_> = failing(&report).into_iter().map(|f| f.0).collect();
    assert!(ids.contains(&"unit_loaded".to_owned()), "{ids:?}");
}
per_flavour!(reboot_brings_it_back_and_check_names_each_missing_piece);

async fn uninstall_removes_entry_and_unit_and_keeps_or_purges_files(flavor: ApiFlavor) {
    let env = Env::new(flavor, &["pool0"]);
    env.nas.add_script(json!({
        "type": "COMMAND", "command": "echo admin", "when": "PREINIT", "enabled": true,
        "timeout": 10, "comment": "keep me"
    }));
    install::install(&env.nas, &env.host, &env.request(None))
        .await
        .unwrap();
    let out = install::uninstall(&env.nas, &env.host, None, false)
        .await
        .unwrap();
    assert_eq!(out.removed_init_scripts.len(), 1);
    assert!(out.stopped);
    assert_eq!(out.kept.as_deref(), Some(env.root().as_path()));
    let scripts = env.nas.scripts();
    assert_eq!(scripts.len(), 1);
    assert_eq!(scripts[0]["comment"], "keep me");
    assert!(!env.host.sys.run_dir.join("truenas-agent.service").exists());
    assert!(
        !env.host
            .sys
            .run_dir
            .join("truenas-agent.service.d")
            .exists()
    );
    assert!(
        env.root().join("agent.toml").exists(),
        "state/config kept without --purge"
    );
    let report = install::check(
        &env.nas,
        &env.host,
        Some(DatasetName::parse("pool0/.truenas-agent").unwrap()),
        DEFAULT_GUID_PROPERTY,
    )
    .await
    .unwrap();
    assert!(!report.ok());

    install::install(&env.nas, &env.host, &env.request(None))
        .await
        .unwrap();
    let purged = install::uninstall(&env.nas, &env.host, None, true)
        .await
        .unwrap();
    assert_eq!(purged.purged.as_deref(), Some(env.root().as_path()));
    for f in ["bin", "agent.toml", "token", "state", "systemd"] {
        assert!(!env.root().join(f).exists(), "{f} left after --purge");
    }
    // Uninstalling twice is fine.
    let again = install::uninstall(&env.nas, &env.host, None, true)
        .await
        .unwrap();
    assert!(again.removed_init_scripts.is_empty());
}
per_flavour!(uninstall_removes_entry_and_unit_and_keeps_or_purges_files);

async fn refuses_datasets_locked_at_boot_before_writing_anything(flavor: ApiFlavor) {
    let env = Env::new(flavor, &["pool0", "secure"]);
    let mnt = env.tmp.path().join("mnt");
    env.nas
        .set_dataset(dataset_entry(&mnt, "secure", true, Some("PASSPHRASE")));
    let err = install::install(
        &env.nas,
        &env.host,
        &env.request(Some("secure/.truenas-agent")),
    )
    .await
    .unwrap_err();
    assert!(matches!(err, InstallError::LockedAtBoot { .. }), "{err}");
    let text = err.to_string();
    assert!(
        text.contains("secure/.truenas-agent") && text.contains("passphrase"),
        "{text}"
    );
    assert!(env.nas.writes().is_empty(), "wrote {:?}", env.nas.writes());

    // An existing dataset that is locked right now.
    let mut locked = dataset_entry(&mnt, "pool0/agent", true, Some("HEX"));
    locked["locked"] = json!(true);
    env.nas.set_dataset(locked);
    let err = install::install(&env.nas, &env.host, &env.request(Some("pool0/agent")))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("locked now"), "{err}");

    // Key-encrypted (TrueNAS unlocks it at import): fine.
    env.nas
        .set_dataset(dataset_entry(&mnt, "secure", true, Some("HEX")));
    let ok = install::install(
        &env.nas,
        &env.host,
        &env.request(Some("secure/.truenas-agent")),
    )
    .await
    .unwrap();
    assert!(ok.check.ok());
}
per_flavour!(refuses_datasets_locked_at_boot_before_writing_anything);

async fn bad_input_is_refused_with_the_field_and_nothing_written(flavor: ApiFlavor) {
    let env = Env::new(flavor, &["pool0", "pool1"]);
    // Two pools, neither carries the device GUID: the installer will not guess.
    let err = install::install(&env.nas, &env.host, &env.request(None))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("pass --dataset"), "{err}");

    let mut req = env.request(Some("pool0/.truenas-agent"));
    req.agent_config = None;
    let err = install::install(&env.nas, &env.host, &req)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("--agent-config"), "{err}");

    std::fs::write(env.tmp.path().join("bad.toml"), "central_url = ").unwrap();
    req.agent_config = Some(env.tmp.path().join("bad.toml"));
    let err = install::install(&env.nas, &env.host, &req)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("bad.toml"), "{err}");

    // Valid TOML the agent would refuse (unknown key): refused now, naming the field.
    std::fs::write(
        env.tmp.path().join("typo.toml"),
        "[central]\nurl = \"https://c.example\"\ntoken_file = \"/t\"\nallow_unsigned = true\npoll_intervall_secs = 5\n",
    )
    .unwrap();
    req.agent_config = Some(env.tmp.path().join("typo.toml"));
    let err = install::install(&env.nas, &env.host, &req)
        .await
        .unwrap_err();
    let chain = format!("{:#}", anyhow::Error::from(err));
    assert!(
        chain.contains("typo.toml") && chain.contains("poll_intervall_secs"),
        "{chain}"
    );

    std::fs::write(env.tmp.path().join("empty"), "\n").unwrap();
    let mut req = env.request(Some("pool0/.truenas-agent"));
    req.token_file = Some(env.tmp.path().join("empty"));
    let err = install::install(&env.nas, &env.host, &req)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("is empty"), "{err}");
    assert!(env.nas.writes().is_empty(), "wrote {:?}", env.nas.writes());

    assert!(DatasetName::parse("pool0/bad name").is_err());
}
per_flavour!(bad_input_is_refused_with_the_field_and_nothing_written);

#[test]
fn cli_refuses_a_bad_dataset_before_connecting() {
    let out = crate::support::agent_command()
        .args(["install", "--check", "--dataset", "pool0/my data"])
        .env("TRUENAS_AGENT_MIDDLEWARE", "unix:///nonexistent.sock")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("--dataset") && stderr.contains("may only contain"),
        "{stderr}"
    );
    let help = crate::support::agent_command()
        .args(["install", "--help"])
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&help.stdout);
    for flag in [
        "--dataset",
        "--agent-config",
        "--token-file",
        "--check",
        "--json",
    ] {
        assert!(help.contains(flag), "{flag} missing from help");
    }
    assert!(!help.contains("--systemctl"), "test-only flags stay hidden");
}

async fn sysext_route_installs_boots_checks_and_uninstalls(flavor: ApiFlavor) {
    let env = Env::new(flavor, &["pool0"]);
    std::fs::write(env.tmp.path().join("truenas-agent.raw"), b"hsqs fake image").unwrap();
    let mut req = env.request(None);
    req.sysext_image = Some(env.tmp.path().join("truenas-agent.raw"));
    let out = install::install(&env.nas, &env.host, &req).await.unwrap();
    assert!(out.check.ok(), "{:#?}", out.check);
    assert_eq!(out.layout.route, install::Route::Sysext);
    let root = env.root();
    assert_eq!(mode(&root.join("truenas-agent.raw")), 0o644);
    assert!(
        !root.join("bin").exists(),
        "no binary on the pool in the sysext route"
    );
    let sys = &env.host.sys;
    let dropin = std::fs::read_to_string(sys.runtime_dropin()).unwrap();
    assert!(
        dropin.contains(&format!(
            "ExecStart={}/bin/truenas-agent --config",
            sys.sysext_usr.display()
        )),
        "{dropin}"
    );
    assert!(
        !sys.runtime_unit().exists(),
        "the unit comes from the image"
    );
    let comment = env.nas.scripts()[0]["comment"].as_str().unwrap().to_owned();
    assert!(
        comment.contains(", sysext (dataset=pool0/.truenas-agent)"),
        "{comment}"
    );
    let binary = out.check.items.iter().find(|i| i.id == "binary").unwrap();
    assert!(binary.detail.contains("(sysext)"), "{binary:?}");

    env.reboot();
    let report = install::check(&env.nas, &env.host, None, DEFAULT_GUID_PROPERTY)
        .await
        .unwrap();
    assert!(report.ok(), "{report:#?}");
    std::fs::remove_file(sys.runtime_image()).unwrap();
    let report = install::check(&env.nas, &env.host, None, DEFAULT_GUID_PROPERTY)
        .await
        .unwrap();
    let failing: Vec<_> = report.failures().map(|i| i.id.clone()).collect();
    assert_eq!(failing, vec!["unit_files"], "{report:#?}");

    let gone = install::uninstall(&env.nas, &env.host, None, true)
        .await
        .unwrap();
    assert_eq!(gone.removed_init_scripts.len(), 1);
    assert!(!sys.runtime_dropin_dir().exists());
    assert!(!root.join("truenas-agent.raw").exists());
}
per_flavour!(sysext_route_installs_boots_checks_and_uninstalls);

async fn a_config_without_central_needs_no_token(flavor: ApiFlavor) {
    let env = Env::new(flavor, &["pool0"]);
    std::fs::write(
        env.tmp.path().join("local.toml"),
        "guid_property = \"com.dtctoday:device-guid\"\n",
    )
    .unwrap();
    let mut req = env.request(None);
    req.agent_config = Some(env.tmp.path().join("local.toml"));
    req.token_file = None;
    let out = install::install(&env.nas, &env.host, &req).await.unwrap();
    assert!(out.check.ok(), "{:#?}", out.check);
    let token = out.check.items.iter().find(|i| i.id == "token").unwrap();
    assert!(token.detail.contains("not needed"), "{token:?}");
    assert!(!env.root().join("token").exists());
}
per_flavour!(a_config_without_central_needs_no_token);

/// The root pool is the one whose root dataset carries the device GUID in the
/// *configured* property (`guid_property`), not in the default one.
/// See: issue 14 ("`install/nas.rs` ignores the configured property").
async fn issue_14_install_honours_the_configured_guid_property(flavor: ApiFlavor) {
    const CUSTOM: &str = "com.example:device-guid";
    let env = Env::new(flavor, &["pool0", "pool1", "pool2"]);
    let mnt = env.tmp.path().join("mnt");
    // pool0 carries the default property (a box once provisioned the default way),
    // pool1 the configured one: pool1 is the root pool.
    let mut with_default = dataset_entry(&mnt, "pool0", false, None);
    with_default["user_properties"] =
        json!({DEFAULT_GUID_PROPERTY: {"value": "9babab19-acc0-4587-aa05-ccd8103a1148"}});
    env.nas.set_dataset(with_default);
    let mut with_custom = dataset_entry(&mnt, "pool1", false, None);
    with_custom["user_properties"] =
        json!({CUSTOM: {"value": "9babab19-acc0-4587-aa05-ccd8103a1148"}});
    env.nas.set_dataset(with_custom);

    // The property of the configuration in force (`--config`).
    let root = |property: &'static str| install::default_dataset(&env.nas, property);
    assert_eq!(root(CUSTOM).await.unwrap().as_str(), "pool1/.truenas-agent");
    assert_eq!(
        root(DEFAULT_GUID_PROPERTY).await.unwrap().as_str(),
        "pool0/.truenas-agent"
    );

    // The property of the config being installed wins over the one in force.
    std::fs::write(
        env.tmp.path().join("custom.toml"),
        format!("guid_property = \"{CUSTOM}\"\n{AGENT_TOML}"),
    )
    .unwrap();
    let mut req = env.request(None);
    req.agent_config = Some(env.tmp.path().join("custom.toml"));
    let out = install::install(&env.nas, &env.host, &req).await.unwrap();
    assert_eq!(out.layout.dataset.as_str(), "pool1/.truenas-agent");
    let report = install::check(&env.nas, &env.host, None, CUSTOM)
        .await
        .unwrap();
    assert!(report.ok(), "{report:#?}");
}
per_flavour!(issue_14_install_honours_the_configured_guid_property);
