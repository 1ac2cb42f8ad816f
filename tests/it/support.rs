//! Helpers shared by the integration tests.

#![allow(dead_code)]

use std::path::PathBuf;

/// The read-only `shared/` folder (TrueNAS API schemas, VM harness, ...):
/// `$SHARED_DIR`, else `<repo>/../shared`. `None` when absent (CI without it): tests that
/// need it skip with a message, the rest still run.
pub fn shared_dir() -> Option<PathBuf> {
    let dir = std::env::var_os("SHARED_DIR").map_or_else(
        || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared"),
        PathBuf::from,
    );
    dir.join("truenas-api").is_dir().then_some(dir)
}

/// Directory of the TrueNAS API schemas for one release (`24.10`, `25.04`, `25.10`).
pub fn schema_dir(release: &str) -> Option<PathBuf> {
    shared_dir().map(|d| d.join("truenas-api").join(release))
}

/// Canary secret values: tests put these into documents and then scan every output,
/// log line and written file for them.
pub const CANARIES: &[&str] = &[
    "CANARY-B2-APPKEY-7f3a9c",
    "CANARY-ENC-PASSWORD-2b8e41",
    "CANARY-ENC-SALT-9d0c55",
    "CANARY-SNMP-AUTH-61aa07",
    "CANARY-SNMP-PRIV-c4e2f8",
    "CANARY-DEVICE-TOKEN-5e19b3",
    "CANARY-API-KEY-0a7d62",
];

/// Panics naming the canary and where it was found.
pub fn assert_no_canary(label: &str, text: &str) {
    for canary in CANARIES {
        assert!(
            !text.contains(canary),
            "secret canary {canary} leaked into {label}"
        );
    }
}

/// Scans every regular file under `dir` (recursively) for canaries.
pub fn assert_no_canary_in_dir(dir: &std::path::Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            assert_no_canary_in_dir(&path);
        } else if let Ok(bytes) = std::fs::read(&path) {
            assert_no_canary(
                &path.display().to_string(),
                &String::from_utf8_lossy(&bytes),
            );
        }
    }
}
