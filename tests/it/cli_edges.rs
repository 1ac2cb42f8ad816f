//! The command line's edges (issue 13.16, 13.17): a bad flag is an error naming the flag
//! and the rule — never a silent fall-back — and stderr carries no colour escapes when
//! it is not a terminal.

use std::io::BufRead as _;
use std::path::Path;
use std::process::{Command, Output, Stdio};

/// The agent with no config, state dir or log settings inherited from the environment.
fn agent(args: &[&str]) -> Output {
    run(crate::support::AGENT, args)
}

/// `truenas-central`, with the same environment as [`agent`].
fn central(args: &[&str]) -> Output {
    run(crate::support::CENTRAL, args)
}

fn run(bin: &str, args: &[&str]) -> Output {
    Command::new(crate::support::bin(bin))
        .args(args)
        .env_remove("TRUENAS_AGENT_CONFIG")
        .env_remove("TRUENAS_AGENT_STATE_DIR")
        .env_remove("TRUENAS_AGENT_MIDDLEWARE")
        .env_remove("TRUENAS_AGENT_LOG")
        .env_remove("RUST_LOG")
        .env_remove("JOURNAL_STREAM")
        .env_remove("NO_COLOR")
        .output()
        .unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// `status` with a bad `--middleware` or `--tls-pin` used to fall back to the default
/// socket and blame the config file; now it refuses, naming the flag and the rule.
#[test]
fn a_bad_middleware_or_pin_flag_is_refused_naming_the_flag() {
    let tmp = tempfile::tempdir().unwrap();
    let state = tmp.path().join("state");
    for (args, says) in [
        (
            vec!["--middleware", "bogus"],
            "--middleware: must be a URL such as unix://",
        ),
        (
            vec!["--middleware", "wss://127.0.0.1:1", "--tls-pin", "zz"],
            "--tls-pin: must be the SHA-256 of the certificate",
        ),
    ] {
        let mut all = args.clone();
        all.extend(["--state-dir", s(&state), "status", "--timeout", "1"]);
        let out = agent(&all);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(2), "{all:?}: {err}");
        assert!(err.contains(says), "{all:?}: {err}");
        assert!(!err.contains("config file"), "{all:?}: {err}");
        assert!(
            out.stdout.is_empty(),
            "{all:?}: no status screen from a fall-back: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        // `plan` says the same.
        let mut plan = args.clone();
        plan.extend(["plan", "-f", "/nonexistent/doc.json", "--allow-unsigned"]);
        let err = stderr(&agent(&plan));
        assert!(err.contains(says), "{plan:?}: {err}");
    }
}

/// docs/configuration.md: flags follow the file's rules, so a relative `--state-dir` is
/// refused instead of landing wherever the command happens to run.
#[test]
fn a_relative_state_dir_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let out = Command::new(crate::support::bin(crate::support::AGENT))
        .current_dir(tmp.path())
        .args(["--state-dir", "relative-state", "status", "--timeout", "1"])
        .env_remove("TRUENAS_AGENT_CONFIG")
        .env_remove("TRUENAS_AGENT_STATE_DIR")
        .output()
        .unwrap();
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("--state-dir: must be an absolute path (got `relative-state`)"),
        "{err}"
    );
    assert!(!tmp.path().join("relative-state").exists());
}

/// `--log notalevel` and `status --timeout 0` were accepted; they are refused with the rule.
#[test]
fn log_filter_and_timeout_are_checked() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let out = central(&["--log", "notalevel", "devices", "--dir", s(&data)]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("'--log <LOG>'"), "{err}");
    assert!(err.contains("`notalevel` is not a log level"), "{err}");
    assert!(
        err.contains("trace, debug, info, warn, error, off"),
        "{err}"
    );
    let ok = central(&[
        "--log",
        "warn,truenas_agent=debug",
        "devices",
        "--dir",
        s(&data),
    ]);
    assert!(ok.status.success(), "{}", stderr(&ok));

    let out = agent(&[
        "--state-dir",
        s(&tmp.path().join("state")),
        "status",
        "--timeout",
        "0",
    ]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("'--timeout <SECONDS>'"), "{err}");
    assert!(err.contains("0 is not in 1..=300"), "{err}");
    assert!(out.stdout.is_empty());
}

/// `plan -f /missing` said "cannot read the desired-state document" without the path.
#[test]
fn a_missing_document_is_named() {
    let tmp = tempfile::tempdir().unwrap();
    let missing = tmp.path().join("no-such-doc.json");
    let out = agent(&[
        "--state-dir",
        s(&tmp.path().join("state")),
        "plan",
        "-f",
        s(&missing),
        "--allow-unsigned",
    ]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains(&format!("cannot read {}", missing.display())),
        "{err}"
    );
}

/// Kills the server it holds on drop (a process this test started).
struct Child(std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Serves until its first stdout line, then SIGTERM; returns what it wrote to stderr.
fn serve_and_stop(listen: &str) -> String {
    let tmp = tempfile::tempdir().unwrap();
    let keys = tmp.path().join("keys");
    assert!(central(&["keygen", "--out", s(&keys)]).status.success());
    let mut child = Child(
        Command::new(crate::support::bin(crate::support::CENTRAL))
            .args(["serve", "--dir"])
            .arg(tmp.path().join("data"))
            .args(["--listen", listen, "--key"])
            .arg(keys.join("signing.key"))
            .env_remove("RUST_LOG")
            .env_remove("JOURNAL_STREAM")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let mut first = String::new();
    std::io::BufReader::new(child.0.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    assert!(
        first.starts_with("central server listening on http://"),
        "{first:?}"
    );
    let pid = nix::unistd::Pid::from_raw(i32::try_from(child.0.id()).unwrap());
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
    let mut err = String::new();
    std::io::Read::read_to_string(&mut child.0.stderr.take().unwrap(), &mut err).unwrap();
    assert!(child.0.wait().unwrap().success(), "{err}");
    err
}

/// `truenas-central serve --listen 0.0.0.0` served plain HTTP to the network without a word; it
/// now warns and says what to do. Loopback (the documented set-up) stays quiet.
#[test]
fn serving_beyond_loopback_warns_loudly() {
    let err = serve_and_stop("0.0.0.0:0");
    assert!(
        err.contains("WARNING: central serve speaks plain HTTP"),
        "{err}"
    );
    assert!(err.contains("Listen on 127.0.0.1"), "{err}");
    assert!(err.contains("TLS proxy"), "{err}");
    let err = serve_and_stop("127.0.0.1:0");
    assert!(!err.contains("WARNING"), "{err}");
}

/// Log lines on a stderr that is not a terminal (a pipe here, a file or the journal in
/// real life) carry no ANSI escapes.
#[test]
fn no_colour_escapes_on_a_pipe() {
    let err = serve_and_stop("127.0.0.1:0");
    assert!(
        err.contains("shutting down"),
        "the server logs at info on SIGTERM: {err}"
    );
    assert!(!err.contains('\u{1b}'), "ANSI escape on a pipe: {err:?}");
}
