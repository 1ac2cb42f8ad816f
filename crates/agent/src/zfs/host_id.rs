//! The host identity ZFS itself uses, as TrueNAS exposes it.
//!
//! Owns: [`HostId`] (from `/etc/hostid` or a `system.host_id` answer) and the default
//! location of the host id file.
//! Does not: read the file (the backends do) or decide what the identity is used for.
//! Invariants: a [`HostId`] is always 64 lower-case hex digits, never the raw hostid.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The host identity ZFS uses (`/etc/hostid`: OpenZFS records it in the pool label and
/// warns when a pool was last used by another host), as TrueNAS exposes it:
/// `system.host_id` = lower-case hex SHA-256 of the file's bytes with surrounding ASCII
/// whitespace stripped (`plugins/system/info.py`). Never the raw hostid.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct HostId(String);

impl HostId {
    /// The identity for the contents of `/etc/hostid`; `None` when they are blank.
    pub fn from_hostid_bytes(bytes: &[u8]) -> Option<Self> {
        // Python's bytes.strip() (what the middleware calls) strips b" \t\n\r\x0b\x0c";
        // Rust's trim_ascii() does not strip \x0b, so spell the set out.
        let is_space = |b: &u8| matches!(b, b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c);
        let start = bytes.iter().position(|b| !is_space(b))?;
        let end = bytes.iter().rposition(|b| !is_space(b))?;
        Some(Self(hex::encode(Sha256::digest(&bytes[start..=end]))))
    }

    /// Accepts a `system.host_id` answer (64 hex digits; upper case is folded).
    pub fn parse(hex_digest: &str) -> Option<Self> {
        (hex_digest.len() == 64 && hex_digest.bytes().all(|b| b.is_ascii_hexdigit()))
            .then(|| Self(hex_digest.to_ascii_lowercase()))
    }

    /// The 64-hex form.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// A short form for humans (first 12 hex digits).
    pub fn short(&self) -> &str {
        &self.0[..12]
    }
}

impl std::fmt::Display for HostId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Default location of the host id file.
pub fn default_hostid_file() -> PathBuf {
    PathBuf::from("/etc/hostid")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_id_matches_the_middleware_formula() {
        // The VM's /etc/hostid (bytes 11 8b 52 34, `hostid` = 34528b11) and what
        // `python3 -c "hashlib.sha256(open('/etc/hostid','rb').read().strip())"` printed there.
        let id = HostId::from_hostid_bytes(&[0x11, 0x8b, 0x52, 0x34]).unwrap();
        assert_eq!(
            id.as_str(),
            "8331920580b61d5d662e036c0d22d25554340cb03dac52a08aff8076d3e675bc"
        );
        assert_eq!(id.short(), "8331920580b6");
        // Python strips \x0b too; a hostid byte equal to a whitespace byte at either end
        // is stripped the same way.
        assert_eq!(
            HostId::from_hostid_bytes(&[0x0b, 0x11, 0x8b, 0x52, 0x34, b'\n']),
            Some(id)
        );
        assert_eq!(HostId::from_hostid_bytes(b" \n\x0b"), None);
        assert_eq!(HostId::from_hostid_bytes(b""), None);
    }

    #[test]
    fn host_id_answers_are_checked() {
        let hex = "8331920580B61D5D662E036C0D22D25554340CB03DAC52A08AFF8076D3E675BC";
        assert_eq!(
            HostId::parse(hex).unwrap().as_str(),
            hex.to_ascii_lowercase()
        );
        assert_eq!(HostId::parse("abc"), None);
        assert_eq!(HostId::parse(&"g".repeat(64)), None);
    }
}
