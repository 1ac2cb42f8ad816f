//! DSSE envelopes signed with Ed25519: parse, verify, sign.
//!
//! Owns: the envelope wire format (`payloadType`, `payload`, `signatures[{keyid, sig}]`),
//! the pre-authentication encoding (PAE), trusted-key parsing (`ed25519:<base64>`),
//! verification against a trusted key list and the signing helper used by the reference
//! server and the tests.
//! Does not: look inside the payload (revision checks live in `central::fetch`, the
//! document itself belongs to `desired`), fetch anything, or read key files.
//! Invariants: [`parse_envelope`] and [`verify`] are pure and total over arbitrary bytes
//! (never panic; fuzzed and property-tested); an envelope is accepted only when its
//! `payloadType` equals the expected one AND at least one signature verifies (strict
//! Ed25519, `verify_strict`) under a trusted key over `PAE(payloadType, payload)`;
//! error texts never echo the payload.
//! Limitations: Ed25519 only; `keyid` is informative (every trusted key is tried against
//! every signature, so a wrong or missing keyid never makes a valid signature fail).

use base64::Engine as _;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig, STANDARD};
use base64::engine::{DecodePaddingMode, general_purpose};
use ed25519_dalek::{Signature, Signer as _, SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

/// The payload type of a desired-state document (contract §2).
pub const CONFIG_PAYLOAD_TYPE: &str = "application/vnd.truenas-agent.config.v1+json";

/// Prefix of a trusted key in the agent's config.
pub const KEY_PREFIX: &str = "ed25519:";

/// Largest number of signatures looked at (a hostile envelope cannot make us verify
/// thousands of signatures).
pub const MAX_SIGNATURES: usize = 16;

// DSSE allows standard or URL-safe base64 on input; padding is optional in practice.
const LENIENT: GeneralPurposeConfig =
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent);
const STANDARD_LENIENT: GeneralPurpose = GeneralPurpose::new(&base64::alphabet::STANDARD, LENIENT);
const URL_SAFE_LENIENT: GeneralPurpose = GeneralPurpose::new(&base64::alphabet::URL_SAFE, LENIENT);

/// Why an envelope was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DsseError {
    #[error("document envelope is not a DSSE envelope: {detail}")]
    Malformed { detail: String },
    #[error("document envelope field `{field}` is not valid base64")]
    BadBase64 { field: &'static str },
    #[error("document envelope has payloadType `{actual}`, expected `{expected}`")]
    WrongPayloadType { expected: String, actual: String },
    #[error("document envelope has no signature")]
    NoSignatures,
    #[error("document envelope has {count} signatures (at most {MAX_SIGNATURES} are accepted)")]
    TooManySignatures { count: usize },
    #[error(
        "no signature on the document verifies under a trusted key ({signatures} signature(s), {keys} trusted key(s))"
    )]
    SignatureInvalid { signatures: usize, keys: usize },
    #[error("no trusted signing key is configured and `allow_unsigned` is not set")]
    NoTrustedKeys,
}

impl DsseError {
    /// The party that has to act.
    pub fn fault(&self) -> crate::fault::Fault {
        use crate::fault::Fault;
        match self {
            DsseError::Malformed { .. }
            | DsseError::BadBase64 { .. }
            | DsseError::WrongPayloadType { .. }
            | DsseError::NoSignatures
            | DsseError::TooManySignatures { .. }
            | DsseError::SignatureInvalid { .. } => Fault::Central,
            DsseError::NoTrustedKeys => Fault::Operator,
        }
    }
}

/// A trusted key could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error("must start with `{KEY_PREFIX}`")]
    MissingPrefix,
    #[error("is not valid standard base64 after `{KEY_PREFIX}`")]
    BadBase64,
    #[error("must encode exactly 32 bytes (got {len})")]
    WrongLength { len: usize },
    #[error("is not a valid Ed25519 public key")]
    NotAPoint,
}

/// An Ed25519 public key the agent trusts to sign documents.
#[derive(Clone, PartialEq, Eq)]
pub struct TrustedKey {
    key: VerifyingKey,
}

impl TrustedKey {
    /// Parses `ed25519:<standard base64 of the 32-byte key>`.
    pub fn parse(text: &str) -> Result<Self, KeyError> {
        let b64 = text
            .trim()
            .strip_prefix(KEY_PREFIX)
            .ok_or(KeyError::MissingPrefix)?;
        let bytes = STANDARD_LENIENT
            .decode(b64)
            .map_err(|_| KeyError::BadBase64)?;
        let array: [u8; 32] = bytes
            .as_slice()
            .try_into()
            .map_err(|_| KeyError::WrongLength { len: bytes.len() })?;
        let key = VerifyingKey::from_bytes(&array).map_err(|_| KeyError::NotAPoint)?;
        Ok(Self { key })
    }

    /// The key of a signing key pair.
    pub fn from_signing_key(key: &SigningKey) -> Self {
        Self {
            key: key.verifying_key(),
        }
    }

    /// `ed25519:<base64>`, the form the config file uses.
    pub fn to_config_string(&self) -> String {
        format!("{KEY_PREFIX}{}", STANDARD.encode(self.key.as_bytes()))
    }

    /// A short stable id: the first 16 hex digits of SHA-256 of the raw key. Used as the
    /// default `keyid` when signing and to name keys in logs.
    pub fn key_id(&self) -> String {
        let digest = Sha256::digest(self.key.as_bytes());
        hex::encode(&digest[..8])
    }
}

impl std::fmt::Debug for TrustedKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "TrustedKey({})", self.key_id())
    }
}

impl std::fmt::Display for TrustedKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.to_config_string())
    }
}

/// A decoded DSSE envelope.
#[derive(Clone, PartialEq, Eq)]
pub struct Envelope {
    pub payload_type: String,
    /// The raw payload bytes (already base64-decoded). May hold secrets: never logged.
    pub payload: Vec<u8>,
    pub signatures: Vec<EnvelopeSignature>,
}

impl std::fmt::Debug for Envelope {
    // The payload is a desired-state document with secrets in it.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Envelope")
            .field("payload_type", &self.payload_type)
            .field(
                "payload",
                &format_args!("[{} bytes redacted]", self.payload.len()),
            )
            .field("signatures", &self.signatures)
            .finish()
    }
}

/// One signature of an envelope.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvelopeSignature {
    /// Free text naming the key (informative only).
    pub keyid: String,
    /// The raw signature bytes (64 for Ed25519; other lengths simply never verify).
    pub sig: Vec<u8>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct WireEnvelope {
    #[serde(rename = "payloadType")]
    payload_type: String,
    payload: String,
    signatures: Vec<WireSignature>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct WireSignature {
    #[serde(default)]
    keyid: String,
    sig: String,
}

/// The DSSE pre-authentication encoding:
/// `"DSSEv1" SP len(type) SP type SP len(body) SP body`, lengths in ASCII decimal.
pub fn pae(payload_type: &str, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload.len() + payload_type.len() + 32);
    out.extend_from_slice(b"DSSEv1 ");
    out.extend_from_slice(payload_type.len().to_string().as_bytes());
    out.push(b' ');
    out.extend_from_slice(payload_type.as_bytes());
    out.push(b' ');
    out.extend_from_slice(payload.len().to_string().as_bytes());
    out.push(b' ');
    out.extend_from_slice(payload);
    out
}

/// Parses an envelope from JSON bytes. Pure and total: never panics on any input.
pub fn parse_envelope(bytes: &[u8]) -> Result<Envelope, DsseError> {
    let wire: WireEnvelope = serde_json::from_slice(bytes).map_err(|e| DsseError::Malformed {
        // serde_json's messages name the field and position, never the payload value.
        detail: describe_json_error(&e),
    })?;
    let payload = decode_b64(&wire.payload).ok_or(DsseError::BadBase64 { field: "payload" })?;
    let signatures = wire
        .signatures
        .into_iter()
        .map(|s| {
            let sig = decode_b64(&s.sig).ok_or(DsseError::BadBase64 {
                field: "signatures[].sig",
            })?;
            Ok(EnvelopeSignature {
                keyid: s.keyid,
                sig,
            })
        })
        .collect::<Result<Vec<_>, DsseError>>()?;
    Ok(Envelope {
        payload_type: wire.payload_type,
        payload,
        signatures,
    })
}

/// Which key verified an envelope.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verification {
    /// A signature verified under this trusted key.
    Signed { key_id: String },
    /// Accepted without checking signatures (`allow_unsigned = true`, no trusted keys).
    Unsigned,
}

/// Verification policy: the trusted keys and whether unsigned documents are allowed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustPolicy {
    pub keys: Vec<TrustedKey>,
    /// Only honoured when `keys` is empty (config validation refuses both at once).
    pub allow_unsigned: bool,
}

/// Checks an envelope: payload type, then signatures under the policy.
pub fn verify(
    envelope: &Envelope,
    expected_type: &str,
    policy: &TrustPolicy,
) -> Result<Verification, DsseError> {
    if envelope.payload_type != expected_type {
        return Err(DsseError::WrongPayloadType {
            expected: expected_type.to_owned(),
            actual: truncate(&envelope.payload_type, 100),
        });
    }
    if policy.keys.is_empty() {
        return if policy.allow_unsigned {
            Ok(Verification::Unsigned)
        } else {
            Err(DsseError::NoTrustedKeys)
        };
    }
    match envelope.signatures.len() {
        0 => return Err(DsseError::NoSignatures),
        n if n > MAX_SIGNATURES => return Err(DsseError::TooManySignatures { count: n }),
        _ => {}
    }
    let message = pae(&envelope.payload_type, &envelope.payload);
    for signature in &envelope.signatures {
        let Ok(bytes) = <[u8; 64]>::try_from(signature.sig.as_slice()) else {
            continue;
        };
        let sig = Signature::from_bytes(&bytes);
        if let Some(key) = policy
            .keys
            .iter()
            .find(|k| k.key.verify_strict(&message, &sig).is_ok())
        {
            return Ok(Verification::Signed {
                key_id: key.key_id(),
            });
        }
    }
    Err(DsseError::SignatureInvalid {
        signatures: envelope.signatures.len(),
        keys: policy.keys.len(),
    })
}

/// Parses and verifies in one go; returns the payload bytes and how they were verified.
pub fn open(
    bytes: &[u8],
    expected_type: &str,
    policy: &TrustPolicy,
) -> Result<(Vec<u8>, Verification), DsseError> {
    let envelope = parse_envelope(bytes)?;
    let verification = verify(&envelope, expected_type, policy)?;
    Ok((envelope.payload, verification))
}

/// Signs `payload` with one key; `keyid` defaults to [`TrustedKey::key_id`].
pub fn sign(payload_type: &str, payload: &[u8], key: &SigningKey, keyid: Option<&str>) -> Envelope {
    let sig = key.sign(&pae(payload_type, payload));
    let keyid = keyid.map_or_else(|| TrustedKey::from_signing_key(key).key_id(), str::to_owned);
    Envelope {
        payload_type: payload_type.to_owned(),
        payload: payload.to_vec(),
        signatures: vec![EnvelopeSignature {
            keyid,
            sig: sig.to_bytes().to_vec(),
        }],
    }
}

impl Envelope {
    /// The JSON wire form (standard base64, padded).
    pub fn to_json(&self) -> Vec<u8> {
        let wire = WireEnvelope {
            payload_type: self.payload_type.clone(),
            payload: STANDARD.encode(&self.payload),
            signatures: self
                .signatures
                .iter()
                .map(|s| WireSignature {
                    keyid: s.keyid.clone(),
                    sig: STANDARD.encode(&s.sig),
                })
                .collect(),
        };
        #[allow(
            clippy::expect_used,
            reason = "invariant: a struct of strings always serialises"
        )]
        let bytes = serde_json::to_vec(&wire).expect("invariant: envelope of strings serialises");
        bytes
    }
}

fn decode_b64(text: &str) -> Option<Vec<u8>> {
    STANDARD_LENIENT
        .decode(text)
        .or_else(|_| URL_SAFE_LENIENT.decode(text))
        .or_else(|_| general_purpose::STANDARD_NO_PAD.decode(text))
        .ok()
}

fn describe_json_error(e: &serde_json::Error) -> String {
    // serde_json reports `invalid type: string "…"` with the value for type errors; keep
    // only the category and position so a hostile body is never echoed into logs.
    let category = match e.classify() {
        serde_json::error::Category::Io => "I/O error",
        serde_json::error::Category::Syntax => "not valid JSON",
        serde_json::error::Category::Eof => "truncated JSON",
        serde_json::error::Category::Data => "unexpected fields or types",
    };
    let text = e.to_string();
    // Missing/unknown field messages carry only field names, which help the operator.
    if text.starts_with("missing field") || text.starts_with("unknown field") {
        return text;
    }
    format!("{category} at line {} column {}", e.line(), e.column())
}

fn truncate(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_owned();
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn key(seed: u8) -> SigningKey {
        SigningKey::from_bytes(&[seed; 32])
    }

    fn policy(keys: &[&SigningKey]) -> TrustPolicy {
        TrustPolicy {
            keys: keys
                .iter()
                .map(|k| TrustedKey::from_signing_key(k))
                .collect(),
            allow_unsigned: false,
        }
    }

    #[test]
    fn pae_matches_a_hand_computed_vector() {
        // "DSSEv1" SP len(type) SP type SP len(body) SP body, lengths in decimal bytes.
        // type "http://example.com/HelloWorld" is 29 bytes; body "hello world" is 11.
        assert_eq!(
            pae("http://example.com/HelloWorld", b"hello world"),
            b"DSSEv1 29 http://example.com/HelloWorld 11 hello world".to_vec()
        );
        // Our own type: 44 bytes; an empty body is "0 " followed by nothing.
        assert_eq!(CONFIG_PAYLOAD_TYPE.len(), 44);
        assert_eq!(
            pae(CONFIG_PAYLOAD_TYPE, b""),
            b"DSSEv1 44 application/vnd.truenas-agent.config.v1+json 0 ".to_vec()
        );
        // Multi-byte UTF-8 counts bytes, not characters.
        assert_eq!(
            pae("t", "é".as_bytes()),
            "DSSEv1 1 t 2 é".as_bytes().to_vec()
        );
    }

    #[test]
    fn signed_envelope_round_trips_and_verifies() {
        let k = key(1);
        let env = sign(CONFIG_PAYLOAD_TYPE, br#"{"revision":1}"#, &k, None);
        let parsed = parse_envelope(&env.to_json()).unwrap();
        assert_eq!(parsed, env);
        let verified = verify(&parsed, CONFIG_PAYLOAD_TYPE, &policy(&[&k])).unwrap();
        assert_eq!(
            verified,
            Verification::Signed {
                key_id: TrustedKey::from_signing_key(&k).key_id()
            }
        );
    }

    #[test]
    fn tampered_payload_or_signature_is_rejected() {
        let k = key(1);
        let mut env = sign(CONFIG_PAYLOAD_TYPE, br#"{"revision":1}"#, &k, None);
        env.payload = br#"{"revision":2}"#.to_vec();
        assert_eq!(
            verify(&env, CONFIG_PAYLOAD_TYPE, &policy(&[&k])),
            Err(DsseError::SignatureInvalid {
                signatures: 1,
                keys: 1
            })
        );
        let mut env = sign(CONFIG_PAYLOAD_TYPE, b"x", &k, None);
        env.signatures[0].sig[0] ^= 1;
        assert!(verify(&env, CONFIG_PAYLOAD_TYPE, &policy(&[&k])).is_err());
        // A truncated signature never verifies (and never panics).
        env.signatures[0].sig.truncate(10);
        assert!(verify(&env, CONFIG_PAYLOAD_TYPE, &policy(&[&k])).is_err());
    }

    #[test]
    fn signature_over_a_different_payload_type_is_rejected() {
        // Signed as one type but relabelled: PAE binds the type, so the signature fails.
        let k = key(1);
        let mut env = sign("application/other", b"{}", &k, None);
        env.payload_type = CONFIG_PAYLOAD_TYPE.to_owned();
        assert!(matches!(
            verify(&env, CONFIG_PAYLOAD_TYPE, &policy(&[&k])),
            Err(DsseError::SignatureInvalid { .. })
        ));
    }

    #[test]
    fn payload_type_mismatch_is_rejected_before_signatures() {
        let k = key(1);
        let env = sign("application/json", b"{}", &k, None);
        assert_eq!(
            verify(&env, CONFIG_PAYLOAD_TYPE, &policy(&[&k])),
            Err(DsseError::WrongPayloadType {
                expected: CONFIG_PAYLOAD_TYPE.to_owned(),
                actual: "application/json".to_owned()
            })
        );
    }

    #[test]
    fn untrusted_key_is_rejected_and_any_trusted_signature_suffices() {
        let trusted = key(1);
        let stranger = key(2);
        let env = sign(
            CONFIG_PAYLOAD_TYPE,
            b"{}",
            &stranger,
            Some("trusted-looking-id"),
        );
        assert!(matches!(
            verify(&env, CONFIG_PAYLOAD_TYPE, &policy(&[&trusted])),
            Err(DsseError::SignatureInvalid { .. })
        ));
        // Two signatures, the second one trusted: valid. keyid is ignored for matching.
        let mut multi = sign(CONFIG_PAYLOAD_TYPE, b"{}", &stranger, None);
        let good = sign(CONFIG_PAYLOAD_TYPE, b"{}", &trusted, Some("wrong-name"));
        multi.signatures.push(good.signatures[0].clone());
        let other = key(3);
        let v = verify(&multi, CONFIG_PAYLOAD_TYPE, &policy(&[&other, &trusted])).unwrap();
        assert_eq!(
            v,
            Verification::Signed {
                key_id: TrustedKey::from_signing_key(&trusted).key_id()
            }
        );
    }

    #[test]
    fn empty_and_excessive_signature_lists() {
        let k = key(1);
        let mut env = sign(CONFIG_PAYLOAD_TYPE, b"{}", &k, None);
        let one = env.signatures[0].clone();
        env.signatures.clear();
        assert_eq!(
            verify(&env, CONFIG_PAYLOAD_TYPE, &policy(&[&k])),
            Err(DsseError::NoSignatures)
        );
        env.signatures = vec![one; MAX_SIGNATURES + 1];
        assert_eq!(
            verify(&env, CONFIG_PAYLOAD_TYPE, &policy(&[&k])),
            Err(DsseError::TooManySignatures {
                count: MAX_SIGNATURES + 1
            })
        );
    }

    #[test]
    fn no_trusted_keys_needs_allow_unsigned() {
        let env = sign(CONFIG_PAYLOAD_TYPE, b"{}", &key(1), None);
        assert_eq!(
            verify(&env, CONFIG_PAYLOAD_TYPE, &TrustPolicy::default()),
            Err(DsseError::NoTrustedKeys)
        );
        let open_policy = TrustPolicy {
            keys: vec![],
            allow_unsigned: true,
        };
        let mut unsigned = env.clone();
        unsigned.signatures.clear();
        assert_eq!(
            verify(&unsigned, CONFIG_PAYLOAD_TYPE, &open_policy),
            Ok(Verification::Unsigned)
        );
        // Even unsigned, the payload type must match.
        unsigned.payload_type = "x".into();
        assert!(verify(&unsigned, CONFIG_PAYLOAD_TYPE, &open_policy).is_err());
    }

    #[test]
    fn envelope_parse_errors() {
        assert!(matches!(
            parse_envelope(b"not json"),
            Err(DsseError::Malformed { .. })
        ));
        let err = parse_envelope(br#"{"payloadType":"t","payload":"e30=","signatures":[],"x":1}"#)
            .unwrap_err();
        assert!(err.to_string().contains("unknown field `x`"), "{err}");
        assert_eq!(
            parse_envelope(br#"{"payloadType":"t","payload":"%%%","signatures":[]}"#),
            Err(DsseError::BadBase64 { field: "payload" })
        );
        // A type error does not echo the offending value.
        let err = parse_envelope(
            br#"{"payloadType":"t","payload":["CANARY-B2-APPKEY-7f3a9c"],"signatures":[]}"#,
        )
        .unwrap_err();
        assert!(!err.to_string().contains("CANARY"), "{err}");
        // keyid is optional; URL-safe and unpadded base64 are accepted.
        let env =
            parse_envelope(br#"{"payloadType":"t","payload":"e30","signatures":[{"sig":"_-8"}]}"#)
                .unwrap();
        assert_eq!(env.payload, b"{}");
        assert_eq!(env.signatures[0].sig, vec![0xff, 0xef]);
        assert_eq!(env.signatures[0].keyid, "");
    }

    #[test]
    fn trusted_key_parsing() {
        let k = TrustedKey::from_signing_key(&key(7));
        let text = k.to_config_string();
        assert!(text.starts_with("ed25519:"));
        assert_eq!(TrustedKey::parse(&text).unwrap(), k);
        assert_eq!(TrustedKey::parse("rsa:AAAA"), Err(KeyError::MissingPrefix));
        assert_eq!(TrustedKey::parse("ed25519:***"), Err(KeyError::BadBase64));
        assert_eq!(
            TrustedKey::parse("ed25519:AAAA"),
            Err(KeyError::WrongLength { len: 3 })
        );
        assert_eq!(k.key_id().len(), 16);
        assert!(format!("{k:?}").contains(&k.key_id()));
    }

    #[test]
    fn debug_never_shows_the_payload() {
        let env = sign(
            CONFIG_PAYLOAD_TYPE,
            b"CANARY-ENC-PASSWORD-2b8e41",
            &key(1),
            None,
        );
        assert!(!format!("{env:?}").contains("CANARY"));
    }

    proptest! {
        #[test]
        fn parse_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = parse_envelope(&bytes);
        }

        #[test]
        fn parse_and_verify_never_panic_on_json_shaped_input(
            payload_type in ".{0,60}",
            payload in "[A-Za-z0-9+/=_-]{0,80}",
            sigs in proptest::collection::vec(("[a-z]{0,8}", "[A-Za-z0-9+/=_-]{0,100}"), 0..4),
        ) {
            let json = serde_json::json!({
                "payloadType": payload_type,
                "payload": payload,
                "signatures": sigs.iter().map(|(k, s)| serde_json::json!({"keyid": k, "sig": s})).collect::<Vec<_>>(),
            });
            let bytes = serde_json::to_vec(&json).unwrap();
            if let Ok(env) = parse_envelope(&bytes) {
                let _ = verify(&env, CONFIG_PAYLOAD_TYPE, &policy(&[&key(1)]));
            }
        }

    }

    proptest! {
        // Few cases: Ed25519 is slow in debug builds.
        #![proptest_config(ProptestConfig::with_cases(32))]

        #[test]
        fn sign_then_open_round_trips(payload in proptest::collection::vec(any::<u8>(), 0..256)) {
            let k = key(9);
            let env = sign(CONFIG_PAYLOAD_TYPE, &payload, &k, None);
            let (got, _) = open(&env.to_json(), CONFIG_PAYLOAD_TYPE, &policy(&[&k])).unwrap();
            prop_assert_eq!(got, payload);
        }
    }
}
