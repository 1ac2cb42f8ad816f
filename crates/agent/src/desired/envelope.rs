//! Unwraps a DSSE envelope's payload WITHOUT verifying it, for `--allow-unsigned` files.
//!
//! Owns: recognising the envelope shape (central-protocol.md §2), the payloadType check
//! and the base64 decoding of `payload`.
//! Does not: verify signatures — the central channel (`central::dsse`) owns that and is
//! the only path by which a document from central reaches the agent.
//! Invariants: only called after the operator passed `--allow-unsigned`; errors never
//! contain payload bytes.
//! Limitations: signatures are accepted as any list and ignored.

use base64::Engine as _;
use serde_json::Value;

/// The payload type of a v1 desired-state document.
pub const PAYLOAD_TYPE: &str = "application/vnd.truenas-agent.config.v1+json";

/// Why an envelope could not be unwrapped.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EnvelopeError {
    #[error("envelope key `{0}` is missing or not a string")]
    MissingField(&'static str),
    #[error("envelope payloadType is not `{PAYLOAD_TYPE}`")]
    WrongPayloadType,
    #[error("envelope payload is not standard base64")]
    Base64,
    #[error("envelope key `{0}` is not part of DSSE")]
    UnknownKey(String),
    #[error("envelope key `{0}` appears more than once")]
    DuplicateKey(String),
}

/// True for a JSON object that is shaped like a DSSE envelope (has `payloadType`).
pub fn looks_like_envelope(value: &Value) -> bool {
    value
        .as_object()
        .is_some_and(|map| map.contains_key("payloadType"))
}

/// The payload bytes of an envelope, signatures NOT checked.
pub fn unwrap_unverified(value: &Value) -> Result<Vec<u8>, EnvelopeError> {
    let map = value
        .as_object()
        .ok_or(EnvelopeError::MissingField("payloadType"))?;
    if let Some(key) = map
        .keys()
        .find(|k| !["payloadType", "payload", "signatures"].contains(&k.as_str()))
    {
        return Err(EnvelopeError::UnknownKey(key.clone()));
    }
    let payload_type = map
        .get("payloadType")
        .and_then(Value::as_str)
        .ok_or(EnvelopeError::MissingField("payloadType"))?;
    if payload_type != PAYLOAD_TYPE {
        return Err(EnvelopeError::WrongPayloadType);
    }
    let payload = map
        .get("payload")
        .and_then(Value::as_str)
        .ok_or(EnvelopeError::MissingField("payload"))?;
    base64::engine::general_purpose::STANDARD
        .decode(payload)
        .map_err(|_| EnvelopeError::Base64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn b64(bytes: &[u8]) -> String {
        base64::engine::general_purpose::STANDARD.encode(bytes)
    }

    #[test]
    fn unwraps_payload() {
        let env = json!({"payloadType": PAYLOAD_TYPE, "payload": b64(b"{\"a\":1}"),
                         "signatures": [{"keyid": "k", "sig": "AAAA"}]});
        assert!(looks_like_envelope(&env));
        assert_eq!(unwrap_unverified(&env).unwrap(), b"{\"a\":1}");
    }

    #[test]
    fn refuses_bad_envelopes() {
        let wrong_type = json!({"payloadType": "text/plain", "payload": b64(b"{}")});
        assert_eq!(
            unwrap_unverified(&wrong_type),
            Err(EnvelopeError::WrongPayloadType)
        );
        let bad_b64 = json!({"payloadType": PAYLOAD_TYPE, "payload": "!!!"});
        assert_eq!(unwrap_unverified(&bad_b64), Err(EnvelopeError::Base64));
        let no_payload = json!({"payloadType": PAYLOAD_TYPE});
        assert_eq!(
            unwrap_unverified(&no_payload),
            Err(EnvelopeError::MissingField("payload"))
        );
        let extra = json!({"payloadType": PAYLOAD_TYPE, "payload": "", "x": 1});
        assert_eq!(
            unwrap_unverified(&extra),
            Err(EnvelopeError::UnknownKey("x".into()))
        );
        assert!(!looks_like_envelope(&json!({"schema": "x"})));
    }
}
