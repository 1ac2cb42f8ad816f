//! Loading a desired-state document given on the command line (`-f DOC`), one rule for
//! `plan`, `apply`, `verify` and `status`.
//!
//! Owns: the document options of `plan`, `apply` and `verify` ([`DocumentArgs`]) and the
//! decision "is this local file acceptable?".
//! Does not: fetch from central (the daemon does, through `central`), print anything.
//! Invariants: a document is accepted when (a) it is a DSSE envelope that a key from
//!   `[central] trusted_keys` verifies, or (b) unsigned input is allowed — by the
//!   `--allow-unsigned` flag or `allow_unsigned = true` in the config — in which case it is
//!   read without verification (a plain document or an envelope's payload). The explicit
//!   flag wins over configured keys: the technician running the command is root on the box
//!   and asked for it; the daemon never has such a flag. Errors never echo document values;
//!   an accepted document's secrets are registered with [`crate::scrub`].

use std::path::{Path, PathBuf};

use crate::central::dsse::{self, DsseError};
use crate::config::AgentConfig;
use crate::desired::{self, DesiredError, DesiredState, FieldError};

/// The options of a command run on one document (`plan`, `apply`, `verify`).
#[derive(Debug, Clone, clap::Args)]
pub struct DocumentArgs {
    /// The desired-state document (plain JSON or a DSSE envelope).
    #[arg(short = 'f', long = "file", value_name = "DOC")]
    pub file: PathBuf,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
    /// Accept a local document without a verified signature (tests, lab boxes).
    #[arg(long)]
    pub allow_unsigned: bool,
}

/// Why a local document was not accepted.
#[derive(Debug, thiserror::Error)]
pub(crate) enum LoadError {
    /// Trusted keys are configured and the file is not an envelope they verify.
    #[error(
        "the document is not signed by a trusted key (pass --allow-unsigned to accept a local, unverified document)"
    )]
    Signature(#[source] DsseError),
    /// The document itself was refused (syntax, unknown keys, rule violations, unreadable).
    #[error(transparent)]
    Document(#[from] DesiredError),
}

impl LoadError {
    /// Every field problem, for listing (empty when the cause is not field-specific).
    pub(crate) fn field_errors(&self) -> Vec<FieldError> {
        match self {
            LoadError::Signature(_) => Vec::new(),
            LoadError::Document(err) => err.field_errors(),
        }
    }

    /// One line: every field problem (`; `-separated), else the cause.
    pub(crate) fn summary(&self) -> String {
        let fields = self.field_errors();
        if fields.is_empty() {
            return crate::fault::error_chain(self);
        }
        let lines: Vec<String> = fields.iter().map(ToString::to_string).collect();
        lines.join("; ")
    }
}

/// Whether the accepted document's signature was checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Trust {
    /// A trusted key verified the envelope.
    Verified,
    /// Accepted without verification because unsigned input was allowed.
    Unverified,
}

/// Loads and validates a local document under the rule in the module doc.
pub(crate) fn load(
    path: &Path,
    allow_unsigned_flag: bool,
    config: &AgentConfig,
) -> Result<(DesiredState, Trust), LoadError> {
    let trust = config.central.as_ref().map(|c| &c.trust);
    let allow_unsigned = allow_unsigned_flag || trust.is_some_and(|t| t.allow_unsigned);
    if let Some(policy) = trust.filter(|t| !t.keys.is_empty()) {
        let bytes = crate::fs::read(path).map_err(DesiredError::Read)?;
        match dsse::open(&bytes, dsse::CONFIG_PAYLOAD_TYPE, policy) {
            Ok((payload, _)) => {
                return Ok((remembered(desired::parse(&payload)?), Trust::Verified));
            }
            Err(err) if !allow_unsigned => return Err(LoadError::Signature(err)),
            Err(err) => tracing::warn!(
                reason = %err,
                "document signature not verified; accepted because unsigned input is allowed"
            ),
        }
    }
    let state = desired::load_file(path, allow_unsigned)?;
    Ok((remembered(state), Trust::Unverified))
}

/// Registers the document's secrets with the process-wide scrubber: nothing this
/// command prints (or logs) afterwards can show them.
fn remembered(state: DesiredState) -> DesiredState {
    crate::scrub::remember_all(state.secrets());
    state
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::central::dsse::TrustedKey;
    use ed25519_dalek::SigningKey;

    const EXAMPLE: &str = include_str!("../../../../tests/data/desired/example.json");

    fn config_trusting(key: Option<&SigningKey>) -> AgentConfig {
        let keys = key.map_or_else(String::new, |k| {
            format!(
                "trusted_keys = [\"{}\"]\n",
                TrustedKey::from_signing_key(k).to_config_string()
            )
        });
        let toml = format!(
            "[central]\nurl = \"https://central.example.net\"\ntoken_file = \"/nonexistent/token\"\n{keys}"
        );
        AgentConfig::parse(&toml, "agent.toml").unwrap()
    }

    fn write(dir: &Path, name: &str, bytes: &[u8]) -> std::path::PathBuf {
        let path = dir.join(name);
        crate::fs::write_atomic(&path, bytes, 0o600).unwrap();
        path
    }

    #[test]
    fn one_rule_for_local_documents() {
        let dir = tempfile::tempdir().unwrap();
        let trusted = SigningKey::from_bytes(&[7u8; 32]);
        let foreign = SigningKey::from_bytes(&[9u8; 32]);
        let plain = write(dir.path(), "plain.json", EXAMPLE.as_bytes());
        let signed = |key: &SigningKey| {
            dsse::sign(dsse::CONFIG_PAYLOAD_TYPE, EXAMPLE.as_bytes(), key, None).to_json()
        };
        let good = write(dir.path(), "good.json", &signed(&trusted));
        let bad = write(dir.path(), "bad.json", &signed(&foreign));
        let with_keys = config_trusting(Some(&trusted));
        let without_keys = config_trusting(None);

        // Keys configured: a verified envelope is accepted as verified…
        let (_, trust) = load(&good, false, &with_keys).unwrap();
        assert_eq!(trust, Trust::Verified);
        // …anything else is refused unless the technician allows unsigned input.
        assert!(matches!(
            load(&bad, false, &with_keys),
            Err(LoadError::Signature(_))
        ));
        assert!(matches!(
            load(&plain, false, &with_keys),
            Err(LoadError::Signature(_))
        ));
        assert_eq!(load(&bad, true, &with_keys).unwrap().1, Trust::Unverified);
        assert_eq!(load(&plain, true, &with_keys).unwrap().1, Trust::Unverified);
        // No keys: unsigned input needs the flag.
        assert!(matches!(
            load(&plain, false, &without_keys),
            Err(LoadError::Document(DesiredError::Unverified))
        ));
        assert_eq!(
            load(&good, true, &without_keys).unwrap().1,
            Trust::Unverified
        );
    }

    #[test]
    fn invalid_documents_list_their_fields_even_when_signed() {
        let dir = tempfile::tempdir().unwrap();
        let key = SigningKey::from_bytes(&[7u8; 32]);
        let payload = EXAMPLE.replace("\"revision\"", "\"revison\"");
        let envelope = dsse::sign(dsse::CONFIG_PAYLOAD_TYPE, payload.as_bytes(), &key, None);
        let path = write(dir.path(), "typo.json", &envelope.to_json());
        let err = load(&path, false, &config_trusting(Some(&key))).unwrap_err();
        assert!(!err.field_errors().is_empty(), "{err}");
    }
}
