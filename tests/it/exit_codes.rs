//! The one exit-code rule (issue 13.3, docs/operations.md "Exit codes"), command by
//! command, through the real binary against the simulator: 0 ok, 1 attention, 2 failing
//! (a refused input included), 3 unknown — and the output says the same as the code.
//! `verify` pass/deviates and `identity` are covered with their rigs
//! (`health_scenarios`, `identity`).

use std::path::{Path, PathBuf};

use serde_json::{Value, json};
use truenas_agent::middleware::ApiFlavor;
use truenas_sim::scenario::B2Account;
use truenas_sim::{Scenario, ServeOptions, Simulator};

use crate::support::assert_no_canary;

const KEY_ID: &str = "0051a2b3c4d5e6f0000000001";
const BUCKET: &str = "truenas-a1b2c3d4e5f670718293a4b5c6d7e8f9";

fn example() -> Value {
    let path = crate::support::repo_root().join("tests/data/desired/example.json");
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

/// A fresh two-pool box whose B2 key sees the SOP bucket, served on a unix socket.
struct Box_ {
    sim: Simulator,
    tmp: tempfile::TempDir,
    url: String,
    _server: truenas_sim::Server,
}

impl Box_ {
    async fn new() -> Self {
        let mut s = Scenario::two_pools(ApiFlavor::V25_04);
        s.b2_accounts.push(B2Account {
            account: KEY_ID.into(),
            valid: true,
            buckets: Some(vec![BUCKET.into()]),
        });
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

    fn doc(&self, name: &str, edit: impl FnOnce(&mut Value)) -> PathBuf {
        let mut v = example();
        v["actions"] = json!([]);
        edit(&mut v);
        let path = self.tmp.path().join(name);
        std::fs::write(&path, serde_json::to_vec(&v).unwrap()).unwrap();
        path
    }

    /// Runs a command against this box; returns (exit code, stdout, stderr).
    async fn run(&self, args: &[&str]) -> (i32, String, String) {
        let state = self.tmp.path().join("state");
        let mut all: Vec<String> = vec![
            "--middleware".into(),
            self.url.clone(),
            "--state-dir".into(),
            state.display().to_string(),
            "--log".into(),
            "warn".into(),
        ];
        all.extend(args.iter().map(|a| (*a).to_owned()));
        run(all).await
    }
}

async fn run(args: Vec<String>) -> (i32, String, String) {
    run_bin(crate::support::AGENT, args).await
}

/// `truenas-central` with `args`.
async fn run_central(args: Vec<String>) -> (i32, String, String) {
    run_bin(crate::support::CENTRAL, args).await
}

async fn run_bin(bin: &str, args: Vec<String>) -> (i32, String, String) {
    let out = tokio::process::Command::new(crate::support::bin(bin))
        .args(&args)
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

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// `--json` output and the exit code agree: `exit_code`, `result`, `converged`.
fn agrees(code: i32, stdout: &str, result: &str) -> Value {
    let v: Value = serde_json::from_str(stdout).unwrap_or_else(|e| panic!("{e}: {stdout}"));
    assert_eq!(v["exit_code"], code, "{v:#}");
    assert_eq!(v["result"], result, "{v:#}");
    assert_eq!(v["converged"], result == "converged", "{v:#}");
    v
}

/// A box after `apply` of the example document (exit 0).
async fn provisioned() -> (Box_, PathBuf) {
    let b = Box_::new().await;
    let doc = b.doc("doc.json", |_| {});
    let (code, out, _) = b.run(&["apply", "--allow-unsigned", "-f", s(&doc)]).await;
    assert_eq!(code, 0, "{out}");
    (b, doc)
}

#[tokio::test]
async fn plan_and_apply_pending_converged_refused() {
    let b = Box_::new().await;
    let doc = b.doc("doc.json", |_| {});
    let doc = s(&doc);
    // Changes pending that apply would make: attention.
    let (code, out, _) = b.run(&["plan", "--allow-unsigned", "-f", doc]).await;
    assert_eq!(code, 1, "{out}");
    assert!(
        out.ends_with(
            "Result: CHANGES PENDING: nothing blocks them; a pass in enforce mode makes them (exit 1)\n"
        ),
        "{out}"
    );
    let (code, out, _) = b
        .run(&["plan", "--allow-unsigned", "-f", doc, "--json"])
        .await;
    agrees(code, &out, "pending");

    // report-only with pending changes: nothing written, attention — never 0.
    let report_only = b.doc("report-only.json", |v| v["mode"] = json!("report-only"));
    let (code, out, _) = b
        .run(&["apply", "--allow-unsigned", "-f", s(&report_only), "--json"])
        .await;
    assert_eq!(code, 1, "{out}");
    agrees(code, &out, "pending");
    assert!(b.sim.write_calls().is_empty(), "{:?}", b.sim.write_calls());

    // Converged: 0, and the same again.
    let (code, out, _) = b.run(&["apply", "--allow-unsigned", "-f", doc]).await;
    assert_eq!(code, 0, "{out}");
    assert!(out.ends_with("(exit 0)\n"), "{out}");
    let (code, out, _) = b
        .run(&["plan", "--allow-unsigned", "-f", doc, "--json"])
        .await;
    agrees(code, &out, "converged");
    assert_eq!(code, 0);

    // Refused input: exit 2, nothing written.
    b.sim.clear_calls();
    let bad = b.doc("bad.json", |v| v["cloud_sync"]["chunk_size_mib"] = json!(1));
    for command in ["plan", "apply"] {
        let (code, out, err) = b
            .run(&[command, "--allow-unsigned", "-f", s(&bad), "--json"])
            .await;
        assert_eq!(code, 2, "{command}: {out}{err}");
        agrees(code, &out, "refused");
        let (code, _, err) = b.run(&[command, "--allow-unsigned", "-f", s(&bad)]).await;
        assert_eq!(code, 2);
        assert!(
            err.contains("REFUSED: nothing was written (exit 2)"),
            "{err}"
        );
    }
    assert!(b.sim.write_calls().is_empty());
}

/// A root pool that is not imported: not converged, exit 2 — never "converged" (the
/// document carries the GUID, so the pass itself runs).
#[tokio::test]
async fn a_missing_root_pool_is_not_converged() {
    let (b, _) = provisioned().await;
    let no_root = b.doc("no-root.json", |v| v["device"]["root_pool"] = json!("tank"));
    for command in ["plan", "apply"] {
        let (code, out, _) = b
            .run(&[command, "--allow-unsigned", "-f", s(&no_root), "--json"])
            .await;
        assert_eq!(code, 2, "{command}: {out}");
        let v = agrees(code, &out, "not_converged");
        assert_eq!(v["plan"]["blockers"][0]["kind"], "root_pool_not_imported");
        let (code, text, _) = b
            .run(&[command, "--allow-unsigned", "-f", s(&no_root)])
            .await;
        assert_eq!(code, 2);
        assert!(text.contains("root pool tank"), "{text}");
        assert!(!text.contains("No changes: the NAS matches"), "{text}");
        assert!(text.contains("NOT CONVERGED"), "{text}");
    }
}

/// Issue 13.12: a second SYNC task pushing into the agent's pool0 folder is failing in
/// `plan` (exit 2), `apply`, `status` and `verify`, and is never touched.
#[tokio::test]
async fn a_second_sync_task_on_the_agents_folder_fails_everywhere() {
    let (b, doc) = provisioned().await;
    let doc = s(&doc);
    b.sim.update_state(|st| {
        let mut other = st
            .cloud_sync_tasks
            .iter()
            .find(|t| t.path == "/mnt/pool0")
            .unwrap()
            .clone();
        other.id = 90;
        other.description = "Old manual backup".into();
        other.path = "/mnt/pool0/shares".into();
        st.cloud_sync_tasks.push(other);
    });
    let (code, out, _) = b.run(&["plan", "--allow-unsigned", "-f", doc]).await;
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("[blocks] cloud sync task #90"), "{out}");
    let (code, out, _) = b
        .run(&["apply", "--allow-unsigned", "-f", doc, "--json"])
        .await;
    assert_eq!(code, 2, "{out}");
    agrees(code, &out, "not_converged");
    assert_eq!(
        b.sim
            .state()
            .cloud_sync_tasks
            .iter()
            .filter(|t| t.id == 90 && t.path == "/mnt/pool0/shares" && t.enabled)
            .count(),
        1,
        "never touched"
    );
    let (code, out, _) = b.run(&["status", "--json"]).await;
    assert_eq!(code, 2, "{out}");
    let status: Value = serde_json::from_str(&out).unwrap();
    assert!(
        status["problems"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["level"] == "failing" && p["message"].as_str().unwrap().contains("#90")),
        "{status:#}"
    );
    let (code, out, _) = b
        .run(&[
            "verify",
            "--allow-unsigned",
            "-f",
            doc,
            "--skip-b2",
            "--json",
        ])
        .await;
    assert_eq!(code, 2, "{out}");
    let verify: Value = serde_json::from_str(&out).unwrap();
    let folder = verify["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["id"] == "cloud_sync.folder/pool0")
        .unwrap();
    assert_eq!(folder["status"], "fail", "{folder:#}");
}

#[tokio::test]
async fn unreachable_middleware_is_unknown_for_every_command() {
    let tmp = tempfile::tempdir().unwrap();
    let gone = format!("unix://{}", tmp.path().join("nothing.sock").display());
    let state = tmp.path().join("state").display().to_string();
    let doc = tmp.path().join("doc.json");
    std::fs::write(&doc, serde_json::to_vec(&example()).unwrap()).unwrap();
    let doc = doc.display().to_string();
    let base = |rest: &[&str]| {
        let mut all: Vec<String> = vec![
            "--middleware".into(),
            gone.clone(),
            "--state-dir".into(),
            state.clone(),
        ];
        all.extend(rest.iter().map(|a| (*a).to_owned()));
        all
    };
    for command in ["plan", "apply"] {
        let (code, out, err) = run(base(&[command, "--allow-unsigned", "-f", &doc])).await;
        assert_eq!(code, 3, "{command}: {out}{err}");
        assert!(err.contains("UNAVAILABLE"), "{err}");
        let (code, out, _) = run(base(&[command, "--allow-unsigned", "-f", &doc, "--json"])).await;
        assert_eq!(code, 3);
        agrees(code, &out, "unavailable");
    }
    let (code, out, _) = run(base(&["verify", "--allow-unsigned", "-f", &doc, "--json"])).await;
    assert_eq!(code, 3, "{out}");
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["exit_code"], 3);
    assert_eq!(v["verdict"], "undetermined");
    // Nothing known failing, nothing readable: unknown.
    let (code, out, _) = run(base(&["status", "--timeout", "2"])).await;
    assert_eq!(code, 3, "{out}");
    assert!(out.contains("UNKNOWN (exit 3)"), "{out}");
    let (code, _, err) = run(base(&["install", "--check"])).await;
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("cannot connect"), "{err}");
    // A refused document stays "refused" (2) even when the NAS is unreachable: it is
    // checked before anything is contacted.
    let bad = tmp.path().join("bad.json");
    let mut v = example();
    v["revision"] = json!(0);
    std::fs::write(&bad, serde_json::to_vec(&v).unwrap()).unwrap();
    let bad = bad.display().to_string();
    let (code, out, _) = run(base(&["verify", "--allow-unsigned", "-f", &bad, "--json"])).await;
    assert_eq!(code, 2, "{out}");
    assert_eq!(
        serde_json::from_str::<Value>(&out).unwrap()["verdict"],
        "refused"
    );
    let (code, _, _) = run(base(&["plan", "--allow-unsigned", "-f", &bad])).await;
    assert_eq!(code, 2);
}

#[tokio::test]
async fn verify_and_status_on_a_provisioned_box() {
    let (b, doc) = provisioned().await;
    let doc = s(&doc);
    // The first sync has not run (SOP 7.1): a failing item, exit 2 — with a FAILING
    // problem in `status` to match the count.
    let (code, out, _) = b
        .run(&["verify", "--allow-unsigned", "-f", doc, "--skip-b2"])
        .await;
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("Result: FAIL"), "{out}");
    assert!(out.trim_end().ends_with("(exit 2)"), "{out}");
    let (code, out, _) = b.run(&["status", "--json"]).await;
    assert_eq!(code, 2, "{out}");
    let status: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(status["exit_code"], 2);
    assert_eq!(status["overall"], "failing");
    assert!(status["checklist"]["fail"].as_u64().unwrap() >= 1);
    assert!(
        status["problems"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["level"] == "failing" && p["area"] == "checklist"),
        "{status:#}"
    );
}

#[tokio::test]
async fn central_commands() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("central");
    let keys = tmp.path().join("keys");
    let (code, _, err) = run_central(vec![
        "keygen".into(),
        "--out".into(),
        keys.display().to_string(),
    ])
    .await;
    assert_eq!(code, 0, "{err}");
    // Refused: overwriting a key.
    let (code, _, err) = run_central(vec![
        "keygen".into(),
        "--out".into(),
        keys.display().to_string(),
    ])
    .await;
    assert_eq!(code, 2, "{err}");
    let token = tmp.path().join("token");
    let (code, _, err) = run_central(vec![
        "register".into(),
        "--dir".into(),
        dir.display().to_string(),
        "--name".into(),
        "nas-01".into(),
        "--token-out".into(),
        token.display().to_string(),
    ])
    .await;
    assert_eq!(code, 0, "{err}");
    let publish = |revision: u64| {
        let doc = tmp.path().join(format!("doc-{revision}.json"));
        let mut v = example();
        v["revision"] = json!(revision);
        std::fs::write(&doc, serde_json::to_vec(&v).unwrap()).unwrap();
        run_central(vec![
            "publish".into(),
            "--dir".into(),
            dir.display().to_string(),
            "--device".into(),
            "nas-01".into(),
            "--document".into(),
            doc.display().to_string(),
        ])
    };
    let (code, _, err) = publish(5).await;
    assert_eq!(code, 0, "{err}");
    // Refused: not a higher revision.
    let (code, _, err) = publish(4).await;
    assert_eq!(code, 2, "{err}");
    let (code, out, err) = run_central(vec![
        "devices".into(),
        "--dir".into(),
        dir.display().to_string(),
    ])
    .await;
    assert_eq!(code, 0, "{out}{err}");
}
