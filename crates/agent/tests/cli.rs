//! The appliance binary's command line: exactly the agent's commands — the simulator,
//! the reference central server and the demo are other binaries of the workspace
//! (`truenas-sim`, `truenas-central`, `truenas-dev`), never inside what goes onto a NAS.
//! End-to-end runs of each command are in `tests/it`.

#![allow(
    clippy::unwrap_used,
    reason = "test helpers: a failure is a test failure"
)]

use std::process::{Command, Output};

fn agent(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_truenas-agent"))
        .args(args)
        .env_remove("TRUENAS_AGENT_CONFIG")
        .env_remove("TRUENAS_AGENT_STATE_DIR")
        .env_remove("TRUENAS_AGENT_MIDDLEWARE")
        .env_remove("TRUENAS_AGENT_LOG")
        .env_remove("RUST_LOG")
        .output()
        .unwrap()
}

const COMMANDS: [&str; 8] = [
    "run",
    "plan",
    "apply",
    "status",
    "verify",
    "identity",
    "install",
    "uninstall",
];

/// The subcommands `truenas-agent --help` lists.
fn subcommands(help: &str) -> Vec<String> {
    help.lines()
        .skip_while(|l| !l.starts_with("Commands:"))
        .skip(1)
        .take_while(|l| l.starts_with("  "))
        .filter_map(|l| l.split_whitespace().next().map(str::to_owned))
        .collect()
}

#[test]
fn the_appliance_binary_has_only_the_agents_commands() {
    let out = agent(&["--help"]);
    assert!(out.status.success());
    let help = String::from_utf8(out.stdout).unwrap();
    let mut expected: Vec<String> = COMMANDS.iter().map(|c| (*c).to_owned()).collect();
    expected.push("help".to_owned());
    assert_eq!(subcommands(&help), expected, "{help}");
    for gone in ["sim", "central", "demo"] {
        let out = agent(&[gone, "--help"]);
        assert_eq!(
            out.status.code(),
            Some(2),
            "`truenas-agent {gone}` still exists"
        );
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("unrecognized subcommand"), "{err}");
    }
}

/// The agent's commands take the global options (config, middleware, TLS, state dir).
#[test]
fn every_command_takes_the_global_options() {
    for command in COMMANDS {
        let out = agent(&[command, "--help"]);
        assert!(out.status.success(), "{command} --help");
        let help = String::from_utf8(out.stdout).unwrap();
        for flag in [
            "--middleware",
            "--api-key-file",
            "--api-user",
            "--tls-ca-file",
            "--tls-pin",
            "--state-dir",
            "--config",
            "--log",
        ] {
            assert!(
                help.contains(flag),
                "{flag} missing from `{command} --help`"
            );
        }
    }
}

#[test]
fn version_names_the_build() {
    let out = agent(&["--version"]);
    assert!(out.status.success());
    let line = String::from_utf8(out.stdout).unwrap();
    // `truenas-agent 0.1.0 (<git rev>)`: build.rs stamps the revision.
    assert!(line.starts_with("truenas-agent 0."), "{line}");
    assert!(line.trim_end().ends_with(')'), "{line}");
}
