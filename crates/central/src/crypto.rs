//! Secrets at rest on central: XChaCha20-Poly1305 sealing of the data directory's files
//! that hold secrets (device documents, provisioning secrets).
//!
//! Owns: the at-rest key file (`xchacha20poly1305:<base64 of 32 random bytes>`, one
//! line, mode 0600, never overwritten), its key id (first 16 hex digits of SHA-256 of
//! the key), and the sealed file format: a small JSON object
//! `{"sealed": "truenas-central.sealed/v1", "alg": "XChaCha20-Poly1305", "key_id",
//! "purpose", "meta", "nonce", "ciphertext"}` whose `ciphertext` is the AEAD output over
//! the plaintext with a fresh random 24-byte nonce, and whose associated data binds the
//! format, key id, `purpose` (e.g. `devices/nas-01/config.json`) and `meta` — so a file
//! moved to another device's place, or with edited metadata, does not open.
//! Does not: decide which files are sealed or where the key lives (`store`), or keep any
//! plaintext on disk.
//! Invariants: every seal uses a new nonce from the OS CSPRNG; a sealed file opens only
//! under the key that sealed it and only for its purpose; no error text contains key
//! material or plaintext; `meta` is authenticated but **not** secret (it holds only
//! non-secret values such as a document's revision, readable without the key).
//! Limitations: no key rotation for the at-rest key (re-seal by hand: decrypt with the
//! old key, seal with the new); the key is a plain file — keep it on other storage than
//! the data directory's backups.

use std::path::{Path, PathBuf};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use chacha20poly1305::aead::{Aead as _, KeyInit as _, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use rand::RngCore as _;
use secrecy::{ExposeSecret as _, SecretBox};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest as _, Sha256};

use truenas_agent::config::{ConfigError, read_secret_file};
use truenas_agent::fault::Fault;
use truenas_agent::fs::{self, FsError};

/// Prefix of the key file's single line.
pub const KEY_PREFIX: &str = "xchacha20poly1305:";
/// The `sealed` tag of format v1.
pub const SEALED_V1: &str = "truenas-central.sealed/v1";
const ALG: &str = "XChaCha20-Poly1305";

/// An at-rest key problem, or a sealed file that does not open.
#[derive(Debug, thiserror::Error)]
pub enum CryptoError {
    #[error("cannot read the at-rest key file")]
    Read(#[source] ConfigError),
    #[error("at-rest key file {path} must hold one line `{KEY_PREFIX}<base64 of 32 bytes>`")]
    Format { path: PathBuf },
    #[error(
        "{path} exists; refusing to overwrite an at-rest key (the data sealed with it would be lost)"
    )]
    Exists { path: PathBuf },
    #[error("cannot write the at-rest key file")]
    Write(#[source] FsError),
    #[error("{purpose} is not a sealed file of a known format: {rule}")]
    Malformed { purpose: String, rule: &'static str },
    #[error(
        "{purpose} was sealed with at-rest key {found}, but the key in use is {expected}: \
         give the data directory its own key file"
    )]
    WrongKey {
        purpose: String,
        found: String,
        expected: String,
    },
    #[error(
        "{purpose} does not open with the at-rest key: it was modified, or moved from \
         another place (its contents are bound to where it belongs)"
    )]
    Tampered { purpose: String },
}

impl CryptoError {
    /// Who has to act.
    pub fn fault(&self) -> Fault {
        match self {
            CryptoError::Read(_)
            | CryptoError::Format { .. }
            | CryptoError::Exists { .. }
            | CryptoError::WrongKey { .. } => Fault::Operator,
            CryptoError::Write(_)
            | CryptoError::Malformed { .. }
            | CryptoError::Tampered { .. } => Fault::Central,
        }
    }
}

/// The at-rest key (32 bytes), never shown.
pub struct AtRestKey {
    key: SecretBox<[u8; 32]>,
    id: String,
}

impl std::fmt::Debug for AtRestKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AtRestKey")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

impl AtRestKey {
    fn from_bytes(bytes: [u8; 32]) -> Self {
        let id = hex::encode(&Sha256::digest(bytes)[..8]);
        Self {
            key: SecretBox::new(Box::new(bytes)),
            id,
        }
    }

    /// A new key from the OS CSPRNG.
    pub fn generate() -> Self {
        let mut bytes = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut bytes);
        Self::from_bytes(bytes)
    }

    /// The key id: first 16 hex digits of SHA-256 of the key (not secret).
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Reads a key file, which must be owned by this user and private (mode 0600 or
    /// stricter).
    pub fn read(path: &Path) -> Result<Self, CryptoError> {
        let text = read_secret_file("at-rest key", path).map_err(CryptoError::Read)?;
        let format = || CryptoError::Format {
            path: path.to_owned(),
        };
        let b64 = text
            .expose_secret()
            .strip_prefix(KEY_PREFIX)
            .ok_or_else(format)?;
        let bytes: [u8; 32] = STANDARD
            .decode(b64)
            .ok()
            .and_then(|b| b.try_into().ok())
            .ok_or_else(format)?;
        Ok(Self::from_bytes(bytes))
    }

    /// Creates a new key file (mode 0600); refuses to replace an existing one.
    pub fn create(path: &Path) -> Result<Self, CryptoError> {
        if fs::stamp(path).map_err(CryptoError::Write)?.is_some() {
            return Err(CryptoError::Exists {
                path: path.to_owned(),
            });
        }
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            fs::create_dir_all(parent, 0o700).map_err(CryptoError::Write)?;
        }
        let key = Self::generate();
        let line = zeroize_on_drop(format!(
            "{KEY_PREFIX}{}\n",
            STANDARD.encode(key.key.expose_secret())
        ));
        fs::write_atomic(path, line.expose_secret().as_bytes(), 0o600)
            .map_err(CryptoError::Write)?;
        Ok(key)
    }

    /// Seals `plaintext` for `purpose`, with non-secret `meta` bound to it.
    pub fn seal(&self, purpose: &str, meta: &Value, plaintext: &[u8]) -> Vec<u8> {
        let mut nonce = [0u8; 24];
        rand::rngs::OsRng.fill_bytes(&mut nonce);
        let aad = associated_data(&self.id, purpose, meta);
        let cipher = XChaCha20Poly1305::new(self.key.expose_secret().into());
        #[allow(
            clippy::expect_used,
            reason = "invariant: XChaCha20-Poly1305 encryption fails only for inputs over 256 GiB"
        )]
        let ciphertext = cipher
            .encrypt(
                XNonce::from_slice(&nonce),
                Payload {
                    msg: plaintext,
                    aad: &aad,
                },
            )
            .expect("invariant: plaintexts here are small");
        let sealed = Sealed {
            sealed: SEALED_V1.to_owned(),
            alg: ALG.to_owned(),
            key_id: self.id.clone(),
            purpose: purpose.to_owned(),
            meta: meta.clone(),
            nonce: STANDARD.encode(nonce),
            ciphertext: STANDARD.encode(ciphertext),
        };
        #[allow(
            clippy::expect_used,
            reason = "invariant: plain data always serialises"
        )]
        let mut bytes = serde_json::to_vec_pretty(&sealed).expect("invariant: serialises");
        bytes.push(b'\n');
        bytes
    }

    /// Opens a sealed file written for `purpose`: its plaintext (kept secret) and meta.
    pub fn open(
        &self,
        purpose: &str,
        bytes: &[u8],
    ) -> Result<(SecretBox<Vec<u8>>, Value), CryptoError> {
        let sealed = parse_sealed(purpose, bytes)?;
        if sealed.key_id != self.id {
            return Err(CryptoError::WrongKey {
                purpose: purpose.to_owned(),
                found: sealed.key_id,
                expected: self.id.clone(),
            });
        }
        let malformed = |rule| CryptoError::Malformed {
            purpose: purpose.to_owned(),
            rule,
        };
        let nonce = STANDARD
            .decode(&sealed.nonce)
            .ok()
            .filter(|n| n.len() == 24)
            .ok_or_else(|| malformed("`nonce` is not 24 bytes of base64"))?;
        let ciphertext = STANDARD
            .decode(&sealed.ciphertext)
            .map_err(|_| malformed("`ciphertext` is not base64"))?;
        // The purpose in the file must be the one asked for, and the AAD binds it again.
        let aad = associated_data(&self.id, purpose, &sealed.meta);
        let cipher = XChaCha20Poly1305::new(self.key.expose_secret().into());
        let plaintext = cipher
            .decrypt(
                XNonce::from_slice(&nonce),
                Payload {
                    msg: &ciphertext,
                    aad: &aad,
                },
            )
            .map_err(|_| CryptoError::Tampered {
                purpose: purpose.to_owned(),
            })?;
        Ok((SecretBox::new(Box::new(plaintext)), sealed.meta))
    }
}

fn zeroize_on_drop(text: String) -> secrecy::SecretString {
    secrecy::SecretString::from(text)
}

/// The sealed file's JSON form.
#[allow(
    clippy::struct_field_names,
    reason = "`sealed` is the format's tag key"
)]
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Sealed {
    sealed: String,
    alg: String,
    key_id: String,
    purpose: String,
    #[serde(default)]
    meta: Value,
    nonce: String,
    ciphertext: String,
}

fn parse_sealed(purpose: &str, bytes: &[u8]) -> Result<Sealed, CryptoError> {
    let malformed = |rule| CryptoError::Malformed {
        purpose: purpose.to_owned(),
        rule,
    };
    let sealed: Sealed =
        serde_json::from_slice(bytes).map_err(|_| malformed("not a sealed-file JSON object"))?;
    if sealed.sealed != SEALED_V1 || sealed.alg != ALG {
        return Err(malformed("unknown `sealed` format or `alg`"));
    }
    Ok(sealed)
}

/// The associated data: format, key id, purpose and meta, length-prefixed.
fn associated_data(key_id: &str, purpose: &str, meta: &Value) -> Vec<u8> {
    let meta = meta.to_string();
    let mut aad = Vec::new();
    for part in [SEALED_V1, key_id, purpose, meta.as_str()] {
        aad.extend_from_slice(&(part.len() as u64).to_be_bytes());
        aad.extend_from_slice(part.as_bytes());
    }
    aad
}

/// True when `bytes` look like a sealed file (any version): the `sealed` key is present.
pub fn is_sealed(bytes: &[u8]) -> bool {
    #[derive(Deserialize)]
    struct Tag {
        sealed: Option<String>,
    }
    serde_json::from_slice::<Tag>(bytes).is_ok_and(|t| t.sealed.is_some())
}

/// The non-secret `meta` of a sealed file, read **without** the key (authenticated only
/// when the file is opened).
pub fn peek_meta(purpose: &str, bytes: &[u8]) -> Result<Value, CryptoError> {
    Ok(parse_sealed(purpose, bytes)?.meta)
}

/// The key id a sealed file names, read without the key.
pub fn peek_key_id(purpose: &str, bytes: &[u8]) -> Result<String, CryptoError> {
    Ok(parse_sealed(purpose, bytes)?.key_id)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn seal_open_round_trip_and_bindings() {
        let key = AtRestKey::generate();
        let meta = json!({"revision": 7});
        let sealed = key.seal(
            "devices/a/config.json",
            &meta,
            b"{\"secret\":\"canary-123\"}",
        );
        let text = String::from_utf8(sealed.clone()).unwrap();
        assert!(!text.contains("canary-123"), "{text}");
        assert!(is_sealed(&sealed));
        assert!(!is_sealed(b"{\"schema\":\"x\"}"));
        assert_eq!(peek_meta("devices/a/config.json", &sealed).unwrap(), meta);
        let (plain, got_meta) = key.open("devices/a/config.json", &sealed).unwrap();
        assert_eq!(
            plain.expose_secret().as_slice(),
            b"{\"secret\":\"canary-123\"}"
        );
        assert_eq!(got_meta, meta);
        // Another place: refused.
        assert!(matches!(
            key.open("devices/b/config.json", &sealed),
            Err(CryptoError::Tampered { .. })
        ));
        // Edited meta: refused.
        let edited = text.replace("\"revision\": 7", "\"revision\": 9");
        assert_ne!(edited, text);
        assert!(matches!(
            key.open("devices/a/config.json", edited.as_bytes()),
            Err(CryptoError::Tampered { .. })
        ));
        // Another key: named.
        let other = AtRestKey::generate();
        assert!(matches!(
            other.open("devices/a/config.json", &sealed),
            Err(CryptoError::WrongKey { .. })
        ));
        // Same plaintext twice: different nonces, different ciphertexts.
        let again = key.seal(
            "devices/a/config.json",
            &meta,
            b"{\"secret\":\"canary-123\"}",
        );
        assert_ne!(again, sealed);
    }

    #[test]
    fn key_file_is_private_and_never_replaced() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("keys/secrets.key");
        let key = AtRestKey::create(&path).unwrap();
        let (_, mode) = fs::owner_and_mode(&path).unwrap();
        assert_eq!(mode, 0o600);
        let read = AtRestKey::read(&path).unwrap();
        assert_eq!(read.id(), key.id());
        assert!(matches!(
            AtRestKey::create(&path),
            Err(CryptoError::Exists { .. })
        ));
        assert!(!format!("{key:?}").contains(&STANDARD.encode(key.key.expose_secret())));
        fs::set_mode(&path, 0o644).unwrap();
        assert!(matches!(AtRestKey::read(&path), Err(CryptoError::Read(_))));
    }
}
