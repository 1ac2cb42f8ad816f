//! The `truenas-central` binary's command line: the subcommands of the former
//! `truenas-agent central …`, with the same flags (docs/central.md, docs/provisioning.md;
//! the provisioning command line is a contract). End-to-end runs are in `tests/it`.

#![allow(
    clippy::unwrap_used,
    reason = "test helpers: a failure is a test failure"
)]

use std::process::{Command, Output};

fn central(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_truenas-central"))
        .args(args)
        .env_remove("RUST_LOG")
        .output()
        .unwrap()
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn help_lists_every_subcommand() {
    let out = central(&["--help"]);
    assert!(out.status.success());
    let help = stdout(&out);
    assert!(help.contains("Usage: truenas-central"), "{help}");
    for sub in [
        "keygen",
        "serve",
        "register",
        "publish",
        "devices",
        "disable",
        "enable",
        "provision",
        "escrow",
        "rotate-key",
    ] {
        assert!(
            help.lines().any(|l| l.trim_start().starts_with(sub)),
            "{sub} missing from `truenas-central --help`:\n{help}"
        );
    }
    // None of the agent's options: central is not the agent.
    for flag in ["--middleware", "--state-dir", "--api-key-file", "--tls-pin"] {
        assert!(!help.contains(flag), "{flag} in `truenas-central --help`");
    }
}

/// The flags outside tests and the runbook call `provision` with (docs/provisioning.md).
#[test]
fn provision_keeps_its_command_line() {
    let out = central(&["provision", "--help"]);
    assert!(out.status.success());
    let help = stdout(&out);
    for flag in [
        "--dir",
        "--device",
        "--org-uuid",
        "--location-uuid",
        "--location-name",
        "--root-pool",
        "--pools",
        "--uplink-mbps",
        "--business-hours",
        "--b2-admin-key-file",
        "--b2-api",
        "--confirm-compliance-lock",
        "--dry-run",
        "--json",
        "--rotate",
        "--token-out",
    ] {
        assert!(help.contains(flag), "{flag} missing:\n{help}");
    }
}

#[test]
fn version_names_the_build() {
    let out = central(&["--version"]);
    assert!(out.status.success());
    let line = stdout(&out);
    assert!(line.starts_with("truenas-central 0."), "{line}");
}
