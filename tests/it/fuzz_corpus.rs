//! Corpus replay: every committed fuzz input (`fuzz/corpus/<target>/` and the crash
//! reproducers in `fuzz/regressions/<target>/`) goes through the same target body the
//! fuzzer ran (`fuzz/targets.rs`), on stable, so CI keeps every finding fixed without
//! nightly or libFuzzer.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};

#[allow(dead_code)]
#[path = "../../fuzz/targets.rs"]
mod targets;

fn fuzz_dir() -> PathBuf {
    crate::support::repo_root().join("fuzz")
}

/// The files of `dir` (none when it does not exist), sorted for a stable order.
fn inputs(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    files
}

/// Runs `target` on every input, collecting each panic with the file that caused it.
fn replay(name: &str, target: fn(&[u8]), files: &[PathBuf]) -> Vec<String> {
    let mut failures = Vec::new();
    for file in files {
        let data = std::fs::read(file).unwrap();
        if let Err(panic) = catch_unwind(AssertUnwindSafe(|| target(&data))) {
            let message = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                .unwrap_or_default();
            failures.push(format!("{name}: {}: {message}", file.display()));
        }
    }
    failures
}

#[test]
fn every_corpus_and_regression_input_replays_without_panic() {
    let mut failures = Vec::new();
    let mut seen = 0;
    for &(name, target) in targets::TARGETS {
        let corpus = inputs(&fuzz_dir().join("corpus").join(name));
        assert!(!corpus.is_empty(), "target `{name}` has no seed corpus");
        let regressions = inputs(&fuzz_dir().join("regressions").join(name));
        seen += corpus.len() + regressions.len();
        failures.extend(replay(name, target, &corpus));
        failures.extend(replay(name, target, &regressions));
    }
    assert!(
        failures.is_empty(),
        "fuzz inputs panic:\n{}",
        failures.join("\n")
    );
    assert!(seen > 0);
}

/// The replay covers exactly the cargo-fuzz binaries: a target added to
/// `fuzz/Cargo.toml` without an entry in `TARGETS` (or the reverse) fails here.
#[test]
fn targets_table_matches_the_fuzz_crate() {
    let manifest = truenas_agent::fs::read_to_string(&fuzz_dir().join("Cargo.toml")).unwrap();
    let mut bins: Vec<String> = manifest
        .lines()
        .filter_map(|l| l.strip_prefix("name = \""))
        .filter_map(|l| l.strip_suffix('"'))
        .filter(|n| *n != "truenas-agent-fuzz")
        .map(str::to_owned)
        .collect();
    bins.sort();
    let mut names: Vec<String> = targets::TARGETS
        .iter()
        .map(|(n, _)| (*n).to_owned())
        .collect();
    names.sort();
    assert_eq!(bins, names);
    for name in &names {
        let source = fuzz_dir().join("fuzz_targets").join(format!("{name}.rs"));
        let text = truenas_agent::fs::read_to_string(&source).unwrap();
        assert!(
            text.contains(&format!("targets::{name}(data)")),
            "{} does not call targets::{name}",
            source.display()
        );
    }
}

/// The panic catcher itself works: a target that panics is reported with its file.
#[test]
fn replay_reports_a_panicking_input() {
    fn boom(data: &[u8]) {
        assert!(data.is_empty(), "boom");
    }
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("crash-1");
    truenas_agent::fs::write_atomic(&file, b"x", 0o600).unwrap();
    let failures = replay("boom", boom, &[file]);
    assert_eq!(failures.len(), 1);
    assert!(failures[0].contains("crash-1") && failures[0].contains("boom"));
}

/// The seeds reach deep: the signed seed envelope verifies under the fixed fuzz key and
/// carries a valid document, so the fuzzer starts from inputs that pass every check.
#[test]
fn signed_seed_envelope_verifies_under_the_fuzz_key() {
    use truenas_agent::central::dsse::{self, CONFIG_PAYLOAD_TYPE, TrustPolicy, TrustedKey};
    let envelope = std::fs::read(fuzz_dir().join("corpus/central_envelope/seed-signed")).unwrap();
    let key = ed25519_dalek::SigningKey::from_bytes(&targets::FUZZ_SIGNING_SEED);
    let policy = TrustPolicy {
        keys: vec![TrustedKey::from_signing_key(&key)],
        allow_unsigned: false,
    };
    let (payload, _) = dsse::open(&envelope, CONFIG_PAYLOAD_TYPE, &policy).unwrap();
    truenas_agent::desired::parse(&payload).unwrap();
}
