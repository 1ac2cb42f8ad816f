//! The `zfs`/`zpool` command backend.
//!
//! Owns: locating the programs (an absolute path, or a bare name searched in a fixed
//! [`SAFE_PATH`] — never the caller's `PATH`), running them without a shell, with an empty
//! environment apart from `PATH` and `LC_ALL=C`, stdin closed, output capped, a deadline
//! after which the whole process group is killed, and mapping exit status + stderr to
//! [`ZfsError`]. Also reads `/etc/hostid` for [`HostId`].
//! Does not: validate names (the argument types already did) or parse answers (`parse`).
//! Invariants: argv only; each program runs in its own process group so a timeout kills
//! everything it started; error texts quote at most a short, sanitised stderr excerpt.
//! Limitations: a process stuck in the kernel (a suspended pool) cannot be killed; the call
//! still returns `Timeout` after the deadline and tokio reaps the process when it ends.

use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt};

use super::error::{ZfsError, ZfsOp};
use super::host_id::{HostId, default_hostid_file};
use super::names::{DatasetName, PoolName, PropValue, UserPropKey, excerpt};
use super::parse::{self, Failure, PropertyReading};
use super::props::{Backend, UserProps};

/// The only directories searched for a bare program name. TrueNAS SCALE installs
/// `zfs`/`zpool` in `/usr/sbin` (Debian: `/sbin` → `/usr/sbin`).
pub const SAFE_PATH: &str = "/usr/sbin:/sbin:/usr/bin:/bin";

/// Default deadline of one `zfs`/`zpool` run. A property read takes milliseconds; a pool
/// under heavy resilver can take seconds.
pub(crate) const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// How long to wait for a killed process to go away before giving up on it.
const REAP_WAIT: Duration = Duration::from_secs(2);

/// Output kept from stdout / stderr; the rest is drained and dropped.
const STDOUT_CAP: usize = 1 << 20;
const STDERR_CAP: usize = 64 << 10;

/// Where a program is: an absolute path, or a bare name looked up in [`SAFE_PATH`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Program {
    Path(PathBuf),
    Name(String),
}

impl Program {
    /// Accepts an absolute path or a bare name (no `/`). Relative paths are refused: they
    /// would depend on the working directory.
    pub fn parse(spec: &str) -> Result<Self, super::names::NameError> {
        let err = |rule: &str| super::names::NameError {
            what: "program",
            shown: excerpt(spec, 64),
            rule: rule.to_owned(),
        };
        if spec.is_empty() || spec.chars().any(char::is_control) {
            return Err(err("must be a non-empty path without control characters"));
        }
        if spec.starts_with('/') {
            Ok(Program::Path(PathBuf::from(spec)))
        } else if spec.contains('/') {
            Err(err("must be an absolute path or a bare command name"))
        } else {
            Ok(Program::Name(spec.to_owned()))
        }
    }

    /// The executable to run.
    fn resolve(&self) -> Result<PathBuf, ZfsError> {
        match self {
            Program::Path(path) => {
                if is_executable(path) {
                    Ok(path.clone())
                } else {
                    Err(ZfsError::NotInstalled {
                        program: path.display().to_string(),
                        searched: "that path: no executable file there".to_owned(),
                    })
                }
            }
            Program::Name(name) => SAFE_PATH
                .split(':')
                .map(|dir| Path::new(dir).join(name))
                .find(|candidate| is_executable(candidate))
                .ok_or_else(|| ZfsError::NotInstalled {
                    program: name.clone(),
                    searched: SAFE_PATH.to_owned(),
                }),
        }
    }
}

impl std::fmt::Display for Program {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Program::Path(p) => write!(f, "{}", p.display()),
            Program::Name(n) => f.write_str(n),
        }
    }
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// Settings of the command backend.
#[derive(Debug, Clone)]
pub struct CommandConfig {
    pub zfs: Program,
    pub zpool: Program,
    /// The host id file (`/etc/hostid`).
    pub hostid_file: PathBuf,
    /// Deadline of each run.
    pub timeout: Duration,
}

impl Default for CommandConfig {
    fn default() -> Self {
        Self {
            zfs: Program::Name("zfs".to_owned()),
            zpool: Program::Name("zpool".to_owned()),
            hostid_file: default_hostid_file(),
            timeout: DEFAULT_TIMEOUT,
        }
    }
}

/// User properties through the `zfs`/`zpool` commands.
#[derive(Debug, Clone)]
pub struct ZfsCommand {
    config: CommandConfig,
}

/// What a finished run left behind.
struct Finished {
    status: ExitStatus,
    stdout: Vec<u8>,
    stderr: Vec<u8>,
}

impl ZfsCommand {
    /// A backend with these settings.
    pub fn new(config: CommandConfig) -> Self {
        Self { config }
    }

    /// The settings.
    pub fn config(&self) -> &CommandConfig {
        &self.config
    }

    /// Runs `program args…` and returns its stdout, or the error its exit status and
    /// stderr stand for. `resource` names what the run is about, for error texts.
    async fn run(
        &self,
        op: ZfsOp,
        program: &Program,
        args: &[&str],
        resource: &str,
    ) -> Result<Vec<u8>, ZfsError> {
        let finished = self.exec(op, program, args, resource).await?;
        if finished.status.success() {
            return Ok(finished.stdout);
        }
        let stderr = String::from_utf8_lossy(&finished.stderr);
        let message = excerpt(stderr.trim_end(), parse::EXCERPT_LEN);
        let resource = resource.to_owned();
        Err(match parse::classify_failure(&stderr) {
            Failure::PermissionDenied => ZfsError::PermissionDenied {
                op,
                resource,
                message,
            },
            Failure::NoSuchDataset => ZfsError::NoSuchDataset { op, resource },
            Failure::NotUsable => ZfsError::NotUsable { op, message },
            Failure::Other => ZfsError::Failed {
                op,
                resource,
                status: describe_status(finished.status),
                message,
            },
        })
    }

    async fn exec(
        &self,
        op: ZfsOp,
        program: &Program,
        args: &[&str],
        resource: &str,
    ) -> Result<Finished, ZfsError> {
        let path = program.resolve()?;
        let mut child = spawn(&path, args)?;
        tracing::debug!(program = %path.display(), ?args, "exec");
        let pid = child.id();
        let stdout = child.stdout.take();
        let stderr = child.stderr.take();
        let work = async {
            let (stdout, stderr) = tokio::join!(
                read_capped(stdout, STDOUT_CAP),
                read_capped(stderr, STDERR_CAP)
            );
            let status = child.wait().await;
            (status, stdout, stderr)
        };
        let outcome = tokio::time::timeout(self.config.timeout, work).await;
        match outcome {
            Ok((Ok(status), stdout, stderr)) => Ok(Finished {
                status,
                stdout,
                stderr,
            }),
            Ok((Err(source), _, _)) => Err(ZfsError::Spawn {
                program: path.display().to_string(),
                source,
            }),
            Err(_elapsed) => {
                kill_group(pid);
                // Best effort: a process in uninterruptible sleep cannot die yet.
                let _ = tokio::time::timeout(REAP_WAIT, child.wait()).await;
                Err(ZfsError::Timeout {
                    op,
                    resource: resource.to_owned(),
                    after: self.config.timeout,
                })
            }
        }
    }
}

/// Starts `path args…`: no shell, empty environment but `PATH` and `LC_ALL`, stdin closed,
/// its own process group, killed if dropped.
fn spawn(path: &Path, args: &[&str]) -> Result<tokio::process::Child, ZfsError> {
    tokio::process::Command::new(path)
        .args(args)
        .env_clear()
        .env("PATH", SAFE_PATH)
        // English messages: `parse::classify_failure` reads them.
        .env("LC_ALL", "C")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true)
        .spawn()
        .map_err(|source| match source.kind() {
            std::io::ErrorKind::NotFound => ZfsError::NotInstalled {
                program: path.display().to_string(),
                searched: "that path: it vanished".to_owned(),
            },
            _ => ZfsError::Spawn {
                program: path.display().to_string(),
                source,
            },
        })
}

/// Reads a pipe to its end, keeping at most `cap` bytes (draining the rest so the child
/// never blocks on a full pipe). A read error ends the read; the exit status tells the rest.
async fn read_capped<R: AsyncRead + Unpin>(pipe: Option<R>, cap: usize) -> Vec<u8> {
    let mut kept = Vec::new();
    let Some(mut pipe) = pipe else {
        return kept;
    };
    // On the heap: a stack buffer would make every future that awaits a run ~16 KiB.
    let mut chunk = vec![0u8; 8192];
    loop {
        match pipe.read(&mut chunk).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                let room = cap.saturating_sub(kept.len());
                kept.extend_from_slice(&chunk[..n.min(room)]);
            }
        }
    }
    kept
}

/// Sends SIGKILL to the child's process group (it leads its own group: `process_group(0)`).
fn kill_group(pid: Option<u32>) {
    let Some(pid) = pid.and_then(|p| i32::try_from(p).ok()) else {
        return;
    };
    let _ = nix::sys::signal::killpg(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGKILL,
    );
}

fn describe_status(status: ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exit code {code}"),
        (None, Some(signal)) => format!("killed by signal {signal}"),
        (None, None) => "unknown status".to_owned(),
    }
}

impl UserProps for ZfsCommand {
    fn backend(&self) -> Backend {
        Backend::ZfsCommand
    }

    async fn list_pools(&self) -> Result<Vec<PoolName>, ZfsError> {
        let out = self
            .run(
                ZfsOp::ListPools,
                &self.config.zpool,
                &["list", "-H", "-o", "name"],
                "the imported pools",
            )
            .await?;
        parse::parse_pool_list(&out).map_err(|e| ZfsError::UnexpectedOutput {
            op: ZfsOp::ListPools,
            resource: "the imported pools".to_owned(),
            detail: e.detail,
        })
    }

    async fn get(
        &self,
        dataset: &DatasetName,
        key: &UserPropKey,
    ) -> Result<PropertyReading, ZfsError> {
        let resource = format!("{dataset} ({key})");
        let out = self
            .run(
                ZfsOp::Get,
                &self.config.zfs,
                &[
                    "get",
                    "-H",
                    "-p",
                    "-o",
                    "name,property,source,value",
                    key.as_str(),
                    dataset.as_str(),
                ],
                &resource,
            )
            .await?;
        parse::parse_get(&out, dataset, key).map_err(|e| ZfsError::UnexpectedOutput {
            op: ZfsOp::Get,
            resource,
            detail: e.detail,
        })
    }

    async fn set(
        &self,
        dataset: &DatasetName,
        props: &[(UserPropKey, PropValue)],
    ) -> Result<(), ZfsError> {
        if props.is_empty() {
            return Ok(());
        }
        let assignments: Vec<String> = props.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let mut args = vec!["set"];
        args.extend(assignments.iter().map(String::as_str));
        args.push(dataset.as_str());
        let keys: Vec<&str> = props.iter().map(|(k, _)| k.as_str()).collect();
        let resource = format!("{dataset} ({})", keys.join(", "));
        self.run(ZfsOp::Set, &self.config.zfs, &args, &resource)
            .await
            .map(drop)
    }

    async fn inherit(&self, dataset: &DatasetName, key: &UserPropKey) -> Result<(), ZfsError> {
        self.run(
            ZfsOp::Inherit,
            &self.config.zfs,
            &["inherit", key.as_str(), dataset.as_str()],
            &format!("{dataset} ({key})"),
        )
        .await
        .map(drop)
    }

    async fn host_id(&self) -> Result<Option<HostId>, ZfsError> {
        let bytes =
            crate::fs::read_optional(&self.config.hostid_file).map_err(ZfsError::HostIdFile)?;
        Ok(bytes.and_then(|b| HostId::from_hostid_bytes(&b)))
    }
}

#[cfg(test)]
mod tests;
