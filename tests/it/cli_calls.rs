//! What `plan`, `apply` and `verify` cost in middleware calls through the real binary,
//! and that the NAS's own secrets stay scrubbed although these commands no longer read
//! them separately (issue 17: a fresh 2-pool apply in at most 20 calls; the secrets are
//! learned from the commands' own observation, `truenas_agent::scrub::Learning`).

use std::path::{Path, PathBuf};

use serde_json::{Value, json};
use truenas_agent::middleware::ApiFlavor;
use truenas_sim::faults::Failure;
use truenas_sim::scenario::B2Account;
use truenas_sim::{Scenario, ServeOptions, Simulator};

use crate::support::assert_no_canary;

const KEY_ID: &str = "0051a2b3c4d5e6f0000000001";
const BUCKET: &str = "truenas-a1b2c3d4e5f670718293a4b5c6d7e8f9";
/// The box's SNMP v3 password before the SOP is applied: the NAS holds it, the
/// document does not (the document sets its own). All lower case with digits and under
/// 20 characters, so only a scrubber that *knows* it can hide it (the key-looking-token
/// heuristics would not).
const NAS_ONLY_SNMP: &str = "nasonly-snmp-auth-3f9";
/// The same for the v3 privacy passphrase.
const NAS_ONLY_PRIV: &str = "nasonly-snmp-priv-7c2";

/// A fresh two-pool 25.04 box whose B2 key sees the SOP bucket, served on a unix socket.
struct Rig {
    sim: Simulator,
    tmp: tempfile::TempDir,
    url: String,
    _server: truenas_sim::Server,
}

impl Rig {
    async fn new(edit: impl FnOnce(&mut Scenario)) -> Self {
        let mut s = Scenario::two_pools(ApiFlavor::V25_04);
        s.b2_accounts.push(B2Account {
            account: KEY_ID.into(),
            valid: true,
            buckets: Some(vec![BUCKET.into()]),
        });
        edit(&mut s);
        let sim = Simulator::new(s);
        let tmp = tempfile::tempdir().unwrap();
        let server = sim
            .serve(ServeOptions {
                socket: Some(tmp.path().join("mw.sock")),
                ..Default::default()
            })
            .await
            .unwrap();
        let url = server.unix_url().unwrap();
        Self {
            sim,
            tmp,
            url,
            _server: server,
        }
    }

    fn doc(&self) -> PathBuf {
        let path = crate::support::repo_root().join("tests/data/desired/example.json");
        let mut v: Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
        v["actions"] = json!([]);
        let path = self.tmp.path().join("doc.json");
        std::fs::write(&path, serde_json::to_vec(&v).unwrap()).unwrap();
        path
    }

    /// Runs the agent against this box; returns (exit code, stdout, stderr), checked
    /// for the document's canaries.
    async fn run(&self, args: &[&str]) -> (i32, String, String) {
        let state = self.tmp.path().join("state");
        let out = tokio::process::Command::new(crate::support::bin(crate::support::AGENT))
            .args(["--middleware", &self.url, "--state-dir", s(&state)])
            .args(["--log", "info"])
            .args(args)
            .env("TZ", "UTC")
            .env_remove("TRUENAS_AGENT_STATE_DIR")
            .env_remove("TRUENAS_AGENT_MIDDLEWARE")
            .env_remove("TRUENAS_AGENT_CONFIG")
            .output()
            .await
            .unwrap();
        let stdout = String::from_utf8(out.stdout).unwrap();
        let stderr = String::from_utf8(out.stderr).unwrap();
        assert_no_canary("stdout", &stdout);
        assert_no_canary("stderr", &stderr);
        (out.status.code().unwrap(), stdout, stderr)
    }

    fn methods(&self) -> Vec<String> {
        self.sim.calls().into_iter().map(|c| c.method).collect()
    }
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Panics when a NAS-only secret appears in `text`.
fn assert_nas_secrets_hidden(label: &str, text: &str) {
    for secret in [NAS_ONLY_SNMP, NAS_ONLY_PRIV] {
        assert!(
            !text.contains(secret),
            "the NAS's own secret leaked into {label}"
        );
    }
}

/// A box whose SNMP service already has v3 secrets the document does not carry.
fn with_nas_only_snmp(s: &mut Scenario) {
    s.snmp.v3 = true;
    s.snmp.v3_username = "oldnms".into();
    s.snmp.v3_authtype = "SHA".into();
    s.snmp.v3_password = NAS_ONLY_SNMP.into();
    s.snmp.v3_privproto = Some("AES".into());
    s.snmp.v3_privpassphrase = Some(NAS_ONLY_PRIV.into());
}

fn failure(method: &str, reason: String) -> Failure {
    Failure {
        method: method.into(),
        errno: 14,
        reason,
        path: None,
        times: Some(1),
    }
}

/// `truenas-agent apply` of the SOP on a fresh two-pool box: at most 20 middleware
/// calls in all (the connection's own set-up included), converged; a second `apply`
/// writes nothing and reads at most 8 times. Before issue 17's last step the CLI read
/// `cloudsync.query`, `cloudsync.credentials.query` and `snmp.config` once more at
/// connect, only to learn the NAS's secrets: 23 calls, then 11 reads.
#[tokio::test]
async fn a_fresh_two_pool_apply_through_the_cli_takes_at_most_20_calls() {
    let rig = Rig::new(|_| {}).await;
    let doc = rig.doc();
    let (code, out, err) = rig
        .run(&["apply", "--allow-unsigned", "--json", "-f", s(&doc)])
        .await;
    assert_eq!(code, 0, "{out}\n{err}");
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["converged"], true, "{v:#}");
    let methods = rig.methods();
    assert!(methods.len() <= 20, "{} calls: {methods:?}", methods.len());
    for m in ["cloudsync.query", "snmp.config", "pool.snapshottask.query"] {
        assert_eq!(
            methods.iter().filter(|x| *x == m).count(),
            1,
            "{m} read once: {methods:?}"
        );
    }

    rig.sim.clear_calls();
    let (code, out, err) = rig.run(&["apply", "--allow-unsigned", "-f", s(&doc)]).await;
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(rig.sim.write_calls().is_empty(), "{:?}", rig.methods());
    let methods = rig.methods();
    assert!(methods.len() <= 8, "{} reads: {methods:?}", methods.len());
}

/// `plan` on a fresh box and `verify` on a converged one read each secret-holding
/// collection once: nothing is read only to learn the NAS's secrets.
#[tokio::test]
async fn plan_and_verify_read_the_secret_holding_collections_once() {
    let rig = Rig::new(|_| {}).await;
    let doc = rig.doc();
    let (code, out, err) = rig.run(&["plan", "--allow-unsigned", "-f", s(&doc)]).await;
    assert_eq!(code, 1, "{out}\n{err}");
    let count = |methods: &[String], m: &str| methods.iter().filter(|x| *x == m).count();
    let methods = rig.methods();
    for m in [
        "cloudsync.query",
        "cloudsync.credentials.query",
        "snmp.config",
    ] {
        assert_eq!(count(&methods, m), 1, "plan: {m}: {methods:?}");
    }
    let (code, out, err) = rig.run(&["apply", "--allow-unsigned", "-f", s(&doc)]).await;
    assert_eq!(code, 0, "{out}\n{err}");
    rig.sim.clear_calls();
    let (_, out, err) = rig
        .run(&["verify", "--allow-unsigned", "--skip-b2", "-f", s(&doc)])
        .await;
    let methods = rig.methods();
    for m in ["cloudsync.credentials.query", "snmp.config"] {
        assert_eq!(
            count(&methods, m),
            1,
            "verify: {m}: {methods:?}\n{out}\n{err}"
        );
    }
}

/// The NAS holds SNMP v3 secrets the document does not know (it sets its own); during
/// `apply` the middleware fails `snmp.update` with an error text that quotes the old
/// password and passphrase. They are learned from `apply`'s own observation and hidden
/// from every output, text and JSON, while the rest of the error is shown.
#[tokio::test]
async fn a_nas_only_secret_in_a_middleware_error_during_apply_is_scrubbed() {
    for json in [false, true] {
        let rig = Rig::new(|s| {
            with_nas_only_snmp(s);
            s.faults.failures.push(failure(
                "snmp.update",
                format!("snmpd could not replace user oldnms ({NAS_ONLY_SNMP} / {NAS_ONLY_PRIV})"),
            ));
        })
        .await;
        let doc = rig.doc();
        let mut args = vec!["apply", "--allow-unsigned", "-f", s(&doc)];
        if json {
            args.push("--json");
        }
        let (code, out, err) = rig.run(&args).await;
        assert_eq!(code, 2, "json {json}: a failed step: {out}\n{err}");
        assert_nas_secrets_hidden("stdout", &out);
        assert_nas_secrets_hidden("stderr", &err);
        let all = format!("{out}{err}");
        assert!(
            all.contains("snmpd could not replace user oldnms ([REDACTED] / [REDACTED])"),
            "json {json}: the error is shown, scrubbed: {out}\n{err}"
        );
        assert_eq!(
            rig.methods().iter().filter(|m| *m == "snmp.config").count(),
            1,
            "json {json}: learned from the observation, not read again"
        );
        assert!(
            rig.sim
                .write_calls()
                .iter()
                .any(|c| c.method == "snmp.update")
        );
    }
}

/// The middleware fails the very first read of `plan`, `apply` and `verify`
/// (`pool.query`), before the observation has seen any secret, with a text quoting the
/// NAS's own SNMP secrets: the secrets are read before the error reaches the command,
/// and hidden from its output.
#[tokio::test]
async fn a_nas_only_secret_in_an_error_before_the_observation_is_scrubbed() {
    for command in ["plan", "apply", "verify"] {
        let rig = Rig::new(|s| {
            with_nas_only_snmp(s);
            s.faults.failures.push(failure(
                "pool.query",
                format!("pool import stuck; snmp auth {NAS_ONLY_SNMP} priv {NAS_ONLY_PRIV}"),
            ));
        })
        .await;
        let doc = rig.doc();
        let mut args = vec![command, "--allow-unsigned", "-f", s(&doc)];
        if command == "verify" {
            args.push("--skip-b2");
        }
        let (code, out, err) = rig.run(&args).await;
        assert_eq!(code, 3, "{command}: could not read the NAS: {out}\n{err}");
        assert_nas_secrets_hidden(&format!("{command} stdout"), &out);
        assert_nas_secrets_hidden(&format!("{command} stderr"), &err);
        assert!(
            format!("{out}{err}").contains("snmp auth [REDACTED] priv [REDACTED]"),
            "{command}: the error is shown, scrubbed: {out}\n{err}"
        );
        assert!(rig.sim.write_calls().is_empty(), "{command}");
    }
}
