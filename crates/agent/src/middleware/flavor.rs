//! Which TrueNAS release a box runs, and which API family the agent drives it as.
//!
//! Owns: [`ApiFlavor`] (the release families the agent knows), parsing a
//! `system.version_short` into one ([`release_of`], [`ApiFlavor::from_version_short`]),
//! the versioned JSON-RPC endpoints the agent knows ([`KNOWN_API_VERSIONS`]) and the
//! choice among those a box serves ([`choose_api_version`]).
//! Does not: connect to anything or detect a box's version (the client does, with these
//! functions), or know which methods exist per family (`method.rs`).
//! Invariants: [`ApiFlavor::ALL`] and [`KNOWN_API_VERSIONS`] are oldest first; a release
//! older than 24.10 is refused, a newer one maps to the newest family below it, flagged.
//! Limitations: a minor API version inside a family is driven like the family's others.

use serde::{Deserialize, Serialize};

/// Which TrueNAS API family a box is driven as (REFERENCE §6 and NEWER.md list the
/// differences). With JSON-RPC it is the family of the versioned endpoint in use
/// ([`ApiInfo::api_version`]), which is the box's own release where the agent knows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum ApiFlavor {
    /// 24.10 "Electric Eel": legacy `/websocket` only.
    #[serde(rename = "24.10")]
    V24_10,
    /// 25.04 "Fangtooth": JSON-RPC 2.0, API `v25.04.x`.
    #[serde(rename = "25.04")]
    V25_04,
    /// 25.10 "Goldeye": API `v25.10.x`.
    #[serde(rename = "25.10")]
    V25_10,
    /// 26.0: API `v26.0.0` (`service.start` private, SCRAM logins, TCP 6000 vendor-only).
    #[serde(rename = "26.0")]
    V26_0,
    /// 27.0 (in development, `master`): API `v27.0.0` (`auth.login_with_api_key` private,
    /// `pool.snapshottask.run` a job, SNMP `loglevel` gone, query `limit` ≤ 10000).
    #[serde(rename = "27.0")]
    V27_0,
}

impl ApiFlavor {
    /// Every supported flavour, oldest first.
    pub const ALL: [ApiFlavor; 5] = [
        ApiFlavor::V24_10,
        ApiFlavor::V25_04,
        ApiFlavor::V25_10,
        ApiFlavor::V26_0,
        ApiFlavor::V27_0,
    ];

    /// The newest flavour this agent knows: a newer box is driven as this one.
    pub const NEWEST: ApiFlavor = ApiFlavor::V27_0;

    /// Maps `system.version_short` (e.g. `25.04.2.6`, `26.0.0-BETA.3`) to a flavour.
    /// A release between or after the known families maps to the newest family below it,
    /// and the flag (`newer_than_known`) is then true. Older than 24.10 is refused.
    pub fn from_version_short(version: &str) -> Result<(ApiFlavor, bool), UnsupportedVersion> {
        let unsupported = || UnsupportedVersion(version.to_owned());
        let release = release_of(version).ok_or_else(unsupported)?;
        if let Some(exact) = Self::ALL.into_iter().find(|f| f.release() == release) {
            return Ok((exact, false));
        }
        Self::ALL
            .into_iter()
            .rev()
            .find(|f| f.release() < release)
            .map(|below| (below, true))
            .ok_or_else(unsupported)
    }

    /// The release family as `(major, minor)`: 25.04 is `(25, 4)`.
    pub fn release(self) -> (u32, u32) {
        match self {
            ApiFlavor::V24_10 => (24, 10),
            ApiFlavor::V25_04 => (25, 4),
            ApiFlavor::V25_10 => (25, 10),
            ApiFlavor::V26_0 => (26, 0),
            ApiFlavor::V27_0 => (27, 0),
        }
    }

    /// The directory name under `shared/truenas-api/`.
    pub fn as_str(self) -> &'static str {
        match self {
            ApiFlavor::V24_10 => "24.10",
            ApiFlavor::V25_04 => "25.04",
            ApiFlavor::V25_10 => "25.10",
            ApiFlavor::V26_0 => "26.0",
            ApiFlavor::V27_0 => "27.0",
        }
    }
}

impl std::fmt::Display for ApiFlavor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `(major, minor)` of a `system.version_short`, or `None` if it has no numeric
/// `major.minor` prefix. Pre-releases carry a suffix after the first `-`
/// (`25.10-RC.1`, `25.04-BETA.1`, `26.0.0-BETA.3`, `27.0.0-MASTER-20260822-095245`); the
/// middleware's own parser takes the part before it and splits on `.`
/// (`MW/utils/version.py` `parse_version_string`, master). Every part of that prefix
/// must be a number.
pub fn release_of(version: &str) -> Option<(u32, u32)> {
    let prefix = version.trim().split('-').next()?;
    let parts: Vec<u32> = prefix
        .split('.')
        .map(|p| {
            // `u32::from_str` takes a leading `+`; a version part never has one.
            p.bytes()
                .all(|b| b.is_ascii_digit())
                .then(|| p.parse().ok())
                .flatten()
        })
        .collect::<Option<_>>()?;
    match parts.as_slice() {
        [major, minor, ..] => Some((*major, *minor)),
        _ => None,
    }
}

/// The versioned JSON-RPC endpoints (`/api/vX.Y.Z`) this agent knows, oldest first, and
/// the family whose request shapes it uses through each. Minor API versions of a family
/// differ only in details the agent does not depend on (REFERENCE §1.1; e.g. the SNMP
/// community pattern of `v25.10.0`, which the agent's portable choice satisfies).
pub const KNOWN_API_VERSIONS: &[(&str, ApiFlavor)] = &[
    ("v25.04.0", ApiFlavor::V25_04),
    ("v25.04.1", ApiFlavor::V25_04),
    ("v25.04.2", ApiFlavor::V25_04),
    ("v25.10.0", ApiFlavor::V25_10),
    ("v25.10.1", ApiFlavor::V25_10),
    ("v25.10.2", ApiFlavor::V25_10),
    ("v25.10.3", ApiFlavor::V25_10),
    ("v25.10.4", ApiFlavor::V25_10),
    ("v25.10.5", ApiFlavor::V25_10),
    ("v26.0.0", ApiFlavor::V26_0),
    ("v27.0.0", ApiFlavor::V27_0),
];

/// The highest API version this agent knows among those a box serves (`GET
/// /api/versions`), with its family; `None` when it knows none of them.
pub fn choose_api_version<S: AsRef<str>>(served: &[S]) -> Option<(&'static str, ApiFlavor)> {
    KNOWN_API_VERSIONS
        .iter()
        .rev()
        .find(|(name, _)| served.iter().any(|s| s.as_ref() == *name))
        .copied()
}

/// A TrueNAS release this agent cannot talk to.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "TrueNAS version `{0}` is not supported (supported: 24.10, 25.04, 25.10, 26.0, 27.0 and newer)"
)]
pub struct UnsupportedVersion(pub String);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flavours_from_versions() {
        assert_eq!(
            ApiFlavor::from_version_short("24.10.2.4").unwrap(),
            (ApiFlavor::V24_10, false)
        );
        assert_eq!(
            ApiFlavor::from_version_short("25.04.2.6").unwrap(),
            (ApiFlavor::V25_04, false)
        );
        assert_eq!(
            ApiFlavor::from_version_short("25.10.7").unwrap(),
            (ApiFlavor::V25_10, false)
        );
        assert_eq!(
            ApiFlavor::from_version_short("26.0.0").unwrap(),
            (ApiFlavor::V26_0, false)
        );
        assert_eq!(
            ApiFlavor::from_version_short("27.0.0-MASTER-20260822-095245").unwrap(),
            (ApiFlavor::V27_0, false)
        );
        // Between known families, and newer than all of them: the family below, flagged.
        assert_eq!(
            ApiFlavor::from_version_short("26.04.0").unwrap(),
            (ApiFlavor::V26_0, true)
        );
        assert_eq!(
            ApiFlavor::from_version_short("28.0.0").unwrap(),
            (ApiFlavor::V27_0, true)
        );
        assert!(ApiFlavor::from_version_short("+25.10").is_err());
        assert!(ApiFlavor::from_version_short("25").is_err());
        assert!(ApiFlavor::from_version_short("").is_err());
        assert!(ApiFlavor::from_version_short("24.04.2").is_err());
        assert!(ApiFlavor::from_version_short("garbage").is_err());
    }

    #[test]
    fn pre_release_versions_parse() {
        // Release names of pre-release tags (`TS-25.04-BETA.1`, `TS-25.10-RC.1`,
        // `TS-26.0.0-BETA.3`) and of a future release candidate.
        for (version, family) in [
            ("25.04-BETA.1", "25.04"),
            ("25.10-RC.1", "25.10"),
            ("26.0.0-BETA.3", "26.0"),
            ("27.0.0-RC.1", "27.0"),
        ] {
            let (flavor, _) =
                ApiFlavor::from_version_short(version).unwrap_or_else(|e| panic!("{version}: {e}"));
            assert_eq!(flavor.as_str(), family, "{version}");
        }
    }

    #[test]
    fn the_highest_known_served_api_version_is_chosen() {
        // 26.0.0-BETA.3 serves no v25.10.5 (NEWER.md): v26.0.0 is chosen.
        let beta3 = [
            "v25.04.0", "v25.04.1", "v25.04.2", "v25.10.0", "v25.10.1", "v25.10.2", "v25.10.3",
            "v25.10.4", "v26.0.0",
        ];
        assert_eq!(
            choose_api_version(&beta3),
            Some(("v26.0.0", ApiFlavor::V26_0))
        );
        assert_eq!(
            choose_api_version(&["v25.04.0"]),
            Some(("v25.04.0", ApiFlavor::V25_04))
        );
        // A newer box: its own version is unknown, the newest known one it still serves wins.
        assert_eq!(
            choose_api_version(&["v25.10.5", "v26.0.0", "v27.0.0", "v28.0.0"]),
            Some(("v27.0.0", ApiFlavor::V27_0))
        );
        assert_eq!(choose_api_version(&["v30.0.0"]), None);
        assert_eq!(choose_api_version::<&str>(&[]), None);
        // Every family but 24.10 (no versioned API) has a known version.
        for flavor in ApiFlavor::ALL.into_iter().skip(1) {
            assert!(
                KNOWN_API_VERSIONS.iter().any(|(_, f)| *f == flavor),
                "{flavor}"
            );
        }
        assert!(KNOWN_API_VERSIONS.windows(2).all(|w| w[0].1 <= w[1].1));
    }

    proptest::proptest! {
        /// Any `major.minor[.more][-suffix]` parses to its numeric prefix; nothing panics.
        #[test]
        fn release_is_the_numeric_prefix(
            major in 0u32..100,
            minor in 0u32..100,
            more in proptest::collection::vec(0u32..100, 0..3),
            suffix in proptest::option::of("[A-Za-z0-9.-]{0,20}"),
        ) {
            let mut text = format!("{major}.{minor:02}");
            for m in &more {
                text.push('.');
                text.push_str(&m.to_string());
            }
            if let Some(s) = &suffix {
                text.push('-');
                text.push_str(s);
            }
            proptest::prop_assert_eq!(release_of(&text), Some((major, minor)));
        }

        #[test]
        fn release_parsing_is_total(text in ".{0,40}") {
            let _ = release_of(&text);
            let _ = ApiFlavor::from_version_short(&text);
        }
    }
}
