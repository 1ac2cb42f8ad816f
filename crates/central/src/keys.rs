//! Signing key files of the reference server.
//!
//! Owns: generating an Ed25519 key pair and its two files — `signing.key`
//! (`ed25519-private:<base64 of the 32-byte seed>`, mode 0600) and `signing.pub`
//! (`ed25519:<base64>`, the exact line agents put in `central.trusted_keys`) — and
//! reading the private key back after checking the file is private to this user.
//! Does not: sign (see `central::dsse::sign`).
//! Invariants: the private key file is created with mode 0600 and never overwritten
//! unless asked; the seed never appears in an error or log.
//! Limitations: no passphrase protection or HSM; keep the key file on an encrypted disk.

use std::path::{Path, PathBuf};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use ed25519_dalek::SigningKey;
use secrecy::ExposeSecret;

use truenas_agent::central::dsse::TrustedKey;
use truenas_agent::config::{ConfigError, read_secret_file};
use truenas_agent::fault::Fault;
use truenas_agent::fs::{self, FsError};

/// Prefix of the private key file's single line.
pub const PRIVATE_PREFIX: &str = "ed25519-private:";
/// File names written by [`write_keypair`].
pub const PRIVATE_FILE: &str = "signing.key";
pub const PUBLIC_FILE: &str = "signing.pub";

/// A key file operation failed.
#[derive(Debug, thiserror::Error)]
pub enum KeyFileError {
    #[error("{path} exists; refusing to overwrite a signing key (pass --force to replace it)")]
    Exists { path: PathBuf },
    #[error("cannot write the key pair")]
    Write(#[source] FsError),
    #[error("cannot read the signing key")]
    Read(#[source] ConfigError),
    #[error("signing key file {path} must hold one line `{PRIVATE_PREFIX}<base64 of 32 bytes>`")]
    Format { path: PathBuf },
}

impl KeyFileError {
    /// The party that has to act.
    pub fn fault(&self) -> Fault {
        match self {
            KeyFileError::Exists { .. }
            | KeyFileError::Write(_)
            | KeyFileError::Read(_)
            | KeyFileError::Format { .. } => Fault::Operator,
        }
    }
}

/// A new random signing key.
pub fn generate() -> SigningKey {
    SigningKey::generate(&mut rand::rngs::OsRng)
}

/// Writes `signing.key` (0600) and `signing.pub` into `dir` for a new key, returning
/// the public key.
pub fn write_keypair(dir: &Path, force: bool) -> Result<(SigningKey, TrustedKey), KeyFileError> {
    let private = dir.join(PRIVATE_FILE);
    if !force && fs::stamp(&private).map_err(KeyFileError::Write)?.is_some() {
        return Err(KeyFileError::Exists { path: private });
    }
    fs::create_dir_all(dir, 0o700).map_err(KeyFileError::Write)?;
    let key = generate();
    let public = TrustedKey::from_signing_key(&key);
    let line = format!("{PRIVATE_PREFIX}{}\n", STANDARD.encode(key.to_bytes()));
    fs::write_atomic(&private, line.as_bytes(), 0o600).map_err(KeyFileError::Write)?;
    let public_line = format!("{}\n", public.to_config_string());
    fs::write_atomic(&dir.join(PUBLIC_FILE), public_line.as_bytes(), 0o644)
        .map_err(KeyFileError::Write)?;
    Ok((key, public))
}

/// Reads a private key file (which must be owned by this user, mode 0600 or stricter).
pub fn read_signing_key(path: &Path) -> Result<SigningKey, KeyFileError> {
    let text = read_secret_file("--key", path).map_err(KeyFileError::Read)?;
    let format = || KeyFileError::Format {
        path: path.to_owned(),
    };
    let b64 = text
        .expose_secret()
        .strip_prefix(PRIVATE_PREFIX)
        .ok_or_else(format)?;
    let seed: [u8; 32] = STANDARD
        .decode(b64)
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or_else(format)?;
    Ok(SigningKey::from_bytes(&seed))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keypair_round_trip_and_modes() {
        let tmp = tempfile::tempdir().unwrap();
        let (key, public) = write_keypair(tmp.path(), false).unwrap();
        let read = read_signing_key(&tmp.path().join(PRIVATE_FILE)).unwrap();
        assert_eq!(read.to_bytes(), key.to_bytes());
        let pub_line = fs::read_to_string(&tmp.path().join(PUBLIC_FILE)).unwrap();
        assert_eq!(TrustedKey::parse(pub_line.trim()).unwrap(), public);
        let (_, mode) = fs::owner_and_mode(&tmp.path().join(PRIVATE_FILE)).unwrap();
        assert_eq!(mode, 0o600);
        assert!(matches!(
            write_keypair(tmp.path(), false),
            Err(KeyFileError::Exists { .. })
        ));
        let (again, _) = write_keypair(tmp.path(), true).unwrap();
        assert_ne!(again.to_bytes(), key.to_bytes());
    }

    #[test]
    fn bad_key_files() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("k");
        fs::write_atomic(&path, b"ed25519:AAAA\n", 0o600).unwrap();
        assert!(matches!(
            read_signing_key(&path),
            Err(KeyFileError::Format { .. })
        ));
        fs::write_atomic(&path, b"ed25519-private:AAAA\n", 0o644).unwrap();
        let err = read_signing_key(&path).unwrap_err();
        assert!(
            truenas_agent::fault::error_chain(&err).contains("chmod 600"),
            "{err}"
        );
    }
}
