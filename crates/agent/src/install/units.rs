//! The text the installer generates: the drop-in, the boot command and the middleware
//! init-script entry that runs it.
//!
//! Owns: the unit template (`systemd/truenas-agent.service`, embedded), the drop-in
//! (`install.conf`: real ExecStart, the writable state dir, restart back-off where the
//! systemd version has it), the boot command, and the marker that recognises our own
//! init-script entry among the admin's.
//! Does not: write files, call the middleware or run commands.
//! Invariants: the boot command is what the middleware runs with `sh -c` at POSTINIT and
//!   what `install` itself runs to start the service now, so both paths are one; it stays
//!   far below the middleware's 1024-character string limit; paths in it come from a
//!   [`Layout`] whose dataset name was validated, so single quotes are enough.
//! Limitations: one installation per box: the marker does not carry an instance name.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::layout::{DROPIN_NAME, DatasetName, IMAGE_NAME, Layout, Route, SystemPaths, UNIT_NAME};

/// The hardened unit, as shipped in `systemd/truenas-agent.service`.
pub(crate) const UNIT_TEMPLATE: &str = include_str!("../../../../systemd/truenas-agent.service");
/// Marks the init-script entry `install` owns (in its `comment`). Never edit it by hand.
pub(crate) const MARKER: &str = "[truenas-agent:boot]";
/// When the boot command runs. POSTINIT: the middleware is ready, pools are imported and
/// mounted, the network is up; nothing in the boot depends on the agent. (PREINIT runs
/// with `DefaultDependencies=no` before `network-pre.target`, where a daemon-reload in
/// the middle of the boot transaction and a not yet ready middleware buy nothing.)
pub(crate) const WHEN: &str = "POSTINIT";
/// Seconds the middleware lets the boot command run (it only copies two files,
/// reloads systemd and queues a start with `--no-block`).
pub(crate) const INIT_TIMEOUT_S: u64 = 60;
/// The middleware's cap on plain strings (REFERENCE §5.1); the boot command stays under it.
#[cfg(test)]
pub(crate) const MAX_STRING: usize = 1024;
/// First systemd version with `RestartSteps=` / `RestartMaxDelaySec=`.
pub(crate) const BACKOFF_SINCE: u32 = 254;

/// The drop-in that turns the template into this installation's unit.
pub(crate) fn dropin(layout: &Layout, sys: &SystemPaths, systemd_version: Option<u32>) -> String {
    let bin = layout.exec_path(sys);
    let config = layout.config();
    let state = layout.state_dir();
    let mut text = format!(
        "# Written by `truenas-agent install` for dataset {ds}; re-run install to change it.\n\
         [Service]\n\
         ExecStart=\n\
         ExecStart={bin} --config {config} --state-dir {state} run\n\
         ReadWritePaths={state}\n",
        ds = layout.dataset,
        bin = bin.display(),
        config = config.display(),
        state = state.display(),
    );
    if systemd_version.is_some_and(|v| v >= BACKOFF_SINCE) {
        // systemd >= 254: restart delay grows from RestartSec (15 s) to 5 min.
        text.push_str("RestartSteps=5\nRestartMaxDelaySec=5min\n");
    }
    text
}

/// The command the middleware runs at POSTINIT (and `install` runs now): put the unit
/// (binary route: a copy from the pool; sysext route: the image, merged) and the
/// drop-in into place, reload, start without waiting (the middleware gives init
/// commands a short timeout).
pub(crate) fn boot_command(layout: &Layout, sys: &SystemPaths) -> String {
    let src = layout.systemd_dir();
    let run = &sys.run_dir;
    let ctl = &sys.systemctl;
    let unit_step = match layout.route {
        Route::Binary => format!("cp \"$src/{UNIT_NAME}\" \"$dst/{UNIT_NAME}\"; "),
        // The image is copied to tmpfs: loop-mounting it from ZFS fails (docs/install.md).
        // A stale binary-route copy in /run would shadow the image's unit: remove it.
        Route::Sysext => format!(
            "rm -f \"$dst/{UNIT_NAME}\"; mkdir -p '{ext}'; cp '{image}' '{ext}/{IMAGE_NAME}'; \
             '{sysext}' refresh; ",
            ext = sys.extensions_dir.display(),
            image = layout.image().display(),
            sysext = sys.sysext.display(),
        ),
    };
    format!(
        "set -e; src='{src}'; dst='{run}'; mkdir -p \"$dst/{UNIT_NAME}.d\"; {unit_step}\
         cp \"$src/{DROPIN_NAME}\" \"$dst/{UNIT_NAME}.d/{DROPIN_NAME}\"; \
         '{ctl}' daemon-reload; '{ctl}' start --no-block {UNIT_NAME}",
        src = src.display(),
        run = run.display(),
        ctl = ctl.display(),
    )
}

/// The `comment` of our init-script entry: human text, the route, the dataset, and the
/// marker.
pub(crate) fn init_comment(layout: &Layout) -> String {
    let route = match layout.route {
        Route::Binary => "",
        Route::Sysext => ", sysext",
    };
    format!(
        "truenas-agent boot hook{route} (dataset={}) {MARKER}",
        layout.dataset
    )
}

/// The route named in one of our comments.
pub(crate) fn route_from_comment(comment: &str) -> Route {
    if comment.contains(", sysext (dataset=") {
        Route::Sysext
    } else {
        Route::Binary
    }
}

/// True when an init-script entry's comment carries our marker.
pub(crate) fn is_ours(comment: &str) -> bool {
    comment.contains(MARKER)
}

/// The dataset named in one of our comments (`dataset=...`), if it parses.
pub(crate) fn dataset_from_comment(comment: &str) -> Option<DatasetName> {
    let start = comment.find("(dataset=")? + "(dataset=".len();
    let rest = &comment[start..];
    let end = rest.find(')')?;
    DatasetName::parse(&rest[..end]).ok()
}

/// The fields of our init-script entry, as sent to `initshutdownscript.create`/`update`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct InitScriptSpec {
    #[serde(rename = "type")]
    pub kind: String,
    pub command: String,
    pub when: String,
    pub enabled: bool,
    pub timeout: u64,
    pub comment: String,
}

impl InitScriptSpec {
    /// Our entry for `layout`.
    pub(crate) fn for_layout(layout: &Layout, sys: &SystemPaths) -> Self {
        Self {
            kind: "COMMAND".to_owned(),
            command: boot_command(layout, sys),
            when: WHEN.to_owned(),
            enabled: true,
            timeout: INIT_TIMEOUT_S,
            comment: init_comment(layout),
        }
    }

    /// The JSON object for the middleware (every field, so an update replaces all of them).
    pub(crate) fn to_json(&self) -> Value {
        json!({
            "type": self.kind,
            "command": self.command,
            "when": self.when,
            "enabled": self.enabled,
            "timeout": self.timeout,
            "comment": self.comment,
        })
    }

    /// The fields of an existing entry that differ from this spec (empty: up to date).
    pub(crate) fn differences(&self, entry: &Value) -> Vec<&'static str> {
        let mut diffs = Vec::new();
        let str_field = |k: &str| entry.get(k).and_then(Value::as_str).unwrap_or_default();
        if str_field("type") != self.kind {
            diffs.push("type");
        }
        if str_field("command") != self.command {
            diffs.push("command");
        }
        if str_field("when") != self.when {
            diffs.push("when");
        }
        if entry.get("enabled").and_then(Value::as_bool) != Some(self.enabled) {
            diffs.push("enabled");
        }
        if entry.get("timeout").and_then(Value::as_u64) != Some(self.timeout) {
            diffs.push("timeout");
        }
        if str_field("comment") != self.comment {
            diffs.push("comment");
        }
        diffs
    }
}

/// Parses the first line of `systemctl --version` (`systemd 252 (252.39-1~deb12u2)`).
pub(crate) fn parse_systemd_version(output: &str) -> Option<u32> {
    let first = output.lines().next()?;
    let mut words = first.split_whitespace();
    (words.next()? == "systemd")
        .then(|| words.next()?.parse().ok())
        .flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layout() -> Layout {
        Layout::new(
            DatasetName::parse("pool0/.truenas-agent").unwrap(),
            "/mnt/pool0/.truenas-agent",
        )
    }

    #[test]
    fn template_is_the_hardened_notify_unit() {
        for key in [
            "Type=notify",
            "WatchdogSec=",
            "Restart=on-failure",
            "ProtectSystem=strict",
            "NoNewPrivileges=yes",
            "CapabilityBoundingSet=CAP_SYS_ADMIN\n",
            "DeviceAllow=/dev/zfs rw",
            "RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6",
            "UMask=0077",
        ] {
            assert!(UNIT_TEMPLATE.contains(key), "unit lacks {key:?}");
        }
        // The installer's drop-in must be able to replace ExecStart.
        assert_eq!(UNIT_TEMPLATE.matches("\nExecStart=").count(), 1);
    }

    #[test]
    fn dropin_points_at_the_pool() {
        let sys = SystemPaths::default();
        let text = dropin(&layout(), &sys, Some(252));
        assert!(text.contains("ExecStart=\nExecStart=/mnt/pool0/.truenas-agent/bin/truenas-agent --config /mnt/pool0/.truenas-agent/agent.toml --state-dir /mnt/pool0/.truenas-agent/state run\n"));
        assert!(text.contains("ReadWritePaths=/mnt/pool0/.truenas-agent/state\n"));
        assert!(
            !text.contains("RestartSteps"),
            "systemd 252 does not know it"
        );
        let newer = dropin(&layout(), &sys, Some(254));
        assert!(newer.contains("RestartSteps=5\nRestartMaxDelaySec=5min\n"));
        assert!(!dropin(&layout(), &sys, None).contains("RestartSteps"));
        let sysext = Layout::with_route(layout().dataset, layout().root, Route::Sysext);
        assert!(dropin(&sysext, &sys, None).contains(
            "ExecStart=/usr/bin/truenas-agent --config /mnt/pool0/.truenas-agent/agent.toml"
        ));
    }

    #[test]
    fn boot_command_is_short_and_exact() {
        let cmd = boot_command(&layout(), &SystemPaths::default());
        assert_eq!(
            cmd,
            "set -e; src='/mnt/pool0/.truenas-agent/systemd'; dst='/run/systemd/system'; \
             mkdir -p \"$dst/truenas-agent.service.d\"; \
             cp \"$src/truenas-agent.service\" \"$dst/truenas-agent.service\"; \
             cp \"$src/install.conf\" \"$dst/truenas-agent.service.d/install.conf\"; \
             '/bin/systemctl' daemon-reload; '/bin/systemctl' start --no-block truenas-agent.service"
        );
        // Even the longest dataset name keeps it under the middleware's string cap.
        let long = DatasetName::parse(&format!("p/{}", "a".repeat(188))).unwrap();
        let long_layout = Layout::new(long.clone(), format!("/mnt/{long}"));
        assert!(boot_command(&long_layout, &SystemPaths::default()).len() < MAX_STRING);
        assert!(init_comment(&Layout::with_route(long.clone(), "/x", Route::Sysext)).len() <= 255);
        let sysext = Layout::with_route(layout().dataset, layout().root, Route::Sysext);
        assert_eq!(
            boot_command(&sysext, &SystemPaths::default()),
            "set -e; src='/mnt/pool0/.truenas-agent/systemd'; dst='/run/systemd/system'; \
             mkdir -p \"$dst/truenas-agent.service.d\"; rm -f \"$dst/truenas-agent.service\"; \
             mkdir -p '/run/extensions'; \
             cp '/mnt/pool0/.truenas-agent/truenas-agent.raw' '/run/extensions/truenas-agent.raw'; \
             '/usr/bin/systemd-sysext' refresh; \
             cp \"$src/install.conf\" \"$dst/truenas-agent.service.d/install.conf\"; \
             '/bin/systemctl' daemon-reload; '/bin/systemctl' start --no-block truenas-agent.service"
        );
    }

    #[test]
    fn marker_round_trip() {
        let ds = DatasetName::parse("tank/agent").unwrap();
        let comment = init_comment(&Layout::new(ds.clone(), "/mnt/tank/agent"));
        assert!(is_ours(&comment));
        assert_eq!(dataset_from_comment(&comment), Some(ds.clone()));
        assert_eq!(route_from_comment(&comment), Route::Binary);
        let sysext = init_comment(&Layout::with_route(ds.clone(), "/x", Route::Sysext));
        assert_eq!(dataset_from_comment(&sysext), Some(ds));
        assert_eq!(route_from_comment(&sysext), Route::Sysext);
        assert!(!is_ours("admin's own script"));
        assert_eq!(
            dataset_from_comment("(dataset=bad name) [truenas-agent:boot]"),
            None
        );
    }

    #[test]
    fn spec_differences() {
        let spec = InitScriptSpec::for_layout(&layout(), &SystemPaths::default());
        assert!(spec.differences(&spec.to_json()).is_empty());
        let mut entry = spec.to_json();
        entry["enabled"] = json!(false);
        entry["command"] = json!("true");
        entry["id"] = json!(3);
        assert_eq!(spec.differences(&entry), vec!["command", "enabled"]);
    }

    #[test]
    fn systemd_versions() {
        assert_eq!(
            parse_systemd_version("systemd 252 (252.39-1~deb12u2)\n+PAM +AUDIT"),
            Some(252)
        );
        assert_eq!(
            parse_systemd_version("systemd 254 (254.26-1~bpo12+1)"),
            Some(254)
        );
        assert_eq!(parse_systemd_version("garbage"), None);
        assert_eq!(parse_systemd_version(""), None);
    }
}
