//! The README's first command: `cargo run -p truenas-dev -- demo` converges a simulated box through a
//! local central server and prints what happened, without a secret, and leaves nothing
//! behind — through the library entry point (with canary secrets) and the real binary.

use std::path::PathBuf;
use std::time::Duration;

use secrecy::SecretString;
use truenas_agent::central::report::ConfigState;
use truenas_agent::middleware::ApiFlavor;
use truenas_dev::demo::{DemoOptions, DemoSecrets, demo};

use crate::support::assert_no_canary;

fn canaries() -> DemoSecrets {
    DemoSecrets {
        b2_application_key: SecretString::from("CANARY-B2-APPKEY-7f3a9c"),
        encryption_password: SecretString::from("CANARY-ENC-PASSWORD-2b8e41"),
        encryption_salt: SecretString::from("CANARY-ENC-SALT-9d0c55"),
        snmp_auth_password: SecretString::from("CANARY-SNMP-AUTH-61aa07"),
        snmp_privacy_passphrase: SecretString::from("CANARY-SNMP-PRIV-c4e2f8"),
        device_token: SecretString::from("CANARY-DEVICE-TOKEN-5e19b3"),
    }
}

/// The demo's temp directory, from the line that names it.
fn demo_dir(text: &str) -> PathBuf {
    let line = text
        .lines()
        .find(|l| l.starts_with("(everything lives in "))
        .expect("the demo names its directory");
    let path = line
        .trim_start_matches("(everything lives in ")
        .split(" and is removed")
        .next()
        .unwrap();
    PathBuf::from(path)
}

fn assert_tells_the_story(text: &str) {
    for want in [
        "== The agent's plan and what it did",
        "+ create cloud sync task \"Pool0 Cloud Backup\"",
        "ok      create snapshot task for pool1",
        "create          cloud_sync:pool1",
        "set             zfs:pool0 (com.dtctoday:device-guid)",
        "== Applied revision 1 (verified by ed25519:",
        "== The report as central stored it",
        "\"schema\": \"truenas-agent.report/v1\"",
        "document    revision 1 applied, ",
        "daemon      revision 1 converged",
        "== `truenas-agent status` on the box",
        "applied revision 1, last fetch",
        "SNMP        v3 only, SHA/AES, RUNNING",
    ] {
        assert!(text.contains(want), "missing `{want}` in:\n{text}");
    }
}

async fn the_demo_converges_reports_and_cleans_up(flavor: ApiFlavor) {
    {
        let mut out = Vec::new();
        let options = DemoOptions {
            flavor,
            budget: Duration::from_secs(60),
        };
        let outcome = demo(&options, &canaries(), &mut out).await.unwrap();
        let text = String::from_utf8(out).unwrap();
        assert_eq!(text, outcome.text);
        assert_eq!(outcome.report.config.state, ConfigState::Applied);
        assert_eq!(outcome.report.device.api.as_deref(), Some(flavor.as_str()));
        assert_tells_the_story(&text);
        assert_no_canary("the demo's output", &text);
        assert!(!demo_dir(&text).exists(), "the temp dir is removed");
    }
}
per_flavour!(the_demo_converges_reports_and_cleans_up);

/// The README's first command, as written there (one line, nothing to set up first).
const README_FIRST_COMMAND: &str = "cargo run -p truenas-dev -- demo";

#[test]
fn the_readme_first_command_works() {
    let readme = std::fs::read_to_string(crate::support::repo_root().join("README.md")).unwrap();
    let first_block = readme
        .split("```sh\n")
        .nth(1)
        .and_then(|rest| rest.split("```").next())
        .unwrap();
    assert_eq!(first_block.trim(), README_FIRST_COMMAND, "README.md");
    // `cargo run -p truenas-dev -- demo` runs this binary with these arguments.
    let out = assert_cmd::Command::new(crate::support::bin("truenas-dev"))
        .args(["--log", "warn", "demo"])
        .timeout(Duration::from_secs(120))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}\n{stdout}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_tells_the_story(&stdout);
    assert!(!demo_dir(&stdout).exists());
}
