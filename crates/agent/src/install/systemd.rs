//! systemd, driven through `systemctl` (no D-Bus: rust/REFERENCE.md §5 keeps zbus out of v1).
//!
//! Owns: exec'ing `systemctl` and `sh -c <boot command>` without an intermediate shell
//! of ours, each with a timeout, and parsing `systemctl show` into [`UnitStatus`].
//! Does not: decide what to start or stop (that is `install`), or read unit files.
//! Invariants: every child gets a timeout and is killed when it expires; stdout/stderr
//!   are captured, never inherited; nothing secret is ever on a command line here.
//! Limitations: `systemctl` must be on the host (it is on TrueNAS and in the test VM);
//!   unit tests use a fake `systemctl` script.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::process::Command;

use super::layout::UNIT_NAME;
use crate::fault::Fault;

/// Timeout of quick `systemctl` calls (`show`, `daemon-reload`, `stop`).
pub(crate) const QUICK: Duration = Duration::from_secs(60);
/// Timeout of `truenas-agent --version`.
const VERSION_TIMEOUT: Duration = Duration::from_secs(20);
/// Timeout of a blocking (re)start: the unit's `TimeoutStartSec=` (120 s) plus slack.
pub(crate) const START: Duration = Duration::from_secs(150);

/// A command that could not be run or did not succeed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CommandError {
    #[error("cannot run `{command}`: {reason}")]
    Spawn { command: String, reason: String },
    #[error("`{command}` did not finish within {after:?}")]
    Timeout { command: String, after: Duration },
    #[error("`{command}` failed ({status}): {stderr}")]
    Failed {
        command: String,
        status: String,
        stderr: String,
    },
}

impl CommandError {
    /// Who has to act.
    pub fn fault(&self) -> Fault {
        match self {
            CommandError::Spawn { .. } | CommandError::Failed { .. } => Fault::Nas,
            CommandError::Timeout { .. } => Fault::Transient,
        }
    }
}

/// What `systemctl show` says about the unit.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnitStatus {
    /// `loaded`, `not-found`, `bad-setting`, `error`, `masked`.
    pub load_state: String,
    /// `active`, `activating`, `inactive`, `failed`, ...
    pub active_state: String,
    /// `running`, `dead`, `auto-restart`, ...
    pub sub_state: String,
    /// The unit file systemd loaded (empty when not found).
    pub fragment_path: String,
    /// Drop-ins in effect.
    pub drop_in_paths: Vec<String>,
    /// Main PID (0 when not running).
    pub main_pid: u32,
    /// How often systemd restarted it since it was loaded.
    pub restarts: u32,
    /// When it last entered `active` (systemd's text, empty if never).
    pub active_since: String,
    /// The last result (`success`, `exit-code`, `watchdog`, ...).
    pub result: String,
}

/// Properties asked from `systemctl show`.
const PROPERTIES: &str = "LoadState,ActiveState,SubState,FragmentPath,DropInPaths,MainPID,NRestarts,ActiveEnterTimestamp,Result";

impl UnitStatus {
    /// Parses `systemctl show -p ...` output (`Key=value` lines; unknown keys ignored).
    pub fn parse(text: &str) -> Self {
        let map: BTreeMap<&str, &str> = text
            .lines()
            .filter_map(|line| line.split_once('='))
            .collect();
        let get = |k: &str| map.get(k).map(|v| (*v).to_owned()).unwrap_or_default();
        let num = |k: &str| map.get(k).and_then(|v| v.parse().ok()).unwrap_or(0);
        Self {
            load_state: get("LoadState"),
            active_state: get("ActiveState"),
            sub_state: get("SubState"),
            fragment_path: get("FragmentPath"),
            drop_in_paths: get("DropInPaths")
                .split_whitespace()
                .map(str::to_owned)
                .collect(),
            main_pid: num("MainPID"),
            restarts: num("NRestarts"),
            active_since: get("ActiveEnterTimestamp"),
            result: get("Result"),
        }
    }

    /// `active (running)`-style text.
    pub fn describe(&self) -> String {
        format!("{} ({})", self.active_state, self.sub_state)
    }

    /// Running and past start-up (READY=1 received for `Type=notify`).
    pub fn is_active(&self) -> bool {
        self.active_state == "active"
    }
}

/// Runs `systemctl` and the boot command.
#[derive(Debug, Clone)]
pub struct Systemd {
    systemctl: PathBuf,
    sh: PathBuf,
    sysext: PathBuf,
}

impl Systemd {
    /// Uses the given `systemctl` and `sh` binaries (`systemd-sysext` from /usr/bin).
    pub fn new(systemctl: impl Into<PathBuf>, sh: impl Into<PathBuf>) -> Self {
        Self {
            systemctl: systemctl.into(),
            sh: sh.into(),
            sysext: PathBuf::from("/usr/bin/systemd-sysext"),
        }
    }

    /// Uses this `systemd-sysext` binary.
    #[must_use]
    pub fn with_sysext(mut self, sysext: impl Into<PathBuf>) -> Self {
        self.sysext = sysext.into();
        self
    }

    /// `systemd-sysext refresh`: re-merges every image in the extension dirs.
    pub async fn sysext_refresh(&self) -> Result<(), CommandError> {
        run(&self.sysext, &["refresh"], QUICK).await.map(drop)
    }

    /// `systemctl --version` → the major version (252 on Debian bookworm).
    pub async fn version(&self) -> Result<Option<u32>, CommandError> {
        let out = self.systemctl(&["--version"], QUICK).await?;
        Ok(super::units::parse_systemd_version(&out))
    }

    /// The unit's state.
    pub async fn show(&self) -> Result<UnitStatus, CommandError> {
        let out = self
            .systemctl(&["show", "--property", PROPERTIES, UNIT_NAME], QUICK)
            .await?;
        Ok(UnitStatus::parse(&out))
    }

    /// `systemctl daemon-reload`.
    pub async fn daemon_reload(&self) -> Result<(), CommandError> {
        self.systemctl(&["daemon-reload"], QUICK).await.map(drop)
    }

    /// `systemctl <verb> truenas-agent.service`, waiting for the job (verb: start,
    /// restart, stop, reset-failed).
    pub async fn unit(&self, verb: &str) -> Result<(), CommandError> {
        let timeout = if verb == "stop" || verb == "reset-failed" {
            QUICK
        } else {
            START
        };
        self.systemctl(&[verb, UNIT_NAME], timeout).await.map(drop)
    }

    /// `<binary> --version`: proves the installed copy is intact and may be executed
    /// from its dataset (exec=on); returns the first line.
    pub async fn binary_version(&self, binary: &Path) -> Result<String, CommandError> {
        let out = run(binary, &["--version"], VERSION_TIMEOUT).await?;
        Ok(out.lines().next().unwrap_or_default().trim().to_owned())
    }

    /// Runs a boot command exactly as the middleware runs init commands (`sh -c`).
    pub async fn run_boot_command(&self, command: &str) -> Result<(), CommandError> {
        run(&self.sh, &["-c", command], QUICK).await.map(drop)
    }

    async fn systemctl(&self, args: &[&str], timeout: Duration) -> Result<String, CommandError> {
        run(&self.systemctl, args, timeout).await
    }
}

/// Runs `program args...` (no shell), returns stdout when it exits 0.
async fn run(program: &Path, args: &[&str], timeout: Duration) -> Result<String, CommandError> {
    let command = render(program, args);
    let child = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .output();
    let output = match tokio::time::timeout(timeout, child).await {
        Err(_) => {
            return Err(CommandError::Timeout {
                command,
                after: timeout,
            });
        }
        Ok(Err(e)) => {
            return Err(CommandError::Spawn {
                command,
                reason: e.to_string(),
            });
        }
        Ok(Ok(output)) => output,
    };
    if output.status.success() {
        return Ok(String::from_utf8_lossy(&output.stdout).into_owned());
    }
    Err(CommandError::Failed {
        command,
        status: output.status.to_string(),
        stderr: String::from_utf8_lossy(&output.stderr).trim().to_owned(),
    })
}

/// The command as a human would type it (long `sh -c` scripts shortened).
fn render(program: &Path, args: &[&str]) -> String {
    let mut text = program.display().to_string();
    for arg in args {
        text.push(' ');
        if arg.len() > 60 {
            text.push_str("'<boot command>'");
        } else {
            text.push_str(arg);
        }
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_show_output() {
        let text = "LoadState=loaded\nActiveState=active\nSubState=running\n\
                    FragmentPath=/run/systemd/system/truenas-agent.service\n\
                    DropInPaths=/run/systemd/system/truenas-agent.service.d/install.conf\n\
                    MainPID=1234\nNRestarts=2\nActiveEnterTimestamp=Mon 2026-11-23 10:00:00 UTC\n\
                    Result=success\n";
        let status = UnitStatus::parse(text);
        assert!(status.is_active());
        assert_eq!(status.main_pid, 1234);
        assert_eq!(status.restarts, 2);
        assert_eq!(
            status.drop_in_paths,
            vec!["/run/systemd/system/truenas-agent.service.d/install.conf"]
        );
        assert_eq!(status.describe(), "active (running)");
        let missing = UnitStatus::parse(
            "LoadState=not-found\nActiveState=inactive\nSubState=dead\nFragmentPath=\nMainPID=0\n",
        );
        assert!(!missing.is_active());
        assert!(missing.fragment_path.is_empty());
    }

    #[tokio::test]
    async fn runs_commands_with_errors_that_say_what() {
        let sd = Systemd::new("/nonexistent/systemctl", "/bin/sh");
        let err = sd.daemon_reload().await.unwrap_err();
        assert!(matches!(err, CommandError::Spawn { .. }), "{err}");
        assert!(
            err.to_string()
                .contains("/nonexistent/systemctl daemon-reload")
        );
        sd.run_boot_command("true").await.unwrap();
        let err = sd
            .run_boot_command("echo broken >&2; exit 3")
            .await
            .unwrap_err();
        assert!(err.to_string().contains("broken"), "{err}");
        assert_eq!(err.fault(), Fault::Nas);
    }

    #[tokio::test]
    async fn times_out() {
        let err = run(
            Path::new("/bin/sh"),
            &["-c", "sleep 5"],
            Duration::from_millis(100),
        )
        .await
        .unwrap_err();
        assert!(matches!(err, CommandError::Timeout { .. }), "{err}");
        assert_eq!(err.fault(), Fault::Transient);
    }
}
