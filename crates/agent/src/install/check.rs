//! `install --check`: is every piece of the installation in place, and if not, what to do.
//!
//! Owns: the [`CheckReport`] (serialisable, for `status` and RMMs), the pure
//! [`evaluate`] that turns gathered [`Facts`] into one [`CheckItem`] per piece with its
//! fix, and the one-line [`CheckReport::summary`].
//! Does not: gather facts (that is `install::check`, the imperative shell) or repair
//!   anything.
//! Invariants: every piece appears in every report, in the same order (the tests' `PIECES`), so a
//!   consumer can rely on the ids; no item ever contains file contents (the token file is
//!   only ever stat'ed here).
//! Limitations: "started this boot" is inferred from the runtime unit in /run (a tmpfs
//!   emptied at every boot) being the one systemd loaded and the service being active.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::layout::{Route, SystemPaths};
use super::nas::{DatasetInfo, InitEntry, boot_lock};
use super::systemd::UnitStatus;
use super::units::InitScriptSpec;

/// The ids of the pieces, in report order (the tests hold every report to it).
#[cfg(test)]
pub(crate) const PIECES: [&str; 8] = [
    "dataset",
    "binary",
    "config",
    "token",
    "init_script",
    "unit_files",
    "unit_loaded",
    "service_active",
];

/// Pass or fail of one piece.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CheckStatus {
    Pass,
    Fail,
}

/// One piece of the installation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckItem {
    /// Stable id (the `PIECES` list of the tests).
    pub id: String,
    pub status: CheckStatus,
    /// What was found.
    pub detail: String,
    /// What to do about a failure.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
}

/// The whole check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckReport {
    /// The install dataset checked.
    pub dataset: String,
    /// Its mountpoint, when known.
    pub root: Option<PathBuf>,
    /// The registered boot command, when our init-script entry exists (what the
    /// middleware runs at POSTINIT).
    pub boot_command: Option<String>,
    pub items: Vec<CheckItem>,
}

impl CheckReport {
    /// True when every piece passes.
    pub fn ok(&self) -> bool {
        self.items.iter().all(|i| i.status == CheckStatus::Pass)
    }

    /// The failing pieces.
    pub fn failures(&self) -> impl Iterator<Item = &CheckItem> {
        self.items.iter().filter(|i| i.status == CheckStatus::Fail)
    }

    /// One line for `status`: `install: ok (8/8)` or `install: 2 problems (token, service_active)`.
    pub fn summary(&self) -> String {
        let failing: Vec<&str> = self.failures().map(|i| i.id.as_str()).collect();
        if failing.is_empty() {
            format!("install: ok ({n}/{n})", n = self.items.len())
        } else {
            format!(
                "install: {} problem{} ({})",
                failing.len(),
                if failing.len() == 1 { "" } else { "s" },
                failing.join(", ")
            )
        }
    }
}

/// What `stat` says about one of our files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum FileFact {
    Missing,
    Present { uid: u32, mode: u32, is_file: bool },
    Unreadable(String),
}

/// How the runtime copy in /run compares with the copy on the pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CopyFact {
    Same,
    Missing,
    Differs,
}

/// Everything the check looks at, gathered by the shell.
#[derive(Debug, Clone)]
pub(crate) struct Facts {
    pub dataset: String,
    pub route: Route,
    /// `None`: the dataset does not exist.
    pub dataset_info: Option<DatasetInfo>,
    /// Whether the mountpoint directory exists on this host.
    pub mountpoint_present: bool,
    /// The payload on the pool: the binary (Binary route) or the image (Sysext route).
    pub binary: FileFact,
    /// `<binary> --version` of the binary the unit runs (on the pool, or in the merged
    /// `/usr`), or why it did not run; `None` when not tried (payload missing).
    pub binary_runs: Option<Result<String, String>>,
    pub config: FileFact,
    pub token: FileFact,
    /// False when the installed config has no `[central]` section (no token needed).
    pub token_required: bool,
    /// Our init-script entries (marker in the comment).
    pub init_entries: Vec<InitEntry>,
    /// What our entry should be, when the layout is known.
    pub expected_init: Option<InitScriptSpec>,
    /// Where the payload, config and token are (`None` when the dataset is not mounted),
    /// for the details.
    pub paths: Option<[PathBuf; 3]>,
    /// Runtime copies (`/run/...`) compared with their source on the pool: the unit or
    /// the image, then the drop-in.
    pub runtime_copies: Vec<(PathBuf, CopyFact)>,
    /// The unit file systemd should have loaded (runtime copy, or the merged image's).
    pub expected_fragment: PathBuf,
    /// `systemctl show`, or why it could not be asked.
    pub unit: Result<UnitStatus, String>,
    /// The uid files must belong to (root on a NAS).
    pub owner_uid: u32,
    pub sys: SystemPaths,
}

const REINSTALL: &str = "run `truenas-agent install` again";

/// Turns facts into the report. Pure.
pub(crate) fn evaluate(facts: &Facts) -> CheckReport {
    let items = vec![
        dataset_item(facts),
        binary_item(facts),
        named(
            file_item("config", &facts.config, FileRule::Secret, facts.owner_uid),
            facts.paths.as_ref().map(|p| &p[1]),
        ),
        token_item(facts),
        init_item(facts),
        unit_files_item(facts),
        unit_loaded_item(facts),
        service_item(facts),
    ];
    CheckReport {
        dataset: facts.dataset.clone(),
        root: facts
            .dataset_info
            .as_ref()
            .and_then(|i| i.mountpoint.clone()),
        boot_command: facts.init_entries.first().map(|e| e.command().to_owned()),
        items,
    }
}

fn pass(id: &str, detail: impl Into<String>) -> CheckItem {
    CheckItem {
        id: id.to_owned(),
        status: CheckStatus::Pass,
        detail: detail.into(),
        fix: None,
    }
}

fn fail(id: &str, detail: impl Into<String>, fix: impl Into<String>) -> CheckItem {
    CheckItem {
        id: id.to_owned(),
        status: CheckStatus::Fail,
        detail: detail.into(),
        fix: Some(fix.into()),
    }
}

fn dataset_item(f: &Facts) -> CheckItem {
    let id = "dataset";
    let Some(info) = &f.dataset_info else {
        return fail(id, format!("{} does not exist", f.dataset), REINSTALL);
    };
    let Some(mount) = &info.mountpoint else {
        return fail(
            id,
            format!("{} is not mounted", f.dataset),
            "unlock or mount it in Datasets, then run the boot command again",
        );
    };
    if let Some(reason) = boot_lock(info) {
        return fail(
            id,
            format!("{}: {reason}", f.dataset),
            "uninstall, then install onto an unencrypted or key-encrypted dataset (--dataset)",
        );
    }
    if info.exec.as_deref() == Some("OFF") {
        return fail(
            id,
            format!("{} has exec=off: the binary cannot run", f.dataset),
            format!(
                "set Exec to ON for {} (Datasets > Edit > Advanced)",
                f.dataset
            ),
        );
    }
    if !f.mountpoint_present {
        return fail(
            id,
            format!("mountpoint {} is missing on this host", mount.display()),
            "check that the pool is imported",
        );
    }
    pass(id, format!("{} mounted at {}", f.dataset, mount.display()))
}

/// Prefixes an item's detail with the file it is about.
fn named(mut item: CheckItem, path: Option<&PathBuf>) -> CheckItem {
    if let Some(path) = path {
        item.detail = format!("{}: {}", path.display(), item.detail);
    }
    item
}

/// What a file's mode must satisfy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FileRule {
    /// The binary: executable by its owner, writable by nobody else.
    Executable,
    /// The sysext image: writable by nobody else.
    Public,
    /// Config and token: no access at all for group/other (the token is a secret).
    Secret,
}

fn file_item(id: &str, fact: &FileFact, rule: FileRule, owner: u32) -> CheckItem {
    let (uid, mode) = match fact {
        FileFact::Missing => return fail(id, "missing", fix_for(id)),
        FileFact::Unreadable(why) => {
            return fail(id, format!("cannot inspect: {why}"), fix_for(id));
        }
        FileFact::Present { is_file: false, .. } => {
            return fail(id, "is not a regular file", fix_for(id));
        }
        FileFact::Present { uid, mode, .. } => (*uid, *mode),
    };
    if uid != owner {
        return fail(
            id,
            format!("owned by uid {uid}, expected {owner}"),
            format!("chown {owner} the file, or {REINSTALL}"),
        );
    }
    let problem = match rule {
        FileRule::Executable if mode & 0o100 == 0 => Some("not executable"),
        FileRule::Executable | FileRule::Public if mode & 0o022 != 0 => {
            Some("group/other may write it")
        }
        FileRule::Secret if mode & 0o077 != 0 => Some("group/other may read it"),
        FileRule::Executable | FileRule::Public | FileRule::Secret => None,
    };
    let want = match rule {
        FileRule::Executable => "0755",
        FileRule::Public => "0644",
        FileRule::Secret => "0600",
    };
    match problem {
        Some(what) => fail(
            id,
            format!("{what} (mode {mode:04o})"),
            format!("chmod {want} the file, or {REINSTALL}"),
        ),
        None => pass(id, format!("present, mode {mode:04o}")),
    }
}

fn token_item(f: &Facts) -> CheckItem {
    if !f.token_required && f.token == FileFact::Missing {
        return pass("token", "not needed: the config has no [central] section");
    }
    named(
        file_item("token", &f.token, FileRule::Secret, f.owner_uid),
        f.paths.as_ref().map(|p| &p[2]),
    )
}

fn binary_item(f: &Facts) -> CheckItem {
    let rule = match f.route {
        Route::Binary => FileRule::Executable,
        Route::Sysext => FileRule::Public,
    };
    let item = named(
        file_item("binary", &f.binary, rule, f.owner_uid),
        f.paths.as_ref().map(|p| &p[0]),
    );
    match (&item.status, &f.binary_runs) {
        (CheckStatus::Pass, Some(Ok(version))) => {
            pass("binary", format!("{}, {version}", item.detail))
        }
        (CheckStatus::Pass, Some(Err(why))) => fail(
            "binary",
            format!("{}; does not run: {why}", item.detail),
            format!("check that the dataset has exec=on, then {REINSTALL}"),
        ),
        _ => item,
    }
}

fn fix_for(id: &str) -> String {
    match id {
        "config" => format!("{REINSTALL} with --agent-config FILE"),
        "token" => format!("{REINSTALL} with --token-file FILE"),
        _ => REINSTALL.to_owned(),
    }
}

fn init_item(f: &Facts) -> CheckItem {
    let id = "init_script";
    let Some(entry) = f.init_entries.first() else {
        return fail(
            id,
            "no init/shutdown script of ours is registered",
            REINSTALL,
        );
    };
    if f.init_entries.len() > 1 {
        return fail(
            id,
            format!("{} entries carry our marker", f.init_entries.len()),
            REINSTALL,
        );
    }
    let enabled = entry
        .entry
        .get("enabled")
        .and_then(serde_json::Value::as_bool);
    if enabled != Some(true) {
        return fail(
            id,
            format!("entry {} is disabled", entry.id),
            "enable it in System > Advanced > Init/Shutdown Scripts, or run install again",
        );
    }
    match &f.expected_init {
        Some(spec) => {
            let diffs = spec.differences(&entry.entry);
            if diffs.is_empty() {
                pass(id, format!("entry {} ({}, enabled)", entry.id, spec.when))
            } else {
                fail(
                    id,
                    format!("entry {} differs in: {}", entry.id, diffs.join(", ")),
                    REINSTALL,
                )
            }
        }
        None => fail(
            id,
            format!(
                "entry {} exists but the install dataset is not usable",
                entry.id
            ),
            REINSTALL,
        ),
    }
}

fn unit_files_item(f: &Facts) -> CheckItem {
    let id = "unit_files";
    let problems: Vec<String> = f
        .runtime_copies
        .iter()
        .filter_map(|(p, c)| match c {
            CopyFact::Same => None,
            CopyFact::Missing => Some(format!("{} missing", p.display())),
            CopyFact::Differs => Some(format!("{} differs from the copy on the pool", p.display())),
        })
        .collect();
    if problems.is_empty() {
        let names: Vec<String> = f
            .runtime_copies
            .iter()
            .map(|(p, _)| p.display().to_string())
            .collect();
        pass(id, format!("written this boot: {}", names.join(", ")))
    } else {
        fail(
            id,
            problems.join("; "),
            "run the registered boot command (see `install --check --json`), or run install again",
        )
    }
}

fn unit_loaded_item(f: &Facts) -> CheckItem {
    let id = "unit_loaded";
    let status = match &f.unit {
        Ok(s) => s,
        Err(why) => {
            return fail(
                id,
                format!("cannot ask systemd: {why}"),
                "check that systemd runs",
            );
        }
    };
    if status.load_state != "loaded" {
        return fail(
            id,
            format!("systemd says LoadState={}", status.load_state),
            "run the boot command again (it reloads systemd)",
        );
    }
    let expected = &f.expected_fragment;
    if Path::new(&status.fragment_path) != expected {
        return fail(
            id,
            format!(
                "systemd loaded {} instead of {}",
                status.fragment_path,
                expected.display()
            ),
            "remove the other copy of truenas-agent.service, then systemctl daemon-reload",
        );
    }
    let dropin = f.sys.runtime_dropin();
    if !status.drop_in_paths.iter().any(|p| Path::new(p) == dropin) {
        return fail(
            id,
            format!("the drop-in {} is not in effect", dropin.display()),
            "systemctl daemon-reload",
        );
    }
    pass(id, format!("loaded from {}", status.fragment_path))
}

fn service_item(f: &Facts) -> CheckItem {
    let id = "service_active";
    let Ok(status) = &f.unit else {
        return fail(
            id,
            "unknown (systemd not reachable)",
            "check that systemd runs",
        );
    };
    if status.is_active() && status.sub_state == "running" {
        return pass(
            id,
            format!(
                "running since {} (pid {}, {} restarts)",
                status.active_since, status.main_pid, status.restarts
            ),
        );
    }
    fail(
        id,
        format!(
            "{}, last result {}",
            status.describe(),
            if status.result.is_empty() {
                "unknown"
            } else {
                &status.result
            }
        ),
        "journalctl -u truenas-agent.service -b, then systemctl restart truenas-agent.service",
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::install::layout::{DatasetName, Layout};
    use serde_json::json;

    fn good() -> Facts {
        let layout = Layout::new(
            DatasetName::parse("pool0/.truenas-agent").unwrap(),
            "/mnt/pool0/.truenas-agent",
        );
        let sys = SystemPaths::default();
        let spec = InitScriptSpec::for_layout(&layout, &sys);
        let mut entry = spec.to_json();
        entry["id"] = json!(1);
        Facts {
            dataset: "pool0/.truenas-agent".into(),
            route: Route::Binary,
            dataset_info: Some(DatasetInfo {
                name: "pool0/.truenas-agent".into(),
                mountpoint: Some("/mnt/pool0/.truenas-agent".into()),
                encrypted: false,
                locked: false,
                key_format: None,
                exec: Some("ON".into()),
                readonly: Some("OFF".into()),
            }),
            mountpoint_present: true,
            binary: FileFact::Present {
                uid: 0,
                mode: 0o755,
                is_file: true,
            },
            binary_runs: Some(Ok("truenas-agent 0.1.0 (abc)".into())),
            config: FileFact::Present {
                uid: 0,
                mode: 0o600,
                is_file: true,
            },
            token: FileFact::Present {
                uid: 0,
                mode: 0o600,
                is_file: true,
            },
            token_required: true,
            init_entries: vec![InitEntry { id: 1, entry }],
            expected_init: Some(spec),
            paths: Some([
                "/mnt/pool0/.truenas-agent/bin/truenas-agent".into(),
                "/mnt/pool0/.truenas-agent/agent.toml".into(),
                "/mnt/pool0/.truenas-agent/token".into(),
            ]),
            runtime_copies: vec![
                (sys.runtime_unit(), CopyFact::Same),
                (sys.runtime_dropin(), CopyFact::Same),
            ],
            expected_fragment: sys.runtime_unit(),
            unit: Ok(UnitStatus {
                load_state: "loaded".into(),
                active_state: "active".into(),
                sub_state: "running".into(),
                fragment_path: "/run/systemd/system/truenas-agent.service".into(),
                drop_in_paths: vec![
                    "/run/systemd/system/truenas-agent.service.d/install.conf".into(),
                ],
                main_pid: 42,
                restarts: 0,
                active_since: "Mon 2026-11-23 10:00:00 UTC".into(),
                result: "success".into(),
            }),
            owner_uid: 0,
            sys,
        }
    }

    fn only_failure(facts: &Facts) -> CheckItem {
        let report = evaluate(facts);
        let failures: Vec<_> = report.failures().cloned().collect();
        assert_eq!(failures.len(), 1, "{failures:#?}");
        assert!(failures[0].fix.is_some());
        failures[0].clone()
    }

    #[test]
    fn all_pieces_pass() {
        let report = evaluate(&good());
        assert!(report.ok(), "{report:#?}");
        let ids: Vec<_> = report.items.iter().map(|i| i.id.as_str()).collect();
        assert_eq!(ids, PIECES);
        assert_eq!(report.summary(), "install: ok (8/8)");
        assert!(report.boot_command.unwrap().contains("daemon-reload"));
    }

    #[test]
    fn each_broken_piece_is_named_with_a_fix() {
        type Break = fn(&mut Facts);
        let cases: [(&str, &str, Break); 15] = [
            ("binary", "does not run", |f| {
                f.binary_runs = Some(Err("exec format error".into()));
            }),
            ("dataset", "does not exist", |f| f.dataset_info = None),
            ("dataset", "passphrase", |f| {
                let i = f.dataset_info.as_mut().unwrap();
                i.encrypted = true;
                i.key_format = Some("PASSPHRASE".into());
            }),
            ("dataset", "exec=off", |f| {
                f.dataset_info.as_mut().unwrap().exec = Some("OFF".into());
            }),
            ("binary", "missing", |f| f.binary = FileFact::Missing),
            ("binary", "not executable", |f| {
                f.binary = FileFact::Present {
                    uid: 0,
                    mode: 0o644,
                    is_file: true,
                }
            }),
            ("config", "missing", |f| f.config = FileFact::Missing),
            ("token", "group/other", |f| {
                f.token = FileFact::Present {
                    uid: 0,
                    mode: 0o644,
                    is_file: true,
                }
            }),
            ("token", "owned by uid 1000", |f| {
                f.token = FileFact::Present {
                    uid: 1000,
                    mode: 0o600,
                    is_file: true,
                }
            }),
            ("init_script", "no init/shutdown script", |f| {
                f.init_entries.clear();
            }),
            ("init_script", "disabled", |f| {
                f.init_entries[0].entry["enabled"] = json!(false);
            }),
            ("init_script", "differs in: command", |f| {
                f.init_entries[0].entry["command"] = json!("true");
            }),
            ("unit_files", "missing", |f| {
                f.runtime_copies[1].1 = CopyFact::Missing;
            }),
            ("unit_loaded", "instead of", |f| {
                f.unit.as_mut().unwrap().fragment_path =
                    "/etc/systemd/system/truenas-agent.service".into();
            }),
            ("service_active", "failed", |f| {
                let u = f.unit.as_mut().unwrap();
                u.active_state = "failed".into();
                u.sub_state = "failed".into();
                u.result = "exit-code".into();
            }),
        ];
        for (id, text, breaker) in cases {
            let mut facts = good();
            breaker(&mut facts);
            let item = only_failure(&facts);
            assert_eq!(item.id, id, "{text}");
            assert!(item.detail.contains(text), "{id}: {}", item.detail);
        }
    }

    #[test]
    fn summary_names_failures_and_json_is_stable() {
        let mut facts = good();
        facts.token = FileFact::Missing;
        facts.unit = Err("systemctl not found".into());
        let report = evaluate(&facts);
        assert_eq!(
            report.summary(),
            "install: 3 problems (token, unit_loaded, service_active)"
        );
        let json = serde_json::to_value(&report).unwrap();
        assert_eq!(json["items"][3]["id"], "token");
        assert_eq!(json["items"][3]["status"], "fail");
        assert_eq!(json["items"][0]["status"], "pass");
        assert!(json["items"][0].get("fix").is_none());
    }
}
