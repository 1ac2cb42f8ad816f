//! The appliance binary's dependency tree carries none of the crates and features cut
//! from it for size (docs/benchmarks.md, "Binary size"), nor any of the other products'
//! (the simulator, the central server and what they alone need: issue 14). The appliance is
//! the `truenas-agent` crate (`packaging/build-release.sh`); this reads its tree with
//! `cargo tree` (offline, from Cargo.lock: no build, about a second) instead of building
//! the release, which takes minutes.

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;

/// Crates removed from the appliance build, and why each must stay out.
const CUT: &[(&str, &str)] = &[
    ("truenas-sim", "test infrastructure never ships (issue 14)"),
    (
        "truenas-central",
        "the central server runs off the NAS (issue 14)",
    ),
    ("axum", "the central server's HTTP framework"),
    ("sqlx", "the central server's database"),
    ("chacha20poly1305", "central's at-rest encryption"),
    ("rcgen", "the simulator's TLS certificates"),
    (
        "regex",
        "tracing-subscriber's env-filter: the log filter is a `Targets`",
    ),
    ("regex-automata", "tracing-subscriber's env-filter"),
    ("regex-syntax", "tracing-subscriber's env-filter"),
    ("matchers", "tracing-subscriber's env-filter"),
    (
        "icu_normalizer",
        "idna's Unicode back end: idna_adapter is pinned to 1.0.0 in Cargo.lock (a plain \
         `cargo update` brings ICU4X back; re-pin with \
         `cargo update -p idna_adapter --precise 1.0.0`)",
    ),
    (
        "icu_properties",
        "idna's Unicode back end (idna_adapter 1.0.0)",
    ),
];

/// Crates that must come in one version only (a second copy is dead weight).
const ONE_VERSION: &[(&str, &str)] = &[(
    "webpki-roots",
    "tokio-tungstenite's rustls-tls-webpki-roots brought a second one; the agent does TLS itself",
)];

/// Features that must stay off (crate, feature, why).
const FEATURES_OFF: &[(&str, &str, &str)] = &[
    (
        "tracing-subscriber",
        "env-filter",
        "regex engines; `Targets` does",
    ),
    (
        "tokio-tungstenite",
        "__rustls-tls",
        "tungstenite's own TLS connector; the agent does TLS itself",
    ),
];

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

#[derive(Debug, Default)]
struct Package {
    versions: BTreeSet<String>,
    features: BTreeSet<String>,
}

/// Every crate of the appliance's normal (non-dev, non-build) dependency tree on this
/// host, with its versions and enabled features.
fn appliance_tree() -> BTreeMap<String, Package> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let manifest = concat!(env!("CARGO_MANIFEST_DIR"), "/../../Cargo.toml");
    let out = Command::new(cargo)
        .args(["tree", "--manifest-path", manifest, "--offline", "--locked"])
        .args(["-p", "truenas-agent", "-e", "normal"])
        .args(["--prefix", "none", "--format", "{p} | {f}"])
        .output()
        .expect("cargo runs");
    assert!(
        out.status.success(),
        "cargo tree failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut crates: BTreeMap<String, Package> = BTreeMap::new();
    for line in String::from_utf8(out.stdout).unwrap().lines() {
        let (package, features) = line.split_once(" | ").unwrap_or((line, ""));
        let mut words = package.split_whitespace();
        let (Some(name), Some(version)) = (words.next(), words.next()) else {
            continue;
        };
        let entry = crates.entry(name.to_owned()).or_default();
        entry.versions.insert(version.to_owned());
        let features = features.trim_end_matches(" (*)").trim();
        entry.features.extend(
            features
                .split(',')
                .filter(|f| !f.is_empty())
                .map(str::to_owned),
        );
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
        .filter(|(name, _)| tree.get(*name).is_some_and(|p| p.versions.len() > 1))
        .map(|(name, why)| format!("{name} {:?} ({why})", tree[*name].versions))
        .collect();
    assert!(doubled.is_empty(), "more than one version: {doubled:?}");
    let mut wrong = Vec::new();
    for (name, feature, why) in FEATURES_OFF {
        if tree
            .get(*name)
            .is_some_and(|p| p.features.contains(*feature))
        {
            wrong.push(format!("{name}/{feature} is on ({why})"));
        }
    }
    assert!(wrong.is_empty(), "appliance features: {wrong:?}");
}

/// What the idna pin means for URLs in the configuration (`[central] url`, `[b2]
/// api_url`): a host in Unicode is refused, its ASCII (punycode) form works.
#[test]
fn hosts_must_be_ascii_without_the_unicode_back_end() {
    use reqwest::Url;
    let unicode = Url::parse("https://zentrale.müller.example/");
    assert!(unicode.is_err(), "{unicode:?}");
    let punycode = Url::parse("https://zentrale.xn--mller-kva.example/").unwrap();
    assert_eq!(punycode.host_str(), Some("zentrale.xn--mller-kva.example"));
    // ASCII hosts are lower-cased as before.
    let mixed = Url::parse("https://Central.Example.COM/").unwrap();
    assert_eq!(mixed.host_str(), Some("central.example.com"));
}
