//! The appliance binary's dependency tree carries none of the crates cut from it for size
//! (docs/benchmarks.md, "Binary size"). The appliance is the `--no-default-features`
//! build (`packaging/build-release.sh`); this reads its tree with `cargo tree` (offline,
//! from Cargo.lock: no build, about a second) instead of building the release.

use std::collections::BTreeMap;
use std::process::Command;

/// Crates removed from the appliance build, and why each must stay out.
const CUT: &[(&str, &str)] = &[
    (
        "regex",
        "tracing-subscriber's env-filter: the log filter is a `Targets`",
    ),
    ("regex-automata", "tracing-subscriber's env-filter"),
    ("regex-syntax", "tracing-subscriber's env-filter"),
    ("matchers", "tracing-subscriber's env-filter"),
];

/// Crates that must come in one version only (a second copy is dead weight).
const ONE_VERSION: &[(&str, &str)] = &[(
    "webpki-roots",
    "tokio-tungstenite's rustls-tls-webpki-roots brought a second one; the agent does TLS itself",
)];

/// Crates the appliance needs: proves the tree was read, not an empty or changed output.
const NEEDED: &[&str] = &[
    "rustls",
    "ring",
    "tokio-tungstenite",
    "reqwest",
    "tracing-journald",
    "sd-notify",
    "tracing-subscriber",
];

/// Every crate (name → versions) of the appliance's normal (non-dev, non-build)
/// dependency tree on this host.
fn appliance_tree() -> BTreeMap<String, Vec<String>> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let manifest = concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml");
    let out = Command::new(cargo)
        .args(["tree", "--manifest-path", manifest, "--offline", "--locked"])
        .args(["-e", "normal", "--no-default-features"])
        .args(["--prefix", "none", "--format", "{p}"])
        .output()
        .expect("cargo runs");
    assert!(
        out.status.success(),
        "cargo tree failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut crates: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for line in String::from_utf8(out.stdout).unwrap().lines() {
        let mut words = line.split_whitespace();
        let (Some(name), Some(version)) = (words.next(), words.next()) else {
            continue;
        };
        let versions = crates.entry(name.to_owned()).or_default();
        if !versions.iter().any(|v| v == version) {
            versions.push(version.to_owned());
        }
    }
    crates
}

#[test]
fn the_appliance_tree_has_none_of_the_crates_cut_for_size() {
    let tree = appliance_tree();
    for needed in NEEDED {
        assert!(tree.contains_key(*needed), "{needed} missing from {tree:?}");
    }
    let back: Vec<String> = CUT
        .iter()
        .filter(|(name, _)| tree.contains_key(*name))
        .map(|(name, why)| format!("{name} ({why})"))
        .collect();
    assert!(
        back.is_empty(),
        "crates cut from the appliance binary are back: {back:?}"
    );
    let doubled: Vec<String> = ONE_VERSION
        .iter()
        .filter(|(name, _)| tree.get(*name).is_some_and(|v| v.len() > 1))
        .map(|(name, why)| format!("{name} {:?} ({why})", tree[*name]))
        .collect();
    assert!(doubled.is_empty(), "more than one version: {doubled:?}");
}
