//! TLS for `wss://` middleware connections.
//!
//! Owns: installing the process-wide rustls crypto provider ([`install_crypto_provider`],
//! also for reqwest users), certificate fingerprints ([`CertFingerprint`]), and the rustls
//! client configuration for each way of trusting the box ([`Trust`]): the Mozilla roots
//! (`webpki-roots`) plus an optional extra CA file, or a pinned SHA-256 fingerprint of the
//! server certificate.
//! Does not: open sockets or speak WebSocket (`conn.rs`), or decide whether TLS is needed
//! (`url.rs`).
//! Invariants: verification is never switched off. With a pin, the certificate's identity
//! is its SHA-256 and the handshake signature is still verified with the certificate's
//! key, so a captured certificate cannot be replayed by someone without the private key.
//! Limitations: with a pin, name and expiry are not checked (the pin *is* the identity);
//! pinning the whole certificate means a renewed certificate needs a new pin. System
//! roots are the Mozilla list compiled in (what Debian's ca-certificates ships); a local
//! CA must be given with an extra CA file.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, verify_tls12_signature, verify_tls13_signature};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use sha2::{Digest, Sha256};

use crate::fault::Fault;
use crate::fs::FsError;

/// Installs rustls' `ring` provider as the process default. Idempotent: a provider
/// already installed (by us or anyone else) is kept. Call it before building any
/// rustls or reqwest client.
pub fn install_crypto_provider() {
    // An `Err` only means a default provider is already installed, which is what we want.
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// Setting up TLS failed before any connection was attempted.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// The pin is not 32 bytes of hex.
    #[error(
        "TLS pin is not a SHA-256 fingerprint: expected 64 hex digits (`:` or spaces between bytes allowed), got {got_digits} hex digits"
    )]
    BadPin { got_digits: usize },
    /// Both a pin and a CA file were given.
    #[error(
        "give either a pinned certificate fingerprint or an extra CA file, not both: the pin alone decides trust"
    )]
    PinAndCa,
    /// The CA file could not be read.
    #[error("cannot load the extra CA file")]
    ReadCa(#[source] FsError),
    /// The CA file holds no usable PEM certificate.
    #[error("extra CA file {path} holds no PEM certificate")]
    NoCertInCa { path: PathBuf },
    /// A certificate in the CA file was rejected as a trust anchor.
    #[error("extra CA file {path} holds a certificate rustls cannot use as a trust anchor")]
    BadCa {
        path: PathBuf,
        #[source]
        source: rustls::Error,
    },
    /// rustls refused the configuration (a bug in how we build it).
    #[error("cannot build the TLS client configuration")]
    Config(#[source] rustls::Error),
}

impl TlsError {
    /// Who has to act.
    pub fn fault(&self) -> Fault {
        match self {
            TlsError::BadPin { .. }
            | TlsError::PinAndCa
            | TlsError::ReadCa(_)
            | TlsError::NoCertInCa { .. }
            | TlsError::BadCa { .. } => Fault::Operator,
            TlsError::Config(_) => Fault::Bug,
        }
    }
}

/// SHA-256 of a certificate's DER encoding.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct CertFingerprint([u8; 32]);

impl CertFingerprint {
    /// Fingerprint of a DER certificate.
    pub fn of(der: &[u8]) -> Self {
        Self(Sha256::digest(der).into())
    }

    /// Parses 64 hex digits, optionally separated by `:` or spaces, optionally prefixed by
    /// `sha256:`/`SHA256 Fingerprint=` (what `openssl x509 -fingerprint -sha256` prints).
    pub fn parse(text: &str) -> Result<Self, TlsError> {
        let text = text.trim();
        let body = [
            "SHA256 Fingerprint=",
            "sha256 Fingerprint=",
            "sha256:",
            "SHA256:",
        ]
        .iter()
        .find_map(|p| text.strip_prefix(p))
        .unwrap_or(text);
        let digits: String = body.chars().filter(|c| !matches!(c, ':' | ' ')).collect();
        let bad = || TlsError::BadPin {
            got_digits: digits.chars().filter(char::is_ascii_hexdigit).count(),
        };
        let bytes = hex::decode(&digits).map_err(|_| bad())?;
        bytes.try_into().map(Self).map_err(|_| bad())
    }
}

impl fmt::Display for CertFingerprint {
    /// Upper-case hex with `:` between bytes, as `openssl x509 -fingerprint -sha256` shows.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, byte) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(":")?;
            }
            write!(f, "{byte:02X}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for CertFingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CertFingerprint({self})")
    }
}

/// How the server certificate is trusted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Trust {
    /// Mozilla roots plus an optional extra CA (PEM file); name and expiry are checked.
    Roots { extra_ca: Option<PathBuf> },
    /// Exactly this certificate (its SHA-256), whatever its name or issuer.
    Pinned(CertFingerprint),
}

impl Trust {
    /// Builds the trust setting from the user's options.
    pub fn from_options(ca_file: Option<&Path>, pin: Option<&str>) -> Result<Self, TlsError> {
        match (ca_file, pin) {
            (Some(_), Some(_)) => Err(TlsError::PinAndCa),
            (_, Some(pin)) => CertFingerprint::parse(pin).map(Trust::Pinned),
            (ca, None) => Ok(Trust::Roots {
                extra_ca: ca.map(Path::to_owned),
            }),
        }
    }
}

/// A rustls client configuration, and for a pin, where a mismatching certificate's
/// fingerprint is recorded so the error can show both fingerprints.
#[derive(Debug, Clone)]
pub struct TlsSetup {
    /// The rustls configuration to hand to the TLS connector.
    pub config: Arc<ClientConfig>,
    pin: Option<Arc<PinnedVerifier>>,
}

impl TlsSetup {
    /// Builds the configuration. Reads the CA file, if any, now.
    pub fn new(trust: &Trust) -> Result<Self, TlsError> {
        install_crypto_provider();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(TlsError::Config)?;
        match trust {
            Trust::Roots { extra_ca } => {
                let roots = root_store(extra_ca.as_deref())?;
                let verifier =
                    WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider)
                        .build()
                        .map_err(|e| TlsError::Config(rustls::Error::General(e.to_string())))?;
                let config = builder.with_webpki_verifier(verifier).with_no_client_auth();
                Ok(Self {
                    config: Arc::new(config),
                    pin: None,
                })
            }
            Trust::Pinned(expected) => {
                let verifier = Arc::new(PinnedVerifier {
                    expected: *expected,
                    provider,
                    mismatch: Mutex::new(None),
                });
                let config = builder
                    .dangerous()
                    .with_custom_certificate_verifier(verifier.clone())
                    .with_no_client_auth();
                Ok(Self {
                    config: Arc::new(config),
                    pin: Some(verifier),
                })
            }
        }
    }

    /// After a failed handshake: `(expected, presented)` when the server presented a
    /// certificate that does not match the pin.
    pub fn pin_mismatch(&self) -> Option<(CertFingerprint, CertFingerprint)> {
        let pin = self.pin.as_ref()?;
        let seen = *pin
            .mismatch
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        seen.map(|presented| (pin.expected, presented))
    }
}

fn root_store(extra_ca: Option<&Path>) -> Result<RootCertStore, TlsError> {
    let mut roots = RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    let Some(path) = extra_ca else {
        return Ok(roots);
    };
    let pem = crate::fs::read(path).map_err(TlsError::ReadCa)?;
    let mut added = 0;
    for cert in CertificateDer::pem_slice_iter(&pem) {
        // A PEM section that is not a certificate (a key, garbage) is skipped; only
        // certificates are trust anchors. `NoCertInCa` below catches a file with none.
        let Ok(cert) = cert else { continue };
        roots.add(cert).map_err(|source| TlsError::BadCa {
            path: path.to_owned(),
            source,
        })?;
        added += 1;
    }
    if added == 0 {
        return Err(TlsError::NoCertInCa {
            path: path.to_owned(),
        });
    }
    Ok(roots)
}

/// Trusts exactly one certificate, by SHA-256, and still verifies the handshake signature.
#[derive(Debug)]
struct PinnedVerifier {
    expected: CertFingerprint,
    provider: Arc<CryptoProvider>,
    /// The fingerprint of the last certificate that did not match.
    mismatch: Mutex<Option<CertFingerprint>>,
}

/// The error rustls reports for a certificate that does not match the pin.
#[derive(Debug, thiserror::Error)]
#[error("server certificate SHA-256 {presented} does not match the pinned {expected}")]
struct PinMismatch {
    expected: CertFingerprint,
    presented: CertFingerprint,
}

impl ServerCertVerifier for PinnedVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let presented = CertFingerprint::of(end_entity.as_ref());
        if presented == self.expected {
            return Ok(ServerCertVerified::assertion());
        }
        *self
            .mismatch
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(presented);
        Err(rustls::Error::InvalidCertificate(
            rustls::CertificateError::Other(rustls::OtherError(Arc::new(PinMismatch {
                expected: self.expected,
                presented,
            }))),
        ))
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEX: &str = "9c03a1b2c3d4e5f60718293a4b5c6d7e8f9001122334455667788990aabbccdd";

    #[test]
    fn fingerprint_formats() {
        let plain = CertFingerprint::parse(HEX).unwrap();
        let shown = plain.to_string();
        assert_eq!(shown.len(), 32 * 3 - 1);
        assert!(shown.starts_with("9C:03:A1"));
        assert_eq!(CertFingerprint::parse(&shown).unwrap(), plain);
        assert_eq!(
            CertFingerprint::parse(&format!("SHA256 Fingerprint={shown}")).unwrap(),
            plain
        );
        assert_eq!(
            CertFingerprint::parse(&format!("sha256:{HEX}\n")).unwrap(),
            plain
        );
    }

    #[test]
    fn bad_pins_say_what_is_wrong() {
        for pin in ["", "abcd", &HEX[..62], &format!("{HEX}00"), "zz"] {
            let err = CertFingerprint::parse(pin).unwrap_err();
            assert!(err.to_string().contains("64 hex digits"), "{pin}: {err}");
            assert_eq!(err.fault(), Fault::Operator);
        }
    }

    #[test]
    fn pin_and_ca_together_are_refused() {
        assert!(matches!(
            Trust::from_options(Some(Path::new("/x.pem")), Some(HEX)),
            Err(TlsError::PinAndCa)
        ));
        assert_eq!(
            Trust::from_options(None, None).unwrap(),
            Trust::Roots { extra_ca: None }
        );
    }

    #[test]
    fn builds_each_configuration() {
        TlsSetup::new(&Trust::Roots { extra_ca: None }).unwrap();
        let pinned = TlsSetup::new(&Trust::Pinned(CertFingerprint::parse(HEX).unwrap())).unwrap();
        assert!(pinned.pin_mismatch().is_none());
    }

    #[test]
    fn ca_file_problems_name_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing.pem");
        let err = TlsSetup::new(&Trust::Roots {
            extra_ca: Some(missing.clone()),
        })
        .unwrap_err();
        assert!(matches!(err, TlsError::ReadCa(ref e) if e.path() == missing));

        let empty = dir.path().join("empty.pem");
        crate::fs::write_atomic(&empty, b"not a pem\n", 0o600).unwrap();
        let err = TlsSetup::new(&Trust::Roots {
            extra_ca: Some(empty.clone()),
        })
        .unwrap_err();
        assert!(err.to_string().contains("empty.pem"), "{err}");
    }
}
