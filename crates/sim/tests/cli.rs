//! The `truenas-sim` binary's command line: its flags are its own. (Under
//! `truenas-agent sim` it used to show and take the agent's global flags; issue 13.17.)

#![allow(
    clippy::unwrap_used,
    reason = "test helpers: a failure is a test failure"
)]

use std::process::{Command, Output};

fn sim(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_truenas-sim"))
        .args(args)
        .env_remove("RUST_LOG")
        .output()
        .unwrap()
}

/// The agent's options: none of them is an option of the simulator.
const AGENT_ONLY: [&str; 7] = [
    "--middleware",
    "--api-key-file",
    "--api-user",
    "--tls-ca-file",
    "--tls-pin",
    "--state-dir",
    "--config",
];

#[test]
fn sim_help_lists_only_the_flags_that_apply_to_it() {
    let out = sim(&["--help"]);
    assert!(out.status.success());
    let help = String::from_utf8(out.stdout).unwrap();
    assert!(help.contains("Usage: truenas-sim"), "{help}");
    for flag in AGENT_ONLY {
        assert!(
            !help.contains(flag),
            "{flag} in `truenas-sim --help`:\n{help}"
        );
    }
    for flag in [
        "--version",
        "--socket",
        "--listen",
        "--https",
        "--http",
        "--https-redirect",
        "--vendored",
        "--scenario",
        "--save",
        "--job-duration",
        "--insecure-tcp",
        "--fail-sync",
        "--log",
    ] {
        assert!(
            help.contains(flag),
            "{flag} missing from `truenas-sim --help`:\n{help}"
        );
    }
    // `--version` is the TrueNAS version to simulate, not this binary's version.
    assert!(help.contains("--version <VERSION>"), "{help}");
}

/// Given anyway, an agent-only flag is refused, named, before anything starts.
#[test]
fn an_agent_flag_is_refused_before_anything_starts() {
    let dir = std::env::temp_dir().join(format!("truenas-sim-cli-{}", std::process::id()));
    let socket = dir.join("mw.sock");
    let out = sim(&[
        "--version",
        "25.10",
        "--socket",
        socket.to_str().unwrap(),
        "--api-user",
        "agent",
    ]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("'--api-user'"), "{stderr}");
    assert!(out.stdout.is_empty(), "no ready line");
    assert!(!socket.exists());
}

/// Without a version or a scenario there is nothing to simulate: a clear error.
#[test]
fn a_version_or_a_scenario_is_required() {
    let out = sim(&["--socket", "/nonexistent-dir/mw.sock"]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("give --version"), "{stderr}");
}
